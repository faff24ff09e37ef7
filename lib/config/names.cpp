#include <algorithm>
#include <cctype>
#include <limits>

#include "config/values.h"

namespace ef::config {

namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// RFC 1123 label: lower-case alphanumerics and '-', alphanumeric at both ends.
bool is_dns_label(std::string_view s, std::size_t max) {
    if (s.empty() || s.size() > max) return false;
    if (!is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_dns_subdomain(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    std::size_t start = 0;
    while (true) {
        const auto dot = s.find('.', start);
        if (!is_dns_label(s.substr(start, dot - start), 63)) return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

// The name part of a qualified name: alphanumeric at both ends, [-_.] inside.
bool is_qualified_name_part(std::string_view s) {
    if (s.empty() || s.size() > 63) return false;
    if (!is_alnum(s.front()) || !is_alnum(s.back())) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

}  // namespace

std::optional<uint32_t> parse_decimal_u32(std::string_view text) {
    if (text.empty() || text.size() > 10) return std::nullopt;
    // "010" could be read as octal by some tools; refuse the ambiguity.
    if (text.size() > 1 && text.front() == '0') return std::nullopt;
    uint64_t n = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (n > std::numeric_limits<uint32_t>::max()) return std::nullopt;
    return static_cast<uint32_t>(n);
}

std::string quoted(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out.append(1, '"').append(text).append(1, '"');
    return out;
}

bool is_profile_name(std::string_view name) { return is_dns_label(name, 63); }

std::optional<std::string> annotation_key_problem(std::string_view key) {
    const auto slash = key.find('/');
    const std::string_view name = slash == std::string_view::npos ? key : key.substr(slash + 1);
    if (slash != std::string_view::npos) {
        // Kubernetes lower-cases the prefix before checking it (ValidateAnnotations).
        std::string prefix(key.substr(0, slash));
        std::transform(prefix.begin(), prefix.end(), prefix.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!is_dns_subdomain(prefix))
            return quoted(key) +
                   " is not a valid annotation key: the prefix before '/' must be a DNS "
                   "subdomain such as example.com";
    }
    if (!is_qualified_name_part(name))
        return quoted(key) +
               " is not a valid annotation key: the name must be 1-63 characters of "
               "[A-Za-z0-9-_.], starting and ending with a letter or digit";
    return std::nullopt;
}

}  // namespace ef::config
