// Objectives on unpaired, labelled responses (desirable / undesirable): KTO and APO-zero
// unpaired. Formulas: docs/algorithms.md §3.10 (KTO, as TRL's KTOTrainer computes it).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace rlhf::objective {

struct UnpairedInputs {
  double logp = 0, ref_logp = 0;  // summed over response tokens
  bool desirable = true;
};

struct KtoParams {
  double beta = 0.1;
  double desirable_weight = 1.0;    // lambda_D
  double undesirable_weight = 1.0;  // lambda_U
};

struct UnpairedResult {
  double loss = 0;                  // mean over the batch
  std::vector<double> d_logp;       // d loss / d logp per example
  double kl = 0;                    // KTO's reference point z0 (detached)
  std::vector<std::pair<std::string, double>> metrics;
};

// KTO. z0 = max(0, mean_i (kl_logp_i - kl_ref_logp_i)) over the mismatched pairs, treated as
// a constant. Forming the pairs is the loop's job: TRL 1.16 gives row j the completion of row
// j-1 within each batch-sized chunk of the dataset (reference/README.md).
//   desirable:   lambda_D * (1 - sigma(beta (D - z0)))
//   undesirable: lambda_U * (1 - sigma(beta (z0 - D)))
UnpairedResult kto_loss(const std::vector<UnpairedInputs>& batch, const std::vector<double>& kl_logp,
                        const std::vector<double>& kl_ref_logp, const KtoParams& p);

// APO-zero on unpaired data: desirable 1 - sigma(beta D), undesirable sigma(beta D); no z0.
UnpairedResult apo_zero_unpaired_loss(const std::vector<UnpairedInputs>& batch, double beta);

}  // namespace rlhf::objective
