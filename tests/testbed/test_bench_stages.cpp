// The bench's cached stages (testbed/bench_stages.h): a stage is reused only under the key that
// produced it (the binary's version, its command or inputs, its upstream stages' keys) and
// recomputed with a line naming what changed otherwise. Each Stages object below is one bench run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

#include "testbed/bench_stages.h"

namespace rlhf::testbed {
namespace {

class BenchStages : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("rlhf_bench_stages_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Runs stage `name` in a fresh bench run of binary `version`; returns what it printed.
  std::string run(const std::string& version, const std::string& name, const json& inputs) {
    Stages stages(root_, "/bin/false", 1, version);
    ::testing::internal::CaptureStdout();
    stages.stage(name, inputs, [&](const fs::path& dir) {
      ++bodies_;
      std::ofstream(dir / "out.txt") << inputs.dump();
    });
    return ::testing::internal::GetCapturedStdout();
  }

  static json dpo(const std::string& beta) { return {{"rlhf", {"dpo", "--model", "base", "--beta", beta}}}; }

  fs::path root_;
  int bodies_ = 0;
};

TEST_F(BenchStages, TheSameKeyReusesTheStage) {
  EXPECT_EQ(run("0.1.0 (abc)", "runs/dpo", dpo("0.1")).rfind("  done    runs/dpo  (", 0), 0u);
  EXPECT_EQ(run("0.1.0 (abc)", "runs/dpo", dpo("0.1")), "  cached  runs/dpo\n");
  EXPECT_EQ(bodies_, 1);
  const json key = read_json(root_ / "stages" / "runs/dpo" / "key.json");
  EXPECT_EQ(key["version"], "0.1.0 (abc)");
  EXPECT_EQ(key["inputs"], dpo("0.1"));
}

TEST_F(BenchStages, ChangedArgumentsRecomputeTheStageAndSaySo) {
  run("0.1.0 (abc)", "runs/dpo", dpo("0.1"));
  const std::string out = run("0.1.0 (abc)", "runs/dpo", dpo("0.2"));
  EXPECT_EQ(bodies_, 2);
  EXPECT_NE(out.find("  stale   runs/dpo  (command --beta 0.1 -> --beta 0.2)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  done    runs/dpo"), std::string::npos) << out;
  EXPECT_EQ(read_json(root_ / "stages" / "runs/dpo" / "key.json")["inputs"], dpo("0.2"));
  EXPECT_EQ(run("0.1.0 (abc)", "runs/dpo", dpo("0.2")), "  cached  runs/dpo\n");  // the new key is kept
  EXPECT_EQ(bodies_, 2);
}

TEST_F(BenchStages, AnotherVersionRecomputesTheStage) {
  run("0.1.0 (abc)", "runs/dpo", dpo("0.1"));
  const std::string out = run("0.1.0 (abc-dirty.1234abcd)", "runs/dpo", dpo("0.1"));
  EXPECT_EQ(bodies_, 2);
  EXPECT_NE(out.find("  stale   runs/dpo  (version 0.1.0 (abc) -> 0.1.0 (abc-dirty.1234abcd))\n"), std::string::npos)
      << out;
}

TEST_F(BenchStages, InProcessInputsAndAStageFromBeforeKeys) {
  run("v", "data", {{"prompts", 8}});
  const std::string changed = run("v", "data", {{"prompts", 16}});
  EXPECT_NE(changed.find("  stale   data  (inputs prompts: 8 -> 16)\n"), std::string::npos) << changed;
  fs::remove(root_ / "stages" / "data" / "key.json");  // DONE without a key: written before keys existed
  const std::string old = run("v", "data", {{"prompts", 16}});
  EXPECT_NE(old.find("  stale   data  (no readable key.json)\n"), std::string::npos) << old;
  EXPECT_EQ(bodies_, 3);
}

TEST_F(BenchStages, AChangedUpstreamStageRecomputesWhatReadsIt) {
  // One bench run: `samples` reads `base`'s output, so base's key is part of samples' key.
  auto bench = [&](const std::string& lm_steps) {
    Stages stages(root_, "/bin/false", 1, "v");
    ::testing::internal::CaptureStdout();
    const fs::path base = stages.stage("w/base", {{"rlhf", {"lm", "--max-steps", lm_steps}}},
                                       [&](const fs::path&) { ++bodies_; }) / "model";
    stages.stage("w/samples", {{"rlhf", {"generate", "--model", base.string()}}}, [&](const fs::path&) { ++bodies_; });
    return ::testing::internal::GetCapturedStdout();
  };
  bench("100");
  EXPECT_EQ(bench("100"), "  cached  w/base\n  cached  w/samples\n");
  EXPECT_EQ(bodies_, 2);
  const std::string out = bench("200");
  EXPECT_EQ(bodies_, 4);
  EXPECT_NE(out.find("  stale   w/base  (command --max-steps 100 -> --max-steps 200)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  stale   w/samples  (upstream stage w/base changed)\n"), std::string::npos) << out;
  // The paths are stored relative to the bench directory, with the upstream key's hash.
  const json key = read_json(root_ / "stages" / "w/samples" / "key.json");
  EXPECT_EQ(key["inputs"]["rlhf"][2], "stages/w/base/model");
  EXPECT_EQ(key["upstream"]["w/base"].get<std::string>().size(), 16u);
}

TEST_F(BenchStages, ReadingAStageThatDidNotRunIsAnError) {
  Stages stages(root_, "/bin/false", 1, "v");
  const json inputs = {{"pairs", (root_ / "stages" / "w/prefs/pairs.jsonl").string()}};
  EXPECT_THROW(stages.stage("w/rm", inputs, [](const fs::path&) {}), std::logic_error);
}

TEST_F(BenchStages, AnInterruptedStageIsRecomputed) {
  Stages stages(root_, "/bin/false", 1, "v");
  EXPECT_THROW(stages.stage("s", {{"n", 1}}, [](const fs::path&) { throw std::runtime_error("killed"); }),
               std::runtime_error);
  EXPECT_FALSE(fs::exists(root_ / "stages" / "s" / "DONE"));
  EXPECT_EQ(run("v", "s", {{"n", 1}}).rfind("  done    s  (", 0), 0u);
  EXPECT_EQ(bodies_, 1);
}

// rq1's "+prompts" data on the quick profile's Valence: the train prompts, then 4 times as many
// distinct prompts that are in no train, test or validation file.
TEST_F(BenchStages, UnlabeledPromptsFollowTheTrainPromptsAndAreNewAndDistinct) {
  Stages stages(root_, "/bin/false", 1, "v");
  const Profile profile = make_profile("quick");
  World w(stages, profile, "valence", 1, 1);
  ::testing::internal::CaptureStdout();
  const std::vector<json> rows = read_jsonl(w.train_plus_unlabeled_prompts());
  const auto& train = w.prompt_texts(Split::train);
  std::set<std::string> others(train.begin(), train.end());
  for (Split s : {Split::test, Split::val})
    for (const auto& p : w.prompt_texts(s)) others.insert(p);
  ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(rows.size(), train.size() * (1 + kUnlabeledPromptsPerTrain));
  for (size_t i = 0; i < train.size(); ++i) ASSERT_EQ(rows[i]["prompt"], train[i]);
  std::set<std::string> unlabeled;
  for (size_t i = train.size(); i < rows.size(); ++i) {
    const std::string p = rows[i]["prompt"];
    EXPECT_FALSE(others.count(p)) << p;
    EXPECT_TRUE(unlabeled.insert(p).second) << "twice: " << p;
  }
}

}  // namespace
}  // namespace rlhf::testbed
