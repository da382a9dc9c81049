// Limits on what a chat template may cost. A template comes from a model repository, so it is
// untrusted input: parsing and rendering one must end quickly with bounded memory and stack,
// whatever it contains. Every limit hit is an InputError that names it (docs/reliability.md §3).
//
// The parser enforces max_nesting. A render installs a RenderBudget on its thread; the value
// code (jinja_value.cpp) and the interpreter charge it as they work. Outside a render (parsing,
// converting the messages) the charges are free and only the default value-depth limit applies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace rlhf::jinja {

struct Limits {
  // Parser: nested expressions and blocks ((((x)))), {% if %} inside {% if %}, a.b.c chains.
  int max_nesting = 256;
  // Renderer: nested evaluation (expressions, statements, macro bodies), which bounds the stack.
  int max_depth = 512;
  // Renderer: macro and caller() calls in progress at once (recursion).
  int max_calls = 100;
  // Lists and dicts inside lists and dicts; also how deep a namespace is printed.
  int max_value_depth = 256;
  // The rendered text, and any block captured by set, a macro or a filter block.
  size_t max_output_bytes = size_t{8} << 20;
  // One string value.
  size_t max_string_bytes = size_t{8} << 20;
  // One list, dict or iteration.
  size_t max_items = 1'000'000;
  // Work units of one render: each statement, expression and loop iteration is one, and a
  // builtin charges one per item and per 32 bytes it touches. About a second of work.
  uint64_t max_steps = 20'000'000;
  // Bytes of all the values (strings, list and dict items, namespaces) one render builds.
  uint64_t max_alloc_bytes = uint64_t{256} << 20;
};

struct NamespaceData;
struct LoopData;

// The accounting of one render; the constructor makes it its thread's active budget, the
// destructor restores the previous one. Namespaces and escaped loop objects are kept until the
// end of the render and emptied there, which breaks any reference cycle a template made through
// them and keeps their destruction flat.
class RenderBudget {
 public:
  explicit RenderBudget(const Limits& limits);
  ~RenderBudget();
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;

  static RenderBudget* active();
  const Limits& limits() const { return limits_; }
  void steps(uint64_t units);   // throws EvalError past max_steps
  void alloc(uint64_t bytes);   // throws EvalError past max_alloc_bytes
  void keep(std::shared_ptr<NamespaceData> ns);
  // charge=false on an error path, where nothing may throw and the render ends anyway.
  void keep(std::shared_ptr<LoopData> loop, bool charge);

 private:
  Limits limits_;
  uint64_t steps_ = 0;
  uint64_t bytes_ = 0;
  RenderBudget* previous_;
  std::vector<std::shared_ptr<NamespaceData>> namespaces_;
  std::vector<std::shared_ptr<LoopData>> loops_;
};

// Charges to the active budget; no-ops outside a render.
void charge_steps(uint64_t units);
void charge_bytes_touched(size_t bytes);  // steps for a scan over `bytes`
// Throw EvalError naming the limit when a string of `bytes` or a list of `items` would pass it.
void check_string_bytes(size_t bytes);
void check_items(size_t items);
// The active budget's limits, or the defaults outside a render.
const Limits& current_limits();

}  // namespace rlhf::jinja
