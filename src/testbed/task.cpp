// The task registry and the helpers every testbed task shares (tasks_internal.h).
#include <cctype>
#include <cmath>

#include "tensor/error.h"
#include "testbed/task.h"
#include "testbed/tasks_internal.h"

namespace rlhf::testbed {

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

std::vector<std::string> prompt_and_completion(const std::string& prompt, const std::string& completion) {
  std::vector<std::string> w = split_words(prompt);
  for (std::string& c : split_words(completion)) w.push_back(std::move(c));
  return w;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

int uniform_int(Rng& rng, int lo, int hi) {
  RLHF_CHECK(hi >= lo, "uniform_int: empty range");
  return lo + static_cast<int>(rng.below(static_cast<uint64_t>(hi - lo + 1)));
}

size_t pick_weighted(Rng& rng, const std::vector<double>& weights) {
  double total = 0;
  for (double w : weights) total += w;
  RLHF_CHECK(total > 0, "pick_weighted: all weights are zero");
  double u = rng.uniform() * total;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (u < weights[i]) return i;
    u -= weights[i];
  }
  // Rounding left u a hair above the last positive weight: take the last positive one.
  for (size_t i = weights.size(); i-- > 0;)
    if (weights[i] > 0) return i;
  return 0;
}

bool is_test_prompt(const std::string& prompt, uint64_t world_seed) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : prompt) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  uint64_t z = h ^ (world_seed * 0x9e3779b97f4a7c15ULL) ^ 0x7465737473706c74ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z % 5 == 0;
}

bool within_budget(size_t completion_words, bool eos, int max_new_tokens) {
  return eos && completion_words + 1 <= static_cast<size_t>(max_new_tokens);
}

std::vector<std::string> task_names() { return {"valence", "sort", "add", "lists"}; }

std::unique_ptr<Task> make_task(const std::string& name, uint64_t world_seed) {
  if (name == "valence") return make_valence_task(world_seed);
  if (name == "sort") return make_sort_task(world_seed);
  if (name == "add") return make_add_task(world_seed);
  if (name == "lists") return make_lists_task(world_seed);
  throw InputError("unknown testbed task '" + name + "' (expected valence, sort, add or lists)");
}

}  // namespace rlhf::testbed
