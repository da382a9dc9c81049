// Agreement of a scorer with preference labels, and of two scorers with each other: what
// `rlhf eval` reports for a reward model and for a DPO policy's implicit reward
// beta * log(pi / pi_ref).
//
//   accuracy  mean [s(chosen) > s(rejected)] over pairs (strict; ties counted apart)
//   margin    mean s(chosen) - s(rejected)
//   auc       P(s(a chosen response) > s(a rejected response)) over all chosen/rejected
//             combinations, ties counting 1/2 (Mann–Whitney). Across prompts this mixes in each
//             prompt's offset; for implicit rewards (defined only up to beta log Z(x)) the
//             within-pair accuracy is the meaningful number.
//   pearson / spearman  correlation of two scorers' per-pair margins.
#pragma once

#include <cstdint>
#include <vector>

namespace rlhf::eval {

struct PairScores {
  std::vector<double> chosen, rejected;  // one entry per pair
};

struct PreferenceMetrics {
  double accuracy = 0, ties = 0, margin = 0, auc = 0;
  int64_t pairs = 0;
};

PreferenceMetrics preference_metrics(const PairScores& s);
double pearson(const std::vector<double>& x, const std::vector<double>& y);
double spearman(const std::vector<double>& x, const std::vector<double>& y);  // Pearson of average ranks

}  // namespace rlhf::eval
