// AdamW over a model's flat parameter buffer, global-norm clipping and learning-rate schedules.
//
// Settings arrive as a small struct; the schedule is a pure function of the step, so warm-up
// and decay plug in without touching the step code, and a resumed run recomputes the same lr.
// Weight decay skips biases and norm weights (ParamSlot::weight_decay), as HF's Trainer does.
// The moments live on the model's backend's device, and the step runs on that backend.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace rlhf {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;  // <= 0 disables clipping
};

enum class LrSchedule { constant, constant_with_warmup, linear, cosine };
LrSchedule parse_lr_schedule(const std::string& name);  // InputError on an unknown name
const char* lr_schedule_name(LrSchedule s);

// HF's get_*_schedule_with_warmup: the multiplier for optimizer step `step` (0-based) of `total`.
double lr_multiplier(LrSchedule s, int64_t step, int64_t total, int64_t warmup);

// What one AdamW::step wrote: how many parameters came out NaN or Inf (a finite gradient times a
// huge learning rate overflows) and the first slot, in flat order, that holds one.
struct UpdateReport {
  int64_t nonfinite = 0;
  int64_t first_slot = -1;  // index into Transformer::slots(); -1 when nonfinite == 0
};

class AdamW {
 public:
  AdamW(const Transformer& m, AdamWConfig cfg);
  // Clips the gradient to max_grad_norm and applies one update with learning rate `lr`.
  // `grad_norm` is grad_global_norm(m), computed by the caller, which checks it is finite
  // before stepping (a NaN gradient must never reach the weights). The report is counted by the
  // update kernel as it writes; the caller passes it to require_finite_update.
  UpdateReport step(Transformer& m, double lr, double grad_norm);
  int64_t steps_taken() const { return t_; }
  const AdamWConfig& config() const { return cfg_; }
  DeviceBuffer<float>& first_moment() { return m_; }
  DeviceBuffer<float>& second_moment() { return v_; }
  const DeviceBuffer<float>& first_moment() const { return m_; }
  const DeviceBuffer<float>& second_moment() const { return v_; }
  void set_steps_taken(int64_t t) { t_ = t; }

  // ZeRO-1: keep the moments of the flat-parameter range [begin, end) only; step() then updates
  // only those parameters (the caller all-gathers the rest from the other ranks). The moments of
  // the range are kept. shard_begin()/shard_end() give the range (0, n_params unsharded).
  void shard(int64_t begin, int64_t end);
  int64_t shard_begin() const { return begin_; }
  int64_t shard_end() const { return end_; }
  bool sharded() const { return end_ - begin_ != static_cast<int64_t>(n_params_); }

 private:
  AdamWConfig cfg_;
  DeviceBuffer<float> m_, v_;  // moments of [begin_, end_)
  int64_t t_ = 0;
  size_t n_params_ = 0;
  int64_t begin_ = 0, end_ = 0;
};

// sqrt(sum of squared gradients), accumulated in double.
double grad_global_norm(const Transformer& m);

// Throws NumericError "step N: non-finite loss|gradient norm<where>; stopped before the optimizer
// step ..." unless both are finite: a NaN must never reach the weights (docs/reliability.md §7 tests 27, 28).
void require_finite_step(int64_t step, double loss, double grad_norm, const std::string& where);

// Throws NumericError "step N: the optimizer step made K parameters non-finite (first: NAME)<where>;
// refusing to save ..." when the update wrote any: the run stops before that step's model or
// checkpoint is written (docs/reliability.md §7 test 28e).
void require_finite_update(int64_t step, const UpdateReport& report, const Transformer& m, const std::string& where);

}  // namespace rlhf
