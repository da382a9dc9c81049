// KL estimators (Schulman 2020), per token, for samples from the policy: log r = lp_ref - lp.
//   k1 = -log r              unbiased, can be negative           d/dlp = 1
//   k2 = (log r)^2 / 2       biased, >= 0                         d/dlp = lp - lp_ref
//   k3 = (r - 1) - log r     unbiased, >= 0                       d/dlp = 1 - r
// In a reward only the value matters (PPO: k1 or k3); in a loss the derivative is the one above
// (GRPO's k3 term pulls towards forward KL, docs/algorithms.md §4).
#pragma once

#include <cmath>
#include <string>

#include "tensor/error.h"

namespace rlhf::objective {

enum class KlEstimator { k1, k2, k3 };

inline KlEstimator kl_estimator_from_name(const std::string& name) {
  if (name == "k1") return KlEstimator::k1;
  if (name == "k2") return KlEstimator::k2;
  if (name == "k3") return KlEstimator::k3;
  throw InputError("kl_estimator '" + name + "' is not known (expected k1, k2 or k3)");
}

inline double kl_value(KlEstimator k, double lp, double lp_ref) {
  const double log_r = lp_ref - lp;
  switch (k) {
    case KlEstimator::k1: return -log_r;
    case KlEstimator::k2: return 0.5 * log_r * log_r;
    case KlEstimator::k3: return std::expm1(log_r) - log_r;
  }
  return 0;
}

// d kl / d lp
inline double kl_grad(KlEstimator k, double lp, double lp_ref) {
  switch (k) {
    case KlEstimator::k1: return 1.0;
    case KlEstimator::k2: return lp - lp_ref;
    case KlEstimator::k3: return -std::expm1(lp_ref - lp);
  }
  return 0;
}

}  // namespace rlhf::objective
