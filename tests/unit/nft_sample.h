// Hand-built rulesets for the nft codec tests and ef_nft_roundtrip: every
// statement kind and every set shape the fence uses.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>

#include "fence/ruleset.h"

namespace ef::nft_sample {

using namespace ef::fence;

inline Bytes v4(const char* s) {
    Bytes b(4);
    inet_pton(AF_INET, s, b.data());
    return b;
}
inline Bytes v6(const char* s) {
    Bytes b(16);
    inet_pton(AF_INET6, s, b.data());
    return b;
}
inline Bytes be16(uint16_t v) { return {uint8_t(v >> 8), uint8_t(v)}; }
inline Bytes be32(uint32_t v) { return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }
inline Bytes u8(uint8_t v) { return {v}; }
inline FieldRange one(const Bytes& b) { return {b, b}; }
inline FieldRange range(const Bytes& lo, const Bytes& hi) { return {lo, hi}; }

inline Set uid_set(const std::string& name, std::vector<Element> elems) {
    return {name, {FieldType::uid}, true, std::move(elems)};
}

inline Rule rule(std::vector<Stmt> s) { return {std::move(s)}; }

// The ruleset of the reference sample (tests/tools/ef_nft_roundtrip prints it
// via nft for a manual check).
inline Ruleset sample() {
    Ruleset rs;
    rs.meta.plugin_version = "0.1.0";
    rs.meta.profile = "proxy-only";
    rs.meta.pod_namespace = "sandboxes";
    rs.meta.pod_name = "agent-7f9c";
    rs.meta.container_id = "0123456789abcdef";
    rs.meta.digest = "d41d8cd98f00b204e9800998ecf8427e";
    rs.meta.annotated_uid = "1337";
    rs.counters = {{"accepted"}, {"denied_tcp"}, {"denied_udp"}, {"denied_other"}, {"spoofed"}};
    Set uids = uid_set(
        "exempt_uids",
        {{{one(be32(0))}}, {{one(be32(1337))}}, {{range(be32(2000), be32(2010))}}, {{one(be32(4294967295u))}}});
    Set allow4{"allow4",
               {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
               true,
               {{{range(v4("10.0.0.0"), v4("10.255.255.255")), one(u8(6)), range(be16(8000), be16(8100))}},
                {{one(v4("10.96.0.10")), one(u8(17)), one(be16(53))}}}};
    Set allow6{"allow6",
               {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service},
               true,
               {{{range(v6("fd00::"), v6("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), one(u8(17)), one(be16(53))}},
                {{one(v6("fd00:10:96::a")), one(u8(6)), range(be16(53), be16(54))}}}};
    Set any4{"allow4_any",
             {FieldType::ipv4_addr},
             true,
             {{{range(v4("0.0.0.0"), v4("0.255.255.255"))}},
              {{one(v4("10.1.2.3"))}},
              {{range(v4("192.168.0.0"), v4("255.255.255.255"))}}}};
    Set any6{"allow6_any", {FieldType::ipv6_addr}, true, {{{range(v6("2001:db8::"), v6("2001:db8::ffff"))}}}};
    Set empty{"allow6_empty", {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service}, true, {}};
    // Hash sets (no interval, a size), as the compiler lays out exact entries.
    Set hash4{"hash4",
              {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
              false,
              {{{one(v4("10.0.0.1")), one(u8(6)), one(be16(443))}},
               {{one(v4("10.0.0.2")), one(u8(17)), one(be16(53))}}},
              16};
    Set hash6_64{"hash6_64",
                 {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service},
                 false,
                 {{{one(v6("fd00:1::")), one(u8(6)), one(be16(80))}}},
                 32};
    Set hash4_any_16{
        "hash4_any_16", {FieldType::ipv4_addr}, false, {{{one(v4("192.168.0.0"))}}, {{one(v4("10.5.0.0"))}}}, 16};
    Set hash6_any{"hash6_any", {FieldType::ipv6_addr}, false, {{{one(v6("2001:db8::1"))}}}, 1024};
    Set ports4{"ports4",
               {FieldType::ipv4_addr, FieldType::inet_proto},
               false,
               {{{one(v4("10.3.0.0")), one(u8(6))}}, {{one(v4("10.4.0.0")), one(u8(17))}}},
               16};
    for (Set* h : {&hash4, &hash6_64, &hash4_any_16, &hash6_any, &ports4}) sort_elements(*h);
    rs.sets = {uids, allow4, allow6, any4, any6, empty, hash4, hash6_64, hash4_any_16, hash6_any, ports4};

    Chain out{"output", BaseHook{Hook::output, 0, Policy::drop, ""}, {}};
    out.rules = {
        rule({OifnameEq{"lo"}, Verdict{VerdictKind::accept}}),
        rule({CtStateIn{0x6}, Verdict{VerdictKind::accept}}),
        rule({Icmpv6TypeRange{133, 136}, Verdict{VerdictKind::accept}}),
        rule({SkuidInSet{"exempt_uids"}, CounterRef{"accepted"}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoPortInSet{IpFamily::ipv4, "allow4"}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoPortInSet{IpFamily::ipv6, "allow6"}, Verdict{VerdictKind::accept}}),
        rule({DaddrInSet{IpFamily::ipv4, "allow4_any"}, Verdict{VerdictKind::accept}}),
        rule({DaddrInSet{IpFamily::ipv6, "allow6_any"}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoPortInSet{IpFamily::ipv4, "hash4"}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoPortInSet{IpFamily::ipv6, "hash6_64", 64}, Verdict{VerdictKind::accept}}),
        rule({DaddrInSet{IpFamily::ipv4, "hash4_any_16", 16}, Verdict{VerdictKind::accept}}),
        rule({DaddrInSet{IpFamily::ipv6, "hash6_any"}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoInSet{IpFamily::ipv4, "ports4", 16}, ThDportRange{8000, 8100}, Verdict{VerdictKind::accept}}),
        rule({ThDportRange{53, 53}, Verdict{VerdictKind::accept}}),
        rule({Limit{5, TimeUnit::second, 10}, Log{"egress-fence "}}),
        rule({L4ProtoEq{6}, CounterRef{"denied_tcp"}, Reject{RejectKind::tcp_reset}}),
        rule({L4ProtoEq{17}, CounterRef{"denied_udp"}, Reject{RejectKind::icmpx_port_unreachable}}),
        rule({CounterRef{"denied_other"}, Verdict{VerdictKind::drop}}),
    };
    Chain fwd{"forward", BaseHook{Hook::forward, 0, Policy::drop, ""}, {}};
    fwd.rules = {
        rule({CtStateIn{0x6}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoPortInSet{IpFamily::ipv4, "allow4"}, Verdict{VerdictKind::accept}}),
        rule({Limit{1, TimeUnit::minute, 3}, Log{"fwd "}}),
        rule({Limit{2, TimeUnit::hour, 1}, Verdict{VerdictKind::drop}}),
        rule({Limit{3, TimeUnit::day, 7}, Reject{RejectKind::icmpx_port_unreachable}}),
    };
    Chain aux{"aux", std::nullopt, {rule({Verdict{VerdictKind::accept}})}};
    // The statements of the conntrack invariant, the spoof checks, neighbour
    // discovery and MLD (issue 17/18), each in the forms the compiler uses.
    Bytes ff02 = v6("ff02::"), all_routers = v6("ff02::2"), fe80 = v6("fe80::"), unspecified = v6("::");
    out.rules.insert(out.rules.begin(),
                     {rule({OifnameNe{"lo"}, SkuidInSet{"exempt_uids"}, Verdict{VerdictKind::accept}}),
                      rule({SkuidAny{}, FibSaddrNotLocal{}, CounterRef{"spoofed"}, Verdict{VerdictKind::drop}}),
                      rule({CtDirectionEq{CtDir::reply}, CtMarkHas{0x40000000}, Verdict{VerdictKind::accept}}),
                      rule({Ip6ExthdrExists{43}, Goto{"aux"}}),
                      rule({CtStateIn{0x8}, ThDportRange{32768, 60999}, Verdict{VerdictKind::accept}}),
                      rule({CtDirectionEq{CtDir::original}, CtStateIn{0x6}, Verdict{VerdictKind::accept}}),
                      rule({SkuidAny{}, Goto{"aux"}}),
                      rule({Icmpv6TypeRange{133, 133}, Ip6HopLimitEq{255}, Ip6AddrPrefix{false, all_routers, 128},
                            Verdict{VerdictKind::accept}}),
                      rule({Icmpv6TypeRange{135, 136}, Ip6HopLimitEq{255}, Ip6AddrPrefix{false, fe80, 10},
                            Verdict{VerdictKind::accept}}),
                      rule({Icmpv6TypeRange{143, 143}, Ip6HopLimitEq{1}, Ip6AddrPrefix{true, unspecified, 128},
                            Ip6AddrPrefix{false, ff02, 16}, Verdict{VerdictKind::accept}}),
                      rule({OifnameEq{"eth0"}, Icmpv6TypeRange{135, 136}, Ip6HopLimitEq{255},
                            DaddrInSet{IpFamily::ipv6, "allow6_any"}, Verdict{VerdictKind::accept}})});
    fwd.rules.insert(fwd.rules.begin(),
                     rule({FibSaddrIifOif{false}, CounterRef{"spoofed"}, Verdict{VerdictKind::drop}}));
    Chain in{"inbound", BaseHook{Hook::prerouting, 0, Policy::accept, ""}, {}};
    in.rules = {rule({IifnameNe{"lo"}, CtStateIn{0x8}, FibSaddrIifOif{true}, CtMarkOr{0x40000000}}),
                rule({SaddrInSet{IpFamily::ipv4, "allow4_any"}, Verdict{VerdictKind::accept}}),
                rule({SaddrInSet{IpFamily::ipv6, "allow6_any"}, Verdict{VerdictKind::accept}})};
    rs.chains = {out, fwd, in, aux};
    return rs;
}

// sample() with the raw-frame parts: the inet chains' secmark stamp and the
// netdev egress table on `device`, so every statement kind is covered.
inline Ruleset sample_with_netdev(const std::string& device = "eth0") {
    Ruleset rs = sample();
    rs.chains[0].rules.insert(rs.chains[0].rules.begin(), rule({SecmarkSet{0x45460000}}));
    rs.chains[1].rules.insert(rs.chains[1].rules.begin(), rule({SecmarkSet{7}}));
    std::string chain = "egress_";  // appended: GCC 12's false -Wrestrict with "lit" + string
    chain += device;
    rs.netdev = NetdevTable{{Counter{"raw_dropped"}, Counter{"raw_other"}},
                            {Chain{chain,
                                   BaseHook{Hook::egress, 0, Policy::drop, device},
                                   {rule({SecmarkEq{0x45460000}, Verdict{VerdictKind::accept}}),
                                    rule({EtherTypeEq{0x0806}, Verdict{VerdictKind::accept}}),
                                    rule({EtherTypeEq{0x86dd}, CounterRef{"raw_other"}, Verdict{VerdictKind::drop}}),
                                    rule({CounterRef{"raw_dropped"}})}}}};
    return rs;
}

// A profile with `n` IPv4 allow entries (distinct /32s, tcp, one port each)
// and n/4 IPv6 ones: the "10,000 allow entries" performance case.
inline Ruleset big(size_t n) {
    Ruleset rs = sample();
    rs.sets[1].elements.clear();
    for (size_t i = 0; i < n; ++i) {
        uint32_t a = 0x0a000000u + static_cast<uint32_t>(i) * 4;
        rs.sets[1].elements.push_back({{one(be32(a)), one(u8(6)), range(be16(443), be16(443 + i % 3))}});
    }
    rs.sets[2].elements.clear();
    for (size_t i = 0; i < n / 4; ++i) {
        Bytes b = v6("fd00::");
        b[12] = uint8_t(i >> 24), b[13] = uint8_t(i >> 16), b[14] = uint8_t(i >> 8), b[15] = uint8_t(i);
        rs.sets[2].elements.push_back({{one(b), one(u8(17)), one(be16(53))}});
    }
    return rs;
}

}  // namespace ef::nft_sample
