// From token-level engine outputs to the per-sequence numbers objectives use, and back.
//
// The engine scores tokens; preference objectives see sequences (the summed log-prob of a
// response, its length, its reward-head value). A CollatedBatch's spans say which scored
// tokens belong to which sequence, so summing and spreading are exact inverses of each other:
// every token of a sequence receives d loss / d (its sequence's summed log-prob).
#pragma once

#include <vector>

#include "data/collate.h"
#include "model/transformer.h"

namespace rlhf {

struct SequenceScores {
  std::vector<double> logp;     // per span: sum of its completion tokens' log-probs (0 without an LM head)
  std::vector<double> n_tokens; // per span: number of scored tokens
  std::vector<double> head;     // per span: scalar head at its head position (when present)
  std::vector<double> logit_mean_sum;  // per span: sum over its scored tokens of the vocabulary-mean logit
};

SequenceScores sequence_scores(const CollatedBatch& cb, const Scores& s);

// d loss / d logp per scored token from d loss / d (summed log-prob) per span.
std::vector<float> spread_sequence_grads(const CollatedBatch& cb, const std::vector<double>& d_logp);

// d loss / d head per head position from d loss / d head per span.
std::vector<float> spread_head_grads(const CollatedBatch& cb, const std::vector<double>& d_head);

}  // namespace rlhf
