// The WordLevel model of tokenizers (models/wordlevel): each pre-token is one vocabulary entry,
// or the unk_token, or an error. The vocabulary lives in Impl::model (BpeModel's tables, loaded
// by tokenizer_json.cpp). Also word_level_tokenizer_json, which writes such a tokenizer.json.
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "tensor/error.h"
#include "text/tokenizer_internal.h"

namespace rlhf {

using namespace tok;

namespace {

// 'word', cut to about 80 bytes at a character boundary for error messages.
std::string quoted_excerpt(std::string_view word) {
  constexpr size_t kMax = 80;
  std::string q = "'";
  if (word.size() <= kMax) {
    q += word;
    q += "'";
    return q;
  }
  size_t end = 0;
  while (end < word.size() && end + utf8_len(static_cast<unsigned char>(word[end])) <= kMax)
    end += utf8_len(static_cast<unsigned char>(word[end]));
  q.append(word.substr(0, end));
  q += "...' (" + std::to_string(word.size()) + " bytes)";
  return q;
}

}  // namespace

void Tokenizer::Impl::word_level_tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (auto it = model.vocab.find(word); it != model.vocab.end()) {
    out.push_back(it->second);
    return;
  }
  if (model.unk_id >= 0) {
    out.push_back(model.unk_id);
    return;
  }
  // tokenizers: "WordLevel error: Missing [UNK] token from the vocabulary".
  throw InputError(source + ": WordLevel model: " + quoted_excerpt(word) +
                   " is not in the vocabulary, and neither is its unk_token " + quoted_excerpt(model.unk_token) +
                   " that would stand for it");
}

std::string word_level_tokenizer_json(const std::vector<std::string>& words,
                                      const std::vector<std::string>& special_tokens) {
  using ojson = nlohmann::ordered_json;
  const char* kWhere = "word_level_tokenizer_json: ";
  std::unordered_set<std::string_view> seen;
  auto check = [&](const std::string& t, const char* what, size_t i) {
    const std::string name = std::string(what) + " " + std::to_string(i);
    if (t.empty()) throw InputError(kWhere + name + " is empty");
    std::string clean;
    if (sanitize_per_byte(t, &clean)) throw InputError(kWhere + name + " is not valid UTF-8");
    if (!seen.insert(t).second) throw InputError(kWhere + name + " " + quoted_excerpt(t) + " is listed twice");
  };
  for (size_t i = 0; i < special_tokens.size(); ++i) check(special_tokens[i], "special token", i);
  for (size_t i = 0; i < words.size(); ++i) {
    check(words[i], "word", i);
    for (size_t k = 0; k < words[i].size();)
      if (unicode::is_whitespace(utf8_next(words[i], k)))
        throw InputError(kWhere + std::string("word ") + std::to_string(i) + " " + quoted_excerpt(words[i]) +
                         " holds whitespace, which the WhitespaceSplit pre-tokenizer never leaves in a word");
  }

  // Key order as tokenizers serializes a Tokenizer and its AddedTokens.
  ojson added = ojson::array();
  for (size_t i = 0; i < special_tokens.size(); ++i) {
    ojson t = ojson::object();
    t["id"] = i;
    t["content"] = special_tokens[i];
    t["single_word"] = false;
    t["lstrip"] = false;
    t["rstrip"] = false;
    t["normalized"] = false;
    t["special"] = true;
    added.push_back(std::move(t));
  }
  ojson vocab = ojson::object();
  size_t id = 0;
  for (const std::string& s : special_tokens) vocab[s] = id++;
  for (const std::string& w : words) vocab[w] = id++;

  ojson root = ojson::object();
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  root["added_tokens"] = std::move(added);
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = ojson{{"type", "WhitespaceSplit"}};
  root["post_processor"] = nullptr;
  root["decoder"] = nullptr;
  ojson model = ojson::object();
  model["type"] = "WordLevel";
  model["vocab"] = std::move(vocab);
  model["unk_token"] = "<unk>";
  root["model"] = std::move(model);
  return root.dump(2);
}

}  // namespace rlhf
