// Causal attention against the reference backend's full softmax in double: multi-head, grouped-
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
  std::vector<float> out, lse, dqkv;
};

// The reference backend's attention (full softmax per query row, in double) and its backward for dout.
AttnRef attention_ref(const std::vector<float>& qkv, const std::vector<int32_t>& seg, const AttentionShape& s,
                      const std::vector<float>& dout) {
  const Backend& ref = reference_backend();
  AttnRef r{std::vector<float>(s.B * s.T * s.n_heads * s.head_dim), std::vector<float>(s.B * s.n_heads * s.T),
            std::vector<float>(qkv.size())};
  ref.attention_forward(r.out.data(), r.lse.data(), qkv.data(), seg.data(), s, nullptr);
  ref.attention_backward(r.dqkv.data(), dout.data(), r.out.data(), r.lse.data(), qkv.data(), seg.data(), s, nullptr);
  return r;
}

struct AttnCase {
  std::string name;
  int64_t B, T;
  int H, KV, D, window;
  bool packed;  // several sequences per row
  float scale = 0.0f, softcap = 0.0f;  // Gemma's query_pre_attn_scalar and Gemma 2's soft-cap
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
  const AttentionShape s{c.B, c.T, c.H, c.KV, c.D, c.window, c.scale, c.softcap};
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
                      AttnCase{"long_window_d64", 2, 280, 4, 4, 64, 100, false},
                      // scores scaled by 1/sqrt(12), soft-capped at 2 (|scores| reach 6 here)
                      AttnCase{"scale_softcap", 2, 90, 4, 2, 8, 0, true, 0.2887f, 2.0f},
                      AttnCase{"softcap_window", 1, 120, 2, 1, 16, 33, false, 0.0f, 1.5f}),
    [](const auto& info) { return info.param.name; });

TEST(Attention, RejectsSegmentStartAfterToken) {
  const AttentionShape s{1, 4, 1, 1, 2, 0};
  std::vector<float> qkv(4 * 3 * 2, 0.5f), out(4 * 2), lse(4), scratch(attention_scratch_floats(s));
  const std::vector<int32_t> seg = {0, 0, 3, 2};  // token 2 claims its sequence starts at 3
  EXPECT_THROW(attention_forward(out.data(), lse.data(), qkv.data(), seg.data(), s, scratch.data()), LogicError);
}

class AttentionFd : public ::testing::TestWithParam<float> {};

TEST_P(AttentionFd, FiniteDifference) {
  const AttentionShape s{1, 70, 4, 2, 8, 30, 0.0f, GetParam()};
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

INSTANTIATE_TEST_SUITE_P(SoftCap, AttentionFd, ::testing::Values(0.0f, 1.0f));

}  // namespace
}  // namespace rlhf::kernels::test
