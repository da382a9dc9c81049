// The combination: the weighted sum, the ensembles (min, uwo), NaN propagation under both
// policies, metrics, and callback sources (the testbed's gold rewards plug in this way).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

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
  CombinedReward c(parse_reward_specs({"exact:answer", "3*length:chars"}), {}, {.nan = NanPolicy::ignore});
  RewardResult r = c.score(three());
  EXPECT_EQ(r.scores, (std::vector<double>{1.0 + 15, 0.0 + 12, 18.0}));
  EXPECT_EQ(metric_map(r).at("reward/undefined"), 0.0);
  EXPECT_EQ(metric_map(r).at("rewards/exact/undefined"), 1.0);  // still counted
  // Only NaN terms: NaN, counted.
  CombinedReward only(parse_reward_specs({"exact:answer", "exact(nocase):answer"}), {}, {.nan = NanPolicy::ignore});
  r = only.score(three());
  EXPECT_TRUE(std::isnan(r.scores[2]));
  EXPECT_EQ(metric_map(r).at("reward/undefined"), 1.0);
  EXPECT_EQ(parse_nan_policy("ignore"), NanPolicy::ignore);
  expect_error<InputError>([] { parse_nan_policy("zero"); }, {"propagate or ignore"});
}

// Scores beyond kMaxRewardMagnitude (1e30 would overflow the whitening and zero the step) are
// undefined like NaN, under both policies, and counted apart; the bound itself is allowed.
TEST(CombinedReward, ScoresOutOfRangeAreUndefinedAndCounted) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> huge = {1e30, -kMaxRewardMagnitude, kNaN, 2.0, -inf, kMaxRewardMagnitude * (1 + 1e-15)};
  for (const NanPolicy nan : {NanPolicy::propagate, NanPolicy::ignore}) {
    CombinedReward c(parse_reward_specs({"eos"}), {}, {.nan = nan});
    c.add("judge", 1.0, callback_reward("judge", [&](const std::vector<RewardSample>&) { return huge; }));
    std::vector<RewardSample> b(huge.size(), test::sample("x", {}));
    const RewardResult r = c.score(b);
    const auto m = metric_map(r);
    EXPECT_EQ(m.at("rewards/judge/out_of_range"), 3.0);
    EXPECT_EQ(m.at("rewards/judge/undefined"), 4.0);  // the NaN and the three out of range
    EXPECT_DOUBLE_EQ(m.at("rewards/judge/mean"), (-kMaxRewardMagnitude + 2.0) / 2);
    EXPECT_EQ(m.at("rewards/eos/out_of_range"), 0.0);
    const double eos = r.scores[3] - 2.0;  // the eos term of a defined sample
    for (size_t i : {0, 2, 4, 5})
      if (nan == NanPolicy::propagate)
        EXPECT_TRUE(std::isnan(r.scores[i])) << i;
      else
        EXPECT_EQ(r.scores[i], eos) << i;  // the judge's term left out
    EXPECT_EQ(r.scores[1], eos - kMaxRewardMagnitude);
    EXPECT_EQ(m.at("reward/undefined"), nan == NanPolicy::propagate ? 4.0 : 0.0);
  }
  // Finite terms whose weighted sum overflows: the combined score is undefined too.
  CombinedReward big(parse_reward_specs({"1e308*length:chars", "1e308*length:chars"}), {});
  const RewardResult r = big.score({test::sample("abc", {})});
  EXPECT_TRUE(std::isnan(r.scores[0]));
  EXPECT_EQ(metric_map(r).at("reward/undefined"), 1.0);
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
  CombinedReward c(parse_reward_specs({"exact:answer"}), {}, {.nan = NanPolicy::ignore});
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


// ---- ensembles (min and uwo) ------------------------------------------------------------------

// A source scoring the three samples of three() with fixed values.
std::unique_ptr<RewardSource> fixed(std::vector<double> values) {
  return callback_reward("fixed", [values](const std::vector<RewardSample>&) { return values; });
}

TEST(CombinedReward, SumIsTheDefaultAndLogsNoEnsembleMetrics) {
  const std::vector<std::string> specs = {"regex(match=1):.", "0.5*regex(match=2):.", "2*regex(match=4):."};
  CombinedReward by_default(parse_reward_specs(specs), {});
  CombinedReward sum(parse_reward_specs(specs), {}, {.mode = CombineMode::sum});
  const RewardResult r = by_default.score(three());
  EXPECT_EQ(r.scores, (std::vector<double>{10, 10, 10}));
  EXPECT_EQ(sum.score(three()).scores, r.scores);
  EXPECT_EQ(metric_map(r).count("rewards/ensemble/std"), 0u);
}

TEST(CombinedReward, MinTakesTheWorstWeightedTerm) {
  // Terms per sample ("Paris", "Rome", "Paris!"): regex 1 everywhere; -2 * length(target=5)
  // = 2|len - 5| = 0, 2, 2; the callback 3, 1.5, -1. Unweighted, length would give 0, -1, -1
  // and be the minimum of the last two samples.
  CombinedReward c(parse_reward_specs({"regex:.", "-2*length(target=5):chars"}), {}, {.mode = CombineMode::min});
  c.add("cb", 1.0, fixed({3, 1.5, -1}));
  const RewardResult r = c.score(three());
  EXPECT_EQ(r.scores, (std::vector<double>{0, 1, -1}));
  const auto m = metric_map(r);
  // Population std of {1, 0, 3}, {1, 2, 1.5}, {1, 2, -1}: sqrt(14/9), sqrt(1/6), sqrt(14/9).
  EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/std"), (2 * std::sqrt(14.0 / 9) + std::sqrt(1.0 / 6)) / 3);
  EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/argmin_share/length"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/argmin_share/regex"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/argmin_share/cb"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("rewards/length/mean"), -2.0 / 3);  // per-source metrics stay unweighted
  // A tie goes to the first source.
  CombinedReward tie(parse_reward_specs({"regex(match=2):.", "2*regex:."}), {}, {.mode = CombineMode::min});
  EXPECT_EQ(metric_map(tie.score(three())).at("rewards/ensemble/argmin_share/regex"), 1.0);
}

TEST(CombinedReward, UwoIsTheMeanMinusLambdaTimesThePopulationVariance) {
  const std::vector<std::string> specs = {"regex(match=1):.", "regex(match=2):.", "regex(match=4):."};
  CombinedReward c(parse_reward_specs(specs), {}, {.mode = CombineMode::uwo, .uwo_lambda = 0.5});
  RewardResult r = c.score({test::sample("x")});
  // Mean 7/3, population variance (16 + 1 + 25) / 27 = 14/9.
  EXPECT_DOUBLE_EQ(r.scores.at(0), 7.0 / 3 - 0.5 * 14.0 / 9);
  EXPECT_DOUBLE_EQ(metric_map(r).at("rewards/ensemble/std"), std::sqrt(14.0 / 9));
  EXPECT_EQ(metric_map(r).count("rewards/ensemble/argmin_share/regex"), 0u);
  // Weights before combining: terms 1, 1, 4 (mean 2, variance 2); lambda 0 is the plain mean.
  const std::vector<std::string> weighted = {"0.5*regex(match=2):.", "regex(match=1):.", "2*regex(match=2):."};
  CombinedReward w(parse_reward_specs(weighted), {}, {.mode = CombineMode::uwo, .uwo_lambda = 0.5});
  EXPECT_DOUBLE_EQ(w.score({test::sample("x")}).scores.at(0), 2.0 - 0.5 * 2.0);
  CombinedReward mean(parse_reward_specs(weighted), {}, {.mode = CombineMode::uwo, .uwo_lambda = 0});
  EXPECT_DOUBLE_EQ(mean.score({test::sample("x")}).scores.at(0), 2.0);
}

TEST(CombinedReward, EnsemblesFollowTheNanPolicy) {
  // "Paris!" has a null answer: both exact terms are NaN there, regex(!) is its only defined term.
  const auto specs = parse_reward_specs({"exact(match=3):answer", "exact(nocase,match=7):answer", "regex(match=2):!"});
  for (const CombineMode mode : {CombineMode::min, CombineMode::uwo}) {
    SCOPED_TRACE(combine_mode_name(mode));
    CombinedReward propagate(specs, {}, {.mode = mode});
    RewardResult r = propagate.score(three());
    EXPECT_TRUE(std::isnan(r.scores[2]));
    auto m = metric_map(r);
    EXPECT_EQ(m.at("reward/undefined"), 1.0);
    EXPECT_EQ(m.at("rewards/exact/undefined"), 1.0);
    // {3, 7, 0} and {0, 0, 0}: the NaN sample is not in the spread.
    EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/std"), std::sqrt(74.0 / 9) / 2);
    CombinedReward ignore(specs, {}, {.mode = mode, .nan = NanPolicy::ignore});
    r = ignore.score(three());
    EXPECT_EQ(r.scores[2], 2.0);  // one defined term: itself, variance 0
    m = metric_map(r);
    EXPECT_EQ(m.at("reward/undefined"), 0.0);
    EXPECT_EQ(m.at("rewards/exact#2/undefined"), 1.0);  // still counted
    EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/std"), std::sqrt(74.0 / 9) / 3);
    if (mode == CombineMode::min) {
      EXPECT_EQ(r.scores[0], 0.0);
      // "Paris" and "Paris!" from regex; the tie {0, 0, 0} of "Rome" goes to the first source.
      EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/argmin_share/regex"), 2.0 / 3);
      EXPECT_DOUBLE_EQ(m.at("rewards/ensemble/argmin_share/exact"), 1.0 / 3);
    } else {
      EXPECT_DOUBLE_EQ(r.scores[0], 10.0 / 3 - 0.5 * 74.0 / 9);  // {3, 7, 0}: variance 74/9
    }
    // Every term NaN: NaN under either policy.
    CombinedReward none(parse_reward_specs({"exact:answer", "exact(nocase):answer"}), {},
                        {.mode = mode, .nan = NanPolicy::ignore});
    r = none.score(three());
    EXPECT_TRUE(std::isnan(r.scores[2]));
    EXPECT_EQ(metric_map(r).at("reward/undefined"), 1.0);
  }
}

TEST(CombinedReward, EnsembleErrorsNameTheFlag) {
  expect_error<InputError>([] { CombinedReward(parse_reward_specs({"eos"}), {}, {.mode = CombineMode::min}); },
                           {"--reward-combine min", "at least two --reward sources"});
  expect_error<InputError>([] { CombinedReward(parse_reward_specs({"eos"}), {}, {.mode = CombineMode::uwo}); },
                           {"--reward-combine uwo", "at least two --reward sources"});
  const auto two = parse_reward_specs({"eos", "regex:a"});
  expect_error<InputError>([&] { CombinedReward(two, {}, {.mode = CombineMode::uwo, .uwo_lambda = -1}); },
                           {"--reward-uwo-lambda", ">= 0", "-1"});
  expect_error<InputError>([&] { CombinedReward(two, {}, {.mode = CombineMode::uwo, .uwo_lambda = kNaN}); },
                           {"--reward-uwo-lambda", "finite"});
  expect_error<InputError>([] { parse_combine_mode("mean"); }, {"--reward-combine", "sum, min or uwo", "'mean'"});
  EXPECT_EQ(parse_combine_mode("uwo"), CombineMode::uwo);
}

}  // namespace
}  // namespace rlhf::rollout
