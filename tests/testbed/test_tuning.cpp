// The tuning's selection rule and its record (src/testbed/tuning.h, docs/testbed.md §6.1):
// the criterion (highest final validation gold) applied only to candidates that pass the guard
// (finite training, gold not below the base's by more than the margin, KL under the cap at every
// checkpoint); tuned arms built from a record; bad records rejected naming the field.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tensor/error.h"
#include "testbed/tuning.h"

namespace rlhf::testbed {
namespace {

TuneCandidate cand(double gold, double final_kl, double max_kl, bool finite = true) {
  TuneCandidate c;
  c.finite = finite, c.final_gold = gold, c.final_kl = final_kl, c.max_kl = max_kl;
  return c;
}

TEST(TuneChoice, HighestValidationGoldAmongThoseThatPassTheGuard) {
  const TuneRule rule{.kl_cap = 10, .gold_margin = 0.05};
  const std::vector<TuneCandidate> c = {
      cand(0.70, 3, 4),                 // passes
      cand(0.95, 12, 12),               // best gold, but over the KL cap
      cand(0.99, NAN, NAN, false),      // non-finite loss
      cand(0.90, 2, 11),                // final KL under the cap, but a checkpoint above it
      cand(0.80, 5, 6),                 // passes: the choice
      cand(0.42, 1, 1),                 // below the base (0.5) by more than the margin: diverged
      cand(0.46, 1, 1),                 // below the base, within the margin: passes
      cand(NAN, 1, 1),                  // no validation gold
  };
  const TuneChoice t = choose_config(c, 0.5, rule);
  EXPECT_EQ(t.chosen, 4);
  ASSERT_EQ(t.reasons.size(), c.size());
  for (size_t i : {0u, 4u, 6u}) EXPECT_EQ(t.reasons[i], "") << i;
  EXPECT_NE(t.reasons[1].find("above the cap"), std::string::npos) << t.reasons[1];
  EXPECT_NE(t.reasons[2].find("non-finite loss"), std::string::npos);
  EXPECT_NE(t.reasons[3].find("above the cap"), std::string::npos);
  EXPECT_NE(t.reasons[5].find("diverged"), std::string::npos) << t.reasons[5];
  EXPECT_NE(t.reasons[7].find("non-finite validation"), std::string::npos);
}

TEST(TuneChoice, TiesGoToTheLowerKlAndNoneMayPass) {
  const TuneRule rule;
  EXPECT_EQ(choose_config({cand(0.8, 4, 4), cand(0.8, 2, 3), cand(0.8, 2, 2)}, 0.5, rule).chosen, 1);
  const TuneChoice none = choose_config({cand(0.9, 20, 20), cand(0.1, 1, 1), cand(0.9, 1, 1, false)}, 0.5, rule);
  EXPECT_EQ(none.chosen, -1);
  for (const auto& r : none.reasons) EXPECT_FALSE(r.empty());
}

RunSpec spec(const std::string& suite, const std::string& method, const std::string& flag, double reg, json params) {
  RunSpec s;
  s.suite = suite, s.method = method, s.params = std::move(params);
  s.args = {"dpo", "--learning-rate", "2e-4", flag, arg(reg), "--seed", "1"};
  return s;
}

json record(const json& dpo_chosen) {
  return {{"schema", "rlhf-bench-tuning/1"},
          {"profile", "quick"},
          {"families", {{{"family", "dpo"}, {"chosen", dpo_chosen}},
                        {{"family", "rm+ppo"}, {"chosen", nullptr}}}}};  // none passed: no tuned PPO arm
}

TEST(TunedArms, OneCopyPerArmWithTheChosenConfiguration) {
  std::vector<RunSpec> specs = {spec("rq1", "dpo", "--beta", 0.1, {{"beta", 0.1}}),
                                spec("rq1", "dpo", "--beta", 0.5, {{"beta", 0.5}}),
                                spec("rq1", "rm+ppo", "--kl-coef", 0.05, {{"kl_coef", 0.05}}),
                                spec("rq6", "offline-dpo", "--beta", 0.1, {{"labels", 6000}}),
                                spec("rq1", "ipo", "--beta", 0.1, {{"tau", 0.1}})};  // not in the record
  add_tuned_arms(record({{"lr", 1e-4}, {"beta", 0.03}}), specs);
  ASSERT_EQ(specs.size(), 7u);
  for (size_t i : {5u, 6u}) {
    const RunSpec& t = specs[i];
    EXPECT_EQ(t.args, (std::vector<std::string>{"dpo", "--learning-rate", "0.0001", "--beta", "0.03", "--seed", "1"}));
    EXPECT_EQ(t.params["config"], "tuned");
    EXPECT_EQ(t.params["lr"], 1e-4);
    EXPECT_EQ(t.params["beta"], 0.03);
  }
  EXPECT_EQ(specs[5].method, "dpo");
  EXPECT_EQ(specs[6].method, "offline-dpo");
  EXPECT_EQ(specs[6].params["labels"], 6000);  // the vanilla params it does not set are kept
  std::vector<RunSpec> none = {specs[0]};
  add_tuned_arms(nullptr, none);
  EXPECT_EQ(none.size(), 1u);
  add_tuned_arms(record({{"lr", 2e-4}, {"beta", 0.1}}), none);  // the vanilla configuration was chosen
  EXPECT_EQ(none.size(), 1u);
}

TEST(TunedArms, RetunedFamiliesAreThoseMovedOffTheirVanillaConfiguration) {
  // 2e-4 and 0.1 have no exact float: a comparison through float would call every family retuned.
  auto family = [](const char* name, const char* reg, double lr, double value, const json& chosen) {
    return json{{"family", name}, {"vanilla", {{"lr", lr}, {reg, value}}}, {"chosen", chosen}};
  };
  const json t = {{"families",
                   {family("dpo", "beta", 2e-4, 0.1, {{"lr", 1e-4}, {"beta", 0.1}}),
                    family("ipo", "tau", 2e-4, 0.1, {{"lr", 2e-4}, {"tau", 0.1}}),
                    family("kto", "beta", 2e-4, 0.1, {{"lr", 2e-4}, {"beta", 0.3}}),
                    family("rm+ppo", "kl_coef", 3e-4, 0.01, nullptr)}}};
  std::vector<std::string> names;
  for (const TuneFamily* f : retuned_families(t)) names.push_back(f->name);
  EXPECT_EQ(names, (std::vector<std::string>{"dpo", "kto"}));
  EXPECT_TRUE(retuned_families(nullptr).empty());
}

TEST(TuningRecord, BadRecordsNameTheFileAndField) {
  const auto dir = std::filesystem::temp_directory_path() / "rlhf_test_tuning";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const json& j) {
    std::ofstream(dir / name) << j.dump();
    return (dir / name).string();
  };
  auto error_of = [](const std::string& file, const std::string& profile) {
    try {
      load_tuning(file, profile);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string good = write("good.json", record({{"lr", 1e-4}, {"beta", 0.03}}));
  EXPECT_EQ(load_tuning(good, "quick")["source"], good);
  EXPECT_NE(error_of(good, "standard").find("\"profile\" is 'quick'"), std::string::npos);
  EXPECT_NE(error_of(write("lr.json", record({{"beta", 0.03}})), "quick").find("\"chosen\" needs numbers \"lr\""),
            std::string::npos);
  EXPECT_NE(error_of(write("schema.json", {{"profile", "quick"}}), "quick").find("not a tuning record"),
            std::string::npos);
  json unknown = record(nullptr);
  unknown["families"][0]["family"] = "sft";
  EXPECT_NE(error_of(write("family.json", unknown), "quick").find("unknown family 'sft'"), std::string::npos);
  EXPECT_TRUE(load_tuning("", "full").is_null());  // no built-in record for this profile
  // The built-in records are the profiles' own; mini, the CI profile, reads quick's.
  for (const auto& [profile, recorded] : {std::pair<std::string, std::string>{"quick", "quick"},
                                          {"mini", "quick"},
                                          {"standard", "standard"}}) {
    const json t = load_tuning("", profile);
    ASSERT_FALSE(t.is_null()) << profile;
    EXPECT_EQ(t["source"], "built-in bench/tuned/" + recorded + ".json");
    EXPECT_EQ(t["profile"], recorded);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlhf::testbed
