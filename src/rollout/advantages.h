// Advantage and KL estimators of the online methods: pure functions on the flat per-token arrays
// of a rollout batch. Formulas and conventions: docs/algorithms.md §4 (KL estimators),
// §5.1-5.3 and §5.5 (PPO rewards, whitening, GAE, KL controllers), §7 (RLOO, GRPO).
//
// Layout: a batch of S sequences stores its per-token numbers concatenated (like the engine's
// Scores.logp); a Ragged gives each sequence's [begin, end) in those arrays. Per-sequence numbers
// (scores, advantages of the sequence-level methods) are plain vectors of size S.
//
// Example (PPO, TRL's defaults):
//   PpoRollout r{layout, lp_old, lp_ref, values, scores, has_eos};
//   PpoShaping sh;  sh.kl_coef = ctl.value();
//   PpoAdvantages a = ppo_advantages(r, sh);    // a.advantages per token, a.returns per value slot
//   ... minibatch epochs with objective::ppo_loss ...
//   ctl.update(a.metrics "objective/kl", S);    // adaptive controller, after the step
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "objective/kl_estimators.h"
#include "objective/ragged.h"

namespace rlhf::rollout {

using Metrics = std::vector<std::pair<std::string, double>>;

using objective::Ragged;  // sequence s owns [begin(s), end(s)) of every per-token array

// ---- KL estimators (objective/kl_estimators.h: k1, k2, k3, values and derivatives) ---------------
using objective::KlEstimator;
using objective::kl_estimator_from_name;
using objective::kl_grad;
using objective::kl_value;
std::vector<double> kl_per_token(KlEstimator k, const std::vector<double>& lp, const std::vector<double>& lp_ref);
// Per sequence: sum of the token estimates (the sequence KL that RLOO folds into its reward).
std::vector<double> sequence_sums(const Ragged& layout, const std::vector<double>& per_token);

// ---- Masked statistics -----------------------------------------------------------------------
// An empty mask means every entry is valid; otherwise mask[i] != 0 marks a valid entry.
double masked_mean(const std::vector<double>& x, const std::vector<uint8_t>& mask = {});
// Variance over the valid entries; unbiased = Bessel's n/(n-1) (TRL's masked_var). Needs n >= 2.
double masked_var(const std::vector<double>& x, const std::vector<uint8_t>& mask = {}, bool unbiased = true);
// (x - mean) / sqrt(var + eps) over the valid entries, + mean again when !shift_mean (reward
// whitening keeps the mean, §5.1 step 6); invalid entries come back as 0 (TRL fills them so).
std::vector<double> masked_whiten(const std::vector<double>& x, const std::vector<uint8_t>& mask = {},
                                  bool shift_mean = true, double eps = 1e-8, bool unbiased = true);

// ---- PPO rewards, GAE and advantages (§5.1, §5.5) ----------------------------------------------
// Where the sequence score enters the per-token reward:
//   last_token:    on the last real response token (lm-human-preferences / OpenRLHF; the default).
//   trl_after_eos: TRL PPOTrainer's index quirk: one slot past the last kept token, i.e. the first
//                  padding slot, which then also carries a value and a value-loss term; a response
//                  that fills max_response_length has no such slot and gets it on its last token.
// Value slots are the positions that carry a value, a reward and a return: the response tokens,
// plus that extra slot under trl_after_eos. Advantages for the policy are per response token.
enum class ScorePlacement { last_token, trl_after_eos };
ScorePlacement score_placement_from_name(const std::string& name);  // "last_token" | "trl_after_eos"
Ragged value_slots(const Ragged& tokens, ScorePlacement placement, size_t max_response_length);

// Score minus the missing-EOS penalty for responses without a stop token (TRL missing_eos_penalty;
// penalty 0 = off).
std::vector<double> apply_missing_eos_penalty(const std::vector<double>& scores, const std::vector<uint8_t>& has_eos,
                                              double penalty);

// Per value slot: r_t = -kl_coef * kl_t on response tokens (0 on the extra slot), plus the score
// on the slot `placement` picks.
std::vector<double> shape_rewards(const Ragged& tokens, const std::vector<double>& kl, double kl_coef,
                                  const std::vector<double>& scores, ScorePlacement placement,
                                  size_t max_response_length);

// GAE over each sequence of `layout`, backwards, with V after the last slot = 0:
//   delta_t = r_t + gamma V_{t+1} - V_t,  A_t = delta_t + gamma lambda A_{t+1},  R_t = A_t + V_t.
struct Gae {
  std::vector<double> advantages, returns;
};
Gae gae(const Ragged& layout, const std::vector<double>& rewards, const std::vector<double>& values, double gamma,
        double lambda);

struct PpoRollout {
  Ragged tokens;                     // response tokens of each sequence
  std::vector<double> lp_old;        // per token: sampling policy (same temperature as sampling)
  std::vector<double> lp_ref;        // per token: frozen reference
  std::vector<double> values;        // per value slot (value_slots(tokens, placement, max_len))
  std::vector<double> scores;        // per sequence: reward source score
  std::vector<uint8_t> has_eos;      // per sequence: the response ended with a stop token
};

struct PpoShaping {
  double kl_coef = 0.05;             // TRL kl_coef; the KL controller's current value
  KlEstimator kl_estimator = KlEstimator::k1;
  ScorePlacement placement = ScorePlacement::last_token;
  size_t max_response_length = 0;   // needed by trl_after_eos
  double missing_eos_penalty = 0;    // 0 = off
  bool whiten_rewards = false;       // TRL default off, lm-human-preferences on
  bool whiten_advantages = true;
  double gamma = 1.0, lambda = 0.95;
};

struct PpoAdvantages {
  Ragged slots;                      // layout of rewards, returns (and the rollout's values)
  std::vector<double> kl;            // per token, the estimator's value
  std::vector<double> scores;        // per sequence, after the missing-EOS penalty
  std::vector<double> rewards;       // per slot, after optional whitening
  std::vector<double> advantages;    // per token, whitened over the response tokens if asked
  std::vector<double> returns;       // per slot: value targets (GAE advantages + values, unwhitened)
  // objective/kl (mean over sequences of summed kl), objective/non_score_reward,
  // objective/rlhf_reward, objective/scores, val/num_eos_tokens (responses with a stop token).
  Metrics metrics;
};

// Steps 3-8 of §5.1 over the whole rollout batch (TRL's scope of the statistics).
PpoAdvantages ppo_advantages(const PpoRollout& rollout, const PpoShaping& shaping);

// ---- KL controllers (§5.3) -------------------------------------------------------------------
// Fixed: the coefficient never changes. Adaptive (Ziegler et al.):
//   e = clip(kl_observed / target - 1, -0.2, 0.2);  coef *= 1 + e * n_steps / horizon
// with kl_observed the batch mean of the sequence KL and n_steps the episodes of the batch.
class KlController {
 public:
  static KlController fixed(double coef);
  static KlController adaptive(double init_coef, double target, double horizon);
  double value() const { return coef_; }
  bool is_adaptive() const { return adaptive_; }
  void update(double kl_observed, double n_steps);

 private:
  double coef_ = 0, target_ = 0, horizon_ = 1;
  bool adaptive_ = false;
};

// ---- Sequence-level baselines (§7) ----------------------------------------------------------
// Rewards are per sequence, groups are consecutive runs of group_size sequences (the k samples of
// one prompt). A NaN reward marks an unscorable sample: it is left out of every statistic of its
// group and gets advantage 0 (TRL).

// RLOO: R_i = score_i - beta * seq_kl_i; A_i = R_i - mean of the other scorable R_j of its group
// (a group with one scorable sample: 0). normalize: TRL normalize_advantages, then
// (A - mean A) / (std A + 1e-4) over the scorable samples of the batch (std Bessel-corrected).
// seq_kl may be empty when beta = 0 (TRL sums k1 of the sampling policy per sequence).
struct SequenceAdvantages {
  std::vector<double> rewards;       // per sequence, KL folded in (RLOO) or as given (GRPO)
  std::vector<double> advantages;
  Metrics metrics;                   // reward, reward_std (over scorable samples); GRPO adds frac_reward_zero_std
};
SequenceAdvantages rloo_advantages(const std::vector<double>& scores, const std::vector<double>& seq_kl, double beta,
                                   size_t group_size, bool normalize = false);

// REINFORCE with a baseline: A_i = reward_i - baseline (e.g. a moving average of past rewards,
// Ahmadian et al.'s "REINFORCE with baseline"); NaN rewards get 0.
std::vector<double> reinforce_advantages(const std::vector<double>& rewards, double baseline);

// GRPO (outcome supervision): A_i = (r_i - mean of its group) / (std + eps), std by `scaling`:
//   group: Bessel-corrected std of the group (TRL default; the paper divides by std alone, eps 0);
//   batch: Bessel-corrected std of the whole batch, the mean still per group (TRL);
//   none:  no division (Dr. GRPO).
// A group with a single scorable sample has no std under group scaling and gets advantage 0 (TRL).
// frac_reward_zero_std = share of samples whose std (group or batch, as scaled; group for none) is 0.
enum class GroupScaling { group, batch, none };
GroupScaling group_scaling_from_name(const std::string& name);  // "group" | "batch" | "none"
SequenceAdvantages group_advantages(const std::vector<double>& rewards, size_t group_size, GroupScaling scaling,
                                    double eps = 1e-4);

// Spread per-sequence advantages over every token of the sequence (GRPO's A_{i,t} = A_i).
std::vector<double> spread_to_tokens(const Ragged& layout, const std::vector<double>& per_sequence);

}  // namespace rlhf::rollout
