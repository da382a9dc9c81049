#include "train/best_of_n.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "train/online_prompts.h"

namespace rlhf {

namespace {

// Every rank's `text`, concatenated in rank order (each byte through the exact double all-gather).
std::string gather_text(dist::Communicator& comm, const std::string& text) {
  std::vector<double> bytes;
  for (unsigned char c : text) bytes.push_back(c);
  std::string out;
  for (double b : dist::allgather_concat(comm, bytes)) out += static_cast<char>(static_cast<unsigned char>(b));
  return out;
}

// How a sample ended, as rlhf generate reports it: its last token says.
const char* finish_reason(const Sequence& seq, const rollout::SamplingParams& sp) {
  const int32_t last = seq.tokens.back();
  const auto ends = [&](const std::vector<int32_t>& ids) { return std::count(ids.begin(), ids.end(), last) > 0; };
  return rollout::finish_reason_name(ends(sp.eos_ids)    ? rollout::FinishReason::eos
                                     : ends(sp.stop_ids) ? rollout::FinishReason::stop
                                                         : rollout::FinishReason::length);
}

}  // namespace

BestOfNResult best_of_n(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                        const Detokenize& detok, const BestOfNConfig& cfg) {
  const rollout::SamplingParams& sp = cfg.sampling;
  const std::vector<int64_t> which = rank_prompt_slice(static_cast<int64_t>(prompts.size()), cfg.comm);
  std::vector<uint64_t> seeds;
  for (int64_t p : which) seeds.push_back(prompt_seed(cfg.seed, 0, p));
  const ScoredSamples r = sample_and_score(policy, prompts, which, seeds, sp, cfg.generate_batch, reward, detok);
  BestOfNResult res;
  double best_sum = 0, mean_sum = 0;
  for (size_t p = 0; p < which.size(); ++p) {  // this rank's prompts; samples p * n + j
    int64_t best = -1;
    double sum = 0, cnt = 0;
    for (int64_t j = 0; j < sp.n; ++j) {
      const size_t i = p * sp.n + j;
      if (std::isnan(r.scores[i])) continue;
      sum += r.scores[i], cnt += 1;
      if (best < 0 || r.scores[i] > r.scores[p * sp.n + best]) best = j;
    }
    const Text& prompt = prompts[which[p]].prompt;
    nlohmann::ordered_json row = {{"prompt", prompt.is_chat ? nlohmann::json("(messages)") : nlohmann::json(prompt.text)}};
    if (best < 0) {
      row["completion"] = nullptr;
      row["score"] = nullptr;
    } else {
      const size_t i = p * sp.n + best;
      row["completion"] = r.completions[i];
      row["score"] = r.scores[i];
      row["mean_score"] = sum / cnt;
      row["finish_reason"] = finish_reason(r.seqs[i], sp);
      best_sum += r.scores[i], mean_sum += sum / cnt, ++res.scored;
    }
    res.jsonl += row.dump() + "\n";
  }
  if (cfg.comm && cfg.comm->size() > 1) {  // every rank's rows, in prompt order, and the sums
    res.jsonl = gather_text(*cfg.comm, res.jsonl);
    std::vector<double> sums = {best_sum, mean_sum, static_cast<double>(res.scored)};
    cfg.comm->allreduce_sum(sums.data(), 3);
    best_sum = sums[0], mean_sum = sums[1], res.scored = static_cast<int64_t>(sums[2]);
  }
  res.mean_best_score = res.scored ? best_sum / res.scored : 0.0;
  res.mean_score = res.scored ? mean_sum / res.scored : 0.0;
  return res;
}

}  // namespace rlhf
