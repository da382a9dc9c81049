// Training checkpoints: kill -9 during saves never leaves a checkpoint that loads as valid
// (docs/reliability.md test 30), corruption and truncation are named (test 33), a changed setting
// refuses to resume, and a loaded checkpoint restores weights, moments and state exactly.
#include <gtest/gtest.h>
#include <zlib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <limits>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "tensor/error.h"
#include "tensor/rng.h"
#include "train/train_checkpoint.h"
#include "../model/tiny_models.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  Transformer m{test::tiny_config("llama"), ModelHeads{}};
  AdamW opt{m, AdamWConfig{.lr = 1e-2}};
  TrainerState st;
  Fixture() {
    m.init_random(3);
    std::fill(m.grads().begin(), m.grads().end(), 0.5f);
    opt.step(m, 1e-2, grad_global_norm(m));
    st.global_step = 7;
    st.extra = {{"kl_coef", 0.05}};
    st.fingerprint = {{"seed", 1}, {"batch_size", 4}};
  }
};

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("rlhf_tc_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

TEST(TrainCheckpoint, RoundTripRestoresEverything) {
  Fixture a;
  const fs::path out = temp_dir("roundtrip");
  const fs::path dir = save_training_checkpoint(out, a.m, a.opt, a.st);
  EXPECT_EQ(dir.filename(), "checkpoint-7");
  ASSERT_EQ(latest_checkpoint(out), dir);
  Transformer m2(test::tiny_config("llama"), ModelHeads{});
  AdamW o2(m2, AdamWConfig{.lr = 1e-2});
  TrainerState s2;
  load_training_checkpoint(dir, m2, o2, s2, a.st.fingerprint);
  EXPECT_EQ(m2.params(), a.m.params());
  EXPECT_EQ(o2.first_moment(), a.opt.first_moment());
  EXPECT_EQ(o2.second_moment(), a.opt.second_moment());
  EXPECT_EQ(o2.steps_taken(), 1);
  EXPECT_EQ(s2.global_step, 7);
  EXPECT_EQ(s2.extra, a.st.extra);
  fs::remove_all(out);
}

TEST(TrainCheckpoint, ChangedSettingsAreRefusedByName) {
  Fixture a;
  const fs::path out = temp_dir("fingerprint");
  const fs::path dir = save_training_checkpoint(out, a.m, a.opt, a.st);
  try {
    load_training_checkpoint(dir, a.m, a.opt, a.st, {{"seed", 2}, {"batch_size", 4}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("seed (checkpoint: 1, now: 2)"), std::string::npos) << e.what();
  }
  // A setting only the checkpoint has (a multi-rank run's "ranks", resumed on one process) is named too.
  try {
    load_training_checkpoint(dir, a.m, a.opt, a.st, {{"seed", 1}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("batch_size (checkpoint: 4, now: absent)"), std::string::npos) << e.what();
  }
  fs::remove_all(out);
}

// The commands pass their own state's fingerprint as the expected one (resume_from_latest(out,
// m, opt, st, st.fingerprint, ...)); loading must compare against it before overwriting it.
TEST(TrainCheckpoint, ExpectedFingerprintMayBeTheStatesOwn) {
  Fixture a;
  const fs::path out = temp_dir("fingerprint_alias");
  save_training_checkpoint(out, a.m, a.opt, a.st);
  TrainerState st;
  st.fingerprint = {{"seed", 2}, {"batch_size", 4}};
  EXPECT_THROW(resume_from_latest(out, a.m, a.opt, st, st.fingerprint, 100, std::cout), InputError);
  fs::remove_all(out);
}

// Rewrites one file of a checkpoint and its manifest entry, as a crafted checkpoint would.
void rewrite_with_manifest(const fs::path& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir / name, std::ios::binary) << bytes;
  nlohmann::json manifest;
  std::ifstream(dir / "manifest.json") >> manifest;
  manifest["files"][name] = {{"bytes", bytes.size()},
                             {"crc32", crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size())}};
  std::ofstream(dir / "manifest.json") << manifest.dump(2);
}

TEST(TrainCheckpoint, CraftedStepsAreRefused) {
  Fixture a;
  const fs::path out = temp_dir("crafted");
  const fs::path dir = save_training_checkpoint(out, a.m, a.opt, a.st);
  nlohmann::json state;
  std::ifstream(dir / "trainer_state.json") >> state;
  TrainerState st;
  for (int64_t step : {-3, 6, 1000000}) {  // not the directory's step
    state["global_step"] = step;
    rewrite_with_manifest(dir, "trainer_state.json", state.dump());
    try {
      load_training_checkpoint(dir, a.m, a.opt, st, a.st.fingerprint);
      FAIL() << step;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("is not the step of its directory"), std::string::npos) << e.what();
    }
  }
  // A checkpoint past the run's last step (a resumed run would train no step and save it as final).
  state["global_step"] = 7;
  rewrite_with_manifest(dir, "trainer_state.json", state.dump());
  try {
    resume_from_latest(out, a.m, a.opt, st, a.st.fingerprint, 5, std::cout);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("step 7 is past the run's 5 steps"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(resume_from_latest(out, a.m, a.opt, st, a.st.fingerprint, 7, std::cout));
  fs::remove_all(out);
}

// Overflowed AdamW moments (the weights still finite) are never written, and a checkpoint holding
// them is refused on load.
TEST(TrainCheckpoint, NonFiniteMomentsAreNeitherSavedNorLoaded) {
  Fixture a;
  const fs::path out = temp_dir("moments");
  const fs::path good = save_training_checkpoint(out, a.m, a.opt, a.st);
  a.opt.second_moment()[3] = std::numeric_limits<float>::infinity();
  a.st.global_step = 8;
  try {
    save_training_checkpoint(out, a.m, a.opt, a.st);
    FAIL();
  } catch (const NumericError& e) {
    EXPECT_NE(std::string(e.what()).find("1 values of the optimizer's exp_avg_sq are NaN or Inf"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(latest_checkpoint(out), good);
  // The same state written by hand, with a manifest to match, is refused when read.
  std::vector<float> m1(a.opt.first_moment().begin(), a.opt.first_moment().end());
  std::vector<float> m2(a.opt.second_moment().begin(), a.opt.second_moment().end());
  const int64_t n = static_cast<int64_t>(m1.size());
  write_safetensors(good / "optimizer.safetensors",
                    {{"exp_avg", DType::F32, {n}, m1.data()}, {"exp_avg_sq", DType::F32, {n}, m2.data()}},
                    {{"step", "1"}});
  std::ifstream f(good / "optimizer.safetensors", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  rewrite_with_manifest(good, "optimizer.safetensors", bytes);
  TrainerState st;
  try {
    load_training_checkpoint(good, a.m, a.opt, st, a.st.fingerprint);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer.safetensors: 1 values of the optimizer's exp_avg_sq"),
              std::string::npos) << e.what();
  }
  fs::remove_all(out);
}

TEST(TrainCheckpoint, CorruptionAndTruncationNameTheFile) {
  Fixture a;
  for (const char* victim : {"optimizer.safetensors", "model.safetensors", "trainer_state.json"}) {
    for (bool truncate : {false, true}) {
      const fs::path out = temp_dir(std::string("corrupt_") + victim);
      const fs::path dir = save_training_checkpoint(out, a.m, a.opt, a.st);
      const fs::path f = dir / victim;
      if (truncate) {
        fs::resize_file(f, fs::file_size(f) - 3);
      } else {
        std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
        io.seekg(static_cast<std::streamoff>(fs::file_size(f) / 2));
        char c;
        io.get(c);
        io.seekp(static_cast<std::streamoff>(fs::file_size(f) / 2));
        io.put(static_cast<char>(c ^ 0x20));
      }
      try {
        load_training_checkpoint(dir, a.m, a.opt, a.st, a.st.fingerprint);
        ADD_FAILURE() << victim << " damage not detected";
      } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find(f.string()), std::string::npos) << e.what();
      }
      fs::remove_all(out);
    }
  }
}

TEST(TrainCheckpoint, KeepsOnlyTheNewest) {
  Fixture a;
  const fs::path out = temp_dir("limit");
  for (int s = 1; s <= 5; ++s) {
    a.st.global_step = s;
    save_training_checkpoint(out, a.m, a.opt, a.st, /*keep_last=*/2);
  }
  EXPECT_FALSE(fs::exists(out / "checkpoint-3"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-4"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-5"));
  fs::remove_all(out);
}

// A child process saves checkpoints in a loop and is killed with SIGKILL at a random moment,
// 30 times. Every time, the newest committed checkpoint must verify and load; abandoned
// temporary directories are cleaned up and never chosen. The first kill waits for a committed
// save (a loaded machine may take longer than the random delay to make one), so every trial
// has one to load.
TEST(TrainCheckpoint, KillDuringSaveNeverLeavesAValidLookingBadCheckpoint) {
  const fs::path out = temp_dir("kill");
  Rng rng(42);
  int loaded = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      Fixture a;
      for (int64_t s = 1000 * trial + 1;; ++s) {
        a.st.global_step = s;
        save_training_checkpoint(out, a.m, a.opt, a.st, /*keep_last=*/2);
      }
    }
    auto committed = [&] {
      std::error_code ec;  // the child may not have made the directory yet
      for (const auto& e : fs::directory_iterator(out, ec))
        if (e.path().filename().string().starts_with("checkpoint-")) return true;
      return false;
    };
    for (int waited_ms = 0; trial == 0 && waited_ms < 30000 && !committed(); ++waited_ms)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng.below(30000)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (auto latest = latest_checkpoint(out)) {
      Fixture b;
      EXPECT_NO_THROW(load_training_checkpoint(*latest, b.m, b.opt, b.st, b.st.fingerprint)) << *latest;
      ++loaded;
    }
    for (const auto& e : fs::directory_iterator(out))
      EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
  }
  EXPECT_EQ(loaded, 30);
  fs::remove_all(out);
}

}  // namespace
}  // namespace rlhf
