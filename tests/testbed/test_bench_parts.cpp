// The bench's own pieces: the exact sequence KL of the evaluation against full forwards, the gold
// reward and annotator judge as reward sources, the FLOP formulas, and the stage files' reader.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "model/config.h"
#include "model/transformer.h"
#include "rollout/reward.h"
#include "rollout/sampler.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "testbed/bench_stages.h"
#include "testbed/compute.h"
#include "testbed/evaluate.h"
#include "testbed/gold_reward.h"
#include "testbed/task.h"

namespace rlhf::testbed {
namespace {

constexpr int64_t kVocab = 11;

Transformer tiny_model(uint64_t seed) {
  Transformer m(ModelConfig::make(ModelFamily::llama, kVocab, 16, 2, 2, 2, 32, 32), ModelHeads{});
  m.init_random(seed, 0.3f);
  return m;
}

// log p(. | prefix) over the whole vocabulary from full forwards (no KV cache): one row per
// candidate next token, only the last position scored.
std::vector<double> next_token_logprobs(Transformer& m, const std::vector<int32_t>& prefix) {
  std::vector<std::vector<int32_t>> rows;
  for (int32_t v = 0; v < kVocab; ++v) {
    rows.push_back(prefix);
    rows.back().push_back(v);
  }
  const Batch b = Batch::from_rows(rows, static_cast<int64_t>(prefix.size()));
  Workspace ws(m.config(), b.B, b.T, b.n_scored(), 0);
  const Scores s = m.forward(b, ws);
  return std::vector<double>(s.logp.begin(), s.logp.end());
}

TEST(BenchSequenceKl, EqualsTheFullForwardSumOverPositions) {
  Transformer p = tiny_model(1), q = tiny_model(2);
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6}};
  const std::vector<std::vector<int32_t>> completions = {{7, 8, 9, 1}, {2}, {3, 3, 10}};
  const SequenceKl got = sequence_kl(p, q, prompts, completions);
  for (size_t i = 0; i < prompts.size(); ++i) {
    double kl = 0, k1 = 0, k3 = 0, h = 0;
    std::vector<int32_t> prefix = prompts[i];
    for (int32_t tok : completions[i]) {
      const std::vector<double> lp = next_token_logprobs(p, prefix), lq = next_token_logprobs(q, prefix);
      for (int64_t v = 0; v < kVocab; ++v) {
        kl += std::exp(lp[v]) * (lp[v] - lq[v]);
        h -= std::exp(lp[v]) * lp[v];
      }
      const double r = lq[tok] - lp[tok];
      k1 -= r;
      k3 += std::exp(r) - 1 - r;
      prefix.push_back(tok);
    }
    EXPECT_NEAR(got.exact[i], kl, 1e-4 * (1 + kl)) << i;
    EXPECT_NEAR(got.k1[i], k1, 1e-4 * (1 + std::fabs(k1))) << i;
    EXPECT_NEAR(got.k3[i], k3, 1e-4 * (1 + k3)) << i;
    EXPECT_NEAR(got.entropy[i], h, 1e-4 * (1 + h)) << i;
    EXPECT_GT(got.exact[i], 0.0);
  }
  const SequenceKl self = sequence_kl(p, p, prompts, completions);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_NEAR(self.exact[i], 0.0, 1e-6);
    EXPECT_NEAR(self.k1[i], 0.0, 1e-6);
  }
}

// The evaluation reads the policy's side of the KL off the sampler (keep_logits) instead of
// decoding the samples again: both give the same terms.
TEST(BenchSequenceKl, TheSamplersLogitsGiveTheDecodedKl) {
  Transformer p = tiny_model(3), q = tiny_model(4);
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6}};
  rollout::SamplingParams sp;
  sp.n = 2;
  sp.max_new_tokens = 6;
  sp.eos_ids = {0};
  rollout::GenerateOptions opt;
  opt.keep_logits = true;
  const std::vector<rollout::Completion> done = rollout::generate(p, prompts, {7, 8, 9}, sp, opt);
  std::vector<std::vector<int32_t>> ps, cs;
  std::vector<std::vector<float>> logits;
  for (const auto& c : done) {
    ps.push_back(prompts[c.prompt]), cs.push_back(c.tokens), logits.push_back(c.logits);
    ASSERT_EQ(c.logits.size(), c.tokens.size() * kVocab);
  }
  const SequenceKl kept = sequence_kl(logits, q, ps, cs), decoded = sequence_kl(p, q, ps, cs);
  for (size_t i = 0; i < cs.size(); ++i) {
    EXPECT_NEAR(kept.exact[i], decoded.exact[i], 1e-5 * (1 + decoded.exact[i])) << i;
    EXPECT_NEAR(kept.k1[i], decoded.k1[i], 1e-5 * (1 + std::fabs(decoded.k1[i]))) << i;
    EXPECT_NEAR(kept.entropy[i], decoded.entropy[i], 1e-5 * (1 + decoded.entropy[i])) << i;
    EXPECT_GT(kept.exact[i], 0.0);
  }
  logits[1].pop_back();  // a row short: the logits do not cover the sample
  EXPECT_THROW(sequence_kl(logits, q, ps, cs), LogicError);
}

// The gold kind as the CLI installs it (make_reward_source checks the options).
std::unique_ptr<rollout::RewardSource> gold_source(const std::string& spec) {
  rollout::RewardContext ctx;
  ctx.extra_kinds = {{"gold", gold_reward}};
  return rollout::make_reward_source(rollout::parse_reward_spec(spec), ctx);
}

std::vector<double> score(rollout::RewardSource& src, const std::string& prompt, const std::vector<std::string>& completions,
                          bool eos = true) {
  std::vector<rollout::RewardSample> batch;
  for (const auto& c : completions) {
    rollout::RewardSample s;
    s.prompt.text = prompt;
    s.completion = c;
    s.eos = eos;
    batch.push_back(s);
  }
  return src.score(batch).scores;
}

TEST(BenchGoldReward, ScoresWithTheTasksGoldAndItsDetails) {
  const auto task = make_task("sort", 1);
  auto gold = gold_source("gold:sort");
  auto partial = gold_source("gold(detail=partial):sort");
  const std::string prompt = "sort 3 1 2 =";
  EXPECT_EQ(score(*gold, prompt, {"1 2 3 .", "1 3 2 ."}), (std::vector<double>{1.0, 0.0}));
  EXPECT_EQ(score(*gold, prompt, {"1 2 3 ."}, /*eos=*/false), std::vector<double>{0.0});
  const double p = score(*partial, prompt, {"1 3 2 ."})[0];
  EXPECT_GT(p, 0.0);
  EXPECT_LT(p, 1.0);
  for (const auto& [name, v] : task->gold_details(prompt, "1 3 2 .", true))
    if (name == "partial") EXPECT_DOUBLE_EQ(p, v);
}

TEST(BenchGoldReward, NoiseIsAFixedGaussianViewOfEachText) {
  auto noisy = gold_source("gold(noise=0.5,seed=3):sort");
  const std::string prompt = "sort 3 1 2 =";
  const auto a = score(*noisy, prompt, {"1 2 3 .", "1 3 2 .", "1 2 3 ."});
  EXPECT_EQ(a[0], a[2]);  // same text, same score
  EXPECT_NE(a[0], 1.0);
  // Over many texts the noise averages out around the gold value (0 for these wrong answers).
  std::vector<std::string> many;
  for (int i = 0; i < 400; ++i) many.push_back(std::to_string(i % 10) + " " + std::to_string(i / 10) + " .");
  double mean = 0;
  for (double x : score(*noisy, prompt, many)) mean += x / many.size();
  EXPECT_NEAR(mean, 0.0, 0.1);
}

TEST(BenchGoldReward, BadSpecsAreErrorsNamingThem) {
  EXPECT_THROW(gold_source("gold:chess"), InputError);
  EXPECT_THROW(gold_source("gold(detail=nope):sort"), InputError);
  EXPECT_THROW(gold_source("gold(temperature=2):sort"), InputError);
  EXPECT_THROW(gold_source("gold(noise=x):sort"), InputError);
  auto gold = gold_source("gold:sort");
  rollout::RewardSample chat;
  chat.prompt.is_chat = true;
  EXPECT_THROW(gold->score({chat}), InputError);
}

// Two samples of each of `prompts` distinct prompts of four digits, a correct sort and a wrong
// one, as the online loop passes them.
std::vector<rollout::RewardSample> sort_pairs(int prompts) {
  std::vector<rollout::RewardSample> batch;
  for (int i = 0; static_cast<int>(batch.size()) < 2 * prompts; ++i) {
    std::string digits = std::to_string(10000 + i).substr(1), prompt = "sort";
    for (char c : digits) prompt += std::string(" ") + c;
    std::sort(digits.begin(), digits.end());
    if (digits.front() == digits.back()) continue;  // no wrong order to give
    std::string right, wrong;
    for (char c : digits) right += std::string(1, c) + " ";
    std::reverse(digits.begin(), digits.end());
    for (char c : digits) wrong += std::string(1, c) + " ";
    for (const std::string& c : {right + ".", wrong + "."}) {
      rollout::RewardSample s;
      s.prompt.text = prompt + " =";
      s.completion = c;
      s.completion_ids = {1, 2, 3};
      s.eos = true;
      batch.push_back(s);
    }
  }
  return batch;
}

TEST(BenchGoldReward, AnAnnotatorJudgesEachPromptsPairByItsBradleyTerryModel) {
  // tau = 1 on a gold gap of 1: the correct sample wins with probability sigmoid(1).
  auto judge = gold_source("gold(annotator,bt_tau=1,seed=4):sort");
  const auto batch = sort_pairs(4000);
  const auto scores = judge->score(batch).scores;
  ASSERT_EQ(scores.size(), batch.size());
  double wins = 0;
  for (size_t i = 0; i < scores.size(); i += 2) {
    EXPECT_EQ(scores[i] + scores[i + 1], 1.0);  // one label per pair: the winner 1, the loser 0
    wins += scores[i];
  }
  EXPECT_NEAR(wins / 4000, 1 / (1 + std::exp(-1.0)), 0.025);
  EXPECT_EQ(judge->score(batch).scores, scores);  // the same samples, the same judgements
  // A near-deterministic annotator always prefers the correct sort.
  auto sharp = gold_source("gold(annotator,bt_tau=0.01):sort");
  const auto sharp_scores = sharp->score(sort_pairs(50)).scores;
  for (size_t i = 0; i < sharp_scores.size(); i += 2) EXPECT_EQ(sharp_scores[i], 1.0);
}

TEST(BenchGoldReward, AnnotatorOptionsCarryTheCalibratedSettingsExactly) {
  AnnotatorConfig cfg = preset("bt:0.9");
  cfg.bt_tau = 0.123456789012345678;
  const std::string options = annotator_spec_options(cfg);
  EXPECT_EQ(options, "annotator,bt_tau=0.12345678901234568");
  EXPECT_EQ(rollout::parse_reward_spec("gold(" + options + "):sort").options.at("bt_tau"), "0.12345678901234568");
  EXPECT_DOUBLE_EQ(std::stod("0.12345678901234568"), cfg.bt_tau);
  EXPECT_NO_THROW(gold_source("gold(" + options + "):sort"));
  EXPECT_THROW(gold_source("gold(annotator,noise=0.1):sort"), InputError);   // two judges
  EXPECT_THROW(gold_source("gold(annotator,pool=0):sort"), InputError);      // out of range
  EXPECT_THROW(gold_source("gold(bt_tau=0.1):sort"), InputError);            // without annotator
  auto judge = gold_source("gold(annotator,bt_tau=0.1):sort");
  EXPECT_THROW(score(*judge, "sort 3 1 2 =", {"1 2 3 ."}), InputError);     // nothing to compare
}

// ---- compute (docs/testbed.md §5) -----------------------------------------------------------------

using ojson = nlohmann::ordered_json;

// N = 100 for the policy, 60 for a reward model; 3 prompt and 5 completion tokens by default.
ComputeModel hand_model() { return {.policy_params = 100, .scorer_params = 60, .tokens = {3, 5}}; }

ojson online_manifest(const std::string& command, ojson options, double prompts_per_step) {
  ojson defaults = {{"num-mini-batches", "1"}, {"micro-batches", "1"}, {"reward", {"gold:valence"}}};
  for (const auto& [k, v] : options.items()) defaults[k] = v;
  return {{"command", command}, {"options", defaults}, {"resolved", {{"prompts_per_step", prompts_per_step}}}};
}

TEST(BenchCompute, MatmulParamsCountAttentionTheGatedMlpAndTheHead) {
  EXPECT_EQ(matmul_params(2, 4, 8, 10), 2 * (4 * 16 + 3 * 4 * 8) + 10 * 4);
  EXPECT_EQ(matmul_params(1, 4, 8, 1), 4 * 16 + 3 * 4 * 8 + 4);
}

TEST(BenchCompute, PpoCountsEveryEpochTheReferenceAndTheRewardModel) {
  // PPO reads the reference even at kl_coef 0; 4 epochs; an rm: reward; the logged lengths.
  const ojson m = online_manifest("ppo", {{"num-ppo-epochs", "4"}, {"num-generations", "1"}, {"kl-coef", "0"},
                                          {"reward", {"rm:/rm"}}, {"critic", ""}}, 8);
  const std::vector<ojson> metrics = {{{"step", 1}, {"episode", 8}, {"completions/mean_length", 5}},
                                      {{"step", 2}, {"episode", 16}, {"completions/mean_length", 7}},
                                      {{"step", 2}, {"eval_objective/scores", 0.5}}};
  const RunFlops f = run_flops(m, metrics, hand_model());
  // Per token: sampling 2·100, reward model 2·60, reference 2·100, 4 × 6·100 updates = 2920;
  // 8 sequences of 3 + 5, then of 3 + 7 tokens. The evaluation row is not training.
  ASSERT_EQ(f.cumulative.size(), 3u);
  EXPECT_DOUBLE_EQ(f.at(0), 0);
  EXPECT_DOUBLE_EQ(f.at(1), 2920.0 * 8 * 8);
  EXPECT_DOUBLE_EQ(f.total(), 2920.0 * 8 * 8 + 2920.0 * 8 * 10);
  EXPECT_DOUBLE_EQ(f.at(9), f.total());
  // One epoch fewer: one update pass (6·100 per token) fewer.
  const ojson three = online_manifest("ppo", {{"num-ppo-epochs", "3"}, {"num-generations", "1"}, {"kl-coef", "0"},
                                              {"reward", {"rm:/rm"}}, {"critic", ""}}, 8);
  EXPECT_DOUBLE_EQ(run_flops(three, metrics, hand_model()).at(1), 2320.0 * 8 * 8);
  // A separate critic is forwarded and trained alongside: 4 × 6·60 more per token.
  const ojson critic = online_manifest("ppo", {{"num-ppo-epochs", "4"}, {"num-generations", "1"}, {"kl-coef", "0"},
                                               {"reward", {"rm:/rm"}}, {"critic", "/rm"}}, 8);
  EXPECT_DOUBLE_EQ(run_flops(critic, metrics, hand_model()).at(1), (2920.0 + 4 * 360) * 8 * 8);
}

TEST(BenchCompute, RlooSkipsTheReferenceAtBetaZeroAndGoldCostsNoModel) {
  // k = 4 of 2 prompts, one pass, gold reward, two minibatches (a separate old-log-prob forward);
  // no logged length: the model's 3 + 5 tokens.
  const std::vector<ojson> metrics = {{{"step", 1}, {"episode", 8}}};
  const ojson zero = online_manifest("rloo", {{"num-iterations", "1"}, {"num-generations", "4"}, {"beta", "0"},
                                              {"num-mini-batches", "2"}}, 2);
  EXPECT_DOUBLE_EQ(run_flops(zero, metrics, hand_model()).total(), (200.0 + 600 + 200) * 8 * 8);
  const ojson kl = online_manifest("rloo", {{"num-iterations", "1"}, {"num-generations", "4"}, {"beta", "0.05"},
                                            {"num-mini-batches", "2"}}, 2);
  EXPECT_DOUBLE_EQ(run_flops(kl, metrics, hand_model()).total(), (200.0 + 600 + 200 + 200) * 8 * 8);
  const ojson grpo = online_manifest("grpo", {{"num-iterations", "2"}, {"num-generations", "4"}, {"beta", "0"}}, 2);
  EXPECT_DOUBLE_EQ(run_flops(grpo, metrics, hand_model()).total(), (200.0 + 2 * 600) * 8 * 8);
  // Online DPO: two samples per prompt, one pass (the loop's default), the reference always.
  const ojson dpo = online_manifest("online-dpo", {{"beta", "0"}}, 2);
  EXPECT_DOUBLE_EQ(run_flops(dpo, metrics, hand_model()).total(), (200.0 + 600 + 200) * 4 * 8);
  // A step whose samples were all left out only sampled.
  const std::vector<ojson> skipped = {{{"step", 1}, {"episode", 8}, {"skipped", 1}}};
  EXPECT_DOUBLE_EQ(run_flops(dpo, skipped, hand_model()).total(), 200.0 * 4 * 8);
}

TEST(BenchCompute, OfflineRunsCountTheReferenceOnceAndKtosKlSequences) {
  // KTO: 10 rows, each with its mismatched KL sequence (20 sequences of 3 + 5 tokens), batch 4,
  // 3 steps: the reference forward (2N) of all 20 sequences first, then 4 rows × 2 sequences
  // trained (6N) per step.
  ojson kto = {{"command", "kto"},
               {"options", {{"per-device-train-batch-size", "4"}, {"gradient-accumulation-steps", "1"}}},
               {"data", {{"groups", 10}, {"sequences", 20}, {"tokens", {{"prompt", 60}, {"completion", 100}}}}},
               {"resolved", {{"max_steps", 3}, {"ranks", 1}}}};
  const RunFlops f = run_flops(kto, {}, hand_model());
  EXPECT_DOUBLE_EQ(f.at(0), 20 * 8 * 2 * 100.0);
  EXPECT_DOUBLE_EQ(f.at(1), 20 * 8 * 2 * 100.0 + 8 * 8 * 6 * 100.0);
  EXPECT_DOUBLE_EQ(f.total(), 20 * 8 * 2 * 100.0 + 3 * 8 * 8 * 6 * 100.0);
  // SimPO with --reference-free: no reference forward.
  ojson simpo = kto;
  simpo["command"] = "dpo";
  simpo["options"]["reference-free"] = "true";
  EXPECT_DOUBLE_EQ(run_flops(simpo, {}, hand_model()).at(0), 0);
  EXPECT_DOUBLE_EQ(run_flops(simpo, {}, hand_model()).total(), 3 * 8 * 8 * 6 * 100.0);
  simpo["data"].erase("sequences");
  EXPECT_THROW(run_flops(simpo, {}, hand_model()), InputError);
}

TEST(BenchCompute, IterativeDpoAndBestOfNCountSamplingScoringAndTraining) {
  const ojson m = {{"command", "iterative-dpo"},
                   {"options", {{"num-generations", "2"}, {"num-train-epochs", "1"},
                                {"per-device-train-batch-size", "16"}, {"reward", {"rm:/rm"}}}},
                   {"data", {{"prompts", 10}}},
                   {"resolved", {{"ranks", 1}}}};
  const std::vector<ojson> rounds = {{{"round", 1}, {"pairs", 5}, {"completions/mean_length", 5}},
                                     {{"round", 2}, {"pairs", 0}, {"completions/mean_length", 5}}};
  // Round 1: 20 samples sampled and scored (2·(100 + 60) per token), the 5 pairs' reference
  // forward, one full step of 16 pairs; round 2: no pair, no training.
  const double sampled = 10 * 2 * 8 * 2 * 160.0;
  const RunFlops f = run_flops(m, rounds, hand_model());
  EXPECT_DOUBLE_EQ(f.at(1), sampled + 5 * 2 * 8 * 2 * 100.0 + 16 * 2 * 8 * 6 * 100.0);
  EXPECT_DOUBLE_EQ(f.total(), f.at(1) + sampled);
  EXPECT_DOUBLE_EQ(best_of_n_flops(100, 60, {3, 5}, 10, 4), 10 * 4 * 8 * 2 * 160.0);
}

// The bench's own JSON files: a missing or broken one is an error naming it, not a bare parse error.
TEST(BenchFiles, ReadJsonNamesAMissingOrBrokenFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("rlhf_bench_parts_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "good.json") << R"({"a": 1})";
  std::ofstream(dir / "broken.json") << R"({"a": )";
  EXPECT_EQ(read_json(dir / "good.json").at("a"), 1);
  for (const char* name : {"missing.json", "broken.json"}) {
    try {
      read_json(dir / name);
      ADD_FAILURE() << name << " read without error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find((dir / name).string()), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlhf::testbed
