// Training checkpoints that resume exactly: model (HF layout), AdamW moments, data order and
// RNG state, step counters — written so that a crash at any moment never leaves a checkpoint
// that loads as valid (docs/reliability.md tests 30–34).
//
// Layout, TRL-like: <out>/checkpoint-<step>/ with config.json, model.safetensors,
// optimizer.safetensors, trainer_state.json and, written last, manifest.json listing every
// file with its size and CRC-32. The directory is built as <out>/.tmp-checkpoint-<step> and
// renamed into place after every file is fsynced; the rename is the commit. On resume, the
// newest checkpoint-* whose manifest verifies is used; leftover .tmp-* directories are removed;
// a checkpoint whose files fail verification is an error naming the file, never silently
// skipped (a corrupt newest checkpoint is a fault the user must see).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "train/optimizer.h"

namespace rlhf {

// Loop position and randomness: everything besides weights and moments that a resumed run needs
// to continue exactly where the uninterrupted one would be.
// The loops' data order is a pure function of the seed and the step, so the step is all the
// position a resume needs.
struct TrainerState {
  int64_t global_step = 0;          // optimizer steps taken
  nlohmann::json fingerprint;       // settings that must not change across a resume
  nlohmann::json extra;             // loop-specific state
};

// <out_dir>/checkpoint-<step>: where the checkpoint of `step` is written.
std::filesystem::path checkpoint_dir(const std::filesystem::path& out_dir, int64_t step);

// Writes <out_dir>/checkpoint-<state.global_step>; then removes the oldest checkpoints beyond
// `keep_last` (0 keeps all). Returns the checkpoint's path.
std::filesystem::path save_training_checkpoint(const std::filesystem::path& out_dir, const Transformer& m,
                                               const AdamW& opt, const TrainerState& state, int64_t keep_last = 0);

// The newest committed checkpoint under out_dir, if any (removing abandoned .tmp-* directories).
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& out_dir);

// Verifies the manifest, then loads weights, moments and state. The model and optimizer must
// have been built for the same architecture; the state's fingerprint must equal `expected`
// (InputError listing the settings that differ); the step must be the directory's and the
// optimizer's step count a whole number (a crafted state is refused, never trusted).
void load_training_checkpoint(const std::filesystem::path& dir, Transformer& m, AdamW& opt, TrainerState& state,
                              const nlohmann::json& expected_fingerprint);

// The lines of a JSONL run log (metrics.jsonl, rollouts.jsonl) whose "step" is at most `step`:
// what a run resumed at `step` keeps of it (none when the file does not exist).
std::vector<std::string> lines_through_step(const std::filesystem::path& jsonl, int64_t step);

// --resume: loads the newest checkpoint in out_dir (InputError when there is none, or when its
// step is past the run's `max_steps`) and returns the lines of out_dir/metrics.jsonl for the
// steps it covers; later lines belong to the lost run.
std::vector<std::string> resume_from_latest(const std::filesystem::path& out_dir, Transformer& m, AdamW& opt,
                                            TrainerState& state, const nlohmann::json& expected_fingerprint,
                                            int64_t max_steps, std::ostream& progress);

}  // namespace rlhf
