// GRPO (Shao et al., TRL GRPOTrainer) and its loss variants: each sample's score against the
// mean (and, by group_scaling, the std) of its prompt's samples; the clipped per-token surrogate
// with beta times k3 to the reference in the loss, aggregated by loss_type — a mean over
// sequences (grpo, dr_grpo), over the batch's tokens (bnpo, dapo) or over a fixed token count
// (dapo with num_items_in_batch). The reference is read only with beta != 0 (TRL loads none).
#include "train/online/method.h"

namespace rlhf::online {

namespace {

Normaliser loss_normaliser(const objective::GrpoParams& p) {
  if (p.loss_type == "grpo" || p.loss_type == "dr_grpo") return Normaliser::sequences;
  return p.loss_type == "dapo" && p.num_items_in_batch > 0 ? Normaliser::fixed : Normaliser::tokens;
}

class Grpo : public Method {
 public:
  explicit Grpo(const OnlineConfig& cfg)
      : Method({.reference = cfg.grpo.beta != 0,
                .min_samples = 2,
                .loss = loss_normaliser(cfg.grpo),
                .metrics = Normaliser::tokens}),
        params_(cfg.grpo),
        group_size_(static_cast<size_t>(cfg.sampling.n)),
        scaling_(cfg.group_scaling) {
    params_.max_completion_length = static_cast<size_t>(cfg.sampling.max_new_tokens);
  }

  Advantages advantages(const RolloutNumbers& r, std::map<std::string, double>& metrics) override {
    rollout::SequenceAdvantages a = rollout::group_advantages(r.scores, group_size_, scaling_);
    for (const auto& [k, v] : a.metrics) metrics[k] = v;
    return {.per_sequence = std::move(a.advantages)};
  }

  objective::PolicyLossResult loss(const Pass& pass) const override {
    objective::GrpoInputs in;
    in.tokens = pass.tokens;
    in.lp = pass.current.logp;
    in.lp_old = pass.per_token(pass.rollout.lp_old);
    if (params_.beta != 0) in.lp_ref = pass.per_token(pass.rollout.lp_ref);
    in.advantages = pass.per_sequence(pass.advantages.per_sequence);
    return objective::grpo_loss(in, params_);
  }

 private:
  objective::GrpoParams params_;
  size_t group_size_;
  rollout::GroupScaling scaling_;
};

}  // namespace

std::unique_ptr<Method> make_grpo(const OnlineConfig& cfg) { return std::make_unique<Grpo>(cfg); }

}  // namespace rlhf::online
