// Parity with PyTorch + transformers on tiny checkpoints made by reference/make_fixtures.py:
// per-token log-probs (1e-4 absolute), the scalar head, and every parameter gradient of a fixed
// objective (1e-3 relative), for GPT-2, Llama (GQA, llama3 rope scaling, BF16, sharded),
// Qwen2 (qkv bias, F16) and Mistral (sliding window). Also: saving and reloading is lossless.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "train/optimizer.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

struct Expected {
  std::unique_ptr<SafetensorsFile> file;
  std::vector<float> get(const std::string& name) const {
    const TensorView* t = file->find(name);
    if (!t) throw std::runtime_error("fixture lacks " + name);
    std::vector<float> v(t->numel());
    convert_to_f32(*t, v.data(), file->path().string());
    return v;
  }
  std::vector<int64_t> shape(const std::string& name) const { return file->find(name)->shape; }
};

Batch fixture_batch(const Expected& e) {
  const TensorView* ids = e.file->find("input_ids");
  const int64_t B = ids->shape[0], T = ids->shape[1];
  std::vector<std::vector<int32_t>> rows(B, std::vector<int32_t>(T));
  const auto* p = reinterpret_cast<const int32_t*>(ids->data);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) rows[b][t] = p[b * T + t];
  return Batch::from_rows(rows, 1);
}

// Relative error of a gradient tensor: ||ours - ref|| / ||ref||, plus an elementwise check.
void expect_grad_close(const std::vector<float>& ours, const std::vector<float>& ref, const std::string& name) {
  ASSERT_EQ(ours.size(), ref.size()) << name;
  double err2 = 0, ref2 = 0, ref_max = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err2 += (ours[i] - ref[i]) * double(ours[i] - ref[i]);
    ref2 += ref[i] * double(ref[i]);
    ref_max = std::max(ref_max, double(std::fabs(ref[i])));
  }
  EXPECT_LE(std::sqrt(err2), 1e-3 * std::sqrt(ref2) + 1e-6) << name;
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(ours[i], ref[i], 1e-3 * std::fabs(ref[i]) + 1e-4 * ref_max + 1e-6) << name << "[" << i << "]";
}

class HfParity : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return fs::path(RLHF_FIXTURES_DIR) / GetParam(); }
};

TEST_P(HfParity, CausalLmLogprobsAndGradients) {
  Expected e{SafetensorsFile::open(dir() / "expected.safetensors")};
  Transformer m = load_checkpoint(dir() / "model", ModelHeads{});
  const Batch b = fixture_batch(e);
  Workspace ws(m.config(), b.B, b.T, b.n_scored(), 0);
  const Scores s = m.forward(b, ws);
  const std::vector<float> logp = e.get("logp"), coef = e.get("coef");
  ASSERT_EQ(s.logp.size(), logp.size());
  double loss = 0;
  for (size_t i = 0; i < logp.size(); ++i) {
    EXPECT_NEAR(s.logp[i], logp[i], 1e-4) << "token " << i;
    loss += coef[i] * s.logp[i];
  }
  EXPECT_NEAR(loss, e.get("loss")[0], 1e-4 * std::max(1.0, std::fabs(loss)));

  m.zero_grad();
  m.backward(b, ws, coef, {});
  int checked = 0;
  for (const HfTensor& t : hf_layout(m.config(), m.heads(), hf_default_prefix(m.config()))) {
    expect_grad_close(export_hf_tensor(m, t, m.grads()), e.get("grad." + t.hf_name), t.hf_name);
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

TEST_P(HfParity, ScalarHeadValuesAndGradients) {
  Expected e{SafetensorsFile::open(dir() / "expected.safetensors")};
  LoadReport rep;
  Transformer m = load_checkpoint(dir() / "rm", ModelHeads{.lm_head = false, .score_head = true}, &rep);
  EXPECT_FALSE(rep.score_head_initialised);
  Batch b = fixture_batch(e);
  b.scored.clear();
  for (int64_t i = 0; i < b.B * b.T; ++i) b.head_at.push_back(i);
  Workspace ws(m.config(), b.B, b.T, 0, b.n_head());
  const Scores s = m.forward(b, ws);
  const std::vector<float> score = e.get("score"), hcoef = e.get("hcoef");
  ASSERT_EQ(s.head.size(), score.size());
  for (size_t i = 0; i < score.size(); ++i) EXPECT_NEAR(s.head[i], score[i], 1e-4) << "position " << i;

  m.zero_grad();
  m.backward(b, ws, {}, hcoef);
  for (const HfTensor& t : hf_layout(m.config(), m.heads(), hf_default_prefix(m.config())))
    expect_grad_close(export_hf_tensor(m, t, m.grads()), e.get("rm_grad." + t.hf_name), t.hf_name);
}

TEST_P(HfParity, SaveAndReloadIsLossless) {
  Transformer m = load_checkpoint(dir() / "model", ModelHeads{});
  const fs::path out = fs::temp_directory_path() / ("rlhf_parity_" + GetParam() + std::to_string(::getpid()));
  save_checkpoint(m, out);
  Transformer back = load_checkpoint(out, ModelHeads{});
  EXPECT_EQ(back.params(), m.params());
  EXPECT_EQ(back.config().to_json(false), m.config().to_json(false));
  fs::remove_all(out);
}

// A checkpoint trained here (3 AdamW steps away from the fixture) reloads with the same weights
// and the same log-probs and scalar-head values, and is written with them for
// reference/check_roundtrip.py to load in transformers (docs/reliability.md test 13c):
//   RLHF_ROUNDTRIP_OUT=/tmp/rt build/rlhf_tests --gtest_filter='*ExportForTransformers*'
//   for d in /tmp/rt/*; do reference/.venv/bin/python reference/check_roundtrip.py $d; done
// Without RLHF_ROUNDTRIP_OUT the files go to a temporary directory, removed after the checks.
TEST_P(HfParity, ExportForTransformers) {
  const char* out_env = std::getenv("RLHF_ROUNDTRIP_OUT");
  const fs::path root = out_env ? fs::path(out_env)
                                : fs::temp_directory_path() / ("rlhf_export_" + std::to_string(::getpid()));
  Expected e{SafetensorsFile::open(dir() / "expected.safetensors")};
  const TensorView* ids = e.file->find("input_ids");
  for (const bool rm : {false, true}) {
    const ModelHeads heads{.lm_head = !rm, .score_head = rm};
    Transformer m = load_checkpoint(dir() / (rm ? "rm" : "model"), heads);
    Batch b = fixture_batch(e);
    if (rm) {
      b.scored.clear();
      for (int64_t i = 0; i < b.B * b.T; ++i) b.head_at.push_back(i);
    }
    Workspace ws(m.config(), b.B, b.T, b.n_scored(), b.n_head());
    AdamW opt(m, AdamWConfig{.lr = 1e-2, .weight_decay = 0.1});
    for (int step = 0; step < 3; ++step) {
      m.zero_grad();
      const Scores s = m.forward(b, ws);
      m.backward(b, ws, rm ? std::vector<float>{} : std::vector<float>(s.logp.size(), -1.0f),
                 rm ? std::vector<float>(s.head.size(), 1.0f) : std::vector<float>{});
      opt.step(m, 1e-2, grad_global_norm(m));
    }
    const Scores s = m.forward(b, ws);
    const fs::path out = root / (GetParam() + (rm ? "-rm" : "-lm"));
    fs::create_directories(out);
    save_checkpoint(m, out / (rm ? "rm" : "model"));
    std::vector<TensorToWrite> t = {{"input_ids", DType::I32, ids->shape, ids->data}};
    if (rm)
      t.push_back({"score", DType::F32, ids->shape, s.head.data()});
    else
      t.push_back({"logp", DType::F32, {ids->shape[0], ids->shape[1] - 1}, s.logp.data()});
    write_safetensors(out / "logprobs.safetensors", t);

    Transformer back = load_checkpoint(out / (rm ? "rm" : "model"), heads);
    EXPECT_EQ(back.params(), m.params()) << out;
    Workspace ws2(back.config(), b.B, b.T, b.n_scored(), b.n_head());
    const Scores s2 = back.forward(b, ws2);
    EXPECT_EQ(s2.logp, s.logp) << out;
    EXPECT_EQ(s2.head, s.head) << out;
    EXPECT_FALSE(rm ? s.head.empty() : s.logp.empty());
  }
  if (!out_env) fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity, ::testing::Values("gpt2", "llama", "qwen2", "mistral", "qwen3", "smollm3", "olmo2", "gemma3", "gemma2", "phi3"));

}  // namespace
}  // namespace rlhf
