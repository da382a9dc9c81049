#include "testbed/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <thread>

#include <omp.h>

#include "eval/preference_metrics.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "tensor/error.h"
#include "testbed/bandits.h"
#include "testbed/bench_runs.h"
#include "testbed/gold_reward.h"
#include "testbed/report.h"
#include "testbed/stats.h"
#include "testbed/tuning.h"
#include "testbed/verdicts.h"

namespace rlhf::testbed {

namespace {

const std::vector<std::string> kSuites = {"rq1", "rq2", "rq3", "rq4", "rq5", "rq6", "length", "overopt", "bandits"};

const std::map<std::string, std::string> kQuestions = {
    {"rq1", "Does a separate reward model matter at equal data and compute?"},
    {"rq2", "Is DPO's implicit reward a classifier reward model?"},
    {"rq3", "How robust is each method to label noise (70% vs 80% agreement)?"},
    {"rq4", "K-wise rankings: Plackett-Luce RM + RL vs pairwise DPO"},
    {"rq5", "Pairs bootstrapped from a scalar reward vs RL on the scalar"},
    {"rq6", "How much does online feedback help?"},
    {"length", "Do length-biased labels lengthen the outputs?"},
    {"overopt", "Over-optimization: gold vs proxy as the policy moves away (d = sqrt KL)"},
    {"bandits", "Bandit checks of the losses"},
};

// The KL grid of the frontier summaries (nats per sequence).
const std::vector<double> kKlGrid = {0.25, 0.5, 1, 2, 5};

// Everything one bench needs, shared by the suites.
struct Bench {
  Stages& stages;
  const Profile& profile;
  uint64_t world_seed;
  std::map<std::string, std::unique_ptr<World>> worlds;  // "task/seed=S"
  json runs = json::array();
  json suites = json::object();
  std::mutex mu;
  json tuning = nullptr;  // the tuning record whose configurations run next to the vanilla ones

  World& world(const std::string& task, uint64_t seed) {
    const std::string key = task + "/seed=" + std::to_string(seed);
    auto& w = worlds[key];
    if (!w) w = std::make_unique<World>(stages, profile, task, seed, world_seed);
    return *w;
  }

  // Runs the specs in parallel, appending their results; returns them in order.
  std::vector<json> run_all(const std::vector<RunSpec>& specs) {
    std::vector<json> out(specs.size());
    std::vector<std::function<void()>> tasks;
    for (size_t i = 0; i < specs.size(); ++i) tasks.push_back([&, i] { out[i] = execute(specs[i]); });
    stages.parallel(tasks);
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& r : out) {
      const bool seen = std::any_of(runs.begin(), runs.end(), [&](const json& x) { return x["id"] == r["id"]; });
      if (!seen) runs.push_back(r);
    }
    return out;
  }
};

// The frontier summary row of a method: gold at fixed KL, area, best gold, final gold with CI.
json frontier_row(const std::string& task, const std::string& method, const std::vector<json>& runs) {
  std::vector<KlGold> pts;
  double best = -INFINITY;
  json best_ci = nullptr;
  for (const auto& r : runs)
    for (const auto& c : r["checkpoints"]) {
      pts.push_back({c["kl"].get<double>(), c["gold"].get<double>()});
      if (c["gold"].get<double>() > best) best = c["gold"].get<double>(), best_ci = c["gold_ci"];
    }
  const std::vector<KlGold> f = pareto_frontier(pts);
  json at = json::object();
  for (double kl : kKlGrid) {
    const double g = frontier_gold_at(f, kl);
    at[arg(kl)] = finite_or_null(g);
  }
  return {{"task", task}, {"method", method}, {"gold_at_kl", at}, {"auc_0_5", frontier_area(f, 5.0)},
          {"best_gold", best}, {"ci", best_ci}, {"max_kl", f.empty() ? 0.0 : f.back().kl}};
}

// Groups runs by method and returns one frontier row per method; a tuned arm is its own row.
json frontier_table(const std::vector<json>& runs) {
  std::map<std::pair<std::string, std::string>, std::vector<json>> by;
  std::vector<std::pair<std::string, std::string>> order;
  for (const auto& r : runs) {
    const bool tuned = r["params"].value("config", "") == "tuned";
    auto key = std::make_pair(r["task"].get<std::string>(), r["method"].get<std::string>() + (tuned ? " (tuned)" : ""));
    if (!by.count(key)) order.push_back(key);
    by[key].push_back(r);
  }
  json table = json::array();
  for (const auto& k : order) table.push_back(frontier_row(k.first, k.second, by[k]));
  return table;
}

// ---- suites ---------------------------------------------------------------------------------------

const std::string kCleanish = "bt:0.9";  // RQ1's annotator (docs/testbed.md §7: BT, agreement ≈ 0.9)

// RQ1's runs that RQ2 scores again: built in one place so both suites name the same stage.
RunSpec rq1_dpo(World& w, double beta) {
  RunSpec r = offline_run(w, "rq1", "dpo", w.prefs(kCleanish), static_cast<double>(w.n_pairs()), "sigmoid", beta,
                          {{"beta", beta}});
  r.proxy_rm = w.reward_model(kCleanish);
  return r;
}
RunSpec rq1_ipo(World& w) {
  RunSpec r = offline_run(w, "rq1", "ipo", w.prefs(kCleanish), static_cast<double>(w.n_pairs()), "ipo", 0.1,
                          {{"tau", 0.1}});
  r.proxy_rm = w.reward_model(kCleanish);
  return r;
}
RunSpec rq1_ppo(World& w, double kl) {
  const fs::path rm = w.reward_model(kCleanish);
  RunSpec r = online_run(w, "rq1", "rm+ppo", "ppo", "rm:" + rm.string(), {{"kl_coef", kl}},
                         {"--kl-coef", arg(kl), "--missing-eos-penalty", "1"});
  r.proxy_rm = rm, r.labels = static_cast<double>(w.n_pairs());
  return r;
}

// RQ1's vanilla arms (the tuning searches around them too).
std::vector<RunSpec> rq1_specs(const Profile& p, World& w) {
  const fs::path prefs = w.prefs(kCleanish), rm = w.reward_model(kCleanish);
  const double pairs = static_cast<double>(w.n_pairs());
  std::vector<RunSpec> specs;
  for (double beta : p.dpo_betas) specs.push_back(rq1_dpo(w, beta));
  specs.push_back(rq1_ipo(w));
  // SimPO and ORPO read no reference: none is computed.
  specs.push_back(offline_run(w, "rq1", "simpo", prefs, pairs, "simpo", 2.0, {{"beta", 2.0}, {"gamma", 1.0}},
                              {"--simpo-gamma", "1", "--reference-free"}));
  specs.push_back(offline_run(w, "rq1", "orpo", prefs, pairs, "orpo", 0.1, {{"lambda", 0.1}}, {"--reference-free"}));
  specs.push_back(offline_run(w, "rq1", "kto", w.unpaired(kCleanish), 2 * pairs, "kto", 0.1, {{"beta", 0.1}}, {}, "kto"));
  specs.back().labels = pairs;
  for (double kl : p.kl_coefs) specs.push_back(rq1_ppo(w, kl));
  RunSpec rloo = online_run(w, "rq1", "rm+rloo", "rloo", "rm:" + rm.string(), {{"k", 4}},
                            {"--num-generations", "4", "--beta", arg(p.kl_coefs.front())});
  rloo.proxy_rm = rm, rloo.labels = pairs;
  specs.push_back(rloo);
  RunSpec grpo = online_run(w, "rq1", "rm+grpo", "grpo", "rm:" + rm.string(), {{"k", 4}},
                            {"--num-generations", "4", "--beta", arg(p.kl_coefs.front())});
  grpo.proxy_rm = rm, grpo.labels = pairs;
  specs.push_back(grpo);
  RunSpec apa = online_run(w, "rq1", "rm+apa", "apa", "rm:" + rm.string(), {{"lambda", 0.1}}, {"--apa-lambda", "0.1"});
  apa.proxy_rm = rm, apa.labels = pairs;
  specs.push_back(apa);
  // The "+prompts" arm: the same RM + PPO with unlabeled prompts beside the labeled ones.
  RunSpec plus = rq1_ppo(w, p.kl_coefs.front());
  plus.method = "rm+ppo+prompts";
  plus.params["unlabeled_per_labeled"] = kUnlabeledPromptsPerTrain;
  option_value(plus.args, "--data") = w.train_plus_unlabeled_prompts().string();
  specs.push_back(plus);
  RunSpec gold = online_run(w, "rq1", "gold+ppo", "ppo", w.gold_spec(), {{"kl_coef", p.kl_coefs.front()}},
                            {"--kl-coef", arg(p.kl_coefs.front()), "--missing-eos-penalty", "1"});
  specs.push_back(gold);
  for (auto& s : specs)
    if (s.proxy_rm.empty()) s.proxy_rm = rm;
  return specs;
}

json suite_rq1(Bench& b, World& w) {
  const Profile& p = b.profile;
  std::vector<RunSpec> specs = rq1_specs(p, w);
  add_tuned_arms(b.tuning, specs);
  const std::vector<json> runs = b.run_all(specs);
  json table = frontier_table(runs);
  const json bon = best_of_n(w, "rq1", w.reward_model(kCleanish), p.bon_ns);
  return {{"question", kQuestions.at("rq1")}, {"table", table}, {"best_of_n", bon}};
}

// Pairs of base samples on a split, labelled by gold (chosen = higher gold), for RQ2.
struct GoldPairs {
  fs::path file;
  std::vector<double> gold_gap;
};

GoldPairs gold_pairs(World& w, Split split, double temperature, const fs::path& policy, const std::string& name) {
  const std::string stage = w.key() + "/rq2/" + name;
  const std::vector<std::string> args = {
      "generate", "--model", policy.string(), "--prompts", w.prompts(split).string(), "--out",
      (w.stages().dir(stage) / "samples.jsonl").string(), "--num-return-sequences", "2", "--temperature",
      arg(temperature), "--max-new-tokens", std::to_string(w.task().max_new_tokens()), "--seed", std::to_string(w.seed())};
  const fs::path dir = w.stages().stage(stage, {{"rlhf", args}}, [&](const fs::path& d) {
    w.stages().rlhf(args, d / "log.txt");
    const auto rows = read_jsonl(d / "samples.jsonl");
    std::string out;
    for (size_t i = 0; i + 1 < rows.size(); i += 2) {
      const std::string prompt = rows[i]["prompt"];
      auto gold = [&](const json& r) {
        return w.task().gold(prompt, r["completion"].get<std::string>(), r["finish_reason"] == "eos");
      };
      const double g0 = gold(rows[i]), g1 = gold(rows[i + 1]);
      if (std::fabs(g0 - g1) <= 0.02) continue;  // near-ties carry no gold label
      // An empty completion has no token to score (the CLI drops such a pair), so it is left out
      // here too and the scores stay aligned with the gold gaps.
      if (rows[i]["completion"].get<std::string>().empty() || rows[i + 1]["completion"].get<std::string>().empty())
        continue;
      const json &c = g0 > g1 ? rows[i] : rows[i + 1], &r = g0 > g1 ? rows[i + 1] : rows[i];
      out += json{{"prompt", prompt},
                  {"chosen", " " + c["completion"].get<std::string>()},
                  {"rejected", " " + r["completion"].get<std::string>()},
                  {"gold_gap", std::fabs(g0 - g1)}}
                 .dump() +
             "\n";
    }
    write_file_atomic(d / "pairs.jsonl", out);
  });
  GoldPairs g{dir / "pairs.jsonl", {}};
  for (const auto& row : read_jsonl(g.file)) g.gold_gap.push_back(row["gold_gap"].get<double>());
  return g;
}

// Per pair: 1 when the chosen response scores higher, ½ for a tie, 0 otherwise (the verdicts pair
// scorers on the same pairs).
json pair_correctness(const eval::PairScores& s) {
  std::vector<double> c;
  for (size_t i = 0; i < s.chosen.size(); ++i)
    c.push_back(s.chosen[i] > s.rejected[i] ? 1.0 : s.chosen[i] == s.rejected[i] ? 0.5 : 0.0);
  return per_unit(c);
}

json suite_rq2(Bench& b, World& w) {
  const Profile& p = b.profile;
  const fs::path rm = w.reward_model(kCleanish);
  const RunSpec dpo_spec = rq1_dpo(w, p.dpo_betas.front()), ipo_spec = rq1_ipo(w),
                ppo_spec = rq1_ppo(w, p.kl_coefs.front());
  b.run_all({dpo_spec, ipo_spec, ppo_spec});
  const std::vector<std::pair<std::string, GoldPairs>> sets = {
      {"id", gold_pairs(w, Split::test, 1.0, w.base(), "id")},
      {"prompt_shift", gold_pairs(w, Split::ood, 1.0, w.base(), "prompt-shift")},
      {"response_shift_t1.5", gold_pairs(w, Split::test, 1.5, w.base(), "response-shift-t15")},
      {"response_shift_rl", gold_pairs(w, Split::test, 1.0, run_model(ppo_spec), "response-shift-rl")},
  };
  struct Scorer {
    std::string name;
    fs::path policy;
    double beta;
  };
  const std::vector<Scorer> scorers = {{"dpo_implicit", run_model(dpo_spec), p.dpo_betas.front()},
                                       {"ipo_implicit", run_model(ipo_spec), 0.1}};
  json table = json::array();
  const double tau = w.annotator(kCleanish).config().bt_tau;
  std::vector<std::function<void()>> jobs;
  std::vector<json> rows(sets.size() * (scorers.size() + 2));
  for (size_t si = 0; si < sets.size(); ++si)
    for (size_t ci = 0; ci < scorers.size(); ++ci)
      jobs.push_back([&, si, ci] {
        const auto& [set, pairs_file] = sets[si];
        const Scorer& sc = scorers[ci];
        const std::string stage = w.key() + "/rq2/eval-" + sc.name + "-" + set;
        const std::vector<std::string> args = {
            "eval", "--data", pairs_file.file.string(), "--reward-model", rm.string(), "--policy", sc.policy.string(),
            "--ref-model", w.base().string(), "--beta", arg(sc.beta), "--max-length",
            std::to_string(p.preset.max_positions), "--scores-out", (w.stages().dir(stage) / "scores.jsonl").string()};
        const fs::path dir = w.stages().stage(stage, {{"rlhf", args}},
                                              [&](const fs::path& d) { w.stages().rlhf(args, d / "log.txt"); });
        eval::PairScores rm_s, imp_s, free_s;
        const std::vector<double>& gold_gap = pairs_file.gold_gap;
        for (const auto& r : read_jsonl(dir / "scores.jsonl")) {
          rm_s.chosen.push_back(r["reward_model"]["chosen"]), rm_s.rejected.push_back(r["reward_model"]["rejected"]);
          imp_s.chosen.push_back(r["implicit_reward"]["chosen"]);
          imp_s.rejected.push_back(r["implicit_reward"]["rejected"]);
          free_s.chosen.push_back(r["policy_logps"]["chosen"]), free_s.rejected.push_back(r["policy_logps"]["rejected"]);
        }
        auto row = [&](const std::string& scorer, const eval::PairScores& s) {
          const eval::PreferenceMetrics m = eval::preference_metrics(s);
          std::vector<double> margin, pred, target;
          for (size_t i = 0; i < s.chosen.size(); ++i) margin.push_back(s.chosen[i] - s.rejected[i]);
          const bool aligned = gold_gap.size() == margin.size();
          // Calibration: sigmoid of the margin against the gold Bradley–Terry probability of the
          // pair under RQ1's annotator temperature.
          for (size_t i = 0; aligned && i < margin.size(); ++i) {
            pred.push_back(1 / (1 + std::exp(-margin[i])));
            target.push_back(1 / (1 + std::exp(-gold_gap[i] / tau)));
          }
          return json{{"scorer", scorer}, {"set", set}, {"pairs", m.pairs}, {"accuracy", m.accuracy}, {"auc", m.auc},
                      {"spearman_gold_gap", aligned ? eval::spearman(margin, gold_gap) : 0.0},
                      {"ece", aligned && !pred.empty() ? json(expected_calibration_error(pred, target, 10)) : json(nullptr)},
                      {"correct", pair_correctness(s)}};
        };
        const size_t base = si * (scorers.size() + 2);
        rows[base + 2 + ci] = row(sc.name, imp_s);
        if (ci == 0) {
          rows[base] = row("rm", rm_s);
          rows[base + 1] = row("dpo_logp_only", free_s);
        }
      });
  w.stages().parallel(jobs);
  for (auto& r : rows) table.push_back(r);
  return {{"question", kQuestions.at("rq2")}, {"table", table}};
}

// rq3's ensemble arms on one annotator's labels: RM + RLOO (as rq3's single-RM arm) against an
// ensemble of kEnsembleSize reward models trained alike with different seeds, combined by their
// minimum (WCO) or mean minus kUwoLambda times their variance (UWO) (Coste et al. 2023).
constexpr int kEnsembleSize = 3;
constexpr double kUwoLambda = 0.5;

void add_rm_ensembles(World& w, const std::string& annotator, const json& params, std::vector<RunSpec>& specs) {
  const Profile& p = w.profile();
  std::vector<std::string> members = {"--num-generations", "4", "--beta", arg(p.kl_coefs.front())};
  for (int m = 1; m < kEnsembleSize; ++m)
    members.insert(members.end(), {"--reward", "rm:" + w.reward_model(annotator, "bradley_terry", m).string()});
  const fs::path first = w.reward_model(annotator);  // member 0: the single-RM arm's reward model
  for (const auto& [method, combine] : {std::make_pair(std::string("rm-ensemble-wco+rloo"), std::string("min")),
                                        std::make_pair(std::string("rm-ensemble-uwo+rloo"), std::string("uwo"))}) {
    std::vector<std::string> extra = members;
    extra.insert(extra.end(), {"--reward-combine", combine});
    if (combine == "uwo") extra.insert(extra.end(), {"--reward-uwo-lambda", arg(kUwoLambda)});
    RunSpec r = online_run(w, "rq3", method, "rloo", "rm:" + first.string(), params, extra);
    r.labels = static_cast<double>(w.n_pairs());
    r.proxy_rm = first;
    r.checkpoints = -1;
    specs.push_back(std::move(r));
  }
}

json suite_rq3(Bench& b, World& w) {
  const Profile& p = b.profile;
  std::vector<RunSpec> specs;
  std::vector<std::string> names;
  for (double a : p.agreements) names.push_back(a >= 1.0 ? "clean" : "flip:" + arg(a));
  const std::string noisiest = names.back();  // the agreements run from clean to the noisiest
  names.push_back("human-like");
  names.push_back("gpt4-like");
  for (const auto& name : names) {
    const Annotator& ann = w.annotator(name);
    const double agreement = name == "clean" ? 1.0 : ann.measured_agreement;
    const fs::path prefs = w.prefs(name);
    const double pairs = static_cast<double>(w.n_pairs());
    const json params = {{"annotator", name}, {"agreement", std::round(agreement * 1000) / 1000}};
    const size_t first = specs.size();
    specs.push_back(offline_run(w, "rq3", "dpo", prefs, pairs, "sigmoid", 0.1, params));
    // DPO traces the whole noise grid (7a, 7b); the other arms run on the grid's ends and the
    // presets, the labels the hypotheses compare: an intermediate flip rate adds runs (RLOO's with
    // a reward model each) and no comparison. cDPO on clean labels (eps 0) is DPO itself.
    const bool grid_end = name == "clean" || name == noisiest || name.rfind("flip:", 0) != 0;
    if (grid_end) {
      const fs::path rm = w.reward_model(name);
      if (name != "clean")
        specs.push_back(offline_run(w, "rq3", "cdpo", prefs, pairs, "cdpo", 0.1, params,
                                    {"--label-smoothing", arg(std::clamp(1.0 - agreement, 0.0, 0.4))}));
      specs.push_back(offline_run(w, "rq3", "ipo", prefs, pairs, "ipo", 0.1, params));
      RunSpec rl = online_run(w, "rq3", "rm+rloo", "rloo", "rm:" + rm.string(), params,
                              {"--num-generations", "4", "--beta", arg(p.kl_coefs.front())});
      rl.labels = pairs;
      specs.push_back(rl);
      // Online DPO judged by the same annotator (its calibrated settings) on its own samples, one
      // label per prompt, as many labels as the offline arms.
      const std::string judge =
          w.gold_spec(annotator_spec_options(ann.config()) + ",seed=" + std::to_string(w.seed()));
      specs.push_back(online_run(w, "rq3", "online-dpo", "online-dpo", judge, params, {"--beta", "0.1"},
                                 std::max(1, static_cast<int>(pairs / p.rl_prompts))));
      if (name == noisiest) add_rm_ensembles(w, name, params, specs);
      for (size_t i = first; i < specs.size(); ++i)
        if (specs[i].proxy_rm.empty()) specs[i].proxy_rm = rm;
    }
    for (size_t i = first; i < specs.size(); ++i)  // only DPO's path is read (7b's peak)
      if (specs[i].method != "dpo" && specs[i].checkpoints == 0) specs[i].checkpoints = std::max(1, p.checkpoints / 2);
  }
  const std::vector<json> runs = b.run_all(specs);
  json table = json::array();
  for (const auto& r : runs)
    table.push_back({{"task", r["task"]}, {"method", r["method"]}, {"annotator", r["params"]["annotator"]},
                     {"agreement", r["params"]["agreement"]}, {"final_gold", r["final"]["gold"]},
                     {"final_ci", r["final"]["gold_ci"]}, {"final_kl", r["final"]["kl"]},
                     {"best_gold", std::max_element(r["checkpoints"].begin(), r["checkpoints"].end(),
                                                    [](const json& x, const json& y) { return x["gold"] < y["gold"]; })
                                       ->at("gold")}});
  return {{"question", kQuestions.at("rq3")}, {"table", table}};
}

json suite_rq4(Bench& b, World& w) {
  const Profile& p = b.profile;
  const std::string ann = "bt:0.8";
  const fs::path ranked = w.ranked(ann), prefs = w.prefs(ann);
  const fs::path pl_rm = w.reward_model(ann, "plackett_luce"), bt_rm = w.reward_model(ann);
  const double pairs = static_cast<double>(w.n_pairs());
  const double rankings = static_cast<double>(w.samples().size() / p.pref_samples);
  // Best-vs-worst pairs from the rankings.
  const fs::path bw = w.stages().stage(w.key() + "/rq4/best-worst", {{"ranked", ranked}}, [&](const fs::path& d) {
    std::string out;
    for (const auto& r : read_jsonl(ranked))
      out += json{{"prompt", r["prompt"]},
                  {"chosen", r["completions"][r["ranking"].front().get<int>()]},
                  {"rejected", r["completions"][r["ranking"].back().get<int>()]}}
                 .dump() +
             "\n";
    write_file_atomic(d / "pairs.jsonl", out);
  }) / "pairs.jsonl";
  std::vector<RunSpec> specs;
  const json params = {{"K", p.pref_samples}};
  RunSpec pl = online_run(w, "rq4", "pl-rm+rloo", "rloo", "rm:" + pl_rm.string(), params,
                          {"--num-generations", "4", "--beta", arg(p.kl_coefs.front())});
  pl.proxy_rm = pl_rm, pl.labels = rankings;
  RunSpec bt = online_run(w, "rq4", "bt-rm+rloo", "rloo", "rm:" + bt_rm.string(), params,
                          {"--num-generations", "4", "--beta", arg(p.kl_coefs.front())});
  bt.proxy_rm = bt_rm, bt.labels = rankings;
  specs = {pl, bt,
           offline_run(w, "rq4", "dpo-all-pairs", prefs, pairs, "sigmoid", 0.1, params),
           offline_run(w, "rq4", "dpo-best-worst", bw, rankings, "sigmoid", 0.1, params),
           offline_run(w, "rq4", "listwise-dpo", ranked, rankings, "listwise", 0.1, params)};
  for (auto& s : specs) {
    if (s.proxy_rm.empty()) s.proxy_rm = pl_rm;
    s.labels = rankings;
  }
  // The list length K: each prompt's ranking restricted to its first K samples (a Plackett–Luce
  // ranking restricted to a subset is Plackett–Luce over the subset), trained listwise and as
  // all of its C(K, 2) pairs.
  for (int K : p.ranking_ks) {
    const json inputs = {{"ranked", ranked}, {"K", K}};
    const fs::path dir = w.stages().stage(w.key() + "/rq4/k" + std::to_string(K), inputs, [&](const fs::path& d) {
      std::string lists, pairs_out;
      for (const auto& r : read_jsonl(ranked)) {
        json order = json::array(), completions = json::array();
        for (const auto& i : r["ranking"])
          if (i.get<int>() < K) order.push_back(i);
        for (int i = 0; i < K; ++i) completions.push_back(r["completions"][i]);
        lists += json{{"prompt", r["prompt"]}, {"completions", completions}, {"ranking", order}}.dump() + "\n";
        for (size_t a = 0; a < order.size(); ++a)
          for (size_t c = a + 1; c < order.size(); ++c)
            pairs_out += json{{"prompt", r["prompt"]}, {"chosen", completions[order[a].get<int>()]},
                              {"rejected", completions[order[c].get<int>()]}}
                             .dump() +
                         "\n";
      }
      write_file_atomic(d / "ranked.jsonl", lists);
      write_file_atomic(d / "pairs.jsonl", pairs_out);
    });
    const json kp = {{"K", K}};
    specs.push_back(offline_run(w, "rq4", "listwise-dpo-k", dir / "ranked.jsonl", rankings, "listwise", 0.1, kp));
    specs.push_back(offline_run(w, "rq4", "dpo-ranking-pairs-k", dir / "pairs.jsonl", rankings * K * (K - 1) / 2,
                                "sigmoid", 0.1, kp));
    specs.back().labels = specs[specs.size() - 2].labels = rankings;
    specs.back().proxy_rm = specs[specs.size() - 2].proxy_rm = pl_rm;
  }
  const std::vector<json> all = b.run_all(specs);
  std::vector<json> runs;
  json k_sweep = json::array();
  for (const auto& r : all) {
    const std::string m = r["method"];
    if (m.size() < 2 || m.substr(m.size() - 2) != "-k") {
      runs.push_back(r);
      continue;
    }
    k_sweep.push_back({{"K", r["params"]["K"]}, {"method", m.substr(0, m.size() - 2)}, {"final_gold", r["final"]["gold"]},
                       {"final_ci", r["final"]["gold_ci"]}, {"final_kl", r["final"]["kl"]}});
  }
  // Each reward model's ranking quality on held-out gold-labelled pairs of base samples:
  // pairwise accuracy a, and Kendall's tau over those pairs, 2a - 1.
  const GoldPairs held_out = gold_pairs(w, Split::test, 1.0, w.base(), "id");
  json rm_rows = json::array();
  for (const auto& [name, rm] : {std::make_pair(std::string("plackett_luce"), pl_rm),
                                 std::make_pair(std::string("bradley_terry"), bt_rm)}) {
    const std::string stage = w.key() + "/rq4/rm-eval-" + name;
    const std::vector<std::string> args = {"eval", "--data", held_out.file.string(), "--reward-model", rm.string(),
                                           "--max-length", std::to_string(p.preset.max_positions), "--out",
                                           (w.stages().dir(stage) / "eval.json").string(), "--scores-out",
                                           (w.stages().dir(stage) / "scores.jsonl").string()};
    const fs::path dir = w.stages().stage(stage, {{"rlhf", args}},
                                          [&](const fs::path& d) { w.stages().rlhf(args, d / "log.txt"); });
    const json e = read_json(dir / "eval.json");
    const double acc = e.at("reward_model").at("accuracy").get<double>();
    eval::PairScores scores;
    for (const auto& r : read_jsonl(dir / "scores.jsonl")) {
      scores.chosen.push_back(r["reward_model"]["chosen"]);
      scores.rejected.push_back(r["reward_model"]["rejected"]);
    }
    rm_rows.push_back({{"rm", name}, {"accuracy", acc}, {"kendall_tau", 2 * acc - 1},
                       {"correct", pair_correctness(scores)}});
  }
  return {{"question", kQuestions.at("rq4")}, {"table", frontier_table(runs)}, {"reward_models", rm_rows},
          {"k_sweep", k_sweep}};
}

// pass@k on Verify's test prompts (docs/testbed.md §7): kPassSamples samples per prompt at T = 1
// from each policy, each prompt's count of passing samples turned into the unbiased pass@k for
// every k of kPassKs, averaged over the prompts with a bootstrap CI.
constexpr int kPassSamples = 64;
const std::vector<int> kPassKs = {1, 2, 4, 8, 16, 32, 64};
const std::vector<std::string> kPassAtKMethods = {"dpo", "dpo+nll", "rloo", "grpo", "raft"};

// Each test prompt's number of passing samples among kPassSamples of a policy (a cached stage).
std::vector<int64_t> passing_counts(World& w, const std::string& name, const fs::path& model) {
  const auto& prompts = w.prompt_texts(Split::test);
  const std::string stage = "pass-at-k/" + name;
  const fs::path out = w.stages().dir(stage) / "samples.jsonl";
  const std::vector<std::string> args = {
      "generate", "--model", model.string(), "--prompts", w.prompts(Split::test).string(), "--out", out.string(),
      "--num-return-sequences", std::to_string(kPassSamples), "--temperature", "1", "--batch-size", "64",
      "--max-new-tokens", std::to_string(w.task().max_new_tokens()), "--seed", std::to_string(w.seed())};
  const fs::path dir = w.stages().stage(stage, {{"rlhf", args}}, [&](const fs::path& d) {
    w.stages().rlhf(args, d / "log.txt");
    const auto rows = read_jsonl(d / "samples.jsonl");
    if (rows.size() != prompts.size() * kPassSamples)
      throw std::runtime_error(name + ": pass@k expected " + std::to_string(prompts.size() * kPassSamples) +
                               " samples, got " + std::to_string(rows.size()));
    std::vector<int64_t> passed(prompts.size(), 0);
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string& prompt = prompts[i / kPassSamples];
      if (rows[i]["prompt"] != prompt) throw std::runtime_error(name + ": pass@k samples out of prompt order");
      for (const auto& [detail, v] :
           w.task().gold_details(prompt, rows[i]["completion"].get<std::string>(), rows[i]["finish_reason"] == "eos"))
        if (detail == "pass" && v >= 1.0) ++passed[i / kPassSamples];
    }
    write_file_atomic(d / "passed.json", json{{"n", kPassSamples}, {"passed", passed}}.dump() + "\n");
    fs::remove(d / "samples.jsonl");  // 64 rows per prompt; the counts are all pass@k needs
  });
  return read_json(dir / "passed.json").at("passed").get<std::vector<int64_t>>();
}

// A policy of the pass@k table: its method, the id its stage is named by and its model.
struct PassPolicy {
  std::string method, id;
  fs::path model;
};

// Rows {method, k, pass, ci, prompt_pass} for each policy and k.
json pass_at_k_table(World& w, const std::vector<PassPolicy>& policies) {
  std::vector<std::vector<int64_t>> passed(policies.size());
  std::vector<std::function<void()>> jobs;
  for (size_t i = 0; i < policies.size(); ++i)
    jobs.push_back([&, i] { passed[i] = passing_counts(w, policies[i].id, policies[i].model); });
  w.stages().parallel(jobs);
  json rows = json::array();
  for (size_t i = 0; i < policies.size(); ++i)
    for (int k : kPassKs) {
      std::vector<double> per_prompt;
      for (int64_t c : passed[i]) per_prompt.push_back(pass_at_k(kPassSamples, c, k));
      const MeanCi ci = bootstrap_mean_ci(per_prompt, w.seed());
      rows.push_back({{"method", policies[i].method}, {"k", k}, {"pass", ci.mean}, {"ci", {ci.lo, ci.hi}},
                      {"prompt_pass", per_unit(per_prompt)}});
    }
  return rows;
}

json suite_rq5(Bench& b, World& w) {
  const Profile& p = b.profile;
  // Pairs bootstrapped from the verifier, per prompt: correct ≻ incorrect samples (binary), or,
  // where no sample is correct, the dense variant: partial credit higher by ≥ 0.25. Up to 4 pairs
  // per prompt; prompts whose samples all agree give none.
  const auto& s = w.samples();
  const auto& prompts = w.prompt_texts(Split::train);
  double n_pairs = 0;
  const json inputs = {{"samples", w.samples_file()}, {"prompts", w.prompts(Split::train)}, {"pref_samples", p.pref_samples}};
  const fs::path pairs = w.stages().stage(w.key() + "/rq5/verifier-pairs", inputs, [&](const fs::path& d) {
    std::string out;
    const int K = p.pref_samples;
    auto partial = [&](const BaseSample& x) {
      for (const auto& [name, v] : w.task().gold_details(prompts[x.prompt], x.completion, x.eos))
        if (name == "partial") return v;
      return 0.0;
    };
    for (size_t i = 0; i + K <= s.size(); i += K) {
      std::vector<double> credit(K);  // each sample's partial credit, once (the pairs below read it K times)
      for (int a = 0; a < K; ++a) credit[a] = partial(s[i + a]);
      std::vector<std::pair<const BaseSample*, const BaseSample*>> found;
      for (int a = 0; a < K; ++a)
        for (int b = 0; b < K; ++b) {
          const BaseSample &x = s[i + a], &y = s[i + b];
          const bool binary = x.gold >= 1.0 && y.gold < 1.0;
          const bool dense = x.gold < 1.0 && y.gold < 1.0 && credit[a] >= credit[b] + 0.25;
          if ((binary || dense) && found.size() < 4) found.emplace_back(&x, &y);
        }
      for (const auto& [c, r] : found)
        out += json{{"prompt", prompts[s[i].prompt]}, {"chosen", " " + c->completion}, {"rejected", " " + r->completion}}
                   .dump() +
               "\n";
    }
    write_file_atomic(d / "pairs.jsonl", out);
  }) / "pairs.jsonl";
  n_pairs = static_cast<double>(read_jsonl(pairs).size());
  const double calls = static_cast<double>(s.size());  // the verifier scored every base sample
  const RunSpec grpo =
      online_run(w, "rq5", "grpo", "grpo", w.gold_spec(), {{"k", 4}}, {"--num-generations", "4", "--beta", "0.01"});
  // The samples and verifier calls of iterative DPO.
  const RunSpec raft = raft_run(w, "rq5", "raft", 2, 4, {{"rounds", 2}});
  std::vector<RunSpec> specs = {
      offline_run(w, "rq5", "dpo", pairs, n_pairs, "sigmoid", 0.1, {{"beta", 0.1}}),
      offline_run(w, "rq5", "dpo+nll", pairs, n_pairs, "sigmoid,sft", 0.1, {{"beta", 0.1}}),
      offline_run(w, "rq5", "ipo", pairs, n_pairs, "ipo", 0.1, {{"tau", 0.1}}),
      online_run(w, "rq5", "rloo", "rloo", w.gold_spec(), {{"k", 4}}, {"--num-generations", "4", "--beta", "0.01"}),
      grpo,
      online_run(w, "rq5", "rloo-dense", "rloo", w.gold_spec("detail=partial"), {{"k", 4}},
                 {"--num-generations", "4", "--beta", "0.01"}),
      iterative_run(w, "rq5", "iterative-dpo", w.gold_spec(), 2, 4, {{"rounds", 2}}),
      raft,
  };
  for (auto& r : specs)
    if (r.args.front() == "dpo") r.verifier_calls = calls, r.labels = 0;
  // G2D: a quarter of GRPO's steps, then DPO on those rollouts.
  const int warmup = std::max(1, grpo.steps / 4);
  const RunSpec g2d = warmup_dpo_run(w, "grpo-warmup+dpo", grpo, warmup, {{"warmup_steps", warmup}});
  specs.push_back(g2d);
  const std::vector<json> runs = b.run_all(specs);
  // Out of distribution (longer lists): pass@1 of the base and of every final policy.
  std::vector<json> ood(specs.size() + 1);
  std::vector<std::function<void()>> jobs;
  for (size_t i = 0; i <= specs.size(); ++i)
    jobs.push_back([&, i] {
      const std::string name = i < specs.size() ? run_id(specs[i]) : w.key() + "/base";
      const fs::path model = i < specs.size() ? run_model(specs[i]) : w.base();
      const json inputs = {{"model", model}, {"reference", w.base()}, {"prompts", w.prompts(Split::ood)},
                           {"eval_samples", p.eval_samples}, {"seed", w.seed()}};
      const fs::path dir = w.stages().stage("ood/" + name, inputs, [&](const fs::path& d) {
        write_file_atomic(d / "eval.json", w.evaluate(model, {}, Split::ood).dump());
      });
      ood[i] = read_json(dir / "eval.json");
    });
  w.stages().parallel(jobs);
  json table = json::array();
  for (size_t i = 0; i < runs.size(); ++i) {
    const json& r = runs[i];
    table.push_back({{"task", r["task"]}, {"method", r["method"]}, {"verifier_calls", r["accounting"]["verifier_calls"]},
                     {"pass_at_1", r["final"]["pass"]}, {"final_gold", r["final"]["gold"]},
                     {"final_ci", r["final"]["gold_ci"]}, {"final_kl", r["final"]["kl"]},
                     {"base_pass_at_1", r["checkpoints"][0]["pass"]}, {"ood_pass_at_1", ood[i]["pass"]},
                     {"ood_ci", ood[i]["gold_ci"]}, {"base_ood_pass_at_1", ood.back()["pass"]}});
  }
  std::vector<PassPolicy> policies = {{"base", w.key() + "/base", w.base()}};
  for (const auto& r : specs)
    if (std::find(kPassAtKMethods.begin(), kPassAtKMethods.end(), r.method) != kPassAtKMethods.end())
      policies.push_back({r.method, run_id(r), run_model(r)});
  return {{"question", kQuestions.at("rq5")}, {"table", table}, {"verifier_pairs", n_pairs},
          {"pass_at_k", pass_at_k_table(w, policies)}, {"raft_rounds", raft_rounds(raft)},
          {"warmup_pairs", warmup_pairs(g2d)}};
}

// rq6's cadence arms beside online DPO: semi-online DPO re-sampling its pairs every k steps
// (docs/testbed.md §7), and GRPO (group 4, half the steps: as many scored samples), all on online
// DPO's reward and label budget.
const std::vector<int> kResampleEvery = {8, 32};

std::vector<RunSpec> rq6_cadence_arms(World& w, const RunSpec& online) {
  const std::string reward = option_value(online.args, "--reward");
  const json labels = online.params.at("labels");
  std::vector<RunSpec> specs;
  std::vector<int> done;
  for (int k : kResampleEvery) {
    k = semi_online_k(w, k);
    if (std::find(done.begin(), done.end(), k) != done.end()) continue;  // a small profile caps both to one k
    done.push_back(k);
    specs.push_back(semi_online_run(w, "rq6", "semi-online-dpo", reward, k, online.steps,
                                    {{"labels", labels}, {"resample_every", k}}));
  }
  RunSpec grpo = online_run(w, "rq6", "grpo", "grpo", reward, {{"labels", labels}, {"group", 4}},
                            {"--num-generations", "4", "--beta", arg(w.profile().kl_coefs.front())},
                            std::max(1, online.steps / 2));
  grpo.labels = online.labels, grpo.verifier_calls = 0;
  specs.push_back(grpo);
  return specs;
}

// One row per arm of the cadence: steps between re-sampling (1: online DPO), final gold and KL.
json cadence_table(const std::vector<json>& runs) {
  json rows = json::array();
  for (const auto& r : runs) {
    const std::string m = r["method"];
    const bool tuned = r["params"].value("config", "") == "tuned";  // the cadence compares vanilla arms
    if (tuned || (m != "online-dpo" && m != "semi-online-dpo" && m != "grpo")) continue;
    rows.push_back({{"method", m}, {"resample_every", m == "online-dpo" ? json(1) : r["params"].value("resample_every", json())},
                    {"labels", r["accounting"]["labels"]}, {"final_gold", r["final"]["gold"]},
                    {"final_ci", r["final"]["gold_ci"]}, {"final_kl", r["final"]["kl"]}});
  }
  return rows;
}

// RQ6's vanilla arms (the tuning searches around them too).
std::vector<RunSpec> rq6_specs(const Profile& p, World& w) {
  const double pairs = static_cast<double>(w.n_pairs());
  // Every arm is labelled by the same annotator, with the offline labels' calibration: online
  // DPO's pairs and iterative DPO's best-vs-worst are judged by its Bradley–Terry model, one
  // label per prompt. Online DPO's steps are set so that it uses the offline run's label budget.
  const std::string judge = w.gold_spec(annotator_spec_options(w.annotator(kCleanish).config()) +
                                        ",seed=" + std::to_string(w.seed()));
  const int online_steps = std::max(1, static_cast<int>(pairs / p.rl_prompts));
  RunSpec online = online_run(w, "rq6", "online-dpo", "online-dpo", judge,
                              {{"labels", static_cast<int64_t>(pairs)}, {"judge", kCleanish}}, {"--beta", "0.1"},
                              online_steps);
  RunSpec offline = offline_run(w, "rq6", "offline-dpo", w.prefs(kCleanish), pairs, "sigmoid", 0.1, {{"labels", static_cast<int64_t>(pairs)}});
  // Iterative DPO: two rounds of best-vs-worst of two samples per prompt, judged the same way.
  RunSpec iterative = iterative_run(w, "rq6", "iterative-dpo", judge, 2, 2, {{"rounds", 2}, {"judge", kCleanish}});
  std::vector<RunSpec> specs = {offline, online, iterative};
  for (auto& s : rq6_cadence_arms(w, online)) specs.push_back(std::move(s));
  return specs;
}

json suite_rq6(Bench& b, World& w) {
  std::vector<RunSpec> specs = rq6_specs(b.profile, w);
  add_tuned_arms(b.tuning, specs);
  const std::vector<json> runs = b.run_all(specs);
  return {{"question", kQuestions.at("rq6")}, {"table", frontier_table(runs)}, {"cadence", cadence_table(runs)},
          {"note", "every arm is labelled by the " + kCleanish +
                       " annotator (the same calibration): the offline run on base-sample pairs, online, "
                       "iterative and semi-online DPO and GRPO on their own samples, one label per prompt judged"}};
}

json suite_length(Bench& b, World& w) {
  const Profile& p = b.profile;
  std::vector<RunSpec> specs;
  for (double gamma : {0.0, 0.05}) {
    const std::string ann = "bt:0.9+len=" + arg(gamma);
    const fs::path prefs = w.prefs(ann), rm = w.reward_model(ann);
    const double pairs = static_cast<double>(w.n_pairs());
    const json params = {{"gamma", gamma}};
    RunSpec ppo = online_run(w, "length", "rm+ppo", "ppo", "rm:" + rm.string(), params,
                             {"--kl-coef", arg(p.kl_coefs.front()), "--missing-eos-penalty", "1"});
    ppo.labels = pairs;
    specs.push_back(ppo);
    specs.push_back(offline_run(w, "length", "dpo", prefs, pairs, "sigmoid", 0.1, params));
    specs.push_back(offline_run(w, "length", "r-dpo", prefs, pairs, "rdpo", 0.1, params, {"--rdpo-alpha", "0.05"}));
    for (auto& s : specs)
      if (s.proxy_rm.empty()) s.proxy_rm = rm;
  }
  specs.push_back(online_run(w, "length", "length-only-ppo", "ppo", "0.1*length:tokens", {{"gamma", 0.0}},
                             {"--kl-coef", arg(p.kl_coefs.front())}));
  specs.back().proxy_rm = w.reward_model("bt:0.9+len=0.05");
  const std::vector<json> runs = b.run_all(specs);
  const double near_tie_long_win = w.annotator("bt:0.9+len=0.05").near_tie_long_win;
  json table = json::array();
  for (const auto& r : runs)
    table.push_back({{"task", r["task"]}, {"method", r["method"]}, {"gamma", r["params"]["gamma"]},
                     {"base_length", r["checkpoints"][0]["length"]}, {"final_length", r["final"]["length"]},
                     {"final_gold", r["final"]["gold"]}, {"final_proxy", r["final"]["proxy"]},
                     {"final_kl", r["final"]["kl"]}});
  return {{"question", kQuestions.at("length")}, {"table", table}, {"near_tie_long_win", near_tie_long_win}};
}

json suite_overopt(Bench& b, World& w) {
  const Profile& p = b.profile;
  const fs::path rm = w.reward_model(kCleanish);
  // PPO without a KL penalty for twice the steps, at a third of the learning rate and with dense
  // checkpoints: the rise before the fall is quick without the penalty.
  RunSpec ppo = online_run(w, "overopt", "rm+ppo", "ppo", "rm:" + rm.string(), {{"kl_coef", 0.0}, {"lr", 1e-4}},
                           {"--kl-coef", "0", "--missing-eos-penalty", "1"}, p.rl_steps * 2);
  option_value(ppo.args, "--learning-rate") = "1e-4";
  ppo.proxy_rm = rm;
  ppo.checkpoints = 5 * p.checkpoints;
  // DPO for twice the profile's epochs.
  RunSpec dpo = offline_run(w, "overopt", "dpo", w.prefs(kCleanish), static_cast<double>(w.n_pairs()),
                            "sigmoid", p.dpo_betas.front(), {{"beta", p.dpo_betas.front()}, {"epochs", 2 * p.offline_epochs}});
  option_value(dpo.args, "--num-train-epochs") = std::to_string(2 * p.offline_epochs);
  dpo.steps *= 2;
  dpo.proxy_rm = rm;
  dpo.checkpoints = 2 * p.checkpoints;
  const std::vector<json> runs = b.run_all({ppo, dpo});
  const json bon = best_of_n(w, "rq1", rm, p.bon_ns);  // RQ1's stages, cached
  json fits = json::array();
  // Points (d, gold gain over the base, proxy); the fitted forms pass through the origin.
  struct Point {
    double kl, gain, proxy;
  };
  auto fit = [&](const std::string& optimizer, bool bon_form, const std::vector<Point>& pts) {
    std::vector<double> kl, gain;
    json points = json::array();
    for (const auto& q : pts) {
      kl.push_back(q.kl), gain.push_back(q.gain);
      points.push_back({std::sqrt(q.kl), q.gain, finite_or_null(q.proxy)});
    }
    OveroptFit f;
    std::string note;
    try {
      f = bon_form ? fit_overopt_bon(kl, gain) : fit_overopt_rl(kl, gain);
    } catch (const InputError& e) {
      f.alpha = f.beta = f.kl_peak = f.r2 = NAN;  // too few points away from the base to fit
      note = e.what();
    }
    fits.push_back({{"task", w.name()}, {"optimizer", optimizer}, {"form", bon_form ? "d(a-b d)" : "d(a-b log d)"},
                    {"alpha", finite_or_null(f.alpha)}, {"beta", finite_or_null(f.beta)},
                    {"peak_kl", finite_or_null(f.kl_peak)}, {"r2", finite_or_null(f.r2)},
                    {"points", points}, {"note", note}});
  };
  std::vector<Point> bon_pts;
  const double g0 = bon[0]["gold"].get<double>();
  for (const auto& q : bon) bon_pts.push_back({q["kl"].get<double>(), q["gold"].get<double>() - g0, q["proxy"].get<double>()});
  fit("best-of-n", true, bon_pts);
  for (const auto& r : runs) {
    std::vector<Point> pts;
    const double base = r["checkpoints"][0]["gold"].get<double>();
    for (const auto& c : r["checkpoints"])
      pts.push_back({std::max(0.0, c["kl"].get<double>()), c["gold"].get<double>() - base,
                     c["proxy"].is_null() ? NAN : c["proxy"].get<double>()});
    fit(r["method"].get<std::string>(), false, pts);
  }
  return {{"question", kQuestions.at("overopt")}, {"fits", fits}};
}

json suite_bandits() {
  const IpoVsDpoResult a = bandit_ipo_vs_dpo();
  const UnseenMassResult b = bandit_unseen_mass();
  const DisplacementResult c = bandit_likelihood_displacement();
  json table = json::array();
  table.push_back({{"check", "ipo_vs_dpo"}, {"observed", a.observed}, {"explanation", a.explanation},
                   {"numbers", {{"dpo_pi2", a.dpo_pi2}, {"ipo_pi2", a.ipo_pi2}, {"ipo_pi2_closed_form", a.ipo_pi2_closed_form}}}});
  table.push_back({{"check", "unseen_output_mass"}, {"observed", b.observed}, {"explanation", b.explanation},
                   {"numbers", {{"pi3_ref", b.pi3_ref}, {"pi3_dpo", b.pi3_dpo}, {"pi3_rl", b.pi3_rl}}}});
  table.push_back({{"check", "likelihood_displacement"}, {"observed", c.observed}, {"explanation", c.explanation},
                   {"numbers", {{"logp_chosen_start", c.logp_chosen_start}, {"logp_chosen_end", c.logp_chosen_end},
                                {"logp_rejected_start", c.logp_rejected_start}, {"logp_rejected_end", c.logp_rejected_end}}}});
  return {{"question", kQuestions.at("bandits")}, {"table", table}};
}

// With several seeds: each run's final gold pooled over the seeds with a two-level bootstrap
// (seeds, then prompts within a seed), one row per suite/task/method/sweep point.
json pooled_over_seeds(const json& runs, const std::string& suite) {
  std::map<std::string, std::vector<const json*>> groups;
  std::vector<std::string> order;
  for (const auto& r : runs) {
    if (r["suite"] != suite) continue;
    std::string key = r["id"].get<std::string>();
    key = key.substr(0, key.rfind("/seed="));
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(&r);
  }
  json rows = json::array();
  for (const auto& key : order) {
    const auto& g = groups[key];
    std::vector<std::vector<double>> gold;
    double kl = 0;
    for (const json* r : g) {
      gold.push_back((*r)["final"]["prompt_gold"].get<std::vector<double>>());
      kl += (*r)["final"]["kl"].get<double>() / g.size();
    }
    const MeanCi ci = bootstrap_mean_ci_two_level(gold, 97);
    rows.push_back({{"task", (*g[0])["task"]}, {"method", (*g[0])["method"]}, {"params", (*g[0])["params"]},
                    {"seeds", g.size()}, {"final_gold", ci.mean}, {"ci", {ci.lo, ci.hi}}, {"final_kl", kl}});
  }
  return rows;
}

// ---- machine speed and the predicted run time ----------------------------------------------------

struct MachineSpeed {
  double train_tokens_per_second = 0;  // one core, the profile's preset, forward + backward
};

// Times a few training steps of a random model of the preset on one thread, in that thread's CPU
// time: the speed of a free core, whatever else the machine is running at that moment.
MachineSpeed measure_machine(const ModelPreset& m) {
  omp_set_num_threads(1);
  const ModelConfig cfg =
      ModelConfig::make(ModelFamily::llama, 100, m.hidden, m.layers, m.heads, m.heads, m.ff, m.max_positions);
  Transformer model(cfg, ModelHeads{});
  model.init_random(1);
  std::vector<std::vector<int32_t>> rows(16, std::vector<int32_t>(m.max_positions));
  Rng rng(3);
  for (auto& r : rows)
    for (auto& t : r) t = static_cast<int32_t>(rng.below(100));
  const Batch batch = Batch::from_rows(rows);
  Workspace ws(cfg, static_cast<int64_t>(rows.size()), m.max_positions, batch.n_scored(), 0);
  std::vector<float> dlogp(batch.n_scored(), -1.0f / batch.n_scored());
  model.forward(batch, ws);  // warm-up
  auto thread_cpu = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + t.tv_nsec * 1e-9;
  };
  const double t0 = thread_cpu();
  int steps = 0;
  while (thread_cpu() - t0 < 0.5) {
    model.forward(batch, ws);
    model.backward(batch, ws, dlogp, {});
    ++steps;
  }
  const double s = thread_cpu() - t0;
  omp_set_num_threads(0 + static_cast<int>(std::thread::hardware_concurrency()));
  return {static_cast<double>(steps) * rows.size() * m.max_positions / s};
}

// Per run, in training-token equivalents: starting the command, loading its data and models.
constexpr double kRunOverheadTokens = 0;

// One seed's work in training-token equivalents (divided by the measured speed: seconds of one
// core), counted suite by suite as the suites build their runs. Each family's factor is its CPU
// seconds per token of these formulas as measured on the quick profile (results.json "stages",
// cpu_seconds; docs/testbed.md §5 "Predicted run time").
double seed_work(const Profile& p, const std::function<bool(const std::string&)>& wants, const json& tuning) {
  const double L = 24;  // typical prompt + completion tokens of the testbed
  const double P = p.train_prompts, K = p.pref_samples, C = p.checkpoints + 1;  // evaluations per run
  const double pairs = P * K * (K - 1) / 2;
  const double nb = p.dpo_betas.size(), nk = p.kl_coefs.size(), noise = p.agreements.size() + 2;
  // Offline: sequence pairs × epochs (KTO's rows count as much as DPO's pairs); online: episodes,
  // a PPO episode (value model, several passes) costing twice an RLOO one; evaluation: one
  // checkpoint's samples with the policy, the exact KL against the reference and the proxy.
  auto offline = [&](double n_pairs, double epochs) { return n_pairs * epochs * 2 * L * 0.75; };
  auto online = [&](double episodes, bool ppo) { return episodes * L * (ppo ? 3.0 : 1.5); };
  const double rl = static_cast<double>(p.rl_steps) * p.rl_prompts, E = p.offline_epochs;
  auto evals = [&](double n) { return n * p.test_prompts * p.eval_samples * L * 0.9; };
  auto reward_models = [&](double n) { return n * offline(pairs, E) * 0.65; };
  auto base = [&](double scale) {
    return scale * (p.lm_steps * 32.0 * p.preset.max_positions + p.sft_steps * 32.0 * L) + P * K * L / 3;
  };
  double work = base(1), runs = 0;
  if (wants("rq1") || wants("rq2") || wants("rq6") || wants("overopt")) work += reward_models(1);  // bt:0.9
  if (wants("rq1")) {
    double bon = 0;
    for (int n : p.bon_ns) bon += n;
    // PPO over the KL coefficients, its "+prompts" arm and PPO on gold.
    work += offline((nb + 5) * pairs, E) + online((nk + 2 + 1) * rl, true) + online(8 * rl, false) +
            evals((nb + nk + 9) * C) + bon * p.test_prompts * L * 0.33;
    runs += nb + nk + 9;
  }
  if (wants("rq2")) work += 12.0 * p.test_prompts * L;  // 4 sample sets, 8 scorings
  if (wants("rq3")) {
    // DPO on every annotator; on the grid's ends and the presets also cDPO (not on clean labels),
    // IPO, RM + RLOO with its RM and online DPO, evaluated half as often as DPO.
    const double half = std::max(1, p.checkpoints / 2) + 1;
    const double ends = std::min(noise, 4.0);
    work += offline((noise + 2 * ends - 1) * pairs, E) + online(4 * ends * rl, false) + online(2 * ends * pairs, false) +
            evals(noise * C + (4 * ends - 1) * half) + reward_models(ends);
    // The ensembles: two more RMs and two RLOO runs, each scored by three RMs, evaluated at both ends.
    work += reward_models(2) + online(2 * 4 * rl * 1.3, false) + evals(4);
    runs += noise + 4 * ends - 1 + 2;
  }
  if (wants("rq4")) {
    double sweep = 0;  // listwise on K samples: K sequences; their pairs: K(K-1)/2 pairs
    for (int k : p.ranking_ks) sweep += P * (k / 2.0 + k * (k - 1) / 2.0);
    const double ks = p.ranking_ks.size();
    work += offline(pairs + P + P * K / 2 + sweep, E) + online(8 * rl, false) + evals((5 + 2 * ks) * C) +
            reward_models(1 + 1.0 / 3);
    runs += 5 + 2 * ks;
  }
  if (wants("rq5")) {
    const double iterative = 2 * P * (4 * L / 3 + 2 * L) * 0.6;  // 2 rounds of 4 samples and a DPO pass
    // About 3 verifier pairs per prompt.
    work += base(0.25) + offline(3 * 3 * P, E) + online(12 * rl, false) + iterative + evals(6 * C + 9);
    // GRPO's warm-up (a quarter of its episodes) and DPO on at most a pair per warm-up prompt.
    work += online(rl, false) + offline(rl / 4, E) + evals(3);
    runs += 8;
  }
  if (wants("rq6")) {
    work += offline(pairs, E) + online(2 * pairs, false) + 2 * P * (2 * L / 3 + 2 * L) * 0.6 + evals(2 * C + 1);
    runs += 3;
  }
  if (wants("length")) {
    work += base(2) + reward_models(2) + offline(4 * pairs, E) + online(3 * rl, true) + evals(7 * C);
    runs += 7;
  }
  if (wants("overopt")) {
    work += offline(pairs, 2 * E) + online(2 * rl, true) + evals(7 * p.checkpoints + 2);
    runs += 2;
  }
  // A tuned copy (docs/testbed.md §6.1) of each arm of a family the record moved off its vanilla one.
  for (const TuneFamily* f : retuned_families(tuning))
    for (const auto& [suite, method] : f->arms) {
      if (!wants(suite)) continue;
      work += method == "rm+ppo"                         ? online(rl, true)
              : method == "online-dpo"                   ? online(2 * pairs, false)
              : method == "rm+rloo" || method == "rm+grpo" ? online(4 * rl, false)  // k = 4
                                                           : offline(pairs, E);
      work += evals(C);
      runs += 1;
    }
  return work + runs * kRunOverheadTokens;
}

// The predicted wall time: every seed's work shared by the parallel jobs (the bench keeps them
// all busy to the end, docs/testbed.md §6).
double predict_seconds(const Profile& p, const MachineSpeed& speed, int jobs, const json& tuning) {
  auto wants = [&](const std::string& s) { return std::find(p.suites.begin(), p.suites.end(), s) != p.suites.end(); };
  return seed_work(p, wants, tuning) * p.seeds.size() / (speed.train_tokens_per_second * std::max(1, jobs));
}

void strip_per_unit(json& v) {
  if (v.is_object()) {
    std::vector<std::string> drop;
    for (auto& [k, x] : v.items()) {
      if (per_unit_field(k)) drop.push_back(k);
      else strip_per_unit(x);
    }
    for (const auto& k : drop) v.erase(k);
  } else if (v.is_array()) {
    for (auto& x : v) strip_per_unit(x);
  }
}

json annotator_config_json(const AnnotatorConfig& c) {
  return {{"bt_tau", c.bt_tau}, {"flip_eps", c.flip_eps}, {"gauss_sigma", c.gauss_sigma},
          {"length_gamma", c.length_gamma}, {"pool", c.pool}, {"taste_jitter", c.taste_jitter},
          {"calibrate", c.calibrate}, {"tie_delta", c.tie_delta}};
}

}  // namespace

// ---- profiles -------------------------------------------------------------------------------------

Profile make_profile(const std::string& name) {
  const ModelPreset nano{"nano", 2, 64, 4, 256, 48}, micro{"micro", 4, 96, 4, 384, 64}, mini{"mini", 4, 128, 4, 512, 64};
  Profile p;
  p.name = name;
  p.suites = kSuites;
  if (name == "quick" || name == "mini") {
    p.preset = nano;
    p.seeds = {1, 2, 3};  // affordable: ~10 min on 2 cores (docs/testbed.md §6)
    p.lm_steps = 600, p.sft_steps = 300;
    p.train_prompts = 1000, p.test_prompts = 512;
    p.pref_samples = 4, p.eval_samples = 2;
    p.offline_epochs = 2;
    p.rl_steps = 200, p.rl_prompts = 16;
    p.checkpoints = 3;
    p.dpo_betas = {0.1, 0.5};
    p.kl_coefs = {0.05, 0.2};
    p.agreements = {1.0, 0.8};
    p.bon_ns = {1, 2, 4, 8, 16};
    p.ranking_ks = {2, 3, 4};
    if (name == "mini") {  // the CI profile: every suite, tiny budgets
      p.seeds = {1, 2};  // two, so that CI covers pooling and verdicts over seeds
      p.lm_steps = 40, p.sft_steps = 20;
      p.train_prompts = 32, p.test_prompts = 16;
      p.rl_steps = 6, p.rl_prompts = 8;
      p.checkpoints = 2;
      p.dpo_betas = {0.1};
      p.kl_coefs = {0.05};
      p.bon_ns = {1, 4};
      p.ranking_ks = {2, 4};
    }
  } else if (name == "standard" || name == "full") {
    p.preset = name == "full" ? mini : micro;
    p.seeds = name == "full" ? std::vector<uint64_t>{1, 2, 3, 4, 5} : std::vector<uint64_t>{1, 2, 3};
    p.lm_steps = 750, p.sft_steps = 400;  // the LM loss is flat from ~300 steps on (docs/testbed.md §5)
    p.train_prompts = 1000, p.test_prompts = 256;
    p.pref_samples = 4, p.eval_samples = 4;
    p.offline_epochs = 1;
    p.rl_steps = 200, p.rl_prompts = 32;
    p.checkpoints = 6;
    p.dpo_betas = {0.03, 0.1, 0.3, 1.0};
    p.kl_coefs = {0.01, 0.03, 0.1, 0.3};
    p.agreements = {1.0, 0.9, 0.8, 0.7, 0.6};
    p.bon_ns = {1, 2, 4, 8, 16, 32, 64, 128};
    p.ranking_ks = {2, 3, 4};
  } else {
    throw InputError("rlhf bench: unknown profile '" + name + "' (quick, standard, full, mini)");
  }
  return p;
}

int run_bench(const BenchOptions& opt) {
  Profile profile = make_profile(opt.profile);
  if (!opt.seeds.empty()) profile.seeds = opt.seeds;
  if (!opt.suites.empty()) {
    for (const auto& s : opt.suites)
      if (std::find(kSuites.begin(), kSuites.end(), s) == kSuites.end())
        throw InputError("rlhf bench: unknown suite '" + s + "' (rq1 rq2 rq3 rq4 rq5 rq6 length overopt bandits)");
    profile.suites = opt.suites;
  }
  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(opt.out / "stages");
  // Cached stages are only valid for the profile and world they were built with.
  const json fingerprint = {{"profile", profile.name}, {"world_seed", opt.world_seed}};
  const fs::path fp_file = opt.out / "stages" / "bench.json";
  if (fs::exists(fp_file)) {
    json old;
    try {
      old = read_json(fp_file);
    } catch (const InputError&) {  // unreadable: treated as another fingerprint
    }
    if (old != fingerprint)
      throw InputError("rlhf bench: " + opt.out.string() + " holds stages of another bench (" + old.dump() +
                       "); use another --out or remove it");
  } else {
    write_file_atomic(fp_file, fingerprint.dump() + "\n");
  }
  const int jobs = opt.jobs > 0 ? opt.jobs : std::max(1u, std::thread::hardware_concurrency());
  fs::path root = fs::absolute(opt.out).lexically_normal();
  if (root.filename().empty()) root = root.parent_path();  // "out/" -> "out"
  Stages stages(root, opt.exe, jobs, opt.version);
  const MachineSpeed speed = measure_machine(profile.preset);
  const json tuning = opt.tune ? json(nullptr) : load_tuning(opt.tuned, profile.name);
  const double predicted = predict_seconds(profile, speed, jobs, tuning);
  std::cout << "rlhf bench: profile " << profile.name << " (" << profile.preset.name << " models, "
            << profile.seeds.size() << " seed(s), suites " << profile.suites.size() << "), " << jobs
            << " parallel jobs\nmachine: " << std::round(speed.train_tokens_per_second) << " training tokens/s per core"
            << "; predicted run time " << std::round(predicted / 60 * 10) / 10 << " min (cached stages are skipped)\n"
            << std::flush;
  if (opt.predict_only) return 0;
  Bench b{stages, profile, opt.world_seed, {}, json::array(), json::object(), {}};
  b.tuning = tuning;
  if (opt.tune) {  // the search on the first seed's Valence world instead of the suites
    World& w = b.world("valence", profile.seeds.front());
    std::vector<RunSpec> arms = rq1_specs(profile, w);
    for (auto& s : rq6_specs(profile, w)) arms.push_back(s);
    json tuned = run_tuning(arms, TuneRule{});
    tuned["version"] = opt.version, tuned["command"] = opt.command;
    tuned["wall_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_file_atomic(opt.out / "tuned.json", tuned.dump(2) + "\n");
    std::cout << "\n" << tuning_table(tuned) << "wrote " << (opt.out / "tuned.json").string() << "\n";
    return 0;
  }
  auto wants = [&](const std::string& s) {
    return std::find(profile.suites.begin(), profile.suites.end(), s) != profile.suites.end();
  };
  std::vector<std::string> tasks = {"valence"};
  if (wants("rq5")) tasks.push_back("sort");
  if (wants("length")) tasks.push_back("lists");
  for (uint64_t seed : profile.seeds)
    for (const auto& t : tasks) b.world(t, seed);  // created here: Bench::world is not safe to call in parallel
  using SuiteFn = std::function<json(Bench&, World&)>;
  const std::vector<std::tuple<std::string, std::string, SuiteFn>> plan = {
      {"rq1", "valence", suite_rq1},     {"rq2", "valence", suite_rq2},       {"rq3", "valence", suite_rq3},
      {"rq4", "valence", suite_rq4},     {"rq5", "sort", suite_rq5},          {"rq6", "valence", suite_rq6},
      {"length", "lists", suite_length}, {"overopt", "valence", suite_overopt}};
  // Every suite at every seed at once, each world's base policy built when first asked for: the
  // stages' job slots keep every core busy to the end, where suite after suite would wait for
  // each one's slowest run. This fills the stage cache; the tables are built below, suite by
  // suite and seed by seed from cached stages, so results.json is a sequential bench's.
  {
    std::vector<std::function<void()>> calls;
    for (const auto& [suite, task, fn] : plan)
      for (uint64_t seed : profile.seeds)
        if (wants(suite)) calls.push_back([&b, &fn, w = &b.world(task, seed)] { fn(b, *w); });
    for (const auto& t : tasks) calls.push_back([w = &b.world(t, profile.seeds.front())] { w->evaluate_base({}); });
    stages.parallel(calls, true);
    b.runs = json::array();  // in completion order here; in plan order below
  }
  json task_info = json::object();
  for (const auto& t : tasks) {
    World& w = b.world(t, profile.seeds.front());
    const json e = w.evaluate_base({});
    task_info[t] = {{"base", {{"gold", e["gold"]}, {"length", e["length"]}, {"pass", e["pass"]}}}};
  }
  for (const auto& [suite, task, fn] : plan) {
    if (!wants(suite)) continue;
    std::cout << suite << ": " << kQuestions.at(suite) << std::endl;
    // The suite's own tables are the first seed's ("seed"), every seed's are in "per_seed", and
    // "pooled" pools each arm's final gold over all seeds; the verdicts read every seed.
    json per_seed = json::array();
    for (uint64_t seed : profile.seeds) {
      json one = fn(b, b.world(task, seed));
      one["seed"] = seed;
      per_seed.push_back(one);
    }
    json merged = per_seed[0];
    merged["per_seed"] = per_seed;
    merged["pooled"] = pooled_over_seeds(b.runs, suite);
    b.suites[suite] = merged;
  }
  if (wants("bandits")) b.suites["bandits"] = suite_bandits();

  json annotators = json::array();
  for (auto& [key, w] : b.worlds)
    for (const auto& [name, ann] : w->annotators())
      annotators.push_back({{"name", name}, {"task", w->name()}, {"seed", w->seed()},
                            {"target", ann->config().target_agreement}, {"measured", ann->measured_agreement},
                            {"near_tie_long_win", ann->near_tie_long_win}, {"inter_annotator", ann->inter_annotator},
                            {"config", annotator_config_json(ann->config())}});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json results = {{"schema", "rlhf-bench/1"},
                  {"version", opt.version},
                  {"command", opt.command},
                  {"profile", profile.name},
                  {"preset", profile.preset.name},
                  {"seeds", profile.seeds},
                  {"world_seed", opt.world_seed},
                  {"machine", {{"threads", jobs}, {"train_tokens_per_second", speed.train_tokens_per_second},
                               {"predicted_seconds", predicted},
                               {"busy_slots", wall > 0 ? stages.busy_seconds() / (jobs * wall) : 0.0}}},
                  {"wall_seconds", wall},
                  {"stages", stages.timings()},
                  {"tasks", task_info},
                  {"tuning", tuning_summary(b.tuning)},
                  {"annotators", annotators},
                  {"runs", b.runs},
                  {"suites", b.suites}};
  const json answer = judge(results);
  for (const char* part : {"verdicts", "untested", "checks"}) results[part] = answer[part];
  // The per-prompt and per-pair arrays the verdicts read are most of the bytes: results.json
  // leaves them out, results-full.json (compact) keeps everything for judging again.
  write_file_atomic(opt.out / "results-full.json", results.dump() + "\n");
  strip_per_unit(results);
  write_file_atomic(opt.out / "results.json", results.dump(2) + "\n");
  const nlohmann::json plain = nlohmann::json::parse(results.dump());
  write_file_atomic(opt.out / "report.html", render_report(plain));
  for (const auto& r : b.runs) {
    const fs::path src = opt.out / "stages" / "runs" / r["id"].get<std::string>() / "model" / "metrics.jsonl";
    const fs::path dst = opt.out / "runs" / r["id"].get<std::string>() / "metrics.jsonl";
    fs::create_directories(dst.parent_path());
    if (fs::exists(src)) fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
  }
  std::cout << "\n" << summary_table(plain) << "\nwrote " << (opt.out / "results.json").string() << " (per-prompt data: results-full.json), "
            << (opt.out / "report.html").string() << " (" << std::round(wall) << " s)\n";
  return 0;
}

}  // namespace rlhf::testbed
