#include "testbed/bench_runs.h"

#include <algorithm>
#include <cmath>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "tensor/error.h"
#include "testbed/stats.h"

namespace rlhf::testbed {

namespace {

constexpr int kOfflineBatch = 16;

RunSpec run_spec(World& w, const std::string& suite, const std::string& method, json params) {
  RunSpec r;
  r.suite = suite;
  r.method = method;
  r.world = &w;
  r.params = std::move(params);
  return r;
}

}  // namespace

std::string run_id(const RunSpec& spec) {
  std::string id = spec.suite + "/" + spec.world->name() + "/" + spec.method;
  for (const auto& [k, v] : spec.params.items()) id += "/" + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return id + "/seed=" + std::to_string(spec.world->seed());
}

fs::path run_model(const RunSpec& spec) {
  return spec.world->stages().root() / "stages" / "runs" / run_id(spec) / "model";
}

double model_params(World& w) {
  const ModelPreset& m = w.profile().preset;
  const double V = static_cast<double>(w.task().words().size() + 3);
  return 12.0 * m.layers * m.hidden * m.hidden + V * m.hidden;
}

double mean_sequence_length(World& w) {
  const auto& s = w.samples();
  const auto& prompts = w.prompt_texts(Split::train);
  double total = 0;
  for (const auto& x : s) {
    int words = 1;
    for (char c : prompts[x.prompt]) words += c == ' ';
    total += words + x.length;
  }
  return s.empty() ? 0.0 : total / static_cast<double>(s.size());
}

RunSpec offline_run(World& w, const std::string& suite, const std::string& method, const fs::path& data,
                    double groups, const std::string& loss, double beta, json params, std::vector<std::string> extra,
                    const std::string& command) {
  // A KTO row is one sequence, a pair two.
  const double pairs = command == "kto" ? groups / 2 : groups;
  const Profile& p = w.profile();
  RunSpec r = run_spec(w, suite, method, std::move(params));
  r.args = {command, "--model", w.base().string(), "--data", data.string(), "--loss-type", loss, "--beta", arg(beta),
            "--max-length", std::to_string(p.preset.max_positions), "--num-train-epochs",
            std::to_string(p.offline_epochs), "--per-device-train-batch-size", std::to_string(kOfflineBatch),
            "--learning-rate", "2e-4", "--lr-scheduler-type", "constant", "--logging-steps", "50", "--seed",
            std::to_string(w.seed())};
  r.args.insert(r.args.end(), extra.begin(), extra.end());
  r.steps = static_cast<int>(std::ceil(groups * p.offline_epochs / kOfflineBatch));
  // Per pair: two sequences trained (6N per token) plus the cached reference forward (2N).
  r.flops = pairs * p.offline_epochs * 2 * mean_sequence_length(w) * 8 * model_params(w);
  r.labels = pairs;
  return r;
}

RunSpec online_run(World& w, const std::string& suite, const std::string& method, const std::string& command,
                   const std::string& reward, json params, std::vector<std::string> extra, int steps) {
  const Profile& p = w.profile();
  RunSpec r = run_spec(w, suite, method, std::move(params));
  r.steps = steps ? steps : p.rl_steps;
  int k = 1;
  for (size_t i = 0; i + 1 < extra.size(); ++i)
    if (extra[i] == "--num-generations") k = std::stoi(extra[i + 1]);
  r.args = {command, "--model", w.base().string(), "--data", w.prompts(Split::train).string(), "--reward", reward,
            "--max-steps", std::to_string(r.steps), "--prompts-per-step", std::to_string(p.rl_prompts),
            "--max-new-tokens", std::to_string(w.task().max_new_tokens()), "--max-length",
            std::to_string(p.preset.max_positions), "--learning-rate", "3e-4", "--lr-scheduler-type", "constant",
            "--logging-steps", "25", "--seed", std::to_string(w.seed())};
  r.args.insert(r.args.end(), extra.begin(), extra.end());
  const double episodes = static_cast<double>(r.steps) * p.rl_prompts * k;
  // Per episode: sampling (2N per token), reference and reward forwards (2N each), and the
  // update's forward and backward (6N) per pass.
  r.flops = episodes * mean_sequence_length(w) * 12 * model_params(w);
  if (reward.rfind("gold", 0) == 0)
    r.verifier_calls = episodes;
  return r;
}

RunSpec iterative_run(World& w, const std::string& suite, const std::string& method, const std::string& reward,
                      int rounds, int n, json params) {
  const Profile& p = w.profile();
  RunSpec r = run_spec(w, suite, method, std::move(params));
  r.steps = rounds;
  r.checkpoints = -1;
  r.args = {"iterative-dpo", "--model", w.base().string(), "--data", w.prompts(Split::train).string(), "--reward",
            reward, "--rounds", std::to_string(rounds), "--num-generations", std::to_string(n), "--temperature", "1",
            "--beta", "0.1", "--learning-rate", "2e-4", "--per-device-train-batch-size", std::to_string(kOfflineBatch),
            "--max-new-tokens", std::to_string(w.task().max_new_tokens()), "--max-length",
            std::to_string(p.preset.max_positions), "--seed", std::to_string(w.seed())};
  const double samples = static_cast<double>(rounds) * p.train_prompts * n;
  // Sampling (2N per token) and the reward, then DPO on one pair per prompt (8N per sequence token).
  r.flops = samples * mean_sequence_length(w) * 4 * model_params(w) +
            rounds * p.train_prompts * 2 * mean_sequence_length(w) * 8 * model_params(w);
  if (reward.rfind("gold", 0) == 0) (reward.find("noise") == std::string::npos ? r.verifier_calls : r.labels) = samples;
  return r;
}

json execute(const RunSpec& spec) {
  World& w = *spec.world;
  const std::string id = run_id(spec);
  const int every = std::max(1, spec.steps / std::max(1, spec.checkpoints ? spec.checkpoints : w.profile().checkpoints));
  std::vector<std::string> args = spec.args;
  const fs::path dir = w.stages().root() / "stages" / "runs" / id;
  args.insert(args.end(), {"--out", (dir / "model").string()});
  if (spec.checkpoints >= 0) args.insert(args.end(), {"--save-steps", std::to_string(every)});
  w.stages().stage("runs/" + id, [&](const fs::path& d) {
    w.stages().rlhf(args, d / "log.txt");
    // Evaluate step 0 (the base policy: once per world and proxy), each checkpoint and the final model.
    std::vector<std::pair<int, fs::path>> points = {{0, w.base()}};
    for (const auto& e : fs::directory_iterator(d / "model")) {
      const std::string name = e.path().filename().string();
      if (name.rfind("checkpoint-", 0) == 0) points.emplace_back(std::stoi(name.substr(11)), e.path());
    }
    std::sort(points.begin(), points.end());
    if (points.back().first != spec.steps) points.emplace_back(spec.steps, d / "model");
    json checkpoints = json::array();
    for (const auto& [step, path] : points) {
      json e = step == 0 ? w.evaluate_base(spec.proxy_rm, spec.eval_split) : w.evaluate(path, spec.proxy_rm, spec.eval_split);
      e["step"] = step;
      e["flops"] = spec.flops * step / std::max(1, spec.steps);
      checkpoints.push_back(e);
    }
    for (const auto& e : fs::directory_iterator(d / "model"))
      if (e.path().filename().string().rfind("checkpoint-", 0) == 0) fs::remove_all(e.path());
    const json manifest =
        fs::exists(d / "model" / "manifest.json") ? read_json(d / "model" / "manifest.json") : json::object();
    json run = {{"id", id},
                {"suite", spec.suite},
                {"task", w.name()},
                {"method", spec.method},
                {"params", spec.params},
                {"seed", w.seed()},
                {"command", w.stages().command_line(spec.args)},
                {"manifest", manifest},
                {"accounting", {{"flops", spec.flops}, {"labels", spec.labels}, {"verifier_calls", spec.verifier_calls}}},
                {"checkpoints", checkpoints},
                {"final", checkpoints.back()}};
    write_file_atomic(d / "run.json", run.dump());
  });
  return read_json(dir / "run.json");
}

json best_of_n(World& w, const std::string& suite, const fs::path& rm, const std::vector<int>& ns) {
  json points = json::array();
  const fs::path base = w.base();
  const fs::path test = w.prompts(Split::test);
  const auto& prompts = w.prompt_texts(Split::test);
  for (int n : ns) {
    const std::string id = suite + "/" + w.name() + "/bon/n=" + std::to_string(n) + "/seed=" + std::to_string(w.seed());
    const fs::path dir = w.stages().stage("runs/" + id, [&](const fs::path& d) {
      w.stages().rlhf({"best-of-n", "--model", base.string(), "--data", test.string(), "--reward",
                       "rm:" + rm.string(), "--n", std::to_string(n), "--out", (d / "best.jsonl").string(),
                       "--max-new-tokens", std::to_string(w.task().max_new_tokens()), "--seed",
                       std::to_string(w.seed())},
                      d / "log.txt");
    });
    std::vector<double> gold, proxy;
    for (const auto& row : read_jsonl(dir / "best.jsonl")) {
      const std::string prompt = row.at("prompt").get<std::string>();
      if (row.at("completion").is_null()) throw std::runtime_error(id + ": a prompt without a scored sample");
      const std::string completion = row.at("completion").get<std::string>();
      const bool eos = row.at("finish_reason") == "eos";
      gold.push_back(w.task().gold(prompt, completion, eos));
      proxy.push_back(row.at("score").get<double>());
    }
    const MeanCi g = bootstrap_mean_ci(gold, w.seed());  // one sample per prompt: its gold is the prompt's
    double pm = 0;
    for (double x : proxy) pm += x / std::max<size_t>(1, proxy.size());
    points.push_back({{"n", n}, {"kl", bon_kl_bound(n)}, {"gold", g.mean}, {"gold_ci", {g.lo, g.hi}},
                      {"proxy", pm}, {"flops", n * prompts.size() * mean_sequence_length(w) * 4 * model_params(w)},
                      {"prompt_gold", per_unit(gold)}});
  }
  return points;
}

}  // namespace rlhf::testbed
