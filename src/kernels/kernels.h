// The kernel interface: every op the transformer needs, forward and backward side by side.
//
// One implementation per backend lives in src/kernels/<backend>/; this header is the CPU one
// (src/kernels/cpu). Kernels work on raw fp32 row-major buffers whose shapes are given in the
// comments; they never allocate, except where a scratch buffer is passed in by the caller (and
// the dense products' packing and staging buffers and RoPE's angle table, kept per thread: kernels/cpu/).
//
// Accumulation convention (the one rule to remember when reading a backward):
//   every *_backward ADDS (+=) into all of its gradient outputs — parameter gradients and
//   input gradients alike. Callers zero gradient buffers before a backward pass. The
//   exceptions: rope_backward rotates its buffer in place (documented there), and the input
//   gradient of matmul/gelu/swiglu_backward is overwritten when the caller passes
//   Grad::overwrite (a buffer that holds nothing yet need not be zeroed and read back).
//
// Threading: everything uses OpenMP: elementwise and per-row kernels, the dense products (our
// GEMM, kernels/cpu/gemm.h) and attention, whose small per-head products run on the same GEMM
// single-threaded inside its own parallel loop. Call kernels from outside an OpenMP parallel region.
#pragma once

#include <cstdint>

namespace rlhf::kernels {

namespace cpu {
class PackedB;
}

// How a backward writes an input gradient: added in (the convention above) or overwritten.
enum class Grad { add, overwrite };

// ---- matrix products --------------------------------------------------------------------

// out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC). bias may be null. Overwrites out.
// packed, when given, is weight^T prepacked (pack_weight), used from kPackedMinRows rows on (fewer
// rows stream the weights, which is faster).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC, const cpu::PackedB* packed = nullptr);
// weight (OC, C)^T in the dense products' packed layout: one pass over the weight, after which
// products with it skip packing (decode steps multiply a few rows by the same weights each token).
cpu::PackedB pack_weight(const float* weight, int64_t C, int64_t OC);
inline constexpr int64_t kPackedMinRows = 12;  // measured: bench/gemm.cpp --decode
// dinp (N, C) += dout @ weight (= with Grad::overwrite); dweight (OC, C) += dout^T @ inp;
// dbias (OC) += colsum(dout). dinp and dbias may be null.
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, Grad dinp_mode = Grad::add);

// ---- embeddings ----------------------------------------------------------------------------

// out (N, C) = wte[tokens[n]] (+ wpe[positions[n]] when wpe is not null). Overwrites out.
void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                       const float* wpe, int64_t N, int64_t C);
// dwte[tokens[n]] += dout[n]; dwpe[positions[n]] += dout[n] (when dwpe is not null).
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        const int32_t* positions, int64_t N, int64_t C);

// ---- normalisation -------------------------------------------------------------------------

// LayerNorm over the last dim (GPT-2): out = (x - mean) * rstd * weight + bias.
// mean, rstd (N) are saved for the backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

// RMSNorm (Llama family): out = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps).
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C,
                     float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C);

// ---- activations ---------------------------------------------------------------------------

// GPT-2's "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out, inp (n).
void gelu_forward(float* out, const float* inp, int64_t n);
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, Grad mode = Grad::add);

// SwiGLU on a fused gate/up projection: gate_up (N, 2I) holds [gate | up] per row;
// out (N, I) = silu(gate) * up.
void swiglu_forward(float* out, const float* gate_up, int64_t N, int64_t I);
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                     Grad mode = Grad::add);

// GeGLU (Gemma's MLP; src/kernels/cpu/geglu.cpp): as swiglu with gelu_new in place of silu,
// out (N, I) = gelu(gate) * up; Grad::overwrite as for swiglu_backward.
void geglu_forward(float* out, const float* gate_up, int64_t N, int64_t I);
void geglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                    Grad mode = Grad::add);

// ---- rotary position embedding -------------------------------------------------------------

// Rotates n_heads heads of head_dim in each of N rows, in place, with HF's rotate_half pairing
// (i, i + head_dim/2): angle = positions[n] * inv_freq[i], i < head_dim/2.
// x points at the first head of row 0; consecutive rows are row_stride floats apart.
void rope_forward(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                  int n_heads, int head_dim);
// The inverse rotation, in place: turns d(rotated) into d(unrotated). (Not accumulating.)
void rope_backward(float* dx, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                   int n_heads, int head_dim);

// ---- causal attention -------------------------------------------------------------------

// Shapes of one attention call.
struct AttentionShape {
  int64_t B = 0, T = 0;   // rows and tokens per row
  int n_heads = 0;        // query heads
  int n_kv_heads = 0;     // key/value heads (grouped-query attention: n_heads % n_kv_heads == 0)
  int head_dim = 0;
  int sliding_window = 0; // 0: none; else a query attends to at most this many keys (itself included)
};

// qkv (B, T, (n_heads + 2 n_kv_heads) * head_dim) holds per token [q heads | k heads | v heads].
// seg_start (B, T): index within the row of the first token of this token's sequence — packed
// sequences never attend across their boundary. Query t attends to keys
// [max(seg_start[t], t - window + 1), t], scaled by 1/sqrt(head_dim).
// out (B, T, n_heads * head_dim); lse (B, n_heads, T) = row log-sum-exp of the scaled scores,
// saved so the backward recomputes probabilities instead of storing a T x T matrix.
// scratch: attention_scratch_floats(shape) floats.
void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg_start,
                       const AttentionShape& s, float* scratch);
// dqkv = gradient w.r.t. qkv (every element written; the zeroing happens in the threads' own
// tasks, in cache, instead of a serial pass over the whole buffer before).
void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        const int32_t* seg_start, const AttentionShape& s, float* scratch);
int64_t attention_scratch_floats(const AttentionShape& s);

// Inference attention of new query rows against a key/value cache (src/kernels/cpu/attention_cached.cpp).
// The cache holds s.B sequences of up to s.T tokens: k_cache, v_cache (s.B, n_kv_heads, s.T, head_dim).
// Row n of q (N rows, ld_q floats apart, n_heads heads of head_dim) is the token of sequence
// seq[n] at position pos[n], whose own key and value are already in the cache; it attends to
// keys [max(0, pos[n] - window + 1), pos[n]]. out (N, n_heads * head_dim). Rows of one sequence
// at consecutive positions are processed as one block (a prefill is a few GEMMs, not N GEMVs).
// scratch: attention_cached_scratch_floats(s) floats.
void attention_cached(float* out, const float* q, int64_t ld_q, const float* k_cache, const float* v_cache,
                      const int32_t* seq, const int32_t* pos, int64_t N, const AttentionShape& s, float* scratch);
int64_t attention_cached_scratch_floats(const AttentionShape& s);

// ---- fused log-probability of the next token --------------------------------------------

// For N scored rows: logp[n] = log softmax(h[n] @ W^T * inv_temp)[targets[n]], where
// h (N, C) and W (V, C). The vocabulary is processed in chunks of `chunk` rows of W, so
// memory beyond the outputs is scratch (N * chunk floats) — never an N x V matrix.
// lse (N) is saved for the backward. If entropy is not null it receives the entropy of each
// row's distribution (computed in the same pass).
void logprob_forward(float* logp, float* lse, float* entropy, const float* h, const float* W,
                     const int32_t* targets, int64_t N, int64_t C, int64_t V, float inv_temp, float* scratch,
                     int64_t chunk);
// Given dlogp (N): dh (N, C) += d/dh, dW (V, C) += d/dW. Recomputes the logits chunk by chunk,
// unless scratch_holds_logits: a forward with one chunk (chunk >= V) leaves all N x V scaled
// logits in scratch, and a backward of the same rows right after it reuses them (the same bits,
// one GEMM fewer). With dentropy (N) and the forward's entropy (N), the entropy's gradient is
// added too (an entropy bonus in the loss): dH/dz_k = -p_k (log p_k + H). Overwrites scratch.
void logprob_backward(float* dh, float* dW, const float* dlogp, const float* h, const float* W,
                      const int32_t* targets, const float* lse, int64_t N, int64_t C, int64_t V, float inv_temp,
                      float* scratch, int64_t chunk, const float* dentropy = nullptr, const float* entropy = nullptr,
                      bool scratch_holds_logits = false);

// ---- small elementwise helpers ---------------------------------------------------------------

void add_inplace(float* a, const float* b, int64_t n);  // a += b
double sum_squares(const float* x, int64_t n);          // sum of x^2, accumulated in double
void scale_inplace(float* x, float s, int64_t n);       // x *= s
void fill_zero(float* x, int64_t n);                    // x = 0 (both cores' bandwidth for large x)
// Rows of width floats: dst row i = (or +=) src row rows[i]; dst row rows[i] += src row i (the
// rows distinct).
void gather_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width, bool add);
void scatter_add_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width);
// e[i] = exp(s[i] - shift) with the kernels' vectorised exp; returns the sum, in double. One
// thread (the sampler calls it per row inside its own parallel loop).
double exp_shifted(float* e, const float* s, float shift, int64_t n);

// ---- optimizer ---------------------------------------------------------------------------------

// One AdamW step (Loshchilov & Hutter; PyTorch's torch.optim.AdamW):
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * wd * p                                  (decoupled weight decay)
//   p -= lr * (m / bias1) / (sqrt(v / bias2) + eps)   with bias1 = 1-b1^t, bias2 = 1-b2^t
void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step);

}  // namespace rlhf::kernels
