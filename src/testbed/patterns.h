// The qualitative patterns a faithful testbed should reproduce (docs/testbed.md §8), judged from a
// bench's results (docs/bench-results.md): each gets "reproduced", "not reproduced" or
// "inconclusive" with the numbers behind the verdict. Differences count only where the 95%
// bootstrap intervals separate; overlapping intervals or missing suites give "inconclusive".
#pragma once

#include <nlohmann/json.hpp>

namespace rlhf::testbed {

nlohmann::ordered_json judge_patterns(const nlohmann::ordered_json& results);

}  // namespace rlhf::testbed
