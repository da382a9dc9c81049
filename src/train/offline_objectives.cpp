#include "train/offline_objectives.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "objective/ranking.h"
#include "tensor/error.h"

namespace rlhf {

namespace {

// The two spans (chosen = index 0, rejected = index 1) of every group in the batch, in order.
std::vector<std::pair<size_t, size_t>> pair_spans(const CollatedBatch& cb) {
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t k = 0; k < cb.spans.size(); ++k) {
    if (cb.spans[k].index != 0) continue;
    size_t r = k + 1;
    while (r < cb.spans.size() && !(cb.spans[r].group == cb.spans[k].group && cb.spans[r].index == 1)) ++r;
    RLHF_CHECK(r < cb.spans.size(), "a pair's rejected sequence is not in its batch");
    pairs.emplace_back(k, r);
  }
  return pairs;
}

// The spans of every group in the batch, ordered by their index (a ranking: best first). A group
// can appear twice in one batch (a batch that spans an epoch boundary of a small dataset): its
// n-th span of each index belongs to its n-th occurrence, and each occurrence is its own entry.
std::vector<std::vector<size_t>> group_spans(const CollatedBatch& cb) {
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> by_occurrence;  // (group, occurrence)
  std::map<std::pair<int64_t, int64_t>, int64_t> seen;                       // (group, index) -> count
  std::vector<std::pair<int64_t, int64_t>> order;
  for (size_t k = 0; k < cb.spans.size(); ++k) {
    const int64_t occurrence = seen[{cb.spans[k].group, cb.spans[k].index}]++;
    auto [it, fresh] = by_occurrence.try_emplace({cb.spans[k].group, occurrence});
    if (fresh) order.push_back(it->first);
    it->second.push_back(k);
  }
  std::vector<std::vector<size_t>> out;
  for (const auto& key : order) {
    std::vector<size_t> m = by_occurrence[key];
    std::sort(m.begin(), m.end(), [&](size_t a, size_t b) { return cb.spans[a].index < cb.spans[b].index; });
    out.push_back(std::move(m));
  }
  return out;
}

// Fraction of a group's untied ordered pairs (i better than j by the labels) whose scores are
// strictly ordered the same way; adds into `correct` and `pairs`.
void count_ordered_pairs(const std::vector<double>& scores, const std::vector<double>& labels, double& correct,
                         double& pairs) {
  for (size_t i = 0; i < scores.size(); ++i)
    for (size_t j = i + 1; j < scores.size(); ++j) {
      if (labels[i] == labels[j]) continue;
      pairs += 1;
      correct += labels[i] > labels[j] ? scores[i] > scores[j] : scores[j] > scores[i];
    }
}

const std::vector<double>& rank_values_of(const std::vector<std::vector<double>>& all, int64_t group, size_t k) {
  if (group < 0 || group >= static_cast<int64_t>(all.size()) || all[group].size() != k)
    throw LogicError("ranked objective: no label values for group " + std::to_string(group));
  return all[group];
}

}  // namespace

ObjectiveFn sft_objective() {
  return [](const CollatedBatch& cb, const SequenceScores& pol, const std::vector<double>&) {
    ObjectiveOutput o;
    const double tokens = std::accumulate(pol.n_tokens.begin(), pol.n_tokens.end(), 0.0);
    const double nll = -std::accumulate(pol.logp.begin(), pol.logp.end(), 0.0);
    o.loss = nll / tokens;
    o.d_logp.assign(cb.spans.size(), -1.0 / tokens);
    o.metrics = {{"num_tokens", tokens}};
    return o;
  };
}

ObjectiveFn token_nll_sum_objective() {
  return [](const CollatedBatch& cb, const SequenceScores& pol, const std::vector<double>&) {
    ObjectiveOutput o;
    o.loss = -std::accumulate(pol.logp.begin(), pol.logp.end(), 0.0);
    o.d_logp.assign(cb.spans.size(), -1.0);
    return o;
  };
}

ObjectiveFn pairwise_objective(std::vector<std::pair<std::string, double>> losses, objective::PairParams params) {
  return [losses, params](const CollatedBatch& cb, const SequenceScores& pol, const std::vector<double>& ref) {
    const auto spans = pair_spans(cb);
    std::vector<objective::PairInputs> in;
    for (auto [c, r] : spans)
      in.push_back({pol.logp[c], pol.logp[r], ref[c], ref[r], pol.n_tokens[c], pol.n_tokens[r]});
    const objective::PairBatchResult res = objective::pairwise_loss(losses, in, params);
    ObjectiveOutput o;
    o.loss = res.loss;
    o.d_logp.assign(cb.spans.size(), 0.0);
    for (size_t i = 0; i < spans.size(); ++i) {
      o.d_logp[spans[i].first] = res.grads[i].d_chosen;
      o.d_logp[spans[i].second] = res.grads[i].d_rejected;
    }
    o.metrics = objective::pairwise_metrics(in, params.beta);
    if (!pol.logit_mean_sum.empty()) {
      // TRL's logits/chosen (rejected): the vocabulary-mean logit averaged over every chosen
      // (rejected) token of the batch.
      double lc = 0, lr = 0, nc = 0, nr = 0;
      for (auto [c, r] : spans) {
        lc += pol.logit_mean_sum[c], nc += pol.n_tokens[c];
        lr += pol.logit_mean_sum[r], nr += pol.n_tokens[r];
      }
      o.metrics.emplace_back("logits/chosen", lc / nc);
      o.metrics.emplace_back("logits/rejected", lr / nr);
    }
    return o;
  };
}

ObjectiveFn reward_objective(double eta, std::vector<double> group_margin) {
  return [eta, group_margin](const CollatedBatch& cb, const SequenceScores& pol, const std::vector<double>&) {
    const auto spans = pair_spans(cb);
    std::vector<objective::RewardPair> in;
    for (auto [c, r] : spans)
      in.push_back({pol.head[c], pol.head[r], group_margin.empty() ? 0.0 : group_margin[cb.spans[c].group]});
    const objective::RewardPairResult res = objective::bradley_terry_loss(in, eta);
    ObjectiveOutput o;
    o.loss = res.loss;
    o.d_head.assign(cb.spans.size(), 0.0);
    for (size_t i = 0; i < spans.size(); ++i) {
      o.d_head[spans[i].first] = res.d_chosen[i];
      o.d_head[spans[i].second] = res.d_rejected[i];
    }
    o.metrics = {{"accuracy", res.accuracy}, {"margin", res.margin}};
    return o;
  };
}

ObjectiveFn ranked_reward_objective(const std::string& loss, std::vector<std::vector<double>> rank_values) {
  if (loss != "plackett_luce" && loss != "kwise")
    throw InputError("ranked reward loss: expected plackett_luce or kwise, got '" + loss + "'");
  return [loss, rank_values](const CollatedBatch& cb, const SequenceScores& pol, const std::vector<double>&) {
    ObjectiveOutput o;
    o.d_head.assign(cb.spans.size(), 0.0);
    const auto groups = group_spans(cb);
    double correct = 0, pairs = 0, margin = 0;
    for (const auto& m : groups) {
      const auto& labels = rank_values_of(rank_values, cb.spans[m[0]].group, m.size());
      std::vector<double> s(m.size()), g(m.size(), 0.0);
      for (size_t i = 0; i < m.size(); ++i) s[i] = pol.head[m[i]];
      std::vector<int64_t> ranking(m.size());
      std::iota(ranking.begin(), ranking.end(), 0);
      o.loss += loss == "kwise" ? objective::kwise_pairs_loss(s, ranking, g, labels)
                                : objective::plackett_luce_loss(s, ranking, static_cast<int64_t>(m.size()) - 1, g);
      for (size_t i = 0; i < m.size(); ++i) o.d_head[m[i]] = g[i];
      count_ordered_pairs(s, labels, correct, pairs);
      margin += s.front() - s.back();
    }
    const double n = static_cast<double>(groups.size());
    o.loss /= n;
    for (double& d : o.d_head) d /= n;
    o.metrics = {{"accuracy", pairs > 0 ? correct / pairs : 0.0}, {"margin", margin / n}};
    return o;
  };
}

ObjectiveFn listwise_dpo_objective(double beta, std::vector<std::vector<double>> rank_values) {
  if (!(beta > 0)) throw InputError("listwise DPO: beta must be positive");
  return [beta, rank_values](const CollatedBatch& cb, const SequenceScores& pol, const std::vector<double>& ref) {
    ObjectiveOutput o;
    o.d_logp.assign(cb.spans.size(), 0.0);
    const auto groups = group_spans(cb);
    double correct = 0, pairs = 0, best = 0, worst = 0, lp_best = 0, lp_worst = 0;
    for (const auto& m : groups) {
      const auto& labels = rank_values_of(rank_values, cb.spans[m[0]].group, m.size());
      std::vector<double> lp(m.size()), lr(m.size()), g(m.size(), 0.0), reward(m.size());
      for (size_t i = 0; i < m.size(); ++i) {
        lp[i] = pol.logp[m[i]];
        lr[i] = ref[m[i]];
        reward[i] = beta * (lp[i] - lr[i]);
      }
      std::vector<int64_t> ranking(m.size());
      std::iota(ranking.begin(), ranking.end(), 0);
      o.loss += objective::listwise_dpo_loss(lp, lr, ranking, static_cast<int64_t>(m.size()) - 1, beta, g);
      for (size_t i = 0; i < m.size(); ++i) o.d_logp[m[i]] = g[i];
      count_ordered_pairs(reward, labels, correct, pairs);
      best += reward.front(), worst += reward.back(), lp_best += lp.front(), lp_worst += lp.back();
    }
    const double n = static_cast<double>(groups.size());
    o.loss /= n;
    for (double& d : o.d_logp) d /= n;
    o.metrics = {{"rewards/accuracies", pairs > 0 ? correct / pairs : 0.0},
                 {"rewards/chosen", best / n},
                 {"rewards/rejected", worst / n},
                 {"rewards/margins", (best - worst) / n},
                 {"logps/chosen", lp_best / n},
                 {"logps/rejected", lp_worst / n}};
    return o;
  };
}

ObjectiveFn kto_objective(const std::string& loss_type, objective::KtoParams params,
                          std::vector<uint8_t> group_desirable) {
  if (loss_type != "kto" && loss_type != "apo_zero_unpaired")
    throw InputError("kto: --loss-type expected kto or apo_zero_unpaired, got '" + loss_type + "'");
  if (!(params.beta > 0)) throw InputError("kto: beta must be positive");
  return [loss_type, params, group_desirable](const CollatedBatch& cb, const SequenceScores& pol,
                                               const std::vector<double>& ref) {
    std::vector<objective::UnpairedInputs> in;
    std::vector<size_t> main_span;
    std::vector<double> kl_logp, kl_ref;
    for (size_t k = 0; k < cb.spans.size(); ++k) {
      const SequenceSpan& sp = cb.spans[k];
      if (sp.index == 1) {  // the KL sequence: policy and reference log-probs for z0 only
        kl_logp.push_back(pol.logp[k]);
        kl_ref.push_back(ref[k]);
        continue;
      }
      RLHF_CHECK(sp.group < static_cast<int64_t>(group_desirable.size()), "kto: a group without a label");
      in.push_back({pol.logp[k], ref[k], group_desirable[sp.group] != 0});
      main_span.push_back(k);
    }
    const objective::UnpairedResult r = loss_type == "kto"
                                            ? objective::kto_loss(in, kl_logp, kl_ref, params)
                                            : objective::apo_zero_unpaired_loss(in, params.beta);
    ObjectiveOutput o;
    o.loss = r.loss;
    o.d_logp.assign(cb.spans.size(), 0.0);
    for (size_t i = 0; i < main_span.size(); ++i) o.d_logp[main_span[i]] = r.d_logp[i];
    // TRL logs means over the batch's desirable (undesirable) examples, and the logits means
    // over their completion tokens; a side absent from the batch is not logged.
    std::map<std::string, double> sums(r.metrics.begin(), r.metrics.end());
    double logits[2] = {0, 0}, tokens[2] = {0, 0};
    for (size_t i = 0; i < main_span.size(); ++i) {
      const int side = in[i].desirable ? 0 : 1;
      if (!pol.logit_mean_sum.empty()) logits[side] += pol.logit_mean_sum[main_span[i]];
      tokens[side] += pol.n_tokens[main_span[i]];
    }
    if (loss_type == "kto") o.metrics.emplace_back("kl", r.kl);
    const char* side_name[2] = {"chosen", "rejected"};
    for (int side = 0; side < 2; ++side) {
      const double count = sums["count/" + std::string(side_name[side])];
      if (count == 0) continue;
      o.metrics.emplace_back(std::string("rewards/") + side_name[side], sums[std::string("rewards/") + side_name[side] + "_sum"] / count);
      o.metrics.emplace_back(std::string("logps/") + side_name[side], sums[std::string("logps/") + side_name[side] + "_sum"] / count);
      if (!pol.logit_mean_sum.empty())
        o.metrics.emplace_back(std::string("logits/") + side_name[side], logits[side] / tokens[side]);
    }
    if (sums["count/chosen"] > 0 && sums["count/rejected"] > 0)
      o.metrics.emplace_back("rewards/margins", sums["rewards/chosen_sum"] / sums["count/chosen"] -
                                                    sums["rewards/rejected_sum"] / sums["count/rejected"]);
    return o;
  };
}

}  // namespace rlhf
