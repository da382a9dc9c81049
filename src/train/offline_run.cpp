#include "train/offline_run.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <optional>
#include <sstream>

#include "data/collate_text.h"
#include "model/checkpoint.h"
#include "tensor/error.h"
#include "train/progress.h"
#include "train/reference_cache.h"
#include "train/shared_vocabulary.h"
#include "train/stop_signal.h"
#include "train/train_checkpoint.h"
#include "train/zero.h"

namespace rlhf {

namespace {

namespace fs = std::filesystem;

OfflineConfig loop_config(const OfflineRunConfig& run, dist::Communicator& comm, int64_t groups,
                          const PackOptions& pack) {
  OfflineConfig cfg;
  cfg.comm = &comm;
  cfg.groups_per_micro_batch = run.per_rank_batch * comm.size();
  cfg.grad_accum = run.grad_accum;
  if (cfg.groups_per_micro_batch <= 0 || cfg.grad_accum <= 0)
    throw InputError("batch size and gradient accumulation must be positive");
  const int64_t per_step = cfg.groups_per_micro_batch * cfg.grad_accum;
  cfg.max_steps = run.max_steps > 0 ? run.max_steps : static_cast<int64_t>(std::ceil(run.epochs * groups / per_step));
  cfg.max_steps = std::max<int64_t>(1, cfg.max_steps);
  cfg.warmup_steps = run.warmup_steps > 0 ? run.warmup_steps
                                          : static_cast<int64_t>(std::ceil(run.warmup_ratio * cfg.max_steps));
  cfg.schedule = run.schedule;
  cfg.adam = run.adam;
  cfg.seed = run.seed;
  cfg.pack = pack;
  cfg.want_head = run.reward_head;
  std::error_code ec;  // a missing --ref-model is reported, by name, where it is loaded
  cfg.reference_is_initial_policy = !run.ref_dir.empty() && fs::equivalent(run.ref_dir, run.model_dir, ec);
  cfg.normalization = run.normalization;
  return cfg;
}

// Micro-batches of the evaluation file in file order.
BatchOrder in_order(int64_t groups, int64_t per_micro) {
  BatchOrder bo;
  for (int64_t g = 0; g < groups; g += per_micro) {
    std::vector<int64_t> micro;
    for (int64_t k = g; k < std::min(groups, g + per_micro); ++k) micro.push_back(k);
    bo.push_back(micro);
  }
  return bo;
}

std::string progress_line(const std::string& command, const OfflineStepLog& log, int64_t max_steps,
                          double tokens_per_second, double eta) {
  std::ostringstream line;
  line << command << " step " << log.step << "/" << max_steps << " | loss " << std::fixed << std::setprecision(4)
       << log.values.at("loss");
  for (const char* k : {"rewards/accuracies", "rewards/margins", "kl", "accuracy", "margin"})
    if (log.values.count(k)) line << " | " << k << " " << log.values.at(k);
  line << " | lr " << std::scientific << std::setprecision(2) << log.values.at("learning_rate") << " | "
       << std::fixed << std::setprecision(0) << tokens_per_second << " tok/s | ETA " << format_hms(eta);
  return line.str();
}

double moments_mb(const AdamW& opt) { return (opt.shard_end() - opt.shard_begin()) * 8.0 / (1 << 20); }

nlohmann::json manifest(const OfflineRunConfig& run, const OfflineConfig& cfg, const Transformer& policy,
                        const AdamW& opt, const OfflineData& train, uint32_t data_crc, dist::Communicator& comm) {
  nlohmann::json m = run.manifest;
  m["resolved"] = {{"max_steps", cfg.max_steps}, {"warmup_steps", cfg.warmup_steps}};
  int64_t prompt_tokens = 0, tokens = 0;  // what the run forwards (its compute, docs/testbed.md §5)
  for (const Sequence& s : train.data.seqs) prompt_tokens += s.prompt_len, tokens += s.size();
  for (const PackedRow& r : train.data.rows) tokens += r.size() - r.padding;
  m["model"] = {{"family", model_family_name(policy.config().family)}, {"parameters", policy.n_params()}};
  if (train.data.rows.empty())
    m["data"] = {{"file", run.data_file.string()}, {"fingerprint_crc32", data_crc},
                 {"rows", train.read.rows}, {"kept", train.read.kept}, {"groups", train.data.n_groups()},
                 {"sequences", train.data.seqs.size()},
                 {"tokens", {{"prompt", prompt_tokens}, {"completion", tokens - prompt_tokens}}},
                 {"encode", train.encode.to_json()}, {"collate", train.collate.to_json()}};
  else  // token documents packed into rows
    m["data"] = {{"file", run.data_file.string()}, {"fingerprint_crc32", data_crc},
                 {"documents", train.read.rows}, {"rows", train.data.n_groups()}, {"tokens", tokens}};
  m["resolved"]["ranks"] = comm.size();
  m["resolved"]["communicator"] = comm.name();
  m["resolved"]["optimizer_state_mb_per_rank"] = moments_mb(opt);
  return m;
}

struct References {
  std::vector<double> train, eval;
};

// The reference log-probs of both files; rank 0 caches the training file's in the run directory.
References reference_logps(const OfflineRunConfig& run, const OfflineConfig& cfg, const OfflineData& train,
                           const std::optional<OfflineData>& eval, RunLog& log) {
  References r;
  if (run.ref_dir.empty()) return r;
  require_shared_vocabulary(run.model_dir, run.ref_dir, "--ref-model");
  std::optional<Transformer> model;  // loaded once, when first needed
  auto reference = [&]() -> Transformer& {
    if (!model) {
      model.emplace(load_checkpoint(run.ref_dir, ModelHeads{}));
      model->set_backend(*run.backend);
    }
    return *model;
  };
  r.train = log.lead() ? cached_reference_logps(run.out_dir, run.ref_dir, train.data, cfg.pack, log.console(), reference)
                       : compute_reference_logps(reference(), train.data, cfg.pack);
  if (eval) r.eval = compute_reference_logps(reference(), eval->data, cfg.pack);
  return r;
}

TrainerState initial_state(const OfflineRunConfig& run, const OfflineConfig& cfg, const OfflineData& train,
                           uint32_t data_crc, dist::Communicator& comm) {
  TrainerState st;
  st.fingerprint = {{"task", run.command},         {"batch_size", cfg.groups_per_micro_batch},
                    {"ranks", comm.size()},        {"grad_accum", cfg.grad_accum},
                    {"max_steps", cfg.max_steps},  {"seed", cfg.seed},
                    {"groups", train.data.n_groups()}, {"data_crc32", data_crc},
                    {"options", run.fingerprint_options}};
  return st;
}

void shard_moments(AdamW& opt, Transformer& policy, dist::Communicator& comm, std::ostream& console) {
  shard_optimizer(opt, policy, comm);
  console << "ZeRO-1: AdamW moments " << std::fixed << std::setprecision(1) << moments_mb(opt) << " MB per rank (of "
          << policy.n_params() * 8.0 / (1 << 20) << " MB)\n"
          << std::defaultfloat;
}

// The run from its data on: references, policy, resume, the loop and the run directory.
OfflineRunSummary train_run(const OfflineRunConfig& run, const PackOptions& pack, const OfflineData& train,
                            const std::optional<OfflineData>& eval, RunLog& log, dist::Communicator& comm) {
  if (!run.objective) throw LogicError("run_offline: OfflineRunConfig::objective is not set");
  const int64_t groups = train.data.n_groups();
  const uint32_t data_crc = offline_data_fingerprint(train.data);
  const OfflineConfig cfg = loop_config(run, comm, groups, pack);
  const ObjectiveFn objective = run.objective(train.data);
  fs::create_directories(run.out_dir);
  const References ref = reference_logps(run, cfg, train, eval, log);

  LoadReport lrep;
  Transformer policy =
      load_checkpoint(run.model_dir, ModelHeads{.lm_head = !run.reward_head, .score_head = run.reward_head}, &lrep, cfg.seed);
  policy.set_backend(*run.backend);
  if (lrep.score_head_initialised) log.console() << "score head: newly initialised (the checkpoint has none)\n";
  AdamW opt(policy, cfg.adam);
  const BatchOrder order = shuffled_batch_order(groups, cfg.groups_per_micro_batch, cfg.max_steps * cfg.grad_accum, cfg.seed);
  TrainerState st = initial_state(run, cfg, train, data_crc, comm);
  std::vector<std::string> kept;
  if (run.resume) kept = resume_from_latest(run.out_dir, policy, opt, st, st.fingerprint, cfg.max_steps, log.console());
  if (run.zero1 && comm.size() > 1) shard_moments(opt, policy, comm, log.console());
  log.write_manifest(manifest(run, cfg, policy, opt, train, data_crc, comm));
  log.start_metrics(kept);
  log.console() << "rlhf " << run.command << ": " << groups << " " << offline_group_noun(run.kind) << ", "
                << cfg.max_steps << " steps of " << cfg.groups_per_micro_batch * cfg.grad_accum << ", "
                << parameters_and_state(policy.n_params()) << "\n";

  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first = st.global_step;
  OfflineRunSummary summary;
  int64_t tokens = 0;
  const ObjectiveFn eval_objective = eval ? run.objective(eval->data) : objective;
  const BatchOrder eval_order = eval ? in_order(eval->data.n_groups(), cfg.groups_per_micro_batch) : BatchOrder{};
  auto run_eval = [&](int64_t step) {
    nlohmann::json rec = {{"step", step}};
    for (const auto& [k, v] : evaluate_offline(policy, eval->data, ref.eval, eval_objective, cfg, eval_order))
      rec["eval_" + k] = v;
    log.metrics(rec);
    std::ostringstream line;
    line << "eval at step " << step << ": loss " << rec["eval_loss"];
    log.note(line.str());
  };
  train_offline(policy, opt, train.data, ref.train, objective, cfg, order, st.global_step,
                [&](const OfflineStepLog& step_log, const Transformer& m, const AdamW& a) {
                  nlohmann::json rec = {{"step", step_log.step}};
                  for (const auto& [k, v] : step_log.values) rec[k] = v;
                  log.metrics(rec);
                  st.global_step = step_log.step;
                  tokens += step_log.tokens;
                  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                  if (summary.steps == 0) summary.first_loss = step_log.values.at("loss");
                  summary.last_loss = step_log.values.at("loss");
                  summary.steps += 1;
                  summary.tokens_per_second = tokens / std::max(el, 1e-9);
                  if (step_log.step % run.log_every == 0 || step_log.step == cfg.max_steps)
                    log.progress(progress_line(run.command, step_log, cfg.max_steps, summary.tokens_per_second,
                                               el / (step_log.step - first) * (cfg.max_steps - step_log.step)));
                  if (eval && run.eval_every > 0 && step_log.step % run.eval_every == 0) run_eval(step_log.step);
                  const int stop = step_log.step < cfg.max_steps ? stop_after_step(comm) : 0;
                  if (!stop && !log.checkpoint_due(step_log.step, cfg.max_steps)) return;
                  if (a.sharded()) {  // every rank helps assemble the whole optimizer; rank 0 writes it
                    const AdamW full = gathered_optimizer(a, m, comm);
                    log.save_checkpoint(run.out_dir, m, full, st);
                  } else {
                    log.save_checkpoint(run.out_dir, m, a, st);
                  }
                  if (stop) throw StopRequested(stop, step_log.step, checkpoint_dir(run.out_dir, step_log.step));
                });
  log.end_progress();
  if (eval && (run.eval_every <= 0 || cfg.max_steps % run.eval_every != 0)) run_eval(cfg.max_steps);
  if (log.lead()) save_checkpoint(policy, run.out_dir, run.model_dir);
  log.console() << "model saved to " << run.out_dir.string() << "\n";
  return summary;
}

}  // namespace

OfflineRunSummary run_offline(const OfflineRunConfig& run, std::ostream& console) {
  dist::Communicator& comm = run.comm ? *run.comm : dist::world();
  RunLog log(run.out_dir, comm.rank() == 0, console, run.checkpoints);
  auto text = load_text_side(run.model_dir);
  OfflineDataOptions data_opt = run.data;
  PackOptions pack = run.pack;
  cap_sequence_length(data_opt.truncate, pack, model_sequence_limit({run.model_dir, run.ref_dir}), log.console());
  const OfflineData train = build_offline_data(run.kind, run.data_file, text->enc, data_opt);
  if (train.ties) log.console() << "ranked data: " << train.ties << " rows with tied scores\n";
  if (train.encode.seam_mismatches)
    log.console() << "seam: in " << train.encode.seam_mismatches << " of " << train.encode.examples
                  << " examples the prompt's tokens are not a prefix of prompt + completion's (a merge crosses "
                     "the seam, or the chat template renders the prompt alone differently); "
                  << (data_opt.encode.seam == SeamPolicy::common_prefix
                          ? "their completions start where the two part, as in TRL"
                          : "their completions are tokenized on their own")
                  << " (--seam-policy)\n";
  std::optional<OfflineData> eval;
  if (!run.eval_file.empty()) eval = build_offline_data(run.kind, run.eval_file, text->enc, data_opt);
  return train_run(run, pack, train, eval, log, comm);
}

OfflineRunSummary run_offline(const OfflineRunConfig& run, const OfflineData& train, std::ostream& console) {
  dist::Communicator& comm = run.comm ? *run.comm : dist::world();
  RunLog log(run.out_dir, comm.rank() == 0, console, run.checkpoints);
  return train_run(run, run.pack, train, std::nullopt, log, comm);
}

}  // namespace rlhf
