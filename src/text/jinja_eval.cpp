// Interpreter of the Jinja subset: statements, expressions, attribute access, methods, filters,
// tests and the built-in globals. See jinja_eval.h for the scoping rules.
#include "text/jinja_eval.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

#include "tensor/error.h"

namespace rlhf::jinja {

// ---- scopes ---------------------------------------------------------------------------------------

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent.get())
    for (const auto& kv : s->vars)
      if (kv.first == name) return &kv.second;
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& kv : vars)
    if (kv.first == name) {
      kv.second = std::move(v);
      return;
    }
  vars.emplace_back(name, std::move(v));
}

static ScopePtr child_scope(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

namespace {

[[noreturn]] void fail_undefined(const Value& v) {
  throw EvalError(v.undefined_hint().empty() ? std::string("value is undefined") : v.undefined_hint());
}

// Binds call arguments to parameter names (Python's rules, no *args).
struct Bound {
  std::vector<Value> v;
  std::vector<bool> given;
  bool has(size_t i) const { return given[i]; }
  const Value& operator[](size_t i) const { return v[i]; }
};

Bound bind(std::string_view fname, const CallArgs& args, std::initializer_list<std::string_view> names) {
  Bound b;
  b.v.resize(names.size());
  b.given.assign(names.size(), false);
  if (args.positional.size() > names.size())
    throw EvalError(std::string(fname) + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
                    std::to_string(args.positional.size()) + " given)");
  for (size_t i = 0; i < args.positional.size(); ++i) {
    b.v[i] = args.positional[i];
    b.given[i] = true;
  }
  for (const auto& kw : args.keyword) {
    size_t i = 0;
    for (const auto n : names) {
      if (n == kw.first) break;
      ++i;
    }
    if (i == names.size())
      throw EvalError(std::string(fname) + "() got an unexpected keyword argument '" + kw.first + "'");
    if (b.given[i]) throw EvalError(std::string(fname) + "() got multiple values for argument '" + kw.first + "'");
    b.v[i] = kw.second;
    b.given[i] = true;
  }
  return b;
}

const std::string& need_str(const Value& v, std::string_view what) {
  if (!v.is_string()) throw EvalError(std::string(what) + " must be str, not " + type_name(v));
  return v.str();
}

int64_t need_int(const Value& v, std::string_view what) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  throw EvalError(std::string(what) + " must be an integer, not " + type_name(v));
}

// ---- arithmetic (Python semantics on 64-bit ints) ------------------------------------------------

void check_overflow(bool overflow) {
  if (overflow) throw EvalError("integer overflow (ints are 64-bit in this interpreter)");
}

Value arith(BinOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  static const char* const kSym[] = {"+", "-", "*", "/", "//", "%", "** or pow()"};
  const char* sym = kSym[static_cast<int>(op)];
  auto unsupported = [&]() -> Value {
    throw EvalError(std::string("unsupported operand type(s) for ") + sym + ": '" + type_name(a) + "' and '" +
                    type_name(b) + "'");
  };
  const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  const bool nums = a.is_number() && b.is_number();
  switch (op) {
    case BinOp::kAdd: {
      if (ints) {
        int64_t r = 0;
        check_overflow(__builtin_add_overflow(a.as_int(), b.as_int(), &r));
        return Value::integer(r);
      }
      if (nums) return Value::floating(a.as_float() + b.as_float());
      if (a.is_string() && b.is_string()) {
        check_string_bytes(a.str().size() + b.str().size());
        return Value::string(a.str() + b.str());
      }
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        check_items(a.items().size() + b.items().size());
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(items), a.is_tuple());
      }
      if (a.is_string() || a.is_list())
        throw EvalError("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
      return unsupported();
    }
    case BinOp::kSub: {
      if (ints) {
        int64_t r = 0;
        check_overflow(__builtin_sub_overflow(a.as_int(), b.as_int(), &r));
        return Value::integer(r);
      }
      if (nums) return Value::floating(a.as_float() - b.as_float());
      return unsupported();
    }
    case BinOp::kMul: {
      if (ints) {
        int64_t r = 0;
        check_overflow(__builtin_mul_overflow(a.as_int(), b.as_int(), &r));
        return Value::integer(r);
      }
      if (nums) return Value::floating(a.as_float() * b.as_float());
      const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
      const Value* count = seq == &a ? &b : &a;
      if (seq && (count->is_int() || count->is_bool())) {
        // Checked before building: "a" * 10**12 must fail, not allocate, and "" * 10**12 not loop.
        const size_t unit = seq->is_string() ? seq->str().size() : seq->items().size();
        const int64_t n = unit == 0 ? 0 : std::max<int64_t>(0, count->as_int());
        const size_t max = seq->is_string() ? current_limits().max_string_bytes : current_limits().max_items;
        if (unit > 0 && static_cast<uint64_t>(n) > max / unit) {
          if (seq->is_string()) check_string_bytes(max + 1);
          check_items(max + 1);
        }
        if (seq->is_string()) {
          std::string out;
          out.reserve(seq->str().size() * n);
          for (int64_t k = 0; k < n; ++k) out += seq->str();
          return Value::string(std::move(out));
        }
        std::vector<Value> items;
        for (int64_t k = 0; k < n; ++k) items.insert(items.end(), seq->items().begin(), seq->items().end());
        return Value::list(std::move(items), seq->is_tuple());
      }
      if (seq) throw EvalError("can't multiply sequence by non-int of type '" + type_name(*count) + "'");
      return unsupported();
    }
    case BinOp::kDiv: {
      if (!nums) return unsupported();
      if (b.as_float() == 0.0) throw EvalError("division by zero");
      return Value::floating(a.as_float() / b.as_float());
    }
    case BinOp::kFloorDiv: {
      if (ints) {
        if (b.as_int() == 0) throw EvalError("integer division or modulo by zero");
        const int64_t x = a.as_int(), y = b.as_int();
        check_overflow(x == std::numeric_limits<int64_t>::min() && y == -1);
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value::integer(q);
      }
      if (!nums) return unsupported();
      if (b.as_float() == 0.0) throw EvalError("float floor division by zero");
      return Value::floating(std::floor(a.as_float() / b.as_float()));
    }
    case BinOp::kMod: {
      if (ints) {
        if (b.as_int() == 0) throw EvalError("integer division or modulo by zero");
        const int64_t x = a.as_int(), y = b.as_int();
        if (y == -1) return Value::integer(0);  // x % -1 traps for INT64_MIN in C++
        int64_t r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value::integer(r);
      }
      if (nums) {
        if (b.as_float() == 0.0) throw EvalError("float modulo");
        const double y = b.as_float();
        double r = std::fmod(a.as_float(), y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value::floating(r);
      }
      if (a.is_string()) throw EvalError("unsupported: '%' string formatting");
      return unsupported();
    }
    case BinOp::kPow: {
      if (ints && b.as_int() >= 0) {
        int64_t r = 1, base = a.as_int(), e = b.as_int();
        while (e > 0) {
          if (e & 1) check_overflow(__builtin_mul_overflow(r, base, &r));
          e >>= 1;
          if (e > 0) check_overflow(__builtin_mul_overflow(base, base, &base));
        }
        return Value::integer(r);
      }
      if (!nums) return unsupported();
      if (a.as_float() == 0.0 && b.as_float() < 0) throw EvalError("0.0 cannot be raised to a negative power");
      if (a.as_float() < 0 && b.as_float() != std::floor(b.as_float()))
        throw EvalError("unsupported: complex result of a negative number raised to a fractional power");
      return Value::floating(std::pow(a.as_float(), b.as_float()));
    }
  }
  return unsupported();
}

// ---- strings ---------------------------------------------------------------------------------------

int64_t cp_index(std::string_view s, size_t byte_offset) { return utf8_length(s.substr(0, byte_offset)); }

std::vector<Value> split_whitespace(const std::string& s, int64_t maxsplit, bool from_right) {
  const std::u32string u = utf8_decode(s);
  std::vector<std::u32string> parts;
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < u.size() && py_isspace(u[i])) ++i;
      if (i >= u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(u.substr(i));
        break;
      }
      size_t j = i;
      while (j < u.size() && !py_isspace(u[j])) ++j;
      check_items(parts.size() + 1);
      parts.push_back(u.substr(i, j - i));
      i = j;
    }
  } else {
    size_t end = u.size();
    while (true) {
      while (end > 0 && py_isspace(u[end - 1])) --end;
      if (end == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(u.substr(0, end));
        break;
      }
      size_t b = end;
      while (b > 0 && !py_isspace(u[b - 1])) --b;
      check_items(parts.size() + 1);
      parts.push_back(u.substr(b, end - b));
      end = b;
    }
    std::reverse(parts.begin(), parts.end());
  }
  std::vector<Value> out;
  for (const auto& p : parts) out.push_back(Value::string(utf8_encode(p)));
  return out;
}

std::vector<Value> split_sep(const std::string& s, const std::string& sep, int64_t maxsplit, bool from_right) {
  if (sep.empty()) throw EvalError("empty separator");
  charge_bytes_touched(s.size());
  std::vector<std::string> parts;
  if (!from_right) {
    size_t i = 0;
    while (true) {
      const size_t j = (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) ? std::string::npos : s.find(sep, i);
      if (j == std::string::npos) {
        parts.push_back(s.substr(i));
        break;
      }
      check_items(parts.size() + 1);
      parts.push_back(s.substr(i, j - i));
      i = j + sep.size();
    }
  } else {
    size_t end = s.size();
    while (true) {
      size_t j = std::string::npos;
      if (!(maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) && end >= sep.size())
        j = s.rfind(sep, end - sep.size());
      if (j == std::string::npos) {
        parts.push_back(s.substr(0, end));
        break;
      }
      check_items(parts.size() + 1);
      parts.push_back(s.substr(j + sep.size(), end - j - sep.size()));
      end = j;
    }
    std::reverse(parts.begin(), parts.end());
  }
  std::vector<Value> out;
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every character and at the end.
    const std::u32string u = utf8_decode(s);
    int64_t n = 0;
    for (char32_t c : u) {
      if (count < 0 || n < count) {
        check_string_bytes(out.size() + repl.size());
        out += repl;
        ++n;
      }
      utf8_append(out, c);
    }
    if (count < 0 || n < count) out += repl;
    return out;
  }
  charge_bytes_touched(s.size());
  size_t i = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t j = s.find(old, i);
    if (j == std::string::npos) break;
    check_string_bytes(out.size() + (j - i) + repl.size());
    out.append(s, i, j - i);
    out += repl;
    i = j + old.size();
    ++n;
  }
  out.append(s, i, std::string::npos);
  return out;
}

int64_t py_count(const std::string& s, const std::string& sub) {
  charge_bytes_touched(s.size());
  if (sub.empty()) return utf8_length(s) + 1;
  int64_t n = 0;
  for (size_t i = s.find(sub); i != std::string::npos; i = s.find(sub, i + sub.size())) ++n;
  charge_steps(n);
  return n;
}

bool prefix_match(const std::string& s, const Value& arg, bool suffix) {
  auto one = [&](const Value& p) {
    const std::string& x = need_str(p, suffix ? "endswith argument" : "startswith argument");
    if (x.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0;
  };
  if (arg.is_list() && arg.is_tuple()) {
    for (const Value& p : arg.items())
      if (one(p)) return true;
    return false;
  }
  return one(arg);
}

bool ascii_all(const std::string& s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}

bool cased_all(const std::string& s, bool want_lower) {
  bool any_cased = false;
  for (char32_t c : utf8_decode(s)) {
    std::string one;
    utf8_append(one, c);
    const bool is_upper = py_lower(one) != one;
    const bool is_lower = py_upper(one) != one;
    if (is_upper || is_lower) any_cased = true;
    if (want_lower ? is_upper : is_lower) return false;
  }
  return any_cased;
}

// Python str methods Jinja templates may call; the ones not implemented below are rejected by
// name instead of silently turning into undefined.
const char* const kPyStrMethods[] = {
    "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
    "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
    "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
    "maketrans", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
    "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
    "translate", "upper", "zfill"};
const char* const kPyDictMethods[] = {"clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem",
                                      "setdefault", "update", "values"};
const char* const kPyListMethods[] = {"append", "clear", "copy", "count", "extend", "index", "insert", "pop",
                                      "remove", "reverse", "sort"};

template <size_t N>
bool in_list(const char* const (&names)[N], const std::string& name) {
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

Value str_method(const Value& obj, const std::string& name) {
  auto method = [&](NativeFn fn) { return Value::callable("str." + name, std::move(fn)); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip", right = name != "lstrip";
    return method([obj, left, right, name](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      Bound b = bind(name, a, {"chars"});
      if (b.has(0) && !b[0].is_none()) return Value::string(py_strip(s, &need_str(b[0], name + " arg"), left, right));
      return Value::string(py_strip(s, nullptr, left, right));
    });
  }
  if (name == "startswith" || name == "endswith") {
    const bool suffix = name == "endswith";
    return method([obj, suffix, name](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      Bound b = bind(name, a, {"prefix"});
      if (!b.has(0)) throw EvalError(name + "() takes at least 1 argument (0 given)");
      return Value::boolean(prefix_match(s, b[0], suffix));
    });
  }
  if (name == "split" || name == "rsplit") {
    const bool right = name == "rsplit";
    return method([obj, right, name](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      Bound b = bind(name, a, {"sep", "maxsplit"});
      const int64_t maxsplit = b.has(1) ? need_int(b[1], "maxsplit") : -1;
      if (!b.has(0) || b[0].is_none()) return Value::list(split_whitespace(s, maxsplit, right));
      return Value::list(split_sep(s, need_str(b[0], "sep"), maxsplit, right));
    });
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    return method([obj, name](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      bind(name, a, {});
      if (name == "upper") return Value::string(py_upper(s));
      if (name == "lower") return Value::string(py_lower(s));
      if (name == "title") return Value::string(py_title(s));
      return Value::string(py_capitalize(s));
    });
  }
  if (name == "replace") {
    return method([obj](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      Bound b = bind("replace", a, {"old", "new", "count"});
      if (!b.has(0) || !b.has(1)) throw EvalError("replace() takes at least 2 arguments");
      return Value::string(py_replace(s, need_str(b[0], "replace arg 1"), need_str(b[1], "replace arg 2"),
                                      b.has(2) ? need_int(b[2], "count") : -1));
    });
  }
  if (name == "find" || name == "rfind" || name == "count") {
    return method([obj, name](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      Bound b = bind(name, a, {"sub"});
      if (!b.has(0)) throw EvalError(name + "() takes at least 1 argument (0 given)");
      const std::string& sub = need_str(b[0], name + " arg");
      if (name == "count") return Value::integer(py_count(s, sub));
      charge_bytes_touched(s.size());
      const size_t at = name == "find" ? s.find(sub) : s.rfind(sub);
      return Value::integer(at == std::string::npos ? -1 : cp_index(s, at));
    });
  }
  if (name == "join") {
    return method([obj](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      Bound b = bind("join", a, {"iterable"});
      std::string out;
      size_t k = 0;
      for (const Value& v : iterate(b[0])) {
        if (!v.is_string())
          throw EvalError("sequence item " + std::to_string(k) + ": expected str instance, " + type_name(v) + " found");
        check_string_bytes(out.size() + s.size() + v.str().size());
        if (k++) out += s;
        out += v.str();
      }
      return Value::string(std::move(out));
    });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const bool suffix = name == "removesuffix";
    return method([obj, suffix, name](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      Bound b = bind(name, a, {"affix"});
      const std::string& x = need_str(b[0], name + " arg");
      if (x.size() <= s.size()) {
        if (!suffix && s.compare(0, x.size(), x) == 0) return Value::string(s.substr(x.size()));
        if (suffix && s.compare(s.size() - x.size(), x.size(), x) == 0) return Value::string(s.substr(0, s.size() - x.size()));
      }
      return Value::string(s);
    });
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper") {
    return method([obj, name](Interpreter&, CallArgs& a) {
      const std::string& s = obj.str();
      bind(name, a, {});
      if (name == "isdigit") return Value::boolean(ascii_all(s, [](char c) { return c >= '0' && c <= '9'; }));
      if (name == "isalpha")
        return Value::boolean(ascii_all(s, [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }));
      if (name == "isalnum")
        return Value::boolean(ascii_all(s, [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        }));
      if (name == "isspace") {
        const std::u32string u = utf8_decode(s);
        return Value::boolean(!u.empty() && std::all_of(u.begin(), u.end(), py_isspace));
      }
      return Value::boolean(cased_all(s, name == "islower"));
    });
  }
  if (in_list(kPyStrMethods, name)) throw EvalError("unsupported str method '" + name + "'");
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_items_list(const Value& d) {
  std::vector<Value> out;
  for (const auto& kv : d.dict_data().items) out.push_back(Value::list({kv.first, kv.second}, true));
  return Value::list(std::move(out));
}

Value dict_method(const Value& obj, const std::string& name) {
  auto method = [&](NativeFn fn) { return Value::callable("dict." + name, std::move(fn), obj.nesting() + 1); };
  if (name == "get") {
    return method([obj](Interpreter&, CallArgs& a) {
      Bound b = bind("get", a, {"key", "default"});
      const Value* v = obj.dict_data().find(b[0]);
      if (v) return *v;
      return b.has(1) ? b[1] : Value::none();
    });
  }
  if (name == "items") return method([obj](Interpreter&, CallArgs& a) { bind("items", a, {}); return dict_items_list(obj); });
  if (name == "keys")
    return method([obj](Interpreter&, CallArgs& a) { bind("keys", a, {}); return Value::list(iterate(obj)); });
  if (name == "values") {
    return method([obj](Interpreter&, CallArgs& a) {
      bind("values", a, {});
      std::vector<Value> out;
      for (const auto& kv : obj.dict_data().items) out.push_back(kv.second);
      return Value::list(std::move(out));
    });
  }
  if (name == "copy") return method([obj](Interpreter&, CallArgs& a) { bind("copy", a, {}); return obj; });
  if (name == "clear" || name == "pop" || name == "popitem" || name == "setdefault" || name == "update")
    return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.");
  throw EvalError("unsupported dict method '" + name + "'");
}

Value list_method(const Value& obj, const std::string& name) {
  if (name == "index" || name == "count") {
    return Value::callable("list." + name, [obj, name](Interpreter&, CallArgs& a) {
      Bound b = bind(name, a, {"value"});
      int64_t n = 0, k = 0;
      for (const Value& v : obj.items()) {
        if (equals(v, b[0])) {
          if (name == "index") return Value::integer(k);
          ++n;
        }
        ++k;
      }
      if (name == "index") throw EvalError(repr(b[0]) + " is not in list");
      return Value::integer(n);
    }, obj.nesting() + 1);
  }
  if (name == "copy") throw EvalError("unsupported list method 'copy'");
  return Value::undefined("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.");
}

Value loop_attr(const Value& obj, const std::string& name) {
  LoopData& l = obj.loop_data();
  const auto& items = *l.items;
  const int64_t n = static_cast<int64_t>(items.size());
  if (name == "index") return Value::integer(l.index0 + 1);
  if (name == "index0") return Value::integer(l.index0);
  if (name == "revindex") return Value::integer(n - l.index0);
  if (name == "revindex0") return Value::integer(n - l.index0 - 1);
  if (name == "first") return Value::boolean(l.index0 == 0);
  if (name == "last") return Value::boolean(l.index0 == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(l.depth0 + 1);
  if (name == "depth0") return Value::integer(l.depth0);
  if (name == "previtem")
    return l.index0 > 0 ? items[l.index0 - 1] : Value::undefined("there is no previous item");
  if (name == "nextitem")
    return l.index0 + 1 < n ? items[l.index0 + 1] : Value::undefined("there is no next item");
  if (name == "cycle") {
    return Value::callable("loop.cycle", [obj](Interpreter&, CallArgs& a) {
      if (a.positional.empty()) throw EvalError("no items for cycling given");
      return a.positional[obj.loop_data().index0 % static_cast<int64_t>(a.positional.size())];
    });
  }
  if (name == "changed") {
    return Value::callable("loop.changed", [obj](Interpreter&, CallArgs& a) {
      LoopData& d = obj.loop_data();
      bool same = d.has_changed_value && d.changed_value.size() == a.positional.size();
      for (size_t k = 0; same && k < a.positional.size(); ++k) same = equals(d.changed_value[k], a.positional[k]);
      d.has_changed_value = true;
      d.changed_value = a.positional;
      return Value::boolean(!same);
    });
  }
  return Value::undefined("'LoopContext object' has no attribute '" + name + "'");
}

std::string object_desc(const Value& v) {
  if (v.is_none()) return "None";
  return type_name(v) + " object";
}

}  // namespace

Value get_attr(const Value& obj, const std::string& attr) {
  switch (obj.type()) {
    case Value::Type::kUndefined:
      fail_undefined(obj);
    case Value::Type::kDict: {
      if (in_list(kPyDictMethods, attr)) return dict_method(obj, attr);
      const Value* v = obj.dict_data().find(attr);
      if (v) return *v;
      return Value::undefined("'dict object' has no attribute '" + attr + "'");
    }
    case Value::Type::kString:
      return str_method(obj, attr);
    case Value::Type::kList:
      if (in_list(kPyListMethods, attr)) return list_method(obj, attr);
      break;
    case Value::Type::kNamespace: {
      const Value* v = obj.ns().find(attr);
      if (v) return *v;
      break;
    }
    case Value::Type::kLoop:
      return loop_attr(obj, attr);
    default:
      break;
  }
  return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + attr + "'");
}

static int64_t norm_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

Value get_item(const Value& obj, const Value& key) {
  switch (obj.type()) {
    case Value::Type::kUndefined:
      fail_undefined(obj);
    case Value::Type::kDict: {
      const Value* v = obj.dict_data().find(key);
      if (v) return *v;
      if (key.is_string() && in_list(kPyDictMethods, key.str())) return dict_method(obj, key.str());
      break;
    }
    case Value::Type::kList:
      if (key.is_int() || key.is_bool()) {
        const int64_t n = static_cast<int64_t>(obj.items().size());
        const int64_t i = norm_index(key.as_int(), n);
        if (i >= 0 && i < n) return obj.items()[i];
      } else if (key.is_string()) {
        return get_attr(obj, key.str());
      }
      break;
    case Value::Type::kString:
      if (key.is_int() || key.is_bool()) {
        const std::u32string u = utf8_decode(obj.str());
        const int64_t n = static_cast<int64_t>(u.size());
        const int64_t i = norm_index(key.as_int(), n);
        if (i >= 0 && i < n) {
          std::string one;
          utf8_append(one, u[i]);
          return Value::string(std::move(one));
        }
      } else if (key.is_string()) {
        return get_attr(obj, key.str());
      }
      break;
    case Value::Type::kNamespace:
    case Value::Type::kLoop:
      if (key.is_string()) return get_attr(obj, key.str());
      break;
    default:
      break;
  }
  if (key.is_string()) return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + key.str() + "'");
  return Value::undefined("'" + object_desc(obj) + "' has no element " + repr(key));
}

namespace {

// Python's slice.indices() and the selected positions.
std::vector<int64_t> slice_positions(int64_t n, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto as_opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (v.is_int() || v.is_bool()) return v.as_int();
    throw EvalError(std::string("slice indices must be integers or None, not ") + type_name(v) + " (" + what + ")");
  };
  const int64_t step = as_opt(step_v, "step").value_or(1);
  if (step == 0) throw EvalError("slice step cannot be zero");
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t start = adjust(as_opt(start_v, "start"), step < 0 ? n - 1 : 0);
  const int64_t stop = adjust(as_opt(stop_v, "stop"), step < 0 ? -1 : n);
  std::vector<int64_t> pos;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    pos.push_back(i);
    if (__builtin_add_overflow(i, step, &i)) break;
  }
  return pos;
}

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_list()) {
    const auto& items = obj.items();
    std::vector<Value> out;
    for (int64_t i : slice_positions(static_cast<int64_t>(items.size()), start, stop, step)) out.push_back(items[i]);
    return Value::list(std::move(out), obj.is_tuple());
  }
  if (obj.is_string()) {
    const std::u32string u = utf8_decode(obj.str());
    std::u32string out;
    for (int64_t i : slice_positions(static_cast<int64_t>(u.size()), start, stop, step)) out.push_back(u[i]);
    return Value::string(utf8_encode(out));
  }
  return Value::undefined("'" + object_desc(obj) + "' has no element slice");
}

// `attribute` argument of map/selectattr/sort/...: dotted path, integer parts index lists.
Value attr_path(const Value& item, const Value& attribute) {
  if (attribute.is_int()) return get_item(item, attribute);
  const std::string& path = need_str(attribute, "attribute");
  Value cur = item;
  size_t i = 0;
  while (true) {
    const size_t dot = path.find('.', i);
    const std::string part = path.substr(i, dot == std::string::npos ? std::string::npos : dot - i);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    int64_t index = 0;
    const bool numeric_in_range =
        numeric && std::from_chars(part.data(), part.data() + part.size(), index).ec == std::errc();
    if (numeric && !numeric_in_range) return Value::undefined("no element " + part);
    cur = numeric ? get_item(cur, Value::integer(index)) : get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    i = dot + 1;
  }
}

std::string lower_key(const Value& v) { return v.is_string() ? py_lower(v.str()) : std::string(); }

// Sort/unique/min/max key: the attribute (if any), lower-cased when a string and not case sensitive.
Value sort_key(const Value& item, const Bound& b, size_t case_idx, size_t attr_idx) {
  Value k = b.has(attr_idx) && !b[attr_idx].is_none() ? attr_path(item, b[attr_idx]) : item;
  if (!(b.has(case_idx) && truthy(b[case_idx])) && k.is_string()) return Value::string(lower_key(k));
  return k;
}

double py_float_parse(const std::string& raw, bool* ok) {
  std::string s = py_strip(raw, nullptr, true, true);
  *ok = false;
  if (s.empty()) return 0;
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return 0;
      continue;
    }
    t.push_back(s[i]);
  }
  size_t b = 0;
  bool neg = false;
  if (t[0] == '+' || t[0] == '-') {
    neg = t[0] == '-';
    b = 1;
  }
  double d = 0;
  const auto res = std::from_chars(t.data() + b, t.data() + t.size(), d);
  if (res.ec != std::errc() || res.ptr != t.data() + t.size()) return 0;
  *ok = true;
  return neg ? -d : d;
}

bool py_int_parse(const std::string& raw, int64_t base, int64_t* out) {
  if (base < 2 || base > 36) return false;  // from_chars' precondition; Jinja then tries float
  std::string s = py_strip(raw, nullptr, true, true);
  if (s.empty()) return false;
  bool neg = false;
  size_t i = 0;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (base == 16 && s.compare(i, 2, "0x") == 0) i += 2;
  std::string digits;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && !digits.empty() && i + 1 < s.size() && s[i + 1] != '_') continue;
    digits.push_back(s[i]);
  }
  if (digits.empty()) return false;
  int64_t v = 0;
  const auto res = std::from_chars(digits.data(), digits.data() + digits.size(), v, static_cast<int>(base));
  if (res.ec != std::errc() || res.ptr != digits.data() + digits.size()) return false;
  *out = neg ? -v : v;
  return true;
}

// ---- filters ---------------------------------------------------------------------------------------

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);

Value f_abs(Interpreter&, const Value& v, CallArgs& a) {
  bind("abs", a, {});
  if (v.is_int() || v.is_bool()) {
    check_overflow(v.as_int() == std::numeric_limits<int64_t>::min());
    return Value::integer(std::llabs(v.as_int()));
  }
  if (v.is_float()) return Value::floating(std::fabs(v.as_float()));
  throw EvalError("bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs& a) {
  bind("capitalize", a, {});
  return Value::string(py_capitalize(to_str(v)));
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("default", a, {"default_value", "boolean"});
  const Value dflt = b.has(0) ? b[0] : Value::string("");
  if (v.is_undefined() || (b.has(1) && truthy(b[1]) && !truthy(v))) return dflt;
  return v;
}

Value f_first(Interpreter&, const Value& v, CallArgs& a) {
  bind("first", a, {});
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Interpreter&, const Value& v, CallArgs& a) {
  bind("last", a, {});
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("float", a, {"default"});
  const Value dflt = b.has(0) ? b[0] : Value::floating(0.0);
  if (v.is_number()) return Value::floating(v.as_float());
  if (v.is_string()) {
    bool ok = false;
    const double d = py_float_parse(v.str(), &ok);
    if (ok) return Value::floating(d);
  }
  return dflt;
}

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("int", a, {"default", "base"});
  const Value dflt = b.has(0) ? b[0] : Value::integer(0);
  const int64_t base = b.has(1) ? need_int(b[1], "base") : 10;
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    const double d = v.as_float();
    if (std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(static_cast<int64_t>(d));
    return dflt;
  }
  if (v.is_string()) {
    int64_t out = 0;
    if (py_int_parse(v.str(), base, &out)) return Value::integer(out);
    bool ok = false;
    const double d = py_float_parse(v.str(), &ok);
    if (ok && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(static_cast<int64_t>(d));
  }
  return dflt;
}

Value f_items(Interpreter&, const Value& v, CallArgs& a) {
  bind("items", a, {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) throw EvalError("Can only get item pairs from a mapping.");
  return dict_items_list(v);
}

Value f_join(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("join", a, {"d", "attribute"});
  const std::string sep = b.has(0) ? to_str(b[0]) : std::string();
  std::string out;
  size_t k = 0;
  for (const Value& item : iterate(v)) {
    const std::string piece = to_str(b.has(1) && !b[1].is_none() ? attr_path(item, b[1]) : item);
    check_string_bytes(out.size() + sep.size() + piece.size());
    if (k++) out += sep;
    out += piece;
  }
  return Value::string(std::move(out));
}

Value f_length(Interpreter&, const Value& v, CallArgs& a) {
  bind("length", a, {});
  return Value::integer(length(v));
}

Value f_list(Interpreter&, const Value& v, CallArgs& a) {
  bind("list", a, {});
  return Value::list(iterate(v));
}

Value f_lower(Interpreter&, const Value& v, CallArgs& a) {
  bind("lower", a, {});
  return Value::string(py_lower(to_str(v)));
}

Value f_upper(Interpreter&, const Value& v, CallArgs& a) {
  bind("upper", a, {});
  return Value::string(py_upper(to_str(v)));
}

Value f_title(Interpreter&, const Value& v, CallArgs& a) {
  bind("title", a, {});
  return Value::string(jinja_title(to_str(v)));
}

Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("trim", a, {"chars"});
  const std::string s = to_str(v);
  if (b.has(0) && !b[0].is_none()) return Value::string(py_strip(s, &need_str(b[0], "trim chars"), true, true));
  return Value::string(py_strip(s, nullptr, true, true));
}

Value f_replace(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("replace", a, {"old", "new", "count"});
  if (!b.has(0) || !b.has(1)) throw EvalError("replace filter needs the old and the new string");
  const int64_t count = b.has(2) && !b[2].is_none() ? need_int(b[2], "count") : -1;
  return Value::string(py_replace(to_str(v), to_str(b[0]), to_str(b[1]), count));
}

Value f_reverse(Interpreter&, const Value& v, CallArgs& a) {
  bind("reverse", a, {});
  if (v.is_string()) {
    std::u32string u = utf8_decode(v.str());
    std::reverse(u.begin(), u.end());
    return Value::string(utf8_encode(u));
  }
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_safe(Interpreter&, const Value& v, CallArgs& a) {
  bind("safe", a, {});
  return v.is_string() ? v : Value::string(to_str(v));
}

Value f_string(Interpreter&, const Value& v, CallArgs& a) {
  bind("string", a, {});
  return v.is_string() ? v : Value::string(to_str(v));
}

Value f_tojson(Interpreter&, const Value& v, CallArgs& a) {
  // transformers' override: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  Bound b = bind("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions opt;
  opt.ensure_ascii = b.has(0) && truthy(b[0]);
  if (b.has(1) && !b[1].is_none()) {
    opt.has_indent = true;
    if (b[1].is_string()) {
      opt.indent = b[1].str();
    } else {
      const int64_t n = std::max<int64_t>(0, need_int(b[1], "indent"));
      check_string_bytes(static_cast<uint64_t>(n));
      opt.indent = std::string(static_cast<size_t>(n), ' ');
    }
  }
  opt.item_separator = opt.has_indent ? "," : ", ";
  if (b.has(2) && !b[2].is_none()) {
    if (!b[2].is_list() || b[2].items().size() != 2) throw EvalError("separators must be an (item, key) pair");
    opt.item_separator = need_str(b[2].items()[0], "item separator");
    opt.key_separator = need_str(b[2].items()[1], "key separator");
  }
  opt.sort_keys = b.has(3) && truthy(b[3]);
  return Value::string(json_dumps(v, opt));
}

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  const std::vector<Value> items = truthy(v) ? iterate(v) : std::vector<Value>{};
  if (a.positional.empty()) {
    Bound b = bind("map", a, {"attribute", "default"});
    if (!b.has(0)) throw EvalError("map filter needs a filter name or attribute=");
    for (const Value& item : items) {
      Value x = attr_path(item, b[0]);
      if (x.is_undefined() && b.has(1) && !b[1].is_none()) x = b[1];
      out.push_back(x);
    }
    return Value::list(std::move(out));
  }
  const std::string name = need_str(a.positional[0], "map filter name");
  if (!is_known_filter(name)) throw EvalError("unsupported filter '" + name + "' (in map)");
  for (const Value& item : items) {
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    out.push_back(in.apply_filter(name, item, rest));
  }
  return Value::list(std::move(out));
}

Value select_common(Interpreter& in, const Value& v, CallArgs& a, bool with_attr, bool keep) {
  std::vector<Value> out;
  size_t first_test_arg = 0;
  Value attribute;
  if (with_attr) {
    if (a.positional.empty()) throw EvalError("selectattr/rejectattr need an attribute name");
    attribute = a.positional[0];
    first_test_arg = 1;
  }
  std::string test;
  if (a.positional.size() > first_test_arg) test = need_str(a.positional[first_test_arg], "test name");
  if (!test.empty() && !is_known_test(test)) throw EvalError("unsupported test '" + test + "'");
  for (const Value& item : iterate(v)) {
    const Value x = with_attr ? attr_path(item, attribute) : item;
    bool ok;
    if (test.empty()) {
      ok = truthy(x);
    } else {
      CallArgs rest;
      rest.positional.assign(a.positional.begin() + first_test_arg + 1, a.positional.end());
      rest.keyword = a.keyword;
      ok = in.apply_test(test, x, rest);
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, false, true); }
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, true, false); }

Value f_sort(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("sort", a, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = b.has(0) && truthy(b[0]);
  std::vector<Value> items = iterate(v);
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items) keyed.emplace_back(sort_key(item, b, 1, 2), item);
  charge_steps(items.size() * (1 + static_cast<uint64_t>(std::log2(items.size() + 1))));
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
    return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Value f_unique(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("unique", a, {"case_sensitive", "attribute"});
  std::vector<Value> seen, out;
  for (const Value& item : iterate(v)) {
    const Value k = sort_key(item, b, 0, 1);
    charge_steps(seen.size());
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Value min_max(const Value& v, CallArgs& a, bool want_max) {
  Bound b = bind(want_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  const std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = sort_key(items[0], b, 0, 1);
  for (size_t k = 1; k < items.size(); ++k) {
    const Value key = sort_key(items[k], b, 0, 1);
    if (want_max ? less_than(best_key, key) : less_than(key, best_key)) {
      best = k;
      best_key = key;
    }
  }
  return items[best];
}

Value f_min(Interpreter&, const Value& v, CallArgs& a) { return min_max(v, a, false); }
Value f_max(Interpreter&, const Value& v, CallArgs& a) { return min_max(v, a, true); }

Value f_sum(Interpreter&, const Value& v, CallArgs& a) {
  Bound b = bind("sum", a, {"attribute", "start"});
  Value total = b.has(1) ? b[1] : Value::integer(0);
  for (const Value& item : iterate(v))
    total = arith(BinOp::kAdd, total, b.has(0) && !b[0].is_none() ? attr_path(item, b[0]) : item);
  return total;
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"abs", f_abs},         {"capitalize", f_capitalize}, {"count", f_length},     {"d", f_default},
      {"default", f_default}, {"first", f_first},           {"float", f_float},      {"int", f_int},
      {"items", f_items},     {"join", f_join},             {"last", f_last},        {"length", f_length},
      {"list", f_list},       {"lower", f_lower},           {"map", f_map},          {"max", f_max},
      {"min", f_min},         {"reject", f_reject},         {"rejectattr", f_rejectattr}, {"replace", f_replace},
      {"reverse", f_reverse}, {"safe", f_safe},             {"select", f_select},    {"selectattr", f_selectattr},
      {"sort", f_sort},       {"string", f_string},         {"sum", f_sum},          {"title", f_title},
      {"tojson", f_tojson},   {"trim", f_trim},             {"unique", f_unique},    {"upper", f_upper},
  };
  return table;
}

// ---- tests -------------------------------------------------------------------------------------------

using TestFn = bool (*)(const Value&, CallArgs&);

const Value& test_arg(const char* name, CallArgs& a) {
  Bound b = bind(name, a, {"other"});
  if (!b.has(0)) throw EvalError(std::string("test '") + name + "' needs an argument");
  a.positional = {b[0]};
  a.keyword.clear();
  return a.positional[0];
}

bool t_eq(const Value& v, CallArgs& a) { return equals(v, test_arg("eq", a)); }
bool t_ne(const Value& v, CallArgs& a) { return !equals(v, test_arg("ne", a)); }
bool t_lt(const Value& v, CallArgs& a) { return py_compare(v, test_arg("lt", a), "<"); }
bool t_le(const Value& v, CallArgs& a) { return py_compare(v, test_arg("le", a), "<="); }
bool t_gt(const Value& v, CallArgs& a) { return py_compare(v, test_arg("gt", a), ">"); }
bool t_ge(const Value& v, CallArgs& a) { return py_compare(v, test_arg("ge", a), ">="); }
bool t_in(const Value& v, CallArgs& a) { return contains(test_arg("in", a), v); }
bool t_divisibleby(const Value& v, CallArgs& a) {
  const Value& n = test_arg("divisibleby", a);
  return truthy(arith(BinOp::kMod, v, n)) == false;
}
bool t_sameas(const Value& v, CallArgs& a) {
  const Value& o = test_arg("sameas", a);
  if (v.type() != o.type()) return false;
  switch (v.type()) {
    case Value::Type::kList: return &v.items() == &o.items();
    case Value::Type::kDict: return &v.dict_data() == &o.dict_data();
    default: return equals(v, o);
  }
}
bool t_defined(const Value& v, CallArgs& a) { bind("defined", a, {}); return !v.is_undefined(); }
bool t_undefined(const Value& v, CallArgs& a) { bind("undefined", a, {}); return v.is_undefined(); }
bool t_none(const Value& v, CallArgs& a) { bind("none", a, {}); return v.is_none(); }
bool t_boolean(const Value& v, CallArgs& a) { bind("boolean", a, {}); return v.is_bool(); }
bool t_true(const Value& v, CallArgs& a) { bind("true", a, {}); return v.is_bool() && v.as_bool(); }
bool t_false(const Value& v, CallArgs& a) { bind("false", a, {}); return v.is_bool() && !v.as_bool(); }
bool t_integer(const Value& v, CallArgs& a) { bind("integer", a, {}); return v.is_int(); }
bool t_float(const Value& v, CallArgs& a) { bind("float", a, {}); return v.is_float(); }
bool t_number(const Value& v, CallArgs& a) { bind("number", a, {}); return v.is_number(); }
bool t_string(const Value& v, CallArgs& a) { bind("string", a, {}); return v.is_string(); }
bool t_mapping(const Value& v, CallArgs& a) { bind("mapping", a, {}); return v.is_dict(); }
bool t_callable(const Value& v, CallArgs& a) { bind("callable", a, {}); return v.is_callable(); }
bool t_iterable(const Value& v, CallArgs& a) {
  bind("iterable", a, {});
  return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
}
bool t_sequence(const Value& v, CallArgs& a) {
  bind("sequence", a, {});
  return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
}
bool t_odd(const Value& v, CallArgs& a) {
  bind("odd", a, {});
  return equals(arith(BinOp::kMod, v, Value::integer(2)), Value::integer(1));
}
bool t_even(const Value& v, CallArgs& a) {
  bind("even", a, {});
  return equals(arith(BinOp::kMod, v, Value::integer(2)), Value::integer(0));
}
bool t_lower(const Value& v, CallArgs& a) { bind("lower", a, {}); return v.is_string() && cased_all(v.str(), true); }
bool t_upper(const Value& v, CallArgs& a) { bind("upper", a, {}); return v.is_string() && cased_all(v.str(), false); }

const std::unordered_map<std::string, TestFn>& tests() {
  static const std::unordered_map<std::string, TestFn> table = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},   {"divisibleby", t_divisibleby},
      {"==", t_eq},           {"eq", t_eq},             {"equalto", t_eq},        {"!=", t_ne},
      {"ne", t_ne},           {"even", t_even},         {"odd", t_odd},           {"false", t_false},
      {"true", t_true},       {"float", t_float},       {"integer", t_integer},   {">=", t_ge},
      {"ge", t_ge},           {">", t_gt},              {"gt", t_gt},             {"greaterthan", t_gt},
      {"<=", t_le},           {"le", t_le},             {"<", t_lt},              {"lt", t_lt},
      {"lessthan", t_lt},     {"in", t_in},             {"iterable", t_iterable}, {"lower", t_lower},
      {"upper", t_upper},     {"mapping", t_mapping},   {"none", t_none},         {"number", t_number},
      {"sameas", t_sameas},   {"sequence", t_sequence}, {"string", t_string},     {"undefined", t_undefined},
  };
  return table;
}

}  // namespace

bool is_known_filter(const std::string& name) { return filters().count(name) != 0; }
bool is_known_test(const std::string& name) { return tests().count(name) != 0; }

// ---- globals ---------------------------------------------------------------------------------------------

void add_builtin_globals(Scope& scope) {
  scope.set("range", Value::callable("range", [](Interpreter&, CallArgs& a) {
    if (!a.keyword.empty()) throw EvalError("range() takes no keyword arguments");
    if (a.positional.empty() || a.positional.size() > 3)
      throw EvalError("range expected 1 to 3 arguments, got " + std::to_string(a.positional.size()));
    int64_t start = 0, stop = 0, step = 1;
    if (a.positional.size() == 1) {
      stop = need_int(a.positional[0], "range() argument");
    } else {
      start = need_int(a.positional[0], "range() argument");
      stop = need_int(a.positional[1], "range() argument");
      if (a.positional.size() == 3) step = need_int(a.positional[2], "range() argument");
    }
    if (step == 0) throw EvalError("range() arg 3 must not be zero");
    std::vector<Value> out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      if (out.size() >= 100000)
        throw EvalError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      out.push_back(Value::integer(i));
      if (__builtin_add_overflow(i, step, &i)) break;  // past INT64_MAX/MIN: past stop too
    }
    return Value::list(std::move(out));
  }));
  scope.set("dict", Value::callable("dict", [](Interpreter&, CallArgs& a) {
    std::vector<std::pair<Value, Value>> items;
    auto put = [&](Value k, Value v) {
      charge_steps(items.size());
      for (auto& kv : items)
        if (equals(kv.first, k)) {
          kv.second = std::move(v);
          return;
        }
      items.emplace_back(std::move(k), std::move(v));
    };
    if (a.positional.size() > 1) throw EvalError("dict expected at most 1 argument");
    if (a.positional.size() == 1) {
      const Value& src = a.positional[0];
      if (src.is_dict()) {
        for (const auto& kv : src.dict_data().items) put(kv.first, kv.second);
      } else {
        for (const Value& pair : iterate(src)) {
          const std::vector<Value> kv = iterate(pair);
          if (kv.size() != 2) throw EvalError("dictionary update sequence element has the wrong length");
          put(kv[0], kv[1]);
        }
      }
    }
    for (auto& kw : a.keyword) put(Value::string(kw.first), kw.second);
    return Value::dict(std::move(items));
  }));
  scope.set("namespace", Value::callable("namespace", [](Interpreter&, CallArgs& a) {
    std::vector<std::pair<std::string, Value>> attrs;
    if (a.positional.size() > 1) throw EvalError("namespace() takes at most one positional argument");
    if (a.positional.size() == 1) {
      if (!a.positional[0].is_dict()) throw EvalError("namespace() argument must be a mapping");
      for (const auto& kv : a.positional[0].dict_data().items) attrs.emplace_back(need_str(kv.first, "namespace key"), kv.second);
    }
    for (auto& kw : a.keyword) attrs.emplace_back(kw.first, kw.second);
    Value ns = Value::namespace_({});
    for (auto& kv : attrs) {
      if (!kv.first.empty() && kv.first[0] == '_')
        throw EvalError("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                        kv.first + "'.");
      ns.ns().set(kv.first, kv.second);
    }
    return ns;
  }));
}

// ---- interpreter -------------------------------------------------------------------------------------

void Interpreter::fail(Loc loc, const std::string& what) const { throw InputError(format_loc(tmpl_.name, loc) + what); }

std::string Interpreter::render(const ScopePtr& globals) {
  RenderBudget budget(limits_);
  budget_ = &budget;
  struct Reset {
    RenderBudget*& b;
    ~Reset() { b = nullptr; }
  } reset{budget_};
  std::string out;
  exec(tmpl_.body, child_scope(globals), out);
  return out;
}

void Interpreter::enter(Loc loc) {
  if (depth_ >= limits_.max_depth)
    fail(loc, "evaluation nested deeper than " + std::to_string(limits_.max_depth) + " levels (limit max_depth)");
  if (budget_) {
    try {
      budget_->steps(1);
    } catch (const EvalError& err) {
      fail(loc, err.what());
    }
  }
  ++depth_;
}

void Interpreter::check_output(const std::string& out, Loc loc) const {
  if (out.size() > limits_.max_output_bytes)
    fail(loc, "rendered output longer than " + std::to_string(limits_.max_output_bytes) +
                  " bytes (limit max_output_bytes)");
}

void Interpreter::enter_call() {
  if (calls_ >= limits_.max_calls)
    throw EvalError("macro calls nested deeper than " + std::to_string(limits_.max_calls) +
                    " levels (limit max_calls; a macro calling itself?)");
  ++calls_;
}

namespace {

// Undoes one Interpreter level on every exit path.
struct Leave {
  int& counter;
  ~Leave() { --counter; }
};

// Brackets a macro or caller() call.
struct CallScope {
  Interpreter& in;
  explicit CallScope(Interpreter& i) : in(i) { in.enter_call(); }
  ~CallScope() { in.leave_call(); }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
};

}  // namespace

std::string Interpreter::exec_to_string(const Body& body, const ScopePtr& scope) {
  std::string out;
  exec(body, scope, out);
  return out;
}

Value Interpreter::call(const Value& fn, CallArgs& args) {
  if (fn.is_callable()) return fn.fn().fn(*this, args);
  if (fn.is_undefined()) fail_undefined(fn);
  throw EvalError("'" + type_name(fn) + "' object is not callable");
}

Value Interpreter::apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  const auto it = filters().find(name);
  if (it == filters().end()) throw EvalError("unsupported filter '" + name + "'");
  return it->second(*this, input, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& v, CallArgs& args) {
  const auto it = tests().find(name);
  if (it == tests().end()) throw EvalError("unsupported test '" + name + "'");
  return it->second(v, args);
}

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  enter(e.loc);
  const Leave leave{depth_};
  try {
    return eval_inner(e, scope);
  } catch (const EvalError& err) {
    fail(e.loc, err.what());
  }
}

CallArgs Interpreter::eval_args(const Expr& e, size_t first_arg, const ScopePtr& scope) {
  CallArgs args;
  for (size_t k = first_arg; k < e.children.size(); ++k) args.positional.push_back(eval(*e.children[k], scope));
  for (const auto& kw : e.kwargs) args.keyword.emplace_back(kw.first, eval(*kw.second, scope));
  if (e.dyn_args) {
    const Value extra = eval(*e.dyn_args, scope);
    for (const Value& v : iterate(extra)) args.positional.push_back(v);
  }
  if (e.dyn_kwargs) {
    const Value extra = eval(*e.dyn_kwargs, scope);
    if (!extra.is_dict()) throw EvalError("argument after ** must be a mapping, not " + type_name(extra));
    for (const auto& kv : extra.dict_data().items) args.keyword.emplace_back(need_str(kv.first, "keyword"), kv.second);
  }
  return args;
}

Value Interpreter::filter_chain(const Expr& f, const Value& input, const ScopePtr& scope) {
  // A filter-block chain is nested kFilter nodes whose innermost input is null.
  const Value in = f.children[0] ? filter_chain(*f.children[0], input, scope) : input;
  try {
    CallArgs args = eval_args(f, 1, scope);
    return apply_filter(f.name, in, args);
  } catch (const EvalError& err) {
    fail(f.loc, err.what());
  }
}

Value Interpreter::eval_inner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName: {
      const Value* v = scope->find(e.name);
      return v ? *v : Value::undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.children.size());
      for (const auto& c : e.children) items.push_back(eval(*c, scope));
      return Value::list(std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      std::vector<std::pair<Value, Value>> items;
      for (size_t k = 0; k + 1 < e.children.size(); k += 2) {
        Value key = eval(*e.children[k], scope);
        Value val = eval(*e.children[k + 1], scope);
        if (key.is_list() && !key.is_tuple()) throw EvalError("unhashable type: 'list'");
        if (key.is_dict()) throw EvalError("unhashable type: 'dict'");
        bool replaced = false;
        charge_steps(items.size());
        for (auto& kv : items)
          if (equals(kv.first, key)) {
            kv.second = val;
            replaced = true;
          }
        if (!replaced) items.emplace_back(std::move(key), std::move(val));
      }
      return Value::dict(std::move(items));
    }
    case ExprKind::kGetAttr:
      return get_attr(eval(*e.children[0], scope), e.name);
    case ExprKind::kGetItem: {
      const Value obj = eval(*e.children[0], scope);
      return get_item(obj, eval(*e.children[1], scope));
    }
    case ExprKind::kSlice: {
      const Value obj = eval(*e.children[0], scope);
      auto part = [&](size_t k) { return e.children[k] ? eval(*e.children[k], scope) : Value::none(); };
      const Value start = part(1), stop = part(2), step = part(3);
      return slice_value(obj, start, stop, step);
    }
    case ExprKind::kCall: {
      const Value fn = eval(*e.children[0], scope);
      CallArgs args = eval_args(e, 1, scope);
      return call(fn, args);
    }
    case ExprKind::kFilter: {
      const Value input = eval(*e.children[0], scope);
      CallArgs args = eval_args(e, 1, scope);
      return apply_filter(e.name, input, args);
    }
    case ExprKind::kTest: {
      const Value v = eval(*e.children[0], scope);
      CallArgs args = eval_args(e, 1, scope);
      return Value::boolean(apply_test(e.name, v, args) != e.negated);
    }
    case ExprKind::kNot:
      return Value::boolean(!truthy(eval(*e.children[0], scope)));
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      const Value v = eval(*e.children[0], scope);
      if (v.is_undefined()) fail_undefined(v);
      const bool neg = e.kind == ExprKind::kNeg;
      if (v.is_int() || v.is_bool()) {
        if (neg && v.as_int() == std::numeric_limits<int64_t>::min()) throw EvalError("integer overflow");
        return Value::integer(neg ? -v.as_int() : v.as_int());
      }
      if (v.is_float()) return Value::floating(neg ? -v.as_float() : v.as_float());
      throw EvalError(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" + type_name(v) + "'");
    }
    case ExprKind::kBinary: {
      const Value a = eval(*e.children[0], scope);
      const Value b = eval(*e.children[1], scope);
      return arith(e.bin_op, a, b);
    }
    case ExprKind::kAnd: {
      Value a = eval(*e.children[0], scope);
      return truthy(a) ? eval(*e.children[1], scope) : a;
    }
    case ExprKind::kOr: {
      Value a = eval(*e.children[0], scope);
      return truthy(a) ? a : eval(*e.children[1], scope);
    }
    case ExprKind::kCompare: {
      Value left = eval(*e.children[0], scope);
      for (size_t k = 0; k < e.cmp_ops.size(); ++k) {
        Value right = eval(*e.children[k + 1], scope);
        bool ok;
        switch (e.cmp_ops[k]) {
          case CmpOp::kEq: ok = equals(left, right); break;
          case CmpOp::kNe: ok = !equals(left, right); break;
          case CmpOp::kIn: ok = contains(right, left); break;
          case CmpOp::kNotIn: ok = !contains(right, left); break;
          default: {
            if (left.is_undefined()) fail_undefined(left);
            if (right.is_undefined()) fail_undefined(right);
            const char* op = e.cmp_ops[k] == CmpOp::kLt ? "<" : e.cmp_ops[k] == CmpOp::kGt ? ">"
                             : e.cmp_ops[k] == CmpOp::kLe ? "<=" : ">=";
            ok = py_compare(left, right, op);
          }
        }
        if (!ok) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::kConcat: {
      std::string out;
      for (const auto& c : e.children) {
        const std::string piece = to_str(eval(*c, scope));
        check_string_bytes(out.size() + piece.size());
        out += piece;
      }
      return Value::string(std::move(out));
    }
    case ExprKind::kCond: {
      if (truthy(eval(*e.children[1], scope))) return eval(*e.children[0], scope);
      if (e.children[2]) return eval(*e.children[2], scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.loc.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  throw EvalError("internal: unknown expression kind");
}

void Interpreter::assign(const Target& t, const Value& v, const ScopePtr& scope) {
  if (!t.attr.empty()) {
    const Value* ns = scope->find(t.names[0]);
    if (!ns || !ns->is_namespace()) fail(t.loc, "cannot assign attribute on non-namespace object");
    if (t.attr[0] == '_')
      fail(t.loc, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" + t.attr + "'.");
    ns->ns().set(t.attr, v);
    return;
  }
  if (!t.is_tuple) {
    scope->set(t.names[0], v);
    return;
  }
  std::vector<Value> items;
  try {
    items = iterate(v);
  } catch (const EvalError& err) {
    fail(t.loc, std::string("cannot unpack: ") + err.what());
  }
  if (items.size() != t.names.size())
    fail(t.loc, items.size() > t.names.size()
                    ? "too many values to unpack (expected " + std::to_string(t.names.size()) + ")"
                    : "not enough values to unpack (expected " + std::to_string(t.names.size()) + ", got " +
                          std::to_string(items.size()) + ")");
  for (size_t k = 0; k < items.size(); ++k) scope->set(t.names[k], items[k]);
}

Interpreter::Flow Interpreter::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    enter(s->loc);
    const Leave leave{depth_};
    const Flow f = exec_stmt(*s, scope, out);
    check_output(out, s->loc);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  const Value iterable = eval(*s.expr, scope);
  std::vector<Value> all;
  try {
    all = iterate(iterable);
  } catch (const EvalError& err) {
    fail(s.expr->loc, err.what());
  }
  const Target& target = s.targets[0];
  if (s.condition) {
    std::vector<Value> kept;
    for (const Value& item : all) {
      enter(s.loc);
      const Leave leave{depth_};
      ScopePtr probe = child_scope(scope);
      assign(target, item, probe);
      if (truthy(eval(*s.condition, probe))) kept.push_back(item);
    }
    all = std::move(kept);
  }
  if (all.empty()) {
    exec(s.else_body, child_scope(scope), out);
    return Flow::kNormal;
  }
  auto items = std::make_shared<const std::vector<Value>>(std::move(all));
  auto loop = std::make_shared<LoopData>();
  loop->items = items;
  // A loop object that outlives its loop (stored in a namespace, say) may be part of a cycle:
  // the budget keeps it until the end of the render.
  try {
    const Value loop_value = Value::loop(loop);
    for (size_t k = 0; k < items->size(); ++k) {
      enter(s.loc);
      const Leave leave{depth_};
      loop->index0 = static_cast<int64_t>(k);
      ScopePtr iter_scope = child_scope(scope);
      assign(target, (*items)[k], iter_scope);
      iter_scope->set("loop", loop_value);
      const Flow f = exec(s.body, iter_scope, out);
      if (f == Flow::kBreak) break;
    }
  } catch (...) {
    if (loop.use_count() > 1 && budget_) budget_->keep(loop, /*charge=*/false);
    throw;
  }
  if (loop.use_count() > 1 && budget_) budget_->keep(loop, /*charge=*/true);
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out) {
  switch (s.kind) {
    case StmtKind::kText:
      out += s.text;
      return Flow::kNormal;
    case StmtKind::kPrint:
      out += to_str(eval(*s.expr, scope));
      return Flow::kNormal;
    case StmtKind::kIf:
      for (const auto& branch : s.branches)
        if (truthy(eval(*branch.first, scope))) return exec(branch.second, scope, out);
      return exec(s.else_body, scope, out);
    case StmtKind::kFor:
      return exec_for(s, scope, out);
    case StmtKind::kSet:
      assign(s.targets[0], eval(*s.expr, scope), scope);
      return Flow::kNormal;
    case StmtKind::kSetBlock: {
      Value v = Value::string(exec_to_string(s.body, child_scope(scope)));
      if (s.filter) v = filter_chain(*s.filter, v, scope);
      assign(s.targets[0], v, scope);
      return Flow::kNormal;
    }
    case StmtKind::kMacro: {
      // The macro lives in the scope it captures, so it holds that scope weakly (no cycle).
      const Stmt* def = &s;
      const std::weak_ptr<Scope> weak_scope = scope;
      scope->set(s.name, Value::callable(s.name, [def, weak_scope](Interpreter& in, CallArgs& a) {
        const CallScope call(in);
        const ScopePtr def_scope = weak_scope.lock();
        if (!def_scope) throw EvalError("macro '" + def->name + "' called after its scope ended");
        ScopePtr ms = child_scope(def_scope);
        const size_t n = def->params.size();
        const size_t first_default = n - def->defaults.size();
        std::vector<bool> given(n, false);
        std::vector<Value> varargs;
        for (size_t k = 0; k < a.positional.size(); ++k) {
          if (k < n) {
            ms->set(def->params[k], a.positional[k]);
            given[k] = true;
          } else {
            varargs.push_back(a.positional[k]);
          }
        }
        std::vector<std::pair<Value, Value>> kwargs;
        for (auto& kw : a.keyword) {
          const auto it = std::find(def->params.begin(), def->params.end(), kw.first);
          if (it != def->params.end()) {
            const size_t k = static_cast<size_t>(it - def->params.begin());
            if (given[k]) throw EvalError("macro '" + def->name + "' got multiple values for argument '" + kw.first + "'");
            ms->set(kw.first, kw.second);
            given[k] = true;
          } else if (kw.first == "caller") {
            ms->set("caller", kw.second);
          } else {
            kwargs.emplace_back(Value::string(kw.first), kw.second);
          }
        }
        for (size_t k = 0; k < n; ++k) {
          if (given[k]) continue;
          if (k >= first_default) {
            ms->set(def->params[k], in.eval(*def->defaults[k - first_default], ms));
          } else {
            ms->set(def->params[k], Value::undefined("parameter '" + def->params[k] + "' was not provided"));
          }
        }
        ms->set("varargs", Value::list(std::move(varargs), /*tuple=*/true));
        ms->set("kwargs", Value::dict(std::move(kwargs)));
        return Value::string(in.exec_to_string(def->body, ms));
      }));
      return Flow::kNormal;
    }
    case StmtKind::kCallBlock: {
      const Stmt* def = &s;
      const ScopePtr def_scope = scope;
      const Value caller = Value::callable("caller", [def, def_scope](Interpreter& in, CallArgs& a) {
        const CallScope call(in);
        ScopePtr cs = child_scope(def_scope);
        for (size_t k = 0; k < def->params.size(); ++k) {
          const size_t first_default = def->params.size() - def->defaults.size();
          if (k < a.positional.size()) {
            cs->set(def->params[k], a.positional[k]);
          } else if (k >= first_default) {
            cs->set(def->params[k], in.eval(*def->defaults[k - first_default], cs));
          } else {
            cs->set(def->params[k], Value::undefined("parameter '" + def->params[k] + "' was not provided"));
          }
        }
        for (auto& kw : a.keyword) cs->set(kw.first, kw.second);
        return Value::string(in.exec_to_string(def->body, cs));
      });
      const Expr& call_expr = *s.expr;
      const Value fn = eval(*call_expr.children[0], scope);
      CallArgs args = eval_args(call_expr, 1, scope);
      args.keyword.emplace_back("caller", caller);
      try {
        out += to_str(call(fn, args));
      } catch (const EvalError& err) {
        fail(call_expr.loc, err.what());
      }
      return Flow::kNormal;
    }
    case StmtKind::kFilterBlock: {
      const Value body = Value::string(exec_to_string(s.body, child_scope(scope)));
      out += to_str(filter_chain(*s.filter, body, scope));
      return Flow::kNormal;
    }
    case StmtKind::kGeneration:
      // transformers' {% generation %} (assistant-mask markers): the body renders unchanged.
      return exec(s.body, scope, out);
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
    case StmtKind::kWith: {
      ScopePtr ws = child_scope(scope);
      for (size_t k = 0; k < s.targets.size(); ++k) assign(s.targets[k], eval(*s.values[k], scope), ws);
      exec(s.body, ws, out);
      return Flow::kNormal;
    }
  }
  return Flow::kNormal;
}

}  // namespace rlhf::jinja
