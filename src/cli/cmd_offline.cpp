// rlhf sft | rm | dpo | kto: offline training from a TRL-format JSONL file and an HF model
// directory (train/offline_run.h does the run; this file maps the flags, named after TRL's
// configs, onto it); and rlhf eval, the preference metrics of a reward model or a policy.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "data/collate_text.h"
#include "dist/communicator.h"
#include "eval/preference_metrics.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "train/offline_data.h"
#include "train/offline_run.h"
#include "train/shared_vocabulary.h"
#include "train/stop_signal.h"

namespace rlhf::cli {

namespace {

namespace fs = std::filesystem;

enum class Task { sft, rm, dpo, kto };

const char* task_name(Task t) {
  return t == Task::sft ? "sft" : t == Task::rm ? "rm" : t == Task::dpo ? "dpo" : "kto";
}

// How rows become tokens after --max-length: truncation, the prompt/completion seam and EOS.
void declare_tokenization(Options& o) {
  o.add("max-prompt-length", "0", "keep the last N prompt tokens (0: no limit)")
      .add("max-completion-length", "0", "keep the first N completion tokens (0: no limit)")
      .add("truncation-mode", "keep_start", "keep_start | keep_end")
      .add("seam-policy", "common_prefix",
           "where a completion starts when prompt and completion tokens merge: common_prefix (TRL: the "
           "merged token is completion) | split (tokenize the completion apart) | error")
      .add("completion-eos", "standard_layout",
           "append EOS to completions: standard_layout (TRL: plain text only; a chat turn ends as the "
           "template renders it) | always | never");
}

void declare(Options& o, Task t) {
  o.add("model", "", "HF model directory: config.json, safetensors, tokenizer.json (required)")
      .add("data", "", "training JSONL (.gz/.zst): TRL's standard or conversational layout (required)")
      .add("eval-data", "", "held-out JSONL evaluated every --eval-steps steps (eval_ metrics)")
      .add("out", "", "output directory (required)")
      .add("max-length", "1024", "tokens per sequence (prompt + completion)");
  declare_tokenization(o);
  o.add("per-device-train-batch-size", "8",
           t == Task::sft || t == Task::kto ? "examples per micro-batch" : "pairs (or rankings) per micro-batch")
      .add("gradient-accumulation-steps", "1", "micro-batches per optimizer step")
      .add("max-steps", "0", "optimizer steps (0: from --num-train-epochs)")
      .add("num-train-epochs", "1", "epochs when --max-steps is 0");
  declare_learning_rate(o, t == Task::dpo || t == Task::kto ? "1e-6" : t == Task::rm ? "1e-4" : "2e-5");
  o.add("lr-scheduler-type", "linear", "constant | constant_with_warmup | linear | cosine")
      .add("warmup-ratio", "0", "warm-up as a fraction of the steps")
      .add("warmup-steps", "0", "warm-up steps (overrides --warmup-ratio)")
      .add("weight-decay", "0", "AdamW decoupled weight decay");
  declare_adam(o);
  o.add("seed", "42", "data order")
      .add("logging-steps", "1", "print progress every N steps")
      .add("eval-steps", "0", "evaluate --eval-data every N steps (0: at the end only)");
  declare_checkpoints(o);
  o.flag("no-packing", "one sequence per row instead of packing rows to --max-length")
      .flag("skip-bad-rows", "skip malformed rows (counted, capped) instead of stopping");
  declare_backend(o);
  declare_threads(o);
  declare_dist_timeout(o);
  o.flag("zero1", "under mpirun: shard the AdamW moments over the ranks (ZeRO-1)");
  if (t == Task::dpo) {
    o.add("loss-type", "sigmoid",
          "comma-separated DPO losses (TRL's loss_type names, plus cdpo, ipo_sum, rdpo, simpo, orpo); "
          "listwise (alone) trains on ranked data")
        .add("loss-weights", "", "comma-separated weights of --loss-type (default: all 1)")
        .add("beta", "0.1", "KL strength (IPO's tau, ORPO's lambda)")
        .add("label-smoothing", "0", "eps of cdpo, robust, exo_pair, aot")
        .add("simpo-gamma", "0.5", "SimPO target margin")
        .add("rdpo-alpha", "0", "R-DPO length penalty")
        .add("discopop-tau", "0.05", "DiscoPOP temperature")
        .add("ref-model", "", "reference model directory (default: --model)")
        .flag("reference-free", "use a uniform reference (L_ref = 0)");
  }
  if (t == Task::kto) {
    o.add("loss-type", "kto", "kto | apo_zero_unpaired")
        .add("beta", "0.1", "KL strength")
        .add("desirable-weight", "1.0", "lambda_D, weight of desirable examples")
        .add("undesirable-weight", "1.0", "lambda_U, weight of undesirable examples")
        .add("ref-model", "", "reference model directory (default: --model)");
  }
  if (t == Task::rm) {
    o.add("loss", "bradley_terry", "bradley_terry (pairs) | plackett_luce | kwise (ranked data)")
        .add("center-rewards-coefficient", "0", "eta of the reward-centring term (bradley_terry)");
  }
  if (t == Task::rm || t == Task::dpo)
    o.add("score-field", "", "ranked data: the score to rank by (raw UltraFeedback: overall_score | "
                             "fine-grained_score | mean)");
}



// What a training file holds: the task and its loss decide (ranked data for Plackett–Luce and
// K-wise reward models and for listwise DPO).
OfflineDataKind data_kind(Task t, const Options& o) {
  if (t == Task::sft) return OfflineDataKind::sft;
  if (t == Task::kto) return OfflineDataKind::unpaired;
  if (t == Task::rm) {
    const std::string loss = o.str("loss");
    if (loss != "bradley_terry" && loss != "plackett_luce" && loss != "kwise")
      throw InputError("rlhf rm: --loss expected bradley_terry, plackett_luce or kwise, got '" + loss + "'");
    return loss == "bradley_terry" ? OfflineDataKind::pairs : OfflineDataKind::ranked;
  }
  const auto names = split_commas(o.str("loss-type"));
  const bool listwise = std::find(names.begin(), names.end(), "listwise") != names.end();
  if (listwise && names.size() > 1)
    throw InputError("--loss-type listwise trains on ranked data and combines with no other loss");
  return listwise ? OfflineDataKind::ranked : OfflineDataKind::pairs;
}

// Reading and truncation; KTO's mismatched pairs stay within chunks of one micro-batch.
OfflineDataOptions data_options(const Options& o) {
  OfflineDataOptions d;
  d.read.skip_bad_rows = o.boolean("skip-bad-rows");
  if (o.declared("score-field")) d.read.score_field = o.str("score-field");
  d.truncate.max_length = o.integer("max-length");
  d.truncate.max_prompt_length = o.integer("max-prompt-length");
  d.truncate.max_completion_length = o.integer("max-completion-length");
  d.truncate.mode = parse_truncation_mode(o.str("truncation-mode"));
  d.encode.seam = parse_seam_policy(o.str("seam-policy"));
  d.encode.eos = parse_completion_eos(o.str("completion-eos"));
  if (o.declared("per-device-train-batch-size")) {
    d.kto_mismatched = o.declared("loss-type") && o.str("loss-type") == "kto";
    d.kto_chunk = o.integer("per-device-train-batch-size");
  }
  return d;
}

// The command's objective; per-group labels (margins, ranks, KTO labels) come from `data`, so
// the evaluation file gets its own.
ObjectiveFn make_objective(Task task, OfflineDataKind kind, const Options& o, const OfflineDataset& data) {
  if (task == Task::sft) return sft_objective();
  if (task == Task::rm) {
    if (kind == OfflineDataKind::ranked) return ranked_reward_objective(o.str("loss"), data.group_rank_values);
    return reward_objective(o.number("center-rewards-coefficient"), data.group_margin);
  }
  if (task == Task::kto)
    return kto_objective(o.str("loss-type"),
                         {o.number("beta"), o.number("desirable-weight"), o.number("undesirable-weight")},
                         data.group_desirable);
  if (kind == OfflineDataKind::ranked) {
    if (o.boolean("reference-free")) throw InputError("rlhf dpo: listwise needs a reference model");
    return listwise_dpo_objective(o.number("beta"), data.group_rank_values);
  }
  std::vector<std::pair<std::string, double>> losses;
  const auto names = split_commas(o.str("loss-type"));
  const auto weights = split_commas(o.str("loss-weights"));
  if (!weights.empty() && weights.size() != names.size())
    throw InputError("--loss-weights needs one weight per --loss-type entry");
  for (size_t i = 0; i < names.size(); ++i) losses.emplace_back(names[i], weights.empty() ? 1.0 : std::stod(weights[i]));
  objective::PairParams p;
  p.beta = o.number("beta");
  p.label_smoothing = o.number("label-smoothing");
  p.simpo_gamma = o.number("simpo-gamma");
  p.rdpo_alpha = o.number("rdpo-alpha");
  p.discopop_tau = o.number("discopop-tau");
  objective::pairwise_loss(losses, {}, p);  // validates names and parameters before any work
  return pairwise_objective(losses, p);
}


int run(Task task, int argc, char** argv) {
  Options o(task_name(task),
            task == Task::sft  ? "Supervised fine-tuning (token-mean NLL on completions)."
            : task == Task::rm ? "Reward model (scalar head): Bradley-Terry on pairs, Plackett-Luce or K-wise on rankings."
            : task == Task::dpo ? "Direct preference optimisation: DPO and its family (--loss-type)."
                                : "KTO on unpaired desirable/undesirable examples (TRL's KTOTrainer layout).");
  declare(o, task);
  if (!o.parse(argc, argv)) return 0;
  o.require({"model", "data", "out"});
  apply_threads(o);
  dist::Communicator& comm = dist::world();
  comm.set_timeout(o.number("dist-timeout"));

  OfflineRunConfig r;
  r.command = task_name(task);
  r.model_dir = o.str("model");
  r.out_dir = o.str("out");
  r.data_file = o.str("data");
  r.eval_file = o.str("eval-data");
  r.kind = data_kind(task, o);
  r.data = data_options(o);
  r.objective = [task, kind = r.kind, &o](const OfflineDataset& data) { return make_objective(task, kind, o, data); };
  if ((task == Task::dpo && !o.boolean("reference-free")) || task == Task::kto)
    r.ref_dir = o.str("ref-model").empty() ? r.model_dir : fs::path(o.str("ref-model"));
  r.reward_head = task == Task::rm;
  r.per_rank_batch = o.integer("per-device-train-batch-size");
  r.grad_accum = o.integer("gradient-accumulation-steps");
  r.max_steps = o.integer("max-steps");
  r.epochs = o.number("num-train-epochs");
  r.warmup_steps = o.integer("warmup-steps");
  r.warmup_ratio = o.number("warmup-ratio");
  r.schedule = parse_lr_schedule(o.str("lr-scheduler-type"));
  r.adam = adamw_from(o);
  r.seed = static_cast<uint64_t>(o.integer("seed"));
  r.pack.seq_len = o.integer("max-length");
  r.pack.packing = !o.boolean("no-packing");
  r.log_every = std::max<int64_t>(1, o.integer("logging-steps"));
  r.eval_every = o.integer("eval-steps");
  r.checkpoints = checkpoints_from(o);
  r.resume = o.boolean("resume");
  r.zero1 = o.boolean("zero1");
  r.backend = &backend_from(o);
  r.manifest = run_manifest(o);
  // A moved output directory resumes; checkpoints hold the whole optimizer with or without ZeRO-1.
  r.fingerprint_options = resume_fingerprint(o, {"out", "dist-timeout", "zero1", "backend"});
  r.comm = &comm;
  install_stop_handlers();  // SIGTERM/SIGINT: checkpoint after the step, then stop
  run_offline(r);
  return 0;
}

}  // namespace

// rlhf eval: how well a reward model, and a DPO policy's implicit reward beta * log(pi/pi_ref),
// order the pairs of a preference file; and how the two agree when both are given.
int cmd_eval(int argc, char** argv) {
  Options o("eval", "Preference accuracy, margin and AUC of a reward model and/or a policy's implicit reward\n"
                    "beta * log(pi/pi_ref) on a pairwise JSONL file, and their correlation when both are given.");
  o.add("data", "", "pairwise JSONL (TRL layout) (required)")
      .add("reward-model", "", "reward model directory (scalar head)")
      .add("policy", "", "policy directory (implicit reward)")
      .add("ref-model", "", "reference model of --policy (required with --policy)")
      .add("beta", "0.1", "beta of the implicit reward")
      .add("max-length", "1024", "tokens per sequence");
  declare_tokenization(o);
  o.flag("skip-bad-rows", "skip malformed rows (counted, capped) instead of stopping")
      .add("out", "", "write the results as JSON to this file")
      .add("scores-out", "", "write per-pair scores as JSONL (reward model, policy and reference log-probs, implicit reward)");
  declare_backend(o);
  declare_threads(o);
  if (!o.parse(argc, argv)) return 0;
  o.require({"data"});
  if (o.str("reward-model").empty() && o.str("policy").empty())
    throw InputError("rlhf eval: give --reward-model, --policy (with --ref-model), or both");
  if (!o.str("policy").empty() && o.str("ref-model").empty())
    throw InputError("rlhf eval: --policy needs --ref-model for the implicit reward");
  apply_threads(o);
  const fs::path tok_dir = o.str("policy").empty() ? fs::path(o.str("reward-model")) : fs::path(o.str("policy"));
  // Every model scores the ids of tok_dir's tokenizer.
  if (!o.str("policy").empty()) {
    require_shared_vocabulary(tok_dir, o.str("ref-model"), "--ref-model");
    if (!o.str("reward-model").empty()) require_shared_vocabulary(tok_dir, o.str("reward-model"), "--reward-model");
  }
  auto text = load_text_side(tok_dir);
  OfflineDataOptions data_opt = data_options(o);
  PackOptions pack;
  pack.seq_len = o.integer("max-length");
  cap_sequence_length(data_opt.truncate, pack,
                      model_sequence_limit({o.str("reward-model"), o.str("policy"), o.str("ref-model")}), std::cerr);
  const OfflineData b = build_offline_data(OfflineDataKind::pairs, o.str("data"), text->enc, data_opt);

  nlohmann::json result = {{"data", o.str("data")}, {"pairs", b.data.n_groups()}, {"rows", b.read.rows}};
  auto pair_scores = [&](const std::vector<double>& per_seq) {
    eval::PairScores ps;
    for (const auto& m : b.data.group_members()) {
      ps.chosen.push_back(per_seq[m[0]]);
      ps.rejected.push_back(per_seq[m[1]]);
    }
    return ps;
  };
  auto report = [&](const std::string& name, const eval::PairScores& ps) {
    const eval::PreferenceMetrics m = eval::preference_metrics(ps);
    result[name] = {{"accuracy", m.accuracy}, {"ties", m.ties}, {"margin", m.margin}, {"auc", m.auc}};
    std::cout << std::left << std::setw(18) << name << " accuracy " << std::fixed << std::setprecision(4) << m.accuracy
              << "  ties " << m.ties << "  margin " << m.margin << "  AUC " << m.auc << "\n";
  };
  std::optional<eval::PairScores> rm_scores, implicit_scores;
  std::vector<nlohmann::ordered_json> rows(b.data.n_groups());
  for (size_t k = 0; k < rows.size(); ++k) rows[k]["pair"] = k;
  auto add_rows = [&](const char* key, const eval::PairScores& ps) {
    for (size_t k = 0; k < rows.size(); ++k) rows[k][key] = {{"chosen", ps.chosen[k]}, {"rejected", ps.rejected[k]}};
  };
  if (!o.str("reward-model").empty()) {
    Transformer rm = load_reward_model(o.str("reward-model"));
    rm.set_backend(backend_from(o));
    rm_scores = pair_scores(compute_head_values(rm, b.data, pack));
    add_rows("reward_model", *rm_scores);
    report("reward_model", *rm_scores);
  }
  if (!o.str("policy").empty()) {
    std::vector<double> pol, ref;
    {
      Transformer m = load_checkpoint(o.str("policy"), ModelHeads{});
      m.set_backend(backend_from(o));
      pol = compute_reference_logps(m, b.data, pack);
    }
    {
      Transformer m = load_checkpoint(o.str("ref-model"), ModelHeads{});
      m.set_backend(backend_from(o));
      ref = compute_reference_logps(m, b.data, pack);
    }
    std::vector<double> implicit(pol.size());
    for (size_t i = 0; i < pol.size(); ++i) implicit[i] = o.number("beta") * (pol[i] - ref[i]);
    implicit_scores = pair_scores(implicit);
    add_rows("policy_logps", pair_scores(pol));
    add_rows("ref_logps", pair_scores(ref));
    add_rows("implicit_reward", *implicit_scores);
    report("implicit_reward", *implicit_scores);
  }
  if (rm_scores && implicit_scores) {
    std::vector<double> a, c;
    for (size_t i = 0; i < rm_scores->chosen.size(); ++i) {
      a.push_back(rm_scores->chosen[i] - rm_scores->rejected[i]);
      c.push_back(implicit_scores->chosen[i] - implicit_scores->rejected[i]);
    }
    result["margin_correlation"] = {{"pearson", eval::pearson(a, c)}, {"spearman", eval::spearman(a, c)}};
    std::cout << "margin correlation (reward model vs implicit): pearson " << eval::pearson(a, c) << "  spearman "
              << eval::spearman(a, c) << "\n";
  }
  if (!o.str("out").empty()) write_file_atomic(o.str("out"), result.dump(2) + "\n");
  if (!o.str("scores-out").empty()) {
    std::string text;
    for (const auto& r : rows) text += r.dump() + "\n";
    write_file_atomic(o.str("scores-out"), text);
  }
  return 0;
}

int cmd_sft(int argc, char** argv) { return run(Task::sft, argc, argv); }
int cmd_rm(int argc, char** argv) { return run(Task::rm, argc, argv); }
int cmd_dpo(int argc, char** argv) { return run(Task::dpo, argc, argv); }
int cmd_kto(int argc, char** argv) { return run(Task::kto, argc, argv); }

}  // namespace rlhf::cli
