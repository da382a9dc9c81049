// embedding_forward / embedding_backward against the reference backend: gathers and race-free
// scatter-adds with repeated tokens.
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

std::vector<int32_t> random_ids(int64_t n, int32_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct EmbCase {
  int64_t N, C, V, P;
  bool with_wpe;
};

void PrintTo(const EmbCase& c, std::ostream* os) {
  *os << "N=" << c.N << " C=" << c.C << " V=" << c.V << " P=" << c.P << " with_wpe=" << c.with_wpe;
}

class EmbeddingTest : public ::testing::TestWithParam<EmbCase> {};

TEST_P(EmbeddingTest, ForwardAndBackwardMatchReference) {
  const auto [N, C, V, P, with_wpe] = GetParam();
  const auto wte = randn(V * C, 1), wpe = randn(P * C, 2), R = randn(N * C, 3);
  const auto tokens = random_ids(N, static_cast<int32_t>(V), 4);  // V << N: many repeats
  const auto positions = random_ids(N, static_cast<int32_t>(P), 5);
  const float* wpe_p = with_wpe ? wpe.data() : nullptr;

  std::vector<float> out(N * C, 7.0f);
  embedding_forward(out.data(), tokens.data(), positions.data(), wte.data(), wpe_p, N, C);
  std::vector<float> want(N * C);
  reference_backend().embedding_forward(want.data(), tokens.data(), positions.data(), wte.data(), wpe_p, N, C);
  EXPECT_TRUE(all_close(out, want, 1e-7, 0.0));

  const auto dwte0 = prefilled(V * C, 6), dwpe0 = prefilled(P * C, 7);
  auto dwte = dwte0, dwpe = dwpe0;
  embedding_backward(dwte.data(), with_wpe ? dwpe.data() : nullptr, R.data(), tokens.data(), positions.data(), N, C);
  auto want_te = dwte0, want_pe = dwpe0;
  reference_backend().embedding_backward(want_te.data(), with_wpe ? want_pe.data() : nullptr, R.data(), tokens.data(),
                                         positions.data(), N, C);
  EXPECT_TRUE(close_scaled(dwte, want_te, 1e-6));
  EXPECT_TRUE(close_scaled(dwpe, want_pe, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Shapes, EmbeddingTest,
                         ::testing::Values(EmbCase{10, 8, 4, 10, true}, EmbCase{37, 5, 3, 37, false},
                                           EmbCase{512, 200, 17, 64, true}));  // threaded path, C % 64 != 0

}  // namespace
}  // namespace rlhf::kernels::test
