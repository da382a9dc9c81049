#include "train/reference_cache.h"

#include <cstring>
#include <optional>
#include <ostream>

#include "model/safetensors.h"
#include "train/offline_data.h"

namespace rlhf {

namespace fs = std::filesystem;

static fs::path reference_cache_path(const fs::path& out_dir) { return out_dir / "ref_logps.safetensors"; }

// The key a cache of `data` scored by the model in `ref_dir` must carry.
static std::string reference_cache_key(const fs::path& ref_dir, const OfflineDataset& data) {
  return fs::absolute(ref_dir).string() + "|" + std::to_string(offline_data_fingerprint(data)) + "|" +
         std::to_string(fs::last_write_time(ref_dir / "config.json").time_since_epoch().count());
}

// The cached values when the file carries `key` and one F64 value per sequence.
static std::optional<std::vector<double>> read_cache(const fs::path& cache, const std::string& key, size_t n) {
  if (!fs::exists(cache)) return std::nullopt;
  auto f = SafetensorsFile::open(cache);
  auto it = f->metadata().find("key");
  const TensorView* t = f->find("ref_logps");
  if (it == f->metadata().end() || it->second != key || !t || t->dtype != DType::F64 ||
      t->numel() != static_cast<int64_t>(n))
    return std::nullopt;
  std::vector<double> v(n);
  std::memcpy(v.data(), t->data, n * sizeof(double));
  return v;
}

std::vector<double> cached_reference_logps(const fs::path& out_dir, const fs::path& ref_dir,
                                           const OfflineDataset& data, const PackOptions& pack, std::ostream& log,
                                           const std::function<Transformer&()>& reference) {
  const std::string key = reference_cache_key(ref_dir, data);
  const fs::path cache = reference_cache_path(out_dir);
  if (auto cached = read_cache(cache, key, data.seqs.size())) {
    log << "reference log-probs: cached in " << cache.string() << "\n";
    return *cached;
  }
  log << "reference log-probs: computing for " << data.seqs.size() << " sequences\n";
  std::vector<double> v = compute_reference_logps(reference(), data, pack);
  write_safetensors(cache, {{"ref_logps", DType::F64, {static_cast<int64_t>(v.size())}, v.data()}}, {{"key", key}});
  return v;
}

}  // namespace rlhf
