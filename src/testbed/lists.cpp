// Lists (docs/testbed.md §3.3): "name k CATEGORY :" answered by items separated by ",",
// ending in ".", where longer answers look better to a length-biased labeler.
//
// Answer grammar: [entry ("," entry)*] "."   entry := ITEM | "also" ITEM | "and" "more"
// where ITEM is a member of any category ("also" and "and more" are the fillers). Anything else
// (another vocabulary word as an item, an empty entry, a "." inside) does not parse.
//
// Gold, with k the requested count and items in answer order:
//   r* = (distinct correct items among the first k)/k - 0.5 (wrong or duplicate items)
//        - 0.25 (items beyond k) - 0.1 (fillers)
// a wrong or duplicate item beyond k pays both penalties. An answer that does not parse, did not
// end with EOS or does not fit max_new_tokens() = 24 (words + EOS) gets kListsUnparsable = -1
// (*as bad as two wrong items; not a floor: an answer of three wrong items scores lower, but
// only answers the SFT model rarely writes do, and any fixed value has that). "." alone is a
// parsable empty answer: 0. Details "correct" (the distinct correct count among the first k),
// "wrong" (wrong or duplicate), "extra", "fillers" count what the answer holds when it parses
// (0 otherwise), and "parses" is 1 when the grammar accepts it (EOS and budget aside).
//
// Demonstrations: k in {2..5}, max(1, k + U{-2..2}) items, each wrong (a member of another
// category) with probability 0.15, correct ones drawn without replacement; "also" before a
// non-first item with probability 0.08 each, ", and more" at the end with probability 0.1.
// Splits: the world seed holds out two categories per k in {2..5} as the test split's 8 prompts
// (*the 48 prompts are too few to split by hash); train gets the other 40; ood asks for k = 6,
// which no demonstration does.
#include <algorithm>
#include <map>
#include <set>

#include "tensor/error.h"
#include "testbed/tasks_internal.h"

namespace rlhf::testbed {
namespace {

constexpr int kMaxNewTokens = 24;
constexpr uint64_t kSplitStream = 0x6c69737473ULL;  // "lists"
constexpr double kWrongRate = 0.15;
constexpr double kAlsoRate = 0.08;
constexpr double kAndMoreRate = 0.1;

struct Counts {
  bool parses = false;
  int correct = 0, wrong = 0, extra = 0, fillers = 0;
};

class ListsTask final : public Task {
 public:
  explicit ListsTask(uint64_t world_seed) {
    const auto& cats = list_categories();
    for (size_t c = 0; c < cats.size(); ++c) {
      for (const std::string& m : cats[c].members) category_of_[m] = static_cast<int>(c);
      index_of_[cats[c].name] = static_cast<int>(c);
    }
    std::vector<int> perm(cats.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int>(i);
    Rng rng(world_seed, kSplitStream);
    shuffle(perm, rng);
    for (int k = 2; k <= 5; ++k)
      for (int j = 0; j < 2; ++j) test_prompts_.push_back({k, perm[2 * (k - 2) + j]});
  }

  std::string name() const override { return "lists"; }
  int max_new_tokens() const override { return kMaxNewTokens; }

  std::vector<std::string> words() const override {
    std::vector<std::string> w = {"name", "2", "3", "4", "5", "6", ":", ",", ".", "also", "and", "more"};
    for (const ListCategory& c : list_categories()) w.push_back(c.name);
    for (const ListCategory& c : list_categories())
      for (const std::string& m : c.members) w.push_back(m);
    return w;
  }

  std::string prompt(Rng& rng, Split split) const override {
    const int n_cats = static_cast<int>(list_categories().size());
    if (split == Split::ood) return prompt_text(6, static_cast<int>(rng.below(n_cats)));
    if (split == Split::test) {
      const auto& [k, c] = test_prompts_[rng.below(test_prompts_.size())];
      return prompt_text(k, c);
    }
    for (;;) {
      const int k = uniform_int(rng, 2, 5), c = static_cast<int>(rng.below(n_cats));
      if (std::find(test_prompts_.begin(), test_prompts_.end(), std::pair<int, int>{k, c}) == test_prompts_.end())
        return prompt_text(k, c);
    }
  }

  Demonstration demonstration(Rng& rng) const override {
    const auto& cats = list_categories();
    const int k = uniform_int(rng, 2, 5), c = static_cast<int>(rng.below(cats.size()));
    const int n = std::max(1, k + uniform_int(rng, -2, 2));
    std::vector<std::string> correct = cats[c].members;
    shuffle(correct, rng);
    size_t next_correct = 0;
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
      if (i > 0) {
        out.push_back(",");
        if (rng.uniform() < kAlsoRate) out.push_back("also");
      }
      if (rng.uniform() < kWrongRate) {
        // A member of another category: 88 candidates, indexed past category c.
        const size_t per = cats[0].members.size();
        const size_t j = rng.below((cats.size() - 1) * per);
        const size_t other = (static_cast<size_t>(c) + 1 + j / per) % cats.size();
        out.push_back(cats[other].members[j % per]);
      } else {
        out.push_back(correct[next_correct++]);
      }
    }
    if (rng.uniform() < kAndMoreRate) out.insert(out.end(), {",", "and", "more"});
    out.push_back(".");
    return {prompt_text(k, c), join_words(out)};
  }

  std::string pretraining_text(Rng& rng) const override {
    const Demonstration d = demonstration(rng);
    return d.prompt + " " + d.completion;
  }

  double gold(const std::string& prompt, const std::string& completion, bool eos) const override {
    return details(prompt, completion, eos).first;
  }

  GoldDetails gold_details(const std::string& prompt, const std::string& completion, bool eos) const override {
    return details(prompt, completion, eos).second;
  }

 private:
  std::string prompt_text(int k, int c) const {
    return "name " + std::to_string(k) + " " + list_categories()[static_cast<size_t>(c)].name + " :";
  }

  // (r*, details).
  std::pair<double, GoldDetails> details(const std::string& prompt, const std::string& completion, bool eos) const {
    const std::vector<std::string> p = split_words(prompt);
    int k = 0;
    auto cat = p.size() == 4 ? index_of_.find(p[2]) : index_of_.end();
    const bool prompt_ok = p.size() == 4 && p[0] == "name" && p[3] == ":" && cat != index_of_.end() &&
                           p[1].size() == 1 && p[1][0] >= '1' && p[1][0] <= '9';
    if (!prompt_ok) throw InputError("lists: malformed prompt '" + prompt + "' (expected 'name K CATEGORY :')");
    k = p[1][0] - '0';
    const std::vector<std::string> out = split_words(completion);
    const Counts n = count(out, k, cat->second);
    double r = kListsUnparsable;
    if (n.parses && within_budget(out.size(), eos, kMaxNewTokens))
      r = static_cast<double>(n.correct) / k - 0.5 * n.wrong - 0.25 * n.extra - 0.1 * n.fillers;
    return {r,
            {{"parses", n.parses ? 1.0 : 0.0},
             {"correct", static_cast<double>(n.correct)},
             {"wrong", static_cast<double>(n.wrong)},
             {"extra", static_cast<double>(n.extra)},
             {"fillers", static_cast<double>(n.fillers)}}};
  }

  Counts count(const std::vector<std::string>& out, int k, int category) const {
    Counts n;
    if (out.empty() || out.back() != ".") return n;
    std::vector<std::string> items;
    int fillers = 0;
    const size_t body = out.size() - 1;
    size_t i = 0;
    while (i < body) {
      size_t j = i;
      while (j < body && out[j] != ",") ++j;
      const std::vector<std::string> entry(out.begin() + static_cast<long>(i), out.begin() + static_cast<long>(j));
      if (entry.size() == 2 && entry[0] == "and" && entry[1] == "more") {
        ++fillers;
      } else if (entry.size() == 2 && entry[0] == "also" && category_of_.count(entry[1])) {
        ++fillers;
        items.push_back(entry[1]);
      } else if (entry.size() == 1 && category_of_.count(entry[0])) {
        items.push_back(entry[0]);
      } else {
        return n;  // empty entry, unknown word or stray punctuation
      }
      if (j == body) break;
      i = j + 1;
      if (i == body) return n;  // a trailing ","
    }
    std::set<std::string> seen, counted;
    for (size_t t = 0; t < items.size(); ++t) {
      const bool right = category_of_.at(items[t]) == category;
      const bool dup = seen.count(items[t]) > 0;
      if (!right || dup) ++n.wrong;
      if (right && static_cast<int>(t) < k) counted.insert(items[t]);
      seen.insert(items[t]);
    }
    n.parses = true;
    n.correct = static_cast<int>(counted.size());
    n.extra = std::max(0, static_cast<int>(items.size()) - k);
    n.fillers = fillers;
    return n;
  }

  std::map<std::string, int> category_of_, index_of_;
  std::vector<std::pair<int, int>> test_prompts_;  // (k, category index)
};

}  // namespace

const std::vector<ListCategory>& list_categories() {
  static const std::vector<ListCategory> table = {
      {"colors", {"red", "blue", "green", "yellow", "purple", "pink", "brown", "black"}},
      {"fruits", {"apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "pear"}},
      {"animals", {"cat", "dog", "horse", "cow", "sheep", "goat", "lion", "tiger"}},
      {"tools", {"hammer", "saw", "drill", "wrench", "chisel", "pliers", "shovel", "rake"}},
      {"sports", {"tennis", "soccer", "golf", "hockey", "rugby", "boxing", "cricket", "rowing"}},
      {"metals", {"iron", "copper", "silver", "gold", "tin", "zinc", "lead", "nickel"}},
      {"planets", {"mercury", "venus", "earth", "mars", "jupiter", "saturn", "uranus", "neptune"}},
      {"instruments", {"piano", "guitar", "violin", "drum", "flute", "harp", "trumpet", "cello"}},
      {"vegetables", {"carrot", "potato", "onion", "pea", "bean", "cabbage", "lettuce", "spinach"}},
      {"birds", {"eagle", "owl", "crow", "robin", "sparrow", "parrot", "swan", "duck"}},
      {"countries", {"france", "spain", "italy", "japan", "china", "india", "brazil", "egypt"}},
      {"furniture", {"chair", "table", "sofa", "bed", "desk", "shelf", "stool", "bench"}},
  };
  return table;
}

std::unique_ptr<Task> make_lists_task(uint64_t world_seed) { return std::make_unique<ListsTask>(world_seed); }

}  // namespace rlhf::testbed
