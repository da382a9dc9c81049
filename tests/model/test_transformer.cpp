// Whole-model checks: finite-difference gradients of every family, and of the block shapes no
// family uses yet (tiny_models.h), through the log-prob and scalar-head interface, and invariants (packing equals separate rows, accumulation equals a
// bigger batch, sliding window and temperature take effect).
#include <gtest/gtest.h>

#include <cmath>

#include "model/transformer.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "tiny_models.h"

namespace rlhf {
namespace {

// Two rows of 12: row 0 packs two sequences (7 + 5 tokens), row 1 holds one.
Batch packed_batch(uint64_t seed, int64_t vocab) {
  Rng rng(seed);
  Batch b;
  b.B = 2;
  b.T = 12;
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t t = 0; t < 12; ++t) {
      const int32_t start = (r == 0 && t >= 7) ? 7 : 0;
      b.tokens.push_back(static_cast<int32_t>(rng.below(vocab)));
      b.positions.push_back(static_cast<int32_t>(t - start));
      b.seg_start.push_back(start);
      if (t > start) b.scored.push_back(r * 12 + t);
    }
  b.head_at = {6, 11, 12 + 11, 12 + 5};
  return b;
}

// The same rows with only the last three tokens of each sequence scored and one head position
// per row: the heads read 11 of the 24 rows, so the last layer runs the rest only to its attention.
Batch partly_read_batch(uint64_t seed, int64_t vocab) {
  Batch b = packed_batch(seed, vocab);
  b.scored = {4, 5, 6, 9, 10, 11, 12 + 9, 12 + 10, 12 + 11};
  b.head_at = {6, 12 + 4};
  return b;
}

double weighted_loss(const Scores& s, const std::vector<float>& c, const std::vector<float>& d) {
  double l = 0;
  for (size_t i = 0; i < s.logp.size(); ++i) l += c[i] * s.logp[i];
  for (size_t i = 0; i < s.head.size(); ++i) l += d[i] * s.head[i];
  return l;
}

class FamilyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyTest, GradientsMatchFiniteDifferences) {
  const ModelConfig cfg = test::tiny_config(GetParam());
  Transformer m(cfg, ModelHeads{.lm_head = true, .score_head = true});
  m.init_random(11, 0.3f);
  // Norm weights and biases away from their init so their gradients are exercised generally.
  Rng rng(5);
  for (const auto& s : m.slots())
    if (s.shape.size() == 1)
      for (int64_t i = 0; i < s.numel; ++i) m.params()[s.offset + i] += static_cast<float>(rng.normal()) * 0.2f;

  for (const Batch& b : {packed_batch(3, cfg.vocab_size), partly_read_batch(3, cfg.vocab_size)}) {
  Workspace ws(cfg, b.B, b.T, b.n_scored(), b.n_head());
  std::vector<float> c(b.n_scored()), d(b.n_head());
  for (auto& x : c) x = static_cast<float>(rng.uniform() * 2 - 1);
  for (auto& x : d) x = static_cast<float>(rng.uniform() * 2 - 1);
  ForwardOptions opt;
  opt.temperature = 0.8f;

  m.zero_grad();
  m.forward(b, ws, opt);
  m.backward(b, ws, c, d);
  const std::vector<float> analytic = m.grads();

  const double h = 1e-2;
  for (const auto& s : m.slots()) {
    // Up to 24 entries of every parameter tensor, spread over it.
    double num2 = 0, err2 = 0;
    const int64_t stride = std::max<int64_t>(1, s.numel / 24);
    for (int64_t i = 0; i < s.numel; i += stride) {
      float& p = m.params()[s.offset + i];
      const float orig = p;
      p = orig + static_cast<float>(h);
      const double lp = weighted_loss(m.forward(b, ws, opt), c, d);
      p = orig - static_cast<float>(h);
      const double lm = weighted_loss(m.forward(b, ws, opt), c, d);
      p = orig;
      const double numeric = (lp - lm) / (2 * h);
      const double a = analytic[s.offset + i];
      num2 += numeric * numeric;
      err2 += (a - numeric) * (a - numeric);
      EXPECT_NEAR(a, numeric, 2e-2 + 2e-2 * std::fabs(numeric)) << s.name << "[" << i << "]";
    }
    EXPECT_LE(std::sqrt(err2), 1e-2 * std::sqrt(num2) + 1e-3) << s.name;
  }
  }
}

// Rows no head reads stop at the last layer's attention; forcing every row through (a head on
// each, with zero gradient) gives the same outputs and gradients.
TEST_P(FamilyTest, RowsNoHeadReadsStopAtTheLastAttention) {
  const ModelConfig cfg = test::tiny_config(GetParam());
  Transformer m(cfg, ModelHeads{.lm_head = true, .score_head = true});
  m.init_random(21, 0.3f);
  const Batch partial = partly_read_batch(22, cfg.vocab_size);
  Batch all = partial;
  for (int64_t p = 0; p < all.B * all.T; ++p) all.head_at.push_back(p);
  Rng rng(23);
  std::vector<float> c(partial.n_scored()), d(partial.n_head());
  for (auto& x : c) x = static_cast<float>(rng.uniform() * 2 - 1);
  for (auto& x : d) x = static_cast<float>(rng.uniform() * 2 - 1);
  std::vector<float> d_all = d;
  d_all.resize(all.n_head(), 0.0f);
  auto run = [&](const Batch& b, const std::vector<float>& dh) {
    Workspace ws(cfg, b.B, b.T, b.n_scored(), b.n_head());
    m.zero_grad();
    const Scores sc = m.forward(b, ws);
    m.backward(b, ws, c, dh);
    return std::make_pair(sc, m.grads());
  };
  const auto [s_partial, g_partial] = run(partial, d);
  const auto [s_all, g_all] = run(all, d_all);
  for (size_t i = 0; i < s_partial.logp.size(); ++i) EXPECT_NEAR(s_partial.logp[i], s_all.logp[i], 1e-6) << i;
  for (size_t i = 0; i < s_partial.head.size(); ++i) EXPECT_NEAR(s_partial.head[i], s_all.head[i], 1e-6) << i;
  double ref = 0;
  for (float g : g_all) ref = std::max(ref, static_cast<double>(std::fabs(g)));
  ASSERT_GT(ref, 0.0);
  for (size_t i = 0; i < g_all.size(); ++i) EXPECT_NEAR(g_partial[i], g_all[i], 1e-5 * ref) << i;
}

TEST_P(FamilyTest, PackedRowEqualsSeparateRows) {
  const ModelConfig cfg = test::tiny_config(GetParam());
  Transformer m(cfg, ModelHeads{});
  m.init_random(2, 0.3f);
  Batch packed = packed_batch(9, cfg.vocab_size);
  packed.head_at.clear();
  // The same two sequences of row 0, each in a row of its own (padded at the end).
  std::vector<int32_t> a(packed.tokens.begin(), packed.tokens.begin() + 7);
  std::vector<int32_t> bb(packed.tokens.begin() + 7, packed.tokens.begin() + 12);
  bb.resize(7, 0);
  Batch sep = Batch::from_rows({a, bb}, 1);
  sep.scored.clear();
  for (int64_t t = 1; t < 7; ++t) sep.scored.push_back(t);
  for (int64_t t = 1; t < 5; ++t) sep.scored.push_back(7 + t);
  Workspace ws1(cfg, 2, 12, 64, 0), ws2(cfg, 2, 7, 64, 0);
  const Scores s1 = m.forward(packed, ws1);
  const Scores s2 = m.forward(sep, ws2);
  for (size_t i = 0; i < s2.logp.size(); ++i) EXPECT_NEAR(s1.logp[i], s2.logp[i], 1e-5) << i;
}

TEST_P(FamilyTest, AccumulationEqualsBiggerBatch) {
  const ModelConfig cfg = test::tiny_config(GetParam());
  Transformer m(cfg, ModelHeads{});
  m.init_random(4, 0.2f);
  Rng rng(8);
  std::vector<std::vector<int32_t>> rows(4, std::vector<int32_t>(10));
  for (auto& r : rows)
    for (auto& t : r) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  const Batch all = Batch::from_rows(rows);
  Workspace ws(cfg, 4, 10, 64, 0);
  m.zero_grad();
  const Scores s = m.forward(all, ws);
  m.backward(all, ws, std::vector<float>(s.logp.size(), -1.0f / s.logp.size()), {});
  const std::vector<float> g_all = m.grads();
  m.zero_grad();
  for (int half = 0; half < 2; ++half) {
    const Batch part = Batch::from_rows({rows[2 * half], rows[2 * half + 1]});
    const Scores sp = m.forward(part, ws);
    m.backward(part, ws, std::vector<float>(sp.logp.size(), -1.0f / s.logp.size()), {});
  }
  double diff = 0, ref = 0;
  for (size_t i = 0; i < g_all.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(g_all[i] - m.grads()[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(g_all[i])));
  }
  EXPECT_LT(diff, 1e-5 * ref + 1e-7);
}

// A workspace with one vocabulary chunk keeps the forward's logits for the backward; one with
// several recomputes them. Same gradients either way, and a second backward after one forward
// (the kept logits are gone by then) recomputes them and adds the same gradient again.
TEST_P(FamilyTest, KeptLogitsGiveTheRecomputedGradients) {
  const ModelConfig cfg = test::tiny_config(GetParam());
  Transformer m(cfg, ModelHeads{.lm_head = true});
  m.init_random(6, 0.3f);
  Batch b = packed_batch(12, cfg.vocab_size);
  b.head_at.clear();
  std::vector<float> c(b.n_scored());
  Rng rng(13);
  for (auto& x : c) x = static_cast<float>(rng.uniform() * 2 - 1);
  auto grads_with = [&](int64_t chunk) {
    Workspace ws(cfg, b.B, b.T, b.n_scored(), 0, chunk);
    m.zero_grad();
    m.forward(b, ws);
    m.backward(b, ws, c, {});
    std::vector<float> once = m.grads();
    m.backward(b, ws, c, {});
    return std::make_pair(once, m.grads());
  };
  const auto [kept, kept_twice] = grads_with(cfg.vocab_size);
  const auto [chunked, chunked_twice] = grads_with(7);
  double ref = 0;
  for (float g : kept) ref = std::max(ref, static_cast<double>(std::fabs(g)));
  ASSERT_GT(ref, 0.0);
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_NEAR(kept[i], chunked[i], 1e-5 * ref) << i;
    EXPECT_NEAR(kept_twice[i], 2 * kept[i], 1e-5 * ref) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, FamilyTest, ::testing::ValuesIn(test::kTinyModels));

TEST(Transformer, SlidingWindowLimitsAttention) {
  ModelConfig with = test::tiny_config("mistral");
  ModelConfig without = with;
  without.sliding_window = 0;
  Transformer a(with, ModelHeads{}), b(without, ModelHeads{});
  a.init_random(1, 0.3f);
  b.params() = a.params();
  const Batch batch = Batch::from_rows({{1, 2, 3, 4, 5, 6, 7, 8}});
  Workspace ws(with, 1, 8, 8, 0);
  const Scores sa = a.forward(batch, ws), sb = b.forward(batch, ws);
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(sa.logp[i], sb.logp[i], 1e-6);  // within the window
  double max_diff = 0;
  for (size_t i = 2; i < sa.logp.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(sa.logp[i] - sb.logp[i])));
  EXPECT_GT(max_diff, 1e-4);
}

// An entropy bonus through the whole model: L = sum_i c_i H_i (temperature 0.8) against central
// differences on parameters of the LM head, a block and the embedding.
TEST(Transformer, EntropyGradientMatchesFiniteDifferences) {
  Transformer m(test::tiny_config("llama"), ModelHeads{});
  m.init_random(5, 0.3f);
  const Batch b = Batch::from_rows({{1, 7, 3, 9, 4, 2}, {5, 5, 8, 1, 6, 3}}, 2);
  Workspace ws(m.config(), b.B, b.T, b.n_scored(), 0);
  ForwardOptions fo;
  fo.temperature = 0.8f;
  fo.want_entropy = true;
  std::vector<float> c(b.n_scored());
  for (size_t i = 0; i < c.size(); ++i) c[i] = 0.5f - 0.3f * static_cast<float>(i % 3);
  auto loss = [&] {
    const Scores s = m.forward(b, ws, fo);
    double l = 0;
    for (size_t i = 0; i < c.size(); ++i) l += c[i] * s.entropy[i];
    return l;
  };
  loss();
  m.zero_grad();
  m.backward(b, ws, {}, {}, c);
  const std::vector<float> g = m.grads();
  int checked = 0;
  for (const char* name : {"lm_head.weight", "layers.1.mlp.up.weight", "embed.tokens"}) {
    const ParamSlot& s = m.slot(name);
    for (int64_t k = 0; k < s.numel; k += s.numel / 5 + 1) {
      float& p = m.params()[s.offset + k];
      const float keep = p, eps = 1e-2f;
      p = keep + eps;
      const double up = loss();
      p = keep - eps;
      const double down = loss();
      p = keep;
      const double fd = (up - down) / (2 * eps);
      EXPECT_NEAR(g[s.offset + k], fd, 2e-3 + 2e-2 * std::fabs(fd)) << name << "[" << k << "]";
      ++checked;
    }
  }
  EXPECT_GE(checked, 15);
  fo.want_entropy = false;
  m.forward(b, ws, fo);
  EXPECT_THROW(m.backward(b, ws, {}, {}, c), LogicError);  // no entropies kept by that forward
}

TEST(Transformer, RejectsTokensOutsideVocabulary) {
  const ModelConfig cfg = test::tiny_config("gpt2");
  Transformer m(cfg, ModelHeads{});
  Workspace ws(cfg, 1, 4, 4, 0);
  EXPECT_THROW(m.forward(Batch::from_rows({{1, 2, 50, 3}}), ws), LogicError);
}

}  // namespace
}  // namespace rlhf
