// Dataset records in TRL's layouts, read from JSONL (plain, .gz, .zst), and their readers.
//
// TRL's two layouts: "standard" — text fields are strings; "conversational" — text fields are
// lists of {"role", "content"} messages. Dataset kinds (docs/datasets.md, TRL's dataset formats):
//   sft        : "text" | "messages" | "prompt" + "completion"
//   preference : "prompt" (optional: implicit prompt = common prefix) + "chosen" + "rejected"
//                (+ optional "margin")
//   unpaired   : "prompt" + "completion" + "label" (bool)              — KTO
//   ranked     : "prompt" + "completions" + ("ranking" | "scores")     — Plackett–Luce, binarize
//   prompt     : "prompt" (+ any other fields kept in `extra`)         — online RL
// Every bad row gives InputError "file:line: field: what was expected", or is skipped and
// counted when ReadOptions::skip_bad_rows is set (docs/reliability.md tests 21–23).
//
// Besides TRL's layouts the readers recognise the exports of docs/datasets.md:
//   preference : H4/allenai ultrafeedback_binarized (prompt string + full chosen/rejected
//                conversations -> the common leading messages become the prompt; score_chosen/
//                score_rejected), argilla ultrafeedback-binarized-preferences (instruction,
//                chosen_response, rejected_response, *_avg_rating) and its -cleaned variant
//                (chosen-rating, rejected-rating), Anthropic hh-rlhf transcripts (prompt = the
//                common prefix cut back to the last "\n\nAssistant:"), SHP (history, human_ref_A/B,
//                labels, score_A/B), HelpSteer2 preference (response_1/2, preference_strength;
//                strength 0 is a tie, dropped and counted), summarize_from_feedback comparisons
//                (info, summaries, choice; TRL's TL;DR prompt template).
//   ranked     : raw UltraFeedback (instruction + completions[].response, scored by
//                ReadOptions::score_field), Nectar (answers[].answer with rank 1 = best).
// Implicit prompts follow TRL's data_utils.extract_prompt: the longest common prefix of chosen
// and rejected (characters, backed off before a space; or whole messages), except that a
// difference at index 0 never backs off (TRL reads index -1 there) and a prefix never splits a
// UTF-8 character.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/error.h"

namespace rlhf {

struct Message {
  std::string role, content;
  bool operator==(const Message&) const = default;
};

// A text field: a plain string (standard layout) or a conversation (conversational layout).
struct Text {
  bool is_chat = false;
  std::string text;               // standard
  std::vector<Message> messages;  // conversational
  bool operator==(const Text&) const = default;
};

// Text helpers. text_flat joins the contents of a conversation with "\n" (roles dropped): the
// text that length statistics, n-grams and near-duplicate checks look at. text_key is exact and
// role-aware (for exact duplicate detection).
nlohmann::ordered_json text_to_json(const Text& t);
std::string text_flat(const Text& t);
std::string text_key(const Text& t);
bool text_blank(const Text& t);  // empty, whitespace only, or a conversation without content
Text text_concat(const Text& prompt, const Text& completion);  // same layout required
// hh-rlhf transcript "\n\nHuman: a\n\nAssistant: b" -> [{user, a}, {assistant, b}]; false when the
// text is not such a transcript.
bool split_hh_transcript(const std::string& s, std::vector<Message>& out);

struct SftRecord {
  std::optional<Text> prompt;  // prompt/completion layout; absent for "text"/"messages"
  Text completion;             // or the whole text / conversation
  int64_t line = 0;
};

struct PreferenceRecord {
  Text prompt;  // explicit, or extracted as the longest common prefix (TRL's extract_prompt)
  Text chosen, rejected;
  std::optional<double> margin;
  std::optional<double> score_chosen, score_rejected;
  int64_t line = 0;
};

struct UnpairedRecord {
  Text prompt, completion;
  bool label = false;
  int64_t line = 0;
};

struct RankedRecord {
  Text prompt;
  std::vector<Text> completions;
  std::vector<double> scores;     // per completion (higher is better); empty when ranked
  std::vector<int64_t> ranking;   // completion indices, best first; empty when scored
  int64_t line = 0;
};

struct PromptRecord {
  Text prompt;
  nlohmann::json extra;  // every other field of the row (reference answers, ids, ...)
  int64_t line = 0;
};

struct ReadOptions {
  std::map<std::string, std::string> columns;  // our field name -> the file's column name
  bool skip_bad_rows = false;                  // skip and count instead of failing
  int64_t max_skipped = 1000;                  // fail anyway beyond this many skipped rows
  bool drop_degenerate = true;                 // empty/whitespace completions, chosen == rejected
  // Keep degenerate rows (no drop, no error): for tools that count them themselves (stats).
  bool keep_degenerate = false;
  // Raw UltraFeedback: "overall_score" (default), "fine-grained_score", or "mean" (mean of the
  // numeric aspect Ratings, "N/A" excluded). Generic rows: the scores column when the row has it.
  std::string score_field;
  bool hh_as_messages = false;                 // hh-rlhf transcripts -> conversations (TRL's script)
  size_t max_line_bytes = size_t(256) << 20;   // longer lines are bad rows
};

struct ReadReport {
  int64_t rows = 0, kept = 0, skipped_bad = 0, dropped_empty = 0, dropped_identical = 0;
  std::vector<std::string> first_errors;  // up to 10 messages of skipped rows
  // Further counts by name: "dropped_tie" (HelpSteer2 strength 0), "hh_diverged_early" (hh-rlhf
  // pairs that differ before the last Assistant turn), "unscored_completions",
  // "empty_completions", "too_few_completions" (ranked rows left with < 2), ...
  std::map<std::string, int64_t> notes;
  nlohmann::json to_json() const;
};

// Thrown by row parsers inside for_each_jsonl_object's callback: the message gets the
// "file:line: " prefix, and the row is skipped and counted in skip mode.
struct RowError : InputError {
  using InputError::InputError;
};

// Streaming line access to JSONL, plain or compressed (by extension .gz / .zst): calls `fn`
// with each physical line (1-based number) and its parsed object; a line that is not a JSON
// object fails with file:line:column (or is skipped and counted, per options).
void for_each_jsonl_object(const std::filesystem::path& path, const ReadOptions& opt, ReadReport& report,
                           const std::function<void(int64_t line, const nlohmann::json& row)>& fn);

// Row parsers (throw RowError; nullopt: a degenerate row, dropped and counted in `report`).
std::optional<SftRecord> parse_sft_row(const nlohmann::json& row, const ReadOptions& opt, ReadReport& report);
std::optional<PreferenceRecord> parse_preference_row(const nlohmann::json& row, const ReadOptions& opt,
                                                     ReadReport& report);
std::optional<UnpairedRecord> parse_unpaired_row(const nlohmann::json& row, const ReadOptions& opt,
                                                 ReadReport& report);
std::optional<RankedRecord> parse_ranked_row(const nlohmann::json& row, const ReadOptions& opt, ReadReport& report);
std::optional<PromptRecord> parse_prompt_row(const nlohmann::json& row, const ReadOptions& opt, ReadReport& report);

// Streaming readers: `fn` gets each kept record in file order.
void for_each_sft(const std::filesystem::path& path, const ReadOptions& opt, ReadReport& report,
                  const std::function<void(SftRecord&&)>& fn);
void for_each_preference(const std::filesystem::path& path, const ReadOptions& opt, ReadReport& report,
                         const std::function<void(PreferenceRecord&&)>& fn);
void for_each_unpaired(const std::filesystem::path& path, const ReadOptions& opt, ReadReport& report,
                       const std::function<void(UnpairedRecord&&)>& fn);
void for_each_ranked(const std::filesystem::path& path, const ReadOptions& opt, ReadReport& report,
                     const std::function<void(RankedRecord&&)>& fn);
void for_each_prompt(const std::filesystem::path& path, const ReadOptions& opt, ReadReport& report,
                     const std::function<void(PromptRecord&&)>& fn);

// TRL layout of a preference record: {"prompt", "chosen", "rejected"} (+ margin, score_chosen,
// score_rejected when present).
nlohmann::ordered_json preference_to_json(const PreferenceRecord& r);

std::vector<SftRecord> read_sft(const std::filesystem::path& path, const ReadOptions& opt = {},
                                ReadReport* report = nullptr);
std::vector<PreferenceRecord> read_preferences(const std::filesystem::path& path, const ReadOptions& opt = {},
                                               ReadReport* report = nullptr);
std::vector<UnpairedRecord> read_unpaired(const std::filesystem::path& path, const ReadOptions& opt = {},
                                          ReadReport* report = nullptr);
std::vector<RankedRecord> read_ranked(const std::filesystem::path& path, const ReadOptions& opt = {},
                                      ReadReport* report = nullptr);
std::vector<PromptRecord> read_prompts(const std::filesystem::path& path, const ReadOptions& opt = {},
                                       ReadReport* report = nullptr);

}  // namespace rlhf
