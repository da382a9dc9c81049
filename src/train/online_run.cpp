#include "train/online_run.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <optional>
#include <sstream>

#include "model/checkpoint.h"
#include "train/online_prompts.h"
#include "train/progress.h"
#include "train/shared_vocabulary.h"
#include "train/stop_signal.h"
#include "train/train_checkpoint.h"

namespace rlhf {

namespace {

namespace fs = std::filesystem;

// The policy as transformers expects it: the value head is training state, not part of the model.
Transformer without_value_head(const Transformer& m) {
  Transformer out(m.config(), ModelHeads{});
  for (const ParamSlot& s : out.slots()) std::copy_n(m.params().data() + m.slot(s.name).offset, s.numel, out.param(s.name));
  return out;
}

// A separate critic and its optimizer (PPO/APA with critic_dir).
struct Critic {
  std::optional<Transformer> model;
  std::optional<AdamW> opt;
};

Critic load_critic(const OnlineRunConfig& run, std::ostream& console) {
  Critic c;
  if (run.critic_dir.empty()) return c;
  LoadReport rep;
  c.model.emplace(load_checkpoint(run.critic_dir, ModelHeads{.lm_head = false, .score_head = true}, &rep, run.train.seed));
  c.model->set_backend(*run.backend);
  if (rep.score_head_initialised) console << "critic: value head newly initialised (the checkpoint has none)\n";
  AdamWConfig adam = run.train.adam;
  if (run.critic_lr > 0) adam.lr = run.critic_lr;
  c.opt.emplace(*c.model, adam);
  return c;
}

std::string progress_line(const std::string& command, const OnlineStepLog& log, int64_t max_steps, double eta) {
  std::ostringstream line;
  line << command << " step " << log.step << "/" << max_steps << std::fixed << std::setprecision(4) << " | score "
       << log.values.at("objective/scores");
  if (log.values.count("skipped")) {
    line << " | skipped: no defined score";
  } else {
    if (log.values.count("objective/kl")) line << " | kl " << log.values.at("objective/kl");
    line << " | len " << std::setprecision(1) << log.values.at("completions/mean_length") << " | loss "
         << std::setprecision(4) << log.values.at("loss");
  }
  line << " | ETA " << format_hms(eta);
  return line.str();
}

// A step's samples as rows of rollouts.jsonl: the prompt as its data row had it and, for a
// conversational prompt, the completion as one assistant message (the layouts that `rlhf data
// pairs` and `rlhf dpo` read).
std::vector<nlohmann::ordered_json> rollout_rows(const OnlineStepLog& step_log, const std::vector<OnlinePrompt>& prompts) {
  std::vector<nlohmann::ordered_json> rows;
  for (const RolloutSample& r : step_log.rollouts) {
    const Text& prompt = prompts[r.prompt].prompt;
    const Text completion = prompt.is_chat ? Text{true, "", {{"assistant", r.completion}}} : Text{false, r.completion, {}};
    nlohmann::ordered_json row = {{"step", step_log.step}, {"prompt", text_to_json(prompt)},
                                  {"completion", text_to_json(completion)}};
    row["score"] = std::isnan(r.score) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.score);
    row["finish_reason"] = rollout::finish_reason_name(r.finish);
    rows.push_back(std::move(row));
  }
  return rows;
}

// Samples the held-out prompts: eval_ metrics, examples in samples.jsonl, the first two printed.
void evaluate(Transformer& policy, const std::vector<OnlinePrompt>& prompts, const RewardScorer& scorer,
              const Detokenize& detok, const OnlineConfig& cfg, dist::Communicator& comm, int64_t step, RunLog& log) {
  const OnlineEval ev = evaluate_online(policy, prompts, scorer, detok, cfg.sampling, cfg.generate_batch, cfg.seed, &comm);
  nlohmann::json rec = {{"step", step}};
  for (const auto& [k, v] : ev.values) rec["eval_" + k] = v;
  log.metrics(rec);
  std::ostringstream line;
  line << "eval at step " << step << ": score " << ev.values.at("objective/scores") << ", length "
       << ev.values.at("completions/mean_length");
  log.note(line.str());
  std::vector<nlohmann::json> rows;
  for (size_t i = 0; i < ev.examples.size(); ++i) {
    const SampleExample& ex = ev.examples[i];
    rows.push_back({{"step", step}, {"prompt", ex.prompt}, {"completion", ex.completion}, {"score", ex.score}});
    if (i < 2) log.console() << "  " << ex.prompt << " -> " << ex.completion << "  [" << ex.score << "]\n";
  }
  log.samples(rows);
}

}  // namespace

void run_online(const OnlineRunConfig& run, const TextSide& text, const RewardScorer& reward, std::ostream& console) {
  OnlineConfig cfg = run.train;
  dist::Communicator& comm = cfg.comm ? *cfg.comm : dist::world();
  cfg.comm = &comm;
  RunLog log(run.out_dir, comm.rank() == 0, console, run.checkpoints);
  const fs::path ref_dir = run.ref_dir.empty() ? run.model_dir : run.ref_dir;
  require_shared_vocabulary(run.model_dir, ref_dir, "--ref-model");
  if (!run.critic_dir.empty()) require_shared_vocabulary(run.model_dir, run.critic_dir, "--critic");
  const bool uses_values = method_uses_values(cfg.method);
  const bool value_head = uses_values && run.critic_dir.empty();
  LoadReport lrep;
  Transformer policy = load_checkpoint(run.model_dir, ModelHeads{.lm_head = true, .score_head = value_head}, &lrep, cfg.seed);
  if (lrep.score_head_initialised) log.console() << "value head: newly initialised on the policy trunk\n";
  Critic critic = uses_values ? load_critic(run, log.console()) : Critic{};
  Transformer ref = load_checkpoint(ref_dir, ModelHeads{});
  policy.set_backend(*run.backend);
  ref.set_backend(*run.backend);
  const int64_t context = policy.config().max_position_embeddings;
  const int64_t limit = prompt_length_limit(run.max_prompt_length, context, cfg.sampling.max_new_tokens);
  int64_t dropped = 0, eval_dropped = 0;
  const std::vector<OnlinePrompt> prompts = load_online_prompts(run.data_file, text.enc, run.read, limit, &dropped);
  std::vector<OnlinePrompt> eval_prompts;
  if (!run.eval_file.empty()) eval_prompts = load_online_prompts(run.eval_file, text.enc, run.read, limit, &eval_dropped);
  if (dropped) log.console() << "prompts: " << dropped << " dropped (too long for the context)\n";

  // Online DPO applies the missing-EOS penalty to the scores that pick chosen and rejected.
  const RewardScorer scorer = [&](const std::vector<rollout::RewardSample>& b) {
    rollout::RewardResult r = reward(b);
    if (cfg.method == OnlineMethod::online_dpo && run.missing_eos_penalty != 0)
      for (size_t i = 0; i < b.size(); ++i)
        if (!b[i].eos) r.scores[i] -= run.missing_eos_penalty;
    return r;
  };
  const Detokenize detok = [&](const std::vector<int32_t>& ids) { return text.tok.decode(ids, {.skip_special_tokens = true}); };

  AdamW opt(policy, cfg.adam);
  TrainerState st;
  st.fingerprint = {{"task", run.command}, {"prompts", prompts.size()}, {"options", run.fingerprint_options}};
  // A run's samples and batches depend on its number of ranks (prompts per step are per rank).
  if (comm.size() > 1) st.fingerprint["ranks"] = comm.size();
  OnlineState ost;
  ost.kl_coef = cfg.beta;
  std::vector<std::string> kept;
  if (run.resume) {
    kept = resume_from_latest(run.out_dir, policy, opt, st, st.fingerprint, cfg.max_steps, log.console());
    try {
      ost = OnlineState::from_json(st.extra);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(run.out_dir.string() + ": the checkpoint's trainer_state.json 'extra': " + e.what());
    }
    if (!std::isfinite(ost.kl_coef) || ost.kl_coef < 0 || !std::isfinite(ost.reward_baseline))
      throw InputError(run.out_dir.string() + ": the checkpoint's trainer_state.json 'extra' holds a negative or "
                       "non-finite kl_coef or reward_baseline");
    if (critic.model) {  // the critic's checkpoint of the same step, written just before the policy's
      TrainerState cst;
      load_training_checkpoint(checkpoint_dir(run.out_dir / "critic", st.global_step), *critic.model,
                               *critic.opt, cst, st.fingerprint);
    }
  }
  fs::create_directories(run.out_dir);
  nlohmann::json manifest = run.manifest;
  manifest["model"] = {{"family", model_family_name(policy.config().family)}, {"parameters", policy.n_params()}};
  manifest["data"] = {{"file", run.data_file.string()}, {"prompts", prompts.size()}, {"dropped_too_long", dropped}};
  manifest["resolved"] = {{"ranks", comm.size()}, {"communicator", comm.name()}, {"prompts_per_step", cfg.prompts_per_step}};
  log.write_manifest(manifest);
  log.start_metrics(kept);
  log.start_samples(st.global_step);
  if (cfg.keep_rollouts) log.start_rollouts(st.global_step);
  log.console() << "rlhf " << run.command << ": " << prompts.size() << " prompts, " << cfg.max_steps << " steps of "
                << cfg.prompts_per_step << " prompts x " << cfg.sampling.n << " samples";
  if (comm.size() > 1) log.console() << " (" << comm.size() << " ranks)";
  log.console() << ", " << parameters_and_state(policy.n_params()) << "\n";

  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first = st.global_step;
  auto run_eval = [&](int64_t step) { evaluate(policy, eval_prompts, scorer, detok, cfg, comm, step, log); };
  train_online(policy, opt, ref, prompts, scorer, detok, cfg, st.global_step, ost,
               [&](const OnlineStepLog& step_log, const Transformer& m, const AdamW& a, const OnlineState& s) {
                 nlohmann::json rec = {{"step", step_log.step}};
                 for (const auto& [k, v] : step_log.values) rec[k] = v;
                 log.metrics(rec);
                 if (cfg.keep_rollouts) log.rollouts(rollout_rows(step_log, prompts));
                 st.global_step = step_log.step;
                 st.extra = s.to_json();
                 if (step_log.step % run.log_every == 0 || step_log.step == cfg.max_steps) {
                   const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                   log.progress(progress_line(run.command, step_log, cfg.max_steps,
                                              el / (step_log.step - first) * (cfg.max_steps - step_log.step)));
                 }
                 if (!eval_prompts.empty() && run.eval_every > 0 && step_log.step % run.eval_every == 0) run_eval(step_log.step);
                 const int stop = step_log.step < cfg.max_steps ? stop_after_step(comm) : 0;
                 if (stop || log.checkpoint_due(step_log.step, cfg.max_steps)) {
                   if (critic.model) log.save_checkpoint(run.out_dir / "critic", *critic.model, *critic.opt, st);
                   log.save_checkpoint(run.out_dir, m, a, st);
                 }
                 if (stop) throw StopRequested(stop, step_log.step, checkpoint_dir(run.out_dir, step_log.step));
               },
               critic.model ? &*critic.model : nullptr, critic.opt ? &*critic.opt : nullptr);
  log.end_progress();
  if (!eval_prompts.empty() && (run.eval_every <= 0 || cfg.max_steps % run.eval_every != 0)) run_eval(cfg.max_steps);
  if (log.lead()) {
    save_checkpoint(value_head ? without_value_head(policy) : policy, run.out_dir, run.model_dir);
    if (critic.model) save_checkpoint(*critic.model, run.out_dir / "critic", run.critic_dir);
  }
  log.console() << "model saved to " << run.out_dir.string() << "\n";
}

}  // namespace rlhf
