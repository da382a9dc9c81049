// Attention of new query rows against a key/value cache, for decoding (inference only).
//
// The same arithmetic as attention_forward (scaled Q K^T, fast_expf softmax, P V, rows rescaled
// by 1 / sum; the products by our GEMM, or by loops for a decode step's single rows), so cached and
// uncached logits agree to rounding. Work unit:
// a block of query rows of one sequence at consecutive positions (a prompt being prefilled, or
// the single new token of a decode step) and one kv head; blocks are cut at positions that are
// multiples of kBlockQ, so a row's block is known from its neighbours alone and the kernel needs
// no index of its own. The cache is laid out per (sequence, kv head) so a block's keys are one
// contiguous (L, head_dim) matrix.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"
#include "tensor/error.h"

namespace rlhf::kernels::cpu {
namespace {

constexpr int64_t kBlockQ = 64;
// Blocks of at most this many query rows (decode steps) use plain loops: a GEMM would copy (pack)
// the whole key and value block for one row, which took more time than the products.
constexpr int64_t kLoopRows = 4;

// A decode row's products, vectorised for head_dim = 16 * NC (NC = 4, 8: head_dim 64 and 128):
// the query row and the output row stay in registers.
using cpu::f32x16;
using cpu::load16;

// Lane i of the result is the sum of the lanes of a[i] (a transposing butterfly).
f32x16 lane_sums16(const f32x16* a) {
  f32x16 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)  // within 128-bit quarters: pairs (x0 + x2, y0 + y2, x1 + x3, y1 + y3)
    b[i] = __builtin_shufflevector(a[2 * i], a[2 * i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29) +
           __builtin_shufflevector(a[2 * i], a[2 * i + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
  for (int i = 0; i < 4; ++i)  // each quarter: one partial sum of each of 4 vectors
    c[i] = __builtin_shufflevector(b[2 * i], b[2 * i + 1], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
           __builtin_shufflevector(b[2 * i], b[2 * i + 1], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  for (int i = 0; i < 2; ++i)  // quarters 0+1 and 2+3 of c[2i], then of c[2i+1]
    d[i] = __builtin_shufflevector(c[2 * i], c[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(c[2 * i], c[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  return __builtin_shufflevector(d[0], d[1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
         __builtin_shufflevector(d[0], d[1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
}

// S[j] = scale * q . K[j] for the L keys of K (L x 16 NC), sixteen keys at a time.
template <int NC>
void row_scores(float* S, const float* q, const float* K, int64_t L, float scale) {
  constexpr int64_t D = 16 * NC;
  f32x16 qv[NC];
  for (int c = 0; c < NC; ++c) qv[c] = load16(q + 16 * c);
  int64_t j0 = 0;
  for (; j0 + 16 <= L; j0 += 16) {
    f32x16 acc[16];
    for (int t = 0; t < 16; ++t) {
      acc[t] = qv[0] * load16(K + (j0 + t) * D);
      for (int c = 1; c < NC; ++c) acc[t] += qv[c] * load16(K + (j0 + t) * D + 16 * c);
    }
    const f32x16 r = scale * lane_sums16(acc);
    std::memcpy(S + j0, &r, sizeof r);
  }
  for (int64_t j = j0; j < L; ++j) {
    f32x16 acc = qv[0] * load16(K + j * D);
    for (int c = 1; c < NC; ++c) acc += qv[c] * load16(K + j * D + 16 * c);
    f32x16 parts[16] = {acc};
    S[j] = scale * lane_sums16(parts)[0];
  }
}

// o = sum_j P[j] V[j] over the L rows of V (L x 16 NC).
template <int NC>
void row_values(float* o, const float* P, const float* V, int64_t L) {
  constexpr int64_t D = 16 * NC;
  f32x16 acc[NC] = {};
  for (int64_t j = 0; j < L; ++j)
    for (int c = 0; c < NC; ++c) acc[c] += P[j] * load16(V + j * D + 16 * c);
  std::memcpy(o, acc, sizeof acc);
}

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
  const float scale = s.score_scale();
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
          for (int64_t i = 0; i < nq; ++i) {
            if (D == 64) {
              row_scores<4>(S + i * L, qh + i * ld_q, K, L, scale);
            } else if (D == 128) {
              row_scores<8>(S + i * L, qh + i * ld_q, K, L, scale);
            } else {
              for (int64_t j = 0; j < L; ++j) {
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int64_t d = 0; d < D; ++d) dot += qh[i * ld_q + d] * K[j * D + d];
                S[i * L + j] = scale * dot;
              }
            }
          }
        } else {
          cpu::gemm(nq, L, D, scale, cpu::row_major(qh, ld_q), cpu::transposed(K, D), false, S, L);
        }
        for (int64_t i = 0; i < nq; ++i) {
          const int64_t a = key_lo(p0 + i) - kmin, e = p0 + i - kmin + 1;
          float* __restrict row = S + i * L;
          if (s.softcap > 0.0f)
            for (int64_t j = a; j < e; ++j) row[j] = s.softcap * std::tanh(row[j] / s.softcap);
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
            if (D == 64) {
              row_values<4>(orow, S + i * L, V, L);
            } else if (D == 128) {
              row_values<8>(orow, S + i * L, V, L);
            } else {
              std::fill(orow, orow + D, 0.0f);
              for (int64_t j = 0; j < L; ++j) {
                const float p = S[i * L + j];
#pragma omp simd
                for (int64_t d = 0; d < D; ++d) orow[d] += p * V[j * D + d];
              }
            }
          }
        } else {
          cpu::gemm(nq, D, L, 1.0f, cpu::row_major(S, L), cpu::row_major(V, D), false, o, ldo);
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

}  // namespace rlhf::kernels::cpu
