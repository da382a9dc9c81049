// The bench report: results.json to one HTML page with inline SVG plots, and to a terminal table.
//
// Everything read from the JSON goes through the lenient accessors below (at, num, text): a
// missing key, a null, a string where a number was expected or a non-finite number reads as
// "absent", so a partial results.json renders with notes instead of failing. Every string from
// the JSON is HTML-escaped where it is written.
#include "testbed/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace rlhf::testbed {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Formatting

bool per_unit_field(const std::string& key) {
  return key == "correct" || key == "prompt_gold" || key == "prompt_length" || key == "prompt_proxy" ||
         key == "prompt_pass";
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

// "1.20" -> "1.2", "3.00" -> "3", "612" -> "612".
std::string strip_zeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

std::string format_number(double x) {
  if (!std::isfinite(x)) return "—";
  if (x == 0) return "0";
  int e = static_cast<int>(std::floor(std::log10(std::fabs(x))));
  const double unit = std::pow(10.0, e - 2);
  const double r = std::round(x / unit) * unit;
  if (std::fabs(r) >= std::pow(10.0, e + 1)) ++e;  // 999.7 rounds to 1000
  char buf[64];
  if (e >= -3 && e < 6) {
    std::snprintf(buf, sizeof buf, "%.*f", std::max(0, 2 - e), r);
    return strip_zeros(buf);
  }
  std::snprintf(buf, sizeof buf, "%.2e", x);  // "1.20e+12"
  std::string s(buf);
  const size_t at = s.find('e');
  return strip_zeros(s.substr(0, at)) + "e" + std::to_string(std::atoi(s.c_str() + at + 1));
}

std::string format_value(const json& v) {
  if (v.is_null()) return "—";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_unsigned()) return std::to_string(v.get<std::uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
  if (v.is_number()) return format_number(v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    bool scalars = true;
    for (const auto& e : v) scalars = scalars && !e.is_structured();
    if (!scalars || v.size() > 4) return "(" + std::to_string(v.size()) + " values)";
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_value(v[i]);
    return s + "]";
  }
  std::string s;  // object
  for (auto it = v.begin(); it != v.end(); ++it)
    s += (s.empty() ? "" : ", ") + it.key() + ": " + format_value(it.value());
  return s;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Lenient access

const json& at(const json& obj, const std::string& key) {
  static const json null_value;
  if (!obj.is_object()) return null_value;
  auto it = obj.find(key);
  return it == obj.end() ? null_value : *it;
}

const json& items(const json& v) {
  static const json empty = json::array();
  return v.is_array() ? v : empty;
}

std::optional<double> num(const json& v) {
  double d;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (v.is_string()) {  // a sweep point written as a string ("0.7")
    const std::string& s = v.get_ref<const std::string&>();
    char* end = nullptr;
    d = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0') return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

std::string text(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return format_value(v);
}

// Characters on a terminal: UTF-8 code points.
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// At most n code points, the last one "…" when cut.
std::string clip(const std::string& s, size_t n) {
  if (display_width(s) <= n) return s;
  size_t points = 0, i = 0;
  for (; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++points == n) break;
  return s.substr(0, i) + "…";
}

std::string format_seconds(double s) {
  if (s < 60) return format_number(s) + " s";
  const long t = std::lround(s);
  if (t < 3600) return std::to_string(t / 60) + " min " + std::to_string(t % 60) + " s";
  return std::to_string(t / 3600) + " h " + std::to_string(t / 60 % 60) + " min";
}

// "[lo, hi]" from a CI pair, "" when either end is absent.
std::string ci_text(const json& ci) {
  if (!ci.is_array() || ci.size() != 2) return "";
  auto lo = num(ci[0]), hi = num(ci[1]);
  if (!lo || !hi) return "";
  return "[" + format_number(*lo) + ", " + format_number(*hi) + "]";
}

// ---------------------------------------------------------------------------------------------
// The runs, as the plots and tables group them

struct Run {
  const json* run;
  std::string id, suite, task, method;
};

std::vector<Run> collect_runs(const json& results) {
  std::vector<Run> runs;
  for (const auto& r : items(at(results, "runs"))) {
    if (!r.is_object()) continue;
    std::string method = text(at(r, "method"));
    runs.push_back({&r, text(at(r, "id")), text(at(r, "suite")), text(at(r, "task")),
                    method.empty() ? "?" : method});
  }
  return runs;
}

const json& checkpoints(const Run& r) { return items(at(*r.run, "checkpoints")); }

// run.final, or the last checkpoint when final is absent.
const json& final_of(const Run& r) {
  const json& f = at(*r.run, "final");
  if (f.is_object() && !f.empty()) return f;
  static const json none;
  const json& cps = checkpoints(r);
  return cps.empty() ? none : cps.back();
}

// A run's name within its (suite, task): the id without "suite/task/", else method and params.
std::string run_label(const Run& r) {
  const std::string prefix = r.suite + "/" + r.task + "/";
  if (!r.id.empty() && r.id.rfind(prefix, 0) == 0) return r.id.substr(prefix.size());
  if (!r.id.empty()) return r.id;
  std::string s = r.method;
  const json& params = at(*r.run, "params");
  if (params.is_object())
    for (auto it = params.begin(); it != params.end(); ++it)
      s += " " + it.key() + "=" + format_value(it.value());
  return s;
}

// rq1..rqN by number, then length, overopt, then the rest by name.
bool suite_before(const std::string& a, const std::string& b) {
  auto key = [](const std::string& s) {
    if (s.size() > 2 && s.rfind("rq", 0) == 0 &&
        s.find_first_not_of("0123456789", 2) == std::string::npos)
      return std::make_tuple(0, std::atoi(s.c_str() + 2), s);
    if (s == "length") return std::make_tuple(1, 0, s);
    if (s == "overopt") return std::make_tuple(2, 0, s);
    return std::make_tuple(3, 0, s);
  };
  return key(a) < key(b);
}

std::vector<std::string> suite_names(const json& results, const std::vector<Run>& runs) {
  std::set<std::string> names;
  const json& suites = at(results, "suites");
  if (suites.is_object())
    for (auto it = suites.begin(); it != suites.end(); ++it) names.insert(it.key());
  for (const auto& r : runs) names.insert(r.suite);
  std::vector<std::string> out(names.begin(), names.end());
  std::sort(out.begin(), out.end(), suite_before);
  return out;
}

std::vector<const Run*> runs_of(const std::vector<Run>& runs, const std::string& suite,
                                const std::string& task) {
  std::vector<const Run*> out;
  for (const auto& r : runs)
    if (r.suite == suite && r.task == task) out.push_back(&r);
  return out;
}

std::vector<std::string> tasks_of(const std::vector<Run>& runs, const std::string& suite) {
  std::set<std::string> tasks;
  for (const auto& r : runs)
    if (r.suite == suite) tasks.insert(r.task);
  return {tasks.begin(), tasks.end()};
}

// ---------------------------------------------------------------------------------------------
// Colours: a method (or optimizer, or fit label) keeps one colour across the report. The bench's
// methods have fixed colours (names compared in lower case with '-' as '_'), so two reports
// agree; a name whose colour another name already took, and any other name, gets the next
// golden-angle hue. No two names of one report share a colour.

const std::map<std::string, std::string>& known_colours() {
  static const std::map<std::string, std::string> m = {
      {"dpo", "#1f77b4"},            {"offline_dpo", "#4e79a7"},    {"online_dpo", "#17becf"},
      {"rm+ppo", "#d62728"},         {"ppo", "#d62728"},            {"gold+ppo", "#393b79"},
      {"rm+ppo_tuned", "#ff7f0e"},   {"ppo_tuned", "#ff7f0e"},      {"rm+rloo", "#2ca02c"},
      {"rloo", "#59a14f"},           {"rloo_dense", "#637939"},     {"grpo", "#bcbd22"},
      {"ipo", "#9467bd"},            {"cdpo", "#e377c2"},           {"dpo+nll", "#e6550d"},
      {"best_of_n", "#8c564b"},      {"bon", "#8c564b"},            {"r_dpo", "#843c39"},
      {"rdpo", "#843c39"},           {"length_only_ppo", "#bd9e39"}, {"pl_rm+rloo", "#f28e2b"},
      {"bt_rm+rloo", "#8c6d31"},     {"dpo_all_pairs", "#6b6ecf"},  {"dpo_best_worst", "#ad494a"},
      {"listwise_dpo", "#a55194"},   {"iterative_dpo", "#756bb1"},  {"apa", "#7b4173"},
      {"reinforce", "#b5a000"},      {"kto", "#ce6dbd"},
  };
  return m;
}

std::string colour_key(const std::string& name) {
  std::string k;
  for (unsigned char c : name) k += c == '-' ? '_' : static_cast<char>(std::tolower(c));
  return k;
}

std::string hsl_hex(double h, double s, double l) {
  auto f = [&](double n) {
    const double k = std::fmod(n + h / 30.0, 12.0);
    const double a = s * std::min(l, 1 - l);
    return l - a * std::max(-1.0, std::min({k - 3, 9 - k, 1.0}));
  };
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(std::lround(f(0) * 255)),
                static_cast<int>(std::lround(f(8) * 255)), static_cast<int>(std::lround(f(4) * 255)));
  return buf;
}

class Colours {
 public:
  const std::string& of(const std::string& name) {
    auto it = assigned_.find(name);
    if (it != assigned_.end()) return it->second;
    auto k = known_colours().find(colour_key(name));
    std::string c;
    if (k != known_colours().end() && !used_.count(k->second)) c = k->second;
    while (c.empty() || used_.count(c)) c = hsl_hex(std::fmod(20.0 + 137.508 * next_++, 360.0), 0.7, 0.42);
    used_.insert(c);
    return assigned_.emplace(name, c).first->second;
  }

 private:
  std::map<std::string, std::string> assigned_;
  std::set<std::string> used_;
  int next_ = 0;
};

// ---------------------------------------------------------------------------------------------
// SVG plots

enum class Marker { none, circle, square, triangle, diamond };

struct Point {
  double x, y;
  double lo = NAN, hi = NAN;  // error bar, when both are finite
};

struct Series {
  std::string name{};  // legend text; empty: not in the legend
  std::string colour{};
  std::vector<Point> points{};
  bool line = false;
  Marker marker = Marker::circle;
  bool hollow = false;
  std::string dash{};        // stroke-dasharray, empty for solid
  bool legend_line = false;  // draw a line in the legend sample even if the series has none
  double dodge = 0;          // px to the right, so error bars at one x stay apart
};

struct Plot {
  std::string title{}, xlabel{}, ylabel{}, caption{};
  std::vector<Series> series{};
  bool log_x_allowed = false;  // log x when the positive x span two decades or more
};

constexpr double kWidth = 560, kLeft = 64, kRight = 14, kTop = 34, kPlotH = 240;
constexpr double kPlotW = kWidth - kLeft - kRight;

std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

struct Axis {
  double lo, hi;
  bool log = false;
  std::vector<double> ticks{};
  double step = 0;  // linear tick spacing

  double frac(double v) const {
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
               : (v - lo) / (hi - lo);
  }
  std::string label(double t) const {
    if (log || std::max(std::fabs(lo), std::fabs(hi)) >= 1e6 || step < 1e-4) return format_number(t);
    if (std::fabs(t) < step * 1e-9) t = 0;
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f",
                  std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9))), t);
    return buf;
  }
};

Axis linear_axis(double lo, double hi) {
  if (hi - lo <= std::max(std::fabs(lo), std::fabs(hi)) * 1e-9) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double n = raw / mag;
  const double step = (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
  Axis a{std::floor(lo / step + 1e-9) * step, std::ceil(hi / step - 1e-9) * step};
  a.step = step;
  for (double t = a.lo; t <= a.hi + step * 0.5; t += step) a.ticks.push_back(t);
  return a;
}

Axis log_axis(double lo, double hi) {
  int e0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  int e1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  if (e1 <= e0) e1 = e0 + 1;
  Axis a{std::pow(10.0, e0), std::pow(10.0, e1), true};
  const int every = (e1 - e0 + 7) / 8;  // at most about 8 labelled decades
  for (int e = e0; e <= e1; e += every) a.ticks.push_back(std::pow(10.0, e));
  return a;
}

std::string marker_svg(Marker m, double x, double y, const std::string& colour, bool hollow) {
  if (m == Marker::none) return "";
  const std::string paint = hollow ? "fill=\"#ffffff\" stroke=\"" + colour + "\" stroke-width=\"1.5\""
                                   : "fill=\"" + colour + "\"";
  switch (m) {
    case Marker::circle:
      return "<circle cx=\"" + px(x) + "\" cy=\"" + px(y) + "\" r=\"3.5\" " + paint + "/>";
    case Marker::square:
      return "<rect x=\"" + px(x - 3.2) + "\" y=\"" + px(y - 3.2) +
             "\" width=\"6.4\" height=\"6.4\" " + paint + "/>";
    case Marker::triangle:
      return "<path d=\"M" + px(x) + " " + px(y - 4.2) + "L" + px(x + 4) + " " + px(y + 3) + "L" +
             px(x - 4) + " " + px(y + 3) + "Z\" " + paint + "/>";
    case Marker::diamond:
      return "<path d=\"M" + px(x) + " " + px(y - 4.4) + "L" + px(x + 4) + " " + px(y) + "L" +
             px(x) + " " + px(y + 4.4) + "L" + px(x - 4) + " " + px(y) + "Z\" " + paint + "/>";
    case Marker::none: break;
  }
  return "";
}

std::string plot_html(Plot p) {
  // Keep the drawable points: finite x and y; with a log axis, x > 0.
  double min_pos = INFINITY, max_pos = 0;
  for (const auto& s : p.series)
    for (const auto& q : s.points)
      if (std::isfinite(q.x) && std::isfinite(q.y) && q.x > 0) {
        min_pos = std::min(min_pos, q.x);
        max_pos = std::max(max_pos, q.x);
      }
  const bool log_x = p.log_x_allowed && max_pos > 0 && max_pos / min_pos >= 100;
  bool dropped = false;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (auto& s : p.series) {
    std::vector<Point> kept;
    for (auto q : s.points) {
      if (!std::isfinite(q.x) || !std::isfinite(q.y)) continue;
      if (log_x && q.x <= 0) {
        dropped = true;
        continue;
      }
      if (!(std::isfinite(q.lo) && std::isfinite(q.hi))) q.lo = q.hi = NAN;
      kept.push_back(q);
      x0 = std::min(x0, q.x);
      x1 = std::max(x1, q.x);
      y0 = std::min({y0, q.y, std::isfinite(q.lo) ? q.lo : q.y});
      y1 = std::max({y1, q.y, std::isfinite(q.hi) ? q.hi : q.y});
    }
    s.points = std::move(kept);
  }
  p.series.erase(std::remove_if(p.series.begin(), p.series.end(),
                                [](const Series& s) { return s.points.empty(); }),
                 p.series.end());
  if (p.series.empty())
    return "<p class=\"nodata\">" + html_escape(p.title) + ": no data.</p>\n";

  const Axis ax = log_x ? log_axis(x0, x1) : linear_axis(x0, x1);
  const Axis ay = linear_axis(y0, y1);
  auto sx0 = [&](double x) { return kLeft + ax.frac(x) * kPlotW; };
  auto sy = [&](double y) { return kTop + (1 - ay.frac(y)) * kPlotH; };

  // Legend entries, wrapped into rows under the x label.
  struct Entry {
    const Series* s;
    double x, y;
  };
  std::vector<Entry> legend;
  double lx = 10, ly = kTop + kPlotH + 56;
  for (const auto& s : p.series) {
    if (s.name.empty()) continue;
    const double w = 30 + 5.8 * display_width(s.name) + 16;  // ~5 px a character at 11 px
    if (lx + w > kWidth - 6 && lx > 10) {
      lx = 10;
      ly += 17;
    }
    legend.push_back({&s, lx, ly});
    lx += w;
  }
  const double height = (legend.empty() ? kTop + kPlotH + 44 : ly + 12);

  std::string o;
  o += "<figure class=\"plot\">\n<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
       px(kWidth) + "\" height=\"" + px(height) + "\" viewBox=\"0 0 " + px(kWidth) + " " +
       px(height) + "\" font-family=\"Helvetica, Arial, sans-serif\" role=\"img\" aria-label=\"" +
       html_escape(p.title) + "\">\n";
  o += "<title>" + html_escape(p.title) + "</title>\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  o += "<text x=\"" + px(kWidth / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" "
       "font-weight=\"600\" fill=\"#222\">" + html_escape(p.title) + "</text>\n";
  // Grid, frame, ticks.
  o += "<g class=\"axes\" font-size=\"11\" fill=\"#444\">\n";
  for (double t : ax.ticks) {
    const double x = sx0(t);
    o += "<line x1=\"" + px(x) + "\" y1=\"" + px(kTop) + "\" x2=\"" + px(x) + "\" y2=\"" +
         px(kTop + kPlotH) + "\" stroke=\"#ececec\"/>";
    o += "<line x1=\"" + px(x) + "\" y1=\"" + px(kTop + kPlotH) + "\" x2=\"" + px(x) + "\" y2=\"" +
         px(kTop + kPlotH + 4) + "\" stroke=\"#666\"/>";
    o += "<text x=\"" + px(x) + "\" y=\"" + px(kTop + kPlotH + 16) + "\" text-anchor=\"middle\">" +
         html_escape(ax.label(t)) + "</text>\n";
  }
  for (double t : ay.ticks) {
    const double y = sy(t);
    o += "<line x1=\"" + px(kLeft) + "\" y1=\"" + px(y) + "\" x2=\"" + px(kLeft + kPlotW) +
         "\" y2=\"" + px(y) + "\" stroke=\"#ececec\"/>";
    o += "<line x1=\"" + px(kLeft - 4) + "\" y1=\"" + px(y) + "\" x2=\"" + px(kLeft) + "\" y2=\"" +
         px(y) + "\" stroke=\"#666\"/>";
    o += "<text x=\"" + px(kLeft - 7) + "\" y=\"" + px(y + 4) + "\" text-anchor=\"end\">" +
         html_escape(ay.label(t)) + "</text>\n";
  }
  o += "<rect x=\"" + px(kLeft) + "\" y=\"" + px(kTop) + "\" width=\"" + px(kPlotW) +
       "\" height=\"" + px(kPlotH) + "\" fill=\"none\" stroke=\"#888\"/>\n";
  o += "<text x=\"" + px(kLeft + kPlotW / 2) + "\" y=\"" + px(kTop + kPlotH + 36) +
       "\" text-anchor=\"middle\" font-size=\"12\" fill=\"#222\">" +
       html_escape(p.xlabel + (log_x ? " (log scale)" : "")) + "</text>\n";
  const double yc = kTop + kPlotH / 2;
  o += "<text x=\"16\" y=\"" + px(yc) + "\" transform=\"rotate(-90 16 " + px(yc) +
       ")\" text-anchor=\"middle\" font-size=\"12\" fill=\"#222\">" + html_escape(p.ylabel) +
       "</text>\n</g>\n";

  // Series: error bars, then lines, then markers on top.
  for (const auto& s : p.series) {
    const std::string c = html_escape(s.colour);
    auto sx = [&](double x) { return sx0(x) + s.dodge; };
    o += "<g class=\"series\" data-series=\"" + html_escape(s.name) + "\" data-colour=\"" + c +
         "\">\n";
    for (const auto& q : s.points) {
      if (!std::isfinite(q.lo)) continue;
      const double x = sx(q.x), a = sy(q.lo), b = sy(q.hi);
      o += "<path d=\"M" + px(x) + " " + px(a) + "V" + px(b) + "M" + px(x - 3) + " " + px(a) + "H" +
           px(x + 3) + "M" + px(x - 3) + " " + px(b) + "H" + px(x + 3) + "\" stroke=\"" + c +
           "\" stroke-width=\"1.2\" fill=\"none\"/>\n";
    }
    if (s.line && s.points.size() > 1) {
      o += "<polyline fill=\"none\" stroke=\"" + c + "\" stroke-width=\"2\" stroke-linejoin=\"round\"";
      if (!s.dash.empty()) o += " stroke-dasharray=\"" + s.dash + "\"";
      o += " points=\"";
      for (const auto& q : s.points) o += px(sx(q.x)) + "," + px(sy(q.y)) + " ";
      o += "\"/>\n";
    }
    for (const auto& q : s.points) o += marker_svg(s.marker, sx(q.x), sy(q.y), c, s.hollow);
    o += "\n</g>\n";
  }

  o += "<g class=\"legend\" font-size=\"11\" fill=\"#222\">\n";
  for (const auto& e : legend) {
    const Series& s = *e.s;
    const std::string c = html_escape(s.colour);
    if (s.line || s.legend_line) {
      o += "<line x1=\"" + px(e.x) + "\" y1=\"" + px(e.y) + "\" x2=\"" + px(e.x + 24) + "\" y2=\"" +
           px(e.y) + "\" stroke=\"" + c + "\" stroke-width=\"2\"";
      if (!s.dash.empty()) o += " stroke-dasharray=\"" + s.dash + "\"";
      o += "/>";
    }
    o += marker_svg(s.marker, e.x + 12, e.y, c, s.hollow);
    o += "<text x=\"" + px(e.x + 30) + "\" y=\"" + px(e.y + 4) + "\">" + html_escape(s.name) +
         "</text>\n";
  }
  o += "</g>\n</svg>\n";
  std::string caption = p.caption;
  if (dropped) caption += (caption.empty() ? "" : " ") + std::string("Points at x = 0 are not shown on the log axis.");
  if (!caption.empty()) o += "<figcaption>" + html_escape(caption) + "</figcaption>\n";
  return o + "</figure>\n";
}

// ---------------------------------------------------------------------------------------------
// The plots of the bench

// Upper frontier of (kl, gold): the points whose gold beats every point at lower or equal KL.
std::vector<Point> upper_frontier(std::vector<Point> pts) {
  std::sort(pts.begin(), pts.end(), [](const Point& a, const Point& b) {
    return a.x != b.x ? a.x < b.x : a.y > b.y;
  });
  std::vector<Point> out;
  for (const auto& q : pts)
    if (out.empty() || q.y > out.back().y) out.push_back({q.x, q.y});
  return out;
}

// rq1's best-of-n rows ({n, kl, gold, flops, ...}) for a task: those naming it, or all of them
// when they name no task and the suite has one.
json bon_rows(const json& suite, const std::string& task, size_t n_tasks) {
  json rows = json::array();
  for (const auto& row : items(at(suite, "best_of_n"))) {
    const std::string t = text(at(row, "task"));
    if (t == task || (t.empty() && n_tasks == 1)) rows.push_back(row);
  }
  return rows;
}

const char* kBestOfN = "best-of-n";

Plot frontier_plot(const std::string& suite, const std::string& task,
                   const std::vector<const Run*>& runs, const json& bon, Colours& colours) {
  std::map<std::string, std::vector<Point>> by_method;
  for (const auto& row : items(bon)) {
    auto kl = num(at(row, "kl")), gold = num(at(row, "gold"));
    if (kl && gold) by_method[kBestOfN].push_back({*kl, *gold});
  }
  for (const Run* r : runs) {
    auto& pts = by_method[r->method];
    for (const auto& cp : checkpoints(*r)) {
      auto kl = num(at(cp, "kl")), gold = num(at(cp, "gold"));
      if (kl && gold) pts.push_back({*kl, *gold});
    }
  }
  Plot p{"Reward–KL frontier: " + suite + " / " + task, "KL(π‖π_ref) (nats)", "gold reward",
         "Markers: every checkpoint of every run of a method; line: the method's upper frontier "
         "(the best gold reached at or below each KL).",
         {}};
  for (const auto& [method, pts] : by_method) {
    const std::string& c = colours.of(method);
    Series marks{method, c, pts};
    marks.legend_line = true;
    p.series.push_back(marks);
    Series front{"", c, upper_frontier(pts), true, Marker::none};
    p.series.push_back(front);
  }
  return p;
}

Plot flops_plot(const std::string& suite, const std::string& task,
                const std::vector<const Run*>& runs, const json& bon, Colours& colours) {
  Plot p{"Gold vs compute: " + suite + " / " + task, "cumulative training + sampling FLOPs",
         "gold reward", "One line per run, coloured by method; markers are checkpoints.", {}, true};
  std::set<std::string> named;
  for (const Run* r : runs) {
    Series s{named.insert(r->method).second ? r->method : "", colours.of(r->method), {}, true};
    for (const auto& cp : checkpoints(*r)) {
      auto f = num(at(cp, "flops")), gold = num(at(cp, "gold"));
      if (f && gold) s.points.push_back({*f, *gold});
    }
    p.series.push_back(s);
  }
  Series b{kBestOfN, colours.of(kBestOfN), {}, true};
  for (const auto& row : items(bon)) {
    auto f = num(at(row, "flops")), gold = num(at(row, "gold"));
    if (f && gold) b.points.push_back({*f, *gold});
  }
  std::sort(b.points.begin(), b.points.end(), [](const Point& x, const Point& y) { return x.x < y.x; });
  p.series.push_back(b);
  return p;
}

Plot agreement_plot(const std::string& suite, const std::string& task,
                    const std::vector<const Run*>& runs, Colours& colours) {
  struct Cell {
    double gold = 0, lo = 0, hi = 0;
    int n = 0, n_ci = 0;
  };
  // A string param names series when it is a variant axis: it takes several values at one
  // (method, agreement), and each of its values recurs at several agreements (noise=bt and
  // noise=flip). The annotator behind each agreement level (one level per name) is not one.
  auto categorical = [](const json& v) { return v.is_string() && !num(v); };
  std::map<std::tuple<std::string, std::string, double>, std::set<std::string>> values;
  std::map<std::pair<std::string, std::string>, std::set<double>> levels;  // (key, value) -> agreements
  for (const Run* r : runs) {
    const json& params = at(*r->run, "params");
    auto agreement = num(at(params, "agreement"));
    if (params.is_object() && agreement)
      for (auto it = params.begin(); it != params.end(); ++it)
        if (categorical(it.value())) {
          values[{it.key(), r->method, *agreement}].insert(it.value().get<std::string>());
          levels[{it.key(), it.value().get<std::string>()}].insert(*agreement);
        }
  }
  std::set<std::string> splitting;
  for (const auto& [key, vals] : values)
    if (vals.size() > 1) splitting.insert(std::get<0>(key));
  for (const auto& [kv, agreements] : levels)
    if (agreements.size() < 2) splitting.erase(kv.first);
  std::map<std::string, std::pair<std::string, std::map<double, Cell>>> series;  // name -> method, x -> cell
  for (const Run* r : runs) {
    const json& params = at(*r->run, "params");
    auto agreement = num(at(params, "agreement"));
    auto gold = num(at(final_of(*r), "gold"));
    if (!agreement || !gold) continue;
    std::string name = r->method;
    if (params.is_object())
      for (auto it = params.begin(); it != params.end(); ++it)
        if (it.key() != "agreement" && categorical(it.value()) && splitting.count(it.key()))
          name += " " + it.key() + "=" + it.value().get<std::string>();
    auto& entry = series[name];
    entry.first = r->method;
    Cell& c = entry.second[*agreement];
    c.gold += *gold;
    ++c.n;
    const json& ci = at(final_of(*r), "gold_ci");
    if (ci.is_array() && ci.size() == 2 && num(ci[0]) && num(ci[1])) {
      c.lo += *num(ci[0]);
      c.hi += *num(ci[1]);
      ++c.n_ci;
    }
  }
  Plot p{"Gold vs annotator agreement: " + suite + " / " + task, "annotator agreement with gold",
         "final-checkpoint gold",
         "One line per method, drawn a few pixels apart; bars: 95% CI of the final gold (where "
         "several runs share a point: their mean gold and the mean of their CI bounds).",
         {}};
  std::vector<std::string> dashes = {"", "6 3", "2 3", "8 3 2 3"};
  std::map<std::string, int> per_method;
  int i = 0;
  for (const auto& [name, entry] : series) {
    Series s{name, colours.of(entry.first), {}, true};
    const int k = per_method[entry.first]++;
    s.dash = dashes[k % dashes.size()];
    s.dodge = 3.0 * (i++ - (static_cast<double>(series.size()) - 1) / 2);
    for (const auto& [x, c] : entry.second) {  // std::map: sorted by agreement
      Point q{x, c.gold / c.n};
      if (c.n_ci > 0) {
        q.lo = c.lo / c.n_ci;
        q.hi = c.hi / c.n_ci;
      }
      s.points.push_back(q);
    }
    p.series.push_back(s);
  }
  return p;
}

Plot length_plot(const std::string& suite, const std::string& task,
                 const std::vector<const Run*>& runs, Colours& colours) {
  Plot p{"Length over training: " + suite + " / " + task, "step", "mean completion length (tokens)",
         "One line per run, coloured by method.", {}};
  const std::vector<std::string> dashes = {"", "6 3", "2 3", "8 3 2 3"};
  const std::vector<Marker> marks = {Marker::circle, Marker::square, Marker::triangle, Marker::diamond};
  std::map<std::string, int> per_method;
  for (const Run* r : runs) {
    const int k = per_method[r->method]++;
    Series s{run_label(*r), colours.of(r->method), {}, true, marks[k % marks.size()]};
    s.dash = dashes[k % dashes.size()];
    for (const auto& cp : checkpoints(*r)) {
      auto step = num(at(cp, "step")), len = num(at(cp, "length"));
      if (step && len) s.points.push_back({*step, *len});
    }
    p.series.push_back(s);
  }
  return p;
}

// rq5's pass@k rows ({method, k, pass, ci}): one line per method over k, with CI bars.
Plot pass_at_k_plot(const json& rows, Colours& colours) {
  Plot p{"pass@k on Verify", "log2 k (k: samples per prompt)", "pass@k",
         "Unbiased pass@k (Chen et al. 2021) from 64 samples per test prompt at T = 1; bars: 95% CI over prompts.",
         {}};
  std::map<std::string, Series> by_method;
  std::vector<std::string> order;
  for (const auto& row : items(rows)) {
    const std::string m = text(at(row, "method"));
    auto k = num(at(row, "k")), pass = num(at(row, "pass"));
    if (m.empty() || !k || *k < 1 || !pass) continue;
    if (!by_method.count(m)) order.push_back(m), by_method[m] = Series{m, colours.of(m), {}, true};
    Point q{std::log2(*k), *pass};
    const json& ci = at(row, "ci");
    if (ci.is_array() && ci.size() == 2 && num(ci[0]) && num(ci[1])) q.lo = *num(ci[0]), q.hi = *num(ci[1]);
    by_method[m].points.push_back(q);
  }
  for (const auto& m : order) p.series.push_back(by_method[m]);
  return p;
}

// The fitted gold reward R(d) of an over-optimization fit, when its form is one we draw.
std::optional<double> fitted(const std::string& form, double alpha, double beta, double d) {
  std::string f;
  for (char c : form)
    if (c != ' ' && c != '*') f += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (f.find("log") != std::string::npos) return d <= 0 ? 0 : d * (alpha - beta * std::log(d));
  if (f == "d(a-bd)" || f == "d(α-βd)") return d * (alpha - beta * d);
  return std::nullopt;
}

// A fit's name: its optimizer plus the string or integer fields that tell fits of one task
// apart (an RM preset, a number of pairs); not its statistics (r2) or note.
std::string fit_label(const json& fit) {
  static const std::set<std::string> known = {"task", "optimizer", "form", "alpha", "beta",
                                              "peak_kl", "points", "offset", "note", "r2"};
  std::string s = text(at(fit, "optimizer"));
  if (s.empty()) s = "?";
  for (auto it = fit.begin(); it != fit.end(); ++it)
    if (!known.count(it.key()) &&
        ((it.value().is_string() && !it.value().get_ref<const std::string&>().empty()) ||
         it.value().is_number_integer()))
      s += " " + it.key() + "=" + format_value(it.value());
  return s;
}

Plot overopt_plot(const std::string& task, const std::vector<const json*>& fits, Colours& colours) {
  Plot p{"Over-optimization: " + task, "d = √KL", "reward",
         "Filled markers: gold; hollow: proxy; curve: the fitted form for the gold reward "
         "(R_BoN = d(α − βd), R_RL = d(α − β log d)).",
         {}};
  for (const json* fit : fits) {
    const std::string label = fit_label(*fit);
    const std::string& c = colours.of(label);
    Series gold{label + " gold", c}, proxy{label + " proxy", c};
    proxy.hollow = true;
    double dmax = 0;
    for (const auto& pt : items(at(*fit, "points"))) {
      if (!pt.is_array() || pt.empty()) continue;
      auto d = num(pt[0]);
      if (!d) continue;
      dmax = std::max(dmax, *d);
      if (pt.size() > 1 && num(pt[1])) gold.points.push_back({*d, *num(pt[1])});
      if (pt.size() > 2 && num(pt[2])) proxy.points.push_back({*d, *num(pt[2])});
    }
    p.series.push_back(gold);
    p.series.push_back(proxy);
    auto alpha = num(at(*fit, "alpha")), beta = num(at(*fit, "beta"));
    const std::string form = text(at(*fit, "form"));
    const double offset = num(at(*fit, "offset")).value_or(0);
    if (auto pk = num(at(*fit, "peak_kl")); pk && *pk > 0) dmax = std::max(dmax, std::sqrt(*pk));
    if (auto note = text(at(*fit, "note")); !note.empty()) p.caption += " " + label + ": " + note;
    if (alpha && beta && dmax > 0 && fitted(form, *alpha, *beta, 1)) {
      Series curve{label + " fit " + form + " (α=" + format_number(*alpha) +
                       ", β=" + format_number(*beta) + ")",
                   c, {}, true, Marker::none};
      for (int i = 0; i <= 60; ++i) {
        const double d = dmax * 1.05 * i / 60;
        curve.points.push_back({d, offset + *fitted(form, *alpha, *beta, d)});
      }
      p.series.push_back(curve);
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Generic tables: whatever columns the rows have. An object cell of a few numbers (gold_at_kl)
// becomes one column per key ("gold_at_kl.5"); other cells are format_value'd.

struct Column {
  std::string key, sub;  // sub: the key inside a flattened object cell
  std::string title() const { return sub.empty() ? key : key + "." + sub; }
};

bool flattenable(const json& v) {
  if (!v.is_object() || v.empty() || v.size() > 6) return false;
  for (const auto& e : v)
    if (!e.is_number() && !e.is_null()) return false;
  return true;
}

bool sub_before(const std::string& a, const std::string& b) {
  auto na = num(json(a)), nb = num(json(b));
  if (na && nb) return *na < *nb;
  if (na || nb) return na.has_value();
  return a < b;
}

const json& cell(const json& row, const Column& c) {
  const json& v = at(row, c.key);
  return c.sub.empty() ? v : at(v, c.sub);
}

// Columns in this order: `lead` (those present), string-valued columns, the rest, each group by
// name with "x_ci" right after "x".
std::vector<Column> table_columns(const json& rows, const std::vector<std::string>& lead) {
  std::map<std::string, std::set<std::string, decltype(&sub_before)>> subs;
  std::set<std::string> keys, strings, others;
  for (const auto& row : items(rows)) {
    if (!row.is_object()) continue;
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (per_unit_field(it.key())) continue;  // the verdicts' data, not shown in tables
      keys.insert(it.key());
      if (it.value().is_string()) strings.insert(it.key());
      else if (!it.value().is_null()) others.insert(it.key());
      if (flattenable(it.value())) {
        auto& s = subs.try_emplace(it.key(), &sub_before).first->second;
        for (auto jt = it.value().begin(); jt != it.value().end(); ++jt) s.insert(jt.key());
      }
    }
  }
  std::vector<std::string> order;
  for (const auto& k : lead)
    if (keys.count(k)) order.push_back(k);
  auto rest = [&](bool want_strings) {
    std::vector<std::string> group;
    for (const auto& k : keys) {
      const bool is_string = strings.count(k) && !others.count(k);
      if (is_string == want_strings && std::find(lead.begin(), lead.end(), k) == lead.end())
        group.push_back(k);
    }
    std::vector<std::string> sorted;
    for (const auto& k : group) {
      if (k.size() > 3 && k.compare(k.size() - 3, 3, "_ci") == 0 &&
          std::count(group.begin(), group.end(), k.substr(0, k.size() - 3)))
        continue;  // placed after its base column
      sorted.push_back(k);
      if (std::count(group.begin(), group.end(), k + "_ci")) sorted.push_back(k + "_ci");
    }
    order.insert(order.end(), sorted.begin(), sorted.end());
  };
  rest(true);
  rest(false);
  std::vector<Column> cols;
  for (const auto& k : order) {
    auto it = subs.find(k);
    bool all_objects = it != subs.end();
    for (const auto& row : items(rows))
      if (all_objects && !at(row, k).is_null() && !flattenable(at(row, k))) all_objects = false;
    if (all_objects)
      for (const auto& s : it->second) cols.push_back({k, s});
    else
      cols.push_back({k, ""});
  }
  return cols;
}

bool numeric_cell(const json& v) {
  if (v.is_number()) return true;
  return v.is_array() && v.size() == 2 && (v[0].is_number() || v[0].is_null()) &&
         (v[1].is_number() || v[1].is_null());
}

std::string html_table(const json& rows, const std::vector<std::string>& lead,
                       const std::string& what = "rows") {
  size_t n = 0;
  for (const auto& row : items(rows)) n += row.is_object();
  if (n == 0) return "<p class=\"nodata\">No " + html_escape(what) + ".</p>\n";
  const auto cols = table_columns(rows, lead);
  std::string o = "<div class=\"tablewrap\"><table>\n<thead><tr>";
  for (const auto& c : cols) o += "<th>" + html_escape(c.title()) + "</th>";
  o += "</tr></thead>\n<tbody>\n";
  for (const auto& row : items(rows)) {
    if (!row.is_object()) continue;
    o += "<tr>";
    for (const auto& c : cols) {
      const json& v = cell(row, c);
      o += numeric_cell(v) ? "<td class=\"num\">" : "<td>";
      o += html_escape(format_value(v)) + "</td>";
    }
    o += "</tr>\n";
  }
  return o + "</tbody></table></div>\n";
}

// ---------------------------------------------------------------------------------------------
// The page

const char* kCss = R"(
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1180px;
       padding: 0 12px; line-height: 1.4; background: #ffffff; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 20px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
pre { background: #f5f5f5; border: 1px solid #ddd; padding: 8px; overflow-x: auto; white-space: pre-wrap; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #d6d6d6; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.question { font-style: italic; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; }
figure.plot { margin: 0; width: 562px; }
figure.plot svg { border: 1px solid #ddd; display: block; }
figcaption { font-size: 12px; color: #555; margin-top: 3px; }
.nodata { color: #777; font-style: italic; }
.verdict { font-weight: 600; white-space: nowrap; }
.v-reproduced { background: #dafbe1; color: #116329; }
.v-not-reproduced { background: #ffebe9; color: #a40e26; }
.v-inconclusive { background: #fff8c5; color: #7d4e00; }
.v-other { background: #eeeeee; color: #444; }
nav a { margin-right: 12px; }
details { margin: 12px 0; }
)";

std::string verdict_class(const std::string& v) {
  if (v == "reproduced") return "v-reproduced";
  if (v == "not reproduced") return "v-not-reproduced";
  if (v == "inconclusive") return "v-inconclusive";
  return "v-other";
}

// results.command when the bench records it; else the flags that rlhf bench takes (the profile
// implies the preset; the world seed is the default).
std::string reproduce_command(const json& results) {
  if (at(results, "command").is_string()) return at(results, "command").get<std::string>();
  std::string cmd = "rlhf bench";
  if (auto p = text(at(results, "profile")); !p.empty()) cmd += " --profile " + p;
  std::string seeds;
  for (const auto& s : items(at(results, "seeds"))) {
    if (!seeds.empty()) seeds += ',';
    seeds += format_value(s);
  }
  if (!seeds.empty()) cmd += " --seeds " + seeds;
  return cmd + " --out DIR";
}

std::string machine_text(const json& m) {
  if (!m.is_object()) return "—";
  std::vector<std::string> parts;
  if (auto t = num(at(m, "threads"))) parts.push_back(format_number(*t) + " threads");
  if (auto g = num(at(m, "gflops"))) parts.push_back(format_number(*g) + " GFLOP/s measured");
  if (auto s = num(at(m, "predicted_seconds"))) parts.push_back("predicted " + format_seconds(*s));
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (it.key() == "threads" || it.key() == "gflops" || it.key() == "predicted_seconds") continue;
    std::string k = it.key();
    std::replace(k.begin(), k.end(), '_', ' ');
    parts.push_back(k + " " + format_value(it.value()));
  }
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ", ") + p;
  return s.empty() ? "—" : s;
}

std::map<std::string, int> verdict_counts(const json& results) {
  std::map<std::string, int> counts;
  for (const auto& p : items(at(results, "verdicts"))) ++counts[text(at(p, "verdict"))];
  return counts;
}

std::string counts_text(const std::map<std::string, int>& counts) {
  std::string s;
  for (const char* v : {"reproduced", "not reproduced", "inconclusive"})
    if (counts.count(v)) s += (s.empty() ? "" : ", ") + std::to_string(counts.at(v)) + " " + v;
  for (const auto& [v, n] : counts)
    if (v != "reproduced" && v != "not reproduced" && v != "inconclusive")
      s += (s.empty() ? "" : ", ") + std::to_string(n) + " " + (v.empty() ? "without verdict" : v);
  return s;
}

std::string anchor(const std::string& s) {
  std::string a = "suite-";
  for (unsigned char c : s) a += std::isalnum(c) ? static_cast<char>(c) : '-';
  return a;
}

// A suite's tables: "table" first, then its other arrays (rq1's best_of_n, rq4's reward_models,
// overopt's fits), then its scalar values.
std::string suite_tables(const json& suite, const std::string& h) {
  if (!suite.is_object()) return "";
  std::string o;
  if (suite.contains("table"))
    o += "<" + h + ">Table</" + h + ">\n" +
         html_table(at(suite, "table"), {"task", "method", "scorer", "set", "optimizer"});
  std::string scalars;
  for (auto it = suite.begin(); it != suite.end(); ++it) {
    if (it.key() == "table" || it.key() == "question" || it.key() == "per_seed" || it.key() == "seed") continue;
    if (it.value().is_array())
      o += "<" + h + ">" + html_escape(it.key()) + "</" + h + ">\n" +
           html_table(it.value(), {"task", "method", "optimizer", "form", "n"});
    else
      scalars += "<dt>" + html_escape(it.key()) + "</dt><dd>" + html_escape(format_value(it.value())) + "</dd>\n";
  }
  if (!scalars.empty()) o += "<dl class=\"meta\">\n" + scalars + "</dl>\n";
  return o;
}

std::string suite_section(const std::string& name, const json& suite, const std::vector<Run>& runs,
                          const json& seeds, Colours& colours) {
  std::string o = "<section id=\"" + anchor(name) + "\">\n<h2>" + html_escape(name) + "</h2>\n";
  if (auto q = text(at(suite, "question")); !q.empty())
    o += "<p class=\"question\">" + html_escape(q) + "</p>\n";
  const auto tasks = tasks_of(runs, name);
  size_t n_runs = 0;
  for (const auto& r : runs) n_runs += r.suite == name;
  if (n_runs) {
    std::string t;
    for (const auto& task : tasks) t += (t.empty() ? "" : ", ") + (task.empty() ? "(no task)" : task);
    o += "<p>" + std::to_string(n_runs) + " runs; tasks: " + html_escape(t) + ".</p>\n";
  }
  const std::string tables = suite_tables(suite, "h3");
  o += tables;
  const json& per_seed = at(suite, "per_seed");
  if (items(per_seed).size() > 1) {  // several seeds: the top-level tables are the first seed's
    o += "<details><summary>Per seed (" + std::to_string(per_seed.size()) + ")</summary>\n";
    for (size_t i = 0; i < per_seed.size(); ++i)
      o += "<h4>seed " + html_escape(i < items(seeds).size() ? format_value(seeds[i]) : std::to_string(i + 1)) +
           "</h4>\n" + suite_tables(per_seed[i], "h5");
    o += "</details>\n";
  }
  const bool any = n_runs > 0 || !tables.empty();

  std::string plots;
  for (const auto& task : tasks) {
    const auto rs = runs_of(runs, name, task);
    const json bon = name == "rq1" ? bon_rows(suite, task, tasks.size()) : json::array();
    plots += plot_html(frontier_plot(name, task, rs, bon, colours));
    if (name == "rq1") plots += plot_html(flops_plot(name, task, rs, bon, colours));
    if (name == "rq3") plots += plot_html(agreement_plot(name, task, rs, colours));
    if (name == "length") plots += plot_html(length_plot(name, task, rs, colours));
  }
  if (name == "rq5" && !items(at(suite, "pass_at_k")).empty()) plots += plot_html(pass_at_k_plot(at(suite, "pass_at_k"), colours));
  if (name == "rq3" && tasks.empty())
    plots += "<p class=\"nodata\">Gold vs annotator agreement: no runs.</p>\n";
  if (name == "overopt") {
    std::map<std::string, std::vector<const json*>> by_task;
    for (const auto& f : items(at(suite, "fits")))
      if (f.is_object()) by_task[text(at(f, "task"))].push_back(&f);
    for (const auto& [task, fits] : by_task) plots += plot_html(overopt_plot(task, fits, colours));
    if (by_task.empty()) plots += "<p class=\"nodata\">Over-optimization fits: no data.</p>\n";
  }
  if (!plots.empty()) o += "<h3>Plots</h3>\n<div class=\"plots\">\n" + plots + "</div>\n";
  if (!any && plots.empty()) o += "<p class=\"nodata\">No data.</p>\n";
  return o + "</section>\n";
}

// The suites whose questions the verdicts answer, in the report's order; a verdict belongs to the
// suite its "where" names first.
const std::vector<std::string> kAnswerOrder = {"rq1", "rq2", "rq3", "rq4", "rq5", "rq6", "length", "overopt"};

// A suite's heading in the answer: its id and the question results.json records for it.
std::string answer_heading(const json& results, const std::string& suite) {
  std::string id = suite;
  if (id.rfind("rq", 0) == 0) id = "RQ" + id.substr(2);
  const std::string question = text(at(at(at(results, "suites"), suite), "question"));
  return question.empty() ? id : id + ": " + question;
}

std::string first_suite(const json& v) {
  const std::string w = text(at(v, "where"));
  return w.substr(0, w.find(','));
}

std::string effect_text(const json& v) {
  const json& e = at(v, "effect");
  auto est = num(at(e, "estimate"));
  if (!est) return "—";
  std::string s = (*est >= 0 ? "+" : "") + format_number(*est);
  if (auto ci = ci_text(at(e, "ci")); !ci.empty()) s += " " + ci;
  return s;
}

std::string per_seed_text(const json& v) {
  std::string s;
  for (const auto& p : items(at(v, "per_seed"))) {
    auto e = num(at(p, "estimate"));
    s += (s.empty() ? "" : ", ") + text(at(p, "seed")) + ": " + (e ? format_number(*e) : "—");
  }
  return s;
}

// The report's first screen: the verdicts by question, their effects over seeds and links.
std::string answer_section(const json& results) {
  std::string o = "<section id=\"answer\">\n<h2>The answer</h2>\n<p>Each pattern of docs/testbed.md §8 as "
                  "hypotheses: the effect pooled over all seeds " + html_escape(format_value(at(results, "seeds"))) +
                  " with its 95% CI (seeds, then prompts or pairs), and the verdict by its rule.</p>\n";
  const json& verdicts = at(results, "verdicts");
  if (items(verdicts).empty()) return o + "<p class=\"nodata\">No verdicts.</p>\n</section>\n";
  for (const auto& suite : kAnswerOrder) {
    const std::string question = answer_heading(results, suite);
    std::string rows;
    for (const auto& v : items(verdicts)) {
      if (first_suite(v) != suite) continue;
      const std::string verdict = text(at(v, "verdict"));
      rows += "<tr><td class=\"num\">" + html_escape(text(at(v, "id"))) + "</td><td>" +
              html_escape(text(at(v, "claim"))) + "<br><small>" + html_escape(text(at(v, "statistic"))) +
              "</small></td><td class=\"num\">" + html_escape(effect_text(v)) + "</td><td class=\"verdict " +
              verdict_class(verdict) + "\">" + html_escape(verdict) + "</td><td><small>per seed " +
              html_escape(per_seed_text(v)) + "; " + html_escape(text(at(v, "rule"))) + "</small></td></tr>\n";
    }
    if (rows.empty()) continue;
    o += "<h3>" + html_escape(question) + " <small><a href=\"#" + anchor(suite) + "\">evidence</a></small></h3>\n" +
         "<div class=\"tablewrap\"><table>\n<thead><tr><th>#</th><th>hypothesis / statistic</th>"
         "<th>effect [95% CI]</th><th>verdict</th><th>seeds and rule</th></tr></thead>\n<tbody>\n" +
         rows + "</tbody></table></div>\n";
  }
  std::string untested;
  for (const auto& u : items(at(results, "untested")))
    untested += "<li>" + html_escape(text(at(u, "pattern")) + ": " + text(at(u, "claim")) + " (needs " +
                                     text(at(u, "missing")) + ")") + "</li>\n";
  if (!untested.empty()) o += "<h3>Not tested: no arm measures these yet</h3>\n<ul>\n" + untested + "</ul>\n";
  std::string checks;
  for (const auto& c : items(at(results, "checks")))
    checks += "<li>" + html_escape(text(at(c, "check"))) + ": " +
              (at(c, "observed").is_boolean() && at(c, "observed").get<bool>() ? "observed" : "not observed") +
              "</li>\n";
  if (!checks.empty())
    o += "<h3>Checks (bandits, exact computations; not verdicts) <small><a href=\"#" + anchor("bandits") +
         "\">evidence</a></small></h3>\n<ul>\n" + checks + "</ul>\n";
  return o + "</section>\n";
}

}  // namespace

std::string render_report(const json& results) {
  const auto runs = collect_runs(results);
  const auto suites = suite_names(results, runs);
  const json& suites_obj = at(results, "suites");

  // Colours by sorted name first, so they do not depend on which plot comes first.
  Colours colours;
  std::set<std::string> methods;
  for (const auto& r : runs) methods.insert(r.method);
  if (!items(at(at(suites_obj, "rq1"), "best_of_n")).empty()) methods.insert(kBestOfN);
  for (const auto& f : items(at(at(suites_obj, "overopt"), "fits")))
    if (f.is_object()) methods.insert(fit_label(f));
  if (!items(at(at(suites_obj, "rq5"), "pass_at_k")).empty()) methods.insert("base");
  for (const auto& m : methods) colours.of(m);

  std::string o;
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<title>rlhf bench report</title>\n<style>" + std::string(kCss) + "</style>\n</head>\n<body>\n";
  o += "<h1>rlhf bench report</h1>\n<dl class=\"meta\">\n";
  auto meta = [&](const std::string& k, const std::string& v) {
    o += "<dt>" + html_escape(k) + "</dt><dd>" + html_escape(v.empty() ? "—" : v) + "</dd>\n";
  };
  meta("profile", text(at(results, "profile")));
  meta("preset", text(at(results, "preset")));
  meta("seeds", at(results, "seeds").is_null() ? "" : format_value(at(results, "seeds")));
  meta("world seed", text(at(results, "world_seed")));
  meta("machine", machine_text(at(results, "machine")));
  auto wall = num(at(results, "wall_seconds"));
  meta("wall time", wall ? format_seconds(*wall) : "");
  meta("runs", std::to_string(runs.size()));
  meta("version", text(at(results, "version")));
  meta("schema", text(at(results, "schema")));
  const auto counts = verdict_counts(results);
  if (!counts.empty()) meta("verdicts", counts_text(counts));
  o += "</dl>\n";
  o += answer_section(results);
  o += "<p>Reproduce with:</p>\n<pre><code>" + html_escape(reproduce_command(results)) + "</code></pre>\n";

  o += "<nav><a href=\"#answer\">answer</a><a href=\"#annotators\">annotators</a><a href=\"#tasks\">base policies</a>";
  for (const auto& s : suites) o += "<a href=\"#" + anchor(s) + "\">" + html_escape(s) + "</a>";
  o += "</nav>\n";

  // Annotators, with measured − target.
  json annotators = json::array();
  for (const auto& a : items(at(results, "annotators"))) {
    if (!a.is_object()) continue;
    json row = a;
    auto t = num(at(a, "target")), m = num(at(a, "measured"));
    if (t && m) row["measured − target"] = *m - *t;
    annotators.push_back(row);
  }
  o += "<section id=\"annotators\">\n<h2>Annotators</h2>\n<p>Agreement with the gold ordering, "
       "targeted by calibration and measured.</p>\n" +
       html_table(annotators, {"name", "task", "seed", "target", "measured", "measured − target"}, "annotators") +
       "</section>\n";

  json bases = json::array();
  const json& tasks = at(results, "tasks");
  if (tasks.is_object())
    for (auto it = tasks.begin(); it != tasks.end(); ++it) {
      json row = json::object();
      const json& base = at(it.value(), "base");
      if (base.is_object()) row = base;
      row["task"] = it.key();
      bases.push_back(row);
    }
  o += "<section id=\"tasks\">\n<h2>Base policies</h2>\n<p>The SFT policy (π_ref) of each task on "
       "its test split.</p>\n" + html_table(bases, {"task", "gold", "length", "pass"}, "tasks") +
       "</section>\n";

  for (const auto& s : suites) o += suite_section(s, at(suites_obj, s), runs, at(results, "seeds"), colours);

  // Every run, for reproduction; and the stages with their timings.
  json run_rows = json::array();
  for (const auto& r : runs) {
    const json& f = final_of(r);
    json row = {{"id", r.id}, {"seed", at(*r.run, "seed")}, {"params", at(*r.run, "params")},
                {"final gold", at(f, "gold")}, {"final gold_ci", at(f, "gold_ci")},
                {"final kl", at(f, "kl")}, {"flops", at(at(*r.run, "accounting"), "flops")},
                {"labels", at(at(*r.run, "accounting"), "labels")}, {"command", at(*r.run, "command")}};
    if (row["params"].is_object()) row["params"] = format_value(row["params"]);
    run_rows.push_back(row);
  }
  o += "<details><summary>All runs (" + std::to_string(runs.size()) + ")</summary>\n" +
       html_table(run_rows, {"id", "seed", "params", "final gold", "final gold_ci", "final kl",
                             "flops", "labels", "command"}, "runs") +
       "</details>\n";
  o += "<details><summary>Stages (" + std::to_string(items(at(results, "stages")).size()) +
       ")</summary>\n" + html_table(at(results, "stages"), {"name", "seconds", "cached"}, "stages") +
       "</details>\n";
  return o + "</body>\n</html>\n";
}

// ---------------------------------------------------------------------------------------------
// Terminal summary

namespace {

std::string text_table(const std::vector<std::string>& header,
                       const std::vector<std::vector<std::string>>& rows,
                       const std::vector<bool>& right) {
  std::vector<size_t> w(header.size());
  for (size_t c = 0; c < header.size(); ++c) w[c] = display_width(header[c]);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], display_width(r[c]));
  auto line = [&](const std::vector<std::string>& r) {
    std::string s = " ";
    for (size_t c = 0; c < w.size(); ++c) {
      const std::string v = c < r.size() ? r[c] : "";
      const std::string pad(w[c] - display_width(v), ' ');
      s += (c ? "  " : "") + (c < right.size() && right[c] ? pad + v : v + (c + 1 < w.size() ? pad : ""));
    }
    return s + "\n";
  };
  std::string o = line(header);
  size_t total = 0;
  for (size_t c = 0; c < w.size(); ++c) total += w[c] + (c ? 2 : 0);
  o += " " + std::string(total, '-') + "\n";
  for (const auto& r : rows) o += line(r);
  return o;
}

// The terminal's first lines: every verdict with its effect over the seeds, by question.
std::string answer_text(const json& results) {
  const json& verdicts = at(results, "verdicts");
  if (items(verdicts).empty()) return "The answer: no verdicts.\n";
  std::string o = "The answer (docs/testbed.md §8), effects pooled over seeds " + format_value(at(results, "seeds")) +
                  ": " + counts_text(verdict_counts(results)) + "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& suite : kAnswerOrder) {
    const std::string question = answer_heading(results, suite);
    bool first = true;
    for (const auto& v : items(verdicts)) {
      if (first_suite(v) != suite) continue;
      if (first) rows.push_back({"", "", "", question}), first = false;
      rows.push_back({text(at(v, "id")), text(at(v, "verdict")), effect_text(v), text(at(v, "claim"))});
    }
  }
  o += text_table({"#", "verdict", "effect [95% CI]", "hypothesis"}, rows, {true, false, true, false});
  std::string untested;
  for (const auto& u : items(at(results, "untested"))) untested += (untested.empty() ? "" : "; ") + text(at(u, "claim"));
  if (!untested.empty()) o += "Not tested (no arm yet): " + untested + "\n";
  std::string checks;
  for (const auto& c : items(at(results, "checks")))
    checks += (checks.empty() ? "" : ", ") + text(at(c, "check")) + " " +
              (at(c, "observed").is_boolean() && at(c, "observed").get<bool>() ? "observed" : "not observed");
  if (!checks.empty()) o += "Checks (bandits): " + checks + "\n";
  return o;
}

}  // namespace

std::string summary_table(const json& results) {
  const auto runs = collect_runs(results);
  const auto suites = suite_names(results, runs);
  const json& suites_obj = at(results, "suites");
  std::string o = "rlhf bench: profile " + (text(at(results, "profile")).empty() ? "—" : text(at(results, "profile"))) +
                  ", preset " + (text(at(results, "preset")).empty() ? "—" : text(at(results, "preset")));
  if (!at(results, "seeds").is_null()) o += ", seeds " + format_value(at(results, "seeds"));
  if (auto w = num(at(results, "wall_seconds"))) o += ", wall " + format_seconds(*w);
  o += ", " + std::to_string(runs.size()) + " runs\n\n";

  o += answer_text(results);

  // Every arm (suite, task, method and sweep point) pooled over the seeds.
  std::vector<std::vector<std::string>> rows;
  for (const auto& suite : suites)
    for (const auto& row : items(at(at(suites_obj, suite), "pooled"))) {
      const json& params = at(row, "params");
      rows.push_back({suite, text(at(row, "task")), text(at(row, "method")),
                      params.is_object() && !params.empty() ? clip(format_value(params), 40) : "",
                      text(at(row, "seeds")),
                      format_number(num(at(row, "final_gold")).value_or(NAN)) + " " + ci_text(at(row, "ci")),
                      format_number(num(at(row, "final_kl")).value_or(NAN))});
    }
  if (rows.empty()) {
    o += "\nNo runs.\n";
  } else {
    o += "\nEvery arm's final checkpoint, pooled over the seeds (gold with its 95% CI over seeds and prompts):\n";
    o += text_table({"suite", "task", "method", "params", "seeds", "final gold [95% CI]", "KL"}, rows,
                    {false, false, false, false, true, true, true});
  }

  // Suites without runs show their own table (rq2's classifier metrics), long cells clipped.
  for (const auto& suite : suites) {
    if (!tasks_of(runs, suite).empty()) continue;
    const json& table = at(at(suites_obj, suite), "table");
    if (items(table).empty()) continue;
    o += "\n" + suite;
    if (auto q = text(at(at(suites_obj, suite), "question")); !q.empty()) o += ": " + q;
    o += "\n";
    const auto cols = table_columns(table, {"task", "method", "scorer", "set", "optimizer"});
    std::vector<std::string> header;
    std::vector<bool> right;
    for (const auto& c : cols) header.push_back(c.title());
    std::vector<std::vector<std::string>> trows;
    for (const auto& row : items(table)) {
      if (!row.is_object()) continue;
      std::vector<std::string> r;
      for (const auto& c : cols) r.push_back(clip(format_value(cell(row, c)), 48));
      trows.push_back(r);
    }
    for (const auto& c : cols) {
      bool numeric = true;
      for (const auto& row : items(table))
        if (!cell(row, c).is_null() && !numeric_cell(cell(row, c))) numeric = false;
      right.push_back(numeric);
    }
    o += text_table(header, trows, right);
  }

  return o;
}

}  // namespace rlhf::testbed
