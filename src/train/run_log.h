// The output directory of a training run and its console: manifest.json, metrics.jsonl (one JSON
// object per line, flushed as written), samples.jsonl, rollouts.jsonl (the online commands'
// --save-rollouts), checkpoint-<step>/ at a fixed cadence, and progress lines. Under data
// parallelism only the lead rank (rank 0) writes or prints; the other ranks hold a RunLog too
// and call it the same way, so a loop has no rank branches for its output. What this leaves to the caller: the content of the manifest and of each record.
//
//   RunLog log(out_dir, comm.rank() == 0);
//   std::filesystem::create_directories(out_dir);
//   log.write_manifest(manifest);
//   log.start_metrics(kept_lines);          // after --resume: the lines of the steps kept
//   log.console() << "training ...\n";      // printed on the lead rank only
//   log.metrics({{"step", 1}, {"loss", 0.5}});
//   if (log.checkpoint_due(step, max_steps)) log.save_checkpoint(out_dir, model, opt, state);
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "train/optimizer.h"
#include "train/train_checkpoint.h"

namespace rlhf {

// Checkpoints every `every` steps (0: none) before the last step, keeping the newest `keep`
// (0: all).
struct CheckpointCadence {
  int64_t every = 0;
  int64_t keep = 0;
  bool due(int64_t step, int64_t max_steps) const { return every > 0 && step % every == 0 && step < max_steps; }
};

class RunLog {
 public:
  // `console` (stdout by default) is where the lead rank prints; progress lines redraw in place
  // when it is stdout on a terminal. The caller creates the directory when its run starts
  // writing (a run that fails on its input leaves none behind).
  RunLog(std::filesystem::path dir, bool lead, std::ostream& console = std::cout, CheckpointCadence cadence = {});
  RunLog(const RunLog&) = delete;
  ~RunLog();  // ends an open progress line, so that an error or a stop message starts a line
  RunLog& operator=(const RunLog&) = delete;

  bool lead() const { return lead_; }
  const std::filesystem::path& dir() const { return dir_; }
  // The console on the lead rank; a stream that drops everything on the others.
  std::ostream& console() { return lead_ ? console_ : sink_; }

  // <dir>/manifest.json, written atomically, pretty-printed with a final newline.
  void write_manifest(const nlohmann::json& manifest) const;
  // Truncates <dir>/metrics.jsonl and writes `kept` (the lines a resumed run keeps).
  void start_metrics(const std::vector<std::string>& kept = {});
  // Open <dir>/samples.jsonl and <dir>/rollouts.jsonl keeping the rows of steps up to
  // `resumed_step` (0: none, a fresh run; rewritten atomically, so a resumed run's file is the
  // uninterrupted run's).
  void start_samples(int64_t resumed_step);
  void start_rollouts(int64_t resumed_step);
  void metrics(const nlohmann::json& record);
  void samples(const std::vector<nlohmann::json>& rows);
  void rollouts(const std::vector<nlohmann::ordered_json>& rows);

  // A progress line: redrawn in place on a terminal, one line per call elsewhere.
  void progress(const std::string& line);
  // A line printed under the progress line (which it first clears on a terminal).
  void note(const std::string& line);
  // Ends the progress line on a terminal (after the loop).
  void end_progress();

  bool checkpoint_due(int64_t step, int64_t max_steps) const { return cadence_.due(step, max_steps); }
  // The lead rank writes <where>/checkpoint-<state.global_step> and prunes to the cadence's keep.
  void save_checkpoint(const std::filesystem::path& where, const Transformer& m, const AdamW& opt,
                       const TrainerState& state) const;

 private:
  std::filesystem::path dir_;
  bool lead_;
  std::ostream& console_;
  std::ostream sink_{nullptr};
  bool tty_;
  bool progress_open_ = false;  // a progress line is on the terminal without its newline
  CheckpointCadence cadence_;
  std::ofstream metrics_, samples_, rollouts_;
};

}  // namespace rlhf
