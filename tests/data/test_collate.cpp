// Collation: exact prompt/completion seams (docs/reliability.md test 25), truncation (test 24) and
// group-preserving packing into engine batches. A toy byte tokenizer with one merge ("ab")
// stands in for BPE, and toy chat templates for Jinja ones.
#include <gtest/gtest.h>

#include <random>

#include "data/collate.h"
#include "data/collate_text.h"
#include "data/records.h"
#include "data/token_documents.h"
#include "data_test_util.h"

namespace rlhf {
namespace {

using namespace rlhf::testing;
using Ids = std::vector<int32_t>;

constexpr int32_t kBos = 1, kEos = 2, kAB = 300;

// Byte-level tokenizer: one id per byte, except "ab" -> 300 (greedy, left to right), so that a
// prompt ending in "a" and a completion starting with "b" merge across the seam.
// Ignores max_tokens: the whole encoding is a prefix that holds them.
std::vector<int32_t> toy_encode(const std::string& s, bool add_special, size_t /*max_tokens*/ = 0) {
  Ids ids;
  if (add_special) ids.push_back(kBos);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 'a' && i + 1 < s.size() && s[i + 1] == 'b') {
      ids.push_back(kAB);
      ++i;
    } else {
      ids.push_back(static_cast<unsigned char>(s[i]));
    }
  }
  return ids;
}

std::string chatml(const nlohmann::json& msgs, bool gen) {
  std::string s;
  for (const auto& m : msgs) s += "<" + m["role"].get<std::string>() + ">" + m["content"].get<std::string>() + "|";
  if (gen) s += "<assistant>";
  return s;
}

TextEncoder toy_encoder(bool with_template = true) {
  TextEncoder e;
  e.encode = toy_encode;
  if (with_template) e.render = chatml;
  e.eos_id = kEos;
  return e;
}

Text str(const std::string& s) { return Text{false, s, {}}; }
Text chat(std::vector<Message> m) { return Text{true, "", std::move(m)}; }

Ids bytes(const std::string& s) {
  Ids out;
  for (unsigned char c : s) out.push_back(c);
  return out;
}

// ---------------------------------------------------------------------------------------------
// docs/reliability.md test 25

TEST(Reliability25, MergeAcrossTheSeamFollowsTrlSplitsOrFails) {
  const TextEncoder enc = toy_encoder();
  const Text prompt = str("xa"), good = str("bc"), plain = str(" d");
  EncodeReport rep;
  // "xabc" tokenizes as x,ab,c. TRL's convention (the default): the completions start after the
  // prefix the prompt's ids share with every prompt + completion, so the merged "ab" is the
  // chosen's first completion token and the rejected's completion starts at "a".
  const TokenizedExample trl = encode_example(enc, prompt, {&good, &plain}, {}, &rep, 7);
  EXPECT_EQ(trl.prompt, (Ids{kBos, 'x'}));
  EXPECT_EQ(trl.completions[0], (Ids{kAB, 'c', kEos}));
  EXPECT_EQ(trl.completions[1], (Ids{'a', ' ', 'd', kEos}));
  EXPECT_EQ(rep.seam_mismatches, 1);
  // split: the prompt's ids stay whole and the merged completion is encoded on its own.
  ExampleEncodeOptions split;
  split.seam = SeamPolicy::split;
  const TokenizedExample ex = encode_example(enc, prompt, {&good, &plain}, split, &rep, 7);
  EXPECT_EQ(ex.prompt, (Ids{kBos, 'x', 'a'}));
  EXPECT_EQ(ex.completions[0], (Ids{'b', 'c', kEos}));
  EXPECT_EQ(ex.completions[1], (Ids{' ', 'd', kEos}));
  EXPECT_EQ(rep.seam_mismatches, 2);
  ExampleEncodeOptions strict;
  strict.seam = SeamPolicy::error;
  const std::string e = input_error([&] { encode_example(enc, prompt, {&good}, strict, nullptr, 7); });
  EXPECT_NE(e.find("line 7: the prompt's tokens are not a prefix"), std::string::npos) << e;
  EXPECT_NE(e.find("a merge crosses the seam"), std::string::npos) << e;
}

TEST(Reliability25, ChatTemplateSeamIsExact) {
  const TextEncoder enc = toy_encoder();
  const Text prompt = chat({{"user", "q"}}), c = chat({{"assistant", "bye"}});
  // TRL's convention: the rendered turn ends the completion, no EOS is appended.
  const TokenizedExample ex = encode_example(enc, prompt, {&c}, {}, nullptr);
  EXPECT_EQ(ex.prompt, bytes("<user>q|<assistant>"));
  EXPECT_EQ(ex.completions[0], bytes("bye|"));
  ExampleEncodeOptions always;
  always.eos = CompletionEos::always;
  Ids want = bytes("bye|");
  want.push_back(kEos);
  EXPECT_EQ(encode_example(enc, prompt, {&c}, always, nullptr).completions[0], want);
  // And a plain-text completion gets one unless told otherwise.
  const Text p = str("q"), s = str(" a");
  EXPECT_EQ(encode_example(enc, p, {&s}, {}, nullptr).completions[0], (Ids{' ', 'a', kEos}));
  ExampleEncodeOptions never;
  never.eos = CompletionEos::never;
  EXPECT_EQ(encode_example(enc, p, {&s}, never, nullptr).completions[0], (Ids{' ', 'a'}));
}

TEST(Reliability25, TemplateThatRewritesEarlierTurnsTrainsOnTheCommonPrefixOrFails) {
  TextEncoder enc = toy_encoder();
  // Like templates that drop earlier reasoning: the last user turn is rendered differently once
  // an assistant turn follows it.
  enc.render = [](const nlohmann::json& msgs, bool gen) {
    std::string s;
    for (size_t i = 0; i < msgs.size(); ++i) {
      const bool last_user = msgs[i]["role"] == "user" && i + 1 == msgs.size();
      s += (last_user ? "<user*>" : "<" + msgs[i]["role"].get<std::string>() + ">") + msgs[i]["content"].get<std::string>();
    }
    if (gen) s += "<assistant>";
    return s;
  };
  const Text prompt = chat({{"user", "q"}}), c = chat({{"assistant", "a"}});
  // TRL's convention: the completion starts where the renderings' tokens part, counted.
  EncodeReport rep;
  const TokenizedExample ex = encode_example(enc, prompt, {&c}, {}, &rep, 3);
  EXPECT_EQ(ex.prompt, bytes("<user"));
  EXPECT_EQ(ex.completions[0], bytes(">q<assistant>a"));
  EXPECT_EQ(rep.seam_mismatches, 1);
  // The other policies keep the rendered prompt whole, so no exact mask exists.
  ExampleEncodeOptions split;
  split.seam = SeamPolicy::split;
  const std::string e = input_error([&] { encode_example(enc, prompt, {&c}, split, nullptr, 3); });
  EXPECT_NE(e.find("line 3: the chat template renders prompt + completion so that it does not start with the rendered prompt"),
            std::string::npos)
      << e;
  // Conversations without a template, and mixed layouts, are errors too.
  EXPECT_NE(input_error([&] { encode_example(toy_encoder(false), prompt, {&c}, {}, nullptr); })
                .find("needs a chat template"),
            std::string::npos);
  const Text s = str(" x");
  EXPECT_NE(input_error([&] { encode_example(toy_encoder(), prompt, {&s}, {}, nullptr); }).find("completion is a string"),
            std::string::npos);
}

TEST(Reliability25, NoPromptTokenIsEverScored) {
  const TextEncoder enc = toy_encoder();
  std::vector<Sequence> seqs;
  CollateReport crep;
  const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> rows = {
      {"xa", {"bc", "bd"}}, {"", {"ab", "q"}}, {"hello a", {"b!", " no"}}, {"z", {"w", "ww"}}};
  for (size_t g = 0; g < rows.size(); ++g) {
    const Text p = str(rows[g].first), c = str(rows[g].second.first), r = str(rows[g].second.second);
    ExampleEncodeOptions o;
    o.add_special_tokens = g != 1;  // one example without BOS: its first completion token has no predecessor
    const TokenizedExample ex = encode_example(enc, p, {&c, &r}, o, nullptr);
    ASSERT_TRUE(truncate_example(ex, static_cast<int64_t>(g), {}, seqs, crep));
  }
  const auto batches = pack_sequences(seqs, {.seq_len = 16, .max_rows = 2});
  int64_t spans = 0;
  for (const auto& cb : batches) {
    cb.batch.validate(512, 64);
    for (const auto& sp : cb.spans) {
      ++spans;
      EXPECT_GE(sp.scored_end - sp.scored_begin, 1);
      for (int64_t k = sp.scored_begin; k < sp.scored_end; ++k) {
        const int64_t q = cb.batch.scored[k];
        const int64_t row = q / cb.batch.T, t = q % cb.batch.T;
        EXPECT_EQ(row, sp.row);
        EXPECT_GE(t, sp.start + std::max<int64_t>(sp.prompt_len, 1)) << "prompt token scored";
        EXPECT_LT(t, sp.start + sp.length);
      }
    }
  }
  EXPECT_EQ(spans, 8);
}

// ---------------------------------------------------------------------------------------------
// docs/reliability.md test 24

TokenizedExample ids_example(int64_t prompt_len, std::vector<int64_t> completion_lens) {
  TokenizedExample ex;
  for (int64_t i = 0; i < prompt_len; ++i) ex.prompt.push_back(static_cast<int32_t>(10 + i));
  for (size_t c = 0; c < completion_lens.size(); ++c) {
    Ids ids;
    for (int64_t i = 0; i < completion_lens[c]; ++i) ids.push_back(static_cast<int32_t>(100 * (c + 1) + i));
    ex.completions.push_back(ids);
  }
  return ex;
}

TEST(Reliability24, PromptFillingMaxLengthIsDroppedWithKeepStart) {
  std::vector<Sequence> out;
  CollateReport rep;
  TruncateOptions opt{.max_length = 8, .mode = TruncationMode::keep_start};
  EXPECT_FALSE(truncate_example(ids_example(8, {3, 2}), 0, opt, out, rep));
  EXPECT_FALSE(truncate_example(ids_example(9, {3, 2}), 1, opt, out, rep));
  EXPECT_EQ(rep.dropped_prompt_too_long, 2);
  EXPECT_TRUE(out.empty());
  // Prompt of 7: each side keeps exactly one completion token.
  ASSERT_TRUE(truncate_example(ids_example(7, {3, 2}), 2, opt, out, rep));
  ASSERT_EQ(out.size(), 2u);
  for (const auto& s : out) {
    EXPECT_EQ(s.size(), 8);
    EXPECT_EQ(s.prompt_len, 7);
    EXPECT_EQ(s.n_scored(), 1);
  }
  EXPECT_EQ(out[0].tokens.back(), 100);
  EXPECT_EQ(out[1].tokens.back(), 200);
  EXPECT_EQ(rep.truncated_sequences, 2);
  EXPECT_EQ(rep.kept, 1);
}

TEST(Reliability24, KeepEndCutsThePromptFromTheLeft) {
  std::vector<Sequence> out;
  CollateReport rep;
  TruncateOptions opt{.max_length = 8, .mode = TruncationMode::keep_end};
  ASSERT_TRUE(truncate_example(ids_example(10, {3, 5}), 0, opt, out, rep));
  ASSERT_EQ(out.size(), 2u);
  // chosen: last 5 prompt tokens + 3 completion tokens; rejected: last 3 + 5.
  EXPECT_EQ(out[0].tokens, (Ids{15, 16, 17, 18, 19, 100, 101, 102}));
  EXPECT_EQ(out[0].prompt_len, 5);
  EXPECT_EQ(out[1].tokens, (Ids{17, 18, 19, 200, 201, 202, 203, 204}));
  EXPECT_EQ(out[1].prompt_len, 3);
  EXPECT_EQ(rep.truncated_prompts, 1);
  EXPECT_EQ(rep.dropped_prompt_too_long, 0);
  // A completion longer than max_length keeps its end; the prompt is gone and the first kept
  // token has no predecessor, so 7 of 8 tokens are scored.
  out.clear();
  ASSERT_TRUE(truncate_example(ids_example(4, {10, 2}), 1, opt, out, rep));
  EXPECT_EQ(out[0].tokens, (Ids{102, 103, 104, 105, 106, 107, 108, 109}));
  EXPECT_EQ(out[0].prompt_len, 0);
  EXPECT_EQ(out[0].n_scored(), 7);
}

TEST(Reliability24, EveryRowKeepsACompletionTokenOnBothSides) {
  std::vector<Sequence> out;
  CollateReport rep;
  // An empty completion (no EOS appended) leaves nothing to score: the whole pair goes.
  EXPECT_FALSE(truncate_example(ids_example(3, {2, 0}), 0, {}, out, rep));
  EXPECT_EQ(rep.dropped_no_completion, 1);
  // No prompt and a one-token completion: that token has no predecessor.
  EXPECT_FALSE(truncate_example(ids_example(0, {1, 3}), 1, {}, out, rep));
  EXPECT_EQ(rep.dropped_no_completion, 2);
  EXPECT_TRUE(out.empty());
  // max_prompt_length keeps the last prompt tokens, max_completion_length the first completion ones.
  TruncateOptions opt{.max_length = 0, .max_prompt_length = 2, .max_completion_length = 3};
  ASSERT_TRUE(truncate_example(ids_example(5, {6, 1}), 2, opt, out, rep));
  EXPECT_EQ(out[0].tokens, (Ids{13, 14, 100, 101, 102}));
  EXPECT_EQ(out[1].tokens, (Ids{13, 14, 200}));
  EXPECT_EQ(rep.truncated_prompts, 1);
  EXPECT_EQ(rep.truncated_sequences, 1);
  EXPECT_NE(input_error([&] { truncate_example(ids_example(1, {1}), 3, {.max_length = 1}, out, rep); })
                .find("max_length must be at least 2"),
            std::string::npos);
  EXPECT_EQ(parse_truncation_mode("keep_end"), TruncationMode::keep_end);
  EXPECT_NE(input_error([&] { parse_truncation_mode("left"); }).find("keep_start or keep_end"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Packing

Sequence seq(int64_t group, int32_t index, int64_t len, int64_t prompt_len) {
  Sequence s;
  s.group = group;
  s.index = index;
  s.prompt_len = prompt_len;
  for (int64_t i = 0; i < len; ++i) s.tokens.push_back(static_cast<int32_t>(group * 10 + index * 5 + i + 3));
  return s;
}

// Tokenization stops where truncation cuts (with_truncation_budget), and the kept sequences are
// those of tokenizing whole rows, for every truncation setting and seam policy. The encoder
// honours max_tokens as a tokenizer may: some prefix that holds at least that many ids.
TEST(Reliability24, TokenBudgetKeepsWhatWholeRowsKeep) {
  std::mt19937 rng(11);
  size_t asked = 0, longest_returned = 0;
  TextEncoder bounded = toy_encoder();
  bounded.encode = [&](const std::string& s, bool special, size_t max_tokens) {
    Ids ids = toy_encode(s, special);
    if (max_tokens > 0 && ids.size() > max_tokens + 2) ids.resize(max_tokens + rng() % 3);
    if (max_tokens > 0) ++asked;
    longest_returned = std::max(longest_returned, ids.size());
    return ids;
  };
  const TextEncoder whole = toy_encoder();
  auto text = [&](size_t n) {
    std::string t;
    for (size_t i = 0; i < n; ++i) t += "ab xy"[rng() % 5];
    return t;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    const bool chat = trial % 3 == 0;
    const std::string p = text(rng() % 12), c = text(rng() % 40), r = text(rng() % 40);
    const Text prompt = chat ? Text{true, "", {{"user", p}}} : str(p);
    const Text chosen = chat ? Text{true, "", {{"assistant", c}}} : str(c);
    const Text rejected = chat ? Text{true, "", {{"assistant", r}}} : str(r);
    TruncateOptions t;
    t.max_length = rng() % 3 ? 2 + rng() % 30 : 0;
    t.max_prompt_length = rng() % 3 ? 0 : 1 + rng() % 8;
    t.max_completion_length = rng() % 3 ? 0 : 1 + rng() % 10;
    t.mode = rng() % 2 ? TruncationMode::keep_start : TruncationMode::keep_end;
    ExampleEncodeOptions o;
    o.seam = rng() % 2 ? SeamPolicy::common_prefix : SeamPolicy::split;
    std::vector<Sequence> want, got;
    CollateReport want_rep, got_rep;
    EncodeReport enc_rep;
    const bool kept = truncate_example(encode_example(whole, prompt, {&chosen, &rejected}, o, nullptr), 0, t, want, want_rep);
    const bool kept_b = truncate_example(
        encode_example(bounded, prompt, {&chosen, &rejected}, with_truncation_budget(o, t), &enc_rep), 0, t, got, got_rep);
    ASSERT_EQ(kept, kept_b) << trial;
    ASSERT_EQ(want.size(), got.size()) << trial;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(want[i].tokens, got[i].tokens) << trial;
      ASSERT_EQ(want[i].prompt_len, got[i].prompt_len) << trial;
    }
    ASSERT_EQ(want_rep.to_json(), got_rep.to_json()) << trial;
  }
  EXPECT_GT(asked, 1000u);
  EXPECT_LT(longest_returned, 80u);  // a bounded encode returned a cut prefix where it could
}

TEST(Packing, PairsStayTogetherFirstFit) {
  // Lengths: g0 3+4, g1 5+2, g2 6+6; rows of 8, two rows per batch.
  const std::vector<Sequence> seqs = {seq(0, 0, 3, 1), seq(0, 1, 4, 1), seq(1, 0, 5, 2),
                                      seq(1, 1, 2, 1), seq(2, 0, 6, 3), seq(2, 1, 6, 3)};
  const auto batches = pack_sequences(seqs, {.seq_len = 8, .max_rows = 2, .pad_id = 0});
  ASSERT_EQ(batches.size(), 2u);
  const Batch& b0 = batches[0].batch;
  EXPECT_EQ(b0.B, 2);
  EXPECT_EQ(b0.T, 8);
  // row 0: g0c [0,3) g0r [3,7) pad [7,8); row 1: g1c [0,5) g1r [5,7) pad [7,8)
  EXPECT_EQ(b0.tokens, (Ids{3, 4, 5, 8, 9, 10, 11, 0, 13, 14, 15, 16, 17, 18, 19, 0}));
  EXPECT_EQ(b0.positions, (Ids{0, 1, 2, 0, 1, 2, 3, 0, 0, 1, 2, 3, 4, 0, 1, 0}));
  EXPECT_EQ(b0.seg_start, (Ids{0, 0, 0, 3, 3, 3, 3, 7, 0, 0, 0, 0, 0, 5, 5, 7}));
  // Scored: completion tokens with a predecessor (index >= max(prompt_len, 1)).
  EXPECT_EQ(b0.scored, (std::vector<int64_t>{1, 2, 4, 5, 6, 10, 11, 12, 14}));
  ASSERT_EQ(batches[0].spans.size(), 4u);
  const auto& s = batches[0].spans;
  EXPECT_EQ(s[0].group, 0);
  EXPECT_EQ(s[1].index, 1);
  EXPECT_EQ(s[1].start, 3);
  EXPECT_EQ(s[2].row, 1);
  EXPECT_EQ(s[0].scored_begin, 0);
  EXPECT_EQ(s[0].scored_end, 2);
  EXPECT_EQ(s[1].scored_begin, 2);
  EXPECT_EQ(s[1].scored_end, 5);
  EXPECT_EQ(s[2].scored_begin, 5);
  EXPECT_EQ(s[2].scored_end, 8);
  EXPECT_EQ(s[3].scored_begin, 8);
  EXPECT_EQ(s[3].scored_end, 9);
  EXPECT_EQ(batches[0].real_tokens, 14);
  // The third pair needs both rows of a fresh batch.
  const auto& s1 = batches[1].spans;
  ASSERT_EQ(s1.size(), 2u);
  EXPECT_EQ(s1[0].row, 0);
  EXPECT_EQ(s1[1].row, 1);
  EXPECT_EQ(batches[1].batch.scored, (std::vector<int64_t>{3, 4, 5, 11, 12, 13}));
  b0.validate(256, 8);
  batches[1].batch.validate(256, 8);
}

TEST(Packing, WithoutPackingOneSequencePerRowAndHeads) {
  const std::vector<Sequence> seqs = {seq(0, 0, 3, 1), seq(0, 1, 5, 1), seq(1, 0, 2, 1), seq(1, 1, 2, 1)};
  const auto batches =
      pack_sequences(seqs, {.seq_len = 16, .max_rows = 4, .packing = false, .pad_multiple = 4, .head_at_last = true});
  ASSERT_EQ(batches.size(), 1u);
  const Batch& b = batches[0].batch;
  EXPECT_EQ(b.B, 4);
  EXPECT_EQ(b.T, 8);  // longest 5, rounded up to a multiple of 4
  EXPECT_EQ(b.head_at, (std::vector<int64_t>{2, 8 + 4, 16 + 1, 24 + 1}));
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(batches[0].spans[i].head, static_cast<int64_t>(i));
  b.validate(256, 8);
}

TEST(Packing, ErrorsNameTheProblem) {
  EXPECT_NE(input_error([] { pack_sequences({seq(0, 0, 9, 1)}, {.seq_len = 8, .max_rows = 2}); })
                .find("longer than the row length 8"),
            std::string::npos);
  EXPECT_NE(input_error([] {
              pack_sequences({seq(4, 0, 6, 1), seq(4, 1, 6, 1), seq(4, 2, 6, 1)}, {.seq_len = 8, .max_rows = 2});
            }).find("group 4 (3 sequences) does not fit into one batch"),
            std::string::npos);
}

TEST(Packing, PackDocumentsStillCutsLongDocuments) {
  const auto rows = pack_documents({{1, 2, 3, 4, 5}, {6, 7}}, 4, 0);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].tokens, (Ids{1, 2, 3, 4}));
  EXPECT_EQ(rows[1].tokens, (Ids{5, 6, 7, 0}));
  EXPECT_EQ(rows[1].seg_start, (Ids{0, 1, 1, 3}));
  EXPECT_EQ(rows[1].scored, (std::vector<uint8_t>{0, 0, 1, 0}));
}

TEST(Collate, EndToEndFromPreferenceRecords) {
  const fs::path p = write_file(scratch_dir() / "x.jsonl",
                                R"({"prompt":"q: xa","chosen":"b ok","rejected":" no"})" "\n"
                                R"({"prompt":[{"role":"user","content":"hi"}],"chosen":[{"role":"assistant","content":"yo"}],"rejected":[{"role":"assistant","content":"go"}]})" "\n");
  const auto recs = read_preferences(p);
  ASSERT_EQ(recs.size(), 2u);
  const TextEncoder enc = toy_encoder();
  EncodeReport erep;
  CollateReport crep;
  std::vector<Sequence> seqs;
  for (size_t i = 0; i < recs.size(); ++i) {
    const auto ex = encode_example(enc, recs[i].prompt, {&recs[i].chosen, &recs[i].rejected}, {}, &erep, recs[i].line);
    truncate_example(ex, static_cast<int64_t>(i), {.max_length = 32}, seqs, crep);
  }
  EXPECT_EQ(erep.seam_mismatches, 1);  // "xa" + "b ok" merges
  EXPECT_EQ(crep.kept, 2);
  const auto batches = pack_sequences(seqs, {.seq_len = 32, .max_rows = 3});
  ASSERT_EQ(batches.size(), 1u);
  auto scored = [&](size_t span) {
    const auto& sp = batches[0].spans[span];
    Ids ids;
    for (int64_t k = sp.scored_begin; k < sp.scored_end; ++k) ids.push_back(batches[0].batch.tokens[batches[0].batch.scored[k]]);
    return ids;
  };
  // Pair 0: the merged "ab" + " ok" + EOS, and the rejected from the prompt's "a"; pair 1's
  // chat turns end as rendered.
  EXPECT_EQ(scored(0), (Ids{kAB, ' ', 'o', 'k', kEos}));
  EXPECT_EQ(scored(1), (Ids{'a', ' ', 'n', 'o', kEos}));
  EXPECT_EQ(scored(2), bytes("yo|"));
}

TEST(Reliability25, RealBpeSeamIsExact) {
  const Tokenizer tok = Tokenizer::load(fs::path(RLHF_FIXTURES_DIR) / "text/tokenizers/gpt2");
  const TextEncoder enc = text_encoder(tok);
  ASSERT_TRUE(enc.eos_id.has_value());
  // Seams inside a word force the fallback; seams at a space do not.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"The weather is wonder", "ful today."}, {"Hello wor", "ld"}, {"The sky is", " blue."}};
  EncodeReport rep;
  for (const SeamPolicy seam : {SeamPolicy::common_prefix, SeamPolicy::split}) {
    ExampleEncodeOptions o;
    o.seam = seam;
    for (const auto& [p, c] : cases) {
      const Text prompt = str(p), completion = str(c);
      const TokenizedExample ex = encode_example(enc, prompt, {&completion}, o, &rep);
      Ids comp = ex.completions[0];
      ASSERT_EQ(comp.back(), *enc.eos_id);
      comp.pop_back();
      if (seam == SeamPolicy::split) {  // the loss covers exactly the completion text
        EXPECT_EQ(ex.prompt, tok.encode(p));
        EXPECT_EQ(tok.decode(comp), c) << p << "|" << c;
      } else {  // TRL: the tokens of prompt + completion, cut where the prompt's own tokens part
        Ids whole = ex.prompt;
        whole.insert(whole.end(), comp.begin(), comp.end());
        EXPECT_EQ(whole, tok.encode(p + c));
        EXPECT_EQ(tok.decode(ex.prompt) + tok.decode(comp), p + c);
        EXPECT_LE(ex.prompt.size(), tok.encode(p).size());
      }
    }
  }
  EXPECT_EQ(rep.seam_mismatches % 2, 0);  // the same seams mismatch under both policies
  EXPECT_GE(rep.seam_mismatches, 2);
  EXPECT_LE(rep.seam_mismatches, 4);
  EXPECT_EQ(token_length(tok, "The sky is blue."), static_cast<int64_t>(tok.encode("The sky is blue.").size()));
}

TEST(Reliability25, RealChatTemplateSeamAndRewriteError) {
  const fs::path dir = fs::path(RLHF_FIXTURES_DIR) / "text";
  const Tokenizer tok = Tokenizer::load(dir / "tokenizers/gpt2");
  const ChatTemplate chatml = ChatTemplate::parse(read_file(dir / "chat_templates/chatml.jinja"), "chatml");
  const TextEncoder enc = text_encoder(tok, chatml);
  const Text prompt = chat({{"system", "Be brief."}, {"user", "Is 7 prime?"}});
  const Text c = chat({{"assistant", "Yes."}}), r = chat({{"assistant", "No, 7 = 2 x 3."}});
  const TokenizedExample ex = encode_example(enc, prompt, {&c, &r}, {}, nullptr);
  EXPECT_EQ(tok.decode(ex.prompt),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(tok.decode(ex.completions[0]), "Yes.<|im_end|>\n");  // no EOS after the rendered turn
  // A template that marks the final user turn renders it differently once a reply follows.
  const ChatTemplate rewrite = ChatTemplate::parse(
      "{% for m in messages %}{% if loop.last and m['role'] == 'user' %}[LAST]{% endif %}{{ m['role'] }}: "
      "{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
      "rewrite");
  const TextEncoder bad = text_encoder(tok, rewrite);
  ExampleEncodeOptions split;
  split.seam = SeamPolicy::split;
  EXPECT_NE(input_error([&] { encode_example(bad, prompt, {&c}, split, nullptr, 5); }).find("line 5: the chat template renders"),
            std::string::npos);
}

}  // namespace
}  // namespace rlhf
