// The fuzz targets' entry functions, one per input surface, shared by the
// libFuzzer binaries (tests/fuzz/fuzzer.cpp) and the unit test that replays
// every seed and every kept crash (tests/unit/fuzz_regressions_test.cpp).
//
// Header-only so the unit test compiles it without the fuzz build. Each entry
// feeds arbitrary bytes to the library the way the plugin or the installer
// does. A cni::Error is the library refusing bad input: expected. Anything
// else escaping an entry is a finding: a crash, a sanitizer report, another
// exception type (the plugin would answer "internal error"), or a broken
// promise of the contracts in lib/ (thrown as InvariantBroken).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <linux/netlink.h>

#include <nlohmann/json.hpp>

#include "cni/error.h"
#include "cni/protocol.h"
#include "cni/version.h"
#include "config/config.h"
#include "config/envelope.h"
#include "config/json_read.h"
#include "config/validate_parts.h"
#include "fence/compile.h"
#include "fence/diff.h"
#include "fence/ruleset.h"
#include "install/conf_dir.h"
#include "install/conflist.h"
#include "nft/nft.h"

namespace ef::fuzz {

// A promise of lib/'s contracts that did not hold for some input.
struct InvariantBroken : std::logic_error {
    using std::logic_error::logic_error;
};

inline void require(bool holds, const std::string& what) {
    if (!holds) throw InvariantBroken(what);
}

inline std::string_view text_of(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// --- shared fixtures -------------------------------------------------------------

// The OpenShell-style config of DESIGN.md, plus a profile no pod may get: the
// selectors that mention it can never match a namespace.
inline constexpr std::string_view kFixedConfig = R"({
  "cniVersion": "1.0.0", "name": "fuzz-net", "type": "egress-fence",
  "capabilities": {"io.kubernetes.cri.pod-annotations": true},
  "profileAnnotation": "egress-fence.io/profile",
  "selectors": [
    {"namespaces": ["no-pod-lives-here"], "profile": "wide-open"},
    {"annotations": {"openshell.ai/cni": "enabled"}, "profile": "proxy-only",
     "allowedProfiles": ["closed"],
     "exemptUidAnnotation": "openshell.ai/proxy-uid", "exemptUidRange": {"min": 1000, "max": 65535}},
    {"namespaces": ["sandboxes", "agents-*"], "profile": "proxy-only",
     "allowedProfiles": ["proxy-only", "proxy-and-dns"]}
  ],
  "profiles": {
    "proxy-only": {"exemptUids": [1337],
      "allow": [{"cidr": "10.96.0.10/32", "protocol": "udp", "ports": [53]},
                {"cidr": "fd00:10:96::a/128", "protocol": "tcp", "ports": [53, "8000-8100"]}],
      "log": {"rate": "5/second", "burst": 10, "prefix": "egress-fence"}},
    "proxy-and-dns": {"exemptUids": [1337],
      "allow": [{"cidr": "10.96.0.10/32", "protocol": "udp", "ports": [53]}]},
    "closed": {},
    "wide-open": {"exemptUids": [1, 1000], "allow": [{"cidr": "0.0.0.0/0", "protocol": "any"},
                                                    {"cidr": "::/0", "protocol": "any"}]}
  }
})";

inline const config::NetConf& fixed_netconf() {
    static const config::NetConf conf = config::parse_netconf(kFixedConfig);
    return conf;
}

// The installer's plugin config (tests/corpus/plugin-config.json, as a conflist entry).
inline const install::Json& fixed_entry() {
    static const install::Json entry = install::Json::parse(R"({
      "type": "egress-fence",
      "capabilities": {"io.kubernetes.cri.pod-annotations": true},
      "logLevel": "info",
      "selectors": [{"namespaces": ["sandboxes"], "profile": "proxy-only"}],
      "profiles": {"proxy-only": {"exemptUids": [1337],
        "allow": [{"cidr": "10.96.0.10/32", "protocol": "udp", "ports": [53]}]}}
    })");
    return entry;
}

inline config::Pod pod_in(std::string ns, std::map<std::string, std::string> annotations) {
    return config::Pod{std::move(ns), "fuzz-pod", "0123456789abcdef", "uid-1", std::move(annotations)};
}

// A namespace each selector glob matches ('*' -> "x", '?' -> "y"), and one
// that no glob of the fixed config matches.
inline std::vector<std::string> namespaces_for(const config::PluginConfig& cfg) {
    std::set<std::string> out{"default"};
    for (const auto& s : cfg.selectors)
        for (std::string ns : s.namespaces) {
            std::replace(ns.begin(), ns.end(), '*', 'x');
            std::replace(ns.begin(), ns.end(), '?', 'y');
            out.insert(ns);
            if (out.size() >= 8) return {out.begin(), out.end()};
        }
    return {out.begin(), out.end()};
}

// ADD then CHECK without a kernel: what apply_ruleset sends must decode to
// exactly what was compiled (metadata as the table can hold it), or CHECK
// would report a fence it installed itself as tampered with.
inline void require_batch_roundtrip(const fence::Ruleset& rs) {
    auto bytes = nft::encode_batch(rs, 1);
    fence::Ruleset got = nft::decode_messages(bytes.data(), bytes.size());
    fence::Ruleset want = rs;
    want.meta = nft::fit_metadata(rs.meta);
    require(got == want, "decode_messages(encode_batch(rs)) != rs");
    require(fence::diff(rs, got).empty(), "diff(rs, decode(encode(rs))) is not empty");
}

// What a selection may give a pod: the profile it names, as the admin wrote
// it, plus at most the one UID its annotation named (DESIGN.md: annotations
// can only narrow or select, never widen).
inline void require_not_widened(const config::PluginConfig& cfg, const config::Pod& pod, const config::Profile& got) {
    auto it = cfg.profiles.find(got.name);
    require(it != cfg.profiles.end(), "selected profile '" + got.name + "' does not exist");
    const config::Profile& admin = it->second;
    require(got.allow == admin.allow, "selection changed the allow list of " + got.name);
    require(got.tcp_deny == admin.tcp_deny && got.mode == admin.mode && got.log == admin.log,
            "selection changed tcpDeny, mode or log of " + got.name);
    require(std::is_sorted(got.exempt_uids.begin(), got.exempt_uids.end()) &&
                std::adjacent_find(got.exempt_uids.begin(), got.exempt_uids.end()) == got.exempt_uids.end(),
            "exempt UIDs not sorted and unique");
    for (uint32_t uid : got.exempt_uids) {
        bool admins = std::find(admin.exempt_uids.begin(), admin.exempt_uids.end(), uid) != admin.exempt_uids.end();
        require(admins || got.annotated_uid == uid, "UID " + std::to_string(uid) + " exempt without the admin's word");
    }
    if (got.annotated_uid) {
        require(*got.annotated_uid != 0, "root exempted by annotation");
        require(std::find(got.exempt_uids.begin(), got.exempt_uids.end(), *got.annotated_uid) != got.exempt_uids.end(),
                "annotated UID not in exempt_uids");
    }
    auto asked = pod.annotations.find(cfg.profile_annotation);
    if (asked != pod.annotations.end()) require(got.name == asked->second, "profile annotation ignored");
}

// --- fuzz_netconf: plugin stdin -> parse_netconf -> selection -> compile ---------
// The envelope (what DEL reads) is read from every input (it never throws) and
// must agree with parse_netconf wherever that accepts the input.
inline void netconf(const uint8_t* data, size_t size) {
    const config::Envelope envelope = config::read_envelope(text_of(data, size));
    config::NetConf conf;
    try {
        conf = config::parse_netconf(text_of(data, size));
    } catch (const cni::Error&) {
        return;
    }
    require(cni::is_supported_version(conf.cni_version), "accepted cniVersion " + conf.cni_version);
    require(envelope.cni_version == conf.cni_version && envelope.log_file == conf.plugin.log_file &&
                envelope.log_level == conf.plugin.log_level,
            "the envelope disagrees with parse_netconf");
    for (const auto& ns : namespaces_for(conf.plugin)) {
        config::Pod pod = pod_in(ns, conf.pod_annotations);
        pod.annotations_delivered = conf.annotations_delivered;
        std::optional<config::Profile> profile;
        try {
            profile = config::select_profile(conf.plugin, pod);
        } catch (const cni::Error&) {
            continue;
        }
        if (!profile) continue;
        require_not_widened(conf.plugin, pod, *profile);
        fence::Ruleset rs;
        try {
            rs = fence::compile(*profile, pod);
        } catch (const cni::Error&) {
            continue;
        }
        require(rs.meta.digest == fence::digest(rs), "metadata digest is not digest(rs)");
        (void)fence::to_nft_text(rs, true);
        require_batch_roundtrip(rs);
    }
    const nlohmann::json* prev = conf.prev_result ? &*conf.prev_result : nullptr;
    std::string out = cni::result_for_version(prev, conf.cni_version).dump();
    require(config::parse_json(out).is_object(), "the printed result does not parse");
}

// --- fuzz_cni_args: CNI_ARGS -> parse_args, and CNI_IFNAME -> the raw-frame chain --
// The same bytes as CNI_IFNAME: the device the netdev chain hooks must come
// back from the batch as given, or the encoder must refuse it.
inline void ifname(std::string_view name) {
    // An environment variable cannot hold a NUL.
    if (name.find('\0') != std::string_view::npos) return;
    config::Pod pod = pod_in("sandboxes", {});
    const config::Profile& profile = fixed_netconf().plugin.profiles.at("proxy-only");
    fence::Ruleset rs;
    try {
        rs = fence::compile(profile, pod, {{std::string(name), {}}});
        require_batch_roundtrip(rs);
    } catch (const cni::Error&) {
    }
}

inline void cni_args(const uint8_t* data, size_t size) {
    // Compiling costs 100x parse_args; past IFNAMSIZ the encoder only refuses.
    if (size <= 32) ifname(text_of(data, size));
    cni::Args args;
    try {
        args = cni::parse_args(text_of(data, size));
    } catch (const cni::Error&) {
        return;
    }
    static const std::set<std::string> known = {"K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID",
                                                "K8S_POD_UID", "IgnoreUnknown"};
    std::string again;
    for (const auto& [k, v] : args.all) {
        require(!k.empty() && k.find_first_of(";=") == std::string::npos, "bad key '" + k + "'");
        require(v.find(';') == std::string::npos, "value of " + k + " holds ';'");
        require(args.ignore_unknown || known.contains(k), "unknown key " + k + " accepted without IgnoreUnknown");
        again.append(k).append("=").append(v).append(";");
    }
    auto value = [&](const char* k) {
        auto it = args.all.find(k);
        return it == args.all.end() ? std::string{} : it->second;
    };
    require(args.pod_namespace == value("K8S_POD_NAMESPACE") && args.pod_name == value("K8S_POD_NAME") &&
                args.infra_container_id == value("K8S_POD_INFRA_CONTAINER_ID") && args.pod_uid == value("K8S_POD_UID"),
            "a K8S_POD_* field differs from its pair");
    require(cni::parse_args(again).all == args.all, "parse_args(serialised args) differs");
}

// --- fuzz_annotations: pod annotations -> selection ----------------------------------
// The bytes are the runtimeConfig annotations object spliced into the fixed
// config's stdin (the plugin's real path: duplicate keys, types, escapes), and
// also, read as "key=value" lines, a map handed to select_profile directly.
inline void select_fixed(const config::PluginConfig& cfg, const std::map<std::string, std::string>& annotations) {
    for (const char* ns : {"sandboxes", "agents-x", "default", "no-pod-lives-here-not"}) {
        config::Pod pod = pod_in(ns, annotations);
        std::optional<config::Profile> got;
        try {
            got = config::select_profile(cfg, pod);
        } catch (const cni::Error&) {
            continue;
        }
        if (!got) continue;
        require(got->name != "wide-open", "a pod in " + std::string(ns) + " got profile wide-open");
        require_not_widened(cfg, pod, *got);
        if (got->annotated_uid)
            require(*got->annotated_uid >= 1000 && *got->annotated_uid <= 65535,
                    "annotated UID outside exemptUidRange");
    }
}

inline void annotations(const uint8_t* data, size_t size) {
    const config::PluginConfig& cfg = fixed_netconf().plugin;
    std::string_view text = text_of(data, size);

    std::string in(kFixedConfig.substr(0, kFixedConfig.rfind('}')));
    in += R"(, "runtimeConfig": {"io.kubernetes.cri.pod-annotations": )";
    in += text;
    in += "}}";
    try {
        config::NetConf conf = config::parse_netconf(in);
        require(conf.plugin.profiles == cfg.profiles, "the annotations changed the profiles");
        select_fixed(conf.plugin, conf.pod_annotations);
    } catch (const cni::Error&) {
    }

    std::map<std::string, std::string> lines;
    while (!text.empty()) {
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        auto eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        lines[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
    select_fixed(cfg, lines);
}

// --- fuzz_prev_result: prevResult -> result_for_version, every version -------------
inline bool is_v1(std::string_view version) { return version.starts_with("1."); }

inline void require_result(const nlohmann::json* prev, std::string_view version) {
    nlohmann::json r = cni::result_for_version(prev, version);
    require(r.is_object() && r.value("cniVersion", "") == version, "result lacks cniVersion " + std::string(version));
    if (prev && prev->is_object())
        for (const auto& [k, v] : prev->items())
            if (k != "cniVersion" && k != "ips") require(r.contains(k) && r[k] == v, "result changed key " + k);
    if (r.contains("ips") && r["ips"].is_array())
        for (const auto& ip : r["ips"]) {
            if (!ip.is_object()) continue;
            if (is_v1(version)) require(!ip.contains("version"), std::string(version) + " result keeps ips[].version");
            else if (ip.contains("address") && ip["address"].is_string())
                require(ip.contains("version"), std::string(version) + " result lacks ips[].version");
        }
    // What the runtime reads back must parse, and print the same again.
    std::string out = r.dump();
    require(config::parse_json(out).dump() == out, "the printed result does not read back");
}

inline void prev_result(const uint8_t* data, size_t size) {
    std::string_view text = text_of(data, size);
    for (auto version : cni::kSupportedVersions) {
        std::string in =
            R"({"cniVersion": ")" + std::string(version) +
            R"(", "name": "fuzz-net", "type": "egress-fence", "selectors": [], "profiles": {}, "prevResult": )";
        in += text;
        in += "}";
        try {
            config::NetConf conf = config::parse_netconf(in);
            require(conf.cni_version == version, "cniVersion changed");
            require_result(conf.prev_result ? &*conf.prev_result : nullptr, version);
        } catch (const cni::Error&) {
        }
    }
    nlohmann::json doc;
    try {
        doc = config::parse_json(text);
    } catch (const cni::Error&) {
        return;
    }
    for (auto version : cni::kSupportedVersions) require_result(&doc, version);
    require_result(nullptr, "1.1.0");
}

// --- fuzz_conflist: conf dir discovery, owned/chained install, verify, uninstall ----
// The bytes are a conf dir: files, each introduced by a line "=== NAME"; bytes
// before the first such line are the file "10-primary.conflist".
inline std::vector<install::ConfFile> conf_dir_of(std::string_view text) {
    std::vector<install::ConfFile> files;
    install::ConfFile current{"10-primary.conflist", ""};
    bool any = false;
    while (!text.empty()) {
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end == std::string_view::npos ? text.size() : end + 1);
        text.remove_prefix(line.size());
        if (line.starts_with("=== ")) {
            if (any || !current.content.empty()) files.push_back(std::move(current));
            std::string_view name = line.substr(4);
            if (name.ends_with('\n')) name.remove_suffix(1);
            current = {std::string(name), ""};
            any = true;
        } else {
            current.content += line;
        }
    }
    if (any || !current.content.empty()) files.push_back(std::move(current));
    return files;
}

inline void conflist(const uint8_t* data, size_t size) {
    std::vector<install::ConfFile> files = conf_dir_of(text_of(data, size));
    const install::Json& entry = fixed_entry();
    try {
        (void)install::verify(files, std::nullopt);
        (void)install::verify(files, entry);
    } catch (const cni::Error&) {
    }
    for (const auto& f : files) {
        std::string why_not;
        (void)install::load_network(f, why_not);
        try {
            (void)install::render_unchained(f);
        } catch (const cni::Error&) {
        }
    }

    // Owned mode: the copy install writes must be what the runtime then uses
    // (when it sorts first) and what verify calls fenced.
    if (auto primary = install::discover(files, false).chosen) {
        std::string owned;
        try {
            install::check_chainable(*primary);
            owned = install::render_owned(*primary, entry);
        } catch (const cni::Error&) {
        }
        if (!owned.empty()) {
            std::vector<install::ConfFile> after = files;
            std::erase_if(after, [](const install::ConfFile& f) { return f.name == install::kOwnedFile; });
            after.push_back({std::string(install::kOwnedFile), owned});
            std::string why_not;
            require(install::load_network(after.back(), why_not).has_value(), "owned copy does not load: " + why_not);
            auto chosen = install::discover(after, true).chosen;
            if (chosen && chosen->file == install::kOwnedFile) {
                auto v = install::verify(after, entry);
                require(v.fenced, "verify after owned install: " + v.reason);
            }
        }
    }

    // Chained mode on each conflist: the edited file loads, ends with the
    // entry, re-installing changes nothing, and uninstall restores the bytes.
    for (const auto& f : files) {
        std::string edited;
        try {
            edited = install::render_chained(f, entry);
        } catch (const cni::Error&) {
            continue;
        }
        install::ConfFile after{f.name, edited};
        std::string why_not;
        auto net = install::load_network(after, why_not);
        require(net.has_value(), "chained file does not load: " + why_not);
        const auto& plugins = net->list.at("plugins");
        require(!plugins.empty() && install::is_fence_entry(plugins.back()), "chained entry is not last");
        require(install::render_chained(after, entry) == edited, "chained install is not idempotent");
        auto restored = install::render_unchained(after);
        require(restored.has_value(), "uninstall finds nothing to undo after install");
        std::string why;
        auto before = install::load_network(f, why);
        bool pristine = before && !before->list.contains(std::string(install::kSourceKey)) &&
                        std::none_of(before->list.at("plugins").begin(), before->list.at("plugins").end(),
                                     install::is_fence_entry);
        if (pristine) require(*restored == f.content, "uninstall does not restore the original bytes");
    }
}

// --- fuzz_netlink: nf_tables messages -> decode_messages (CHECK's reader) -------------
// The ruleset CHECK compares a decoded table with: the fixed config's
// proxy-only profile for an OpenShell pod.
inline const fence::Ruleset& reference_ruleset() {
    static const fence::Ruleset rs = [] {
        config::Pod pod = pod_in("sandboxes", {{"openshell.ai/cni", "enabled"}, {"openshell.ai/proxy-uid", "2000"}});
        return fence::compile(*config::select_profile(fixed_netconf().plugin, pod), pod);
    }();
    return rs;
}

inline void check_decoded(const uint8_t* data, size_t size) {
    fence::Ruleset rs;
    try {
        rs = nft::decode_messages(data, size);
    } catch (const cni::Error&) {
        return;
    }
    // What CHECK, inspect and metrics do with a table read back.
    (void)fence::diff(reference_ruleset(), rs);
    (void)fence::to_nft_text(rs, true);
    (void)fence::digest(rs);
}

inline void netlink(const uint8_t* data, size_t size) { check_decoded(data, size); }

// --- fuzz_netlink_batch: byte edits of valid encode_batch output ---------------------
struct Batch {
    fence::Ruleset rs;
    std::vector<uint8_t> bytes;  // encode_batch(rs, 1)
};

// Rulesets of every shape the compiler makes, encoded as apply_ruleset would.
inline const std::vector<Batch>& base_batches() {
    static const std::vector<Batch> batches = [] {
        std::vector<fence::Ruleset> rulesets;
        const config::PluginConfig& cfg = fixed_netconf().plugin;
        std::vector<config::Pod> pods = {
            pod_in("sandboxes", {}),
            pod_in("sandboxes", {{"egress-fence.io/profile", "proxy-and-dns"}}),
            pod_in("default", {{"openshell.ai/cni", "enabled"}, {"openshell.ai/proxy-uid", "4242"}}),
            pod_in("default", {{"openshell.ai/cni", "enabled"},
                               {"openshell.ai/proxy-uid", "1000"},
                               {"egress-fence.io/profile", "closed"}}),
        };
        rulesets.reserve(pods.size());
        for (const auto& pod : pods) rulesets.push_back(fence::compile(*config::select_profile(cfg, pod), pod));
        config::Profile audit = cfg.profiles.at("wide-open");
        audit.name = "wide-open";
        audit.mode = config::Mode::audit;
        audit.tcp_deny = config::TcpDeny::drop;
        audit.log = config::LogSpec{};
        rulesets.push_back(fence::compile(audit, pods[0]));
        std::vector<Batch> out;
        for (auto& rs : rulesets) {
            auto bytes = nft::encode_batch(rs, 1);
            out.push_back({std::move(rs), std::move(bytes)});
        }
        return out;
    }();
    return batches;
}

// Input: [base index][flags] then (offset lo, offset hi, byte) triples, each
// overwriting one byte of the chosen batch. Flag bit 0 restores every
// message's nlmsg_len afterwards, so the edits reach the attribute parsers
// instead of the framing; bit 1 cuts the batch at the offset of the last triple.
inline void netlink_batch(const uint8_t* data, size_t size) {
    if (size < 1) return;
    const Batch& base = base_batches()[data[0] % base_batches().size()];
    if (size < 3) {
        // No edits: the batch must decode to what was encoded.
        require_batch_roundtrip(base.rs);
        return;
    }
    std::vector<uint8_t> b = base.bytes;
    uint8_t flags = data[1];
    size_t cut = b.size();
    for (size_t i = 2; i + 3 <= size; i += 3) {
        size_t off = (size_t(data[i]) | size_t(data[i + 1]) << 8) % b.size();
        b[off] = data[i + 2];
        cut = off;
    }
    if (flags & 1) {
        for (size_t off = 0; off + sizeof(nlmsghdr) <= b.size();) {
            nlmsghdr h;
            std::memcpy(&h, base.bytes.data() + off, sizeof h);
            std::memcpy(b.data() + off, &h.nlmsg_len, sizeof h.nlmsg_len);
            off += NLMSG_ALIGN(h.nlmsg_len);
        }
    }
    if (flags & 2) b.resize(cut);
    check_decoded(b.data(), b.size());
}

// --- fuzz_json: the simdjson reader against nlohmann's parser on the same bytes -----
// The reference: nlohmann's SAX parser building the document as parse_json
// did before simdjson (a repeated key refused when it is read). read_json
// must accept what it accepts, with the same document (types included, but
// `-0`: simdjson's tape cannot tell it from `0`, so it is unsigned there and
// signed in nlohmann), and refuse what it refuses; the only other refusals
// are nesting beyond kMaxJsonDepth, at the bracket where it happens, and a
// NUL byte after the value. scan_json (the envelope) and read_stdin_json
// (plugin stdin, the allow path) must agree with read_json.
class ReferenceBuilder {
  public:
    using json = nlohmann::json;
    explicit ReferenceBuilder(json& root) : root_(root) {}
    bool null() { return place(nullptr); }
    bool boolean(bool v) { return place(v); }
    bool number_integer(json::number_integer_t v) { return place(v); }
    bool number_unsigned(json::number_unsigned_t v) { return place(v); }
    bool number_float(json::number_float_t v, const json::string_t&) { return place(v); }
    bool string(json::string_t& v) { return place(std::move(v)); }
    bool binary(json::binary_t& v) { return place(json::binary(std::move(v))); }
    bool start_object(std::size_t) {
        open_.push_back(slot(json::object()));
        return true;
    }
    bool key(json::string_t& k) {
        json& object = *open_.back();
        if (object.contains(k))
            throw cni::Error(cni::kDecodeFailure, "key \"" + k + "\" appears twice in one JSON object; remove one");
        member_ = &object[k];
        return true;
    }
    bool end_object() { return close(); }
    bool start_array(std::size_t) {
        open_.push_back(slot(json::array()));
        return true;
    }
    bool end_array() { return close(); }
    template <class Exception>
    bool parse_error(std::size_t, const std::string&, const Exception& e) {
        throw e;
    }

  private:
    bool place(json v) {
        slot(std::move(v));
        return true;
    }
    bool close() {
        open_.pop_back();
        return true;
    }
    json* slot(json v) {
        if (open_.empty()) {
            root_ = std::move(v);
            return &root_;
        }
        json& parent = *open_.back();
        if (parent.is_array()) {
            parent.push_back(std::move(v));
            return &parent.back();
        }
        *member_ = std::move(v);
        return member_;
    }
    json& root_;
    std::vector<json*> open_;
    json* member_ = nullptr;
};

// Equal values of equal types (nlohmann's == calls 1, 1u and 1.0 equal); an
// integer zero is one value whether signed or unsigned (`-0`, above).
inline bool same_json(const nlohmann::json& a, const nlohmann::json& b) {
    const auto integer_zero = [](const nlohmann::json& v) { return v.is_number_integer() && v == 0; };
    if (integer_zero(a) && integer_zero(b)) return true;
    if (a.type() != b.type()) return false;
    if (a.is_array()) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i)
            if (!same_json(a[i], b[i])) return false;
        return true;
    }
    if (a.is_object()) {
        if (a.size() != b.size()) return false;
        for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
            if (ia.key() != ib.key() || !same_json(ia.value(), ib.value())) return false;
        return true;
    }
    if (a.is_number_float()) {
        const double x = a.get<double>(), y = b.get<double>();
        return x == y && std::signbit(x) == std::signbit(y);
    }
    return a == b;
}

// The byte (1-based) our reader's message names first, or 0.
inline size_t byte_named(const std::string& msg) {
    const auto at = msg.find("byte ");
    if (at == std::string::npos) return 0;
    return std::strtoull(msg.c_str() + at + 5, nullptr, 10);
}

// Whether the brackets outside strings in `text` reach depth kMaxJsonDepth + 1
// exactly at its last byte.
inline bool nesting_exceeded_at_end(std::string_view text) {
    size_t depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > config::kMaxJsonDepth) return i + 1 == text.size();
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

struct Problems {
    std::vector<config::Problem> list;
    bool operator==(const Problems& o) const {
        if (list.size() != o.list.size()) return false;
        for (size_t i = 0; i < list.size(); ++i)
            if (list[i].path != o.list[i].path || list[i].message != o.list[i].message) return false;
        return true;
    }
};

// validate() of the document path and of the allow path, on a document both
// decoded: the same problems, the same profiles.
inline void require_same_validation(const nlohmann::json& dom, std::string_view text) {
    config::DecodedAllow decoded;
    const nlohmann::json fast = config::read_stdin_json(text, decoded);
    Problems a, b;
    auto cfg_a = config::validate(dom, a.list);
    auto cfg_b = config::validate(fast, b.list, &decoded);
    require(a == b, "the allow path reports other problems than the document path");
    require(cfg_a.has_value() == cfg_b.has_value(), "the allow path and the document path disagree on validity");
    if (cfg_a) require(cfg_a->profiles == cfg_b->profiles, "the allow path decodes other profiles");
}

inline void json_reader(const uint8_t* data, size_t size) {
    const std::string_view text = text_of(data, size);
    std::optional<nlohmann::json> ours, theirs;
    std::string our_error, their_error;
    bool their_dup = false;  // the reference refused a repeated key (its parse errors quote the input)
    try {
        ours = config::read_json(text);
    } catch (const cni::Error& e) {
        require(e.code == cni::kDecodeFailure, "read_json threw code " + std::to_string(e.code));
        our_error = e.msg;
    }
    try {
        nlohmann::json doc;
        ReferenceBuilder builder(doc);
        nlohmann::json::sax_parse(text, &builder);
        theirs = std::move(doc);
    } catch (const cni::Error& e) {
        their_error = e.msg;
        their_dup = true;
    } catch (const nlohmann::json::exception& e) {
        their_error = e.what();
    }
    const bool too_deep = our_error.starts_with("JSON nesting is deeper than");
    if (too_deep) {
        const size_t byte = byte_named(our_error);
        require(byte >= 1 && byte <= size && nesting_exceeded_at_end(text.substr(0, byte)),
                "nesting refused at the wrong byte: " + our_error);
    } else if (ours) {
        require(theirs.has_value(), "read_json accepts what nlohmann refuses (" + their_error + ")");
        require(same_json(*ours, *theirs), "read_json decodes another document than nlohmann");
    } else if (theirs) {
        // nlohmann takes a NUL byte outside a string for the end of the input
        // and ignores what follows; we refuse it. Up to the NUL, the same document.
        const size_t byte = byte_named(our_error);
        require(byte >= 1 && byte <= size && text[byte - 1] == '\0',
                "read_json refuses what nlohmann accepts: " + our_error);
        require(same_json(config::read_json(text.substr(0, byte - 1)), *theirs),
                "read_json decodes another document than nlohmann before a NUL byte");
    } else {
        const bool our_dup = our_error.starts_with("key \"");
        require(our_dup == their_dup && (!our_dup || our_error == their_error),
                "read_json and nlohmann refuse for different reasons: " + our_error + " | " + their_error);
        require(our_dup || our_error.starts_with("input is not valid JSON (byte "),
                "a decode failure that does not name the byte: " + our_error);
    }

    // The envelope's scan: no nesting limit, repeated keys allowed.
    bool is_object = false;
    std::vector<std::pair<std::string, std::optional<std::string>>> members;
    const std::string scan_error = config::scan_json(text, is_object, [&](const config::TopMember& m) {
        members.emplace_back(m.key, m.string_value ? std::optional<std::string>(*m.string_value) : std::nullopt);
    });
    const bool dup_or_deep = too_deep || our_error.starts_with("key \"");
    if (!dup_or_deep) require(scan_error == our_error, "scan_json and read_json disagree: " + scan_error);
    if (ours && ours->is_object()) {
        require(is_object && members.size() == ours->size(), "scan_json lists other members");
        for (const auto& [key, value] : members) {
            const nlohmann::json& v = ours->at(key);
            require(v.is_string() == value.has_value() && (!value || *value == v.get<std::string>()),
                    "scan_json reads another value of " + key);
        }
    }

    // Plugin stdin: refused alike, and validated alike.
    config::DecodedAllow decoded;
    try {
        (void)config::read_stdin_json(text, decoded);
        require(ours.has_value(), "read_stdin_json accepts what read_json refuses");
    } catch (const cni::Error& e) {
        require(!ours && e.msg == our_error, "read_stdin_json refuses otherwise than read_json: " + e.msg);
    }
    if (ours && ours->is_object()) require_same_validation(*ours, text);
}

// --- the table of targets ------------------------------------------------------------
struct Target {
    const char* name;  // tests/fuzz/corpus/<name>, tests/fuzz/regressions/<name>
    void (*run)(const uint8_t*, size_t);
};

inline constexpr Target kTargets[] = {
    {"fuzz_netconf", netconf},
    {"fuzz_cni_args", cni_args},
    {"fuzz_annotations", annotations},
    {"fuzz_prev_result", prev_result},
    {"fuzz_conflist", conflist},
    {"fuzz_netlink", netlink},
    {"fuzz_netlink_batch", netlink_batch},
    {"fuzz_json", json_reader},
};

}  // namespace ef::fuzz
