// A model's architecture, read from and written to Hugging Face's config.json.
//
// Families: GPT-2 (model_type "gpt2"), the Llama family ("llama", "qwen2", "mistral", "qwen3",
// "smollm3", "olmo2", "phi3") and Gemma ("gemma2", "gemma3_text"). The
// family decides the HF field and tensor names; what the model computes is the family-neutral
// BlockShape below (norm kind and placement, positions, MLP, biases, ...), which parsing fills
// from the family and its fields, plus the sizes, rope settings and sliding window.
// Parsing validates every field before anything is allocated (docs/reliability.md §7 test 12):
// a missing or mistyped field, a non-positive size, heads that do not divide the width or absurd
// sizes give an InputError naming the file and the field. Unknown fields are kept verbatim in `raw`
// so that saving writes back what was loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rlhf {

enum class ModelFamily { gpt2, llama, qwen2, mistral, qwen3, smollm3, olmo2, gemma2, gemma3_text, phi3 };

const char* model_family_name(ModelFamily f);  // the config.json model_type

// Llama-3 style rope_scaling {"rope_type": "llama3", ...}; type "none" when absent.
struct RopeScaling {
  std::string type = "none";  // "none" | "llama3" | "linear" | "longrope"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // LongRoPE (Phi-3, Phi-4-mini): per rotary frequency, the divisors of calls whose positions
  // stay within original_max_position_embeddings (short) and of longer ones (long); the cos and
  // sin are multiplied by attention_factor.
  std::vector<float> short_factor, long_factor;
  double attention_factor = 1.0;
};

// The transformer block's shape: each choice on its own axis, so that a family is one set of
// values (family_block_shape) and the forward, backward and decode read only these. Values no
// family uses yet are either implemented and tested on tiny models or rejected by the
// Transformer's constructor with an InputError naming the field (see transformer.cpp).
enum class NormKind {
  layernorm,       // (x - mean) * rstd * w + b                       GPT-2
  rmsnorm,         // x * rstd * w                                    Llama
  rmsnorm_offset,  // x * rstd * (1 + w), w initialised to 0          Gemma
};
enum class NormPlacement {
  pre,       // x + f(norm(x))                                        GPT-2, Llama
  post,      // x + norm(f(x))                                        OLMo 2
  sandwich,  // x + norm(f(norm(x)))                                  Gemma 2/3
};
enum class PositionKind { learned, rope, none };  // learned: a position table added to the embedding
enum class MlpKind {
  gelu_tanh,  // down(gelu_tanh(up x)), GPT-2's "gelu_new"
  swiglu,     // down(silu(gate x) * up x)
  geglu,      // down(gelu_tanh(gate x) * up x)
};
enum class QkNorm { none, per_head, whole };  // a norm on q and k before RoPE (Qwen3 per head, OLMo 2 whole)

struct BlockShape {
  NormKind norm = NormKind::rmsnorm;
  NormPlacement norm_placement = NormPlacement::pre;
  PositionKind position = PositionKind::rope;
  MlpKind mlp = MlpKind::swiglu;
  bool qkv_bias = false;
  bool attn_out_bias = false;
  bool mlp_bias = false;   // on the up (or gate|up) and down projections
  bool norm_bias = false;  // LayerNorm's b
  bool lm_head_bias = false;
  QkNorm qk_norm = QkNorm::none;
  float attn_softcap = 0.0f;   // scores -> cap * tanh(scores / cap); 0 = off
  float final_softcap = 0.0f;  // logits -> cap * tanh(logits / cap); 0 = off
  float embed_scale = 1.0f;    // the token embedding times this (Gemma: sqrt(hidden)); 1 = none

  bool gated_mlp() const { return mlp != MlpKind::gelu_tanh; }  // up projects to [gate | up]
  bool pre_norm() const { return norm_placement != NormPlacement::post; }
  bool post_norm() const { return norm_placement != NormPlacement::pre; }
  bool operator==(const BlockShape&) const = default;
};

struct ModelConfig {
  ModelFamily family = ModelFamily::llama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;          // GPT-2: n_embd
  int64_t n_layers = 0;             // GPT-2: n_layer; Llama: num_hidden_layers
  int64_t n_heads = 0;              // GPT-2: n_head; Llama: num_attention_heads
  int64_t n_kv_heads = 0;           // Llama: num_key_value_heads (defaults to n_heads); GPT-2: n_heads
  int64_t head_dim = 0;             // Llama: head_dim if given, else hidden/heads
  int64_t intermediate_size = 0;    // GPT-2: n_inner or 4*n_embd
  int64_t max_position_embeddings = 0;  // GPT-2: n_positions
  double norm_eps = 1e-5;           // GPT-2: layer_norm_epsilon; Llama: rms_norm_eps
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = true;
  bool attention_bias = false;      // q/k/v biases (Qwen2: true; GPT-2: always); see block
  int64_t sliding_window = 0;       // Mistral; 0 = none
  // Layers that differ from one another (empty when every layer is alike): per layer, the
  // sliding window (0: full attention), overriding sliding_window (Qwen2/3 layer_types); and
  // whether RoPE rotates its q and k (0: a NoPE layer, SmolLM3's no_rope_layers).
  std::vector<int64_t> layer_window;
  std::vector<uint8_t> layer_rope;
  // Gemma 3: layers marked 1 (its sliding_attention layers) rotate with rope_local_theta,
  // unscaled; the others with rope_theta and rope_scaling. Empty: every layer with rope_theta.
  std::vector<uint8_t> layer_local_rope;
  double rope_local_theta = 0;
  // Gemma: scores are scaled by 1 / sqrt(query_pre_attn_scalar) (0: 1 / sqrt(head_dim)); Gemma 2
  // soft-caps the scores and the final logits at these values (0: off).
  double query_pre_attn_scalar = 0;
  double attn_softcap = 0, final_softcap = 0;
  // RoPE rotates the first rotary_dim dimensions of each head (Phi's partial_rotary_factor); 0:
  // all of head_dim.
  int64_t rotary_dim = 0;
  int64_t rotary_dims() const { return rotary_dim > 0 ? rotary_dim : head_dim; }
  std::string hidden_act;           // "gelu_new" (GPT-2) or "silu" (Llama)
  int64_t num_labels = 1;           // scalar head width (ForSequenceClassification)
  // Llama family: pad_token_id, the padding_idx of transformers' nn.Embedding, whose row the
  // token lookup never updates (the tied LM head still does); -1: none (and always for GPT-2).
  int64_t padding_idx = -1;
  BlockShape block;                 // family_block_shape(*this) once parsed

  nlohmann::json raw;               // the config.json object as loaded (or as built)

  int64_t qkv_dim() const { return (n_heads + 2 * n_kv_heads) * head_dim; }
  int64_t window(int64_t layer) const { return layer_window.empty() ? sliding_window : layer_window[layer]; }
  bool rotates(int64_t layer) const {
    return block.position == PositionKind::rope && (layer_rope.empty() || layer_rope[layer]);
  }
  bool local_rope(int64_t layer) const { return !layer_local_rope.empty() && layer_local_rope[layer]; }
  // The longest sequence the model takes: the position table's length for learned positions
  // (GPT-2's n_positions); RoPE and no positions have no table, hence no limit (INT64_MAX).
  int64_t max_sequence_length() const;
  int64_t mlp_in_dim() const { return block.gated_mlp() ? 2 * intermediate_size : intermediate_size; }

  // Parses and validates; `source` names the file in error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::filesystem::path& config_json);
  // A fresh config (for init-model) with the family's defaults (GPT-2: gelu_new, eps 1e-5, tied
  // embeddings, biases; Llama family: silu, eps 1e-6, untied, qkv bias for Qwen2 only, no rope
  // scaling, no sliding window), validated by from_json exactly like a loaded file; `raw` holds
  // the family's own field names. GPT-2 needs n_kv_heads == n_heads. To change other fields,
  // edit the returned struct and re-validate with `from_json(c.to_json(false), source)`.
  static ModelConfig make(ModelFamily family, int64_t vocab_size, int64_t hidden_size,
                          int64_t n_layers, int64_t n_heads, int64_t n_kv_heads,
                          int64_t intermediate_size, int64_t max_position_embeddings);
  // The config.json to save: `raw` (or an empty object) with our fields written over it in the
  // family's own field names, "torch_dtype" and "dtype" float32, and the architectures entry for
  // a causal LM or, with `scalar_head`, a sequence classifier with num_labels/id2label/label2id.
  // Rope settings are written as rope_theta + rope_scaling (transformers 4.x) and as
  // rope_parameters (5.x). Works on a struct filled in by hand (raw null) as well.
  nlohmann::json to_json(bool scalar_head) const;
};

// The block shape of a parsed config's family: GPT-2 is pre-LayerNorm with biases everywhere,
// learned positions and a gelu_new MLP; the Llama family pre-RMSNorm, RoPE and SwiGLU, with
// q/k/v biases when attention_bias is set (Qwen2 always), Llama's also on the output projection.
BlockShape family_block_shape(const ModelConfig& c);

}  // namespace rlhf
