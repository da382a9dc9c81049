// Decoding with the KV cache against the full forward: the next-token distribution after every
// prefix must be the same, for every family and block shape (tiny_models.h), with sequences of
// different lengths sharing calls.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"
#include "model/transformer.h"
#include "tensor/error.h"
#include "tiny_models.h"

namespace rlhf {
namespace {

// log softmax of the next-token logits after `prefix`, by the no-cache forward: one row per
// candidate token v, scoring v after the prefix.
std::vector<float> reference_logprobs(Transformer& m, const std::vector<int32_t>& prefix) {
  const int64_t V = m.config().vocab_size;
  std::vector<std::vector<int32_t>> rows(V, prefix);
  for (int64_t v = 0; v < V; ++v) rows[v].push_back(static_cast<int32_t>(v));
  Batch b = Batch::from_rows(rows, static_cast<int64_t>(prefix.size()));
  Workspace ws(m.config(), b.B, b.T, b.n_scored(), 0);
  return m.forward(b, ws).logp;
}

std::vector<float> log_softmax(const float* z, int64_t V) {
  const float mx = *std::max_element(z, z + V);
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(z[v] - mx));
  std::vector<float> out(V);
  for (int64_t v = 0; v < V; ++v) out[v] = static_cast<float>(z[v] - mx - std::log(s));
  return out;
}

// Largest |difference| between the cached distributions of `slots` and the reference ones.
float max_error(Transformer& m, const std::vector<float>& logits, const std::vector<std::vector<int32_t>>& seqs,
                const std::vector<int64_t>& slots) {
  const int64_t V = m.config().vocab_size;
  float err = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const std::vector<float> got = log_softmax(logits.data() + i * V, V);
    const std::vector<float> want = reference_logprobs(m, seqs[slots[i]]);
    for (int64_t v = 0; v < V; ++v) err = std::max(err, std::fabs(got[v] - want[v]));
  }
  return err;
}

class DecodeTest : public ::testing::TestWithParam<std::string> {};

// Mixed prompt lengths prefilled in one call, then decode steps where slots advance unevenly
// (some idle, one taking two tokens at once) and a late prompt is prefilled beside them.
TEST_P(DecodeTest, CachedLogitsEqualFullForward) {
  Transformer m(test::tiny_config(GetParam()), ModelHeads{});
  m.init_random(5, 0.3f);
  const int64_t V = m.config().vocab_size;
  std::vector<std::vector<int32_t>> seqs = {{3, 14, 15, 9, 2}, {7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {40, 41, 42}, {}};
  KVCache cache(m.config(), 5, 32);
  std::vector<int64_t> slots = {0, 1, 2, 3};
  std::vector<float> logits(5 * V);
  m.decode(cache, slots, {seqs[0], seqs[1], seqs[2], seqs[3]}, logits.data());
  EXPECT_LT(max_error(m, logits, seqs, slots), 1e-4f);
  for (int step = 0; step < 12; ++step) {
    slots.clear();
    std::vector<std::vector<int32_t>> toks;
    for (int64_t s = 0; s < 4; ++s) {
      if ((step + s) % 3 == 2) continue;  // this slot sits this step out
      std::vector<int32_t> t = {static_cast<int32_t>((7 * step + 11 * s) % V)};
      if (step == 4 && s == 1) t.push_back(33);  // two tokens in one call
      slots.push_back(s);
      toks.push_back(t);
    }
    if (step == 3) {  // a new prompt prefilled alongside the decode steps
      seqs[4] = {5, 6, 7, 8, 9, 10};
      slots.push_back(4);
      toks.push_back(seqs[4]);
    } else if (step > 3) {
      slots.push_back(4);
      toks.push_back({static_cast<int32_t>(step)});
    }
    for (size_t i = 0; i < slots.size(); ++i)
      if (!(step == 3 && slots[i] == 4)) seqs[slots[i]].insert(seqs[slots[i]].end(), toks[i].begin(), toks[i].end());
    m.decode(cache, slots, toks, logits.data());
    for (size_t i = 0; i < slots.size(); ++i)
      ASSERT_EQ(cache.len(slots[i]), static_cast<int64_t>(seqs[slots[i]].size()));
    EXPECT_LT(max_error(m, logits, seqs, slots), 1e-4f) << "step " << step;
  }
}

// A prompt longer than the cached-attention kernel's 64-row block, then decode steps past it.
TEST_P(DecodeTest, LongPrefillAcrossBlocks) {
  ModelConfig cfg = test::tiny_config(GetParam());
  cfg.max_position_embeddings = 160;
  Transformer m(cfg, ModelHeads{});
  m.init_random(6, 0.3f);
  const int64_t V = cfg.vocab_size;
  std::vector<std::vector<int32_t>> seqs(2);
  for (int i = 0; i < 150; ++i) seqs[0].push_back(static_cast<int32_t>((i * 13 + 5) % V));
  seqs[1] = {1, 2};
  KVCache cache(cfg, 2, 160);
  std::vector<float> logits(2 * V);
  m.decode(cache, {0, 1}, seqs, logits.data());
  EXPECT_LT(max_error(m, logits, seqs, {0, 1}), 1e-4f);
  for (int step = 0; step < 3; ++step) {
    for (auto& s : seqs) s.push_back(static_cast<int32_t>(step + 1));
    m.decode(cache, {0, 1}, {{step + 1}, {step + 1}}, logits.data());
    EXPECT_LT(max_error(m, logits, seqs, {0, 1}), 1e-4f);
  }
}

// Prepacked weights (pack_for_decode), as generate uses them for batches of many sequences:
// calls of kPackedMinRows rows or more multiply on the GEMM, smaller ones stream; both give the
// full forward's distributions.
TEST_P(DecodeTest, PackedWeightsMatchFullForward) {
  Transformer m(test::tiny_config(GetParam()), ModelHeads{});
  m.init_random(8, 0.3f);
  const int64_t V = m.config().vocab_size, S = 12;
  const DecodeWeights packed = m.pack_for_decode();
  std::vector<std::vector<int32_t>> seqs(S);
  std::vector<std::vector<int32_t>> toks;
  std::vector<int64_t> slots;
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t i = 0; i <= s % 5; ++i) seqs[s].push_back(static_cast<int32_t>((5 * s + 3 * i + 1) % V));
    slots.push_back(s);
    toks.push_back(seqs[s]);
  }
  KVCache cache(m.config(), S, 32);
  std::vector<float> logits(S * V);
  m.decode(cache, slots, toks, logits.data(), &packed);
  EXPECT_LT(max_error(m, logits, seqs, slots), 1e-4f);
  for (int64_t rows : {S, kernels::kPackedMinRows, int64_t{3}}) {  // GEMM, GEMM at the threshold, streaming
    slots.resize(rows);
    toks.assign(rows, {});
    for (int64_t s = 0; s < rows; ++s) {
      toks[s] = {static_cast<int32_t>((7 * rows + s) % V)};
      seqs[s].push_back(toks[s][0]);
    }
    m.decode(cache, slots, toks, logits.data(), &packed);
    EXPECT_LT(max_error(m, logits, seqs, slots), 1e-4f) << rows << " rows";
  }
}

// A copied slot continues exactly like its source.
TEST_P(DecodeTest, CopiedSlotContinuesLikeItsSource) {
  Transformer m(test::tiny_config(GetParam()), ModelHeads{});
  m.init_random(7, 0.3f);
  const int64_t V = m.config().vocab_size;
  KVCache cache(m.config(), 3, 32);
  std::vector<float> logits(2 * V);
  m.decode(cache, {1}, {{4, 8, 15, 16}}, logits.data());
  cache.copy(1, 2);
  m.decode(cache, {1, 2}, {{23}, {23}}, logits.data());
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(logits[v], logits[V + v]);
  EXPECT_LT(max_error(m, logits, {{}, {4, 8, 15, 16, 23}, {4, 8, 15, 16, 23}}, {1, 2}), 1e-4f);
}

// Decode steps with head_dim 64 and 128, whose single query rows take the vectorised path of
// attention_cached (sixteen keys at a time, then the rest), with the keys spanning both.
TEST(Decode, WideHeadsMatchFullForward) {
  for (const std::string family : {"gpt2", "llama"})
    for (const int64_t D : {64, 128}) {
      nlohmann::json j;
      if (family == "gpt2")
        j = {{"model_type", "gpt2"}, {"vocab_size", 50}, {"n_embd", 2 * D}, {"n_layer", 1},
             {"n_head", 2},          {"n_positions", 64}, {"n_inner", 32}};
      else
        j = {{"model_type", "llama"},   {"vocab_size", 50},      {"hidden_size", 2 * D},
             {"num_hidden_layers", 1},  {"num_attention_heads", 2}, {"num_key_value_heads", 1},
             {"intermediate_size", 32}, {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-5},
             {"rope_theta", 10000.0},   {"hidden_act", "silu"},  {"tie_word_embeddings", false}};
      Transformer m(ModelConfig::from_json(j, "wide heads"), ModelHeads{});
      m.init_random(8, 0.1f);  // at width 256 a 0.3 init puts fp32 rounding near the tolerance
      const int64_t V = m.config().vocab_size;
      std::vector<std::vector<int32_t>> seqs(2);
      for (int i = 0; i < 29; ++i) seqs[0].push_back(static_cast<int32_t>((i * 7 + 3) % V));
      seqs[1] = {9, 8, 7};
      KVCache cache(m.config(), 2, 64);
      std::vector<float> logits(2 * V);
      m.decode(cache, {0, 1}, seqs, logits.data());
      for (int step = 0; step < 6; ++step) {  // 30..35 keys for the long row, 4..9 for the short
        for (auto& q : seqs) q.push_back(static_cast<int32_t>(step + 1));
        m.decode(cache, {0, 1}, {{step + 1}, {step + 1}}, logits.data());
        EXPECT_LT(max_error(m, logits, seqs, {0, 1}), 1e-4f) << family << " head_dim " << D << " step " << step;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, DecodeTest, ::testing::ValuesIn(test::kTinyModels));

TEST(Decode, RejectsOverflowAndBadSlots) {
  Transformer m(test::tiny_config("llama"), ModelHeads{});
  KVCache cache(m.config(), 2, 8);
  std::vector<float> logits(2 * m.config().vocab_size);
  EXPECT_THROW(m.decode(cache, {0}, {std::vector<int32_t>(9, 1)}, logits.data()), LogicError);
  EXPECT_THROW(m.decode(cache, {0, 0}, {{1}, {2}}, logits.data()), LogicError);
  EXPECT_THROW(m.decode(cache, {2}, {{1}}, logits.data()), LogicError);
  EXPECT_THROW(m.decode(cache, {1}, {{50}}, logits.data()), LogicError);
  EXPECT_THROW(m.decode(cache, {1}, {{}}, logits.data()), LogicError);
}

}  // namespace
}  // namespace rlhf
