#include "train/lm_trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <ostream>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf {

static std::string format_duration(double s) {
  const int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  return buf;
}

LmTrainResult train_lm(Transformer& m, const std::vector<TokenDocument>& docs, const LmTrainConfig& cfg,
                       std::ostream& progress) {
  const std::vector<PackedRow> rows = pack_documents(docs, cfg.seq_len);
  if (static_cast<int64_t>(rows.size()) < cfg.batch_size)
    throw InputError("training data packs into " + std::to_string(rows.size()) + " rows of " +
                     std::to_string(cfg.seq_len) + " tokens, fewer than --batch-size " +
                     std::to_string(cfg.batch_size));
  std::filesystem::create_directories(cfg.out_dir);
  std::ofstream metrics(cfg.out_dir / "metrics.jsonl", std::ios::trunc);
  if (!metrics) throw IoError((cfg.out_dir / "metrics.jsonl").string() + ": cannot open for writing");

  Workspace ws(m.config(), cfg.batch_size, cfg.seq_len, cfg.batch_size * cfg.seq_len, 0);
  AdamW opt(m, cfg.adam);
  Rng order_rng(cfg.seed, /*stream=*/2);
  std::vector<int64_t> order(rows.size());
  size_t cursor = order.size();  // forces a shuffle on first use
  int64_t epoch = -1;
  auto next_rows = [&] {
    std::vector<const PackedRow*> picked;
    while (static_cast<int64_t>(picked.size()) < cfg.batch_size) {
      if (cursor == order.size()) {  // new epoch: Fisher–Yates with the run's seed
        std::iota(order.begin(), order.end(), 0);
        for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[order_rng.below(i + 1)]);
        cursor = 0;
        ++epoch;
      }
      picked.push_back(&rows[order[cursor++]]);
    }
    return picked;
  };

  const bool tty = isatty(STDOUT_FILENO);
  LmTrainResult res;
  int64_t tokens_seen = 0;
  const auto t_start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < cfg.max_steps; ++step) {
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
      tokens_seen += b.B * b.T;
    }
    const double loss = nll / static_cast<double>(std::max<int64_t>(1, total_scored));
    const double gnorm = grad_global_norm(m);
    if (!std::isfinite(loss) || !std::isfinite(gnorm))
      throw NumericError("step " + std::to_string(step + 1) + ": non-finite " +
                       (std::isfinite(loss) ? "gradient norm" : "loss") +
                       "; stopped before the optimizer step (lower the learning rate or check the data)");
    const double lr = cfg.adam.lr * lr_multiplier(cfg.schedule, step, cfg.max_steps, cfg.warmup_steps);
    opt.step(m, lr, gnorm);

    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const double tps = tokens_seen / std::max(elapsed, 1e-9);
    if (step == 0) res.first_loss = loss;
    res.last_loss = loss;
    res.steps = step + 1;
    res.tokens_per_second = tps;
    nlohmann::json rec = {{"step", step + 1},     {"loss", loss},
                          {"learning_rate", lr},  {"grad_norm", gnorm},
                          {"epoch", epoch + static_cast<double>(cursor) / static_cast<double>(order.size())},
                          {"num_tokens", tokens_seen}, {"tokens_per_second", tps}};
    metrics << rec.dump() << "\n" << std::flush;
    if ((step + 1) % cfg.log_every == 0 || step + 1 == cfg.max_steps) {
      const double eta = elapsed / (step + 1) * (cfg.max_steps - step - 1);
      std::ostringstream line;
      line << "step " << (step + 1) << "/" << cfg.max_steps << " | loss " << std::fixed << std::setprecision(4) << loss
           << " | lr " << std::scientific << std::setprecision(2) << lr << " | grad_norm " << std::fixed
           << std::setprecision(3) << gnorm << " | " << std::setprecision(0) << tps << " tok/s | ETA "
           << format_duration(eta);
      progress << (tty ? "\r" : "") << line.str() << (tty ? "\033[K" : "\n") << std::flush;
    }
  }
  if (tty) progress << "\n";
  metrics.close();
  save_checkpoint(m, cfg.out_dir);
  return res;
}

}  // namespace rlhf
