#include "testbed/tuning.h"

#include <algorithm>
#include <set>

#include "tensor/error.h"

namespace rlhf::testbed {

// The records CMake builds in from bench/tuned/PROFILE.json ("" where the file is missing).
extern const char* const kBuiltinTuning_quick;
extern const char* const kBuiltinTuning_standard;

namespace {

// A grid value as the command line and the run id read it (six significant digits: 0.1 × 0.3 is
// 0.03, not 0.030000000000000002).
double tidy(double x) { return std::stod(arg(x)); }

bool same(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b)); }

const TuneFamily* family_of(const std::string& suite, const std::string& method) {
  for (const auto& f : tune_families())
    for (const auto& [s, m] : f.arms)
      if (s == suite && m == method) return &f;
  return nullptr;
}

double number(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

// The candidate's numbers from its run (evaluated on the validation prompts).
TuneCandidate measured(double lr, double reg, const json& run) {
  TuneCandidate c{lr, reg, true, number(run["final"], "gold"), number(run["final"], "kl"), -INFINITY};
  for (const auto& cp : run["checkpoints"]) c.max_kl = std::max(c.max_kl, number(cp, "kl"));
  return c;
}

}  // namespace

const std::vector<TuneFamily>& tune_families() {
  // Three regularizer values (the vanilla one, a weaker and a stronger one) × three learning rates:
  // nine runs per family. Offline arms train at 2e-4, online ones at 3e-4 (bench_runs.cpp).
  const std::vector<double> lr = {0.5, 1, 2}, reg = {0.3, 1, 3};
  static const std::vector<TuneFamily> families = {
      {"dpo", {{"rq1", "dpo"}, {"rq6", "offline-dpo"}}, "--beta", "beta", lr, reg},
      {"ipo", {{"rq1", "ipo"}}, "--beta", "tau", lr, reg},
      {"kto", {{"rq1", "kto"}}, "--beta", "beta", lr, reg},
      {"rm+ppo", {{"rq1", "rm+ppo"}}, "--kl-coef", "kl_coef", lr, reg},
      {"rm+rloo", {{"rq1", "rm+rloo"}}, "--beta", "beta", lr, reg},
      {"rm+grpo", {{"rq1", "rm+grpo"}}, "--beta", "beta", lr, reg},
      {"online-dpo", {{"rq6", "online-dpo"}}, "--beta", "beta", lr, reg},
  };
  return families;
}

TuneChoice choose_config(const std::vector<TuneCandidate>& candidates, double base_gold, const TuneRule& rule) {
  TuneChoice out;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const TuneCandidate& c = candidates[i];
    std::string why;
    if (!c.finite)
      why = "non-finite loss or gradient";
    else if (!std::isfinite(c.final_gold) || !std::isfinite(c.final_kl) || !std::isfinite(c.max_kl))
      why = "non-finite validation numbers";
    else if (c.final_gold < base_gold - rule.gold_margin)
      why = "diverged: final gold " + arg(c.final_gold) + " below the base's " + arg(base_gold) + " by more than " +
            arg(rule.gold_margin);
    else if (c.max_kl > rule.kl_cap)
      why = "KL " + arg(c.max_kl) + " above the cap " + arg(rule.kl_cap);
    out.reasons.push_back(why);
    if (!why.empty()) continue;
    const TuneCandidate* best = out.chosen < 0 ? nullptr : &candidates[out.chosen];
    if (!best || c.final_gold > best->final_gold || (c.final_gold == best->final_gold && c.final_kl < best->final_kl))
      out.chosen = static_cast<int>(i);
  }
  return out;
}

RunSpec with_config(const RunSpec& vanilla, const TuneFamily& family, double lr, double reg) {
  RunSpec r = vanilla;
  option_value(r.args, "--learning-rate") = arg(lr);
  option_value(r.args, family.flag) = arg(reg);
  return r;
}

json run_tuning(const std::vector<RunSpec>& arms, const TuneRule& rule) {
  if (arms.empty()) throw LogicError("tuning: no arms");
  World& w = *arms.front().world;
  struct Search {
    const TuneFamily* family;
    RunSpec vanilla;
    double lr, reg;
    std::vector<RunSpec> specs;
  };
  std::vector<Search> searches;
  for (const auto& f : tune_families()) {
    const auto it = std::find_if(arms.begin(), arms.end(), [&](const RunSpec& s) {
      return s.suite == f.arms.front().first && s.method == f.arms.front().second;
    });
    if (it == arms.end()) continue;
    RunSpec v = *it;
    Search s{&f, v, std::stod(option_value(v.args, "--learning-rate")),
             std::stod(option_value(v.args, f.flag)), {}};
    for (double lf : f.lr_factors)
      for (double rf : f.reg_factors) {
        const double lr = tidy(s.lr * lf), reg = tidy(s.reg * rf);
        RunSpec c = with_config(v, f, lr, reg);
        c.suite = "tune", c.method = f.name, c.params = {{"lr", lr}, {f.param, reg}}, c.eval_split = Split::val;
        s.specs.push_back(c);
      }
    searches.push_back(std::move(s));
  }
  // Every candidate in parallel; one that stops on a non-finite loss is a result, not a failure.
  std::vector<std::pair<const RunSpec*, json>> outcomes;
  for (const auto& s : searches)
    for (const auto& c : s.specs) outcomes.emplace_back(&c, nullptr);
  std::vector<std::function<void()>> jobs;
  for (auto& o : outcomes)
    jobs.push_back([&o] {
      try {
        o.second = execute(*o.first);
      } catch (const NumericError& e) {
        o.second = {{"error", e.what()}};
      }
    });
  w.stages().parallel(jobs);
  const json base = w.evaluate_base({}, Split::val);
  const double base_gold = base["gold"].get<double>();
  json families = json::array();
  size_t next = 0;
  for (const auto& s : searches) {
    const TuneFamily& f = *s.family;
    std::vector<TuneCandidate> cands;
    std::vector<const json*> runs;
    for (const auto& spec : s.specs) {
      const json& run = outcomes[next++].second;
      runs.push_back(&run);
      const double lr = spec.params["lr"].get<double>(), reg = spec.params[f.param].get<double>();
      cands.push_back(run.contains("error") ? TuneCandidate{lr, reg, false} : measured(lr, reg, run));
    }
    const TuneChoice choice = choose_config(cands, base_gold, rule);
    json rows = json::array();
    for (size_t i = 0; i < cands.size(); ++i) {
      const TuneCandidate& c = cands[i];
      json row = {{"lr", c.lr}, {f.param, c.reg}, {"run", run_id(s.specs[i])}, {"finite", c.finite},
                  {"val_gold", finite_or_null(c.final_gold)}, {"val_kl", finite_or_null(c.final_kl)},
                  {"val_max_kl", finite_or_null(c.max_kl)}, {"passed", choice.reasons[i].empty()}};
      if (!choice.reasons[i].empty()) row["rejected"] = choice.reasons[i];
      if (runs[i]->contains("error")) row["error"] = (*runs[i])["error"];
      rows.push_back(row);
    }
    json arms_json = json::array();
    for (const auto& [suite, method] : f.arms) arms_json.push_back(suite + "/" + method);
    json chosen = nullptr;
    if (choice.chosen >= 0) {
      const json& r = rows[choice.chosen];
      chosen = {{"lr", r["lr"]}, {f.param, r[f.param]}, {"val_gold", r["val_gold"]}, {"val_kl", r["val_kl"]},
                {"val_max_kl", r["val_max_kl"]}, {"run", r["run"]}};
    }
    families.push_back({{"family", f.name}, {"arms", arms_json}, {"regularizer", f.param},
                        {"vanilla", {{"lr", s.lr}, {f.param, s.reg}}}, {"chosen", chosen}, {"candidates", rows}});
  }
  return {{"schema", "rlhf-bench-tuning/1"},
          {"profile", w.profile().name},
          {"preset", w.profile().preset.name},
          {"task", w.name()},
          {"seed", w.seed()},
          {"split", {{"name", "val"}, {"prompts", w.prompt_texts(Split::val).size()},
                     {"samples_per_prompt", w.profile().eval_samples}}},
          {"rule", {{"criterion", "highest final validation gold among candidates that pass the guard; ties: "
                                  "lower final KL, then grid order"},
                    {"guard", "finite loss and gradient; final validation gold at least the base's minus gold_margin; "
                              "validation KL at most kl_cap at every checkpoint"},
                    {"kl_cap", rule.kl_cap},
                    {"gold_margin", rule.gold_margin}}},
          {"base", {{"val_gold", base_gold}, {"val_gold_ci", base["gold_ci"]}}},
          {"families", families}};
}

json load_tuning(const std::string& file, const std::string& profile) {
  std::string source = file;
  json t;
  if (file.empty()) {
    // mini, the CI profile, reads quick's so that the tuned path is tested.
    const std::string recorded = profile == "mini" ? "quick" : profile;
    const char* text = recorded == "quick" ? kBuiltinTuning_quick
                       : recorded == "standard" ? kBuiltinTuning_standard
                                                : "";
    if (std::string(text).empty()) return nullptr;
    source = "built-in bench/tuned/" + recorded + ".json";
    t = json::parse(text);
  } else {
    t = read_json(file);
    if (t.value("profile", "") != profile)
      throw InputError(file + ": \"profile\" is '" + t.value("profile", "") + "', the bench runs '" + profile + "'");
  }
  if (t.value("schema", "") != "rlhf-bench-tuning/1" || !t.contains("families") || !t["families"].is_array())
    throw InputError(source + ": not a tuning record (expected \"schema\": \"rlhf-bench-tuning/1\" and "
                              "\"families\": [...], as rlhf bench --tune writes)");
  for (const auto& f : t["families"]) {
    const std::string name = f.is_object() ? f.value("family", "") : "";
    const auto known = std::find_if(tune_families().begin(), tune_families().end(),
                                    [&](const TuneFamily& x) { return x.name == name; });
    if (known == tune_families().end()) throw InputError(source + ": unknown family '" + name + "'");
    const json& c = f.contains("chosen") ? f["chosen"] : json(nullptr);
    if (!c.is_null() && !(std::isfinite(number(c, "lr")) && std::isfinite(number(c, known->param.c_str()))))
      throw InputError(source + ": family " + name + ": \"chosen\" needs numbers \"lr\" and \"" + known->param +
                       "\" (or null)");
  }
  t["source"] = source;
  return t;
}

std::vector<const TuneFamily*> retuned_families(const json& tuning) {
  std::vector<const TuneFamily*> out;
  if (tuning.is_null()) return out;
  for (const auto& rec : tuning["families"]) {
    const json chosen = rec.value("chosen", json(nullptr)), vanilla = rec.value("vanilla", json::object());
    const auto f = std::find_if(tune_families().begin(), tune_families().end(),
                                [&](const TuneFamily& x) { return x.name == rec.value("family", ""); });
    if (chosen.is_null() || f == tune_families().end()) continue;
    if (!same(number(vanilla, "lr"), number(chosen, "lr")) ||
        !same(number(vanilla, f->param.c_str()), number(chosen, f->param.c_str())))
      out.push_back(&*f);
  }
  return out;
}

void add_tuned_arms(const json& tuning, std::vector<RunSpec>& specs) {
  if (tuning.is_null()) return;
  std::set<std::string> added;
  const size_t n = specs.size();
  for (size_t i = 0; i < n; ++i) {
    const RunSpec vanilla = specs[i];  // a copy: push_back below may move the vector
    const TuneFamily* f = family_of(vanilla.suite, vanilla.method);
    if (!f || !added.insert(vanilla.suite + "/" + vanilla.method).second) continue;
    for (const auto& rec : tuning["families"]) {
      const json chosen = rec.value("chosen", json(nullptr));
      if (rec["family"] != f->name || chosen.is_null()) continue;
      const double lr = chosen["lr"].get<double>(), reg = chosen[f->param].get<double>();
      RunSpec v = vanilla;
      if (same(std::stod(option_value(v.args, "--learning-rate")), lr) &&
          same(std::stod(option_value(v.args, f->flag)), reg))
        continue;  // the vanilla run is the tuned one
      RunSpec t = with_config(vanilla, *f, lr, reg);
      t.params = {{"config", "tuned"}, {"lr", lr}, {f->param, reg}};
      for (const auto& [k, v] : vanilla.params.items())
        if (!t.params.contains(k)) t.params[k] = v;
      specs.push_back(t);
    }
  }
}

std::string tuning_table(const json& tuned) {
  std::string o = "tuning on " + tuned["task"].get<std::string>() + " seed " + tuned["seed"].dump() + ", " +
                  tuned["split"]["prompts"].dump() + " validation prompts (base gold " +
                  arg(tuned["base"]["val_gold"].get<double>()) + "):\n";
  for (const auto& f : tuned["families"]) {
    const std::string reg = f["regularizer"];
    int passed = 0;
    for (const auto& c : f["candidates"]) passed += c["passed"].get<bool>();
    o += "  " + f["family"].get<std::string>() + ": vanilla lr " + f["vanilla"]["lr"].dump() + " " + reg + " " +
         f["vanilla"][reg].dump() + "; ";
    const json& c = f["chosen"];
    o += c.is_null() ? "none chosen" : "chosen lr " + c["lr"].dump() + " " + reg + " " + c[reg].dump() + " (val gold " +
                                           arg(c["val_gold"].get<double>()) + ", KL " + arg(c["val_kl"].get<double>()) +
                                           ")";
    o += "; " + std::to_string(passed) + " of " + std::to_string(f["candidates"].size()) + " passed the guard\n";
  }
  return o;
}

json tuning_summary(const json& tuning) {
  if (tuning.is_null()) return nullptr;
  json chosen = json::object();
  for (const auto& f : tuning["families"]) chosen[f["family"].get<std::string>()] = f.value("chosen", json(nullptr));
  return {{"source", tuning["source"]}, {"version", tuning.value("version", "")},
          {"profile", tuning["profile"]}, {"rule", tuning.value("rule", json(nullptr))}, {"chosen", chosen}};
}

}  // namespace rlhf::testbed
