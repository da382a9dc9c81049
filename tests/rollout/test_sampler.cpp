// The sampler: drawn tokens follow softmax(logits / T) and its top-k/top-p/min-p truncations
// (total-variation tests against an independent reference), log-probs equal the engine's
// forward at the same temperature, samples depend only on (prompt seed, sample index), and the
// stopping rules.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "../model/model_test_util.h"
#include "../model/tiny_models.h"
#include "model/transformer.h"
#include "rollout/sampler.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf::rollout {
namespace {

std::vector<double> softmax(const std::vector<float>& z, double T) {
  const double mx = *std::max_element(z.begin(), z.end());
  std::vector<double> p(z.size());
  double s = 0;
  for (size_t v = 0; v < z.size(); ++v) s += p[v] = std::exp((z[v] - mx) / T);
  for (double& x : p) x /= s;
  return p;
}

// The distribution transformers' warpers sample from, written the way they compute it:
// TopK keeps scores >= the k-th largest; TopP sorts ascending and drops tokens whose cumulative
// probability is <= 1 - top_p; MinP drops probabilities < min_p * max; renormalised after each.
std::vector<double> reference_distribution(const std::vector<float>& z, const SamplingParams& sp) {
  const size_t V = z.size();
  std::vector<double> p = softmax(z, sp.temperature);
  auto renorm = [&] {
    const double s = std::accumulate(p.begin(), p.end(), 0.0);
    for (double& x : p) x /= s;
  };
  if (sp.top_k > 0) {
    std::vector<double> sorted = p;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    for (double& x : p)
      if (x < sorted[sp.top_k - 1]) x = 0;
    renorm();
  }
  if (sp.top_p < 1) {
    std::vector<size_t> asc(V);
    std::iota(asc.begin(), asc.end(), 0);
    std::sort(asc.begin(), asc.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
    double cum = 0;
    std::vector<double> q = p;
    for (size_t i = 0; i + 1 < V; ++i) {  // the most likely token is always kept
      cum += p[asc[i]];
      if (cum <= 1 - sp.top_p) q[asc[i]] = 0;
    }
    p = q;
    renorm();
  }
  if (sp.min_p > 0) {
    const double mx = *std::max_element(p.begin(), p.end());
    for (double& x : p)
      if (x < sp.min_p * mx) x = 0;
    renorm();
  }
  return p;
}

// Expected total-variation distance between a distribution and the empirical one of M draws,
// 0.5 sum_v E|f_v - p_v| ~= 0.5 sum_v sqrt(2 p_v (1 - p_v) / (pi M)) (normal approximation).
double expected_tv(const std::vector<double>& p, int64_t M) {
  double s = 0;
  for (double x : p) s += std::sqrt(2 * x * (1 - x) / (M_PI * M));
  return 0.5 * s;
}

double tv(const std::vector<double>& p, const std::vector<int64_t>& counts, int64_t M) {
  double s = 0;
  for (size_t v = 0; v < p.size(); ++v) s += std::fabs(p[v] - static_cast<double>(counts[v]) / M);
  return 0.5 * s;
}

std::vector<float> random_logits(int64_t V, uint64_t seed, double scale) {
  Rng rng(seed);
  std::vector<float> z(V);
  for (float& x : z) x = static_cast<float>(rng.normal() * scale);
  return z;
}

// Tolerance: 3x the TV expected from sampling noise alone (a sampler off by a few percent of
// mass on any token fails; the draws are seeded, so the test is deterministic).
void expect_matches(const std::vector<float>& z, const SamplingParams& sp, int64_t M) {
  const std::vector<double> want = reference_distribution(z, sp);
  std::vector<int64_t> counts(z.size(), 0);
  Rng rng(99);
  SampleScratch sc;
  const std::vector<double> full = softmax(z, sp.temperature);
  for (int64_t i = 0; i < M; ++i) {
    const TokenDraw d = sample_token(z.data(), static_cast<int64_t>(z.size()), sp, rng, sc);
    ++counts[d.token];
    if (i < 100) EXPECT_NEAR(d.logprob, std::log(full[d.token]), 1e-5);  // untruncated log-prob
  }
  for (size_t v = 0; v < z.size(); ++v)
    if (want[v] == 0) EXPECT_EQ(counts[v], 0) << "token " << v << " is truncated away but was drawn";
  const double tol = 3 * expected_tv(want, M);
  EXPECT_LT(tv(want, counts, M), tol) << "T " << sp.temperature << " top_k " << sp.top_k << " top_p " << sp.top_p
                                      << " min_p " << sp.min_p;
}

TEST(SampleToken, FollowsTheTemperatureScaledSoftmax) {
  const std::vector<float> z = random_logits(40, 1, 2.0);
  for (double T : {1.0, 0.6, 1.7}) expect_matches(z, {.temperature = T}, 200000);
}

TEST(SampleToken, FollowsTheTruncatedDistributions) {
  const std::vector<float> z = random_logits(40, 2, 2.0);
  expect_matches(z, {.temperature = 1.0, .top_k = 5}, 200000);
  expect_matches(z, {.temperature = 0.8, .top_p = 0.7}, 200000);
  expect_matches(z, {.temperature = 1.2, .min_p = 0.08}, 200000);
  expect_matches(z, {.temperature = 1.0, .top_k = 12, .top_p = 0.9, .min_p = 0.05}, 200000);
  // A wide vocabulary so that top-p bisects over many candidates.
  const std::vector<float> flat = random_logits(2000, 3, 0.3);
  expect_matches(flat, {.temperature = 1.0, .top_p = 0.5}, 100000);
}

TEST(SampleToken, GreedyTakesTheArgmaxWithUnscaledLogprob) {
  const std::vector<float> z = {0.5f, 2.0f, -1.0f, 2.0f};
  Rng rng(1);
  SampleScratch sc;
  const TokenDraw d = sample_token(z.data(), 4, {.temperature = 0}, rng, sc);
  EXPECT_EQ(d.token, 1);  // first of the tied maxima
  EXPECT_NEAR(d.logprob, std::log(softmax(z, 1.0)[1]), 1e-6);
}

// ---- non-finite logits (sampler.h) -----------------------------------------------------------

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Every path of sample_token: greedy, temperature, and each truncation alone and together.
std::vector<SamplingParams> every_path() {
  return {{.temperature = 0},   {.temperature = 1.0}, {.temperature = 0.5},  {.temperature = 1.0, .top_k = 2},
          {.top_p = 0.6},       {.min_p = 0.2},       {.temperature = 0.7, .top_k = 3, .top_p = 0.9, .min_p = 0.05}};
}

// Draws of sample_token on one row: how often each token came, and each draw's log-prob.
std::vector<int64_t> draw(const std::vector<float>& z, const SamplingParams& sp, int64_t M, std::vector<float>* lps = nullptr) {
  std::vector<int64_t> counts(z.size(), 0);
  Rng rng(7);
  SampleScratch sc;
  for (int64_t i = 0; i < M; ++i) {
    const TokenDraw d = sample_token(z.data(), static_cast<int64_t>(z.size()), sp, rng, sc);
    EXPECT_GE(d.token, 0);
    EXPECT_LT(d.token, static_cast<int32_t>(z.size()));
    ++counts[d.token];
    if (lps) lps->push_back(d.logprob);
  }
  return counts;
}

TEST(SampleToken, NanAnywhereInTheRowIsANumericError) {
  const std::vector<std::pair<std::vector<float>, int>> rows = {
      {{kNaN, 1.0f, 2.0f, 0.5f}, 0}, {{1.0f, 2.0f, 0.5f, kNaN}, 3}, {{kNaN}, 0}, {{kInf, kNaN, -kInf}, 1},
      {{1e38f, -kInf, 3.0f, kNaN, 0.0f}, 3}};
  for (const auto& [z, at] : rows)
    for (const SamplingParams& sp : every_path()) {
      Rng rng(1);
      SampleScratch sc;
      rlhf::test::expect_error<NumericError>(
          [&] { sample_token(z.data(), static_cast<int64_t>(z.size()), sp, rng, sc); },
          {"logit of token " + std::to_string(at) + " (of " + std::to_string(z.size()) + ") is NaN"});
    }
}

TEST(SampleToken, AllMinusInfIsANumericErrorAndMinusInfIsNeverDrawn) {
  const std::vector<float> none = {-kInf, -kInf, -kInf};
  const std::vector<float> some = {-kInf, 0.3f, -kInf, -1.0f, -kInf};
  for (const SamplingParams& sp : every_path()) {
    Rng rng(1);
    SampleScratch sc;
    rlhf::test::expect_error<NumericError>([&] { sample_token(none.data(), 3, sp, rng, sc); }, {"every logit", "-Inf"});
    std::vector<float> lps;
    const std::vector<int64_t> c = draw(some, sp, 2000, &lps);
    EXPECT_EQ(c[0] + c[2] + c[4], 0) << "an impossible token was drawn";
    for (float lp : lps) EXPECT_TRUE(std::isfinite(lp));
  }
}

TEST(SampleToken, PlusInfTokensShareAllTheProbability) {
  const std::vector<float> one = {0.0f, kInf, 5.0f, -kInf};
  const std::vector<float> two = {3.0f, kInf, 1e38f, kInf, -kInf};
  for (const SamplingParams& sp : every_path()) {
    std::vector<float> lps;
    EXPECT_EQ(draw(one, sp, 500, &lps)[1], 500);
    for (float lp : lps) EXPECT_EQ(lp, 0.0f);
    lps.clear();
    const std::vector<int64_t> c = draw(two, sp, 4000, &lps);
    EXPECT_EQ(c[1] + c[3], 4000) << "only the +Inf tokens";
    for (float lp : lps) EXPECT_NEAR(lp, -std::log(2.0), 1e-6);
    if (sp.temperature == 0)
      EXPECT_EQ(c[1], 4000) << "greedy: the first of the tied maxima";
    else
      EXPECT_NEAR(static_cast<double>(c[1]) / 4000, 0.5, 0.04);  // top-k keeps ties, top-p 0.6 both halves
  }
  EXPECT_EQ(draw(two, {.top_p = 0.5}, 1000)[1], 1000) << "top-p 0.5 keeps the first half, ties by id";
}

// Logits near FLT_MAX: exp never sees an overflowed difference, and a temperature below 1 that
// overflows logits / T still gives softmax(logits / T).
TEST(SampleToken, HugeFiniteLogitsAreNotOverflowed) {
  const std::vector<float> far = {1e38f, 0.0f, -1e38f, 3e38f - 1e38f};
  for (const SamplingParams& sp : every_path()) {
    std::vector<float> lps;
    EXPECT_EQ(draw(far, sp, 300, &lps)[3], 300);
    for (float lp : lps) EXPECT_EQ(lp, 0.0f);
  }
  const std::vector<float> both = {3e38f, -3e38f, 3e38f, 1.0f};  // / 0.5 overflows to +-Inf
  const std::vector<float> low = {-3e38f, -3e38f, -3e38f};        // / 0.5 all -Inf
  for (SamplingParams sp : every_path()) {
    if (sp.temperature == 1.0) sp.temperature = 0.5;
    std::vector<float> lps;
    const std::vector<int64_t> c = draw(both, sp, 4000, &lps);
    EXPECT_EQ(c[0] + c[2], 4000);
    for (float lp : lps) EXPECT_NEAR(lp, -std::log(2.0), 1e-6);
    lps.clear();
    const std::vector<int64_t> u = draw(low, sp, 3000, &lps);
    for (float lp : lps) EXPECT_NEAR(lp, -std::log(3.0), 1e-6);
    if (sp.temperature > 0 && sp.top_p == 1) EXPECT_GT(std::min({u[0], u[1], u[2]}), 800) << "uniform";
  }
}

// ---- generate --------------------------------------------------------------------------------

Transformer tiny_model(const std::string& family, uint64_t seed) {
  Transformer m(test::tiny_config(family), ModelHeads{});
  m.init_random(seed, 0.4f);
  return m;
}

const std::vector<std::vector<int32_t>> kPrompts = {{3, 14, 15}, {9}, {2, 6, 5, 3, 5, 8, 9, 7}, {1, 1}, {44, 45, 46, 47}};

class GenerateTest : public ::testing::TestWithParam<std::string> {};

// Every reported log-prob is the forward's log softmax(logits / T) of that token.
TEST_P(GenerateTest, LogprobsEqualForwardAtTheTemperature) {
  Transformer m = tiny_model(GetParam(), 3);
  for (double T : {1.0, 0.7}) {
    const SamplingParams sp{.temperature = T, .top_k = 10, .max_new_tokens = 12, .n = 3};
    const std::vector<Completion> out = generate(m, kPrompts, {1, 2, 3, 4, 5}, sp, {.batch_size = 4});
    ASSERT_EQ(out.size(), kPrompts.size() * 3);
    for (const Completion& c : out) {
      ASSERT_EQ(c.tokens.size(), 12u);
      EXPECT_EQ(c.finish, FinishReason::length);
      std::vector<int32_t> row = kPrompts[c.prompt];
      row.insert(row.end(), c.tokens.begin(), c.tokens.end());
      Batch b = Batch::from_rows({row}, static_cast<int64_t>(kPrompts[c.prompt].size()));
      Workspace ws(m.config(), 1, b.T, b.n_scored(), 0);
      const Scores s = m.forward(b, ws, {.temperature = static_cast<float>(T)});
      for (size_t t = 0; t < c.tokens.size(); ++t) EXPECT_NEAR(c.logprobs[t], s.logp[t], 1e-4) << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, GenerateTest, ::testing::Values("gpt2", "llama", "qwen2", "mistral"));

// The first token of many samples of one prompt, through the whole loop (prefill, shared
// prefix copied to n slots, per-sample streams), follows softmax(logits / T) of the forward.
TEST(Generate, FirstTokenDistributionMatchesTheModel) {
  Transformer m = tiny_model("llama", 8);
  const std::vector<int32_t> prompt = {5, 17, 29, 3};
  const int64_t V = m.config().vocab_size, M = 40000;
  const double T = 0.8;
  std::vector<std::vector<int32_t>> rows(V, prompt);
  for (int64_t v = 0; v < V; ++v) rows[v].push_back(static_cast<int32_t>(v));
  Batch b = Batch::from_rows(rows, static_cast<int64_t>(prompt.size()));
  Workspace ws(m.config(), b.B, b.T, b.n_scored(), 0);
  const Scores s = m.forward(b, ws, {.temperature = static_cast<float>(T)});
  std::vector<double> want(V);
  for (int64_t v = 0; v < V; ++v) want[v] = std::exp(static_cast<double>(s.logp[v]));
  const std::vector<Completion> out = generate(m, {prompt}, {7}, {.temperature = T, .max_new_tokens = 1, .n = M});
  std::vector<int64_t> counts(V, 0);
  for (const Completion& c : out) ++counts[c.tokens.at(0)];
  EXPECT_LT(tv(want, counts, M), 3 * expected_tv(want, M));
}

// Samples depend on (prompt seed, sample index) only: not on the other prompts in the batch,
// their order, the batch size or the thread count.
TEST(Generate, SameSeedSameSamplesWhateverTheBatch) {
  Transformer m = tiny_model("mistral", 4);
  const SamplingParams sp{.temperature = 1.0, .top_p = 0.95, .max_new_tokens = 16, .n = 2, .eos_ids = {7}};
  const std::vector<uint64_t> seeds = {11, 12, 13, 14, 15};
  const std::vector<Completion> all = generate(m, kPrompts, seeds, sp, {.batch_size = 10});
  auto same = [&](const Completion& a, const Completion& b) {
    ASSERT_EQ(a.tokens, b.tokens) << "prompt " << a.prompt << " sample " << a.sample;
    ASSERT_EQ(a.finish, b.finish);
    for (size_t t = 0; t < a.logprobs.size(); ++t) EXPECT_NEAR(a.logprobs[t], b.logprobs[t], 1e-5);
  };
  for (size_t i = 0; i < kPrompts.size(); ++i) {  // each prompt alone
    const std::vector<Completion> one = generate(m, {kPrompts[i]}, {seeds[i]}, sp, {.batch_size = 2});
    for (int j = 0; j < 2; ++j) same(one[j], all[i * 2 + j]);
  }
  std::vector<std::vector<int32_t>> rev(kPrompts.rbegin(), kPrompts.rend());
  std::vector<uint64_t> rev_seeds(seeds.rbegin(), seeds.rend());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<Completion> reversed = generate(m, rev, rev_seeds, sp, {.batch_size = 3});
  omp_set_num_threads(threads);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    for (int j = 0; j < 2; ++j) same(reversed[(kPrompts.size() - 1 - i) * 2 + j], all[i * 2 + j]);
  // The two samples of a prompt are different draws.
  int differ = 0;
  for (size_t i = 0; i < kPrompts.size(); ++i) differ += all[i * 2].tokens != all[i * 2 + 1].tokens;
  EXPECT_GE(differ, 4);
}

// With many slots and a small model, threads decode shares of the prompts side by side; the
// samples are those of one thread decoding them all.
TEST(Generate, SharesDecodedSideBySideGiveTheSameSamples) {
  EXPECT_EQ(decode_shares(1 << 20, 32 << 20, 2, 32, 1, 32), 2);
  EXPECT_EQ(decode_shares(1 << 20, 32 << 20, 2, 23, 1, 32), 1);   // a share would have < 12 slots
  EXPECT_EQ(decode_shares(1 << 20, 32 << 20, 2, 32, 20, 32), 1);  // or fewer than n
  EXPECT_EQ(decode_shares(20 << 20, 32 << 20, 2, 32, 1, 32), 1);  // weights over half the cache
  EXPECT_EQ(decode_shares(1 << 20, 0, 2, 32, 1, 32), 1);          // cache size unknown
  EXPECT_EQ(decode_shares(0, 32 << 20, 2, 32, 1, 32), 1);         // weights not prepacked
  EXPECT_EQ(decode_shares(1 << 20, 32 << 20, 4, 48, 1, 8), 4);    // one share per thread
  EXPECT_EQ(decode_shares(1 << 20, 32 << 20, 4, 48, 1, 3), 1);    // or none: a thread would idle
  EXPECT_EQ(decode_shares(1 << 20, 32 << 20, 16, 32, 1, 32), 1);  // many cores keep threaded kernels
  EXPECT_EQ(decode_shares(1 << 20, 32 << 20, 1, 32, 1, 32), 1);
  if (omp_get_max_threads() < 2 || last_level_cache_bytes() == 0) GTEST_SKIP() << "needs 2 threads and a known LLC";

  Transformer m = tiny_model("qwen2", 8);
  const SamplingParams sp{.temperature = 1.0, .max_new_tokens = 12, .n = 2, .eos_ids = {7}};
  std::vector<std::vector<int32_t>> prompts;
  std::vector<uint64_t> seeds;
  for (int i = 0; i < 14; ++i) {
    prompts.push_back(kPrompts[i % kPrompts.size()]);
    seeds.push_back(100 + i);
  }
  const GenerateOptions go{.batch_size = 24};
  const std::vector<Completion> side_by_side = generate(m, prompts, seeds, sp, go);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<Completion> one = generate(m, prompts, seeds, sp, go);
  omp_set_num_threads(threads);
  ASSERT_EQ(side_by_side.size(), one.size());
  int eos = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(side_by_side[i].tokens, one[i].tokens) << i;
    EXPECT_EQ(side_by_side[i].finish, one[i].finish) << i;
    for (size_t t = 0; t < one[i].logprobs.size() && t < side_by_side[i].logprobs.size(); ++t)
      EXPECT_NEAR(side_by_side[i].logprobs[t], one[i].logprobs[t], 1e-5);
    eos += one[i].finish == FinishReason::eos;
  }
  EXPECT_GT(eos, 0);  // samples of different lengths: slots free up and refill unevenly
}

TEST(Generate, StopsOnEosStopTokensCallbackLengthAndContext) {
  Transformer m = tiny_model("qwen2", 6);
  const std::vector<int32_t> prompt = {4, 5, 6};
  const SamplingParams greedy{.temperature = 0, .max_new_tokens = 10};
  const std::vector<int32_t> g = generate(m, {prompt}, {0}, greedy).at(0).tokens;
  ASSERT_EQ(g.size(), 10u);

  SamplingParams sp = greedy;
  sp.eos_ids = {g[3]};
  const size_t first = std::find(g.begin(), g.end(), g[3]) - g.begin();
  Completion c = generate(m, {prompt}, {0}, sp).at(0);
  EXPECT_EQ(c.finish, FinishReason::eos);
  EXPECT_EQ(c.tokens, std::vector<int32_t>(g.begin(), g.begin() + first + 1));  // EOS kept

  sp = greedy;
  sp.stop_ids = {g[first]};
  c = generate(m, {prompt}, {0}, sp).at(0);
  EXPECT_EQ(c.finish, FinishReason::stop);
  EXPECT_EQ(c.tokens.size(), first + 1);

  c = generate(m, {prompt}, {0}, greedy, {.stop = [](int64_t, const std::vector<int32_t>& t) { return t.size() == 2; }})
          .at(0);
  EXPECT_EQ(c.finish, FinishReason::stop);
  EXPECT_EQ(c.tokens.size(), 2u);

  // The context (32 positions) ends a sample: prompt + completion never exceeds it.
  const std::vector<int32_t> long_prompt(29, 3);
  c = generate(m, {long_prompt}, {0}, greedy).at(0);
  EXPECT_EQ(c.finish, FinishReason::length);
  EXPECT_EQ(c.tokens.size(), 3u);
}

// A model whose logits turn NaN: generate() stops with a NumericError naming the prompt, the
// sample and the position, from the prefill's row and from a cached decode step's row alike.
// The final norm's weight 0 makes every logit 0 (greedy takes token 0); token 0's embedding is
// NaN, so the logits turn NaN once token 0 is read.
TEST(Generate, NanLogitsStopWithANumericError) {
  for (const std::string family : {"llama", "mistral"}) {  // untied: the LM head stays finite
    Transformer m = tiny_model(family, 4);
    const ParamSlot& norm = m.slot("norm_final.weight");
    std::fill_n(m.params().data() + norm.offset, norm.numel, 0.0f);
    std::fill_n(m.param("embed.tokens"), m.config().hidden_size, kNaN);
    for (const SamplingParams& sp : every_path()) {
      SamplingParams p = sp;
      p.max_new_tokens = 4;
      p.n = 2;
      // Token 0 in the prompt: the prefill's logits are NaN.
      rlhf::test::expect_error<NumericError>([&] { generate(m, {{5, 6}, {3, 0, 4}}, {1, 2}, p, {.batch_size = 4}); },
                                             {"generate: prompt 1, sample 0, new token 1: ", "is NaN"});
      if (sp.temperature != 0) continue;
      // Greedy takes token 0 first, and the next step, from the cache, reads it.
      rlhf::test::expect_error<NumericError>([&] { generate(m, {{5, 6}}, {1}, p); },
                                             {"generate: prompt 0, sample 0, new token 2: ", "is NaN"});
    }
  }
}

TEST(Generate, RejectsBadPromptsAndParameters) {
  Transformer m = tiny_model("gpt2", 1);
  auto expect_input_error = [&](const std::vector<std::vector<int32_t>>& prompts, const SamplingParams& sp,
                                const std::string& part) {
    try {
      generate(m, prompts, std::vector<uint64_t>(prompts.size(), 0), sp);
      ADD_FAILURE() << "no error for " << part;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_input_error({{1}, std::vector<int32_t>(32, 1)}, {}, "prompt 1 has 32 tokens; the model's context is 32");
  expect_input_error({{}}, {}, "prompt 0 has no tokens");
  expect_input_error({{1, 50}}, {}, "token id 50 outside the model's vocabulary of 50");
  expect_input_error({{1}}, {.temperature = -1}, "temperature");
  expect_input_error({{1}}, {.top_p = 0}, "top_p");
  expect_input_error({{1}}, {.min_p = 1.5}, "min_p");
  expect_input_error({{1}}, {.top_k = -2}, "top_k");
  expect_input_error({{1}}, {.max_new_tokens = 0}, "max_new_tokens");
  expect_input_error({{1}}, {.n = 0}, "samples per prompt");
}

}  // namespace
}  // namespace rlhf::rollout
