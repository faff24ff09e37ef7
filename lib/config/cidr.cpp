#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "config/values.h"

namespace ef::config {

namespace {

std::optional<uint8_t> parse_prefix_length(std::string_view text, uint8_t max, bool v6, std::string& why) {
    const std::string family = v6 ? "IPv6" : "IPv4";
    const bool digits = !text.empty() && text.size() <= 3 &&
                        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) {
        why = "prefix length \"" + std::string(text) + "\" is not a number from 0 to " + std::to_string(max);
        return std::nullopt;
    }
    const int n = std::stoi(std::string(text));
    if (n > max) {
        why = "prefix length " + std::to_string(n) + " is out of range for " + family + " (0-" + std::to_string(max) +
              ")";
        return std::nullopt;
    }
    return static_cast<uint8_t>(n);
}

Cidr network_of(Cidr c) {
    const std::size_t bytes = c.v6 ? 16 : 4;
    for (std::size_t i = 0; i < bytes; ++i) {
        const int bits_kept = std::clamp(static_cast<int>(c.prefix) - static_cast<int>(i) * 8, 0, 8);
        const auto mask = static_cast<uint8_t>(bits_kept == 0 ? 0 : 0xff << (8 - bits_kept));
        c.addr[i] &= mask;
    }
    return c;
}

// Says which family the text looked like; a name such as "kube-dns" is neither.
std::string not_an_address(const std::string& text) {
    const std::string example = "an address prefix such as 10.0.0.0/8 or fd00::/64";
    const std::string quoted = "\"" + text + "\"";
    if (text.find(':') != std::string::npos) return quoted + " is not an IPv6 address (expected " + example + ")";
    if (std::all_of(text.begin(), text.end(), [](char ch) { return ch == '.' || (ch >= '0' && ch <= '9'); }))
        return quoted + " is not an IPv4 address (expected " + example + ")";
    return quoted + " is not an IP address: names are not resolved here; write " + example;
}

// ::ffff:a.b.c.d never appears as an IPv6 destination on the wire: the kernel
// sends such a socket's traffic as IPv4, so an IPv6 entry for it allows nothing.
bool is_v4_mapped(const Cidr& c) {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return c.v6 && c.prefix >= 96 && std::memcmp(c.addr.data(), kMapped, sizeof kMapped) == 0;
}

}  // namespace

namespace {

// "a.b.c.d" or "a.b.c.d/n" in the one spelling inet_pton and the checks
// below accept without a problem (decimal octets without leading zeros, a
// prefix of 1-3 digits up to 32, no host bits): the common case of a long
// allow list, without the copies. false: let the general path decide.
bool plain_ipv4_cidr(std::string_view text, Cidr& out) {
    const char* p = text.data();
    const char* end = p + text.size();
    Cidr c;
    auto digit = [](char ch) { return ch >= '0' && ch <= '9'; };
    for (int octet = 0; octet < 4; ++octet) {
        if (octet > 0) {
            if (p == end || *p != '.') return false;
            ++p;
        }
        const char* start = p;
        unsigned v = 0;
        while (p != end && digit(*p) && p - start < 3) v = v * 10 + static_cast<unsigned>(*p++ - '0');
        if (p == start || v > 255 || (*start == '0' && p - start > 1)) return false;
        c.addr[octet] = static_cast<uint8_t>(v);
    }
    c.prefix = 32;
    if (p != end) {
        if (*p++ != '/') return false;
        const char* start = p;
        unsigned n = 0;
        while (p != end && digit(*p) && p - start < 3) n = n * 10 + static_cast<unsigned>(*p++ - '0');
        if (p == start || p != end || n > 32) return false;
        c.prefix = static_cast<uint8_t>(n);
    }
    const uint32_t addr = uint32_t{c.addr[0]} << 24 | uint32_t{c.addr[1]} << 16 | uint32_t{c.addr[2]} << 8 | c.addr[3];
    const uint32_t host = c.prefix == 32 ? 0 : 0xFFFFFFFFu >> c.prefix;
    if (addr & host) return false;
    out = c;
    return true;
}

}  // namespace

std::optional<Cidr> parse_cidr(std::string_view text, std::string& why) {
    if (Cidr c; plain_ipv4_cidr(text, c)) return c;
    if (text.empty()) {
        why = "empty; expected an address prefix such as 10.0.0.0/8 or fd00::/64";
        return std::nullopt;
    }
    const auto slash = text.find('/');
    const std::string_view address = text.substr(0, slash);
    Cidr c;
    c.v6 = address.find(':') != std::string_view::npos;
    // On the stack: no address is this long, and a long allow list parses one per entry.
    char terminated[64];
    const bool fits = address.size() < sizeof terminated;
    if (fits) {
        std::memcpy(terminated, address.data(), address.size());
        terminated[address.size()] = '\0';
    }
    if (!fits || inet_pton(c.v6 ? AF_INET6 : AF_INET, terminated, c.addr.data()) != 1) {
        why = not_an_address(std::string(address));
        return std::nullopt;
    }
    const uint8_t max = c.v6 ? 128 : 32;
    c.prefix = max;
    if (slash != std::string_view::npos) {
        auto len = parse_prefix_length(text.substr(slash + 1), max, c.v6, why);
        if (!len) return std::nullopt;
        c.prefix = *len;
    }
    if (is_v4_mapped(c)) {
        why =
            "an IPv4-mapped IPv6 address never matches: IPv4 traffic is matched by IPv4 entries; write the IPv4 "
            "address instead";
        return std::nullopt;
    }
    const Cidr network = network_of(c);
    if (network != c) {
        why = "host bits are set; did you mean " + format_cidr(network) + "?";
        return std::nullopt;
    }
    return c;
}

std::string format_cidr(const Cidr& cidr) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(cidr.v6 ? AF_INET6 : AF_INET, cidr.addr.data(), text, sizeof text);
    return std::string(text) + "/" + std::to_string(cidr.prefix);
}

}  // namespace ef::config
