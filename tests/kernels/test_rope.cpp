// RoPE: HF rotate_half pairing with fp32 angles, the inverse rotation as backward, and strided
// rows (rotating only the q or k part of a fused qkv row).
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

std::vector<float> inv_freq_for(int head_dim, double theta) {
  std::vector<float> f(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) f[i] = static_cast<float>(1.0 / std::pow(theta, 2.0 * i / head_dim));
  return f;
}

// The reference backend's rotation (HF: q * cos + rotate_half(q) * sin of the fp32 angle, in
// double), forward or, with inverse, backward.
std::vector<float> rope_ref(std::vector<float> x, const std::vector<int32_t>& pos, const std::vector<float>& inv_freq,
                            int64_t N, int64_t stride, int H, int D, bool inverse) {
  const Backend& ref = reference_backend();
  if (inverse)
    ref.rope_backward(x.data(), pos.data(), inv_freq.data(), N, stride, H, D);
  else
    ref.rope_forward(x.data(), pos.data(), inv_freq.data(), N, stride, H, D);
  return x;
}

TEST(Rope, ForwardMatchesReferenceAndLeavesOtherColumns) {
  const int64_t N = 300;
  const int H = 4, D = 64;
  const int64_t stride = H * D + 100;  // e.g. q heads followed by k/v columns
  auto x = randn(N * stride, 1);
  std::vector<int32_t> pos(N);
  for (int64_t n = 0; n < N; ++n) pos[n] = static_cast<int32_t>((n * 37) % 5000);  // large angles too
  const auto inv_freq = inv_freq_for(D, 10000.0);
  const auto want = rope_ref(x, pos, inv_freq, N, stride, H, D, false);
  rope_forward(x.data(), pos.data(), inv_freq.data(), N, stride, H, D);
  EXPECT_TRUE(all_close(x, want, 1e-5, 1e-6));  // untouched columns compare exactly
}

TEST(Rope, BackwardIsTransposedRotation) {
  const int64_t N = 20;
  const int H = 3, D = 16;
  const int64_t stride = H * D;
  const auto inv_freq = inv_freq_for(D, 500000.0);
  std::vector<int32_t> pos(N);
  for (int64_t n = 0; n < N; ++n) pos[n] = static_cast<int32_t>(3 * n + 1);
  // L = sum(R * rope(x))  =>  dx = rope_backward(R); checked against the reference rotation by
  // -angle, as the inverse of the forward, and by finite differences.
  auto x = randn(N * stride, 2);
  const auto R = randn(N * stride, 3);
  auto dx = R;
  rope_backward(dx.data(), pos.data(), inv_freq.data(), N, stride, H, D);
  EXPECT_TRUE(all_close(dx, rope_ref(R, pos, inv_freq, N, stride, H, D, true), 1e-5, 1e-6));

  auto roundtrip = x;
  rope_forward(roundtrip.data(), pos.data(), inv_freq.data(), N, stride, H, D);
  rope_backward(roundtrip.data(), pos.data(), inv_freq.data(), N, stride, H, D);
  EXPECT_TRUE(all_close(roundtrip, x, 1e-5, 1e-6));

  std::vector<float> out;
  auto loss = [&] {
    out = x;
    rope_forward(out.data(), pos.data(), inv_freq.data(), N, stride, H, D);
    return dot(out, R);
  };
  EXPECT_TRUE(check_fd(x, dx, loss, 200, 4));
}

// Phi's partial rotary and LongRoPE's scale: dimensions past rotary_dim pass unchanged, the
// rotated ones are scaled by mscale, and the backward is the transposed map (finite differences).
TEST(Rope, PartialRotaryWithScale) {
  const int64_t N = 12;
  const int H = 3, D = 16, R = 12;
  const float mscale = 1.25f;
  const int64_t stride = H * D;
  const auto inv_freq = inv_freq_for(R, 10000.0);
  std::vector<int32_t> pos(N);
  for (int64_t n = 0; n < N; ++n) pos[n] = static_cast<int32_t>(5 * n + 2);
  auto x = randn(N * stride, 4);
  auto y = x;
  rope_forward(y.data(), pos.data(), inv_freq.data(), N, stride, H, D, R, mscale);
  for (int64_t n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h) {
      double in2 = 0, out2 = 0;
      for (int d = 0; d < D; ++d) {
        const int64_t k = n * stride + h * D + d;
        if (d >= R) {
          EXPECT_EQ(y[k], x[k]);  // passes unrotated
        } else {
          in2 += double(x[k]) * x[k];
          out2 += double(y[k]) * y[k];
        }
      }
      EXPECT_NEAR(std::sqrt(out2), mscale * std::sqrt(in2), 1e-4 * std::sqrt(in2));  // a scaled rotation
    }
  const auto Rv = randn(N * stride, 5);
  auto dx = Rv;
  rope_backward(dx.data(), pos.data(), inv_freq.data(), N, stride, H, D, R, mscale);
  auto loss = [&] {
    auto z = x;
    rope_forward(z.data(), pos.data(), inv_freq.data(), N, stride, H, D, R, mscale);
    return dot(z, Rv);
  };
  EXPECT_TRUE(check_fd(x, dx, loss, 100, 7));
}

}  // namespace
}  // namespace rlhf::kernels::test
