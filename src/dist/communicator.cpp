#include "dist/communicator.h"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include "tensor/error.h"

namespace rlhf::dist {

namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void allgather(float*, const std::vector<int64_t>&) override {}
  void allgather(double*, const std::vector<int64_t>&) override {}
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::exit(code);
  }
  std::string name() const override { return "local"; }
  void set_timeout(double) override {}
  void set_context(const std::string&) override {}
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    watchdog_ = std::thread([this] { watch(); });
  }
  ~MpiCommunicator() override { stop_watchdog(); }
  void set_timeout(double seconds) override { timeout_ = seconds; }
  void set_context(const std::string& context) override {
    std::lock_guard<std::mutex> lock(mu_);
    context_ = context;
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* data, int64_t n) override { reduce(data, n, MPI_FLOAT); }
  void allreduce_sum(double* data, int64_t n) override { reduce(data, n, MPI_DOUBLE); }
  void allgather(float* data, const std::vector<int64_t>& offsets) override {
    gather(data, offsets, MPI_FLOAT, "all-gather");
  }
  void barrier() override {
    busy_since_ = now();
    check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
    busy_since_ = 0;
  }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
  }
  void allgather(double* data, const std::vector<int64_t>& offsets) override {
    gather(data, offsets, MPI_DOUBLE, "all-gather");
  }
  std::string name() const override { return "mpi"; }
  void finalize() {
    stop_watchdog();
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }

 private:
  // The watchdog thread makes no MPI call (MPI_THREAD_FUNNELED): it exits the process, and the
  // launcher then stops every other rank.
  void watch() {
    while (!stopping_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const double since = busy_since_;
      if (since <= 0 || timeout_ <= 0 || now() - since < timeout_) continue;
      std::string context;
      {
        std::lock_guard<std::mutex> lock(mu_);
        context = context_;
      }
      std::fprintf(stderr,
                   "rank %d: a collective did not complete in %.0f s%s%s: another rank is hung or dead; "
                   "stopping every rank\n",
                   rank_, timeout_.load(), context.empty() ? "" : " at ", context.c_str());
      std::fflush(stderr);
      std::_Exit(5);
    }
  }
  void stop_watchdog() {
    stopping_ = true;
    if (watchdog_.joinable()) watchdog_.join();
  }
  static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  void gather(void* data, const std::vector<int64_t>& offsets, MPI_Datatype type, const char* what) {
    RLHF_CHECK(static_cast<int>(offsets.size()) == size_ + 1, "all-gather: one range per rank");
    std::vector<int> counts(size_), displs(size_);
    for (int r = 0; r < size_; ++r) {
      RLHF_CHECK(offsets[r + 1] - offsets[r] < (int64_t(1) << 31) && offsets[r] < (int64_t(1) << 31),
                 "all-gather: ranges beyond 2^31 elements");
      counts[r] = static_cast<int>(offsets[r + 1] - offsets[r]);
      displs[r] = static_cast<int>(offsets[r]);
    }
    busy_since_ = now();
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(), type, MPI_COMM_WORLD),
          what);
    busy_since_ = 0;
  }

  // MPI counts are int: large buffers go in slices.
  void reduce(void* data, int64_t n, MPI_Datatype type) {
    busy_since_ = now();
    const int64_t kSlice = int64_t(1) << 30;
    int bytes = 0;
    MPI_Type_size(type, &bytes);
    for (int64_t off = 0; off < n; off += kSlice) {
      const int count = static_cast<int>(std::min(kSlice, n - off));
      check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + off * bytes, count, type, MPI_SUM, MPI_COMM_WORLD),
            "all-reduce");
    }
    busy_since_ = 0;
  }
  void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) throw IoError("rank " + std::to_string(rank_) + ": MPI " + what + " failed (code " + std::to_string(rc) + ")");
  }
  int rank_ = 0, size_ = 1;
  std::thread watchdog_;
  std::atomic<bool> stopping_{false};
  std::atomic<double> busy_since_{0}, timeout_{1800};
  std::mutex mu_;
  std::string context_;
};

bool launched_by_mpi() { return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE"); }

std::unique_ptr<Communicator>& instance() {
  static std::unique_ptr<Communicator> comm;
  return comm;
}

}  // namespace

Communicator& world() {
  auto& c = instance();
  if (!c) {
    if (launched_by_mpi()) c = std::make_unique<MpiCommunicator>();
    else c = std::make_unique<LocalCommunicator>();
  }
  return *c;
}

void Communicator::allgather(double* data, const std::vector<int64_t>& offsets) {
  RLHF_CHECK(static_cast<int>(offsets.size()) == size() + 1, "all-gather: one range per rank");
  std::fill(data, data + offsets[rank()], 0.0);
  std::fill(data + offsets[rank() + 1], data + offsets.back(), 0.0);
  allreduce_sum(data, offsets.back());
}

std::vector<double> allgather_concat(Communicator& comm, const std::vector<double>& local, std::vector<int64_t>* offsets) {
  std::vector<double> counts(comm.size(), 0.0);
  counts[comm.rank()] = static_cast<double>(local.size());
  comm.allreduce_sum(counts.data(), comm.size());
  std::vector<int64_t> off(comm.size() + 1, 0);
  for (int r = 0; r < comm.size(); ++r) off[r + 1] = off[r] + static_cast<int64_t>(counts[r]);
  std::vector<double> all(off.back(), 0.0);
  std::copy(local.begin(), local.end(), all.begin() + off[comm.rank()]);
  comm.allgather(all.data(), off);
  if (offsets) *offsets = std::move(off);
  return all;
}

std::vector<int64_t> even_split(int64_t n, int parts) {
  std::vector<int64_t> off(parts + 1);
  for (int r = 0; r <= parts; ++r) off[r] = n * r / parts;
  return off;
}

void finalize() {
  auto& c = instance();
  if (auto* m = dynamic_cast<MpiCommunicator*>(c.get())) m->finalize();
}

}  // namespace rlhf::dist
