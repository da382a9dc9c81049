// The offline loop replays TRL 1.16's own training runs (reference/make_trl_fixtures.py): the
// same tiny Llama, the token ids TRL trained on, its batch order and optimizer settings. Every
// step's loss, gradient norm and reward metrics must match TRL's logs — 1e-4 relative at the
// first step, 1e-3 after — for every DPOTrainer loss_type and for RewardTrainer; the sigmoid
// run's final weights must match TRL's. The runs of reference/make_trl_tokenization_fixtures.py
// (conversational data, BPE merges across the prompt/completion seam) are replayed from rlhf's
// own tokenization of the JSONL, which must give TRL's ids.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/collate_text.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "train/offline_data.h"
#include "train/offline_trainer.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kTrl = fs::path(RLHF_FIXTURES_DIR) / "trl";
const fs::path kTrlTokens = fs::path(RLHF_FIXTURES_DIR) / "trl_tokens";

json load_run(const std::string& name, const fs::path& dir = kTrl) {
  std::ifstream in(dir / "runs" / (name + ".json"));
  return json::parse(in);
}

OfflineDataset pairs_of(const json& run, std::vector<double>* margins) {
  OfflineDataset d;
  for (const json& row : run["rows"]) {
    const int64_t g = row["index"];
    std::vector<int32_t> prompt = row.contains("prompt_ids") ? row["prompt_ids"].get<std::vector<int32_t>>()
                                                              : std::vector<int32_t>{};
    for (int side = 0; side < 2; ++side) {
      std::vector<int32_t> tokens = prompt;
      const auto completion = row[side == 0 ? "chosen_ids" : "rejected_ids"].get<std::vector<int32_t>>();
      tokens.insert(tokens.end(), completion.begin(), completion.end());
      d.seqs.push_back({tokens, static_cast<int64_t>(prompt.size()), g, side});
    }
    if (margins && row.contains("margin")) margins->push_back(row["margin"]);
  }
  return d;
}

OfflineConfig config_of(const json& run) {
  const json& c = run["config"];
  OfflineConfig cfg;
  cfg.groups_per_micro_batch = c["per_device_train_batch_size"];
  cfg.grad_accum = c["gradient_accumulation_steps"];
  cfg.max_steps = c["max_steps"];
  cfg.schedule = parse_lr_schedule(c["lr_scheduler_type"]);
  cfg.adam = {c["learning_rate"], c["adam_beta1"], c["adam_beta2"], c["adam_epsilon"], c["weight_decay"],
              c["max_grad_norm"]};
  cfg.pack.seq_len = 64;
  cfg.pack.packing = true;
  cfg.reference_is_initial_policy = true;  // TRL's ref_model=None: a copy of the starting policy
  return cfg;
}

BatchOrder order_of(const json& run) {
  BatchOrder o;
  for (const json& step : run["steps"]) o.push_back(step["rows"].get<std::vector<int64_t>>());
  return o;
}

void compare(const std::vector<OfflineStepLog>& ours, const json& run, const std::vector<std::string>& keys) {
  ASSERT_EQ(ours.size(), run["steps"].size());
  for (size_t s = 0; s < ours.size(); ++s) {
    const double tol = s == 0 ? 1e-4 : 1e-3;
    const json& m = run["steps"][s]["metrics"];
    for (const std::string& k : keys) {
      const double trl = m[k].get<double>();
      ASSERT_TRUE(ours[s].values.count(k)) << k;
      EXPECT_NEAR(ours[s].values.at(k), trl, tol * std::max(std::fabs(trl), 1e-2))
          << run["name"].get<std::string>() << " step " << s + 1 << " " << k;
    }
  }
}

class TrlDpoReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(TrlDpoReplay, StepsMatchTrl) {
  const json run = load_run(GetParam());
  const OfflineDataset data = pairs_of(run, nullptr);
  Transformer ref = load_checkpoint(kTrl / "model", ModelHeads{});
  Transformer policy = load_checkpoint(kTrl / "model", ModelHeads{});
  const OfflineConfig cfg = config_of(run);
  const std::vector<double> ref_logp = compute_reference_logps(ref, data, cfg.pack);
  const json& c = run["config"];
  objective::PairParams p;
  p.beta = c["beta"];
  p.label_smoothing = c["label_smoothing"];
  std::vector<std::pair<std::string, double>> losses;
  for (size_t i = 0; i < c["loss_type"].size(); ++i)
    losses.emplace_back(c["loss_type"][i], c["loss_weights"].is_null() ? 1.0 : c["loss_weights"][i].get<double>());
  AdamW opt(policy, cfg.adam);
  const auto logs = train_offline(policy, opt, data, ref_logp, pairwise_objective(losses, p), cfg, order_of(run));
  compare(logs, run,
          {"loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
           "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected"});

  if (GetParam() == "sigmoid") {  // final weights against TRL's after three steps
    auto final_file = SafetensorsFile::open(kTrl / "runs" / "sigmoid_final.safetensors");
    int compared = 0;
    for (const HfTensor& t : hf_layout(policy.config(), policy.heads(), "model.")) {
      const TensorView* v = final_file->find(t.hf_name);
      ASSERT_NE(v, nullptr) << t.hf_name;
      std::vector<float> trl(v->numel());
      convert_to_f32(*v, trl.data(), final_file->path().string());
      const std::vector<float> ours = export_hf_tensor(policy, t, policy.params());
      for (size_t i = 0; i < trl.size(); ++i) ASSERT_NEAR(ours[i], trl[i], 2e-5) << t.hf_name << "[" << i << "]";
      ++compared;
    }
    EXPECT_GT(compared, 10);
  }
}

INSTANTIATE_TEST_SUITE_P(AllLossTypes, TrlDpoReplay,
                         ::testing::Values("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair",
                                           "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop",
                                           "sft", "sigmoid_norm", "sigmoid_sft"));

class TrlRewardReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(TrlRewardReplay, StepsMatchTrl) {
  const json run = load_run(GetParam());
  std::vector<double> margins;
  OfflineDataset data = pairs_of(run, &margins);
  Transformer rm = load_checkpoint(kTrl / "rm", ModelHeads{.lm_head = false, .score_head = true});
  OfflineConfig cfg = config_of(run);
  cfg.want_head = true;
  const json& c = run["config"]["center_rewards_coefficient"];
  const bool use_margin = GetParam() == "reward_margin";
  AdamW opt(rm, cfg.adam);
  const auto logs = train_offline(rm, opt, data, {}, reward_objective(c.is_null() ? 0.0 : c.get<double>(),
                                                                 use_margin ? margins : std::vector<double>{}),
                                  cfg, order_of(run));
  compare(logs, run, {"loss", "grad_norm", "accuracy", "margin"});
}

INSTANTIATE_TEST_SUITE_P(Runs, TrlRewardReplay, ::testing::Values("reward", "reward_center", "reward_margin"));

// KTOTrainer: each example is a group of its labelled sequence (index 0) and, for "kto", the
// KL sequence TRL built for it (the prompt with another row's completion, index 1).
class TrlKtoReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(TrlKtoReplay, StepsMatchTrl) {
  const json run = load_run(GetParam());
  const json& c = run["config"];
  const std::string loss_type = c["loss_type"];
  OfflineDataset data;
  for (const json& row : run["rows"]) {
    const int64_t g = row["index"];
    const auto prompt = row["prompt_ids"].get<std::vector<int32_t>>();
    for (const char* key : {"completion_ids", "KL_completion_ids"}) {
      if (!row.contains(key)) continue;
      std::vector<int32_t> tokens = prompt;
      const auto completion = row[key].get<std::vector<int32_t>>();
      tokens.insert(tokens.end(), completion.begin(), completion.end());
      data.seqs.push_back({tokens, static_cast<int64_t>(prompt.size()), g, std::string(key) == "completion_ids" ? 0 : 1});
    }
    data.group_desirable.push_back(row["label"].get<bool>());
  }
  ASSERT_EQ(data.seqs.size(), run["rows"].size() * (loss_type == "kto" ? 2 : 1));
  Transformer ref = load_checkpoint(kTrl / "model", ModelHeads{});
  Transformer policy = load_checkpoint(kTrl / "model", ModelHeads{});
  const OfflineConfig cfg = config_of(run);
  const std::vector<double> ref_logp = compute_reference_logps(ref, data, cfg.pack);
  objective::KtoParams p{c["beta"], c["desirable_weight"], c["undesirable_weight"]};
  AdamW opt(policy, cfg.adam);
  const auto logs = train_offline(policy, opt, data, ref_logp, kto_objective(loss_type, p, data.group_desirable),
                                  cfg, order_of(run));
  std::vector<std::string> keys = {"loss",          "grad_norm",       "rewards/chosen", "rewards/rejected",
                                   "logps/chosen",  "logps/rejected",  "logits/chosen",  "logits/rejected",
                                   "rewards/margins"};
  if (loss_type == "kto") keys.push_back("kl");
  compare(logs, run, keys);
}

INSTANTIATE_TEST_SUITE_P(Runs, TrlKtoReplay, ::testing::Values("kto", "kto_apo_zero_unpaired"));

// Conversational data and seams: rlhf's tokenization of the JSONL gives TRL's ids, row for row,
// and training on them reproduces TRL's steps, step 1's ties included.
class TrlTokenizedReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(TrlTokenizedReplay, OwnTokenizationGivesTrlIdsAndSteps) {
  const json run = load_run("dpo_" + GetParam(), kTrlTokens);
  const fs::path data_file = kTrlTokens / (GetParam() + ".jsonl");
  const auto text = load_text_side(kTrlTokens / "model");
  OfflineDataOptions opt;  // the defaults: TRL's conventions
  const OfflineData ours = build_offline_data(OfflineDataKind::pairs, data_file, text->enc, opt);
  const OfflineDataset trl = pairs_of(run, nullptr);
  ASSERT_EQ(ours.data.seqs.size(), trl.seqs.size());
  for (size_t i = 0; i < trl.seqs.size(); ++i) {
    EXPECT_EQ(ours.data.seqs[i].tokens, trl.seqs[i].tokens) << "sequence " << i;
    EXPECT_EQ(ours.data.seqs[i].prompt_len, trl.seqs[i].prompt_len) << "sequence " << i;
  }
  // The fixture tells the conventions apart: today's other options give other ids.
  OfflineDataOptions old = opt;
  old.encode.seam = SeamPolicy::split;
  old.encode.eos = CompletionEos::always;
  const OfflineData other = build_offline_data(OfflineDataKind::pairs, data_file, text->enc, old);
  int64_t differ = 0;
  for (size_t i = 0; i < trl.seqs.size(); ++i)
    differ += other.data.seqs[i].tokens != trl.seqs[i].tokens || other.data.seqs[i].prompt_len != trl.seqs[i].prompt_len;
  EXPECT_GE(differ, static_cast<int64_t>(trl.seqs.size()) / 2);

  Transformer ref = load_checkpoint(kTrlTokens / "model", ModelHeads{});
  Transformer policy = load_checkpoint(kTrlTokens / "model", ModelHeads{});
  const OfflineConfig cfg = config_of(run);
  const std::vector<double> ref_logp = compute_reference_logps(ref, ours.data, cfg.pack);
  objective::PairParams p;
  p.beta = run["config"]["beta"];
  AdamW adam(policy, cfg.adam);
  const auto logs =
      train_offline(policy, adam, ours.data, ref_logp, pairwise_objective({{"sigmoid", 1.0}}, p), cfg, order_of(run));
  compare(logs, run,
          {"loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
           "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected"});
  EXPECT_EQ(logs[0].values.at("rewards/accuracies"), 0.0);  // every step-1 pair is a tie, as in TRL
  EXPECT_EQ(logs[0].values.at("rewards/margins"), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Layouts, TrlTokenizedReplay, ::testing::Values("chat", "seam"));

}  // namespace
}  // namespace rlhf
