// Options and YAML recipes: precedence (flag > recipe > default), provenance, and errors that
// name the file, line and key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli/options.h"
#include "tensor/error.h"

namespace rlhf::cli {
namespace {

namespace fs = std::filesystem;

struct Argv {
  std::vector<std::string> s;
  std::vector<char*> p;
  explicit Argv(std::vector<std::string> v) : s(std::move(v)) {
    for (auto& x : s) p.push_back(x.data());
  }
  int argc() { return static_cast<int>(p.size()); }
  char** argv() { return p.data(); }
};

Options make() {
  Options o("demo", "a demo command");
  o.add("learning-rate", "1e-3", "lr").add("loss-type", "sigmoid", "losses").add("max-steps", "10", "steps");
  o.flag("bf16", "a flag");
  return o;
}

fs::path recipe(const std::string& text) {
  static int n = 0;
  fs::path p = fs::temp_directory_path() / ("recipe_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + ".yaml");
  std::ofstream(p) << text;
  return p;
}

TEST(Options, RecipeThenFlagsOverride) {
  const fs::path r = recipe("learning_rate: 5.0e-7\nloss_type: [sigmoid, sft]\nbf16: true\n");
  Options o = make();
  Argv a({"--max-steps", "3", "--config", r.string(), "--learning-rate", "2e-6"});
  ASSERT_TRUE(o.parse(a.argc(), a.argv()));
  EXPECT_EQ(o.number("learning-rate"), 2e-6);  // the flag wins over the recipe
  EXPECT_EQ(o.str("loss-type"), "sigmoid,sft");
  EXPECT_TRUE(o.boolean("bf16"));
  EXPECT_EQ(o.integer("max-steps"), 3);
  const auto prov = o.provenance();
  EXPECT_EQ(prov["learning-rate"], "command line");
  EXPECT_EQ(prov["loss-type"], r.string() + ":2");
  fs::remove(r);
}

TEST(Options, RecipeErrorsNameFileLineAndKey) {
  auto error_of = [](const std::string& text) {
    const fs::path r = recipe(text);
    Options o = make();
    Argv a({"--config", r.string()});
    std::string msg;
    try {
      o.parse(a.argc(), a.argv());
    } catch (const InputError& e) {
      msg = e.what();
    }
    fs::remove(r);
    return std::make_pair(r.string(), msg);
  };
  auto [p1, m1] = error_of("max_steps: 3\nlearning_rat: 1e-5\n");
  EXPECT_NE(m1.find(p1 + ":2: unknown key 'learning_rat'"), std::string::npos) << m1;
  auto [p2, m2] = error_of("max_steps: 3\nmax-steps: 4\n");
  EXPECT_NE(m2.find(p2 + ":2: duplicate key"), std::string::npos) << m2;
  auto [p3, m3] = error_of("bf16: maybe\n");
  EXPECT_NE(m3.find("takes true or false"), std::string::npos) << m3;
  auto [p4, m4] = error_of("learning_rate: {a: 1}\n");
  EXPECT_NE(m4.find("got a mapping"), std::string::npos) << m4;
  auto [p5, m5] = error_of("learning_rate: [1, 2\n");
  EXPECT_NE(m5.find("invalid YAML"), std::string::npos) << m5;
}

TEST(Options, FlagErrors) {
  Options o = make();
  Argv a({"--nope", "1"});
  EXPECT_THROW(o.parse(a.argc(), a.argv()), InputError);
  Options o2 = make();
  Argv b({"--max-steps", "x"});
  o2.parse(b.argc(), b.argv());
  EXPECT_THROW(o2.integer("max-steps"), InputError);
}

TEST(Options, RepeatedOptionsKeepCommasAndTheCommandLineReplacesTheRecipe) {
  auto with_list = [] {
    Options o("demo", "a demo command");
    o.repeated("reward", "reward specs").add("max-steps", "10", "steps");
    return o;
  };
  const fs::path r = recipe("reward:\n  - 'rm(batch=8,max_length=64):dir'\n  - 2*exact:answer\n");
  Options a = with_list();
  Argv args({"--config", r.string()});
  ASSERT_TRUE(a.parse(args.argc(), args.argv()));
  EXPECT_EQ(a.list("reward"), (std::vector<std::string>{"rm(batch=8,max_length=64):dir", "2*exact:answer"}));
  EXPECT_EQ(a.resolved()["reward"].size(), 2u);
  Options b = with_list();
  Argv args2({"--config", r.string(), "--reward", "regex:a,b", "--reward", "eos"});
  ASSERT_TRUE(b.parse(args2.argc(), args2.argv()));
  EXPECT_EQ(b.list("reward"), (std::vector<std::string>{"regex:a,b", "eos"}));
  EXPECT_EQ(b.provenance()["reward"], "command line");
  Options c = with_list();
  Argv none({});
  ASSERT_TRUE(c.parse(none.argc(), none.argv()));
  EXPECT_TRUE(c.list("reward").empty());
  EXPECT_THROW(c.list("max-steps"), LogicError);
  fs::remove(r);
}

// The flags the training commands share: declared once, read into the library's settings, and
// one check for the required ones that names the first missing flag.
TEST(TrainingFlags, SharedDeclarationsAndRequiredFlags) {
  Options o("demo", "a demo command");
  o.add("model", "", "model").add("out", "", "out").add("weight-decay", "0", "wd");
  declare_learning_rate(o, "5e-7");
  declare_adam(o);
  declare_checkpoints(o);
  declare_threads(o);
  Argv a({"--model", "m", "--save-steps", "5", "--adam-beta2", "0.95", "--resume", "--threads", "1"});
  ASSERT_TRUE(o.parse(a.argc(), a.argv()));
  const AdamWConfig adam = adamw_from(o);
  EXPECT_EQ(adam.lr, 5e-7);
  EXPECT_EQ(adam.beta2, 0.95);
  EXPECT_EQ(adam.max_grad_norm, 1.0);
  const CheckpointCadence c = checkpoints_from(o);
  EXPECT_EQ(c.every, 5);
  EXPECT_EQ(c.keep, 0);
  EXPECT_NO_THROW(o.require({"model"}));
  try {
    o.require({"model", "out"});
    FAIL() << "--out is empty";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "rlhf demo: --out is required");
  }
  const nlohmann::json fp = resume_fingerprint(o, {"out"});
  EXPECT_FALSE(fp.contains("resume") || fp.contains("threads") || fp.contains("config") || fp.contains("out"));
  EXPECT_EQ(fp["model"], "m");
  EXPECT_EQ(fp["save-steps"], "5");
}

}  // namespace
}  // namespace rlhf::cli
