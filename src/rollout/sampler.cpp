// Token sampling and the batched generation loop (see sampler.h).
#include "rollout/sampler.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <limits>
#include <string>

#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf::rollout {

void SamplingParams::validate() const {
  auto bad = [](const std::string& what) { throw InputError("sampling: " + what); };
  if (!(temperature >= 0) || !std::isfinite(temperature))
    bad("temperature must be >= 0 (0: greedy), got " + std::to_string(temperature));
  if (top_k < 0) bad("top_k must be >= 0 (0: off), got " + std::to_string(top_k));
  if (!(top_p > 0 && top_p <= 1)) bad("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0 && min_p <= 1)) bad("min_p must be in [0, 1], got " + std::to_string(min_p));
  if (max_new_tokens < 1) bad("max_new_tokens must be >= 1, got " + std::to_string(max_new_tokens));
  if (n < 1) bad("the number of samples per prompt must be >= 1, got " + std::to_string(n));
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::eos: return "eos";
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
  }
  return "?";
}

double Completion::sum_logprob() const {
  double s = 0;
  for (float l : logprobs) s += l;
  return s;
}

// ---- one token -----------------------------------------------------------------------------

namespace {

// The rows the plain path cannot take (sampler.h, "Non-finite logits"): a NaN logit or nothing
// but -Inf is a NumericError; +Inf logits share all the probability (s = 0 for them, -Inf for
// the rest); huge finite logits are taken relative to the largest one (softmax is
// shift-invariant). Rewrites s, sets best to the first token at the maximum and returns the
// maximum (0).
float rescale_row(const float* logits, int64_t V, float inv_t, float* s, int32_t& best) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  float lmax = -inf;
  for (int64_t v = 0; v < V; ++v) {
    if (std::isnan(logits[v]))
      throw NumericError("sampling: the logit of token " + std::to_string(v) + " (of " + std::to_string(V) +
                         ") is NaN; the model's output is not a distribution");
    lmax = std::max(lmax, logits[v]);
  }
  if (lmax == -inf) throw NumericError("sampling: every logit of the row is -Inf; no token is possible");
  best = -1;
  for (int64_t v = 0; v < V; ++v) {
    s[v] = lmax == inf ? (logits[v] == inf ? 0.0f : -inf) : (logits[v] - lmax) * inv_t;
    if (best < 0 && s[v] == 0) best = static_cast<int32_t>(v);
  }
  return 0.0f;
}

}  // namespace

TokenDraw sample_token(const float* logits, int64_t V, const SamplingParams& p, Rng& rng, SampleScratch& sc) {
  const bool greedy = p.temperature == 0;
  const float inv_t = greedy ? 1.0f : static_cast<float>(1.0 / p.temperature);
  sc.s.resize(V);
  sc.e.resize(V);
  float* s = sc.s.data();
  float* e = sc.e.data();
  float smax = -std::numeric_limits<float>::infinity();
  int32_t best = 0;
  bool nan = false;
  for (int64_t v = 0; v < V; ++v) {
    s[v] = logits[v] * inv_t;
    nan |= std::isnan(s[v]);
    if (s[v] > smax) smax = s[v], best = static_cast<int32_t>(v);
  }
  // Beyond 1e6, smax + log(total) below would round the log-probs (and beyond FLT_MAX overflow).
  if (nan || !(std::fabs(smax) <= 1e6f)) smax = rescale_row(logits, V, inv_t, s, best);
  // Truncation in HF's order: top-k (a floor on s), top-p (a prefix of the tokens sorted by s,
  // ties by id), min-p (p / p_max = e >= min_p; the most likely token always survives).
  float floor = -std::numeric_limits<float>::infinity();
  if (!greedy && p.top_k > 0 && p.top_k < V) {
    std::copy(s, s + V, e);  // e as scratch, filled below
    std::nth_element(e, e + (p.top_k - 1), e + V, std::greater<float>());
    floor = e[p.top_k - 1];
  }
  const double total = kernels::cpu_backend().exp_shifted(e, s, smax, V);  // the logits are on the host
  const double lse = smax + std::log(total);
  auto result = [&](int32_t t) { return TokenDraw{t, static_cast<float>(s[t] - lse)}; };
  if (greedy) return result(best);

  // Top-p keeps the tokens ranked before `cut` in the order (s descending, id ascending); the
  // default cut keeps everything.
  float cut_s = -std::numeric_limits<float>::infinity();
  int32_t cut_id = std::numeric_limits<int32_t>::max();
  if (p.top_p < 1) {
    std::vector<int32_t>& order = sc.order;
    order.clear();
    double target = 0;
    for (int64_t v = 0; v < V; ++v)
      if (s[v] >= floor) order.push_back(static_cast<int32_t>(v)), target += e[v];
    target *= p.top_p;
    // Kept: the first r tokens, r the smallest rank whose preceding mass reaches the target.
    // Found by bisection with nth_element (linear time, no full sort): [lo, hi) holds ranks
    // lo..hi-1, the mass before lo is below the target and the mass before hi is not (or hi = n).
    auto desc = [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); };
    int64_t lo = 0, hi = static_cast<int64_t>(order.size());
    double before_lo = 0;
    while (hi - lo > 32) {
      const int64_t mid = lo + (hi - lo) / 2;
      std::nth_element(order.begin() + lo, order.begin() + mid, order.begin() + hi, desc);
      double before_mid = before_lo;
      for (int64_t r = lo; r < mid; ++r) before_mid += e[order[r]];
      if (before_mid >= target)
        hi = mid;
      else
        lo = mid, before_lo = before_mid;
    }
    std::sort(order.begin() + lo, order.begin() + hi, desc);
    int64_t r = lo;
    for (; r < hi && before_lo < target; ++r) before_lo += e[order[r]];
    cut_s = s[order[r - 1]];
    cut_id = order[r - 1];
  }
  // Without truncation every token is kept and the mass is the total.
  const bool truncated = floor > -std::numeric_limits<float>::infinity() || p.top_p < 1 || p.min_p > 0;
  auto kept = [&](int64_t v) {
    return !truncated ||
           (s[v] >= floor && (s[v] > cut_s || (s[v] == cut_s && v <= cut_id)) && e[v] >= p.min_p);
  };
  double mass = total;
  if (truncated) {
    mass = 0;
    for (int64_t v = 0; v < V; ++v)
      if (kept(v)) mass += e[v];
  }
  const double u = rng.uniform() * mass;
  double cum = 0;
  int32_t last = best;
  for (int64_t v = 0; v < V; ++v) {
    if (!kept(v)) continue;
    cum += e[v];
    last = static_cast<int32_t>(v);
    if (cum > u) return result(last);
  }
  return result(last);  // u within rounding of the total mass
}

// ---- the generation loop -----------------------------------------------------------------------

namespace {

// A sample being decoded: its output, cache slot, random stream and row in this step's logits.
struct Running {
  int64_t out = 0, slot = 0, row = 0;
  Rng rng;
};

bool contains(const std::vector<int32_t>& ids, int32_t t) { return std::find(ids.begin(), ids.end(), t) != ids.end(); }

}  // namespace

int64_t last_level_cache_bytes() {
  // Read once: generate() asks on every call (every online RL step).
  static const int64_t bytes = [] {
    int64_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 8; ++i) {
      const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
      std::ifstream level_file(dir + "level"), size_file(dir + "size");
      int level = 0;
      std::string size;
      if (!(level_file >> level) || !(size_file >> size) || size.empty() || level < best_level) continue;
      const int64_t unit = size.back() == 'K' ? 1024 : size.back() == 'M' ? 1024 * 1024 : 1;
      best = std::atoll(size.c_str()) * unit;
      best_level = level;
    }
    return best;
  }();
  return bytes;
}

int64_t decode_shares(int64_t weight_bytes, int64_t llc_bytes, int64_t threads, int64_t n_slots, int64_t n,
                      int64_t prompts) {
  if (threads < 2 || weight_bytes <= 0 || 2 * weight_bytes > llc_bytes) return 1;
  // One share per thread or none: with fewer shares than threads the rest would sit idle (the
  // kernels inside a share are single-threaded).
  const int64_t share_min = std::max(n, kernels::kPackedMinRows);
  return n_slots / share_min >= threads && prompts >= threads ? threads : 1;
}

namespace {

// Decodes the prompts `mine` (indices into prompts) with `n_slots` cache slots into their
// entries of out (prompt i's samples at out[i * n ...]): a loop that keeps up to n_slots samples
// running and starts the next prompt as slots free up.
void decode_prompts(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                    const std::vector<int64_t>& mine, const std::vector<uint64_t>& seeds, const SamplingParams& params,
                    const GenerateOptions& opt, int64_t n_slots, int64_t cache_len, const DecodeWeights* packed,
                    std::vector<Completion>& out) {
  const int64_t n = params.n, V = model.config().vocab_size, ctx = model.config().max_position_embeddings;
  KVCache cache(model.config(), n_slots, cache_len);
  std::vector<int64_t> free_slots;
  for (int64_t s = n_slots - 1; s >= 0; --s) free_slots.push_back(s);
  std::vector<Running> running;
  std::vector<float> logits;
  std::vector<SampleScratch> scratch(omp_get_max_threads());
  std::vector<std::exception_ptr> failed;  // per running sample, from sample_token
  size_t next = 0;
  while (next < mine.size() || !running.empty()) {
    // One decode call: the last token of every running sample, then prefills of new prompts.
    std::vector<int64_t> slots;
    std::vector<std::vector<int32_t>> tokens;
    for (Running& r : running) {
      r.row = static_cast<int64_t>(slots.size());
      slots.push_back(r.slot);
      tokens.push_back({out[r.out].tokens.back()});
    }
    std::vector<std::pair<int64_t, int64_t>> copies;  // (from, to): samples 1..n-1 share sample 0's prefill
    while (next < mine.size() && static_cast<int64_t>(free_slots.size()) >= n) {
      const int64_t prompt = mine[next], row = static_cast<int64_t>(slots.size());
      for (int64_t j = 0; j < n; ++j) {
        const int64_t slot = free_slots.back();
        free_slots.pop_back();
        cache.clear(slot);
        if (j == 0) {
          slots.push_back(slot);
          tokens.push_back(prompts[prompt]);
        } else {
          copies.push_back({slots[row], slot});
        }
        running.push_back({prompt * n + j, slot, row, Rng(seeds[prompt], static_cast<uint64_t>(j))});
      }
      ++next;
    }
    logits.resize(slots.size() * V);
    model.decode(cache, slots, tokens, logits.data(), packed);
    for (const auto& [from, to] : copies) cache.copy(from, to);

    const int64_t R = static_cast<int64_t>(running.size());
    failed.assign(R, nullptr);  // an exception must not leave the parallel loop
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < R; ++i) {
      Running& r = running[i];
      TokenDraw d;
      try {
        d = sample_token(logits.data() + r.row * V, V, params, r.rng, scratch[omp_get_thread_num()]);
      } catch (const NumericError& e) {
        const Completion& c = out[r.out];
        failed[i] = std::make_exception_ptr(NumericError(
            "generate: prompt " + std::to_string(c.prompt) + ", sample " + std::to_string(c.sample) + ", new token " +
            std::to_string(c.tokens.size() + 1) + ": " + e.what()));
        continue;
      } catch (...) {
        failed[i] = std::current_exception();
        continue;
      }
      out[r.out].tokens.push_back(d.token);
      out[r.out].logprobs.push_back(d.logprob);
      if (opt.keep_logits) {
        const float* row = logits.data() + r.row * V;
        out[r.out].logits.insert(out[r.out].logits.end(), row, row + V);
      }
    }
    for (const std::exception_ptr& e : failed)
      if (e) std::rethrow_exception(e);
    std::vector<Running> still;
    for (Running& r : running) {
      Completion& c = out[r.out];
      const int32_t t = c.tokens.back();
      const int64_t g = static_cast<int64_t>(c.tokens.size());
      const bool eos = contains(params.eos_ids, t);
      bool stop = !eos && contains(params.stop_ids, t);
      if (!eos && !stop && opt.stop) {
#pragma omp critical(rlhf_generate_stop)  // the callback is never called concurrently
        stop = opt.stop(c.prompt, c.tokens);
      }
      bool done = true;
      if (eos)
        c.finish = FinishReason::eos;
      else if (stop)
        c.finish = FinishReason::stop;
      else if (g >= params.max_new_tokens || static_cast<int64_t>(prompts[c.prompt].size()) + g >= ctx)
        c.finish = FinishReason::length;
      else
        done = false;
      if (done)
        free_slots.push_back(r.slot);
      else
        still.push_back(std::move(r));
    }
    running = std::move(still);
  }
}

}  // namespace

std::vector<Completion> generate(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const std::vector<uint64_t>& seeds, const SamplingParams& params,
                                 const GenerateOptions& opt) {
  params.validate();
  RLHF_CHECK(seeds.size() == prompts.size(), "generate: one seed per prompt");
  if (opt.batch_size < 1) throw InputError("generate: batch size must be >= 1, got " + std::to_string(opt.batch_size));
  const ModelConfig& cfg = model.config();
  const int64_t P = static_cast<int64_t>(prompts.size()), n = params.n, V = cfg.vocab_size;
  const int64_t ctx = cfg.max_position_embeddings;
  int64_t longest = 0;
  for (int64_t i = 0; i < P; ++i) {
    const int64_t L = static_cast<int64_t>(prompts[i].size());
    if (L == 0) throw InputError("generate: prompt " + std::to_string(i) + " has no tokens");
    if (L >= ctx)
      throw InputError("generate: prompt " + std::to_string(i) + " has " + std::to_string(L) +
                       " tokens; the model's context is " + std::to_string(ctx) + " (max_position_embeddings)");
    for (int32_t t : prompts[i])
      if (t < 0 || t >= V)
        throw InputError("generate: prompt " + std::to_string(i) + " has token id " + std::to_string(t) +
                         " outside the model's vocabulary of " + std::to_string(V));
    longest = std::max(longest, L);
  }
  std::vector<Completion> out(P * n);
  if (P == 0) return out;
  for (int64_t i = 0; i < P * n; ++i) out[i].prompt = i / n, out[i].sample = i % n;

  const int64_t n_slots = std::max(opt.batch_size, n), cache_len = std::min(ctx, longest + params.max_new_tokens);
  // Batches of many sequences multiply by prepacked weights (a copy of the model's matrices);
  // fewer rows stream the weights themselves.
  const bool pack = n_slots >= kernels::kPackedMinRows;
  const DecodeWeights packed = pack ? model.pack_for_decode() : DecodeWeights{};
  const DecodeWeights* weights = pack ? &packed : nullptr;
  // When those weights fit in half the last-level cache, each thread decodes its own share of the
  // prompts with single-threaded kernels: a small model's decode step is a few dozen small
  // products, and forking the threads for each (waking sleeping ones under
  // OMP_WAIT_POLICY=PASSIVE) cost more than they share. Each share keeps the packed GEMM path.
  // A larger model's step streams its weights from memory, and two shares would read them twice.
  // (rlhf generate, 32 prompts x 64 tokens, 2 threads: a 15 MB model 35% faster under PASSIVE and
  // 7% by default; a 340 MB one 11-24% slower.)
  const int64_t bytes = packed.bytes();
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  std::vector<std::vector<int64_t>> mine(decode_shares(bytes, last_level_cache_bytes(), threads, n_slots, n, P));
  for (int64_t i = 0; i < P; ++i) mine[i % mine.size()].push_back(i);  // round robin: balanced lengths
  if (mine.size() == 1) {
    decode_prompts(model, prompts, mine[0], seeds, params, opt, n_slots, cache_len, weights, out);
    return out;
  }
  const int64_t share_slots = n_slots / static_cast<int64_t>(mine.size());
  std::vector<std::exception_ptr> failed(mine.size());
#pragma omp parallel for num_threads(mine.size()) schedule(static, 1)
  for (size_t g = 0; g < mine.size(); ++g) {
    try {
      decode_prompts(model, prompts, mine[g], seeds, params, opt, share_slots, cache_len, weights, out);
    } catch (...) {
      failed[g] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace rlhf::rollout
