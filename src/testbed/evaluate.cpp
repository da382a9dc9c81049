#include "testbed/evaluate.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "rollout/sampler.h"
#include "tensor/error.h"
#include "testbed/stats.h"

namespace rlhf::testbed {

namespace {

constexpr int64_t kKlBatch = 64;  // sequences per decode pass

// log-softmax of one row of logits into out.
void log_softmax(const float* z, int64_t V, std::vector<double>& out) {
  out.resize(V);
  double m = z[0];
  for (int64_t v = 1; v < V; ++v) m = std::max(m, static_cast<double>(z[v]));
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(z[v] - m);
  const double lse = m + std::log(s);
  for (int64_t v = 0; v < V; ++v) out[v] = z[v] - lse;
}

struct Sampled {
  std::vector<std::vector<int32_t>> prompt_ids, completion_ids;
  std::vector<rollout::Completion> completions;
};

Sampled sample(Transformer& model, const EvalSetup& s, bool keep_logits = false) {
  Sampled out;
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < s.prompts.size(); ++i) {
    out.prompt_ids.push_back(s.tok->encode(s.prompts[i]));
    seeds.push_back(s.seed * 1000003ULL + i);
  }
  rollout::SamplingParams sp;
  sp.temperature = 1.0;
  sp.n = s.samples;
  sp.max_new_tokens = s.task->max_new_tokens();
  sp.eos_ids = {s.eos_id};
  rollout::GenerateOptions opt;
  opt.batch_size = 64;
  opt.keep_logits = keep_logits;
  out.completions = rollout::generate(model, out.prompt_ids, seeds, sp, opt);
  return out;
}

bool ended_with_eos(const rollout::Completion& c) { return c.finish == rollout::FinishReason::eos; }

std::string completion_text(const Tokenizer& tok, const rollout::Completion& c) {
  std::vector<int32_t> ids = c.tokens;
  if (ended_with_eos(c)) ids.pop_back();
  return tok.decode(ids, {.skip_special_tokens = true});
}

}  // namespace

std::vector<std::vector<float>> completion_logits(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                                                  const std::vector<std::vector<int32_t>>& completions) {
  const int64_t V = model.config().vocab_size;
  const int64_t n = static_cast<int64_t>(prompts.size());
  std::vector<std::vector<float>> out(n);
  std::vector<float> z;
  for (int64_t b0 = 0; b0 < n; b0 += kKlBatch) {
    const int64_t b = std::min(kKlBatch, n - b0);
    int64_t max_len = 0;
    for (int64_t i = 0; i < b; ++i)
      max_len = std::max<int64_t>(max_len, prompts[b0 + i].size() + completions[b0 + i].size());
    KVCache cache(model.config(), b, max_len);
    z.resize(b * V);
    // Step t feeds the prompt (t = 0) or completion token t-1 of every sequence still running,
    // then reads the distribution of completion token t.
    for (int64_t t = 0;; ++t) {
      std::vector<int64_t> slots;
      std::vector<std::vector<int32_t>> feed;
      for (int64_t i = 0; i < b; ++i) {
        const auto& c = completions[b0 + i];
        if (t >= static_cast<int64_t>(c.size())) continue;
        slots.push_back(i);
        feed.push_back(t == 0 ? prompts[b0 + i] : std::vector<int32_t>{c[t - 1]});
      }
      if (slots.empty()) break;
      model.decode(cache, slots, feed, z.data());
      for (size_t k = 0; k < slots.size(); ++k)
        out[b0 + slots[k]].insert(out[b0 + slots[k]].end(), z.begin() + k * V, z.begin() + (k + 1) * V);
    }
  }
  return out;
}

SequenceKl sequence_kl(const std::vector<std::vector<float>>& policy_logits, Transformer& ref,
                       const std::vector<std::vector<int32_t>>& prompts,
                       const std::vector<std::vector<int32_t>>& completions) {
  const int64_t V = ref.config().vocab_size;
  const int64_t n = static_cast<int64_t>(prompts.size());
  const std::vector<std::vector<float>> ref_logits = completion_logits(ref, prompts, completions);
  SequenceKl out;
  out.exact.assign(n, 0.0);
  out.k1.assign(n, 0.0);
  out.k3.assign(n, 0.0);
  out.entropy.assign(n, 0.0);
  std::vector<double> lp, lq;
  for (int64_t i = 0; i < n; ++i) {
    const auto& c = completions[i];
    if (policy_logits[i].size() != c.size() * static_cast<size_t>(V))
      throw LogicError("sequence_kl: the policy's logits do not cover sample " + std::to_string(i) +
                       " (or the vocabularies differ)");
    for (size_t t = 0; t < c.size(); ++t) {
      log_softmax(policy_logits[i].data() + t * V, V, lp);
      log_softmax(ref_logits[i].data() + t * V, V, lq);
      double kl = 0, h = 0;
      for (int64_t v = 0; v < V; ++v) {
        const double p = std::exp(lp[v]);
        kl += p * (lp[v] - lq[v]);
        h -= p * lp[v];
      }
      const double log_ratio = lq[c[t]] - lp[c[t]];  // log(π_ref / π) of the sampled token
      out.exact[i] += kl;
      out.entropy[i] += h;
      out.k1[i] -= log_ratio;
      out.k3[i] += std::expm1(log_ratio) - log_ratio;
    }
  }
  return out;
}

SequenceKl sequence_kl(Transformer& policy, Transformer& ref, const std::vector<std::vector<int32_t>>& prompts,
                       const std::vector<std::vector<int32_t>>& completions) {
  return sequence_kl(completion_logits(policy, prompts, completions), ref, prompts, completions);
}

EvalBaseline evaluate_baseline(Transformer& ref, const EvalSetup& setup) {
  const Sampled s = sample(ref, setup);
  EvalBaseline base;
  for (const auto& c : s.completions)
    base.sample_gold.push_back(setup.task->gold(setup.prompts[c.prompt], completion_text(*setup.tok, c), ended_with_eos(c)));
  return base;
}

PolicyEval evaluate_policy(Transformer& policy, Transformer& ref, const EvalSetup& setup, const EvalBaseline& base,
                           const ProxyScorer& proxy) {
  Sampled s = sample(policy, setup, true);  // the KL below reads the sampler's logits (T = 1: the policy's)
  const int64_t P = static_cast<int64_t>(setup.prompts.size()), K = setup.samples;
  PolicyEval e;
  std::vector<std::vector<int32_t>> prompts, completions;
  std::vector<rollout::RewardSample> batch;
  double pass_sum = 0;
  bool has_pass = false;
  std::set<std::pair<int32_t, int32_t>> bigrams;
  int64_t n_bigrams = 0, n_tokens = 0;
  for (const auto& c : s.completions) {
    const std::string text = completion_text(*setup.tok, c);
    const std::string& prompt = setup.prompts[c.prompt];
    const bool eos = ended_with_eos(c);
    e.sample_gold.push_back(setup.task->gold(prompt, text, eos));
    e.sample_length.push_back(static_cast<double>(c.tokens.size()));
    for (const auto& [name, value] : setup.task->gold_details(prompt, text, eos))
      if (name == "pass") {
        pass_sum += value;
        has_pass = true;
      }
    for (size_t t = 1; t < c.tokens.size(); ++t) bigrams.insert({c.tokens[t - 1], c.tokens[t]});
    n_bigrams += c.tokens.size() > 1 ? static_cast<int64_t>(c.tokens.size()) - 1 : 0;
    n_tokens += static_cast<int64_t>(c.tokens.size());
    prompts.push_back(s.prompt_ids[c.prompt]);
    completions.push_back(c.tokens);
    rollout::RewardSample r;
    r.prompt.text = prompt;
    r.completion = text;
    r.prompt_ids = s.prompt_ids[c.prompt];
    r.completion_ids = c.tokens;
    r.eos = eos;
    batch.push_back(std::move(r));
  }
  const double n = static_cast<double>(s.completions.size());
  double win = 0;
  e.prompt_gold.assign(P, 0.0);
  e.prompt_length.assign(P, 0.0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < K; ++i) {
      const double g = e.sample_gold[p * K + i];
      e.prompt_gold[p] += g / K;
      e.prompt_length[p] += e.sample_length[p * K + i] / K;
      for (int64_t j = 0; j < K; ++j) {
        const double gb = base.sample_gold.at(p * K + j);
        win += g > gb ? 1.0 : g == gb ? 0.5 : 0.0;
      }
    }
  e.win_rate = win / (n * K);
  const MeanCi ci = bootstrap_mean_ci(e.prompt_gold, setup.seed);
  e.gold = ci.mean;
  e.gold_lo = ci.lo;
  e.gold_hi = ci.hi;
  double len = 0;
  for (double l : e.sample_length) len += l;
  e.length = len / n;
  e.distinct2 = n_bigrams ? static_cast<double>(bigrams.size()) / n_bigrams : 0.0;
  if (has_pass) e.pass = pass_sum / n;

  std::vector<std::vector<float>> policy_logits;
  for (auto& c : s.completions) policy_logits.push_back(std::move(c.logits));
  const SequenceKl kl = sequence_kl(policy_logits, ref, prompts, completions);
  double h = 0;
  for (size_t i = 0; i < kl.exact.size(); ++i) {
    e.kl += kl.exact[i] / n;
    e.kl_k1 += kl.k1[i] / n;
    e.kl_k3 += kl.k3[i] / n;
    h += kl.entropy[i];
  }
  e.entropy = n_tokens ? h / n_tokens : 0.0;
  if (proxy) {
    const std::vector<double> r = proxy(batch);
    double sum = 0;
    int64_t m = 0;
    for (double x : r)
      if (std::isfinite(x)) sum += x, ++m;
    e.proxy = m ? sum / m : NAN;
    // Per prompt over its finite scores (NaN where none is), for paired comparisons.
    e.prompt_proxy.assign(P, 0.0);
    for (int64_t p = 0; p < P; ++p) {
      int64_t k = 0;
      for (int64_t i = 0; i < K; ++i)
        if (std::isfinite(r.at(p * K + i))) e.prompt_proxy[p] += r[p * K + i], ++k;
      e.prompt_proxy[p] = k ? e.prompt_proxy[p] / k : NAN;
    }
  }
  return e;
}

}  // namespace rlhf::testbed
