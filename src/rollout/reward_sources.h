// Internal to src/rollout: the constructors of each kind of source, and the reader of a spec's
// options that every constructor uses (unknown or malformed options are errors naming the spec).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "rollout/reward.h"

namespace rlhf::rollout {

class SpecOptions {
 public:
  explicit SpecOptions(const RewardSpec& spec) : spec_(spec) {}
  bool has(const std::string& key);
  double number(const std::string& key, double def);
  bool flag(const std::string& key);  // a bare key, 1/0, true/false
  std::string str(const std::string& key, const std::string& def);
  // Throws InputError listing the options nobody asked for.
  void finish() const;
  [[noreturn]] void fail(const std::string& what) const;  // InputError "reward 'SPEC': what"

 private:
  const RewardSpec& spec_;
  std::set<std::string> used_;
};

// exact, regex, format, eos, length (reward_rules.cpp).
std::unique_ptr<RewardSource> make_rule_reward(const RewardSpec& spec, SpecOptions& opt);
// rm (reward_model.cpp).
std::unique_ptr<RewardSource> make_model_reward(const RewardSpec& spec, SpecOptions& opt, const RewardContext& ctx);
// cmd (reward_command.cpp).
std::unique_ptr<RewardSource> make_command_reward(const RewardSpec& spec, SpecOptions& opt);

}  // namespace rlhf::rollout
