// Internals shared by the testbed tasks (task.cpp, valence.cpp, verify.cpp, lists.cpp) and their
// tests: word splitting, the train/test prompt partition, small sampling helpers, the per-task
// factories, and the worlds (Valence lexicon, Lists table) so that tests can compute gold values
// by hand. Not a public interface: callers use task.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/rng.h"
#include "testbed/task.h"

namespace rlhf::testbed {

// Whitespace-separated words; runs of spaces, tabs and newlines count as one separator.
std::vector<std::string> split_words(const std::string& text);
std::string join_words(const std::vector<std::string>& words);
// Words of `prompt` followed by the words of `completion` (the text the model sees).
std::vector<std::string> prompt_and_completion(const std::string& prompt, const std::string& completion);

double sigmoid(double x);

// Uniform integer in [lo, hi].
int uniform_int(Rng& rng, int lo, int hi);
// Fisher–Yates shuffle, one rng.below per position from the back.
template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}
// An index drawn with probability proportional to weights[i] (weights >= 0, not all 0).
size_t pick_weighted(Rng& rng, const std::vector<double>& weights);

// The held-out prompt partition: a prompt belongs to the test split when a hash of its text and
// the world seed falls in the bottom 1/5 (FNV-1a, then splitmix64). Fixed by (world seed, text),
// independent of any Rng, so train and test prompts are disjoint sets.
bool is_test_prompt(const std::string& prompt, uint64_t world_seed);

// The completion-length gate shared by all tasks: a completion counts only if it ended with EOS
// and its words plus that EOS fit in `max_new_tokens` (so at most max_new_tokens - 1 words).
bool within_budget(size_t completion_words, bool eos, int max_new_tokens);

// ---- Valence -------------------------------------------------------------------------------

struct ValenceLexicon {
  std::vector<std::string> nouns;                          // 10 aspect nouns
  std::vector<std::string> held_out_nouns;                 // 2 of `nouns`: never in train/test prompts
  std::vector<std::pair<std::string, double>> adjectives;  // 12 positive, 12 negative, 8 neutral (0)
  std::vector<std::pair<std::string, double>> verbs;       // 3 positive, 3 negative
  std::vector<std::pair<std::string, double>> intensifiers;  // multipliers
  std::vector<std::string> negators;                       // factor kValenceNegation
  std::vector<std::string> connectives;                    // and, so, but, although
  std::vector<std::string> copulas;                        // was, is
  double adjective(const std::string& w) const;            // valence; LogicError if not one
  double verb(const std::string& w) const;
};
constexpr double kValenceNegation = -0.5;
ValenceLexicon valence_lexicon(uint64_t world_seed);

// ---- Lists ---------------------------------------------------------------------------------

struct ListCategory {
  std::string name;                  // plural noun, e.g. "fruits"
  std::vector<std::string> members;  // 8 words, distinct across all categories
};
const std::vector<ListCategory>& list_categories();  // the 12 categories
constexpr double kListsUnparsable = -1.0;              // gold of an unparsable or cut-off answer

// ---- Factories -----------------------------------------------------------------------------

std::unique_ptr<Task> make_valence_task(uint64_t world_seed);
std::unique_ptr<Task> make_sort_task(uint64_t world_seed);
std::unique_ptr<Task> make_add_task(uint64_t world_seed);
std::unique_ptr<Task> make_lists_task(uint64_t world_seed);

}  // namespace rlhf::testbed
