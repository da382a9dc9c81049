// Models that score the policy's token ids (the reference of DPO/KTO and of the online methods,
// a separate critic, eval's reference) must give each id the same meaning. A reference with
// another tokenizer would return log-probs of other tokens: plausible numbers, a wrong run.
#pragma once

#include <filesystem>
#include <string>

namespace rlhf {

// InputError naming `role` (e.g. "--ref-model") and the first id that differs, unless the model
// in `other_dir` shares the vocabulary of the one in `policy_dir`: the same token at every id of
// their tokenizer.json files (or, when either directory has none, the same vocab_size in
// config.json). The same directory passes at once.
void require_shared_vocabulary(const std::filesystem::path& policy_dir, const std::filesystem::path& other_dir,
                               const std::string& role);

}  // namespace rlhf
