// Simulated annotators (docs/testbed.md §4): they label pairs and rank lists from the gold
// rewards of the items, with noise and bias that are settings, calibrated to a target agreement
// with the gold ordering.
//
// One judgement by pool member m (drawn uniformly per judgement; per ranking for rank()):
//   u(item) = gold + length_gamma * length + taste_jitter * z(m, item id)      (z fixed, ~N(0,1))
//           + gauss_sigma * N(0,1)                                           (fresh per judgement)
//   P(a > b) = sigmoid((u_a - u_b) / bt_tau)  (bt_tau = 0: the larger u wins, exact ties 50/50)
//   then the label is flipped with probability flip_eps.
// rank() is the same model on K items: Plackett–Luce from softmax(u / bt_tau) (sampled as
// u + bt_tau * Gumbel, sorted), and with probability flip_eps the whole ranking is reversed.
// Plackett–Luce's implied pairwise marginals are exactly Bradley–Terry's (Luce's choice axiom:
// of i and j, whichever is drawn first is i with probability w_i / (w_i + w_j)), and a reversal
// flips every implied pair at once, so every pair read off a ranking has exactly the
// distribution of prefers(): calibrating any parameter calibrates rank() too. (The pairs of one
// ranking are correlated: one pool member, one reversal.)
//
// What is left out: position bias, and ties as a label (an annotator always picks one).
//
// An item is what an annotator sees of a response: its gold reward, its length in tokens and a
// stable id (a hash of prompt + completion) so that a pool member's taste for an item is the
// same every time it sees it.
//
// Example:
//   std::vector<AnnotatedItem> a = ..., b = ...;          // base-model pairs
//   Annotator ann = calibrate(preset("human-like"), a, b, /*seed=*/1);
//   bool first_wins = ann.prefers(a[0], b[0], rng);
//   ann.measured_agreement                                 // on a fresh sample
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/rng.h"

namespace rlhf::testbed {

struct AnnotatedItem {
  double gold = 0;
  double length = 0;     // tokens
  uint64_t id = 0;       // stable identity of the response
};

struct AnnotatorConfig {
  std::string name = "clean";
  double bt_tau = 0;          // P(a > b) = sigmoid((u_a - u_b) / tau); 0 = deterministic
  double flip_eps = 0;        // label flipped with this probability
  double gauss_sigma = 0;     // N(0, sigma^2) added to each utility per judgement
  double length_gamma = 0;    // utility += gamma * length
  int pool = 1;               // annotators; each judgement drawn by one at random
  double taste_jitter = 0;    // pool member m's utility += jitter * z(m, item id), z ~ N(0,1) fixed per (m, item)
  uint64_t taste_seed = 0;    // which pool: z(m, id) is a hash of (taste_seed, m, id)
  // What calibration tunes to reach `target_agreement` (one of "bt_tau", "flip_eps",
  // "gauss_sigma"), and the target in (0.5, 1]; "" or 0 = no calibration. Length bias and taste
  // jitter stay as set: the tuned noise makes up the rest of the disagreement.
  std::string calibrate = "";
  double target_agreement = 0;
  double tie_delta = 0.02;    // pairs with |gold gap| <= delta are near-ties, reported apart
};

// "clean" (deterministic gold order), "human-like" (pool of 8 with taste_jitter 0.05, bt_tau
// calibrated to 0.70), "gpt4-like" (one annotator, length_gamma 0.005 per token, bt_tau
// calibrated to 0.80), and "flip:A", "bt:A", "gauss:A" (only that noise model, calibrated to
// agreement A in (0.5, 1]). InputError otherwise. taste_jitter and length_gamma are in gold units
// (the testbed's gold rewards lie in [0, 1]).
AnnotatorConfig preset(const std::string& name);
// InputError naming the annotator for a setting out of range (negative noise, pool < 1, ...).
void check_config(const AnnotatorConfig& c);

class Annotator {
 public:
  explicit Annotator(AnnotatorConfig cfg) : cfg_(std::move(cfg)) {}
  const AnnotatorConfig& config() const { return cfg_; }
  // True when `a` is preferred over `b`.
  bool prefers(const AnnotatedItem& a, const AnnotatedItem& b, Rng& rng) const;
  // A full ranking, best first (indices into items): Plackett–Luce from softmax(u / tau) with
  // the same noise settings (see the top of the file).
  std::vector<int> rank(const std::vector<AnnotatedItem>& items, Rng& rng) const;
  // P(a > b) averaged over the label noise, with the pool member drawn uniformly. Exact except
  // when both gauss_sigma and bt_tau are set: then an average over `normals` (fixed standard
  // normal draws, one per term) of the logistic at the noisy gap.
  double prob_prefers(const AnnotatedItem& a, const AnnotatedItem& b, const std::vector<double>& normals = {}) const;

  // Filled by calibrate() (NaN where there was nothing to measure):
  double measured_agreement = 0;  // with gold on pairs with gap > tie_delta, fresh sample
  double near_tie_long_win = 0;   // share of near-ties (|gap| <= tie_delta, lengths differ)
                                  // where the longer response wins
  double inter_annotator = 0;     // two independent judgements of the same pair agree, over the
                                  // pairs with gap > tie_delta (pure flips: a^2 + (1 - a)^2)
  int64_t pairs_measured = 0;     // pairs with gap > tie_delta
  int64_t near_ties = 0;          // pairs with |gap| <= tie_delta and different lengths

 private:
  AnnotatorConfig cfg_;
};

// Tunes the config's `calibrate` parameter by bisection so that agreement with gold on pairs
// (a[i], b[i]) reaches target_agreement, then measures the agreement (and the other reported
// rates) on a fresh sample of labels of the same pairs with another seed.
// The bisection runs on the expected agreement (prob_prefers averaged over the pairs with
// gap > tie_delta: the limit of infinitely many label draws per pair; where Gaussian and BT
// noise are combined, 64 common normal draws per pair); the fresh sample draws about 400,000
// labels (at least one per pair). InputError when no pair has gap > tie_delta, for an unknown
// parameter or a target outside (0.5, 1], or when the settings that are not tuned (length bias,
// taste jitter, other noise) already give less agreement than the target.
Annotator calibrate(const AnnotatorConfig& cfg, const std::vector<AnnotatedItem>& a,
                    const std::vector<AnnotatedItem>& b, uint64_t seed);

// Agreement of `ann` with the gold order on pairs with gap > tie_delta, labels drawn with rng,
// `draws` labels per pair. NaN when no pair qualifies.
double agreement(const Annotator& ann, const std::vector<AnnotatedItem>& a, const std::vector<AnnotatedItem>& b,
                 Rng& rng, int draws = 1);

}  // namespace rlhf::testbed
