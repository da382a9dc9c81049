#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf {

LrSchedule parse_lr_schedule(const std::string& n) {
  if (n == "constant") return LrSchedule::constant;
  if (n == "constant_with_warmup") return LrSchedule::constant_with_warmup;
  if (n == "linear") return LrSchedule::linear;
  if (n == "cosine") return LrSchedule::cosine;
  throw InputError("lr_scheduler_type: unknown schedule '" + n +
                   "' (expected constant, constant_with_warmup, linear or cosine)");
}

const char* lr_schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::constant: return "constant";
    case LrSchedule::constant_with_warmup: return "constant_with_warmup";
    case LrSchedule::linear: return "linear";
    case LrSchedule::cosine: return "cosine";
  }
  return "?";
}

double lr_multiplier(LrSchedule s, int64_t step, int64_t total, int64_t warmup) {
  if (s == LrSchedule::constant) return 1.0;
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (s == LrSchedule::constant_with_warmup) return 1.0;
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (s == LrSchedule::linear) return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));  // cosine, half a cycle
}

AdamW::AdamW(const Transformer& m, AdamWConfig cfg)
    : cfg_(cfg),
      m_(m.params().size(), 0.0f),
      v_(m.params().size(), 0.0f),
      n_params_(m.params().size()),
      end_(static_cast<int64_t>(m.params().size())) {}

void AdamW::shard(int64_t begin, int64_t end) {
  RLHF_CHECK(begin_ <= begin && begin <= end && end <= end_, "AdamW::shard: the range must lie in the current one");
  m_ = std::vector<float>(m_.begin() + (begin - begin_), m_.begin() + (end - begin_));
  v_ = std::vector<float>(v_.begin() + (begin - begin_), v_.begin() + (end - begin_));
  begin_ = begin;
  end_ = end;
}

double grad_global_norm(const Transformer& m) {
  const auto& g = const_cast<Transformer&>(m).grads();
  return std::sqrt(kernels::sum_squares(g.data(), static_cast<int64_t>(g.size())));
}

void require_finite_step(int64_t step, double loss, double grad_norm, const std::string& where) {
  if (std::isfinite(loss) && std::isfinite(grad_norm)) return;
  throw NumericError("step " + std::to_string(step) + ": non-finite " + (std::isfinite(loss) ? "gradient norm" : "loss") +
                     where + "; stopped before the optimizer step (lower the learning rate or check the data)");
}

void AdamW::step(Transformer& model, double lr, double norm) {
  std::vector<float>& g = model.grads();
  // PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
  if (cfg_.max_grad_norm > 0 && std::isfinite(norm)) {
    const double coef = cfg_.max_grad_norm / (norm + 1e-6);
    if (coef < 1.0) kernels::scale_inplace(g.data(), static_cast<float>(coef), static_cast<int64_t>(g.size()));
  }
  ++t_;
  for (const ParamSlot& s : model.slots()) {
    // The part of the slot inside this optimizer's range (all of it unless sharded).
    const int64_t lo = std::max(s.offset, begin_), hi = std::min(s.offset + s.numel, end_);
    if (lo >= hi) continue;
    kernels::adamw_step(model.params().data() + lo, g.data() + lo, m_.data() + (lo - begin_), v_.data() + (lo - begin_),
                        hi - lo, static_cast<float>(lr), static_cast<float>(cfg_.beta1), static_cast<float>(cfg_.beta2),
                        static_cast<float>(cfg_.eps), s.weight_decay ? static_cast<float>(cfg_.weight_decay) : 0.0f,
                        t_);
  }
}

}  // namespace rlhf
