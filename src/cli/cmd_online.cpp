// rlhf ppo | apa | reinforce | rloo | grpo | online-dpo: the online loop (train/online_trainer.h)
// from a prompt-only JSONL file, an HF policy directory and reward sources (--reward specs,
// rollout/reward.h); and rlhf best-of-n, the no-training baseline.
//
// Same conventions as the offline commands: YAML recipe + flags, manifest.json with every
// resolved option, metrics.jsonl with TRL's names, checkpoint-<step>/ every --save-steps with
// --resume, the final HF checkpoint (without the value head) with the tokenizer files.
// Evaluation (--eval-data, every --eval-steps) samples the held-out prompts, logs eval_ metrics
// and appends example completions to samples.jsonl.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/reward_options.h"
#include "cli/sampling_options.h"
#include "data/collate.h"
#include "data/collate_text.h"
#include "data/records.h"
#include "dist/communicator.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "train/offline_trainer.h"
#include "train/online_trainer.h"
#include "train/progress.h"
#include "train/train_checkpoint.h"

namespace rlhf::cli {

namespace {

namespace fs = std::filesystem;

void declare_common(Options& o) {
  declare_sampling(o, "1.0", "53");
  o.add("model", "", "policy: HF model directory with tokenizer.json (required)")
      .add("ref-model", "", "reference model directory (default: --model)")
      .add("data", "", "prompt JSONL: 'prompt' as text or messages, other fields go to the rewards (required)")
      .add("out", "", "output directory (required)")
      .repeated("reward", "reward source spec, repeatable: [W*]rm|exact|regex|format|eos|length|cmd[(opts)][:arg] "
                          "(see README)")
      .add("reward-nan", "propagate", "a NaN term makes the score NaN (propagate) or is left out (ignore)")
      .add("max-prompt-length", "0", "drop prompts longer than this many tokens, counted (0: the context minus max-new-tokens)")
      .add("prompts-per-step", "8", "prompts sampled per step on each rank (mpirun -np N: N times this per step)")
      .add("generate-batch-size", "32", "sequences decoded together")
      .add("max-steps", "100", "rollout/update iterations")
      .add("num-mini-batches", "1", "optimizer steps per pass over a rollout")
      .add("micro-batches", "1", "forward/backward passes per minibatch on each rank; their gradients add up (less memory, "
                                 "the same update)")
      .add("learning-rate", "1e-6", "peak learning rate")
      .add("lr-scheduler-type", "linear", "constant | constant_with_warmup | linear | cosine (over the steps)")
      .add("warmup-steps", "0", "warm-up steps")
      .add("weight-decay", "0", "AdamW decoupled weight decay")
      .add("adam-beta1", "0.9", "AdamW beta1")
      .add("adam-beta2", "0.999", "AdamW beta2")
      .add("adam-epsilon", "1e-8", "AdamW epsilon")
      .add("max-grad-norm", "1.0", "global gradient-norm clipping (0 disables)")
      .add("max-length", "1024", "row length of the training forwards (prompt + completion must fit)")
      .add("seed", "42", "prompt order, sampling and minibatch shuffles")
      .add("eval-data", "", "held-out prompt JSONL sampled every --eval-steps (eval_ metrics, samples.jsonl)")
      .add("eval-steps", "0", "evaluate every N steps (0: at the end only)")
      .add("logging-steps", "1", "print progress every N steps")
      .add("save-steps", "0", "write a resumable checkpoint-<step>/ every N steps (0: none)")
      .add("save-total-limit", "0", "keep only the newest N checkpoints (0: all)")
      .flag("resume", "continue from the newest checkpoint in --out")
      .flag("skip-bad-rows", "skip malformed prompt rows (counted) instead of stopping")
      .add("backend", "cpu", "kernel backend: cpu | reference (plain double-precision loops: slow, a check of cpu)")
      .add("threads", "0", "CPU threads (0 = all cores)")
      .add("dist-timeout", "1800", "under mpirun: seconds a collective may wait for the other ranks before all stop");
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
  c.adam = {o.number("learning-rate"), o.number("adam-beta1"), o.number("adam-beta2"), o.number("adam-epsilon"),
            o.number("weight-decay"), o.number("max-grad-norm")};
  c.seed = static_cast<uint64_t>(o.integer("seed"));
  c.row_len = o.integer("max-length");
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

// Prompts tokenized with the chat template's generation prompt; prompts that leave no room for
// a completion are dropped and counted.
std::vector<OnlinePrompt> load_prompts(const fs::path& path, const TextSide& text, const Options& o,
                                       int64_t context, int64_t* dropped) {
  ReadOptions ro;
  ro.skip_bad_rows = o.boolean("skip-bad-rows");
  ReadReport rep;
  int64_t limit = o.integer("max-prompt-length");
  if (limit <= 0) limit = context - o.integer("max-new-tokens");
  limit = std::min(limit, context - 1);
  std::vector<OnlinePrompt> out;
  *dropped = 0;
  for (PromptRecord& r : read_prompts(path, ro, &rep)) {
    EncodeReport er;
    TokenizedExample ex = encode_example(text.enc, r.prompt, {}, {}, &er, r.line);
    if (ex.prompt.empty() || static_cast<int64_t>(ex.prompt.size()) > limit) {
      ++*dropped;
      continue;
    }
    out.push_back({std::move(r.prompt), std::move(ex.prompt), std::move(r.extra)});
  }
  if (out.empty())
    throw InputError(path.string() + ": no usable prompts (" + std::to_string(*dropped) + " longer than " +
                     std::to_string(limit) + " tokens)");
  return out;
}

// Every rank's `text`, concatenated in rank order (each byte through the exact double all-gather).
std::string gather_text(dist::Communicator& comm, const std::string& text) {
  std::vector<double> bytes;
  for (unsigned char c : text) bytes.push_back(c);
  std::string out;
  for (double b : dist::allgather_concat(comm, bytes)) out += static_cast<char>(static_cast<unsigned char>(b));
  return out;
}

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

// The policy as transformers expects it: the value head is training state, not part of the model.
Transformer without_value_head(const Transformer& m) {
  Transformer out(m.config(), ModelHeads{});
  for (const ParamSlot& s : out.slots()) std::copy_n(m.params().data() + m.slot(s.name).offset, s.numel, out.param(s.name));
  return out;
}

int run_online(OnlineMethod method, int argc, char** argv) {
  const std::string name = method == OnlineMethod::online_dpo ? "online-dpo" : online_method_name(method);
  Options o(name, "Online RL (" + name + "): sample from the policy, score with --reward, update.");
  declare_common(o);
  declare_method(o, method);
  if (!o.parse(argc, argv)) return 0;
  for (const char* req : {"model", "data", "out"})
    if (o.str(req).empty()) throw InputError("rlhf " + name + ": --" + req + " is required");
  if (o.list("reward").empty()) throw InputError("rlhf " + name + ": give at least one --reward source");
  set_threads(o.integer("threads"));
  // Under mpirun every rank runs this function on its slice of each step's prompts; rank 0 alone
  // prints and writes (manifest, metrics, samples, checkpoints, the model).
  dist::Communicator& comm = dist::world();
  const bool lead = comm.rank() == 0;
  if (!lead) std::cout.setstate(std::ios::failbit);
  comm.set_timeout(o.number("dist-timeout"));
  const fs::path model_dir = o.str("model"), out = o.str("out");
  const fs::path ref_dir = o.str("ref-model").empty() ? model_dir : fs::path(o.str("ref-model"));
  auto text = load_text_side(model_dir);
  const OnlineConfig cfg = config_from(o, method, eos_ids(model_dir, text->enc), comm);
  LoadReport lrep;
  const bool separate_critic = method_uses_values(method) && !o.str("critic").empty();
  Transformer policy = load_checkpoint(
      model_dir, ModelHeads{.lm_head = true, .score_head = method_uses_values(method) && !separate_critic}, &lrep, cfg.seed);
  policy.set_backend(kernels::backend_named(o.str("backend")));
  if (lrep.score_head_initialised) std::cout << "value head: newly initialised on the policy trunk\n";
  std::optional<Transformer> critic;
  std::optional<AdamW> critic_opt;
  if (separate_critic) {
    LoadReport crep;
    critic.emplace(load_checkpoint(o.str("critic"), ModelHeads{.lm_head = false, .score_head = true}, &crep, cfg.seed));
    critic->set_backend(kernels::backend_named(o.str("backend")));
    if (crep.score_head_initialised) std::cout << "critic: value head newly initialised (the checkpoint has none)\n";
    AdamWConfig ca = cfg.adam;
    if (o.number("critic-learning-rate") > 0) ca.lr = o.number("critic-learning-rate");
    critic_opt.emplace(*critic, ca);
  }
  Transformer ref = load_checkpoint(ref_dir, ModelHeads{});
  ref.set_backend(kernels::backend_named(o.str("backend")));
  const int64_t context = policy.config().max_position_embeddings;
  int64_t dropped = 0, eval_dropped = 0;
  const std::vector<OnlinePrompt> prompts = load_prompts(o.str("data"), *text, o, context, &dropped);
  std::vector<OnlinePrompt> eval_prompts;
  if (!o.str("eval-data").empty()) eval_prompts = load_prompts(o.str("eval-data"), *text, o, context, &eval_dropped);
  if (dropped) std::cout << "prompts: " << dropped << " dropped (too long for the context)\n";

  const auto reward = reward_from(o, model_dir);
  const double eos_penalty = o.declared("missing-eos-penalty") ? o.number("missing-eos-penalty") : 0.0;
  // Online DPO applies the missing-EOS penalty to the scores that pick chosen and rejected;
  // PPO/APA apply it inside their reward shaping.
  const RewardScorer scorer = [&](const std::vector<rollout::RewardSample>& b) {
    rollout::RewardResult r = reward->score(b);
    if (method == OnlineMethod::online_dpo && eos_penalty != 0)
      for (size_t i = 0; i < b.size(); ++i)
        if (!b[i].eos) r.scores[i] -= eos_penalty;
    return r;
  };
  const Detokenize detok = [&](const std::vector<int32_t>& ids) { return text->tok.decode(ids, {.skip_special_tokens = true}); };

  AdamW opt(policy, cfg.adam);
  TrainerState st;
  st.fingerprint = {{"task", name}, {"prompts", prompts.size()}, {"options", o.resolved()}};
  for (const char* k : {"resume", "threads", "config", "out", "eval-steps", "logging-steps", "save-steps", "save-total-limit",
                        "dist-timeout", "backend"})
    st.fingerprint["options"].erase(k);
  // A run's samples and batches depend on its number of ranks (--prompts-per-step is per rank).
  if (comm.size() > 1) st.fingerprint["ranks"] = comm.size();
  OnlineState ost;
  ost.kl_coef = cfg.beta;
  std::vector<std::string> kept;
  if (o.boolean("resume")) {
    kept = resume_from_latest(out, policy, opt, st, st.fingerprint, std::cout);
    ost = OnlineState::from_json(st.extra);
    if (critic) {  // the critic's checkpoint of the same step, written just before the policy's
      TrainerState cst;
      load_training_checkpoint(out / "critic" / ("checkpoint-" + std::to_string(st.global_step)), *critic, *critic_opt,
                               cst, st.fingerprint);
    }
  }
  fs::create_directories(out);
  nlohmann::json manifest = {{"command", name},
                             {"version", RLHF_VERSION},
                             {"git", RLHF_GIT_VERSION},
                             {"options", o.resolved()},
                             {"option_sources", o.provenance()},
                             {"model", {{"family", model_family_name(policy.config().family)}, {"parameters", policy.n_params()}}},
                             {"data", {{"file", o.str("data")}, {"prompts", prompts.size()}, {"dropped_too_long", dropped}}},
                             {"rewards", o.list("reward")},
                             {"resolved", {{"ranks", comm.size()}, {"communicator", comm.name()},
                                           {"prompts_per_step", cfg.prompts_per_step}}}};
  if (lead) write_file_atomic(out / "manifest.json", manifest.dump(2) + "\n");
  std::ofstream metrics, samples;  // rank 0's; writes elsewhere go nowhere
  if (lead) {
    metrics.open(out / "metrics.jsonl", std::ios::trunc);
    samples.open(out / "samples.jsonl", o.boolean("resume") ? std::ios::app : std::ios::trunc);
  }
  for (const auto& line : kept) metrics << line << "\n";
  std::cout << "rlhf " << name << ": " << prompts.size() << " prompts, " << cfg.max_steps << " steps of "
            << cfg.prompts_per_step << " prompts x " << cfg.sampling.n << " samples";
  if (comm.size() > 1) std::cout << " (" << comm.size() << " ranks)";
  std::cout << ", " << policy.n_params() << " parameters\n";

  const bool tty = isatty(STDOUT_FILENO);
  const int64_t log_every = std::max<int64_t>(1, o.integer("logging-steps"));
  const int64_t eval_every = o.integer("eval-steps"), save_every = o.integer("save-steps");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first = st.global_step;
  auto run_eval = [&](int64_t step) {
    const OnlineEval ev =
        evaluate_online(policy, eval_prompts, scorer, detok, cfg.sampling, cfg.generate_batch, cfg.seed, &comm);
    nlohmann::json rec = {{"step", step}};
    for (const auto& [k, v] : ev.values) rec["eval_" + k] = v;
    metrics << rec.dump() << "\n" << std::flush;
    std::cout << (tty ? "\r\033[K" : "") << "eval at step " << step << ": score " << ev.values.at("objective/scores")
              << ", length " << ev.values.at("completions/mean_length") << "\n";
    for (size_t i = 0; i < ev.examples.size(); ++i) {
      samples << nlohmann::json{{"step", step}, {"prompt", ev.examples[i].prompt},
                                {"completion", ev.examples[i].completion}, {"score", ev.examples[i].score}}
                     .dump()
              << "\n";
      if (i < 2) std::cout << "  " << ev.examples[i].prompt << " -> " << ev.examples[i].completion << "  [" << ev.examples[i].score << "]\n";
    }
    samples.flush();
  };
  train_online(policy, opt, ref, prompts, scorer, detok, cfg, st.global_step, ost,
               [&](const OnlineStepLog& log, const Transformer& m, const AdamW& a, const OnlineState& s) {
                 nlohmann::json rec = {{"step", log.step}};
                 for (const auto& [k, v] : log.values) rec[k] = v;
                 metrics << rec.dump() << "\n" << std::flush;
                 st.global_step = log.step;
                 st.extra = s.to_json();
                 if (log.step % log_every == 0 || log.step == cfg.max_steps) {
                   const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                   std::ostringstream line;
                   line << name << " step " << log.step << "/" << cfg.max_steps << std::fixed << std::setprecision(4)
                        << " | score " << log.values.at("objective/scores");
                   if (log.values.count("skipped")) line << " | skipped: no defined score";
                   else {
                     if (log.values.count("objective/kl")) line << " | kl " << log.values.at("objective/kl");
                     line << " | len " << std::setprecision(1) << log.values.at("completions/mean_length")
                          << " | loss " << std::setprecision(4) << log.values.at("loss");
                   }
                   line << " | ETA " << format_hms(el / (log.step - first) * (cfg.max_steps - log.step));
                   std::cout << (tty ? "\r" : "") << line.str() << (tty ? "\033[K" : "\n") << std::flush;
                 }
                 if (!eval_prompts.empty() && eval_every > 0 && log.step % eval_every == 0) run_eval(log.step);
                 if (lead && save_every > 0 && log.step % save_every == 0 && log.step < cfg.max_steps) {
                   if (critic) save_training_checkpoint(out / "critic", *critic, *critic_opt, st, o.integer("save-total-limit"));
                   save_training_checkpoint(out, m, a, st, o.integer("save-total-limit"));
                 }
               },
               critic ? &*critic : nullptr, critic_opt ? &*critic_opt : nullptr);
  if (tty) std::cout << "\n";
  if (!eval_prompts.empty() && (eval_every <= 0 || cfg.max_steps % eval_every != 0)) run_eval(cfg.max_steps);
  metrics.close();
  if (lead) {
    save_checkpoint(method_uses_values(method) && !critic ? without_value_head(policy) : policy, out, model_dir);
    if (critic) save_checkpoint(*critic, out / "critic", o.str("critic"));
  }
  std::cout << "model saved to " << out.string() << "\n";
  return 0;
}

}  // namespace

int cmd_ppo(int argc, char** argv) { return run_online(OnlineMethod::ppo, argc, argv); }
int cmd_apa(int argc, char** argv) { return run_online(OnlineMethod::apa, argc, argv); }
int cmd_reinforce(int argc, char** argv) { return run_online(OnlineMethod::reinforce, argc, argv); }
int cmd_rloo(int argc, char** argv) { return run_online(OnlineMethod::rloo, argc, argv); }
int cmd_grpo(int argc, char** argv) { return run_online(OnlineMethod::grpo, argc, argv); }
int cmd_online_dpo(int argc, char** argv) { return run_online(OnlineMethod::online_dpo, argc, argv); }

// rlhf best-of-n: n samples per prompt, scored; the best of each prompt is written out. The
// baseline that needs no training: compare its score with the trained policies'.
int cmd_best_of_n(int argc, char** argv) {
  Options o("best-of-n", "Sample n completions per prompt, score them with --reward, keep the best (no training).");
  o.add("model", "", "policy directory (required)")
      .add("data", "", "prompt JSONL (required)")
      .add("out", "", "output JSONL: prompt, best completion, its score, mean score of the n, finish_reason (required)")
      .repeated("reward", "reward source spec, repeatable (as the online commands)")
      .add("reward-nan", "propagate", "propagate | ignore")
      .add("n", "4", "samples per prompt")
      .add("max-prompt-length", "0", "drop longer prompts, counted (0: the context minus max-new-tokens)")
      .add("generate-batch-size", "32", "sequences decoded together")
      .add("seed", "42", "sampling seed")
      .flag("skip-bad-rows", "skip malformed prompt rows (counted)")
      .add("backend", "cpu", "kernel backend: cpu | reference (plain double-precision loops: slow, a check of cpu)")
      .add("threads", "0", "CPU threads (0 = all cores)")
      .add("dist-timeout", "1800", "under mpirun: seconds a collective may wait for the other ranks before all stop");
  declare_sampling(o, "1.0", "53");
  if (!o.parse(argc, argv)) return 0;
  for (const char* req : {"model", "data", "out"})
    if (o.str(req).empty()) throw InputError(std::string("rlhf best-of-n: --") + req + " is required");
  if (o.list("reward").empty()) throw InputError("rlhf best-of-n: give at least one --reward source");
  set_threads(o.integer("threads"));
  // Under mpirun each rank samples a contiguous slice of the prompts; rank 0 writes the file.
  dist::Communicator& comm = dist::world();
  if (comm.rank() != 0) std::cout.setstate(std::ios::failbit);
  comm.set_timeout(o.number("dist-timeout"));
  auto text = load_text_side(o.str("model"));
  Transformer policy = load_checkpoint(o.str("model"), ModelHeads{});
  policy.set_backend(kernels::backend_named(o.str("backend")));
  int64_t dropped = 0;
  const auto prompts = load_prompts(o.str("data"), *text, o, policy.config().max_position_embeddings, &dropped);
  const auto reward = reward_from(o, o.str("model"));
  const rollout::SamplingParams sp = sampling_from(o, o.integer("n"), eos_ids(o.str("model"), text->enc));
  const std::vector<int64_t> range = dist::even_split(static_cast<int64_t>(prompts.size()), comm.size());
  std::vector<int64_t> which(range[comm.rank() + 1] - range[comm.rank()]);
  std::iota(which.begin(), which.end(), range[comm.rank()]);
  std::vector<uint64_t> seeds;
  for (int64_t p : which) seeds.push_back(prompt_seed(static_cast<uint64_t>(o.integer("seed")), 0, p));
  const Detokenize detok = [&](const std::vector<int32_t>& t) {
    return text->tok.decode(t, {.skip_special_tokens = true});
  };
  const ScoredSamples r = sample_and_score(
      policy, prompts, which, seeds, sp, o.integer("generate-batch-size"),
      [&](const std::vector<rollout::RewardSample>& b) { return reward->score(b); }, detok);
  std::string lines;
  double best_sum = 0, mean_sum = 0;
  int64_t scored = 0;
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
      row["completion"] = r.completions[p * sp.n + best];
      row["score"] = r.scores[p * sp.n + best];
      row["mean_score"] = sum / cnt;
      // How the best sample ended, as rlhf generate reports it (its last token says).
      const int32_t last = r.seqs[p * sp.n + best].tokens.back();
      const auto ends = [&](const std::vector<int32_t>& ids) { return std::count(ids.begin(), ids.end(), last) > 0; };
      row["finish_reason"] = rollout::finish_reason_name(ends(sp.eos_ids)    ? rollout::FinishReason::eos
                                                         : ends(sp.stop_ids) ? rollout::FinishReason::stop
                                                                             : rollout::FinishReason::length);
      best_sum += r.scores[p * sp.n + best], mean_sum += sum / cnt, ++scored;
    }
    lines += row.dump() + "\n";
  }
  if (comm.size() > 1) {  // every rank's rows, in prompt order, and the sums
    lines = gather_text(comm, lines);
    std::vector<double> sums = {best_sum, mean_sum, static_cast<double>(scored)};
    comm.allreduce_sum(sums.data(), 3);
    best_sum = sums[0], mean_sum = sums[1], scored = static_cast<int64_t>(sums[2]);
  }
  if (comm.rank() == 0) write_file_atomic(o.str("out"), lines);
  std::cout << "best-of-" << sp.n << " on " << prompts.size() << " prompts: mean best score "
            << (scored ? best_sum / scored : 0.0) << ", mean score " << (scored ? mean_sum / scored : 0.0) << "\n";
  return 0;
}

// rlhf iterative-dpo: rounds of sample (n per prompt from the current policy) -> label (the best
// and the worst sample of each prompt by --reward) -> offline DPO on those pairs
// (train/offline_trainer.h, the same loop as `rlhf dpo`). The reference stays the initial model,
// or moves to the previous round's policy with --ref-update previous.
int cmd_iterative_dpo(int argc, char** argv) {
  Options o("iterative-dpo", "Rounds of sampling, labelling with --reward (best vs worst of n) and offline DPO.");
  o.add("model", "", "initial policy directory (required)")
      .add("data", "", "prompt JSONL (required)")
      .add("out", "", "output directory (required)")
      .repeated("reward", "reward source spec, repeatable (as the online commands)")
      .add("reward-nan", "propagate", "propagate | ignore")
      .add("rounds", "3", "sample -> label -> train rounds")
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
      .flag("skip-bad-rows", "skip malformed prompt rows (counted)")
      .add("backend", "cpu", "kernel backend: cpu | reference (plain double-precision loops: slow, a check of cpu)")
      .add("threads", "0", "CPU threads (0 = all cores)")
      .add("dist-timeout", "1800", "under mpirun: seconds a collective may wait for the other ranks before all stop");
  declare_sampling(o, "0.9", "53");
  if (!o.parse(argc, argv)) return 0;
  for (const char* req : {"model", "data", "out"})
    if (o.str(req).empty()) throw InputError(std::string("rlhf iterative-dpo: --") + req + " is required");
  if (o.list("reward").empty()) throw InputError("rlhf iterative-dpo: give at least one --reward source");
  if (o.str("ref-update") != "fixed" && o.str("ref-update") != "previous")
    throw InputError("rlhf iterative-dpo: --ref-update expected fixed or previous, got '" + o.str("ref-update") + "'");
  set_threads(o.integer("threads"));
  // Under mpirun each rank samples a contiguous slice of the prompts, every rank gets every
  // round's pairs, and the DPO rounds run data-parallel (train_offline); rank 0 writes.
  dist::Communicator& comm = dist::world();
  const bool lead = comm.rank() == 0;
  if (!lead) std::cout.setstate(std::ios::failbit);
  comm.set_timeout(o.number("dist-timeout"));
  const fs::path model_dir = o.str("model"), out = o.str("out");
  auto text = load_text_side(model_dir);
  Transformer policy = load_checkpoint(model_dir, ModelHeads{});
  policy.set_backend(kernels::backend_named(o.str("backend")));
  Transformer ref = policy;
  int64_t dropped = 0;
  const auto prompts = load_prompts(o.str("data"), *text, o, policy.config().max_position_embeddings, &dropped);
  const auto reward = reward_from(o, model_dir);
  const RewardScorer scorer = [&](const std::vector<rollout::RewardSample>& b) { return reward->score(b); };
  const Detokenize detok = [&](const std::vector<int32_t>& ids) {
    return text->tok.decode(ids, {.skip_special_tokens = true});
  };
  if (o.integer("num-generations") < 2)
    throw InputError("rlhf iterative-dpo: --num-generations must be at least 2 (best vs worst)");
  const rollout::SamplingParams sp = sampling_from(o, o.integer("num-generations"), eos_ids(model_dir, text->enc));
  std::vector<std::pair<std::string, double>> losses;
  for (const std::string& name : split_commas(o.str("loss-type"))) losses.emplace_back(name, 1.0);
  objective::PairParams pp;
  pp.beta = o.number("beta");
  objective::pairwise_loss(losses, {}, pp);  // validates before any work
  OfflineConfig oc;
  oc.comm = &comm;
  oc.groups_per_micro_batch = o.integer("per-device-train-batch-size") * comm.size();
  oc.schedule = LrSchedule::constant;
  oc.adam.lr = o.number("learning-rate");
  oc.adam.max_grad_norm = o.number("max-grad-norm");
  oc.pack.seq_len = o.integer("max-length");
  if (oc.groups_per_micro_batch <= 0) throw InputError("rlhf iterative-dpo: the batch size must be positive");
  AdamW opt(policy, oc.adam);
  const uint64_t seed = static_cast<uint64_t>(o.integer("seed"));
  fs::create_directories(out);
  if (lead)
    write_file_atomic(out / "manifest.json",
                      nlohmann::json{{"command", "iterative-dpo"}, {"version", RLHF_VERSION}, {"git", RLHF_GIT_VERSION},
                                     {"options", o.resolved()}, {"option_sources", o.provenance()},
                                     {"data", {{"file", o.str("data")}, {"prompts", prompts.size()}, {"dropped_too_long", dropped}}},
                                     {"resolved", {{"ranks", comm.size()}, {"communicator", comm.name()}}}}
                              .dump(2) + "\n");
  std::ofstream metrics;  // rank 0's; writes elsewhere go nowhere
  if (lead) metrics.open(out / "metrics.jsonl", std::ios::trunc);
  const std::vector<int64_t> range = dist::even_split(static_cast<int64_t>(prompts.size()), comm.size());
  std::vector<int64_t> mine(range[comm.rank() + 1] - range[comm.rank()]);
  std::iota(mine.begin(), mine.end(), range[comm.rank()]);
  int64_t global_step = 0;
  for (int64_t round = 0; round < o.integer("rounds"); ++round) {
    std::vector<uint64_t> seeds;
    for (int64_t p : mine) seeds.push_back(prompt_seed(seed, round, p));
    ScoredSamples ss = sample_and_score(policy, prompts, mine, seeds, sp, o.integer("generate-batch-size"), scorer, detok,
                                        &comm);
    if (comm.size() > 1) gather_samples(comm, ss);  // every rank's, in prompt order
    OfflineDataset data;
    for (size_t p = 0; p < prompts.size(); ++p) {
      int64_t best = -1, worst = -1;
      for (int64_t j = 0; j < sp.n; ++j) {
        const double v = ss.scores[p * sp.n + j];
        if (std::isnan(v)) continue;
        if (best < 0 || v > ss.scores[p * sp.n + best]) best = j;
        if (worst < 0 || v < ss.scores[p * sp.n + worst]) worst = j;
      }
      if (best < 0 || ss.scores[p * sp.n + best] - ss.scores[p * sp.n + worst] <= o.number("min-score-gap")) continue;
      const int64_t g = data.n_groups();
      for (int k = 0; k < 2; ++k) {
        Sequence seq = ss.seqs[p * sp.n + (k == 0 ? best : worst)];
        seq.group = g;
        seq.index = k;
        data.seqs.push_back(std::move(seq));
      }
    }
    nlohmann::json rec = {{"round", round + 1}, {"pairs", data.n_groups()}};
    for (const auto& [k, v] : ss.metrics) rec[k] = v;
    std::cout << "round " << round + 1 << ": mean score " << ss.metrics.at("objective/scores") << ", "
              << data.n_groups() << " pairs of " << prompts.size() << " prompts\n";
    if (data.n_groups() == 0) {
      metrics << rec.dump() << "\n" << std::flush;
      continue;
    }
    const std::vector<double> ref_logp = compute_reference_logps(ref, data, oc.pack);
    oc.max_steps = std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil(o.number("num-train-epochs") * data.n_groups() / oc.groups_per_micro_batch)));
    oc.seed = seed + static_cast<uint64_t>(round);
    const BatchOrder order = shuffled_batch_order(data.n_groups(), oc.groups_per_micro_batch, oc.max_steps, oc.seed);
    const auto logs = train_offline(policy, opt, data, ref_logp, pairwise_objective(losses, pp), oc, order);
    for (const auto& [k, v] : logs.back().values) rec["train/" + k] = v;
    global_step += oc.max_steps;
    rec["step"] = global_step;
    metrics << rec.dump() << "\n" << std::flush;
    if (o.str("ref-update") == "previous") ref = policy;
  }
  metrics.close();
  if (lead) save_checkpoint(policy, out, model_dir);
  std::cout << "model saved to " << out.string() << "\n";
  return 0;
}

}  // namespace rlhf::cli
