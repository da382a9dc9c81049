// Internal to the bench: one training run of a method through the CLI, its evaluation along
// training, and the argument lists of each method family with the testbed's shared
// hyperparameters (docs/testbed.md §6).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "testbed/bench_stages.h"
#include "testbed/compute.h"

namespace rlhf::testbed {

// What a run's prepare hook did: the FLOPs it spent, which every checkpoint after the start
// includes, and, where it left the command nothing to train on, why: then the hook put the run's
// model in place itself, the command is not run and the run's record carries the reason.
struct Prepared {
  double flops = 0;
  std::string skipped;
};

struct RunSpec {
  std::string suite, method;
  World* world = nullptr;
  json params = json::object();     // the sweep point, part of the run id
  std::vector<std::string> args;    // the rlhf subcommand and its options, without --out/--save-steps
  fs::path proxy_rm;                // the reward model whose score is the run's proxy (may be empty)
  int steps = 0;                    // optimizer steps (offline) or rollout steps (online)
  double labels = 0, verifier_calls = 0;
  int checkpoints = 0;              // evaluations along the run (0: the profile's; -1: the final model only)
  Split eval_split = Split::test;   // the prompts its checkpoints are evaluated on (tuning: val)
  // Runs in the run's stage directory before the command (RAFT's earlier rounds, G2D's warm-up);
  // may be empty.
  std::function<Prepared(const fs::path& dir)> prepare;
};

// The value after `flag` in a command's arguments, to read or set it (LogicError naming the
// command and flag when it has none).
std::string& option_value(std::vector<std::string>& args, const std::string& flag);
const std::string& option_value(const std::vector<std::string>& args, const std::string& flag);

// Trains (cached stage), evaluates step 0 (the base), every saved checkpoint and the final model;
// returns the run's results.json entry, with the run's FLOPs (docs/testbed.md §5) read off its
// manifest and metrics, cumulative at each checkpoint. The trained model is at run_model(spec).
json execute(const RunSpec& spec);
fs::path run_model(const RunSpec& spec);
std::string run_id(const RunSpec& spec);

// The world's models for the compute formulas: the policy's and a reward model's matmul
// parameters, the mean prompt tokens of `split` and the base samples' mean completion tokens.
ComputeModel compute_model(World& w, Split split = Split::train);

// Argument lists (shared hyperparameters per family).
// `rlhf dpo` (or `command`: kto) on `data` with `groups` examples (pairs, rankings or KTO rows).
RunSpec offline_run(World& w, const std::string& suite, const std::string& method, const fs::path& data,
                    double groups, const std::string& loss, double beta, json params,
                    std::vector<std::string> extra = {}, const std::string& command = "dpo");
RunSpec online_run(World& w, const std::string& suite, const std::string& method, const std::string& command,
                   const std::string& reward, json params, std::vector<std::string> extra = {}, int steps = 0);

// Rounds of sample -> label by `reward` (best vs worst of n) -> DPO (`rlhf iterative-dpo`);
// evaluated at the start and the end.
RunSpec iterative_run(World& w, const std::string& suite, const std::string& method, const std::string& reward,
                      int rounds, int n, json params);

// Semi-online DPO (`rlhf iterative-dpo --prompts-per-round`): online DPO's step (the profile's
// prompts per step, two samples each, best vs worst by `reward`, DPO on those pairs) with the
// pairs re-sampled from the current policy only every k steps, for `steps` steps in all (rounded
// up to whole rounds); k is capped so that a round's prompts fit the train split. Evaluated at the
// start and the end.
RunSpec semi_online_run(World& w, const std::string& suite, const std::string& method, const std::string& reward,
                        int k, int steps, json params);
// The k that semi_online_run uses for a requested k.
int semi_online_k(const World& w, int k);

// RAFT, rejection-sampling fine-tuning (Dong et al. 2023): rounds of n samples per train prompt
// from the current policy at T = 1 (`rlhf best-of-n` on the gold reward), each prompt's best kept
// when the task passes it, then `rlhf sft` on the kept ones; evaluated at the start and the end.
// Each round's counts are in raft_rounds(spec).
RunSpec raft_run(World& w, const std::string& suite, const std::string& method, int rounds, int n, json params);
json raft_rounds(const RunSpec& spec);

// GRPO warm-up, then offline DPO on its rollouts (G2D, docs/testbed.md §7): the `grpo` arm's
// command for `warmup_steps` steps with --save-rollouts, best-vs-worst pairs of each prompt's group
// by the warm-up's scores (`rlhf data pairs`), then `rlhf dpo` from the warm-up policy, which is
// also its reference. The warm-up's FLOPs, labels and verifier calls count with the run's;
// evaluated at the start and the end. Where every prompt's rollouts scored alike (no pair), the
// run's policy is the warm-up's. The pairs' counts are in warmup_pairs(spec).
RunSpec warmup_dpo_run(World& w, const std::string& method, const RunSpec& grpo, int warmup_steps, json params);
json warmup_pairs(const RunSpec& spec);

// Best-of-n from the base policy against `reward` on the test prompts: one point per n, with KL the
// analytic upper bound log n − (n−1)/n (Beirami et al.), evaluated by gold and proxy.
json best_of_n(World& w, const std::string& suite, const fs::path& rm, const std::vector<int>& ns);

}  // namespace rlhf::testbed
