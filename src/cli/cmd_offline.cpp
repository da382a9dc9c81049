// rlhf sft | rm | dpo: offline training from a TRL-format JSONL file and an HF model directory.
//
// One flow for the three: tokenize (tokenizer.json + chat template) -> truncate -> grouped
// sequences -> reference log-probs (DPO; cached in <out>/ref_logps.safetensors) -> the offline
// loop with the command's objective -> metrics.jsonl (TRL's names), checkpoint-<step>/,
// --resume, final HF checkpoint with the tokenizer files. Option names follow TRL's configs.
#include <omp.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "data/collate.h"
#include "data/collate_text.h"
#include "data/records.h"
#include "dist/communicator.h"
#include "eval/preference_metrics.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "train/offline_trainer.h"
#include "train/progress.h"
#include "train/train_checkpoint.h"
#include "train/zero.h"

namespace rlhf::cli {

namespace {

namespace fs = std::filesystem;

enum class Task { sft, rm, dpo, kto };

const char* task_name(Task t) {
  return t == Task::sft ? "sft" : t == Task::rm ? "rm" : t == Task::dpo ? "dpo" : "kto";
}

// What a training file holds: the task and its loss decide (ranked data for Plackett–Luce and
// K-wise reward models and for listwise DPO).
enum class DataKind { sft, pairs, unpaired, ranked };

const char* group_noun(DataKind k) {
  return k == DataKind::sft ? "examples" : k == DataKind::pairs ? "pairs" : k == DataKind::unpaired ? "examples" : "rankings";
}

void declare(Options& o, Task t) {
  o.add("model", "", "HF model directory: config.json, safetensors, tokenizer.json (required)")
      .add("data", "", "training JSONL (.gz/.zst): TRL's standard or conversational layout (required)")
      .add("eval-data", "", "held-out JSONL evaluated every --eval-steps steps (eval_ metrics)")
      .add("out", "", "output directory (required)")
      .add("max-length", "1024", "tokens per sequence (prompt + completion)")
      .add("max-prompt-length", "0", "keep the last N prompt tokens (0: no limit)")
      .add("max-completion-length", "0", "keep the first N completion tokens (0: no limit)")
      .add("truncation-mode", "keep_start", "keep_start | keep_end")
      .add("per-device-train-batch-size", "8",
           t == Task::sft || t == Task::kto ? "examples per micro-batch" : "pairs (or rankings) per micro-batch")
      .add("gradient-accumulation-steps", "1", "micro-batches per optimizer step")
      .add("max-steps", "0", "optimizer steps (0: from --num-train-epochs)")
      .add("num-train-epochs", "1", "epochs when --max-steps is 0")
      .add("learning-rate", t == Task::dpo || t == Task::kto ? "1e-6" : t == Task::rm ? "1e-4" : "2e-5",
           "peak learning rate")
      .add("lr-scheduler-type", "linear", "constant | constant_with_warmup | linear | cosine")
      .add("warmup-ratio", "0", "warm-up as a fraction of the steps")
      .add("warmup-steps", "0", "warm-up steps (overrides --warmup-ratio)")
      .add("weight-decay", "0", "AdamW decoupled weight decay")
      .add("adam-beta1", "0.9", "AdamW beta1")
      .add("adam-beta2", "0.999", "AdamW beta2")
      .add("adam-epsilon", "1e-8", "AdamW epsilon")
      .add("max-grad-norm", "1.0", "global gradient-norm clipping (0 disables)")
      .add("seed", "42", "data order")
      .add("logging-steps", "1", "print progress every N steps")
      .add("eval-steps", "0", "evaluate --eval-data every N steps (0: at the end only)")
      .add("save-steps", "0", "write a resumable checkpoint-<step>/ every N steps (0: none)")
      .add("save-total-limit", "0", "keep only the newest N checkpoints (0: all)")
      .flag("resume", "continue from the newest checkpoint in --out")
      .flag("no-packing", "one sequence per row instead of packing rows to --max-length")
      .flag("skip-bad-rows", "skip malformed rows (counted, capped) instead of stopping")
      .add("backend", "cpu", "kernel backend: cpu | reference (plain double-precision loops: slow, a check of cpu)")
      .add("threads", "0", "CPU threads (0 = all cores)")
      .add("dist-timeout", "1800", "under mpirun: seconds a collective may wait for the other ranks before all stop")
      .flag("zero1", "under mpirun: shard the AdamW moments over the ranks (ZeRO-1)");
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


DataKind data_kind(Task t, const Options& o) {
  if (t == Task::sft) return DataKind::sft;
  if (t == Task::kto) return DataKind::unpaired;
  if (t == Task::rm) {
    const std::string loss = o.str("loss");
    if (loss != "bradley_terry" && loss != "plackett_luce" && loss != "kwise")
      throw InputError("rlhf rm: --loss expected bradley_terry, plackett_luce or kwise, got '" + loss + "'");
    return loss == "bradley_terry" ? DataKind::pairs : DataKind::ranked;
  }
  const auto names = split_commas(o.str("loss-type"));
  const bool listwise = std::find(names.begin(), names.end(), "listwise") != names.end();
  if (listwise && names.size() > 1)
    throw InputError("--loss-type listwise trains on ranked data and combines with no other loss");
  return listwise ? DataKind::ranked : DataKind::pairs;
}


struct Built {
  OfflineDataset data;
  CollateReport collate;
  ReadReport read;
  int64_t ties = 0;  // ranked rows with tied scores
};

Built build_dataset(DataKind kind, const fs::path& path, const TextSide& text, const Options& o) {
  Built b;
  ReadOptions ro;
  ro.skip_bad_rows = o.boolean("skip-bad-rows");
  if (o.declared("score-field")) ro.score_field = o.str("score-field");
  TruncateOptions to;
  to.max_length = o.integer("max-length");
  to.max_prompt_length = o.integer("max-prompt-length");
  to.max_completion_length = o.integer("max-completion-length");
  to.mode = parse_truncation_mode(o.str("truncation-mode"));
  EncodeReport er;
  int64_t group = 0;
  auto add = [&](const TokenizedExample& ex) {
    if (truncate_example(ex, group, to, b.data.seqs, b.collate)) ++group;
  };
  if (kind == DataKind::sft) {
    for (const SftRecord& r : read_sft(path, ro, &b.read)) {
      if (r.prompt) {
        add(encode_example(text.enc, *r.prompt, {&r.completion}, {}, &er, r.line));
      } else {  // "text" or "messages": every token after the first is trained on
        TokenizedExample ex;
        ex.line = r.line;
        if (r.completion.is_chat) {
          if (!text.enc.render) throw InputError(path.string() + ": conversational data needs a chat template");
          nlohmann::json msgs = nlohmann::json::array();
          for (const auto& m : r.completion.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
          ex.completions.push_back(text.enc.encode(text.enc.render(msgs, false), false));
        } else {
          std::vector<int32_t> ids = text.enc.encode(r.completion.text, true);
          if (text.enc.eos_id && (ids.empty() || ids.back() != *text.enc.eos_id)) ids.push_back(*text.enc.eos_id);
          ex.completions.push_back(std::move(ids));
        }
        add(ex);
      }
    }
  } else if (kind == DataKind::pairs) {
    for (const PreferenceRecord& r : read_preferences(path, ro, &b.read)) {
      add(encode_example(text.enc, r.prompt, {&r.chosen, &r.rejected}, {}, &er, r.line));
      if (static_cast<int64_t>(b.data.group_margin.size()) < group) b.data.group_margin.push_back(r.margin.value_or(0.0));
    }
  } else if (kind == DataKind::unpaired) {
    // KTO's reference point needs mismatched pairs: as TRL's KTOTrainer builds them, within each
    // chunk of `batch` rows in file order, row j gets the completion of row j-1 and the chunk's
    // first row the completion of its last. (The apo_zero_unpaired loss needs none.)
    const std::vector<UnpairedRecord> rows = read_unpaired(path, ro, &b.read);
    const bool with_kl = o.str("loss-type") == "kto";
    const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, o.integer("per-device-train-batch-size")));
    for (size_t i = 0; i < rows.size(); ++i) {
      const size_t start = i / chunk * chunk, end = std::min(rows.size(), start + chunk);
      const UnpairedRecord& other = rows[i == start ? end - 1 : i - 1];
      std::vector<const Text*> completions = {&rows[i].completion};
      if (with_kl) completions.push_back(&other.completion);
      add(encode_example(text.enc, rows[i].prompt, completions, {}, &er, rows[i].line));
      if (static_cast<int64_t>(b.data.group_desirable.size()) < group) b.data.group_desirable.push_back(rows[i].label);
    }
  } else {
    // Sequences in rank order (index 0 = best); scored rows are ranked by score, ties kept as
    // equal label values (Plackett–Luce orders them by file order, K-wise skips tied pairs).
    for (const RankedRecord& r : read_ranked(path, ro, &b.read)) {
      std::vector<int64_t> order = r.ranking;
      std::vector<double> values(r.completions.size());
      if (order.empty()) {
        order.resize(r.completions.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return r.scores[a] > r.scores[c]; });
        for (size_t k = 0; k < order.size(); ++k) values[k] = r.scores[order[k]];
      } else {
        for (size_t k = 0; k < order.size(); ++k) values[k] = -static_cast<double>(k);
      }
      std::vector<const Text*> completions;
      for (int64_t i : order) completions.push_back(&r.completions[i]);
      add(encode_example(text.enc, r.prompt, completions, {}, &er, r.line));
      if (static_cast<int64_t>(b.data.group_rank_values.size()) < group) {
        b.ties += std::adjacent_find(values.begin(), values.end()) != values.end();
        b.data.group_rank_values.push_back(std::move(values));
      }
    }
  }
  if (b.data.seqs.empty()) throw InputError(path.string() + ": no usable rows after reading and truncation");
  return b;
}

// CRC-32 of the tokenized training data (tokens and prompt boundaries): the data fingerprint.
uint32_t data_fingerprint(const OfflineDataset& data) {
  uLong crc = 0;
  for (const Sequence& s : data.seqs) {
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(s.tokens.data()), s.tokens.size() * sizeof(int32_t));
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(&s.prompt_len), sizeof(s.prompt_len));
  }
  return static_cast<uint32_t>(crc);
}

// Reference log-probs, cached with a fingerprint of the reference model and the sequences.
std::vector<double> reference_logps(const fs::path& out, const fs::path& ref_dir, const OfflineDataset& data,
                                    const PackOptions& pack) {
  const std::string key = fs::absolute(ref_dir).string() + "|" + std::to_string(data_fingerprint(data)) + "|" +
                          std::to_string(fs::last_write_time(ref_dir / "config.json").time_since_epoch().count());
  const fs::path cache = out / "ref_logps.safetensors";
  if (fs::exists(cache)) {
    auto f = SafetensorsFile::open(cache);
    auto it = f->metadata().find("key");
    const TensorView* t = f->find("ref_logps");
    if (it != f->metadata().end() && it->second == key && t && t->dtype == DType::F64 &&
        t->numel() == static_cast<int64_t>(data.seqs.size())) {
      std::vector<double> v(data.seqs.size());
      std::memcpy(v.data(), t->data, v.size() * sizeof(double));
      std::cout << "reference log-probs: cached in " << cache.string() << "\n";
      return v;
    }
  }
  std::cout << "reference log-probs: computing for " << data.seqs.size() << " sequences\n";
  Transformer ref = load_checkpoint(ref_dir, ModelHeads{});
  std::vector<double> v = compute_reference_logps(ref, data, pack);
  write_safetensors(cache, {{"ref_logps", DType::F64, {static_cast<int64_t>(v.size())}, v.data()}}, {{"key", key}});
  return v;
}

// The command's objective; per-group labels (margins, ranks, KTO labels) come from `data`, so
// the evaluation file gets its own.
ObjectiveFn make_objective(Task task, DataKind kind, const Options& o, const OfflineDataset& data) {
  if (task == Task::sft) return sft_objective();
  if (task == Task::rm) {
    if (kind == DataKind::ranked) return ranked_reward_objective(o.str("loss"), data.group_rank_values);
    return reward_objective(o.number("center-rewards-coefficient"), data.group_margin);
  }
  if (task == Task::kto)
    return kto_objective(o.str("loss-type"),
                         {o.number("beta"), o.number("desirable-weight"), o.number("undesirable-weight")},
                         data.group_desirable);
  if (kind == DataKind::ranked) {
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
  for (const char* req : {"model", "data", "out"})
    if (o.str(req).empty()) throw InputError(std::string("rlhf ") + task_name(task) + ": --" + req + " is required");
  set_threads(o.integer("threads"));
  const fs::path model_dir = o.str("model"), out = o.str("out");
  // Under mpirun every rank runs this function on its slice of each batch; rank 0 alone prints
  // and writes (manifest, metrics, checkpoints, the model, the reference cache).
  dist::Communicator& comm = dist::world();
  const bool lead = comm.rank() == 0;
  if (!lead) std::cout.setstate(std::ios::failbit);
  comm.set_timeout(o.number("dist-timeout"));

  auto text = load_text_side(model_dir);
  const DataKind kind = data_kind(task, o);
  Built train = build_dataset(kind, o.str("data"), *text, o);
  if (train.ties) std::cout << "ranked data: " << train.ties << " rows with tied scores\n";
  std::optional<Built> eval;
  if (!o.str("eval-data").empty()) eval = build_dataset(kind, o.str("eval-data"), *text, o);

  OfflineConfig cfg;
  cfg.comm = &comm;
  cfg.groups_per_micro_batch = o.integer("per-device-train-batch-size") * comm.size();
  cfg.grad_accum = o.integer("gradient-accumulation-steps");
  if (cfg.groups_per_micro_batch <= 0 || cfg.grad_accum <= 0)
    throw InputError("batch size and gradient accumulation must be positive");
  const int64_t groups = train.data.n_groups();
  const int64_t per_step = cfg.groups_per_micro_batch * cfg.grad_accum;
  cfg.max_steps = o.integer("max-steps") > 0
                      ? o.integer("max-steps")
                      : static_cast<int64_t>(std::ceil(o.number("num-train-epochs") * groups / per_step));
  cfg.max_steps = std::max<int64_t>(1, cfg.max_steps);
  cfg.warmup_steps = o.integer("warmup-steps") > 0 ? o.integer("warmup-steps")
                                                   : static_cast<int64_t>(std::ceil(o.number("warmup-ratio") * cfg.max_steps));
  cfg.schedule = parse_lr_schedule(o.str("lr-scheduler-type"));
  cfg.adam = {o.number("learning-rate"), o.number("adam-beta1"), o.number("adam-beta2"), o.number("adam-epsilon"),
              o.number("weight-decay"), o.number("max-grad-norm")};
  cfg.seed = static_cast<uint64_t>(o.integer("seed"));
  cfg.pack.seq_len = o.integer("max-length");
  cfg.pack.packing = !o.boolean("no-packing");
  cfg.want_head = task == Task::rm;

  const ObjectiveFn objective = make_objective(task, kind, o, train.data);
  std::vector<double> ref_logp, eval_ref_logp;
  fs::create_directories(out);
  if ((task == Task::dpo && !o.boolean("reference-free")) || task == Task::kto) {
    const fs::path ref_dir = o.str("ref-model").empty() ? model_dir : fs::path(o.str("ref-model"));
    if (lead) {
      ref_logp = reference_logps(out, ref_dir, train.data, cfg.pack);
    } else {
      Transformer ref = load_checkpoint(ref_dir, ModelHeads{});
      ref_logp = compute_reference_logps(ref, train.data, cfg.pack);
    }
    if (eval) {
      Transformer ref = load_checkpoint(ref_dir, ModelHeads{});
      eval_ref_logp = compute_reference_logps(ref, eval->data, cfg.pack);
    }
  }

  const ModelHeads heads{.lm_head = task != Task::rm, .score_head = task == Task::rm};
  LoadReport lrep;
  Transformer policy = load_checkpoint(model_dir, heads, &lrep, cfg.seed);
  policy.set_backend(kernels::backend_named(o.str("backend")));
  if (lrep.score_head_initialised) std::cout << "score head: newly initialised (the checkpoint has none)\n";
  AdamW opt(policy, cfg.adam);
  const BatchOrder order = shuffled_batch_order(groups, cfg.groups_per_micro_batch, cfg.max_steps * cfg.grad_accum, cfg.seed);

  TrainerState st;
  st.fingerprint = {{"task", task_name(task)}, {"batch_size", cfg.groups_per_micro_batch}, {"ranks", comm.size()},
                    {"grad_accum", cfg.grad_accum}, {"max_steps", cfg.max_steps}, {"seed", cfg.seed},
                    {"groups", groups}, {"data_crc32", data_fingerprint(train.data)}, {"options", o.resolved()}};
  st.fingerprint["options"].erase("resume");
  st.fingerprint["options"].erase("threads");
  st.fingerprint["options"].erase("backend");  // the same run on another backend resumes
  st.fingerprint["options"].erase("config");
  st.fingerprint["options"].erase("out");  // a moved output directory resumes
  st.fingerprint["options"].erase("dist-timeout");
  st.fingerprint["options"].erase("zero1");  // checkpoints hold the whole optimizer either way
  std::vector<std::string> kept;
  if (o.boolean("resume")) kept = resume_from_latest(out, policy, opt, st, st.fingerprint, std::cout);
  if (o.boolean("zero1") && comm.size() > 1) {
    shard_optimizer(opt, policy, comm);
    std::cout << "ZeRO-1: AdamW moments " << std::fixed << std::setprecision(1)
              << (opt.shard_end() - opt.shard_begin()) * 8.0 / (1 << 20) << " MB per rank (of "
              << policy.n_params() * 8.0 / (1 << 20) << " MB)\n"
              << std::defaultfloat;
  }

  nlohmann::json manifest = {{"command", task_name(task)},
                             {"version", RLHF_VERSION},
                             {"git", RLHF_GIT_VERSION},
                             {"options", o.resolved()},
                             {"option_sources", o.provenance()},
                             {"resolved", {{"max_steps", cfg.max_steps}, {"warmup_steps", cfg.warmup_steps}}},
                             {"model", {{"family", model_family_name(policy.config().family)}, {"parameters", policy.n_params()}}},
                             {"data", {{"file", o.str("data")}, {"fingerprint_crc32", data_fingerprint(train.data)},
                                       {"rows", train.read.rows}, {"kept", train.read.kept}, {"groups", groups},
                                       {"collate", train.collate.to_json()}}}};
  manifest["resolved"]["ranks"] = comm.size();
  manifest["resolved"]["communicator"] = comm.name();
  manifest["resolved"]["optimizer_state_mb_per_rank"] = (opt.shard_end() - opt.shard_begin()) * 8.0 / (1 << 20);
  if (lead) write_file_atomic(out / "manifest.json", manifest.dump(2) + "\n");

  std::ofstream metrics;  // rank 0's; writes elsewhere go nowhere
  if (lead) metrics.open(out / "metrics.jsonl", std::ios::trunc);
  for (const auto& line : kept) metrics << line << "\n";
  std::cout << "rlhf " << task_name(task) << ": " << groups << " " << group_noun(kind) << ", "
            << cfg.max_steps << " steps of " << per_step << ", " << policy.n_params() << " parameters\n";

  const bool tty = isatty(STDOUT_FILENO);
  const int64_t log_every = std::max<int64_t>(1, o.integer("logging-steps"));
  const int64_t eval_every = o.integer("eval-steps");
  const int64_t save_every = o.integer("save-steps");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first = st.global_step;
  auto eval_order = [&] {
    const int64_t eg = eval->data.n_groups();
    BatchOrder bo;
    for (int64_t g = 0; g < eg; g += cfg.groups_per_micro_batch) {
      std::vector<int64_t> micro;
      for (int64_t k = g; k < std::min(eg, g + cfg.groups_per_micro_batch); ++k) micro.push_back(k);
      bo.push_back(micro);
    }
    return bo;
  };
  const ObjectiveFn eval_objective = eval ? make_objective(task, kind, o, eval->data) : objective;
  auto run_eval = [&](int64_t step) {
    nlohmann::json rec = {{"step", step}};
    for (const auto& [k, v] : evaluate_offline(policy, eval->data, eval_ref_logp, eval_objective, cfg, eval_order()))
      rec["eval_" + k] = v;
    metrics << rec.dump() << "\n" << std::flush;
    std::cout << (tty ? "\r\033[K" : "") << "eval at step " << step << ": loss " << rec["eval_loss"] << "\n";
  };

  train_offline(policy, opt, train.data, ref_logp, objective, cfg, order, st.global_step,
                [&](const OfflineStepLog& log, const Transformer& m, const AdamW& a) {
                  nlohmann::json rec = {{"step", log.step}};
                  for (const auto& [k, v] : log.values) rec[k] = v;
                  metrics << rec.dump() << "\n" << std::flush;
                  st.global_step = log.step;
                  if (log.step % log_every == 0 || log.step == cfg.max_steps) {
                    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                    std::ostringstream line;
                    line << task_name(task) << " step " << log.step << "/" << cfg.max_steps << " | loss " << std::fixed
                         << std::setprecision(4) << log.values.at("loss");
                    for (const char* k : {"rewards/accuracies", "rewards/margins", "kl", "accuracy", "margin"})
                      if (log.values.count(k)) line << " | " << k << " " << log.values.at(k);
                    line << " | lr " << std::scientific << std::setprecision(2) << log.values.at("learning_rate")
                         << " | ETA " << format_hms(el / (log.step - first) * (cfg.max_steps - log.step));
                    std::cout << (tty ? "\r" : "") << line.str() << (tty ? "\033[K" : "\n") << std::flush;
                  }
                  if (eval && eval_every > 0 && log.step % eval_every == 0) run_eval(log.step);
                  if (save_every > 0 && log.step % save_every == 0 && log.step < cfg.max_steps)
                    if (a.sharded()) {  // every rank helps assemble the whole optimizer; rank 0 writes it
                      const AdamW full = gathered_optimizer(a, m, comm);
                      if (lead) save_training_checkpoint(out, m, full, st, o.integer("save-total-limit"));
                    } else if (lead) {
                      save_training_checkpoint(out, m, a, st, o.integer("save-total-limit"));
                    }
                });
  if (tty) std::cout << "\n";
  if (eval && (eval_every <= 0 || cfg.max_steps % eval_every != 0)) run_eval(cfg.max_steps);
  metrics.close();
  if (lead) save_checkpoint(policy, out, model_dir);
  std::cout << "model saved to " << out.string() << "\n";
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
      .add("max-length", "1024", "tokens per sequence")
      .add("max-prompt-length", "0", "keep the last N prompt tokens (0: no limit)")
      .add("max-completion-length", "0", "keep the first N completion tokens (0: no limit)")
      .add("truncation-mode", "keep_start", "keep_start | keep_end")
      .flag("skip-bad-rows", "skip malformed rows (counted, capped) instead of stopping")
      .add("out", "", "write the results as JSON to this file")
      .add("scores-out", "", "write per-pair scores as JSONL (reward model, policy and reference log-probs, implicit reward)")
      .add("backend", "cpu", "kernel backend: cpu | reference (plain double-precision loops: slow, a check of cpu)")
      .add("threads", "0", "CPU threads (0 = all cores)");
  if (!o.parse(argc, argv)) return 0;
  if (o.str("data").empty()) throw InputError("rlhf eval: --data is required");
  if (o.str("reward-model").empty() && o.str("policy").empty())
    throw InputError("rlhf eval: give --reward-model, --policy (with --ref-model), or both");
  if (!o.str("policy").empty() && o.str("ref-model").empty())
    throw InputError("rlhf eval: --policy needs --ref-model for the implicit reward");
  set_threads(o.integer("threads"));
  const fs::path tok_dir = o.str("policy").empty() ? fs::path(o.str("reward-model")) : fs::path(o.str("policy"));
  auto text = load_text_side(tok_dir);
  const Built b = build_dataset(DataKind::pairs, o.str("data"), *text, o);
  PackOptions pack;
  pack.seq_len = o.integer("max-length");

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
    Transformer rm = load_checkpoint(o.str("reward-model"), ModelHeads{.lm_head = false, .score_head = true});
    rm.set_backend(kernels::backend_named(o.str("backend")));
    rm_scores = pair_scores(compute_head_values(rm, b.data, pack));
    add_rows("reward_model", *rm_scores);
    report("reward_model", *rm_scores);
  }
  if (!o.str("policy").empty()) {
    std::vector<double> pol, ref;
    {
      Transformer m = load_checkpoint(o.str("policy"), ModelHeads{});
      m.set_backend(kernels::backend_named(o.str("backend")));
      pol = compute_reference_logps(m, b.data, pack);
    }
    {
      Transformer m = load_checkpoint(o.str("ref-model"), ModelHeads{});
      m.set_backend(kernels::backend_named(o.str("backend")));
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
