// Policy-gradient objectives. Gradients are written by hand next to each value: every loss is a
// token (or sequence) sum of clipped ratios, squares and exponentials, whose derivatives are one
// line each; the finite-difference tests check them.
#include "objective/policy_gradient.h"

#include <algorithm>
#include <cmath>

#include "objective/kl_estimators.h"
#include "tensor/error.h"

namespace rlhf::objective {

namespace {

void check_size(size_t got, size_t want, const std::string& what) {
  if (got != want)
    throw InputError(what + ": " + std::to_string(got) + " entries where the layout has " + std::to_string(want));
}

// max(a, b) with derivatives da, db. The branches tie where their derivatives agree (the ratio or
// value inside its clip range), so which one a tie takes does not matter.
std::pair<double, double> max_with_grad(double a, double da, double b, double db) {
  return a >= b ? std::pair{a, da} : std::pair{b, db};
}

// max(-A rho, -A clip(rho, 1 - lo, 1 + hi)) with rho = exp(log_ratio), and its derivative in
// log_ratio (d rho / d log_ratio = rho; clip passes the derivative inside its range, bounds included).
struct Surrogate {
  double value, d_log_ratio, rho;
  bool clipped_larger;
};
Surrogate clipped_surrogate(double A, double log_ratio, double lo, double hi) {
  const double rho = std::exp(log_ratio);
  const double rho_c = std::clamp(rho, 1 - lo, 1 + hi);
  const double a = -A * rho, b = -A * rho_c;
  const auto [v, d] = max_with_grad(a, -A * rho, b, (rho >= 1 - lo && rho <= 1 + hi) ? -A * rho : 0.0);
  return {v, d, rho, b > a};
}

struct ValueTerm {
  double loss = 0, clipfrac = 0;
  std::vector<double> d;  // d loss / d V per slot
};

ValueTerm value_term(const ValueInputs& v, double c) {
  const size_t n = v.slots.size();
  check_size(v.values.size(), n, "values");
  check_size(v.returns.size(), n, "returns");
  const bool clipped = std::isfinite(c);
  if (clipped) check_size(v.values_old.size(), n, "values_old");
  ValueTerm t;
  t.d.assign(n, 0.0);
  if (n == 0) return t;
  const double inv_n = 1.0 / static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) {
    const double V = v.values[i], R = v.returns[i];
    const double lo = clipped ? v.values_old[i] - c : V, hi = clipped ? v.values_old[i] + c : V;
    const double Vc = std::clamp(V, lo, hi);
    const double l1 = (V - R) * (V - R), l2 = (Vc - R) * (Vc - R);
    const auto [l, dl] = max_with_grad(l1, 2 * (V - R), l2, V >= lo && V <= hi ? 2 * (Vc - R) : 0.0);
    t.loss += 0.5 * l * inv_n;
    t.d[i] = 0.5 * dl * inv_n;
    t.clipfrac += (l2 > l1 ? 1.0 : 0.0) * inv_n;
  }
  return t;
}

std::vector<double> sequence_sums(const Ragged& r, const std::vector<double>& x) {
  std::vector<double> out(r.sequences(), 0.0);
  for (size_t s = 0; s < r.sequences(); ++s)
    for (size_t i = r.begin(s); i < r.end(s); ++i) out[s] += x[i];
  return out;
}

}  // namespace

bool is_value_metric(const std::string& name) { return name == "loss/value_avg" || name == "val/clipfrac_avg"; }

PolicyLossResult ppo_loss(const PpoLossInputs& in, const PpoLossParams& p) {
  const size_t n = in.tokens.size();
  check_size(in.lp.size(), n, "ppo lp");
  check_size(in.lp_old.size(), n, "ppo lp_old");
  check_size(in.advantages.size(), n, "ppo advantages");
  if (p.entropy_coef != 0 || !in.entropy.empty()) check_size(in.entropy.size(), n, "ppo entropy");
  if (n == 0) throw InputError("ppo loss: the minibatch has no response tokens");
  PolicyLossResult r;
  r.d_logp.assign(n, 0.0);
  const double inv_n = 1.0 / static_cast<double>(n);
  double pg = 0, clipfrac = 0, approxkl = 0, ratio = 0;
  for (size_t i = 0; i < n; ++i) {
    const double log_ratio = in.lp[i] - in.lp_old[i];
    const Surrogate s = clipped_surrogate(in.advantages[i], log_ratio, p.cliprange, p.cliprange);
    pg += s.value * inv_n;
    r.d_logp[i] = s.d_log_ratio * inv_n;
    clipfrac += (s.clipped_larger ? 1.0 : 0.0) * inv_n;
    approxkl += 0.5 * log_ratio * log_ratio * inv_n;
    ratio += s.rho * inv_n;
  }
  const ValueTerm vf = value_term(in.value, p.cliprange_value);
  r.value_loss = p.vf_coef * vf.loss;
  r.loss = pg + r.value_loss;
  r.d_value = vf.d;
  for (double& d : r.d_value) d *= p.vf_coef;
  r.metrics = {{"loss/policy_avg", pg},          {"loss/value_avg", vf.loss},   {"policy/approxkl_avg", approxkl},
               {"policy/clipfrac_avg", clipfrac}, {"val/clipfrac_avg", vf.clipfrac}, {"val/ratio", ratio}};
  if (!in.entropy.empty()) {
    double mean_entropy = 0;
    for (double e : in.entropy) mean_entropy += e * inv_n;
    r.loss -= p.entropy_coef * mean_entropy;
    r.metrics.emplace_back("policy/entropy_avg", mean_entropy);
    if (p.entropy_coef != 0) r.d_entropy.assign(n, -p.entropy_coef * inv_n);
  }
  return r;
}

PolicyLossResult apa_loss(const ApaInputs& in, const ApaParams& p) {
  const size_t n = in.tokens.size();
  check_size(in.lp.size(), n, "apa lp");
  check_size(in.lp_init.size(), n, "apa lp_init");
  check_size(in.advantages.size(), n, "apa advantages");
  if (n == 0) throw InputError("apa loss: the minibatch has no response tokens");
  if (!(p.lambda > 0)) throw InputError("apa loss: lambda must be positive");
  PolicyLossResult r;
  r.d_logp.assign(n, 0.0);
  const double inv_n = 1.0 / static_cast<double>(n);
  double pol = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = in.lp[i] - in.lp_init[i] - in.advantages[i] / p.lambda;
    pol += e * e * inv_n;
    r.d_logp[i] = 2 * e * inv_n;
  }
  const ValueTerm vf = value_term(in.value, p.cliprange_value);
  r.value_loss = p.vf_coef * vf.loss;
  r.loss = pol + r.value_loss;
  r.d_value = vf.d;
  for (double& d : r.d_value) d *= p.vf_coef;
  r.metrics = {{"loss/policy_avg", pol}, {"loss/value_avg", vf.loss}};
  return r;
}

SequenceSurrogate sequence_surrogate_from_name(const std::string& name) {
  if (name == "log_prob") return SequenceSurrogate::log_prob;
  if (name == "clipped_ratio") return SequenceSurrogate::clipped_ratio;
  throw InputError("sequence surrogate '" + name + "' is not known (expected log_prob or clipped_ratio)");
}

PolicyLossResult sequence_pg_loss(const SequencePgInputs& in, const SequencePgParams& p) {
  const size_t S = in.tokens.sequences();
  check_size(in.lp.size(), in.tokens.size(), "sequence pg lp");
  check_size(in.advantages.size(), S, "sequence pg advantages");
  if (S == 0) throw InputError("sequence pg loss: no sequences");
  const bool clipped = p.surrogate == SequenceSurrogate::clipped_ratio;
  if (clipped) check_size(in.lp_old.size(), in.tokens.size(), "sequence pg lp_old");
  const std::vector<double> L = sequence_sums(in.tokens, in.lp);
  const std::vector<double> L_old = clipped ? sequence_sums(in.tokens, in.lp_old) : std::vector<double>{};
  PolicyLossResult r;
  r.d_logp.assign(in.tokens.size(), 0.0);
  const double inv_s = 1.0 / static_cast<double>(S);
  double low = 0, high = 0, region = 0;
  for (size_t s = 0; s < S; ++s) {
    const double A = in.advantages[s];
    double d;  // d loss / d L_s
    if (clipped) {
      const Surrogate su = clipped_surrogate(A, L[s] - L_old[s], p.epsilon_low, p.epsilon_high);
      r.loss += su.value * inv_s;
      d = su.d_log_ratio * inv_s;
      const bool lo = su.rho < 1 - p.epsilon_low && A < 0, hi = su.rho > 1 + p.epsilon_high && A > 0;
      low += lo * inv_s, high += hi * inv_s, region += (lo || hi) * inv_s;
    } else {
      r.loss -= A * L[s] * inv_s;
      d = -A * inv_s;
    }
    std::fill(r.d_logp.begin() + in.tokens.begin(s), r.d_logp.begin() + in.tokens.end(s), d);
  }
  r.metrics = {{"loss/policy_avg", r.loss}};
  if (clipped)
    r.metrics.insert(r.metrics.end(),
                     {{"clip_ratio/low_mean", low}, {"clip_ratio/high_mean", high}, {"clip_ratio/region_mean", region}});
  return r;
}

PolicyLossResult grpo_loss(const GrpoInputs& in, const GrpoParams& p) {
  const std::string& type = p.loss_type;
  if (type != "grpo" && type != "bnpo" && type != "dr_grpo" && type != "dapo")
    throw InputError("GRPO loss_type '" + type + "' is not known (expected grpo, bnpo, dr_grpo or dapo)");
  const Ragged& tok = in.tokens;
  const size_t n = tok.size(), S = tok.sequences();
  check_size(in.lp.size(), n, "grpo lp");
  if (!in.lp_old.empty()) check_size(in.lp_old.size(), n, "grpo lp_old");
  if (p.beta != 0) check_size(in.lp_ref.size(), n, "grpo lp_ref (beta != 0)");
  check_size(in.advantages.size(), S, "grpo advantages");
  if (S == 0) throw InputError("grpo loss: no sequences");
  if (type == "dr_grpo" && p.max_completion_length == 0) throw InputError("dr_grpo needs max_completion_length > 0");

  // Per-token weight of l_t in the aggregate (TRL clamps empty denominators to 1).
  const double tokens = std::max<double>(1.0, static_cast<double>(n));
  auto weight = [&](size_t s) {
    if (type == "grpo") return 1.0 / (static_cast<double>(S) * std::max<double>(1.0, static_cast<double>(tok.length(s))));
    if (type == "bnpo") return 1.0 / tokens;
    if (type == "dr_grpo") return 1.0 / (static_cast<double>(S) * static_cast<double>(p.max_completion_length));
    return 1.0 / (p.num_items_in_batch > 0 ? p.num_items_in_batch : tokens);  // dapo
  };

  PolicyLossResult r;
  r.d_logp.assign(n, 0.0);
  double kl = 0, low = 0, high = 0, region = 0;
  for (size_t s = 0; s < S; ++s) {
    const double A = in.advantages[s], w = weight(s);
    for (size_t i = tok.begin(s); i < tok.end(s); ++i) {
      const double log_ratio = in.lp_old.empty() ? 0.0 : in.lp[i] - in.lp_old[i];
      const Surrogate su = clipped_surrogate(A, log_ratio, p.epsilon_low, p.epsilon_high);
      double l = su.value, dl = su.d_log_ratio;
      if (p.beta != 0) {
        double k = kl_value(KlEstimator::k3, in.lp[i], in.lp_ref[i]);
        double dk = kl_grad(KlEstimator::k3, in.lp[i], in.lp_ref[i]);
        if (p.use_bias_correction_kl) dk = dk * su.rho + k * su.rho, k *= su.rho;
        l += p.beta * k, dl += p.beta * dk;
        kl += k / tokens;
      }
      r.loss += l * w;
      r.d_logp[i] = dl * w;
      const bool lo = su.rho < 1 - p.epsilon_low && A < 0, hi = su.rho > 1 + p.epsilon_high && A > 0;
      low += lo / tokens, high += hi / tokens, region += (lo || hi) / tokens;
    }
  }
  r.metrics = {{"clip_ratio/low_mean", low}, {"clip_ratio/high_mean", high}, {"clip_ratio/region_mean", region}};
  if (p.beta != 0) r.metrics.emplace_back("kl", kl);
  return r;
}

}  // namespace rlhf::objective
