// RLOO (Ahmadian et al., TRL RLOOTrainer): each sample's reward, the score minus beta times its
// sequence KL, against the mean reward of the other samples of its prompt; the sequence-level
// surrogate shared with REINFORCE.
#include "train/online/method.h"

namespace rlhf::online {

namespace {

class Rloo : public Method {
 public:
  explicit Rloo(const OnlineConfig& cfg)
      : Method({.reference = cfg.beta != 0, .min_samples = 2}),
        params_(cfg.sequence_pg),
        group_size_(static_cast<size_t>(cfg.sampling.n)),
        normalize_(cfg.normalize_advantages) {}

  Advantages advantages(const RolloutNumbers& r, std::map<std::string, double>& metrics) override {
    const double beta = kl_coef();
    rollout::SequenceAdvantages a = rollout::rloo_advantages(r.scores, r.seq_kl, beta, group_size_, normalize_);
    for (const auto& [k, v] : a.metrics) metrics[k] = v;
    metrics["objective/non_score_reward"] = -beta * mean_of(r.seq_kl);
    metrics["objective/rlhf_reward"] = metrics["objective/scores"] - beta * mean_of(r.seq_kl);
    return {.per_sequence = std::move(a.advantages)};
  }

  objective::PolicyLossResult loss(const Pass& pass) const override { return sequence_pg_loss(pass, params_); }

 private:
  objective::SequencePgParams params_;
  size_t group_size_;
  bool normalize_;
};

}  // namespace

std::unique_ptr<Method> make_rloo(const OnlineConfig& cfg) { return std::make_unique<Rloo>(cfg); }

}  // namespace rlhf::online
