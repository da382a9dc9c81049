// Token (and learned position) embeddings: a gather forward, a scatter-add backward.
//
// The backward scatters many rows into few table rows (repeated tokens), so it is threaded over
// channel ranges rather than over tokens: each thread owns a column slice of dwte/dwpe and walks
// all N tokens, which is race-free and deterministic without atomics or per-thread tables.
#include <algorithm>

#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::cpu {

void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte, const float* wpe,
                       int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > 32768)
  for (int64_t n = 0; n < N; ++n) {
    float* __restrict o = out + n * C;
    const float* __restrict te = wte + static_cast<int64_t>(tokens[n]) * C;
    if (wpe) {
      const float* __restrict pe = wpe + static_cast<int64_t>(positions[n]) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = te[c] + pe[c];
    } else {
      std::copy(te, te + C, o);
    }
  }
}

// out[n] = wte[tok[n]] + wpe[pos[n]]  =>  dwte[tok[n]] += dout[n], dwpe[pos[n]] += dout[n].
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, const int32_t* positions,
                        int64_t N, int64_t C) {
  constexpr int64_t kCols = 64;  // column slice per task: 256 bytes, a few cache lines
  const int64_t n_slices = (C + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (N * C > 32768)
  for (int64_t s = 0; s < n_slices; ++s) {
    const int64_t c0 = s * kCols, nc = std::min(kCols, C - c0);
    for (int64_t n = 0; n < N; ++n) {
      const float* __restrict d = dout + n * C + c0;
      float* __restrict te = dwte + static_cast<int64_t>(tokens[n]) * C + c0;
#pragma omp simd
      for (int64_t c = 0; c < nc; ++c) te[c] += d[c];
      if (dwpe) {
        float* __restrict pe = dwpe + static_cast<int64_t>(positions[n]) * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) pe[c] += d[c];
      }
    }
  }
}

}  // namespace rlhf::kernels::cpu
