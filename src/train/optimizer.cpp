#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

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
      m_(m.backend().device(), m.params().size()),
      v_(m.backend().device(), m.params().size()),
      n_params_(m.params().size()),
      end_(static_cast<int64_t>(m.params().size())) {}

void AdamW::shard(int64_t begin, int64_t end) {
  RLHF_CHECK(begin_ <= begin && begin <= end && end <= end_, "AdamW::shard: the range must lie in the current one");
  for (DeviceBuffer<float>* moment : {&m_, &v_}) {
    DeviceBuffer<float> kept(moment->device(), static_cast<size_t>(end - begin));
    std::copy(moment->begin() + (begin - begin_), moment->begin() + (end - begin_), kept.begin());
    *moment = std::move(kept);
  }
  begin_ = begin;
  end_ = end;
}

double grad_global_norm(const Transformer& m) {
  const DeviceBuffer<float>& g = m.grads();
  return std::sqrt(m.backend().sum_squares(g.data(), static_cast<int64_t>(g.size())));
}

void require_finite_step(int64_t step, double loss, double grad_norm, const std::string& where) {
  if (std::isfinite(loss) && std::isfinite(grad_norm)) return;
  throw NumericError("step " + std::to_string(step) + ": non-finite " + (std::isfinite(loss) ? "gradient norm" : "loss") +
                     where + "; stopped before the optimizer step (lower the learning rate or check the data)");
}

void require_finite_update(int64_t step, const UpdateReport& r, const Transformer& m, const std::string& where) {
  if (r.nonfinite == 0) return;
  RLHF_CHECK(r.first_slot >= 0 && r.first_slot < static_cast<int64_t>(m.slots().size()),
             "require_finite_update: no slot named for the non-finite parameters");
  throw NumericError("step " + std::to_string(step) + ": the optimizer step made " + std::to_string(r.nonfinite) +
                     " parameter" + (r.nonfinite == 1 ? "" : "s") + " non-finite (first: " +
                     m.slots()[r.first_slot].name + ")" + where +
                     "; refusing to save NaN or Inf weights, stopped before this step's model or checkpoint "
                     "(lower the learning rate or check the data)");
}

UpdateReport AdamW::step(Transformer& model, double lr, double norm) {
  const kernels::Backend& be = model.backend();
  RLHF_CHECK(&be.device() == &m_.device(), "AdamW: the model moved to another device after its optimizer was made");
  DeviceBuffer<float>& g = model.grads();
  // PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
  if (cfg_.max_grad_norm > 0 && std::isfinite(norm)) {
    const double coef = cfg_.max_grad_norm / (norm + 1e-6);
    if (coef < 1.0) be.scale_inplace(g.data(), static_cast<float>(coef), static_cast<int64_t>(g.size()));
  }
  ++t_;
  UpdateReport report;
  const std::vector<ParamSlot>& slots = model.slots();
  for (size_t k = 0; k < slots.size(); ++k) {
    const ParamSlot& s = slots[k];
    // The part of the slot inside this optimizer's range (all of it unless sharded).
    const int64_t lo = std::max(s.offset, begin_), hi = std::min(s.offset + s.numel, end_);
    if (lo >= hi) continue;
    const int64_t bad =
        be.adamw_step(model.params().data() + lo, g.data() + lo, m_.data() + (lo - begin_), v_.data() + (lo - begin_),
                      hi - lo, static_cast<float>(lr), static_cast<float>(cfg_.beta1), static_cast<float>(cfg_.beta2),
                      static_cast<float>(cfg_.eps), s.weight_decay ? static_cast<float>(cfg_.weight_decay) : 0.0f, t_);
    if (bad > 0 && report.nonfinite == 0) report.first_slot = static_cast<int64_t>(k);
    report.nonfinite += bad;
  }
  return report;
}

}  // namespace rlhf
