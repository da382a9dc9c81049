// The `rlhf data` tools as library functions: each reads JSONL (plain, .gz, .zst) as a stream,
// writes JSONL (compressed by the output's extension) through a temporary file renamed into
// place, and returns a JSON summary that the CLI writes to --summary and renders for humans.
//
//   stats         length distributions, chosen-longer rate, duplicates, ties, degenerate pairs
//   clean         drop empty / identical / over-long rows and exact or near duplicates
//   decontaminate n-gram overlap against benchmark prompts: report and remove matches
//   binarize      ranked or scored multi-completion rows -> preference pairs
//   noise         swap chosen/rejected on an exact, seeded fraction of the pairs
//   pairs         prompt + sampled completions with scalar scores -> preference pairs
//
// Outputs are in TRL's preference layout {"prompt", "chosen", "rejected"} (+ score_chosen,
// score_rejected, margin when known), unless a tool keeps the original rows. Every random
// choice is drawn from Rng(seed, line) of the input row, so outputs depend only on the seed and
// the input — not on threads or on which rows were dropped before.
//
// Lengths are whitespace-separated words unless a LengthCounter over a tokenizer is given; the
// summary names the unit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "data/records.h"

namespace rlhf {

struct LengthCounter {
  std::string unit = "words";
  std::function<int64_t(const std::string&)> count;  // empty: whitespace-separated words
  int64_t operator()(const Text& t) const;
};

struct TextEncoder;

struct StatsOptions {
  ReadOptions read;
  LengthCounter length;
  int hist_bins = 10;
  // When set, lengths are the token counts training sees (collate.h encode_example: prompt with
  // the tokenizer's specials or the chat template's generation prompt, completions with EOS),
  // and rows that cannot be encoded (e.g. a template that rewrites earlier turns) are counted.
  const TextEncoder* encoder = nullptr;
};
nlohmann::ordered_json data_stats(const std::filesystem::path& in, const StatsOptions& opt);

struct CleanOptions {
  ReadOptions read;
  LengthCounter length;
  bool drop_empty = true, drop_identical = true;
  int64_t max_length = 0;          // prompt + longer completion, in length units; 0 = no limit
  bool dedupe_exact = true;
  std::string near = "none";       // none | normalized | minhash
  double threshold = 0.8;          // minhash: estimated Jaccard similarity at or above = duplicate
  int num_perm = 64, shingle = 5;  // minhash: permutations, words per shingle
  std::string dedupe_on = "pair";  // pair: prompt + chosen + rejected | prompt: one row per prompt
  uint64_t seed = 0;
  bool keep_original = false;      // write input rows unchanged instead of TRL's layout
};
nlohmann::ordered_json data_clean(const std::filesystem::path& in, const std::filesystem::path& out,
                                  const CleanOptions& opt);

struct DecontaminateOptions {
  ReadOptions read;
  std::string kind = "preference";   // preference | sft | prompt | ranked | unpaired
  std::filesystem::path benchmark;   // JSONL (with `field`) or plain text, one prompt per line
  std::string field;                 // JSONL path: question, turns[*], turns[*].content, ... ("" = auto)
  int ngram = 13;                    // words per n-gram
  int min_words = 6;                 // shorter benchmark prompts only match as a whole
  std::string check = "prompt";      // prompt | all (completions too)
  bool keep_original = false;        // preference data: write input rows unchanged
  std::filesystem::path matches;     // JSONL report of every match ("" = none)
  int64_t max_listed = 20;           // matches listed in the summary
};
nlohmann::ordered_json data_decontaminate(const std::filesystem::path& in, const std::filesystem::path& out,
                                          const DecontaminateOptions& opt);

struct BinarizeOptions {
  ReadOptions read;                  // read.score_field picks UltraFeedback's score
  std::string strategy = "best-vs-random";  // best-vs-random | best-vs-worst | all-pairs
  double min_gap = 0.0;              // required score difference (ties are never paired)
  int64_t max_pairs_per_prompt = 0;  // all-pairs: seeded subset when more; 0 = all
  uint64_t seed = 0;
  bool conversational = false;       // write prompt/chosen/rejected as message lists
};
nlohmann::ordered_json data_binarize(const std::filesystem::path& in, const std::filesystem::path& out,
                                     const BinarizeOptions& opt);

struct NoiseOptions {
  ReadOptions read;
  double fraction = 0.1;  // exactly round(fraction * rows) pairs are flipped
  uint64_t seed = 0;
  bool mark = false;      // add "label_flipped": true/false to each row
};
nlohmann::ordered_json data_noise(const std::filesystem::path& in, const std::filesystem::path& out,
                                  const NoiseOptions& opt);

struct PairsOptions {
  ReadOptions read;                 // read.score_field: per-sample score column ("" = score, reward)
  std::string strategy = "best-vs-worst";  // best-vs-worst | all-pairs | best-vs-random
  double min_gap = 0.0;
  int64_t max_pairs_per_prompt = 0;
  uint64_t seed = 0;
};
nlohmann::ordered_json data_pairs(const std::filesystem::path& in, const std::filesystem::path& out,
                                  const PairsOptions& opt);

// A short human-readable rendering of any tool's summary (stats: with ASCII histograms).
std::string summary_text(const nlohmann::ordered_json& summary);

}  // namespace rlhf
