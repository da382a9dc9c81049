// Tokenizer for the Jinja subset of ChatTemplate, configured as transformers configures Jinja2:
// trim_blocks=True (one newline after a block or comment tag is dropped), lstrip_blocks=True
// (spaces and tabs before a block or comment tag that starts its line are dropped),
// keep_trailing_newline=False, `-`/`+` whitespace control on every tag kind, \r\n and \r read as
// \n, `{% raw %}` sections. String literals are unescaped as Python's unicode-escape codec does.
//
// Every token carries its line and column (1-based, in code points of the template source), so
// that parse and evaluation errors can name where the construct is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlhf::jinja {

struct Loc {
  int line = 0;
  int col = 0;
};

struct Token {
  enum class Kind : uint8_t {
    kText,        // template data between tags (value)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,        // identifier (value)
    kString,      // string literal, unescaped (value)
    kInt,         // integer literal (int_value)
    kFloat,       // float literal (float_value)
    kOp,          // operator or punctuation (value: "+", "//", "(", "|", ...)
    kEof,
  };
  Kind kind = Kind::kEof;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0;
  Loc loc;
};

// Throws InputError "<name>:<line>:<col>: <what>" on malformed input.
std::vector<Token> tokenize(const std::string& source, const std::string& name);

// "<name>:<line>:<col>: "
std::string format_loc(const std::string& name, Loc loc);

}  // namespace rlhf::jinja
