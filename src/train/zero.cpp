#include "train/zero.h"

#include <algorithm>

#include "tensor/error.h"

namespace rlhf {

namespace {

std::vector<int64_t> ranges(const Transformer& m, dist::Communicator& comm) {
  return dist::even_split(m.n_params(), comm.size());
}

}  // namespace

void shard_optimizer(AdamW& opt, const Transformer& m, dist::Communicator& comm) {
  RLHF_CHECK(!opt.sharded(), "shard_optimizer: already sharded");
  const auto r = ranges(m, comm);
  opt.shard(r[comm.rank()], r[comm.rank() + 1]);
}

void gather_parameters(Transformer& m, const AdamW& opt, dist::Communicator& comm) {
  const auto r = ranges(m, comm);
  RLHF_CHECK(opt.shard_begin() == r[comm.rank()] && opt.shard_end() == r[comm.rank() + 1],
             "gather_parameters: the optimizer's shard is not this rank's range");
  comm.allgather(m.params().data(), r);
}

UpdateReport agree_on_update(const UpdateReport& mine, dist::Communicator& comm) {
  std::vector<double> all(2 * static_cast<size_t>(comm.size()), 0.0);  // per rank: count, first slot
  all[2 * comm.rank()] = static_cast<double>(mine.nonfinite);
  all[2 * comm.rank() + 1] = static_cast<double>(mine.first_slot);
  comm.allreduce_sum(all.data(), static_cast<int64_t>(all.size()));
  UpdateReport out;
  for (size_t r = 0; r < all.size(); r += 2) {
    if (all[r] > 0 && out.nonfinite == 0) out.first_slot = static_cast<int64_t>(all[r + 1]);
    out.nonfinite += static_cast<int64_t>(all[r]);
  }
  return out;
}

AdamW gathered_optimizer(const AdamW& opt, const Transformer& m, dist::Communicator& comm) {
  AdamW full(m, opt.config());
  full.set_steps_taken(opt.steps_taken());
  const auto r = ranges(m, comm);
  for (auto [from, to] : {std::pair{&opt.first_moment(), &full.first_moment()},
                          std::pair{&opt.second_moment(), &full.second_moment()}}) {
    std::copy(from->begin(), from->end(), to->begin() + opt.shard_begin());
    comm.allgather(to->data(), r);
  }
  return full;
}

}  // namespace rlhf
