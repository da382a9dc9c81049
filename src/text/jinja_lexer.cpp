// Jinja tokenizer: follows jinja2/lexer.py (3.1) rule by rule for the settings in jinja_lexer.h.
#include "text/jinja_lexer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "tensor/error.h"
#include "text/jinja_value.h"

namespace rlhf::jinja {

std::string format_loc(const std::string& name, Loc loc) {
  return name + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.col) + ": ";
}

namespace {

// Decodes the code point starting at byte i (lenient: a stray byte is its own code point).
char32_t cp_at(std::string_view s, size_t i, size_t* len) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
  *len = 1;
  if (n <= 0 || i + n >= s.size()) return c;
  char32_t cp = c & (n == 1 ? 0x1F : n == 2 ? 0x0F : 0x07);
  for (int k = 1; k <= n; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return c;
    cp = (cp << 6) | (cc & 0x3F);
  }
  *len = static_cast<size_t>(n) + 1;
  return cp;
}

// Python's `\s` / str.isspace on the code point at byte i; sets *len to its byte length.
bool space_at(std::string_view s, size_t i, size_t* len) {
  return py_isspace(cp_at(s, i, len));
}

// str.rstrip() with Python's whitespace.
std::string_view rstrip_ws(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    if (!space_at(s, start, &len) || start + len != end) break;
    end = start;
  }
  return s.substr(0, end);
}

bool all_space(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (!space_at(s, i, &len)) return false;
    i += len;
  }
  return true;
}

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
int hex_value(char32_t c) {
  if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<int>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<int>(c - 'A' + 10);
  return -1;
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& name) : name_(name) {
    // Newlines: \r\n and \r become \n; one trailing newline is dropped (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_.push_back(source[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        emit_text(pos, src_.substr(pos));
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      std::string_view text(src_.data() + pos, tag - pos);
      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop the whitespace between the line start and a block/comment tag.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && all_space(text.substr(l_pos))) text = text.substr(0, l_pos);
      }
      emit_text(pos, std::string(text));
      size_t after = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        pos = lex_comment(tag, after, &line_starting);
      } else if (kind == '%' && is_raw_begin(after, &pos)) {
        line_starting = src_[pos - 1] == '\n';
        pos = lex_raw(pos, &line_starting);
      } else {
        pos = lex_tag(tag, after, kind == '%', &line_starting);
      }
    }
    Token eof;
    eof.kind = Token::Kind::kEof;
    eof.loc = loc_of(src_.size());
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  Loc loc_of(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    const size_t start = line_starts_[line - 1];
    // Tokens come in order: count on from the previous position on the same line, so that a
    // long one-line template costs linear time, not quadratic.
    size_t from = start;
    int col = 1;
    if (last_offset_ >= start && last_offset_ <= offset) {
      from = last_offset_;
      col = last_col_;
    }
    for (size_t i = from; i < offset && i < src_.size(); ++i)
      if ((static_cast<unsigned char>(src_[i]) & 0xC0) != 0x80) ++col;
    last_offset_ = offset;
    last_col_ = col;
    return Loc{static_cast<int>(line), col};
  }

  [[noreturn]] void fail(size_t offset, const std::string& what) const {
    throw InputError(format_loc(name_, loc_of(offset)) + what);
  }

  size_t find_tag(size_t pos) const {
    size_t p = pos;
    while (true) {
      p = src_.find('{', p);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      const char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      ++p;
    }
  }

  void emit_text(size_t offset, std::string text) {
    if (text.empty()) return;
    Token t;
    t.kind = Token::Kind::kText;
    t.value = std::move(text);
    t.loc = loc_of(offset);
    tokens_.push_back(std::move(t));
  }

  size_t skip_ws(size_t p) const {
    while (p < src_.size()) {
      size_t len = 0;
      if (!space_at(src_, p, &len)) break;
      p += len;
    }
    return p;
  }

  // `{%(-|+|)\s*raw\s*(-%}\s*|%})`; on a match sets *end past it.
  bool is_raw_begin(size_t after, size_t* end) const {
    size_t p = skip_ws(after);
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    if (p < src_.size() && is_name_char(src_[p])) return false;
    p = skip_ws(p);
    if (src_.compare(p, 3, "-%}") == 0) {
      *end = skip_ws(p + 3);
      return true;
    }
    if (src_.compare(p, 2, "%}") == 0) {
      *end = p + 2;
      return true;
    }
    return false;
  }

  // Raw data up to `{%(-|+|)\s*endraw\s*(+%}|-%}\s*|%}\n?)`.
  size_t lex_raw(size_t pos, bool* line_starting) {
    size_t p = pos;
    while (true) {
      p = src_.find("{%", p);
      if (p == std::string::npos) fail(pos, "missing end of raw directive ({% endraw %})");
      size_t q = p + 2;
      char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : '\0';
      if (sign) ++q;
      q = skip_ws(q);
      if (src_.compare(q, 6, "endraw") == 0 && !(q + 6 < src_.size() && is_name_char(src_[q + 6]))) {
        q = skip_ws(q + 6);
        size_t end = std::string::npos;
        if (src_.compare(q, 3, "+%}") == 0) {
          end = q + 3;
        } else if (src_.compare(q, 3, "-%}") == 0) {
          end = skip_ws(q + 3);
        } else if (src_.compare(q, 2, "%}") == 0) {
          end = q + 2;
          if (end < src_.size() && src_[end] == '\n') ++end;
        }
        if (end != std::string::npos) {
          std::string_view text(src_.data() + pos, p - pos);
          if (sign == '-') {
            text = rstrip_ws(text);
          } else if (sign != '+') {
            const size_t nl = text.rfind('\n');
            const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
            if ((l_pos > 0 || *line_starting) && all_space(text.substr(l_pos))) text = text.substr(0, l_pos);
          }
          emit_text(pos, std::string(text));
          *line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      p += 2;
    }
  }

  // Comment body up to the first `+#}`, `-#}\s*` or `#}\n?`.
  size_t lex_comment(size_t tag, size_t after, bool* line_starting) {
    size_t p = after;
    while (true) {
      p = src_.find("#}", p);
      if (p == std::string::npos) fail(tag, "missing end of comment tag (#})");
      size_t end;
      if (p > after && src_[p - 1] == '-') {
        end = skip_ws(p + 2);
      } else {
        end = p + 2;
        if (!(p > after && src_[p - 1] == '+') && end < src_.size() && src_[end] == '\n') ++end;
      }
      *line_starting = src_[end - 1] == '\n';
      return end;
    }
  }

  // Tokens of a {{ ... }} or {% ... %} tag.
  size_t lex_tag(size_t tag, size_t after, bool block, bool* line_starting) {
    Token begin;
    begin.kind = block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin;
    begin.loc = loc_of(tag);
    tokens_.push_back(begin);
    std::vector<char> balance;
    size_t p = after;
    while (true) {
      if (p >= src_.size()) fail(tag, std::string("tag ") + (block ? "'{%'" : "'{{'") + " is never closed");
      if (balance.empty()) {
        const size_t end = match_tag_end(p, block);
        if (end != std::string::npos) {
          Token t;
          t.kind = block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd;
          t.loc = loc_of(p);
          tokens_.push_back(t);
          *line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      size_t len = 0;
      if (space_at(src_, p, &len)) {
        p += len;
        continue;
      }
      p = lex_token(p, &balance);
    }
  }

  size_t match_tag_end(size_t p, bool block) const {
    if (block) {
      if (src_.compare(p, 3, "+%}") == 0) return p + 3;
      if (src_.compare(p, 3, "-%}") == 0) return skip_ws(p + 3);
      if (src_.compare(p, 2, "%}") == 0) return p + 2 < src_.size() && src_[p + 2] == '\n' ? p + 3 : p + 2;
    } else {
      if (src_.compare(p, 3, "-}}") == 0) return skip_ws(p + 3);
      if (src_.compare(p, 2, "}}") == 0) return p + 2;
    }
    return std::string::npos;
  }

  size_t lex_token(size_t p, std::vector<char>* balance) {
    Token t;
    t.loc = loc_of(p);
    const char c = src_[p];
    if (is_digit(c)) {
      size_t end = lex_number(p, &t);
      tokens_.push_back(std::move(t));
      return end;
    }
    if (is_name_start(c)) {
      size_t end = p;
      while (end < src_.size() && is_name_char(src_[end])) ++end;
      t.kind = Token::Kind::kName;
      t.value = src_.substr(p, end - p);
      tokens_.push_back(std::move(t));
      return end;
    }
    if (c == '\'' || c == '"') {
      size_t end = p + 1;
      while (end < src_.size() && src_[end] != c) end += src_[end] == '\\' ? 2 : 1;
      if (end >= src_.size()) fail(p, "unterminated string literal");
      t.kind = Token::Kind::kString;
      t.value = unescape(src_.substr(p + 1, end - p - 1), p);
      tokens_.push_back(std::move(t));
      return end + 1;
    }
    static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                       "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
    for (const char* op : kOps) {
      const size_t n = std::char_traits<char>::length(op);
      if (src_.compare(p, n, op) != 0) continue;
      if (n == 1 && (op[0] == '(' || op[0] == '[' || op[0] == '{')) {
        balance->push_back(op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}');
      } else if (n == 1 && (op[0] == ')' || op[0] == ']' || op[0] == '}')) {
        if (balance->empty()) fail(p, std::string("unexpected '") + op + "'");
        if (balance->back() != op[0])
          fail(p, std::string("unexpected '") + op + "', expected '" + balance->back() + "'");
        balance->pop_back();
      }
      t.kind = Token::Kind::kOp;
      t.value = op;
      tokens_.push_back(std::move(t));
      return p + n;
    }
    size_t len = 0;
    cp_at(src_, p, &len);
    fail(p, "unexpected character '" + src_.substr(p, len) + "'");
  }

  // Jinja's integer_re (0b/0o/0x, underscores) and float_re (fraction and/or exponent).
  size_t lex_number(size_t p, Token* t) {
    auto digits = [&](size_t q, auto ok) {
      // (_?d)* after a first digit: returns the end of a run like 1_000
      while (q < src_.size()) {
        if (ok(src_[q])) {
          ++q;
        } else if (src_[q] == '_' && q + 1 < src_.size() && ok(src_[q + 1])) {
          q += 2;
        } else {
          break;
        }
      }
      return q;
    };
    auto strip_us = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    const bool after_dot = p > 0 && src_[p - 1] == '.';
    if (src_[p] == '0' && p + 1 < src_.size()) {
      const char x = static_cast<char>(src_[p + 1] | 0x20);
      int base = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 0;
      if (base) {
        auto ok = [base](char ch) {
          const int v = hex_value(static_cast<unsigned char>(ch));
          return v >= 0 && v < base;
        };
        size_t q = p + 2;
        if (q < src_.size() && src_[q] == '_') ++q;
        if (q < src_.size() && ok(src_[q])) {
          const size_t end = digits(q, ok);
          t->kind = Token::Kind::kInt;
          const std::string text = strip_us(src_.substr(p + 2, end - p - 2));
          if (std::from_chars(text.data(), text.data() + text.size(), t->int_value, base).ec != std::errc())
            fail(p, "integer literal out of the 64-bit range: " + src_.substr(p, end - p));
          return end;
        }
      }
    }
    auto dig = [](char ch) { return ch >= '0' && ch <= '9'; };
    const size_t int_end = digits(p, dig);
    if (!after_dot) {
      size_t q = int_end;
      bool is_float = false;
      if (q + 1 < src_.size() && src_[q] == '.' && dig(src_[q + 1])) {
        q = digits(q + 1, dig);
        is_float = true;
      }
      if (q < src_.size() && (src_[q] | 0x20) == 'e') {
        size_t r = q + 1;
        if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
        if (r < src_.size() && dig(src_[r])) {
          q = digits(r, dig);
          is_float = true;
        }
      }
      if (is_float) {
        t->kind = Token::Kind::kFloat;
        const std::string text = strip_us(src_.substr(p, q - p));
        const auto res = std::from_chars(text.data(), text.data() + text.size(), t->float_value);
        if (res.ec == std::errc::result_out_of_range) {
          t->float_value = text.find_first_of("eE") != std::string::npos && text.find("e-") == std::string::npos &&
                                   text.find("E-") == std::string::npos
                               ? HUGE_VAL
                               : 0.0;  // Python: inf for overflow, 0.0 for underflow
        } else if (res.ec != std::errc()) {
          fail(p, "invalid float literal '" + text + "'");
        }
        return q;
      }
    }
    // Python's int() of "0_0" style zeros and plain decimals.
    t->kind = Token::Kind::kInt;
    const std::string text = strip_us(src_.substr(p, int_end - p));
    if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos)
      fail(p, "invalid integer literal '" + text + "'");
    try {
      t->int_value = std::stoll(text);
    } catch (const std::out_of_range&) {
      fail(p, "integer literal out of the 64-bit range: " + text);
    }
    return int_end;
  }

  // Python: value.encode("ascii", "backslashreplace").decode("unicode-escape").
  std::string unescape(const std::string& raw, size_t offset) const {
    const std::u32string in = utf8_decode(raw);
    std::u32string out;
    auto escaped = [](char32_t cp) {
      char buf[16];
      if (cp < 0x100) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
      } else if (cp < 0x10000) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
      }
      std::u32string s;
      for (const char* q = buf; *q; ++q) s.push_back(static_cast<unsigned char>(*q));
      return s;
    };
    for (size_t i = 0; i < in.size(); ++i) {
      const char32_t c = in[i];
      if (c != U'\\') {
        out.push_back(c);
        continue;
      }
      if (i + 1 >= in.size()) fail(offset, "string literal ends with a backslash");
      const char32_t e = in[++i];
      if (e >= 0x80) {
        // backslashreplace turned the character into \xNN / \uNNNN first; the backslash before
        // it then escapes that backslash.
        out.push_back(U'\\');
        const std::u32string esc = escaped(e);
        out.append(esc.begin() + 1, esc.end());
        continue;
      }
      switch (e) {
        case U'\n': break;
        case U'\\': out.push_back(U'\\'); break;
        case U'\'': out.push_back(U'\''); break;
        case U'"': out.push_back(U'"'); break;
        case U'a': out.push_back(7); break;
        case U'b': out.push_back(8); break;
        case U'f': out.push_back(12); break;
        case U'n': out.push_back(10); break;
        case U'r': out.push_back(13); break;
        case U't': out.push_back(9); break;
        case U'v': out.push_back(11); break;
        case U'x':
        case U'u':
        case U'U': {
          const int n = e == U'x' ? 2 : e == U'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            const int v = i + 1 + k < in.size() ? hex_value(in[i + 1 + k]) : -1;
            if (v < 0) fail(offset, std::string("truncated \\") + static_cast<char>(e) + " escape in string literal");
            cp = cp * 16 + static_cast<char32_t>(v);
          }
          if (cp > 0x10FFFF) fail(offset, "illegal Unicode character in string literal");
          out.push_back(cp);
          i += n;
          break;
        }
        case U'N':
          fail(offset, "\\N{...} escapes in string literals are not supported");
        default:
          if (e >= U'0' && e <= U'7') {
            char32_t cp = e - U'0';
            for (int k = 0; k < 2 && i + 1 < in.size() && in[i + 1] >= U'0' && in[i + 1] <= U'7'; ++k)
              cp = cp * 8 + (in[++i] - U'0');
            out.push_back(cp);
          } else {
            out.push_back(U'\\');
            out.push_back(e);
          }
      }
    }
    return utf8_encode(out);
  }

  std::string name_;
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  mutable size_t last_offset_ = 0;  // loc_of's previous answer
  mutable int last_col_ = 1;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const std::string& name) {
  return Lexer(source, name).run();
}

}  // namespace rlhf::jinja
