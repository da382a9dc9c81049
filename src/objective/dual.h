// Forward-mode dual numbers for objectives: each loss is written once, as its formula, and
// evaluated on Dual values seeded with d/dx = 1 to get its exact derivative. This keeps every
// variant a few readable lines (the formulas of docs/algorithms.md) without hand-derived gradients
// that drift from the loss; finite-difference tests still check each one.
#pragma once

#include <algorithm>
#include <cmath>

namespace rlhf::objective {

struct Dual {
  double v = 0, d = 0;  // value and derivative along the seeded direction
  Dual() = default;
  Dual(double value, double deriv = 0) : v(value), d(deriv) {}
};

inline Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
inline Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.d - b.d}; }
inline Dual operator-(Dual a) { return {-a.v, -a.d}; }
inline Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
inline Dual operator/(Dual a, Dual b) { return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)}; }

inline Dual exp(Dual a) {
  const double e = std::exp(a.v);
  return {e, a.d * e};
}
inline Dual log(Dual a) { return {std::log(a.v), a.d / a.v}; }
inline double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }
inline Dual sigmoid(Dual a) {
  const double s = sigmoid(a.v);
  return {s, a.d * s * (1 - s)};
}
// log sigma(z) = -softplus(-z), stable for large |z|.
inline double log_sigmoid(double z) { return z >= 0 ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z)); }
inline Dual log_sigmoid(Dual a) { return {log_sigmoid(a.v), a.d * sigmoid(-a.v)}; }
inline Dual square(Dual a) { return a * a; }
inline Dual relu(Dual a) { return a.v > 0 ? a : Dual(0.0, 0.0); }
// log(1 - exp(a)) for a < 0, stable on both sides of -ln 2.
inline Dual log1mexp(Dual a) {
  const double v = a.v > -M_LN2 ? std::log(-std::expm1(a.v)) : std::log1p(-std::exp(a.v));
  return {v, a.d * (-std::exp(a.v) / -std::expm1(a.v))};
}

}  // namespace rlhf::objective
