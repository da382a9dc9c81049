// PCRE2 behind the general Split regexes of tokenizer.json (regex.h): the Oniguruma -> PCRE2
// rewrite, compiling with JIT where available, matching under limits, and tokenizers' find_iter.
#include "text/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>
#include <vector>

#include "tensor/error.h"
#include "text/unicode.h"

namespace rlhf::tok {
namespace {

// Limits per pcre2_match call. A regex that backtracks catastrophically reaches the match limit
// within milliseconds; the hand-checked tokenizer regexes need a few hundred steps per match (a
// run of whitespace costs about two steps per character, so a megabyte-long run still fits).
constexpr uint32_t kMatchLimit = 20'000'000;
constexpr uint32_t kHeapLimitKiB = 64 * 1024;  // the interpreter's backtracking frames
constexpr size_t kJitStackMax = 4 << 20;       // beyond it the interpreter takes over
constexpr size_t kMaxPatternBytes = 64 * 1024;

std::string hex_cp(char32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(c));
  return buf;
}

// Oniguruma's \s: the White_Space code points, as unicode::is_whitespace defines them (the same
// predicate the hand-written GPT-2 / Llama-3 matchers use), as class items "\x{9}-\x{D}...".
// Oniguruma's \w for UTF-8, as tokenizers 0.23 matches it on every code point (the class test of
// split_regex.jsonl): letters, marks, decimal and letter numbers, connector punctuation, the
// Latin-1 numbers ² ³ ¹ ¼ ½ ¾ (but no other No), and the circled / squared Latin letters (So
// with Other_Alphabetic). Not the join controls that the Rust regex crate's \w adds.
bool onig_word(char32_t c) {
  if (unicode::is_letter(c) || unicode::is_mark(c)) return true;
  const unicode::Category k = unicode::category(c);
  if (k == unicode::Category::Nd || k == unicode::Category::Nl || k == unicode::Category::Pc) return true;
  return c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE) || (c >= 0x24B6 && c <= 0x24E9) ||
         (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
}

// Inside a character class Oniguruma's \w leaves the Latin-1 numbers out ([\w] does not match ½).
bool onig_word_in_class(char32_t c) { return onig_word(c) && !(c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE)); }

// Class items ("\x{41}-\x{5A}...") of the code points a predicate accepts.
std::string class_items_of(bool (*pred)(char32_t)) {
  std::string s;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (!pred(c)) continue;
    char32_t e = c;
    while (e + 1 <= 0x10FFFF && pred(e + 1)) ++e;
    s += hex_cp(c);
    if (e > c) s += "-" + hex_cp(e);
    c = e;
  }
  return s;
}
const std::string& word_items(bool in_class = false) {
  static const std::string items = class_items_of(onig_word), class_items = class_items_of(onig_word_in_class);
  return in_class ? class_items : items;
}
// Oniguruma's \s: the White_Space code points, as unicode::is_whitespace defines them (the same
// predicate the hand-written GPT-2 / Llama-3 matchers use).
bool onig_space(char32_t c) { return unicode::is_whitespace(c); }
const std::string& whitespace_items() {
  static const std::string items = class_items_of(onig_space);
  return items;
}
constexpr std::string_view kHexItems = "0-9A-Fa-f";

std::string word_boundary(bool negated) {
  const std::string w = "[" + word_items() + "]";
  return negated ? "(?:(?<=" + w + ")(?=" + w + ")|(?<!" + w + ")(?!" + w + "))"
                 : "(?:(?<=" + w + ")(?!" + w + ")|(?<!" + w + ")(?=" + w + "))";
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
size_t utf8_seq_len(unsigned char c) { return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1; }

class Translator {
 public:
  Translator(std::string_view p, const std::string& where) : p_(p), where_(where) {}

  std::string run() {
    while (i_ < p_.size()) step();
    return out_;
  }

 private:
  [[noreturn]] void refuse(const std::string& what) const {
    throw InputError(where_ + ": '" + std::string(p_) + "': " + what + " (at offset " + std::to_string(i_) +
                     ") is not supported");
  }
  static constexpr size_t kNone = static_cast<size_t>(-1);

  void step() {
    const char c = p_[i_];
    switch (c) {
      case '\\': {
        const size_t start = out_.size();
        escape(false);
        atom_ = start;
        return;
      }
      case '[': {
        const size_t start = out_.size();
        char_class();
        atom_ = start;
        return;
      }
      case '(': open_group(); return;
      case ')':
        out_ += ')';
        ++i_;
        if (groups_.empty()) {
          atom_ = kNone;  // unbalanced: PCRE2 reports it
        } else {
          atom_ = groups_.back();
          groups_.pop_back();
        }
        return;
      case '|':
        out_ += '|';
        ++i_;
        atom_ = kNone;
        return;
      case '*': case '+': case '?':
        out_ += c;
        ++i_;
        if (i_ < p_.size() && (p_[i_] == '?' || p_[i_] == '+')) out_ += p_[i_++];  // lazy / possessive
        return;
      case '{':
        interval();
        return;
      default: {
        const size_t start = out_.size();
        const size_t n = std::min(utf8_seq_len(static_cast<unsigned char>(c)), p_.size() - i_);
        out_.append(p_, i_, n);
        i_ += n;
        atom_ = (c == '^' || c == '$') ? kNone : start;
      }
    }
  }

  // {n} {n,} {n,m} {,m}; anything else is a literal brace (as in both engines).
  void interval() {
    size_t j = i_ + 1;
    std::string lo, hi;
    bool comma = false;
    while (j < p_.size() && is_digit(p_[j])) lo += p_[j++];
    if (j < p_.size() && p_[j] == ',') {
      comma = true;
      ++j;
      while (j < p_.size() && is_digit(p_[j])) hi += p_[j++];
    }
    const bool valid = j < p_.size() && p_[j] == '}' && (!lo.empty() || (comma && !hi.empty()));
    if (!valid || atom_ == kNone) {
      out_ += "\\{";
      ++i_;
      atom_ = out_.size() - 2;
      return;
    }
    out_ += "{" + (lo.empty() ? std::string("0") : lo) + (comma ? "," + hi : "") + "}";
    i_ = j + 1;
    if (i_ < p_.size() && p_[i_] == '?') {
      out_ += '?';  // lazy in both engines
      ++i_;
    } else if (i_ < p_.size() && p_[i_] == '+') {
      // Oniguruma (Ruby syntax): X{n,m}+ is (?:X{n,m})+, not possessive as in PCRE2.
      out_.insert(atom_, "(?:");
      out_ += ")";
    }
  }

  void open_group() {
    const size_t start = out_.size();
    groups_.push_back(start);
    atom_ = kNone;
    if (i_ + 1 < p_.size() && p_[i_ + 1] == '*') refuse("a (*VERB)");
    if (i_ + 1 >= p_.size() || p_[i_ + 1] != '?') {
      out_ += '(';
      ++i_;
      return;
    }
    const char k = i_ + 2 < p_.size() ? p_[i_ + 2] : '\0';
    if (k == '#') {  // comment: dropped
      groups_.pop_back();
      const size_t close = p_.find(')', i_);
      if (close == std::string_view::npos) refuse("an unterminated comment");
      i_ = close + 1;
      return;
    }
    if (k == ':' || k == '=' || k == '!' || k == '>') {
      out_.append(p_, i_, 3);
      i_ += 3;
      return;
    }
    if (k == '<') {  // lookbehind or named group (?<name>
      out_.append(p_, i_, 3);
      i_ += 3;
      return;
    }
    if (k == '\'') {  // (?'name'...)
      out_.append(p_, i_, 3);
      i_ += 3;
      return;
    }
    // Option letters (?imx-imx) or (?imx-imx:...). Oniguruma's (Ruby's) m is PCRE2's s.
    size_t j = i_ + 2;
    std::string opts;
    while (j < p_.size() && p_[j] != ':' && p_[j] != ')') {
      const char o = p_[j];
      if (o == 'i' || o == 'x' || o == '-') opts += o;
      else if (o == 'm') opts += 's';
      else {
        i_ = j;
        refuse(std::string("the group option '") + o + "'");
      }
      ++j;
    }
    if (j >= p_.size()) refuse("an unterminated group");
    out_ += "(?" + opts + p_[j];
    if (p_[j] == ')') groups_.pop_back();  // an inline option is not a group
    i_ = j + 1;
  }

  // An escape at p_[i_] == '\\', outside or inside a character class.
  void escape(bool in_class) {
    if (i_ + 1 >= p_.size()) refuse("a trailing backslash");
    const char e = p_[i_ + 1];
    auto inside_only_positive = [&](const char* name) {
      if (in_class) refuse(std::string("\\") + name + " inside a character class");
    };
    switch (e) {
      case 's':
        out_ += in_class ? whitespace_items() : "[" + whitespace_items() + "]";
        i_ += 2;
        return;
      case 'S':
        inside_only_positive("S");
        out_ += "[^" + whitespace_items() + "]";
        i_ += 2;
        return;
      case 'w':
        out_ += in_class ? word_items(true) : "[" + word_items() + "]";
        i_ += 2;
        return;
      case 'W':
        inside_only_positive("W");
        out_ += "[^" + word_items() + "]";
        i_ += 2;
        return;
      case 'h':
        out_ += in_class ? std::string(kHexItems) : "[" + std::string(kHexItems) + "]";
        i_ += 2;
        return;
      case 'H':
        inside_only_positive("H");
        out_ += "[^" + std::string(kHexItems) + "]";
        i_ += 2;
        return;
      case 'v':
        out_ += "\\x{B}";
        i_ += 2;
        return;
      case 'b':
        out_ += in_class ? "\\x{8}" : word_boundary(false);
        i_ += 2;
        return;
      case 'B':
        inside_only_positive("B");
        out_ += word_boundary(true);
        i_ += 2;
        return;
      case 'u': {
        if (i_ + 6 > p_.size() || !is_hex(p_[i_ + 2]) || !is_hex(p_[i_ + 3]) || !is_hex(p_[i_ + 4]) ||
            !is_hex(p_[i_ + 5]))
          refuse("\\u without four hexadecimal digits");
        out_ += "\\x{" + std::string(p_.substr(i_ + 2, 4)) + "}";
        i_ += 6;
        return;
      }
      case 'K': case 'G': case 'y': case 'Y': case 'O':
        refuse(std::string("\\") + e);
      case 'p': case 'P':
        if (property(e)) return;
        [[fallthrough]];
      case 'x': case 'o': case 'k': case 'g': {
        // \p{..} \x{..} \o{..} \k<..> \g<..>: copied with their argument.
        const char open = i_ + 2 < p_.size() ? p_[i_ + 2] : '\0';
        const char close = open == '{' ? '}' : open == '<' ? '>' : open == '\'' ? '\'' : '\0';
        if (close) {
          const size_t end = p_.find(close, i_ + 3);
          if (end == std::string_view::npos) refuse(std::string("an unterminated \\") + e);
          out_.append(p_, i_, end + 1 - i_);
          i_ = end + 1;
        } else {
          out_.append(p_, i_, 2);
          i_ += 2;
        }
        return;
      }
      case 'c':
        out_.append(p_, i_, std::min<size_t>(3, p_.size() - i_));
        i_ += 3;
        return;
      default: {
        const size_t n = 1 + std::min(utf8_seq_len(static_cast<unsigned char>(e)), p_.size() - i_ - 1);
        out_.append(p_, i_, n);
        i_ += n;
      }
    }
  }

  // \p{Name} / \P{Name} / \p{^Name}. A script name means the Script property in Oniguruma but
  // Script_Extensions in PCRE2 (10.40 on: \p{Han} there takes 。, whose Script is Common); PCRE2
  // spells Script alone \p{sc:Name}. Categories and other properties are passed through.
  // Returns false for a form without braces (copied as it is by the caller).
  bool property(char e) {
    if (i_ + 2 >= p_.size() || p_[i_ + 2] != '{') return false;
    const size_t close = p_.find('}', i_ + 3);
    if (close == std::string_view::npos) refuse(std::string("an unterminated \\") + e);
    std::string name(p_.substr(i_ + 3, close - i_ - 3));
    std::string neg;
    if (!name.empty() && name[0] == '^') {
      neg = "^";
      name.erase(0, 1);
    }
    static const char* const kCategories[] = {"L", "Lu", "Ll", "Lt", "Lm", "Lo", "L&", "LC", "M", "Mn", "Mc", "Me",
                                              "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po",
                                              "S", "Sm", "Sc", "Sk", "So", "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf",
                                              "Cs", "Co", "Cn", "Any"};
    bool category = false;
    for (const char* c : kCategories) category = category || name == c;
    const std::string script = "\\p{sc:" + name + "}";
    if (!category && !name.empty() && compiles(script)) name = "sc:" + name;
    out_ += std::string("\\") + e + "{" + neg + name + "}";
    i_ = close + 1;
    return true;
  }
  static bool compiles(const std::string& pattern) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!code) return false;
    pcre2_code_free(code);
    return true;
  }

  void char_class() {
    out_ += '[';
    ++i_;
    if (i_ < p_.size() && p_[i_] == '^') {
      out_ += '^';
      ++i_;
    }
    class_items();
    out_ += ']';
  }

  // The items of a class up to and including its closing ']'. A class nested in a class is a
  // union in Oniguruma (BLOOM's " ?[^(\s|[.,!?…])]+"): its items are inlined; a negated nested
  // class has no such flat form and is refused.
  void class_items() {
    if (i_ < p_.size() && p_[i_] == ']') {  // a leading ] is a literal in both engines
      out_ += "\\]";
      ++i_;
    }
    while (i_ < p_.size()) {
      const char c = p_[i_];
      if (c == ']') {
        ++i_;
        return;
      }
      if (c == '[') {
        if (p_.compare(i_, 2, "[:") == 0) refuse("a POSIX bracket class");
        if (p_.compare(i_, 2, "[^") == 0) refuse("a negated class nested in a class");
        ++i_;
        class_items();
        continue;
      }
      if (c == '&' && i_ + 1 < p_.size() && p_[i_ + 1] == '&') refuse("character class intersection &&");
      if (c == '\\') {
        escape(true);
        continue;
      }
      const size_t n = std::min(utf8_seq_len(static_cast<unsigned char>(c)), p_.size() - i_);
      out_.append(p_, i_, n);
      i_ += n;
    }
    refuse("an unterminated character class");
  }

  std::string_view p_;
  const std::string& where_;
  size_t i_ = 0;
  std::string out_;
  size_t atom_ = kNone;         // where the last quantifiable item starts in out_
  std::vector<size_t> groups_;  // where each open group starts in out_
};

// Per-thread matching state: match data, the limits, and a JIT stack (not shareable).
struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* js = nullptr;
  MatchState() {
    md = pcre2_match_data_create(1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(mc, kMatchLimit);
    pcre2_set_heap_limit(mc, kHeapLimitKiB);
    js = pcre2_jit_stack_create(32 * 1024, kJitStackMax, nullptr);
    if (js) pcre2_jit_stack_assign(mc, nullptr, js);
    if (!md || !mc) throw std::bad_alloc();
  }
  ~MatchState() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    if (js) pcre2_jit_stack_free(js);
  }
};

MatchState& match_state() {
  thread_local MatchState s;
  return s;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

std::string SplitRegex::translate(std::string_view pattern, const std::string& where) {
  if (pattern.size() > kMaxPatternBytes)
    throw InputError(where + ": the regex is " + std::to_string(pattern.size()) + " bytes long, more than the " +
                     std::to_string(kMaxPatternBytes) + " accepted");
  return Translator(pattern, where).run();
}

std::shared_ptr<const SplitRegex> SplitRegex::compile(std::string_view pattern, const std::string& where) {
  std::shared_ptr<SplitRegex> re(new SplitRegex());
  re->pattern_ = std::string(pattern);
  re->where_ = where;
  re->pcre_ = translate(pattern, where);

  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  if (!cc) throw std::bad_alloc();
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);  // Oniguruma: only \n ends a line (. and $)
  pcre2_set_bsr(cc, PCRE2_BSR_UNICODE);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re->pcre_.data()), re->pcre_.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C, &err,
                                   &err_off, cc);
  pcre2_compile_context_free(cc);
  if (!code)
    throw InputError(where + ": the regex '" + re->pattern_ + "' does not compile (PCRE2, as '" + re->pcre_ +
                     "'): " + pcre2_message(err) + " at offset " + std::to_string(err_off));
  re->code_ = code;
  re->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;

  // Probe: texts that make nested quantifiers backtrack exponentially ((a+)+b on "aaa…!").
  // A regex that reaches the match limit on one of them is refused now, not at encode time.
  static const char* const kRuns[] = {"a", "A", "1", " ", "\n", "'", "_", ".", "\xC3\xA9", "\xE4\xB8\xAD"};
  static const char* const kTails[] = {"", "!", "\x01", " ", "a"};
  for (const char* r : kRuns) {
    for (const char* t : kTails) {
      std::string probe;
      for (int k = 0; k < 40; ++k) probe += r;
      probe += t;
      OnigMatches it(*re, probe);
      size_t b, e;
      while (it.next(&b, &e)) {
      }
    }
  }
  return re;
}

SplitRegex::~SplitRegex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

bool SplitRegex::find(std::string_view text, size_t from, size_t* begin, size_t* end) const {
  MatchState& st = match_state();
  auto* code = static_cast<pcre2_code*>(code_);
  // The pipeline hands over valid UTF-8 only (tokenizer.h), so PCRE2 need not re-check the whole
  // subject on every call (that would make splitting quadratic).
  int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), from, PCRE2_NO_UTF_CHECK,
                       st.md, st.mc);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // deep recursion for JIT: the interpreter uses the heap
    rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), from,
                     PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, st.md, st.mc);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT)
    throw InputError(where_ + ": the regex '" + pattern_ + "' exceeded its matching limit (" + pcre2_message(rc) +
                     ") on a " + std::to_string(text.size() - from) +
                     "-byte text: it backtracks catastrophically and is refused");
  if (rc < 0) throw InputError(where_ + ": matching the regex '" + pattern_ + "' failed: " + pcre2_message(rc));
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
  if (ov[1] < ov[0])  // \K in a lookahead can do this; \K is refused, so this is a safety net
    throw InputError(where_ + ": the regex '" + pattern_ + "' produced a match that ends before it starts");
  *begin = ov[0];
  *end = ov[1];
  return true;
}

bool OnigMatches::next(size_t* begin, size_t* end) {
  for (;;) {
    if (last_end_ > text_.size()) return false;
    size_t b, e;
    if (!re_.find(text_, last_end_, &b, &e)) return false;
    if (b == e && e == last_match_end_) {
      // An empty match where the previous one ended: move one character on and search again.
      last_end_ += last_end_ < text_.size() ? utf8_seq_len(static_cast<unsigned char>(text_[last_end_])) : 1;
      continue;
    }
    last_end_ = e;
    last_match_end_ = e;
    *begin = b;
    *end = e;
    return true;
  }
}

}  // namespace rlhf::tok
