// The decoder-only transformer: parameters, forward and explicit backward.
//
// This is the engine of docs/design.md's one idea. A Batch says which tokens to run and which
// positions are scored; forward() returns, per scored position, log p(actual next token) and,
// per head position, the scalar head's value; backward() takes d loss / d logp and
// d loss / d head and accumulates every parameter gradient. No general autograd: each block's
// backward is written next to its forward in transformer.cpp.
//
// Every family runs the same block, shaped by ModelConfig::block (config.h) and nothing else:
// the norm's kind and placement, the positions, the MLP, which projections have biases, an
// embedding scale, soft-caps. The families' shapes:
//   GPT-2  : pre-LayerNorm, learned positions, gelu_new MLP, biases everywhere, tied embeddings
//   Llama  : pre-RMSNorm, RoPE (+ llama3 scaling), SwiGLU, GQA, optional qkv bias (Qwen2),
//            sliding windows (Mistral; per layer: Qwen2/3), q/k norms per head (Qwen3), NoPE
//            layers (SmolLM3), post norms with whole q/k norms (OLMo 2), partial rotary and
//            LongRoPE (Phi-3)
//   Gemma  : sandwich RMSNorms with (1 + w), GeGLU, a scaled embedding, scaled and (Gemma 2)
//            soft-capped scores and logits, per-layer-type RoPE (Gemma 3)
// Shapes no family uses (MLP biases on a gated MLP, no positions at all) run in forward,
// backward and decode too; the constructor rejects the rest (an LM-head bias, LayerNorm without
// a bias or on q/k, an embedding scale beside learned positions) with an InputError naming the
// field.
// HF tensor names and layouts are mapped to ours in gpt2.cpp / llama.cpp (see checkpoint.h),
// for the families' own shapes only.
//
// Parameters and gradients are each one flat buffer described by a table of named slices, so
// the optimizer, clipping, checkpointing and data-parallel all-reduce see one array.
//
// A model runs on one kernel backend (kernels.h; the CPU one unless given another), and every
// buffer it computes on lives on that backend's device: its parameters and gradients, the
// workspaces and key/value caches it is given (allocated there the first time it uses them) and
// the moments of its optimizer.
//
// Example:
//   Transformer m = load_checkpoint("gpt2-dir", {.lm_head = true});
//   Batch b = Batch::from_rows({{1, 2, 3, 4}}, /*score_from=*/1);
//   Workspace ws(m.config(), b.B, b.T, b.n_scored(), b.n_head());
//   Scores s = m.forward(b, ws);          // s.logp[i] for each scored position
//   std::vector<float> dlogp(s.logp.size(), -1.0f / s.logp.size());
//   m.zero_grad(); m.backward(b, ws, dlogp, {});
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model/config.h"
#include "tensor/arena.h"
#include "tensor/device.h"
#include "tensor/staging.h"

namespace rlhf {

// Which output heads a model carries.
struct ModelHeads {
  bool lm_head = true;       // next-token log-probs (weights tied to the embedding when configured)
  bool score_head = false;   // scalar head "score" (HF *ForSequenceClassification, num_labels = 1)
};

// A named parameter slice of the flat parameter buffer (and, at the same offset, of the
// gradient buffer). Shapes are ours (e.g. GPT-2 Conv1D weights stored as (out, in)).
struct ParamSlot {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t numel = 0;
  bool weight_decay = true;  // false for biases and norm weights (HF Trainer's convention)
};

// One engine call's input. Rows are B sequences of T tokens; a row may pack several
// sequences (positions restart and attention never crosses seg_start boundaries).
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens;     // (B, T)
  std::vector<int32_t> positions;  // (B, T) position ids
  std::vector<int32_t> seg_start;  // (B, T) index in the row where this token's sequence starts
  // Flat indices q = b*T + t of the tokens whose log-prob is wanted: logp = log p(tokens[q] |
  // tokens of the same sequence before t). Requires t > seg_start.
  std::vector<int64_t> scored;
  // Flat indices whose final hidden state feeds the scalar head.
  std::vector<int64_t> head_at;

  int64_t n_scored() const { return static_cast<int64_t>(scored.size()); }
  int64_t n_head() const { return static_cast<int64_t>(head_at.size()); }
  // Rows of equal length T, one sequence per row, positions 0..T-1; every token from index
  // `score_from` on is scored.
  static Batch from_rows(const std::vector<std::vector<int32_t>>& rows, int64_t score_from = 1);
  void validate(int64_t vocab_size, int64_t max_positions) const;  // throws LogicError
};

// Engine outputs for one forward.
struct Scores {
  std::vector<float> logp;     // (n_scored)
  std::vector<float> entropy;  // (n_scored) when requested
  std::vector<float> logit_mean;  // (n_scored) when requested: mean over the vocabulary of the logits
  std::vector<float> head;     // (n_head) scalar head values
};

struct ForwardOptions {
  float temperature = 1.0f;     // log-probs of logits / temperature (sampling-consistent)
  bool want_entropy = false;
  bool want_logit_mean = false; // TRL's logits/chosen and logits/rejected metrics
};

// Activation memory for batches up to (max_B, max_T, max_scored, max_head), planned once and
// allocated on the device of the model that first runs on it (which it then serves only).
class Workspace {
 public:
  Workspace(const ModelConfig& cfg, int64_t max_B, int64_t max_T, int64_t max_scored, int64_t max_head,
            int64_t vocab_chunk = 4096);
  int64_t max_B, max_T, max_scored, max_head, vocab_chunk;

 private:
  friend class Transformer;
  // Allocates the arena for `backend` (whose attention scratch it sizes) on first use.
  void bind(const kernels::Backend& backend);
  Staging io_;  // the batch and the loss gradients in, the scores out
  const kernels::Backend* backend_ = nullptr;
  kernels::AttentionShape attention_shape_;
  Arena arena_;
  // Per-layer saved activations (index by layer).
  std::vector<int> x_in, norm1, norm1_mean, norm1_rstd, qkv, att, att_lse, x_mid, norm2, norm2_mean, norm2_rstd,
      mlp_in, mlp_act;
  // With post norms (BlockShape::post_norm), each branch's output before its norm; else -1.
  std::vector<int> attn_out, attn_out_mean, attn_out_rstd, mlp_out, mlp_out_mean, mlp_out_rstd;
  // With q/k norms, the query (N * n_heads, head_dim) and key (N * n_kv_heads, head_dim) heads
  // before their norm and their rstd (one per head, or per row with a whole-projection norm); else -1.
  std::vector<int> q_pre, q_rstd, k_pre, k_rstd;
  int qk_heads = -1;  // with q/k norms: (N * n_heads, head_dim) of heads being normalised
  int x_final, normf, normf_mean, normf_rstd;
  // Gathered rows and logprob outputs.
  int h_scored, lse_scored, entropy_scored, h_head, lm_scratch;
  // The last forward's logits are whole in lm_scratch (one vocabulary chunk) for its backward.
  bool lm_logits_kept = false;
  // Past the last layer's attention only the rows the heads read are computed (out_rows, in
  // order; out_row_of maps a flat position to its index there, -1 for the rest). Both empty
  // when every row is read. The last layer's activations from x_mid on, and the final norm's,
  // then hold out_rows.size() rows.
  std::vector<int64_t> out_rows, out_row_of;
  int64_t out_row(int64_t p) const { return out_rows.empty() ? p : out_row_of[p]; }  // p's row there
  int att_rows, d_x_rows;  // the last layer's attention output of those rows; their d x_mid
  // Backward temporaries reused by every layer.
  int d_x, d_norm, d_qkv, d_att, d_mlp_in, d_mlp_act, d_h_scored, d_h_head, att_scratch;
  int d_branch_out = -1;  // with post norms: d of a branch's output before its norm
};

// Keys and values of up to max_seqs sequences (slots) of up to max_len tokens each, so that
// decoding runs each new token once instead of the whole prefix (Transformer::decode, in
// transformer_decode.cpp). Slot s holds len(s) tokens at positions 0..len(s)-1. Inference only.
// Allocated on the device of the model that first decodes into it.
class KVCache {
 public:
  KVCache(const ModelConfig& cfg, int64_t max_seqs, int64_t max_len);
  int64_t max_seqs() const { return max_seqs_; }
  int64_t max_len() const { return max_len_; }
  int64_t len(int64_t slot) const { return len_.at(slot); }
  void clear(int64_t slot) {
    len_.at(slot) = 0;
    tokens_.at(slot).clear();
  }
  // Slot `to` becomes a copy of slot `from` (the n samples of one prompt share its prefill).
  void copy(int64_t from, int64_t to);
  int64_t bytes() const { return 2 * n_layers_ * max_seqs_ * per_slot_ * static_cast<int64_t>(sizeof(float)); }

 private:
  friend class Transformer;
  void bind(const Device& device);  // allocates k_ and v_ on first use
  float* k(int64_t layer, int64_t slot) { return k_.data() + (layer * max_seqs_ + slot) * per_slot_; }
  float* v(int64_t layer, int64_t slot) { return v_.data() + (layer * max_seqs_ + slot) * per_slot_; }
  int64_t n_layers_, max_seqs_, max_len_, kv_heads_, head_dim_, per_slot_;  // per_slot_ = kv_heads_ * max_len_ * head_dim_
  std::vector<int64_t> len_;
  // Each slot's tokens (LongRoPE recomputes a slot whose positions pass original_max_position_embeddings).
  std::vector<std::vector<int32_t>> tokens_;
  DeviceBuffer<float> k_, v_;  // (layers, max_seqs, n_kv_heads, max_len, head_dim)
  DeviceBuffer<float> scratch_;  // activations of one decode call, grown on demand
  Staging io_;                   // the new tokens in, the logits out
};

// A model's dense weights prepacked for decoding (Backend::pack_weight), so that decode steps of
// many running sequences multiply them without re-packing them every token. A snapshot: valid
// while the parameters do not change (rollout::generate packs once per call). A backend that
// does not prepack leaves the entries null.
struct DecodeWeights {
  const kernels::Backend* backend = nullptr;  // the one that packed them
  std::vector<std::unique_ptr<kernels::PackedWeights>> layer_mats;  // per layer: qkv, o, up (gate_up), down
  std::unique_ptr<kernels::PackedWeights> lm_head;
  int64_t bytes() const;
};

class Transformer {
 public:
  Transformer(ModelConfig cfg, ModelHeads heads, const kernels::Backend& backend = kernels::cpu_backend());

  const ModelConfig& config() const { return cfg_; }
  const kernels::Backend& backend() const { return *be_; }
  // Runs the model on `backend` from now on, its parameters and gradients moved to that
  // backend's device (copied when it is another device). Workspaces and caches it used before
  // serve the old backend only.
  void set_backend(const kernels::Backend& backend);
  const ModelHeads& heads() const { return heads_; }
  const std::vector<ParamSlot>& slots() const { return slots_; }
  const ParamSlot& slot(const std::string& name) const;
  float* param(const std::string& name) { return params_.data() + slot(name).offset; }
  float* grad(const std::string& name) { return grads_.data() + slot(name).offset; }
  DeviceBuffer<float>& params() { return params_; }
  DeviceBuffer<float>& grads() { return grads_; }
  const DeviceBuffer<float>& params() const { return params_; }
  const DeviceBuffer<float>& grads() const { return grads_; }
  int64_t n_params() const { return static_cast<int64_t>(params_.size()); }

  // HF-style initialisation: N(0, std) for matrices and embeddings, zero biases, unit norms
  // (w = 0 for RMSNorm with (1 + w)), GPT-2's output projections scaled by 1/sqrt(2 n_layers).
  void init_random(uint64_t seed, float std = 0.02f);
  void zero_grad();

  Scores forward(const Batch& batch, Workspace& ws, const ForwardOptions& opt = {});
  // dlogp (n_scored) and dhead (n_head) may be empty when the loss does not use them.
  // Uses the activations of the last forward(batch, ws) call.
  // dentropy (n_scored, may be empty): d loss / d entropy per scored token (an entropy bonus); it
  // needs a forward with want_entropy.
  void backward(const Batch& batch, Workspace& ws, const std::vector<float>& dlogp,
                const std::vector<float>& dhead, const std::vector<float>& dentropy = {});

  // Appends tokens[i] (one or more ids) to cache slot slots[i] (distinct slots) in one batched
  // pass, and writes the next-token logits after the last of them, unscaled, to
  // logits (slots.size(), vocab_size). A prompt's prefill and other sequences' single decode
  // tokens can share a call. Needs the LM head; no gradients.
  // packed: pack_for_decode() of the current parameters, used for calls with many rows.
  void decode(KVCache& cache, const std::vector<int64_t>& slots, const std::vector<std::vector<int32_t>>& tokens,
              float* logits, const DecodeWeights* packed = nullptr);
  DecodeWeights pack_for_decode() const;

  // Forward FLOPs of the matrix products for n tokens of context T (for throughput reports):
  // 2 * params_in_matmuls * n + attention 2 * 2 * n * T_avg * n_heads * head_dim.
  double forward_flops(int64_t n_tokens, int64_t n_scored, double mean_attended) const;

 private:
  struct LayerSlots {  // offsets, -1 where the block shape has no such parameter
    int64_t norm1_w, norm1_b, qkv_w, qkv_b, q_norm_w, k_norm_w, o_w, o_b, attn_post_w, attn_post_b, norm2_w, norm2_b,
        up_w, up_b, down_w, down_b, mlp_post_w, mlp_post_b;
  };
  int64_t add_slot(const std::string& name, std::vector<int64_t> shape, bool decay);
  const float* P(int64_t off) const { return off < 0 ? nullptr : params_.data() + off; }
  float* G(int64_t off) { return off < 0 ? nullptr : grads_.data() + off; }
  // N rows of width C (0: the hidden size) normalised by the block's norm kind.
  void norm_forward(float* out, float* mean, float* rstd, const float* in, int64_t w, int64_t b, int64_t N,
                    int64_t C = 0);
  void norm_backward(float* dinp, const float* dout, const float* in, int64_t w, int64_t b, const float* mean,
                     const float* rstd, int64_t N, int64_t C = 0);
  // The q/k norm (per head or whole, BlockShape::qk_norm) of heads [h0, h0 + nh) of N qkv rows,
  // in place, by the norm at offset w: pre (N * nh, head_dim) keeps the heads before it, rstd
  // (N * nh, or N) their rstd; scratch as pre.
  void qk_norm_forward(float* qkv, int64_t N, int64_t h0, int64_t nh, int64_t w, float* pre, float* rstd,
                       float* scratch);
  // Its backward, in place on those heads of d_qkv; d_heads and d_pre are scratch as pre.
  void qk_norm_backward(float* d_qkv, int64_t N, int64_t h0, int64_t nh, int64_t w, const float* pre,
                        const float* rstd, float* d_heads, float* d_pre);
  // The MLP's activation, act (N, I) from the up projection's output mlp_in (N, I or 2I); the
  // backward overwrites d_mlp_in.
  void activation_forward(float* act, const float* mlp_in, int64_t N) const;
  void activation_backward(float* d_mlp_in, const float* d_act, const float* mlp_in, int64_t N) const;
  float norm_weight_unit() const;  // the norm weight that leaves its input's scale alone
  // Runs of consecutive rows [begin, end) rotated with the same RoPE frequencies. LongRoPE takes
  // its long factors for a sequence whose last position passes original_max_position_embeddings
  // (transformers decides by the longest position of a forward; we decide per sequence, so that
  // packing and batching never change a sequence's result). seq_end[r]: one past the last row of
  // row r's sequence.
  struct RopeRun {
    int64_t begin, end;
    bool long_factors;
  };
  std::vector<RopeRun> rope_runs(const std::vector<int32_t>& positions, const std::vector<int64_t>& seq_end) const;
  // Rotates (or, backward, un-rotates) the q and k heads of layer l in the qkv rows of each run.
  void rope_layer(float* qkv, const int32_t* pos_d, const std::vector<RopeRun>& runs, const float* inv_freq_d,
                  const float* long_d, const float* local_d, int64_t l, bool backward) const;
  // The attention shape `s` as layer l runs it (its own sliding window).
  kernels::AttentionShape layer_attention(kernels::AttentionShape s, int64_t l) const {
    s.sliding_window = static_cast<int>(cfg_.window(l));
    return s;
  }
  int64_t lm_weight_offset() const;

  ModelConfig cfg_;
  ModelHeads heads_;
  const kernels::Backend* be_;
  std::vector<ParamSlot> slots_;
  DeviceBuffer<float> params_, grads_;
  int64_t wte_ = -1, wpe_ = -1, lm_head_ = -1, score_ = -1, normf_w_ = -1, normf_b_ = -1;
  std::vector<LayerSlots> layers_;
  std::vector<float> inv_freq_;  // RoPE frequencies (head_dim / 2)
  std::vector<float> inv_freq_local_;  // Gemma 3's sliding layers' (ModelConfig::local_rope), else empty
  std::vector<float> inv_freq_long_;   // LongRoPE's long factors' (else empty)
  float last_temperature_ = 1.0f;  // of the last forward, which backward differentiates
  bool last_had_entropy_ = false;   // the last forward kept the entropies (an entropy gradient may follow)
};

// The attention shape of a model's calls on B rows of T tokens (every layer's but the window).
kernels::AttentionShape attention_shape(const ModelConfig& cfg, int64_t B, int64_t T);

// RoPE inverse frequencies (rotary_dims() / 2) with rope_theta and rope_scaling ("llama3",
// "linear", "longrope" with its short or long factors), as HF computes.
std::vector<float> rope_inv_freq(const ModelConfig& cfg, bool long_factors = false);

}  // namespace rlhf
