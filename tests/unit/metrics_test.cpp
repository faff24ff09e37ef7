// The node's metrics: every named counter of a fence becomes a sample,
// whatever its name (a newer fence's counters need no code change here);
// plugin outcomes counted from the log's lines; prometheus-cpp's text.
#include <doctest/doctest.h>

#include <ctime>
#include <string>
#include <vector>

#include "cni/error.h"
#include "inspect/families.h"
#include "inspect/invocations.h"
#include "prom.h"

using namespace ef;
using inspect::Family;

namespace {

inspect::PodFence pod(const std::string& name, std::vector<fence::Counter> counters,
                      inspect::Match match = inspect::Match::matches) {
    fence::Ruleset rs;
    rs.meta.pod_namespace = "sandboxes";
    rs.meta.pod_name = name;
    rs.meta.profile = "proxy-only";
    rs.meta.container_id = "0123456789abcdef0123";
    rs.counters = std::move(counters);
    return {"/run/netns/" + name, rs, match, {}};
}

const Family& family(const std::vector<Family>& fs, const std::string& name) {
    for (const auto& f : fs)
        if (f.name == name) return f;
    FAIL("no family " << name);
    return fs.front();
}

bool has_family(const std::vector<Family>& fs, const std::string& name) {
    for (const auto& f : fs)
        if (f.name == name) return true;
    return false;
}

std::string label(const inspect::Sample& s, const std::string& name) {
    for (const auto& [k, v] : s.labels)
        if (k == name) return v;
    return "<none>";
}

// The value of the sample whose labels include every pair of `want`; -1 when none.
double value(const Family& f, const std::vector<std::pair<std::string, std::string>>& want) {
    for (const auto& s : f.samples) {
        bool all = true;
        for (const auto& [k, v] : want) all = all && label(s, k) == v;
        if (all) return s.value;
    }
    return -1;
}

}  // namespace

TEST_CASE("verdict classes come from the counter's name, for names the fence has today and names it may add") {
    CHECK(inspect::verdict_of("exempt_accepted") == "accepted");
    CHECK(inspect::verdict_of("allowed_accepted") == "accepted");
    CHECK(inspect::verdict_of("tcp_refused") == "denied");
    CHECK(inspect::verdict_of("udp_refused") == "denied");
    CHECK(inspect::verdict_of("other_dropped") == "denied");
    CHECK(inspect::verdict_of("raw_dropped") == "denied");
    CHECK(inspect::verdict_of("would_refuse_tcp") == "audit");
    CHECK(inspect::verdict_of("would_drop_raw") == "audit");
    // Not in the fence as written here: classed all the same.
    CHECK(inspect::verdict_of("spoofed_dropped") == "denied");
    CHECK(inspect::verdict_of("mld_report_accepted") == "accepted");
    CHECK(inspect::verdict_of("would_drop_spoofed") == "audit");
    CHECK(inspect::verdict_of("frobnicated") == "other");
}

TEST_CASE("every named counter of a pod's tables is a sample, an unknown name included") {
    auto p = pod("a", {{"tcp_refused", 3, 180}, {"spoofed_dropped", 7, 420}, {"frobnicated", 1, 60}});
    p.actual.netdev = fence::NetdevTable{{{"raw_dropped", 2, 120}}, {}};
    auto fs = inspect::fence_families({p}, 0, true);
    const auto& packets = family(fs, "egress_fence_packets_total");
    CHECK(packets.kind == inspect::MetricKind::counter);
    REQUIRE(packets.samples.size() == 4);
    CHECK(value(packets, {{"counter", "spoofed_dropped"}, {"verdict", "denied"}, {"table", "inet"}}) == 7);
    CHECK(value(packets, {{"counter", "frobnicated"}, {"verdict", "other"}}) == 1);
    CHECK(value(packets, {{"counter", "tcp_refused"}, {"verdict", "denied"}}) == 3);
    CHECK(value(packets, {{"counter", "raw_dropped"}, {"table", "netdev"}}) == 2);
    const auto& bytes = family(fs, "egress_fence_bytes_total");
    CHECK(value(bytes, {{"counter", "spoofed_dropped"}}) == 420);
    // The pod is named fully; the sandbox by the 12 characters crictl shows.
    const auto& s = packets.samples.front();
    CHECK(label(s, "namespace") == "sandboxes");
    CHECK(label(s, "pod") == "a");
    CHECK(label(s, "sandbox_id") == "0123456789ab");
    CHECK(label(s, "profile") == "proxy-only");
}

TEST_CASE("node gauges, and matches_config only when there was a config to compare with") {
    std::vector<inspect::PodFence> pods = {pod("a", {}), pod("b", {}, inspect::Match::differs),
                                           pod("c", {}, inspect::Match::profile_unknown)};
    auto fs = inspect::fence_families(pods, 2, true);
    CHECK(value(family(fs, "egress_fence_fenced_pods"), {}) == 3);
    CHECK(value(family(fs, "egress_fence_unreadable_netns"), {}) == 2);
    const auto& match = family(fs, "egress_fence_matches_config");
    CHECK(value(match, {{"pod", "a"}}) == 1);
    CHECK(value(match, {{"pod", "b"}}) == 0);
    CHECK(value(match, {{"pod", "c"}}) == 0);
    // No config: nothing is known about a match, so nothing is said (not a 0 that would alert).
    CHECK_FALSE(has_family(inspect::fence_families(pods, 0, false), "egress_fence_matches_config"));
    auto scan = inspect::scan_families(true, 1.5);
    CHECK(value(family(scan, "egress_fence_scrape_incomplete"), {}) == 1);
    CHECK(value(family(scan, "egress_fence_scrape_duration_seconds"), {}) == 1.5);
    CHECK(value(family(inspect::scan_families(false, 0), "egress_fence_scrape_incomplete"), {}) == 0);
}

TEST_CASE("the families survive the trip between the server's two processes") {
    auto p = pod("a", {{"spoofed_dropped", 7, 420}});
    auto fs = inspect::fence_families({p}, 1, true);
    fs.push_back(inspect::build_info());
    auto back = inspect::families_from_json(
        nlohmann::json::from_cbor(nlohmann::json::to_cbor(inspect::families_to_json(fs))));
    REQUIRE(back.size() == fs.size());
    for (size_t i = 0; i < fs.size(); ++i) {
        CHECK(back[i].name == fs[i].name);
        CHECK(back[i].help == fs[i].help);
        CHECK(back[i].kind == fs[i].kind);
        REQUIRE(back[i].samples.size() == fs[i].samples.size());
        for (size_t j = 0; j < fs[i].samples.size(); ++j) {
            CHECK(back[i].samples[j].labels == fs[i].samples[j].labels);
            CHECK(back[i].samples[j].value == fs[i].samples[j].value);
        }
    }
}

TEST_CASE("prometheus-cpp's text: an unknown counter is exported with its name as a label; values escaped") {
    auto p = pod("a\"b\\c\nd", {{"spoofed_dropped", 7, 420}});
    std::string text = ctl::to_text(inspect::fence_families({p}, 0, true));
    CHECK(text.find("# TYPE egress_fence_packets_total counter\n") != std::string::npos);
    CHECK(text.find("egress_fence_packets_total{namespace=\"sandboxes\",pod=\"a\\\"b\\\\c\\nd\",sandbox_id="
                    "\"0123456789ab\",profile=\"proxy-only\",table=\"inet\",counter=\"spoofed_dropped\","
                    "verdict=\"denied\"} 7\n") != std::string::npos);
    CHECK(text.find("# TYPE egress_fence_matches_config gauge\n") != std::string::npos);
    // A name prometheus-cpp refuses is a bug of ours, said so.
    CHECK_THROWS_AS(ctl::to_text({Family{"bad-name", "x", inspect::MetricKind::gauge, {}}}), cni::Error);
}

TEST_CASE("invocations: each log record counted by verb, result and code; last failure time per code") {
    inspect::InvocationCounts c;
    c.add_line(R"({"time":"2026-12-07T10:00:00.250000Z","verb":"ADD","containerId":"x","pod":"s/a",)"
               R"("profile":"p","outcome":"fenced","durationUs":3000})");
    c.add_line(R"({"time":"2026-12-07T10:00:01.000000Z","verb":"ADD","containerId":"y","pod":"s/b",)"
               R"("profile":"","outcome":"error","durationUs":900,"errorCode":104,"error":"bad annotation"})");
    c.add_line(R"({"time":"2026-12-07T10:00:02.500000Z","verb":"ADD","containerId":"z","pod":"s/c",)"
               R"("profile":"","outcome":"error","durationUs":900,"errorCode":104,"error":"bad annotation"})");
    c.add_line(R"({"time":"2026-12-07T10:00:03Z","verb":"DEL","outcome":"removed","durationUs":1})");
    c.add_line(R"j({"time":"2026-12-07T10:00:04Z","verb":"GC","outcome":"ok: nothing to collect (3 valid )j"
               R"j(attachments listed)","durationUs":1})j");
    c.add_line(R"({"time":"2026-12-07T10:00:05Z","verb":"FROB","outcome":"error","errorCode":4})");
    c.add_line("not json at all");
    c.add_line(R"({"verb":"ADD"})");
    c.add_line(std::string(100, 'x') + " [cut]");
    auto fs = c.families();
    const auto& total = family(fs, "egress_fence_invocations_total");
    CHECK(total.kind == inspect::MetricKind::counter);
    CHECK(value(total, {{"verb", "ADD"}, {"result", "fenced"}, {"code", "0"}}) == 1);
    CHECK(value(total, {{"verb", "ADD"}, {"result", "error"}, {"code", "104"}}) == 2);
    CHECK(value(total, {{"verb", "DEL"}, {"result", "removed"}, {"code", "0"}}) == 1);
    // Free text and unknown verbs never become label values of their own.
    CHECK(value(total, {{"verb", "GC"}, {"result", "ok"}, {"code", "0"}}) == 1);
    CHECK(value(total, {{"verb", "other"}, {"result", "error"}, {"code", "4"}}) == 1);
    CHECK(value(family(fs, "egress_fence_log_unparsed_lines_total"), {}) == 3);
    const auto& last = family(fs, "egress_fence_last_failure_timestamp_seconds");
    // 2026-12-07T10:00:02.5Z
    CHECK(value(last, {{"verb", "ADD"}, {"code", "104"}}) == 1796637602.5);
    CHECK(value(last, {{"verb", "ADD"}, {"code", "0"}}) == -1);
    for (const auto& s : last.samples) CHECK(label(s, "code") != "0");
}

TEST_CASE("invocations: a failure whose record has no usable time is dated when it is read") {
    inspect::InvocationCounts c;
    auto before = static_cast<double>(std::time(nullptr));
    c.add_line(R"({"time":"yesterday","verb":"ADD","outcome":"error","errorCode":101})");
    c.add_line(R"({"time":"2026-12-07X10:00:00Z","verb":"DEL","outcome":"error","errorCode":101})");
    auto fs = c.families();
    const auto& last = family(fs, "egress_fence_last_failure_timestamp_seconds");
    for (const char* verb : {"ADD", "DEL"}) {
        double t = value(last, {{"verb", verb}, {"code", "101"}});
        CHECK(t >= before);
        CHECK(t < before + 60);
    }
}

TEST_CASE("invocations: the series an alert needs exist at 0 before the first failure") {
    auto fs = inspect::InvocationCounts().families();
    const auto& total = family(fs, "egress_fence_invocations_total");
    for (const char* code : {"1", "4", "6", "7", "11", "100", "101", "102", "103", "104", "105", "199"})
        CHECK(value(total, {{"verb", "ADD"}, {"result", "error"}, {"code", code}}) == 0);
    CHECK(value(total, {{"verb", "ADD"}, {"result", "fenced"}, {"code", "0"}}) == 0);
    CHECK(value(total, {{"verb", "ADD"}, {"result", "unfenced"}, {"code", "0"}}) == 0);
    CHECK(family(fs, "egress_fence_last_failure_timestamp_seconds").samples.empty());
}
