// Bench statistics against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tensor/error.h"
#include "tensor/rng.h"
#include "testbed/stats.h"

namespace rlhf::testbed {
namespace {

TEST(BenchStats, BootstrapOfTwoValuesSpansThem) {
  // Means of two draws from {0, 1}: 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
  // 97.5% percentiles of many resamples are 0 and 1.
  const MeanCi ci = bootstrap_mean_ci({0.0, 1.0}, 1, 4000);
  EXPECT_EQ(ci.mean, 0.5);
  EXPECT_EQ(ci.lo, 0.0);
  EXPECT_EQ(ci.hi, 1.0);
  const MeanCi one = bootstrap_mean_ci({0.25}, 1);
  EXPECT_EQ(one.lo, 0.25);
  EXPECT_EQ(one.hi, 0.25);
  EXPECT_THROW(bootstrap_mean_ci(std::vector<double>{}, 1), InputError);
  EXPECT_THROW(bootstrap_mean_ci({1.0}, 1, 100, 1.5), InputError);
}

TEST(BenchStats, BootstrapWidthMatchesTheStandardError) {
  Rng rng(3, 0);
  std::vector<double> x(2000);
  for (double& v : x) v = rng.normal();
  double m = 0, s2 = 0;
  for (double v : x) m += v;
  m /= x.size();
  for (double v : x) s2 += (v - m) * (v - m);
  const double se = std::sqrt(s2 / (x.size() - 1) / x.size());
  const MeanCi ci = bootstrap_mean_ci(x, 7);
  EXPECT_NEAR(ci.hi - ci.lo, 2 * 1.96 * se, 0.1 * 2 * 1.96 * se);
  EXPECT_LT(ci.lo, ci.mean);
  EXPECT_GT(ci.hi, ci.mean);
  // Deterministic given the seed.
  const MeanCi again = bootstrap_mean_ci(x, 7);
  EXPECT_EQ(again.lo, ci.lo);
  EXPECT_EQ(again.hi, ci.hi);
  EXPECT_NE(bootstrap_mean_ci(x, 8).lo, ci.lo);
}

TEST(BenchStats, TwoLevelBootstrapCarriesTheSeedVariance) {
  // 3 seeds x 500 prompts: seed offsets -0.2, 0, 0.2 on top of prompt noise. Pooling the cells as
  // if independent hides the seed variance; both two-level designs show it.
  Rng rng(4, 0);
  std::vector<std::vector<double>> v(3, std::vector<double>(500));
  std::vector<double> flat;
  for (int s = 0; s < 3; ++s)
    for (int p = 0; p < 500; ++p) flat.push_back(v[s][p] = 0.2 * (s - 1) + 0.1 * rng.normal());
  const MeanCi pooled = bootstrap_mean_ci(flat, 1);
  const MeanCi crossed = bootstrap_mean_ci_two_level(v, 1, BootstrapDesign::crossed);
  const MeanCi nested = bootstrap_mean_ci_two_level(v, 1, BootstrapDesign::nested);
  EXPECT_NEAR(crossed.mean, pooled.mean, 1e-12);
  EXPECT_NEAR(nested.mean, pooled.mean, 1e-12);
  EXPECT_GT(crossed.hi - crossed.lo, 5 * (pooled.hi - pooled.lo));
  EXPECT_GT(nested.hi - nested.lo, 5 * (pooled.hi - pooled.lo));
  EXPECT_EQ(bootstrap_mean_ci_two_level(v, 1, BootstrapDesign::crossed).lo, crossed.lo);
  // One seed: the nested design reduces to the one-level bootstrap of the prompts (the drawn seed
  // index is always 0), so its width is close to the plain one's.
  const MeanCi single = bootstrap_mean_ci_two_level({v[0]}, 2, BootstrapDesign::nested);
  const MeanCi plain = bootstrap_mean_ci(v[0], 2);
  EXPECT_NEAR(single.hi - single.lo, plain.hi - plain.lo, 0.15 * (plain.hi - plain.lo));
  v[1].pop_back();
  EXPECT_THROW(bootstrap_mean_ci_two_level(v, 1, BootstrapDesign::crossed), InputError);
  EXPECT_NO_THROW(bootstrap_mean_ci_two_level(v, 1, BootstrapDesign::nested));
}

// The effect bootstrap: the estimate is the mean of the seeds' sums of group means; seeds that
// disagree widen the interval to span them; with one seed the prompts' spread alone sets it.
TEST(BenchStats, EffectBootstrapPoolsSeedsOfGroups) {
  const std::vector<SeedGroups> two = {{{1, 1, 1}, {0.5, 0.5}}, {{3, 3, 3}, {0.5, 0.5}}};
  EXPECT_DOUBLE_EQ(seed_estimate(two[0]), 1.5);
  const MeanCi ci = bootstrap_effect_ci(two, 5);
  EXPECT_DOUBLE_EQ(ci.mean, 2.5);
  EXPECT_DOUBLE_EQ(ci.lo, 1.5);  // both draws of seed 1
  EXPECT_DOUBLE_EQ(ci.hi, 3.5);
  std::vector<double> noisy(400);
  Rng rng(3);
  for (double& x : noisy) x = rng.normal();
  const MeanCi one = bootstrap_effect_ci({{noisy}}, 7);
  EXPECT_NEAR(one.hi - one.lo, 2 * 1.96 / std::sqrt(400.0), 0.04);  // the standard error's interval
  EXPECT_LT(one.lo, one.mean);
  EXPECT_GT(one.hi, one.mean);
  EXPECT_THROW(bootstrap_effect_ci({}, 1), InputError);
  EXPECT_THROW(bootstrap_effect_ci({{{1.0}, {}}}, 1), InputError);
}

TEST(BenchStats, ParetoFrontierInterpolationAndArea) {
  const std::vector<KlGold> pts = {{0, 0.5}, {1, 0.6}, {2, 0.55}, {3, 0.8}, {3, 0.7}, {5, 0.75}, {4, 0.9},
                                   {NAN, 1.0}};
  const std::vector<KlGold> f = pareto_frontier(pts);
  ASSERT_EQ(f.size(), 4u);
  const double kl[] = {0, 1, 3, 4}, gold[] = {0.5, 0.6, 0.8, 0.9};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(f[i].kl, kl[i]);
    EXPECT_EQ(f[i].gold, gold[i]);
  }
  EXPECT_NEAR(frontier_gold_at(f, 2), 0.7, 1e-12);
  EXPECT_NEAR(frontier_gold_at(f, 3.5), 0.85, 1e-12);
  EXPECT_NEAR(frontier_gold_at(f, 4), 0.9, 1e-12);
  EXPECT_NEAR(frontier_gold_at(f, 0), 0.5, 1e-12);
  EXPECT_TRUE(std::isnan(frontier_gold_at(f, 4.5)));  // beyond the largest KL reached
  EXPECT_TRUE(std::isnan(frontier_gold_at(f, -1)));
  EXPECT_TRUE(std::isnan(frontier_gold_at({}, 1)));
  // [0,1]: 0.55; [1,3]: 2 x 0.7; [3,4]: 0.85; [4,10]: flat 6 x 0.9.
  EXPECT_NEAR(frontier_area(f, 10), 0.55 + 1.4 + 0.85 + 5.4, 1e-12);
  EXPECT_NEAR(frontier_area(f, 2), 0.55 + 0.65, 1e-12);
  EXPECT_NEAR(frontier_area(f, 4), 0.55 + 1.4 + 0.85, 1e-12);
  // Without a point at KL 0, the first gold is held flat back to 0.
  EXPECT_NEAR(frontier_area({{1, 0.6}, {3, 0.8}}, 3), 0.6 + 1.4, 1e-12);
  EXPECT_NEAR(frontier_area({{1, 0.6}}, 0.5), 0.3, 1e-12);
}

TEST(BenchStats, OveroptimizationFitsRecoverKnownCoefficients) {
  std::vector<double> kl, bon, rl;
  for (int i = 0; i <= 40; ++i) {
    const double k = 0.4 * i, d = std::sqrt(k);
    kl.push_back(k);
    bon.push_back(overopt_bon_curve(1.0, 0.25, d));
    rl.push_back(overopt_rl_curve(1.0, 0.5, d));
  }
  const OveroptFit b = fit_overopt_bon(kl, bon);
  EXPECT_NEAR(b.alpha, 1.0, 1e-9);
  EXPECT_NEAR(b.beta, 0.25, 1e-9);
  EXPECT_NEAR(b.r2, 1.0, 1e-12);
  EXPECT_NEAR(b.d_peak, 2.0, 1e-8);  // alpha / (2 beta)
  EXPECT_NEAR(b.kl_peak, 4.0, 1e-7);
  EXPECT_NEAR(b.gold_peak, 1.0, 1e-9);  // alpha^2 / (4 beta)
  EXPECT_EQ(b.n, 41);
  const OveroptFit r = fit_overopt_rl(kl, rl);
  EXPECT_NEAR(r.alpha, 1.0, 1e-9);
  EXPECT_NEAR(r.beta, 0.5, 1e-9);
  EXPECT_NEAR(r.d_peak, std::exp(1.0), 1e-8);  // exp(alpha / beta - 1)
  EXPECT_NEAR(r.gold_peak, 0.5 * std::exp(1.0), 1e-8);
  const double h = 1e-5;
  EXPECT_NEAR(overopt_rl_curve(1, 0.5, r.d_peak + h) - overopt_rl_curve(1, 0.5, r.d_peak - h), 0.0, 1e-9);
  // Noisy gold: still close, R^2 below 1.
  Rng rng(1, 0);
  std::vector<double> noisy = bon;
  for (double& y : noisy) y += 0.01 * rng.normal();
  const OveroptFit nb = fit_overopt_bon(kl, noisy);
  EXPECT_NEAR(nb.alpha, 1.0, 0.05);
  EXPECT_NEAR(nb.beta, 0.25, 0.02);
  EXPECT_LT(nb.r2, 1.0);
  EXPECT_GT(nb.r2, 0.99);
  // A rising curve has no peak.
  std::vector<double> up;
  for (double k : kl) up.push_back(std::sqrt(k) * (0.5 + 0.1 * std::sqrt(k)));
  EXPECT_TRUE(std::isinf(fit_overopt_bon(kl, up).kl_peak));
  EXPECT_THROW(fit_overopt_bon({0, 1}, {0, 1}), InputError);
  EXPECT_THROW(fit_overopt_bon({1, -1}, {0, 1}), InputError);
  EXPECT_THROW(fit_overopt_rl({1, 2}, {0}), InputError);
}

TEST(BenchStats, ExpectedCalibrationError) {
  EXPECT_NEAR(expected_calibration_error({0.1, 0.2, 0.85, 0.95}, {0, 1, 1, 1}, 10), (0.1 + 0.8 + 0.15 + 0.05) / 4,
              1e-12);
  // Two bins: [0, .5): mean pred .15 vs target .5 (weight 1/2); [.5, 1]: .9 vs 1 (weight 1/2).
  EXPECT_NEAR(expected_calibration_error({0.1, 0.2, 0.85, 0.95}, {0, 1, 1, 1}, 2), 0.5 * 0.35 + 0.5 * 0.1, 1e-12);
  // Fractional targets equal to the predictions: perfectly calibrated; p = 1 lands in the last bin.
  EXPECT_NEAR(expected_calibration_error({0.3, 0.7, 1.0}, {0.3, 0.7, 1.0}, 10), 0.0, 1e-15);
  EXPECT_NEAR(expected_calibration_error({1.0, 0.95}, {0.9, 0.95}, 10), 0.05 / 2 + 0.05 / 2, 1e-12);
  EXPECT_EQ(expected_calibration_error({}, {}, 10), 0.0);
  EXPECT_THROW(expected_calibration_error({1.2}, {1}, 10), InputError);
  EXPECT_THROW(expected_calibration_error({0.2}, {1}, 0), InputError);
}

TEST(BenchStats, BestOfNKlBound) {
  EXPECT_EQ(bon_kl_bound(1), 0.0);
  EXPECT_NEAR(bon_kl_bound(2), std::log(2.0) - 0.5, 1e-15);
  EXPECT_NEAR(bon_kl_bound(8), std::log(8.0) - 7.0 / 8.0, 1e-15);
  EXPECT_NEAR(bon_kl_bound(256), 4.5491, 1e-4);
  EXPECT_THROW(bon_kl_bound(0), InputError);
}

// pass@k against the binomial form 1 - C(n-c, k)/C(n, k) and its edge cases.
TEST(BenchStats, PassAtKIsTheUnbiasedEstimator) {
  auto choose = [](int64_t n, int64_t k) {
    double r = 1;
    for (int64_t i = 1; i <= k; ++i) r = r * static_cast<double>(n - k + i) / static_cast<double>(i);
    return r;
  };
  for (int64_t c : {0, 1, 5, 20, 63, 64})
    for (int64_t k : {1, 2, 4, 8, 16, 32, 64}) {
      const double want = 1 - (64 - c >= k ? choose(64 - c, k) / choose(64, k) : 0.0);
      EXPECT_NEAR(pass_at_k(64, c, k), want, 1e-12) << "c " << c << " k " << k;
    }
  EXPECT_DOUBLE_EQ(pass_at_k(64, 16, 1), 0.25);  // pass@1 is the pass rate
  EXPECT_DOUBLE_EQ(pass_at_k(10, 0, 10), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(10, 1, 10), 1.0);
  EXPECT_NEAR(pass_at_k(4, 1, 2), 0.5, 1e-15);  // 3 of the 6 pairs hold the pass
  EXPECT_THROW(pass_at_k(4, 5, 1), InputError);
  EXPECT_THROW(pass_at_k(4, 1, 0), InputError);
  EXPECT_THROW(pass_at_k(4, 1, 5), InputError);
}

}  // namespace
}  // namespace rlhf::testbed
