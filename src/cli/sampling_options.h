// The sampling options every sampling command shares (generate, the online methods, best-of-n,
// iterative DPO): declared once, read once, with the model's EOS ids.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cli/options.h"
#include "data/collate.h"
#include "rollout/sampler.h"

namespace rlhf::cli {

// --temperature --top-k --top-p --min-p --max-new-tokens, with these defaults.
void declare_sampling(Options& o, const std::string& temperature, const std::string& max_new_tokens);

// Those options as SamplingParams with n samples per prompt and `eos` as the end tokens;
// validated (InputError naming the bad value).
rollout::SamplingParams sampling_from(const Options& o, int64_t n, std::vector<int32_t> eos);

// EOS ids: the tokenizer's, and those of generation_config.json (else config.json), which may
// list several (chat models end turns with a token other than the base model's EOS).
std::vector<int32_t> eos_ids(const std::filesystem::path& model_dir, const TextEncoder& enc);

}  // namespace rlhf::cli
