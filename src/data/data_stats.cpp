// rlhf data stats: what is in a preference dataset, in one streaming pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>
#include <unordered_set>

#include "data/collate.h"
#include "data/text_match.h"
#include "data/tools.h"

namespace rlhf {

using ojson = nlohmann::ordered_json;

int64_t LengthCounter::operator()(const Text& t) const {
  const std::string s = text_flat(t);
  return count ? count(s) : count_words(s);
}

namespace {

ojson distribution(std::vector<int32_t> v, int bins) {
  ojson d;
  d["count"] = v.size();
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (int32_t x : v) sum += x;
  auto pct = [&](double p) {  // nearest rank
    const size_t k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::max<size_t>(k, 1) - 1];
  };
  d["min"] = v.front();
  d["mean"] = std::round(sum / static_cast<double>(v.size()) * 100.0) / 100.0;
  d["p50"] = pct(50);
  d["p90"] = pct(90);
  d["p99"] = pct(99);
  d["max"] = v.back();
  // Equal-width bins over [0, max]: at most `bins`, fewer when the values are small.
  const int64_t hi = v.back();
  const int64_t width = std::max<int64_t>(1, (hi + bins) / bins);
  const int64_t used = hi / width + 1;
  std::vector<int64_t> edges, counts(used, 0);
  for (int64_t b = 0; b <= used; ++b) edges.push_back(b * width);
  for (int32_t x : v) counts[x / width]++;
  d["histogram"] = {{"edges", edges}, {"counts", counts}};
  return d;
}

std::string fmt(double x, int prec = 2) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, x);
  return b;
}

}  // namespace

ojson data_stats(const std::filesystem::path& in, const StatsOptions& opt) {
  ReadOptions ro = opt.read;
  ro.keep_degenerate = true;  // counted here, not dropped
  ReadReport rep;
  std::vector<int32_t> lp, lc, lr;
  int64_t n = 0, chosen_longer = 0, equal_length = 0, chat_rows = 0;
  int64_t empty = 0, identical = 0, with_scores = 0, score_ties = 0, score_inverted = 0, with_margin = 0;
  int64_t dup_prompt_rows = 0, dup_pairs = 0, contradicting = 0;
  std::unordered_map<uint64_t, int64_t> prompt_count;
  std::unordered_set<uint64_t> pairs;
  int64_t encode_errors = 0, seam_mismatch_rows = 0;
  std::string first_encode_error;
  EncodeReport erep;
  for_each_preference(in, ro, rep, [&](PreferenceRecord&& r) {
    ++n;
    int64_t p = 0, c = 0, j = 0;
    bool have_lengths = true;
    if (opt.encoder) {
      try {
        const int64_t before = erep.seam_mismatches;
        const TokenizedExample ex = encode_example(*opt.encoder, r.prompt, {&r.chosen, &r.rejected}, {}, &erep, r.line);
        seam_mismatch_rows += erep.seam_mismatches > before;
        p = static_cast<int64_t>(ex.prompt.size());
        c = static_cast<int64_t>(ex.completions[0].size());
        j = static_cast<int64_t>(ex.completions[1].size());
      } catch (const InputError& e) {
        if (encode_errors++ == 0) first_encode_error = e.what();
        have_lengths = false;
      }
    } else {
      p = opt.length(r.prompt);
      c = opt.length(r.chosen);
      j = opt.length(r.rejected);
    }
    if (have_lengths) {
      lp.push_back(static_cast<int32_t>(p));
      lc.push_back(static_cast<int32_t>(c));
      lr.push_back(static_cast<int32_t>(j));
      chosen_longer += c > j;
      equal_length += c == j;
    }
    chat_rows += r.prompt.is_chat || r.chosen.is_chat;
    const bool is_empty = text_blank(r.chosen) || text_blank(r.rejected);
    empty += is_empty;
    identical += !is_empty && r.chosen == r.rejected;
    if (r.score_chosen && r.score_rejected) {
      ++with_scores;
      score_ties += *r.score_chosen == *r.score_rejected;
      score_inverted += *r.score_chosen < *r.score_rejected;
    }
    with_margin += r.margin.has_value();
    const std::string kp = text_key(r.prompt), kc = text_key(r.chosen), kr = text_key(r.rejected);
    const uint64_t hp = hash64(kp);
    if (prompt_count[hp]++ > 0) ++dup_prompt_rows;
    const uint64_t hc = hash64(kc), hr = hash64(kr);
    const uint64_t pair = mix64(hp ^ mix64(hc ^ mix64(hr + 1)));
    const uint64_t reversed = mix64(hp ^ mix64(hr ^ mix64(hc + 1)));
    if (!pairs.insert(pair).second) ++dup_pairs;
    if (hc != hr && pairs.count(reversed)) ++contradicting;
  });
  int64_t max_per_prompt = 0;
  for (const auto& [h, k] : prompt_count) max_per_prompt = std::max(max_per_prompt, k);
  auto rate = [&](int64_t k) {
    const double m = static_cast<double>(lc.size());  // rows with lengths
    return m > 0 ? std::round(static_cast<double>(k) / m * 10000.0) / 10000.0 : 0.0;
  };

  ojson s;
  s["tool"] = "stats";
  s["input"] = in.string();
  s["read"] = rep.to_json();
  s["pairs"] = n;
  s["conversational_rows"] = chat_rows;
  s["length_unit"] = opt.encoder ? "tokens" : opt.length.unit;
  if (opt.encoder) {
    s["token_lengths"] = "as trained: prompt with specials or the chat template's generation prompt, completions with EOS";
    s["encode_errors"] = encode_errors;
    if (encode_errors) s["first_encode_error"] = first_encode_error;
    s["seam_mismatch_rows"] = seam_mismatch_rows;
  }
  s["length"] = {{"prompt", distribution(lp, opt.hist_bins)},
                 {"chosen", distribution(lc, opt.hist_bins)},
                 {"rejected", distribution(lr, opt.hist_bins)}};
  s["chosen_longer_rate"] = rate(chosen_longer);
  s["equal_length_rate"] = rate(equal_length);
  s["distinct_prompts"] = prompt_count.size();
  s["duplicate_prompt_rows"] = dup_prompt_rows;
  s["max_pairs_per_prompt"] = max_per_prompt;
  s["duplicate_pairs"] = dup_pairs;
  s["contradicting_pairs"] = contradicting;
  s["empty_pairs"] = empty;
  s["identical_pairs"] = identical;
  s["scored_pairs"] = with_scores;
  s["score_ties"] = score_ties;
  s["score_inverted"] = score_inverted;
  s["margin_rows"] = with_margin;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Human-readable summaries

namespace {

std::string histogram_text(const ojson& d, const std::string& name) {
  if (!d.contains("histogram")) return "";
  const auto& edges = d["histogram"]["edges"];
  const auto& counts = d["histogram"]["counts"];
  int64_t top = 1;
  for (const auto& c : counts) top = std::max<int64_t>(top, c.get<int64_t>());
  std::string out = "  " + name + ":\n";
  for (size_t b = 0; b < counts.size(); ++b) {
    const int64_t lo = edges[b].get<int64_t>(), hi = edges[b + 1].get<int64_t>() - 1;
    const std::string range = lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi);
    char left[96];
    std::snprintf(left, sizeof left, "    %15s %8lld ", range.c_str(), static_cast<long long>(counts[b].get<int64_t>()));
    const int64_t bar = (counts[b].get<int64_t>() * 40 + top - 1) / top;
    out += left + std::string(static_cast<size_t>(bar), '#') + "\n";
  }
  return out;
}

std::string read_line(const ojson& r) {
  std::string s = "read " + std::to_string(r.value("rows", 0)) + " rows, kept " + std::to_string(r.value("kept", 0));
  for (const auto& [k, v] : r.items())
    if (k != "rows" && k != "kept" && k != "first_errors" && v.is_number() && v.get<int64_t>() != 0)
      s += ", " + k + " " + std::to_string(v.get<int64_t>());
  s += "\n";
  if (r.contains("first_errors"))
    for (const auto& e : r["first_errors"]) s += "  skipped: " + e.get<std::string>() + "\n";
  return s;
}

}  // namespace

std::string summary_text(const ojson& s) {
  const std::string tool = s.value("tool", "");
  std::string out = "rlhf data " + tool + ": " + s.value("input", "") + "\n";
  if (s.contains("read")) out += read_line(s["read"]);
  if (tool == "stats") {
    const std::string unit = s["length_unit"].get<std::string>();
    out += std::to_string(s["pairs"].get<int64_t>()) + " pairs (" +
           std::to_string(s["conversational_rows"].get<int64_t>()) + " conversational); lengths in " + unit + "\n";
    out += "  field        min     mean      p50      p90      p99      max\n";
    for (const char* f : {"prompt", "chosen", "rejected"}) {
      const ojson& d = s["length"][f];
      if (!d.contains("min")) continue;
      char line[160];
      std::snprintf(line, sizeof line, "  %-9s %6lld %8s %8lld %8lld %8lld %8lld\n", f,
                    static_cast<long long>(d["min"].get<int64_t>()), fmt(d["mean"].get<double>(), 1).c_str(),
                    static_cast<long long>(d["p50"].get<int64_t>()), static_cast<long long>(d["p90"].get<int64_t>()),
                    static_cast<long long>(d["p99"].get<int64_t>()), static_cast<long long>(d["max"].get<int64_t>()));
      out += line;
    }
    out += "chosen longer than rejected: " + fmt(s["chosen_longer_rate"].get<double>() * 100, 1) +
           "% (equal length " + fmt(s["equal_length_rate"].get<double>() * 100, 1) + "%)\n";
    out += "distinct prompts " + std::to_string(s["distinct_prompts"].get<int64_t>()) + ", duplicate prompt rows " +
           std::to_string(s["duplicate_prompt_rows"].get<int64_t>()) + " (max " +
           std::to_string(s["max_pairs_per_prompt"].get<int64_t>()) + " pairs per prompt), duplicate pairs " +
           std::to_string(s["duplicate_pairs"].get<int64_t>()) + ", contradicting pairs " +
           std::to_string(s["contradicting_pairs"].get<int64_t>()) + "\n";
    out += "empty pairs " + std::to_string(s["empty_pairs"].get<int64_t>()) + ", identical pairs " +
           std::to_string(s["identical_pairs"].get<int64_t>()) + "\n";
    if (s["scored_pairs"].get<int64_t>() > 0)
      out += "scored pairs " + std::to_string(s["scored_pairs"].get<int64_t>()) + ": ties " +
             std::to_string(s["score_ties"].get<int64_t>()) + ", chosen scored lower " +
             std::to_string(s["score_inverted"].get<int64_t>()) + "\n";
    out += "length histograms (" + unit + "):\n";
    for (const char* f : {"prompt", "chosen", "rejected"}) out += histogram_text(s["length"][f], f);
    return out;
  }
  if (s.contains("output")) out += "wrote " + std::to_string(s.value("written", 0)) + " rows to " +
                                   s["output"].get<std::string>() + "\n";
  if (s.contains("dropped")) {
    out += "dropped:";
    bool any = false;
    for (const auto& [k, v] : s["dropped"].items()) {
      out += " " + k + " " + std::to_string(v.get<int64_t>());
      any = true;
    }
    out += any ? "\n" : " none\n";
  }
  for (const char* k : {"flipped", "implied_agreement", "pairs_per_row", "matched_rows", "benchmark_items",
                        "ties", "below_gap", "identical"}) {
    if (!s.contains(k)) continue;
    out += std::string(k) + ": " + (s[k].is_number_float() ? fmt(s[k].get<double>(), 4) : s[k].dump()) + "\n";
  }
  if (s.contains("matches"))
    for (const auto& m : s["matches"])
      out += "  line " + std::to_string(m["line"].get<int64_t>()) + " ~ " + m["benchmark"].get<std::string>() + " (" +
             m["how"].get<std::string>() + "): " + m["benchmark_text"].get<std::string>() + "\n";
  return out;
}

}  // namespace rlhf
