#include "dist/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>

#include "tensor/error.h"

namespace rlhf::dist {

namespace {

void cuda_check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw IoError(std::string("CUDA ") + what + ": " + cudaGetErrorString(rc));
}

void nccl_check(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw IoError(std::string("NCCL ") + what + ": " + ncclGetErrorString(rc));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, int device) : bootstrap_(bootstrap) {
    cuda_check(cudaSetDevice(device), "set device");
    ncclUniqueId id;
    if (bootstrap.rank() == 0) nccl_check(ncclGetUniqueId(&id), "unique id");
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
    nccl_check(ncclCommInitRank(&comm_, bootstrap.size(), id, bootstrap.rank()), "init");
    cuda_check(cudaStreamCreate(&stream_), "stream");
  }
  ~NcclCommunicator() override {
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return bootstrap_.rank(); }
  int size() const override { return bootstrap_.size(); }
  void allreduce_sum(float* data, int64_t n) override { reduce(data, n, ncclFloat32); }
  void allreduce_sum(double* data, int64_t n) override { reduce(data, n, ncclFloat64); }
  void allgather(float* data, const std::vector<int64_t>& offsets) override { gather(data, offsets, ncclFloat32); }
  // Overridden, not inherited: the base class's double all-gather zeroes host memory, and these
  // are device pointers.
  void allgather(double* data, const std::vector<int64_t>& offsets) override { gather(data, offsets, ncclFloat64); }
  void barrier() override { bootstrap_.barrier(); }
  [[noreturn]] void abort(const std::string& message, int code) override {
    ncclCommAbort(comm_);
    bootstrap_.abort(message, code);
    std::abort();  // not reached: the bootstrap's abort does not return
  }
  std::string name() const override { return "nccl"; }
  void set_timeout(double seconds) override { bootstrap_.set_timeout(seconds); }
  void set_context(const std::string& context) override { bootstrap_.set_context(context); }

 private:
  template <class T>
  void gather(T* data, const std::vector<int64_t>& offsets, ncclDataType_t type) {
    // NCCL's all-gather takes equal counts: ranges of different sizes go through group calls.
    nccl_check(ncclGroupStart(), "group");
    for (int r = 0; r < size(); ++r)
      nccl_check(ncclBroadcast(data + offsets[r], data + offsets[r], static_cast<size_t>(offsets[r + 1] - offsets[r]),
                               type, r, comm_, stream_),
                 "broadcast");
    nccl_check(ncclGroupEnd(), "group");
    cuda_check(cudaStreamSynchronize(stream_), "synchronize");
  }
  void reduce(void* data, int64_t n, ncclDataType_t type) {
    nccl_check(ncclAllReduce(data, data, static_cast<size_t>(n), type, ncclSum, comm_, stream_), "all-reduce");
    cuda_check(cudaStreamSynchronize(stream_), "synchronize");
  }
  Communicator& bootstrap_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device) {
  return std::make_unique<NcclCommunicator>(bootstrap, device);
}

}  // namespace rlhf::dist
