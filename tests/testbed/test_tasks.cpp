// The testbed's procedural tasks: gold values computed by hand for specific strings (negation,
// contrast, repetition, saturation, the parse/EOS/length gate, partial credit, the Lists
// formula), determinism, vocabularies, and the properties of the base distributions and splits.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "../model/model_test_util.h"
#include "tensor/error.h"
#include "testbed/task.h"
#include "testbed/tasks_internal.h"

namespace rlhf::testbed {
namespace {

using rlhf::test::expect_error;

double detail(const GoldDetails& d, const std::string& name) {
  for (const auto& [k, v] : d)
    if (k == name) return v;
  ADD_FAILURE() << "no detail named " << name;
  return NAN;
}

std::vector<std::string> draw_prompts(const Task& t, Split split, int n, uint64_t seed) {
  Rng rng(seed, 1);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(t.prompt(rng, split));
  return out;
}

// ---- every task ----------------------------------------------------------------------------

TEST(TaskRegistry, NamesFactoryAndVocabularies) {
  EXPECT_EQ(task_names(), (std::vector<std::string>{"valence", "sort", "add", "lists"}));
  for (const std::string& name : task_names()) {
    auto t = make_task(name, 1);
    EXPECT_EQ(t->name(), name);
    const std::vector<std::string> w = t->words();
    EXPECT_LT(w.size(), 128u) << name;
    EXPECT_EQ(std::set<std::string>(w.begin(), w.end()).size(), w.size()) << name << ": duplicate words";
    for (const std::string& x : w) {
      EXPECT_FALSE(x.empty());
      for (char c : x) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || std::string(",.:=+").find(c) != std::string::npos) << name << ": '" << x << "'";
    }
  }
  expect_error<InputError>([] { make_task("imdb", 1); }, {"'imdb'", "valence"});
}

TEST(TaskRegistry, DeterministicGivenWorldSeedAndRng) {
  for (const std::string& name : task_names()) {
    auto a = make_task(name, 3), b = make_task(name, 3);
    EXPECT_EQ(a->words(), b->words());
    Rng ra(11, 2), rb(11, 2);
    for (int i = 0; i < 50; ++i) {
      for (Split s : {Split::train, Split::test, Split::ood}) EXPECT_EQ(a->prompt(ra, s), b->prompt(rb, s)) << name;
      const Demonstration da = a->demonstration(ra), db = b->demonstration(rb);
      EXPECT_EQ(da.prompt, db.prompt);
      EXPECT_EQ(da.completion, db.completion);
      EXPECT_EQ(a->pretraining_text(ra), b->pretraining_text(rb));
    }
  }
  // Another world seed is another world (here: another lexicon).
  EXPECT_NE(make_task("valence", 3)->words(), make_task("valence", 4)->words());
}

TEST(TaskRegistry, EverythingSampledUsesOnlyTheTaskWords) {
  for (const std::string& name : task_names()) {
    auto t = make_task(name, 2);
    const std::vector<std::string> w = t->words();
    const std::set<std::string> vocab(w.begin(), w.end());
    auto check = [&](const std::string& text) {
      for (const std::string& x : split_words(text)) ASSERT_TRUE(vocab.count(x)) << name << ": '" << x << "' in '" << text << "'";
    };
    Rng rng(5, 0);
    for (int i = 0; i < 500; ++i) {
      const Demonstration d = t->demonstration(rng);
      check(d.prompt);
      check(d.completion);
      check(t->pretraining_text(rng));
      for (Split s : {Split::train, Split::test, Split::ood}) check(t->prompt(rng, s));
    }
  }
}

// ---- Valence ---------------------------------------------------------------------------------

class ValenceGold : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& [w, v] : lex_.adjectives) adj_[v].push_back(w);
    for (const auto& [w, v] : lex_.verbs) verb_[v] = w;
  }
  // The full text split after its first `prompt_words` words.
  double gold(const std::string& text, bool eos = true, size_t prompt_words = 2) const {
    return task_->gold(head(text, prompt_words), tail(text, prompt_words), eos);
  }
  GoldDetails details(const std::string& text, bool eos = true, size_t prompt_words = 2) const {
    return task_->gold_details(head(text, prompt_words), tail(text, prompt_words), eos);
  }
  static std::string head(const std::string& text, size_t n) {
    const auto w = split_words(text);
    return join_words({w.begin(), w.begin() + static_cast<long>(std::min(n, w.size()))});
  }
  static std::string tail(const std::string& text, size_t n) {
    const auto w = split_words(text);
    return join_words({w.begin() + static_cast<long>(std::min(n, w.size())), w.end()});
  }
  std::string a(double v, size_t i = 0) const { return adj_.at(v).at(i); }

  std::unique_ptr<Task> task_ = make_task("valence", 5);
  ValenceLexicon lex_ = valence_lexicon(5);
  std::map<double, std::vector<std::string>> adj_;
  std::map<double, std::string> verb_;
  std::string A = lex_.nouns[0], B = lex_.nouns[1], C = lex_.nouns[2];
};

TEST_F(ValenceGold, LexiconShape) {
  EXPECT_EQ(lex_.nouns.size(), 10u);
  EXPECT_EQ(lex_.held_out_nouns.size(), 2u);
  EXPECT_EQ(lex_.adjectives.size(), 32u);
  EXPECT_EQ(adj_.at(0.0).size(), 8u);
  for (double v : {0.5, 1.0, 1.5, 2.0}) {
    EXPECT_EQ(adj_.at(v).size(), 3u);
    EXPECT_EQ(adj_.at(-v).size(), 3u);
  }
  EXPECT_EQ(lex_.verbs.size(), 6u);
  EXPECT_EQ(task_->max_new_tokens(), 24);
}

TEST_F(ValenceGold, SingleClausesNegationIntensifiersAndVerbs) {
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " ."), sigmoid(4));
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(0) + " ."), 0.5);
  // not x -0.5: "not <+2>" is mildly negative, "never <-1>" mildly positive.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was not " + a(2) + " ."), sigmoid(-2));
  EXPECT_DOUBLE_EQ(gold("the " + A + " is never " + a(-1) + " ."), sigmoid(1));
  EXPECT_DOUBLE_EQ(gold("the " + A + " was very " + a(2) + " ."), sigmoid(6));
  EXPECT_DOUBLE_EQ(gold("the " + A + " was slightly " + a(-2) + " ."), sigmoid(-2));
  EXPECT_DOUBLE_EQ(gold("the " + A + " was not extremely " + a(1) + " ."), sigmoid(-2));  // -0.5 * 2 * 1
  EXPECT_DOUBLE_EQ(gold("i " + verb_.at(2) + " the " + A + " ."), sigmoid(4));
  EXPECT_DOUBLE_EQ(gold("i never " + verb_.at(2) + " the " + A + " ."), sigmoid(-2));
  EXPECT_DOUBLE_EQ(gold("i " + verb_.at(-2) + " the " + A + " so the " + B + " was " + a(1) + " ."), sigmoid(-1));
  const GoldDetails d = details("the " + A + " was very " + a(-1) + " .");
  EXPECT_EQ(d.size(), 2u);
  EXPECT_DOUBLE_EQ(detail(d, "parses"), 1);
  EXPECT_DOUBLE_EQ(detail(d, "sentiment"), -1.5);
}

TEST_F(ValenceGold, AdjectiveListsSaturateByTheMean) {
  const double one = gold("the " + A + " was " + a(2) + " .");
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " and " + a(2, 1) + " ."), one);
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " and " + a(2) + " ."), one);  // within one clause: no repetition
  EXPECT_DOUBLE_EQ(gold("the " + A + " was very " + a(2) + " and slightly " + a(-1) + " ."), sigmoid(2.5));  // mean(3, -0.5)
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " and " + a(0) + " ."), sigmoid(2));
}

TEST_F(ValenceGold, ButAndAlthoughWeights) {
  // but: 0.5 before, 1.5 after. (0.5 * -1 + 1.5 * 2) / 2 = 1.25.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(-1) + " but the " + B + " was " + a(2) + " ."), sigmoid(2.5));
  // Swapping the sides: (0.5 * 2 + 1.5 * -1) / 2 = -0.25.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " but the " + B + " was " + a(-1) + " ."), sigmoid(-0.5));
  // although: 0.5 for the clause after it. (2 + 0.5 * -2) / 1.5 = 2/3.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " although the " + B + " was " + a(-2) + " ."), sigmoid(4.0 / 3));
  // and / so: plain mean.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " and the " + B + " was " + a(-1) + " ."), sigmoid(1));
  // "and" joining clauses, a verb clause after it.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(1) + " and i " + verb_.at(2) + " the " + B + " ."), sigmoid(3));
}

TEST_F(ValenceGold, RepeatedNounAdjectivePairWeighsZero) {
  // Weights 1, 1, 0: (2 - 1) / 2.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " and the " + B + " was " + a(-1) + " and the " + A + " is very " + a(2) + " ."),
                   sigmoid(1));
  // Whatever the negation: the pair repeats.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " and the " + B + " was " + a(-1) + " and the " + A + " is not " + a(2) + " ."),
                   sigmoid(1));
  // Repeated verb clauses too.
  EXPECT_DOUBLE_EQ(gold("i " + verb_.at(2) + " the " + A + " and i " + verb_.at(2) + " the " + A + " ."), sigmoid(4));
  // Another noun with the same adjective is not a repetition: (2 + 2 - 1) / 3.
  EXPECT_DOUBLE_EQ(gold("the " + A + " was " + a(2) + " and the " + B + " was " + a(-1) + " and the " + C + " is " + a(2) + " ."),
                   sigmoid(2.0));
}

TEST_F(ValenceGold, UnparsableTextScoresZero) {
  const std::vector<std::string> bad = {
      "the " + A + " was .",
      "the " + A + " was " + a(2),                       // no "."
      "the " + A + " was " + a(2) + " . .",
      "the " + A + " was " + a(2) + " . the",
      "the " + A + " " + a(2) + " .",                    // no copula
      "the " + A + " was " + a(2) + " but .",
      "i " + verb_.at(2) + " " + A + " .",
      "the " + A + " was xyzzy .",
      "the " + A + " was " + a(2) + " and .",
      "the " + A + " was very not " + a(2) + " .",       // NEG after INT
  };
  for (const std::string& t : bad) {
    EXPECT_EQ(gold(t), 0.0) << t;
    EXPECT_EQ(detail(details(t), "parses"), 0.0) << t;
  }
  // Four clauses parse; a fifth does not.
  std::string four = "the " + A + " was " + a(1);
  for (int i = 0; i < 3; ++i) four += " and the " + lex_.nouns[static_cast<size_t>(i + 1)] + " was " + a(1);
  EXPECT_DOUBLE_EQ(gold(four + " ."), sigmoid(2));
  EXPECT_EQ(gold(four + " and the " + lex_.nouns[5] + " was " + a(1) + " ."), 0.0);
}

TEST_F(ValenceGold, EosAndLengthGate) {
  const std::string t = "the " + A + " was " + a(2) + " .";
  EXPECT_EQ(gold(t, /*eos=*/false), 0.0);
  const GoldDetails d = details(t, /*eos=*/false);
  EXPECT_EQ(detail(d, "parses"), 1.0);  // the gate is not the grammar
  EXPECT_DOUBLE_EQ(detail(d, "sentiment"), 2.0);
  // The "." must come from the completion: a finished prompt with an empty completion fails.
  EXPECT_EQ(task_->gold(t, "", true), 0.0);
  // Values 3, mean(3, -0.5) = 1.25, -0.5 * mean(4, 3) = -1.75; weights 1, 0.5, 1.5: S = 1/3.
  const std::string long_text = "the " + A + " was very " + a(2) + " and the " + B + " is very " + a(2) + " and slightly " +
                                a(-1) + " but the " + C + " was not extremely " + a(2) + " and very " + a(2, 1) + " .";
  ASSERT_EQ(split_words(long_text).size(), 25u);
  EXPECT_DOUBLE_EQ(gold(long_text, true, 2), sigmoid(2.0 / 3));  // 23 words + EOS = 24
  EXPECT_EQ(gold(long_text, true, 1), 0.0);                        // 24 words + EOS > 24
  EXPECT_EQ(detail(details(long_text, true, 1), "parses"), 1.0);
}

TEST(ValenceTask, DemonstrationsAreBalancedAndAlwaysPass) {
  auto t = make_task("valence", 1);
  Rng rng(3, 0);
  double sum = 0, sum2 = 0;
  int high = 0, low = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const Demonstration d = t->demonstration(rng);
    const size_t pw = split_words(d.prompt).size();
    ASSERT_GE(pw, 2u);
    ASSERT_LE(pw, 8u);
    const double g = t->gold(d.prompt, d.completion, true);
    ASSERT_GT(g, 0.0) << d.prompt << " | " << d.completion;  // parses and fits the budget
    sum += g;
    sum2 += g * g;
    high += g > 0.8;
    low += g < 0.2;
  }
  const double mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
  EXPECT_NEAR(mean, 0.5, 0.1);
  // The author tilt spreads the corpus over both ends (headroom for tuning).
  EXPECT_GT(sd, 0.2);
  EXPECT_GT(high, n / 10);
  EXPECT_GT(low, n / 10);
  // Pretraining text is whole reviews.
  for (int i = 0; i < 100; ++i) {
    const auto w = split_words(t->pretraining_text(rng));
    EXPECT_TRUE(t->gold_details(join_words({w.begin(), w.begin() + 2}), join_words({w.begin() + 2, w.end()}), true)[0].second == 1.0);
  }
}

TEST(ValenceTask, SplitsHoldOutNounsTemplatesAndLongPrefixes) {
  auto t = make_task("valence", 1);
  const ValenceLexicon lex = valence_lexicon(1);
  const std::set<std::string> held(lex.held_out_nouns.begin(), lex.held_out_nouns.end());
  const std::set<std::string> negs(lex.negators.begin(), lex.negators.end());
  std::set<std::string> ints;
  for (const auto& [w, v] : lex.intensifiers) ints.insert(w);
  auto held_out = [&](const std::vector<std::string>& w) {
    for (size_t i = 0; i < w.size(); ++i) {
      if (held.count(w[i])) return true;
      if (i + 1 < w.size() && negs.count(w[i]) && ints.count(w[i + 1])) return true;
      if (i + 1 < w.size() && w[i] == "i" && negs.count(w[i + 1])) return true;
    }
    return false;
  };
  std::set<std::string> train_long, test_long;
  for (Split s : {Split::train, Split::test}) {
    for (const std::string& p : draw_prompts(*t, s, 2000, 9)) {
      const auto w = split_words(p);
      ASSERT_GE(w.size(), 2u);
      ASSERT_LE(w.size(), 8u);
      ASSERT_FALSE(held_out(w)) << p;
      if (w.size() >= 4) (s == Split::train ? train_long : test_long).insert(p);
    }
  }
  for (const std::string& p : test_long) EXPECT_FALSE(train_long.count(p)) << p;
  // Held-out nouns and templates do occur in the SFT corpus.
  Rng rng(4, 0);
  bool seen_in_sft = false;
  for (int i = 0; i < 500 && !seen_in_sft; ++i) seen_in_sft = held_out(split_words(t->pretraining_text(rng)));
  EXPECT_TRUE(seen_in_sft);
  int longp = 0, shifted = 0;
  for (const std::string& p : draw_prompts(*t, Split::ood, 2000, 9)) {
    const auto w = split_words(p);
    if (w.size() >= 10 && w.size() <= 14) {
      ++longp;
    } else {
      ASSERT_TRUE(w.size() >= 2 && w.size() <= 8 && held_out(w)) << p;
      ++shifted;
    }
  }
  EXPECT_GT(longp, 800);
  EXPECT_GT(shifted, 800);
}

// ---- Verify: SORT and ADD --------------------------------------------------------------------

TEST(VerifySort, HandComputedPassPartialFormat) {
  auto t = make_task("sort", 1);
  const std::string p = "sort 7 3 9 1 4 =";
  auto check = [&](const std::string& c, bool eos, double pass, double partial, double format) {
    const GoldDetails d = t->gold_details(p, c, eos);
    EXPECT_DOUBLE_EQ(t->gold(p, c, eos), pass) << c;
    EXPECT_DOUBLE_EQ(detail(d, "pass"), pass) << c;
    EXPECT_DOUBLE_EQ(detail(d, "partial"), partial) << c;
    EXPECT_DOUBLE_EQ(detail(d, "format"), format) << c;
  };
  check("1 3 4 7 9 .", true, 1, 1, 1);
  check("1 4 3 7 9 .", true, 0, 4.0 / 6, 1);    // one adjacent swap
  check("1 3 4 7 9", true, 0, 5.0 / 6, 0);      // no "."
  check("1 3 4 7 9 9 .", true, 0, 5.0 / 7, 0);  // an extra digit: not a permutation
  check("1 3 4 7 8 .", true, 0, 5.0 / 6, 0);
  check("1 3 4 .", true, 0, 3.0 / 6, 0);
  check("9 7 4 3 1 .", true, 0, 2.0 / 6, 1);
  check(".", true, 0, 0, 0);
  check("1 3 4 7 9 .", false, 0, 0, 0);         // no EOS: gated
  check("1 3 4 7 9 . 1", true, 0, 6.0 / 7, 0);
  EXPECT_DOUBLE_EQ(t->gold("sort 3 1 3 =", "1 3 3 .", true), 1);
  EXPECT_EQ(t->max_new_tokens(), 16);
  // Length gate: 14 digits answer in 15 words (+ EOS = 16) pass; 15 digits need 17 tokens.
  const std::string d14 = "0 0 0 0 0 0 0 0 0 0 0 0 0 0";
  EXPECT_DOUBLE_EQ(t->gold("sort " + d14 + " =", d14 + " .", true), 1);
  EXPECT_DOUBLE_EQ(t->gold("sort " + d14 + " 0 =", d14 + " 0 .", true), 0);
  expect_error<InputError>([&] { t->gold("sort 1 x =", "1 .", true); }, {"sort 1 x ="});
  expect_error<InputError>([&] { t->gold("sort 1 2", "1 2 .", true); }, {"malformed"});
}

TEST(VerifySort, DemonstrationsAreThreeQuartersCorrectAndSplitsBySize) {
  auto t = make_task("sort", 1);
  Rng rng(2, 0);
  int exact = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const Demonstration d = t->demonstration(rng);
    const GoldDetails g = t->gold_details(d.prompt, d.completion, true);
    exact += detail(g, "pass") == 1.0;
    EXPECT_EQ(detail(g, "format"), 1.0) << d.completion;  // a swap keeps the multiset
    const size_t digits = split_words(d.prompt).size() - 2;
    if (detail(g, "pass") == 0.0) {
      EXPECT_DOUBLE_EQ(detail(g, "partial"), (digits - 1.0) / (digits + 1.0)) << d.prompt << " | " << d.completion;
    }
  }
  EXPECT_NEAR(exact / double(n), 0.75, 0.03);
  std::set<std::string> train;
  for (const std::string& p : draw_prompts(*t, Split::train, 2000, 1)) {
    const size_t digits = split_words(p).size() - 2;
    EXPECT_TRUE(digits >= 3 && digits <= 7) << p;
    train.insert(p);
  }
  for (const std::string& p : draw_prompts(*t, Split::test, 2000, 1)) {
    const size_t digits = split_words(p).size() - 2;
    EXPECT_TRUE(digits >= 3 && digits <= 7) << p;
    EXPECT_FALSE(train.count(p)) << p;
  }
  std::set<size_t> ood_sizes;
  for (const std::string& p : draw_prompts(*t, Split::ood, 500, 1)) ood_sizes.insert(split_words(p).size() - 2);
  EXPECT_EQ(ood_sizes, (std::set<size_t>{8, 9, 10}));
}

TEST(VerifyAdd, ReversedSumsAndPartialCredit) {
  auto t = make_task("add", 1);
  EXPECT_DOUBLE_EQ(t->gold("4 7 + 1 2 3 =", "0 7 1 .", true), 1);   // 47 + 123 = 170
  EXPECT_DOUBLE_EQ(t->gold("9 9 9 9 + 9 9 9 9 =", "8 9 9 9 1 .", true), 1);  // 19998
  EXPECT_DOUBLE_EQ(t->gold("1 0 + 1 0 =", "0 2 .", true), 1);
  EXPECT_DOUBLE_EQ(t->gold("4 7 + 1 2 3 =", "1 7 0 .", true), 0);   // written forwards
  EXPECT_DOUBLE_EQ(t->gold("4 7 + 1 2 3 =", "0 7 1 .", false), 0);
  const GoldDetails d = t->gold_details("4 7 + 1 2 3 =", "0 7 2 .", true);
  EXPECT_DOUBLE_EQ(detail(d, "pass"), 0);
  EXPECT_DOUBLE_EQ(detail(d, "partial"), 3.0 / 4);
  EXPECT_DOUBLE_EQ(detail(d, "format"), 1);
  const GoldDetails e = t->gold_details("4 7 + 1 2 3 =", "0 7 .", true);
  EXPECT_DOUBLE_EQ(detail(e, "partial"), 2.0 / 4);
  EXPECT_DOUBLE_EQ(detail(e, "format"), 0);  // one digit short
  EXPECT_DOUBLE_EQ(detail(t->gold_details("4 7 + 1 2 3 =", "0 7 + .", true), "format"), 0);
  expect_error<InputError>([&] { t->gold("4 7 + =", "0 .", true); }, {"add: malformed"});
  expect_error<InputError>([&] { t->gold("sort 4 7 =", "0 .", true); }, {"add: malformed"});
}

TEST(VerifyAdd, OperandSizesAndCorruptedDemonstrations) {
  auto t = make_task("add", 1);
  auto operand_sizes = [](const std::string& p) {
    const auto w = split_words(p);
    const size_t plus = static_cast<size_t>(std::find(w.begin(), w.end(), "+") - w.begin());
    EXPECT_NE(w[0], "0");
    EXPECT_NE(w[plus + 1], "0");
    return std::pair<size_t, size_t>{plus, w.size() - plus - 2};
  };
  for (const std::string& p : draw_prompts(*t, Split::train, 1000, 3)) {
    const auto [a, b] = operand_sizes(p);
    EXPECT_TRUE(a >= 2 && a <= 4 && b >= 2 && b <= 4) << p;
  }
  for (const std::string& p : draw_prompts(*t, Split::ood, 1000, 3)) {
    const auto [a, b] = operand_sizes(p);
    EXPECT_EQ(std::max(a, b), 5u) << p;
    EXPECT_GE(std::min(a, b), 2u) << p;
  }
  Rng rng(8, 0);
  int exact = 0;
  for (int i = 0; i < 4000; ++i) {
    const Demonstration d = t->demonstration(rng);
    exact += t->gold(d.prompt, d.completion, true) == 1.0;
  }
  EXPECT_NEAR(exact / 4000.0, 0.75, 0.03);
}

// ---- Lists -----------------------------------------------------------------------------------

TEST(ListsTask, TableHasTwelveCategoriesOfEightDistinctMembers) {
  const auto& cats = list_categories();
  ASSERT_EQ(cats.size(), 12u);
  std::set<std::string> all;
  for (const ListCategory& c : cats) {
    EXPECT_EQ(c.members.size(), 8u) << c.name;
    all.insert(c.name);
    all.insert(c.members.begin(), c.members.end());
  }
  EXPECT_EQ(all.size(), 12u * 9u);
}

TEST(ListsTask, GoldFormula) {
  auto t = make_task("lists", 1);
  const std::string p = "name 3 fruits :";
  auto g = [&](const std::string& c, bool eos = true) { return t->gold(p, c, eos); };
  EXPECT_DOUBLE_EQ(g("apple , pear , mango ."), 1.0);
  EXPECT_DOUBLE_EQ(g("apple , pear ."), 2.0 / 3);
  EXPECT_DOUBLE_EQ(g("apple ."), 1.0 / 3);
  EXPECT_DOUBLE_EQ(g("."), 0.0);
  EXPECT_DOUBLE_EQ(g("apple , apple , pear ."), 2.0 / 3 - 0.5);        // duplicate
  EXPECT_DOUBLE_EQ(g("apple , red , pear ."), 2.0 / 3 - 0.5);          // wrong
  EXPECT_DOUBLE_EQ(g("apple , pear , mango , banana ."), 1 - 0.25);    // beyond k
  EXPECT_DOUBLE_EQ(g("apple , pear , mango , red ."), 1 - 0.5 - 0.25);
  EXPECT_DOUBLE_EQ(g("apple , apple , pear , mango ."), 2.0 / 3 - 0.5 - 0.25);  // mango is beyond k
  EXPECT_DOUBLE_EQ(g("apple , also pear , mango , and more ."), 1 - 0.2);
  EXPECT_DOUBLE_EQ(g("and more , apple ."), 1.0 / 3 - 0.1);
  const GoldDetails d = t->gold_details(p, "apple , also red , apple , mango , pear , and more .", true);
  EXPECT_DOUBLE_EQ(detail(d, "parses"), 1);
  EXPECT_DOUBLE_EQ(detail(d, "correct"), 1);  // apple (red wrong, apple duplicate)
  EXPECT_DOUBLE_EQ(detail(d, "wrong"), 2);
  EXPECT_DOUBLE_EQ(detail(d, "extra"), 2);
  EXPECT_DOUBLE_EQ(detail(d, "fillers"), 2);
  EXPECT_DOUBLE_EQ(t->gold(p, "apple , also red , apple , mango , pear , and more .", true),
                   1.0 / 3 - 0.5 * 2 - 0.25 * 2 - 0.1 * 2);
  // Unparsable, no EOS, too long: -1.
  for (const char* c : {"apple pear .", "apple , , pear .", "apple , pear", "apple , .", "name .",
                               "apple . pear .", "also .", "and apple .", "more , apple .", "apple , 3 ."}) {
    EXPECT_DOUBLE_EQ(g(c), -1.0) << c;
    EXPECT_DOUBLE_EQ(detail(t->gold_details(p, c, true), "parses"), 0) << c;
  }
  EXPECT_DOUBLE_EQ(g("apple , pear , mango .", false), -1.0);
  // 11 items + 10 commas + "." = 22 words fit; 12 items (24 words) do not.
  const std::string eleven = "apple , pear , mango , banana , cherry , grape , lemon , peach , red , blue , green";
  EXPECT_DOUBLE_EQ(g(eleven + " ."), 1 - 0.5 * 3 - 0.25 * 8);
  EXPECT_DOUBLE_EQ(g(eleven + " , black ."), -1.0);
  EXPECT_EQ(t->max_new_tokens(), 24);
  expect_error<InputError>([&] { t->gold("name 3 stars :", "apple .", true); }, {"name 3 stars :"});
  expect_error<InputError>([&] { t->gold("name fruits :", "apple .", true); }, {"malformed"});
}

TEST(ListsTask, LongerDemonstrationsScoreHigherWhileShortOfK) {
  auto t = make_task("lists", 1);
  std::set<std::string> members;
  for (const ListCategory& c : list_categories()) members.insert(c.members.begin(), c.members.end());
  Rng rng(6, 0);
  // Mean gold by (k, items); items - k is in {-2, ..., +2}, items >= 1.
  std::map<std::pair<int, int>, std::pair<double, int>> cell;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  int m = 0, fillers = 0;
  const int n = 8000;
  for (int i = 0; i < n; ++i) {
    const Demonstration d = t->demonstration(rng);
    const int k = split_words(d.prompt)[1][0] - '0';
    int items = 0;
    for (const std::string& w : split_words(d.completion)) items += members.count(w) > 0;
    ASSERT_GE(items, std::max(1, k - 2));
    ASSERT_LE(items, k + 2);
    const double g = t->gold(d.prompt, d.completion, true);
    const GoldDetails gd = t->gold_details(d.prompt, d.completion, true);
    ASSERT_EQ(detail(gd, "parses"), 1.0) << d.completion;  // every demonstration parses
    fillers += detail(gd, "fillers") > 0;
    auto& c = cell[{k, items}];
    c.first += g;
    c.second += 1;
    if (items <= k) {
      const double x = double(items) / k;
      sx += x, sy += g, sxx += x * x, syy += g * g, sxy += x * g, ++m;
    }
  }
  // Pooled over k, the fraction of k given correlates with gold (15% wrong items add noise).
  const double corr = (sxy / m - sx / m * sy / m) / std::sqrt((sxx / m - sx / m * sx / m) * (syy / m - sy / m * sy / m));
  EXPECT_GT(corr, 0.2);
  auto mean = [&](int k, int items) { return cell.at({k, items}).first / cell.at({k, items}).second; };
  for (int k = 2; k <= 5; ++k) {
    for (int items = std::max(1, k - 2); items < k; ++items) EXPECT_LT(mean(k, items), mean(k, items + 1)) << k << " " << items;
    EXPECT_GT(mean(k, k), mean(k, k + 1)) << k;  // padding past k costs
    EXPECT_GT(mean(k, k + 1), mean(k, k + 2)) << k;
  }
  EXPECT_GT(fillers, n / 20);  // occasional
  EXPECT_LT(fillers, n / 2);
}

TEST(ListsTask, SplitsHoldOutPromptsAndAskForSixOutOfDistribution) {
  auto t = make_task("lists", 1);
  std::set<std::string> train, test;
  for (const std::string& p : draw_prompts(*t, Split::train, 3000, 2)) train.insert(p);
  for (const std::string& p : draw_prompts(*t, Split::test, 1000, 2)) test.insert(p);
  EXPECT_EQ(train.size(), 40u);
  EXPECT_EQ(test.size(), 8u);
  std::set<std::string> test_ks;
  for (const std::string& p : test) {
    EXPECT_FALSE(train.count(p)) << p;
    test_ks.insert(split_words(p)[1]);
  }
  EXPECT_EQ(test_ks, (std::set<std::string>{"2", "3", "4", "5"}));
  for (const std::string& p : train) {
    const std::string k = split_words(p)[1];
    EXPECT_TRUE(k >= "2" && k <= "5") << p;
  }
  for (const std::string& p : draw_prompts(*t, Split::ood, 200, 2)) EXPECT_EQ(split_words(p)[1], "6") << p;
  Rng rng(1, 0);
  for (int i = 0; i < 500; ++i) EXPECT_NE(split_words(t->demonstration(rng).prompt)[1], "6");
}

}  // namespace
}  // namespace rlhf::testbed
