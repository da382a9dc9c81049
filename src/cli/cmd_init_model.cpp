// rlhf init-model: a randomly initialised model of any supported family and size, written as
// an HF checkpoint (config.json + model.safetensors) that transformers loads unchanged.
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "model/checkpoint.h"
#include "tensor/error.h"
#include "text/tokenizer.h"

namespace rlhf::cli {

namespace {

struct Preset {
  const char* name;
  int64_t vocab, hidden, layers, heads, positions;
};
constexpr Preset kPresets[] = {
    {"tiny", 256, 64, 2, 4, 256},
    {"small", 50257, 256, 4, 4, 1024},
    {"gpt2-small", 50257, 768, 12, 12, 1024},
};

// With a tokenizer: its vocabulary size (unless --vocab-size says more) and its BOS/EOS/PAD ids.
nlohmann::json build_config(const Options& o, const Tokenizer* tok) {
  int64_t vocab = 256, hidden = 64, layers = 2, heads = 4, positions = 256;
  const std::string preset = o.str("preset");
  bool found = false;
  for (const auto& p : kPresets) {
    if (preset == p.name) {
      vocab = p.vocab, hidden = p.hidden, layers = p.layers, heads = p.heads, positions = p.positions;
      found = true;
    }
  }
  if (!found) throw InputError("rlhf init-model: --preset '" + preset + "' is not one of tiny, small, gpt2-small");
  if (tok) vocab = tok->vocab_size();
  if (o.given("vocab-size")) vocab = o.integer("vocab-size");
  if (tok && vocab < tok->vocab_size())
    throw InputError("rlhf init-model: --vocab-size " + std::to_string(vocab) + " is smaller than the tokenizer's " +
                     std::to_string(tok->vocab_size()) + " tokens");
  if (o.given("hidden-size")) hidden = o.integer("hidden-size");
  if (o.given("layers")) layers = o.integer("layers");
  if (o.given("heads")) heads = o.integer("heads");
  if (o.given("max-positions")) positions = o.integer("max-positions");
  const int64_t kv_heads = o.given("kv-heads") ? o.integer("kv-heads") : heads;
  const std::string family = o.str("family");
  const bool tie = o.str("tie-embeddings") == "true";
  if (o.str("tie-embeddings") != "true" && o.str("tie-embeddings") != "false")
    throw InputError("rlhf init-model: --tie-embeddings takes true or false");

  nlohmann::json j;
  if (family == "gpt2") {
    j = {{"model_type", "gpt2"},     {"vocab_size", vocab},          {"n_embd", hidden},
         {"n_layer", layers},        {"n_head", heads},              {"n_positions", positions},
         {"n_inner", o.given("intermediate-size") ? nlohmann::json(o.integer("intermediate-size")) : nlohmann::json()},
         {"layer_norm_epsilon", 1e-5}, {"activation_function", "gelu_new"}, {"tie_word_embeddings", tie},
         {"bos_token_id", vocab - 1}, {"eos_token_id", vocab - 1}};
    if (kv_heads != heads) throw InputError("rlhf init-model: GPT-2 has no grouped-query attention (--kv-heads)");
  } else if (family == "llama" || family == "qwen2" || family == "mistral") {
    // Llama's own ratio: intermediate ~ 8/3 hidden, rounded up to a multiple of 32.
    const int64_t inter = o.given("intermediate-size") ? o.integer("intermediate-size") : (hidden * 8 / 3 + 31) / 32 * 32;
    j = {{"model_type", family},           {"vocab_size", vocab},
         {"hidden_size", hidden},          {"num_hidden_layers", layers},
         {"num_attention_heads", heads},   {"num_key_value_heads", kv_heads},
         {"intermediate_size", inter},     {"max_position_embeddings", positions},
         {"rms_norm_eps", 1e-6},           {"rope_theta", o.number("rope-theta")},
         {"hidden_act", "silu"},           {"tie_word_embeddings", tie},
         {"bos_token_id", vocab - 2},      {"eos_token_id", vocab - 1}};
    if (family == "llama") j["attention_bias"] = false;
    if (family == "mistral") j["sliding_window"] = nullptr;
  } else {
    throw InputError("rlhf init-model: --family '" + family + "' is not one of gpt2, llama, qwen2, mistral");
  }
  if (tok) {
    if (tok->bos_id()) j["bos_token_id"] = *tok->bos_id();
    if (tok->eos_id()) j["eos_token_id"] = *tok->eos_id();
    if (tok->pad_id()) j["pad_token_id"] = *tok->pad_id();
  }
  return j;
}

}  // namespace

int cmd_init_model(int argc, char** argv) {
  Options o("init-model",
            "Creates a randomly initialised model in Hugging Face format (config.json + model.safetensors).");
  o.add("family", "gpt2", "gpt2 | llama | qwen2 | mistral")
      .add("preset", "tiny", "size preset: tiny (2x64), small (4x256, GPT-2 vocab), gpt2-small (12x768)")
      .add("out", "", "output directory (required)")
      .add("vocab-size", "", "override the preset's vocabulary size")
      .add("hidden-size", "", "override the width")
      .add("layers", "", "override the number of layers")
      .add("heads", "", "override the number of attention heads")
      .add("kv-heads", "", "key/value heads for grouped-query attention (Llama family)")
      .add("intermediate-size", "", "MLP width (default: 4x hidden for GPT-2, ~8/3x for Llama)")
      .add("max-positions", "", "maximum sequence length")
      .add("rope-theta", "10000", "RoPE base (Llama family)")
      .add("tie-embeddings", "true", "share the input embedding and the LM head (true|false)")
      .flag("score-head", "create a scalar-head model (*ForSequenceClassification, num_labels=1) instead of an LM")
      .add("init-std", "0.02", "standard deviation of the normal initialisation")
      .add("seed", "0", "random seed")
      .add("tokenizer", "", "directory with tokenizer.json (+ tokenizer_config.json): copied into --out; sets the "
                            "vocabulary size and the BOS/EOS/PAD ids in config.json");
  if (!o.parse(argc, argv)) return 0;
  o.require({"out"});
  std::optional<Tokenizer> tok;
  if (!o.str("tokenizer").empty()) tok = Tokenizer::load(o.str("tokenizer"));
  const ModelConfig cfg = ModelConfig::from_json(build_config(o, tok ? &*tok : nullptr), "rlhf init-model");
  const bool score = o.boolean("score-head");
  Transformer m(cfg, ModelHeads{.lm_head = !score, .score_head = score});
  m.init_random(static_cast<uint64_t>(o.integer("seed")), static_cast<float>(o.number("init-std")));
  save_checkpoint(m, o.str("out"), o.str("tokenizer"));
  std::cout << "wrote " << o.str("out") << ": " << model_family_name(cfg.family) << ", " << cfg.n_layers
            << " layers x " << cfg.hidden_size << ", " << cfg.n_heads << " heads, vocab " << cfg.vocab_size << ", "
            << m.n_params() << " parameters\n";
  return 0;
}

}  // namespace rlhf::cli
