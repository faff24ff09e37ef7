// Canonical comparison of two rulesets, in words an admin understands.
#pragma once

#include <string>
#include <vector>

#include "fence/ruleset.h"

namespace ef::fence {

// Every difference between what the config demands (`expected`) and what the
// netns holds (`actual`), in a deterministic order: metadata, counters, sets
// (and their elements), chains (hook, priority, policy, then rules), then the
// netdev table (presence, device, counters, chain). Empty when
// they are equal; counter values are never compared; of the metadata only the
// profile and the digest count (the pod's identity is informational).
std::vector<std::string> diff(const Ruleset& expected, const Ruleset& actual);

}  // namespace ef::fence
