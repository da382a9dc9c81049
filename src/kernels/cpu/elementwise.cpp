// Small elementwise helpers used by the trainer: residual adds, gradient norms, scaling.
//
// Threaded only when the array is large enough to pay for waking the OpenMP team; they are
// also called per row (n = C) from serial code.
#include "kernels/kernels.h"

namespace rlhf::kernels {
namespace {
constexpr int64_t kParallelMin = 65536;
}

void add_inplace(float* a, const float* b, int64_t n) {
  float* __restrict x = a;
  const float* __restrict y = b;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

double sum_squares(const float* x, int64_t n) {
  double acc = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : acc) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return acc;
}

void scale_inplace(float* x, float s, int64_t n) {
  float* __restrict y = x;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

}  // namespace rlhf::kernels
