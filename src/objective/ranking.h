// Objectives on scalar scores of several responses to one prompt: Bradley–Terry and
// Plackett–Luce reward-model losses (scores = the reward model's head values), and the
// listwise Plackett–Luce DPO (scores = beta * log-ratio of each response).
// Formulas: docs/algorithms.md §1.1, §1.2.
#pragma once

#include <cstdint>
#include <vector>

namespace rlhf::objective {

// ---- Bradley–Terry on pairs of rewards (TRL's RewardTrainer) ----------------------------------

struct RewardPair {
  double chosen = 0, rejected = 0;  // r(x, y_w), r(x, y_l)
  double margin = 0;                // per-pair margin m (Llama 2), 0 when absent
};

struct RewardPairResult {
  double loss = 0;  // mean(-log sigma(r_w - r_l - m)) + eta * mean((r_w + r_l)^2)
  std::vector<double> d_chosen, d_rejected;  // d loss / d r
  double accuracy = 0;                       // mean [r_w > r_l] (strict)
  double margin = 0;                         // mean (r_w - r_l)
};

// eta = center_rewards_coefficient (0 = off; 0.01 recommended).
RewardPairResult bradley_terry_loss(const std::vector<RewardPair>& pairs, double eta = 0.0);

// ---- Plackett–Luce over K ranked responses ------------------------------------------------------

// scores[i] of response i; ranking = response indices best first (all K, or the observed top
// stages of a partial ranking). Returns -sum_{k < stages} [s_tau(k) - logsumexp_{j >= k} s_tau(j)]
// and adds d loss / d scores[i] into grad (size K). stages = ranking.size() - 1 for a full
// ranking; a partial top-k ranking lists its k observed responses first and the unranked
// ones after, with stages = k.
double plackett_luce_loss(const std::vector<double>& scores, const std::vector<int64_t>& ranking, int64_t stages,
                          std::vector<double>& grad);

// K-wise data as all C(K,2) pairs of one prompt in one batch element, weighted 1/C(K,2)
// (InstructGPT): Bradley–Terry over every pair ordered by the ranking. Adds into grad.
// `label_values` (optional, per response, higher is better): pairs whose labels are equal are
// ties and give no term; the weight is then 1 / (number of untied pairs).
double kwise_pairs_loss(const std::vector<double>& scores, const std::vector<int64_t>& ranking,
                        std::vector<double>& grad, const std::vector<double>& label_values = {});

// Listwise Plackett–Luce DPO (DPO paper, App. A.3): the Plackett–Luce loss on the implicit
// rewards s_i = beta * (logp_i - ref_logp_i) of K ranked responses. Adds d loss / d logp_i
// into grad; stages as in plackett_luce_loss.
double listwise_dpo_loss(const std::vector<double>& logp, const std::vector<double>& ref_logp,
                         const std::vector<int64_t>& ranking, int64_t stages, double beta,
                         std::vector<double>& grad);

}  // namespace rlhf::objective
