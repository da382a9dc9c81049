// The subcommands of `rlhf`. Each takes the arguments after its name and returns an exit code.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "cli/options.h"
#include "train/online/method.h"

namespace rlhf::cli {

int cmd_init_model(int argc, char** argv);
int cmd_lm(int argc, char** argv);
int cmd_data(int argc, char** argv);
int cmd_sft(int argc, char** argv);
int cmd_rm(int argc, char** argv);
int cmd_dpo(int argc, char** argv);
int cmd_kto(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_generate(int argc, char** argv);
// The online methods' subcommands, one per row of the registry (train/online/methods.cpp).
int cmd_online(const online::MethodEntry& method, int argc, char** argv);
int cmd_best_of_n(int argc, char** argv);
int cmd_iterative_dpo(int argc, char** argv);
int cmd_bench(int argc, char** argv);

// The tree the binary was built from, read at build time (cmake/version.cmake): "1d604b4",
// "1d604b4-dirty.3fa2c1d9" for uncommitted changes (a hash of them), "unknown" without git.
const char* git_version();
// "0.1.0 (1d604b4)": the project's version and git_version().
std::string version();

// The part of a run's manifest.json that every command writes: the command, the version and
// every resolved option with where its value came from.
nlohmann::json run_manifest(const Options& o);

}  // namespace rlhf::cli
