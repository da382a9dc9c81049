// The registry of online methods: a row per method, which also makes its `rlhf` subcommand. A new
// method is its file in this folder, its factory's declaration and its row below, its OnlineMethod
// enumerator and settings in OnlineConfig (train/online_trainer.h), and its flags
// (src/cli/cmd_online.cpp).
#include <array>
#include <numeric>

#include "tensor/error.h"
#include "train/online/method.h"

namespace rlhf::online {

// Defined in the method's own file.
std::unique_ptr<Method> make_ppo(const OnlineConfig& cfg);
std::unique_ptr<Method> make_apa(const OnlineConfig& cfg);
std::unique_ptr<Method> make_reinforce(const OnlineConfig& cfg);
std::unique_ptr<Method> make_rloo(const OnlineConfig& cfg);
std::unique_ptr<Method> make_grpo(const OnlineConfig& cfg);
std::unique_ptr<Method> make_online_dpo(const OnlineConfig& cfg);

namespace {

constexpr std::array kMethods = {
    MethodEntry{OnlineMethod::ppo, "ppo", "ppo",
                "PPO with a value head, per-token KL penalty, GAE, clipped surrogate (online)", make_ppo},
    MethodEntry{OnlineMethod::apa, "apa", "apa", "advantage-induced policy alignment (online)", make_apa},
    MethodEntry{OnlineMethod::reinforce, "reinforce", "reinforce", "REINFORCE with a moving-average baseline (online)",
                make_reinforce},
    MethodEntry{OnlineMethod::rloo, "rloo", "rloo", "REINFORCE leave-one-out over k samples per prompt (online)",
                make_rloo},
    MethodEntry{OnlineMethod::grpo, "grpo", "grpo", "group-relative policy optimisation (online)", make_grpo},
    MethodEntry{OnlineMethod::online_dpo, "online_dpo", "online-dpo",
                "DPO on pairs sampled from the policy and judged by a reward (online)", make_online_dpo},
};

const MethodEntry& entry_of(OnlineMethod m) {
  for (const MethodEntry& e : kMethods)
    if (e.id == m) return e;
  throw LogicError("online method " + std::to_string(static_cast<int>(m)) + " is not registered");
}

}  // namespace

std::span<const MethodEntry> registered_methods() { return kMethods; }

std::unique_ptr<Method> make_method(const OnlineConfig& cfg) { return entry_of(cfg.method).make(cfg); }

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

std::vector<double> Pass::per_sequence(const std::vector<double>& all) const {
  std::vector<double> out;
  for (size_t i : rows) out.push_back(all[i]);
  return out;
}

objective::ValueInputs Pass::value_inputs() const {
  return {rollout.slots.select(rows), current.values, rollout.slots.gather(rollout.values, rows),
          rollout.slots.gather(advantages.returns, rows)};
}

}  // namespace rlhf::online

namespace rlhf {

OnlineMethod online_method_from_name(const std::string& name) {
  std::string expected;
  for (size_t i = 0; i < online::kMethods.size(); ++i) {
    if (name == online::kMethods[i].name) return online::kMethods[i].id;
    expected += (i == 0 ? "" : i + 1 == online::kMethods.size() ? " or " : ", ") + std::string(online::kMethods[i].name);
  }
  throw InputError("unknown online method '" + name + "' (expected " + expected + ")");
}

const char* online_method_name(OnlineMethod m) { return online::entry_of(m).name; }

bool method_uses_values(OnlineMethod m) {
  OnlineConfig cfg;
  cfg.method = m;
  return online::make_method(cfg)->needs().values;
}

bool method_reads_reference(OnlineMethod m, double beta) {
  OnlineConfig cfg;
  cfg.method = m;
  cfg.beta = cfg.grpo.beta = beta;
  return online::make_method(cfg)->needs().reference;
}

}  // namespace rlhf
