#include "testbed/bench_runs.h"

#include <algorithm>
#include <cmath>

#include "data/tools.h"
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

// Gold specs that judge with an annotator (gold_reward.h) give labels, one per prompt judged;
// plain gold specs are verifier calls, one per sample.
bool annotator_judge(const std::string& reward) {
  return reward.rfind("gold", 0) == 0 && reward.find("annotator") != std::string::npos;
}

}  // namespace

const std::string& option_value(const std::vector<std::string>& args, const std::string& flag) {
  const auto it = std::find(args.begin(), args.end(), flag);
  if (it == args.end() || it + 1 == args.end())
    throw LogicError("bench: the command `rlhf " + (args.empty() ? std::string() : args.front()) + "` has no " + flag);
  return *(it + 1);
}

std::string& option_value(std::vector<std::string>& args, const std::string& flag) {
  return const_cast<std::string&>(option_value(static_cast<const std::vector<std::string>&>(args), flag));
}

std::string run_id(const RunSpec& spec) {
  std::string id = spec.suite + "/" + spec.world->name() + "/" + spec.method;
  for (const auto& [k, v] : spec.params.items()) id += "/" + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return id + "/seed=" + std::to_string(spec.world->seed());
}

fs::path run_model(const RunSpec& spec) {
  return spec.world->stages().root() / "stages" / "runs" / run_id(spec) / "model";
}

ComputeModel compute_model(World& w, Split split) {
  const ModelPreset& m = w.profile().preset;
  const double vocab = static_cast<double>(w.task().words().size() + 3);  // the word-level tokenizer's specials
  ComputeModel c;
  c.policy_params = matmul_params(m.layers, m.hidden, m.ff, vocab);
  c.scorer_params = matmul_params(m.layers, m.hidden, m.ff, 1);
  const EvalSetup setup = w.eval_setup(split);
  const auto& prompts = w.prompt_texts(split);
  for (const auto& p : prompts) c.tokens.prompt += static_cast<double>(setup.tok->encode(p).size());
  if (!prompts.empty()) c.tokens.prompt /= static_cast<double>(prompts.size());
  const auto& s = w.samples();
  for (const auto& x : s) c.tokens.completion += x.length;
  if (!s.empty()) c.tokens.completion /= static_cast<double>(s.size());
  return c;
}

RunSpec offline_run(World& w, const std::string& suite, const std::string& method, const fs::path& data,
                    double groups, const std::string& loss, double beta, json params, std::vector<std::string> extra,
                    const std::string& command) {
  const Profile& p = w.profile();
  RunSpec r = run_spec(w, suite, method, std::move(params));
  r.args = {command, "--model", w.base().string(), "--data", data.string(), "--loss-type", loss, "--beta", arg(beta),
            "--max-length", std::to_string(p.preset.max_positions), "--num-train-epochs",
            std::to_string(p.offline_epochs), "--per-device-train-batch-size", std::to_string(kOfflineBatch),
            "--learning-rate", "2e-4", "--lr-scheduler-type", "constant", "--logging-steps", "50", "--seed",
            std::to_string(w.seed())};
  r.args.insert(r.args.end(), extra.begin(), extra.end());
  r.steps = static_cast<int>(std::ceil(groups * p.offline_epochs / kOfflineBatch));
  r.labels = command == "kto" ? groups / 2 : groups;  // a pair's label makes two KTO rows
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
  if (annotator_judge(reward))
    r.labels = static_cast<double>(r.steps) * p.rl_prompts;
  else if (reward.rfind("gold", 0) == 0)
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
  if (annotator_judge(reward))
    r.labels = static_cast<double>(rounds) * p.train_prompts;
  else if (reward.rfind("gold", 0) == 0)
    r.verifier_calls = samples;
  return r;
}

int semi_online_k(const World& w, int k) {
  const Profile& p = w.profile();
  return std::max(1, std::min(k, p.train_prompts / p.rl_prompts));
}

RunSpec semi_online_run(World& w, const std::string& suite, const std::string& method, const std::string& reward,
                        int k, int steps, json params) {
  const Profile& p = w.profile();
  k = semi_online_k(w, k);
  const int rounds = (steps + k - 1) / k, per_round = k * p.rl_prompts;
  RunSpec r = iterative_run(w, suite, method, reward, rounds, 2, std::move(params));
  // Online DPO's hyperparameters (online_run): learning rate 3e-4, a batch of one step's prompts.
  option_value(r.args, "--learning-rate") = "3e-4";
  option_value(r.args, "--per-device-train-batch-size") = std::to_string(p.rl_prompts);
  r.args.insert(r.args.end(), {"--prompts-per-round", std::to_string(per_round)});
  r.labels = static_cast<double>(rounds) * per_round;
  r.verifier_calls = 0;
  return r;
}

namespace {

// One RAFT round's SFT data: each prompt's best sample when the task passes it. A round in which
// no sample passes (a base too weak for the task, as in the CI profile) keeps every prompt's
// best-scored sample instead, RAFT's reward-ranked form, and says so in its record.
json raft_keep(World& w, const fs::path& best, const fs::path& out, int round) {
  std::string passed, fallback;
  int64_t prompts = 0, kept = 0;
  for (const auto& row : read_jsonl(best)) {
    if (row.at("completion").is_null()) continue;
    ++prompts;
    const std::string prompt = row.at("prompt"), completion = row.at("completion");
    const std::string line = json{{"prompt", prompt}, {"completion", " " + completion}}.dump() + "\n";
    fallback += line;
    for (const auto& [name, v] : w.task().gold_details(prompt, completion, row.at("finish_reason") == "eos"))
      if (name == "pass" && v >= 1.0) passed += line, ++kept;
  }
  if (prompts == 0) throw std::runtime_error(best.string() + ": RAFT round " + std::to_string(round) + " scored no sample");
  write_file_atomic(out, kept ? passed : fallback);
  return {{"round", round}, {"prompts", prompts}, {"kept", kept ? kept : prompts}, {"passed", kept},
          {"fallback_best_scored", kept == 0}};
}

}  // namespace

RunSpec raft_run(World& w, const std::string& suite, const std::string& method, int rounds, int n, json params) {
  const Profile& p = w.profile();
  RunSpec r = run_spec(w, suite, method, std::move(params));
  r.steps = rounds;
  r.checkpoints = -1;
  const fs::path dir = run_model(r).parent_path();
  auto round_dir = [dir](int k) { return dir / ("round-" + std::to_string(k)); };
  auto sft = [&w, &p](const fs::path& model, const fs::path& data) {
    return std::vector<std::string>{"sft", "--model", model.string(), "--data", data.string(), "--max-length",
                                    std::to_string(p.preset.max_positions), "--num-train-epochs",
                                    std::to_string(p.offline_epochs), "--per-device-train-batch-size",
                                    std::to_string(kOfflineBatch), "--no-packing", "--learning-rate", "2e-4",
                                    "--lr-scheduler-type", "constant", "--logging-steps", "50", "--seed",
                                    std::to_string(w.seed())};
  };
  // The last round's SFT is the run's command; the rounds before it, and every round's sampling,
  // run in prepare.
  const fs::path last_in = rounds > 1 ? round_dir(rounds - 1) / "model" : w.base();
  r.args = sft(last_in, round_dir(rounds) / "sft.jsonl");
  World* world = &w;
  r.prepare = [world, rounds, n, round_dir, sft](const fs::path& d) {
    json record = json::array();
    const ComputeModel cm = compute_model(*world);
    double flops = 0;
    for (int k = 1; k <= rounds; ++k) {
      const fs::path in = k > 1 ? round_dir(k - 1) / "model" : world->base(), rd = round_dir(k);
      fs::create_directories(rd);
      world->stages().rlhf({"best-of-n", "--model", in.string(), "--data", world->prompts(Split::train).string(),
                            "--reward", world->gold_spec(), "--n", std::to_string(n), "--temperature", "1",
                            "--out", (rd / "best.jsonl").string(), "--max-new-tokens",
                            std::to_string(world->task().max_new_tokens()), "--seed",
                            std::to_string(world->seed() * 1000 + k)},
                           d / "log.txt");
      record.push_back(raft_keep(*world, rd / "best.jsonl", rd / "sft.jsonl", k));
      // Sampling scored by the verifier, which runs no model.
      flops += best_of_n_flops(cm.policy_params, 0, cm.tokens,
                               static_cast<double>(world->prompt_texts(Split::train).size()), n);
      if (k < rounds) {
        std::vector<std::string> args = sft(in, rd / "sft.jsonl");
        args.insert(args.end(), {"--out", (rd / "model").string()});
        world->stages().rlhf(args, d / "log.txt");
        flops += run_flops(read_json(rd / "model" / "manifest.json"), {}, cm).total();
      }
    }
    write_file_atomic(d / "raft.json", record.dump() + "\n");
    return Prepared{flops, ""};
  };
  const double samples = static_cast<double>(rounds) * p.train_prompts * n;
  r.verifier_calls = samples;
  return r;
}

RunSpec warmup_dpo_run(World& w, const std::string& method, const RunSpec& grpo, int warmup_steps, json params) {
  const Profile& p = w.profile();
  // The estimate of the pairs (one per prompt of each warm-up step) only spaces checkpoints,
  // and the run is evaluated at its start and end.
  const double max_pairs = static_cast<double>(warmup_steps) * p.rl_prompts;
  const fs::path warm = run_model(run_spec(w, grpo.suite, method, params)).parent_path() / "warm-up";
  RunSpec r = offline_run(w, grpo.suite, method, warm / "pairs.jsonl", max_pairs, "sigmoid", 0.1, std::move(params));
  r.args[2] = (warm / "model").string();  // --model: DPO starts from the warm-up policy, its reference too
  r.checkpoints = -1;
  r.labels = grpo.labels * warmup_steps / grpo.steps;
  r.verifier_calls = grpo.verifier_calls * warmup_steps / grpo.steps;
  std::vector<std::string> warm_args = grpo.args;
  option_value(warm_args, "--max-steps") = std::to_string(warmup_steps);
  warm_args.insert(warm_args.end(), {"--out", (warm / "model").string(), "--save-rollouts"});
  World* world = &w;
  r.prepare = [world, warm, warm_args](const fs::path& d) {
    fs::create_directories(warm);
    world->stages().rlhf(warm_args, d / "log.txt");
    // Best vs worst of each prompt's rollouts by the warm-up's own scores, as `rlhf data pairs`
    // makes them (ties give no pair).
    PairsOptions pairs;
    pairs.strategy = "best-vs-worst";
    const json summary = data_pairs(warm / "model" / "rollouts.jsonl", warm / "pairs.jsonl", pairs);
    write_file_atomic(warm / "pairs.summary.json", summary.dump(2) + "\n");
    if (summary.at("written").get<int64_t>() == 0) {
      // Nothing for DPO to learn from: the warm-up policy is the result, and its own manifest
      // accounts for the warm-up's FLOPs.
      fs::copy(warm / "model", d / "model", fs::copy_options::recursive);
      return Prepared{0.0, "every prompt's warm-up rollouts scored alike, so there was no pair: the run's policy is "
                           "the warm-up's"};
    }
    return Prepared{run_flops(read_json(warm / "model" / "manifest.json"),
                              read_jsonl(warm / "model" / "metrics.jsonl"), compute_model(*world))
                        .total(),
                    ""};
  };
  return r;
}

json warmup_pairs(const RunSpec& spec) {
  const json s = read_json(run_model(spec).parent_path() / "warm-up" / "pairs.summary.json");
  return {{"rollouts", s.at("read").at("rows")}, {"prompts", s.at("prompt_groups")}, {"pairs", s.at("written")},
          {"tied_prompts", s.at("counts").at("tied_rows")}};
}

json raft_rounds(const RunSpec& spec) { return read_json(run_model(spec).parent_path() / "raft.json"); }

json execute(const RunSpec& spec) {
  World& w = *spec.world;
  const std::string id = run_id(spec);
  const int every = std::max(1, spec.steps / std::max(1, spec.checkpoints ? spec.checkpoints : w.profile().checkpoints));
  std::vector<std::string> args = spec.args;
  const fs::path dir = w.stages().root() / "stages" / "runs" / id;
  args.insert(args.end(), {"--out", (dir / "model").string()});
  if (spec.checkpoints >= 0) args.insert(args.end(), {"--save-steps", std::to_string(every)});
  // The run's record copies the spec's params and label counts (FLOPs come from its own manifest);
  // its evaluation reads the base and proxy.
  const json inputs = {
      {"rlhf", args},
      {"params", spec.params},
      {"accounting", {{"labels", spec.labels}, {"verifier_calls", spec.verifier_calls}}},
      {"evaluation", {{"reference", w.base()}, {"proxy_rm", spec.proxy_rm}, {"prompts", w.prompts(Split::test)},
                      {"samples", w.profile().eval_samples}}}};
  w.stages().stage("runs/" + id, inputs, [&](const fs::path& d) {
    const Prepared prepared = spec.prepare ? spec.prepare(d) : Prepared{};
    if (prepared.skipped.empty()) w.stages().rlhf(args, d / "log.txt");
    // Evaluate step 0 (the base policy: once per world and proxy), each checkpoint and the final model.
    std::vector<std::pair<int, fs::path>> points = {{0, w.base()}};
    for (const auto& e : fs::directory_iterator(d / "model")) {
      const std::string name = e.path().filename().string();
      if (name.rfind("checkpoint-", 0) == 0) points.emplace_back(std::stoi(name.substr(11)), e.path());
    }
    std::sort(points.begin(), points.end());
    if (points.back().first != spec.steps) points.emplace_back(spec.steps, d / "model");
    const json manifest = read_json(d / "model" / "manifest.json");
    const RunFlops flops = run_flops(manifest, read_jsonl(d / "model" / "metrics.jsonl"), compute_model(w));
    json checkpoints = json::array();
    for (const auto& [step, path] : points) {
      json e = step == 0 ? w.evaluate_base(spec.proxy_rm, spec.eval_split) : w.evaluate(path, spec.proxy_rm, spec.eval_split);
      e["step"] = step;
      e["flops"] = step == 0 ? 0.0 : prepared.flops + flops.at(step);
      checkpoints.push_back(e);
    }
    for (const auto& e : fs::directory_iterator(d / "model"))
      if (e.path().filename().string().rfind("checkpoint-", 0) == 0) fs::remove_all(e.path());
    json run = {{"id", id},
                {"suite", spec.suite},
                {"task", w.name()},
                {"method", spec.method},
                {"params", spec.params},
                {"seed", w.seed()},
                {"command", w.stages().command_line(spec.args)},
                {"manifest", manifest},
                {"accounting", {{"flops", flops.total()}, {"labels", spec.labels}, {"verifier_calls", spec.verifier_calls}}},
                {"checkpoints", checkpoints},
                {"final", checkpoints.back()}};
    if (!prepared.skipped.empty()) run["note"] = "not run: " + prepared.skipped;
    write_file_atomic(d / "run.json", run.dump());
  });
  return read_json(dir / "run.json");
}

json best_of_n(World& w, const std::string& suite, const fs::path& rm, const std::vector<int>& ns) {
  json points = json::array();
  const fs::path base = w.base();
  const fs::path test = w.prompts(Split::test);
  const double prompts = static_cast<double>(w.prompt_texts(Split::test).size());
  const ComputeModel cm = compute_model(w, Split::test);
  for (int n : ns) {
    const std::string id = suite + "/" + w.name() + "/bon/n=" + std::to_string(n) + "/seed=" + std::to_string(w.seed());
    const std::vector<std::string> args = {
        "best-of-n", "--model", base.string(), "--data", test.string(), "--reward", "rm:" + rm.string(), "--n",
        std::to_string(n), "--out", (w.stages().dir("runs/" + id) / "best.jsonl").string(), "--max-new-tokens",
        std::to_string(w.task().max_new_tokens()), "--seed", std::to_string(w.seed())};
    const fs::path dir = w.stages().stage("runs/" + id, {{"rlhf", args}},
                                          [&](const fs::path& d) { w.stages().rlhf(args, d / "log.txt"); });
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
                      {"proxy", pm}, {"flops", best_of_n_flops(cm.policy_params, cm.scorer_params, cm.tokens, prompts, n)},
                      {"prompt_gold", per_unit(gold)}});
  }
  return points;
}

}  // namespace rlhf::testbed
