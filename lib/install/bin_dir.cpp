#include "install/bin_dir.h"

#include <sys/stat.h>

#include <algorithm>

#include "install/conflist.h"

namespace ef::install {

const std::vector<std::string> kKnownBinDirs = {
    "/opt/cni/bin",
    "/var/lib/rancher/k3s/data/cni",
    "/var/lib/rancher/k3s/data/current/bin",
    "/var/snap/microk8s/current/opt/cni/bin",
    "/var/lib/cni/bin",
    "/home/kubernetes/bin",
    "/usr/libexec/cni",
    "/usr/lib/cni",
};

namespace {

bool is_executable_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0;
}

bool holds(const std::string& dir, const std::string& type) {
    return type.find('/') == std::string::npos && !type.empty() && is_executable_file(dir + "/" + type);
}

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
    return out;
}

}  // namespace

std::vector<std::string> chain_plugin_types(const Json& list) {
    std::vector<std::string> types;
    if (!list.contains("plugins") || !list["plugins"].is_array()) return types;
    for (const auto& p : list["plugins"]) {
        if (!p.is_object() || is_fence_entry(p)) continue;
        auto t = p.find("type");
        if (t == p.end() || !t->is_string()) continue;
        std::string type = t->get<std::string>();
        if (std::find(types.begin(), types.end(), type) == types.end()) types.push_back(type);
    }
    return types;
}

std::vector<std::string> missing_plugins(const Json& list, const std::string& bin_dir) {
    std::vector<std::string> missing;
    for (const auto& type : chain_plugin_types(list))
        if (!holds(bin_dir, type)) missing.push_back(type);
    return missing;
}

std::string dir_holding(const std::vector<std::string>& plugins, const std::vector<std::string>& candidates) {
    if (plugins.empty()) return "";
    for (const auto& dir : candidates)
        if (std::all_of(plugins.begin(), plugins.end(), [&](const std::string& p) { return holds(dir, p); }))
            return dir;
    return "";
}

std::optional<BinDirProblem> bin_dir_problem(const Network& network, const std::string& bin_dir) {
    auto missing = missing_plugins(network.list, bin_dir);
    if (missing.empty()) return std::nullopt;
    BinDirProblem p;
    p.msg = "the CNI bin dir " + bin_dir + " lacks the plugins of the chain in " + network.file + " (" +
            joined(missing) +
            "): the runtime does not look for plugins there, so egress-fence would not be found either";
    std::string found = dir_holding(missing, kKnownBinDirs);
    if (!found.empty())
        p.details = "they are in " + found + ": use that dir (--cni-bin-dir; in the chart, cni.binDir)\n";
    p.details +=
        "the runtime's bin dir is containerd's bin_dir ([plugins.\"io.containerd.grpc.v1.cri\".cni], "
        "k3s writes it into /var/lib/rancher/k3s/agent/etc/containerd/config.toml) or CRI-O's plugin_dirs; "
        "as platforms ship: k3s v1.28.14, v1.29.9, v1.30.5, v1.31.1 and later /var/lib/rancher/k3s/data/cni, "
        "older k3s /var/lib/rancher/k3s/data/current/bin, microk8s /var/snap/microk8s/current/opt/cni/bin, "
        "OpenShift /var/lib/cni/bin, GKE /home/kubernetes/bin, most others /opt/cni/bin\n"
        "set the chart's platform or cni.binDir; for a layout where the primary's plugins live in another "
        "dir the runtime also searches, pass --skip-bin-dir-check (chart: cni.skipBinDirCheck=true)";
    return p;
}

}  // namespace ef::install
