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

// v >= 0, so sqrt never sets errno; without this gcc keeps a scalar errno path for sqrt and the
// update loop does not vectorise. Placed before the includes so <cmath>'s inline wrappers are
// compiled with the same options and still inline.
#pragma GCC optimize("no-math-errno")

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"

namespace rlhf::kernels {
namespace {

struct AdamCoeffs {
  float decay, w1, w2, beta2, step_size, bc2_sqrt, eps;
};

// The update on elements [0, n). A plain function (not inlined into the OpenMP outlined body,
// which does not inherit the pragma above) so the loop vectorises.
__attribute__((noinline)) void adamw_range(float* __restrict p, const float* __restrict g, float* __restrict m,
                                           float* __restrict v, int64_t n, const AdamCoeffs c) {
  for (int64_t i = 0; i < n; ++i) {
    const float pi = p[i] * c.decay;
    const float mi = std::fma(c.w1, g[i] - m[i], m[i]);  // PyTorch's lerp (weight 1 - b1 < 0.5)
    const float vi = v[i] * c.beta2 + c.w2 * g[i] * g[i];
    const float denom = std::sqrt(vi) / c.bc2_sqrt + c.eps;
    p[i] = pi + (-c.step_size * mi) / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int64_t step) {
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
#pragma omp parallel for schedule(static) if (n_blocks > 4)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t i0 = blk * kBlock, len = std::min(kBlock, n - i0);
    adamw_range(param + i0, grad + i0, m + i0, v + i0, len, c);
  }
}

}  // namespace rlhf::kernels
