// The μ bandit checks of docs/testbed.md §3.4 (pattern 12): each must show the literature's pattern.
#include <gtest/gtest.h>

#include <cmath>

#include "testbed/bandits.h"

namespace rlhf::testbed {
namespace {

TEST(BanditChecks, IpoStaysAtItsClosedFormWhereDpoGoesDeterministic) {
  const IpoVsDpoResult r = bandit_ipo_vs_dpo();
  EXPECT_TRUE(r.observed) << r.explanation;
  ASSERT_EQ(r.dpo_pi2.size(), 2u);
  for (size_t i = 0; i < r.dpo_pi2.size(); ++i) {
    EXPECT_LT(r.dpo_pi2[i], 1e-3) << "beta " << r.dpo_betas[i];
    EXPECT_LT(r.dpo_pi2[i], r.dpo_pi2_half[i]) << "beta " << r.dpo_betas[i];
  }
  EXPECT_NEAR(r.ipo_h, 5.0, 1e-3);  // 1 / (2 tau), tau = 0.1
  // softmax(2.5, -2.5, 0)[1] from a uniform reference
  EXPECT_NEAR(r.ipo_pi2_closed_form, std::exp(-2.5) / (std::exp(2.5) + std::exp(-2.5) + 1), 1e-12);
  EXPECT_NEAR(r.ipo_pi2, r.ipo_pi2_closed_form, 1e-5);
  EXPECT_FALSE(r.explanation.empty());

  // A non-uniform reference: the closed form moves with it.
  IpoVsDpoConfig cfg;
  cfg.ref_logits = {-1.0, 0.5, 0.2};
  cfg.ipo_tau = 0.25;
  const IpoVsDpoResult s = bandit_ipo_vs_dpo(cfg);
  EXPECT_TRUE(s.observed) << s.explanation;
  EXPECT_NEAR(s.ipo_h, 2.0, 1e-3);
  const double z0 = -1.0 + 1.0, z1 = 0.5 - 1.0, z2 = 0.2;
  EXPECT_NEAR(s.ipo_pi2_closed_form, std::exp(z1) / (std::exp(z0) + std::exp(z1) + std::exp(z2)), 1e-12);
}

TEST(BanditChecks, DpoMovesMassToTheUnseenOutputWhereKlRegularizedRlDoesNot) {
  const UnseenMassResult r = bandit_unseen_mass();
  EXPECT_TRUE(r.observed) << r.explanation;
  EXPECT_NEAR(r.pi3_ref, 1.0 / 3, 1e-12);
  EXPECT_GT(r.pi3_dpo, 0.45);                            // toward 1/2
  EXPECT_LT(r.pi3_rl, r.pi3_ref);
  EXPECT_NEAR(r.pi3_rl, r.pi3_rl_closed_form, 0.03);    // RL reached its KL-regularized optimum
  EXPECT_EQ(r.r3, 0.0);                                  // no data on y3
  EXPECT_GT(r.r1, 0.0);
  EXPECT_NEAR(r.r1, -r.r2, 1e-12);
  // Controls: tabular DPO lowers pi(y3); an RM that shares the policy's features extrapolates.
  EXPECT_LT(r.pi3_dpo_tabular, r.pi3_ref);
  EXPECT_GT(r.pi3_rl_shared_rm, r.pi3_ref);
  // Deterministic.
  EXPECT_EQ(bandit_unseen_mass().pi3_rl, r.pi3_rl);
}

TEST(BanditChecks, DpoDisplacesBothLikelihoodsOfNearIdenticalResponses) {
  const DisplacementResult r = bandit_likelihood_displacement();
  EXPECT_TRUE(r.observed) << r.explanation;
  EXPECT_GT(r.cosine, 0.99);
  EXPECT_GT(r.margin_end, r.margin_start);
  EXPECT_LT(r.logp_chosen_end, r.logp_chosen_start);
  EXPECT_LT(r.logp_rejected_end, r.logp_rejected_start);
  EXPECT_GT(r.pi3_end, r.pi3_start);
  EXPECT_GT(r.control_logp_chosen_change, 0.0);
}

}  // namespace
}  // namespace rlhf::testbed
