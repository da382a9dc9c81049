#include "train/iterative_dpo.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include "tensor/error.h"
#include "train/online_prompts.h"

namespace rlhf {

namespace {

// Replaces this rank's sequences and scores by every rank's, in rank order (token ids and lengths
// travel exactly through the double all-gather).
void gather_samples(dist::Communicator& comm, ScoredSamples& ss) {
  std::vector<double> lengths, prompt_lens, tokens;
  for (const Sequence& s : ss.seqs) {
    lengths.push_back(static_cast<double>(s.tokens.size()));
    prompt_lens.push_back(static_cast<double>(s.prompt_len));
    tokens.insert(tokens.end(), s.tokens.begin(), s.tokens.end());
  }
  lengths = dist::allgather_concat(comm, lengths);
  prompt_lens = dist::allgather_concat(comm, prompt_lens);
  tokens = dist::allgather_concat(comm, tokens);
  ss.scores = dist::allgather_concat(comm, ss.scores);
  ss.seqs.assign(lengths.size(), Sequence{});
  size_t at = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const size_t len = static_cast<size_t>(lengths[i]);
    ss.seqs[i].tokens.assign(tokens.begin() + at, tokens.begin() + at + len);
    ss.seqs[i].prompt_len = static_cast<int64_t>(prompt_lens[i]);
    ss.seqs[i].group = static_cast<int64_t>(i);
    at += len;
  }
  ss.prompt.clear();
  ss.completions.clear();
}

}  // namespace

void IterativeDpoConfig::validate() const {
  if (sampling.n < 2) throw InputError("iterative DPO needs at least 2 samples per prompt (best vs worst)");
  if (train.groups_per_micro_batch <= 0) throw InputError("iterative DPO: the batch size must be positive");
  if (prompts_per_round < 0)
    throw InputError("iterative DPO: prompts per round must be 0 (all) or positive, got " + std::to_string(prompts_per_round));
  objective::pairwise_loss(losses, {}, pair);  // names and parameters
}

OfflineDataset best_worst_pairs(const ScoredSamples& ss, int64_t n_prompts, int64_t n, double min_score_gap) {
  OfflineDataset data;
  for (int64_t p = 0; p < n_prompts; ++p) {
    int64_t best = -1, worst = -1;
    for (int64_t j = 0; j < n; ++j) {
      const double v = ss.scores[p * n + j];
      if (std::isnan(v)) continue;
      if (best < 0 || v > ss.scores[p * n + best]) best = j;
      if (worst < 0 || v < ss.scores[p * n + worst]) worst = j;
    }
    if (best < 0 || ss.scores[p * n + best] - ss.scores[p * n + worst] <= min_score_gap) continue;
    const int64_t g = data.n_groups();
    for (int k = 0; k < 2; ++k) {
      Sequence seq = ss.seqs[p * n + (k == 0 ? best : worst)];
      seq.group = g;
      seq.index = k;
      data.seqs.push_back(std::move(seq));
    }
  }
  return data;
}

void train_iterative_dpo(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                         const Detokenize& detok, const IterativeDpoConfig& cfg, std::ostream& progress,
                         const IterativeDpoRoundHook& on_round) {
  cfg.validate();
  dist::Communicator* comm = cfg.train.comm;
  const int64_t n = cfg.sampling.n, all_prompts = static_cast<int64_t>(prompts.size());
  if (cfg.prompts_per_round > all_prompts)
    throw InputError("iterative DPO: " + std::to_string(cfg.prompts_per_round) + " prompts per round exceed the " +
                     std::to_string(all_prompts) + " prompts");
  const int64_t n_prompts = cfg.prompts_per_round > 0 ? cfg.prompts_per_round : all_prompts;
  Transformer ref = policy;
  AdamW opt(policy, cfg.train.adam);
  OfflineConfig oc = cfg.train;
  const std::vector<int64_t> slice = rank_prompt_slice(n_prompts, comm);  // positions in the round's prompts
  int64_t global_step = 0;
  for (int64_t round = 0; round < cfg.rounds; ++round) {
    std::vector<int64_t> mine;
    std::vector<uint64_t> seeds;
    for (int64_t i : slice) {
      const int64_t p = all_prompts ? (round * n_prompts + i) % all_prompts : i;
      mine.push_back(p);
      seeds.push_back(prompt_seed(cfg.seed, round, p));
    }
    ScoredSamples ss = sample_and_score(policy, prompts, mine, seeds, cfg.sampling, cfg.generate_batch, reward, detok, comm);
    if (comm && comm->size() > 1) gather_samples(*comm, ss);  // every rank's, in prompt order
    const OfflineDataset data = best_worst_pairs(ss, n_prompts, n, cfg.min_score_gap);
    nlohmann::json rec = {{"round", round + 1}, {"pairs", data.n_groups()}};
    for (const auto& [k, v] : ss.metrics) rec[k] = v;
    progress << "round " << round + 1 << ": mean score " << ss.metrics.at("objective/scores") << ", "
             << data.n_groups() << " pairs of " << n_prompts << " prompts\n";
    if (data.n_groups() > 0) {
      const std::vector<double> ref_logp = compute_reference_logps(ref, data, oc.pack);
      oc.max_steps = std::max<int64_t>(
          1, static_cast<int64_t>(std::ceil(cfg.epochs * data.n_groups() / oc.groups_per_micro_batch)));
      oc.seed = cfg.seed + static_cast<uint64_t>(round);
      oc.reference_is_initial_policy = round == 0 || cfg.ref_follows_policy;
      const BatchOrder order = shuffled_batch_order(data.n_groups(), oc.groups_per_micro_batch, oc.max_steps, oc.seed);
      const auto logs = train_offline(policy, opt, data, ref_logp, pairwise_objective(cfg.losses, cfg.pair), oc, order);
      for (const auto& [k, v] : logs.back().values) rec["train/" + k] = v;
      global_step += oc.max_steps;
      rec["step"] = global_step;
      if (cfg.ref_follows_policy) ref = policy;
    }
    if (on_round) on_round(rec);
  }
}

}  // namespace rlhf
