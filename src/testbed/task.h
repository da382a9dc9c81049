// The testbed's procedural tasks (docs/testbed.md §3): a world fixed by a seed, prompts and
// demonstrations sampled from it, and a gold reward computed exactly by a program.
//
// Text is whitespace-separated words of the task's own vocabulary (the word-level tokenizer of
// the testbed models has one token per word), so a completion is what the tokenizer decodes:
// words joined by single spaces, without the EOS token, with `eos` telling whether the sample
// ended with it.
//
// Example:
//   auto task = make_task("valence", /*world_seed=*/1);
//   Rng rng(7, 0);
//   std::string p = task->prompt(rng, Split::train);     // "the plot was awful but"
//   double r = task->gold(p, "the ending was great .", /*eos=*/true);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/rng.h"

namespace rlhf::testbed {

// train: the prompts preference data and RL use; test: held-out prompts of the same
// distribution; ood: the task's out-of-distribution prompts (Valence: held-out templates/nouns
// and 10–14-token prefixes; SORT: 8–10 digits; ADD: longer operands; Lists: unseen k); val: the
// validation prompts hyperparameter tuning reads. A task draws val prompts as train ones; the
// bench keeps those that its train and test prompt files do not hold (World::prompts), so the
// three sets are disjoint and train/test are the same as without a val split.
enum class Split { train, test, ood, val };

struct Demonstration {
  std::string prompt;
  std::string completion;  // without EOS; the SFT corpus appends it
};

// Named parts of the gold reward for the metrics, the same names in the same order for every
// call of one task (Verify: "pass", "partial", "format"; Valence: "parses", "sentiment"; Lists:
// "parses", "correct", "wrong", "extra", "fillers"). Verify's "partial" is the dense variant of
// its gold.
using GoldDetails = std::vector<std::pair<std::string, double>>;

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // Every word prompts and completions may contain, in a fixed order (no special tokens).
  virtual std::vector<std::string> words() const = 0;
  virtual std::string prompt(Rng& rng, Split split) const = 0;
  // One SFT example: the base distribution (Valence: author sentiment tilt; SORT/ADD: 25%
  // corrupted; Lists: k + U{-2..2} items, 15% wrong, occasional fillers).
  virtual Demonstration demonstration(Rng& rng) const = 0;
  // Unlabelled text for language-model pretraining (whole reviews, solved problems, lists).
  virtual std::string pretraining_text(Rng& rng) const = 0;
  // The gold reward r* of a completion of `prompt` (exact; no randomness). Verify and Lists
  // throw InputError for a prompt that is not one of theirs; Valence scores it as text.
  virtual double gold(const std::string& prompt, const std::string& completion, bool eos) const = 0;
  virtual GoldDetails gold_details(const std::string& prompt, const std::string& completion, bool eos) const = 0;
  // Tokens a completion may use before it is cut off, EOS included (the gold gate's budget: a
  // completion counts only with eos and at most max_new_tokens() - 1 words).
  virtual int max_new_tokens() const = 0;
};

// "valence", "sort", "add", "lists"; InputError for anything else.
std::unique_ptr<Task> make_task(const std::string& name, uint64_t world_seed);
std::vector<std::string> task_names();

}  // namespace rlhf::testbed
