// nft syntax for the model, written to match `nft list table` (nftables 1.0.x)
// byte for byte, so an admin can diff what `render` promises against what the
// kernel holds, and so the output loads with `nft -f`.

#include <array>
#include <cstdio>

#include <netinet/in.h>

#include "fence/ruleset.h"
#include "fence/text_out.h"

namespace ef::fence {
namespace {

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
// clang 14 (the fuzz build) lacks C++20 aggregate deduction; gcc does not need this.
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

// "lo" or "lo-hi", appended piece by piece: `"-" + std::to_string(hi)` trips
// GCC 12's false -Wrestrict (bug 105329) in Release builds.
std::string range_text(unsigned lo, unsigned hi) {
    std::string out = std::to_string(lo);
    if (lo != hi) out.append("-").append(std::to_string(hi));
    return out;
}

uint64_t to_uint(const Bytes& b) {
    uint64_t v = 0;
    for (uint8_t x : b) v = (v << 8) | x;
    return v;
}

char* dotted_quad(char* out, const uint8_t* a) {
    for (size_t i = 0; i < 4; ++i) {
        const unsigned v = a[i];
        if (i) *out++ = '.';
        if (v >= 100) *out++ = static_cast<char>('0' + v / 100);
        if (v >= 10) *out++ = static_cast<char>('0' + v / 10 % 10);
        *out++ = static_cast<char>('0' + v % 10);
    }
    return out;
}

void write_addr(TextOut& o, const Bytes& b) {
    std::array<char, kAddressTextMax> buf;  // NOLINT(cppcoreguidelines-pro-type-member-init): written before read
    o << std::string_view(buf.data(), address_text(b, buf.data()));
}

std::string addr_text(const Bytes& b) {
    std::string out;
    StringOut o(out);
    write_addr(o, b);
    o.flush();
    return out;
}

// The prefix length when [lo, hi] is exactly one CIDR block, else -1.
int prefix_len(const Bytes& lo, const Bytes& hi) {
    int bits = static_cast<int>(lo.size()) * 8;
    int len = 0;
    bool in_host = false;
    for (int i = 0; i < bits; ++i) {
        int byte = i / 8, shift = 7 - i % 8;
        bool l = (lo[byte] >> shift) & 1, h = (hi[byte] >> shift) & 1;
        if (!in_host) {
            if (l == h) {
                ++len;
                continue;
            }
            in_host = true;
        }
        if (l || !h) return -1;  // host part must run 0...0 -> 1...1
    }
    return len;
}

// nft's name for an IP protocol, or nullptr when it prints the number.
const char* proto_word(uint64_t p) {
    switch (p) {
        case 6: return "tcp";
        case 17: return "udp";
        case 132: return "sctp";
        case 1: return "icmp";
        case 58: return "ipv6-icmp";
        default: return nullptr;
    }
}

void write_proto(TextOut& o, uint64_t p) {
    if (const char* w = proto_word(p)) o << w;
    else o << p;
}

std::string proto_name(uint64_t p) {
    const char* w = proto_word(p);
    return w ? std::string(w) : std::to_string(p);
}

void write_value(TextOut& o, FieldType t, const Bytes& v) {
    switch (t) {
        case FieldType::ipv4_addr:
        case FieldType::ipv6_addr: return write_addr(o, v);
        case FieldType::inet_proto: return write_proto(o, to_uint(v));
        case FieldType::inet_service:
        case FieldType::uid: o << to_uint(v); return;
    }
    o << "?";
}

void write_field(TextOut& o, FieldType t, const FieldRange& f) {
    if (f.lo == f.hi) return write_value(o, t, f.lo);
    if (t == FieldType::ipv4_addr || t == FieldType::ipv6_addr) {
        int len = prefix_len(f.lo, f.hi);
        if (len >= 0) {
            write_addr(o, f.lo);
            o << "/" << len;
            return;
        }
    }
    write_value(o, t, f.lo);
    o << "-";
    write_value(o, t, f.hi);
}

// nft breaks element lists after every element of a concatenation or an IPv6
// address, every 2nd IPv4 address and every 5th number.
int elements_per_line(const Set& s) {
    if (s.key.size() != 1) return 1;
    switch (s.key[0]) {
        case FieldType::ipv4_addr: return 2;
        case FieldType::ipv6_addr: return 1;
        default: return 5;
    }
}

const char* family_prefix(IpFamily f) { return f == IpFamily::ipv4 ? "ip" : "ip6"; }

// `ip daddr`, or `ip daddr & 255.255.255.0` when the address is masked.
std::string daddr_text(IpFamily f, uint8_t mask_len) {
    std::string out = std::string(family_prefix(f)) + " daddr";
    if (mask_len == 0) return out;
    Bytes mask(f == IpFamily::ipv4 ? 4 : 16, 0);
    for (size_t bit = 0; bit < mask_len && bit < mask.size() * 8; ++bit) mask[bit / 8] |= uint8_t(0x80 >> (bit % 8));
    return out + " & " + addr_text(mask);
}

const char* unit_name(TimeUnit u) {
    switch (u) {
        case TimeUnit::second: return "second";
        case TimeUnit::minute: return "minute";
        case TimeUnit::hour: return "hour";
        case TimeUnit::day: return "day";
    }
    return "?";
}

std::string ct_state_text(uint32_t bits) {
    static const std::pair<uint32_t, const char*> names[] = {
        {1u << 0, "invalid"}, {1u << 1, "established"}, {1u << 2, "related"}, {1u << 3, "new"}, {1u << 6, "untracked"}};
    std::string out;
    for (auto [bit, name] : names) {
        if (!(bits & bit)) continue;
        if (!out.empty()) out += ",";
        out += name;
    }
    return out;
}

std::string ether_type_text(uint16_t t) {
    switch (t) {
        case 0x0800: return "ip";
        case 0x0806: return "arp";
        case 0x86dd: return "ip6";
        default: {
            char buf[8];
            // Cannot truncate: a uint16_t is at most "0xffff".
            (void)std::snprintf(buf, sizeof buf, "0x%04x", t);
            return buf;
        }
    }
}

const char* hook_name(Hook h) {
    switch (h) {
        case Hook::output: return "output";
        case Hook::forward: return "forward";
        case Hook::egress: return "egress";
        case Hook::prerouting: return "prerouting";
    }
    return "?";
}

// nft's name for one ICMPv6 type (it prints a range as numbers).
std::string icmpv6_type_text(uint8_t lo, uint8_t hi) {
    static const std::pair<uint8_t, const char*> names[] = {
        {1, "destination-unreachable"}, {2, "packet-too-big"},        {3, "time-exceeded"},
        {4, "parameter-problem"},       {128, "echo-request"},        {129, "echo-reply"},
        {130, "mld-listener-query"},    {131, "mld-listener-report"}, {132, "mld-listener-done"},
        {133, "nd-router-solicit"},     {134, "nd-router-advert"},    {135, "nd-neighbor-solicit"},
        {136, "nd-neighbor-advert"},    {137, "nd-redirect"},         {138, "router-renumbering"},
        {141, "ind-neighbor-solicit"},  {142, "ind-neighbor-advert"}, {143, "mld2-listener-report"}};
    if (lo == hi)
        for (auto [type, name] : names)
            if (type == lo) return name;
    return range_text(lo, hi);
}

std::string hex32(uint32_t v) {
    char buf[16];
    // Cannot truncate: "0x" and 8 hex digits.
    (void)std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

std::string ip6_prefix_text(const Ip6AddrPrefix& p) {
    std::string out = p.source ? "ip6 saddr " : "ip6 daddr ";
    out += addr_text(p.addr);
    if (p.len != 128) out.append("/").append(std::to_string(p.len));
    return out;
}

std::string priority_text(int32_t p) {
    if (p == 0) return "filter";
    // Widened before negating: a chain read back may have priority INT32_MIN.
    return p > 0 ? "filter + " + std::to_string(p) : "filter - " + std::to_string(-int64_t{p});
}

}  // namespace

size_t address_text(const Bytes& b, char* out) {
    char* p = out;
    if (b.size() == 4) return static_cast<size_t>(dotted_quad(p, b.data()) - out);
    // RFC 5952 as glibc's inet_ntop writes it: groups in lowercase hex
    // without leading zeros; the first longest run of two or more zero
    // groups as "::"; an IPv4-compatible or -mapped address ends in dotted
    // decimal.
    std::array<unsigned, 8> words{};
    for (size_t i = 0; i < 8; ++i) words[i] = unsigned{b[2 * i]} << 8 | b[2 * i + 1];
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (words[static_cast<size_t>(i)] != 0) {
            ++i;
            continue;
        }
        int j = i;
        while (j < 8 && words[static_cast<size_t>(j)] == 0) ++j;
        if (j - i > best_len) best = i, best_len = j - i;
        i = j;
    }
    if (best_len < 2) best = -1;
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 8; ++i) {
        if (best >= 0 && i >= best && i < best + best_len) {
            if (i == best) *p++ = ':';
            continue;
        }
        if (i != 0) *p++ = ':';
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)))
            return static_cast<size_t>(dotted_quad(p, b.data() + 12) - out);
        const unsigned w = words[static_cast<size_t>(i)];
        bool started = false;
        for (int shift = 12; shift >= 0; shift -= 4) {
            const unsigned nibble = (w >> shift) & 15;
            if (!nibble && !started && shift) continue;
            started = true;
            *p++ = kHex[nibble];
        }
    }
    if (best >= 0 && best + best_len == 8) *p++ = ':';
    return static_cast<size_t>(p - out);
}

std::string to_nft_text(const Stmt& s) {
    return std::visit(
        overloaded{
            [](const OifnameEq& x) { return "oifname \"" + x.name + "\""; },
            [](const OifnameNe& x) { return "oifname != \"" + x.name + "\""; },
            [](const IifnameNe& x) { return "iifname != \"" + x.name + "\""; },
            [](const SkuidAny&) { return std::string("meta skuid 0-4294967295"); },
            [](const FibSaddrNotLocal&) { return std::string("fib saddr type != local"); },
            [](const FibSaddrIifOif& x) {
                return std::string("fib saddr . iif oif ") + (x.exists ? "exists" : "missing");
            },
            [](const CtDirectionEq& x) {
                return std::string("ct direction ") + (x.dir == CtDir::reply ? "reply" : "original");
            },
            [](const CtMarkHas& x) { return "ct mark & " + hex32(x.bits) + " == " + hex32(x.bits); },
            [](const CtMarkOr& x) { return "ct mark set ct mark | " + hex32(x.bits); },
            [](const Goto& x) { return "goto " + x.chain; },
            [](const Ip6HopLimitEq& x) { return "ip6 hoplimit " + std::to_string(x.value); },
            [](const Ip6ExthdrExists& x) {
                return x.type == IPPROTO_ROUTING ? std::string("exthdr rt exists")
                                                 : "exthdr " + std::to_string(x.type) + " exists";
            },
            [](const Ip6AddrPrefix& x) { return ip6_prefix_text(x); },
            [](const SaddrInSet& x) { return std::string(family_prefix(x.family)) + " saddr @" + x.set; },
            [](const L4ProtoEq& x) { return "meta l4proto " + proto_name(x.proto); },
            [](const CtStateIn& x) { return "ct state " + ct_state_text(x.bits); },
            [](const Icmpv6TypeRange& x) { return "icmpv6 type " + icmpv6_type_text(x.lo, x.hi); },
            [](const SkuidInSet& x) { return "meta skuid @" + x.set; },
            // nft writes `==` between a masked address and the set.
            [](const DaddrInSet& x) {
                return daddr_text(x.family, x.mask_len) + (x.mask_len ? " == @" : " @") + x.set;
            },
            [](const DaddrProtoPortInSet& x) {
                return daddr_text(x.family, x.mask_len) + " . meta l4proto . th dport @" + x.set;
            },
            [](const DaddrProtoInSet& x) { return daddr_text(x.family, x.mask_len) + " . meta l4proto @" + x.set; },
            [](const ThDportRange& x) { return "th dport " + range_text(x.lo, x.hi); },
            [](const CounterRef& x) { return "counter name \"" + x.name + "\""; },
            [](const Limit& x) {
                return "limit rate " + std::to_string(x.rate) + "/" + unit_name(x.unit) + " burst " +
                       std::to_string(x.burst) + " packets";
            },
            [](const Log& x) { return "log prefix \"" + x.prefix + "\" flags skuid"; },
            [](const Verdict& x) { return std::string(x.kind == VerdictKind::accept ? "accept" : "drop"); },
            [](const Reject& x) {
                return std::string(x.kind == RejectKind::tcp_reset ? "reject with tcp reset" : "reject");
            },
            [](const Unrecognized& x) { return "# unrecognized: " + x.text; },
            [](const SecmarkSet& x) { return "meta secmark set " + std::to_string(x.value); },
            [](const SecmarkEq& x) { return "meta secmark " + std::to_string(x.value); },
            [](const EtherTypeEq& x) { return "ether type " + ether_type_text(x.type); },
        },
        s);
}

std::string to_nft_text(const Rule& r) {
    std::string out;
    for (size_t i = 0; i < r.stmts.size(); ++i) {
        if (!out.empty()) out += " ";
        // nft lists `meta l4proto tcp th dport N` as `tcp dport N` (the
        // protocol match is the port's dependency); so do we.
        const auto* proto = std::get_if<L4ProtoEq>(&r.stmts[i]);
        const auto* port = i + 1 < r.stmts.size() ? std::get_if<ThDportRange>(&r.stmts[i + 1]) : nullptr;
        if (proto && port && (proto->proto == IPPROTO_TCP || proto->proto == IPPROTO_UDP)) {
            out += proto_name(proto->proto) + " dport " + range_text(port->lo, port->hi);
            ++i;
            continue;
        }
        out += to_nft_text(r.stmts[i]);
    }
    return out;
}

void write_element(TextOut& o, const Set& set, const Element& e) {
    for (size_t i = 0; i < e.fields.size() && i < set.key.size(); ++i) {
        if (i) o << " . ";
        write_field(o, set.key[i], e.fields[i]);
    }
}

std::string to_nft_text(const Set& set, const Element& e) {
    std::string out;
    StringOut o(out);
    write_element(o, set, e);
    o.flush();
    return out;
}

namespace {

// One table's body, as nft lists it: counters, sets, chains, a blank line
// between any two of them.
void write_table(TextOut& o, const char* family, const std::vector<Counter>& counters, const std::vector<Set>& sets,
                 const std::vector<Chain>& chains, bool counter_values) {
    o << "table " << family << " " << kTableName << " {\n";
    bool first = true;
    auto separate = [&] {
        if (!first) o << "\n";
        first = false;
    };
    for (const auto& c : counters) {
        separate();
        o << "\tcounter " << c.name << " {\n\t\tpackets " << (counter_values ? c.packets : 0) << " bytes "
          << (counter_values ? c.bytes : 0) << "\n\t}\n";
    }
    for (const auto& s : sets) {
        separate();
        o << "\tset " << s.name << " {\n\t\ttype ";
        for (size_t i = 0; i < s.key.size(); ++i) o << (i ? " . " : "") << field_type_name(s.key[i]);
        o << "\n";
        if (s.size) o << "\t\tsize " << s.size << "\n";
        if (s.interval) o << "\t\tflags interval\n";
        if (!s.elements.empty()) {
            int per_line = elements_per_line(s);
            o << "\t\telements = { ";
            for (size_t i = 0; i < s.elements.size(); ++i) {
                if (i) o << ((i % per_line) == 0 ? ",\n\t\t\t     " : ", ");
                write_element(o, s, s.elements[i]);
            }
            o << " }\n";
        }
        o << "\t}\n";
    }
    for (const auto& c : chains) {
        separate();
        o << "\tchain " << c.name << " {\n";
        if (c.base) {
            o << "\t\ttype filter hook " << hook_name(c.base->hook);
            if (c.base->hook == Hook::egress) o << " device \"" << c.base->device << "\"";
            o << " priority " << priority_text(c.base->priority) << "; policy "
              << (c.base->policy == Policy::drop ? "drop" : "accept") << ";\n";
        }
        for (const auto& r : c.rules) o << "\t\t" << to_nft_text(r) << "\n";
        o << "\t}\n";
    }
    o << "}\n";
}

}  // namespace

void write_nft_text(TextOut& o, const Ruleset& rs, bool with_metadata, bool counter_values) {
    if (with_metadata) {
        const auto& m = rs.meta;
        o << "# egress-fence " << m.plugin_version << " profile=" << m.profile << " pod=" << m.pod_namespace << "/"
          << m.pod_name << " container=" << m.container_id << " digest=" << m.digest << "\n";
    }
    write_table(o, "inet", rs.counters, rs.sets, rs.chains, counter_values);
    if (rs.netdev) write_table(o, "netdev", rs.netdev->counters, {}, rs.netdev->chains, counter_values);
}

std::string to_nft_text(const Ruleset& rs, bool with_metadata) {
    std::string out;
    StringOut o(out);
    write_nft_text(o, rs, with_metadata);
    o.flush();
    return out;
}

}  // namespace ef::fence
