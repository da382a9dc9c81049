// The online loop end to end on a verifiable task the test generates: a tiny random Llama
// (vocabulary 50) continues random prompts, and the reward is the share of its 8 new tokens that
// equal token 7 — about 1/50 for the untrained model. Every method must raise the mean reward
// by a clear margin in a bounded number of steps while the KL to the reference stays finite, and
// do so deterministically by seed.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "../model/tiny_models.h"
#include "online_test_util.h"
#include "tensor/rng.h"
#include "train/online/method.h"
#include "train/online_trainer.h"

namespace rlhf {
namespace {

using test::kTarget;
using test::no_text;
using test::target_share;

std::vector<OnlinePrompt> make_prompts(int count) { return test::random_prompts(count, 2, 5); }

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

// Completions also stop at these ids (about 10% a token for the untrained model), so that a
// rollout has completions that end before max_new_tokens and completions that fill it.
const std::vector<int32_t> kStops = {0, 1, 2, 3, 4};

// PPO with TRL's score placement, which differs from last_token only where completions stop early.
void trl_placement(OnlineConfig& c) {
  c.shaping.placement = rollout::ScorePlacement::trl_after_eos;
  c.sampling.eos_ids = kStops;
}

Outcome run(OnlineMethod m, int64_t steps, uint64_t seed = 5, const std::function<void(OnlineConfig&)>& tweak = {}) {
  const ModelHeads heads{.lm_head = true, .score_head = method_uses_values(m)};
  Transformer policy(test::tiny_config("llama"), heads);
  policy.init_random(3);
  Transformer ref(test::tiny_config("llama"), ModelHeads{});
  for (const ParamSlot& s : ref.slots())
    std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
  OnlineConfig cfg = base_config(m);
  cfg.max_steps = steps;
  cfg.seed = seed;
  if (tweak) tweak(cfg);
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

// Over three seeds: a single 30-step run of a tiny policy is chaotic (APA's reward after it ranges
// from 0 to 1 across seeds, and one seed's end depends on the CPU's rounding), so the claim is on
// the mean gain.
TEST_P(OnlineMethods, RaiseTheRewardWithFiniteKl) {
  const OnlineMethod m = online_method_from_name(GetParam());
  double gain = 0;
  for (uint64_t seed : {5, 6, 7}) {
    const Outcome o = run(m, 30, seed);
    EXPECT_LT(o.before, 0.1) << "the untrained policy should rarely emit the target";
    gain += (o.after - o.before) / 3;
    EXPECT_TRUE(std::isfinite(o.last_kl));
    EXPECT_GT(o.last_kl, 0.0);
    for (const auto& log : o.logs)
      for (const char* k : {"loss", "grad_norm", "objective/kl", "objective/scores", "objective/entropy",
                            "completions/mean_length"})
        ASSERT_TRUE(log.values.count(k) && std::isfinite(log.values.at(k))) << GetParam() << " " << k;
  }
  EXPECT_GT(gain, 0.3) << GetParam() << ": mean reward gain over three seeds " << gain;
}

INSTANTIATE_TEST_SUITE_P(All, OnlineMethods,
                         ::testing::Values("ppo", "apa", "reinforce", "rloo", "grpo", "online_dpo"));

// The same for PPO with TRL's score placement, with completions that stop early (the extra value
// slots exist) and fewer target tokens for them (the policy must also learn not to stop).
TEST(OnlineLoop, PpoWithTrlScorePlacementRaisesTheReward) {
  const Outcome o = run(OnlineMethod::ppo, 30, 5, trl_placement);
  EXPECT_LT(o.before, 0.1);
  EXPECT_GT(o.after, o.before + 0.3) << "mean reward " << o.before << " -> " << o.after;
  EXPECT_GT(o.logs.front().values.at("val/num_eos_tokens"), 0.0) << "no completion stopped early";
  EXPECT_TRUE(std::isfinite(o.last_kl));
  for (const auto& log : o.logs) ASSERT_TRUE(std::isfinite(log.values.at("loss/value_avg")));
  EXPECT_EQ(run(OnlineMethod::ppo, 3, 5, trl_placement).weights, run(OnlineMethod::ppo, 3, 5, trl_placement).weights);
}

// The value slots of TRL's placement through the loop (policy trunk and separate critic): one
// PPO step, one minibatch, no KL in the reward, so that the logged value loss, 0.5 * mean over
// the value slots of (V - R)^2 with V = V_old, is 0.5 * mean A^2 of GAE over the slots with the
// score on the last one. The test recomputes it from each sample's values by a plain full forward
// over prompt + completion + a padding token, TRL's input: slot t of a completion of n tokens is
// read at position prompt_len - 1 + t (TRL's value[:, context_length - 1 + t]), and a completion
// shorter than max_new_tokens has the slot t = n, the padding token's, read at its last token.
// Placing the score on the last token, omitting the extra slot, giving a full-length completion
// one, or reading the extra slot at the padding token itself each change the number (checked).
TEST(OnlineLoop, TrlScorePlacementValueSlots) {
  const auto prompts = make_prompts(16);
  for (const bool with_critic : {false, true}) {
    Transformer policy(test::tiny_config("llama"), ModelHeads{.lm_head = true, .score_head = !with_critic});
    policy.init_random(3);
    Transformer ref(test::tiny_config("llama"), ModelHeads{});
    for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
    Transformer critic(test::tiny_config("llama"), ModelHeads{.lm_head = false, .score_head = true});
    critic.init_random(4);
    Transformer& value_model = with_critic ? critic : policy;
    OnlineConfig cfg = base_config(OnlineMethod::ppo);
    trl_placement(cfg);
    cfg.max_steps = 1;
    cfg.num_epochs = 1;
    cfg.num_mini_batches = 1;
    cfg.beta = 0;
    auto score_of = [](size_t n) { return 0.02 * static_cast<double>(n) - 0.1; };
    std::vector<rollout::RewardSample> seen;
    const RewardScorer scorer = [&](const std::vector<rollout::RewardSample>& b) {
      rollout::RewardResult r;
      for (const auto& s : b) r.scores.push_back(score_of(s.completion_ids.size()));
      seen = b;
      return r;
    };
    AdamW opt(policy, cfg.adam), copt(critic, cfg.adam);
    OnlineState st;
    Transformer plain = value_model;  // the weights the step's values are read with
    const auto logs = train_online(policy, opt, ref, prompts, scorer, no_text, cfg, 0, st, {},
                                   with_critic ? &critic : nullptr, with_critic ? &copt : nullptr);
    const size_t T = static_cast<size_t>(cfg.sampling.max_new_tokens);
    std::vector<std::vector<double>> heads;  // per sample, the head at every position of its row
    size_t ended = 0, full = 0;
    for (const auto& s : seen) {
      std::vector<int32_t> row = s.prompt_ids;
      row.insert(row.end(), s.completion_ids.begin(), s.completion_ids.end());
      row.push_back(kStops[0]);  // TRL's padding token; these configs have no pad id, so EOS's
      Batch b = Batch::from_rows({row});
      b.scored.clear();
      for (int64_t q = 0; q < b.T; ++q) b.head_at.push_back(q);
      Workspace ws(plain.config(), 1, b.T, 0, b.T);
      const Scores sc = plain.forward(b, ws);
      heads.emplace_back(sc.head.begin(), sc.head.end());
      (s.completion_ids.size() < T ? ended : full) += 1;
    }
    ASSERT_GT(ended, 0u);
    ASSERT_GT(full, 0u);
    // 0.5 * mean A^2 over the value slots, with the extra slot or not, read at `extra_at`
    // positions after the last completion token (0: TRL's; 1: the padding token itself).
    auto value_loss = [&](bool extra_slots, bool for_full_length, int extra_at) {
      double sum = 0, count = 0;
      for (size_t i = 0; i < seen.size(); ++i) {
        const size_t P = seen[i].prompt_ids.size(), n = seen[i].completion_ids.size();
        const bool extra = extra_slots && (n < T || for_full_length);
        std::vector<double> V;
        for (size_t t = 0; t < n; ++t) V.push_back(heads[i][P - 1 + t]);
        if (extra) V.push_back(heads[i][P - 1 + n + extra_at]);
        const double gamma = cfg.shaping.gamma, lambda = cfg.shaping.lambda;
        double next_v = 0, adv = 0;
        for (size_t t = V.size(); t-- > 0;) {
          const double r = t + 1 == V.size() ? score_of(n) : 0.0;
          adv = r + gamma * next_v - V[t] + gamma * lambda * adv;
          next_v = V[t];
          sum += adv * adv, count += 1;
        }
      }
      return 0.5 * sum / count;
    };
    const double logged = logs.at(0).values.at("loss/value_avg");
    const double want = value_loss(true, false, 0);
    const char* who = with_critic ? "critic" : "policy trunk";
    EXPECT_NEAR(logged, want, 1e-5 * want) << who;
    for (const double wrong : {value_loss(false, false, 0), value_loss(true, true, 0), value_loss(true, false, 1)})
      EXPECT_GT(std::fabs(wrong - want), 1e-3 * want) << who << ": the check cannot tell a wrong layout apart";
  }
}

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

// keep_rollouts carries every sample of each step out, in sampling order, as the reward saw and
// scored it, the samples PPO then drops for an undefined score included; without it nothing is
// kept, and the training is the same either way.
TEST(OnlineLoop, KeepsEveryRolloutWhenAsked) {
  const auto prompts = make_prompts(16);
  struct Seen {
    std::string prompt, completion;
    double score;
    bool eos;
  };
  std::vector<Seen> seen;
  const RewardScorer scorer = [&](const std::vector<rollout::RewardSample>& b) {
    rollout::RewardResult r = target_share(b);
    for (size_t i = 0; i < b.size(); ++i) {
      if (i % 3 == 0) r.scores[i] = std::nan("");
      seen.push_back({b[i].prompt.text, b[i].completion, r.scores[i], b[i].eos});
    }
    return r;
  };
  const Detokenize ids_text = [](const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t t : ids) s += std::to_string(t) + " ";
    return s;
  };
  auto train = [&](bool keep, std::vector<float>* weights) {
    Transformer policy(test::tiny_config("llama"), ModelHeads{.lm_head = true, .score_head = true});
    policy.init_random(3);
    Transformer ref(test::tiny_config("llama"), ModelHeads{});
    for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
    OnlineConfig cfg = base_config(OnlineMethod::ppo);
    cfg.max_steps = 3;
    cfg.sampling.eos_ids = kStops;
    cfg.keep_rollouts = keep;
    AdamW opt(policy, cfg.adam);
    OnlineState st;
    st.kl_coef = cfg.beta;
    seen.clear();
    auto logs = train_online(policy, opt, ref, prompts, scorer, ids_text, cfg, 0, st);
    *weights = policy.params();
    return logs;
  };
  std::vector<float> kept_weights, plain_weights;
  const auto logs = train(true, &kept_weights);
  const OnlineConfig cfg = base_config(OnlineMethod::ppo);
  const size_t per_step = static_cast<size_t>(cfg.prompts_per_step * cfg.sampling.n);
  ASSERT_EQ(logs.size(), 3u);
  ASSERT_EQ(seen.size(), 3 * per_step);
  size_t k = 0, eos = 0, undefined = 0;
  for (const OnlineStepLog& log : logs) {
    ASSERT_EQ(log.rollouts.size(), per_step) << "step " << log.step;
    for (size_t i = 0; i < log.rollouts.size(); ++i, ++k) {
      const RolloutSample& r = log.rollouts[i];
      EXPECT_EQ(r.prompt, log.rollouts[i - i % cfg.sampling.n].prompt) << "the n samples of a prompt are adjacent";
      EXPECT_EQ(prompts[r.prompt].prompt.text, seen[k].prompt);
      EXPECT_EQ(r.completion, seen[k].completion);
      if (std::isnan(seen[k].score)) EXPECT_TRUE(std::isnan(r.score)) << k;
      else EXPECT_EQ(r.score, seen[k].score) << k;
      EXPECT_EQ(r.finish == rollout::FinishReason::eos, seen[k].eos) << k;
      eos += r.finish == rollout::FinishReason::eos;
      undefined += std::isnan(r.score);
    }
  }
  EXPECT_GT(eos, 0u) << "no completion stopped early: the finish reasons are untested";
  EXPECT_EQ(undefined, 3 * ((per_step + 2) / 3)) << "the dropped samples are kept too";
  for (const OnlineStepLog& log : train(false, &plain_weights)) EXPECT_TRUE(log.rollouts.empty());
  EXPECT_EQ(kept_weights, plain_weights);
}

// Micro-batches split each minibatch into forward/backward passes whose gradients, weighted by
// their share of the minibatch's tokens, value slots or sequences (as each term averages), add
// up: the same gradient to fp32 rounding (the data-parallel loop splits minibatches over ranks
// the same way). PPO with TRL's score placement has more value slots than tokens, and its early
// stops pack several sequences into a row, out of their order. Compared on the first step: AdamW's first updates are nearly the gradient's sign, so
// rounding noise in near-zero components would show up as weight differences of order lr.
TEST(OnlineLoop, MicroBatchesGiveTheSameGradient) {
  const auto prompts = make_prompts(16);
  for (const std::string name : {"ppo", "ppo_trl_after_eos", "grpo", "rloo", "online_dpo"}) {
    const bool trl = name == "ppo_trl_after_eos";
    const OnlineMethod m = online_method_from_name(trl ? "ppo" : name);
    auto train = [&](int64_t micro) {
      Transformer policy(test::tiny_config("llama"), ModelHeads{.lm_head = true, .score_head = method_uses_values(m)});
      policy.init_random(3);
      Transformer ref(test::tiny_config("llama"), ModelHeads{});
      for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
      OnlineConfig cfg = base_config(m);
      cfg.max_steps = 1;
      cfg.num_epochs = 1;
      cfg.micro_batches = micro;
      if (trl) trl_placement(cfg);
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
    for (const char* k : {"loss", "grad_norm", "objective/scores", "loss/value_avg"})
      if (one.count(k))
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

// Every registered method trains a step of the loop, configured only from what it declares (its
// samples per prompt, a value head where it needs values): a new method is covered here without
// a line of its own.
TEST(OnlineLoop, EveryRegisteredMethodTrainsAStep) {
  const auto prompts = make_prompts(16);
  for (const online::MethodEntry& e : online::registered_methods()) {
    OnlineConfig cfg;
    cfg.method = e.id;
    const online::Needs needs = online::make_method(cfg)->needs();
    cfg.prompts_per_step = 8;
    cfg.sampling.max_new_tokens = 8;
    cfg.sampling.n = needs.pairs ? 2 : std::max<int64_t>(needs.min_samples, 2);
    cfg.max_steps = 1;
    cfg.adam.lr = 3e-2;
    cfg.row_len = 32;
    cfg.beta = 0.01;
    Transformer policy(test::tiny_config("llama"), ModelHeads{.lm_head = true, .score_head = needs.values});
    policy.init_random(3);
    Transformer ref(test::tiny_config("llama"), ModelHeads{});
    for (const ParamSlot& s : ref.slots()) std::copy_n(policy.param(s.name), s.numel, ref.param(s.name));
    const std::vector<float> before = policy.params();
    AdamW opt(policy, cfg.adam);
    OnlineState st;
    st.kl_coef = cfg.beta;
    const auto logs = train_online(policy, opt, ref, prompts, target_share, no_text, cfg, 0, st);
    ASSERT_EQ(logs.size(), 1u) << e.name;
    const auto& v = logs[0].values;
    for (const char* k : {"loss", "grad_norm", "objective/scores", "objective/entropy", "kl_coef"})
      ASSERT_TRUE(v.count(k) && std::isfinite(v.at(k))) << e.name << " " << k;
    EXPECT_EQ(v.count("objective/kl"), needs.reference ? 1u : 0u) << e.name;
    EXPECT_EQ(v.count("loss/value_avg"), needs.values ? 1u : 0u) << e.name;
    EXPECT_NE(policy.params(), before) << e.name;
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
  c = base_config(OnlineMethod::rloo);
  c.shaping.placement = rollout::ScorePlacement::trl_after_eos;  // no values to place
  EXPECT_THROW(c.validate(), InputError);
  c.method = OnlineMethod::apa;
  EXPECT_NO_THROW(c.validate());
  EXPECT_THROW(online_method_from_name("ppo2"), InputError);
}

}  // namespace
}  // namespace rlhf
