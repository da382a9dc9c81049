// GELU (tanh approximation) and SwiGLU, forward and backward, against the reference backend
// (the textbook formulas in double, tanh form for GELU) and finite differences.
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

TEST(Activations, GeluMatchesReference) {
  const int64_t n = 40000;  // threaded path
  auto x = randn(n, 1, 3.0f);
  x[0] = 0.0f, x[1] = -30.0f, x[2] = 30.0f, x[3] = -100.0f, x[4] = 1e-6f;  // tails and tiny
  const auto R = randn(n, 2);
  std::vector<float> out(n);
  gelu_forward(out.data(), x.data(), n);
  std::vector<float> want(n), want_dx(n);
  reference_backend().gelu_forward(want.data(), x.data(), n);
  reference_backend().gelu_backward(want_dx.data(), R.data(), x.data(), n, Grad::overwrite);
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
  std::vector<float> want(N * I), want_d(N * 2 * I);
  reference_backend().swiglu_forward(want.data(), gu.data(), N, I);
  reference_backend().swiglu_backward(want_d.data(), R.data(), gu.data(), N, I, Grad::overwrite);
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
