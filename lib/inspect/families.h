// The node's metrics as plain values: what `egress-fence-ctl metrics` prints
// and its server exposes. No Prometheus library here (lib/ is the plugin's
// too, which must not link it): egress-fence-ctl turns these families into
// prometheus-cpp's (install/prom.h), whose text serializer and exposer write
// the exposition format.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "inspect/inspect.h"

namespace ef::inspect {

enum class MetricKind { counter, gauge };

struct Sample {
    std::vector<std::pair<std::string, std::string>> labels;  // name, value; in this order
    double value = 0;
};

// One metric family: its name (counters end in _total), HELP text, type and
// samples. A family without samples still carries its HELP and TYPE.
struct Family {
    std::string name;
    std::string help;
    MetricKind kind = MetricKind::gauge;
    std::vector<Sample> samples;
};

// The verdict class of a fence counter, read from its name so that a counter
// a newer fence adds is classed without a code change: "audit" for would_*
// (what an audit profile let through), "accepted" for *_accepted, "denied" for
// *_refused and *_dropped, "other" for any other name.
std::string_view verdict_of(std::string_view counter);

// What a scan of the node's pod netns found, as metric families:
//   egress_fence_fenced_pods, egress_fence_unreadable_netns (gauges);
//   egress_fence_matches_config{namespace,pod,sandbox_id,profile} (0/1; only
//     when `compared`, i.e. a config was given: without one nothing is known);
//   egress_fence_packets_total and egress_fence_bytes_total
//     {namespace,pod,sandbox_id,profile,table,counter,verdict}: one sample per
//     named counter object of each pod's tables, whatever its name.
std::vector<Family> fence_families(const std::vector<PodFence>& pods, size_t unreadable, bool compared);

// The scan's own gauges: egress_fence_scrape_incomplete (1 when the scan
// stopped at its deadline with netns left unread) and
// egress_fence_scrape_duration_seconds.
std::vector<Family> scan_families(bool incomplete, double seconds);

// egress_fence_build_info{version} 1.
Family build_info();

// The families as JSON and back (how egress-fence-ctl's scanning process
// hands a scrape to its serving process). families_from_json throws
// nlohmann::json::exception on a document of another shape.
nlohmann::json families_to_json(const std::vector<Family>& families);
std::vector<Family> families_from_json(const nlohmann::json& j);

}  // namespace ef::inspect
