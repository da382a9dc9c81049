// Dataset readers: TRL's standard and conversational layouts and the public dataset exports of
// docs/datasets.md, one row at a time, with errors that name the field and what was expected.
#include "data/records.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>

namespace rlhf {

using nlohmann::json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Text helpers

nlohmann::ordered_json text_to_json(const Text& t) {
  if (!t.is_chat) return t.text;
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& m : t.messages) a.push_back({{"role", m.role}, {"content", m.content}});
  return a;
}

std::string text_flat(const Text& t) {
  if (!t.is_chat) return t.text;
  std::string s;
  for (size_t i = 0; i < t.messages.size(); ++i) {
    if (i) s += '\n';
    s += t.messages[i].content;
  }
  return s;
}

std::string text_key(const Text& t) {
  if (!t.is_chat) return "s\x1f" + t.text;
  std::string s = "c";
  for (const auto& m : t.messages) {
    s += '\x1f';
    s += m.role;
    s += '\x1e';
    s += m.content;
  }
  return s;
}

namespace {

bool is_blank_str(const std::string& s) {
  for (unsigned char c : s)
    if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')) return false;
  return true;
}

}  // namespace

bool text_blank(const Text& t) {
  if (!t.is_chat) return is_blank_str(t.text);
  for (const auto& m : t.messages)
    if (!is_blank_str(m.content)) return false;
  return true;
}

Text text_concat(const Text& prompt, const Text& completion) {
  RLHF_CHECK(prompt.is_chat == completion.is_chat, "text_concat: prompt and completion layouts differ");
  Text t = prompt;
  if (t.is_chat)
    t.messages.insert(t.messages.end(), completion.messages.begin(), completion.messages.end());
  else
    t.text += completion.text;
  return t;
}

bool split_hh_transcript(const std::string& s, std::vector<Message>& out) {
  static const std::string kHuman = "\n\nHuman:", kAssistant = "\n\nAssistant:";
  out.clear();
  size_t pos = 0;
  while (pos < s.size()) {
    std::string role;
    size_t body;
    if (s.compare(pos, kHuman.size(), kHuman) == 0) {
      role = "user";
      body = pos + kHuman.size();
    } else if (s.compare(pos, kAssistant.size(), kAssistant) == 0) {
      role = "assistant";
      body = pos + kAssistant.size();
    } else {
      return false;
    }
    if (body < s.size() && s[body] == ' ') ++body;
    size_t next = std::min(s.find(kHuman, body), s.find(kAssistant, body));
    if (next == std::string::npos) next = s.size();
    out.push_back({role, s.substr(body, next - body)});
    pos = next;
  }
  return !out.empty();
}

nlohmann::json ReadReport::to_json() const {
  json j = {{"rows", rows},
            {"kept", kept},
            {"skipped_bad", skipped_bad},
            {"dropped_empty", dropped_empty},
            {"dropped_identical", dropped_identical}};
  for (const auto& [k, v] : notes) j[k] = v;
  if (!first_errors.empty()) j["first_errors"] = first_errors;
  return j;
}

nlohmann::ordered_json preference_to_json(const PreferenceRecord& r) {
  nlohmann::ordered_json j;
  j["prompt"] = text_to_json(r.prompt);
  j["chosen"] = text_to_json(r.chosen);
  j["rejected"] = text_to_json(r.rejected);
  if (r.score_chosen) j["score_chosen"] = *r.score_chosen;
  if (r.score_rejected) j["score_rejected"] = *r.score_rejected;
  if (r.margin) j["margin"] = *r.margin;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Field access

namespace {

// Our field name -> the file's column name.
std::string col(const ReadOptions& opt, const char* ours) {
  auto it = opt.columns.find(ours);
  return it == opt.columns.end() ? std::string(ours) : it->second;
}

const json* field(const json& obj, const std::string& name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw RowError("field '" + name + "': " + what);
}

constexpr const char* kTextExpected = "a string or a list of messages";

std::vector<Message> parse_messages(const json& v, const std::string& name) {
  std::vector<Message> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    const std::string mname = name + "[" + std::to_string(i) + "]";
    if (!m.is_object()) fail(mname, std::string("expected a message object {role, content}, got ") + m.type_name());
    const json* role = field(m, "role");
    const json* content = field(m, "content");
    if (!role && !content && (m.contains("from") || m.contains("value")))
      fail(mname, "ShareGPT-style {from, value} message; convert it to {role, content}");
    if (!role) fail(mname + ".role", "missing (expected a string)");
    if (!role->is_string()) fail(mname + ".role", std::string("expected a string, got ") + role->type_name());
    // The roles chat templates render (OpenAI's developer, Llama 3's ipython for tool results); any
    // other is a mislabelled turn that a template would render as something else or reject.
    static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool", "ipython"};
    if (!kRoles.contains(role->get<std::string>()))
      fail(mname + ".role", "unknown role '" + role->get<std::string>() +
                                "' (expected system, developer, user, assistant, tool or ipython)");
    if (!content) fail(mname + ".content", "missing (expected a string)");
    if (content->is_array())
      fail(mname + ".content", "expected a string, got array (multimodal content parts are not supported)");
    if (!content->is_string())
      fail(mname + ".content", std::string("expected a string, got ") + content->type_name());
    out.push_back({role->get<std::string>(), content->get<std::string>()});
  }
  return out;
}

Text parse_text(const json& v, const std::string& name) {
  Text t;
  if (v.is_string()) {
    t.text = v.get<std::string>();
  } else if (v.is_array()) {
    t.is_chat = true;
    t.messages = parse_messages(v, name);
  } else {
    fail(name, std::string("expected ") + kTextExpected + ", got " + v.type_name());
  }
  return t;
}

Text require_text(const json& row, const std::string& name) {
  const json* v = field(row, name);
  if (!v) fail(name, std::string("missing (expected ") + kTextExpected + ")");
  return parse_text(*v, name);
}

std::string require_string(const json& row, const std::string& name) {
  const json* v = field(row, name);
  if (!v) fail(name, "missing (expected a string)");
  if (!v->is_string()) fail(name, std::string("expected a string, got ") + v->type_name());
  return v->get<std::string>();
}

// Absent or null (pandas writes NaN as null) -> nullopt.
std::optional<double> opt_number(const json& obj, const std::string& name) {
  const json* v = field(obj, name);
  if (!v || v->is_null()) return std::nullopt;
  if (!v->is_number()) fail(name, std::string("expected a number, got ") + v->type_name());
  return v->get<double>();
}

// UltraFeedback aspect rating: "1".."5" (strings), numbers, or "N/A".
std::optional<double> parse_rating(const json& v, const std::string& name) {
  if (v.is_null()) return std::nullopt;
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "N/A" || s == "n/a" || s.empty()) return std::nullopt;
    try {
      size_t used = 0;
      const double d = std::stod(s, &used);
      if (used == s.size() && std::isfinite(d)) return d;
    } catch (const std::exception&) {
    }
    fail(name, "expected a rating \"1\"..\"5\" or \"N/A\", got \"" + s.substr(0, 20) + "\"");
  }
  fail(name, std::string("expected a rating \"1\"..\"5\" or \"N/A\", got ") + v.type_name());
}

// Drop / error / keep a degenerate row. Returns true when the row must be dropped.
bool degenerate(const ReadOptions& opt, ReadReport& report, bool empty, const std::string& what) {
  if (opt.keep_degenerate) return false;
  if (!opt.drop_degenerate) throw RowError(what);
  ++(empty ? report.dropped_empty : report.dropped_identical);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Implicit prompts

size_t utf8_start(const std::string& s, size_t i) {
  while (i > 0 && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

size_t common_prefix_bytes(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// TRL's extract_prompt on strings: the index where chosen and rejected first differ, moved back
// before a space; when one is a prefix of the other, all but the last character.
size_t trl_prompt_split(const std::string& c, const std::string& r) {
  const size_t n = std::min(c.size(), r.size());
  size_t idx = common_prefix_bytes(c, r);
  if (idx < n) {
    idx = utf8_start(c, idx);
    if (idx > 0 && c[idx - 1] == ' ') --idx;
    return idx;
  }
  if (n == 0) return 0;
  return utf8_start(c, n - 1);
}

// The same on conversations: the first differing message.
size_t trl_prompt_split(const std::vector<Message>& c, const std::vector<Message>& r) {
  const size_t n = std::min(c.size(), r.size());
  for (size_t i = 0; i < n; ++i)
    if (!(c[i] == r[i])) return i;
  return n == 0 ? 0 : n - 1;
}

void split_implicit(PreferenceRecord& rec, Text chosen, Text rejected, const ReadOptions& opt, ReadReport& report) {
  rec.prompt = Text{};
  rec.prompt.is_chat = chosen.is_chat;
  if (chosen.is_chat) {
    const size_t k = trl_prompt_split(chosen.messages, rejected.messages);
    rec.prompt.messages.assign(chosen.messages.begin(), chosen.messages.begin() + k);
    rec.chosen = {true, "", {chosen.messages.begin() + k, chosen.messages.end()}};
    rec.rejected = {true, "", {rejected.messages.begin() + k, rejected.messages.end()}};
    return;
  }
  const std::string& c = chosen.text;
  const std::string& r = rejected.text;
  static const std::string kAssistant = "\n\nAssistant:";
  if (c.starts_with("\n\nHuman:") && r.starts_with("\n\nHuman:")) {
    // hh-rlhf: cut the common prefix back to the end of its last "\n\nAssistant:".
    const size_t common = common_prefix_bytes(c, r);
    if (common >= kAssistant.size()) {
      const size_t at = c.rfind(kAssistant, common - kAssistant.size());
      if (at != std::string::npos) {
        const size_t idx = at + kAssistant.size();
        rec.prompt.text = c.substr(0, idx);
        rec.chosen = {false, c.substr(idx), {}};
        rec.rejected = {false, r.substr(idx), {}};
        if (rec.chosen.text.find("\n\nHuman:") != std::string::npos ||
            rec.rejected.text.find("\n\nHuman:") != std::string::npos)
          ++report.notes["hh_diverged_early"];
        if (opt.hh_as_messages) {
          std::vector<Message> p, ch, rj;
          const std::string pt = rec.prompt.text.substr(0, at);
          if (split_hh_transcript(pt, p) && split_hh_transcript(kAssistant + rec.chosen.text, ch) &&
              split_hh_transcript(kAssistant + rec.rejected.text, rj)) {
            rec.prompt = {true, "", std::move(p)};
            rec.chosen = {true, "", std::move(ch)};
            rec.rejected = {true, "", std::move(rj)};
          }
        }
        return;
      }
    }
  }
  const size_t idx = trl_prompt_split(c, r);
  rec.prompt.text = c.substr(0, idx);
  rec.chosen = {false, c.substr(idx), {}};
  rec.rejected = {false, r.substr(idx), {}};
}

std::optional<PreferenceRecord> finish_preference(PreferenceRecord rec, const ReadOptions& opt, ReadReport& report) {
  if (text_blank(rec.chosen) || text_blank(rec.rejected)) {
    const char* which = text_blank(rec.chosen) ? "chosen" : "rejected";
    if (degenerate(opt, report, true,
                   std::string("field '") + which + "': empty or whitespace-only completion"))
      return std::nullopt;
  } else if (rec.chosen == rec.rejected) {
    if (degenerate(opt, report, false, "chosen and rejected are identical")) return std::nullopt;
  }
  return rec;
}

std::string strip(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\n\r");
  return s.substr(b, e - b + 1);
}

// TRL's tldr_preference.py prompt for a summarize_from_feedback "info" object.
std::string tldr_prompt(const json& info) {
  auto get = [&](const char* k) -> std::string {
    const json* v = field(info, k);
    if (!v || v->is_null()) return "";
    if (!v->is_string()) fail(std::string("info.") + k, std::string("expected a string, got ") + v->type_name());
    return v->get<std::string>();
  };
  const json* post = field(info, "post");
  if (post && !post->is_null())
    return "SUBREDDIT: r/" + get("subreddit") + "\n\nTITLE: " + get("title") + "\n\nPOST: " + get("post") + "\n\nTL;DR:";
  const json* article = field(info, "article");
  if (!article || article->is_null()) fail("info.post", "missing (expected info.post or info.article)");
  return "Article:\n" + get("article") + "\n\nTL;DR:";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Preference

std::optional<PreferenceRecord> parse_preference_row(const json& row, const ReadOptions& opt, ReadReport& report) {
  PreferenceRecord rec;
  const std::string kc = col(opt, "chosen"), kr = col(opt, "rejected"), kp = col(opt, "prompt");
  const bool trl = row.contains(kc) || row.contains(kr) || opt.columns.count("chosen") || opt.columns.count("rejected");

  if (!trl && row.contains("chosen_response") && row.contains("rejected_response")) {
    // argilla/ultrafeedback-binarized-preferences
    rec.prompt = require_text(row, row.contains("instruction") ? "instruction" : kp);
    rec.chosen = require_text(row, "chosen_response");
    rec.rejected = require_text(row, "rejected_response");
    rec.score_chosen = opt_number(row, "chosen_avg_rating");
    rec.score_rejected = opt_number(row, "rejected_avg_rating");
    return finish_preference(std::move(rec), opt, report);
  }
  if (!trl && row.contains("human_ref_A") && row.contains("human_ref_B")) {
    // stanfordnlp/SHP: labels 1 = A preferred, 0 = B preferred.
    rec.prompt = require_text(row, "history");
    const json* lab = field(row, "labels");
    if (!lab) fail("labels", "missing (expected 0 or 1)");
    if (!lab->is_number_integer() || (lab->get<int64_t>() != 0 && lab->get<int64_t>() != 1))
      fail("labels", "expected 0 or 1, got " + lab->dump());
    const bool a = lab->get<int64_t>() == 1;
    rec.chosen = require_text(row, a ? "human_ref_A" : "human_ref_B");
    rec.rejected = require_text(row, a ? "human_ref_B" : "human_ref_A");
    rec.score_chosen = opt_number(row, a ? "score_A" : "score_B");
    rec.score_rejected = opt_number(row, a ? "score_B" : "score_A");
    return finish_preference(std::move(rec), opt, report);
  }
  if (!trl && row.contains("response_1") && row.contains("response_2")) {
    // HelpSteer2 preference: strength < 0 -> response_1 better, > 0 -> response_2, 0 -> tie.
    rec.prompt = require_text(row, kp);
    const json* s = field(row, "preference_strength");
    if (!s) fail("preference_strength", "missing (expected an integer -3..3)");
    if (!s->is_number()) fail("preference_strength", std::string("expected an integer -3..3, got ") + s->type_name());
    const double strength = s->get<double>();
    if (strength == 0) {
      ++report.notes["dropped_tie"];
      return std::nullopt;
    }
    const bool first = strength < 0;
    rec.chosen = require_text(row, first ? "response_1" : "response_2");
    rec.rejected = require_text(row, first ? "response_2" : "response_1");
    return finish_preference(std::move(rec), opt, report);
  }
  if (!trl && row.contains("summaries") && row.contains("choice")) {
    // openai/summarize_from_feedback comparisons, as TRL's tldr_preference.py formats them.
    const json* info = field(row, "info");
    if (!info || !info->is_object()) fail("info", "missing or not an object");
    const json& sums = row["summaries"];
    if (!sums.is_array() || sums.size() != 2) fail("summaries", "expected a list of two summaries");
    const json& ch = row["choice"];
    if (!ch.is_number_integer() || (ch.get<int64_t>() != 0 && ch.get<int64_t>() != 1))
      fail("choice", "expected 0 or 1, got " + ch.dump());
    const int64_t c = ch.get<int64_t>();
    rec.prompt.text = tldr_prompt(*info);
    for (int k = 0; k < 2; ++k)
      if (!sums[k].is_object()) fail("summaries[" + std::to_string(k) + "]", "expected an object with 'text'");
    rec.chosen.text = " " + strip(require_string(sums[c], "text"));
    rec.rejected.text = " " + strip(require_string(sums[1 - c], "text"));
    return finish_preference(std::move(rec), opt, report);
  }

  // TRL layouts (explicit or implicit prompt), H4/argilla-cleaned ultrafeedback, hh-rlhf.
  Text chosen = require_text(row, kc);
  Text rejected = require_text(row, kr);
  const json* pv = field(row, kp);
  std::optional<Text> prompt;
  if (pv) prompt = parse_text(*pv, kp);
  if (chosen.is_chat != rejected.is_chat)
    fail(kr, std::string("expected ") + (chosen.is_chat ? "a list of messages" : "a string") + " like '" + kc +
                 "', got " + (rejected.is_chat ? "a list of messages" : "a string"));
  if (prompt && !(!prompt->is_chat && chosen.is_chat)) {
    if (prompt->is_chat != chosen.is_chat)
      fail(kc, std::string("expected ") + (prompt->is_chat ? "a list of messages" : "a string") + " like '" + kp +
                   "', got " + (chosen.is_chat ? "a list of messages" : "a string"));
    rec.prompt = std::move(*prompt);
    if (rec.prompt.is_chat && !rec.prompt.messages.empty()) {
      // Completions that repeat the prompt turns: keep only what follows them.
      const auto& pm = rec.prompt.messages;
      auto starts = [&](const std::vector<Message>& m) {
        return m.size() > pm.size() && std::equal(pm.begin(), pm.end(), m.begin());
      };
      if (starts(chosen.messages) && starts(rejected.messages)) {
        chosen.messages.erase(chosen.messages.begin(), chosen.messages.begin() + pm.size());
        rejected.messages.erase(rejected.messages.begin(), rejected.messages.begin() + pm.size());
        ++report.notes["prompt_repeated_in_completions"];
      }
    }
    rec.chosen = std::move(chosen);
    rec.rejected = std::move(rejected);
  } else {
    if (prompt) ++report.notes["prompt_from_conversations"];  // H4: prompt string + full dialogues
    split_implicit(rec, std::move(chosen), std::move(rejected), opt, report);
  }
  const std::string ksc = col(opt, "score_chosen"), ksr = col(opt, "score_rejected");
  rec.score_chosen = opt_number(row, row.contains(ksc) || !row.contains("chosen-rating") ? ksc : "chosen-rating");
  rec.score_rejected =
      opt_number(row, row.contains(ksr) || !row.contains("rejected-rating") ? ksr : "rejected-rating");
  rec.margin = opt_number(row, col(opt, "margin"));
  return finish_preference(std::move(rec), opt, report);
}

// ---------------------------------------------------------------------------------------------
// SFT, unpaired, prompt-only

std::optional<SftRecord> parse_sft_row(const json& row, const ReadOptions& opt, ReadReport& report) {
  SftRecord rec;
  const std::string kp = col(opt, "prompt"), kc = col(opt, "completion"), km = col(opt, "messages"),
                    kt = col(opt, "text");
  if (row.contains(kc) || (row.contains(kp) && !row.contains(km) && !row.contains(kt))) {
    rec.prompt = require_text(row, kp);
    rec.completion = require_text(row, kc);
    if (rec.prompt->is_chat != rec.completion.is_chat)
      fail(kc, std::string("expected ") + (rec.prompt->is_chat ? "a list of messages" : "a string") + " like '" +
                   kp + "', got " + (rec.completion.is_chat ? "a list of messages" : "a string"));
  } else if (row.contains(km)) {
    rec.completion = require_text(row, km);
    if (!rec.completion.is_chat) fail(km, "expected a list of messages, got string");
  } else if (row.contains(kt)) {
    rec.completion = require_text(row, kt);
    if (rec.completion.is_chat) fail(kt, "expected a string, got array (use 'messages' for conversations)");
  } else {
    fail(kt, "missing (expected 'text', 'messages', or 'prompt' + 'completion')");
  }
  if (text_blank(rec.completion) &&
      degenerate(opt, report, true, "field '" + (rec.prompt ? kc : (rec.completion.is_chat ? km : kt)) +
                                        "': empty or whitespace-only text"))
    return std::nullopt;
  return rec;
}

std::optional<UnpairedRecord> parse_unpaired_row(const json& row, const ReadOptions& opt, ReadReport& report) {
  UnpairedRecord rec;
  const std::string kp = col(opt, "prompt"), kc = col(opt, "completion"), kl = col(opt, "label");
  rec.prompt = require_text(row, kp);
  rec.completion = require_text(row, kc);
  if (rec.prompt.is_chat != rec.completion.is_chat)
    fail(kc, std::string("expected ") + (rec.prompt.is_chat ? "a list of messages" : "a string") + " like '" + kp +
                 "', got " + (rec.completion.is_chat ? "a list of messages" : "a string"));
  const json* l = field(row, kl);
  if (!l) fail(kl, "missing (expected a boolean)");
  if (!l->is_boolean()) fail(kl, std::string("expected a boolean, got ") + l->type_name());
  rec.label = l->get<bool>();
  if (text_blank(rec.completion) &&
      degenerate(opt, report, true, "field '" + kc + "': empty or whitespace-only completion"))
    return std::nullopt;
  return rec;
}

std::optional<PromptRecord> parse_prompt_row(const json& row, const ReadOptions& opt, ReadReport& report) {
  PromptRecord rec;
  const std::string kp = col(opt, "prompt");
  rec.prompt = require_text(row, kp);
  rec.extra = json::object();
  for (auto it = row.begin(); it != row.end(); ++it)
    if (it.key() != kp) rec.extra[it.key()] = it.value();
  if (text_blank(rec.prompt) && degenerate(opt, report, true, "field '" + kp + "': empty or whitespace-only prompt"))
    return std::nullopt;
  return rec;
}

// ---------------------------------------------------------------------------------------------
// Ranked

namespace {

std::optional<double> ultrafeedback_score(const json& c, const std::string& cname, const std::string& score_field) {
  if (score_field.empty() || score_field == "overall_score") return opt_number(c, "overall_score");
  if (score_field == "fine-grained_score") return opt_number(c, "fine-grained_score");
  if (score_field == "mean" || score_field == "mean_aspects" || score_field == "mean-aspects") {
    const json* ann = field(c, "annotations");
    if (!ann || ann->is_null()) return std::nullopt;
    if (!ann->is_object()) fail(cname + ".annotations", std::string("expected an object, got ") + ann->type_name());
    double sum = 0;
    int n = 0;
    for (const char* aspect : {"helpfulness", "honesty", "instruction_following", "instruction-following", "truthfulness"}) {
      const json* a = field(*ann, aspect);
      if (!a || a->is_null()) continue;
      const std::string aname = cname + ".annotations." + aspect;
      if (!a->is_object()) fail(aname, std::string("expected an object with 'Rating', got ") + a->type_name());
      const json* rating = field(*a, "Rating");
      if (!rating) fail(aname + ".Rating", "missing");
      if (auto v = parse_rating(*rating, aname + ".Rating")) {
        sum += *v;
        ++n;
      }
    }
    return n ? std::optional<double>(sum / n) : std::nullopt;
  }
  return opt_number(c, score_field);
}

}  // namespace

std::optional<RankedRecord> parse_ranked_row(const json& row, const ReadOptions& opt, ReadReport& report) {
  RankedRecord rec;
  const std::string kp = col(opt, "prompt"), kcs = col(opt, "completions");
  std::vector<std::optional<double>> scores;
  std::vector<double> nectar_rank;
  bool have_ranking = false;
  std::vector<int64_t> ranking;

  const json* comps = field(row, kcs);
  const bool uf_raw = comps && comps->is_array() && !comps->empty() && (*comps)[0].is_object() &&
                      (*comps)[0].contains("response");
  if (uf_raw) {
    // openbmb/UltraFeedback: instruction + completions[{response, overall_score, annotations...}]
    rec.prompt = require_text(row, row.contains("instruction") && !opt.columns.count("prompt") ? "instruction" : kp);
    for (size_t i = 0; i < comps->size(); ++i) {
      const json& c = (*comps)[i];
      const std::string cname = kcs + "[" + std::to_string(i) + "]";
      if (!c.is_object()) fail(cname, std::string("expected an object with 'response', got ") + c.type_name());
      rec.completions.push_back(require_text(c, "response"));
      scores.push_back(ultrafeedback_score(c, cname, opt.score_field));
    }
  } else if (!comps && row.contains("answers")) {
    // berkeley-nest/Nectar: answers[{answer, model, rank}], rank 1 = best.
    rec.prompt = require_text(row, kp);
    const json& ans = row["answers"];
    if (!ans.is_array()) fail("answers", std::string("expected a list of {answer, rank}, got ") + ans.type_name());
    for (size_t i = 0; i < ans.size(); ++i) {
      const std::string aname = "answers[" + std::to_string(i) + "]";
      if (!ans[i].is_object()) fail(aname, std::string("expected an object {answer, rank}, got ") + ans[i].type_name());
      rec.completions.push_back(require_text(ans[i], "answer"));
      const std::optional<double> rank = opt_number(ans[i], "rank");
      scores.push_back(rank ? std::optional<double>(-*rank) : std::nullopt);
      nectar_rank.push_back(rank.value_or(0));
    }
  } else {
    rec.prompt = require_text(row, kp);
    if (!comps) fail(kcs, "missing (expected a list of completions)");
    if (!comps->is_array()) fail(kcs, std::string("expected a list of completions, got ") + comps->type_name());
    for (size_t i = 0; i < comps->size(); ++i)
      rec.completions.push_back(parse_text((*comps)[i], kcs + "[" + std::to_string(i) + "]"));
    // The scores column: score_field when the row has it, else "scores" (or its override),
    // else "rewards".
    std::string ks = !opt.score_field.empty() && row.contains(opt.score_field) ? opt.score_field : col(opt, "scores");
    if (!row.contains(ks) && !opt.columns.count("scores") && row.contains("rewards")) ks = "rewards";
    const std::string kr = col(opt, "ranking");
    if (const json* s = field(row, ks)) {
      if (!s->is_array() || s->size() != comps->size())
        fail(ks, "expected a list of " + std::to_string(comps->size()) + " numbers (one per completion), got " +
                     (s->is_array() ? std::to_string(s->size()) + " entries" : std::string(s->type_name())));
      for (size_t i = 0; i < s->size(); ++i) {
        const json& v = (*s)[i];
        if (v.is_null()) {
          scores.push_back(std::nullopt);
        } else if (v.is_number()) {
          scores.push_back(v.get<double>());
        } else if (v.is_boolean()) {
          scores.push_back(v.get<bool>() ? 1.0 : 0.0);  // verifier pass/fail
        } else {
          fail(ks + "[" + std::to_string(i) + "]", std::string("expected a number, got ") + v.type_name());
        }
      }
    } else if (const json* r = field(row, kr)) {
      const size_t n = comps->size();
      if (!r->is_array() || r->size() != n)
        fail(kr, "expected a permutation of 0.." + std::to_string(n ? n - 1 : 0) + " (completion indices, best first)");
      std::vector<char> seen(n, 0);
      for (size_t i = 0; i < n; ++i) {
        const json& v = (*r)[i];
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= static_cast<int64_t>(n) ||
            seen[v.get<int64_t>()])
          fail(kr, "expected a permutation of 0.." + std::to_string(n - 1) + " (completion indices, best first), got " +
                       r->dump().substr(0, 80));
        seen[v.get<int64_t>()] = 1;
        ranking.push_back(v.get<int64_t>());
      }
      have_ranking = true;
      scores.assign(n, 0.0);
    } else {
      fail(ks, "missing (expected '" + ks + "' or '" + kr + "' with one entry per completion)");
    }
  }

  // Drop unscored and empty completions; rows left with fewer than two are dropped.
  std::vector<int64_t> new_index(rec.completions.size(), -1);
  RankedRecord out;
  out.prompt = std::move(rec.prompt);
  std::vector<double> kept_scores, kept_ranks;
  for (size_t i = 0; i < rec.completions.size(); ++i) {
    if (!scores[i]) {
      ++report.notes["unscored_completions"];
      continue;
    }
    if (text_blank(rec.completions[i]) && !opt.keep_degenerate) {
      if (!opt.drop_degenerate) fail(kcs + "[" + std::to_string(i) + "]", "empty or whitespace-only completion");
      ++report.notes["empty_completions"];
      continue;
    }
    new_index[i] = static_cast<int64_t>(out.completions.size());
    out.completions.push_back(std::move(rec.completions[i]));
    kept_scores.push_back(*scores[i]);
    if (!nectar_rank.empty()) kept_ranks.push_back(nectar_rank[i]);
  }
  if (out.completions.size() < 2) {
    ++report.notes["too_few_completions"];
    return std::nullopt;
  }
  if (have_ranking) {
    for (int64_t i : ranking)
      if (new_index[i] >= 0) out.ranking.push_back(new_index[i]);
  } else if (!kept_ranks.empty()) {
    // Nectar: a ranking when the ranks are distinct, otherwise scores = -rank (ties kept).
    std::vector<double> sorted = kept_ranks;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end()) {
      out.ranking.resize(kept_ranks.size());
      std::iota(out.ranking.begin(), out.ranking.end(), 0);
      std::stable_sort(out.ranking.begin(), out.ranking.end(),
                       [&](int64_t a, int64_t b) { return kept_ranks[a] < kept_ranks[b]; });
    } else {
      out.scores = kept_scores;
      ++report.notes["tied_ranks"];
    }
  } else {
    out.scores = std::move(kept_scores);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Streaming and collecting readers

namespace {

template <typename Rec, typename Parse>
void for_each_kind(const fs::path& path, const ReadOptions& opt, ReadReport& report, Parse parse,
                   const std::function<void(Rec&&)>& fn) {
  for_each_jsonl_object(path, opt, report, [&](int64_t line, const json& row) {
    std::optional<Rec> rec = parse(row, opt, report);
    if (!rec) return;
    rec->line = line;
    ++report.kept;
    fn(std::move(*rec));
  });
}

template <typename Rec, typename Each>
std::vector<Rec> collect(const fs::path& path, const ReadOptions& opt, ReadReport* report, Each each) {
  ReadReport local;
  ReadReport& rep = report ? *report : local;
  std::vector<Rec> out;
  each(path, opt, rep, [&](Rec&& r) { out.push_back(std::move(r)); });
  return out;
}

}  // namespace

void for_each_sft(const fs::path& path, const ReadOptions& opt, ReadReport& report,
                  const std::function<void(SftRecord&&)>& fn) {
  for_each_kind<SftRecord>(path, opt, report, parse_sft_row, fn);
}
void for_each_preference(const fs::path& path, const ReadOptions& opt, ReadReport& report,
                         const std::function<void(PreferenceRecord&&)>& fn) {
  for_each_kind<PreferenceRecord>(path, opt, report, parse_preference_row, fn);
}
void for_each_unpaired(const fs::path& path, const ReadOptions& opt, ReadReport& report,
                       const std::function<void(UnpairedRecord&&)>& fn) {
  for_each_kind<UnpairedRecord>(path, opt, report, parse_unpaired_row, fn);
}
void for_each_ranked(const fs::path& path, const ReadOptions& opt, ReadReport& report,
                     const std::function<void(RankedRecord&&)>& fn) {
  for_each_kind<RankedRecord>(path, opt, report, parse_ranked_row, fn);
}
void for_each_prompt(const fs::path& path, const ReadOptions& opt, ReadReport& report,
                     const std::function<void(PromptRecord&&)>& fn) {
  for_each_kind<PromptRecord>(path, opt, report, parse_prompt_row, fn);
}

std::vector<SftRecord> read_sft(const fs::path& path, const ReadOptions& opt, ReadReport* report) {
  return collect<SftRecord>(path, opt, report, for_each_sft);
}
std::vector<PreferenceRecord> read_preferences(const fs::path& path, const ReadOptions& opt, ReadReport* report) {
  return collect<PreferenceRecord>(path, opt, report, for_each_preference);
}
std::vector<UnpairedRecord> read_unpaired(const fs::path& path, const ReadOptions& opt, ReadReport* report) {
  return collect<UnpairedRecord>(path, opt, report, for_each_unpaired);
}
std::vector<RankedRecord> read_ranked(const fs::path& path, const ReadOptions& opt, ReadReport* report) {
  return collect<RankedRecord>(path, opt, report, for_each_ranked);
}
std::vector<PromptRecord> read_prompts(const fs::path& path, const ReadOptions& opt, ReadReport* report) {
  return collect<PromptRecord>(path, opt, report, for_each_prompt);
}

}  // namespace rlhf
