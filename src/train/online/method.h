// An online method as an object: what the online loop (train/online_trainer.h) must compute for
// it, its advantages and its loss. The loop owns everything the methods share — sampling and
// scoring, the per-token forwards, data parallelism, minibatches and micro-batches, the weighting
// of their gradients, the optimizer steps, the logs — and calls a method only through this
// interface; a method owns its formulas, which call the pure functions of
// src/rollout/advantages.h and src/objective/policy_gradient.h, pairwise.h.
//
// Each method is one file of this folder (ppo.cpp, apa.cpp, ...), registered by a row of the
// table in methods.cpp; it reads its settings from OnlineConfig. The loop calls, in order:
//
//   auto m = online::make_method(cfg);
//   m->restore(state);                                // once, before the first step
//   online::Advantages adv = m->advantages(rollout, metrics);
//   objective::PolicyLossResult res = m->loss(pass);  // per forward/backward pass, then backward
//   m->end_step(rollout);                             // after the step's optimizer steps
//   m->save(state);                                   // what a resumed run needs
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "objective/policy_gradient.h"
#include "objective/ragged.h"
#include "rollout/advantages.h"
#include "train/online_trainer.h"

namespace rlhf::online {

using objective::Ragged;

// What a minibatch's loss is a mean over, hence the share of it that one pass's gradient carries.
enum class Normaliser {
  sequences,  // the minibatch's sequences
  tokens,     // the minibatch's completion tokens
  fixed,      // a count fixed beforehand, which every pass divides by already
};

// What a method needs the loop to compute, and how its loss is shaped.
struct Needs {
  bool values = false;          // per value slot: a value head on the policy trunk, or a separate critic
  bool reference = true;        // the reference's per-token log-probs (and the kl/* metrics)
  bool entropy = false;         // the per-token entropy of the training forward
  bool pairs = false;           // a prompt's 2 samples are one training unit (else each sample is)
  bool drop_undefined = false;  // units with an undefined (NaN) score leave the step (else: advantage 0)
  int64_t min_samples = 1;      // samples per prompt at least
  Normaliser loss = Normaliser::sequences;     // of the loss and its gradient
  Normaliser metrics = Normaliser::sequences;  // of the loss's metrics (its value metrics: value slots)
};

// The step's numbers over the global batch (every rank's samples, in rank order), sequence-major.
struct RolloutNumbers {
  Ragged tokens;                       // completion tokens of each sequence
  std::vector<int64_t> prompt;         // per sequence: index into the run's prompts
  std::vector<double> scores;          // per sequence (NaN: undefined)
  std::vector<uint8_t> has_eos;        // per sequence: ended with an EOS or stop token
  std::vector<double> lp_old, lp_ref;  // per token: the sampling policy's, the reference's (if read)
  Ragged slots;                        // value slots of each sequence (methods with values)
  std::vector<double> values;          // per value slot
  std::vector<double> seq_kl;          // per sequence: summed k1 to the reference (if read)
};

// Per completion token: log p at the sampling temperature and (where asked) the entropy; per
// value slot: the value.
struct TokenNumbers {
  std::vector<double> logp, values, entropy;
};

// What a method's loss reads besides the rollout.
struct Advantages {
  std::vector<double> per_token{};     // per token (PPO, APA)
  std::vector<double> per_sequence{};  // per sequence (REINFORCE, RLOO, GRPO)
  std::vector<double> returns{};       // per value slot: the value targets (methods with values)
};

// One forward/backward pass: some sequences of a minibatch, on this rank.
struct Pass {
  const RolloutNumbers& rollout;
  const Advantages& advantages;
  const std::vector<size_t>& rows;  // the sequences, as indices into `rollout`, in pass order
  const Ragged& tokens;             // their completion tokens: rollout.tokens.select(rows)
  const TokenNumbers& current;      // their numbers under the weights being trained

  // The entries of a per-token (per-sequence) array of the rollout that belong to the pass.
  std::vector<double> per_token(const std::vector<double>& all) const { return rollout.tokens.gather(all, rows); }
  std::vector<double> per_sequence(const std::vector<double>& all) const;
  // The value loss's inputs: current values, the rollout's values and returns, per value slot.
  objective::ValueInputs value_inputs() const;
};

class Method {
 public:
  explicit Method(const Needs& needs) : needs_(needs) {}
  virtual ~Method() = default;
  const Needs& needs() const { return needs_; }

  // Checks the settings only this method reads (InputError naming the bad one).
  virtual void validate(const OnlineConfig&) const {}

  // The run's resumable state: read before the first step, written back after every step. The
  // KL coefficient is every method's beta (only PPO's adaptive controller moves it); REINFORCE
  // adds its moving baseline.
  virtual void restore(const OnlineState& state) { kl_ = rollout::KlController::fixed(state.kl_coef); }
  virtual void save(OnlineState& state) const { state.kl_coef = kl_.value(); }
  double kl_coef() const { return kl_.value(); }

  // The advantages over the global batch; adds the method's metrics of the step to `metrics`.
  virtual Advantages advantages(const RolloutNumbers& rollout, std::map<std::string, double>& metrics) = 0;
  // The loss of one pass as a mean over the pass alone (the loop weights it by the pass's share
  // of its minibatch, by needs().loss), with its gradients and TRL-named metrics.
  virtual objective::PolicyLossResult loss(const Pass& pass) const = 0;
  // After the step's optimizer steps.
  virtual void end_step(const RolloutNumbers&) {}

 protected:
  rollout::KlController kl_;

 private:
  Needs needs_;
};

// ---- Pieces that methods share ------------------------------------------------------------------

double mean_of(const std::vector<double>& v);  // 0 for none
// PPO's advantages: shaped rewards, GAE and whitening over the batch (ppo.cpp; APA's too).
Advantages ppo_advantages(const RolloutNumbers& r, const rollout::PpoShaping& shaping,
                          std::map<std::string, double>& metrics);
// The sequence-level surrogate of REINFORCE and RLOO on per-sequence advantages (reinforce.cpp).
objective::PolicyLossResult sequence_pg_loss(const Pass& pass, const objective::SequencePgParams& params);

// ---- The registry (methods.cpp) ----------------------------------------------------------------

using MethodFactory = std::unique_ptr<Method> (*)(const OnlineConfig& cfg);
struct MethodEntry {
  OnlineMethod id;
  const char* name;     // online_method_name
  const char* command;  // the rlhf subcommand that runs it
  const char* summary;  // its line in `rlhf --help`
  MethodFactory make;
};
std::span<const MethodEntry> registered_methods();
// cfg.method's method, with cfg's settings.
std::unique_ptr<Method> make_method(const OnlineConfig& cfg);

}  // namespace rlhf::online
