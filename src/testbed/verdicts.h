// The benchmark's answer (docs/testbed.md §8): each qualitative pattern a faithful testbed should
// reproduce is split into named hypotheses, each with one effect statistic measured on every seed
// from a bench's results (docs/bench-results.md) and pooled with a two-level bootstrap (seeds, then
// prompts or pairs within a seed; arms of one seed are paired on that seed's units).
//
// Rule, on the pooled effect's 95% interval: a directional hypothesis is "reproduced" when the
// interval excludes 0 in the stated direction, "not reproduced" when it excludes 0 the other way,
// else "inconclusive"; an equivalence hypothesis ("≈", "gains little") is "reproduced" when the
// interval lies inside ±margin, "not reproduced" when it lies wholly outside, else "inconclusive".
// A hypothesis whose arms ran on no seed is "inconclusive". Clauses of a pattern that the bench
// has no arm for are listed as untested, and the bandit demonstrations (which cannot fail in the
// statistical sense) as checks, neither counted among the verdicts.
//
// Verdicts read the vanilla arms ("configuration": "vanilla"; runs whose params carry
// {"config": "tuned"} are left out). Where a bench ran tuned arms (docs/testbed.md §6.1), each
// hypothesis that reads one gets a second verdict, id "<id>-tuned", "configuration": "tuned", on the
// same results with each tuned run in place of the vanilla runs of its suite, method and seed.
//
// Example:
//   json answer = judge(results);   // {"verdicts": [...], "untested": [...], "checks": [...]}
#pragma once

#include <nlohmann/json.hpp>

namespace rlhf::testbed {

nlohmann::ordered_json judge(const nlohmann::ordered_json& results);

}  // namespace rlhf::testbed
