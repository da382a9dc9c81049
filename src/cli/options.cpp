#include "cli/options.h"

#include <omp.h>

#include <charconv>
#include <cmath>
#include <iostream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "tensor/error.h"

namespace rlhf::cli {

Options::Options(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {
  add("config", "", "YAML recipe with option values (command-line flags override it)");
}

void Options::load_recipe(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw InputError(path + ": cannot open recipe");
  } catch (const YAML::Exception& e) {
    throw InputError(path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                     ": invalid YAML: " + e.msg);
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) throw InputError(path + ": a recipe is a mapping of option names to values");
  std::map<std::string, int> seen;
  for (const auto& kv : root) {
    const int line = kv.first.Mark().line + 1;
    const std::string where = path + ":" + std::to_string(line);
    std::string name = kv.first.as<std::string>();
    for (char& c : name)
      if (c == '_') c = '-';
    if (seen.count(name))
      throw InputError(where + ": duplicate key '" + kv.first.as<std::string>() + "' (first at line " +
                       std::to_string(seen[name]) + ")");
    seen[name] = line;
    auto it = specs_.find(name);
    if (it == specs_.end() || name == "config")
      throw InputError(where + ": unknown key '" + kv.first.as<std::string>() + "' for rlhf " + command_ +
                       " (see rlhf " + command_ + " --help)");
    std::string value;
    const YAML::Node& v = kv.second;
    if (it->second.is_list) {
      std::vector<std::string>& items = lists_[name];
      if (v.IsScalar()) items.push_back(v.Scalar());
      else if (v.IsSequence())
        for (const auto& item : v) {
          if (!item.IsScalar())
            throw InputError(where + ": key '" + kv.first.as<std::string>() + "': expected a list of values");
          items.push_back(item.Scalar());
        }
      given_[name] = true;
      source_[name] = where;
      continue;
    }
    if (v.IsScalar()) {
      value = v.Scalar();
    } else if (v.IsSequence()) {
      for (const auto& item : v) {
        if (!item.IsScalar())
          throw InputError(where + ": key '" + kv.first.as<std::string>() + "': expected a list of values");
        value += (value.empty() ? "" : ",") + item.Scalar();
      }
    } else if (!v.IsNull()) {
      throw InputError(where + ": key '" + kv.first.as<std::string>() + "': expected a value or a list, got a mapping");
    }
    if (it->second.is_flag && value != "true" && value != "false")
      throw InputError(where + ": key '" + kv.first.as<std::string>() + "' takes true or false, got '" + value + "'");
    values_[name] = value;
    given_[name] = true;
    source_[name] = where;
  }
}

Options& Options::add(const std::string& name, const std::string& def, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {def, help, false};
  values_[name] = def;
  return *this;
}

Options& Options::repeated(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {"", help, false, true};
  lists_[name] = {};
  return *this;
}

Options& Options::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {"false", help, true};
  values_[name] = "false";
  return *this;
}

bool Options::parse(int argc, char** argv) {
  // The recipe first, wherever --config appears, so that every flag overrides it.
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) load_recipe(argv[i + 1]);
    if (a.starts_with("--config=")) load_recipe(a.substr(9));
  }
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
    if (it->second.is_list) {
      if (source_[name] != "command line") lists_[name].clear();  // the command line replaces the recipe
      lists_[name].push_back(value);
    } else {
      values_[name] = value;
    }
    given_[name] = true;
    source_[name] = "command line";
  }
  return true;
}

void Options::require(std::initializer_list<const char*> names) const {
  for (const char* name : names)
    if (str(name).empty()) throw InputError("rlhf " + command_ + ": --" + name + " is required");
}

std::vector<std::string> Options::list(const std::string& name) const {
  auto it = lists_.find(name);
  if (it == lists_.end()) throw LogicError("option --" + name + " was not declared repeatable");
  return it->second;
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

nlohmann::json Options::provenance() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& n : order_) j[n] = source_.count(n) ? source_.at(n) : "default";
  return j;
}

bool Options::boolean(const std::string& name) const { return str(name) == "true"; }

nlohmann::json Options::resolved() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& n : order_) j[n] = specs_.at(n).is_list ? nlohmann::json(lists_.at(n)) : nlohmann::json(values_.at(n));
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

void declare_threads(Options& o) { o.add("threads", "0", "CPU threads (0 = all cores)"); }

void declare_backend(Options& o) {
  o.add("backend", "cpu", "kernel backend: cpu | reference (plain double-precision loops: slow, a check of cpu)");
}
const kernels::Backend& backend_from(const Options& o) { return kernels::backend_named(o.str("backend")); }

static void set_threads(long n) {  // 0 = all cores
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(static_cast<int>(n));
}

void apply_threads(const Options& o) { set_threads(o.integer("threads")); }

void declare_dist_timeout(Options& o) {
  o.add("dist-timeout", "1800", "under mpirun: seconds a collective may wait for the other ranks before all stop");
}

void declare_learning_rate(Options& o, const std::string& def) { o.add("learning-rate", def, "peak learning rate"); }

void declare_adam(Options& o) {
  o.add("adam-beta1", "0.9", "AdamW beta1")
      .add("adam-beta2", "0.999", "AdamW beta2")
      .add("adam-epsilon", "1e-8", "AdamW epsilon")
      .add("max-grad-norm", "1.0", "global gradient-norm clipping (0 disables)");
}

AdamWConfig adamw_from(const Options& o) {
  return {o.number("learning-rate"), o.number("adam-beta1"),   o.number("adam-beta2"),
          o.number("adam-epsilon"),  o.number("weight-decay"), o.number("max-grad-norm")};
}

void declare_checkpoints(Options& o) {
  o.add("save-steps", "0", "write a resumable checkpoint-<step>/ every N steps (0: none)")
      .add("save-total-limit", "0", "keep only the newest N checkpoints (0: all)")
      .flag("resume", "continue from the newest checkpoint in --out");
}

CheckpointCadence checkpoints_from(const Options& o) {
  return {o.integer("save-steps"), o.integer("save-total-limit")};
}

nlohmann::json resume_fingerprint(const Options& o, std::initializer_list<const char*> free) {
  nlohmann::json j = o.resolved();
  for (const char* name : {"resume", "threads", "config"}) j.erase(name);
  for (const char* name : free) j.erase(name);
  return j;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace rlhf::cli
