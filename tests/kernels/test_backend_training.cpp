// Whole training runs on each backend: SFT, DPO and GRPO runs of 3 steps on tiny random models
// (GPT-2 and Llama shapes, a Mistral sliding window) log the same metrics on every registered
// backend as on the reference one — 1e-4 relative at the first step (the weights as loaded,
// before any optimizer step), 1e-3 at the later steps and for the metrics of the weights after
// three AdamW steps. Relative to max(|reference value|, 1e-2), as the TRL replays compare,
// since some metrics are 0 before the first step (implicit rewards, KL). While the DPO policy
// equals its reference every chosen-vs-rejected comparison is a tie that rounding decides, so
// rewards/accuracies is compared only once the implicit rewards are not all rounding noise.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "../model/tiny_models.h"
#include "kernels/kernels.h"
#include "tensor/rng.h"
#include "train/offline_trainer.h"
#include "train/online_trainer.h"

namespace rlhf {
namespace {

using Metrics = std::vector<std::map<std::string, double>>;  // per step, then the final evaluation

void expect_same_metrics(const Metrics& got, const Metrics& want, const std::string& run) {
  ASSERT_EQ(got.size(), want.size()) << run;
  for (size_t s = 0; s < want.size(); ++s) {
    const double tol = s == 0 ? 1e-4 : 1e-3;
    const auto noise = [&](const char* k) { return want[s].count(k) && std::fabs(want[s].at(k)) < 1e-5; };
    for (const auto& [key, w] : want[s]) {
      if (key == "rewards/accuracies" && noise("rewards/chosen") && noise("rewards/rejected")) continue;
      ASSERT_TRUE(got[s].count(key)) << run << " step " << s + 1 << ": no " << key;
      EXPECT_NEAR(got[s].at(key), w, tol * std::max(std::fabs(w), 1e-2)) << run << " step " << s + 1 << " " << key;
    }
  }
}

Transformer tiny_model(const std::string& family, const kernels::Backend& backend) {
  Transformer m(test::tiny_config(family), ModelHeads{}, backend);
  m.init_random(3);
  return m;
}

// Groups of `per_group` random sequences of 6-13 tokens with prompts of 2-4 (vocabulary 50).
OfflineDataset random_groups(int64_t groups, int per_group) {
  Rng rng(17);
  OfflineDataset d;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t prompt_len = 2 + static_cast<int64_t>(rng.below(3));
    std::vector<int32_t> prompt(prompt_len);
    for (auto& t : prompt) t = static_cast<int32_t>(rng.below(50));
    for (int i = 0; i < per_group; ++i) {
      std::vector<int32_t> tokens = prompt;
      const int64_t len = 4 + static_cast<int64_t>(rng.below(8));
      for (int64_t k = 0; k < len; ++k) tokens.push_back(static_cast<int32_t>(rng.below(50)));
      d.seqs.push_back({tokens, prompt_len, g, i});
    }
  }
  return d;
}

// The 3 steps' logs of an offline run on `backend`, then the objective's metrics on the trained weights.
Metrics offline_run(const std::string& family, const kernels::Backend& backend, bool dpo) {
  const OfflineDataset data = random_groups(6, dpo ? 2 : 1);
  OfflineConfig cfg;
  cfg.groups_per_micro_batch = 2;
  cfg.max_steps = 3;
  cfg.schedule = LrSchedule::constant;
  cfg.adam.lr = 1e-2;
  cfg.pack.seq_len = 32;
  const ObjectiveFn objective = dpo ? pairwise_objective({{"sigmoid", 1.0}}, objective::PairParams{}) : sft_objective();
  std::vector<double> ref_logp;
  if (dpo) {
    Transformer ref = tiny_model(family, backend);
    ref_logp = compute_reference_logps(ref, data, cfg.pack);
  }
  Transformer policy = tiny_model(family, backend);
  AdamW opt(policy, cfg.adam);
  const BatchOrder order = shuffled_batch_order(data.n_groups(), cfg.groups_per_micro_batch, cfg.max_steps, 5);
  Metrics out;
  for (const OfflineStepLog& log : train_offline(policy, opt, data, ref_logp, objective, cfg, order))
    out.push_back(log.values);
  out.push_back(evaluate_offline(policy, data, ref_logp, objective, cfg, order));
  return out;
}

// The share of token 7 among a completion's 8 tokens.
rollout::RewardResult sevens(const std::vector<rollout::RewardSample>& batch) {
  rollout::RewardResult r;
  for (const auto& s : batch) r.scores.push_back(std::count(s.completion_ids.begin(), s.completion_ids.end(), 7) / 8.0);
  return r;
}

Metrics grpo_run(const kernels::Backend& backend) {
  std::vector<OnlinePrompt> prompts;
  Rng rng(11);
  for (int i = 0; i < 8; ++i) {
    OnlinePrompt p;
    for (int k = 0; k < 3 + i % 3; ++k) p.ids.push_back(static_cast<int32_t>(10 + rng.below(40)));
    prompts.push_back(std::move(p));
  }
  OnlineConfig cfg;
  cfg.method = OnlineMethod::grpo;
  cfg.prompts_per_step = 4;
  cfg.sampling.max_new_tokens = 8;
  cfg.sampling.n = 4;
  cfg.max_steps = 3;
  cfg.schedule = LrSchedule::constant;
  cfg.adam.lr = 3e-2;
  cfg.seed = 5;
  cfg.row_len = 32;
  cfg.grpo.beta = 0.01;
  Transformer policy = tiny_model("llama", backend), ref = tiny_model("llama", backend);
  AdamW opt(policy, cfg.adam);
  OnlineState st;
  auto detok = [](const std::vector<int32_t>&) { return std::string(); };
  Metrics out;
  for (const OnlineStepLog& log : train_online(policy, opt, ref, prompts, sevens, detok, cfg, 0, st))
    out.push_back(log.values);
  rollout::SamplingParams eval_sp = cfg.sampling;
  out.push_back(evaluate_online(policy, prompts, sevens, detok, eval_sp, 32, 99).values);
  return out;
}

class BackendTraining : public ::testing::TestWithParam<const kernels::Backend*> {};

TEST_P(BackendTraining, SftMatchesReference) {
  for (const char* family : {"gpt2", "llama"})
    expect_same_metrics(offline_run(family, *GetParam(), false),
                        offline_run(family, kernels::reference_backend(), false), std::string("sft ") + family);
}

TEST_P(BackendTraining, DpoMatchesReference) {
  for (const char* family : {"qwen2", "mistral"})
    expect_same_metrics(offline_run(family, *GetParam(), true), offline_run(family, kernels::reference_backend(), true),
                        std::string("dpo ") + family);
}

TEST_P(BackendTraining, GrpoMatchesReference) {
  expect_same_metrics(grpo_run(*GetParam()), grpo_run(kernels::reference_backend()), "grpo");
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTraining, ::testing::ValuesIn(kernels::registered_backends()),
                         [](const auto& info) { return std::string(info.param->name()); });

// A model moved to another backend computes there and keeps its weights.
TEST(BackendTraining, SetBackendKeepsTheWeights) {
  Transformer m = tiny_model("llama", kernels::cpu_backend());
  const std::vector<float> before = m.params();
  m.set_backend(kernels::reference_backend());
  EXPECT_EQ(&m.backend(), &kernels::reference_backend());
  EXPECT_EQ(m.params(), before);
}

}  // namespace
}  // namespace rlhf
