// Statistics of the benchmark (docs/testbed.md §6, §7 "Over-optimization"): bootstrap
// confidence intervals, the reward–KL frontier, Gao et al.'s over-optimization fits, expected
// calibration error and the best-of-n KL bound. Pure functions on small arrays; no I/O.
//
// Example:
//   MeanCi ci = bootstrap_mean_ci(prompt_gold, /*seed=*/1);            // ci.mean, ci.lo, ci.hi
//   auto f = pareto_frontier({{0, 0.48}, {2.1, 0.61}, {4.0, 0.58}, {6.3, 0.70}});
//   double g5 = frontier_gold_at(f, 5.0);     // interpolated; NaN past KL 6.3
//   double auc = frontier_area(f, 10.0);      // flat at 0.70 from 6.3 to 10
//   OveroptFit fit = fit_overopt_bon(kl, gold_gain);                   // fit.alpha, fit.kl_peak
#pragma once

#include <cstdint>
#include <vector>

namespace rlhf::testbed {

// ---- Bootstrap (percentile method) -------------------------------------------------------------

struct MeanCi {
  double mean = 0;      // the plain mean of the data
  double lo = 0, hi = 0;  // percentile interval of the resampled means (type-7 quantiles)
};

// CI of the mean of `values` (one per unit, e.g. per prompt): `resamples` resamples of the units
// with replacement. Deterministic given the seed. InputError when values is empty or level is not
// in (0, 1); a single value gives lo = hi = mean.
MeanCi bootstrap_mean_ci(const std::vector<double>& values, uint64_t seed, int resamples = 2000, double level = 0.95);

// Two levels, values[s][p] for seed s and prompt p (the grand mean is over all cells).
//   nested:  resample seeds, then prompts within each drawn seed (each seed has its own prompts;
//            rows may differ in length);
//   crossed: resample seed indices and prompt indices independently and average the drawn grid
//            (every seed was evaluated on the same prompts: rows must have equal length).
// Both carry the variance between seeds and between prompts into the interval.
enum class BootstrapDesign { nested, crossed };
MeanCi bootstrap_mean_ci_two_level(const std::vector<std::vector<double>>& values, uint64_t seed,
                                   BootstrapDesign design = BootstrapDesign::crossed, int resamples = 2000,
                                   double level = 0.95);

// An effect measured on several seeds, each seed's estimate the sum of its groups' means. A group
// holds one comparison's per-unit values, already signed and weighted: a paired difference per
// prompt (arms evaluated on the same prompts of a seed), or one arm's values alone where the arms
// do not share units (e.g. two tasks). The interval resamples seeds, then each drawn seed's
// groups' units independently; the point estimate is the mean of the seeds' estimates.
// InputError when there are no seeds or a seed has no groups or an empty group.
using SeedGroups = std::vector<std::vector<double>>;
MeanCi bootstrap_effect_ci(const std::vector<SeedGroups>& seeds, uint64_t seed, int resamples = 2000,
                           double level = 0.95);
double seed_estimate(const SeedGroups& groups);  // the sum of the groups' means

// ---- Reward–KL frontier ------------------------------------------------------------------------

struct KlGold {
  double kl = 0, gold = 0;
  int64_t index = -1;  // the caller's index of the point, carried through pareto_frontier
};

// The upper Pareto frontier of (kl, gold) points (all checkpoints of all runs of a method): the
// points no other point beats with at most the same KL, sorted by KL, gold strictly increasing.
// Non-finite points are dropped.
std::vector<KlGold> pareto_frontier(const std::vector<KlGold>& points);

// Gold at KL = x on the frontier, by linear interpolation between its points. The frontier's
// points have increasing gold, so this is the best gold reachable at KL <= x up to the
// interpolation. NaN when x lies outside the KL range the method reached: above its largest KL
// (it never went that far, so it is not credited with a value there) or below its smallest (pass
// the starting policy at KL 0, which every method shares). NaN for an empty frontier.
double frontier_gold_at(const std::vector<KlGold>& frontier, double x);

// The area under the frontier on [0, x_max] (gold × nats; divide by x_max for the mean gold).
// Between frontier points: linear interpolation (trapezoids). Beyond the largest KL reached:
// held flat at the frontier's last (best) gold, since a KL budget need not be spent. Below the
// smallest KL (no point at 0): held flat at the first point's gold. NaN for an empty frontier.
double frontier_area(const std::vector<KlGold>& frontier, double x_max);

// ---- Over-optimization (Gao et al. 2022) --------------------------------------------------------

// With d = sqrt(KL) and R the gold gain over the initial policy (R = 0 at d = 0):
//   best-of-n:  R = d (alpha - beta d)        peak at d* = alpha / (2 beta), R* = alpha^2 / (4 beta)
//   RL:         R = d (alpha - beta log d)    dR/dd = alpha - beta log d - beta = 0
//                                             -> d* = exp(alpha / beta - 1), R* = beta d*
// Both are linear in (alpha, beta), fitted by least squares without intercept. r2 = 1 - SS_res /
// SS_tot with SS_tot about the mean of R. With beta <= 0 the curve has no maximum: d_peak,
// kl_peak and gold_peak are +infinity.
struct OveroptFit {
  double alpha = 0, beta = 0, r2 = 0;
  double d_peak = 0, kl_peak = 0, gold_peak = 0;
  int64_t n = 0;  // points used
};
// InputError when kl and gold differ in size, a KL is negative or non-finite, or fewer than two
// points with KL > 0 make the fit determined.
OveroptFit fit_overopt_bon(const std::vector<double>& kl, const std::vector<double>& gold_gain);
OveroptFit fit_overopt_rl(const std::vector<double>& kl, const std::vector<double>& gold_gain);
// The fitted curves, for plots.
double overopt_bon_curve(double alpha, double beta, double d);
double overopt_rl_curve(double alpha, double beta, double d);

// ---- Calibration ---------------------------------------------------------------------------------

// Expected calibration error of predicted probabilities against targets in [0, 1] (0/1 labels or
// fractional, e.g. the gold Bradley–Terry probability): equal-width bins on [0, 1] by prediction
// (p = 1 in the last bin), ECE = sum_b (n_b / N) |mean(pred_b) - mean(target_b)|.
// InputError for unequal sizes, bins < 1, or a prediction outside [0, 1]; 0 for no data.
double expected_calibration_error(const std::vector<double>& pred, const std::vector<double>& target, int bins = 10);

// ---- Best-of-n -----------------------------------------------------------------------------------

// The usual analytic KL of best-of-n, log n - (n - 1) / n: an upper bound (Beirami et al.).
double bon_kl_bound(int64_t n);

// ---- pass@k --------------------------------------------------------------------------------------

// The unbiased pass@k of one prompt from n samples of which c pass (Chen et al. 2021):
// 1 - C(n - c, k) / C(n, k), the chance that k of the n drawn without replacement include a pass,
// computed as 1 - prod_{i = n-c+1}^{n} (1 - k / i) (no large binomials). InputError unless
// 0 <= c <= n and 1 <= k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

}  // namespace rlhf::testbed
