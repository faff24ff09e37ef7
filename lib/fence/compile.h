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
inline constexpr const char* kCounterOtherDropped = "other_dropped";
// An audit profile counts what it would refuse under these names instead, and
// lets it through.
inline constexpr const char* kCounterWouldRefuseTcp = "would_refuse_tcp";
inline constexpr const char* kCounterWouldRefuseUdp = "would_refuse_udp";
inline constexpr const char* kCounterWouldDropOther = "would_drop_other";

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
inline constexpr const char* kEgressChain = "egress";
// The interface when none is named: what kubelet's runtimes pass as CNI_IFNAME.
inline constexpr const char* kDefaultDevice = "eth0";
inline constexpr uint16_t kEtherTypeArp = 0x0806;

// The whole fence for `pod` under `profile` (the profile as select_profile
// returned it: exempt UIDs already include an annotated one): table inet
// egress_fence, and table netdev egress_fence on `device`, the pod's
// interface (CNI_IFNAME). The metadata's digest is filled in.
Ruleset compile(const config::Profile& profile, const config::Pod& pod, const std::string& device = kDefaultDevice);
// The same with the allow list given apart (profile.allow is not read): what
// config::select_profile_ref returns, with no copy of the list.
Ruleset compile(const config::Profile& profile, const std::vector<config::AllowEntry>& allow, const config::Pod& pod,
                const std::string& device = kDefaultDevice);

// The log prefix for a pod: "<profile prefix> <namespace>/<name>: ", cut to
// kMaxLogPrefix, with characters nft would need to escape replaced by '_'.
std::string log_prefix(const config::LogSpec& log, const config::Pod& pod);

}  // namespace ef::fence
