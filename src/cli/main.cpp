// rlhf: the command-line entry point. Dispatches to subcommands and turns every exception into
// a one-line "error: ..." message with a non-zero exit code (2: bad input, 3: I/O, 4: numerics,
// 70: internal error).
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "dist/communicator.h"
#include "tensor/error.h"
#include "train/stop_signal.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  std::function<int(int, char**)> run;
  // Runs data-parallel under mpirun; the others on several ranks would each run the whole job
  // and write the same files, so they are refused there.
  bool data_parallel = false;
};

// The commands in --help order; the online methods' come from their registry.
std::vector<Command> commands() {
  std::vector<Command> c = {
    {"bench", "the testbed benchmark: every direct and RL method on tasks with exact gold rewards (no downloads)",
     rlhf::cli::cmd_bench},
    {"init-model", "create a randomly initialised model of any supported family in HF format",
     rlhf::cli::cmd_init_model},
    {"lm", "train a language model on token-id documents or generated data", rlhf::cli::cmd_lm, true},
    {"sft", "supervised fine-tuning on a TRL-format JSONL file", rlhf::cli::cmd_sft, true},
    {"rm", "train a reward model: Bradley-Terry on pairs, Plackett-Luce or K-wise on rankings", rlhf::cli::cmd_rm,
     true},
    {"dpo", "direct preference optimisation: DPO, IPO, cDPO, SimPO, ORPO, ... (--loss-type)", rlhf::cli::cmd_dpo, true},
    {"kto", "KTO on unpaired desirable/undesirable examples", rlhf::cli::cmd_kto, true},
    {"eval", "preference accuracy/AUC of a reward model and a policy's implicit reward", rlhf::cli::cmd_eval},
    {"generate", "sample completions for JSONL prompts with the chat template (KV cache)",
     rlhf::cli::cmd_generate},
  };
  for (const rlhf::online::MethodEntry& m : rlhf::online::registered_methods())
    c.push_back({m.command, m.summary, [&m](int argc, char** argv) { return rlhf::cli::cmd_online(m, argc, argv); },
                 true});
  c.insert(c.end(), {
    {"iterative-dpo", "rounds of sampling, labelling by a reward and offline DPO", rlhf::cli::cmd_iterative_dpo, true},
    {"best-of-n", "sample n, keep the best by a reward: the no-training baseline", rlhf::cli::cmd_best_of_n, true},
    {"data", "dataset tools: stats, clean, decontaminate, binarize, noise, pairs", rlhf::cli::cmd_data},
  });
  return c;
}
const std::vector<Command> kCommands = commands();

void print_help() {
  std::cout << "rlhf " << RLHF_VERSION << " — preference alignment on one engine (direct and RL methods)\n\n"
            << "usage: rlhf <command> [options]\n       rlhf <command> --help\n\ncommands:\n";
  for (const auto& c : kCommands) {
    std::string n = c.name;
    n.resize(14, ' ');
    std::cout << "  " << n << c.summary << "\n";
  }
  std::cout << "\noptions:\n  --version     print the version\n  --help        show this help\n";
}

}  // namespace

int main(int argc, char** argv) {
  // A bench stage (testbed/bench_stages.cpp names its pid here) ends with the bench that started
  // it: a killed bench must not leave its commands running.
  if (const char* bench = std::getenv("RLHF_BENCH_PID")) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (std::to_string(getppid()) != bench) return 1;  // the bench ended before the line above
    unsetenv("RLHF_BENCH_PID");
  }
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_help();
    return argc < 2 ? 1 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << "rlhf " << rlhf::cli::version() << "\n";
    return 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    // Under mpirun an error on any rank stops every rank (MPI_Abort), never a hang.
    auto fail = [](const std::string& message, int code) {
      if (rlhf::dist::world().size() > 1) rlhf::dist::world().abort(message, code);
      std::cerr << message << "\n";
      return code;
    };
    try {
      if (rlhf::dist::world().size() > 1 && !c.data_parallel)
        throw rlhf::InputError(std::string("rlhf ") + c.name +
                               " does not run data-parallel (lm, sft, rm, dpo, kto, the online methods, iterative-dpo "
                               "and best-of-n do); start it without mpirun");
      const int rc = c.run(argc - 2, argv + 2);
      rlhf::dist::finalize();
      return rc;
    } catch (const rlhf::StopRequested& e) {  // every rank stops after the same step
      std::cerr << e.what() << "\n";
      rlhf::dist::finalize();
      return 128 + e.signal;
    } catch (const rlhf::InputError& e) {
      return fail(std::string("error: ") + e.what(), 2);
    } catch (const rlhf::IoError& e) {
      return fail(std::string("error: ") + e.what(), 3);
    } catch (const rlhf::NumericError& e) {
      return fail(std::string("error: ") + e.what(), 4);
    } catch (const std::exception& e) {
      return fail(std::string("internal error: ") + e.what(), 70);
    }
  }
  std::cerr << "error: unknown command '" << argv[1] << "' (see rlhf --help)\n";
  return 2;
}
