// Collation: from dataset records to engine batches.
//
//   text  --encode_example-->  TokenizedExample (prompt ids + one id vector per completion)
//         --truncate_example-> Sequences (prompt ++ completion, prompt_len marks the seam)
//         --pack_sequences-->  CollatedBatch (Batch + where each sequence and its scored tokens are)
//
// Guarantees (docs/reliability.md tests 24, 25):
//   - no prompt token is ever scored: a sequence's scored positions are completion tokens only;
//   - every kept sequence has at least one scored completion token; an example (a pair, a
//     ranking) with a side that has none is dropped whole and counted;
//   - the prompt/completion seam follows TRL (SeamPolicy::common_prefix): the completion starts
//     where the prompt's tokens and the tokens of prompt + completion first differ (over every
//     completion of the group), so a token that a merge makes span the seam is a completion
//     token, and a chat template that renders the prompt alone differently still trains on the
//     full rendering; each such example is counted (EncodeReport::seam_mismatches). The other
//     policies keep the prompt's ids whole: SeamPolicy::split tokenizes the completion on its own
//     when a merge crosses the seam, SeamPolicy::error stops; under both, a chat template that
//     renders earlier turns differently once the completion is appended is an error;
//   - the sequences of one group (chosen and rejected of a pair, the k completions of a prompt)
//     land in the same batch.
//
// Truncation follows TRL: max_prompt_length keeps the *last* prompt tokens, max_completion_length
// the first completion tokens; then each sequence (chosen and rejected independently) is cut to
// max_length — keep_start keeps the first max_length tokens and drops the example when the prompt
// alone fills max_length (TRL #6321); keep_end keeps the last max_length tokens, cutting the
// prompt from the left.
//
// Tokenization itself lives in src/text; this file only needs a TextEncoder (two callbacks), so
// it is testable with toy tokenizers. text_encoder() in collate_text.cpp adapts a Tokenizer.
//
// Example:
//   TokenizedExample ex = encode_example(enc, rec.prompt, {&rec.chosen, &rec.rejected}, {}, &erep, rec.line);
//   std::vector<Sequence> seqs;
//   truncate_example(ex, /*group=*/i, {.max_length = 512}, seqs, crep);
//   std::vector<CollatedBatch> batches = pack_sequences(seqs, {.seq_len = 512, .max_rows = 8});
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/records.h"
#include "data/token_documents.h"
#include "model/transformer.h"

namespace rlhf {

// ---------------------------------------------------------------------------------------------
// Text -> token ids

struct TextEncoder {
  // Token ids of `text`; add_special_tokens applies the tokenizer's post-processor (BOS/EOS).
  // max_tokens > 0: only the first max_tokens ids are needed; the encoder may return any prefix
  // of the full encoding that holds them (Tokenizer's EncodeOptions::max_tokens).
  std::function<std::vector<int32_t>(const std::string& text, bool add_special_tokens, size_t max_tokens)> encode;
  // The chat template: messages [{role, content}] -> text. Empty when the model has none.
  std::function<std::string(const nlohmann::json& messages, bool add_generation_prompt)> render;
  std::optional<int32_t> eos_id;
};

enum class SeamPolicy { common_prefix, split, error };
SeamPolicy parse_seam_policy(const std::string& s);  // "common_prefix" | "split" | "error"

// Which completions get eos_id appended (unless they already end with it). TRL's convention,
// standard_layout: plain-text completions only; a conversational completion ends as the chat
// template renders the assistant turn.
enum class CompletionEos { standard_layout, always, never };
CompletionEos parse_completion_eos(const std::string& s);  // "standard_layout" | "always" | "never"
bool completion_gets_eos(CompletionEos policy, bool conversational);

struct ExampleEncodeOptions {
  SeamPolicy seam = SeamPolicy::common_prefix;
  CompletionEos eos = CompletionEos::standard_layout;
  bool add_special_tokens = true;  // standard layout: post-processor specials on the prompt
  // What the truncation that follows keeps (truncation_budget), so that tokenization stops there
  // and a long row costs memory and time by the maximum length, not its own: completions need at
  // most `completion_tokens` ids, and a prompt of `prompt_tokens` ids or more is dropped. 0: whole.
  int64_t completion_tokens = 0, prompt_tokens = 0;
};

struct EncodeReport {
  // seam_mismatches: examples whose prompt ids are not a prefix of prompt + completion's.
  int64_t examples = 0, seam_mismatches = 0;
  nlohmann::json to_json() const;
};

// Prompt ids and one id vector per completion. Standard layout: encode(prompt) and
// encode(prompt + completion); conversational: render(prompt, add_generation_prompt=true) and
// render(prompt + completion), encoded without specials (templates write their own BOS).
// Errors (InputError) name `line`.
struct TokenizedExample {
  std::vector<int32_t> prompt;
  std::vector<std::vector<int32_t>> completions;
  int64_t line = 0;
};
TokenizedExample encode_example(const TextEncoder& enc, const Text& prompt, const std::vector<const Text*>& completions,
                                const ExampleEncodeOptions& opt, EncodeReport* report, int64_t line = 0);

// ---------------------------------------------------------------------------------------------
// Truncation

enum class TruncationMode { keep_start, keep_end };
TruncationMode parse_truncation_mode(const std::string& s);  // "keep_start" | "keep_end"

struct TruncateOptions {
  int64_t max_length = 0;             // tokens per sequence (prompt + completion); 0 = no limit
  int64_t max_prompt_length = 0;      // keeps the last N prompt tokens; 0 = no limit
  int64_t max_completion_length = 0;  // keeps the first N completion tokens; 0 = no limit
  TruncationMode mode = TruncationMode::keep_start;
};

// One sequence for the engine: tokens [0, prompt_len) are prompt, the rest completion.
struct Sequence {
  std::vector<int32_t> tokens;
  int64_t prompt_len = 0;
  int64_t group = 0;  // example id: sequences of one group are packed into one batch
  int32_t index = 0;  // completion index in the group (pairs: 0 = chosen, 1 = rejected)
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  // Completion tokens with a predecessor in the sequence: the positions that are scored.
  int64_t n_scored() const { return std::max<int64_t>(0, size() - std::max<int64_t>(prompt_len, 1)); }
};

struct CollateReport {
  int64_t examples = 0, kept = 0;
  int64_t dropped_prompt_too_long = 0;  // keep_start and the prompt alone fills max_length
  int64_t dropped_no_completion = 0;    // a completion with no scorable token left
  int64_t truncated_prompts = 0;        // examples whose prompt lost tokens
  int64_t truncated_sequences = 0;      // sequences cut by max_length / max_completion_length
  nlohmann::json to_json() const;
};

// `opt` with the token budgets that truncation by `t` leaves: completions keep at most the first
// max_completion_length ids, and under keep_start at most max_length; without max_prompt_length,
// keep_start drops a prompt of max_length ids. keep_end needs the whole completion.
ExampleEncodeOptions with_truncation_budget(ExampleEncodeOptions opt, const TruncateOptions& t);

// Appends one Sequence per completion and returns true, or returns false (counted) when the
// example must be dropped.
bool truncate_example(const TokenizedExample& ex, int64_t group, const TruncateOptions& opt,
                      std::vector<Sequence>& out, CollateReport& report);

// ---------------------------------------------------------------------------------------------
// Packing

struct PackOptions {
  int64_t seq_len = 1024;  // T: tokens per row when packing; the longest row allowed otherwise
  int64_t max_rows = 8;    // B: rows per batch (token budget B * T)
  bool packing = true;     // false: one sequence per row, rows padded to the batch's longest
  int64_t pad_multiple = 1;  // without packing: round T up to a multiple of this
  int32_t pad_id = 0;
  bool head_at_last = false;  // put each sequence's last token in Batch::head_at (reward models)
};

struct SequenceSpan {
  int64_t group = 0;
  int32_t index = 0;
  int64_t row = 0, start = 0, length = 0, prompt_len = 0;
  int64_t scored_begin = 0, scored_end = 0;  // range of Batch::scored holding its completion tokens
  int64_t head = -1;                         // index in Batch::head_at, or -1
};

struct CollatedBatch {
  Batch batch;
  std::vector<SequenceSpan> spans;  // in input order
  int64_t real_tokens = 0;          // non-padding tokens
};

// Packs sequences (consecutive sequences with the same group form one unit) in input order,
// first-fit over the rows of the open batch. A sequence longer than seq_len, or a group that does
// not fit into one empty batch, is an InputError.
std::vector<CollatedBatch> pack_sequences(const std::vector<Sequence>& seqs, const PackOptions& opt);

// Rows packed beforehand (token documents, pack_documents) as one batch, laid out as given: row k
// is the one span of group groups[k], and its scored tokens are its within-document next tokens.
CollatedBatch collate_rows(const std::vector<const PackedRow*>& rows, const std::vector<int64_t>& groups, int64_t T);

}  // namespace rlhf
