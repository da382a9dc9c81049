#include "train/offline_trainer.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/kernels.h"
#include "train/faults.h"
#include "train/zero.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf {

// ---- data ---------------------------------------------------------------------------------------------

int64_t OfflineDataset::n_groups() const {
  if (!rows.empty()) return static_cast<int64_t>(rows.size());
  int64_t n = 0;
  for (const Sequence& s : seqs) n = std::max(n, s.group + 1);
  return n;
}

std::vector<std::vector<size_t>> OfflineDataset::group_members() const {
  std::vector<std::vector<size_t>> m(n_groups());
  for (size_t i = 0; i < seqs.size(); ++i) m[seqs[i].group].push_back(i);
  return m;
}

BatchOrder shuffled_batch_order(int64_t n_groups, int64_t per_micro, int64_t n_micro, uint64_t seed) {
  Rng rng(seed, /*stream=*/2);
  BatchOrder order;
  std::vector<int64_t> perm;
  size_t cursor = 0;
  while (static_cast<int64_t>(order.size()) < n_micro) {
    std::vector<int64_t> micro;
    while (static_cast<int64_t>(micro.size()) < per_micro) {
      if (cursor == perm.size()) {  // a new epoch
        perm.resize(n_groups);
        std::iota(perm.begin(), perm.end(), 0);
        for (size_t i = perm.size() - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
        cursor = 0;
      }
      micro.push_back(perm[cursor++]);
    }
    order.push_back(std::move(micro));
  }
  return order;
}

// Packs one micro-batch into one engine batch (a micro-batch must fit: it is one objective call).
static CollatedBatch pack_one(const std::vector<Sequence>& seqs, PackOptions pack, bool want_head) {
  pack.max_rows = static_cast<int64_t>(seqs.size());
  pack.head_at_last = want_head;
  std::vector<CollatedBatch> b = pack_sequences(seqs, pack);
  RLHF_CHECK(b.size() == 1, "a micro-batch packed into more than one batch");
  return std::move(b[0]);
}

// One micro-batch of the given groups (their sequences in group order, or their rows) as one
// engine batch.
static CollatedBatch collate_groups(const OfflineDataset& data, const std::vector<std::vector<size_t>>& members,
                                    const std::vector<int64_t>& groups, const OfflineConfig& cfg) {
  const int64_t n = data.rows.empty() ? static_cast<int64_t>(members.size()) : static_cast<int64_t>(data.rows.size());
  for (int64_t g : groups)
    if (g < 0 || g >= n)
      throw InputError("batch order names group " + std::to_string(g) + ", the data has " + std::to_string(n));
  if (data.rows.empty()) {
    std::vector<Sequence> seqs;
    for (int64_t g : groups)
      for (size_t i : members[g]) seqs.push_back(data.seqs[i]);
    return pack_one(seqs, cfg.pack, cfg.want_head);
  }
  std::vector<const PackedRow*> rows;
  for (int64_t g : groups) rows.push_back(&data.rows[g]);
  return collate_rows(rows, groups, cfg.pack.seq_len);
}

// Per-sequence values (summed log-probs, or head values) in packed batches, without gradients.
static std::vector<double> sequence_values(Transformer& m, const OfflineDataset& data, PackOptions pack, bool head) {
  RLHF_CHECK(data.rows.empty(), "sequence values of packed document rows");
  std::vector<double> out(data.seqs.size(), 0.0);
  const int64_t chunk = std::max<int64_t>(1, pack.max_rows);
  pack.head_at_last = head;
  // One workspace for every chunk: at most `chunk` rows of seq_len tokens.
  Workspace ws(m.config(), chunk, pack.seq_len, head ? 0 : chunk * pack.seq_len, head ? chunk : 0);
  for (size_t b = 0; b < data.seqs.size(); b += chunk) {
    std::vector<Sequence> part(data.seqs.begin() + b, data.seqs.begin() + std::min(data.seqs.size(), b + chunk));
    for (Sequence& s : part) s.group = 0;  // not grouped here: one batch of independent rows
    pack.max_rows = static_cast<int64_t>(part.size());
    std::vector<CollatedBatch> cbs = pack_sequences(part, pack);
    RLHF_CHECK(cbs.size() == 1, "a scoring batch did not pack into one batch");
    const CollatedBatch& cb = cbs[0];
    Batch batch = cb.batch;
    if (head) batch.scored.clear();
    const SequenceScores sc = sequence_scores(cb, m.forward(batch, ws));
    for (size_t k = 0; k < part.size(); ++k) out[b + k] = head ? sc.head[k] : sc.logp[k];
  }
  return out;
}

std::vector<double> compute_reference_logps(Transformer& ref, const OfflineDataset& data, const PackOptions& pack) {
  return sequence_values(ref, data, pack, false);
}

std::vector<double> compute_head_values(Transformer& rm, const OfflineDataset& data, const PackOptions& pack) {
  return sequence_values(rm, data, pack, true);
}

// ---- the loop ---------------------------------------------------------------------------------------

// Runs one micro-batch: forward, objective, and (when `train`) backward with the objective's
// coefficients scaled by `scale`. `policy_is_reference`: the policy's log-probs are the
// reference's. Returns the objective's output.
static ObjectiveOutput run_micro_batch(Transformer& policy, Workspace& ws, const CollatedBatch& cb,
                                       const std::vector<std::vector<size_t>>& members,
                                       const std::vector<double>& ref_logp, const ObjectiveFn& objective,
                                       bool train, double scale, bool policy_is_reference = false) {
  std::vector<double> ref(cb.spans.size(), 0.0);
  if (!ref_logp.empty())
    for (size_t k = 0; k < cb.spans.size(); ++k) ref[k] = ref_logp[members[cb.spans[k].group][cb.spans[k].index]];
  // A reward model has no LM head: its batches score nothing, only read the head.
  Batch batch = cb.batch;
  if (!policy.heads().lm_head) batch.scored.clear();
  ForwardOptions fo;
  fo.want_logit_mean = policy.heads().lm_head;
  const SequenceScores sc = sequence_scores(cb, policy.forward(batch, ws, fo));
  if (policy_is_reference && !ref_logp.empty()) ref = sc.logp;
  ObjectiveOutput o = objective(cb, sc, ref);
  if (train) {
    for (double& d : o.d_logp) d *= scale;
    for (double& d : o.d_head) d *= scale;
    policy.backward(batch, ws, o.d_logp.empty() ? std::vector<float>{} : spread_sequence_grads(cb, o.d_logp),
                    o.d_head.empty() ? std::vector<float>{} : spread_head_grads(cb, o.d_head));
  }
  return o;
}

static void scale_grads(Transformer& m, float s) {
  m.backend().scale_inplace(m.grads().data(), s, static_cast<int64_t>(m.grads().size()));
}

static int world_size(const OfflineConfig& cfg) { return cfg.comm ? cfg.comm->size() : 1; }

// This rank's slice of a micro-batch's groups (all of them without data parallelism).
static std::vector<int64_t> rank_slice(const std::vector<int64_t>& groups, const OfflineConfig& cfg) {
  const int64_t world = world_size(cfg);
  if (world == 1) return groups;
  const int64_t n = static_cast<int64_t>(groups.size());
  if (n % world != 0)
    throw InputError("a micro-batch of " + std::to_string(n) + " groups does not split evenly over " +
                     std::to_string(world) + " ranks");
  const int64_t per = n / world, r = cfg.comm->rank();
  return std::vector<int64_t>(groups.begin() + r * per, groups.begin() + (r + 1) * per);
}

// Sums `values` over the ranks, then divides by their number when `average` (metrics with the
// same keys on every rank; a key set that differs between ranks, e.g. KTO with no desirable
// example on one rank, keeps rank-local values).
static void reduce_over_ranks(std::map<std::string, double>& values, const OfflineConfig& cfg, bool average) {
  const int world = world_size(cfg);
  if (world == 1) return;
  double key_hash = 0;
  for (const auto& [k, v] : values) key_hash += static_cast<double>(std::hash<std::string>{}(k) % 1000003);
  std::vector<double> check = {key_hash, key_hash * key_hash};
  cfg.comm->allreduce_sum(check.data(), 2);
  if (check[0] * check[0] != check[1] * world) return;  // not the same keys everywhere
  std::vector<double> buf;
  for (const auto& [k, v] : values) buf.push_back(v);
  cfg.comm->allreduce_sum(buf.data(), static_cast<int64_t>(buf.size()));
  size_t i = 0;
  for (auto& [k, v] : values) v = average ? buf[i++] / world : buf[i++];
}

// Scored tokens of the step's micro-batches on all ranks.
static double scored_tokens(const std::vector<CollatedBatch>& micro, const OfflineConfig& cfg) {
  double n = 0;
  for (const CollatedBatch& cb : micro) n += static_cast<double>(cb.batch.n_scored());
  if (world_size(cfg) > 1) cfg.comm->allreduce_sum(&n, 1);
  if (n == 0) throw InputError("an optimizer step without a scored token");
  return n;
}

static Workspace workspace_for(const Transformer& policy, const std::vector<std::vector<size_t>>& members,
                               const OfflineConfig& cfg) {
  size_t largest_group = 1;
  for (const auto& m : members) largest_group = std::max(largest_group, m.size());
  // One workspace for the run, sized for the largest micro-batch slice the packer can produce.
  const int64_t max_rows =
      (cfg.groups_per_micro_batch + world_size(cfg) - 1) / world_size(cfg) * static_cast<int64_t>(largest_group);
  return Workspace(policy.config(), max_rows, cfg.pack.seq_len, max_rows * cfg.pack.seq_len,
                   cfg.want_head ? max_rows : 0);
}

std::map<std::string, double> evaluate_offline(Transformer& policy, const OfflineDataset& data,
                                               const std::vector<double>& ref_logp, const ObjectiveFn& objective,
                                               const OfflineConfig& cfg, const BatchOrder& order) {
  const auto members = data.group_members();
  Workspace ws = workspace_for(policy, members, cfg);
  std::map<std::string, double> sums;
  const int world = world_size(cfg), rank = cfg.comm ? cfg.comm->rank() : 0;
  const bool per_token = cfg.normalization == LossNormalization::step_token_mean;
  // Micro-batches are dealt to the ranks in turn; the means (per token: the sums) are summed over ranks.
  for (size_t i = rank; i < order.size(); i += world) {
    const CollatedBatch cb = collate_groups(data, members, order[i], cfg);
    const ObjectiveOutput o = run_micro_batch(policy, ws, cb, members, ref_logp, objective, false, 1.0);
    const double weight = per_token ? 1.0 : 1.0 / static_cast<double>(order.size());
    sums["loss"] += o.loss * weight;
    for (const auto& [k, v] : o.metrics) sums[k] += v * weight;
    if (per_token) sums["scored_tokens"] += static_cast<double>(cb.batch.n_scored());
  }
  reduce_over_ranks(sums, cfg, /*average=*/false);  // each rank holds its share
  if (per_token) {
    sums["loss"] /= std::max(1.0, sums["scored_tokens"]);
    sums.erase("scored_tokens");
  }
  return sums;
}

std::vector<OfflineStepLog> train_offline(Transformer& policy, AdamW& opt, const OfflineDataset& data,
                                          const std::vector<double>& ref_logp, const ObjectiveFn& objective,
                                          const OfflineConfig& cfg, const BatchOrder& order, int64_t start_step,
                                          const OfflineStepHook& on_step) {
  RLHF_CHECK(ref_logp.empty() || ref_logp.size() == data.seqs.size(), "one reference log-prob per sequence");
  if (static_cast<int64_t>(order.size()) < cfg.max_steps * cfg.grad_accum)
    throw InputError("batch order covers " + std::to_string(order.size()) + " micro-batches, the run needs " +
                     std::to_string(cfg.max_steps * cfg.grad_accum));
  const auto members = data.group_members();
  Workspace ws = workspace_for(policy, members, cfg);
  std::vector<OfflineStepLog> logs;
  int64_t groups_seen = start_step * cfg.grad_accum * cfg.groups_per_micro_batch;
  for (int64_t step = start_step; step < cfg.max_steps; ++step) {
    if (cfg.comm) cfg.comm->set_context("step " + std::to_string(step + 1));
    policy.zero_grad();
    OfflineStepLog log;
    log.step = step + 1;
    std::map<std::string, double> sums;
    std::string groups_text;
    std::vector<CollatedBatch> micro;
    for (int64_t a = 0; a < cfg.grad_accum; ++a) {
      const std::vector<int64_t>& groups = order[step * cfg.grad_accum + a];
      for (int64_t g : groups) groups_text += (groups_text.empty() ? "" : ",") + std::to_string(g);
      micro.push_back(collate_groups(data, members, rank_slice(groups, cfg), cfg));
      groups_seen += static_cast<int64_t>(groups.size());
    }
    const double inv_accum = 1.0 / static_cast<double>(cfg.grad_accum);
    // This rank's loss and gradient: a mean over its micro-batches, or its token sum over the
    // step's scored tokens. Either way the mean over ranks is the step's.
    const bool per_token = cfg.normalization == LossNormalization::step_token_mean;
    const double world_tokens = per_token ? scored_tokens(micro, cfg) : 0;
    const double scale = per_token ? world_size(cfg) / world_tokens : inv_accum;
    double loss = 0;
    for (const CollatedBatch& cb : micro) {
      log.tokens += cb.batch.B * cb.batch.T;
      const bool policy_is_reference = cfg.reference_is_initial_policy && step == 0;
      const ObjectiveOutput o =
          run_micro_batch(policy, ws, cb, members, ref_logp, objective, true, scale, policy_is_reference);
      loss += per_token ? o.loss : o.loss * inv_accum;
      for (const auto& [k, v] : o.metrics) sums[k] += v * inv_accum;
    }
    if (per_token) loss = loss * world_size(cfg) / world_tokens;
    const int rank = cfg.comm ? cfg.comm->rank() : 0;
    inject_test_nan(rank, step + 1, loss, policy);
    double allreduce_seconds = 0;
    std::string on_ranks;  // the ranks whose own loss or gradient was not finite
    if (world_size(cfg) > 1) {  // the mean gradient of the whole batch, on every rank
      std::vector<double> bad(world_size(cfg), 0.0);
      bad[rank] = nonfinite_flag(loss, policy);
      cfg.comm->allreduce_sum(bad.data(), static_cast<int64_t>(bad.size()));
      on_ranks = ranks_named(bad);
      const auto t0 = std::chrono::steady_clock::now();
      cfg.comm->allreduce_sum(policy.grads().data(), static_cast<int64_t>(policy.grads().size()));
      allreduce_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      scale_grads(policy, 1.0f / static_cast<float>(world_size(cfg)));
      sums["loss"] = loss;
      reduce_over_ranks(sums, cfg, /*average=*/true);
      loss = sums["loss"];
      sums.erase("loss");
    }
    const double gnorm = grad_global_norm(policy);
    require_finite_step(step + 1, loss, gnorm, on_ranks + " on groups [" + groups_text + "]");
    const double lr = cfg.adam.lr * lr_multiplier(cfg.schedule, step, cfg.max_steps, cfg.warmup_steps);
    UpdateReport update = opt.step(policy, lr, gnorm);
    if (opt.sharded()) {  // ZeRO-1: each rank stepped its shard
      gather_parameters(policy, opt, *cfg.comm);
      update = agree_on_update(update, *cfg.comm);
    }
    require_finite_update(step + 1, update, policy, " on groups [" + groups_text + "]");
    log.values = sums;
    log.values["loss"] = loss;
    log.values["grad_norm"] = gnorm;
    log.values["learning_rate"] = lr;
    log.values["epoch"] = static_cast<double>(groups_seen) / static_cast<double>(data.n_groups());
    if (world_size(cfg) > 1) log.values["dist/allreduce_seconds"] = allreduce_seconds;
    if (on_step) on_step(log, policy, opt);
    logs.push_back(std::move(log));
  }
  return logs;
}

}  // namespace rlhf
