// rlhf lm: train a causal LM on token-id documents (or generated ones) and save it in HF format.
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "data/token_documents.h"
#include "dist/communicator.h"
#include "model/config.h"
#include "tensor/error.h"
#include "train/offline_objectives.h"
#include "train/offline_run.h"
#include "train/stop_signal.h"

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
      .add("batch-size", "8", "rows per micro-batch on each rank")
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
  declare_dist_timeout(o);
  if (!o.parse(argc, argv)) return 0;
  o.require({"model", "out"});
  if (o.str("data").empty() == !o.boolean("synthetic"))
    throw InputError("rlhf lm: give exactly one of --data FILE and --synthetic");
  apply_threads(o);
  dist::Communicator& comm = dist::world();
  comm.set_timeout(o.number("dist-timeout"));

  for (const char* f : {"seq-len", "batch-size", "grad-accum", "max-steps"})
    if (o.integer(f) <= 0) throw InputError(std::string("rlhf lm: --") + f + " must be positive");

  OfflineRunConfig r;
  r.command = "lm";
  r.model_dir = o.str("model");
  r.out_dir = o.str("out");
  r.data_file = o.str("data");
  r.kind = OfflineDataKind::documents;
  r.objective = [](const OfflineDataset&) { return token_nll_sum_objective(); };
  r.normalization = LossNormalization::step_token_mean;
  r.per_rank_batch = o.integer("batch-size");
  r.grad_accum = o.integer("grad-accum");
  r.max_steps = o.integer("max-steps");
  r.warmup_steps = o.integer("warmup-steps");
  r.schedule = parse_lr_schedule(o.str("lr-scheduler-type"));
  r.adam = adamw_from(o);
  r.seed = static_cast<uint64_t>(o.integer("seed"));
  r.pack.seq_len = o.integer("seq-len");
  r.log_every = std::max<int64_t>(1, o.integer("log-every"));
  r.checkpoints = checkpoints_from(o);
  r.resume = o.boolean("resume");
  r.backend = &backend_from(o);
  r.manifest = run_manifest(o);
  r.fingerprint_options = resume_fingerprint(o, {"out", "backend", "log-every", "dist-timeout"});
  r.comm = &comm;

  const ModelConfig config = ModelConfig::load(r.model_dir / "config.json");
  if (r.pack.seq_len > config.max_position_embeddings)
    throw InputError("rlhf lm: --seq-len " + std::to_string(r.pack.seq_len) + " exceeds the model's " +
                     std::to_string(config.max_position_embeddings) + " positions");
  const std::vector<TokenDocument> docs =
      o.boolean("synthetic") ? synthetic_token_documents(o.integer("synthetic-docs"), r.pack.seq_len / 4,
                                                         r.pack.seq_len, config.vocab_size, r.seed)
                             : read_token_documents(r.data_file, config.vocab_size);
  const OfflineData data = document_rows_data(docs, r.pack.seq_len, r.per_rank_batch * comm.size());
  install_stop_handlers();  // SIGTERM/SIGINT: checkpoint after the step, then stop
  const OfflineRunSummary s = run_offline(r, data);
  if (comm.rank() == 0)
    std::cout << "loss " << s.first_loss << " -> " << s.last_loss << " in " << s.steps << " steps ("
              << static_cast<int64_t>(s.tokens_per_second) << " tokens/s per rank)\n";
  return 0;
}

}  // namespace rlhf::cli
