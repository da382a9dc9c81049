// Causal multi-head / grouped-query attention, flash-style: forward saves only the row
// log-sum-exp, the backward recomputes the probabilities from q, k and lse.
//
// Work unit: a block of up to kBlockQ query rows of one (batch row b, query head h). The block
// needs the keys [kmin, t_last] where kmin is the smallest first key of its rows; scores for that
// key range live in per-thread scratch (kBlockQ x L floats, L <= T, or <= kBlockQ + window - 1
// with a sliding window), and keys outside a row's own range [lo(t), t] are masked. The products
// are our GEMM (gemm.h) on strided sub-matrices of qkv, single-threaded inside our OpenMP loop
// (OpenBLAS, which they were on, took a twelfth of a PPO step for them, ours a fourteenth).
//
// Not done here: key-blocked online softmax (scores of one query block against all its keys
// are held at once), and splitting one (b, kv head) backward across threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf::kernels {
namespace {

constexpr int64_t kBlockQ = 64;

// Strides and base pointers of one attention call.
struct Geometry {
  int64_t B, T, D, H, KV, group, ld, ldo;  // ld: floats per token in qkv; ldo: in out
  int window;
  float scale;
  explicit Geometry(const AttentionShape& s)
      : B(s.B),
        T(s.T),
        D(s.head_dim),
        H(s.n_heads),
        KV(s.n_kv_heads),
        group(s.n_heads / s.n_kv_heads),
        ld((s.n_heads + 2 * int64_t{s.n_kv_heads}) * s.head_dim),
        ldo(int64_t{s.n_heads} * s.head_dim),
        window(s.sliding_window),
        scale(1.0f / std::sqrt(static_cast<float>(s.head_dim))) {}
  int64_t q_off(int64_t b, int64_t h) const { return b * T * ld + h * D; }
  int64_t k_off(int64_t b, int64_t g) const { return b * T * ld + (H + g) * D; }
  int64_t v_off(int64_t b, int64_t g) const { return b * T * ld + (H + KV + g) * D; }
  int64_t o_off(int64_t b, int64_t h) const { return b * T * ldo + h * D; }
  int64_t n_blocks() const { return (T + kBlockQ - 1) / kBlockQ; }
  // First key of query t (seg points at the row's seg_start).
  int64_t key_lo(const int32_t* seg, int64_t t) const {
    int64_t lo = seg[t];
    if (window > 0) lo = std::max(lo, t - window + 1);
    return lo;
  }
};

int64_t max_keys(const AttentionShape& s) {
  return s.sliding_window > 0 ? std::min<int64_t>(s.T, kBlockQ + s.sliding_window - 1) : s.T;
}

// Per thread: scores/probabilities (kBlockQ x L), dP/dS (kBlockQ x L), two per-row vectors.
int64_t per_thread_floats(const AttentionShape& s) {
  const int64_t bq = std::min<int64_t>(kBlockQ, s.T);
  return 2 * bq * max_keys(s) + 2 * bq;
}

// A block of query rows [t0, t0 + nq) and its key range [kmin, kmin + L).
struct Block {
  int64_t t0, nq, kmin, L;
};

Block make_block(const Geometry& g, const int32_t* seg, int64_t qb) {
  Block blk;
  blk.t0 = qb * kBlockQ;
  blk.nq = std::min(kBlockQ, g.T - blk.t0);
  blk.kmin = blk.t0;
  for (int64_t t = blk.t0; t < blk.t0 + blk.nq; ++t) blk.kmin = std::min(blk.kmin, g.key_lo(seg, t));
  blk.L = blk.t0 + blk.nq - blk.kmin;
  return blk;
}

// S (nq x L) = scale * Q_blk K_range^T.
void block_scores(float* S, const float* q, const float* k, const Geometry& g, const Block& blk) {
  cpu::gemm(blk.nq, blk.L, g.D, g.scale, cpu::row_major(q + blk.t0 * g.ld, g.ld),
            cpu::transposed(k + blk.kmin * g.ld, g.ld), false, S, blk.L);
}

// Every query needs a non-empty key range: 0 <= seg_start[t] <= t (and a sane head layout).
void check_inputs(const int32_t* seg_start, const AttentionShape& s) {
  RLHF_CHECK(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0 && s.head_dim > 0 && s.sliding_window >= 0,
             "attention: bad shape: n_heads " + std::to_string(s.n_heads) + ", n_kv_heads " +
                 std::to_string(s.n_kv_heads) + ", head_dim " + std::to_string(s.head_dim) + ", sliding_window " +
                 std::to_string(s.sliding_window));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t) {
      const int32_t st = seg_start[b * s.T + t];
      RLHF_CHECK(st >= 0 && st <= t, "attention: seg_start[" + std::to_string(b) + ", " + std::to_string(t) +
                                         "] = " + std::to_string(st) + " is outside [0, t]");
    }
}

}  // namespace

int64_t attention_scratch_floats(const AttentionShape& s) {
  // One slice per OpenMP thread; the kernels index it by omp_get_thread_num(), so the thread
  // count must not grow between sizing the scratch and calling the kernels.
  return static_cast<int64_t>(omp_get_max_threads()) * per_thread_floats(s);
}

// Per query row t (keys j in [lo, t]): s_j = scale q_t.k_j, m = max s, p_j = exp(s_j - m),
// lse_t = m + log sum p, out_t = (sum_j p_j v_j) / sum p. The unnormalised P V product is
// rescaled per row afterwards (D floats per row instead of L).
void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg_start, const AttentionShape& s,
                       float* scratch) {
  check_inputs(seg_start, s);
  const Geometry g(s);
  const int64_t per_thread = per_thread_floats(s), nb = g.n_blocks(), BH = g.B * g.H;
#pragma omp parallel
  {
    float* S = scratch + omp_get_thread_num() * per_thread;
    float* inv_sum = S + 2 * std::min<int64_t>(kBlockQ, g.T) * max_keys(s);
    // Largest blocks (the last query rows) first, for the dynamic schedule's load balance.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < nb * BH; ++task) {
      const int64_t qb = nb - 1 - task / BH, b = (task % BH) / g.H, h = task % g.H, kvh = h / g.group;
      const int32_t* seg = seg_start + b * g.T;
      const Block blk = make_block(g, seg, qb);
      const float* q = qkv + g.q_off(b, h);
      block_scores(S, q, qkv + g.k_off(b, kvh), g, blk);
      float* lse_row = lse + (b * g.H + h) * g.T;
      for (int64_t i = 0; i < blk.nq; ++i) {
        const int64_t t = blk.t0 + i, a = g.key_lo(seg, t) - blk.kmin, e = t - blk.kmin + 1;
        float* __restrict row = S + i * blk.L;
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
        std::fill(row + e, row + blk.L, 0.0f);
        lse_row[t] = m + std::log(sum);
        inv_sum[i] = 1.0f / sum;
      }
      float* o = out + g.o_off(b, h) + blk.t0 * g.ldo;
      cpu::gemm(blk.nq, g.D, blk.L, 1.0f, cpu::row_major(S, blk.L),
                cpu::row_major(qkv + g.v_off(b, kvh) + blk.kmin * g.ld, g.ld), false, o, g.ldo);
      for (int64_t i = 0; i < blk.nq; ++i) {
        float* __restrict orow = o + i * g.ldo;
        const float r = inv_sum[i];
#pragma omp simd
        for (int64_t d = 0; d < g.D; ++d) orow[d] *= r;
      }
    }
  }
}

// With S = scale Q K^T, P = softmax_rows(S) (recomputed as exp(S - lse)), O = P V:
//   dV = P^T dO,  dP = dO V^T,
//   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) = P_ij (dP_ij - D_i),  D_i = dO_i . O_i
//     (softmax backward; sum_k P_ik dO_i.V_k = dO_i.O_i),
//   dQ = scale dS K,  dK = scale dS^T Q.
// Parallel over (b, kv head): one thread handles every query head of the group and every query
// block, so it alone accumulates into that group's dK/dV rows (and its heads' dQ rows).
void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        const int32_t* seg_start, const AttentionShape& s, float* scratch) {
  check_inputs(seg_start, s);
  const Geometry g(s);
  const int64_t per_thread = per_thread_floats(s), nb = g.n_blocks();
  const int64_t bq_max = std::min<int64_t>(kBlockQ, g.T), sc_len = bq_max * max_keys(s);
#pragma omp parallel
  {
    float* P = scratch + omp_get_thread_num() * per_thread;
    float* dS = P + sc_len;
    float* Di = dS + sc_len;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < g.B * g.KV; ++task) {
      const int64_t b = task / g.KV, kvh = task % g.KV;
      const int32_t* seg = seg_start + b * g.T;
      const float* k = qkv + g.k_off(b, kvh);
      const float* v = qkv + g.v_off(b, kvh);
      float* dk = dqkv + g.k_off(b, kvh);
      float* dv = dqkv + g.v_off(b, kvh);
      for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
        const float* q = qkv + g.q_off(b, h);
        float* dq = dqkv + g.q_off(b, h);
        const float* lse_row = lse + (b * g.H + h) * g.T;
        for (int64_t qb = 0; qb < nb; ++qb) {
          const Block blk = make_block(g, seg, qb);
          const float* dO = dout + g.o_off(b, h) + blk.t0 * g.ldo;
          const float* O = out + g.o_off(b, h) + blk.t0 * g.ldo;
          block_scores(P, q, k, g, blk);
          for (int64_t i = 0; i < blk.nq; ++i) {
            const int64_t t = blk.t0 + i, a = g.key_lo(seg, t) - blk.kmin, e = t - blk.kmin + 1;
            float* __restrict row = P + i * blk.L;
            const float l = lse_row[t];
#pragma omp simd
            for (int64_t j = a; j < e; ++j) row[j] = cpu::fast_expf(row[j] - l);
            std::fill(row, row + a, 0.0f);
            std::fill(row + e, row + blk.L, 0.0f);
            const float* __restrict dorow = dO + i * g.ldo;
            const float* __restrict orow = O + i * g.ldo;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < g.D; ++d) dot += dorow[d] * orow[d];
            Di[i] = dot;
          }
          // dV[kmin:] += P^T dO
          cpu::gemm(blk.L, g.D, blk.nq, 1.0f, cpu::transposed(P, blk.L), cpu::row_major(dO, g.ldo), true,
                    dv + blk.kmin * g.ld, g.ld);
          // dP = dO V^T, then dS = P (dP - D) in place
          cpu::gemm(blk.nq, blk.L, g.D, 1.0f, cpu::row_major(dO, g.ldo), cpu::transposed(v + blk.kmin * g.ld, g.ld),
                    false, dS, blk.L);
          for (int64_t i = 0; i < blk.nq; ++i) {
            float* __restrict ds = dS + i * blk.L;
            const float* __restrict p = P + i * blk.L;
            const float di = Di[i];
#pragma omp simd
            for (int64_t j = 0; j < blk.L; ++j) ds[j] = p[j] * (ds[j] - di);
          }
          // dQ_blk += scale dS K,  dK[kmin:] += scale dS^T Q_blk
          cpu::gemm(blk.nq, g.D, blk.L, g.scale, cpu::row_major(dS, blk.L), cpu::row_major(k + blk.kmin * g.ld, g.ld),
                    true, dq + blk.t0 * g.ld, g.ld);
          cpu::gemm(blk.L, g.D, blk.nq, g.scale, cpu::transposed(dS, blk.L), cpu::row_major(q + blk.t0 * g.ld, g.ld),
                    true, dk + blk.kmin * g.ld, g.ld);
        }
      }
    }
  }
}

}  // namespace rlhf::kernels
