// The bandit checks: see bandits.h for the set-ups and the closed forms.
#include "testbed/bandits.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "objective/pairwise.h"
#include "objective/policy_gradient.h"
#include "objective/ranking.h"
#include "rollout/advantages.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf::testbed {
namespace {

using Matrix = std::vector<std::vector<double>>;

// pi(y) ∝ exp(phi(y) · theta), phi: actions x features (shapes: phi (A, F), theta (F)).
struct LogLinearPolicy {
  Matrix phi;
  std::vector<double> theta;

  std::vector<double> logp() const {
    std::vector<double> z(phi.size(), 0.0);
    for (size_t a = 0; a < phi.size(); ++a)
      for (size_t k = 0; k < theta.size(); ++k) z[a] += phi[a][k] * theta[k];
    const double m = *std::max_element(z.begin(), z.end());
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    const double lse = m + std::log(s);
    for (double& v : z) v -= lse;
    return z;
  }
  // theta -= lr * sum_a c_a d log pi(a) / d theta, with d log pi(a) / d theta = phi_a - E_pi[phi]
  // and c_a = d loss / d log pi(a).
  void step(const std::vector<double>& c, double lr) {
    const std::vector<double> lp = logp();
    std::vector<double> expect(theta.size(), 0.0);
    for (size_t a = 0; a < phi.size(); ++a)
      for (size_t k = 0; k < theta.size(); ++k) expect[k] += std::exp(lp[a]) * phi[a][k];
    double csum = 0;
    for (double v : c) csum += v;
    for (size_t k = 0; k < theta.size(); ++k) {
      double g = -csum * expect[k];
      for (size_t a = 0; a < phi.size(); ++a) g += c[a] * phi[a][k];
      theta[k] -= lr * g;
    }
  }
};

LogLinearPolicy tabular(const std::vector<double>& logits) {
  LogLinearPolicy p;
  p.phi.assign(logits.size(), std::vector<double>(logits.size(), 0.0));
  for (size_t i = 0; i < logits.size(); ++i) p.phi[i][i] = 1.0;
  p.theta = logits;
  return p;
}

// One plain gradient step of a pairwise loss (the trainer's own table) on the pair w > l.
void pair_step(LogLinearPolicy& pol, const std::string& loss, double beta, int w, int l,
               const std::vector<double>& ref_lp, double lr) {
  const std::vector<double> lp = pol.logp();
  objective::PairParams params;
  params.beta = beta;
  const objective::PairBatchResult r =
      objective::pairwise_loss({{loss, 1.0}}, {{lp[w], lp[l], ref_lp[w], ref_lp[l], 1, 1}}, params);
  std::vector<double> c(lp.size(), 0.0);
  c[w] += r.grads[0].d_chosen;
  c[l] += r.grads[0].d_rejected;
  pol.step(c, lr);
}

double prob(const LogLinearPolicy& p, int a) { return std::exp(p.logp()[a]); }

std::string fmt(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}
std::string g3(double x) { return fmt("%.3g", x); }

// A Bradley–Terry reward r = Phi w fitted by gradient steps on the pairs (w > l) with the
// reward-model loss of the trainer. Returns r per action.
std::vector<double> fit_reward(const Matrix& phi, const std::vector<std::pair<int, int>>& pairs, int steps, double lr) {
  std::vector<double> w(phi[0].size(), 0.0);
  auto rewards = [&] {
    std::vector<double> r(phi.size(), 0.0);
    for (size_t a = 0; a < phi.size(); ++a)
      for (size_t k = 0; k < w.size(); ++k) r[a] += phi[a][k] * w[k];
    return r;
  };
  for (int t = 0; t < steps; ++t) {
    const std::vector<double> r = rewards();
    std::vector<objective::RewardPair> batch;
    for (auto [c, l] : pairs) batch.push_back({r[c], r[l], 0.0});
    const objective::RewardPairResult res = objective::bradley_terry_loss(batch);
    for (size_t i = 0; i < pairs.size(); ++i)
      for (size_t k = 0; k < w.size(); ++k)
        w[k] -= lr * (res.d_chosen[i] * phi[pairs[i].first][k] + res.d_rejected[i] * phi[pairs[i].second][k]);
  }
  return rewards();
}

// RLOO with the KL to the reference folded into the reward (k1 of each sample), plain gradient
// steps on the log-prob surrogate: the gradient estimates d/dtheta (E_pi[r] - beta KL(pi||ref)).
void rloo_train(LogLinearPolicy& pol, const std::vector<double>& reward, const std::vector<double>& ref_lp, double beta,
                int steps, int k, double lr, uint64_t seed) {
  Rng rng(seed, 0xba4d);
  for (int t = 0; t < steps; ++t) {
    const std::vector<double> lp = pol.logp();
    std::vector<int> act(k);
    std::vector<double> scores(k), seq_kl(k), lp_s(k);
    for (int i = 0; i < k; ++i) {
      double u = rng.uniform(), acc = 0;
      int a = static_cast<int>(lp.size()) - 1;
      for (size_t j = 0; j < lp.size(); ++j) {
        acc += std::exp(lp[j]);
        if (u < acc) {
          a = static_cast<int>(j);
          break;
        }
      }
      act[i] = a;
      scores[i] = reward[a];
      seq_kl[i] = lp[a] - ref_lp[a];
      lp_s[i] = lp[a];
    }
    const rollout::SequenceAdvantages adv = rollout::rloo_advantages(scores, seq_kl, beta, static_cast<size_t>(k));
    objective::SequencePgInputs in;
    in.tokens = objective::Ragged::from_lengths(std::vector<size_t>(k, 1));
    in.lp = lp_s;
    in.lp_old = lp_s;
    in.advantages = adv.advantages;
    objective::SequencePgParams p;
    p.surrogate = objective::SequenceSurrogate::log_prob;
    const objective::PolicyLossResult r = objective::sequence_pg_loss(in, p);
    std::vector<double> c(lp.size(), 0.0);
    for (int i = 0; i < k; ++i) c[act[i]] += r.d_logp[i];
    pol.step(c, lr);
  }
}

}  // namespace

// ---- (i) ------------------------------------------------------------------------------------------

IpoVsDpoResult bandit_ipo_vs_dpo(const IpoVsDpoConfig& cfg) {
  if (cfg.ref_logits.size() != 3) throw InputError("bandit_ipo_vs_dpo: ref_logits needs 3 values");
  if (!(cfg.ipo_tau > 0)) throw InputError("bandit_ipo_vs_dpo: ipo_tau must be > 0");
  const std::vector<double> ref = tabular(cfg.ref_logits).logp();
  IpoVsDpoResult r;
  r.dpo_betas = cfg.dpo_betas;
  bool dpo_unbounded = true;
  for (double beta : cfg.dpo_betas) {
    LogLinearPolicy dpo = tabular(cfg.ref_logits);
    double half = 0;
    for (int t = 0; t < cfg.steps; ++t) {
      pair_step(dpo, "sigmoid", beta, 0, 1, ref, cfg.lr_dpo);
      if (t + 1 == cfg.steps / 2) half = prob(dpo, 1);
    }
    r.dpo_pi2_half.push_back(half);
    r.dpo_pi2.push_back(prob(dpo, 1));
    dpo_unbounded = dpo_unbounded && r.dpo_pi2.back() < 1e-3 && r.dpo_pi2.back() < half;
  }
  LogLinearPolicy ipo = tabular(cfg.ref_logits);
  for (int t = 0; t < cfg.steps; ++t) pair_step(ipo, "ipo_sum", cfg.ipo_tau, 0, 1, ref, cfg.lr_ipo);
  const std::vector<double> lp = ipo.logp();
  r.ipo_h = (lp[0] - ref[0]) - (lp[1] - ref[1]);
  r.ipo_h_closed_form = 1.0 / (2 * cfg.ipo_tau);
  r.ipo_pi2 = std::exp(lp[1]);
  std::vector<double> star = cfg.ref_logits;
  star[0] += 1.0 / (4 * cfg.ipo_tau);
  star[1] -= 1.0 / (4 * cfg.ipo_tau);
  r.ipo_pi2_closed_form = std::exp(tabular(star).logp()[1]);
  const bool ipo_bounded = std::abs(r.ipo_h - r.ipo_h_closed_form) < 1e-3 &&
                           std::abs(r.ipo_pi2 - r.ipo_pi2_closed_form) < 1e-4 && r.ipo_pi2 > 1e-3;
  r.observed = dpo_unbounded && ipo_bounded;
  std::string dpo_txt;
  for (size_t i = 0; i < r.dpo_betas.size(); ++i)
    dpo_txt += (i ? ", " : "") + std::string("beta ") + g3(r.dpo_betas[i]) + ": " + g3(r.dpo_pi2_half[i]) + " -> " +
               g3(r.dpo_pi2[i]);
  r.explanation = "deterministic y1 > y2: DPO keeps pushing pi(y2) down (" + dpo_txt + " over " +
                  std::to_string(cfg.steps / 2) + " more steps) while IPO (tau " + g3(cfg.ipo_tau) +
                  ") stops at log-ratio margin " + g3(r.ipo_h) + " (closed form 1/(2 tau) = " +
                  g3(r.ipo_h_closed_form) + "), pi(y2) = " + g3(r.ipo_pi2) + " (closed form " +
                  g3(r.ipo_pi2_closed_form) + ")";
  return r;
}

// ---- (ii) -----------------------------------------------------------------------------------------

UnseenMassResult bandit_unseen_mass(const UnseenMassConfig& cfg) {
  if (!(cfg.beta > 0)) throw InputError("bandit_unseen_mass: beta must be > 0");
  const Matrix phi_shared = {{1, 0, 0}, {0, 1, 0}, {1, 0, 1}};
  const Matrix phi_tab = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  UnseenMassResult r;
  LogLinearPolicy start{phi_shared, {0, 0, 0}};
  const std::vector<double> ref = start.logp();
  r.pi3_ref = std::exp(ref[2]);

  LogLinearPolicy dpo = start;
  for (int t = 0; t < cfg.dpo_steps; ++t) pair_step(dpo, "sigmoid", cfg.beta, 0, 1, ref, cfg.lr_dpo);
  r.pi3_dpo = prob(dpo, 2);
  LogLinearPolicy dpo_tab{phi_tab, {0, 0, 0}};
  for (int t = 0; t < cfg.dpo_steps; ++t) pair_step(dpo_tab, "sigmoid", cfg.beta, 0, 1, ref, cfg.lr_dpo);
  r.pi3_dpo_tabular = prob(dpo_tab, 2);

  const std::vector<std::pair<int, int>> data = {{0, 1}};
  const std::vector<double> reward = fit_reward(phi_tab, data, cfg.rm_steps, cfg.lr_rm);
  r.r1 = reward[0], r.r2 = reward[1], r.r3 = reward[2];
  LogLinearPolicy rl = start;
  rloo_train(rl, reward, ref, cfg.beta, cfg.rl_steps, cfg.rl_samples, cfg.lr_rl, cfg.seed);
  r.pi3_rl = prob(rl, 2);
  double z = 0;
  for (int a = 0; a < 3; ++a) z += std::exp(ref[a] + reward[a] / cfg.beta);
  r.pi3_rl_closed_form = std::exp(ref[2] + reward[2] / cfg.beta) / z;

  const std::vector<double> reward_shared = fit_reward(phi_shared, data, cfg.rm_steps, cfg.lr_rm);
  LogLinearPolicy rl_shared = start;
  rloo_train(rl_shared, reward_shared, ref, cfg.beta, cfg.rl_steps, cfg.rl_samples, cfg.lr_rl, cfg.seed + 1);
  r.pi3_rl_shared_rm = prob(rl_shared, 2);

  r.observed = r.pi3_dpo > r.pi3_ref && r.pi3_rl <= r.pi3_ref;
  r.explanation = "data only y1 > y2: DPO " + std::string(r.pi3_dpo > r.pi3_ref ? "raised" : "did not raise") +
                  " pi(y3) " + g3(r.pi3_ref) + " -> " + g3(r.pi3_dpo) +
                  " through the feature y3 shares with y1 (y3 never enters its loss); KL-regularized RLOO on a "
                  "reward fitted to the same pairs (r3 = " + g3(r.r3) + ") " +
                  (r.pi3_rl <= r.pi3_ref ? "lowered" : "raised") + " it to " + g3(r.pi3_rl) + " (optimum " +
                  g3(r.pi3_rl_closed_form) + "); controls: tabular DPO " + g3(r.pi3_dpo_tabular) +
                  ", RL on an RM sharing the policy's features " + g3(r.pi3_rl_shared_rm);
  return r;
}

// ---- (iii) ----------------------------------------------------------------------------------------

DisplacementResult bandit_likelihood_displacement(const DisplacementConfig& cfg) {
  const Matrix phi = {{1.0, 0.0}, {0.9, 0.1}, {1.0, -1.0}};
  DisplacementResult r;
  r.cosine = (phi[0][0] * phi[1][0] + phi[0][1] * phi[1][1]) /
             (std::hypot(phi[0][0], phi[0][1]) * std::hypot(phi[1][0], phi[1][1]));
  LogLinearPolicy p{phi, {0, 0}};
  const std::vector<double> ref = p.logp();
  for (int t = 0; t < cfg.steps; ++t) pair_step(p, "sigmoid", cfg.beta, 0, 1, ref, cfg.lr);
  const std::vector<double> end = p.logp();
  r.logp_chosen_start = ref[0], r.logp_chosen_end = end[0];
  r.logp_rejected_start = ref[1], r.logp_rejected_end = end[1];
  r.margin_start = ref[0] - ref[1], r.margin_end = end[0] - end[1];
  r.pi3_start = std::exp(ref[2]), r.pi3_end = std::exp(end[2]);

  LogLinearPolicy control{{{1.0, 0.0}, {-1.0, 0.0}, {1.0, -1.0}}, {0, 0}};
  const std::vector<double> cref = control.logp();
  for (int t = 0; t < cfg.steps; ++t) pair_step(control, "sigmoid", cfg.beta, 0, 1, cref, cfg.lr);
  r.control_logp_chosen_change = control.logp()[0] - cref[0];

  r.observed = r.margin_end > r.margin_start && r.logp_chosen_end < r.logp_chosen_start &&
               r.logp_rejected_end < r.logp_rejected_start;
  r.explanation = "near-identical responses (cosine " + fmt("%.3f", r.cosine) + "): DPO widened the margin " +
                  g3(r.margin_start) + " -> " + g3(r.margin_end) + " while log pi(chosen) went " +
                  g3(r.logp_chosen_start) + " -> " + g3(r.logp_chosen_end) + " and log pi(rejected) " +
                  g3(r.logp_rejected_start) + " -> " + g3(r.logp_rejected_end) + "; the unseen y3 took the mass (" +
                  g3(r.pi3_start) + " -> " + g3(r.pi3_end) + "); with a dissimilar rejected response log pi(chosen) " +
                  "changed by " + g3(r.control_logp_chosen_change);
  return r;
}

}  // namespace rlhf::testbed
