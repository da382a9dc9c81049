#include "train/reference_cache.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <ostream>

#include "model/safetensors.h"
#include "tensor/error.h"
#include "train/offline_data.h"

namespace rlhf {

namespace fs = std::filesystem;

static fs::path reference_cache_path(const fs::path& out_dir) { return out_dir / "ref_logps.safetensors"; }

// The key a cache of `data` scored by the model in `ref_dir` must carry: the directory, the data,
// and the size and time of its config and weight files (a model saved again changes them).
static std::string reference_cache_key(const fs::path& ref_dir, const OfflineDataset& data) {
  std::string key = fs::absolute(ref_dir).string() + "|" + std::to_string(offline_data_fingerprint(data));
  std::vector<fs::path> files = {ref_dir / "config.json"};
  for (const auto& e : fs::directory_iterator(ref_dir))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin() + 1, files.end());
  for (const fs::path& f : files) {
    key += '|';
    key += f.filename().string();
    key += ':' + std::to_string(fs::file_size(f)) + ':' +
           std::to_string(fs::last_write_time(f).time_since_epoch().count());
  }
  return key;
}

static std::string values_crc(const std::vector<double>& v) {
  return std::to_string(crc32_z(0, reinterpret_cast<const Bytef*>(v.data()), v.size() * sizeof(double)));
}

// The cached values when the file carries `key` and one finite F64 value per sequence whose
// checksum matches; nullopt (said on `log` when the file is damaged) otherwise.
static std::optional<std::vector<double>> read_cache(const fs::path& cache, const std::string& key, size_t n,
                                                     std::ostream& log) {
  if (!fs::exists(cache)) return std::nullopt;
  std::vector<double> v(n);
  try {
    auto f = SafetensorsFile::open(cache);
    auto it = f->metadata().find("key");
    const TensorView* t = f->find("ref_logps");
    if (it == f->metadata().end() || it->second != key || !t || t->dtype != DType::F64 ||
        t->numel() != static_cast<int64_t>(n))
      return std::nullopt;
    std::memcpy(v.data(), t->data, n * sizeof(double));
    auto crc = f->metadata().find("crc32");
    if (crc == f->metadata().end() || crc->second != values_crc(v))
      throw InputError("the values do not match their checksum");
    for (double x : v)
      if (!std::isfinite(x)) throw InputError("a value is not finite");
  } catch (const InputError& e) {
    log << "reference log-probs: " << cache.string() << " is damaged (" << e.what() << "); recomputing\n";
    return std::nullopt;
  }
  return v;
}

std::vector<double> cached_reference_logps(const fs::path& out_dir, const fs::path& ref_dir,
                                           const OfflineDataset& data, const PackOptions& pack, std::ostream& log,
                                           const std::function<Transformer&()>& reference) {
  const std::string key = reference_cache_key(ref_dir, data);
  const fs::path cache = reference_cache_path(out_dir);
  if (auto cached = read_cache(cache, key, data.seqs.size(), log)) {
    log << "reference log-probs: cached in " << cache.string() << "\n";
    return *cached;
  }
  log << "reference log-probs: computing for " << data.seqs.size() << " sequences\n";
  std::vector<double> v = compute_reference_logps(reference(), data, pack);
  write_safetensors(cache, {{"ref_logps", DType::F64, {static_cast<int64_t>(v.size())}, v.data()}},
                    {{"key", key}, {"crc32", values_crc(v)}});
  return v;
}

}  // namespace rlhf
