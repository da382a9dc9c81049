// Dataset records in TRL's layouts, read from JSONL (plain, .gz, .zst), and their readers.
//
// TRL's two layouts: "standard" — text fields are strings; "conversational" — text fields are
// lists of {"role", "content"} messages. Dataset kinds (DATASETS.md, TRL's dataset formats):
//   sft        : "text" | "messages" | "prompt" + "completion"
//   preference : "prompt" (optional: implicit prompt = common prefix) + "chosen" + "rejected"
//                (+ optional "margin")
//   unpaired   : "prompt" + "completion" + "label" (bool)              — KTO
//   ranked     : "prompt" + "completions" + ("ranking" | "scores")     — Plackett–Luce, binarize
//   prompt     : "prompt" (+ any other fields kept in `extra`)         — online RL
// Every bad row gives InputError "file:line: field: what was expected", or is skipped and
// counted when ReadOptions::skip_bad_rows is set (RELIABILITY.md tests 21–23).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rlhf {

struct Message {
  std::string role, content;
};

// A text field: a plain string (standard layout) or a conversation (conversational layout).
struct Text {
  bool is_chat = false;
  std::string text;               // standard
  std::vector<Message> messages;  // conversational
};

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
};

struct ReadReport {
  int64_t rows = 0, kept = 0, skipped_bad = 0, dropped_empty = 0, dropped_identical = 0;
  std::vector<std::string> first_errors;  // up to 10 messages of skipped rows
};

// Streaming line access to JSONL, plain or compressed (by extension .gz / .zst): calls `fn`
// with each physical line (1-based number) and its parsed object; a line that is not a JSON
// object fails with file:line:column (or is skipped and counted, per options).
void for_each_jsonl_object(const std::filesystem::path& path, const ReadOptions& opt, ReadReport& report,
                           const std::function<void(int64_t line, const nlohmann::json& row)>& fn);

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
