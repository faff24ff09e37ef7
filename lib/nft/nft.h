// The only code that speaks nf_tables: encodes a fence::Ruleset into one
// netlink batch and decodes the kernel's dump back into a fence::Ruleset.
// All functions act on the network namespace the calling thread is in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fence/ruleset.h"

namespace ef::nft {

// Replaces table `inet egress_fence` (and `netdev egress_fence`, when `rs`
// has one) with `rs` in one transaction: NEWTABLE, DELTABLE, NEWTABLE + the
// whole body of each in a single batch, so the kernel either commits all of
// it or nothing. Then reads the table back on the
// same socket and throws if it differs from `rs` (a kernel that silently
// dropped something). Throws cni::Error{kNftRejected} with the errno and the
// object being added when the kernel refuses the batch.
void apply_ruleset(const fence::Ruleset& rs);

// Deletes table inet egress_fence, then table netdev egress_fence, each if
// present. Returns false when there was neither.
bool delete_table();

// Reads table `inet egress_fence` back (metadata, counters with values, sets
// with elements, chains, rules), with table `netdev egress_fence` when it
// exists. nullopt when the inet table does not exist.
std::optional<fence::Ruleset> read_ruleset();

// Names of every table in this netns with its family ("inet egress_fence",
// "ip filter", ...), and the base chains hooked on output/forward that are not
// ours, for CHECK's warnings.
struct ForeignChain {
    std::string family, table, chain, hook;
    int32_t priority;
    std::string policy;
};
std::vector<ForeignChain> foreign_base_chains();

// The warning CHECK and `inspect` give for `c`: it is reported, not failed,
// because an accept ends only its own base chain; the packet still meets
// ours on the same hook, so another chain can only drop more (bats/check.bats
// proves it, for a filter chain before ours and a nat chain numbered after).
std::string foreign_chain_warning(const ForeignChain& c);

// True when nf_tables answers in this netns (STATUS).
bool available(std::string& reason);

// --- pure parts, exposed for tests and fuzzing ---------------------------
// The metadata as the table can hold it: the kernel keeps at most 256 bytes
// of table userdata (NFT_USERDATA_MAXLEN), so values that do not fit are
// truncated, pod_name first, then container_id (then profile, pod_namespace,
// plugin_version, digest as a last resort), each truncated value ending in
// "~". Stored as nftnl_udata TLVs of types 0x40.. that `nft list` ignores.
// read_ruleset returns fit_metadata(m), not m: the metadata round trip is
// exact only for data that fit. apply_ruleset compares against this.
fence::Metadata fit_metadata(const fence::Metadata& in);

// The batch apply_ruleset sends, as raw netlink bytes (NFNL_MSG_BATCH_BEGIN ..
// END) with sequence numbers starting at `seq`.
std::vector<uint8_t> encode_batch(const fence::Ruleset& rs, uint32_t seq);

// Decodes a sequence of nf_tables NEW* messages (as a dump returns them, or as
// encode_batch produced them; batch begin/end and DELTABLE are skipped) into a
// Ruleset. Malformed input throws cni::Error{kNetlinkFailure}; never crashes.
fence::Ruleset decode_messages(const uint8_t* data, size_t len);

}  // namespace ef::nft
