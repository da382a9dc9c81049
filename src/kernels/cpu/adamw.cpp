// AdamW, one step over a flat parameter buffer, following torch.optim.AdamW (single-tensor path):
//
//   p *= 1 - lr * wd                          decoupled weight decay, applied before the update
//   m  = lerp(m, g, 1 - b1)                   = b1 m + (1 - b1) g
//   v  = b2 v + (1 - b2) g^2
//   p += -(lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//
// The scalar coefficients are computed in double from the float hyper-parameters (PyTorch
// computes them from Python floats) and rounded to float once, as PyTorch does when it applies
// a Python scalar to a float tensor. Gradient clipping and schedules live in the trainer.
//
// The step also counts the parameters it wrote that are NaN or Inf, in the pass that writes them
// (the trainer stops on any: docs/reliability.md test 28e).

#include <algorithm>
#include <bit>
#include <cmath>

#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::cpu {
namespace {

struct AdamCoeffs {
  float decay, w1, w2, beta2, step_size, bc2_sqrt, eps;
};

// The update on elements [0, n), in tiles of kTile so the square roots can go through the
// vectorised sqrt_inplace between two auto-vectorised passes that stay in L1. Returns how many
// of the written parameters are not finite.
int64_t adamw_range(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                    int64_t n, const AdamCoeffs& c) {
  constexpr int64_t kTile = 256;
  float den[kTile];
  int64_t nonfinite = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int64_t len = std::min(kTile, n - i0);
    float* __restrict pt = p + i0;
    const float* __restrict gt = g + i0;
    float* __restrict mt = m + i0;
    float* __restrict vt = v + i0;
    for (int64_t i = 0; i < len; ++i) {
      mt[i] = std::fma(c.w1, gt[i] - mt[i], mt[i]);  // PyTorch's lerp (weight 1 - b1 < 0.5)
      vt[i] = vt[i] * c.beta2 + c.w2 * gt[i] * gt[i];
      den[i] = vt[i];
    }
    cpu::sqrt_inplace(den, len);
    // All exponent bits set: Inf or NaN. An int32 count per tile keeps the loop vectorised.
    int32_t bad = 0;
    for (int64_t i = 0; i < len; ++i) {
      pt[i] = pt[i] * c.decay + (-c.step_size * mt[i]) / (den[i] / c.bc2_sqrt + c.eps);
      bad += (std::bit_cast<uint32_t>(pt[i]) & 0x7f800000u) == 0x7f800000u;
    }
    nonfinite += bad;
  }
  return nonfinite;
}

}  // namespace

int64_t adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int64_t step) {
  const double b1 = beta1, b2 = beta2, t = static_cast<double>(step);
  AdamCoeffs c;
  c.decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  c.w1 = static_cast<float>(1.0 - b1);
  c.w2 = static_cast<float>(1.0 - b2);
  c.beta2 = beta2;
  c.step_size = static_cast<float>(lr / (1.0 - std::pow(b1, t)));
  c.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, t)));
  c.eps = eps;
  constexpr int64_t kBlock = 16384;
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  int64_t nonfinite = 0;
#pragma omp parallel for schedule(static) if (n_blocks > 4) reduction(+ : nonfinite)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t i0 = blk * kBlock, len = std::min(kBlock, n - i0);
    nonfinite += adamw_range(param + i0, grad + i0, m + i0, v + i0, len, c);
  }
  return nonfinite;
}

}  // namespace rlhf::kernels::cpu
