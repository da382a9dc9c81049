// `rlhf bench`: the testbed benchmark (docs/testbed.md). Builds each task's world, base policy,
// preference data and reward models as cached stages, trains every method of every suite by
// running the `rlhf` executable's own subcommands (the normal CLI code paths), evaluates each
// run's checkpoints against the base policy, and writes results.json, report.html and a summary.
//
// Example:
//   BenchOptions opt{.profile = "quick", .out = "bench-out", .exe = "/usr/local/bin/rlhf"};
//   run_bench(opt);
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rlhf::testbed {

struct BenchOptions {
  std::string profile = "quick";             // quick | standard | full | mini (CI)
  std::filesystem::path out = "bench-out";
  std::filesystem::path exe;                 // the rlhf executable that runs each stage
  std::vector<std::string> suites;           // empty: all of the profile's
  std::vector<uint64_t> seeds;               // empty: the profile's
  uint64_t world_seed = 1;
  int jobs = 0;                              // parallel single-threaded stages (0: cores)
  bool predict_only = false;                 // measure the machine, print the plan and predicted time, stop
  bool tune = false;                         // run the tuning search (testbed/tuning.h), write OUT/tuned.json, stop
  std::string tuned;                         // a tuning record to run next to vanilla (empty: the built-in one)
  std::string version;                       // written into results.json
  std::string command;                       // the command line, written into results.json
};

// Returns the process exit code (0 when every stage ran; failures throw with the stage's log).
int run_bench(const BenchOptions& opt);

}  // namespace rlhf::testbed
