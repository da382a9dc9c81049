#include "cli/reward_options.h"

namespace rlhf::cli {

std::unique_ptr<rollout::CombinedReward> reward_from(const Options& o, const std::filesystem::path& policy_dir) {
  return std::make_unique<rollout::CombinedReward>(rollout::parse_reward_specs(o.list("reward")),
                                                   rollout::RewardContext{.policy_dir = policy_dir},
                                                   rollout::parse_nan_policy(o.str("reward-nan")));
}

}  // namespace rlhf::cli
