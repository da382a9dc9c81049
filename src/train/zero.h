// ZeRO-1 (optimizer-state sharding) over a communicator: each rank keeps the AdamW moments of
// its contiguous 1/N of the flat parameter buffer, steps only those parameters, and all-gathers
// the updated weights. The arithmetic per parameter is unchanged, so the weights equal plain data
// parallelism's bit for bit; the moments take 1/N of the memory.
#pragma once

#include "dist/communicator.h"
#include "model/transformer.h"
#include "train/optimizer.h"

namespace rlhf {

// Keeps this rank's range of `opt`'s moments (opt must be unsharded, e.g. just built or loaded
// from a checkpoint).
void shard_optimizer(AdamW& opt, const Transformer& m, dist::Communicator& comm);

// After opt.step on a sharded optimizer: every rank gets every rank's updated parameters.
void gather_parameters(Transformer& m, const AdamW& opt, dist::Communicator& comm);

// After opt.step on a sharded optimizer: the whole update's report, the same on every rank, so
// that all stop together (each rank counted its own shard; the first slot named is the lowest
// rank's). Collective.
UpdateReport agree_on_update(const UpdateReport& mine, dist::Communicator& comm);

// The whole optimizer (all moments), assembled on every rank from the shards: what a checkpoint
// stores. Collective: every rank calls it.
AdamW gathered_optimizer(const AdamW& opt, const Transformer& m, dist::Communicator& comm);

}  // namespace rlhf
