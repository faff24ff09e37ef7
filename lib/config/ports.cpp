#include <algorithm>

#include "config/values.h"

namespace ef::config {

std::optional<PortRange> parse_port_range(std::string_view text, std::string& why) {
    const auto dash = text.find('-');
    auto lo = parse_decimal_u32(text.substr(0, dash));
    auto hi = dash == std::string_view::npos ? std::nullopt : parse_decimal_u32(text.substr(dash + 1));
    if (!lo || !hi) {
        why = R"(expected a "lo-hi" port range such as "8000-8100", found )" + quoted(text);
        // A lone "53" is almost certainly meant as a number.
        if (lo && dash == std::string_view::npos)
            why += " (write a single port as a number: " + std::string(text) + ")";
        return std::nullopt;
    }
    if (*lo < 1 || *hi > 65535) {
        why = "port range " + quoted(text) + " is outside 1-65535";
        return std::nullopt;
    }
    if (*lo > *hi) {
        why = "port range " + quoted(text) + " is backwards; did you mean \"" + std::to_string(*hi) + "-" +
              std::to_string(*lo) + "\"?";
        return std::nullopt;
    }
    return PortRange{static_cast<uint16_t>(*lo), static_cast<uint16_t>(*hi)};
}

std::vector<PortRange> merge_ports(std::vector<PortRange> ports) {
    std::sort(ports.begin(), ports.end(),
              [](const PortRange& a, const PortRange& b) { return a.lo != b.lo ? a.lo < b.lo : a.hi < b.hi; });
    std::vector<PortRange> merged;
    for (const auto& p : ports) {
        // int arithmetic: hi + 1 must not wrap at 65535.
        if (!merged.empty() && static_cast<int>(p.lo) <= static_cast<int>(merged.back().hi) + 1)
            merged.back().hi = std::max(merged.back().hi, p.hi);
        else merged.push_back(p);
    }
    return merged;
}

}  // namespace ef::config
