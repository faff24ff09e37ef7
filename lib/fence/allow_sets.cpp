#include "fence/allow_sets.h"

#include <algorithm>
#include <array>
#include <bit>
#include <string>

#include "fence/disjoint.h"

namespace ef::fence {
namespace {

using config::AllowEntry;
using config::Protocol;

constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17, kProtoSctp = 132;

uint8_t proto_number(Protocol p) {
    switch (p) {
        case Protocol::tcp: return kProtoTcp;
        case Protocol::udp: return kProtoUdp;
        case Protocol::sctp: return kProtoSctp;
        case Protocol::any: break;
    }
    return 0;
}

Bytes be16(uint16_t v) { return Bytes{uint8_t(v >> 8), uint8_t(v)}; }
FieldRange exact(const Bytes& v) { return {v, v}; }

// The network address of `c` (its host bits are zero: config validated it).
Bytes network(const config::Cidr& c) { return {c.addr.begin(), c.addr.begin() + (c.v6 ? 16 : 4)}; }

// Every address of the prefix `net`/`len`.
FieldRange prefix_range(const Bytes& net, size_t len) {
    Bytes hi = net;
    for (size_t bit = len; bit < hi.size() * 8; ++bit) hi[bit / 8] |= uint8_t(0x80 >> (bit % 8));
    return {net, hi};
}

// The pieces of one address family and kind, before they are laid out.
struct Group {
    bool v6 = false;
    bool any = false;
    std::array<std::vector<Element>, 129> exact;  // by prefix length
    std::vector<Element> ranges;
};

void add_entry(Group& g, const AllowEntry& e) {
    Bytes net = network(e.cidr);
    size_t len = e.cidr.prefix;
    if (g.any) {
        if (len > 0) g.exact[len].push_back(Element{{exact(net)}});
        else g.ranges.push_back(Element{{prefix_range(net, len)}});
        return;
    }
    FieldRange proto = exact(Bytes{proto_number(e.protocol)});
    for (const auto& p : e.ports) {
        if (p.lo == p.hi && len > 0) g.exact[len].push_back(Element{{exact(net), proto, exact(be16(p.lo))}});
        else g.ranges.push_back(Element{{prefix_range(net, len), proto, {be16(p.lo), be16(p.hi)}}});
    }
}

Set make_set(const Group& g, std::string name, bool interval) {
    std::vector<FieldType> key = {g.v6 ? FieldType::ipv6_addr : FieldType::ipv4_addr};
    if (!g.any) key.insert(key.end(), {FieldType::inet_proto, FieldType::inet_service});
    return Set{std::move(name), std::move(key), interval, {}, 0};
}

Stmt match(const Group& g, const std::string& set, uint8_t mask_len) {
    IpFamily f = g.v6 ? IpFamily::ipv6 : IpFamily::ipv4;
    if (g.any) return DaddrInSet{f, set, mask_len};
    return DaddrProtoPortInSet{f, set, mask_len};
}

void lay_out(Group& g, std::vector<AllowSet>& out) {
    const size_t full = g.v6 ? 128 : 32;
    const std::string base = std::string(g.v6 ? "allow6" : "allow4") + (g.any ? "_any" : "");
    // The shorter lengths with the most entries get hash sets; ties to the longer.
    std::vector<size_t> masked;
    for (size_t len = 1; len < full; ++len)
        if (!g.exact[len].empty()) masked.push_back(len);
    std::stable_sort(masked.begin(), masked.end(),
                     [&](size_t a, size_t b) { return g.exact[a].size() > g.exact[b].size(); });
    for (size_t i = kMaxMaskedSets; i < masked.size(); ++i) {
        for (auto& e : g.exact[masked[i]]) {
            e.fields[0] = prefix_range(e.fields[0].lo, masked[i]);
            g.ranges.push_back(std::move(e));
        }
    }
    if (masked.size() > kMaxMaskedSets) masked.resize(kMaxMaskedSets);
    std::sort(masked.begin(), masked.end(), std::greater<>());
    if (!g.exact[full].empty()) masked.insert(masked.begin(), full);

    for (size_t len : masked) {
        std::string name = len == full ? base : base + "_" + std::to_string(len);
        Set s = make_set(g, name, false);
        s.elements = std::move(g.exact[len]);
        sort_elements(s);
        s.size = hash_set_size(s.elements.size());
        Stmt m = match(g, name, static_cast<uint8_t>(len == full ? 0 : len));
        out.push_back(AllowSet{std::move(s), std::move(m)});
    }
    if (g.ranges.empty()) return;
    Set s = make_set(g, base + "_ranges", true);
    s.elements = g.any ? disjoint_ranges(std::move(g.ranges)) : disjoint_addr_proto_port(g.ranges);
    Stmt m = match(g, s.name, 0);
    out.push_back(AllowSet{std::move(s), std::move(m)});
}

}  // namespace

uint32_t hash_set_size(size_t n) { return static_cast<uint32_t>(std::bit_ceil(std::max<uint64_t>(n, 16))); }

std::vector<AllowSet> allow_sets(const std::vector<AllowEntry>& allow) {
    // Ported v4, ported v6, any v4, any v6: the rule order.
    std::array<Group, 4> groups;
    for (size_t i = 0; i < groups.size(); ++i) {
        groups[i].v6 = i % 2 == 1;
        groups[i].any = i >= 2;
    }
    for (const auto& e : allow) add_entry(groups[(e.protocol == Protocol::any ? 2 : 0) + (e.cidr.v6 ? 1 : 0)], e);
    std::vector<AllowSet> out;
    for (auto& g : groups) lay_out(g, out);
    return out;
}

}  // namespace ef::fence
