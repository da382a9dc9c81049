// Parser of the Jinja subset of ChatTemplate: builds the syntax tree the interpreter walks
// (jinja_eval.h). Grammar and precedence follow jinja2/parser.py (3.1):
//   expression := or ["if" or ["else" expression]]
//   or := and ("or" and)*     and := not ("and" not)*     not := "not" not | compare
//   compare := math1 ((== != < > <= >= in "not in") math1)*
//   math1 := concat ((+ -) concat)*    concat := math2 ("~" math2)*
//   math2 := pow ((* / // %) pow)*     pow := unary ("**" unary)*
//   unary := ("-" | "+") unary | primary postfix*, then filters (|f), tests (is [not] t), calls
// Statements: if/elif/else, for (tuple targets, `if` filter, else), set (names, tuples,
// namespace attributes, block set), macro, call blocks, filter blocks, with, break/continue
// (loopcontrols), generation (transformers' AssistantTracker), raw (in the lexer).
//
// Anything else — include, import, extends, block, recursive loops, autoescape, unknown filters
// and tests — is rejected here with an InputError "<name>:<line>:<col>: unsupported ...".
//
// Nesting is bounded (Limits::max_nesting) before the parser recurses, and so is the depth of
// every expression tree (left-deep chains like a.b.c... or 1+1+...), so that neither parsing
// nor evaluating nor destroying a tree can exhaust the stack.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_lexer.h"
#include "text/jinja_limits.h"
#include "text/jinja_value.h"

namespace rlhf::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : uint8_t {
  kLiteral,   // literal
  kName,      // name
  kList,      // children = items
  kTuple,     // children = items
  kDict,      // children = key0, value0, key1, value1, ...
  kGetAttr,   // children[0] . name
  kGetItem,   // children[0] [ children[1] ]
  kSlice,     // children[0] [ children[1] : children[2] : children[3] ] (null = omitted)
  kCall,      // children[0] ( children[1..], kwargs, dyn_args, dyn_kwargs )
  kFilter,    // children[0] | name ( children[1..], kwargs ); children[0] null in filter blocks
  kTest,      // children[0] is [not] name ( children[1..], kwargs )
  kNot,       // not children[0]
  kNeg,       // - children[0]
  kPos,       // + children[0]
  kBinary,    // children[0] bin_op children[1]
  kAnd,       // children[0] and children[1]
  kOr,        // children[0] or children[1]
  kCompare,   // children[0] cmp_ops[0] children[1] cmp_ops[1] children[2] ...
  kConcat,    // children joined with ~
  kCond,      // children[0] if children[1] else children[2] (null: undefined)
};

enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kGt, kLe, kGe, kIn, kNotIn };

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  Loc loc;
  Value literal;
  std::string name;
  BinOp bin_op = BinOp::kAdd;
  bool negated = false;  // kTest
  std::vector<CmpOp> cmp_ops;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    // *args
  ExprPtr dyn_kwargs;  // **kwargs
  int depth = 1;       // of the tree rooted here
};

// Assignment target of for/set/with: a name, a tuple of names, or `namespace.attribute`.
struct Target {
  std::vector<std::string> names;  // one name unless is_tuple
  bool is_tuple = false;
  std::string attr;  // non-empty: names[0].attr (namespace attribute)
  Loc loc;
};

enum class StmtKind : uint8_t {
  kText, kPrint, kIf, kFor, kSet, kSetBlock, kMacro, kCallBlock, kFilterBlock, kGeneration,
  kBreak, kContinue, kWith,
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  Loc loc;
  std::string text;                                 // kText
  ExprPtr expr;                                     // kPrint, kFor iterable, kSet value, kCallBlock call
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: (condition, body) for if and each elif
  Body body;
  Body else_body;                                   // kIf else, kFor else
  std::vector<Target> targets;                      // kFor/kSet/kSetBlock: [0]; kWith: one per value
  std::vector<ExprPtr> values;                      // kWith values
  ExprPtr condition;                                // kFor `if` filter
  ExprPtr filter;                                   // kFilterBlock / kSetBlock filter chain
  std::string name;                                 // kMacro
  std::vector<std::string> params;                  // kMacro, kCallBlock (caller parameters)
  std::vector<ExprPtr> defaults;                    // defaults of the last params
};

struct Template {
  std::string name;
  Body body;
};

// Throws InputError "<name>:<line>:<col>: ..." for syntax errors and unsupported constructs.
Template parse_template(const std::string& source, const std::string& name, const Limits& limits = {});

// Names the interpreter implements (the parser rejects others).
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace rlhf::jinja
