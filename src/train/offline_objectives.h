// The objectives of the offline loop: each turns the per-sequence numbers of one micro-batch
// (policy log-probs or head values, reference log-probs) into a loss, d loss / d sequence and
// TRL-named metrics, by calling the pure functions of src/objective. Which spans form a pair,
// a ranking or a KTO example is read from the spans' group and index (collate.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "data/collate.h"
#include "objective/pairwise.h"
#include "objective/unpaired.h"
#include "train/sequence_scores.h"

namespace rlhf {

// What an objective returns for one micro-batch, per span of the collated batch.
struct ObjectiveOutput {
  double loss = 0;
  std::vector<double> d_logp;  // d loss / d (span's summed log-prob); empty if unused
  std::vector<double> d_head;  // d loss / d (span's head value); empty if unused
  std::vector<std::pair<std::string, double>> metrics;
};

// Policy numbers of the micro-batch's spans, and the reference log-prob of each span
// (looked up by the sequence's position in the dataset).
using ObjectiveFn = std::function<ObjectiveOutput(const CollatedBatch& cb, const SequenceScores& policy,
                                                  const std::vector<double>& ref_logp)>;

// Objectives of the three offline families.
ObjectiveFn sft_objective();  // token-mean NLL over the micro-batch's completion tokens
// Summed NLL over the micro-batch's scored tokens, for LossNormalization::step_token_mean (rlhf lm).
ObjectiveFn token_nll_sum_objective();
ObjectiveFn pairwise_objective(std::vector<std::pair<std::string, double>> losses, objective::PairParams params);
// Bradley–Terry on head values; group_margin (may be empty) holds each group's margin.
ObjectiveFn reward_objective(double center_rewards_coefficient, std::vector<double> group_margin);

// Reward model on rankings (index = rank position, 0 = best): "plackett_luce" over the full
// ranking (ties broken by rank order) or "kwise" (every untied pair, InstructGPT); rank_values
// per group as OfflineDataset::group_rank_values. Metrics: accuracy (ordered pairs the head
// orders correctly, ties excluded) and margin (mean best-minus-worst head value).
ObjectiveFn ranked_reward_objective(const std::string& loss, std::vector<std::vector<double>> rank_values);

// Listwise Plackett–Luce DPO on rankings: the implicit rewards beta * log(pi/pi_ref) of a
// group's responses. Metrics: rewards/accuracies (correctly ordered untied pairs), rewards/chosen
// (best), rewards/rejected (worst), rewards/margins, logps/chosen, logps/rejected.
ObjectiveFn listwise_dpo_objective(double beta, std::vector<std::vector<double>> rank_values);

// KTO ("kto") and APO-zero unpaired ("apo_zero_unpaired") on groups of one labelled response
// (index 0) and, for "kto", its mismatched KL sequence (index 1: the prompt with another
// example's completion), whose policy log-prob enters only the detached reference point z0.
// Metrics with TRL's KTOTrainer names.
ObjectiveFn kto_objective(const std::string& loss_type, objective::KtoParams params,
                          std::vector<uint8_t> group_desirable);

}  // namespace rlhf
