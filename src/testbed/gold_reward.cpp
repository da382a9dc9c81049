#include "testbed/gold_reward.h"

#include <cmath>
#include <functional>
#include <string>

#include "tensor/error.h"
#include "tensor/rng.h"
#include "testbed/task.h"

namespace rlhf::testbed {

namespace {

double spec_number(const rollout::RewardSpec& spec, const std::string& key, double def) {
  const auto it = spec.options.find(key);
  if (it == spec.options.end()) return def;
  try {
    size_t used = 0;
    const double v = std::stod(it->second, &used);
    if (used == it->second.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw InputError("reward '" + spec.text + "': option " + key + "=" + it->second + " is not a number");
}

}  // namespace

std::unique_ptr<rollout::RewardSource> gold_reward(const rollout::RewardSpec& spec) {
  for (const auto& [key, value] : spec.options)
    if (key != "world" && key != "detail" && key != "noise" && key != "seed")
      throw InputError("reward '" + spec.text + "': unknown option '" + key + "' (gold takes world, detail, noise, seed)");
  const auto world = static_cast<uint64_t>(spec_number(spec, "world", 1));
  const double noise = spec_number(spec, "noise", 0);
  const auto seed = static_cast<uint64_t>(spec_number(spec, "seed", 0));
  const std::string detail = spec.options.count("detail") ? spec.options.at("detail") : "";
  std::shared_ptr<Task> task = make_task(spec.arg, world);
  if (!detail.empty()) {
    bool known = false;
    Rng rng(0);
    for (const auto& [name, v] : task->gold_details(task->prompt(rng, Split::train), "", true))
      known = known || name == detail;
    if (!known) throw InputError("reward '" + spec.text + "': task " + spec.arg + " has no gold detail '" + detail + "'");
  }
  rollout::RewardFn fn = [task, detail, noise, seed, text = spec.text](const std::vector<rollout::RewardSample>& batch) {
    std::vector<double> out;
    for (const auto& s : batch) {
      if (s.prompt.is_chat)
        throw InputError("reward '" + text + "': the testbed's gold reward needs plain-string prompts");
      const std::string& prompt = s.prompt.text;
      double r = 0;
      if (detail.empty()) {
        r = task->gold(prompt, s.completion, s.eos);
      } else {
        for (const auto& [name, v] : task->gold_details(prompt, s.completion, s.eos))
          if (name == detail) r = v;
      }
      if (noise > 0) {
        Rng rng(seed ^ std::hash<std::string>{}(prompt), std::hash<std::string>{}(s.completion) ^ (s.eos ? 1 : 0));
        r += noise * rng.normal();
      }
      out.push_back(r);
    }
    return out;
  };
  return rollout::callback_reward("gold:" + spec.arg, std::move(fn));
}

}  // namespace rlhf::testbed
