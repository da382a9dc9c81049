// Token-document reading (errors with file:line:column) and packing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/token_documents.h"
#include "tensor/error.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

fs::path write_tmp(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() / (std::to_string(::getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p;
}

TEST(TokenDocuments, ReadsOneDocumentPerLine) {
  const fs::path p = write_tmp("ok.txt", "1 2 3\n\n 4\t5 \r\n");
  const auto docs = read_token_documents(p, 10);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], (TokenDocument{1, 2, 3}));
  EXPECT_EQ(docs[1], (TokenDocument{4, 5}));
  fs::remove(p);
}

TEST(TokenDocuments, ErrorsNameFileLineAndColumn) {
  const fs::path p = write_tmp("bad.txt", "1 2\n3 12 4\n");
  try {
    read_token_documents(p, 10);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:2:3: token id 12 outside the vocabulary [0, 10)"),
              std::string::npos) << e.what();
  }
  const fs::path q = write_tmp("bad2.txt", "1 -x\n");
  EXPECT_THROW(read_token_documents(q, 10), InputError);
  fs::remove(p);
  fs::remove(q);
}

TEST(Packing, PacksWithoutCrossingDocumentsAndScoresOnlyWithinThem) {
  const std::vector<TokenDocument> docs = {{1, 2, 3}, {4, 5}, {6, 7, 8, 9, 10, 11, 12}};
  const auto rows = pack_documents(docs, 6, 0);
  ASSERT_EQ(rows.size(), 3u);  // [1 2 3 4 5 pad] [6..11] [12 pad...]
  EXPECT_EQ(rows[0].tokens, (std::vector<int32_t>{1, 2, 3, 4, 5, 0}));
  EXPECT_EQ(rows[0].positions, (std::vector<int32_t>{0, 1, 2, 0, 1, 0}));
  EXPECT_EQ(rows[0].seg_start, (std::vector<int32_t>{0, 0, 0, 3, 3, 5}));
  EXPECT_EQ(rows[0].scored, (std::vector<uint8_t>{0, 1, 1, 0, 1, 0}));
  EXPECT_EQ(rows[1].tokens, (std::vector<int32_t>{6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(rows[2].scored, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0}));  // a lone token predicts nothing
  const Batch b = batch_from_rows({&rows[0], &rows[1]}, 6);
  EXPECT_EQ(b.scored, (std::vector<int64_t>{1, 2, 4, 7, 8, 9, 10, 11}));
}

TEST(Synthetic, IsDeterministicAndInVocabulary) {
  const auto a = synthetic_token_documents(20, 5, 9, 30, 7), b = synthetic_token_documents(20, 5, 9, 30, 7);
  EXPECT_EQ(a, b);
  for (const auto& d : a) {
    EXPECT_GE(d.size(), 5u);
    EXPECT_LE(d.size(), 9u);
    for (int32_t t : d) EXPECT_TRUE(t >= 0 && t < 30);
  }
}

}  // namespace
}  // namespace rlhf
