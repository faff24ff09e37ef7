// The plugin config schema (DESIGN.md "Plugin config") as plain values, its
// validation, and pod selection. Pure: no I/O, no kernel.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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
    // `inboundPeers`: only connections coming in from these prefixes may be
    // answered (sorted, unique); nullopt: from anywhere.
    std::optional<std::vector<Cidr>> inbound_peers;
    // Set only by select_profile: the UID a pod annotation (exemptUidAnnotation)
    // added, also present in exempt_uids. Recorded so the table's metadata can
    // say which exemption came from the pod rather than the admin.
    std::optional<uint32_t> annotated_uid;
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
    // A pod annotation naming the version of a platform's CNI contract the pod
    // expects (OpenShell: openshell.ai/cni-contract-version); a version above
    // `max_contract_version`, or not a number, fails ADD (fail closed).
    std::optional<std::string> contract_version_annotation;
    uint32_t max_contract_version = 0;
};

// The egress-fence entry of a conflist (the plugin's own keys), validated.
struct PluginConfig {
    std::string log_file;            // "" = no log file
    std::string log_level = "info";  // debug | info | warn | error
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
    std::optional<nlohmann::json> prev_result;           // as received
    std::map<std::string, std::string> pod_annotations;  // runtimeConfig["io.kubernetes.cri.pod-annotations"]
    // Whether the runtime sent that key at all (even as null or {}: a pod with
    // no annotations). libcni injects a capability into runtimeConfig only when
    // the runtime supplies it, so a missing key means the runtime delivers no
    // annotations to any pod, and annotation selectors cannot be evaluated.
    bool annotations_delivered = false;
    std::optional<size_t> valid_attachments;  // GC: how many attachments the runtime still uses
};

// One problem found in a config: `path` is a JSON pointer-ish path such as
// `profiles.proxy-only.allow[1].cidr`.
struct Problem {
    std::string path;
    std::string message;
};

// Validates the egress-fence entry (the object with "type": "egress-fence").
// Appends every problem found (it does not stop at the first); returns the
// config only when it found none. Unknown keys are problems. The CNI envelope
// keys (cniVersion, name, runtimeConfig, prevResult, args, ipam, dns) are
// accepted and not checked here (parse_netconf checks what it uses).
// Normalises: exempt UIDs sorted, ports sorted with overlaps merged.
std::optional<PluginConfig> validate(const nlohmann::json& entry, std::vector<Problem>& problems);

// 100,000 allow entries are 6-7 MB of JSON.
inline constexpr std::size_t kMaxInputBytes = std::size_t{16} * 1024 * 1024;
inline constexpr std::size_t kMaxJsonDepth = 64;

// Decodes JSON text (strict RFC 8259, by simdjson: json_read.h) under the limits above,
// refusing repeated keys in an object. Throws cni::Error{kDecodeFailure}
// naming the byte position or the limit. Use it for config files too (egress-fence-ctl), so they decode
// exactly as the plugin's stdin does.
nlohmann::json parse_json(std::string_view bytes);

// Parses and validates plugin stdin. Throws cni::Error: kDecodeFailure for
// input that does not decode (parse_json) or is not a JSON object;
// kIncompatibleVersion for a missing or unsupported cniVersion;
// kInvalidConfig for everything else, with msg
// "invalid config: <first path>: <message>" and details listing every
// problem, one "path: message" per line.
NetConf parse_netconf(std::string_view stdin_bytes);
// The same for a text parsed already (the plugin parses its stdin once, for
// the envelope and for this).
class JsonText;
NetConf parse_netconf(const JsonText& stdin_text);

// Given a document holding either the egress-fence entry or a whole conflist
// ({"plugins": [...]}) with exactly one egress-fence entry, returns the entry;
// from a conflist, with the list's cniVersion and name filled in as libcni
// does when it runs the plugin. Throws cni::Error{kInvalidConfig}.
nlohmann::json find_entry(const nlohmann::json& doc);

// --- pod selection ---------------------------------------------------------
struct Pod {
    std::string namespace_;
    std::string name;
    std::string container_id;
    std::string uid;
    std::map<std::string, std::string> annotations;
    // false: the runtime delivers no annotations (NetConf::annotations_delivered),
    // so `annotations` being empty says nothing about the pod.
    bool annotations_delivered = true;
};

// The profile a pod gets, with the effective exempt UIDs (the annotated one
// added, and recorded in annotated_uid) and its name as chosen. nullopt: no
// selector matched, the pod is not fenced. Throws cni::Error{kPodSelection}
// when the pod's annotations ask for a profile the selector does not allow,
// or when its selector has exemptUidAnnotation and the UID is missing, not a
// plain decimal u32, 0 (root) or outside exemptUidRange (fail closed).
// When !pod.annotations_delivered, the first selector in order whose namespaces
// match and whose outcome depends on annotations (`annotations` or
// exemptUidAnnotation) throws kPodSelection saying the runtime delivers none:
// the pod might have been selected, so it is never passed unfenced. Selectors
// before it that match by namespace alone still win, with their own profile
// (profileAnnotation cannot be read).
std::optional<Profile> select_profile(const PluginConfig& cfg, const Pod& pod);

// What select_profile returns, without a copy of the profile's allow list
// (it may hold 100,000 entries): `head` is that profile with `allow` left
// empty, `allow` the config's own list, valid as long as `cfg` is.
struct ProfileRef {
    Profile head;
    const std::vector<AllowEntry>* allow;
};
std::optional<ProfileRef> select_profile_ref(const PluginConfig& cfg, const Pod& pod);

// `*` matches any run of characters (also empty), `?` any one character.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace ef::config
