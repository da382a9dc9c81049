#include "train/shared_vocabulary.h"

#include "model/config.h"
#include "tensor/error.h"
#include "text/tokenizer.h"

namespace rlhf {

namespace fs = std::filesystem;

void require_shared_vocabulary(const fs::path& policy_dir, const fs::path& other_dir, const std::string& role) {
  std::error_code ec;
  if (fs::equivalent(policy_dir, other_dir, ec)) return;
  const std::string what = role + " " + other_dir.string() + ": ";
  const std::string why = "; its scores would be of other tokens than the policy's (" + policy_dir.string() + ")";
  if (!fs::exists(policy_dir / "tokenizer.json") || !fs::exists(other_dir / "tokenizer.json")) {
    const int64_t a = ModelConfig::load(policy_dir / "config.json").vocab_size;
    const int64_t b = ModelConfig::load(other_dir / "config.json").vocab_size;
    if (a != b)
      throw InputError(what + "vocab_size " + std::to_string(b) + ", the policy's is " + std::to_string(a) + why);
    return;
  }
  const Tokenizer mine = Tokenizer::load(policy_dir), theirs = Tokenizer::load(other_dir);
  if (mine.vocab_size() != theirs.vocab_size())
    throw InputError(what + "its tokenizer has " + std::to_string(theirs.vocab_size()) + " tokens, the policy's " +
                     std::to_string(mine.vocab_size()) + why);
  auto token = [](const Tokenizer& t, int32_t id) -> std::string {  // ids may have holes
    try {
      return t.id_to_token(id);
    } catch (const InputError&) {
      return "(no token)";
    }
  };
  for (int32_t id = 0; id < mine.vocab_size(); ++id) {
    const std::string a = token(mine, id), b = token(theirs, id);
    if (a != b)
      throw InputError(what + "its tokenizer differs at id " + std::to_string(id) + " ('" + b + "' there, '" + a +
                       "' in the policy's)" + why);
  }
}

}  // namespace rlhf
