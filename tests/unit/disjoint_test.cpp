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
