// Decoding with a key/value cache: the forward of transformer.cpp for new tokens only, their
// keys and values appended to the cache, attention over the cached prefix (attention_cached).
//
// All new tokens of one call (whole prompts being prefilled and single tokens of sequences being
// decoded) are rows of one (N, C) matrix, so every projection is one GEMM over the batch; only
// attention looks at per-sequence positions. Nothing is saved for a backward: the residual
// stream is updated in place and the activation buffers are reused by every layer.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/kernels.h"
#include "model/transformer.h"
#include "tensor/error.h"

namespace rlhf {

namespace k = kernels;

KVCache::KVCache(const ModelConfig& cfg, int64_t max_seqs, int64_t max_len)
    : n_layers_(cfg.n_layers),
      max_seqs_(max_seqs),
      max_len_(max_len),
      kv_heads_(cfg.n_kv_heads),
      head_dim_(cfg.head_dim),
      per_slot_(cfg.n_kv_heads * max_len * cfg.head_dim),
      len_(max_seqs, 0),
      tokens_(max_seqs) {
  RLHF_CHECK(max_seqs > 0 && max_len > 0, "KVCache: max_seqs and max_len must be positive");
}

void KVCache::bind(const Device& device) {
  if (k_.data()) {
    RLHF_CHECK(&k_.device() == &device, "KVCache: filled on one device and used on another");
    return;
  }
  k_ = DeviceBuffer<float>(device, n_layers_ * max_seqs_ * per_slot_);
  v_ = DeviceBuffer<float>(device, k_.size());
}

void KVCache::copy(int64_t from, int64_t to) {
  const int64_t n = len_.at(from);
  len_.at(to) = n;
  if (from == to) return;
  tokens_.at(to) = tokens_.at(from);
  if (n == 0) return;
  // Per (layer, kv head) only the first n positions are live.
  const Device& device = k_.device();
  const size_t bytes = n * head_dim_ * sizeof(float);
  for (int64_t l = 0; l < n_layers_; ++l)
    for (int64_t h = 0; h < kv_heads_; ++h) {
      const int64_t off = h * max_len_ * head_dim_;
      device.copy(k(l, to) + off, k(l, from) + off, bytes);
      device.copy(v(l, to) + off, v(l, from) + off, bytes);
    }
}

int64_t DecodeWeights::bytes() const {
  int64_t total = lm_head ? lm_head->bytes() : 0;
  for (const auto& w : layer_mats) total += w ? w->bytes() : 0;
  return total;
}

DecodeWeights Transformer::pack_for_decode() const {
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, A = cfg_.n_heads * cfg_.head_dim;
  const int64_t in_w = cfg_.mlp_in_dim();
  DecodeWeights dw;
  dw.backend = be_;
  for (const LayerSlots& s : layers_) {
    dw.layer_mats.push_back(be_->pack_weight(P(s.qkv_w), C, cfg_.qkv_dim()));
    dw.layer_mats.push_back(be_->pack_weight(P(s.o_w), A, C));
    dw.layer_mats.push_back(be_->pack_weight(P(s.up_w), C, in_w));
    dw.layer_mats.push_back(be_->pack_weight(P(s.down_w), I, C));
  }
  if (heads_.lm_head) dw.lm_head = be_->pack_weight(P(lm_weight_offset()), C, cfg_.vocab_size);
  return dw;
}

void Transformer::decode(KVCache& cache, const std::vector<int64_t>& slots,
                         const std::vector<std::vector<int32_t>>& new_tokens, float* logits,
                         const DecodeWeights* packed) {
  RLHF_CHECK(heads_.lm_head, "decode needs an LM head");
  RLHF_CHECK(slots.size() == new_tokens.size(), "decode: one token list per slot");
  // LongRoPE: a slot whose positions first pass original_max_position_embeddings in this call is
  // computed again from its first token with the long factors, as transformers' Phi-3 drops its
  // cache there (keys rotated with both sets of factors never meet).
  std::vector<std::vector<int32_t>> regrown;
  const std::vector<std::vector<int32_t>>* tokens_ptr = &new_tokens;
  if (!inv_freq_long_.empty()) {
    const int64_t orig = cfg_.rope_scaling.original_max_position_embeddings;
    for (size_t i = 0; i < slots.size(); ++i) {
      const int64_t s = slots[i];
      RLHF_CHECK(s >= 0 && s < cache.max_seqs_, "decode: slot " + std::to_string(s) + " is out of range");
      const int64_t p0 = cache.len_[s], n = static_cast<int64_t>(new_tokens[i].size());
      if (p0 == 0 || p0 > orig || p0 + n < orig + 1) continue;
      if (regrown.empty()) regrown = new_tokens;
      regrown[i] = cache.tokens_[s];
      regrown[i].insert(regrown[i].end(), new_tokens[i].begin(), new_tokens[i].end());
      cache.len_[s] = 0;
      cache.tokens_[s].clear();
    }
    if (!regrown.empty()) tokens_ptr = &regrown;
  }
  const std::vector<std::vector<int32_t>>& tokens = *tokens_ptr;
  RLHF_CHECK(cache.n_layers_ == cfg_.n_layers && cache.kv_heads_ == cfg_.n_kv_heads && cache.head_dim_ == cfg_.head_dim,
             "decode: the cache was built for another model");
  RLHF_CHECK(!packed || (packed->layer_mats.size() == 4 * layers_.size() && packed->backend == be_),
             "decode: the packed weights are of another model or backend");
  cache.bind(be_->device());
  cache.io_.begin_pass(be_->device());
  const int64_t M = static_cast<int64_t>(slots.size());
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, QKV = cfg_.qkv_dim();
  const int64_t H = cfg_.n_heads, KV = cfg_.n_kv_heads, D = cfg_.head_dim, A = H * D, T = cache.max_len_;
  const BlockShape& blk = cfg_.block;
  const bool pre = blk.pre_norm(), post = blk.post_norm();
  // Learned position embeddings end at max_position_embeddings; RoPE only needs the cache room.
  const int64_t max_pos = blk.position == PositionKind::learned ? std::min(T, cfg_.max_position_embeddings) : T;

  std::vector<int32_t> tok, pos, seq;
  std::vector<int64_t> last(M);  // row of each slot's last new token
  std::vector<char> seen(cache.max_seqs_, 0);
  for (int64_t i = 0; i < M; ++i) {
    const int64_t s = slots[i];
    RLHF_CHECK(s >= 0 && s < cache.max_seqs_ && !seen[s], "decode: slot " + std::to_string(s) +
                                                               " is out of range or given twice");
    seen[s] = 1;
    const int64_t n = static_cast<int64_t>(tokens[i].size()), p0 = cache.len_[s];
    RLHF_CHECK(n > 0, "decode: slot " + std::to_string(s) + " has no new tokens");
    RLHF_CHECK(p0 + n <= max_pos, "decode: slot " + std::to_string(s) + " would hold " + std::to_string(p0 + n) +
                                      " tokens, beyond its room of " + std::to_string(max_pos));
    for (int64_t j = 0; j < n; ++j) {
      const int32_t t = tokens[i][j];
      RLHF_CHECK(t >= 0 && t < cfg_.vocab_size, "decode: token id " + std::to_string(t) +
                                                    " outside the vocabulary of " + std::to_string(cfg_.vocab_size));
      tok.push_back(t);
      pos.push_back(static_cast<int32_t>(p0 + j));
      seq.push_back(static_cast<int32_t>(s));
    }
    last[i] = static_cast<int64_t>(tok.size()) - 1;
  }
  const int64_t N = static_cast<int64_t>(tok.size());

  const k::AttentionShape as = attention_shape(cfg_, cache.max_seqs_, T);
  const int64_t in_w = cfg_.mlp_in_dim();
  // Scratch: x, h, y (N, C); mean, rstd (N); qkv; att; mlp_in; act; then the attention kernel's;
  // then, with q/k norms, the heads before their norm, their rstd and the normalised heads.
  const int64_t att_scratch = be_->attention_cached_scratch_floats(as);
  const bool qk_norm = blk.qk_norm != QkNorm::none;
  const int64_t qk_scratch = qk_norm ? N * H * (2 * D + 1) : 0;
  const int64_t need = N * (3 * C + 2 + QKV + A + in_w + I) + att_scratch + qk_scratch;
  if (static_cast<int64_t>(cache.scratch_.size()) < need) cache.scratch_ = DeviceBuffer<float>(be_->device(), need);
  float* x = cache.scratch_.data();
  float* h = x + N * C;
  float* y = h + N * C;
  float* mean = y + N * C;
  float* rstd = mean + N;
  float* qkv = rstd + N;
  float* att = qkv + N * QKV;
  float* mlp_in = att + N * A;
  float* act = mlp_in + N * in_w;
  float* att_buf = act + N * I;
  float* qk_pre = att_buf + att_scratch;
  float* qk_rstd = qk_pre + N * H * D;
  float* qk_heads = qk_rstd + N * H;

  const int32_t* tok_d = cache.io_.stage(tok);
  const int32_t* pos_d = cache.io_.stage(pos);
  const int32_t* seq_d = cache.io_.stage(seq);
  const float* inv_freq_d = cache.io_.stage(inv_freq_);
  const float* inv_freq_long_d = inv_freq_long_.empty() ? nullptr : cache.io_.stage(inv_freq_long_);
  std::vector<int64_t> seq_end(N);  // each slot's new rows, as one sequence
  for (int64_t i = 0, begin = 0; i < M; begin = last[i] + 1, ++i)
    std::fill(seq_end.begin() + begin, seq_end.begin() + last[i] + 1, last[i] + 1);
  const std::vector<RopeRun> runs = rope_runs(pos, seq_end);
  const float* inv_freq_local_d = inv_freq_local_.empty() ? nullptr : cache.io_.stage(inv_freq_local_);
  const Device& device = be_->device();
  be_->embedding_forward(x, tok_d, pos_d, P(wte_), P(wpe_), N, C);
  if (blk.embed_scale != 1.0f) be_->scale_inplace(x, blk.embed_scale, N * C);
  // Each branch reads norm(x) in h, or x itself without pre norms; its output, in y, goes into x
  // directly or through its post norm (into h, free again by then).
  const float* branch_in = pre ? h : x;
  const float* branch_out = post ? h : y;
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    const LayerSlots& s = layers_[l];
    auto mat = [&](int i) { return packed ? packed->layer_mats[4 * l + i].get() : nullptr; };
    if (pre) norm_forward(h, mean, rstd, x, s.norm1_w, s.norm1_b, N);
    be_->matmul_forward(qkv, branch_in, P(s.qkv_w), P(s.qkv_b), N, C, QKV, mat(0));
    if (qk_norm) {
      qk_norm_forward(qkv, N, 0, H, s.q_norm_w, qk_pre, qk_rstd, qk_heads);
      qk_norm_forward(qkv, N, H, KV, s.k_norm_w, qk_pre, qk_rstd, qk_heads);
    }
    if (cfg_.rotates(l)) rope_layer(qkv, pos_d, runs, inv_freq_d, inv_freq_long_d, inv_freq_local_d, l, false);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < KV; ++g) {
        const int64_t off = (g * T + pos[n]) * D;
        device.copy(cache.k(l, seq[n]) + off, qkv + n * QKV + (H + g) * D, D * sizeof(float));
        device.copy(cache.v(l, seq[n]) + off, qkv + n * QKV + (H + KV + g) * D, D * sizeof(float));
      }
    be_->attention_cached(att, qkv, QKV, cache.k(l, 0), cache.v(l, 0), seq_d, pos_d, N, layer_attention(as, l),
                          att_buf);
    be_->matmul_forward(y, att, P(s.o_w), P(s.o_b), N, A, C, mat(1));
    if (post) norm_forward(h, mean, rstd, y, s.attn_post_w, s.attn_post_b, N);
    be_->add_inplace(x, branch_out, N * C);
    if (pre) norm_forward(h, mean, rstd, x, s.norm2_w, s.norm2_b, N);
    be_->matmul_forward(mlp_in, branch_in, P(s.up_w), P(s.up_b), N, C, in_w, mat(2));
    activation_forward(act, mlp_in, N);
    be_->matmul_forward(y, act, P(s.down_w), P(s.down_b), N, I, C, mat(3));
    if (post) norm_forward(h, mean, rstd, y, s.mlp_post_w, s.mlp_post_b, N);
    be_->add_inplace(x, branch_out, N * C);
  }
  // Only the last new token of each slot predicts anything: gather, final norm, LM head.
  be_->gather_rows(y, x, cache.io_.stage(last), M, C, false);
  norm_forward(h, mean, rstd, y, normf_w_, normf_b_, M);
  float* logits_d = cache.io_.output(logits, M * cfg_.vocab_size);
  be_->matmul_forward(logits_d, h, P(lm_weight_offset()), nullptr, M, C, cfg_.vocab_size,
                      packed ? packed->lm_head.get() : nullptr);
  cache.io_.download(logits, logits_d, M * cfg_.vocab_size);
  if (const float cap = blk.final_softcap; cap > 0.0f)  // Gemma 2: cap tanh(logits / cap)
    for (int64_t i = 0; i < M * cfg_.vocab_size; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
  for (int64_t i = 0; i < M; ++i) {
    cache.len_[slots[i]] += static_cast<int64_t>(tokens[i].size());
    if (!inv_freq_long_.empty())
      cache.tokens_[slots[i]].insert(cache.tokens_[slots[i]].end(), tokens[i].begin(), tokens[i].end());
  }
}

}  // namespace rlhf
