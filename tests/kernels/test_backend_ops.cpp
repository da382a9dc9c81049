// Every op of every registered backend against the reference backend (llama.cpp's
// test-backend-ops): the same random inputs through both, each output compared with
// close_scaled (|got - want| <= rtol (|want| + max|want|)) at the case's stated tolerance:
//   forwards 1e-5 (fp32 products of up to a few hundred terms against double sums),
//   backwards 1e-4 (longer sums and cancellations), elementwise and AdamW 1e-6.
// Shapes cover odd sizes, GQA and MQA, sliding windows, packed segments, strided rows, short
// last vocabulary chunks and the decode (few-row, prepacked) products. Backwards start from
// prefilled gradient buffers (they accumulate) or NaN ones (Grad::overwrite must not read them).
// The reference's own backwards are checked by finite differences of its forwards below.
#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "kernel_test_util.h"
#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf::kernels::test {
namespace {

using Vec = std::vector<float>;
using Outputs = std::vector<std::pair<std::string, Vec>>;

struct OpCase {
  std::string name;
  double rtol;
  std::function<Outputs(const Backend&)> run;
};

Vec nans(size_t n) { return Vec(n, std::nanf("")); }

std::vector<int32_t> ids(int64_t n, int32_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Row b of B rows of T tokens packs sequences starting at a few row-dependent cuts.
std::vector<int32_t> packed_segments(int64_t B, int64_t T) {
  std::vector<int32_t> seg(B * T, 0);
  for (int64_t b = 0; b < B; ++b) {
    int32_t start = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (t > 0 && (t == (7 + 11 * b) % T || t == (T / 2 + 3 * b) % T || t == (T / 2 + 3 * b + 1) % T))
        start = static_cast<int32_t>(t);
      seg[b * T + t] = start;
    }
  }
  return seg;
}

void add_matmul(std::vector<OpCase>& cases, int64_t N, int64_t C, int64_t OC, bool bias) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(C) + "x" + std::to_string(OC);
  const Vec inp = randn(N * C, 1), w = randn(OC * C, 2, 0.3f), b = randn(OC, 3), dout = randn(N * OC, 4);
  cases.push_back({"matmul_fwd_" + shape, 1e-5, [=](const Backend& be) {
                     const float* bp = bias ? b.data() : nullptr;
                     Vec out = nans(N * OC);
                     be.matmul_forward(out.data(), inp.data(), w.data(), bp, N, C, OC);
                     std::unique_ptr<PackedWeights> packed = be.pack_weight(w.data(), C, OC);
                     Vec out_packed = nans(N * OC);
                     be.matmul_forward(out_packed.data(), inp.data(), w.data(), bp, N, C, OC, packed.get());
                     return Outputs{{"out", out}, {"out_packed", out_packed}};
                   }});
  cases.push_back({"matmul_bwd_" + shape, 1e-4, [=](const Backend& be) {
                     Vec dinp = prefilled(N * C, 5), dw = prefilled(OC * C, 6), db = prefilled(OC, 7);
                     be.matmul_backward(dinp.data(), dw.data(), bias ? db.data() : nullptr, dout.data(), inp.data(),
                                        w.data(), N, C, OC);
                     Vec fresh = nans(N * C);
                     Vec dw2 = prefilled(OC * C, 6);
                     be.matmul_backward(fresh.data(), dw2.data(), nullptr, dout.data(), inp.data(), w.data(), N, C,
                                        OC, Grad::overwrite);
                     return Outputs{{"dinp", dinp}, {"dweight", dw}, {"dbias", db}, {"dinp_overwrite", fresh}};
                   }});
}

void add_embedding(std::vector<OpCase>& cases, int64_t N, int64_t C, int32_t V, bool positions) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(C) + (positions ? "_wpe" : "");
  const Vec wte = randn(V * C, 1), wpe = randn(64 * C, 2), dout = randn(N * C, 3);
  const std::vector<int32_t> tok = ids(N, V, 4), pos = ids(N, 64, 5);  // repeated ids accumulate
  cases.push_back({"embedding_" + shape, 1e-6, [=](const Backend& be) {
                     Vec out = nans(N * C), dwte = prefilled(V * C, 6), dwpe = prefilled(64 * C, 7);
                     be.embedding_forward(out.data(), tok.data(), pos.data(), wte.data(),
                                          positions ? wpe.data() : nullptr, N, C);
                     be.embedding_backward(dwte.data(), positions ? dwpe.data() : nullptr, dout.data(), tok.data(),
                                           pos.data(), N, C);
                     return Outputs{{"out", out}, {"dwte", dwte}, {"dwpe", dwpe}};
                   }});
}

void add_norms(std::vector<OpCase>& cases, int64_t N, int64_t C) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(C);
  const Vec x = randn(N * C, 1, 2.0f), w = randn(C, 2), b = randn(C, 3), dout = randn(N * C, 4);
  cases.push_back({"layernorm_fwd_" + shape, 1e-5, [=](const Backend& be) {
                     Vec out = nans(N * C), mean = nans(N), rstd = nans(N);
                     be.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C,
                                          1e-5f);
                     return Outputs{{"out", out}, {"mean", mean}, {"rstd", rstd}};
                   }});
  cases.push_back({"layernorm_bwd_" + shape, 1e-4, [=](const Backend& be) {
                     Vec out(N * C), mean(N), rstd(N);
                     be.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C,
                                          1e-5f);
                     Vec dx = prefilled(N * C, 5), dw = prefilled(C, 6), db = prefilled(C, 7);
                     be.layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(),
                                           mean.data(), rstd.data(), N, C);
                     return Outputs{{"dinp", dx}, {"dweight", dw}, {"dbias", db}};
                   }});
  cases.push_back({"rmsnorm_fwd_" + shape, 1e-5, [=](const Backend& be) {
                     Vec out = nans(N * C), rstd = nans(N);
                     be.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
                     return Outputs{{"out", out}, {"rstd", rstd}};
                   }});
  cases.push_back({"rmsnorm_bwd_" + shape, 1e-4, [=](const Backend& be) {
                     Vec out(N * C), rstd(N);
                     be.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
                     Vec dx = prefilled(N * C, 5), dw = prefilled(C, 6);
                     be.rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
                     return Outputs{{"dinp", dx}, {"dweight", dw}};
                   }});
}

void add_activations(std::vector<OpCase>& cases, int64_t N, int64_t I) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(I);
  const Vec x = randn(N * 2 * I, 1, 3.0f), dout = randn(N * 2 * I, 2);
  cases.push_back({"gelu_" + shape, 1e-5, [=](const Backend& be) {
                     const int64_t n = N * I;
                     Vec out = nans(n), dx = prefilled(n, 3), fresh = nans(n);
                     be.gelu_forward(out.data(), x.data(), n);
                     be.gelu_backward(dx.data(), dout.data(), x.data(), n);
                     be.gelu_backward(fresh.data(), dout.data(), x.data(), n, Grad::overwrite);
                     return Outputs{{"out", out}, {"dinp", dx}, {"dinp_overwrite", fresh}};
                   }});
  cases.push_back({"swiglu_" + shape, 1e-5, [=](const Backend& be) {
                     Vec out = nans(N * I), d = prefilled(N * 2 * I, 3), fresh = nans(N * 2 * I);
                     be.swiglu_forward(out.data(), x.data(), N, I);
                     be.swiglu_backward(d.data(), dout.data(), x.data(), N, I);
                     be.swiglu_backward(fresh.data(), dout.data(), x.data(), N, I, Grad::overwrite);
                     return Outputs{{"out", out}, {"dgate_up", d}, {"dgate_up_overwrite", fresh}};
                   }});
  cases.push_back({"geglu_" + shape, 1e-5, [=](const Backend& be) {
                     Vec out = nans(N * I), d = prefilled(N * 2 * I, 3), fresh = nans(N * 2 * I);
                     be.geglu_forward(out.data(), x.data(), N, I);
                     be.geglu_backward(d.data(), dout.data(), x.data(), N, I);
                     be.geglu_backward(fresh.data(), dout.data(), x.data(), N, I, Grad::overwrite);
                     return Outputs{{"out", out}, {"dgate_up", d}, {"dgate_up_overwrite", fresh}};
                   }});
}

// rotary_dim < D: Phi's partial rotary (the rest passes); mscale: LongRoPE's attention factor.
void add_rope(std::vector<OpCase>& cases, int64_t N, int H, int D, int64_t extra_cols, int rotary_dim = 0,
              float mscale = 1.0f) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(H) + "x" + std::to_string(D) +
                            (rotary_dim ? "_rot" + std::to_string(rotary_dim) : "") + (mscale != 1.0f ? "_mscale" : "");
  const int64_t stride = H * D + extra_cols;  // the rotated heads, then columns left alone
  const Vec x = randn(N * stride, 1);
  std::vector<int32_t> pos(N);
  for (int64_t n = 0; n < N; ++n) pos[n] = static_cast<int32_t>((n * 37) % 5000);  // large angles too
  const int R = rotary_dim ? rotary_dim : D;
  Vec inv_freq(R / 2);
  for (int i = 0; i < R / 2; ++i) inv_freq[i] = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * i / R));
  cases.push_back({"rope_" + shape, 1e-5, [=](const Backend& be) {
                     Vec fwd = x, bwd = x;
                     be.rope_forward(fwd.data(), pos.data(), inv_freq.data(), N, stride, H, D, rotary_dim, mscale);
                     be.rope_backward(bwd.data(), pos.data(), inv_freq.data(), N, stride, H, D, rotary_dim, mscale);
                     return Outputs{{"rotated", fwd}, {"unrotated", bwd}};
                   }});
}

void add_attention(std::vector<OpCase>& cases, const std::string& name, AttentionShape s, bool packed) {
  const int64_t ld = (s.n_heads + 2 * s.n_kv_heads) * s.head_dim, A = s.n_heads * s.head_dim;
  const Vec qkv = randn(s.B * s.T * ld, 1, 1.5f), dout = randn(s.B * s.T * A, 2);
  const std::vector<int32_t> seg = packed ? packed_segments(s.B, s.T) : std::vector<int32_t>(s.B * s.T, 0);
  cases.push_back({"attention_fwd_" + name, 1e-5, [=](const Backend& be) {
                     Vec out = nans(s.B * s.T * A), lse = nans(s.B * s.n_heads * s.T);
                     Vec scratch(be.attention_scratch_floats(s));
                     be.attention_forward(out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data());
                     return Outputs{{"out", out}, {"lse", lse}};
                   }});
  cases.push_back({"attention_bwd_" + name, 1e-4, [=](const Backend& be) {
                     Vec out(s.B * s.T * A), lse(s.B * s.n_heads * s.T), dqkv = nans(qkv.size());
                     Vec scratch(be.attention_scratch_floats(s));
                     be.attention_forward(out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data());
                     be.attention_backward(dqkv.data(), dout.data(), out.data(), lse.data(), qkv.data(), seg.data(), s,
                                           scratch.data());
                     return Outputs{{"dqkv", dqkv}};
                   }});
}

// Rows of a decode call: a prefill block of one slot, single tokens of others, a slot's last position.
void add_attention_cached(std::vector<OpCase>& cases, const std::string& name, AttentionShape s) {
  const int64_t D = s.head_dim, ld = (s.n_heads + 2 * s.n_kv_heads) * D;
  const std::vector<int32_t> seq = {0, 0, 0, 0, 0, 1, 2, 2};
  const std::vector<int32_t> pos = {0, 1, 2, 3, 4, static_cast<int32_t>(s.T - 1), 17, 18};
  const int64_t N = static_cast<int64_t>(seq.size());
  const Vec q = randn(N * ld, 1, 1.5f), k = randn(s.B * s.n_kv_heads * s.T * D, 2), v = randn(k.size(), 3);
  cases.push_back({"attention_cached_" + name, 1e-5, [=](const Backend& be) {
                     Vec out = nans(N * s.n_heads * D), scratch(be.attention_cached_scratch_floats(s));
                     be.attention_cached(out.data(), q.data(), ld, k.data(), v.data(), seq.data(), pos.data(), N, s,
                                         scratch.data());
                     return Outputs{{"out", out}};
                   }});
}

void add_logprob(std::vector<OpCase>& cases, int64_t N, int64_t C, int64_t V, int64_t chunk, float inv_temp,
                 float softcap = 0.0f) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(C) + "x" + std::to_string(V) + "_chunk" +
                            std::to_string(chunk) + (softcap > 0.0f ? "_softcap" : "");
  const Vec h = randn(N * C, 1), W = randn(V * C, 2, 0.5f), dlogp = randn(N, 3), dent = randn(N, 4);
  std::vector<int32_t> tgt = ids(N, static_cast<int32_t>(V), 5);
  tgt[0] = static_cast<int32_t>(V - 1);  // the last vocabulary entry, in a short last chunk
  cases.push_back({"logprob_fwd_" + shape, 1e-5, [=](const Backend& be) {
                     Vec logp = nans(N), lse = nans(N), ent = nans(N), scratch(N * chunk);
                     be.logprob_forward(logp.data(), lse.data(), ent.data(), h.data(), W.data(), tgt.data(), N, C, V,
                                        inv_temp, scratch.data(), chunk, softcap);
                     return Outputs{{"logp", logp}, {"lse", lse}, {"entropy", ent}};
                   }});
  cases.push_back({"logprob_bwd_" + shape, 1e-4, [=](const Backend& be) {
                     Vec logp(N), lse(N), ent(N), scratch(N * chunk);
                     be.logprob_forward(logp.data(), lse.data(), ent.data(), h.data(), W.data(), tgt.data(), N, C, V,
                                        inv_temp, scratch.data(), chunk, softcap);
                     Vec dh = prefilled(N * C, 6), dW = prefilled(V * C, 7);
                     be.logprob_backward(dh.data(), dW.data(), dlogp.data(), h.data(), W.data(), tgt.data(),
                                         lse.data(), N, C, V, inv_temp, scratch.data(), chunk, dent.data(), ent.data(),
                                         chunk >= V, softcap);
                     return Outputs{{"dh", dh}, {"dW", dW}};
                   }});
}

void add_elementwise(std::vector<OpCase>& cases, int64_t n, int64_t width) {
  const std::string shape = std::to_string(n) + "x" + std::to_string(width);
  const Vec a = randn(n * width, 1), b = randn(n * width, 2), src = randn(n * width, 3);
  std::vector<int64_t> rows(n);
  for (int64_t i = 0; i < n; ++i) rows[i] = (i * 7 + 3) % n;  // a permutation (n not a multiple of 7)
  cases.push_back({"elementwise_" + shape, 1e-6, [=](const Backend& be) {
                     const int64_t len = n * width;
                     Vec sum = a, scaled = a, zeroed = a, e = nans(len);
                     be.add_inplace(sum.data(), b.data(), len);
                     be.scale_inplace(scaled.data(), 0.37f, len);
                     be.fill_zero(zeroed.data(), len);
                     const double ss = be.sum_squares(a.data(), len);
                     const double es = be.exp_shifted(e.data(), a.data(), 1.5f, len);
                     Vec gathered = nans(len), gathered_add = b, scattered = b;
                     be.gather_rows(gathered.data(), src.data(), rows.data(), n, width, false);
                     be.gather_rows(gathered_add.data(), src.data(), rows.data(), n, width, true);
                     be.scatter_add_rows(scattered.data(), src.data(), rows.data(), n, width);
                     return Outputs{{"add_inplace", sum},
                                    {"scale_inplace", scaled},
                                    {"fill_zero", zeroed},
                                    {"sum_squares", {static_cast<float>(ss)}},
                                    {"exp_shifted", e},
                                    {"exp_shifted_sum", {static_cast<float>(es)}},
                                    {"gather_rows", gathered},
                                    {"gather_rows_add", gathered_add},
                                    {"scatter_add_rows", scattered}};
                   }});
}

void add_adamw(std::vector<OpCase>& cases, int64_t n, float weight_decay) {
  const Vec p0 = randn(n, 1), g = randn(n, 2, 0.1f);
  cases.push_back({"adamw_" + std::to_string(n) + (weight_decay > 0 ? "_decay" : ""), 1e-6, [=](const Backend& be) {
                     Vec p = p0, m(n, 0.0f), v(n, 0.0f);
                     for (int64_t t = 1; t <= 3; ++t)
                       be.adamw_step(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.999f, 1e-8f,
                                     weight_decay, t);
                     return Outputs{{"param", p}, {"m", m}, {"v", v}};
                   }});
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> c;
  add_matmul(c, 7, 13, 5, true);
  add_matmul(c, 64, 96, 80, false);
  add_matmul(c, 130, 70, 300, true);  // threaded, OC not a multiple of the tile
  add_matmul(c, 21, 64, 37, true);    // prepacked from kPackedMinRows rows on
  add_matmul(c, 3, 256, 1003, true);  // a decode step: few rows stream the weights
  add_matmul(c, 3, 16, 1, false);     // the score head
  add_embedding(c, 50, 24, 11, true);
  add_embedding(c, 7, 33, 100, false);
  add_norms(c, 9, 37);
  add_norms(c, 33, 256);
  add_activations(c, 5, 37);
  add_activations(c, 40, 512);  // past the threading threshold
  add_rope(c, 30, 4, 64, 100);
  add_rope(c, 7, 3, 16, 0);
  add_rope(c, 30, 4, 16, 8, 12, 1.19f);  // a quarter of each head passes unrotated, scaled cos/sin
  add_attention(c, "mha_odd_t", {2, 70, 3, 3, 16, 0}, false);
  add_attention(c, "gqa", {2, 130, 4, 2, 8, 0}, false);
  add_attention(c, "mqa", {1, 64, 4, 1, 8, 0}, false);
  add_attention(c, "packed_gqa", {2, 150, 6, 2, 8, 0}, true);
  add_attention(c, "window", {2, 150, 2, 1, 8, 17}, false);
  add_attention(c, "window_packed", {2, 190, 4, 2, 8, 40}, true);
  add_attention(c, "long_d64", {1, 300, 2, 1, 64, 0}, true);
  add_attention_cached(c, "gqa", {3, 40, 4, 2, 16, 0});
  add_attention_cached(c, "window", {3, 40, 2, 1, 8, 3});
  add_attention(c, "scale_softcap", {2, 90, 4, 2, 8, 0, 0.2887f, 2.0f}, true);
  add_attention_cached(c, "scale_softcap", {3, 40, 4, 2, 16, 5, 0.2f, 1.5f});
  add_logprob(c, 6, 32, 1000, 256, 1.0f);  // chunks with a short last one
  add_logprob(c, 5, 24, 300, 512, 0.7f);   // one chunk: the backward may reuse the logits
  add_logprob(c, 6, 32, 1000, 256, 1.0f, 2.0f);  // Gemma 2's final soft-cap, chunked
  add_logprob(c, 5, 24, 300, 512, 0.7f, 1.5f);   // and reusing the logits
  add_elementwise(c, 9, 5);
  add_elementwise(c, 600, 130);  // past the threading threshold
  add_adamw(c, 1000, 0.0f);
  add_adamw(c, 40000, 0.1f);  // several blocks
  return c;
}

struct BackendOp {
  const Backend* backend;
  OpCase op;
};

void PrintTo(const BackendOp& p, std::ostream* os) { *os << p.backend->name() << "_" << p.op.name; }

std::vector<BackendOp> every_backend_op() {
  std::vector<BackendOp> out;
  for (const Backend* be : registered_backends())
    for (OpCase& op : op_cases()) out.push_back({be, std::move(op)});
  return out;
}

class BackendOps : public ::testing::TestWithParam<BackendOp> {};

TEST_P(BackendOps, MatchesReference) {
  const BackendOp& p = GetParam();
  const Outputs got = p.op.run(*p.backend), want = p.op.run(reference_backend());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(close_scaled(got[i].second, want[i].second, p.op.rtol)) << got[i].first;
}

INSTANTIATE_TEST_SUITE_P(All, BackendOps, ::testing::ValuesIn(every_backend_op()), [](const auto& info) {
  return std::string(info.param.backend->name()) + "_" + info.param.op.name;
});

TEST(BackendRegistry, FindsBackendsByName) {
  EXPECT_EQ(&backend_named("cpu"), &cpu_backend());
  EXPECT_EQ(&backend_named("reference"), &reference_backend());
  EXPECT_THROW(backend_named("tpu"), InputError);
  EXPECT_EQ(registered_backends().front(), &cpu_backend());
}

// The oracle's own backwards against central differences of its forwards (loss = sum(R * out)).
TEST(ReferenceBackend, BackwardsMatchFiniteDifferences) {
  const Backend& be = reference_backend();
  const int64_t N = 5, C = 7, OC = 4, V = 9;
  Vec x = randn(N * C, 1), w = randn(OC * C, 2, 0.5f), b = randn(OC, 3), R = randn(N * OC, 4);
  Vec out(N * OC);
  auto matmul_loss = [&] {
    be.matmul_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC);
    return dot(out, R);
  };
  Vec dx(N * C, 0.0f), dw(OC * C, 0.0f), db(OC, 0.0f);
  be.matmul_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), N, C, OC);
  EXPECT_TRUE(check_fd(x, dx, matmul_loss, 100, 1));
  EXPECT_TRUE(check_fd(w, dw, matmul_loss, 100, 2));

  Vec g = randn(C, 5), gb = randn(C, 15), Rn = randn(N * C, 6), normed(N * C), mean(N), rstd(N);
  auto layernorm_loss = [&] {
    be.layernorm_forward(normed.data(), mean.data(), rstd.data(), x.data(), g.data(), gb.data(), N, C, 1e-5f);
    return dot(normed, Rn);
  };
  layernorm_loss();
  Vec dxn(N * C, 0.0f), dg(C, 0.0f), dbn(C, 0.0f);
  be.layernorm_backward(dxn.data(), dg.data(), dbn.data(), Rn.data(), x.data(), g.data(), mean.data(), rstd.data(), N,
                        C);
  EXPECT_TRUE(check_fd(x, dxn, layernorm_loss, 100, 3));
  EXPECT_TRUE(check_fd(g, dg, layernorm_loss, 100, 16));
  auto rmsnorm_loss = [&] {
    be.rmsnorm_forward(normed.data(), rstd.data(), x.data(), g.data(), N, C, 1e-6f);
    return dot(normed, Rn);
  };
  rmsnorm_loss();
  Vec dxr(N * C, 0.0f), dgr(C, 0.0f);
  be.rmsnorm_backward(dxr.data(), dgr.data(), Rn.data(), x.data(), g.data(), rstd.data(), N, C);
  EXPECT_TRUE(check_fd(x, dxr, rmsnorm_loss, 100, 4));
  EXPECT_TRUE(check_fd(g, dgr, rmsnorm_loss, 100, 5));

  Vec act(N * C);
  auto gelu_loss = [&] {
    be.gelu_forward(act.data(), x.data(), N * C);
    return dot(act, Rn);
  };
  Vec dxg(N * C, 0.0f);
  be.gelu_backward(dxg.data(), Rn.data(), x.data(), N * C);
  EXPECT_TRUE(check_fd(x, dxg, gelu_loss, 100, 6));
  // geglu on [gate | up] halves of x's rows (C even).
  const int64_t Ig = C / 2;
  Vec glu(N * Ig);
  const Vec Rg(Rn.begin(), Rn.begin() + N * Ig);
  auto geglu_loss = [&] {
    be.geglu_forward(glu.data(), x.data(), N, Ig);
    return dot(glu, Rg);
  };
  Vec dxgl(N * C, 0.0f);
  be.geglu_backward(dxgl.data(), Rg.data(), x.data(), N, Ig);
  EXPECT_TRUE(check_fd(x, dxgl, geglu_loss, 100, 17));

  const AttentionShape s{1, 12, 4, 2, 4, 5};
  Vec qkv = randn(s.T * 8 * 4, 7), Ra = randn(s.T * 16, 8), att(s.T * 16), lse(4 * s.T);
  const std::vector<int32_t> seg = {0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 11};
  auto attention_loss = [&] {
    be.attention_forward(att.data(), lse.data(), qkv.data(), seg.data(), s, nullptr);
    return dot(att, Ra);
  };
  attention_loss();
  Vec dqkv(qkv.size());
  be.attention_backward(dqkv.data(), Ra.data(), att.data(), lse.data(), qkv.data(), seg.data(), s, nullptr);
  EXPECT_TRUE(check_fd(qkv, dqkv, attention_loss, 400, 9));

  Vec W = randn(V * C, 10), dl = randn(N, 11), de = randn(N, 12), logp(N), lse2(N), ent(N);
  const std::vector<int32_t> tgt = {0, 8, 3, 3, 5};
  auto logprob_loss = [&] {
    be.logprob_forward(logp.data(), lse2.data(), ent.data(), x.data(), W.data(), tgt.data(), N, C, V, 0.8f, nullptr,
                       V);
    return dot(logp, dl) + dot(ent, de);
  };
  logprob_loss();
  Vec dh(N * C, 0.0f), dW(V * C, 0.0f);
  be.logprob_backward(dh.data(), dW.data(), dl.data(), x.data(), W.data(), tgt.data(), lse2.data(), N, C, V, 0.8f,
                      nullptr, V, de.data(), ent.data());
  EXPECT_TRUE(check_fd(x, dh, logprob_loss, 100, 13));
  EXPECT_TRUE(check_fd(W, dW, logprob_loss, 100, 14));
}

}  // namespace
}  // namespace rlhf::kernels::test
