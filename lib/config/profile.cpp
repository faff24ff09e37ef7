// Validation of `profiles.<name>`: exempt UIDs, allow entries, deny style, log.
#include <algorithm>
#include <array>
#include <limits>
#include <tuple>

#include "config/json_shape.h"
#include "config/validate_parts.h"
#include "config/values.h"

namespace ef::config {

using namespace shape;

namespace {

constexpr std::array<std::string_view, 6> kProfileKeys = {"exemptUids", "allow", "tcpDeny",
                                                          "mode",       "log",   "inboundPeers"};
// More than a profile's inbound peers need; the set is looked up only by a
// connection's first inbound packet.
constexpr std::size_t kMaxInboundPeers = 4096;
constexpr std::array<std::string_view, 3> kAllowKeys = {"cidr", "protocol", "ports"};
constexpr std::array<std::string_view, 3> kLogKeys = {"rate", "burst", "prefix"};
constexpr std::array<std::string_view, 4> kProtocols = {"tcp", "udp", "sctp", "any"};
constexpr std::array<std::string_view, 2> kTcpDeny = {"reset", "drop"};
constexpr std::array<std::string_view, 2> kModes = {"enforce", "audit"};
constexpr std::array<std::string_view, 4> kRateUnits = {"second", "minute", "hour", "day"};
constexpr uint32_t kMaxUid = std::numeric_limits<uint32_t>::max();

std::optional<Cidr> read_cidr(const json& v, const std::string& path, std::vector<Problem>& problems) {
    auto text = read_string(v, path, problems);
    if (!text) return std::nullopt;
    std::string why;
    auto cidr = parse_cidr(*text, why);
    if (!cidr) add(problems, path, why);
    return cidr;
}

// `inboundPeers`: the prefixes whose inbound connections the pod may answer.
std::vector<Cidr> read_inbound_peers(const json& v, const std::string& path, std::vector<Problem>& problems) {
    std::vector<Cidr> out;
    if (!expect_array(v, path, problems)) return out;
    if (v.size() > kMaxInboundPeers)
        add(problems, path,
            "lists " + std::to_string(v.size()) + " prefixes; at most " + std::to_string(kMaxInboundPeers));
    for (std::size_t i = 0; i < v.size() && i < kMaxInboundPeers; ++i)
        if (auto c = read_cidr(v[i], item(path, i), problems)) out.push_back(*c);
    std::sort(out.begin(), out.end(), [](const Cidr& a, const Cidr& b) {
        return std::tie(a.v6, a.addr, a.prefix) < std::tie(b.v6, b.addr, b.prefix);
    });
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::optional<PortRange> read_port(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (v.is_string()) {
        std::string why;
        auto range = parse_port_range(v.get<std::string>(), why);
        if (!range) add(problems, path, why);
        return range;
    }
    if (!v.is_number()) {
        add_type_problem(problems, path, "a port number or a \"lo-hi\" string", v);
        return std::nullopt;
    }
    auto port = read_uint(v, path, 1, 65535, problems);
    if (!port) return std::nullopt;
    return PortRange{static_cast<uint16_t>(*port), static_cast<uint16_t>(*port)};
}

std::vector<PortRange> read_ports(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (!expect_array(v, path, problems)) return {};
    if (v.empty()) add(problems, path, "must list at least one port (use protocol \"any\" for every port)");
    std::vector<PortRange> ports;
    for (std::size_t i = 0; i < v.size(); ++i)
        if (auto p = read_port(v[i], item(path, i), problems)) ports.push_back(*p);
    return merge_ports(std::move(ports));
}

std::optional<Protocol> protocol_named(std::string_view name) {
    if (name == "tcp") return Protocol::tcp;
    if (name == "udp") return Protocol::udp;
    if (name == "sctp") return Protocol::sctp;
    if (name == "any") return Protocol::any;
    return std::nullopt;
}

AllowEntry read_allow_entry(const json& v, const std::string& path, std::vector<Problem>& problems) {
    AllowEntry entry;
    if (!expect_object(v, path, problems)) return entry;
    reject_unknown_keys(v, kAllowKeys, path, problems);

    if (!v.contains("cidr"))
        add(problems, child(path, "cidr"), "required key missing (an address prefix such as 10.0.0.0/8)");
    else if (auto cidr = read_cidr(v["cidr"], child(path, "cidr"), problems)) entry.cidr = *cidr;

    std::optional<Protocol> protocol;
    if (!v.contains("protocol"))
        add(problems, child(path, "protocol"), "required key missing (one of " + join(kProtocols) + ")");
    else if (auto name = read_choice(v["protocol"], child(path, "protocol"), kProtocols, problems))
        protocol = protocol_named(*name);
    if (protocol) entry.protocol = *protocol;

    const std::string ports_path = child(path, "ports");
    if (protocol == Protocol::any && v.contains("ports")) {
        add(problems, ports_path,
            "not allowed with protocol \"any\", which matches every port; use tcp, udp or "
            "sctp to restrict ports");
    } else if (protocol && protocol != Protocol::any && !v.contains("ports")) {
        const std::string name = v["protocol"].get<std::string>();
        add(problems, ports_path, "required key missing for protocol \"" + name + R"(" (numbers or "lo-hi" strings))");
    } else if (v.contains("ports")) {
        entry.ports = read_ports(v["ports"], ports_path, problems);
    }
    return entry;
}

// UID 0 is refused: most container images run as root, so exempting it would
// unfence the workload itself rather than a dedicated proxy user.
std::optional<uint32_t> read_exempt_uid(const json& v, const std::string& path, std::vector<Problem>& problems) {
    auto uid = read_uint(v, path, 0, kMaxUid, problems);
    if (uid == 0u) {
        add(problems, path,
            "UID 0 (root) cannot be exempt: most containers run as root, so this would unfence the "
            "workload; run the proxy as a dedicated non-root UID");
        return std::nullopt;
    }
    return uid;
}

std::vector<uint32_t> read_exempt_uids(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (!expect_array(v, path, problems)) return {};
    std::vector<uint32_t> uids;
    for (std::size_t i = 0; i < v.size(); ++i) {
        auto uid = read_exempt_uid(v[i], item(path, i), problems);
        if (!uid) continue;
        auto seen = std::find(uids.begin(), uids.end(), *uid);
        if (seen != uids.end()) add(problems, item(path, i), "UID " + std::to_string(*uid) + " is listed twice");
        else uids.push_back(*uid);
    }
    std::sort(uids.begin(), uids.end());
    return uids;
}

// A placeholder (read_stdin_json) stands for the next entry of `decoded`: one
// that read_allow_entry() would have given without a problem.
std::vector<AllowEntry> read_allow(const json& v, const std::string& path, std::vector<Problem>& problems,
                                   std::vector<AllowEntry>* decoded) {
    if (!expect_array(v, path, problems)) return {};
    if (decoded && decoded->size() == v.size()) return std::move(*decoded);  // every element was decoded
    std::vector<AllowEntry> allow;
    allow.reserve(v.size());
    std::size_t next = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i].is_discarded() && decoded && next < decoded->size()) allow.push_back(std::move((*decoded)[next++]));
        else allow.push_back(read_allow_entry(v[i], item(path, i), problems));
    }
    return allow;
}

// "N/unit", the shape of nftables' `limit rate N/unit`.
void read_rate(const json& v, const std::string& path, LogSpec& log, std::vector<Problem>& problems) {
    auto text = read_string(v, path, problems);
    if (!text) return;
    const auto slash = text->find('/');
    const std::string unit = slash == std::string::npos ? "" : text->substr(slash + 1);
    auto n = parse_decimal_u32(std::string_view(*text).substr(0, slash));
    if (!n || *n == 0 || std::find(kRateUnits.begin(), kRateUnits.end(), unit) == kRateUnits.end()) {
        add(problems, path,
            R"(expected "N/second", "N/minute", "N/hour" or "N/day" with N >= 1, found )" + describe(v));
        return;
    }
    log.rate = *n;
    log.unit = unit;
}

bool is_prefix_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

// The prefix lands in kernel log lines and in the nft rule; keep it to plain
// characters so it cannot forge or break log lines.
void read_log_prefix(const json& v, const std::string& path, LogSpec& log, std::vector<Problem>& problems) {
    auto prefix = read_string(v, path, problems);
    if (!prefix) return;
    if (prefix->size() > 20 || !std::all_of(prefix->begin(), prefix->end(), is_prefix_char)) {
        add(problems, path, "expected at most 20 characters of [A-Za-z0-9 ._:-], found " + describe(v));
        return;
    }
    log.prefix = *prefix;
}

LogSpec read_log(const json& v, const std::string& path, std::vector<Problem>& problems) {
    LogSpec log;
    if (!expect_object(v, path, problems)) return log;
    reject_unknown_keys(v, kLogKeys, path, problems);
    if (v.contains("rate")) read_rate(v["rate"], child(path, "rate"), log, problems);
    if (v.contains("burst"))
        if (auto burst = read_uint(v["burst"], child(path, "burst"), 1, 10000, problems)) log.burst = *burst;
    if (v.contains("prefix")) read_log_prefix(v["prefix"], child(path, "prefix"), log, problems);
    return log;
}

}  // namespace

Profile read_profile(const json& v, const std::string& name, const std::string& path, std::vector<Problem>& problems,
                     std::vector<AllowEntry>* decoded) {
    Profile profile;
    profile.name = name;
    if (!is_profile_name(name))
        add(problems, path,
            "profile name \"" + name +
                "\" must be 1-63 characters of [a-z0-9-], starting and ending "
                "with a letter or digit");
    if (!expect_object(v, path, problems)) return profile;
    reject_unknown_keys(v, kProfileKeys, path, problems);
    if (v.contains("exemptUids"))
        profile.exempt_uids = read_exempt_uids(v["exemptUids"], child(path, "exemptUids"), problems);
    if (v.contains("allow")) profile.allow = read_allow(v["allow"], child(path, "allow"), problems, decoded);
    if (v.contains("tcpDeny"))
        if (auto deny = read_choice(v["tcpDeny"], child(path, "tcpDeny"), kTcpDeny, problems))
            profile.tcp_deny = *deny == "drop" ? TcpDeny::drop : TcpDeny::reset;
    if (v.contains("mode"))
        if (auto mode = read_choice(v["mode"], child(path, "mode"), kModes, problems))
            profile.mode = *mode == "audit" ? Mode::audit : Mode::enforce;
    if (v.contains("log")) profile.log = read_log(v["log"], child(path, "log"), problems);
    if (v.contains("inboundPeers"))
        profile.inbound_peers = read_inbound_peers(v["inboundPeers"], child(path, "inboundPeers"), problems);
    return profile;
}

}  // namespace ef::config
