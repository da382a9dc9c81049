// The testbed's gold rewards as a reward source of the online commands:
//     --reward gold:valence                      r* of the completion (docs/testbed.md §3)
//     --reward "gold(detail=partial):sort"       a named part of the gold reward instead (Verify's
//                                                dense partial credit, ...)
//     --reward "gold(world=3,noise=0.1,seed=2):valence"   the world seed of the task (default 1);
//                                                noise: a Gaussian annotator's view, r* + N(0, noise²)
//                                                drawn per sample from (seed, prompt, completion), so the
//                                                same text always gets the same noisy score
//     --reward "gold(world=3,annotator,bt_tau=0.07,seed=2):valence"
//                                                an annotator's judgement instead (docs/testbed.md §4):
//                                                each prompt's consecutive samples are ranked by the
//                                                annotator with these settings (bt_tau, flip_eps,
//                                                gauss_sigma, length_gamma, pool, taste_jitter,
//                                                taste_seed, as AnnotatorConfig), the best scoring 1
//                                                and the worst 0; for two samples that is one
//                                                Bradley–Terry label, as the annotator's pairs
// Prompts must be plain strings (the testbed's prompt files).
#pragma once

#include <memory>
#include <string>

#include "rollout/reward.h"
#include "testbed/annotator.h"

namespace rlhf::testbed {

// The options of a gold spec that make it judge with `cfg`'s noise model (its calibrated
// parameters, exactly): "annotator,bt_tau=...". Read back by gold_reward.
std::string annotator_spec_options(const AnnotatorConfig& cfg);

// The "gold" kind for RewardContext::extra_kinds: InputError naming the spec for an unknown task
// or detail (unknown options are make_reward_source's check).
std::unique_ptr<rollout::RewardSource> gold_reward(const rollout::RewardSpec& spec, rollout::SpecOptions& opt);

}  // namespace rlhf::testbed
