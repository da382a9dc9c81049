#include "rollout/advantages.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/error.h"

namespace rlhf::rollout {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_layout(const Ragged& layout, size_t n, const char* what) {
  RLHF_CHECK(!layout.offsets.empty() && layout.offsets.front() == 0, "ragged layout must start at 0");
  RLHF_CHECK(layout.size() == n, std::string(what) + ": array size does not match the layout");
}

// Mean and Bessel-corrected std of the non-NaN entries in [first, last) with stride 1 (TRL's
// nanmean / nanstd); std is NaN with fewer than two entries, mean NaN with none.
std::pair<double, double> nan_mean_std(const double* first, const double* last) {
  double sum = 0;
  size_t n = 0;
  for (const double* p = first; p != last; ++p)
    if (!std::isnan(*p)) sum += *p, ++n;
  if (n == 0) return {kNaN, kNaN};
  const double mean = sum / static_cast<double>(n);
  if (n < 2) return {mean, kNaN};
  double ss = 0;
  for (const double* p = first; p != last; ++p)
    if (!std::isnan(*p)) ss += (*p - mean) * (*p - mean);
  return {mean, std::sqrt(ss / static_cast<double>(n - 1))};
}

void check_groups(size_t n, size_t group_size, const char* who) {
  if (group_size == 0 || n % group_size != 0)
    throw InputError(std::string(who) + ": the batch of " + std::to_string(n) + " samples is not a whole number of groups of " +
                     std::to_string(group_size));
}

}  // namespace

// ---- KL estimators ------------------------------------------------------------------------------

std::vector<double> kl_per_token(KlEstimator k, const std::vector<double>& lp, const std::vector<double>& lp_ref) {
  RLHF_CHECK(lp.size() == lp_ref.size(), "kl_per_token: lp and lp_ref differ in size");
  std::vector<double> out(lp.size());
  for (size_t i = 0; i < lp.size(); ++i) out[i] = kl_value(k, lp[i], lp_ref[i]);
  return out;
}

std::vector<double> sequence_sums(const Ragged& layout, const std::vector<double>& per_token) {
  check_layout(layout, per_token.size(), "sequence_sums");
  std::vector<double> out(layout.sequences(), 0.0);
  for (size_t s = 0; s < out.size(); ++s)
    for (size_t i = layout.begin(s); i < layout.end(s); ++i) out[s] += per_token[i];
  return out;
}

// ---- Masked statistics --------------------------------------------------------------------------

double masked_mean(const std::vector<double>& x, const std::vector<uint8_t>& mask) {
  RLHF_CHECK(mask.empty() || mask.size() == x.size(), "masked_mean: mask size");
  double sum = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (mask.empty() || mask[i]) sum += x[i], n += 1;
  if (n == 0) throw InputError("masked mean over no valid entries");
  return sum / n;
}

double masked_var(const std::vector<double>& x, const std::vector<uint8_t>& mask, bool unbiased) {
  const double mean = masked_mean(x, mask);
  double ss = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (mask.empty() || mask[i]) ss += (x[i] - mean) * (x[i] - mean), n += 1;
  if (!unbiased) return ss / n;
  if (n < 2) throw InputError("unbiased masked variance needs at least two valid entries (a larger minibatch)");
  return ss / (n - 1);
}

std::vector<double> masked_whiten(const std::vector<double>& x, const std::vector<uint8_t>& mask, bool shift_mean,
                                  double eps, bool unbiased) {
  const double mean = masked_mean(x, mask), inv_std = 1.0 / std::sqrt(masked_var(x, mask, unbiased) + eps);
  std::vector<double> out(x.size(), 0.0);
  for (size_t i = 0; i < x.size(); ++i)
    if (mask.empty() || mask[i]) out[i] = (x[i] - mean) * inv_std + (shift_mean ? 0.0 : mean);
  return out;
}

// ---- PPO rewards, GAE and advantages ------------------------------------------------------------

ScorePlacement score_placement_from_name(const std::string& name) {
  if (name == "last_token") return ScorePlacement::last_token;
  if (name == "trl_after_eos") return ScorePlacement::trl_after_eos;
  throw InputError("score_placement '" + name + "' is not known (expected last_token or trl_after_eos)");
}

Ragged value_slots(const Ragged& tokens, ScorePlacement placement, size_t max_response_length) {
  if (placement == ScorePlacement::last_token) return tokens;
  Ragged r;
  for (size_t s = 0; s < tokens.sequences(); ++s) {
    const size_t n = tokens.length(s);
    if (n > max_response_length)
      throw InputError("trl_after_eos: a response of " + std::to_string(n) + " tokens is longer than max_response_length " +
                       std::to_string(max_response_length));
    r.offsets.push_back(r.offsets.back() + n + (n < max_response_length ? 1 : 0));
  }
  return r;
}

std::vector<double> apply_missing_eos_penalty(const std::vector<double>& scores, const std::vector<uint8_t>& has_eos,
                                              double penalty) {
  RLHF_CHECK(scores.size() == has_eos.size(), "apply_missing_eos_penalty: one has_eos flag per score");
  std::vector<double> out = scores;
  for (size_t s = 0; s < out.size(); ++s)
    if (!has_eos[s]) out[s] -= penalty;
  return out;
}

std::vector<double> shape_rewards(const Ragged& tokens, const std::vector<double>& kl, double kl_coef,
                                  const std::vector<double>& scores, ScorePlacement placement,
                                  size_t max_response_length) {
  check_layout(tokens, kl.size(), "shape_rewards");
  RLHF_CHECK(scores.size() == tokens.sequences(), "shape_rewards: one score per sequence");
  const Ragged slots = value_slots(tokens, placement, max_response_length);
  std::vector<double> r(slots.size(), 0.0);
  for (size_t s = 0; s < tokens.sequences(); ++s) {
    if (tokens.length(s) == 0) throw InputError("shape_rewards: an empty response has no token to carry its score");
    for (size_t t = 0; t < tokens.length(s); ++t) r[slots.begin(s) + t] = -kl_coef * kl[tokens.begin(s) + t];
    r[slots.end(s) - 1] += scores[s];  // the last slot: last token, or TRL's extra slot when present
  }
  return r;
}

Gae gae(const Ragged& layout, const std::vector<double>& rewards, const std::vector<double>& values, double gamma,
        double lambda) {
  check_layout(layout, rewards.size(), "gae rewards");
  check_layout(layout, values.size(), "gae values");
  Gae g{std::vector<double>(rewards.size()), std::vector<double>(rewards.size())};
  for (size_t s = 0; s < layout.sequences(); ++s) {
    double next_value = 0, next_adv = 0;
    for (size_t i = layout.end(s); i-- > layout.begin(s);) {
      const double delta = rewards[i] + gamma * next_value - values[i];
      next_adv = delta + gamma * lambda * next_adv;
      next_value = values[i];
      g.advantages[i] = next_adv;
      g.returns[i] = next_adv + values[i];
    }
  }
  return g;
}

PpoAdvantages ppo_advantages(const PpoRollout& ro, const PpoShaping& sh) {
  const Ragged& tok = ro.tokens;
  const size_t S = tok.sequences();
  check_layout(tok, ro.lp_old.size(), "ppo_advantages lp_old");
  check_layout(tok, ro.lp_ref.size(), "ppo_advantages lp_ref");
  if (ro.scores.size() != S || ro.has_eos.size() != S)
    throw InputError("ppo_advantages: one score and one has_eos flag per sequence");
  PpoAdvantages a;
  a.slots = value_slots(tok, sh.placement, sh.max_response_length);
  if (ro.values.size() != a.slots.size())
    throw InputError("ppo_advantages: " + std::to_string(ro.values.size()) + " values for " +
                     std::to_string(a.slots.size()) + " value slots");
  a.kl = kl_per_token(sh.kl_estimator, ro.lp_old, ro.lp_ref);
  a.scores = apply_missing_eos_penalty(ro.scores, ro.has_eos, sh.missing_eos_penalty);
  a.rewards = shape_rewards(tok, a.kl, sh.kl_coef, a.scores, sh.placement, sh.max_response_length);
  if (sh.whiten_rewards) a.rewards = masked_whiten(a.rewards, {}, /*shift_mean=*/false);
  const Gae g = gae(a.slots, a.rewards, ro.values, sh.gamma, sh.lambda);
  a.returns = g.returns;
  // Policy advantages live on the response tokens only: drop TRL's extra slot.
  a.advantages.resize(tok.size());
  for (size_t s = 0; s < S; ++s)
    std::copy_n(g.advantages.begin() + a.slots.begin(s), tok.length(s), a.advantages.begin() + tok.begin(s));
  if (sh.whiten_advantages) a.advantages = masked_whiten(a.advantages);

  const std::vector<double> seq_kl = sequence_sums(tok, a.kl);
  double kl = 0, score = 0, eos = 0;
  for (size_t s = 0; s < S; ++s) kl += seq_kl[s], score += a.scores[s], eos += ro.has_eos[s] ? 1 : 0;
  kl /= static_cast<double>(S), score /= static_cast<double>(S);
  a.metrics = {{"objective/kl", kl},
               {"objective/non_score_reward", -sh.kl_coef * kl},
               {"objective/rlhf_reward", score - sh.kl_coef * kl},
               {"objective/scores", score},
               {"val/num_eos_tokens", eos}};
  return a;
}

// ---- KL controllers -----------------------------------------------------------------------------

KlController KlController::fixed(double coef) {
  KlController c;
  c.coef_ = coef;
  return c;
}

KlController KlController::adaptive(double init_coef, double target, double horizon) {
  if (!(target > 0) || !(horizon > 0)) throw InputError("adaptive KL controller: target and horizon must be positive");
  KlController c;
  c.coef_ = init_coef, c.target_ = target, c.horizon_ = horizon, c.adaptive_ = true;
  return c;
}

void KlController::update(double kl_observed, double n_steps) {
  if (!adaptive_) return;
  const double e = std::clamp(kl_observed / target_ - 1.0, -0.2, 0.2);
  coef_ *= 1.0 + e * n_steps / horizon_;
}

// ---- Sequence-level baselines -------------------------------------------------------------------

namespace {

Metrics reward_metrics(const std::vector<double>& rewards) {
  const auto [mean, std] = nan_mean_std(rewards.data(), rewards.data() + rewards.size());
  return {{"reward", mean}, {"reward_std", std}};
}

}  // namespace

SequenceAdvantages rloo_advantages(const std::vector<double>& scores, const std::vector<double>& seq_kl, double beta,
                                   size_t group_size, bool normalize) {
  const size_t n = scores.size();
  check_groups(n, group_size, "rloo");
  if (beta != 0 && seq_kl.size() != n) throw InputError("rloo: beta != 0 needs one sequence KL per sample");
  SequenceAdvantages out;
  out.rewards = scores;
  if (beta != 0)
    for (size_t i = 0; i < n; ++i) out.rewards[i] -= beta * seq_kl[i];
  out.advantages.assign(n, kNaN);
  for (size_t g = 0; g < n; g += group_size) {
    double sum = 0, count = 0;
    for (size_t i = g; i < g + group_size; ++i)
      if (!std::isnan(out.rewards[i])) sum += out.rewards[i], count += 1;
    if (group_size < 2) continue;  // no sibling: NaN, zeroed below
    for (size_t i = g; i < g + group_size; ++i)
      out.advantages[i] = out.rewards[i] - (sum - out.rewards[i]) / (count - 1);  // 0/0 = NaN alone in its group
  }
  if (normalize) {
    const auto [mean, std] = nan_mean_std(out.advantages.data(), out.advantages.data() + n);
    for (double& a : out.advantages) a = (a - mean) / (std + 1e-4);
  }
  for (double& a : out.advantages)
    if (std::isnan(a)) a = 0;
  out.metrics = reward_metrics(scores);
  return out;
}

std::vector<double> reinforce_advantages(const std::vector<double>& rewards, double baseline) {
  std::vector<double> out(rewards.size());
  for (size_t i = 0; i < rewards.size(); ++i) out[i] = std::isnan(rewards[i]) ? 0.0 : rewards[i] - baseline;
  return out;
}

GroupScaling group_scaling_from_name(const std::string& name) {
  if (name == "group") return GroupScaling::group;
  if (name == "batch") return GroupScaling::batch;
  if (name == "none") return GroupScaling::none;
  throw InputError("scale_rewards '" + name + "' is not known (expected group, batch or none)");
}

SequenceAdvantages group_advantages(const std::vector<double>& rewards, size_t group_size, GroupScaling scaling,
                                    double eps) {
  const size_t n = rewards.size();
  check_groups(n, group_size, "group advantages");
  SequenceAdvantages out;
  out.rewards = rewards;
  out.advantages.resize(n);
  // TRL takes the std of a single sample (group or batch) as 0, not undefined.
  const double batch_std = n > 1 ? nan_mean_std(rewards.data(), rewards.data() + n).second : 0.0;
  double zero_std = 0;
  for (size_t g = 0; g < n; g += group_size) {
    auto [mean, std] = nan_mean_std(rewards.data() + g, rewards.data() + g + group_size);
    if (group_size == 1) std = 0;
    if (scaling == GroupScaling::batch) std = batch_std;
    for (size_t i = g; i < g + group_size; ++i) {
      double a = rewards[i] - mean;
      if (scaling != GroupScaling::none) a /= std + eps;
      out.advantages[i] = std::isnan(a) ? 0.0 : a;
      zero_std += std::fabs(std) <= 1e-8 ? 1 : 0;  // torch.isclose(std, 0): NaN is not close
    }
  }
  out.metrics = reward_metrics(rewards);
  out.metrics.emplace_back("frac_reward_zero_std", zero_std / static_cast<double>(n));
  return out;
}

std::vector<double> spread_to_tokens(const Ragged& layout, const std::vector<double>& per_sequence) {
  RLHF_CHECK(per_sequence.size() == layout.sequences(), "spread_to_tokens: one value per sequence");
  std::vector<double> out(layout.size());
  for (size_t s = 0; s < layout.sequences(); ++s)
    std::fill(out.begin() + layout.begin(s), out.begin() + layout.end(s), per_sequence[s]);
  return out;
}

}  // namespace rlhf::rollout
