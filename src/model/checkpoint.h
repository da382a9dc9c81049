// Hugging Face checkpoints in and out: config.json + safetensors (single file or sharded).
//
// Each family declares, in its own file (gpt2.cpp, llama.cpp), how HF tensor names and layouts
// map onto our parameter slots: GPT-2's Conv1D weights are transposed at load time, Llama's
// q/k/v and gate/up projections are stacked into fused slots. Layout quirks live in that one
// table, never in the hot path. Loading checks the weights against the config and
// lists every missing, unexpected or misshaped tensor (docs/reliability.md §7 test 13) — no silent
// random initialisation, except a requested scalar head that the checkpoint lacks (as HF does
// when a reward model is initialised from a causal LM; reported in LoadReport).
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace rlhf {

// One HF tensor and where it lives in our slots.
struct HfTensor {
  std::string hf_name;
  std::vector<int64_t> hf_shape;
  std::string slot;       // our parameter slot
  int64_t row_offset = 0; // first row of the slot this tensor fills (stacked q|k|v, gate|up)
  bool transpose = false; // HF stores (in, out) — GPT-2's Conv1D
};

// The family tables (gpt2.cpp, llama.cpp). `prefix` is the trunk's prefix ("transformer." /
// "model."), which some GPT-2 checkpoints omit.
std::vector<HfTensor> gpt2_hf_layout(const ModelConfig& c, const std::string& prefix);
std::vector<HfTensor> llama_hf_layout(const ModelConfig& c, const std::string& prefix);
// The tensors of a model of this config and heads: a function of the two alone, so that a
// checkpoint's headers are checked against it before anything is allocated.
std::vector<HfTensor> hf_layout(const ModelConfig& c, ModelHeads heads, const std::string& prefix);
std::string hf_default_prefix(const ModelConfig& cfg);

// Copies one HF tensor out of a flat buffer laid out like m.params() (the parameters, or the
// gradients), in HF's shape and layout.
std::vector<float> export_hf_tensor(const Transformer& m, const HfTensor& t, std::span<const float> flat);

struct LoadReport {
  bool score_head_initialised = false;  // requested but absent from the checkpoint
  std::vector<std::string> ignored;     // tensors present but not used (e.g. score.weight)
};

// Loads a model directory. Throws InputError naming the file and the tensors at fault (missing,
// misshaped or unexpected tensors, and weights that are NaN or Inf).
Transformer load_checkpoint(const std::filesystem::path& dir, ModelHeads heads, LoadReport* report = nullptr,
                            uint64_t head_init_seed = 0);

// A trained reward model (the score head, no LM head). InputError naming `dir` when it has no
// score.weight: load_checkpoint would give it a random head, whose scores are noise.
Transformer load_reward_model(const std::filesystem::path& dir);

// The NaN and Inf values among v.
int64_t count_non_finite(std::span<const float> v);

// NumericError naming `target` and the first parameter with a NaN or Inf: nothing non-finite is
// saved (save_checkpoint and the training checkpoints check before they write), so a diverged run
// stops with its last checkpoint the newest. load_checkpoint refuses such weights too.
void require_finite_weights(const Transformer& m, const std::filesystem::path& target);

// Writes config.json and model.safetensors (F32) into `dir`, atomically: everything is written
// to a sibling temporary directory which then replaces `dir` (other files already in `dir`,
// such as metrics or earlier checkpoints, are carried over). Tokenizer files (tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, generation_config.json, chat_template.jinja)
// are copied from `copy_extra_from` when given.
void save_checkpoint(const Transformer& m, const std::filesystem::path& dir,
                     const std::filesystem::path& copy_extra_from = {});

// Writes config.json, model.safetensors and the tokenizer files into an existing directory
// (each file atomically); save_checkpoint and training checkpoints build on it.
void write_model_files(const Transformer& m, const std::filesystem::path& dir,
                       const std::filesystem::path& copy_extra_from = {});

}  // namespace rlhf
