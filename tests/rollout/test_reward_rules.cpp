// Programmatic rewards and spec parsing: hand-computed scores, including empty completions,
// Unicode, signed and decimal numbers, and long completions.
#include <gtest/gtest.h>

#include <cmath>

#include "../model/model_test_util.h"
#include "reward_test_util.h"
#include "tensor/error.h"

namespace rlhf::rollout {
namespace {

using test::sample;
using test::score1;
using test::scores;
using rlhf::test::expect_error;

TEST(RewardSpec, ParsesWeightKindOptionsAndVerbatimArg) {
  RewardSpec s = parse_reward_spec(" 2.5*exact(nocase, last_number=0):answer");
  EXPECT_DOUBLE_EQ(s.weight, 2.5);
  EXPECT_EQ(s.kind, "exact");
  EXPECT_EQ(s.options.at("nocase"), "1");
  EXPECT_EQ(s.options.at("last_number"), "0");
  EXPECT_EQ(s.arg, "answer");
  // A '*' or ':' or ',' after the kind's ':' belongs to the argument.
  s = parse_reward_spec("regex:a*b:c,d{1,3}");
  EXPECT_DOUBLE_EQ(s.weight, 1.0);
  EXPECT_EQ(s.kind, "regex");
  EXPECT_EQ(s.arg, "a*b:c,d{1,3}");
  s = parse_reward_spec("-0.5*eos");
  EXPECT_DOUBLE_EQ(s.weight, -0.5);
  EXPECT_EQ(s.kind, "eos");
  EXPECT_TRUE(s.arg.empty());
}

TEST(RewardSpec, BadSpecsNameTheSpec) {
  expect_error<InputError>([] { parse_reward_spec("x*exact:answer"); }, {"x*exact:answer", "weight 'x'"});
  expect_error<InputError>([] { parse_reward_spec("exact(nocase:answer"); }, {"without ')'"});
  expect_error<InputError>([] { parse_reward_spec("exact answer"); }, {"unexpected ' answer'"});
  expect_error<InputError>([] { parse_reward_spec("exact(a=1,a=2):x"); }, {"'a' given twice"});
  expect_error<InputError>([] { test::source("blah:x"); }, {"unknown kind 'blah'"});
  expect_error<InputError>([] { test::source("exact(nocse):answer"); }, {"unknown option(s) nocse", "nocase"});
  expect_error<InputError>([] { test::source("exact(nocase=maybe):answer"); }, {"nocase='maybe'"});
  expect_error<InputError>([] { test::source("exact"); }, {"needs an argument"});
  expect_error<InputError>([] { test::source("length(target=1,max=2)"); }, {"not both"});
  expect_error<InputError>([] { test::source("length:words"); }, {"tokens or chars"});
  expect_error<InputError>([] { test::source("regex:a(b"); }, {"bad pattern"});
  expect_error<InputError>([] { test::source("regex:(?=a)"); }, {"(?:"});
}

TEST(LastNumber, SignsDecimalsSeparatorsAndOperators) {
  EXPECT_EQ(last_number("The answer is 42."), 42.0);
  EXPECT_EQ(last_number("x = -3.5"), -3.5);
  EXPECT_EQ(last_number("it costs $1,234,567 total"), 1234567.0);
  EXPECT_EQ(last_number("1,23"), 23.0);  // not a thousands group: two numbers
  EXPECT_EQ(last_number("5-3=2"), 2.0);
  EXPECT_EQ(last_number("5-3"), 3.0);  // '-' after a digit is an operator
  EXPECT_EQ(last_number("temperature \u22127 degrees"), -7.0);  // U+2212 minus sign
  EXPECT_EQ(last_number("+8"), 8.0);
  EXPECT_EQ(last_number("about .5 of it"), 0.5);
  EXPECT_EQ(last_number("-.25"), -0.25);
  EXPECT_EQ(last_number("#### 72\n"), 72.0);
  EXPECT_EQ(last_number("0.10"), 0.1);
  EXPECT_FALSE(last_number("").has_value());
  EXPECT_FALSE(last_number("no digits, only words - and . dots").has_value());
  EXPECT_EQ(last_number("٣ then 9"), 9.0);  // Arabic-Indic digits are not ASCII digits
}

TEST(TextHelpers, UnicodeStripAndLower) {
  EXPECT_EQ(strip_unicode("\u00a0\u3000 Ab c\t\n"), "Ab c");  // no-break and ideographic spaces
  EXPECT_EQ(strip_unicode(""), "");
  EXPECT_EQ(strip_unicode(" \u2003 "), "");
  EXPECT_EQ(lower_unicode("ÄÖÜ Straße ΣΑΣ"), "äöü straße σασ");
}

TEST(ExactReward, NormalisationOptions) {
  const nlohmann::json ref = {{"answer", "  Paris "}};
  EXPECT_EQ(score1("exact:answer", sample("Paris", ref)), 1.0);
  EXPECT_EQ(score1("exact:answer", sample("\nParis\u00a0", ref)), 1.0);  // both sides stripped
  EXPECT_EQ(score1("exact:answer", sample("paris", ref)), 0.0);
  EXPECT_EQ(score1("exact(nocase):answer", sample("PARIS", ref)), 1.0);
  EXPECT_EQ(score1("exact(nostrip):answer", sample("Paris", ref)), 0.0);
  EXPECT_EQ(score1("exact(nostrip):answer", sample("  Paris ", ref)), 1.0);
  EXPECT_EQ(score1("exact(nocase):answer", sample("ÉCOLE", {{"answer", "école"}})), 1.0);
  EXPECT_EQ(score1("exact:answer", sample("ÉCOLE", {{"answer", "école"}})), 0.0);
  // Empty completion: matches only an empty (or blank) reference.
  EXPECT_EQ(score1("exact:answer", sample("", ref)), 0.0);
  EXPECT_EQ(score1("exact:answer", sample("", {{"answer", " "}})), 1.0);
  EXPECT_EQ(score1("exact(match=2,miss=-1):answer", sample("Paris", ref)), 2.0);
  EXPECT_EQ(score1("exact(match=2,miss=-1):answer", sample("Rome", ref)), -1.0);
}

TEST(ExactReward, ReferenceTypes) {
  // A number, a list of accepted answers, null (undefined).
  EXPECT_EQ(score1("exact:answer", sample("42", {{"answer", 42}})), 1.0);
  EXPECT_EQ(score1("exact:answer", sample("b", {{"answer", {"a", "b"}}})), 1.0);
  EXPECT_EQ(score1("exact:answer", sample("c", {{"answer", {"a", "b"}}})), 0.0);
  EXPECT_TRUE(std::isnan(score1("exact:answer", sample("a", {{"answer", nullptr}}))));
  expect_error<InputError>([] { score1("exact:answer", sample("a", {{"solution", "a"}, {"id", 3}})); },
                           {"exact:answer", "no field 'answer'", "id, solution"});
  expect_error<InputError>([] { score1("exact:answer", sample("a", {{"answer", {{"x", 1}}}})); },
                           {"must be a string, a number"});
}

TEST(ExactReward, LastNumberComparesNumerically) {
  const std::string spec = "exact(last_number):answer";
  const nlohmann::json gsm = {{"answer", "She has 3 + 4 = 7 apples.\n#### -1,250.50"}};
  EXPECT_EQ(score1(spec, sample("So the total is -1250.5", gsm)), 1.0);
  EXPECT_EQ(score1(spec, sample("So the total is 1250.5", gsm)), 0.0);  // sign matters
  EXPECT_EQ(score1(spec, sample("-1250.5 is wrong, it is 3", gsm)), 0.0);  // the last number counts
  EXPECT_EQ(score1(spec, sample("3.0", {{"answer", 3}})), 1.0);
  EXPECT_EQ(score1(spec, sample("", {{"answer", 3}})), 0.0);  // no number: a miss
  EXPECT_EQ(score1(spec, sample("x = 0.5", {{"answer", ".50"}})), 1.0);
  EXPECT_TRUE(std::isnan(score1(spec, sample("7", {{"answer", "seven"}}))));  // reference has no number
}

TEST(RegexReward, SearchAnywhereWithPerlShorthands) {
  EXPECT_EQ(score1("regex:\\d+", sample("abc 12 def")), 1.0);
  EXPECT_EQ(score1("regex:\\d+", sample("abc def")), 0.0);
  EXPECT_EQ(score1("regex:\\d+", sample("")), 0.0);
  EXPECT_EQ(score1("regex:^$", sample("")), 1.0);
  EXPECT_EQ(score1("regex:[\\d]{3}", sample("a 123")), 1.0);
  EXPECT_EQ(score1("regex:[\\d]{3}", sample("a 12b")), 0.0);
  EXPECT_EQ(score1("regex:\\D", sample("123")), 0.0);
  EXPECT_EQ(score1("regex:(?:ab)+c", sample("xxababc")), 1.0);
  EXPECT_EQ(score1("regex:a.*?c", sample("a\n\nc")), 1.0);  // '.' matches newlines
  EXPECT_EQ(score1("regex:line1\\nline2", sample("line1\nline2")), 1.0);
  EXPECT_EQ(score1("regex:\\s\\w+\\.$", sample("say hi.")), 1.0);
  EXPECT_EQ(score1("regex:ß+", sample("Stra\u00dfe")), 1.0);  // UTF-8 bytes of a literal
  EXPECT_EQ(score1("regex(match=0.5,miss=-2):yes", sample("no")), -2.0);
}

TEST(FormatReward, WholeCompletionMustMatch) {
  const std::string spec = "format:<think>.*?</think>\\s*<answer>.*?</answer>";
  EXPECT_EQ(score1(spec, sample("<think>\nlet me see\n</think>\n<answer>4</answer>")), 1.0);
  EXPECT_EQ(score1(spec, sample("<think>x</think><answer>4</answer> trailing")), 0.0);
  EXPECT_EQ(score1(spec, sample("lead <think>x</think><answer>4</answer>")), 0.0);
  EXPECT_EQ(score1(spec, sample("<answer>4</answer>")), 0.0);
  EXPECT_EQ(score1(spec, sample("")), 0.0);
  EXPECT_EQ(score1("format:a|ab", sample("ab")), 1.0);  // an alternation still spans the text
  EXPECT_EQ(score1("format:a*", sample("")), 1.0);
}

TEST(FormatReward, LongCompletionsDoNotOverflowTheStack) {
  // libstdc++'s std::regex crashes at about 100k characters on such patterns.
  const std::string big = "<think>" + std::string(2'000'000, 'a') + "</think><answer>1</answer>";
  EXPECT_EQ(score1("format:<think>.*</think><answer>.*</answer>", sample(big)), 1.0);
  EXPECT_EQ(score1("regex:b", sample(big)), 0.0);
}

TEST(EosReward, FollowsTheSampleFlag) {
  RewardSample s = sample("done");
  s.eos = true;
  RewardSample t = sample("cut off");
  EXPECT_EQ(scores("eos", {s, t}), (std::vector<double>{1.0, 0.0}));
  EXPECT_EQ(scores("eos(miss=-1)", {s, t}), (std::vector<double>{1.0, -1.0}));
  expect_error<InputError>([] { test::source("eos:x"); }, {"no argument"});
}

TEST(LengthReward, TokensCharsTargetMax) {
  RewardSample s = sample("héllo😀");  // 6 code points, 10 bytes
  s.completion_ids = {5, 6, 7, 2};
  RewardSample empty = sample("");
  EXPECT_EQ(scores("length", {s, empty}), (std::vector<double>{4.0, 0.0}));
  EXPECT_EQ(scores("length:chars", {s, empty}), (std::vector<double>{6.0, 0.0}));
  EXPECT_EQ(scores("length(scale=-0.5):chars", {s}), (std::vector<double>{-3.0}));
  EXPECT_EQ(scores("length(target=10,scale=0.25):chars", {s, empty}), (std::vector<double>{-1.0, -2.5}));
  EXPECT_EQ(scores("length(max=3,scale=2)", {s, empty}), (std::vector<double>{-2.0, 0.0}));
  const RewardResult r = test::source("length")->score({s, empty});
  ASSERT_EQ(r.metrics.size(), 1u);
  EXPECT_EQ(r.metrics[0].first, "mean_length");
  EXPECT_EQ(r.metrics[0].second, 2.0);
}

}  // namespace
}  // namespace rlhf::rollout
