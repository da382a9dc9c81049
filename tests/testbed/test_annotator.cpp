// Simulated annotators: calibration to a target agreement, the noise models' known rates, length
// bias among near ties, rankings consistent with pairwise labels, determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "testbed/annotator.h"

namespace rlhf::testbed {
namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Pairs of synthetic items: gold = sigmoid(U(-3, 3)) (gaps spread over [0, 1)), lengths 5..40
// tokens, distinct ids.
struct Pairs {
  std::vector<AnnotatedItem> a, b;
};
Pairs synthetic_pairs(size_t n, uint64_t seed) {
  Rng rng(seed, 5);
  Pairs p;
  for (size_t i = 0; i < n; ++i) {
    AnnotatedItem x, y;
    x.gold = sigmoid(6 * rng.uniform() - 3);
    y.gold = sigmoid(6 * rng.uniform() - 3);
    x.length = 5 + static_cast<double>(rng.below(36));
    y.length = 5 + static_cast<double>(rng.below(36));
    x.id = seed * 1000003 + 2 * i;
    y.id = seed * 1000003 + 2 * i + 1;
    p.a.push_back(x);
    p.b.push_back(y);
  }
  return p;
}

// Near ties: |gold gap| <= 0.01 (under the default tie_delta 0.02), lengths differ.
Pairs near_tie_pairs(size_t n, uint64_t seed) {
  Pairs p = synthetic_pairs(n, seed);
  Rng rng(seed, 6);
  for (size_t i = 0; i < n; ++i) {
    p.b[i].gold = p.a[i].gold + 0.02 * rng.uniform() - 0.01;
    if (p.b[i].length == p.a[i].length) p.b[i].length += 3;
  }
  return p;
}

TEST(Annotator, CalibrationReachesTheTargetOnAFreshSample) {
  const Pairs cal = synthetic_pairs(5000, 1), other = synthetic_pairs(5000, 2);
  for (const std::string kind : {"flip", "bt", "gauss"})
    for (double target : {0.6, 0.7, 0.8, 0.9}) {
      const std::string name = kind + ":" + std::to_string(target).substr(0, 3);
      const Annotator ann = calibrate(preset(name), cal.a, cal.b, 7);
      EXPECT_NEAR(ann.measured_agreement, target, 0.02) << name;
      EXPECT_NEAR(ann.measured_agreement, target, 0.005) << name << " (calibration should be precise)";
      // Labels drawn again with an unrelated seed, and on other pairs of the same distribution.
      Rng rng(1234, 0);
      EXPECT_NEAR(agreement(ann, cal.a, cal.b, rng, 20), target, 0.02) << name;
      EXPECT_NEAR(agreement(ann, other.a, other.b, rng, 20), target, 0.02) << name << " on other pairs";
      EXPECT_GT(ann.pairs_measured, 4000);
    }
}

TEST(Annotator, PresetsReachTheirTargets) {
  const Pairs cal = synthetic_pairs(5000, 3);
  const Annotator human = calibrate(preset("human-like"), cal.a, cal.b, 11);
  EXPECT_EQ(human.config().pool, 8);
  EXPECT_GT(human.config().taste_jitter, 0);
  EXPECT_GT(human.config().bt_tau, 0);
  EXPECT_NEAR(human.measured_agreement, 0.70, 0.02);
  const Annotator gpt4 = calibrate(preset("gpt4-like"), cal.a, cal.b, 11);
  EXPECT_EQ(gpt4.config().pool, 1);
  EXPECT_GT(gpt4.config().length_gamma, 0);
  EXPECT_NEAR(gpt4.measured_agreement, 0.80, 0.02);
  // The consistent annotator agrees with itself more than the pool does.
  EXPECT_GT(gpt4.inter_annotator, human.inter_annotator);
  const Annotator clean = calibrate(preset("clean"), cal.a, cal.b, 11);
  EXPECT_EQ(clean.measured_agreement, 1.0);
  EXPECT_EQ(clean.inter_annotator, 1.0);
  EXPECT_EQ(calibrate(preset("flip:1"), cal.a, cal.b, 11).config().flip_eps, 0.0);
}

TEST(Annotator, FlipNoiseFollowsTheMixtureFormula) {
  const Pairs cal = synthetic_pairs(5000, 4);
  AnnotatorConfig base;
  base.bt_tau = 0.1;
  AnnotatorConfig flipped = base;
  flipped.flip_eps = 0.15;
  Rng rng(5, 0);
  const double a0 = agreement(Annotator(base), cal.a, cal.b, rng, 40);
  const double a = agreement(Annotator(flipped), cal.a, cal.b, rng, 40);
  EXPECT_NEAR(a, (1 - 0.15) * a0 + 0.15 * (1 - a0), 0.005);
  // The exact expectation obeys it too, pair by pair.
  const double p0 = Annotator(base).prob_prefers(cal.a[0], cal.b[0]);
  EXPECT_NEAR(Annotator(flipped).prob_prefers(cal.a[0], cal.b[0]), 0.85 * p0 + 0.15 * (1 - p0), 1e-12);
  EXPECT_NEAR(p0, sigmoid((cal.a[0].gold - cal.b[0].gold) / 0.1), 1e-12);
}

TEST(Annotator, InterAnnotatorAgreementUnderPureFlips) {
  const Pairs cal = synthetic_pairs(5000, 5);
  for (double target : {0.7, 0.8}) {
    const Annotator ann = calibrate(preset("flip:" + std::to_string(target).substr(0, 3)), cal.a, cal.b, 3);
    const double a = ann.measured_agreement;
    EXPECT_NEAR(ann.inter_annotator, a * a + (1 - a) * (1 - a), 0.01);
  }
  // The numbers of docs/testbed.md §4.
  EXPECT_NEAR(0.7 * 0.7 + 0.3 * 0.3, 0.58, 1e-12);
  EXPECT_NEAR(0.8 * 0.8 + 0.2 * 0.2, 0.68, 1e-12);
}

TEST(Annotator, LengthBiasMakesTheLongerResponseWinAmongNearTies) {
  Pairs cal = synthetic_pairs(5000, 6);
  const Pairs ties = near_tie_pairs(1000, 7);
  cal.a.insert(cal.a.end(), ties.a.begin(), ties.a.end());
  cal.b.insert(cal.b.end(), ties.b.begin(), ties.b.end());
  AnnotatorConfig cfg = preset("bt:0.8");
  const Annotator unbiased = calibrate(cfg, cal.a, cal.b, 1);
  EXPECT_GT(unbiased.near_ties, 900);
  EXPECT_NEAR(unbiased.near_tie_long_win, 0.5, 0.03);
  cfg.length_gamma = 0.01;
  const Annotator biased = calibrate(cfg, cal.a, cal.b, 1);
  EXPECT_GT(biased.near_tie_long_win, 0.6);
  EXPECT_NEAR(biased.measured_agreement, 0.8, 0.02);
  EXPECT_LT(biased.config().bt_tau, unbiased.config().bt_tau);  // the bias costs agreement already
  const Annotator gpt4 = calibrate(preset("gpt4-like"), cal.a, cal.b, 1);
  EXPECT_GT(gpt4.near_tie_long_win, 0.53);
}

TEST(Annotator, CleanRankingSortsByGold) {
  const Annotator clean(preset("clean"));
  Rng rng(1, 0);
  std::vector<AnnotatedItem> items;
  for (double g : {0.3, 0.9, 0.1, 0.5, 0.7}) items.push_back({g, 10, static_cast<uint64_t>(g * 100)});
  EXPECT_EQ(clean.rank(items, rng), (std::vector<int>{1, 4, 3, 0, 2}));
  EXPECT_TRUE(clean.prefers(items[1], items[0], rng));
  EXPECT_FALSE(clean.prefers(items[2], items[0], rng));
}

// Every pair read off a ranking has prefers()'s distribution: the share of implied pairs that
// agree with gold matches the pairwise expectation on the same pairs.
TEST(Annotator, RankingsImplyThePairwiseAgreement) {
  const Pairs cal = synthetic_pairs(5000, 8);
  for (const std::string name : {"bt:0.8", "flip:0.7", "gauss:0.8", "human-like"}) {
    const Annotator ann = calibrate(preset(name), cal.a, cal.b, 2);
    Rng rng(9, 0);
    double agree = 0, expected = 0;
    int64_t n = 0;
    for (int rep = 0; rep < 20; ++rep)
      for (size_t i = 0; i + 4 <= cal.a.size(); i += 4) {
        const std::vector<AnnotatedItem> items = {cal.a[i], cal.a[i + 1], cal.b[i + 2], cal.b[i + 3]};
        const std::vector<int> order = ann.rank(items, rng);
        ASSERT_EQ(order.size(), 4u);
        for (int x = 0; x < 4; ++x)
          for (int y = x + 1; y < 4; ++y) {
            const AnnotatedItem &hi = items[order[x]], &lo = items[order[y]];
            if (std::abs(hi.gold - lo.gold) <= ann.config().tie_delta) continue;
            const AnnotatedItem& better = hi.gold > lo.gold ? hi : lo;
            const AnnotatedItem& worse = hi.gold > lo.gold ? lo : hi;
            agree += hi.gold > lo.gold;
            expected += ann.prob_prefers(better, worse);  // exact for each of these noise models
            ++n;
          }
      }
    EXPECT_NEAR(agree / n, expected / n, 0.005) << name;
  }
}

TEST(Annotator, DeterministicGivenTheSeed) {
  const Pairs cal = synthetic_pairs(2000, 9);
  const Annotator x = calibrate(preset("human-like"), cal.a, cal.b, 5);
  const Annotator y = calibrate(preset("human-like"), cal.a, cal.b, 5);
  EXPECT_EQ(x.config().bt_tau, y.config().bt_tau);
  EXPECT_EQ(x.measured_agreement, y.measured_agreement);
  EXPECT_EQ(x.inter_annotator, y.inter_annotator);
  const Annotator z = calibrate(preset("human-like"), cal.a, cal.b, 6);
  EXPECT_NE(x.measured_agreement, z.measured_agreement);  // another fresh sample
  Rng r1(3, 1), r2(3, 1);
  for (size_t i = 0; i < 200; ++i) {
    ASSERT_EQ(x.prefers(cal.a[i], cal.b[i], r1), y.prefers(cal.a[i], cal.b[i], r2));
    ASSERT_EQ(x.rank({cal.a[i], cal.b[i], cal.a[i + 1]}, r1), y.rank({cal.a[i], cal.b[i], cal.a[i + 1]}, r2));
  }
  // A pool member's taste for an item is fixed: the exact preference is a pure function.
  EXPECT_EQ(x.prob_prefers(cal.a[0], cal.b[0]), y.prob_prefers(cal.a[0], cal.b[0]));
  AnnotatorConfig other_pool = x.config();
  other_pool.taste_seed = 1;
  EXPECT_NE(Annotator(other_pool).prob_prefers(cal.a[0], cal.b[0]), x.prob_prefers(cal.a[0], cal.b[0]));
}

TEST(Annotator, RejectsBadPresetsAndUnreachableTargets) {
  EXPECT_THROW(preset("bogus"), InputError);
  EXPECT_THROW(preset("flip:0.4"), InputError);
  EXPECT_THROW(preset("bt:x"), InputError);
  EXPECT_THROW(preset("gauss:0.8x"), InputError);
  const Pairs cal = synthetic_pairs(1000, 10);
  AnnotatorConfig cfg = preset("bt:0.9");
  cfg.flip_eps = 0.3;  // alone already below 0.9
  EXPECT_THROW(calibrate(cfg, cal.a, cal.b, 1), InputError);
  cfg = preset("bt:0.9");
  cfg.calibrate = "pool";
  EXPECT_THROW(calibrate(cfg, cal.a, cal.b, 1), InputError);
}

}  // namespace
}  // namespace rlhf::testbed
