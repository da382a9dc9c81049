// WordLevel tokenizers (one token per word, the testbed's tiny models): parity with Hugging Face
// `tokenizers` on tests/fixtures/text/wordlevel/ (reference/make_wordlevel_fixture.py: ids with
// and without special tokens, special-token text as plain text, decode with and without
// skip_special_tokens, an unknown word without unk), the WhitespaceSplit and Whitespace
// pre-tokenizers, and word_level_tokenizer_json: it writes the file `tokenizers` saves for the
// same words, and a model directory made with it loads with its eos / pad tokens.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tensor/error.h"
#include "text/tokenizer.h"

namespace rlhf {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kDir = fs::path(RLHF_FIXTURES_DIR) / "text" / "wordlevel";

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f.good()) << p;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const json& expected() {
  static const json e = json::parse(read_file(kDir / "expected.json"));
  return e;
}

std::vector<std::string> strings(const json& a) { return a.get<std::vector<std::string>>(); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// Every text and id list of expected.json's record `rec`, through `tok`.
void check_against_fixture(const Tokenizer& tok, const json& rec, const std::string& name) {
  const EncodeOptions plain{.add_special_tokens = false}, with_special{.add_special_tokens = true};
  const EncodeOptions as_text{.add_special_tokens = false, .parse_special_tokens = false};
  for (const json& r : rec["texts"]) {
    const std::string text = r["text"];
    SCOPED_TRACE(name + ": " + json(text).dump());
    if (r.contains("error")) {
      // tokenizers: "WordLevel error: Missing [UNK] token from the vocabulary"; ours names the word.
      const std::string msg = error_of([&] { tok.encode(text, plain); });
      EXPECT_NE(msg.find("WordLevel model: '"), std::string::npos) << msg;
      EXPECT_NE(msg.find("is not in the vocabulary, and neither is its unk_token '<unk>'"), std::string::npos) << msg;
      continue;
    }
    const auto ids = r["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(text, plain), ids);
    EXPECT_EQ(tok.encode(text, with_special), r["ids_special"].get<std::vector<int32_t>>());
    if (r.contains("ids_plain")) EXPECT_EQ(tok.encode(text, as_text), r["ids_plain"].get<std::vector<int32_t>>());
    else EXPECT_THROW(tok.encode(text, as_text), InputError);
    EXPECT_EQ(tok.decode(ids), r["decoded"].get<std::string>());
    EXPECT_EQ(tok.decode(ids, {.skip_special_tokens = true}), r["decoded_skip"].get<std::string>());
  }
  for (const json& d : rec["decode"]) {
    const auto ids = d["ids"].get<std::vector<int32_t>>();
    SCOPED_TRACE(name + ": decode " + d["ids"].dump());
    EXPECT_EQ(tok.decode(ids), d["decoded"].get<std::string>());
    EXPECT_EQ(tok.decode(ids, {.skip_special_tokens = true}), d["decoded_skip"].get<std::string>());
  }
}

TEST(WordLevel, MatchesHuggingFaceTokenizers) {
  for (const char* name : {"tokenizer.json", "tokenizer-whitespace.json", "tokenizer-no-unk.json"}) {
    const Tokenizer tok = Tokenizer::load(kDir / name);
    check_against_fixture(tok, expected()["tokenizers"][name], name);
  }
}

TEST(WordLevel, VocabularyAndSpecialTokens) {
  const Tokenizer tok = Tokenizer::load(kDir / "tokenizer.json");
  const auto words = strings(expected()["words"]);
  const auto specials = strings(expected()["specials"]);
  EXPECT_EQ(tok.vocab_size(), static_cast<int64_t>(words.size() + specials.size()));
  for (size_t i = 0; i < specials.size(); ++i) {
    EXPECT_EQ(tok.token_to_id(specials[i]), static_cast<int32_t>(i));
    EXPECT_TRUE(tok.is_special(static_cast<int32_t>(i)));
  }
  for (size_t i = 0; i < words.size(); ++i) {
    const auto id = static_cast<int32_t>(specials.size() + i);
    EXPECT_EQ(tok.id_to_token(id), words[i]);
    EXPECT_FALSE(tok.is_special(id));
  }
  // One token per word, whatever the whitespace between words.
  EXPECT_EQ(tok.encode("the cat"), tok.encode("\n the\t\tcat \r\n"));
}

TEST(WordLevel, UnknownWordWithoutUnkIsAnErrorNamingTheWord) {
  const Tokenizer tok = Tokenizer::load(kDir / "tokenizer-no-unk.json");
  const std::string msg = error_of([&] { tok.encode("the zebra sat"); });
  EXPECT_NE(msg.find("tokenizer-no-unk.json: WordLevel model: 'zebra' is not in the vocabulary"), std::string::npos)
      << msg;
  // A very long word is cut in the message.
  const std::string long_msg = error_of([&] { tok.encode(std::string(5000, 'z')); });
  EXPECT_NE(long_msg.find("...' (5000 bytes)"), std::string::npos) << long_msg;
  EXPECT_LT(long_msg.size(), 400u);
  // Known words and special tokens still encode.
  EXPECT_EQ(tok.encode("the <eos>"), (std::vector<int32_t>{2, 1}));
}

TEST(WordLevel, HelperWritesWhatTokenizersSaves) {
  const auto words = strings(expected()["words"]);
  for (const auto& [specials_key, file] : {std::pair<const char*, const char*>{"specials", "tokenizer.json"},
                                          {"no_unk_specials", "tokenizer-no-unk.json"}}) {
    SCOPED_TRACE(file);
    const std::string ours = word_level_tokenizer_json(words, strings(expected()[specials_key]));
    const std::string theirs = read_file(kDir / file);
    EXPECT_EQ(json::parse(ours), json::parse(theirs));
    EXPECT_EQ(ours, theirs);  // byte for byte, key order and layout included
    // And it round-trips through our loader.
    const Tokenizer tok = Tokenizer::from_json_text(ours, "helper");
    check_against_fixture(tok, expected()["tokenizers"][file], std::string("helper ") + file);
  }
}

TEST(WordLevel, HelperModelDirectoryLoadsWithEosAndPad) {
  const fs::path dir = fs::temp_directory_path() / ("rlhf_wordlevel_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "tokenizer.json") << word_level_tokenizer_json({"yes", "no"}, {"<pad>", "<eos>", "<unk>"});
    std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "<eos>", "pad_token": "<pad>"})";
  }
  const Tokenizer tok = Tokenizer::load(dir);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.encode("yes no maybe<eos>"), (std::vector<int32_t>{3, 4, 2, 1}));
  EXPECT_EQ(tok.decode({3, 4, 1, 0, 0}, {.skip_special_tokens = true}), "yes no");
  EXPECT_EQ(tok.decode({3, 4, 1}), "yes no <eos>");
  fs::remove_all(dir);
}

TEST(WordLevel, HelperRejectsBadWordLists) {
  auto msg = [](std::vector<std::string> words, std::vector<std::string> specials) {
    return error_of([&] { word_level_tokenizer_json(words, specials); });
  };
  EXPECT_NE(msg({"a", "b", "a"}, {"<pad>"}).find("word 2 'a' is listed twice"), std::string::npos);
  EXPECT_NE(msg({"<pad>"}, {"<pad>"}).find("word 0 '<pad>' is listed twice"), std::string::npos);
  EXPECT_NE(msg({"a", ""}, {}).find("word 1 is empty"), std::string::npos);
  EXPECT_NE(msg({"a"}, {""}).find("special token 0 is empty"), std::string::npos);
  EXPECT_NE(msg({"a b"}, {}).find("word 0 'a b' holds whitespace"), std::string::npos);
  EXPECT_NE(msg({"a\xC2\xA0" "b"}, {}).find("holds whitespace"), std::string::npos);  // U+00A0
  EXPECT_NE(msg({"a\xFF"}, {}).find("word 0 is not valid UTF-8"), std::string::npos);
  // Special tokens may hold spaces: they are matched before pre-tokenization.
  const Tokenizer tok = Tokenizer::from_json_text(word_level_tokenizer_json({"a"}, {"<unk>", "[END OF TEXT]"}), "t");
  EXPECT_EQ(tok.encode("a[END OF TEXT] b"), (std::vector<int32_t>{2, 1, 0}));
}

TEST(WordLevel, LoaderErrors) {
  json t = json::parse(read_file(kDir / "tokenizer.json"));
  auto load_error = [](const json& j) { return error_of([&] { Tokenizer::from_json_text(j.dump(), "tokenizer.json"); }); };
  json u = t;
  u["model"].erase("unk_token");  // tokenizers: "missing field `unk_token`"
  EXPECT_NE(load_error(u).find("tokenizer.json: model.unk_token: missing"), std::string::npos) << load_error(u);
  u = t;
  u["model"]["unk_token"] = nullptr;
  EXPECT_NE(load_error(u).find("model.unk_token: expected a string"), std::string::npos) << load_error(u);
  u = t;
  u["model"]["vocab"]["dog"] = 3;  // "the" has id 3 too
  EXPECT_NE(load_error(u).find("model.vocab: id 3 is used by both"), std::string::npos) << load_error(u);
  u = t;
  u["pre_tokenizer"] = {{"type", "ByteLevel"}};
  EXPECT_NE(load_error(u).find("a ByteLevel pre-tokenizer with a WordLevel model is not supported"), std::string::npos)
      << load_error(u);
  u = t;
  u["model"]["type"] = "WordPiece";
  EXPECT_NE(load_error(u).find("model.type: 'WordPiece' is not supported"), std::string::npos) << load_error(u);
  // An unk_token outside the vocabulary loads (as in tokenizers); only unknown words fail.
  u = t;
  u["model"]["unk_token"] = "[UNK]";
  const Tokenizer tok = Tokenizer::from_json_text(u.dump(), "tokenizer.json");
  EXPECT_EQ(tok.encode("the cat"), (std::vector<int32_t>{3, 4}));
  EXPECT_THROW(tok.encode("the zebra"), InputError);
}

TEST(WordLevel, WhitespacePreTokenizerSequenceAndNoPreTokenizer) {
  json t = json::parse(read_file(kDir / "tokenizer.json"));
  // Whitespace inside a Sequence takes the general pre-tokenizer path: same pieces.
  json seq = t;
  seq["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}};
  const Tokenizer a = Tokenizer::from_json_text(seq.dump(), "seq");
  const Tokenizer b = Tokenizer::load(kDir / "tokenizer-whitespace.json");
  for (const char* s : {"cat, dog. hello!", "hello!!! world?!", "a\xE2\x92\xB6 the,,", "it's\t42_x", ""})
    EXPECT_EQ(a.encode(s), b.encode(s)) << s;
  // No pre-tokenizer: the whole text is one word.
  json none = t;
  none["pre_tokenizer"] = nullptr;
  const Tokenizer c = Tokenizer::from_json_text(none.dump(), "none");
  EXPECT_EQ(c.encode("the"), (std::vector<int32_t>{3}));
  EXPECT_EQ(c.encode("the cat"), (std::vector<int32_t>{2}));
  EXPECT_EQ(c.encode("the<eos>cat"), (std::vector<int32_t>{3, 1, 4}));
}

}  // namespace
}  // namespace rlhf
