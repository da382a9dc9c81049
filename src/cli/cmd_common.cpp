// Not a command: what every command's run shares and only the rlhf binary knows (its version).
#include "cli/commands.h"

namespace rlhf::cli {

nlohmann::json run_manifest(const Options& o) {
  return {{"command", o.command()},
          {"version", RLHF_VERSION},
          {"git", RLHF_GIT_VERSION},
          {"options", o.resolved()},
          {"option_sources", o.provenance()}};
}

}  // namespace rlhf::cli
