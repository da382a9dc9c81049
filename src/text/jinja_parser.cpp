// Recursive-descent parser mirroring jinja2/parser.py; see jinja_parser.h.
#include "text/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "tensor/error.h"

namespace rlhf::jinja {

namespace {

using K = Token::Kind;

const char* const kLoaderTags[] = {"include", "import", "from", "extends", "block"};

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string name, int max_nesting)
      : toks_(std::move(tokens)), name_(std::move(name)), max_nesting_(max_nesting) {}

  Body parse_all() {
    Body body = subparse({});
    if (cur().kind != K::kEof) fail(cur().loc, "unexpected tag '" + cur().value + "'");
    return body;
  }

 private:
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  const Token& next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }

  [[noreturn]] void fail(Loc loc, const std::string& what) const {
    throw InputError(format_loc(name_, loc) + what);
  }

  [[noreturn]] void fail_nesting(Loc loc) const {
    fail(loc, "nesting deeper than " + std::to_string(max_nesting_) + " levels (limit max_nesting)");
  }

  // One level of nesting, taken before the parser recurses into it.
  class Nest {
   public:
    Nest(Parser& p, Loc loc) : p_(p) {
      if (p_.nesting_ >= p_.max_nesting_) p_.fail_nesting(loc);
      ++p_.nesting_;
    }
    ~Nest() { --p_.nesting_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Parser& p_;
  };

  // Records the depth of the tree rooted at `e`, whose children are complete.
  ExprPtr done(ExprPtr e) const {
    int d = 0;
    auto see = [&d](const ExprPtr& c) {
      if (c) d = std::max(d, c->depth);
    };
    for (const auto& c : e->children) see(c);
    for (const auto& kw : e->kwargs) see(kw.second);
    see(e->dyn_args);
    see(e->dyn_kwargs);
    e->depth = d + 1;
    if (e->depth > max_nesting_) fail_nesting(e->loc);
    return e;
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case K::kText: return "template data";
      case K::kVarBegin: return "'{{'";
      case K::kVarEnd: return "end of print statement";
      case K::kBlockBegin: return "'{%'";
      case K::kBlockEnd: return "end of statement block";
      case K::kName: return "'" + t.value + "'";
      case K::kString: return "string";
      case K::kInt: return "integer";
      case K::kFloat: return "float";
      case K::kOp: return "'" + t.value + "'";
      case K::kEof: return "end of template";
    }
    return "token";
  }

  bool is_op(const char* op) const { return cur().kind == K::kOp && cur().value == op; }
  bool is_name(const char* n) const { return cur().kind == K::kName && cur().value == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(cur().loc, std::string("expected '") + op + "', got " + describe(cur()));
  }
  void expect_name(const char* n) {
    if (!skip_name(n)) fail(cur().loc, std::string("expected '") + n + "', got " + describe(cur()));
  }
  std::string expect_identifier() {
    if (cur().kind != K::kName) fail(cur().loc, "expected a name, got " + describe(cur()));
    return next().value;
  }
  void expect_block_end() {
    if (cur().kind != K::kBlockEnd) fail(cur().loc, "expected end of statement block, got " + describe(cur()));
    next();
  }

  static ExprPtr make(ExprKind kind, Loc loc) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->loc = loc;
    return e;
  }

  // ---- statements ---------------------------------------------------------------------------

  // Parses until a block tag whose name is in `end_names` (left as the current token, after
  // its '{%').
  Body subparse(std::initializer_list<const char*> end_names) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == K::kEof) {
        if (end_names.size() != 0) {
          std::string want;
          for (const char* n : end_names) want += (want.empty() ? "'" : " or '") + std::string(n) + "'";
          fail(t.loc, "unexpected end of template, expected " + want + " (innermost open block: '" +
                          open_blocks_.back() + "')");
        }
        return body;
      }
      if (t.kind == K::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->loc = t.loc;
        s->text = t.value;
        body.push_back(std::move(s));
        next();
      } else if (t.kind == K::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kPrint;
        s->loc = t.loc;
        next();
        s->expr = parse_tuple(true, false, {});
        if (cur().kind != K::kVarEnd) fail(cur().loc, "unexpected " + describe(cur()) + " in print statement");
        next();
        body.push_back(std::move(s));
      } else if (t.kind == K::kBlockBegin) {
        const Token& tag = peek();
        if (tag.kind == K::kName)
          for (const char* n : end_names)
            if (tag.value == n) {
              next();  // '{%'
              return body;
            }
        next();
        body.push_back(parse_statement());
      } else {
        fail(t.loc, "unexpected " + describe(t));
      }
    }
  }

  // Body of a block statement up to one of `end_names`; the end tag name is consumed and returned.
  std::string parse_body(Body* out, std::initializer_list<const char*> end_names) {
    expect_block_end();
    *out = subparse(end_names);
    return next().value;
  }

  void end_tag() { expect_block_end(); }

  StmtPtr parse_statement() {
    const Token& t = cur();
    const Nest nest(*this, t.loc);
    if (t.kind != K::kName) fail(t.loc, "tag name expected, got " + describe(t));
    const std::string tag = t.value;
    const Loc loc = t.loc;
    if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else")
      fail(loc, "unexpected '" + tag + "' (no open block it could close)");
    for (const char* bad : kLoaderTags)
      if (tag == bad) fail(loc, "unsupported tag '" + tag + "' (a chat template cannot load or extend other templates)");
    open_blocks_.push_back(tag);
    StmtPtr s;
    if (tag == "if") {
      s = parse_if();
    } else if (tag == "for") {
      s = parse_for();
    } else if (tag == "set") {
      s = parse_set();
    } else if (tag == "macro") {
      s = parse_macro();
    } else if (tag == "call") {
      s = parse_call_block();
    } else if (tag == "filter") {
      s = parse_filter_block();
    } else if (tag == "with") {
      s = parse_with();
    } else if (tag == "generation") {
      next();
      s = std::make_unique<Stmt>();
      s->kind = StmtKind::kGeneration;
      parse_body(&s->body, {"endgeneration"});
      end_tag();
    } else if (tag == "break" || tag == "continue") {
      next();
      if (loop_depth_ == 0) fail(loc, "'" + tag + "' outside of a loop");
      s = std::make_unique<Stmt>();
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      end_tag();
    } else {
      fail(loc, "unsupported tag '" + tag + "'");
    }
    s->loc = loc;
    open_blocks_.pop_back();
    return s;
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kIf;
    next();  // if
    while (true) {
      ExprPtr cond = parse_tuple(false, false, {});
      Body body;
      const std::string end = parse_body(&body, {"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (end == "elif") continue;
      if (end == "else") {
        parse_body(&s->else_body, {"endif"});
      }
      end_tag();
      return s;
    }
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFor;
    next();  // for
    s->targets.push_back(parse_target(false, {"in"}));
    expect_name("in");
    s->expr = parse_tuple(false, false, {"recursive"});
    if (skip_name("if")) s->condition = parse_expression(true);
    if (is_name("recursive")) fail(cur().loc, "unsupported: recursive for loops");
    ++loop_depth_;
    const std::string end = parse_body(&s->body, {"endfor", "else"});
    --loop_depth_;
    if (end == "else") parse_body(&s->else_body, {"endfor"});
    end_tag();
    return s;
  }

  StmtPtr parse_set() {
    auto s = std::make_unique<Stmt>();
    next();  // set
    s->targets.push_back(parse_target(true, {}));
    if (skip_op("=")) {
      s->kind = StmtKind::kSet;
      s->expr = parse_tuple(true, false, {});
      end_tag();
      return s;
    }
    s->kind = StmtKind::kSetBlock;
    if (s->targets[0].is_tuple || !s->targets[0].attr.empty())
      fail(s->targets[0].loc, "a block set assigns one plain name");
    if (is_op("|")) s->filter = parse_filter(nullptr, false);
    parse_body(&s->body, {"endset"});
    end_tag();
    return s;
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kMacro;
    next();  // macro
    s->name = expect_identifier();
    parse_signature(s.get());
    parse_body(&s->body, {"endmacro"});
    end_tag();
    return s;
  }

  void parse_signature(Stmt* s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      const Loc loc = cur().loc;
      s->params.push_back(expect_identifier());
      if (skip_op("=")) {
        s->defaults.push_back(parse_expression(true));
      } else if (!s->defaults.empty()) {
        fail(loc, "non-default argument follows default argument");
      }
    }
    expect_op(")");
  }

  StmtPtr parse_call_block() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kCallBlock;
    next();  // call
    if (is_op("(")) parse_signature(s.get());
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::kCall) fail(s->expr->loc, "expected a call in '{% call %}'");
    parse_body(&s->body, {"endcall"});
    end_tag();
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFilterBlock;
    next();  // filter
    s->filter = parse_filter(nullptr, true);
    parse_body(&s->body, {"endfilter"});
    end_tag();
    return s;
  }

  StmtPtr parse_with() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kWith;
    next();  // with
    while (cur().kind != K::kBlockEnd) {
      if (!s->targets.empty()) expect_op(",");
      s->targets.push_back(parse_target(false, {}));
      expect_op("=");
      s->values.push_back(parse_expression(true));
    }
    parse_body(&s->body, {"endwith"});
    end_tag();
    return s;
  }

  // name | name, name, ... | ns.attr (with_namespace)
  Target parse_target(bool with_namespace, std::initializer_list<const char*> end_names) {
    Target t;
    t.loc = cur().loc;
    t.names.push_back(expect_identifier());
    if (with_namespace && is_op(".")) {
      next();
      t.attr = expect_identifier();
      return t;
    }
    while (is_op(",")) {
      next();
      bool end = cur().kind == K::kBlockEnd || is_op("=");
      for (const char* n : end_names) end = end || is_name(n);
      if (end) break;
      t.names.push_back(expect_identifier());
    }
    t.is_tuple = t.names.size() > 1 || (toks_[pos_ - 1].kind == K::kOp && toks_[pos_ - 1].value == ",");
    return t;
  }

  // ---- expressions ----------------------------------------------------------------------------

  bool is_tuple_end(std::initializer_list<const char*> extra_end) const {
    const Token& t = cur();
    if (t.kind == K::kVarEnd || t.kind == K::kBlockEnd || t.kind == K::kEof) return true;
    if (t.kind == K::kOp && t.value == ")") return true;
    for (const char* n : extra_end)
      if (t.kind == K::kName && t.value == n) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens, std::initializer_list<const char*> extra_end) {
    const Loc loc = cur().loc;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail(cur().loc, "expected an expression, got " + describe(cur()));
    }
    auto e = make(ExprKind::kTuple, loc);
    e->children = std::move(items);
    return done(std::move(e));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    const Nest nest(*this, cur().loc);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      const Loc loc = next().loc;
      ExprPtr cond = parse_or();
      ExprPtr other;
      if (skip_name("else")) {
        const Nest nest(*this, cur().loc);
        other = parse_condexpr();
      }
      auto e = make(ExprKind::kCond, loc);
      e->children.push_back(std::move(expr));
      e->children.push_back(std::move(cond));
      e->children.push_back(std::move(other));
      expr = done(std::move(e));
    }
    return expr;
  }

  ExprPtr binary(ExprKind kind, Loc loc, ExprPtr a, ExprPtr b) {
    auto e = make(kind, loc);
    e->children.push_back(std::move(a));
    e->children.push_back(std::move(b));
    return done(std::move(e));
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Loc loc = next().loc;
      left = binary(ExprKind::kOr, loc, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Loc loc = next().loc;
      left = binary(ExprKind::kAnd, loc, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const Loc loc = next().loc;
      auto e = make(ExprKind::kNot, loc);
      const Nest nest(*this, loc);
      e->children.push_back(parse_not());
      return done(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Loc loc = cur().loc;
    ExprPtr first = parse_math1();
    std::vector<CmpOp> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      CmpOp op;
      if (cur().kind == K::kOp && cur().value == "==") {
        op = CmpOp::kEq;
      } else if (cur().kind == K::kOp && cur().value == "!=") {
        op = CmpOp::kNe;
      } else if (cur().kind == K::kOp && cur().value == "<") {
        op = CmpOp::kLt;
      } else if (cur().kind == K::kOp && cur().value == ">") {
        op = CmpOp::kGt;
      } else if (cur().kind == K::kOp && cur().value == "<=") {
        op = CmpOp::kLe;
      } else if (cur().kind == K::kOp && cur().value == ">=") {
        op = CmpOp::kGe;
      } else if (is_name("in")) {
        op = CmpOp::kIn;
      } else if (is_name("not") && peek().kind == K::kName && peek().value == "in") {
        next();
        op = CmpOp::kNotIn;
      } else {
        break;
      }
      next();
      ops.push_back(op);
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = make(ExprKind::kCompare, loc);
    e->children.push_back(std::move(first));
    for (auto& o : operands) e->children.push_back(std::move(o));
    e->cmp_ops = std::move(ops);
    return done(std::move(e));
  }

  ExprPtr math(ExprPtr left, BinOp op, Loc loc, ExprPtr right) {
    auto e = binary(ExprKind::kBinary, loc, std::move(left), std::move(right));
    e->bin_op = op;
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const BinOp op = cur().value == "+" ? BinOp::kAdd : BinOp::kSub;
      const Loc loc = next().loc;
      left = math(std::move(left), op, loc, parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Loc loc = cur().loc;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = make(ExprKind::kConcat, loc);
    e->children.push_back(std::move(first));
    while (skip_op("~")) e->children.push_back(parse_math2());
    return done(std::move(e));
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string& v = cur().value;
      const BinOp op = v == "*" ? BinOp::kMul : v == "/" ? BinOp::kDiv : v == "//" ? BinOp::kFloorDiv : BinOp::kMod;
      const Loc loc = next().loc;
      left = math(std::move(left), op, loc, parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Loc loc = next().loc;
      left = math(std::move(left), BinOp::kPow, loc, parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const ExprKind kind = cur().value == "-" ? ExprKind::kNeg : ExprKind::kPos;
      const Loc loc = next().loc;
      node = make(kind, loc);
      const Nest nest(*this, loc);
      node->children.push_back(parse_unary(false));
      node = done(std::move(node));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    const Loc loc = t.loc;
    if (t.kind == K::kName) {
      next();
      auto e = make(ExprKind::kLiteral, loc);
      if (t.value == "true" || t.value == "True") {
        e->literal = Value::boolean(true);
      } else if (t.value == "false" || t.value == "False") {
        e->literal = Value::boolean(false);
      } else if (t.value == "none" || t.value == "None") {
        e->literal = Value::none();
      } else {
        e->kind = ExprKind::kName;
        e->name = t.value;
      }
      return e;
    }
    if (t.kind == K::kString) {
      std::string s = next().value;
      while (cur().kind == K::kString) s += next().value;  // adjacent literals concatenate
      auto e = make(ExprKind::kLiteral, loc);
      e->literal = Value::string(std::move(s));
      return e;
    }
    if (t.kind == K::kInt || t.kind == K::kFloat) {
      auto e = make(ExprKind::kLiteral, loc);
      e->literal = t.kind == K::kInt ? Value::integer(t.int_value) : Value::floating(t.float_value);
      next();
      return e;
    }
    if (is_op("(")) {
      next();
      ExprPtr e = parse_tuple(true, true, {});
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      next();
      auto e = make(ExprKind::kList, loc);
      while (!is_op("]")) {
        if (!e->children.empty()) expect_op(",");
        if (is_op("]")) break;
        e->children.push_back(parse_expression(true));
      }
      expect_op("]");
      return done(std::move(e));
    }
    if (is_op("{")) {
      next();
      auto e = make(ExprKind::kDict, loc);
      while (!is_op("}")) {
        if (!e->children.empty()) expect_op(",");
        if (is_op("}")) break;
        e->children.push_back(parse_expression(true));
        expect_op(":");
        e->children.push_back(parse_expression(true));
      }
      expect_op("}");
      return done(std::move(e));
    }
    fail(loc, "unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& t = next();
    const Loc loc = t.loc;
    if (t.value == ".") {
      const Token& attr = next();
      if (attr.kind == K::kName) {
        auto e = make(ExprKind::kGetAttr, loc);
        e->children.push_back(std::move(node));
        e->name = attr.value;
        return done(std::move(e));
      }
      if (attr.kind != K::kInt) fail(attr.loc, "expected name or number after '.'");
      auto e = make(ExprKind::kGetItem, loc);
      e->children.push_back(std::move(node));
      auto idx = make(ExprKind::kLiteral, attr.loc);
      idx->literal = Value::integer(attr.int_value);
      e->children.push_back(std::move(idx));
      return done(std::move(e));
    }
    // '['
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.size() == 1 && args[0]->kind == ExprKind::kSlice) {
      args[0]->children[0] = std::move(node);
      return done(std::move(args[0]));
    }
    auto e = make(ExprKind::kGetItem, loc);
    e->children.push_back(std::move(node));
    if (args.size() == 1) {
      e->children.push_back(std::move(args[0]));
    } else {
      for (auto& a : args)
        if (a->kind == ExprKind::kSlice) fail(a->loc, "unsupported: multi-dimensional slices");
      auto tuple = make(ExprKind::kTuple, loc);
      tuple->children = std::move(args);
      e->children.push_back(done(std::move(tuple)));
    }
    return done(std::move(e));
  }

  // expression | [start] ':' [stop] [':' [step]]
  ExprPtr parse_subscribed() {
    const Loc loc = cur().loc;
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    next();  // ':'
    auto e = make(ExprKind::kSlice, loc);
    e->children.push_back(nullptr);  // the sliced object, filled in by parse_subscript
    e->children.push_back(std::move(start));
    ExprPtr stop, step;
    if (!is_op("]") && !is_op(",") && !is_op(":")) stop = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) step = parse_expression(true);
    }
    e->children.push_back(std::move(stop));
    e->children.push_back(std::move(step));
    return e;
  }

  void parse_call_args(Expr* e) {
    const Loc loc = cur().loc;
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*")) {
        if (e->dyn_args || e->dyn_kwargs) fail(loc, "invalid syntax for function call expression");
        next();
        e->dyn_args = parse_expression(true);
      } else if (is_op("**")) {
        if (e->dyn_kwargs) fail(loc, "invalid syntax for function call expression");
        next();
        e->dyn_kwargs = parse_expression(true);
      } else if (cur().kind == K::kName && peek().kind == K::kOp && peek().value == "=") {
        if (e->dyn_kwargs) fail(loc, "invalid syntax for function call expression");
        std::string key = next().value;
        next();  // '='
        e->kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (e->dyn_args || e->dyn_kwargs || !e->kwargs.empty())
          fail(cur().loc, "positional argument follows keyword argument");
        e->children.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(ExprKind::kCall, cur().loc);
    e->children.push_back(std::move(node));
    parse_call_args(e.get());
    return done(std::move(e));
  }

  // `| name(args)` chains; `start_inline` when the first name is not preceded by '|'.
  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const Loc loc = cur().loc;
      std::string name = expect_identifier();
      while (is_op(".")) {
        next();
        name.push_back('.');
        name += expect_identifier();
      }
      if (!is_known_filter(name)) fail(loc, "unsupported filter '" + name + "'");
      auto e = make(ExprKind::kFilter, loc);
      e->name = std::move(name);
      e->children.push_back(std::move(node));
      if (is_op("(")) parse_call_args(e.get());
      node = done(std::move(e));
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const Loc loc = next().loc;  // 'is'
    bool negated = false;
    if (skip_name("not")) negated = true;
    const Loc name_loc = cur().loc;
    std::string name = expect_identifier();
    while (is_op(".")) {
      next();
      name.push_back('.');
      name += expect_identifier();
    }
    if (!is_known_test(name)) fail(name_loc, "unsupported test '" + name + "'");
    auto e = make(ExprKind::kTest, loc);
    e->name = std::move(name);
    e->negated = negated;
    e->children.push_back(std::move(node));
    if (is_op("(")) {
      parse_call_args(e.get());
    } else {
      const Token& t = cur();
      const bool arg_start = t.kind == K::kName || t.kind == K::kString || t.kind == K::kInt ||
                             t.kind == K::kFloat || (t.kind == K::kOp && (t.value == "(" || t.value == "[" || t.value == "{"));
      if (arg_start && !is_name("else") && !is_name("or") && !is_name("and")) {
        if (is_name("is")) fail(t.loc, "you cannot chain multiple tests with 'is'");
        e->children.push_back(parse_postfix(parse_primary()));
      }
    }
    return done(std::move(e));
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::string name_;
  std::vector<std::string> open_blocks_;
  int loop_depth_ = 0;
  int max_nesting_;
  int nesting_ = 0;
};

}  // namespace

Template parse_template(const std::string& source, const std::string& name, const Limits& limits) {
  Template t;
  t.name = name;
  Parser p(tokenize(source, name), name, limits.max_nesting);
  t.body = p.parse_all();
  return t;
}

}  // namespace rlhf::jinja
