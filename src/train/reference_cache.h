// Reference log-probs of an offline run, cached in <out>/ref_logps.safetensors so that a resumed
// or repeated run skips the reference forwards. The cache is an F64 tensor "ref_logps" (one value
// per sequence) with a metadata "key": the reference directory's absolute path, the data
// fingerprint (offline_data.h) and the modification time of its config.json. A cache whose key,
// dtype or length does not match is recomputed and overwritten, never used.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <vector>

#include "data/collate.h"
#include "kernels/kernels.h"
#include "train/offline_trainer.h"

namespace rlhf {

// The cache file of an output directory.
std::filesystem::path reference_cache_path(const std::filesystem::path& out_dir);

// The key a cache of `data` scored by the model in `ref_dir` must carry.
std::string reference_cache_key(const std::filesystem::path& ref_dir, const OfflineDataset& data);

// The cached log-probs when the cache in out_dir matches; else computed with the model in ref_dir
// and written to the cache (the model running on `backend`). Says which on `log`.
std::vector<double> cached_reference_logps(const std::filesystem::path& out_dir, const std::filesystem::path& ref_dir,
                                           const OfflineDataset& data, const PackOptions& pack, std::ostream& log,
                                           const kernels::Backend& backend = kernels::cpu_backend());

}  // namespace rlhf
