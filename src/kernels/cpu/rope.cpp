// Rotary position embedding (HF rotate_half pairing), applied in place to q and k heads.
//
// Angles follow PyTorch exactly: angle = float(position) * inv_freq[i] rounded to fp32, then
// fp32 cos/sin of that. They are computed once per position of the call (or per row, where
// positions hardly repeat) and reused for all heads. The backward is the inverse (transposed)
// rotation and overwrites its input.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/kernels_cpu.h"
#include "tensor/error.h"

namespace rlhf::kernels::cpu {
namespace {

constexpr int kMaxHalf = 512;  // head_dim up to 1024

// sign = +1: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s)   (forward rotation by +angle)
// sign = -1: (x0, x1) -> (x0 c + x1 s, x1 c - x0 s)   (inverse rotation, R^T = R(-angle))
void rotate_heads(float* row, const float* cs, const float* sn, int n_heads, int head_dim, int half, float sign) {
  for (int h = 0; h < n_heads; ++h) {
    float* __restrict x0 = row + static_cast<int64_t>(h) * head_dim;
    float* __restrict x1 = x0 + half;
#pragma omp simd
    for (int i = 0; i < half; ++i) {
      const float a = x0[i], b = x1[i], s = sign * sn[i];
      x0[i] = a * cs[i] - b * s;
      x1[i] = b * cs[i] + a * s;
    }
  }
}

// cos and sin of each angle, times mscale (HF rounds cos to fp32, then scales it in fp32).
void angles(float* cs, float* sn, int32_t position, const float* inv_freq, int half, float mscale) {
  const float pos = static_cast<float>(position);
  for (int i = 0; i < half; ++i) {
    const float angle = pos * inv_freq[i];
    cs[i] = std::cos(angle) * mscale;
    sn[i] = std::sin(angle) * mscale;
  }
}

void rope_apply(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride, int n_heads,
                int head_dim, int rotary_dim, float mscale, float sign) {
  if (rotary_dim == 0) rotary_dim = head_dim;
  RLHF_CHECK(rotary_dim % 2 == 0 && rotary_dim <= head_dim && rotary_dim / 2 <= kMaxHalf,
             "rope: the rotary dimension must be even, at most head_dim (" + std::to_string(head_dim) + ") and " +
                 std::to_string(2 * kMaxHalf) + ", got " + std::to_string(rotary_dim));
  const int half = rotary_dim / 2;
  int32_t max_pos = 0;
  for (int64_t n = 0; n < N; ++n) {
    RLHF_CHECK(positions[n] >= 0, "rope: negative position " + std::to_string(positions[n]));
    max_pos = std::max(max_pos, positions[n]);
  }
  const bool parallel = N * n_heads * head_dim > 32768;
  // A training batch repeats positions (every packed sequence starts at 0): the cos/sin of each
  // position are computed once into a table, instead of once per row (libm calls were a fortieth
  // of a PPO step). Decode rows, with few repeats, compute their own.
  if (max_pos + 1 < N) {
    thread_local std::vector<float> table;  // per position: cos (half), then sin (half)
    table.resize(static_cast<size_t>(max_pos + 1) * rotary_dim);
    float* tab = table.data();
#pragma omp parallel for schedule(static) if (parallel)
    for (int32_t p = 0; p <= max_pos; ++p)
      angles(tab + p * rotary_dim, tab + p * rotary_dim + half, p, inv_freq, half, mscale);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t n = 0; n < N; ++n) {
      const float* t = tab + static_cast<int64_t>(positions[n]) * rotary_dim;
      rotate_heads(x + n * row_stride, t, t + half, n_heads, head_dim, half, sign);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t n = 0; n < N; ++n) {
    float cs[kMaxHalf], sn[kMaxHalf];
    angles(cs, sn, positions[n], inv_freq, half, mscale);
    rotate_heads(x + n * row_stride, cs, sn, n_heads, head_dim, half, sign);
  }
}

}  // namespace

void rope_forward(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride, int n_heads,
                  int head_dim, int rotary_dim, float mscale) {
  rope_apply(x, positions, inv_freq, N, row_stride, n_heads, head_dim, rotary_dim, mscale, 1.0f);
}

// y = m R x with R orthogonal  =>  dx = m R^T dy = m R(-angle) dy: the same map with sin negated
// (the unrotated dimensions pass through both ways).
void rope_backward(float* dx, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                   int n_heads, int head_dim, int rotary_dim, float mscale) {
  rope_apply(dx, positions, inv_freq, N, row_stride, n_heads, head_dim, rotary_dim, mscale, -1.0f);
}

}  // namespace rlhf::kernels::cpu
