// PPO (TRL PPOTrainer, lm-human-preferences): the per-token KL penalty in the reward, GAE
// advantages from the values at the value slots, the clipped surrogate with a clipped value loss
// and an optional entropy bonus; Ziegler et al.'s adaptive KL controller, if asked, moves the KL
// coefficient after every step by the step's KL.
#include "train/online/method.h"

namespace rlhf::online {

Advantages ppo_advantages(const RolloutNumbers& r, const rollout::PpoShaping& shaping,
                          std::map<std::string, double>& metrics) {
  rollout::PpoAdvantages a =
      rollout::ppo_advantages({r.tokens, r.lp_old, r.lp_ref, r.values, r.scores, r.has_eos}, shaping);
  for (const auto& [k, v] : a.metrics) metrics[k] = v;
  return {.per_token = std::move(a.advantages), .returns = std::move(a.returns)};
}

namespace {

class Ppo : public Method {
 public:
  explicit Ppo(const OnlineConfig& cfg)
      : Method({.values = true, .entropy = cfg.ppo.entropy_coef != 0, .drop_undefined = true,
                .loss = Normaliser::tokens, .metrics = Normaliser::tokens}),
        shaping_(cfg.shaping), params_(cfg.ppo), adaptive_(cfg.adaptive_kl), kl_target_(cfg.kl_target),
        kl_horizon_(cfg.kl_horizon) {
    shaping_.max_response_length = static_cast<size_t>(cfg.sampling.max_new_tokens);
  }

  void restore(const OnlineState& state) override {
    kl_ = adaptive_ ? rollout::KlController::adaptive(state.kl_coef, kl_target_, kl_horizon_)
                    : rollout::KlController::fixed(state.kl_coef);
  }

  Advantages advantages(const RolloutNumbers& r, std::map<std::string, double>& metrics) override {
    rollout::PpoShaping sh = shaping_;
    sh.kl_coef = kl_.value();
    return ppo_advantages(r, sh, metrics);
  }

  objective::PolicyLossResult loss(const Pass& pass) const override {
    objective::PpoLossInputs in;
    in.tokens = pass.tokens;
    in.lp = pass.current.logp;
    in.lp_old = pass.per_token(pass.rollout.lp_old);
    in.advantages = pass.per_token(pass.advantages.per_token);
    in.entropy = pass.current.entropy;
    in.value = pass.value_inputs();
    return objective::ppo_loss(in, params_);
  }

  // lm-human-preferences' n_steps: the episodes of the batch.
  void end_step(const RolloutNumbers& r) override {
    kl_.update(mean_of(r.seq_kl), static_cast<double>(r.tokens.sequences()));
  }

 private:
  rollout::PpoShaping shaping_;
  objective::PpoLossParams params_;
  bool adaptive_;
  double kl_target_, kl_horizon_;
};

}  // namespace

std::unique_ptr<Method> make_ppo(const OnlineConfig& cfg) { return std::make_unique<Ppo>(cfg); }

}  // namespace rlhf::online
