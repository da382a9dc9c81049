// Dense layers: out = inp @ weight^T + bias, forward and backward, on CBLAS (OpenMP OpenBLAS).
//
// Weights are stored PyTorch-style as (OC, C) row-major, so the forward multiplies by the
// transpose. BLAS does the threading for the products; only the bias column sum is our loop.
#include <cblas.h>

#include <algorithm>

#include "kernels/kernels.h"

namespace rlhf::kernels {

namespace {

// Rows up to which a product streams the weights instead of calling sgemm. A decode step
// multiplies a handful of rows by every weight: the cost is reading the weights once, and
// sgemm would first copy (pack) each weight panel, reading and writing it again.
constexpr int64_t kStreamRows = 8;

// out = inp @ weight^T + bias for N <= kStreamRows: four weight rows at a time stay in L1 while
// every input row is dotted with them, so each weight is read from memory once.
void matmul_forward_streaming(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                              int64_t C, int64_t OC) {
#pragma omp parallel for schedule(static) if (OC * C > 65536)
  for (int64_t o = 0; o < OC; o += 4) {
    const int64_t no = std::min<int64_t>(4, OC - o);
    const float* w0 = weight + o * C;
    const float* w1 = weight + (o + std::min<int64_t>(1, no - 1)) * C;
    const float* w2 = weight + (o + std::min<int64_t>(2, no - 1)) * C;
    const float* w3 = weight + (o + std::min<int64_t>(3, no - 1)) * C;
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t c = 0; c < C; ++c) {
        a0 += x[c] * w0[c];
        a1 += x[c] * w1[c];
        a2 += x[c] * w2[c];
        a3 += x[c] * w3[c];
      }
      const float acc[4] = {a0, a1, a2, a3};
      for (int64_t k = 0; k < no; ++k) out[n * OC + o + k] = acc[k] + (bias ? bias[o + k] : 0.0f);
    }
  }
}

}  // namespace

// out (N, OC) = inp (N, C) @ weight^T (C, OC) + bias. The bias is broadcast into out first and
// the product accumulated on top (beta = 1), which costs one write pass but no extra read.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
  if (N <= kStreamRows) return matmul_forward_streaming(out, inp, weight, bias, N, C, OC);
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for if (N * OC > 32768)
    for (int64_t n = 0; n < N; ++n) std::copy(bias, bias + OC, out + n * OC);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

// With Y = X W^T + 1 b^T:  dX = dY W,  dW = dY^T X,  db = colsum(dY)  (all accumulated, beta = 1).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias) {
    // Column sums, threaded over column blocks so no two threads touch the same dbias entry.
    constexpr int64_t kCols = 64;
    const int64_t n_blocks = (OC + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (N * OC > 32768)
    for (int64_t cb = 0; cb < n_blocks; ++cb) {
      const int64_t c0 = cb * kCols, nc = std::min(kCols, OC - c0);
      float acc[kCols] = {};
      for (int64_t n = 0; n < N; ++n) {
        const float* row = dout + n * OC + c0;
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) acc[c] += row[c];
      }
      for (int64_t c = 0; c < nc; ++c) dbias[c0 + c] += acc[c];
    }
  }
}

}  // namespace rlhf::kernels
