// The online loop of docs/design.md, shared by PPO, APA, REINFORCE, RLOO, GRPO and online DPO.
// A step runs five named phases over one step state, the same for every method:
//
//   1. sample and score: prompts -> n completions each (KV cache, src/rollout/sampler.h)
//                        -> scores (src/rollout/reward.h)
//   2. token numbers:    per token, the sampling policy's and the reference's log-probs
//                        (recomputed by the training forward at the sampling temperature, so
//                        rho = 1 on the first update); values (a scalar value head on the policy
//                        trunk, read at the state before each token, as lm-human-preferences, or
//                        a separate critic; per value slot, see below)
//   3. advantages:       the method's (src/rollout/advantages.h)
//   4. updates:          num_epochs passes of num_mini_batches minibatch updates, each in
//                        micro_batches forward/backward passes, with the method's loss
//                        (src/objective/policy_gradient.h, pairwise.h)
//   5. metrics:          means over the step's updates
//
// The loop holds nothing method-specific. A method (src/train/online/method.h) declares what it
// needs — values, the reference, entropies, pairs as units, which samples to drop, what its loss
// is a mean over — and supplies its advantages and its loss; each is one file of
// src/train/online/, registered by a row of the table in src/train/online/methods.cpp.
//
// Everything random is a pure function of (seed, step): the prompts of a step (a seeded
// permutation per epoch), each prompt's sampling seed, the minibatch shuffles. A resumed run
// therefore needs only the step counter, the weights, the moments and the loop's small state
// (the adaptive KL coefficient, REINFORCE's moving baseline).
//
// Conventions: the KL penalty, the loss and the reward model see the same tokens — the
// completion up to and including its EOS/stop token, nothing after (TRL's); the sequence score
// enters at the last real token (docs/algorithms.md §5.5), or, for PPO/APA with shaping.placement
// trl_after_eos, TRL PPOTrainer's way: one slot later, on the first padding slot of a completion
// shorter than max_new_tokens. That slot also gets a value (read at the state after the last
// token), a return and a value-loss term; the policy loss and the KL stay per token. Samples
// whose score is NaN are dropped from PPO/APA/online-DPO updates and get advantage 0 in
// RLOO/GRPO, counted in reward/undefined.
//
// Data parallelism (OnlineConfig::comm with N ranks): each rank takes its contiguous 1/N slice
// of the step's prompts (all n samples of a prompt stay on one rank), samples and scores them,
// and computes their per-token numbers (old and reference log-probs, values). Those numbers, the
// scores and the lengths are then all-gathered, so that every rank computes the same advantages
// over the global batch in the same order as one process would: reward and advantage whitening,
// GRPO group statistics, RLOO leave-one-out baselines, REINFORCE's moving baseline, the adaptive
// KL controller's KL and every logged metric. The minibatches are the one-process minibatches
// (one permutation of the global units): each rank runs the forward and backward of its own
// units of a minibatch, weights the gradient by their share of the minibatch's normaliser
// (tokens, value slots or sequences, as each term averages), and the gradients are summed with an
// all-reduce before the identical optimizer step on every rank. N ranks thus train as one
// process with the N-times batch, up to fp32 summation order (tests/cli/mpi.sh). A minibatch's
// units fall to the ranks at random when num_mini_batches > 1, so the ranks' work per minibatch
// varies around 1/N; with one minibatch (the default) each rank has exactly its own samples.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/collate.h"
#include "data/records.h"
#include "dist/communicator.h"
#include "model/transformer.h"
#include "objective/policy_gradient.h"
#include "rollout/advantages.h"
#include "rollout/reward.h"
#include "rollout/sampler.h"
#include "train/optimizer.h"

namespace rlhf {

enum class OnlineMethod { ppo, apa, reinforce, rloo, grpo, online_dpo };
// Through the registry of methods (src/train/online/methods.cpp).
OnlineMethod online_method_from_name(const std::string& name);  // InputError on an unknown name
const char* online_method_name(OnlineMethod m);
bool method_uses_values(OnlineMethod m);  // PPO and APA: the policy needs a value head (or a critic)
// Whether the loop forwards the reference at KL coefficient `beta` (PPO, APA and online DPO always;
// REINFORCE, RLOO and GRPO only with beta != 0).
bool method_reads_reference(OnlineMethod m, double beta);

struct OnlinePrompt {
  Text prompt;                   // as read (for reward sources and logs)
  std::vector<int32_t> ids;      // tokenized with the chat template's generation prompt
  nlohmann::json extra = nlohmann::json::object();  // the row's other fields (reference answers)
};

struct OnlineConfig {
  OnlineMethod method = OnlineMethod::rloo;
  int64_t prompts_per_step = 8;        // prompts sampled per step over all ranks (the rollout batch is this * n)
  rollout::SamplingParams sampling;             // n = samples per prompt
  int64_t generate_batch = 32;         // sequences decoded together
  int64_t max_steps = 100;             // rollout/update iterations
  int64_t num_epochs = 1;              // passes over each rollout batch
  int64_t num_mini_batches = 1;        // optimizer steps per pass
  // Forward/backward passes per minibatch on each rank, whose gradients add up before the
  // optimizer step: the same update (to fp32 rounding) in a 1/micro_batches activation workspace.
  int64_t micro_batches = 1;
  LrSchedule schedule = LrSchedule::linear;  // over the iterations
  int64_t warmup_steps = 0;
  AdamWConfig adam;
  uint64_t seed = 0;
  int64_t row_len = 1024;              // packing row length of the training forwards

  // KL to the reference: PPO/APA/REINFORCE/RLOO put beta * KL in the reward (PPO per token,
  // REINFORCE/RLOO per sequence); GRPO puts beta * k3 in the loss; online DPO's beta.
  double beta = 0.05;
  bool adaptive_kl = false;            // PPO: Ziegler et al.'s controller (target, horizon)
  double kl_target = 6.0, kl_horizon = 10000.0;
  // PPO/APA: estimator, whitening, gamma, lambda, EOS penalty, score placement (trl_after_eos:
  // PPO/APA only; max_response_length is taken from sampling.max_new_tokens).
  rollout::PpoShaping shaping;
  objective::PpoLossParams ppo;
  objective::ApaParams apa;
  objective::SequencePgParams sequence_pg;  // REINFORCE, RLOO
  bool normalize_advantages = false;        // RLOO (TRL normalize_advantages)
  double reinforce_baseline_decay = 0.9;    // REINFORCE: moving average of past mean rewards
  objective::GrpoParams grpo;
  rollout::GroupScaling group_scaling = rollout::GroupScaling::group;
  std::string dpo_loss = "sigmoid";         // online DPO: sigmoid | ipo_sum (TRL's "ipo", summed)
  dist::Communicator* comm = nullptr;       // data parallelism (null: this process alone)
  // Carry every sample of each step out in OnlineStepLog::rollouts (one process only: the
  // samples stay on the rank that drew them, and src/dist gathers numbers, not text).
  bool keep_rollouts = false;

  void validate() const;  // InputError naming the bad setting
};

// One sampled completion as the logs show it.
struct SampleExample {
  std::string prompt, completion;
  double score = 0;
};

// One sampled completion of a training step as the loop scored it (OnlineConfig::keep_rollouts).
struct RolloutSample {
  int64_t prompt = 0;       // index into the prompts given to train_online
  std::string completion;   // decoded, as the reward saw it (no final EOS/stop token)
  double score = 0;         // the score the step used (NaN: undefined)
  rollout::FinishReason finish = rollout::FinishReason::length;
};

struct OnlineStepLog {
  int64_t step = 0;
  std::map<std::string, double> values;  // TRL's metric names (see the CLI docs)
  std::vector<SampleExample> examples;   // the first samples of the step
  // With keep_rollouts: every sample of the step in sampling order (prompt-major), those the
  // method then drops included; empty otherwise.
  std::vector<RolloutSample> rollouts;
};

// Loop state beyond the step counter that a resumed run needs: the methods' (each reads it before
// the first step and writes it back after every step, src/train/online/method.h).
struct OnlineState {
  double kl_coef = 0;             // every method's KL coefficient; PPO's adaptive controller moves it
  double reward_baseline = 0;     // REINFORCE's moving baseline
  bool baseline_set = false;
  nlohmann::json to_json() const;
  static OnlineState from_json(const nlohmann::json& j);
};

using Detokenize = std::function<std::string(const std::vector<int32_t>&)>;
// Scores a batch of samples (rollout::CombinedReward::score, or any source).
using RewardScorer = std::function<rollout::RewardResult(const std::vector<rollout::RewardSample>&)>;
using OnlineStepHook = std::function<void(const OnlineStepLog&, const Transformer&, const AdamW&, const OnlineState&)>;

// Trains `policy` in place against the frozen `ref`. PPO/APA read values from a scalar head on
// the policy trunk (lm-human-preferences), or from a separate `critic` (a scalar-head model, e.g.
// initialised from the reward model, TRL/MOSS style) trained with `critic_opt`, whose learning
// rate follows the policy's schedule.
// Stops with NumericError naming the step when a loss or gradient is not finite, before the
// optimizer step.
std::vector<OnlineStepLog> train_online(Transformer& policy, AdamW& opt, Transformer& ref,
                                        const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                                        const Detokenize& detok, const OnlineConfig& cfg, int64_t start_step,
                                        OnlineState state, const OnlineStepHook& on_step = {},
                                        Transformer* critic = nullptr, AdamW* critic_opt = nullptr);

// Samples `sampling.n` completions per prompt and scores them: mean score, completion length,
// EOS rate and a few examples (the eval_ metrics of the online commands).
struct OnlineEval {
  std::map<std::string, double> values;
  std::vector<SampleExample> examples;
};
// Under data parallelism (`comm`, on every rank) each rank samples its slice of the prompts;
// the metrics are those of all samples, the examples rank 0's.
OnlineEval evaluate_online(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                           const Detokenize& detok, const rollout::SamplingParams& sampling, int64_t generate_batch,
                           uint64_t seed, dist::Communicator* comm = nullptr);

// Samples of the prompts `which` (n each, prompt-major), scored: the sampling and scoring step
// of every online method, for loops built outside train_online (iterative DPO). Under data
// parallelism (`comm`, on every rank) each rank passes its own prompts and gets its own samples;
// the metrics are those of every rank's samples.
struct ScoredSamples {
  std::vector<Sequence> seqs;        // prompt + completion, group = position
  std::vector<int64_t> prompt;       // index into `prompts` of each sample
  std::vector<double> scores;        // NaN = undefined
  std::vector<std::string> completions;  // decoded, as the reward saw them (no final EOS/stop token)
  std::map<std::string, double> metrics;
  std::vector<SampleExample> examples;
};
ScoredSamples sample_and_score(Transformer& policy, const std::vector<OnlinePrompt>& prompts,
                               const std::vector<int64_t>& which, const std::vector<uint64_t>& seeds,
                               const rollout::SamplingParams& sampling, int64_t generate_batch,
                               const RewardScorer& reward, const Detokenize& detok,
                               dist::Communicator* comm = nullptr);

// Per-prompt sampling seed of step `step` (also used by best-of-n and iterative DPO).
uint64_t prompt_seed(uint64_t seed, int64_t step, int64_t prompt_index);

}  // namespace rlhf
