// GPT-2: HF tensor names and layouts. Conv1D weights are stored (in, out) by HF and (out, in)
// by us, so they are transposed on load and save.
#include "model/checkpoint.h"

namespace rlhf {

std::vector<HfTensor> gpt2_hf_layout(const ModelConfig& c, const std::string& prefix) {
  const int64_t C = c.hidden_size, I = c.intermediate_size, QKV = c.qkv_dim();
  std::vector<HfTensor> t;
  t.push_back({prefix + "wte.weight", {c.vocab_size, C}, "embed.tokens"});
  t.push_back({prefix + "wpe.weight", {c.max_position_embeddings, C}, "embed.positions"});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string h = prefix + "h." + std::to_string(l) + ".";
    const std::string s = "layers." + std::to_string(l) + ".";
    t.push_back({h + "ln_1.weight", {C}, s + "norm1.weight"});
    t.push_back({h + "ln_1.bias", {C}, s + "norm1.bias"});
    t.push_back({h + "attn.c_attn.weight", {C, QKV}, s + "attn.qkv.weight", 0, true});
    t.push_back({h + "attn.c_attn.bias", {QKV}, s + "attn.qkv.bias"});
    t.push_back({h + "attn.c_proj.weight", {C, C}, s + "attn.out.weight", 0, true});
    t.push_back({h + "attn.c_proj.bias", {C}, s + "attn.out.bias"});
    t.push_back({h + "ln_2.weight", {C}, s + "norm2.weight"});
    t.push_back({h + "ln_2.bias", {C}, s + "norm2.bias"});
    t.push_back({h + "mlp.c_fc.weight", {C, I}, s + "mlp.up.weight", 0, true});
    t.push_back({h + "mlp.c_fc.bias", {I}, s + "mlp.up.bias"});
    t.push_back({h + "mlp.c_proj.weight", {I, C}, s + "mlp.down.weight", 0, true});
    t.push_back({h + "mlp.c_proj.bias", {C}, s + "mlp.down.bias"});
  }
  t.push_back({prefix + "ln_f.weight", {C}, "norm_final.weight"});
  t.push_back({prefix + "ln_f.bias", {C}, "norm_final.bias"});
  return t;
}

}  // namespace rlhf
