// Generation benchmark: rollout::generate (KV cache, all sequences batched in every decode
// step) on an HF checkpoint, the counterpart of bench/hf_generate.py (transformers' generate on
// the same directory). bench/run_generate.sh runs both.
//
//   usage: generate --model DIR [--batch 8] [--prompt 32] [--new 64] [--runs 3] [--warmup 1]
//                   [--threads 2] [--temperature 1]
//
// Prompts: `batch` prompts of `prompt` ids, id (i * 7919 + j * 104729 + 13) % vocab for prompt i,
// position j (hf_generate.py uses the same). No EOS, so every sample has exactly `new` tokens.
// Temperature 1 samples from the full softmax (top-k/top-p off); 0 is greedy. Time per run covers
// prefill and all decode steps; tokens_per_s = batch * new / mean run time (warm-up runs excluded).
// Prints one JSON line.
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "rollout/sampler.h"

using namespace rlhf;
using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string model_dir;
  int64_t batch = 8, prompt_len = 32, new_tokens = 64, runs = 3, warmup = 1, threads = 2;
  double temperature = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_dir = v;
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--prompt") prompt_len = std::stoll(v);
    else if (k == "--new") new_tokens = std::stoll(v);
    else if (k == "--runs") runs = std::stoll(v);
    else if (k == "--warmup") warmup = std::stoll(v);
    else if (k == "--threads") threads = std::stoll(v);
    else if (k == "--temperature") temperature = std::stod(v);
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  if (model_dir.empty() || runs < 1 || batch < 1 || prompt_len < 1 || new_tokens < 1) {
    std::fprintf(stderr, "usage: generate --model DIR [--batch 8] [--prompt 32] [--new 64] [--runs 3] ...\n");
    return 2;
  }
  omp_set_num_threads(static_cast<int>(threads));

  Transformer model = load_checkpoint(model_dir, ModelHeads{});
  const int64_t vocab = model.config().vocab_size;
  std::vector<std::vector<int32_t>> prompts(batch);
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t j = 0; j < prompt_len; ++j) prompts[i].push_back(static_cast<int32_t>((i * 7919 + j * 104729 + 13) % vocab));
  std::vector<uint64_t> seeds(batch);
  for (int64_t i = 0; i < batch; ++i) seeds[i] = static_cast<uint64_t>(i);
  const rollout::SamplingParams sp{.temperature = temperature, .max_new_tokens = new_tokens};

  std::vector<double> ms;
  int64_t tokens = 0;
  for (int64_t r = 0; r < warmup + runs; ++r) {
    const auto t = clk::now();
    const auto out = rollout::generate(model, prompts, seeds, sp, {.batch_size = batch});
    const double dt = std::chrono::duration<double, std::milli>(clk::now() - t).count();
    tokens = 0;
    for (const auto& c : out) tokens += static_cast<int64_t>(c.tokens.size());
    if (r >= warmup) ms.push_back(dt);
  }
  double mean = 0;
  for (double v : ms) mean += v / static_cast<double>(ms.size());
  auto r1 = [](double v) { return std::round(v * 10.0) / 10.0; };
  nlohmann::ordered_json out = {
      {"impl", "rlhf.cpp"},
      {"model", model_dir},
      {"family", model.config().family == ModelFamily::gpt2 ? "gpt2" : "llama"},
      {"params", model.n_params()},
      {"batch", batch},
      {"prompt_len", prompt_len},
      {"new_tokens", new_tokens},
      {"generated", tokens},
      {"temperature", temperature},
      {"run_ms", r1(mean)},
      {"tokens_per_s", r1(static_cast<double>(tokens) / (mean / 1e3))},
      {"threads", threads},
  };
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
