// Best-of-n and iterative DPO called from C++ (train/best_of_n.h, train/iterative_dpo.h) on a
// tiny random Llama (vocabulary 50) whose reward is the share of its new tokens equal to 7.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../model/tiny_models.h"
#include "online_test_util.h"
#include "tensor/rng.h"
#include "train/best_of_n.h"
#include "train/iterative_dpo.h"

namespace rlhf {
namespace {

using test::kTarget;
using test::no_text;
using test::target_share;

std::vector<OnlinePrompt> make_prompts(int count) { return test::random_prompts(count, 3, 3); }

Transformer tiny_policy() {
  Transformer m(test::tiny_config("llama"), ModelHeads{});
  m.init_random(3);
  return m;
}

rollout::SamplingParams sampling(int64_t n) {
  rollout::SamplingParams sp;
  sp.temperature = 1.0;
  sp.max_new_tokens = 8;
  sp.n = n;
  return sp;
}

TEST(BestOfN, KeepsEachPromptsBestSample) {
  Transformer policy = tiny_policy();
  const auto prompts = make_prompts(6);
  BestOfNConfig cfg;
  cfg.sampling = sampling(4);
  cfg.seed = 9;
  const BestOfNResult r = best_of_n(policy, prompts, target_share, no_text, cfg);

  // The same samples, drawn directly: each row's score is the best of its prompt's four.
  std::vector<int64_t> which(prompts.size());
  std::vector<uint64_t> seeds;
  for (size_t p = 0; p < prompts.size(); ++p) which[p] = static_cast<int64_t>(p), seeds.push_back(prompt_seed(9, 0, p));
  const ScoredSamples ss = sample_and_score(policy, prompts, which, seeds, cfg.sampling, 32, target_share, no_text);
  std::istringstream lines(r.jsonl);
  std::string line;
  double best_sum = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    ASSERT_TRUE(std::getline(lines, line));
    const auto row = nlohmann::json::parse(line);
    double best = -1;
    for (int j = 0; j < 4; ++j) best = std::max(best, ss.scores[p * 4 + j]);
    EXPECT_EQ(row["prompt"], prompts[p].prompt.text);
    EXPECT_EQ(row["score"].get<double>(), best);
    EXPECT_EQ(row["finish_reason"], "length");
    EXPECT_GE(row["score"].get<double>(), row["mean_score"].get<double>());
    best_sum += best;
  }
  EXPECT_FALSE(std::getline(lines, line));
  EXPECT_EQ(r.scored, 6);
  EXPECT_DOUBLE_EQ(r.mean_best_score, best_sum / 6);
  EXPECT_GE(r.mean_best_score, r.mean_score);
}

TEST(IterativeDpo, BestWorstPairsSkipTiesAndUndefinedScores) {
  ScoredSamples ss;
  const double nan = std::nan("");
  ss.scores = {0.1, 0.9, 0.5,   // prompt 0: best 1, worst 0
               0.4, 0.4, 0.4,   // prompt 1: a tie, dropped
               nan, 0.2, 0.3,   // prompt 2: NaN left out: best 2, worst 1
               nan, nan, nan};  // prompt 3: nothing defined, dropped
  for (int i = 0; i < 12; ++i) ss.seqs.push_back({.tokens = {1, 2, static_cast<int32_t>(i)}, .prompt_len = 2});
  const OfflineDataset d = best_worst_pairs(ss, 4, 3, 0.0);
  ASSERT_EQ(d.n_groups(), 2);
  ASSERT_EQ(d.seqs.size(), 4u);
  EXPECT_EQ(d.seqs[0].tokens.back(), 1);  // chosen first
  EXPECT_EQ(d.seqs[1].tokens.back(), 0);
  EXPECT_EQ(d.seqs[2].tokens.back(), 8);
  EXPECT_EQ(d.seqs[3].tokens.back(), 7);
  EXPECT_EQ(d.seqs[2].group, 1);
  EXPECT_EQ(d.seqs[3].index, 1);
  EXPECT_EQ(best_worst_pairs(ss, 4, 3, 0.5).n_groups(), 1) << "a gap of 0.1 is within --min-score-gap 0.5";
}

struct Rounds {
  std::vector<nlohmann::json> records;
  std::vector<float> weights;
};

Rounds iterate(bool ref_follows_policy, int64_t prompts_per_round = 0, std::string* log = nullptr) {
  Transformer policy = tiny_policy();
  IterativeDpoConfig cfg;
  cfg.rounds = 3;
  cfg.sampling = sampling(4);
  cfg.pair.beta = 0.1;
  cfg.train.groups_per_micro_batch = 4;
  cfg.train.schedule = LrSchedule::constant;
  cfg.train.adam.lr = 3e-2;
  cfg.train.pack.seq_len = 32;
  cfg.ref_follows_policy = ref_follows_policy;
  cfg.prompts_per_round = prompts_per_round;
  cfg.seed = 5;
  Rounds out;
  std::ostringstream progress;
  train_iterative_dpo(policy, make_prompts(16), target_share, no_text, cfg, progress,
                      [&](const nlohmann::json& rec) { out.records.push_back(rec); });
  EXPECT_NE(progress.str().find("round 3: mean score "), std::string::npos) << progress.str();
  if (log) *log = progress.str();
  out.weights = policy.params();
  return out;
}

TEST(IterativeDpo, RoundsRaiseTheRewardDeterministically) {
  const Rounds a = iterate(false);
  ASSERT_EQ(a.records.size(), 3u);
  int64_t step = 0;
  for (size_t r = 0; r < 3; ++r) {
    const auto& rec = a.records[r];
    EXPECT_EQ(rec["round"], r + 1);
    ASSERT_GT(rec["pairs"].get<int64_t>(), 0) << rec.dump();
    step += (rec["pairs"].get<int64_t>() + 3) / 4;  // one epoch of batches of 4 pairs
    EXPECT_EQ(rec["step"], step);
    EXPECT_TRUE(std::isfinite(rec["train/loss"].get<double>()));
  }
  EXPECT_GT(a.records[2]["objective/scores"].get<double>(), a.records[0]["objective/scores"].get<double>())
      << a.records[0].dump() << "\n" << a.records[2].dump();
  EXPECT_EQ(iterate(false).weights, a.weights) << "the same seed trains the same policy";
  EXPECT_NE(iterate(true).weights, a.weights) << "a moving reference changes the updates";
}

// Semi-online rounds: each samples only the next prompts_per_round prompts (all 16 = every round's
// full set, the default), so a round has at most that many pairs and its own optimizer steps.
TEST(IterativeDpo, PromptsPerRoundSampleTheNextPrompts) {
  std::string log;
  const Rounds part = iterate(false, 6, &log);
  ASSERT_EQ(part.records.size(), 3u);
  int64_t step = 0;
  for (const auto& rec : part.records) {
    EXPECT_GT(rec["pairs"].get<int64_t>(), 0) << rec.dump();
    EXPECT_LE(rec["pairs"].get<int64_t>(), 6) << rec.dump();
    step += (rec["pairs"].get<int64_t>() + 3) / 4;
    EXPECT_EQ(rec["step"], step);
  }
  EXPECT_NE(log.find("pairs of 6 prompts"), std::string::npos) << log;
  const Rounds all = iterate(false);
  EXPECT_EQ(iterate(false, 16).weights, all.weights) << "16 of 16 prompts per round is the default";
  EXPECT_NE(part.weights, all.weights);
  Transformer policy = tiny_policy();
  IterativeDpoConfig cfg;
  cfg.sampling = sampling(2);
  cfg.prompts_per_round = 3;
  std::ostringstream progress;
  EXPECT_THROW(train_iterative_dpo(policy, make_prompts(2), target_share, no_text, cfg, progress), InputError);
  cfg.prompts_per_round = -1;
  EXPECT_THROW(train_iterative_dpo(policy, make_prompts(2), target_share, no_text, cfg, progress), InputError);
}

TEST(IterativeDpo, RefusesFewerThanTwoSamples) {
  Transformer policy = tiny_policy();
  IterativeDpoConfig cfg;
  cfg.sampling = sampling(1);
  std::ostringstream progress;
  EXPECT_THROW(train_iterative_dpo(policy, make_prompts(2), target_share, no_text, cfg, progress), InputError);
}

}  // namespace
}  // namespace rlhf
