// Tests of src/text/unicode.cpp: hand-checked cases, then the reference data written by
// reference/make_unicode_fixtures.py (HF tokenizers' Split pieces, Python's unicodedata and
// Python's UTF-8 decoder) under tests/fixtures/text/.
#include "text/unicode.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/error.h"

namespace {

using namespace rlhf::unicode;
using nlohmann::json;

const std::string kDir = std::string(RLHF_FIXTURES_DIR) + "/text/";

std::vector<json> read_jsonl(const std::string& name) {
  std::ifstream f(kDir + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << kDir + name;
  std::vector<json> rows;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

std::vector<std::string> pieces(std::string_view text, SplitPattern p) {
  std::vector<std::string> out;
  for (auto [b, e] : split(text, p)) out.emplace_back(text.substr(b, e - b));
  return out;
}

std::string show(const std::vector<std::string>& v) {
  std::string s = "[";
  for (const auto& x : v) s += json(x).dump(-1, ' ', false, json::error_handler_t::replace) + ", ";
  return s + "]";
}

uint64_t fnv1a(std::string_view data, uint64_t h = 0xCBF29CE484222325ull) {
  for (unsigned char b : data) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

std::string hex64(uint64_t h) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// --- Hand-checked cases ----------------------------------------------------------------------

TEST(Unicode, Categories) {
  EXPECT_EQ(category(U'A'), Category::Lu);
  EXPECT_EQ(category(U'a'), Category::Ll);
  EXPECT_EQ(category(U'0'), Category::Nd);
  EXPECT_EQ(category(U' '), Category::Zs);
  EXPECT_EQ(category(U'\n'), Category::Cc);
  EXPECT_EQ(category(0x01C5), Category::Lt);   // ǅ
  EXPECT_EQ(category(0x02B0), Category::Lm);   // ʰ
  EXPECT_EQ(category(0x4E2D), Category::Lo);   // 中
  EXPECT_EQ(category(0x0301), Category::Mn);
  EXPECT_EQ(category(0x0903), Category::Mc);
  EXPECT_EQ(category(0x20DD), Category::Me);
  EXPECT_EQ(category(0x2163), Category::Nl);   // Ⅳ
  EXPECT_EQ(category(0x00BD), Category::No);   // ½
  EXPECT_EQ(category(0x2028), Category::Zl);
  EXPECT_EQ(category(0x2029), Category::Zp);
  EXPECT_EQ(category(0x200B), Category::Cf);
  EXPECT_EQ(category(0xD800), Category::Cs);
  EXPECT_EQ(category(0xE000), Category::Co);
  EXPECT_EQ(category(0x0378), Category::Cn);
  EXPECT_EQ(category(0x10FFFF), Category::Cn);
  EXPECT_EQ(category(0x110000), Category::Cn);  // out of range
  EXPECT_EQ(category(0xAC00), Category::Lo);    // Hangul syllables are a range
  EXPECT_EQ(category(0x20000), Category::Lo);   // CJK Ext B
  EXPECT_EQ(category(0x1F600), Category::So);   // 😀
  EXPECT_TRUE(is_letter(0x00E9) && is_letter(0x05D0) && !is_letter(U'1') && !is_letter(0x0301));
  EXPECT_TRUE(is_number(0x0663) && is_number(0x2160) && is_number(0x2460) && !is_number(U'x'));
  EXPECT_TRUE(is_mark(0x0301) && is_mark(0x093F) && !is_mark(U'a'));
  EXPECT_STREQ(unicode_version(), "14.0.0");
  EXPECT_EQ(combining_class(0x0301), 230);
  EXPECT_EQ(combining_class(0x0323), 220);
  EXPECT_EQ(combining_class(U'a'), 0);
}

TEST(Unicode, Whitespace) {
  const std::vector<char32_t> ws = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000,
                                    0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
                                    0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  size_t count = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    bool expected = std::find(ws.begin(), ws.end(), c) != ws.end();
    EXPECT_EQ(is_whitespace(c), expected) << std::hex << static_cast<uint32_t>(c);
    count += is_whitespace(c);
  }
  EXPECT_EQ(count, ws.size());
  // Not \s: zero-width space, BOM, U+180E (no longer White_Space), information separators.
  EXPECT_FALSE(is_whitespace(0x200B) || is_whitespace(0xFEFF) || is_whitespace(0x180E) ||
               is_whitespace(0x1C));
}

TEST(Unicode, Utf8RoundTrip) {
  std::string s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  std::u32string u = decode_utf8(s);
  EXPECT_EQ(u, (std::u32string{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(encode_utf8(u), s);
  EXPECT_EQ(sanitize_utf8(s), s);
  EXPECT_EQ(encode_utf8(std::u32string{0xD800, 0x110000, 0x10FFFF}),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xF4\x8F\xBF\xBF");
  char32_t cp;
  EXPECT_EQ(decode_utf8_char(s, 1, &cp), 2u);
  EXPECT_EQ(cp, 0xE9u);
  EXPECT_EQ(decode_utf8_char("\xE2\x82" "A", 0, &cp), 2u);
  EXPECT_EQ(cp, 0xFFFDu);
  EXPECT_THROW(decode_utf8_char("ab", 2, &cp), rlhf::LogicError);
  EXPECT_EQ(decode_utf8(""), U"");
}

TEST(Unicode, Utf8MaximalSubparts) {
  // One U+FFFD per maximal invalid subpart.
  EXPECT_EQ(sanitize_utf8("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(sanitize_utf8("\xEF\xBF\xBD"), "\xEF\xBF\xBD");  // a real U+FFFD stays one
}

TEST(Unicode, Utf8InvalidFixtures) {
  auto rows = read_jsonl("utf8_invalid.jsonl");
  ASSERT_GT(rows.size(), 50u);
  for (const auto& row : rows) {
    std::string hex = row["hex"], bytes;
    for (size_t i = 0; i < hex.size(); i += 2) bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    std::string expected = row["decoded"];
    EXPECT_EQ(sanitize_utf8(bytes), expected) << hex;
    EXPECT_EQ(encode_utf8(decode_utf8(bytes)), expected) << hex;
    std::u32string chars;  // decode_utf8_char walks the same characters
    for (size_t i = 0; i < bytes.size();) {
      char32_t cp;
      i += decode_utf8_char(bytes, i, &cp);
      chars.push_back(cp);
    }
    EXPECT_EQ(chars, decode_utf8(bytes)) << hex;
    EXPECT_EQ(nfc(bytes), nfc(expected)) << hex;  // normalisation sanitises first
    for (SplitPattern p : {SplitPattern::gpt2, SplitPattern::llama3, SplitPattern::qwen2}) {
      size_t end = 0;  // split stays total on invalid input: contiguous pieces covering it all
      for (auto [b, e] : split(bytes, p)) {
        EXPECT_EQ(b, end);
        EXPECT_GT(e, b);
        end = e;
      }
      EXPECT_EQ(end, bytes.size());
    }
  }
}

TEST(Unicode, NormalizationBasics) {
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                 // e + U+0301 -> é
  EXPECT_EQ(nfd("\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(nfkc("\xEF\xAC\x81"), "fi");                   // ﬁ
  EXPECT_EQ(nfc("\xEF\xAC\x81"), "\xEF\xAC\x81");
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");               // Angstrom sign -> Å
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(nfc("\xEA\xB0\x80\xE1\x86\xA8"), "\xEA\xB0\x81");              // 가 + T -> 각
  EXPECT_EQ(nfd("\xEA\xB0\x81"), "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8");
  // a + U+0301 + U+0323 -> ạ́ (U+1EA1 U+0301): reordering puts the dot below first.
  EXPECT_EQ(nfc("a\xCC\x81\xCC\xA3"), "\xE1\xBA\xA1\xCC\x81");
  EXPECT_EQ(nfkc("\xEF\xBC\xA1\xE2\x91\xA0"), "A1");        // fullwidth A, circled 1
  EXPECT_EQ(nfc(""), "");
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
}

// --- Splits: hand-checked ------------------------------------------------------------------

TEST(Unicode, SplitGpt2Hand) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world's 123  end", SplitPattern::gpt2),
            (V{"Hello", " world", "'s", " 123", " ", " end"}));
  EXPECT_EQ(pieces("I'M  \n\tx  ", SplitPattern::gpt2), (V{"I", "'", "M", "  \n", "\t", "x", "  "}));
  EXPECT_EQ(pieces(" !!a", SplitPattern::gpt2), (V{" !!", "a"}));
  EXPECT_EQ(pieces("", SplitPattern::gpt2), V{});
}

TEST(Unicode, SplitLlama3Hand) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("I'M 12345 (x)\n\n  y", SplitPattern::llama3),
            (V{"I", "'M", " ", "123", "45", " (", "x", ")\n\n", " ", " y"}));
  EXPECT_EQ(pieces("I'M 12345 (x)\n\n  y", SplitPattern::qwen2),
            (V{"I", "'M", " ", "1", "2", "3", "4", "5", " (", "x", ")\n\n", " ", " y"}));
  EXPECT_EQ(pieces("a \n b\tc", SplitPattern::llama3), (V{"a", " \n", " b", "\tc"}));
  EXPECT_EQ(pieces("x'\xC5\xBFt", SplitPattern::llama3), (V{"x", "'\xC5\xBF", "t"}));  // 'ſ folds to 's
  EXPECT_EQ(pieces("x'\xC5\xBFt", SplitPattern::gpt2), (V{"x", "'", "\xC5\xBFt"}));
}

TEST(Unicode, SplitPatternFromRegex) {
  SplitPattern p;
  EXPECT_TRUE(split_pattern_from_regex(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", &p));
  EXPECT_EQ(p, SplitPattern::gpt2);
  EXPECT_TRUE(split_pattern_from_regex(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      &p));
  EXPECT_EQ(p, SplitPattern::llama3);
  EXPECT_TRUE(split_pattern_from_regex(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      &p));
  EXPECT_EQ(p, SplitPattern::qwen2);
  EXPECT_FALSE(split_pattern_from_regex(R"(\s+)", &p));
  EXPECT_FALSE(split_pattern_from_regex("", &p));
}

// --- Reference fixtures ----------------------------------------------------------------------

TEST(Unicode, PretokenizeFixtures) {
  auto rows = read_jsonl("pretokenize.jsonl");
  ASSERT_GT(rows.size(), 400u);
  const std::pair<const char*, SplitPattern> patterns[] = {
      {"gpt2", SplitPattern::gpt2}, {"llama3", SplitPattern::llama3}, {"qwen2", SplitPattern::qwen2}};
  size_t matched = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    std::string text = row["text"];
    bool ok = true;
    for (auto [name, p] : patterns) {
      std::vector<std::string> expected;
      size_t at = 0;
      for (size_t len : row[name].get<std::vector<size_t>>()) {
        expected.push_back(text.substr(at, len));
        at += len;
      }
      ASSERT_EQ(at, text.size()) << "fixture line " << i + 1;
      auto got = pieces(text, p);
      if (got != expected) {
        ok = false;
        ADD_FAILURE() << name << " line " << i + 1 << " " << json(text).dump() << "\n  expected "
                      << show(expected) << "\n  got      " << show(got);
      }
    }
    std::string want_nfc = row.value("nfc", text), want_nfkc = row.value("nfkc", text);
    if (nfc(text) != want_nfc || nfkc(text) != want_nfkc) {
      ok = false;
      ADD_FAILURE() << "normalisation line " << i + 1 << " " << json(text).dump() << "\n  nfc  "
                    << json(nfc(text)).dump() << " want " << json(want_nfc).dump() << "\n  nfkc "
                    << json(nfkc(text)).dump() << " want " << json(want_nfkc).dump();
    }
    matched += ok;
  }
  EXPECT_EQ(matched, rows.size());
  std::printf("pretokenize.jsonl: %zu of %zu samples match (3 patterns + NFC + NFKC)\n", matched,
              rows.size());
}

json read_check() {
  std::ifstream f(kDir + "unicode_check.json", std::ios::binary);
  EXPECT_TRUE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}

TEST(Unicode, EveryCodePointMatchesUnicodedata) {
  json check = read_check();
  ASSERT_EQ(check["unicode_version"], unicode_version());
  const char32_t block = check["block_size"];
  const char* forms[] = {"nfc", "nfkc", "nfd", "nfkd"};
  std::string (*fns[])(std::string_view) = {nfc, nfkc, nfd, nfkd};
  size_t bad = 0;
  for (char32_t b = 0; b < 0x110000 / block; ++b) {
    uint64_t hc = 0xCBF29CE484222325ull;
    uint64_t hf[4] = {hc, hc, hc, hc};
    for (char32_t c = b * block; c < (b + 1) * block; ++c) {
      char rec[2] = {static_cast<char>(category(c)), static_cast<char>(combining_class(c))};
      hc = fnv1a(std::string_view(rec, 2), hc);
      if (c >= 0xD800 && c < 0xE000) continue;
      std::string s = encode_utf8(std::u32string(1, c));
      for (int k = 0; k < 4; ++k) hf[k] = fnv1a(fns[k](s) + "\xFF", hf[k]);
    }
    if (hex64(hc) != check["category_ccc"][b]) {
      ++bad;
      ADD_FAILURE() << "category/ccc differ in block U+" << std::hex << b * block;
    }
    for (int k = 0; k < 4; ++k)
      if (hex64(hf[k]) != check[forms[k]][b]) {
        ++bad;
        ADD_FAILURE() << forms[k] << " differs in block U+" << std::hex << b * block;
      }
  }
  EXPECT_EQ(bad, 0u);
}

TEST(Unicode, RandomSequencesMatchUnicodedata) {
  json r = read_check()["random"];
  uint64_t state = r["seed"];
  auto next = [&]() {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  std::vector<std::pair<char32_t, char32_t>> ranges;
  for (const auto& x : r["ranges"]) ranges.emplace_back(x[0], x[1]);
  const size_t count = r["count"], chunk = r["chunk"];
  uint64_t h_nfc = 0xCBF29CE484222325ull, h_nfkc = h_nfc;
  size_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    size_t n = 1 + next() % 8;
    std::u32string s;
    for (size_t k = 0; k < n; ++k) {
      auto [lo, hi] = ranges[next() % ranges.size()];
      s.push_back(lo + static_cast<char32_t>(next() % (hi - lo + 1)));
    }
    std::string u = encode_utf8(s);
    h_nfc = fnv1a(nfc(u) + "\xFF", h_nfc);
    h_nfkc = fnv1a(nfkc(u) + "\xFF", h_nfkc);
    if ((i + 1) % chunk == 0) {
      size_t c = i / chunk;
      if (hex64(h_nfc) != r["nfc"][c] || hex64(h_nfkc) != r["nfkc"][c]) {
        ++bad;
        ADD_FAILURE() << "random strings " << c * chunk << ".." << i << ": NFC or NFKC differs";
      }
      h_nfc = h_nfkc = 0xCBF29CE484222325ull;
    }
  }
  EXPECT_EQ(bad, 0u);
}

// Invariants over the corpus: pieces tile the text, and normalising is idempotent.
TEST(Unicode, CorpusInvariants) {
  std::ifstream f(kDir + "corpus.txt", std::ios::binary);
  ASSERT_TRUE(f.good());
  std::string line;
  size_t lines = 0;
  while (std::getline(f, line)) {
    ++lines;
    for (SplitPattern p : {SplitPattern::gpt2, SplitPattern::llama3, SplitPattern::qwen2}) {
      size_t end = 0;
      for (auto [b, e] : split(line, p)) {
        ASSERT_EQ(b, end);
        ASSERT_GT(e, b);
        end = e;
      }
      ASSERT_EQ(end, line.size());
    }
    EXPECT_EQ(nfc(nfc(line)), nfc(line));
    EXPECT_EQ(nfkc(nfkc(line)), nfkc(line));
    EXPECT_EQ(nfc(nfd(line)), nfc(line));
  }
  EXPECT_GE(lines, 300u);
}

}  // namespace
