// The pairwise loss table. Each entry is its formula from docs/algorithms.md §3 written on Dual
// numbers; pairwise_loss() evaluates it twice, seeding the chosen and then the rejected
// log-prob, to get both derivatives exactly.
#include "objective/pairwise.h"

#include <algorithm>
#include <numeric>

#include "objective/dual.h"
#include "tensor/error.h"

namespace rlhf::objective {

namespace {

// One pair as the formulas see it: policy log-probs (carrying the derivative), log-ratios
// against the reference, lengths.
struct Vars {
  Dual lw, ll;  // L_theta(y_w), L_theta(y_l)
  Dual Dw, Dl;  // L_theta - L_ref
  double nw, nl;
};

using LossFn = Dual (*)(const Vars&, const PairParams&);

enum class Reduction {
  pair_mean,    // mean over pairs of the per-pair loss
  batch_sorted, // aot variants: the pairs' margins are sorted across the batch first
  token_pooled, // sft: sum over the batch divided by the batch's chosen tokens (TRL's pooling)
};

struct Entry {
  const char* name;
  LossFn fn;
  Reduction reduction;
};

Dual h_of(const Vars& x) { return x.Dw - x.Dl; }

const Entry kLosses[] = {
    // DPO: -log sigma(beta h)
    {"sigmoid", [](const Vars& x, const PairParams& p) { return -log_sigmoid(p.beta * h_of(x)); }, Reduction::pair_mean},
    // Conservative DPO (Mitchell): soft target 1 - eps
    {"cdpo",
     [](const Vars& x, const PairParams& p) {
       const Dual z = p.beta * h_of(x);
       return -(1 - p.label_smoothing) * log_sigmoid(z) - p.label_smoothing * log_sigmoid(-z);
     },
     Reduction::pair_mean},
    // Robust DPO (Chowdhury et al.): unbiased under flip rate eps; unbounded below
    {"robust",
     [](const Vars& x, const PairParams& p) {
       const Dual z = p.beta * h_of(x);
       const double e = p.label_smoothing;
       return ((1 - e) * -log_sigmoid(z) - e * -log_sigmoid(-z)) / (1 - 2 * e);
     },
     Reduction::pair_mean},
    // IPO on length-averaged log-ratios (TRL's convention): (hbar - 1/(2 tau))^2
    {"ipo",
     [](const Vars& x, const PairParams& p) { return square(x.Dw / x.nw - x.Dl / x.nl - 1 / (2 * p.beta)); }, Reduction::pair_mean},
    // IPO on summed log-ratios (the paper's and eric-mitchell's convention)
    {"ipo_sum", [](const Vars& x, const PairParams& p) { return square(h_of(x) - 1 / (2 * p.beta)); }, Reduction::pair_mean},
    // RSO's normalised hinge: max(0, 1 - beta h)
    {"hinge", [](const Vars& x, const PairParams& p) { return relu(1 - p.beta * h_of(x)); }, Reduction::pair_mean},
    // EXO: KL(Bernoulli(sigma(beta h)) || Bernoulli(1 - eps))
    {"exo_pair",
     [](const Vars& x, const PairParams& p) {
       const Dual z = p.beta * h_of(x);
       const Dual pr = sigmoid(z);
       const double e = p.label_smoothing;
       return pr * (log_sigmoid(z) - std::log(1 - e)) + (1 - pr) * (log_sigmoid(-z) - std::log(e));
     },
     Reduction::pair_mean},
    // NCA
    {"nca_pair",
     [](const Vars& x, const PairParams& p) {
       return -log_sigmoid(p.beta * x.Dw) - 0.5 * log_sigmoid(-p.beta * x.Dw) - 0.5 * log_sigmoid(-p.beta * x.Dl);
     },
     Reduction::pair_mean},
    // BCO on pairs
    {"bco_pair",
     [](const Vars& x, const PairParams& p) {
       return -log_sigmoid(p.beta * x.Dw - p.bco_delta) - log_sigmoid(-(p.beta * x.Dl - p.bco_delta));
     },
     Reduction::pair_mean},
    // SPPO with hard win probabilities
    {"sppo_hard",
     [](const Vars& x, const PairParams& p) {
       return square(x.Dw - 1 / (2 * p.beta)) + square(x.Dl + 1 / (2 * p.beta));
     },
     Reduction::pair_mean},
    // APO: chosen better (zero) or worse (down) than the model's own outputs
    {"apo_zero",
     [](const Vars& x, const PairParams& p) { return (1 - sigmoid(p.beta * x.Dw)) + sigmoid(p.beta * x.Dl); }, Reduction::pair_mean},
    {"apo_down",
     [](const Vars& x, const PairParams& p) { return sigmoid(p.beta * x.Dw) + (1 - sigmoid(p.beta * h_of(x))); },
     Reduction::pair_mean},
    // DiscoPOP / LRML: log-ratio-modulated mix of the logistic and exponential losses
    {"discopop",
     [](const Vars& x, const PairParams& p) {
       const Dual z = p.beta * h_of(x);
       const Dual m = sigmoid(z / p.discopop_tau);
       return (1 - m) * -log_sigmoid(z) + m * exp(-z);
     },
     Reduction::pair_mean},
    // Length-normalised DPO (Tulu 3)
    {"sigmoid_norm",
     [](const Vars& x, const PairParams& p) { return -log_sigmoid(p.beta * (x.Dw / x.nw - x.Dl / x.nl)); }, Reduction::pair_mean},
    // R-DPO: DPO with a penalty on the length difference
    {"rdpo",
     [](const Vars& x, const PairParams& p) {
       return -log_sigmoid(p.beta * h_of(x) - p.rdpo_alpha * (x.nw - x.nl));
     },
     Reduction::pair_mean},
    // SimPO: reference-free, length-normalised, target margin gamma
    {"simpo",
     [](const Vars& x, const PairParams& p) {
       return -log_sigmoid(p.beta * x.lw / x.nw - p.beta * x.ll / x.nl - p.simpo_gamma);
     },
     Reduction::pair_mean},
    // ORPO: token-mean NLL on chosen + lambda * odds-ratio term (lambda = beta), no reference
    {"orpo",
     [](const Vars& x, const PairParams& p) {
       const Dual mw = x.lw / x.nw, ml = x.ll / x.nl;
       const Dual log_odds = (mw - log1mexp(mw)) - (ml - log1mexp(ml));
       return -mw - p.beta * log_sigmoid(log_odds);
     },
     Reduction::pair_mean},
    // NLL on chosen, per token pooled over the batch (RPO's and MPO's extra term, as TRL pools it)
    {"sft", [](const Vars& x, const PairParams&) { return -x.lw; }, Reduction::token_pooled},
    // AOT: distributional alignment; x carries the sorted policy and reference margins
    {"aot",
     [](const Vars& x, const PairParams& p) {
       const Dual z = p.beta * (x.Dw - x.Dl);
       return -(1 - p.label_smoothing) * log_sigmoid(z) - p.label_smoothing * log_sigmoid(-z);
     },
     Reduction::batch_sorted},
    {"aot_unpaired",
     [](const Vars& x, const PairParams& p) {
       const Dual z = p.beta * (x.Dw - x.Dl);
       return -(1 - p.label_smoothing) * log_sigmoid(z) - p.label_smoothing * log_sigmoid(-z);
     },
     Reduction::batch_sorted},
};

const Entry& find(const std::string& name) {
  for (const Entry& e : kLosses)
    if (name == e.name) return e;
  std::string all;
  for (const Entry& e : kLosses) all += (all.empty() ? "" : ", ") + std::string(e.name);
  throw InputError("loss_type '" + name + "' is not known (expected one of: " + all + ")");
}

void check_params(const std::string& name, const PairParams& p) {
  if (!(p.beta > 0)) throw InputError("loss '" + name + "': beta must be positive");
  const double e = p.label_smoothing;
  if (name == "exo_pair" && !(e > 0 && e < 0.5))
    throw InputError("loss 'exo_pair': label_smoothing must be in (0, 0.5) (recommended 1e-3)");
  if (name == "robust" && !(e >= 0 && e < 0.5)) throw InputError("loss 'robust': label_smoothing must be in [0, 0.5)");
  if ((name == "cdpo" || name == "aot" || name == "aot_unpaired") && !(e >= 0 && e < 0.5))
    throw InputError("loss '" + name + "': label_smoothing must be in [0, 0.5)");
  if (name == "discopop" && !(p.discopop_tau > 0)) throw InputError("loss 'discopop': discopop_tau must be positive");
}

// Evaluates one entry on one pair, with the derivative seeded on the chosen or rejected side.
double eval(const Entry& e, const PairInputs& in, const PairParams& p, int seed, double* deriv) {
  const Dual lw(in.logp_chosen, seed == 0 ? 1.0 : 0.0), ll(in.logp_rejected, seed == 1 ? 1.0 : 0.0);
  const Vars x{lw, ll, lw - in.ref_chosen, ll - in.ref_rejected, in.len_chosen, in.len_rejected};
  const Dual r = e.fn(x, p);
  *deriv = r.d;
  return r.v;
}

}  // namespace

std::vector<std::string> pairwise_loss_names() {
  std::vector<std::string> names;
  for (const Entry& e : kLosses) names.push_back(e.name);
  return names;
}

bool is_pairwise_loss(const std::string& name) {
  return std::any_of(std::begin(kLosses), std::end(kLosses), [&](const Entry& e) { return name == e.name; });
}

PairBatchResult pairwise_loss(const std::vector<std::pair<std::string, double>>& weighted_losses,
                              const std::vector<PairInputs>& pairs, const PairParams& params) {
  for (const auto& [name, weight] : weighted_losses) {  // names and parameters, even for no pairs
    find(name);
    check_params(name, params);
  }
  PairBatchResult out;
  out.grads.resize(pairs.size());
  if (pairs.empty()) return out;
  for (const PairInputs& in : pairs)
    if (!(in.len_chosen > 0 && in.len_rejected > 0))
      throw InputError("pairwise loss: every response needs at least one scored token");
  const double inv_n = 1.0 / static_cast<double>(pairs.size());
  for (const auto& [name, weight] : weighted_losses) {
    const Entry& e = find(name);
    check_params(name, params);
    if (e.reduction != Reduction::batch_sorted) {
      double scale = inv_n;
      if (e.reduction == Reduction::token_pooled) {
        double tokens = 0;
        for (const PairInputs& q : pairs) tokens += q.len_chosen;
        scale = 1.0 / tokens;
      }
      for (size_t i = 0; i < pairs.size(); ++i) {
        double dw = 0, dl = 0;
        const double loss = eval(e, pairs[i], params, 0, &dw);
        eval(e, pairs[i], params, 1, &dl);
        out.loss += weight * loss * scale;
        out.grads[i].loss += weight * loss * scale;
        out.grads[i].d_chosen += weight * dw * scale;
        out.grads[i].d_rejected += weight * dl * scale;
      }
      continue;
    }
    // AOT sorts, across the batch, the policy margin L(y_w) - L(y_l) and the reference margin
    // (aot), or the chosen and the rejected log-ratios (aot_unpaired), and matches them by rank.
    // The sort is piecewise constant, so gradients flow to the element at each rank.
    const bool unpaired = std::string(name) == "aot_unpaired";
    const size_t n = pairs.size();
    std::vector<double> a(n), b(n);
    for (size_t i = 0; i < n; ++i) {
      const PairInputs& q = pairs[i];
      a[i] = unpaired ? q.logp_chosen - q.ref_chosen : q.logp_chosen - q.logp_rejected;
      b[i] = unpaired ? q.logp_rejected - q.ref_rejected : q.ref_chosen - q.ref_rejected;
    }
    std::vector<size_t> ia(n), ib(n);
    std::iota(ia.begin(), ia.end(), 0);
    std::iota(ib.begin(), ib.end(), 0);
    std::stable_sort(ia.begin(), ia.end(), [&](size_t x, size_t y) { return a[x] < a[y]; });
    std::stable_sort(ib.begin(), ib.end(), [&](size_t x, size_t y) { return b[x] < b[y]; });
    for (size_t r = 0; r < n; ++r) {
      // The loss at rank r on d = a_(r) - b_(r); derivatives seeded on one side at a time.
      const double ar = a[ia[r]], br = b[ib[r]];
      const Dual fa = e.fn(Vars{Dual(ar, 1.0), Dual(br), Dual(ar, 1.0), Dual(br), 1, 1}, params);
      out.loss += weight * fa.v * inv_n;
      out.grads[ia[r]].loss += weight * fa.v * inv_n;
      out.grads[ia[r]].d_chosen += weight * fa.d * inv_n;
      if (unpaired) {  // b = L(y_l) - ref: the rejected side of the pair at rank r of b
        const Dual fb = e.fn(Vars{Dual(ar), Dual(br, 1.0), Dual(ar), Dual(br, 1.0), 1, 1}, params);
        out.grads[ib[r]].d_rejected += weight * fb.d * inv_n;
      } else {  // a = L(y_w) - L(y_l): the rejected log-prob enters with a minus sign
        out.grads[ia[r]].d_rejected -= weight * fa.d * inv_n;
      }
    }
  }
  return out;
}

std::vector<std::pair<std::string, double>> pairwise_metrics(const std::vector<PairInputs>& pairs, double beta) {
  double rc = 0, rr = 0, acc = 0, lc = 0, lr = 0;
  const double inv_n = pairs.empty() ? 0.0 : 1.0 / static_cast<double>(pairs.size());
  for (const PairInputs& q : pairs) {
    const double c = beta * (q.logp_chosen - q.ref_chosen), r = beta * (q.logp_rejected - q.ref_rejected);
    rc += c * inv_n;
    rr += r * inv_n;
    acc += (c > r ? 1.0 : 0.0) * inv_n;
    lc += q.logp_chosen * inv_n;
    lr += q.logp_rejected * inv_n;
  }
  return {{"rewards/chosen", rc},   {"rewards/rejected", rr}, {"rewards/accuracies", acc},
          {"rewards/margins", rc - rr}, {"logps/chosen", lc},     {"logps/rejected", lr}};
}

}  // namespace rlhf::objective
