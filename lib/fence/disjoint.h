// Making set elements disjoint. The kernel refuses overlapping elements in an
// interval set (EEXIST), for a plain address set (rbtree) and for a
// concatenation (pipapo) alike, while admins naturally write overlapping
// allow entries ("10.0.0.0/8 tcp 443" and "10.1.0.0/16 tcp 80-443"). The
// compiler therefore normalises: same set, same packets matched, no overlap,
// sorted. This is also what makes the compiled ruleset canonical.
#pragma once

#include <vector>

#include "fence/ruleset.h"

namespace ef::fence {

// One-field interval sets: overlapping or adjacent ranges are merged.
std::vector<Element> disjoint_ranges(const std::vector<Element>& elements);

// `address . protocol . port` sets (protocol an exact value): cut the address
// axis at every range boundary, merge the port ranges that cover each piece,
// then join neighbouring pieces with the same ports.
std::vector<Element> disjoint_addr_proto_port(const std::vector<Element>& elements);

}  // namespace ef::fence
