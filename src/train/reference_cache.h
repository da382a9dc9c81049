// Reference log-probs of an offline run, cached in <out>/ref_logps.safetensors so that a resumed
// or repeated run skips the reference forwards. The cache is an F64 tensor "ref_logps" (one value
// per sequence) with metadata "key" (the reference directory's absolute path, the data
// fingerprint of offline_data.h, and the size and modification time of its config.json and
// weight files) and "crc32" (of the values). A cache whose key, dtype or length does not match,
// or that is damaged (unreadable, a checksum that does not match, a non-finite value), is
// recomputed and overwritten, never used.
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <vector>

#include "data/collate.h"
#include "train/offline_trainer.h"

namespace rlhf {

// The cached log-probs when the cache in out_dir matches the model in ref_dir and `data`; else
// computed with `reference()` (the model in ref_dir, asked for only then) and written to the
// cache. Says which on `log`.
std::vector<double> cached_reference_logps(const std::filesystem::path& out_dir, const std::filesystem::path& ref_dir,
                                           const OfflineDataset& data, const PackOptions& pack, std::ostream& log,
                                           const std::function<Transformer&()>& reference);

}  // namespace rlhf
