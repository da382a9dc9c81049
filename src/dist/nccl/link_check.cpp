// Links the NCCL communicator into a program (the build's check that it compiles and links
// against CUDA and NCCL) and reports what this machine offers. Runs anywhere: without a GPU it
// says so and exits 0; it never creates a communicator.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>

#include "dist/nccl/nccl_communicator.h"

int main() {
  int devices = 0;
  const cudaError_t rc = cudaGetDeviceCount(&devices);
  int version = 0;
  ncclGetVersion(&version);
  std::printf("NCCL %d, CUDA devices: %d%s\n", version, rc == cudaSuccess ? devices : 0,
              rc == cudaSuccess ? "" : " (no usable CUDA driver)");
  // Referenced so that the communicator is linked, not only compiled.
  return &rlhf::dist::make_nccl_communicator != nullptr ? 0 : 1;
}
