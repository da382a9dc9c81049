#include "train/faults.h"

#include <cstdlib>

namespace rlhf {

std::string ranks_named(const std::vector<double>& flags) {
  std::string list;
  int count = 0;
  for (size_t r = 0; r < flags.size(); ++r)
    if (flags[r] != 0) list += (count++ ? ", " : "") + std::to_string(r);
  if (count == 0) return "";
  return (count == 1 ? " on rank " : " on ranks ") + list;
}

bool test_nan_injected(int rank, int64_t step) {
  static const int64_t nan_step = [] {
    const char* s = std::getenv("RLHF_TEST_NAN_STEP");
    return s ? std::atoll(s) : int64_t{-1};
  }();
  static const int nan_rank = [] {
    const char* r = std::getenv("RLHF_TEST_NAN_RANK");
    return r ? std::atoi(r) : 0;
  }();
  return nan_step > 0 && step == nan_step && rank == nan_rank;
}

}  // namespace rlhf
