// The online loop end to end on a verifiable task the test generates: a tiny random Llama
// (vocabulary 50) continues random prompts, and the reward is the share of its 8 new tokens that
// equal token 7 — about 1/50 for the untrained model. Every method must raise the mean reward
// by a clear margin in a bounded number of steps while the KL to the reference stays finite, and
// do so deterministically by seed.
#include <gtest/gtest.h>

#include <cmath>

#include "../model/tiny_models.h"
#include "tensor/rng.h"
#include "train/online_trainer.h"

namespace rlhf {
namespace {

constexpr int32_t kTarget = 7;

std::vector<OnlinePrompt> make_prompts(int count) {
  Rng rng(11);
  std::vector<OnlinePrompt> out;
  for (int i = 0; i < count; ++i) {
    OnlinePrompt p;
    const int len = 2 + static_cast<int>(rng.below(4));
    for (int k = 0; k < len; ++k) p.ids.push_back(static_cast<int32_t>(10 + rng.below(40)));
    p.prompt.text = "prompt " + std::to_string(i);
    out.push_back(std::move(p));
  }
  return out;
}

rollout::RewardResult target_share(const std::vector<rollout::RewardSample>& batch) {
  rollout::RewardResult r;
  for (const auto& s : batch) {
    double hits = 0;
    for (int32_t t : s.completion_ids) hits += t == kTarget;
    r.scores.push_back(hits / 8.0);
  }
  return r;
}

std::string no_text(const std::vector<int32_t>&) { return ""; }

OnlineConfig base_config(OnlineMethod m) {
  OnlineConfig c;
  c.method = m;
  c.prompts_per_step = 8;
  c.sampling.temperature = 1.0;
  c.sampling.max_new_tokens = 8;
  c.sampling.n = m == OnlineMethod::ppo || m == OnlineMethod::apa ? 2 : m == OnlineMethod::online_dpo ? 2 : 4;
  c.max_steps = 30;
  c.schedule = LrSchedule::constant;
  c.adam.lr = 3e-2;
  c.seed = 5;
  c.row_len = 32;
  c.beta = 0.01;
  c.num_epochs = m == OnlineMethod::ppo || m == OnlineMethod::apa ? 2 : 1;
  c.num_mini_batches = 2;
  c.dpo_loss = "sigmoid";
  if (m == OnlineMethod::online_dpo) c.beta = 0.1;
  if (m == OnlineMethod::grpo) c.grpo.beta = 0.01;
  return c;
}

struct Outcome {
  double before = 0, after = 0, last_kl = 0;
  std::vector<OnlineStepLog> logs;
  std::vector<float> weights;
};

Outcome run(OnlineMethod m, int64_t steps, uint64_t seed = 5) {
  const ModelHeads heads{.lm_head = true, .score_head = method_uses_values(m)};
  Transformer policy(test::tiny_config("llama"), heads);
  policy.init_random(3);
  Transformer ref(test::tiny_config("llama"), ModelHeads{});
  for (const ParamSlot& s : ref.slots())
    std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
  OnlineConfig cfg = base_config(m);
  cfg.max_steps = steps;
  cfg.seed = seed;
  const auto prompts = make_prompts(16);
  rollout::SamplingParams eval_sp = cfg.sampling;
  eval_sp.n = 4;
  Outcome o;
  o.before = evaluate_online(policy, prompts, target_share, no_text, eval_sp, 32, 99).values.at("objective/scores");
  AdamW opt(policy, cfg.adam);
  OnlineState st;
  st.kl_coef = cfg.beta;
  o.logs = train_online(policy, opt, ref, prompts, target_share, no_text, cfg, 0, st);
  o.after = evaluate_online(policy, prompts, target_share, no_text, eval_sp, 32, 99).values.at("objective/scores");
  o.last_kl = o.logs.back().values.at("kl/k3");
  o.weights = policy.params();
  return o;
}

class OnlineMethods : public ::testing::TestWithParam<std::string> {};

TEST_P(OnlineMethods, RaiseTheRewardWithFiniteKl) {
  const OnlineMethod m = online_method_from_name(GetParam());
  const Outcome o = run(m, 30);
  EXPECT_LT(o.before, 0.1) << "the untrained policy should rarely emit the target";
  EXPECT_GT(o.after, o.before + 0.3) << GetParam() << ": mean reward " << o.before << " -> " << o.after;
  EXPECT_TRUE(std::isfinite(o.last_kl));
  EXPECT_GT(o.last_kl, 0.0);
  for (const auto& log : o.logs)
    for (const char* k : {"loss", "grad_norm", "objective/kl", "objective/scores", "objective/entropy",
                          "completions/mean_length"})
      ASSERT_TRUE(log.values.count(k) && std::isfinite(log.values.at(k))) << GetParam() << " " << k;
}

INSTANTIATE_TEST_SUITE_P(All, OnlineMethods,
                         ::testing::Values("ppo", "apa", "reinforce", "rloo", "grpo", "online_dpo"));

TEST(OnlineLoop, PpoWithASeparateCriticRaisesTheReward) {
  Transformer policy(test::tiny_config("llama"), ModelHeads{});
  policy.init_random(3);
  Transformer ref = policy;
  Transformer critic(test::tiny_config("llama"), ModelHeads{.lm_head = false, .score_head = true});
  critic.init_random(4);
  OnlineConfig cfg = base_config(OnlineMethod::ppo);
  const auto prompts = make_prompts(16);
  rollout::SamplingParams eval_sp = cfg.sampling;
  eval_sp.n = 4;
  const double before =
      evaluate_online(policy, prompts, target_share, no_text, eval_sp, 32, 99).values.at("objective/scores");
  AdamW opt(policy, cfg.adam), copt(critic, cfg.adam);
  OnlineState st;
  st.kl_coef = cfg.beta;
  const std::vector<float> critic_before = critic.params();
  const auto logs = train_online(policy, opt, ref, prompts, target_share, no_text, cfg, 0, st, {}, &critic, &copt);
  const double after =
      evaluate_online(policy, prompts, target_share, no_text, eval_sp, 32, 99).values.at("objective/scores");
  EXPECT_GT(after, before + 0.3) << before << " -> " << after;
  EXPECT_NE(critic.params(), critic_before) << "the critic should learn";
  EXPECT_TRUE(logs.back().values.count("loss/value_avg"));
}

// PPO's entropy bonus flows through the engine: with a reward that says nothing, a run with
// entropy_coef > 0 ends with higher-entropy samples than one without, and logs the bonus.
TEST(OnlineLoop, PpoEntropyBonusRaisesEntropy) {
  const auto prompts = make_prompts(16);
  const RewardScorer flat = [](const std::vector<rollout::RewardSample>& b) {
    rollout::RewardResult r;
    r.scores.assign(b.size(), 0.0);
    return r;
  };
  auto final_entropy = [&](double coef, double* logged) {
    Transformer policy(test::tiny_config("llama"), ModelHeads{.lm_head = true, .score_head = true});
    policy.init_random(3, 0.2f);  // a peaked start, so there is entropy to gain
    Transformer ref(test::tiny_config("llama"), ModelHeads{});
    for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
    OnlineConfig cfg = base_config(OnlineMethod::ppo);
    cfg.max_steps = 10;
    cfg.ppo.entropy_coef = coef;
    AdamW opt(policy, cfg.adam);
    OnlineState st;
    st.kl_coef = cfg.beta;
    const auto logs = train_online(policy, opt, ref, prompts, flat, no_text, cfg, 0, st);
    if (logged) *logged = logs.back().values.count("policy/entropy_avg") ? logs.back().values.at("policy/entropy_avg") : -1;
    return logs.back().values.at("objective/entropy");
  };
  double logged = 0;
  const double without = final_entropy(0.0, nullptr), with = final_entropy(1.0, &logged);
  EXPECT_GT(with, without + 1.0) << "entropy of the samples: " << without << " vs " << with;
  EXPECT_GT(logged, 0.0);
}

TEST(OnlineLoop, DeterministicBySeed) {
  const Outcome a = run(OnlineMethod::rloo, 3), b = run(OnlineMethod::rloo, 3);
  EXPECT_EQ(a.weights, b.weights);
  ASSERT_EQ(a.logs.size(), b.logs.size());
  for (size_t i = 0; i < a.logs.size(); ++i) EXPECT_EQ(a.logs[i].values, b.logs[i].values);
  const Outcome c = run(OnlineMethod::rloo, 3, /*seed=*/6);
  EXPECT_NE(a.weights, c.weights);
}

TEST(OnlineLoop, ContinuesExactlyFromAStep) {
  // PPO with the adaptive controller: the loop state (the KL coefficient) travels with the step.
  const ModelHeads heads{.lm_head = true, .score_head = true};
  Transformer policy(test::tiny_config("llama"), heads);
  policy.init_random(3);
  Transformer ref(test::tiny_config("llama"), ModelHeads{});
  for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
  OnlineConfig cfg = base_config(OnlineMethod::ppo);
  cfg.adaptive_kl = true;
  cfg.kl_target = 0.01;
  cfg.kl_horizon = 50;
  cfg.max_steps = 4;
  const auto prompts = make_prompts(16);
  OnlineState st0;
  st0.kl_coef = cfg.beta;

  Transformer straight = policy;
  AdamW opt_straight(straight, cfg.adam);
  const auto all = train_online(straight, opt_straight, ref, prompts, target_share, no_text, cfg, 0, st0);

  Transformer split = policy;
  AdamW opt_split(split, cfg.adam);
  OnlineState mid;
  cfg.max_steps = 4;
  train_online(split, opt_split, ref, prompts, target_share, no_text, cfg, 0, st0,
               [&](const OnlineStepLog& log, const Transformer&, const AdamW&, const OnlineState& s) {
                 if (log.step == 2) mid = s;
               });
  // Rerun from step 2 with the state saved there, on a copy that stopped at step 2.
  Transformer resumed = policy;
  AdamW opt_resumed(resumed, cfg.adam);
  cfg.max_steps = 2;
  train_online(resumed, opt_resumed, ref, prompts, target_share, no_text, cfg, 0, st0);
  cfg.max_steps = 4;
  const auto rest = train_online(resumed, opt_resumed, ref, prompts, target_share, no_text, cfg, 2, mid);
  EXPECT_EQ(resumed.params(), straight.params());
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[1].values, all[3].values);
  EXPECT_NE(mid.kl_coef, cfg.beta) << "the adaptive controller should have moved";
}

// Undefined (NaN) scores are counted; PPO and online DPO drop those samples, RLOO/GRPO give them
// advantage 0; a step whose samples are all undefined leaves the weights alone.
TEST(OnlineLoop, NanScoresAreCountedNeverTrainedOn) {
  const auto prompts = make_prompts(16);
  int calls = 0;
  const RewardScorer half_nan = [&](const std::vector<rollout::RewardSample>& b) {
    rollout::RewardResult r = target_share(b);
    for (size_t i = 0; i < r.scores.size(); i += 2) r.scores[i] = std::nan("");
    if (++calls == 2) std::fill(r.scores.begin(), r.scores.end(), std::nan(""));  // all of step 2
    return r;
  };
  for (const char* name : {"ppo", "grpo", "online_dpo"}) {
    const OnlineMethod m = online_method_from_name(name);
    Transformer policy(test::tiny_config("llama"), ModelHeads{.lm_head = true, .score_head = method_uses_values(m)});
    policy.init_random(3);
    Transformer ref(test::tiny_config("llama"), ModelHeads{});
    for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
    OnlineConfig cfg = base_config(m);
    cfg.max_steps = 3;
    AdamW opt(policy, cfg.adam);
    OnlineState st;
    st.kl_coef = cfg.beta;
    calls = 0;
    std::vector<float> after_step1, after_step2;
    const auto logs = train_online(policy, opt, ref, prompts, half_nan, no_text, cfg, 0, st,
                                   [&](const OnlineStepLog& log, const Transformer& p, const AdamW&, const OnlineState&) {
                                     if (log.step == 1) after_step1 = p.params();
                                     if (log.step == 2) after_step2 = p.params();
                                   });
    const double rollout = static_cast<double>(cfg.prompts_per_step * cfg.sampling.n);
    EXPECT_EQ(logs[0].values.at("reward/undefined"), rollout / 2) << name;
    EXPECT_EQ(logs[1].values.at("reward/undefined"), rollout) << name;
    for (const auto& log : logs)
      if (!log.values.count("skipped")) EXPECT_TRUE(std::isfinite(log.values.at("objective/kl"))) << name;
    EXPECT_NE(after_step1, std::vector<float>(policy.params().size())) << name;
    if (m == OnlineMethod::grpo) continue;  // GRPO's all-zero advantages still take a (zero-gradient) AdamW step
    EXPECT_EQ(logs[1].values.count("skipped"), 1u) << name;
    EXPECT_EQ(after_step1, after_step2) << name << ": a step with no defined score changed the weights";
  }
}

// Micro-batches split each minibatch into forward/backward passes whose gradients, weighted by
// their share of the minibatch's tokens or sequences (as each objective averages), add up: the
// same gradient to fp32 rounding (the data-parallel loop splits minibatches over ranks the same
// way). Compared on the first step: AdamW's first updates are nearly the gradient's sign, so
// rounding noise in near-zero components would show up as weight differences of order lr.
TEST(OnlineLoop, MicroBatchesGiveTheSameGradient) {
  const auto prompts = make_prompts(16);
  for (const char* name : {"ppo", "grpo", "rloo", "online_dpo"}) {
    const OnlineMethod m = online_method_from_name(name);
    auto train = [&](int64_t micro) {
      Transformer policy(test::tiny_config("llama"), ModelHeads{.lm_head = true, .score_head = method_uses_values(m)});
      policy.init_random(3);
      Transformer ref(test::tiny_config("llama"), ModelHeads{});
      for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
      OnlineConfig cfg = base_config(m);
      cfg.max_steps = 1;
      cfg.num_epochs = 1;
      cfg.micro_batches = micro;
      AdamW opt(policy, cfg.adam);
      OnlineState st;
      st.kl_coef = cfg.beta;
      std::vector<float> grads;  // of the step's last minibatch
      auto logs = train_online(policy, opt, ref, prompts, target_share, no_text, cfg, 0, st,
                               [&](const OnlineStepLog&, const Transformer&, const AdamW&, const OnlineState&) {
                                 grads = policy.grads();
                               });
      return std::make_pair(logs.at(0).values, grads);
    };
    const auto [one, g1] = train(1);
    const auto [three, g3] = train(3);
    for (const char* k : {"loss", "grad_norm", "objective/scores"})
      EXPECT_NEAR(three.at(k), one.at(k), 1e-6 * std::max(1.0, std::fabs(one.at(k)))) << name << " " << k;
    double worst = 0, largest = 0;
    for (size_t i = 0; i < g1.size(); ++i) {
      worst = std::max(worst, static_cast<double>(std::fabs(g1[i] - g3[i])));
      largest = std::max(largest, static_cast<double>(std::fabs(g1[i])));
    }
    // fp32 sums in another order; GRPO's whitened advantages cancel within each group, so its
    // components lose more digits (measured 7e-5 of the largest; a wrong weighting is >= 1e-2).
    EXPECT_GT(largest, 0.0) << name;
    EXPECT_LT(worst, 2e-4 * largest) << name;
  }
}

TEST(OnlineLoop, RejectsBadSettings) {
  OnlineConfig c = base_config(OnlineMethod::grpo);
  c.sampling.n = 1;
  EXPECT_THROW(c.validate(), InputError);
  c = base_config(OnlineMethod::online_dpo);
  c.sampling.n = 3;
  EXPECT_THROW(c.validate(), InputError);
  c = base_config(OnlineMethod::rloo);
  c.num_mini_batches = 1000;
  EXPECT_THROW(c.validate(), InputError);
  c = base_config(OnlineMethod::rloo);
  c.micro_batches = 0;
  EXPECT_THROW(c.validate(), InputError);
  EXPECT_THROW(online_method_from_name("ppo2"), InputError);
}

}  // namespace
}  // namespace rlhf
