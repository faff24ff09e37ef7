// The destination allowlist as nftables sets, laid out by the shape of the
// entries (README "Allow entries and their sets"): the compiler decides, the
// config never says. Internal to lib/fence.
//
// An entry with one port (or protocol `any`) and a prefix length L > 0 is an
// exact key once the address is cut to L bits, so it goes to a hash set (O(1)
// insert and lookup whatever the count): the full-length addresses in one set
// (`allow4`), every other length in a set of its own (`allow4_24`), looked up
// with the packet's address masked to L bits. Port ranges, /0, and the prefix
// lengths beyond kMaxMaskedSets go to one interval set (`allow4_ranges`, pipapo
// in the kernel; `allow4_any_ranges`, rbtree, for protocol `any`), made
// disjoint (fence/disjoint.h). A packet is allowed when any set holds it, so
// the union of the sets matches exactly what the entries match.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "config/config.h"
#include "fence/ruleset.h"

namespace ef::fence {

// Hash sets for prefix lengths shorter than the full address, per address
// family and kind (with ports, protocol `any`): each is one more lookup for
// every new flow, so the rarer lengths share the interval set instead.
inline constexpr size_t kMaxMaskedSets = 4;

// One set of the allowlist and the match of the rule that looks it up.
struct AllowSet {
    Set set;
    Stmt match;
};

// The sets `allow` needs (none for an empty list), in the order their rules
// go in the chains: IPv4 then IPv6 entries with ports, then IPv4 and IPv6
// `any` entries; within each, full-length addresses, masked lengths from the
// longest, then the interval set. Elements in canonical order.
std::vector<AllowSet> allow_sets(const std::vector<config::AllowEntry>& allow);

// The size a hash set holding `n` elements is created with: n rounded up to
// a power of two, at least 16. The kernel refuses elements beyond it
// (ENFILE), so this leaves an operator room to add one by hand while
// investigating; the kernel sizes its buckets from it (4/3 of it).
uint32_t hash_set_size(size_t n);

}  // namespace ef::fence
