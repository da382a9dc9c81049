#include "train/online/forward.h"

#include <algorithm>

#include "tensor/error.h"

namespace rlhf::online {

CollatedBatch pack_rows(const std::vector<Sequence>& seqs, int64_t row_len) {
  PackOptions pack;
  pack.seq_len = row_len;
  pack.max_rows = static_cast<int64_t>(seqs.size());
  std::vector<CollatedBatch> b = pack_sequences(seqs, pack);
  RLHF_CHECK(b.size() == 1, "a rollout minibatch packed into more than one batch");
  return std::move(b[0]);
}

// The head is read sequence by sequence (the order of the value arrays and their gradients,
// which packing's row order is not): at the state before each completion token — the hidden
// state of the previous position — and, for a sequence with a slot more than tokens
// (trl_after_eos), at the state before that slot's padding token, i.e. the hidden state of the
// last token. TRL reads it from a forward over the response followed by padding
// (value[:, context_length - 1 + t]); the model is causal, so the padding cannot change it and
// none is fed here.
Batch with_value_positions(const CollatedBatch& cb, const ValueSlots& vs) {
  std::vector<size_t> lengths;
  for (const SequenceSpan& sp : cb.spans) lengths.push_back(static_cast<size_t>(sp.scored_end - sp.scored_begin));
  const Ragged slots = rollout::value_slots(Ragged::from_lengths(lengths), vs.placement, vs.max_new_tokens);
  Batch b = cb.batch;
  b.head_at.clear();
  for (size_t k = 0; k < cb.spans.size(); ++k) {
    const SequenceSpan& sp = cb.spans[k];
    for (int64_t i = sp.scored_begin; i < sp.scored_end; ++i) b.head_at.push_back(b.scored[i] - 1);
    if (slots.length(k) > lengths[k]) b.head_at.push_back(b.scored[sp.scored_end - 1]);
  }
  return b;
}

TokenNumbers forward_tokens(Transformer& m, Workspace& ws, const std::vector<Sequence>& seqs, const CollatedBatch& cb,
                            const Batch& batch, double temperature, bool want_entropy) {
  ForwardOptions fo;
  fo.temperature = static_cast<float>(temperature);
  fo.want_entropy = want_entropy;
  const Scores s = m.forward(batch, ws, fo);
  TokenNumbers out;
  for (size_t k = 0; k < cb.spans.size(); ++k) {
    const SequenceSpan& sp = cb.spans[k];
    RLHF_CHECK(sp.scored_end - sp.scored_begin == seqs[k].size() - seqs[k].prompt_len,
               "every completion token of a rollout sequence is scored");
    for (int64_t q = sp.scored_begin; q < sp.scored_end; ++q) {
      out.logp.push_back(s.logp[q]);
      if (want_entropy) out.entropy.push_back(s.entropy[q]);
    }
  }
  out.values.assign(s.head.begin(), s.head.end());  // already in value-slot order
  return out;
}

TokenNumbers score_rollout(Transformer& m, Workspace& ws, const std::vector<Sequence>& seqs, int64_t chunk,
                           int64_t row_len, double temperature, const ValueSlots* values, bool entropy) {
  TokenNumbers all;
  for (size_t b = 0; b < seqs.size(); b += chunk) {
    const std::vector<Sequence> part(seqs.begin() + b, seqs.begin() + std::min(seqs.size(), b + chunk));
    const CollatedBatch cb = pack_rows(part, row_len);
    const Batch batch = values ? with_value_positions(cb, *values) : cb.batch;
    TokenNumbers t = forward_tokens(m, ws, part, cb, batch, temperature, entropy);
    all.logp.insert(all.logp.end(), t.logp.begin(), t.logp.end());
    all.values.insert(all.values.end(), t.values.begin(), t.values.end());
    all.entropy.insert(all.entropy.end(), t.entropy.begin(), t.entropy.end());
  }
  return all;
}

Batch critic_batch(const CollatedBatch& cb, const ValueSlots& vs) {
  Batch b = with_value_positions(cb, vs);
  b.scored.clear();
  return b;
}

std::vector<double> critic_values(Transformer& critic, Workspace& ws, const Batch& batch) {
  const Scores s = critic.forward(batch, ws);
  return std::vector<double>(s.head.begin(), s.head.end());
}

std::vector<float> to_scored(const CollatedBatch& cb, const std::vector<double>& per_token) {
  std::vector<float> out(cb.batch.scored.size(), 0.0f);
  size_t i = 0;
  for (const SequenceSpan& sp : cb.spans)
    for (int64_t q = sp.scored_begin; q < sp.scored_end; ++q) out[q] = static_cast<float>(per_token[i++]);
  RLHF_CHECK(i == per_token.size(), "one gradient per scored token");
  return out;
}

}  // namespace rlhf::online
