// Single-precision GEMM for the model's matrix products: C = alpha * A B (+ C).
//
// Our own rather than BLAS's because Debian 12's OpenBLAS runs its AVX2 kernels on AVX-512
// CPUs it does not know (AMD Zen 4/5), and its AVX-512 ones are not safe to force on them
// (machine notes); a packed, register-tiled product in GCC vector types uses whatever vector
// width the build targets (-march=native), and measured 1.6-1.9x OpenBLAS on this project's
// products on 2 cores (bench/gemm.cpp). Attention's small per-head products use it too.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

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

// B (K x N) copied once into the layout the GEMM packs it into, for products repeated with the
// same B: a decode step multiplies a few rows by every weight, and packing the weights (one
// read and one write of each) would cost about as much as the product itself.
class PackedB {
 public:
  PackedB(MatrixView B, int64_t K, int64_t N);
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }
  // The panels of K-block [k0, k0 + kc) from column j0 (a panel boundary) on, each kc x panel width.
  const float* panels(int64_t k0, int64_t j0) const;

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  int64_t K_, N_, padded_n_;
  std::unique_ptr<float[], Free> data_;
};

// gemm() with a prepacked B (K = B.rows(), N = B.cols()).
void gemm(int64_t M, float alpha, MatrixView A, const PackedB& B, bool accumulate, float* C, int64_t ldc);

}  // namespace rlhf::kernels::cpu
