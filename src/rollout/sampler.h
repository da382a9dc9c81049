// Sampling completions from a policy with the KV cache: the "sample" step of the online loop
// and the engine of `rlhf generate`.
//
// Every prompt is prefilled once; its n samples then continue in their own cache slots. All
// active sequences (and newly admitted prompts' prefills) run as one Transformer::decode call
// per step, and a finished sequence's slot is refilled from the queue right away.
//
// Determinism: sample j of prompt i draws its uniforms from Rng(seeds[i], j) and nothing else,
// so its tokens do not depend on which prompts share its batch, on the batch size or on the
// thread count (given that the logits of a sequence do not either).
//
// Log-probs are those of the temperature-scaled logits over the whole vocabulary,
// log softmax(logits / T)[token] — what Transformer::forward with ForwardOptions{.temperature = T}
// recomputes for the objectives — not of the top-k/top-p/min-p truncated distribution that
// the token was drawn from (TRL's convention). Greedy decoding (T = 0) reports T = 1 log-probs.
//
// Example (the online loop):
//   SamplingParams sp{.temperature = 0.7, .top_p = 0.95, .max_new_tokens = 128, .n = 4,
//                     .eos_ids = {eos}};
//   std::vector<Completion> out = generate(policy, prompt_ids, seeds, sp, {.batch_size = 32});
//   // out[i * 4 + j]: sample j of prompt i: tokens, logprobs, finish
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tensor/rng.h"

namespace rlhf::rollout {

struct SamplingParams {
  double temperature = 1.0;     // 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 0;            // keep the k largest logits, ties at the k-th kept (0: off)
  double top_p = 1.0;           // then the most likely tokens until their mass reaches top_p
  double min_p = 0.0;           // then drop tokens below min_p * p(most likely); HF's order
  int64_t max_new_tokens = 64;
  int64_t n = 1;                // samples per prompt
  std::vector<int32_t> eos_ids;   // a sample ends after one of these (kept in its tokens)
  std::vector<int32_t> stop_ids;  // likewise, with finish reason "stop"
  void validate() const;        // InputError naming the bad value
};

enum class FinishReason { eos, stop, length };
const char* finish_reason_name(FinishReason r);  // "eos", "stop", "length"

struct Completion {
  int64_t prompt = 0, sample = 0;
  std::vector<int32_t> tokens;   // generated ids (the final EOS/stop token included)
  std::vector<float> logprobs;   // per token: log softmax(logits / T)[token]
  std::vector<float> logits;     // with GenerateOptions::keep_logits: per token the V logits it was drawn from
  FinishReason finish = FinishReason::length;  // length: max_new_tokens or the context ran out
  double sum_logprob() const;
};

struct GenerateOptions {
  int64_t batch_size = 16;  // sequences decoded together (raised to n when smaller)
  // Called after every new token of a sample (not concurrently); true ends the sample with
  // finish "stop". `rlhf generate` checks stop strings here.
  std::function<bool(int64_t prompt, const std::vector<int32_t>& tokens)> stop;
  // Keep each token's logits (before temperature) in Completion::logits: an evaluation that needs
  // the policy's whole distribution along its samples then needs no second decode.
  bool keep_logits = false;
};

// params.n completions of each prompt, in prompt-major order (out[i * n + j]). A prompt must
// have at least one token and fewer than the context length (max_position_embeddings); a
// sample also ends when prompt + completion fills the context.
std::vector<Completion> generate(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const std::vector<uint64_t>& seeds, const SamplingParams& params,
                                 const GenerateOptions& opt = {});

// How many shares of the prompts generate() decodes side by side, one per thread, each with
// single-threaded kernels: all threads' worth only when the prepacked weights (weight_bytes; 0
// when not prepacked) fit in half the last-level cache (llc_bytes, 0 when unknown) and every
// thread's share gets max(n, kPackedMinRows) of the n_slots slots and a prompt; else 1.
int64_t decode_shares(int64_t weight_bytes, int64_t llc_bytes, int64_t threads, int64_t n_slots, int64_t n,
                      int64_t prompts);
int64_t last_level_cache_bytes();  // from sysfs, read once; 0 when unknown

// One token drawn from logits (V) under params' temperature and truncation, with its log-prob
// as above. Uses at most one rng.uniform(). The scratch is reused between calls.
//
// Non-finite logits (docs/reliability.md test 28f): -Inf is an impossible token. +Inf tokens
// share all the probability equally (greedy takes the first; the truncations treat them as equal
// scores), each with log-prob -log(count). When the largest logits / T exceeds 1e6 in magnitude
// (or overflows), the row is taken relative to its largest logit: the same softmax, without
// rounding or overflow. A NaN anywhere in the row, or a row of nothing but -Inf, is a
// NumericError naming the token (generate() adds the prompt, the sample and the position):
// never a made-up token.
struct TokenDraw {
  int32_t token = 0;
  float logprob = 0;
};
struct SampleScratch {
  std::vector<float> s, e;     // scaled logits, exp(s - max)
  std::vector<int32_t> order;  // candidates of top-p
};
TokenDraw sample_token(const float* logits, int64_t V, const SamplingParams& params, Rng& rng, SampleScratch& scratch);

}  // namespace rlhf::rollout
