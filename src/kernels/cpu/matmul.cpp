// Dense layers: out = inp @ weight^T + bias, forward and backward, on CBLAS (OpenMP OpenBLAS).
//
// Weights are stored PyTorch-style as (OC, C) row-major, so the forward multiplies by the
// transpose. BLAS does the threading for the products; only the bias column sum is our loop.
#include <cblas.h>

#include <algorithm>

#include "kernels/kernels.h"

namespace rlhf::kernels {

// out (N, OC) = inp (N, C) @ weight^T (C, OC) + bias. The bias is broadcast into out first and
// the product accumulated on top (beta = 1), which costs one write pass but no extra read.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
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
