// The kernel interface: every op the transformer needs, forward and backward side by side, as
// the virtual methods of a Backend, so that several backends live in one binary and each model
// chooses its own (Transformer holds a const Backend&).
//
// Backends, each in its own folder:
//   cpu        src/kernels/cpu/        the fast one (our GEMM, OpenMP); the default
//   reference  src/kernels/reference/  plain loops accumulated in double, one thread: the oracle
//                                      every backend is tested against (tests/kernels/test_backend_ops.cpp)
// backend_named("cpu") finds one by name; registered_backends() lists them all.
//
// Ops work on raw fp32 row-major buffers of the backend's device() (shapes in the comments;
// index arrays are int32/int64 buffers of the same device); they never allocate, except where a
// scratch buffer is passed in by the caller (and whatever a backend keeps privately, such as
// the CPU's packing buffers).
//
// Accumulation convention (the one rule to remember when reading a backward):
//   every *_backward ADDS (+=) into all of its gradient outputs — parameter gradients and
//   input gradients alike. Callers zero gradient buffers before a backward pass. The
//   exceptions: rope_backward rotates its buffer in place (documented there), and the input
//   gradient of matmul/gelu/swiglu_backward is overwritten when the caller passes
//   Grad::overwrite (a buffer that holds nothing yet need not be zeroed and read back).
//
// Example:
//   const kernels::Backend& be = kernels::backend_named("reference");
//   DeviceBuffer<float> out(be.device(), N * OC);
//   be.matmul_forward(out.data(), inp, weight, nullptr, N, C, OC);
//
// Default arguments are declared here only; overrides do not repeat them (calls go through
// Backend&, which is where defaults bind).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"

namespace rlhf::kernels {

// How a backward writes an input gradient: added in (the convention above) or overwritten.
enum class Grad { add, overwrite };

// Decode steps multiply a few rows by the same weights each token; a backend may copy the
// weights once into a layout that makes those products cheaper (pack_weight). Opaque: only the
// backend that made it reads it.
class PackedWeights {
 public:
  virtual ~PackedWeights() = default;
  virtual int64_t bytes() const = 0;
};

// Prepacked weights pay from this many rows of a product on (measured on the CPU backend:
// bench/gemm.cpp --decode); decoding packs only when it runs batches this large.
inline constexpr int64_t kPackedMinRows = 12;

// Shapes of one attention call.
struct AttentionShape {
  int64_t B = 0, T = 0;   // rows and tokens per row
  int n_heads = 0;        // query heads
  int n_kv_heads = 0;     // key/value heads (grouped-query attention: n_heads % n_kv_heads == 0)
  int head_dim = 0;
  int sliding_window = 0; // 0: none; else a query attends to at most this many keys (itself included)
  float scale = 0.0f;     // scores = scale * q.k; 0: 1 / sqrt(head_dim) (Gemma: 1 / sqrt(query_pre_attn_scalar))
  float softcap = 0.0f;   // > 0: scores -> softcap * tanh(scores / softcap) before the softmax (Gemma 2)
  float score_scale() const { return scale > 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim)); }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Where this backend's buffers live: parameters, gradients, activations, optimizer moments
  // and key/value caches of a model that runs on it are allocated there.
  virtual const Device& device() const = 0;

  // ---- matrix products --------------------------------------------------------------------

  // out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC). bias may be null. Overwrites out.
  // packed, when given, is pack_weight(weight) of this backend (used where it pays).
  virtual void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                              int64_t C, int64_t OC, const PackedWeights* packed = nullptr) const = 0;
  // weight (OC, C) prepacked for matmul_forward; a snapshot (repack after the weights change).
  virtual std::unique_ptr<PackedWeights> pack_weight(const float* weight, int64_t C, int64_t OC) const = 0;
  // dinp (N, C) += dout @ weight (= with Grad::overwrite); dweight (OC, C) += dout^T @ inp;
  // dbias (OC) += colsum(dout). dinp and dbias may be null.
  virtual void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, int64_t N, int64_t C, int64_t OC,
                               Grad dinp_mode = Grad::add) const = 0;

  // ---- embeddings --------------------------------------------------------------------------

  // out (N, C) = wte[tokens[n]] (+ wpe[positions[n]] when wpe is not null). Overwrites out.
  virtual void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                                 const float* wpe, int64_t N, int64_t C) const = 0;
  // dwte[tokens[n]] += dout[n]; dwpe[positions[n]] += dout[n] (when dwpe is not null).
  virtual void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                                  const int32_t* positions, int64_t N, int64_t C) const = 0;

  // ---- normalisation -----------------------------------------------------------------------

  // LayerNorm over the last dim (GPT-2): out = (x - mean) * rstd * weight + bias.
  // mean, rstd (N) are saved for the backward.
  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                 const float* bias, int64_t N, int64_t C, float eps) const = 0;
  virtual void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                  const float* weight, const float* mean, const float* rstd, int64_t N,
                                  int64_t C) const = 0;

  // RMSNorm (Llama family): out = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps).
  virtual void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N,
                               int64_t C, float eps) const = 0;
  virtual void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                const float* weight, const float* rstd, int64_t N, int64_t C) const = 0;

  // ---- activations -------------------------------------------------------------------------

  // GPT-2's "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out, inp (n).
  virtual void gelu_forward(float* out, const float* inp, int64_t n) const = 0;
  virtual void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n,
                             Grad mode = Grad::add) const = 0;

  // SwiGLU on a fused gate/up projection: gate_up (N, 2I) holds [gate | up] per row;
  // out (N, I) = silu(gate) * up.
  virtual void swiglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) const = 0;
  virtual void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                               Grad mode = Grad::add) const = 0;
  // GeGLU (Gemma's MLP): as swiglu with gelu_new in place of silu, out (N, I) = gelu(gate) * up.
  virtual void geglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) const = 0;
  virtual void geglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                              Grad mode = Grad::add) const = 0;

  // ---- rotary position embedding -----------------------------------------------------------

  // Rotates n_heads heads of head_dim in each of N rows, in place, with HF's rotate_half pairing
  // (i, i + rotary_dim/2): angle = positions[n] * inv_freq[i], i < rotary_dim/2; the dimensions
  // from rotary_dim on pass unrotated (Phi's partial rotary; rotary_dim 0: all of head_dim).
  // mscale multiplies the cos and sin (LongRoPE's attention factor), as HF scales them.
  // x points at the first head of row 0; consecutive rows are row_stride floats apart.
  virtual void rope_forward(float* x, const int32_t* positions, const float* inv_freq, int64_t N,
                            int64_t row_stride, int n_heads, int head_dim, int rotary_dim = 0,
                            float mscale = 1.0f) const = 0;
  // The transposed map, in place: turns d(rotated) into d(unrotated). (Not accumulating.)
  virtual void rope_backward(float* dx, const int32_t* positions, const float* inv_freq, int64_t N,
                             int64_t row_stride, int n_heads, int head_dim, int rotary_dim = 0,
                             float mscale = 1.0f) const = 0;

  // ---- causal attention --------------------------------------------------------------------

  // qkv (B, T, (n_heads + 2 n_kv_heads) * head_dim) holds per token [q heads | k heads | v heads].
  // seg_start (B, T): index within the row of the first token of this token's sequence — packed
  // sequences never attend across their boundary. Query t attends to keys
  // [max(seg_start[t], t - window + 1), t], scaled by s.score_scale() and soft-capped by s.softcap.
  // out (B, T, n_heads * head_dim); lse (B, n_heads, T) = row log-sum-exp of the scaled scores,
  // saved so the backward recomputes probabilities instead of storing a T x T matrix.
  // scratch: attention_scratch_floats(shape) floats. Throws LogicError on a seg_start after its token.
  virtual void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg_start,
                                 const AttentionShape& s, float* scratch) const = 0;
  // dqkv = gradient w.r.t. qkv (every element written, not accumulated).
  virtual void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse,
                                  const float* qkv, const int32_t* seg_start, const AttentionShape& s,
                                  float* scratch) const = 0;
  virtual int64_t attention_scratch_floats(const AttentionShape& s) const = 0;

  // Inference attention of new query rows against a key/value cache.
  // The cache holds s.B sequences of up to s.T tokens: k_cache, v_cache (s.B, n_kv_heads, s.T, head_dim).
  // Row n of q (N rows, ld_q floats apart, n_heads heads of head_dim) is the token of sequence
  // seq[n] at position pos[n], whose own key and value are already in the cache; it attends to
  // keys [max(0, pos[n] - window + 1), pos[n]]. out (N, n_heads * head_dim).
  // scratch: attention_cached_scratch_floats(s) floats.
  virtual void attention_cached(float* out, const float* q, int64_t ld_q, const float* k_cache,
                                const float* v_cache, const int32_t* seq, const int32_t* pos, int64_t N,
                                const AttentionShape& s, float* scratch) const = 0;
  virtual int64_t attention_cached_scratch_floats(const AttentionShape& s) const = 0;

  // ---- fused log-probability of the next token ----------------------------------------------

  // For N scored rows: logp[n] = log softmax(h[n] @ W^T * inv_temp)[targets[n]], where
  // h (N, C) and W (V, C). The vocabulary is processed in chunks of `chunk` rows of W, so
  // memory beyond the outputs is scratch (N * chunk floats) — never an N x V matrix.
  // lse (N) is saved for the backward. If entropy is not null it receives the entropy of each
  // row's distribution (computed in the same pass). softcap > 0 (Gemma 2): the logits h W^T are
  // first capped to softcap * tanh(h W^T / softcap), then scaled by inv_temp.
  virtual void logprob_forward(float* logp, float* lse, float* entropy, const float* h, const float* W,
                               const int32_t* targets, int64_t N, int64_t C, int64_t V, float inv_temp,
                               float* scratch, int64_t chunk, float softcap = 0.0f) const = 0;
  // Given dlogp (N, may be null): dh (N, C) += d/dh, dW (V, C) += d/dW. With dentropy (N) and
  // the forward's entropy (N), the entropy's gradient is added too (an entropy bonus in the
  // loss): dH/dz_k = -p_k (log p_k + H). Overwrites scratch. scratch_holds_logits: a forward
  // with one chunk (chunk >= V) of the same rows ran just before, and a backend may reuse the
  // logits it left in scratch.
  virtual void logprob_backward(float* dh, float* dW, const float* dlogp, const float* h, const float* W,
                                const int32_t* targets, const float* lse, int64_t N, int64_t C, int64_t V,
                                float inv_temp, float* scratch, int64_t chunk, const float* dentropy = nullptr,
                                const float* entropy = nullptr, bool scratch_holds_logits = false,
                                float softcap = 0.0f) const = 0;

  // ---- small elementwise helpers -------------------------------------------------------------

  virtual void add_inplace(float* a, const float* b, int64_t n) const = 0;  // a += b
  virtual double sum_squares(const float* x, int64_t n) const = 0;          // sum of x^2, in double
  virtual void scale_inplace(float* x, float s, int64_t n) const = 0;       // x *= s
  virtual void fill_zero(float* x, int64_t n) const = 0;                    // x = 0
  // Rows of width floats: dst row i = (or +=) src row rows[i]; dst row rows[i] += src row i (the
  // rows distinct).
  virtual void gather_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width,
                           bool add) const = 0;
  virtual void scatter_add_rows(float* dst, const float* src, const int64_t* rows, int64_t n,
                                int64_t width) const = 0;
  // e[i] = exp(s[i] - shift); returns the sum, in double. Safe to call from several threads.
  virtual double exp_shifted(float* e, const float* s, float shift, int64_t n) const = 0;

  // ---- optimizer -----------------------------------------------------------------------------

  // One AdamW step (Loshchilov & Hutter; PyTorch's torch.optim.AdamW):
  //   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
  //   p -= lr * wd * p                                  (decoupled weight decay)
  //   p -= lr * (m / bias1) / (sqrt(v / bias2) + eps)   with bias1 = 1-b1^t, bias2 = 1-b2^t
  // Returns how many of the n parameters it wrote are NaN or Inf, counted in the same pass (a
  // step that overflowed must not go unnoticed until the next save).
  virtual int64_t adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, int64_t step) const = 0;
};

const Backend& cpu_backend();
const Backend& reference_backend();
// Every backend of this build, the CPU one first.
std::vector<const Backend*> registered_backends();
// The backend called `name`; InputError naming the ones there are otherwise.
const Backend& backend_named(const std::string& name);

}  // namespace rlhf::kernels
