// Every method tuned alike (docs/testbed.md §6.1): for each method family the verdicts compare,
// the same grid of learning rate × the family's regularizer (DPO's beta, IPO's tau, PPO's KL
// coefficient, ...) trained on the first seed's Valence world, evaluated on the validation prompts
// (never the test prompts), and one configuration chosen by a stated rule with a divergence guard.
// `rlhf bench --tune` writes the search to OUT/tuned.json; a bench given such a file (the quick
// and standard profiles' are built in from bench/tuned/) runs each tuned configuration next to the
// vanilla one, as a run whose params carry {"config": "tuned"}.
//
// Example:
//   const json t = load_tuning("", "quick");          // the built-in record, or null
//   add_tuned_arms(t, specs);                         // appends the tuned copies of the vanilla arms
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "testbed/bench_runs.h"

namespace rlhf::testbed {

// One family's search: the arms (suite, method) its chosen configuration applies to (the first is
// the vanilla run the grid is built around), the command-line flag and params key of its
// regularizer, and the grid as multiples of the vanilla run's learning rate and regularizer.
struct TuneFamily {
  std::string name;
  std::vector<std::pair<std::string, std::string>> arms;
  std::string flag, param;
  std::vector<double> lr_factors, reg_factors;
};
const std::vector<TuneFamily>& tune_families();

// The selection rule: among candidates that trained with finite losses, whose validation KL stayed
// at most kl_cap at every checkpoint, and whose final validation gold fell at most gold_margin
// below the base policy's, the highest final validation gold (ties: the lower final KL, then the
// earlier candidate).
struct TuneRule {
  double kl_cap = 10.0;       // nats per sequence: a policy this far from the base has collapsed onto few completions
  double gold_margin = 0.05;  // below the base's validation gold: a run that lost this much diverged
};

struct TuneCandidate {
  double lr = 0, reg = 0;
  bool finite = true;  // false: training stopped on a non-finite loss or gradient
  double final_gold = NAN, final_kl = NAN, max_kl = NAN;
};

struct TuneChoice {
  int chosen = -1;                  // index into the candidates; -1: none passed the guard
  std::vector<std::string> reasons;  // per candidate: why the guard rejected it ("" if it passed)
};

TuneChoice choose_config(const std::vector<TuneCandidate>& candidates, double base_gold, const TuneRule& rule);

// `vanilla` with its learning rate and `family`'s regularizer set to lr and reg.
RunSpec with_config(const RunSpec& vanilla, const TuneFamily& family, double lr, double reg);

// Trains every family's grid around its vanilla arm among `arms` (all on one world), evaluated on
// the validation prompts, and returns the tuned.json document (docs/bench-results.md).
json run_tuning(const std::vector<RunSpec>& arms, const TuneRule& rule);

// A tuning record: `file`, or where it is empty the built-in one for the profile (quick and mini:
// bench/tuned/quick.json; standard: bench/tuned/standard.json); null when there is none.
// InputError for a file that is not a tuning record or was made for another profile.
json load_tuning(const std::string& file, const std::string& profile);

// The families of a tuning record (null: none) whose chosen configuration is not their vanilla one:
// the families whose arms a bench runs a tuned copy of.
std::vector<const TuneFamily*> retuned_families(const json& tuning);

// For each spec whose (suite, method) is an arm of a family the record chose a configuration for,
// appends one copy with that configuration (the first such spec per arm) and params
// {"config": "tuned", "lr": ..., <regularizer>: ...} plus the vanilla params it does not set; none
// where the chosen configuration is the vanilla one (the verdicts then read the vanilla run).
void add_tuned_arms(const json& tuning, std::vector<RunSpec>& specs);

// The terminal's summary of a tuned.json: per family the vanilla and the chosen configuration.
std::string tuning_table(const json& tuned);

// results.json's "tuning": where the record came from, its commit, rule and chosen configurations.
json tuning_summary(const json& tuning);

}  // namespace rlhf::testbed
