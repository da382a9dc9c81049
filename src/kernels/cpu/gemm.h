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
// read and one write of each) would cost about as much as the product itself; attention packs
// each head's keys and values once for all its query tiles.
class PackedB {
 public:
  PackedB() = default;
  PackedB(MatrixView B, int64_t K, int64_t N) { pack(B, K, N); }
  // Packs B, reusing this object's memory where it is large enough.
  void pack(MatrixView B, int64_t K, int64_t N);
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }
  // Columns per panel: a column range given to the block product below starts at a multiple.
  static int64_t panel_width();
  // Row k of the panel holding column j (a panel boundary), and the floats between the panels
  // of k's K-block.
  const float* panel_row(int64_t k, int64_t j) const;
  int64_t panel_stride(int64_t k) const;

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  int64_t K_ = 0, N_ = 0, padded_n_ = 0;
  size_t capacity_ = 0;
  std::unique_ptr<float[], Free> data_;
};

// gemm() with a prepacked B (K = B.rows(), N = B.cols()).
void gemm(int64_t M, float alpha, MatrixView A, const PackedB& B, bool accumulate, float* C, int64_t ldc);
// The same with the block B[k0:k1, j0:j1] of a prepacked B (j0 a multiple of panel_width()):
// C (M x (j1 - j0)) = alpha * A (M x (k1 - k0)) @ that block (+ C).
void gemm(int64_t M, float alpha, MatrixView A, const PackedB& B, int64_t k0, int64_t k1, int64_t j0, int64_t j1,
          bool accumulate, float* C, int64_t ldc);

}  // namespace rlhf::kernels::cpu
