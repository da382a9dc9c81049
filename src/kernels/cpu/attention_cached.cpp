// Attention of new query rows against a key/value cache, for decoding (inference only).
//
// The same arithmetic as attention_forward (scaled Q K^T, fast_expf softmax, P V, rows rescaled
// by 1 / sum; the products by sgemm, or by loops for a decode step's single rows), so cached and
// uncached logits agree to rounding. Work unit:
// a block of query rows of one sequence at consecutive positions (a prompt being prefilled, or
// the single new token of a decode step) and one kv head; blocks are cut at positions that are
// multiples of kBlockQ, so a row's block is known from its neighbours alone and the kernel needs
// no index of its own. The cache is laid out per (sequence, kv head) so a block's keys are one
// contiguous (L, head_dim) matrix.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf::kernels {
namespace {

constexpr int64_t kBlockQ = 64;
// Blocks of at most this many query rows (decode steps) use plain loops: sgemm would copy (pack)
// the whole key and value block for one row, which took more time than the products.
constexpr int64_t kLoopRows = 4;

int64_t max_keys(const AttentionShape& s) {
  return s.sliding_window > 0 ? std::min<int64_t>(s.T, kBlockQ + s.sliding_window - 1) : s.T;
}

int64_t per_thread_floats(const AttentionShape& s) {
  const int64_t bq = std::min<int64_t>(kBlockQ, s.T);
  return bq * max_keys(s) + bq;
}

// Whether row n continues the block of row n - 1.
bool continues(const int32_t* seq, const int32_t* pos, int64_t n) {
  return n > 0 && seq[n] == seq[n - 1] && pos[n] == pos[n - 1] + 1 && pos[n] % kBlockQ != 0;
}

}  // namespace

int64_t attention_cached_scratch_floats(const AttentionShape& s) {
  return static_cast<int64_t>(omp_get_max_threads()) * per_thread_floats(s);
}

void attention_cached(float* out, const float* q, int64_t ld_q, const float* k_cache, const float* v_cache,
                      const int32_t* seq, const int32_t* pos, int64_t N, const AttentionShape& s, float* scratch) {
  RLHF_CHECK(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0 && s.head_dim > 0 && s.sliding_window >= 0,
             "attention_cached: bad head layout");
  for (int64_t n = 0; n < N; ++n)
    RLHF_CHECK(seq[n] >= 0 && seq[n] < s.B && pos[n] >= 0 && pos[n] < s.T,
               "attention_cached: row " + std::to_string(n) + " (sequence " + std::to_string(seq[n]) +
                   ", position " + std::to_string(pos[n]) + ") is outside the cache");
  const int64_t D = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, group = H / KV, ldo = H * D;
  const int64_t per_thread = per_thread_floats(s);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  auto key_lo = [&](int64_t p) { return s.sliding_window > 0 ? std::max<int64_t>(0, p - s.sliding_window + 1) : 0; };
#pragma omp parallel
  {
    float* S = scratch + omp_get_thread_num() * per_thread;
    float* inv_sum = S + std::min<int64_t>(kBlockQ, s.T) * max_keys(s);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < N * KV; ++task) {
      const int64_t n0 = task / KV, g = task % KV;
      if (continues(seq, pos, n0)) continue;  // not the first row of a block
      int64_t nq = 1;
      while (n0 + nq < N && continues(seq, pos, n0 + nq)) ++nq;
      const int64_t p0 = pos[n0], kmin = key_lo(p0), L = p0 + nq - kmin;
      const int64_t cache_off = (static_cast<int64_t>(seq[n0]) * KV + g) * s.T * D;
      const float* K = k_cache + cache_off + kmin * D;
      const float* V = v_cache + cache_off + kmin * D;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const float* qh = q + n0 * ld_q + h * D;
        if (nq <= kLoopRows) {
          for (int64_t i = 0; i < nq; ++i)
            for (int64_t j = 0; j < L; ++j) {
              float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
              for (int64_t d = 0; d < D; ++d) dot += qh[i * ld_q + d] * K[j * D + d];
              S[i * L + j] = scale * dot;
            }
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, L, D, scale, qh, ld_q, K, D, 0.0f, S, L);
        }
        for (int64_t i = 0; i < nq; ++i) {
          const int64_t a = key_lo(p0 + i) - kmin, e = p0 + i - kmin + 1;
          float* __restrict row = S + i * L;
          float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
          for (int64_t j = a; j < e; ++j) m = std::max(m, row[j]);
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = a; j < e; ++j) {
            const float p = cpu::fast_expf(row[j] - m);
            row[j] = p;
            sum += p;
          }
          std::fill(row, row + a, 0.0f);
          std::fill(row + e, row + L, 0.0f);
          inv_sum[i] = 1.0f / sum;
        }
        float* o = out + n0 * ldo + h * D;
        if (nq <= kLoopRows) {
          for (int64_t i = 0; i < nq; ++i) {
            float* __restrict orow = o + i * ldo;
            std::fill(orow, orow + D, 0.0f);
            for (int64_t j = 0; j < L; ++j) {
              const float p = S[i * L + j];
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) orow[d] += p * V[j * D + d];
            }
          }
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, L, 1.0f, S, L, V, D, 0.0f, o, ldo);
        }
        for (int64_t i = 0; i < nq; ++i) {
          float* __restrict orow = o + i * ldo;
          const float r = inv_sum[i];
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) orow[d] *= r;
        }
      }
    }
  }
}

}  // namespace rlhf::kernels
