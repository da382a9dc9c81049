// rlhf data binarize, pairs and noise: preference pairs from scored or ranked completions, and
// seeded label flips.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "data/jsonl.h"
#include "data/text_match.h"
#include "data/tools.h"
#include "tensor/rng.h"

namespace rlhf {

using nlohmann::json;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

enum class Strategy { best_vs_random, best_vs_worst, all_pairs };

Strategy parse_strategy(const std::string& s, const char* tool) {
  if (s == "best-vs-random") return Strategy::best_vs_random;
  if (s == "best-vs-worst") return Strategy::best_vs_worst;
  if (s == "all-pairs" || s == "all") return Strategy::all_pairs;
  throw InputError(std::string(tool) + ": --strategy must be best-vs-random, best-vs-worst or all-pairs, got '" + s + "'");
}

struct PairCounts {
  int64_t rows = 0, pairs = 0, rows_without_pair = 0;
  int64_t tied_rows = 0;       // every completion has the same score
  int64_t tied_pairs = 0;      // all-pairs: pairs skipped for equal scores
  int64_t below_gap = 0;       // pairs (or rows) whose best difference is under --min-gap
  int64_t identical = 0;       // candidate pairs with identical texts
  int64_t best_ties = 0;       // rows where several completions share the best score
  int64_t capped = 0;          // all-pairs: pairs dropped by --max-pairs-per-prompt
  ojson to_json() const {
    return {{"rows", rows},           {"pairs", pairs},         {"rows_without_pair", rows_without_pair},
            {"tied_rows", tied_rows}, {"tied_pairs", tied_pairs}, {"below_gap", below_gap},
            {"identical", identical}, {"best_ties", best_ties}, {"capped", capped}};
  }
};

// The summary fields binarize and pairs share.
void add_pair_counts(ojson& s, const PairCounts& n) {
  s["counts"] = n.to_json();
  s["ties"] = n.tied_rows + n.tied_pairs;
  s["below_gap"] = n.below_gap;
  s["identical"] = n.identical;
  s["pairs_per_row"] = n.rows ? static_cast<double>(n.pairs) / static_cast<double>(n.rows) : 0.0;
}

struct Pick {
  size_t chosen, rejected;
};

size_t pick_one(const std::vector<size_t>& v, Rng& rng) { return v[rng.below(v.size())]; }

// Pairs from per-completion scores (higher is better). Ties are never paired.
std::vector<Pick> make_pairs(const std::vector<double>& score, const std::vector<Text>& comp, Strategy st,
                             double min_gap, int64_t max_pairs, Rng& rng, PairCounts& n) {
  ++n.rows;
  std::vector<Pick> out;
  const size_t k = score.size();
  const double hi = *std::max_element(score.begin(), score.end());
  const double lo = *std::min_element(score.begin(), score.end());
  if (hi == lo) {
    ++n.tied_rows;
    ++n.rows_without_pair;
    return out;
  }
  std::vector<size_t> best, worst;
  for (size_t i = 0; i < k; ++i) {
    if (score[i] == hi) best.push_back(i);
    if (score[i] == lo) worst.push_back(i);
  }
  if (st != Strategy::all_pairs && best.size() > 1) ++n.best_ties;
  if (st == Strategy::best_vs_worst) {
    if (hi - lo < min_gap) {
      ++n.below_gap;
    } else {
      const size_t c = pick_one(best, rng);
      std::vector<size_t> cand;
      for (size_t j : worst)
        if (!(comp[j] == comp[c])) cand.push_back(j);
      if (cand.empty()) ++n.identical;
      else out.push_back({c, pick_one(cand, rng)});
    }
  } else if (st == Strategy::best_vs_random) {
    const size_t c = pick_one(best, rng);
    std::vector<size_t> cand;
    bool gap_blocked = false, same_blocked = false;
    for (size_t j = 0; j < k; ++j) {
      if (score[j] >= hi) continue;
      if (hi - score[j] < min_gap) {
        gap_blocked = true;
        continue;
      }
      if (comp[j] == comp[c]) {
        same_blocked = true;
        continue;
      }
      cand.push_back(j);
    }
    if (!cand.empty()) out.push_back({c, pick_one(cand, rng)});
    else if (gap_blocked) ++n.below_gap;
    else if (same_blocked) ++n.identical;
  } else {
    for (size_t i = 0; i < k; ++i)
      for (size_t j = i + 1; j < k; ++j) {
        if (score[i] == score[j]) {
          ++n.tied_pairs;
          continue;
        }
        const size_t c = score[i] > score[j] ? i : j, r = c == i ? j : i;
        if (score[c] - score[r] < min_gap) {
          ++n.below_gap;
          continue;
        }
        if (comp[c] == comp[r]) {
          ++n.identical;
          continue;
        }
        out.push_back({c, r});
      }
    if (max_pairs > 0 && static_cast<int64_t>(out.size()) > max_pairs) {
      // Seeded subset, kept in enumeration order.
      std::vector<size_t> idx(out.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      for (size_t i = 0; i < static_cast<size_t>(max_pairs); ++i) std::swap(idx[i], idx[i + rng.below(idx.size() - i)]);
      idx.resize(max_pairs);
      std::sort(idx.begin(), idx.end());
      std::vector<Pick> sub;
      for (size_t i : idx) sub.push_back(out[i]);
      n.capped += static_cast<int64_t>(out.size()) - max_pairs;
      out = std::move(sub);
    }
  }
  if (out.empty()) ++n.rows_without_pair;
  n.pairs += static_cast<int64_t>(out.size());
  return out;
}

// Scores of a ranked record: its scores, or (n - position) from a ranking.
std::vector<double> effective_scores(const RankedRecord& r, bool* from_ranking) {
  *from_ranking = r.scores.empty();
  if (!r.scores.empty()) return r.scores;
  std::vector<double> s(r.completions.size(), 0.0);
  const size_t n = r.ranking.size();
  for (size_t pos = 0; pos < n; ++pos) s[r.ranking[pos]] = static_cast<double>(n - pos);
  return s;
}

Text as_user(const Text& p) {
  if (p.is_chat) return p;
  Text t;
  t.is_chat = true;
  std::vector<Message> ms;
  if (split_hh_transcript(p.text, ms)) {
    if (!ms.empty() && ms.back().role == "assistant" && text_blank(Text{false, ms.back().content, {}})) ms.pop_back();
    t.messages = ms;
  } else {
    t.messages = {{"user", p.text}};
  }
  return t;
}

Text as_assistant(const Text& c) {
  if (c.is_chat) return c;
  Text t;
  t.is_chat = true;
  std::string s = c.text;
  if (!s.empty() && s.front() == ' ') s.erase(0, 1);
  t.messages = {{"assistant", s}};
  return t;
}

ojson pair_json(const Text& prompt, const Text& chosen, const Text& rejected, std::optional<double> sc,
                std::optional<double> sr, bool conversational) {
  PreferenceRecord r;
  r.prompt = conversational ? as_user(prompt) : prompt;
  r.chosen = conversational ? as_assistant(chosen) : chosen;
  r.rejected = conversational ? as_assistant(rejected) : rejected;
  r.score_chosen = sc;
  r.score_rejected = sr;
  return preference_to_json(r);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// binarize

ojson data_binarize(const fs::path& in, const fs::path& out, const BinarizeOptions& opt) {
  const Strategy st = parse_strategy(opt.strategy, "binarize");
  if (opt.min_gap < 0) throw InputError("binarize: --min-gap must be >= 0");
  if (opt.max_pairs_per_prompt < 0) throw InputError("binarize: --max-pairs-per-prompt must be >= 0");
  ReadReport rep;
  JsonlWriter w(out);
  PairCounts n;
  int64_t ranked_rows = 0;
  for_each_ranked(in, opt.read, rep, [&](RankedRecord&& r) {
    bool from_ranking = false;
    const std::vector<double> s = effective_scores(r, &from_ranking);
    ranked_rows += from_ranking;
    Rng rng(opt.seed, static_cast<uint64_t>(r.line));
    for (const Pick& p : make_pairs(s, r.completions, st, opt.min_gap, opt.max_pairs_per_prompt, rng, n)) {
      std::optional<double> sc, sr;
      if (!from_ranking) {
        sc = s[p.chosen];
        sr = s[p.rejected];
      }
      w.write(pair_json(r.prompt, r.completions[p.chosen], r.completions[p.rejected], sc, sr, opt.conversational));
    }
  });
  w.close();
  ojson s;
  s["tool"] = "binarize";
  s["input"] = in.string();
  s["output"] = out.string();
  s["read"] = rep.to_json();
  s["written"] = w.lines();
  s["strategy"] = opt.strategy;
  s["score_field"] = opt.read.score_field.empty() ? "default" : opt.read.score_field;
  s["min_gap"] = opt.min_gap;
  s["seed"] = opt.seed;
  s["ranked_rows"] = ranked_rows;
  add_pair_counts(s, n);
  return s;
}

// ---------------------------------------------------------------------------------------------
// pairs

ojson data_pairs(const fs::path& in, const fs::path& out, const PairsOptions& opt) {
  const Strategy st = parse_strategy(opt.strategy, "pairs");
  if (opt.min_gap < 0) throw InputError("pairs: --min-gap must be >= 0");
  ReadReport rep;
  JsonlWriter w(out);
  PairCounts n;
  // One row per sample {prompt, completion, score}: grouped by prompt (in first-seen order).
  struct Group {
    Text prompt;
    std::vector<Text> completions;
    std::vector<double> scores;
    int64_t line;
  };
  std::vector<Group> groups;
  std::unordered_map<uint64_t, size_t> group_of;
  int64_t list_rows = 0, sample_rows = 0;

  auto emit = [&](const Text& prompt, const std::vector<Text>& comps, const std::vector<double>& scores, int64_t line) {
    Rng rng(opt.seed, static_cast<uint64_t>(line));
    for (const Pick& p : make_pairs(scores, comps, st, opt.min_gap, opt.max_pairs_per_prompt, rng, n))
      w.write(pair_json(prompt, comps[p.chosen], comps[p.rejected], scores[p.chosen], scores[p.rejected], false));
  };

  const std::string kc = opt.read.columns.count("completion") ? opt.read.columns.at("completion") : "completion";
  const std::string kp = opt.read.columns.count("prompt") ? opt.read.columns.at("prompt") : "prompt";
  for_each_jsonl_object(in, opt.read, rep, [&](int64_t line, const json& row) {
    if (!row.contains(kc)) {
      std::optional<RankedRecord> r = parse_ranked_row(row, opt.read, rep);
      if (!r) return;
      ++rep.kept;
      ++list_rows;
      bool from_ranking = false;
      emit(r->prompt, r->completions, effective_scores(*r, &from_ranking), line);
      return;
    }
    // {prompt, completion, score}: parse the texts, then the score.
    const json* pv = row.contains(kp) ? &row[kp] : nullptr;
    if (!pv) throw RowError("field '" + kp + "': missing (expected a string or a list of messages)");
    json probe = {{"prompt", *pv}, {"completion", row[kc]}, {"label", true}};
    ReadOptions plain = opt.read;
    plain.columns.clear();
    std::optional<UnpairedRecord> u = parse_unpaired_row(probe, plain, rep);
    if (!u) return;
    std::string ks = opt.read.score_field;
    if (ks.empty()) ks = row.contains("score") ? "score" : (row.contains("reward") ? "reward" : "score");
    if (!row.contains(ks)) throw RowError("field '" + ks + "': missing (expected a number)");
    const json& sv = row[ks];
    double score;
    if (sv.is_number()) score = sv.get<double>();
    else if (sv.is_boolean()) score = sv.get<bool>() ? 1.0 : 0.0;
    else if (sv.is_null()) {
      ++rep.notes["unscored_completions"];
      return;
    } else {
      throw RowError("field '" + ks + "': expected a number, got " + std::string(sv.type_name()));
    }
    ++rep.kept;
    ++sample_rows;
    const uint64_t h = hash64(text_key(u->prompt));
    auto it = group_of.find(h);
    if (it == group_of.end()) {
      it = group_of.emplace(h, groups.size()).first;
      groups.push_back({u->prompt, {}, {}, line});
    }
    groups[it->second].completions.push_back(std::move(u->completion));
    groups[it->second].scores.push_back(score);
  });
  int64_t single = 0;
  for (const auto& g : groups) {
    if (g.completions.size() < 2) {
      ++single;
      continue;
    }
    emit(g.prompt, g.completions, g.scores, g.line);
  }
  w.close();
  ojson s;
  s["tool"] = "pairs";
  s["input"] = in.string();
  s["output"] = out.string();
  s["read"] = rep.to_json();
  s["written"] = w.lines();
  s["strategy"] = opt.strategy;
  s["min_gap"] = opt.min_gap;
  s["seed"] = opt.seed;
  s["list_rows"] = list_rows;
  s["sample_rows"] = sample_rows;
  s["prompt_groups"] = groups.size();
  s["groups_with_one_sample"] = single;
  add_pair_counts(s, n);
  return s;
}

// ---------------------------------------------------------------------------------------------
// noise

ojson data_noise(const fs::path& in, const fs::path& out, const NoiseOptions& opt) {
  if (!(opt.fraction >= 0 && opt.fraction <= 1)) throw InputError("noise: --fraction must be in [0, 1]");
  // Pass 1: how many pairs there are, so that exactly round(fraction * N) are flipped.
  ReadReport count_rep;
  int64_t total = 0;
  for_each_preference(in, opt.read, count_rep, [&](PreferenceRecord&&) { ++total; });
  const int64_t k = static_cast<int64_t>(std::llround(opt.fraction * static_cast<double>(total)));
  // Pass 2: selection sampling (Knuth's algorithm S) with one seeded stream.
  ReadReport rep;
  JsonlWriter w(out);
  Rng rng(opt.seed, /*stream=*/0x6E6F6973);
  int64_t seen = 0, flipped = 0;
  for_each_preference(in, opt.read, rep, [&](PreferenceRecord&& r) {
    const bool flip = static_cast<double>(total - seen) * rng.uniform() < static_cast<double>(k - flipped);
    ++seen;
    if (flip) {
      ++flipped;
      std::swap(r.chosen, r.rejected);
      std::swap(r.score_chosen, r.score_rejected);
    }
    ojson j = preference_to_json(r);
    if (opt.mark) j["label_flipped"] = flip;
    w.write(j);
  });
  w.close();
  ojson s;
  s["tool"] = "noise";
  s["input"] = in.string();
  s["output"] = out.string();
  s["read"] = rep.to_json();
  s["written"] = w.lines();
  s["fraction"] = opt.fraction;
  s["seed"] = opt.seed;
  s["flipped"] = flipped;
  s["implied_agreement"] = total ? 1.0 - static_cast<double>(flipped) / static_cast<double>(total) : 1.0;
  return s;
}

}  // namespace rlhf
