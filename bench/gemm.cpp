// The dense products of training, side by side: our GEMM (src/kernels/cpu/gemm.h) against
// OpenBLAS's cblas_sgemm (Debian's build, whichever kernels it selected: printed) on the same
// operands, in one process, alternating, best of --runs. Shapes: the products of one forward and
// backward of the Qwen2 "small" model of bench/online_step.sh (32 sequences x 82 tokens = 2624
// rows, hidden 256, MLP 704, vocabulary 2048) and of GPT-2 small (1024 rows, hidden 768).
//
//   usage: gemm [--threads 2] [--runs 5]
// Prints one JSON line per shape, then the geometric mean of the speed-ups.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

using namespace rlhf::kernels::cpu;
using clk = std::chrono::steady_clock;

namespace {

struct Shape {
  const char* name;
  int64_t M, N, K;
  bool a_t, b_t;  // A stored transposed (K x M), B stored transposed (N x K)
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--threads") threads = std::stoi(argv[i + 1]);
    else if (k == "--runs") runs = std::stoi(argv[i + 1]);
    else { std::fprintf(stderr, "usage: gemm [--threads 2] [--runs 5]\n"); return 2; }
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
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
