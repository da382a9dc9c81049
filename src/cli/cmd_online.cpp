// rlhf ppo | apa | reinforce | rloo | grpo | online-dpo: online RL (train/online_run.h) from a
// prompt-only JSONL file, an HF policy directory and reward sources (--reward specs,
// rollout/reward.h); rlhf best-of-n, the no-training baseline (train/best_of_n.h); and rlhf
// iterative-dpo (train/iterative_dpo.h). This file maps the flags onto those runs.
//
// Same conventions as the offline commands: YAML recipe + flags, manifest.json with every
// resolved option, metrics.jsonl with TRL's names, checkpoint-<step>/ every --save-steps with
// --resume, the final HF checkpoint (without the value head) with the tokenizer files.
// Evaluation (--eval-data, every --eval-steps) samples the held-out prompts, logs eval_ metrics
// and appends example completions to samples.jsonl; --save-rollouts writes every training
// sample to rollouts.jsonl.
#include <iostream>
#include <limits>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/reward_options.h"
#include "cli/sampling_options.h"
#include "data/collate_text.h"
#include "dist/communicator.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "train/best_of_n.h"
#include "train/iterative_dpo.h"
#include "train/online_prompts.h"
#include "train/online/method.h"
#include "train/online_run.h"
#include "train/stop_signal.h"

namespace rlhf::cli {

namespace {

namespace fs = std::filesystem;

void declare_common(Options& o) {
  declare_sampling(o, "1.0", "53");
  o.add("model", "", "policy: HF model directory with tokenizer.json (required)")
      .add("ref-model", "", "reference model directory (default: --model)")
      .add("data", "", "prompt JSONL: 'prompt' as text or messages, other fields go to the rewards (required)")
      .add("out", "", "output directory (required)");
  add_reward_options(o);
  o.add("max-prompt-length", "0", "drop prompts longer than this many tokens, counted (0: the context minus max-new-tokens)")
      .add("prompts-per-step", "8", "prompts sampled per step on each rank (mpirun -np N: N times this per step)")
      .add("generate-batch-size", "32", "sequences decoded together")
      .add("max-steps", "100", "rollout/update iterations")
      .add("num-mini-batches", "1", "optimizer steps per pass over a rollout")
      .add("micro-batches", "1", "forward/backward passes per minibatch on each rank; their gradients add up (less memory, "
                                 "the same update)");
  declare_learning_rate(o, "1e-6");
  o.add("lr-scheduler-type", "linear", "constant | constant_with_warmup | linear | cosine (over the steps)")
      .add("warmup-steps", "0", "warm-up steps")
      .add("weight-decay", "0", "AdamW decoupled weight decay");
  declare_adam(o);
  o.add("max-length", "1024", "row length of the training forwards (prompt + completion must fit)")
      .add("seed", "42", "prompt order, sampling and minibatch shuffles")
      .add("eval-data", "", "held-out prompt JSONL sampled every --eval-steps (eval_ metrics, samples.jsonl)")
      .add("eval-steps", "0", "evaluate every N steps (0: at the end only)")
      .add("logging-steps", "1", "print progress every N steps")
      .flag("save-rollouts", "write every training sample to <out>/rollouts.jsonl: step, prompt, completion, score, "
                             "finish_reason (one process only)");
  declare_checkpoints(o);
  o.flag("skip-bad-rows", "skip malformed prompt rows (counted) instead of stopping");
  declare_backend(o);
  declare_threads(o);
  declare_dist_timeout(o);
}

void declare_method(Options& o, OnlineMethod m) {
  switch (m) {
    case OnlineMethod::ppo:
    case OnlineMethod::apa:
      o.add("num-ppo-epochs", m == OnlineMethod::ppo ? "4" : "2", "passes over each rollout")
          .add("num-generations", "1", "samples per prompt")
          .add("vf-coef", m == OnlineMethod::ppo ? "0.1" : "1.0", "value-loss weight")
          .add("cliprange-value", m == OnlineMethod::ppo ? "0.2" : "inf", "value clipping (inf: plain MSE)")
          .add("gamma", "1.0", "GAE discount")
          .add("lam", "0.95", "GAE lambda")
          .flag("whiten-rewards", "whiten the per-token rewards over the batch (lm-human-preferences)")
          .flag("no-whiten-advantages", "keep raw GAE advantages")
          .add("missing-eos-penalty", "0", "subtracted from the score of completions without EOS")
          .add("score-placement", "last_token",
               "last_token | trl_after_eos: the score on the last completion token, or (TRL's PPOTrainer) on "
               "the padding slot after it, which also gets a value and a value-loss term (full-length "
               "completions keep it on their last token)")
          .add("critic", "", "separate value model initialised from this scalar-head directory (e.g. the reward "
                             "model); default: a value head on the policy trunk")
          .add("critic-learning-rate", "0", "learning rate of --critic (0: --learning-rate)");
      if (m == OnlineMethod::ppo)
        o.add("kl-coef", "0.05", "beta of the per-token KL penalty in the reward (initial value when adaptive)")
            .add("kl-estimator", "k1", "k1 | k3: the per-token KL in the reward")
            .flag("adaptive-kl", "Ziegler et al.'s adaptive KL controller")
            .add("kl-target", "6.0", "adaptive controller target (nats per sequence)")
            .add("kl-horizon", "10000", "adaptive controller horizon (episodes)")
            .add("cliprange", "0.2", "ratio clipping epsilon")
            .add("entropy-coef", "0", "entropy bonus weight (0: off, as TRL and PPO-max)");
      else
        o.add("apa-lambda", "0.1", "lambda of the target log pi_init + A / lambda");
      break;
    case OnlineMethod::reinforce:
    case OnlineMethod::rloo:
      o.add("num-generations", m == OnlineMethod::rloo ? "2" : "1", "samples per prompt (k)")
          .add("num-iterations", "1", "passes over each rollout")
          .add("beta", "0.05", "sequence KL (summed k1) subtracted from the reward")
          .add("surrogate", "clipped_ratio", "clipped_ratio (TRL) | log_prob (the papers)")
          .add("epsilon", "0.2", "ratio clipping (low)")
          .add("epsilon-high", "0.2", "ratio clipping (high)");
      if (m == OnlineMethod::rloo) o.flag("normalize-advantages", "normalise advantages over the batch (TRL)");
      else o.add("baseline-decay", "0.9", "moving average of the batch mean reward used as baseline");
      break;
    case OnlineMethod::grpo:
      o.add("num-generations", "8", "samples per prompt (group size G)")
          .add("num-iterations", "1", "passes over each rollout")
          .add("beta", "0.0", "k3 KL weight in the loss (the paper: 0.04)")
          .add("loss-type", "dapo", "grpo | bnpo | dr_grpo | dapo (token aggregation)")
          .add("scale-rewards", "group", "group | batch | none (advantage std scaling)")
          .add("epsilon", "0.2", "ratio clipping (low)")
          .add("epsilon-high", "0.2", "ratio clipping (high; DAPO suggests 0.28)")
          .flag("use-bias-correction-kl", "multiply k3 by the ratio");
      break;
    case OnlineMethod::online_dpo:
      o.add("beta", "0.1", "DPO beta")
          .add("loss-type", "sigmoid", "sigmoid | ipo (IPO on summed log-probs, TRL's online convention)")
          .add("missing-eos-penalty", "0", "subtracted from the score of completions without EOS");
      break;
  }
}

OnlineConfig config_from(const Options& o, OnlineMethod m, std::vector<int32_t> eos, dist::Communicator& comm) {
  OnlineConfig c;
  c.method = m;
  c.comm = &comm;
  c.prompts_per_step = o.integer("prompts-per-step") * comm.size();
  c.sampling = sampling_from(o, m == OnlineMethod::online_dpo ? 2 : o.integer("num-generations"), eos);
  c.generate_batch = o.integer("generate-batch-size");
  c.max_steps = o.integer("max-steps");
  c.num_mini_batches = o.integer("num-mini-batches");
  c.micro_batches = o.integer("micro-batches");
  c.schedule = parse_lr_schedule(o.str("lr-scheduler-type"));
  c.warmup_steps = o.integer("warmup-steps");
  c.adam = adamw_from(o);
  c.seed = static_cast<uint64_t>(o.integer("seed"));
  c.row_len = o.integer("max-length");
  c.keep_rollouts = o.boolean("save-rollouts");
  auto inf_or_number = [&](const std::string& k) {
    return o.str(k) == "inf" ? std::numeric_limits<double>::infinity() : o.number(k);
  };
  switch (m) {
    case OnlineMethod::ppo:
    case OnlineMethod::apa:
      c.num_epochs = o.integer("num-ppo-epochs");
      c.shaping.gamma = o.number("gamma");
      c.shaping.lambda = o.number("lam");
      c.shaping.whiten_rewards = o.boolean("whiten-rewards");
      c.shaping.whiten_advantages = !o.boolean("no-whiten-advantages");
      c.shaping.missing_eos_penalty = o.number("missing-eos-penalty");
      c.shaping.placement = rollout::score_placement_from_name(o.str("score-placement"));
      if (m == OnlineMethod::ppo) {
        c.beta = o.number("kl-coef");
        c.shaping.kl_estimator = rollout::kl_estimator_from_name(o.str("kl-estimator"));
        c.adaptive_kl = o.boolean("adaptive-kl");
        c.kl_target = o.number("kl-target");
        c.kl_horizon = o.number("kl-horizon");
        c.ppo.cliprange = o.number("cliprange");
        c.ppo.cliprange_value = inf_or_number("cliprange-value");
        c.ppo.vf_coef = o.number("vf-coef");
        c.ppo.entropy_coef = o.number("entropy-coef");
      } else {
        c.beta = 0;
        c.apa.lambda = o.number("apa-lambda");
        c.apa.vf_coef = o.number("vf-coef");
        c.apa.cliprange_value = inf_or_number("cliprange-value");
      }
      break;
    case OnlineMethod::reinforce:
    case OnlineMethod::rloo:
      c.num_epochs = o.integer("num-iterations");
      c.beta = o.number("beta");
      c.sequence_pg.surrogate = objective::sequence_surrogate_from_name(o.str("surrogate"));
      c.sequence_pg.epsilon_low = o.number("epsilon");
      c.sequence_pg.epsilon_high = o.number("epsilon-high");
      if (m == OnlineMethod::rloo) c.normalize_advantages = o.boolean("normalize-advantages");
      else c.reinforce_baseline_decay = o.number("baseline-decay");
      break;
    case OnlineMethod::grpo:
      c.num_epochs = o.integer("num-iterations");
      c.grpo.beta = o.number("beta");
      c.beta = c.grpo.beta;
      c.grpo.loss_type = o.str("loss-type");
      c.grpo.epsilon_low = o.number("epsilon");
      c.grpo.epsilon_high = o.number("epsilon-high");
      c.grpo.use_bias_correction_kl = o.boolean("use-bias-correction-kl");
      c.group_scaling = rollout::group_scaling_from_name(o.str("scale-rewards"));
      break;
    case OnlineMethod::online_dpo:
      c.beta = o.number("beta");
      c.dpo_loss = o.str("loss-type") == "ipo" ? "ipo_sum" : o.str("loss-type");
      c.shaping.missing_eos_penalty = o.number("missing-eos-penalty");
      break;
  }
  c.validate();
  return c;
}

// The prompts of --data for a policy with `context` positions (--max-prompt-length,
// --skip-bad-rows, --max-new-tokens).
std::vector<OnlinePrompt> prompts_from(const Options& o, const TextSide& text, int64_t context, int64_t* dropped) {
  ReadOptions read;
  read.skip_bad_rows = o.boolean("skip-bad-rows");
  const int64_t limit = prompt_length_limit(o.integer("max-prompt-length"), context, o.integer("max-new-tokens"));
  return load_online_prompts(o.str("data"), text.enc, read, limit, dropped);
}

RewardScorer scorer_of(const std::shared_ptr<rollout::CombinedReward>& reward) {
  return [reward](const std::vector<rollout::RewardSample>& b) { return reward->score(b); };
}

Detokenize detokenizer(const TextSide& text) {
  return [&text](const std::vector<int32_t>& ids) { return text.tok.decode(ids, {.skip_special_tokens = true}); };
}

}  // namespace

int cmd_online(const online::MethodEntry& method_entry, int argc, char** argv) {
  const OnlineMethod method = method_entry.id;
  const std::string name = method_entry.command;
  Options o(name, "Online RL (" + name + "): sample from the policy, score with --reward, update.");
  declare_common(o);
  declare_method(o, method);
  if (!o.parse(argc, argv)) return 0;
  o.require({"model", "data", "out"});
  if (o.list("reward").empty()) throw InputError("rlhf " + name + ": give at least one --reward source");
  apply_threads(o);
  dist::Communicator& comm = dist::world();
  comm.set_timeout(o.number("dist-timeout"));
  OnlineRunConfig r;
  r.command = name;
  r.model_dir = o.str("model");
  r.ref_dir = o.str("ref-model");
  if (method_uses_values(method)) {
    r.critic_dir = o.str("critic");
    r.critic_lr = o.number("critic-learning-rate");
  }
  r.out_dir = o.str("out");
  r.data_file = o.str("data");
  r.eval_file = o.str("eval-data");
  r.read.skip_bad_rows = o.boolean("skip-bad-rows");
  r.backend = &backend_from(o);
  r.max_prompt_length = o.integer("max-prompt-length");
  auto text = load_text_side(r.model_dir);
  r.train = config_from(o, method, eos_ids(r.model_dir, text->enc), comm);
  if (method == OnlineMethod::online_dpo) r.missing_eos_penalty = o.number("missing-eos-penalty");
  r.log_every = std::max<int64_t>(1, o.integer("logging-steps"));
  r.eval_every = o.integer("eval-steps");
  r.checkpoints = checkpoints_from(o);
  r.resume = o.boolean("resume");
  r.manifest = run_manifest(o);
  record_rewards(o, r.manifest);
  r.fingerprint_options =
      resume_fingerprint(o, {"out", "eval-steps", "logging-steps", "save-steps", "save-total-limit", "dist-timeout",
                             "backend"});
  install_stop_handlers();  // SIGTERM/SIGINT: checkpoint after the step, then stop
  run_online(r, *text, scorer_of(reward_from(o, r.model_dir)));
  return 0;
}


// rlhf best-of-n: n samples per prompt, scored; the best of each prompt is written out.
int cmd_best_of_n(int argc, char** argv) {
  Options o("best-of-n", "Sample n completions per prompt, score them with --reward, keep the best (no training).");
  o.add("model", "", "policy directory (required)")
      .add("data", "", "prompt JSONL (required)")
      .add("out", "", "output JSONL: prompt, best completion, its score, mean score of the n, finish_reason (required)");
  add_reward_options(o);
  o.add("n", "4", "samples per prompt")
      .add("max-prompt-length", "0", "drop longer prompts, counted (0: the context minus max-new-tokens)")
      .add("generate-batch-size", "32", "sequences decoded together")
      .add("seed", "42", "sampling seed")
      .flag("skip-bad-rows", "skip malformed prompt rows (counted)");
  declare_backend(o);
  declare_threads(o);
  declare_dist_timeout(o);
  declare_sampling(o, "1.0", "53");
  if (!o.parse(argc, argv)) return 0;
  o.require({"model", "data", "out"});
  if (o.list("reward").empty()) throw InputError("rlhf best-of-n: give at least one --reward source");
  apply_threads(o);
  dist::Communicator& comm = dist::world();  // rank 0 writes and prints
  comm.set_timeout(o.number("dist-timeout"));
  auto text = load_text_side(o.str("model"));
  Transformer policy = load_checkpoint(o.str("model"), ModelHeads{});
  policy.set_backend(backend_from(o));
  int64_t dropped = 0;
  const auto prompts = prompts_from(o, *text, policy.config().max_position_embeddings, &dropped);
  const RewardScorer reward = scorer_of(reward_from(o, o.str("model")));
  BestOfNConfig cfg;
  cfg.sampling = sampling_from(o, o.integer("n"), eos_ids(o.str("model"), text->enc));
  cfg.generate_batch = o.integer("generate-batch-size");
  cfg.seed = static_cast<uint64_t>(o.integer("seed"));
  cfg.comm = &comm;
  const BestOfNResult r = best_of_n(policy, prompts, reward, detokenizer(*text), cfg);
  if (comm.rank() != 0) return 0;
  write_file_atomic(o.str("out"), r.jsonl);
  std::cout << "best-of-" << cfg.sampling.n << " on " << prompts.size() << " prompts: mean best score "
            << r.mean_best_score << ", mean score " << r.mean_score << "\n";
  return 0;
}

// rlhf iterative-dpo: rounds of sampling, labelling by --reward (best vs worst of n) and offline
// DPO. The reference stays the initial model, or moves to the previous round's policy with
// --ref-update previous.
int cmd_iterative_dpo(int argc, char** argv) {
  Options o("iterative-dpo", "Rounds of sampling, labelling with --reward (best vs worst of n) and offline DPO.");
  o.add("model", "", "initial policy directory (required)")
      .add("data", "", "prompt JSONL (required)")
      .add("out", "", "output directory (required)");
  add_reward_options(o);
  o.add("rounds", "3", "sample -> label -> train rounds")
      .add("prompts-per-round", "0", "prompts sampled per round, cycling through --data (0: all of them every round)")
      .add("num-generations", "2", "samples per prompt; the pair is the best and the worst")
      .add("min-score-gap", "0", "drop pairs whose scores differ by no more than this (ties)")
      .add("ref-update", "fixed", "fixed (the initial model) | previous (the previous round's policy)")
      .add("loss-type", "sigmoid", "DPO loss(es), as rlhf dpo")
      .add("beta", "0.1", "DPO beta")
      .add("num-train-epochs", "1", "passes over each round's pairs")
      .add("per-device-train-batch-size", "8", "pairs per optimizer step on each rank")
      .add("learning-rate", "5e-7", "learning rate (constant)")
      .add("max-grad-norm", "1.0", "global gradient-norm clipping (0 disables)")
      .add("max-prompt-length", "0", "drop longer prompts, counted (0: the context minus max-new-tokens)")
      .add("max-length", "1024", "row length of the training forwards")
      .add("generate-batch-size", "32", "sequences decoded together")
      .add("seed", "42", "sampling and data order")
      .flag("skip-bad-rows", "skip malformed prompt rows (counted)");
  declare_backend(o);
  declare_threads(o);
  declare_dist_timeout(o);
  declare_sampling(o, "0.9", "53");
  if (!o.parse(argc, argv)) return 0;
  o.require({"model", "data", "out"});
  if (o.list("reward").empty()) throw InputError("rlhf iterative-dpo: give at least one --reward source");
  if (o.str("ref-update") != "fixed" && o.str("ref-update") != "previous")
    throw InputError("rlhf iterative-dpo: --ref-update expected fixed or previous, got '" + o.str("ref-update") + "'");
  apply_threads(o);
  dist::Communicator& comm = dist::world();
  comm.set_timeout(o.number("dist-timeout"));
  const fs::path model_dir = o.str("model");
  RunLog log(o.str("out"), comm.rank() == 0);
  auto text = load_text_side(model_dir);
  Transformer policy = load_checkpoint(model_dir, ModelHeads{});
  policy.set_backend(backend_from(o));
  int64_t dropped = 0;
  const auto prompts = prompts_from(o, *text, policy.config().max_position_embeddings, &dropped);
  const RewardScorer reward = scorer_of(reward_from(o, model_dir));
  if (o.integer("num-generations") < 2)
    throw InputError("rlhf iterative-dpo: --num-generations must be at least 2 (best vs worst)");
  IterativeDpoConfig cfg;
  cfg.rounds = o.integer("rounds");
  cfg.prompts_per_round = o.integer("prompts-per-round");
  cfg.sampling = sampling_from(o, o.integer("num-generations"), eos_ids(model_dir, text->enc));
  cfg.generate_batch = o.integer("generate-batch-size");
  cfg.min_score_gap = o.number("min-score-gap");
  cfg.ref_follows_policy = o.str("ref-update") == "previous";
  cfg.losses.clear();
  for (const std::string& loss : split_commas(o.str("loss-type"))) cfg.losses.emplace_back(loss, 1.0);
  cfg.pair.beta = o.number("beta");
  objective::pairwise_loss(cfg.losses, {}, cfg.pair);  // validates before any work
  cfg.epochs = o.number("num-train-epochs");
  cfg.train.comm = &comm;
  cfg.train.groups_per_micro_batch = o.integer("per-device-train-batch-size") * comm.size();
  cfg.train.schedule = LrSchedule::constant;
  cfg.train.adam.lr = o.number("learning-rate");
  cfg.train.adam.max_grad_norm = o.number("max-grad-norm");
  cfg.train.pack.seq_len = o.integer("max-length");
  if (cfg.train.groups_per_micro_batch <= 0) throw InputError("rlhf iterative-dpo: the batch size must be positive");
  cfg.seed = static_cast<uint64_t>(o.integer("seed"));
  fs::create_directories(log.dir());
  nlohmann::json manifest = run_manifest(o);
  record_rewards(o, manifest);
  manifest["data"] = {{"file", o.str("data")}, {"prompts", prompts.size()}, {"dropped_too_long", dropped}};
  manifest["resolved"] = {{"ranks", comm.size()}, {"communicator", comm.name()}};
  log.write_manifest(manifest);
  log.start_metrics();
  train_iterative_dpo(policy, prompts, reward, detokenizer(*text), cfg, log.console(),
                      [&](const nlohmann::json& record) { log.metrics(record); });
  if (log.lead()) save_checkpoint(policy, log.dir(), model_dir);
  log.console() << "model saved to " << log.dir().string() << "\n";
  return 0;
}

}  // namespace rlhf::cli
