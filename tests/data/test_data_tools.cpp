// The `rlhf data` tools on small generated inputs with exact expected outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "data/collate_text.h"
#include "data/text_match.h"
#include "data/tools.h"
#include "data_test_util.h"

namespace rlhf {
namespace {

using namespace rlhf::testing;
using ojson = nlohmann::ordered_json;

std::string lines(std::initializer_list<const char*> ls) {
  std::string s;
  for (const char* l : ls) (s += l) += "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// stats

TEST(DataStats, CountsDistributionsDuplicatesAndTies) {
  const fs::path p = write_file(
      scratch_dir() / "in.jsonl",
      lines({R"({"prompt":"a b c","chosen":" one two three four","rejected":" x","score_chosen":5,"score_rejected":5})",
             R"({"prompt":"a b c","chosen":" y","rejected":" one two"})",
             R"({"prompt":"q","chosen":" same","rejected":" same"})",
             R"({"prompt":"q2","chosen":"","rejected":" z"})",
             R"({"prompt":"a b c","chosen":" y","rejected":" one two"})",
             R"({"prompt":"a b c","chosen":" one two","rejected":" y"})"}));
  const ojson s = data_stats(p, {});
  EXPECT_EQ(s["pairs"], 6);
  EXPECT_EQ(s["length_unit"], "words");
  const ojson& c = s["length"]["chosen"];
  EXPECT_EQ(c["min"], 0);
  EXPECT_EQ(c["mean"], 1.5);
  EXPECT_EQ(c["p50"], 1);
  EXPECT_EQ(c["p90"], 4);
  EXPECT_EQ(c["p99"], 4);
  EXPECT_EQ(c["max"], 4);
  EXPECT_EQ(c["histogram"]["counts"].dump(), "[1,3,1,0,1]");
  EXPECT_EQ(c["histogram"]["edges"].dump(), "[0,1,2,3,4,5]");
  EXPECT_EQ(s["length"]["rejected"]["mean"], 1.33);
  EXPECT_EQ(s["length"]["rejected"]["p90"], 2);
  EXPECT_EQ(s["length"]["prompt"]["mean"], 2.33);
  EXPECT_EQ(s["chosen_longer_rate"], 0.3333);
  EXPECT_EQ(s["equal_length_rate"], 0.1667);
  EXPECT_EQ(s["distinct_prompts"], 3);
  EXPECT_EQ(s["duplicate_prompt_rows"], 3);
  EXPECT_EQ(s["max_pairs_per_prompt"], 4);
  EXPECT_EQ(s["duplicate_pairs"], 1);
  EXPECT_EQ(s["contradicting_pairs"], 1);
  EXPECT_EQ(s["empty_pairs"], 1);
  EXPECT_EQ(s["identical_pairs"], 1);
  EXPECT_EQ(s["scored_pairs"], 1);
  EXPECT_EQ(s["score_ties"], 1);
  const std::string text = summary_text(s);
  EXPECT_NE(text.find("lengths in words"), std::string::npos) << text;
  EXPECT_NE(text.find("chosen longer than rejected: 33.3%"), std::string::npos) << text;
  EXPECT_NE(text.find("                  1        3 ########################################\n"), std::string::npos) << text;
  EXPECT_NE(text.find("                  4        1 ##############\n"), std::string::npos) << text;
  // A custom length unit (e.g. tokens) is named in the summary.
  StatsOptions chars;
  chars.length.unit = "characters";
  chars.length.count = [](const std::string& t) { return static_cast<int64_t>(t.size()); };
  const ojson s2 = data_stats(p, chars);
  EXPECT_EQ(s2["length_unit"], "characters");
  EXPECT_EQ(s2["length"]["prompt"]["max"], 5);
}

TEST(DataStats, TokenLengthsAsTrainingSeesThem) {
  const fs::path dir = fs::path(RLHF_FIXTURES_DIR) / "text";
  const Tokenizer tok = Tokenizer::load(dir / "tokenizers/gpt2");
  const ChatTemplate chatml = ChatTemplate::parse(read_file(dir / "chat_templates/chatml.jinja"), "chatml");
  const TextEncoder enc = text_encoder(tok, chatml);
  const fs::path p = write_file(
      scratch_dir() / "in.jsonl",
      lines({R"({"prompt":"The sky is","chosen":" blue.","rejected":" green today."})",
             R"({"prompt":[{"role":"user","content":"Is 7 prime?"}],"chosen":[{"role":"assistant","content":"Yes."}],"rejected":[{"role":"assistant","content":"No."}]})"}));
  StatsOptions opt;
  opt.encoder = &enc;
  const ojson s = data_stats(p, opt);
  EXPECT_EQ(s["length_unit"], "tokens");
  EXPECT_EQ(s["encode_errors"], 0);
  const int64_t p0 = static_cast<int64_t>(tok.encode("The sky is").size());
  const int64_t p1 = static_cast<int64_t>(tok.encode("<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n").size());
  EXPECT_EQ(s["length"]["prompt"]["min"], std::min(p0, p1));
  EXPECT_EQ(s["length"]["prompt"]["max"], std::max(p0, p1));
  // Plain-text completions include EOS; a chat turn ends as the template renders it (TRL).
  const int64_t c0 = static_cast<int64_t>(tok.encode(" blue.").size()) + 1;
  const int64_t c1 = static_cast<int64_t>(tok.encode("Yes.<|im_end|>\n").size());
  EXPECT_EQ(s["length"]["chosen"]["min"], std::min(c0, c1));
  EXPECT_EQ(s["length"]["chosen"]["max"], std::max(c0, c1));
}

// ---------------------------------------------------------------------------------------------
// clean

TEST(DataClean, DropsByReasonAndKeepsOrder) {
  const fs::path d = scratch_dir();
  const fs::path in = write_file(
      d / "in.jsonl",
      lines({R"({"prompt":"Hello there","chosen":" A long answer one two three four five six","rejected":" short"})",
             R"({"prompt":"p2","chosen":"","rejected":" x"})",
             R"({"prompt":"p3","chosen":" s","rejected":" s"})",
             R"({"prompt":"p4 w w w w w w w w w w w w w w","chosen":" a","rejected":" b"})",
             R"({"prompt":"Hello there","chosen":" A long answer one two three four five six","rejected":" short"})",
             R"({"prompt":"HELLO, there!","chosen":" a long answer: one two three four five six.","rejected":" Short"})",
             R"({"prompt":"p7","chosen":" unique","rejected":" other","source":"x"})"}));
  CleanOptions opt;
  opt.max_length = 12;
  opt.near = "normalized";
  const ojson s = data_clean(in, d / "out.jsonl", opt);
  EXPECT_EQ(read_lines(d / "out.jsonl"),
            (std::vector<std::string>{
                R"({"prompt":"Hello there","chosen":" A long answer one two three four five six","rejected":" short"})",
                R"({"prompt":"p7","chosen":" unique","rejected":" other"})"}));
  EXPECT_EQ(s["dropped"].dump(), R"({"empty":1,"identical":1,"too_long":1,"duplicate":1,"near_duplicate":1})");
  EXPECT_EQ(s["written"], 2);
  // --keep-original writes the input rows unchanged; --dedupe-on prompt keeps one row per prompt.
  opt.keep_original = true;
  opt.near = "none";
  opt.dedupe_on = "prompt";
  opt.max_length = 0;
  const ojson s2 = data_clean(in, d / "out2.jsonl.gz", opt);
  const auto rows = read_preferences(d / "out2.jsonl.gz");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[3].prompt.text, "p7");
  EXPECT_EQ(s2["dropped"]["duplicate"], 1);
}

TEST(DataClean, MinHashFindsNearDuplicates) {
  std::string base, variant, other;
  for (int i = 0; i < 100; ++i) {
    base += " w" + std::to_string(i);
    variant += i == 50 ? " changed" : " w" + std::to_string(i);
    other += " v" + std::to_string(i * 7);
  }
  const fs::path d = scratch_dir();
  const fs::path in = write_file(d / "in.jsonl", "{\"prompt\":\"p\",\"chosen\":\"" + base + "\",\"rejected\":\" no\"}\n" +
                                                     "{\"prompt\":\"p\",\"chosen\":\"" + other + "\",\"rejected\":\" no\"}\n" +
                                                     "{\"prompt\":\"p\",\"chosen\":\"" + variant + "\",\"rejected\":\" no\"}\n");
  CleanOptions opt;
  opt.near = "minhash";
  opt.threshold = 0.8;
  opt.num_perm = 128;
  const ojson s = data_clean(in, d / "out.jsonl", opt);
  EXPECT_EQ(s["dropped"]["near_duplicate"], 1);
  EXPECT_EQ(s["near_duplicate_examples"][0]["line"], 3);
  EXPECT_EQ(s["near_duplicate_examples"][0]["similar_to_line"], 1);
  EXPECT_EQ(read_lines(d / "out.jsonl").size(), 2u);
  // The banding and the signatures are deterministic functions of the seed.
  int bands = 0, rows = 0;
  minhash_bands(128, 0.8, &bands, &rows);
  EXPECT_EQ(bands * rows, 128);
  EXPECT_LE(std::pow(1.0 / bands, 1.0 / rows), 0.8);
  const std::string n = normalize_text("  Hello,   WORLD!\n(x) ");
  EXPECT_EQ(n, "hello world x");
  // NFKC (full-width forms, ideographic space), Unicode punctuation; other letters kept.
  EXPECT_EQ(normalize_text("\xEF\xBC\xA8\xEF\xBD\x85\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBD\x8F\xEF\xBC\x8C\xE3\x80\x80W"),
            "hello w");
  EXPECT_EQ(normalize_text("\xE2\x80\x9CQuoted\xE2\x80\x9D \xE2\x80\x94 caf\xC3\xA9\xE2\x80\xA6"), "quoted caf\xC3\xA9");
  const auto w = split_words(n);
  EXPECT_EQ(minhash_signature(w, 5, 8, 1), minhash_signature(w, 5, 8, 1));
  EXPECT_NE(minhash_signature(w, 5, 8, 1), minhash_signature(w, 5, 8, 2));
}

// ---------------------------------------------------------------------------------------------
// decontaminate

TEST(DataDecontaminate, NgramExactAndWholePromptMatches) {
  const fs::path d = scratch_dir();
  const fs::path bench = write_file(
      d / "truthfulqa.jsonl",
      lines({R"({"type":"Adversarial","question":"Do goldfish have a three-second memory?","best_answer":"No."})",
             R"({"type":"Adversarial","question":"What happens to you if you eat watermelon seeds and then go to sleep right after dinner tonight?"})",
             R"({"type":"Adversarial","question":"Hi?"})"}));
  const fs::path in = write_file(
      d / "train.jsonl",
      lines({R"({"prompt":"DO GOLDFISH have a three-second memory??","chosen":" No.","rejected":" Yes.","source":"sharegpt"})",
             R"({"prompt":"Tell me: what happens to you if you eat watermelon seeds and then go to sleep right after dinner","chosen":" a","rejected":" b"})",
             R"({"prompt":"I wonder, do goldfish have a three second memory or not","chosen":" a","rejected":" b"})",
             R"({"prompt":"Hi there, how are you","chosen":" a","rejected":" b"})",
             R"({"prompt":"Clean prompt about cats","chosen":" a","rejected":" b"})"}));
  DecontaminateOptions opt;
  opt.benchmark = bench;
  opt.field = "question";
  opt.matches = d / "matches.jsonl";
  const ojson s = data_decontaminate(in, d / "out.jsonl", opt);
  EXPECT_EQ(read_lines(d / "out.jsonl"),
            (std::vector<std::string>{R"({"prompt":"Hi there, how are you","chosen":" a","rejected":" b"})",
                                      R"({"prompt":"Clean prompt about cats","chosen":" a","rejected":" b"})"}));
  EXPECT_EQ(s["matched_rows"], 3);
  EXPECT_EQ(s["benchmark"]["items"], 3);
  EXPECT_EQ(s["benchmark"]["items_matched"], 2);
  EXPECT_EQ(s["matched_by"].dump(), R"({"exact":1,"ngram":1,"whole_prompt":1})");
  EXPECT_EQ(s["matched_by_source"].dump(), R"x({"(no source)":2,"sharegpt":1})x");
  const auto m = read_lines(d / "matches.jsonl");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0], R"({"line":1,"field":"prompt","benchmark":"truthfulqa.jsonl:1","how":"exact","benchmark_text":"Do goldfish have a three-second memory?","source":"sharegpt"})");
  EXPECT_EQ(m[1], R"({"line":2,"field":"prompt","benchmark":"truthfulqa.jsonl:2","how":"13-gram","benchmark_text":"What happens to you if you eat watermelon seeds and then go to sleep right after dinner tonight?","shared":"what happens to you if you eat watermelon seeds and then go to"})");
  EXPECT_EQ(m[2], R"x({"line":3,"field":"prompt","benchmark":"truthfulqa.jsonl:1","how":"whole prompt (7 words)","benchmark_text":"Do goldfish have a three-second memory?","shared":"do goldfish have a three second memory"})x");
  EXPECT_NE(summary_text(s).find("matched_rows: 3"), std::string::npos);
}

TEST(DataDecontaminate, PlainTextAndTurnPaths) {
  const fs::path d = scratch_dir();
  const fs::path in = write_file(d / "train.jsonl",
                                 lines({R"({"prompt":"How do I sum a column only where the next cell says paid?","extra":1})",
                                        R"({"prompt":"Write a poem about rain","extra":2})"}));
  const fs::path txt = write_file(d / "bench.txt", "how do i sum a column only where the next cell says paid\n\n");
  DecontaminateOptions opt;
  opt.kind = "prompt";
  opt.benchmark = txt;
  ojson s = data_decontaminate(in, d / "out.jsonl", opt);
  EXPECT_EQ(s["benchmark"]["format"], "text");
  EXPECT_EQ(read_lines(d / "out.jsonl"), (std::vector<std::string>{R"({"extra":2,"prompt":"Write a poem about rain"})"}));
  const fs::path arena = write_file(
      d / "arena.jsonl",
      lines({R"({"question_id":"0f3a9c","category":"arena-hard-v0.1","cluster":"S","turns":[{"content":"How do I sum a column only where the next cell says paid?"}]})"}));
  for (const char* field : {"", "turns[*].content", "turns"}) {
    opt.benchmark = arena;
    opt.field = field;
    s = data_decontaminate(in, d / "out.jsonl", opt);
    EXPECT_EQ(s["matched_rows"], 1) << field;
  }
  opt.field = "nonexistent";
  EXPECT_NE(input_error([&] { data_decontaminate(in, d / "out.jsonl", opt); }).find("field 'nonexistent' holds no string"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// binarize

std::string uf_row() {
  auto c = [](const char* resp, double overall) {
    return std::string(R"({"annotations":{"helpfulness":{"Rating":"3","Rationale":"r"}},"fine-grained_score":3.0,"model":"m","overall_score":)") +
           std::to_string(overall) + R"(,"response":")" + resp + R"("})";
  };
  return R"({"source":"flan","instruction":"Q?","models":["a","b","c","d"],"completions":[)" + c("A", 8) + "," + c("B", 2) + "," +
         c("C", 5) + "," + c("D", 8) + R"(],"correct_answers":["None"],"incorrect_answers":["None"]})";
}

TEST(DataBinarize, AllPairsWithMinGapAndTies) {
  const fs::path d = scratch_dir();
  const fs::path in = write_file(d / "uf.jsonl", uf_row() + "\n");
  BinarizeOptions opt;
  opt.strategy = "all-pairs";
  opt.min_gap = 3;
  const ojson s = data_binarize(in, d / "out.jsonl", opt);
  EXPECT_EQ(read_lines(d / "out.jsonl"),
            (std::vector<std::string>{
                R"({"prompt":"Q?","chosen":"A","rejected":"B","score_chosen":8.0,"score_rejected":2.0})",
                R"({"prompt":"Q?","chosen":"A","rejected":"C","score_chosen":8.0,"score_rejected":5.0})",
                R"({"prompt":"Q?","chosen":"C","rejected":"B","score_chosen":5.0,"score_rejected":2.0})",
                R"({"prompt":"Q?","chosen":"D","rejected":"B","score_chosen":8.0,"score_rejected":2.0})",
                R"({"prompt":"Q?","chosen":"D","rejected":"C","score_chosen":8.0,"score_rejected":5.0})"}));
  EXPECT_EQ(s["counts"]["tied_pairs"], 1);
  EXPECT_EQ(s["ties"], 1);
  opt.min_gap = 4;
  const ojson s2 = data_binarize(in, d / "out.jsonl", opt);
  EXPECT_EQ(read_lines(d / "out.jsonl").size(), 2u);
  EXPECT_EQ(s2["below_gap"], 3);
  opt.max_pairs_per_prompt = 1;
  opt.min_gap = 0;
  data_binarize(in, d / "out.jsonl", opt);
  EXPECT_EQ(read_lines(d / "out.jsonl").size(), 1u);
}

TEST(DataBinarize, BestVsWorstAndBestVsRandomAreSeeded) {
  const fs::path d = scratch_dir();
  const fs::path in = write_file(d / "uf.jsonl", uf_row() + "\n" + uf_row() + "\n");
  BinarizeOptions opt;
  opt.strategy = "best-vs-worst";
  const ojson s = data_binarize(in, d / "a.jsonl", opt);
  const auto a = read_lines(d / "a.jsonl");
  ASSERT_EQ(a.size(), 2u);
  for (const auto& l : a) {
    const auto j = nlohmann::json::parse(l);
    EXPECT_TRUE(j["chosen"] == "A" || j["chosen"] == "D") << l;  // tied best: seeded choice
    EXPECT_EQ(j["rejected"], "B");
  }
  EXPECT_EQ(s["counts"]["best_ties"], 2);
  data_binarize(in, d / "b.jsonl", opt);
  EXPECT_EQ(read_lines(d / "b.jsonl"), a);  // same seed, same output
  // best-vs-random: the rejected one is drawn from those strictly below the best by >= min_gap.
  opt.strategy = "best-vs-random";
  opt.min_gap = 4;
  data_binarize(in, d / "c.jsonl", opt);
  for (const auto& l : read_lines(d / "c.jsonl")) EXPECT_EQ(nlohmann::json::parse(l)["rejected"], "B");
  opt.min_gap = 0;
  std::set<std::string> rejected;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    opt.seed = seed;
    data_binarize(in, d / "c.jsonl", opt);
    for (const auto& l : read_lines(d / "c.jsonl")) rejected.insert(nlohmann::json::parse(l)["rejected"]);
  }
  EXPECT_EQ(rejected, (std::set<std::string>{"B", "C"}));
}

TEST(DataBinarize, MeanOfAspectsNectarRanksTiesAndConversationalOutput) {
  const fs::path d = scratch_dir();
  const fs::path in = write_file(
      d / "mixed.jsonl",
      lines({R"({"instruction":"Q?","completions":[{"annotations":{"helpfulness":{"Rating":"5"},"honesty":{"Rating":"N/A"},"instruction-following":{"Rating":"4"},"truthfulness":{"Rating":"3"}},"overall_score":1.0,"response":"good"},{"annotations":{"helpfulness":{"Rating":"2"},"honesty":{"Rating":"2"},"instruction_following":{"Rating":"2"},"truthfulness":{"Rating":"2"}},"overall_score":9.0,"response":"bad"}]})",
             R"({"prompt":"q","completions":[" a"," b"],"scores":[3,3]})"}));
  BinarizeOptions opt;
  opt.strategy = "best-vs-worst";
  opt.read.score_field = "mean";
  opt.conversational = true;
  const ojson s = data_binarize(in, d / "out.jsonl", opt);
  EXPECT_EQ(read_lines(d / "out.jsonl"),
            (std::vector<std::string>{
                R"({"prompt":[{"role":"user","content":"Q?"}],"chosen":[{"role":"assistant","content":"good"}],"rejected":[{"role":"assistant","content":"bad"}],"score_chosen":4.0,"score_rejected":2.0})"}));
  EXPECT_EQ(s["counts"]["tied_rows"], 1);
  EXPECT_EQ(s["counts"]["rows_without_pair"], 1);

  const fs::path nectar = write_file(
      d / "nectar.jsonl",
      lines({R"({"prompt":"\n\nHuman: Give me a synonym for fast.\n\nAssistant: ","answers":[{"answer":"Quick.","model":"a","rank":1.0},{"answer":"Rapid, or swift.","model":"b","rank":2.0},{"answer":"Slow.","model":"c","rank":3.0}],"turns":1,"num_responses":3,"source":["sharegpt"],"good_natured":true})"}));
  BinarizeOptions nb;
  nb.strategy = "best-vs-worst";
  data_binarize(nectar, d / "n.jsonl", nb);
  EXPECT_EQ(read_lines(d / "n.jsonl"),
            (std::vector<std::string>{
                R"({"prompt":"\n\nHuman: Give me a synonym for fast.\n\nAssistant: ","chosen":"Quick.","rejected":"Slow."})"}));
  nb.conversational = true;
  data_binarize(nectar, d / "n.jsonl", nb);
  EXPECT_EQ(read_lines(d / "n.jsonl"),
            (std::vector<std::string>{
                R"({"prompt":[{"role":"user","content":"Give me a synonym for fast."}],"chosen":[{"role":"assistant","content":"Quick."}],"rejected":[{"role":"assistant","content":"Slow."}]})"}));
  nb.strategy = "worst";
  EXPECT_NE(input_error([&] { data_binarize(nectar, d / "n.jsonl", nb); }).find("--strategy must be"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// noise

TEST(DataNoise, FlipsAnExactSeededFraction) {
  const fs::path d = scratch_dir();
  std::string text;
  for (int i = 0; i < 10; ++i)
    text += R"({"prompt":"p)" + std::to_string(i) + R"(","chosen":" good","rejected":" bad","score_chosen":2.0,"score_rejected":1.0})" "\n";
  const fs::path in = write_file(d / "in.jsonl", text);
  NoiseOptions opt;
  opt.fraction = 0.3;
  opt.seed = 7;
  opt.mark = true;
  const ojson s = data_noise(in, d / "a.jsonl", opt);
  EXPECT_EQ(s["flipped"], 3);
  EXPECT_DOUBLE_EQ(s["implied_agreement"].get<double>(), 0.7);
  const auto a = read_lines(d / "a.jsonl");
  ASSERT_EQ(a.size(), 10u);
  int flipped = 0;
  for (const auto& l : a) {
    const auto j = nlohmann::json::parse(l);
    const bool f = j["chosen"] == " bad";
    flipped += f;
    EXPECT_EQ(j["label_flipped"], f);
    EXPECT_EQ(j["score_chosen"], f ? 1.0 : 2.0);
  }
  EXPECT_EQ(flipped, 3);
  data_noise(in, d / "b.jsonl", opt);
  EXPECT_EQ(read_lines(d / "b.jsonl"), a);
  opt.fraction = 0;
  opt.mark = false;
  data_noise(in, d / "c.jsonl", opt);
  EXPECT_EQ(read_lines(d / "c.jsonl"), read_lines(in));
  opt.fraction = 1.5;
  EXPECT_NE(input_error([&] { data_noise(in, d / "c.jsonl", opt); }).find("--fraction must be in [0, 1]"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// pairs

TEST(DataPairs, FromScoredSamples) {
  const fs::path d = scratch_dir();
  const fs::path in = write_file(d / "samples.jsonl",
                                 lines({R"({"prompt":"2+2?","completion":" 4","reward":1})",
                                        R"({"prompt":"1+1?","completion":" 2","reward":1})",
                                        R"({"prompt":"2+2?","completion":" 5","reward":0})",
                                        R"({"prompt":"2+2?","completion":" four","reward":1})",
                                        R"({"prompt":"2+2?","completion":" 3","reward":0})"}));
  PairsOptions opt;
  opt.strategy = "all-pairs";
  opt.min_gap = 0.5;
  const ojson s = data_pairs(in, d / "out.jsonl", opt);
  EXPECT_EQ(read_lines(d / "out.jsonl"),
            (std::vector<std::string>{
                R"({"prompt":"2+2?","chosen":" 4","rejected":" 5","score_chosen":1.0,"score_rejected":0.0})",
                R"({"prompt":"2+2?","chosen":" 4","rejected":" 3","score_chosen":1.0,"score_rejected":0.0})",
                R"({"prompt":"2+2?","chosen":" four","rejected":" 5","score_chosen":1.0,"score_rejected":0.0})",
                R"({"prompt":"2+2?","chosen":" four","rejected":" 3","score_chosen":1.0,"score_rejected":0.0})"}));
  EXPECT_EQ(s["prompt_groups"], 2);
  EXPECT_EQ(s["groups_with_one_sample"], 1);
  EXPECT_EQ(s["counts"]["tied_pairs"], 2);
  opt.strategy = "best-vs-worst";
  data_pairs(in, d / "bw.jsonl", opt);
  const auto bw = read_lines(d / "bw.jsonl");
  ASSERT_EQ(bw.size(), 1u);
  const auto j = nlohmann::json::parse(bw[0]);
  EXPECT_TRUE(j["chosen"] == " 4" || j["chosen"] == " four");
  EXPECT_TRUE(j["rejected"] == " 5" || j["rejected"] == " 3");
  // One row per prompt with a list of completions and rewards.
  const fs::path list = write_file(d / "list.jsonl", lines({R"({"prompt":"q","completions":[" a"," b"],"rewards":[0.2,0.9]})"}));
  data_pairs(list, d / "l.jsonl", opt);
  EXPECT_EQ(read_lines(d / "l.jsonl"),
            (std::vector<std::string>{R"({"prompt":"q","chosen":" b","rejected":" a","score_chosen":0.9,"score_rejected":0.2})"}));
  const fs::path bad = write_file(d / "bad.jsonl", lines({R"({"prompt":"q","completion":" a","reward":"high"})"}));
  EXPECT_EQ(input_error([&] { data_pairs(bad, d / "x.jsonl", opt); }),
            bad.string() + ":1: field 'reward': expected a number, got string");
}

}  // namespace
}  // namespace rlhf
