// The offline loop of docs/design.md, shared by SFT, reward models and the DPO family: grouped,
// tokenized sequences -> packed micro-batches -> policy forward -> objective (per-sequence
// numbers in, d loss / d sequence out) -> backward -> clip -> AdamW. Two runs that differ only in
// their objective share every other line.
//
// Conventions (TRL's, so that runs are comparable with it): the objective is evaluated per
// micro-batch (mean over its groups) and scaled by 1/grad_accum; logged metrics are the mean
// over the step's micro-batches; grad_norm is the norm before clipping. Reference log-probs are
// computed once, before training, by the caller (compute_reference_logps) — the reference model
// is not held while training.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "data/collate.h"
#include "dist/communicator.h"
#include "model/transformer.h"
#include "train/offline_objectives.h"
#include "train/optimizer.h"
#include "train/sequence_scores.h"

namespace rlhf {

// How the loop turns the objective's per-micro-batch output into the step's loss and gradient.
enum class LossNormalization {
  // The objective's value is a mean over its micro-batch; the step's loss is the mean over the
  // step's micro-batches (TRL's convention for the DPO family, SFT and reward models).
  micro_batch_mean,
  // The objective's value is a sum over its micro-batch's scored tokens; the step divides by the
  // scored tokens of all its micro-batches on all ranks (language modelling: every token of the
  // optimizer step weighs the same, whatever the micro-batch it falls in).
  step_token_mean,
};

struct OfflineConfig {
  // Pairs (or SFT examples) per micro-batch, over all ranks. With a communicator of N ranks each
  // rank runs its 1/N slice of every micro-batch and the gradients are averaged over ranks, so N
  // ranks with per-rank batch B train as one process with N micro-batches of B accumulated.
  int64_t groups_per_micro_batch = 8;
  int64_t grad_accum = 1;
  int64_t max_steps = 100;
  int64_t warmup_steps = 0;
  LrSchedule schedule = LrSchedule::linear;
  AdamWConfig adam;
  PackOptions pack;                    // row length and packing; max_rows is derived
  uint64_t seed = 0;
  int64_t log_every = 1;
  bool want_head = false;              // reward models: read the head at each sequence's last token
  // The reference is the policy's starting weights. Until the first update a sequence's reference
  // log-prob is then the policy's own from the same forward, so the first step's implicit rewards
  // are exactly 0 and every pair a tie, as TRL's two identical forwards give (the precomputed
  // ones, from other batches, differ from the policy's by rounding).
  bool reference_is_initial_policy = false;
  LossNormalization normalization = LossNormalization::micro_batch_mean;
  dist::Communicator* comm = nullptr;  // data parallelism (null: this process alone)
};

struct OfflineStepLog {
  int64_t step = 0;
  int64_t tokens = 0;  // forwarded by this rank in the step, padding included
  std::map<std::string, double> values;  // loss, grad_norm, learning_rate, epoch, objective metrics
};

// A dataset of grouped sequences (collate.h). `margins` per group (reward models) may be empty.
// Language-model data instead holds rows packed beforehand: row g is group g, trained as laid out.
struct OfflineDataset {
  std::vector<Sequence> seqs;           // consecutive sequences of a group, groups numbered 0..G-1
  std::vector<PackedRow> rows;          // or: packed token documents (seqs empty), all of pack.seq_len tokens
  std::vector<double> group_margin;     // optional, per group
  std::vector<uint8_t> group_desirable; // unpaired data (KTO): per group, the label
  // Ranked data: per group, the label's value of each sequence in rank order (index 0 = best;
  // higher is better, equal values are ties).
  std::vector<std::vector<double>> group_rank_values;
  int64_t n_groups() const;
  std::vector<std::vector<size_t>> group_members() const;  // sequence indices of each group
};

// Groups of each optimizer step's micro-batches, in order. Default: a seeded permutation per
// epoch; a replay of another trainer passes its order explicitly.
using BatchOrder = std::vector<std::vector<int64_t>>;  // one list of groups per micro-batch
BatchOrder shuffled_batch_order(int64_t n_groups, int64_t groups_per_micro, int64_t n_micro, uint64_t seed);

// Reference log-prob of every sequence (summed over its completion tokens), computed without
// gradients in packed batches.
std::vector<double> compute_reference_logps(Transformer& ref, const OfflineDataset& data, const PackOptions& pack);

// The scalar head at the last token of every sequence (a reward model's score), without gradients.
std::vector<double> compute_head_values(Transformer& rm, const OfflineDataset& data, const PackOptions& pack);

// Called after every optimizer step with its log and the state to checkpoint.
using OfflineStepHook = std::function<void(const OfflineStepLog&, const Transformer&, const AdamW&)>;

// Trains `policy` in place with `opt`, from optimizer step `start_step` (a resumed run passes
// the checkpoint's step and restored moments; the batch order is a pure function of the seed,
// so the run continues exactly). Stops with a NumericError naming the step and the groups of
// the batch when the loss or the gradient norm is not finite — before the optimizer step.
std::vector<OfflineStepLog> train_offline(Transformer& policy, AdamW& opt, const OfflineDataset& data,
                                          const std::vector<double>& ref_logp, const ObjectiveFn& objective,
                                          const OfflineConfig& cfg, const BatchOrder& order, int64_t start_step = 0,
                                          const OfflineStepHook& on_step = {});

// Loss and metrics of the objective on `order`'s micro-batches without training (the eval_
// metrics): means over micro-batches.
std::map<std::string, double> evaluate_offline(Transformer& policy, const OfflineDataset& data,
                                               const std::vector<double>& ref_logp, const ObjectiveFn& objective,
                                               const OfflineConfig& cfg, const BatchOrder& order);

}  // namespace rlhf
