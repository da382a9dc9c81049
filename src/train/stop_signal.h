// A graceful stop on SIGTERM or SIGINT (docs/reliability.md, test 34b): the first signal asks the
// training loop to finish the step it is in, write a checkpoint and stop; the command then exits
// with 128 + the signal's number, and `--resume` continues exactly as the uninterrupted run. A
// second signal ends the process at once (the checkpoints already written stay valid).
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>

#include "dist/communicator.h"

namespace rlhf {

// Thrown by a training loop after it wrote the checkpoint of `step`.
struct StopRequested : std::runtime_error {
  StopRequested(int signal, int64_t step, const std::filesystem::path& checkpoint);
  int signal;
  int64_t step;
};

// Catches SIGTERM and SIGINT for the rest of the process (those the parent set to be ignored stay
// ignored); called by the commands that checkpoint.
void install_stop_handlers();

// After a step, on every rank: the signal that asks to stop (received by this rank or, under data
// parallelism, by any rank; SIGTERM when only another rank knows it), or 0 to go on.
int stop_after_step(dist::Communicator& comm);

}  // namespace rlhf
