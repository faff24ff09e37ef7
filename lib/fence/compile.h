// The fence compiler: an effective profile and the pod it is for -> the
// Ruleset that pod's netns must hold. Pure.
#pragma once

#include "config/config.h"
#include "fence/ruleset.h"

namespace ef::fence {

// Counter names, one per verdict class (DESIGN.md "Refuse fast").
inline constexpr const char* kCounterExempt = "exempt_accepted";
inline constexpr const char* kCounterAllowed = "allowed_accepted";
inline constexpr const char* kCounterTcpRefused = "tcp_refused";
inline constexpr const char* kCounterUdpRefused = "udp_refused";
// The kernel's ephemeral port range in a new netns (ip_local_port_range):
// connections into the pod to these ports are not marked inbound.
inline constexpr uint16_t kEphemeralLo = 32768, kEphemeralHi = 60999;
inline constexpr const char* kCounterOtherDropped = "other_dropped";
// A process's packet whose source address is not one of the pod's own
// (IPV6_FREEBIND, IPV6_PKTINFO, raw sockets), on any interface, lo included;
// and a forwarded packet that fails the strict reverse-path check.
inline constexpr const char* kCounterSpoofedDropped = "spoofed_dropped";
// MLD listener reports (RFC 3810, 2710), the pod's own among them: dropped,
// counted apart from the refusals.
inline constexpr const char* kCounterMldDropped = "mld_dropped";
// An audit profile counts what it would refuse under these names instead, and
// lets it through.
inline constexpr const char* kCounterWouldRefuseTcp = "would_refuse_tcp";
inline constexpr const char* kCounterWouldRefuseUdp = "would_refuse_udp";
inline constexpr const char* kCounterWouldDropOther = "would_drop_other";
inline constexpr const char* kCounterWouldDropSpoofed = "would_drop_spoofed";

// The bit of the conntrack mark the `inbound` chain sets on a connection whose
// first packet came into the pod on an interface other than lo, from a source
// routed back through that interface: only such connections may be answered
// (the reply direction of any other connection never leaves on its own
// merit). Bit 30: clear of the low bits service meshes use in pod netns.
inline constexpr uint32_t kInboundMark = 0x40000000;
// The chain every refusal goes to (jumped to with goto, so it ends the packet).
inline constexpr const char* kRefuseChain = "refuse";

// Longest log prefix the kernel keeps (NF_LOG_PREFIXLEN 128, with the NUL).
inline constexpr size_t kMaxLogPrefix = 127;

// --- raw frames (DESIGN.md "Raw frames") -----------------------------------
// The secmark the inet output and forward chains stamp on every packet as
// their first rule; the netdev egress chain on the pod's interface lets out
// only frames carrying it (plus ARP). A socket cannot set skb->secmark (unlike
// SO_MARK and SO_PRIORITY, which CAP_NET_RAW allows), so a frame written on an
// AF_PACKET socket arrives at egress without it. The value is far above any
// SID an LSM allocates (SELinux SIDs are small sidtab indexes): on a node
// where SELinux checks packet labels, our packets look unlabeled, not like
// some other domain's. A node that labels packets in the pod's netns with
// SECMARK rules of its own would have those labels overwritten.
inline constexpr uint32_t kPassedSecmark = 0x45460000;  // "EF\0\0"
// Counts frames the netdev chain drops (would drop, in an audit profile).
inline constexpr const char* kCounterRawDropped = "raw_dropped";
inline constexpr const char* kCounterWouldDropRaw = "would_drop_raw";
// The netdev chain of an attachment is this prefix plus its interface name.
inline constexpr const char* kEgressChainPrefix = "egress_";
// The interface when none is named: what kubelet's runtimes pass as CNI_IFNAME.
inline constexpr const char* kDefaultDevice = "eth0";
inline constexpr uint16_t kEtherTypeArp = 0x0806;

// One CNI attachment of the pod (Multus: eth0, net1, ...): its interface
// (CNI_IFNAME) and the IPv6 prefixes on that link (from prevResult), which are
// the only global destinations neighbour discovery may have.
struct Attachment {
    std::string ifname;
    std::vector<config::Cidr> onlink6;
    bool operator==(const Attachment&) const = default;
};

// The whole fence for `pod` under `profile` (the profile as select_profile
// returned it: exempt UIDs already include an annotated one): table inet
// egress_fence, and table netdev egress_fence with one egress chain per
// attachment. The metadata's digest is filled in. Attachments are taken in
// interface-name order, one per name. Throws cni::Error{kInvalidEnvironment}
// for an interface name the tables cannot carry.
Ruleset compile(const config::Profile& profile, const config::Pod& pod,
                const std::vector<Attachment>& attachments = {{kDefaultDevice, {}}});
// The same with the allow list given apart (profile.allow is not read): what
// config::select_profile_ref returns, with no copy of the list.
Ruleset compile(const config::Profile& profile, const std::vector<config::AllowEntry>& allow, const config::Pod& pod,
                const std::vector<Attachment>& attachments);

// The attachments a ruleset read from the kernel fences: one per egress
// chain of its netdev table (by the device it hooks), with the on-link
// prefixes of its `onlink6_<ifname>` set. In interface-name order.
std::vector<Attachment> attachments_of(const Ruleset& rs);

// `rs` (as read from the kernel) without the attachment on `ifname`: its
// egress chain, its on-link set and the rule that uses it; the rest as it is,
// counter values included. The metadata's digest is recomputed.
Ruleset without_attachment(Ruleset rs, const std::string& ifname);

// The log prefix for a pod: "<profile prefix> <namespace>/<name>: ", cut to
// kMaxLogPrefix, with characters nft would need to escape replaced by '_'.
std::string log_prefix(const config::LogSpec& log, const config::Pod& pod);

}  // namespace ef::fence
