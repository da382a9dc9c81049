// Policy-gradient objectives of the online methods: PPO (clipped surrogate + clipped value loss),
// APA, REINFORCE / RLOO (sequence level) and GRPO. Inputs are flat per-token arrays laid out by
// a Ragged (one entry per scored response token, like the engine's Scores.logp); advantages come
// from src/rollout/advantages.h. Each returns the loss, d loss / d lp per token, d loss / d value
// per value slot (PPO, APA) and TRL-named metrics.
// Formulas: docs/algorithms.md §5.1 step 9 (PPO), §6 (APA), §7 (RLOO, GRPO), §4 (k3 in a loss).
// Online DPO needs nothing here: pairwise_loss "sigmoid" / "ipo_sum" on summed log-probs is
// TRL's OnlineDPOTrainer loss (§8: its IPO is not length-averaged).
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "objective/ragged.h"

namespace rlhf::objective {

using PgMetrics = std::vector<std::pair<std::string, double>>;

struct PolicyLossResult {
  double loss = 0;
  std::vector<double> d_logp;     // per token: d loss / d lp_theta
  std::vector<double> d_value;    // per value slot: d loss / d V_theta (PPO, APA; else empty)
  std::vector<double> d_entropy;  // per token: d loss / d entropy (PPO with entropy_coef != 0; else empty)
  double value_loss = 0;          // vf_coef * L_vf, the part of `loss` that is a mean over value slots (PPO, APA)
  PgMetrics metrics;
};

// Value loss shared by PPO and APA, over the value slots:
//   0.5 * mean_t max((V_t - R_t)^2, (clip(V_t, Vold_t - c, Vold_t + c) - R_t)^2)
// c = infinity is the plain 0.5 * MSE (values_old may then be empty).
struct ValueInputs {
  Ragged slots;
  std::vector<double> values, values_old, returns;
};
// The value term's metrics (loss/value_avg, val/clipfrac_avg): means over the value slots, where
// every other metric is a mean over tokens or sequences.
bool is_value_metric(const std::string& name);

// ---- PPO (§5.1 step 9, TRL PPOTrainer) ----------------------------------------------------------
//   rho_t  = exp(lp_t - lp_old_t)
//   L_pg   = mean_tokens max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps))
//   L_vf   = value loss above with c = cliprange_value
//   loss   = L_pg + vf_coef L_vf - entropy_coef mean_tokens(entropy_t)
// Metrics: loss/policy_avg (L_pg), loss/value_avg (L_vf), policy/approxkl_avg
// (0.5 mean_tokens (lp - lp_old)^2), policy/clipfrac_avg (share of tokens where the clipped branch
// is the larger), val/clipfrac_avg (same for the value loss), val/ratio (mean rho),
// policy/entropy_avg when entropy is given. TRL averages approxkl over the padded B x T grid
// (padding contributes 0); ours is over real tokens: multiply by tokens / (B T) to compare.
struct PpoLossInputs {
  Ragged tokens;
  std::vector<double> lp, lp_old, advantages;  // per token
  std::vector<double> entropy;                 // per token, optional (needed when entropy_coef != 0)
  ValueInputs value;
};
struct PpoLossParams {
  double cliprange = 0.2;
  double cliprange_value = 0.2;
  double vf_coef = 0.1;
  double entropy_coef = 0.0;  // entropy bonus, off by default (TRL has none; PPO-max keeps it off)
};
PolicyLossResult ppo_loss(const PpoLossInputs& in, const PpoLossParams& p);

// ---- APA (§6, microsoft/RLHF-APA) -------------------------------------------------------------
//   L_apa = mean_tokens (lp_t - lp_init_t - A_t / lambda)^2,   loss = L_apa + vf_coef L_vf
// lp_init = the initial (reference) policy's log-probs; the reference code uses lambda = 0.1
// (adv_coeff_sq = 10), vf_coef = 1 and an unclipped value loss.
// Metrics: loss/policy_avg, loss/value_avg.
struct ApaInputs {
  Ragged tokens;
  std::vector<double> lp, lp_init, advantages;  // per token
  ValueInputs value;                            // empty slots = no value loss
};
struct ApaParams {
  double lambda = 0.1;
  double vf_coef = 1.0;
  double cliprange_value = std::numeric_limits<double>::infinity();
};
PolicyLossResult apa_loss(const ApaInputs& in, const ApaParams& p);

// ---- REINFORCE / RLOO at the sequence level (§7.1) -----------------------------------------------
// L_i = sum_t lp_{i,t}; A_i from rollout::rloo_advantages or reinforce_advantages.
//   log_prob      (the papers): loss = -mean_i A_i L_i              d/dlp_{i,t} = -A_i / S
//   clipped_ratio (TRL RLOOTrainer): rho_i = exp(L_i - L_old_i),
//                 loss = mean_i max(-A_i rho_i, -A_i clip(rho_i, 1 - eps_low, 1 + eps_high))
// On fresh samples (rho = 1) both give the same gradient; the loss values differ.
// Metrics: loss/policy_avg; with clipped_ratio also clip_ratio/low_mean, clip_ratio/high_mean,
// clip_ratio/region_mean (shares of sequences, TRL's definitions).
enum class SequenceSurrogate { log_prob, clipped_ratio };
SequenceSurrogate sequence_surrogate_from_name(const std::string& name);  // "log_prob" | "clipped_ratio"
struct SequencePgInputs {
  Ragged tokens;
  std::vector<double> lp, lp_old;   // per token (lp_old only for clipped_ratio)
  std::vector<double> advantages;   // per sequence
};
struct SequencePgParams {
  SequenceSurrogate surrogate = SequenceSurrogate::clipped_ratio;
  double epsilon_low = 0.2, epsilon_high = 0.2;
};
PolicyLossResult sequence_pg_loss(const SequencePgInputs& in, const SequencePgParams& p);

// ---- GRPO (§7.2, TRL GRPOTrainer) ---------------------------------------------------------------
// Per token, with rho = exp(lp - lp_old) and the sequence's advantage A_i:
//   l_t = -min(rho A_i, clip(rho, 1 - eps_low, 1 + eps_high) A_i) + beta k3_t
//   k3_t = exp(lp_ref - lp) - (lp_ref - lp) - 1        (times rho with use_bias_correction_kl)
// Aggregation by loss_type:
//   grpo:    mean_i (sum_t l_t / |o_i|)                          (the paper)
//   bnpo:    sum l / (active tokens of this batch)
//   dr_grpo: sum l / (S * max_completion_length)
//   dapo:    sum l / num_items_in_batch (active tokens of the global, accumulated batch; TRL's
//            default; 0 = this batch's, which makes it bnpo)
// Metrics: kl (token mean of k3, when beta != 0), clip_ratio/low_mean, clip_ratio/high_mean,
// clip_ratio/region_mean (token means, TRL's definitions). frac_reward_zero_std comes with the
// advantages (rollout::group_advantages).
struct GrpoInputs {
  Ragged tokens;
  std::vector<double> lp;          // per token, policy being trained
  std::vector<double> lp_old;      // per token, sampling policy; empty = lp (fresh samples, rho = 1)
  std::vector<double> lp_ref;      // per token, reference; needed when beta != 0
  std::vector<double> advantages;  // per sequence
};
struct GrpoParams {
  std::string loss_type = "dapo";  // grpo | bnpo | dr_grpo | dapo
  double epsilon_low = 0.2, epsilon_high = 0.2;  // DAPO suggests epsilon_high = 0.28
  double beta = 0.0;                             // k3 weight (the paper: 0.04; TRL default 0)
  bool use_bias_correction_kl = false;
  size_t max_completion_length = 512;            // dr_grpo's normaliser
  double num_items_in_batch = 0;                 // dapo's normaliser; 0 = this batch's tokens
};
PolicyLossResult grpo_loss(const GrpoInputs& in, const GrpoParams& p);

}  // namespace rlhf::objective
