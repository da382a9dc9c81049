// AdamW against torch.optim.AdamW semantics: values computed by hand and the reference backend's
// update (in double).
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

TEST(AdamWKernel, TwoStepsMatchHandComputedValues) {
  const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  std::vector<float> p = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f};
  const std::vector<float> g1 = {0.5f, -1.0f, 0.0f, 2.0f, 1e-3f}, g2 = {-0.25f, -1.0f, 4.0f, 2.0f, -1e-3f};
  std::vector<float> m(p.size(), 0.0f), v(p.size(), 0.0f);
  const int64_t n = static_cast<int64_t>(p.size());
  std::vector<float> ref_p = p, ref_m = m, ref_v = v;
  const Backend& ref = reference_backend();

  adamw_step(p.data(), g1.data(), m.data(), v.data(), static_cast<int64_t>(p.size()), lr, b1, b2, eps, wd, 1);
  ref.adamw_step(ref_p.data(), g1.data(), ref_m.data(), ref_v.data(), n, lr, b1, b2, eps, wd, 1);
  // Step 1 by hand for element 0: p = 1 * (1 - 1e-3) - 1e-2 * sign(g) (m_hat / sqrt(v_hat) = 1)
  EXPECT_NEAR(p[0], 0.999 - 0.01, 1e-7);
  EXPECT_NEAR(p[3], 0.0 - 0.01, 1e-7);
  EXPECT_EQ(p[2], 0.5f * static_cast<float>(1.0 - 1e-3));  // zero gradient: weight decay only

  adamw_step(p.data(), g2.data(), m.data(), v.data(), static_cast<int64_t>(p.size()), lr, b1, b2, eps, wd, 2);
  ref.adamw_step(ref_p.data(), g2.data(), ref_m.data(), ref_v.data(), n, lr, b1, b2, eps, wd, 2);
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_NEAR(p[i], ref_p[i], 2e-7 * (1 + std::fabs(ref_p[i]))) << "p[" << i << "]";
    EXPECT_NEAR(m[i], ref_m[i], 1e-6 * (1 + std::fabs(ref_m[i]))) << "m[" << i << "]";
    EXPECT_NEAR(v[i], ref_v[i], 1e-6 * (1 + std::fabs(ref_v[i]))) << "v[" << i << "]";
  }
  // Element 3 by hand: g = 2 twice, so m_hat = 2, v_hat = 4 and the step is lr again.
  EXPECT_NEAR(p[3], (0.0 - 0.01) * (1 - 1e-3) - 0.01, 1e-7);
}

TEST(AdamWKernel, WeightDecayIsDecoupledAndExact) {
  // lr = 0.5, wd = 0.5: p *= 0.75 exactly; zero gradient gives a zero Adam step.
  const int64_t n = 100000;  // threaded path
  std::vector<float> p(n), g(n, 0.0f), m(n, 0.0f), v(n, 0.0f);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(i % 17) - 8.0f;
  adamw_step(p.data(), g.data(), m.data(), v.data(), n, 0.5f, 0.9f, 0.999f, 1e-8f, 0.5f, 1);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(p[i], (static_cast<float>(i % 17) - 8.0f) * 0.75f) << i;
}

TEST(AdamWKernel, LargeBufferMatchesReference) {
  const int64_t n = 200003;
  auto p = randn(n, 1), g = randn(n, 2), m = randn(n, 3, 0.1f), v = uniform(n, 4, 0.0f, 0.5f);
  auto want_p = p, want_m = m, want_v = v;
  reference_backend().adamw_step(want_p.data(), g.data(), want_m.data(), want_v.data(), n, 3e-4f, 0.9f, 0.95f, 1e-8f,
                                 0.01f, 7);
  adamw_step(p.data(), g.data(), m.data(), v.data(), n, 3e-4f, 0.9f, 0.95f, 1e-8f, 0.01f, 7);
  EXPECT_TRUE(all_close(p, want_p, 1e-6, 1e-7));
}

// A finite gradient with a huge learning rate: the parameters pushed past FLT_MAX, and those that
// were NaN already, are counted by both backends (the threaded path reduces over its blocks).
TEST(AdamWKernel, CountsTheNonFiniteParametersItWrites) {
  const int64_t n = 100003;
  std::vector<float> p0(n, 0.0f), g(n, -1.0f);
  int64_t want = 0;
  for (int64_t i = 0; i < n; i += 1000) p0[i] = 3e38f, ++want;  // + about 2.5e38 overflows
  p0[n - 1] = std::nanf("");
  ++want;
  p0[n - 2] = -3e38f;  // moves towards zero: finite
  for (const Backend* be : {&cpu_backend(), &reference_backend()}) {
    std::vector<float> p = p0, m(n, 0.0f), v(n, 0.0f);
    // Step 1000: the bias corrections are about 1, so the step size stays a finite float.
    const int64_t got = be->adamw_step(p.data(), g.data(), m.data(), v.data(), n, 1e38f, 0.9f, 0.999f, 1e-8f, 0.0f, 1000);
    int64_t seen = 0;
    for (float x : p) seen += !std::isfinite(x);
    EXPECT_EQ(got, want) << be->name();
    EXPECT_EQ(seen, want) << be->name();
    EXPECT_TRUE(std::isfinite(p[1]) && std::isfinite(p[n - 2])) << be->name();
    // An ordinary step writes none.
    std::vector<float> q = randn(n, 5), gq = randn(n, 6), mq(n, 0.0f), vq(n, 0.0f);
    EXPECT_EQ(be->adamw_step(q.data(), gq.data(), mq.data(), vq.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1), 0)
        << be->name();
  }
}

}  // namespace
}  // namespace rlhf::kernels::test
