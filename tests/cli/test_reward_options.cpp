// The reward flags of the sampling commands, declared once (add_reward_options) and read by
// reward_from: the combination mode reaches the scores, the manifest records it, and
// --reward-uwo-lambda without uwo is refused by name.
#include <gtest/gtest.h>

#include "../model/model_test_util.h"
#include "../rollout/reward_test_util.h"
#include "cli/reward_options.h"
#include "tensor/error.h"

namespace rlhf::cli {
namespace {

Options parsed(std::vector<std::string> args) {
  Options o("demo", "a demo command");
  add_reward_options(o);
  declare_backend(o);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  EXPECT_TRUE(o.parse(static_cast<int>(argv.size()), argv.data()));
  return o;
}

double score_of(const Options& o) { return reward_from(o, "")->score({rollout::test::sample("x")}).scores.at(0); }

TEST(RewardOptions, CombineFlagsReachTheScoreAndTheManifest) {
  const std::vector<std::string> two = {"--reward", "regex(match=1):.", "--reward", "regex(match=3):."};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = two;
    args.insert(args.end(), extra.begin(), extra.end());
    return parsed(args);
  };
  EXPECT_EQ(score_of(with({})), 4.0);
  EXPECT_EQ(score_of(with({"--reward-combine", "min"})), 1.0);
  // Mean 2, population variance 1.
  EXPECT_EQ(score_of(with({"--reward-combine", "uwo"})), 2.0 - 0.5);
  EXPECT_EQ(score_of(with({"--reward-combine", "uwo", "--reward-uwo-lambda", "2"})), 0.0);

  nlohmann::json manifest;
  record_rewards(with({"--reward-combine", "uwo", "--reward-uwo-lambda", "2"}), manifest);
  EXPECT_EQ(manifest["rewards"], nlohmann::json({"regex(match=1):.", "regex(match=3):."}));
  EXPECT_EQ(manifest["reward_combine"], nlohmann::json({{"mode", "uwo"}, {"nan", "propagate"}, {"uwo_lambda", 2.0}}));
  record_rewards(with({"--reward-combine", "min"}), manifest);
  EXPECT_EQ(manifest["reward_combine"], nlohmann::json({{"mode", "min"}, {"nan", "propagate"}}));
}

TEST(RewardOptions, ErrorsNameTheFlag) {
  const Options min_with_lambda =
      parsed({"--reward", "eos", "--reward", "regex:a", "--reward-combine", "min", "--reward-uwo-lambda", "1"});
  test::expect_error<InputError>([&] { reward_combine_from(min_with_lambda); },
                                 {"--reward-uwo-lambda", "--reward-combine uwo", "'min'"});
  const Options sum_with_lambda = parsed({"--reward", "eos", "--reward-uwo-lambda", "1"});
  test::expect_error<InputError>([&] { reward_from(sum_with_lambda, ""); }, {"--reward-uwo-lambda"});
  const Options one_source = parsed({"--reward", "eos", "--reward-combine", "uwo"});
  test::expect_error<InputError>([&] { reward_from(one_source, ""); }, {"--reward-combine uwo", "two --reward"});
  const Options unknown = parsed({"--reward", "eos", "--reward", "eos", "--reward-combine", "max"});
  test::expect_error<InputError>([&] { reward_from(unknown, ""); }, {"--reward-combine", "'max'"});
  const Options negative =
      parsed({"--reward", "eos", "--reward", "regex:a", "--reward-combine", "uwo", "--reward-uwo-lambda", "-0.5"});
  test::expect_error<InputError>([&] { reward_from(negative, ""); }, {"--reward-uwo-lambda", "-0.5"});
}

}  // namespace
}  // namespace rlhf::cli
