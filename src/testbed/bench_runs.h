// Internal to the bench: one training run of a method through the CLI, its evaluation along
// training, and the argument lists of each method family with the testbed's shared
// hyperparameters (docs/testbed.md §6).
#pragma once

#include <string>
#include <vector>

#include "testbed/bench_stages.h"

namespace rlhf::testbed {

struct RunSpec {
  std::string suite, method;
  World* world = nullptr;
  json params = json::object();     // the sweep point, part of the run id
  std::vector<std::string> args;    // the rlhf subcommand and its options, without --out/--save-steps
  fs::path proxy_rm;                // the reward model whose score is the run's proxy (may be empty)
  int steps = 0;                    // optimizer steps (offline) or rollout steps (online)
  double flops = 0;                 // whole run, by docs/testbed.md §5's formula
  double labels = 0, verifier_calls = 0;
  int checkpoints = 0;              // evaluations along the run (0: the profile's; -1: the final model only)
  Split eval_split = Split::test;   // the prompts its checkpoints are evaluated on (tuning: val)
};

// Trains (cached stage), evaluates step 0 (the base), every saved checkpoint and the final model;
// returns the run's results.json entry. The trained model is at run_model(spec).
json execute(const RunSpec& spec);
fs::path run_model(const RunSpec& spec);
std::string run_id(const RunSpec& spec);

// Matmul parameters N ≈ 12 L d² + V d and the mean sequence length of the base samples.
double model_params(World& w);
double mean_sequence_length(World& w);

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

// Best-of-n from the base policy against `reward` on the test prompts: one point per n, with KL the
// analytic upper bound log n − (n−1)/n (Beirami et al.), evaluated by gold and proxy.
json best_of_n(World& w, const std::string& suite, const fs::path& rm, const std::vector<int>& ns);

}  // namespace rlhf::testbed
