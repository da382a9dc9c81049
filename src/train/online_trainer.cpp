#include "train/online_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include "data/collate.h"
#include "objective/pairwise.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "train/faults.h"
#include "train/offline_trainer.h"

namespace rlhf {

namespace {

using objective::Ragged;

constexpr const char* kMethodNames[] = {"ppo", "apa", "reinforce", "rloo", "grpo", "online_dpo"};

// Completions of one step with everything the objectives read, sequence-major.
struct Rollout {
  std::vector<Sequence> seqs;    // prompt + completion (group = position in this rollout)
  std::vector<int64_t> prompt;   // index into the run's prompts
  Ragged tokens;                 // completion tokens of each sequence
  std::vector<double> scores;    // per sequence
  std::vector<uint8_t> has_eos;  // per sequence: ended with an EOS or stop token
  std::vector<std::string> text; // per sequence: the completion as the reward saw it
  std::vector<double> lp_old, lp_ref;  // per token
  std::vector<double> values;          // per value slot (rollout::value_slots of `tokens`)
};

// Where PPO/APA read values: the value slots of the completions (rollout::value_slots).
struct ValueSlots {
  rollout::ScorePlacement placement = rollout::ScorePlacement::last_token;
  size_t max_new_tokens = 0;
};

// Per completion token of each sequence: log p at temperature T; and (with value positions in
// the batch) per value slot, the value head's output.
struct TokenNumbers {
  std::vector<double> logp, values, entropy;
};

// The engine batch of `cb` with the value head read at every value slot, sequence by sequence
// (the order of the value arrays and their gradients, which packing's row order is not): at the
// state before each completion token — the hidden state of the previous position — and, for a
// sequence with a slot more than tokens (trl_after_eos), at the state before that slot's padding
// token, i.e. the hidden state of the last token. TRL reads it from a forward over the response
// followed by padding (value[:, context_length - 1 + t]); the model is causal, so the padding
// cannot change it and none is fed here.
Batch with_value_positions(const CollatedBatch& cb, const ValueSlots& vs) {
  std::vector<size_t> lengths;
  for (const SequenceSpan& sp : cb.spans) lengths.push_back(static_cast<size_t>(sp.scored_end - sp.scored_begin));
  const Ragged slots = rollout::value_slots(Ragged::from_lengths(lengths), vs.placement, vs.max_new_tokens);
  Batch b = cb.batch;
  b.head_at.clear();
  for (size_t k = 0; k < cb.spans.size(); ++k) {
    const SequenceSpan& sp = cb.spans[k];
    for (int64_t i = sp.scored_begin; i < sp.scored_end; ++i) b.head_at.push_back(b.scored[i] - 1);
    if (slots.length(k) > lengths[k]) b.head_at.push_back(b.scored[sp.scored_end - 1]);
  }
  return b;
}

CollatedBatch pack_rows(const std::vector<Sequence>& seqs, int64_t row_len) {
  PackOptions pack;
  pack.seq_len = row_len;
  pack.max_rows = static_cast<int64_t>(seqs.size());
  std::vector<CollatedBatch> b = pack_sequences(seqs, pack);
  RLHF_CHECK(b.size() == 1, "a rollout minibatch packed into more than one batch");
  return std::move(b[0]);
}

// Forward of `seqs` (one packed batch) and the per-token numbers in sequence order. The
// workspace keeps the activations for a following backward.
TokenNumbers forward_tokens(Transformer& m, Workspace& ws, const std::vector<Sequence>& seqs, const CollatedBatch& cb,
                            const Batch& batch, double temperature, bool want_entropy) {
  ForwardOptions fo;
  fo.temperature = static_cast<float>(temperature);
  fo.want_entropy = want_entropy;
  const Scores s = m.forward(batch, ws, fo);
  TokenNumbers out;
  for (size_t k = 0; k < cb.spans.size(); ++k) {
    const SequenceSpan& sp = cb.spans[k];
    RLHF_CHECK(sp.scored_end - sp.scored_begin == seqs[k].size() - seqs[k].prompt_len,
               "every completion token of a rollout sequence is scored");
    for (int64_t q = sp.scored_begin; q < sp.scored_end; ++q) {
      out.logp.push_back(s.logp[q]);
      if (want_entropy) out.entropy.push_back(s.entropy[q]);
    }
  }
  out.values.assign(s.head.begin(), s.head.end());  // already in value-slot order
  return out;
}

// The same numbers for a whole rollout, without gradients, in chunks of `chunk` sequences;
// values where `values` is given.
TokenNumbers score_rollout(Transformer& m, Workspace& ws, const std::vector<Sequence>& seqs, int64_t chunk,
                           int64_t row_len, double temperature, const ValueSlots* values, bool entropy) {
  TokenNumbers all;
  for (size_t b = 0; b < seqs.size(); b += chunk) {
    const std::vector<Sequence> part(seqs.begin() + b, seqs.begin() + std::min(seqs.size(), b + chunk));
    const CollatedBatch cb = pack_rows(part, row_len);
    const Batch batch = values ? with_value_positions(cb, *values) : cb.batch;
    TokenNumbers t = forward_tokens(m, ws, part, cb, batch, temperature, entropy);
    all.logp.insert(all.logp.end(), t.logp.begin(), t.logp.end());
    all.values.insert(all.values.end(), t.values.begin(), t.values.end());
    all.entropy.insert(all.entropy.end(), t.entropy.begin(), t.entropy.end());
  }
  return all;
}

// The engine batch of a separate critic (scalar head, no LM head): head at every value slot,
// nothing scored.
Batch critic_batch(const CollatedBatch& cb, const ValueSlots& vs) {
  Batch b = with_value_positions(cb, vs);
  b.scored.clear();
  return b;
}

std::vector<double> critic_values(Transformer& critic, Workspace& ws, const Batch& batch) {
  const Scores s = critic.forward(batch, ws);
  return std::vector<double>(s.head.begin(), s.head.end());
}

// Token-level d loss / d logp (in minibatch order) onto the batch's scored positions.
std::vector<float> to_scored(const CollatedBatch& cb, const std::vector<double>& per_token) {
  std::vector<float> out(cb.batch.scored.size(), 0.0f);
  size_t i = 0;
  for (const SequenceSpan& sp : cb.spans)
    for (int64_t q = sp.scored_begin; q < sp.scored_end; ++q) out[q] = static_cast<float>(per_token[i++]);
  RLHF_CHECK(i == per_token.size(), "one gradient per scored token");
  return out;
}

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Keeps the sequences `keep` of a rollout (before its token numbers are computed).
Rollout select(const Rollout& r, const std::vector<size_t>& keep) {
  Rollout out;
  for (size_t i : keep) {
    out.seqs.push_back(r.seqs[i]);
    out.seqs.back().group = static_cast<int64_t>(out.seqs.size()) - 1;
    out.prompt.push_back(r.prompt[i]);
    out.scores.push_back(r.scores[i]);
    out.has_eos.push_back(r.has_eos[i]);
    out.text.push_back(r.text[i]);
  }
  out.tokens = r.tokens.select(keep);
  return out;
}

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// ---- data parallelism -------------------------------------------------------------------------

// Sums over the ranks of named (value, weight) pairs, over the union of the ranks' names (a rank
// without a name adds nothing to it).
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

// Samples and scores: the rollout of one step (or of an evaluation). Under data parallelism
// (`comm`) each rank passes its own prompts; the metrics are those of every rank's samples.
Rollout sample_rollout(Transformer& policy, const std::vector<OnlinePrompt>& prompts,
                         const std::vector<int64_t>& which, const std::vector<uint64_t>& seeds,
                         const rollout::SamplingParams& sp, int64_t generate_batch, const RewardScorer& reward,
                         const Detokenize& detok, std::map<std::string, double>& metrics,
                         std::vector<SampleExample>* examples, dist::Communicator* comm = nullptr) {
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

// Every rank's sequences of a rollout as one global rollout, in rank order: the per-token and
// per-sequence numbers the advantages and the objectives read (not the sequences themselves,
// which stay on the rank that sampled them).
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

}  // namespace

OnlineMethod online_method_from_name(const std::string& name) {
  for (size_t i = 0; i < std::size(kMethodNames); ++i)
    if (name == kMethodNames[i]) return static_cast<OnlineMethod>(i);
  throw InputError("unknown online method '" + name + "' (expected ppo, apa, reinforce, rloo, grpo or online_dpo)");
}

const char* online_method_name(OnlineMethod m) { return kMethodNames[static_cast<size_t>(m)]; }

bool method_uses_values(OnlineMethod m) { return m == OnlineMethod::ppo || m == OnlineMethod::apa; }

void OnlineConfig::validate() const {
  sampling.validate();
  if (prompts_per_step <= 0) throw InputError("prompts per step must be positive");
  if (max_steps <= 0) throw InputError("max_steps must be positive");
  if (num_epochs <= 0 || num_mini_batches <= 0 || micro_batches <= 0)
    throw InputError("epochs, minibatches and micro-batches must be positive");
  if (comm && prompts_per_step % comm->size() != 0)
    throw InputError("prompts per step (" + std::to_string(prompts_per_step) + ") do not split evenly over " +
                     std::to_string(comm->size()) + " ranks");
  if ((method == OnlineMethod::rloo || method == OnlineMethod::grpo) && sampling.n < 2)
    throw InputError(std::string(online_method_name(method)) + " needs at least 2 samples per prompt (num_generations)");
  if (method == OnlineMethod::online_dpo && sampling.n != 2)
    throw InputError("online_dpo samples exactly 2 completions per prompt");
  const int64_t units = prompts_per_step * (method == OnlineMethod::online_dpo ? 1 : sampling.n);
  if (num_mini_batches > units)
    throw InputError("num_mini_batches (" + std::to_string(num_mini_batches) + ") exceeds the " +
                     std::to_string(units) + " sequences (pairs) of a rollout");
  if (shaping.placement != rollout::ScorePlacement::last_token && !method_uses_values(method))
    throw InputError("score placement trl_after_eos places a value slot, so it applies to ppo and apa only, not " +
                     std::string(online_method_name(method)));
  if (method == OnlineMethod::online_dpo && dpo_loss != "sigmoid" && dpo_loss != "ipo_sum")
    throw InputError("online_dpo loss: expected sigmoid or ipo_sum, got '" + dpo_loss + "'");
  if (!(beta >= 0)) throw InputError("beta must be >= 0");
}

nlohmann::json OnlineState::to_json() const {
  return {{"kl_coef", kl_coef}, {"reward_baseline", reward_baseline}, {"baseline_set", baseline_set}};
}

OnlineState OnlineState::from_json(const nlohmann::json& j) {
  OnlineState s;
  s.kl_coef = j.at("kl_coef");
  s.reward_baseline = j.at("reward_baseline");
  s.baseline_set = j.at("baseline_set");
  return s;
}

ScoredSamples sample_and_score(Transformer& policy, const std::vector<OnlinePrompt>& prompts,
                               const std::vector<int64_t>& which, const std::vector<uint64_t>& seeds,
                               const rollout::SamplingParams& sampling, int64_t generate_batch,
                               const RewardScorer& reward, const Detokenize& detok, dist::Communicator* comm) {
  if (comm && comm->size() == 1) comm = nullptr;
  ScoredSamples out;
  Rollout r = sample_rollout(policy, prompts, which, seeds, sampling, generate_batch, reward, detok, out.metrics,
                             &out.examples, comm);
  out.seqs = std::move(r.seqs);
  out.prompt = std::move(r.prompt);
  out.scores = std::move(r.scores);
  out.completions = std::move(r.text);
  return out;
}

uint64_t prompt_seed(uint64_t seed, int64_t step, int64_t prompt_index) {
  return splitmix(splitmix(seed ^ 0x6F6E6C696E65ull) + static_cast<uint64_t>(step) * 0x100000001B3ull +
                  static_cast<uint64_t>(prompt_index));
}

std::vector<OnlineStepLog> train_online(Transformer& policy, AdamW& opt, Transformer& ref,
                                        const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                                        const Detokenize& detok, const OnlineConfig& cfg, int64_t start_step,
                                        OnlineState state, const OnlineStepHook& on_step, Transformer* critic,
                                        AdamW* critic_opt) {
  cfg.validate();
  if (prompts.empty()) throw InputError("no prompts to train on");
  const bool values = method_uses_values(cfg.method);
  const bool trunk_values = values && !critic;  // else the critic holds the value head
  const ValueSlots vslots{cfg.shaping.placement, static_cast<size_t>(cfg.sampling.max_new_tokens)};
  RLHF_CHECK(!trunk_values || policy.heads().score_head, "PPO/APA need a value head on the policy or a critic");
  RLHF_CHECK(!critic || (critic_opt && critic->heads().score_head && !critic->heads().lm_head),
             "a critic is a scalar-head model with its own optimizer");
  // Data parallelism: each rank samples, scores and runs the forwards of its slice of the
  // prompts; everything else is computed over the global batch on every rank (see the header).
  dist::Communicator* comm = cfg.comm && cfg.comm->size() > 1 ? cfg.comm : nullptr;
  const int world = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  const bool dpo = cfg.method == OnlineMethod::online_dpo;
  const double T = cfg.sampling.temperature > 0 ? cfg.sampling.temperature : 1.0;
  const int64_t n = cfg.sampling.n;
  const int64_t rollout_size = cfg.prompts_per_step * n;
  const int64_t units_total = dpo ? cfg.prompts_per_step : rollout_size;
  const int64_t max_units_per_mb = (units_total + cfg.num_mini_batches - 1) / cfg.num_mini_batches;
  // Units per forward/backward pass: a rank's share of a minibatch, in micro_batches passes.
  const int64_t pass_units = std::max<int64_t>(1, (max_units_per_mb + world * cfg.micro_batches - 1) /
                                                      (world * cfg.micro_batches));
  const int64_t max_rows =
      std::max<int64_t>(pass_units * (dpo ? 2 : 1), std::min<int64_t>(rollout_size / world, 16));
  // Rows as long as the longest possible sequence, not longer: the workspaces stay small.
  size_t longest_prompt = 0;
  for (const OnlinePrompt& p : prompts) longest_prompt = std::max(longest_prompt, p.ids.size());
  const int64_t row_len = std::min<int64_t>({cfg.row_len, policy.config().max_position_embeddings,
                                             static_cast<int64_t>(longest_prompt) + cfg.sampling.max_new_tokens});
  Workspace ws(policy.config(), max_rows, row_len, max_rows * row_len, trunk_values ? max_rows * row_len : 0);
  std::optional<Workspace> critic_ws;
  if (critic) critic_ws.emplace(critic->config(), max_rows, row_len, 0, max_rows * row_len);
  std::optional<Workspace> ref_ws;
  const BatchOrder order = shuffled_batch_order(static_cast<int64_t>(prompts.size()), cfg.prompts_per_step,
                                                cfg.max_steps, cfg.seed);
  rollout::KlController ctl = cfg.adaptive_kl ? rollout::KlController::adaptive(state.kl_coef, cfg.kl_target, cfg.kl_horizon)
                                              : rollout::KlController::fixed(state.kl_coef);
  const bool entropy_bonus = cfg.method == OnlineMethod::ppo && cfg.ppo.entropy_coef != 0;
  // The reference is read only where the objective or the reward needs it (TRL loads none for
  // GRPO with beta 0); the kl/* metrics come with it.
  const bool need_ref = !((cfg.method == OnlineMethod::grpo && cfg.grpo.beta == 0) ||
                          ((cfg.method == OnlineMethod::rloo || cfg.method == OnlineMethod::reinforce) && cfg.beta == 0));
  // With one minibatch in one pass, the first update's forward runs on the sampling weights: it
  // gives the old log-probs (and trunk values) too, and its activations serve that update's
  // backward; so does the critic's first forward, which gives the rollout's values.
  const bool reuse_first_forward = cfg.num_mini_batches == 1 && cfg.micro_batches == 1;
  if (need_ref) ref_ws.emplace(ref.config(), max_rows, row_len, max_rows * row_len, 0);
  // What a minibatch's loss is a mean over: its gradient and loss shares of a pass are the pass's
  // part of that count (metrics: of the count their means run over).
  // (GRPO's dapo with a fixed num_items_in_batch divides every pass by that count already.)
  enum class Norm { sequences, tokens, fixed };
  const bool grpo_tokens = cfg.method == OnlineMethod::grpo && cfg.grpo.loss_type != "grpo" && cfg.grpo.loss_type != "dr_grpo";
  const Norm grad_norm_by = grpo_tokens && cfg.grpo.loss_type == "dapo" && cfg.grpo.num_items_in_batch > 0 ? Norm::fixed
                            : cfg.method == OnlineMethod::ppo || cfg.method == OnlineMethod::apa || grpo_tokens
                                ? Norm::tokens
                                : Norm::sequences;
  const Norm metric_norm_by =
      cfg.method == OnlineMethod::ppo || cfg.method == OnlineMethod::apa || cfg.method == OnlineMethod::grpo
          ? Norm::tokens
          : Norm::sequences;
  struct Forward {
    std::vector<size_t> rows;  // global sequence indices
    std::vector<Sequence> mb;
    CollatedBatch cb;
    Batch batch;
    Batch cbatch;        // the separate critic's, where there is one
    TokenNumbers cur;    // with the critic's values, where there is one
  };
  // Rows of units (a unit is a sequence, or a pair for online DPO).
  auto rows_of = [&](const std::vector<size_t>& us) {
    std::vector<size_t> rows;
    for (size_t u : us) {
      rows.push_back(dpo ? 2 * u : u);
      if (dpo) rows.push_back(2 * u + 1);
    }
    return rows;
  };
  std::vector<OnlineStepLog> logs;
  for (int64_t step = start_step; step < cfg.max_steps; ++step) {
    if (comm) comm->set_context("step " + std::to_string(step + 1));
    OnlineStepLog log;
    log.step = step + 1;
    std::map<std::string, double>& mv = log.values;
    // 1. Sample and score: this rank's slice of the step's prompts (each prompt's seed depends on
    // its index alone, so the samples do not depend on the number of ranks).
    const std::vector<int64_t>& step_prompts = order[step];
    const int64_t per_rank = cfg.prompts_per_step / world;
    const std::vector<int64_t> which(step_prompts.begin() + rank * per_rank, step_prompts.begin() + (rank + 1) * per_rank);
    std::vector<uint64_t> seeds;
    for (int64_t p : which) seeds.push_back(prompt_seed(cfg.seed, step, p));
    Rollout mine = sample_rollout(policy, prompts, which, seeds, cfg.sampling, cfg.generate_batch, reward, detok, mv,
                                  &log.examples, comm);

    // 2. Samples that cannot be learned from: PPO/APA drop undefined scores, online DPO drops
    // pairs with one; RLOO/GRPO/REINFORCE keep them with advantage 0.
    if (values || dpo) {
      std::vector<size_t> keep;
      for (size_t i = 0; i < mine.seqs.size(); i += dpo ? 2 : 1) {
        const bool ok =
            dpo ? !std::isnan(mine.scores[i]) && !std::isnan(mine.scores[i + 1]) : !std::isnan(mine.scores[i]);
        if (!ok) continue;
        keep.push_back(i);
        if (dpo) keep.push_back(i + 1);
      }
      if (keep.size() != mine.seqs.size()) mine = select(mine, keep);
    }
    // The global units, numbered in rank order: this rank holds [unit_off[rank], unit_off[rank + 1]).
    std::vector<int64_t> unit_off = {0, static_cast<int64_t>(dpo ? mine.seqs.size() / 2 : mine.seqs.size())};
    if (comm) {
      const std::vector<double> counts = dist::allgather_concat(*comm, {static_cast<double>(unit_off[1])});
      unit_off.assign(1, 0);
      for (double c : counts) unit_off.push_back(unit_off.back() + static_cast<int64_t>(c));
    }
    const size_t units = static_cast<size_t>(unit_off.back());
    const size_t first_unit = static_cast<size_t>(unit_off[rank]), end_unit = static_cast<size_t>(unit_off[rank + 1]);
    const size_t first_row = dpo ? 2 * first_unit : first_unit;
    const double lr_mult = lr_multiplier(cfg.schedule, step, cfg.max_steps, cfg.warmup_steps);
    const double lr = cfg.adam.lr * lr_mult;
    mv["learning_rate"] = lr;
    mv["kl_coef"] = ctl.value();
    mv["episode"] = static_cast<double>((step + 1) * rollout_size);
    if (units == 0) {  // nothing to learn from: the step counts, the weights stay
      mv["skipped"] = 1;
      if (on_step) on_step(log, policy, opt, state);
      logs.push_back(std::move(log));
      continue;
    }
    auto forward_rows = [&](std::vector<size_t> rows) {
      Forward f;
      f.rows = std::move(rows);
      for (size_t i : f.rows) f.mb.push_back(mine.seqs[i - first_row]);
      f.cb = pack_rows(f.mb, row_len);
      f.batch = trunk_values ? with_value_positions(f.cb, vslots) : f.cb.batch;
      f.cur = forward_tokens(policy, ws, f.mb, f.cb, f.batch, T, entropy_bonus);
      if (critic) {
        f.cbatch = critic_batch(f.cb, vslots);
        f.cur.values = critic_values(*critic, *critic_ws, f.cbatch);
      }
      return f;
    };
    // This rank's units among [b, e) of a permutation, in permutation order.
    auto owned = [&](std::vector<size_t>::const_iterator b, std::vector<size_t>::const_iterator e) {
      std::vector<size_t> out;
      for (auto it = b; it != e; ++it)
        if (*it >= first_unit && *it < end_unit) out.push_back(*it);
      return out;
    };

    // 3. Per-token numbers of the sampling policy and the reference, at the sampling temperature
    // (each rank for its own sequences).
    const int64_t chunk = max_rows;
    Rng shuffle(cfg.seed ^ 0x5EED, static_cast<uint64_t>(step) + 1);
    auto permutation = [&] {
      std::vector<size_t> perm(units);
      std::iota(perm.begin(), perm.end(), 0);
      for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[shuffle.below(i)]);
      return perm;
    };
    std::vector<size_t> first_perm;
    std::optional<Forward> pending;
    if (reuse_first_forward) {
      first_perm = permutation();
      mine.lp_old.assign(mine.tokens.size(), 0.0);
      const Ragged mine_slots = rollout::value_slots(mine.tokens, vslots.placement, vslots.max_new_tokens);
      if (values) mine.values.assign(mine_slots.size(), 0.0);
      const std::vector<size_t> us = owned(first_perm.begin(), first_perm.end());
      RLHF_CHECK(static_cast<int64_t>(us.size()) <= pass_units, "the first minibatch fits one pass");
      if (!us.empty()) {
        pending = forward_rows(rows_of(us));
        std::vector<size_t> local_rows;
        for (size_t row : pending->rows) local_rows.push_back(row - first_row);
        const Ragged layout = mine.tokens.select(local_rows), slot_layout = mine_slots.select(local_rows);
        for (size_t k = 0; k < local_rows.size(); ++k) {
          const size_t row = local_rows[k];
          std::copy_n(pending->cur.logp.begin() + layout.begin(k), layout.length(k),
                      mine.lp_old.begin() + mine.tokens.begin(row));
          if (values)
            std::copy_n(pending->cur.values.begin() + slot_layout.begin(k), slot_layout.length(k),
                        mine.values.begin() + mine_slots.begin(row));
        }
      }
    } else {
      TokenNumbers old =
          score_rollout(policy, ws, mine.seqs, chunk, row_len, T, trunk_values ? &vslots : nullptr, false);
      mine.lp_old = std::move(old.logp);
      mine.values = std::move(old.values);
    }
    if (critic && !reuse_first_forward)
      for (size_t b = 0; b < mine.seqs.size(); b += chunk) {
        const std::vector<Sequence> part(mine.seqs.begin() + b, mine.seqs.begin() + std::min(mine.seqs.size(), b + chunk));
        const std::vector<double> v =
            critic_values(*critic, *critic_ws, critic_batch(pack_rows(part, row_len), vslots));
        mine.values.insert(mine.values.end(), v.begin(), v.end());
      }
    if (need_ref) mine.lp_ref = score_rollout(ref, *ref_ws, mine.seqs, chunk, row_len, T, nullptr, false).logp;
    // From here on every number is over the global batch, the same on every rank.
    std::optional<Rollout> global;
    if (comm) global = gather_rollout(*comm, mine);
    Rollout& r = comm ? *global : mine;
    std::vector<double> k1;  // per sequence, when the reference is read
    if (need_ref) {
      k1 = rollout::sequence_sums(r.tokens, rollout::kl_per_token(objective::KlEstimator::k1, r.lp_old, r.lp_ref));
      const std::vector<double> k3 =
          rollout::sequence_sums(r.tokens, rollout::kl_per_token(objective::KlEstimator::k3, r.lp_old, r.lp_ref));
      mv["kl/k1"] = mean_of(k1);
      mv["kl/k3"] = mean_of(k3);
      mv["objective/kl"] = mean_of(k1);
    }
    {  // TRL's objective/entropy: the mean over samples of -sum_t log p (a sequence-entropy estimate)
      std::vector<double> neg(r.lp_old.size());
      for (size_t i = 0; i < neg.size(); ++i) neg[i] = -r.lp_old[i];
      mv["objective/entropy"] = mean_of(rollout::sequence_sums(r.tokens, neg));
    }

    // 4. Advantages (over the global batch: whitening, groups and baselines see every rank's samples).
    rollout::PpoAdvantages ppo_adv;
    std::vector<double> seq_adv;  // per sequence (REINFORCE, RLOO, GRPO)
    const double beta = ctl.value();
    auto put = [&](const rollout::Metrics& m) {
      for (const auto& [k, v] : m) mv[k] = v;
    };
    switch (cfg.method) {
      case OnlineMethod::ppo:
      case OnlineMethod::apa: {
        rollout::PpoRollout pr{r.tokens, r.lp_old, r.lp_ref, r.values, r.scores, r.has_eos};
        rollout::PpoShaping sh = cfg.shaping;
        sh.max_response_length = vslots.max_new_tokens;
        // APA's KL control is the squared loss towards the initial policy alone (§6).
        sh.kl_coef = cfg.method == OnlineMethod::apa ? 0.0 : beta;
        ppo_adv = rollout::ppo_advantages(pr, sh);
        put(ppo_adv.metrics);
        break;
      }
      case OnlineMethod::rloo: {
        const rollout::SequenceAdvantages a = rollout::rloo_advantages(r.scores, k1, beta, n, cfg.normalize_advantages);
        seq_adv = a.advantages;
        put(a.metrics);
        mv["objective/non_score_reward"] = -beta * mean_of(k1);
        mv["objective/rlhf_reward"] = mv["objective/scores"] - beta * mean_of(k1);
        break;
      }
      case OnlineMethod::reinforce: {
        std::vector<double> rew(r.scores.size());
        std::vector<double> defined;
        for (size_t i = 0; i < rew.size(); ++i) {
          rew[i] = r.scores[i] - (k1.empty() ? 0.0 : beta * k1[i]);
          if (!std::isnan(rew[i])) defined.push_back(rew[i]);
        }
        const double batch_mean = mean_of(defined);
        if (!state.baseline_set) state.reward_baseline = batch_mean, state.baseline_set = true;
        seq_adv = rollout::reinforce_advantages(rew, state.reward_baseline);
        mv["reward_baseline"] = state.reward_baseline;
        state.reward_baseline = cfg.reinforce_baseline_decay * state.reward_baseline +
                                (1 - cfg.reinforce_baseline_decay) * batch_mean;
        mv["objective/rlhf_reward"] = batch_mean;
        break;
      }
      case OnlineMethod::grpo: {
        const rollout::SequenceAdvantages a = rollout::group_advantages(r.scores, n, cfg.group_scaling);
        seq_adv = a.advantages;
        put(a.metrics);
        break;
      }
      case OnlineMethod::online_dpo: {
        double margin = 0;
        for (size_t i = 0; i < r.scores.size(); i += 2) margin += std::fabs(r.scores[i] - r.scores[i + 1]);
        mv["objective/scores_margin"] = margin / static_cast<double>(r.scores.size() / 2);
        mv["objective/non_score_reward"] = beta * mean_of(k1);
        mv["objective/rlhf_reward"] = mv["objective/scores"] - beta * mean_of(k1);
        break;
      }
    }

    // 5. Epochs of minibatch updates, over a fresh permutation of the units each epoch. A
    // minibatch's units are split by rank (each rank runs the forwards and backwards of its own
    // sequences, in passes of at most pass_units); the passes' gradients, weighted by their share
    // of the minibatch, add up on each rank and then over the ranks.
    std::map<std::string, double> loss_sums;  // this rank's shares of the metrics
    double updates = 0, grad_norm_sum = 0, loss_sum = 0, critic_norm_sum = 0, allreduce_seconds = 0;
    for (int64_t epoch = 0; epoch < cfg.num_epochs; ++epoch) {
      const std::vector<size_t> perm = epoch == 0 && reuse_first_forward ? first_perm : permutation();
      const size_t per_mb = (units + cfg.num_mini_batches - 1) / cfg.num_mini_batches;
      for (size_t b = 0; b < units; b += per_mb) {
        const auto mb_begin = perm.begin() + b, mb_end = perm.begin() + std::min(units, b + per_mb);
        // The minibatch's counts over every rank.
        double mb_seqs = 0, mb_tokens = 0, mb_slots = 0;
        for (size_t row : rows_of(std::vector<size_t>(mb_begin, mb_end))) {
          mb_seqs += 1, mb_tokens += static_cast<double>(r.tokens.length(row));
          if (values) mb_slots += static_cast<double>(ppo_adv.slots.length(row));
        }
        const std::vector<size_t> my_units = owned(mb_begin, mb_end);
        policy.zero_grad();
        if (critic) critic->zero_grad();
        double mb_loss = 0;
        for (size_t c = 0; c < my_units.size(); c += static_cast<size_t>(pass_units)) {
          const std::vector<size_t> pass(my_units.begin() + c,
                                         my_units.begin() + std::min(my_units.size(), c + static_cast<size_t>(pass_units)));
          Forward f = pending ? std::move(*pending) : forward_rows(rows_of(pass));
          pending.reset();
          const std::vector<size_t>& rows = f.rows;
          const CollatedBatch& cb = f.cb;
          const Batch& batch = f.batch;
          TokenNumbers& cur = f.cur;
          const Ragged layout = r.tokens.select(rows);
          const std::vector<double> lp_old = r.tokens.gather(r.lp_old, rows);
          objective::ValueInputs value_in;  // PPO, APA: per value slot
          if (values)
            value_in = {ppo_adv.slots.select(rows), cur.values, ppo_adv.slots.gather(r.values, rows),
                        ppo_adv.slots.gather(ppo_adv.returns, rows)};
          objective::PolicyLossResult res;
          switch (cfg.method) {
            case OnlineMethod::ppo: {
              objective::PpoLossInputs in;
              in.tokens = layout;
              in.lp = cur.logp;
              in.lp_old = lp_old;
              in.advantages = r.tokens.gather(ppo_adv.advantages, rows);
              in.entropy = cur.entropy;
              in.value = value_in;
              res = objective::ppo_loss(in, cfg.ppo);
              break;
            }
            case OnlineMethod::apa: {
              objective::ApaInputs in;
              in.tokens = layout;
              in.lp = cur.logp;
              in.lp_init = r.tokens.gather(r.lp_ref, rows);
              in.advantages = r.tokens.gather(ppo_adv.advantages, rows);
              in.value = value_in;
              res = objective::apa_loss(in, cfg.apa);
              break;
            }
            case OnlineMethod::reinforce:
            case OnlineMethod::rloo: {
              objective::SequencePgInputs in;
              in.tokens = layout;
              in.lp = cur.logp;
              in.lp_old = lp_old;
              for (size_t i : rows) in.advantages.push_back(seq_adv[i]);
              res = objective::sequence_pg_loss(in, cfg.sequence_pg);
              break;
            }
            case OnlineMethod::grpo: {
              objective::GrpoInputs in;
              in.tokens = layout;
              in.lp = cur.logp;
              in.lp_old = lp_old;
              if (cfg.grpo.beta != 0) in.lp_ref = r.tokens.gather(r.lp_ref, rows);
              for (size_t i : rows) in.advantages.push_back(seq_adv[i]);
              objective::GrpoParams gp = cfg.grpo;
              gp.max_completion_length = static_cast<size_t>(cfg.sampling.max_new_tokens);
              res = objective::grpo_loss(in, gp);
              break;
            }
            case OnlineMethod::online_dpo: {
              // Pairs (rows 2j, 2j+1): the better-scored sample is chosen, ties go to the first (TRL).
              std::vector<objective::PairInputs> pairs;
              std::vector<std::pair<size_t, size_t>> sides;  // (chosen, rejected) positions in `rows`
              const std::vector<double> lp_ref = r.tokens.gather(r.lp_ref, rows);
              std::vector<double> sum_lp(rows.size(), 0.0), sum_ref(rows.size(), 0.0);
              for (size_t k = 0; k < rows.size(); ++k)
                for (size_t t = layout.begin(k); t < layout.end(k); ++t) sum_lp[k] += cur.logp[t], sum_ref[k] += lp_ref[t];
              for (size_t k = 0; k < rows.size(); k += 2) {
                const bool first = r.scores[rows[k]] >= r.scores[rows[k + 1]];
                const size_t c = first ? k : k + 1, j = first ? k + 1 : k;
                sides.emplace_back(c, j);
                pairs.push_back({sum_lp[c], sum_lp[j], sum_ref[c], sum_ref[j], static_cast<double>(layout.length(c)),
                                 static_cast<double>(layout.length(j))});
              }
              objective::PairParams pp;
              pp.beta = beta;
              const objective::PairBatchResult pr = objective::pairwise_loss({{cfg.dpo_loss, 1.0}}, pairs, pp);
              res.loss = pr.loss;
              res.d_logp.assign(cur.logp.size(), 0.0);
              for (size_t i = 0; i < sides.size(); ++i) {
                for (size_t t = layout.begin(sides[i].first); t < layout.end(sides[i].first); ++t)
                  res.d_logp[t] = pr.grads[i].d_chosen;
                for (size_t t = layout.begin(sides[i].second); t < layout.end(sides[i].second); ++t)
                  res.d_logp[t] = pr.grads[i].d_rejected;
              }
              for (const auto& [k, v] : objective::pairwise_metrics(pairs, beta)) res.metrics.emplace_back(k, v);
              break;
            }
          }
          // This pass's share of the minibatch (1 for a minibatch in one pass on one process); the
          // value term is a mean over value slots, which trl_after_eos makes more than the tokens.
          const double pass_tokens = static_cast<double>(layout.size()), pass_seqs = static_cast<double>(rows.size());
          const double w_grad = grad_norm_by == Norm::fixed    ? 1.0
                                : grad_norm_by == Norm::tokens ? pass_tokens / mb_tokens
                                                               : pass_seqs / mb_seqs;
          const double w_metric = metric_norm_by == Norm::tokens ? pass_tokens / mb_tokens : pass_seqs / mb_seqs;
          const double w_value = values ? static_cast<double>(value_in.slots.size()) / mb_slots : 0.0;
          if (w_grad != 1.0) {
            for (double& d : res.d_logp) d *= w_grad;
            for (double& d : res.d_entropy) d *= w_grad;
          }
          if (w_value != 1.0)
            for (double& d : res.d_value) d *= w_value;
          std::vector<float> dhead;
          if (values) {
            RLHF_CHECK(res.d_value.size() == cur.values.size(), "one value gradient per value slot");
            dhead.assign(res.d_value.begin(), res.d_value.end());
          }
          policy.backward(batch, ws, to_scored(cb, res.d_logp), trunk_values ? dhead : std::vector<float>{},
                          res.d_entropy.empty() ? std::vector<float>{} : to_scored(cb, res.d_entropy));
          if (critic) critic->backward(f.cbatch, *critic_ws, {}, dhead);
          mb_loss += w_grad * res.loss + (w_value - w_grad) * res.value_loss;  // the value term by its slot share
          for (const auto& [k, v] : res.metrics)
            loss_sums[k] += (objective::is_value_metric(k) ? w_value : w_metric) * v;
        }
        inject_test_nan(rank, step + 1, mb_loss, policy);
        std::string on_ranks;  // the ranks whose own loss or gradient was not finite
        if (comm) {  // the minibatch's gradient and loss: sums of the ranks' shares
          // [loss, one flag per rank: its own loss or gradient was not finite] (the error names it)
          std::vector<double> head(1 + world, 0.0);
          head[0] = mb_loss;
          head[1 + rank] = nonfinite_flag(mb_loss, policy);
          const auto t0 = std::chrono::steady_clock::now();
          comm->allreduce_sum(head.data(), static_cast<int64_t>(head.size()));
          comm->allreduce_sum(policy.grads().data(), static_cast<int64_t>(policy.grads().size()));
          if (critic) comm->allreduce_sum(critic->grads().data(), static_cast<int64_t>(critic->grads().size()));
          allreduce_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          mb_loss = head[0];
          on_ranks = ranks_named(std::vector<double>(head.begin() + 1, head.end()));
        }
        const double gnorm = grad_global_norm(policy);
        require_finite_step(step + 1, mb_loss, gnorm, on_ranks + " (epoch " + std::to_string(epoch + 1) + ")");
        if (critic) {
          const double cnorm = grad_global_norm(*critic);
          require_finite_step(step + 1, mb_loss, cnorm, on_ranks + " (critic, epoch " + std::to_string(epoch + 1) + ")");
          critic_opt->step(*critic, critic_opt->config().lr * lr_mult, cnorm);
          critic_norm_sum += cnorm;
        }
        opt.step(policy, lr, gnorm);
        updates += 1;
        grad_norm_sum += gnorm;
        loss_sum += mb_loss;
      }
    }
    if (comm) {
      std::map<std::string, std::pair<double, double>> shares;
      for (const auto& [k, v] : loss_sums) shares[k] = {v, 0};
      loss_sums.clear();
      for (const auto& [k, v] : sum_named(*comm, shares)) loss_sums[k] = v.first;
      mv["dist/allreduce_seconds"] = allreduce_seconds;
    }
    for (const auto& [k, v] : loss_sums) mv[k] = v / updates;
    if (critic) mv["val/grad_norm"] = critic_norm_sum / updates;
    mv["loss"] = loss_sum / updates;
    mv["grad_norm"] = grad_norm_sum / updates;

    // 6. The adaptive controller sees this batch's KL (lm-human-preferences' n_steps = episodes).
    if (cfg.method == OnlineMethod::ppo && cfg.adaptive_kl)
      ctl.update(mean_of(k1), static_cast<double>(r.tokens.sequences()));
    state.kl_coef = ctl.value();
    if (on_step) on_step(log, policy, opt, state);
    logs.push_back(std::move(log));
  }
  return logs;
}

OnlineEval evaluate_online(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                           const Detokenize& detok, const rollout::SamplingParams& sampling, int64_t generate_batch,
                           uint64_t seed, dist::Communicator* comm) {
  if (comm && comm->size() == 1) comm = nullptr;
  // Under data parallelism each rank samples a contiguous slice of the prompts.
  const std::vector<int64_t> range = dist::even_split(static_cast<int64_t>(prompts.size()), comm ? comm->size() : 1);
  const int rank = comm ? comm->rank() : 0;
  std::vector<int64_t> which(range[rank + 1] - range[rank]);
  std::iota(which.begin(), which.end(), range[rank]);
  std::vector<uint64_t> seeds;
  for (int64_t p : which) seeds.push_back(prompt_seed(seed, -1, p));
  OnlineEval ev;
  sample_rollout(policy, prompts, which, seeds, sampling, generate_batch, reward, detok, ev.values, &ev.examples, comm);
  return ev;
}

}  // namespace rlhf
