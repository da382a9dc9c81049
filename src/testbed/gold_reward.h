// The testbed's gold rewards as a reward source of the online commands:
//     --reward gold:valence                      r* of the completion (docs/testbed.md §3)
//     --reward "gold(detail=partial):sort"       a named part of the gold reward instead (Verify's
//                                                dense partial credit, ...)
//     --reward "gold(world=3,noise=0.1,seed=2):valence"   the world seed of the task (default 1);
//                                                noise: a Gaussian annotator's view, r* + N(0, noise²)
//                                                drawn per sample from (seed, prompt, completion), so the
//                                                same text always gets the same noisy score
// Prompts must be plain strings (the testbed's prompt files).
#pragma once

#include <memory>

#include "rollout/reward.h"

namespace rlhf::testbed {

// The "gold" kind for RewardContext::extra_kinds: InputError naming the spec for an unknown task
// or detail (unknown options are make_reward_source's check).
std::unique_ptr<rollout::RewardSource> gold_reward(const rollout::RewardSpec& spec, rollout::SpecOptions& opt);

}  // namespace rlhf::testbed
