#include "cli/reward_options.h"

#include "tensor/error.h"
#include "testbed/gold_reward.h"

namespace rlhf::cli {

void add_reward_options(Options& o) {
  o.repeated("reward", "reward source spec, repeatable: [W*]rm|exact|regex|format|eos|length|cmd[(opts)][:arg] "
                       "(see README)")
      .add("reward-nan", "propagate", "a NaN term makes the score NaN (propagate) or is left out (ignore)")
      .add("reward-combine", "sum",
           "sum (weighted sum) | min (worst case over the sources) | uwo (mean - lambda * variance across them); "
           "min and uwo need two or more --reward sources")
      .add("reward-uwo-lambda", "0.5", "uwo's variance penalty lambda (>= 0)");
}

rollout::RewardCombine reward_combine_from(const Options& o) {
  rollout::RewardCombine c{.mode = rollout::parse_combine_mode(o.str("reward-combine")),
                           .uwo_lambda = o.number("reward-uwo-lambda"),
                           .nan = rollout::parse_nan_policy(o.str("reward-nan"))};
  if (o.given("reward-uwo-lambda") && c.mode != rollout::CombineMode::uwo)
    throw InputError("--reward-uwo-lambda applies only to --reward-combine uwo (the mode is '" +
                     o.str("reward-combine") + "')");
  return c;
}

std::unique_ptr<rollout::CombinedReward> reward_from(const Options& o, const std::filesystem::path& policy_dir) {
  rollout::RewardContext ctx{.policy_dir = policy_dir,
                             .backend = &backend_from(o),
                             .extra_kinds = {{"gold", testbed::gold_reward}}};
  return std::make_unique<rollout::CombinedReward>(rollout::parse_reward_specs(o.list("reward")), ctx,
                                                   reward_combine_from(o));
}

void record_rewards(const Options& o, nlohmann::json& manifest) {
  const rollout::RewardCombine c = reward_combine_from(o);
  manifest["rewards"] = o.list("reward");
  manifest["reward_combine"] = {{"mode", rollout::combine_mode_name(c.mode)}, {"nan", o.str("reward-nan")}};
  if (c.mode == rollout::CombineMode::uwo) manifest["reward_combine"]["uwo_lambda"] = c.uwo_lambda;
}

}  // namespace rlhf::cli
