// AdamW through the model's parameter table, clipping and the schedules, against values
// computed by hand (PyTorch's torch.optim.AdamW and HF's schedule definitions).
#include <gtest/gtest.h>

#include <cmath>

#include "tensor/error.h"
#include "train/optimizer.h"
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

}  // namespace
}  // namespace rlhf
