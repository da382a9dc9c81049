// rlhf data clean and decontaminate: streaming filters that keep row order and count every
// dropped row by reason.
#include <algorithm>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "data/jsonl.h"
#include "data/text_match.h"
#include "data/tools.h"

namespace rlhf {

using nlohmann::json;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// clean

namespace {

// Near-duplicate index over MinHash signatures with LSH banding.
class MinHashIndex {
 public:
  MinHashIndex(int num_perm, double threshold, int shingle, uint64_t seed)
      : num_perm_(num_perm), shingle_(shingle), threshold_(threshold), seed_(seed) {
    minhash_bands(num_perm, threshold, &bands_, &rows_);
  }
  // Returns the id of a similar earlier text, or -1 (then `text` is added as `id`).
  int64_t check_and_add(const std::string& normalized, int64_t id) {
    const auto words = split_words(normalized);
    std::vector<uint32_t> sig = minhash_signature(words, shingle_, num_perm_, seed_);
    if (sig.empty()) return -1;
    std::vector<uint64_t> keys(bands_);
    for (int b = 0; b < bands_; ++b) {
      uint64_t h = mix64(static_cast<uint64_t>(b) + 0x51ED);
      for (int r = 0; r < rows_; ++r) h = mix64(h ^ sig[b * rows_ + r]);
      keys[b] = h;
      auto it = table_.find(h);
      if (it == table_.end()) continue;
      for (uint32_t cand : it->second)
        if (minhash_similarity(sig, sigs_[cand]) >= threshold_) return ids_[cand];
    }
    const uint32_t slot = static_cast<uint32_t>(sigs_.size());
    sigs_.push_back(std::move(sig));
    ids_.push_back(id);
    for (uint64_t k : keys) table_[k].push_back(slot);
    return -1;
  }
  int bands() const { return bands_; }
  int rows() const { return rows_; }

 private:
  int num_perm_, shingle_;
  double threshold_;
  uint64_t seed_;
  int bands_ = 1, rows_ = 1;
  std::vector<std::vector<uint32_t>> sigs_;
  std::vector<int64_t> ids_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> table_;
};

ReadOptions strict_row_options(const ReadOptions& r) {
  ReadOptions o = r;
  o.keep_degenerate = true;
  return o;
}

}  // namespace

ojson data_clean(const fs::path& in, const fs::path& out, const CleanOptions& opt) {
  if (opt.near != "none" && opt.near != "normalized" && opt.near != "minhash")
    throw InputError("clean: --near must be none, normalized or minhash, got '" + opt.near + "'");
  if (opt.dedupe_on != "pair" && opt.dedupe_on != "prompt")
    throw InputError("clean: --dedupe-on must be pair or prompt, got '" + opt.dedupe_on + "'");
  if (opt.near == "minhash" && !(opt.threshold > 0 && opt.threshold <= 1))
    throw InputError("clean: --threshold must be in (0, 1]");
  if (opt.num_perm < 1 || opt.shingle < 1) throw InputError("clean: --num-perm and --shingle must be positive");
  const ReadOptions ro = strict_row_options(opt.read);
  ReadReport rep;
  JsonlWriter w(out);
  int64_t empty = 0, identical = 0, too_long = 0, dup = 0, near = 0;
  std::unordered_set<uint64_t> exact_seen, norm_seen;
  MinHashIndex mh(opt.num_perm, opt.threshold, opt.shingle, opt.seed);
  ojson examples = ojson::array();
  for_each_jsonl_object(in, ro, rep, [&](int64_t line, const json& row) {
    std::optional<PreferenceRecord> r = parse_preference_row(row, ro, rep);
    if (!r) return;
    ++rep.kept;
    const bool blank = text_blank(r->chosen) || text_blank(r->rejected);
    if (blank) {
      if (opt.drop_empty) return void(++empty);
    } else if (r->chosen == r->rejected && opt.drop_identical) {
      return void(++identical);
    }
    if (opt.max_length > 0 &&
        opt.length(r->prompt) + std::max(opt.length(r->chosen), opt.length(r->rejected)) > opt.max_length)
      return void(++too_long);
    const bool by_prompt = opt.dedupe_on == "prompt";
    if (opt.dedupe_exact) {
      std::string key = text_key(r->prompt);
      if (!by_prompt) key += "\x1d" + text_key(r->chosen) + "\x1d" + text_key(r->rejected);
      if (!exact_seen.insert(hash64(key)).second) return void(++dup);
    }
    if (opt.near != "none") {
      std::string flat = text_flat(r->prompt);
      if (!by_prompt) flat += "\n" + text_flat(r->chosen) + "\n" + text_flat(r->rejected);
      const std::string norm = normalize_text(flat);
      int64_t dup_of = -1;
      if (opt.near == "normalized") {
        if (!norm_seen.insert(hash64(norm)).second) dup_of = 0;
      } else {
        dup_of = mh.check_and_add(norm, line);
      }
      if (dup_of >= 0) {
        ++near;
        if (examples.size() < 20) {
          ojson e = {{"line", line}};
          if (opt.near == "minhash") e["similar_to_line"] = dup_of;
          examples.push_back(e);
        }
        return;
      }
    }
    if (opt.keep_original)
      w.write(row);
    else
      w.write(preference_to_json(*r));
  });
  w.close();
  ojson s;
  s["tool"] = "clean";
  s["input"] = in.string();
  s["output"] = out.string();
  s["read"] = rep.to_json();
  s["written"] = w.lines();
  s["dropped"] = {{"empty", empty}, {"identical", identical}, {"too_long", too_long},
                  {"duplicate", dup},  {"near_duplicate", near}};
  s["length_unit"] = opt.length.unit;
  s["dedupe_on"] = opt.dedupe_on;
  s["near"] = opt.near;
  if (opt.near == "minhash")
    s["minhash"] = {{"threshold", opt.threshold}, {"num_perm", opt.num_perm}, {"shingle", opt.shingle},
                    {"bands", mh.bands()}, {"rows_per_band", mh.rows()}, {"seed", opt.seed}};
  if (!examples.empty()) s["near_duplicate_examples"] = examples;
  return s;
}

// ---------------------------------------------------------------------------------------------
// decontaminate

namespace {

// Collects the strings at a path like "turns[*].content", "prompt[*]", "question". A list of
// strings or of {content} messages at the end of the path contributes every element.
void collect_path(const json& v, const std::vector<std::string>& segs, size_t i, std::vector<std::string>& out) {
  if (i == segs.size()) {
    if (v.is_string()) {
      out.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      for (const auto& e : v) {
        if (e.is_string()) out.push_back(e.get<std::string>());
        else if (e.is_object() && e.contains("content") && e["content"].is_string())
          out.push_back(e["content"].get<std::string>());
      }
    }
    return;
  }
  std::string seg = segs[i];
  bool all = false;
  int64_t index = -1;
  if (const size_t br = seg.find('['); br != std::string::npos && seg.back() == ']') {
    const std::string inside = seg.substr(br + 1, seg.size() - br - 2);
    seg = seg.substr(0, br);
    if (inside == "*") all = true;
    else index = std::stoll(inside);
  }
  const json* cur = &v;
  if (!seg.empty()) {
    if (!v.is_object() || !v.contains(seg)) return;
    cur = &v[seg];
  }
  if (all) {
    if (!cur->is_array()) return;
    for (const auto& e : *cur) collect_path(e, segs, i + 1, out);
  } else if (index >= 0) {
    if (cur->is_array() && index < static_cast<int64_t>(cur->size())) collect_path((*cur)[index], segs, i + 1, out);
  } else {
    collect_path(*cur, segs, i + 1, out);
  }
}

std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> segs;
  size_t b = 0;
  while (b <= p.size()) {
    const size_t e = p.find('.', b);
    segs.push_back(p.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return segs;
}

struct BenchItem {
  int64_t line;
  std::string text;
};

struct BenchIndex {
  int n = 13;
  std::vector<BenchItem> items;
  std::unordered_map<uint64_t, uint32_t> exact, grams;  // hash -> item
  std::unordered_set<size_t> short_lengths;             // word counts of short items
  std::string format, field;

  void add(int64_t line, const std::string& text, int min_words) {
    const std::string norm = normalize_text(text);
    const auto words = split_words(norm);
    if (words.empty()) return;
    const uint32_t id = static_cast<uint32_t>(items.size());
    items.push_back({line, text});
    exact.emplace(hash64(norm), id);
    if (words.size() >= static_cast<size_t>(n)) {
      for (size_t b = 0; b + n <= words.size(); ++b) grams.emplace(hash_words(words, b, n), id);
    } else if (words.size() >= static_cast<size_t>(min_words)) {
      grams.emplace(hash_words(words, 0, words.size()), id);
      short_lengths.insert(words.size());
    }
  }
};

BenchIndex load_benchmark(const DecontaminateOptions& opt) {
  BenchIndex idx;
  idx.n = opt.ngram;
  LineReader lr(opt.benchmark);
  std::string line;
  bool decided = false, jsonl = false;
  std::vector<std::string> segs;
  std::string field = opt.field;
  while (lr.next(line)) {
    if (lr.overlong()) throw InputError(opt.benchmark.string() + ":" + std::to_string(lr.line_no()) + ": line too long");
    std::string_view text = line;
    if (lr.line_no() == 1 && text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
    if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = opt.benchmark.string() + ":" + std::to_string(lr.line_no());
    if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
      throw InputError(where + ":" + std::to_string(bad + 1) + ": invalid UTF-8");
    if (!decided) {
      decided = true;
      json probe = json::parse(text.begin(), text.end(), nullptr, false);
      jsonl = probe.is_object();
      if (!jsonl && !opt.field.empty())
        throw InputError(where + ": --field " + opt.field + " given, but the benchmark file is not JSONL");
      if (jsonl && field.empty()) {
        for (const char* f : {"prompt", "question", "instruction", "turns", "text"})
          if (probe.contains(f)) {
            field = f;
            break;
          }
        if (field.empty())
          throw InputError(where + ": cannot tell which field holds the benchmark prompt; give --field (e.g. "
                                   "question, instruction, prompt, turns[*], turns[*].content)");
      }
      segs = split_path(field);
    }
    if (!jsonl) {
      idx.add(lr.line_no(), std::string(text), opt.min_words);
      continue;
    }
    json row;
    try {
      row = json::parse(text.begin(), text.end());
    } catch (const json::parse_error& e) {
      throw InputError(where + ":" + std::to_string(e.byte) + ": invalid JSON in the benchmark file");
    }
    std::vector<std::string> strs;
    collect_path(row, segs, 0, strs);
    if (strs.empty()) throw InputError(where + ": field '" + field + "' holds no string");
    for (const auto& s : strs) idx.add(lr.line_no(), s, opt.min_words);
  }
  idx.format = jsonl ? "jsonl" : "text";
  idx.field = field;
  if (idx.items.empty()) throw InputError(opt.benchmark.string() + ": no benchmark prompts");
  return idx;
}

struct Match {
  uint32_t item;
  std::string how, ngram;
};

std::optional<Match> find_match(const BenchIndex& idx, const std::string& text) {
  const std::string norm = normalize_text(text);
  if (auto it = idx.exact.find(hash64(norm)); it != idx.exact.end()) return Match{it->second, "exact", ""};
  const auto words = split_words(norm);
  auto gram_text = [&](size_t b, size_t k) {
    std::string g;
    for (size_t i = b; i < b + k; ++i) {
      if (i > b) g.push_back(' ');
      g.append(words[i]);
    }
    return g;
  };
  const size_t n = static_cast<size_t>(idx.n);
  for (size_t b = 0; b + n <= words.size(); ++b)
    if (auto it = idx.grams.find(hash_words(words, b, n)); it != idx.grams.end())
      return Match{it->second, std::to_string(n) + "-gram", gram_text(b, n)};
  for (size_t k : idx.short_lengths)
    for (size_t b = 0; b + k <= words.size(); ++b)
      if (auto it = idx.grams.find(hash_words(words, b, k)); it != idx.grams.end())
        return Match{it->second, "whole prompt (" + std::to_string(k) + " words)", gram_text(b, k)};
  return std::nullopt;
}

}  // namespace

ojson data_decontaminate(const fs::path& in, const fs::path& out, const DecontaminateOptions& opt) {
  if (opt.ngram < 1) throw InputError("decontaminate: --ngram must be positive");
  if (opt.check != "prompt" && opt.check != "all")
    throw InputError("decontaminate: --check must be prompt or all, got '" + opt.check + "'");
  static const char* kinds[] = {"preference", "sft", "prompt", "ranked", "unpaired"};
  if (std::find(std::begin(kinds), std::end(kinds), opt.kind) == std::end(kinds))
    throw InputError("decontaminate: --kind must be preference, sft, prompt, ranked or unpaired, got '" + opt.kind + "'");
  const BenchIndex idx = load_benchmark(opt);
  const ReadOptions ro = strict_row_options(opt.read);
  ReadReport rep;
  JsonlWriter w(out);
  std::unique_ptr<JsonlWriter> mw;
  if (!opt.matches.empty()) mw = std::make_unique<JsonlWriter>(opt.matches);
  int64_t matched = 0;
  std::map<std::string, int64_t> by_source, by_how;
  std::unordered_set<uint32_t> items_hit;
  ojson listed = ojson::array();

  for_each_jsonl_object(in, ro, rep, [&](int64_t line, const json& row) {
    // The texts to check, and what to write when the row is kept.
    std::vector<std::pair<std::string, std::string>> texts;  // (field, text)
    std::optional<ojson> trl;
    if (opt.kind == "preference") {
      auto r = parse_preference_row(row, ro, rep);
      if (!r) return;
      texts.push_back({"prompt", text_flat(r->prompt)});
      if (opt.check == "all") {
        texts.push_back({"chosen", text_flat(r->chosen)});
        texts.push_back({"rejected", text_flat(r->rejected)});
      }
      if (!opt.keep_original) trl = preference_to_json(*r);
    } else if (opt.kind == "sft") {
      auto r = parse_sft_row(row, ro, rep);
      if (!r) return;
      if (r->prompt) texts.push_back({"prompt", text_flat(*r->prompt)});
      if (!r->prompt || opt.check == "all") texts.push_back({"completion", text_flat(r->completion)});
    } else if (opt.kind == "prompt") {
      auto r = parse_prompt_row(row, ro, rep);
      if (!r) return;
      texts.push_back({"prompt", text_flat(r->prompt)});
    } else if (opt.kind == "ranked") {
      auto r = parse_ranked_row(row, ro, rep);
      if (!r) return;
      texts.push_back({"prompt", text_flat(r->prompt)});
      if (opt.check == "all")
        for (size_t i = 0; i < r->completions.size(); ++i)
          texts.push_back({"completions[" + std::to_string(i) + "]", text_flat(r->completions[i])});
    } else {
      auto r = parse_unpaired_row(row, ro, rep);
      if (!r) return;
      texts.push_back({"prompt", text_flat(r->prompt)});
      if (opt.check == "all") texts.push_back({"completion", text_flat(r->completion)});
    }
    ++rep.kept;
    for (const auto& [fname, text] : texts) {
      std::optional<Match> m = find_match(idx, text);
      if (!m) continue;
      ++matched;
      const BenchItem& item = idx.items[m->item];
      items_hit.insert(m->item);
      std::string source;
      if (row.contains("source") && row["source"].is_string()) source = row["source"].get<std::string>();
      ++by_source[source.empty() ? "(no source)" : source];
      ++by_how[m->how.find("gram") != std::string::npos ? "ngram" : (m->how == "exact" ? "exact" : "whole_prompt")];
      ojson rec;
      rec["line"] = line;
      rec["field"] = fname;
      rec["benchmark"] = opt.benchmark.filename().string() + ":" + std::to_string(item.line);
      rec["how"] = m->how;
      rec["benchmark_text"] = item.text.size() > 200 ? item.text.substr(0, 200) + "..." : item.text;
      if (!m->ngram.empty()) rec["shared"] = m->ngram;
      if (!source.empty()) rec["source"] = source;
      if (mw) mw->write(rec);
      if (static_cast<int64_t>(listed.size()) < opt.max_listed) listed.push_back(rec);
      return;  // removed
    }
    if (trl)
      w.write(*trl);
    else
      w.write(row);
  });
  w.close();
  if (mw) mw->close();
  ojson s;
  s["tool"] = "decontaminate";
  s["input"] = in.string();
  s["output"] = out.string();
  s["read"] = rep.to_json();
  s["written"] = w.lines();
  s["benchmark"] = {{"file", opt.benchmark.string()}, {"format", idx.format}, {"field", idx.field},
                    {"items", idx.items.size()}, {"items_matched", items_hit.size()}};
  s["benchmark_items"] = idx.items.size();
  s["ngram"] = opt.ngram;
  s["min_words"] = opt.min_words;
  s["check"] = opt.check;
  s["matched_rows"] = matched;
  s["dropped"] = {{"contaminated", matched}};
  s["matched_by"] = by_how;
  s["matched_by_source"] = by_source;
  if (!opt.matches.empty()) s["matches_file"] = opt.matches.string();
  s["matches"] = listed;
  return s;
}

}  // namespace rlhf
