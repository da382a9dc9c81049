// The reference backend: every op of kernels.h as the plainest loops that state its maths,
// accumulated in double and rounded to float once per output, on one thread, on host memory.
// It is the oracle of the op tests (tests/kernels/test_backend_ops.cpp runs every backend
// against it) and a second backend that whole training runs can use (`--backend reference`).
// Speed is not a goal: no blocking, no prepacking (pack_weight returns nothing), no scratch.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf::kernels {
namespace {

constexpr double kGeluS = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// GPT-2's gelu_new, gelu(x) = 0.5 x (1 + tanh(u)), u = s (x + a x^3), and its derivative
// 0.5 (1 + t) + 0.5 x (1 - t^2) u',  t = tanh u,  u' = s (1 + 3 a x^2).
double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(kGeluS * (x + kGeluA * x * x * x))); }
double gelu_derivative(double x) {
  const double t = std::tanh(kGeluS * (x + kGeluA * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kGeluS * (1.0 + 3.0 * kGeluA * x * x);
}

void write_grad(float* dst, double g, Grad mode) {
  *dst = static_cast<float>(mode == Grad::add ? *dst + g : g);
}

void check_attention_shape(const AttentionShape& s) {
  RLHF_CHECK(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0 && s.head_dim > 0 && s.sliding_window >= 0,
             "attention: bad shape (n_heads " + std::to_string(s.n_heads) + ", n_kv_heads " +
                 std::to_string(s.n_kv_heads) + ", head_dim " + std::to_string(s.head_dim) + ")");
}

// The first key query t attends to: its sequence's start, or the window's.
int64_t first_key(int64_t seg_start, int64_t t, int window) {
  return window > 0 ? std::max<int64_t>(seg_start, t - window + 1) : seg_start;
}

// The scores' scale (1 / sqrt(head_dim) unless the shape gives one), in double.
double score_scale(const AttentionShape& s) {
  return s.scale > 0.0f ? static_cast<double>(s.scale) : 1.0 / std::sqrt(static_cast<double>(s.head_dim));
}

// Gemma 2's soft-cap of a score: cap tanh(z / cap); cap 0: z.
double soft_cap(double z, float cap) { return cap > 0.0f ? cap * std::tanh(z / cap) : z; }

// Softmax over the scaled scores of one query row: p (in place over scores), returns the lse.
double softmax_inplace(std::vector<double>& scores) {
  double m = -std::numeric_limits<double>::infinity();
  for (double s : scores) m = std::max(m, s);
  double z = 0;
  for (double s : scores) z += std::exp(s - m);
  const double lse = m + std::log(z);
  for (double& s : scores) s = std::exp(s - lse);
  return lse;
}

class ReferenceBackend final : public Backend {
 public:
  const char* name() const override { return "reference"; }
  const Device& device() const override { return host_device(); }

  // out = inp W^T + b.
  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                      int64_t OC, const PackedWeights*) const override {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < OC; ++o) {
        double s = bias ? bias[o] : 0.0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(inp[n * C + c]) * weight[o * C + c];
        out[n * OC + o] = static_cast<float>(s);
      }
  }
  std::unique_ptr<PackedWeights> pack_weight(const float*, int64_t, int64_t) const override { return nullptr; }
  // dinp = dout W; dW = dout^T inp; db = colsum dout.
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int64_t N, int64_t C, int64_t OC, Grad dinp_mode) const override {
    if (dinp)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          double s = 0;
          for (int64_t o = 0; o < OC; ++o) s += static_cast<double>(dout[n * OC + o]) * weight[o * C + c];
          write_grad(dinp + n * C + c, s, dinp_mode);
        }
    for (int64_t o = 0; o < OC; ++o) {
      for (int64_t c = 0; c < C; ++c) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) s += static_cast<double>(dout[n * OC + o]) * inp[n * C + c];
        write_grad(dweight + o * C + c, s, Grad::add);
      }
      if (dbias) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) s += dout[n * OC + o];
        write_grad(dbias + o, s, Grad::add);
      }
    }
  }

  void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                         const float* wpe, int64_t N, int64_t C) const override {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const double e = static_cast<double>(wte[tokens[n] * C + c]) + (wpe ? wpe[positions[n] * C + c] : 0.0);
        out[n * C + c] = static_cast<float>(e);
      }
  }
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                          const int32_t* positions, int64_t N, int64_t C) const override {
    // Sum every row's contributions to one table row in double before adding it in.
    std::vector<double> acc;
    auto scatter = [&](float* table, const int32_t* ids) {
      const int64_t rows = *std::max_element(ids, ids + N) + 1;
      acc.assign(rows * C, 0.0);
      std::vector<char> used(rows, 0);
      for (int64_t n = 0; n < N; ++n) {
        used[ids[n]] = 1;
        for (int64_t c = 0; c < C; ++c) acc[ids[n] * C + c] += dout[n * C + c];
      }
      for (int64_t r = 0; r < rows; ++r)
        if (used[r])
          for (int64_t c = 0; c < C; ++c) write_grad(table + r * C + c, acc[r * C + c], Grad::add);
    };
    if (N == 0) return;
    scatter(dwte, tokens);
    if (dwpe) scatter(dwpe, positions);
  }

  // Written from the chain rule on the unsimplified graph (mean, var, rstd).
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int64_t N, int64_t C, float eps) const override {
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      double mu = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mu += x[c];
      mu /= static_cast<double>(C);
      for (int64_t c = 0; c < C; ++c) var += (x[c] - mu) * (x[c] - mu);
      var /= static_cast<double>(C);
      const double r = 1.0 / std::sqrt(var + eps);
      for (int64_t c = 0; c < C; ++c)
        out[n * C + c] = static_cast<float>((x[c] - mu) * r * weight[c] + (bias ? bias[c] : 0.0));
      mean[n] = static_cast<float>(mu);
      rstd[n] = static_cast<float>(r);
    }
  }
  // Uses the forward's saved mean and rstd (the interface passes no eps to recompute them from).
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int64_t N,
                          int64_t C) const override {
    std::vector<double> dw(C, 0.0), db(C, 0.0), dxhat(C);
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      const double mu = mean[n], r = rstd[n];
      double dvar = 0, dmean = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double xhat = (x[c] - mu) * r;
        dxhat[c] = static_cast<double>(d[c]) * weight[c];
        dw[c] += d[c] * xhat;
        db[c] += d[c];
        dvar += dxhat[c] * (x[c] - mu) * -0.5 * r * r * r;
      }
      for (int64_t c = 0; c < C; ++c) dmean += -dxhat[c] * r;  // the var path sums to zero
      for (int64_t c = 0; c < C; ++c)
        write_grad(dinp + n * C + c, dxhat[c] * r + dvar * 2.0 * (x[c] - mu) / C + dmean / C, Grad::add);
    }
    for (int64_t c = 0; c < C; ++c) {
      write_grad(dweight + c, dw[c], Grad::add);
      if (dbias) write_grad(dbias + c, db[c], Grad::add);
    }
  }

  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C,
                       float eps) const override {
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      double ms = 0;
      for (int64_t c = 0; c < C; ++c) ms += static_cast<double>(x[c]) * x[c];
      const double r = 1.0 / std::sqrt(ms / static_cast<double>(C) + eps);
      for (int64_t c = 0; c < C; ++c) out[n * C + c] = static_cast<float>(x[c] * r * weight[c]);
      rstd[n] = static_cast<float>(r);
    }
  }
  // rstd = (ms + eps)^(-1/2): d rstd / d x_c = -rstd^3 x_c / C. Uses the saved rstd (the
  // interface passes no eps to recompute it from).
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                        const float* rstd, int64_t N, int64_t C) const override {
    std::vector<double> dw(C, 0.0);
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      const double r = rstd[n];
      double drstd = 0;
      for (int64_t c = 0; c < C; ++c) {
        dw[c] += static_cast<double>(d[c]) * x[c] * r;
        drstd += static_cast<double>(d[c]) * weight[c] * x[c];
      }
      for (int64_t c = 0; c < C; ++c)
        write_grad(dinp + n * C + c, static_cast<double>(d[c]) * weight[c] * r + drstd * (-r * r * r * x[c] / C),
                   Grad::add);
    }
    for (int64_t c = 0; c < C; ++c) write_grad(dweight + c, dw[c], Grad::add);
  }

  void gelu_forward(float* out, const float* inp, int64_t n) const override {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(gelu(inp[i]));
  }
  void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, Grad mode) const override {
    for (int64_t i = 0; i < n; ++i) write_grad(dinp + i, dout[i] * gelu_derivative(inp[i]), mode);
  }

  // out = silu(g) u = g sigmoid(g) u.
  void swiglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) const override {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < I; ++i) {
        const double g = gate_up[n * 2 * I + i], u = gate_up[n * 2 * I + I + i];
        out[n * I + i] = static_cast<float>(g * sigmoid(g) * u);
      }
  }
  // d/dg = u sig (1 + g (1 - sig)); d/du = silu(g).
  void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                       Grad mode) const override {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < I; ++i) {
        const double g = gate_up[n * 2 * I + i], u = gate_up[n * 2 * I + I + i], d = dout[n * I + i];
        const double sig = sigmoid(g);
        write_grad(dgate_up + n * 2 * I + i, d * u * sig * (1.0 + g * (1.0 - sig)), mode);
        write_grad(dgate_up + n * 2 * I + I + i, d * g * sig, mode);
      }
  }

  // out = gelu(g) u; d/dg = u gelu'(g), d/du = gelu(g) (gelu and gelu' as above).
  void geglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) const override {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < I; ++i) {
        const double g = gate_up[n * 2 * I + i], u = gate_up[n * 2 * I + I + i];
        out[n * I + i] = static_cast<float>(gelu(g) * u);
      }
  }
  void geglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                      Grad mode) const override {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < I; ++i) {
        const double g = gate_up[n * 2 * I + i], u = gate_up[n * 2 * I + I + i], d = dout[n * I + i];
        write_grad(dgate_up + n * 2 * I + i, d * u * gelu_derivative(g), mode);
        write_grad(dgate_up + n * 2 * I + I + i, d * gelu(g), mode);
      }
  }

  void rope_forward(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                    int n_heads, int head_dim, int rotary_dim, float mscale) const override {
    rotate(x, positions, inv_freq, N, row_stride, n_heads, head_dim, rotary_dim, mscale, 1.0);
  }
  void rope_backward(float* dx, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                     int n_heads, int head_dim, int rotary_dim, float mscale) const override {
    rotate(dx, positions, inv_freq, N, row_stride, n_heads, head_dim, rotary_dim, mscale, -1.0);
  }

  // Full softmax per query row over keys [first_key, t]; backward through the plain softmax
  // Jacobian: dS_j = P_j (dP_j - sum_k P_k dP_k).
  void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg_start,
                         const AttentionShape& s, float*) const override {
    attend(out, lse, nullptr, nullptr, qkv, seg_start, s);
  }
  void attention_backward(float* dqkv, const float* dout, const float*, const float*, const float* qkv,
                          const int32_t* seg_start, const AttentionShape& s, float*) const override {
    attend(nullptr, nullptr, dqkv, dout, qkv, seg_start, s);
  }
  int64_t attention_scratch_floats(const AttentionShape&) const override { return 0; }

  void attention_cached(float* out, const float* q, int64_t ld_q, const float* k_cache, const float* v_cache,
                        const int32_t* seq, const int32_t* pos, int64_t N, const AttentionShape& s,
                        float*) const override {
    check_attention_shape(s);
    const int64_t H = s.n_heads, KV = s.n_kv_heads, D = s.head_dim, T = s.T;
    const double scale = score_scale(s);
    for (int64_t n = 0; n < N; ++n) {
      RLHF_CHECK(seq[n] >= 0 && seq[n] < s.B && pos[n] >= 0 && pos[n] < s.T,
                 "attention_cached: row " + std::to_string(n) + " is outside the cache");
      const int64_t lo = first_key(0, pos[n], s.sliding_window);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / KV);
        const float* k = k_cache + (seq[n] * KV + g) * T * D;
        const float* v = v_cache + (seq[n] * KV + g) * T * D;
        const float* qh = q + n * ld_q + h * D;
        std::vector<double> p(pos[n] - lo + 1);
        for (int64_t j = lo; j <= pos[n]; ++j) {
          double sc = 0;
          for (int64_t d = 0; d < D; ++d) sc += static_cast<double>(qh[d]) * k[j * D + d];
          p[j - lo] = soft_cap(sc * scale, s.softcap);
        }
        softmax_inplace(p);
        for (int64_t d = 0; d < D; ++d) {
          double o = 0;
          for (int64_t j = lo; j <= pos[n]; ++j) o += p[j - lo] * v[j * D + d];
          out[n * H * D + h * D + d] = static_cast<float>(o);
        }
      }
    }
  }
  int64_t attention_cached_scratch_floats(const AttentionShape&) const override { return 0; }

  // z = inv_temp h W^T; logp = z_t - lse; H = -sum p log p.
  void logprob_forward(float* logp, float* lse, float* entropy, const float* h, const float* W,
                       const int32_t* targets, int64_t N, int64_t C, int64_t V, float inv_temp, float*,
                       int64_t chunk, float softcap) const override {
    RLHF_CHECK(chunk > 0, "logprob: chunk must be positive");
    std::vector<double> z;
    for (int64_t n = 0; n < N; ++n) {
      check_target(targets, n, V);
      const double l = logits(z, h + n * C, W, C, V, inv_temp, softcap);
      logp[n] = static_cast<float>(z[targets[n]] - l);
      lse[n] = static_cast<float>(l);
      if (entropy) {
        double H = 0;
        for (int64_t v = 0; v < V; ++v) H -= std::exp(z[v] - l) * (z[v] - l);
        entropy[n] = static_cast<float>(H);
      }
    }
  }
  // dz_v = dlogp (onehot_v - p_v) - dentropy p_v (log p_v + H); dh = inv_temp dz W; dW = inv_temp dz^T h.
  // Recomputes lse and H in double rather than reading the forward's rounded ones.
  void logprob_backward(float* dh, float* dW, const float* dlogp, const float* h, const float* W,
                        const int32_t* targets, const float*, int64_t N, int64_t C, int64_t V, float inv_temp,
                        float*, int64_t chunk, const float* dentropy, const float* entropy,
                        bool scratch_holds_logits, float softcap) const override {
    RLHF_CHECK(chunk > 0, "logprob: chunk must be positive");
    RLHF_CHECK(!dentropy || entropy, "logprob: the entropy gradient needs the forward's entropy");
    RLHF_CHECK(!scratch_holds_logits || chunk >= V, "logprob: only a single-chunk forward leaves its logits");
    std::vector<double> z, dWacc(V * C, 0.0), dz(V);
    for (int64_t n = 0; n < N; ++n) {
      check_target(targets, n, V);
      const double l = logits(z, h + n * C, W, C, V, inv_temp, softcap);
      double H = 0;
      for (int64_t v = 0; v < V; ++v) H -= std::exp(z[v] - l) * (z[v] - l);
      for (int64_t v = 0; v < V; ++v) {
        const double p = std::exp(z[v] - l);
        // Through the soft-cap z = inv_temp cap tanh(u / cap): dz/du = inv_temp (1 - tanh^2).
        const double t = softcap > 0.0f ? z[v] / (static_cast<double>(inv_temp) * softcap) : 0.0;
        dz[v] = ((dlogp ? dlogp[n] * ((v == targets[n] ? 1.0 : 0.0) - p) : 0.0) -
                 (dentropy ? dentropy[n] * p * ((z[v] - l) + H) : 0.0)) *
                (1.0 - t * t);
      }
      for (int64_t c = 0; c < C; ++c) {
        double s = 0;
        for (int64_t v = 0; v < V; ++v) s += dz[v] * W[v * C + c];
        write_grad(dh + n * C + c, inv_temp * s, Grad::add);
      }
      for (int64_t v = 0; v < V; ++v)
        for (int64_t c = 0; c < C; ++c) dWacc[v * C + c] += inv_temp * dz[v] * h[n * C + c];
    }
    for (int64_t i = 0; i < V * C; ++i) write_grad(dW + i, dWacc[i], Grad::add);
  }

  void add_inplace(float* a, const float* b, int64_t n) const override {
    for (int64_t i = 0; i < n; ++i) a[i] = static_cast<float>(static_cast<double>(a[i]) + b[i]);
  }
  double sum_squares(const float* x, int64_t n) const override {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
    return s;
  }
  void scale_inplace(float* x, float s, int64_t n) const override {
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<double>(x[i]) * s);
  }
  void fill_zero(float* x, int64_t n) const override { std::fill_n(x, n, 0.0f); }
  void gather_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width,
                   bool add) const override {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < width; ++c)
        dst[i * width + c] = static_cast<float>((add ? dst[i * width + c] : 0.0) + src[rows[i] * width + c]);
  }
  void scatter_add_rows(float* dst, const float* src, const int64_t* rows, int64_t n,
                        int64_t width) const override {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < width; ++c) write_grad(dst + rows[i] * width + c, src[i * width + c], Grad::add);
  }
  double exp_shifted(float* e, const float* s, float shift, int64_t n) const override {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double x = std::exp(static_cast<double>(s[i]) - shift);
      e[i] = static_cast<float>(x);
      sum += x;
    }
    return sum;
  }

  // p = p (1 - lr wd) - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps), the moments updated first.
  // Counts the stored (float) parameters that are not finite.
  int64_t adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int64_t step) const override {
    const double t = static_cast<double>(step), b1 = beta1, b2 = beta2;
    const double bias1 = 1.0 - std::pow(b1, t), bias2 = 1.0 - std::pow(b2, t);
    int64_t nonfinite = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double g = grad[i];
      const double mi = b1 * m[i] + (1.0 - b1) * g, vi = b2 * v[i] + (1.0 - b2) * g * g;
      double p = param[i] * (1.0 - static_cast<double>(lr) * weight_decay);
      p -= lr / bias1 * mi / (std::sqrt(vi) / std::sqrt(bias2) + eps);
      m[i] = static_cast<float>(mi);
      v[i] = static_cast<float>(vi);
      param[i] = static_cast<float>(p);
      nonfinite += !std::isfinite(param[i]);
    }
    return nonfinite;
  }

 private:
  // The rotation of rope by sign * angle, angle = positions[n] * inv_freq[i] as an fp32 product
  // (PyTorch's), its cosine and sine in double.
  static void rotate(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                     int n_heads, int head_dim, int rotary_dim, float mscale, double sign) {
    const int half = (rotary_dim > 0 ? rotary_dim : head_dim) / 2;
    for (int64_t n = 0; n < N; ++n) {
      RLHF_CHECK(positions[n] >= 0, "rope: negative position " + std::to_string(positions[n]));
      for (int h = 0; h < n_heads; ++h)
        for (int i = 0; i < half; ++i) {
          const float angle = static_cast<float>(positions[n]) * inv_freq[i];
          const double c = mscale * std::cos(static_cast<double>(angle));
          const double s = sign * mscale * std::sin(static_cast<double>(angle));
          float* a = x + n * row_stride + h * head_dim + i;
          float* b = a + half;
          const double a0 = *a, b0 = *b;
          *a = static_cast<float>(a0 * c - b0 * s);
          *b = static_cast<float>(b0 * c + a0 * s);
        }
    }
  }

  // Attention forward (out, lse) or backward (dqkv from dout), recomputing the probabilities.
  static void attend(float* out, float* lse, float* dqkv, const float* dout, const float* qkv,
                     const int32_t* seg_start, const AttentionShape& s) {
    check_attention_shape(s);
    const int64_t T = s.T, D = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, ld = (H + 2 * KV) * D;
    const double scale = score_scale(s);
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int32_t st = seg_start[b * T + t];
        RLHF_CHECK(st >= 0 && st <= t, "attention: seg_start[" + std::to_string(b) + ", " + std::to_string(t) +
                                           "] = " + std::to_string(st) + " is not in [0, t]");
      }
    std::vector<double> dacc;
    if (dqkv) dacc.assign(s.B * T * ld, 0.0);
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / KV);
        for (int64_t t = 0; t < T; ++t) {
          const float* q = qkv + (b * T + t) * ld + h * D;
          const int64_t lo = first_key(seg_start[b * T + t], t, s.sliding_window);
          std::vector<double> p(t - lo + 1), dp(t - lo + 1);
          for (int64_t j = lo; j <= t; ++j) {
            const float* k = qkv + (b * T + j) * ld + (H + g) * D;
            double sc = 0;
            for (int64_t d = 0; d < D; ++d) sc += static_cast<double>(q[d]) * k[d];
            p[j - lo] = soft_cap(sc * scale, s.softcap);
          }
          std::vector<double> slope(p.size(), 1.0);  // d cap(z) / dz = 1 - (cap(z) / cap)^2
          if (s.softcap > 0.0f)
            for (size_t j = 0; j < p.size(); ++j) slope[j] = 1.0 - (p[j] / s.softcap) * (p[j] / s.softcap);
          const double l = softmax_inplace(p);
          if (out) {
            lse[(b * H + h) * T + t] = static_cast<float>(l);
            for (int64_t d = 0; d < D; ++d) {
              double o = 0;
              for (int64_t j = lo; j <= t; ++j) o += p[j - lo] * qkv[(b * T + j) * ld + (H + KV + g) * D + d];
              out[(b * T + t) * H * D + h * D + d] = static_cast<float>(o);
            }
            continue;
          }
          const float* dO = dout + (b * T + t) * H * D + h * D;
          double sum_pdp = 0;
          for (int64_t j = lo; j <= t; ++j) {
            const float* v = qkv + (b * T + j) * ld + (H + KV + g) * D;
            double dpj = 0;
            for (int64_t d = 0; d < D; ++d) dpj += static_cast<double>(dO[d]) * v[d];
            dp[j - lo] = dpj;
            sum_pdp += p[j - lo] * dpj;
          }
          double* dq = dacc.data() + (b * T + t) * ld + h * D;
          for (int64_t j = lo; j <= t; ++j) {
            const double ds = p[j - lo] * (dp[j - lo] - sum_pdp) * slope[j - lo];
            const float* k = qkv + (b * T + j) * ld + (H + g) * D;
            double* dk = dacc.data() + (b * T + j) * ld + (H + g) * D;
            double* dv = dacc.data() + (b * T + j) * ld + (H + KV + g) * D;
            for (int64_t d = 0; d < D; ++d) {
              dq[d] += scale * ds * k[d];
              dk[d] += scale * ds * q[d];
              dv[d] += p[j - lo] * dO[d];
            }
          }
        }
      }
    if (dqkv)
      for (size_t i = 0; i < dacc.size(); ++i) dqkv[i] = static_cast<float>(dacc[i]);
  }

  static void check_target(const int32_t* targets, int64_t n, int64_t V) {
    RLHF_CHECK(targets[n] >= 0 && targets[n] < V, "logprob: target " + std::to_string(targets[n]) + " of row " +
                                                      std::to_string(n) + " outside the vocabulary of " +
                                                      std::to_string(V));
  }

  // z (V) = inv_temp h W^T of one row; returns its log-sum-exp.
  static double logits(std::vector<double>& z, const float* h, const float* W, int64_t C, int64_t V,
                       float inv_temp, float softcap) {
    z.assign(V, 0.0);
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < V; ++v) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += static_cast<double>(h[c]) * W[v * C + c];
      z[v] = soft_cap(s, softcap) * inv_temp;
      m = std::max(m, z[v]);
    }
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(z[v] - m);
    return m + std::log(sum);
  }
};

}  // namespace

const Backend& reference_backend() {
  static const ReferenceBackend backend;
  return backend;
}

}  // namespace rlhf::kernels
