// Causal attention against a naive double-precision full-softmax reference: multi-head, grouped-
// query and multi-query layouts, packed rows (seg_start), sliding windows, T not a multiple of
// the kernel's query block, and finite differences of the fp32 forward.

#include <string>

#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"
#include "tensor/error.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

struct AttnRef {
  std::vector<double> out, lse, dqkv;
};

int64_t key_lo(const int32_t* seg, int64_t t, int window) {
  int64_t lo = seg[t];
  if (window > 0) lo = std::max<int64_t>(lo, t - window + 1);
  return lo;
}

// Full softmax per query row over keys [lo(t), t]; backward through the plain softmax Jacobian:
// dS_j = P_j (dP_j - sum_k P_k dP_k).
AttnRef attention_ref(const std::vector<float>& qkv, const std::vector<int32_t>& seg, const AttentionShape& s,
                      const std::vector<float>& dout) {
  const int64_t T = s.T, D = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, ld = (H + 2 * KV) * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  AttnRef r;
  r.out.assign(s.B * T * H * D, 0.0);
  r.lse.assign(s.B * H * T, 0.0);
  r.dqkv.assign(qkv.size(), 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / KV);
      for (int64_t t = 0; t < T; ++t) {
        const float* q = qkv.data() + (b * T + t) * ld + h * D;
        const int64_t lo = key_lo(seg.data() + b * T, t, s.sliding_window);
        std::vector<double> p(t - lo + 1), dp(t - lo + 1);
        double m = -1e300;
        for (int64_t j = lo; j <= t; ++j) {
          const float* k = qkv.data() + (b * T + j) * ld + (H + g) * D;
          double sc = 0;
          for (int64_t d = 0; d < D; ++d) sc += static_cast<double>(q[d]) * k[d];
          p[j - lo] = sc * scale;
          m = std::max(m, p[j - lo]);
        }
        double z = 0;
        for (auto& v : p) z += std::exp(v - m);
        r.lse[(b * H + h) * T + t] = m + std::log(z);
        for (auto& v : p) v = std::exp(v - m) / z;
        double* o = r.out.data() + (b * T + t) * H * D + h * D;
        const float* dO = dout.data() + (b * T + t) * H * D + h * D;
        double sum_pdp = 0;
        for (int64_t j = lo; j <= t; ++j) {
          const float* v = qkv.data() + (b * T + j) * ld + (H + KV + g) * D;
          double dpj = 0;
          for (int64_t d = 0; d < D; ++d) o[d] += p[j - lo] * v[d], dpj += static_cast<double>(dO[d]) * v[d];
          dp[j - lo] = dpj;
          sum_pdp += p[j - lo] * dpj;
        }
        double* dq = r.dqkv.data() + (b * T + t) * ld + h * D;
        for (int64_t j = lo; j <= t; ++j) {
          const double ds = p[j - lo] * (dp[j - lo] - sum_pdp);
          const float* k = qkv.data() + (b * T + j) * ld + (H + g) * D;
          double* dk = r.dqkv.data() + (b * T + j) * ld + (H + g) * D;
          double* dv = r.dqkv.data() + (b * T + j) * ld + (H + KV + g) * D;
          for (int64_t d = 0; d < D; ++d) {
            dq[d] += scale * ds * k[d];
            dk[d] += scale * ds * q[d];
            dv[d] += p[j - lo] * dO[d];
          }
        }
      }
    }
  return r;
}

struct AttnCase {
  std::string name;
  int64_t B, T;
  int H, KV, D, window;
  bool packed;  // several sequences per row
};

void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }

std::vector<int32_t> make_seg(const AttnCase& c) {
  std::vector<int32_t> seg(c.B * c.T, 0);
  if (!c.packed) return seg;
  for (int64_t b = 0; b < c.B; ++b) {
    // Row b: boundaries at different places per row, including a length-1 sequence.
    const int64_t cuts[] = {(7 + 11 * b) % c.T, (c.T / 2 + 3 * b) % c.T, (c.T / 2 + 3 * b + 1) % c.T};
    int32_t start = 0;
    for (int64_t t = 0; t < c.T; ++t) {
      for (int64_t cut : cuts)
        if (t == cut && t > 0) start = static_cast<int32_t>(t);
      seg[b * c.T + t] = start;
    }
  }
  return seg;
}

class AttentionTest : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionTest, MatchesNaiveReference) {
  const AttnCase& c = GetParam();
  const AttentionShape s{c.B, c.T, c.H, c.KV, c.D, c.window};
  const int64_t qkv_n = c.B * c.T * (c.H + 2 * c.KV) * c.D, out_n = c.B * c.T * c.H * c.D;
  const auto qkv = randn(qkv_n, 1, 1.5f), R = randn(out_n, 2);
  const auto seg = make_seg(c);
  const AttnRef ref = attention_ref(qkv, seg, s, R);

  std::vector<float> out(out_n, 9.0f), lse(c.B * c.H * c.T, 9.0f), scratch(attention_scratch_floats(s));
  attention_forward(out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data());
  EXPECT_TRUE(close_scaled(out, ref.out, 1e-5));
  EXPECT_TRUE(close_scaled(lse, ref.lse, 1e-5));

  std::vector<float> dqkv(qkv_n, std::nanf(""));  // overwritten, every element
  attention_backward(dqkv.data(), R.data(), out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data());
  EXPECT_TRUE(close_scaled(dqkv, ref.dqkv, 1e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, AttentionTest,
    ::testing::Values(AttnCase{"mha", 2, 70, 3, 3, 16, 0, false},  // T not a multiple of the query tile
                      AttnCase{"gqa", 2, 130, 4, 2, 8, 0, false}, AttnCase{"mqa", 1, 64, 4, 1, 8, 0, false},
                      AttnCase{"tiny_t", 3, 5, 2, 1, 4, 0, false}, AttnCase{"packed", 3, 150, 2, 2, 8, 0, true},
                      AttnCase{"packed_gqa", 2, 200, 6, 2, 8, 0, true}, AttnCase{"window", 2, 150, 2, 1, 8, 17, false},
                      AttnCase{"window_packed", 2, 190, 4, 2, 8, 40, true},
                      AttnCase{"window_ge_t", 1, 50, 2, 2, 8, 64, false},
                      AttnCase{"window_1", 1, 70, 2, 1, 8, 1, true},
                      // head_dim 64, keys past 256 (several K-blocks of the packed keys and values)
                      AttnCase{"long_packed_d64", 1, 300, 2, 1, 64, 0, true},
                      AttnCase{"long_window_d64", 2, 280, 4, 4, 64, 100, false}),
    [](const auto& info) { return info.param.name; });

TEST(Attention, RejectsSegmentStartAfterToken) {
  const AttentionShape s{1, 4, 1, 1, 2, 0};
  std::vector<float> qkv(4 * 3 * 2, 0.5f), out(4 * 2), lse(4), scratch(attention_scratch_floats(s));
  const std::vector<int32_t> seg = {0, 0, 3, 2};  // token 2 claims its sequence starts at 3
  EXPECT_THROW(attention_forward(out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data()), LogicError);
}

TEST(Attention, FiniteDifference) {
  const AttentionShape s{1, 70, 4, 2, 8, 30};
  const AttnCase c{"fd", 1, 70, 4, 2, 8, 30, true};
  auto qkv = randn(s.B * s.T * (s.n_heads + 2 * s.n_kv_heads) * s.head_dim, 4);
  const auto R = randn(s.B * s.T * s.n_heads * s.head_dim, 5);
  const auto seg = make_seg(c);
  std::vector<float> out(R.size()), lse(s.B * s.n_heads * s.T), scratch(attention_scratch_floats(s));
  auto loss = [&] {
    attention_forward(out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data());
    return dot(out, R);
  };
  loss();
  std::vector<float> dqkv(qkv.size());
  attention_backward(dqkv.data(), R.data(), out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data());
  EXPECT_TRUE(check_fd(qkv, dqkv, loss, 300, 6));
}

}  // namespace
}  // namespace rlhf::kernels::test
