// The rollout of an online step: the prompts' completions sampled (src/rollout/sampler.h) and
// scored (the RewardScorer), with the loop's sample metrics; and the data-parallel pieces that
// turn every rank's samples into the numbers of the global batch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "train/online/method.h"

namespace rlhf::online {

// A rank's completions of one step, sequence-major; the numbers its forwards add (old and
// reference log-probs, values) come in the base.
struct Rollout : RolloutNumbers {
  std::vector<Sequence> seqs;     // prompt + completion (group = position in this rollout)
  std::vector<std::string> text;  // per sequence: the completion as the reward saw it
  std::vector<rollout::FinishReason> finish;  // per sequence: how its sampling ended
};

// Samples the prompts `which` (sampling.n each, prompt-major, each prompt with its seed) and
// scores them; writes the reward's and the loop's sample metrics to `metrics` and the first
// samples to `examples` (if given). Under data parallelism (`comm`) each rank passes its own
// prompts; the metrics are those of every rank's samples.
Rollout sample_rollout(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const std::vector<int64_t>& which,
                       const std::vector<uint64_t>& seeds, const rollout::SamplingParams& sp, int64_t generate_batch,
                       const RewardScorer& reward, const Detokenize& detok, std::map<std::string, double>& metrics,
                       std::vector<SampleExample>* examples, dist::Communicator* comm = nullptr);

// The sequences `keep` of a rollout (before its token numbers are computed).
Rollout select(const Rollout& r, const std::vector<size_t>& keep);

// Every rank's sequences of a rollout as one global rollout, in rank order: the per-token and
// per-sequence numbers (not the sequences themselves, which stay on the rank that sampled them).
Rollout gather_rollout(dist::Communicator& comm, const Rollout& mine);

// Sums over the ranks of named (value, weight) pairs, over the union of the ranks' names (a rank
// without a name adds nothing to it).
std::map<std::string, std::pair<double, double>> sum_named(dist::Communicator& comm,
                                                           const std::map<std::string, std::pair<double, double>>& local);

}  // namespace rlhf::online
