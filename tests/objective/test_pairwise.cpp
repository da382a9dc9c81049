// Pairwise objectives: finite-difference gradients for every loss in the table, values
// computed by hand for the main ones, and parameter-domain errors.
#include <gtest/gtest.h>

#include <cmath>

#include "objective/pairwise.h"
#include "tensor/error.h"

namespace rlhf::objective {
namespace {

std::vector<PairInputs> sample_pairs() {
  // Distinct margins (no ties, so the AOT sort is stable under small perturbations).
  return {{-12.0, -14.5, -12.8, -13.9, 5, 7},
          {-30.2, -28.0, -29.0, -29.5, 11, 9},
          {-3.1, -6.4, -3.3, -5.0, 2, 4},
          {-8.7, -8.1, -9.9, -7.2, 6, 3}};
}

PairParams params_for(const std::string& name) {
  PairParams p;
  p.beta = name == "ipo" || name == "ipo_sum" || name == "sppo_hard" ? 0.5 : 0.3;
  p.label_smoothing = name == "exo_pair" || name == "robust" || name == "cdpo" || name.starts_with("aot") ? 0.1 : 0.0;
  p.rdpo_alpha = 0.05;
  p.simpo_gamma = 0.7;
  return p;
}

class PairwiseLoss : public ::testing::TestWithParam<std::string> {};

TEST_P(PairwiseLoss, GradientsMatchFiniteDifferences) {
  const std::string name = GetParam();
  const PairParams p = params_for(name);
  const std::vector<PairInputs> pairs = sample_pairs();
  const PairBatchResult r = pairwise_loss({{name, 1.0}}, pairs, p);
  ASSERT_TRUE(std::isfinite(r.loss)) << name;
  const double h = 1e-6;
  for (size_t i = 0; i < pairs.size(); ++i) {
    for (int side = 0; side < 2; ++side) {
      auto plus = pairs, minus = pairs;
      (side ? plus[i].logp_rejected : plus[i].logp_chosen) += h;
      (side ? minus[i].logp_rejected : minus[i].logp_chosen) -= h;
      const double numeric =
          (pairwise_loss({{name, 1.0}}, plus, p).loss - pairwise_loss({{name, 1.0}}, minus, p).loss) / (2 * h);
      const double analytic = side ? r.grads[i].d_rejected : r.grads[i].d_chosen;
      EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::fabs(numeric)) << name << " pair " << i << " side " << side;
    }
  }
  double sum = 0;
  for (const auto& g : r.grads) sum += g.loss;
  EXPECT_NEAR(sum, r.loss, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(AllLosses, PairwiseLoss, ::testing::ValuesIn(pairwise_loss_names()));

// One pair: Dw = 2, Dl = -1, h = 3; lengths 4 and 2; policy log-probs -10 and -11.
const PairInputs kPair{-10.0, -11.0, -12.0, -10.0, 4, 2};

double single(const std::string& name, PairParams p) { return pairwise_loss({{name, 1.0}}, {kPair}, p).loss; }

TEST(PairwiseValues, HandComputed) {
  PairParams p;
  p.beta = 0.1;
  EXPECT_NEAR(single("sigmoid", p), std::log1p(std::exp(-0.3)), 1e-12);
  // IPO averaged: hbar = 2/4 - (-1)/2 = 1; (1 - 1/(2*0.1))^2 = 16
  EXPECT_NEAR(single("ipo", p), 16.0, 1e-12);
  // IPO summed: (3 - 5)^2 = 4
  EXPECT_NEAR(single("ipo_sum", p), 4.0, 1e-12);
  // hinge: max(0, 1 - 0.3) = 0.7
  EXPECT_NEAR(single("hinge", p), 0.7, 1e-12);
  // SPPO hard: (2 - 5)^2 + (-1 + 5)^2 = 25
  EXPECT_NEAR(single("sppo_hard", p), 25.0, 1e-12);
  // SimPO: z = 0.1*(-10/4) - 0.1*(-11/2) - 0.5 = -0.25 + 0.55 - 0.5 = -0.2
  EXPECT_NEAR(single("simpo", p), std::log1p(std::exp(0.2)), 1e-12);
  // sft: -(-10)/4 = 2.5 (one pair: its chosen tokens are the batch's)
  EXPECT_NEAR(single("sft", p), 2.5, 1e-12);
  // cDPO with eps 0.2: -0.8 log s(0.3) - 0.2 log s(-0.3)
  p.label_smoothing = 0.2;
  EXPECT_NEAR(single("cdpo", p), 0.8 * std::log1p(std::exp(-0.3)) + 0.2 * std::log1p(std::exp(0.3)), 1e-12);
  // robust: (0.8 * softplus(-0.3) - 0.2 * softplus(0.3)) / 0.6
  EXPECT_NEAR(single("robust", p), (0.8 * std::log1p(std::exp(-0.3)) - 0.2 * std::log1p(std::exp(0.3))) / 0.6, 1e-12);
  // ORPO: means -2.5 and -5.5; log odds = m - log(1 - e^m)
  p.label_smoothing = 0;
  const double lo = (-2.5 - std::log(1 - std::exp(-2.5))) - (-5.5 - std::log(1 - std::exp(-5.5)));
  EXPECT_NEAR(single("orpo", p), 2.5 + 0.1 * std::log1p(std::exp(-lo)), 1e-12);
}

TEST(PairwiseValues, SftPoolsTokensOverTheBatch) {
  // TRL: one token mean over every chosen token of the batch, not a mean of per-pair means.
  const auto pairs = sample_pairs();
  double lp = 0, n = 0;
  for (const auto& q : pairs) lp += q.logp_chosen, n += q.len_chosen;
  const auto r = pairwise_loss({{"sft", 1.0}}, pairs, PairParams{});
  EXPECT_NEAR(r.loss, -lp / n, 1e-12);
  EXPECT_NEAR(r.grads[1].d_chosen, -1.0 / n, 1e-15);
}

TEST(PairwiseValues, WeightedSumIsRpo) {
  PairParams p;
  const auto pairs = sample_pairs();
  const auto a = pairwise_loss({{"sigmoid", 1.0}}, pairs, p), b = pairwise_loss({{"sft", 1.0}}, pairs, p);
  const auto rpo = pairwise_loss({{"sigmoid", 1.0}, {"sft", 0.5}}, pairs, p);
  EXPECT_NEAR(rpo.loss, a.loss + 0.5 * b.loss, 1e-12);
  EXPECT_NEAR(rpo.grads[2].d_chosen, a.grads[2].d_chosen + 0.5 * b.grads[2].d_chosen, 1e-12);
}

TEST(PairwiseValues, DpoGradientMatchesClosedForm) {
  // dL/dL_w = -beta * sigma(-beta h), dL/dL_l = +beta * sigma(-beta h)  (docs/algorithms.md §3.1)
  PairParams p;
  p.beta = 0.1;
  const auto r = pairwise_loss({{"sigmoid", 1.0}}, {kPair}, p);
  const double s = 1 / (1 + std::exp(0.3));
  EXPECT_NEAR(r.grads[0].d_chosen, -0.1 * s, 1e-12);
  EXPECT_NEAR(r.grads[0].d_rejected, 0.1 * s, 1e-12);
}

TEST(PairwiseMetrics, TrlNamesAndValues) {
  // Dw = 2, Dl = -1 with beta 0.1; at step 0 (policy == reference) accuracy is 0, not 0.5.
  auto m = pairwise_metrics({kPair}, 0.1);
  auto get = [&](const std::string& k) {
    for (auto& [n, v] : m)
      if (n == k) return v;
    return std::nan("");
  };
  EXPECT_NEAR(get("rewards/chosen"), 0.2, 1e-12);
  EXPECT_NEAR(get("rewards/rejected"), -0.1, 1e-12);
  EXPECT_NEAR(get("rewards/margins"), 0.3, 1e-12);
  EXPECT_EQ(get("rewards/accuracies"), 1.0);
  EXPECT_EQ(get("logps/chosen"), -10.0);
  m = pairwise_metrics({{-5, -6, -5, -6, 1, 1}}, 0.1);
  EXPECT_EQ(get("rewards/accuracies"), 0.0);
}

TEST(PairwiseErrors, NameTheLossAndParameter) {
  PairParams p;
  try {
    pairwise_loss({{"exo_pair", 1.0}}, {kPair}, p);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("exo_pair"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("label_smoothing"), std::string::npos);
  }
  EXPECT_THROW(pairwise_loss({{"sigmod", 1.0}}, {kPair}, p), InputError);
  EXPECT_THROW(pairwise_loss({{"sigmoid", 1.0}}, {{-1, -1, 0, 0, 0, 3}}, p), InputError);
}

}  // namespace
}  // namespace rlhf::objective
