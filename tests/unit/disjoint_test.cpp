// Overlapping allow entries become disjoint set elements (the kernel refuses
// overlaps with EEXIST), matching exactly the same packets.
#include <doctest/doctest.h>

#include "fence/disjoint.h"

using namespace ef::fence;

namespace {

Bytes v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return Bytes{a, b, c, d}; }
Bytes port(uint16_t p) { return Bytes{uint8_t(p >> 8), uint8_t(p)}; }
Element rect(Bytes lo, Bytes hi, uint8_t proto, uint16_t plo, uint16_t phi) {
    return Element{{{lo, hi}, {Bytes{proto}, Bytes{proto}}, {port(plo), port(phi)}}};
}
const Set kSet{"allow4", {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service}, true, {}};
const Set kAddr{"allow4_any", {FieldType::ipv4_addr}, true, {}};

std::vector<std::string> texts(const Set& s, const std::vector<Element>& els) {
    std::vector<std::string> out;
    out.reserve(els.size());
    for (const auto& e : els) out.push_back(to_nft_text(s, e));
    return out;
}

// Does the element list match (addr, proto, port)? Brute force over a grid.
bool matches(const std::vector<Element>& els, const Bytes& a, uint8_t proto, uint16_t p) {
    for (const auto& e : els)
        if (e.fields[0].lo <= a && a <= e.fields[0].hi && e.fields[1].lo == Bytes{proto} && e.fields[2].lo <= port(p) &&
            port(p) <= e.fields[2].hi)
            return true;
    return false;
}

}  // namespace

TEST_CASE("a CIDR inside another with overlapping ports is cut into disjoint pieces") {
    auto out = disjoint_addr_proto_port({rect(v4(10, 0, 0, 0), v4(10, 255, 255, 255), 6, 80, 80),
                                         rect(v4(10, 1, 0, 0), v4(10, 1, 255, 255), 6, 80, 90)});
    CHECK(texts(kSet, out) == std::vector<std::string>{"10.0.0.0/16 . tcp . 80", "10.1.0.0/16 . tcp . 80-90",
                                                       "10.2.0.0-10.255.255.255 . tcp . 80"});
}

TEST_CASE("different protocols never merge; duplicates collapse") {
    auto out = disjoint_addr_proto_port({rect(v4(1, 2, 3, 4), v4(1, 2, 3, 4), 17, 53, 53),
                                         rect(v4(1, 2, 3, 4), v4(1, 2, 3, 4), 6, 53, 53),
                                         rect(v4(1, 2, 3, 4), v4(1, 2, 3, 4), 6, 53, 53)});
    CHECK(texts(kSet, out) == std::vector<std::string>{"1.2.3.4 . tcp . 53", "1.2.3.4 . udp . 53"});
}

TEST_CASE("touching port ranges on the same address merge") {
    auto out = disjoint_addr_proto_port(
        {rect(v4(1, 2, 3, 4), v4(1, 2, 3, 4), 6, 80, 89), rect(v4(1, 2, 3, 4), v4(1, 2, 3, 4), 6, 90, 100)});
    CHECK(texts(kSet, out) == std::vector<std::string>{"1.2.3.4 . tcp . 80-100"});
}

TEST_CASE("a range reaching the top address is kept whole") {
    auto out = disjoint_addr_proto_port({rect(v4(0, 0, 0, 0), v4(255, 255, 255, 255), 6, 1, 65535),
                                         rect(v4(255, 0, 0, 0), v4(255, 255, 255, 255), 6, 443, 443)});
    CHECK(texts(kSet, out) == std::vector<std::string>{"0.0.0.0/0 . tcp . 1-65535"});
}

TEST_CASE("normalisation matches exactly the packets the entries matched (grid check)") {
    std::vector<Element> in = {rect(v4(10, 0, 0, 0), v4(10, 0, 0, 15), 6, 10, 20),
                               rect(v4(10, 0, 0, 8), v4(10, 0, 0, 31), 6, 15, 30),
                               rect(v4(10, 0, 0, 4), v4(10, 0, 0, 4), 6, 100, 100),
                               rect(v4(10, 0, 0, 20), v4(10, 0, 0, 40), 17, 1, 5)};
    auto out = disjoint_addr_proto_port(in);
    for (size_t i = 0; i < out.size(); ++i)
        for (size_t j = i + 1; j < out.size(); ++j) {
            bool addr_overlap = !(out[i].fields[0].hi < out[j].fields[0].lo ||
                                  out[j].fields[0].hi < out[i].fields[0].lo);
            bool port_overlap = !(out[i].fields[2].hi < out[j].fields[2].lo ||
                                  out[j].fields[2].hi < out[i].fields[2].lo);
            CHECK_FALSE((addr_overlap && port_overlap && out[i].fields[1] == out[j].fields[1]));
        }
    for (uint8_t host = 0; host < 48; ++host)
        for (uint8_t proto : {6, 17})
            for (uint16_t p = 0; p < 110; ++p) {
                Bytes a = v4(10, 0, 0, host);
                CHECK(matches(in, a, proto, p) == matches(out, a, proto, p));
            }
}

TEST_CASE("address-only ranges merge when they overlap or touch") {
    auto out = disjoint_ranges({Element{{{v4(192, 168, 0, 0), v4(192, 168, 255, 255)}}},
                                Element{{{v4(0, 0, 0, 0), v4(255, 255, 255, 255)}}},
                                Element{{{v4(10, 0, 0, 1), v4(10, 0, 0, 1)}}}});
    CHECK(texts(kAddr, out) == std::vector<std::string>{"0.0.0.0/0"});
    out = disjoint_ranges({Element{{{v4(10, 0, 0, 0), v4(10, 0, 0, 127)}}},
                           Element{{{v4(10, 0, 0, 128), v4(10, 0, 0, 255)}}},
                           Element{{{v4(10, 0, 2, 0), v4(10, 0, 2, 0)}}}});
    CHECK(texts(kAddr, out) == std::vector<std::string>{"10.0.0.0/24", "10.0.2.0"});
}

// --- the compiled layout (fence/allow_sets.h) ---------------------------------------
// Random allow lists over a small address space, compiled; every packet of a
// grid over that space must be allowed by the compiled rules and sets exactly
// when an entry the admin wrote allows it.

#include <random>

#include "fence/allow_sets.h"
#include "fence/compile.h"

namespace {

using ef::config::AllowEntry;
using ef::config::Protocol;

struct Packet {
    Bytes addr;
    uint8_t proto;
    uint16_t port;
};

Bytes masked(Bytes a, uint8_t len) {
    if (len == 0) return a;
    for (size_t bit = len; bit < a.size() * 8; ++bit) a[bit / 8] &= uint8_t(~(0x80 >> (bit % 8)));
    return a;
}

bool in(const FieldRange& r, const Bytes& v) { return r.lo <= v && v <= r.hi; }

bool set_holds(const Set& s, const std::vector<Bytes>& key) {
    for (const auto& e : s.elements) {
        bool all = e.fields.size() == key.size();
        for (size_t i = 0; all && i < key.size(); ++i) all = in(e.fields[i], key[i]);
        if (all) return true;
    }
    return false;
}

// Whether the compiled output chain's allow rules accept `p`, read from the
// rules (each a conjunction: lookups with family and mask, port ranges) and
// the sets as a kernel would.
bool compiled_allows(const Ruleset& rs, const Packet& p) {
    const bool v6 = p.addr.size() == 16;
    auto holds = [&](const std::string& name, const std::vector<Bytes>& key) {
        for (const auto& s : rs.sets)
            if (s.name == name) return set_holds(s, key);
        return false;
    };
    auto family_is = [&](IpFamily f) { return (f == IpFamily::ipv6) == v6; };
    for (const auto& r : rs.chains[0].rules) {
        bool lookup = false, all = true;
        for (const auto& st : r.stmts) {
            if (const auto* x = std::get_if<DaddrProtoPortInSet>(&st)) {
                lookup = true;
                all = all && family_is(x->family) &&
                      holds(x->set, {masked(p.addr, x->mask_len), Bytes{p.proto}, port(p.port)});
            } else if (const auto* y = std::get_if<DaddrProtoInSet>(&st)) {
                lookup = true;
                all = all && family_is(y->family) && holds(y->set, {masked(p.addr, y->mask_len), Bytes{p.proto}});
            } else if (const auto* z = std::get_if<DaddrInSet>(&st)) {
                lookup = true;
                all = all && family_is(z->family) && holds(z->set, {masked(p.addr, z->mask_len)});
            } else if (const auto* t = std::get_if<ThDportRange>(&st)) {
                all = all && t->lo <= p.port && p.port <= t->hi;
            }
        }
        if (lookup && all) return true;
    }
    return false;
}

bool entry_allows(const AllowEntry& e, const Packet& p) {
    size_t len = e.cidr.v6 ? 16 : 4;
    if (p.addr.size() != len) return false;
    Bytes net(e.cidr.addr.begin(), e.cidr.addr.begin() + long(len));
    if (masked(p.addr, e.cidr.prefix) != net && e.cidr.prefix != 0) return false;
    if (e.protocol == Protocol::any) return true;
    uint8_t proto = e.protocol == Protocol::tcp ? 6 : e.protocol == Protocol::udp ? 17 : 132;
    if (p.proto != proto) return false;
    for (const auto& r : e.ports)
        if (r.lo <= p.port && p.port <= r.hi) return true;
    return false;
}

// `n` entries inside 10.0.0.0/22 (v4) or fd00::/118 (v6), lengths full-8 ..
// full, single ports and ranges in 1..40, /0 now and then.
std::vector<AllowEntry> random_entries(std::mt19937& rng, bool v6, size_t n) {
    auto below = [&](uint32_t k) { return std::uniform_int_distribution<uint32_t>(0, k - 1)(rng); };
    const int full = v6 ? 128 : 32;
    std::vector<AllowEntry> out;
    for (size_t i = 0; i < n; ++i) {
        AllowEntry e;
        e.cidr.v6 = v6;
        if (v6) e.cidr.addr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        else e.cidr.addr = {10, 0, 0, 0};
        uint32_t host = below(1024);
        e.cidr.addr[v6 ? 14 : 2] = uint8_t(host >> 8);
        e.cidr.addr[v6 ? 15 : 3] = uint8_t(host);
        // Lengths full-8 .. full: 9 of them, more than kMaxMaskedSets + 1,
        // none wide enough to cover the whole /22 the grid walks.
        int len = below(40) == 0 ? 0 : full - int(below(9));
        e.cidr.prefix = uint8_t(len);
        Bytes a(e.cidr.addr.begin(), e.cidr.addr.begin() + (v6 ? 16 : 4));
        a = masked(a, uint8_t(len));
        if (len == 0) a = Bytes(a.size(), 0);
        std::copy(a.begin(), a.end(), e.cidr.addr.begin());
        uint32_t kind = below(4);
        e.protocol = kind == 0 ? Protocol::any : kind == 1 ? Protocol::tcp : kind == 2 ? Protocol::udp : Protocol::sctp;
        if (len == 0 && e.protocol == Protocol::any) e.protocol = Protocol::udp;  // would allow the whole grid
        if (e.protocol != Protocol::any) {
            for (uint32_t k = 1 + below(3); k-- > 0;) {
                auto lo = uint16_t(1 + below(40));
                auto hi = below(2) ? lo : uint16_t(std::min<uint32_t>(40, lo + below(6)));
                e.ports.push_back({lo, hi});
            }
            e.ports = [&] {
                std::sort(e.ports.begin(), e.ports.end(), [](auto a, auto b) { return a.lo < b.lo; });
                std::vector<ef::config::PortRange> m;
                for (auto r : e.ports)
                    if (!m.empty() && r.lo <= m.back().hi + 1) m.back().hi = std::max(m.back().hi, r.hi);
                    else m.push_back(r);
                return m;
            }();
        }
        out.push_back(e);
    }
    return out;
}

}  // namespace

TEST_CASE("every layout matches exactly the packets the entries match (grid check over random allow lists)") {
    std::mt19937 rng(20240514);  // NOLINT(cert-msc32-c,cert-msc51-cpp): a fixed seed, reproducible
    size_t packets = 0, sets_seen = 0, hash_sets = 0, masked_sets = 0, interval_sets = 0, port_range_sets = 0;
    for (int round = 0; round < 8; ++round) {
        bool v6 = round % 2 == 1;
        ef::config::Profile p;
        p.name = "grid";
        p.allow = random_entries(rng, v6, 10 + size_t(round) * 6);
        Ruleset rs = compile(p, ef::config::Pod{"ns", "pod", "", "", {}});
        for (const auto& s : rs.sets) {
            ++sets_seen;
            if (!s.interval) ++hash_sets;
            if (s.name.find("_ports_") != std::string::npos) ++port_range_sets;
            if (s.name.find("_ranges") != std::string::npos) ++interval_sets;
            else if (s.name != "allow4" && s.name != "allow6" && s.name != "allow4_any" && s.name != "allow6_any")
                ++masked_sets;
            // The kernel refuses overlapping elements in an interval set.
            if (s.interval)
                for (size_t i = 0; i < s.elements.size(); ++i)
                    for (size_t j = i + 1; j < s.elements.size(); ++j) {
                        bool overlap = true;
                        for (size_t f = 0; f < s.elements[i].fields.size(); ++f) {
                            const auto &a = s.elements[i].fields[f], &b = s.elements[j].fields[f];
                            overlap = overlap && !(a.hi < b.lo || b.hi < a.lo);
                        }
                        CHECK_FALSE(overlap);
                    }
        }
        size_t mismatches = 0;
        std::string first;
        for (uint32_t host = 0; host < 1024 + 4; ++host) {
            Bytes addr = v6 ? Bytes{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} : Bytes{10, 0, 0, 0};
            uint32_t h = host < 1024 ? host : 0xff00 + host;  // a few outside the /22
            addr[v6 ? 14 : 2] = uint8_t(h >> 8);
            addr[v6 ? 15 : 3] = uint8_t(h);
            for (uint8_t proto : {6, 17, 132})
                for (uint16_t port = 0; port <= 42; ++port) {
                    Packet pk{addr, proto, port};
                    bool want = false;
                    for (const auto& e : p.allow) want = want || entry_allows(e, pk);
                    ++packets;
                    if (compiled_allows(rs, pk) != want && mismatches++ == 0)
                        first = "host " + std::to_string(h) + " proto " + std::to_string(proto) + " port " +
                                std::to_string(port) + (want ? " allowed by the entries" : " refused by the entries");
                }
        }
        CHECK_MESSAGE(mismatches == 0, "round " << round << ": " << mismatches << " packets differ, first: " << first);
    }
    // The random lists exercise every kind of set.
    CHECK(packets > 500000);
    CHECK(hash_sets > 0);
    CHECK(masked_sets > 0);
    CHECK(interval_sets > 0);
    CHECK(port_range_sets > 0);
    CHECK(sets_seen > hash_sets);
}
