// Training files -> OfflineDataset (offline_trainer.h): the four layouts the offline objectives
// train on, read (data/records.h), encoded with the chat template and truncated (data/collate.h).
//
//   sft       one sequence per example (prompt/completion, or text / messages trained on whole)
//   pairs     chosen, rejected per prompt; the optional margin per group
//   unpaired  KTO: the completion and its label; with `kto_mismatched` also a second sequence,
//             the completion of another row, for KTO's reference point (as TRL's KTOTrainer:
//             within each chunk of `kto_chunk` rows in file order, row j gets row j-1's
//             completion and the chunk's first row its last row's)
//   ranked    the completions in rank order (index 0 = best) with their label values: scores,
//             ties kept equal, or minus the rank of an explicit ranking
//   documents token-id documents packed into rows of the row length (rlhf lm), one group per
//             row; built by document_rows_data, not from a text file
//
// Groups are numbered in file order of the rows kept.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <limits>
#include <string>
#include <vector>

#include "data/collate.h"
#include "data/records.h"
#include "data/token_documents.h"
#include "train/offline_trainer.h"

namespace rlhf {

enum class OfflineDataKind { sft, pairs, unpaired, ranked, documents };

// "examples", "pairs", "rankings" or "rows": what one group is, for summaries.
const char* offline_group_noun(OfflineDataKind kind);

struct OfflineDataOptions {
  ReadOptions read;
  ExampleEncodeOptions encode;
  TruncateOptions truncate;
  bool kto_mismatched = false;  // unpaired: add the mismatched completion of each row
  int64_t kto_chunk = 1;        // unpaired: the rows per chunk the mismatched pairs stay within
};

struct OfflineData {
  OfflineDataset data;
  EncodeReport encode;
  CollateReport collate;
  ReadReport read;
  int64_t ties = 0;  // ranked rows with tied scores
};

// InputError when no row is left after reading and truncation.
OfflineData build_offline_data(OfflineDataKind kind, const std::filesystem::path& path, const TextEncoder& enc,
                               const OfflineDataOptions& opt);

// Documents packed into rows of `seq_len` tokens (pack_documents); `read` counts the documents.
// InputError when they fill fewer than `min_rows` rows (a micro-batch).
OfflineData document_rows_data(const std::vector<TokenDocument>& docs, int64_t seq_len, int64_t min_rows);

// The longest sequence that every model in `model_dirs` takes (ModelConfig::max_sequence_length
// of each config.json; empty paths are skipped) and the file that sets it ("" when none does).
struct SequenceLimit {
  int64_t tokens = std::numeric_limits<int64_t>::max();
  std::string source;
};
SequenceLimit model_sequence_limit(const std::vector<std::filesystem::path>& model_dirs);

// Caps the truncation length (0, no limit, included) and the row length at `limit` where they ask
// for more, with a note on `log`: a learned position table ends there, so longer sequences are
// truncated or dropped by the truncation policy like any other, never run past the table.
void cap_sequence_length(TruncateOptions& truncate, PackOptions& pack, const SequenceLimit& limit, std::ostream& log);

// CRC-32 of the tokenized data (tokens and prompt boundaries): the data fingerprint of manifests,
// resume checks and the reference cache.
uint32_t offline_data_fingerprint(const OfflineDataset& data);

}  // namespace rlhf
