// Fused chunked log-probability against the reference backend's full softmax: log-probs, lse,
// entropy, temperature, vocabularies that are not a multiple of the chunk, and gradients.
#include "kernel_test_util.h"
#include "kernels/cpu/kernels_cpu.h"
#include "tensor/error.h"

namespace rlhf::kernels::test {
namespace {

using namespace rlhf::kernels::cpu;  // the CPU kernels under test

struct LogprobRef {
  std::vector<float> logp, lse, entropy, dh, dW;
};

// The reference backend's full softmax in double: log-probs, lse, entropy, and the gradients for
// dlogp from zero.
LogprobRef logprob_ref(const std::vector<float>& h, const std::vector<float>& W, const std::vector<int32_t>& tgt,
                       const std::vector<float>& dlogp, int64_t N, int64_t C, int64_t V, float inv_temp) {
  const Backend& ref = reference_backend();
  LogprobRef r{std::vector<float>(N), std::vector<float>(N), std::vector<float>(N), std::vector<float>(N * C),
               std::vector<float>(V * C)};
  ref.logprob_forward(r.logp.data(), r.lse.data(), r.entropy.data(), h.data(), W.data(), tgt.data(), N, C, V, inv_temp,
                      nullptr, V);
  ref.logprob_backward(r.dh.data(), r.dW.data(), dlogp.data(), h.data(), W.data(), tgt.data(), r.lse.data(), N, C, V,
                       inv_temp, nullptr, V);
  return r;
}

std::vector<int32_t> random_targets(int64_t N, int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> t(N);
  for (auto& x : t) x = d(rng);
  t[0] = static_cast<int32_t>(V - 1);  // last vocabulary entry, in the short last chunk
  return t;
}

struct LpCase {
  int64_t N, C, V, chunk;
  float inv_temp;
};

void PrintTo(const LpCase& c, std::ostream* os) {
  *os << "N=" << c.N << " C=" << c.C << " V=" << c.V << " chunk=" << c.chunk << " inv_temp=" << c.inv_temp;
}
class LogprobTest : public ::testing::TestWithParam<LpCase> {};

TEST_P(LogprobTest, MatchesFullSoftmax) {
  const auto [N, C, V, chunk, inv_temp] = GetParam();
  const auto h = randn(N * C, 1), W = randn(V * C, 2, 0.4f), dlogp = randn(N, 3);
  const auto tgt = random_targets(N, V, 4);
  const LogprobRef ref = logprob_ref(h, W, tgt, dlogp, N, C, V, inv_temp);

  std::vector<float> logp(N), lse(N), entropy(N), scratch(N * chunk);
  logprob_forward(logp.data(), lse.data(), entropy.data(), h.data(), W.data(), tgt.data(), N, C, V, inv_temp,
                  scratch.data(), chunk);
  EXPECT_TRUE(all_close(logp, ref.logp, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(lse, ref.lse, 1e-5, 1e-5));
  // The entropy is lse - E_p[z], a difference of two terms of size ~log V: its float rounding
  // error scales with log V, not with the (smaller) entropy itself.
  EXPECT_TRUE(all_close(entropy, ref.entropy, 1e-5, 1e-5 * std::log(static_cast<double>(V))));

  // Without entropy: same log-probs.
  std::vector<float> logp2(N), lse2(N);
  logprob_forward(logp2.data(), lse2.data(), nullptr, h.data(), W.data(), tgt.data(), N, C, V, inv_temp, scratch.data(),
                  chunk);
  EXPECT_TRUE(all_close(logp2, ref.logp, 1e-5, 1e-5));

  const auto dh0 = prefilled(N * C, 5), dW0 = prefilled(V * C, 6);
  auto dh = dh0, dW = dW0;
  logprob_backward(dh.data(), dW.data(), dlogp.data(), h.data(), W.data(), tgt.data(), lse.data(), N, C, V, inv_temp,
                   scratch.data(), chunk);
  EXPECT_TRUE(close_scaled(dh, plus(dh0, ref.dh), 1e-4));
  EXPECT_TRUE(close_scaled(dW, plus(dW0, ref.dW), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Shapes, LogprobTest,
                         ::testing::Values(LpCase{5, 32, 1000, 256, 1.0f / 0.7f},  // V % chunk != 0, T = 0.7
                                           LpCase{7, 16, 300, 1000, 1.0f},         // one chunk larger than V
                                           LpCase{3, 8, 50, 1, 2.0f},              // chunk of one
                                           LpCase{40, 64, 2000, 512, 1.0f},        // threaded rows
                                           LpCase{6, 24, 777, 100, 0.25f}));       // hot temperature

TEST(Logprob, PeakedDistributionIsStable) {
  // Large logits: a naive exp would overflow; entropy must be ~0 and logp ~0 for the argmax.
  const int64_t N = 2, C = 4, V = 300, chunk = 64;
  std::vector<float> h = {10, 10, 10, 10, -10, -10, -10, -10};
  auto W = randn(V * C, 7, 0.01f);
  for (int c = 0; c < C; ++c) W[123 * C + c] = 5.0f, W[7 * C + c] = -5.0f;  // row 0 -> 123, row 1 -> 7
  std::vector<int32_t> tgt = {123, 7};
  std::vector<float> logp(N), lse(N), ent(N), scratch(N * chunk);
  logprob_forward(logp.data(), lse.data(), ent.data(), h.data(), W.data(), tgt.data(), N, C, V, 1.0f, scratch.data(),
                  chunk);
  const LogprobRef ref = logprob_ref(h, W, tgt, {0.f, 0.f}, N, C, V, 1.0f);
  EXPECT_TRUE(all_close(logp, ref.logp, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(lse, ref.lse, 1e-6, 1e-6));
  EXPECT_TRUE(all_close(ent, ref.entropy, 1e-3, 1e-6));
}

class LogprobFd : public ::testing::TestWithParam<float> {};

// Plain, and with Gemma 2's soft-cap (cap 1.5: the logits reach it).
TEST_P(LogprobFd, FiniteDifference) {
  const int64_t N = 3, C = 6, V = 37, chunk = 10;
  const float inv_temp = 1.0f / 0.8f, cap = GetParam();
  auto h = randn(N * C, 8), W = randn(V * C, 9, 0.5f);
  const auto dlogp = randn(N, 10);  // plays R: L = sum dlogp * logp
  const auto tgt = random_targets(N, V, 11);
  std::vector<float> logp(N), lse(N), scratch(N * chunk);
  auto loss = [&] {
    logprob_forward(logp.data(), lse.data(), nullptr, h.data(), W.data(), tgt.data(), N, C, V, inv_temp, scratch.data(),
                    chunk, cap);
    return dot(logp, dlogp);
  };
  loss();
  std::vector<float> dh(N * C, 0.0f), dW(V * C, 0.0f);
  logprob_backward(dh.data(), dW.data(), dlogp.data(), h.data(), W.data(), tgt.data(), lse.data(), N, C, V, inv_temp,
                   scratch.data(), chunk, nullptr, nullptr, false, cap);
  EXPECT_TRUE(check_fd(h, dh, loss, 1000, 1));
  EXPECT_TRUE(check_fd(W, dW, loss, 150, 2));
}

INSTANTIATE_TEST_SUITE_P(SoftCap, LogprobFd, ::testing::Values(0.0f, 1.5f));

// A single-chunk forward leaves its logits in scratch; the backward that reuses them gives the
// same bits as one that recomputes them (with and without the entropy term).
TEST(Logprob, BackwardReusingTheForwardsLogitsIsExact) {
  const int64_t N = 9, C = 24, V = 300;
  const auto h = randn(N * C, 30), W = randn(V * C, 31, 0.4f), dlogp = randn(N, 32), dent = randn(N, 33);
  const auto tgt = random_targets(N, V, 34);
  for (const bool with_entropy : {false, true}) {
    std::vector<float> logp(N), lse(N), ent(N), scratch(N * V);
    auto run = [&](bool reuse) {
      logprob_forward(logp.data(), lse.data(), ent.data(), h.data(), W.data(), tgt.data(), N, C, V, 1.25f,
                      scratch.data(), V);
      if (!reuse) std::fill(scratch.begin(), scratch.end(), std::nanf(""));  // must be recomputed
      std::vector<float> dh(N * C, 0.5f), dW(V * C, -0.25f);
      logprob_backward(dh.data(), dW.data(), dlogp.data(), h.data(), W.data(), tgt.data(), lse.data(), N, C, V, 1.25f,
                       scratch.data(), V, with_entropy ? dent.data() : nullptr, with_entropy ? ent.data() : nullptr,
                       reuse);
      return std::make_pair(dh, dW);
    };
    const auto [dh_recomputed, dW_recomputed] = run(false);
    const auto [dh_reused, dW_reused] = run(true);
    EXPECT_EQ(dh_reused, dh_recomputed);
    EXPECT_EQ(dW_reused, dW_recomputed);
  }
  std::vector<float> scratch(N * 100), dh(N * C), dW(V * C), lse(N);
  EXPECT_THROW(logprob_backward(dh.data(), dW.data(), dlogp.data(), h.data(), W.data(), tgt.data(), lse.data(), N, C,
                                V, 1.0f, scratch.data(), 100, nullptr, nullptr, true),
               std::exception);
}

// L = sum dlogp * logp + sum dent * entropy: the entropy bonus's gradient through the chunks.
TEST(Logprob, EntropyGradientFiniteDifference) {
  const int64_t N = 3, C = 6, V = 37, chunk = 10;
  const float inv_temp = 1.0f / 0.7f;
  auto h = randn(N * C, 18), W = randn(V * C, 19, 0.5f);
  const auto dlogp = randn(N, 20), dent = randn(N, 21);
  const auto tgt = random_targets(N, V, 22);
  std::vector<float> logp(N), lse(N), ent(N), scratch(N * chunk);
  auto loss = [&] {
    logprob_forward(logp.data(), lse.data(), ent.data(), h.data(), W.data(), tgt.data(), N, C, V, inv_temp,
                    scratch.data(), chunk);
    return dot(logp, dlogp) + dot(ent, dent);
  };
  loss();
  std::vector<float> dh(N * C, 0.0f), dW(V * C, 0.0f);
  logprob_backward(dh.data(), dW.data(), dlogp.data(), h.data(), W.data(), tgt.data(), lse.data(), N, C, V, inv_temp,
                   scratch.data(), chunk, dent.data(), ent.data());
  EXPECT_TRUE(check_fd(h, dh, loss, 1000, 1));
  EXPECT_TRUE(check_fd(W, dW, loss, 150, 2));
}

TEST(Logprob, RejectsTargetOutsideVocabulary) {
  const int64_t N = 1, C = 2, V = 5;
  std::vector<float> h(N * C, 1.0f), W(V * C, 1.0f), logp(N), lse(N), scratch(N * V);
  std::vector<int32_t> tgt = {5};
  EXPECT_THROW(logprob_forward(logp.data(), lse.data(), nullptr, h.data(), W.data(), tgt.data(), N, C, V, 1.0f,
                               scratch.data(), V),
               rlhf::LogicError);
}

}  // namespace
}  // namespace rlhf::kernels::test
