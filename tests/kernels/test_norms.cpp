// LayerNorm and RMSNorm, forward and backward, against the reference backend and finite differences.
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

struct NormRef {
  std::vector<float> out, dinp, dweight, dbias;
};

// The reference backend's norms (written from the chain rule on the unsimplified graph) and
// their gradients for dout, from zero.
NormRef layernorm_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                      const std::vector<float>& dout, int64_t N, int64_t C, float eps) {
  const Backend& ref = reference_backend();
  NormRef r{std::vector<float>(N * C), std::vector<float>(N * C), std::vector<float>(C), std::vector<float>(C)};
  std::vector<float> mean(N), rstd(N);
  ref.layernorm_forward(r.out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, eps);
  ref.layernorm_backward(r.dinp.data(), r.dweight.data(), r.dbias.data(), dout.data(), x.data(), w.data(), mean.data(),
                         rstd.data(), N, C);
  return r;
}

NormRef rmsnorm_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dout, int64_t N,
                    int64_t C, float eps) {
  const Backend& ref = reference_backend();
  NormRef r{std::vector<float>(N * C), std::vector<float>(N * C), std::vector<float>(C), {}};
  std::vector<float> rstd(N);
  ref.rmsnorm_forward(r.out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
  ref.rmsnorm_backward(r.dinp.data(), r.dweight.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
  return r;
}

struct NormCase {
  int64_t N, C;
};

void PrintTo(const NormCase& c, std::ostream* os) { *os << "N=" << c.N << " C=" << c.C; }
class NormTest : public ::testing::TestWithParam<NormCase> {};

TEST_P(NormTest, LayerNormMatchesReference) {
  const auto [N, C] = GetParam();
  const float eps = 1e-5f;
  auto x = randn(N * C, 1, 2.0f);
  for (auto& v : x) v += 0.7f;  // non-zero mean
  const auto w = uniform(C, 2, 0.5f, 1.5f), b = randn(C, 3), R = randn(N * C, 4);
  const NormRef ref = layernorm_ref(x, w, b, R, N, C, eps);
  std::vector<float> out(N * C), mean(N), rstd(N);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, eps);
  EXPECT_TRUE(close_scaled(out, ref.out, 1e-5));

  const auto dx0 = prefilled(N * C, 5), dw0 = prefilled(C, 6), db0 = prefilled(C, 7);
  auto dx = dx0, dw = dw0, db = db0;
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  EXPECT_TRUE(close_scaled(dx, plus(dx0, ref.dinp), 1e-4));
  EXPECT_TRUE(close_scaled(dw, plus(dw0, ref.dweight), 1e-4));
  EXPECT_TRUE(close_scaled(db, plus(db0, ref.dbias), 1e-4));
}

TEST_P(NormTest, RMSNormMatchesReference) {
  const auto [N, C] = GetParam();
  const float eps = 1e-6f;
  const auto x = randn(N * C, 11, 2.0f), w = uniform(C, 12, 0.5f, 1.5f), R = randn(N * C, 13);
  const NormRef ref = rmsnorm_ref(x, w, R, N, C, eps);
  std::vector<float> out(N * C), rstd(N);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
  EXPECT_TRUE(close_scaled(out, ref.out, 1e-5));

  const auto dx0 = prefilled(N * C, 14), dw0 = prefilled(C, 15);
  auto dx = dx0, dw = dw0;
  rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  EXPECT_TRUE(close_scaled(dx, plus(dx0, ref.dinp), 1e-4));
  EXPECT_TRUE(close_scaled(dw, plus(dw0, ref.dweight), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Shapes, NormTest,
                         ::testing::Values(NormCase{3, 7}, NormCase{5, 64}, NormCase{96, 384}));  // last: threaded

TEST(Norms, LayerNormFiniteDifference) {
  const int64_t N = 3, C = 10;
  auto x = randn(N * C, 21), w = uniform(C, 22, 0.5f, 1.5f), b = randn(C, 23);
  const auto R = randn(N * C, 24);
  std::vector<float> out(N * C), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    return dot(out, R);
  };
  loss();
  std::vector<float> dx(N * C, 0.0f), dw(C, 0.0f), db(C, 0.0f);
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  EXPECT_TRUE(check_fd(x, dx, loss, 1000, 1));
  EXPECT_TRUE(check_fd(w, dw, loss, 1000, 2));
  EXPECT_TRUE(check_fd(b, db, loss, 1000, 3));
}

TEST(Norms, RMSNormFiniteDifference) {
  const int64_t N = 3, C = 10;
  auto x = randn(N * C, 31), w = uniform(C, 32, 0.5f, 1.5f);
  const auto R = randn(N * C, 34);
  std::vector<float> out(N * C), rstd(N);
  auto loss = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
    return dot(out, R);
  };
  loss();
  std::vector<float> dx(N * C, 0.0f), dw(C, 0.0f);
  rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  EXPECT_TRUE(check_fd(x, dx, loss, 1000, 1));
  EXPECT_TRUE(check_fd(w, dw, loss, 1000, 2));
}

}  // namespace
}  // namespace rlhf::kernels::test
