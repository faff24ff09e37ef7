// parse_net_dev(), parse_tcp_out_rsts(), classify_refusal(): see refusal.h.
#include "probe/refusal.h"

#include <charconv>
#include <optional>
#include <stdexcept>
#include <vector>

namespace ef::probe {
namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        auto end = text.find('\n');
        lines.push_back(text.substr(0, end));
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    return lines;
}

std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> fields;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) fields.push_back(line.substr(start, i - start));
    }
    return fields;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

// /proc/net/dev columns after "name:": 8 receive counters, then 8 transmit.
constexpr size_t kRxPackets = 1;
constexpr size_t kTxPackets = 9;
constexpr size_t kDevColumns = 16;

uint64_t sent(const std::map<std::string, InterfaceCounters>& before, const std::string& name,
              const InterfaceCounters& now) {
    auto it = before.find(name);
    uint64_t was = it == before.end() ? 0 : it->second.tx_packets;
    // A counter that went down belongs to an interface that was replaced: all it shows was sent since.
    return now.tx_packets >= was ? now.tx_packets - was : now.tx_packets;
}

}  // namespace

std::map<std::string, InterfaceCounters> parse_net_dev(std::string_view text) {
    std::map<std::string, InterfaceCounters> out;
    auto lines = split_lines(text);
    for (size_t i = 2; i < lines.size(); ++i) {
        std::string_view line = lines[i];
        if (split_fields(line).empty()) continue;
        auto colon = line.find(':');
        auto name_fields = split_fields(line.substr(0, colon == std::string_view::npos ? 0 : colon));
        auto columns = colon == std::string_view::npos ? std::vector<std::string_view>{}
                                                       : split_fields(line.substr(colon + 1));
        auto rx = columns.size() < kDevColumns ? std::nullopt : parse_u64(columns[kRxPackets]);
        auto tx = columns.size() < kDevColumns ? std::nullopt : parse_u64(columns[kTxPackets]);
        if (name_fields.size() != 1 || !rx || !tx) {
            std::string what = "/proc/net/dev: cannot read line \"";
            what.append(line).append("\"");
            throw std::runtime_error(what);
        }
        out[std::string(name_fields[0])] = InterfaceCounters{*rx, *tx};
    }
    if (out.empty()) throw std::runtime_error("/proc/net/dev: no interface listed");
    return out;
}

uint64_t parse_tcp_out_rsts(std::string_view snmp_text) {
    auto lines = split_lines(snmp_text);
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
        auto names = split_fields(lines[i]);
        auto values = split_fields(lines[i + 1]);
        if (names.empty() || names[0] != "Tcp:" || values.empty() || values[0] != "Tcp:") continue;
        if (names.size() != values.size()) break;
        for (size_t k = 1; k < names.size(); ++k)
            if (names[k] == "OutRsts") {
                if (auto v = parse_u64(values[k])) return *v;
                break;
            }
        break;
    }
    throw std::runtime_error("/proc/net/snmp: no readable Tcp: OutRsts counter");
}

RefusalVerdict classify_refusal(const StackCounters& before, const StackCounters& after) {
    // Built by appending: GCC 12 at -O3 warns (-Wrestrict) on "literal" + std::string.
    std::string senders;
    for (const auto& [name, now] : after.interfaces) {
        if (name == "lo") continue;
        if (uint64_t n = sent(before.interfaces, name, now); n > 0) {
            if (!senders.empty()) senders += ", ";
            senders.append(name).append(" sent ").append(std::to_string(n));
        }
    }
    if (!senders.empty()) {
        std::string detail = "packets left the pod during the attempt (";
        detail.append(senders).append(")");
        return {RefusalOrigin::kLeftPod, detail};
    }
    if (after.tcp_out_rsts > before.tcp_out_rsts) {
        std::string detail = "this network namespace's TCP stack sent ";
        detail.append(std::to_string(after.tcp_out_rsts - before.tcp_out_rsts))
            .append(" reset(s) (Tcp OutRsts): the target is an address of this pod");
        return {RefusalOrigin::kOwnStack, detail};
    }
    auto lo_before = before.interfaces.find("lo");
    auto lo_after = after.interfaces.find("lo");
    uint64_t lo_was = lo_before == before.interfaces.end() ? 0 : lo_before->second.rx_packets;
    if (lo_after == after.interfaces.end() || lo_after->second.rx_packets <= lo_was)
        return {RefusalOrigin::kNoReset,
                "no packet left the pod and none came back over lo: the connection was refused without the reset a "
                "local reject sends"};
    return {RefusalOrigin::kInsideNetns, "no packet left the pod; the reset came back over lo"};
}

}  // namespace ef::probe
