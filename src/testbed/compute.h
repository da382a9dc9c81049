// The compute of the bench's runs (docs/testbed.md §5): pure formulas, one per kind of run, and
// their reading of a finished run's manifest.json (every resolved option) and metrics.jsonl (its
// measured completion lengths and, for iterative DPO, its pairs per round).
//
// Every forwarded token costs 2N FLOPs and every token of a training pass (forward and
// backward) 6N, N being the matmul parameters of the model that runs (matmul_params). Prompt
// tokens are forwarded as well as completion tokens, in sampling (the prefill), in scoring and in
// training.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rlhf::testbed {

// Matmul parameters of a Llama-family model without grouped-query attention: per layer the
// attention's four hidden² projections and the gated MLP's three hidden × ff matrices, plus the
// head (`head_outputs` × hidden: the vocabulary for an LM head, 1 for a reward model's score head).
double matmul_params(int layers, int hidden, int ff, double head_outputs);

// Mean tokens of one sequence.
struct SequenceTokens {
  double prompt = 0, completion = 0;
  double total() const { return prompt + completion; }
};

// A run's cumulative FLOPs: cumulative[0] before the first step (an offline run's reference
// log-probs), cumulative[s] after step s (an optimizer step offline, a rollout step online, a
// round of iterative DPO).
struct RunFlops {
  std::vector<double> cumulative = {0.0};
  double at(int step) const;  // the last entry past the run's end
  double total() const { return cumulative.back(); }
  void add_step(double flops) { cumulative.push_back(cumulative.back() + flops); }
};

// `rlhf dpo` / `rlhf kto`: the reference log-probs of every sequence once before training, then
// per optimizer step a training pass over its groups' sequences.
struct OfflineCompute {
  double params = 0;          // the policy's matmul parameters
  SequenceTokens tokens;
  double groups = 0;          // in the training file: pairs, rankings or KTO rows
  double seqs_per_group = 2;  // 2 for a pair, K for a ranking; a KTO row 2 (with its KL sequence)
  int steps = 0;              // optimizer steps
  double groups_per_step = 0; // batch × gradient accumulation: every micro-batch is full
  bool reference = true;      // false: --reference-free
};
RunFlops offline_flops(const OfflineCompute& c);

// One rollout step of an online method (`rlhf ppo | apa | reinforce | rloo | grpo | online-dpo`):
// sampling, the reward models' forwards, the reference's forward where the method reads it, a
// separate forward for the sampling policy's log-probs unless the first update's forward gives
// them (one minibatch in one pass), and `epochs` training passes; a separate critic is forwarded
// and trained alongside the policy (a value head on the policy's trunk costs nothing extra).
struct OnlineCompute {
  double params = 0;          // policy
  double reward_params = 0;   // the sum over the rm: sources (rule and gold rewards cost none)
  double critic_params = 0;   // a separate critic (--critic), else 0
  double prompts_per_step = 0, generations = 1, epochs = 1;
  bool reference = true;
  bool old_logp_forward = false;
};
double online_step_flops(const OnlineCompute& c, const SequenceTokens& tokens);

// One round of `rlhf iterative-dpo`: sampling and scoring every prompt's samples, then DPO on
// the round's best-vs-worst pairs: their reference log-probs, and the round's optimizer steps.
struct IterativeCompute {
  double params = 0, reward_params = 0;
  double prompts = 0, generations = 2, epochs = 1, batch = 8;
};
double iterative_round_flops(const IterativeCompute& c, const SequenceTokens& tokens, double pairs);

// `rlhf best-of-n`: n samples of each prompt, each scored by the reward models.
double best_of_n_flops(double params, double reward_params, const SequenceTokens& tokens, double prompts, int n);

// What the formulas need besides a run's own records: the models' matmul parameters (the bench's
// reward models and critics share the policy's trunk) and the mean tokens of a sequence where
// the run logs no length (offline data, steps without a logged length).
struct ComputeModel {
  double policy_params = 0, scorer_params = 0;
  SequenceTokens tokens;
};

// A finished run's FLOPs from its manifest.json and the rows of its metrics.jsonl, by its
// command (sft, dpo, kto, the online methods, iterative-dpo). InputError naming what is missing.
RunFlops run_flops(const nlohmann::ordered_json& manifest, const std::vector<nlohmann::ordered_json>& metrics,
                   const ComputeModel& m);

}  // namespace rlhf::testbed
