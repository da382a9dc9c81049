// Shared pieces of the online-training tests: random token prompts and a reward that counts one
// target token, so that a method that learns raises a score it can reach from any prompt.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rollout/reward.h"
#include "tensor/rng.h"
#include "train/online_trainer.h"

namespace rlhf::test {

inline constexpr int32_t kTarget = 7;  // the token the reward counts

// `count` prompts of ids in [10, 50), each min_len..max_len tokens long (seeded, always the same).
inline std::vector<OnlinePrompt> random_prompts(int count, int min_len, int max_len) {
  Rng rng(11);
  std::vector<OnlinePrompt> out;
  for (int i = 0; i < count; ++i) {
    OnlinePrompt p;
    const int len = min_len == max_len ? min_len : min_len + static_cast<int>(rng.below(max_len - min_len + 1));
    for (int k = 0; k < len; ++k) p.ids.push_back(static_cast<int32_t>(10 + rng.below(40)));
    p.prompt.text = "prompt " + std::to_string(i);
    out.push_back(std::move(p));
  }
  return out;
}

// Each completion's share of kTarget tokens, over 8 (the tests' completion budget).
inline rollout::RewardResult target_share(const std::vector<rollout::RewardSample>& batch) {
  rollout::RewardResult r;
  for (const auto& s : batch) {
    double hits = 0;
    for (int32_t t : s.completion_ids) hits += t == kTarget;
    r.scores.push_back(hits / 8.0);
  }
  return r;
}

inline std::string no_text(const std::vector<int32_t>&) { return ""; }

}  // namespace rlhf::test
