// rlhf bench: the built-in testbed benchmark (src/testbed/bench.h, docs/testbed.md).
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "tensor/error.h"
#include "testbed/bench.h"

namespace rlhf::cli {

int cmd_bench(int argc, char** argv) {
  Options o("bench",
            "The testbed benchmark: direct vs RL methods on procedural tasks with exact gold rewards and\n"
            "simulated annotators (no downloads). Writes OUT/results.json, OUT/report.html and per-run\n"
            "metrics; stages are cached in OUT/stages, so an interrupted bench resumes where it stopped.");
  o.add("profile", "quick", "quick (nano models, 3 seeds) | standard (micro, 3 seeds) | full (mini, 5 seeds) | mini (CI, 2 seeds)")
      .add("out", "bench-out", "output directory")
      .add("suites", "", "comma-separated subset of rq1,rq2,rq3,rq4,rq5,rq6,length,overopt,bandits (default: all)")
      .add("seeds", "", "comma-separated seeds (default: the profile's)")
      .add("jobs", "0", "stages run in parallel, one thread each (0: one per core)")
      .add("tuned", "", "a tuning record (OUT/tuned.json of --tune) whose configurations run next to the vanilla ones "
                        "(default: the profile's built-in one: bench/tuned/quick.json for quick and mini, "
                        "bench/tuned/standard.json for standard)")
      .flag("tune", "tune every method family alike on validation prompts, write OUT/tuned.json, and stop")
      .flag("predict", "measure the machine, print the plan and its predicted run time, and stop");
  if (!o.parse(argc, argv)) return 0;
  testbed::BenchOptions opt;
  opt.profile = o.str("profile");
  opt.out = o.str("out");
  opt.suites = split_commas(o.str("suites"));
  for (const auto& s : split_commas(o.str("seeds"))) {
    try {
      size_t used = 0;
      const long long v = std::stoll(s, &used);
      if (used != s.size() || v < 0) throw std::invalid_argument(s);
      opt.seeds.push_back(static_cast<uint64_t>(v));
    } catch (const std::exception&) {
      throw InputError("rlhf bench: --seeds: '" + s + "' is not a non-negative integer");
    }
  }
  opt.jobs = static_cast<int>(o.integer("jobs"));
  if (opt.jobs < 0) throw InputError("rlhf bench: --jobs must be >= 0");
  opt.predict_only = o.boolean("predict");
  opt.tune = o.boolean("tune");
  opt.tuned = o.str("tuned");
  opt.exe = std::filesystem::read_symlink("/proc/self/exe");
  opt.version = version();
  opt.command = "rlhf bench";
  for (int i = 0; i < argc; ++i) opt.command += std::string(" ") + argv[i];  // argv: the options after "bench"
  return testbed::run_bench(opt);
}

}  // namespace rlhf::cli
