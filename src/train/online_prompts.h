// The prompts of the sampling runs (the online methods, best-of-n, iterative DPO): a prompt-only
// JSONL file tokenized with the chat template's generation prompt, and each rank's share of them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "data/collate.h"
#include "data/records.h"
#include "dist/communicator.h"
#include "train/online_trainer.h"

namespace rlhf {

// The longest prompt that leaves room for a completion: `max_prompt_length` when positive, else
// the context minus `max_new_tokens`; at most context - 1 either way.
int64_t prompt_length_limit(int64_t max_prompt_length, int64_t context, int64_t max_new_tokens);

// Prompts of `path` up to `limit` tokens; longer (or empty) ones are dropped and counted in
// `dropped`. InputError when none is left.
std::vector<OnlinePrompt> load_online_prompts(const std::filesystem::path& path, const TextEncoder& enc,
                                              const ReadOptions& read, int64_t limit, int64_t* dropped);

// This rank's contiguous slice of n prompts (all of them without data parallelism).
std::vector<int64_t> rank_prompt_slice(int64_t n, const dist::Communicator* comm);

}  // namespace rlhf
