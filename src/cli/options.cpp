#include "cli/options.h"

#include <charconv>
#include <cmath>
#include <iostream>

#include "tensor/error.h"

namespace rlhf::cli {

Options& Options::add(const std::string& name, const std::string& def, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {def, help, false};
  values_[name] = def;
  return *this;
}

Options& Options::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {"false", help, true};
  values_[name] = "false";
  return *this;
}

bool Options::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << help();
      return false;
    }
    if (!a.starts_with("--"))
      throw InputError("rlhf " + command_ + ": unexpected argument '" + a + "' (options start with --; see --help)");
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) throw InputError("rlhf " + command_ + ": unknown option --" + name + " (see --help)");
    if (it->second.is_flag) {
      if (!has_value) value = "true";
      if (value != "true" && value != "false")
        throw InputError("rlhf " + command_ + ": --" + name + " takes true or false, got '" + value + "'");
    } else if (!has_value) {
      if (i + 1 >= argc) throw InputError("rlhf " + command_ + ": --" + name + " needs a value");
      value = argv[++i];
    }
    values_[name] = value;
    given_[name] = true;
  }
  return true;
}

std::string Options::str(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw LogicError("option --" + name + " was not declared");
  return it->second;
}

int64_t Options::integer(const std::string& name) const {
  const std::string v = str(name);
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    throw InputError("rlhf " + command_ + ": --" + name + " expects an integer, got '" + v + "'");
  return out;
}

double Options::number(const std::string& name) const {
  const std::string v = str(name);
  double out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(out))
    throw InputError("rlhf " + command_ + ": --" + name + " expects a number, got '" + v + "'");
  return out;
}

bool Options::boolean(const std::string& name) const { return str(name) == "true"; }

nlohmann::json Options::resolved() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& n : order_) j[n] = values_.at(n);
  return j;
}

std::string Options::help() const {
  std::string h = "usage: rlhf " + command_ + " [options]\n\n" + summary_ + "\n\noptions:\n";
  for (const auto& n : order_) {
    const Spec& s = specs_.at(n);
    std::string left = "  --" + n + (s.is_flag ? "" : " <value>");
    if (left.size() < 30) left.resize(30, ' ');
    h += left + " " + s.help;
    if (!s.is_flag && !s.def.empty()) h += " (default: " + s.def + ")";
    h += "\n";
  }
  h += "  --help                         show this help\n";
  return h;
}

}  // namespace rlhf::cli
