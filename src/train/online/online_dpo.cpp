// Online DPO (Guo et al., TRL OnlineDPOTrainer): a prompt's two samples form a pair, the
// better-scored one chosen (ties: the first, as TRL), and the pairwise loss of src/objective
// ("sigmoid", or TRL's summed "ipo_sum") on their summed log-probs against the reference's.
#include <cmath>

#include "objective/pairwise.h"
#include "tensor/error.h"
#include "train/online/method.h"

namespace rlhf::online {

namespace {

class OnlineDpo : public Method {
 public:
  explicit OnlineDpo(const OnlineConfig& cfg) : Method({.pairs = true, .drop_undefined = true}), loss_(cfg.dpo_loss) {}

  void validate(const OnlineConfig& cfg) const override {
    if (cfg.dpo_loss != "sigmoid" && cfg.dpo_loss != "ipo_sum")
      throw InputError("online_dpo loss: expected sigmoid or ipo_sum, got '" + cfg.dpo_loss + "'");
  }

  // No advantages: the loss reads the pairs' scores.
  Advantages advantages(const RolloutNumbers& r, std::map<std::string, double>& metrics) override {
    const double beta = kl_coef();
    double margin = 0;
    for (size_t i = 0; i < r.scores.size(); i += 2) margin += std::fabs(r.scores[i] - r.scores[i + 1]);
    metrics["objective/scores_margin"] = margin / static_cast<double>(r.scores.size() / 2);
    metrics["objective/non_score_reward"] = beta * mean_of(r.seq_kl);
    metrics["objective/rlhf_reward"] = metrics["objective/scores"] - beta * mean_of(r.seq_kl);
    return {};
  }

  // The pass holds whole pairs: rows 2j and 2j+1 of `pass.rows` are one prompt's samples.
  objective::PolicyLossResult loss(const Pass& pass) const override {
    const std::vector<size_t>& rows = pass.rows;
    const Ragged& layout = pass.tokens;
    const std::vector<double>& lp = pass.current.logp;
    const std::vector<double> lp_ref = pass.per_token(pass.rollout.lp_ref);
    const std::vector<double> sum_lp = rollout::sequence_sums(layout, lp), sum_ref = rollout::sequence_sums(layout, lp_ref);
    std::vector<objective::PairInputs> pairs;
    std::vector<std::pair<size_t, size_t>> sides;  // (chosen, rejected) positions in `rows`
    for (size_t k = 0; k < rows.size(); k += 2) {
      const bool first = pass.rollout.scores[rows[k]] >= pass.rollout.scores[rows[k + 1]];
      const size_t c = first ? k : k + 1, j = first ? k + 1 : k;
      sides.emplace_back(c, j);
      pairs.push_back({sum_lp[c], sum_lp[j], sum_ref[c], sum_ref[j], static_cast<double>(layout.length(c)),
                       static_cast<double>(layout.length(j))});
    }
    objective::PairParams pp;
    pp.beta = kl_coef();
    const objective::PairBatchResult pr = objective::pairwise_loss({{loss_, 1.0}}, pairs, pp);
    objective::PolicyLossResult res;
    res.loss = pr.loss;
    res.d_logp.assign(lp.size(), 0.0);
    for (size_t i = 0; i < sides.size(); ++i) {
      for (size_t t = layout.begin(sides[i].first); t < layout.end(sides[i].first); ++t)
        res.d_logp[t] = pr.grads[i].d_chosen;
      for (size_t t = layout.begin(sides[i].second); t < layout.end(sides[i].second); ++t)
        res.d_logp[t] = pr.grads[i].d_rejected;
    }
    for (const auto& [k, v] : objective::pairwise_metrics(pairs, pp.beta)) res.metrics.emplace_back(k, v);
    return res;
  }

 private:
  std::string loss_;
};

}  // namespace

std::unique_ptr<Method> make_online_dpo(const OnlineConfig& cfg) { return std::make_unique<OnlineDpo>(cfg); }

}  // namespace rlhf::online
