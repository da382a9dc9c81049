// Causal multi-head / grouped-query attention, flash-style: forward saves only the row
// log-sum-exp, the backward recomputes the probabilities from q, k and lse.
//
// Work unit: one (batch row b, kv head): its keys and values are packed once (cpu::PackedB: K^T
// and V for the forward; K^T, V^T and K for the backward) and serve every query head of its group
// and every tile of kTileQ query rows. A tile needs the keys [kmin, t_last], kmin the smallest first
// key of its rows, taken from the panel boundary at or below kmin: so the products skip the keys
// that causality (or the window) hides from the whole tile, and a tile's scores (kTileQ x L floats,
// L <= T) live in per-thread scratch, where keys outside a row's own range [lo(t), t] are masked.
// The products are our GEMM on blocks of the packed operands and strided sub-matrices of qkv,
// single-threaded inside our OpenMP loop. (The previous per-block GEMMs, packing their operands
// for each product in 64-row query blocks, took 13% longer forward and 8% longer backward at a
// PPO batch's shape, 32 rows x 82 tokens with 4 heads of 64.)
//
// Not done here: key-blocked online softmax (scores of one query tile against all its keys are
// held at once), and splitting one (b, kv head) backward across threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"
#include "tensor/error.h"

namespace rlhf::kernels::cpu {
namespace {

constexpr int64_t kTileQ = 24;

// Strides and base pointers of one attention call.
struct Geometry {
  int64_t B, T, D, H, KV, group, ld, ldo;  // ld: floats per token in qkv; ldo: in out
  int window;
  float scale, softcap;
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
        scale(s.score_scale()),
        softcap(s.softcap) {}
  int64_t q_off(int64_t b, int64_t h) const { return b * T * ld + h * D; }
  int64_t k_off(int64_t b, int64_t g) const { return b * T * ld + (H + g) * D; }
  int64_t v_off(int64_t b, int64_t g) const { return b * T * ld + (H + KV + g) * D; }
  int64_t o_off(int64_t b, int64_t h) const { return b * T * ldo + h * D; }
  int64_t n_tiles() const { return (T + kTileQ - 1) / kTileQ; }
  // First key of query t (seg points at the row's seg_start).
  int64_t key_lo(const int32_t* seg, int64_t t) const {
    int64_t lo = seg[t];
    if (window > 0) lo = std::max(lo, t - window + 1);
    return lo;
  }
};

// Keys a tile's scores can span: all T, or with a window its reach rounded out to whole panels.
int64_t max_keys(const AttentionShape& s) {
  const int64_t w = cpu::PackedB::panel_width();
  return s.sliding_window > 0 ? std::min<int64_t>(s.T, kTileQ + s.sliding_window - 1 + w - 1) : s.T;
}

// Per thread: scores/probabilities and dP/dS (kTileQ x max_keys each), two per-row vectors, and
// with a soft-cap the cap's derivative per score.
int64_t per_thread_floats(const AttentionShape& s) {
  const int64_t tq = std::min<int64_t>(kTileQ, s.T);
  return (s.softcap > 0.0f ? 3 : 2) * tq * max_keys(s) + 2 * tq;
}

// Gemma 2's soft-cap on the scores row[a, e): cap * tanh(row / cap); with `slope`, also its
// derivative 1 - tanh^2 there.
void soft_cap(float* __restrict row, float* __restrict slope, int64_t a, int64_t e, float cap) {
  for (int64_t j = a; j < e; ++j) {
    const float th = std::tanh(row[j] / cap);
    row[j] = cap * th;
    if (slope) slope[j] = 1.0f - th * th;
  }
}

// A tile of query rows [t0, t0 + nq) and its keys [j0, j0 + L) (j0 a panel boundary).
struct Tile {
  int64_t t0, nq, j0, L;
};

Tile make_tile(const Geometry& g, const int32_t* seg, int64_t index) {
  Tile tl;
  tl.t0 = index * kTileQ;
  tl.nq = std::min(kTileQ, g.T - tl.t0);
  int64_t kmin = tl.t0;
  for (int64_t t = tl.t0; t < tl.t0 + tl.nq; ++t) kmin = std::min(kmin, g.key_lo(seg, t));
  const int64_t w = cpu::PackedB::panel_width();
  tl.j0 = kmin / w * w;
  tl.L = tl.t0 + tl.nq - tl.j0;
  return tl;
}

// One (b, kv head)'s packed keys and values, per thread (kept, so packing allocates only when a
// call's heads are larger than any before).
struct HeadPacks {
  cpu::PackedB k_t, v, v_t, k;
};

HeadPacks& head_packs() {
  thread_local HeadPacks packs;
  return packs;
}

// S (nq x L) = scale * Q_tile K^T[:, j0 : j0 + L]  (k_t: K^T of the row's head, D x T).
void tile_scores(float* S, const float* q, const cpu::PackedB& k_t, const Geometry& g, const Tile& tl) {
  cpu::gemm(tl.nq, g.scale, cpu::row_major(q + tl.t0 * g.ld, g.ld), k_t, 0, g.D, tl.j0, tl.j0 + tl.L, false, S,
            tl.L);
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
  const int64_t per_thread = per_thread_floats(s), nt = g.n_tiles(), heads = g.B * g.KV;
  // Where rows x kv heads are too few to keep every thread busy, a head's tiles are dealt out
  // over several tasks (each packs the head itself).
  const int64_t parts = std::min(nt, (4 * omp_get_max_threads() + heads - 1) / heads);
#pragma omp parallel
  {
    float* S = scratch + omp_get_thread_num() * per_thread;
    float* inv_sum = S + 2 * std::min<int64_t>(kTileQ, g.T) * max_keys(s);
    HeadPacks& hp = head_packs();
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < heads * parts; ++task) {
      const int64_t b = task / parts / g.KV, kvh = task / parts % g.KV, part = task % parts;
      const int32_t* seg = seg_start + b * g.T;
      hp.k_t.pack(cpu::transposed(qkv + g.k_off(b, kvh), g.ld), g.D, g.T);
      hp.v.pack(cpu::row_major(qkv + g.v_off(b, kvh), g.ld), g.T, g.D);
      for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
        const float* q = qkv + g.q_off(b, h);
        float* lse_row = lse + (b * g.H + h) * g.T;
        for (int64_t ti = part; ti < nt; ti += parts) {
          const Tile tl = make_tile(g, seg, ti);
          tile_scores(S, q, hp.k_t, g, tl);
          for (int64_t i = 0; i < tl.nq; ++i) {
            const int64_t t = tl.t0 + i, a = g.key_lo(seg, t) - tl.j0, e = t - tl.j0 + 1;
            float* __restrict row = S + i * tl.L;
            if (g.softcap > 0.0f) soft_cap(row, nullptr, a, e, g.softcap);
            float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
            for (int64_t j = a; j < e; ++j) m = std::max(m, row[j]);
            // One pass over the whole row, masked keys set to 0 (two fills per row were a memset
            // call each, which cost more than the exponentials they spare).
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < tl.L; ++j) {
              const float p = j >= a && j < e ? cpu::fast_expf(row[j] - m) : 0.0f;
              row[j] = p;
              sum += p;
            }
            lse_row[t] = m + std::log(sum);
            inv_sum[i] = 1.0f / sum;
          }
          float* o = out + g.o_off(b, h) + tl.t0 * g.ldo;
          cpu::gemm(tl.nq, 1.0f, cpu::row_major(S, tl.L), hp.v, tl.j0, tl.j0 + tl.L, 0, g.D, false, o, g.ldo);
          for (int64_t i = 0; i < tl.nq; ++i) {
            float* __restrict orow = o + i * g.ldo;
            const float r = inv_sum[i];
#pragma omp simd
            for (int64_t d = 0; d < g.D; ++d) orow[d] *= r;
          }
        }
      }
    }
  }
}

// With S = scale Q K^T (soft-capped: cap tanh(S / cap)), P = softmax_rows(S) (recomputed as
// exp(S - lse)), O = P V:
//   dV = P^T dO,  dP = dO V^T,
//   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) = P_ij (dP_ij - D_i),  D_i = dO_i . O_i
//     (softmax backward; sum_k P_ik dO_i.V_k = dO_i.O_i),
//   dQ = scale dS K,  dK = scale dS^T Q.
// Parallel over (b, kv head): one thread handles every query head of the group and every query
// tile, so it alone zeroes and accumulates that group's dK/dV rows and writes its heads' dQ rows
// (each tile's once).
void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        const int32_t* seg_start, const AttentionShape& s, float* scratch) {
  check_inputs(seg_start, s);
  const Geometry g(s);
  const int64_t per_thread = per_thread_floats(s), nt = g.n_tiles();
  const int64_t sc_len = std::min<int64_t>(kTileQ, g.T) * max_keys(s);
#pragma omp parallel
  {
    float* P = scratch + omp_get_thread_num() * per_thread;
    float* dS = P + sc_len;
    float* Di = dS + sc_len;
    float* slope = g.softcap > 0.0f ? Di + std::min<int64_t>(kTileQ, g.T) * 2 : nullptr;  // d cap(z) / dz
    HeadPacks& hp = head_packs();
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < g.B * g.KV; ++task) {
      const int64_t b = task / g.KV, kvh = task % g.KV;
      const int32_t* seg = seg_start + b * g.T;
      const float* k = qkv + g.k_off(b, kvh);
      const float* v = qkv + g.v_off(b, kvh);
      hp.k_t.pack(cpu::transposed(k, g.ld), g.D, g.T);
      hp.v_t.pack(cpu::transposed(v, g.ld), g.D, g.T);
      hp.k.pack(cpu::row_major(k, g.ld), g.T, g.D);
      float* dk = dqkv + g.k_off(b, kvh);
      float* dv = dqkv + g.v_off(b, kvh);
      for (int64_t t = 0; t < g.T; ++t) {
        // (A memset call per head_dim floats cost more than the stores.)
        float* __restrict zk = dk + t * g.ld;
        float* __restrict zv = dv + t * g.ld;
#pragma omp simd
        for (int64_t d = 0; d < g.D; ++d) zk[d] = zv[d] = 0.0f;
      }
      for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
        const float* q = qkv + g.q_off(b, h);
        float* dq = dqkv + g.q_off(b, h);
        const float* lse_row = lse + (b * g.H + h) * g.T;
        for (int64_t ti = 0; ti < nt; ++ti) {
          const Tile tl = make_tile(g, seg, ti);
          const float* dO = dout + g.o_off(b, h) + tl.t0 * g.ldo;
          const float* O = out + g.o_off(b, h) + tl.t0 * g.ldo;
          tile_scores(P, q, hp.k_t, g, tl);
          for (int64_t i = 0; i < tl.nq; ++i) {
            const int64_t t = tl.t0 + i, a = g.key_lo(seg, t) - tl.j0, e = t - tl.j0 + 1;
            float* __restrict row = P + i * tl.L;
            const float l = lse_row[t];
            if (slope) soft_cap(row, slope + i * tl.L, a, e, g.softcap);
#pragma omp simd
            for (int64_t j = 0; j < tl.L; ++j) row[j] = j >= a && j < e ? cpu::fast_expf(row[j] - l) : 0.0f;
            const float* __restrict dorow = dO + i * g.ldo;
            const float* __restrict orow = O + i * g.ldo;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < g.D; ++d) dot += dorow[d] * orow[d];
            Di[i] = dot;
          }
          // dV[j0:] += P^T dO
          cpu::gemm(tl.L, g.D, tl.nq, 1.0f, cpu::transposed(P, tl.L), cpu::row_major(dO, g.ldo), true,
                    dv + tl.j0 * g.ld, g.ld);
          // dP = dO V^T, then dS = P (dP - D) in place
          cpu::gemm(tl.nq, 1.0f, cpu::row_major(dO, g.ldo), hp.v_t, 0, g.D, tl.j0, tl.j0 + tl.L, false, dS, tl.L);
          for (int64_t i = 0; i < tl.nq; ++i) {
            float* __restrict ds = dS + i * tl.L;
            const float* __restrict p = P + i * tl.L;
            const float di = Di[i];
#pragma omp simd
            for (int64_t j = 0; j < tl.L; ++j) ds[j] = p[j] * (ds[j] - di);
            if (slope) {  // through the soft-cap: d z = d s * (1 - tanh^2), keys outside [a, e) have p = 0
              const int64_t t = tl.t0 + i, a = g.key_lo(seg, t) - tl.j0, e = t - tl.j0 + 1;
              for (int64_t j = a; j < e; ++j) ds[j] *= slope[i * tl.L + j];
            }
          }
          // dQ_tile = scale dS K[j0:],  dK[j0:] += scale dS^T Q_tile
          cpu::gemm(tl.nq, g.scale, cpu::row_major(dS, tl.L), hp.k, tl.j0, tl.j0 + tl.L, 0, g.D, false,
                    dq + tl.t0 * g.ld, g.ld);
          cpu::gemm(tl.L, g.D, tl.nq, g.scale, cpu::transposed(dS, tl.L), cpu::row_major(q + tl.t0 * g.ld, g.ld),
                    true, dk + tl.j0 * g.ld, g.ld);
        }
      }
    }
  }
}

}  // namespace rlhf::kernels::cpu
