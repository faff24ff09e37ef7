#include "install/conf_dir.h"

#include <algorithm>

namespace ef::install {
namespace {

std::string_view extension(std::string_view name) {
    auto dot = name.rfind('.');
    return dot == std::string_view::npos ? std::string_view{} : name.substr(dot);
}

// Go's encoding/json leaves a field alone for `null`, so null counts as absent.
bool present(const Json& obj, const char* key) { return obj.contains(key) && !obj.at(key).is_null(); }

// The checks Go's json.Unmarshal into libcni's types.NetConf makes, plus the
// non-empty `type` libcni demands.
std::string plugin_problem(const Json& conf) {
    if (!conf.is_object()) return "not a JSON object";
    for (const char* key : {"cniVersion", "name", "type"})
        if (present(conf, key) && !conf.at(key).is_string()) return std::string("'") + key + "' is not a string";
    if (!present(conf, "type") || conf.at("type").get_ref<const std::string&>().empty()) return "missing 'type'";
    if (present(conf, "capabilities")) {
        const auto& caps = conf.at("capabilities");
        if (!caps.is_object()) return "'capabilities' is not an object";
        for (const auto& [k, v] : caps.items())
            if (!v.is_boolean() && !v.is_null()) return "capability '" + k + "' is not a boolean";
    }
    if (present(conf, "ipam")) {
        const auto& ipam = conf.at("ipam");
        if (!ipam.is_object() || (present(ipam, "type") && !ipam.at("type").is_string()))
            return "'ipam' is not an object with a string 'type'";
    }
    if (present(conf, "dns") && !conf.at("dns").is_object()) return "'dns' is not an object";
    if (present(conf, "prevResult") && !conf.at("prevResult").is_object()) return "'prevResult' is not an object";
    return {};
}

std::string list_problem(const Json& list) {
    if (!list.is_object()) return "not a JSON object";
    if (!list.contains("name")) return "no name";
    if (!list.at("name").is_string()) return "invalid name type";
    if (list.contains("cniVersion") && !list.at("cniVersion").is_string()) return "invalid cniVersion type";
    if (list.contains("disableCheck") && !list.at("disableCheck").is_boolean()) return "invalid disableCheck type";
    if (!list.contains("plugins")) return "no 'plugins' key";
    const auto& plugins = list.at("plugins");
    if (!plugins.is_array()) return "invalid 'plugins' type";
    if (plugins.empty()) return "no plugins in list";
    for (size_t i = 0; i < plugins.size(); ++i)
        if (auto p = plugin_problem(plugins[i]); !p.empty()) return "plugin " + std::to_string(i) + ": " + p;
    return {};
}

std::optional<Json> parse_json(std::string_view text, std::string& why_not) {
    // Go rejects a byte-order mark; nlohmann would skip it.
    if (text.starts_with("\xEF\xBB\xBF")) {
        why_not = "starts with a byte-order mark";
        return std::nullopt;
    }
    try {
        return Json::parse(text);
    } catch (const Json::exception& e) {  // parse_error, and out_of_range for a number such as 1e400
        why_not = std::string("invalid JSON: ") + e.what();
        return std::nullopt;
    }
}

std::string string_or_empty(const Json& obj, const char* key) {
    return present(obj, key) ? obj.at(key).get<std::string>() : std::string{};
}

}  // namespace

bool is_conf_name(std::string_view name) {
    auto ext = extension(name);
    return ext == ".conflist" || ext == ".conf" || ext == ".json";
}

std::optional<Network> load_network(const ConfFile& file, std::string& why_not) {
    auto doc = parse_json(file.content, why_not);
    if (!doc) return std::nullopt;
    if (extension(file.name) == ".conflist") {
        why_not = list_problem(*doc);
        if (!why_not.empty()) return std::nullopt;
        return Network{file.name, std::move(*doc), false};
    }
    why_not = plugin_problem(*doc);
    if (!why_not.empty()) return std::nullopt;
    Json list = Json::object();
    list["name"] = string_or_empty(*doc, "name");
    list["cniVersion"] = string_or_empty(*doc, "cniVersion");
    list["plugins"] = Json::array({*doc});
    return Network{file.name, std::move(list), true};
}

Discovery discover(std::vector<ConfFile> files, bool include_owned) {
    std::erase_if(files,
                  [&](const ConfFile& f) { return !is_conf_name(f.name) || (!include_owned && f.name == kOwnedFile); });
    // Go's sort.Strings: byte-wise, as std::string's operator< is.
    std::sort(files.begin(), files.end(), [](const ConfFile& a, const ConfFile& b) { return a.name < b.name; });
    Discovery d;
    for (const auto& f : files) {
        std::string why_not;
        if (auto net = load_network(f, why_not)) {
            d.chosen = std::move(net);
            break;
        }
        d.skipped.push_back({f.name, why_not});
    }
    return d;
}

}  // namespace ef::install
