// Internal to src/rollout: the constructors of each kind of source (each reads its options through
// SpecOptions, rollout/reward.h).
#pragma once

#include <memory>
#include <string>

#include "rollout/reward.h"

namespace rlhf::rollout {

// exact, regex, format, eos, length (reward_rules.cpp).
std::unique_ptr<RewardSource> make_rule_reward(const RewardSpec& spec, SpecOptions& opt);
// rm (reward_model.cpp).
std::unique_ptr<RewardSource> make_model_reward(const RewardSpec& spec, SpecOptions& opt, const RewardContext& ctx);
// cmd (reward_command.cpp).
std::unique_ptr<RewardSource> make_command_reward(const RewardSpec& spec, SpecOptions& opt);

}  // namespace rlhf::rollout
