// GeGLU on a fused gate/up projection (Gemma's MLP): the gated MLP of swiglu with GPT-2's tanh
// GELU ("gelu_pytorch_tanh") in place of silu. Same layout and conventions as swiglu
// (activations.cpp), and the same GELU arithmetic: gelu(g) = g sigmoid(2u), u = s (g + a g^3).
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::cpu {
namespace {
constexpr int64_t kParallelMin = 16384;
constexpr float kGeluS = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;
}  // namespace

// gate_up row = [g (I) | u (I)];  out = gelu(g) * u.
void geglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) {
#pragma omp parallel for schedule(static) if (N * I > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* __restrict g = gate_up + n * 2 * I;
    const float* __restrict u = g + I;
    float* __restrict o = out + n * I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) {
      const float v = kGeluS * (g[i] + kGeluA * g[i] * g[i] * g[i]);
      o[i] = g[i] * fast_sigmoidf(2.0f * v) * u[i];
    }
  }
}

// du = dout * gelu(g);  dg = dout * u * gelu'(g),
// gelu'(g) = sig + 2 g sig (1 - sig) u',  u' = s (1 + 3 a g^2),  sig = sigmoid(2u).
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
      const float g2 = g[i] * g[i];
      const float v = kGeluS * (g[i] + kGeluA * g2 * g[i]);
      const float dv = kGeluS * (1.0f + 3.0f * kGeluA * g2);
      const float sig = fast_sigmoidf(2.0f * v);
      const float gu = d[i] * g[i] * sig, gg = d[i] * u[i] * (sig + 2.0f * g[i] * sig * (1.0f - sig) * dv);
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
