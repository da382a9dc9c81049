#include "testbed/gold_reward.h"

#include <functional>
#include <string>

#include "tensor/error.h"
#include "tensor/rng.h"
#include "testbed/task.h"

namespace rlhf::testbed {

std::unique_ptr<rollout::RewardSource> gold_reward(const rollout::RewardSpec& spec, rollout::SpecOptions& opt) {
  const auto world = static_cast<uint64_t>(opt.number("world", 1));
  const double noise = opt.number("noise", 0);
  const auto seed = static_cast<uint64_t>(opt.number("seed", 0));
  const std::string detail = opt.str("detail", "");
  std::shared_ptr<Task> task = make_task(spec.arg, world);
  if (!detail.empty()) {
    bool known = false;
    Rng rng(0);
    for (const auto& [name, v] : task->gold_details(task->prompt(rng, Split::train), "", true))
      known = known || name == detail;
    if (!known) opt.fail("task " + spec.arg + " has no gold detail '" + detail + "'");
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
