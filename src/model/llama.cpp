// The Llama family (Llama, Qwen2, Mistral, Qwen3, SmolLM3, OLMo 2): HF tensor names. q/k/v projections are stacked into one fused qkv
// slot (rows [q | k | v]) and gate/up into one slot (rows [gate | up]), so each runs as a
// single matrix product.
#include "model/checkpoint.h"

namespace rlhf {

std::vector<HfTensor> llama_hf_layout(const ModelConfig& c, const std::string& prefix) {
  const int64_t C = c.hidden_size, I = c.intermediate_size;
  const int64_t Q = c.n_heads * c.head_dim, KV = c.n_kv_heads * c.head_dim;
  std::vector<HfTensor> t;
  t.push_back({prefix + "embed_tokens.weight", {c.vocab_size, C}, "embed.tokens"});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string h = prefix + "layers." + std::to_string(l) + ".";
    const std::string s = "layers." + std::to_string(l) + ".";
    if (c.block.pre_norm()) t.push_back({h + "input_layernorm.weight", {C}, s + "norm1.weight"});
    if (c.family == ModelFamily::phi3) {  // Phi-3 stores q|k|v and gate|up fused, as our slots are
      t.push_back({h + "self_attn.qkv_proj.weight", {Q + 2 * KV, C}, s + "attn.qkv.weight"});
    } else {
      t.push_back({h + "self_attn.q_proj.weight", {Q, C}, s + "attn.qkv.weight", 0});
      t.push_back({h + "self_attn.k_proj.weight", {KV, C}, s + "attn.qkv.weight", Q});
      t.push_back({h + "self_attn.v_proj.weight", {KV, C}, s + "attn.qkv.weight", Q + KV});
    }
    if (c.block.qkv_bias) {
      t.push_back({h + "self_attn.q_proj.bias", {Q}, s + "attn.qkv.bias", 0});
      t.push_back({h + "self_attn.k_proj.bias", {KV}, s + "attn.qkv.bias", Q});
      t.push_back({h + "self_attn.v_proj.bias", {KV}, s + "attn.qkv.bias", Q + KV});
    }
    if (c.block.qk_norm != QkNorm::none) {
      // Qwen3: one head_dim weight shared by the heads; OLMo 2: one over the whole projection.
      const bool whole = c.block.qk_norm == QkNorm::whole;
      t.push_back({h + "self_attn.q_norm.weight", {whole ? Q : c.head_dim}, s + "attn.q_norm.weight"});
      t.push_back({h + "self_attn.k_norm.weight", {whole ? KV : c.head_dim}, s + "attn.k_norm.weight"});
    }
    t.push_back({h + "self_attn.o_proj.weight", {C, Q}, s + "attn.out.weight"});
    if (c.block.attn_out_bias)
      t.push_back({h + "self_attn.o_proj.bias", {C}, s + "attn.out.bias"});
    // With post norms HF's post_attention_layernorm follows the attention (OLMo 2, Gemma) and the
    // MLP's pre norm is pre_feedforward_layernorm (Gemma); else it is the MLP's pre norm (Llama).
    if (c.block.post_norm()) t.push_back({h + "post_attention_layernorm.weight", {C}, s + "attn.post_norm.weight"});
    if (c.block.pre_norm())
      t.push_back({h + (c.block.post_norm() ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"),
                   {C}, s + "norm2.weight"});
    if (c.family == ModelFamily::phi3) {
      t.push_back({h + "mlp.gate_up_proj.weight", {2 * I, C}, s + "mlp.up.weight"});
    } else {
      t.push_back({h + "mlp.gate_proj.weight", {I, C}, s + "mlp.up.weight", 0});
      t.push_back({h + "mlp.up_proj.weight", {I, C}, s + "mlp.up.weight", I});
    }
    t.push_back({h + "mlp.down_proj.weight", {C, I}, s + "mlp.down.weight"});
    if (c.block.post_norm()) t.push_back({h + "post_feedforward_layernorm.weight", {C}, s + "mlp.post_norm.weight"});
  }
  t.push_back({prefix + "norm.weight", {C}, "norm_final.weight"});
  return t;
}

}  // namespace rlhf
