// Small math helpers shared by the CPU kernels, written so GCC vectorises the loops that call them.
//
// glibc's expf is an opaque call that stops auto-vectorisation unless -ffast-math is on, and the
// softmax, log-prob, GELU and SiLU loops spend most of their time in exp. fast_expf is a
// branch-free Cephes-style exp (about 1-2 ulp over the float range); it is inlined into
// `#pragma omp simd` loops. Internal to src/kernels/cpu; not part of the kernel interface.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace rlhf::kernels::cpu {

// exp(x) for float. Range reduction x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for
// exp(r), and 2^n built in the exponent bits. Inputs below -87.3 return 0 (so exp(-inf) == 0);
// inputs above 88.3 saturate at about 2^127 * exp(0.35) instead of inf, which is harmless where
// it is used (1 / (1 + huge) and the like).
inline float fast_expf(float x) {
  // Plain compares, not fminf/fmaxf: those have NaN rules gcc will not vectorise.
  float xc = x < -87.3f ? -87.3f : x;
  xc = xc > 88.3f ? 88.3f : xc;
  // Round x / ln2 to nearest with the 1.5 * 2^23 trick (exact in IEEE float, no fast-math here).
  const float shifter = 12582912.0f;
  const float n = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = std::fma(n, -0.693359375f, xc);  // ln2 split in a high part with few bits ...
  r = std::fma(n, 2.12194440e-4f, r);        // ... and the low remainder (Cephes constants)
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float er = std::fma(p * r, r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  const float y = er * std::bit_cast<float>(bits);
  return x < -87.3f ? 0.0f : y;
}

// x[i] = sqrt(x[i]) for i < n, correctly rounded like std::sqrt. Without -fno-math-errno gcc keeps
// a scalar errno path for every std::sqrt and will not vectorise a loop containing one (and
// `#pragma GCC optimize` does not change that in gcc 12), so the vector width is spelled out.
inline void sqrt_inplace(float* x, int64_t n) {
  int64_t i = 0;
#if defined(__AVX__)  // (256-bit only: gcc 12's _mm512_sqrt_ps trips -Wmaybe-uninitialized)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#elif defined(__aarch64__)
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vsqrtq_f32(vld1q_f32(x + i)));
#endif
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

// 1 / (1 + exp(-x)).
inline float fast_sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

// ---- 16 fp32 lanes ----------------------------------------------------------------------------
// One AVX-512 register where the build's CPU has them (-march=native); GCC splits the type into
// narrower registers elsewhere, so code written with it stays portable.
typedef float f32x16 __attribute__((vector_size(64)));

inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);  // an unaligned vector load
  return v;
}

// The sum of the lanes by a butterfly (lanes 8, 4, 2, then 1 apart): every rotation of v sums to
// the same bits, since rotating permutes the pairs of each level and each pair's sum commutes.
inline float lane_sum(f32x16 v) {
  typedef float f32x8 __attribute__((vector_size(32)));
  typedef float f32x4 __attribute__((vector_size(16)));
  const f32x8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const f32x4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

}  // namespace rlhf::kernels::cpu
