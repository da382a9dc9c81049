// Single-precision GEMM for the model's matrix products: C = alpha * A B (+ C).
//
// Our own rather than BLAS's because Debian 12's OpenBLAS runs its AVX2 kernels on AVX-512
// CPUs it does not know (AMD Zen 4/5), and its AVX-512 ones are not safe to force on them
// (machine notes); a packed, register-tiled product in GCC vector types uses whatever vector
// width the build targets (-march=native), and measured 1.6-1.9x OpenBLAS on this project's
// products on 2 cores (bench/gemm.cpp). Attention's many small per-head products stay on BLAS.
#pragma once

#include <cstdint>

namespace rlhf::kernels::cpu {

// A read-only matrix operand: element (i, j) at data[i * row_stride + j * col_stride], so a
// row-major matrix and its transpose are both views of the same buffer.
struct MatrixView {
  const float* data;
  int64_t row_stride, col_stride;
};
inline MatrixView row_major(const float* data, int64_t ld) { return {data, ld, 1}; }
inline MatrixView transposed(const float* data, int64_t ld) { return {data, 1, ld}; }

// C (M x N, row stride ldc) = alpha * A (M x K) @ B (K x N), added to C when accumulate, else
// overwriting it. Threaded with OpenMP (single-threaded when called inside a parallel region).
// Packing buffers are kept per thread and grow on demand.
void gemm(int64_t M, int64_t N, int64_t K, float alpha, MatrixView A, MatrixView B, bool accumulate, float* C,
          int64_t ldc);

}  // namespace rlhf::kernels::cpu
