// Language-model data in the offline loop (rlhf lm): token documents packed into rows beforehand
// (document_rows_data, collate_rows) and the step-token-mean loss (LossNormalization), checked
// against a direct forward and backward of the step's rows as one batch.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "../model/tiny_models.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "train/offline_data.h"
#include "train/offline_objectives.h"
#include "train/offline_trainer.h"

namespace rlhf {
namespace {

constexpr int64_t kRowLen = 16;

// Documents of 2 to 20 tokens (vocabulary 50): rows hold different numbers of scored tokens, and
// a document longer than a row is cut into pieces.
std::vector<TokenDocument> documents(int n) {
  Rng rng(4);
  std::vector<TokenDocument> docs;
  for (int i = 0; i < n; ++i) {
    TokenDocument d(2 + rng.below(19));
    for (int32_t& t : d) t = static_cast<int32_t>(1 + rng.below(49));
    docs.push_back(d);
  }
  return docs;
}

Transformer tiny_llama() {
  Transformer m(test::tiny_family_config("llama"), ModelHeads{});
  m.init_random(3);
  return m;
}

TEST(DocumentRows, CollatedAsLaidOutWithOneSpanPerRow) {
  const OfflineData d = document_rows_data(documents(12), kRowLen, 2);
  ASSERT_GE(d.data.rows.size(), 3u);
  EXPECT_EQ(d.data.n_groups(), static_cast<int64_t>(d.data.rows.size()));
  EXPECT_EQ(d.read.rows, 12);
  const std::vector<const PackedRow*> rows = {&d.data.rows[2], &d.data.rows[0]};
  const CollatedBatch cb = collate_rows(rows, {2, 0}, kRowLen);
  const Batch direct = batch_from_rows(rows, kRowLen);
  EXPECT_EQ(cb.batch.tokens, direct.tokens);
  EXPECT_EQ(cb.batch.positions, direct.positions);
  EXPECT_EQ(cb.batch.scored, direct.scored);
  ASSERT_EQ(cb.spans.size(), 2u);
  EXPECT_EQ(cb.spans[0].group, 2);
  EXPECT_EQ(cb.spans[1].group, 0);
  EXPECT_EQ(cb.spans[0].scored_begin, 0);
  EXPECT_EQ(cb.spans[1].scored_end, cb.batch.n_scored());
  const int64_t first_row_scored = std::accumulate(rows[0]->scored.begin(), rows[0]->scored.end(), int64_t{0});
  EXPECT_EQ(cb.spans[0].scored_end, first_row_scored);
  EXPECT_EQ(cb.spans[1].scored_begin, first_row_scored);
}

TEST(DocumentRows, TooFewRowsForABatchIsAnError) {
  EXPECT_THROW(document_rows_data(documents(2), kRowLen, 8), InputError);
}

// One optimizer step of 2 micro-batches of 2 rows: its loss is the mean NLL over the scored
// tokens of all 4 rows, and its gradient that of one batch of the 4 rows with d loss / d logp =
// -1 / (their scored tokens) — not the mean of the two micro-batch means, which differs when the
// micro-batches hold different numbers of tokens.
TEST(DocumentRows, StepTokenMeanWeighsEveryTokenOfTheStepAlike) {
  const OfflineData d = document_rows_data(documents(30), kRowLen, 4);
  OfflineConfig cfg;
  cfg.groups_per_micro_batch = 2;
  cfg.grad_accum = 2;
  cfg.max_steps = 1;
  cfg.adam.lr = 0;  // the step leaves the weights as they are
  cfg.pack.seq_len = kRowLen;
  cfg.normalization = LossNormalization::step_token_mean;
  const BatchOrder order = {{0, 1}, {2, 3}};
  int64_t first_scored = 0, second_scored = 0;
  for (int g : {0, 1}) first_scored += std::accumulate(d.data.rows[g].scored.begin(), d.data.rows[g].scored.end(), 0);
  for (int g : {2, 3}) second_scored += std::accumulate(d.data.rows[g].scored.begin(), d.data.rows[g].scored.end(), 0);
  ASSERT_NE(first_scored, second_scored) << "the test needs micro-batches of different sizes";

  Transformer policy = tiny_llama();
  AdamW opt(policy, cfg.adam);
  const auto logs = train_offline(policy, opt, d.data, {}, token_nll_sum_objective(), cfg, order);
  ASSERT_EQ(logs.size(), 1u);

  Transformer direct = tiny_llama();
  std::vector<const PackedRow*> rows;
  for (int g = 0; g < 4; ++g) rows.push_back(&d.data.rows[g]);
  const Batch b = batch_from_rows(rows, kRowLen);
  Workspace ws(direct.config(), 4, kRowLen, 4 * kRowLen, 0);
  const Scores s = direct.forward(b, ws);
  const double n = static_cast<double>(first_scored + second_scored);
  ASSERT_EQ(static_cast<double>(s.logp.size()), n);
  double nll = 0;
  for (float lp : s.logp) nll -= lp;
  EXPECT_NEAR(logs[0].values.at("loss"), nll / n, 1e-6 * nll / n);  // float log-probs of other batch shapes
  direct.zero_grad();
  direct.backward(b, ws, std::vector<float>(s.logp.size(), static_cast<float>(-1.0 / n)), {});
  const double expected = grad_global_norm(direct);
  EXPECT_NEAR(logs[0].values.at("grad_norm"), expected, 1e-5 * expected);

  // The per-micro-batch convention gives another gradient on the same rows.
  cfg.normalization = LossNormalization::micro_batch_mean;
  Transformer other = tiny_llama();
  AdamW other_opt(other, cfg.adam);
  const auto mean_logs = train_offline(other, other_opt, d.data, {}, sft_objective(), cfg, order);
  EXPECT_GT(std::abs(mean_logs[0].values.at("grad_norm") - expected), 1e-3 * expected);
}

}  // namespace
}  // namespace rlhf
