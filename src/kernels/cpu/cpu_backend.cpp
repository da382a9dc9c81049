// The CPU backend: kernels.h's ops forwarded to the free functions of kernels_cpu.h, on host
// memory. Its prepacked weights are the GEMM's PackedB.
#include "kernels/cpu/kernels_cpu.h"

namespace rlhf::kernels {
namespace {

class CpuPackedWeights final : public PackedWeights {
 public:
  explicit CpuPackedWeights(cpu::PackedB b) : b_(std::move(b)) {}
  int64_t bytes() const override { return b_.rows() * b_.cols() * static_cast<int64_t>(sizeof(float)); }
  const cpu::PackedB& get() const { return b_; }

 private:
  cpu::PackedB b_;
};

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  const Device& device() const override { return host_device(); }

  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                      int64_t OC, const PackedWeights* packed) const override {
    cpu::matmul_forward(out, inp, weight, bias, N, C, OC,
                        packed ? &static_cast<const CpuPackedWeights*>(packed)->get() : nullptr);
  }
  std::unique_ptr<PackedWeights> pack_weight(const float* weight, int64_t C, int64_t OC) const override {
    return std::make_unique<CpuPackedWeights>(cpu::pack_weight(weight, C, OC));
  }
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int64_t N, int64_t C, int64_t OC, Grad dinp_mode) const override {
    cpu::matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, dinp_mode);
  }

  void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                         const float* wpe, int64_t N, int64_t C) const override {
    cpu::embedding_forward(out, tokens, positions, wte, wpe, N, C);
  }
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                          const int32_t* positions, int64_t N, int64_t C) const override {
    cpu::embedding_backward(dwte, dwpe, dout, tokens, positions, N, C);
  }

  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int64_t N, int64_t C, float eps) const override {
    cpu::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps);
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int64_t N,
                          int64_t C) const override {
    cpu::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C,
                       float eps) const override {
    cpu::rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
  }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                        const float* rstd, int64_t N, int64_t C) const override {
    cpu::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
  }

  void gelu_forward(float* out, const float* inp, int64_t n) const override { cpu::gelu_forward(out, inp, n); }
  void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, Grad mode) const override {
    cpu::gelu_backward(dinp, dout, inp, n, mode);
  }
  void swiglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) const override {
    cpu::swiglu_forward(out, gate_up, N, I);
  }
  void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                       Grad mode) const override {
    cpu::swiglu_backward(dgate_up, dout, gate_up, N, I, mode);
  }
  void geglu_forward(float* out, const float* gate_up, int64_t N, int64_t I) const override {
    cpu::geglu_forward(out, gate_up, N, I);
  }
  void geglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t N, int64_t I,
                      Grad mode) const override {
    cpu::geglu_backward(dgate_up, dout, gate_up, N, I, mode);
  }

  void rope_forward(float* x, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                    int n_heads, int head_dim, int rotary_dim, float mscale) const override {
    cpu::rope_forward(x, positions, inv_freq, N, row_stride, n_heads, head_dim, rotary_dim, mscale);
  }
  void rope_backward(float* dx, const int32_t* positions, const float* inv_freq, int64_t N, int64_t row_stride,
                     int n_heads, int head_dim, int rotary_dim, float mscale) const override {
    cpu::rope_backward(dx, positions, inv_freq, N, row_stride, n_heads, head_dim, rotary_dim, mscale);
  }


  void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg_start,
                         const AttentionShape& s, float* scratch) const override {
    cpu::attention_forward(out, lse, qkv, seg_start, s, scratch);
  }
  void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                          const int32_t* seg_start, const AttentionShape& s, float* scratch) const override {
    cpu::attention_backward(dqkv, dout, out, lse, qkv, seg_start, s, scratch);
  }
  int64_t attention_scratch_floats(const AttentionShape& s) const override {
    return cpu::attention_scratch_floats(s);
  }
  void attention_cached(float* out, const float* q, int64_t ld_q, const float* k_cache, const float* v_cache,
                        const int32_t* seq, const int32_t* pos, int64_t N, const AttentionShape& s,
                        float* scratch) const override {
    cpu::attention_cached(out, q, ld_q, k_cache, v_cache, seq, pos, N, s, scratch);
  }
  int64_t attention_cached_scratch_floats(const AttentionShape& s) const override {
    return cpu::attention_cached_scratch_floats(s);
  }

  void logprob_forward(float* logp, float* lse, float* entropy, const float* h, const float* W,
                       const int32_t* targets, int64_t N, int64_t C, int64_t V, float inv_temp, float* scratch,
                       int64_t chunk, float softcap) const override {
    cpu::logprob_forward(logp, lse, entropy, h, W, targets, N, C, V, inv_temp, scratch, chunk, softcap);
  }
  void logprob_backward(float* dh, float* dW, const float* dlogp, const float* h, const float* W,
                        const int32_t* targets, const float* lse, int64_t N, int64_t C, int64_t V, float inv_temp,
                        float* scratch, int64_t chunk, const float* dentropy, const float* entropy,
                        bool scratch_holds_logits, float softcap) const override {
    cpu::logprob_backward(dh, dW, dlogp, h, W, targets, lse, N, C, V, inv_temp, scratch, chunk, dentropy, entropy,
                          scratch_holds_logits, softcap);
  }

  void add_inplace(float* a, const float* b, int64_t n) const override { cpu::add_inplace(a, b, n); }
  double sum_squares(const float* x, int64_t n) const override { return cpu::sum_squares(x, n); }
  void scale_inplace(float* x, float s, int64_t n) const override { cpu::scale_inplace(x, s, n); }
  void fill_zero(float* x, int64_t n) const override { cpu::fill_zero(x, n); }
  void gather_rows(float* dst, const float* src, const int64_t* rows, int64_t n, int64_t width,
                   bool add) const override {
    cpu::gather_rows(dst, src, rows, n, width, add);
  }
  void scatter_add_rows(float* dst, const float* src, const int64_t* rows, int64_t n,
                        int64_t width) const override {
    cpu::scatter_add_rows(dst, src, rows, n, width);
  }
  double exp_shifted(float* e, const float* s, float shift, int64_t n) const override {
    return cpu::exp_shifted(e, s, shift, n);
  }

  int64_t adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int64_t step) const override {
    return cpu::adamw_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step);
  }
};

}  // namespace

const Backend& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace rlhf::kernels
