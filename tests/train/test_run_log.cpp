// The run directory and console of a training run (train/run_log.h): the lead rank writes the
// files byte for byte as the commands always have; every other rank writes and prints nothing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../model/tiny_models.h"
#include "train/run_log.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("rlhf_runlog_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RunLog, LeadWritesTheFilesAndPrints) {
  const fs::path dir = fresh_dir("lead");
  std::ostringstream console;
  {
    RunLog log(dir, /*lead=*/true, console);
    log.write_manifest({{"command", "sft"}, {"options", {{"seed", "42"}}}});
    log.start_metrics({R"({"loss":1.0,"step":1})"});  // a resumed run's kept line
    log.metrics({{"step", 2}, {"loss", 0.5}});
    log.start_samples(/*append=*/false);
    log.samples({{{"step", 2}, {"prompt", "p"}}});
    log.console() << "hello\n";
    log.progress("step 2/2");
    log.note("eval at step 2");
    log.end_progress();
  }
  EXPECT_EQ(read(dir / "manifest.json"), "{\n  \"command\": \"sft\",\n  \"options\": {\n    \"seed\": \"42\"\n  }\n}\n");
  EXPECT_EQ(read(dir / "metrics.jsonl"), "{\"loss\":1.0,\"step\":1}\n{\"loss\":0.5,\"step\":2}\n");
  EXPECT_EQ(read(dir / "samples.jsonl"), "{\"prompt\":\"p\",\"step\":2}\n");
  // Not a terminal: one line per progress call, no carriage returns or escapes.
  EXPECT_EQ(console.str(), "hello\nstep 2/2\neval at step 2\n");
  fs::remove_all(dir);
}

TEST(RunLog, SamplesAppendOnResume) {
  const fs::path dir = fresh_dir("append");
  std::ostringstream console;
  for (int run = 0; run < 2; ++run) {
    RunLog log(dir, true, console);
    log.start_samples(/*append=*/run == 1);
    log.samples({{{"run", run}}});
  }
  EXPECT_EQ(read(dir / "samples.jsonl"), "{\"run\":0}\n{\"run\":1}\n");
  fs::remove_all(dir);
}

// rollouts.jsonl: a fresh run starts it empty; a run resumed at step 2 keeps the rows of steps 1
// and 2 (in their order and bytes) and drops the lost run's later rows, a torn last line included.
TEST(RunLog, SamplesKeepTheStepsOfTheResumedCheckpoint) {
  const fs::path dir = fresh_dir("samples");
  std::ostringstream console;
  {
    std::ofstream old(dir / "samples.jsonl");
    old << "{\"step\":2,\"completion\":\"a\"}\n{\"step\":4,\"completion\":\"b\"}\n";
  }
  {
    RunLog log(dir, true, console);
    log.start_samples(/*resumed_step=*/2);
    log.samples({{{"step", 4}, {"completion", "c"}}});
  }
  EXPECT_EQ(read(dir / "samples.jsonl"), "{\"step\":2,\"completion\":\"a\"}\n{\"completion\":\"c\",\"step\":4}\n");
  fs::remove_all(dir);
}

TEST(RunLog, RolloutsKeepTheStepsOfTheResumedCheckpoint) {
  const fs::path dir = fresh_dir("rollouts");
  std::ostringstream console;
  {
    std::ofstream old(dir / "rollouts.jsonl");
    old << "{\"step\":1,\"prompt\":\"a\"}\n{\"step\":2,\"prompt\":\"b\"}\n{\"step\":3,\"prompt\":\"c\"}\n"
        << "{\"step\":4,\"pro";
  }
  {
    RunLog log(dir, true, console);
    log.start_rollouts(/*resumed_step=*/2);
    log.rollouts({{{"step", 3}, {"prompt", "e"}}});
  }
  EXPECT_EQ(read(dir / "rollouts.jsonl"),
            "{\"step\":1,\"prompt\":\"a\"}\n{\"step\":2,\"prompt\":\"b\"}\n{\"step\":3,\"prompt\":\"e\"}\n");
  {
    RunLog log(dir, true, console);
    log.start_rollouts(/*resumed_step=*/0);
    log.rollouts({{{"step", 1}, {"prompt", "f"}}});
  }
  EXPECT_EQ(read(dir / "rollouts.jsonl"), "{\"step\":1,\"prompt\":\"f\"}\n");
  fs::remove_all(dir);
}

TEST(RunLog, OtherRanksWriteAndPrintNothing) {
  const fs::path dir = fresh_dir("follower");
  std::ostringstream console;
  Transformer m(test::tiny_config("llama"), ModelHeads{});
  AdamW opt(m, AdamWConfig{});
  TrainerState st;
  st.global_step = 2;
  {
    RunLog log(dir, /*lead=*/false, console, {.every = 2, .keep = 0});
    log.write_manifest({{"command", "sft"}});
    log.start_metrics({"kept"});
    log.metrics({{"step", 1}});
    log.start_samples(false);
    log.samples({{{"step", 1}}});
    log.start_rollouts(0);
    log.rollouts({{{"step", 1}}});
    log.console() << "hello\n";
    log.progress("step 1/2");
    log.note("eval");
    log.end_progress();
    ASSERT_TRUE(log.checkpoint_due(2, 4));
    log.save_checkpoint(dir, m, opt, st);
  }
  EXPECT_EQ(console.str(), "");
  EXPECT_TRUE(fs::is_empty(dir)) << "a follower rank wrote into the run directory";
  fs::remove_all(dir);
}

TEST(RunLog, CheckpointCadence) {
  const CheckpointCadence none{}, every2{.every = 2, .keep = 1};
  EXPECT_FALSE(none.due(2, 10));
  EXPECT_TRUE(every2.due(2, 10));
  EXPECT_FALSE(every2.due(3, 10));
  EXPECT_FALSE(every2.due(10, 10)) << "the last step is the final model, not a checkpoint";
}

}  // namespace
}  // namespace rlhf
