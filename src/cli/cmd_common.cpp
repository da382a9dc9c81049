// Not a command: what every command's run shares and only the rlhf binary knows (its version).
#include "cli/commands.h"

namespace rlhf::cli {

std::string version() { return std::string(RLHF_VERSION) + " (" + git_version() + ")"; }

nlohmann::json run_manifest(const Options& o) {
  return {{"command", o.command()},
          {"version", RLHF_VERSION},
          {"git", git_version()},
          {"options", o.resolved()},
          {"option_sources", o.provenance()}};
}

}  // namespace rlhf::cli
