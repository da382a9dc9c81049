// The bench's own pieces: the exact sequence KL of the evaluation against full forwards, the gold
// reward as a reward source, and the stage files' reader.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "model/config.h"
#include "model/transformer.h"
#include "rollout/reward.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "testbed/bench_stages.h"
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
