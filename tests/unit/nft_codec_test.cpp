// lib/nft encoding and decoding, without a kernel: encode_batch must send what
// nft 1.0.6 sends, and decode_messages(encode_batch(rs)) must give rs back.
#include <doctest/doctest.h>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "cni/error.h"
#include "fence/diff.h"
#include "nft/nft.h"
#include "nft_golden.h"
#include "nft_sample.h"

using namespace ef;
using namespace ef::fence;
using namespace ef::nft_sample;

namespace {

Ruleset roundtrip(const Ruleset& rs) {
    auto bytes = nft::encode_batch(rs, 100);
    return nft::decode_messages(bytes.data(), bytes.size());
}

// Offsets at which a message of the batch starts (and its end).
std::vector<size_t> boundaries(const std::vector<uint8_t>& b) {
    std::vector<size_t> out{0};
    size_t off = 0;
    while (off < b.size()) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(b.data() + off);
        off += NLMSG_ALIGN(nlh->nlmsg_len);
        out.push_back(off);
    }
    return out;
}

// type -> hex of nfgenmsg + attributes, of every message but BEGIN/END/tables.
std::multiset<std::pair<uint16_t, std::string>> payloads(const std::vector<uint8_t>& b) {
    std::multiset<std::pair<uint16_t, std::string>> out;
    static const char* digits = "0123456789abcdef";
    for (size_t off = 0; off < b.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(b.data() + off);
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_NFTABLES && type != NFT_MSG_NEWTABLE &&
            type != NFT_MSG_DELTABLE) {
            std::string hex;
            for (size_t i = NLMSG_HDRLEN; i < nlh->nlmsg_len; ++i) {
                hex.push_back(digits[b[off + i] >> 4]);
                hex.push_back(digits[b[off + i] & 0xf]);
            }
            out.insert({type, hex});
        }
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    return out;
}

// The ruleset of nft_golden.h's comment.
Ruleset golden_ruleset() {
    Ruleset rs;
    rs.counters = {{"accepted"}, {"denied"}};
    rs.sets = {
        uid_set("exempt_uids",
                {{{one(be32(0))}}, {{one(be32(1337))}}, {{range(be32(2000), be32(2010))}}, {{one(be32(4294967295u))}}}),
        {"allow4",
         {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
         true,
         {{{range(v4("10.0.0.0"), v4("10.255.255.255")), one(u8(6)), range(be16(8000), be16(8100))}},
          {{one(v4("10.96.0.10")), one(u8(17)), one(be16(53))}}}},
        {"allow6",
         {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service},
         true,
         {{{one(v6("fd00:10:96::a")), one(u8(6)), one(be16(53))}}}},
        {"allow4_any",
         {FieldType::ipv4_addr},
         true,
         {{{range(v4("0.0.0.0"), v4("0.255.255.255"))}}, {{range(v4("192.168.0.0"), v4("255.255.255.255"))}}}},
    };
    Chain out{"output", BaseHook{Hook::output, 0, Policy::drop, ""}, {}};
    out.rules = {
        rule({OifnameEq{"lo"}, Verdict{VerdictKind::accept}}),
        rule({CtStateIn{0x6}, Verdict{VerdictKind::accept}}),
        rule({Icmpv6TypeRange{133, 136}, Verdict{VerdictKind::accept}}),
        rule({SkuidInSet{"exempt_uids"}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoPortInSet{IpFamily::ipv4, "allow4"}, Verdict{VerdictKind::accept}}),
        rule({DaddrProtoPortInSet{IpFamily::ipv6, "allow6"}, Verdict{VerdictKind::accept}}),
        rule({DaddrInSet{IpFamily::ipv4, "allow4_any"}, Verdict{VerdictKind::accept}}),
        rule({Limit{5, TimeUnit::second, 10}, Log{"egress-fence "}}),
        rule({L4ProtoEq{6}, CounterRef{"denied"}, Reject{RejectKind::tcp_reset}}),
        rule({Reject{RejectKind::icmpx_port_unreachable}}),
    };
    Chain fwd{"forward",
              BaseHook{Hook::forward, 0, Policy::drop, ""},
              {rule({CtStateIn{0x6}, Verdict{VerdictKind::accept}})}};
    rs.chains = {out, fwd};
    return rs;
}

// --- random rulesets -----------------------------------------------------------------
struct Gen {
    std::mt19937 rng;
    explicit Gen(uint32_t seed) : rng(seed) {}
    uint32_t below(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng); }
    bool coin(uint32_t one_in = 2) { return below(one_in) == 0; }

    Bytes value(FieldType t) {
        size_t n = t == FieldType::ipv4_addr      ? 4
                   : t == FieldType::ipv6_addr    ? 16
                   : t == FieldType::inet_proto   ? 1
                   : t == FieldType::inet_service ? 2
                                                  : 4;
        Bytes b(n);
        uint32_t edge = below(8);
        for (auto& c : b) c = edge == 0 ? 0 : edge == 1 ? 0xff : uint8_t(below(256));
        return b;
    }
    FieldRange field(FieldType t) {
        Bytes a = value(t), b = coin() ? a : value(t);
        if (b < a) std::swap(a, b);
        return {a, b};
    }
    // Disjoint sorted ranges of one field (rbtree), possibly adjacent.
    std::vector<Element> intervals(FieldType t, size_t n) {
        std::vector<Bytes> points;
        for (size_t i = 0; i < 2 * n; ++i) points.push_back(value(t));
        std::sort(points.begin(), points.end());
        points.erase(std::unique(points.begin(), points.end()), points.end());
        std::vector<Element> out;
        for (size_t i = 0; i + 1 < points.size(); i += 2) {
            if (coin(3)) {
                out.push_back({{one(points[i])}});
                out.push_back({{one(points[i + 1])}});
            } else {
                out.push_back({{range(points[i], points[i + 1])}});
            }
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        // Drop overlaps a single value might create with a range before it.
        std::vector<Element> disjoint;
        for (auto& e : out)
            if (disjoint.empty() || disjoint.back().fields[0].hi < e.fields[0].lo) disjoint.push_back(e);
        return disjoint;
    }
    Set set(const std::string& name) {
        static const std::vector<std::vector<FieldType>> keys = {
            {FieldType::uid},
            {FieldType::ipv4_addr},
            {FieldType::ipv6_addr},
            {FieldType::inet_service},
            {FieldType::inet_proto},
            {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
            {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service},
        };
        Set s{name, keys[below(keys.size())], !coin(6), {}};
        size_t n = below(40);
        if (s.key.size() == 1 && s.interval) {
            s.elements = intervals(s.key[0], n);
            return s;
        }
        for (size_t i = 0; i < n; ++i) {
            Element e;
            for (auto t : s.key) e.fields.push_back(s.interval ? field(t) : one(value(t)));
            s.elements.push_back(e);
        }
        if (!s.interval && coin()) s.size = below(1u << 20) + 1;
        sort_elements(s);
        return s;
    }
    // 0 (the whole address) or a prefix length shorter than the address.
    uint8_t mask_len(IpFamily f) { return coin() ? 0 : uint8_t(1 + below(f == IpFamily::ipv4 ? 31 : 127)); }
    std::string name() {
        std::string s = "n";
        for (uint32_t i = below(20); i-- > 0;) s.push_back("abcdefghijklmnopqrstuvwxyz_0123456789"[below(37)]);
        return s;
    }
    Stmt stmt() {
        auto fam = coin() ? IpFamily::ipv4 : IpFamily::ipv6;
        switch (below(14)) {
            case 0: return OifnameEq{name().substr(0, 15)};
            case 1: return L4ProtoEq{uint8_t(below(256))};
            case 2: return CtStateIn{below(16)};
            case 3: return Icmpv6TypeRange{uint8_t(below(256)), uint8_t(below(256))};
            case 4: return SkuidInSet{name()};
            case 5: return DaddrInSet{fam, name(), mask_len(fam)};
            case 6: return DaddrProtoPortInSet{fam, name(), mask_len(fam)};
            case 7: return CounterRef{name()};
            case 8: return Limit{below(100000), TimeUnit(below(4)), below(1000)};
            case 9: return Log{name()};
            case 10: return Verdict{coin() ? VerdictKind::accept : VerdictKind::drop};
            case 11: return DaddrProtoInSet{fam, name(), mask_len(fam)};
            case 12: {
                auto lo = uint16_t(below(65536));
                return ThDportRange{lo, coin() ? lo : uint16_t(below(65536))};
            }
            default: return Reject{coin() ? RejectKind::tcp_reset : RejectKind::icmpx_port_unreachable};
        }
    }
    Ruleset ruleset() {
        Ruleset rs;
        rs.meta = {name(),
                   name(),
                   name(),
                   std::string(below(300), 'p'),
                   std::string(below(100), 'c'),
                   name(),
                   std::to_string(below(100000))};
        for (uint32_t i = below(5); i-- > 0;) rs.counters.push_back({"c" + std::to_string(i) + name()});
        for (uint32_t i = below(6); i-- > 0;) rs.sets.push_back(set("s" + std::to_string(i)));
        for (uint32_t c = below(4); c-- > 0;) {
            Chain ch{"ch" + std::to_string(c), std::nullopt, {}};
            if (!coin(3))
                ch.base = BaseHook{coin() ? Hook::output : Hook::forward, int32_t(below(2000)) - 1000,
                                   coin() ? Policy::accept : Policy::drop, ""};
            for (uint32_t r = below(8); r-- > 0;) {
                Rule rule;
                for (uint32_t k = below(5); k-- > 0;) rule.stmts.push_back(stmt());
                ch.rules.push_back(rule);
            }
            rs.chains.push_back(ch);
        }
        return rs;
    }
};

// A NEWRULE message for chain `chain` built directly with libnftnl.
std::vector<uint8_t> raw_rule(const char* chain, void (*fill)(nftnl_rule*)) {
    std::vector<uint8_t> buf(4096);
    nftnl_rule* r = nftnl_rule_alloc();
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, kTableName);
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
    fill(r);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_NEWRULE, 1 /* inet */, 0, 1);
    nftnl_rule_nlmsg_build_payload(nlh, r);
    nftnl_rule_free(r);
    buf.resize(NLMSG_ALIGN(nlh->nlmsg_len));
    return buf;
}

}  // namespace

TEST_CASE("the sample ruleset covers every statement kind and survives encode/decode") {
    Ruleset rs = sample_with_netdev();
    std::set<size_t> kinds;
    std::vector<Chain> chains = rs.chains;
    chains.insert(chains.end(), rs.netdev->chains.begin(), rs.netdev->chains.end());
    for (const auto& c : chains)
        for (const auto& r : c.rules)
            for (const auto& s : r.stmts) kinds.insert(s.index());
    CHECK(kinds.size() == std::variant_size_v<Stmt> - 1);  // all but Unrecognized
    CHECK(roundtrip(rs) == rs);
}

TEST_CASE("encode_batch sends byte for byte what nft 1.0.6 sends") {
    auto ours = payloads(nft::encode_batch(golden_ruleset(), 1));
    std::multiset<std::pair<uint16_t, std::string>> nft;
    for (auto [type, hex] : nft_golden::kMessages) nft.insert({type, hex});
    std::vector<std::pair<uint16_t, std::string>> missing;
    std::set_difference(nft.begin(), nft.end(), ours.begin(), ours.end(), std::back_inserter(missing));
    for (auto& [type, hex] : missing) MESSAGE("not sent by encode_batch: type " << type << ": " << hex);
    CHECK(missing.empty());
    if (!missing.empty())
        for (const auto& [type, hex] : ours) MESSAGE("encode_batch sent type " << type << ": " << hex);
    CHECK(ours.size() == nft.size());
}

// The ruleset of nft_golden.h's kLayoutMessages.
Ruleset layout_ruleset() {
    const std::vector<FieldType> v4key = {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service};
    const std::vector<FieldType> v6key = {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service};
    Ruleset rs;
    rs.sets = {
        Set{"allow4",
            v4key,
            false,
            {{{one(v4("10.0.0.2")), one(u8(17)), one(be16(53))}}, {{one(v4("10.0.0.1")), one(u8(6)), one(be16(443))}}},
            16},
        Set{"allow4_24", v4key, false, {{{one(v4("10.1.0.0")), one(u8(6)), one(be16(443))}}}, 16},
        Set{"allow6_64", v6key, false, {{{one(v6("fd00:1::")), one(u8(17)), one(be16(53))}}}, 16},
        Set{"allow4_any", {FieldType::ipv4_addr}, false, {{{one(v4("10.0.0.3"))}}}, 16},
        Set{"allow6_any_48", {FieldType::ipv6_addr}, false, {{{one(v6("fd00:2::"))}}}, 32},
        Set{"allow4_24_ports_8000_8100",
            {FieldType::ipv4_addr, FieldType::inet_proto},
            false,
            {{{one(v4("10.2.0.0")), one(u8(17))}}},
            16},
    };
    auto accept = [](Stmt m) { return rule({std::move(m), Verdict{VerdictKind::accept}}); };
    rs.chains = {Chain{"output",
                       BaseHook{Hook::output, 0, Policy::drop, ""},
                       {accept(DaddrProtoPortInSet{IpFamily::ipv4, "allow4"}),
                        accept(DaddrProtoPortInSet{IpFamily::ipv4, "allow4_24", 24}),
                        accept(DaddrProtoPortInSet{IpFamily::ipv6, "allow6_64", 64}),
                        accept(DaddrInSet{IpFamily::ipv4, "allow4_any"}),
                        accept(DaddrInSet{IpFamily::ipv6, "allow6_any_48", 48}),
                        rule({DaddrProtoInSet{IpFamily::ipv4, "allow4_24_ports_8000_8100", 24},
                              ThDportRange{8000, 8100}, Verdict{VerdictKind::accept}})}}};
    return rs;
}

TEST_CASE("hash sets and masked lookups: encode_batch sends byte for byte what nft 1.0.6 sends") {
    Ruleset rs = layout_ruleset();
    auto ours = payloads(nft::encode_batch(rs, 1));
    std::multiset<std::pair<uint16_t, std::string>> nft;
    for (auto [type, hex] : nft_golden::kLayoutMessages) nft.insert({type, hex});
    CHECK(ours == nft);
    if (ours != nft)
        for (const auto& [type, hex] : ours) MESSAGE("encode_batch sent type " << type << ": " << hex);
    CHECK(roundtrip(rs) == rs);
    // The listing order nft showed for these elements is the canonical one.
    Set s = rs.sets[0];
    std::reverse(s.elements.begin(), s.elements.end());
    sort_elements(s);
    CHECK(s == rs.sets[0]);
}

// The messages of type `type` in a batch, back to back.
std::vector<uint8_t> messages_of_type(const std::vector<uint8_t>& b, uint16_t type) {
    std::vector<uint8_t> out;
    for (size_t off = 0; off < b.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(b.data() + off);
        size_t len = NLMSG_ALIGN(nlh->nlmsg_len);
        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_NFTABLES && NFNL_MSG_TYPE(nlh->nlmsg_type) == type)
            out.insert(out.end(), b.begin() + long(off), b.begin() + long(off + len));
        off += len;
    }
    return out;
}

TEST_CASE("a lookup decodes only in the form that fits its set: protocol converted for interval sets only") {
    // The rules as encoded for hash sets, after sets of the same names that
    // are interval sets: `ip daddr . meta l4proto . th dport` without nft's
    // conversion does not fit them.
    Ruleset interval = layout_ruleset();
    for (auto& set : interval.sets) {
        set.interval = true;
        set.size = 0;
    }
    interval.chains[0].rules.clear();
    auto bytes = nft::encode_batch(interval, 1);
    auto rules = messages_of_type(nft::encode_batch(layout_ruleset(), 1), NFT_MSG_NEWRULE);
    bytes.insert(bytes.end(), rules.begin(), rules.end());
    Ruleset got = nft::decode_messages(bytes.data(), bytes.size());
    REQUIRE(got.chains.size() == 1);
    REQUIRE(got.chains[0].rules.size() == 6);
    for (size_t i : {0, 1, 2})
        CHECK_MESSAGE(std::holds_alternative<Unrecognized>(got.chains[0].rules[i].stmts[0]), "rule " << i + 1);
    // Address-only lookups are the same for both kinds.
    CHECK(got.chains[0].rules[3].stmts[0] == Stmt{DaddrInSet{IpFamily::ipv4, "allow4_any"}});
    CHECK(got.chains[0].rules[4].stmts[0] == Stmt{DaddrInSet{IpFamily::ipv6, "allow6_any_48", 48}});
    CHECK(std::holds_alternative<Unrecognized>(got.chains[0].rules[5].stmts[0]));
}

TEST_CASE("an address mask that is not a prefix of it decodes as unrecognized") {
    for (auto mask : {std::vector<uint8_t>{0xff, 0x00, 0xff, 0x00}, std::vector<uint8_t>{0xff, 0xff, 0xff, 0xff},
                      std::vector<uint8_t>{0x00, 0x00, 0x00, 0x00}, std::vector<uint8_t>{0x7f, 0xff, 0xff, 0x00}}) {
        Ruleset rs = layout_ruleset();
        rs.sets = {rs.sets[1]};
        rs.chains[0].rules = {rule({DaddrProtoPortInSet{IpFamily::ipv4, "allow4_24", 24}})};
        auto bytes = nft::encode_batch(rs, 1);
        const uint8_t want[] = {0xff, 0xff, 0xff, 0x00};  // 255.255.255.0 in the bitwise expression
        auto at = std::search(bytes.begin(), bytes.end(), std::begin(want), std::end(want));
        REQUIRE(at != bytes.end());
        std::copy(mask.begin(), mask.end(), at);
        Ruleset got = nft::decode_messages(bytes.data(), bytes.size());
        CHECK(std::holds_alternative<Unrecognized>(got.chains[0].rules[0].stmts[0]));
    }
}

TEST_CASE("the raw-frame parts: encode_batch sends byte for byte what nft 1.0.6 sends") {
    Ruleset rs;
    rs.chains = {Chain{"output", BaseHook{Hook::output, 0, Policy::drop, ""}, {rule({SecmarkSet{1162215424}})}}};
    rs.netdev = NetdevTable{
        {Counter{"raw_dropped"}},
        {Chain{"egress",
               BaseHook{Hook::egress, 0, Policy::drop, "eth0"},
               {rule({EtherTypeEq{0x0806}, Verdict{VerdictKind::accept}}), rule({CounterRef{"raw_dropped"}})}}}};
    auto ours = payloads(nft::encode_batch(rs, 1));
    std::multiset<std::pair<uint16_t, std::string>> nft;
    for (auto [type, hex] : nft_golden::kRawMessages) nft.insert({type, hex});
    CHECK(ours == nft);
    if (ours != nft)
        for (const auto& [type, hex] : ours) MESSAGE("encode_batch sent type " << type << ": " << hex);
    CHECK(roundtrip(rs) == rs);
}

TEST_CASE("both tables are replaced in one batch: inet first, then netdev, each added, deleted, added") {
    auto b = nft::encode_batch(sample_with_netdev(), 1);
    std::vector<std::pair<uint8_t, uint16_t>> tables;  // family, message type
    for (size_t off = 0; off < b.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(b.data() + off);
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_NFTABLES &&
            (type == NFT_MSG_NEWTABLE || type == NFT_MSG_DELTABLE))
            tables.emplace_back(static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh))->nfgen_family, type);
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    using P = std::pair<uint8_t, uint16_t>;
    CHECK(tables == std::vector<P>{{1, NFT_MSG_NEWTABLE},
                                   {1, NFT_MSG_DELTABLE},
                                   {1, NFT_MSG_NEWTABLE},
                                   {5, NFT_MSG_NEWTABLE},
                                   {5, NFT_MSG_DELTABLE},
                                   {5, NFT_MSG_NEWTABLE}});
    const auto* first = reinterpret_cast<const nlmsghdr*>(b.data());
    CHECK(first->nlmsg_type == NFNL_MSG_BATCH_BEGIN);
}

TEST_CASE("the netdev table decodes back: device, counters with values, chain, tampering visible") {
    Ruleset rs = sample_with_netdev("net1");
    CHECK(roundtrip(rs) == rs);
    // Without the netdev table nothing about it appears.
    Ruleset plain = sample();
    CHECK(!roundtrip(plain).netdev);
    // A longer interface name than the kernel allows is refused, not cut.
    CHECK_THROWS_WITH_AS(nft::encode_batch(sample_with_netdev("a-name-longer-than-ifnamsiz"), 1),
                         "cannot encode the fence: interface name too long: a-name-longer-than-ifnamsiz", cni::Error);
}

TEST_CASE("a chain in the netdev table that the fence did not make shows in the diff") {
    Ruleset rs = sample_with_netdev();
    auto bytes = nft::encode_batch(rs, 1);
    // The same table with one more (regular) chain, as a dump would return it.
    Ruleset extra;
    extra.netdev = NetdevTable{{}, {Chain{"sneaky", std::nullopt, {rule({Verdict{VerdictKind::accept}})}}}};
    auto more = nft::encode_batch(extra, 1000);
    // Keep only the NEWCHAIN and NEWRULE messages of `more` and append them.
    for (size_t off = 0; off < more.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(more.data() + off);
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_NFTABLES &&
            (type == NFT_MSG_NEWCHAIN || type == NFT_MSG_NEWRULE))
            bytes.insert(bytes.end(), more.data() + off, more.data() + off + NLMSG_ALIGN(nlh->nlmsg_len));
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    Ruleset got = nft::decode_messages(bytes.data(), bytes.size());
    REQUIRE(got.netdev);
    REQUIRE(got.netdev->chains.size() == rs.netdev->chains.size() + 1);
    auto d = fence::diff(rs, got);
    REQUIRE(d.size() == 1);
    CHECK(d[0] == "table netdev egress_fence: chain sneaky: unexpected (not in the config's fence)");
}

TEST_CASE("batch layout: begin, add+delete+add table, body, end; consecutive sequence numbers") {
    auto b = nft::encode_batch(sample(), 7);
    const auto* first = reinterpret_cast<const nlmsghdr*>(b.data());
    CHECK(first->nlmsg_type == NFNL_MSG_BATCH_BEGIN);
    std::vector<uint16_t> types;
    uint32_t seq = 7;
    for (size_t off = 0; off < b.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(b.data() + off);
        CHECK(nlh->nlmsg_seq == seq++);
        types.push_back(nlh->nlmsg_type);
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    REQUIRE(types.size() > 5);
    CHECK(NFNL_MSG_TYPE(types[1]) == NFT_MSG_NEWTABLE);
    CHECK(NFNL_MSG_TYPE(types[2]) == NFT_MSG_DELTABLE);
    CHECK(NFNL_MSG_TYPE(types[3]) == NFT_MSG_NEWTABLE);
    CHECK(types.back() == NFNL_MSG_BATCH_END);
}

TEST_CASE("set shapes: ranges to the max, from zero, adjacent, single values, empty, hash") {
    Ruleset rs;
    rs.sets = {
        {"v4",
         {FieldType::ipv4_addr},
         true,
         {{{range(v4("0.0.0.0"), v4("0.0.0.0"))}},
          {{range(v4("0.0.0.1"), v4("9.255.255.255"))}},
          {{one(v4("10.0.0.1"))}},
          {{range(v4("240.0.0.0"), v4("255.255.255.255"))}}}},
        {"v6",
         {FieldType::ipv6_addr},
         true,
         {{{range(v6("::"), v6("::ffff"))}}, {{range(v6("fe80::"), v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))}}}},
        {"uids",
         {FieldType::uid},
         true,
         {{{one(be32(0))}}, {{one(be32(1))}}, {{one(be32(65534))}}, {{one(be32(4294967295u))}}}},
        {"only_max", {FieldType::uid}, true, {{{one(be32(4294967295u))}}}},
        {"ports", {FieldType::inet_service}, true, {{{range(be16(1), be16(1023))}}, {{one(be16(65535))}}}},
        {"protos", {FieldType::inet_proto}, true, {{{one(u8(6))}}, {{one(u8(17))}}}},
        {"c4",
         {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
         true,
         {{{range(v4("0.0.0.0"), v4("255.255.255.255")), range(u8(0), u8(255)), range(be16(0), be16(65535))}}}},
        {"c6",
         {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service},
         true,
         {{{range(v6("2001:db8::"), v6("2001:db8::ff")), one(u8(132)), range(be16(1), be16(2))}}}},
        {"empty4", {FieldType::ipv4_addr}, true, {}},
        {"empty_concat", {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service}, true, {}},
        {"hash",
         {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
         false,
         {{{one(v4("1.2.3.4")), one(u8(6)), one(be16(80))}}}},
    };
    CHECK(roundtrip(rs) == rs);
}

TEST_CASE("a big allow list spans several NEWSETELEM messages and decodes back") {
    Ruleset rs = big(100000);
    auto bytes = nft::encode_batch(rs, 1);
    size_t elem_msgs = 0;
    for (size_t off = 0; off < bytes.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(bytes.data() + off);
        if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWSETELEM) {
            ++elem_msgs;
            CHECK(nlh->nlmsg_len < 70000);
        }
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    CHECK(elem_msgs > 10);
    CHECK(nft::decode_messages(bytes.data(), bytes.size()) == rs);
}

TEST_CASE("metadata: short values round-trip exactly; long ones are cut to 256 bytes, pod name first") {
    Ruleset rs = sample();
    CHECK(roundtrip(rs).meta == rs.meta);
    CHECK(nft::fit_metadata(rs.meta) == rs.meta);

    rs.meta.pod_name = std::string(253, 'p');
    Metadata fit = nft::fit_metadata(rs.meta);
    CHECK(fit.pod_name.size() < 253);
    CHECK(fit.pod_name.back() == '~');
    CHECK(fit.container_id == rs.meta.container_id);
    CHECK(roundtrip(rs).meta == fit);

    rs.meta.container_id = std::string(64, 'c');
    rs.meta.profile = std::string(200, 'r');
    fit = nft::fit_metadata(rs.meta);
    CHECK(fit.pod_name == "~");
    CHECK(fit.container_id.back() == '~');
    CHECK(roundtrip(rs).meta == fit);
    size_t total = 0;
    for (auto* s : {&fit.plugin_version, &fit.profile, &fit.pod_namespace, &fit.pod_name, &fit.container_id,
                    &fit.digest, &fit.annotated_uid})
        total += 2 + s->size();
    CHECK(total <= 256);
}

TEST_CASE("property: random rulesets survive encode/decode (seeded)") {
    for (uint32_t seed = 1; seed <= 300; ++seed) {
        Gen g(seed);
        Ruleset rs = g.ruleset();
        Ruleset want = rs;
        want.meta = nft::fit_metadata(rs.meta);
        INFO("seed " << seed);
        Ruleset got = roundtrip(rs);
        CHECK(got == want);
        if (!(got == want)) break;
    }
}

TEST_CASE("truncated encodings are refused with cni::Error") {
    auto b = nft::encode_batch(sample(), 1);
    auto bounds = boundaries(b);
    for (size_t len = 1; len < b.size(); ++len) {
        if (std::binary_search(bounds.begin(), bounds.end(), len)) continue;
        INFO("length " << len);
        CHECK_THROWS_WITH_AS(nft::decode_messages(b.data(), len),
                             doctest::Contains("malformed nf_tables message: truncated"), cni::Error);
    }
}

TEST_CASE("garbled encodings never crash the decoder") {
    auto good = nft::encode_batch(sample(), 1);
    std::mt19937 rng(42);  // NOLINT(cert-msc32-c,cert-msc51-cpp): a fixed seed, so a failure reproduces
    size_t refused = 0;
    for (int i = 0; i < 3000; ++i) {
        auto b = good;
        for (int k = 1 + int(rng() % 8); k-- > 0;) b[rng() % b.size()] = uint8_t(rng());
        try {
            nft::decode_messages(b.data(), b.size());
        } catch (const cni::Error&) {
            ++refused;
        }
    }
    CHECK(refused > 0);
    // Pure noise too.
    for (int i = 0; i < 500; ++i) {
        std::vector<uint8_t> noise(rng() % 512);
        for (auto& c : noise) c = uint8_t(rng());
        try {
            nft::decode_messages(noise.data(), noise.size());
        } catch (const cni::Error&) {
        }
    }
}

TEST_CASE("expressions the fence never emits decode as Unrecognized") {
    auto b = nft::encode_batch(sample(), 1);
    b.resize(b.size() - NLMSG_ALIGN(sizeof(nlmsghdr) + 4));  // drop BATCH_END
    auto payload = raw_rule("output", [](nftnl_rule* r) {
        nftnl_expr* p = nftnl_expr_alloc("payload");
        nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
        nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_OFFSET, 0);
        nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_LEN, 2);
        nftnl_rule_add_expr(r, p);
        nftnl_expr* v = nftnl_expr_alloc("immediate");
        nftnl_expr_set_u32(v, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(v, NFTNL_EXPR_IMM_VERDICT, 1 /* NF_ACCEPT */);
        nftnl_rule_add_expr(r, v);
    });
    auto inverted = raw_rule("output", [](nftnl_rule* r) {
        nftnl_expr* m = nftnl_expr_alloc("meta");
        nftnl_expr_set_u32(m, NFTNL_EXPR_META_KEY, NFT_META_SKUID);
        nftnl_expr_set_u32(m, NFTNL_EXPR_META_DREG, NFT_REG_1);
        nftnl_rule_add_expr(r, m);
        nftnl_expr* bo = nftnl_expr_alloc("byteorder");
        nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_SREG, NFT_REG_1);
        nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_DREG, NFT_REG_1);
        nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
        nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_LEN, 4);
        nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_SIZE, 4);
        nftnl_rule_add_expr(r, bo);
        nftnl_expr* l = nftnl_expr_alloc("lookup");
        nftnl_expr_set_u32(l, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_str(l, NFTNL_EXPR_LOOKUP_SET, "exempt_uids");
        nftnl_expr_set_u32(l, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
        nftnl_rule_add_expr(r, l);
    });
    b.insert(b.end(), payload.begin(), payload.end());
    b.insert(b.end(), inverted.begin(), inverted.end());
    Ruleset rs = nft::decode_messages(b.data(), b.size());
    const auto& rules = rs.chains[0].rules;
    REQUIRE(rules.size() == sample().chains[0].rules.size() + 2);
    const auto& odd = rules[rules.size() - 2];
    REQUIRE(odd.stmts.size() == 2);
    const auto* u = std::get_if<Unrecognized>(odd.stmts.data());
    REQUIRE(u);
    CHECK(u->text.find("[payload") == 0);
    CHECK(odd.stmts[1] == Stmt{Verdict{VerdictKind::accept}});
    // `meta skuid != @set` must not pass for `meta skuid @set`.
    const auto& inv = rules.back();
    CHECK(std::none_of(inv.stmts.begin(), inv.stmts.end(),
                       [](const Stmt& s) { return std::holds_alternative<SkuidInSet>(s); }));
    CHECK(std::holds_alternative<Unrecognized>(inv.stmts.back()));
}

TEST_CASE("invalid models are refused before anything is sent") {
    Ruleset rs = sample();
    rs.sets[0].elements.push_back({{one(Bytes{1, 2})}});  // 2 bytes in a uid set
    CHECK_THROWS_WITH_AS(nft::encode_batch(rs, 1),
                         "cannot encode the fence: an element of set exempt_uids does not match the set's key",
                         cni::Error);
    rs = sample();
    rs.chains[0].rules[0].stmts[0] = OifnameEq{"a-very-long-interface-name"};
    CHECK_THROWS_WITH_AS(nft::encode_batch(rs, 1),
                         "cannot encode the fence: interface name too long: a-very-long-interface-name", cni::Error);
}
