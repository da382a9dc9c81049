// The reward of the sampling commands (the online methods, best-of-n, iterative DPO): the
// --reward specs and --reward-nan, read once.
#pragma once

#include <filesystem>
#include <memory>

#include "cli/options.h"
#include "rollout/reward.h"

namespace rlhf::cli {

// The weighted sum of every --reward source; `policy_dir` lets a reward model share the
// policy's tokenization, and reward models run on the command's --backend.
std::unique_ptr<rollout::CombinedReward> reward_from(const Options& o, const std::filesystem::path& policy_dir);

}  // namespace rlhf::cli
