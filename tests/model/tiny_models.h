// Tiny model configurations of every family and of block shapes no family uses yet, shared by
// the model tests.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace rlhf::test {

// vocab 50, width 16, 2 layers, 4 heads (2 kv heads in the Llama family), 32 positions.
// Llama: untied, llama3 rope scaling; Qwen2: qkv bias, tied; Mistral: sliding window 3;
// Qwen3: q/k norms, head_dim 8 (not 16 / 4), layer 1 sliding with window 3, layer 0 not;
// SmolLM3: no RoPE on layer 1, tied; OLMo 2: post norms, q/k norms over the whole projections,
// a pad token (no lookup gradient for its row); Gemma 2 and 3: sandwich (1 + w) norms, GeGLU,
// the embedding scaled by 4, head_dim 8, scores scaled by 1/sqrt(6), layer 0 sliding (window 3);
// Gemma 2 soft-caps scores at 1.5 and logits at 2, Gemma 3 has per-head q/k norms and rotates
// layer 0 with base 100 and layer 1 with base 1e4 scaled linearly by 2; Phi-3: RoPE on 2 of 4
// head dimensions, LongRoPE's short factors with an attention factor of 1.2 (its switch to the
// long factors is checked against transformers' generate in test_generate_parity.cpp: a
// next-token distribution taken at the switch depends on the call), a window of 5.
inline ModelConfig tiny_family_config(const std::string& family) {
  nlohmann::json j;
  if (family == "gpt2") {
    j = {{"model_type", "gpt2"}, {"vocab_size", 50}, {"n_embd", 16}, {"n_layer", 2},
         {"n_head", 4},          {"n_positions", 32}, {"n_inner", 24}};
  } else {
    j = {{"model_type", family},        {"vocab_size", 50},       {"hidden_size", 16},
         {"num_hidden_layers", 2},      {"num_attention_heads", 4}, {"num_key_value_heads", 2},
         {"intermediate_size", 24},     {"max_position_embeddings", 32}, {"rms_norm_eps", 1e-5},
         {"rope_theta", 10000.0},       {"hidden_act", "silu"}};
    j["tie_word_embeddings"] = family == "qwen2";
    if (family == "llama")
      j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 4.0}, {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8}};
    if (family == "mistral") j["sliding_window"] = 3;
    if (family == "smollm3") j["no_rope_layers"] = {1, 0};
    if (family == "gemma2" || family == "gemma3_text") {
      j.erase("hidden_act");
      j["hidden_activation"] = "gelu_pytorch_tanh";
      j["head_dim"] = 8;
      j["query_pre_attn_scalar"] = 6;
      j["sliding_window"] = 3;
      j["layer_types"] = {"sliding_attention", "full_attention"};
    }
    if (family == "gemma2") {
      j["attn_logit_softcapping"] = 1.5;
      j["final_logit_softcapping"] = 2.0;
    }
    if (family == "phi3") {
      j["sliding_window"] = 5;
      j["original_max_position_embeddings"] = 32;
      j["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 1e4}, {"partial_rotary_factor", 0.5},
                              {"short_factor", {1.5}}, {"long_factor", {3.0}}, {"attention_factor", 1.2}};
    }
    if (family == "gemma3_text")
      j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1e4}}},
                              {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 100.0}}}};
    if (family == "olmo2") j["pad_token_id"] = 3;
    if (family == "qwen3") {
      j["head_dim"] = 8;
      j["use_sliding_window"] = true;
      j["sliding_window"] = 3;
      j["max_window_layers"] = 1;
    }
  }
  return ModelConfig::from_json(j, "tiny_config(" + family + ")");
}

// Block shapes no family uses yet, on the tiny models above (their tensors have no HF names):
//   "sandwich_geglu": Llama with sandwich RMSNorms with (1 + w) (as Gemma 2/3), per-head q/k
//                     norms, GeGLU with MLP biases, the token embedding scaled by sqrt(16) = 4,
//                     tied embeddings
//   "qk_norm":        Llama with per-head q/k RMSNorms (as Qwen3)
//   "post_nope":      Llama with post RMSNorms only and q/k norms over the whole projections (as
//                     OLMo 2), no positions, attention biases
//   "post_layernorm_swiglu": GPT-2 (LayerNorm with biases, learned positions) with post norms
//                     only and a SwiGLU MLP with biases
inline ModelConfig tiny_config(const std::string& name) {
  if (name == "sandwich_geglu") {
    ModelConfig c = tiny_family_config("llama");
    c.tie_word_embeddings = true;
    c.block.norm = NormKind::rmsnorm_offset;
    c.block.norm_placement = NormPlacement::sandwich;
    c.block.qk_norm = QkNorm::per_head;
    c.block.mlp = MlpKind::geglu;
    c.block.mlp_bias = true;
    c.block.embed_scale = 4.0f;
    return c;
  }
  if (name == "qk_norm") {
    ModelConfig c = tiny_family_config("llama");
    c.block.qk_norm = QkNorm::per_head;
    return c;
  }
  if (name == "post_nope") {
    ModelConfig c = tiny_family_config("llama");
    c.block.norm_placement = NormPlacement::post;
    c.block.position = PositionKind::none;
    c.block.qk_norm = QkNorm::whole;
    c.block.qkv_bias = c.block.attn_out_bias = true;
    return c;
  }
  if (name == "post_layernorm_swiglu") {
    ModelConfig c = tiny_family_config("gpt2");
    c.block.norm_placement = NormPlacement::post;
    c.block.mlp = MlpKind::swiglu;
    return c;
  }
  return tiny_family_config(name);
}

// Every family and every block shape above.
inline const std::vector<std::string> kTinyModels = {
    "gpt2", "llama", "qwen2", "mistral", "qwen3", "smollm3", "olmo2", "gemma2", "gemma3_text", "phi3", "sandwich_geglu", "qk_norm", "post_nope", "post_layernorm_swiglu"};

}  // namespace rlhf::test
