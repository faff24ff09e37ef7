#include "cni/protocol.h"

#include <cstdlib>

#include "cni/version.h"

namespace ef::cni {

Env read_env() {
    auto get = [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
    };
    return Env{get("CNI_COMMAND"), get("CNI_CONTAINERID"), get("CNI_NETNS"),
               get("CNI_IFNAME"),  get("CNI_ARGS"),        get("CNI_PATH")};
}

Args parse_args(std::string_view s) {
    Args a;
    while (!s.empty()) {
        size_t end = s.find(';');
        std::string_view pair = s.substr(0, end);
        s = end == std::string_view::npos ? std::string_view{} : s.substr(end + 1);
        if (pair.empty()) continue;
        size_t eq = pair.find('=');
        if (eq == std::string_view::npos || eq == 0)
            throw Error(kInvalidEnvironment, "CNI_ARGS: \"" + std::string(pair) + "\" is not KEY=VALUE",
                        "CNI_ARGS must be a ';'-separated list of KEY=VALUE pairs");
        a.all[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
    }
    for (const auto& [k, v] : a.all) {
        if (k == "K8S_POD_NAMESPACE") a.pod_namespace = v;
        else if (k == "K8S_POD_NAME") a.pod_name = v;
        else if (k == "K8S_POD_INFRA_CONTAINER_ID") a.infra_container_id = v;
        else if (k == "K8S_POD_UID") a.pod_uid = v;
        else if (k == "IgnoreUnknown") a.ignore_unknown = (v == "1" || v == "true" || v == "True");
    }
    if (!a.ignore_unknown) {
        for (const auto& [k, v] : a.all) {
            if (k != "K8S_POD_NAMESPACE" && k != "K8S_POD_NAME" && k != "K8S_POD_INFRA_CONTAINER_ID" &&
                k != "K8S_POD_UID" && k != "IgnoreUnknown")
                throw Error(kInvalidEnvironment, "CNI_ARGS: unknown key \"" + k + "\"",
                            "pass IgnoreUnknown=1 in CNI_ARGS to let plugins skip keys they do not know");
        }
    }
    return a;
}

namespace {

bool is_v1(std::string_view version) { return !version.empty() && version[0] >= '1'; }

}  // namespace

nlohmann::json result_for_version(const nlohmann::json* prev, std::string_view version) {
    nlohmann::json r = (prev && prev->is_object()) ? *prev : nlohmann::json::object();
    r["cniVersion"] = std::string(version);
    if (r.contains("ips") && r["ips"].is_array()) {
        for (auto& ip : r["ips"]) {
            if (!ip.is_object()) continue;
            if (is_v1(version)) {
                ip.erase("version");
            } else if (!ip.contains("version") && ip.contains("address") && ip["address"].is_string()) {
                ip["version"] = ip["address"].get<std::string>().find(':') == std::string::npos ? "4" : "6";
            }
        }
    }
    return r;
}

std::string error_json(const Error& e, std::string_view version) {
    nlohmann::json j = {{"cniVersion", std::string(version)}, {"code", e.code}, {"msg", e.msg}};
    if (!e.details.empty()) j["details"] = e.details;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string version_json(std::string_view version) {
    nlohmann::json versions = nlohmann::json::array();
    for (auto v : kSupportedVersions) versions.push_back(std::string(v));
    return nlohmann::json{{"cniVersion", std::string(version)}, {"supportedVersions", versions}}.dump();
}

}  // namespace ef::cni
