// The plugin config schema (DESIGN.md "Plugin config") as plain values, its
// validation, and pod selection. Pure: no I/O, no kernel.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ef::config {

enum class Protocol : uint8_t { tcp, udp, sctp, any };

struct PortRange {
    uint16_t lo;
    uint16_t hi;  // == lo for a single port
    bool operator==(const PortRange&) const = default;
};

// An address prefix. `addr` holds 4 (IPv4) or 16 (IPv6) bytes in network
// order with the host bits zero (a CIDR with host bits set is rejected).
struct Cidr {
    bool v6 = false;
    std::array<uint8_t, 16> addr{};
    uint8_t prefix = 0;
    bool operator==(const Cidr&) const = default;
};

struct AllowEntry {
    Cidr cidr;
    Protocol protocol = Protocol::any;
    std::vector<PortRange> ports;  // empty only when protocol == any
    bool operator==(const AllowEntry&) const = default;
};

enum class TcpDeny : uint8_t { reset, drop };
enum class Mode : uint8_t { enforce, audit };

struct LogSpec {
    uint32_t rate = 5;
    std::string unit = "second";  // second | minute | hour | day
    uint32_t burst = 10;
    std::string prefix = "egress-fence";
    bool operator==(const LogSpec&) const = default;
};

struct Profile {
    std::string name;
    std::vector<uint32_t> exempt_uids;  // sorted, unique
    std::vector<AllowEntry> allow;
    TcpDeny tcp_deny = TcpDeny::reset;
    Mode mode = Mode::enforce;
    std::optional<LogSpec> log;
    bool operator==(const Profile&) const = default;
};

struct UidRange {
    uint32_t lo;
    uint32_t hi;
    bool operator==(const UidRange&) const = default;
};

struct Selector {
    std::vector<std::string> namespaces;               // globs (* and ?); empty: any
    std::map<std::string, std::string> annotations;    // exact key=value; empty: any
    std::string profile;                               // must name a profile
    std::vector<std::string> allowed_profiles;         // profiles a pod may pick by annotation
    std::optional<std::string> exempt_uid_annotation;  // annotation naming an extra exempt UID
    std::optional<UidRange> exempt_uid_range;          // bound for that UID
};

// The egress-fence entry of a conflist (the plugin's own keys), validated.
struct PluginConfig {
    std::string log_file;                 // "" = no log file
    std::string log_level = "info";       // debug | info | warn | error
    std::string profile_annotation = "egress-fence.io/profile";
    std::vector<Selector> selectors;
    std::map<std::string, Profile> profiles;
};

// The whole stdin of a plugin invocation: CNI envelope + our config.
struct NetConf {
    std::string cni_version;
    std::string name;
    std::string type;
    PluginConfig plugin;
    std::optional<nlohmann::json> prev_result;  // as received
    std::map<std::string, std::string> pod_annotations;  // runtimeConfig["io.kubernetes.cri.pod-annotations"]
};

// One problem found in a config: `path` is a JSON pointer-ish path such as
// `profiles.proxy-only.allow[1].cidr`.
struct Problem {
    std::string path;
    std::string message;
};

// Validates the egress-fence entry (the object with "type": "egress-fence").
// Collects every problem; returns the config only when there are none.
// Unknown keys are problems. CNI envelope keys (cniVersion, name, type,
// capabilities, runtimeConfig, prevResult, args, ipam, dns) are accepted.
std::optional<PluginConfig> validate(const nlohmann::json& entry, std::vector<Problem>& problems);

// Parses and validates plugin stdin. Throws cni::Error: kDecodeFailure for
// JSON that does not parse (or is larger than max_bytes), kIncompatibleVersion
// for an unsupported cniVersion, kInvalidConfig for everything else; the
// message names the first problem's path, details list all of them.
NetConf parse_netconf(std::string_view stdin_bytes);

// Reads a file holding either the egress-fence entry or a whole conflist
// containing it (for render, validate and the installer). Throws cni::Error.
nlohmann::json find_entry(const nlohmann::json& doc);

// --- pod selection ---------------------------------------------------------
struct Pod {
    std::string namespace_;
    std::string name;
    std::string container_id;
    std::string uid;
    std::map<std::string, std::string> annotations;
};

// The profile a pod gets, with the effective exempt UIDs (the annotated one
// added) and its name as chosen. nullopt: no selector matched, the pod is not
// fenced. Throws cni::Error{kPodSelection} when the pod's annotations ask for
// a profile the selector does not allow or an exempt UID that is missing,
// malformed or out of bounds (fail closed).
std::optional<Profile> select_profile(const PluginConfig& cfg, const Pod& pod);

// `*` matches any run of characters (also empty), `?` any one character.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace ef::config
