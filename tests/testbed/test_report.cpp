// The bench report on a small hand-made results.json (tests/fixtures/bench/results_small.json):
// one SVG per expected plot, legends naming the series, escaped strings, no "nan"/"inf" even
// when values are non-finite, graceful notes for missing data, and the terminal summary.
//
// With RLHF_REPORT_OUT set, Report.FixtureHasEveryPlot also writes the page there;
// tests/testbed/report_render.sh screenshots it in headless Chromium.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <string>

#include "testbed/report.h"

namespace rlhf::testbed {
namespace {

using json = nlohmann::json;

json fixture() {
  std::ifstream in(std::string(RLHF_FIXTURES_DIR) + "/bench/results_small.json");
  EXPECT_TRUE(in.good());
  return json::parse(in);
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

// "nan", "inf", "infinity" as words, any case ("nano", the preset, is not one).
bool has_nonfinite_text(const std::string& s) {
  static const std::regex re(R"(\b-?(nan|inf|infinity)\b)", std::regex::icase);
  return std::regex_search(s, re);
}

TEST(Report, FormatNumberThreeSignificantDigits) {
  EXPECT_EQ(format_number(0.48), "0.48");
  EXPECT_EQ(format_number(0.70312), "0.703");
  EXPECT_EQ(format_number(5.1), "5.1");
  EXPECT_EQ(format_number(612.3), "612");
  EXPECT_EQ(format_number(1234.5), "1230");
  EXPECT_EQ(format_number(999.7), "1000");
  EXPECT_EQ(format_number(-0.04567), "-0.0457");
  EXPECT_EQ(format_number(0.00123), "0.00123");
  EXPECT_EQ(format_number(0.000123456), "1.23e-4");
  EXPECT_EQ(format_number(1.2e12), "1.2e12");
  EXPECT_EQ(format_number(0), "0");
  EXPECT_EQ(format_number(std::nan("")), "—");
  EXPECT_EQ(format_number(-std::numeric_limits<double>::infinity()), "—");
}

TEST(Report, FormatValueCells) {
  EXPECT_EQ(format_value(json::parse("[0.69, 0.73]")), "[0.69, 0.73]");
  EXPECT_EQ(format_value(json::parse("[null, 0.7312]")), "[—, 0.731]");
  EXPECT_EQ(format_value(json(nullptr)), "—");
  EXPECT_EQ(format_value(json(6000)), "6000");
  EXPECT_EQ(format_value(json("dpo")), "dpo");
  EXPECT_EQ(format_value(json::parse(R"({"beta": 0.1})")), "beta: 0.1");
  EXPECT_EQ(format_value(json::parse("[[0.5, 0.1, 0.2], [1, 0.2, 0.3]]")), "(2 values)");
  EXPECT_EQ(html_escape(R"(<a href="x">&'</a>)"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
}

TEST(Report, FixtureHasEveryPlot) {
  const json results = fixture();
  const std::string html = render_report(results);
  if (const char* out = std::getenv("RLHF_REPORT_OUT")) std::ofstream(out) << html;

  // rq1: frontier + FLOPs; rq3: frontier + agreement; length: frontier + length; overopt: fits.
  EXPECT_EQ(count(html, "<svg"), 7u);
  for (const char* title :
       {"Reward–KL frontier: rq1 / valence", "Gold vs compute: rq1 / valence",
        "Reward–KL frontier: rq3 / valence", "Gold vs annotator agreement: rq3 / valence",
        "Reward–KL frontier: length / lists", "Length over training: length / lists",
        "Over-optimization: valence"})
    EXPECT_EQ(count(html, std::string("aria-label=\"") + title + "\""), 1u) << title;

  // Legend entries and series: methods, runs, fits.
  for (const char* name : {"dpo", "ppo", "cdpo", "ppo/gamma=0.05/seed=1", "dpo/gamma=0.05/seed=1",
                           "bon gold", "bon proxy", "ppo gold", "ppo proxy"})
    EXPECT_NE(html.find(std::string(">") + name + "</text>"), std::string::npos) << name;
  EXPECT_NE(html.find(">bon fit d(a-b d) (α=0.3, β=0.1)</text>"), std::string::npos);
  EXPECT_NE(html.find(">ppo fit d(a-b log d) (α=0.18, β=0.12)</text>"), std::string::npos);
  // A method keeps its colour in every plot.
  EXPECT_GE(count(html, "data-series=\"dpo\" data-colour=\"#1f77b4\""), 3u);
  EXPECT_EQ(count(html, "data-series=\"dpo\" data-colour=\"#"), count(html, "data-series=\"dpo\" data-colour=\"#1f77b4\""));

  // Header, tables, verdicts.
  EXPECT_NE(html.find("rlhf bench --profile mini --seeds 1 --out DIR"),
            std::string::npos);
  EXPECT_NE(html.find("10 min 12 s"), std::string::npos);
  EXPECT_NE(html.find("Does a separate reward model matter at equal data and compute?"), std::string::npos);
  EXPECT_NE(html.find("<th>gold_at_kl.2</th><th>gold_at_kl.5</th><th>gold_at_kl.10</th>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">[0.69, 0.73]</td>"), std::string::npos);
  EXPECT_NE(html.find("<th>accuracy</th>"), std::string::npos);  // rq2, a suite without runs
  EXPECT_NE(html.find("class=\"verdict v-reproduced\">reproduced<"), std::string::npos);
  EXPECT_NE(html.find("class=\"verdict v-not-reproduced\">not reproduced<"), std::string::npos);
  EXPECT_NE(html.find("class=\"verdict v-inconclusive\">inconclusive<"), std::string::npos);

  // Strings from the JSON are escaped.
  EXPECT_NE(html.find("gpt4-like &lt;len-bias&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<len-bias>"), std::string::npos);
  EXPECT_NE(html.find("&gt; ppo 0.64 [0.61, 0.67] &amp; frontier"), std::string::npos);

  // Self-contained: no script, no external resource, no non-finite text.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_FALSE(has_nonfinite_text(html));
}

TEST(Report, NonFiniteValuesAreSkipped) {
  json results = fixture();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (auto& run : results["runs"])
    for (auto& cp : run["checkpoints"]) {
      if (cp["step"] == 50) cp["gold"] = nan;
      if (cp["step"] == 100) cp["kl"] = inf;
    }
  results["runs"][0]["final"]["gold_ci"] = json::array({-inf, nan});
  results["suites"]["rq1"]["table"][0]["best_gold"] = nan;
  results["suites"]["overopt"]["fits"][0]["alpha"] = nan;
  results["wall_seconds"] = inf;
  const std::string html = render_report(results);
  EXPECT_FALSE(has_nonfinite_text(html));
  EXPECT_EQ(count(html, "<svg"), 7u);
  EXPECT_EQ(html.find(">bon fit"), std::string::npos);  // no curve without alpha
  EXPECT_FALSE(has_nonfinite_text(summary_table(results)));
}

TEST(Report, MissingDataGivesNotesNotCrashes) {
  for (const json& results :
       {json(nullptr), json::array(), json::object(), json::parse(R"({"runs": "x", "suites": 3})"),
        json::parse(R"({"runs": [{"suite": "rq1", "checkpoints": 5}, 7, {"suite": "rq3",
                       "task": "valence", "method": "dpo", "params": {"agreement": "high"},
                       "checkpoints": [{"kl": null, "gold": "x"}], "final": {}}],
                       "suites": {"overopt": {"fits": [{"points": [[null], 1, []]}]}, "rq2": {}},
                       "tasks": {"valence": null}, "annotators": [1], "patterns": [{}]})")}) {
    const std::string html = render_report(results);
    EXPECT_NE(html.find("</html>"), std::string::npos);
    EXPECT_FALSE(has_nonfinite_text(html));
    EXPECT_NO_THROW(summary_table(results));
  }
  const json partial = json::parse(R"({"runs": [{"suite": "rq3", "task": "valence", "method": "dpo",
      "params": {"beta": 0.1}, "checkpoints": [{"step": 0, "kl": null, "gold": null}]}],
      "suites": {"overopt": {"fits": []}}})");
  const std::string html = render_report(partial);
  EXPECT_EQ(count(html, "<svg"), 0u);
  EXPECT_NE(html.find("Reward–KL frontier: rq3 / valence: no data."), std::string::npos);
  EXPECT_NE(html.find("Gold vs annotator agreement: rq3 / valence: no data."), std::string::npos);
  EXPECT_NE(html.find("Over-optimization fits: no data."), std::string::npos);
  EXPECT_NE(html.find("No patterns judged."), std::string::npos);
}

TEST(Report, SummaryTableHasHeadlinesAndVerdicts) {
  const std::string s = summary_table(fixture());
  // The best rq1 DPO run by final gold, with its CI, KL, length and sweep point.
  EXPECT_NE(s.find(" rq1     valence  dpo        2  0.729 [0.709, 0.749]  2.88     9.7  dpo/beta=0.1/seed=1\n"),
            std::string::npos) << s;
  EXPECT_NE(s.find("length  lists    ppo"), std::string::npos) << s;
  EXPECT_NE(s.find("rq2: Is DPO's implicit reward a classifier reward model?"), std::string::npos) << s;
  EXPECT_NE(s.find("Patterns (TESTBED.md §8): 2 reproduced, 1 not reproduced, 1 inconclusive"),
            std::string::npos) << s;
  for (const char* v : {" reproduced ", " not reproduced ", " inconclusive "})
    EXPECT_NE(s.find(v), std::string::npos) << v;
  EXPECT_NE(s.find("gold@KL=5: dpo 0.71 [0.69, 0.73] > ppo"), std::string::npos);  // raw text
  EXPECT_FALSE(has_nonfinite_text(s));
}

}  // namespace
}  // namespace rlhf::testbed
