// Reward specs, the source factory, callback sources and the weighted combination.
#include "rollout/reward.h"

#include <cctype>
#include <cstdlib>

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

// ---- combination ----------------------------------------------------------------------------------

CombinedReward::CombinedReward(const std::vector<RewardSpec>& specs, const RewardContext& ctx, NanPolicy nan)
    : nan_(nan) {
  if (specs.empty()) throw InputError("no reward source given (--reward)");
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
  out.scores.assign(n, 0.0);
  std::vector<int> defined_terms(n, 0);
  for (Term& t : terms_) {
    RewardResult r = t.source->score(batch);
    RLHF_CHECK(r.scores.size() == n, "reward '" + t.label + "' returned the wrong number of scores");
    double sum = 0, sum2 = 0;
    int64_t defined = 0;
    for (size_t i = 0; i < n; ++i) {
      const double v = r.scores[i];
      if (std::isnan(v)) {
        if (nan_ == NanPolicy::propagate) out.scores[i] = std::nan("");
        continue;
      }
      ++defined;
      ++defined_terms[i];
      sum += v;
      sum2 += v * v;
      out.scores[i] += t.weight * v;
    }
    const std::string p = "rewards/" + t.label + "/";
    const double mean = defined > 0 ? sum / defined : std::nan("");
    // Sample standard deviation, as TRL's nanstd (Bessel's correction).
    const double var = defined > 1 ? std::max(0.0, (sum2 - defined * mean * mean) / (defined - 1)) : 0.0;
    out.metrics.emplace_back(p + "mean", mean);
    out.metrics.emplace_back(p + "std", std::sqrt(var));
    out.metrics.emplace_back(p + "undefined", static_cast<double>(static_cast<int64_t>(n) - defined));
    for (auto& [k, v] : r.metrics) out.metrics.emplace_back(p + k, v);
  }
  int64_t undefined = 0;
  for (size_t i = 0; i < n; ++i) {
    if (defined_terms[i] == 0) out.scores[i] = std::nan("");
    if (std::isnan(out.scores[i])) ++undefined;
  }
  out.metrics.emplace_back("reward/undefined", static_cast<double>(undefined));
  return out;
}

}  // namespace rlhf::rollout
