// cpu::gemm against a double-precision reference: every operand layout, overwrite and
// accumulate, alpha, sizes that leave partial micro-tiles and span several K and N blocks,
// threaded and called from inside a parallel region.
#include <omp.h>

#include "kernel_test_util.h"
#include "kernels/cpu/gemm.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

struct GemmCase {
  int64_t M, N, K;
};

void PrintTo(const GemmCase& c, std::ostream* os) { *os << "M=" << c.M << " N=" << c.N << " K=" << c.K; }

class GemmTest : public ::testing::TestWithParam<GemmCase> {};

// C = alpha * A B (+ C0) with A and B stored row-major or transposed, in double.
std::vector<double> reference(const std::vector<float>& a, bool a_t, const std::vector<float>& b, bool b_t,
                              const std::vector<float>& c0, bool accumulate, float alpha, int64_t M, int64_t N,
                              int64_t K) {
  std::vector<double> c(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += static_cast<double>(a_t ? a[k * M + i] : a[i * K + k]) * (b_t ? b[j * K + k] : b[k * N + j]);
      c[i * N + j] = alpha * s + (accumulate ? c0[i * N + j] : 0.0);
    }
  return c;
}

TEST_P(GemmTest, EveryLayoutMatchesReference) {
  const auto [M, N, K] = GetParam();
  const auto a = randn(M * K, 1), b = randn(K * N, 2), c0 = randn(M * N, 3);
  for (const bool a_t : {false, true})
    for (const bool b_t : {false, true})
      for (const bool accumulate : {false, true}) {
        const float alpha = accumulate ? 0.5f : 1.0f;
        const cpu::MatrixView A = a_t ? cpu::transposed(a.data(), M) : cpu::row_major(a.data(), K);
        const cpu::MatrixView B = b_t ? cpu::transposed(b.data(), K) : cpu::row_major(b.data(), N);
        std::vector<float> c = accumulate ? c0 : std::vector<float>(M * N, 123.0f);
        cpu::gemm(M, N, K, alpha, A, B, accumulate, c.data(), N);
        EXPECT_TRUE(close_scaled(c, reference(a, a_t, b, b_t, c0, accumulate, alpha, M, N, K), 1e-5))
            << "A " << (a_t ? "transposed" : "row-major") << ", B " << (b_t ? "transposed" : "row-major")
            << (accumulate ? ", accumulate" : ", overwrite");
        // B prepacked: the same panels, each element summed in the same order, so the same bits.
        std::vector<float> c_packed = accumulate ? c0 : std::vector<float>(M * N, 123.0f);
        cpu::gemm(M, alpha, A, cpu::PackedB(B, K, N), accumulate, c_packed.data(), N);
        EXPECT_EQ(c_packed, c) << "prepacked B, A " << (a_t ? "transposed" : "row-major") << ", B "
                               << (b_t ? "transposed" : "row-major") << (accumulate ? ", accumulate" : ", overwrite");
      }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmTest,
                         ::testing::Values(GemmCase{1, 1, 1}, GemmCase{5, 3, 7},      // one partial tile
                                           GemmCase{13, 33, 17},                      // just past one tile
                                           GemmCase{300, 70, 40},                     // threaded, several M blocks
                                           GemmCase{37, 45, 600},                     // three K blocks
                                           GemmCase{20, 4200, 9},                     // two N blocks
                                           GemmCase{96, 256, 256},                    // whole tiles only
                                           GemmCase{8, 700, 600}));                   // decode-like: few rows

// Blocks B[k0:k1, j0:j1] of a prepacked B, among them row ranges that cross the GEMM's K-blocks
// (256 rows) and an empty one, against the reference on the same block; the PackedB is repacked
// in place from a larger matrix to a smaller one in between.
TEST(Gemm, BlocksOfAPackedMatrix) {
  const int64_t w = cpu::PackedB::panel_width();
  cpu::PackedB packed(cpu::row_major(randn(700 * 90, 9).data(), 90), 700, 90);
  for (const bool b_t : {false, true}) {
    const int64_t K = 600, N = 3 * w + 5, M = 14;
    const auto b = randn(K * N, b_t ? 11 : 12);
    packed.pack(b_t ? cpu::transposed(b.data(), K) : cpu::row_major(b.data(), N), K, N);
    struct Range {
      int64_t k0, k1, j0, j1;
    };
    for (const Range r : {Range{0, K, 0, N}, Range{200, 530, w, N}, Range{256, 300, 2 * w, 2 * w + 3},
                          Range{17, 18, 0, w}, Range{40, 40, w, 2 * w}}) {
      const int64_t kk = r.k1 - r.k0, nn = r.j1 - r.j0;
      // The block of B as a matrix of its own, and A with a row stride larger than its width.
      std::vector<float> block(kk * nn);
      for (int64_t k = 0; k < kk; ++k)
        for (int64_t j = 0; j < nn; ++j)
          block[k * nn + j] = b_t ? b[(r.j0 + j) * K + r.k0 + k] : b[(r.k0 + k) * N + r.j0 + j];
      const auto a = randn(M * (kk + 3), 13);
      std::vector<float> a_dense(M * kk);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < kk; ++k) a_dense[i * kk + k] = a[i * (kk + 3) + k];
      for (const bool accumulate : {false, true}) {
        const auto c0 = randn(M * nn, 14);
        std::vector<float> c = accumulate ? c0 : std::vector<float>(M * nn, 7.0f);
        cpu::gemm(M, 0.75f, cpu::row_major(a.data(), kk + 3), packed, r.k0, r.k1, r.j0, r.j1, accumulate, c.data(),
                  nn);
        EXPECT_TRUE(close_scaled(c, reference(a_dense, false, block, false, c0, accumulate, 0.75f, M, nn, kk), 1e-5))
            << "rows " << r.k0 << ".." << r.k1 << ", columns " << r.j0 << ".." << r.j1 << (b_t ? ", B^T" : "")
            << (accumulate ? ", accumulate" : "");
      }
    }
  }
  std::vector<float> c(4);
  EXPECT_THROW(cpu::gemm(1, 1.0f, cpu::row_major(c.data(), 1), packed, 0, 1, 1, 2, false, c.data(), 1),
               std::exception);  // a column range not starting at a panel
}

// Strided sub-matrices (ld larger than the width) and a C with its own row stride.
TEST(Gemm, StridedOperands) {
  const int64_t M = 29, N = 41, K = 23, lda = 31, ldb = 50, ldc = 47;
  const auto a = randn(M * lda, 4), b = randn(K * ldb, 5);
  std::vector<float> c(M * ldc, 7.0f);
  cpu::gemm(M, N, K, 1.0f, cpu::row_major(a.data(), lda), cpu::row_major(b.data(), ldb), false, c.data(), ldc);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(a[i * lda + k]) * b[k * ldb + j];
      ASSERT_NEAR(c[i * ldc + j], s, 1e-4 * (1 + std::fabs(s))) << "(" << i << ", " << j << ")";
    }
    for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], 7.0f) << "wrote past row " << i;
  }
}

// Inside a parallel region every thread runs its own product on one thread, with its own
// packing buffers.
TEST(Gemm, InsideParallelRegion) {
  const int64_t M = 70, N = 90, K = 300;
  const auto a = randn(M * K, 6), b = randn(K * N, 7);
  const auto want = reference(a, false, b, false, {}, false, 1.0f, M, N, K);
  std::vector<std::vector<float>> out(4, std::vector<float>(M * N));
#pragma omp parallel for num_threads(2)
  for (int t = 0; t < 4; ++t)
    cpu::gemm(M, N, K, 1.0f, cpu::row_major(a.data(), K), cpu::row_major(b.data(), N), false, out[t].data(), N);
  for (const auto& c : out) EXPECT_TRUE(close_scaled(c, want, 1e-5));
}

TEST(Gemm, EmptyInnerDimension) {
  std::vector<float> c(6, 5.0f);
  const float none = 0.0f;
  cpu::gemm(2, 3, 0, 1.0f, cpu::row_major(&none, 0), cpu::row_major(&none, 3), true, c.data(), 3);
  EXPECT_EQ(c, std::vector<float>(6, 5.0f));
  cpu::gemm(2, 3, 0, 1.0f, cpu::row_major(&none, 0), cpu::row_major(&none, 3), false, c.data(), 3);
  EXPECT_EQ(c, std::vector<float>(6, 0.0f));
}

}  // namespace
}  // namespace rlhf::kernels::test
