// The nft text form: the exact layout `nft list table` prints (nftables 1.0.6).
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <array>
#include <random>

#include "fence/ruleset.h"
#include "fence/text_out.h"

using namespace ef::fence;

namespace {
Bytes b(std::initializer_list<uint8_t> v) { return {v}; }
}  // namespace

TEST_CASE("a ruleset prints as nft lists it") {
    Ruleset rs;
    rs.counters = {Counter{"tcp_refused", 3, 180}};
    rs.sets = {
        Set{"exempt_uids", {FieldType::uid}, true, {Element{{{b({0, 0, 5, 57}), b({0, 0, 5, 57})}}}}},
        Set{"allow4",
            {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
            true,
            {Element{{{b({10, 0, 0, 0}), b({10, 255, 255, 255})}, {b({6}), b({6})}, {b({31, 64}), b({31, 164})}}},
             Element{{{b({10, 96, 0, 10}), b({10, 96, 0, 10})}, {b({17}), b({17})}, {b({0, 53}), b({0, 53})}}}}}};
    rs.chains = {Chain{"output",
                       BaseHook{Hook::output, 0, Policy::drop, ""},
                       {Rule{{OifnameEq{"lo"}, Verdict{VerdictKind::accept}}},
                        Rule{{L4ProtoEq{6}, CounterRef{"tcp_refused"}, Reject{RejectKind::tcp_reset}}}}}};
    CHECK(to_nft_text(rs) ==
          "table inet egress_fence {\n"
          "\tcounter tcp_refused {\n"
          "\t\tpackets 3 bytes 180\n"
          "\t}\n"
          "\n"
          "\tset exempt_uids {\n"
          "\t\ttype uid\n"
          "\t\tflags interval\n"
          "\t\telements = { 1337 }\n"
          "\t}\n"
          "\n"
          "\tset allow4 {\n"
          "\t\ttype ipv4_addr . inet_proto . inet_service\n"
          "\t\tflags interval\n"
          "\t\telements = { 10.0.0.0/8 . tcp . 8000-8100,\n"
          "\t\t\t     10.96.0.10 . udp . 53 }\n"
          "\t}\n"
          "\n"
          "\tchain output {\n"
          "\t\ttype filter hook output priority filter; policy drop;\n"
          "\t\toifname \"lo\" accept\n"
          "\t\tmeta l4proto tcp counter name \"tcp_refused\" reject with tcp reset\n"
          "\t}\n"
          "}\n");
}

TEST_CASE("a hash set prints its size and no flags; masked lookups print the mask") {
    Ruleset rs;
    rs.sets = {Set{"allow4_24",
                   {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
                   false,
                   {Element{{{b({10, 1, 0, 0}), b({10, 1, 0, 0})}, {b({6}), b({6})}, {b({1, 187}), b({1, 187})}}}},
                   16}};
    CHECK(to_nft_text(rs).find("\tset allow4_24 {\n"
                               "\t\ttype ipv4_addr . inet_proto . inet_service\n"
                               "\t\tsize 16\n"
                               "\t\telements = { 10.1.0.0 . tcp . 443 }\n"
                               "\t}\n") != std::string::npos);
    // What nft 1.0.6 lists for these rules (and parses back).
    CHECK(to_nft_text(Stmt{DaddrProtoPortInSet{IpFamily::ipv4, "allow4_24", 24}}) ==
          "ip daddr & 255.255.255.0 . meta l4proto . th dport @allow4_24");
    CHECK(to_nft_text(Stmt{DaddrProtoPortInSet{IpFamily::ipv6, "allow6_64", 64}}) ==
          "ip6 daddr & ffff:ffff:ffff:ffff:: . meta l4proto . th dport @allow6_64");
    CHECK(to_nft_text(Stmt{DaddrInSet{IpFamily::ipv4, "allow4_any_16", 16}}) ==
          "ip daddr & 255.255.0.0 == @allow4_any_16");
    CHECK(to_nft_text(Stmt{DaddrInSet{IpFamily::ipv6, "allow6_any_1", 1}}) == "ip6 daddr & 8000:: == @allow6_any_1");
    CHECK(to_nft_text(Stmt{DaddrInSet{IpFamily::ipv4, "allow4_any"}}) == "ip daddr @allow4_any");
}

TEST_CASE("element lists wrap as nft wraps them") {
    Set uids{"u", {FieldType::uid}, true, {}};
    for (uint8_t i = 1; i <= 6; ++i) uids.elements.push_back(Element{{{b({0, 0, 0, i}), b({0, 0, 0, i})}}});
    Set v4{"a", {FieldType::ipv4_addr}, true, {}};
    for (uint8_t i = 1; i <= 3; ++i) v4.elements.push_back(Element{{{b({10, 0, 0, i}), b({10, 0, 0, i})}}});
    Ruleset rs;
    rs.sets = {uids, v4};
    std::string text = to_nft_text(rs);
    CHECK(text.find("elements = { 1, 2, 3, 4, 5,\n\t\t\t     6 }") != std::string::npos);
    CHECK(text.find("elements = { 10.0.0.1, 10.0.0.2,\n\t\t\t     10.0.0.3 }") != std::string::npos);
}

TEST_CASE("address ranges print as CIDR when they are one block, else lo-hi") {
    Set s{"a6", {FieldType::ipv6_addr}, true, {}};
    Bytes lo(16, 0), hi(16, 0);
    lo[0] = 0xfd;
    hi[0] = 0xfd;
    for (int i = 8; i < 16; ++i) hi[i] = 0xff;
    CHECK(to_nft_text(s, Element{{{lo, hi}}}) == "fd00::/64");
    hi[15] = 0xfe;
    CHECK(to_nft_text(s, Element{{{lo, hi}}}) == "fd00::-fd00::ffff:ffff:ffff:fffe");
}

TEST_CASE("statements print in nft syntax") {
    CHECK(to_nft_text(Stmt{CtStateIn{6}}) == "ct state established,related");
    CHECK(to_nft_text(Stmt{Icmpv6TypeRange{133, 136}}) == "icmpv6 type 133-136");
    CHECK(to_nft_text(Stmt{SkuidInSet{"exempt_uids"}}) == "meta skuid @exempt_uids");
    CHECK(to_nft_text(Stmt{DaddrInSet{IpFamily::ipv6, "allow6_any"}}) == "ip6 daddr @allow6_any");
    CHECK(to_nft_text(Stmt{Limit{5, TimeUnit::minute, 10}}) == "limit rate 5/minute burst 10 packets");
    CHECK(to_nft_text(Stmt{Log{"ef ns/p: "}}) == "log prefix \"ef ns/p: \" flags skuid");
    CHECK(to_nft_text(Stmt{Reject{RejectKind::icmpx_port_unreachable}}) == "reject");
    CHECK(to_nft_text(Stmt{Verdict{VerdictKind::drop}}) == "drop");
}

TEST_CASE("the raw-frame statements print as nft lists them") {
    CHECK(to_nft_text(Stmt{SecmarkSet{1162215424}}) == "meta secmark set 1162215424");
    CHECK(to_nft_text(Stmt{SecmarkEq{1162215424}}) == "meta secmark 1162215424");
    CHECK(to_nft_text(Stmt{EtherTypeEq{0x0806}}) == "ether type arp");
    CHECK(to_nft_text(Stmt{EtherTypeEq{0x86dd}}) == "ether type ip6");
    CHECK(to_nft_text(Stmt{EtherTypeEq{0x88cc}}) == "ether type 0x88cc");
}

TEST_CASE("the netdev table follows the inet table, as nft list ruleset prints them") {
    Ruleset rs;
    rs.chains = {Chain{"output", BaseHook{Hook::output, 0, Policy::drop, ""}, {Rule{{SecmarkSet{1162215424}}}}}};
    rs.netdev = NetdevTable{{Counter{"raw_dropped", 2, 120}},
                            {Chain{"egress",
                                   BaseHook{Hook::egress, 0, Policy::drop, "eth0"},
                                   {Rule{{SecmarkEq{1162215424}, Verdict{VerdictKind::accept}}},
                                    Rule{{EtherTypeEq{0x0806}, Verdict{VerdictKind::accept}}},
                                    Rule{{CounterRef{"raw_dropped"}}}}}}};
    CHECK(to_nft_text(rs) ==
          "table inet egress_fence {\n"
          "\tchain output {\n"
          "\t\ttype filter hook output priority filter; policy drop;\n"
          "\t\tmeta secmark set 1162215424\n"
          "\t}\n"
          "}\n"
          "table netdev egress_fence {\n"
          "\tcounter raw_dropped {\n"
          "\t\tpackets 2 bytes 120\n"
          "\t}\n"
          "\n"
          "\tchain egress {\n"
          "\t\ttype filter hook egress device \"eth0\" priority filter; policy drop;\n"
          "\t\tmeta secmark 1162215424 accept\n"
          "\t\tether type arp accept\n"
          "\t\tcounter name \"raw_dropped\"\n"
          "\t}\n"
          "}\n");
}

TEST_CASE("addresses print exactly as inet_ntop prints them") {
    auto same = [](const ef::fence::Bytes& b) {
        char want[INET6_ADDRSTRLEN] = {};
        REQUIRE(inet_ntop(b.size() == 4 ? AF_INET : AF_INET6, b.data(), want, sizeof want) != nullptr);
        std::array<char, ef::fence::kAddressTextMax> got{};
        const size_t n = ef::fence::address_text(b, got.data());
        CAPTURE(want);
        CHECK(std::string(got.data(), n) == want);
    };
    std::mt19937 rng(19);  // NOLINT(cert-msc32-c,cert-msc51-cpp): fixed, the same cases every run
    // IPv6: every pattern of zero and non-zero groups, each non-zero group a
    // random value of 1 to 4 hex digits, 0xffff in group 5 half the time
    // (IPv4-mapped forms), and the IPv4-compatible ones.
    for (unsigned pattern = 0; pattern < 256; ++pattern)
        for (int round = 0; round < 8; ++round) {
            ef::fence::Bytes b(16);
            for (size_t g = 0; g < 8; ++g) {
                if (!(pattern & (1u << g))) continue;
                unsigned w = rng() & (0xffffu >> (4 * (rng() % 4)));
                if (g == 5 && round % 2) w = 0xffff;
                if (w == 0) w = 1;
                b[2 * g] = static_cast<uint8_t>(w >> 8);
                b[2 * g + 1] = static_cast<uint8_t>(w);
            }
            same(b);
        }
    // IPv4: every octet value in every place.
    for (unsigned v = 0; v < 256; ++v)
        for (size_t at = 0; at < 4; ++at) {
            ef::fence::Bytes b{10, 20, 30, 40};
            b[at] = static_cast<uint8_t>(v);
            same(b);
        }
}
