// Loading and saving HF checkpoint directories through the family tables.
#include "model/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <span>

#include "model/safetensors.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf {

namespace fs = std::filesystem;

// HF names its tensors by family (GPT-2's Conv1D layout, Llama's split projections).
static bool gpt2_names(const ModelConfig& cfg) { return cfg.family == ModelFamily::gpt2; }

std::string hf_default_prefix(const ModelConfig& cfg) { return gpt2_names(cfg) ? "transformer." : "model."; }

std::vector<HfTensor> hf_layout(const ModelConfig& c, ModelHeads heads, const std::string& prefix) {
  // The family tables name the tensors of the family's own block; another shape's would be
  // saved under wrong or missing names, and its config.json could not say what it is.
  if (c.block != family_block_shape(c))
    throw InputError(std::string("this model's block shape is not ") + model_family_name(c.family) +
                     "'s: its tensors have no Hugging Face names");
  std::vector<HfTensor> t = gpt2_names(c) ? gpt2_hf_layout(c, prefix) : llama_hf_layout(c, prefix);
  if (heads.lm_head && !c.tie_word_embeddings)
    t.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}, "lm_head.weight"});
  if (heads.score_head) t.push_back({"score.weight", {c.num_labels, c.hidden_size}, "score.weight"});
  return t;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

static std::string join_names(const std::vector<std::string>& v, size_t max_items = 12) {
  std::string r;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) {
    if (i) r += ", ";
    r += v[i];
  }
  if (v.size() > max_items) r += ", ... (" + std::to_string(v.size()) + " in all)";
  return r;
}

// Buffers HF checkpoints sometimes carry that are not parameters.
static bool is_ignorable_buffer(const std::string& n) {
  return n.ends_with(".attn.bias") || n.ends_with(".attn.masked_bias") || n.ends_with("rotary_emb.inv_freq");
}

int64_t count_non_finite(std::span<const float> v) {
  int64_t n = 0;
  for (float x : v) n += !std::isfinite(x);
  return n;
}

// Loading a model of `params` parameters (fp32 weights and gradients) must fit into the memory
// the system has available, unless RLHF_SKIP_MEMORY_CHECK=1.
static void require_memory_for(int64_t params, const fs::path& dir) {
  const char* skip = std::getenv("RLHF_SKIP_MEMORY_CHECK");
  if (skip && std::string(skip) == "1") return;
  std::ifstream meminfo("/proc/meminfo");
  int64_t available_kb = -1;
  for (std::string key; meminfo >> key;) {
    int64_t value = 0;
    meminfo >> value;
    meminfo.ignore(64, '\n');
    if (key == "MemAvailable:") available_kb = value;
  }
  const double need = static_cast<double>(params) * 2 * sizeof(float);
  if (available_kb < 0 || need <= static_cast<double>(available_kb) * 1024) return;
  char text[200];
  std::snprintf(text, sizeof text, "%lld parameters take %.1f GB as fp32 weights and gradients, more than the %.1f GB",
                static_cast<long long>(params), need / 1e9, static_cast<double>(available_kb) * 1024 / 1e9);
  throw InputError(dir.string() + ": " + text + " of memory available (RLHF_SKIP_MEMORY_CHECK=1 loads anyway)");
}

Transformer load_checkpoint(const fs::path& dir, ModelHeads heads, LoadReport* report, uint64_t head_init_seed) {
  ModelConfig cfg = ModelConfig::load(dir / "config.json");
  SafetensorsModel st = SafetensorsModel::open_dir(dir);
  std::string prefix = hf_default_prefix(cfg);
  if (gpt2_names(cfg) && !st.find(prefix + "wte.weight") && st.find("wte.weight")) prefix = "";  // bare GPT2Model

  // The headers against config.json first: a config that asks for gigabytes its weights do not
  // hold is an error before any of them is allocated.
  const std::vector<HfTensor> layout = hf_layout(cfg, heads, prefix);
  LoadReport local;
  LoadReport& rep = report ? *report : local;
  std::vector<std::string> missing, misshaped, unexpected;
  std::set<std::string> used;
  int64_t params = 0;
  for (const HfTensor& t : layout) {
    int64_t n = 1;
    for (int64_t d : t.hf_shape) n *= d;
    params += n;
    const TensorView* v = st.find(t.hf_name);
    if (!v) {
      if (t.hf_name != "score.weight") missing.push_back(t.hf_name);  // a missing score head is made new
      continue;
    }
    used.insert(t.hf_name);
    if (v->shape != t.hf_shape)
      misshaped.push_back(t.hf_name + " has shape " + shape_str(v->shape) + ", config.json implies " +
                          shape_str(t.hf_shape));
  }
  for (const std::string& n : st.names()) {
    if (used.count(n) || is_ignorable_buffer(n)) continue;
    // Heads the caller did not ask for (and a redundant copy of tied embeddings) are skipped.
    if (n == "score.weight" || n == "lm_head.weight") {
      rep.ignored.push_back(n);
      continue;
    }
    unexpected.push_back(n);
  }
  if (!missing.empty() || !misshaped.empty() || !unexpected.empty()) {
    std::string msg = dir.string() + ": weights do not match config.json (" + model_family_name(cfg.family) + ", " +
                      std::to_string(cfg.n_layers) + " layers)";
    if (!missing.empty()) msg += "; missing tensors: " + join_names(missing);
    if (!misshaped.empty()) msg += "; misshaped tensors: " + join_names(misshaped, 6);
    if (!unexpected.empty()) msg += "; unexpected tensors: " + join_names(unexpected);
    throw InputError(msg);
  }
  require_memory_for(params, dir);

  Transformer m(cfg, heads);
  std::vector<float> buf;
  for (const HfTensor& t : layout) {
    const TensorView* v = st.find(t.hf_name);
    if (!v) {  // the new score head: every other tensor was found above
      rep.score_head_initialised = true;
      Rng rng(head_init_seed, /*stream=*/7);
      const ParamSlot& s = m.slot("score.weight");
      for (int64_t i = 0; i < s.numel; ++i) m.params()[s.offset + i] = static_cast<float>(rng.normal()) * 0.02f;
      continue;
    }
    buf.resize(v->numel());
    convert_to_f32(*v, buf.data(), st.source_of(t.hf_name));
    if (const int64_t bad = count_non_finite(buf); bad > 0)
      throw InputError(st.source_of(t.hf_name) + ": tensor " + t.hf_name + " holds " + std::to_string(bad) +
                       " non-finite values (NaN or Inf); a model with non-finite weights is refused");
    const ParamSlot& s = m.slot(t.slot);
    const int64_t cols = s.shape.size() == 2 ? s.shape[1] : 1;
    float* dst = m.params().data() + s.offset + t.row_offset * cols;
    if (t.transpose) {  // HF (in, out) -> ours (out, in)
      const int64_t in = t.hf_shape[0], out = t.hf_shape[1];
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) dst[o * in + i] = buf[i * out + o];
    } else {
      std::memcpy(dst, buf.data(), buf.size() * sizeof(float));
    }
  }
  return m;
}

std::vector<float> export_hf_tensor(const Transformer& m, const HfTensor& t, std::span<const float> flat) {
  const ParamSlot& s = m.slot(t.slot);
  const int64_t cols = s.shape.size() == 2 ? s.shape[1] : 1;
  const float* src = flat.data() + s.offset + t.row_offset * cols;
  int64_t n = 1;
  for (int64_t d : t.hf_shape) n *= d;
  std::vector<float> out(n);
  if (t.transpose) {  // ours (out, in) -> HF (in, out)
    const int64_t in = t.hf_shape[0], o = t.hf_shape[1];
    for (int64_t i = 0; i < in; ++i)
      for (int64_t j = 0; j < o; ++j) out[i * o + j] = src[j * in + i];
  } else {
    std::memcpy(out.data(), src, n * sizeof(float));
  }
  return out;
}

void write_model_files(const Transformer& m, const fs::path& dir, const fs::path& copy_extra_from) {
  // HF layout, F32, in HF shapes (transposing back where the family table says so).
  std::vector<HfTensor> layout = hf_layout(m.config(), m.heads(), hf_default_prefix(m.config()));
  std::vector<std::vector<float>> storage(layout.size());
  std::vector<TensorToWrite> tensors;
  for (size_t k = 0; k < layout.size(); ++k) {
    storage[k] = export_hf_tensor(m, layout[k], m.params());
    tensors.push_back({layout[k].hf_name, DType::F32, layout[k].hf_shape, storage[k].data()});
  }
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  const bool scalar_only = m.heads().score_head && !m.heads().lm_head;
  write_file_atomic(dir / "config.json", m.config().to_json(scalar_only).dump(2) + "\n");
  if (!copy_extra_from.empty()) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                          "generation_config.json", "chat_template.jinja", "vocab.json", "merges.txt"}) {
      const fs::path src = copy_extra_from / f;
      if (fs::exists(src)) fs::copy_file(src, dir / f, fs::copy_options::overwrite_existing);
    }
  }
}

Transformer load_reward_model(const fs::path& dir) {
  LoadReport rep;
  Transformer rm = load_checkpoint(dir, ModelHeads{.lm_head = false, .score_head = true}, &rep);
  if (rep.score_head_initialised)
    throw InputError(dir.string() + " has no score head (score.weight), so it is not a reward model; train one " +
                     "with `rlhf rm` or give a *ForSequenceClassification checkpoint");
  return rm;
}

void require_finite_weights(const Transformer& m, const fs::path& target) {
  int64_t bad = 0;
  std::string first;
  for (const ParamSlot& slot : m.slots()) {
    const int64_t n = count_non_finite(std::span<const float>(m.params().data() + slot.offset, slot.numel));
    if (n > 0 && first.empty()) first = slot.name;
    bad += n;
  }
  if (bad > 0)
    throw NumericError("refusing to save " + target.string() + ": " + std::to_string(bad) +
                       " parameters are NaN or Inf (the first in " + first + "); training diverged");
}

void save_checkpoint(const Transformer& m, const fs::path& dir, const fs::path& copy_extra_from) {
  require_finite_weights(m, dir);
  const fs::path target = fs::absolute(dir);
  const fs::path parent = target.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw IoError(parent.string() + ": cannot create directory: " + ec.message());
  const fs::path tmp = parent / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) throw IoError(tmp.string() + ": cannot create directory: " + ec.message());
  try {
    write_model_files(m, tmp, copy_extra_from);
    // Swap the finished directory into place. Other files of the previous directory (metrics,
    // logs, earlier checkpoints) are then moved across; the previous directory is removed only
    // once it is empty of them, so a failure at any point loses nothing.
    const fs::path old = parent / ("." + target.filename().string() + ".old-" + std::to_string(::getpid()));
    const bool had_old = fs::exists(target);
    if (had_old) fs::rename(target, old);
    fs::rename(tmp, target);
    if (had_old) {
      for (const auto& e : fs::directory_iterator(old))
        if (!fs::exists(target / e.path().filename())) fs::rename(e.path(), target / e.path().filename());
      fs::remove_all(old);
    }
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw IoError(target.string() + ": saving the checkpoint failed: " + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace rlhf
