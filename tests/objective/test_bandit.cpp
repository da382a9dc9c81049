// The bandit checks of docs/testbed.md §3.4, as unit tests on softmax policies trained by gradient
// descent with our objectives (the same pairwise_loss the trainer uses):
//   - IPO vs DPO (Azar et al.): with a deterministic preference y1 > y2, DPO drives pi(y2) -> 0
//     for any beta, while IPO settles at its closed form log(pi1/pi2) = 1/(2 tau).
//   - Likelihood displacement (Razin et al.): with near-identical embeddings of y1 and y2, DPO
//     raises the margin while lowering the log-probabilities of both, moving the mass to a third
//     response never seen in the data (the unseen-output effect of Xu et al.).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "objective/pairwise.h"

namespace rlhf::objective {
namespace {

// Softmax policy whose logits are z = Phi theta (Phi: actions x features; identity = tabular).
struct Policy {
  std::vector<std::vector<double>> phi;
  std::vector<double> theta;
  std::vector<double> logp() const {
    std::vector<double> z(phi.size(), 0.0);
    for (size_t a = 0; a < phi.size(); ++a)
      for (size_t k = 0; k < theta.size(); ++k) z[a] += phi[a][k] * theta[k];
    double m = z[0];
    for (double v : z) m = std::max(m, v);
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    for (double& v : z) v -= m + std::log(s);
    return z;
  }
  // One gradient step on one pair (chosen w, rejected l) with reference log-probs ref.
  void step(const std::string& loss, double beta, int w, int l, const std::vector<double>& ref, double lr) {
    const std::vector<double> lp = logp();
    PairParams p;
    p.beta = beta;
    const PairBatchResult r = pairwise_loss({{loss, 1.0}}, {{lp[w], lp[l], ref[w], ref[l], 1, 1}}, p);
    // d logp(y) / d theta = phi_y - E_pi[phi]
    std::vector<double> expect(theta.size(), 0.0);
    for (size_t a = 0; a < phi.size(); ++a)
      for (size_t k = 0; k < theta.size(); ++k) expect[k] += std::exp(lp[a]) * phi[a][k];
    for (size_t k = 0; k < theta.size(); ++k)
      theta[k] -= lr * (r.grads[0].d_chosen * (phi[w][k] - expect[k]) + r.grads[0].d_rejected * (phi[l][k] - expect[k]));
  }
};

Policy tabular(int n) {
  Policy p;
  p.phi.assign(n, std::vector<double>(n, 0.0));
  for (int i = 0; i < n; ++i) p.phi[i][i] = 1.0;
  p.theta.assign(n, 0.0);
  return p;
}

TEST(Bandit, DpoDrivesTheRejectedActionToZeroWhereIpoStaysBounded) {
  const std::vector<double> ref = Policy(tabular(3)).logp();  // uniform reference
  for (double beta : {0.1, 1.0}) {
    Policy dpo = tabular(3);
    double pi2_half = 0;
    for (int t = 0; t < 4000; ++t) {
      dpo.step("sigmoid", beta, 0, 1, ref, 1.0);
      if (t == 1999) pi2_half = std::exp(dpo.logp()[1]);
    }
    const double pi2 = std::exp(dpo.logp()[1]);
    EXPECT_LT(pi2, 1e-3) << "beta " << beta;
    EXPECT_LT(pi2, pi2_half) << "DPO keeps pushing pi(y2) down, beta " << beta;
  }
  const double tau = 0.1;
  Policy ipo = tabular(3);
  for (int t = 0; t < 4000; ++t) ipo.step("ipo_sum", tau, 0, 1, ref, 0.05);
  const std::vector<double> lp = ipo.logp();
  EXPECT_NEAR(lp[0] - lp[1], 1.0 / (2 * tau), 1e-3);  // closed form with a uniform reference
  EXPECT_GT(std::exp(lp[1]), 1e-3);
}

TEST(Bandit, NearIdenticalEmbeddingsDisplaceBothLikelihoodsToAnUnseenResponse) {
  // y1 and y2 nearly share an embedding; y3 (never in the data) points along y1 - y2.
  Policy p;
  p.phi = {{1.0, 0.0}, {0.9, 0.1}, {1.0, -1.0}, {-1.0, 0.0}};
  p.theta = {0.0, 0.0};
  const std::vector<double> ref = p.logp(), start = p.logp();
  for (int t = 0; t < 300; ++t) p.step("sigmoid", 0.1, 0, 1, ref, 1.0);
  const std::vector<double> end = p.logp();
  EXPECT_GT(end[0] - end[1], start[0] - start[1]);  // the margin grows ...
  EXPECT_LT(end[0], start[0]);                      // ... while the chosen response loses probability,
  EXPECT_LT(end[1], start[1]);                      // the rejected one too,
  EXPECT_GT(end[2], start[2]);                      // and the unseen y3 gains it.
}

}  // namespace
}  // namespace rlhf::objective
