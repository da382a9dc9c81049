// Chat templates: byte-for-byte parity with transformers' apply_chat_template on the real model
// templates in tests/fixtures/text/chat_templates (expected.jsonl, made by
// reference/make_chat_template_fixtures.py), the single-feature interpreter cases rendered by the
// same Jinja2 environment (jinja_cases.jsonl), and hand-written checks of whitespace control,
// loops, filters, message normalization and the errors that name unsupported constructs.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tensor/error.h"
#include "text/chat_template.h"

namespace rlhf {
namespace {

using nlohmann::json;

const std::string kDir = std::string(RLHF_FIXTURES_DIR) + "/text/chat_templates/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

const json kOneMessage = json::array({{{"role", "user"}, {"content", "hi"}}});

// Renders a small template with `vars` as extra variables.
std::string render(const std::string& src, const json& vars = json::object(), const json& messages = kOneMessage,
                   bool add_generation_prompt = false) {
  return ChatTemplate::parse(src, "t").render(messages, add_generation_prompt, vars);
}

// The InputError message of rendering (or parsing) `src`; fails the test when nothing is thrown.
std::string error_of(const std::string& src, const json& vars = json::object(), const json& messages = kOneMessage) {
  try {
    render(src, vars, messages);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError from: " << src;
  return "";
}

// ---- parity with transformers on real model templates ------------------------------------------

TEST(ChatTemplateParity, EveryFixtureCaseMatchesTransformers) {
  const std::vector<json> cases = read_jsonl(kDir + "expected.jsonl");
  ASSERT_GE(cases.size(), 400u);
  std::map<std::string, ChatTemplate> templates;
  std::map<std::string, int> matched;
  int errors_expected = 0;
  for (const json& c : cases) {
    const std::string name = c.at("template");
    SCOPED_TRACE(name + " / " + c.at("case").get<std::string>() +
                 " / add_generation_prompt=" + (c.at("add_generation_prompt").get<bool>() ? "true" : "false"));
    auto it = templates.find(name);
    if (it == templates.end())
      it = templates.emplace(name, ChatTemplate::parse(read_file(kDir + name + ".jinja"), name)).first;
    const ChatTemplate& tmpl = it->second;
    if (c.contains("output")) {
      std::string got;
      try {
        got = tmpl.render(c.at("messages"), c.at("add_generation_prompt"), c.at("extra"));
      } catch (const InputError& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
        continue;
      }
      EXPECT_EQ(got, c.at("output").get<std::string>());
      if (got == c.at("output").get<std::string>()) ++matched[name];
    } else {
      ++errors_expected;
      try {
        const std::string got = tmpl.render(c.at("messages"), c.at("add_generation_prompt"), c.at("extra"));
        ADD_FAILURE() << "expected an error like Python's " << c.at("error_type") << ": " << c.at("error")
                      << "\nbut rendered: " << got;
      } catch (const InputError& e) {
        // Templates signal bad input through raise_exception; the message must carry Python's.
        if (c.at("error_type") == "TemplateError") {
          EXPECT_NE(std::string(e.what()).find(c.at("error").get<std::string>()), std::string::npos) << e.what();
        }
        ++matched[name];
      }
    }
  }
  EXPECT_GE(templates.size(), 27u);
  EXPECT_GT(errors_expected, 30);
  for (const auto& [name, n] : matched) EXPECT_GT(n, 0) << name;
}

TEST(ChatTemplateParity, InterpreterCasesMatchJinja2) {
  const std::vector<json> cases = read_jsonl(kDir + "jinja_cases.jsonl");
  ASSERT_GE(cases.size(), 80u);
  for (const json& c : cases) {
    const std::string src = c.at("template");
    SCOPED_TRACE(src);
    if (c.contains("output")) {
      try {
        EXPECT_EQ(render(src, c.at("context")), c.at("output").get<std::string>());
      } catch (const InputError& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
    } else {
      try {
        const std::string got = render(src, c.at("context"));
        ADD_FAILURE() << "expected an error like Python's " << c.at("error") << "\nbut rendered: " << got;
      } catch (const InputError&) {
      }
    }
  }
}

// ---- interpreter pieces -------------------------------------------------------------------------

TEST(ChatTemplateJinja, WhitespaceControlAsTransformersConfiguresJinja) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before one.
  EXPECT_EQ(render("{% if true %}\n    yes\n{% endif %}\nend"), "    yes\nend");
  EXPECT_EQ(render("<{%- if true -%}\n  x  \n{%- endif -%}>"), "<x>");
  EXPECT_EQ(render("a {{- ' b ' -}} c"), "a b c");
  EXPECT_EQ(render("  {{ 'v' }}\n"), "  v");  // {{ }} keeps indentation; one trailing newline dropped
  EXPECT_EQ(render("  {%+ if true %}k{% endif +%}\nz"), "  k\nz");
  EXPECT_EQ(render("x\n  {# note #}\ny"), "x\ny");
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
}

TEST(ChatTemplateJinja, LoopsAndScoping) {
  EXPECT_EQ(render("{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ m.role }}"
                   "{% if not loop.last %},{% endif %}{% endfor %}",
                   json::object(),
                   json::array({{{"role", "system"}, {"content", ""}}, {{"role", "user"}, {"content", ""}}})),
            "1/2:system,2/2:user");
  // A set inside a loop does not leak; a namespace carries state out.
  EXPECT_EQ(render("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set n = n + i %}"
                   "{% set ns.n = ns.n + i %}{% endfor %}{{ n }} {{ ns.n }}"),
            "0 6");
  EXPECT_EQ(render("{% for x in [3, 1, 2] if x > 1 %}{{ x }}{% else %}none{% endfor %}"), "32");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}{{ v }}{% endfor %}"), "a1b2");
  EXPECT_EQ(render("{{ 'abc'[::-1] }} {{ [1, 2, 3, 4][-2::-1] }}"), "cba [3, 2, 1]");
}

TEST(ChatTemplateJinja, FiltersTestsAndMethods) {
  EXPECT_EQ(render("{{ '  pad  '|trim }}|{{ 'ab'|upper }}|{{ [1, 2]|length }}|{{ ['a', 'b']|join('-') }}"),
            "pad|AB|2|a-b");
  EXPECT_EQ(render("{{ {'b': 1, 'a': [true, none]}|tojson }}"), "{\"b\": 1, \"a\": [true, null]}");
  EXPECT_EQ(render("{{ {'a': 1}|tojson(indent=2) }}"), "{\n  \"a\": 1\n}");
  EXPECT_EQ(render("{{ x|default('d') }} {{ none is none }} {{ 'x' is string }} {{ 3 is number }}"), "d True True True");
  EXPECT_EQ(render("{{ ' A b '.strip().lower().split(' ') }}"), "['a', 'b']");
  EXPECT_EQ(render("{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }}",
                   {{"msgs", json::array({{{"role", "user"}, {"content", "u"}}, {{"role", "bot"}, {"content", "b"}}})}}),
            "['u']");
  EXPECT_EQ(render("{% macro tag(x, y='!') %}<{{ x }}{{ y }}>{% endmacro %}{{ tag('a') }}{{ tag('b', y='?') }}"),
            "<a!><b?>");
  EXPECT_EQ(render("{% generation %}assistant text{% endgeneration %}"), "assistant text");
}

TEST(ChatTemplateJinja, PythonValueFormatting) {
  EXPECT_EQ(render("{{ 1 / 2 }} {{ 4 / 2 }} {{ 1e16 }} {{ 0.1 + 0.2 }} {{ none }} {{ true }}"),
            "0.5 2.0 1e+16 0.30000000000000004 None True");
  EXPECT_EQ(render("{{ ['it\\'s', {'k': none}] }}"), "[\"it's\", {'k': None}]");
  EXPECT_EQ(render("{{ 7 // -2 }} {{ -7 % 3 }} {{ 2 ** 10 }}"), "-4 2 1024");
}

// ---- transformers' inputs ------------------------------------------------------------------------

TEST(ChatTemplateInputs, NullKeysDroppedAndReasoningAliased) {
  const json messages = json::array({{{"role", "assistant"}, {"content", "c"}, {"tool_calls", nullptr},
                                      {"reasoning", "why"}}});
  EXPECT_EQ(render("{% for m in messages %}{{ m.tool_calls is defined }} {{ m.thinking }} {{ m.reasoning_content }} "
                   "{{ m|list }}{% endfor %}",
                   json::object(), messages),
            "False why why ['thinking', 'content', 'reasoning', 'role', 'reasoning_content']");
}

TEST(ChatTemplateInputs, ToolsAndDocumentsDefaultToNone) {
  EXPECT_EQ(render("{{ tools is none }} {{ documents is none }} {{ tools is defined }}"), "True True True");
  EXPECT_EQ(render("{{ tools|length }}", {{"tools", json::array({1, 2})}}), "2");
  EXPECT_EQ(render("{{ add_generation_prompt }}", json::object(), kOneMessage, true), "True");
}

TEST(ChatTemplateInputs, StrftimeNowUsesTheFixedDateOrTheClock) {
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A %B %-d, %H:%M:%S %p %j') }}",
                   {{"strftime_now", "2024-09-26T14:05:09"}}),
            "26 Sep 2024|Thursday September 26, 14:05:09 PM 270");
  const std::string today = render("{{ strftime_now('%Y-%m-%d') }}");
  ASSERT_EQ(today.size(), 10u);
  EXPECT_EQ(today[4], '-');
  EXPECT_NE(error_of("{{ strftime_now('%d') }}", {{"strftime_now", "26/09/2024"}}).find("YYYY-MM-DD"), std::string::npos);
}

TEST(ChatTemplateInputs, RejectsMalformedCalls) {
  EXPECT_NE(error_of("x", json::object(), json::array()).find("empty conversation"), std::string::npos);
  EXPECT_NE(error_of("x", json::object(), json::array({"not an object"})).find("messages[0]"), std::string::npos);
  EXPECT_NE(error_of("x", {{"messages", json::array()}}).find("must not set 'messages'"), std::string::npos);
}

// ---- errors name the construct and where it is ---------------------------------------------------

TEST(ChatTemplateErrors, RaiseExceptionCarriesTheTemplateMessage) {
  const std::string e = error_of("{% if messages[0].role != 'system' %}\n  {{ raise_exception('need a system turn') }}\n{% endif %}");
  EXPECT_NE(e.find("t:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("raise_exception: need a system turn"), std::string::npos) << e;
}

TEST(ChatTemplateErrors, UnsupportedConstructsNameConstructAndLineColumn) {
  EXPECT_EQ(error_of("line one\n  {{ x | wordwrap(3) }}"), "t:2:10: unsupported filter 'wordwrap'");
  EXPECT_EQ(error_of("{{ x is divisible }}"), "t:1:9: unsupported test 'divisible'");
  EXPECT_EQ(error_of("ok\n{% include 'other.jinja' %}").rfind("t:2:4: unsupported tag 'include'", 0), 0u);
  EXPECT_EQ(error_of("{% extends 'base' %}").rfind("t:1:4: unsupported tag 'extends'", 0), 0u);
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"), "t:1:15: unsupported: recursive for loops");
  EXPECT_EQ(error_of("{% do x.append(1) %}").rfind("t:1:4: unsupported tag 'do'", 0), 0u);
  EXPECT_EQ(error_of("{{ 'abc'.zfill(5) }}"), "t:1:9: unsupported str method 'zfill'");
  EXPECT_EQ(error_of("{{ 'a %s' % 'b' }}"), "t:1:11: unsupported: '%' string formatting");
}

TEST(ChatTemplateErrors, SyntaxAndRuntimeErrorsHaveLocations) {
  EXPECT_EQ(error_of("{{ 1 + }}"), "t:1:8: unexpected end of print statement");
  EXPECT_EQ(error_of("{% if true %}\nno end").rfind("t:2:7: unexpected end of template, expected 'elif' or 'else' or 'endif'", 0), 0u);
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "t:1:8: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ nope.attr }}"), "t:1:8: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ [1].append(2) }}"), "t:1:14: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(error_of("{% for x in 3 %}{% endfor %}"), "t:1:13: 'int' object is not iterable");
  EXPECT_EQ(error_of("{{ 'unterminated }}").rfind("t:1:4: unterminated string literal", 0), 0u);
}

TEST(ChatTemplate, ParsesOnceRendersManyTimesAndMoves) {
  ChatTemplate a = ChatTemplate::parse("{{ messages|length }}{{ bos_token }}");
  ChatTemplate b = std::move(a);
  EXPECT_EQ(b.render(kOneMessage, false, {{"bos_token", "<s>"}}), "1<s>");
  EXPECT_EQ(b.render(json::array({{{"role", "user"}}, {{"role", "assistant"}}}), false), "2");
}

}  // namespace
}  // namespace rlhf
