// The bandit checks of docs/testbed.md §3.4 (pattern 12 of §8): softmax policies over three
// responses, trained by plain gradient steps with the project's own objectives (pairwise_loss for
// DPO and IPO, bradley_terry_loss for the reward model, rloo_advantages + sequence_pg_loss for
// KL-regularized policy gradient). Each check returns its numbers, whether the literature's
// pattern was observed, and a one-line explanation for the bench report.
//
// The policies are log-linear, pi(y) ∝ exp(phi(y) · theta); the identity feature map is the
// tabular policy (logits as parameters). A response is one "token", so summed log-probs are the
// log-probs of the actions. Every check is deterministic (the RL check draws samples from `seed`).
//
// Example:
//   IpoVsDpoResult r = bandit_ipo_vs_dpo();
//   if (!r.observed) std::cerr << r.explanation << "\n";
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlhf::testbed {

// ---- (i) IPO vs DPO under a deterministic preference (Azar et al.) -------------------------------
// Data: y1 > y2 always. With a tabular policy both losses depend on theta only through
// h = log(pi1/pi_ref1) - log(pi2/pi_ref2) (the normalizer cancels), so gradient steps move theta
// along e1 - e2: theta1 + theta2 and theta3 stay at the reference's values.
//   DPO: d loss / dh = -beta sigmoid(-beta h) < 0 for every h, so h -> infinity and
//        pi(y2) -> 0 for any beta (the steps slow down but never stop).
//   IPO (ipo_sum: (h - 1/(2 tau))^2): the minimum is h* = 1/(2 tau); with the two conserved
//        quantities, the closed form is theta* = theta_ref + (1/(4 tau)) (1, -1, 0), i.e.
//        pi*(y) = softmax(theta_ref + (1/(4 tau), -1/(4 tau), 0)), bounded away from 0.
struct IpoVsDpoConfig {
  std::vector<double> ref_logits{0, 0, 0};  // pi_ref (and the start of both policies)
  std::vector<double> dpo_betas{0.1, 1.0};
  double ipo_tau = 0.1;
  int steps = 4000;
  double lr_dpo = 1.0, lr_ipo = 0.05;
};
struct IpoVsDpoResult {
  std::vector<double> dpo_betas;
  std::vector<double> dpo_pi2_half;   // pi(y2) after steps / 2, per beta
  std::vector<double> dpo_pi2;        // pi(y2) after steps, per beta
  double ipo_h = 0, ipo_h_closed_form = 0;      // h reached vs 1/(2 tau)
  double ipo_pi2 = 0, ipo_pi2_closed_form = 0;  // pi(y2) reached vs the closed form
  bool observed = false;
  std::string explanation;
};
IpoVsDpoResult bandit_ipo_vs_dpo(const IpoVsDpoConfig& cfg = {});

// ---- (ii) Mass on an unseen output (Xu et al.) ------------------------------------------------
// Data: only y1 > y2; y3 never appears. The policy's features: phi(y1) = (1,0,0),
// phi(y2) = (0,1,0), phi(y3) = (1,0,1): y3 shares y1's first feature and has one of its own, so
// the class is still every distribution over the three responses (full rank), but an update on
// y1 moves y3 too, as in a network. Reference = the start: theta = 0 (uniform).
//   DPO: theta moves along phi(y1) - phi(y2) = (1,-1,0), so the logits move as (d, -d, d): y3
//        rises with y1 toward 1/2, and nothing in the loss (which never sees y3) pulls it back.
//   RL: a tabular Bradley–Terry reward fitted to the same pairs (r3 gets no data and stays at 0),
//       then RLOO with the KL to pi_ref in the reward, sampling from the policy (y3 included).
//       Its optimum is pi_ref exp(r / beta) / Z: with r3 = 0 and r1 = -r2 = c (the fit's
//       gradients are opposite), Z = (2 cosh(c / beta) + 1) / 3 > 1, so pi(y3) = (1/3) / Z falls.
// Two controls, reported as numbers: the tabular policy (DPO then moves only theta1 - theta2 and
// pi(y3) falls), and RL on a reward model with the policy's own features (it extrapolates to y3,
// r3 = r1, and RL raises pi(y3) as well). The effect needs both an update that reaches y3
// through shared parameters and a reward that does not share them.
struct UnseenMassConfig {
  double beta = 1.0;             // DPO's beta and the RL KL coefficient (the same objective)
  int dpo_steps = 2000;
  double lr_dpo = 0.5;
  int rm_steps = 200;
  double lr_rm = 0.1;
  int rl_steps = 3000, rl_samples = 16;
  double lr_rl = 0.05;
  uint64_t seed = 1;
};
struct UnseenMassResult {
  double pi3_ref = 0;
  double pi3_dpo = 0;               // shared features
  double pi3_dpo_tabular = 0;       // control: tabular policy
  double r1 = 0, r2 = 0, r3 = 0;    // the fitted tabular reward
  double pi3_rl = 0;                // RLOO with KL on that reward (shared-feature policy)
  double pi3_rl_closed_form = 0;    // pi_ref(y3) exp(r3 / beta) / Z
  double pi3_rl_shared_rm = 0;      // control: RL on a reward model with the policy's features
  bool observed = false;
  std::string explanation;
};
UnseenMassResult bandit_unseen_mass(const UnseenMassConfig& cfg = {});

// ---- (iii) Likelihood displacement (Razin et al. 2024) ------------------------------------------
// Two near-identical responses, phi(y1) = (1, 0) chosen and phi(y2) = (0.9, 0.1) rejected
// (cosine 0.994), and a third phi(y3) = (1, -1), all from theta = 0 (uniform; reference = start).
// DPO moves theta along phi(y1) - phi(y2) = (0.1, -0.1): the logits move as (0.1, 0.08, 0.2) per
// unit, so the margin grows while y3, which lies along the update, takes the mass: the log-probs
// of both the chosen and the rejected response fall. Control: a dissimilar rejected response
// phi(y2) = (-1, 0), where the same loss raises the chosen log-prob.
struct DisplacementConfig {
  double beta = 0.1;
  int steps = 300;
  double lr = 1.0;
};
struct DisplacementResult {
  double cosine = 0;                                  // of phi(y1), phi(y2)
  double logp_chosen_start = 0, logp_chosen_end = 0;
  double logp_rejected_start = 0, logp_rejected_end = 0;
  double margin_start = 0, margin_end = 0;            // log pi(y1) - log pi(y2)
  double pi3_start = 0, pi3_end = 0;
  double control_logp_chosen_change = 0;              // dissimilar rejected response
  bool observed = false;
  std::string explanation;
};
DisplacementResult bandit_likelihood_displacement(const DisplacementConfig& cfg = {});

}  // namespace rlhf::testbed
