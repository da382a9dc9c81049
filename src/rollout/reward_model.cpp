// The reward-model source: the scalar `score` head at the last token of prompt + completion,
// in packed batches without gradients (as compute_head_values does for `rlhf eval`).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include "data/collate_text.h"
#include "model/checkpoint.h"
#include "rollout/reward_sources.h"
#include "tensor/error.h"

namespace rlhf::rollout {

namespace {

namespace fs = std::filesystem;

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The policy's sampled ids mean the same to the reward model when both directories hold the same
// tokenizer.json and the same chat template and special tokens (other tokenizer_config.json
// fields, such as model_max_length, do not change tokens).
bool same_tokenizer(const fs::path& policy_dir, const fs::path& rm_dir, const Tokenizer& rm_tok) {
  if (policy_dir.empty() || !fs::exists(policy_dir / "tokenizer.json")) return false;
  if (file_bytes(policy_dir / "tokenizer.json") != file_bytes(rm_dir / "tokenizer.json")) return false;
  const Tokenizer pt = Tokenizer::load(policy_dir);
  return pt.chat_template() == rm_tok.chat_template() && pt.bos_token() == rm_tok.bos_token() &&
         pt.eos_token() == rm_tok.eos_token();
}

class ModelReward : public RewardSource {
 public:
  ModelReward(std::string spec, const fs::path& dir, const RewardContext& ctx, int64_t rows, int64_t max_length)
      : spec_(std::move(spec)), rm_(load_reward_model(dir)),
        rows_(rows), max_length_(max_length > 0 ? max_length : rm_.config().max_position_embeddings) {
    if (max_length_ < 2) throw InputError("reward '" + spec_ + "': max_length must be at least 2");
    rm_.set_backend(*ctx.backend);
    text_ = load_text_side(dir);
    policy_tokens_ = same_tokenizer(ctx.policy_dir, dir, text_->tok);
  }

  RewardResult score(const std::vector<RewardSample>& batch) override {
    RewardResult r;
    r.scores.assign(batch.size(), std::nan(""));
    std::vector<Sequence> seqs;
    std::vector<size_t> owner;  // sample of each sequence
    int64_t too_long = 0, too_short = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      std::vector<int32_t> toks = tokens(batch[i], i);
      if (static_cast<int64_t>(toks.size()) > max_length_) {
        ++too_long;
        continue;
      }
      if (toks.size() < 2) {  // the packer needs a token after the first
        ++too_short;
        continue;
      }
      for (int32_t t : toks)
        if (t < 0 || t >= rm_.config().vocab_size)
          throw InputError("reward '" + spec_ + "': sample " + std::to_string(i) + " has token id " +
                           std::to_string(t) + ", outside the reward model's vocabulary of " +
                           std::to_string(rm_.config().vocab_size));
      // prompt_len 0: every sequence has a last token to score, even an empty completion.
      seqs.push_back({std::move(toks), 0, static_cast<int64_t>(seqs.size()), 0});
      owner.push_back(i);
    }
    r.metrics.emplace_back("too_long", static_cast<double>(too_long));
    r.metrics.emplace_back("too_short", static_cast<double>(too_short));
    if (seqs.empty()) return r;

    int64_t longest = 0;
    for (const Sequence& s : seqs) longest = std::max(longest, s.size());
    PackOptions pack;
    pack.seq_len = longest;  // rows no longer than this call needs
    pack.max_rows = rows_;
    pack.head_at_last = true;
    const std::vector<CollatedBatch> cbs = pack_sequences(seqs, pack);
    int64_t max_b = 0, max_head = 0;
    for (const CollatedBatch& cb : cbs) {
      max_b = std::max(max_b, cb.batch.B);
      max_head = std::max(max_head, cb.batch.n_head());
    }
    // Kept between calls: a fresh one per call is fresh memory for every activation, whose page
    // faults cost half as much as the forward itself (online RL scores every step).
    if (!ws_ || ws_->max_B < max_b || ws_->max_T < longest || ws_->max_head < max_head)
      ws_ = std::make_unique<Workspace>(rm_.config(), max_b, longest, 0, max_head);
    size_t next = 0;
    for (const CollatedBatch& cb : cbs) {
      Batch b = cb.batch;
      b.scored.clear();  // no LM head: only the head is read
      const Scores sc = rm_.forward(b, *ws_);
      for (const SequenceSpan& sp : cb.spans) r.scores[owner[next++]] = sc.head[sp.head];
    }
    RLHF_CHECK(next == seqs.size(), "reward model: not every sequence was scored");
    return r;
  }

 private:
  // The reward model's tokens for a sample: the policy's ids, or the text re-tokenized as
  // `rlhf rm` tokenizes its training pairs.
  std::vector<int32_t> tokens(const RewardSample& s, size_t i) const {
    if (policy_tokens_ && !s.prompt_ids.empty()) {
      std::vector<int32_t> t = s.prompt_ids;
      t.insert(t.end(), s.completion_ids.begin(), s.completion_ids.end());
      return t;
    }
    Text completion;
    completion.is_chat = s.prompt.is_chat;
    if (s.prompt.is_chat)
      completion.messages = {{"assistant", s.completion}};
    else
      completion.text = s.completion;
    ExampleEncodeOptions eo;
    eo.eos = s.eos ? CompletionEos::standard_layout : CompletionEos::never;
    try {
      TokenizedExample ex = encode_example(text_->enc, s.prompt, {&completion}, eo, nullptr);
      std::vector<int32_t> t = std::move(ex.prompt);
      t.insert(t.end(), ex.completions[0].begin(), ex.completions[0].end());
      return t;
    } catch (const InputError& e) {
      throw InputError("reward '" + spec_ + "': sample " + std::to_string(i) + ": " + e.what());
    }
  }

  std::string spec_;
  Transformer rm_;
  int64_t rows_, max_length_;
  std::unique_ptr<TextSide> text_;
  bool policy_tokens_ = false;
  std::unique_ptr<Workspace> ws_;  // the forward's activations, grown when a call needs more
};

}  // namespace

std::unique_ptr<RewardSource> make_model_reward(const RewardSpec& spec, SpecOptions& opt, const RewardContext& ctx) {
  if (spec.arg.empty()) opt.fail("rm needs the reward model's directory after ':'");
  const double rows = opt.number("batch", 8), max_length = opt.number("max_length", 0);
  if (rows < 1 || rows != std::floor(rows)) opt.fail("batch must be a positive integer");
  if (max_length < 0 || max_length != std::floor(max_length)) opt.fail("max_length must be a non-negative integer");
  return std::make_unique<ModelReward>(spec.text, spec.arg, ctx, static_cast<int64_t>(rows),
                                       static_cast<int64_t>(max_length));
}

}  // namespace rlhf::rollout
