// Documents of token ids for language-model training: read from a text file (one document
// per line, whitespace-separated ids) or generated procedurally, and packed into fixed-length
// rows without padding waste (several documents per row, attention kept within each).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "model/transformer.h"

namespace rlhf {

using TokenDocument = std::vector<int32_t>;

// Reads one document per non-empty line. Ids must be integers in [0, vocab_size); errors name
// file:line:column and the offending text.
std::vector<TokenDocument> read_token_documents(const std::filesystem::path& path, int64_t vocab_size);

// Procedural documents with a learnable rule — arithmetic progressions modulo the vocabulary
// with a stride from a small set — so that a few training steps visibly lower the loss.
std::vector<TokenDocument> synthetic_token_documents(int64_t n_docs, int64_t min_len, int64_t max_len,
                                                     int64_t vocab_size, uint64_t seed);

// One packed row: documents laid end to end, positions restarting at each document.
struct PackedRow {
  std::vector<int32_t> tokens, positions, seg_start;
  std::vector<uint8_t> scored;  // 1 for tokens with a predecessor in their own document
  int64_t padding = 0;          // tail tokens added by pad_to

  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  // Appends n ids as a segment of their own (positions from 0). Tokens at segment index
  // >= max(score_from, 1) are scored (the first token of a segment has no predecessor).
  void append(const int32_t* ids, int64_t n, int64_t score_from = 1);
  // Fills the row up to T tokens with `pad_id` in a segment of its own, never scored.
  void pad_to(int64_t T, int32_t pad_id);
};

// First-fit packing in input order into rows of exactly T tokens; a document longer than T is
// cut into pieces of T. Unused tail positions hold token `pad_id` in a segment of their own and
// are never scored.
std::vector<PackedRow> pack_documents(const std::vector<TokenDocument>& docs, int64_t T, int32_t pad_id = 0);

// Builds an engine batch from packed rows (every within-document next token is scored).
Batch batch_from_rows(const std::vector<const PackedRow*>& rows, int64_t T);

}  // namespace rlhf
