// Advantage and KL estimators: hand-computed values, and the PyTorch / TRL numbers of
// reference/make_online_fixtures.py (tests/fixtures/online/*.json) at 1e-6 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "rollout/advantages.h"
#include "tensor/error.h"

namespace rlhf::rollout {
namespace {

using nlohmann::json;

json load(const std::string& name) {
  std::ifstream in(std::filesystem::path(RLHF_FIXTURES_DIR) / "online" / (name + ".json"));
  if (!in) throw std::runtime_error("missing fixture online/" + name);
  return json::parse(in);
}

// JSON list to doubles; null is NaN (JSON has no NaN).
std::vector<double> vec(const json& j) {
  std::vector<double> v;
  for (const json& x : j) v.push_back(x.is_null() ? std::nan("") : x.get<double>());
  return v;
}

Ragged layout_of(const json& lengths) { return Ragged::from_lengths(lengths.get<std::vector<size_t>>()); }

void expect_rel(double ours, double want, const std::string& what, double tol = 1e-6) {
  EXPECT_NEAR(ours, want, tol * std::max(1.0, std::fabs(want))) << what;
}

void expect_all(const std::vector<double>& ours, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(ours.size(), want.size()) << what;
  for (size_t i = 0; i < ours.size(); ++i) expect_rel(ours[i], want[i], what + " [" + std::to_string(i) + "]");
}

double metric(const Metrics& m, const std::string& k) {
  for (const auto& [n, v] : m)
    if (n == k) return v;
  ADD_FAILURE() << "no metric " << k;
  return std::nan("");
}

// ---- KL estimators ------------------------------------------------------------------------------

TEST(KlEstimators, HandComputed) {
  // lp = -1, lp_ref = -1.5: log r = -0.5
  EXPECT_NEAR(kl_value(KlEstimator::k1, -1, -1.5), 0.5, 1e-15);
  EXPECT_NEAR(kl_value(KlEstimator::k2, -1, -1.5), 0.125, 1e-15);
  EXPECT_NEAR(kl_value(KlEstimator::k3, -1, -1.5), std::exp(-0.5) - 1 + 0.5, 1e-15);
  EXPECT_EQ(kl_grad(KlEstimator::k1, -1, -1.5), 1.0);
  EXPECT_NEAR(kl_grad(KlEstimator::k2, -1, -1.5), 0.5, 1e-15);
  EXPECT_NEAR(kl_grad(KlEstimator::k3, -1, -1.5), 1 - std::exp(-0.5), 1e-15);
  // k1 is negative when the reference is the likelier; k2, k3 never are
  EXPECT_LT(kl_value(KlEstimator::k1, -2, -1), 0);
  EXPECT_GT(kl_value(KlEstimator::k3, -2, -1), 0);
  EXPECT_EQ(kl_estimator_from_name("k3"), KlEstimator::k3);
  EXPECT_THROW(kl_estimator_from_name("k4"), InputError);
}

TEST(KlEstimators, MatchPyTorchValuesAndGradients) {
  const json f = load("kl");
  const auto lp = vec(f["lp"]), ref = vec(f["lp_ref"]);
  for (const auto& [name, k] : {std::pair{"k1", KlEstimator::k1}, {"k2", KlEstimator::k2}, {"k3", KlEstimator::k3}}) {
    expect_all(kl_per_token(k, lp, ref), vec(f[name]), name);
    std::vector<double> d;
    for (size_t i = 0; i < lp.size(); ++i) d.push_back(kl_grad(k, lp[i], ref[i]));
    expect_all(d, vec(f[std::string("d_") + name]), std::string("d_") + name);
  }
}

TEST(KlEstimators, SequenceSums) {
  const Ragged r = Ragged::from_lengths({2, 0, 1});
  EXPECT_EQ(sequence_sums(r, {1, 2, 4}), (std::vector<double>{3, 0, 4}));
}

// ---- Whitening ----------------------------------------------------------------------------------

TEST(Whitening, HandComputed) {
  // valid 1, 2, 3 (9 masked out): mean 2, unbiased var 1, biased 2/3
  const std::vector<double> x{1, 9, 2, 3};
  const std::vector<uint8_t> m{1, 0, 1, 1};
  EXPECT_DOUBLE_EQ(masked_mean(x, m), 2.0);
  EXPECT_DOUBLE_EQ(masked_var(x, m), 1.0);
  EXPECT_DOUBLE_EQ(masked_var(x, m, false), 2.0 / 3.0);
  const double s = 1 / std::sqrt(1 + 1e-8);
  expect_all(masked_whiten(x, m), {-s, 0, 0, s}, "shift_mean");
  expect_all(masked_whiten(x, m, false), {2 - s, 0, 2, 2 + s}, "keep mean");
  EXPECT_THROW(masked_var({1.0}, {}), InputError);  // Bessel needs two entries
}

TEST(Whitening, MatchesTrlMaskedWhiten) {
  const json f = load("whiten");
  const auto x = vec(f["x"]);
  std::vector<uint8_t> m;
  for (const json& b : f["mask"]) m.push_back(b.get<int>() != 0);
  expect_rel(masked_mean(x, m), f["trl_masked_mean"], "masked_mean");
  expect_rel(masked_var(x, m), f["trl_masked_var"], "masked_var");
  expect_rel(masked_var(x, m, false), f["var_biased"], "biased var");
  auto valid = [&](const std::vector<double>& w) {
    std::vector<double> out;
    for (size_t i = 0; i < w.size(); ++i)
      if (m[i]) out.push_back(w[i]);
    return out;
  };
  expect_all(valid(masked_whiten(x, m)), vec(f["trl_whiten_shift"]), "whiten");
  expect_all(valid(masked_whiten(x, m, false)), vec(f["trl_whiten_keep_mean"]), "whiten keep mean");
}

// ---- PPO rewards and GAE -------------------------------------------------------------------------

TEST(PpoRewards, ScorePlacementAndSlots) {
  const Ragged tok = Ragged::from_lengths({2, 3});
  const std::vector<double> kl{0.1, 0.2, 0.3, 0.4, 0.5}, scores{1, 2};
  expect_all(shape_rewards(tok, kl, 0.5, scores, ScorePlacement::last_token, 3), {-0.05, 0.9, -0.15, -0.2, 1.75},
             "last_token");
  // TRL: the score one past the last kept token, except for a response that fills the maximum length
  const Ragged slots = value_slots(tok, ScorePlacement::trl_after_eos, 3);
  EXPECT_EQ(slots.offsets, (std::vector<size_t>{0, 3, 6}));
  expect_all(shape_rewards(tok, kl, 0.5, scores, ScorePlacement::trl_after_eos, 3), {-0.05, -0.1, 1, -0.15, -0.2, 1.75},
             "trl_after_eos");
  EXPECT_THROW(value_slots(tok, ScorePlacement::trl_after_eos, 2), InputError);
  EXPECT_EQ(apply_missing_eos_penalty({1, 2}, {1, 0}, 0.5), (std::vector<double>{1, 1.5}));
  EXPECT_EQ(score_placement_from_name("trl_after_eos"), ScorePlacement::trl_after_eos);
  EXPECT_THROW(score_placement_from_name("eos"), InputError);
}

TEST(Gae, HandComputed) {
  // sequence 0: r = (0, 0, 1), V = (0.5, 0.2, 0.1), gamma 1, lambda 0.5
  //   t2: delta 0.9, A 0.9, R 1.0; t1: delta -0.1, A 0.35, R 0.55; t0: delta -0.3, A -0.125, R 0.375
  // sequence 1: one token, r = 2, V = 1: A 1, R 2 (nothing flows between sequences)
  const Gae g = gae(Ragged::from_lengths({3, 1}), {0, 0, 1, 2}, {0.5, 0.2, 0.1, 1}, 1.0, 0.5);
  expect_all(g.advantages, {-0.125, 0.35, 0.9, 1.0}, "A");
  expect_all(g.returns, {0.375, 0.55, 1.0, 2.0}, "R");
  // gamma discounts the bootstrap: gamma 0.5, lambda 1 on sequence 0: A2 = 0.9, A1 = 0 + 0.05 - 0.2 + 0.45
  const Gae d = gae(Ragged::from_lengths({3}), {0, 0, 1}, {0.5, 0.2, 0.1}, 0.5, 1.0);
  expect_rel(d.advantages[1], 0.3, "discounted A1");
  expect_rel(d.advantages[0], 0.1 - 0.5 + 0.15, "discounted A0");
}

TEST(PpoAdvantages, MatchPyTorchAndTrl) {
  const json f = load("ppo");
  for (const json& c : f["cases"]) {
    PpoRollout ro;
    ro.tokens = layout_of(f["lengths"]);
    ro.lp_old = vec(f["lp_old"]);
    ro.lp_ref = vec(f["lp_ref"]);
    ro.values = vec(c["values"]);
    ro.scores = vec(f["scores"]);
    for (const json& b : f["has_eos"]) ro.has_eos.push_back(b.get<int>() != 0);
    PpoShaping sh;
    sh.kl_coef = c["kl_coef"];
    sh.kl_estimator = kl_estimator_from_name(c["kl_estimator"]);
    sh.placement = score_placement_from_name(c["placement"]);
    sh.max_response_length = f["max_response_length"];
    sh.missing_eos_penalty = c["missing_eos_penalty"];
    sh.whiten_rewards = c["whiten_rewards"];
    sh.gamma = c["gamma"];
    sh.lambda = c["lam"];
    const PpoAdvantages a = ppo_advantages(ro, sh);
    const json& e = c["expected"];
    const std::string at = c["placement"].get<std::string>() + " " + c["kl_estimator"].get<std::string>();
    expect_all(a.rewards, vec(e["rewards"]), at + " rewards");
    expect_all(a.advantages, vec(e["advantages"]), at + " advantages");
    expect_all(a.returns, vec(e["returns"]), at + " returns");
    expect_rel(metric(a.metrics, "objective/kl"), e["objective/kl"], at + " objective/kl");
    expect_rel(metric(a.metrics, "objective/scores"), e["objective/scores"], at + " objective/scores");
    expect_rel(metric(a.metrics, "objective/rlhf_reward"),
               e["objective/scores"].get<double>() - sh.kl_coef * e["objective/kl"].get<double>(), at + " rlhf_reward");
  }
}

TEST(PpoAdvantages, RejectsMisshapenInput) {
  PpoRollout ro;
  ro.tokens = Ragged::from_lengths({2});
  ro.lp_old = {-1, -1};
  ro.lp_ref = {-1, -1};
  ro.values = {0, 0};
  ro.scores = {1};
  ro.has_eos = {1};
  PpoShaping sh;
  EXPECT_NO_THROW(ppo_advantages(ro, sh));
  sh.placement = ScorePlacement::trl_after_eos;
  sh.max_response_length = 4;
  EXPECT_THROW(ppo_advantages(ro, sh), InputError);  // the extra slot needs a third value
  ro.values.push_back(0);
  EXPECT_NO_THROW(ppo_advantages(ro, sh));
}

// ---- KL controllers ------------------------------------------------------------------------------

TEST(KlController, AdaptiveTrajectoryByHand) {
  // Ziegler et al.: target 6, horizon 10000, 512 episodes per batch: gain 0.0512 per unit of e
  KlController c = KlController::adaptive(0.1, 6.0, 10000.0);
  c.update(9.0, 512);  // e = clip(0.5) = 0.2
  EXPECT_NEAR(c.value(), 0.1 * 1.01024, 1e-15);
  c.update(6.0, 512);  // e = 0
  EXPECT_NEAR(c.value(), 0.1 * 1.01024, 1e-15);
  c.update(3.0, 512);  // e = clip(-0.5) = -0.2
  EXPECT_NEAR(c.value(), 0.1 * 1.01024 * 0.98976, 1e-15);
  c.update(6.6, 512);  // e = 0.1
  EXPECT_NEAR(c.value(), 0.1 * 1.01024 * 0.98976 * 1.00512, 1e-15);
  KlController f = KlController::fixed(0.05);
  f.update(100.0, 512);
  EXPECT_EQ(f.value(), 0.05);
  EXPECT_FALSE(f.is_adaptive());
  EXPECT_THROW(KlController::adaptive(0.1, 0.0, 10000.0), InputError);
}

// ---- RLOO / REINFORCE / GRPO advantages ----------------------------------------------------------

TEST(Rloo, LeaveOneOutByHand) {
  // group [1, 2, 4]: baselines 3, 2.5, 1.5 = k/(k-1) (R - mean)
  auto a = rloo_advantages({1, 2, 4}, {}, 0.0, 3);
  expect_all(a.advantages, {-2, -0.5, 2.5}, "loo");
  // an unscorable sample: out of its siblings' baselines, advantage 0; alone in its group: 0
  a = rloo_advantages({1, std::nan(""), 4, std::nan(""), 5, 7}, {}, 0.0, 3);
  expect_all(a.advantages, {-3, 0, 3, 0, -2, 2}, "nan");
  a = rloo_advantages({std::nan(""), 5}, {}, 0.0, 2);
  expect_all(a.advantages, {0, 0}, "single scorable");
  // the sequence KL enters the reward: R = (1 - 0.5*2, 2 - 0.5*0) = (0, 2)
  a = rloo_advantages({1, 2}, {2, 0}, 0.5, 2);
  expect_all(a.rewards, {0, 2}, "rewards");
  expect_all(a.advantages, {-2, 2}, "kl advantages");
  EXPECT_THROW(rloo_advantages({1, 2, 3}, {}, 0.0, 2), InputError);
  EXPECT_THROW(rloo_advantages({1, 2}, {}, 0.1, 2), InputError);
}

TEST(Rloo, MatchesTrl) {
  const json f = load("rloo");
  const auto rewards = vec(f["rewards"]), seq_kl = vec(f["seq_kl"]);
  // the sequence KL is the summed k1 of the sampling policy
  expect_all(sequence_sums(layout_of(f["lengths"]), kl_per_token(KlEstimator::k1, vec(f["lp_old"]), vec(f["lp_ref"]))),
             seq_kl, "seq kl");
  for (const json& c : f["advantage_cases"]) {
    const auto a = rloo_advantages(rewards, seq_kl, f["beta"], c["group_size"], c["normalize"]);
    expect_all(a.advantages, vec(c["advantages"]),
               "k=" + std::to_string(c["group_size"].get<int>()) + " normalize=" + std::to_string(c["normalize"].get<bool>()));
  }
}

TEST(Reinforce, BaselineSubtracted) {
  expect_all(reinforce_advantages({1, std::nan(""), 3}, 1.5), {-0.5, 0, 1.5}, "reinforce");
}

TEST(GroupAdvantages, ByHand) {
  // group [1, 3]: mean 2, Bessel std sqrt(2); group [2, 2]: std 0 -> advantages 0, counted as zero std
  const auto a = group_advantages({1, 3, 2, 2}, 2, GroupScaling::group);
  const double s = std::sqrt(2.0) + 1e-4;
  expect_all(a.advantages, {-1 / s, 1 / s, 0, 0}, "group");
  expect_rel(metric(a.metrics, "frac_reward_zero_std"), 0.5, "frac_reward_zero_std");
  expect_rel(metric(a.metrics, "reward"), 2.0, "reward");
  // none: mean subtraction only (Dr. GRPO); eps 0: the paper's (r - mean) / std
  expect_all(group_advantages({1, 3, 2, 2}, 2, GroupScaling::none).advantages, {-1, 1, 0, 0}, "none");
  expect_all(group_advantages({1, 3}, 2, GroupScaling::group, 0.0).advantages, {-1 / std::sqrt(2.0), 1 / std::sqrt(2.0)},
             "paper");
  // one sample per group (TRL's eval with num_generations 1): std taken as 0, advantage 0
  const auto one = group_advantages({1, 3}, 1, GroupScaling::group);
  expect_all(one.advantages, {0, 0}, "group of one");
  expect_rel(metric(one.metrics, "frac_reward_zero_std"), 1.0, "group of one: zero std");
  expect_rel(metric(group_advantages({4}, 1, GroupScaling::batch).metrics, "frac_reward_zero_std"), 1.0, "batch of one");
  EXPECT_EQ(group_scaling_from_name("batch"), GroupScaling::batch);
  EXPECT_THROW(group_scaling_from_name("global"), InputError);
}

TEST(GroupAdvantages, MatchTrl) {
  const json f = load("grpo");
  const auto rewards = vec(f["rewards"]);
  for (const json& c : f["advantage_cases"]) {
    const auto a = group_advantages(rewards, c["group_size"], group_scaling_from_name(c["scaling"]));
    const std::string at = "k=" + std::to_string(c["group_size"].get<int>()) + " " + c["scaling"].get<std::string>();
    expect_all(a.advantages, vec(c["advantages"]), at);
    expect_rel(metric(a.metrics, "frac_reward_zero_std"), c["frac_reward_zero_std"], at + " frac_reward_zero_std");
  }
}

TEST(GroupAdvantages, SpreadToTokens) {
  EXPECT_EQ(spread_to_tokens(Ragged::from_lengths({2, 1}), {0.5, -1}), (std::vector<double>{0.5, 0.5, -1}));
}

TEST(RaggedLayout, SelectAndGatherRows) {
  const Ragged r = Ragged::from_lengths({2, 1, 3});
  const std::vector<double> x{1, 2, 3, 4, 5, 6};
  EXPECT_EQ(r.select({2, 0}).offsets, (std::vector<size_t>{0, 3, 5}));
  EXPECT_EQ(r.gather(x, {2, 0}), (std::vector<double>{4, 5, 6, 1, 2}));
}

}  // namespace
}  // namespace rlhf::rollout
