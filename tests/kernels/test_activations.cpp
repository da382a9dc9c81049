// GELU (tanh approximation) and SwiGLU, forward and backward, against double references written
// from the textbook formulas (tanh form for GELU) and finite differences.
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

constexpr double kS = 0.7978845608028654, kA = 0.044715;

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::tanh(kS * (x + kA * x * x * x))); }
double gelu_grad_ref(double x) {
  const double t = std::tanh(kS * (x + kA * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kS * (1.0 + 3.0 * kA * x * x);
}
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST(Activations, GeluMatchesReference) {
  const int64_t n = 40000;  // threaded path
  auto x = randn(n, 1, 3.0f);
  x[0] = 0.0f, x[1] = -30.0f, x[2] = 30.0f, x[3] = -100.0f, x[4] = 1e-6f;  // tails and tiny
  const auto R = randn(n, 2);
  std::vector<float> out(n);
  gelu_forward(out.data(), x.data(), n);
  std::vector<double> want(n), want_dx(n);
  for (int64_t i = 0; i < n; ++i) want[i] = gelu_ref(x[i]), want_dx[i] = R[i] * gelu_grad_ref(x[i]);
  EXPECT_TRUE(all_close(out, want, 1e-5, 1e-7));

  const auto dx0 = prefilled(n, 3);
  auto dx = dx0;
  gelu_backward(dx.data(), R.data(), x.data(), n);
  EXPECT_TRUE(all_close(dx, plus(dx0, want_dx), 1e-4, 1e-6));
  std::vector<float> fresh(n, std::nanf(""));  // Grad::overwrite never reads it
  gelu_backward(fresh.data(), R.data(), x.data(), n, Grad::overwrite);
  EXPECT_TRUE(all_close(fresh, want_dx, 1e-4, 1e-6));
}

TEST(Activations, GeluFiniteDifference) {
  const int64_t n = 50;
  auto x = randn(n, 4, 2.0f);
  const auto R = randn(n, 5);
  std::vector<float> out(n);
  auto loss = [&] {
    gelu_forward(out.data(), x.data(), n);
    return dot(out, R);
  };
  std::vector<float> dx(n, 0.0f);
  gelu_backward(dx.data(), R.data(), x.data(), n);
  EXPECT_TRUE(check_fd(x, dx, loss, 1000, 1));
}

TEST(Activations, SwigluMatchesReference) {
  const int64_t N = 37, I = 600;  // threaded path
  auto gu = randn(N * 2 * I, 6, 3.0f);
  gu[0] = -100.0f, gu[1] = 100.0f;
  const auto R = randn(N * I, 7);
  std::vector<float> out(N * I);
  swiglu_forward(out.data(), gu.data(), N, I);
  std::vector<double> want(N * I), want_d(N * 2 * I);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < I; ++i) {
      const double g = gu[n * 2 * I + i], u = gu[n * 2 * I + I + i], s = sigmoid(g), d = R[n * I + i];
      want[n * I + i] = g * s * u;
      want_d[n * 2 * I + i] = d * u * (s + g * s * (1.0 - s));
      want_d[n * 2 * I + I + i] = d * g * s;
    }
  EXPECT_TRUE(all_close(out, want, 1e-5, 1e-7));
  const auto d0 = prefilled(N * 2 * I, 8);
  auto d = d0;
  swiglu_backward(d.data(), R.data(), gu.data(), N, I);
  EXPECT_TRUE(all_close(d, plus(d0, want_d), 1e-4, 1e-6));
  std::vector<float> fresh(N * 2 * I, std::nanf(""));  // Grad::overwrite never reads it
  swiglu_backward(fresh.data(), R.data(), gu.data(), N, I, Grad::overwrite);
  EXPECT_TRUE(all_close(fresh, want_d, 1e-4, 1e-6));
}

TEST(Activations, SwigluFiniteDifference) {
  const int64_t N = 3, I = 8;
  auto gu = randn(N * 2 * I, 9, 2.0f);
  const auto R = randn(N * I, 10);
  std::vector<float> out(N * I);
  auto loss = [&] {
    swiglu_forward(out.data(), gu.data(), N, I);
    return dot(out, R);
  };
  std::vector<float> d(N * 2 * I, 0.0f);
  swiglu_backward(d.data(), R.data(), gu.data(), N, I);
  EXPECT_TRUE(check_fd(gu, d, loss, 1000, 1));
}

}  // namespace
}  // namespace rlhf::kernels::test
