// How ADD and CHECK read a set's elements back (DESIGN.md "Verification of
// large sets"). Internal to nft/.
//
// nf_tables dumps a set's elements in chunks of at most 32 KiB and walks the
// set from its first element again for every chunk, so reading n elements
// back costs O(n^2 / chunk): 100,000 elements of a hash set took the kernel
// longer than installing them. Since Linux 6.16 the kernel reports each
// set's element count (NFTA_SET_COUNT) with its definition, so:
//  - a set whose elements fit one dump chunk, or on a kernel that reports no
//    count, is dumped and compared element by element, as always;
//  - ADD checks a larger set by its count: the batch that filled it is one
//    transaction, acknowledged message by message, so the kernel took every
//    element it was sent or none of the fence (docs/threat-model.md);
//  - CHECK proves a larger set equal to the intended one by its count and a
//    lookup of every intended element (non-dump GETSETELEM, which answers
//    each element of its list or fails at the first one missing), and dumps
//    it only when one of them says it differs, to name the differences.
// Sets of one field with intervals (rbtree) are always dumped: the kernel
// counts half their bounds (nft_rbtree_usize), which proves nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fence/ruleset.h"

namespace ef::nft {

// Attributes of a GETSET reply newer than Debian 12's kernel headers and
// libnftnl (Linux 6.16, include/uapi/linux/netfilter/nf_tables.h): the
// backend the kernel chose, a string ("%ps" of the backend's ops: its symbol
// name, or its address on a kernel without CONFIG_KALLSYMS_ALL, as here), and
// the number of elements.
inline constexpr uint16_t kNftaSetType = 19;   // NFTA_SET_TYPE
inline constexpr uint16_t kNftaSetCount = 20;  // NFTA_SET_COUNT

// What the kernel says about a set besides its definition.
struct KernelSet {
    std::string name;
    std::optional<uint32_t> count;  // NFTA_SET_COUNT; nullopt before Linux 6.16
    std::string backend;            // NFTA_SET_TYPE; "" before Linux 6.16
};

// The most element bytes a set may take in a dump and still come back in one
// chunk (the kernel fills dump skbs of up to 32 KiB; headroom for headers).
inline constexpr size_t kOneDumpChunk = size_t{30} * 1024;

// The bytes the elements of `s` take in a GETSETELEM dump.
size_t dump_bytes(const fence::Set& s);

enum class ElementRead : uint8_t {
    dump,    // every element, compared one by one
    count,   // ADD: the kernel's count of them
    lookup,  // CHECK: the count, then a lookup of every intended element
};

// How to read the elements of the set the kernel describes as `got` (its
// definition, no elements) and `k`, when the fence intends `want` (nullptr:
// a set the fence does not have). `check`: CHECK (lookups) rather than ADD.
ElementRead plan_elements(const fence::Set* want, const fence::Set& got, const KernelSet& k, bool check);

// Why the backend the kernel names for a set cannot hold `want` as declared
// ("" when it can, or when the kernel names none: without
// CONFIG_KALLSYMS_ALL its "%ps" is an address, as here). A set without
// intervals belongs in a hash (or bitmap), one field with intervals in the
// rbtree, a concatenation with intervals in pipapo. Which of those the kernel
// picks (fixed-size or resizable hash, pipapo with or without AVX2) changes
// its cost, not what it matches, so only the kind is checked.
std::string backend_mismatch(const fence::Set& want, const KernelSet& k);

}  // namespace ef::nft
