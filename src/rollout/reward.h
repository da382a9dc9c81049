// Reward sources of the online loop, behind one interface: a batch of samples in, one score per
// sample out (NaN = undefined for that sample, counted), plus named metrics per source.
//
// Sources:
//   rm       a trained reward model (HF directory with a scalar `score` head), scored at the last
//            token of prompt + completion. With the policy's tokenizer (tokenizer.json,
//            tokenizer_config.json and chat_template.jinja byte-identical) the sampled ids are
//            used as they are; otherwise the text is re-tokenized with the reward model's
//            tokenizer and chat template exactly as `rlhf rm` tokenized its training data
//            (encode_example; the reward model's EOS appended when the sample ended with EOS).
//   exact    1 when the completion equals a reference field of the prompt row, else 0.
//   regex    1 when a pattern occurs anywhere in the completion, else 0.
//   format   1 when the whole completion matches a pattern, else 0.
//   eos      1 when the completion ended with the policy's EOS token, else 0.
//   length   a function of the completion's length in tokens or characters.
//   cmd      an external command: JSONL on stdin, one score per line on stdout (reward_command.cpp).
//   callback a C++ function; built with callback_reward, no spec string.
//   gold     the testbed's gold rewards (src/testbed/gold_reward.h), a kind the CLI adds through
//            RewardContext::extra_kinds.
//
// Spec syntax (CLI `--reward`, one per source, repeatable; in recipes a YAML list of the same
// strings):
//     [WEIGHT*]KIND[(KEY=VALUE,...)][:ARG]
// WEIGHT defaults to 1; options are comma-separated KEY=VALUE (a bare KEY means KEY=1); ARG is
// everything after the first ':' that follows KIND and its options, taken verbatim (a path, a
// field name, a pattern or a command line may contain any character, commas included).
//     rm(batch=8,max_length=2048):path/to/rm   batch = sequences per forward (default 8),
//                                              max_length = longest sequence (default: the
//                                              model's context); longer ones score NaN (counted)
//     exact:answer                 options: nocase (Unicode lower-casing), nostrip (keep leading
//                                  and trailing whitespace), last_number (compare the last
//                                  number of each side numerically: signs, decimals, 1,234).
//                                  The field may be a string, a number or a list of accepted
//                                  answers; a missing field is an error
//     regex:PATTERN  format:PATTERN   POSIX extended regular expressions (glibc; linear in the
//                                  text, so long completions never overflow the stack) where '.'
//                                  matches newlines too; Perl's \d \D, \n \t, (?: and lazy
//                                  quantifiers (*? +? ?? — laziness does not change whether a
//                                  pattern matches) are accepted; \s \S \w \W \b are glibc's
//     eos
//     length(target=100,scale=0.01):tokens   unit tokens (default; the sampled ids, EOS included
//                                  as TRL counts it) or chars (Unicode code points). Score:
//                                  target=T: -scale*|len-T|; max=M: -scale*max(0, len-M);
//                                  neither: scale*len. scale defaults to 1
//     cmd(timeout=30,on_error=skip):python3 score.py --flag    see reward_command.cpp
// exact, regex, format and eos take match=S (default 1) and miss=S (default 0).
// Examples: --reward 2*exact(last_number):answer --reward "0.5*format:<think>.*</think>.*"
//
// Combination (combine=sum, the default): the score is the weighted sum of the sources' terms
// t_i = w_i * s_i. With several sources scoring the same thing (reward models trained with
// different seeds), the ensemble modes of Coste et al., "Reward Model Ensembles Help Mitigate
// Overoptimization" (2023), need at least two sources:
//   min  worst-case optimisation: min_i t_i
//   uwo  uncertainty-weighted optimisation: mean_i t_i - lambda * var_i t_i, var the population
//        variance across the sources (divided by their number), lambda >= 0 (default 0.5)
// nan=propagate (default): a NaN from any source makes the sample's combined score NaN;
// nan=ignore: NaN terms are left out (TRL's nansum for sum; min and uwo over the defined terms,
// so one defined term is the score, with variance 0), and a sample whose terms are all NaN stays
// NaN. Either way every NaN is counted in the metrics. Formulas: docs/algorithms.md §1.4.
//
// Range: a source's score beyond kMaxRewardMagnitude (±Inf included) is undefined, as a NaN
// is, and also counted in rewards/<label>/out_of_range: such a score would overflow the
// advantages' whitening and silently zero a step. A combined score that is not finite (huge
// weights) is undefined too.
//
// Metrics (per source, labelled by kind, "#2", "#3" for repeats): rewards/<label>/mean and
// /std over its defined scores (TRL's GRPO names), rewards/<label>/undefined (NaN count, out of
// range included), rewards/<label>/out_of_range, and the source's own metrics as
// rewards/<label>/<name>; reward/undefined counts undefined combined scores.
// min and uwo add rewards/ensemble/std, the mean over the scored samples of the population
// standard deviation of their terms, and min adds rewards/ensemble/argmin_share/<label>, the share
// of the scored samples whose minimum came from that source (a tie goes to the first source).
//
// Example (the online loop):
//   CombinedReward reward(parse_reward_specs(o.list("reward")), {.policy_dir = model_dir},
//                         {.mode = CombineMode::min});
//   RewardResult r = reward.score(samples);   // r.scores[i] for samples[i], r.metrics to log
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/records.h"
#include "kernels/kernels.h"

namespace rlhf::rollout {

using Metrics = std::vector<std::pair<std::string, double>>;

// The largest |score| a reward source may give (docs/reliability.md test 28g); beyond it a score
// is undefined and counted.
inline constexpr double kMaxRewardMagnitude = 1e6;

// One sampled completion of a prompt.
struct RewardSample {
  Text prompt;                          // the prompt row's prompt (a string or messages)
  std::string completion;               // decoded completion text, without the EOS token
  std::vector<int32_t> prompt_ids;      // the policy's tokens (chat template applied)
  std::vector<int32_t> completion_ids;  // as sampled (ends with EOS when `eos`)
  bool eos = false;                     // the completion ended with the policy's EOS token
  nlohmann::json extra = nlohmann::json::object();  // the prompt row's other fields (answer, ...)
};

struct RewardResult {
  std::vector<double> scores;  // one per sample; NaN = undefined
  Metrics metrics;
};

class RewardSource {
 public:
  virtual ~RewardSource() = default;
  // Scores a batch; throws InputError (naming the source) when it cannot.
  virtual RewardResult score(const std::vector<RewardSample>& batch) = 0;
};

struct RewardSpec {
  std::string text;  // as given, for messages
  double weight = 1.0;
  std::string kind;
  std::map<std::string, std::string> options;
  std::string arg;
};

// The reader of a spec's options that every kind's constructor uses: unknown or malformed
// options are InputErrors naming the spec.
class SpecOptions {
 public:
  explicit SpecOptions(const RewardSpec& spec) : spec_(spec) {}
  bool has(const std::string& key);
  double number(const std::string& key, double def);
  bool flag(const std::string& key);  // a bare key, 1/0, true/false
  std::string str(const std::string& key, const std::string& def);
  // Throws InputError listing the options nobody asked for.
  void finish() const;
  [[noreturn]] void fail(const std::string& what) const;  // InputError "reward 'SPEC': what"

 private:
  const RewardSpec& spec_;
  std::set<std::string> used_;
};

// Where the sources are used: the policy directory decides whether a reward model shares its
// tokenizer (empty: always re-tokenize).
struct RewardContext {
  std::filesystem::path policy_dir;
  const kernels::Backend* backend = &kernels::cpu_backend();  // where reward models (rm:) run
  // Kinds defined by layers above src/rollout (the testbed's "gold"), by name; their options are
  // read through `opt` and checked like the built-in kinds'.
  std::map<std::string, std::function<std::unique_ptr<RewardSource>(const RewardSpec&, SpecOptions& opt)>>
      extra_kinds;
};

// Throws InputError naming the spec.
RewardSpec parse_reward_spec(const std::string& text);
std::vector<RewardSpec> parse_reward_specs(const std::vector<std::string>& texts);

// One source from its spec (the weight is the combination's business). Unknown kinds and
// options are InputErrors.
std::unique_ptr<RewardSource> make_reward_source(const RewardSpec& spec, const RewardContext& ctx);

// A C++ function as a source (testbed gold rewards): returns one score per sample.
using RewardFn = std::function<std::vector<double>(const std::vector<RewardSample>&)>;
std::unique_ptr<RewardSource> callback_reward(std::string name, RewardFn fn);

enum class NanPolicy { propagate, ignore };
NanPolicy parse_nan_policy(const std::string& s);  // "propagate" | "ignore"

enum class CombineMode { sum, min, uwo };
CombineMode parse_combine_mode(const std::string& s);  // "sum" | "min" | "uwo"
std::string combine_mode_name(CombineMode m);

// How the sources' terms become one score ("Combination" above).
struct RewardCombine {
  CombineMode mode = CombineMode::sum;
  double uwo_lambda = 0.5;  // uwo's variance penalty: finite, >= 0
  NanPolicy nan = NanPolicy::propagate;
};

class CombinedReward {
 public:
  struct Term {
    std::string label;
    double weight = 1.0;
    std::unique_ptr<RewardSource> source;
  };
  // Throws InputError for a bad lambda, or for min/uwo with fewer than two specs.
  CombinedReward(const std::vector<RewardSpec>& specs, const RewardContext& ctx, RewardCombine combine = {});
  // Adds a source built in code (a callback); its label must be unique.
  void add(std::string label, double weight, std::unique_ptr<RewardSource> source);
  RewardResult score(const std::vector<RewardSample>& batch);
  const std::vector<Term>& terms() const { return terms_; }

 private:
  std::vector<Term> terms_;
  RewardCombine combine_;
};

// ---- helpers of the programmatic rewards, exposed for tests ----------------------------------

// The last number in `s`: an optional sign (+, -, U+2212; a '-' right after a digit is an
// operator, not a sign), digits with optional thousands separators (1,234,567), an optional
// decimal part (3.50, .5). nullopt when there is none.
std::optional<double> last_number(std::string_view s);
// Unicode whitespace trimmed from both ends.
std::string strip_unicode(std::string_view s);
// Full Unicode lower-casing (as the tokenizers' Lowercase normalizer).
std::string lower_unicode(std::string_view s);

}  // namespace rlhf::rollout
