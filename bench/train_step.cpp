// Training-step benchmark: forward + backward + AdamW on a GPT-2-shaped model, next to the
// measured peak of the GEMM the step runs on (src/kernels/cpu/gemm.h).
//
//   usage: train_step [--layers 12 --hidden 768 --heads 12 --vocab 50257 --batch 4 --seq 256
//                      --steps 5 --warmup 1 --threads 2]
//
// FLOPs per step (model FLOPs, what the step must do at minimum):
//   3 x forward, forward = 2 * (matmul parameters) * B*T            (qkv, out, MLP up/down)
//                        + 4 * B*T * mean_attended * n_heads * head_dim * layers   (QK^T and PV)
//                        + 2 * B*T * hidden * vocab                 (LM head)
// The log-prob kernel recomputes the LM-head logits in the backward (it never stores B*T*V
// probabilities); that extra 2*B*T*hidden*vocab is work we choose to do and is not counted.
// Prints one JSON line per result.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "model/transformer.h"
#include "tensor/rng.h"
#include "train/optimizer.h"

using namespace rlhf;
using clk = std::chrono::steady_clock;

static double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

// Best GFLOP/s of square-ish products (A B^T, as the forward) of the sizes the step uses.
static double gemm_peak(int threads) {
  double best = 0;
  for (int64_t n : {1024, 2048}) {
    std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
    auto product = [&] {
      kernels::cpu::gemm(n, n, n, 1.f, kernels::cpu::row_major(a.data(), n), kernels::cpu::transposed(b.data(), n),
                         false, c.data(), n);
    };
    product();
    const int reps = n == 1024 ? 8 : 3;
    auto t = clk::now();
    for (int r = 0; r < reps; ++r) product();
    best = std::max(best, 2.0 * n * n * n * reps / seconds_since(t) / 1e9);
  }
  std::printf("{\"impl\":\"gemm_peak\",\"threads\":%d,\"gflops\":%.1f}\n", threads, best);
  return best;
}

int main(int argc, char** argv) {
  int64_t layers = 12, hidden = 768, heads = 12, vocab = 50257, B = 4, T = 256, steps = 5, warmup = 1, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int64_t v = std::stoll(argv[i + 1]);
    if (k == "--layers") layers = v;
    else if (k == "--hidden") hidden = v;
    else if (k == "--heads") heads = v;
    else if (k == "--vocab") vocab = v;
    else if (k == "--batch") B = v;
    else if (k == "--seq") T = v;
    else if (k == "--steps") steps = v;
    else if (k == "--warmup") warmup = v;
    else if (k == "--threads") threads = v;
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  omp_set_num_threads(static_cast<int>(threads));
  const double peak = gemm_peak(static_cast<int>(threads));

  nlohmann::json j = {{"model_type", "gpt2"}, {"vocab_size", vocab}, {"n_embd", hidden},
                      {"n_layer", layers},    {"n_head", heads},     {"n_positions", std::max<int64_t>(1024, T)}};
  const ModelConfig cfg = ModelConfig::from_json(j, "bench");
  Transformer m(cfg, ModelHeads{});
  m.init_random(0);
  Rng rng(1);
  std::vector<std::vector<int32_t>> rows(B, std::vector<int32_t>(T));
  for (auto& r : rows)
    for (auto& t : r) t = static_cast<int32_t>(rng.below(vocab));
  const Batch batch = Batch::from_rows(rows, 1);
  Workspace ws(cfg, B, T, batch.n_scored(), 0);
  AdamW opt(m, AdamWConfig{.lr = 1e-4});

  double fwd_s = 0, bwd_s = 0, opt_s = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    auto t0 = clk::now();
    m.zero_grad();
    const Scores sc = m.forward(batch, ws);
    auto t1 = clk::now();
    m.backward(batch, ws, std::vector<float>(sc.logp.size(), -1.0f / sc.logp.size()), {});
    auto t2 = clk::now();
    opt.step(m, 1e-4, grad_global_norm(m));
    auto t3 = clk::now();
    if (s >= warmup) {
      fwd_s += std::chrono::duration<double>(t1 - t0).count();
      bwd_s += std::chrono::duration<double>(t2 - t1).count();
      opt_s += std::chrono::duration<double>(t3 - t2).count();
    }
  }
  const double step_s = (fwd_s + bwd_s + opt_s) / steps;
  const double flops = 3.0 * m.forward_flops(B * T, B * T, (T + 1) / 2.0);
  const double gflops = flops / step_s / 1e9;
  std::printf(
      "{\"impl\":\"rlhf.cpp\",\"layers\":%lld,\"hidden\":%lld,\"vocab\":%lld,\"batch\":%lld,\"seq\":%lld,"
      "\"threads\":%lld,\"params\":%lld,\"step_ms\":%.1f,\"forward_ms\":%.1f,\"backward_ms\":%.1f,"
      "\"optimizer_ms\":%.1f,\"tokens_per_s\":%.1f,\"gflops\":%.1f,\"fraction_of_gemm_peak\":%.3f}\n",
      (long long)layers, (long long)hidden, (long long)vocab, (long long)B, (long long)T, (long long)threads,
      (long long)m.n_params(), step_s * 1e3, fwd_s / steps * 1e3, bwd_s / steps * 1e3, opt_s / steps * 1e3,
      B * T / step_s, gflops, gflops / peak);
  return 0;
}
