// The GPU communicator: NCCL all-reduce over device buffers, bootstrapped over MPI (rank 0 makes
// the NCCL unique id and broadcasts it). Built only when CMake finds the CUDA toolkit and NCCL
// (RLHF_NCCL); until the GPU backend exists nothing selects it, and CI (no CUDA) does not build
// it — see README.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace rlhf::dist {

// `bootstrap` is the MPI world communicator of the same ranks; each rank uses CUDA device
// `device`. Collectives take device pointers and return when the result is in place.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device);

}  // namespace rlhf::dist
