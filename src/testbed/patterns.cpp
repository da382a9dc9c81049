#include "testbed/patterns.h"

#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace rlhf::testbed {

namespace {

using json = nlohmann::ordered_json;

std::string f3(double x) {
  std::ostringstream s;
  s.precision(3);
  s << x;
  return s.str();
}

std::string with_ci(const json& value, const json& ci) {
  if (!value.is_number()) return "n/a";
  std::string s = f3(value.get<double>());
  if (ci.is_array() && ci.size() == 2 && ci[0].is_number()) s += " [" + f3(ci[0]) + ", " + f3(ci[1]) + "]";
  return s;
}

// +1: a's interval lies above b's; -1: below; 0: they overlap.
int separated(const json& a_ci, const json& b_ci) {
  if (!a_ci.is_array() || !b_ci.is_array() || !a_ci[0].is_number() || !b_ci[0].is_number()) return 0;
  if (a_ci[0].get<double>() > b_ci[1].get<double>()) return 1;
  if (a_ci[1].get<double>() < b_ci[0].get<double>()) return -1;
  return 0;
}

const json* find_row(const json& table, const std::function<bool(const json&)>& pred) {
  if (!table.is_array()) return nullptr;
  for (const auto& r : table)
    if (pred(r)) return &r;
  return nullptr;
}

const json* method_row(const json& table, const std::string& method) {
  return find_row(table, [&](const json& r) { return r.value("method", "") == method; });
}

// The run with the best final gold of a suite and method.
const json* best_run(const json& runs, const std::string& suite, const std::string& method) {
  const json* best = nullptr;
  for (const auto& r : runs)
    if (r["suite"] == suite && r["method"] == method &&
        (!best || r["final"]["gold"].get<double>() > (*best)["final"]["gold"].get<double>()))
      best = &r;
  return best;
}

// Rise then fall along training: the best checkpoint comes after the start and before the end,
// with gold above both the start's and the final checkpoint's intervals.
bool peaks_then_falls(const json& run, std::string& evidence) {
  const json& cps = run["checkpoints"];
  size_t peak = 0;
  for (size_t i = 0; i < cps.size(); ++i)
    if (cps[i]["gold"].get<double>() > cps[peak]["gold"].get<double>()) peak = i;
  const json& last = cps.back();
  evidence = run["method"].get<std::string>() + ": peak gold " + f3(cps[peak]["gold"]) + " at KL " +
             f3(cps[peak]["kl"]) + ", final " + with_ci(last["gold"], last["gold_ci"]) + " at KL " + f3(last["kl"]);
  const double g = cps[peak]["gold"].get<double>();
  return peak > 0 && peak + 1 < cps.size() && g > last["gold_ci"][1].get<double>() && g > cps[0]["gold_ci"][1].get<double>();
}

struct Verdict {
  std::string verdict, evidence;
};

Verdict inconclusive(const std::string& why) { return {"inconclusive", why}; }

}  // namespace

json judge_patterns(const json& results) {
  const json& suites = results.contains("suites") ? results["suites"] : json::object();
  // With several seeds the verdicts read the first seed's runs, as the suite tables do (the
  // suites' "pooled" rows carry the seed-pooled intervals).
  json runs = json::array();
  if (results.contains("runs"))
    for (const auto& r : results["runs"])
      if (!results.contains("seeds") || results["seeds"].empty() || r["seed"] == results["seeds"][0]) runs.push_back(r);
  auto has = [&](const char* s) { return suites.contains(s); };
  json out = json::array();
  auto add = [&](int id, const char* pattern, const char* where, const Verdict& v) {
    out.push_back({{"id", id}, {"pattern", pattern}, {"where", where}, {"verdict", v.verdict}, {"evidence", v.evidence}});
  };

  // 1. Clean Valence: DPO's frontier >= vanilla RM + PPO.
  add(1, "Clean Valence: DPO's frontier >= vanilla RM + PPO", "rq1", [&]() -> Verdict {
    if (!has("rq1")) return inconclusive("rq1 not run");
    const json *dpo = method_row(suites["rq1"]["table"], "dpo"), *ppo = method_row(suites["rq1"]["table"], "rm+ppo");
    if (!dpo || !ppo) return inconclusive("rq1 lacks dpo or rm+ppo");
    int above = 0, below = 0;
    std::string ev;
    for (const auto& [kl, g] : (*dpo)["gold_at_kl"].items()) {
      const json& h = (*ppo)["gold_at_kl"][kl];
      if (!g.is_number() || !h.is_number()) continue;
      (g.get<double>() >= h.get<double>() ? above : below)++;
      ev += "gold@KL=" + kl + ": dpo " + f3(g) + " vs rm+ppo " + f3(h) + "; ";
    }
    if (above + below == 0)
      return inconclusive("no KL both frontiers reach (dpo max KL " + f3((*dpo)["max_kl"]) + ", rm+ppo " +
                          f3((*ppo)["max_kl"]) + ")");
    return {above >= below ? "reproduced" : "not reproduced", ev};
  }());

  // 2. and 9. Verify: RL on the verifier vs DPO on verifier pairs.
  const json *v_rl = best_run(runs, "rq5", "rloo"), *v_grpo = best_run(runs, "rq5", "grpo"),
             *v_dpo = best_run(runs, "rq5", "dpo");
  if (v_grpo && (!v_rl || v_grpo->at("final")["gold"] > v_rl->at("final")["gold"])) v_rl = v_grpo;
  const std::string verify_ev =
      v_rl && v_dpo ? "pass@1 (T=1): base " + with_ci(v_dpo->at("checkpoints")[0]["gold"], v_dpo->at("checkpoints")[0]["gold_ci"]) +
                          ", " + v_dpo->at("method").get<std::string>() + " " +
                          with_ci(v_dpo->at("final")["gold"], v_dpo->at("final")["gold_ci"]) + ", " +
                          v_rl->at("method").get<std::string>() + " " +
                          with_ci(v_rl->at("final")["gold"], v_rl->at("final")["gold_ci"])
                    : "";
  add(2, "Tuned PPO closes or reverses the gap, most on Verify and with extra prompts", "rq1, rq5", [&]() -> Verdict {
    // The RL-minus-DPO gap on Verify against the same gap on Valence (rq1, best of each side).
    const json *a = best_run(runs, "rq1", "rm+ppo"), *b = best_run(runs, "rq1", "dpo");
    if (!v_rl || !v_dpo || !a || !b) return inconclusive("needs rq1 and rq5");
    const double gap_verify = v_rl->at("final")["gold"].get<double>() - v_dpo->at("final")["gold"].get<double>();
    const double gap_valence = a->at("final")["gold"].get<double>() - b->at("final")["gold"].get<double>();
    const std::string ev = "RL minus DPO, final gold: Verify " + f3(gap_verify) + " (" + verify_ev + "); Valence " +
                           f3(gap_valence);
    if (separated(v_rl->at("final")["gold_ci"], v_dpo->at("final")["gold_ci"]) == 0) return inconclusive(ev);
    return {gap_verify > 0 && gap_verify >= gap_valence ? "reproduced" : "not reproduced", ev};
  }());
  auto pattern9 = [&]() -> Verdict {
    if (!v_rl || !v_dpo) return inconclusive("rq5 lacks an RL or a DPO run");
    // "Gains little" and "much better": RL must beat both DPO and the base policy.
    const int vs_dpo = separated(v_rl->at("final")["gold_ci"], v_dpo->at("final")["gold_ci"]);
    const int vs_base = separated(v_rl->at("final")["gold_ci"], v_rl->at("checkpoints")[0]["gold_ci"]);
    if (vs_dpo > 0 && vs_base > 0) return {"reproduced", verify_ev};
    if (vs_dpo < 0 || vs_base < 0) return {"not reproduced", verify_ev + (vs_base <= 0 ? "; RL does not beat the base" : "")};
    return inconclusive(verify_ev + (vs_base == 0 ? "; RL within the base's interval" : ""));
  };

  // 3. Over-optimization of RL against a proxy RM.
  add(3, "Gold rises then falls vs sqrt(KL) while proxy rises; BoN more KL-efficient than RL", "overopt", [&]() -> Verdict {
    const json* r = best_run(runs, "overopt", "rm+ppo");
    if (!r) return inconclusive("overopt not run");
    std::string ev;
    const bool falls = peaks_then_falls(*r, ev);
    const json& cps = (*r)["checkpoints"];
    const bool proxy_rises = cps.back()["proxy"].is_number() && cps[0]["proxy"].is_number() &&
                             cps.back()["proxy"].get<double>() > cps[0]["proxy"].get<double>();
    ev += "; proxy " + f3(cps[0]["proxy"].is_number() ? cps[0]["proxy"].get<double>() : NAN) + " -> " +
          f3(cps.back()["proxy"].is_number() ? cps.back()["proxy"].get<double>() : NAN);
    return {falls && proxy_rises ? "reproduced" : "not reproduced", ev};
  }());

  // 4. DPO also degrades at high KL.
  add(4, "DPO/IPO also degrade at high KL, sometimes within one epoch", "overopt", [&]() -> Verdict {
    const json* r = best_run(runs, "overopt", "dpo");
    if (!r) return inconclusive("overopt not run");
    std::string ev;
    return {peaks_then_falls(*r, ev) ? "reproduced" : "not reproduced", ev};
  }());

  // 5. and 6. Implicit vs explicit reward.
  const json rq2 = has("rq2") ? suites["rq2"]["table"] : json::array();
  auto acc = [&](const std::string& scorer, const std::string& set) -> double {
    const json* r = find_row(rq2, [&](const json& x) { return x["scorer"] == scorer && x["set"] == set; });
    return r ? (*r)["accuracy"].get<double>() : NAN;
  };
  add(5, "Implicit ~ explicit RM in distribution; implicit a few points worse under shift", "rq2", [&]() -> Verdict {
    if (!has("rq2")) return inconclusive("rq2 not run");
    const double rm_id = acc("rm", "id"), dpo_id = acc("dpo_implicit", "id");
    double shift_gap = 0;
    int n = 0;
    std::string ev = "accuracy id: rm " + f3(rm_id) + ", dpo " + f3(dpo_id);
    for (const char* set : {"prompt_shift", "response_shift_t1.5", "response_shift_rl"}) {
      const double a = acc("rm", set), b = acc("dpo_implicit", set);
      if (std::isnan(a) || std::isnan(b)) continue;
      shift_gap += a - b, ++n;
      ev += std::string("; ") + set + ": rm " + f3(a) + ", dpo " + f3(b);
    }
    if (!n || std::isnan(rm_id) || std::isnan(dpo_id)) return inconclusive(ev);
    const bool close_id = std::fabs(rm_id - dpo_id) <= 0.05, worse_shift = shift_gap / n > 0.02;
    return {close_id && worse_shift ? "reproduced" : "not reproduced", ev};
  }());
  add(6, "DPO policy ranking accuracy << idealized (log pi(y_w) > log pi(y_l) under 60%)", "rq2", [&]() -> Verdict {
    if (!has("rq2")) return inconclusive("rq2 not run");
    const double a = acc("dpo_logp_only", "id");
    if (std::isnan(a)) return inconclusive("no reference-free scores");
    return {a < 0.6 ? "reproduced" : "not reproduced",
            "ranking accuracy of the DPO policy's log-probs on gold-labelled test pairs: " + f3(a)};
  }());

  // 7. Label noise.
  add(7, "Steep loss with noise; conservative losses recover part", "rq3", [&]() -> Verdict {
    if (!has("rq3")) return inconclusive("rq3 not run");
    const json& t = suites["rq3"]["table"];
    const json *clean = find_row(t, [](const json& r) { return r["method"] == "dpo" && r["annotator"] == "clean"; });
    const json* noisy = nullptr;
    for (const auto& r : t)
      if (r["method"] == "dpo" && (!noisy || r["agreement"].get<double>() < (*noisy)["agreement"].get<double>()))
        noisy = &r;
    if (!clean || !noisy || clean == noisy) return inconclusive("rq3 lacks a clean and a noisy DPO run");
    const std::string ev = "dpo final gold: clean " + with_ci((*clean)["final_gold"], (*clean)["final_ci"]) +
                           ", agreement " + f3((*noisy)["agreement"]) + " (" + (*noisy)["annotator"].get<std::string>() +
                           ") " + with_ci((*noisy)["final_gold"], (*noisy)["final_ci"]);
    const int s = separated((*clean)["final_ci"], (*noisy)["final_ci"]);
    if (s == 0) return inconclusive(ev);
    return {s > 0 ? "reproduced" : "not reproduced", ev};
  }());

  // 8. Plackett–Luce vs pair splitting, and listwise vs pairwise DPO as K grows.
  add(8, "PL-MLE RM >= pair splitting; listwise beats pairwise DPO as K grows", "rq4", [&]() -> Verdict {
    if (!has("rq4")) return inconclusive("rq4 not run");
    const json& rms = suites["rq4"]["reward_models"];
    const json *pl = find_row(rms, [](const json& r) { return r["rm"] == "plackett_luce"; }),
               *bt = find_row(rms, [](const json& r) { return r["rm"] == "bradley_terry"; });
    if (!pl || !bt) return inconclusive("rq4 lacks reward models");
    const bool rm_part = (*pl)["accuracy"].get<double>() >= (*bt)["accuracy"].get<double>() - 0.01;
    std::string ev = "held-out pair accuracy: PL " + f3((*pl)["accuracy"]) + ", BT on all pairs " + f3((*bt)["accuracy"]);
    // Listwise minus pairwise DPO (on the same rankings' pairs) at the smallest and largest K.
    std::map<int, double> gap;
    const json& ks = suites["rq4"].contains("k_sweep") ? suites["rq4"]["k_sweep"] : json::array();
    for (const auto& r : ks) {
      const int K = r["K"].get<int>();
      const double g = r["final_gold"].get<double>();
      gap[K] += r["method"] == "listwise-dpo" ? g : -g;
    }
    if (gap.size() < 2) return {rm_part ? "reproduced" : "not reproduced", ev + " (one K: the trend is not measured)"};
    const double first = gap.begin()->second, last = gap.rbegin()->second;
    ev += "; listwise minus pairwise DPO final gold: " + f3(first) + " at K=" + std::to_string(gap.begin()->first) +
          ", " + f3(last) + " at K=" + std::to_string(gap.rbegin()->first);
    const bool k_part = last > first;
    if (rm_part && k_part) return {"reproduced", ev};
    if (!rm_part && !k_part) return {"not reproduced", ev};
    return inconclusive(ev + " (one half holds)");
  }());

  add(9, "Offline DPO on verifier pairs gains little; RL does much better", "rq5", pattern9());

  // 10. Online vs offline at matched labels.
  add(10, "Online/iterative beats offline at matched KL and labels", "rq6", [&]() -> Verdict {
    const json *on = best_run(runs, "rq6", "online-dpo"), *off = best_run(runs, "rq6", "offline-dpo");
    if (!on || !off) return inconclusive("rq6 not run");
    const std::string ev = "final gold: online " + with_ci(on->at("final")["gold"], on->at("final")["gold_ci"]) +
                           " at KL " + f3(on->at("final")["kl"]) + ", offline " +
                           with_ci(off->at("final")["gold"], off->at("final")["gold_ci"]) + " at KL " +
                           f3(off->at("final")["kl"]) + ", as many labels from the same annotator";
    const int s = separated(on->at("final")["gold_ci"], off->at("final")["gold_ci"]);
    if (s == 0) return inconclusive(ev);
    return {s > 0 ? "reproduced" : "not reproduced", ev};
  }());

  // 11. Length bias.
  add(11, "Length-biased labels lengthen PPO and DPO outputs; R-DPO limits it", "length", [&]() -> Verdict {
    if (!has("length")) return inconclusive("length suite not run");
    const json& t = suites["length"]["table"];
    auto len = [&](const std::string& m, double g) -> double {
      const json* r = find_row(t, [&](const json& x) { return x["method"] == m && x["gamma"].get<double>() == g; });
      return r ? (*r)["final_length"].get<double>() : NAN;
    };
    const double ppo0 = len("rm+ppo", 0), ppo1 = len("rm+ppo", 0.05), dpo0 = len("dpo", 0), dpo1 = len("dpo", 0.05),
                 rdpo1 = len("r-dpo", 0.05);
    const std::string ev = "final length, unbiased -> biased labels: rm+ppo " + f3(ppo0) + " -> " + f3(ppo1) +
                           ", dpo " + f3(dpo0) + " -> " + f3(dpo1) + "; r-dpo (biased) " + f3(rdpo1);
    if (std::isnan(ppo0 + ppo1 + dpo0 + dpo1)) return inconclusive(ev);
    // The verdict is on the lengthening; whether R-DPO limits it is reported beside it.
    const std::string rdpo = std::isnan(rdpo1) ? "" : rdpo1 < dpo1 ? "; R-DPO shorter than DPO" : "; R-DPO not shorter than DPO";
    return {ppo1 > ppo0 && dpo1 > dpo0 ? "reproduced" : "not reproduced", ev + rdpo};
  }());

  // 12. Bandits.
  add(12, "IPO bounded where DPO goes deterministic; DPO moves mass to uncovered outputs; likelihood displacement",
      "bandits", [&]() -> Verdict {
        if (!has("bandits")) return inconclusive("bandits not run");
        int seen = 0, n = 0;
        std::string ev;
        for (const auto& c : suites["bandits"]["table"]) {
          ++n;
          seen += c["observed"].get<bool>();
          ev += c["check"].get<std::string>() + ": " + (c["observed"].get<bool>() ? "observed" : "not observed") + "; ";
        }
        if (!n) return inconclusive("no bandit checks");
        return {seen == n ? "reproduced" : seen == 0 ? "not reproduced" : "inconclusive", ev};
      }());
  return out;
}

}  // namespace rlhf::testbed
