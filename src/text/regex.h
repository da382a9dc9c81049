// General Split pre-tokenizer regexes of tokenizer.json, run with PCRE2 so that they behave as
// Hugging Face `tokenizers` runs them with Oniguruma (Ruby syntax, UTF-8). The GPT-2 / Llama-3 /
// Qwen2 regexes keep their hand-written matchers (unicode.h); every other regex comes here.
//
// Oniguruma and PCRE2 read the same pattern differently in a few places; the pattern is rewritten
// before compiling so that the result follows Oniguruma (each rule checked against tokenizers
// 0.23: TokenizerRegex.* in tests/text/test_tokenizer.cpp, tests/fixtures/text/split_regex.jsonl):
//   \s \S     Oniguruma: the White_Space property (U+180E is not one); PCRE2's \s adds U+180E
//   \w \W \b  Oniguruma: L, M, Nd, Nl, Pc, circled letters, and ²³¹¼½¾ outside a class only;
//             PCRE2 10.42: L, N and _
//   \h \H     Oniguruma: a hexadecimal digit; PCRE2: horizontal whitespace
//   \v        Oniguruma: the character U+000B; PCRE2: any vertical whitespace
//   \uHHHH    Oniguruma only; becomes \x{HHHH}
//   X{n,m}+   Oniguruma: X{n,m} repeated (+ after an interval is not possessive); PCRE2: possessive
//   {,n}      Oniguruma: {0,n}; PCRE2 10.42: literal text
//   \p{Han}   Oniguruma: the Script property; PCRE2: Script_Extensions (。 is Han there); \p{sc:Han}
//   (?m)      Oniguruma (Ruby): dot matches newline, PCRE2's (?s); ^ and $ always match at line
//             breaks, PCRE2_MULTILINE
// A class nested in a class is a union in Oniguruma and is inlined.
// Refused with an InputError (Oniguruma means something PCRE2 cannot say, or it is too rare to
// verify): class intersection && and negated nested classes, POSIX brackets [:alpha:], \S \W \H inside a
// class, \K \G \y \Y \O, (*VERB), option letters other than i, m, x. Case-insensitive matching
// uses simple case folding in both engines for these patterns ((?i:'s) matches 'ſ in both); a
// pattern letter sequence that Oniguruma folds to one character (ß for ss) is the one known gap.
//
// Untrusted patterns: each match runs under a match limit and a heap limit, and a regex is probed
// at load on short adversarial texts, so catastrophic backtracking is an InputError naming the
// tokenizer.json field, never a hang.
//
// Example:
//   auto re = SplitRegex::compile(R"(\p{N}{1,3}| ?\p{L}+)", "tokenizer.json: pre_tokenizer.pattern.Regex");
//   OnigMatches it(*re, "abc 12345");  // next(): (0,3) (4,7) (7,9), as tokenizers' find_iter
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace rlhf::tok {

class SplitRegex {
 public:
  // `where` prefixes every error: "<source>: <JSON path of the Regex string>".
  static std::shared_ptr<const SplitRegex> compile(std::string_view pattern, const std::string& where);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Leftmost match in text (valid UTF-8) starting the search at byte `from`; the whole text stays
  // visible to lookbehind and anchors. False when there is none. InputError (naming the field)
  // when the match or heap limit is reached.
  bool find(std::string_view text, size_t from, size_t* begin, size_t* end) const;

  const std::string& pattern() const { return pattern_; }      // as in tokenizer.json
  const std::string& translated() const { return pcre_; }      // what PCRE2 compiled

  // Oniguruma -> PCRE2 rewrite (above); InputError "<where>: ..." for what is refused.
  static std::string translate(std::string_view pattern, const std::string& where);

 private:
  SplitRegex() = default;
  std::string pattern_, pcre_, where_;
  void* code_ = nullptr;  // pcre2_code_8
  bool jit_ = false;
};

// The matches of a regex in the order tokenizers' Regex::find_iter (the onig crate) yields them:
// after each match the search resumes at its end; an empty match right where the previous match
// ended is skipped by moving one character on. Empty matches are yielded (they split the text).
class OnigMatches {
 public:
  OnigMatches(const SplitRegex& re, std::string_view text) : re_(re), text_(text) {}
  bool next(size_t* begin, size_t* end);

 private:
  const SplitRegex& re_;
  std::string_view text_;
  size_t last_end_ = 0;
  size_t last_match_end_ = static_cast<size_t>(-1);
};

}  // namespace rlhf::tok
