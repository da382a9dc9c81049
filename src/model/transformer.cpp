// The transformer's parameter table, forward and backward (see transformer.h for the contract).
//
// Block, in every family (x is the residual stream, N = B*T rows), shaped by cfg.block:
//   h   = norm1(x)                      pre norms; LayerNorm (GPT-2) | RMSNorm (Llama) | (1 + w)
//   qkv = h Wqkv^T (+ b)                fused q|k|v projection; norms of q and k, per head
//                                       (Qwen3) or whole (OLMo 2), then RoPE on q and k (Llama)
//   a   = attention(qkv)                causal, packed-sequence aware, GQA
//   x'  = x + post1(a Wo^T (+ b))       post1: post norms only (sandwich, post), else identity
//   h2  = norm2(x')
//   m   = gelu(h2 Wfc^T (+ b))          | swiglu or geglu(h2 Wgate_up^T (+ b))
//   x'' = x' + post2(m Wdown^T (+ b))
// Without pre norms (placement post) h = x and h2 = x'. The token embedding may be scaled.
// Backward walks the same list in reverse. Activation gradients d_norm, d_att, d_qkv, ... are
// written fresh by each layer (Grad::overwrite; the attention backward writes all of d_qkv); the
// residual gradient d_x accumulates across both branches by construction. The last layer runs
// x', h2, m and x'' (and the final norm) only on the rows the heads read (Workspace::out_rows).
#include "model/transformer.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/kernels.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace rlhf {

namespace k = kernels;

// ---- Batch ---------------------------------------------------------------------------------

Batch Batch::from_rows(const std::vector<std::vector<int32_t>>& rows, int64_t score_from) {
  Batch b;
  b.B = static_cast<int64_t>(rows.size());
  b.T = rows.empty() ? 0 : static_cast<int64_t>(rows[0].size());
  for (int64_t r = 0; r < b.B; ++r) {
    RLHF_CHECK(static_cast<int64_t>(rows[r].size()) == b.T, "Batch::from_rows: rows of unequal length");
    for (int64_t t = 0; t < b.T; ++t) {
      b.tokens.push_back(rows[r][t]);
      b.positions.push_back(static_cast<int32_t>(t));
      b.seg_start.push_back(0);
      if (t >= std::max<int64_t>(score_from, 1)) b.scored.push_back(r * b.T + t);
    }
  }
  return b;
}

void Batch::validate(int64_t vocab_size, int64_t max_positions) const {
  const int64_t N = B * T;
  RLHF_CHECK(static_cast<int64_t>(tokens.size()) == N && static_cast<int64_t>(positions.size()) == N &&
                 static_cast<int64_t>(seg_start.size()) == N,
             "Batch: tokens/positions/seg_start must each hold B*T entries");
  for (int64_t i = 0; i < N; ++i) {
    RLHF_CHECK(tokens[i] >= 0 && tokens[i] < vocab_size,
               "Batch: token id " + std::to_string(tokens[i]) + " outside the vocabulary of " +
                   std::to_string(vocab_size));
    RLHF_CHECK(positions[i] >= 0 && positions[i] < max_positions,
               "Batch: position " + std::to_string(positions[i]) + " beyond max_position_embeddings");
    RLHF_CHECK(seg_start[i] >= 0 && seg_start[i] <= i % T, "Batch: seg_start after its token");
  }
  for (int64_t q : scored) {
    RLHF_CHECK(q >= 0 && q < N, "Batch: scored index out of range");
    RLHF_CHECK(q % T > seg_start[q], "Batch: a scored token must have a previous token in its sequence");
  }
  for (int64_t q : head_at) RLHF_CHECK(q >= 0 && q < N, "Batch: head index out of range");
}

// ---- RoPE frequencies ------------------------------------------------------------------------

std::vector<float> rope_inv_freq(const ModelConfig& cfg, bool long_factors) {
  const int64_t d = cfg.rotary_dims();
  const RopeScaling& rs = cfg.rope_scaling;
  const std::vector<float>* ext = rs.type != "longrope" ? nullptr : long_factors ? &rs.long_factor : &rs.short_factor;
  std::vector<float> inv(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) {
    // HF computes base ** (arange(0, d, 2).float() / d) in fp32; so do we. LongRoPE divides by
    // its factor first: 1 / (ext * base ** ...).
    float expo = static_cast<float>(2 * i) / static_cast<float>(d);
    const float p = std::pow(static_cast<float>(cfg.rope_theta), expo);
    inv[i] = 1.0f / (ext ? (*ext)[i] * p : p);
  }
  if (rs.type == "linear") {
    for (float& f : inv) f = static_cast<float>(f / rs.factor);
  } else if (rs.type == "llama3") {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between
    // interpolated smoothly (transformers' _compute_llama3_parameters).
    const double old_ctx = static_cast<double>(rs.original_max_position_embeddings);
    const double low_wavelen = old_ctx / rs.low_freq_factor;
    const double high_wavelen = old_ctx / rs.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      double scaled = wavelen > low_wavelen ? f / rs.factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const double smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        scaled = (1.0 - smooth) * scaled / rs.factor + smooth * scaled;
      }
      f = static_cast<float>(scaled);
    }
  }
  return inv;
}

// ---- parameter table ---------------------------------------------------------------------------

int64_t Transformer::add_slot(const std::string& name, std::vector<int64_t> shape, bool decay) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  int64_t off = slots_.empty() ? 0 : slots_.back().offset + slots_.back().numel;
  slots_.push_back({name, std::move(shape), off, n, decay});
  return off;
}

static bool is_norm_weight(const ParamSlot& s) {
  return s.name.find("norm") != std::string::npos && s.name.ends_with(".weight");
}

// Block shapes the forward, backward and decode do not implement (yet) are refused here, each
// naming its field, rather than run as something else.
static void check_block_shape(const ModelConfig& cfg) {
  const BlockShape& b = cfg.block;
  auto refuse = [](const std::string& field, const std::string& what) {
    throw InputError("model config: block." + field + ": " + what);
  };
  if (b.norm == NormKind::layernorm && !b.norm_bias)
    refuse("norm_bias", "LayerNorm without a bias is not supported yet");
  if (b.norm != NormKind::layernorm && b.norm_bias) refuse("norm_bias", "only LayerNorm has a bias");
  if (b.qk_norm != QkNorm::none && b.norm == NormKind::layernorm)
    refuse("qk_norm", "q/k norms are RMSNorms; with LayerNorm they are not supported yet");
  if (!(b.attn_softcap >= 0.0f && std::isfinite(b.attn_softcap)))
    refuse("attn_softcap", "must be a positive number or 0 (off), got " + std::to_string(b.attn_softcap));
  if (!(b.final_softcap >= 0.0f && std::isfinite(b.final_softcap)))
    refuse("final_softcap", "must be a positive number or 0 (off), got " + std::to_string(b.final_softcap));
  if (b.lm_head_bias) refuse("lm_head_bias", "an LM-head bias is not supported yet");
  if (!(std::isfinite(b.embed_scale) && b.embed_scale > 0.0f))
    refuse("embed_scale", "must be a positive number, got " + std::to_string(b.embed_scale));
  if (b.embed_scale != 1.0f && b.position == PositionKind::learned)
    refuse("embed_scale", "scaling the token embedding beside learned positions is not supported yet");
  if (b.position == PositionKind::rope && (cfg.rotary_dims() % 2 != 0 || cfg.rotary_dims() > cfg.head_dim))
    refuse("position", "RoPE needs an even rotary dimension within the head, got " + std::to_string(cfg.rotary_dims()) +
                           " of " + std::to_string(cfg.head_dim));
}

Transformer::Transformer(ModelConfig cfg, ModelHeads heads, const kernels::Backend& backend)
    : cfg_(std::move(cfg)), heads_(heads), be_(&backend) {
  RLHF_CHECK(heads_.lm_head || heads_.score_head, "a model needs at least one head");
  RLHF_CHECK(cfg_.n_layers >= 1, "a model needs at least one layer");
  check_block_shape(cfg_);
  const BlockShape& blk = cfg_.block;
  const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size, I = cfg_.intermediate_size;
  // A norm's weight and, for LayerNorm, bias; -1 offsets where the block has no such norm.
  auto add_norm = [&](const std::string& name, bool present, int64_t& w, int64_t& b) {
    w = present ? add_slot(name + ".weight", {C}, false) : -1;
    b = present && blk.norm_bias ? add_slot(name + ".bias", {C}, false) : -1;
  };
  wte_ = add_slot("embed.tokens", {V, C}, true);
  if (blk.position == PositionKind::learned)
    wpe_ = add_slot("embed.positions", {cfg_.max_position_embeddings, C}, true);
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    LayerSlots s{};
    add_norm(p + "norm1", blk.pre_norm(), s.norm1_w, s.norm1_b);
    s.qkv_w = add_slot(p + "attn.qkv.weight", {cfg_.qkv_dim(), C}, true);
    s.qkv_b = blk.qkv_bias ? add_slot(p + "attn.qkv.bias", {cfg_.qkv_dim()}, false) : -1;
    // Per head: one head_dim weight shared by the heads; whole: one weight over all the heads.
    const bool qk_norm = blk.qk_norm != QkNorm::none, whole = blk.qk_norm == QkNorm::whole;
    const int64_t D = cfg_.head_dim;
    s.q_norm_w = qk_norm ? add_slot(p + "attn.q_norm.weight", {whole ? cfg_.n_heads * D : D}, false) : -1;
    s.k_norm_w = qk_norm ? add_slot(p + "attn.k_norm.weight", {whole ? cfg_.n_kv_heads * D : D}, false) : -1;
    s.o_w = add_slot(p + "attn.out.weight", {C, cfg_.n_heads * cfg_.head_dim}, true);
    s.o_b = blk.attn_out_bias ? add_slot(p + "attn.out.bias", {C}, false) : -1;
    add_norm(p + "attn.post_norm", blk.post_norm(), s.attn_post_w, s.attn_post_b);
    add_norm(p + "norm2", blk.pre_norm(), s.norm2_w, s.norm2_b);
    s.up_w = add_slot(p + "mlp.up.weight", {cfg_.mlp_in_dim(), C}, true);  // gated: [gate | up]
    s.up_b = blk.mlp_bias ? add_slot(p + "mlp.up.bias", {cfg_.mlp_in_dim()}, false) : -1;
    s.down_w = add_slot(p + "mlp.down.weight", {C, I}, true);
    s.down_b = blk.mlp_bias ? add_slot(p + "mlp.down.bias", {C}, false) : -1;
    add_norm(p + "mlp.post_norm", blk.post_norm(), s.mlp_post_w, s.mlp_post_b);
    layers_.push_back(s);
  }
  add_norm("norm_final", true, normf_w_, normf_b_);
  if (heads_.lm_head && !cfg_.tie_word_embeddings) lm_head_ = add_slot("lm_head.weight", {V, C}, true);
  if (heads_.score_head) score_ = add_slot("score.weight", {cfg_.num_labels, C}, true);
  const int64_t total = slots_.back().offset + slots_.back().numel;
  params_ = DeviceBuffer<float>(be_->device(), total);
  grads_ = DeviceBuffer<float>(be_->device(), total);
  if (blk.position == PositionKind::rope) {
    inv_freq_ = rope_inv_freq(cfg_);
    if (cfg_.rope_scaling.type == "longrope") inv_freq_long_ = rope_inv_freq(cfg_, /*long_factors=*/true);
    if (!cfg_.layer_local_rope.empty()) {  // Gemma 3's sliding layers: their own base, unscaled
      ModelConfig local = cfg_;
      local.rope_theta = cfg_.rope_local_theta;
      local.rope_scaling = RopeScaling{};
      inv_freq_local_ = rope_inv_freq(local);
    }
  }
  for (const ParamSlot& s : slots_)  // unit norm weights, so a fresh model is sane
    if (is_norm_weight(s)) std::fill_n(params_.data() + s.offset, s.numel, norm_weight_unit());
}

std::vector<Transformer::RopeRun> Transformer::rope_runs(const std::vector<int32_t>& positions,
                                                         const std::vector<int64_t>& seq_end) const {
  const int64_t N = static_cast<int64_t>(positions.size());
  if (inv_freq_long_.empty()) return {{0, N, false}};
  std::vector<RopeRun> runs;
  for (int64_t r = 0; r < N;) {
    const int64_t e = seq_end[r];
    const bool lng = positions[e - 1] + 1 > cfg_.rope_scaling.original_max_position_embeddings;
    if (!runs.empty() && runs.back().long_factors == lng) runs.back().end = e;
    else runs.push_back({r, e, lng});
    r = e;
  }
  return runs;
}

void Transformer::rope_layer(float* qkv, const int32_t* pos_d, const std::vector<RopeRun>& runs,
                             const float* inv_freq_d, const float* long_d, const float* local_d, int64_t l,
                             bool backward) const {
  const int64_t QKV = cfg_.qkv_dim();
  const int heads = static_cast<int>(cfg_.n_heads + cfg_.n_kv_heads), D = static_cast<int>(cfg_.head_dim);
  const int rot = static_cast<int>(cfg_.rotary_dim);
  const float mscale = cfg_.rope_scaling.type == "longrope" ? static_cast<float>(cfg_.rope_scaling.attention_factor) : 1.0f;
  for (const RopeRun& r : runs) {
    const float* f = cfg_.local_rope(l) ? local_d : r.long_factors ? long_d : inv_freq_d;
    float* x = qkv + r.begin * QKV;
    if (backward) be_->rope_backward(x, pos_d + r.begin, f, r.end - r.begin, QKV, heads, D, rot, mscale);
    else be_->rope_forward(x, pos_d + r.begin, f, r.end - r.begin, QKV, heads, D, rot, mscale);
  }
}

// One past the last row of each row's packed sequence (rows of a sequence are contiguous).
static std::vector<int64_t> sequence_ends(const Batch& b) {
  std::vector<int64_t> end(b.B * b.T);
  for (int64_t row = 0; row < b.B; ++row)
    for (int64_t t = b.T - 1; t >= 0; --t) {
      const int64_t q = row * b.T + t;
      const bool last = t + 1 == b.T || b.seg_start[q + 1] != b.seg_start[q];
      end[q] = last ? q + 1 : end[q + 1];
    }
  return end;
}

float Transformer::norm_weight_unit() const {
  return cfg_.block.norm == NormKind::rmsnorm_offset ? 0.0f : 1.0f;  // 1 + w = 1
}

void Transformer::set_backend(const kernels::Backend& backend) {
  if (&backend.device() != &be_->device()) {
    params_ = params_.on(backend.device());
    grads_ = grads_.on(backend.device());
  }
  be_ = &backend;
}

const ParamSlot& Transformer::slot(const std::string& name) const {
  for (const auto& s : slots_)
    if (s.name == name) return s;
  throw LogicError("no parameter named " + name);
}

int64_t Transformer::lm_weight_offset() const { return lm_head_ >= 0 ? lm_head_ : wte_; }

void Transformer::init_random(uint64_t seed, float std) {
  Rng rng(seed, /*stream=*/1);
  const float proj_std = std / std::sqrt(2.0f * static_cast<float>(cfg_.n_layers));
  for (const auto& s : slots_) {
    float* p = params_.data() + s.offset;
    if (s.shape.size() == 1) {  // biases and norm weights
      std::fill_n(p, s.numel, is_norm_weight(s) ? norm_weight_unit() : 0.0f);
      continue;
    }
    // GPT-2 scales the residual-stream output projections (HF GPT2PreTrainedModel._init_weights).
    const bool residual_proj = cfg_.family == ModelFamily::gpt2 &&
                               (s.name.ends_with("attn.out.weight") || s.name.ends_with("mlp.down.weight"));
    const float sd = residual_proj ? proj_std : std;
    for (int64_t i = 0; i < s.numel; ++i) p[i] = static_cast<float>(rng.normal()) * sd;
  }
}

void Transformer::zero_grad() { be_->fill_zero(grads_.data(), static_cast<int64_t>(grads_.size())); }

double Transformer::forward_flops(int64_t n_tokens, int64_t n_scored, double mean_attended) const {
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t per_layer = cfg_.qkv_dim() * C + C * cfg_.n_heads * cfg_.head_dim +
                            (cfg_.block.gated_mlp() ? 3 : 2) * I * C;
  double f = 2.0 * static_cast<double>(per_layer) * cfg_.n_layers * n_tokens;
  f += 2.0 * 2.0 * n_tokens * mean_attended * cfg_.n_heads * cfg_.head_dim * cfg_.n_layers;  // QK^T, PV
  if (heads_.lm_head) f += 2.0 * static_cast<double>(n_scored) * C * cfg_.vocab_size;
  return f;
}

k::AttentionShape attention_shape(const ModelConfig& cfg, int64_t B, int64_t T) {
  const float scale = cfg.query_pre_attn_scalar > 0 ? static_cast<float>(1.0 / std::sqrt(cfg.query_pre_attn_scalar)) : 0.0f;
  return {B, T, static_cast<int>(cfg.n_heads), static_cast<int>(cfg.n_kv_heads), static_cast<int>(cfg.head_dim),
          static_cast<int>(cfg.sliding_window), scale, cfg.block.attn_softcap};
}

// ---- workspace ---------------------------------------------------------------------------------

Workspace::Workspace(const ModelConfig& cfg, int64_t B, int64_t T, int64_t S, int64_t H, int64_t chunk)
    : max_B(B), max_T(T), max_scored(S), max_head(H), vocab_chunk(std::min(chunk, cfg.vocab_size)) {
  const int64_t N = B * T, C = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t A = cfg.n_heads * cfg.head_dim;
  const int64_t mlp_in_w = cfg.mlp_in_dim();
  const bool ln = cfg.block.norm == NormKind::layernorm;
  const bool pre = cfg.block.pre_norm(), post = cfg.block.post_norm();
  const bool qk_norm = cfg.block.qk_norm != QkNorm::none;
  // A norm's output (N, C), mean (N, LayerNorm only) and rstd (N), or -1s where it is absent.
  auto reserve_norm = [&](const std::string& name, bool present, std::vector<int>& out, std::vector<int>& mean,
                          std::vector<int>& rstd) {
    out.push_back(present ? arena_.reserve(name, {N, C}) : -1);
    mean.push_back(present && ln ? arena_.reserve(name + "_mean", {N}) : -1);
    rstd.push_back(present ? arena_.reserve(name + "_rstd", {N}) : -1);
  };
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    x_in.push_back(arena_.reserve(p + "x_in", {N, C}));
    reserve_norm(p + "norm1", pre, norm1, norm1_mean, norm1_rstd);
    qkv.push_back(arena_.reserve(p + "qkv", {N, cfg.qkv_dim()}));
    q_pre.push_back(qk_norm ? arena_.reserve(p + "q_pre", {N * cfg.n_heads, cfg.head_dim}) : -1);
    q_rstd.push_back(qk_norm ? arena_.reserve(p + "q_rstd", {N * cfg.n_heads}) : -1);
    k_pre.push_back(qk_norm ? arena_.reserve(p + "k_pre", {N * cfg.n_kv_heads, cfg.head_dim}) : -1);
    k_rstd.push_back(qk_norm ? arena_.reserve(p + "k_rstd", {N * cfg.n_kv_heads}) : -1);
    att.push_back(arena_.reserve(p + "att", {N, A}));
    att_lse.push_back(arena_.reserve(p + "att_lse", {B, cfg.n_heads, T}));
    reserve_norm(p + "attn_out", post, attn_out, attn_out_mean, attn_out_rstd);
    x_mid.push_back(arena_.reserve(p + "x_mid", {N, C}));
    reserve_norm(p + "norm2", pre, norm2, norm2_mean, norm2_rstd);
    mlp_in.push_back(arena_.reserve(p + "mlp_in", {N, mlp_in_w}));
    mlp_act.push_back(arena_.reserve(p + "mlp_act", {N, I}));
    reserve_norm(p + "mlp_out", post, mlp_out, mlp_out_mean, mlp_out_rstd);
  }
  x_final = arena_.reserve("x_final", {N, C});
  normf = arena_.reserve("norm_final", {N, C});
  normf_mean = ln ? arena_.reserve("norm_final_mean", {N}) : -1;
  normf_rstd = arena_.reserve("norm_final_rstd", {N});
  h_scored = arena_.reserve("h_scored", {S, C});
  lse_scored = arena_.reserve("lse_scored", {S});
  entropy_scored = arena_.reserve("entropy_scored", {S});
  h_head = arena_.reserve("h_head", {H, C});
  lm_scratch = arena_.reserve("lm_scratch", {S, vocab_chunk});
  d_x = arena_.reserve("d_x", {N, C});
  d_norm = arena_.reserve("d_norm", {N, C});
  d_qkv = arena_.reserve("d_qkv", {N, cfg.qkv_dim()});
  d_att = arena_.reserve("d_att", {N, A});
  d_mlp_in = arena_.reserve("d_mlp_in", {N, mlp_in_w});
  d_mlp_act = arena_.reserve("d_mlp_act", {N, I});
  d_h_scored = arena_.reserve("d_h_scored", {S, C});
  d_h_head = arena_.reserve("d_h_head", {H, C});
  att_rows = arena_.reserve("att_rows", {N, A});
  d_x_rows = arena_.reserve("d_x_rows", {N, C});
  if (post) d_branch_out = arena_.reserve("d_branch_out", {N, C});
  if (qk_norm) qk_heads = arena_.reserve("qk_heads", {N * cfg.n_heads, cfg.head_dim});
  attention_shape_ = attention_shape(cfg, B, T);
}

void Workspace::bind(const kernels::Backend& backend) {
  if (backend_) {
    RLHF_CHECK(backend_ == &backend, std::string("a workspace allocated for the ") + backend_->name() +
                                         " backend used by a model on the " + backend.name() + " one");
    return;
  }
  att_scratch = arena_.reserve("att_scratch", {backend.attention_scratch_floats(attention_shape_)});
  arena_.allocate(backend.device());
  backend_ = &backend;
}

// ---- forward ---------------------------------------------------------------------------------------

// RMSNorm with (1 + w) is RMSNorm with the weight 1 + w, whose gradient is w's. (A buffer per
// thread: decode may run on several threads at once; reused, so no allocation per norm call.)
static const float* offset_weight(const float* w, int64_t C) {
  thread_local std::vector<float> w1;
  w1.resize(C);
  for (int64_t c = 0; c < C; ++c) w1[c] = 1.0f + w[c];
  return w1.data();
}

void Transformer::norm_forward(float* out, float* mean, float* rstd, const float* in, int64_t w, int64_t b,
                               int64_t N, int64_t C) {
  if (C == 0) C = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.norm_eps);
  switch (cfg_.block.norm) {
    case NormKind::layernorm:
      be_->layernorm_forward(out, mean, rstd, in, P(w), P(b), N, C, eps);
      break;
    case NormKind::rmsnorm:
      be_->rmsnorm_forward(out, rstd, in, P(w), N, C, eps);
      break;
    case NormKind::rmsnorm_offset:
      be_->rmsnorm_forward(out, rstd, in, offset_weight(P(w), C), N, C, eps);
      break;
  }
}

void Transformer::norm_backward(float* dinp, const float* dout, const float* in, int64_t w, int64_t b,
                                const float* mean, const float* rstd, int64_t N, int64_t C) {
  if (C == 0) C = cfg_.hidden_size;
  switch (cfg_.block.norm) {
    case NormKind::layernorm:
      be_->layernorm_backward(dinp, G(w), G(b), dout, in, P(w), mean, rstd, N, C);
      break;
    case NormKind::rmsnorm:
      be_->rmsnorm_backward(dinp, G(w), dout, in, P(w), rstd, N, C);
      break;
    case NormKind::rmsnorm_offset:
      be_->rmsnorm_backward(dinp, G(w), dout, in, offset_weight(P(w), C), rstd, N, C);
      break;
  }
}

// The heads are gathered into rows of their own, normalised as one (N * nh, head_dim) matrix (per
// head) or (N, nh * head_dim) matrix (whole), and put back (q|k|v rows interleave them with the
// values).
static void copy_heads(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t N, int64_t W) {
  for (int64_t n = 0; n < N; ++n) std::copy_n(src + n * src_stride, W, dst + n * dst_stride);
}

void Transformer::qk_norm_forward(float* qkv, int64_t N, int64_t h0, int64_t nh, int64_t w, float* pre, float* rstd,
                                  float* scratch) {
  const int64_t D = cfg_.head_dim, QKV = cfg_.qkv_dim(), W = nh * D;
  const bool whole = cfg_.block.qk_norm == QkNorm::whole;
  copy_heads(pre, W, qkv + h0 * D, QKV, N, W);
  norm_forward(scratch, nullptr, rstd, pre, w, -1, whole ? N : N * nh, whole ? W : D);
  copy_heads(qkv + h0 * D, QKV, scratch, W, N, W);
}

void Transformer::qk_norm_backward(float* d_qkv, int64_t N, int64_t h0, int64_t nh, int64_t w, const float* pre,
                                   const float* rstd, float* d_heads, float* d_pre) {
  const int64_t D = cfg_.head_dim, QKV = cfg_.qkv_dim(), W = nh * D;
  const bool whole = cfg_.block.qk_norm == QkNorm::whole;
  copy_heads(d_heads, W, d_qkv + h0 * D, QKV, N, W);
  be_->fill_zero(d_pre, N * W);
  norm_backward(d_pre, d_heads, pre, w, -1, nullptr, rstd, whole ? N : N * nh, whole ? W : D);
  copy_heads(d_qkv + h0 * D, QKV, d_pre, W, N, W);
}

void Transformer::activation_forward(float* act, const float* mlp_in, int64_t N) const {
  const int64_t I = cfg_.intermediate_size;
  switch (cfg_.block.mlp) {
    case MlpKind::gelu_tanh:
      be_->gelu_forward(act, mlp_in, N * I);
      break;
    case MlpKind::swiglu:
      be_->swiglu_forward(act, mlp_in, N, I);
      break;
    case MlpKind::geglu:
      be_->geglu_forward(act, mlp_in, N, I);
      break;
  }
}

void Transformer::activation_backward(float* d_mlp_in, const float* d_act, const float* mlp_in, int64_t N) const {
  const int64_t I = cfg_.intermediate_size;
  const k::Grad fresh = k::Grad::overwrite;
  switch (cfg_.block.mlp) {
    case MlpKind::gelu_tanh:
      be_->gelu_backward(d_mlp_in, d_act, mlp_in, N * I, fresh);
      break;
    case MlpKind::swiglu:
      be_->swiglu_backward(d_mlp_in, d_act, mlp_in, N, I, fresh);
      break;
    case MlpKind::geglu:
      be_->geglu_backward(d_mlp_in, d_act, mlp_in, N, I, fresh);
      break;
  }
}

static float* slice_or_null(Arena& a, int id) { return id < 0 ? nullptr : a.data(id); }

// The rows the heads read (the position before each scored token, each head position), unless
// that is every row or none.
static void select_out_rows(const Batch& batch, std::vector<int64_t>& rows, std::vector<int64_t>& row_of) {
  const int64_t N = batch.B * batch.T;
  row_of.assign(N, -1);
  for (int64_t q : batch.scored) row_of[q - 1] = 0;
  for (int64_t p : batch.head_at) row_of[p] = 0;
  rows.clear();
  for (int64_t p = 0; p < N; ++p)
    if (row_of[p] == 0) {
      row_of[p] = static_cast<int64_t>(rows.size());
      rows.push_back(p);
    }
  if (rows.empty() || static_cast<int64_t>(rows.size()) == N) {
    rows.clear();
    row_of.clear();
  }
}

Scores Transformer::forward(const Batch& batch, Workspace& ws, const ForwardOptions& opt) {
  const BlockShape& blk = cfg_.block;
  batch.validate(cfg_.vocab_size, cfg_.max_sequence_length());
  RLHF_CHECK(batch.B <= ws.max_B && batch.T <= ws.max_T && batch.n_scored() <= ws.max_scored &&
                 batch.n_head() <= ws.max_head,
             "Batch larger than the workspace it runs in");
  ws.bind(*be_);
  ws.io_.begin_pass(be_->device());
  RLHF_CHECK(batch.scored.empty() || heads_.lm_head, "scored positions need an LM head");
  RLHF_CHECK(batch.head_at.empty() || heads_.score_head, "head positions need a scalar head");

  Arena& a = ws.arena_;
  const int64_t N = batch.B * batch.T, C = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t QKV = cfg_.qkv_dim(), A = cfg_.n_heads * cfg_.head_dim;
  const bool pre = blk.pre_norm(), post = blk.post_norm();
  const k::AttentionShape as = attention_shape(cfg_, batch.B, batch.T);

  // Past the last layer's attention only the rows the heads read go on (a policy's prompt rows,
  // all but one row per sequence of a reward model), in ws.out_rows order.
  select_out_rows(batch, ws.out_rows, ws.out_row_of);
  const bool compact = !ws.out_rows.empty();
  const int64_t n_out = compact ? static_cast<int64_t>(ws.out_rows.size()) : N;
  // Host arrays every layer reads, on the device once per pass.
  const int32_t* pos_d = ws.io_.stage(batch.positions);
  const int32_t* seg_d = ws.io_.stage(batch.seg_start);
  const float* inv_freq_d = ws.io_.stage(inv_freq_);
  const float* inv_freq_local_d = inv_freq_local_.empty() ? nullptr : ws.io_.stage(inv_freq_local_);
  const float* inv_freq_long_d = inv_freq_long_.empty() ? nullptr : ws.io_.stage(inv_freq_long_);
  const std::vector<RopeRun> runs =
      rope_runs(batch.positions, inv_freq_long_.empty() ? std::vector<int64_t>{} : sequence_ends(batch));
  const int64_t* rows_d = ws.io_.stage(ws.out_rows);

  float* x = a.data(ws.x_in[0]);
  be_->embedding_forward(x, ws.io_.stage(batch.tokens), pos_d, P(wte_), P(wpe_), N, C);
  if (blk.embed_scale != 1.0f) be_->scale_inplace(x, blk.embed_scale, N * C);
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    const LayerSlots& s = layers_[l];
    float* x_in = a.data(ws.x_in[l]);
    float* h = pre ? a.data(ws.norm1[l]) : x_in;
    if (pre)
      norm_forward(h, slice_or_null(a, ws.norm1_mean[l]), a.data(ws.norm1_rstd[l]), x_in, s.norm1_w, s.norm1_b, N);
    float* qkv = a.data(ws.qkv[l]);
    be_->matmul_forward(qkv, h, P(s.qkv_w), P(s.qkv_b), N, C, QKV);
    if (blk.qk_norm != QkNorm::none) {
      qk_norm_forward(qkv, N, 0, as.n_heads, s.q_norm_w, a.data(ws.q_pre[l]), a.data(ws.q_rstd[l]),
                      a.data(ws.qk_heads));
      qk_norm_forward(qkv, N, as.n_heads, as.n_kv_heads, s.k_norm_w, a.data(ws.k_pre[l]), a.data(ws.k_rstd[l]),
                      a.data(ws.qk_heads));
    }
    if (cfg_.rotates(l)) {
      // The query heads and then the key heads, adjacent in a qkv row: one rotation of both.
      rope_layer(qkv, pos_d, runs, inv_freq_d, inv_freq_long_d, inv_freq_local_d, l, /*backward=*/false);
    }
    float* att = a.data(ws.att[l]);
    be_->attention_forward(att, a.data(ws.att_lse[l]), qkv, seg_d, layer_attention(as, l), a.data(ws.att_scratch));
    const bool last = l + 1 == cfg_.n_layers;
    const int64_t n = last ? n_out : N;  // rows from here on
    float* x_mid = a.data(ws.x_mid[l]);
    // The branch's output goes straight into x_mid, or first through its post norm.
    float* att_out = post ? a.data(ws.attn_out[l]) : x_mid;
    if (last && compact) {
      float* att_r = a.data(ws.att_rows);
      be_->gather_rows(att_r, att, rows_d, n, A, false);
      be_->matmul_forward(att_out, att_r, P(s.o_w), P(s.o_b), n, A, C);
    } else {
      be_->matmul_forward(att_out, att, P(s.o_w), P(s.o_b), N, A, C);
    }
    if (post)
      norm_forward(x_mid, slice_or_null(a, ws.attn_out_mean[l]), a.data(ws.attn_out_rstd[l]), att_out,
                   s.attn_post_w, s.attn_post_b, n);
    if (last && compact)
      be_->gather_rows(x_mid, x_in, rows_d, n, C, true);
    else
      be_->add_inplace(x_mid, x_in, N * C);
    float* h2 = pre ? a.data(ws.norm2[l]) : x_mid;
    if (pre)
      norm_forward(h2, slice_or_null(a, ws.norm2_mean[l]), a.data(ws.norm2_rstd[l]), x_mid, s.norm2_w, s.norm2_b, n);
    float* mlp_in = a.data(ws.mlp_in[l]);
    float* act = a.data(ws.mlp_act[l]);
    be_->matmul_forward(mlp_in, h2, P(s.up_w), P(s.up_b), n, C, cfg_.mlp_in_dim());
    activation_forward(act, mlp_in, n);
    float* x_out = last ? a.data(ws.x_final) : a.data(ws.x_in[l + 1]);
    float* mlp_out = post ? a.data(ws.mlp_out[l]) : x_out;
    be_->matmul_forward(mlp_out, act, P(s.down_w), P(s.down_b), n, I, C);
    if (post)
      norm_forward(x_out, slice_or_null(a, ws.mlp_out_mean[l]), a.data(ws.mlp_out_rstd[l]), mlp_out, s.mlp_post_w,
                   s.mlp_post_b, n);
    be_->add_inplace(x_out, x_mid, n * C);
  }
  float* hf = a.data(ws.normf);  // n_out rows
  norm_forward(hf, slice_or_null(a, ws.normf_mean), a.data(ws.normf_rstd), a.data(ws.x_final), normf_w_,
               normf_b_, n_out);

  Scores out;
  const int64_t S = batch.n_scored();
  ws.lm_logits_kept = S > 0 && ws.vocab_chunk >= cfg_.vocab_size;
  if (S > 0) {
    float* hs = a.data(ws.h_scored);
    std::vector<int32_t> targets(S);
    std::vector<int64_t> from(S);
    for (int64_t i = 0; i < S; ++i) {
      const int64_t q = batch.scored[i];
      from[i] = ws.out_row(q - 1);  // logits at q-1 predict token q
      targets[i] = batch.tokens[q];
    }
    be_->gather_rows(hs, hf, ws.io_.stage(from), S, C, false);
    out.logp.resize(S);
    if (opt.want_entropy) out.entropy.resize(S);
    last_had_entropy_ = opt.want_entropy;
    float* logp = ws.io_.output(out.logp.data(), S);
    be_->logprob_forward(logp, a.data(ws.lse_scored), opt.want_entropy ? a.data(ws.entropy_scored) : nullptr, hs,
                         P(lm_weight_offset()), ws.io_.stage(targets), S, C, cfg_.vocab_size, 1.0f / opt.temperature,
                         a.data(ws.lm_scratch), ws.vocab_chunk, blk.final_softcap);
    ws.io_.download(out.logp.data(), logp, S);
    if (opt.want_entropy) ws.io_.download(out.entropy.data(), a.data(ws.entropy_scored), S);
    if (opt.want_logit_mean) {
      const float* W = P(lm_weight_offset());
      const int64_t V = cfg_.vocab_size;
      const double cap = blk.final_softcap;
      std::vector<double> sum(S, 0.0);
      if (cap > 0) {
        // Soft-capped logits are not linear in W: they are formed, a vocabulary chunk at a time,
        // by the LM head's product in lm_scratch (whose logits the backward then recomputes).
        float* z = a.data(ws.lm_scratch);
        for (int64_t v0 = 0; v0 < V; v0 += ws.vocab_chunk) {
          const int64_t cs = std::min(ws.vocab_chunk, V - v0);
          be_->matmul_forward(z, hs, W + v0 * C, nullptr, S, C, cs);
          for (int64_t i = 0; i < S; ++i)
            for (int64_t j = 0; j < cs; ++j) sum[i] += cap * std::tanh(z[i * cs + j] / cap);
        }
        ws.lm_logits_kept = false;
      } else {
        // mean_v z_v = inv_temp * h . (mean_v W_v): one pass over W instead of V logits per row.
        std::vector<double> wbar(C, 0.0);
        for (int64_t v = 0; v < V; ++v)
          for (int64_t c = 0; c < C; ++c) wbar[c] += W[v * C + c];
        for (int64_t i = 0; i < S; ++i)
          for (int64_t c = 0; c < C; ++c) sum[i] += hs[i * C + c] * wbar[c];
      }
      out.logit_mean.resize(S);
      for (int64_t i = 0; i < S; ++i)
        out.logit_mean[i] = static_cast<float>(sum[i] / static_cast<double>(V) / opt.temperature);
    }
  }
  const int64_t H = batch.n_head();
  if (H > 0) {
    float* hh = a.data(ws.h_head);
    std::vector<int64_t> from(H);
    for (int64_t i = 0; i < H; ++i) from[i] = ws.out_row(batch.head_at[i]);
    be_->gather_rows(hh, hf, ws.io_.stage(from), H, C, false);
    out.head.resize(H);
    // Only the first label of the score head is used (num_labels = 1 for reward and value models).
    float* head = ws.io_.output(out.head.data(), H);
    be_->matmul_forward(head, hh, P(score_), nullptr, H, C, 1);
    ws.io_.download(out.head.data(), head, H);
  }
  last_temperature_ = opt.temperature;
  return out;
}

// ---- backward ----------------------------------------------------------------------------------------

void Transformer::backward(const Batch& batch, Workspace& ws, const std::vector<float>& dlogp,
                           const std::vector<float>& dhead, const std::vector<float>& dentropy) {
  Arena& a = ws.arena_;
  const int64_t N = batch.B * batch.T, C = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t QKV = cfg_.qkv_dim(), A = cfg_.n_heads * cfg_.head_dim;
  const BlockShape& blk = cfg_.block;
  const bool pre = blk.pre_norm(), post = blk.post_norm();
  const k::AttentionShape as = attention_shape(cfg_, batch.B, batch.T);
  const int64_t S = batch.n_scored(), H = batch.n_head();
  RLHF_CHECK(dlogp.empty() || static_cast<int64_t>(dlogp.size()) == S, "dlogp must have one entry per scored token");
  RLHF_CHECK(dhead.empty() || static_cast<int64_t>(dhead.size()) == H, "dhead must have one entry per head position");
  RLHF_CHECK(dentropy.empty() || (static_cast<int64_t>(dentropy.size()) == S && last_had_entropy_),
             "dentropy needs one entry per scored token and a forward with want_entropy");

  ws.io_.begin_pass(be_->device());
  // The forward's rows past the last layer's attention (see there).
  const bool compact = !ws.out_rows.empty();
  const int64_t n_out = compact ? static_cast<int64_t>(ws.out_rows.size()) : N;
  // Host arrays every layer reads, on the device once per pass.
  const int32_t* pos_d = ws.io_.stage(batch.positions);
  const int32_t* seg_d = ws.io_.stage(batch.seg_start);
  const float* inv_freq_d = ws.io_.stage(inv_freq_);
  const float* inv_freq_local_d = inv_freq_local_.empty() ? nullptr : ws.io_.stage(inv_freq_local_);
  const float* inv_freq_long_d = inv_freq_long_.empty() ? nullptr : ws.io_.stage(inv_freq_long_);
  const std::vector<RopeRun> runs =
      rope_runs(batch.positions, inv_freq_long_.empty() ? std::vector<int64_t>{} : sequence_ends(batch));
  const int64_t* rows_d = ws.io_.stage(ws.out_rows);

  // d loss / d final hidden, gathered back from the scored and head rows.
  float* d_hf = a.data(ws.d_norm);
  be_->fill_zero(d_hf, n_out * C);
  if ((!dlogp.empty() || !dentropy.empty()) && S > 0) {
    std::vector<int32_t> targets(S);
    for (int64_t i = 0; i < S; ++i) targets[i] = batch.tokens[batch.scored[i]];
    float* dhs = a.data(ws.d_h_scored);
    be_->fill_zero(dhs, S * C);
    be_->logprob_backward(dhs, G(lm_weight_offset()), dlogp.empty() ? nullptr : ws.io_.stage(dlogp),
                          a.data(ws.h_scored), P(lm_weight_offset()), ws.io_.stage(targets), a.data(ws.lse_scored),
                          S, C, cfg_.vocab_size, 1.0f / last_temperature_, a.data(ws.lm_scratch), ws.vocab_chunk,
                          dentropy.empty() ? nullptr : ws.io_.stage(dentropy), a.data(ws.entropy_scored),
                          ws.lm_logits_kept, blk.final_softcap);
    ws.lm_logits_kept = false;  // the backward overwrote them
    for (int64_t i = 0; i < S; ++i) be_->add_inplace(d_hf + ws.out_row(batch.scored[i] - 1) * C, dhs + i * C, C);
  }
  if (!dhead.empty() && H > 0) {
    float* dhh = a.data(ws.d_h_head);
    be_->fill_zero(dhh, H * C);
    be_->matmul_backward(dhh, G(score_), nullptr, ws.io_.stage(dhead), a.data(ws.h_head), P(score_), H, C, 1);
    for (int64_t i = 0; i < H; ++i) be_->add_inplace(d_hf + ws.out_row(batch.head_at[i]) * C, dhh + i * C, C);
  }

  // d loss / d residual stream: of the last layer's n_out rows down to its attention, then of all.
  float* dx = a.data(ws.d_x);
  float* dx_out = compact ? a.data(ws.d_x_rows) : dx;
  be_->fill_zero(dx_out, n_out * C);
  norm_backward(dx_out, d_hf, a.data(ws.x_final), normf_w_, normf_b_, slice_or_null(a, ws.normf_mean),
                a.data(ws.normf_rstd), n_out);

  float* d_norm = a.data(ws.d_norm);
  float* d_qkv = a.data(ws.d_qkv);
  float* d_att = a.data(ws.d_att);
  float* d_in = a.data(ws.d_mlp_in);
  float* d_act = a.data(ws.d_mlp_act);
  // With post norms, d of a branch's output before its norm (the norm's backward adds into it).
  auto post_norm_backward = [&](const float* d_sum, int out, int mean, int rstd, int64_t w, int64_t b, int64_t n) {
    float* d_branch = a.data(ws.d_branch_out);
    be_->fill_zero(d_branch, n * C);
    norm_backward(d_branch, d_sum, a.data(out), w, b, slice_or_null(a, mean), a.data(rstd), n);
    return d_branch;
  };
  for (int64_t l = cfg_.n_layers - 1; l >= 0; --l) {
    const LayerSlots& s = layers_[l];
    // MLP branch: x_out = x_mid + post2(down(act(up(norm2(x_mid)))))
    // (Temporaries are overwritten, not accumulated into: no zeroing, no reading them back.)
    const k::Grad fresh = k::Grad::overwrite;
    const bool last = l + 1 == cfg_.n_layers, rows_only = last && compact;
    const int64_t n = last ? n_out : N;
    float* dxl = last ? dx_out : dx;
    const float* d_mlp_out = post ? post_norm_backward(dxl, ws.mlp_out[l], ws.mlp_out_mean[l], ws.mlp_out_rstd[l],
                                                       s.mlp_post_w, s.mlp_post_b, n)
                                  : dxl;
    be_->matmul_backward(d_act, G(s.down_w), G(s.down_b), d_mlp_out, a.data(ws.mlp_act[l]), P(s.down_w), n, I, C,
                       fresh);
    activation_backward(d_in, d_act, a.data(ws.mlp_in[l]), n);
    const float* h2 = a.data(pre ? ws.norm2[l] : ws.x_mid[l]);
    be_->matmul_backward(d_norm, G(s.up_w), G(s.up_b), d_in, h2, P(s.up_w), n, C, cfg_.mlp_in_dim(), fresh);
    if (pre)
      norm_backward(dxl, d_norm, a.data(ws.x_mid[l]), s.norm2_w, s.norm2_b, slice_or_null(a, ws.norm2_mean[l]),
                    a.data(ws.norm2_rstd[l]), n);
    else
      be_->add_inplace(dxl, d_norm, n * C);
    // Attention branch: x_mid = x_in + post1(out(attention(qkv(norm1(x_in)))))
    const float* d_att_out = post ? post_norm_backward(dxl, ws.attn_out[l], ws.attn_out_mean[l],
                                                       ws.attn_out_rstd[l], s.attn_post_w, s.attn_post_b, n)
                                  : dxl;
    if (rows_only) {
      // The rows' d att (in d_qkv, free until below) and d x_mid go back to their places among
      // all rows; the other rows' are zero.
      be_->matmul_backward(d_qkv, G(s.o_w), G(s.o_b), d_att_out, a.data(ws.att_rows), P(s.o_w), n, A, C, fresh);
      be_->fill_zero(d_att, N * A);
      be_->fill_zero(dx, N * C);
      be_->scatter_add_rows(d_att, d_qkv, rows_d, n, A);
      be_->scatter_add_rows(dx, dxl, rows_d, n, C);
    } else {
      be_->matmul_backward(d_att, G(s.o_w), G(s.o_b), d_att_out, a.data(ws.att[l]), P(s.o_w), N, A, C, fresh);
    }
    be_->attention_backward(d_qkv, d_att, a.data(ws.att[l]), a.data(ws.att_lse[l]), a.data(ws.qkv[l]),
                          seg_d, layer_attention(as, l), a.data(ws.att_scratch));
    if (cfg_.rotates(l)) {
      rope_layer(d_qkv, pos_d, runs, inv_freq_d, inv_freq_long_d, inv_freq_local_d, l, /*backward=*/true);
    }
    if (blk.qk_norm != QkNorm::none) {  // d_att is free again
      qk_norm_backward(d_qkv, N, 0, as.n_heads, s.q_norm_w, a.data(ws.q_pre[l]), a.data(ws.q_rstd[l]), d_att,
                       a.data(ws.qk_heads));
      qk_norm_backward(d_qkv, N, as.n_heads, as.n_kv_heads, s.k_norm_w, a.data(ws.k_pre[l]), a.data(ws.k_rstd[l]),
                       d_att, a.data(ws.qk_heads));
    }
    const float* h = a.data(pre ? ws.norm1[l] : ws.x_in[l]);
    be_->matmul_backward(d_norm, G(s.qkv_w), G(s.qkv_b), d_qkv, h, P(s.qkv_w), N, C, QKV, fresh);
    if (pre)
      norm_backward(dx, d_norm, a.data(ws.x_in[l]), s.norm1_w, s.norm1_b, slice_or_null(a, ws.norm1_mean[l]),
                    a.data(ws.norm1_rstd[l]), N);
    else
      be_->add_inplace(dx, d_norm, N * C);
  }
  // x = embed_scale * wte[token] (there is no position table then: check_block_shape).
  if (blk.embed_scale != 1.0f) be_->scale_inplace(dx, blk.embed_scale, N * C);
  if (cfg_.padding_idx >= 0)  // transformers' padding_idx: the lookup of that row gets no gradient
    for (int64_t n = 0; n < N; ++n)
      if (batch.tokens[n] == cfg_.padding_idx) be_->fill_zero(dx + n * C, C);
  be_->embedding_backward(G(wte_), G(wpe_), dx, ws.io_.stage(batch.tokens), pos_d, N, C);
}

}  // namespace rlhf
