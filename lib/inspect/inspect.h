// What `egress-fence-ctl inspect` and `metrics` report: every fenced pod netns
// on a node, its metadata, counters, and whether it is what the current config
// demands. Reading is the only kernel access (nft::read_ruleset in each netns).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "fence/compile.h"
#include "fence/ruleset.h"

namespace ef::inspect {

// Default places runtimes keep pod netns files.
inline const std::vector<std::string> kDefaultNetnsDirs = {"/var/run/netns", "/run/netns"};

enum class Match { matches, differs, profile_unknown, no_config };

struct PodFence {
    std::string netns;      // path of the netns file
    fence::Ruleset actual;  // as read back, counters with their values
    Match match = Match::no_config;
    std::vector<std::string> differences;  // when match == differs
};

// The netns files in `dirs`, each namespace once (by device and inode, as
// /var/run/netns is often a link to /run/netns), sorted by path.
std::vector<std::string> list_netns(const std::vector<std::string>& dirs);

// What the current config demands of a table carrying `meta`: its recorded
// profile, from `cfg`, for the pod the metadata names (with the exempt UID
// its annotation gave at ADD), for `attachments`. nullopt when the profile is
// no longer in cfg.
std::optional<fence::Ruleset> expected_for(const fence::Metadata& meta, const config::PluginConfig& cfg,
                                           const std::vector<fence::Attachment>& attachments);

// The attachments a fence covers, as read back (their interfaces and on-link
// prefixes); outside a CNI call prevResult is unknown, so this is what the
// table says. Without a netdev table: one on kDefaultDevice.
std::vector<fence::Attachment> fence_attachments(const fence::Ruleset& actual);

// Compares `actual` with expected_for(actual.meta, *cfg) (cfg may be null).
PodFence assess(std::string netns, fence::Ruleset actual, const config::PluginConfig* cfg);

// Reads one netns (entering it); nullopt when it holds no egress-fence table.
// Throws cni::Error when the netns cannot be entered or read.
std::optional<PodFence> read_pod(const std::string& netns, const config::PluginConfig* cfg);

// What a scan of the node found.
struct NodeScan {
    std::vector<PodFence> pods;
    std::vector<std::string> unreadable;  // "<netns>: <why>"
    size_t not_reached = 0;               // netns left unread at the deadline
};

// Reads every netns of list_netns(dirs) with read_pod. With a deadline, stops
// before the next netns once it has passed (one netns is read whole, so the
// scan can end up to one read late) and counts those left in not_reached.
// `between` runs after each netns (the metrics server answers its health
// checks there while a long scan goes on).
NodeScan scan_node(const std::vector<std::string>& dirs, const config::PluginConfig* cfg,
                   std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
                   const std::function<void()>& between = {});

// A counter's value from the table, 0 when absent.
uint64_t counter_packets(const fence::Ruleset& rs, const std::string& name);

const char* match_text(Match m);

// One row per pod for humans (aligned columns).
std::string to_table(const std::vector<PodFence>& pods);
// The same for machines.
nlohmann::json to_json(const std::vector<PodFence>& pods);

}  // namespace ef::inspect
