// Statistics of the benchmark: see stats.h for the definitions.
#include "testbed/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf::testbed {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Type-7 (linear) quantile of sorted data.
double quantile_sorted(const std::vector<double>& x, double q) {
  const double h = q * static_cast<double>(x.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(h));
  if (i + 1 >= x.size()) return x.back();
  return x[i] + (h - static_cast<double>(i)) * (x[i + 1] - x[i]);
}

void check_bootstrap_args(int resamples, double level) {
  if (resamples < 1) throw InputError("bootstrap: resamples must be >= 1, got " + std::to_string(resamples));
  if (!(level > 0 && level < 1)) throw InputError("bootstrap: level must be in (0, 1), got " + std::to_string(level));
}

MeanCi percentile_ci(double mean, std::vector<double>& means, double level) {
  std::sort(means.begin(), means.end());
  const double a = (1 - level) / 2;
  return {mean, quantile_sorted(means, a), quantile_sorted(means, 1 - a)};
}

}  // namespace

MeanCi bootstrap_mean_ci(const std::vector<double>& values, uint64_t seed, int resamples, double level) {
  check_bootstrap_args(resamples, level);
  if (values.empty()) throw InputError("bootstrap: no values");
  const size_t n = values.size();
  double mean = 0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(n);
  Rng rng(seed, 0xb007);
  std::vector<double> means(resamples);
  for (double& m : means) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += values[rng.below(n)];
    m = s / static_cast<double>(n);
  }
  return percentile_ci(mean, means, level);
}

MeanCi bootstrap_mean_ci_two_level(const std::vector<std::vector<double>>& values, uint64_t seed,
                                   BootstrapDesign design, int resamples, double level) {
  check_bootstrap_args(resamples, level);
  const size_t S = values.size();
  if (S == 0) throw InputError("bootstrap: no seeds");
  double total = 0;
  size_t cells = 0;
  for (const auto& row : values) {
    if (row.empty()) throw InputError("bootstrap: a seed without values");
    if (design == BootstrapDesign::crossed && row.size() != values[0].size())
      throw InputError("bootstrap (crossed): every seed needs the same prompts; rows have " +
                       std::to_string(values[0].size()) + " and " + std::to_string(row.size()) + " values");
    for (double v : row) total += v;
    cells += row.size();
  }
  const double mean = total / static_cast<double>(cells);
  Rng rng(seed, 0xb008);
  std::vector<double> means(resamples);
  std::vector<size_t> seeds(S), prompts;
  for (double& m : means) {
    for (size_t& s : seeds) s = rng.below(S);
    double sum = 0;
    size_t count = 0;
    if (design == BootstrapDesign::crossed) {
      const size_t P = values[0].size();
      prompts.resize(P);
      for (size_t& p : prompts) p = rng.below(P);
      for (size_t s : seeds)
        for (size_t p : prompts) sum += values[s][p];
      count = S * P;
    } else {
      for (size_t s : seeds) {
        const auto& row = values[s];
        for (size_t k = 0; k < row.size(); ++k) sum += row[rng.below(row.size())];
        count += row.size();
      }
    }
    m = sum / static_cast<double>(count);
  }
  return percentile_ci(mean, means, level);
}

double seed_estimate(const SeedGroups& groups) {
  double e = 0;
  for (const auto& g : groups) {
    if (g.empty()) throw InputError("bootstrap: an empty group");
    double sum = 0;
    for (double v : g) sum += v;
    e += sum / static_cast<double>(g.size());
  }
  return e;
}

MeanCi bootstrap_effect_ci(const std::vector<SeedGroups>& seeds, uint64_t seed, int resamples, double level) {
  check_bootstrap_args(resamples, level);
  const size_t S = seeds.size();
  if (S == 0) throw InputError("bootstrap: no seeds");
  double mean = 0;
  for (const auto& g : seeds) {
    if (g.empty()) throw InputError("bootstrap: a seed without groups");
    mean += seed_estimate(g) / static_cast<double>(S);
  }
  Rng rng(seed, 0xb009);
  std::vector<double> means(resamples);
  for (double& m : means) {
    double sum = 0;
    for (size_t k = 0; k < S; ++k)
      for (const auto& g : seeds[rng.below(S)]) {
        double gs = 0;
        for (size_t u = 0; u < g.size(); ++u) gs += g[rng.below(g.size())];
        sum += gs / static_cast<double>(g.size());
      }
    m = sum / static_cast<double>(S);
  }
  return percentile_ci(mean, means, level);
}

// ---- Frontier ------------------------------------------------------------------------------------

std::vector<KlGold> pareto_frontier(const std::vector<KlGold>& points) {
  std::vector<KlGold> p;
  for (const KlGold& x : points)
    if (std::isfinite(x.kl) && std::isfinite(x.gold)) p.push_back(x);
  // By KL, and at equal KL the best gold first, so the sweep keeps it.
  std::sort(p.begin(), p.end(), [](const KlGold& a, const KlGold& b) {
    return a.kl != b.kl ? a.kl < b.kl : a.gold > b.gold;
  });
  std::vector<KlGold> f;
  for (const KlGold& x : p)
    if (f.empty() || x.gold > f.back().gold) {
      if (!f.empty() && f.back().kl == x.kl) continue;  // same KL, lower gold
      f.push_back(x);
    }
  return f;
}

double frontier_gold_at(const std::vector<KlGold>& f, double x) {
  if (f.empty() || !(x >= f.front().kl) || !(x <= f.back().kl)) return kNaN;
  for (size_t i = 0; i + 1 < f.size(); ++i)
    if (x <= f[i + 1].kl) {
      const double w = (x - f[i].kl) / (f[i + 1].kl - f[i].kl);
      return f[i].gold + w * (f[i + 1].gold - f[i].gold);
    }
  return f.back().gold;  // x == the only point's KL
}

double frontier_area(const std::vector<KlGold>& f, double x_max) {
  if (f.empty()) return kNaN;
  if (!(x_max > 0)) return 0;
  double area = 0;
  // Below the first point: flat at its gold.
  area += std::min(x_max, std::max(f.front().kl, 0.0)) * f.front().gold;
  for (size_t i = 0; i + 1 < f.size(); ++i) {
    const double a = std::max(f[i].kl, 0.0), b = std::min(f[i + 1].kl, x_max);
    if (b <= a) continue;
    const double ga = frontier_gold_at(f, a), gb = frontier_gold_at(f, b);
    area += 0.5 * (ga + gb) * (b - a);
  }
  // Beyond the last point: flat at the best gold reached.
  if (x_max > f.back().kl) area += (x_max - std::max(f.back().kl, 0.0)) * f.back().gold;
  return area;
}

// ---- Over-optimization -----------------------------------------------------------------------------

namespace {

// Least squares R ~ alpha x1 + beta x2 (no intercept) over the points with KL > 0.
OveroptFit fit_two(const std::vector<double>& kl, const std::vector<double>& gold, bool rl) {
  if (kl.size() != gold.size())
    throw InputError("over-optimization fit: " + std::to_string(kl.size()) + " KL values but " +
                     std::to_string(gold.size()) + " gold values");
  double s11 = 0, s12 = 0, s22 = 0, s1y = 0, s2y = 0;
  std::vector<double> d_used, y_used;
  for (size_t i = 0; i < kl.size(); ++i) {
    if (!(kl[i] >= 0) || !std::isfinite(kl[i]) || !std::isfinite(gold[i]))
      throw InputError("over-optimization fit: point " + std::to_string(i) + " has KL " + std::to_string(kl[i]) +
                       ", gold " + std::to_string(gold[i]) + " (KL must be finite and >= 0)");
    const double d = std::sqrt(kl[i]);
    d_used.push_back(d);
    y_used.push_back(gold[i]);
    if (d == 0) continue;  // both regressors vanish at d = 0
    const double x1 = d, x2 = rl ? -d * std::log(d) : -d * d;
    s11 += x1 * x1, s12 += x1 * x2, s22 += x2 * x2, s1y += x1 * gold[i], s2y += x2 * gold[i];
  }
  const double det = s11 * s22 - s12 * s12;
  if (!(std::abs(det) > 1e-12 * std::max(1.0, s11 * s22)))
    throw InputError("over-optimization fit: fewer than two distinct KL > 0 values (" + std::to_string(kl.size()) +
                     " points); alpha and beta are not determined");
  OveroptFit r;
  r.alpha = (s22 * s1y - s12 * s2y) / det;
  r.beta = (s11 * s2y - s12 * s1y) / det;
  r.n = static_cast<int64_t>(d_used.size());
  double mean = 0;
  for (double y : y_used) mean += y;
  mean /= static_cast<double>(y_used.size());
  double ss_res = 0, ss_tot = 0;
  for (size_t i = 0; i < d_used.size(); ++i) {
    const double pred = rl ? overopt_rl_curve(r.alpha, r.beta, d_used[i]) : overopt_bon_curve(r.alpha, r.beta, d_used[i]);
    ss_res += (y_used[i] - pred) * (y_used[i] - pred);
    ss_tot += (y_used[i] - mean) * (y_used[i] - mean);
  }
  r.r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : (ss_res == 0 ? 1.0 : kNaN);
  if (r.beta > 0) {
    r.d_peak = rl ? std::exp(r.alpha / r.beta - 1) : r.alpha / (2 * r.beta);
    r.d_peak = std::max(r.d_peak, 0.0);  // BoN with alpha < 0: the best is to stay at d = 0
    r.kl_peak = r.d_peak * r.d_peak;
    r.gold_peak = rl ? overopt_rl_curve(r.alpha, r.beta, r.d_peak) : overopt_bon_curve(r.alpha, r.beta, r.d_peak);
  } else {
    r.d_peak = r.kl_peak = r.gold_peak = kInf;
  }
  return r;
}

}  // namespace

double overopt_bon_curve(double alpha, double beta, double d) { return d * (alpha - beta * d); }
double overopt_rl_curve(double alpha, double beta, double d) { return d > 0 ? d * (alpha - beta * std::log(d)) : 0.0; }

OveroptFit fit_overopt_bon(const std::vector<double>& kl, const std::vector<double>& gold) { return fit_two(kl, gold, false); }
OveroptFit fit_overopt_rl(const std::vector<double>& kl, const std::vector<double>& gold) { return fit_two(kl, gold, true); }

// ---- ECE -------------------------------------------------------------------------------------------

double expected_calibration_error(const std::vector<double>& pred, const std::vector<double>& target, int bins) {
  if (pred.size() != target.size())
    throw InputError("ECE: " + std::to_string(pred.size()) + " predictions but " + std::to_string(target.size()) +
                     " targets");
  if (bins < 1) throw InputError("ECE: bins must be >= 1, got " + std::to_string(bins));
  if (pred.empty()) return 0;
  std::vector<double> sp(bins, 0), st(bins, 0);
  std::vector<int64_t> n(bins, 0);
  for (size_t i = 0; i < pred.size(); ++i) {
    if (!(pred[i] >= 0 && pred[i] <= 1))
      throw InputError("ECE: prediction " + std::to_string(i) + " is " + std::to_string(pred[i]) + ", outside [0, 1]");
    const int b = std::min(bins - 1, static_cast<int>(pred[i] * bins));
    sp[b] += pred[i], st[b] += target[i], ++n[b];
  }
  double ece = 0;
  for (int b = 0; b < bins; ++b)
    if (n[b]) ece += std::abs(sp[b] - st[b]) / static_cast<double>(pred.size());  // (n_b/N)|mean p - mean t|
  return ece;
}

double bon_kl_bound(int64_t n) {
  if (n < 1) throw InputError("best-of-n KL bound: n must be >= 1, got " + std::to_string(n));
  const double x = static_cast<double>(n);
  return std::log(x) - (x - 1) / x;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (c < 0 || c > n || k < 1 || k > n)
    throw InputError("pass@k: need 0 <= c <= n and 1 <= k <= n, got n " + std::to_string(n) + ", c " +
                     std::to_string(c) + ", k " + std::to_string(k));
  if (n - c < k) return 1.0;  // every k-subset holds a pass
  double fail = 1;
  for (int64_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail;
}

}  // namespace rlhf::testbed
