// Reward specs, the source factory, callback sources and the combination (sum, min, uwo).
#include "rollout/reward.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

#include "rollout/reward_sources.h"
#include "tensor/error.h"

namespace rlhf::rollout {

namespace {

std::string trim_ascii(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// A whole string as a finite double, or nullopt.
std::optional<double> parse_double(const std::string& s) {
  const std::string t = trim_ascii(s);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

class CallbackReward : public RewardSource {
 public:
  CallbackReward(std::string name, RewardFn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  RewardResult score(const std::vector<RewardSample>& batch) override {
    RewardResult r{fn_(batch), {}};
    if (r.scores.size() != batch.size())
      throw InputError("reward '" + name_ + "': the callback returned " + std::to_string(r.scores.size()) +
                       " scores for " + std::to_string(batch.size()) + " samples");
    return r;
  }

 private:
  std::string name_;
  RewardFn fn_;
};

}  // namespace

// ---- specs ----------------------------------------------------------------------------------------

RewardSpec parse_reward_spec(const std::string& text) {
  RewardSpec spec;
  spec.text = text;
  auto fail = [&](const std::string& what) -> void { throw InputError("reward '" + text + "': " + what); };
  const std::string s = trim_ascii(text);
  size_t pos = 0;
  // WEIGHT* only before the kind: a '*' inside options or ARG (a pattern) is not a weight.
  const size_t star = s.find('*');
  if (star != std::string::npos && star < s.find_first_of("(:")) {
    const auto w = parse_double(s.substr(0, star));
    if (!w) fail("the weight '" + s.substr(0, star) + "' is not a finite number");
    spec.weight = *w;
    pos = star + 1;
  }
  while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) ++pos;
  const size_t kind_begin = pos;
  while (pos < s.size() && (std::islower(static_cast<unsigned char>(s[pos])) || s[pos] == '_')) ++pos;
  spec.kind = s.substr(kind_begin, pos - kind_begin);
  if (spec.kind.empty()) fail("expected [WEIGHT*]KIND[(KEY=VALUE,...)][:ARG], e.g. 2*exact:answer");
  if (pos < s.size() && s[pos] == '(') {
    const size_t close = s.find(')', pos);
    if (close == std::string::npos) fail("an option list '(' without ')'");
    std::string item;
    auto add_item = [&] {
      const std::string t = trim_ascii(item);
      item.clear();
      if (t.empty()) return;
      const size_t eq = t.find('=');
      const std::string key = trim_ascii(t.substr(0, eq));
      if (key.empty()) fail("an option without a name");
      if (spec.options.count(key)) fail("option '" + key + "' given twice");
      spec.options[key] = eq == std::string::npos ? "1" : trim_ascii(t.substr(eq + 1));
    };
    for (size_t i = pos + 1; i < close; ++i) {
      if (s[i] == ',')
        add_item();
      else
        item += s[i];
    }
    add_item();
    pos = close + 1;
  }
  if (pos < s.size()) {
    if (s[pos] != ':') fail("unexpected '" + s.substr(pos) + "' after the kind (options go in parentheses, ARG after ':')");
    spec.arg = s.substr(pos + 1);
  }
  return spec;
}

std::vector<RewardSpec> parse_reward_specs(const std::vector<std::string>& texts) {
  std::vector<RewardSpec> out;
  for (const auto& t : texts) out.push_back(parse_reward_spec(t));
  return out;
}

// ---- options --------------------------------------------------------------------------------------

void SpecOptions::fail(const std::string& what) const { throw InputError("reward '" + spec_.text + "': " + what); }

bool SpecOptions::has(const std::string& key) {
  used_.insert(key);
  return spec_.options.count(key) > 0;
}

double SpecOptions::number(const std::string& key, double def) {
  if (!has(key)) return def;
  const auto v = parse_double(spec_.options.at(key));
  if (!v) fail("option " + key + "='" + spec_.options.at(key) + "' is not a finite number");
  return *v;
}

bool SpecOptions::flag(const std::string& key) {
  if (!has(key)) return false;
  const std::string& v = spec_.options.at(key);
  if (v == "1" || v == "true") return true;
  if (v == "0" || v == "false") return false;
  fail("option " + key + "='" + v + "' is not 1/0/true/false");
}

std::string SpecOptions::str(const std::string& key, const std::string& def) {
  return has(key) ? spec_.options.at(key) : def;
}

void SpecOptions::finish() const {
  std::string unknown, known;
  for (const auto& [k, v] : spec_.options)
    if (!used_.count(k)) unknown += (unknown.empty() ? "" : ", ") + k;
  for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
  if (!unknown.empty()) fail("unknown option(s) " + unknown + " (" + spec_.kind + " takes: " + known + ")");
}

// ---- factory --------------------------------------------------------------------------------------

std::unique_ptr<RewardSource> make_reward_source(const RewardSpec& spec, const RewardContext& ctx) {
  SpecOptions opt(spec);
  std::unique_ptr<RewardSource> src;
  if (const auto it = ctx.extra_kinds.find(spec.kind); it != ctx.extra_kinds.end())
    src = it->second(spec, opt);
  else if (spec.kind == "rm")
    src = make_model_reward(spec, opt, ctx);
  else if (spec.kind == "cmd")
    src = make_command_reward(spec, opt);
  else if (spec.kind == "exact" || spec.kind == "regex" || spec.kind == "format" || spec.kind == "eos" ||
           spec.kind == "length")
    src = make_rule_reward(spec, opt);
  else
    opt.fail("unknown kind '" + spec.kind + "' (rm, exact, regex, format, eos, length, cmd" +
             (ctx.extra_kinds.empty() ? "" : ", " + ctx.extra_kinds.begin()->first) + ")");
  opt.finish();
  return src;
}

std::unique_ptr<RewardSource> callback_reward(std::string name, RewardFn fn) {
  RLHF_CHECK(static_cast<bool>(fn), "callback_reward: empty function");
  return std::make_unique<CallbackReward>(std::move(name), std::move(fn));
}

NanPolicy parse_nan_policy(const std::string& s) {
  if (s == "propagate") return NanPolicy::propagate;
  if (s == "ignore") return NanPolicy::ignore;
  throw InputError("reward NaN policy: expected propagate or ignore, got '" + s + "'");
}

CombineMode parse_combine_mode(const std::string& s) {
  if (s == "sum") return CombineMode::sum;
  if (s == "min") return CombineMode::min;
  if (s == "uwo") return CombineMode::uwo;
  throw InputError("--reward-combine: expected sum, min or uwo, got '" + s + "'");
}

std::string combine_mode_name(CombineMode m) {
  switch (m) {
    case CombineMode::sum: return "sum";
    case CombineMode::min: return "min";
    case CombineMode::uwo: return "uwo";
  }
  return "";
}

// ---- combination ----------------------------------------------------------------------------------

namespace {

// Mean and standard deviation of one source's defined scores, its NaN count and own metrics.
void append_source_metrics(const std::string& label, const RewardResult& r, Metrics& out) {
  double sum = 0, sum2 = 0;
  int64_t defined = 0;
  for (const double v : r.scores) {
    if (std::isnan(v)) continue;
    ++defined;
    sum += v;
    sum2 += v * v;
  }
  const std::string p = "rewards/" + label + "/";
  const double mean = defined > 0 ? sum / defined : std::nan("");
  // Sample standard deviation, as TRL's nanstd (Bessel's correction).
  const double var = defined > 1 ? std::max(0.0, (sum2 - defined * mean * mean) / (defined - 1)) : 0.0;
  out.emplace_back(p + "mean", mean);
  out.emplace_back(p + "std", std::sqrt(var));
  out.emplace_back(p + "undefined", static_cast<double>(static_cast<int64_t>(r.scores.size()) - defined));
  for (const auto& [k, v] : r.metrics) out.emplace_back(p + k, v);
}

// Mean and population variance (the ensemble's spread: its members are the whole population).
std::pair<double, double> mean_and_variance(const std::vector<double>& x) {
  double mean = 0;
  for (const double v : x) mean += v;
  mean /= static_cast<double>(x.size());
  double var = 0;
  for (const double v : x) var += (v - mean) * (v - mean);
  return {mean, var / static_cast<double>(x.size())};
}

}  // namespace

CombinedReward::CombinedReward(const std::vector<RewardSpec>& specs, const RewardContext& ctx, RewardCombine combine)
    : combine_(combine) {
  if (specs.empty()) throw InputError("no reward source given (--reward)");
  if (!std::isfinite(combine.uwo_lambda) || combine.uwo_lambda < 0) {
    std::ostringstream got;
    got << combine.uwo_lambda;
    throw InputError("--reward-uwo-lambda: expected a finite number >= 0, got " + got.str());
  }
  if (combine.mode != CombineMode::sum && specs.size() < 2)
    throw InputError("--reward-combine " + combine_mode_name(combine.mode) +
                     ": an ensemble needs at least two --reward sources, got " + std::to_string(specs.size()));
  std::map<std::string, int> seen;
  for (const RewardSpec& spec : specs) {
    const int n = ++seen[spec.kind];
    add(n == 1 ? spec.kind : spec.kind + "#" + std::to_string(n), spec.weight, make_reward_source(spec, ctx));
  }
}

void CombinedReward::add(std::string label, double weight, std::unique_ptr<RewardSource> source) {
  RLHF_CHECK(source != nullptr, "CombinedReward::add: no source");
  for (const Term& t : terms_)
    if (t.label == label) throw InputError("reward label '" + label + "' used twice");
  terms_.push_back({std::move(label), weight, std::move(source)});
}

RewardResult CombinedReward::score(const std::vector<RewardSample>& batch) {
  RLHF_CHECK(!terms_.empty(), "CombinedReward::score: no sources");
  const size_t n = batch.size();
  RewardResult out;
  std::vector<std::vector<double>> raw;  // raw[j][i]: source j's score of sample i
  for (Term& t : terms_) {
    RewardResult r = t.source->score(batch);
    RLHF_CHECK(r.scores.size() == n, "reward '" + t.label + "' returned the wrong number of scores");
    int64_t out_of_range = 0;
    for (double& v : r.scores)
      if (!std::isnan(v) && !(std::fabs(v) <= kMaxRewardMagnitude)) v = std::nan(""), ++out_of_range;
    r.metrics.emplace_back("out_of_range", static_cast<double>(out_of_range));
    append_source_metrics(t.label, r, out.metrics);
    raw.push_back(std::move(r.scores));
  }
  out.scores.assign(n, std::nan(""));
  std::vector<double> terms;    // one sample's defined terms w_j * s_j
  std::vector<size_t> sources;  // ... and the j each came from
  std::vector<int64_t> argmin(terms_.size(), 0);
  double spread = 0;
  int64_t scored = 0, undefined = 0;
  for (size_t i = 0; i < n; ++i) {
    terms.clear();
    sources.clear();
    for (size_t j = 0; j < terms_.size(); ++j) {
      if (std::isnan(raw[j][i])) continue;
      terms.push_back(terms_[j].weight * raw[j][i]);
      sources.push_back(j);
    }
    const bool any_nan = terms.size() < terms_.size();
    if (!terms.empty() && !(any_nan && combine_.nan == NanPolicy::propagate)) {
      if (combine_.mode == CombineMode::sum) {
        double sum = 0.0;
        for (const double t : terms) sum += t;
        out.scores[i] = sum;
      } else {
        const auto [mean, var] = mean_and_variance(terms);
        ++scored;
        spread += std::sqrt(var);
        if (combine_.mode == CombineMode::min) {
          const size_t k = static_cast<size_t>(std::min_element(terms.begin(), terms.end()) - terms.begin());
          out.scores[i] = terms[k];
          ++argmin[sources[k]];
        } else {
          out.scores[i] = mean - combine_.uwo_lambda * var;
        }
      }
    }
    if (!std::isfinite(out.scores[i])) out.scores[i] = std::nan(""), ++undefined;
  }
  if (combine_.mode != CombineMode::sum) {
    const double nan = std::nan("");
    out.metrics.emplace_back("rewards/ensemble/std", scored > 0 ? spread / scored : nan);
    if (combine_.mode == CombineMode::min)
      for (size_t j = 0; j < terms_.size(); ++j)
        out.metrics.emplace_back("rewards/ensemble/argmin_share/" + terms_[j].label,
                                 scored > 0 ? static_cast<double>(argmin[j]) / scored : nan);
  }
  out.metrics.emplace_back("reward/undefined", static_cast<double>(undefined));
  return out;
}

}  // namespace rlhf::rollout
