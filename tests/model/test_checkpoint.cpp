// Checkpoint loading against the config (docs/reliability.md §7 test 13) and the save protocol.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "tiny_models.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rlhf_ckpt_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    model_ = std::make_unique<Transformer>(test::tiny_config("gpt2"), ModelHeads{});
    model_->init_random(1);
    save_checkpoint(*model_, dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Rewrites model.safetensors with the HF tensors of the model, edited by `edit`.
  void rewrite(const std::function<void(std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>&)>& edit) {
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> t;
    for (const HfTensor& h : hf_layout(model_->config(), model_->heads(), "transformer."))
      t[h.hf_name] = {h.hf_shape, export_hf_tensor(*model_, h, model_->params())};
    edit(t);
    std::vector<TensorToWrite> w;
    for (auto& [name, v] : t) w.push_back({name, DType::F32, v.first, v.second.data()});
    write_safetensors(dir_ / "model.safetensors", w);
  }
  std::string load_error() {
    try {
      load_checkpoint(dir_, ModelHeads{});
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  std::unique_ptr<Transformer> model_;
};

TEST_F(CheckpointTest, RoundTripIsExact) {
  Transformer back = load_checkpoint(dir_, ModelHeads{});
  EXPECT_EQ(back.params(), model_->params());
}

TEST_F(CheckpointTest, MissingTensorIsNamed) {
  rewrite([](auto& t) { t.erase("transformer.h.1.mlp.c_fc.bias"); });
  const std::string e = load_error();
  EXPECT_NE(e.find("missing tensors"), std::string::npos) << e;
  EXPECT_NE(e.find("transformer.h.1.mlp.c_fc.bias"), std::string::npos) << e;
}

TEST_F(CheckpointTest, UnexpectedTensorIsNamed) {
  rewrite([](auto& t) { t["transformer.h.7.ln_1.weight"] = {{16}, std::vector<float>(16, 1.0f)}; });
  const std::string e = load_error();
  EXPECT_NE(e.find("unexpected tensors: transformer.h.7.ln_1.weight"), std::string::npos) << e;
}

TEST_F(CheckpointTest, VocabularyRowsContradictingConfigAreNamed) {
  rewrite([](auto& t) { t["transformer.wte.weight"] = {{60, 16}, std::vector<float>(60 * 16, 0.0f)}; });
  const std::string e = load_error();
  EXPECT_NE(e.find("transformer.wte.weight has shape [60, 16], config.json implies [50, 16]"), std::string::npos) << e;
  EXPECT_NE(e.find(dir_.string()), std::string::npos) << e;
}

// A small directory whose config.json asks for a huge model (GPT-2 with a vocabulary of 4M and
// width 65536: 2.6e11 parameters in the embeddings alone) is refused from the headers, before a
// byte of it is allocated: in well under a second and without growing the process.
TEST_F(CheckpointTest, ConfigAskingForMoreThanTheWeightsIsRefusedBeforeAllocating) {
  nlohmann::json cfg;
  std::ifstream(dir_ / "config.json") >> cfg;
  cfg["vocab_size"] = 4000000;
  cfg["n_embd"] = 65536;
  std::ofstream(dir_ / "config.json") << cfg.dump();
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = load_error();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  getrusage(RUSAGE_SELF, &after);
  EXPECT_NE(e.find("weights do not match config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("config.json implies [4000000, 65536]"), std::string::npos) << e;
  EXPECT_LT(seconds, 1.0);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KB of peak memory gained";
}

// Headers that agree with a config too large for this machine (a sparse weight file, so nothing
// is written): refused with the estimate, before allocating.
TEST_F(CheckpointTest, ModelLargerThanTheAvailableMemoryIsRefused) {
  nlohmann::json cfg;
  std::ifstream(dir_ / "config.json") >> cfg;
  cfg["vocab_size"] = 1'000'000;  // tied embeddings of width 8192 and two layers: 8.7e9 parameters
  cfg["n_embd"] = 8192;
  cfg["n_inner"] = 16;
  std::ofstream(dir_ / "config.json") << cfg.dump();
  nlohmann::ordered_json header;
  int64_t offset = 0;
  for (const HfTensor& t : hf_layout(ModelConfig::from_json(cfg, "test"), ModelHeads{}, "transformer.")) {
    int64_t n = 4;
    for (int64_t d : t.hf_shape) n *= d;
    header[t.hf_name] = {{"dtype", "F32"}, {"shape", t.hf_shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  {
    std::ofstream f(dir_ / "model.safetensors", std::ios::binary);
    const uint64_t len = text.size();
    f.write(reinterpret_cast<const char*>(&len), 8);
    f << text;
  }
  fs::resize_file(dir_ / "model.safetensors", 8 + text.size() + offset);
  const std::string e = load_error();
  EXPECT_NE(e.find("GB as fp32 weights and gradients, more than the"), std::string::npos) << e;
  EXPECT_NE(e.find("RLHF_SKIP_MEMORY_CHECK=1"), std::string::npos) << e;
}

TEST_F(CheckpointTest, NonFiniteWeightsAreRefusedOnLoad) {
  rewrite([](auto& t) { t["transformer.h.0.attn.c_proj.weight"].second[5] = std::nanf(""); });
  const std::string e = load_error();
  EXPECT_NE(e.find("tensor transformer.h.0.attn.c_proj.weight holds 1 non-finite values"), std::string::npos) << e;
  EXPECT_NE(e.find(dir_.string()), std::string::npos) << e;
}

TEST_F(CheckpointTest, NonFiniteWeightsAreNeverSaved) {
  const std::vector<float> before = load_checkpoint(dir_, ModelHeads{}).params();
  Transformer diverged = *model_;
  diverged.params()[diverged.slot("layers.1.mlp.down.weight").offset + 3] = INFINITY;
  std::string e;
  try {
    save_checkpoint(diverged, dir_);
  } catch (const NumericError& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("refusing to save " + dir_.string() + ": 1 parameters are NaN or Inf"), std::string::npos) << e;
  EXPECT_EQ(load_checkpoint(dir_, ModelHeads{}).params(), before);  // the previous save is untouched
}

TEST_F(CheckpointTest, ScoreHeadIsCreatedOnlyWhenRequested) {
  LoadReport rep;
  Transformer rm = load_checkpoint(dir_, ModelHeads{.lm_head = false, .score_head = true}, &rep);
  EXPECT_TRUE(rep.score_head_initialised);
  const ParamSlot& s = rm.slot("score.weight");
  double sumsq = 0;
  for (int64_t i = 0; i < s.numel; ++i) sumsq += rm.params()[s.offset + i] * rm.params()[s.offset + i];
  EXPECT_GT(sumsq, 0.0);  // initialised, not left at zero
  // Saved as a sequence classifier that loads back with its head.
  save_checkpoint(rm, dir_ / "rm");
  LoadReport rep2;
  Transformer back = load_checkpoint(dir_ / "rm", ModelHeads{.lm_head = false, .score_head = true}, &rep2);
  EXPECT_FALSE(rep2.score_head_initialised);
  EXPECT_EQ(back.params(), rm.params());
}

TEST_F(CheckpointTest, SaveKeepsOtherFilesAndLeavesNoTemporaries) {
  { std::ofstream(dir_ / "metrics.jsonl") << "{\"loss\":1}\n"; }
  save_checkpoint(*model_, dir_);
  EXPECT_TRUE(fs::exists(dir_ / "metrics.jsonl"));
  for (const auto& e : fs::directory_iterator(dir_.parent_path()))
    EXPECT_EQ(e.path().filename().string().find("." + dir_.filename().string() + ".tmp"), std::string::npos);
}

}  // namespace
}  // namespace rlhf
