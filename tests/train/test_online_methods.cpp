// The online methods as objects (src/train/online/method.h): every registered method is found by
// its name and declares what the loop must compute for it; settings are checked against those
// declarations; the methods' resumable state travels through OnlineState, whose JSON a checkpoint
// holds; and a few answers known by hand (REINFORCE's baseline, PPO's adaptive coefficient,
// online DPO's choice of the chosen sample).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>

#include "tensor/error.h"
#include "train/online/method.h"

namespace rlhf::online {
namespace {

OnlineConfig config_of(const std::string& name) {
  OnlineConfig c;
  c.method = online_method_from_name(name);
  return c;
}

Needs needs_of(const OnlineConfig& c) { return make_method(c)->needs(); }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

TEST(OnlineMethodRegistry, FindsEveryMethodByName) {
  std::vector<std::string> names;
  std::set<std::string> commands;
  for (const MethodEntry& e : registered_methods()) {
    names.push_back(e.name);
    EXPECT_EQ(online_method_from_name(e.name), e.id);
    EXPECT_STREQ(online_method_name(e.id), e.name);
    OnlineConfig c;
    c.method = e.id;
    ASSERT_NE(make_method(c), nullptr) << e.name;
    EXPECT_EQ(method_uses_values(e.id), needs_of(c).values) << e.name;
    commands.insert(e.command);  // each row is an `rlhf` subcommand with its help line
    EXPECT_GT(std::strlen(e.summary), 0u) << e.name;
  }
  EXPECT_EQ(commands.size(), registered_methods().size()) << "two methods share a command";
  EXPECT_TRUE(commands.count("online-dpo") && commands.count("ppo"));
  EXPECT_EQ(names, (std::vector<std::string>{"ppo", "apa", "reinforce", "rloo", "grpo", "online_dpo"}));
  EXPECT_EQ(message_of([] { online_method_from_name("gspo"); }),
            "unknown online method 'gspo' (expected ppo, apa, reinforce, rloo, grpo or online_dpo)");
}

TEST(OnlineMethodRegistry, MethodsDeclareTheirNeeds) {
  OnlineConfig c = config_of("ppo");
  Needs n = needs_of(c);
  EXPECT_TRUE(n.values && n.reference && n.drop_undefined);
  EXPECT_FALSE(n.entropy || n.pairs);
  EXPECT_EQ(n.loss, Normaliser::tokens);
  EXPECT_EQ(n.metrics, Normaliser::tokens);
  c.ppo.entropy_coef = 0.01;
  EXPECT_TRUE(needs_of(c).entropy) << "the entropy bonus needs the forward's entropy";

  n = needs_of(config_of("apa"));
  EXPECT_TRUE(n.values && n.reference && n.drop_undefined);
  EXPECT_EQ(n.loss, Normaliser::tokens);

  for (const char* name : {"reinforce", "rloo"}) {
    c = config_of(name);
    c.beta = 0;
    n = needs_of(c);
    EXPECT_FALSE(n.values || n.reference || n.drop_undefined || n.pairs) << name << ": no KL, no reference";
    EXPECT_EQ(n.loss, Normaliser::sequences) << name;
    c.beta = 0.05;
    EXPECT_TRUE(needs_of(c).reference) << name;
  }
  EXPECT_EQ(needs_of(config_of("reinforce")).min_samples, 1);
  EXPECT_EQ(needs_of(config_of("rloo")).min_samples, 2);

  c = config_of("grpo");
  EXPECT_FALSE(needs_of(c).reference) << "TRL loads no reference for GRPO with beta 0";
  EXPECT_EQ(needs_of(c).min_samples, 2);
  EXPECT_EQ(needs_of(c).metrics, Normaliser::tokens);
  c.grpo.beta = 0.04;
  EXPECT_TRUE(needs_of(c).reference);
  for (const auto& [loss_type, normaliser] : std::vector<std::pair<std::string, Normaliser>>{
           {"grpo", Normaliser::sequences}, {"dr_grpo", Normaliser::sequences},
           {"bnpo", Normaliser::tokens}, {"dapo", Normaliser::tokens}}) {
    c.grpo.loss_type = loss_type;
    EXPECT_EQ(needs_of(c).loss, normaliser) << loss_type;
  }
  c.grpo.num_items_in_batch = 100;
  EXPECT_EQ(needs_of(c).loss, Normaliser::fixed) << "dapo with a fixed token count";

  n = needs_of(config_of("online_dpo"));
  EXPECT_TRUE(n.pairs && n.drop_undefined && n.reference);
  EXPECT_FALSE(n.values);
}

TEST(OnlineMethodRegistry, SettingsAreCheckedAgainstTheNeeds) {
  OnlineConfig c = config_of("rloo");
  c.sampling.n = 1;
  EXPECT_EQ(message_of([&] { c.validate(); }), "rloo needs at least 2 samples per prompt (num_generations)");
  c = config_of("online_dpo");
  c.sampling.n = 3;
  EXPECT_EQ(message_of([&] { c.validate(); }), "online_dpo samples exactly 2 completions per prompt");
  c.sampling.n = 2;
  c.dpo_loss = "hinge";
  EXPECT_EQ(message_of([&] { c.validate(); }), "online_dpo loss: expected sigmoid or ipo_sum, got 'hinge'");
  c = config_of("grpo");
  c.sampling.n = 2;
  c.prompts_per_step = 2;
  c.num_mini_batches = 5;
  EXPECT_EQ(message_of([&] { c.validate(); }), "num_mini_batches (5) exceeds the 4 sequences (pairs) of a rollout");
}

// REINFORCE's baseline starts at the first batch's mean reward, each batch is measured against
// the baseline of the batches before it, and a resumed method carries on from the saved state.
TEST(OnlineMethodState, ReinforceBaselineMovesAndResumes) {
  OnlineConfig c = config_of("reinforce");
  c.beta = 0;
  c.reinforce_baseline_decay = 0.5;
  const std::unique_ptr<Method> m = make_method(c);
  OnlineState state;
  m->restore(state);
  RolloutNumbers r;
  r.tokens = Ragged::from_lengths({1, 1, 1});
  r.scores = {1, 3, std::numeric_limits<double>::quiet_NaN()};
  std::map<std::string, double> metrics;
  EXPECT_EQ(m->advantages(r, metrics).per_sequence, (std::vector<double>{-1, 1, 0}));
  EXPECT_EQ(metrics.at("reward_baseline"), 2);
  r.scores = {6, 8, 7};
  EXPECT_EQ(m->advantages(r, metrics).per_sequence, (std::vector<double>{4, 6, 5}));
  m->save(state);
  EXPECT_TRUE(state.baseline_set);
  EXPECT_EQ(state.reward_baseline, 4.5);  // 0.5 * 2 + 0.5 * 7

  const std::unique_ptr<Method> resumed = make_method(c);
  resumed->restore(OnlineState::from_json(state.to_json()));
  r.tokens = Ragged::from_lengths({1, 1});
  r.scores = {4.5, 5.5};
  EXPECT_EQ(resumed->advantages(r, metrics).per_sequence, (std::vector<double>{0, 1}));
}

// PPO's adaptive controller moves the KL coefficient after the step by the step's mean sequence
// KL; every other method keeps the run's.
TEST(OnlineMethodState, PpoAdaptiveKlCoefficient) {
  OnlineConfig c = config_of("ppo");
  c.adaptive_kl = true;
  c.kl_target = 1;
  c.kl_horizon = 10;
  OnlineState state;
  state.kl_coef = 0.1;
  RolloutNumbers r;
  r.tokens = Ragged::from_lengths({1, 1});
  r.seq_kl = {2, 2};  // e = clip(2 / 1 - 1, -0.2, 0.2) = 0.2 over 2 episodes
  const std::unique_ptr<Method> ppo = make_method(c);
  ppo->restore(state);
  EXPECT_EQ(ppo->kl_coef(), 0.1);
  ppo->end_step(r);
  ppo->save(state);
  EXPECT_DOUBLE_EQ(state.kl_coef, 0.1 * (1 + 0.2 * 2 / 10));
  for (const char* name : {"rloo", "online_dpo"}) {
    OnlineState fixed;
    fixed.kl_coef = 0.1;
    const std::unique_ptr<Method> m = make_method(config_of(name));
    m->restore(fixed);
    m->end_step(r);
    m->save(fixed);
    EXPECT_EQ(fixed.kl_coef, 0.1) << name;
  }
}

TEST(OnlineMethodState, JsonIsTheCheckpointFormat) {
  OnlineState s;
  s.kl_coef = 0.125;
  s.reward_baseline = -0.5;
  s.baseline_set = true;
  EXPECT_EQ(s.to_json().dump(), R"({"baseline_set":true,"kl_coef":0.125,"reward_baseline":-0.5})");
  const OnlineState back = OnlineState::from_json(s.to_json());
  EXPECT_EQ(back.kl_coef, 0.125);
  EXPECT_EQ(back.reward_baseline, -0.5);
  EXPECT_TRUE(back.baseline_set);
}

// Online DPO: the better-scored sample of a pair is chosen (here the second), and on a policy
// equal to the reference the sigmoid loss is log 2 with d loss / d (summed log-prob) = -beta / 2
// for every token of the chosen sample and +beta / 2 for the rejected one's.
TEST(OnlineMethodLoss, OnlineDpoChoosesByScore) {
  const std::unique_ptr<Method> m = make_method(config_of("online_dpo"));
  OnlineState state;
  state.kl_coef = 0.1;
  m->restore(state);
  RolloutNumbers r;
  r.tokens = Ragged::from_lengths({1, 2});
  r.scores = {0.0, 1.0};
  r.lp_old = r.lp_ref = {-1, -2, -3};
  std::map<std::string, double> metrics = {{"objective/scores", 0.5}};
  const Advantages adv = m->advantages(r, metrics);
  EXPECT_EQ(metrics.at("objective/scores_margin"), 1.0);
  const std::vector<size_t> rows = {0, 1};
  const Ragged layout = r.tokens.select(rows);
  TokenNumbers current;
  current.logp = r.lp_ref;
  const objective::PolicyLossResult res = m->loss({r, adv, rows, layout, current});
  EXPECT_NEAR(res.loss, std::log(2.0), 1e-12);
  ASSERT_EQ(res.d_logp.size(), 3u);
  EXPECT_NEAR(res.d_logp[0], 0.05, 1e-12);
  EXPECT_NEAR(res.d_logp[1], -0.05, 1e-12);
  EXPECT_NEAR(res.d_logp[2], -0.05, 1e-12);
}

}  // namespace
}  // namespace rlhf::online
