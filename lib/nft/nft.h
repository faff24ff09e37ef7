// The only code that speaks nf_tables: encodes a fence::Ruleset into one
// netlink batch and decodes the kernel's dump back into a fence::Ruleset.
// All functions act on the network namespace the calling thread is in.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fence/ruleset.h"

namespace ef::nft {

// Installs `rs` as table `inet egress_fence` (and `netdev egress_fence`, when
// `rs` has one), each batch one transaction, so the kernel commits all of it
// or nothing. First a create batch: the tables added exclusively (NLM_F_EXCL)
// with their whole body, which frees nothing, so on a fresh pod netns the
// process does not wait out a grace period when it closes the socket. When a
// table already exists (re-ADD) the kernel refuses that batch with EEXIST,
// changing nothing, and a replace batch follows: NEWTABLE, DELTABLE, NEWTABLE
// + the whole body of each. Then reads the tables back on the same socket and
// throws if they differ from `rs` (a kernel that silently dropped something):
// every object exactly, but the elements of a set too large for one dump
// chunk, which the kernel's count of them vouches for when it reports one
// (NFTA_SET_COUNT, Linux 6.16+; nft/readback.h says why that is sound).
// Throws cni::Error{kNftRejected} with the errno and the object being added
// when the kernel refuses a batch for any other reason.
// When a table already exists and `merge` is given, the replace batch sends
// merge(the tables as read back) instead of `rs`, and the read-back compares
// against that: how a second attachment of a pod adds its part to the fence
// the first one installed.
using Merge = std::function<fence::Ruleset(const fence::Ruleset& existing)>;
void apply_ruleset(const fence::Ruleset& rs, const Merge& merge = {});

// The replace batch alone, then the same read-back as apply_ruleset: for a
// table known to exist (DEL of one attachment of several).
void replace_ruleset(const fence::Ruleset& rs);

// apply_ruleset()'s read-back alone, on a socket of its own (for the
// benchmark that times it as a phase): throws cni::Error{kNftRejected} unless
// this netns holds `rs` as apply_ruleset() checks it.
void verify_applied(const fence::Ruleset& rs);

// Deletes tables inet egress_fence and netdev egress_fence in one batch (one
// transaction, the inet table first) when either exists; each is added before
// it is deleted, so a missing one cannot fail the batch. Returns false when
// there was neither (nothing sent).
bool delete_table();

// Reads table `inet egress_fence` back (metadata, counters with values, sets
// with elements, chains, rules), with table `netdev egress_fence` when it
// exists. nullopt when the inet table does not exist.
std::optional<fence::Ruleset> read_ruleset();

// read_ruleset() for CHECK: the same value, read knowing what `expected`
// (the fence the config demands) holds. A set too large to come back in one
// dump chunk, on a kernel that reports its element count (Linux 6.16+), is
// proven equal to the expected one by its count and a lookup of every
// expected element, linear in the elements (a dump is quadratic); only when
// those say it differs are its elements dumped, to name the differences.
std::optional<fence::Ruleset> read_ruleset(const fence::Ruleset& expected);

// The base chains in this netns, of every table but inet egress_fence and of
// every family but netdev, hooked on output or forward (the hooks our fence
// uses), with their table, family, priority and policy: CHECK's and
// `inspect`'s warnings.
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

// apply_ruleset's replace batch (NEWTABLE, DELTABLE, NEWTABLE + body), as raw
// netlink bytes (NFNL_MSG_BATCH_BEGIN .. END) with sequence numbers starting
// at `seq`.
std::vector<uint8_t> encode_batch(const fence::Ruleset& rs, uint32_t seq);

// Decodes a sequence of nf_tables NEW* messages (as a dump returns them, or as
// encode_batch produced them; batch begin/end and DELTABLE are skipped) into a
// Ruleset. Malformed input throws cni::Error{kNetlinkFailure}; never crashes.
fence::Ruleset decode_messages(const uint8_t* data, size_t len);

}  // namespace ef::nft
