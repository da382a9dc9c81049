// Reading tokenizer.json: the BPE or WordLevel model, added tokens and the normalizer / pre-tokenizer /
// post-processor / decoder components, validated at load so that encode and decode never meet
// an id outside the vocabulary.
//
// Every error is an InputError "<source>: <JSON path>: <what is wrong>", e.g.
//   tokenizer.json: pre_tokenizer.pretokenizers[1].type: 'BertPreTokenizer' is not supported
// and malformed JSON reports the byte offset, line and column (detail::parse_json_strict).
//
// Checks beyond what `tokenizers` does at load: tokens that look like byte-fallback tokens
// ("<0x..>") but are not two hex digits (the Rust decoder would read "<0x+A>" as byte 0x0A),
// added-token ids that differ from the ids `tokenizers` would give them (it silently renumbers),
// vocabulary ids that are negative, repeated or far beyond the vocabulary size, and
// post-processor ids outside the vocabulary.
#include <algorithm>
#include <cctype>
#include <set>

#include "model/json_strict.h"
#include "tensor/error.h"
#include "text/tokenizer_internal.h"

namespace rlhf::tok {
namespace {

using json = nlohmann::json;

class Loader {
 public:
  Loader(Tokenizer::Impl& impl, const std::string& source) : impl_(impl), source_(source) {}

  void load(const std::string& text);

 private:
  [[noreturn]] void fail(const std::string& path, const std::string& msg) const {
    throw InputError(source_ + ": " + path + ": " + msg);
  }
  static std::string quote(std::string_view s) {
    std::string q = "'";
    q += s;
    q += "'";
    return q;
  }
  static std::string join(const std::string& path, const char* key) {
    return path.empty() ? std::string(key) : path + "." + key;
  }
  static std::string index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

  const json& object(const json& v, const std::string& path) const {
    if (!v.is_object()) fail(path, "expected an object, got " + detail::json_excerpt(v));
    return v;
  }
  const json* member(const json& obj, const char* key) const {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  const json& required(const json& obj, const char* key, const std::string& path) const {
    const json* v = member(obj, key);
    if (!v) fail(join(path, key), "missing");
    return *v;
  }
  std::string string_field(const json& obj, const char* key, const std::string& path) const {
    const json& v = required(obj, key, path);
    if (!v.is_string()) fail(join(path, key), "expected a string, got " + detail::json_excerpt(v));
    return v.get<std::string>();
  }
  // A string or null (null and absent give `dflt`).
  std::string optional_string(const json& obj, const char* key, const std::string& path,
                              const std::string& dflt = "") const {
    const json* v = member(obj, key);
    if (!v || v->is_null()) return dflt;
    if (!v->is_string()) fail(join(path, key), "expected a string or null, got " + detail::json_excerpt(*v));
    return v->get<std::string>();
  }
  bool bool_field(const json& obj, const char* key, const std::string& path, bool dflt) const {
    const json* v = member(obj, key);
    if (!v || v->is_null()) return dflt;
    if (!v->is_boolean()) fail(join(path, key), "expected true or false, got " + detail::json_excerpt(*v));
    return v->get<bool>();
  }
  int64_t int_field(const json& obj, const char* key, const std::string& path, int64_t dflt) const {
    const json* v = member(obj, key);
    if (!v || v->is_null()) return dflt;
    if (!v->is_number_integer()) fail(join(path, key), "expected an integer, got " + detail::json_excerpt(*v));
    return v->get<int64_t>();
  }
  const json& array_field(const json& obj, const char* key, const std::string& path) const {
    const json& v = required(obj, key, path);
    if (!v.is_array()) fail(join(path, key), "expected an array, got " + detail::json_excerpt(v));
    return v;
  }
  std::string type_of(const json& obj, const std::string& path) const {
    return string_field(object(obj, path), "type", path);
  }
  [[noreturn]] void unsupported(const std::string& path, const std::string& type) const {
    fail(join(path, "type"), quote(type) + " is not supported");
  }
  // {"String": s} or a {"Regex": r} that is a plain literal.
  std::string literal_pattern(const json& obj, const std::string& path) const;

  void load_model(const json& m, const std::string& path);
  void load_vocab(const json& m, const std::string& path);
  void load_added_tokens(const json& arr);
  void load_normalizer(const json& n, const std::string& path);
  void load_pre_tokenizer(const json& p, const std::string& path);
  void load_post_processor(const json& p, const std::string& path, PostProcessor& out);
  void load_decoder(const json& d, const std::string& path);
  void check_byte_tokens() const;
  int32_t checked_id(const json& v, const std::string& path) const;

  Tokenizer::Impl& impl_;
  const std::string& source_;
  size_t model_vocab_len_ = 0;   // entries in model.vocab (tokenizers' get_vocab_size)
  int64_t vocab_size_ = 0;       // max id + 1 over model and added tokens
  bool has_byte_fallback_decoder_ = false;
};

// A regex without metacharacters (after unescaping escaped punctuation) is the literal *out.
bool regex_literal(const std::string& re, std::string* out) {
  std::string lit;
  if (re.empty()) return false;
  for (size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    if (c == '\\' && i + 1 < re.size() && std::ispunct(static_cast<unsigned char>(re[i + 1]))) lit += re[++i];
    else if (std::strchr(".^$*+?()[]{}|\\", c)) return false;
    else lit += c;
  }
  *out = std::move(lit);
  return true;
}

std::string Loader::literal_pattern(const json& obj, const std::string& path) const {
  const json& p = object(required(obj, "pattern", path), join(path, "pattern"));
  const std::string ppath = join(path, "pattern");
  if (const json* s = member(p, "String")) {
    if (!s->is_string()) fail(join(ppath, "String"), "expected a string");
    return s->get<std::string>();
  }
  if (const json* r = member(p, "Regex")) {
    if (!r->is_string()) fail(join(ppath, "Regex"), "expected a string");
    // A regex without metacharacters (after unescaping escaped punctuation) is a literal.
    const std::string re = r->get<std::string>();
    std::string lit;
    for (size_t i = 0; i < re.size(); ++i) {
      const char c = re[i];
      if (c == '\\' && i + 1 < re.size() && std::ispunct(static_cast<unsigned char>(re[i + 1]))) {
        lit += re[++i];
      } else if (std::strchr(".^$*+?()[]{}|\\", c)) {
        fail(join(ppath, "Regex"), quote(re) + " is not supported (only literal patterns here)");
      } else {
        lit += c;
      }
    }
    return lit;
  }
  fail(ppath, "expected {\"String\": ...} or {\"Regex\": ...}");
}

int32_t Loader::checked_id(const json& v, const std::string& path) const {
  if (!v.is_number_integer()) fail(path, "expected an integer id, got " + detail::json_excerpt(v));
  const int64_t id = v.get<int64_t>();
  if (id < 0 || id >= vocab_size_)
    fail(path, "id " + std::to_string(id) + " is outside the vocabulary (size " + std::to_string(vocab_size_) + ")");
  return static_cast<int32_t>(id);
}

void Loader::load(const std::string& text) {
  const json root = detail::parse_json_strict(text, source_);
  if (!root.is_object()) fail("(top level)", "expected a JSON object, got " + detail::json_excerpt(root));

  if (const json* v = member(root, "version"); v && !v->is_null()) {
    if (!v->is_string() || v->get<std::string>() != "1.0")
      fail("version", "expected \"1.0\", got " + detail::json_excerpt(*v));
  }
  // truncation / padding: transformers manages both itself and ignores these, so do we.

  // Decoder first: whether a ByteFallback decoder exists decides the byte-token checks.
  if (const json* d = member(root, "decoder"); d && !d->is_null()) {
    impl_.has_decoder = true;
    load_decoder(*d, "decoder");
  }
  if (const json* p = member(root, "pre_tokenizer"); p && !p->is_null()) load_pre_tokenizer(*p, "pre_tokenizer");
  for (size_t i = 0; i < impl_.pre_tokenizers.size(); ++i)
    if (impl_.pre_tokenizers[i].kind == PreTokenizer::Kind::byte_level && i + 1 != impl_.pre_tokenizers.size())
      fail("pre_tokenizer", "a ByteLevel pre-tokenizer followed by other pre-tokenizers is not supported");
  impl_.model.byte_level_input =
      !impl_.pre_tokenizers.empty() && impl_.pre_tokenizers.back().kind == PreTokenizer::Kind::byte_level;

  load_model(required(root, "model", ""), "model");
  if (const json* n = member(root, "normalizer"); n && !n->is_null()) load_normalizer(*n, "normalizer");

  if (const json* a = member(root, "added_tokens"); a && !a->is_null()) {
    if (!a->is_array()) fail("added_tokens", "expected an array, got " + detail::json_excerpt(*a));
    load_added_tokens(*a);
  } else {
    vocab_size_ = static_cast<int64_t>(impl_.model.vocab_r.size());
  }
  check_byte_tokens();

  if (const json* p = member(root, "post_processor"); p && !p->is_null())
    load_post_processor(*p, "post_processor", impl_.post);
}

void Loader::load_vocab(const json& m, const std::string& path) {
  BpeModel& bpe = impl_.model;
  const std::string vpath = join(path, "vocab");
  const json& vocab = required(m, "vocab", path);
  if (!vocab.is_object()) fail(vpath, "expected an object {token: id}, got " + detail::json_excerpt(vocab));
  const size_t n = vocab.size();
  bpe.vocab.clear();
  bpe.vocab.reserve(n);
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const json& v = it.value();
    if (!v.is_number_integer())
      fail(vpath + "[" + detail::json_excerpt(json(it.key())) + "]", "expected an integer id, got " + detail::json_excerpt(v));
    const int64_t id = v.get<int64_t>();
    // Ids index arrays: holes are allowed, but not ids far past the number of entries.
    if (id < 0 || id >= static_cast<int64_t>(2 * n + 1024))
      fail(vpath + "[" + detail::json_excerpt(json(it.key())) + "]",
           "id " + std::to_string(id) + " is outside [0, " + std::to_string(2 * n + 1024) + ") for a vocabulary of " +
               std::to_string(n) + " tokens");
    bpe.vocab.emplace(it.key(), static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }
  model_vocab_len_ = n;
  bpe.vocab_r.assign(static_cast<size_t>(max_id + 1), std::string());
  bpe.vocab_has.assign(static_cast<size_t>(max_id + 1), 0);
  for (const auto& [token, id] : bpe.vocab) {
    if (bpe.vocab_has[id])
      fail(vpath, "id " + std::to_string(id) + " is used by both " + quote(bpe.vocab_r[id]) + " and " + quote(token));
    bpe.vocab_r[id] = token;
    bpe.vocab_has[id] = 1;
  }
}

void Loader::load_model(const json& m, const std::string& path) {
  object(m, path);
  std::string type = optional_string(m, "type", path, "BPE");
  BpeModel& bpe = impl_.model;
  if (type == "WordLevel") {
    // models/wordlevel: a vocabulary and an unk_token (a required string). The unk_token need
    // not be in the vocabulary: tokenizers then fails only on an unknown word, and so do we.
    impl_.model_type = Tokenizer::Impl::ModelType::word_level;
    if (bpe.byte_level_input)
      fail("pre_tokenizer", "a ByteLevel pre-tokenizer with a WordLevel model is not supported");
    load_vocab(m, path);
    bpe.unk_token = string_field(m, "unk_token", path);
    bpe.finalize();
    return;
  }
  if (type != "BPE") unsupported(path, type);

  if (const json* d = member(m, "dropout"); d && !d->is_null()) {
    if (!d->is_number()) fail(join(path, "dropout"), "expected a number or null");
    if (d->get<double>() != 0.0) fail(join(path, "dropout"), "BPE dropout is not supported (non-deterministic)");
  }
  bpe.unk_token = optional_string(m, "unk_token", path);
  bpe.prefix = optional_string(m, "continuing_subword_prefix", path);
  bpe.suffix = optional_string(m, "end_of_word_suffix", path);
  bpe.fuse_unk = bool_field(m, "fuse_unk", path, false);
  bpe.byte_fallback = bool_field(m, "byte_fallback", path, false);
  bpe.ignore_merges = bool_field(m, "ignore_merges", path, false);
  load_vocab(m, path);
  if (!bpe.unk_token.empty() && !bpe.vocab.count(bpe.unk_token))
    fail(join(path, "unk_token"), quote(bpe.unk_token) + " is not in the vocabulary");

  // Merges: "a b" (one space) or ["a", "b"].
  const std::string mpath = join(path, "merges");
  const json* merges = member(m, "merges");
  if (merges && !merges->is_null()) {
    if (!merges->is_array()) fail(mpath, "expected an array, got " + detail::json_excerpt(*merges));
    bpe.merges.reserve(merges->size());
    std::string a, b, merged;
    for (size_t r = 0; r < merges->size(); ++r) {
      const json& e = (*merges)[r];
      const std::string epath = index(mpath, r);
      if (e.is_string()) {
        const std::string& s = e.get_ref<const std::string&>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail(epath, quote(s) + " must be two tokens separated by one space");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        fail(epath, "expected \"a b\" or [\"a\", \"b\"], got " + detail::json_excerpt(e));
      }
      auto ia = bpe.vocab.find(a);
      if (ia == bpe.vocab.end()) fail(epath, quote(a) + " is not in the vocabulary");
      auto ib = bpe.vocab.find(b);
      if (ib == bpe.vocab.end()) fail(epath, quote(b) + " is not in the vocabulary");
      if (b.size() < bpe.prefix.size()) fail(epath, quote(b) + " is shorter than the continuing_subword_prefix");
      merged = a;
      merged.append(b, bpe.prefix.size(), std::string::npos);
      auto im = bpe.vocab.find(merged);
      if (im == bpe.vocab.end()) fail(epath, "the merged token " + quote(merged) + " is not in the vocabulary");
      bpe.merges.insert(ia->second, ib->second, static_cast<int32_t>(r), im->second);
    }
  }
  bpe.finalize();
}

void Loader::load_added_tokens(const json& arr) {
  const BpeModel& bpe = impl_.model;
  // Ids as tokenizers assigns them while loading (AddedVocabulary::add_tokens): the model's id
  // for a content it knows, else one past the largest so far (starting at the vocab length).
  std::vector<AddedToken> tokens;
  int64_t max_added = -1;
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string path = index("added_tokens", i);
    const json& t = object(arr[i], path);
    AddedToken a;
    a.content = string_field(t, "content", path);
    a.special = bool_field(t, "special", path, false);
    a.single_word = bool_field(t, "single_word", path, false);
    a.lstrip = bool_field(t, "lstrip", path, false);
    a.rstrip = bool_field(t, "rstrip", path, false);
    a.normalized = bool_field(t, "normalized", path, !a.special);
    const json& idv = required(t, "id", path);
    if (!idv.is_number_integer()) fail(join(path, "id"), "expected an integer, got " + detail::json_excerpt(idv));
    const int64_t declared = idv.get<int64_t>();
    if (a.content.empty()) continue;  // tokenizers ignores empty added tokens

    int64_t id;
    if (auto it = impl_.added_ids.find(a.content); it != impl_.added_ids.end()) id = it->second;
    else if (auto jt = bpe.vocab.find(a.content); jt != bpe.vocab.end()) id = jt->second;
    else if (max_added < 0) id = static_cast<int64_t>(model_vocab_len_);
    else id = (max_added >= static_cast<int64_t>(model_vocab_len_) || model_vocab_len_ == 0) ? max_added + 1
                                                                                           : static_cast<int64_t>(model_vocab_len_);
    if (declared != id)
      fail(join(path, "id"), quote(a.content) + " is declared with id " + std::to_string(declared) +
                                 ", but the vocabulary gives it id " + std::to_string(id) +
                                 " (model vocabulary of " + std::to_string(model_vocab_len_) +
                                 " tokens, added tokens numbered after it in file order)");
    a.id = static_cast<int32_t>(id);
    impl_.added_ids[a.content] = a.id;
    max_added = std::max(max_added, id);
    tokens.push_back(std::move(a));
  }
  vocab_size_ = std::max<int64_t>(static_cast<int64_t>(bpe.vocab_r.size()), max_added + 1);
  // The matchers take special tokens first, then the others, each in file order (as tokenizers'
  // refresh_added_tokens does); normalized tokens are matched in their normalized form.
  impl_.added = std::move(tokens);
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < impl_.added.size(); ++i) {
      const AddedToken& a = impl_.added[i];
      if (a.special != (pass == 0)) continue;
      if (a.normalized) impl_.normalized_matcher.add(impl_.normalize(a.content), static_cast<int32_t>(i));
      else impl_.raw_matcher.add(a.content, static_cast<int32_t>(i));
    }
  }
}

void Loader::load_normalizer(const json& n, const std::string& path) {
  const std::string type = type_of(n, path);
  Normalizer out;
  if (type == "Sequence") {
    const json& arr = array_field(n, "normalizers", path);
    for (size_t i = 0; i < arr.size(); ++i) load_normalizer(arr[i], index(join(path, "normalizers"), i));
    return;
  } else if (type == "NFC") {
    out.kind = Normalizer::Kind::nfc;
  } else if (type == "NFKC") {
    out.kind = Normalizer::Kind::nfkc;
  } else if (type == "NFD") {
    out.kind = Normalizer::Kind::nfd;
  } else if (type == "NFKD") {
    out.kind = Normalizer::Kind::nfkd;
  } else if (type == "StripAccents") {
    out.kind = Normalizer::Kind::strip_accents;
  } else if (type == "Lowercase") {
    out.kind = Normalizer::Kind::lowercase;
  } else if (type == "Strip") {
    out.kind = Normalizer::Kind::strip;
    out.left = bool_field(n, "strip_left", path, true);
    out.right = bool_field(n, "strip_right", path, true);
  } else if (type == "Prepend") {
    out.kind = Normalizer::Kind::prepend;
    out.a = string_field(n, "prepend", path);
  } else if (type == "Replace") {
    out.kind = Normalizer::Kind::replace;
    out.a = literal_pattern(n, path);
    out.b = string_field(n, "content", path);
    if (out.a.empty()) fail(join(path, "pattern"), "an empty pattern is not supported");
  } else {
    unsupported(path, type);
  }
  impl_.normalizers.push_back(std::move(out));
}

void Loader::load_pre_tokenizer(const json& p, const std::string& path) {
  const std::string type = type_of(p, path);
  PreTokenizer out;
  if (type == "Sequence") {
    const json& arr = array_field(p, "pretokenizers", path);
    for (size_t i = 0; i < arr.size(); ++i) load_pre_tokenizer(arr[i], index(join(path, "pretokenizers"), i));
    return;
  } else if (type == "ByteLevel") {
    out.kind = PreTokenizer::Kind::byte_level;
    out.add_prefix_space = bool_field(p, "add_prefix_space", path, true);
    out.use_regex = bool_field(p, "use_regex", path, true);
    out.pattern = unicode::SplitPattern::gpt2;
  } else if (type == "Split") {
    const json& pat = object(required(p, "pattern", path), join(path, "pattern"));
    out.invert = bool_field(p, "invert", path, false);
    const std::string behavior = string_field(p, "behavior", path);
    if (behavior == "Removed") out.behavior = SplitBehavior::removed;
    else if (behavior == "Isolated") out.behavior = SplitBehavior::isolated;
    else if (behavior == "MergedWithPrevious") out.behavior = SplitBehavior::merged_with_previous;
    else if (behavior == "MergedWithNext") out.behavior = SplitBehavior::merged_with_next;
    else if (behavior == "Contiguous") out.behavior = SplitBehavior::contiguous;
    else fail(join(path, "behavior"), quote(behavior) + " is not a split behavior");
    const json* re = member(pat, "Regex");
    std::string lit;
    unicode::SplitPattern sp;
    if (re && re->is_string() && unicode::split_pattern_from_regex(re->get<std::string>(), &sp)) {
      // GPT-2 / Llama-3 / Qwen2: the hand-written matchers (the fast path).
      out.kind = PreTokenizer::Kind::split_regex;
      out.pattern = sp;
    } else if (re && re->is_string() && !regex_literal(re->get<std::string>(), &lit)) {
      // Any other regex: PCRE2, rewritten to follow Oniguruma (regex.h).
      out.kind = PreTokenizer::Kind::split_regex;
      out.regex = SplitRegex::compile(re->get<std::string>(), source_ + ": " + join(join(path, "pattern"), "Regex"));
    } else {
      out.kind = PreTokenizer::Kind::split_string;
      out.literal = literal_pattern(p, path);
      if (out.literal.empty()) {
        // tokenizers matches an empty pattern at every character boundary: the empty regex does.
        out.kind = PreTokenizer::Kind::split_regex;
        out.regex = SplitRegex::compile("", source_ + ": " + join(path, "pattern"));
      }
    }
  } else if (type == "Metaspace") {
    out.kind = PreTokenizer::Kind::metaspace;
    out.literal = optional_string(p, "replacement", path, "\xE2\x96\x81");
    size_t k = 0;
    if (out.literal.empty() || (utf8_next(out.literal, k), k != out.literal.size()))
      fail(join(path, "replacement"), "expected one character");
    const std::string scheme = optional_string(p, "prepend_scheme", path);
    if (scheme.empty()) out.prepend = bool_field(p, "add_prefix_space", path, true) ? PreTokenizer::Prepend::always
                                                                                    : PreTokenizer::Prepend::never;
    else if (scheme == "always") out.prepend = PreTokenizer::Prepend::always;
    else if (scheme == "first") out.prepend = PreTokenizer::Prepend::first;
    else if (scheme == "never") out.prepend = PreTokenizer::Prepend::never;
    else fail(join(path, "prepend_scheme"), quote(scheme) + " is not one of always, first, never");
    out.split = bool_field(p, "split", path, true);
  } else if (type == "Digits") {
    out.kind = PreTokenizer::Kind::digits;
    out.individual_digits = bool_field(p, "individual_digits", path, false);
  } else if (type == "WhitespaceSplit") {
    out.kind = PreTokenizer::Kind::whitespace_split;
  } else if (type == "Whitespace") {
    out.kind = PreTokenizer::Kind::whitespace;
  } else {
    unsupported(path, type);
  }
  impl_.pre_tokenizers.push_back(std::move(out));
}

void Loader::load_post_processor(const json& p, const std::string& path, PostProcessor& out) {
  const std::string type = type_of(p, path);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const json& arr = array_field(p, "processors", path);
    for (size_t i = 0; i < arr.size(); ++i) {
      // Each processor sees the previous one's output as its $A.
      PostProcessor inner;
      load_post_processor(arr[i], index(join(path, "processors"), i), inner);
      out.before.insert(out.before.begin(), inner.before.begin(), inner.before.end());
      out.after.insert(out.after.end(), inner.after.begin(), inner.after.end());
    }
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto pair_id = [&](const char* key) {
      const json& v = required(p, key, path);
      if (!v.is_array() || v.size() != 2 || !v[0].is_string())
        fail(join(path, key), "expected [token, id], got " + detail::json_excerpt(v));
      return checked_id(v[1], index(join(path, key), 1));
    };
    out.before.push_back(pair_id("cls"));
    out.after.push_back(pair_id("sep"));
    return;
  }
  if (type != "TemplateProcessing") unsupported(path, type);

  // special_tokens: {name: {"id": name, "ids": [...], "tokens": [...]}}
  std::unordered_map<std::string, std::vector<int32_t>> specials;
  const std::string spath = join(path, "special_tokens");
  if (const json* st = member(p, "special_tokens"); st && !st->is_null()) {
    if (!st->is_object()) fail(spath, "expected an object");
    for (auto it = st->begin(); it != st->end(); ++it) {
      const std::string epath = spath + "[" + detail::json_excerpt(json(it.key())) + "]";
      const json& e = object(it.value(), epath);
      const json& ids = array_field(e, "ids", epath);
      std::vector<int32_t> v;
      for (size_t i = 0; i < ids.size(); ++i) v.push_back(checked_id(ids[i], index(join(epath, "ids"), i)));
      specials[it.key()] = std::move(v);
    }
  }
  // Templates: [{"SpecialToken": {"id": ...}}, {"Sequence": {"id": "A"}}, ...] (or "<s> $A").
  auto parse_template = [&](const char* key, bool want_ids) {
    const json* t = member(p, key);
    const std::string tpath = join(path, key);
    if (!t || t->is_null()) {
      if (want_ids) fail(tpath, "missing");
      return;
    }
    std::vector<std::pair<bool, std::string>> items;  // (is_sequence, name)
    if (t->is_string()) {
      const std::string s = t->get<std::string>();
      size_t i = 0;
      while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        size_t j = i;
        while (j < s.size() && s[j] != ' ') ++j;
        if (j > i) {
          std::string piece = s.substr(i, j - i);
          if (auto c = piece.rfind(':'); c != std::string::npos && c > 0) piece = piece.substr(0, c);
          if (piece[0] == '$') items.emplace_back(true, piece.size() > 1 ? piece.substr(1) : "A");
          else items.emplace_back(false, piece);
        }
        i = j;
      }
    } else if (t->is_array()) {
      for (size_t i = 0; i < t->size(); ++i) {
        const std::string ipath = index(tpath, i);
        const json& item = object((*t)[i], ipath);
        if (const json* sp = member(item, "SpecialToken")) {
          items.emplace_back(false, string_field(object(*sp, join(ipath, "SpecialToken")), "id", join(ipath, "SpecialToken")));
        } else if (const json* sq = member(item, "Sequence")) {
          items.emplace_back(true, string_field(object(*sq, join(ipath, "Sequence")), "id", join(ipath, "Sequence")));
        } else {
          fail(ipath, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
        }
      }
    } else {
      fail(tpath, "expected a template list or string");
    }
    bool seen_a = false;
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& [is_seq, name] = items[i];
      if (!is_seq) {
        auto it = specials.find(name);
        if (it == specials.end()) fail(index(tpath, i), quote(name) + " is not in special_tokens");
        if (want_ids) (seen_a ? out.after : out.before).insert((seen_a ? out.after : out.before).end(), it->second.begin(), it->second.end());
      } else {
        if (name != "A" && name != "B" && name != "0" && name != "1")
          fail(index(tpath, i), "sequence " + quote(name) + " is not A or B");
        if (want_ids) {
          if (seen_a || name == "B" || name == "1") fail(tpath, "the single-sequence template must hold $A once");
          seen_a = true;
        }
      }
    }
    if (want_ids && !seen_a) fail(tpath, "the single-sequence template has no $A");
  };
  parse_template("single", true);
  parse_template("pair", false);  // validated only: encode() takes one sequence
}

void Loader::load_decoder(const json& d, const std::string& path) {
  const std::string type = type_of(d, path);
  Decoder out;
  if (type == "Sequence") {
    const json& arr = array_field(d, "decoders", path);
    for (size_t i = 0; i < arr.size(); ++i) load_decoder(arr[i], index(join(path, "decoders"), i));
    return;
  } else if (type == "ByteLevel") {
    out.kind = Decoder::Kind::byte_level;
  } else if (type == "ByteFallback") {
    out.kind = Decoder::Kind::byte_fallback;
    has_byte_fallback_decoder_ = true;
  } else if (type == "Fuse") {
    out.kind = Decoder::Kind::fuse;
  } else if (type == "Strip") {
    out.kind = Decoder::Kind::strip;
    out.a = string_field(d, "content", path);
    size_t k = 0;
    if (out.a.empty() || (utf8_next(out.a, k), k != out.a.size())) fail(join(path, "content"), "expected one character");
    const int64_t start = int_field(d, "start", path, 0), stop = int_field(d, "stop", path, 0);
    if (start < 0 || stop < 0) fail(path, "start and stop must not be negative");
    out.start = static_cast<size_t>(start);
    out.stop = static_cast<size_t>(stop);
  } else if (type == "Replace") {
    out.kind = Decoder::Kind::replace;
    out.a = literal_pattern(d, path);
    out.b = string_field(d, "content", path);
    if (out.a.empty()) fail(join(path, "pattern"), "an empty pattern is not supported");
  } else if (type == "Metaspace") {
    out.kind = Decoder::Kind::metaspace;
    out.a = optional_string(d, "replacement", path, "\xE2\x96\x81");
    size_t k = 0;
    if (out.a.empty() || (utf8_next(out.a, k), k != out.a.size())) fail(join(path, "replacement"), "expected one character");
    const std::string scheme = optional_string(d, "prepend_scheme", path);
    if (scheme.empty()) out.prepend_never = !bool_field(d, "add_prefix_space", path, true);
    else if (scheme == "always" || scheme == "first") out.prepend_never = false;
    else if (scheme == "never") out.prepend_never = true;
    else fail(join(path, "prepend_scheme"), quote(scheme) + " is not one of always, first, never");
  } else {
    unsupported(path, type);
  }
  impl_.decoders.push_back(std::move(out));
}

// "<0xNN>" tokens are bytes to the BPE model (byte_fallback) and to the ByteFallback decoder; a
// token of that shape whose NN is not two hex digits would be misread (Rust's from_str_radix
// takes "+A"), so it is refused.
void Loader::check_byte_tokens() const {
  if (!impl_.model.byte_fallback && !has_byte_fallback_decoder_) return;
  auto check = [&](const std::string& t, const std::string& path) {
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
        !(std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]))))
      fail(path, quote(t) + " has the form of a byte-fallback token but " + quote(t.substr(3, 2)) +
                     " is not two hexadecimal digits");
  };
  for (const auto& [t, id] : impl_.model.vocab) check(t, "model.vocab[" + detail::json_excerpt(json(t)) + "]");
  for (size_t i = 0; i < impl_.added.size(); ++i) check(impl_.added[i].content, index("added_tokens", i) + ".content");
}

}  // namespace

void load_tokenizer_json(Tokenizer::Impl& impl, const std::string& text, const std::string& source) {
  impl.source = source;
  Loader(impl, source).load(text);
  impl.build_tables();
}

}  // namespace rlhf::tok
