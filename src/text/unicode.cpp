// Unicode layer of the tokenizer: category lookups, UTF-8 coding, NFC/NFKC normalisation and the
// hand-written pre-tokenizer matchers for the GPT-2, Llama-3 and Qwen2 split regexes.
//
// Data comes from unicode_tables.cpp (generated from Python's unicodedata). On first use the
// category ranges are expanded into a two-level table (256-code-point blocks, identical blocks
// shared, about 70 KB); ASCII is classified by a flat table on the split hot path. Leaves out:
// case mapping, grapheme clusters, normalisation forms other than NFC/NFKC/NFD/NFKD.
#include "text/unicode.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include "tensor/error.h"
#include "text/unicode_tables.h"

namespace rlhf::unicode {
namespace {

namespace tb = tables;

constexpr char32_t kReplacement = 0xFFFD;
constexpr char32_t kMaxCodePoint = 0x10FFFF;

// Hangul syllable arithmetic (Unicode ch. 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

// Property byte of the two-level table: bits 0-4 category, bit 5 NFC-unsafe, bit 6 NFKC-unsafe.
constexpr uint8_t kCatMask = 0x1F, kNfcUnsafeBit = 0x20, kNfkcUnsafeBit = 0x40;

struct PropTable {
  std::array<uint16_t, ((kMaxCodePoint + 1) >> 8)> stage1{};  // block index per 256 code points
  std::vector<uint8_t> stage2;                               // blocks of 256 property bytes

  uint8_t get(char32_t c) const {
    if (c > kMaxCodePoint) return static_cast<uint8_t>(Category::Cn);
    return stage2[(static_cast<size_t>(stage1[c >> 8]) << 8) | (c & 0xFF)];
  }
};

PropTable build_prop_table() {
  std::vector<uint8_t> flat(kMaxCodePoint + 1);
  for (size_t i = 0; i < tb::kCategoryRangesCount; ++i) {
    char32_t first = tb::kCategoryRanges[i].first;
    char32_t end = i + 1 < tb::kCategoryRangesCount ? tb::kCategoryRanges[i + 1].first
                                                    : kMaxCodePoint + 1;
    std::fill(flat.begin() + first, flat.begin() + end, tb::kCategoryRanges[i].category);
  }
  for (size_t i = 0; i < tb::kNfcUnsafeCount; ++i)
    for (char32_t c = tb::kNfcUnsafe[i].first; c <= tb::kNfcUnsafe[i].last; ++c) flat[c] |= kNfcUnsafeBit;
  for (size_t i = 0; i < tb::kNfkcUnsafeCount; ++i)
    for (char32_t c = tb::kNfkcUnsafe[i].first; c <= tb::kNfkcUnsafe[i].last; ++c) flat[c] |= kNfkcUnsafeBit;

  PropTable t;
  std::map<std::string, uint16_t> seen;  // block contents -> index
  for (size_t b = 0; b < t.stage1.size(); ++b) {
    std::string key(reinterpret_cast<const char*>(flat.data() + (b << 8)), 256);
    auto [it, inserted] = seen.emplace(std::move(key), static_cast<uint16_t>(seen.size()));
    if (inserted) t.stage2.insert(t.stage2.end(), flat.begin() + (b << 8), flat.begin() + ((b + 1) << 8));
    t.stage1[b] = it->second;
  }
  return t;
}

const PropTable& props() {
  static const PropTable table = build_prop_table();
  return table;
}

// --- UTF-8 ---------------------------------------------------------------------------------

// Decodes one character into *cp and returns its length. An invalid sequence gives
// *cp = kInvalid and the length of its maximal subpart (the longest prefix of a well-formed
// sequence, at least one byte), following Unicode Table 3-7 of well-formed byte sequences.
constexpr char32_t kInvalid = 0x110000;

inline size_t decode_one(const unsigned char* p, const unsigned char* end, char32_t* cp) {
  unsigned char b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  char32_t v;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    v = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    v = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    v = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    *cp = kInvalid;
    return 1;
  }
  size_t i = 1;
  for (; i <= need; ++i) {
    if (p + i >= end) break;
    unsigned char b = p[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    v = (v << 6) | (b & 0x3F);
  }
  if (i <= need) {
    *cp = kInvalid;
    return i;
  }
  *cp = v;
  return need + 1;
}

inline size_t decode_or_replace(const unsigned char* p, const unsigned char* end, char32_t* cp) {
  size_t len = decode_one(p, end, cp);
  if (*cp == kInvalid) *cp = kReplacement;
  return len;
}

inline void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
    return;
  }
  if (c > kMaxCodePoint || (c >= 0xD800 && c <= 0xDFFF)) c = kReplacement;
  char buf[4];
  size_t n;
  if (c < 0x800) {
    buf[0] = static_cast<char>(0xC0 | (c >> 6));
    buf[1] = static_cast<char>(0x80 | (c & 0x3F));
    n = 2;
  } else if (c < 0x10000) {
    buf[0] = static_cast<char>(0xE0 | (c >> 12));
    buf[1] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    buf[2] = static_cast<char>(0x80 | (c & 0x3F));
    n = 3;
  } else {
    buf[0] = static_cast<char>(0xF0 | (c >> 18));
    buf[1] = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    buf[2] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    buf[3] = static_cast<char>(0x80 | (c & 0x3F));
    n = 4;
  }
  out.append(buf, n);
}

// --- Normalisation -------------------------------------------------------------------------

template <class T, class Key>
const T* find_range(const T* begin, size_t count, Key key) {  // last entry with first <= key
  const T* it = std::upper_bound(begin, begin + count, key,
                                 [](Key k, const T& e) { return k < e.first; });
  return it == begin ? nullptr : it - 1;
}

uint8_t ccc_of(char32_t c) {
  if (c < 0x300) return 0;
  const tb::CccRange* r = find_range(tb::kCccRanges, tb::kCccRangesCount, c);
  return r && c <= r->last ? r->ccc : 0;
}

void decompose_into(char32_t c, bool compat, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    char32_t s = c - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (c >= 0xA0) {
    if (const tb::DecompRun* r = find_range(tb::kDecompRuns, tb::kDecompRunsCount, c);
        r && c <= r->last && (compat || !r->compat)) {
      decompose_into(r->target + (c - r->first), compat, out);
      return;
    }
    const tb::DecompSeq* end = tb::kDecompSeqs + tb::kDecompSeqsCount;
    const tb::DecompSeq* q = std::lower_bound(tb::kDecompSeqs, end, c,
                                              [](const tb::DecompSeq& e, char32_t k) { return e.cp < k; });
    if (q != end && q->cp == c && (compat || !q->compat)) {
      for (size_t i = 0; i < q->length; ++i) decompose_into(tb::kDecompPool[q->offset + i], compat, out);
      return;
    }
  }
  out.push_back(c);
}

// Primary composite of a + b, or 0.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const tb::CompPair* end = tb::kCompPairs + tb::kCompPairsCount;
  const tb::CompPair* it = std::lower_bound(tb::kCompPairs, end, std::make_pair(a, b),
                                            [](const tb::CompPair& e, std::pair<char32_t, char32_t> k) {
                                              return e.first != k.first ? e.first < k.first : e.second < k.second;
                                            });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

// Full decomposition, canonical ordering and (if `compose`) canonical composition of `in`.
void normalize_chars(const std::u32string& in, bool compat, bool compose, std::u32string& buf,
                     std::vector<uint8_t>& cc) {
  buf.clear();
  for (char32_t c : in) decompose_into(c, compat, buf);
  cc.resize(buf.size());
  for (size_t i = 0; i < buf.size(); ++i) cc[i] = ccc_of(buf[i]);
  // Canonical ordering: stable insertion sort of each run of non-starters by class.
  for (size_t i = 1; i < buf.size(); ++i) {
    if (cc[i] == 0) continue;
    for (size_t j = i; j > 0 && cc[j - 1] > cc[j]; --j) {
      std::swap(cc[j - 1], cc[j]);
      std::swap(buf[j - 1], buf[j]);
    }
  }
  if (!compose || buf.empty()) return;
  // Canonical composition (UAX #15): a character combines with the last starter unless a
  // character left between them has class 0 or a class >= its own.
  size_t starter = 0;
  int last_cc = cc[0] == 0 ? 0 : 256;  // a leading non-starter has no starter to combine with
  size_t out = 1;
  for (size_t i = 1; i < buf.size(); ++i) {
    char32_t c = buf[i];
    int k = cc[i];
    if (last_cc == 0 || last_cc < k) {
      if (char32_t comp = compose_pair(buf[starter], c)) {
        buf[starter] = comp;
        continue;
      }
    }
    if (k == 0) starter = out;
    last_cc = k;
    buf[out] = c;
    cc[out] = static_cast<uint8_t>(k);
    ++out;
  }
  buf.resize(out);
}

enum class Form { nfc, nfkc, nfd, nfkd };

bool has_decomposition(char32_t c, bool compat) {
  if (c >= kSBase && c < kSBase + kSCount) return true;
  std::u32string tmp;
  decompose_into(c, compat, tmp);
  return tmp.size() != 1 || tmp[0] != c;
}

std::string normalize(std::string_view s, Form form) {
  const bool compat = form == Form::nfkc || form == Form::nfkd;
  const bool compose = form == Form::nfc || form == Form::nfkc;
  const uint8_t unsafe_bit = compat ? kNfkcUnsafeBit : kNfcUnsafeBit;
  const PropTable& pt = props();
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  const size_t n = s.size();

  // A "safe" character (see make_unicode_tables.py) is left as it is and normalisation never
  // reaches back across it, so only the stretches from the last safe character before an unsafe
  // one up to the next safe character go through the full algorithm. For the D forms a
  // character is safe if it is a starter without decomposition (the tables' bits also hold for
  // precomposed characters, which NFD must still take apart). Invalid bytes are unsafe.
  auto is_safe = [&](char32_t c) {
    if (c < 0x80) return true;
    if (c == kInvalid || (pt.get(c) & unsafe_bit)) return false;
    return compose || !has_decomposition(c, compat);
  };

  std::string out;
  std::u32string chunk, buf;
  std::vector<uint8_t> cc;
  size_t copied = 0;  // bytes of s already emitted
  size_t last_safe = std::string_view::npos;
  size_t i = 0;
  while (i < n) {
    char32_t c;
    size_t len = decode_one(p + i, end, &c);
    if (is_safe(c)) {
      last_safe = i;
      i += len;
      continue;
    }
    if (out.empty()) out.reserve(n + n / 8 + 16);
    size_t start = last_safe != std::string_view::npos && last_safe >= copied ? last_safe : copied;
    out.append(s.data() + copied, start - copied);
    size_t j = i + len;  // extend to the next safe character
    while (j < n) {
      char32_t d;
      size_t l = decode_one(p + j, end, &d);
      if (is_safe(d)) break;
      j += l;
    }
    chunk.clear();
    for (size_t k = start; k < j;) {
      char32_t d;
      k += decode_or_replace(p + k, end, &d);
      chunk.push_back(d);
    }
    normalize_chars(chunk, compat, compose, buf, cc);
    for (char32_t d : buf) append_utf8(out, d);
    copied = j;
    i = j;
  }
  if (copied == 0) return std::string(s);
  out.append(s.data() + copied, n - copied);
  return out;
}

// --- Pre-tokenizer matchers ----------------------------------------------------------------

enum Cls : uint8_t { kLetter, kNumber, kSpace, kOther };

constexpr std::array<uint8_t, 128> make_ascii_cls() {
  std::array<uint8_t, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = kLetter;
    else if (c >= '0' && c <= '9') t[c] = kNumber;
    else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) t[c] = kSpace;
    else t[c] = kOther;
  }
  return t;
}
constexpr std::array<uint8_t, 128> kAsciiCls = make_ascii_cls();

inline bool is_space_non_ascii(char32_t c) {
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

struct Ch {
  char32_t cp;
  uint8_t len;
  uint8_t cls;
};

class Cursor {
 public:
  Cursor(std::string_view s, const PropTable& pt)
      : p_(reinterpret_cast<const unsigned char*>(s.data())), n_(s.size()), pt_(pt) {}
  size_t size() const { return n_; }
  unsigned char byte(size_t i) const { return p_[i]; }

  Ch at(size_t i) const {  // requires i < n_
    unsigned char b = p_[i];
    if (b < 0x80) return {b, 1, kAsciiCls[b]};
    char32_t c;
    size_t len = decode_or_replace(p_ + i, p_ + n_, &c);  // U+FFFD is "other" like invalid bytes
    uint8_t cat = pt_.get(c) & kCatMask;
    uint8_t cls;
    if (cat <= static_cast<uint8_t>(Category::Lo)) cls = kLetter;
    else if (cat >= static_cast<uint8_t>(Category::Nd) && cat <= static_cast<uint8_t>(Category::No)) cls = kNumber;
    else if (is_space_non_ascii(c)) cls = kSpace;
    else cls = kOther;
    return {c, static_cast<uint8_t>(len), cls};
  }

  // End of the maximal run of class `cls` starting at i (i itself may not be in the class).
  size_t run(size_t i, uint8_t cls) const {
    while (i < n_) {
      unsigned char b = p_[i];
      if (b < 0x80) {
        if (kAsciiCls[b] != cls) break;
        ++i;
        continue;
      }
      Ch c = at(i);
      if (c.cls != cls) break;
      i += c.len;
    }
    return i;
  }

  size_t run_crlf(size_t i) const {
    while (i < n_ && (p_[i] == '\r' || p_[i] == '\n')) ++i;
    return i;
  }

  // Length of the contraction after an apostrophe at i - 1, or 0: 's 't 're 've 'm 'll 'd,
  // case-insensitively (with Unicode case folding: 's also matches U+017F LONG S) if `ci`.
  size_t contraction(size_t i, bool ci) const {
    if (i >= n_) return 0;
    auto low = [&](size_t k) -> int {
      if (k >= n_) return 0;
      int b = p_[k];
      return ci && b >= 'A' && b <= 'Z' ? b + 32 : b;
    };
    int a = low(i);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 1;
    int b = low(i + 1);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 2;
    if (ci && a == 0xC5 && b == 0xBF) return 2;  // U+017F
    return 0;
  }

  // Whitespace run starting at i (a space character): returns the end of the `\s+(?!\S)|\s+`
  // match, or with `newline` the end of a `\s*[\r\n]+` match when the run holds \r or \n.
  size_t space(size_t i, bool newline) const {
    size_t j = i, prev = i, nl_end = 0;
    while (j < n_) {
      Ch c = at(j);
      if (c.cls != kSpace) break;
      prev = j;
      j += c.len;
      if (c.cp == '\r' || c.cp == '\n') nl_end = j;
    }
    if (newline && nl_end) return nl_end;
    if (j == n_ || prev == i) return j;  // \s+ at the end, or a single space before \S
    return prev;                         // back off one so that (?!\S) holds
  }

 private:
  const unsigned char* p_;
  size_t n_;
  const PropTable& pt_;
};

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(const Cursor& s, size_t i) {
  Ch c = s.at(i);
  if (c.cp == '\'')
    if (size_t m = s.contraction(i + 1, false)) return i + 1 + m;
  if (c.cp == ' ' && i + 1 < s.size()) {
    Ch d = s.at(i + 1);
    if (d.cls != kSpace) return s.run(i + 1, d.cls);
  }
  if (c.cls != kSpace) return s.run(i, c.cls);
  return s.space(i, false);
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t match_llama3(const Cursor& s, size_t i, int max_digits) {
  Ch c = s.at(i);
  if (c.cp == '\'')
    if (size_t m = s.contraction(i + 1, true)) return i + 1 + m;
  if (c.cls == kLetter) return s.run(i, kLetter);
  if (c.cls != kNumber && c.cp != '\r' && c.cp != '\n' && i + c.len < s.size()) {
    if (s.at(i + c.len).cls == kLetter) return s.run(i + c.len, kLetter);
  }
  if (c.cls == kNumber) {
    size_t j = i + c.len;
    for (int k = 1; k < max_digits && j < s.size(); ++k) {
      Ch d = s.at(j);
      if (d.cls != kNumber) break;
      j += d.len;
    }
    return j;
  }
  if (c.cls == kOther) return s.run_crlf(s.run(i, kOther));
  if (c.cp == ' ' && i + 1 < s.size() && s.at(i + 1).cls == kOther)
    return s.run_crlf(s.run(i + 1, kOther));
  return s.space(i, true);
}

}  // namespace

// --- Public API ----------------------------------------------------------------------------

Category category(char32_t c) { return static_cast<Category>(props().get(c) & kCatMask); }

bool is_letter(char32_t c) {
  if (c < 0x80) return kAsciiCls[c] == kLetter;
  return (props().get(c) & kCatMask) <= static_cast<uint8_t>(Category::Lo);
}

bool is_number(char32_t c) {
  if (c < 0x80) return kAsciiCls[c] == kNumber;
  uint8_t k = props().get(c) & kCatMask;
  return k >= static_cast<uint8_t>(Category::Nd) && k <= static_cast<uint8_t>(Category::No);
}

bool is_mark(char32_t c) {
  uint8_t k = props().get(c) & kCatMask;
  return k >= static_cast<uint8_t>(Category::Mn) && k <= static_cast<uint8_t>(Category::Me);
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return kAsciiCls[c] == kSpace;
  return is_space_non_ascii(c);
}

uint8_t combining_class(char32_t c) { return ccc_of(c); }

const char* unicode_version() { return tb::kUnicodeVersion; }

size_t decode_utf8_char(std::string_view s, size_t pos, char32_t* cp) {
  RLHF_CHECK(pos < s.size(), "decode_utf8_char: position " + std::to_string(pos) +
                                 " is past the end of a " + std::to_string(s.size()) + "-byte string");
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  return decode_or_replace(p + pos, p + s.size(), cp);
}

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    char32_t c;
    p += decode_or_replace(p, end, &c);
    out.push_back(c);
  }
  return out;
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

std::string sanitize_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  std::string out;
  const auto* copied = p;
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    char32_t c;
    size_t len = decode_one(p, end, &c);
    if (c == kInvalid) {
      if (out.empty()) out.reserve(s.size() + 16);
      out.append(reinterpret_cast<const char*>(copied), p - copied);
      out.append("\xEF\xBF\xBD");
      copied = p + len;
    }
    p += len;
  }
  if (copied == reinterpret_cast<const unsigned char*>(s.data())) return std::string(s);
  out.append(reinterpret_cast<const char*>(copied), end - copied);
  return out;
}

std::string nfc(std::string_view s) { return normalize(s, Form::nfc); }
std::string nfkc(std::string_view s) { return normalize(s, Form::nfkc); }
std::string nfd(std::string_view s) { return normalize(s, Form::nfd); }
std::string nfkd(std::string_view s) { return normalize(s, Form::nfkd); }

bool split_pattern_from_regex(std::string_view regex, SplitPattern* out) {
  static constexpr std::string_view kGpt2 =
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  static constexpr std::string_view kLlama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static constexpr std::string_view kQwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  SplitPattern p;
  if (regex == kGpt2) p = SplitPattern::gpt2;
  else if (regex == kLlama3) p = SplitPattern::llama3;
  else if (regex == kQwen2) p = SplitPattern::qwen2;
  else return false;
  if (out) *out = p;
  return true;
}

std::vector<std::pair<size_t, size_t>> split(std::string_view text, SplitPattern p) {
  std::vector<std::pair<size_t, size_t>> pieces;
  pieces.reserve(text.size() / 4 + 1);
  split_some(text, p, 0, text.size(), pieces);
  return pieces;
}

size_t split_some(std::string_view text, SplitPattern p, size_t from, size_t max_pieces,
                  std::vector<std::pair<size_t, size_t>>& pieces) {
  pieces.clear();
  Cursor s(text, props());
  size_t i = from;
  const size_t n = text.size();
  while (i < n && pieces.size() < max_pieces) {
    size_t j;
    switch (p) {
      case SplitPattern::gpt2: j = match_gpt2(s, i); break;
      case SplitPattern::llama3: j = match_llama3(s, i, 3); break;
      case SplitPattern::qwen2: j = match_llama3(s, i, 1); break;
      default: throw LogicError("split: unknown SplitPattern " + std::to_string(static_cast<int>(p)));
    }
    // Every character is a letter, number, space or other, so some alternative always matches
    // and there are no gaps between matches.
    RLHF_CHECK(j > i, "split: empty match");
    pieces.emplace_back(i, j);
    i = j;
  }
  return i;
}

}  // namespace rlhf::unicode
