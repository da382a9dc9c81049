// Hugging Face tokenizer.json, encoded and decoded exactly as the `tokenizers` library does.
//
// Supported: WordLevel models (one token per word) and BPE models, byte-level (GPT-2, Llama-3,
// Qwen2/3, OLMo 2, Phi-4-mini, SmolLM3: ByteLevel pre-tokenizer and decoder, Split pre-tokenizers
// with any regex — hand-written matchers for the GPT-2 / Llama-3 / Qwen2 regexes, PCRE2 read as
// Oniguruma for the others (regex.h) — every Split behavior and invert) and SentencePiece-style
// (Llama-2, Mistral, Phi-3, Gemma 2/3: Metaspace or Prepend/Replace normalizers, byte fallback,
// ByteFallback/Fuse/Strip/Replace decoders); NFC/NFKC normalizers;
// added and special tokens (leftmost-longest, lstrip/rstrip/single_word/normalized flags); merges
// as "a b" or ["a", "b"]; WhitespaceSplit, Whitespace (\w+|[^\w\s]+) and Digits pre-tokenizers;
// the post-processor's BOS/EOS (TemplateProcessing, ByteLevel). Without a decoder, decode joins
// the tokens with one space, as tokenizers does. Anything else is an InputError naming the JSON
// path of the unsupported component. A WordLevel model maps an unknown word to its unk_token;
// when that is not in the vocabulary, encode throws an InputError naming the word (tokenizers
// raises too).
//
// Invalid UTF-8 in input text: each invalid byte is replaced by U+FFFD before encoding (the
// Python stack cannot receive invalid UTF-8 at all; this is our documented policy).
//
// Example:
//   Tokenizer tok = Tokenizer::load("model-dir");     // reads tokenizer.json (+ tokenizer_config.json)
//   std::vector<int32_t> ids = tok.encode("Hello world", {.add_special_tokens = true});
//   std::string text = tok.decode(ids, {.skip_special_tokens = true});
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rlhf {

struct EncodeOptions {
  bool add_special_tokens = false;  // apply the post-processor (BOS/EOS templates)
  bool parse_special_tokens = true; // special-token text in the input becomes the special token;
                                    // false: it is encoded as plain text (split_special_tokens)
  // > 0: the caller needs only the first max_tokens ids. Encoding may stop once it has them,
  // returning a prefix of the full encoding that holds at least max_tokens ids (or all of them).
  // Pre-tokenizers that cut the text into pieces (regex, whitespace) stop there, so memory and
  // time follow max_tokens, not the text; a model that runs over the whole text (no
  // pre-tokenizer, or a chain of several) still encodes it whole.
  size_t max_tokens = 0;
};

struct DecodeOptions {
  bool skip_special_tokens = false;
};

class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a model directory holding one (tokenizer_config.json
  // beside it supplies bos/eos/pad token names and the chat template when present).
  static Tokenizer load(const std::filesystem::path& path);
  static Tokenizer from_json_text(const std::string& tokenizer_json, const std::string& source);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opt = {}) const;
  std::string decode(const std::vector<int32_t>& ids, const DecodeOptions& opt = {}) const;

  int64_t vocab_size() const;  // including added tokens (max id + 1)
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // InputError when out of range
  bool is_special(int32_t id) const;

  // From tokenizer_config.json / special_tokens_map.json when present.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  std::string bos_token() const;  // "" when none
  std::string eos_token() const;
  const std::string& chat_template() const;  // "" when none

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// tokenizer.json text of a WordLevel tokenizer (one token per word), as `tokenizers` saves one:
// the special tokens with ids 0.., then the words; the specials also as special added tokens;
// pre-tokenizer WhitespaceSplit; no normalizer, post-processor or decoder (decode joins words
// with one space); unk_token "<unk>", which stands for unknown words when it is among
// `special_tokens` or `words` (otherwise an unknown word is an encode error). InputError for an
// empty or repeated token, invalid UTF-8, or a word holding whitespace (it could never be
// encoded).
//   word_level_tokenizer_json({"the", "cat"}, {"<pad>", "<eos>", "<unk>"})
//   // vocab {"<pad>": 0, "<eos>": 1, "<unk>": 2, "the": 3, "cat": 4}
std::string word_level_tokenizer_json(const std::vector<std::string>& words,
                                      const std::vector<std::string>& special_tokens);

// Incremental decoding for streaming generation: feeds ids one at a time and returns only
// text that is final — never half of a UTF-8 character (bytes of an incomplete sequence are
// held back until the character completes; an impossible sequence yields U+FFFD per byte, as
// HF's ByteFallback decoder does).
class DecodeStream {
 public:
  DecodeStream(const Tokenizer& tok, DecodeOptions opt = {});
  std::string step(int32_t id);
  std::string finish();  // flushes whatever is held back

 private:
  const Tokenizer& tok_;
  DecodeOptions opt_;
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;  // bytes of decode(ids_) already returned
};

}  // namespace rlhf
