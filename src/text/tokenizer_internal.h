// Internals of the tokenizer (tokenizer.h), shared by its source files:
//   tokenizer_json.cpp  — reading and validating tokenizer.json / tokenizer_config.json
//   added_tokens.cpp    — leftmost-longest matching of added tokens
//   bpe.cpp             — the BPE model: merges, byte fallback, the word cache
//   wordlevel.cpp       — the WordLevel model (one pre-token, one token) and a writer for it
//   tokenizer.cpp       — the encode/decode pipeline, DecodeStream, the public API
//
// The pipeline mirrors Hugging Face `tokenizers` step by step (Tokenizer::encode_single_sequence):
// added tokens matched on the raw text -> normalizer on each remaining segment -> added tokens
// matched on the normalized text -> pre-tokenizers -> model on each pre-token -> post-processor.
// Offsets are not tracked: nothing in rlhf.cpp needs them.
//
// Not here: anything Python-side (transformers' clean_up_tokenization_spaces, truncation and
// padding, which transformers manages itself).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/regex.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace rlhf::tok {

// ---------------------------------------------------------------------------------------------
// Hashing and small UTF-8 helpers

// 64-bit hash of a byte string (8 bytes per step, multiply-xorshift mixing). Not cryptographic.
inline uint64_t hash_bytes(const char* p, size_t n) {
  constexpr uint64_t k1 = 0x9E3779B97F4A7C15ull, k2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t h = 0x243F6A8885A308D3ull ^ (n * k2);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ (w * k1)) * k2;
    h ^= h >> 29;
  }
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    h = (h ^ (w * k1)) * k2;
  }
  h ^= h >> 32;
  h *= k1;
  h ^= h >> 29;
  return h;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return hash_bytes(s.data(), s.size()); }
  size_t operator()(const std::string& s) const noexcept { return hash_bytes(s.data(), s.size()); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Length of the UTF-8 sequence a lead byte announces (1 for ASCII and for invalid bytes, which
// never occur here: text is sanitized before it reaches the pipeline).
inline size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}
// Decodes the character at s[i] of valid UTF-8 and advances i.
inline char32_t utf8_next(std::string_view s, size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  unsigned c = p[i];
  size_t n = utf8_len(static_cast<unsigned char>(c));
  if (i + n > s.size()) n = 1;
  char32_t cp;
  switch (n) {
    case 1: cp = c; break;
    case 2: cp = ((c & 0x1F) << 6) | (p[i + 1] & 0x3F); break;
    case 3: cp = ((c & 0x0F) << 12) | ((p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F); break;
    default:
      cp = ((c & 0x07) << 18) | ((p[i + 1] & 0x3F) << 12) | ((p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
  }
  i += n;
  return cp;
}
// The character that ends s (valid UTF-8, non-empty).
inline char32_t utf8_last(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return utf8_next(s, i);
}
inline void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629), or 0 if none starts there.
size_t utf8_valid_len(std::string_view s, size_t i);
// Our input policy (tokenizer.h): every byte that does not begin a well-formed sequence becomes
// U+FFFD. Returns false (and leaves `out` alone) when `s` is already valid.
bool sanitize_per_byte(std::string_view s, std::string* out);
// Rust's String::from_utf8_lossy: each maximal ill-formed subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view s);

// \w of the Rust regex crate (used by single_word added tokens and the Whitespace pre-tokenizer):
// letters, marks, decimal and letter numbers, connector punctuation, join controls, and the
// alphabetic symbols (circled / squared Latin letters).
bool is_word_char(char32_t c);
// char::to_lowercase (full mapping; İ becomes two characters), as the Lowercase normalizer does.
void append_lowercase(std::string& out, char32_t c);

// GPT-2's byte <-> printable character mapping used by byte-level BPE.
const std::array<char32_t, 256>& byte_to_char();
int byte_from_char(char32_t c);  // -1 when c is not one of the 256 mapped characters

// ---------------------------------------------------------------------------------------------
// BPE model (models/bpe in tokenizers). Its vocabulary tables and unk_token / unk_id also serve
// the WordLevel model (Tokenizer::Impl::model_type), which has nothing else.

// (left id, right id) -> (rank, merged id), open addressing.
class MergeTable {
 public:
  struct Entry {
    uint64_t key;
    int32_t rank;
    int32_t new_id;
  };
  void reserve(size_t n);
  void insert(int32_t a, int32_t b, int32_t rank, int32_t new_id);  // replaces an existing pair
  const Entry* find(int32_t a, int32_t b) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = pack(a, b);
    size_t i = mix(key) & mask_;
    for (;;) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t mix(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(k ^ (k >> 31));
  }
  std::vector<Entry> slots_;
  size_t mask_ = 0, size_ = 0;
};

// Bounded cache word -> ids, shared by threads (sharded, one mutex per shard). A full shard is
// emptied and refilled; results never depend on what the cache holds.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;  // longer words are not cached (as tokenizers)
  bool lookup(std::string_view word, uint64_t h, std::vector<int32_t>& out) const;
  void insert(std::string_view word, uint64_t h, const int32_t* ids, size_t n) const;
  void clear() const;

 private:
  static constexpr size_t kShards = 32;
  static constexpr size_t kSlotsPerShard = 4096;  // power of two
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, key_len = 0;
    uint32_t val_off = 0, val_len = 0;
    bool used = false;
  };
  struct Shard {
    std::mutex mu;
    std::vector<Slot> slots;
    std::string keys;
    std::vector<int32_t> values;
    size_t count = 0;
  };
  mutable std::array<Shard, kShards> shards_;
};

struct BpeModel {
  // Vocabulary: token -> id, id -> token ("" for ids the vocabulary does not use).
  StringIdMap vocab;
  std::vector<std::string> vocab_r;
  std::vector<uint8_t> vocab_has;  // 1 where vocab_r[id] is a token
  MergeTable merges;
  std::string unk_token;  // "" when none
  int32_t unk_id = -1;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::string prefix;  // continuing_subword_prefix ("" when none)
  std::string suffix;  // end_of_word_suffix
  std::array<int32_t, 256> byte_token{};  // id of "<0xNN>", -1 when absent
  std::array<int32_t, 128> ascii_token{};  // id of each one-character ASCII token, -1 when absent

  // Byte-level input (a ByteLevel pre-tokenizer ends the chain): words arrive as raw bytes and
  // are mapped to GPT-2's characters here. When every byte's character is a token and there is
  // no prefix/suffix, BPE runs on ids directly (`byte_fast`); otherwise on the mapped string.
  bool byte_level_input = false;
  bool byte_fast = false;
  std::array<int32_t, 256> byte_char_token{};  // id of the one-character token of each byte
  StringIdMap raw_vocab;  // byte-level: raw bytes of each vocabulary token -> id (ignore_merges)

  WordCache cache;

  // Called once after vocab/merges/options are set.
  void finalize();
  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  void merge_word_chars(std::string_view word, std::vector<int32_t>& out) const;
  void merge_ids(std::vector<int32_t>& ids) const;
};

// ---------------------------------------------------------------------------------------------
// Added tokens (tokenizer/added_vocabulary.rs)

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
};

// Leftmost-longest matcher over a set of patterns (a byte trie; ties between equal patterns go
// to the first one added).
class AddedTokenMatcher {
 public:
  void add(std::string_view pattern, int32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Finds the leftmost-longest match starting at or after `from`. Returns false when none.
  bool find(std::string_view text, size_t from, size_t* start, size_t* end, int32_t* token_index) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
    int32_t token_index = -1;
  };
  int32_t child(int32_t node, unsigned char c) const;
  std::vector<Node> nodes_{Node{}};
  std::array<bool, 256> first_{};
};

// A piece of an input segment: either a byte range still to tokenize or a matched added token.
struct Segment {
  size_t begin, end;
  int32_t token_id;  // -1: text
};
// find_matches of tokenizers: the segments of `text` around the added tokens `m` finds, with the
// single_word / lstrip / rstrip rules; special tokens are skipped unless `parse_special`.
void split_added_tokens(std::string_view text, const AddedTokenMatcher& m,
                        const std::vector<AddedToken>& tokens, bool parse_special,
                        std::vector<Segment>& out);

// ---------------------------------------------------------------------------------------------
// Components

struct Normalizer {
  enum class Kind { nfc, nfkc, nfd, nfkd, strip_accents, lowercase, strip, prepend, replace };
  Kind kind;
  std::string a, b;  // prepend: a; replace: a -> b
  bool left = false, right = false;  // strip
};

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct PreTokenizer {
  // whitespace_split: runs of non-whitespace; whitespace: \w+|[^\w\s]+ (tokenizers' Whitespace)
  enum class Kind { byte_level, split_regex, split_string, metaspace, digits, whitespace_split, whitespace };
  Kind kind;
  bool add_prefix_space = false;  // byte_level
  bool use_regex = false;         // byte_level
  // split_regex: one of the hand-written patterns, or (when `regex` is set) any other regex, run
  // with PCRE2 as Oniguruma would (regex.h).
  unicode::SplitPattern pattern = unicode::SplitPattern::gpt2;
  std::shared_ptr<const SplitRegex> regex;
  std::string literal;  // split_string; metaspace: the replacement character
  SplitBehavior behavior = SplitBehavior::isolated;
  bool invert = false;  // split_regex, split_string: matches and the text between them swap roles
  enum class Prepend { always, first, never } prepend = Prepend::always;  // metaspace
  bool split = true;              // metaspace
  bool individual_digits = false;  // digits
};

struct Decoder {
  enum class Kind { byte_level, byte_fallback, fuse, strip, replace, metaspace };
  Kind kind;
  std::string a, b;  // replace: a -> b; strip: a = the character; metaspace: a = replacement
  size_t start = 0, stop = 0;  // strip
  bool prepend_never = false;  // metaspace
};

// The post-processor reduced to what encode() of one sequence needs: the ids around $A.
struct PostProcessor {
  std::vector<int32_t> before, after;
};

}  // namespace rlhf::tok

namespace rlhf {

struct Tokenizer::Impl {
  std::string source;
  // word_level: each pre-token is looked up whole in model.vocab, else model.unk_id, else an
  // InputError naming the word (models/wordlevel in tokenizers).
  enum class ModelType { bpe, word_level } model_type = ModelType::bpe;
  tok::BpeModel model;
  std::vector<tok::Normalizer> normalizers;
  std::vector<tok::PreTokenizer> pre_tokenizers;
  std::vector<tok::AddedToken> added;  // in tokenizer.json order
  tok::AddedTokenMatcher raw_matcher, normalized_matcher;
  tok::StringIdMap added_ids;  // content -> id
  tok::PostProcessor post;
  bool has_decoder = false;
  std::vector<tok::Decoder> decoders;

  // Per id, over the whole vocabulary (model + added): the token, whether it exists, is special.
  std::vector<std::string> id_token;
  std::vector<uint8_t> id_exists, id_special;
  std::vector<int16_t> id_byte;  // byte value of a "<0xNN>" token when decoding via ByteFallback, else -1
  // Byte-level decoding fast path (decoder is exactly ByteLevel): each id's bytes.
  bool byte_level_decode_only = false;
  std::vector<std::string> id_bytes;

  std::string bos, eos, pad, chat_template;

  void build_tables();  // after the components are loaded
  // Appends the ids of `text`; may stop once `out` holds `limit` ids (EncodeOptions::max_tokens).
  void pre_tokenize_and_model(std::string_view text, bool at_origin, std::vector<int32_t>& out,
                              size_t limit = SIZE_MAX) const;
  // Appends the ids of one pre-token.
  void run_model(std::string_view word, std::vector<int32_t>& out) const {
    if (model_type == ModelType::word_level) word_level_tokenize(word, out);
    else model.tokenize(word, out);
  }
  void word_level_tokenize(std::string_view word, std::vector<int32_t>& out) const;  // wordlevel.cpp
  std::string normalize(std::string_view s) const;
  std::string decode_tokens(std::vector<std::string>& tokens) const;
};

namespace tok {
// Loads tokenizer.json text into `impl` (tokenizer_json.cpp).
void load_tokenizer_json(Tokenizer::Impl& impl, const std::string& text, const std::string& source);
}  // namespace tok

}  // namespace rlhf
