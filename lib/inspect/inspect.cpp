#include "inspect/inspect.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <sstream>

#include "cni/error.h"
#include "fence/compile.h"
#include "fence/diff.h"
#include "netns/netns.h"
#include "nft/nft.h"

namespace ef::inspect {

std::vector<std::string> list_netns(const std::vector<std::string>& dirs) {
    std::vector<std::string> out;
    std::set<std::pair<dev_t, ino_t>> seen;
    for (const auto& dir : dirs) {
        DIR* d = opendir(dir.c_str());
        if (!d) continue;
        std::vector<std::string> names;
        const std::string prefix = dir + "/";
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            if (name != "." && name != "..") names.push_back(prefix + name);
        }
        closedir(d);
        std::sort(names.begin(), names.end());
        for (auto& path : names) {
            struct stat st {};
            if (stat(path.c_str(), &st) != 0 || !netns::is_netns(path)) continue;
            if (seen.insert({st.st_dev, st.st_ino}).second) out.push_back(path);
        }
    }
    return out;
}

std::optional<fence::Ruleset> expected_for(const fence::Metadata& meta, const config::PluginConfig& cfg,
                                           const std::vector<fence::Attachment>& attachments) {
    auto it = cfg.profiles.find(meta.profile);
    if (it == cfg.profiles.end()) return std::nullopt;
    config::Profile profile = it->second;
    uint32_t uid = 0;
    const char* end = meta.annotated_uid.data() + meta.annotated_uid.size();
    // A value that is not a UID (tampered metadata) adds nothing: the diff shows it.
    if (!meta.annotated_uid.empty() && std::from_chars(meta.annotated_uid.data(), end, uid).ptr == end) {
        if (std::find(profile.exempt_uids.begin(), profile.exempt_uids.end(), uid) == profile.exempt_uids.end())
            profile.exempt_uids.push_back(uid);
        std::sort(profile.exempt_uids.begin(), profile.exempt_uids.end());
        profile.annotated_uid = uid;
    }
    config::Pod pod{meta.pod_namespace, meta.pod_name, meta.container_id, "", {}};
    return fence::compile(profile, pod, attachments);
}

std::vector<fence::Attachment> fence_attachments(const fence::Ruleset& actual) {
    auto attachments = fence::attachments_of(actual);
    if (attachments.empty()) attachments.push_back({fence::kDefaultDevice, {}});
    return attachments;
}

PodFence assess(std::string netns, fence::Ruleset actual, const config::PluginConfig* cfg) {
    PodFence p{std::move(netns), std::move(actual), Match::no_config, {}};
    if (!cfg) return p;
    auto expected = expected_for(p.actual.meta, *cfg, fence_attachments(p.actual));
    if (!expected) {
        p.match = Match::profile_unknown;
        p.differences = {"profile \"" + p.actual.meta.profile + "\" is not in the current config"};
        return p;
    }
    p.differences = fence::diff(*expected, p.actual);
    p.match = p.differences.empty() ? Match::matches : Match::differs;
    return p;
}

std::optional<PodFence> read_pod(const std::string& netns, const config::PluginConfig* cfg) {
    std::optional<fence::Ruleset> actual;
    {
        netns::ScopedNetns inside(netns);
        actual = nft::read_ruleset();
    }
    if (!actual) return std::nullopt;
    return assess(netns, std::move(*actual), cfg);
}

NodeScan scan_node(const std::vector<std::string>& dirs, const config::PluginConfig* cfg,
                   std::optional<std::chrono::steady_clock::time_point> deadline,
                   const std::function<void()>& between) {
    NodeScan s;
    auto paths = list_netns(dirs);
    for (size_t i = 0; i < paths.size(); ++i) {
        if (deadline && std::chrono::steady_clock::now() >= *deadline) {
            s.not_reached = paths.size() - i;
            break;
        }
        try {
            if (auto pod = read_pod(paths[i], cfg)) s.pods.push_back(std::move(*pod));
        } catch (const cni::Error& e) {
            s.unreadable.push_back(paths[i] + ": " + e.msg);
        }
        if (between) between();
    }
    return s;
}

uint64_t counter_packets(const fence::Ruleset& rs, const std::string& name) {
    for (const auto& c : rs.counters)
        if (c.name == name) return c.packets;
    if (rs.netdev)
        for (const auto& c : rs.netdev->counters)
            if (c.name == name) return c.packets;
    return 0;
}

const char* match_text(Match m) {
    switch (m) {
        case Match::matches: return "matches config";
        case Match::differs: return "DIFFERS";
        case Match::profile_unknown: return "PROFILE NOT IN CONFIG";
        case Match::no_config: return "no config given";
    }
    return "?";
}

namespace {

struct CounterColumn {
    const char* name;    // the table's counter
    const char* header;  // the column
};
const CounterColumn kColumns[] = {{fence::kCounterExempt, "EXEMPT"},
                                  {fence::kCounterAllowed, "ALLOWED"},
                                  {fence::kCounterTcpRefused, "TCP-REFUSED"},
                                  {fence::kCounterUdpRefused, "UDP-REFUSED"},
                                  {fence::kCounterOtherDropped, "OTHER-DROPPED"},
                                  {fence::kCounterSpoofedDropped, "SPOOFED"},
                                  {fence::kCounterWouldRefuseTcp, "AUDIT-TCP"},
                                  {fence::kCounterWouldRefuseUdp, "AUDIT-UDP"},
                                  {fence::kCounterWouldDropOther, "AUDIT-OTHER"},
                                  {fence::kCounterWouldDropSpoofed, "AUDIT-SPOOFED"},
                                  {fence::kCounterRawDropped, "RAW-DROPPED"},
                                  {fence::kCounterWouldDropRaw, "AUDIT-RAW"}};

std::string pod_name(const fence::Metadata& m) { return m.pod_namespace + "/" + m.pod_name; }

std::string short_id(const std::string& id) { return id.substr(0, 12); }

}  // namespace

std::string to_table(const std::vector<PodFence>& pods) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> header = {"POD", "CONTAINER", "PROFILE", "CONFIG"};
    for (const auto& c : kColumns) header.emplace_back(c.header);
    header.emplace_back("NETNS");
    rows.push_back(header);
    for (const auto& p : pods) {
        std::vector<std::string> row = {pod_name(p.actual.meta), short_id(p.actual.meta.container_id),
                                        p.actual.meta.profile, match_text(p.match)};
        for (const auto& c : kColumns) row.push_back(std::to_string(counter_packets(p.actual, c.name)));
        row.push_back(p.netns);
        rows.push_back(row);
    }
    std::vector<size_t> width(header.size(), 0);
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    std::ostringstream o;
    for (const auto& r : rows) {
        for (size_t i = 0; i < r.size(); ++i) {
            o << r[i];
            if (i + 1 < r.size()) o << std::string(width[i] - r[i].size() + 2, ' ');
        }
        o << "\n";
    }
    return o.str();
}

nlohmann::json to_json(const std::vector<PodFence>& pods) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : pods) {
        const auto& m = p.actual.meta;
        nlohmann::json counters = nlohmann::json::object();
        for (const auto& c : p.actual.counters) counters[c.name] = {{"packets", c.packets}, {"bytes", c.bytes}};
        if (p.actual.netdev)
            for (const auto& c : p.actual.netdev->counters)
                counters[c.name] = {{"packets", c.packets}, {"bytes", c.bytes}};
        out.push_back({{"netns", p.netns},
                       {"namespace", m.pod_namespace},
                       {"pod", m.pod_name},
                       {"containerId", m.container_id},
                       {"profile", m.profile},
                       {"pluginVersion", m.plugin_version},
                       {"digest", m.digest},
                       {"config", match_text(p.match)},
                       {"matchesConfig", p.match == Match::matches},
                       {"differences", p.differences},
                       {"counters", counters}});
    }
    return out;
}

}  // namespace ef::inspect
