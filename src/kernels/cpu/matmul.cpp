// Dense layers: out = inp @ weight^T + bias, forward and backward, on the GEMM of gemm.h, and
// a weight-streaming product for the few rows of a decode step.
//
// Weights are stored PyTorch-style as (OC, C) row-major, so the forward multiplies by the
// transpose.
#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::cpu {

namespace {

using cpu::f32x16;
using cpu::lane_sum;
using cpu::load16;

// Rows up to which a product streams the weights instead of calling the GEMM. A decode step
// multiplies a handful of rows by every weight: the cost is reading the weights once, and the
// GEMM would first copy (pack) each weight panel, reading and writing it again.
constexpr int64_t kStreamRows = 32;
constexpr int64_t kLanes = 16;  // of cpu::f32x16

// Weight rows per tile, and how far ahead (in weight rows) the next tiles' weights are
// prefetched: the stream from memory is what bounds a decode step, and the hardware prefetcher
// alone kept it at about half of what the memory delivers (bench/run_generate.sh).
constexpr int64_t kTileW = 2;
constexpr int64_t kPrefetchRows = 16;

// p[0, count) in lanes [lane, lane + count) of a zero vector.
f32x16 load_partial(const float* p, int64_t lane, int64_t count) {
#if defined(__AVX512F__)
  // Masked-off lanes are never read, so the load may start before p.
  const auto mask = static_cast<__mmask16>(((1u << count) - 1) << lane);
  const auto* start = reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(p) - lane * sizeof(float));
  return reinterpret_cast<f32x16>(_mm512_maskz_loadu_ps(mask, start));
#else
  f32x16 v = {};
  for (int64_t i = 0; i < count; ++i) v[lane + i] = p[i];
  return v;
#endif
}

// Where a row's vector loads start and end: `head` elements in (on a cache line of the weights
// when every row starts at the same offset in its line), `tail` the elements past the last
// whole vector. The partial vectors at both ends carry their elements in the lanes the whole
// vectors would give them: element c in lane (c - head) mod 16.
struct RowSplit {
  int64_t head, body_end, tail;
};

// The partial first and last vectors of input row x.
struct RowEnds {
  f32x16 first, last;
};

RowEnds row_ends(const float* x, const RowSplit& s) {
  return {load_partial(x, kLanes - s.head, s.head), load_partial(x + s.body_end, 0, s.tail)};
}

// out[r * kTileW + k] = x[r] . w[k] over C for RX input rows and kTileW weight rows: RX * kTileW
// vector accumulators stay in registers, each weight vector is loaded once per tile and each
// input vector once per kTileW weight rows. Each lane of an accumulator sums one class of
// c mod 16 in increasing c, and lane_sum gives the same bits for every rotation of the lanes, so
// the result does not depend on where the weights sit in memory (which moves `head`): a resumed
// run must reproduce an uninterrupted one bit for bit.
template <int RX>
void dot_tile(float* out, const float* const* x, const RowEnds* x_ends, const float* const* w, const RowSplit& s,
              bool prefetch) {
  f32x16 acc[RX][kTileW] = {};
  auto add_ends = [&](bool first) {
    for (int k = 0; k < kTileW; ++k) {
      const f32x16 wv = first ? load_partial(w[k], kLanes - s.head, s.head) : load_partial(w[k] + s.body_end, 0, s.tail);
      for (int r = 0; r < RX; ++r) acc[r][k] += (first ? x_ends[r].first : x_ends[r].last) * wv;
    }
  };
  if (s.head > 0) add_ends(true);
  const int64_t C = s.body_end + s.tail;
  for (int64_t c = s.head; c < s.body_end; c += kLanes) {
    f32x16 wv[kTileW];
    for (int k = 0; k < kTileW; ++k) {
      wv[k] = load16(w[k] + c);
      if (prefetch) __builtin_prefetch(w[k] + kPrefetchRows * C + c);
    }
    for (int r = 0; r < RX; ++r) {
      const f32x16 xv = load16(x[r] + c);
      for (int k = 0; k < kTileW; ++k) acc[r][k] += xv * wv[k];
    }
  }
  if (s.tail > 0) add_ends(false);
  for (int r = 0; r < RX; ++r)
    for (int k = 0; k < kTileW; ++k) out[r * kTileW + k] = lane_sum(acc[r][k]);
}

// out = inp @ weight^T + bias for N <= kStreamRows: each thread walks its share of the weight rows
// once, kTileW rows at a time, against all input rows.
void matmul_forward_streaming(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                              int64_t C, int64_t OC) {
  // Rows start on a common cache-line offset only when C is a multiple of the line.
  const int64_t misaligned = static_cast<int64_t>(reinterpret_cast<uintptr_t>(weight) / sizeof(float) % kLanes);
  const int64_t head = C % kLanes == 0 && C >= kLanes ? (kLanes - misaligned) % kLanes : 0;
  const int64_t body_end = head + (C - head) / kLanes * kLanes;
  const RowSplit split{head, body_end, C - body_end};
  // The input rows are staged at the weights' offset in a cache line, so that the vector loads
  // of both are whole lines (a load split across two lines costs two, and was half the time).
  thread_local std::vector<float> staging;
  const int64_t stride = (C + kLanes - 1) / kLanes * kLanes;
  staging.resize(N * stride + kLanes);
  const int64_t base_offset = static_cast<int64_t>(reinterpret_cast<uintptr_t>(staging.data()) / sizeof(float) % kLanes);
  float* xs = staging.data() + (2 * kLanes - base_offset - head) % kLanes;
  RowEnds x_ends[kStreamRows];
  for (int64_t n = 0; n < N; ++n) {
    std::copy(inp + n * C, inp + (n + 1) * C, xs + n * stride);
    x_ends[n] = row_ends(xs + n * stride, split);
  }
  const int64_t n_tiles = (OC + kTileW - 1) / kTileW;
#pragma omp parallel for schedule(static) if (OC * C > 65536)
  for (int64_t t = 0; t < n_tiles; ++t) {
    const int64_t o = t * kTileW, nw = std::min(kTileW, OC - o);
    const float* w[kTileW];
    for (int64_t k = 0; k < kTileW; ++k) w[k] = weight + (o + std::min(k, nw - 1)) * C;  // a short last tile repeats
    // Only the first row block reads the weights from memory; later ones find them in L1.
    for (int64_t n0 = 0; n0 < N; n0 += 8) {
      const int64_t nx = std::min<int64_t>(8, N - n0);
      const float* x[8];
      for (int64_t r = 0; r < nx; ++r) x[r] = xs + (n0 + r) * stride;
      float tile[8 * kTileW];
      const bool prefetch = n0 == 0 && t + kPrefetchRows / kTileW < n_tiles;
      const RowEnds* ends = x_ends + n0;
      switch (nx) {
        case 1: dot_tile<1>(tile, x, ends, w, split, prefetch); break;
        case 2: dot_tile<2>(tile, x, ends, w, split, prefetch); break;
        case 3: dot_tile<3>(tile, x, ends, w, split, prefetch); break;
        case 4: dot_tile<4>(tile, x, ends, w, split, prefetch); break;
        case 5: dot_tile<5>(tile, x, ends, w, split, prefetch); break;
        case 6: dot_tile<6>(tile, x, ends, w, split, prefetch); break;
        case 7: dot_tile<7>(tile, x, ends, w, split, prefetch); break;
        default: dot_tile<8>(tile, x, ends, w, split, prefetch); break;
      }
      for (int64_t r = 0; r < nx; ++r)
        for (int64_t k = 0; k < nw; ++k) out[(n0 + r) * OC + o + k] = tile[r * kTileW + k] + (bias ? bias[o + k] : 0.0f);
    }
  }
}

}  // namespace

// out (N, OC) = inp (N, C) @ weight^T (C, OC) + bias. The bias is broadcast into out first and
// the product accumulated on top, which costs one write pass but no extra read.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC, const cpu::PackedB* packed) {
  const bool use_packed = packed && N >= kPackedMinRows;
  if (N <= kStreamRows && !use_packed) return matmul_forward_streaming(out, inp, weight, bias, N, C, OC);
  if (bias) {
#pragma omp parallel for if (N * OC > 32768)
    for (int64_t n = 0; n < N; ++n) std::copy(bias, bias + OC, out + n * OC);
  }
  if (use_packed)
    cpu::gemm(N, 1.0f, cpu::row_major(inp, C), *packed, bias != nullptr, out, OC);
  else
    cpu::gemm(N, OC, C, 1.0f, cpu::row_major(inp, C), cpu::transposed(weight, C), bias != nullptr, out, OC);
}

cpu::PackedB pack_weight(const float* weight, int64_t C, int64_t OC) {
  return cpu::PackedB(cpu::transposed(weight, C), C, OC);
}

// With Y = X W^T + 1 b^T:  dX = dY W,  dW = dY^T X,  db = colsum(dY)  (accumulated; dX overwritten on request).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, Grad dinp_mode) {
  if (dinp)
    cpu::gemm(N, C, OC, 1.0f, cpu::row_major(dout, OC), cpu::row_major(weight, C), dinp_mode == Grad::add, dinp, C);
  if (dweight) cpu::gemm(OC, C, N, 1.0f, cpu::transposed(dout, OC), cpu::row_major(inp, C), true, dweight, C);
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

}  // namespace rlhf::kernels::cpu
