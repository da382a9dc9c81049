// The weighted combination: weights, NaN propagation under both policies, metrics, and callback
// sources (the testbed's gold rewards plug in this way).
#include <gtest/gtest.h>

#include <cmath>

#include "../model/model_test_util.h"
#include "reward_test_util.h"
#include "tensor/error.h"

namespace rlhf::rollout {
namespace {

using rlhf::test::expect_error;
const double kNaN = std::nan("");

std::map<std::string, double> metric_map(const RewardResult& r) {
  std::map<std::string, double> m;
  for (const auto& [k, v] : r.metrics) m[k] = v;
  return m;
}

std::vector<RewardSample> three() {
  return {test::sample("Paris", {{"answer", "Paris"}}), test::sample("Rome", {{"answer", "Paris"}}),
          test::sample("Paris!", {{"answer", nullptr}})};
}

TEST(CombinedReward, WeightsApplied) {
  // 2 * exact + 0.5 * length in chars - 1 * regex.
  CombinedReward c(parse_reward_specs({"2*exact:answer", "0.5*length:chars", "-1*regex:!"}), {});
  std::vector<RewardSample> b = three();
  b[2].extra = {{"answer", "Paris!"}};
  const RewardResult r = c.score(b);
  EXPECT_EQ(r.scores, (std::vector<double>{2 + 2.5, 0 + 2.0, 2 + 3.0 - 1}));
  const auto m = metric_map(r);
  EXPECT_DOUBLE_EQ(m.at("rewards/exact/mean"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("rewards/exact/std"), std::sqrt(1.0 / 3));  // sample std of {1, 0, 1}
  EXPECT_DOUBLE_EQ(m.at("rewards/length/mean"), 5.0);               // unweighted
  EXPECT_DOUBLE_EQ(m.at("rewards/length/mean_length"), 5.0);        // the source's own metric
  EXPECT_EQ(m.at("rewards/regex/undefined"), 0.0);
  EXPECT_EQ(m.at("reward/undefined"), 0.0);
}

TEST(CombinedReward, NanPropagatesByDefault) {
  // The third sample's reference is null: exact is undefined there.
  CombinedReward c(parse_reward_specs({"exact:answer", "length:chars"}), {});
  const RewardResult r = c.score(three());
  EXPECT_EQ(r.scores[0], 1.0 + 5);
  EXPECT_EQ(r.scores[1], 0.0 + 4);
  EXPECT_TRUE(std::isnan(r.scores[2]));
  const auto m = metric_map(r);
  EXPECT_EQ(m.at("rewards/exact/undefined"), 1.0);
  EXPECT_DOUBLE_EQ(m.at("rewards/exact/mean"), 0.5);  // over the defined scores
  EXPECT_EQ(m.at("reward/undefined"), 1.0);
}

TEST(CombinedReward, NanIgnoredLeavesTheTermOutUnlessAllAreNaN) {
  CombinedReward c(parse_reward_specs({"exact:answer", "3*length:chars"}), {}, NanPolicy::ignore);
  RewardResult r = c.score(three());
  EXPECT_EQ(r.scores, (std::vector<double>{1.0 + 15, 0.0 + 12, 18.0}));
  EXPECT_EQ(metric_map(r).at("reward/undefined"), 0.0);
  EXPECT_EQ(metric_map(r).at("rewards/exact/undefined"), 1.0);  // still counted
  // Only NaN terms: NaN, counted.
  CombinedReward only(parse_reward_specs({"exact:answer", "exact(nocase):answer"}), {}, NanPolicy::ignore);
  r = only.score(three());
  EXPECT_TRUE(std::isnan(r.scores[2]));
  EXPECT_EQ(metric_map(r).at("reward/undefined"), 1.0);
  EXPECT_EQ(parse_nan_policy("ignore"), NanPolicy::ignore);
  expect_error<InputError>([] { parse_nan_policy("zero"); }, {"propagate or ignore"});
}

TEST(CombinedReward, RepeatedKindsGetNumberedLabels) {
  CombinedReward c(parse_reward_specs({"regex:a", "regex:b", "eos"}), {});
  ASSERT_EQ(c.terms().size(), 3u);
  EXPECT_EQ(c.terms()[0].label, "regex");
  EXPECT_EQ(c.terms()[1].label, "regex#2");
  EXPECT_EQ(c.terms()[2].label, "eos");
  EXPECT_EQ(metric_map(c.score(three())).count("rewards/regex#2/mean"), 1u);
  expect_error<InputError>([] { CombinedReward({}, {}); }, {"no reward source"});
}

TEST(CombinedReward, CallbackSourceAddsLikeAnyOther) {
  CombinedReward c(parse_reward_specs({"exact:answer"}), {}, NanPolicy::ignore);
  int calls = 0;
  c.add("gold", 10.0, callback_reward("gold", [&](const std::vector<RewardSample>& b) {
          ++calls;
          std::vector<double> s;
          for (const auto& x : b) s.push_back(x.completion.size() == 5 ? 1.0 : kNaN);
          return s;
        }));
  const RewardResult r = c.score(three());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.scores[0], 11.0);
  EXPECT_EQ(r.scores[1], 0.0);            // "Rome": the callback is undefined, exact gives 0
  EXPECT_TRUE(std::isnan(r.scores[2]));   // both undefined
  EXPECT_EQ(metric_map(r).at("rewards/gold/undefined"), 2.0);
  expect_error<InputError>([&] { c.add("gold", 1.0, callback_reward("x", [](auto&) { return std::vector<double>{}; })); },
                           {"'gold' used twice"});
  CombinedReward bad(parse_reward_specs({"eos"}), {});
  bad.add("short", 1.0, callback_reward("short", [](const std::vector<RewardSample>&) { return std::vector<double>{1}; }));
  expect_error<InputError>([&] { bad.score(three()); }, {"'short'", "returned 1 scores for 3 samples"});
}

}  // namespace
}  // namespace rlhf::rollout
