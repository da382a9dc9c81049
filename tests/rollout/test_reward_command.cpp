// The external-command source against small shell scripts: a good scorer, and each way a scorer
// can fail (crash, signal, hang, garbage, too few lines, a flood of stderr, not reading stdin),
// as a clear error or, with on_error=skip, counted NaN scores. Never a hang.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "../model/model_test_util.h"
#include "reward_test_util.h"
#include "tensor/error.h"

namespace rlhf::rollout {
namespace {

using rlhf::test::expect_error;
using rlhf::test::TempDir;

class CommandReward : public ::testing::Test {
 protected:
  // Writes an executable shell script and returns the command line that runs it.
  std::string script(const std::string& name, const std::string& body) {
    const auto p = dir_ / name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    ::chmod(p.c_str(), 0755);
    return p.string();
  }
  std::vector<RewardSample> batch(int n) {
    std::vector<RewardSample> b;
    for (int i = 0; i < n; ++i) b.push_back(test::sample("c" + std::to_string(i), {{"answer", i + 0.5}}));
    return b;
  }
  double metric(const RewardResult& r, const std::string& name) {
    for (const auto& [k, v] : r.metrics)
      if (k == name) return v;
    ADD_FAILURE() << "no metric " << name;
    return -1;
  }
  TempDir dir_;
};

TEST_F(CommandReward, GoodScorerSeesPromptCompletionAndExtraFields) {
  // Echoes each row's "answer" as its score and keeps a copy of its input.
  const std::string cmd =
      script("good.sh", "tee " + (dir_ / "seen.jsonl").string() + " | sed 's/.*\"answer\":\\([-0-9.e]*\\).*/\\1/'");
  std::vector<RewardSample> b = batch(3);
  b[1].prompt.is_chat = true;
  b[1].prompt.messages = {{"user", "hï \"there\""}};
  b[2].completion = "";
  const RewardResult r = test::source("cmd:" + cmd)->score(b);
  EXPECT_EQ(r.scores, (std::vector<double>{0.5, 1.5, 2.5}));
  EXPECT_EQ(metric(r, "failed_batches"), 0.0);
  EXPECT_EQ(metric(r, "bad_lines"), 0.0);
  std::ifstream seen(dir_ / "seen.jsonl");
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(seen, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["prompt"], "Q");
  EXPECT_EQ(rows[0]["completion"], "c0");
  EXPECT_EQ(rows[1]["prompt"][0]["content"], "hï \"there\"");
  EXPECT_EQ(rows[1]["prompt"][0]["role"], "user");
  EXPECT_EQ(rows[2]["completion"], "");
  EXPECT_EQ(rows[2]["answer"], 2.5);
}

TEST_F(CommandReward, ArgumentsNanAndWhitespaceLines) {
  // The spec's ARG is a shell command line; nan/null are undefined scores; CRLF and spaces are fine.
  const std::string cmd = script("args.sh", "cat > /dev/null; printf ' %s\\r\\nnan\\nnull\\n-1e-3' \"$1\"");
  const std::vector<double> s = test::source("cmd:" + cmd + " 7.25")->score(batch(4)).scores;
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], 7.25);
  EXPECT_TRUE(std::isnan(s[1]));
  EXPECT_TRUE(std::isnan(s[2]));
  EXPECT_EQ(s[3], -1e-3);  // the last line needs no newline
}

TEST_F(CommandReward, NonZeroExitNamesCommandStatusAndStderr) {
  const std::string cmd = script("exit3.sh", "cat > /dev/null; echo 'scorer: model not found' >&2; exit 3");
  expect_error<InputError>([&] { test::source("cmd:" + cmd)->score(batch(2)); },
                           {"command `" + cmd + "`", "exited with status 3", "scorer: model not found"});
}

TEST_F(CommandReward, CrashBySignal) {
  const std::string cmd = script("segv.sh", "echo 1; kill -SEGV $$");
  // Under sh -c the script is the shell's child: the shell reports 128 + 11.
  expect_error<InputError>([&] { test::source("cmd:" + cmd)->score(batch(1)); },
                           {"segv.sh", "status 139", "killed by signal 11 (Segmentation fault)"});
  // With exec the script is our child itself.
  expect_error<InputError>([&] { test::source("cmd:exec " + cmd)->score(batch(1)); },
                           {"segv.sh", "was killed by signal 11 (Segmentation fault)"});
}

TEST_F(CommandReward, HangIsKilledAtTheTimeout) {
  const std::string cmd = script("hang.sh", "sleep 100");
  const auto t0 = std::chrono::steady_clock::now();
  expect_error<InputError>([&] { test::source("cmd(timeout=0.5):" + cmd)->score(batch(2)); },
                           {"hang.sh", "timed out after 0.5 s", "process group was killed"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST_F(CommandReward, BackgroundChildHoldingStdoutDoesNotHang) {
  // The script exits but a child keeps stdout open: the timeout still ends it.
  const std::string cmd = script("bg.sh", "cat > /dev/null; echo 1; sleep 100 &");
  const auto t0 = std::chrono::steady_clock::now();
  expect_error<InputError>([&] { test::source("cmd(timeout=0.5):" + cmd)->score(batch(1)); }, {"timed out"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST_F(CommandReward, GarbageLineNamesTheLine) {
  const std::string cmd = script("garbage.sh", "cat > /dev/null; echo 1; echo 'score: high'; echo 3");
  expect_error<InputError>([&] { test::source("cmd:" + cmd)->score(batch(3)); },
                           {"garbage.sh", "printed 'score: high' on stdout line 2", "not a number"});
  const RewardResult r = test::source("cmd(on_error=skip):" + cmd)->score(batch(3));
  ASSERT_EQ(r.scores.size(), 3u);
  EXPECT_EQ(r.scores[0], 1.0);
  EXPECT_TRUE(std::isnan(r.scores[1]));
  EXPECT_EQ(r.scores[2], 3.0);
  EXPECT_EQ(metric(r, "bad_lines"), 1.0);
  EXPECT_EQ(metric(r, "failed_batches"), 0.0);
}

TEST_F(CommandReward, InfinityAndBlankLinesAreNotScores) {
  expect_error<InputError>([&] { test::source("cmd:" + script("inf.sh", "echo inf"))->score(batch(1)); },
                           {"'inf' on stdout line 1"});
  expect_error<InputError>([&] { test::source("cmd:" + script("blank.sh", "echo; echo 2"))->score(batch(2)); },
                           {"'' on stdout line 1"});
}

TEST_F(CommandReward, WrongNumberOfLines) {
  const std::string cmd = script("few.sh", "cat > /dev/null; echo 1; echo 2");
  expect_error<InputError>([&] { test::source("cmd:" + cmd)->score(batch(3)); }, {"few.sh", "printed 2 lines for 3 samples"});
  const std::string many = script("many.sh", "cat > /dev/null; echo 1; echo 2; echo 3");
  expect_error<InputError>([&] { test::source("cmd:" + many)->score(batch(2)); }, {"printed 3 lines for 2 samples"});
}

TEST_F(CommandReward, SkipTurnsAFailedBatchIntoCountedNaN) {
  for (const std::string body : {"exit 3", "echo 1", "kill -SEGV $$", "sleep 100"}) {
    const std::string cmd = script("fail.sh", body);
    const RewardResult r = test::source("cmd(on_error=skip,timeout=0.5):" + cmd)->score(batch(2));
    ASSERT_EQ(r.scores.size(), 2u) << body;
    EXPECT_TRUE(std::isnan(r.scores[0]) && std::isnan(r.scores[1])) << body;
    EXPECT_EQ(metric(r, "failed_batches"), 1.0) << body;
  }
}

TEST_F(CommandReward, FloodOfStderrAndLargeInputDoNotDeadlock) {
  // 4 MB of stderr before reading a large stdin: only draining both while writing works.
  const std::string cmd =
      script("flood.sh", "head -c 4000000 /dev/zero | tr '\\0' x >&2; while read -r l; do echo 1; done");
  std::vector<RewardSample> b = batch(200);
  for (auto& s : b) s.completion = std::string(20000, 'y');  // 4 MB of stdin
  const std::vector<double> s = test::source("cmd(timeout=30):" + cmd)->score(b).scores;
  EXPECT_EQ(s, std::vector<double>(200, 1.0));
  // The tail of a flood is what an error shows.
  const std::string bad = script("flood_fail.sh", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1");
  try {
    test::source("cmd:" + bad)->score(batch(1));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("xxxxEND"), std::string::npos);
    EXPECT_LT(msg.size(), 3000u);
  }
}

TEST_F(CommandReward, ScorerThatIgnoresStdin) {
  // Writing to a closed pipe must neither kill us (SIGPIPE) nor fail the batch.
  const std::string cmd = script("nostdin.sh", "i=0; while [ $i -lt 100 ]; do echo 2; i=$((i+1)); done");
  std::vector<RewardSample> b = batch(100);
  for (auto& s : b) s.completion = std::string(50000, 'z');
  EXPECT_EQ(test::source("cmd:" + cmd)->score(b).scores, std::vector<double>(100, 2.0));
}

TEST_F(CommandReward, MissingCommandAndBadOptions) {
  expect_error<InputError>([&] { test::source("cmd:" + (dir_ / "nope.sh").string())->score(batch(1)); },
                           {"nope.sh", "exited with status 127", "not found"});
  expect_error<InputError>([] { test::source("cmd(timeout=0):x"); }, {"timeout must be positive"});
  expect_error<InputError>([] { test::source("cmd(on_error=ignore):x"); }, {"fail or skip"});
  expect_error<InputError>([] { test::source("cmd"); }, {"needs a command line"});
}

}  // namespace
}  // namespace rlhf::rollout
