// A whole online RL run, as `rlhf ppo | apa | reinforce | rloo | grpo | online-dpo` does it: load
// the policy (with a value head on its trunk, or a separate critic, for PPO and APA), the frozen
// reference and the prompts; resume from the newest checkpoint if asked; train with the online
// loop (online_trainer.h); evaluate on held-out prompts; write the run directory (run_log.h):
// manifest.json, metrics.jsonl with TRL's names, samples.jsonl (evaluation examples),
// rollouts.jsonl (every training sample, with train.keep_rollouts), checkpoint-<step>/ (the
// critic's under critic/), and the final HF checkpoint without the value head, with the
// tokenizer files.
//
// Under data parallelism (train.comm with N ranks, called on every rank) only rank 0 prints and
// writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "data/collate_text.h"
#include "data/records.h"
#include "kernels/kernels.h"
#include "train/online_trainer.h"
#include "train/run_log.h"

namespace rlhf {

struct OnlineRunConfig {
  std::string command;                   // names the run in its manifest, fingerprint and progress
  std::filesystem::path model_dir;       // the policy, with its tokenizer files
  std::filesystem::path ref_dir;         // the reference (empty: model_dir)
  std::filesystem::path critic_dir;      // PPO/APA: a separate scalar-head critic (empty: a value head)
  double critic_lr = 0;                  // the critic's learning rate (0: the policy's)
  const kernels::Backend* backend = &kernels::cpu_backend();  // for the policy, critic and reference
  std::filesystem::path out_dir;
  std::filesystem::path data_file, eval_file;  // prompt JSONL; eval_file empty: no evaluation
  ReadOptions read;
  int64_t max_prompt_length = 0;         // 0: the context minus the completion budget
  OnlineConfig train;                    // train.comm: data parallelism (null: dist::world())
  // Online DPO: subtracted from the score of completions without EOS before the pair is chosen
  // (PPO and APA apply their penalty in train.shaping).
  double missing_eos_penalty = 0;

  int64_t log_every = 1;
  int64_t eval_every = 0;                // 0: at the end only
  CheckpointCadence checkpoints;
  bool resume = false;
  // The caller's part of manifest.json (command, version, options, rewards, ...) and the
  // settings that a resumed run must share with the run that wrote the checkpoint.
  nlohmann::json manifest = nlohmann::json::object();
  nlohmann::json fingerprint_options = nlohmann::json::object();
};

// `text` is the policy's (load_text_side(model_dir)); `reward` scores every sample.
void run_online(const OnlineRunConfig& cfg, const TextSide& text, const RewardScorer& reward,
                std::ostream& console = std::cout);

}  // namespace rlhf
