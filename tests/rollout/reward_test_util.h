// Helpers for the reward-source tests: samples and sources from spec strings.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rollout/reward.h"

namespace rlhf::rollout::test {

inline RewardSample sample(const std::string& completion, nlohmann::json extra = nlohmann::json::object(),
                           const std::string& prompt = "Q") {
  RewardSample s;
  s.prompt.text = prompt;
  s.completion = completion;
  s.extra = std::move(extra);
  return s;
}

inline std::unique_ptr<RewardSource> source(const std::string& spec, const RewardContext& ctx = {}) {
  return make_reward_source(parse_reward_spec(spec), ctx);
}

inline std::vector<double> scores(const std::string& spec, const std::vector<RewardSample>& batch) {
  return source(spec)->score(batch).scores;
}

inline double score1(const std::string& spec, const RewardSample& s) { return scores(spec, {s}).at(0); }

}  // namespace rlhf::rollout::test
