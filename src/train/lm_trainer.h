// Language-model training on packed token documents: the first training loop, proving the
// engine end to end (forward, the NLL objective as d loss / d logp, backward, clipping, AdamW,
// schedule, metrics JSONL, HF checkpoint). The general offline loop of the DPO family builds
// on the same pieces.
#pragma once

#include <cstdint>

#include "data/token_documents.h"
#include "model/transformer.h"
#include "train/optimizer.h"
#include "train/run_log.h"

namespace rlhf {

struct LmTrainConfig {
  int64_t seq_len = 128;
  int64_t batch_size = 8;       // rows per micro-batch
  int64_t grad_accum = 1;       // micro-batches per optimizer step
  int64_t max_steps = 100;
  int64_t warmup_steps = 0;
  int64_t log_every = 1;
  uint64_t seed = 0;
  LrSchedule schedule = LrSchedule::cosine;
  AdamWConfig adam;
  bool resume = false;            // continue from the newest checkpoint in the run directory
};

struct LmTrainResult {
  double first_loss = 0, last_loss = 0;
  int64_t steps = 0;
  double tokens_per_second = 0;
};

// Trains `m` in place, writing log's run directory: metrics.jsonl, checkpoint-<step>/ at the
// log's cadence and the final model; progress lines go to the log's console. With `resume`,
// continues from the newest checkpoint there exactly as the uninterrupted run would have (same
// data order, same moments, same metrics). Stops with a NumericError naming the step if the loss
// or the gradient norm is not finite — before the optimizer step, so the weights stay those of
// the step before.
LmTrainResult train_lm(Transformer& m, const std::vector<TokenDocument>& docs, const LmTrainConfig& cfg, RunLog& log);

}  // namespace rlhf
