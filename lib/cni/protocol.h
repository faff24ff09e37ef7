// The CNI protocol around a plugin invocation: environment, CNI_ARGS, the
// result we print, and error objects. Pure except read_env().
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace ef::cni {

// The CNI_* environment variables (SPEC.md "Parameters").
struct Env {
    std::string command;       // CNI_COMMAND
    std::string container_id;  // CNI_CONTAINERID
    std::string netns;         // CNI_NETNS
    std::string ifname;        // CNI_IFNAME
    std::string args;          // CNI_ARGS
    std::string path;          // CNI_PATH
};

Env read_env();

// CNI_ARGS: "K=V;K2=V2". The Kubernetes keys runtimes pass are kept; any
// other key is an error unless IgnoreUnknown=1|true is among them, as the
// reference plugins do. A pair without '=' is always an error (kInvalidEnvironment).
struct Args {
    std::string pod_namespace;       // K8S_POD_NAMESPACE
    std::string pod_name;            // K8S_POD_NAME
    std::string infra_container_id;  // K8S_POD_INFRA_CONTAINER_ID
    std::string pod_uid;             // K8S_POD_UID
    bool ignore_unknown = false;
    std::map<std::string, std::string> all;
};
Args parse_args(std::string_view cni_args);

// prevResult re-expressed in `version` (the config's cniVersion): the same
// interfaces, IPs, routes and DNS, with the per-IP "version" field that
// 0.3.x/0.4.0 require added or the one 1.x dropped removed. A missing
// prevResult gives an empty result of that version.
nlohmann::json result_for_version(const nlohmann::json* prev_result, std::string_view version);

// {"cniVersion", "code", "msg", "details"} as one line.
std::string error_json(const Error& e, std::string_view version);

// VERSION's answer.
std::string version_json(std::string_view version);

}  // namespace ef::cni
