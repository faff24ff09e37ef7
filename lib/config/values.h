// Parsers for the scalar values of the config: address prefixes, port ranges,
// Kubernetes names, decimal UIDs. Each says why a value is wrong, in words a
// user can act on. Internal to lib/config (and its tests).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace ef::config {

// "10.0.0.0/8", "fd00::/64", or a bare address meaning one host (/32, /128).
// IPv6 text is parsed by inet_pton (::, embedded IPv4). A prefix with host
// bits set is refused with the network address as a suggestion.
std::optional<Cidr> parse_cidr(std::string_view text, std::string& why);
std::string format_cidr(const Cidr& cidr);

// "lo-hi" with 1 <= lo <= hi <= 65535.
std::optional<PortRange> parse_port_range(std::string_view text, std::string& why);

// Sorted by lo, overlapping and adjacent ranges merged: the form nftables
// interval sets need.
std::vector<PortRange> merge_ports(std::vector<PortRange> ports);

// Plain decimal, no sign, no spaces, no leading zeros, fits in 32 bits.
std::optional<uint32_t> parse_decimal_u32(std::string_view text);

// A profile name: a DNS label, ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$.
bool is_profile_name(std::string_view name);

// `text` in double quotes, for messages. Built by appending: GCC 12 reports a
// false -Wrestrict in `"\"" + std::string(text)` (operator+ inserting into a
// temporary at offset 0, GCC bug 105329) once it is inlined in Release builds.
std::string quoted(std::string_view text);

// A Kubernetes annotation key ([prefix/]name). nullopt when valid, else why not.
std::optional<std::string> annotation_key_problem(std::string_view key);

}  // namespace ef::config
