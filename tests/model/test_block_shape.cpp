// The transformer block's shape (ModelConfig::block): the families' shapes, the refusal of
// values not implemented yet, and known answers for the values no family uses yet. Their
// gradients and decode are checked with every family's in test_transformer.cpp and
// test_decode.cpp (tiny_models.h lists the shapes).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/kernels.h"
#include "model/checkpoint.h"
#include "model/transformer.h"
#include "model_test_util.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "tiny_models.h"

namespace rlhf {
namespace {

TEST(BlockShape, FamiliesShapes) {
  const BlockShape gpt2 = test::tiny_config("gpt2").block;
  EXPECT_EQ(gpt2.norm, NormKind::layernorm);
  EXPECT_EQ(gpt2.norm_placement, NormPlacement::pre);
  EXPECT_EQ(gpt2.position, PositionKind::learned);
  EXPECT_EQ(gpt2.mlp, MlpKind::gelu_tanh);
  EXPECT_TRUE(gpt2.qkv_bias && gpt2.attn_out_bias && gpt2.mlp_bias && gpt2.norm_bias);
  for (const char* family : {"llama", "qwen2", "mistral"}) {
    const BlockShape b = test::tiny_config(family).block;
    EXPECT_EQ(b.norm, NormKind::rmsnorm) << family;
    EXPECT_EQ(b.norm_placement, NormPlacement::pre) << family;
    EXPECT_EQ(b.position, PositionKind::rope) << family;
    EXPECT_EQ(b.mlp, MlpKind::swiglu) << family;
    EXPECT_EQ(b.qkv_bias, std::string(family) == "qwen2") << family;
    EXPECT_FALSE(b.attn_out_bias || b.mlp_bias || b.norm_bias) << family;
  }
  for (const BlockShape& b : {gpt2, test::tiny_config("llama").block}) {
    EXPECT_FALSE(b.lm_head_bias);
    EXPECT_EQ(b.qk_norm, QkNorm::none);
    EXPECT_EQ(b.attn_softcap, 0.0f);
    EXPECT_EQ(b.final_softcap, 0.0f);
    EXPECT_EQ(b.embed_scale, 1.0f);
  }
  // Llama's attention_bias covers q, k, v and o; Qwen2's q, k and v only.
  ModelConfig llama = test::tiny_config("llama");
  llama.attention_bias = true;
  const BlockShape b = family_block_shape(llama);
  EXPECT_TRUE(b.qkv_bias && b.attn_out_bias);
}

// Each value the model does not implement is refused at construction, naming its field.
TEST(BlockShape, UnimplementedValuesAreRefused) {
  struct Case {
    const char* base;
    void (*edit)(BlockShape&);
    const char* field;
    const char* why;
  };
  const Case cases[] = {
      {"gpt2", [](BlockShape& b) { b.qk_norm = QkNorm::per_head; }, "block.qk_norm", "not supported yet"},
      {"llama", [](BlockShape& b) { b.attn_softcap = -1.0f; }, "block.attn_softcap", "positive number or 0"},
      {"llama", [](BlockShape& b) { b.final_softcap = -2.0f; }, "block.final_softcap", "positive number or 0"},
      {"llama", [](BlockShape& b) { b.lm_head_bias = true; }, "block.lm_head_bias", "not supported yet"},
      {"gpt2", [](BlockShape& b) { b.norm_bias = false; }, "block.norm_bias", "not supported yet"},
      {"gpt2", [](BlockShape& b) { b.embed_scale = 2.0f; }, "block.embed_scale", "not supported yet"},
      {"llama", [](BlockShape& b) { b.norm_bias = true; }, "block.norm_bias", "only LayerNorm"},
      {"llama", [](BlockShape& b) { b.embed_scale = 0.0f; }, "block.embed_scale", "positive"},
      {"llama", [](BlockShape& b) { b.embed_scale = NAN; }, "block.embed_scale", "positive"},
  };
  for (const Case& c : cases) {
    ModelConfig cfg = test::tiny_config(c.base);
    c.edit(cfg.block);
    test::expect_error<InputError>([&] { Transformer m(cfg, ModelHeads{}); }, {c.field, c.why});
  }
  ModelConfig odd = test::tiny_config("gpt2");  // head_dim 4 -> 3 is odd
  odd.hidden_size = 12;
  odd.head_dim = 3;
  odd.block.position = PositionKind::rope;
  test::expect_error<InputError>([&] { Transformer m(odd, ModelHeads{}); }, {"block.position", "even"});
}

// Saving writes HF names, which exist for the families' own shapes only.
TEST(BlockShape, OtherShapesAreNotSavedUnderFamilyNames) {
  Transformer m(test::tiny_config("sandwich_geglu"), ModelHeads{});
  test::TempDir dir;
  test::expect_error<InputError>([&] { save_checkpoint(m, dir / "ckpt"); }, {"block shape", "llama"});
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt"));
}

std::vector<float> random_values(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

Scores run(Transformer& m, const Batch& b, const std::vector<float>& dlogp) {
  Workspace ws(m.config(), b.B, b.T, b.n_scored(), 0);
  m.zero_grad();
  Scores s = m.forward(b, ws);
  m.backward(b, ws, dlogp, {});
  return s;
}

// RMSNorm with (1 + w) is RMSNorm with weight 1 + w: the same outputs and gradients.
TEST(BlockShape, OffsetRmsNormIsRmsNormOfOnePlusW) {
  ModelConfig offset_cfg = test::tiny_config("llama");
  offset_cfg.block.norm = NormKind::rmsnorm_offset;
  Transformer offset(offset_cfg, ModelHeads{}), plain(test::tiny_config("llama"), ModelHeads{});
  offset.init_random(3, 0.3f);
  EXPECT_EQ(offset.param("layers.0.norm1.weight")[0], 0.0f);  // (1 + w) starts at 1
  Rng rng(4);
  for (const ParamSlot& s : offset.slots())
    if (s.name.find("norm") != std::string::npos)
      for (int64_t i = 0; i < s.numel; ++i) offset.params()[s.offset + i] = static_cast<float>(rng.normal()) * 0.3f;
  plain.params() = offset.params();
  for (const ParamSlot& s : plain.slots())
    if (s.name.find("norm") != std::string::npos)
      for (int64_t i = 0; i < s.numel; ++i) plain.params()[s.offset + i] += 1.0f;
  const Batch b = Batch::from_rows({{1, 7, 3, 9, 4, 2}, {5, 5, 8, 1, 6, 3}});
  const std::vector<float> dlogp = random_values(b.n_scored(), 5);
  const Scores so = run(offset, b, dlogp), sp = run(plain, b, dlogp);
  for (size_t i = 0; i < so.logp.size(); ++i) EXPECT_EQ(so.logp[i], sp.logp[i]) << i;
  for (size_t i = 0; i < offset.grads().size(); ++i) EXPECT_EQ(offset.grads()[i], plain.grads()[i]) << i;
}

// The embedding scale s on a token table W is the unscaled model with the table s W (exact for
// s = 4), whose table gradient is the scaled one's / s.
TEST(BlockShape, EmbeddingScaleScalesTheTokenEmbedding) {
  ModelConfig scaled_cfg = test::tiny_config("llama");  // untied: the LM head keeps its own W
  scaled_cfg.block.embed_scale = 4.0f;
  Transformer scaled(scaled_cfg, ModelHeads{}), plain(test::tiny_config("llama"), ModelHeads{});
  scaled.init_random(6, 0.3f);
  plain.params() = scaled.params();
  const ParamSlot& wte = plain.slot("embed.tokens");
  for (int64_t i = 0; i < wte.numel; ++i) plain.params()[wte.offset + i] *= 4.0f;
  const Batch b = Batch::from_rows({{1, 7, 3, 9, 4, 2}, {5, 5, 8, 1, 6, 3}});
  const std::vector<float> dlogp = random_values(b.n_scored(), 7);
  const Scores ss = run(scaled, b, dlogp), sp = run(plain, b, dlogp);
  for (size_t i = 0; i < ss.logp.size(); ++i) EXPECT_EQ(ss.logp[i], sp.logp[i]) << i;
  for (int64_t i = 0; i < wte.numel; ++i)
    EXPECT_NEAR(scaled.grads()[wte.offset + i], 4.0f * plain.grads()[wte.offset + i], 1e-6f) << i;
}

// Without position encodings, a sequence's outputs do not depend on its position ids.
TEST(BlockShape, WithoutPositionsPositionIdsDoNotMatter) {
  Transformer m(test::tiny_config("post_nope"), ModelHeads{});
  m.init_random(8, 0.3f);
  Batch b = Batch::from_rows({{1, 7, 3, 9, 4, 2}});
  Workspace ws(m.config(), 1, 6, 5, 0);
  const Scores s0 = m.forward(b, ws);
  for (int32_t& p : b.positions) p += 1000;  // far past max_position_embeddings (32)
  const Scores s1 = m.forward(b, ws);
  for (size_t i = 0; i < s0.logp.size(); ++i) EXPECT_EQ(s0.logp[i], s1.logp[i]) << i;
}

// Gemma 2's logit means (TRL's logits/chosen) are means of the soft-capped logits: those decode
// returns for the same prefix.
TEST(BlockShape, SoftCappedLogitMeanIsTheMeanOfCappedLogits) {
  Transformer m(test::tiny_config("gemma2"), ModelHeads{});
  m.init_random(9, 0.5f);
  const std::vector<int32_t> seq = {3, 17, 4, 40, 8, 21};
  const Batch b = Batch::from_rows({seq}, 1);
  Workspace ws(m.config(), b.B, b.T, b.n_scored(), 0, /*vocab_chunk=*/16);  // several chunks
  ForwardOptions fo;
  fo.want_logit_mean = true;
  const Scores s = m.forward(b, ws, fo);
  const int64_t V = m.config().vocab_size;
  for (size_t t = 1; t < seq.size(); ++t) {  // scored token t is predicted after seq[0..t)
    KVCache cache(m.config(), 1, 16);
    std::vector<float> logits(V);
    m.decode(cache, {0}, {std::vector<int32_t>(seq.begin(), seq.begin() + t)}, logits.data());
    double mean = 0;
    for (float z : logits) mean += z;
    EXPECT_NEAR(s.logit_mean[t - 1], mean / V, 1e-5) << t;
  }
}

}  // namespace
}  // namespace rlhf
