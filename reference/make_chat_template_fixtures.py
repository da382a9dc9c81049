#!/usr/bin/env python3
"""Render the committed chat templates with transformers' own apply_chat_template.

Inputs:  tests/fixtures/text/chat_templates/<name>.jinja (real model templates, see SOURCES.md
         there) and the conversations below.
Outputs: tests/fixtures/text/chat_templates/expected.jsonl, one case per line:
           {"template": name, "case": label, "messages": [...], "add_generation_prompt": bool,
            "extra": {...}, "output": str}            or, where Python raised,
           {..., "error": message, "error_type": class name}
         tests/fixtures/text/chat_templates/jinja_cases.jsonl: small templates exercising single
         interpreter features (filters, tests, operators, whitespace control, scoping), rendered
         by the same Jinja environment, {"template": src, "context": {...}, "output"|"error"}.

`extra` is exactly what the template sees besides `messages` and `add_generation_prompt`: the
tokenizer's special tokens (bos_token/eos_token) plus the keyword arguments of the call (tools,
date_string, builtin_tools, ...). One key is special: "strftime_now" holds the fixed date that the
template's strftime_now() callable returns (FIXED_DATE where a case gives none); in Python it is
applied by patching the clock of transformers' chat-template module, not passed as a variable.

All dicts are passed with sorted keys: the C++ side receives nlohmann::json, whose objects are
ordered by key, so insertion order cannot survive there (see chat_template.cpp).

Usage:
  reference/.venv/bin/python reference/make_chat_template_fixtures.py [--out DIR]
"""

import argparse
import datetime as _dt
import json
import os

import jinja2
import transformers
import transformers.utils.chat_template_utils as ctu
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "text", "chat_templates")


def canon(x):
    """Sorted-key copy (see module docstring)."""
    if isinstance(x, dict):
        return {k: canon(x[k]) for k in sorted(x)}
    if isinstance(x, list):
        return [canon(v) for v in x]
    return x


def make_tokenizer(bos, eos):
    vocab = {"<unk>": 0}
    for tok in (bos, eos):
        if tok is not None and tok not in vocab:
            vocab[tok] = len(vocab)
    kwargs = {}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), **kwargs)


# The date of cases that give none (the day the committed fixtures were first generated).
FIXED_DATE = "2026-11-27"


class _FixedClock(_dt.datetime):
    fixed = None

    @classmethod
    def now(cls, tz=None):
        return cls.fixed


def render(tok, template, messages, add_generation_prompt, kwargs):
    kwargs = dict(kwargs)
    fixed = kwargs.pop("strftime_now", None)
    saved = ctu.datetime
    if fixed is not None:
        _FixedClock.fixed = _dt.datetime.fromisoformat(fixed)
        ctu.datetime = _FixedClock
    try:
        return tok.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            chat_template=template,
            **kwargs,
        )
    finally:
        ctu.datetime = saved


# ---------------------------------------------------------------------------------------------
# Conversations

SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello! How are you?"}
A1 = {"role": "assistant", "content": "I'm fine, thanks. How can I help?"}
U2 = {"role": "user", "content": "What is 2 + 2?"}
A2 = {"role": "assistant", "content": "2 + 2 = 4."}
# Quotes, backslashes, template syntax, special-token text, CRLF, tabs, unicode (CJK, emoji with
# modifiers, combining mark, RTL), leading/trailing whitespace including NBSP and ideographic space.
SPECIAL_U = {
    "role": "user",
    "content": "  Quotes ' \" and \\ backslash, {{ braces }} {% tag %} <|im_end|> </s> [INST]\n"
    "\tTabbed\r\nCRLF \u2014 \u65e5\u672c\u8a9e \U0001f642\U0001f44d\U0001f3fd e\u0301 \u05e2\u05d1\u05e8\u05d9\u05ea\u00a0\n\n",
}
SPECIAL_A = {"role": "assistant", "content": "\n  Answer\twith spaces\u00a0\u3000 "}
SPECIAL_SYS = {"role": "system", "content": "\n Be terse.\u2003\n"}
EMPTY_U = {"role": "user", "content": ""}

GENERIC = [
    ("single", [U1]),
    ("system", [SYS, U1]),
    ("multi", [U1, A1, U2]),
    ("multi_system", [SYS, U1, A1, U2, A2]),
    ("assistant_last", [U1, A1]),
    ("special", [SPECIAL_SYS, SPECIAL_U, SPECIAL_A, U2]),
    ("special_no_system", [SPECIAL_U, SPECIAL_A]),
    ("empty_content", [EMPTY_U]),
    ("two_users", [U1, U2]),
    ("assistant_first", [A1, U1]),
]
# add_generation_prompt=False is rendered for these (True for all).
BOTH_PROMPT_MODES = {"multi", "multi_system", "assistant_last", "special"}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": 'Get the current weather in a city ("today").',
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "integer", "default": 1}},
                "required": ["a"],
            },
            "return": {"type": "number"},
        },
    },
]

U_WEATHER = {"role": "user", "content": "What's the weather in Paris and in T\u014dky\u014d?"}


def call(name, args, call_id=None):
    c = {"type": "function", "function": {"name": name, "arguments": args}}
    if call_id is not None:
        c["id"] = call_id
    return c


QWEN_TOOL_CONV = [
    SYS,
    U_WEATHER,
    {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Paris"}),
                                                       call("get_weather", {"city": "T\u014dky\u014d", "unit": "celsius"})]},
    {"role": "tool", "content": '{"temp": 21.5, "sky": "clear"}'},
    {"role": "tool", "content": '{"temp": 18, "sky": "rain"}'},
    {"role": "assistant", "content": "Paris: 21.5\u00b0C, clear. T\u014dky\u014d: 18\u00b0C, rain."},
    {"role": "user", "content": "And 2.5 + 1?"},
    {"role": "assistant", "content": "Let me compute.", "tool_calls": [call("add", {"a": 2.5, "b": 1})]},
    {"role": "tool", "content": "3.5"},
]

MISTRAL_TOOL_CONV = [
    SYS,
    U_WEATHER,
    {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"}, "abcDEF123"),
                                         call("get_weather", {"city": "Tokyo"}, "xyz987QWE")]},
    {"role": "tool", "tool_call_id": "abcDEF123", "content": '{"temp": 21.5}'},
    {"role": "tool", "tool_call_id": "xyz987QWE", "content": '{"temp": 18}'},
    {"role": "assistant", "content": "  Paris 21.5, Tokyo 18.  "},
    {"role": "user", "content": "Thanks!"},
]
MISTRAL_BAD_ID = [
    U_WEATHER,
    {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"}, "call_1")]},
]

LLAMA_TOOL_CONV = [
    SYS,
    U_WEATHER,
    {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"})]},
    {"role": "tool", "content": '{"temp": 21.5}'},
    {"role": "assistant", "content": "It is 21.5\u00b0C in Paris."},
    {"role": "user", "content": "And as a dict?"},
    {"role": "ipython", "content": {"temp": 18, "ok": True, "tags": ["a", "b"], "none": None}},
]
LLAMA_BUILTIN_CONV = [
    U1,
    {"role": "assistant", "tool_calls": [call("brave_search", {"query": "weather \"Paris\" today"})]},
    {"role": "ipython", "content": "Sunny, 21\u00b0C"},
    {"role": "assistant", "content": "It is sunny."},
]
LLAMA_TWO_CALLS = [U1, {"role": "assistant", "tool_calls": [call("a", {}), call("b", {})]}]

QWEN3_CONV = [
    SYS,
    U1,
    {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\nHi! I'm well."},
    U_WEATHER,
    {"role": "assistant", "content": "", "reasoning_content": "Need the weather tool.",
     "tool_calls": [call("get_weather", {"city": "Paris"}),
                    call("get_weather", '{"city": "Tokyo"}')]},
    {"role": "tool", "content": '{"temp": 21.5}'},
    {"role": "tool", "content": "<tool_response>not a user query</tool_response>"},
    {"role": "assistant", "content": "Paris is at 21.5\u00b0C.", "reasoning_content": "\nSummarize.\n"},
]
# Phi-4-mini takes its tools as a JSON string in a "tools" key of the system message.
PHI4_TOOLS_JSON = json.dumps([t["function"] for t in TOOLS], ensure_ascii=False)
PHI4_TOOL_CONV = [
    {"role": "system", "content": "You are a helpful assistant with some tools.", "tools": PHI4_TOOLS_JSON},
    U_WEATHER,
    {"role": "assistant", "content": '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>'},
    {"role": "tool", "content": '{"temp": 21.5}'},
    {"role": "assistant", "content": "It is 21.5\u00b0C in Paris."},
]
PHI4_NULL_TOOLS = [
    {"role": "system", "content": "No tools today.", "tools": None},
    {"role": "user", "content": "Hi", "tools": "[ignored outside system]"},
]

QWEN3_RESPONSE_USER = [
    U1,
    {"role": "user", "content": "<tool_response>looks like a tool output</tool_response>"},
    {"role": "assistant", "content": "<think>x</think>answer"},
]

# name -> (bos, eos)
TEMPLATES = {
    "chatml": ("<s>", "<|im_end|>"),
    "qwen2": (None, "<|im_end|>"),
    "qwen2.5": (None, "<|im_end|>"),
    "qwen3_generation": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "llama2": ("<s>", "</s>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral_v0.1": ("<s>", "</s>"),
    "mistral_v0.3": ("<s>", "</s>"),
    "mistral_v0.3_sota": ("<s>", "</s>"),
    "zephyr": ("<s>", "</s>"),
    "tulu2": ("<s>", "</s>"),
    "gemma": ("<bos>", "<eos>"),
    "gemma3": ("<bos>", "<eos>"),
    "phi3": ("<s>", "<|endoftext|>"),
    "phi3_vision": ("<s>", "<|endoftext|>"),
    "gpt2": ("<|endoftext|>", "<|endoftext|>"),
    "openchat3.5": ("<s>", "<|end_of_turn|>"),
    "falcon_rw_chat": ("<|endoftext|>", "<|endoftext|>"),
    "wizardlm2": ("<s>", "</s>"),
    "llama_guard2": ("<|begin_of_text|>", "<|end_of_text|>"),
    "deepseek_coder": ("<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<|EOT|>"),
    "starcoder2_instruct": ("<|endoftext|>", "<|endoftext|>"),
    "synatra": ("<s>", "</s>"),
    "codellama70b": ("<s>", "</s>"),
    "chatglm3": (None, "</s>"),
    "pivot_moe": ("<s>", "</s>"),
    "olmo2": ("<|endoftext|>", "<|endoftext|>"),
    "phi4_mini": ("<|endoftext|>", "<|endoftext|>"),
}


def template_cases(name):
    """(label, messages, add_generation_prompt, kwargs) for one template."""
    cases = []
    for label, msgs in GENERIC:
        cases.append((label, msgs, True, {}))
        if label in BOTH_PROMPT_MODES:
            cases.append((label, msgs, False, {}))
    if name in ("qwen2.5", "qwen3_generation", "qwen3"):
        conv = QWEN3_CONV if name in ("qwen3_generation", "qwen3") else QWEN_TOOL_CONV
        cases += [
            ("tools", conv, False, {"tools": TOOLS}),
            ("tools", conv[1:], True, {"tools": TOOLS}),
            ("tool_messages_no_tools", conv, True, {}),
        ]
    if name == "gemma3":
        parts = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                 {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Describe this. "}]},
                 {"role": "assistant", "content": [{"type": "text", "text": "A cat.\n"}]},
                 {"role": "user", "content": "Colour?"}]
        cases += [("content_parts", parts, True, {}), ("content_parts", parts[:3], False, {})]
    if name in ("qwen3_generation", "qwen3"):
        cases += [
            ("no_thinking", [U1], True, {"enable_thinking": False}),
            ("thinking_on", [U1], True, {"enable_thinking": True}),
            ("tool_response_user", QWEN3_RESPONSE_USER, True, {}),
        ]
    if name == "phi4_mini":
        cases += [
            ("tools_in_system", PHI4_TOOL_CONV, True, {}),
            ("tools_in_system", PHI4_TOOL_CONV, False, {}),
            ("tools_first_turn", PHI4_TOOL_CONV[:2], True, {}),
            ("null_tools", PHI4_NULL_TOOLS, True, {}),
        ]
    if name in ("mistral_v0.3", "mistral_v0.3_sota"):
        cases += [
            ("tools", MISTRAL_TOOL_CONV, True, {"tools": TOOLS}),
            ("tools_no_system", MISTRAL_TOOL_CONV[1:], False, {"tools": TOOLS}),
            ("tool_messages_no_tools", MISTRAL_TOOL_CONV, False, {}),
            ("bad_tool_call_id", MISTRAL_BAD_ID, False, {"tools": TOOLS}),
        ]
    if name in ("llama3.1", "llama3.2"):
        cases += [
            ("date_string", [SYS, U1], True, {"date_string": "26 Sep 2024"}),
            ("tools_in_user_message", LLAMA_TOOL_CONV, True, {"tools": TOOLS, "date_string": "01 Jan 2025"}),
            ("tools_in_system", LLAMA_TOOL_CONV, False,
             {"tools": TOOLS, "tools_in_user_message": False, "date_string": "01 Jan 2025"}),
            ("tools_without_user", [SYS], True, {"tools": TOOLS}),
            ("custom_tools", LLAMA_TOOL_CONV[1:], True, {"custom_tools": TOOLS[:1]}),
            ("two_tool_calls", LLAMA_TWO_CALLS, False, {}),
        ]
    if name == "llama3.1":
        cases += [
            ("builtin_tools", LLAMA_BUILTIN_CONV, True,
             {"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"]}),
            ("builtin_and_custom_tools", LLAMA_TOOL_CONV[:5], True,
             {"builtin_tools": ["code_interpreter"], "tools": TOOLS[:1], "date_string": "02 Feb 2025"}),
        ]
    if name == "llama3.2":
        cases += [
            ("strftime_now", [SYS, U1], True, {"strftime_now": "2024-09-26T10:20:30"}),
            ("strftime_now", [U1, A1, U2], False, {"strftime_now": "2025-01-05"}),
        ]
    return cases


# ---------------------------------------------------------------------------------------------
# Single-feature cases for the interpreter's unit tests.

JINJA_CASES = [
    # whitespace control: trim_blocks / lstrip_blocks / - / +
    ("{% if true %}\n  a\n{% endif %}\nb", {}),
    ("  {% if true %}x{% endif %}  \n  {%- if true %}y{% endif -%}  \nz", {}),
    ("a  {{- 'b' -}}  c\n  {{ 'd' }}\n", {}),
    ("  {%+ if true %}x{% endif +%}\nend", {}),
    ("{# comment #}\n  {# indented comment #}\nx{#- trim -#}  y", {}),
    ("line1\r\nline2\rline3\n\n", {}),
    ("{% raw %}{{ not evaluated }}{% endraw %}", {}),
    ("{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}", {}),
    # scoping
    ("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", {}),
    ("{% set a, b = [1, 2] %}{{ b }}{{ a }}", {}),
    ("{% set s %}block {{ 1 + 1 }}{% endset %}[{{ s }}]", {}),
    ("{% with a = 3 %}{{ a }}{% endwith %}[{{ a }}]", {}),
    # loops
    ("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs if x > 1 %}{{ x }}{{ loop.index }}{% else %}none{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in [] %}a{% else %}empty{% endfor %}", {}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"a": 1, "b": [2]}}),
    ("{% for k in d %}{{ k }}{% endfor %}{% for c in 'h\u00e9!' %}[{{ c }}]{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in none %}{% endfor %}", {}),
    ("{% for x in undefined_thing %}a{% else %}b{% endfor %}", {}),
    # literals and operators
    ("{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}", {}),
    ("{{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1 / 3 }} {{ -0.0 }} {{ 3.0 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true ~ [1, 'b'] ~ undefined_x }}", {}),
    ("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1, 2] + [3] }} {{ 'x' + 'y' }}", {}),
    ("{{ true and 'x' }} {{ false or 0 or 'z' }} {{ none or [] }} {{ not 0 }} {{ 1 and 0 }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ 2 >= 2 }}", {}),
    ("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ 'x' in undefined_y }}", {"d": {"k": 1}}),
    ("{{ (1, 2) }} {{ [1, (2, 3)] }} {{ {'a': 1, 'b': none, 'c': 'it\\'s', 'd': \"q\\\"\"} }} {{ [true, none, 1.0] }}", {}),
    ("{{ 'tab\\tnl\\nq\\'dq\\\"bs\\\\ u\\u00e9 x\\x41' }}", {}),
    ("{{ 'con' 'cat' }} {{ \"double\" }} {{ 0x1F }} {{ 1_000 }}", {}),
    ("{{ x if x else 'no' }} {{ 'yes' if y }}|{{ 'a' if false else 'b' if true else 'c' }}", {"x": 0}),
    ("{{ -x }} {{ +x }} {{ -x|abs }} {{ not x is none }}", {"x": 3}),
    # attribute and item access
    ("{{ d.a }} {{ d['a'] }} {{ d.b.c }} {{ d['b']['c'] }} [{{ d.missing }}] [{{ d.b.missing }}] {{ l[0] }} {{ l[-1] }} [{{ l[5] }}] {{ l.1 }}", {"d": {"a": 1, "b": {"c": 2}}, "l": [10, 20]}),
    ("{{ d['items'] }} {{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }} {{ d.keys()|list }} {{ d.values()|list }}", {"d": {"items": 5, "a": 1}}),
    ("{{ undefined_z.attr }}", {}),
    ("{{ d.nokey.attr }}", {"d": {}}),
    ("[{{ none.attr }}]", {}),
    ("{{ s[1:3] }} {{ s[::-1] }} {{ s[-2:] }} {{ s[:-1] }} {{ s[::2] }} {{ l[1:] }} {{ l[::-1] }} {{ l[-2::-1] }} {{ s[10:] }}|", {"s": "h\u00e9llo\U0001f642", "l": [1, 2, 3, 4]}),
    ("{{ s[1] }} {{ s[-1] }} {{ s|length }}", {"s": "a\u00e9\U0001f642"}),
    # string methods
    ("[{{ s.strip() }}] [{{ s.lstrip() }}] [{{ s.rstrip() }}] [{{ s.strip(' x') }}] [{{ 'xxaxx'.strip('x') }}]", {"s": " \u00a0x y\u3000\t\n "}),
    ("{{ s.split() }} {{ s.split(',') }} {{ s.split(',', 1) }} {{ 'a  b'.split(' ') }} {{ s.rsplit(',', 1) }}", {"s": "a,b ,c"}),
    ("{{ s.startswith('He') }} {{ s.endswith('lo') }} {{ s.startswith(('x', 'H')) }} {{ s.upper() }} {{ s.lower() }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 1) }}", {"s": "Hello"}),
    ("{{ 'hello wORLD-x y_z'.title() }} {{ \"they're bill's\".title() }} {{ 'hELLO'.capitalize() }} {{ '\u00e9t\u00e9 \u03c3\u03bf\u03c6\u03af\u03b1'.upper() }} {{ '\u00c9T\u00c9 \u0391\u03a3'.lower() }}", {}),
    ("{{ 'abcabc'.find('c') }} {{ 'abcabc'.count('b') }} {{ 'a-b'.join(['x', 'y']) }} {{ '42'.isdigit() }} {{ 'ab'.isdigit() }}", {}),
    # filters
    ("[{{ s|trim }}] {{ s|length }} {{ l|length }} {{ d|length }} {{ l|count }} {{ undefined_q|length }}", {"s": "  a b \n", "l": [1, 2], "d": {"a": 1}}),
    ("{{ s|upper }} {{ s|lower }} {{ s|title }} {{ s|capitalize }} {{ 'a-b (c[d e'|title }}", {"s": "hELLo wOrld"}),
    ("{{ s|replace('o', '0') }} {{ l|join(', ') }} {{ l|join }} {{ [1, 2]|join('-') }} {{ users|join(', ', attribute='name') }}", {"s": "foo", "l": ["a", "b"], "users": [{"name": "x"}, {"name": "y"}]}),
    ("{{ u|default('d') }} {{ u|d('d2') }} {{ ''|default('e') }} {{ ''|default('e', true) }} {{ none|default('n') }} {{ 0|d(5, boolean=true) }}", {}),
    ("{{ l|first }} {{ l|last }} {{ 'abc'|first }} {{ 'abc'|last }} {{ l|list }} {{ 'ab'|list }} {{ d|list }} {{ l|reverse|list }} {{ 'abc'|reverse }}", {"l": [1, 2, 3], "d": {"k": 1, "j": 2}}),
    ("{{ 3|string ~ 'x' }} {{ none|string }} {{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 'x'|float }} {{ 2|float }}", {}),
    ("{{ d|items|list }} {% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}{{ undefined_r|items|list }}", {"d": {"a": 1, "b": 2}}),
    ("{{ ms|selectattr('role', 'equalto', 'user')|list|length }} {{ ms|rejectattr('role', 'eq', 'user')|map(attribute='content')|list }} {{ ms|selectattr('x')|list }} {{ ms|selectattr('x', 'undefined')|map(attribute='role')|join(',') }}", {"ms": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "x": 1}, {"role": "user", "content": "c"}]}),
    ("{{ ms|map(attribute='content')|map('upper')|list }} {{ ms|map(attribute='nope', default='-')|list }} {{ [1, 0, 2]|select|list }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3]|reject('equalto', 2)|list }}", {"ms": [{"content": "a"}, {"content": "b"}]}),
    ("{{ v|tojson }} {{ v|tojson(indent=2) }} {{ 'caf\u00e9 <&> \"q\" \\\\ \u2028'|tojson }} {{ v|tojson(sort_keys=true) }}", {"v": {"b": [1, 2.5, None, True, "x"], "a": {}, "c": []}}),
    ("{{ v|tojson(separators=(',', ':')) }} {{ [1, [2, {'k': []}]]|tojson(indent='\\t') }} {{ 1e20|tojson }} {{ 0.1|tojson }}", {"v": {"a": [1, 2]}}),
    ("{{ s|safe }} {{ -3|abs }} {{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ms|sort(attribute='n')|map(attribute='n')|list }} {{ [1, 2, 1]|unique|list }} {{ [3, 1]|min }} {{ [3, 1]|max }} {{ [1, 2]|sum }}", {"s": "<b>", "ms": [{"n": 2}, {"n": 1}]}),
    ("{{ x|tojson }}", {"x": None}),
    ("{{ undefined_t|tojson }}", {}),
    ("{{ 'x'|nosuchfilter }}", {}),
    ("{{ x is nosuchtest }}", {"x": 1}),
    # tests
    ("{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ x is not none }} {{ x is number }} {{ s is string }} {{ x is string }}", {"x": 1, "n": None, "s": "a"}),
    ("{{ d is mapping }} {{ l is mapping }} {{ l is iterable }} {{ s is iterable }} {{ x is iterable }} {{ l is sequence }} {{ s is sequence }} {{ d is sequence }}", {"d": {}, "l": [], "s": "", "x": 1}),
    ("{{ t is true }} {{ t is false }} {{ f is false }} {{ 1 is true }} {{ t is boolean }} {{ 1 is integer }} {{ 1.0 is float }} {{ t is number }} {{ t is integer }}", {"t": True, "f": False}),
    ("{{ 'a' is equalto 'a' }} {{ 1 is eq 2 }} {{ 3 is divisibleby 3 }} {{ 3 is odd }} {{ 4 is even }} {{ 2 is in [1, 2] }} {{ 'A' is upper }} {{ 'a' is lower }} {{ 2 is gt 1 }} {{ 2 is lt 1 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 2 is ne 1 }} {{ none is sameas none }}", {}),
    ("{{ range is callable }} {{ x is callable }}", {"x": 1}),
    # globals
    ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }}", {}),
    ("{{ raise_exception('custom failure') }}", {}),
    ("{{ nosuchfunction(1) }}", {}),
    # macros and call blocks
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }}", {}),
    ("{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside {{ 1 }}{% endcall %}", {}),
    ("{% macro m(x) %}{{ x }}{{ glob }}{% endmacro %}{% set glob = 'G' %}{{ m(1) }}", {}),
    ("{% filter upper %}shout {{ 'it' }}{% endfilter %}", {}),
    ("{% generation %}gen {{ 1 }}{% endgeneration %} after", {}),
    # errors
    ("{% include 'x.html' %}", {}),
    ("{% extends 'base' %}", {}),
    ("{{ 1 + }}", {}),
    ("{% if true %}unclosed", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ undefined_u + 1 }}", {}),
    ("{{ [1, 2].append(3) }}", {}),
    ("{% for x in 5 %}{% endfor %}", {}),
    ("{{ x < 'a' }}", {"x": 1}),
]


def render_case(template, context):
    env_template = ctu._compile_jinja_template(template)
    return env_template.render(**context)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    lines = []
    for name, (bos, eos) in TEMPLATES.items():
        with open(os.path.join(args.out, name + ".jinja"), encoding="utf-8", newline="") as f:
            template = f.read()
        tok = make_tokenizer(bos, eos)
        for label, messages, agp, kwargs in template_cases(name):
            messages = canon(messages)
            # Every case renders at a fixed date, so that a template calling strftime_now() (Llama
            # 3.x) gives the same output on the day the tests run as on the day this script ran.
            kwargs = canon({"strftime_now": FIXED_DATE, **kwargs})
            extra = canon({**tok.special_tokens_map, **kwargs})
            rec = {"template": name, "case": label, "messages": messages,
                   "add_generation_prompt": agp, "extra": extra}
            try:
                rec["output"] = render(tok, template, messages, agp, kwargs)
            except Exception as e:  # noqa: BLE001 - the fixture records whatever Python raised
                rec["error"] = str(e)
                rec["error_type"] = type(e).__name__
            lines.append(json.dumps(rec, ensure_ascii=False))
    with open(os.path.join(args.out, "expected.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    case_lines = []
    for template, context in JINJA_CASES:
        context = canon(context)
        rec = {"template": template, "context": context}
        try:
            rec["output"] = render_case(template, context)
        except Exception as e:  # noqa: BLE001
            rec["error"] = str(e)
            rec["error_type"] = type(e).__name__
        case_lines.append(json.dumps(rec, ensure_ascii=False))
    with open(os.path.join(args.out, "jinja_cases.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(case_lines) + "\n")

    n_err = sum('"error":' in line for line in lines)
    print(f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}: "
          f"{len(lines)} template cases ({n_err} errors), {len(case_lines)} interpreter cases")


if __name__ == "__main__":
    main()
