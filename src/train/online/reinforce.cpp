// REINFORCE with a moving baseline (Ahmadian et al.): each sample's reward, the score minus
// beta times its sequence KL, against the moving average of past batches' mean rewards, which a
// resumed run carries on (OnlineState); the sequence-level surrogate of src/objective, shared
// with RLOO.
#include <cmath>

#include "train/online/method.h"

namespace rlhf::online {

objective::PolicyLossResult sequence_pg_loss(const Pass& pass, const objective::SequencePgParams& params) {
  objective::SequencePgInputs in;
  in.tokens = pass.tokens;
  in.lp = pass.current.logp;
  in.lp_old = pass.per_token(pass.rollout.lp_old);
  in.advantages = pass.per_sequence(pass.advantages.per_sequence);
  return objective::sequence_pg_loss(in, params);
}

namespace {

class Reinforce : public Method {
 public:
  explicit Reinforce(const OnlineConfig& cfg)
      : Method({.reference = cfg.beta != 0}), params_(cfg.sequence_pg), decay_(cfg.reinforce_baseline_decay) {}

  void restore(const OnlineState& state) override {
    Method::restore(state);
    baseline_ = state.reward_baseline;
    baseline_set_ = state.baseline_set;
  }
  void save(OnlineState& state) const override {
    Method::save(state);
    state.reward_baseline = baseline_;
    state.baseline_set = baseline_set_;
  }

  // The first batch's mean reward starts the baseline; each batch is measured against the
  // baseline of the batches before it.
  Advantages advantages(const RolloutNumbers& r, std::map<std::string, double>& metrics) override {
    std::vector<double> rewards(r.scores.size()), defined;
    for (size_t i = 0; i < rewards.size(); ++i) {
      rewards[i] = r.scores[i] - (r.seq_kl.empty() ? 0.0 : kl_coef() * r.seq_kl[i]);
      if (!std::isnan(rewards[i])) defined.push_back(rewards[i]);
    }
    const double batch_mean = mean_of(defined);
    if (!baseline_set_) baseline_ = batch_mean, baseline_set_ = true;
    Advantages a{.per_sequence = rollout::reinforce_advantages(rewards, baseline_)};
    metrics["reward_baseline"] = baseline_;
    baseline_ = decay_ * baseline_ + (1 - decay_) * batch_mean;
    metrics["objective/rlhf_reward"] = batch_mean;
    return a;
  }

  objective::PolicyLossResult loss(const Pass& pass) const override { return sequence_pg_loss(pass, params_); }

 private:
  objective::SequencePgParams params_;
  double decay_;
  double baseline_ = 0;
  bool baseline_set_ = false;
};

}  // namespace

std::unique_ptr<Method> make_reinforce(const OnlineConfig& cfg) { return std::make_unique<Reinforce>(cfg); }

}  // namespace rlhf::online
