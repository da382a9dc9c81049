// The reward of the sampling commands (the online methods, best-of-n, iterative DPO): the
// --reward specs and how they combine, declared and read once.
#pragma once

#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/options.h"
#include "rollout/reward.h"

namespace rlhf::cli {

// --reward (repeatable), --reward-nan, --reward-combine and --reward-uwo-lambda.
void add_reward_options(Options& o);

// The combination of those flags; --reward-uwo-lambda without --reward-combine uwo is an InputError.
rollout::RewardCombine reward_combine_from(const Options& o);

// Every --reward source, combined as reward_combine_from says; `policy_dir` lets a reward model
// share the policy's tokenization, and reward models run on the command's --backend.
std::unique_ptr<rollout::CombinedReward> reward_from(const Options& o, const std::filesystem::path& policy_dir);

// The run manifest's "rewards" (the specs) and "reward_combine" (mode, NaN policy, uwo's lambda).
void record_rewards(const Options& o, nlohmann::json& manifest);

}  // namespace rlhf::cli
