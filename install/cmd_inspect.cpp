// inspect and metrics: what is fenced on this node, read from the pods' own
// tables (there is no daemon and no other state).
#include <fcntl.h>
#include <unistd.h>

#include <iostream>

#include "cni/error.h"
#include "commands.h"
#include "config_file.h"
#include "inspect/inspect.h"
#include "install/files.h"
#include "netns/netns.h"
#include "nft/nft.h"

namespace ef::ctl {
namespace {

// Where the installer writes the owned conflist: the config to compare with
// when the admin names none.
constexpr const char* kDefaultConfig = "/etc/cni/net.d/00-egress-fence.conflist";

struct ScanOptions {
    std::string netns;
    std::vector<std::string> netns_dirs;
    std::string config;
    bool json = false;
    bool verbose = false;
};

std::optional<config::PluginConfig> current_config(const std::string& path) {
    if (!path.empty()) return load_config(path);
    if (access(kDefaultConfig, R_OK) == 0) return load_config(kDefaultConfig);
    return std::nullopt;
}

struct Scan {
    std::vector<inspect::PodFence> pods;
    std::vector<std::string> unreadable;
};

Scan scan(const ScanOptions& o, const config::PluginConfig* cfg) {
    Scan s;
    auto dirs = o.netns_dirs.empty() ? inspect::kDefaultNetnsDirs : o.netns_dirs;
    for (const auto& path : inspect::list_netns(dirs)) {
        try {
            if (auto pod = inspect::read_pod(path, cfg)) s.pods.push_back(std::move(*pod));
        } catch (const cni::Error& e) {
            s.unreadable.push_back(path + ": " + e.msg);
        }
    }
    return s;
}

// What CHECK warns about in this netns: base chains on our hooks that are not ours.
std::vector<std::string> foreign_chain_warnings(const std::string& netns) {
    netns::ScopedNetns inside(netns);
    std::vector<std::string> out;
    for (const auto& c : nft::foreign_base_chains()) out.push_back(nft::foreign_chain_warning(c));
    return out;
}

void print_one(const inspect::PodFence& p, const std::vector<std::string>& warnings, bool json) {
    if (json) {
        auto j = inspect::to_json({p})[0];
        j["warnings"] = warnings;
        j["ruleset"] = fence::to_nft_text(p.actual);
        std::cout << j.dump(2) << "\n";
        return;
    }
    const auto& m = p.actual.meta;
    std::cout << "netns:       " << p.netns << "\n"
              << "pod:         " << m.pod_namespace << "/" << m.pod_name << "\n"
              << "container:   " << m.container_id << "\n"
              << "profile:     " << m.profile << "\n"
              << "plugin:      " << m.plugin_version << "\n"
              << "digest:      " << m.digest << "\n"
              << "config:      " << inspect::match_text(p.match) << "\n";
    for (const auto& d : p.differences) std::cout << "  - " << d << "\n";
    for (const auto& w : warnings) std::cout << "warning:     " << w << "\n";
    std::cout << "counters:\n";
    for (const auto& c : p.actual.counters)
        std::cout << "  " << c.name << ": " << c.packets << " packets, " << c.bytes << " bytes\n";
    if (p.actual.netdev) {
        std::string devices;
        for (const auto& a : fence::attachments_of(p.actual)) devices += (devices.empty() ? "" : ", ") + a.ifname;
        for (const auto& c : p.actual.netdev->counters)
            std::cout << "  " << c.name << " (netdev " << devices << "): " << c.packets << " packets, " << c.bytes
                      << " bytes\n";
    }
    std::cout << "\n" << fence::to_nft_text(p.actual);
}

void run_inspect(const ScanOptions& o) {
    auto cfg = current_config(o.config);
    const config::PluginConfig* cfgp = cfg ? &*cfg : nullptr;
    if (!o.netns.empty()) {
        auto pod = inspect::read_pod(o.netns, cfgp);
        if (!pod) {
            if (o.json) std::cout << nlohmann::json{{"netns", o.netns}, {"fenced", false}}.dump(2) << "\n";
            else std::cout << o.netns << ": not fenced (no table inet egress_fence)\n";
            throw cni::Error(3, o.netns + " is not fenced");
        }
        print_one(*pod, foreign_chain_warnings(o.netns), o.json);
        if (pod->match == inspect::Match::differs || pod->match == inspect::Match::profile_unknown)
            throw cni::Error(2, "the fence differs from what the config demands");
        return;
    }
    Scan s = scan(o, cfgp);
    if (o.json) {
        std::cout << nlohmann::json{{"pods", inspect::to_json(s.pods)}, {"unreadable", s.unreadable}}.dump(2) << "\n";
        return;
    }
    std::cout << inspect::to_table(s.pods);
    for (const auto& u : s.unreadable) std::cerr << "unreadable: " << u << "\n";
    if (o.verbose)
        for (const auto& p : s.pods)
            for (const auto& d : p.differences) std::cout << p.netns << ": " << d << "\n";
}

void run_metrics(const ScanOptions& o, const std::string& textfile) {
    auto cfg = current_config(o.config);
    Scan s = scan(o, cfg ? &*cfg : nullptr);
    std::string text = inspect::to_prometheus(s.pods, s.unreadable.size());
    if (textfile.empty()) {
        std::cout << text;
        return;
    }
    // node_exporter must never read a half-written file.
    install::replace_file(textfile, text, 0644);
}

void add_scan_options(CLI::App* cmd, ScanOptions& o) {
    cmd->add_option("--netns-dir", o.netns_dirs,
                    "directory of pod netns files (repeatable; default /var/run/netns, /run/netns)");
    cmd->add_option("--config", o.config,
                    "plugin config to compare with (default " + std::string(kDefaultConfig) + " when present)");
    cmd->add_flag("--json", o.json, "machine-readable output");
}

}  // namespace

void add_inspect(CLI::App& app) {
    auto o = std::make_shared<ScanOptions>();
    auto* inspect = app.add_subcommand("inspect",
                                       "show fenced pods: metadata, ruleset, counters, and drift from the config");
    inspect->add_option("--netns", o->netns, "one pod netns (path); omit to list every fenced pod on the node");
    inspect->add_flag("-v,--verbose", o->verbose, "list each pod's differences from the config");
    add_scan_options(inspect, *o);
    inspect->callback([o] { run_inspect(*o); });

    auto m = std::make_shared<ScanOptions>();
    auto textfile = std::make_shared<std::string>();
    auto* metrics = app.add_subcommand("metrics",
                                       "the same data as Prometheus text (for node_exporter's textfile collector)");
    metrics->add_option("--textfile", *textfile, "write atomically to this file instead of stdout");
    add_scan_options(metrics, *m);
    metrics->callback([m, textfile] { run_metrics(*m, *textfile); });
}

}  // namespace ef::ctl
