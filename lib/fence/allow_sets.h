// The destination allowlist as nftables sets, laid out by the shape of the
// entries (docs/architecture.md, "Allow entries and their sets"): the compiler decides, the
// config never says. Internal to lib/fence.
//
// Every entry is cut into pieces: address prefix . protocol . one port range
// (or, for protocol `any`, the prefix alone). Pieces with the same prefix
// length L > 0 and the same ports form a group whose keys are exact once the
// address is cut to L bits, so a group can live in a hash set (O(1) insert and
// lookup whatever the count), looked up with the packet's address masked to L
// bits when L is shorter than the address:
//   one port            `allow4` (L full), `allow4_24`       key addr . proto . port
//   a port range lo-hi  `allow4_ports_8000_8100`, `allow4_24_ports_8000_8100`
//                       key addr . proto, then `th dport lo-hi`
//   protocol any        `allow4_any`, `allow4_any_24`         key addr
// Each group is one more lookup for every new flow, so per address family
// and kind (with ports, `any`) only the kMaxHashSets largest groups get one;
// the other pieces and /0 go to one interval set (`allow4_ranges`: pipapo in
// the kernel; `allow4_any_ranges`: rbtree), made disjoint (fence/disjoint.h).
// A packet is allowed when any set holds it, so the union of the sets
// matches exactly what the entries match.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "config/config.h"
#include "fence/ruleset.h"

namespace ef::fence {

// Hash sets per address family and kind (with ports / protocol `any`).
inline constexpr size_t kMaxHashSets = 8;

// One set of the allowlist and the matches of the rule that looks it up.
struct AllowSet {
    Set set;
    std::vector<Stmt> match;
};

// The sets `allow` needs (none for an empty list), in the order their rules
// go in the chains: IPv4 then IPv6 entries with ports, then IPv4 and IPv6
// `any` entries; within each, hash sets from the longest prefix (one port
// before port ranges, ranges by their first port), then the interval set.
// Elements in canonical order.
std::vector<AllowSet> allow_sets(const std::vector<config::AllowEntry>& allow);

// The size a hash set holding `n` elements is created with: n rounded up to
// a power of two, at least 16. The kernel refuses elements beyond it
// (ENFILE), so this leaves an operator room to add one by hand while
// investigating; the kernel sizes its buckets from it (4/3 of it).
uint32_t hash_set_size(size_t n);

}  // namespace ef::fence
