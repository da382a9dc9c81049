#include "testbed/compute.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "rollout/reward.h"
#include "tensor/error.h"
#include "train/online_trainer.h"

namespace rlhf::testbed {

namespace {

using json = nlohmann::ordered_json;

constexpr double kForward = 2, kTrain = 6;  // FLOPs per matmul parameter and token

// The field at `path` of a run's record, or an InputError naming it.
const json& field(const json& j, std::initializer_list<const char*> path, const std::string& what) {
  const json* at = &j;
  std::string name;
  for (const char* key : path) {
    if (!name.empty()) name += '.';
    name += key;
    if (!at->is_object() || !at->contains(key)) throw InputError(what + ": no '" + name + "'");
    at = &(*at)[key];
  }
  return *at;
}

// A resolved option (the manifest keeps every option as its command-line string).
double option(const json& manifest, const char* name) {
  const json& v = field(manifest, {"options", name}, "manifest.json");
  try {
    return std::stod(v.get<std::string>());
  } catch (const std::exception&) {
    throw InputError("manifest.json: option '" + std::string(name) + "' is not a number: " + v.dump());
  }
}

bool flag_option(const json& manifest, const char* name) {
  return manifest.contains("options") && manifest["options"].value(name, std::string("false")) == "true";
}

// The rm: sources among the run's --reward specs; every other kind (rules, gold) runs no model.
double reward_params(const json& manifest, const ComputeModel& m) {
  double params = 0;
  for (const auto& spec : field(manifest, {"options", "reward"}, "manifest.json"))
    if (rollout::parse_reward_spec(spec.get<std::string>()).kind == "rm") params += m.scorer_params;
  return params;
}

// A logged step's completion length, or the bench's mean where it logs none.
SequenceTokens step_tokens(const json& row, const ComputeModel& m) {
  SequenceTokens t = m.tokens;
  if (row.contains("completions/mean_length") && row["completions/mean_length"].is_number())
    t.completion = row["completions/mean_length"].get<double>();
  return t;
}

RunFlops offline_run_flops(const json& manifest, double params, bool reads_reference) {
  const std::string what = "manifest.json";
  const double groups = field(manifest, {"data", "groups"}, what).get<double>();
  const double sequences = field(manifest, {"data", "sequences"}, what).get<double>();
  OfflineCompute c;
  c.params = params;
  c.groups = groups;
  c.seqs_per_group = groups > 0 ? sequences / groups : 0;
  if (sequences > 0) {
    c.tokens.prompt = field(manifest, {"data", "tokens", "prompt"}, what).get<double>() / sequences;
    c.tokens.completion = field(manifest, {"data", "tokens", "completion"}, what).get<double>() / sequences;
  }
  c.steps = field(manifest, {"resolved", "max_steps"}, what).get<int>();
  c.groups_per_step = option(manifest, "per-device-train-batch-size") *
                      option(manifest, "gradient-accumulation-steps") *
                      field(manifest, {"resolved", "ranks"}, what).get<double>();
  // `rlhf kto` has no --reference-free: it always reads the reference; `rlhf sft` never does.
  c.reference = reads_reference && !flag_option(manifest, "reference-free");
  return offline_flops(c);
}

OnlineCompute online_compute(const std::string& command, const json& manifest, const ComputeModel& m) {
  const std::string method_name = command == "online-dpo" ? "online_dpo" : command;
  const OnlineMethod method = online_method_from_name(method_name);
  OnlineCompute c;
  c.params = m.policy_params;
  c.reward_params = reward_params(manifest, m);
  const json& options = field(manifest, {"options"}, "manifest.json");
  if (!options.value("critic", std::string()).empty()) c.critic_params = m.scorer_params;
  c.prompts_per_step = field(manifest, {"resolved", "prompts_per_step"}, "manifest.json").get<double>();
  c.generations = method == OnlineMethod::online_dpo ? 2 : option(manifest, "num-generations");
  // The passes over each rollout (online DPO has no flag: the loop's default).
  c.epochs = options.contains("num-ppo-epochs")   ? option(manifest, "num-ppo-epochs")
             : options.contains("num-iterations") ? option(manifest, "num-iterations")
                                                  : static_cast<double>(OnlineConfig{}.num_epochs);
  // APA takes no beta (its KL control is its loss); PPO's is --kl-coef.
  const double beta = options.contains("kl-coef") ? option(manifest, "kl-coef")
                      : options.contains("beta")  ? option(manifest, "beta")
                                                  : 0.0;
  c.reference = method_reads_reference(method, beta);
  c.old_logp_forward = option(manifest, "num-mini-batches") != 1 || option(manifest, "micro-batches") != 1;
  return c;
}

IterativeCompute iterative_compute(const json& manifest, const ComputeModel& m) {
  IterativeCompute c;
  c.params = m.policy_params;
  c.reward_params = reward_params(manifest, m);
  c.prompts = field(manifest, {"data", "prompts"}, "manifest.json").get<double>();
  c.generations = option(manifest, "num-generations");
  c.epochs = option(manifest, "num-train-epochs");
  c.batch = option(manifest, "per-device-train-batch-size") *
            field(manifest, {"resolved", "ranks"}, "manifest.json").get<double>();
  return c;
}

}  // namespace

double matmul_params(int layers, int hidden, int ff, double head_outputs) {
  const double d = hidden;
  return layers * (4 * d * d + 3 * d * ff) + head_outputs * d;
}

double RunFlops::at(int step) const {
  return cumulative[static_cast<size_t>(std::clamp<int>(step, 0, static_cast<int>(cumulative.size()) - 1))];
}

RunFlops offline_flops(const OfflineCompute& c) {
  const double per_group = c.seqs_per_group * c.tokens.total() * c.params;
  RunFlops f;
  f.cumulative[0] = c.reference ? c.groups * per_group * kForward : 0;
  for (int s = 0; s < c.steps; ++s) f.add_step(c.groups_per_step * per_group * kTrain);
  return f;
}

double online_step_flops(const OnlineCompute& c, const SequenceTokens& tokens) {
  const double trained = c.params + c.critic_params;
  double per_token = kForward * c.params         // sampling
                     + kForward * c.reward_params  // the reward models
                     + c.epochs * kTrain * trained;
  if (c.reference) per_token += kForward * c.params;
  if (c.old_logp_forward) per_token += kForward * trained;
  return c.prompts_per_step * c.generations * tokens.total() * per_token;
}

double iterative_round_flops(const IterativeCompute& c, const SequenceTokens& tokens, double pairs) {
  const double T = tokens.total();
  double f = c.prompts * c.generations * T * kForward * (c.params + c.reward_params);
  if (pairs > 0) {
    const double steps = std::max(1.0, std::ceil(c.epochs * pairs / c.batch));
    f += pairs * 2 * T * kForward * c.params             // the reference's log-probs
         + steps * c.batch * 2 * T * kTrain * c.params;  // full micro-batches of pairs
  }
  return f;
}

double best_of_n_flops(double params, double reward_params, const SequenceTokens& tokens, double prompts, int n) {
  return prompts * n * tokens.total() * kForward * (params + reward_params);
}

RunFlops run_flops(const json& manifest, const std::vector<json>& metrics, const ComputeModel& m) {
  const std::string command = field(manifest, {"command"}, "manifest.json").get<std::string>();
  if (command == "dpo" || command == "kto" || command == "sft")
    return offline_run_flops(manifest, m.policy_params, command != "sft");
  // The training rows of metrics.jsonl (evaluation rows, eval_*, are not training compute).
  RunFlops f;
  if (command == "iterative-dpo") {
    const IterativeCompute c = iterative_compute(manifest, m);
    for (const json& round : metrics)
      if (round.contains("round")) {
        const double pairs = field(round, {"pairs"}, "metrics.jsonl").get<double>();
        f.add_step(iterative_round_flops(c, step_tokens(round, m), pairs));
      }
    return f;
  }
  const OnlineCompute c = online_compute(command, manifest, m);
  OnlineCompute sampled_only = c;  // a step whose samples were all left out samples and scores only
  sampled_only.epochs = 0, sampled_only.reference = sampled_only.old_logp_forward = false;
  for (const json& step : metrics)
    if (step.contains("episode"))
      f.add_step(online_step_flops(step.contains("skipped") ? sampled_only : c, step_tokens(step, m)));
  return f;
}

}  // namespace rlhf::testbed
