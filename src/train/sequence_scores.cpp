#include "train/sequence_scores.h"

#include "tensor/error.h"

namespace rlhf {

SequenceScores sequence_scores(const CollatedBatch& cb, const Scores& s) {
  SequenceScores out;
  for (const SequenceSpan& sp : cb.spans) {
    double sum = 0;  // double: long responses sum thousands of terms
    if (!s.logp.empty()) {  // empty when the model has no LM head (reward models)
      RLHF_CHECK(sp.scored_end <= static_cast<int64_t>(s.logp.size()), "span beyond the scored tokens");
      for (int64_t i = sp.scored_begin; i < sp.scored_end; ++i) sum += s.logp[i];
    }
    out.logp.push_back(sum);
    if (!s.logit_mean.empty()) {
      double lm = 0;
      for (int64_t i = sp.scored_begin; i < sp.scored_end; ++i) lm += s.logit_mean[i];
      out.logit_mean_sum.push_back(lm);
    }
    out.n_tokens.push_back(static_cast<double>(sp.scored_end - sp.scored_begin));
    if (sp.head >= 0) {
      RLHF_CHECK(sp.head < static_cast<int64_t>(s.head.size()), "span head beyond the head outputs");
      out.head.push_back(s.head[sp.head]);
    }
  }
  return out;
}

std::vector<float> spread_sequence_grads(const CollatedBatch& cb, const std::vector<double>& d_logp) {
  RLHF_CHECK(d_logp.size() == cb.spans.size(), "one gradient per sequence expected");
  std::vector<float> out(cb.batch.scored.size(), 0.0f);
  for (size_t k = 0; k < cb.spans.size(); ++k)
    for (int64_t i = cb.spans[k].scored_begin; i < cb.spans[k].scored_end; ++i)
      out[i] = static_cast<float>(d_logp[k]);
  return out;
}

std::vector<float> spread_head_grads(const CollatedBatch& cb, const std::vector<double>& d_head) {
  RLHF_CHECK(d_head.size() == cb.spans.size(), "one head gradient per sequence expected");
  std::vector<float> out(cb.batch.head_at.size(), 0.0f);
  for (size_t k = 0; k < cb.spans.size(); ++k)
    if (cb.spans[k].head >= 0) out[cb.spans[k].head] = static_cast<float>(d_head[k]);
  return out;
}

}  // namespace rlhf
