// Values of the Jinja interpreter behind ChatTemplate (chat_template.h): the Python objects a
// chat template sees — None, bool, int, float, str, list/tuple, dict, namespace, callables,
// loop objects and Jinja's Undefined — with Python's rules for printing (str/repr), equality,
// ordering, truthiness, arithmetic and json.dumps (as transformers' `tojson` calls it).
//
// Deliberately left out: big integers (ints are 64-bit; overflow is an error), sets, bytes,
// `%`-formatting of strings, and full Unicode case mapping: upper/lower/title/capitalize map
// ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic and full-width Latin; other scripts pass
// through unchanged (CJK, Arabic, Hebrew, ... have no case anyway).
//
// Strings are UTF-8 `std::string`; lengths, indices and slices count code points as Python does.
// Lists and dicts are immutable once built (the sandbox transformers uses forbids mutation), so
// values share them by pointer; only namespaces are mutable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/jinja_limits.h"

namespace rlhf::jinja {

// An evaluation failure not yet tied to a template position; the interpreter rethrows it as an
// InputError prefixed with "name:line:column: ".
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Value;
class Interpreter;

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFn = std::function<Value(Interpreter&, CallArgs&)>;

struct ListData;
struct DictData;
struct NamespaceData;
struct CallableData;
struct LoopData;

class Value {
 public:
  enum class Type : uint8_t {
    kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable, kLoop
  };

  Value() = default;  // Undefined without a hint
  static Value undefined(std::string hint);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(std::string s);
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> items);  // keys assumed unique
  static Value namespace_(std::vector<std::pair<std::string, Value>> attrs);
  // depth: the nesting() of what `fn` holds on to plus one (0 when it holds no list or dict).
  static Value callable(std::string name, NativeFn fn, int depth = 0);
  static Value loop(std::shared_ptr<LoopData> loop);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_float() const { return type_ == Type::kFloat; }
  bool is_number() const { return type_ == Type::kBool || type_ == Type::kInt || type_ == Type::kFloat; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_namespace() const { return type_ == Type::kNamespace; }
  bool is_callable() const { return type_ == Type::kCallable; }
  bool is_loop() const { return type_ == Type::kLoop; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }        // also for bool (0/1)
  double as_float() const;                     // int, bool or float
  const std::string& str() const { return *s_; }
  const std::vector<Value>& items() const;     // list items
  bool is_tuple() const;
  const DictData& dict_data() const { return *dict_; }
  NamespaceData& ns() const { return *ns_; }
  const CallableData& fn() const { return *fn_; }
  LoopData& loop_data() const { return *loop_; }
  // Message used when an undefined value is used in a way that fails.
  const std::string& undefined_hint() const;
  // How deeply lists and dicts nest in this value (0 for a scalar, 1 for a flat list). List
  // and dict construction fails past Limits::max_value_depth, so that comparing, printing and
  // destroying a value never recurse without bound. Namespaces and loops count as scalars: the
  // render's budget keeps them, so their contents are released without recursion.
  int nesting() const;

 private:
  Type type_ = Type::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;  // string, or the undefined hint
  std::shared_ptr<const ListData> list_;
  std::shared_ptr<const DictData> dict_;
  std::shared_ptr<NamespaceData> ns_;
  std::shared_ptr<const CallableData> fn_;
  std::shared_ptr<LoopData> loop_;
};

struct ListData {
  std::vector<Value> items;
  bool tuple = false;
  int depth = 1;
};

struct DictData {
  std::vector<std::pair<Value, Value>> items;  // insertion order
  int depth = 1;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
};

struct NamespaceData {
  std::vector<std::pair<std::string, Value>> attrs;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

struct CallableData {
  std::string name;
  NativeFn fn;
  int depth = 0;
};

struct LoopData {
  std::shared_ptr<const std::vector<Value>> items;
  int64_t index0 = 0;
  int64_t depth0 = 0;
  bool has_changed_value = false;  // state of loop.changed()
  std::vector<Value> changed_value;
};

// ---- Python semantics -------------------------------------------------------------------------

bool truthy(const Value& v);
std::string type_name(const Value& v);   // Python's type name: 'str', 'NoneType', ...
// str(v); Undefined -> "". Printing stops with an EvalError past Limits::max_value_depth levels
// (a namespace can contain itself) or Limits::max_string_bytes of text.
std::string to_str(const Value& v);
std::string repr(const Value& v);        // repr(v)
std::string py_float_repr(double d);     // repr(float)
std::string py_str_repr(std::string_view s);
bool equals(const Value& a, const Value& b);
// Python's a < b; throws EvalError for unorderable types.
bool less_than(const Value& a, const Value& b);
// a OP b for OP in <, >, <=, >=.
bool py_compare(const Value& a, const Value& b, std::string_view op);
bool contains(const Value& container, const Value& item);  // `item in container`
int64_t length(const Value& v);  // len(v); throws for types without a length
// list(v) as Jinja iterates it: list items, dict keys, string characters, nothing for Undefined.
std::vector<Value> iterate(const Value& v);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys). indent: none -> compact; an int ->
// that many spaces; a string -> that string.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string json_dumps(const Value& v, const JsonDumpOptions& opt);

// Fails past Limits::max_value_depth levels of arrays and objects.
Value from_json(const nlohmann::json& j);

// ---- UTF-8 and Python string helpers -----------------------------------------------------------

std::u32string utf8_decode(std::string_view s);  // invalid bytes map to U+DC80+byte
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t cp);
int64_t utf8_length(std::string_view s);
bool py_isspace(char32_t cp);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);        // str.title()
std::string py_capitalize(std::string_view s);   // str.capitalize()
std::string jinja_title(std::string_view s);     // the `title` filter (word starts after -\s({[<)
// str.strip/lstrip/rstrip; chars == nullptr strips Python whitespace.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

}  // namespace rlhf::jinja
