// rlhf init-model: a randomly initialised model of any supported family and size, written as
// an HF checkpoint (config.json + model.safetensors) that transformers loads unchanged.
//
// A family is one case of `family_config` (its config.json in its own HF field names) and one
// entry of kFamilies; a size is one row of kPresets. ModelConfig::from_json validates the result
// exactly as it validates a downloaded config.json.
#include <algorithm>
#include <iostream>
#include <optional>
#include <utility>

#include "cli/commands.h"
#include "cli/options.h"
#include "model/checkpoint.h"
#include "tensor/error.h"
#include "text/tokenizer.h"

namespace rlhf::cli {

namespace {

using nlohmann::json;

// Every family the engine reads, in --help order.
constexpr ModelFamily kFamilies[] = {ModelFamily::gpt2,    ModelFamily::llama, ModelFamily::qwen2,
                                     ModelFamily::mistral, ModelFamily::qwen3, ModelFamily::smollm3,
                                     ModelFamily::olmo2,   ModelFamily::gemma2, ModelFamily::gemma3_text,
                                     ModelFamily::phi3};

// Special-token ids; -1: absent from config.json.
struct SpecialIds {
  int64_t bos = -1, eos = -1, pad = -1;
};

// A model's shape. In a preset, 0 leaves a value to the family's default (head_dim
// hidden/heads, intermediate 4x (GPT-2) or ~8/3x hidden, kv_heads = heads, ...).
struct Shape {
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0,
          positions = 0, window = 0;  // window: of the sliding layers (Gemma, Mistral)
  double rope_theta = 0, norm_eps = 0;
  int tie = -1;      // -1: --tie-embeddings (default true)
  SpecialIds ids{};  // a real model's; kept only while its vocabulary is
};

struct Preset {
  const char* name;
  std::optional<ModelFamily> family;  // a real model's shape belongs to its family; the sizes fit any
  Shape shape;
};

// The real-model presets copy the shape fields of the model's config.json on the Hugging Face Hub
// (the weights are random): Qwen/Qwen3-0.6B, HuggingFaceTB/SmolLM3-3B, allenai/OLMo-2-0425-1B,
// google/gemma-3-1b-pt, google/gemma-2-2b, microsoft/Phi-3-mini-4k-instruct (facts gathered while
// writing the family table: 32 x 3072, 32 heads, intermediate 8192, vocab 32064, window 2047).
const Preset kPresets[] = {
    {"tiny", std::nullopt, {.vocab = 256, .hidden = 64, .layers = 2, .heads = 4, .positions = 256}},
    {"small", std::nullopt, {.vocab = 50257, .hidden = 256, .layers = 4, .heads = 4, .positions = 1024}},
    {"gpt2-small", std::nullopt, {.vocab = 50257, .hidden = 768, .layers = 12, .heads = 12, .positions = 1024}},
    {"qwen3-0.6b", ModelFamily::qwen3,
     {.vocab = 151936, .hidden = 1024, .layers = 28, .heads = 16, .kv_heads = 8, .head_dim = 128,
      .intermediate = 3072, .positions = 40960, .rope_theta = 1e6, .norm_eps = 1e-6, .tie = 1,
      .ids = {.bos = 151643, .eos = 151645}}},
    {"smollm3-3b", ModelFamily::smollm3,
     {.vocab = 128256, .hidden = 2048, .layers = 36, .heads = 16, .kv_heads = 4, .intermediate = 11008,
      .positions = 65536, .rope_theta = 5e6, .norm_eps = 1e-6, .tie = 1,
      .ids = {.bos = 128000, .eos = 128012, .pad = 128004}}},
    {"olmo2-1b", ModelFamily::olmo2,
     {.vocab = 100352, .hidden = 2048, .layers = 16, .heads = 16, .kv_heads = 16, .intermediate = 8192,
      .positions = 4096, .rope_theta = 5e5, .norm_eps = 1e-6, .tie = 0, .ids = {.eos = 100257, .pad = 100277}}},
    {"gemma3-1b", ModelFamily::gemma3_text,
     {.vocab = 262144, .hidden = 1152, .layers = 26, .heads = 4, .kv_heads = 1, .head_dim = 256,
      .intermediate = 6912, .positions = 32768, .window = 512, .rope_theta = 1e6, .norm_eps = 1e-6, .tie = 1,
      .ids = {.bos = 2, .eos = 1, .pad = 0}}},
    {"gemma2-2b", ModelFamily::gemma2,
     {.vocab = 256000, .hidden = 2304, .layers = 26, .heads = 8, .kv_heads = 4, .head_dim = 256,
      .intermediate = 9216, .positions = 8192, .window = 4096, .rope_theta = 1e4, .norm_eps = 1e-6, .tie = 1,
      .ids = {.bos = 2, .eos = 1, .pad = 0}}},
    {"phi3-mini", ModelFamily::phi3,
     {.vocab = 32064, .hidden = 3072, .layers = 32, .heads = 32, .kv_heads = 32, .intermediate = 8192,
      .positions = 4096, .window = 2047, .rope_theta = 1e4, .norm_eps = 1e-5, .tie = 0,
      .ids = {.bos = 1, .eos = 32000, .pad = 32000}}},
};

std::string family_list(const char* sep) {
  std::string s;
  for (ModelFamily f : kFamilies) s += (s.empty() ? "" : sep) + std::string(model_family_name(f));
  return s;
}

std::string preset_list() {
  std::string s;
  for (const Preset& p : kPresets) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

[[noreturn]] void fail(const std::string& what) { throw InputError("rlhf init-model: " + what); }

// The fields every Llama-family config.json shares (LlamaConfig's names).
json llama_fields(const Shape& s) {
  json j = {{"vocab_size", s.vocab},
            {"hidden_size", s.hidden},
            {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads},
            {"num_key_value_heads", s.kv_heads},
            {"intermediate_size", s.intermediate},
            {"max_position_embeddings", s.positions},
            {"rms_norm_eps", s.norm_eps},
            {"rope_theta", s.rope_theta},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", s.tie == 1}};
  if (s.head_dim) j["head_dim"] = s.head_dim;
  return j;
}

int64_t head_dim_or_default(const Shape& s) {
  if (s.head_dim) return s.head_dim;
  if (s.hidden % s.heads != 0) fail("--heads does not divide --hidden-size; give --head-dim");
  return s.hidden / s.heads;
}

// Gemma 2 and 3: Llama's size fields, and what their config classes would otherwise default to
// the real models' values (head_dim 256, Gemma 2's soft-caps, the window of the sliding layers).
json gemma_config(bool gemma3, const Shape& s) {
  json j = llama_fields(s);
  j.erase("hidden_act");
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["head_dim"] = head_dim_or_default(s);
  j["query_pre_attn_scalar"] = j["head_dim"];  // scores scaled by 1/sqrt(head_dim), as in the real models
  j["attention_bias"] = false;
  j["attn_logit_softcapping"] = gemma3 ? json() : json(50.0);
  j["final_logit_softcapping"] = gemma3 ? json() : json(30.0);
  j["sliding_window"] = s.window ? s.window : gemma3 ? 512 : 4096;
  if (gemma3) j["rope_local_base_freq"] = 10000.0;  // the sliding layers' RoPE base
  // One global layer in every 2 (Gemma 2) or 6 (Gemma 3), the last of each period; a model of
  // fewer layers than the period gets its last layer global, so that a tiny model has one.
  const int64_t period = std::min<int64_t>(gemma3 ? 6 : 2, s.layers);
  json types = json::array();
  for (int64_t l = 0; l < s.layers; ++l)
    types.push_back((l + 1) % period == 0 ? "full_attention" : "sliding_attention");
  j["layer_types"] = types;
  return j;
}

// config.json for one family, in its own field names; what the family's config class would
// default differently from what we mean is written out.
json family_config(ModelFamily f, const Shape& s) {
  json j;
  switch (f) {
    case ModelFamily::gpt2:
      if (s.kv_heads != s.heads) fail("GPT-2 has no grouped-query attention (--kv-heads)");
      if (s.head_dim && s.head_dim * s.heads != s.hidden) fail("GPT-2's head width is n_embd / n_head (--head-dim)");
      j = {{"vocab_size", s.vocab},
           {"n_embd", s.hidden},
           {"n_layer", s.layers},
           {"n_head", s.heads},
           {"n_positions", s.positions},
           {"n_inner", s.intermediate ? json(s.intermediate) : json()},
           {"layer_norm_epsilon", s.norm_eps},
           {"activation_function", "gelu_new"},
           {"tie_word_embeddings", s.tie == 1}};
      break;
    case ModelFamily::llama:
    case ModelFamily::olmo2:  // OLMo 2's post norms and q/k norms come with its model_type
      j = llama_fields(s);
      j["attention_bias"] = false;
      break;
    case ModelFamily::qwen2:  // q/k/v biases always
      j = llama_fields(s);
      break;
    case ModelFamily::mistral:
      j = llama_fields(s);
      // Absent would mean Mistral's default window of 4096.
      j["sliding_window"] = s.window ? json(s.window) : json();
      break;
    case ModelFamily::qwen3:
      j = llama_fields(s);
      j["head_dim"] = head_dim_or_default(s);  // Qwen3Config defaults an absent one to 128, not hidden / heads
      j["attention_bias"] = false;
      j["use_sliding_window"] = false;
      break;
    case ModelFamily::smollm3: {
      j = llama_fields(s);
      j["attention_bias"] = false;
      j["use_sliding_window"] = false;
      // SmolLM3-3B leaves RoPE out of every 4th layer (no_rope_layers 0); a model of fewer layers
      // gets its last layer NoPE, so that a tiny model has one.
      const int64_t interval = std::min<int64_t>(4, s.layers);
      json rope = json::array();
      for (int64_t l = 0; l < s.layers; ++l) rope.push_back((l + 1) % interval != 0 ? 1 : 0);
      j["no_rope_layers"] = rope;
      j["no_rope_layer_interval"] = interval;
      break;
    }
    case ModelFamily::gemma2:
    case ModelFamily::gemma3_text:
      j = gemma_config(f == ModelFamily::gemma3_text, s);
      break;
    case ModelFamily::phi3:  // fused projections come with its model_type; plain RoPE, no LongRoPE
      j = llama_fields(s);
      j["sliding_window"] = s.window ? json(s.window) : json();
      j["original_max_position_embeddings"] = s.positions;
      break;
  }
  j["model_type"] = model_family_name(f);
  return j;
}

ModelFamily parse_family(const std::string& name) {
  for (ModelFamily f : kFamilies)
    if (name == model_family_name(f)) return f;
  fail("--family '" + name + "' is not supported; supported families: " + family_list(", "));
}

const Preset& find_preset(const std::string& name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return p;
  fail("--preset '" + name + "' is not one of " + preset_list());
}

// The preset, then the flags over it, then the family's defaults for what is still unset. With a
// tokenizer: its vocabulary size (unless --vocab-size says more) and its BOS/EOS/PAD ids.
json build_config(const Options& o, const Tokenizer* tok) {
  const Preset& preset = find_preset(o.str("preset"));
  ModelFamily family = preset.family.value_or(ModelFamily::gpt2);
  if (o.given("family")) {
    family = parse_family(o.str("family"));
    if (preset.family && *preset.family != family)
      fail("--preset " + std::string(preset.name) + " is a " + model_family_name(*preset.family) +
           " shape, but --family is " + model_family_name(family));
  }
  Shape s = preset.shape;
  const int64_t preset_vocab = s.vocab;
  if (tok) s.vocab = tok->vocab_size();
  if (o.given("vocab-size")) s.vocab = o.integer("vocab-size");
  if (tok && s.vocab < tok->vocab_size())
    fail("--vocab-size " + std::to_string(s.vocab) + " is smaller than the tokenizer's " +
         std::to_string(tok->vocab_size()) + " tokens");
  if (o.given("hidden-size")) s.hidden = o.integer("hidden-size");
  if (o.given("layers")) s.layers = o.integer("layers");
  if (o.given("heads")) s.heads = o.integer("heads");
  if (o.given("kv-heads")) s.kv_heads = o.integer("kv-heads");
  if (o.given("head-dim")) s.head_dim = o.integer("head-dim");
  if (o.given("intermediate-size")) s.intermediate = o.integer("intermediate-size");
  if (o.given("max-positions")) s.positions = o.integer("max-positions");
  if (o.given("rope-theta")) s.rope_theta = o.number("rope-theta");
  if (o.given("sliding-window")) s.window = o.integer("sliding-window");
  if (o.given("tie-embeddings")) {
    const std::string t = o.str("tie-embeddings");
    if (t != "true" && t != "false") fail("--tie-embeddings takes true or false, got '" + t + "'");
    s.tie = t == "true";
  }
  for (const auto& [flag, v] : {std::pair{"--layers", s.layers}, {"--hidden-size", s.hidden}, {"--heads", s.heads}})
    if (v < 1) fail(std::string(flag) + " must be at least 1, got " + std::to_string(v));

  const bool windowed = family == ModelFamily::mistral || family == ModelFamily::gemma2 ||
                        family == ModelFamily::gemma3_text || family == ModelFamily::phi3;
  if (s.window && !windowed) fail("--sliding-window is for mistral, gemma2, gemma3_text and phi3, not " +
                                  std::string(model_family_name(family)));
  // The family's defaults for what neither the preset nor a flag set.
  const bool gpt2 = family == ModelFamily::gpt2;
  if (!s.kv_heads) s.kv_heads = s.heads;
  if (!s.intermediate && !gpt2) s.intermediate = (s.hidden * 8 / 3 + 31) / 32 * 32;  // Llama's ratio, rounded to 32
  if (!s.rope_theta) s.rope_theta = family == ModelFamily::gemma3_text ? 1e6 : 10000.0;  // Gemma 3's global layers
  if (!s.norm_eps) s.norm_eps = gpt2 ? 1e-5 : 1e-6;
  if (s.tie < 0) s.tie = 1;
  // A real model's token ids only where its vocabulary is kept; else the last ids of the vocabulary.
  SpecialIds ids = s.ids;
  if (s.vocab != preset_vocab || !preset.family) ids = {.bos = gpt2 ? s.vocab - 1 : s.vocab - 2, .eos = s.vocab - 1};
  // A tokenizer's own ids, and none that it lacks: a made-up BOS would be an ordinary word.
  if (tok)
    ids = {.bos = tok->bos_id().value_or(-1), .eos = tok->eos_id().value_or(-1), .pad = tok->pad_id().value_or(-1)};

  json j = family_config(family, s);
  j["bos_token_id"] = ids.bos >= 0 ? json(ids.bos) : json();
  j["eos_token_id"] = ids.eos >= 0 ? json(ids.eos) : json();
  if (ids.pad >= 0) j["pad_token_id"] = ids.pad;
  return j;
}

}  // namespace

int cmd_init_model(int argc, char** argv) {
  Options o("init-model",
            "Creates a randomly initialised model in Hugging Face format (config.json + model.safetensors).");
  o.add("family", "gpt2", "model family (config.json model_type): " + family_list(" | ") +
                              "; a real model's preset sets its own")
      .add("preset", "tiny",
           "size preset: tiny (2x64), small (4x256, GPT-2 vocab), gpt2-small (12x768), or a real model's shape with "
           "random weights: qwen3-0.6b, smollm3-3b, olmo2-1b, gemma3-1b, gemma2-2b, phi3-mini")
      .add("out", "", "output directory (required)")
      .add("vocab-size", "", "override the preset's vocabulary size")
      .add("hidden-size", "", "override the width")
      .add("layers", "", "override the number of layers")
      .add("heads", "", "override the number of attention heads")
      .add("kv-heads", "", "key/value heads for grouped-query attention (all but GPT-2)")
      .add("head-dim", "", "width of an attention head (all but GPT-2; default hidden / heads)")
      .add("intermediate-size", "", "MLP width (default: 4x hidden for GPT-2, ~8/3x for Llama)")
      .add("max-positions", "", "maximum sequence length")
      .add("rope-theta", "", "RoPE base (default the preset's, else 10000; Gemma 3's global layers 1e6)")
      .add("sliding-window", "", "window of the sliding layers (Gemma: default 4096 Gemma 2, 512 Gemma 3; Mistral: "
                                 "default none)")
      .add("tie-embeddings", "",
           "share the input embedding and the LM head: true|false (default the preset's, else true)")
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
            << " layers x " << cfg.hidden_size << ", " << cfg.n_heads << " heads (" << cfg.n_kv_heads
            << " key/value) of " << cfg.head_dim << ", vocab " << cfg.vocab_size << ", " << m.n_params()
            << " parameters\n";
  return 0;
}

}  // namespace rlhf::cli
