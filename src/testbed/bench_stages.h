// Internal to the bench: running `rlhf` subcommands as cached stages, in parallel, and the
// per-(task, seed) world they share (docs/testbed.md §6: the base policy, preference data and reward
// models are built once and reused by every method).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "testbed/annotator.h"
#include "testbed/evaluate.h"
#include "testbed/task.h"
#include "text/tokenizer.h"

namespace rlhf::testbed {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// rq1's "+prompts" arm: unlabeled prompts per labeled train prompt (docs/testbed.md §7).
constexpr int kUnlabeledPromptsPerTrain = 4;

struct ModelPreset {
  std::string name;
  int layers, hidden, heads, ff, max_positions;
};

// Everything a profile fixes: sizes, step counts and sweeps.
struct Profile {
  std::string name;
  ModelPreset preset;
  std::vector<uint64_t> seeds;
  std::vector<std::string> suites;
  int lm_steps, sft_steps;          // base policy
  int train_prompts, test_prompts;  // per task
  int pref_samples;                 // base samples per train prompt (all pairs labelled)
  int eval_samples;                 // per test prompt
  int offline_epochs;               // DPO-family and RM epochs
  int rl_steps, rl_prompts;         // online runs: steps and prompts per step
  int checkpoints;                  // evaluations along each run (besides step 0)
  std::vector<double> dpo_betas, kl_coefs, agreements;
  std::vector<int> bon_ns;
  std::vector<int> ranking_ks;      // rq4's list lengths (at most pref_samples)
};

Profile make_profile(const std::string& name);

// Runs stages: each is a directory with a DONE marker and its key (key.json), what produced it:
// the binary's version, the stage's inputs and the keys of the upstream stages whose outputs the
// inputs name (docs/testbed.md §6). A stage is skipped when it is DONE under the current key; one
// without DONE (an interrupted bench) is recomputed, and so is one whose key changed, with a line
// on the terminal naming it and what changed. A stage's commands log to its log.txt.
class Stages {
 public:
  Stages(fs::path root, fs::path exe, int jobs, std::string version);  // root: absolute
  fs::path dir(const std::string& name) const { return root_ / "stages" / name; }
  // `inputs`: the `rlhf` commands the stage runs as {"rlhf": [ARGS...]} (or a list of them), or
  // for a stage computed in-process, what it reads and its parameters. Every path in it under
  // root/stages is an upstream stage's output: that stage must have been run first (else
  // std::logic_error), and its key becomes part of this one, so a changed upstream stage
  // recomputes this one too. `body` fills `dir` (created fresh). Returns the directory.
  // Thread-safe; the same stage asked twice concurrently runs once.
  fs::path stage(const std::string& name, const json& inputs, const std::function<void(const fs::path& dir)>& body);
  // The key `stage` compares and writes: {"version", "inputs" (paths relative to root), "upstream"}.
  json key(const std::string& name, const json& inputs) const;
  // Runs `rlhf ARGS` with one thread, output to `log`; throws naming the stage and log on failure.
  void rlhf(const std::vector<std::string>& args, const fs::path& log) const;
  // The command as a user runs it from the bench directory (paths relative to it).
  std::string command_line(const std::vector<std::string>& args) const;
  std::vector<std::string> relative(const std::vector<std::string>& args) const;
  // Runs the tasks on `jobs` threads (every task on its own thread when `all_at_once`); rethrows
  // the first failure after all have stopped. Nested calls share the job slots below.
  void parallel(const std::vector<std::function<void()>>& tasks, bool all_at_once = false) const;
  json timings() const;
  // Seconds that slots were held, summed over slots: over jobs × the wall time, how busy the
  // bench kept its cores.
  double busy_seconds() const;
  const fs::path& root() const { return root_; }
  int jobs() const { return jobs_; }

  // One of `jobs` slots, held by every command and in-process evaluation: any number of suites
  // may run at once while no more than `jobs` cores work. Slots are granted first come, first
  // served, except that a stage which has already held one (a run's evaluations after its
  // training) goes before stages not yet started: started work finishes first, so little is lost
  // to an interruption and what waits on it can start. Once a task has failed, waiting for a slot
  // throws Cancelled. Never wait for a slot while holding a lock that a slot holder may wait for.
  class Slot {
   public:
    explicit Slot(const Stages& stages);
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    const Stages& stages_;
    std::chrono::steady_clock::time_point since_;
  };
  // What the tasks still waiting for a slot throw after another task failed.
  struct Cancelled : std::runtime_error {
    Cancelled() : std::runtime_error("cancelled after another stage failed") {}
  };

 private:
  json relative_paths(const json& inputs) const;  // relative() of every string in it

  fs::path root_, exe_;
  int jobs_;
  std::string version_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::once_flag>> once_;
  std::map<std::string, std::string> digests_;  // by stage name: the hash of its key, once it is done
  json timings_ = json::array();
  mutable std::mutex slot_mu_;
  mutable std::condition_variable slot_cv_;
  mutable int free_slots_;
  mutable uint64_t next_ticket_[2] = {0, 0}, admitted_[2] = {0, 0};  // [0]: new stages, [1]: started
  mutable bool failed_ = false;
  mutable double busy_seconds_ = 0;
};

// One sampled response of the base policy with what annotators see of it.
struct BaseSample {
  int prompt = 0;
  std::string completion;  // decoded, without EOS
  bool eos = false;
  double gold = 0;
  int length = 0;
  AnnotatedItem item() const;
};

// A task at one seed: its files, its base policy and the data built from it.
class World {
 public:
  World(Stages& stages, const Profile& profile, std::string task, uint64_t seed, uint64_t world_seed);
  const Task& task() const { return *task_; }
  const std::string& name() const { return name_; }
  uint64_t seed() const { return seed_; }
  const Profile& profile() const { return profile_; }
  Stages& stages() { return stages_; }
  std::string key() const;  // "valence/seed=1"

  fs::path data_dir();   // tokenizer, prompts, corpora
  // The base policy's LM and SFT steps: the profile's, scaled per task toward docs/testbed.md §9's
  // imperfect base (Valence gold ≈ 0.5, Verify pass@1 0.3–0.6, Lists mostly well-formed).
  std::pair<int, int> base_steps() const;
  fs::path base();       // the SFT policy = π_ref of every method
  fs::path prompts(Split split);
  // The train prompts followed by kUnlabeledPromptsPerTrain times as many unlabeled ones, drawn
  // as train prompts and outside the train, test and val files: what only a method that scores
  // its own samples (an RM + RL) can use (rq1's "+prompts" arm).
  fs::path train_plus_unlabeled_prompts();
  const std::vector<std::string>& prompt_texts(Split split);
  // The base policy's pref_samples samples per train prompt, with gold rewards, and their file.
  const std::vector<BaseSample>& samples();
  fs::path samples_file();
  // The annotator (calibrated on base-sample pairs), its pairwise labels of all pairs of each
  // prompt's samples, and a Bradley–Terry reward model trained on them.
  const Annotator& annotator(const std::string& preset);
  fs::path prefs(const std::string& preset);
  // `member` > 0: another member of an ensemble, trained the same way with seed + 1000 x member
  // (its score head's initialisation and the order of its batches differ).
  fs::path reward_model(const std::string& preset, const std::string& loss = "bradley_terry", int member = 0);
  fs::path ranked(const std::string& preset);  // Plackett–Luce rankings of each prompt's samples
  fs::path unpaired(const std::string& preset);  // the pairs as KTO rows: chosen desirable, rejected not
  int64_t n_pairs();  // every annotator labels the same pairs
  std::string gold_spec(const std::string& options = "") const;

  // Evaluation against the base policy on the test split; the baseline samples and the base
  // policy's own evaluation (per proxy reward model) are computed once per world.
  EvalSetup eval_setup(Split split = Split::test);
  json evaluate(const fs::path& model_dir, const fs::path& proxy_rm, Split split = Split::test);
  json evaluate_base(const fs::path& proxy_rm, Split split = Split::test);
  const EvalBaseline& baseline(Split split = Split::test);
  const std::map<std::string, std::unique_ptr<Annotator>>& annotators() const { return annotators_; }

 private:
  std::vector<std::string> unseen_prompts(int stream, int wanted, const std::set<std::string>& taken, bool distinct,
                                          const std::string& what);
  json annotation_inputs(const std::string& annotator);  // the key's inputs of prefs() and ranked()

  Stages& stages_;
  const Profile& profile_;
  std::string name_;
  uint64_t seed_, world_seed_;
  std::unique_ptr<Task> task_;
  std::mutex mu_;
  std::map<Split, std::vector<std::string>> prompt_texts_;
  std::vector<BaseSample> samples_;
  std::map<std::string, std::unique_ptr<Annotator>> annotators_;
  std::map<Split, std::unique_ptr<EvalBaseline>> baselines_;
  std::map<std::pair<Split, std::string>, json> base_evals_;  // by split and proxy RM directory
  std::mutex base_eval_mu_;  // held while a base evaluation is computed, so each is computed once
  std::unique_ptr<Tokenizer> tok_;
};

// Every row of a JSONL file (InputError naming the file and line for one that is not JSON).
std::vector<json> read_jsonl(const fs::path& path);
// A JSON file (InputError naming the file when it is missing or not JSON).
json read_json(const fs::path& path);
// A number as a command-line argument or a run-id part ("0.1", "1e-4").
std::string arg(double x);
// x, or null when it is not finite (results.json has no NaN).
json finite_or_null(double x);
// Per-prompt or per-pair values for results.json, rounded to 1e-5 (they are means of a few samples;
// the rounding keeps the file small), non-finite ones as null.
json per_unit(const std::vector<double>& values);

}  // namespace rlhf::testbed
