// rlhf lm: train a causal LM on token-id documents (or generated ones) and save it in HF format.
#include <omp.h>

#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "train/lm_trainer.h"

namespace rlhf::cli {

void set_threads(long n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(static_cast<int>(n));
}

int cmd_lm(int argc, char** argv) {
  Options o("lm", "Trains a causal language model with the mean next-token NLL on packed documents.\n"
                  "Data: --data FILE (one document per line, whitespace-separated token ids) or --synthetic.");
  o.add("model", "", "HF model directory to start from (required; see rlhf init-model)")
      .add("data", "", "token-id file: one document per line")
      .flag("synthetic", "train on generated documents (arithmetic progressions modulo the vocabulary)")
      .add("synthetic-docs", "2000", "number of generated documents")
      .add("out", "", "output directory: metrics.jsonl, manifest.json and the final checkpoint (required)")
      .add("seq-len", "128", "tokens per packed row")
      .add("batch-size", "8", "rows per micro-batch")
      .add("grad-accum", "1", "micro-batches per optimizer step")
      .add("max-steps", "100", "optimizer steps")
      .add("learning-rate", "1e-3", "peak learning rate")
      .add("lr-scheduler-type", "cosine", "constant | constant_with_warmup | linear | cosine")
      .add("warmup-steps", "0", "linear warm-up steps")
      .add("weight-decay", "0.0", "AdamW decoupled weight decay (not applied to biases and norms)")
      .add("adam-beta1", "0.9", "AdamW beta1")
      .add("adam-beta2", "0.999", "AdamW beta2")
      .add("adam-epsilon", "1e-8", "AdamW epsilon")
      .add("max-grad-norm", "1.0", "global gradient-norm clipping (0 disables)")
      .add("log-every", "1", "print progress every N steps")
      .add("save-steps", "0", "write a resumable checkpoint-<step>/ every N steps (0: none)")
      .add("save-total-limit", "0", "keep only the newest N checkpoints (0: all)")
      .flag("resume", "continue from the newest checkpoint in --out")
      .add("seed", "0", "seed for data order and generated data")
      .add("backend", "cpu", "kernel backend: cpu | reference (plain double-precision loops: slow, a check of cpu)")
      .add("threads", "0", "CPU threads (0 = all cores)");
  if (!o.parse(argc, argv)) return 0;
  if (o.str("model").empty()) throw InputError("rlhf lm: --model is required");
  if (o.str("out").empty()) throw InputError("rlhf lm: --out is required");
  if (o.str("data").empty() == !o.boolean("synthetic"))
    throw InputError("rlhf lm: give exactly one of --data FILE and --synthetic");
  set_threads(o.integer("threads"));

  LmTrainConfig cfg;
  cfg.seq_len = o.integer("seq-len");
  cfg.batch_size = o.integer("batch-size");
  cfg.grad_accum = o.integer("grad-accum");
  cfg.max_steps = o.integer("max-steps");
  cfg.warmup_steps = o.integer("warmup-steps");
  cfg.log_every = std::max<int64_t>(1, o.integer("log-every"));
  cfg.seed = static_cast<uint64_t>(o.integer("seed"));
  cfg.schedule = parse_lr_schedule(o.str("lr-scheduler-type"));
  cfg.adam = {o.number("learning-rate"), o.number("adam-beta1"), o.number("adam-beta2"), o.number("adam-epsilon"),
              o.number("weight-decay"), o.number("max-grad-norm")};
  cfg.out_dir = o.str("out");
  cfg.save_steps = o.integer("save-steps");
  cfg.save_total_limit = o.integer("save-total-limit");
  cfg.resume = o.boolean("resume");
  for (const char* f : {"seq-len", "batch-size", "grad-accum", "max-steps"})
    if (o.integer(f) <= 0) throw InputError(std::string("rlhf lm: --") + f + " must be positive");

  Transformer m = load_checkpoint(o.str("model"), ModelHeads{});
  m.set_backend(kernels::backend_named(o.str("backend")));
  if (cfg.seq_len > m.config().max_position_embeddings)
    throw InputError("rlhf lm: --seq-len " + std::to_string(cfg.seq_len) + " exceeds the model's " +
                     std::to_string(m.config().max_position_embeddings) + " positions");
  const int64_t V = m.config().vocab_size;
  std::vector<TokenDocument> docs =
      o.boolean("synthetic")
          ? synthetic_token_documents(o.integer("synthetic-docs"), cfg.seq_len / 4, cfg.seq_len, V, cfg.seed)
          : read_token_documents(o.str("data"), V);

  std::filesystem::create_directories(cfg.out_dir);
  nlohmann::json manifest = {{"command", "lm"},
                             {"version", RLHF_VERSION},
                             {"git", RLHF_GIT_VERSION},
                             {"options", o.resolved()},
                             {"option_sources", o.provenance()},
                             {"model", {{"family", model_family_name(m.config().family)}, {"parameters", m.n_params()}}},
                             {"documents", docs.size()}};
  write_file_atomic(cfg.out_dir / "manifest.json", manifest.dump(2) + "\n");
  std::cout << "training " << model_family_name(m.config().family) << " (" << m.n_params() << " parameters) on "
            << docs.size() << " documents, " << cfg.max_steps << " steps\n";
  LmTrainResult r = train_lm(m, docs, cfg, std::cout);
  std::cout << "loss " << r.first_loss << " -> " << r.last_loss << " in " << r.steps << " steps ("
            << static_cast<int64_t>(r.tokens_per_second) << " tokens/s); model saved to " << cfg.out_dir.string()
            << "\n";
  return 0;
}

}  // namespace rlhf::cli
