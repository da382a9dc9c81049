#include "train/lm_trainer.h"

#include <zlib.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "train/progress.h"
#include "train/train_checkpoint.h"

namespace rlhf {

LmTrainResult train_lm(Transformer& m, const std::vector<TokenDocument>& docs, const LmTrainConfig& cfg, RunLog& log) {
  const std::vector<PackedRow> rows = pack_documents(docs, cfg.seq_len);
  if (static_cast<int64_t>(rows.size()) < cfg.batch_size)
    throw InputError("training data packs into " + std::to_string(rows.size()) + " rows of " +
                     std::to_string(cfg.seq_len) + " tokens, fewer than --batch-size " +
                     std::to_string(cfg.batch_size));
  Workspace ws(m.config(), cfg.batch_size, cfg.seq_len, cfg.batch_size * cfg.seq_len, 0);
  AdamW opt(m, cfg.adam);
  TrainerState st;
  Rng order_rng(cfg.seed, /*stream=*/2);
  // Settings a resumed run must share with the run that wrote the checkpoint.
  uLong data_crc = 0;
  for (const PackedRow& r : rows) data_crc = crc32_z(data_crc, reinterpret_cast<const Bytef*>(r.tokens.data()),
                                                     r.tokens.size() * sizeof(int32_t));
  const nlohmann::json fingerprint = {{"seq_len", cfg.seq_len},   {"batch_size", cfg.batch_size},
                                      {"grad_accum", cfg.grad_accum}, {"max_steps", cfg.max_steps},
                                      {"seed", cfg.seed},         {"rows", rows.size()},
                                      {"data_crc32", data_crc}};
  st.fingerprint = fingerprint;
  std::vector<std::string> kept_metrics;
  if (cfg.resume) {
    kept_metrics = resume_from_latest(log.dir(), m, opt, st, fingerprint, log.console());
    order_rng.set_state(st.data_rng);
  }
  std::filesystem::create_directories(log.dir());
  log.start_metrics(kept_metrics);

  if (st.order.empty()) st.cursor = static_cast<int64_t>(rows.size());  // forces a shuffle on first use
  auto next_rows = [&] {
    std::vector<const PackedRow*> picked;
    while (static_cast<int64_t>(picked.size()) < cfg.batch_size) {
      if (st.cursor == static_cast<int64_t>(rows.size())) {  // new epoch: Fisher–Yates with the run's seed
        st.order.resize(rows.size());
        std::iota(st.order.begin(), st.order.end(), 0);
        for (size_t i = st.order.size() - 1; i > 0; --i) std::swap(st.order[i], st.order[order_rng.below(i + 1)]);
        st.cursor = 0;
        ++st.epoch;
      }
      picked.push_back(&rows[st.order[st.cursor++]]);
    }
    return picked;
  };

  LmTrainResult res;
  int64_t tokens_this_run = 0;
  const int64_t first_step = st.global_step;
  const auto t_start = std::chrono::steady_clock::now();
  for (int64_t step = st.global_step; step < cfg.max_steps; ++step) {
    std::vector<Batch> micro;
    int64_t total_scored = 0;
    for (int64_t a = 0; a < cfg.grad_accum; ++a) {
      micro.push_back(batch_from_rows(next_rows(), cfg.seq_len));
      total_scored += micro.back().n_scored();
    }
    m.zero_grad();
    double nll = 0;
    for (const Batch& b : micro) {
      Scores s = m.forward(b, ws);
      for (float lp : s.logp) nll -= lp;
      // Mean NLL over every scored token of the optimizer step: d loss / d logp = -1 / total.
      std::vector<float> dlogp(s.logp.size(), -1.0f / static_cast<float>(total_scored));
      m.backward(b, ws, dlogp, {});
      tokens_this_run += b.B * b.T;
      st.tokens_seen += b.B * b.T;
    }
    const double loss = nll / static_cast<double>(std::max<int64_t>(1, total_scored));
    const double gnorm = grad_global_norm(m);
    require_finite_step(step + 1, loss, gnorm, "");
    const double lr = cfg.adam.lr * lr_multiplier(cfg.schedule, step, cfg.max_steps, cfg.warmup_steps);
    opt.step(m, lr, gnorm);

    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const double tps = tokens_this_run / std::max(elapsed, 1e-9);
    st.global_step = step + 1;
    st.data_rng = order_rng.state();
    if (step == first_step) res.first_loss = loss;
    res.last_loss = loss;
    res.steps = step + 1;
    res.tokens_per_second = tps;
    nlohmann::json rec = {{"step", step + 1},     {"loss", loss},
                          {"learning_rate", lr},  {"grad_norm", gnorm},
                          {"epoch", (st.epoch - 1) + static_cast<double>(st.cursor) / static_cast<double>(rows.size())},
                          {"num_tokens", st.tokens_seen}, {"tokens_per_second", tps}};
    log.metrics(rec);
    if (log.checkpoint_due(st.global_step, cfg.max_steps)) log.save_checkpoint(log.dir(), m, opt, st);
    if ((step + 1) % cfg.log_every == 0 || step + 1 == cfg.max_steps) {
      const double eta = elapsed / (step + 1 - first_step) * (cfg.max_steps - step - 1);
      std::ostringstream line;
      line << "step " << (step + 1) << "/" << cfg.max_steps << " | loss " << std::fixed << std::setprecision(4) << loss
           << " | lr " << std::scientific << std::setprecision(2) << lr << " | grad_norm " << std::fixed
           << std::setprecision(3) << gnorm << " | " << std::setprecision(0) << tps << " tok/s | ETA "
           << format_hms(eta);
      log.progress(line.str());
    }
  }
  log.end_progress();
  if (log.lead()) save_checkpoint(m, log.dir());
  return res;
}

}  // namespace rlhf
