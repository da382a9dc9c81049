// Preference metrics against values computed by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/preference_metrics.h"

namespace rlhf::eval {
namespace {

TEST(PreferenceMetrics, AccuracyTiesMarginAuc) {
  // Pairs: (3,1) right, (0,2) wrong, (1,1) tie, (5,4) right.
  const auto m = preference_metrics({{3, 0, 1, 5}, {1, 2, 1, 4}});
  EXPECT_EQ(m.pairs, 4);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(m.ties, 0.25);
  EXPECT_DOUBLE_EQ(m.margin, (2 - 2 + 0 + 1) / 4.0);
  // AUC by enumeration: chosen {3,0,1,5} vs rejected {1,2,1,4}:
  // 3 beats 1,2,1 (3); 0 beats none (0); 1 ties two 1s (1) ; 5 beats all (4) -> 8 / 16.
  EXPECT_DOUBLE_EQ(m.auc, 8.0 / 16.0);
}

TEST(PreferenceMetrics, PerfectSeparationHasAucOne) {
  EXPECT_DOUBLE_EQ(preference_metrics({{5, 6, 7}, {1, 2, 3}}).auc, 1.0);
}

TEST(Correlation, PearsonAndSpearman) {
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 6, 8}), 1.0, 1e-15);
  EXPECT_NEAR(pearson({1, 2, 3}, {3, 2, 1}), -1.0, 1e-15);
  // Monotone but not linear: Spearman 1, Pearson below 1.
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {1, 8, 27, 64}), 1.0, 1e-15);
  EXPECT_LT(pearson({1, 2, 3, 4}, {1, 8, 27, 64}), 0.99);
  // Ties get average ranks: x ranks (1.5, 1.5, 3), y ranks (1, 2, 3).
  EXPECT_NEAR(spearman({1, 1, 2}, {1, 2, 3}), pearson({1.5, 1.5, 3}, {1, 2, 3}), 1e-15);
  EXPECT_TRUE(std::isnan(pearson({1, 1}, {1, 2})));
}

}  // namespace
}  // namespace rlhf::eval
