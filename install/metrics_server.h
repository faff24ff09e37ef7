// The node's metrics over HTTP: what the DaemonSet's main container serves
// (GET /metrics, GET /healthz), and `egress-fence-ctl metrics --listen`.
//
// Two processes. The one that was started keeps its privileges, reads the
// pods' tables at every scrape (NET_ADMIN, SYS_ADMIN), runs verify for
// /healthz (the CNI dirs), follows the plugin's log (printing each line, for
// `kubectl logs`, and counting it). Before it does any of that it forks the
// one that faces the network: that one becomes uid/gid 65534 with no
// capability, no_new_privs and not dumpable, and only then binds and runs
// prometheus-cpp's exposer (civetweb). It asks the first for each scrape and
// each health check over a socket pair, and gets metric families back, never
// anything else. A bug in the HTTP code thus reaches neither the node's
// tables nor its CNI dirs.
//
// Nothing of the fence depends on either: the plugin stays daemon-free and
// pods are fenced whether this runs or not.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace ef::ctl {

inline constexpr int kDefaultMetricsPort = 9739;

struct MetricsServerOptions {
    // IPv4 addresses to listen on, each with `port` (0.0.0.0: all of the
    // node's). Debian's civetweb is built without IPv6, so an IPv6 address
    // is refused with a message that says so.
    std::vector<std::string> addresses;
    int port = kDefaultMetricsPort;
    std::vector<std::string> netns_dirs;  // empty: inspect::kDefaultNetnsDirs
    // The config each scrape compares the fences with; nullopt: none (no
    // egress_fence_matches_config then). Called at every scrape, so a changed
    // file is seen; a config that does not load is reported on stderr and
    // the scrape compares nothing.
    std::function<std::optional<config::PluginConfig>()> config;
    // A scan that has run this long stops before its next netns and the
    // scrape answers with what it read (egress_fence_scrape_incomplete 1).
    double scan_timeout_seconds = 5;
    // The plugin's logFile: each new line is printed on stdout and counted
    // (egress_fence_invocations_total); "" for neither.
    std::string follow_log;
    // /healthz: returns the text of a healthy answer (200) or throws
    // cni::Error, whose message is the 503's body. Empty: always healthy.
    std::function<std::string()> health;
};

// Serves until SIGTERM or SIGINT, then returns. Throws cni::Error when it
// cannot start (an address it cannot listen on, privileges it cannot drop)
// or when the serving process dies (a restarted container starts both again).
// Must be called before the process has started any thread.
void serve_metrics(const MetricsServerOptions& o);

}  // namespace ef::ctl
