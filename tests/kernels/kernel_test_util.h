// Shared helpers for the kernel tests: seeded random buffers, tolerance checks that report the
// worst element, and a central-difference gradient check of an fp32 forward. The expected values
// come from the reference backend (kernels/reference/), the oracle of every kernel test.
//
// Convention used by every backward test: a scalar loss L = sum(R * out) with a fixed random R,
// so dL/dout = R is what the backward receives.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <vector>

namespace rlhf::kernels::test {

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> uniform(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

template <typename T>
double max_abs(const std::vector<T>& v) {
  double m = 0.0;
  for (const auto& x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

// sum_i a_i b_i in double.
inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Passes when |got_i - want_i| <= atol + rtol |want_i| for all i; otherwise names the worst i.
template <typename A, typename B>
::testing::AssertionResult all_close(const std::vector<A>& got, const std::vector<B>& want, double rtol, double atol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  size_t worst = 0, n_bad = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    const double err = std::fabs(g - w), tol = atol + rtol * std::fabs(w);
    if (!(err <= tol)) ++n_bad;  // also catches NaN
    const double excess = std::isnan(err) ? 1e300 : err / tol;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  if (n_bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << n_bad << " of " << got.size() << " elements off; worst [" << worst
                                       << "]: got " << static_cast<double>(got[worst]) << ", want "
                                       << static_cast<double>(want[worst]) << " (rtol " << rtol << ", atol " << atol
                                       << ")";
}

// Tolerance relative to the buffer's scale: |got - want| <= rtol (|want| + max|want|).
template <typename A, typename B>
::testing::AssertionResult close_scaled(const std::vector<A>& got, const std::vector<B>& want, double rtol) {
  return all_close(got, want, rtol, rtol * std::max(max_abs(want), 1e-30));
}

// Central differences of loss() with respect to n_samples randomly chosen entries of x (all of
// them when x is small), compared with analytic[i]. loss() must run the fp32 forward on the
// current contents of x and return sum(R * out) in double. The step actually taken is the
// difference of the rounded perturbed floats, not the nominal h.
inline ::testing::AssertionResult check_fd(std::vector<float>& x, const std::vector<float>& analytic,
                                           const std::function<double()>& loss, int n_samples, uint64_t seed,
                                           double h = 1e-3, double rtol = 1e-2, double atol_rel = 2e-3) {
  std::vector<size_t> idx;
  if (static_cast<size_t>(n_samples) >= x.size()) {
    for (size_t i = 0; i < x.size(); ++i) idx.push_back(i);
  } else {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> pick(0, x.size() - 1);
    for (int s = 0; s < n_samples; ++s) idx.push_back(pick(rng));
  }
  const double atol = atol_rel * std::max(max_abs(analytic), 1e-3);
  std::ostringstream bad;
  int n_bad = 0;
  for (size_t i : idx) {
    const float x0 = x[i];
    const float xp = static_cast<float>(x0 + h), xm = static_cast<float>(x0 - h);
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = x0;
    const double fd = (lp - lm) / (static_cast<double>(xp) - xm);
    const double err = std::fabs(fd - analytic[i]);
    if (!(err <= atol + rtol * std::fabs(fd))) {
      if (n_bad < 5) bad << " [" << i << "] fd " << fd << " analytic " << analytic[i] << ";";
      ++n_bad;
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << n_bad << " of " << idx.size() << " finite differences off:" << bad.str();
}

// Buffers filled with a recognisable non-zero value, to check that backwards accumulate (+=).
inline std::vector<float> prefilled(size_t n, uint64_t seed) { return uniform(n, seed, -0.5f, 0.5f); }

// a + b elementwise in double (expected value of an accumulating backward).
template <typename B>
std::vector<double> plus(const std::vector<float>& a, const std::vector<B>& b) {
  std::vector<double> r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = a[i] + b[i];
  return r;
}

}  // namespace rlhf::kernels::test
