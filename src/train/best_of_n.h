// Best-of-n: n samples per prompt from a fixed policy, scored, the best kept. The baseline that
// needs no training: its mean best score is what a trained policy's score is compared with.
//
// Under data parallelism (`comm`, called on every rank) each rank samples its contiguous slice of
// the prompts (each prompt's seed is prompt_seed(seed, 0, index), so the samples do not depend on
// the number of ranks) and every rank returns every row, in prompt order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "model/transformer.h"
#include "rollout/sampler.h"
#include "train/online_trainer.h"

namespace rlhf {

struct BestOfNConfig {
  rollout::SamplingParams sampling;    // n = samples per prompt
  int64_t generate_batch = 32;         // sequences decoded together
  uint64_t seed = 42;
  dist::Communicator* comm = nullptr;  // data parallelism (null: this process alone)
};

struct BestOfNResult {
  // One JSON object per prompt and line: prompt (its text, or "(messages)"), completion and score
  // of the best sample, mean_score of the n, finish_reason of the best; completion and score are
  // null when no sample has a defined score.
  std::string jsonl;
  int64_t scored = 0;             // prompts with a defined best score
  double mean_best_score = 0;     // over those prompts (0 when none)
  double mean_score = 0;          // of the per-prompt mean scores
};

BestOfNResult best_of_n(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                        const Detokenize& detok, const BestOfNConfig& cfg);

}  // namespace rlhf
