// Training files -> OfflineDataset (train/offline_data.h) with a character-level encoder, and
// the reference log-prob cache (train/reference_cache.h).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../model/tiny_models.h"
#include "model/checkpoint.h"
#include "train/offline_data.h"
#include "train/reference_cache.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("rlhf_offdata_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// One id per character, in [1, 50) (the tiny models' vocabulary); no specials, EOS 0.
int32_t char_id(unsigned char c) { return static_cast<int32_t>(c % 49 + 1); }

TextEncoder char_encoder() {
  TextEncoder enc;
  enc.encode = [](const std::string& text, bool, size_t) {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(char_id(c));
    return ids;
  };
  enc.eos_id = 0;
  return enc;
}

fs::path write(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

// The completion ids of a sequence without the appended EOS.
std::vector<int32_t> completion(const Sequence& s) {
  return std::vector<int32_t>(s.tokens.begin() + s.prompt_len, s.tokens.end() - 1);
}

TEST(OfflineData, KtoMismatchedCompletionsStayWithinChunks) {
  const fs::path dir = fresh_dir("kto");
  std::string rows;
  for (char c : std::string("abcde"))
    rows += std::string(R"({"prompt": "q", "completion": ")") + c + R"(", "label": )" + (c == 'b' ? "false" : "true") + "}\n";
  OfflineDataOptions opt;
  opt.kto_mismatched = true;
  opt.kto_chunk = 2;
  const OfflineData d = build_offline_data(OfflineDataKind::unpaired, write(dir, "u.jsonl", rows), char_encoder(), opt);
  ASSERT_EQ(d.data.n_groups(), 5);
  ASSERT_EQ(d.data.seqs.size(), 10u);
  // Chunks {a, b}, {c, d}, {e}: a chunk's first row takes its last row's completion, the others
  // their predecessor's; a chunk of one row pairs with itself.
  const std::string mismatched = "badce";
  for (int g = 0; g < 5; ++g) {
    EXPECT_EQ(completion(d.data.seqs[2 * g]), std::vector<int32_t>{char_id("abcde"[g])});
    EXPECT_EQ(completion(d.data.seqs[2 * g + 1]), std::vector<int32_t>{char_id(mismatched[g])}) << g;
  }
  EXPECT_EQ(d.data.group_desirable, (std::vector<uint8_t>{1, 0, 1, 1, 1}));
  opt.kto_mismatched = false;  // apo_zero_unpaired: the completion alone
  EXPECT_EQ(build_offline_data(OfflineDataKind::unpaired, dir / "u.jsonl", char_encoder(), opt).data.seqs.size(), 5u);
  fs::remove_all(dir);
}

TEST(OfflineData, RankedRowsInRankOrderWithTiesKept) {
  const fs::path dir = fresh_dir("ranked");
  const fs::path p = write(dir, "r.jsonl",
                           R"({"prompt": "q", "completions": ["x", "y", "z"], "scores": [1, 3, 1]})" "\n"
                           R"({"prompt": "q", "completions": ["x", "y", "z"], "ranking": [2, 0, 1]})" "\n");
  const OfflineData d = build_offline_data(OfflineDataKind::ranked, p, char_encoder(), {});
  ASSERT_EQ(d.data.n_groups(), 2);
  EXPECT_EQ(d.ties, 1);
  EXPECT_EQ(d.data.group_rank_values[0], (std::vector<double>{3, 1, 1}));
  EXPECT_EQ(d.data.group_rank_values[1], (std::vector<double>{0, -1, -2}));
  const std::string order = "yxzzxy";  // by score (stable for the tie), then by the ranking
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(completion(d.data.seqs[i]), std::vector<int32_t>{char_id(order[i])}) << i;
  fs::remove_all(dir);
}

TEST(OfflineData, NoUsableRowIsAnError) {
  const fs::path dir = fresh_dir("empty");
  OfflineDataOptions opt;
  opt.truncate.max_length = 2;  // the prompt alone fills every row
  EXPECT_THROW(build_offline_data(OfflineDataKind::pairs,
                                  write(dir, "p.jsonl", R"({"prompt": "long prompt", "chosen": "a", "rejected": "b"})" "\n"),
                                  char_encoder(), opt),
               InputError);
  fs::remove_all(dir);
}

TEST(ReferenceCache, ComputedOnceThenReadUntilTheDataChanges) {
  const fs::path dir = fresh_dir("cache");
  Transformer ref(test::tiny_config("llama"), ModelHeads{});
  ref.init_random(4);
  save_checkpoint(ref, dir / "ref");
  const fs::path p = write(dir, "p.jsonl", R"({"prompt": "ab", "chosen": "c", "rejected": "d"})" "\n"
                                           R"({"prompt": "ef", "chosen": "g", "rejected": "h"})" "\n");
  const OfflineData d = build_offline_data(OfflineDataKind::pairs, p, char_encoder(), {});
  PackOptions pack;
  pack.seq_len = 16;
  std::ostringstream log;
  fs::create_directories(dir / "out");
  Transformer loaded = load_checkpoint(dir / "ref", ModelHeads{});
  const auto reference = [&]() -> Transformer& { return loaded; };
  const std::vector<double> computed = cached_reference_logps(dir / "out", dir / "ref", d.data, pack, log, reference);
  const std::vector<double> cached = cached_reference_logps(dir / "out", dir / "ref", d.data, pack, log, reference);
  EXPECT_EQ(cached, computed);
  EXPECT_EQ(computed, compute_reference_logps(ref, d.data, pack));
  OfflineDataset other = d.data;
  other.seqs.pop_back();
  other.seqs.pop_back();
  EXPECT_EQ(cached_reference_logps(dir / "out", dir / "ref", other, pack, log, reference).size(), 2u);
  const std::string out = log.str();
  EXPECT_EQ(out.find("reference log-probs: cached in"), out.rfind("reference log-probs: cached in"))
      << "only the second call reads the cache:\n" << out;
  EXPECT_NE(out.find("computing for 4 sequences"), std::string::npos) << out;
  EXPECT_NE(out.find("computing for 2 sequences"), std::string::npos) << out;
  fs::remove_all(dir);
}

// A damaged cache (a flipped byte in the values, a truncated file) is recomputed and rewritten,
// never used; so is one whose reference weights were saved again.
TEST(ReferenceCache, DamagedOrStaleCachesAreRecomputed) {
  const fs::path dir = fresh_dir("cache_damaged");
  Transformer ref(test::tiny_config("llama"), ModelHeads{});
  ref.init_random(4);
  save_checkpoint(ref, dir / "ref");
  const fs::path p = write(dir, "p.jsonl", R"({"prompt": "ab", "chosen": "c", "rejected": "d"})" "\n");
  const OfflineData d = build_offline_data(OfflineDataKind::pairs, p, char_encoder(), {});
  PackOptions pack;
  pack.seq_len = 16;
  fs::create_directories(dir / "out");
  Transformer loaded = load_checkpoint(dir / "ref", ModelHeads{});
  int computed = 0;
  const auto reference = [&]() -> Transformer& { ++computed; return loaded; };
  std::ostringstream log;
  const std::vector<double> want = cached_reference_logps(dir / "out", dir / "ref", d.data, pack, log, reference);
  const fs::path cache = dir / "out" / "ref_logps.safetensors";
  {  // the last byte is the last value's
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_EQ(cached_reference_logps(dir / "out", dir / "ref", d.data, pack, log, reference), want);
  EXPECT_EQ(computed, 2);
  EXPECT_NE(log.str().find("is damaged (the values do not match their checksum); recomputing"), std::string::npos)
      << log.str();
  fs::resize_file(cache, fs::file_size(cache) / 2);
  EXPECT_EQ(cached_reference_logps(dir / "out", dir / "ref", d.data, pack, log, reference), want);
  EXPECT_EQ(computed, 3);
  EXPECT_EQ(cached_reference_logps(dir / "out", dir / "ref", d.data, pack, log, reference), want);
  EXPECT_EQ(computed, 3) << "an intact cache is read";
  ref.init_random(5);  // the reference saved again, with other weights
  save_checkpoint(ref, dir / "ref");
  Transformer changed = load_checkpoint(dir / "ref", ModelHeads{});
  const auto other_reference = [&]() -> Transformer& { ++computed; return changed; };
  EXPECT_NE(cached_reference_logps(dir / "out", dir / "ref", d.data, pack, log, other_reference), want);
  EXPECT_EQ(computed, 4);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rlhf
