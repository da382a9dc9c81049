#include "train/faults.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "train/optimizer.h"

namespace rlhf {

std::string ranks_named(const std::vector<double>& flags) {
  std::string list;
  int count = 0;
  for (size_t r = 0; r < flags.size(); ++r)
    if (flags[r] != 0) list += (count++ ? ", " : "") + std::to_string(r);
  if (count == 0) return "";
  return (count == 1 ? " on rank " : " on ranks ") + list;
}

double nonfinite_flag(double loss, const Transformer& model) {
  return std::isfinite(loss) && std::isfinite(grad_global_norm(model)) ? 0.0 : 1.0;
}

#ifdef RLHF_TEST_HOOKS
void inject_test_nan(int rank, int64_t step, double& loss, Transformer& model) {
  static const int64_t nan_step = [] {
    const char* s = std::getenv("RLHF_TEST_NAN_STEP");
    return s ? std::atoll(s) : int64_t{-1};
  }();
  static const int nan_rank = [] {
    const char* r = std::getenv("RLHF_TEST_NAN_RANK");
    return r ? std::atoi(r) : 0;
  }();
  if (nan_step <= 0 || step != nan_step || rank != nan_rank) return;
  loss = std::numeric_limits<double>::quiet_NaN();
  model.grads()[0] = std::numeric_limits<float>::quiet_NaN();
}
#else
void inject_test_nan(int, int64_t, double&, Transformer&) {}
#endif

}  // namespace rlhf
