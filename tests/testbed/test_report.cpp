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

  // Legend entries: methods (rq1's best-of-n rows too), runs, fits. A fit without alpha and beta
  // (dpo) has points but no curve, and its note goes to the caption.
  for (const char* name : {"dpo", "rm+ppo", "best-of-n", "cdpo", "rm+rloo", "rm+ppo/gamma=0.05/seed=1",
                           "dpo/gamma=0.05/seed=1", "best-of-n gold", "best-of-n proxy", "rm+ppo gold",
                           "rm+ppo proxy", "dpo gold"})
    EXPECT_NE(html.find(std::string(">") + name + "</text>"), std::string::npos) << name;
  EXPECT_NE(html.find(">best-of-n fit d(a-b d) (α=0.3, β=0.1)</text>"), std::string::npos);
  EXPECT_NE(html.find(">rm+ppo fit d(a-b log d) (α=0.18, β=0.12)</text>"), std::string::npos);
  EXPECT_EQ(html.find(">dpo fit"), std::string::npos);
  EXPECT_EQ(html.find(">dpo proxy</text>"), std::string::npos);  // all its proxies are null
  EXPECT_NE(html.find("dpo: too few points away from the base to fit"), std::string::npos);
  // rq3's series are methods, not annotators (one per agreement level).
  EXPECT_EQ(html.find(">dpo annotator="), std::string::npos);
  // A method keeps its colour in every plot.
  EXPECT_GE(count(html, "data-series=\"dpo\" data-colour=\"#1f77b4\""), 5u);
  EXPECT_EQ(count(html, "data-series=\"dpo\" data-colour=\"#"), count(html, "data-series=\"dpo\" data-colour=\"#1f77b4\""));
  EXPECT_GE(count(html, "data-series=\"rm+ppo\" data-colour=\"#d62728\""), 3u);

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
  // The answer comes first: before the annotators, with the effect, its CI and a link to the suite.
  EXPECT_LT(html.find("<section id=\"answer\">"), html.find("<section id=\"annotators\">"));
  EXPECT_NE(html.find("<td class=\"num\">+0.07 [0.02, 0.12]</td>"), std::string::npos);
  EXPECT_NE(html.find("<a href=\"#suite-rq1\">evidence</a>"), std::string::npos);
  EXPECT_NE(html.find("RAFT is a strong baseline (needs rq5&#39;s RAFT arm)"), std::string::npos);

  // Strings from the JSON are escaped.
  EXPECT_NE(html.find("gpt4-like &lt;len-bias&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<len-bias>"), std::string::npos);
  EXPECT_NE(html.find("gold(DPO) - gold(RM+PPO) &lt;matched&gt; &amp; frontier"), std::string::npos);

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
  results["suites"]["rq1"]["best_of_n"][1]["kl"] = inf;
  results["wall_seconds"] = inf;
  const std::string html = render_report(results);
  EXPECT_FALSE(has_nonfinite_text(html));
  EXPECT_EQ(count(html, "<svg"), 7u);
  EXPECT_EQ(html.find(">best-of-n fit"), std::string::npos);  // no curve without alpha
  EXPECT_FALSE(has_nonfinite_text(summary_table(results)));
}

TEST(Report, MissingDataGivesNotesNotCrashes) {
  for (const json& results :
       {json(nullptr), json::array(), json::object(), json::parse(R"({"runs": "x", "suites": 3})"),
        json::parse(R"({"runs": [{"suite": "rq1", "checkpoints": 5}, 7, {"suite": "rq3",
                       "task": "valence", "method": "dpo", "params": {"agreement": "high"},
                       "checkpoints": [{"kl": null, "gold": "x"}], "final": {}}],
                       "suites": {"overopt": {"fits": [{"points": [[null], 1, []]}]}, "rq2": {}},
                       "tasks": {"valence": null}, "annotators": [1], "verdicts": [{}, 3, {"effect": 1, "per_seed": "x"}], "checks": [2], "untested": [{}]})")}) {
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
  EXPECT_NE(html.find("No verdicts."), std::string::npos);
}

// rq3 lines: one per method, split by a variant param (noise) but not by the annotator that
// stands behind each agreement level.
TEST(Report, AgreementSeriesSplitByVariantNotByAnnotator) {
  json results = {{"runs", json::array()}};
  auto add = [&](const std::string& method, json params, double gold) {
    results["runs"].push_back({{"suite", "rq3"}, {"task", "valence"}, {"method", method}, {"params", params},
                               {"checkpoints", {{{"step", 0}, {"kl", 0.0}, {"gold", 0.5}},
                                                {{"step", 10}, {"kl", 2.0}, {"gold", gold}}}}});
  };
  for (double a : {0.7, 0.8, 0.9}) {
    add("dpo", {{"agreement", a}, {"noise", "bt"}}, a - 0.1);
    add("dpo", {{"agreement", a}, {"noise", "flip"}}, a - 0.15);
    add("ipo", {{"agreement", a}, {"annotator", "flip:" + std::to_string(a)}}, a - 0.2);
  }
  const std::string html = render_report(results);
  for (const char* name : {">dpo noise=bt</text>", ">dpo noise=flip</text>", ">ipo</text>"})
    EXPECT_NE(html.find(name), std::string::npos) << name;
  EXPECT_EQ(html.find("annotator=flip"), std::string::npos);
}

// rq5's pass@k rows: one line per method over log2 k with CI bars; per-prompt values stay out of
// the table.
TEST(Report, PassAtKPlotOneLinePerMethod) {
  json results = {{"suites", {{"rq5", {{"pass_at_k", json::array()}}}}}};
  for (const char* m : {"base", "rloo"})
    for (int k : {1, 4, 64})
      results["suites"]["rq5"]["pass_at_k"].push_back(
          {{"method", m}, {"k", k}, {"pass", 0.5 + 0.006 * k}, {"ci", {0.4, 0.99}}, {"prompt_pass", {0.25, 0.75}}});
  const std::string html = render_report(results);
  EXPECT_EQ(count(html, "aria-label=\"pass@k on Verify\""), 1u);
  for (const char* name : {">base</text>", ">rloo</text>", ">log2 k (k: samples per prompt)</text>"})
    EXPECT_NE(html.find(name), std::string::npos) << name;
  EXPECT_EQ(count(html, "<polyline"), 2u);
  EXPECT_EQ(html.find("prompt_pass"), std::string::npos);
  EXPECT_NE(html.find("<th>k</th>"), std::string::npos);
}

TEST(Report, PerSeedTablesAndSuiteScalars) {
  const json results = json::parse(R"({"seeds": [3, 4], "suites": {"rq2": {
      "table": [{"scorer": "rm", "accuracy": 0.8}], "verifier_pairs": 120,
      "per_seed": [{"table": [{"scorer": "rm", "accuracy": 0.8}]}, {"table": [{"scorer": "rm", "accuracy": 0.7}]}]}}})");
  const std::string html = render_report(results);
  EXPECT_NE(html.find("<summary>Per seed (2)</summary>"), std::string::npos);
  EXPECT_NE(html.find("<h4>seed 4</h4>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">0.7</td>"), std::string::npos);
  EXPECT_NE(html.find("<dt>verifier_pairs</dt><dd>120</dd>"), std::string::npos);
}

TEST(Report, SummaryClipsLongCellsOfRunlessSuites) {
  json results = json::parse(R"({"suites": {"bandits": {"table": [{"check": "ipo_vs_dpo"}]}}})");
  results["suites"]["bandits"]["table"][0]["explanation"] = std::string(80, 'x') + "é";
  const std::string s = summary_table(results);
  EXPECT_NE(s.find(std::string(47, 'x') + "…"), std::string::npos) << s;
  EXPECT_EQ(s.find(std::string(48, 'x')), std::string::npos) << s;
}

TEST(Report, SummaryTableHasHeadlinesAndVerdicts) {
  const std::string s = summary_table(fixture());
  // The answer first, then every arm pooled over the seeds with its CI and KL.
  EXPECT_EQ(s.find("The answer (docs/testbed.md §8), effects pooled over seeds [1]: 2 reproduced, 1 not reproduced, "
                   "1 inconclusive"),
            s.find("\n\n") + 2) << s;
  EXPECT_TRUE(std::regex_search(s, std::regex(R"(\n +1a +reproduced +\+0\.07 \[0\.02, 0\.12\] +Clean Valence)"))) << s;
  EXPECT_TRUE(std::regex_search(s, std::regex(R"(\n +7d +not reproduced +-0\.04 \[-0\.07, -0\.01\] )"))) << s;
  EXPECT_NE(s.find("Not tested (no arm yet): RAFT is a strong baseline"), std::string::npos) << s;
  EXPECT_NE(s.find("Checks (bandits): ipo_vs_dpo observed"), std::string::npos) << s;
  EXPECT_TRUE(std::regex_search(
      s, std::regex(R"(\n rq1 +valence +dpo +beta: 0\.1 +1 +0\.729 \[0\.709, 0\.749\] +2\.88\n)"))) << s;
  EXPECT_TRUE(std::regex_search(s, std::regex(R"(\n length +lists +rm\+ppo +gamma: 0\.05 +1 +0\.404 )"))) << s;
  EXPECT_NE(s.find("rq2: Is DPO's implicit reward a classifier reward model?"), std::string::npos) << s;
  EXPECT_FALSE(has_nonfinite_text(s));
}

}  // namespace
}  // namespace rlhf::testbed
