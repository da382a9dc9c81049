// DPO-step benchmark: one optimizer step of the offline loop (train_offline) with the sigmoid
// loss on a batch of 8 preference pairs, the counterpart of bench/trl_dpo_step.py (TRL's
// DPOTrainer on the same model shape and batch). bench/run_dpo_step.sh runs both.
//
//   usage: dpo_step [--model llama-small|gpt2-small] [--steps 5] [--warmup 1] [--threads 2]
//                   [--no-packing] [--pairs 8] [--prompt 128] [--completion 128]
//
// Models (random init, float32, built with ModelConfig::from_json from HF config.json keys; the
// Python side builds the same configs with transformers):
//   llama-small: llama, 4 layers, hidden 256, 4 heads (no GQA), intermediate 768, vocab 50257,
//                untied embeddings, rms eps 1e-6, rope theta 10000
//   gpt2-small : gpt2, 12 layers, hidden 768, 12 heads, vocab 50257 (GPT-2 small's shape)
// Data: `pairs` synthetic pairs, each a prompt of 128 random ids and a chosen and a rejected
// completion of 127 random ids + EOS (50256), so every sequence is 256 tokens and a step scores
// 2 * 8 * 128 completion tokens (as TRL: the first completion token is scored, conditioned on the
// prompt). Every step trains on all the pairs (one micro-batch of 8 groups, shuffled order).
// Packing: rows are 256 tokens, so each row holds exactly one sequence and no padding; packed and
// unpacked (--no-packing) batches are the same 16 x 256 batch here (TRL pads to the longest,
// which is also 256: neither side wastes a token).
// Reference log-probs are computed once, before training, with a separate reference model
// that is freed before the policy is built (the CLI's flow); their time is reported as ref_ms
// and is not part of step_ms. Steps: AdamW (lr 1e-6, weight decay 0, clip 1.0, linear decay as
// HF's default scheduler), beta 0.1. step_ms is the mean over the timed steps (warm-up steps
// excluded), measured between the optimizer-step hooks of train_offline.
// Under mpirun -np N each rank trains on its pairs / N of every batch (data parallelism; rank 0
// prints, with the mean time of the gradient all-reduce per step as allreduce_ms).
// Prints one JSON line; peak_rss_mb is getrusage(RUSAGE_SELF).ru_maxrss of the whole process.
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "model/transformer.h"
#include "tensor/rng.h"
#include "train/offline_trainer.h"
#include "train/optimizer.h"

using namespace rlhf;
using clk = std::chrono::steady_clock;

static double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

static nlohmann::json model_json(const std::string& name, int64_t vocab) {
  if (name == "llama-small")
    return {{"model_type", "llama"},
            {"architectures", {"LlamaForCausalLM"}},
            {"vocab_size", vocab},
            {"hidden_size", 256},
            {"intermediate_size", 768},
            {"num_hidden_layers", 4},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 4},
            {"max_position_embeddings", 512},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 10000.0},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", false}};
  if (name == "gpt2-small")
    return {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}},
            {"vocab_size", vocab},  {"n_embd", 768},
            {"n_layer", 12},        {"n_head", 12},
            {"n_positions", 1024}};
  throw std::runtime_error("unknown --model " + name + " (llama-small | gpt2-small)");
}

int main(int argc, char** argv) {
  std::string model = "llama-small";
  int64_t steps = 5, warmup = 1, threads = 2, pairs = 8, prompt_len = 128, completion_len = 128;
  bool packing = true;
  const int64_t vocab = 50257, eos = 50256;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--no-packing") { packing = false; continue; }
    if (i + 1 >= argc) { std::fprintf(stderr, "option %s needs a value\n", k.c_str()); return 2; }
    const std::string v = argv[++i];
    if (k == "--model") model = v;
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--warmup") warmup = std::stoll(v);
    else if (k == "--threads") threads = std::stoll(v);
    else if (k == "--pairs") pairs = std::stoll(v);
    else if (k == "--prompt") prompt_len = std::stoll(v);
    else if (k == "--completion") completion_len = std::stoll(v);
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  if (steps < 1 || warmup < 0 || pairs < 1 || prompt_len < 1 || completion_len < 1) {
    std::fprintf(stderr, "need --steps >= 1, --warmup >= 0, positive lengths and pairs\n");
    return 2;
  }
  omp_set_num_threads(static_cast<int>(threads));

  const ModelConfig cfg = ModelConfig::from_json(model_json(model, vocab), "dpo_step " + model);
  const int64_t seq_len = prompt_len + completion_len;

  // Synthetic pairs: random prompt, two random completions ending in EOS.
  OfflineDataset data;
  Rng rng(1);
  for (int64_t g = 0; g < pairs; ++g) {
    std::vector<int32_t> prompt(prompt_len);
    for (auto& t : prompt) t = static_cast<int32_t>(rng.below(eos));
    for (int32_t side = 0; side < 2; ++side) {
      Sequence s;
      s.tokens = prompt;
      for (int64_t j = 0; j + 1 < completion_len; ++j) s.tokens.push_back(static_cast<int32_t>(rng.below(eos)));
      s.tokens.push_back(static_cast<int32_t>(eos));
      s.prompt_len = prompt_len;
      s.group = g;
      s.index = side;
      data.seqs.push_back(std::move(s));
    }
  }

  // Under mpirun the ranks split each batch of `pairs` (data parallelism); rank 0 reports.
  dist::Communicator& comm = dist::world();
  OfflineConfig oc;
  oc.comm = &comm;
  oc.groups_per_micro_batch = pairs;
  oc.grad_accum = 1;
  oc.max_steps = warmup + steps;
  oc.warmup_steps = 0;
  oc.schedule = LrSchedule::linear;
  oc.adam = AdamWConfig{.lr = 1e-6, .weight_decay = 0.0, .max_grad_norm = 1.0};
  oc.pack = PackOptions{.seq_len = seq_len, .max_rows = 2 * pairs, .packing = packing};
  oc.seed = 0;

  // Reference log-probs, once, with a reference model that is gone before training starts.
  std::vector<double> ref_logp;
  double ref_ms = 0;
  {
    Transformer ref(cfg, ModelHeads{});
    ref.init_random(0);
    const auto t = clk::now();
    ref_logp = compute_reference_logps(ref, data, oc.pack);
    ref_ms = std::chrono::duration<double, std::milli>(clk::now() - t).count();
  }

  Transformer policy(cfg, ModelHeads{});
  policy.init_random(0);  // the same weights as the reference, as at the start of DPO
  AdamW opt(policy, oc.adam);
  objective::PairParams pp;
  pp.beta = 0.1;
  const ObjectiveFn objective = pairwise_objective({{"sigmoid", 1.0}}, pp);
  const BatchOrder order = shuffled_batch_order(pairs, pairs, oc.max_steps, oc.seed);

  std::vector<clk::time_point> marks{clk::now()};
  const auto logs = train_offline(policy, opt, data, ref_logp, objective, oc, order, 0,
                                  [&](const OfflineStepLog&, const Transformer&, const AdamW&) {
                                    marks.push_back(clk::now());
                                  });

  std::vector<double> each_ms;
  double allreduce_ms = 0;
  for (int64_t s = warmup; s < warmup + steps; ++s) {
    each_ms.push_back(std::chrono::duration<double, std::milli>(marks[s + 1] - marks[s]).count());
    const auto it = logs[s].values.find("dist/allreduce_seconds");
    if (it != logs[s].values.end()) allreduce_ms += 1000.0 * it->second / static_cast<double>(steps);
  }
  double sum = 0, mn = each_ms[0];
  for (double v : each_ms) sum += v, mn = std::min(mn, v);
  const double step_ms = sum / static_cast<double>(each_ms.size());

  auto r1 = [](double v) { return std::round(v * 10.0) / 10.0; };
  for (double& v : each_ms) v = r1(v);
  nlohmann::ordered_json out = {
      {"impl", "rlhf.cpp"},
      {"model", model},
      {"family", cfg.family == ModelFamily::gpt2 ? "gpt2" : "llama"},
      {"params", policy.n_params()},
      {"pairs", pairs},
      {"seq_len", seq_len},
      {"prompt_len", prompt_len},
      {"completion_len", completion_len},
      {"packing", packing},
      {"loss_type", "sigmoid"},
      {"beta", 0.1},
      {"lr", 1e-6},
      {"steps", steps},
      {"warmup", warmup},
      {"pairs_per_s", std::round(pairs / (step_ms / 1e3) * 1000.0) / 1000.0},
      {"step_ms", r1(step_ms)},
      {"step_ms_min", r1(mn)},
      {"step_ms_each", each_ms},
      {"ref_ms", r1(ref_ms)},
      {"loss_first", logs.front().values.at("loss")},
      {"loss_last", logs.back().values.at("loss")},
      {"peak_rss_mb", r1(peak_rss_mb())},
      {"threads", threads},
      {"ranks", comm.size()},
      {"allreduce_ms", r1(allreduce_ms)},
  };
  if (comm.rank() == 0) std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  dist::finalize();
  return 0;
}
