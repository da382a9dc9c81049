// rlhf generate: completions for TRL prompt-only JSONL with the KV-cache sampler.
//
// A prompt is a string (encoded with the tokenizer's special tokens) or a list of messages
// (rendered by the chat template with add_generation_prompt), exactly as the offline commands
// encode prompts. Each prompt's seed comes from --seed and its line number, so a row's
// completions do not change with --batch-size, --threads or the other rows of the file.
// Output rows (TRL-like): prompt, completion (a string, or one assistant message for
// conversational prompts; the final EOS/stop token and any stop string and what follows are
// not in the text), completion_ids (every generated id), finish_reason (eos | stop | length),
// sample_index, sum_logprob (of logits / temperature), plus the prompt row's other fields.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/sampling_options.h"
#include "data/collate.h"
#include "data/collate_text.h"
#include "data/records.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "rollout/sampler.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// Comma-separated items; "\," is a literal comma, "\n" and "\t" the control characters, "\\" a
// backslash (so a stop string can be a newline or contain a comma).
std::vector<std::string> split_escaped(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      cur += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else if (s[i] == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += s[i];
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::vector<int32_t> parse_ids(const std::string& flag, const std::string& s, int64_t vocab) {
  std::vector<int32_t> ids;
  for (const std::string& item : split_escaped(s)) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v >= vocab)
      throw InputError("rlhf generate: " + flag + " expects token ids in [0, " + std::to_string(vocab) +
                       "), got '" + item + "'");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  Options o("generate",
            "Samples completions for prompt-only JSONL (TRL's \"prompt\": text or messages) with the KV cache.\n"
            "Writes one JSONL row per completion: prompt, completion, completion_ids, finish_reason,\n"
            "sample_index, sum_logprob.");
  o.add("model", "", "HF model directory: config.json, safetensors, tokenizer.json (required)")
      .add("prompts", "", "prompt JSONL (.gz/.zst) with a \"prompt\" field (required)")
      .add("out", "", "output JSONL, written atomically (required)")
      .add("num-return-sequences", "1", "completions per prompt")
      .add("seed", "42", "sampling seed (each prompt's stream derives from it and the prompt's line)")
      .add("batch-size", "16", "sequences decoded together")
      .add("stop", "", "comma-separated stop strings (\\, for a comma, \\n for a newline)")
      .add("stop-token-ids", "", "comma-separated token ids that end a completion")
      .flag("skip-bad-rows", "skip malformed rows and prompts that do not fit the context (counted)");
  declare_backend(o);
  declare_threads(o);
  declare_sampling(o, "1.0", "64");
  if (!o.parse(argc, argv)) return 0;
  o.require({"model", "prompts", "out"});
  apply_threads(o);
  const fs::path model_dir = o.str("model"), prompts_path = o.str("prompts"), out_path = o.str("out");

  auto text = load_text_side(model_dir);
  Transformer model = load_checkpoint(model_dir, ModelHeads{});
  model.set_backend(backend_from(o));
  const int64_t ctx = model.config().max_position_embeddings, vocab = model.config().vocab_size;

  rollout::SamplingParams sp = sampling_from(o, o.integer("num-return-sequences"), eos_ids(model_dir, text->enc));
  sp.stop_ids = parse_ids("--stop-token-ids", o.str("stop-token-ids"), vocab);
  const std::vector<std::string> stops = split_escaped(o.str("stop"));
  const uint64_t seed = static_cast<uint64_t>(o.integer("seed"));

  // Prompts: read, encode, and check they leave room to generate.
  ReadOptions ro;
  ro.skip_bad_rows = o.boolean("skip-bad-rows");
  ReadReport read;
  std::vector<PromptRecord> records;
  std::vector<std::vector<int32_t>> prompt_ids;
  std::vector<uint64_t> seeds;
  int64_t too_long = 0;
  for (PromptRecord& r : read_prompts(prompts_path, ro, &read)) {
    const std::string where = prompts_path.string() + ":" + std::to_string(r.line) + ": ";
    std::vector<int32_t> ids;
    try {
      try {
        ids = encode_example(text->enc, r.prompt, {}, {}, nullptr).prompt;
      } catch (const InputError& e) {
        throw InputError(where + e.what());
      }
      if (ids.empty()) throw InputError(where + "the prompt encodes to no tokens");
      if (static_cast<int64_t>(ids.size()) >= ctx)
        throw InputError(where + "the prompt has " + std::to_string(ids.size()) + " tokens; the model's context is " +
                         std::to_string(ctx) + " (max_position_embeddings), which leaves no room to generate");
    } catch (const InputError& e) {
      if (!ro.skip_bad_rows) throw;
      ++too_long;
      if (read.first_errors.size() < 10) read.first_errors.push_back(e.what());
      continue;
    }
    prompt_ids.push_back(std::move(ids));
    seeds.push_back(Rng(seed, static_cast<uint64_t>(r.line)).next_u64());
    records.push_back(std::move(r));
  }

  rollout::GenerateOptions go;
  go.batch_size = o.integer("batch-size");
  const DecodeOptions plain{.skip_special_tokens = true};
  if (!stops.empty()) {
    go.stop = [&](int64_t, const std::vector<int32_t>& toks) {
      const std::string s = text->tok.decode(toks, plain);
      for (const std::string& st : stops)
        if (s.find(st) != std::string::npos) return true;
      return false;
    };
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<rollout::Completion> out = rollout::generate(model, prompt_ids, seeds, sp, go);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::ostringstream lines;
  int64_t n_tokens = 0;
  std::map<std::string, int64_t> reasons;
  for (const rollout::Completion& c : out) {
    const PromptRecord& r = records[c.prompt];
    std::vector<int32_t> body = c.tokens;
    if (c.finish != rollout::FinishReason::length && !body.empty() &&
        (c.finish == rollout::FinishReason::eos ||
         std::find(sp.stop_ids.begin(), sp.stop_ids.end(), body.back()) != sp.stop_ids.end()))
      body.pop_back();  // the EOS / stop token is not text
    std::string s = text->tok.decode(body, plain);
    size_t cut = std::string::npos;
    for (const std::string& st : stops) cut = std::min(cut, s.find(st));
    if (cut != std::string::npos) s.resize(cut);
    json row = json::object();
    row["prompt"] = text_to_json(r.prompt);
    if (r.extra.is_object())
      for (const auto& [k, v] : r.extra.items()) row[k] = v;
    if (r.prompt.is_chat)
      row["completion"] = json::array({{{"role", "assistant"}, {"content", s}}});
    else
      row["completion"] = s;
    row["completion_ids"] = c.tokens;
    row["finish_reason"] = rollout::finish_reason_name(c.finish);
    row["sample_index"] = c.sample;
    row["sum_logprob"] = c.sum_logprob();
    lines << row.dump() << "\n";
    n_tokens += static_cast<int64_t>(c.tokens.size());
    ++reasons[rollout::finish_reason_name(c.finish)];
  }
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  write_file_atomic(out_path, lines.str());

  std::cout << "rlhf generate: " << records.size() << " prompts x " << sp.n << " -> " << out.size()
            << " completions, " << n_tokens << " tokens in " << std::fixed << std::setprecision(2) << secs << " s ("
            << std::setprecision(1) << (secs > 0 ? n_tokens / secs : 0.0) << " tokens/s); finish:";
  for (const auto& [k, v] : reasons) std::cout << " " << k << " " << v;
  std::cout << "\n";
  if (read.skipped_bad + too_long > 0) {
    std::cout << "skipped " << read.skipped_bad + too_long << " rows (" << read.skipped_bad << " malformed, "
              << too_long << " that cannot be encoded or do not fit the context):\n";
    for (const std::string& e : read.first_errors) std::cout << "  " << e << "\n";
  }
  std::cout << "wrote " << out_path.string() << "\n";
  return 0;
}

}  // namespace rlhf::cli
