// The GEMM of gemm.h, organised as in BLIS (Van Zee & van de Geijn): B is packed in K-blocks
// of kKc rows into panels of kNr columns, and a register-tiled micro-kernel multiplies kMr rows
// of A (per block of kMc rows) by one B panel. Packing B absorbs its layout (row-major,
// transposed); A is read in place where one of its strides is 1 (the micro-kernel broadcasts
// its elements one at a time, so either layout serves, and packing A was a twentieth of a
// training step) and packed only at the edge. So one micro-kernel serves the forward (A B^T)
// and both backward products (A B, A^T B).
#include "kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "tensor/error.h"

namespace rlhf::kernels::cpu {

namespace {

// The micro-tile is kMr x kNr = kMr x 2 vectors: 2 kMr accumulators, two B vectors and a
// broadcast A value must fit the register file (32 AVX-512 registers, 16 AVX ones).
#if defined(__AVX512F__)
#define RLHF_GEMM_LANES 16
constexpr int kMr = 12;
#elif defined(__AVX__)
#define RLHF_GEMM_LANES 8
constexpr int kMr = 6;
#else
#define RLHF_GEMM_LANES 4
constexpr int kMr = 6;
#endif
typedef float Vec __attribute__((vector_size(RLHF_GEMM_LANES * sizeof(float))));
constexpr int kLanes = RLHF_GEMM_LANES;
constexpr int kNr = 2 * kLanes;

// Cache blocking: a B panel (kKc x kNr) stays in L1 while the A panels of an M block
// (kMc x kKc) stream from L2; the packed B block (kKc x kNc) sits in L3.
constexpr int64_t kKc = 256;
constexpr int64_t kMc = 12 * kMr;
constexpr int64_t kNc = 4096;

Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }

// c (mr x nr of an MR x kNr tile, mr <= MR <= kMr) = alpha * A bp (+ c): A's element (i, k) at
// a[i * is + k * ks] (a packed panel: is 1, ks kMr; or A in place), bp kc x kNr. IS / KS > 0 fix
// is / ks at compile time. MR < kMr serves a packed edge panel of few rows (a decode step's 16
// rows are 12 + 4), which would otherwise cost a whole tile.
template <int IS, int KS, int MR = kMr>
void micro_kernel(int64_t kc, const float* __restrict a, int64_t is, int64_t ks, const float* __restrict bp,
                  float* c, int64_t ldc, float alpha, bool accumulate, int mr, int nr) {
  if (IS > 0) is = IS;
  if (KS > 0) ks = KS;
  Vec acc[MR][2] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const Vec b0 = load(bp + k * kNr), b1 = load(bp + k * kNr + kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float av = a[i * is + k * ks];
      acc[i][0] += av * b0;
      acc[i][1] += av * b1;
    }
  }
  if (mr == MR && nr == kNr) {
    for (int i = 0; i < MR; ++i) {
      float* row = c + i * ldc;
      store(row, alpha * acc[i][0] + (accumulate ? load(row) : Vec{}));
      store(row + kLanes, alpha * acc[i][1] + (accumulate ? load(row + kLanes) : Vec{}));
    }
    return;
  }
  float tile[MR][kNr];  // an edge tile: only its valid part reaches C
  for (int i = 0; i < MR; ++i) {
    store(tile[i], acc[i][0]);
    store(tile[i] + kLanes, acc[i][1]);
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = alpha * tile[i][j] + (accumulate ? c[i * ldc + j] : 0.0f);
}

#if RLHF_GEMM_LANES == 16
// In place: v[j][i] becomes v[i][j] (16 x 16): 32-bit, then 64-bit interleaves within 128-bit
// quarters, then two rounds of quarter shuffles.
void transpose16(Vec* v) {
  Vec a[16], b[16];
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = __builtin_shufflevector(v[2 * i], v[2 * i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29);
    a[2 * i + 1] =
        __builtin_shufflevector(v[2 * i], v[2 * i + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
  }
  // b[4g + c], quarter q: column 4q + c of rows 4g .. 4g + 3
  for (int g = 0; g < 4; ++g) {
    const Vec &lo0 = a[4 * g], &hi0 = a[4 * g + 1], &lo1 = a[4 * g + 2], &hi1 = a[4 * g + 3];
    b[4 * g] = __builtin_shufflevector(lo0, lo1, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    b[4 * g + 1] = __builtin_shufflevector(lo0, lo1, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    b[4 * g + 2] = __builtin_shufflevector(hi0, hi1, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    b[4 * g + 3] = __builtin_shufflevector(hi0, hi1, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  }
  // Column 4q + c gathers quarter q of b[c], b[4 + c], b[8 + c], b[12 + c].
  for (int c = 0; c < 4; ++c) {
    const Vec x0 = __builtin_shufflevector(b[c], b[4 + c], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const Vec x1 = __builtin_shufflevector(b[c], b[4 + c], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    const Vec y0 = __builtin_shufflevector(b[8 + c], b[12 + c], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const Vec y1 =
        __builtin_shufflevector(b[8 + c], b[12 + c], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    v[c] = __builtin_shufflevector(x0, y0, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    v[4 + c] = __builtin_shufflevector(x0, y0, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    v[8 + c] = __builtin_shufflevector(x1, y1, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    v[12 + c] = __builtin_shufflevector(x1, y1, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  }
}
#endif

// Columns [j0, j0 + kNr) of rows [k0, k0 + kc) of B into dst (kc x kNr), zero past column N.
void pack_b_panel(float* dst, const MatrixView& B, int64_t k0, int64_t kc, int64_t j0, int64_t N) {
  const int64_t nj = std::min<int64_t>(kNr, N - j0);
  if (nj < kNr) std::fill(dst, dst + kc * kNr, 0.0f);
  if (B.col_stride == 1) {
    // A whole panel copies rows of a constant size, which the compiler turns into vector moves
    // (a variable-size memcpy is a library call per row: a twentieth of a training step).
    if (nj == kNr)
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * kNr, B.data + (k0 + k) * B.row_stride + j0, sizeof(float) * kNr);
    else
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * kNr, B.data + (k0 + k) * B.row_stride + j0, nj * sizeof(float));
  } else if (B.row_stride == 1) {  // a transposed operand: read along its rows
    int64_t k = 0;
#if RLHF_GEMM_LANES == 16
    // Whole panels 16 x 16 at a time by a register transpose instead of a store per element
    // (attention's K^T and V^T are such operands).
    if (nj == kNr)
      for (; k + kLanes <= kc; k += kLanes)
        for (int64_t half = 0; half < kNr; half += kLanes) {
          Vec rows[kLanes];
          for (int j = 0; j < kLanes; ++j) rows[j] = load(B.data + (j0 + half + j) * B.col_stride + k0 + k);
          transpose16(rows);
          for (int t = 0; t < kLanes; ++t) store(dst + (k + t) * kNr + half, rows[t]);
        }
#endif
    for (int64_t j = 0; j < nj; ++j) {
      const float* src = B.data + (j0 + j) * B.col_stride + k0;
      for (int64_t kk = k; kk < kc; ++kk) dst[kk * kNr + j] = src[kk];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = 0; j < nj; ++j) dst[k * kNr + j] = B.data[(k0 + k) * B.row_stride + (j0 + j) * B.col_stride];
  }
}


// Rows [i0, i0 + kMr) of columns [k0, k0 + kc) of A into dst (kc x kMr), zero past row M: the
// edge panel of a row-major or transposed A (whole panels are read in place), or any panel of an
// A with neither stride 1.
void pack_a_panel(float* dst, const MatrixView& A, int64_t i0, int64_t M, int64_t k0, int64_t kc) {
  const int64_t ni = std::min<int64_t>(kMr, M - i0);
  if (ni < kMr) std::fill(dst, dst + kc * kMr, 0.0f);
  for (int64_t i = 0; i < ni; ++i)
    for (int64_t k = 0; k < kc; ++k) dst[k * kMr + i] = A.data[(i0 + i) * A.row_stride + (k0 + k) * A.col_stride];
}

// This thread's packing memory (null when it cannot be had).
float* packing_buffer(size_t floats) {
  struct Buffer {
    float* data = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buf;
  if (buf.size < floats) {
    std::free(buf.data);
    buf.data = static_cast<float*>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64));
    buf.size = buf.data ? floats : 0;
  }
  return buf.data;
}

// Whether whole panels of A are read in place by the micro-kernel (one of A's strides is 1).
bool reads_a_in_place(const MatrixView& A) { return A.row_stride == 1 || A.col_stride == 1; }

// Where one thread's product finds B's panels: packed by the thread per block from a view, or
// prepacked (the block of the PackedB from row row0 and column col0 on; its rows [row0, row0 + K)
// lie in one of the PackedB's K-blocks unless row0 is 0).
struct BSource {
  const MatrixView* view;
  const PackedB* packed;
  int64_t row0, col0;
};

// The product on one thread; false when the packing memory could not be allocated.
bool gemm_one_thread(int64_t M, int64_t N, int64_t K, float alpha, const MatrixView& A, const BSource& B,
                     bool accumulate, float* C, int64_t ldc) {
  const int64_t nc_max = std::min(kNc, (N + kNr - 1) / kNr * kNr), kc_max = std::min(kKc, K);
  const int64_t mc_max = std::min(kMc, (M + kMr - 1) / kMr * kMr);
  const int64_t b_floats = B.view ? nc_max * kc_max : 0;
  float* buffer = packing_buffer(static_cast<size_t>(b_floats + mc_max * kc_max));
  if (!buffer) return false;
  float* a_pack = buffer + b_floats;
  const bool in_place = reads_a_in_place(A);  // else every A panel is packed
  for (int64_t jc = 0; jc < N; jc += kNc) {
    const int64_t nc = std::min(kNc, N - jc), n_panels = (nc + kNr - 1) / kNr;
    for (int64_t pc = 0; pc < K; pc += kKc) {
      const int64_t kc = std::min(kKc, K - pc);
      const bool acc = accumulate || pc > 0;
      const float* b_panels = buffer;
      int64_t b_stride = kc * kNr;  // floats between panels
      if (B.view) {
        for (int64_t p = 0; p < n_panels; ++p) pack_b_panel(buffer + p * kc * kNr, *B.view, pc, kc, jc + p * kNr, N);
      } else {
        b_panels = B.packed->panel_row(B.row0 + pc, B.col0 + jc);
        b_stride = B.packed->panel_stride(B.row0 + pc);
      }
      for (int64_t ic = 0; ic < M; ic += kMc) {
        const int64_t rows = std::min(kMc, M - ic), a_panels = (rows + kMr - 1) / kMr;
        for (int64_t p = 0; p < a_panels; ++p)
          if (!in_place || ic + (p + 1) * kMr > M) pack_a_panel(a_pack + p * kc * kMr, A, ic + p * kMr, M, pc, kc);
        for (int64_t jp = 0; jp < n_panels; ++jp) {
          const int64_t j0 = jc + jp * kNr;
          const int nr = static_cast<int>(std::min<int64_t>(kNr, N - j0));
          const float* bp = b_panels + jp * b_stride;
          float* c0 = C + j0;
          for (int64_t ip = 0; ip < a_panels; ++ip) {
            const int64_t i0 = ic + ip * kMr;
            const int mr = static_cast<int>(std::min<int64_t>(kMr, M - i0));
            const float* a = A.data + i0 * A.row_stride + pc * A.col_stride;
            const float* ap = a_pack + ip * kc * kMr;
            if (mr <= kMr / 3)
              micro_kernel<1, kMr, kMr / 3>(kc, ap, 1, kMr, bp, c0 + i0 * ldc, ldc, alpha, acc, mr, nr);
            else if (mr <= 2 * kMr / 3)
              micro_kernel<1, kMr, 2 * kMr / 3>(kc, ap, 1, kMr, bp, c0 + i0 * ldc, ldc, alpha, acc, mr, nr);
            else if (mr < kMr || !in_place)
              micro_kernel<1, kMr>(kc, ap, 1, kMr, bp, c0 + i0 * ldc, ldc, alpha, acc, mr, nr);
            else if (A.col_stride == 1)
              micro_kernel<0, 1>(kc, a, A.row_stride, 1, bp, c0 + i0 * ldc, ldc, alpha, acc, mr, nr);
            else
              micro_kernel<1, 0>(kc, a, 1, A.col_stride, bp, c0 + i0 * ldc, ldc, alpha, acc, mr, nr);
          }
        }
      }
    }
  }
  return true;
}

// C = alpha A B (+ C) for any B source: threaded when worth it. Each thread computes its own
// slice of C and packs what it reads itself, which saves every barrier (a sleeping OpenMP
// thread takes long to wake); see the split below.
void gemm_any(int64_t M, int64_t N, int64_t K, float alpha, const MatrixView& A, const BSource& B, bool accumulate,
              float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  const bool threaded = !omp_in_parallel() && omp_get_max_threads() > 1 && M * N * K > (int64_t{1} << 18);
  if (!threaded) {
    if (!gemm_one_thread(M, N, K, alpha, A, B, accumulate, C, ldc)) throw std::bad_alloc();
    return;
  }
  bool failed = false;
#pragma omp parallel reduction(|| : failed)
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    // Split by columns, so that each thread packs only its part of B: A, read in place, costs
    // nothing to share. By rows where B is too narrow for that, or A must be packed too (then the
    // thread packs the smaller of the two whole).
    // A prepacked B is split by columns only (its panels are already there).
    const bool by_rows = B.view && (reads_a_in_place(A) ? N < 2 * kNr * T : M >= N);
    const int64_t len = by_rows ? M : N, unit = by_rows ? kMr : kNr;
    const int64_t per = ((len + T - 1) / T + unit - 1) / unit * unit;
    const int64_t lo = std::min(len, t * per), hi = std::min(len, lo + per);
    if (lo < hi) {
      if (by_rows) {
        const MatrixView a{A.data + lo * A.row_stride, A.row_stride, A.col_stride};
        failed = !gemm_one_thread(hi - lo, N, K, alpha, a, B, accumulate, C + lo * ldc, ldc);
      } else if (B.view) {
        const MatrixView b{B.view->data + lo * B.view->col_stride, B.view->row_stride, B.view->col_stride};
        failed = !gemm_one_thread(M, hi - lo, K, alpha, A, {&b, nullptr, 0, 0}, accumulate, C + lo, ldc);
      } else {
        failed = !gemm_one_thread(M, hi - lo, K, alpha, A, {nullptr, B.packed, B.row0, B.col0 + lo}, accumulate,
                                  C + lo, ldc);
      }
    }
  }
  if (failed) throw std::bad_alloc();
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, float alpha, MatrixView A, MatrixView B, bool accumulate, float* C,
          int64_t ldc) {
  gemm_any(M, N, K, alpha, A, {&B, nullptr, 0, 0}, accumulate, C, ldc);
}

void PackedB::pack(MatrixView B, int64_t K, int64_t N) {
  K_ = K;
  N_ = N;
  padded_n_ = (N + kNr - 1) / kNr * kNr;
  const size_t floats = static_cast<size_t>(K * padded_n_);
  if (floats > capacity_) {
    data_.reset(static_cast<float*>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64)));
    capacity_ = data_ ? floats : 0;
    if (!data_) throw std::bad_alloc();
  }
  const int64_t n_panels = padded_n_ / kNr;
#pragma omp parallel for collapse(2) if (K * N > 65536 && !omp_in_parallel())
  for (int64_t pc = 0; pc < K; pc += kKc)
    for (int64_t p = 0; p < n_panels; ++p) {
      const int64_t kc = std::min(kKc, K - pc);
      pack_b_panel(data_.get() + pc * padded_n_ + p * kc * kNr, B, pc, kc, p * kNr, N);
    }
}

int64_t PackedB::panel_width() { return kNr; }

// K-block pc (a multiple of kKc) starts at pc * padded_n_; its panels are kc x kNr each.
int64_t PackedB::panel_stride(int64_t k) const { return std::min(kKc, K_ - k / kKc * kKc) * kNr; }

const float* PackedB::panel_row(int64_t k, int64_t j) const {
  const int64_t pc = k / kKc * kKc;
  return data_.get() + pc * padded_n_ + j / kNr * panel_stride(k) + (k - pc) * kNr;
}

void gemm(int64_t M, float alpha, MatrixView A, const PackedB& B, bool accumulate, float* C, int64_t ldc) {
  gemm_any(M, B.cols(), B.rows(), alpha, A, {nullptr, &B, 0, 0}, accumulate, C, ldc);
}

void gemm(int64_t M, float alpha, MatrixView A, const PackedB& B, int64_t k0, int64_t k1, int64_t j0, int64_t j1,
          bool accumulate, float* C, int64_t ldc) {
  RLHF_CHECK(0 <= k0 && k0 <= k1 && k1 <= B.rows() && 0 <= j0 && j0 <= j1 && j1 <= B.cols() && j0 % kNr == 0,
             "gemm: a block outside the packed matrix, or not starting at a panel");
  if (k0 == k1) gemm_any(M, j1 - j0, 0, alpha, A, {nullptr, &B, k0, j0}, accumulate, C, ldc);  // C = 0 or kept
  // One product per K-block of B the row range meets (the panels of one block are contiguous).
  for (int64_t lo = k0; lo < k1;) {
    const int64_t hi = std::min(k1, (lo / kKc + 1) * kKc);
    const MatrixView a{A.data + (lo - k0) * A.col_stride, A.row_stride, A.col_stride};
    gemm_any(M, j1 - j0, hi - lo, alpha, a, {nullptr, &B, lo, j0}, accumulate || lo > k0, C, ldc);
    lo = hi;
  }
}

}  // namespace rlhf::kernels::cpu
