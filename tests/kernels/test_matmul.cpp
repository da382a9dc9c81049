// matmul_forward / matmul_backward against the reference backend and finite differences.
#include "kernel_test_util.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

struct MatmulRef {
  std::vector<float> out, dinp, dweight, dbias;
};

// The reference backend's out = inp W^T + b and, for dout, the gradients from zero.
MatmulRef matmul_ref(const std::vector<float>& inp, const std::vector<float>& w, const float* bias,
                     const std::vector<float>& dout, int64_t N, int64_t C, int64_t OC) {
  const Backend& ref = reference_backend();
  MatmulRef r{std::vector<float>(N * OC), std::vector<float>(N * C), std::vector<float>(OC * C),
              std::vector<float>(OC)};
  ref.matmul_forward(r.out.data(), inp.data(), w.data(), bias, N, C, OC);
  ref.matmul_backward(r.dinp.data(), r.dweight.data(), r.dbias.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  return r;
}

struct MatmulCase {
  int64_t N, C, OC;
  bool bias;
};

void PrintTo(const MatmulCase& c, std::ostream* os) {
  *os << "N=" << c.N << " C=" << c.C << " OC=" << c.OC << " bias=" << c.bias;
}

class MatmulTest : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(MatmulTest, ForwardAndBackwardMatchReference) {
  const auto [N, C, OC, use_bias] = GetParam();
  const auto inp = randn(N * C, 1), w = randn(OC * C, 2, 0.3f), b = randn(OC, 3), R = randn(N * OC, 4);
  const float* bias = use_bias ? b.data() : nullptr;
  const MatmulRef ref = matmul_ref(inp, w, bias, R, N, C, OC);

  std::vector<float> out(N * OC, 123.0f);  // overwritten, not accumulated
  matmul_forward(out.data(), inp.data(), w.data(), bias, N, C, OC);
  EXPECT_TRUE(close_scaled(out, ref.out, 1e-5));

  const auto dinp0 = prefilled(N * C, 5), dw0 = prefilled(OC * C, 6), db0 = prefilled(OC, 7);
  auto dinp = dinp0, dw = dw0, db = db0;
  matmul_backward(dinp.data(), dw.data(), db.data(), R.data(), inp.data(), w.data(), N, C, OC);
  EXPECT_TRUE(close_scaled(dinp, plus(dinp0, ref.dinp), 1e-4));
  EXPECT_TRUE(close_scaled(dw, plus(dw0, ref.dweight), 1e-4));
  EXPECT_TRUE(close_scaled(db, plus(db0, ref.dbias), 1e-4));
  // Grad::overwrite: dinp's old contents (NaN here) are not read; dW, db still accumulate.
  std::vector<float> dinp_fresh(N * C, std::nanf(""));
  dw = dw0, db = db0;
  matmul_backward(dinp_fresh.data(), dw.data(), db.data(), R.data(), inp.data(), w.data(), N, C, OC, Grad::overwrite);
  EXPECT_TRUE(close_scaled(dinp_fresh, ref.dinp, 1e-4));
  EXPECT_TRUE(close_scaled(dw, plus(dw0, ref.dweight), 1e-4));
  EXPECT_TRUE(close_scaled(db, plus(db0, ref.dbias), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulTest,
                         ::testing::Values(MatmulCase{7, 13, 5, true}, MatmulCase{64, 96, 80, false},
                                           MatmulCase{130, 70, 300, true},  // threaded bias sum, OC % 64 != 0
                                           MatmulCase{3, 16, 1, true},      // score head: OC = 1
                                           // decode steps (few rows: the weight-streaming path), threaded
                                           MatmulCase{8, 300, 301, false}, MatmulCase{1, 256, 1003, true}));

// The few-row path starts its vector loads on a cache-line boundary of the weights: every
// misalignment of the weight pointer (C a multiple of 16, so all rows share it, and C not, so
// they do not), every row count up to the streaming limit, threaded and not. The result must
// also be the same bits wherever the weights sit (resumed runs reproduce uninterrupted ones).
TEST(Matmul, FewRowsAnyAlignment) {
  for (const int64_t C : {64, 70, 256})
    for (const int64_t N : {1, 3, 8, 21, 32}) {
      const int64_t OC = C == 256 ? 300 : 37;  // 256 x 300 runs threaded
      const auto inp = randn(N * C, 31), w = randn(OC * C, 32, 0.3f), b = randn(OC, 33);
      const MatmulRef ref = matmul_ref(inp, w, b.data(), std::vector<float>(N * OC, 0.0f), N, C, OC);
      std::vector<float> first;
      for (int64_t offset = 0; offset < 16; ++offset) {
        std::vector<float> storage(offset + OC * C);
        std::copy(w.begin(), w.end(), storage.begin() + offset);
        std::vector<float> out(N * OC, 123.0f);
        matmul_forward(out.data(), inp.data(), storage.data() + offset, b.data(), N, C, OC);
        EXPECT_TRUE(close_scaled(out, ref.out, 1e-5)) << "N=" << N << " C=" << C << " offset=" << offset;
        if (offset == 0) first = out;
        EXPECT_EQ(out, first) << "N=" << N << " C=" << C << ": offset " << offset << " changed the rounding";
      }
    }
}

// With prepacked weights (pack_weight) the forward takes the GEMM from kPackedMinRows rows on
// and streams below: both against the reference, with and without a bias, threaded and not.
TEST(Matmul, PackedWeightsMatchReference) {
  for (const int64_t C : {64, 70, 256})
    for (const int64_t N : {1, 7, 8, 21, 32, 40}) {
      const int64_t OC = C == 256 ? 300 : 37;
      const auto inp = randn(N * C, 34), w = randn(OC * C, 35, 0.3f), b = randn(OC, 36);
      const cpu::PackedB packed = pack_weight(w.data(), C, OC);
      for (const float* bias : {b.data(), static_cast<const float*>(nullptr)}) {
        const MatmulRef ref = matmul_ref(inp, w, bias, std::vector<float>(N * OC, 0.0f), N, C, OC);
        std::vector<float> out(N * OC, 123.0f);
        matmul_forward(out.data(), inp.data(), w.data(), bias, N, C, OC, &packed);
        EXPECT_TRUE(close_scaled(out, ref.out, 1e-5)) << "N=" << N << " C=" << C << (bias ? " bias" : "");
      }
    }
}

TEST(Matmul, BackwardFiniteDifference) {
  const int64_t N = 6, C = 9, OC = 7;
  auto inp = randn(N * C, 11), w = randn(OC * C, 12, 0.5f), b = randn(OC, 13);
  const auto R = randn(N * OC, 14);
  std::vector<float> out(N * OC);
  auto loss = [&] {
    matmul_forward(out.data(), inp.data(), w.data(), b.data(), N, C, OC);
    return dot(out, R);
  };
  std::vector<float> dinp(N * C, 0.0f), dw(OC * C, 0.0f), db(OC, 0.0f);
  matmul_backward(dinp.data(), dw.data(), db.data(), R.data(), inp.data(), w.data(), N, C, OC);
  EXPECT_TRUE(check_fd(inp, dinp, loss, 1000, 1));
  EXPECT_TRUE(check_fd(w, dw, loss, 1000, 2));
  EXPECT_TRUE(check_fd(b, db, loss, 1000, 3));
}

TEST(Matmul, BackwardSkipsNullOutputs) {
  const int64_t N = 4, C = 5, OC = 3;
  const auto inp = randn(N * C, 21), w = randn(OC * C, 22), R = randn(N * OC, 23);
  const MatmulRef ref = matmul_ref(inp, w, nullptr, R, N, C, OC);
  std::vector<float> dw(OC * C, 0.0f);
  matmul_backward(nullptr, dw.data(), nullptr, R.data(), inp.data(), w.data(), N, C, OC);
  EXPECT_TRUE(close_scaled(dw, ref.dweight, 1e-5));
}

}  // namespace
}  // namespace rlhf::kernels::test
