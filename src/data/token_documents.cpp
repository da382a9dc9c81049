#include "data/token_documents.h"

#include <algorithm>
#include <charconv>
#include <fstream>

#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf {

std::vector<TokenDocument> read_token_documents(const std::filesystem::path& path, int64_t vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string() + ": cannot open token file");
  std::vector<TokenDocument> docs;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    TokenDocument doc;
    size_t i = 0;
    while (i < line.size()) {
      if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      int64_t id = -1;
      auto [p, ec] = std::from_chars(line.data() + i, line.data() + j, id);
      const std::string where = path.string() + ":" + std::to_string(line_no) + ":" + std::to_string(i + 1);
      if (ec != std::errc() || p != line.data() + j)
        throw InputError(where + ": expected a token id (integer), got '" + line.substr(i, std::min<size_t>(j - i, 40)) + "'");
      if (id < 0 || id >= vocab_size)
        throw InputError(where + ": token id " + std::to_string(id) + " outside the vocabulary [0, " +
                         std::to_string(vocab_size) + ")");
      doc.push_back(static_cast<int32_t>(id));
      i = j;
    }
    if (!doc.empty()) docs.push_back(std::move(doc));
  }
  if (docs.empty()) throw InputError(path.string() + ": no documents (expected one line of token ids per document)");
  return docs;
}

std::vector<TokenDocument> synthetic_token_documents(int64_t n_docs, int64_t min_len, int64_t max_len,
                                                     int64_t vocab_size, uint64_t seed) {
  static constexpr int64_t strides[] = {1, 2, 3, 5, 7};
  Rng rng(seed, /*stream=*/3);
  std::vector<TokenDocument> docs(n_docs);
  for (auto& d : docs) {
    const int64_t len = min_len + static_cast<int64_t>(rng.below(max_len - min_len + 1));
    const int64_t stride = strides[rng.below(5)];
    int64_t tok = static_cast<int64_t>(rng.below(vocab_size));
    d.resize(len);
    for (auto& t : d) {
      t = static_cast<int32_t>(tok);
      tok = (tok + stride) % vocab_size;
    }
  }
  return docs;
}

void PackedRow::append(const int32_t* ids, int64_t n, int64_t score_from) {
  const int32_t start = static_cast<int32_t>(tokens.size());
  const int64_t first_scored = std::max<int64_t>(score_from, 1);
  for (int64_t i = 0; i < n; ++i) {
    tokens.push_back(ids[i]);
    positions.push_back(static_cast<int32_t>(i));
    seg_start.push_back(start);
    scored.push_back(i >= first_scored ? 1 : 0);
  }
}

void PackedRow::pad_to(int64_t T, int32_t pad_id) {
  const int32_t pad_start = static_cast<int32_t>(tokens.size());
  while (static_cast<int64_t>(tokens.size()) < T) {
    positions.push_back(static_cast<int32_t>(tokens.size()) - pad_start);
    tokens.push_back(pad_id);
    seg_start.push_back(pad_start);
    scored.push_back(0);
    ++padding;
  }
}

std::vector<PackedRow> pack_documents(const std::vector<TokenDocument>& docs, int64_t T, int32_t pad_id) {
  std::vector<PackedRow> rows;
  PackedRow cur;
  auto flush = [&] {
    if (cur.tokens.empty()) return;
    cur.pad_to(T, pad_id);
    rows.push_back(std::move(cur));
    cur = PackedRow{};
  };
  for (const auto& doc : docs) {
    for (size_t begin = 0; begin < doc.size(); begin += T) {
      const int64_t len = std::min<int64_t>(T, static_cast<int64_t>(doc.size() - begin));
      if (cur.size() + len > T) flush();
      cur.append(doc.data() + begin, len);
    }
  }
  flush();
  return rows;
}

Batch batch_from_rows(const std::vector<const PackedRow*>& rows, int64_t T) {
  Batch b;
  b.B = static_cast<int64_t>(rows.size());
  b.T = T;
  for (int64_t r = 0; r < b.B; ++r) {
    const PackedRow& row = *rows[r];
    b.tokens.insert(b.tokens.end(), row.tokens.begin(), row.tokens.end());
    b.positions.insert(b.positions.end(), row.positions.begin(), row.positions.end());
    b.seg_start.insert(b.seg_start.end(), row.seg_start.begin(), row.seg_start.end());
    for (int64_t t = 0; t < T; ++t)
      if (row.scored[t]) b.scored.push_back(r * T + t);
  }
  return b;
}

}  // namespace rlhf
