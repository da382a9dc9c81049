// The CPU backend's kernels (src/kernels/cpu/*.cpp): the ops of kernels.h's Backend as free
// functions, which CpuBackend (cpu_backend.cpp) forwards to. Their contracts, shapes and the
// accumulation convention are kernels.h's; this header adds what is CPU-only: the prepacked
// weight type (PackedB) and the threading rules.
//
// Kernels never allocate, except the dense products' packing and staging buffers and RoPE's
// angle table, kept per thread.
//
// Threading: everything uses OpenMP: elementwise and per-row kernels, the dense products (our
// GEMM, kernels/cpu/gemm.h) and attention, whose small per-head products run on the same GEMM
// single-threaded inside its own parallel loop. Call kernels from outside an OpenMP parallel
// region (inside one they run single-threaded: generate's per-thread decode shares rely on it).
#pragma once

#include <cstdint>

#include "kernels/cpu/gemm.h"
#include "kernels/kernels.h"

namespace rlhf::kernels::cpu {

// packed, when given, is weight^T prepacked (pack_weight), used from kPackedMinRows rows on (fewer
// rows stream the weights, which is faster).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC, const PackedB* packed = nullptr);
PackedB pack_weight(const float* weight, int64_t C, int64_t OC);
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, Grad dinp_mode = Grad::add);

void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                       const float* wpe, int64_t N, int64_t C);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        const int32_t* positions, int64_t N, int64_t C);

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C,
                     float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C);

void gelu_forward(float* out, const float* inp, int64_t n);
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, Grad mode = Grad::add);
void swiglu_forward(float* out, const float* gate_up, int64_t N, int64_t I);
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                     Grad mode = Grad::add);
void geglu_forward(float* out, const float* gate_up, int64_t N, int64_t I);
void geglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                    Grad mode = Grad::add);

void rope_forward(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                  int n_heads, int head_dim, int rotary_dim = 0, float mscale = 1.0f);
void rope_backward(float* dx, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                   int n_heads, int head_dim, int rotary_dim = 0, float mscale = 1.0f);

void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg_start,
                       const AttentionShape& s, float* scratch);
void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        const int32_t* seg_start, const AttentionShape& s, float* scratch);
int64_t attention_scratch_floats(const AttentionShape& s);
void attention_cached(float* out, const float* q, int64_t ld_q, const float* k_cache, const float* v_cache,
                      const int32_t* seq, const int32_t* pos, int64_t N, const AttentionShape& s, float* scratch);
int64_t attention_cached_scratch_floats(const AttentionShape& s);

void logprob_forward(float* logp, float* lse, float* entropy, const float* h, const float* W,
                     const int32_t* targets, int64_t N, int64_t C, int64_t V, float inv_temp, float* scratch,
                     int64_t chunk, float softcap = 0.0f);
void logprob_backward(float* dh, float* dW, const float* dlogp, const float* h, const float* W,
                      const int32_t* targets, const float* lse, int64_t N, int64_t C, int64_t V, float inv_temp,
                      float* scratch, int64_t chunk, const float* dentropy = nullptr, const float* entropy = nullptr,
                      bool scratch_holds_logits = false, float softcap = 0.0f);

void add_inplace(float* a, const float* b, int64_t n);
double sum_squares(const float* x, int64_t n);
void scale_inplace(float* x, float s, int64_t n);
void fill_zero(float* x, int64_t n);  // both cores' bandwidth for large x
void gather_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width, bool add);
void scatter_add_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width);
double exp_shifted(float* e, const float* s, float shift, int64_t n);  // one thread, vectorised exp

int64_t adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int64_t step);  // non-finite params written

}  // namespace rlhf::kernels::cpu
