// TRL's tokenization conventions, against the ids TRL 1.16's SFTTrainer, KTOTrainer and
// RewardTrainer built from the same rows (reference/make_trl_tokenization_fixtures.py): no EOS
// after a rendered chat turn, EOS after a plain-text completion, and the completion starting at
// the prefix that prompt and prompt + completion share, so a token spanning the seam is trained
// on. The DPO rows and their training are replayed in tests/train/test_trl_replay.cpp.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "data/collate_text.h"
#include "data_test_util.h"
#include "train/offline_data.h"

namespace rlhf {
namespace {

using namespace rlhf::testing;
using nlohmann::json;

const fs::path kDir = fs::path(RLHF_FIXTURES_DIR) / "trl_tokens";

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

std::vector<json> read_rows(const fs::path& p) {
  std::ifstream in(p);
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

// `rows` rewritten by `f` into a JSONL file of the scratch directory.
template <class F>
fs::path rewrite(const std::vector<json>& rows, const std::string& name, F f) {
  std::string text;
  for (size_t i = 0; i < rows.size(); ++i) text += f(rows[i], i).dump() + "\n";
  return write_file(scratch_dir() / name, text);
}

std::vector<int32_t> ids(const json& j) { return j.get<std::vector<int32_t>>(); }

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class TrlTokenization : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    text_ = load_text_side(kDir / "model");
    rows_ = read_rows(kDir / (GetParam() + ".jsonl"));
    trl_ = read_json(kDir / "tokens.json")[GetParam()];
  }
  OfflineData build(OfflineDataKind kind, const fs::path& file) const {
    return build_offline_data(kind, file, text_->enc, OfflineDataOptions{});
  }
  std::unique_ptr<TextSide> text_;
  std::vector<json> rows_;
  json trl_;
};

TEST_P(TrlTokenization, SftPromptCompletionMatchesSftTrainer) {
  const fs::path f = rewrite(rows_, "sft.jsonl", [](const json& r, size_t) {
    return json{{"prompt", r["prompt"]}, {"completion", r["chosen"]}};
  });
  const OfflineData d = build(OfflineDataKind::sft, f);
  ASSERT_EQ(d.data.seqs.size(), trl_["sft"].size());
  for (size_t i = 0; i < d.data.seqs.size(); ++i) {
    const json& t = trl_["sft"][i];
    EXPECT_EQ(d.data.seqs[i].tokens, ids(t["input_ids"])) << "row " << i;
    const auto labels = ids(t["labels"]);
    const int64_t first_label = std::find_if(labels.begin(), labels.end(), [](int32_t v) { return v != -100; }) - labels.begin();
    EXPECT_EQ(d.data.seqs[i].prompt_len, first_label) << "row " << i;
  }
}

TEST_P(TrlTokenization, UnpairedMatchesKtoTrainer) {
  const fs::path f = rewrite(rows_, "kto.jsonl", [](const json& r, size_t i) {
    return json{{"prompt", r["prompt"]}, {"completion", r["chosen"]}, {"label", i % 2 == 0}};
  });
  const OfflineData d = build(OfflineDataKind::unpaired, f);
  ASSERT_EQ(d.data.seqs.size(), trl_["kto"].size());
  for (size_t i = 0; i < d.data.seqs.size(); ++i) {
    const json& t = trl_["kto"][i];
    EXPECT_EQ(d.data.seqs[i].tokens, concat(ids(t["prompt_ids"]), ids(t["completion_ids"]))) << "row " << i;
    EXPECT_EQ(d.data.seqs[i].prompt_len, static_cast<int64_t>(t["prompt_ids"].size())) << "row " << i;
  }
}

TEST_P(TrlTokenization, PairsMatchRewardTrainer) {
  const OfflineData d = build(OfflineDataKind::pairs, kDir / (GetParam() + ".jsonl"));
  ASSERT_EQ(d.data.seqs.size(), 2 * trl_["rm"].size());
  for (size_t i = 0; i < trl_["rm"].size(); ++i) {
    EXPECT_EQ(d.data.seqs[2 * i].tokens, ids(trl_["rm"][i]["chosen_ids"])) << "row " << i;
    EXPECT_EQ(d.data.seqs[2 * i + 1].tokens, ids(trl_["rm"][i]["rejected_ids"])) << "row " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, TrlTokenization, ::testing::Values("chat", "seam"));

}  // namespace
}  // namespace rlhf
