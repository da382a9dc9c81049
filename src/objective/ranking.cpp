#include "objective/ranking.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "objective/dual.h"
#include "tensor/error.h"

namespace rlhf::objective {

RewardPairResult bradley_terry_loss(const std::vector<RewardPair>& pairs, double eta) {
  RewardPairResult r;
  const size_t n = pairs.size();
  r.d_chosen.assign(n, 0.0);
  r.d_rejected.assign(n, 0.0);
  if (n == 0) return r;
  const double inv_n = 1.0 / static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) {
    const RewardPair& p = pairs[i];
    const double z = p.chosen - p.rejected - p.margin;
    const double sum = p.chosen + p.rejected;
    r.loss += (-log_sigmoid(z) + eta * sum * sum) * inv_n;
    // d/dz -log sigma(z) = -sigma(-z); the centring term adds 2 eta (r_w + r_l) to both sides.
    const double g = sigmoid(-z);
    r.d_chosen[i] = (-g + 2 * eta * sum) * inv_n;
    r.d_rejected[i] = (g + 2 * eta * sum) * inv_n;
    r.accuracy += (p.chosen > p.rejected ? 1.0 : 0.0) * inv_n;
    r.margin += (p.chosen - p.rejected) * inv_n;
  }
  return r;
}

static void check_ranking(const std::vector<double>& scores, const std::vector<int64_t>& ranking) {
  std::vector<bool> seen(scores.size(), false);
  for (int64_t i : ranking) {
    if (i < 0 || i >= static_cast<int64_t>(scores.size()) || seen[i])
      throw InputError("ranking: entry " + std::to_string(i) + " is out of range or repeated (" +
                       std::to_string(scores.size()) + " responses)");
    seen[i] = true;
  }
}

double plackett_luce_loss(const std::vector<double>& scores, const std::vector<int64_t>& ranking, int64_t stages,
                          std::vector<double>& grad) {
  check_ranking(scores, ranking);
  const int64_t K = static_cast<int64_t>(ranking.size());
  if (stages < 0 || stages > std::max<int64_t>(0, K - 1))
    throw InputError("Plackett-Luce: " + std::to_string(stages) + " stages for " + std::to_string(K) + " responses");
  // Reverse cumulative log-sum-exp over the scores in rank order: lse[k] = log sum_{j>=k} exp(s_j).
  std::vector<double> s(K), lse(K + 1, -INFINITY);
  for (int64_t k = 0; k < K; ++k) s[k] = scores[ranking[k]];
  for (int64_t k = K - 1; k >= 0; --k) {
    const double a = lse[k + 1], b = s[k];
    const double m = std::max(a, b);
    lse[k] = m + std::log(std::exp(a - m) + std::exp(b - m));
  }
  double loss = 0;
  for (int64_t k = 0; k < stages; ++k) loss -= s[k] - lse[k];
  // d loss / d s_i = -[i < stages] + sum_{k <= min(i, stages-1)} exp(s_i - lse[k])
  for (int64_t i = 0; i < K; ++i) {
    double g = i < stages ? -1.0 : 0.0;
    for (int64_t k = 0; k <= std::min(i, stages - 1); ++k) g += std::exp(s[i] - lse[k]);
    grad[ranking[i]] += g;
  }
  return loss;
}

double kwise_pairs_loss(const std::vector<double>& scores, const std::vector<int64_t>& ranking,
                        std::vector<double>& grad, const std::vector<double>& label_values) {
  check_ranking(scores, ranking);
  if (!label_values.empty() && label_values.size() != scores.size())
    throw InputError("kwise pairs: one label value per response");
  const int64_t K = static_cast<int64_t>(ranking.size());
  auto tied = [&](int64_t a, int64_t b) {
    return !label_values.empty() && label_values[ranking[a]] == label_values[ranking[b]];
  };
  int64_t n_pairs = 0;
  for (int64_t a = 0; a < K; ++a)
    for (int64_t b = a + 1; b < K; ++b) n_pairs += !tied(a, b);
  if (n_pairs == 0) return 0.0;
  const double w = 1.0 / static_cast<double>(n_pairs);
  double loss = 0;
  for (int64_t a = 0; a < K; ++a)
    for (int64_t b = a + 1; b < K; ++b) {
      if (tied(a, b)) continue;
      const double z = scores[ranking[a]] - scores[ranking[b]];
      loss += -w * log_sigmoid(z);
      const double g = w * sigmoid(-z);
      grad[ranking[a]] -= g;
      grad[ranking[b]] += g;
    }
  return loss;
}

double listwise_dpo_loss(const std::vector<double>& logp, const std::vector<double>& ref_logp,
                         const std::vector<int64_t>& ranking, int64_t stages, double beta,
                         std::vector<double>& grad) {
  if (!(beta > 0)) throw InputError("listwise DPO: beta must be positive");
  std::vector<double> s(logp.size()), gs(logp.size(), 0.0);
  for (size_t i = 0; i < logp.size(); ++i) s[i] = beta * (logp[i] - ref_logp[i]);
  const double loss = plackett_luce_loss(s, ranking, stages, gs);
  for (size_t i = 0; i < logp.size(); ++i) grad[i] += beta * gs[i];
  return loss;
}

}  // namespace rlhf::objective
