// The forwards of the online loop: a rollout's sequences packed into rows, and per completion
// token the log-prob at the sampling temperature (and the entropy, where asked), per value slot
// the value — of the policy (with a value head on its trunk), the reference or a separate critic
// — in sequence order, whatever order packing puts the rows in.
#pragma once

#include <cstdint>
#include <vector>

#include "data/collate.h"
#include "model/transformer.h"
#include "train/online/method.h"

namespace rlhf::online {

// Where values are read: the value slots of the completions (rollout::value_slots).
struct ValueSlots {
  rollout::ScorePlacement placement = rollout::ScorePlacement::last_token;
  size_t max_new_tokens = 0;
};

// `seqs` as one packed batch of rows of `row_len` (LogicError if they need more).
CollatedBatch pack_rows(const std::vector<Sequence>& seqs, int64_t row_len);

// The engine batch of `cb` with the head read at every value slot, sequence by sequence.
Batch with_value_positions(const CollatedBatch& cb, const ValueSlots& vs);

// Forward of `seqs` (packed as `cb`, run as `batch`) and its per-token numbers in sequence order.
// The workspace keeps the activations for a following backward.
TokenNumbers forward_tokens(Transformer& m, Workspace& ws, const std::vector<Sequence>& seqs, const CollatedBatch& cb,
                            const Batch& batch, double temperature, bool want_entropy);

// The same numbers for a whole rollout, without gradients, in chunks of `chunk` sequences;
// values where `values` is given.
TokenNumbers score_rollout(Transformer& m, Workspace& ws, const std::vector<Sequence>& seqs, int64_t chunk,
                           int64_t row_len, double temperature, const ValueSlots* values, bool entropy);

// A separate critic (scalar head, no LM head): its batch (the head at every value slot, nothing
// scored) and its values.
Batch critic_batch(const CollatedBatch& cb, const ValueSlots& vs);
std::vector<double> critic_values(Transformer& critic, Workspace& ws, const Batch& batch);

// Token-level d loss / d logp (in sequence order) onto the batch's scored positions.
std::vector<float> to_scored(const CollatedBatch& cb, const std::vector<double>& per_token);

}  // namespace rlhf::online
