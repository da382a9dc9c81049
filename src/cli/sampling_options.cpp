#include "cli/sampling_options.h"

#include <fstream>

#include <nlohmann/json.hpp>

namespace rlhf::cli {

void declare_sampling(Options& o, const std::string& temperature, const std::string& max_new_tokens) {
  o.add("temperature", temperature, "softmax temperature (0: greedy); log-probs are recomputed at it")
      .add("top-k", "0", "sample among the k most likely tokens (0: off)")
      .add("top-p", "1.0", "nucleus sampling: the most likely tokens up to this mass")
      .add("min-p", "0", "drop tokens below min_p times the most likely one's probability")
      .add("max-new-tokens", max_new_tokens, "tokens generated per completion at most");
}

rollout::SamplingParams sampling_from(const Options& o, int64_t n, std::vector<int32_t> eos) {
  rollout::SamplingParams sp;
  sp.temperature = o.number("temperature");
  sp.top_k = o.integer("top-k");
  sp.top_p = o.number("top-p");
  sp.min_p = o.number("min-p");
  sp.max_new_tokens = o.integer("max-new-tokens");
  sp.n = n;
  sp.eos_ids = std::move(eos);
  sp.validate();
  return sp;
}

std::vector<int32_t> eos_ids(const std::filesystem::path& model_dir, const TextEncoder& enc) {
  std::vector<int32_t> ids;
  if (enc.eos_id) ids.push_back(*enc.eos_id);
  for (const char* name : {"generation_config.json", "config.json"}) {
    std::ifstream in(model_dir / name);
    if (!in) continue;
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("eos_token_id")) {
      const nlohmann::json& e = j["eos_token_id"];
      for (const auto& v : e.is_array() ? e : nlohmann::json::array({e}))
        if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
    }
    break;
  }
  return ids;
}

}  // namespace rlhf::cli
