// config.json parsing and saving: docs/reliability.md §7 test 12 (missing or mistyped fields,
// non-positive sizes, heads not dividing the width, absurd sizes -> InputError naming the file and
// the field), the family field mappings and defaults, and to_json round trips.
#include <gtest/gtest.h>

#include "model/config.h"
#include "model_test_util.h"
#include "tensor/error.h"

namespace rlhf {
namespace {

using nlohmann::json;
using test::expect_error;
using test::TempDir;

json gpt2_json() {
  return {{"model_type", "gpt2"}, {"vocab_size", 50257}, {"n_embd", 768}, {"n_layer", 12},
          {"n_head", 12},         {"n_positions", 1024}, {"n_inner", nullptr}};
}

json llama_json() {
  return {{"model_type", "llama"},
          {"vocab_size", 128256},
          {"hidden_size", 2048},
          {"num_hidden_layers", 16},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 8},
          {"intermediate_size", 8192},
          {"max_position_embeddings", 131072},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"rope_scaling",
           {{"rope_type", "llama3"},
            {"factor", 32.0},
            {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0},
            {"original_max_position_embeddings", 8192}}},
          {"tie_word_embeddings", true},
          {"hidden_act", "silu"},
          {"some_unknown_field", {1, 2, 3}}};
}

json qwen2_json() {
  return {{"model_type", "qwen2"},          {"vocab_size", 151936},
          {"hidden_size", 896},             {"num_hidden_layers", 24},
          {"num_attention_heads", 14},      {"num_key_value_heads", 2},
          {"intermediate_size", 4864},      {"max_position_embeddings", 32768},
          {"rms_norm_eps", 1e-6},           {"rope_theta", 1000000.0},
          {"sliding_window", 32768},        {"use_sliding_window", false},
          {"max_window_layers", 21},        {"tie_word_embeddings", true}};
}

json mistral_json() {
  return {{"model_type", "mistral"},   {"vocab_size", 32000},
          {"hidden_size", 4096},       {"num_hidden_layers", 32},
          {"num_attention_heads", 32}, {"num_key_value_heads", 8},
          {"head_dim", 128},           {"intermediate_size", 14336},
          {"max_position_embeddings", 32768}, {"sliding_window", 4096}};
}

class Config : public ::testing::Test {
 protected:
  // Writes `j` as config.json and loads it.
  ModelConfig load(const json& j) {
    test::write_bytes(path(), j.dump(2));
    return ModelConfig::load(path());
  }
  std::string path() const { return (dir_ / "config.json").string(); }
  // Loading `j` from config.json must fail naming the file, the field and `parts`.
  void expect_rejected(const json& j, const std::string& field,
                       std::initializer_list<std::string> parts = {}) {
    test::write_bytes(path(), j.dump(2));
    expect_error<InputError>([&] { ModelConfig::load(path()); },
                             {path(), "field '" + field + "'"});
    expect_error<InputError>([&] { ModelConfig::load(path()); }, parts);
  }
  TempDir dir_;
};

// ---- Family mappings ----------------------------------------------------------------------------

TEST_F(Config, Gpt2FieldsAndDefaults) {
  ModelConfig c = load(gpt2_json());
  EXPECT_EQ(c.family, ModelFamily::gpt2);
  EXPECT_EQ(c.vocab_size, 50257);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.n_layers, 12);
  EXPECT_EQ(c.n_heads, 12);
  EXPECT_EQ(c.n_kv_heads, 12);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 4 * 768);  // n_inner null
  EXPECT_EQ(c.max_position_embeddings, 1024);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.hidden_act, "gelu_new");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.num_labels, 1);
  EXPECT_EQ(c.qkv_dim(), 3 * 768);
}

TEST_F(Config, Gpt2ExplicitInnerEpsAndActivation) {
  json j = gpt2_json();
  j["n_inner"] = 1000;
  j["layer_norm_epsilon"] = 1e-6;
  j["activation_function"] = "gelu_pytorch_tanh";
  j["tie_word_embeddings"] = false;
  ModelConfig c = load(j);
  EXPECT_EQ(c.intermediate_size, 1000);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST_F(Config, Gpt2UnsupportedActivationIsRejected) {
  json j = gpt2_json();
  j["activation_function"] = "relu";
  expect_rejected(j, "activation_function", {"\"relu\" is not supported"});
}

TEST_F(Config, LlamaFieldsWithGqaAndLlama3RopeScaling) {
  ModelConfig c = load(llama_json());
  EXPECT_EQ(c.family, ModelFamily::llama);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.qkv_dim(), (32 + 16) * 64);
  EXPECT_EQ(c.intermediate_size, 8192);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.hidden_act, "silu");
}

TEST_F(Config, LlamaDefaults) {
  json j = llama_json();
  for (const char* k : {"num_key_value_heads", "rms_norm_eps", "rope_theta", "rope_scaling",
                        "tie_word_embeddings", "hidden_act"})
    j.erase(k);
  ModelConfig c = load(j);
  EXPECT_EQ(c.n_kv_heads, 32);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, "none");
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
}

TEST_F(Config, LlamaAttentionBiasAndExplicitHeadDim) {
  json j = llama_json();
  j["attention_bias"] = true;
  j["head_dim"] = 128;
  j["rope_scaling"] = nullptr;
  ModelConfig c = load(j);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.qkv_dim(), (32 + 16) * 128);
  EXPECT_EQ(c.rope_scaling.type, "none");
}

TEST_F(Config, LlamaMlpBiasIsRejected) {
  json j = llama_json();
  j["mlp_bias"] = true;
  expect_rejected(j, "mlp_bias", {"not supported"});
}

TEST_F(Config, RopeThetaInsideRopeParameters) {
  json j = llama_json();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  ModelConfig c = load(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 250000.0);
  EXPECT_EQ(c.rope_scaling.type, "none");
}

TEST_F(Config, Llama3ScalingInsideRopeParameters) {
  json j = llama_json();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}};
  ModelConfig c = load(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  // transformers 5 defaults it to max_position_embeddings.
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 131072);
}

TEST_F(Config, RopeScalingLinearWithLegacyTypeKey) {
  json j = llama_json();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ModelConfig c = load(j);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2.0);
}

TEST_F(Config, RopeScalingDefaultTypeMeansNone) {
  json j = llama_json();
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(load(j).rope_scaling.type, "none");
}

TEST_F(Config, RopeScalingUnsupportedTypeIsRejected) {
  json j = llama_json();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_rejected(j, "rope_scaling.rope_type", {"\"yarn\" is not supported", "llama3"});
}

TEST_F(Config, RopeScalingLlama3MissingFactorIsRejected) {
  json j = llama_json();
  j["rope_scaling"].erase("low_freq_factor");
  expect_rejected(j, "rope_scaling.low_freq_factor", {"expected a positive number"});
}

TEST_F(Config, RopeScalingNotAnObjectIsRejected) {
  json j = llama_json();
  j["rope_scaling"] = "llama3";
  expect_rejected(j, "rope_scaling", {"expected an object or null"});
}

TEST_F(Config, Qwen2AlwaysHasQkvBiasAndNoWindowUnlessEnabled) {
  ModelConfig c = load(qwen2_json());
  EXPECT_EQ(c.family, ModelFamily::qwen2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window false
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  json j = qwen2_json();
  j.erase("tie_word_embeddings");
  EXPECT_FALSE(load(j).tie_word_embeddings);  // transformers' Qwen2Config default
}

TEST_F(Config, Qwen2SlidingWindowOnAllLayers) {
  json j = qwen2_json();
  j["use_sliding_window"] = true;
  j["sliding_window"] = 4096;
  j["max_window_layers"] = 0;
  EXPECT_EQ(load(j).sliding_window, 4096);
  j["max_window_layers"] = 24;  // no layer slides
  EXPECT_EQ(load(j).sliding_window, 0);
  j["sliding_window"] = nullptr;
  j["max_window_layers"] = 0;
  EXPECT_EQ(load(j).sliding_window, 0);
}

TEST_F(Config, Qwen2MixedSlidingLayersHaveTheirOwnWindows) {
  json j = qwen2_json();
  j["use_sliding_window"] = true;  // max_window_layers 21 of 24: layers 21..23 slide
  ModelConfig c = load(j);
  EXPECT_EQ(c.sliding_window, 0);
  ASSERT_EQ(c.layer_window.size(), 24u);
  for (int64_t l = 0; l < 24; ++l) EXPECT_EQ(c.window(l), l >= 21 ? 32768 : 0) << l;
  j["layer_types"] = json::array();
  for (int i = 0; i < 24; ++i) j["layer_types"].push_back(i % 2 ? "sliding_attention" : "full_attention");
  c = load(j);
  for (int64_t l = 0; l < 24; ++l) EXPECT_EQ(c.window(l), l % 2 ? 32768 : 0) << l;
  // Saved with layer_types, it reads back the same windows.
  const ModelConfig back = ModelConfig::from_json(c.to_json(false), "saved");
  EXPECT_EQ(back.layer_window, c.layer_window);
  j["layer_types"][3] = "chunked_attention";
  expect_rejected(j, "layer_types", {"unsupported layer type", "chunked_attention"});
  j["layer_types"] = json::array({"full_attention"});
  expect_rejected(j, "layer_types", {"expected an array of 24 layer types"});
}

TEST_F(Config, Qwen3QkNormHeadDimAndBias) {
  json j = qwen2_json();
  j["model_type"] = "qwen3";
  j["head_dim"] = 128;  // Qwen3-0.6B: 16 heads of 128 in a width of 1024
  j["hidden_size"] = 1024;
  j["num_attention_heads"] = 16;
  ModelConfig c = load(j);
  EXPECT_EQ(c.family, ModelFamily::qwen3);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.block.qk_norm, QkNorm::per_head);
  EXPECT_FALSE(c.attention_bias);  // Qwen3Config's default, unlike Qwen2's fixed q/k/v bias
  EXPECT_FALSE(c.block.qkv_bias || c.block.attn_out_bias);
  j.erase("head_dim");
  EXPECT_EQ(load(j).head_dim, 128);  // Qwen3Config's default, not hidden / heads = 64
  j["attention_bias"] = true;
  c = load(j);
  EXPECT_TRUE(c.block.qkv_bias && c.block.attn_out_bias);  // Qwen3's covers o_proj too
  EXPECT_EQ(c.to_json(true)["architectures"], json::array({"Qwen3ForSequenceClassification"}));
}

TEST_F(Config, SmolLM3NoRopeLayers) {
  json j = llama_json();
  j["model_type"] = "smollm3";
  j["num_hidden_layers"] = 8;
  j.erase("tie_word_embeddings");
  ModelConfig c = load(j);
  EXPECT_EQ(c.family, ModelFamily::smollm3);
  EXPECT_TRUE(c.tie_word_embeddings);  // SmolLM3Config's default
  for (int64_t l = 0; l < 8; ++l) EXPECT_EQ(c.rotates(l), (l + 1) % 4 != 0) << l;  // every 4th layer is NoPE
  j["no_rope_layers"] = {1, 1, 0, 1, 1, 1, 1, 0};
  c = load(j);
  for (int64_t l = 0; l < 8; ++l) EXPECT_EQ(c.rotates(l), l != 2 && l != 7) << l;
  j["no_rope_layer_interval"] = 2;  // no_rope_layers wins
  EXPECT_EQ(load(j).layer_rope, c.layer_rope);
  // With a window, only the NoPE layers slide (SmolLM3Config's layer_types).
  j["use_sliding_window"] = true;
  j["sliding_window"] = 64;
  c = load(j);
  for (int64_t l = 0; l < 8; ++l) EXPECT_EQ(c.window(l), l == 2 || l == 7 ? 64 : 0) << l;
  const ModelConfig back = ModelConfig::from_json(c.to_json(false), "saved");
  EXPECT_EQ(back.layer_rope, c.layer_rope);
  EXPECT_EQ(back.layer_window, c.layer_window);
  j["no_rope_layers"] = {1, 2, 0, 1, 1, 1, 1, 0};
  expect_rejected(j, "no_rope_layers", {"expected 0 or 1"});
  j["no_rope_layers"] = {1, 0};
  expect_rejected(j, "no_rope_layers", {"array of 8"});
}

TEST_F(Config, Olmo2PostNormsAndWholeQkNorms) {
  json j = llama_json();
  j["model_type"] = "olmo2";
  j.erase("rms_norm_eps");
  j["pad_token_id"] = 1;
  ModelConfig c = load(j);
  EXPECT_EQ(c.family, ModelFamily::olmo2);
  EXPECT_EQ(c.block.norm_placement, NormPlacement::post);
  EXPECT_EQ(c.block.qk_norm, QkNorm::whole);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);  // Olmo2Config's default
  EXPECT_EQ(c.padding_idx, 1);
  j["pad_token_id"] = -1;  // nn.Embedding counts a negative padding_idx from the end
  EXPECT_EQ(load(j).padding_idx, c.vocab_size - 1);
  j["pad_token_id"] = c.vocab_size;
  expect_rejected(j, "pad_token_id", {"exceeds"});
  EXPECT_EQ(c.to_json(false)["architectures"], json::array({"Olmo2ForCausalLM"}));
}

json gemma_json(const std::string& type) {
  return {{"model_type", type},          {"vocab_size", 256000},    {"hidden_size", 2304},
          {"num_hidden_layers", 12},     {"num_attention_heads", 8}, {"num_key_value_heads", 4},
          {"intermediate_size", 9216}};
}

TEST_F(Config, Gemma2Defaults) {
  ModelConfig c = load(gemma_json("gemma2"));
  EXPECT_EQ(c.family, ModelFamily::gemma2);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.block.norm, NormKind::rmsnorm_offset);
  EXPECT_EQ(c.block.norm_placement, NormPlacement::sandwich);
  EXPECT_EQ(c.block.mlp, MlpKind::geglu);
  EXPECT_EQ(c.block.qk_norm, QkNorm::none);
  EXPECT_FLOAT_EQ(c.block.embed_scale, std::sqrt(2304.0f));
  EXPECT_FLOAT_EQ(c.block.attn_softcap, 50.0f);
  EXPECT_FLOAT_EQ(c.block.final_softcap, 30.0f);
  EXPECT_DOUBLE_EQ(c.query_pre_attn_scalar, 256);
  // An int in Gemma's config classes: transformers refuses 256.0 (found by the export round trip).
  EXPECT_TRUE(c.to_json(false)["query_pre_attn_scalar"].is_number_integer());
  for (int64_t l = 0; l < 12; ++l) EXPECT_EQ(c.window(l), l % 2 == 0 ? 4096 : 0) << l;  // alternating
  EXPECT_TRUE(c.layer_local_rope.empty());
  json j = gemma_json("gemma2");
  j["final_logit_softcapping"] = nullptr;
  j["attn_logit_softcapping"] = nullptr;
  c = load(j);
  EXPECT_EQ(c.block.final_softcap, 0.0f);
  EXPECT_EQ(c.block.attn_softcap, 0.0f);
  j["hidden_activation"] = "silu";
  expect_rejected(j, "hidden_activation", {"\"silu\" is not supported"});
}

TEST_F(Config, Gemma3RopePerLayerTypeInBothSpellings) {
  ModelConfig c = load(gemma_json("gemma3_text"));
  EXPECT_EQ(c.block.qk_norm, QkNorm::per_head);
  EXPECT_EQ(c.block.attn_softcap, 0.0f);
  EXPECT_EQ(c.block.final_softcap, 0.0f);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.rope_local_theta, 1e4);
  for (int64_t l = 0; l < 12; ++l) {  // 5 sliding, 1 global
    EXPECT_EQ(c.window(l) > 0, (l + 1) % 6 != 0) << l;
    EXPECT_EQ(c.local_rope(l), (l + 1) % 6 != 0) << l;
  }
  json old = gemma_json("gemma3_text");  // transformers 4.x spelling
  old["rope_theta"] = 5e5;
  old["rope_local_base_freq"] = 2e4;
  old["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  old["sliding_window_pattern"] = 3;
  c = load(old);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5e5);
  EXPECT_DOUBLE_EQ(c.rope_local_theta, 2e4);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_EQ(c.local_rope(2), false);
  EXPECT_EQ(c.local_rope(3), true);
  // Saved, it reads back the same (transformers 5 nested rope_parameters).
  const ModelConfig back = ModelConfig::from_json(c.to_json(false), "saved");
  EXPECT_DOUBLE_EQ(back.rope_theta, 5e5);
  EXPECT_DOUBLE_EQ(back.rope_local_theta, 2e4);
  EXPECT_EQ(back.rope_scaling.type, "linear");
  EXPECT_EQ(back.layer_local_rope, c.layer_local_rope);
  EXPECT_EQ(back.layer_window, c.layer_window);
  json bad = gemma_json("gemma3_text");
  bad["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}},
                            {"sliding_attention", {{"rope_type", "linear"}, {"factor", 2.0}}}};
  expect_rejected(bad, "rope_parameters.sliding_attention.rope_type", {"only \"default\""});
  bad = gemma_json("gemma3_text");
  bad["use_bidirectional_attention"] = true;
  expect_rejected(bad, "use_bidirectional_attention", {"causal"});
}

TEST_F(Config, Phi3PartialRotaryAndLongRope) {
  json j = llama_json();
  j["model_type"] = "phi3";
  j["hidden_size"] = 3072;  // Phi-4-mini: 24 heads of 128, 8 kv heads
  j["num_attention_heads"] = 24;
  j["num_key_value_heads"] = 8;
  j.erase("head_dim");
  j["max_position_embeddings"] = 131072;
  j["original_max_position_embeddings"] = 4096;
  j["partial_rotary_factor"] = 0.75;  // Phi-4-mini
  j.erase("rope_scaling");
  std::vector<double> shorts(48, 1.0), longs(48, 2.0);
  j["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 10000.0}, {"short_factor", shorts},
                          {"long_factor", longs}};
  ModelConfig c = load(j);
  EXPECT_EQ(c.family, ModelFamily::phi3);
  EXPECT_EQ(c.rotary_dim, 96);
  EXPECT_EQ(c.rope_scaling.type, "longrope");
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);  // max / original
  EXPECT_NEAR(c.rope_scaling.attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1e-12);
  const ModelConfig back = ModelConfig::from_json(c.to_json(false), "saved");
  EXPECT_EQ(back.rotary_dim, 96);
  EXPECT_EQ(back.rope_scaling.long_factor, c.rope_scaling.long_factor);
  EXPECT_DOUBLE_EQ(back.rope_scaling.attention_factor, c.rope_scaling.attention_factor);
  j["rope_parameters"]["rope_type"] = "su";  // Phi3Config reads su and yarn as longrope
  EXPECT_EQ(load(j).rope_scaling.type, "longrope");
  j["rope_parameters"]["long_factor"] = std::vector<double>(47, 2.0);
  expect_rejected(j, "rope_parameters.long_factor", {"48 positive numbers"});
  j["rope_parameters"]["long_factor"] = longs;
  j["partial_rotary_factor"] = 0.7;  // int(128 * 0.7) = 89: odd
  expect_rejected(j, "partial_rotary_factor", {"even rotary dimension"});
  j = llama_json();
  j["rope_scaling"] = {{"rope_type", "longrope"}};  // only Phi-3 reads longrope
  expect_rejected(j, "rope_scaling.rope_type", {"not supported"});
}

TEST_F(Config, MistralSlidingWindow) {
  ModelConfig c = load(mistral_json());
  EXPECT_EQ(c.family, ModelFamily::mistral);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  json j = mistral_json();
  j["sliding_window"] = nullptr;
  EXPECT_EQ(load(j).sliding_window, 0);
  j.erase("sliding_window");
  EXPECT_EQ(load(j).sliding_window, 4096);  // transformers' MistralConfig default
}

TEST_F(Config, HiddenActMustBeSilu) {
  json j = mistral_json();
  j["hidden_act"] = "gelu";
  expect_rejected(j, "hidden_act", {"\"gelu\" is not supported"});
}

TEST_F(Config, NumLabelsFromFieldOrId2Label) {
  json j = llama_json();
  EXPECT_EQ(load(j).num_labels, 1);
  j["id2label"] = {{"0", "LABEL_0"}, {"1", "LABEL_1"}, {"2", "LABEL_2"}};
  EXPECT_EQ(load(j).num_labels, 3);
  j["num_labels"] = 3;
  EXPECT_EQ(load(j).num_labels, 3);
  j["num_labels"] = 2;
  expect_rejected(j, "num_labels", {"id2label has 3 entries"});
  j.erase("id2label");
  EXPECT_EQ(load(j).num_labels, 2);
}

// ---- Test 12: rejected fields --------------------------------------------------------------------

TEST_F(Config, Test12_MissingRequiredField) {
  json j = gpt2_json();
  j.erase("n_embd");
  expect_rejected(j, "n_embd", {"expected a positive integer", "missing"});
  json l = llama_json();
  l.erase("intermediate_size");
  expect_rejected(l, "intermediate_size", {"expected a positive integer", "missing"});
}

TEST_F(Config, Test12_FieldAsString) {
  json j = gpt2_json();
  j["n_embd"] = "768";
  expect_rejected(j, "n_embd", {"expected a positive integer, got string \"768\""});
}

TEST_F(Config, Test12_FieldAsFloat) {
  json j = llama_json();
  j["hidden_size"] = 2048.0;
  expect_rejected(j, "hidden_size", {"expected a positive integer, got number 2048.0"});
}

TEST_F(Config, Test12_FieldAsBoolOrNull) {
  json j = llama_json();
  j["num_hidden_layers"] = true;
  expect_rejected(j, "num_hidden_layers", {"expected a positive integer, got boolean"});
  j["num_hidden_layers"] = nullptr;
  expect_rejected(j, "num_hidden_layers", {"expected a positive integer, got null"});
}

TEST_F(Config, Test12_WrongTypeForOptionalFields) {
  json j = llama_json();
  j["tie_word_embeddings"] = "yes";
  expect_rejected(j, "tie_word_embeddings", {"expected true or false"});
  j = llama_json();
  j["rms_norm_eps"] = "1e-5";
  expect_rejected(j, "rms_norm_eps", {"expected a positive number"});
  j = llama_json();
  j["hidden_act"] = 1;
  expect_rejected(j, "hidden_act", {"expected a string"});
  j = gpt2_json();
  j["layer_norm_epsilon"] = -1e-5;
  expect_rejected(j, "layer_norm_epsilon", {"expected a positive number"});
}

TEST_F(Config, Test12_ZeroSize) {
  json j = gpt2_json();
  j["n_layer"] = 0;
  expect_rejected(j, "n_layer", {"expected a positive integer, got 0"});
}

TEST_F(Config, Test12_NegativeSize) {
  json j = llama_json();
  j["vocab_size"] = -5;
  expect_rejected(j, "vocab_size", {"expected a positive integer, got -5"});
  j = llama_json();
  j["num_key_value_heads"] = -8;
  expect_rejected(j, "num_key_value_heads", {"got -8"});
}

TEST_F(Config, Test12_HeadsNotDividingHidden) {
  json j = gpt2_json();
  j["n_head"] = 7;
  expect_rejected(j, "n_head", {"7 heads do not divide n_embd 768"});
  json l = llama_json();
  l["num_attention_heads"] = 30;
  l["num_key_value_heads"] = 10;
  expect_rejected(l, "num_attention_heads", {"30 heads do not divide hidden_size 2048"});
}

TEST_F(Config, Test12_HeadDimGivenNeedNotDivide) {
  json l = llama_json();
  l["num_attention_heads"] = 24;
  l["head_dim"] = 64;  // 24 * 64 != 2048 is fine when head_dim is explicit
  EXPECT_EQ(load(l).head_dim, 64);
}

TEST_F(Config, Test12_KvHeadsNotDividingHeads) {
  json j = llama_json();
  j["num_key_value_heads"] = 5;
  expect_rejected(j, "num_key_value_heads", {"5 key/value heads do not divide num_attention_heads 32"});
  j["num_key_value_heads"] = 64;
  expect_rejected(j, "num_key_value_heads", {"64 key/value heads"});
}

TEST_F(Config, Test12_BillionLayers) {
  json j = llama_json();
  j["num_hidden_layers"] = 1000000000;
  expect_rejected(j, "num_hidden_layers", {"1000000000 exceeds the limit of 1024"});
  json g = gpt2_json();
  g["n_layer"] = 1000000000;
  expect_rejected(g, "n_layer", {"exceeds the limit of 1024"});
}

TEST_F(Config, Test12_EverySizeIsCapped) {
  const std::pair<const char*, int64_t> caps[] = {
      {"hidden_size", 65536},        {"vocab_size", 4000000},
      {"num_attention_heads", 1024}, {"num_key_value_heads", 1024},
      {"intermediate_size", 1000000}, {"max_position_embeddings", 10000000},
      {"head_dim", 65536}};
  for (const auto& [field, cap] : caps) {
    SCOPED_TRACE(field);
    json j = llama_json();
    j[field] = cap + 1;
    expect_rejected(j, field, {"exceeds the limit of " + std::to_string(cap)});
  }
  json j = llama_json();
  j["vocab_size"] = 18446744073709551615ull;
  expect_rejected(j, "vocab_size", {"exceeds the limit"});
  json g = gpt2_json();
  g["n_inner"] = 2000000;
  expect_rejected(g, "n_inner", {"exceeds the limit of 1000000"});
}

TEST_F(Config, Test12_UnknownModelType) {
  json j = gpt2_json();
  j["model_type"] = "bert";
  expect_rejected(j, "model_type", {"\"bert\"", "gpt2, llama, qwen2, mistral"});
  j.erase("model_type");
  expect_rejected(j, "model_type", {"missing", "gpt2, llama, qwen2, mistral"});
}

TEST_F(Config, Test12_NotAJsonObject) {
  test::write_bytes(path(), "[1, 2, 3]");
  expect_error<InputError>([&] { ModelConfig::load(path()); }, {path(), "JSON object", "array"});
  expect_error<InputError>([&] { ModelConfig::from_json(json(3), "cfg"); }, {"cfg", "JSON object"});
}

// A number beyond a double's range (found by fuzz/fuzz_config) is an InputError naming the file,
// not an exception of the JSON library.
TEST_F(Config, Test12_NumberBeyondADoubleIsAnInputError) {
  test::write_bytes(path(), "{\"model_type\": \"gpt2\", \"n_embd\": 1e600}");
  expect_error<InputError>([&] { ModelConfig::load(path()); }, {path()});
}

TEST_F(Config, Test12_ParseErrorHasLineAndColumn) {
  test::write_bytes(path(), "{\n  \"model_type\": \"gpt2\",\n  \"n_embd\": 768,,\n}");
  expect_error<InputError>([&] { ModelConfig::load(path()); },
                           {path(), "invalid JSON", "line 3, column 17"});
}

TEST_F(Config, Test12_DuplicateFieldIsRejected) {
  test::write_bytes(path(), R"({"model_type": "gpt2", "n_layer": 12, "n_layer": 1000})");
  expect_error<InputError>([&] { ModelConfig::load(path()); }, {path(), "duplicate key \"n_layer\""});
}

TEST_F(Config, Test12_MissingFileIsIoError) {
  expect_error<IoError>([&] { ModelConfig::load(dir_ / "nope.json"); }, {"nope.json"});
}

// ---- to_json / make ------------------------------------------------------------------------------

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
  EXPECT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings,
            b.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.layer_window, b.layer_window);
  EXPECT_EQ(a.block, b.block);
  EXPECT_EQ(a.hidden_act, b.hidden_act);
  EXPECT_EQ(a.num_labels, b.num_labels);
}

TEST_F(Config, ToJsonRoundTripsEveryFamily) {
  json q = qwen2_json();
  q["use_sliding_window"] = true;
  q["max_window_layers"] = 0;
  json q3 = qwen2_json();
  q3["model_type"] = "qwen3";
  q3["use_sliding_window"] = true;  // layers 21..23 slide
  for (const json& j : {gpt2_json(), llama_json(), qwen2_json(), q, mistral_json(), q3, gemma_json("gemma2"),
                        gemma_json("gemma3_text")}) {
    SCOPED_TRACE(j.dump());
    ModelConfig c = load(j);
    for (bool scalar : {false, true}) {
      ModelConfig back = ModelConfig::from_json(c.to_json(scalar), "saved");
      expect_same(c, back);
    }
  }
}

TEST_F(Config, ToJsonWritesFamilyNamesDtypeAndArchitecture) {
  const json g = load(gpt2_json()).to_json(false);
  EXPECT_EQ(g["architectures"], json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(g["n_embd"], 768);
  EXPECT_EQ(g["n_inner"], 3072);
  EXPECT_FALSE(g.contains("hidden_size"));
  EXPECT_EQ(g["torch_dtype"], "float32");
  EXPECT_EQ(g["dtype"], "float32");

  const json l = load(llama_json()).to_json(false);
  EXPECT_EQ(l["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(l["num_key_value_heads"], 8);
  EXPECT_EQ(l["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(l["rope_parameters"]["rope_type"], "llama3");
  EXPECT_EQ(l["rope_parameters"]["rope_theta"], 500000.0);
  EXPECT_EQ(l["some_unknown_field"], json({1, 2, 3})) << "unknown fields are kept";

  EXPECT_EQ(load(qwen2_json()).to_json(false)["architectures"], json::array({"Qwen2ForCausalLM"}));
  EXPECT_EQ(load(mistral_json()).to_json(false)["architectures"],
            json::array({"MistralForCausalLM"}));
}

TEST_F(Config, ToJsonScalarHeadWritesClassifierAndLabels) {
  ModelConfig c = load(llama_json());
  json j = c.to_json(true);
  EXPECT_EQ(j["architectures"], json::array({"LlamaForSequenceClassification"}));
  EXPECT_EQ(j["num_labels"], 1);
  EXPECT_EQ(j["id2label"], json({{"0", "LABEL_0"}}));
  EXPECT_EQ(j["label2id"], json({{"LABEL_0", 0}}));
  EXPECT_EQ(ModelConfig::from_json(j, "saved").num_labels, 1);

  ModelConfig g = load(gpt2_json());
  g.num_labels = 2;
  json gj = g.to_json(true);
  EXPECT_EQ(gj["architectures"], json::array({"GPT2ForSequenceClassification"}));
  EXPECT_EQ(gj["id2label"].size(), 2u);
  EXPECT_EQ(ModelConfig::from_json(gj, "saved").num_labels, 2);
  EXPECT_EQ(load(qwen2_json()).to_json(true)["architectures"],
            json::array({"Qwen2ForSequenceClassification"}));
  EXPECT_EQ(load(mistral_json()).to_json(true)["architectures"],
            json::array({"MistralForSequenceClassification"}));
}

TEST_F(Config, ModelFamilyNamesAreModelTypes) {
  EXPECT_STREQ(model_family_name(ModelFamily::gpt2), "gpt2");
  EXPECT_STREQ(model_family_name(ModelFamily::llama), "llama");
  EXPECT_STREQ(model_family_name(ModelFamily::qwen2), "qwen2");
  EXPECT_STREQ(model_family_name(ModelFamily::mistral), "mistral");
}

TEST_F(Config, FromJsonBuiltInCpp) {
  json j = {{"model_type", "qwen2"},          {"vocab_size", 1000},
            {"hidden_size", 64},              {"num_hidden_layers", 2},
            {"num_attention_heads", 4},       {"num_key_value_heads", 2},
            {"intermediate_size", 128},       {"max_position_embeddings", 256}};
  ModelConfig c = ModelConfig::from_json(j, "built");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.raw, j);
}

TEST_F(Config, MakeBuildsValidatedConfigsForEveryFamily) {
  ModelConfig g = ModelConfig::make(ModelFamily::gpt2, 100, 64, 2, 4, 4, 256, 128);
  EXPECT_EQ(g.family, ModelFamily::gpt2);
  EXPECT_EQ(g.head_dim, 16);
  EXPECT_EQ(g.hidden_act, "gelu_new");
  EXPECT_TRUE(g.tie_word_embeddings);
  EXPECT_EQ(g.raw["n_embd"], 64);
  for (ModelFamily f : {ModelFamily::llama, ModelFamily::qwen2, ModelFamily::mistral}) {
    ModelConfig c = ModelConfig::make(f, 100, 64, 2, 4, 2, 128, 256);
    EXPECT_EQ(c.family, f);
    EXPECT_EQ(c.n_kv_heads, 2);
    EXPECT_EQ(c.head_dim, 16);
    EXPECT_EQ(c.hidden_act, "silu");
    EXPECT_EQ(c.attention_bias, f == ModelFamily::qwen2);
    EXPECT_EQ(c.sliding_window, 0);
    EXPECT_EQ(c.rope_scaling.type, "none");
    EXPECT_EQ(c.raw["hidden_size"], 64);
  }
  expect_error<InputError>([] { ModelConfig::make(ModelFamily::llama, 100, 64, 2, 5, 5, 128, 256); },
                           {"field 'num_attention_heads'"});
  expect_error<InputError>([] { ModelConfig::make(ModelFamily::llama, 100, 64, 2000, 4, 4, 128, 256); },
                           {"field 'num_hidden_layers'"});
  expect_error<InputError>([] { ModelConfig::make(ModelFamily::gpt2, 100, 64, 2, 4, 2, 128, 256); },
                           {"n_kv_heads"});
}

TEST_F(Config, HandFilledStructSurvivesToJsonFromJson) {
  ModelConfig c = ModelConfig::make(ModelFamily::llama, 100, 64, 2, 4, 2, 128, 256);
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 4.0;
  c.rope_theta = 1e6;
  c.tie_word_embeddings = true;
  ModelConfig back = ModelConfig::from_json(c.to_json(false), "edited");
  expect_same(c, back);
}

}  // namespace
}  // namespace rlhf
