// Small pieces shared by the training loops' progress output.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace rlhf {

// Seconds as HH:MM:SS, for ETAs.
inline std::string format_hms(double seconds) {
  const int64_t t = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  return buf;
}

// "N parameters (X GB of fp32 training state)": weights, gradients and AdamW's two moments, the
// memory a run holds before activations.
inline std::string parameters_and_state(int64_t params) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%lld parameters (%.2f GB of fp32 training state)", static_cast<long long>(params),
                static_cast<double>(params) * 16 / 1e9);
  return buf;
}

}  // namespace rlhf
