// Data-parallel collectives behind one interface, on the field's engines: MPI for process
// launch and CPU collectives (Open MPI from Debian), NCCL for GPU buffers (not built yet).
//
// A run launched by `mpirun -np N` gets an MPI communicator; any other run a local one (one
// rank, collectives are no-ops), so single-process use needs no MPI runtime at all.
//
// Example (the offline loop):
//   Communicator& comm = world();
//   ... backward on this rank's share of the batch ...
//   comm.allreduce_sum(grads.data(), grads.size());   // then scale by 1 / comm.size()
//   if (comm.rank() == 0) write_metrics(...);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlhf::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In-place sums over every rank (same count on every rank).
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  // In place: rank r owns data[offsets[r], offsets[r + 1]); afterwards every rank has every
  // rank's range (offsets has size() + 1 entries, the same on every rank).
  virtual void allgather(float* data, const std::vector<int64_t>& offsets) = 0;
  // The same for doubles. The default goes through allreduce_sum (every other rank adds zeros,
  // which is exact); the MPI communicator gathers directly.
  virtual void allgather(double* data, const std::vector<int64_t>& offsets);
  virtual void barrier() = 0;
  // Stops every rank: prints `message` (prefixed with this rank) and exits with `code`.
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;
  virtual std::string name() const = 0;  // "local" | "mpi"
  // A collective that does not complete within `seconds` (a rank hung or died without the
  // launcher noticing) aborts every rank with a message naming this rank and `context` (e.g. the
  // step); 0 turns the watchdog off.
  virtual void set_timeout(double seconds) = 0;
  virtual void set_context(const std::string& context) = 0;
};

// The process's communicator, created on first use: MPI when the process was started by an
// MPI launcher (OMPI_COMM_WORLD_SIZE / PMI_SIZE in the environment), else local.
Communicator& world();

// `n` elements split into `parts` contiguous ranges of near-equal size: the part boundaries.
std::vector<int64_t> even_split(int64_t n, int parts);

// Every rank's `local` values concatenated in rank order (the counts may differ between ranks);
// `offsets`, when given, receives each rank's range (size() + 1 entries). Exact: values travel
// unchanged.
std::vector<double> allgather_concat(Communicator& comm, const std::vector<double>& local,
                                     std::vector<int64_t>* offsets = nullptr);

// Shuts MPI down cleanly (call once before a normal exit; a no-op for the local communicator).
void finalize();

}  // namespace rlhf::dist
