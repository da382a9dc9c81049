// Unicode support for tokenizers: general categories, whitespace, NFC/NFKC normalisation, and
// the pre-tokenizer splits of the GPT-2, Llama-3 and Qwen2 regexes, written as hand-made
// matchers (no regex engine) over code points. Tables are generated from Python's unicodedata
// by reference/make_unicode_tables.py into unicode_tables.cpp.
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

// UTF-8 decoding with the replacement policy of tokenizer.h: invalid bytes become U+FFFD.
std::u32string decode_utf8(std::string_view s);
std::string encode_utf8(std::u32string_view s);
std::string sanitize_utf8(std::string_view s);  // replaces invalid sequences by U+FFFD

std::string nfc(std::string_view s);
std::string nfkc(std::string_view s);

// Pre-tokenizer patterns that tokenizer.json files carry in Split / ByteLevel(use_regex).
enum class SplitPattern { gpt2, llama3, qwen2 };
// Recognises a Split regex string from tokenizer.json; false if it is not one we implement.
bool split_pattern_from_regex(std::string_view regex, SplitPattern* out);
// Byte ranges [begin, end) of the pieces of `text` (valid UTF-8) matched by the pattern; with
// the "Isolated" behaviour of tokenizers, the matches and the gaps between them are pieces.
std::vector<std::pair<size_t, size_t>> split(std::string_view text, SplitPattern p);

}  // namespace rlhf::unicode
