// The reward-model source on a tiny random Llama reward model with a GPT-2-style tokenizer:
// scores equal compute_head_values on the same sequences; the policy's ids are used when the
// tokenizers agree, the text is re-tokenized (with the chat template) when they do not.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "../model/model_test_util.h"
#include "model/checkpoint.h"
#include "reward_test_util.h"
#include "tensor/error.h"
#include "../model/tiny_models.h"
#include "text/tokenizer.h"
#include "train/offline_trainer.h"

namespace rlhf::rollout {
namespace {

namespace fs = std::filesystem;
using rlhf::test::expect_error;
using rlhf::test::TempDir;

const fs::path kTokenizer = fs::path(RLHF_FIXTURES_DIR) / "text" / "tokenizers" / "gpt2";

// A tiny random Llama reward model over the GPT-2-style fixture tokenizer (vocab 2001, EOS
// <|endoftext|> = 2000); `chat_template` (if any) goes into its tokenizer_config.json.
fs::path make_rm(const TempDir& dir, const std::string& chat_template = "") {
  const fs::path to = dir / "rm";
  const Tokenizer tok = Tokenizer::load(kTokenizer);
  ModelConfig cfg = rlhf::test::tiny_config("llama");
  cfg.vocab_size = tok.vocab_size();
  Transformer m(cfg, ModelHeads{.lm_head = false, .score_head = true});
  m.init_random(7, 0.5f);  // large weights: scores that differ clearly between sequences
  save_checkpoint(m, to);
  fs::copy_file(kTokenizer / "tokenizer.json", to / "tokenizer.json");
  nlohmann::json tc = nlohmann::json::parse(std::ifstream(kTokenizer / "tokenizer_config.json"));
  if (!chat_template.empty()) tc["chat_template"] = chat_template;
  std::ofstream(to / "tokenizer_config.json") << tc.dump(2);
  return to;
}

// A policy directory's tokenizer files: the same tokenizer.json (or other bytes of the same
// vocabulary) and a tokenizer_config.json that differs in a field that does not change tokens.
fs::path make_policy(const TempDir& dir, bool same_bytes) {
  const fs::path to = dir / "policy";
  fs::create_directories(to);
  if (same_bytes)
    fs::copy_file(kTokenizer / "tokenizer.json", to / "tokenizer.json");
  else
    std::ofstream(to / "tokenizer.json") << nlohmann::json::parse(std::ifstream(kTokenizer / "tokenizer.json")).dump();
  nlohmann::json tc = nlohmann::json::parse(std::ifstream(kTokenizer / "tokenizer_config.json"));
  tc["model_max_length"] = 4096;
  std::ofstream(to / "tokenizer_config.json") << tc.dump();
  return to;
}

// The head at the last token of each id sequence, by the offline loop's scorer.
std::vector<double> head_values(const fs::path& rm_dir, const std::vector<std::vector<int32_t>>& seqs) {
  Transformer rm = load_checkpoint(rm_dir, ModelHeads{.lm_head = false, .score_head = true});
  OfflineDataset d;
  for (size_t i = 0; i < seqs.size(); ++i) d.seqs.push_back({seqs[i], 1, static_cast<int64_t>(i), 0});
  PackOptions pack;
  pack.seq_len = 32;
  return compute_head_values(rm, d, pack);
}

// Ids of `text` by the fixture tokenizer (its post-processor adds nothing).
std::vector<int32_t> ids(const std::string& text) {
  return Tokenizer::load(kTokenizer).encode(text);
}

RewardSample with_ids(std::vector<int32_t> prompt, std::vector<int32_t> completion) {
  RewardSample s = test::sample("text that is not looked at");
  s.prompt_ids = std::move(prompt);
  s.completion_ids = std::move(completion);
  return s;
}

TEST(ModelReward, SameTokenizerScoresThePolicyIdsLikeComputeHeadValues) {
  TempDir dir;
  const fs::path rm = make_rm(dir), policy = make_policy(dir, true);
  const std::vector<std::vector<int32_t>> p = {{1, 38, 61, 88, 114, 107, 7}, {1, 28, 44, 78, 6}, {1, 32, 84}};
  const std::vector<std::vector<int32_t>> c = {{36, 107, 88, 55, 6, 2}, {9, 47, 6}, {}};
  std::vector<RewardSample> batch;
  std::vector<std::vector<int32_t>> full;
  for (size_t i = 0; i < p.size(); ++i) {
    batch.push_back(with_ids(p[i], c[i]));
    full.push_back(p[i]);
    full.back().insert(full.back().end(), c[i].begin(), c[i].end());
  }
  const std::vector<double> want = head_values(rm, full);
  // batch=1: one sequence per forward; batch=8: all packed into one row.
  for (const std::string spec : {"rm(batch=1):", "rm:"}) {
    const RewardResult r = test::source(spec + rm.string(), {.policy_dir = policy})->score(batch);
    ASSERT_EQ(r.scores.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(r.scores[i], want[i], 1e-5) << spec << " sample " << i;
  }
  EXPECT_NE(want[0], want[1]);  // the scores tell the sequences apart
}

TEST(ModelReward, DifferentTokenizerReTokenizesTheText) {
  // A policy whose tokenizer.json differs (here only in its bytes): its ids are not used.
  TempDir dir;
  const fs::path rm = make_rm(dir), policy = make_policy(dir, false);
  RewardSample s = with_ids({3, 3, 3}, {3, 3});
  s.prompt.text = "What color is the sky?";
  s.completion = " The sky is blue.";
  s.eos = true;
  RewardSample cut = s;
  cut.eos = false;
  // The text re-tokenized, and EOS (2000) only when the sample ended with EOS.
  std::vector<int32_t> words = ids("What color is the sky? The sky is blue.");
  ASSERT_GT(words.size(), 5u);
  std::vector<int32_t> with_eos = words;
  with_eos.push_back(2000);
  const std::vector<double> want = head_values(rm, {with_eos, words, {3, 3, 3, 3, 3}});
  const RewardResult r = test::source("rm:" + rm.string(), {.policy_dir = policy})->score({s, cut});
  EXPECT_NEAR(r.scores[0], want[0], 1e-5);
  EXPECT_NEAR(r.scores[1], want[1], 1e-5);
  EXPECT_GT(std::abs(want[0] - want[1]), 1e-4);       // so the EOS decision shows
  EXPECT_GT(std::abs(r.scores[0] - want[2]), 1e-4);  // not the policy's ids
  // Without a policy directory the text is always re-tokenized.
  EXPECT_NEAR(test::source("rm:" + rm.string())->score({s}).scores[0], want[0], 1e-5);
}

TEST(ModelReward, ReTokenizationAppliesTheRewardModelsChatTemplate) {
  TempDir dir;
  const fs::path rm = make_rm(dir, "{% for m in messages %}{{ m['content'] }} {% endfor %}");
  const fs::path policy = make_policy(dir, true);
  RewardSample s = with_ids({1, 2, 3}, {4});
  s.prompt.is_chat = true;
  s.prompt.messages = {{"user", "What color is the sky?"}};
  s.completion = "The sky is blue.";
  s.eos = true;
  // The template's text "What color is the sky? The sky is blue. " tokenized as `rlhf rm`
  // tokenizes its training pairs (TRL's conventions): whole, so the prompt's trailing space
  // merges into " The", and without an EOS after the rendered turn.
  const std::vector<int32_t> want_ids = ids("What color is the sky? The sky is blue. ");
  std::vector<int32_t> apart = ids("What color is the sky? ");
  const std::vector<int32_t> completion = ids("The sky is blue. ");
  apart.insert(apart.end(), completion.begin(), completion.end());
  EXPECT_NE(want_ids, apart);  // the seam case is exercised
  const std::vector<double> want = head_values(rm, {want_ids});
  // The policy's tokenizer.json is the same but its chat template is not: re-tokenize.
  const RewardResult r = test::source("rm:" + rm.string(), {.policy_dir = policy})->score({s});
  EXPECT_NEAR(r.scores[0], want[0], 1e-5);
}

TEST(ModelReward, TooLongIsCountedNaNAndBadInputIsAnError) {
  TempDir dir;
  const fs::path rm = make_rm(dir), policy = make_policy(dir, true);
  std::vector<RewardSample> batch = {with_ids({1, 38, 61}, {36, 2}), with_ids({1, 38}, {36})};
  const RewardResult r = test::source("rm(max_length=4):" + rm.string(), {.policy_dir = policy})->score(batch);
  EXPECT_TRUE(std::isnan(r.scores[0]));
  EXPECT_NEAR(r.scores[1], head_values(rm, {{1, 38, 36}})[0], 1e-5);
  ASSERT_FALSE(r.metrics.empty());
  EXPECT_EQ(r.metrics[0], (std::pair<std::string, double>{"too_long", 1.0}));

  expect_error<InputError>(
      [&] { test::source("rm:" + rm.string(), {.policy_dir = policy})->score({with_ids({1, 5000}, {2})}); },
      {"token id 5000", "vocabulary of 2001"});
  const fs::path lm = dir / "lm";
  save_checkpoint(Transformer(rlhf::test::tiny_config("llama"), ModelHeads{}), lm);
  expect_error<InputError>([&] { test::source("rm:" + lm.string()); }, {"no score head"});
  expect_error<InputError>([&] { test::source("rm(batch=0):" + rm.string()); }, {"batch must be a positive integer"});
}

}  // namespace
}  // namespace rlhf::rollout
