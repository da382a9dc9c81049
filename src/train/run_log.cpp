#include "train/run_log.h"

#include <unistd.h>

#include "model/safetensors.h"
#include "tensor/error.h"

namespace rlhf {

namespace fs = std::filesystem;

RunLog::RunLog(fs::path dir, bool lead, std::ostream& console, CheckpointCadence cadence)
    : dir_(std::move(dir)),
      lead_(lead),
      console_(console),
      tty_(&console == &std::cout && isatty(STDOUT_FILENO)),
      cadence_(cadence) {}

void RunLog::write_manifest(const nlohmann::json& manifest) const {
  if (lead_) write_file_atomic(dir_ / "manifest.json", manifest.dump(2) + "\n");
}

static void open_or_throw(std::ofstream& f, const fs::path& path, std::ios::openmode mode) {
  f.open(path, mode);
  if (!f) throw IoError(path.string() + ": cannot open for writing");
}

void RunLog::start_metrics(const std::vector<std::string>& kept) {
  if (!lead_) return;
  open_or_throw(metrics_, dir_ / "metrics.jsonl", std::ios::trunc);
  for (const auto& line : kept) metrics_ << line << "\n";
}

// Rewrites a file of per-step rows to the rows of steps up to `resumed_step` (none for a fresh
// run: 0), atomically, then opens it for appending: a resumed run's file equals an
// uninterrupted run's.
static void restart_step_rows(const fs::path& path, int64_t resumed_step, std::ofstream& f) {
  std::string kept;
  if (resumed_step > 0)
    for (const std::string& line : lines_through_step(path, resumed_step)) kept += line + "\n";
  write_file_atomic(path, kept);
  open_or_throw(f, path, std::ios::app);
}

void RunLog::start_samples(int64_t resumed_step) {
  if (lead_) restart_step_rows(dir_ / "samples.jsonl", resumed_step, samples_);
}

void RunLog::start_rollouts(int64_t resumed_step) {
  if (lead_) restart_step_rows(dir_ / "rollouts.jsonl", resumed_step, rollouts_);
}

void RunLog::metrics(const nlohmann::json& record) {
  if (lead_) metrics_ << record.dump() << "\n" << std::flush;
}

template <class Json>
static void write_rows(std::ofstream& f, const std::vector<Json>& rows) {
  for (const auto& row : rows) f << row.dump() << "\n";
  f.flush();
}

void RunLog::samples(const std::vector<nlohmann::json>& rows) {
  if (lead_) write_rows(samples_, rows);
}

void RunLog::rollouts(const std::vector<nlohmann::ordered_json>& rows) {
  if (lead_) write_rows(rollouts_, rows);
}

RunLog::~RunLog() { end_progress(); }

void RunLog::progress(const std::string& line) {
  console() << (tty_ ? "\r" : "") << line << (tty_ ? "\033[K" : "\n") << std::flush;
  progress_open_ = tty_;
}

void RunLog::note(const std::string& line) {
  console() << (tty_ ? "\r\033[K" : "") << line << "\n";
  progress_open_ = false;
}

void RunLog::end_progress() {
  if (progress_open_) console() << "\n" << std::flush;
  progress_open_ = false;
}

void RunLog::save_checkpoint(const fs::path& where, const Transformer& m, const AdamW& opt,
                             const TrainerState& state) const {
  if (lead_) save_training_checkpoint(where, m, opt, state, cadence_.keep);
}

}  // namespace rlhf
