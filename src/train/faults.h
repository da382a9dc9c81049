// Numeric faults under data parallelism: naming the ranks whose own loss or gradient was not
// finite (every rank stops with the same message, before the optimizer step), and a test hook
// that makes one rank's loss NaN at one step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace rlhf {

// " on rank R" / " on ranks R, S" for the ranks whose flag is non-zero (one flag per rank, summed
// over the ranks so every rank holds all of them); empty when every flag is 0.
std::string ranks_named(const std::vector<double>& flags);

// 1 when this rank's own loss or gradient is not finite, else 0: its flag for ranks_named.
double nonfinite_flag(double loss, const Transformer& model);

// Test hook (tests/cli/mpi.sh), read once from the environment: with RLHF_TEST_NAN_STEP=S (and
// RLHF_TEST_NAN_RANK=R, default 0), on rank R at step S (1-based: the offline loop's optimizer
// step, the online loop's rollout step) the loss and the model's gradient become NaN, as a
// numeric fault would make them. Without the variables it does nothing, and builds without
// -DRLHF_TEST_HOOKS=ON (every build but the test script's) do not read them at all.
void inject_test_nan(int rank, int64_t step, double& loss, Transformer& model);

}  // namespace rlhf
