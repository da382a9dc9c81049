// Valence (docs/testbed.md §3.1): the IMDb analog. A seeded lexicon, a small review grammar,
// a sentiment-tilted review generator and the exact compositional gold reward.
//
// Grammar (a review is 1–4 clauses joined by connectives, ending in "."):
//   review := clause (CONN clause){0,3} "."
//   clause := "the" NOUN COP [NEG] [INT] ADJ ["and" [INT] ADJ]  |  "i" [NEG] VERB "the" NOUN
// "and" after an adjective joins a second adjective when an INT or ADJ follows, else it is the
// connective.
//
// Gold (choices where the spec is silent are marked *):
//   clause value  = NEG factor (-0.5, or 1) x mean(INT x ADJ)  |  NEG factor x VERB
//   clause weight = 1, x0.5 for the clause just before "but", x1.5 for the clause just after it,
//                   x0.5 for the clause just after "although" (*factors multiply when a clause
//                   is on two sides), and 0 when any of its (noun, adjective-or-verb) pairs
//                   appeared in an earlier clause (*whatever the negation or intensifier: saying
//                   "the film was good" again, or "not good", adds nothing; pairs inside one
//                   clause do not count as earlier)
//   S  = sum(w v) / sum(w)
//   r* = sigmoid(2 S) when prompt + completion parses, the completion is non-empty (it ends with
//        the "."), it ended with EOS and words + EOS fit in max_new_tokens() = 24; else 0.
//
// World seed: picks the 10 nouns from a pool of 14, 12 positive / 12 negative / 8 neutral
// adjectives from pools, 3 + 3 verbs, the magnitudes (each of 0.5, 1, 1.5, 2 three times per
// sign for adjectives; 1, 1.5, 2 per sign for verbs), and the 2 held-out nouns. Intensifiers are
// fixed: very x1.5, extremely x2, slightly x0.5, somewhat x0.75.
//
// Corpus: an author sentiment s ~ U[-1, 1]; each adjective/verb is drawn with weight
// exp(1.5 * t * f * value), t = s (t = -s for the clause just before "but": authors concede the
// other side first), f = the negation factor x the intensifier. The lexicon is symmetric in sign,
// so mean gold over the corpus is 1/2. In-distribution reviews have at most 25 words, so every
// 2–8-word prefix leaves a completion that fits the budget.
//
// Splits: train/test prompts are 2–8-word prefixes containing no held-out noun and neither held-
// out template (*"NEG INT", a negated intensified adjective, and "i NEG", a negated verb clause);
// those appear in demonstrations and pretraining text only. Prefixes of >= 4 words are split
// between train and test by is_test_prompt(); *shorter ones (few distinct ones exist, as in
// IMDb) are shared. ood: half 10–14-word prefixes of longer reviews, half 2–8-word prefixes
// that contain a held-out noun or template.
#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include "tensor/error.h"
#include "testbed/tasks_internal.h"

namespace rlhf::testbed {
namespace {

constexpr uint64_t kLexiconStream = 0x76616c656e6365ULL;  // "valence"
constexpr int kMaxNewTokens = 24;
constexpr size_t kMaxReviewWords = 25;  // in-distribution reviews: a 2-word prefix leaves <= 23
constexpr double kTilt = 1.5;

const std::vector<std::string> kNounPool = {"film",  "plot",      "ending",    "acting", "cast",
                                            "script", "music",    "story",     "dialogue", "direction",
                                            "pacing", "soundtrack", "visuals", "effects"};
const std::vector<std::string> kPositivePool = {"good",     "great",    "superb", "brilliant", "wonderful",
                                                "excellent", "charming", "clever", "moving",    "fun",
                                                "lovely",   "solid",    "decent", "gripping",  "fresh",
                                                "stunning"};
const std::vector<std::string> kNegativePool = {"bad",   "awful",  "terrible", "boring",  "dull",   "weak",
                                                "poor",  "silly",  "bland",    "messy",   "clumsy", "tedious",
                                                "dreadful", "flat", "lame",    "horrible"};
const std::vector<std::string> kNeutralPool = {"long",  "short", "loud",     "quiet",    "simple", "typical",
                                               "old",   "new",   "different", "familiar", "plain", "slow"};
const std::vector<std::string> kPositiveVerbs = {"loved", "liked", "enjoyed", "adored", "admired"};
const std::vector<std::string> kNegativeVerbs = {"hated", "disliked", "loathed", "despised", "resented"};

std::vector<std::string> choose(const std::vector<std::string>& pool, size_t k, Rng& rng) {
  std::vector<std::string> v = pool;
  shuffle(v, rng);
  v.resize(k);
  return v;
}

std::vector<std::pair<std::string, double>> with_values(const std::vector<std::string>& words,
                                                        std::vector<double> values, Rng& rng) {
  shuffle(values, rng);
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < words.size(); ++i) out.emplace_back(words[i], values[i]);
  return out;
}

enum class Kind { none, the, i, period, noun, copula, negator, intensifier, adjective, verb, connective };

struct ParsedClause {
  std::string noun;
  std::vector<std::string> heads;  // adjectives or the verb
  double value = 0;
};

struct ParsedReview {
  std::vector<ParsedClause> clauses;
  std::vector<std::string> connectives;  // connectives[i] joins clauses[i] and clauses[i + 1]
};

class ValenceTask final : public Task {
 public:
  explicit ValenceTask(uint64_t world_seed) : world_seed_(world_seed), lex_(valence_lexicon(world_seed)) {
    auto add = [&](const std::string& w, Kind k, double v = 0) {
      kind_[w] = k;
      value_[w] = v;
      words_.push_back(w);
    };
    add("the", Kind::the);
    add("i", Kind::i);
    add(".", Kind::period);
    for (const auto& w : lex_.copulas) add(w, Kind::copula);
    for (const auto& w : lex_.negators) add(w, Kind::negator, kValenceNegation);
    for (const auto& [w, v] : lex_.intensifiers) add(w, Kind::intensifier, v);
    for (const auto& w : lex_.connectives) add(w, Kind::connective);
    for (const auto& w : lex_.nouns) add(w, Kind::noun);
    for (const auto& [w, v] : lex_.adjectives) add(w, Kind::adjective, v);
    for (const auto& [w, v] : lex_.verbs) add(w, Kind::verb, v);
    held_out_.insert(lex_.held_out_nouns.begin(), lex_.held_out_nouns.end());
  }

  std::string name() const override { return "valence"; }
  std::vector<std::string> words() const override { return words_; }
  int max_new_tokens() const override { return kMaxNewTokens; }

  std::string prompt(Rng& rng, Split split) const override {
    if (split == Split::ood && rng.uniform() < 0.5) {
      // A 10–14-word prefix of a longer review whose completion still fits the budget.
      for (;;) {
        const std::vector<std::string> r = review(rng, rng.uniform() * 2 - 1, /*max_words=*/0);
        const size_t n = static_cast<size_t>(uniform_int(rng, 10, 14));
        if (r.size() > n && r.size() - n + 1 <= static_cast<size_t>(kMaxNewTokens))
          return join_words({r.begin(), r.begin() + static_cast<long>(n)});
      }
    }
    for (;;) {
      const std::vector<std::string> r = review(rng, rng.uniform() * 2 - 1, kMaxReviewWords);
      const int n = uniform_int(rng, 2, std::min<int>(8, static_cast<int>(r.size()) - 1));
      const std::vector<std::string> p(r.begin(), r.begin() + n);
      const bool held_out = has_held_out(p);
      if (split == Split::ood) {
        if (held_out) return join_words(p);
        continue;
      }
      if (held_out) continue;
      const std::string text = join_words(p);
      if (p.size() >= 4 && is_test_prompt(text, world_seed_) != (split == Split::test)) continue;
      return text;
    }
  }

  Demonstration demonstration(Rng& rng) const override {
    const std::vector<std::string> r = review(rng, rng.uniform() * 2 - 1, kMaxReviewWords);
    const int n = uniform_int(rng, 2, std::min<int>(8, static_cast<int>(r.size()) - 1));
    return {join_words({r.begin(), r.begin() + n}), join_words({r.begin() + n, r.end()})};
  }

  std::string pretraining_text(Rng& rng) const override {
    return join_words(review(rng, rng.uniform() * 2 - 1, kMaxReviewWords));
  }

  double gold(const std::string& prompt, const std::string& completion, bool eos) const override {
    return evaluate(prompt, completion, eos).gold;
  }

  GoldDetails gold_details(const std::string& prompt, const std::string& completion, bool eos) const override {
    const Evaluation e = evaluate(prompt, completion, eos);
    return {{"parses", e.parses ? 1.0 : 0.0}, {"sentiment", e.sentiment}};
  }

 private:
  struct Evaluation {
    bool parses = false;
    double sentiment = 0;
    double gold = 0;
  };

  Kind kind(const std::vector<std::string>& w, size_t pos) const {
    if (pos >= w.size()) return Kind::none;
    auto it = kind_.find(w[pos]);
    return it == kind_.end() ? Kind::none : it->second;
  }

  bool has_held_out(const std::vector<std::string>& p) const {
    for (size_t i = 0; i < p.size(); ++i) {
      if (held_out_.count(p[i])) return true;
      if (kind(p, i) == Kind::negator && kind(p, i + 1) == Kind::intensifier) return true;
      if (kind(p, i) == Kind::i && kind(p, i + 1) == Kind::negator) return true;
    }
    return false;
  }

  // [INT] ADJ at pos: appends INT x ADJ to terms.
  bool parse_adjective(const std::vector<std::string>& w, size_t& pos, ParsedClause& c, std::vector<double>& terms) const {
    double m = 1;
    if (kind(w, pos) == Kind::intensifier) m = value_.at(w[pos++]);
    if (kind(w, pos) != Kind::adjective) return false;
    c.heads.push_back(w[pos]);
    terms.push_back(m * value_.at(w[pos++]));
    return true;
  }

  bool parse_clause(const std::vector<std::string>& w, size_t& pos, ParsedClause& c) const {
    if (kind(w, pos) == Kind::the) {
      ++pos;
      if (kind(w, pos) != Kind::noun) return false;
      c.noun = w[pos++];
      if (kind(w, pos) != Kind::copula) return false;
      ++pos;
      double neg = 1;
      if (kind(w, pos) == Kind::negator) neg = value_.at(w[pos++]);
      std::vector<double> terms;
      if (!parse_adjective(w, pos, c, terms)) return false;
      if (w.size() > pos && w[pos] == "and" &&
          (kind(w, pos + 1) == Kind::intensifier || kind(w, pos + 1) == Kind::adjective)) {
        ++pos;
        if (!parse_adjective(w, pos, c, terms)) return false;
      }
      double mean = 0;
      for (double t : terms) mean += t;
      c.value = neg * mean / static_cast<double>(terms.size());
      return true;
    }
    if (kind(w, pos) == Kind::i) {
      ++pos;
      double neg = 1;
      if (kind(w, pos) == Kind::negator) neg = value_.at(w[pos++]);
      if (kind(w, pos) != Kind::verb) return false;
      c.heads.push_back(w[pos]);
      c.value = neg * value_.at(w[pos++]);
      if (kind(w, pos) != Kind::the) return false;
      ++pos;
      if (kind(w, pos) != Kind::noun) return false;
      c.noun = w[pos++];
      return true;
    }
    return false;
  }

  bool parse(const std::vector<std::string>& w, ParsedReview& r) const {
    size_t pos = 0;
    for (;;) {
      ParsedClause c;
      if (!parse_clause(w, pos, c)) return false;
      r.clauses.push_back(std::move(c));
      if (kind(w, pos) == Kind::period) return pos + 1 == w.size();
      if (kind(w, pos) != Kind::connective || r.clauses.size() == 4) return false;
      r.connectives.push_back(w[pos++]);
    }
  }

  static double sentiment(const ParsedReview& r) {
    const size_t n = r.clauses.size();
    std::vector<double> weight(n, 1.0);
    for (size_t i = 0; i + 1 < n; ++i) {
      if (r.connectives[i] == "but") {
        weight[i] *= 0.5;
        weight[i + 1] *= 1.5;
      } else if (r.connectives[i] == "although") {
        weight[i + 1] *= 0.5;
      }
    }
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < n; ++i) {
      const ParsedClause& c = r.clauses[i];
      for (const std::string& h : c.heads)
        if (seen.count({c.noun, h})) weight[i] = 0;
      for (const std::string& h : c.heads) seen.insert({c.noun, h});
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
      num += weight[i] * r.clauses[i].value;
      den += weight[i];
    }
    return den > 0 ? num / den : 0.0;
  }

  Evaluation evaluate(const std::string& prompt, const std::string& completion, bool eos) const {
    Evaluation e;
    const std::vector<std::string> w = prompt_and_completion(prompt, completion);
    ParsedReview r;
    e.parses = parse(w, r);
    if (!e.parses) return e;
    e.sentiment = sentiment(r);
    const size_t n_completion = split_words(completion).size();
    if (n_completion > 0 && within_budget(n_completion, eos, kMaxNewTokens)) e.gold = sigmoid(2 * e.sentiment);
    return e;
  }

  // ---- generation ----

  // Picks index i of `items` with weight exp(kTilt * tilt * factor * value_i).
  static size_t tilted(Rng& rng, const std::vector<std::pair<std::string, double>>& items, double tilt, double factor) {
    std::vector<double> wts;
    for (const auto& it : items) wts.push_back(std::exp(kTilt * tilt * factor * it.second));
    return pick_weighted(rng, wts);
  }

  void append_adjective(Rng& rng, double tilt, double neg, std::vector<std::string>& out) const {
    double m = 1;
    if (rng.uniform() < 0.3) {
      const auto& in = lex_.intensifiers[rng.below(lex_.intensifiers.size())];
      out.push_back(in.first);
      m = in.second;
    }
    out.push_back(lex_.adjectives[tilted(rng, lex_.adjectives, tilt, neg * m)].first);
  }

  void append_clause(Rng& rng, double tilt, std::vector<std::string>& out) const {
    const bool negated = rng.uniform() < 0.15;
    const std::string& neg_word = lex_.negators[rng.below(lex_.negators.size())];
    const double neg = negated ? kValenceNegation : 1.0;
    const std::string& noun = lex_.nouns[rng.below(lex_.nouns.size())];
    if (rng.uniform() < 0.25) {
      out.push_back("i");
      if (negated) out.push_back(neg_word);
      out.push_back(lex_.verbs[tilted(rng, lex_.verbs, tilt, neg)].first);
      out.push_back("the");
      out.push_back(noun);
      return;
    }
    out.push_back("the");
    out.push_back(noun);
    out.push_back(lex_.copulas[rng.below(lex_.copulas.size())]);
    if (negated) out.push_back(neg_word);
    append_adjective(rng, tilt, neg, out);
    if (rng.uniform() < 0.25) {
      out.push_back("and");
      append_adjective(rng, tilt, neg, out);
    }
  }

  // A review by an author of sentiment s, redrawn until it has at most max_words words
  // (0: no limit).
  std::vector<std::string> review(Rng& rng, double s, size_t max_words) const {
    for (;;) {
      const int n = 1 + static_cast<int>(pick_weighted(rng, {0.2, 0.35, 0.3, 0.15}));
      std::vector<std::string> conn;
      for (int i = 0; i + 1 < n; ++i)
        conn.push_back(lex_.connectives[pick_weighted(rng, {0.35, 0.15, 0.3, 0.2})]);  // and so but although
      std::vector<std::string> out;
      for (int i = 0; i < n; ++i) {
        if (i > 0) out.push_back(conn[i - 1]);
        const bool conceding = i + 1 < n && conn[i] == "but";
        append_clause(rng, conceding ? -s : s, out);
      }
      out.push_back(".");
      if (max_words == 0 || out.size() <= max_words) return out;
    }
  }

  uint64_t world_seed_;
  ValenceLexicon lex_;
  std::vector<std::string> words_;
  std::unordered_map<std::string, Kind> kind_;
  std::unordered_map<std::string, double> value_;
  std::set<std::string> held_out_;
};

}  // namespace

double ValenceLexicon::adjective(const std::string& w) const {
  for (const auto& [a, v] : adjectives)
    if (a == w) return v;
  throw LogicError("valence: '" + w + "' is not an adjective of this lexicon");
}

double ValenceLexicon::verb(const std::string& w) const {
  for (const auto& [a, v] : verbs)
    if (a == w) return v;
  throw LogicError("valence: '" + w + "' is not a verb of this lexicon");
}

ValenceLexicon valence_lexicon(uint64_t world_seed) {
  Rng rng(world_seed, kLexiconStream);
  ValenceLexicon lex;
  lex.nouns = choose(kNounPool, 10, rng);
  lex.held_out_nouns = {lex.nouns[8], lex.nouns[9]};  // the draw is random, so any two will do
  const std::vector<double> mags = {0.5, 0.5, 0.5, 1, 1, 1, 1.5, 1.5, 1.5, 2, 2, 2};
  std::vector<double> neg_mags;
  for (double m : mags) neg_mags.push_back(-m);
  for (auto& p : with_values(choose(kPositivePool, 12, rng), mags, rng)) lex.adjectives.push_back(p);
  for (auto& p : with_values(choose(kNegativePool, 12, rng), neg_mags, rng)) lex.adjectives.push_back(p);
  for (const std::string& w : choose(kNeutralPool, 8, rng)) lex.adjectives.emplace_back(w, 0.0);
  lex.verbs = with_values(choose(kPositiveVerbs, 3, rng), {1, 1.5, 2}, rng);
  for (auto& p : with_values(choose(kNegativeVerbs, 3, rng), {-1, -1.5, -2}, rng)) lex.verbs.push_back(p);
  lex.intensifiers = {{"very", 1.5}, {"extremely", 2.0}, {"slightly", 0.5}, {"somewhat", 0.75}};
  lex.negators = {"not", "never"};
  lex.connectives = {"and", "so", "but", "although"};
  lex.copulas = {"was", "is"};
  return lex;
}

std::unique_ptr<Task> make_valence_task(uint64_t world_seed) { return std::make_unique<ValenceTask>(world_seed); }

}  // namespace rlhf::testbed
