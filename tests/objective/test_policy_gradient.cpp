// Policy-gradient objectives: finite-difference gradients (double precision) for every loss and
// every input the engine back-propagates (lp, value, entropy), hand-computed values, and the
// PyTorch / TRL numbers of reference/make_online_fixtures.py at 1e-6 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "objective/policy_gradient.h"
#include "tensor/error.h"

namespace rlhf::objective {
namespace {

using nlohmann::json;

json load(const std::string& name) {
  std::ifstream in(std::filesystem::path(RLHF_FIXTURES_DIR) / "online" / (name + ".json"));
  if (!in) throw std::runtime_error("missing fixture online/" + name);
  return json::parse(in);
}

std::vector<double> vec(const json& j) {
  std::vector<double> v;
  for (const json& x : j) v.push_back(x.is_null() ? std::nan("") : x.get<double>());
  return v;
}

void expect_rel(double ours, double want, const std::string& what, double tol = 1e-6) {
  EXPECT_NEAR(ours, want, tol * std::max(1.0, std::fabs(want))) << what;
}

void expect_all(const std::vector<double>& ours, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(ours.size(), want.size()) << what;
  for (size_t i = 0; i < ours.size(); ++i) expect_rel(ours[i], want[i], what + " [" + std::to_string(i) + "]");
}

double metric(const PgMetrics& m, const std::string& k) {
  for (const auto& [n, v] : m)
    if (n == k) return v;
  ADD_FAILURE() << "no metric " << k;
  return std::nan("");
}

// Central differences of loss(x) against the analytic gradient, entry by entry.
void expect_fd(std::vector<double>& x, const std::function<double()>& loss, const std::vector<double>& analytic,
               const std::string& what) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss();
    x[i] = keep - h;
    const double down = loss();
    x[i] = keep;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, 1e-7 + 1e-6 * std::fabs(numeric)) << what << " [" << i << "]";
  }
}

// A small batch whose ratios straddle the clip range: 3 sequences, 7 tokens.
const Ragged kTokens = Ragged::from_lengths({3, 1, 3});
const std::vector<double> kLpOld{-1.2, -0.4, -2.1, -0.9, -1.6, -0.3, -0.8};
const std::vector<double> kLp{-1.0, -0.55, -2.05, -1.3, -1.35, -0.31, -1.1};
const std::vector<double> kLpRef{-1.5, -0.2, -2.4, -0.7, -1.9, -0.6, -0.5};
const std::vector<double> kAdv{0.8, -1.1, 0.3, 1.4, -0.6, 0.9, -0.2};

PpoLossInputs ppo_batch() {
  PpoLossInputs in;
  in.tokens = kTokens;
  in.lp = kLp, in.lp_old = kLpOld, in.advantages = kAdv;
  in.entropy = {2.1, 1.7, 0.9, 2.5, 1.1, 0.4, 1.8};
  // value slots: the tokens plus TRL's extra slot on the first two sequences
  in.value.slots = Ragged::from_lengths({4, 2, 3});
  in.value.values_old = {0.5, -0.2, 0.9, 1.1, 0.0, 0.3, -0.7, 0.2, 0.6};
  in.value.values = {0.8, -0.25, 0.6, 1.15, 0.45, 0.1, -0.55, 0.21, 1.0};
  in.value.returns = {1.4, 0.3, 0.2, 1.0, -0.6, 0.9, -0.1, 0.5, 0.4};
  return in;
}

// ---- PPO -----------------------------------------------------------------------------------------

TEST(PpoLoss, GradientsMatchFiniteDifferences) {
  PpoLossParams p;
  p.entropy_coef = 0.01;
  PpoLossInputs in = ppo_batch();
  const PolicyLossResult r = ppo_loss(in, p);
  auto loss = [&] { return ppo_loss(in, p).loss; };
  expect_fd(in.lp, loss, r.d_logp, "d_logp");
  expect_fd(in.value.values, loss, r.d_value, "d_value");
  expect_fd(in.entropy, loss, r.d_entropy, "d_entropy");
  // the batch exercises both branches of both clips
  EXPECT_GT(metric(r.metrics, "policy/clipfrac_avg"), 0);
  EXPECT_LT(metric(r.metrics, "policy/clipfrac_avg"), 1);
  EXPECT_GT(metric(r.metrics, "val/clipfrac_avg"), 0);
  EXPECT_LT(metric(r.metrics, "val/clipfrac_avg"), 1);
}

TEST(PpoLoss, HandComputed) {
  // token 0: A = 1, rho = 1.5 -> max(-1.5, -1.2) = -1.2, clipped, no gradient
  // token 1: A = -1, rho = 1.5 -> max(1.5, 1.2) = 1.5, gradient -A rho = 1.5
  // value: V = 1, V_old = 0.5, R = 0, c = 0.2 -> Vclip = 0.7; max(1, 0.49) = 1 -> 0.5 * 1
  PpoLossInputs in;
  in.tokens = Ragged::from_lengths({2});
  in.lp = {std::log(1.5), std::log(1.5)};
  in.lp_old = {0, 0};
  in.advantages = {1, -1};
  in.value.slots = Ragged::from_lengths({1});
  in.value.values = {1.0};
  in.value.values_old = {0.5};
  in.value.returns = {0.0};
  PpoLossParams p;  // cliprange 0.2, value 0.2, vf_coef 0.1
  const PolicyLossResult r = ppo_loss(in, p);
  EXPECT_NEAR(metric(r.metrics, "loss/policy_avg"), 0.15, 1e-12);
  EXPECT_NEAR(metric(r.metrics, "loss/value_avg"), 0.5, 1e-12);
  EXPECT_NEAR(r.loss, 0.15 + 0.1 * 0.5, 1e-12);
  EXPECT_NEAR(r.d_logp[0], 0.0, 1e-15);
  EXPECT_NEAR(r.d_logp[1], 0.75, 1e-12);
  EXPECT_NEAR(r.d_value[0], 0.1 * 1.0, 1e-12);
  EXPECT_NEAR(metric(r.metrics, "policy/clipfrac_avg"), 0.5, 1e-12);
  EXPECT_NEAR(metric(r.metrics, "val/clipfrac_avg"), 0.0, 1e-12);
  EXPECT_NEAR(metric(r.metrics, "policy/approxkl_avg"), 0.5 * std::log(1.5) * std::log(1.5), 1e-12);
  EXPECT_NEAR(metric(r.metrics, "val/ratio"), 1.5, 1e-12);
}

TEST(PpoLoss, MatchesPyTorchAndTrl) {
  const json f = load("ppo");
  const Ragged tokens = Ragged::from_lengths(f["lengths"].get<std::vector<size_t>>());
  const size_t T = f["max_response_length"];
  for (const json& c : f["cases"]) {
    const json& e = c["expected"];
    PpoLossInputs in;
    in.tokens = tokens;
    in.lp = vec(f["lp"]);
    in.lp_old = vec(f["lp_old"]);
    in.advantages = vec(e["advantages"]);
    std::vector<size_t> slot_len;
    for (size_t s = 0; s < tokens.sequences(); ++s)
      slot_len.push_back(tokens.length(s) + (c["placement"] == "trl_after_eos" && tokens.length(s) < T ? 1 : 0));
    in.value.slots = Ragged::from_lengths(slot_len);
    in.value.values = vec(c["values_theta"]);
    in.value.values_old = vec(c["values"]);
    in.value.returns = vec(e["returns"]);
    PpoLossParams p;
    p.cliprange = c["cliprange"];
    p.cliprange_value = c["cliprange_value"];
    p.vf_coef = c["vf_coef"];
    const PolicyLossResult r = ppo_loss(in, p);
    const std::string at = c["placement"].get<std::string>() + " " + c["kl_estimator"].get<std::string>();
    expect_rel(r.loss, e["loss"], at + " loss");
    expect_all(r.d_logp, vec(e["d_logp"]), at + " d_logp");
    expect_all(r.d_value, vec(e["d_value"]), at + " d_value");
    for (const char* k : {"loss/policy_avg", "loss/value_avg", "policy/approxkl_avg", "policy/clipfrac_avg",
                          "val/clipfrac_avg"})
      expect_rel(metric(r.metrics, k), e[k], at + " " + k);
    // TRL averages approxkl over the padded B x T grid
    expect_rel(metric(r.metrics, "policy/approxkl_avg") * static_cast<double>(tokens.size()) /
                   static_cast<double>(tokens.sequences() * T),
               e["policy/approxkl_avg_trl_padded"], at + " approxkl (TRL padded)");
  }
}

// ---- APA -----------------------------------------------------------------------------------------

TEST(ApaLoss, GradientsMatchFiniteDifferences) {
  ApaInputs in;
  in.tokens = kTokens;
  in.lp = kLp, in.lp_init = kLpRef, in.advantages = kAdv;
  PpoLossInputs v = ppo_batch();
  in.value = v.value;
  for (const double c : {std::numeric_limits<double>::infinity(), 0.2}) {
    ApaParams p;
    p.cliprange_value = c;
    const PolicyLossResult r = apa_loss(in, p);
    auto loss = [&] { return apa_loss(in, p).loss; };
    expect_fd(in.lp, loss, r.d_logp, "apa d_logp");
    expect_fd(in.value.values, loss, r.d_value, "apa d_value");
  }
}

TEST(ApaLoss, HandComputed) {
  // lp - lp_init - A / lambda = -1 + 1.2 - 0.5 / 0.1 = -4.8: loss 23.04, d = 2 * -4.8
  ApaInputs in;
  in.tokens = Ragged::from_lengths({1});
  in.lp = {-1}, in.lp_init = {-1.2}, in.advantages = {0.5};
  const PolicyLossResult r = apa_loss(in, ApaParams{});
  EXPECT_NEAR(r.loss, 23.04, 1e-12);
  EXPECT_NEAR(r.d_logp[0], -9.6, 1e-12);
  EXPECT_TRUE(r.d_value.empty());
}

TEST(ApaLoss, MatchesPyTorch) {
  const json f = load("apa");
  ApaInputs in;
  in.tokens = Ragged::from_lengths(f["lengths"].get<std::vector<size_t>>());
  in.lp = vec(f["lp"]), in.lp_init = vec(f["lp_init"]), in.advantages = vec(f["advantages"]);
  in.value.slots = in.tokens;
  in.value.values = vec(f["values"]), in.value.values_old = vec(f["values_old"]), in.value.returns = vec(f["returns"]);
  ApaParams p;
  p.lambda = f["lambda"];
  p.vf_coef = f["vf_coef"];
  const PolicyLossResult r = apa_loss(in, p);
  expect_rel(r.loss, f["loss"], "loss");
  expect_rel(metric(r.metrics, "loss/policy_avg"), f["loss/policy_avg"], "loss/policy_avg");
  expect_rel(metric(r.metrics, "loss/value_avg"), f["loss/value_avg"], "loss/value_avg");
  expect_all(r.d_logp, vec(f["d_logp"]), "d_logp");
  expect_all(r.d_value, vec(f["d_value"]), "d_value");
}

// ---- REINFORCE / RLOO ----------------------------------------------------------------------------

TEST(SequencePgLoss, GradientsMatchFiniteDifferences) {
  for (const auto surrogate : {SequenceSurrogate::log_prob, SequenceSurrogate::clipped_ratio}) {
    SequencePgInputs in;
    in.tokens = kTokens;
    in.lp = kLp, in.lp_old = kLpOld;
    in.advantages = {0.7, -1.2, 0.4};
    SequencePgParams p;
    p.surrogate = surrogate;
    p.epsilon_low = 0.3, p.epsilon_high = 0.25;
    const PolicyLossResult r = sequence_pg_loss(in, p);
    expect_fd(in.lp, [&] { return sequence_pg_loss(in, p).loss; }, r.d_logp, "sequence pg d_logp");
  }
}

TEST(SequencePgLoss, HandComputed) {
  // L = (-3, -3), A = (2, -1): log_prob loss = -mean(2 * -3, -1 * -3) = 1.5; d = -A / 2
  SequencePgInputs in;
  in.tokens = Ragged::from_lengths({2, 1});
  in.lp = {-1, -2, -3};
  in.lp_old = in.lp;
  in.advantages = {2, -1};
  SequencePgParams p;
  p.surrogate = SequenceSurrogate::log_prob;
  PolicyLossResult r = sequence_pg_loss(in, p);
  EXPECT_NEAR(r.loss, 1.5, 1e-12);
  EXPECT_EQ(r.d_logp, (std::vector<double>{-1, -1, 0.5}));
  // on fresh samples (rho = 1) TRL's clipped ratio has the same gradient and loss -mean A
  p.surrogate = SequenceSurrogate::clipped_ratio;
  r = sequence_pg_loss(in, p);
  EXPECT_NEAR(r.loss, -0.5, 1e-12);
  EXPECT_EQ(r.d_logp, (std::vector<double>{-1, -1, 0.5}));
  EXPECT_EQ(sequence_surrogate_from_name("log_prob"), SequenceSurrogate::log_prob);
  EXPECT_THROW(sequence_surrogate_from_name("ratio"), InputError);
}

TEST(SequencePgLoss, MatchesTrlRlooTrainer) {
  const json f = load("rloo");
  SequencePgInputs in;
  in.tokens = Ragged::from_lengths(f["lengths"].get<std::vector<size_t>>());
  in.lp = vec(f["lp"]), in.lp_old = vec(f["lp_old"]), in.advantages = vec(f["loss_advantages"]);
  for (const json& c : f["loss_cases"]) {
    SequencePgParams p;
    p.epsilon_low = c["epsilon_low"], p.epsilon_high = c["epsilon_high"];
    const PolicyLossResult r = sequence_pg_loss(in, p);
    expect_rel(r.loss, c["loss"], "loss");
    expect_all(r.d_logp, vec(c["d_logp"]), "d_logp");
    for (const char* k : {"clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"})
      expect_rel(metric(r.metrics, k), c[k], k);
  }
}

// ---- GRPO ----------------------------------------------------------------------------------------

TEST(GrpoLoss, GradientsMatchFiniteDifferences) {
  for (const char* type : {"grpo", "bnpo", "dr_grpo", "dapo"})
    for (const bool bias : {false, true}) {
      GrpoInputs in;
      in.tokens = kTokens;
      in.lp = kLp, in.lp_old = kLpOld, in.lp_ref = kLpRef;
      in.advantages = {0.7, -1.2, 0.4};
      GrpoParams p;
      p.loss_type = type;
      p.beta = 0.04;
      p.epsilon_low = 0.2, p.epsilon_high = 0.28;
      p.use_bias_correction_kl = bias;
      p.max_completion_length = 5;
      p.num_items_in_batch = 11;
      const PolicyLossResult r = grpo_loss(in, p);
      expect_fd(in.lp, [&] { return grpo_loss(in, p).loss; }, r.d_logp, std::string(type) + (bias ? " bias" : ""));
    }
}

TEST(GrpoLoss, AggregationsByHand) {
  // on-policy (rho = 1), beta 0, lengths (1, 2), A = (1, 0.5): token losses (-1 | -0.5, -0.5)
  GrpoInputs in;
  in.tokens = Ragged::from_lengths({1, 2});
  in.lp = {-1, -2, -3};
  in.advantages = {1, 0.5};
  GrpoParams p;
  p.max_completion_length = 4;
  p.num_items_in_batch = 10;
  auto run = [&](const char* type) {
    p.loss_type = type;
    return grpo_loss(in, p);
  };
  PolicyLossResult r = run("grpo");  // mean(-1/1, -1/2)
  EXPECT_NEAR(r.loss, -0.75, 1e-12);
  EXPECT_NEAR(r.d_logp[0], -0.5, 1e-12);
  EXPECT_NEAR(r.d_logp[1], -0.125, 1e-12);
  EXPECT_NEAR(run("bnpo").loss, -2.0 / 3.0, 1e-12);
  EXPECT_NEAR(run("dr_grpo").loss, -2.0 / 8.0, 1e-12);
  EXPECT_NEAR(run("dapo").loss, -0.2, 1e-12);
  p.num_items_in_batch = 0;  // this batch's tokens: dapo = bnpo
  EXPECT_NEAR(run("dapo").loss, -2.0 / 3.0, 1e-12);
  // k3 term: lp_ref = lp - 0.5 everywhere: k3 = e^-0.5 + 0.5 - 1 per token, gradient 1 - e^-0.5
  in.lp_ref = {-1.5, -2.5, -3.5};
  p.beta = 0.1;
  r = run("bnpo");
  const double k3 = std::exp(-0.5) - 0.5;
  EXPECT_NEAR(r.loss, -2.0 / 3.0 + 0.1 * k3, 1e-12);
  EXPECT_NEAR(r.d_logp[0], (-1 + 0.1 * (1 - std::exp(-0.5))) / 3, 1e-12);
  EXPECT_NEAR(metric(r.metrics, "kl"), k3, 1e-12);
  EXPECT_THROW(run("gspo"), InputError);
}

TEST(GrpoLoss, MatchesTrlComputeLoss) {
  const json f = load("grpo");
  GrpoInputs in;
  in.tokens = Ragged::from_lengths(f["lengths"].get<std::vector<size_t>>());
  in.lp = vec(f["lp"]), in.lp_old = vec(f["lp_old"]), in.lp_ref = vec(f["lp_ref"]);
  in.advantages = vec(f["loss_advantages"]);
  for (const json& c : f["loss_cases"]) {
    GrpoParams p;
    p.loss_type = c["loss_type"];
    p.beta = c["beta"];
    p.use_bias_correction_kl = c["use_bias_correction_kl"];
    p.epsilon_low = c["epsilon_low"], p.epsilon_high = c["epsilon_high"];
    p.max_completion_length = c["max_completion_length"];
    p.num_items_in_batch = c["num_items_in_batch"];
    const PolicyLossResult r = grpo_loss(in, p);
    const json& e = c["expected"];
    const std::string at = p.loss_type + " beta " + std::to_string(p.beta);
    expect_rel(r.loss, e["loss"], at + " loss");
    expect_all(r.d_logp, vec(e["d_logp"]), at + " d_logp");
    for (const char* k : {"clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"})
      expect_rel(metric(r.metrics, k), e[k], at + " " + k);
    if (e.contains("kl")) expect_rel(metric(r.metrics, "kl"), e["kl"], at + " kl");
  }
}

TEST(PolicyLosses, RejectMisshapenInput) {
  PpoLossInputs in = ppo_batch();
  in.lp.pop_back();
  EXPECT_THROW(ppo_loss(in, PpoLossParams{}), InputError);
  GrpoInputs g;
  g.tokens = kTokens;
  g.lp = kLp;
  g.advantages = {1, 2, 3};
  GrpoParams p;
  p.beta = 0.04;  // needs lp_ref
  EXPECT_THROW(grpo_loss(g, p), InputError);
}

}  // namespace
}  // namespace rlhf::objective
