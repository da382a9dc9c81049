// The dense products of training, side by side: our GEMM (src/kernels/cpu/gemm.h) against
// OpenBLAS's cblas_sgemm (Debian's build, whichever kernels it selected: printed) on the same
// operands, in one process, alternating, best of --runs. Shapes: the products of one forward and
// backward of the Qwen2 "small" model of bench/online_step.sh (32 sequences x 82 tokens = 2624
// rows, hidden 256, MLP 704, vocabulary 2048) and of GPT-2 small (1024 rows, hidden 768).
//
//   usage: gemm [--threads 2] [--runs 5] [--decode]
// Prints one JSON line per shape, then the geometric mean of the speed-ups.
//
// --decode compares instead the two ways a decode step multiplies a few rows (one per running
// sequence) by the weights (kernels::cpu::matmul_forward): streaming the weights as stored, and the
// GEMM on weights prepacked once (pack_weight), for 1 to 32 rows, over the dense weights of the
// same Qwen2 model's 4 layers and LM head in turn (14.7 MB, so every product reads them from
// beyond L2 as a decode step does). This is where kernels::kPackedMinRows comes from.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels_cpu.h"

using namespace rlhf::kernels::cpu;
using clk = std::chrono::steady_clock;

namespace {

struct Shape {
  const char* name;
  int64_t M, N, K;
  bool a_t, b_t;  // A stored transposed (K x M), B stored transposed (N x K)
};

// Decode products: streaming against prepacked, per row count, best of `runs` passes over the
// model's weights.
void decode_products(int runs, int threads) {
  struct Weight {
    int64_t C, OC;
    std::vector<float> w;
  };
  std::vector<Weight> weights;
  for (int layer = 0; layer < 4; ++layer)
    for (const auto [C, OC] : {std::pair<int64_t, int64_t>{256, 768}, {256, 256}, {256, 1408}, {704, 256}})
      weights.push_back({C, OC, {}});
  weights.push_back({256, 2048, {}});
  std::vector<rlhf::kernels::cpu::PackedB> packed;
  for (Weight& w : weights) {
    w.w.resize(w.C * w.OC);
    for (size_t i = 0; i < w.w.size(); ++i) w.w[i] = std::sin(0.01f * static_cast<float>(i % 997));
    packed.push_back(rlhf::kernels::cpu::pack_weight(w.w.data(), w.C, w.OC));
  }
  for (const int64_t rows : {1, 2, 4, 6, 8, 12, 16, 24, 32}) {
    std::vector<float> x(rows * 704, 0.5f), out(rows * 2048);
    double flop = 0, best[2] = {1e30, 1e30};
    for (const Weight& w : weights) flop += 2.0 * rows * w.C * w.OC;
    for (int r = 0; r < runs + 1; ++r)
      for (int way = 0; way < 2; ++way) {
        const auto t0 = clk::now();
        for (size_t i = 0; i < weights.size(); ++i) {
          const Weight& w = weights[i];
          if (way == 0)  // below kPackedMinRows rows, matmul_forward streams even when given packed weights
            rlhf::kernels::cpu::matmul_forward(out.data(), x.data(), w.w.data(), nullptr, rows, w.C, w.OC);
          else
            gemm(rows, 1.0f, row_major(x.data(), w.C), packed[i], false, out.data(), w.OC);
        }
        const double t = std::chrono::duration<double>(clk::now() - t0).count();
        if (r > 0) best[way] = std::min(best[way], t);
      }
    std::printf("{\"rows\":%ld,\"streaming_gflops\":%.1f,\"prepacked_gflops\":%.1f,\"speedup\":%.2f,\"threads\":%d}\n",
                static_cast<long>(rows), flop / best[0] / 1e9, flop / best[1] / 1e9, best[0] / best[1], threads);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 5;
  bool decode = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--decode") decode = true;
    else if (k == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
    else if (k == "--runs" && i + 1 < argc) runs = std::stoi(argv[++i]);
    else { std::fprintf(stderr, "usage: gemm [--threads 2] [--runs 5] [--decode]\n"); return 2; }
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  if (decode) {
    decode_products(std::max(runs, 20), threads);
    return 0;
  }
  // forward: out = inp W^T (B transposed); backward: dinp = dout W, dW = dout^T inp (A transposed)
  const Shape shapes[] = {{"qwen2-small q_proj fwd", 2624, 256, 256, false, true},
                          {"qwen2-small gate_up fwd", 2624, 1408, 256, false, true},
                          {"qwen2-small down fwd", 2624, 256, 704, false, true},
                          {"qwen2-small lm_head fwd", 2624, 2048, 256, false, true},
                          {"qwen2-small down dinp", 2624, 704, 256, false, false},
                          {"qwen2-small q_proj dW", 256, 256, 2624, true, false},
                          {"qwen2-small gate_up dW", 1408, 256, 2624, true, false},
                          {"gpt2-small fc fwd", 1024, 3072, 768, false, true},
                          {"gpt2-small fc dinp", 1024, 768, 3072, false, false},
                          {"gpt2-small fc dW", 3072, 768, 1024, true, false}};
  double log_sum = 0;
  int n = 0;
  for (const Shape& s : shapes) {
    std::vector<float> a(s.M * s.K), b(s.K * s.N), c_blas(s.M * s.N, 0.0f), c_ours(s.M * s.N, 0.0f);
    for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.1f * static_cast<float>(i % 1000));
    for (size_t i = 0; i < b.size(); ++i) b[i] = std::cos(0.07f * static_cast<float>(i % 1000));
    const int64_t lda = s.a_t ? s.M : s.K, ldb = s.b_t ? s.K : s.N;
    double t_blas = 1e30, t_ours = 1e30;
    for (int r = 0; r < runs + 1; ++r) {  // the first round warms both up
      auto t0 = clk::now();
      cblas_sgemm(CblasRowMajor, s.a_t ? CblasTrans : CblasNoTrans, s.b_t ? CblasTrans : CblasNoTrans, s.M, s.N, s.K,
                  1.0f, a.data(), lda, b.data(), ldb, 0.0f, c_blas.data(), s.N);
      const double tb = std::chrono::duration<double>(clk::now() - t0).count();
      t0 = clk::now();
      gemm(s.M, s.N, s.K, 1.0f, s.a_t ? transposed(a.data(), lda) : row_major(a.data(), lda),
           s.b_t ? transposed(b.data(), ldb) : row_major(b.data(), ldb), false, c_ours.data(), s.N);
      const double to = std::chrono::duration<double>(clk::now() - t0).count();
      if (r > 0) t_blas = std::min(t_blas, tb), t_ours = std::min(t_ours, to);
    }
    double diff = 0, scale = 0;
    for (size_t i = 0; i < c_blas.size(); ++i)
      diff = std::max(diff, static_cast<double>(std::fabs(c_blas[i] - c_ours[i]))),
      scale = std::max(scale, static_cast<double>(std::fabs(c_blas[i])));
    const double flop = 2.0 * s.M * s.N * s.K;
    std::printf("{\"shape\":\"%s\",\"M\":%ld,\"N\":%ld,\"K\":%ld,\"openblas_gflops\":%.1f,\"ours_gflops\":%.1f,"
                "\"speedup\":%.2f,\"max_rel_diff\":%.1e,\"openblas_core\":\"%s\",\"threads\":%d}\n",
                s.name, static_cast<long>(s.M), static_cast<long>(s.N), static_cast<long>(s.K), flop / t_blas / 1e9,
                flop / t_ours / 1e9, t_blas / t_ours, diff / scale, openblas_get_corename(), threads);
    log_sum += std::log(t_blas / t_ours);
    ++n;
  }
  std::printf("# geometric mean speed-up over OpenBLAS: %.2fx\n", std::exp(log_sum / n));
}
