// Greedy decoding (temperature 0) against transformers' generate() on the committed tiny
// checkpoints (tests/fixtures/generate/greedy.json, reference/make_generate_fixtures.py): the
// token ids must be identical, EOS handling included. All prompts of a family run in one batch.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "rollout/sampler.h"

namespace rlhf::rollout {
namespace {

namespace fs = std::filesystem;

class GreedyParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GreedyParity, EqualsTransformersGenerate) {
  const fs::path root(RLHF_FIXTURES_DIR);
  std::ifstream in(root / "generate" / "greedy.json");
  ASSERT_TRUE(in) << "missing fixture greedy.json";
  const nlohmann::json fx = nlohmann::json::parse(in);
  Transformer m = load_checkpoint(root / GetParam() / "model", ModelHeads{});
  const nlohmann::json& cases = fx.at("families").at(GetParam()).at("cases");
  // Cases with the same EOS share one generate() call, so prompts of different lengths batch.
  std::map<int32_t, std::vector<size_t>> by_eos;
  for (size_t i = 0; i < cases.size(); ++i) by_eos[cases[i].at("eos_token_id").get<int32_t>()].push_back(i);
  for (const auto& [eos, idx] : by_eos) {
    std::vector<std::vector<int32_t>> prompts;
    for (size_t i : idx) prompts.push_back(cases[i].at("prompt").get<std::vector<int32_t>>());
    const SamplingParams sp{.temperature = 0, .max_new_tokens = fx.at("max_new_tokens").get<int64_t>(), .eos_ids = {eos}};
    const std::vector<Completion> out = generate(m, prompts, std::vector<uint64_t>(prompts.size(), 0), sp);
    for (size_t k = 0; k < idx.size(); ++k) {
      const auto want = cases[idx[k]].at("completion").get<std::vector<int32_t>>();
      EXPECT_EQ(out[k].tokens, want) << GetParam() << " case " << idx[k];
      EXPECT_EQ(out[k].finish, want.back() == eos ? FinishReason::eos : FinishReason::length);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GreedyParity, ::testing::Values("gpt2", "llama", "qwen2", "mistral", "qwen3", "smollm3", "olmo2", "gemma3", "gemma2", "phi3"));

}  // namespace
}  // namespace rlhf::rollout
