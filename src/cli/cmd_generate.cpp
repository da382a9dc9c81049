// rlhf generate: sample completions for JSONL prompts (work in progress, see issue 5).
#include "cli/commands.h"
#include "cli/options.h"
#include "tensor/error.h"

namespace rlhf::cli {

int cmd_generate(int argc, char** argv) {
  Options o("generate", "sample completions for JSONL prompts with the chat template (KV cache)");
  if (!o.parse(argc, argv)) return 0;
  throw InputError("rlhf generate: not built yet");
}

}  // namespace rlhf::cli
