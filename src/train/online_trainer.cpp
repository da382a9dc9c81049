#include "train/online_trainer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "data/collate.h"
#include "objective/pairwise.h"
#include "tensor/error.h"
#include "tensor/rng.h"
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
  std::vector<double> lp_old, lp_ref, values;  // per token
};

// Per completion token of each sequence: log p at temperature T, and (with `values`) the value
// head at the state before the token — the hidden state of the previous position.
struct TokenNumbers {
  std::vector<double> logp, values, entropy;
};

// The engine batch of `cb` with the value head read before every scored token.
Batch with_value_positions(const CollatedBatch& cb) {
  Batch b = cb.batch;
  b.head_at.clear();
  for (int64_t q : b.scored) b.head_at.push_back(q - 1);
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
      if (!batch.head_at.empty()) out.values.push_back(s.head[q]);
    }
  }
  return out;
}

// The same numbers for a whole rollout, without gradients, in chunks of `chunk` sequences.
TokenNumbers score_rollout(Transformer& m, Workspace& ws, const std::vector<Sequence>& seqs, int64_t chunk,
                           int64_t row_len, double temperature, bool values, bool entropy) {
  TokenNumbers all;
  for (size_t b = 0; b < seqs.size(); b += chunk) {
    const std::vector<Sequence> part(seqs.begin() + b, seqs.begin() + std::min(seqs.size(), b + chunk));
    const CollatedBatch cb = pack_rows(part, row_len);
    const Batch batch = values ? with_value_positions(cb) : cb.batch;
    TokenNumbers t = forward_tokens(m, ws, part, cb, batch, temperature, entropy);
    all.logp.insert(all.logp.end(), t.logp.begin(), t.logp.end());
    all.values.insert(all.values.end(), t.values.begin(), t.values.end());
    all.entropy.insert(all.entropy.end(), t.entropy.begin(), t.entropy.end());
  }
  return all;
}

// The engine batch of a separate critic (scalar head, no LM head): head before every completion
// token, nothing scored.
Batch critic_batch(const CollatedBatch& cb) {
  Batch b = with_value_positions(cb);
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

// Samples and scores: the rollout of one step (or of an evaluation).
Rollout sample_rollout(Transformer& policy, const std::vector<OnlinePrompt>& prompts,
                         const std::vector<int64_t>& which, const std::vector<uint64_t>& seeds,
                         const rollout::SamplingParams& sp, int64_t generate_batch, const RewardScorer& reward,
                         const Detokenize& detok, std::map<std::string, double>& metrics,
                         std::vector<SampleExample>* examples) {
  std::vector<std::vector<int32_t>> ids;
  for (int64_t p : which) ids.push_back(prompts[p].ids);
  rollout::GenerateOptions go;
  go.batch_size = generate_batch;
  const std::vector<rollout::Completion> done = rollout::generate(policy, ids, seeds, sp, go);
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
  rollout::RewardResult scored = reward(samples);
  RLHF_CHECK(scored.scores.size() == samples.size(), "the reward returned one score per sample");
  r.scores = std::move(scored.scores);
  for (const auto& [k, v] : scored.metrics) metrics[k] = v;

  double undefined = 0, eos = 0;
  std::vector<double> defined;
  for (size_t i = 0; i < r.scores.size(); ++i) {
    if (std::isnan(r.scores[i])) ++undefined;
    else defined.push_back(r.scores[i]);
    eos += r.has_eos[i];
  }
  std::vector<double> len(lengths.begin(), lengths.end());
  metrics["objective/scores"] = mean_of(defined);
  metrics["reward/undefined"] = undefined;
  metrics["completions/mean_length"] = mean_of(len);
  metrics["completions/min_length"] = len.empty() ? 0 : *std::min_element(len.begin(), len.end());
  metrics["completions/max_length"] = len.empty() ? 0 : *std::max_element(len.begin(), len.end());
  metrics["completions/clipped_ratio"] = len.empty() ? 0 : 1.0 - eos / static_cast<double>(len.size());
  metrics["val/num_eos_tokens"] = eos;
  if (examples)
    for (size_t i = 0; i < std::min<size_t>(samples.size(), 4); ++i) {
      const Text& t = samples[i].prompt;
      examples->push_back({t.is_chat && !t.messages.empty() ? t.messages.back().content : t.text,
                           samples[i].completion, r.scores[i]});
    }
  return r;
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
  if (num_epochs <= 0 || num_mini_batches <= 0) throw InputError("epochs and minibatches must be positive");
  if ((method == OnlineMethod::rloo || method == OnlineMethod::grpo) && sampling.n < 2)
    throw InputError(std::string(online_method_name(method)) + " needs at least 2 samples per prompt (num_generations)");
  if (method == OnlineMethod::online_dpo && sampling.n != 2)
    throw InputError("online_dpo samples exactly 2 completions per prompt");
  const int64_t units = prompts_per_step * (method == OnlineMethod::online_dpo ? 1 : sampling.n);
  if (num_mini_batches > units)
    throw InputError("num_mini_batches (" + std::to_string(num_mini_batches) + ") exceeds the " +
                     std::to_string(units) + " sequences (pairs) of a rollout");
  if (shaping.placement != rollout::ScorePlacement::last_token)
    throw InputError("the online loop puts the score on the last real token (score placement last_token)");
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
                               const RewardScorer& reward, const Detokenize& detok) {
  ScoredSamples out;
  Rollout r = sample_rollout(policy, prompts, which, seeds, sampling, generate_batch, reward, detok, out.metrics,
                             &out.examples);
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
  RLHF_CHECK(!trunk_values || policy.heads().score_head, "PPO/APA need a value head on the policy or a critic");
  RLHF_CHECK(!critic || (critic_opt && critic->heads().score_head && !critic->heads().lm_head),
             "a critic is a scalar-head model with its own optimizer");
  const bool dpo = cfg.method == OnlineMethod::online_dpo;
  const double T = cfg.sampling.temperature > 0 ? cfg.sampling.temperature : 1.0;
  const int64_t n = cfg.sampling.n;
  const int64_t rollout_size = cfg.prompts_per_step * n;
  const int64_t units_total = dpo ? cfg.prompts_per_step : rollout_size;
  const int64_t max_units_per_mb = (units_total + cfg.num_mini_batches - 1) / cfg.num_mini_batches;
  const int64_t max_rows = std::max<int64_t>(max_units_per_mb * (dpo ? 2 : 1), std::min<int64_t>(rollout_size, 16));
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
  // With one minibatch, the first update's forward runs on the sampling weights: it gives the old
  // log-probs (and trunk values) too, and its activations serve that update's backward.
  const bool reuse_first_forward = cfg.num_mini_batches == 1;
  if (need_ref) ref_ws.emplace(ref.config(), max_rows, row_len, max_rows * row_len, 0);
  struct Forward {
    std::vector<size_t> rows;
    std::vector<Sequence> mb;
    CollatedBatch cb;
    Batch batch;
    TokenNumbers cur;
  };
  auto forward_rows = [&](std::vector<size_t> rows, const Rollout& r) {
    Forward f;
    f.rows = std::move(rows);
    for (size_t i : f.rows) f.mb.push_back(r.seqs[i]);
    f.cb = pack_rows(f.mb, row_len);
    f.batch = trunk_values ? with_value_positions(f.cb) : f.cb.batch;
    f.cur = forward_tokens(policy, ws, f.mb, f.cb, f.batch, T, entropy_bonus);
    return f;
  };
  // Minibatch rows of units [b, e) of a permutation (a unit is a sequence, or a pair for online DPO).
  auto rows_of = [&](const std::vector<size_t>& perm, size_t b, size_t e) {
    std::vector<size_t> rows;
    for (size_t u = b; u < e; ++u) {
      rows.push_back(dpo ? 2 * perm[u] : perm[u]);
      if (dpo) rows.push_back(2 * perm[u] + 1);
    }
    return rows;
  };
  std::vector<OnlineStepLog> logs;
  for (int64_t step = start_step; step < cfg.max_steps; ++step) {
    OnlineStepLog log;
    log.step = step + 1;
    std::map<std::string, double>& mv = log.values;
    // 1. Sample and score.
    const std::vector<int64_t>& which = order[step];
    std::vector<uint64_t> seeds;
    for (int64_t p : which) seeds.push_back(prompt_seed(cfg.seed, step, p));
    Rollout r = sample_rollout(policy, prompts, which, seeds, cfg.sampling, cfg.generate_batch, reward, detok, mv,
                                 &log.examples);

    // 2. Samples that cannot be learned from: PPO/APA drop undefined scores, online DPO drops
    // pairs with one; RLOO/GRPO/REINFORCE keep them with advantage 0.
    if (values || dpo) {
      std::vector<size_t> keep;
      for (size_t i = 0; i < r.seqs.size(); i += dpo ? 2 : 1) {
        const bool ok = dpo ? !std::isnan(r.scores[i]) && !std::isnan(r.scores[i + 1]) : !std::isnan(r.scores[i]);
        if (!ok) continue;
        keep.push_back(i);
        if (dpo) keep.push_back(i + 1);
      }
      if (keep.size() != r.seqs.size()) r = select(r, keep);
    }
    const double lr_mult = lr_multiplier(cfg.schedule, step, cfg.max_steps, cfg.warmup_steps);
    const double lr = cfg.adam.lr * lr_mult;
    mv["learning_rate"] = lr;
    mv["kl_coef"] = ctl.value();
    mv["episode"] = static_cast<double>((step + 1) * rollout_size);
    if (r.seqs.empty()) {  // nothing to learn from: the step counts, the weights stay
      mv["skipped"] = 1;
      if (on_step) on_step(log, policy, opt, state);
      logs.push_back(std::move(log));
      continue;
    }

    // 3. Per-token numbers of the sampling policy and the reference, at the sampling temperature.
    const int64_t chunk = max_rows;
    const size_t units = dpo ? r.seqs.size() / 2 : r.seqs.size();
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
      pending = forward_rows(rows_of(first_perm, 0, units), r);
      r.lp_old.assign(r.tokens.size(), 0.0);
      if (trunk_values) r.values.assign(r.tokens.size(), 0.0);
      const Ragged layout = r.tokens.select(pending->rows);
      for (size_t k = 0; k < pending->rows.size(); ++k)
        for (size_t t = 0; t < layout.length(k); ++t) {
          r.lp_old[r.tokens.begin(pending->rows[k]) + t] = pending->cur.logp[layout.begin(k) + t];
          if (trunk_values) r.values[r.tokens.begin(pending->rows[k]) + t] = pending->cur.values[layout.begin(k) + t];
        }
    } else {
      TokenNumbers old = score_rollout(policy, ws, r.seqs, chunk, row_len, T, trunk_values, false);
      r.lp_old = std::move(old.logp);
      r.values = std::move(old.values);
    }
    if (critic)
      for (size_t b = 0; b < r.seqs.size(); b += chunk) {
        const std::vector<Sequence> part(r.seqs.begin() + b, r.seqs.begin() + std::min(r.seqs.size(), b + chunk));
        const std::vector<double> v = critic_values(*critic, *critic_ws, critic_batch(pack_rows(part, row_len)));
        r.values.insert(r.values.end(), v.begin(), v.end());
      }
    std::vector<double> k1;  // per sequence, when the reference is read
    if (need_ref) {
      r.lp_ref = score_rollout(ref, *ref_ws, r.seqs, chunk, row_len, T, false, false).logp;
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

    // 4. Advantages.
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

    // 5. Epochs of minibatch updates, over a fresh permutation of the units each epoch.
    std::map<std::string, double> loss_sums;
    double updates = 0, grad_norm_sum = 0, loss_sum = 0;
    for (int64_t epoch = 0; epoch < cfg.num_epochs; ++epoch) {
      const std::vector<size_t> perm = epoch == 0 && reuse_first_forward ? first_perm : permutation();
      const size_t per_mb = (units + cfg.num_mini_batches - 1) / cfg.num_mini_batches;
      for (size_t b = 0; b < units; b += per_mb) {
        Forward f = pending ? std::move(*pending) : forward_rows(rows_of(perm, b, std::min(units, b + per_mb)), r);
        pending.reset();
        const std::vector<size_t>& rows = f.rows;
        const CollatedBatch& cb = f.cb;
        const Batch& batch = f.batch;
        TokenNumbers& cur = f.cur;
        Batch cbatch;
        if (critic) {
          cbatch = critic_batch(cb);
          critic->zero_grad();
          cur.values = critic_values(*critic, *critic_ws, cbatch);
        }
        const Ragged layout = r.tokens.select(rows);
        const std::vector<double> lp_old = r.tokens.gather(r.lp_old, rows);
        objective::PolicyLossResult res;
        switch (cfg.method) {
          case OnlineMethod::ppo: {
            objective::PpoLossInputs in;
            in.tokens = layout;
            in.lp = cur.logp;
            in.lp_old = lp_old;
            in.advantages = r.tokens.gather(ppo_adv.advantages, rows);
            in.entropy = cur.entropy;
            in.value = {layout, cur.values, r.tokens.gather(r.values, rows), r.tokens.gather(ppo_adv.returns, rows)};
            res = objective::ppo_loss(in, cfg.ppo);
            break;
          }
          case OnlineMethod::apa: {
            objective::ApaInputs in;
            in.tokens = layout;
            in.lp = cur.logp;
            in.lp_init = r.tokens.gather(r.lp_ref, rows);
            in.advantages = r.tokens.gather(ppo_adv.advantages, rows);
            in.value = {layout, cur.values, r.tokens.gather(r.values, rows), r.tokens.gather(ppo_adv.returns, rows)};
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
        std::vector<float> dhead;
        if (values) {
          RLHF_CHECK(res.d_value.size() == cur.values.size(), "one value gradient per token");
          dhead.assign(res.d_value.begin(), res.d_value.end());
        }
        policy.zero_grad();
        policy.backward(batch, ws, to_scored(cb, res.d_logp), trunk_values ? dhead : std::vector<float>{},
                        res.d_entropy.empty() ? std::vector<float>{} : to_scored(cb, res.d_entropy));
        const double gnorm = grad_global_norm(policy);
        require_finite_step(step + 1, res.loss, gnorm, " (epoch " + std::to_string(epoch + 1) + ")");
        if (critic) {
          critic->backward(cbatch, *critic_ws, {}, dhead);
          const double cnorm = grad_global_norm(*critic);
          require_finite_step(step + 1, res.loss, cnorm, " (critic, epoch " + std::to_string(epoch + 1) + ")");
          critic_opt->step(*critic, critic_opt->config().lr * lr_mult, cnorm);
          loss_sums["val/grad_norm"] += cnorm;
        }
        opt.step(policy, lr, gnorm);
        updates += 1;
        grad_norm_sum += gnorm;
        loss_sum += res.loss;
        for (const auto& [k, v] : res.metrics) loss_sums[k] += v;
      }
    }
    for (const auto& [k, v] : loss_sums) mv[k] = v / updates;
    mv["loss"] = loss_sum / updates;
    mv["grad_norm"] = grad_norm_sum / updates;

    // 6. The adaptive controller sees this batch's KL (lm-human-preferences' n_steps = episodes).
    if (cfg.method == OnlineMethod::ppo && cfg.adaptive_kl) ctl.update(mean_of(k1), static_cast<double>(r.seqs.size()));
    state.kl_coef = ctl.value();
    if (on_step) on_step(log, policy, opt, state);
    logs.push_back(std::move(log));
  }
  return logs;
}

OnlineEval evaluate_online(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward,
                           const Detokenize& detok, const rollout::SamplingParams& sampling, int64_t generate_batch,
                           uint64_t seed) {
  std::vector<int64_t> which(prompts.size());
  std::iota(which.begin(), which.end(), 0);
  std::vector<uint64_t> seeds;
  for (int64_t p : which) seeds.push_back(prompt_seed(seed, -1, p));
  OnlineEval ev;
  sample_rollout(policy, prompts, which, seeds, sampling, generate_batch, reward, detok, ev.values, &ev.examples);
  return ev;
}

}  // namespace rlhf
