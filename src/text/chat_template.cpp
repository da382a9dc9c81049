// ChatTemplate: the Jinja subset interpreter (jinja_*.h) driven the way transformers'
// apply_chat_template drives Jinja2.
//
// What the template sees, as in transformers 5.x (tokenization_utils_base.apply_chat_template and
// utils/chat_template_utils.render_jinja_template):
//   messages               each message with its null-valued keys dropped; a message carrying
//                          reasoning (reasoning_content, thinking or reasoning) gets both
//                          `thinking` and `reasoning_content` set to it
//   add_generation_prompt  the argument
//   tools, documents       none unless `extra` sets them
//   everything in `extra`  (bos_token, eos_token, date_string, enable_thinking, ...)
//   raise_exception(msg)   fails the render with an InputError carrying msg
//   strftime_now(fmt)      the current local time, or the fixed time extra["strftime_now"] gives
//                          ("YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS"); that key is not a variable
//   range, dict, namespace
//
// A parsed ChatTemplate is immutable: render() may run concurrently from several threads.
//
// Deliberate difference: `extra` and `messages` arrive as nlohmann::json, whose objects are
// ordered by key, so a template iterating a dict (tojson of a tool schema, dict.items()) sees
// sorted keys where Python would see insertion order. The parity fixtures use sorted keys.
#include "text/chat_template.h"

#include <cstdio>
#include <ctime>

#include "tensor/error.h"
#include "text/jinja_eval.h"
#include "text/jinja_parser.h"

namespace rlhf {

struct ChatTemplate::Impl {
  jinja::Template tmpl;
  jinja::Limits limits;
};

namespace {

using jinja::CallArgs;
using jinja::EvalError;
using jinja::Value;

struct ClockTime {
  int year, month, day, hour, minute, second;
};

ClockTime parse_fixed_time(const std::string& s, const std::string& name) {
  ClockTime t{0, 0, 0, 0, 0, 0};
  int consumed = 0;
  const int n = std::sscanf(s.c_str(), "%4d-%2d-%2d%n", &t.year, &t.month, &t.day, &consumed);
  bool ok = n == 3;
  if (ok && consumed < static_cast<int>(s.size())) {
    int rest = 0;
    const char sep = s[consumed];
    ok = (sep == 'T' || sep == ' ') &&
         std::sscanf(s.c_str() + consumed + 1, "%2d:%2d:%2d%n", &t.hour, &t.minute, &t.second, &rest) == 3 &&
         consumed + 1 + rest == static_cast<int>(s.size());
  }
  ok = ok && t.month >= 1 && t.month <= 12 && t.day >= 1 && t.day <= 31 && t.hour < 24 && t.minute < 60 && t.second < 61;
  if (!ok)
    throw InputError(name + ": extra[\"strftime_now\"] must be \"YYYY-MM-DD\" or \"YYYY-MM-DDTHH:MM:SS\", got \"" + s + "\"");
  return t;
}

ClockTime local_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  return ClockTime{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
}

// datetime.strftime in the C locale, for the directives chat templates use.
std::string strftime_c(const ClockTime& t, const std::string& fmt) {
  static const char* const kDays[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
  static const char* const kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                        "July",    "August",   "September", "October", "November", "December"};
  // Day of week (0 = Monday) and of year, by days since 1970-01-01 (a Thursday).
  auto days_from_civil = [](int y, int m, int d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
  };
  const int days = days_from_civil(t.year, t.month, t.day);
  const int weekday = ((days % 7) + 7 + 3) % 7;
  const int yday = days - days_from_civil(t.year, 1, 1) + 1;
  std::string out;
  char buf[32];
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out.push_back(fmt[i]);
      continue;
    }
    char c = fmt[++i];
    bool no_pad = false;
    if (c == '-' && i + 1 < fmt.size()) {  // glibc extension: %-d, %-m, ...
      no_pad = true;
      c = fmt[++i];
    }
    auto num = [&](int v, int width) {
      if (no_pad) {
        std::snprintf(buf, sizeof buf, "%d", v);
      } else {
        std::snprintf(buf, sizeof buf, "%0*d", width, v);
      }
      out += buf;
    };
    switch (c) {
      case 'a': out += std::string(kDays[weekday]).substr(0, 3); break;
      case 'A': out += kDays[weekday]; break;
      case 'b': case 'h': out += std::string(kMonths[t.month - 1]).substr(0, 3); break;
      case 'B': out += kMonths[t.month - 1]; break;
      case 'd': num(t.day, 2); break;
      case 'e': std::snprintf(buf, sizeof buf, "%2d", t.day); out += buf; break;
      case 'm': num(t.month, 2); break;
      case 'y': num(t.year % 100, 2); break;
      case 'Y': std::snprintf(buf, sizeof buf, "%d", t.year); out += buf; break;
      case 'H': num(t.hour, 2); break;
      case 'I': num(t.hour % 12 == 0 ? 12 : t.hour % 12, 2); break;
      case 'M': num(t.minute, 2); break;
      case 'S': num(t.second, 2); break;
      case 'p': out += t.hour < 12 ? "AM" : "PM"; break;
      case 'j': num(yday, 3); break;
      case 'u': num(weekday + 1, 1); break;
      case 'w': num((weekday + 1) % 7, 1); break;
      case 'F': std::snprintf(buf, sizeof buf, "%d-%02d-%02d", t.year, t.month, t.day); out += buf; break;
      case 'T': std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", t.hour, t.minute, t.second); out += buf; break;
      case 'Z': case 'z': break;
      case '%': out.push_back('%'); break;
      default: throw EvalError(std::string("unsupported strftime directive '%") + c + "'");
    }
  }
  return out;
}

// Messages as transformers hands them to the template (see the file comment).
Value normalize_messages(const nlohmann::json& messages, const std::string& name) {
  if (!messages.is_array()) throw InputError(name + ": messages must be a JSON array of message objects");
  if (messages.empty())
    throw InputError(name + ": cannot apply a chat template to an empty conversation; provide at least one message");
  std::vector<Value> out;
  out.reserve(messages.size());
  size_t index = 0;
  for (const auto& m : messages) {
    if (!m.is_object())
      throw InputError(name + ": messages[" + std::to_string(index) + "] must be an object, got " + m.dump());
    std::vector<std::pair<Value, Value>> items;
    const nlohmann::json* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
      const auto it = m.find(key);
      if (it != m.end() && !it->is_null()) {
        reasoning = &*it;
        break;
      }
    }
    if (reasoning) items.emplace_back(Value::string("thinking"), jinja::from_json(*reasoning));
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (it->is_null()) continue;
      if (reasoning && it.key() == "thinking") {
        items[0].second = jinja::from_json(it.value());
        continue;
      }
      items.emplace_back(Value::string(it.key()), jinja::from_json(it.value()));
    }
    if (reasoning) {
      bool replaced = false;
      for (auto& kv : items)
        if (kv.first.str() == "reasoning_content") {
          kv.second = jinja::from_json(*reasoning);
          replaced = true;
        }
      if (!replaced) items.emplace_back(Value::string("reasoning_content"), jinja::from_json(*reasoning));
    }
    out.push_back(Value::dict(std::move(items)));
    ++index;
  }
  return Value::list(std::move(out));
}

}  // namespace

ChatTemplate::ChatTemplate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

ChatTemplate ChatTemplate::parse(const std::string& source, const std::string& name, const jinja::Limits& limits) {
  auto impl = std::make_unique<Impl>();
  impl->tmpl = jinja::parse_template(source, name, limits);
  impl->limits = limits;
  return ChatTemplate(std::move(impl));
}

std::string ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                 const nlohmann::json& extra) const {
  const std::string& name = impl_->tmpl.name;
  if (!extra.is_object() && !extra.is_null()) throw InputError(name + ": extra variables must be a JSON object");

  auto globals = std::make_shared<jinja::Scope>();
  jinja::add_builtin_globals(*globals);
  globals->set("raise_exception", Value::callable("raise_exception", [](jinja::Interpreter&, CallArgs& a) -> Value {
    const std::string msg = a.positional.empty() ? std::string() : jinja::to_str(a.positional[0]);
    throw EvalError("raise_exception: " + msg);
  }));
  ClockTime fixed{};
  bool has_fixed = false;
  if (extra.is_object()) {
    const auto it = extra.find("strftime_now");
    if (it != extra.end()) {
      if (!it->is_string()) throw InputError(name + ": extra[\"strftime_now\"] must be a date string");
      fixed = parse_fixed_time(it->get<std::string>(), name);
      has_fixed = true;
    }
  }
  globals->set("strftime_now", Value::callable("strftime_now", [fixed, has_fixed](jinja::Interpreter&, CallArgs& a) {
    if (a.positional.size() != 1 || !a.keyword.empty() || !a.positional[0].is_string())
      throw EvalError("strftime_now() takes one format string");
    return Value::string(strftime_c(has_fixed ? fixed : local_now(), a.positional[0].str()));
  }));

  auto context = std::make_shared<jinja::Scope>();
  context->parent = globals;
  jinja::Interpreter interp(impl_->tmpl, impl_->limits);
  try {
    context->set("messages", normalize_messages(messages, name));
    context->set("tools", Value::none());
    context->set("documents", Value::none());
    context->set("add_generation_prompt", Value::boolean(add_generation_prompt));
    if (extra.is_object()) {
      for (auto it = extra.begin(); it != extra.end(); ++it) {
        if (it.key() == "strftime_now") continue;
        if (it.key() == "messages" || it.key() == "add_generation_prompt")
          throw InputError(name + ": extra must not set '" + it.key() + "' (it is an argument of render)");
        context->set(it.key(), jinja::from_json(it.value()));
      }
    }
    return interp.render(context);
  } catch (const EvalError& e) {
    throw InputError(name + ": " + e.what());
  }
}

}  // namespace rlhf
