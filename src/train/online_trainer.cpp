#include "train/online_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>

#include "tensor/error.h"
#include "tensor/rng.h"
#include "train/faults.h"
#include "train/offline_trainer.h"
#include "train/online/forward.h"
#include "train/online/method.h"
#include "train/online/rollout.h"
#include "train/online_prompts.h"

namespace rlhf {

namespace {

using objective::Ragged;
using online::mean_of;
using online::Normaliser;

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Keeps the units (runs of `unit` sequences) whose every score is defined.
void drop_undefined(online::Rollout& r, size_t unit) {
  std::vector<size_t> keep;
  for (size_t i = 0; i < r.seqs.size(); i += unit) {
    bool defined = true;
    for (size_t k = i; k < i + unit; ++k) defined = defined && !std::isnan(r.scores[k]);
    for (size_t k = i; defined && k < i + unit; ++k) keep.push_back(k);
  }
  if (keep.size() != r.seqs.size()) r = online::select(r, keep);
}

// One forward/backward pass's forward: its sequences packed, the policy's numbers (with the
// critic's values, where there is one); the workspaces keep its activations for the backward.
struct Forward {
  std::vector<size_t> rows;  // global sequence indices
  std::vector<Sequence> mb;
  CollatedBatch cb;
  Batch batch;
  Batch cbatch;  // the separate critic's, where there is one
  online::TokenNumbers cur;
};

// The counts a minibatch's loss terms are means over, over every rank.
struct MinibatchCounts {
  double seqs = 0, tokens = 0, slots = 0;
};

// A pass's share of its minibatch's `n`.
double share(Normaliser n, double seqs, double tokens, const MinibatchCounts& mb) {
  switch (n) {
    case Normaliser::sequences: return seqs / mb.seqs;
    case Normaliser::tokens: return tokens / mb.tokens;
    case Normaliser::fixed: return 1.0;
  }
  return 1.0;
}

// One rollout step's state, filled phase by phase.
struct Step {
  Step(int64_t step, uint64_t seed) : index(step), shuffle(seed ^ 0x5EED, static_cast<uint64_t>(step) + 1) {
    log.step = step + 1;
  }
  // The numbers over the global batch (`mine` itself on one process).
  online::RolloutNumbers& numbers() { return global ? *global : mine; }

  int64_t index;  // 0-based
  OnlineStepLog log;
  online::Rollout mine;                   // this rank's samples
  std::optional<online::Rollout> global;  // every rank's numbers, under data parallelism
  // The global units (sequences, or pairs) in rank order: this rank holds [first_unit, end_unit).
  size_t units = 0, first_unit = 0, end_unit = 0, first_row = 0;
  double lr_mult = 0, lr = 0;
  Rng shuffle;                     // the minibatch permutations
  std::vector<size_t> first_perm;  // the first epoch's, when its first forward ran early
  std::optional<Forward> pending;  // that forward
  online::Advantages adv;
  std::map<std::string, double> loss_sums;  // this rank's shares of the loss metrics
  double updates = 0, grad_norm_sum = 0, loss_sum = 0, critic_norm_sum = 0, allreduce_seconds = 0;
};

// The sizes of the loop's forwards.
struct Shapes {
  int64_t pass_units = 0;  // units per forward/backward pass: a rank's share of a minibatch, in micro_batches passes
  int64_t max_rows = 0;
  int64_t row_len = 0;
};

Shapes shapes_of(const OnlineConfig& cfg, size_t unit, int world, const Transformer& policy,
                 const std::vector<OnlinePrompt>& prompts) {
  const int64_t rollout_size = cfg.prompts_per_step * cfg.sampling.n;
  const int64_t units_total = rollout_size / static_cast<int64_t>(unit);
  const int64_t max_units_per_mb = (units_total + cfg.num_mini_batches - 1) / cfg.num_mini_batches;
  Shapes s;
  s.pass_units = std::max<int64_t>(1, (max_units_per_mb + world * cfg.micro_batches - 1) / (world * cfg.micro_batches));
  s.max_rows = std::max<int64_t>(s.pass_units * static_cast<int64_t>(unit), std::min<int64_t>(rollout_size / world, 16));
  // Rows as long as the longest possible sequence, not longer: the workspaces stay small.
  size_t longest_prompt = 0;
  for (const OnlinePrompt& p : prompts) longest_prompt = std::max(longest_prompt, p.ids.size());
  s.row_len = std::min<int64_t>({cfg.row_len, policy.config().max_position_embeddings,
                                 static_cast<int64_t>(longest_prompt) + cfg.sampling.max_new_tokens});
  return s;
}

// The online loop over one method: everything fixed for a run, and a step as named phases.
class OnlineLoop {
 public:
  OnlineLoop(Transformer& policy, AdamW& opt, Transformer& ref, Transformer* critic, AdamW* critic_opt,
             const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward, const Detokenize& detok,
             const OnlineConfig& cfg, online::Method& method);

  OnlineStepLog run_step(int64_t step) {
    if (comm_) comm_->set_context("step " + std::to_string(step + 1));
    Step s(step, cfg_.seed);
    if (!sample_and_score(s)) return std::move(s.log);  // nothing to learn from: the step counts, the weights stay
    token_numbers(s);
    // 3. Advantages over the global batch: whitening, groups and baselines see every rank's samples.
    s.adv = method_.advantages(s.numbers(), s.log.values);
    update_epochs(s);
    log_updates(s);
    method_.end_step(s.numbers());
    return std::move(s.log);
  }

 private:
  bool sample_and_score(Step& s);
  void token_numbers(Step& s);
  void first_forward(Step& s);
  void update_epochs(Step& s);
  void update_minibatch(Step& s, int64_t epoch, const std::vector<size_t>& units);
  double run_pass(Step& s, const std::vector<size_t>& units, const MinibatchCounts& mb);
  void log_updates(Step& s);

  // The rows (sequences) of units, in order.
  std::vector<size_t> rows_of(const std::vector<size_t>& units) const {
    std::vector<size_t> rows;
    for (size_t u : units)
      for (size_t k = 0; k < unit_; ++k) rows.push_back(unit_ * u + k);
    return rows;
  }
  // This rank's units among `units`, in their order.
  static std::vector<size_t> owned(const Step& s, const std::vector<size_t>& units) {
    std::vector<size_t> out;
    for (size_t u : units)
      if (u >= s.first_unit && u < s.end_unit) out.push_back(u);
    return out;
  }
  // A permutation of the step's units, from the step's shuffle stream.
  static std::vector<size_t> permutation(Step& s) {
    std::vector<size_t> perm(s.units);
    std::iota(perm.begin(), perm.end(), 0);
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[s.shuffle.below(i)]);
    return perm;
  }
  Forward forward_rows(const Step& s, std::vector<size_t> rows);

  const OnlineConfig& cfg_;
  online::Method& method_;
  const online::Needs needs_;
  Transformer& policy_;
  AdamW& opt_;
  Transformer& ref_;
  Transformer* critic_;
  AdamW* critic_opt_;
  const std::vector<OnlinePrompt>& prompts_;
  const RewardScorer& reward_;
  const Detokenize& detok_;
  // Data parallelism: each rank samples, scores and runs the forwards of its slice of the
  // prompts; everything else is computed over the global batch on every rank (see the header).
  dist::Communicator* comm_;
  const int world_, rank_;
  const size_t unit_;        // sequences per unit
  const bool trunk_values_;  // values from a head on the policy trunk (else from the critic)
  const online::ValueSlots vslots_;
  const double temperature_;
  // With one minibatch in one pass, the first update's forward runs on the sampling weights: it
  // gives the old log-probs (and trunk values) too, and its activations serve that update's
  // backward; so does the critic's first forward, which gives the rollout's values.
  const bool reuse_first_forward_;
  const Shapes shapes_;
  const BatchOrder order_;
  Workspace ws_;
  std::optional<Workspace> critic_ws_, ref_ws_;
};

OnlineLoop::OnlineLoop(Transformer& policy, AdamW& opt, Transformer& ref, Transformer* critic, AdamW* critic_opt,
                       const std::vector<OnlinePrompt>& prompts, const RewardScorer& reward, const Detokenize& detok,
                       const OnlineConfig& cfg, online::Method& method)
    : cfg_(cfg),
      method_(method),
      needs_(method.needs()),
      policy_(policy),
      opt_(opt),
      ref_(ref),
      critic_(critic),
      critic_opt_(critic_opt),
      prompts_(prompts),
      reward_(reward),
      detok_(detok),
      comm_(cfg.comm && cfg.comm->size() > 1 ? cfg.comm : nullptr),
      world_(comm_ ? comm_->size() : 1),
      rank_(comm_ ? comm_->rank() : 0),
      unit_(needs_.pairs ? 2 : 1),
      trunk_values_(needs_.values && !critic),
      vslots_{cfg.shaping.placement, static_cast<size_t>(cfg.sampling.max_new_tokens)},
      temperature_(cfg.sampling.temperature > 0 ? cfg.sampling.temperature : 1.0),
      reuse_first_forward_(cfg.num_mini_batches == 1 && cfg.micro_batches == 1),
      shapes_(shapes_of(cfg, unit_, world_, policy, prompts)),
      order_(shuffled_batch_order(static_cast<int64_t>(prompts.size()), cfg.prompts_per_step, cfg.max_steps, cfg.seed)),
      ws_(policy.config(), shapes_.max_rows, shapes_.row_len, shapes_.max_rows * shapes_.row_len,
          trunk_values_ ? shapes_.max_rows * shapes_.row_len : 0) {
  RLHF_CHECK(!trunk_values_ || policy.heads().score_head,
             std::string(online_method_name(cfg.method)) + " needs a value head on the policy or a critic");
  RLHF_CHECK(!critic || (critic_opt && critic->heads().score_head && !critic->heads().lm_head),
             "a critic is a scalar-head model with its own optimizer");
  const int64_t rows = shapes_.max_rows, tokens = shapes_.max_rows * shapes_.row_len;
  if (critic) critic_ws_.emplace(critic->config(), rows, shapes_.row_len, 0, tokens);
  // The reference is read only where the method needs it (TRL loads none for GRPO with beta 0).
  if (needs_.reference) ref_ws_.emplace(ref.config(), rows, shapes_.row_len, tokens, 0);
}

// 1. Sample and score this rank's slice of the step's prompts (each prompt's seed depends on its
// index alone, so the samples do not depend on the number of ranks); leave out the units the
// method cannot learn from; number the global units. False when none is left.
bool OnlineLoop::sample_and_score(Step& s) {
  std::map<std::string, double>& mv = s.log.values;
  const std::vector<int64_t>& step_prompts = order_[s.index];
  const int64_t per_rank = cfg_.prompts_per_step / world_;
  const std::vector<int64_t> which(step_prompts.begin() + rank_ * per_rank, step_prompts.begin() + (rank_ + 1) * per_rank);
  std::vector<uint64_t> seeds;
  for (int64_t p : which) seeds.push_back(prompt_seed(cfg_.seed, s.index, p));
  s.mine = online::sample_rollout(policy_, prompts_, which, seeds, cfg_.sampling, cfg_.generate_batch, reward_, detok_,
                                  mv, &s.log.examples, comm_);
  if (cfg_.keep_rollouts)
    for (size_t i = 0; i < s.mine.seqs.size(); ++i)
      s.log.rollouts.push_back({s.mine.prompt[i], s.mine.text[i], s.mine.scores[i], s.mine.finish[i]});
  if (needs_.drop_undefined) drop_undefined(s.mine, unit_);
  std::vector<int64_t> unit_off = {0, static_cast<int64_t>(s.mine.seqs.size() / unit_)};
  if (comm_) {
    const std::vector<double> counts = dist::allgather_concat(*comm_, {static_cast<double>(unit_off[1])});
    unit_off.assign(1, 0);
    for (double c : counts) unit_off.push_back(unit_off.back() + static_cast<int64_t>(c));
  }
  s.units = static_cast<size_t>(unit_off.back());
  s.first_unit = static_cast<size_t>(unit_off[rank_]);
  s.end_unit = static_cast<size_t>(unit_off[rank_ + 1]);
  s.first_row = unit_ * s.first_unit;
  s.lr_mult = lr_multiplier(cfg_.schedule, s.index, cfg_.max_steps, cfg_.warmup_steps);
  s.lr = cfg_.adam.lr * s.lr_mult;
  mv["learning_rate"] = s.lr;
  mv["kl_coef"] = method_.kl_coef();
  mv["episode"] = static_cast<double>((s.index + 1) * cfg_.prompts_per_step * cfg_.sampling.n);
  if (s.units == 0) mv["skipped"] = 1;
  return s.units > 0;
}

// 2. Per-token numbers of the sampling policy (and the values) and of the reference, at the
// sampling temperature, each rank for its own sequences; then gathered into the global batch,
// the same on every rank from here on.
void OnlineLoop::token_numbers(Step& s) {
  online::Rollout& mine = s.mine;
  const int64_t chunk = shapes_.max_rows;
  if (reuse_first_forward_) {
    first_forward(s);
  } else {
    online::TokenNumbers old = online::score_rollout(policy_, ws_, mine.seqs, chunk, shapes_.row_len, temperature_,
                                                     trunk_values_ ? &vslots_ : nullptr, false);
    mine.lp_old = std::move(old.logp);
    mine.values = std::move(old.values);
    if (critic_)
      for (size_t b = 0; b < mine.seqs.size(); b += chunk) {
        const std::vector<Sequence> part(mine.seqs.begin() + b,
                                         mine.seqs.begin() + std::min(mine.seqs.size(), b + chunk));
        const std::vector<double> v = online::critic_values(
            *critic_, *critic_ws_, online::critic_batch(online::pack_rows(part, shapes_.row_len), vslots_));
        mine.values.insert(mine.values.end(), v.begin(), v.end());
      }
  }
  if (needs_.reference)
    mine.lp_ref =
        online::score_rollout(ref_, *ref_ws_, mine.seqs, chunk, shapes_.row_len, temperature_, nullptr, false).logp;
  if (comm_) s.global = online::gather_rollout(*comm_, mine);
  online::RolloutNumbers& r = s.numbers();
  if (needs_.values) r.slots = rollout::value_slots(r.tokens, vslots_.placement, vslots_.max_new_tokens);
  std::map<std::string, double>& mv = s.log.values;
  if (needs_.reference) {
    r.seq_kl = rollout::sequence_sums(r.tokens, rollout::kl_per_token(objective::KlEstimator::k1, r.lp_old, r.lp_ref));
    const std::vector<double> k3 =
        rollout::sequence_sums(r.tokens, rollout::kl_per_token(objective::KlEstimator::k3, r.lp_old, r.lp_ref));
    mv["kl/k1"] = mean_of(r.seq_kl);
    mv["kl/k3"] = mean_of(k3);
    mv["objective/kl"] = mean_of(r.seq_kl);
  }
  // TRL's objective/entropy: the mean over samples of -sum_t log p (a sequence-entropy estimate).
  std::vector<double> neg(r.lp_old.size());
  for (size_t i = 0; i < neg.size(); ++i) neg[i] = -r.lp_old[i];
  mv["objective/entropy"] = mean_of(rollout::sequence_sums(r.tokens, neg));
}

// The first update's forward, run now on the sampling weights: its numbers are the old ones.
void OnlineLoop::first_forward(Step& s) {
  online::Rollout& mine = s.mine;
  s.first_perm = permutation(s);
  mine.lp_old.assign(mine.tokens.size(), 0.0);
  const Ragged mine_slots = rollout::value_slots(mine.tokens, vslots_.placement, vslots_.max_new_tokens);
  if (needs_.values) mine.values.assign(mine_slots.size(), 0.0);
  const std::vector<size_t> units = owned(s, s.first_perm);
  RLHF_CHECK(static_cast<int64_t>(units.size()) <= shapes_.pass_units, "the first minibatch fits one pass");
  if (units.empty()) return;
  s.pending = forward_rows(s, rows_of(units));
  std::vector<size_t> local_rows;
  for (size_t row : s.pending->rows) local_rows.push_back(row - s.first_row);
  const Ragged layout = mine.tokens.select(local_rows), slot_layout = mine_slots.select(local_rows);
  for (size_t k = 0; k < local_rows.size(); ++k) {
    const size_t row = local_rows[k];
    std::copy_n(s.pending->cur.logp.begin() + layout.begin(k), layout.length(k),
                mine.lp_old.begin() + mine.tokens.begin(row));
    if (needs_.values)
      std::copy_n(s.pending->cur.values.begin() + slot_layout.begin(k), slot_layout.length(k),
                  mine.values.begin() + mine_slots.begin(row));
  }
}

Forward OnlineLoop::forward_rows(const Step& s, std::vector<size_t> rows) {
  Forward f;
  f.rows = std::move(rows);
  for (size_t i : f.rows) f.mb.push_back(s.mine.seqs[i - s.first_row]);
  f.cb = online::pack_rows(f.mb, shapes_.row_len);
  f.batch = trunk_values_ ? online::with_value_positions(f.cb, vslots_) : f.cb.batch;
  f.cur = online::forward_tokens(policy_, ws_, f.mb, f.cb, f.batch, temperature_, needs_.entropy);
  if (critic_) {
    f.cbatch = online::critic_batch(f.cb, vslots_);
    f.cur.values = online::critic_values(*critic_, *critic_ws_, f.cbatch);
  }
  return f;
}

// 4. Epochs of minibatch updates, over a fresh permutation of the units each epoch.
void OnlineLoop::update_epochs(Step& s) {
  for (int64_t epoch = 0; epoch < cfg_.num_epochs; ++epoch) {
    const std::vector<size_t> perm = epoch == 0 && reuse_first_forward_ ? s.first_perm : permutation(s);
    const size_t per_mb = (s.units + cfg_.num_mini_batches - 1) / cfg_.num_mini_batches;
    for (size_t b = 0; b < s.units; b += per_mb)
      update_minibatch(s, epoch, std::vector<size_t>(perm.begin() + b, perm.begin() + std::min(s.units, b + per_mb)));
  }
}

// One optimizer step. A minibatch's units are split by rank (each rank runs the forwards and
// backwards of its own sequences, in passes of at most pass_units); the passes' gradients,
// weighted by their share of the minibatch, add up on each rank and then over the ranks.
void OnlineLoop::update_minibatch(Step& s, int64_t epoch, const std::vector<size_t>& units) {
  const online::RolloutNumbers& r = s.numbers();
  MinibatchCounts mb;
  for (size_t row : rows_of(units)) {
    mb.seqs += 1, mb.tokens += static_cast<double>(r.tokens.length(row));
    if (needs_.values) mb.slots += static_cast<double>(r.slots.length(row));
  }
  const std::vector<size_t> my_units = owned(s, units);
  policy_.zero_grad();
  if (critic_) critic_->zero_grad();
  double mb_loss = 0;
  const size_t pass_units = static_cast<size_t>(shapes_.pass_units);
  for (size_t c = 0; c < my_units.size(); c += pass_units)
    mb_loss += run_pass(
        s, std::vector<size_t>(my_units.begin() + c, my_units.begin() + std::min(my_units.size(), c + pass_units)), mb);
  const int64_t step = s.index + 1;
  inject_test_nan(rank_, step, mb_loss, policy_);
  std::string on_ranks;  // the ranks whose own loss or gradient was not finite
  if (comm_) {  // the minibatch's gradient and loss: sums of the ranks' shares
    // [loss, one flag per rank: its own loss or gradient was not finite] (the error names it)
    std::vector<double> head(1 + world_, 0.0);
    head[0] = mb_loss;
    head[1 + rank_] = nonfinite_flag(mb_loss, policy_);
    const auto t0 = std::chrono::steady_clock::now();
    comm_->allreduce_sum(head.data(), static_cast<int64_t>(head.size()));
    comm_->allreduce_sum(policy_.grads().data(), static_cast<int64_t>(policy_.grads().size()));
    if (critic_) comm_->allreduce_sum(critic_->grads().data(), static_cast<int64_t>(critic_->grads().size()));
    s.allreduce_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    mb_loss = head[0];
    on_ranks = ranks_named(std::vector<double>(head.begin() + 1, head.end()));
  }
  const double gnorm = grad_global_norm(policy_);
  require_finite_step(step, mb_loss, gnorm, on_ranks + " (epoch " + std::to_string(epoch + 1) + ")");
  if (critic_) {
    const double cnorm = grad_global_norm(*critic_);
    require_finite_step(step, mb_loss, cnorm, on_ranks + " (critic, epoch " + std::to_string(epoch + 1) + ")");
    require_finite_update(step, critic_opt_->step(*critic_, critic_opt_->config().lr * s.lr_mult, cnorm), *critic_,
                          " (critic, epoch " + std::to_string(epoch + 1) + ")");
    s.critic_norm_sum += cnorm;
  }
  require_finite_update(step, opt_.step(policy_, s.lr, gnorm), policy_, " (epoch " + std::to_string(epoch + 1) + ")");
  s.updates += 1;
  s.grad_norm_sum += gnorm;
  s.loss_sum += mb_loss;
}

// One forward and backward of this rank's `units` of a minibatch, its gradient weighted by the
// pass's share of the minibatch (1 for a minibatch in one pass on one process); the value term
// is a mean over value slots, which trl_after_eos makes more than the tokens. Returns the pass's
// share of the minibatch's loss.
double OnlineLoop::run_pass(Step& s, const std::vector<size_t>& units, const MinibatchCounts& mb) {
  Forward f = s.pending ? std::move(*s.pending) : forward_rows(s, rows_of(units));
  s.pending.reset();
  const online::RolloutNumbers& r = s.numbers();
  const Ragged layout = r.tokens.select(f.rows);
  objective::PolicyLossResult res = method_.loss({r, s.adv, f.rows, layout, f.cur});
  const double pass_tokens = static_cast<double>(layout.size()), pass_seqs = static_cast<double>(f.rows.size());
  const double w_grad = share(needs_.loss, pass_seqs, pass_tokens, mb);
  const double w_metric = share(needs_.metrics, pass_seqs, pass_tokens, mb);
  const double w_value = needs_.values ? static_cast<double>(r.slots.select(f.rows).size()) / mb.slots : 0.0;
  if (w_grad != 1.0) {
    for (double& d : res.d_logp) d *= w_grad;
    for (double& d : res.d_entropy) d *= w_grad;
  }
  if (w_value != 1.0)
    for (double& d : res.d_value) d *= w_value;
  std::vector<float> dhead;
  if (needs_.values) {
    RLHF_CHECK(res.d_value.size() == f.cur.values.size(), "one value gradient per value slot");
    dhead.assign(res.d_value.begin(), res.d_value.end());
  }
  policy_.backward(f.batch, ws_, online::to_scored(f.cb, res.d_logp), trunk_values_ ? dhead : std::vector<float>{},
                   res.d_entropy.empty() ? std::vector<float>{} : online::to_scored(f.cb, res.d_entropy));
  if (critic_) critic_->backward(f.cbatch, *critic_ws_, {}, dhead);
  for (const auto& [k, v] : res.metrics) s.loss_sums[k] += (objective::is_value_metric(k) ? w_value : w_metric) * v;
  return w_grad * res.loss + (w_value - w_grad) * res.value_loss;  // the value term by its slot share
}

// 5. The updates' metrics: means over the step's optimizer steps (the loss metrics summed over
// the ranks' shares first).
void OnlineLoop::log_updates(Step& s) {
  std::map<std::string, double>& mv = s.log.values;
  if (comm_) {
    std::map<std::string, std::pair<double, double>> shares;
    for (const auto& [k, v] : s.loss_sums) shares[k] = {v, 0};
    s.loss_sums.clear();
    for (const auto& [k, v] : online::sum_named(*comm_, shares)) s.loss_sums[k] = v.first;
    mv["dist/allreduce_seconds"] = s.allreduce_seconds;
  }
  for (const auto& [k, v] : s.loss_sums) mv[k] = v / s.updates;
  if (critic_) mv["val/grad_norm"] = s.critic_norm_sum / s.updates;
  mv["loss"] = s.loss_sum / s.updates;
  mv["grad_norm"] = s.grad_norm_sum / s.updates;
}

}  // namespace

void OnlineConfig::validate() const {
  sampling.validate();
  if (prompts_per_step <= 0) throw InputError("prompts per step must be positive");
  if (max_steps <= 0) throw InputError("max_steps must be positive");
  if (num_epochs <= 0 || num_mini_batches <= 0 || micro_batches <= 0)
    throw InputError("epochs, minibatches and micro-batches must be positive");
  if (comm && prompts_per_step % comm->size() != 0)
    throw InputError("prompts per step (" + std::to_string(prompts_per_step) + ") do not split evenly over " +
                     std::to_string(comm->size()) + " ranks");
  const std::unique_ptr<online::Method> m = online::make_method(*this);
  const online::Needs& needs = m->needs();
  const std::string name = online_method_name(method);
  if (sampling.n < needs.min_samples)
    throw InputError(name + " needs at least " + std::to_string(needs.min_samples) +
                     " samples per prompt (num_generations)");
  if (needs.pairs && sampling.n != 2) throw InputError(name + " samples exactly 2 completions per prompt");
  const int64_t units = prompts_per_step * (needs.pairs ? 1 : sampling.n);
  if (num_mini_batches > units)
    throw InputError("num_mini_batches (" + std::to_string(num_mini_batches) + ") exceeds the " +
                     std::to_string(units) + " sequences (pairs) of a rollout");
  if (shaping.placement != rollout::ScorePlacement::last_token && !needs.values)
    throw InputError("score placement trl_after_eos places a value slot, so it applies to ppo and apa only, not " +
                     name);
  m->validate(*this);
  if (!(beta >= 0)) throw InputError("beta must be >= 0");
  if (keep_rollouts && comm && comm->size() > 1)
    throw InputError("--save-rollouts needs a single process (got " + std::to_string(comm->size()) +
                     " ranks): each rank holds only its own samples, and the ranks exchange numbers, not text");
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
  online::Rollout r = online::sample_rollout(policy, prompts, which, seeds, sampling, generate_batch, reward, detok,
                                             out.metrics, &out.examples, comm);
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
  const std::unique_ptr<online::Method> method = online::make_method(cfg);
  OnlineLoop loop(policy, opt, ref, critic, critic_opt, prompts, reward, detok, cfg, *method);
  method->restore(state);
  std::vector<OnlineStepLog> logs;
  for (int64_t step = start_step; step < cfg.max_steps; ++step) {
    OnlineStepLog log = loop.run_step(step);
    method->save(state);
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
  const std::vector<int64_t> which = rank_prompt_slice(static_cast<int64_t>(prompts.size()), comm);
  std::vector<uint64_t> seeds;
  for (int64_t p : which) seeds.push_back(prompt_seed(seed, -1, p));
  OnlineEval ev;
  online::sample_rollout(policy, prompts, which, seeds, sampling, generate_batch, reward, detok, ev.values, &ev.examples,
                         comm);
  return ev;
}

}  // namespace rlhf
