// Deterministic random numbers: xoshiro256** seeded through splitmix64.
//
// The whole state is four words, so it is trivially saved in checkpoints and streams can be
// derived per purpose (init, data order, sampling) with `Rng(seed, stream)`.
#pragma once

#include <array>
#include <cstdint>

namespace rlhf {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0);
  uint64_t next_u64();
  double uniform();                   // [0, 1)
  double normal();                    // standard normal (Box–Muller, no cached second value)
  uint64_t below(uint64_t n);         // uniform integer in [0, n)
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

}  // namespace rlhf
