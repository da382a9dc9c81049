#include "cli/reward_options.h"

#include "testbed/gold_reward.h"

namespace rlhf::cli {

std::unique_ptr<rollout::CombinedReward> reward_from(const Options& o, const std::filesystem::path& policy_dir) {
  rollout::RewardContext ctx{.policy_dir = policy_dir,
                             .backend = &backend_from(o),
                             .extra_kinds = {{"gold", testbed::gold_reward}}};
  return std::make_unique<rollout::CombinedReward>(rollout::parse_reward_specs(o.list("reward")), ctx,
                                                   rollout::parse_nan_policy(o.str("reward-nan")));
}

}  // namespace rlhf::cli
