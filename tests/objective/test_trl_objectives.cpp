// Our objectives against TRL 1.16 on the numbers TRL itself computed: for every recorded step of
// every DPOTrainer loss_type, RewardTrainer and KTOTrainer run (reference/make_trl_fixtures.py),
// feed TRL's per-row log-probs (or rewards) to our objective and compare the loss and metrics TRL
// logged. The per-row inputs are TRL's fp32 values, so agreement is to fp32 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "objective/pairwise.h"
#include "objective/ranking.h"
#include "objective/unpaired.h"

namespace rlhf::objective {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json load_run(const std::string& name) {
  std::ifstream in(fs::path(RLHF_FIXTURES_DIR) / "trl" / "runs" / (name + ".json"));
  if (!in) throw std::runtime_error("missing fixture run " + name);
  return json::parse(in);
}

void expect_rel(double ours, double trl, double tol, const std::string& what) {
  EXPECT_NEAR(ours, trl, tol * std::max(1.0, std::fabs(trl))) << what;
}

double metric(const std::vector<std::pair<std::string, double>>& m, const std::string& k) {
  for (const auto& [n, v] : m)
    if (n == k) return v;
  return std::nan("");
}

class TrlDpo : public ::testing::TestWithParam<std::string> {};

TEST_P(TrlDpo, LossAndRewardMetricsMatchEveryStep) {
  const json run = load_run(GetParam());
  const json& cfg = run["config"];
  PairParams p;
  p.beta = cfg["beta"].get<double>();
  p.label_smoothing = cfg["label_smoothing"].get<double>();
  std::vector<std::pair<std::string, double>> losses;
  const auto& types = cfg["loss_type"];
  for (size_t i = 0; i < types.size(); ++i)
    losses.emplace_back(types[i].get<std::string>(),
                        cfg["loss_weights"].is_null() ? 1.0 : cfg["loss_weights"][i].get<double>());
  for (const json& step : run["steps"]) {
    const json& r = step["per_row"];
    std::vector<PairInputs> pairs;
    for (size_t i = 0; i < r["logps_chosen"].size(); ++i)
      pairs.push_back({r["logps_chosen"][i], r["logps_rejected"][i], r["ref_logps_chosen"][i],
                       r["ref_logps_rejected"][i], r["len_chosen"][i], r["len_rejected"][i]});
    const std::string at = GetParam() + " step " + std::to_string(step["step"].get<int>());
    const json& m = step["metrics"];
    expect_rel(pairwise_loss(losses, pairs, p).loss, m["loss"].get<double>(), 1e-5, at + " loss");
    const auto ours = pairwise_metrics(pairs, p.beta);
    for (const char* k : {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                          "logps/chosen", "logps/rejected"})
      expect_rel(metric(ours, k), m[k].get<double>(), 1e-5, at + " " + k);
  }
}

INSTANTIATE_TEST_SUITE_P(AllLossTypes, TrlDpo,
                         ::testing::Values("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair",
                                           "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop",
                                           "sft", "sigmoid_norm", "sigmoid_sft"));

class TrlReward : public ::testing::TestWithParam<std::string> {};

TEST_P(TrlReward, BradleyTerryMatchesEveryStep) {
  const json run = load_run(GetParam());
  const json& c = run["config"]["center_rewards_coefficient"];
  const double eta = c.is_null() ? 0.0 : c.get<double>();
  for (const json& step : run["steps"]) {
    const json& r = step["per_row"];
    std::vector<RewardPair> pairs;
    for (size_t i = 0; i < r["reward_chosen"].size(); ++i)
      pairs.push_back({r["reward_chosen"][i], r["reward_rejected"][i], r.contains("margin") ? r["margin"][i].get<double>() : 0.0});
    const auto res = bradley_terry_loss(pairs, eta);
    const std::string at = GetParam() + " step " + std::to_string(step["step"].get<int>());
    const json& m = step["metrics"];
    expect_rel(res.loss, m["loss"].get<double>(), 1e-5, at + " loss");
    expect_rel(res.accuracy, m["accuracy"].get<double>(), 1e-6, at + " accuracy");
    expect_rel(res.margin, m["margin"].get<double>(), 1e-5, at + " margin");
  }
}

INSTANTIATE_TEST_SUITE_P(Runs, TrlReward, ::testing::Values("reward", "reward_center", "reward_margin"));

TEST(TrlKto, LossAndReferencePointMatchEveryStep) {
  for (const std::string name : {"kto", "kto_apo_zero_unpaired"}) {
    const json run = load_run(name);
    const json& cfg = run["config"];
    for (const json& step : run["steps"]) {
      const json& r = step["per_row"];
      std::vector<UnpairedInputs> batch;
      for (size_t i = 0; i < r["logps"].size(); ++i)
        batch.push_back({r["logps"][i], r["ref_logps"][i], step["label"][i].get<bool>()});
      const std::string at = name + " step " + std::to_string(step["step"].get<int>());
      UnpairedResult res;
      if (name == "kto") {
        res = kto_loss(batch, r["KL_logps"].get<std::vector<double>>(), r["KL_ref_logps"].get<std::vector<double>>(),
                       KtoParams{cfg["beta"], cfg["desirable_weight"], cfg["undesirable_weight"]});
        expect_rel(res.kl, step["metrics"]["kl"].get<double>(), 1e-5, at + " kl");
      } else {
        res = apo_zero_unpaired_loss(batch, cfg["beta"]);
      }
      expect_rel(res.loss, step["metrics"]["loss"].get<double>(), 1e-5, at + " loss");
    }
  }
}

}  // namespace
}  // namespace rlhf::objective
