// The `rlhf bench` report, drawn from results.json alone (docs/bench-results.md).
//
// render_report returns one self-contained HTML page: inline CSS and inline SVG plots, no
// script, no network. Sections: the header (profile, preset, seeds, machine, wall time, the
// command that reproduces it), the annotators, the base policy per task, one section per suite
// (its question, its table, its plots) and the docs/testbed.md §8 pattern verdicts.
//
// Plots, each an <svg class="plot">:
//   - reward–KL frontier per (suite, task) with runs: gold vs kl of every checkpoint, one colour
//     per method, and the method's upper frontier (running maximum of gold along KL) as a line;
//   - rq1: gold vs cumulative FLOPs per task, one line per run, coloured by method;
//   - rq3: final gold vs params.agreement per task, one line per method, 95% CI error bars;
//   - length: checkpoint length vs step per task, one line per run;
//   - overopt: gold (filled) and proxy (hollow) vs d = sqrt(KL) from suites.overopt.fits, with
//     the fitted form d(α − βd) or d(α − β log d) as a curve, per task.
// A method, optimizer or run keeps its colour in every plot of one report. Missing data gives a
// short "no data" note instead of a plot; null and non-finite values are skipped, never printed.
//
// summary_table is the terminal view: a fixed-width table per suite/task/method (runs, the best
// run's final gold with its CI, its KL and length and sweep point), the tables of suites without
// runs, then the pattern verdicts.
//
// Example:
//   auto results = nlohmann::json::parse(std::ifstream(dir + "/results.json"));
//   std::ofstream(dir + "/report.html") << render_report(results);
//   std::cout << summary_table(results);
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace rlhf::testbed {

std::string render_report(const nlohmann::json& results);
std::string summary_table(const nlohmann::json& results);

// The per-prompt and per-pair arrays of results-full.json, the verdicts' data ("prompt_gold",
// "correct", ...): results.json and the report's tables leave them out.
bool per_unit_field(const std::string& key);

// Helpers shared by both views, exposed for tests.
// &, <, >, " and ' as entities.
std::string html_escape(const std::string& s);
// A number to 3 significant digits: "0.48", "612", "1230", "1.2e12"; "—" when not finite.
std::string format_number(double x);
// A JSON value as one table cell: integers exactly, other numbers by format_number, a pair of
// numbers as "[lo, hi]", null as "—", an object as "k: v, ..." and a long array as "(n values)".
// Not escaped.
std::string format_value(const nlohmann::json& v);

}  // namespace rlhf::testbed
