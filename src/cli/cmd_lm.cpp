// rlhf lm: train a causal LM on token-id documents (or generated ones) and save it in HF format.
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "train/lm_trainer.h"

namespace rlhf::cli {

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
      .add("max-steps", "100", "optimizer steps");
  declare_learning_rate(o, "1e-3");
  o.add("lr-scheduler-type", "cosine", "constant | constant_with_warmup | linear | cosine")
      .add("warmup-steps", "0", "linear warm-up steps")
      .add("weight-decay", "0.0", "AdamW decoupled weight decay (not applied to biases and norms)");
  declare_adam(o);
  o.add("log-every", "1", "print progress every N steps");
  declare_checkpoints(o);
  o.add("seed", "0", "seed for data order and generated data");
  declare_backend(o);
  declare_threads(o);
  if (!o.parse(argc, argv)) return 0;
  o.require({"model", "out"});
  if (o.str("data").empty() == !o.boolean("synthetic"))
    throw InputError("rlhf lm: give exactly one of --data FILE and --synthetic");
  apply_threads(o);

  LmTrainConfig cfg;
  cfg.seq_len = o.integer("seq-len");
  cfg.batch_size = o.integer("batch-size");
  cfg.grad_accum = o.integer("grad-accum");
  cfg.max_steps = o.integer("max-steps");
  cfg.warmup_steps = o.integer("warmup-steps");
  cfg.log_every = std::max<int64_t>(1, o.integer("log-every"));
  cfg.seed = static_cast<uint64_t>(o.integer("seed"));
  cfg.schedule = parse_lr_schedule(o.str("lr-scheduler-type"));
  cfg.adam = adamw_from(o);
  cfg.resume = o.boolean("resume");
  for (const char* f : {"seq-len", "batch-size", "grad-accum", "max-steps"})
    if (o.integer(f) <= 0) throw InputError(std::string("rlhf lm: --") + f + " must be positive");

  Transformer m = load_checkpoint(o.str("model"), ModelHeads{});
  m.set_backend(backend_from(o));
  if (cfg.seq_len > m.config().max_position_embeddings)
    throw InputError("rlhf lm: --seq-len " + std::to_string(cfg.seq_len) + " exceeds the model's " +
                     std::to_string(m.config().max_position_embeddings) + " positions");
  const int64_t V = m.config().vocab_size;
  std::vector<TokenDocument> docs =
      o.boolean("synthetic")
          ? synthetic_token_documents(o.integer("synthetic-docs"), cfg.seq_len / 4, cfg.seq_len, V, cfg.seed)
          : read_token_documents(o.str("data"), V);

  RunLog log(o.str("out"), /*lead=*/true, std::cout, checkpoints_from(o));
  std::filesystem::create_directories(log.dir());
  nlohmann::json manifest = run_manifest(o);
  manifest["model"] = {{"family", model_family_name(m.config().family)}, {"parameters", m.n_params()}};
  manifest["documents"] = docs.size();
  log.write_manifest(manifest);
  std::cout << "training " << model_family_name(m.config().family) << " (" << m.n_params() << " parameters) on "
            << docs.size() << " documents, " << cfg.max_steps << " steps\n";
  LmTrainResult r = train_lm(m, docs, cfg, log);
  std::cout << "loss " << r.first_loss << " -> " << r.last_loss << " in " << r.steps << " steps ("
            << static_cast<int64_t>(r.tokens_per_second) << " tokens/s); model saved to " << log.dir().string()
            << "\n";
  return 0;
}

}  // namespace rlhf::cli
