// LayerNorm (GPT-2) and RMSNorm (Llama family) over the last dimension, forward and backward.
//
// Rows are independent, so both directions thread over rows. The parameter gradients are sums
// over rows; each thread accumulates them into its own small (2, C) slice and the slices are
// added into dweight/dbias at the end (deterministic for a given thread count, no atomics).
// That slice buffer (threads * 2C floats) is the only allocation in these kernels.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::cpu {
namespace {

constexpr int64_t kParallelMin = 32768;  // below this many elements, threading costs more than it saves

int threads_for(int64_t work) { return work > kParallelMin ? omp_get_max_threads() : 1; }

// dst[c] += sum over t of part[t * stride + c], for c < C.
void reduce_partials(float* dst, const float* part, int nt, int64_t stride, int64_t C) {
#pragma omp parallel for schedule(static) if (C * nt > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    float s = 0.0f;
    for (int t = 0; t < nt; ++t) s += part[t * stride + c];
    dst[c] += s;
  }
}

}  // namespace

// ---- LayerNorm ----------------------------------------------------------------------------

// mean = sum(x)/C, var = sum((x-mean)^2)/C (biased, as PyTorch), rstd = 1/sqrt(var + eps),
// out = (x - mean) * rstd * w + b. Two passes over the row for an accurate variance.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* __restrict x = inp + n * C;
    float* __restrict o = out + n * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) s += x[c];
    const float m = s / static_cast<float>(C);
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    const float r = 1.0f / std::sqrt(v / static_cast<float>(C) + eps);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    mean[n] = m;
    rstd[n] = r;
  }
}

// With xhat = (x - mean) * rstd and g = dout * w (gradient w.r.t. xhat):
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
// (the two subtracted terms are the paths through mean and through rstd; see e.g. llm.c's
// layernorm_backward), dw += dout * xhat, db += dout.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  const int nt = threads_for(N * C);
  std::vector<float> part(static_cast<size_t>(nt) * 2 * C, 0.0f);  // per thread: [dw (C) | db (C)]
#pragma omp parallel num_threads(nt)
  {
    float* __restrict dw = part.data() + static_cast<int64_t>(omp_get_thread_num()) * 2 * C;
    float* __restrict db = dw + C;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const float* __restrict x = inp + n * C;
      const float* __restrict d = dout + n * C;
      float* __restrict dx = dinp + n * C;
      const float m = mean[n], r = rstd[n];
      float g_mean = 0.0f, gx_mean = 0.0f;
#pragma omp simd reduction(+ : g_mean, gx_mean)
      for (int64_t c = 0; c < C; ++c) {
        const float g = d[c] * weight[c];
        g_mean += g;
        gx_mean += g * (x[c] - m) * r;
      }
      g_mean /= static_cast<float>(C);
      gx_mean /= static_cast<float>(C);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float xhat = (x[c] - m) * r;
        dx[c] += r * (d[c] * weight[c] - g_mean - xhat * gx_mean);
        dw[c] += d[c] * xhat;
        db[c] += d[c];
      }
    }
  }
  reduce_partials(dweight, part.data(), nt, 2 * C, C);
  reduce_partials(dbias, part.data() + C, nt, 2 * C, C);
}

// ---- RMSNorm ------------------------------------------------------------------------------

// rstd = 1/sqrt(mean(x^2) + eps), out = x * rstd * w (HF LlamaRMSNorm in fp32).
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* __restrict x = inp + n * C;
    float* __restrict o = out + n * C;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; ++c) ss += x[c] * x[c];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = x[c] * r * weight[c];
    rstd[n] = r;
  }
}

// out_i = w_i x_i r with dr/dx_j = -r^3 x_j / C. With g = dout * w and xhat = x * r:
//   dx_j = r * g_j - r^3 x_j / C * sum_i g_i x_i = r * (g_j - xhat_j * mean(g * xhat)),
//   dw += dout * xhat.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C) {
  const int nt = threads_for(N * C);
  std::vector<float> part(static_cast<size_t>(nt) * C, 0.0f);  // per thread: dw (C)
#pragma omp parallel num_threads(nt)
  {
    float* __restrict dw = part.data() + static_cast<int64_t>(omp_get_thread_num()) * C;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const float* __restrict x = inp + n * C;
      const float* __restrict d = dout + n * C;
      float* __restrict dx = dinp + n * C;
      const float r = rstd[n];
      float gx_mean = 0.0f;
#pragma omp simd reduction(+ : gx_mean)
      for (int64_t c = 0; c < C; ++c) gx_mean += d[c] * weight[c] * x[c] * r;
      gx_mean /= static_cast<float>(C);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float xhat = x[c] * r;
        dx[c] += r * (d[c] * weight[c] - xhat * gx_mean);
        dw[c] += d[c] * xhat;
      }
    }
  }
  reduce_partials(dweight, part.data(), nt, C, C);
}

}  // namespace rlhf::kernels::cpu
