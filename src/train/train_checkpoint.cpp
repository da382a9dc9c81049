#include "train/train_checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"

namespace rlhf {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "checkpoint-";
constexpr const char* kTmpPrefix = ".tmp-checkpoint-";

// CRC-32 and size of a whole file, streamed.
std::pair<uint32_t, int64_t> file_crc(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError(p.string() + ": cannot open for reading");
  std::vector<char> buf(1 << 20);
  uLong crc = crc32_z(0L, Z_NULL, 0);
  int64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<z_size_t>(got));
    size += got;
  }
  return {static_cast<uint32_t>(crc), size};
}

std::optional<int64_t> step_of(const fs::path& p, const std::string& prefix) {
  const std::string n = p.filename().string();
  if (!n.starts_with(prefix)) return std::nullopt;
  const std::string digits = n.substr(prefix.size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return std::stoll(digits);
}

nlohmann::json state_to_json(const TrainerState& s) {
  return {{"global_step", s.global_step}, {"fingerprint", s.fingerprint}, {"extra", s.extra},
          {"format", "rlhf.cpp trainer_state v2"}};
}

// A whole non-negative decimal number, or nullopt.
std::optional<int64_t> count_of(const std::string& text) {
  if (text.empty() || text.size() > 18 || !std::all_of(text.begin(), text.end(), ::isdigit)) return std::nullopt;
  return std::stoll(text);
}

}  // namespace

// AdamW's moments can overflow while the weights stay finite (an Inf second moment makes the
// update 0): such a state is never written, nor read back. Empty when every moment is finite.
static std::string non_finite_moments(const AdamW& opt) {
  for (auto [name, v] : {std::pair{"exp_avg", &opt.first_moment()}, std::pair{"exp_avg_sq", &opt.second_moment()}}) {
    const int64_t bad = count_non_finite(std::span<const float>(v->data(), v->size()));
    if (bad > 0) return std::to_string(bad) + " values of the optimizer's " + name + " are NaN or Inf";
  }
  return "";
}

fs::path checkpoint_dir(const fs::path& out_dir, int64_t step) { return out_dir / (kPrefix + std::to_string(step)); }

fs::path save_training_checkpoint(const fs::path& out_dir, const Transformer& m, const AdamW& opt,
                                  const TrainerState& state, int64_t keep_last) {
  const std::string step = std::to_string(state.global_step);
  const fs::path final_dir = checkpoint_dir(out_dir, state.global_step);
  const fs::path tmp = out_dir / (kTmpPrefix + step);
  require_finite_weights(m, final_dir);
  if (const std::string bad = non_finite_moments(opt); !bad.empty())
    throw NumericError("refusing to save " + final_dir.string() + ": " + bad + "; training diverged");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw IoError(out_dir.string() + ": cannot create directory: " + ec.message());
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) throw IoError(tmp.string() + ": cannot create directory: " + ec.message());
  try {
    write_model_files(m, tmp);
    const int64_t n = m.n_params();
    AdamW& o = const_cast<AdamW&>(opt);  // moments are read, not changed
    write_safetensors(tmp / "optimizer.safetensors",
                      {{"exp_avg", DType::F32, {n}, o.first_moment().data()},
                       {"exp_avg_sq", DType::F32, {n}, o.second_moment().data()}},
                      {{"step", std::to_string(opt.steps_taken())}});
    write_file_atomic(tmp / "trainer_state.json", state_to_json(state).dump() + "\n");
    nlohmann::json files = nlohmann::json::object();
    for (const auto& e : fs::directory_iterator(tmp)) {
      auto [crc, size] = file_crc(e.path());
      files[e.path().filename().string()] = {{"crc32", crc}, {"bytes", size}};
    }
    write_file_atomic(tmp / "manifest.json", nlohmann::json{{"files", files}, {"step", state.global_step}}.dump(2));
    fsync_directory(tmp);
    if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run of the same step replaces it
    fs::rename(tmp, final_dir);
    fsync_directory(out_dir);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw IoError(final_dir.string() + ": writing the checkpoint failed: " + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (keep_last > 0) {
    std::vector<std::pair<int64_t, fs::path>> all;
    for (const auto& e : fs::directory_iterator(out_dir))
      if (auto s = step_of(e.path(), kPrefix)) all.emplace_back(*s, e.path());
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i + keep_last < all.size(); ++i) fs::remove_all(all[i].second, ec);
  }
  return final_dir;
}

std::optional<fs::path> latest_checkpoint(const fs::path& out_dir) {
  if (!fs::is_directory(out_dir)) return std::nullopt;
  std::optional<std::pair<int64_t, fs::path>> best;
  std::vector<fs::path> abandoned;
  for (const auto& e : fs::directory_iterator(out_dir)) {
    if (step_of(e.path(), kTmpPrefix)) abandoned.push_back(e.path());
    if (auto s = step_of(e.path(), kPrefix); s && (!best || *s > best->first)) best = {{*s, e.path()}};
  }
  std::error_code ec;
  for (const auto& p : abandoned) fs::remove_all(p, ec);  // never committed: a crash mid-save
  if (!best) return std::nullopt;
  return best->second;
}

void load_training_checkpoint(const fs::path& dir, Transformer& m, AdamW& opt, TrainerState& state,
                              const nlohmann::json& expected) {
  // A copy: callers pass their own state.fingerprint, which loading overwrites.
  const nlohmann::json expected_fingerprint = expected;
  // Verify every file against the manifest before trusting any of them.
  const fs::path manifest_path = dir / "manifest.json";
  std::ifstream mf(manifest_path);
  if (!mf) throw InputError(manifest_path.string() + ": missing; the checkpoint is incomplete");
  nlohmann::json manifest;
  try {
    mf >> manifest;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(manifest_path.string() + ": not valid JSON: " + e.what());
  }
  if (!manifest.contains("files") || !manifest["files"].is_object())
    throw InputError(manifest_path.string() + ": no 'files' object");
  for (const auto& [name, info] : manifest["files"].items()) {
    const fs::path f = dir / name;
    if (!fs::exists(f)) throw InputError(f.string() + ": listed in the manifest but missing");
    auto [crc, size] = file_crc(f);
    if (size != info.value("bytes", int64_t{-1}))
      throw InputError(f.string() + ": size " + std::to_string(size) + " bytes, the manifest says " +
                       std::to_string(info.value("bytes", int64_t{-1})) + " (truncated or altered)");
    if (crc != info.value("crc32", uint32_t{0}))
      throw InputError(f.string() + ": checksum does not match the manifest (corrupted)");
  }
  for (const char* required : {"model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json"})
    if (!manifest["files"].contains(required))
      throw InputError(manifest_path.string() + ": does not list " + required);

  Transformer loaded = load_checkpoint(dir, m.heads());
  if (loaded.n_params() != m.n_params())
    throw InputError(dir.string() + ": the checkpoint's model has a different architecture from this run's");
  m.params() = loaded.params();

  auto of = SafetensorsFile::open(dir / "optimizer.safetensors");
  for (auto [name, dst] : {std::pair{"exp_avg", &opt.first_moment()}, std::pair{"exp_avg_sq", &opt.second_moment()}}) {
    const TensorView* t = of->find(name);
    if (!t || t->dtype != DType::F32 || t->numel() != m.n_params())
      throw InputError((dir / "optimizer.safetensors").string() + ": tensor '" + name + "' missing or of the wrong size");
    convert_to_f32(*t, dst->data(), of->path().string());
  }
  if (const std::string bad = non_finite_moments(opt); !bad.empty())
    throw InputError((dir / "optimizer.safetensors").string() + ": " + bad);
  const auto& meta = of->metadata();
  std::ifstream sf(dir / "trainer_state.json");
  nlohmann::json js;
  try {
    sf >> js;
    state.global_step = js.at("global_step").get<int64_t>();
    state.fingerprint = js.at("fingerprint");
    state.extra = js.at("extra");
  } catch (const nlohmann::json::exception& e) {
    throw InputError((dir / "trainer_state.json").string() + ": " + e.what());
  }
  if (step_of(dir, kPrefix) != state.global_step)
    throw InputError((dir / "trainer_state.json").string() + ": global_step " + std::to_string(state.global_step) +
                     " is not the step of its directory");
  auto it = meta.find("step");
  const std::optional<int64_t> taken = it == meta.end() ? std::nullopt : count_of(it->second);
  if (!taken)  // AdamW steps: the loop's steps times its updates per step (PPO's epochs and minibatches)
    throw InputError((dir / "optimizer.safetensors").string() + ": metadata 'step' must be a whole count" +
                     (it == meta.end() ? " (missing)" : ", got '" + it->second + "'"));
  opt.set_steps_taken(*taken);
  if (state.fingerprint != expected_fingerprint) {
    // Names each differing setting (one level into objects such as the command's options).
    std::string diff;
    auto compare = [&](const nlohmann::json& was, const nlohmann::json& now, const std::string& prefix, auto& self) -> void {
      for (const auto& [k, v] : now.items()) {
        const bool has = was.contains(k);
        if (has && was[k] == v) continue;
        if (has && was[k].is_object() && v.is_object() && prefix.empty()) {
          self(was[k], v, k + ".", self);
          continue;
        }
        diff += (diff.empty() ? "" : ", ") + prefix + k + " (checkpoint: " + (has ? was[k].dump() : "absent") +
                ", now: " + v.dump() + ")";
      }
      for (const auto& [k, v] : was.items())  // settings the checkpoint has and this run has not
        if (!now.contains(k)) diff += (diff.empty() ? "" : ", ") + prefix + k + " (checkpoint: " + v.dump() + ", now: absent)";
    };
    compare(state.fingerprint, expected_fingerprint, "", compare);
    throw InputError(dir.string() + ": cannot resume with different settings: " + diff);
  }
}

std::vector<std::string> resume_from_latest(const fs::path& out_dir, Transformer& m, AdamW& opt, TrainerState& state,
                                            const nlohmann::json& expected_fingerprint, int64_t max_steps,
                                            std::ostream& progress) {
  const auto ckpt = latest_checkpoint(out_dir);
  if (!ckpt) throw InputError(out_dir.string() + ": --resume given but no checkpoint-* directory there");
  load_training_checkpoint(*ckpt, m, opt, state, expected_fingerprint);
  if (state.global_step > max_steps)
    throw InputError(ckpt->string() + ": step " + std::to_string(state.global_step) + " is past the run's " +
                     std::to_string(max_steps) + " steps");
  progress << "resumed from " << ckpt->string() << " at step " << state.global_step << "\n";
  return lines_through_step(out_dir / "metrics.jsonl", state.global_step);
}

std::vector<std::string> lines_through_step(const fs::path& jsonl, int64_t step) {
  std::vector<std::string> kept;
  std::ifstream in(jsonl);
  for (std::string line; std::getline(in, line);) {
    // A line that does not parse is the torn tail of a killed run: dropped with the steps after.
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_object() && row.value("step", int64_t{0}) <= step) kept.push_back(line);
  }
  return kept;
}

}  // namespace rlhf
