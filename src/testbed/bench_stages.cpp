#include "testbed/bench_stages.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include <omp.h>

#include "data/jsonl.h"
#include "data/text_match.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "rollout/reward.h"
#include "tensor/error.h"

extern char** environ;

namespace rlhf::testbed {

std::vector<json> read_jsonl(const fs::path& path) {
  LineReader reader(path);
  std::vector<json> rows;
  std::string line;
  while (reader.next(line)) {
    if (line.empty()) continue;
    try {
      rows.push_back(json::parse(line));
    } catch (const std::exception& e) {
      throw InputError(path.string() + ":" + std::to_string(reader.line_no()) + ": not JSON (" + e.what() + ")");
    }
  }
  return rows;
}

json read_json(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw InputError(path.string() + ": cannot be opened");
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    throw InputError(path.string() + ": not JSON (" + e.what() + ")");
  }
}

json finite_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

json per_unit(const std::vector<double>& values) {
  json out = json::array();
  for (double x : values) out.push_back(finite_or_null(std::round(x * 1e5) / 1e5));
  return out;
}

std::string arg(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

// ---- stages ------------------------------------------------------------------------------------

namespace {

double cpu_seconds(const rusage& r) {
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e-6;
}

// CPU seconds of the calling thread (in-process work: evaluation, data building).
double thread_cpu_seconds() {
  rusage r{};
  getrusage(RUSAGE_THREAD, &r);
  return cpu_seconds(r);
}

// CPU seconds of the `rlhf` commands this thread has waited for; a stage's share is the change
// across its body.
thread_local double commands_cpu_seconds = 0;

// Whether the stage running on this thread has held a job slot (Stages::Slot).
thread_local bool stage_has_held_slot = false;

}  // namespace

Stages::Stages(fs::path root, fs::path exe, int jobs, std::string version)
    : root_(std::move(root)), exe_(std::move(exe)), jobs_(jobs), version_(std::move(version)), free_slots_(jobs) {}

Stages::Slot::Slot(const Stages& stages) : stages_(stages) {
  std::unique_lock<std::mutex> lock(stages_.slot_mu_);
  const int queue = stage_has_held_slot ? 1 : 0;
  const uint64_t ticket = stages_.next_ticket_[queue]++;
  stages_.slot_cv_.wait(lock, [&] {
    const bool started_waiting = stages_.next_ticket_[1] != stages_.admitted_[1];
    return stages_.failed_ || (ticket == stages_.admitted_[queue] && stages_.free_slots_ > 0 &&
                               (queue == 1 || !started_waiting));
  });
  if (stages_.failed_) throw Cancelled();
  ++stages_.admitted_[queue];
  --stages_.free_slots_;
  stages_.slot_cv_.notify_all();  // the next ticket may take another free slot
  since_ = std::chrono::steady_clock::now();
}

Stages::Slot::~Slot() {
  const double held = std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
  std::lock_guard<std::mutex> lock(stages_.slot_mu_);
  stages_.busy_seconds_ += held;
  stage_has_held_slot = true;
  ++stages_.free_slots_;
  stages_.slot_cv_.notify_all();
}

namespace {

void collect_strings(const json& j, std::vector<std::string>& out) {
  if (j.is_string()) out.push_back(j.get<std::string>());
  if (j.is_structured())
    for (const auto& v : j) collect_strings(v, out);
}

// `path` (relative to the stages folder) is `stage` or lies inside it.
bool inside(const std::string& path, const std::string& stage) {
  return path.compare(0, stage.size(), stage) == 0 && (path.size() == stage.size() || path[stage.size()] == '/');
}

std::string shorten(const json& j) {
  std::string s = j.is_string() ? j.get<std::string>() : j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// The first place where two keys' inputs differ, for the terminal: an argument list shows the first
// differing argument after the one before it ("--beta 0.1 -> --beta 0.2").
std::string first_difference(const json& was, const json& now) {
  if (was.is_object() && now.is_object()) {
    for (const auto& [k, v] : now.items())
      if (!was.contains(k)) return k + " added";
      else if (was.at(k) != v) return k + ": " + first_difference(was.at(k), v);
    for (const auto& [k, v] : was.items())
      if (!now.contains(k)) return k + " removed";
  }
  if (was.is_array() && now.is_array()) {
    size_t i = 0;
    while (i < was.size() && i < now.size() && was[i] == now[i]) ++i;
    if (i < was.size() && i < now.size() && was[i].is_structured()) return first_difference(was[i], now[i]);
    auto around = [i](const json& args) {
      return (i > 0 ? shorten(args[i - 1]) + " " : "") + (i < args.size() ? shorten(args[i]) : "(end)");
    };
    return around(was) + " -> " + around(now);
  }
  return shorten(was) + " -> " + shorten(now);
}

// Why a stage stored under key `was` is stale under `now`, or "" when it is not.
std::string what_changed(const json& was, const json& now) {
  if (was == now) return "";
  if (!was.is_object() || !was.contains("version") || !was.contains("inputs") || !was.contains("upstream") ||
      !was["upstream"].is_object())
    return "its key.json is not a stage key";
  if (was["version"] != now["version"]) return "version " + shorten(was["version"]) + " -> " + shorten(now["version"]);
  const json &in_was = was["inputs"], &in_now = now["inputs"];
  if (in_was != in_now) {
    if (in_was.is_object() && in_was.contains("rlhf") && in_now.contains("rlhf") && in_was["rlhf"] != in_now["rlhf"])
      return "command " + first_difference(in_was["rlhf"], in_now["rlhf"]);
    return "inputs " + first_difference(in_was, in_now);
  }
  for (const auto& [stage, digest] : now["upstream"].items())
    if (was["upstream"].value(stage, "") != digest) return "upstream stage " + stage + " changed";
  return "upstream stages " + first_difference(was["upstream"], now["upstream"]);
}

}  // namespace

json Stages::relative_paths(const json& inputs) const {
  if (inputs.is_string()) return relative(std::vector<std::string>{inputs.get<std::string>()}).front();
  json out = inputs;
  if (inputs.is_structured())
    for (auto& v : out) v = relative_paths(v);
  return out;
}

json Stages::key(const std::string& name, const json& inputs) const {
  const std::string prefix = (root_ / "stages").string() + "/";
  std::vector<std::string> strings;
  collect_strings(inputs, strings);
  json upstream = json::object();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : strings)
    for (size_t at = s.find(prefix); at != std::string::npos; at = s.find(prefix, at + 1)) {
      const std::string path = s.substr(at + prefix.size());
      if (inside(path, name)) continue;  // the stage's own output
      const std::string* from = nullptr;  // the innermost stage holding the path
      for (const auto& [stage, digest] : digests_)
        if (inside(path, stage) && (!from || stage.size() > from->size())) from = &stage;
      if (!from)
        throw std::logic_error("bench stage " + name + " reads stages/" + path + ", which no stage of this run made");
      upstream[*from] = digests_.at(*from);
    }
  return {{"version", version_}, {"inputs", relative_paths(inputs)}, {"upstream", upstream}};
}

fs::path Stages::stage(const std::string& name, const json& inputs,
                       const std::function<void(const fs::path& dir)>& body) {
  const fs::path dir = this->dir(name);
  std::shared_ptr<std::once_flag> once;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = once_[name];
    if (!slot) slot = std::make_shared<std::once_flag>();
    once = slot;
  }
  std::call_once(*once, [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const double thread0 = thread_cpu_seconds(), commands0 = commands_cpu_seconds;
    const json key = this->key(name, inputs);
    bool cached = fs::exists(dir / "DONE");
    if (cached) {
      json was;
      try {
        was = read_json(dir / "key.json");
      } catch (const InputError&) {  // missing (a bench from before keys) or unreadable
      }
      const std::string change = was.is_null() ? "no readable key.json" : what_changed(was, key);
      cached = change.empty();
      if (!cached) {
        std::lock_guard<std::mutex> lock(mu_);
        std::cout << "  stale   " << name << "  (" << change << ")" << std::endl;
      }
    }
    if (!cached) {  // DONE goes last: an interrupted stage is recomputed whole
      fs::remove_all(dir);
      fs::create_directories(dir);
      struct Restore {  // a stage run inside another's body leaves the outer one's flag as it was
        bool outer;
        ~Restore() { stage_has_held_slot = outer; }
      } restore{std::exchange(stage_has_held_slot, false)};
      body(dir);
      write_file_atomic(dir / "key.json", key.dump(2) + "\n");
      write_file_atomic(dir / "DONE", "");
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto rounded = [](double x) { return std::round(x * 100) / 100; };
    const json cpu = {{"commands", rounded(commands_cpu_seconds - commands0)},
                      {"in_process", rounded(thread_cpu_seconds() - thread0)}};
    std::lock_guard<std::mutex> lock(mu_);
    char digest[17];
    std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(hash64(key.dump())));
    digests_[name] = digest;
    timings_.push_back({{"name", name}, {"seconds", rounded(s)}, {"cached", cached}, {"cpu_seconds", cpu}});
    std::cout << (cached ? "  cached  " : "  done    ") << name;
    if (!cached) std::cout << "  (" << std::round(s * 10) / 10 << " s)";
    std::cout << std::endl;
  });
  return dir;
}

std::vector<std::string> Stages::relative(const std::vector<std::string>& args) const {
  const std::string prefix = root_.string() + "/";
  std::vector<std::string> out;
  for (const auto& a : args) {
    const size_t at = a.find(prefix);  // also inside a reward spec such as rm:PATH
    out.push_back(at == std::string::npos ? a : a.substr(0, at) + a.substr(at + prefix.size()));
  }
  return out;
}

std::string Stages::command_line(const std::vector<std::string>& raw) const {
  const std::vector<std::string> args = relative(raw);
  std::string s = "rlhf";
  for (const auto& a : args) {
    const bool quote = a.find_first_of(" ()*:,") != std::string::npos;
    s += " " + (quote ? "'" + a + "'" : a);
  }
  return s;
}

void Stages::rlhf(const std::vector<std::string>& args, const fs::path& log) const {
  // Paths inside the bench directory are passed relative to it (the stage runs there), so that
  // commands and manifests read the same wherever the bench was written.
  std::vector<std::string> full = {exe_.string()};
  for (const auto& a : relative(args)) full.push_back(a);
  if (args.front() != "init-model") {  // one thread per stage: the bench runs stages side by side
    full.push_back("--threads");
    full.push_back("1");
  }
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  {
    std::ofstream f(log, std::ios::app);
    f << "$ " << command_line(std::vector<std::string>(full.begin() + 1, full.end())) << "\n";
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string log_abs = fs::absolute(log).string();
  posix_spawn_file_actions_addchdir_np(&fa, root_.c_str());
  posix_spawn_file_actions_addopen(&fa, 1, log_abs.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const Slot slot(*this);
  pid_t pid = 0;
  // The command learns the bench's pid so that it ends with the bench (cli/main.cpp).
  std::vector<std::string> env_strings = {"RLHF_BENCH_PID=" + std::to_string(getpid())};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "RLHF_BENCH_PID=", 15) != 0) env_strings.push_back(*e);
  std::vector<char*> env;
  for (auto& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  const int err = posix_spawn(&pid, exe_.c_str(), &fa, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  if (err) throw IoError("cannot start " + exe_.string() + ": " + std::strerror(err));
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  commands_cpu_seconds += cpu_seconds(usage);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  std::ifstream f(log);
  std::string line, tail;
  std::vector<std::string> lines;
  while (std::getline(f, line)) lines.push_back(line);
  for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) tail += "\n    " + lines[i];
  const std::string message = "bench stage failed (" +
                              (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                                 : "signal " + std::to_string(WTERMSIG(status))) +
                              "): " + command_line(args) + "\n  log " + log.string() + ":" + tail;
  // The stage's own exit code keeps its meaning (2: bad input, 3: I/O, 4: numerics).
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  if (code == 2) throw InputError(message);
  if (code == 3) throw IoError(message);
  if (code == 4) throw NumericError(message);
  throw std::runtime_error(message);
}

void Stages::parallel(const std::vector<std::function<void()>>& tasks, bool all_at_once) const {
  std::atomic<size_t> next{0};
  std::exception_ptr first;
  bool first_cancelled = false;  // a real failure replaces a cancellation, which only follows one
  std::mutex err_mu;
  auto worker = [&] {
    omp_set_num_threads(1);  // in-process evaluation shares the cores with the other workers
    for (size_t i; (i = next++) < tasks.size();) {
      {
        std::lock_guard<std::mutex> lock(err_mu);
        if (first) return;
      }
      try {
        tasks[i]();
      } catch (const Cancelled&) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (!first) first = std::current_exception(), first_cancelled = true;
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(err_mu);
          if (!first || first_cancelled) first = std::current_exception(), first_cancelled = false;
        }
        std::lock_guard<std::mutex> lock(slot_mu_);
        failed_ = true;
        slot_cv_.notify_all();
      }
    }
  };
  const int width = all_at_once ? static_cast<int>(tasks.size()) : jobs_;
  const int n = std::max(1, std::min<int>(width, static_cast<int>(tasks.size())));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

json Stages::timings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return timings_;
}

double Stages::busy_seconds() const {
  std::lock_guard<std::mutex> lock(slot_mu_);
  return busy_seconds_;
}

// ---- the world of one task and seed --------------------------------------------------------------

AnnotatedItem BaseSample::item() const {
  return {.gold = gold, .length = static_cast<double>(length),
          .id = std::hash<std::string>{}(std::to_string(prompt) + "\x1f" + completion + (eos ? "\x1e" : ""))};
}

World::World(Stages& stages, const Profile& profile, std::string task, uint64_t seed, uint64_t world_seed)
    : stages_(stages), profile_(profile), name_(std::move(task)), seed_(seed), world_seed_(world_seed),
      task_(make_task(name_, world_seed)) {}

std::string World::key() const { return name_ + "/seed=" + std::to_string(seed_); }

std::string World::gold_spec(const std::string& options) const {
  std::string opts = "world=" + std::to_string(world_seed_) + (options.empty() ? "" : "," + options);
  return "gold(" + opts + "):" + name_;
}

namespace {

const char* split_name(Split s) {
  return s == Split::train ? "train" : s == Split::test ? "test" : s == Split::ood ? "ood" : "val";
}

std::string prompt_rows(const std::vector<std::string>& prompts) {
  std::string out;
  for (const auto& p : prompts) out += json{{"prompt", p}}.dump() + "\n";
  return out;
}

}  // namespace

std::pair<int, int> World::base_steps() const {
  const double scale = name_ == "sort" ? 0.25 : name_ == "lists" ? 2.0 : 1.0;
  return {std::max(1, static_cast<int>(profile_.lm_steps * scale)), std::max(1, static_cast<int>(profile_.sft_steps * scale))};
}

fs::path World::data_dir() {
  const std::pair<int, int> steps = base_steps();
  const json inputs = {{"task", name_},
                       {"seed", seed_},
                       {"world_seed", world_seed_},
                       {"prompts", {profile_.train_prompts, profile_.test_prompts}},
                       {"base_steps", {steps.first, steps.second}},
                       {"max_positions", profile_.preset.max_positions}};
  return stages_.stage(key() + "/data", inputs, [&](const fs::path& dir) {
    const std::vector<std::string> specials = {"<pad>", "<eos>", "<unk>"};
    write_file_atomic(dir / "tokenizer.json", word_level_tokenizer_json(task_->words(), specials));
    write_file_atomic(dir / "tokenizer_config.json",
                      json{{"eos_token", "<eos>"}, {"pad_token", "<pad>"}, {"unk_token", "<unk>"},
                           {"model_max_length", profile_.preset.max_positions}, {"clean_up_tokenization_spaces", false}}
                          .dump(2));
    const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
    const int32_t eos = *tok.token_to_id("<eos>");
    // Prompts: disjoint streams per split; the test split is what every evaluation uses.
    const std::pair<Split, int> counts[] = {{Split::train, profile_.train_prompts},
                                            {Split::test, profile_.test_prompts},
                                            {Split::ood, profile_.test_prompts}};
    for (const auto& [split, n] : counts) {
      Rng rng(seed_ * 7919 + world_seed_, 10 + static_cast<int>(split));
      std::vector<std::string> prompts;
      for (int i = 0; i < n; ++i) prompts.push_back(task_->prompt(rng, split));
      write_file_atomic(dir / (std::string(split_name(split)) + ".jsonl"), prompt_rows(prompts));
    }
    // Pretraining documents as token ids, and SFT demonstrations in TRL's prompt/completion layout.
    Rng rng(seed_ * 7919 + world_seed_, 1);
    std::string docs;
    const auto [lm_steps, sft_steps] = base_steps();
    const int n_docs = lm_steps * 32 * profile_.preset.max_positions / 16;
    for (int i = 0; i < n_docs; ++i) {
      std::vector<int32_t> ids = tok.encode(task_->pretraining_text(rng));
      ids.push_back(eos);
      for (size_t j = 0; j < ids.size(); ++j) {
        if (j) docs += ' ';
        docs += std::to_string(ids[j]);
      }
      docs += "\n";
    }
    write_file_atomic(dir / "docs.txt", docs);
    std::string sft;
    for (int i = 0; i < sft_steps * 32; ++i) {
      const Demonstration d = task_->demonstration(rng);
      sft += json{{"prompt", d.prompt}, {"completion", " " + d.completion}}.dump() + "\n";
    }
    write_file_atomic(dir / "sft.jsonl", sft);
  });
}

// `wanted` prompts drawn as train prompts from RNG stream `stream`, none of them in `taken`, and
// with `distinct` none twice (the val split predates that rule and keeps its draws).
std::vector<std::string> World::unseen_prompts(int stream, int wanted, const std::set<std::string>& taken,
                                               bool distinct, const std::string& what) {
  Rng rng(seed_ * 7919 + world_seed_, stream);
  std::set<std::string> drawn;
  std::vector<std::string> prompts;
  for (int draws = 0; static_cast<int>(prompts.size()) < wanted; ++draws) {
    if (draws >= 1000 * wanted)
      throw InputError("bench: task " + name_ + " has too few prompts outside its other prompt files for " +
                       std::to_string(wanted) + " " + what + " (found " + std::to_string(prompts.size()) + ")");
    std::string p = task_->prompt(rng, Split::val);
    if (!taken.count(p) && (drawn.insert(p).second || !distinct)) prompts.push_back(std::move(p));
  }
  return prompts;
}

fs::path World::prompts(Split split) {
  if (split != Split::val) return data_dir() / (std::string(split_name(split)) + ".jsonl");
  // Its own stage, so that benches cached before the val split keep their data stage.
  const auto& train = prompt_texts(Split::train);
  const auto& test = prompt_texts(Split::test);
  const json inputs = {{"train", prompts(Split::train)}, {"test", prompts(Split::test)},
                       {"prompts", profile_.test_prompts}};
  return stages_.stage(key() + "/val-prompts", inputs, [&](const fs::path& dir) {
    std::set<std::string> taken(train.begin(), train.end());
    taken.insert(test.begin(), test.end());
    const auto val = unseen_prompts(10 + static_cast<int>(Split::val), profile_.test_prompts, taken, false,
                                    "validation prompts");
    write_file_atomic(dir / "val.jsonl", prompt_rows(val));
  }) / "val.jsonl";
}

fs::path World::train_plus_unlabeled_prompts() {
  const auto& train = prompt_texts(Split::train);
  const auto& test = prompt_texts(Split::test);
  const auto& val = prompt_texts(Split::val);
  const int wanted = kUnlabeledPromptsPerTrain * profile_.train_prompts;
  const json inputs = {{"train", prompts(Split::train)}, {"test", prompts(Split::test)}, {"val", prompts(Split::val)},
                       {"unlabeled", wanted}};
  return stages_.stage(key() + "/unlabeled-prompts", inputs, [&](const fs::path& dir) {
    std::set<std::string> taken(train.begin(), train.end());
    taken.insert(test.begin(), test.end());
    taken.insert(val.begin(), val.end());
    std::vector<std::string> all = train;
    for (auto& p : unseen_prompts(20, wanted, taken, true, "unlabeled prompts")) all.push_back(std::move(p));
    write_file_atomic(dir / "train+unlabeled.jsonl", prompt_rows(all));
  }) / "train+unlabeled.jsonl";
}

const std::vector<std::string>& World::prompt_texts(Split split) {
  const fs::path file = prompts(split);
  std::lock_guard<std::mutex> lock(mu_);
  auto& p = prompt_texts_[split];
  if (p.empty())
    for (const auto& row : read_jsonl(file)) p.push_back(row.at("prompt").get<std::string>());
  return p;
}

fs::path World::base() {
  const fs::path data = data_dir();
  const std::string name = key() + "/base";
  const fs::path init = stages_.dir(name) / "init", lm = stages_.dir(name) / "lm";
  const ModelPreset& m = profile_.preset;
  const auto [lm_steps, sft_steps] = base_steps();
  const std::vector<std::vector<std::string>> commands = {
      {"init-model", "--family", "llama", "--out", init.string(), "--tokenizer", data.string(), "--layers",
       std::to_string(m.layers), "--hidden-size", std::to_string(m.hidden), "--heads", std::to_string(m.heads),
       "--intermediate-size", std::to_string(m.ff), "--max-positions", std::to_string(m.max_positions), "--seed",
       std::to_string(seed_)},
      {"lm", "--model", init.string(), "--data", (data / "docs.txt").string(), "--out", lm.string(), "--seq-len",
       std::to_string(m.max_positions), "--batch-size", "32", "--max-steps", std::to_string(lm_steps),
       "--learning-rate", "3e-3", "--warmup-steps", "20", "--log-every", "50", "--seed", std::to_string(seed_)},
      {"sft", "--model", lm.string(), "--data", (data / "sft.jsonl").string(), "--out",
       (stages_.dir(name) / "model").string(), "--max-length", std::to_string(m.max_positions), "--max-steps",
       std::to_string(sft_steps), "--per-device-train-batch-size", "32", "--learning-rate", "1e-3",
       "--lr-scheduler-type", "cosine", "--logging-steps", "50", "--seed", std::to_string(seed_)}};
  return stages_.stage(name, {{"rlhf", commands}}, [&](const fs::path& dir) {
    stages_.rlhf(commands[0], dir / "log.txt");
    stages_.rlhf(commands[1], dir / "log.txt");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      if (!fs::exists(lm / f)) fs::copy_file(data / f, lm / f);
    stages_.rlhf(commands[2], dir / "log.txt");
    fs::remove_all(init);
    fs::remove_all(lm);
  }) / "model";
}

fs::path World::samples_file() {
  const std::string name = key() + "/samples";
  const std::vector<std::string> args = {
      "generate", "--model", base().string(), "--prompts", prompts(Split::train).string(), "--out",
      (stages_.dir(name) / "samples.jsonl").string(), "--num-return-sequences", std::to_string(profile_.pref_samples),
      "--max-new-tokens", std::to_string(task_->max_new_tokens()), "--seed", std::to_string(seed_), "--batch-size",
      "64"};
  return stages_.stage(name, {{"rlhf", args}}, [&](const fs::path& d) { stages_.rlhf(args, d / "log.txt"); }) /
         "samples.jsonl";
}

const std::vector<BaseSample>& World::samples() {
  const fs::path file = samples_file();
  const auto& prompts = prompt_texts(Split::train);
  std::lock_guard<std::mutex> lock(mu_);
  if (samples_.empty()) {
    std::map<std::string, int> index;
    for (size_t i = 0; i < prompts.size(); ++i) index.emplace(prompts[i], static_cast<int>(i));
    for (const auto& row : read_jsonl(file)) {
      BaseSample s;
      s.prompt = index.at(row.at("prompt").get<std::string>());
      s.completion = row.at("completion").get<std::string>();
      s.eos = row.at("finish_reason") == "eos";
      s.length = static_cast<int>(row.at("completion_ids").size());
      s.gold = task_->gold(prompts[s.prompt], s.completion, s.eos);
      samples_.push_back(std::move(s));
    }
  }
  return samples_;
}

const Annotator& World::annotator(const std::string& name) {
  const auto& s = samples();
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = annotators_[name];
  if (!slot) {
    // Calibrated on pairs of base samples of the same prompt, as the labels will be drawn.
    std::vector<AnnotatedItem> a, b;
    const int K = profile_.pref_samples;
    for (size_t p = 0; p + K <= s.size(); p += K)
      for (int i = 0; i < K; ++i)
        for (int j = i + 1; j < K; ++j) a.push_back(s[p + i].item()), b.push_back(s[p + j].item());
    // "PRESET+len=G" adds a length bias of G per token to the preset.
    const size_t plus = name.find("+len=");
    AnnotatorConfig cfg = preset(name.substr(0, plus));
    if (plus != std::string::npos) {
      cfg.length_gamma = std::stod(name.substr(plus + 5));
      cfg.name = name;
    }
    slot = std::make_unique<Annotator>(calibrate(cfg, a, b, seed_ * 31 + 17));
  }
  return *slot;
}

json World::annotation_inputs(const std::string& annotator) {
  return {{"samples", samples_file()}, {"prompts", prompts(Split::train)}, {"annotator", annotator},
          {"pref_samples", profile_.pref_samples}, {"seed", seed_}};
}

fs::path World::prefs(const std::string& name) {
  const auto& s = samples();
  const Annotator& ann = annotator(name);
  const auto& prompts = prompt_texts(Split::train);
  return stages_.stage(key() + "/prefs/" + name, annotation_inputs(name), [&](const fs::path& dir) {
    Rng rng(seed_ * 104729 + 3, std::hash<std::string>{}(name));
    std::string out;
    const int K = profile_.pref_samples;
    for (size_t p = 0; p + K <= s.size(); p += K)
      for (int i = 0; i < K; ++i)
        for (int j = i + 1; j < K; ++j) {
          const BaseSample &x = s[p + i], &y = s[p + j];
          const bool first = ann.prefers(x.item(), y.item(), rng);
          const BaseSample &c = first ? x : y, &r = first ? y : x;
          out += json{{"prompt", prompts[x.prompt]}, {"chosen", " " + c.completion}, {"rejected", " " + r.completion}}
                     .dump() +
                 "\n";
        }
    write_file_atomic(dir / "prefs.jsonl", out);
  }) / "prefs.jsonl";
}

fs::path World::unpaired(const std::string& name) {
  const fs::path pairs = prefs(name);
  return stages_.stage(key() + "/unpaired/" + name, {{"pairs", pairs}}, [&](const fs::path& dir) {
    std::string out;
    for (const auto& r : read_jsonl(pairs)) {
      out += json{{"prompt", r["prompt"]}, {"completion", r["chosen"]}, {"label", true}}.dump() + "\n";
      out += json{{"prompt", r["prompt"]}, {"completion", r["rejected"]}, {"label", false}}.dump() + "\n";
    }
    write_file_atomic(dir / "unpaired.jsonl", out);
  }) / "unpaired.jsonl";
}

int64_t World::n_pairs() {
  const int K = profile_.pref_samples;
  return static_cast<int64_t>(samples().size() / K) * K * (K - 1) / 2;
}

fs::path World::ranked(const std::string& name) {
  const auto& s = samples();
  const Annotator& ann = annotator(name);
  const auto& prompts = prompt_texts(Split::train);
  return stages_.stage(key() + "/ranked/" + name, annotation_inputs(name), [&](const fs::path& dir) {
    Rng rng(seed_ * 104729 + 5, std::hash<std::string>{}(name));
    std::string out;
    const int K = profile_.pref_samples;
    for (size_t p = 0; p + K <= s.size(); p += K) {
      std::vector<AnnotatedItem> items;
      json completions = json::array();
      for (int i = 0; i < K; ++i) {
        items.push_back(s[p + i].item());
        completions.push_back(" " + s[p + i].completion);
      }
      out += json{{"prompt", prompts[s[p].prompt]}, {"completions", completions}, {"ranking", ann.rank(items, rng)}}
                 .dump() +
             "\n";
    }
    write_file_atomic(dir / "ranked.jsonl", out);
  }) / "ranked.jsonl";
}

fs::path World::reward_model(const std::string& name, const std::string& loss, int member) {
  const fs::path model = base();
  const fs::path data = loss == "bradley_terry" ? prefs(name) : ranked(name);
  const std::string stage = key() + "/rm/" + name + (loss == "bradley_terry" ? "" : "-" + loss) +
                            (member ? "-member" + std::to_string(member) : "");
  const std::vector<std::string> args = {
      "rm", "--model", model.string(), "--data", data.string(), "--out", (stages_.dir(stage) / "model").string(),
      "--loss", loss, "--max-length", std::to_string(profile_.preset.max_positions), "--num-train-epochs",
      std::to_string(profile_.offline_epochs), "--per-device-train-batch-size", "16", "--learning-rate", "1e-3",
      "--logging-steps", "50", "--seed", std::to_string(seed_ + 1000 * static_cast<uint64_t>(member))};
  return stages_.stage(stage, {{"rlhf", args}}, [&](const fs::path& dir) { stages_.rlhf(args, dir / "log.txt"); }) /
         "model";
}

EvalSetup World::eval_setup(Split split) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!tok_) tok_ = std::make_unique<Tokenizer>(Tokenizer::load(data_dir() / "tokenizer.json"));
  EvalSetup setup;
  setup.task = task_.get();
  setup.tok = tok_.get();
  setup.samples = profile_.eval_samples;
  setup.seed = seed_ * 1000 + 7 + static_cast<uint64_t>(split);
  setup.eos_id = *tok_->token_to_id("<eos>");
  return setup;
}

const EvalBaseline& World::baseline(Split split) {
  const fs::path model = base();
  EvalSetup setup = eval_setup(split);
  setup.prompts = prompt_texts(split);
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = baselines_[split];
  if (!slot) {
    Transformer ref = load_checkpoint(model, ModelHeads{});
    slot = std::make_unique<EvalBaseline>(evaluate_baseline(ref, setup));
  }
  return *slot;
}

json World::evaluate(const fs::path& model_dir, const fs::path& proxy_rm, Split split) {
  const fs::path ref_dir = base();
  EvalSetup setup = eval_setup(split);
  setup.prompts = prompt_texts(split);
  const Stages::Slot slot(stages_);  // after the stages above: a slot holder must not wait for one
  const EvalBaseline& b = baseline(split);
  Transformer ref = load_checkpoint(ref_dir, ModelHeads{});
  Transformer policy = load_checkpoint(model_dir, ModelHeads{});
  ProxyScorer proxy;
  std::unique_ptr<rollout::RewardSource> rm;
  if (!proxy_rm.empty()) {
    rollout::RewardContext ctx;
    ctx.policy_dir = model_dir;
    rm = rollout::make_reward_source(rollout::parse_reward_spec("rm:" + proxy_rm.string()), ctx);
    proxy = [&](const std::vector<rollout::RewardSample>& batch) { return rm->score(batch).scores; };
  }
  const PolicyEval e = evaluate_policy(policy, ref, setup, b, proxy);
  return {{"gold", e.gold},       {"gold_ci", {e.gold_lo, e.gold_hi}}, {"proxy", finite_or_null(e.proxy)},
          {"kl", e.kl},           {"kl_k1", e.kl_k1},                   {"kl_k3", e.kl_k3},
          {"win_rate", e.win_rate}, {"length", e.length},               {"distinct2", e.distinct2},
          {"entropy", e.entropy}, {"pass", finite_or_null(e.pass)}, {"prompt_gold", per_unit(e.prompt_gold)},
          {"prompt_length", per_unit(e.prompt_length)}, {"prompt_proxy", per_unit(e.prompt_proxy)}};
}

json World::evaluate_base(const fs::path& proxy_rm, Split split) {
  const std::pair<Split, std::string> key{split, proxy_rm.string()};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = base_evals_.find(key); it != base_evals_.end()) return it->second;
  }
  // Outside mu_ (other runs evaluate meanwhile), once: runs finishing together wait for the first.
  std::lock_guard<std::mutex> once(base_eval_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = base_evals_.find(key); it != base_evals_.end()) return it->second;
  }
  json e = evaluate(base(), proxy_rm, split);
  std::lock_guard<std::mutex> lock(mu_);
  return base_evals_.emplace(key, std::move(e)).first->second;
}

}  // namespace rlhf::testbed
