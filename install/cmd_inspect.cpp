// inspect and metrics: what is fenced on this node, read from the pods' own
// tables (there is no daemon and no other state).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <iostream>

#include "cni/error.h"
#include "commands.h"
#include "config_file.h"
#include "inspect/families.h"
#include "inspect/inspect.h"
#include "install/files.h"
#include "metrics_server.h"
#include "netns/netns.h"
#include "nft/nft.h"
#include "prom.h"

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

inspect::NodeScan scan(const ScanOptions& o, const config::PluginConfig* cfg) {
    return inspect::scan_node(o.netns_dirs.empty() ? inspect::kDefaultNetnsDirs : o.netns_dirs, cfg);
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
    inspect::NodeScan s = scan(o, cfgp);
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

struct MetricsOptions {
    std::string textfile;
    std::vector<std::string> listen;
    int port = kDefaultMetricsPort;
    double scan_timeout = 5;
    std::string follow_log;
};

void run_metrics(const ScanOptions& o, const MetricsOptions& m) {
    if (!m.listen.empty()) {
        MetricsServerOptions server;
        server.addresses = m.listen;
        server.port = m.port;
        server.netns_dirs = o.netns_dirs;
        server.scan_timeout_seconds = m.scan_timeout;
        server.follow_log = m.follow_log;
        std::string config = o.config;
        server.config = [config] { return current_config(config); };
        serve_metrics(server);
        return;
    }
    auto start = std::chrono::steady_clock::now();
    auto cfg = current_config(o.config);
    inspect::NodeScan s = scan(o, cfg ? &*cfg : nullptr);
    std::vector<inspect::Family> families = {inspect::build_info()};
    for (auto& f : inspect::fence_families(s.pods, s.unreadable.size(), cfg.has_value()))
        families.push_back(std::move(f));
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (auto& f : inspect::scan_families(false, took)) families.push_back(std::move(f));
    std::string text = to_text(families);
    const std::string& textfile = m.textfile;
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
    auto mo = std::make_shared<MetricsOptions>();
    auto* metrics = app.add_subcommand(
        "metrics", "the same data as Prometheus text (stdout, a node_exporter textfile, or served over HTTP)");
    auto* textfile = metrics->add_option("--textfile", mo->textfile, "write atomically to this file instead of stdout");
    auto* listen = metrics
                       ->add_option("--listen", mo->listen,
                                    "serve /metrics (a fresh scan per scrape) and /healthz on this IPv4 address until "
                                    "SIGTERM (repeatable)")
                       ->excludes(textfile);
    metrics->add_option("--port", mo->port, "with --listen: the TCP port")
        ->check(CLI::Range(1, 65535))
        ->capture_default_str()
        ->needs(listen);
    metrics
        ->add_option("--scan-timeout", mo->scan_timeout,
                     "with --listen: seconds a scrape may spend reading netns before it answers with what it has")
        ->check(CLI::Range(0.0, 600.0))
        ->capture_default_str()
        ->needs(listen);
    metrics
        ->add_option("--follow-log", mo->follow_log,
                     "with --listen: print and count every line the plugin appends to its logFile "
                     "(egress_fence_invocations_total)")
        ->needs(listen);
    add_scan_options(metrics, *m);
    metrics->callback([m, mo] { run_metrics(*m, *mo); });
}

}  // namespace ef::ctl
