// Fused next-token log-probability: logp[n] = log softmax(h[n] W^T * inv_temp)[target[n]],
// with the optional entropy of the same distribution, never materialising N x V logits.
//
// The vocabulary is walked in chunks of `chunk` rows of W. Per chunk, one GEMM writes the
// scaled logits z (N x chunk) into scratch, then a threaded per-row pass folds them into a
// running log-sum-exp (online softmax). The backward recomputes each chunk's logits from h, W
// and the saved lse. The output buffers double as running state in the forward: lse holds the
// running log-sum-exp, logp the target logit, entropy the running sum_j exp(z_j - lse) z_j.
// With a single chunk the forward's logits are still in scratch when the backward of the same
// rows follows, and it uses them instead (the output head's product is a sixth of a small
// model's backward).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"
#include "tensor/error.h"

namespace rlhf::kernels::cpu {
namespace {

void check_targets(const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t n = 0; n < N; ++n)
    RLHF_CHECK(targets[n] >= 0 && targets[n] < V, "logprob: target " + std::to_string(targets[n]) + " of row " +
                                                      std::to_string(n) + " is outside the vocabulary [0, " +
                                                      std::to_string(V) + ")");
}

// z (N x cs) = inv_temp * h (N x C) @ W[v0 : v0 + cs]^T, or with a soft-cap
// inv_temp * cap * tanh(h W^T / cap).
void chunk_logits(float* z, const float* h, const float* W, int64_t N, int64_t C, int64_t v0, int64_t cs,
                  float inv_temp, float softcap) {
  if (softcap <= 0.0f) {
    cpu::gemm(N, cs, C, inv_temp, cpu::row_major(h, C), cpu::transposed(W + v0 * C, C), false, z, cs);
    return;
  }
  cpu::gemm(N, cs, C, 1.0f / softcap, cpu::row_major(h, C), cpu::transposed(W + v0 * C, C), false, z, cs);
  const float out_scale = inv_temp * softcap;
#pragma omp parallel for schedule(static) if (N * cs > 32768)
  for (int64_t i = 0; i < N * cs; ++i) z[i] = out_scale * std::tanh(z[i]);
}

}  // namespace

// Online update per row with a chunk's max m_c, s_c = sum exp(z - m_c), a_c = sum exp(z - m_c) z:
//   lse' = logaddexp(lse, m_c + log s_c),  A' = A exp(lse - lse') + a_c exp(m_c - lse'),
// where A = sum_{seen j} exp(z_j - lse) z_j. At the end A = E_p[z], and the entropy is
//   H = -sum p_j (z_j - lse) = lse - E_p[z].
void logprob_forward(float* logp, float* lse, float* entropy, const float* h, const float* W, const int32_t* targets,
                     int64_t N, int64_t C, int64_t V, float inv_temp, float* scratch, int64_t chunk, float softcap) {
  RLHF_CHECK(chunk > 0, "logprob: chunk must be positive");
  check_targets(targets, N, V);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::fill(lse, lse + N, neg_inf);
  if (entropy) std::fill(entropy, entropy + N, 0.0f);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t cs = std::min(chunk, V - v0);
    chunk_logits(scratch, h, W, N, C, v0, cs, inv_temp, softcap);
#pragma omp parallel for schedule(static) if (N * cs > 32768)
    for (int64_t n = 0; n < N; ++n) {
      const float* __restrict z = scratch + n * cs;
      float m = neg_inf;
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < cs; ++j) m = std::max(m, z[j]);
      float s = 0.0f, a = 0.0f;
      if (entropy) {
#pragma omp simd reduction(+ : s, a)
        for (int64_t j = 0; j < cs; ++j) {
          const float e = cpu::fast_expf(z[j] - m);
          s += e;
          a += e * z[j];
        }
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < cs; ++j) s += cpu::fast_expf(z[j] - m);
      }
      const float l_old = lse[n], l_chunk = m + std::log(s);
      const float l_new = std::max(l_old, l_chunk) + std::log1p(std::exp(-std::fabs(l_old - l_chunk)));
      if (entropy) entropy[n] = entropy[n] * std::exp(l_old - l_new) + a * std::exp(m - l_new);
      lse[n] = l_new;
      const int64_t tgt = targets[n];
      if (tgt >= v0 && tgt < v0 + cs) logp[n] = z[tgt - v0];
    }
  }
  for (int64_t n = 0; n < N; ++n) {
    logp[n] -= lse[n];
    if (entropy) entropy[n] = lse[n] - entropy[n];
  }
}

// logp = z_t - lse(z), z = inv_temp * h W^T:  dlogp/dz_j = onehot_j(t) - p_j,  p = exp(z - lse).
// Per chunk: G = dlogp[n] (onehot - p) (N x cs), dh += inv_temp G W_chunk, dW_chunk += inv_temp G^T h.
// With a soft-cap, z = inv_temp cap tanh(u / cap), u = h W^T: G is first multiplied by
// 1 - tanh^2 = 1 - (z / (inv_temp cap))^2.
void logprob_backward(float* dh, float* dW, const float* dlogp, const float* h, const float* W, const int32_t* targets,
                      const float* lse, int64_t N, int64_t C, int64_t V, float inv_temp, float* scratch,
                      int64_t chunk, const float* dentropy, const float* entropy, bool scratch_holds_logits,
                      float softcap) {
  RLHF_CHECK(chunk > 0, "logprob: chunk must be positive");
  RLHF_CHECK(!dentropy || entropy, "logprob: the entropy gradient needs the forward's entropy");
  RLHF_CHECK(!scratch_holds_logits || chunk >= V, "logprob: only a single-chunk forward leaves its logits");
  check_targets(targets, N, V);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t cs = std::min(chunk, V - v0);
    if (!scratch_holds_logits) chunk_logits(scratch, h, W, N, C, v0, cs, inv_temp, softcap);
    const float inv_cap_scale = softcap > 0.0f ? 1.0f / (inv_temp * softcap) : 0.0f;
#pragma omp parallel for schedule(static) if (N * cs > 32768)
    for (int64_t n = 0; n < N; ++n) {
      float* __restrict z = scratch + n * cs;
      const float g = dlogp ? dlogp[n] : 0.0f, l = lse[n];
      const int64_t tgt = targets[n];
      // d tanh: 1 - t^2 per logit, from the capped logit itself (before z is overwritten).
      const float slope_t = tgt >= v0 && tgt < v0 + cs && softcap > 0.0f
                                ? 1.0f - (z[tgt - v0] * inv_cap_scale) * (z[tgt - v0] * inv_cap_scale)
                                : 1.0f;
      if (dentropy) {
        const float gh = dentropy[n], hn = entropy[n];
#pragma omp simd
        for (int64_t j = 0; j < cs; ++j) {
          const float lp = z[j] - l, p = cpu::fast_expf(lp);
          const float slope = softcap > 0.0f ? 1.0f - (z[j] * inv_cap_scale) * (z[j] * inv_cap_scale) : 1.0f;
          z[j] = (-g * p - gh * p * (lp + hn)) * slope;
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < cs; ++j) {
          const float slope = softcap > 0.0f ? 1.0f - (z[j] * inv_cap_scale) * (z[j] * inv_cap_scale) : 1.0f;
          z[j] = -g * cpu::fast_expf(z[j] - l) * slope;
        }
      }
      if (tgt >= v0 && tgt < v0 + cs) z[tgt - v0] += g * slope_t;
    }
    if (dh) cpu::gemm(N, C, cs, inv_temp, cpu::row_major(scratch, cs), cpu::row_major(W + v0 * C, C), true, dh, C);
    if (dW)
      cpu::gemm(cs, C, N, inv_temp, cpu::transposed(scratch, cs), cpu::row_major(h, C), true, dW + v0 * C, C);
  }
}

}  // namespace rlhf::kernels::cpu
