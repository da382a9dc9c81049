// Command-line options of one subcommand: declared with a default and a help line, so that
// `--help` is generated, unknown or malformed flags are errors naming the flag, and every
// resolved value can be written to a run manifest.
//
// Recipes: every command accepts `--config recipe.yaml`, a flat YAML mapping of option names
// (underscores or dashes: learning_rate == learning-rate) to values; lists become
// comma-separated values. Command-line flags override the recipe, the recipe overrides the
// defaults; resolved() records where each value came from. Unknown keys, nested mappings and
// duplicate keys are errors naming the file, line and key.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "train/optimizer.h"
#include "train/run_log.h"

namespace rlhf::cli {

class Options {
 public:
  Options(std::string command, std::string summary);
  // Declares --name with a default value ("" for none) and help text. Flags are boolean
  // options given without a value (--tie) or as --tie=false.
  Options& add(const std::string& name, const std::string& def, const std::string& help);
  Options& flag(const std::string& name, const std::string& help);
  // A repeatable option (--reward A --reward B; a YAML list in a recipe). Its values may contain
  // commas. Command-line occurrences replace the recipe's list.
  Options& repeated(const std::string& name, const std::string& help);
  // Parses argv (after the subcommand). Returns false if --help was given (help printed).
  bool parse(int argc, char** argv);
  // InputError "rlhf <command>: --<name> is required" naming the first of `names` left empty.
  void require(std::initializer_list<const char*> names) const;

  std::string str(const std::string& name) const;
  int64_t integer(const std::string& name) const;   // InputError naming the flag if not an integer
  double number(const std::string& name) const;
  bool boolean(const std::string& name) const;
  std::vector<std::string> list(const std::string& name) const;  // a repeated option's values
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  bool declared(const std::string& name) const { return specs_.count(name) > 0; }
  nlohmann::json resolved() const;                  // every option and its value
  nlohmann::json provenance() const;                // option -> "default" | "<recipe>:<line>" | "command line"
  std::string help() const;
  const std::string& command() const { return command_; }

 private:
  struct Spec {
    std::string def, help;
    bool is_flag = false;
    bool is_list = false;
  };
  std::string command_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::map<std::string, bool> given_;
  std::map<std::string, std::string> source_;
  void load_recipe(const std::string& path);
};

// ---- Flags the training commands share: declared and read here once, so that their names,
// defaults and help cannot drift apart. (Flags whose help or default differs by command, such as
// --seed, are declared by the command.)

// --threads: CPU threads (0 = all cores); apply_threads sets OpenMP's number from it.
void declare_threads(Options& o);
// --backend: the kernels every model of the command runs on (kernels::registered_backends()).
void declare_backend(Options& o);
const kernels::Backend& backend_from(const Options& o);
void apply_threads(const Options& o);
// --dist-timeout: seconds a collective may wait under mpirun.
void declare_dist_timeout(Options& o);
// --learning-rate: the peak learning rate, with the command's default.
void declare_learning_rate(Options& o, const std::string& def);
// --adam-beta1 --adam-beta2 --adam-epsilon --max-grad-norm.
void declare_adam(Options& o);
// AdamW from --learning-rate, --adam-*, --weight-decay and --max-grad-norm.
AdamWConfig adamw_from(const Options& o);
// --save-steps --save-total-limit --resume.
void declare_checkpoints(Options& o);
CheckpointCadence checkpoints_from(const Options& o);

// The resolved options a resumed run must share with the run that wrote its checkpoint: all but
// --config, --resume, --threads and `free` (settings that may change between the two).
nlohmann::json resume_fingerprint(const Options& o, std::initializer_list<const char*> free);

// "a,b,,c" -> {"a", "b", "c"}: the comma-separated lists of loss names and weights.
std::vector<std::string> split_commas(const std::string& s);

}  // namespace rlhf::cli
