#include "inspect/families.h"

namespace ef::inspect {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// The pod a fence belongs to. sandbox_id (the CNI container ID, 12
// characters as crictl shows it) keeps series apart when a pod's sandbox was
// re-created and the old netns is still there.
Labels pod_labels(const fence::Metadata& m) {
    return {{"namespace", m.pod_namespace},
            {"pod", m.pod_name},
            {"sandbox_id", m.container_id.substr(0, 12)},
            {"profile", m.profile}};
}

void add_counters(Family& packets, Family& bytes, const Labels& pod, const char* table,
                  const std::vector<fence::Counter>& counters) {
    for (const auto& c : counters) {
        Labels l = pod;
        l.emplace_back("table", table);
        l.emplace_back("counter", c.name);
        l.emplace_back("verdict", std::string(verdict_of(c.name)));
        packets.samples.push_back({l, static_cast<double>(c.packets)});
        bytes.samples.push_back({std::move(l), static_cast<double>(c.bytes)});
    }
}

const char* kind_text(MetricKind k) { return k == MetricKind::counter ? "counter" : "gauge"; }

}  // namespace

std::string_view verdict_of(std::string_view counter) {
    if (counter.starts_with("would_")) return "audit";
    if (counter.ends_with("_accepted")) return "accepted";
    if (counter.ends_with("_refused") || counter.ends_with("_dropped")) return "denied";
    return "other";
}

std::vector<Family> fence_families(const std::vector<PodFence>& pods, size_t unreadable, bool compared) {
    Family fenced{"egress_fence_fenced_pods",
                  "Pod network namespaces on this node holding an egress-fence table.",
                  MetricKind::gauge,
                  {{{}, static_cast<double>(pods.size())}}};
    Family unread{"egress_fence_unreadable_netns",
                  "Network namespaces on this node that could not be entered or read (counted as not fenced).",
                  MetricKind::gauge,
                  {{{}, static_cast<double>(unreadable)}}};
    Family match{"egress_fence_matches_config",
                 "1 when the pod's fence is exactly what the current config demands of its recorded profile, 0 when "
                 "it differs or the profile is gone.",
                 MetricKind::gauge,
                 {}};
    Family packets{"egress_fence_packets_total",
                   "Packets counted by each named counter of the pod's fence (table inet or netdev), by verdict class: "
                   "accepted, denied (refused or dropped), audit (what enforcement would deny, let through), other.",
                   MetricKind::counter,
                   {}};
    Family bytes{"egress_fence_bytes_total",
                 "Bytes counted by each named counter of the pod's fence (as packets).",
                 MetricKind::counter,
                 {}};
    for (const auto& p : pods) {
        Labels pod = pod_labels(p.actual.meta);
        if (compared) match.samples.push_back({pod, p.match == Match::matches ? 1.0 : 0.0});
        add_counters(packets, bytes, pod, "inet", p.actual.counters);
        if (p.actual.netdev) add_counters(packets, bytes, pod, "netdev", p.actual.netdev->counters);
    }
    std::vector<Family> out;
    out.push_back(std::move(fenced));
    out.push_back(std::move(unread));
    if (compared) out.push_back(std::move(match));
    out.push_back(std::move(packets));
    out.push_back(std::move(bytes));
    return out;
}

std::vector<Family> scan_families(bool incomplete, double seconds) {
    return {{"egress_fence_scrape_incomplete",
             "1 when this scrape's scan of the node's netns hit its time limit and the values cover only the netns "
             "read by then.",
             MetricKind::gauge,
             {{{}, incomplete ? 1.0 : 0.0}}},
            {"egress_fence_scrape_duration_seconds",
             "How long this scrape's scan of the node's netns took.",
             MetricKind::gauge,
             {{{}, seconds}}}};
}

Family build_info() {
    return {"egress_fence_build_info",
            "The egress-fence-ctl serving these metrics (always 1).",
            MetricKind::gauge,
            {{{{"version", EF_VERSION}}, 1.0}}};
}

nlohmann::json families_to_json(const std::vector<Family>& families) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& f : families) {
        nlohmann::json samples = nlohmann::json::array();
        for (const auto& s : f.samples) {
            nlohmann::json labels = nlohmann::json::array();
            for (const auto& [k, v] : s.labels) labels.push_back({k, v});
            samples.push_back({{"labels", std::move(labels)}, {"value", s.value}});
        }
        out.push_back({{"name", f.name}, {"help", f.help}, {"type", kind_text(f.kind)}, {"samples", samples}});
    }
    return out;
}

std::vector<Family> families_from_json(const nlohmann::json& j) {
    std::vector<Family> out;
    for (const auto& f : j) {
        Family fam{f.at("name").get<std::string>(),
                   f.at("help").get<std::string>(),
                   f.at("type").get<std::string>() == "counter" ? MetricKind::counter : MetricKind::gauge,
                   {}};
        for (const auto& s : f.at("samples")) {
            Sample sample;
            for (const auto& l : s.at("labels")) sample.labels.emplace_back(l.at(0), l.at(1));
            sample.value = s.at("value").get<double>();
            fam.samples.push_back(std::move(sample));
        }
        out.push_back(std::move(fam));
    }
    return out;
}

}  // namespace ef::inspect
