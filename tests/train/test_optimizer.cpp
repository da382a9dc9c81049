// AdamW through the model's parameter table, clipping and the schedules, against values
// computed by hand (PyTorch's torch.optim.AdamW and HF's schedule definitions).
#include <gtest/gtest.h>

#include <cmath>

#include "tensor/error.h"
#include "train/optimizer.h"
#include "train/zero.h"
#include "../model/model_test_util.h"
#include "../model/tiny_models.h"

namespace rlhf {
namespace {

TEST(Schedule, LinearAndCosineWithWarmup) {
  // HF: warm-up multiplier step/warmup, then linear (total-step)/(total-warmup) or cosine.
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 0, 10, 2), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 1, 10, 2), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 2, 10, 2), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 6, 10, 2), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 10, 10, 2), 0.0);
  EXPECT_NEAR(lr_multiplier(LrSchedule::cosine, 6, 10, 2), 0.5, 1e-12);
  EXPECT_NEAR(lr_multiplier(LrSchedule::cosine, 4, 10, 2), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::constant_with_warmup, 1, 10, 4), 0.25);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::constant_with_warmup, 9, 10, 4), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::constant, 0, 10, 4), 1.0);
  EXPECT_THROW(parse_lr_schedule("cosin"), InputError);
}

TEST(AdamW, TwoStepsMatchHandComputation) {
  Transformer m(test::tiny_config("gpt2"), ModelHeads{});
  m.init_random(3);
  const std::vector<float> p0 = m.params();
  AdamWConfig cfg{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.5, .max_grad_norm = 0};
  AdamW opt(m, cfg);
  // Constant gradient 2 everywhere for two steps.
  std::vector<double> p(p0.begin(), p0.end()), mm(p.size(), 0), vv(p.size(), 0);
  for (int t = 1; t <= 2; ++t) {
    std::fill(m.grads().begin(), m.grads().end(), 2.0f);
    opt.step(m, 0.1, grad_global_norm(m));
    for (const ParamSlot& s : m.slots())
      for (int64_t i = s.offset; i < s.offset + s.numel; ++i) {
        const double wd = s.weight_decay ? 0.5 : 0.0;
        p[i] *= 1 - 0.1 * wd;
        mm[i] = 0.9 * mm[i] + 0.1 * 2;
        vv[i] = 0.99 * vv[i] + 0.01 * 4;
        const double mh = mm[i] / (1 - std::pow(0.9, t)), vh = vv[i] / (1 - std::pow(0.99, t));
        p[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
      }
  }
  for (size_t i = 0; i < p.size(); ++i) ASSERT_NEAR(m.params()[i], p[i], 1e-6) << i;
  // Biases and norm weights were not decayed: a norm weight of 1 moved by exactly -2 * lr.
  const ParamSlot& ln = m.slot("layers.0.norm1.weight");
  EXPECT_NEAR(m.params()[ln.offset], 1.0 - 0.2, 1e-6);
}

// ZeRO-1's building block: two optimizers holding the moments of two halves of the parameters,
// each stepping its half, give the unsharded optimizer's weights bit for bit (the halves cut a
// slot in two, and weight decay applies to some slots only).
TEST(AdamW, ShardsStepExactlyTheirRange) {
  Transformer m(test::tiny_config("llama"), ModelHeads{});
  m.init_random(1);
  for (size_t i = 0; i < m.grads().size(); ++i) m.grads()[i] = std::sin(0.37 * static_cast<double>(i));
  const AdamWConfig cfg{.lr = 1e-2, .weight_decay = 0.1, .max_grad_norm = 0};
  Transformer whole = m, lo = m, hi = m;
  AdamW a(whole, cfg), b(lo, cfg), c(hi, cfg);
  const int64_t cut = m.n_params() / 2 + 7;
  b.shard(0, cut);
  c.shard(cut, m.n_params());
  EXPECT_TRUE(b.sharded());
  EXPECT_EQ(b.first_moment().size(), static_cast<size_t>(cut));
  for (int step = 0; step < 3; ++step) {
    a.step(whole, 1e-2, 0);
    b.step(lo, 1e-2, 0);
    c.step(hi, 1e-2, 0);
  }
  std::vector<float> joined(lo.params().begin(), lo.params().begin() + cut);
  joined.insert(joined.end(), hi.params().begin() + cut, hi.params().end());
  EXPECT_EQ(joined, whole.params());
  EXPECT_NE(std::vector<float>(lo.params().begin() + cut, lo.params().end()),
            std::vector<float>(whole.params().begin() + cut, whole.params().end()))
      << "a shard must leave the other range alone";
  EXPECT_THROW(b.shard(cut - 1, cut + 1), LogicError);
}

TEST(AdamW, ClipsToMaxGradNorm) {
  Transformer m(test::tiny_config("llama"), ModelHeads{});
  AdamW opt(m, AdamWConfig{.lr = 0.0, .max_grad_norm = 1.0});
  std::fill(m.grads().begin(), m.grads().end(), 3.0f);
  const double norm = grad_global_norm(m);
  EXPECT_NEAR(norm, 3.0 * std::sqrt(double(m.n_params())), 1e-3 * norm);
  opt.step(m, 0.0, norm);
  EXPECT_NEAR(grad_global_norm(m), 1.0, 1e-4);
}

// A finite gradient (it passes require_finite_step) with a learning rate that overflows the
// update: the step reports how many parameters it made NaN or Inf and the first slot, and
// require_finite_update stops the run naming the step and that slot.
TEST(AdamW, UpdateThatOverflowsIsReportedAndStops) {
  Transformer m(test::tiny_config("llama"), ModelHeads{});
  m.init_random(2);
  for (size_t i = 0; i < m.grads().size(); ++i) m.grads()[i] = std::sin(0.37 * static_cast<double>(i));
  const double norm = grad_global_norm(m);
  require_finite_step(12, 1.0, norm, "");
  Transformer ok = m;
  AdamW sane(ok, AdamWConfig{.lr = 1e-3, .max_grad_norm = 0});
  const UpdateReport fine = sane.step(ok, 1e-3, norm);
  EXPECT_EQ(fine.nonfinite, 0);
  EXPECT_EQ(fine.first_slot, -1);
  require_finite_update(12, fine, ok, "");

  AdamW opt(m, AdamWConfig{.max_grad_norm = 0});
  const UpdateReport r = opt.step(m, 1e38, norm);  // lr / (1 - beta1) overflows a float
  int64_t seen = 0, first = -1;
  for (size_t k = 0; k < m.slots().size(); ++k)
    for (int64_t i = m.slots()[k].offset; i < m.slots()[k].offset + m.slots()[k].numel; ++i)
      if (!std::isfinite(m.params()[i])) {
        ++seen;
        if (first < 0) first = static_cast<int64_t>(k);
      }
  ASSERT_GT(seen, 0);
  EXPECT_EQ(r.nonfinite, seen);
  EXPECT_EQ(r.first_slot, first);
  test::expect_error<NumericError>([&] { require_finite_update(12, r, m, " on groups [3]"); },
                                   {"step 12: the optimizer step made " + std::to_string(seen) + " parameters non-finite",
                                    "(first: " + m.slots()[first].name + ") on groups [3]", "refusing to save"});
}

// Two ranks of a data-parallel group, seen from `rank`: allreduce_sum adds the other rank's
// contribution, given in advance.
class TwoRanks : public dist::Communicator {
 public:
  TwoRanks(int rank, std::vector<double> other) : rank_(rank), other_(std::move(other)) {}
  int rank() const override { return rank_; }
  int size() const override { return 2; }
  void allreduce_sum(float*, int64_t) override { ADD_FAILURE() << "unexpected float allreduce"; }
  void allreduce_sum(double* data, int64_t n) override {
    ASSERT_EQ(static_cast<size_t>(n), other_.size());
    for (int64_t i = 0; i < n; ++i) data[i] += other_[i];
  }
  void allgather(float*, const std::vector<int64_t>&) override { ADD_FAILURE() << "unexpected allgather"; }
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message, int) override { throw LogicError(message); }
  std::string name() const override { return "two-ranks"; }
  void set_timeout(double) override {}
  void set_context(const std::string&) override {}

 private:
  int rank_;
  std::vector<double> other_;
};

// ZeRO-1: each rank counts its own shard; every rank ends with the total and the first slot of
// the lowest rank that has one, so all stop with the same message.
TEST(AdamW, ShardedRanksAgreeOnTheReport) {
  const UpdateReport clean, lo{.nonfinite = 3, .first_slot = 4}, hi{.nonfinite = 5, .first_slot = 9};
  for (const auto& [mine, rank, other, total, first] :
       {std::tuple{clean, 0, std::vector<double>{0, 0, 5, 9}, 5, 9}, std::tuple{hi, 1, std::vector<double>{0, -1, 0, 0}, 5, 9},
        std::tuple{lo, 0, std::vector<double>{0, 0, 5, 9}, 8, 4}, std::tuple{hi, 1, std::vector<double>{3, 4, 0, 0}, 8, 4},
        std::tuple{clean, 1, std::vector<double>{0, -1, 0, 0}, 0, -1}}) {
    TwoRanks comm(rank, other);
    const UpdateReport r = agree_on_update(mine, comm);
    EXPECT_EQ(r.nonfinite, total) << "rank " << rank;
    EXPECT_EQ(r.first_slot, first) << "rank " << rank;
  }
}

}  // namespace
}  // namespace rlhf
