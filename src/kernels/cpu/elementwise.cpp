// Small elementwise helpers used by the trainer and the sampler: residual adds, gradient norms,
// scaling, shifted exponentials.
//
// Threaded only when the array is large enough to pay for waking the OpenMP team; they are
// also called per row (n = C) from serial code.
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::cpu {
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

void fill_zero(float* x, int64_t n) {
  float* __restrict y = x;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = 0.0f;
}

void gather_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width, bool add) {
#pragma omp parallel for schedule(static) if (n * width > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float* __restrict d = dst + i * width;
    const float* __restrict s = src + rows[i] * width;
    if (add) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) d[j] += s[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) d[j] = s[j];
    }
  }
}

void scatter_add_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width) {
#pragma omp parallel for schedule(static) if (n * width > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float* __restrict d = dst + rows[i] * width;
    const float* __restrict s = src + i * width;
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) d[j] += s[j];
  }
}

void scale_inplace(float* x, float s, int64_t n) {
  float* __restrict y = x;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

double exp_shifted(float* e, const float* s, float shift, int64_t n) {
  float* __restrict out = e;
  const float* __restrict in = s;
  // Partial sums in float over blocks (a double reduction keeps gcc from vectorising the loop),
  // added up in double.
  constexpr int64_t kBlock = 256;
  double sum = 0.0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t end = b + kBlock < n ? b + kBlock : n;
    float part = 0.0f;
#pragma omp simd reduction(+ : part)
    for (int64_t i = b; i < end; ++i) {
      out[i] = cpu::fast_expf(in[i] - shift);
      part += out[i];
    }
    sum += part;
  }
  return sum;
}

}  // namespace rlhf::kernels::cpu
