// add_inplace, scale_inplace and sum_squares, with values whose results are exact in float.
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

TEST(Elementwise, AddScaleAndSumSquaresExact) {
  for (const int64_t n : {int64_t{1}, int64_t{1000}, int64_t{300001}}) {  // serial and threaded paths
    std::vector<float> a(n), b(n);
    for (int64_t i = 0; i < n; ++i) a[i] = static_cast<float>(i % 97) * 0.25f, b[i] = static_cast<float>(i % 13) - 6.0f;
    add_inplace(a.data(), b.data(), n);
    double want_ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = (i % 97) * 0.25 + (i % 13) - 6.0;
      ASSERT_EQ(a[i], static_cast<float>(want)) << "add, i = " << i << ", n = " << n;
      want_ss += want * want;
    }
    EXPECT_EQ(sum_squares(a.data(), n), want_ss) << "n = " << n;  // dyadic values: exact in double
    scale_inplace(a.data(), -0.5f, n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(a[i], static_cast<float>(-0.5 * ((i % 97) * 0.25 + (i % 13) - 6.0))) << "scale, i = " << i;
  }
}

TEST(Elementwise, SumSquaresAccumulatesInDouble) {
  // 2^24 + 1 ones: a float accumulator would stop at 2^24.
  const int64_t n = (int64_t{1} << 24) + 1;
  std::vector<float> x(n, 1.0f);
  EXPECT_EQ(sum_squares(x.data(), n), static_cast<double>(n));
}

// The sampler's softmax numerators: against libm's exp in double, to the vectorised exp's few ulp,
// down to arguments whose exp is near float's smallest normal (it may flush to 0 there), and the sum.
TEST(Elementwise, ExpShiftedMatchesExp) {
  for (const int64_t n : {1, 17, 2048, 2053}) {
    std::vector<float> s(n), e(n, -1.0f);
    for (int64_t i = 0; i < n; ++i) s[i] = 12.0f - 0.05f * static_cast<float>(i % 2000);  // 12 .. -88
    const float shift = 12.0f;
    const double sum = exp_shifted(e.data(), s.data(), shift, n);
    double want_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::exp(static_cast<double>(s[i] - shift));  // the same float argument
      want_sum += want;
      ASSERT_NEAR(e[i], want, 4e-7 * want + 1e-37) << "i = " << i << ", n = " << n;  // may flush below 1e-37
      ASSERT_GE(e[i], 0.0f);
    }
    EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum) << "n = " << n;
  }
}

}  // namespace
}  // namespace rlhf::kernels::test
