#include "testbed/gold_reward.h"

#include <functional>
#include <iomanip>
#include <sstream>
#include <string>

#include "tensor/error.h"
#include "tensor/rng.h"
#include "testbed/task.h"

namespace rlhf::testbed {

namespace {

// The annotator's settings as spec options, named as in AnnotatorConfig.
struct AnnotatorField {
  const char* name;
  double AnnotatorConfig::*field;
};
constexpr AnnotatorField kAnnotatorFields[] = {{"bt_tau", &AnnotatorConfig::bt_tau},
                                               {"flip_eps", &AnnotatorConfig::flip_eps},
                                               {"gauss_sigma", &AnnotatorConfig::gauss_sigma},
                                               {"length_gamma", &AnnotatorConfig::length_gamma},
                                               {"taste_jitter", &AnnotatorConfig::taste_jitter}};

// Ranks each run of consecutive samples of one prompt with the annotator: the best scores 1, the
// worst 0. The draws are a function of the seed and the texts, so the same samples always get
// the same judgement.
std::vector<double> annotator_scores(const Annotator& ann, const std::vector<double>& gold, uint64_t seed,
                                     const std::vector<rollout::RewardSample>& batch, const std::string& text) {
  std::vector<double> out(batch.size());
  for (size_t begin = 0, end = 0; begin < batch.size(); begin = end) {
    const std::string& prompt = batch[begin].prompt.text;
    uint64_t texts = 0;
    std::vector<AnnotatedItem> items;
    for (end = begin; end < batch.size() && batch[end].prompt.text == prompt; ++end) {
      const auto& s = batch[end];
      const uint64_t id = std::hash<std::string>{}(prompt + "\x1f" + s.completion + (s.eos ? "\x1e" : ""));
      items.push_back({.gold = gold[end], .length = static_cast<double>(s.completion_ids.size()), .id = id});
      texts = texts * 0x100000001B3ull ^ id;
    }
    if (items.size() < 2)
      throw InputError("reward '" + text + "': an annotator ranks a prompt's samples, so it needs at least 2 "
                       "consecutive samples per prompt (got 1 of '" + prompt + "')");
    Rng rng(seed ^ std::hash<std::string>{}(prompt), texts);
    const std::vector<int> order = ann.rank(items, rng);
    const double worst = static_cast<double>(items.size() - 1);
    for (size_t pos = 0; pos < order.size(); ++pos) out[begin + order[pos]] = (worst - pos) / worst;
  }
  return out;
}

}  // namespace

std::string annotator_spec_options(const AnnotatorConfig& cfg) {
  std::ostringstream o;
  o << std::setprecision(17) << "annotator";
  for (const AnnotatorField& f : kAnnotatorFields)
    if (cfg.*f.field != 0) o << "," << f.name << "=" << cfg.*f.field;
  if (cfg.pool != 1) o << ",pool=" << cfg.pool;
  if (cfg.taste_seed != 0) o << ",taste_seed=" << cfg.taste_seed;
  return o.str();
}

std::unique_ptr<rollout::RewardSource> gold_reward(const rollout::RewardSpec& spec, rollout::SpecOptions& opt) {
  const auto world = static_cast<uint64_t>(opt.number("world", 1));
  const double noise = opt.number("noise", 0);
  const auto seed = static_cast<uint64_t>(opt.number("seed", 0));
  const std::string detail = opt.str("detail", "");
  std::shared_ptr<const Annotator> judge;
  if (opt.flag("annotator")) {
    if (noise > 0) opt.fail("noise and annotator are two ways of judging: give one");
    AnnotatorConfig cfg;
    cfg.name = spec.text;
    for (const AnnotatorField& f : kAnnotatorFields) cfg.*f.field = opt.number(f.name, 0);
    cfg.pool = static_cast<int>(opt.number("pool", 1));
    cfg.taste_seed = static_cast<uint64_t>(opt.number("taste_seed", 0));
    check_config(cfg);
    judge = std::make_shared<const Annotator>(cfg);
  }
  std::shared_ptr<Task> task = make_task(spec.arg, world);
  if (!detail.empty()) {
    bool known = false;
    Rng rng(0);
    for (const auto& [name, v] : task->gold_details(task->prompt(rng, Split::train), "", true))
      known = known || name == detail;
    if (!known) opt.fail("task " + spec.arg + " has no gold detail '" + detail + "'");
  }
  rollout::RewardFn fn = [task, detail, noise, seed, judge,
                          text = spec.text](const std::vector<rollout::RewardSample>& batch) {
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
    return judge ? annotator_scores(*judge, out, seed, batch, text) : out;
  };
  return rollout::callback_reward("gold:" + spec.arg, std::move(fn));
}

}  // namespace rlhf::testbed
