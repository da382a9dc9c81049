// Numeric faults under data parallelism: naming the ranks whose own loss or gradient was not
// finite (every rank stops with the same message, before the optimizer step), and a test hook
// that makes one rank's loss NaN at one step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlhf {

// " on rank R" / " on ranks R, S" for the ranks whose flag is non-zero (one flag per rank, summed
// over the ranks so every rank holds all of them); empty when every flag is 0.
std::string ranks_named(const std::vector<double>& flags);

// Test hook (tests/cli/mpi.sh), read once from the environment: with RLHF_TEST_NAN_STEP=S (and
// RLHF_TEST_NAN_RANK=R, default 0) true on rank R at step S (1-based: the offline loop's optimizer
// step, the online loop's rollout step); the loops then make that rank's loss and gradient NaN,
// as a numeric fault would. Without the variables it is never true.
bool test_nan_injected(int rank, int64_t step);

}  // namespace rlhf
