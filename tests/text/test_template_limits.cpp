// Chat templates are untrusted input (docs/reliability.md §3, test 20b): hostile templates —
// deep nesting, runaway recursion and loops, output and value blow-ups, integer traps — end
// quickly with an InputError naming the limit or the fault, never a crash, a hang or gigabytes.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "tensor/error.h"
#include "text/chat_template.h"

namespace rlhf {
namespace {

using nlohmann::json;

const json kOneMessage = json::array({{{"role", "user"}, {"content", "hi"}}});

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int k = 0; k < n; ++k) out += s;
  return out;
}

std::string render(const std::string& src, const jinja::Limits& limits = {}, const json& messages = kOneMessage) {
  return ChatTemplate::parse(src, "t", limits).render(messages, false);
}

// The InputError of parsing and rendering `src`; fails the test when there is none or when it
// takes more than two seconds (each hostile case here needs well under one).
std::string error_of(const std::string& src, const jinja::Limits& limits = {}, const json& messages = kOneMessage) {
  const auto start = std::chrono::steady_clock::now();
  std::string what;
  try {
    render(src, limits, messages);
    ADD_FAILURE() << "expected an InputError from: " << src.substr(0, 200);
  } catch (const InputError& e) {
    what = e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 2.0) << src.substr(0, 200);
  return what;
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST(TemplateLimits, DeepExpressionNestingIsAParseError) {
  const std::string nesting = "nesting deeper than 256 levels (limit max_nesting)";
  const std::string parens = error_of("{{ " + repeat("(", 10000) + "1" + repeat(")", 10000) + " }}");
  EXPECT_EQ(parens.rfind("t:1:", 0), 0u) << parens;  // names the template and the position
  EXPECT_HAS(parens, nesting);
  EXPECT_HAS(error_of("{{ " + repeat("[", 10000) + repeat("]", 10000) + " }}"), nesting);
  EXPECT_HAS(error_of("{{ " + repeat("not ", 10000) + "x }}"), nesting);
  EXPECT_HAS(error_of("{{ " + repeat("-", 10000) + "1 }}"), nesting);
  EXPECT_HAS(error_of("{{ " + repeat("1 if x else ", 10000) + "2 }}"), nesting);
  // Left-deep chains are built by loops, not recursion, but make trees as deep.
  EXPECT_HAS(error_of("{{ 1" + repeat(" + 1", 10000) + " }}"), nesting);
  EXPECT_HAS(error_of("{{ x" + repeat(".a", 10000) + " }}"), nesting);
  EXPECT_HAS(error_of("{{ x" + repeat("|trim", 10000) + " }}"), nesting);
  // Within the limit, deep nesting still works.
  EXPECT_EQ(render("{{ " + repeat("(", 200) + "7" + repeat(")", 200) + " }}"), "7");
  EXPECT_EQ(render("{{ 0" + repeat(" + 1", 200) + " }}"), "200");
}

TEST(TemplateLimits, DeepStatementNestingIsAParseError) {
  const std::string e = error_of(repeat("{% if true %}", 10000) + "x" + repeat("{% endif %}", 10000));
  EXPECT_HAS(e, "nesting deeper than 256 levels");
  EXPECT_EQ(e.rfind("t:1:", 0), 0u) << e;
  EXPECT_HAS(error_of(repeat("{% for x in [1] %}", 10000) + repeat("{% endfor %}", 10000)), "max_nesting");
  EXPECT_EQ(render(repeat("{% if true %}", 100) + "x" + repeat("{% endif %}", 100)), "x");
}

TEST(TemplateLimits, ParseTimeIsLinearInALongLine) {
  // One 600 KB line of 100,000 tags: columns are counted incrementally, not from the line start.
  const std::string src = repeat("{{ 'ab' }}", 60000);
  const auto start = std::chrono::steady_clock::now();
  ChatTemplate::parse(src, "t");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  EXPECT_HAS(error_of(repeat("{{ 1 }}", 60000) + "{{ ) }}"), "t:1:420004: unexpected ')'");
}

TEST(TemplateLimits, MacroRecursionHitsTheCallLimit) {
  const std::string e = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_HAS(e, "macro calls nested deeper than 100 levels (limit max_calls");
  EXPECT_EQ(e.rfind("t:1:", 0), 0u) << e;
  // Mutual recursion through caller() counts too.
  EXPECT_HAS(error_of("{% macro f() %}{% call f() %}{{ caller() }}{% endcall %}{% endmacro %}{{ f() }}"), "max_calls");
  // Bounded recursion renders.
  EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(9) }}"),
            "987654321");
}

TEST(TemplateLimits, NestedEvaluationHitsTheDepthLimit) {
  jinja::Limits limits;
  limits.max_calls = 100000;  // leave the depth limit to catch the recursion
  EXPECT_HAS(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", limits),
             "evaluation nested deeper than 512 levels (limit max_depth)");
}

TEST(TemplateLimits, HugeLoopsHitTheRangeCapOrTheStepBudget) {
  EXPECT_HAS(error_of("{% for i in range(10**9) %}x{% endfor %}"), "MAX_RANGE (100000)");
  // The default budget (20,000,000 steps) is about a second of this loop; a smaller one keeps
  // the test fast under sanitizers.
  jinja::Limits limits;
  limits.max_steps = 2'000'000;
  const std::string e = error_of(
      "{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}", limits);
  EXPECT_HAS(e, "exceeds its budget of 2000000 steps");
  EXPECT_HAS(e, "max_steps");
  EXPECT_EQ(render("{% for i in range(500) %}{% for j in range(500) %}{% endfor %}{% endfor %}ok", limits), "ok");
  // Quadratic builtins are charged for their work.
  EXPECT_HAS(error_of("{{ range(100000)|list|unique|list|length }}"), "max_steps");
  EXPECT_HAS(error_of("{% set s = 'a b ' * 1000000 %}{% for i in range(100000) %}{{ s.count('b') }}{% endfor %}"),
             "max_steps");
}

TEST(TemplateLimits, OutputBlowUpHitsTheOutputLimit) {
  const std::string e = error_of(
      "{% for i in range(100000) %}{% for j in range(100000) %}0123456789{% endfor %}{% endfor %}");
  EXPECT_HAS(e, "rendered output longer than 8388608 bytes (limit max_output_bytes)");
  // A captured block is output too.
  jinja::Limits limits;
  limits.max_output_bytes = 1000;
  EXPECT_HAS(error_of("{% set x %}{% for i in range(1000) %}ab{% endfor %}{% endset %}", limits), "max_output_bytes");
  EXPECT_EQ(render("{% for i in range(400) %}ab{% endfor %}", limits).size(), 800u);
}

TEST(TemplateLimits, StringAndListRepetitionAreBoundedBeforeBuilding) {
  EXPECT_HAS(error_of("{{ 'a' * 10**12 }}"), "a string would be longer than 8388608 bytes (limit max_string_bytes)");
  EXPECT_HAS(error_of("{{ 10**12 * 'ab' }}"), "max_string_bytes");
  EXPECT_HAS(error_of("{{ [1, 2] * 10**12 }}"), "a list would have more than 1000000 items (limit max_items)");
  EXPECT_EQ(render("{{ '' * 10**18 }}{{ ([] * 10**18)|length }}{{ 'ab' * 2 }}"), "0abab");
}

TEST(TemplateLimits, JoinReplaceAndConcatBlowUpsAreBounded) {
  const std::string big = "{% set s = 'a' * 1000000 %}";
  EXPECT_HAS(error_of(big + "{{ [s, s, s, s, s, s, s, s, s, s]|join }}"), "max_string_bytes");
  EXPECT_HAS(error_of(big + "{{ s.join([s, s, s, s, s, s, s, s, s, s]) }}"), "max_string_bytes");
  EXPECT_HAS(error_of(big + "{{ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s }}"), "max_string_bytes");
  EXPECT_HAS(error_of(big + "{{ s + s + s + s + s + s + s + s + s }}"), "max_string_bytes");
  EXPECT_HAS(error_of(big + "{{ s.replace('', 'bbbbbbbbbb') }}"), "max_string_bytes");
  EXPECT_HAS(error_of(big + "{{ [s, s, s, s, s, s, s, s, s] }}"), "max_string_bytes");
  EXPECT_HAS(error_of("{{ {'a': {'b': [1]}}|tojson(indent=10**12) }}"), "max_string_bytes");
  EXPECT_HAS(error_of("{{ ('a ' * 4000000).split() }}"), "max_items");
}

TEST(TemplateLimits, TotalMemoryOfBuiltValuesIsBounded) {
  jinja::Limits limits;
  limits.max_alloc_bytes = 16 << 20;
  const std::string e = error_of(
      "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + [('x' * 100000) ~ i] %}"
      "{% endfor %}{{ ns.l|length }}",
      limits);
  EXPECT_HAS(e, "builds more than 16777216 bytes of values (limit max_alloc_bytes)");
}

TEST(TemplateLimits, DeeplyNestedValuesAreRefused) {
  EXPECT_HAS(error_of("{% set ns = namespace(x=none) %}{% for i in range(10000) %}{% set ns.x = [ns.x] %}{% endfor %}"),
             "values nested deeper than 256 levels (limit max_value_depth)");
  EXPECT_HAS(error_of("{% set ns = namespace(x=none) %}{% for i in range(10000) %}{% set ns.x = {'k': ns.x} %}"
                      "{% endfor %}"),
             "max_value_depth");
  // A namespace that contains itself cannot be printed forever.
  EXPECT_HAS(error_of("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"), "printing values nested deeper");
  // Deeply nested JSON in a message.
  const json deep = json::parse(repeat("[", 10000) + repeat("]", 10000));
  const json messages = json::array({{{"role", "user"}, {"content", deep}}});
  EXPECT_HAS(error_of("{{ messages }}", {}, messages), "JSON nested deeper than 256 levels");
}

TEST(TemplateLimits, IntegerOverflowIsAnError) {
  const std::string overflow = "integer overflow";
  EXPECT_HAS(error_of("{{ 9223372036854775807 + 1 }}"), overflow);
  EXPECT_HAS(error_of("{{ -9223372036854775807 - 2 }}"), overflow);
  EXPECT_HAS(error_of("{{ 4611686018427387904 * 2 }}"), overflow);
  EXPECT_HAS(error_of("{{ 2 ** 64 }}"), overflow);
  EXPECT_HAS(error_of("{{ 2 ** 10**18 }}"), overflow);
  EXPECT_HAS(error_of("{{ -(-9223372036854775807 - 1) }}"), overflow);
  EXPECT_HAS(error_of("{{ (-9223372036854775807 - 1)|abs }}"), overflow);
  EXPECT_HAS(error_of("{{ 9223372036854775808 }}"), "integer literal out of the 64-bit range");
  EXPECT_HAS(error_of("{{ 0x10000000000000000 }}"), "t:1:4: integer literal out of the 64-bit range: 0x1000");
  EXPECT_EQ(render("{{ 0x7fffffffffffffff }} {{ 0b1_0 }} {{ 0o17 }}"), "9223372036854775807 2 15");
  EXPECT_EQ(render("{{ 1 ** 10**18 }} {{ (-1) ** (10**18 + 1) }} {{ 2 ** 62 }} {{ 2 ** -1 }}"),
            "1 -1 4611686018427387904 0.5");
}

TEST(TemplateLimits, IntegerDivisionTrapsAreErrorsOrPythonResults) {
  const std::string int_min = "(-9223372036854775807 - 1)";
  EXPECT_HAS(error_of("{{ " + int_min + " // -1 }}"), "integer overflow");
  EXPECT_EQ(render("{{ " + int_min + " % -1 }} {{ 7 % -1 }} {{ -7 // 2 }} {{ -7 % 3 }}"), "0 0 -4 2");
  EXPECT_HAS(error_of("{{ 5 // 0 }}"), "integer division or modulo by zero");
  EXPECT_HAS(error_of("{{ 5 % 0 }}"), "integer division or modulo by zero");
  EXPECT_HAS(error_of("{{ 5 / 0 }}"), "division by zero");
  EXPECT_HAS(error_of("{{ 5 is divisibleby 0 }}"), "integer division or modulo by zero");
}

TEST(TemplateLimits, BoundsNearInt64LimitsDoNotOverflow) {
  EXPECT_EQ(render("{{ range(9223372036854775800, 9223372036854775807, 5)|list }}"),
            "[9223372036854775800, 9223372036854775805]");
  EXPECT_EQ(render("{{ range(-9223372036854775800, -9223372036854775807 - 1, -5)|list|length }}"), "2");
  EXPECT_EQ(render("{{ 'abc'[1::9223372036854775807] }}{{ 'abc'[::-9223372036854775807 - 1] }}"), "bc");
  // Float to int conversions of inf and nan take the filter's default, as in Jinja.
  EXPECT_EQ(render("{{ (1e308 * 10)|int }} {{ 'nan'|float|int(7) }} {{ '10'|int(base=1) }}"), "0 7 10");
  EXPECT_EQ(render("{{ [[1]]|map(attribute='99999999999999999999')|list }}"), "[Undefined]");
}

}  // namespace
}  // namespace rlhf
