// Reward-model and ranking objectives: hand values, finite differences, K = 2 reductions.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "objective/ranking.h"
#include "tensor/error.h"

namespace rlhf::objective {
namespace {

void expect_fd(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
               const std::vector<double>& grad) {
  for (size_t i = 0; i < x.size(); ++i) {
    auto p = x, m = x;
    p[i] += 1e-6;
    m[i] -= 1e-6;
    EXPECT_NEAR(grad[i], (f(p) - f(m)) / 2e-6, 1e-6) << "entry " << i;
  }
}

TEST(BradleyTerry, ValuesAndGradients) {
  const std::vector<RewardPair> pairs = {{1.0, 0.5, 0.0}, {-0.2, 0.3, 0.25}, {2.0, -1.0, 1.0}};
  const auto r = bradley_terry_loss(pairs, 0.01);
  double expect = 0;
  for (const auto& p : pairs)
    expect += (std::log1p(std::exp(-(p.chosen - p.rejected - p.margin))) +
               0.01 * (p.chosen + p.rejected) * (p.chosen + p.rejected)) / 3;
  EXPECT_NEAR(r.loss, expect, 1e-12);
  EXPECT_NEAR(r.accuracy, 2.0 / 3, 1e-12);
  EXPECT_NEAR(r.margin, (0.5 - 0.5 + 3.0) / 3, 1e-12);
  std::vector<double> x, g;
  for (size_t i = 0; i < pairs.size(); ++i) {
    x.insert(x.end(), {pairs[i].chosen, pairs[i].rejected});
    g.insert(g.end(), {r.d_chosen[i], r.d_rejected[i]});
  }
  expect_fd(
      [&](const std::vector<double>& v) {
        std::vector<RewardPair> q = pairs;
        for (size_t i = 0; i < q.size(); ++i) q[i].chosen = v[2 * i], q[i].rejected = v[2 * i + 1];
        return bradley_terry_loss(q, 0.01).loss;
      },
      x, g);
}

TEST(BradleyTerry, TieHasZeroAccuracy) {
  EXPECT_EQ(bradley_terry_loss({{0.3, 0.3, 0}}).accuracy, 0.0);  // strict '>'
}

TEST(PlackettLuce, TwoResponsesIsBradleyTerry) {
  std::vector<double> g(2, 0.0);
  const double l = plackett_luce_loss({0.7, -0.4}, {0, 1}, 1, g);
  EXPECT_NEAR(l, std::log1p(std::exp(-1.1)), 1e-12);
  const auto bt = bradley_terry_loss({{0.7, -0.4, 0}});
  EXPECT_NEAR(g[0], bt.d_chosen[0], 1e-12);
  EXPECT_NEAR(g[1], bt.d_rejected[0], 1e-12);
}

TEST(PlackettLuce, FullAndPartialRankingsMatchFiniteDifferences) {
  const std::vector<double> s = {0.3, -1.2, 2.0, 0.9, -0.1};
  const std::vector<int64_t> ranking = {2, 0, 3, 4, 1};
  for (int64_t stages : {4, 2}) {
    std::vector<double> g(5, 0.0);
    plackett_luce_loss(s, ranking, stages, g);
    expect_fd(
        [&](const std::vector<double>& v) {
          std::vector<double> tmp(5, 0.0);
          return plackett_luce_loss(v, ranking, stages, tmp);
        },
        s, g);
  }
  // By hand for 3: -(s0 - lse(s0,s1,s2)) - (s1 - lse(s1,s2)) with ranking identity.
  std::vector<double> g(3, 0.0);
  const double l = plackett_luce_loss({1.0, 0.0, -1.0}, {0, 1, 2}, 2, g);
  EXPECT_NEAR(l, -(1 - std::log(std::exp(1) + 1 + std::exp(-1))) - (0 - std::log(1 + std::exp(-1))), 1e-12);
}

TEST(KwisePairs, AllPairsWeightedAndFiniteDifferences) {
  const std::vector<double> s = {0.5, 1.5, -0.5, 0.0};
  const std::vector<int64_t> ranking = {1, 0, 3, 2};
  std::vector<double> g(4, 0.0);
  const double l = kwise_pairs_loss(s, ranking, g);
  double expect = 0;
  for (int a = 0; a < 4; ++a)
    for (int b = a + 1; b < 4; ++b) expect += std::log1p(std::exp(-(s[ranking[a]] - s[ranking[b]]))) / 6;
  EXPECT_NEAR(l, expect, 1e-12);
  expect_fd(
      [&](const std::vector<double>& v) {
        std::vector<double> tmp(4, 0.0);
        return kwise_pairs_loss(v, ranking, tmp);
      },
      s, g);
}

TEST(KwisePairs, TiedLabelsGiveNoPair) {
  // Labels 3, 3, 1: the tied pair (0, 1) is skipped; the two remaining pairs weigh 1/2 each.
  const std::vector<double> s = {0.2, -0.3, 0.9}, labels = {3, 3, 1};
  std::vector<double> g(3, 0.0);
  const double l = kwise_pairs_loss(s, {0, 1, 2}, g, labels);
  EXPECT_NEAR(l, 0.5 * (std::log1p(std::exp(-(0.2 - 0.9))) + std::log1p(std::exp(-(-0.3 - 0.9)))), 1e-12);
  expect_fd(
      [&](const std::vector<double>& v) {
        std::vector<double> tmp(3, 0.0);
        return kwise_pairs_loss(v, {0, 1, 2}, tmp, labels);
      },
      s, g);
  std::vector<double> g2(2, 0.0);
  EXPECT_EQ(kwise_pairs_loss({1.0, 2.0}, {0, 1}, g2, {5, 5}), 0.0);  // all tied: no signal
  EXPECT_EQ(g2[0], 0.0);
}

TEST(ListwiseDpo, IsPlackettLuceOnImplicitRewards) {
  const std::vector<double> lp = {-10, -12, -9}, ref = {-11, -11, -11};
  const std::vector<int64_t> ranking = {0, 2, 1};
  std::vector<double> g(3, 0.0);
  const double l = listwise_dpo_loss(lp, ref, ranking, 2, 0.5, g);
  std::vector<double> g_pl(3, 0.0);
  EXPECT_NEAR(l, plackett_luce_loss({0.5, -0.5, 1.0}, ranking, 2, g_pl), 1e-12);
  expect_fd(
      [&](const std::vector<double>& v) {
        std::vector<double> tmp(3, 0.0);
        return listwise_dpo_loss(v, ref, ranking, 2, 0.5, tmp);
      },
      lp, g);
}

TEST(Ranking, RejectsBadRankings) {
  std::vector<double> g(3, 0.0);
  EXPECT_THROW(plackett_luce_loss({1, 2, 3}, {0, 0, 1}, 2, g), InputError);
  EXPECT_THROW(plackett_luce_loss({1, 2, 3}, {0, 3, 1}, 2, g), InputError);
  EXPECT_THROW(plackett_luce_loss({1, 2, 3}, {0, 1, 2}, 3, g), InputError);
}

}  // namespace
}  // namespace rlhf::objective
