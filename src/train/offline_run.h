// A whole offline training run, as `rlhf sft | rm | dpo | kto` does it: read and tokenize the
// training (and evaluation) file, compute or load the reference log-probs, load the policy,
// resume from the newest checkpoint if asked, train with the offline loop (offline_trainer.h) and
// write the run directory (run_log.h): manifest.json, metrics.jsonl with TRL's names,
// checkpoint-<step>/ and the final HF checkpoint with the tokenizer files.
//
// Under data parallelism (`comm` with N ranks, called on every rank) each rank trains on its
// slice of every micro-batch; only rank 0 prints and writes (the reference cache included).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "kernels/kernels.h"
#include "train/offline_data.h"
#include "train/offline_trainer.h"
#include "train/run_log.h"

namespace rlhf {

struct OfflineRunConfig {
  std::string command = "sft";           // names the run in its manifest, fingerprint and progress
  std::filesystem::path model_dir;       // HF directory with the tokenizer files
  std::filesystem::path out_dir;
  std::filesystem::path data_file, eval_file;  // eval_file empty: no evaluation
  OfflineDataKind kind = OfflineDataKind::sft;
  OfflineDataOptions data;
  // The objective of a dataset (its per-group labels: margins, ranks, KTO labels), so that the
  // evaluation file gets its own. Required, e.g. [](const OfflineDataset&) { return sft_objective(); }.
  std::function<ObjectiveFn(const OfflineDataset&)> objective;
  std::filesystem::path ref_dir;         // the reference model; empty: the objective needs none
  bool reward_head = false;              // a reward model: a scalar head instead of the LM head
  LossNormalization normalization = LossNormalization::micro_batch_mean;
  const kernels::Backend* backend = &kernels::cpu_backend();  // for the policy and the reference

  int64_t per_rank_batch = 8;            // groups per micro-batch on each rank
  int64_t grad_accum = 1;
  int64_t max_steps = 0;                 // 0: from `epochs`
  double epochs = 1;
  int64_t warmup_steps = 0;              // 0: from `warmup_ratio`
  double warmup_ratio = 0;
  LrSchedule schedule = LrSchedule::linear;
  AdamWConfig adam;
  uint64_t seed = 42;
  PackOptions pack;                      // seq_len and packing

  int64_t log_every = 1;                 // progress lines
  int64_t eval_every = 0;                // 0: at the end only
  CheckpointCadence checkpoints;
  bool resume = false;
  bool zero1 = false;                    // shard the AdamW moments over the ranks
  // The caller's part of manifest.json (command, version, options, ...) and the settings that a
  // resumed run must share with the run that wrote the checkpoint.
  nlohmann::json manifest = nlohmann::json::object();
  nlohmann::json fingerprint_options = nlohmann::json::object();
  dist::Communicator* comm = nullptr;    // null: the process's (dist::world())
};

struct OfflineRunSummary {
  double first_loss = 0, last_loss = 0;  // of this process's first and last step
  int64_t steps = 0;                     // trained by this process (a resumed run: since the checkpoint)
  double tokens_per_second = 0;          // forwarded by this rank, padding included
};

OfflineRunSummary run_offline(const OfflineRunConfig& cfg, std::ostream& console = std::cout);

// The same run on data the caller built (rlhf lm's document rows): the data and eval files, the
// truncation options and the sequence cap are not used.
OfflineRunSummary run_offline(const OfflineRunConfig& cfg, const OfflineData& train, std::ostream& console = std::cout);

}  // namespace rlhf
