// KTO and APO-zero unpaired: hand values, finite differences, z0 clamping and detachment.
#include <gtest/gtest.h>

#include <cmath>

#include "objective/unpaired.h"

namespace rlhf::objective {
namespace {

double sig(double z) { return 1 / (1 + std::exp(-z)); }

const std::vector<UnpairedInputs> kBatch = {{-10, -11, true}, {-7, -6.5, false}, {-3, -3.4, true}, {-9, -8, false}};

TEST(Kto, HandValuesWithPositiveReferencePoint) {
  KtoParams p{.beta = 0.5, .desirable_weight = 1.0, .undesirable_weight = 1.5};
  // z0 = max(0, mean(0.6, 0.2)) = 0.4
  const auto r = kto_loss(kBatch, {-5.0, -6.0}, {-5.6, -6.2}, p);
  EXPECT_NEAR(r.kl, 0.4, 1e-12);
  const double expect = ((1 - sig(0.5 * (1 - 0.4))) + 1.5 * (1 - sig(0.5 * (0.4 + 0.5))) +
                         (1 - sig(0.5 * (0.4 - 0.4))) + 1.5 * (1 - sig(0.5 * (0.4 + 1)))) / 4;
  EXPECT_NEAR(r.loss, expect, 1e-12);
}

TEST(Kto, ReferencePointClampsAtZero) {
  const auto r = kto_loss(kBatch, {-5.0}, {-4.0}, KtoParams{});
  EXPECT_EQ(r.kl, 0.0);
}

TEST(Kto, GradientsMatchFiniteDifferencesWithDetachedReferencePoint) {
  KtoParams p{.beta = 0.3, .desirable_weight = 1.0, .undesirable_weight = 1.33};
  const std::vector<double> kl = {-5.0, -6.0}, kl_ref = {-5.6, -6.2};
  const auto r = kto_loss(kBatch, kl, kl_ref, p);
  for (size_t i = 0; i < kBatch.size(); ++i) {
    auto plus = kBatch, minus = kBatch;
    plus[i].logp += 1e-6;
    minus[i].logp -= 1e-6;
    const double num = (kto_loss(plus, kl, kl_ref, p).loss - kto_loss(minus, kl, kl_ref, p).loss) / 2e-6;
    EXPECT_NEAR(r.d_logp[i], num, 1e-8) << i;
  }
}

TEST(ApoZeroUnpaired, ValuesAndGradients) {
  const auto r = apo_zero_unpaired_loss(kBatch, 0.2);
  const double expect = ((1 - sig(0.2)) + sig(-0.1) + (1 - sig(0.08)) + sig(-0.2)) / 4;
  EXPECT_NEAR(r.loss, expect, 1e-12);
  for (size_t i = 0; i < kBatch.size(); ++i) {
    auto plus = kBatch, minus = kBatch;
    plus[i].logp += 1e-6;
    minus[i].logp -= 1e-6;
    EXPECT_NEAR(r.d_logp[i], (apo_zero_unpaired_loss(plus, 0.2).loss - apo_zero_unpaired_loss(minus, 0.2).loss) / 2e-6,
                1e-8);
  }
}

}  // namespace
}  // namespace rlhf::objective
