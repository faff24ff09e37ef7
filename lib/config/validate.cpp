// validate(): the egress-fence entry and its selectors (profiles: profile.cpp).
#include <algorithm>
#include <array>

#include "config/json_shape.h"
#include "config/validate_parts.h"
#include "config/values.h"

namespace ef::config {

using namespace shape;

namespace {

constexpr std::string_view kPodAnnotationsCapability = "io.kubernetes.cri.pod-annotations";

constexpr std::array<std::string_view, 15> kEntryKeys = {
    "type", "capabilities", "logFile", "logLevel", "profileAnnotation", "selectors", "profiles",
    // The CNI envelope: the runtime and libcni put these in every plugin's stdin
    // (cni.dev/valid-attachments: GC's list of attachments still in use, CNI 1.1).
    "cniVersion", "name", "runtimeConfig", "prevResult", "args", "ipam", "dns", "cni.dev/valid-attachments"};
constexpr std::array<std::string_view, 7> kSelectorKeys = {"namespaces",      "annotations",         "profile",
                                                           "allowedProfiles", "exemptUidAnnotation", "exemptUidRange",
                                                           "contractVersion"};
constexpr std::array<std::string_view, 2> kContractKeys = {"annotation", "max"};
constexpr std::array<std::string_view, 2> kRangeKeys = {"min", "max"};
constexpr std::array<std::string_view, 4> kLogLevels = {"debug", "info", "warn", "error"};

// What selectors are checked against: the profiles that exist and whether the
// runtime was asked to deliver pod annotations at all.
struct SelectorContext {
    std::vector<std::string> profile_names;
    bool annotations_delivered = false;
};

void check_profile_reference(const std::string& name, const std::string& path, const SelectorContext& ctx,
                             std::vector<Problem>& problems) {
    const auto& names = ctx.profile_names;
    if (std::find(names.begin(), names.end(), name) != names.end()) return;
    std::vector<std::string_view> views(names.begin(), names.end());
    std::string message = "unknown profile \"" + name + "\"";
    if (auto near = closest_key(name, views)) message += " (did you mean \"" + std::string(*near) + "\"?)";
    message += names.empty() ? "; no profiles are defined" : "; profiles: " + join(views);
    add(problems, path, std::move(message));
}

std::optional<std::string> read_annotation_key(const json& v, const std::string& path, std::vector<Problem>& problems) {
    auto key = read_string(v, path, problems);
    if (!key) return std::nullopt;
    if (auto why = annotation_key_problem(*key)) {
        add(problems, path, *why);
        return std::nullopt;
    }
    return key;
}

bool is_namespace_glob_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '*' || c == '?';
}

std::vector<std::string> read_namespaces(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (!expect_array(v, path, problems)) return {};
    if (v.empty())
        add(problems, path, "empty list matches no namespace; list globs, or write [\"*\"] for every namespace");
    std::vector<std::string> globs;
    for (std::size_t i = 0; i < v.size(); ++i) {
        auto glob = read_string(v[i], item(path, i), problems);
        if (!glob) continue;
        // Namespace names are DNS labels; anything else is a glob that never matches.
        if (glob->empty() || !std::all_of(glob->begin(), glob->end(), is_namespace_glob_char))
            add(problems, item(path, i),
                "namespace glob " + describe(v[i]) +
                    " can never match: namespaces are lower-case letters, digits and '-' (with * and ? as wildcards)");
        else globs.push_back(*glob);
    }
    return globs;
}

std::map<std::string, std::string> read_annotations(const json& v, const std::string& path,
                                                    std::vector<Problem>& problems) {
    if (!expect_object(v, path, problems)) return {};
    std::map<std::string, std::string> annotations;
    for (const auto& [key, value] : v.items()) {
        const std::string key_path = child(path, key);
        if (auto why = annotation_key_problem(key)) add(problems, key_path, *why);
        if (auto s = read_string(value, key_path, problems)) annotations[key] = *s;
    }
    return annotations;
}

std::vector<std::string> read_allowed_profiles(const json& v, const std::string& path, const SelectorContext& ctx,
                                               std::vector<Problem>& problems) {
    if (!expect_array(v, path, problems)) return {};
    std::vector<std::string> names;
    for (std::size_t i = 0; i < v.size(); ++i) {
        auto name = read_string(v[i], item(path, i), problems);
        if (!name) continue;
        check_profile_reference(*name, item(path, i), ctx, problems);
        names.push_back(*name);
    }
    return names;
}

// UID 0 is out of bounds for the same reason exemptUids refuses it (profile.cpp).
std::optional<UidRange> read_uid_range(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (!expect_object(v, path, problems)) return std::nullopt;
    reject_unknown_keys(v, kRangeKeys, path, problems);
    std::optional<uint32_t> bounds[2];
    for (int i = 0; i < 2; ++i) {
        const std::string key(kRangeKeys[i]);
        if (!v.contains(key)) add(problems, child(path, key), "required key missing (a UID from 1 to 4294967295)");
        else bounds[i] = read_uint(v[key], child(path, key), 1, 4294967295u, problems);
    }
    if (!bounds[0] || !bounds[1]) return std::nullopt;
    if (*bounds[0] > *bounds[1]) {
        add(problems, path, "min " + std::to_string(*bounds[0]) + " is greater than max " + std::to_string(*bounds[1]));
        return std::nullopt;
    }
    return UidRange{*bounds[0], *bounds[1]};
}

// {"annotation": KEY, "max": N}: pods may ask for contract versions 1..N.
void read_contract(const json& v, const std::string& path, Selector& s, std::vector<Problem>& problems) {
    if (!expect_object(v, path, problems)) return;
    reject_unknown_keys(v, kContractKeys, path, problems);
    if (!v.contains("annotation")) add(problems, child(path, "annotation"), "required key missing (an annotation key)");
    else s.contract_version_annotation = read_annotation_key(v["annotation"], child(path, "annotation"), problems);
    if (!v.contains("max")) {
        add(problems, child(path, "max"), "required key missing (the highest contract version this config implements)");
    } else if (!v["max"].is_number_unsigned() || v["max"].get<uint64_t>() < 1 || v["max"].get<uint64_t>() > 1000000) {
        add(problems, child(path, "max"), "expected a whole number from 1, found " + describe(v["max"]));
    } else {
        s.max_contract_version = v["max"].get<uint32_t>();
    }
}

void check_criteria(const json& v, const Selector& s, const std::string& path, const SelectorContext& ctx,
                    std::vector<Problem>& problems) {
    const bool has_annotations = v.contains("annotations") && v["annotations"].is_object() && !v["annotations"].empty();
    if (!v.contains("namespaces") && !has_annotations)
        add(problems, path,
            "selector has no match criteria (namespaces or annotations); to fence every pod write "
            "\"namespaces\": [\"*\"]");
    // Without the capability the runtime passes no annotations: an annotation
    // selector would silently never match and leave pods unfenced.
    const std::string needs = R"(needs "capabilities": {")" + std::string(kPodAnnotationsCapability) +
                              "\": true} in this entry, or the runtime never passes pod annotations";
    if (ctx.annotations_delivered) return;
    if (!s.annotations.empty()) add(problems, child(path, "annotations"), needs);
    if (s.exempt_uid_annotation) add(problems, child(path, "exemptUidAnnotation"), needs);
}

Selector read_selector(const json& v, const std::string& path, const SelectorContext& ctx,
                       std::vector<Problem>& problems) {
    Selector s;
    if (!expect_object(v, path, problems)) return s;
    reject_unknown_keys(v, kSelectorKeys, path, problems);
    if (v.contains("namespaces")) s.namespaces = read_namespaces(v["namespaces"], child(path, "namespaces"), problems);
    if (v.contains("annotations"))
        s.annotations = read_annotations(v["annotations"], child(path, "annotations"), problems);
    if (!v.contains("profile")) {
        add(problems, child(path, "profile"), "required key missing (the name of a profile)");
    } else if (auto name = read_string(v["profile"], child(path, "profile"), problems)) {
        check_profile_reference(*name, child(path, "profile"), ctx, problems);
        s.profile = *name;
    }
    if (v.contains("allowedProfiles"))
        s.allowed_profiles = read_allowed_profiles(v["allowedProfiles"], child(path, "allowedProfiles"), ctx, problems);
    if (v.contains("exemptUidAnnotation"))
        s.exempt_uid_annotation = read_annotation_key(v["exemptUidAnnotation"], child(path, "exemptUidAnnotation"),
                                                      problems);
    if (v.contains("exemptUidRange")) {
        s.exempt_uid_range = read_uid_range(v["exemptUidRange"], child(path, "exemptUidRange"), problems);
        if (!v.contains("exemptUidAnnotation"))
            add(problems, child(path, "exemptUidRange"),
                "only meaningful with \"exemptUidAnnotation\", which is missing");
    }
    if (v.contains("contractVersion")) read_contract(v["contractVersion"], child(path, "contractVersion"), s, problems);
    check_criteria(v, s, path, ctx, problems);
    return s;
}

bool read_capabilities(const json& v, std::vector<Problem>& problems) {
    if (!expect_object(v, "capabilities", problems)) return false;
    bool annotations = false;
    // Runtimes ignore capabilities they do not know, so any name is accepted.
    for (const auto& [key, value] : v.items())
        if (auto on = read_bool(value, child("capabilities", key), problems))
            if (key == kPodAnnotationsCapability) annotations = *on;
    return annotations;
}

void read_log_file(const json& v, PluginConfig& cfg, std::vector<Problem>& problems) {
    auto file = read_string(v, "logFile", problems);
    if (!file) return;
    if (!file->empty() && (file->front() != '/' || file->find('\0') != std::string::npos)) {
        add(problems, "logFile", "expected an absolute path (or \"\" for no log file), found " + describe(v));
        return;
    }
    cfg.log_file = *file;
}

std::vector<Selector> read_selectors(const json& v, const SelectorContext& ctx, std::vector<Problem>& problems) {
    if (!expect_array(v, "selectors", problems)) return {};
    std::vector<Selector> selectors;
    for (std::size_t i = 0; i < v.size(); ++i)
        selectors.push_back(read_selector(v[i], item("selectors", i), ctx, problems));
    return selectors;
}

std::map<std::string, Profile> read_profiles(const json& v, std::vector<Problem>& problems, DecodedAllow* decoded) {
    std::map<std::string, Profile> profiles;
    for (const auto& [name, body] : v.items()) {
        std::vector<AllowEntry>* entries = nullptr;
        if (decoded)
            if (auto found = decoded->by_profile.find(name); found != decoded->by_profile.end())
                entries = &found->second;
        profiles[name] = read_profile(body, name, child("profiles", name), problems, entries);
    }
    return profiles;
}

void check_type(const json& entry, std::vector<Problem>& problems) {
    if (!entry.contains("type")) {
        add(problems, "type", "required key missing (\"egress-fence\")");
        return;
    }
    auto type = read_string(entry["type"], "type", problems);
    if (type && *type != "egress-fence")
        add(problems, "type", "expected \"egress-fence\", found " + describe(entry["type"]));
}

}  // namespace

std::optional<PluginConfig> validate(const nlohmann::json& entry, std::vector<Problem>& problems) {
    return validate(entry, problems, nullptr);
}

std::optional<PluginConfig> validate(const nlohmann::json& entry, std::vector<Problem>& problems,
                                     DecodedAllow* decoded) {
    const std::size_t before = problems.size();
    if (!expect_object(entry, "", problems)) return std::nullopt;
    PluginConfig cfg;
    reject_unknown_keys(entry, kEntryKeys, "", problems);
    check_type(entry, problems);

    SelectorContext ctx;
    if (entry.contains("capabilities")) ctx.annotations_delivered = read_capabilities(entry["capabilities"], problems);
    if (entry.contains("logFile")) read_log_file(entry["logFile"], cfg, problems);
    if (entry.contains("logLevel"))
        if (auto level = read_choice(entry["logLevel"], "logLevel", kLogLevels, problems)) cfg.log_level = *level;
    if (entry.contains("profileAnnotation"))
        if (auto key = read_annotation_key(entry["profileAnnotation"], "profileAnnotation", problems))
            cfg.profile_annotation = *key;

    // Both are required so that a config states what it fences, even if nothing.
    if (!entry.contains("selectors")) add(problems, "selectors", "required key missing ([] fences no pod)");
    if (!entry.contains("profiles")) add(problems, "profiles", "required key missing (an object of profiles by name)");
    const bool profiles_ok = entry.contains("profiles") && expect_object(entry["profiles"], "profiles", problems);
    if (profiles_ok)
        for (const auto& [name, body] : entry["profiles"].items()) ctx.profile_names.push_back(name);
    // Selectors first: problems are listed in the order a reader meets them.
    if (entry.contains("selectors")) cfg.selectors = read_selectors(entry["selectors"], ctx, problems);
    if (profiles_ok) cfg.profiles = read_profiles(entry["profiles"], problems, decoded);

    if (problems.size() != before) return std::nullopt;
    return cfg;
}

}  // namespace ef::config
