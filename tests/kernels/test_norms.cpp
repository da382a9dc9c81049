// LayerNorm and RMSNorm, forward and backward, against double references and finite differences.
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

struct NormRef {
  std::vector<double> out, dinp, dweight, dbias;
};

// Reference backward written from the chain rule on the unsimplified graph (mean, var, rstd).
NormRef layernorm_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                      const std::vector<float>& dout, int64_t N, int64_t C, double eps) {
  NormRef r;
  r.out.assign(N * C, 0.0);
  r.dinp.assign(N * C, 0.0);
  r.dweight.assign(C, 0.0);
  r.dbias.assign(C, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x.data() + n * C;
    const float* d = dout.data() + n * C;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += xr[c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= C;
    const double rstd = 1.0 / std::sqrt(var + eps);
    // dL/dxhat, dL/dvar, dL/dmean
    double dvar = 0, dmean = 0;
    std::vector<double> dxhat(C);
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (xr[c] - mean) * rstd;
      r.out[n * C + c] = xhat * w[c] + b[c];
      dxhat[c] = d[c] * w[c];
      r.dweight[c] += d[c] * xhat;
      r.dbias[c] += d[c];
      dvar += dxhat[c] * (xr[c] - mean) * -0.5 * rstd * rstd * rstd;
    }
    for (int64_t c = 0; c < C; ++c) dmean += -dxhat[c] * rstd;  // the var path sums to zero
    for (int64_t c = 0; c < C; ++c) r.dinp[n * C + c] = dxhat[c] * rstd + dvar * 2.0 * (xr[c] - mean) / C + dmean / C;
  }
  return r;
}

NormRef rmsnorm_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dout, int64_t N,
                    int64_t C, double eps) {
  NormRef r;
  r.out.assign(N * C, 0.0);
  r.dinp.assign(N * C, 0.0);
  r.dweight.assign(C, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x.data() + n * C;
    const float* d = dout.data() + n * C;
    double ms = 0;
    for (int64_t c = 0; c < C; ++c) ms += static_cast<double>(xr[c]) * xr[c];
    ms /= C;
    const double rstd = 1.0 / std::sqrt(ms + eps);
    double drstd = 0;
    for (int64_t c = 0; c < C; ++c) {
      r.out[n * C + c] = xr[c] * rstd * w[c];
      r.dweight[c] += d[c] * xr[c] * rstd;
      drstd += d[c] * w[c] * xr[c];
    }
    // rstd = (ms + eps)^(-1/2): d rstd / d x_c = -rstd^3 x_c / C
    for (int64_t c = 0; c < C; ++c) r.dinp[n * C + c] = d[c] * w[c] * rstd + drstd * (-rstd * rstd * rstd * xr[c] / C);
  }
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
