// CNI spec versions egress-fence speaks, and its own version.
#pragma once

#include <array>
#include <string_view>

namespace ef::cni {

inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

inline bool is_supported_version(std::string_view v) {
    for (auto s : kSupportedVersions)
        if (s == v) return true;
    return false;
}

inline constexpr std::string_view kPluginVersion = "0.1.0";

}  // namespace ef::cni
