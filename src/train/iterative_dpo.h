// Iterative DPO: rounds of
//   sample   n completions per prompt (all prompts, or the next prompts_per_round of them) from
//            the current policy (online_trainer.h sample_and_score)
//   label    each prompt's best and worst sample by the reward: one preference pair, dropped when
//            their scores differ by no more than min_score_gap or none is defined
//   train    offline DPO on those pairs (offline_trainer.h, the same loop as `rlhf dpo`), against
//            the initial model, or with ref_follows_policy the previous round's policy
// The optimizer's moments carry over from round to round; each round has its own batch order
// (seed + round) and the sampling seeds are prompt_seed(seed, round, prompt).
//
// Data parallelism (train.comm, called on every rank): each rank samples its contiguous slice of
// the prompts, every rank gets every round's pairs, and the DPO rounds run data-parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "objective/pairwise.h"
#include "rollout/sampler.h"
#include "train/offline_trainer.h"
#include "train/online_trainer.h"

namespace rlhf {

struct IterativeDpoConfig {
  int64_t rounds = 3;
  // Prompts sampled per round: 0 = all of them every round; m > 0 = the next m prompts each round,
  // cycling through the prompt list (round r takes prompts r*m .. r*m + m - 1, modulo their
  // number). With m = batch size x k, each round's pairs make about k optimizer steps: semi-online
  // DPO re-sampled every k steps.
  int64_t prompts_per_round = 0;
  rollout::SamplingParams sampling;  // n >= 2 samples per prompt
  int64_t generate_batch = 32;       // sequences decoded together
  double min_score_gap = 0;
  bool ref_follows_policy = false;
  std::vector<std::pair<std::string, double>> losses = {{"sigmoid", 1.0}};  // pairwise.h names and weights
  objective::PairParams pair;        // beta, ...
  double epochs = 1;                 // passes over each round's pairs
  // Each round's DPO: groups_per_micro_batch (over all ranks), schedule, AdamW, pack, comm;
  // max_steps and seed are set per round.
  OfflineConfig train;
  uint64_t seed = 42;

  void validate() const;  // InputError naming the bad setting
};

// The metrics record of a round, as metrics.jsonl holds it: round (from 1), pairs, the sampling
// metrics (objective/scores, ...), and, when the round trained, train/<metric> of its last step
// and the cumulative optimizer step.
using IterativeDpoRoundHook = std::function<void(const nlohmann::json& record)>;

// Best vs worst of each prompt's n consecutive samples (prompt-major): a pair dataset with the
// chosen sequence at index 0.
OfflineDataset best_worst_pairs(const ScoredSamples& samples, int64_t n_prompts, int64_t n, double min_score_gap);

// Trains `policy` in place; `progress` gets one line per round.
void train_iterative_dpo(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                         const Detokenize& detok, const IterativeDpoConfig& cfg, std::ostream& progress,
                         const IterativeDpoRoundHook& on_round = {});

}  // namespace rlhf
