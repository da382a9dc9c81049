#include "train/online/rollout.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "tensor/error.h"

namespace rlhf::online {

namespace {

// The reward sources' metrics over every rank's samples: counts summed; each source's mean and
// std pooled from the ranks' means, stds and defined counts (the formulas of CombinedReward, so
// equal to one process's up to rounding); any other metric averaged, weighted by the ranks'
// sample counts.
rollout::Metrics pool_reward_metrics(dist::Communicator& comm, const rollout::Metrics& local, size_t samples) {
  const std::map<std::string, double> in(local.begin(), local.end());
  const double n_samples = static_cast<double>(samples);
  auto is_count = [](const std::string& k) {
    for (const char* t : {"undefined", "/too_long", "/too_short", "/failed_batches", "/bad_lines"})
      if (k.ends_with(t)) return true;
    return false;
  };
  const char kPooled = '\x1f';  // suffix of the pooled sums (no metric name holds it)
  std::map<std::string, std::pair<double, double>> parts;
  for (const auto& [k, v] : in) {
    const std::string p = k.size() > 4 ? k.substr(0, k.size() - 4) : "";
    const bool pooled_mean = k.ends_with("mean") && in.count(p + "std") && in.count(p + "undefined");
    const bool pooled_std = k.ends_with("std") && in.count(k.substr(0, k.size() - 3) + "mean") &&
                            in.count(k.substr(0, k.size() - 3) + "undefined");
    if (pooled_std) continue;
    if (pooled_mean) {
      const double n = n_samples - in.at(p + "undefined"), sd = in.at(p + "std");
      const double mean = n > 0 ? v : 0.0;
      parts[p + kPooled + "n"] = {n, 0};
      parts[p + kPooled + "s1"] = {mean * n, 0};
      parts[p + kPooled + "s2"] = {n > 1 ? sd * sd * (n - 1) + n * mean * mean : n * mean * mean, 0};
    } else if (is_count(k)) {
      parts[k] = {v, 0};
    } else {
      parts[k] = {v * n_samples, n_samples};
    }
  }
  rollout::Metrics out;
  const auto all = sum_named(comm, parts);
  for (const auto& [k, vw] : all) {
    const size_t at = k.find(kPooled);
    if (at != std::string::npos) {
      if (k.substr(at + 1) != "n") continue;
      const std::string p = k.substr(0, at);
      const double n = vw.first, s1 = all.at(p + kPooled + "s1").first, s2 = all.at(p + kPooled + "s2").first;
      const double mean = n > 0 ? s1 / n : std::nan("");
      out.emplace_back(p + "mean", mean);
      out.emplace_back(p + "std", n > 1 ? std::sqrt(std::max(0.0, (s2 - n * mean * mean) / (n - 1))) : 0.0);
    } else {
      out.emplace_back(k, vw.second > 0 ? vw.first / vw.second : vw.first);
    }
  }
  return out;
}

// Integers (lengths, flags) through the double all-gather: exact below 2^53.
template <class T>
std::vector<T> gather_ints(dist::Communicator& comm, const std::vector<T>& local) {
  const std::vector<double> all = dist::allgather_concat(comm, std::vector<double>(local.begin(), local.end()));
  std::vector<T> out;
  for (double v : all) out.push_back(static_cast<T>(v));
  return out;
}

// The loop's own metrics of a batch of samples.
void add_sample_metrics(const std::vector<double>& scores, const std::vector<size_t>& lengths,
                        const std::vector<uint8_t>& has_eos, std::map<std::string, double>& metrics) {
  double undefined = 0, eos = 0;
  std::vector<double> defined;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) ++undefined;
    else defined.push_back(scores[i]);
    eos += has_eos[i];
  }
  std::vector<double> len(lengths.begin(), lengths.end());
  metrics["objective/scores"] = mean_of(defined);
  metrics["reward/undefined"] = undefined;
  metrics["completions/mean_length"] = mean_of(len);
  metrics["completions/min_length"] = len.empty() ? 0 : *std::min_element(len.begin(), len.end());
  metrics["completions/max_length"] = len.empty() ? 0 : *std::max_element(len.begin(), len.end());
  metrics["completions/clipped_ratio"] = len.empty() ? 0 : 1.0 - eos / static_cast<double>(len.size());
  metrics["val/num_eos_tokens"] = eos;
}

}  // namespace

std::map<std::string, std::pair<double, double>> sum_named(dist::Communicator& comm,
                                                           const std::map<std::string, std::pair<double, double>>& local) {
  std::vector<double> chars;  // the names, each ended by -1
  for (const auto& [k, v] : local) {
    for (unsigned char c : k) chars.push_back(c);
    chars.push_back(-1);
  }
  std::set<std::string> names;
  std::string cur;
  for (double c : dist::allgather_concat(comm, chars)) {
    if (c < 0) names.insert(cur), cur.clear();
    else cur += static_cast<char>(static_cast<unsigned char>(c));
  }
  std::vector<double> buf;
  for (const std::string& k : names) {
    const auto it = local.find(k);
    buf.push_back(it == local.end() ? 0.0 : it->second.first);
    buf.push_back(it == local.end() ? 0.0 : it->second.second);
  }
  comm.allreduce_sum(buf.data(), static_cast<int64_t>(buf.size()));
  std::map<std::string, std::pair<double, double>> out;
  size_t i = 0;
  for (const std::string& k : names) out[k] = {buf[i], buf[i + 1]}, i += 2;
  return out;
}

Rollout sample_rollout(Transformer& policy, const std::vector<OnlinePrompt>& prompts,
                       const std::vector<int64_t>& which, const std::vector<uint64_t>& seeds,
                       const rollout::SamplingParams& sp, int64_t generate_batch, const RewardScorer& reward,
                       const Detokenize& detok, std::map<std::string, double>& metrics,
                       std::vector<SampleExample>* examples, dist::Communicator* comm) {
  std::vector<std::vector<int32_t>> ids;
  for (int64_t p : which) ids.push_back(prompts[p].ids);
  rollout::GenerateOptions go;
  go.batch_size = generate_batch;
  const std::vector<rollout::Completion> done =
      ids.empty() ? std::vector<rollout::Completion>{} : rollout::generate(policy, ids, seeds, sp, go);
  Rollout r;
  std::vector<rollout::RewardSample> samples;
  std::vector<size_t> lengths;
  for (const rollout::Completion& c : done) {
    const OnlinePrompt& p = prompts[which[c.prompt]];
    Sequence s;
    s.tokens = p.ids;
    s.tokens.insert(s.tokens.end(), c.tokens.begin(), c.tokens.end());
    s.prompt_len = static_cast<int64_t>(p.ids.size());
    s.group = static_cast<int64_t>(r.seqs.size());
    r.seqs.push_back(std::move(s));
    r.prompt.push_back(which[c.prompt]);
    const bool ended = c.finish != rollout::FinishReason::length;
    r.has_eos.push_back(ended);
    r.finish.push_back(c.finish);
    lengths.push_back(c.tokens.size());
    rollout::RewardSample rs;
    rs.prompt = p.prompt;
    rs.prompt_ids = p.ids;
    rs.completion_ids = c.tokens;
    rs.eos = c.finish == rollout::FinishReason::eos;
    // The text the reward sees excludes the final EOS/stop token (TRL decodes with
    // skip_special_tokens).
    std::vector<int32_t> text_ids = c.tokens;
    if (ended && !text_ids.empty()) text_ids.pop_back();
    rs.completion = detok(text_ids);
    r.text.push_back(rs.completion);
    rs.extra = p.extra;
    samples.push_back(std::move(rs));
  }
  r.tokens = Ragged::from_lengths(lengths);
  rollout::RewardResult scored;
  if (!samples.empty()) scored = reward(samples);  // a rank may hold no evaluation prompt
  RLHF_CHECK(scored.scores.size() == samples.size(), "the reward returned one score per sample");
  r.scores = std::move(scored.scores);
  if (comm) scored.metrics = pool_reward_metrics(*comm, scored.metrics, samples.size());
  for (const auto& [k, v] : scored.metrics) metrics[k] = v;
  if (comm)
    add_sample_metrics(dist::allgather_concat(*comm, r.scores), gather_ints(*comm, lengths),
                       gather_ints(*comm, r.has_eos), metrics);
  else
    add_sample_metrics(r.scores, lengths, r.has_eos, metrics);
  if (examples)
    for (size_t i = 0; i < std::min<size_t>(samples.size(), 4); ++i) {
      const Text& t = samples[i].prompt;
      examples->push_back({t.is_chat && !t.messages.empty() ? t.messages.back().content : t.text,
                           samples[i].completion, r.scores[i]});
    }
  return r;
}

Rollout select(const Rollout& r, const std::vector<size_t>& keep) {
  Rollout out;
  for (size_t i : keep) {
    out.seqs.push_back(r.seqs[i]);
    out.seqs.back().group = static_cast<int64_t>(out.seqs.size()) - 1;
    out.prompt.push_back(r.prompt[i]);
    out.scores.push_back(r.scores[i]);
    out.has_eos.push_back(r.has_eos[i]);
    out.text.push_back(r.text[i]);
    out.finish.push_back(r.finish[i]);
  }
  out.tokens = r.tokens.select(keep);
  return out;
}

Rollout gather_rollout(dist::Communicator& comm, const Rollout& mine) {
  Rollout g;
  std::vector<size_t> lengths;
  for (size_t s = 0; s < mine.tokens.sequences(); ++s) lengths.push_back(mine.tokens.length(s));
  g.tokens = Ragged::from_lengths(gather_ints(comm, lengths));
  g.prompt = gather_ints(comm, mine.prompt);
  g.scores = dist::allgather_concat(comm, mine.scores);
  g.has_eos = gather_ints(comm, mine.has_eos);
  g.lp_old = dist::allgather_concat(comm, mine.lp_old);
  g.lp_ref = dist::allgather_concat(comm, mine.lp_ref);
  g.values = dist::allgather_concat(comm, mine.values);
  return g;
}

}  // namespace rlhf::online
