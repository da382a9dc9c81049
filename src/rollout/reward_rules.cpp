// The programmatic rewards: exact, regex, format, eos, length (syntax and semantics in reward.h).
//
// Patterns run on glibc's POSIX regex engine rather than std::regex: libstdc++'s std::regex
// recurses once per character and overflows the stack on completions of ~100k characters.
#include <regex.h>

#include <cmath>
#include <cstdlib>

#include "rollout/reward_sources.h"
#include "tensor/error.h"
#include "text/tokenizer_internal.h"
#include "text/unicode.h"

namespace rlhf::rollout {

// ---- text helpers -----------------------------------------------------------------------------

std::string strip_unicode(std::string_view s) {
  size_t b = 0, e = s.size();
  char32_t c;
  while (b < e) {
    const size_t n = unicode::decode_utf8_char(s, b, &c);
    if (!unicode::is_whitespace(c)) break;
    b += n;
  }
  // Walk back to the start of the last character: continuation bytes are 10xxxxxx.
  while (e > b) {
    size_t k = e - 1;
    while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    unicode::decode_utf8_char(s, k, &c);
    if (!unicode::is_whitespace(c)) break;
    e = k;
  }
  return std::string(s.substr(b, e - b));
}

std::string lower_unicode(std::string_view s) {
  std::string out;
  for (char32_t c : unicode::decode_utf8(s)) tok::append_lowercase(out, c);
  return out;
}

std::optional<double> last_number(std::string_view s) {
  auto digit = [&](size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; };
  std::optional<double> last;
  size_t i = 0;
  while (i < s.size()) {
    const bool starts = digit(i) || (s[i] == '.' && digit(i + 1));
    if (!starts || (i > 0 && digit(i - 1))) {
      ++i;
      continue;
    }
    std::string num;
    // A sign right before the number, unless it follows a digit ("5-3" is an operator).
    const bool minus_ascii = i >= 1 && s[i - 1] == '-' && !(i >= 2 && digit(i - 2));
    const bool minus_unicode = i >= 3 && s.substr(i - 3, 3) == "\u2212";
    if (minus_ascii || minus_unicode) num = "-";
    size_t j = i;
    while (digit(j)) {
      num += s[j++];
      // Thousands separators: a comma followed by exactly three digits.
      if (j < s.size() && s[j] == ',' && digit(j + 1) && digit(j + 2) && digit(j + 3) && !digit(j + 4)) ++j;
    }
    if (j < s.size() && s[j] == '.' && digit(j + 1)) {
      num += s[j++];
      while (digit(j)) num += s[j++];
    }
    last = std::strtod(num.c_str(), nullptr);
    i = j;
  }
  return last;
}

namespace {

// Perl-style pattern -> POSIX extended (glibc) pattern (see reward.h for what is accepted).
std::string posix_pattern(const std::string& p, SpecOptions& opt) {
  std::string out;
  bool in_bracket = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (in_bracket) {
      if (c == ']') {
        in_bracket = false;
        out += c;
      } else if (c == '[' && i + 1 < p.size() && (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '=')) {
        const size_t close = p.find(std::string(1, p[i + 1]) + "]", i + 2);
        if (close == std::string::npos) opt.fail("unterminated [" + std::string(1, p[i + 1]) + " in the pattern");
        out += p.substr(i, close + 2 - i);
        i = close + 1;
      } else if (c == '\\' && i + 1 < p.size()) {
        const char d = p[++i];
        if (d == 'd') out += "0-9";
        else if (d == 's') out += "[:space:]";
        else if (d == 'w') out += "[:alnum:]_";
        else if (d == 'n') out += '\n';
        else if (d == 't') out += '\t';
        else if (d == ']' || d == '-' || d == '^')
          opt.fail(std::string("\\") + d + " inside [...]: POSIX brackets take ] first, - last and ^ not first");
        else out += d;  // backslash is literal inside POSIX brackets: \. means '.'
      } else {
        out += c;
      }
      continue;
    }
    if (c == '\\' && i + 1 < p.size()) {
      const char d = p[++i];
      if (d == 'd') out += "[0-9]";
      else if (d == 'D') out += "[^0-9]";
      else if (d == 'n') out += '\n';
      else if (d == 't') out += '\t';
      else out += std::string("\\") + d;
    } else if (c == '[') {
      in_bracket = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];  // a leading ']' is literal
    } else if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
      if (i + 2 >= p.size() || p[i + 2] != ':') opt.fail("(?...) groups other than (?: are not supported");
      out += '(';
      i += 2;
    } else if ((c == '*' || c == '+' || c == '?' || c == '}') && i + 1 < p.size() && p[i + 1] == '?') {
      out += c;  // lazy quantifier: same match / no match as the greedy one
      ++i;
    } else {
      out += c;
    }
  }
  return out;
}

class Pattern {
 public:
  Pattern(const std::string& perl, SpecOptions& opt) {
    const int rc = regcomp(&re_, posix_pattern(perl, opt).c_str(), REG_EXTENDED);
    if (rc != 0) {
      char buf[256];
      regerror(rc, &re_, buf, sizeof buf);
      opt.fail("bad pattern: " + std::string(buf));
    }
  }
  ~Pattern() { regfree(&re_); }
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // Whether the pattern occurs in `s` (whole: it matches all of `s`). POSIX matching is
  // leftmost-longest, so a whole match exists exactly when the match found spans `s`.
  bool matches(const std::string& s, bool whole) const {
    regmatch_t m[1];
    m[0].rm_so = 0;
    m[0].rm_eo = static_cast<regoff_t>(s.size());  // REG_STARTEND: NUL bytes are text too
    if (regexec(&re_, s.c_str(), 1, m, REG_STARTEND) != 0) return false;
    return !whole || (m[0].rm_so == 0 && m[0].rm_eo == static_cast<regoff_t>(s.size()));
  }

 private:
  regex_t re_;
};

// Score `match` or `miss` per sample, as decided by `test` (which may return nullopt: undefined).
class MatchReward : public RewardSource {
 public:
  using Test = std::function<std::optional<bool>(const RewardSample&)>;
  MatchReward(double match, double miss, Test test) : match_(match), miss_(miss), test_(std::move(test)) {}
  RewardResult score(const std::vector<RewardSample>& batch) override {
    RewardResult r;
    for (const RewardSample& s : batch) {
      const std::optional<bool> hit = test_(s);
      r.scores.push_back(!hit ? std::nan("") : *hit ? match_ : miss_);
    }
    return r;
  }

 private:
  double match_, miss_;
  Test test_;
};

class LengthReward : public RewardSource {
 public:
  LengthReward(bool chars, double scale, std::optional<double> target, std::optional<double> max)
      : chars_(chars), scale_(scale), target_(target), max_(max) {}
  RewardResult score(const std::vector<RewardSample>& batch) override {
    RewardResult r;
    double total = 0;
    for (const RewardSample& s : batch) {
      const double len = chars_ ? static_cast<double>(unicode::decode_utf8(s.completion).size())
                                : static_cast<double>(s.completion_ids.size());
      total += len;
      r.scores.push_back(target_ ? -scale_ * std::abs(len - *target_)
                         : max_  ? -scale_ * std::max(0.0, len - *max_)
                                 : scale_ * len);
    }
    r.metrics.emplace_back("mean_length", batch.empty() ? 0.0 : total / static_cast<double>(batch.size()));
    return r;
  }

 private:
  bool chars_;
  double scale_;
  std::optional<double> target_, max_;
};

// The accepted answers of a sample (a string, a number, or a list of them); empty when null.
std::vector<std::string> references(const RewardSample& s, const std::string& field, const std::string& spec) {
  auto fail = [&](const std::string& what) { throw InputError("reward '" + spec + "': " + what); };
  auto it = s.extra.find(field);
  if (it == s.extra.end()) {
    std::string have;
    for (auto f = s.extra.begin(); f != s.extra.end(); ++f) have += (have.empty() ? "" : ", ") + f.key();
    fail("the prompt row has no field '" + field + "' (its fields: " + (have.empty() ? "none" : have) + ")");
  }
  std::vector<std::string> out;
  auto add = [&](const nlohmann::json& v) {
    if (v.is_string())
      out.push_back(v.get<std::string>());
    else if (v.is_number())
      out.push_back(v.dump());
    else if (!v.is_null())
      fail("field '" + field + "' must be a string, a number or a list of them, got " + v.dump());
  };
  if (it->is_array())
    for (const auto& v : *it) add(v);
  else
    add(*it);
  return out;
}

}  // namespace

std::unique_ptr<RewardSource> make_rule_reward(const RewardSpec& spec, SpecOptions& opt) {
  const std::string& kind = spec.kind;
  if (kind == "length") {
    const std::string unit = spec.arg.empty() ? "tokens" : spec.arg;
    if (unit != "tokens" && unit != "chars") opt.fail("length unit must be tokens or chars, got '" + unit + "'");
    std::optional<double> target, max;
    if (opt.has("target")) target = opt.number("target", 0);
    if (opt.has("max")) max = opt.number("max", 0);
    if (target && max) opt.fail("give target or max, not both");
    return std::make_unique<LengthReward>(unit == "chars", opt.number("scale", 1.0), target, max);
  }
  const double match = opt.number("match", 1.0), miss = opt.number("miss", 0.0);
  if (kind == "eos") {
    if (!spec.arg.empty()) opt.fail("eos takes no argument");
    return std::make_unique<MatchReward>(match, miss, [](const RewardSample& s) { return s.eos; });
  }
  if (spec.arg.empty()) opt.fail(kind + " needs an argument after ':'");
  if (kind == "regex" || kind == "format") {
    auto pattern = std::make_shared<Pattern>(spec.arg, opt);
    const bool whole = kind == "format";
    return std::make_unique<MatchReward>(match, miss, [pattern, whole](const RewardSample& s) {
      return pattern->matches(s.completion, whole);
    });
  }
  RLHF_CHECK(kind == "exact", "make_rule_reward: unexpected kind " + kind);
  const bool nocase = opt.flag("nocase"), nostrip = opt.flag("nostrip"), numeric = opt.flag("last_number");
  auto norm = [nocase, nostrip](std::string_view t) {
    std::string u = nostrip ? std::string(t) : strip_unicode(t);
    return nocase ? lower_unicode(u) : u;
  };
  const std::string field = spec.arg, text = spec.text;
  return std::make_unique<MatchReward>(match, miss, [=](const RewardSample& s) -> std::optional<bool> {
    const std::vector<std::string> refs = references(s, field, text);
    if (refs.empty()) return std::nullopt;
    if (numeric) {
      const std::optional<double> got = last_number(s.completion);
      bool any_ref = false;
      for (const std::string& r : refs) {
        const std::optional<double> want = last_number(r);
        any_ref = any_ref || want.has_value();
        if (want && got && *want == *got) return true;
      }
      if (!any_ref) return std::nullopt;  // no number in the reference: undefined
      return false;
    }
    const std::string got = norm(s.completion);
    for (const std::string& r : refs)
      if (norm(r) == got) return true;
    return false;
  });
}

}  // namespace rlhf::rollout
