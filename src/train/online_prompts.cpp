#include "train/online_prompts.h"

#include <algorithm>
#include <numeric>

#include "tensor/error.h"

namespace rlhf {

int64_t prompt_length_limit(int64_t max_prompt_length, int64_t context, int64_t max_new_tokens) {
  const int64_t limit = max_prompt_length > 0 ? max_prompt_length : context - max_new_tokens;
  return std::min(limit, context - 1);
}

std::vector<OnlinePrompt> load_online_prompts(const std::filesystem::path& path, const TextEncoder& enc,
                                              const ReadOptions& read, int64_t limit, int64_t* dropped) {
  ReadReport rep;
  std::vector<OnlinePrompt> out;
  *dropped = 0;
  for (PromptRecord& r : read_prompts(path, read, &rep)) {
    EncodeReport er;
    TokenizedExample ex = encode_example(enc, r.prompt, {}, {}, &er, r.line);
    if (ex.prompt.empty() || static_cast<int64_t>(ex.prompt.size()) > limit) {
      ++*dropped;
      continue;
    }
    out.push_back({std::move(r.prompt), std::move(ex.prompt), std::move(r.extra)});
  }
  if (out.empty())
    throw InputError(path.string() + ": no usable prompts (" + std::to_string(*dropped) + " longer than " +
                     std::to_string(limit) + " tokens)");
  return out;
}

std::vector<int64_t> rank_prompt_slice(int64_t n, const dist::Communicator* comm) {
  const int size = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  const std::vector<int64_t> range = dist::even_split(n, size);
  std::vector<int64_t> mine(range[rank + 1] - range[rank]);
  std::iota(mine.begin(), mine.end(), range[rank]);
  return mine;
}

}  // namespace rlhf
