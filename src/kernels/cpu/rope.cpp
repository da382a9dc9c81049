// Rotary position embedding (HF rotate_half pairing), applied in place to q and k heads.
//
// Angles follow PyTorch exactly: angle = float(position) * inv_freq[i] rounded to fp32, then
// fp32 cos/sin of that. They are computed once per row (head_dim/2 values) and reused for all
// heads of the row. The backward is the inverse (transposed) rotation and overwrites its input.
#include <cmath>

#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf::kernels {
namespace {

constexpr int kMaxHalf = 512;  // head_dim up to 1024

// sign = +1: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s)   (forward rotation by +angle)
// sign = -1: (x0, x1) -> (x0 c + x1 s, x1 c - x0 s)   (inverse rotation, R^T = R(-angle))
void rope_apply(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride, int n_heads,
                int head_dim, float sign) {
  RLHF_CHECK(
      head_dim % 2 == 0 && head_dim / 2 <= kMaxHalf,
      "rope: head_dim must be even and at most " + std::to_string(2 * kMaxHalf) + ", got " + std::to_string(head_dim));
  const int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (N * n_heads * head_dim > 32768)
  for (int64_t n = 0; n < N; ++n) {
    float cs[kMaxHalf], sn[kMaxHalf];
    const float pos = static_cast<float>(positions[n]);
    for (int i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cs[i] = std::cos(angle);
      sn[i] = sign * std::sin(angle);
    }
    for (int h = 0; h < n_heads; ++h) {
      float* __restrict x0 = x + n * row_stride + static_cast<int64_t>(h) * head_dim;
      float* __restrict x1 = x0 + half;
#pragma omp simd
      for (int i = 0; i < half; ++i) {
        const float a = x0[i], b = x1[i];
        x0[i] = a * cs[i] - b * sn[i];
        x1[i] = b * cs[i] + a * sn[i];
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride, int n_heads,
                  int head_dim) {
  rope_apply(x, positions, inv_freq, N, row_stride, n_heads, head_dim, 1.0f);
}

// y = R x with R orthogonal  =>  dx = R^T dy = R(-angle) dy: the same rotation with sin negated.
void rope_backward(float* dx, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                   int n_heads, int head_dim) {
  rope_apply(dx, positions, inv_freq, N, row_stride, n_heads, head_dim, -1.0f);
}

}  // namespace rlhf::kernels
