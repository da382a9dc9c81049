// Dataset readers: JSONL robustness (docs/reliability.md tests 21–23), every supported layout, and
// compressed inputs.
#include <gtest/gtest.h>

#include "data/jsonl.h"
#include "data/records.h"
#include "data_test_util.h"

namespace rlhf {
namespace {

using namespace rlhf::testing;

const std::string kGood = R"({"prompt":"p","chosen":" a","rejected":" b"})";

// ---------------------------------------------------------------------------------------------
// docs/reliability.md test 21: bad lines -> file:line:column

TEST(Reliability21, TruncatedJsonNamesFileLineColumn) {
  const fs::path p = write_file(scratch_dir() / "t.jsonl", kGood + "\n" + R"({"prompt":"p","chosen":" a")" + "\n");
  const std::string e = input_error([&] { read_preferences(p); });
  EXPECT_NE(e.find(p.string() + ":2:28: invalid JSON"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected end of input"), std::string::npos) << e;
}

TEST(Reliability21, ByteOrderMarkAtFileStartIsSkipped) {
  const fs::path p = write_file(scratch_dir() / "bom.jsonl", "\xEF\xBB\xBF" + kGood + "\n" + kGood + "\n");
  ReadReport rep;
  const auto rows = read_preferences(p, {}, &rep);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].prompt.text, "p");
  EXPECT_EQ(rows[0].line, 1);
  // A BOM anywhere else is not JSON.
  const fs::path q = write_file(scratch_dir() / "bom2.jsonl", kGood + "\n\xEF\xBB\xBF" + kGood + "\n");
  const std::string e = input_error([&] { read_preferences(q); });
  EXPECT_NE(e.find(q.string() + ":2:1: UTF-8 byte order mark inside the file"), std::string::npos) << e;
}

TEST(Reliability21, NulByteNamesItsColumn) {
  std::string line = R"({"prompt":"p)";
  line += '\0';
  line += R"(","chosen":" a","rejected":" b"})";
  const fs::path p = write_file(scratch_dir() / "nul.jsonl", kGood + "\n" + line + "\n");
  const std::string e = input_error([&] { read_preferences(p); });
  EXPECT_NE(e.find(p.string() + ":2:13: NUL byte"), std::string::npos) << e;
}

TEST(Reliability21, NumberBeyondADoubleNamesItsColumn) {
  const std::string line = R"({"prompt":"p","chosen":" a","rejected":" b","margin":1e999})";
  const fs::path p = write_file(scratch_dir() / "overflow.jsonl", kGood + "\n" + line + "\n");
  const std::string e = input_error([&] { read_preferences(p); });
  EXPECT_NE(e.find(p.string() + ":2:54: number out of range of a double"), std::string::npos) << e;
  EXPECT_NE(e.find("1e999"), std::string::npos) << e;
}

TEST(Reliability21, InvalidUtf8NamesItsColumn) {
  const std::string bad = std::string(R"({"prompt":"caf)") + "\xE9" + R"(","chosen":" a","rejected":" b"})";
  const fs::path p = write_file(scratch_dir() / "latin1.jsonl", bad + "\n");
  const std::string e = input_error([&] { read_preferences(p); });
  EXPECT_NE(e.find(p.string() + ":1:15: invalid UTF-8 (byte 0xe9)"), std::string::npos) << e;
  // Overlong encodings and encoded surrogates are invalid too.
  EXPECT_EQ(find_invalid_utf8("ab\xC0\xAF"), 2u);
  EXPECT_EQ(find_invalid_utf8("\xED\xA0\x80"), 0u);
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);
  EXPECT_EQ(find_invalid_utf8("ok \xE2\x82\xAC \xF0\x9F\x98\x80"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("\xE2\x82"), 0u);  // truncated sequence
}

TEST(Reliability21, ArrayOrScalarLineIsNotAnObject) {
  const fs::path p = write_file(scratch_dir() / "arr.jsonl", kGood + "\n\n  []\n");
  const std::string e = input_error([&] { read_preferences(p); });
  EXPECT_NE(e.find(p.string() + ":3:3: expected a JSON object per line, got array"), std::string::npos) << e;
  const fs::path q = write_file(scratch_dir() / "num.jsonl", "42\n");
  EXPECT_NE(input_error([&] { read_preferences(q); }).find(":1:1: expected a JSON object per line, got number"),
            std::string::npos);
}

TEST(Reliability21, SkipModeCountsAndCapsSkippedRows) {
  const std::string text = kGood + "\n[]\n{\"prompt\":\n" + kGood + "\n" + R"({"prompt":"p","chosen":3,"rejected":"x"})" + "\n";
  const fs::path p = write_file(scratch_dir() / "mixed.jsonl", text);
  ReadOptions opt;
  opt.skip_bad_rows = true;
  ReadReport rep;
  const auto rows = read_preferences(p, opt, &rep);
  EXPECT_EQ(rows.size(), 2u);
  EXPECT_EQ(rep.rows, 5);
  EXPECT_EQ(rep.kept, 2);
  EXPECT_EQ(rep.skipped_bad, 3);
  ASSERT_EQ(rep.first_errors.size(), 3u);
  EXPECT_NE(rep.first_errors[0].find(":2:1:"), std::string::npos);
  EXPECT_NE(rep.first_errors[1].find(":3:"), std::string::npos);
  EXPECT_NE(rep.first_errors[2].find(":5: field 'chosen'"), std::string::npos);
  EXPECT_EQ(rows[1].line, 4);
  // More than max_skipped bad rows: fail anyway, naming the cap.
  opt.max_skipped = 2;
  const std::string e = input_error([&] { read_preferences(p, opt); });
  EXPECT_NE(e.find("more than --max-skipped 2"), std::string::npos) << e;
  EXPECT_NE(e.find(":5: field 'chosen'"), std::string::npos) << e;
}

TEST(Reliability21, OverlongLineIsABadRow) {
  const std::string big = R"({"prompt":")" + std::string(5000, 'x') + R"(","chosen":" a","rejected":" b"})";
  const fs::path p = write_file(scratch_dir() / "long.jsonl", kGood + "\n" + big + "\n" + kGood + "\n");
  ReadOptions opt;
  opt.max_line_bytes = 1000;
  EXPECT_NE(input_error([&] { read_preferences(p, opt); }).find(":2:1: line longer than 1000 bytes"), std::string::npos);
  opt.skip_bad_rows = true;
  ReadReport rep;
  EXPECT_EQ(read_preferences(p, opt, &rep).size(), 2u);
  EXPECT_EQ(rep.skipped_bad, 1);
}

TEST(Jsonl, CrlfAndMissingFinalNewline) {
  const fs::path p = write_file(scratch_dir() / "crlf.jsonl", kGood + "\r\n" + kGood);
  const auto rows = read_preferences(p);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].line, 2);
  EXPECT_EQ(rows[1].rejected.text, " b");
}

// ---------------------------------------------------------------------------------------------
// docs/reliability.md test 22: missing / mistyped / null fields

TEST(Reliability22, MissingPromptNumericChosenNullRejected) {
  const fs::path d = scratch_dir();
  const fs::path u = write_file(d / "u.jsonl", "\n" + std::string(R"({"completion":" a","label":true})") + "\n");
  EXPECT_EQ(input_error([&] { read_unpaired(u); }),
            u.string() + ":2: field 'prompt': missing (expected a string or a list of messages)");
  const fs::path q = write_file(d / "q.jsonl", R"({"id":1})" "\n");
  EXPECT_EQ(input_error([&] { read_prompts(q); }),
            q.string() + ":1: field 'prompt': missing (expected a string or a list of messages)");
  const fs::path c = write_file(d / "c.jsonl", kGood + "\n" + R"({"prompt":"p","chosen":1.5,"rejected":" b"})" + "\n");
  EXPECT_EQ(input_error([&] { read_preferences(c); }),
            c.string() + ":2: field 'chosen': expected a string or a list of messages, got number");
  const fs::path r = write_file(d / "r.jsonl", R"({"prompt":"p","chosen":" a","rejected":null})" "\n");
  EXPECT_EQ(input_error([&] { read_preferences(r); }),
            r.string() + ":1: field 'rejected': expected a string or a list of messages, got null");
  const fs::path m = write_file(d / "m.jsonl", R"({"prompt":"p","rejected":" b"})" "\n");
  EXPECT_EQ(input_error([&] { read_preferences(m); }),
            m.string() + ":1: field 'chosen': missing (expected a string or a list of messages)");
  // A null prompt is not an empty prompt.
  const fs::path n = write_file(d / "n.jsonl", R"({"prompt":null,"chosen":" a","rejected":" b"})" "\n");
  EXPECT_EQ(input_error([&] { read_preferences(n); }),
            n.string() + ":1: field 'prompt': expected a string or a list of messages, got null");
}

TEST(Reliability22, MessageFieldsAreChecked) {
  const fs::path d = scratch_dir();
  const fs::path a = write_file(
      d / "a.jsonl", R"({"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":null}],"rejected":[{"role":"assistant","content":"x"}]})" "\n");
  EXPECT_EQ(input_error([&] { read_preferences(a); }), a.string() + ":1: field 'chosen[0].content': expected a string, got null");
  const fs::path b = write_file(d / "b.jsonl", R"({"messages":[{"from":"human","value":"hi"}]})" "\n");
  EXPECT_NE(input_error([&] { read_sft(b); }).find("field 'messages[0]': ShareGPT-style"), std::string::npos);
  const fs::path c = write_file(d / "c.jsonl", R"({"prompt":"q","completion":" a","label":"yes"})" "\n");
  EXPECT_EQ(input_error([&] { read_unpaired(c); }), c.string() + ":1: field 'label': expected a boolean, got string");
  const fs::path r = write_file(d / "r.jsonl", R"({"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"wizard","content":"a"}],"rejected":[{"role":"assistant","content":"x"}]})" "\n");
  EXPECT_EQ(input_error([&] { read_preferences(r); }),
            r.string() + ":1: field 'chosen[0].role': unknown role 'wizard' (expected system, developer, user, "
                         "assistant, tool or ipython)");
  const fs::path e = write_file(d / "e.jsonl", R"({"prompt":[{"role":"user","content":"q"}],"chosen":" a","rejected":" b"})" "\n");
  EXPECT_NE(input_error([&] { read_preferences(e); }).find("field 'chosen': expected a list of messages like 'prompt'"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// docs/reliability.md test 23: degenerate rows

TEST(Reliability23, EmptyWhitespaceAndIdenticalPairsAreDroppedAndCounted) {
  const std::string text = kGood + "\n" + R"({"prompt":"p","chosen":"","rejected":" b"})" + "\n" +
                           R"({"prompt":"p","chosen":" a","rejected":" \n\t "})" + "\n" +
                           R"({"prompt":"p","chosen":" same","rejected":" same"})" + "\n" +
                           R"({"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"  "}],"rejected":[{"role":"assistant","content":"x"}]})" + "\n";
  const fs::path p = write_file(scratch_dir() / "deg.jsonl", text);
  ReadReport rep;
  const auto rows = read_preferences(p, {}, &rep);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rep.dropped_empty, 3);
  EXPECT_EQ(rep.dropped_identical, 1);
  EXPECT_EQ(rep.kept, 1);
  for (const auto& r : rows) {
    EXPECT_FALSE(text_blank(r.chosen));
    EXPECT_FALSE(text_blank(r.rejected));
    EXPECT_FALSE(r.chosen == r.rejected);
  }
  ReadOptions strict;
  strict.drop_degenerate = false;
  EXPECT_EQ(input_error([&] { read_preferences(p, strict); }),
            p.string() + ":2: field 'chosen': empty or whitespace-only completion");
  strict.skip_bad_rows = true;
  ReadReport rep2;
  EXPECT_EQ(read_preferences(p, strict, &rep2).size(), 1u);
  EXPECT_EQ(rep2.skipped_bad, 4);
  EXPECT_NE(rep2.first_errors[2].find(":4: chosen and rejected are identical"), std::string::npos);
  // Unpaired and SFT rows too.
  const fs::path u = write_file(scratch_dir() / "u.jsonl", R"({"prompt":"q","completion":"  ","label":false})" "\n");
  ReadReport rep3;
  EXPECT_TRUE(read_unpaired(u, {}, &rep3).empty());
  EXPECT_EQ(rep3.dropped_empty, 1);
  const fs::path s = write_file(scratch_dir() / "s.jsonl", R"({"text":""})" "\n" R"({"text":"x"})" "\n");
  ReadReport rep4;
  EXPECT_EQ(read_sft(s, {}, &rep4).size(), 1u);
  EXPECT_EQ(rep4.dropped_empty, 1);
}

// ---------------------------------------------------------------------------------------------
// Layouts

TEST(Layouts, TrlStandardExplicitWithMarginAndScores) {
  const fs::path p = write_file(
      scratch_dir() / "x.jsonl",
      R"({"prompt":"The sky is","chosen":" blue.","rejected":" green.","margin":2.0,"score_chosen":8.0,"score_rejected":null})" "\n");
  const auto r = read_preferences(p);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prompt.text, "The sky is");
  EXPECT_EQ(r[0].chosen.text, " blue.");
  EXPECT_EQ(*r[0].margin, 2.0);
  EXPECT_EQ(*r[0].score_chosen, 8.0);
  EXPECT_FALSE(r[0].score_rejected.has_value());
  EXPECT_EQ(preference_to_json(r[0]).dump(),
            R"({"prompt":"The sky is","chosen":" blue.","rejected":" green.","score_chosen":8.0,"margin":2.0})");
}

TEST(Layouts, TrlConversationalExplicit) {
  const fs::path p = write_file(
      scratch_dir() / "x.jsonl",
      R"({"prompt":[{"role":"user","content":"Is 7 prime?"}],"chosen":[{"content":"Yes.","role":"assistant"}],"rejected":[{"role":"assistant","content":"No, 7 = 2 \u00d7 3."}]})" "\n");
  const auto r = read_preferences(p);
  ASSERT_EQ(r.size(), 1u);
  ASSERT_TRUE(r[0].prompt.is_chat);
  EXPECT_EQ(r[0].prompt.messages, (std::vector<Message>{{"user", "Is 7 prime?"}}));
  EXPECT_EQ(r[0].chosen.messages, (std::vector<Message>{{"assistant", "Yes."}}));
  EXPECT_EQ(r[0].rejected.messages[0].content, "No, 7 = 2 \xC3\x97 3.");
}

TEST(Layouts, ImplicitPromptStandardFollowsTrlExtractPrompt) {
  const fs::path p = write_file(scratch_dir() / "x.jsonl",
                                R"({"chosen":"The sky is blue.","rejected":"The sky is green."})" "\n"
                                R"({"chosen":"abc","rejected":"abcdef"})" "\n"
                                R"({"chosen":"caf\u00e9 noir","rejected":"caf\u00e8 noir"})" "\n");
  const auto r = read_preferences(p);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].prompt.text, "The sky is");  // backed off before the space
  EXPECT_EQ(r[0].chosen.text, " blue.");
  EXPECT_EQ(r[0].rejected.text, " green.");
  EXPECT_EQ(r[1].prompt.text, "ab");  // one is a prefix of the other: all but the last character
  EXPECT_EQ(r[1].chosen.text, "c");
  EXPECT_EQ(r[1].rejected.text, "cdef");
  EXPECT_EQ(r[2].prompt.text, "caf");  // never splits a UTF-8 character
  EXPECT_EQ(r[2].chosen.text, "\xC3\xA9 noir");
}

TEST(Layouts, ImplicitPromptConversational) {
  const fs::path p = write_file(
      scratch_dir() / "x.jsonl",
      R"({"chosen":[{"role":"user","content":"What color is the sky?"},{"role":"assistant","content":"It is blue."}],"rejected":[{"role":"user","content":"What color is the sky?"},{"role":"assistant","content":"It is green."}]})" "\n");
  const auto r = read_preferences(p);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prompt.messages, (std::vector<Message>{{"user", "What color is the sky?"}}));
  EXPECT_EQ(r[0].chosen.messages, (std::vector<Message>{{"assistant", "It is blue."}}));
  EXPECT_EQ(r[0].rejected.messages, (std::vector<Message>{{"assistant", "It is green."}}));
}

TEST(Layouts, UltraFeedbackBinarizedH4) {
  const fs::path p = write_file(
      scratch_dir() / "x.jsonl",
      R"({"prompt":"Suggest a name for a grey cat.","prompt_id":"3e07","chosen":[{"content":"Suggest a name for a grey cat.","role":"user"},{"content":"Smokey, Ash or Pebble.","role":"assistant"}],"rejected":[{"content":"Suggest a name for a grey cat.","role":"user"},{"content":"Cats are mammals.","role":"assistant"}],"messages":[{"content":"Suggest a name for a grey cat.","role":"user"},{"content":"Smokey, Ash or Pebble.","role":"assistant"}],"score_chosen":8.5,"score_rejected":4.0})" "\n");
  ReadReport rep;
  const auto r = read_preferences(p, {}, &rep);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prompt.messages, (std::vector<Message>{{"user", "Suggest a name for a grey cat."}}));
  EXPECT_EQ(r[0].chosen.messages, (std::vector<Message>{{"assistant", "Smokey, Ash or Pebble."}}));
  EXPECT_EQ(*r[0].score_chosen, 8.5);
  EXPECT_EQ(*r[0].score_rejected, 4.0);
  EXPECT_EQ(rep.notes["prompt_from_conversations"], 1);
}

TEST(Layouts, ArgillaBinarizedAndCleaned) {
  const fs::path p = write_file(
      scratch_dir() / "x.jsonl",
      R"({"source":"flan","instruction":"Name a mammal that lays eggs.","chosen_response":"The platypus.","rejected_response":"The bat.","chosen_avg_rating":4.75,"rejected_avg_rating":1.67,"chosen_model":"m"})" "\n"
      R"({"source":"flan","prompt":"Q?","chosen":[{"role":"user","content":"Q?"},{"role":"assistant","content":"A."}],"chosen-rating":5.0,"chosen-model":"m","rejected":[{"role":"user","content":"Q?"},{"role":"assistant","content":"B."}],"rejected-rating":2.5,"rejected-model":"n"})" "\n");
  const auto r = read_preferences(p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].prompt.text, "Name a mammal that lays eggs.");
  EXPECT_EQ(r[0].chosen.text, "The platypus.");
  EXPECT_EQ(*r[0].score_chosen, 4.75);
  EXPECT_EQ(*r[0].score_rejected, 1.67);
  EXPECT_EQ(r[1].prompt.messages[0].content, "Q?");
  EXPECT_EQ(r[1].chosen.messages, (std::vector<Message>{{"assistant", "A."}}));
  EXPECT_EQ(*r[1].score_chosen, 5.0);
  EXPECT_EQ(*r[1].score_rejected, 2.5);
}

TEST(Layouts, HhRlhfTranscripts) {
  const std::string row1 =
      R"({"chosen":"\n\nHuman: How do I keep basil fresh?\n\nAssistant: Trim the stems and stand them in water.","rejected":"\n\nHuman: How do I keep basil fresh?\n\nAssistant: Freeze it whole."})";
  // Two turns, differing in the last reply only where the first reply is shared.
  const std::string row2 =
      R"({"chosen":"\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Joke?\n\nAssistant: Sure: puns.","rejected":"\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Joke?\n\nAssistant: No."})";
  // Diverges before the last turn.
  const std::string row3 =
      R"({"chosen":"\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant: Bye.","rejected":"\n\nHuman: Hi\n\nAssistant: Go away.\n\nHuman: Bye\n\nAssistant: Bye."})";
  const fs::path p = write_file(scratch_dir() / "hh.jsonl", row1 + "\n" + row2 + "\n" + row3 + "\n");
  ReadReport rep;
  const auto r = read_preferences(p, {}, &rep);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].prompt.text, "\n\nHuman: How do I keep basil fresh?\n\nAssistant:");
  EXPECT_EQ(r[0].chosen.text, " Trim the stems and stand them in water.");
  EXPECT_EQ(r[0].rejected.text, " Freeze it whole.");
  EXPECT_EQ(r[1].prompt.text, "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Joke?\n\nAssistant:");
  EXPECT_EQ(r[1].chosen.text, " Sure: puns.");
  EXPECT_EQ(r[2].prompt.text, "\n\nHuman: Hi\n\nAssistant:");
  EXPECT_EQ(r[2].chosen.text, " Hello!\n\nHuman: Bye\n\nAssistant: Bye.");
  EXPECT_EQ(rep.notes["hh_diverged_early"], 1);

  ReadOptions chat;
  chat.hh_as_messages = true;
  const auto m = read_preferences(p, chat);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[1].prompt.messages,
            (std::vector<Message>{{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Joke?"}}));
  EXPECT_EQ(m[1].chosen.messages, (std::vector<Message>{{"assistant", "Sure: puns."}}));
  EXPECT_EQ(m[2].chosen.messages,
            (std::vector<Message>{{"assistant", "Hello!"}, {"user", "Bye"}, {"assistant", "Bye."}}));
}

TEST(Layouts, ShpHelpSteer2AndTldr) {
  const fs::path p = write_file(
      scratch_dir() / "x.jsonl",
      R"({"post_id":"x1","domain":"askbaking_train","upvote_ratio":0.97,"history":"Why did my bread collapse?","c_root_id_A":"a","c_root_id_B":"b","created_at_utc_A":1,"created_at_utc_B":2,"score_A":12,"score_B":30,"human_ref_A":"Oven too cold.","human_ref_B":"It over-proofed.","labels":0,"seconds_difference":600.0,"score_ratio":2.5})" "\n"
      R"({"split":"train","prompt":"Define entropy.","response_1":"Entropy is heat.","response_2":"Entropy counts microstates.","preference_strength":2})" "\n"
      R"({"split":"train","prompt":"Tie?","response_1":"a","response_2":"b","preference_strength":0})" "\n"
      R"({"split":"train","prompt":"Define x.","response_1":"good","response_2":"bad","preference_strength":-3})" "\n"
      R"({"info":{"id":"t3","post":"My roommate never does dishes.","title":"Chores?","subreddit":"relationships","site":null,"article":null},"summaries":[{"text":" Roommate skips dishes.","policy":"a","note":null},{"text":" I like dishes.","policy":"b","note":null}],"choice":0,"worker":"w","batch":"b7","split":"train","extra":{"confidence":7}})" "\n");
  ReadReport rep;
  const auto r = read_preferences(p, {}, &rep);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].prompt.text, "Why did my bread collapse?");
  EXPECT_EQ(r[0].chosen.text, "It over-proofed.");  // labels 0 = B preferred
  EXPECT_EQ(*r[0].score_chosen, 30);
  EXPECT_EQ(*r[0].score_rejected, 12);
  EXPECT_EQ(r[1].chosen.text, "Entropy counts microstates.");  // strength > 0: response_2
  EXPECT_EQ(r[2].chosen.text, "good");                          // strength < 0: response_1
  EXPECT_EQ(rep.notes["dropped_tie"], 1);
  EXPECT_EQ(r[3].prompt.text,
            "SUBREDDIT: r/relationships\n\nTITLE: Chores?\n\nPOST: My roommate never does dishes.\n\nTL;DR:");
  EXPECT_EQ(r[3].chosen.text, " Roommate skips dishes.");
  EXPECT_EQ(r[3].rejected.text, " I like dishes.");
}

TEST(Layouts, PandasEscapesAreDecoded) {
  const fs::path p = write_file(scratch_dir() / "x.jsonl",
                                R"({"prompt":"caf\u00e9 \ud83d\ude00 a\/b","chosen":" \u4e2d","rejected":" x"})" "\n");
  const auto r = read_preferences(p);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prompt.text, "caf\xC3\xA9 \xF0\x9F\x98\x80 a/b");
  EXPECT_EQ(r[0].chosen.text, " \xE4\xB8\xAD");
  const fs::path q = write_file(scratch_dir() / "lone.jsonl", R"({"prompt":"\ud83d x","chosen":" a","rejected":" b"})" "\n");
  EXPECT_NE(input_error([&] { read_preferences(q); }).find(q.string() + ":1:"), std::string::npos);
}

TEST(Layouts, ColumnOverrides) {
  const fs::path p = write_file(scratch_dir() / "x.jsonl", R"({"question":"Q","good":" a","bad":" b","m":1.5})" "\n");
  ReadOptions opt;
  opt.columns = {{"prompt", "question"}, {"chosen", "good"}, {"rejected", "bad"}, {"margin", "m"}};
  const auto r = read_preferences(p, opt);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prompt.text, "Q");
  EXPECT_EQ(r[0].chosen.text, " a");
  EXPECT_EQ(*r[0].margin, 1.5);
  const fs::path q = write_file(scratch_dir() / "y.jsonl", R"({"question":"Q","good":3,"bad":" b"})" "\n");
  EXPECT_EQ(input_error([&] { read_preferences(q, opt); }),
            q.string() + ":1: field 'good': expected a string or a list of messages, got number");
  // Prompt-only data with the text under another column, the rest kept in `extra`.
  const fs::path t = write_file(scratch_dir() / "t.jsonl", R"({"type":"Adversarial","question":"Do goldfish forget?","best_answer":"No."})" "\n");
  ReadOptions po;
  po.columns = {{"prompt", "question"}};
  const auto pr = read_prompts(t, po);
  ASSERT_EQ(pr.size(), 1u);
  EXPECT_EQ(pr[0].prompt.text, "Do goldfish forget?");
  EXPECT_EQ(pr[0].extra.dump(), R"({"best_answer":"No.","type":"Adversarial"})");
}

TEST(Layouts, SftKinds) {
  const fs::path p = write_file(scratch_dir() / "x.jsonl",
                                R"({"text":"The sky is blue."})" "\n"
                                R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})" "\n"
                                R"({"prompt":"The capital of Peru is","completion":" Lima."})" "\n");
  const auto r = read_sft(p);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_FALSE(r[0].prompt.has_value());
  EXPECT_EQ(r[0].completion.text, "The sky is blue.");
  EXPECT_TRUE(r[1].completion.is_chat);
  EXPECT_EQ(r[1].completion.messages.size(), 2u);
  EXPECT_EQ(r[2].prompt->text, "The capital of Peru is");
  EXPECT_EQ(r[2].completion.text, " Lima.");
  const fs::path q = write_file(scratch_dir() / "y.jsonl", R"({"messages":"hello"})" "\n");
  EXPECT_EQ(input_error([&] { read_sft(q); }), q.string() + ":1: field 'messages': expected a list of messages, got string");
  const fs::path z = write_file(scratch_dir() / "z.jsonl", R"({"foo":1})" "\n");
  EXPECT_NE(input_error([&] { read_sft(z); }).find("expected 'text', 'messages', or 'prompt' + 'completion'"),
            std::string::npos);
}

TEST(Layouts, Unpaired) {
  const fs::path p = write_file(scratch_dir() / "x.jsonl",
                                R"({"prompt":"The capital of Peru is","completion":" Lima.","label":true})" "\n"
                                R"({"prompt":[{"role":"user","content":"q"}],"completion":[{"role":"assistant","content":"a"}],"label":false})" "\n");
  const auto r = read_unpaired(p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].label);
  EXPECT_FALSE(r[1].label);
  EXPECT_TRUE(r[1].completion.is_chat);
}

TEST(Layouts, RankedGenericScoresAndRanking) {
  const fs::path p = write_file(scratch_dir() / "x.jsonl",
                                R"({"prompt":"q","completions":[" a"," b"," c"],"scores":[1.0,null,3]})" "\n"
                                R"({"prompt":"q","completions":[" a"," b"," c"],"ranking":[2,0,1]})" "\n"
                                R"({"prompt":"q","completions":[" a","  "," c"],"ranking":[1,2,0]})" "\n"
                                R"({"prompt":"q","completions":[" a"," b"],"rewards":[true,false]})" "\n");
  ReadReport rep;
  const auto r = read_ranked(p, {}, &rep);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].completions.size(), 2u);  // the unscored completion is dropped
  EXPECT_EQ(r[0].scores, (std::vector<double>{1.0, 3.0}));
  EXPECT_EQ(r[1].ranking, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_TRUE(r[1].scores.empty());
  EXPECT_EQ(r[2].ranking, (std::vector<int64_t>{1, 0}));  // blank completion dropped, indices remapped
  EXPECT_EQ(r[3].scores, (std::vector<double>{1.0, 0.0}));
  EXPECT_EQ(rep.notes["unscored_completions"], 1);
  EXPECT_EQ(rep.notes["empty_completions"], 1);
  const fs::path q = write_file(scratch_dir() / "y.jsonl", R"({"prompt":"q","completions":[" a"," b"],"ranking":[0,0]})" "\n");
  EXPECT_NE(input_error([&] { read_ranked(q); }).find("field 'ranking': expected a permutation of 0..1"), std::string::npos);
  const fs::path z = write_file(scratch_dir() / "z.jsonl", R"({"prompt":"q","completions":[" a"," b"],"scores":[1]})" "\n");
  EXPECT_NE(input_error([&] { read_ranked(z); }).find("field 'scores': expected a list of 2 numbers"), std::string::npos);
}

std::string uf_completion(const std::string& response, const std::string& h, const std::string& o,
                          const std::string& f, const std::string& t, const std::string& overall,
                          const std::string& fine, const char* if_key = "instruction_following") {
  return R"({"annotations":{"helpfulness":{"Rating":")" + h + R"(","Rationale":"r","Rationale For Rating":"r","Type":["1"]},"honesty":{"Rating":")" + o +
         R"(","Rationale":"r"},")" + if_key + R"(":{"Rating":")" + f + R"(","Rationale":"r"},"truthfulness":{"Rating":")" + t +
         R"(","Rationale":"r","Rationale For Rating":"r","Type":["0"]}},"critique":"c","custom_system_prompt":"s","fine-grained_score":)" +
         fine + R"(,"model":"m","overall_score":)" + overall + R"(,"principle":"helpfulness","response":")" + response + R"("})";
}

TEST(Layouts, UltraFeedbackRawScoreFields) {
  const std::string row = R"({"source":"flan","instruction":"Name a mammal that lays eggs.","models":["a","b","c"],"completions":[)" +
                          uf_completion("The platypus.", "4", "5", "5", "5", "8.0", "4.75") + "," +
                          uf_completion("The bat.", "1", "N/A", "3", "1", "2.0", "1.6666666667", "instruction-following") + "," +
                          uf_completion("Echidna.", "N/A", "N/A", "N/A", "N/A", "null", "null") +
                          R"(],"correct_answers":["None"],"incorrect_answers":["None"]})";
  const fs::path p = write_file(scratch_dir() / "uf.jsonl", row + "\n");
  ReadReport rep;
  auto r = read_ranked(p, {}, &rep);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prompt.text, "Name a mammal that lays eggs.");
  ASSERT_EQ(r[0].completions.size(), 2u);  // null overall_score: unscored
  EXPECT_EQ(r[0].scores, (std::vector<double>{8.0, 2.0}));
  EXPECT_EQ(rep.notes["unscored_completions"], 1);
  ReadOptions fine;
  fine.score_field = "fine-grained_score";
  r = read_ranked(p, fine);
  EXPECT_EQ(r[0].scores, (std::vector<double>{4.75, 1.6666666667}));
  ReadOptions mean;
  mean.score_field = "mean";
  r = read_ranked(p, mean);
  ASSERT_EQ(r[0].scores.size(), 2u);  // all four N/A: unscored
  EXPECT_DOUBLE_EQ(r[0].scores[0], 4.75);
  EXPECT_DOUBLE_EQ(r[0].scores[1], 5.0 / 3.0);  // "N/A" excluded, hyphenated key accepted
}

TEST(Layouts, NectarRanks) {
  const fs::path p = write_file(
      scratch_dir() / "n.jsonl",
      R"({"prompt":"\n\nHuman: Give me a synonym for fast.\n\nAssistant: ","answers":[{"answer":"Slow.","model":"c","rank":3.0},{"answer":"Quick.","model":"a","rank":1},{"answer":"Rapid.","model":"b","rank":2.0}],"turns":1,"num_responses":3,"source":["sharegpt"],"good_natured":true})" "\n");
  const auto r = read_ranked(p);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].ranking, (std::vector<int64_t>{1, 2, 0}));
  EXPECT_EQ(r[0].completions[1].text, "Quick.");
}

// ---------------------------------------------------------------------------------------------
// Compressed inputs

TEST(Compressed, GzipAndZstdInputs) {
  const fs::path d = scratch_dir();
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += R"({"prompt":"p)" + std::to_string(i) + R"(","chosen":" a","rejected":" b"})" "\n";
  const fs::path gz = write_gzip(d / "x.jsonl.gz", text);
  const fs::path zs = write_file(d / "x.jsonl.zst", zstd_bytes(text));
  for (const fs::path& p : {gz, zs}) {
    ReadReport rep;
    const auto r = read_preferences(p, {}, &rep);
    ASSERT_EQ(r.size(), 2000u) << p;
    EXPECT_EQ(r[1999].prompt.text, "p1999");
    EXPECT_EQ(r[1999].line, 2000);
  }
  LineReader g(gz), z(zs);
  EXPECT_EQ(g.compression(), Compression::gzip);
  EXPECT_EQ(z.compression(), Compression::zstd);
  // Errors in compressed files name the physical line too.
  const std::string bad = kGood + "\n" + kGood + "\n[]\n";
  const fs::path gzb = write_gzip(d / "bad.jsonl.gz", bad);
  EXPECT_NE(input_error([&] { read_preferences(gzb); }).find("bad.jsonl.gz:3:1: expected a JSON object"), std::string::npos);
  const fs::path zsb = write_file(d / "bad.jsonl.zst", zstd_bytes(bad));
  EXPECT_NE(input_error([&] { read_preferences(zsb); }).find("bad.jsonl.zst:3:1: expected a JSON object"), std::string::npos);
}

TEST(Compressed, TruncatedAndMislabelledFiles) {
  const fs::path d = scratch_dir();
  std::string text;
  for (int i = 0; i < 500; ++i) text += kGood + "\n";
  const std::string z = zstd_bytes(text);
  const fs::path zt = write_file(d / "cut.jsonl.zst", z.substr(0, z.size() / 2));
  EXPECT_NE(input_error([&] { read_preferences(zt); }).find("cut.jsonl.zst: truncated zstd data"), std::string::npos);
  write_gzip(d / "full.gz", text);
  const std::string g = read_file(d / "full.gz");
  const fs::path gt = write_file(d / "cut.jsonl.gz", g.substr(0, g.size() / 2));
  EXPECT_NE(input_error([&] { read_preferences(gt); }).find("cut.jsonl.gz: corrupt or truncated gzip data"), std::string::npos);
  const fs::path lie = write_file(d / "plain.jsonl.gz", kGood + "\n");
  EXPECT_NE(input_error([&] { read_preferences(lie); }).find("the extension says gzip"), std::string::npos);
  const fs::path bz = write_file(d / "x.jsonl.bz2", "BZh91AY");
  EXPECT_NE(input_error([&] { read_preferences(bz); }).find("bzip2 files are not supported"), std::string::npos);
  EXPECT_THROW(read_preferences(d / "missing.jsonl"), IoError);
}

TEST(Compressed, WriterRoundTripsPlainGzipZstd) {
  const fs::path d = scratch_dir();
  for (const char* name : {"o.jsonl", "o.jsonl.gz", "o.jsonl.zst"}) {
    {
      JsonlWriter w(d / name);
      for (int i = 0; i < 300; ++i) w.write(nlohmann::ordered_json{{"prompt", "p" + std::to_string(i)}, {"chosen", " \xC3\xA9"}, {"rejected", " b"}});
      EXPECT_FALSE(fs::exists(d / name));  // only the temporary exists until close()
      w.close();
    }
    EXPECT_FALSE(fs::exists(d / (std::string(name) + ".tmp")));
    const auto r = read_preferences(d / name);
    ASSERT_EQ(r.size(), 300u) << name;
    EXPECT_EQ(r[299].prompt.text, "p299");
    EXPECT_EQ(r[0].chosen.text, " \xC3\xA9");
  }
  {
    JsonlWriter w(d / "abandoned.jsonl");
    w.write_line("{}");
  }
  EXPECT_FALSE(fs::exists(d / "abandoned.jsonl"));
  EXPECT_FALSE(fs::exists(d / "abandoned.jsonl.tmp"));
}

}  // namespace
}  // namespace rlhf
