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

// The whole table for `pod` under `profile` (the profile as select_profile
// returned it: exempt UIDs already include an annotated one). The metadata's
// digest is filled in.
Ruleset compile(const config::Profile& profile, const config::Pod& pod);

// The log prefix for a pod: "<profile prefix> <namespace>/<name>: ", cut to
// kMaxLogPrefix, with characters nft would need to escape replaced by '_'.
std::string log_prefix(const config::LogSpec& log, const config::Pod& pod);

}  // namespace ef::fence
