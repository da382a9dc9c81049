// require_shared_vocabulary (train/shared_vocabulary.h): a reference or critic must give every
// token id the meaning the policy's tokenizer gives it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "model/config.h"
#include "tensor/error.h"
#include "train/shared_vocabulary.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

const fs::path kTokenizers = fs::path(RLHF_FIXTURES_DIR) / "text" / "tokenizers";

// A model directory with a config of `vocab` ids and, when given, the tokenizer files of `tok`.
fs::path model_dir(const std::string& name, int64_t vocab, const std::string& tok = "") {
  const fs::path d = fs::temp_directory_path() / ("rlhf_vocab_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  std::ofstream(d / "config.json") << R"({"model_type": "llama", "vocab_size": )" << vocab
                                   << R"(, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
      "intermediate_size": 24, "max_position_embeddings": 32})";
  if (!tok.empty())
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      if (fs::exists(kTokenizers / tok / f)) fs::copy_file(kTokenizers / tok / f, d / f);
  return d;
}

std::string message_of(const fs::path& a, const fs::path& b) {
  try {
    require_shared_vocabulary(a, b, "--ref-model");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(SharedVocabulary, SameTokenizerPasses) {
  EXPECT_EQ(message_of(model_dir("a", 151665, "qwen2"), model_dir("b", 151665, "qwen2")), "");
  const fs::path a = model_dir("same", 1000, "qwen2");
  EXPECT_EQ(message_of(a, a), "");
}

TEST(SharedVocabulary, AnotherTokenizerIsRefusedNamingTheId) {
  const std::string m = message_of(model_dir("policy", 50257, "gpt2"), model_dir("ref", 50257, "qwen2"));
  EXPECT_NE(m.find("--ref-model"), std::string::npos) << m;
  EXPECT_NE(m.find("its tokenizer"), std::string::npos) << m;
  EXPECT_NE(m.find("other tokens than the policy's"), std::string::npos) << m;
}

TEST(SharedVocabulary, WithoutTokenizerFilesTheVocabSizeMustMatch) {
  EXPECT_EQ(message_of(model_dir("p", 2048), model_dir("r", 2048)), "");
  const std::string m = message_of(model_dir("p2", 2048), model_dir("r2", 4096, "qwen2"));
  EXPECT_NE(m.find("vocab_size 4096, the policy's is 2048"), std::string::npos) << m;
}

}  // namespace
}  // namespace rlhf
