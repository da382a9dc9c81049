#include "objective/unpaired.h"

#include <algorithm>

#include "objective/dual.h"
#include "tensor/error.h"

namespace rlhf::objective {

namespace {

// Fills the per-example loss and derivative from f(D, desirable) on dual numbers, and the
// implicit-reward metrics TRL's KTOTrainer logs.
template <class F>
UnpairedResult per_example(const std::vector<UnpairedInputs>& batch, double beta, F f) {
  UnpairedResult r;
  r.d_logp.assign(batch.size(), 0.0);
  if (batch.empty()) return r;
  const double inv_n = 1.0 / static_cast<double>(batch.size());
  double rew_d = 0, rew_u = 0, lp_d = 0, lp_u = 0;
  int64_t n_d = 0, n_u = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const UnpairedInputs& x = batch[i];
    const Dual D(x.logp - x.ref_logp, 1.0);
    const Dual l = f(D, x.desirable);
    r.loss += l.v * inv_n;
    r.d_logp[i] = l.d * inv_n;
    (x.desirable ? rew_d : rew_u) += beta * D.v;
    (x.desirable ? lp_d : lp_u) += x.logp;
    ++(x.desirable ? n_d : n_u);
  }
  r.metrics = {{"count/chosen", double(n_d)},
               {"count/rejected", double(n_u)},
               {"rewards/chosen_sum", rew_d},
               {"rewards/rejected_sum", rew_u},
               {"logps/chosen_sum", lp_d},
               {"logps/rejected_sum", lp_u}};
  return r;
}

}  // namespace

UnpairedResult kto_loss(const std::vector<UnpairedInputs>& batch, const std::vector<double>& kl_logp,
                        const std::vector<double>& kl_ref_logp, const KtoParams& p) {
  if (!(p.beta > 0)) throw InputError("kto: beta must be positive");
  if (kl_logp.size() != kl_ref_logp.size() || kl_logp.empty())
    throw InputError("kto: the reference point needs mismatched-pair log-probs for policy and reference");
  double z0 = 0;
  for (size_t i = 0; i < kl_logp.size(); ++i) z0 += kl_logp[i] - kl_ref_logp[i];
  z0 = std::max(0.0, z0 / static_cast<double>(kl_logp.size()));
  UnpairedResult r = per_example(batch, p.beta, [&](Dual D, bool desirable) {
    return desirable ? p.desirable_weight * (1 - sigmoid(p.beta * (D - z0)))
                     : p.undesirable_weight * (1 - sigmoid(p.beta * (z0 - D)));
  });
  r.kl = z0;
  r.metrics.emplace_back("kl", z0);
  return r;
}

UnpairedResult apo_zero_unpaired_loss(const std::vector<UnpairedInputs>& batch, double beta) {
  if (!(beta > 0)) throw InputError("apo_zero_unpaired: beta must be positive");
  return per_example(batch, beta, [&](Dual D, bool desirable) {
    return desirable ? 1 - sigmoid(beta * D) : sigmoid(beta * D);
  });
}

}  // namespace rlhf::objective
