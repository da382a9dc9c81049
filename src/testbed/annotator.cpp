// Simulated annotators: the noise model of annotator.h, its presets and its calibration.
#include "testbed/annotator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <sstream>

#include "objective/dual.h"
#include "tensor/error.h"

namespace rlhf::testbed {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using objective::sigmoid;  // the numerically stable one
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Pool member m's fixed taste for an item: a standard normal from a hash (Box–Muller).
double taste_z(uint64_t seed, int member, uint64_t id) {
  const uint64_t h1 = mix64(mix64(seed) ^ mix64(id) ^ (0x632be59bd9b4e019ULL * (static_cast<uint64_t>(member) + 1)));
  const uint64_t h2 = mix64(h1 ^ 0xd1b54a32d192ed03ULL);
  const double u1 = (static_cast<double>(h1 >> 11) + 0.5) * 0x1.0p-53;  // (0, 1)
  const double u2 = static_cast<double>(h2 >> 11) * 0x1.0p-53;          // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double gumbel(Rng& rng) {
  double u = rng.uniform();
  if (u <= 0) u = 0x1.0p-60;
  return -std::log(-std::log(u));
}

// P(the side with noiseless utility gap `du` over the other wins), before flips, for one pool
// member: the Gaussian noise on the gap is N(0, 2 sigma^2), the BT noise logistic(tau).
double p_win(double du, double tau, double sigma, const std::vector<double>& normals) {
  if (sigma > 0 && tau > 0) {
    if (normals.empty()) throw LogicError("prob_prefers: gauss_sigma and bt_tau both set need normal draws");
    double s = 0;
    for (double z : normals) s += sigmoid((du + sigma * std::sqrt(2.0) * z) / tau);
    return s / static_cast<double>(normals.size());
  }
  if (sigma > 0) return normal_cdf(du / (sigma * std::sqrt(2.0)));
  if (tau > 0) return sigmoid(du / tau);
  return du > 0 ? 1.0 : du < 0 ? 0.0 : 0.5;
}

double& tuned_field(AnnotatorConfig& c) {
  if (c.calibrate == "bt_tau") return c.bt_tau;
  if (c.calibrate == "flip_eps") return c.flip_eps;
  if (c.calibrate == "gauss_sigma") return c.gauss_sigma;
  throw InputError("annotator '" + c.name + "': calibrate '" + c.calibrate +
                   "' is not a tunable parameter (expected bt_tau, flip_eps or gauss_sigma)");
}

}  // namespace

void check_config(const AnnotatorConfig& c) {
  auto bad = [&](const std::string& what) { throw InputError("annotator '" + c.name + "': " + what); };
  if (!(c.bt_tau >= 0)) bad("bt_tau must be >= 0, got " + std::to_string(c.bt_tau));
  if (!(c.flip_eps >= 0 && c.flip_eps <= 1)) bad("flip_eps must be in [0, 1], got " + std::to_string(c.flip_eps));
  if (!(c.gauss_sigma >= 0)) bad("gauss_sigma must be >= 0, got " + std::to_string(c.gauss_sigma));
  if (!std::isfinite(c.length_gamma)) bad("length_gamma must be finite");
  if (c.pool < 1) bad("pool must be >= 1, got " + std::to_string(c.pool));
  if (!(c.taste_jitter >= 0)) bad("taste_jitter must be >= 0, got " + std::to_string(c.taste_jitter));
  if (!(c.tie_delta >= 0)) bad("tie_delta must be >= 0, got " + std::to_string(c.tie_delta));
}

AnnotatorConfig preset(const std::string& name) {
  AnnotatorConfig c;
  c.name = name;
  if (name == "clean") return c;
  if (name == "human-like") {
    c.pool = 8;
    c.taste_jitter = 0.05;
    c.calibrate = "bt_tau";
    c.target_agreement = 0.70;
    return c;
  }
  if (name == "gpt4-like") {
    c.length_gamma = 0.005;
    c.calibrate = "bt_tau";
    c.target_agreement = 0.80;
    return c;
  }
  const size_t colon = name.find(':');
  if (colon != std::string::npos) {
    const std::string kind = name.substr(0, colon), value = name.substr(colon + 1);
    double a = 0;
    size_t used = 0;
    try {
      a = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != value.size() || !(a > 0.5 && a <= 1.0))
      throw InputError("annotator preset '" + name + "': the agreement after ':' must be a number in (0.5, 1]");
    if (kind == "flip") c.calibrate = "flip_eps";
    else if (kind == "bt") c.calibrate = "bt_tau";
    else if (kind == "gauss") c.calibrate = "gauss_sigma";
    if (!c.calibrate.empty()) {
      c.target_agreement = a;
      return c;
    }
  }
  throw InputError("annotator preset '" + name +
                   "' is not known (expected clean, human-like, gpt4-like, flip:A, bt:A or gauss:A with A in (0.5, 1])");
}

// ---- Judgements ----------------------------------------------------------------------------------

namespace {
double base_utility(const AnnotatorConfig& c, const AnnotatedItem& it, int member) {
  double u = it.gold + c.length_gamma * it.length;
  if (c.taste_jitter > 0) u += c.taste_jitter * taste_z(c.taste_seed, member, it.id);
  return u;
}
}  // namespace

bool Annotator::prefers(const AnnotatedItem& a, const AnnotatedItem& b, Rng& rng) const {
  const int m = cfg_.pool > 1 ? static_cast<int>(rng.below(static_cast<uint64_t>(cfg_.pool))) : 0;
  double du = base_utility(cfg_, a, m) - base_utility(cfg_, b, m);
  if (cfg_.gauss_sigma > 0) du += cfg_.gauss_sigma * (rng.normal() - rng.normal());
  bool a_wins;
  if (cfg_.bt_tau > 0) a_wins = rng.uniform() < sigmoid(du / cfg_.bt_tau);
  else if (du != 0) a_wins = du > 0;
  else a_wins = rng.uniform() < 0.5;
  if (cfg_.flip_eps > 0 && rng.uniform() < cfg_.flip_eps) a_wins = !a_wins;
  return a_wins;
}

std::vector<int> Annotator::rank(const std::vector<AnnotatedItem>& items, Rng& rng) const {
  const int m = cfg_.pool > 1 ? static_cast<int>(rng.below(static_cast<uint64_t>(cfg_.pool))) : 0;
  const size_t K = items.size();
  std::vector<double> key(K), tiebreak(K);
  for (size_t i = 0; i < K; ++i) {
    double u = base_utility(cfg_, items[i], m);
    if (cfg_.gauss_sigma > 0) u += cfg_.gauss_sigma * rng.normal();
    if (cfg_.bt_tau > 0) u += cfg_.bt_tau * gumbel(rng);  // Gumbel-max: Plackett–Luce on u / tau
    key[i] = u;
    tiebreak[i] = rng.uniform();  // exact ties in a random order
  }
  std::vector<int> order(K);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int i, int j) {
    if (key[i] != key[j]) return key[i] > key[j];
    return tiebreak[i] < tiebreak[j];
  });
  if (cfg_.flip_eps > 0 && rng.uniform() < cfg_.flip_eps) std::reverse(order.begin(), order.end());
  return order;
}

double Annotator::prob_prefers(const AnnotatedItem& a, const AnnotatedItem& b, const std::vector<double>& normals) const {
  double p = 0;
  for (int m = 0; m < cfg_.pool; ++m)
    p += p_win(base_utility(cfg_, a, m) - base_utility(cfg_, b, m), cfg_.bt_tau, cfg_.gauss_sigma, normals);
  p /= cfg_.pool;
  return (1 - cfg_.flip_eps) * p + cfg_.flip_eps * (1 - p);
}

double agreement(const Annotator& ann, const std::vector<AnnotatedItem>& a, const std::vector<AnnotatedItem>& b,
                 Rng& rng, int draws) {
  if (a.size() != b.size()) throw LogicError("agreement: a and b differ in size");
  const double delta = ann.config().tie_delta;
  int64_t agree = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double gap = a[i].gold - b[i].gold;
    if (!(std::abs(gap) > delta)) continue;
    for (int d = 0; d < draws; ++d) {
      agree += ann.prefers(a[i], b[i], rng) == (gap > 0);
      ++n;
    }
  }
  return n ? static_cast<double>(agree) / static_cast<double>(n) : kNaN;
}

// ---- Calibration ---------------------------------------------------------------------------------

namespace {

// The expected agreement of a config over the pairs with gap > delta, as a function of the
// noise parameters, from per-(pair, member) utility gaps oriented so that > 0 agrees with gold.
// Jitter and length bias are fixed by the config, so the gaps are computed once.
struct AgreementTable {
  int pool = 1;
  std::vector<double> du;       // pairs x pool
  std::vector<double> normals;  // pairs x kNormals, only when Gaussian and BT noise are both on
  static constexpr int kNormals = 64;

  double expected(double tau, double sigma, double eps) const {
    const size_t n = du.size() / pool;
    const bool mixed = tau > 0 && sigma > 0;
    std::vector<double> z;
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      if (mixed) z.assign(normals.begin() + i * kNormals, normals.begin() + (i + 1) * kNormals);
      double p = 0;
      for (int m = 0; m < pool; ++m) p += p_win(du[i * pool + m], tau, sigma, z);
      p /= pool;
      sum += (1 - eps) * p + eps * (1 - p);
    }
    return sum / static_cast<double>(n);
  }
};

}  // namespace

Annotator calibrate(const AnnotatorConfig& cfg_in, const std::vector<AnnotatedItem>& a,
                    const std::vector<AnnotatedItem>& b, uint64_t seed) {
  if (a.size() != b.size()) throw LogicError("calibrate: a and b differ in size");
  AnnotatorConfig cfg = cfg_in;
  check_config(cfg);
  const double delta = cfg.tie_delta;
  std::vector<size_t> eligible;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i].gold - b[i].gold) > delta) eligible.push_back(i);

  const bool tune = !cfg.calibrate.empty() && cfg.target_agreement != 0;
  if (tune) {
    double& param = tuned_field(cfg);
    const double target = cfg.target_agreement;
    if (!(target > 0.5 && target <= 1.0))
      throw InputError("annotator '" + cfg.name + "': target_agreement must be in (0.5, 1], got " + std::to_string(target));
    if (eligible.empty())
      throw InputError("annotator '" + cfg.name + "': no calibration pair has a gold gap above tie_delta " +
                       std::to_string(delta) + " (" + std::to_string(a.size()) + " pairs)");
    AgreementTable t;
    t.pool = cfg.pool;
    t.du.resize(eligible.size() * cfg.pool);
    for (size_t k = 0; k < eligible.size(); ++k) {
      const size_t i = eligible[k];
      const double sign = a[i].gold > b[i].gold ? 1.0 : -1.0;
      for (int m = 0; m < cfg.pool; ++m)
        t.du[k * cfg.pool + m] = sign * (base_utility(cfg, a[i], m) - base_utility(cfg, b[i], m));
    }
    const bool mixed = (cfg.gauss_sigma > 0 || cfg.calibrate == "gauss_sigma") &&
                       (cfg.bt_tau > 0 || cfg.calibrate == "bt_tau");
    if (mixed) {
      Rng nrng(seed, 1);
      t.normals.resize(eligible.size() * AgreementTable::kNormals);
      for (double& z : t.normals) z = nrng.normal();
    }
    auto f = [&](double x) {
      param = x;
      return t.expected(cfg.bt_tau, cfg.gauss_sigma, cfg.flip_eps);
    };
    const double at_zero = f(0);
    if (at_zero < target - 1e-12) {
      std::ostringstream msg;
      msg << "annotator '" << cfg.name << "': with " << cfg.calibrate << " = 0 the other settings (length_gamma "
          << cfg.length_gamma << ", taste_jitter " << cfg.taste_jitter << ", bt_tau " << cfg.bt_tau << ", flip_eps "
          << cfg.flip_eps << ", gauss_sigma " << cfg.gauss_sigma << ") already give agreement " << at_zero
          << " < target " << target << " on " << eligible.size() << " pairs; lower them";
      throw InputError(msg.str());
    }
    if (at_zero <= target) {
      param = 0;
    } else {
      // Agreement falls with the noise (to 1/2 at infinite tau or sigma, eps = 1/2). Bracket, then
      // bisect; with length bias it need not be monotone, but a bracket holds a crossing.
      double lo = 0, hi;
      if (cfg.calibrate == "flip_eps") {
        hi = 0.5;
      } else {
        double scale = 0;
        for (size_t i : eligible) scale += std::abs(a[i].gold - b[i].gold);
        hi = std::max(scale / static_cast<double>(eligible.size()), 1e-12);
        for (int k = 0; k < 200 && f(hi) > target; ++k) hi *= 2;
      }
      for (int it = 0; it < 100 && hi - lo > 1e-14 * std::max(1.0, hi); ++it) {
        const double mid = 0.5 * (lo + hi);
        (f(mid) > target ? lo : hi) = mid;
      }
      param = 0.5 * (lo + hi);
    }
  }

  Annotator ann(cfg);
  // The fresh sample: labels drawn with another stream of the seed.
  Rng rng(seed, 2);
  const int draws = static_cast<int>(std::clamp<size_t>(400000 / std::max<size_t>(eligible.size(), 1), 1, 1000));
  int64_t agree = 0, same = 0, n = 0;
  for (size_t i : eligible) {
    const bool gold_first = a[i].gold > b[i].gold;
    for (int d = 0; d < draws; ++d) {
      const bool l1 = ann.prefers(a[i], b[i], rng), l2 = ann.prefers(a[i], b[i], rng);
      agree += l1 == gold_first;
      same += l1 == l2;
      ++n;
    }
  }
  ann.pairs_measured = static_cast<int64_t>(eligible.size());
  ann.measured_agreement = n ? static_cast<double>(agree) / static_cast<double>(n) : kNaN;
  ann.inter_annotator = n ? static_cast<double>(same) / static_cast<double>(n) : kNaN;

  std::vector<size_t> ties;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i].gold - b[i].gold) <= delta && a[i].length != b[i].length) ties.push_back(i);
  ann.near_ties = static_cast<int64_t>(ties.size());
  const int tie_draws = static_cast<int>(std::clamp<size_t>(100000 / std::max<size_t>(ties.size(), 1), 1, 1000));
  int64_t long_wins = 0, m = 0;
  for (size_t i : ties) {
    const bool a_longer = a[i].length > b[i].length;
    for (int d = 0; d < tie_draws; ++d) {
      long_wins += ann.prefers(a[i], b[i], rng) == a_longer;
      ++m;
    }
  }
  ann.near_tie_long_win = m ? static_cast<double>(long_wins) / static_cast<double>(m) : kNaN;
  return ann;
}

}  // namespace rlhf::testbed
