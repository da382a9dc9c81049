#include "eval/preference_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/error.h"

namespace rlhf::eval {

namespace {

// Average ranks (1-based), ties sharing the mean of their positions.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

}  // namespace

PreferenceMetrics preference_metrics(const PairScores& s) {
  RLHF_CHECK(s.chosen.size() == s.rejected.size(), "one chosen and one rejected score per pair");
  PreferenceMetrics m;
  const size_t n = s.chosen.size();
  m.pairs = static_cast<int64_t>(n);
  if (n == 0) return m;
  for (size_t i = 0; i < n; ++i) {
    m.accuracy += s.chosen[i] > s.rejected[i];
    m.ties += s.chosen[i] == s.rejected[i];
    m.margin += s.chosen[i] - s.rejected[i];
  }
  m.accuracy /= n;
  m.ties /= n;
  m.margin /= n;
  // Mann–Whitney U from the ranks of the pooled scores: AUC = (R_chosen - n(n+1)/2) / n^2.
  std::vector<double> pooled(s.chosen);
  pooled.insert(pooled.end(), s.rejected.begin(), s.rejected.end());
  const std::vector<double> r = ranks(pooled);
  const double r_chosen = std::accumulate(r.begin(), r.begin() + n, 0.0);
  m.auc = (r_chosen - static_cast<double>(n) * (n + 1) / 2.0) / (static_cast<double>(n) * n);
  return m;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  RLHF_CHECK(x.size() == y.size(), "pearson: lengths differ");
  const double n = static_cast<double>(x.size());
  if (x.size() < 2) return std::nan("");
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : std::nan("");
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) { return pearson(ranks(x), ranks(y)); }

}  // namespace rlhf::eval
