// Pointwise activations: GPT-2's tanh-approximated GELU ("gelu_new"), SwiGLU (Llama's MLP) and
// GeGLU (Gemma's: the gated MLP with that GELU in place of silu).
//
// All use the identity 0.5 (1 + tanh(u)) = sigmoid(2u), so each element costs one vectorised
// exp (fast_expf) instead of a libm tanh call, which gcc cannot vectorise without -ffast-math.
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::cpu {
namespace {
constexpr int64_t kParallelMin = 16384;
constexpr float kGeluS = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;
}  // namespace

using cpu::fast_sigmoidf;

namespace {
// gelu(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u),  u = s (x + a x^3).
inline float gelu(float x) {
  const float u = kGeluS * (x + kGeluA * x * x * x);
  return x * fast_sigmoidf(2.0f * u);
}
// d/dx [x sigmoid(2u)] = sig + x * 2 sig (1 - sig) * u',  u' = s (1 + 3 a x^2),  sig = sigmoid(2u).
// (Same as 0.5(1 + t) + 0.5 x (1 - t^2) u' with t = tanh u, since 1 - t^2 = 4 sig (1 - sig).)
inline float gelu_slope(float x) {
  const float x2 = x * x;
  const float u = kGeluS * (x + kGeluA * x2 * x);
  const float du = kGeluS * (1.0f + 3.0f * kGeluA * x2);
  const float sig = fast_sigmoidf(2.0f * u);
  return sig + 2.0f * x * sig * (1.0f - sig) * du;
}
}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
  float* __restrict o = out;
  const float* __restrict x = inp;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) o[i] = gelu(x[i]);
}

namespace {
template <bool kAdd>
void gelu_backward_to(float* __restrict dx, const float* __restrict d, const float* __restrict x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = d[i] * gelu_slope(x[i]);
    dx[i] = kAdd ? dx[i] + g : g;
  }
}
}  // namespace

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, Grad mode) {
  if (mode == Grad::add)
    gelu_backward_to<true>(dinp, dout, inp, n);
  else
    gelu_backward_to<false>(dinp, dout, inp, n);
}

// gate_up row = [g (I) | u (I)];  out = silu(g) * u,  silu(g) = g sigmoid(g).
void swiglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) {
#pragma omp parallel for schedule(static) if (N * I > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* __restrict g = gate_up + n * 2 * I;
    const float* __restrict u = g + I;
    float* __restrict o = out + n * I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) o[i] = g[i] * fast_sigmoidf(g[i]) * u[i];
  }
}

// du = dout * silu(g);  dg = dout * u * silu'(g),  silu'(g) = sig (1 + g (1 - sig)).
namespace {
template <bool kAdd>
void swiglu_backward_to(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I) {
#pragma omp parallel for schedule(static) if (N * I > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* __restrict g = gate_up + n * 2 * I;
    const float* __restrict u = g + I;
    const float* __restrict d = dout + n * I;
    float* __restrict dg = dgate_up + n * 2 * I;
    float* __restrict du = dg + I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) {
      const float sig = fast_sigmoidf(g[i]);
      const float gu = d[i] * g[i] * sig, gg = d[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
      du[i] = kAdd ? du[i] + gu : gu;
      dg[i] = kAdd ? dg[i] + gg : gg;
    }
  }
}
}  // namespace

void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I, Grad mode) {
  if (mode == Grad::add)
    swiglu_backward_to<true>(dgate_up, dout, gate_up, N, I);
  else
    swiglu_backward_to<false>(dgate_up, dout, gate_up, N, I);
}

// gate_up row = [g (I) | u (I)];  out = gelu(g) * u.
void geglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) {
#pragma omp parallel for schedule(static) if (N * I > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* __restrict g = gate_up + n * 2 * I;
    const float* __restrict u = g + I;
    float* __restrict o = out + n * I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) o[i] = gelu(g[i]) * u[i];
  }
}

// du = dout * gelu(g);  dg = dout * u * gelu'(g).
namespace {
template <bool kAdd>
void geglu_backward_to(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I) {
#pragma omp parallel for schedule(static) if (N * I > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* __restrict g = gate_up + n * 2 * I;
    const float* __restrict u = g + I;
    const float* __restrict d = dout + n * I;
    float* __restrict dg = dgate_up + n * 2 * I;
    float* __restrict du = dg + I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) {
      const float gu = d[i] * gelu(g[i]), gg = d[i] * u[i] * gelu_slope(g[i]);
      du[i] = kAdd ? du[i] + gu : gu;
      dg[i] = kAdd ? dg[i] + gg : gg;
    }
  }
}
}  // namespace

void geglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I, Grad mode) {
  if (mode == Grad::add)
    geglu_backward_to<true>(dgate_up, dout, gate_up, N, I);
  else
    geglu_backward_to<false>(dgate_up, dout, gate_up, N, I);
}

}  // namespace rlhf::kernels::cpu
