#include "fence/allow_sets.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <string>
#include <tuple>

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

// A group: prefix length, and for a port-range group its range (single
// ports: lo == hi == 0, the port is a key field). Ordered as their rules go: longer
// prefixes first, one port before ranges, ranges by their ports.
struct GroupKey {
    uint8_t len;
    uint16_t lo = 0, hi = 0;
    bool range() const { return lo != hi; }
    bool operator<(const GroupKey& o) const {
        return std::tuple(-int{len}, range(), lo, hi) < std::tuple(-int{o.len}, o.range(), o.lo, o.hi);
    }
};

// The pieces of one address family and kind, before they are laid out. A
// group's pieces are held as their key fields' bytes concatenated (address,
// then protocol and port when the set has them), so they are put in
// canonical order (key_order) before any element exists, and each element
// is built once, in its place.
struct Pieces {
    bool v6 = false;
    bool any = false;
    std::map<GroupKey, std::vector<uint8_t>> groups;  // hash-set candidates
    std::vector<Element> ranges;                      // interval set, ready
    // The group the last piece went to: entries come in runs of one shape.
    std::vector<uint8_t>* last = nullptr;
    GroupKey last_key{0xff};

    size_t addr_len() const { return v6 ? 16 : 4; }
    // Bytes of one piece of group `k`.
    size_t piece_len(const GroupKey& k) const { return addr_len() + (any ? 0 : k.range() ? 1 : 3); }
    std::vector<uint8_t>& group(const GroupKey& k) {
        if (!last || last_key.len != k.len || last_key.lo != k.lo || last_key.hi != k.hi) {
            last = &groups[k];
            last_key = k;
        }
        return *last;
    }
};

void add_entry(Pieces& g, const AllowEntry& e) {
    const uint8_t* net = e.cidr.addr.data();
    const size_t alen = g.addr_len();
    uint8_t len = e.cidr.prefix;
    if (g.any) {
        if (len > 0) {
            auto& keys = g.group({len});
            keys.insert(keys.end(), net, net + alen);
        } else {
            g.ranges.push_back(Element{{prefix_range(network(e.cidr), len)}});
        }
        return;
    }
    const uint8_t proto = proto_number(e.protocol);
    for (const auto& p : e.ports) {
        if (len == 0) {
            g.ranges.push_back(
                Element{{prefix_range(network(e.cidr), len), exact(Bytes{proto}), {be16(p.lo), be16(p.hi)}}});
        } else if (p.lo == p.hi) {
            auto& keys = g.group({len});
            keys.insert(keys.end(), net, net + alen);
            const uint8_t tail[3] = {proto, uint8_t(p.lo >> 8), uint8_t(p.lo)};
            keys.insert(keys.end(), tail, tail + 3);
        } else {
            auto& keys = g.group({len, p.lo, p.hi});
            keys.insert(keys.end(), net, net + alen);
            keys.push_back(proto);
        }
    }
}

// A group's pieces as interval-set elements: the prefix as a range, and
// the port (a key field) or the group's port range.
void to_ranges(const Pieces& g, const GroupKey& k, const std::vector<uint8_t>& keys, std::vector<Element>& out) {
    const size_t alen = g.addr_len(), plen = g.piece_len(k);
    for (size_t at = 0; at + plen <= keys.size(); at += plen) {
        const uint8_t* p = keys.data() + at;
        Element r{{prefix_range(Bytes(p, p + alen), k.len)}};
        if (!g.any) {
            r.fields.push_back(exact(Bytes{p[alen]}));
            r.fields.push_back(k.range() ? FieldRange{be16(k.lo), be16(k.hi)} : exact(Bytes{p[alen + 1], p[alen + 2]}));
        }
        out.push_back(r);
    }
}

std::vector<FieldType> key(const Pieces& g, const GroupKey* k) {
    std::vector<FieldType> key = {g.v6 ? FieldType::ipv6_addr : FieldType::ipv4_addr};
    if (g.any) return key;
    key.push_back(FieldType::inet_proto);
    if (!k || !k->range()) key.push_back(FieldType::inet_service);
    return key;
}

std::string set_name(const Pieces& g, const GroupKey& k) {
    const size_t full = g.v6 ? 128 : 32;
    std::string name = std::string(g.v6 ? "allow6" : "allow4") + (g.any ? "_any" : "");
    // Appended piece by piece: `"_" + std::to_string(n)` trips GCC 12's false
    // -Wrestrict (bug 105329) in Release builds.
    if (k.len != full) name.append("_").append(std::to_string(k.len));
    if (k.range()) name.append("_ports_").append(std::to_string(k.lo)).append("_").append(std::to_string(k.hi));
    return name;
}

std::vector<Stmt> match(const Pieces& g, const std::string& set, const GroupKey* k) {
    IpFamily f = g.v6 ? IpFamily::ipv6 : IpFamily::ipv4;
    const size_t full = g.v6 ? 128 : 32;
    uint8_t mask_len = k && k->len != full ? k->len : 0;
    if (g.any) return {DaddrInSet{f, set, mask_len}};
    if (k && k->range()) return {DaddrProtoInSet{f, set, mask_len}, ThDportRange{k->lo, k->hi}};
    return {DaddrProtoPortInSet{f, set, mask_len}};
}

// A hash set's elements from its group's pieces, in canonical order and
// without duplicates.
std::vector<Element> hash_elements(const Set& s, size_t plen, std::vector<uint8_t>& keys) {
    const size_t n = keys.size() / plen;
    std::vector<uint32_t> order = key_order(keys.data(), n, plen, sorts_from_last_byte(s));
    std::vector<Element> out;
    out.reserve(n);
    const uint8_t* prev = nullptr;
    for (uint32_t i : order) {
        const uint8_t* k = keys.data() + size_t{i} * plen;
        if (prev && std::memcmp(prev, k, plen) == 0) continue;
        out.push_back(element_of(s.key, k));
        prev = k;
    }
    keys = {};
    return out;
}

void lay_out(Pieces& g, std::vector<AllowSet>& out) {
    // The largest groups get hash sets; ties go to the one whose rule comes first.
    std::vector<std::pair<GroupKey, std::vector<uint8_t>*>> order;
    for (auto& [k, keys] : g.groups) order.emplace_back(k, &keys);
    auto pieces = [&g](const auto& o) { return o.second->size() / g.piece_len(o.first); };
    std::stable_sort(order.begin(), order.end(),
                     [&pieces](const auto& a, const auto& b) { return pieces(a) > pieces(b); });
    for (size_t i = kMaxHashSets; i < order.size(); ++i) to_ranges(g, order[i].first, *order[i].second, g.ranges);
    if (order.size() > kMaxHashSets) order.resize(kMaxHashSets);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

    for (auto& [k, keys] : order) {
        Set s{set_name(g, k), key(g, &k), false, {}, 0};
        s.elements = hash_elements(s, g.piece_len(k), *keys);
        s.size = hash_set_size(s.elements.size());
        std::vector<Stmt> m = match(g, s.name, &k);
        out.push_back(AllowSet{std::move(s), std::move(m)});
    }
    if (g.ranges.empty()) return;
    std::string name = std::string(g.v6 ? "allow6" : "allow4") + (g.any ? "_any" : "") + "_ranges";
    Set s{name, key(g, nullptr), true, {}, 0};
    s.elements = g.any ? disjoint_ranges(g.ranges) : disjoint_addr_proto_port(g.ranges);
    std::vector<Stmt> m = match(g, s.name, nullptr);
    out.push_back(AllowSet{std::move(s), std::move(m)});
}

}  // namespace

uint32_t hash_set_size(size_t n) { return static_cast<uint32_t>(std::bit_ceil(std::max<uint64_t>(n, 16))); }

std::vector<AllowSet> allow_sets(const std::vector<AllowEntry>& allow) {
    // Ported v4, ported v6, any v4, any v6: the rule order.
    std::array<Pieces, 4> pieces;
    for (size_t i = 0; i < pieces.size(); ++i) {
        pieces[i].v6 = i % 2 == 1;
        pieces[i].any = i >= 2;
    }
    for (const auto& e : allow) add_entry(pieces[(e.protocol == Protocol::any ? 2 : 0) + (e.cidr.v6 ? 1 : 0)], e);
    std::vector<AllowSet> out;
    for (auto& g : pieces) lay_out(g, out);
    return out;
}

}  // namespace ef::fence
