// Verify (docs/testbed.md §3.2): SORT and ADD, scored like code run against a test.
//
//   SORT  prompt "sort 7 3 9 1 4 ="      answer "1 3 4 7 9 ."   n in [3, 7] digits; ood [8, 10]
//   ADD   prompt "4 7 + 1 2 3 ="         answer "0 7 1 ."       170 in reversed digit order (Lee
//         et al.); operands of 2–4 digits, no leading zero; ood: one operand of 5 digits, the
//         other 2–5 (either side)
//
// Gold r* = "pass": the completion is exactly the answer followed by "." and ended with EOS
// within max_new_tokens() = 16 (words + EOS). Details, all 0 when that EOS/budget gate fails:
//   pass     exact match (= gold)
//   partial  the dense variant: over the expected words E (answer digits, then ".") and the
//            output words O, (#i with O[i] == E[i]) / max(|E|, |O|); so extra or missing words
//            cost, and partial == 1 exactly when pass == 1
//   format   the completion is a body then one final "."; SORT: the body is a permutation of
//            the prompt's digits; ADD: the body is digits only, as many as the answer has
// Demonstrations: 25% carry one adjacent swap of two different digits of the answer (an answer
// with no two different adjacent digits stays correct). Pretraining text is the same
// distribution written as one line. Prompts: train/test are split by is_test_prompt(); the world
// seed only moves that partition.
#include <algorithm>
#include <iterator>

#include "tensor/error.h"
#include "testbed/tasks_internal.h"

namespace rlhf::testbed {
namespace {

constexpr int kMaxNewTokens = 16;
constexpr double kCorruptRate = 0.25;

bool is_digit_word(const std::string& w) { return w.size() == 1 && w[0] >= '0' && w[0] <= '9'; }
std::string digit_word(int d) { return std::string(1, static_cast<char>('0' + d)); }

class VerifyTask : public Task {
 public:
  explicit VerifyTask(uint64_t world_seed) : world_seed_(world_seed) {}

  int max_new_tokens() const override { return kMaxNewTokens; }

  std::string prompt(Rng& rng, Split split) const override {
    for (;;) {
      const std::string p = join_words(sample_prompt(rng, split == Split::ood));
      if (split == Split::ood || is_test_prompt(p, world_seed_) == (split == Split::test)) return p;
    }
  }

  Demonstration demonstration(Rng& rng) const override {
    const std::vector<std::string> p = sample_prompt(rng, /*ood=*/false);
    std::vector<std::string> answer = solve(p);
    if (rng.uniform() < kCorruptRate) {
      std::vector<size_t> swappable;
      for (size_t i = 0; i + 1 < answer.size(); ++i)
        if (answer[i] != answer[i + 1]) swappable.push_back(i);
      if (!swappable.empty()) {
        const size_t i = swappable[rng.below(swappable.size())];
        std::swap(answer[i], answer[i + 1]);
      }
    }
    answer.push_back(".");
    return {join_words(p), join_words(answer)};
  }

  std::string pretraining_text(Rng& rng) const override {
    const Demonstration d = demonstration(rng);
    return d.prompt + " " + d.completion;
  }

  double gold(const std::string& prompt, const std::string& completion, bool eos) const override {
    return gold_details(prompt, completion, eos)[0].second;
  }

  GoldDetails gold_details(const std::string& prompt, const std::string& completion, bool eos) const override {
    const std::vector<std::string> p = split_words(prompt);
    std::vector<std::string> expected = solve(p);
    expected.push_back(".");
    const std::vector<std::string> out = split_words(completion);
    double pass = 0, partial = 0, format = 0;
    if (within_budget(out.size(), eos, kMaxNewTokens)) {
      pass = out == expected ? 1.0 : 0.0;
      size_t same = 0;
      for (size_t i = 0; i < std::min(out.size(), expected.size()); ++i) same += out[i] == expected[i];
      partial = static_cast<double>(same) / static_cast<double>(std::max(out.size(), expected.size()));
      if (!out.empty() && out.back() == ".") {
        const std::vector<std::string> body(out.begin(), out.end() - 1);
        format = well_formed(p, body, expected.size() - 1) ? 1.0 : 0.0;
      }
    }
    return {{"pass", pass}, {"partial", partial}, {"format", format}};
  }

 protected:
  // Prompt words of a fresh problem (in-distribution or ood sizes).
  virtual std::vector<std::string> sample_prompt(Rng& rng, bool ood) const = 0;
  // The answer's words without the final "."; InputError when the prompt is not one of ours.
  virtual std::vector<std::string> solve(const std::vector<std::string>& prompt) const = 0;
  virtual bool well_formed(const std::vector<std::string>& prompt, const std::vector<std::string>& body,
                           size_t answer_words) const = 0;

  uint64_t world_seed_;
};

class SortTask final : public VerifyTask {
 public:
  using VerifyTask::VerifyTask;
  std::string name() const override { return "sort"; }
  std::vector<std::string> words() const override {
    std::vector<std::string> w = {"sort"};
    for (int d = 0; d < 10; ++d) w.push_back(digit_word(d));
    w.push_back("=");
    w.push_back(".");
    return w;
  }

 protected:
  std::vector<std::string> sample_prompt(Rng& rng, bool ood) const override {
    const int n = ood ? uniform_int(rng, 8, 10) : uniform_int(rng, 3, 7);
    std::vector<std::string> p = {"sort"};
    for (int i = 0; i < n; ++i) p.push_back(digit_word(static_cast<int>(rng.below(10))));
    p.push_back("=");
    return p;
  }

  std::vector<std::string> digits(const std::vector<std::string>& p) const {
    const bool ok = p.size() >= 3 && p.front() == "sort" && p.back() == "=" &&
                    std::all_of(p.begin() + 1, p.end() - 1, is_digit_word);
    if (!ok) throw InputError("sort: malformed prompt '" + join_words(p) + "' (expected 'sort D D ... =')");
    return {p.begin() + 1, p.end() - 1};
  }

  std::vector<std::string> solve(const std::vector<std::string>& p) const override {
    std::vector<std::string> d = digits(p);
    std::sort(d.begin(), d.end());
    return d;
  }

  bool well_formed(const std::vector<std::string>& p, const std::vector<std::string>& body, size_t) const override {
    std::vector<std::string> in = digits(p), out = body;
    std::sort(in.begin(), in.end());
    std::sort(out.begin(), out.end());
    return in == out;
  }
};

class AddTask final : public VerifyTask {
 public:
  using VerifyTask::VerifyTask;
  std::string name() const override { return "add"; }
  std::vector<std::string> words() const override {
    std::vector<std::string> w;
    for (int d = 0; d < 10; ++d) w.push_back(digit_word(d));
    w.push_back("+");
    w.push_back("=");
    w.push_back(".");
    return w;
  }

 protected:
  static void append_number(Rng& rng, int n_digits, std::vector<std::string>& out) {
    out.push_back(digit_word(uniform_int(rng, 1, 9)));
    for (int i = 1; i < n_digits; ++i) out.push_back(digit_word(static_cast<int>(rng.below(10))));
  }

  std::vector<std::string> sample_prompt(Rng& rng, bool ood) const override {
    int la = uniform_int(rng, 2, 4), lb = uniform_int(rng, 2, 4);
    if (ood) {
      la = 5;
      lb = uniform_int(rng, 2, 5);
      if (rng.below(2)) std::swap(la, lb);
    }
    std::vector<std::string> p;
    append_number(rng, la, p);
    p.push_back("+");
    append_number(rng, lb, p);
    p.push_back("=");
    return p;
  }

  std::vector<std::string> solve(const std::vector<std::string>& p) const override {
    const auto plus = std::find(p.begin(), p.end(), "+");
    const bool ok = p.size() >= 4 && p.back() == "=" && plus != p.end() && plus != p.begin() &&
                    p.end() - plus >= 3 &&  // '+', a digit, '='
                    std::all_of(p.begin(), plus, is_digit_word) &&
                    std::all_of(plus + 1, p.end() - 1, is_digit_word);
    if (!ok) throw InputError("add: malformed prompt '" + join_words(p) + "' (expected 'D ... + D ... =')");
    // Column addition from the least significant digit, which is also the answer's order.
    std::vector<std::string> answer;
    auto a = std::make_reverse_iterator(plus), a_end = p.rend();
    auto b = std::make_reverse_iterator(p.end() - 1), b_end = std::make_reverse_iterator(plus + 1);
    int carry = 0;
    while (a != a_end || b != b_end || carry) {
      int s = carry;
      if (a != a_end) s += (*a++)[0] - '0';
      if (b != b_end) s += (*b++)[0] - '0';
      answer.push_back(digit_word(s % 10));
      carry = s / 10;
    }
    return answer;
  }

  bool well_formed(const std::vector<std::string>&, const std::vector<std::string>& body,
                   size_t answer_words) const override {
    return body.size() == answer_words && std::all_of(body.begin(), body.end(), is_digit_word);
  }
};

}  // namespace

std::unique_ptr<Task> make_sort_task(uint64_t world_seed) { return std::make_unique<SortTask>(world_seed); }
std::unique_ptr<Task> make_add_task(uint64_t world_seed) { return std::make_unique<AddTask>(world_seed); }

}  // namespace rlhf::testbed
