#include "install/conflist.h"

#include <algorithm>

#include "cni/error.h"
#include "cni/version.h"
#include "config/config.h"
#include "install/sha256.h"

namespace ef::install {
namespace {

constexpr const char* kReinstall = "re-run `egress-fence-ctl install` (the DaemonSet's liveness probe does so)";

std::string dump(const Json& list) { return list.dump(2) + "\n"; }

// Key-order-independent text of a value: nlohmann::json sorts object keys.
std::string canonical(const Json& value) { return nlohmann::json::parse(value.dump()).dump(); }

std::optional<Json> parse_object(std::string_view text) {
    try {
        auto doc = Json::parse(text);
        if (doc.is_object()) return doc;
    } catch (const Json::exception&) {  // parse_error, and out_of_range for a number such as 1e400
    }
    return std::nullopt;
}

const Json* source_record(const Json& list) {
    auto it = list.find(std::string(kSourceKey));
    return it != list.end() && it->is_object() ? &*it : nullptr;
}

std::string record_string(const Json* rec, const char* key) {
    if (!rec || !rec->contains(key) || !rec->at(key).is_string()) return {};
    return rec->at(key).get<std::string>();
}

Json with_entry_last(Json list, const Json& entry) {
    list = primary_part(list);
    list["plugins"].push_back(installed_entry(entry));
    return list;
}

// The pre-install bytes of a chained file: the record when it still describes
// the file, otherwise the file as it is now (the primary rewrote it).
std::string original_bytes(const ConfFile& file, const Json& list) {
    auto original = record_string(source_record(list), "original");
    if (auto before = parse_object(original);
        before && canonical(primary_part(*before)) == canonical(primary_part(list)))
        return original;
    if (!source_record(list) && std::none_of(list["plugins"].begin(), list["plugins"].end(), is_fence_entry))
        return file.content;
    return dump(primary_part(list));
}

std::string entry_problems(const Json& entry) {
    std::vector<config::Problem> problems;
    config::validate(nlohmann::json::parse(entry.dump()), problems);
    std::string out;
    for (const auto& p : problems) out += "\n  " + p.path + ": " + p.message;
    return out;
}

Verdict not_fenced(const std::string& file, std::string reason) { return {false, file, std::move(reason)}; }

Verdict verify_owned_copy(const Network& owned, const std::vector<ConfFile>& files) {
    const Json* rec = source_record(owned.list);
    auto source = record_string(rec, "file");
    if (record_string(rec, "mode") != "owned" || source.empty())
        return not_fenced(owned.file, owned.file + " has no record of its source file; " + kReinstall);
    auto primary = discover(files, false).chosen;
    if (!primary)
        return not_fenced(owned.file, "the primary config " + source + " is gone and no other primary config loads; " +
                                          "the owned copy would keep a removed CNI in use: " + kReinstall +
                                          " once the primary CNI has written its config");
    if (primary->file != source)
        return not_fenced(owned.file, "the primary config is now " + primary->file + " but " + owned.file +
                                          " was copied from " + source + "; " + kReinstall);
    if (primary_digest(primary->list) != record_string(rec, "digest"))
        return not_fenced(owned.file, source + " changed since " + owned.file + " was written from it; " + kReinstall);
    return {true, owned.file, owned.file + " fences pods (copy of " + source + ", unchanged)"};
}

std::string missing_entry_reason(const Network& chosen, const std::vector<ConfFile>& files) {
    std::string reason = "the runtime uses " + chosen.file + ", which has no egress-fence entry";
    bool owned_present = std::any_of(files.begin(), files.end(),
                                     [](const ConfFile& f) { return f.name == kOwnedFile; });
    if (owned_present) reason += " (" + std::string(kOwnedFile) + " exists but does not load first)";
    else
        reason += " (" + std::string(kOwnedFile) +
                  " is missing: deleted or renamed, e.g. by Cilium with cni.exclusive=true, or never installed)";
    return reason + "; " + kReinstall;
}

}  // namespace

bool is_fence_entry(const Json& plugin) {
    return plugin.is_object() && plugin.contains("type") && plugin.at("type") == kPluginType;
}

Json installed_entry(const Json& entry) {
    Json out = entry;
    out.erase("name");
    out.erase("cniVersion");
    return out;
}

Json primary_part(const Json& list) {
    Json out = list;
    out.erase(std::string(kSourceKey));
    if (out.contains("plugins") && out["plugins"].is_array()) {
        Json kept = Json::array();
        for (const auto& p : out["plugins"])
            if (!is_fence_entry(p)) kept.push_back(p);
        out["plugins"] = std::move(kept);
    }
    return out;
}

std::string primary_digest(const Json& list) { return "sha256:" + sha256_hex(canonical(primary_part(list))); }

void check_chainable(const Network& primary) {
    // render_owned records the name in JSON, which holds only UTF-8.
    try {
        (void)Json(primary.file).dump();
    } catch (const Json::type_error&) {
        throw cni::Error(cni::kInvalidConfig,
                         "the primary config's file name is not valid UTF-8 (" +
                             Json(primary.file).dump(-1, ' ', false, Json::error_handler_t::replace) + "); rename it");
    }
    auto version = primary.list.value("cniVersion", std::string{});
    if (!cni::is_supported_version(version))
        throw cni::Error(cni::kInvalidConfig,
                         "the primary config " + primary.file + " declares cniVersion \"" + version +
                             "\", which egress-fence does not support (0.3.0 to 1.1.0); upgrade the primary CNI "
                             "or set its cniVersion to 0.3.1 or later");
    if (primary_part(primary.list)["plugins"].empty())
        throw cni::Error(cni::kInvalidConfig, "the primary config " + primary.file +
                                                  " holds only an egress-fence entry: there is no primary CNI to "
                                                  "chain after; install the primary CNI first");
}

std::string render_owned(const Network& primary, const Json& entry) {
    Json list = with_entry_last(primary.list, entry);
    list[std::string(kSourceKey)] = {{"mode", "owned"},
                                     {"file", primary.file},
                                     {"digest", primary_digest(primary.list)}};
    return dump(list);
}

std::string render_chained(const ConfFile& primary, const Json& entry) {
    std::string why_not;
    auto net = load_network(primary, why_not);
    if (!net) throw cni::Error(cni::kInvalidConfig, primary.name + " does not load: " + why_not);
    if (net->from_single_conf)
        throw cni::Error(cni::kInvalidConfig,
                         "chained mode cannot add egress-fence to " + primary.name +
                             ": a single-plugin .conf file holds no chain; use --mode owned, which wraps it");
    auto original = original_bytes(primary, net->list);
    auto base = parse_object(original).value_or(net->list);
    Json list = with_entry_last(base, entry);
    list[std::string(kSourceKey)] = {{"mode", "chained"}, {"original", original}};
    return dump(list);
}

std::optional<std::string> render_unchained(const ConfFile& file) {
    auto list = parse_object(file.content);
    if (!list) return std::nullopt;
    const auto& plugins = (*list)["plugins"];
    bool has_entry = plugins.is_array() && std::any_of(plugins.begin(), plugins.end(), is_fence_entry);
    if (!has_entry && !source_record(*list)) return std::nullopt;
    return original_bytes(file, *list);
}

Verdict verify(const std::vector<ConfFile>& files, const std::optional<Json>& expected_entry) {
    auto found = discover(files, true);
    if (!found.chosen) {
        std::string reason = "no CNI config in the conf dir loads";
        for (const auto& s : found.skipped) reason += "\n  " + s.file + ": " + s.reason;
        return not_fenced("", reason);
    }
    const Network& chosen = *found.chosen;
    const Json& plugins = chosen.list.at("plugins");
    auto it = std::find_if(plugins.rbegin(), plugins.rend(), is_fence_entry);
    if (it == plugins.rend()) return not_fenced(chosen.file, missing_entry_reason(chosen, files));
    if (it != plugins.rbegin())
        return not_fenced(chosen.file, "egress-fence is not the last plugin in " + chosen.file +
                                           ": a plugin after it could change what it fenced; " + kReinstall);
    if (plugins.size() == 1)
        return not_fenced(chosen.file, chosen.file + " holds egress-fence without a primary CNI before it");
    if (auto version = chosen.list.value("cniVersion", std::string{}); !cni::is_supported_version(version))
        return not_fenced(chosen.file, chosen.file + " declares cniVersion \"" + version +
                                           "\", which egress-fence does not support: every ADD would fail");
    if (auto problems = entry_problems(*it); !problems.empty())
        return not_fenced(chosen.file, "the egress-fence entry in " + chosen.file + " is invalid:" + problems);
    if (expected_entry && canonical(installed_entry(*it)) != canonical(installed_entry(*expected_entry)))
        return not_fenced(chosen.file, "the egress-fence entry in " + chosen.file +
                                           " differs from the plugin config; " + kReinstall);
    if (chosen.file == kOwnedFile) return verify_owned_copy(chosen, files);
    return {true, chosen.file, chosen.file + " fences pods (egress-fence chained last)"};
}

}  // namespace ef::install
