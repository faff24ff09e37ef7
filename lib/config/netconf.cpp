// Plugin stdin -> NetConf: size and depth limits, JSON decoding, the CNI
// envelope, then validate(). Also find_entry() for conflist files.
#include "cni/error.h"
#include "cni/version.h"
#include "config/json_read.h"
#include "config/json_shape.h"
#include "config/validate_parts.h"

namespace ef::config {

using namespace shape;

namespace {

constexpr std::string_view kPodAnnotationsKey = "io.kubernetes.cri.pod-annotations";

std::string problems_text(const std::vector<Problem>& problems) {
    std::string details;
    for (const auto& p : problems) {
        if (!details.empty()) details += '\n';
        details += (p.path.empty() ? "(top level)" : p.path) + ": " + p.message;
    }
    return details;
}

[[noreturn]] void throw_invalid(const std::vector<Problem>& problems) {
    const Problem& first = problems.front();
    throw cni::Error(cni::kInvalidConfig, "invalid config: " + first.path + ": " + first.message,
                     problems_text(problems));
}

std::string supported_versions() {
    std::string out;
    for (auto v : cni::kSupportedVersions) out += (out.empty() ? "" : ", ") + std::string(v);
    return out;
}

// A missing cniVersion is "0.1.0" to libcni's decoder, which no one supports
// any more; answer as the reference plugins do, with code 1.
void check_version(const json& doc) {
    if (!doc.contains("cniVersion"))
        throw cni::Error(cni::kIncompatibleVersion,
                         "cniVersion: required key missing; supported versions: " + supported_versions());
    std::vector<Problem> problems;
    auto version = read_string(doc["cniVersion"], "cniVersion", problems);
    if (!version) throw_invalid(problems);
    if (!cni::is_supported_version(*version))
        throw cni::Error(cni::kIncompatibleVersion,
                         "cniVersion: \"" + *version +
                             "\" is not supported; supported versions: " + supported_versions());
}

void check_name(const json& doc, std::vector<Problem>& problems) {
    if (!doc.contains("name")) {
        add(problems, "name", "required key missing (the network name)");
        return;
    }
    auto name = read_string(doc["name"], "name", problems);
    if (name && name->empty()) add(problems, "name", "must not be empty");
}

std::optional<json> read_prev_result(const json& doc, std::vector<Problem>& problems) {
    if (!doc.contains("prevResult")) return std::nullopt;
    if (!expect_object(doc["prevResult"], "prevResult", problems)) return std::nullopt;
    return doc["prevResult"];
}

// Fills conf.pod_annotations and conf.annotations_delivered. The key present
// as null (libcni marshals a nil Go map so) or {} is a pod without
// annotations; the key absent, or no runtimeConfig at all, is a runtime that
// did not supply the capability.
void read_pod_annotations(const json& doc, NetConf& conf, std::vector<Problem>& problems) {
    if (!doc.contains("runtimeConfig") || doc["runtimeConfig"].is_null()) return;
    const json& runtime = doc["runtimeConfig"];
    if (!expect_object(runtime, "runtimeConfig", problems)) return;
    const std::string path = child("runtimeConfig", kPodAnnotationsKey);
    const auto found = runtime.find(kPodAnnotationsKey);
    if (found == runtime.end()) return;
    conf.annotations_delivered = true;
    if (found->is_null()) return;
    if (!expect_object(*found, path, problems)) return;
    for (const auto& [key, value] : found->items())
        if (auto s = read_string(value, child(path, key), problems)) conf.pod_annotations[key] = *s;
}

}  // namespace

NetConf parse_netconf(std::string_view stdin_bytes) { return parse_netconf(JsonText(stdin_bytes)); }

NetConf parse_netconf(const JsonText& stdin_text) {
    DecodedAllow decoded;
    const json doc = parse_stdin_json(stdin_text, decoded);
    if (!doc.is_object())
        throw cni::Error(cni::kDecodeFailure, "plugin stdin must be a JSON object, found " + describe(doc));
    check_version(doc);

    std::vector<Problem> problems;
    check_name(doc, problems);
    auto plugin = validate(doc, problems, &decoded);
    NetConf conf;
    conf.prev_result = read_prev_result(doc, problems);
    read_pod_annotations(doc, conf, problems);
    if (auto it = doc.find("cni.dev/valid-attachments"); it != doc.end()) {
        if (it->is_array()) conf.valid_attachments = it->size();
        else add(problems, "cni.dev/valid-attachments", "must be an array, found " + describe(*it));
    }
    if (!problems.empty()) throw_invalid(problems);

    conf.cni_version = doc["cniVersion"].get<std::string>();
    conf.name = doc["name"].get<std::string>();
    conf.type = doc["type"].get<std::string>();
    conf.plugin = std::move(*plugin);
    return conf;
}

nlohmann::json find_entry(const nlohmann::json& doc) {
    if (!doc.is_object())
        throw cni::Error(cni::kInvalidConfig,
                         "expected a JSON object (an egress-fence entry or a conflist), found " + describe(doc));
    if (!doc.contains("plugins")) {
        if (doc.value("type", json()) == "egress-fence") return doc;
        throw cni::Error(cni::kInvalidConfig,
                         "neither an egress-fence entry (\"type\": \"egress-fence\") nor a "
                         "conflist (\"plugins\": [...])");
    }
    const json& plugins = doc["plugins"];
    if (!plugins.is_array())
        throw cni::Error(cni::kInvalidConfig, "plugins: expected array, found " + describe(plugins));
    std::vector<std::size_t> found;
    for (std::size_t i = 0; i < plugins.size(); ++i)
        if (plugins[i].is_object() && plugins[i].value("type", json()) == "egress-fence") found.push_back(i);
    if (found.empty())
        throw cni::Error(cni::kInvalidConfig, R"(the conflist has no plugin with "type": "egress-fence")");
    if (found.size() > 1) {
        std::string where;
        for (auto i : found) where += (where.empty() ? "" : ", ") + item("plugins", i);
        throw cni::Error(cni::kInvalidConfig, "the conflist has " + std::to_string(found.size()) +
                                                  " egress-fence entries (" + where + "); keep exactly one");
    }
    json entry = plugins[found.front()];
    // libcni hands every plugin of a list the list's name and cniVersion.
    for (const char* key : {"cniVersion", "name"})
        if (doc.contains(key) && !entry.contains(key)) entry[key] = doc[key];
    return entry;
}

}  // namespace ef::config
