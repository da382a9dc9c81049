// Evaluation of a testbed policy against its reference (docs/testbed.md §6): samples at temperature 1
// on held-out prompts, scored by the gold reward (and a proxy reward model when given), with the
// exact sequence KL: the vocabulary is small, so at every position of a sample from π the full
// KL(π(·|prefix) ‖ π_ref(·|prefix)) is summed along the sample — unbiased for the sequence KL with
// far less variance than log π − log π_ref, which is also reported (k1) with Schulman's k3.
//
// Example:
//   EvalSetup setup{.task = task.get(), .tok = &tok, .prompts = test_prompts, .samples = 2, .seed = 5};
//   EvalBaseline base = evaluate_baseline(ref, setup);         // the reference's own samples
//   PolicyEval e = evaluate_policy(policy, ref, setup, base, proxy);
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "rollout/reward.h"
#include "testbed/task.h"
#include "text/tokenizer.h"

namespace rlhf::testbed {

struct EvalSetup {
  const Task* task = nullptr;
  const Tokenizer* tok = nullptr;
  std::vector<std::string> prompts;
  int64_t samples = 2;    // per prompt
  uint64_t seed = 0;      // prompt i's samples come from (seed, i): equal across policies
  int32_t eos_id = 0;
};

// A proxy reward on samples (a reward model); empty = none.
using ProxyScorer = std::function<std::vector<double>(const std::vector<rollout::RewardSample>&)>;

struct PolicyEval {
  double gold = 0, gold_lo = 0, gold_hi = 0;  // mean and 95% bootstrap CI over prompts
  double proxy = NAN;
  double kl = 0, kl_k1 = 0, kl_k3 = 0;        // per sequence, mean over samples
  double win_rate = 0.5;                       // vs the reference's samples of the same prompt
  double length = 0;                           // completion tokens, EOS included
  double distinct2 = 0, entropy = 0;           // entropy: mean per-token, nats
  double pass = NAN;                           // exact-match rate where the task reports "pass"
  std::vector<double> prompt_gold;             // mean gold per prompt (for pooled CIs)
  std::vector<double> prompt_length;           // mean completion length per prompt
  std::vector<double> prompt_proxy;            // mean proxy reward per prompt (empty without a proxy)
  std::vector<double> sample_gold, sample_length;
};

struct EvalBaseline {
  std::vector<double> sample_gold;  // the reference's samples, prompt-major
};

EvalBaseline evaluate_baseline(Transformer& ref, const EvalSetup& setup);
PolicyEval evaluate_policy(Transformer& policy, Transformer& ref, const EvalSetup& setup, const EvalBaseline& base,
                           const ProxyScorer& proxy = {});

// Per-sample sequence KL terms for completions of prompts: exact (full vocabulary), k1, k3 and
// the policy's summed per-token entropy. Exposed for tests.
struct SequenceKl {
  std::vector<double> exact, k1, k3, entropy;
};
SequenceKl sequence_kl(Transformer& policy, Transformer& ref, const std::vector<std::vector<int32_t>>& prompts,
                       const std::vector<std::vector<int32_t>>& completions);
// The same from the policy's logits along each completion (completion tokens × vocabulary, as
// the sampler keeps them), so that only the reference is decoded.
SequenceKl sequence_kl(const std::vector<std::vector<float>>& policy_logits, Transformer& ref,
                       const std::vector<std::vector<int32_t>>& prompts,
                       const std::vector<std::vector<int32_t>>& completions);
// Each completion's logits under `model` (completion tokens × vocabulary), decoded with the
// KV cache.
std::vector<std::vector<float>> completion_logits(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                                                  const std::vector<std::vector<int32_t>>& completions);

}  // namespace rlhf::testbed
