// Unicode support for tokenizers: general categories, whitespace, NFC/NFKC normalisation, and
// the pre-tokenizer splits of the GPT-2, Llama-3 and Qwen2 regexes, written as hand-made
// matchers (no regex engine) over code points. Tables are generated from Python's unicodedata
// by reference/make_unicode_tables.py into unicode_tables.cpp (Unicode 14.0.0 with Python 3.11;
// see unicode_version()). HF tokenizers 0.23's Oniguruma knows Unicode 16.0: code points first
// assigned in 15.0/16.0 are "other" (Cn) here but may be \p{L}/\p{N} there; everything assigned in
// 14.0 classifies the same (checked over all code points).
//
// Example:
//   for (auto [b, e] : split("I'm here", SplitPattern::llama3)) ...  // "I" "'m" " here"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rlhf::unicode {

// Major general category classes used by the tokenizer regexes (\p{L}, \p{N}, \p{M}, ...).
enum class Category : uint8_t { Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po,
                                Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, Cn };
Category category(char32_t c);
bool is_letter(char32_t c);      // \p{L}
bool is_number(char32_t c);      // \p{N}
bool is_mark(char32_t c);        // \p{M}
bool is_whitespace(char32_t c);  // \s as the Rust regex / Oniguruma engines of tokenizers define it
uint8_t combining_class(char32_t c);  // canonical combining class (0 for starters)
const char* unicode_version();        // version of the generated tables, e.g. "14.0.0"

// UTF-8 decoding: every maximal invalid subpart becomes one U+FFFD (the "substitution of maximal
// subparts" practice of Unicode ch. 3 and the WHATWG Encoding Standard; Python's
// bytes.decode("utf-8", "replace") does the same). E.g. "\xE2\x82A" -> U+FFFD 'A' (one U+FFFD for
// the truncated sequence), "\xED\xA0\x80" (a surrogate) -> three U+FFFD, "\xC0\xAF" -> two.
std::u32string decode_utf8(std::string_view s);
std::string encode_utf8(std::u32string_view s);  // surrogates and values > U+10FFFF -> U+FFFD
std::string sanitize_utf8(std::string_view s);  // replaces invalid sequences by U+FFFD
// Decodes the character at byte `pos` (< s.size()) into *cp and returns its length in bytes; an
// invalid sequence gives *cp = U+FFFD and the length of its maximal invalid subpart (>= 1).
size_t decode_utf8_char(std::string_view s, size_t pos, char32_t* cp);

// Normalisation forms, identical to Python's unicodedata.normalize for the tables' version.
// Invalid UTF-8 is first replaced as by sanitize_utf8.
std::string nfc(std::string_view s);
std::string nfkc(std::string_view s);
std::string nfd(std::string_view s);
std::string nfkd(std::string_view s);

// Pre-tokenizer patterns that tokenizer.json files carry in Split / ByteLevel(use_regex).
enum class SplitPattern { gpt2, llama3, qwen2 };
// Recognises a Split regex string from tokenizer.json; false if it is not one we implement.
bool split_pattern_from_regex(std::string_view regex, SplitPattern* out);
// Byte ranges [begin, end) of the pieces of `text` (valid UTF-8) matched by the pattern; with
// the "Isolated" behaviour of tokenizers, the matches and the gaps between them are pieces.
// The pieces are contiguous, non-empty and cover the text (these patterns leave no gaps). An
// invalid UTF-8 subpart in `text` is treated like U+FFFD (punctuation-like "other").
std::vector<std::pair<size_t, size_t>> split(std::string_view text, SplitPattern p);
// The same pieces a few at a time: replaces `pieces` with at most `max_pieces` of them, starting
// at byte `from` (the end of an earlier call's last piece, or 0), and returns where the next call
// starts (text.size() at the end). Matching sees the whole text, so the pieces are split()'s.
size_t split_some(std::string_view text, SplitPattern p, size_t from, size_t max_pieces,
                  std::vector<std::pair<size_t, size_t>>& pieces);

}  // namespace rlhf::unicode
