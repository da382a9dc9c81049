// Pairwise preference objectives: DPO and its family, each a row of one table.
//
// An objective sees per-sequence numbers only — the policy's summed log-prob of the response,
// the frozen reference's, and the response length — and returns the loss and
// d loss / d (policy summed log-prob) of each side. The engine spreads that coefficient over
// every scored token of the sequence (d L / d lp_t = d L / d L(y)), which is exact because
// every loss here depends on the token log-probs only through their sum.
// Formulas, defaults and conventions: docs/algorithms.md §3 (names follow TRL's
// DPOConfig.loss_type where TRL has the loss; cdpo, robust, ipo_sum, rdpo, simpo, orpo are ours).
//
// Example:
//   PairParams p;  p.beta = 0.1;
//   PairBatchResult r = pairwise_loss({{"sigmoid", 1.0}, {"sft", 1.0}}, pairs, p);  // RPO
//   // r.loss is the batch mean; r.grads[i].d_chosen / d_rejected feed the engine's backward.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace rlhf::objective {

struct PairInputs {
  double logp_chosen = 0, logp_rejected = 0;  // policy, summed over response tokens
  double ref_chosen = 0, ref_rejected = 0;    // frozen reference (0 when reference-free)
  double len_chosen = 1, len_rejected = 1;    // scored response tokens (> 0)
};

struct PairParams {
  double beta = 0.1;             // KL strength (IPO's tau, ORPO's lambda, SimPO's beta)
  double label_smoothing = 0.0;  // eps of cdpo, robust, exo_pair, aot
  double simpo_gamma = 0.5;      // SimPO target margin
  double rdpo_alpha = 0.0;       // R-DPO length penalty per token of length difference
  double discopop_tau = 0.05;
  double bco_delta = 0.0;        // BCO reward shift (current TRL: 0)
};

struct PairGrad {
  double loss = 0;
  double d_chosen = 0, d_rejected = 0;  // d loss / d logp_chosen, d loss / d logp_rejected
};

struct PairBatchResult {
  double loss = 0;               // weighted sum of the losses, each reduced over the batch: the
                                 // mean over pairs, except sft (sum of chosen NLL / chosen tokens)
  std::vector<PairGrad> grads;   // per pair, already divided by the number of pairs
};

// Names of every loss in the table, for --help and error messages.
std::vector<std::string> pairwise_loss_names();
bool is_pairwise_loss(const std::string& name);

// The weighted sum of one or more losses over a batch of pairs (TRL's loss_type list with
// loss_weights). Unknown names, a non-positive length or a parameter outside a loss's domain
// (e.g. label_smoothing 0 for exo_pair) give an InputError naming the loss and the parameter.
PairBatchResult pairwise_loss(const std::vector<std::pair<std::string, double>>& weighted_losses,
                              const std::vector<PairInputs>& pairs, const PairParams& params);

// TRL's DPO metrics for a batch of pairs, with implicit rewards beta * (L - L_ref):
// rewards/chosen, rewards/rejected, rewards/accuracies (strict '>'), rewards/margins,
// logps/chosen, logps/rejected (means over pairs).
std::vector<std::pair<std::string, double>> pairwise_metrics(const std::vector<PairInputs>& pairs, double beta);

}  // namespace rlhf::objective
