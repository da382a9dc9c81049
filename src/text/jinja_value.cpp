// Python semantics of Jinja values: see jinja_value.h.
#include "text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace rlhf::jinja {

// ---- construction -----------------------------------------------------------------------------

Value Value::undefined(std::string hint) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::none() {
  Value v;
  v.type_ = Type::kNone;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.type_ = Type::kBool;
  v.b_ = b;
  v.i_ = b ? 1 : 0;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.type_ = Type::kInt;
  v.i_ = i;
  return v;
}

Value Value::floating(double f) {
  Value v;
  v.type_ = Type::kFloat;
  v.f_ = f;
  return v;
}

Value Value::string(std::string s) {
  check_string_bytes(s.size());
  if (RenderBudget* b = RenderBudget::active()) {
    b->steps(1 + s.size() / 32);
    b->alloc(sizeof(Value) + s.size());
  }
  Value v;
  v.type_ = Type::kString;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

// Depth of a container holding values of `child_depth`; fails past the limit.
static int container_depth(int child_depth) {
  const int limit = current_limits().max_value_depth;
  if (child_depth + 1 > limit)
    throw EvalError("values nested deeper than " + std::to_string(limit) + " levels (limit max_value_depth)");
  return child_depth + 1;
}

// The budget of a container of n items (each counted as two values for dicts).
static void charge_items(size_t n, size_t values_per_item) {
  check_items(n);
  if (RenderBudget* b = RenderBudget::active()) {
    b->steps(1 + n);
    b->alloc(sizeof(Value) + n * values_per_item * sizeof(Value));
  }
}

Value Value::list(std::vector<Value> items, bool tuple) {
  charge_items(items.size(), 1);
  int child = 0;
  for (const Value& x : items) child = std::max(child, x.nesting());
  Value v;
  v.type_ = Type::kList;
  auto data = std::make_shared<ListData>();
  data->depth = container_depth(child);
  data->items = std::move(items);
  data->tuple = tuple;
  v.list_ = std::move(data);
  return v;
}

Value Value::dict(std::vector<std::pair<Value, Value>> items) {
  charge_items(items.size(), 2);
  int child = 0;
  for (const auto& kv : items) child = std::max({child, kv.first.nesting(), kv.second.nesting()});
  Value v;
  v.type_ = Type::kDict;
  auto data = std::make_shared<DictData>();
  data->depth = container_depth(child);
  data->items = std::move(items);
  v.dict_ = std::move(data);
  return v;
}

Value Value::namespace_(std::vector<std::pair<std::string, Value>> attrs) {
  Value v;
  v.type_ = Type::kNamespace;
  auto data = std::make_shared<NamespaceData>();
  data->attrs = std::move(attrs);
  if (RenderBudget* b = RenderBudget::active()) b->keep(data);
  v.ns_ = std::move(data);
  return v;
}

Value Value::callable(std::string name, NativeFn fn, int depth) {
  Value v;
  v.type_ = Type::kCallable;
  auto data = std::make_shared<CallableData>();
  data->name = std::move(name);
  data->fn = std::move(fn);
  data->depth = depth > 0 ? container_depth(depth - 1) : 0;
  v.fn_ = std::move(data);
  return v;
}

Value Value::loop(std::shared_ptr<LoopData> loop) {
  Value v;
  v.type_ = Type::kLoop;
  v.loop_ = std::move(loop);
  return v;
}

double Value::as_float() const { return type_ == Type::kFloat ? f_ : static_cast<double>(i_); }

const std::vector<Value>& Value::items() const { return list_->items; }

bool Value::is_tuple() const { return list_ && list_->tuple; }

int Value::nesting() const {
  switch (type_) {
    case Type::kList: return list_->depth;
    case Type::kDict: return dict_->depth;
    case Type::kCallable: return fn_->depth;
    default: return 0;
  }
}

const std::string& Value::undefined_hint() const {
  static const std::string kEmpty;
  return s_ ? *s_ : kEmpty;
}

const Value* DictData::find(const Value& key) const {
  charge_steps(items.size());
  for (const auto& kv : items)
    if (equals(kv.first, key)) return &kv.second;
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  charge_steps(items.size());
  for (const auto& kv : items)
    if (kv.first.is_string() && kv.first.str() == key) return &kv.second;
  return nullptr;
}

const Value* NamespaceData::find(std::string_view key) const {
  for (const auto& kv : attrs)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

void NamespaceData::set(const std::string& key, Value v) {
  for (auto& kv : attrs)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  attrs.emplace_back(key, std::move(v));
}

// ---- UTF-8 --------------------------------------------------------------------------------------

std::u32string utf8_decode(std::string_view s) {
  charge_bytes_touched(s.size());
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int n = 0;
    char32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      out.push_back(0xDC00 + c);  // invalid lead byte, kept as in Python's surrogateescape
      ++i;
      continue;
    }
    bool ok = true;
    for (int k = 1; ok && k <= n; ++k) {
      if (i + k >= s.size()) {
        ok = false;
        break;
      }
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const char32_t min_cp = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (!ok || cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(0xDC00 + c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += n + 1;
  }
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
    out.push_back(static_cast<char>(cp - 0xDC00));  // a byte that was not valid UTF-8
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) utf8_append(out, cp);
  return out;
}

static bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

int64_t utf8_length(std::string_view s) {
  if (is_ascii(s)) return static_cast<int64_t>(s.size());
  return static_cast<int64_t>(utf8_decode(s).size());
}

bool py_isspace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// ---- case mapping (see the header for the covered scripts) -----------------------------------

// Latin digraphs with three cases (DŽ Dž dž, LJ Lj lj, NJ Nj nj, DZ Dz dz): returns the upper-case
// member's code point, or 0.
static char32_t digraph_base(char32_t c) {
  if (c >= 0x1C4 && c <= 0x1CC) return 0x1C4 + (c - 0x1C4) / 3 * 3;
  if (c >= 0x1F1 && c <= 0x1F3) return 0x1F1;
  return 0;
}

static char32_t upper1(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if (const char32_t d = digraph_base(c)) return d;
  if (c == 0xB5) return 0x39C;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if (c == 0x130 || c == 0x138 || c == 0x149) return c;
    const bool odd_is_lower = (c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177);
    const bool even_is_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_is_lower && (c & 1)) return c - 1;
    if (even_is_lower && !(c & 1)) return c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3C9) return c == 0x3C2 ? 0x3A3 : c - 32;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CA || c == 0x3CB) return c - 32;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF)) return (c & 1) ? c - 1 : c;
  if (c >= 0xFF41 && c <= 0xFF5A) return c - 32;
  return c;
}

static char32_t lower1(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (const char32_t d = digraph_base(c)) return d + 2;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x130) return 'i';  // the combining dot that Python adds is appended by the caller
    if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
    const bool even_is_upper = (c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177);
    const bool odd_is_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (even_is_upper && !(c & 1)) return c + 1;
    if (odd_is_upper && (c & 1)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c == 0x3AA || c == 0x3AB) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF)) return (c & 1) ? c : c + 1;
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
  return c;
}

static bool is_cased(char32_t c) { return upper1(c) != c || lower1(c) != c || c == 0xDF || digraph_base(c) != 0; }

static void append_upper(std::u32string& out, char32_t c) {
  if (c == 0xDF) {
    out += U"SS";
  } else if (c == 0x149) {
    out += U"\u02BCN";
  } else {
    out.push_back(upper1(c));
  }
}

static void append_lower(std::u32string& out, const std::u32string& s, size_t i) {
  const char32_t c = s[i];
  if (c == 0x3A3) {  // final sigma: after a cased letter and not before one
    const bool after_cased = i > 0 && is_cased(s[i - 1]);
    const bool before_cased = i + 1 < s.size() && is_cased(s[i + 1]);
    out.push_back(after_cased && !before_cased ? 0x3C2 : 0x3C3);
  } else if (c == 0x130) {
    out += U"i\u0307";
  } else {
    out.push_back(lower1(c));
  }
}

static void append_title(std::u32string& out, char32_t c) {
  if (c == 0xDF) {
    out += U"Ss";
  } else if (const char32_t d = digraph_base(c)) {
    out.push_back(d + 1);
  } else {
    append_upper(out, c);
  }
}

std::string py_upper(std::string_view s) {
  if (is_ascii(s)) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    return out;
  }
  const std::u32string in = utf8_decode(s);
  std::u32string out;
  for (char32_t c : in) append_upper(out, c);
  return utf8_encode(out);
}

std::string py_lower(std::string_view s) {
  if (is_ascii(s)) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return out;
  }
  const std::u32string in = utf8_decode(s);
  std::u32string out;
  for (size_t i = 0; i < in.size(); ++i) append_lower(out, in, i);
  return utf8_encode(out);
}

std::string py_title(std::string_view s) {
  const std::u32string in = utf8_decode(s);
  std::u32string out;
  bool prev_cased = false;
  for (size_t i = 0; i < in.size(); ++i) {
    if (prev_cased) {
      append_lower(out, in, i);
    } else {
      append_title(out, in[i]);
    }
    prev_cased = is_cased(in[i]);
  }
  return utf8_encode(out);
}

std::string py_capitalize(std::string_view s) {
  const std::u32string in = utf8_decode(s);
  std::u32string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == 0) {
      append_title(out, in[i]);
    } else {
      append_lower(out, in, i);
    }
  }
  return utf8_encode(out);
}

std::string jinja_title(std::string_view s) {
  // Jinja: "".join(w[0].upper() + w[1:].lower() for w in re.split(r"([-\s({\[<]+)", s) if w)
  const std::u32string in = utf8_decode(s);
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
  std::u32string out;
  size_t i = 0;
  while (i < in.size()) {
    size_t j = i;
    const bool sep = is_sep(in[i]);
    while (j < in.size() && is_sep(in[j]) == sep) ++j;
    append_upper(out, in[i]);
    for (size_t k = i + 1; k < j; ++k) append_lower(out, in, k);
    i = j;
  }
  return utf8_encode(out);
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  if (!chars && is_ascii(s)) {
    size_t b = 0, e = s.size();
    auto ws = [](char c) { return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20); };
    if (left)
      while (b < e && ws(s[b])) ++b;
    if (right)
      while (e > b && ws(s[e - 1])) --e;
    return std::string(s.substr(b, e - b));
  }
  const std::u32string in = utf8_decode(s);
  std::u32string set;
  if (chars) set = utf8_decode(*chars);
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t b = 0, e = in.size();
  if (left)
    while (b < e && strip_it(in[b])) ++b;
  if (right)
    while (e > b && strip_it(in[e - 1])) --e;
  return utf8_encode(std::u32string_view(in).substr(b, e - b));
}

// ---- Python semantics ---------------------------------------------------------------------------

bool truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone:
      return false;
    case Value::Type::kBool:
      return v.as_bool();
    case Value::Type::kInt:
      return v.as_int() != 0;
    case Value::Type::kFloat:
      return v.as_float() != 0.0;
    case Value::Type::kString:
      return !v.str().empty();
    case Value::Type::kList:
      return !v.items().empty();
    case Value::Type::kDict:
      return !v.dict_data().items.empty();
    default:
      return true;
  }
}

std::string type_name(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "Undefined";
    case Value::Type::kNone: return "NoneType";
    case Value::Type::kBool: return "bool";
    case Value::Type::kInt: return "int";
    case Value::Type::kFloat: return "float";
    case Value::Type::kString: return "str";
    case Value::Type::kList: return v.is_tuple() ? "tuple" : "list";
    case Value::Type::kDict: return "dict";
    case Value::Type::kNamespace: return "Namespace";
    case Value::Type::kCallable: return "function";
    case Value::Type::kLoop: return "LoopContext";
  }
  return "object";
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // shortest round trip: "-1.2345e+02", "1e+20"
  size_t pos = 0;
  std::string out;
  if (sci[0] == '-') {
    out = "-";
    pos = 1;
  }
  const size_t epos = sci.find('e');
  std::string digits;
  for (size_t k = pos; k < epos; ++k)
    if (sci[k] != '.') digits.push_back(sci[k]);
  const int exp = std::stoi(sci.substr(epos + 1));
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      std::string int_part = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (static_cast<int>(int_part.size()) < exp + 1) int_part.push_back('0');
      std::string frac = digits.size() > static_cast<size_t>(exp + 1) ? digits.substr(exp + 1) : "0";
      out += int_part + "." + frac;
    } else {
      out += "0." + std::string(-exp - 1, '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += ebuf;
  }
  return out;
}

static bool py_printable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c <= 0xA0 || c == 0xAD) return false;
  if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x180E || c == 0x1680) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F)) return false;
  if (c == 0x3000 || (c >= 0xD800 && c <= 0xF8FF) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) return false;
  if (c >= 0xF0000) return false;
  return true;
}

std::string py_str_repr(std::string_view s) {
  const std::u32string in = utf8_decode(s);
  const bool has_single = in.find(U'\'') != std::u32string::npos;
  const bool has_double = in.find(U'"') != std::u32string::npos;
  const char32_t quote = has_single && !has_double ? U'"' : U'\'';
  std::string out;
  out.push_back(static_cast<char>(quote));
  for (char32_t c : in) {
    check_string_bytes(out.size());
    if (c == quote || c == U'\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == U'\n') {
      out += "\\n";
    } else if (c == U'\r') {
      out += "\\r";
    } else if (c == U'\t') {
      out += "\\t";
    } else if (!py_printable(c)) {
      char buf[16];
      if (c < 0x100) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      } else if (c < 0x10000) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      utf8_append(out, c);
    }
  }
  out.push_back(static_cast<char>(quote));
  return out;
}

static std::string str_at(const Value& v, int depth);

// Printing recurses into namespaces, which may contain themselves.
static void check_print_depth(int depth) {
  const int limit = current_limits().max_value_depth;
  if (depth > limit)
    throw EvalError("printing values nested deeper than " + std::to_string(limit) + " levels (limit max_value_depth)");
}

static void append_checked(std::string& out, const std::string& piece) {
  check_string_bytes(out.size() + piece.size());
  out += piece;
}

static std::string repr_at(const Value& v, int depth) {
  check_print_depth(depth);
  switch (v.type()) {
    case Value::Type::kUndefined:
      return "Undefined";
    case Value::Type::kString:
      return py_str_repr(v.str());
    case Value::Type::kList: {
      const auto& items = v.items();
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += ", ";
        append_checked(out, repr_at(items[k], depth + 1));
      }
      if (v.is_tuple() && items.size() == 1) out += ",";
      out += v.is_tuple() ? ")" : "]";
      return out;
    }
    case Value::Type::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& kv : v.dict_data().items) {
        if (!first) out += ", ";
        first = false;
        append_checked(out, repr_at(kv.first, depth + 1) + ": " + repr_at(kv.second, depth + 1));
      }
      return out + "}";
    }
    default:
      return str_at(v, depth);
  }
}

std::string repr(const Value& v) { return repr_at(v, 0); }

std::string to_str(const Value& v) { return str_at(v, 0); }

static std::string str_at(const Value& v, int depth) {
  check_print_depth(depth);
  switch (v.type()) {
    case Value::Type::kUndefined: return "";
    case Value::Type::kNone: return "None";
    case Value::Type::kBool: return v.as_bool() ? "True" : "False";
    case Value::Type::kInt: return std::to_string(v.as_int());
    case Value::Type::kFloat: return py_float_repr(v.as_float());
    case Value::Type::kString: return v.str();
    case Value::Type::kList:
    case Value::Type::kDict: return repr_at(v, depth);
    case Value::Type::kNamespace: {
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& kv : v.ns().attrs) {
        if (!first) out += ", ";
        first = false;
        append_checked(out, py_str_repr(kv.first) + ": " + repr_at(kv.second, depth + 1));
      }
      return out + "}>";
    }
    case Value::Type::kCallable: return "<function " + v.fn().name + ">";
    case Value::Type::kLoop: {
      const LoopData& l = v.loop_data();
      return "<LoopContext " + std::to_string(l.index0 + 1) + "/" + std::to_string(l.items->size()) + ">";
    }
  }
  return "";
}

bool equals(const Value& a, const Value& b) {
  using T = Value::Type;
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case T::kUndefined:
    case T::kNone:
      return true;
    case T::kString:
      charge_bytes_touched(std::min(a.str().size(), b.str().size()));
      return a.str() == b.str();
    case T::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      charge_steps(x.size());
      for (size_t k = 0; k < x.size(); ++k)
        if (!equals(x[k], y[k])) return false;
      return true;
    }
    case T::kDict: {
      const auto& x = a.dict_data();
      const auto& y = b.dict_data();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& kv : x.items) {
        const Value* other = y.find(kv.first);
        if (!other || !equals(kv.second, *other)) return false;
      }
      return true;
    }
    case T::kNamespace:
      return &a.ns() == &b.ns();
    case T::kCallable:
      return &a.fn() == &b.fn();
    case T::kLoop:
      return &a.loop_data() == &b.loop_data();
    default:
      return false;
  }
}

static int compare3(const Value& a, const Value& b, std::string_view op) {
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    const double x = a.as_float(), y = b.as_float();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    charge_bytes_touched(std::min(a.str().size(), b.str().size()));
    const int c = a.str().compare(b.str());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.items();
    const auto& y = b.items();
    charge_steps(std::min(x.size(), y.size()));
    for (size_t k = 0; k < x.size() && k < y.size(); ++k)
      if (!equals(x[k], y[k])) return compare3(x[k], y[k], op);
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw EvalError("'" + std::string(op) + "' not supported between instances of '" + type_name(a) +
                  "' and '" + type_name(b) + "'");
}

bool less_than(const Value& a, const Value& b) { return compare3(a, b, "<") < 0; }

bool py_compare(const Value& a, const Value& b, std::string_view op) {
  const int c = compare3(a, b, op);
  if (op == "<") return c < 0;
  if (op == ">") return c > 0;
  if (op == "<=") return c <= 0;
  return c >= 0;
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::kString:
      if (!item.is_string())
        throw EvalError("'in <string>' requires string as left operand, not " + type_name(item));
      charge_bytes_touched(container.str().size());
      return container.str().find(item.str()) != std::string::npos;
    case Value::Type::kList:
      charge_steps(container.items().size());
      for (const Value& v : container.items())
        if (equals(v, item)) return true;
      return false;
    case Value::Type::kDict:
      return container.dict_data().find(item) != nullptr;
    case Value::Type::kUndefined:
      return false;
    case Value::Type::kNamespace:
      return container.ns().find(item.is_string() ? item.str() : std::string()) != nullptr;
    default:
      throw EvalError("argument of type '" + type_name(container) + "' is not iterable");
  }
}

int64_t length(const Value& v) {
  switch (v.type()) {
    case Value::Type::kString: return utf8_length(v.str());
    case Value::Type::kList: return static_cast<int64_t>(v.items().size());
    case Value::Type::kDict: return static_cast<int64_t>(v.dict_data().items.size());
    case Value::Type::kUndefined: return 0;
    case Value::Type::kLoop: return static_cast<int64_t>(v.loop_data().items->size());
    default: throw EvalError("object of type '" + type_name(v) + "' has no len()");
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::kList:
      charge_steps(v.items().size());
      return v.items();
    case Value::Type::kDict: {
      charge_steps(v.dict_data().items.size());
      std::vector<Value> keys;
      keys.reserve(v.dict_data().items.size());
      for (const auto& kv : v.dict_data().items) keys.push_back(kv.first);
      return keys;
    }
    case Value::Type::kString: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      check_items(utf8_length(s));
      if (is_ascii(s)) {
        for (char c : s) chars.push_back(Value::string(std::string(1, c)));
      } else {
        for (char32_t cp : utf8_decode(s)) {
          std::string one;
          utf8_append(one, cp);
          chars.push_back(Value::string(std::move(one)));
        }
      }
      return chars;
    }
    case Value::Type::kUndefined:
      return {};
    default:
      throw EvalError("'" + type_name(v) + "' object is not iterable");
  }
}

// ---- json.dumps -----------------------------------------------------------------------------------

static void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  auto hex4 = [&](unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", v);
    out += buf;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20) {
      hex4(c);
    } else if (c < 0x80 || !ensure_ascii) {
      out.push_back(static_cast<char>(c));
    } else {
      // Decode the whole non-ASCII code point and escape it (surrogate pairs above the BMP).
      size_t j = i + 1;
      while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
      for (char32_t cp : utf8_decode(s.substr(i, j - i))) {
        if (cp >= 0x10000) {
          const unsigned v = static_cast<unsigned>(cp - 0x10000);
          hex4(0xD800 + (v >> 10));
          hex4(0xDC00 + (v & 0x3FF));
        } else {
          hex4(static_cast<unsigned>(cp));
        }
      }
      i = j - 1;
    }
  }
  out.push_back('"');
}

static std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return py_float_repr(d);
}

static std::string json_key(const Value& k) {
  switch (k.type()) {
    case Value::Type::kString: return k.str();
    case Value::Type::kInt: return std::to_string(k.as_int());
    case Value::Type::kFloat: return json_float(k.as_float());
    case Value::Type::kBool: return k.as_bool() ? "true" : "false";
    case Value::Type::kNone: return "null";
    default: throw EvalError("keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

static void json_dump(std::string& out, const Value& v, const JsonDumpOptions& opt, int level) {
  auto newline = [&](int lvl) {
    out.push_back('\n');
    for (int k = 0; k < lvl; ++k) append_checked(out, opt.indent);
  };
  switch (v.type()) {
    case Value::Type::kNone: out += "null"; return;
    case Value::Type::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::kInt: out += std::to_string(v.as_int()); return;
    case Value::Type::kFloat: out += json_float(v.as_float()); return;
    case Value::Type::kString: json_string(out, v.str(), opt.ensure_ascii); return;
    case Value::Type::kList: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += opt.item_separator;
        if (opt.has_indent) newline(level + 1);
        json_dump(out, items[k], opt, level + 1);
        check_string_bytes(out.size());
      }
      if (opt.has_indent) newline(level);
      out.push_back(']');
      return;
    }
    case Value::Type::kDict: {
      const auto& src = v.dict_data().items;
      if (src.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      entries.reserve(src.size());
      for (const auto& kv : src) entries.emplace_back(json_key(kv.first), &kv.second);
      if (opt.sort_keys)
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      out.push_back('{');
      for (size_t k = 0; k < entries.size(); ++k) {
        if (k) out += opt.item_separator;
        if (opt.has_indent) newline(level + 1);
        json_string(out, entries[k].first, opt.ensure_ascii);
        out += opt.key_separator;
        json_dump(out, *entries[k].second, opt, level + 1);
        check_string_bytes(out.size());
      }
      if (opt.has_indent) newline(level);
      out.push_back('}');
      return;
    }
    default:
      throw EvalError("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

std::string json_dumps(const Value& v, const JsonDumpOptions& opt) {
  std::string out;
  json_dump(out, v, opt, 0);
  return out;
}

static Value from_json_at(const nlohmann::json& j, int depth) {
  if (depth > current_limits().max_value_depth)
    throw EvalError("JSON nested deeper than " + std::to_string(current_limits().max_value_depth) +
                    " levels (limit max_value_depth)");
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::floating(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::floating(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<Value, Value>> items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(Value::string(it.key()), from_json_at(it.value(), depth + 1));
      return Value::dict(std::move(items));
    }
    default:
      throw EvalError("unsupported JSON value (binary) in the template input");
  }
}

Value from_json(const nlohmann::json& j) { return from_json_at(j, 0); }

}  // namespace rlhf::jinja
