// The verdict rules (src/testbed/verdicts.cpp, docs/testbed.md §8) on synthetic bench results:
// every hypothesis fed a planted effect in each direction and none, over three seeds, must come
// out reproduced / not reproduced / inconclusive by its rule; every seed must reach the pooled
// effect; a hypothesis whose arms did not run is inconclusive.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "testbed/verdicts.h"

namespace rlhf::testbed {
namespace {

using json = nlohmann::ordered_json;
using Vec = std::vector<double>;

constexpr int kPrompts = 40;
const std::vector<uint64_t> kSeeds = {1, 2, 3};

// Per-prompt values: level + effect, with ±spread alternating over the prompts so that a zero
// effect gives differences whose mean is exactly 0 and whose interval is not a point.
Vec values(double level, double spread = 0.1, int phase = 0) {
  Vec v(kPrompts);
  for (int p = 0; p < kPrompts; ++p) v[p] = level + (((p / 2 + phase) % 2) ? spread : -spread);
  return v;
}

double mean(const Vec& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

json checkpoint(int step, double kl, const Vec& gold, const Vec& proxy = {}, const Vec& length = {}) {
  json c = {{"step", step}, {"kl", kl}, {"flops", 1e9 * step}, {"gold", mean(gold)}, {"prompt_gold", gold}};
  if (!proxy.empty()) c["proxy"] = mean(proxy), c["prompt_proxy"] = proxy;
  if (!length.empty()) c["length"] = mean(length), c["prompt_length"] = length;
  return c;
}

struct Synth {
  json results = {{"seeds", kSeeds}, {"runs", json::array()}, {"suites", json::object()}};

  void run(const std::string& suite, const std::string& method, json params, uint64_t seed, json cps) {
    if (params.is_null()) params = json::object();
    const json last = cps.back();
    results["runs"].push_back({{"suite", suite}, {"method", method}, {"params", std::move(params)}, {"seed", seed},
                               {"checkpoints", std::move(cps)}, {"final", last}});
  }
  // A run whose only checkpoints are the base and the final one.
  void final_run(const std::string& suite, const std::string& method, json params, uint64_t seed, const Vec& gold) {
    run(suite, method, std::move(params), seed, json::array({checkpoint(0, 0, values(0.3)), checkpoint(2, 1, gold)}));
  }
  // Gold along a run: the peak checkpoint (chosen on the even prompts) and the rise to it and fall
  // after it as measured on the odd prompts.
  void rise_fall(const std::string& suite, const std::string& method, json params, uint64_t seed, double rise,
                 double fall) {
    auto split = [](double even, double odd) {
      Vec v = values(0);
      for (int p = 0; p < kPrompts; ++p) v[p] += p % 2 ? odd : even;
      return v;
    };
    run(suite, method, std::move(params), seed,
        json::array({checkpoint(0, 0, split(0.5, 0.7 - rise)), checkpoint(1, 1, split(0.9, 0.7)),
                     checkpoint(2, 2, split(0.6, 0.7 + fall))}));
  }
  // Gold rising with KL (0, 1, 2) to `top` at KL 2, for matched comparisons.
  void climb(const std::string& suite, const std::string& method, uint64_t seed, double top) {
    run(suite, method, json::object(), seed,
        json::array({checkpoint(0, 0, values(0.5)), checkpoint(1, 1, values((0.5 + top) / 2)),
                     checkpoint(2, 2, values(top))}));
  }
  json& seed_suite(const std::string& suite, uint64_t seed) {
    json& per_seed = results["suites"][suite]["per_seed"];
    for (auto& s : per_seed)
      if (s["seed"] == seed) return s;
    per_seed.push_back({{"seed", seed}});
    return per_seed.back();
  }
  void pairs_row(const std::string& suite, const std::string& table, uint64_t seed, json row, const Vec& correct) {
    row["correct"] = correct;
    seed_suite(suite, seed)[table].push_back(std::move(row));
  }
};

// Plants effect d of one hypothesis on one seed.
using Plant = std::function<void(Synth&, uint64_t seed, double d)>;

void rq2_sets(Synth& s, uint64_t seed, const std::map<std::string, double>& rm_minus_implicit, double logp_minus) {
  for (const char* set : {"id", "prompt_shift", "response_shift_t1.5", "response_shift_rl"}) {
    const double gap = rm_minus_implicit.count(set) ? rm_minus_implicit.at(set) : 0.0;
    s.pairs_row("rq2", "table", seed, {{"scorer", "rm"}, {"set", set}}, values(0.7));
    s.pairs_row("rq2", "table", seed, {{"scorer", "dpo_implicit"}, {"set", set}}, values(0.7 - gap, 0.1, 1));
    s.pairs_row("rq2", "table", seed, {{"scorer", "dpo_logp_only"}, {"set", set}}, values(0.7 + logp_minus - gap));
  }
}

const json kClean = {{"annotator", "clean"}, {"agreement", 1.0}}, kNoisy = {{"annotator", "flip:0.8"}, {"agreement", 0.8}};

std::map<std::string, Plant> plants() {
  std::map<std::string, Plant> p;
  auto matched = [](const std::string& suite, const std::string& a, const std::string& b) -> Plant {
    return [=](Synth& s, uint64_t seed, double d) { s.climb(suite, a, seed, 0.7 + d), s.climb(suite, b, seed, 0.7); };
  };
  p["1a"] = p["1b"] = matched("rq1", "dpo", "rm+ppo");
  p["2a"] = [](Synth& s, uint64_t seed, double d) {
    s.climb("rq1", "dpo", seed, 0.7), s.climb("rq1", "rm+ppo", seed, 0.7);  // no gap on Valence
    s.final_run("rq5", "rloo", {}, seed, values(0.5 + d)), s.final_run("rq5", "dpo", {}, seed, values(0.5, 0.1, 1));
  };
  p["2b"] = [](Synth& s, uint64_t seed, double d) {  // the labeled-only run at the other KL coefficient is a decoy
    s.final_run("rq1", "rm+ppo+prompts", {{"kl_coef", 0.05}, {"unlabeled_per_labeled", 4}}, seed, values(0.5 + d));
    s.final_run("rq1", "rm+ppo", {{"kl_coef", 0.2}}, seed, values(0.0));
    s.final_run("rq1", "rm+ppo", {{"kl_coef", 0.05}}, seed, values(0.5, 0.1, 1));
  };
  p["3a"] = [](Synth& s, uint64_t seed, double d) { s.rise_fall("overopt", "rm+ppo", {}, seed, d, -0.1); };
  p["3b"] = [](Synth& s, uint64_t seed, double d) { s.rise_fall("overopt", "rm+ppo", {}, seed, 0.1, d); };
  p["3c"] = [](Synth& s, uint64_t seed, double d) {
    s.run("overopt", "rm+ppo", {}, seed,
          json::array({checkpoint(0, 0, values(0.5), values(0.0)), checkpoint(2, 2, values(0.5), values(d, 0.1, 1))}));
  };
  p["3e"] = [](Synth& s, uint64_t seed, double d) {
    s.climb("rq1", "rm+ppo", seed, 0.7);  // 0.6 at KL 1
    s.seed_suite("rq1", seed)["best_of_n"] = json::array({checkpoint(0, 0, values(0.5)), checkpoint(1, 1, values(0.6 + d))});
  };
  p["4a"] = [](Synth& s, uint64_t seed, double d) { s.rise_fall("overopt", "dpo", {}, seed, d, -0.1); };
  p["4b"] = [](Synth& s, uint64_t seed, double d) { s.rise_fall("overopt", "dpo", {}, seed, 0.1, d); };
  p["5a"] = [](Synth& s, uint64_t seed, double d) { rq2_sets(s, seed, {{"id", d}}, 0); };
  p["5b"] = [](Synth& s, uint64_t seed, double d) {
    rq2_sets(s, seed, {{"prompt_shift", d}, {"response_shift_t1.5", d}, {"response_shift_rl", d}}, 0);
  };
  p["6a"] = [](Synth& s, uint64_t seed, double d) { rq2_sets(s, seed, {}, d); };
  p["7a"] = [](Synth& s, uint64_t seed, double d) {
    s.final_run("rq3", "dpo", kClean, seed, values(0.6 + d)), s.final_run("rq3", "dpo", kNoisy, seed, values(0.6, 0.1, 1));
  };
  p["7b"] = [](Synth& s, uint64_t seed, double d) {
    s.rise_fall("rq3", "dpo", kClean, seed, 0.1, -0.1), s.rise_fall("rq3", "dpo", kNoisy, seed, 0.1, -0.1 - d);
  };
  p["7d"] = [](Synth& s, uint64_t seed, double d) {
    s.final_run("rq3", "dpo", kClean, seed, values(0.6)), s.final_run("rq3", "dpo", kNoisy, seed, values(0.5));
    s.final_run("rq3", "cdpo", kNoisy, seed, values(0.5 + d, 0.1, 1));
  };
  auto ensemble = [](const std::string& method) -> Plant {  // on the noisy labels; the clean RM + RLOO is a decoy
    return [=](Synth& s, uint64_t seed, double d) {
      s.final_run("rq3", "dpo", kClean, seed, values(0.6)), s.final_run("rq3", "dpo", kNoisy, seed, values(0.5));
      s.final_run("rq3", "rm+rloo", kClean, seed, values(0.9));
      s.final_run("rq3", "rm+rloo", kNoisy, seed, values(0.5, 0.1, 1));
      s.final_run("rq3", method, kNoisy, seed, values(0.5 + d));
    };
  };
  p["7c"] = ensemble("rm-ensemble-wco+rloo");
  p["7e"] = ensemble("rm-ensemble-uwo+rloo");
  p["8a"] = [](Synth& s, uint64_t seed, double d) {
    s.pairs_row("rq4", "reward_models", seed, {{"rm", "plackett_luce"}}, values(0.7 + d));
    s.pairs_row("rq4", "reward_models", seed, {{"rm", "bradley_terry"}}, values(0.7, 0.1, 1));
  };
  p["8b"] = [](Synth& s, uint64_t seed, double d) {
    s.final_run("rq4", "listwise-dpo-k", {{"K", 2}}, seed, values(0.6));
    s.final_run("rq4", "dpo-ranking-pairs-k", {{"K", 2}}, seed, values(0.6, 0.1, 1));
    s.final_run("rq4", "listwise-dpo-k", {{"K", 4}}, seed, values(0.6 + d));
    s.final_run("rq4", "dpo-ranking-pairs-k", {{"K", 4}}, seed, values(0.6));
  };
  p["9a"] = [](Synth& s, uint64_t seed, double d) { s.final_run("rq5", "dpo", {}, seed, values(0.3 + d, 0.1, 1)); };
  auto final_gap = [](const std::string& suite, const std::string& a, const std::string& b) -> Plant {
    return [=](Synth& s, uint64_t seed, double d) {
      s.final_run(suite, a, {}, seed, values(0.5 + d)), s.final_run(suite, b, {}, seed, values(0.5, 0.1, 1));
    };
  };
  p["9b"] = final_gap("rq5", "iterative-dpo", "dpo");
  p["9c"] = final_gap("rq5", "dpo+nll", "dpo");
  p["9d"] = final_gap("rq5", "rloo", "dpo");
  p["9e"] = final_gap("rq5", "raft", "rloo");
  p["9g"] = final_gap("rq5", "grpo-warmup+dpo", "grpo");
  p["9f"] = [](Synth& s, uint64_t seed, double d) {  // RLOO leads by 0.3 at pass@1, by 0.3 + d at pass@64
    for (const auto& [k, lead] : {std::pair<int, double>{1, 0.3}, {8, 0.2}, {64, 0.3 + d}}) {
      s.seed_suite("rq5", seed)["pass_at_k"].push_back({{"method", "base"}, {"k", k}, {"prompt_pass", values(0.4)}});
      s.seed_suite("rq5", seed)["pass_at_k"].push_back(
          {{"method", "rloo"}, {"k", k}, {"prompt_pass", values(0.4 + lead, 0.1, k == 64 ? 1 : 0)}});
    }
  };
  p["10a"] = matched("rq6", "online-dpo", "offline-dpo");
  p["10b"] = matched("rq6", "iterative-dpo", "offline-dpo");
  // Semi-online runs at k = 4 and 32: 10c reads k = 32, 10d k = 4; the other run is a decoy.
  p["10c"] = [](Synth& s, uint64_t seed, double d) {
    s.final_run("rq6", "online-dpo", {}, seed, values(0.7 + d));
    s.final_run("rq6", "semi-online-dpo", {{"resample_every", 4}}, seed, values(0.2));
    s.final_run("rq6", "semi-online-dpo", {{"resample_every", 32}}, seed, values(0.7, 0.1, 1));
  };
  p["10d"] = [](Synth& s, uint64_t seed, double d) {
    s.final_run("rq6", "semi-online-dpo", {{"resample_every", 32}}, seed, values(0.2));
    s.final_run("rq6", "semi-online-dpo", {{"resample_every", 4}}, seed, values(0.7 + d));
    s.final_run("rq6", "grpo", {}, seed, values(0.7, 0.1, 1));
  };
  auto length_gap = [](const std::string& a, double a_gamma, const std::string& b, double b_gamma) -> Plant {
    return [=](Synth& s, uint64_t seed, double d) {
      auto run = [&](const std::string& m, double g, const Vec& len) {
        s.run("length", m, {{"gamma", g}}, seed,
              json::array({checkpoint(0, 0, values(0.5), {}, values(8)), checkpoint(2, 1, values(0.5), {}, len)}));
      };
      run(a, a_gamma, values(10 + d)), run(b, b_gamma, values(10, 0.1, 1));
    };
  };
  p["11a"] = length_gap("rm+ppo", 0.05, "rm+ppo", 0.0);
  p["11b"] = length_gap("dpo", 0.05, "dpo", 0.0);
  p["11d"] = length_gap("r-dpo", 0.05, "dpo", 0.05);
  p["11c"] = [](Synth& s, uint64_t seed, double d) {  // length-only gain 0.5 + d vs half of RM+PPO's 1.0
    auto run = [&](const std::string& m, json params, double gain, int phase) {
      s.run("length", m, std::move(params), seed,
            json::array({checkpoint(0, 0, values(0.5), values(0)), checkpoint(2, 1, values(0.5), values(gain, 0.1, phase))}));
    };
    run("length-only-ppo", {{"gamma", 0.0}}, 0.5 + d, 0), run("rm+ppo", {{"gamma", 0.05}}, 1.0, 1);
  };
  return p;
}

json verdict_of(const json& answer, const std::string& id) {
  for (const auto& v : answer["verdicts"])
    if (v["id"] == id) return v;
  ADD_FAILURE() << "no verdict " << id;
  return json::object();
}

json judged(const std::string& id, const std::vector<double>& per_seed_effect) {
  Synth s;
  for (size_t i = 0; i < kSeeds.size(); ++i) plants().at(id)(s, kSeeds[i], per_seed_effect[i]);
  return verdict_of(judge(s.results), id);
}

TEST(Verdicts, EveryHypothesisHasATableRowAndEveryRowAHypothesis) {
  const json answer = judge(Synth().results);
  std::set<std::string> ids;
  for (const auto& v : answer["verdicts"]) ids.insert(v["id"].get<std::string>());
  std::set<std::string> planted;
  for (const auto& [id, plant] : plants()) planted.insert(id);
  EXPECT_EQ(ids, planted);
}

// The three outcomes of every hypothesis: a clear effect each way, and none (directional
// hypotheses) or one at the margin (equivalence hypotheses).
TEST(Verdicts, EachRuleGivesItsThreeOutcomes) {
  for (const auto& [id, plant] : plants()) {
    SCOPED_TRACE(id);
    const json none = judged(id, {0, 0, 0});
    const std::string rule = none["rule"];
    const bool non_inferiority = rule.rfind("reproduced if the 95% CI lies above -", 0) == 0;
    const bool equivalence = none.contains("margin") && !non_inferiority;
    const bool below = rule.rfind("reproduced if the 95% CI lies below", 0) == 0;
    const double big = 0.3, sign = below ? -1 : 1;
    if (non_inferiority) {  // at worst -margin
      const double m = none["margin"];
      EXPECT_EQ(none["verdict"], "reproduced");
      EXPECT_EQ(judged(id, {big, big, big})["verdict"], "reproduced");
      EXPECT_EQ(judged(id, {-big, -big, -big})["verdict"], "not reproduced");
      EXPECT_EQ(judged(id, {-m, -m, -m})["verdict"], "inconclusive");
    } else if (equivalence) {
      const double m = none["margin"];
      EXPECT_EQ(none["verdict"], "reproduced");
      EXPECT_EQ(judged(id, {big, big, big})["verdict"], "not reproduced");
      EXPECT_EQ(judged(id, {m, m, m})["verdict"], "inconclusive");
    } else {
      EXPECT_EQ(none["verdict"], "inconclusive");
      EXPECT_EQ(judged(id, {sign * big, sign * big, sign * big})["verdict"], "reproduced");
      EXPECT_EQ(judged(id, {-sign * big, -sign * big, -sign * big})["verdict"], "not reproduced");
    }
    const json v = judged(id, {sign * big, sign * big, sign * big});
    for (const char* field : {"claim", "statistic", "rule", "where", "reading", "evidence"})
      EXPECT_FALSE(v[field].get<std::string>().empty()) << field;
    ASSERT_EQ(v["effect"]["ci"].size(), 2u);
    EXPECT_LE(v["effect"]["ci"][0].get<double>(), v["effect"]["estimate"].get<double>());
    EXPECT_GE(v["effect"]["ci"][1].get<double>(), v["effect"]["estimate"].get<double>());
  }
}

// Every seed reaches the verdict: the per-seed estimates are the planted effects, the pooled one
// their mean, and one seed's contrary effect widens the interval into "inconclusive".
TEST(Verdicts, AllSeedsReachTheVerdict) {
  for (const auto& [id, plant] : plants()) {
    SCOPED_TRACE(id);
    const json v = judged(id, {0.1, 0.2, 0.3});
    ASSERT_EQ(v["seeds"], json(kSeeds));
    ASSERT_EQ(v["per_seed"].size(), 3u);
    double sum = 0;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(v["per_seed"][i]["seed"], kSeeds[i]);
      sum += v["per_seed"][i]["estimate"].get<double>();
    }
    EXPECT_NEAR(v["effect"]["estimate"].get<double>(), sum / 3, 1e-9);
    const double e1 = v["per_seed"][0]["estimate"], e3 = v["per_seed"][2]["estimate"];
    EXPECT_NEAR(std::fabs(e3 - e1), 0.2, 1e-6);  // the planted effects differ by 0.2 between seeds 1 and 3
  }
  EXPECT_EQ(judged("7a", {0.3, 0.3, 0.3})["verdict"], "reproduced");
  EXPECT_EQ(judged("7a", {0.3, 0.3, -0.6})["verdict"], "inconclusive");
}

TEST(Verdicts, MissingArmsAreInconclusiveNeverReproduced) {
  Synth s;
  s.results["seeds"] = {1, 2};
  plants().at("7a")(s, 2, 0.3);  // only seed 2 ran rq3
  const json answer = judge(s.results);
  for (const auto& v : answer["verdicts"]) {
    SCOPED_TRACE(v["id"].get<std::string>());
    EXPECT_EQ(v["seeds"], json({1, 2}));
    if (v["id"] == "7a") {
      EXPECT_EQ(v["verdict"], "reproduced");
      EXPECT_TRUE(v["per_seed"][0]["estimate"].is_null());
      EXPECT_NE(v["reading"].get<std::string>().find("1 of 2 seeds"), std::string::npos);
    } else {
      EXPECT_EQ(v["verdict"], "inconclusive");
      EXPECT_TRUE(v["effect"]["estimate"].is_null());
    }
  }
  EXPECT_FALSE(answer["untested"].empty());
  for (const auto& u : answer["untested"]) EXPECT_FALSE(u["missing"].get<std::string>().empty());
}

TEST(Verdicts, BanditsAreChecksNotVerdicts) {
  Synth s;
  s.results["suites"]["bandits"]["table"] = json::array({{{"check", "ipo_vs_dpo"}, {"observed", true}}});
  const json answer = judge(s.results);
  ASSERT_EQ(answer["checks"].size(), 1u);
  EXPECT_EQ(answer["checks"][0]["check"], "ipo_vs_dpo");
  for (const auto& v : answer["verdicts"]) EXPECT_NE(v["where"], "bandits");
}

// Tuned arms (params {"config": "tuned"}) never enter a vanilla verdict; a hypothesis that reads
// one gets a "-tuned" verdict with the tuned run in place of the vanilla runs of its arm.
TEST(Verdicts, TunedArmsGetTheirOwnVerdicts) {
  Synth s;
  for (uint64_t seed : kSeeds) {
    plants().at("1a")(s, seed, 0.0);  // vanilla DPO = vanilla PPO
    plants().at("7a")(s, seed, 0.3);
    s.run("rq1", "dpo", {{"config", "tuned"}, {"lr", 1e-4}, {"beta", 0.03}}, seed,
          json::array({checkpoint(0, 0, values(0.5)), checkpoint(1, 1, values(0.8)), checkpoint(2, 2, values(1.0))}));
  }
  const json answer = judge(s.results);
  const json vanilla = verdict_of(answer, "1a"), tuned = verdict_of(answer, "1a-tuned");
  EXPECT_EQ(vanilla["configuration"], "vanilla");
  EXPECT_EQ(vanilla["verdict"], "inconclusive");
  EXPECT_NEAR(vanilla["effect"]["estimate"].get<double>(), 0.0, 1e-9);
  EXPECT_EQ(tuned["configuration"], "tuned");
  EXPECT_EQ(tuned["verdict"], "reproduced");
  EXPECT_NEAR(tuned["effect"]["estimate"].get<double>(), 0.3, 1e-9);  // 1.0 - 0.7 at KL 2
  std::set<std::string> tuned_ids;
  for (const auto& v : answer["verdicts"])
    if (v["configuration"] == "tuned") tuned_ids.insert(v["id"].get<std::string>());
  // 1a and 1b read rq1's DPO; 7a (rq3) does not, nor 2a (without its rq5 arms, it measures nothing).
  EXPECT_EQ(tuned_ids, (std::set<std::string>{"1a-tuned", "1b-tuned"}));
  EXPECT_EQ(verdict_of(answer, "7a")["verdict"], "reproduced");
}

// 2b sets RM + PPO against its own +prompts variant, both vanilla: a tuned PPO at the same KL
// coefficient must not take the labeled-only side.
TEST(Verdicts, AVariantOfOneArmGetsNoTunedVerdict) {
  Synth s;
  for (uint64_t seed : kSeeds) {
    plants().at("2b")(s, seed, 0.3);
    s.final_run("rq1", "rm+ppo", {{"config", "tuned"}, {"lr", 1e-4}, {"kl_coef", 0.05}}, seed, values(0.9));
  }
  const json answer = judge(s.results);
  EXPECT_NEAR(verdict_of(answer, "2b")["effect"]["estimate"].get<double>(), 0.3, 1e-9);
  for (const auto& v : answer["verdicts"]) EXPECT_NE(v["id"], "2b-tuned");
}

}  // namespace
}  // namespace rlhf::testbed
