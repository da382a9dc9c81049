// APA (Zhu et al., microsoft/RLHF-APA): PPO's advantages without the KL penalty in the reward —
// the KL control is the squared loss towards the initial (reference) policy — and a value loss.
#include "train/online/method.h"

namespace rlhf::online {

namespace {

class Apa : public Method {
 public:
  explicit Apa(const OnlineConfig& cfg)
      : Method({.values = true, .drop_undefined = true, .loss = Normaliser::tokens, .metrics = Normaliser::tokens}),
        shaping_(cfg.shaping),
        params_(cfg.apa) {
    shaping_.max_response_length = static_cast<size_t>(cfg.sampling.max_new_tokens);
    shaping_.kl_coef = 0;
  }

  Advantages advantages(const RolloutNumbers& r, std::map<std::string, double>& metrics) override {
    return ppo_advantages(r, shaping_, metrics);
  }

  objective::PolicyLossResult loss(const Pass& pass) const override {
    objective::ApaInputs in;
    in.tokens = pass.tokens;
    in.lp = pass.current.logp;
    in.lp_init = pass.per_token(pass.rollout.lp_ref);
    in.advantages = pass.per_token(pass.advantages.per_token);
    in.value = pass.value_inputs();
    return objective::apa_loss(in, params_);
  }

 private:
  rollout::PpoShaping shaping_;
  objective::ApaParams params_;
};

}  // namespace

std::unique_ptr<Method> make_apa(const OnlineConfig& cfg) { return std::make_unique<Apa>(cfg); }

}  // namespace rlhf::online
