#include "testbed/verdicts.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "testbed/stats.h"

namespace rlhf::testbed {

namespace {

using json = nlohmann::ordered_json;
using Vec = std::vector<double>;

std::string f3(double x) {
  std::ostringstream s;
  s.precision(3);
  s << x;
  return s.str();
}

// ---- reading one seed's results --------------------------------------------------------------------

// An array member by reference (value() would copy, and the readers below keep pointers into it).
const json& array_at(const json& obj, const std::string& key) {
  static const json empty = json::array();
  return obj.is_object() && obj.contains(key) && obj[key].is_array() ? obj[key] : empty;
}

// The runs of a suite and method on one seed, optionally filtered by their sweep parameters.
std::vector<const json*> runs_of(const json& results, const std::string& suite, const std::string& method,
                                 uint64_t seed, const std::function<bool(const json&)>& where = {}) {
  std::vector<const json*> out;
  for (const auto& r : array_at(results, "runs"))
    if (r.is_object() && !array_at(r, "checkpoints").empty() && r.contains("params") && r["params"].is_object() &&
        r.value("suite", "") == suite && r.value("method", "") == method && r.value("seed", uint64_t{0}) == seed &&
        (!where || where(r["params"])))
      out.push_back(&r);
  return out;
}

const json* one_run(const json& results, const std::string& suite, const std::string& method, uint64_t seed,
                    const std::function<bool(const json&)>& where = {}) {
  const auto r = runs_of(results, suite, method, seed, where);
  return r.empty() ? nullptr : r.front();
}

std::function<bool(const json&)> param_is(const std::string& key, double value) {
  return [key, value](const json& p) { return p.contains(key) && std::fabs(p[key].get<double>() - value) < 1e-12; };
}

// A per-unit field of a checkpoint ("prompt_gold", "prompt_length", "prompt_proxy").
std::optional<Vec> units(const json& point, const std::string& field) {
  if (!point.contains(field) || !point[field].is_array() || point[field].empty()) return std::nullopt;
  Vec v;
  for (const auto& x : point[field]) {
    if (!x.is_number()) return std::nullopt;
    v.push_back(x.get<double>());
  }
  return v;
}

// a - b unit by unit, times w; nullopt when either is missing or they cover different units.
std::optional<Vec> diff(const std::optional<Vec>& a, const std::optional<Vec>& b, double w = 1) {
  if (!a || !b || a->size() != b->size()) return std::nullopt;
  Vec d(a->size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = w * ((*a)[i] - (*b)[i]);
  return d;
}

std::optional<Vec> scaled(std::optional<Vec> v, double w) {
  if (v)
    for (double& x : *v) x *= w;
  return v;
}

double mean(const Vec& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}

// One seed's data of a hypothesis: the groups of its effect and a line of numbers behind it.
struct SeedData {
  SeedGroups groups;
  std::string note;
};
using Measure = std::function<std::optional<SeedData>(const json& results, uint64_t seed)>;

std::optional<SeedData> one_group(const std::optional<Vec>& d, std::string note) {
  if (!d || d->empty()) return std::nullopt;
  return SeedData{{*d}, std::move(note)};
}

// ---- matched KL and compute ------------------------------------------------------------------------

// What a method reached in one seed along an axis ("kl" or "flops"): the upper frontier of all
// its checkpoints (every run of its sweep), read per unit by interpolating between the frontier
// points around x, and held at the best point beyond it (a KL or compute budget need not be spent).
struct Curve {
  std::vector<KlGold> frontier;
  std::vector<const json*> points;
  double reach = 0;  // the largest x any checkpoint reached
};

Curve curve(const std::vector<const json*>& point_sets, const std::string& axis) {
  Curve c;
  std::vector<KlGold> pts;
  for (const json* p : point_sets) {
    if (!p->contains(axis) || !p->contains("gold") || !(*p)[axis].is_number() || !(*p)["gold"].is_number()) continue;
    const double x = std::max(0.0, (*p)[axis].get<double>());
    pts.push_back({x, (*p)["gold"].get<double>(), static_cast<int64_t>(c.points.size())});
    c.points.push_back(p);
    c.reach = std::max(c.reach, x);
  }
  c.frontier = pareto_frontier(pts);
  return c;
}

std::vector<const json*> checkpoints(const std::vector<const json*>& runs) {
  std::vector<const json*> out;
  for (const json* r : runs)
    for (const auto& cp : (*r)["checkpoints"]) out.push_back(&cp);
  return out;
}

std::optional<Vec> curve_at(const Curve& c, double x, const std::string& field = "prompt_gold") {
  const auto& f = c.frontier;
  if (f.empty() || x < f.front().kl) return std::nullopt;
  if (x >= f.back().kl) return units(*c.points[f.back().index], field);
  for (size_t i = 0; i + 1 < f.size(); ++i)
    if (x <= f[i + 1].kl) {
      const auto a = units(*c.points[f[i].index], field), b = units(*c.points[f[i + 1].index], field);
      if (!a || !b || a->size() != b->size()) return std::nullopt;
      const double t = f[i + 1].kl > f[i].kl ? (x - f[i].kl) / (f[i + 1].kl - f[i].kl) : 1.0;
      Vec v(a->size());
      for (size_t k = 0; k < v.size(); ++k) v[k] = (1 - t) * (*a)[k] + t * (*b)[k];
      return v;
    }
  return std::nullopt;
}

// Per-unit gold of A minus B at the farthest x both reached (their smaller reach).
std::optional<SeedData> matched(const std::vector<const json*>& a, const std::vector<const json*>& b,
                                const std::string& axis, const std::string& a_name, const std::string& b_name) {
  const Curve ca = curve(a, axis), cb = curve(b, axis);
  const double x = std::min(ca.reach, cb.reach);
  if (ca.frontier.empty() || cb.frontier.empty() || !(x > 0)) return std::nullopt;
  const auto ga = curve_at(ca, x), gb = curve_at(cb, x);
  const auto d = diff(ga, gb);
  if (!d) return std::nullopt;
  return SeedData{{*d}, "at " + axis + " " + f3(x) + ": " + a_name + " " + f3(mean(*ga)) + ", " + b_name + " " +
                            f3(mean(*gb))};
}

// ---- rise and fall along one run ------------------------------------------------------------------

// The peak checkpoint is chosen on the even-indexed prompts and every difference is measured on the
// odd-indexed ones, so choosing the best of several noisy checkpoints does not make its lead.
struct Peak {
  Vec start, peak, last;  // odd prompts' gold
  size_t index = 0, count = 0;
};

std::optional<Peak> peak_of(const json& run) {
  const json& cps = run["checkpoints"];
  if (cps.size() < 3) return std::nullopt;
  std::vector<Vec> odd;
  double best = -INFINITY;
  Peak p;
  p.count = cps.size();
  for (size_t i = 0; i < cps.size(); ++i) {
    const auto g = units(cps[i], "prompt_gold");
    if (!g || g->size() < 2) return std::nullopt;
    Vec even, o;
    for (size_t k = 0; k < g->size(); ++k) (k % 2 ? o : even).push_back((*g)[k]);
    if (mean(even) > best) best = mean(even), p.index = i;
    odd.push_back(o);
  }
  p.start = odd.front(), p.peak = odd[p.index], p.last = odd.back();
  return p;
}

std::string peak_note(const Peak& p) {
  return "odd prompts: start " + f3(mean(p.start)) + ", peak " + f3(mean(p.peak)) + " (checkpoint " +
         std::to_string(p.index) + " of 0-" + std::to_string(p.count - 1) + ", chosen on even prompts), final " +
         f3(mean(p.last));
}

// ---- per-seed suite tables ------------------------------------------------------------------------

const json* suite_of_seed(const json& results, const std::string& suite, uint64_t seed) {
  if (!results.contains("suites") || !results["suites"].contains(suite)) return nullptr;
  const json& s = results["suites"][suite];
  for (const auto& x : array_at(s, "per_seed"))
    if (x.value("seed", uint64_t{0}) == seed) return &x;
  return nullptr;
}

// The per-pair correctness (1, ½ for a tie, 0) of a scorer on a set of rq2's or rq4's pairs.
std::optional<Vec> correct(const json* table, const std::string& key, const std::string& name,
                           const std::string& set = "") {
  if (!table || !table->is_array()) return std::nullopt;
  for (const auto& r : *table)
    if (r.value(key, "") == name && (set.empty() || r.value("set", "") == set)) return units(r, "correct");
  return std::nullopt;
}

const json* rq2_table(const json& results, uint64_t seed) {
  const json* s = suite_of_seed(results, "rq2", seed);
  return s && s->contains("table") ? &(*s)["table"] : nullptr;
}

// ---- the hypotheses --------------------------------------------------------------------------------

// not_below_margin: non-inferiority, the effect is at worst -margin.
enum class Rule { above_zero, below_zero, within_margin, not_below_margin };

struct Hypothesis {
  std::string id;
  int pattern;
  std::string claim, where, statistic;
  Rule rule;
  double margin;
  Measure measure;
  // Compares an arm with a variant of itself at one configuration (2b: the same PPO with more
  // prompts): swapping in the tuned run for one side only would mix configurations.
  bool vanilla_only = false;
};

// A run's first (the base policy) or last checkpoint; nullptr where it has none.
const json* checkpoint_of(const json* run, bool start = false) {
  if (!run || !run->is_object() || !run->contains("checkpoints") || !(*run)["checkpoints"].is_array() ||
      (*run)["checkpoints"].empty())
    return nullptr;
  return start ? &(*run)["checkpoints"].front() : &(*run)["checkpoints"].back();
}

// A run's final (or starting) mean of a field for the notes; "n/a" where it is missing.
std::string stat(const json* run, const std::string& field, bool start = false) {
  const json* cp = checkpoint_of(run, start);
  return cp && cp->is_object() && cp->contains(field) && (*cp)[field].is_number() ? f3((*cp)[field].get<double>())
                                                                                 : "n/a";
}

std::optional<Vec> final_units(const json* run, const std::string& field = "prompt_gold") {
  const json* cp = checkpoint_of(run);
  return cp ? units(*cp, field) : std::nullopt;
}

// Final gold of a minus b, per prompt, in one suite and seed.
Measure final_gap(const std::string& suite, const std::string& a, const std::string& b,
                  std::function<bool(const json&)> a_where = {}, std::function<bool(const json&)> b_where = {}) {
  return [=](const json& res, uint64_t seed) -> std::optional<SeedData> {
    const json *ra = one_run(res, suite, a, seed, a_where), *rb = one_run(res, suite, b, seed, b_where);
    if (!ra || !rb) return std::nullopt;
    return one_group(diff(final_units(ra), final_units(rb)),
                     "final gold: " + a + " " + stat(ra, "gold") + ", " + b + " " + stat(rb, "gold"));
  };
}

Measure matched_gap(const std::string& suite, const std::string& a, const std::string& b, const std::string& axis) {
  return [=](const json& res, uint64_t seed) {
    return matched(checkpoints(runs_of(res, suite, a, seed)), checkpoints(runs_of(res, suite, b, seed)), axis, a, b);
  };
}

// Rise (peak minus start) or fall (final minus peak) of one run's gold.
Measure rise_or_fall(const std::string& suite, const std::string& method, bool rise) {
  return [=](const json& res, uint64_t seed) -> std::optional<SeedData> {
    const json* r = one_run(res, suite, method, seed);
    const auto p = r ? peak_of(*r) : std::nullopt;
    if (!p) return std::nullopt;
    return one_group(rise ? diff(p->peak, p->start) : diff(p->last, p->peak), peak_note(*p));
  };
}

// Per-unit change of a field from a run's start to its end.
std::optional<Vec> gain(const json* run, const std::string& field) {
  const json *first = checkpoint_of(run, true), *last = checkpoint_of(run);
  if (!first || !last) return std::nullopt;
  return diff(units(*last, field), units(*first, field));
}

// The noisiest flip-noise DPO run of rq3 (lowest agreement) and the clean one.
const json* rq3_dpo(const json& res, uint64_t seed, bool noisiest, const std::string& method = "dpo") {
  const json* pick = nullptr;
  for (const json* r : runs_of(res, "rq3", "dpo", seed)) {
    const std::string ann = (*r)["params"].value("annotator", "");
    if (noisiest ? ann.rfind("flip:", 0) == 0 && (!pick || (*r)["params"].value("agreement", 1.0) < (*pick)["params"].value("agreement", 1.0))
                 : ann == "clean")
      pick = r;
  }
  if (!pick || method == "dpo") return pick;
  const std::string ann = (*pick)["params"].value("annotator", "");
  return one_run(res, "rq3", method, seed, [&](const json& p) { return p.value("annotator", "") == ann; });
}

// The best-of-n points of rq1 as checkpoints (KL: the analytic bound).
std::vector<const json*> bon_points(const json& res, uint64_t seed) {
  std::vector<const json*> out;
  const json* s = suite_of_seed(res, "rq1", seed);
  if (s && s->contains("best_of_n"))
    for (const auto& p : (*s)["best_of_n"]) out.push_back(&p);
  return out;
}

// rq6's semi-online DPO run that re-samples its pairs most often (smallest k) or least often.
const json* semi_online(const json& res, uint64_t seed, bool most_often) {
  const json* pick = nullptr;
  auto every = [](const json* r) { return (*r)["params"].value("resample_every", 0.0); };
  for (const json* r : runs_of(res, "rq6", "semi-online-dpo", seed))
    if (!pick || (most_often ? every(r) < every(pick) : every(r) > every(pick))) pick = r;
  return pick;
}

// Final gold of a minus b per prompt, with the semi-online runs' k in the note.
std::optional<SeedData> final_pair(const json* a, const std::string& a_name, const json* b, const std::string& b_name) {
  auto name = [](const json* r, const std::string& n) {
    return r && (*r)["params"].contains("resample_every") ? n + " (every " + (*r)["params"]["resample_every"].dump() + " steps)" : n;
  };
  return one_group(diff(final_units(a), final_units(b)), a && b ? "final gold: " + name(a, a_name) + " " + stat(a, "gold") +
                                                                     ", " + name(b, b_name) + " " + stat(b, "gold")
                                                               : "");
}

// Patterns 1-4: RL against DPO on Valence and Verify, and over-optimization.
void add_frontier_hypotheses(std::vector<Hypothesis>& h) {
  h.push_back({"1a", 1, "Clean Valence: DPO's frontier >= RM + PPO's, at matched KL", "rq1",
               "gold(DPO) - gold(RM+PPO) on Valence test prompts, each method's frontier over its sweep read at the "
               "largest KL both reached",
               Rule::above_zero, 0, matched_gap("rq1", "dpo", "rm+ppo", "kl")});
  h.push_back({"1b", 1, "Clean Valence: DPO >= RM + PPO at matched compute", "rq1",
               "gold(DPO) - gold(RM+PPO) on Valence test prompts, frontiers of gold vs training FLOPs read at the "
               "largest compute both reached",
               Rule::above_zero, 0, matched_gap("rq1", "dpo", "rm+ppo", "flops")});
  h.push_back({"2a", 2, "RL's advantage over DPO is larger on Verify than on Valence", "rq1, rq5",
               "[gold(RLOO) - gold(DPO)] final on Verify minus [gold(RM+PPO) - gold(DPO)] at matched KL on Valence",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) -> std::optional<SeedData> {
                 const auto verify_gap = final_gap("rq5", "rloo", "dpo")(res, seed);
                 const auto valence_gap = matched_gap("rq1", "dpo", "rm+ppo", "kl")(res, seed);  // DPO - PPO
                 if (!verify_gap || !valence_gap) return std::nullopt;
                 return SeedData{{verify_gap->groups[0], valence_gap->groups[0]},
                                 "Verify " + verify_gap->note + "; Valence " + valence_gap->note};
               }});
  h.push_back({"2b", 2, "Unlabeled prompts help RM + PPO", "rq1",
               "final gold of RM+PPO sampling the labeled prompts and 4x as many unlabeled ones minus RM+PPO on the "
               "labeled prompts alone; same RM, KL coefficient and steps",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) -> std::optional<SeedData> {
                 const json* plus = one_run(res, "rq1", "rm+ppo+prompts", seed);
                 if (!plus || !(*plus)["params"].contains("kl_coef")) return std::nullopt;
                 const json* only = one_run(res, "rq1", "rm+ppo", seed,
                                            param_is("kl_coef", (*plus)["params"]["kl_coef"].get<double>()));
                 return one_group(diff(final_units(plus), final_units(only)),
                                  only ? "final gold: +prompts " + stat(plus, "gold") + ", labeled only " +
                                             stat(only, "gold")
                                       : "");
               },
               true});
  h.push_back({"3a", 3, "Against a proxy RM, gold first rises", "overopt",
               "gold(peak checkpoint) - gold(start) of RM+PPO without a KL penalty (peak chosen on other prompts)",
               Rule::above_zero, 0, rise_or_fall("overopt", "rm+ppo", true)});
  h.push_back({"3b", 3, "... then falls while the policy moves on", "overopt",
               "gold(final) - gold(peak checkpoint) of RM+PPO without a KL penalty", Rule::below_zero, 0,
               rise_or_fall("overopt", "rm+ppo", false)});
  h.push_back({"3c", 3, "... while the proxy reward rises", "overopt",
               "proxy RM score, final - start, of RM+PPO without a KL penalty", Rule::above_zero, 0,
               [](const json& res, uint64_t seed) {
                 const json* r = one_run(res, "overopt", "rm+ppo", seed);
                 return one_group(gain(r, "prompt_proxy"), r ? "proxy " + stat(r, "proxy", true) + " -> " +
                                                                   stat(r, "proxy")
                                                             : "");
               }});
  h.push_back({"3e", 3, "Best-of-n is more KL-efficient than RL", "rq1",
               "gold(best-of-n) - gold(RM+PPO) at the largest KL both reached (best-of-n's KL: log n - (n-1)/n)",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) {
                 return matched(bon_points(res, seed), checkpoints(runs_of(res, "rq1", "rm+ppo", seed)), "kl",
                                "best-of-n", "rm+ppo");
               }});
  h.push_back({"4a", 4, "Long DPO training also rises first", "overopt",
               "gold(peak checkpoint) - gold(start) of DPO trained for twice the epochs", Rule::above_zero, 0,
               rise_or_fall("overopt", "dpo", true)});
  h.push_back({"4b", 4, "DPO also degrades at high KL", "overopt",
               "gold(final) - gold(peak checkpoint) of DPO trained for twice the epochs", Rule::below_zero, 0,
               rise_or_fall("overopt", "dpo", false)});
}

// Patterns 5-8: implicit rewards as classifiers, label noise and rankings.
void add_classifier_hypotheses(std::vector<Hypothesis>& h) {
  h.push_back({"5a", 5, "Implicit reward ~ explicit RM in distribution", "rq2",
               "pairwise accuracy of the RM minus DPO's implicit reward on gold-labelled pairs of base samples",
               Rule::within_margin, 0.05, [](const json& res, uint64_t seed) {
                 const json* t = rq2_table(res, seed);
                 return one_group(diff(correct(t, "scorer", "rm", "id"), correct(t, "scorer", "dpo_implicit", "id")),
                                  "in-distribution pairs");
               }});
  h.push_back({"5b", 5, "The implicit reward is worse than the RM under shift", "rq2",
               "pairwise accuracy of the RM minus DPO's implicit reward, averaged over the prompt-shift, T=1.5 and "
               "RL-policy response-shift pairs",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) -> std::optional<SeedData> {
                 const json* t = rq2_table(res, seed);
                 SeedData d{{}, "shift sets:"};
                 const std::vector<std::string> sets = {"prompt_shift", "response_shift_t1.5", "response_shift_rl"};
                 for (const auto& set : sets) {
                   const auto g = diff(correct(t, "scorer", "rm", set), correct(t, "scorer", "dpo_implicit", set),
                                       1.0 / static_cast<double>(sets.size()));
                   if (!g || g->empty()) return std::nullopt;
                   d.groups.push_back(*g);
                   d.note += " " + set + " " + f3(mean(*g) * static_cast<double>(sets.size()));
                 }
                 return d;
               }});
  h.push_back({"6a", 6, "A DPO policy's own ranking accuracy is far below its implicit reward's", "rq2",
               "accuracy of log pi(y_w) > log pi(y_l) minus that of beta log(pi/pi_ref), same in-distribution pairs",
               Rule::below_zero, 0, [](const json& res, uint64_t seed) {
                 const json* t = rq2_table(res, seed);
                 return one_group(diff(correct(t, "scorer", "dpo_logp_only", "id"),
                                       correct(t, "scorer", "dpo_implicit", "id")),
                                  "in-distribution pairs");
               }});
  h.push_back({"7a", 7, "Label noise costs DPO gold", "rq3",
               "final gold of DPO on clean labels minus DPO on the noisiest flip-noise labels", Rule::above_zero, 0,
               [](const json& res, uint64_t seed) {
                 const json *c = rq3_dpo(res, seed, false), *n = rq3_dpo(res, seed, true);
                 return one_group(diff(final_units(c), final_units(n)),
                                  c && n ? "clean " + stat(c, "gold") + ", " +
                                               (*n)["params"].value("annotator", "") + " " +
                                               stat(n, "gold")
                                         : "");
               }});
  h.push_back({"7b", 7, "Over-optimization happens mainly under noise", "rq3",
               "DPO's drop from its peak checkpoint to its final one under the noisiest labels minus the same drop on "
               "clean labels",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) {
                 const json *c = rq3_dpo(res, seed, false), *n = rq3_dpo(res, seed, true);
                 const auto pc = c ? peak_of(*c) : std::nullopt, pn = n ? peak_of(*n) : std::nullopt;
                 if (!pc || !pn) return std::optional<SeedData>();
                 return one_group(diff(diff(pn->peak, pn->last), diff(pc->peak, pc->last)),
                                  "noisy: " + peak_note(*pn) + "; clean: " + peak_note(*pc));
               }});
  auto ensemble = [](const std::string& method) -> Measure {
    return [=](const json& res, uint64_t seed) {
      const json *e = rq3_dpo(res, seed, true, method), *r = rq3_dpo(res, seed, true, "rm+rloo");
      return one_group(diff(final_units(e), final_units(r)),
                       e && r ? "ensemble " + stat(e, "gold") + ", one RM " + stat(r, "gold") : "");
    };
  };
  h.push_back({"7c", 7, "A worst-case RM ensemble recovers part of RL's loss to noise", "rq3",
               "final gold of RLOO on the minimum of 3 RMs (seeds differ) minus RLOO on one RM, noisiest flip-noise "
               "labels",
               Rule::above_zero, 0, ensemble("rm-ensemble-wco+rloo")});
  h.push_back({"7d", 7, "A conservative loss recovers part of the loss to noise", "rq3",
               "final gold of cDPO minus DPO on the noisiest flip-noise labels", Rule::above_zero, 0,
               [](const json& res, uint64_t seed) {
                 const json *d = rq3_dpo(res, seed, true), *c = rq3_dpo(res, seed, true, "cdpo");
                 return one_group(diff(final_units(c), final_units(d)),
                                  c && d ? "cdpo " + stat(c, "gold") + ", dpo " + stat(d, "gold") : "");
               }});
  h.push_back({"7e", 7, "An uncertainty-weighted RM ensemble recovers part of RL's loss to noise", "rq3",
               "final gold of RLOO on the mean minus 0.5 x the variance of 3 RMs minus RLOO on one RM, noisiest "
               "flip-noise labels",
               Rule::above_zero, 0, ensemble("rm-ensemble-uwo+rloo")});
  h.push_back({"8a", 8, "A Plackett-Luce RM ranks at least as well as one trained on split pairs", "rq4",
               "held-out gold-pair accuracy of the PL-MLE RM minus the BT RM on all pairs of the same rankings",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) {
                 const json* s = suite_of_seed(res, "rq4", seed);
                 const json* t = s && s->contains("reward_models") ? &(*s)["reward_models"] : nullptr;
                 return one_group(diff(correct(t, "rm", "plackett_luce"), correct(t, "rm", "bradley_terry")),
                                  "held-out pairs");
               }});
  h.push_back({"8b", 8, "Listwise DPO gains on pairwise DPO as K grows", "rq4",
               "[gold(listwise) - gold(pairwise on the same rankings)] final at the largest K minus at the smallest K",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) -> std::optional<SeedData> {
                 std::vector<int> ks;
                 for (const json* r : runs_of(res, "rq4", "listwise-dpo-k", seed)) ks.push_back((*r)["params"].value("K", 0));
                 if (ks.size() < 2) return std::nullopt;
                 const auto [lo, hi] = std::minmax_element(ks.begin(), ks.end());
                 auto gap = [&](int K) {
                   return diff(final_units(one_run(res, "rq4", "listwise-dpo-k", seed, param_is("K", K))),
                               final_units(one_run(res, "rq4", "dpo-ranking-pairs-k", seed, param_is("K", K))));
                 };
                 const auto a = gap(*hi), b = gap(*lo);
                 return one_group(diff(a, b), a && b ? "listwise - pairwise: " + f3(mean(*b)) + " at K=" +
                                                           std::to_string(*lo) + ", " + f3(mean(*a)) + " at K=" +
                                                           std::to_string(*hi)
                                                     : "");
               }});
}

// Patterns 9-11: the verifier, online feedback and length bias.
void add_verifier_online_length_hypotheses(std::vector<Hypothesis>& h) {
  const std::string verify = "Verify (pass@1 at T=1)";
  h.push_back({"9a", 9, "Offline DPO on verifier pairs gains little over the base", "rq5",
               "final gold of DPO minus the base policy's, on " + verify, Rule::within_margin, 0.05,
               [](const json& res, uint64_t seed) {
                 const json* r = one_run(res, "rq5", "dpo", seed);
                 return one_group(gain(r, "prompt_gold"),
                                  r ? "base " + stat(r, "gold", true) + ", dpo " + stat(r, "gold")
                                    : "");
               }});
  h.push_back({"9b", 9, "Iterative DPO does better than offline DPO", "rq5",
               "final gold of iterative DPO minus offline DPO, on " + verify, Rule::above_zero, 0,
               final_gap("rq5", "iterative-dpo", "dpo")});
  h.push_back({"9c", 9, "DPO + NLL does better than DPO", "rq5", "final gold of DPO+NLL minus DPO, on " + verify,
               Rule::above_zero, 0, final_gap("rq5", "dpo+nll", "dpo")});
  h.push_back({"9d", 9, "RL on the verifier does much better than offline DPO", "rq5",
               "final gold of RLOO minus offline DPO, on " + verify, Rule::above_zero, 0,
               final_gap("rq5", "rloo", "dpo")});
  h.push_back({"9e", 9, "RAFT is a strong baseline: no worse than RL on the verifier", "rq5",
               "final gold of RAFT (2 rounds of best-of-4, SFT on the passing samples) minus RLOO, on " + verify,
               Rule::not_below_margin, 0.05, final_gap("rq5", "raft", "rloo")});
  h.push_back({"9f", 9, "RL's lead over the base shrinks as k grows in pass@k", "rq5",
               "[pass@k(RLOO) - pass@k(base)] at the largest k minus the same at k = 1, per Verify test prompt "
               "(unbiased estimator from 64 samples at T=1)",
               Rule::below_zero, 0, [](const json& res, uint64_t seed) -> std::optional<SeedData> {
                 const json* s = suite_of_seed(res, "rq5", seed);
                 if (!s) return std::nullopt;
                 int k_max = 0;
                 for (const auto& r : array_at(*s, "pass_at_k")) k_max = std::max(k_max, r.value("k", 0));
                 auto pass = [&](const std::string& method, int k) -> std::optional<Vec> {
                   for (const auto& r : array_at(*s, "pass_at_k"))
                     if (r.value("method", "") == method && r.value("k", 0) == k) return units(r, "prompt_pass");
                   return std::nullopt;
                 };
                 const auto lead_max = diff(pass("rloo", k_max), pass("base", k_max)),
                            lead_1 = diff(pass("rloo", 1), pass("base", 1));
                 if (k_max <= 1 || !lead_max || !lead_1) return std::nullopt;
                 return one_group(diff(lead_max, lead_1), "RLOO - base: " + f3(mean(*lead_1)) + " at pass@1, " +
                                                              f3(mean(*lead_max)) + " at pass@" + std::to_string(k_max));
               }});
  h.push_back({"9g", 9, "A GRPO warm-up then DPO on its rollouts is no worse than GRPO", "rq5",
               "final gold of DPO on best-vs-worst pairs of a quarter of GRPO's steps of rollouts (from that warm-up "
               "policy) minus GRPO run for all its steps, on " + verify,
               Rule::not_below_margin, 0.05, [](const json& res, uint64_t seed) -> std::optional<SeedData> {
                 const json *g2d = one_run(res, "rq5", "grpo-warmup+dpo", seed), *grpo = one_run(res, "rq5", "grpo", seed);
                 return one_group(diff(final_units(g2d), final_units(grpo)),
                                  g2d && grpo ? "final gold: warm-up+DPO " + stat(g2d, "gold") + " at " + stat(g2d, "flops") +
                                                    " FLOPs, GRPO " + stat(grpo, "gold") + " at " + stat(grpo, "flops")
                                              : "");
               }});
  h.push_back({"10a", 10, "Online DPO beats offline DPO at matched KL and labels", "rq6",
               "gold(online DPO) - gold(offline DPO) at the largest KL both reached; same label count and annotator",
               Rule::above_zero, 0, matched_gap("rq6", "online-dpo", "offline-dpo", "kl")});
  h.push_back({"10b", 10, "Iterative DPO beats offline DPO at matched KL", "rq6",
               "gold(iterative DPO) - gold(offline DPO) at the largest KL both reached", Rule::above_zero, 0,
               matched_gap("rq6", "iterative-dpo", "offline-dpo", "kl")});
  h.push_back({"10c", 10, "Re-sampling the pairs more often helps", "rq6",
               "final gold of online DPO (pairs from the current policy every step) minus semi-online DPO "
               "re-sampling every k steps, largest k; same labels and annotator",
               Rule::above_zero, 0, [](const json& res, uint64_t seed) {
                 return final_pair(one_run(res, "rq6", "online-dpo", seed), "online-dpo", semi_online(res, seed, false),
                                   "semi-online-dpo");
               }});
  h.push_back({"10d", 10, "Semi-online DPO performs comparably to GRPO on the same labels", "rq6",
               "final gold of semi-online DPO (smallest k) minus GRPO (group 4, as many scored samples)",
               Rule::within_margin, 0.05, [](const json& res, uint64_t seed) {
                 return final_pair(semi_online(res, seed, true), "semi-online-dpo", one_run(res, "rq6", "grpo", seed),
                                   "grpo");
               }});
  const auto biased = param_is("gamma", 0.05), unbiased = param_is("gamma", 0.0);
  auto lengthens = [=](const std::string& method) -> Measure {
    return [=](const json& res, uint64_t seed) {
      const json *b = one_run(res, "length", method, seed, biased), *u = one_run(res, "length", method, seed, unbiased);
      return one_group(diff(final_units(b, "prompt_length"), final_units(u, "prompt_length")),
                       b && u ? "final length " + stat(u, "length") + " -> " + stat(b, "length") : "");
    };
  };
  h.push_back({"11a", 11, "Length-biased labels lengthen PPO's outputs", "length",
               "final completion length of RM+PPO with length-biased labels (gamma 0.05) minus unbiased, on Lists",
               Rule::above_zero, 0, lengthens("rm+ppo")});
  h.push_back({"11b", 11, "Length-biased labels lengthen DPO's outputs", "length",
               "final completion length of DPO with length-biased labels minus unbiased", Rule::above_zero, 0,
               lengthens("dpo")});
  h.push_back({"11c", 11, "Length-only PPO reproduces much of the proxy gain", "length",
               "proxy gain (final - start) of PPO on length alone minus half the proxy gain of RM+PPO, both scored "
               "by the biased RM",
               Rule::above_zero, 0, [=](const json& res, uint64_t seed) {
                 const json *l = one_run(res, "length", "length-only-ppo", seed),
                            *p = one_run(res, "length", "rm+ppo", seed, biased);
                 const auto gl = gain(l, "prompt_proxy"), gp = gain(p, "prompt_proxy");
                 return one_group(diff(gl, scaled(gp, 0.5)),
                                  gl && gp ? "proxy gain: length-only " + f3(mean(*gl)) + ", rm+ppo " + f3(mean(*gp))
                                           : "");
               }});
  h.push_back({"11d", 11, "R-DPO limits the lengthening", "length",
               "final length of R-DPO minus DPO, both on length-biased labels", Rule::below_zero, 0,
               [=](const json& res, uint64_t seed) {
                 const json *r = one_run(res, "length", "r-dpo", seed, biased),
                            *d = one_run(res, "length", "dpo", seed, biased);
                 return one_group(diff(final_units(r, "prompt_length"), final_units(d, "prompt_length")),
                                  r && d ? "r-dpo " + stat(r, "length") + ", dpo " + stat(d, "length")
                                         : "");
               }});
}

std::vector<Hypothesis> hypotheses() {
  std::vector<Hypothesis> h;
  add_frontier_hypotheses(h);
  add_classifier_hypotheses(h);
  add_verifier_online_length_hypotheses(h);
  return h;
}

// Clauses of the patterns that no arm of the bench measures yet.
json untested() {
  return json::array({
      {{"pattern", 2}, {"claim", "Tuned PPO with extra prompts closes the gap to DPO"},
       {"missing", "the +prompts arm at the tuned configuration"}},
      {{"pattern", 3}, {"claim", "The over-optimization peak moves right with bigger / better-fed RMs"},
       {"missing", "RMs of several sizes and data sizes"}},
      {{"pattern", 6}, {"claim", "Offline models classify better and generate worse than online ones"},
       {"missing", "implicit-reward accuracy of the online DPO policy"}},
  });
}

std::string rule_text(const Hypothesis& h) {
  switch (h.rule) {
    case Rule::above_zero: return "reproduced if the 95% CI lies above 0, not reproduced if below 0";
    case Rule::below_zero: return "reproduced if the 95% CI lies below 0, not reproduced if above 0";
    case Rule::within_margin:
      return "reproduced if the 95% CI lies inside +-" + f3(h.margin) + ", not reproduced if wholly outside";
    case Rule::not_below_margin:
      return "reproduced if the 95% CI lies above -" + f3(h.margin) + ", not reproduced if wholly below it";
  }
  return "";
}

std::string decide(const Hypothesis& h, double lo, double hi) {
  switch (h.rule) {
    case Rule::above_zero: return lo > 0 ? "reproduced" : hi < 0 ? "not reproduced" : "inconclusive";
    case Rule::below_zero: return hi < 0 ? "reproduced" : lo > 0 ? "not reproduced" : "inconclusive";
    case Rule::within_margin:
      return lo >= -h.margin && hi <= h.margin ? "reproduced"
             : lo > h.margin || hi < -h.margin ? "not reproduced"
                                                : "inconclusive";
    case Rule::not_below_margin: return lo > -h.margin ? "reproduced" : hi < -h.margin ? "not reproduced" : "inconclusive";
  }
  return "inconclusive";
}

json judge_one(const Hypothesis& h, const json& results, const std::string& configuration) {
  const json seeds = results.value("seeds", json::array());
  std::vector<SeedGroups> data;
  json per_seed = json::array();
  std::string evidence;
  for (const auto& s : seeds) {
    const uint64_t seed = s.get<uint64_t>();
    const auto d = h.measure(results, seed);
    if (!d) {
      per_seed.push_back({{"seed", seed}, {"estimate", nullptr}, {"note", "arms missing or without per-prompt data"}});
      continue;
    }
    data.push_back(d->groups);
    const double e = seed_estimate(d->groups);
    per_seed.push_back({{"seed", seed}, {"estimate", e}, {"note", d->note}});
    evidence += "seed " + std::to_string(seed) + ": " + f3(e) + " (" + d->note + "); ";
  }
  json v = {{"id", h.id},         {"pattern", h.pattern}, {"claim", h.claim}, {"where", h.where},
            {"statistic", h.statistic}, {"rule", rule_text(h)}, {"configuration", configuration},
            {"seeds", seeds}};
  if (h.rule == Rule::within_margin || h.rule == Rule::not_below_margin) v["margin"] = h.margin;
  if (data.empty()) {
    v["effect"] = {{"estimate", nullptr}, {"ci", {nullptr, nullptr}}};
    v["verdict"] = "inconclusive";
    v["reading"] = "inconclusive: its arms did not run on any seed";
  } else {
    const MeanCi ci = bootstrap_effect_ci(data, 97);
    v["effect"] = {{"estimate", ci.mean}, {"ci", {ci.lo, ci.hi}}};
    v["verdict"] = decide(h, ci.lo, ci.hi);
    v["reading"] = v["verdict"].get<std::string>() + ": " + f3(ci.mean) + " [" + f3(ci.lo) + ", " + f3(ci.hi) +
                   "] over " + std::to_string(data.size()) + " of " + std::to_string(seeds.size()) + " seeds";
  }
  v["per_seed"] = per_seed;
  v["evidence"] = evidence.empty() ? "no seed measured it" : evidence.substr(0, evidence.size() - 2);
  return v;
}

json bandit_checks(const json& results) {
  json out = json::array();
  if (!results.contains("suites") || !results["suites"].contains("bandits")) return out;
  for (const auto& c : results["suites"]["bandits"].value("table", json::array()))
    out.push_back({{"pattern", 12}, {"check", c["check"]}, {"observed", c["observed"]},
                   {"explanation", c.value("explanation", "")}});
  return out;
}

// ---- vanilla and tuned arms (docs/testbed.md §6.1) ---------------------------------------------------

bool is_tuned(const json& run) {
  return run.is_object() && run.contains("params") && run["params"].is_object() &&
         run["params"].value("config", "") == "tuned";
}

std::string arm_key(const json& run) {
  return run.value("suite", "") + "/" + run.value("method", "") + "/" + std::to_string(run.value("seed", uint64_t{0}));
}

// The results as one configuration's verdicts read them: "vanilla" without the tuned runs; "tuned"
// with each tuned run in place of the vanilla runs of its suite, method and seed.
json configuration_view(const json& results, bool tuned) {
  std::set<std::string> has_tuned;
  for (const auto& r : array_at(results, "runs"))
    if (is_tuned(r)) has_tuned.insert(arm_key(r));
  json view = json::object();
  for (const auto& [k, v] : results.items())
    if (k != "runs") view[k] = v;
  view["runs"] = json::array();
  for (const auto& r : array_at(results, "runs"))
    if (tuned ? is_tuned(r) || !has_tuned.count(arm_key(r)) : !is_tuned(r)) view["runs"].push_back(r);
  return view;
}

// Whether a hypothesis reads a tuned arm: its measure differs between the two views on some seed.
bool reads_tuned(const Hypothesis& h, const json& vanilla, const json& tuned) {
  for (const auto& s : vanilla.value("seeds", json::array())) {
    const auto a = h.measure(vanilla, s.get<uint64_t>()), b = h.measure(tuned, s.get<uint64_t>());
    if (a.has_value() != b.has_value() || (a && (a->groups != b->groups || a->note != b->note))) return true;
  }
  return false;
}

}  // namespace

json judge(const json& results) {
  const json vanilla = configuration_view(results, false), tuned = configuration_view(results, true);
  const bool any_tuned = vanilla["runs"].size() != array_at(results, "runs").size();
  json verdicts = json::array();
  for (const auto& h : hypotheses()) {
    verdicts.push_back(judge_one(h, vanilla, "vanilla"));
    if (!any_tuned || h.vanilla_only || !reads_tuned(h, vanilla, tuned)) continue;
    Hypothesis t = h;
    t.id += "-tuned";
    t.claim += " (tuned arms)";
    verdicts.push_back(judge_one(t, tuned, "tuned"));
  }
  return {{"verdicts", verdicts}, {"untested", untested()}, {"checks", bandit_checks(results)}};
}

}  // namespace rlhf::testbed
