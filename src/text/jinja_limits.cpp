// The per-render budget of jinja_limits.h.
#include "text/jinja_limits.h"

#include <string>

#include "text/jinja_value.h"

namespace rlhf::jinja {

namespace {

thread_local RenderBudget* g_active = nullptr;

}  // namespace

RenderBudget::RenderBudget(const Limits& limits) : limits_(limits), previous_(g_active) { g_active = this; }

RenderBudget::~RenderBudget() {
  g_active = previous_;
  // Empty everything first, so that no reference through a kept object outlives this loop and
  // no chain of them is destroyed recursively.
  for (const auto& ns : namespaces_) ns->attrs.clear();
  for (const auto& loop : loops_) {
    loop->changed_value.clear();
    loop->items.reset();
  }
}

RenderBudget* RenderBudget::active() { return g_active; }

void RenderBudget::steps(uint64_t units) {
  steps_ += units;
  if (steps_ > limits_.max_steps)
    throw EvalError("the template exceeds its budget of " + std::to_string(limits_.max_steps) +
                    " steps (loop iterations, evaluations and work of builtins; limit max_steps)");
}

void RenderBudget::alloc(uint64_t bytes) {
  bytes_ += bytes;
  if (bytes_ > limits_.max_alloc_bytes)
    throw EvalError("the template builds more than " + std::to_string(limits_.max_alloc_bytes) +
                    " bytes of values (limit max_alloc_bytes)");
}

void RenderBudget::keep(std::shared_ptr<NamespaceData> ns) {
  alloc(sizeof(NamespaceData) + 64);
  namespaces_.push_back(std::move(ns));
}

void RenderBudget::keep(std::shared_ptr<LoopData> loop, bool charge) {
  if (charge) alloc(sizeof(LoopData) + 64 + (loop->items ? loop->items->size() * sizeof(Value) : 0));
  loops_.push_back(std::move(loop));
}

void charge_steps(uint64_t units) {
  if (g_active) g_active->steps(units);
}

void charge_bytes_touched(size_t bytes) {
  if (g_active) g_active->steps(1 + bytes / 32);
}

void check_string_bytes(size_t bytes) {
  if (g_active && bytes > g_active->limits().max_string_bytes)
    throw EvalError("a string would be longer than " + std::to_string(g_active->limits().max_string_bytes) +
                    " bytes (limit max_string_bytes)");
}

void check_items(size_t items) {
  if (g_active && items > g_active->limits().max_items)
    throw EvalError("a list would have more than " + std::to_string(g_active->limits().max_items) +
                    " items (limit max_items)");
}

const Limits& current_limits() {
  static const Limits kDefaults;
  return g_active ? g_active->limits() : kDefaults;
}

}  // namespace rlhf::jinja
