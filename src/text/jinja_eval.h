// Interpreter of the Jinja subset: walks a parsed Template (jinja_parser.h) with Jinja2's
// semantics as transformers configures it (sandboxed, immutable: no list/dict mutation).
//
// Scoping is Jinja2's: `set` inside a for loop is local to that iteration (each iteration starts
// from the enclosing values), `set` inside if/else is not scoped, macros see the template's
// top-level variables at call time, namespaces are the one mutable object.
//
// Built in: the filters and tests listed in jinja_eval.cpp (is_known_filter / is_known_test),
// the globals range, dict and namespace, the methods of str, dict and list that chat templates
// use, and loop.cycle/loop.changed. A str/dict/list method Python has but this file does not
// implement fails with "unsupported str method 'zfill'" and the template position.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja_limits.h"
#include "text/jinja_parser.h"
#include "text/jinja_value.h"

namespace rlhf::jinja {

struct Scope;
using ScopePtr = std::shared_ptr<Scope>;

struct Scope {
  ScopePtr parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const;  // this scope, then its parents
  void set(const std::string& name, Value v);       // this scope
};

class Interpreter {
 public:
  explicit Interpreter(const Template& tmpl, const Limits& limits = {}) : tmpl_(tmpl), limits_(limits) {}

  // Renders the template body in a child scope of `globals`, within `limits` (jinja_limits.h).
  std::string render(const ScopePtr& globals);

  enum class Flow { kNormal, kBreak, kContinue };
  Value eval(const Expr& e, const ScopePtr& scope);
  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  std::string exec_to_string(const Body& body, const ScopePtr& scope);

  Value call(const Value& fn, CallArgs& args);
  Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
  bool apply_test(const std::string& name, const Value& v, CallArgs& args);

  // Brackets a macro or caller() call; throws EvalError past Limits::max_calls.
  void enter_call();
  void leave_call() { --calls_; }

 private:
  Value eval_inner(const Expr& e, const ScopePtr& scope);
  Flow exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out);
  Flow exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  void assign(const Target& t, const Value& v, const ScopePtr& scope);
  CallArgs eval_args(const Expr& e, size_t first_arg, const ScopePtr& scope);
  Value filter_chain(const Expr& f, const Value& input, const ScopePtr& scope);
  [[noreturn]] void fail(Loc loc, const std::string& what) const;
  void enter(Loc loc);  // one level of evaluation: depth and step limits
  void check_output(const std::string& out, Loc loc) const;

  const Template& tmpl_;
  const Limits limits_;
  RenderBudget* budget_ = nullptr;  // set while render() runs
  int depth_ = 0;
  int calls_ = 0;
};

// A str/dict/list/loop attribute or item lookup with Jinja's getattr/getitem fallbacks.
Value get_attr(const Value& obj, const std::string& attr);
Value get_item(const Value& obj, const Value& key);

// The globals every template sees: range, dict, namespace.
void add_builtin_globals(Scope& scope);

}  // namespace rlhf::jinja
