// Tiny model configurations of every family, shared by the model tests.
#pragma once

#include <string>

#include "model/config.h"

namespace rlhf::test {

// vocab 50, width 16, 2 layers, 4 heads (2 kv heads in the Llama family), 32 positions.
// Llama: untied, llama3 rope scaling; Qwen2: qkv bias, tied; Mistral: sliding window 3.
inline ModelConfig tiny_config(const std::string& family) {
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
  }
  return ModelConfig::from_json(j, "tiny_config(" + family + ")");
}

}  // namespace rlhf::test
