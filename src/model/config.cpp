// config.json <-> ModelConfig for GPT-2 and the Llama family (llama, qwen2, mistral).
//
// Every field is read through `Fields`, which checks the JSON type, the sign and a per-field cap
// and names the file and field in the error. Defaults follow transformers' config classes
// (checked against transformers 5.x: Qwen2Config, LlamaConfig and MistralConfig all default
// tie_word_embeddings to false). Features that would change the computation but that our model
// code does not implement (other rope types, mixed sliding/full attention layers, MLP biases,
// GPT-2's per-layer attention scaling) are errors, never ignored.
//
// Deliberately not here: which tensors a config implies (transformer.cpp, checkpoint.h).
#include "model/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "model/json_strict.h"
#include "tensor/error.h"

namespace rlhf {

using nlohmann::json;

namespace {

// Caps on sizes: far above any real model, low enough that products of them stay small.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHidden = 65536;
constexpr int64_t kMaxVocab = 4'000'000;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxIntermediate = 1'000'000;
constexpr int64_t kMaxPositions = 10'000'000;
constexpr int64_t kMaxLabels = 1'000'000;
constexpr int64_t kMaxConfigBytes = 64 << 20;

constexpr const char* kSupportedTypes = "gpt2, llama, qwen2, mistral, qwen3, smollm3, olmo2, gemma2, gemma3_text, phi3";

// Typed, checked reads of one JSON object's fields. `prefix` names the enclosing field for nested
// objects ("rope_scaling.").
class Fields {
 public:
  Fields(const json& j, const std::string& source, std::string prefix = "")
      : j_(j), source_(source), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw InputError(source_ + ": field '" + prefix_ + field + "': " + what);
  }

  // Present and not null.
  bool has(const std::string& f) const { return j_.contains(f) && !j_.at(f).is_null(); }
  bool contains(const std::string& f) const { return j_.contains(f); }
  const json& at(const std::string& f) const { return j_.at(f); }

  // A required integer in [1, max].
  int64_t size(const std::string& f, int64_t max) const {
    return integer(f, 1, max, "a positive integer");
  }
  int64_t size_or(const std::string& f, int64_t max, int64_t def) const {
    return has(f) ? size(f, max) : def;
  }
  // A required integer in [min, max].
  int64_t integer(const std::string& f, int64_t min, int64_t max, const char* expected) const {
    const json* v = j_.contains(f) ? &j_.at(f) : nullptr;
    if (!v || !v->is_number_integer())
      fail(f, std::string("expected ") + expected + ", got " + got(v));
    if (v->is_number_unsigned() ? v->get<uint64_t>() > static_cast<uint64_t>(max)
                                : v->get<int64_t>() > max)
      fail(f, "value " + detail::json_excerpt(*v) + " exceeds the limit of " + std::to_string(max));
    const int64_t x = v->get<int64_t>();
    if (x < min) fail(f, std::string("expected ") + expected + ", got " + std::to_string(x));
    return x;
  }
  // A finite number > 0; absent or null gives `def`.
  double positive_number_or(const std::string& f, double def) const {
    if (!has(f)) return def;
    const json& v = j_.at(f);
    if (!v.is_number()) fail(f, "expected a positive number, got " + got(&v));
    const double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0) fail(f, "expected a positive number, got " + got(&v));
    return x;
  }
  double positive_number(const std::string& f) const {
    if (!has(f)) fail(f, "expected a positive number, got " + got(j_.contains(f) ? &j_.at(f) : nullptr));
    return positive_number_or(f, 0);
  }
  bool bool_or(const std::string& f, bool def) const {
    if (!has(f)) return def;
    const json& v = j_.at(f);
    if (!v.is_boolean()) fail(f, "expected true or false, got " + got(&v));
    return v.get<bool>();
  }
  std::string string_or(const std::string& f, const std::string& def) const {
    if (!has(f)) return def;
    const json& v = j_.at(f);
    if (!v.is_string()) fail(f, "expected a string, got " + got(&v));
    return v.get<std::string>();
  }

 private:
  static std::string got(const json* v) {
    if (!v) return "nothing (the field is missing)";
    return std::string(v->type_name()) + " " + detail::json_excerpt(*v);
  }
  const json& j_;
  const std::string& source_;
  std::string prefix_;
};

ModelFamily parse_family(const Fields& f) {
  if (!f.has("model_type"))
    f.fail("model_type", std::string("missing; supported model types: ") + kSupportedTypes);
  const std::string t = f.string_or("model_type", "");
  for (ModelFamily m : {ModelFamily::gpt2, ModelFamily::llama, ModelFamily::qwen2, ModelFamily::mistral,
                        ModelFamily::qwen3, ModelFamily::smollm3, ModelFamily::olmo2, ModelFamily::gemma2,
                        ModelFamily::gemma3_text, ModelFamily::phi3})
    if (t == model_family_name(m)) return m;
  f.fail("model_type",
         "unsupported model type \"" + t + "\"; supported model types: " + kSupportedTypes);
}

void parse_gpt2(const Fields& f, ModelConfig& c) {
  c.vocab_size = f.size("vocab_size", kMaxVocab);
  c.hidden_size = f.size("n_embd", kMaxHidden);
  c.n_layers = f.size("n_layer", kMaxLayers);
  c.n_heads = f.size("n_head", kMaxHeads);
  c.max_position_embeddings = f.size("n_positions", kMaxPositions);
  c.intermediate_size = f.size_or("n_inner", kMaxIntermediate, 4 * c.hidden_size);
  if (c.hidden_size % c.n_heads != 0)
    f.fail("n_head", std::to_string(c.n_heads) + " heads do not divide n_embd " +
                         std::to_string(c.hidden_size));
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.hidden_size / c.n_heads;
  c.norm_eps = f.positive_number_or("layer_norm_epsilon", 1e-5);
  c.hidden_act = f.string_or("activation_function", "gelu_new");
  if (c.hidden_act != "gelu_new" && c.hidden_act != "gelu_pytorch_tanh")
    f.fail("activation_function", "\"" + c.hidden_act +
                                      "\" is not supported (supported: gelu_new, gelu_pytorch_tanh)");
  c.tie_word_embeddings = f.bool_or("tie_word_embeddings", true);
  c.attention_bias = true;
  if (f.bool_or("scale_attn_by_inverse_layer_idx", false))
    f.fail("scale_attn_by_inverse_layer_idx", "true is not supported");
  if (!f.bool_or("scale_attn_weights", true)) f.fail("scale_attn_weights", "false is not supported");
}

// rope_theta and rope scaling. transformers 5 reads `rope_scaling` if set, else `rope_parameters`
// (which also carries rope_theta); older versions read top-level rope_theta and rope_scaling.
void parse_rope_object(const Fields& r, ModelConfig& c);

// partial_rotary_factor (Phi): RoPE on the first int(head_dim * factor) dimensions of each head.
void partial_rotary(const Fields& r, ModelConfig& c) {
  if (!r.has("partial_rotary_factor")) return;
  const double f = r.positive_number("partial_rotary_factor");
  const int64_t dim = static_cast<int64_t>(static_cast<double>(c.head_dim) * f);  // int(), as transformers
  if (f > 1.0 || dim < 2 || dim % 2 != 0)
    r.fail("partial_rotary_factor", "must leave an even rotary dimension in [2, head_dim " +
                                        std::to_string(c.head_dim) + "], got " + std::to_string(dim));
  c.rotary_dim = dim == c.head_dim ? 0 : dim;
}

void parse_rope(const Fields& f, ModelConfig& c, const std::string& source, double default_theta = 10000.0) {
  const char* key = f.has("rope_scaling") ? "rope_scaling"
                    : f.has("rope_parameters") ? "rope_parameters" : nullptr;
  c.rope_theta = f.positive_number_or("rope_theta", default_theta);
  c.rope_scaling = RopeScaling{};
  c.rotary_dim = 0;
  if (c.family == ModelFamily::phi3) {  // Phi3Config's top-level fields, which rope_parameters may repeat
    c.rope_scaling.original_max_position_embeddings = f.size_or("original_max_position_embeddings", kMaxPositions, 4096);
    partial_rotary(f, c);
  }
  if (!key) return;
  const json& obj = f.at(key);
  if (!obj.is_object())
    f.fail(key, "expected an object or null, got " + detail::json_excerpt(obj));
  parse_rope_object(Fields(obj, source, std::string(key) + "."), c);
}

// One rope_parameters (or rope_scaling) object: rope_theta, when it has one, and the scaling.
void parse_rope_object(const Fields& r, ModelConfig& c) {
  c.rope_theta = r.positive_number_or("rope_theta", c.rope_theta);
  std::string type = r.has("rope_type") ? r.string_or("rope_type", "") : r.string_or("type", "default");
  if (c.family == ModelFamily::phi3 && (type == "su" || type == "yarn")) type = "longrope";  // as Phi3Config reads them
  partial_rotary(r, c);
  if (type == "default") return;
  if (type == "longrope" && c.family == ModelFamily::phi3) {
    RopeScaling& s = c.rope_scaling;
    s.type = "longrope";
    s.original_max_position_embeddings =
        r.size_or("original_max_position_embeddings", kMaxPositions, s.original_max_position_embeddings);
    const size_t half = static_cast<size_t>(c.rotary_dims() / 2);
    for (const char* key : {"short_factor", "long_factor"}) {
      const json* v = r.has(key) ? &r.at(key) : nullptr;
      if (!v || !v->is_array() || v->size() != half)
        r.fail(key, "expected an array of " + std::to_string(half) + " positive numbers (one per rotary frequency)");
      std::vector<float>& out = std::string(key) == "short_factor" ? s.short_factor : s.long_factor;
      for (const json& x : *v) {
        if (!x.is_number() || !(x.get<double>() > 0) || !std::isfinite(x.get<double>()))
          r.fail(key, "expected positive numbers, got " + detail::json_excerpt(x));
        out.push_back(x.get<float>());
      }
    }
    // transformers: factor defaults to max_position_embeddings / original, the attention factor
    // to sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1).
    const double orig = static_cast<double>(s.original_max_position_embeddings);
    s.factor = r.positive_number_or("factor", static_cast<double>(c.max_position_embeddings) / orig);
    s.attention_factor = r.positive_number_or(
        "attention_factor", s.factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(s.factor) / std::log(orig)));
    return;
  }
  if (type == "linear") {
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = r.positive_number("factor");
    return;
  }
  if (type == "llama3") {
    RopeScaling& s = c.rope_scaling;
    s.type = "llama3";
    s.factor = r.positive_number("factor");
    s.low_freq_factor = r.positive_number("low_freq_factor");
    s.high_freq_factor = r.positive_number("high_freq_factor");
    // transformers 5 defaults it to max_position_embeddings; 4.x requires it.
    s.original_max_position_embeddings =
        r.size_or("original_max_position_embeddings", kMaxPositions, c.max_position_embeddings);
    if (s.high_freq_factor <= s.low_freq_factor)
      r.fail("high_freq_factor", "must be greater than low_freq_factor");
    return;
  }
  r.fail(r.has("rope_type") ? "rope_type" : "type",
         "rope type \"" + type + "\" is not supported (supported: default, linear, llama3" +
             std::string(c.family == ModelFamily::phi3 ? ", longrope" : "") + ")");
}

// Gemma 3: global layers rotate with rope_parameters.full_attention (rope_theta 1e6 and, on the
// larger models, linear scaling), sliding layers with rope_parameters.sliding_attention (1e4,
// unscaled); older files say rope_theta, rope_scaling and rope_local_base_freq.
void parse_gemma3_rope(const Fields& f, ModelConfig& c, const std::string& source) {
  const json* params = f.has("rope_parameters") ? &f.at("rope_parameters") : nullptr;
  if (!params || !params->is_object() || !params->contains("full_attention")) {
    parse_rope(f, c, source, 1e6);
    c.rope_local_theta = f.positive_number_or("rope_local_base_freq", 1e4);
    return;
  }
  const Fields p(*params, source, "rope_parameters.");
  c.rope_theta = 1e6;
  c.rope_scaling = RopeScaling{};
  for (const char* kind : {"full_attention", "sliding_attention"}) {
    if (!p.has(kind)) continue;
    if (!p.at(kind).is_object()) p.fail(kind, "expected an object, got " + detail::json_excerpt(p.at(kind)));
  }
  if (p.has("full_attention")) parse_rope_object(Fields(p.at("full_attention"), source, "rope_parameters.full_attention."), c);
  c.rope_local_theta = 1e4;
  if (p.has("sliding_attention")) {
    const Fields s(p.at("sliding_attention"), source, "rope_parameters.sliding_attention.");
    c.rope_local_theta = s.positive_number_or("rope_theta", 1e4);
    const std::string type = s.has("rope_type") ? s.string_or("rope_type", "") : s.string_or("type", "default");
    if (type != "default") s.fail("rope_type", "only \"default\" is supported for the sliding layers, got \"" + type + "\"");
  }
}

// layer_types: per layer, whether it slides ("sliding_attention") or not ("full_attention").
std::vector<uint8_t> parse_layer_types(const Fields& f, int64_t n_layers) {
  const json& lt = f.at("layer_types");
  if (!lt.is_array() || static_cast<int64_t>(lt.size()) != n_layers)
    f.fail("layer_types", "expected an array of " + std::to_string(n_layers) + " layer types, got " +
                              detail::json_excerpt(lt));
  std::vector<uint8_t> sliding;
  for (const json& t : lt) {
    if (t != "sliding_attention" && t != "full_attention")
      f.fail("layer_types", "unsupported layer type " + detail::json_excerpt(t) +
                                " (supported: full_attention, sliding_attention)");
    sliding.push_back(t == "sliding_attention");
  }
  return sliding;
}

// Sets c.sliding_window, or c.layer_window when some layers slide and others do not.
void set_windows(ModelConfig& c, const std::vector<uint8_t>& sliding, int64_t window) {
  const int64_t n = std::count(sliding.begin(), sliding.end(), 1);
  c.sliding_window = n == c.n_layers ? window : 0;
  c.layer_window.clear();
  if (n == 0 || n == c.n_layers) return;
  for (uint8_t s : sliding) c.layer_window.push_back(s ? window : 0);
}

// SmolLM3: no_rope_layers[l] is 1 where layer l rotates q and k, 0 for a NoPE layer; absent,
// every no_rope_layer_interval-th layer is NoPE. Sliding windows apply to NoPE layers only.
void smollm3_layers(const Fields& f, ModelConfig& c) {
  std::vector<uint8_t> rope;
  if (f.has("no_rope_layers")) {
    const json& v = f.at("no_rope_layers");
    if (!v.is_array() || static_cast<int64_t>(v.size()) != c.n_layers)
      f.fail("no_rope_layers", "expected an array of " + std::to_string(c.n_layers) + " zeros and ones, got " +
                                   detail::json_excerpt(v));
    for (const json& x : v) {
      if (!x.is_number_integer() || (x.get<int64_t>() != 0 && x.get<int64_t>() != 1))
        f.fail("no_rope_layers", "expected 0 or 1 per layer, got " + detail::json_excerpt(x));
      rope.push_back(static_cast<uint8_t>(x.get<int64_t>()));
    }
  } else {
    const int64_t interval = f.size_or("no_rope_layer_interval", kMaxLayers, 4);
    for (int64_t l = 0; l < c.n_layers; ++l) rope.push_back((l + 1) % interval != 0);
  }
  c.layer_rope = std::count(rope.begin(), rope.end(), 0) ? rope : std::vector<uint8_t>{};
  c.sliding_window = 0;
  c.layer_window.clear();
  if (!f.bool_or("use_sliding_window", false) || !f.has("sliding_window")) return;
  const int64_t window = f.size("sliding_window", kMaxPositions);
  std::vector<uint8_t> sliding;
  if (f.has("layer_types")) {
    sliding = parse_layer_types(f, c.n_layers);
  } else {
    for (uint8_t r : rope) sliding.push_back(!r);
  }
  set_windows(c, sliding, window);
}

// Qwen2 and Qwen3 slide only when use_sliding_window is set, and then only on the layers whose
// layer_types entry is "sliding_attention" (or, without layer_types, layers >= max_window_layers).
void qwen_sliding_windows(const Fields& f, ModelConfig& c) {
  c.sliding_window = 0;
  c.layer_window.clear();
  if (!f.bool_or("use_sliding_window", false)) return;
  if (f.contains("sliding_window") && !f.has("sliding_window")) return;  // transformers: None = no window
  const int64_t window = f.size_or("sliding_window", kMaxPositions, 4096);  // absent: its default
  std::vector<uint8_t> sliding;
  if (f.has("layer_types")) {
    sliding = parse_layer_types(f, c.n_layers);
  } else {
    const char* field = "max_window_layers";
    const int64_t mwl = f.has(field) ? f.integer(field, 0, kMaxLayers, "a non-negative integer") : 28;
    for (int64_t l = 0; l < c.n_layers; ++l) sliding.push_back(l >= mwl);
  }
  set_windows(c, sliding, window);
}

void parse_llama_family(const Fields& f, ModelConfig& c, const std::string& source) {
  c.vocab_size = f.size("vocab_size", kMaxVocab);
  c.hidden_size = f.size("hidden_size", kMaxHidden);
  c.n_layers = f.size("num_hidden_layers", kMaxLayers);
  c.n_heads = f.size("num_attention_heads", kMaxHeads);
  c.n_kv_heads = f.size_or("num_key_value_heads", kMaxHeads, c.n_heads);
  c.intermediate_size = f.size("intermediate_size", kMaxIntermediate);
  c.max_position_embeddings = f.size("max_position_embeddings", kMaxPositions);
  // Qwen3Config's head_dim defaults to 128, not hidden_size / num_attention_heads.
  if (c.family == ModelFamily::qwen3 && !f.has("head_dim")) {
    c.head_dim = 128;
  } else if (f.has("head_dim")) {
    c.head_dim = f.size("head_dim", kMaxHidden);
    if (c.head_dim % 2 != 0)
      f.fail("head_dim", "rotary embeddings need an even head dimension, got " +
                             std::to_string(c.head_dim));
  } else {
    if (c.hidden_size % c.n_heads != 0)
      f.fail("num_attention_heads", std::to_string(c.n_heads) + " heads do not divide hidden_size " +
                                        std::to_string(c.hidden_size));
    c.head_dim = c.hidden_size / c.n_heads;
    if (c.head_dim % 2 != 0)
      f.fail("num_attention_heads", "hidden_size / num_attention_heads = " +
                                        std::to_string(c.head_dim) +
                                        ", but rotary embeddings need an even head dimension");
  }
  if (c.n_heads % c.n_kv_heads != 0)
    f.fail("num_key_value_heads", std::to_string(c.n_kv_heads) +
                                      " key/value heads do not divide num_attention_heads " +
                                      std::to_string(c.n_heads));
  c.norm_eps = f.positive_number_or("rms_norm_eps", c.family == ModelFamily::olmo2 ? 1e-5 : 1e-6);
  c.hidden_act = f.string_or("hidden_act", "silu");
  if (c.hidden_act != "silu")
    f.fail("hidden_act", "\"" + c.hidden_act + "\" is not supported (supported: silu)");
  c.tie_word_embeddings = f.bool_or("tie_word_embeddings", c.family == ModelFamily::smollm3);  // SmolLM3Config: true
  if (f.has("pad_token_id")) {  // nn.Embedding takes -V..V-1 (negative counts from the end)
    const int64_t pad = f.integer("pad_token_id", -c.vocab_size, c.vocab_size - 1, "a token id within vocab_size");
    c.padding_idx = pad < 0 ? c.vocab_size + pad : pad;
  }
  parse_rope(f, c, source);
  switch (c.family) {
    case ModelFamily::llama:
      c.attention_bias = f.bool_or("attention_bias", false);
      if (f.bool_or("mlp_bias", false)) f.fail("mlp_bias", "true is not supported");
      c.sliding_window = 0;
      break;
    case ModelFamily::qwen2:
      c.attention_bias = true;
      qwen_sliding_windows(f, c);
      break;
    case ModelFamily::qwen3:
      c.attention_bias = f.bool_or("attention_bias", false);
      qwen_sliding_windows(f, c);
      break;
    case ModelFamily::smollm3:
      c.attention_bias = f.bool_or("attention_bias", false);
      if (f.bool_or("mlp_bias", false)) f.fail("mlp_bias", "true is not supported");
      smollm3_layers(f, c);
      break;
    case ModelFamily::olmo2:
      c.attention_bias = f.bool_or("attention_bias", false);
      c.sliding_window = 0;
      break;
    case ModelFamily::phi3:  // no biases; a window on every layer when sliding_window is set
      c.attention_bias = false;
      c.sliding_window = f.has("sliding_window") ? f.size("sliding_window", kMaxPositions) : 0;
      break;
    case ModelFamily::mistral:
      c.attention_bias = false;
      // null means no window; absent means transformers' default of 4096.
      c.sliding_window = f.has("sliding_window") ? f.size("sliding_window", kMaxPositions)
                         : f.contains("sliding_window") ? 0 : 4096;
      break;
    case ModelFamily::gpt2:
      break;
  }
}

// Gemma 2 and Gemma 3 (text): RMSNorm with (1 + w) before and after each branch, GeGLU, the
// embedding scaled by sqrt(hidden_size), scores scaled by query_pre_attn_scalar, sliding and
// global layers by layer_types (default: Gemma 2 alternates, Gemma 3 slides on 5 of every 6);
// Gemma 2 soft-caps the attention scores and the logits, Gemma 3 normalises q and k per head
// and rotates its sliding layers with their own base.
void parse_gemma(const Fields& f, ModelConfig& c, const std::string& source) {
  const bool g3 = c.family == ModelFamily::gemma3_text;
  c.vocab_size = f.size("vocab_size", kMaxVocab);
  c.hidden_size = f.size("hidden_size", kMaxHidden);
  c.n_layers = f.size("num_hidden_layers", kMaxLayers);
  c.n_heads = f.size("num_attention_heads", kMaxHeads);
  c.n_kv_heads = f.size_or("num_key_value_heads", kMaxHeads, 4);
  c.head_dim = f.size_or("head_dim", kMaxHidden, 256);
  if (c.head_dim % 2 != 0)
    f.fail("head_dim", "rotary embeddings need an even head dimension, got " + std::to_string(c.head_dim));
  if (c.n_heads % c.n_kv_heads != 0)
    f.fail("num_key_value_heads", std::to_string(c.n_kv_heads) + " key/value heads do not divide num_attention_heads " +
                                      std::to_string(c.n_heads));
  c.intermediate_size = f.size("intermediate_size", kMaxIntermediate);
  c.max_position_embeddings = f.size_or("max_position_embeddings", kMaxPositions, g3 ? 131072 : 8192);
  c.norm_eps = f.positive_number_or("rms_norm_eps", 1e-6);
  // transformers reads hidden_activation; hidden_act is the older spelling.
  const char* act_field = f.has("hidden_activation") ? "hidden_activation" : "hidden_act";
  c.hidden_act = f.string_or(act_field, "gelu_pytorch_tanh");
  if (c.hidden_act != "gelu_pytorch_tanh" && c.hidden_act != "gelu_new")
    f.fail(act_field, "\"" + c.hidden_act + "\" is not supported (supported: gelu_pytorch_tanh)");
  c.tie_word_embeddings = f.bool_or("tie_word_embeddings", true);
  c.attention_bias = f.bool_or("attention_bias", false);
  c.query_pre_attn_scalar = f.positive_number_or("query_pre_attn_scalar", 256);
  if (f.bool_or("use_bidirectional_attention", false))
    f.fail("use_bidirectional_attention", "true is not supported (causal attention only)");
  auto softcap = [&](const char* field, double def) {
    if (f.contains(field) && !f.has(field)) return 0.0;  // null: off
    return f.positive_number_or(field, def);
  };
  c.attn_softcap = softcap("attn_logit_softcapping", g3 ? 0.0 : 50.0);
  c.final_softcap = softcap("final_logit_softcapping", g3 ? 0.0 : 30.0);
  if (g3) parse_gemma3_rope(f, c, source);
  else parse_rope(f, c, source);
  std::vector<uint8_t> sliding;
  if (f.has("layer_types")) {
    sliding = parse_layer_types(f, c.n_layers);
  } else {
    const int64_t pattern = g3 ? f.size_or("sliding_window_pattern", kMaxLayers, 6) : 2;
    for (int64_t l = 0; l < c.n_layers; ++l) sliding.push_back((l + 1) % pattern != 0);
  }
  const bool windowed = !(f.contains("sliding_window") && !f.has("sliding_window"));
  set_windows(c, windowed ? sliding : std::vector<uint8_t>(c.n_layers, 0),
              windowed ? f.size_or("sliding_window", kMaxPositions, 4096) : 0);
  c.layer_local_rope.clear();
  if (c.rope_local_theta > 0 && std::count(sliding.begin(), sliding.end(), 1) > 0) c.layer_local_rope = sliding;
}

int64_t parse_num_labels(const Fields& f) {
  int64_t from_map = 0;
  if (f.has("id2label")) {
    const json& m = f.at("id2label");
    if (!m.is_object() || m.empty())
      f.fail("id2label", "expected a non-empty object, got " + detail::json_excerpt(m));
    from_map = static_cast<int64_t>(m.size());
    if (from_map > kMaxLabels)
      f.fail("id2label", "has " + std::to_string(from_map) + " entries, more than the limit of " +
                             std::to_string(kMaxLabels));
  }
  if (f.has("num_labels")) {
    const int64_t n = f.size("num_labels", kMaxLabels);
    if (from_map && n != from_map)
      f.fail("num_labels", "is " + std::to_string(n) + " but id2label has " +
                               std::to_string(from_map) + " entries");
    return n;
  }
  return from_map ? from_map : 1;
}

const char* architecture(ModelFamily f, bool scalar_head) {
  switch (f) {
    case ModelFamily::gpt2: return scalar_head ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel";
    case ModelFamily::llama: return scalar_head ? "LlamaForSequenceClassification" : "LlamaForCausalLM";
    case ModelFamily::qwen2: return scalar_head ? "Qwen2ForSequenceClassification" : "Qwen2ForCausalLM";
    case ModelFamily::mistral:
      return scalar_head ? "MistralForSequenceClassification" : "MistralForCausalLM";
    case ModelFamily::qwen3: return scalar_head ? "Qwen3ForSequenceClassification" : "Qwen3ForCausalLM";
    case ModelFamily::smollm3: return scalar_head ? "SmolLM3ForSequenceClassification" : "SmolLM3ForCausalLM";
    case ModelFamily::olmo2: return scalar_head ? "Olmo2ForSequenceClassification" : "Olmo2ForCausalLM";
    case ModelFamily::gemma2: return scalar_head ? "Gemma2ForSequenceClassification" : "Gemma2ForCausalLM";
    case ModelFamily::gemma3_text:
      return scalar_head ? "Gemma3TextForSequenceClassification" : "Gemma3ForCausalLM";
    case ModelFamily::phi3: return scalar_head ? "Phi3ForSequenceClassification" : "Phi3ForCausalLM";
  }
  return "";
}

}  // namespace

const char* model_family_name(ModelFamily f) {
  switch (f) {
    case ModelFamily::gpt2: return "gpt2";
    case ModelFamily::llama: return "llama";
    case ModelFamily::qwen2: return "qwen2";
    case ModelFamily::mistral: return "mistral";
    case ModelFamily::qwen3: return "qwen3";
    case ModelFamily::smollm3: return "smollm3";
    case ModelFamily::olmo2: return "olmo2";
    case ModelFamily::gemma2: return "gemma2";
    case ModelFamily::gemma3_text: return "gemma3_text";
    case ModelFamily::phi3: return "phi3";
  }
  return "unknown";
}

int64_t ModelConfig::max_sequence_length() const {
  return block.position == PositionKind::learned ? max_position_embeddings : std::numeric_limits<int64_t>::max();
}

BlockShape family_block_shape(const ModelConfig& c) {
  BlockShape b;
  if (c.family == ModelFamily::gpt2) {
    b.norm = NormKind::layernorm;
    b.position = PositionKind::learned;
    b.mlp = MlpKind::gelu_tanh;
    b.qkv_bias = b.attn_out_bias = b.mlp_bias = b.norm_bias = true;
    return b;
  }
  b.position = PositionKind::rope;
  if (c.family == ModelFamily::gemma2 || c.family == ModelFamily::gemma3_text) {
    b.norm = NormKind::rmsnorm_offset;
    b.norm_placement = NormPlacement::sandwich;
    b.mlp = MlpKind::geglu;
    b.qkv_bias = b.attn_out_bias = c.attention_bias;
    b.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
    b.attn_softcap = static_cast<float>(c.attn_softcap);
    b.final_softcap = static_cast<float>(c.final_softcap);
    if (c.family == ModelFamily::gemma3_text) b.qk_norm = QkNorm::per_head;
    return b;
  }
  b.norm = NormKind::rmsnorm;
  b.mlp = MlpKind::swiglu;
  b.qkv_bias = c.attention_bias;
  // Llama's, Qwen3's, SmolLM3's and OLMo 2's attention_bias also cover o_proj; Qwen2's covers q/k/v only.
  b.attn_out_bias = c.attention_bias && c.family != ModelFamily::qwen2 && c.family != ModelFamily::mistral &&
                    c.family != ModelFamily::phi3;
  if (c.family == ModelFamily::qwen3) b.qk_norm = QkNorm::per_head;  // RMSNorm over each head, before RoPE
  if (c.family == ModelFamily::olmo2) {
    // Norms after each branch instead of before, and RMSNorms over the whole q and k projections.
    b.norm_placement = NormPlacement::post;
    b.qk_norm = QkNorm::whole;
  }
  return b;
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object())
    throw InputError(source + ": config must be a JSON object, got " + std::string(j.type_name()));
  const Fields f(j, source);
  ModelConfig c;
  c.family = parse_family(f);
  if (c.family == ModelFamily::gpt2) parse_gpt2(f, c);
  else if (c.family == ModelFamily::gemma2 || c.family == ModelFamily::gemma3_text) parse_gemma(f, c, source);
  else parse_llama_family(f, c, source);
  c.num_labels = parse_num_labels(f);
  c.block = family_block_shape(c);
  c.raw = j;
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& config_json) {
  const std::string src = config_json.string();
  std::ifstream in(config_json, std::ios::binary);
  if (!in) throw IoError(src + ": cannot open: " + std::strerror(errno));
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (static_cast<int64_t>(text.size()) > kMaxConfigBytes)
      throw InputError(src + ": larger than " + std::to_string(kMaxConfigBytes) +
                       " bytes; not a config.json");
  }
  if (in.bad()) throw IoError(src + ": read failed");
  if (size_t bad = detail::find_invalid_utf8(text); bad != std::string::npos)
    throw InputError(src + ": not valid UTF-8 at byte offset " + std::to_string(bad));
  return from_json(detail::parse_json_strict(text, src), src);
}

ModelConfig ModelConfig::make(ModelFamily family, int64_t vocab_size, int64_t hidden_size,
                              int64_t n_layers, int64_t n_heads, int64_t n_kv_heads,
                              int64_t intermediate_size, int64_t max_position_embeddings) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = vocab_size;
  c.hidden_size = hidden_size;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.intermediate_size = intermediate_size;
  c.max_position_embeddings = max_position_embeddings;
  if (n_heads > 0 && hidden_size % n_heads == 0) c.head_dim = hidden_size / n_heads;
  if (family == ModelFamily::gpt2) {
    if (n_kv_heads != n_heads)
      throw InputError("<built-in config>: GPT-2 needs n_kv_heads == n_heads, got " +
                       std::to_string(n_kv_heads) + " and " + std::to_string(n_heads));
    c.hidden_act = "gelu_new";
    c.norm_eps = 1e-5;
    c.tie_word_embeddings = true;
    c.attention_bias = true;
  } else {
    c.hidden_act = "silu";
    c.norm_eps = 1e-6;
    c.tie_word_embeddings = false;
    c.attention_bias = family == ModelFamily::qwen2;
    if (family == ModelFamily::qwen3 && n_heads > 0) c.head_dim = hidden_size / n_heads;
  }
  return from_json(c.to_json(false), "<built-in config>");
}

json ModelConfig::to_json(bool scalar_head) const {
  json j = raw.is_object() ? raw : json::object();
  j["model_type"] = model_family_name(family);
  j["vocab_size"] = vocab_size;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (family == ModelFamily::gpt2) {
    j["n_embd"] = hidden_size;
    j["n_layer"] = n_layers;
    j["n_head"] = n_heads;
    j["n_positions"] = max_position_embeddings;
    j["n_inner"] = intermediate_size;
    j["layer_norm_epsilon"] = norm_eps;
    j["activation_function"] = hidden_act.empty() ? "gelu_new" : hidden_act;
  } else {
    j["hidden_size"] = hidden_size;
    j["num_hidden_layers"] = n_layers;
    j["num_attention_heads"] = n_heads;
    j["num_key_value_heads"] = n_kv_heads;
    if (head_dim > 0) j["head_dim"] = head_dim;
    else j.erase("head_dim");
    j["intermediate_size"] = intermediate_size;
    j["max_position_embeddings"] = max_position_embeddings;
    j["rms_norm_eps"] = norm_eps;
    j["hidden_act"] = hidden_act.empty() ? "silu" : hidden_act;
    // Both spellings, so that transformers 4.x (rope_theta + rope_scaling) and 5.x
    // (rope_parameters, overridden by a non-null rope_scaling) read the same rotary embedding.
    json params = {{"rope_type", "default"}, {"rope_theta", rope_theta}};
    json scaling = nullptr;
    if (rope_scaling.type == "linear") {
      scaling = {{"rope_type", "linear"}, {"factor", rope_scaling.factor}};
    } else if (rope_scaling.type == "llama3") {
      scaling = {{"rope_type", "llama3"},
                 {"factor", rope_scaling.factor},
                 {"low_freq_factor", rope_scaling.low_freq_factor},
                 {"high_freq_factor", rope_scaling.high_freq_factor},
                 {"original_max_position_embeddings",
                  rope_scaling.original_max_position_embeddings}};
    }
    if (rope_scaling.type == "longrope") {
      scaling = {{"rope_type", "longrope"},
                 {"short_factor", rope_scaling.short_factor},
                 {"long_factor", rope_scaling.long_factor},
                 {"factor", rope_scaling.factor},
                 {"attention_factor", rope_scaling.attention_factor},
                 {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
    }
    if (rotary_dim > 0)
      params["partial_rotary_factor"] = static_cast<double>(rotary_dim) / static_cast<double>(head_dim);
    if (!scaling.is_null()) params.update(scaling);
    j["rope_theta"] = rope_theta;
    j["rope_scaling"] = scaling;
    j["rope_parameters"] = params;
    switch (family) {
      case ModelFamily::llama:
      case ModelFamily::olmo2:
        j["attention_bias"] = attention_bias;
        break;
      case ModelFamily::smollm3: {
        j["attention_bias"] = attention_bias;
        std::vector<int> rope;
        std::vector<std::string> types;
        int64_t window = 0;
        for (int64_t l = 0; l < n_layers; ++l) {
          rope.push_back(layer_rope.empty() || layer_rope[l]);
          types.push_back(this->window(l) > 0 ? "sliding_attention" : "full_attention");
          window = std::max(window, this->window(l));
        }
        j["no_rope_layers"] = rope;
        j["use_sliding_window"] = window > 0;
        j["sliding_window"] = window > 0 ? json(window) : json(nullptr);
        j["layer_types"] = types;
        break;
      }
      case ModelFamily::mistral:
        j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
        break;
      case ModelFamily::phi3:
        j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
        j["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
        if (rotary_dim > 0) j["partial_rotary_factor"] = params["partial_rotary_factor"];
        else j.erase("partial_rotary_factor");
        j.erase("rope_scaling");  // rope_parameters says it all; transformers prefers a non-null rope_scaling
        break;
      case ModelFamily::qwen2:
      case ModelFamily::qwen3: {
        if (family == ModelFamily::qwen3) j["attention_bias"] = attention_bias;
        // layer_types says which layers slide (qwen_sliding_windows); max_window_layers is
        // read only without it.
        std::vector<std::string> types;
        int64_t window = 0;
        for (int64_t l = 0; l < n_layers; ++l) {
          types.push_back(this->window(l) > 0 ? "sliding_attention" : "full_attention");
          window = std::max(window, this->window(l));
        }
        j["use_sliding_window"] = window > 0;
        if (window > 0) j["sliding_window"] = window;
        j["layer_types"] = types;
        break;
      }
      case ModelFamily::gemma2:
      case ModelFamily::gemma3_text: {
        j.erase("hidden_act");
        j["hidden_activation"] = hidden_act.empty() ? "gelu_pytorch_tanh" : hidden_act;
        j["attention_bias"] = attention_bias;
        // An integer field in Gemma's config classes (transformers refuses 8.0 there).
        const double qpas = query_pre_attn_scalar > 0 ? query_pre_attn_scalar : static_cast<double>(head_dim);
        j["query_pre_attn_scalar"] = qpas == std::floor(qpas) ? json(static_cast<int64_t>(qpas)) : json(qpas);
        j["attn_logit_softcapping"] = attn_softcap > 0 ? json(attn_softcap) : json(nullptr);
        j["final_logit_softcapping"] = final_softcap > 0 ? json(final_softcap) : json(nullptr);
        std::vector<std::string> types;
        int64_t window = 0;
        for (int64_t l = 0; l < n_layers; ++l) {
          const bool sliding = layer_local_rope.empty() ? this->window(l) > 0 : local_rope(l);
          types.push_back(sliding ? "sliding_attention" : "full_attention");
          window = std::max(window, this->window(l));
        }
        j["sliding_window"] = window > 0 ? json(window) : json(nullptr);
        j["layer_types"] = types;
        if (family == ModelFamily::gemma3_text) {  // rope per layer type (parse_gemma3_rope)
          j.erase("rope_scaling");
          j.erase("rope_local_base_freq");
          j["rope_parameters"] = {{"full_attention", params},
                                  {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", rope_local_theta}}}};
        }
        break;
      }
      case ModelFamily::gpt2:
        break;
    }
  }
  j["torch_dtype"] = "float32";
  j["dtype"] = "float32";
  j["architectures"] = json::array({architecture(family, scalar_head)});
  if (scalar_head) {
    j["num_labels"] = num_labels;
    const bool keep = j.contains("id2label") && j["id2label"].is_object() &&
                      static_cast<int64_t>(j["id2label"].size()) == num_labels;
    if (!keep) {
      json id2label = json::object(), label2id = json::object();
      for (int64_t i = 0; i < num_labels; ++i) {
        id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
        label2id["LABEL_" + std::to_string(i)] = i;
      }
      j["id2label"] = id2label;
      j["label2id"] = label2id;
    }
  }
  return j;
}

}  // namespace rlhf
