// The fence compiler: what a profile turns into, rule by rule.
#include <arpa/inet.h>

#include <doctest/doctest.h>
#include <algorithm>

#include "cni/error.h"
#include "fence/allow_sets.h"
#include "fence/compile.h"

using namespace ef;
using namespace ef::fence;

namespace {

config::Cidr cidr(const std::string& s) {
    config::Cidr c;
    auto slash = s.find('/');
    std::string addr = s.substr(0, slash);
    c.v6 = addr.find(':') != std::string::npos;
    inet_pton(c.v6 ? AF_INET6 : AF_INET, addr.c_str(), c.addr.data());
    c.prefix = static_cast<uint8_t>(std::stoi(s.substr(slash + 1)));
    return c;
}

config::AllowEntry entry(const std::string& c, config::Protocol p, std::vector<config::PortRange> ports) {
    return config::AllowEntry{cidr(c), p, std::move(ports)};
}

config::Profile example_profile() {
    config::Profile p;
    p.name = "proxy-only";
    p.exempt_uids = {1337};
    p.allow = {entry("10.96.0.10/32", config::Protocol::udp, {{53, 53}}),
               entry("fd00:10:96::a/128", config::Protocol::tcp, {{53, 53}, {8000, 8100}})};
    return p;
}

config::Pod pod() { return config::Pod{"sandboxes", "agent-1", "c0ffee", "uid-1", {}}; }

const Chain& chain(const Ruleset& rs, const std::string& name) {
    for (const auto& c : rs.chains)
        if (c.name == name) return c;
    FAIL("no chain " << name);
    return rs.chains.front();
}

std::vector<std::string> rule_texts(const Chain& c) {
    std::vector<std::string> out;
    for (const auto& r : c.rules) out.push_back(to_nft_text(r));
    return out;
}

}  // namespace

TEST_CASE("the example profile compiles to the invariant's rule order") {
    const std::string port_range_rule =
        "ip6 daddr . meta l4proto @allow6_ports_8000_8100 th dport 8000-8100 counter name \"allowed_accepted\" accept";
    Ruleset rs = compile(example_profile(), pod());
    CHECK(rule_texts(chain(rs, "output")) ==
          std::vector<std::string>{
              "meta secmark set 1162215424",
              "oifname != \"lo\" meta skuid @exempt_uids counter name \"exempt_accepted\" accept",
              "meta skuid 0-4294967295 fib saddr type != local counter name \"spoofed_dropped\" drop",
              "oifname \"lo\" accept",
              "exthdr rt exists goto refuse",
              "ct direction reply ct mark & 0x40000000 == 0x40000000 accept",
              "ip daddr . meta l4proto . th dport @allow4 counter name \"allowed_accepted\" accept",
              "ip6 daddr . meta l4proto . th dport @allow6 counter name \"allowed_accepted\" accept",
              port_range_rule,
              "meta skuid 0-4294967295 goto refuse",
              "ct direction original ct state established,related accept",
              "icmpv6 type nd-router-solicit ip6 hoplimit 255 ip6 daddr ff02::2 accept",
              "icmpv6 type 135-136 ip6 hoplimit 255 goto neighbours",
              "icmpv6 type 131-132 counter name \"mld_dropped\" drop",
              "icmpv6 type mld2-listener-report counter name \"mld_dropped\" drop",
              "goto refuse",
          });
    const Chain& out = chain(rs, "output");
    REQUIRE(out.base);
    CHECK(out.base->hook == Hook::output);
    CHECK(out.base->policy == Policy::drop);
    CHECK(rule_texts(chain(rs, "refuse")) ==
          std::vector<std::string>{"meta l4proto tcp counter name \"tcp_refused\" reject with tcp reset",
                                   "meta l4proto udp counter name \"udp_refused\" reject",
                                   "counter name \"other_dropped\" drop"});
    CHECK(!chain(rs, "refuse").base);
    CHECK(rule_texts(chain(rs, "neighbours")) == std::vector<std::string>{"ip6 daddr fe80::/10 accept",
                                                                          "ip6 daddr ff02::/16 accept",
                                                                          "oifname \"eth0\" goto refuse", "accept"});
    CHECK(rule_texts(chain(rs, "inbound")) ==
          std::vector<std::string>{
              "ct state new tcp dport 32768-60999 accept", "ct state new udp dport 32768-60999 accept",
              "ct state new iifname != \"lo\" fib saddr . iif oif exists ct mark set ct mark | 0x40000000"});
    REQUIRE(chain(rs, "inbound").base);
    CHECK(chain(rs, "inbound").base->hook == Hook::prerouting);
    CHECK(chain(rs, "inbound").base->policy == Policy::accept);
}

// The invariant (docs/threat-model.md, "What fenced means"): conntrack state never accepts
// a packet that carries a process's socket. In the output chain every rule
// that accepts on conntrack state alone comes after the rule that sends every
// such packet to `refuse`; before it, only the exempt UID, the pod's own
// loopback, the allow sets, and replies to connections the inbound chain
// marked accept.
TEST_CASE("no conntrack shortcut before a process's packet is judged") {
    for (config::Mode mode : {config::Mode::enforce, config::Mode::audit}) {
        config::Profile p = example_profile();
        p.mode = mode;
        const Ruleset rs = compile(p, pod());
        const Chain& out = chain(rs, "output");
        const Rule judged{{SkuidAny{}, Goto{kRefuseChain}}};
        auto at = std::find(out.rules.begin(), out.rules.end(), judged);
        REQUIRE(at != out.rules.end());
        for (auto r = out.rules.begin(); r != at; ++r) {
            bool ct = false, marked = false;
            for (const auto& st : r->stmts) {
                ct = ct || std::holds_alternative<CtStateIn>(st) || std::holds_alternative<CtDirectionEq>(st);
                marked = marked || std::holds_alternative<CtMarkHas>(st);
            }
            CHECK_MESSAGE((!ct || marked), to_nft_text(*r));
        }
    }
}

TEST_CASE("the forward chain holds the same allowlist but never exempts UIDs nor trusts conntrack state") {
    Ruleset rs = compile(example_profile(), pod());
    auto fwd = rule_texts(chain(rs, "forward"));
    REQUIRE(fwd.size() > 2);
    CHECK(fwd[0] == "meta secmark set 1162215424");
    CHECK(fwd[1] == "fib saddr . iif oif missing counter name \"spoofed_dropped\" drop");
    CHECK(fwd[2] == "exthdr rt exists goto refuse");
    CHECK(fwd[3] == "ct direction reply ct mark & 0x40000000 == 0x40000000 accept");
    CHECK(fwd.back() == "goto refuse");
    for (const auto& r : fwd) {
        CHECK(r.find("skuid") == std::string::npos);
        CHECK(r.find("ct state") == std::string::npos);
    }
    CHECK(std::find(fwd.begin(), fwd.end(),
                    "ip daddr . meta l4proto . th dport @allow4 counter name \"allowed_accepted\" accept") !=
          fwd.end());
    REQUIRE(chain(rs, "forward").base);
    CHECK(chain(rs, "forward").base->policy == Policy::drop);
}

const Set& set_named(const Ruleset& rs, const std::string& name) {
    for (const auto& s : rs.sets)
        if (s.name == name) return s;
    FAIL("no set " << name);
    return rs.sets.front();
}

std::vector<std::string> element_texts(const Set& s) {
    std::vector<std::string> out;
    for (const auto& e : s.elements) out.push_back(to_nft_text(s, e));
    return out;
}

std::vector<std::string> set_names(const Ruleset& rs) {
    std::vector<std::string> names;
    for (const auto& s : rs.sets) names.push_back(s.name);
    return names;
}

TEST_CASE("exact keys go to hash sets: one per prefix length and port range; /0 to the interval set") {
    config::Profile p = example_profile();
    p.allow.push_back(entry("10.0.0.0/8", config::Protocol::tcp, {{443, 443}, {8000, 8100}}));
    p.allow.push_back(entry("10.2.0.0/16", config::Protocol::tcp, {{8000, 8100}}));
    p.allow.push_back(entry("0.0.0.0/0", config::Protocol::udp, {{123, 123}}));
    Ruleset rs = compile(p, pod());
    CHECK(set_names(rs) == std::vector<std::string>{"exempt_uids", "allow4", "allow4_16_ports_8000_8100", "allow4_8",
                                                    "allow4_8_ports_8000_8100", "allow4_ranges", "allow6",
                                                    "allow6_ports_8000_8100"});
    CHECK(element_texts(set_named(rs, "allow4")) == std::vector<std::string>{"10.96.0.10 . udp . 53"});
    CHECK(element_texts(set_named(rs, "allow4_8")) == std::vector<std::string>{"10.0.0.0 . tcp . 443"});
    CHECK(element_texts(set_named(rs, "allow4_8_ports_8000_8100")) == std::vector<std::string>{"10.0.0.0 . tcp"});
    CHECK(element_texts(set_named(rs, "allow4_ranges")) == std::vector<std::string>{"0.0.0.0/0 . udp . 123"});
    CHECK(element_texts(set_named(rs, "allow6")) == std::vector<std::string>{"fd00:10:96::a . tcp . 53"});
    CHECK(element_texts(set_named(rs, "allow6_ports_8000_8100")) == std::vector<std::string>{"fd00:10:96::a . tcp"});
    for (const char* name : {"allow4", "allow4_8", "allow4_8_ports_8000_8100", "allow6", "allow6_ports_8000_8100"}) {
        CHECK_FALSE(set_named(rs, name).interval);
        CHECK(set_named(rs, name).size == 16);
    }
    CHECK(set_named(rs, "allow4_ranges").interval);
    CHECK(set_named(rs, "allow4_ranges").size == 0);
    CHECK(set_named(rs, "allow4_8_ports_8000_8100").key ==
          std::vector<FieldType>{FieldType::ipv4_addr, FieldType::inet_proto});
    // A masked set is looked up with the address cut to its prefix length; a
    // port-range group checks the range after the lookup.
    auto rules = rule_texts(chain(rs, "forward"));
    for (const char* r :
         {"ip daddr & 255.0.0.0 . meta l4proto . th dport @allow4_8 counter name \"allowed_accepted\" accept",
          "ip daddr & 255.0.0.0 . meta l4proto @allow4_8_ports_8000_8100 th dport 8000-8100 counter name "
          "\"allowed_accepted\" accept",
          "ip daddr . meta l4proto . th dport @allow4_ranges counter name \"allowed_accepted\" accept"})
        CHECK_MESSAGE(std::find(rules.begin(), rules.end(), r) != rules.end(), r);
}

TEST_CASE("hash sets are sized to a power of two with room to spare") {
    CHECK(hash_set_size(0) == 16);
    CHECK(hash_set_size(16) == 16);
    CHECK(hash_set_size(17) == 32);
    CHECK(hash_set_size(100000) == 131072);
    config::Profile p;
    p.name = "many";
    for (uint32_t i = 0; i < 1000; ++i) {
        std::string a = "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256) + "/32";
        p.allow.push_back(entry(a, config::Protocol::tcp, {{443, 443}}));
    }
    Ruleset rs = compile(p, pod());
    CHECK(set_named(rs, "allow4").elements.size() == 1000);
    CHECK(set_named(rs, "allow4").size == 1024);
}

TEST_CASE("a concatenated hash set lists its elements in nft's order: from the last key byte") {
    config::Profile p;
    p.name = "order";
    p.allow = {entry("10.0.0.1/32", config::Protocol::tcp, {{8080, 8080}, {80, 80}}),
               entry("10.0.0.2/32", config::Protocol::udp, {{53, 53}}),
               entry("1.2.3.4/32", config::Protocol::tcp, {{80, 80}}),
               entry("9.0.0.1/32", config::Protocol::tcp, {{80, 80}})};
    // What nft 1.0.6 lists for these elements in a hash set (seen here).
    CHECK(element_texts(set_named(compile(p, pod()), "allow4")) ==
          std::vector<std::string>{"10.0.0.2 . udp . 53", "9.0.0.1 . tcp . 80", "10.0.0.1 . tcp . 80",
                                   "1.2.3.4 . tcp . 80", "10.0.0.1 . tcp . 8080"});
}

TEST_CASE("any-protocol entries go to address-only sets, v4 and v6 apart, hashed per prefix length") {
    config::Profile p;
    p.name = "any";
    p.allow = {entry("192.168.0.0/16", config::Protocol::any, {}), entry("fd00::/8", config::Protocol::any, {}),
               entry("10.0.0.9/32", config::Protocol::any, {}), entry("0.0.0.0/0", config::Protocol::any, {})};
    Ruleset rs = compile(p, pod());
    CHECK(set_names(rs) ==
          std::vector<std::string>{"allow4_any", "allow4_any_16", "allow4_any_ranges", "allow6_any_8"});
    auto rules = rule_texts(chain(rs, "output"));
    for (const char* r : {"ip daddr @allow4_any counter name \"allowed_accepted\" accept",
                          "ip daddr & 255.255.0.0 == @allow4_any_16 counter name \"allowed_accepted\" accept",
                          "ip daddr @allow4_any_ranges counter name \"allowed_accepted\" accept",
                          "ip6 daddr & ff00:: == @allow6_any_8 counter name \"allowed_accepted\" accept"})
        CHECK_MESSAGE(std::find(rules.begin(), rules.end(), r) != rules.end(), r);
    CHECK(element_texts(set_named(rs, "allow6_any_8")) == std::vector<std::string>{"fd00::"});
    // /0 has no prefix to hash: an interval set holds it.
    CHECK(element_texts(set_named(rs, "allow4_any_ranges")) == std::vector<std::string>{"0.0.0.0/0"});
    CHECK(set_named(rs, "allow4_any_ranges").interval);
}

TEST_CASE("beyond kMaxHashSets groups, the smallest share the interval set") {
    config::Profile p;
    p.name = "lengths";
    // Lengths 20..29, length L with 30 - L entries (20: 10 entries ... 29: 1).
    for (uint8_t len = 20; len <= 29; ++len)
        for (uint32_t i = 0; i < uint32_t(30 - len); ++i) {
            std::string a = "10." + std::to_string(len) + "." + std::to_string(i * 16) + ".0/" + std::to_string(len);
            p.allow.push_back(entry(a, config::Protocol::udp, {{53, 53}}));
        }
    Ruleset rs = compile(p, pod());
    REQUIRE(kMaxHashSets == 8);
    CHECK(set_names(rs) == std::vector<std::string>{"allow4_27", "allow4_26", "allow4_25", "allow4_24", "allow4_23",
                                                    "allow4_22", "allow4_21", "allow4_20", "allow4_ranges"});
    CHECK(element_texts(set_named(rs, "allow4_ranges")) ==
          std::vector<std::string>{"10.28.0.0/28 . udp . 53", "10.28.16.0/28 . udp . 53", "10.29.0.0/29 . udp . 53"});
}

TEST_CASE("no allow entries and no exempt UIDs: only loopback, replies, the kernel's own packets and ND get out") {
    config::Profile p;
    p.name = "closed";
    Ruleset rs = compile(p, pod());
    CHECK(rs.sets.empty());
    auto rules = rule_texts(chain(rs, "output"));
    REQUIRE(rules.size() > 6);
    CHECK(std::vector<std::string>(rules.begin(), rules.begin() + 7) ==
          std::vector<std::string>{
              "meta secmark set 1162215424",
              std::string("meta skuid 0-4294967295 fib saddr type != local counter name ") + "\"spoofed_dropped\" drop",
              "oifname \"lo\" accept", "exthdr rt exists goto refuse",
              "ct direction reply ct mark & 0x40000000 == 0x40000000 accept", "meta skuid 0-4294967295 goto refuse",
              "ct direction original ct state established,related accept"});
    CHECK(rules.back() == "goto refuse");
    for (const auto& r : rules) CHECK(r.find("exempt") == std::string::npos);
}

TEST_CASE("several exempt UIDs land sorted in one interval set") {
    config::Profile p = example_profile();
    p.exempt_uids = {2000, 0, 1337, 4294967295u};
    Ruleset rs = compile(p, pod());
    const Set& uids = rs.sets.front();
    CHECK(uids.name == "exempt_uids");
    std::vector<std::string> els;
    for (const auto& e : uids.elements) els.push_back(to_nft_text(uids, e));
    CHECK(els == std::vector<std::string>{"0", "1337", "2000", "4294967295"});
}

TEST_CASE("tcpDeny drop drops instead of resetting") {
    config::Profile p = example_profile();
    p.tcp_deny = config::TcpDeny::drop;
    auto rules = rule_texts(chain(compile(p, pod()), "refuse"));
    CHECK(std::find(rules.begin(), rules.end(), "meta l4proto tcp counter name \"tcp_refused\" drop") != rules.end());
}

TEST_CASE("logging is rate limited, placed before the refusals, and names the pod") {
    config::Profile p = example_profile();
    p.log = config::LogSpec{5, "second", 10, "egress-fence"};
    auto rules = rule_texts(chain(compile(p, pod()), "refuse"));
    auto log = std::find(
        rules.begin(), rules.end(),
        "limit rate 5/second burst 10 packets log prefix \"egress-fence sandboxes/agent-1: \" flags skuid");
    REQUIRE(log != rules.end());
    auto reject = std::find(rules.begin(), rules.end(),
                            "meta l4proto tcp counter name \"tcp_refused\" reject with tcp reset");
    CHECK(log < reject);
}

TEST_CASE("the log prefix is bounded to the kernel's length and escaped") {
    config::LogSpec log{1, "minute", 1, "ef"};
    config::Pod p{"ns", std::string(300, 'a') + "\"x", "", "", {}};
    std::string prefix = log_prefix(log, p);
    CHECK(prefix.size() == kMaxLogPrefix);
    CHECK(prefix.find('"') == std::string::npos);
}

TEST_CASE("metadata carries the profile, the pod and the body's digest") {
    Ruleset rs = compile(example_profile(), pod());
    CHECK(rs.meta.profile == "proxy-only");
    CHECK(rs.meta.pod_namespace == "sandboxes");
    CHECK(rs.meta.pod_name == "agent-1");
    CHECK(rs.meta.container_id == "c0ffee");
    CHECK(rs.meta.digest == digest(rs));
    CHECK(rs.meta.digest.size() == 32);
}

TEST_CASE("the digest changes with the body, not with counters or metadata") {
    Ruleset a = compile(example_profile(), pod());
    Ruleset b = a;
    b.counters[0].packets = 99;
    b.meta.pod_name = "other";
    CHECK(digest(a) == digest(b));
    config::Profile p = example_profile();
    p.exempt_uids.push_back(1338);
    CHECK(digest(compile(p, pod())) != digest(a));
}

TEST_CASE("sha256 matches the standard test vector") {
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("an audit profile counts would-be refusals and lets them through") {
    config::Profile p = example_profile();
    p.mode = config::Mode::audit;
    Ruleset rs = compile(p, pod());
    auto rules = rule_texts(chain(rs, "refuse"));
    CHECK(rules == std::vector<std::string>{"meta l4proto tcp counter name \"would_refuse_tcp\" accept",
                                            "meta l4proto udp counter name \"would_refuse_udp\" accept",
                                            "counter name \"would_drop_other\" accept"});
    for (const char* name : {"output", "forward"})
        for (const auto& r : rule_texts(chain(rs, name))) {
            CHECK(r.find("reject") == std::string::npos);
            CHECK(r.find(" drop") == std::string::npos);
        }
    CHECK(rule_texts(chain(rs, "output"))[2] ==
          "meta skuid 0-4294967295 fib saddr type != local counter name \"would_drop_spoofed\"");
    std::vector<std::string> counters;
    for (const auto& c : rs.counters) counters.push_back(c.name);
    CHECK(counters == std::vector<std::string>{"exempt_accepted", "allowed_accepted", "would_refuse_tcp",
                                               "would_refuse_udp", "would_drop_other", "would_drop_spoofed",
                                               "mld_dropped"});
    CHECK(digest(rs) != digest(compile(example_profile(), pod())));
}

// --- raw frames (DESIGN.md "Raw frames") ---------------------------------------

TEST_CASE("both inet chains stamp every packet first, before any verdict") {
    Ruleset rs = compile(example_profile(), pod(), {{"eth0", {}}});
    for (const char* name : {"output", "forward"}) {
        const Chain& c = chain(rs, name);
        REQUIRE(!c.rules.empty());
        CHECK(c.rules.front() == Rule{{SecmarkSet{kPassedSecmark}}});
        size_t stamps = 0;
        for (const auto& r : c.rules)
            for (const auto& s : r.stmts) stamps += std::holds_alternative<SecmarkSet>(s);
        CHECK(stamps == 1);
    }
}

TEST_CASE("the netdev egress chain on the pod's interface lets out stamped frames and ARP, counts and drops the rest") {
    Ruleset rs = compile(example_profile(), pod(), {{"net1", {}}});
    REQUIRE(rs.netdev);
    CHECK(rs.netdev->counters == std::vector<Counter>{{kCounterRawDropped}});
    REQUIRE(rs.netdev->chains.size() == 1);
    const Chain& c = rs.netdev->chains[0];
    CHECK(c.name == "egress_net1");
    REQUIRE(c.base);
    CHECK(c.base->hook == Hook::egress);
    CHECK(c.base->device == "net1");
    CHECK(c.base->priority == 0);
    CHECK(c.base->policy == Policy::drop);
    CHECK(rule_texts(c) == std::vector<std::string>{"meta secmark 1162215424 accept", "ether type arp accept",
                                                    "counter name \"raw_dropped\""});
}

TEST_CASE("the interface defaults to eth0 and is part of the digest") {
    Ruleset rs = compile(example_profile(), pod());
    REQUIRE(rs.netdev);
    REQUIRE(rs.netdev->chains.size() == 1);
    CHECK(rs.netdev->chains[0].base->device == kDefaultDevice);
    CHECK(digest(compile(example_profile(), pod(), {{"net1", {}}})) != digest(rs));
}

TEST_CASE("an audit profile counts raw frames it would drop and lets them through") {
    config::Profile p = example_profile();
    p.mode = config::Mode::audit;
    Ruleset rs = compile(p, pod(), {{"eth0", {}}});
    REQUIRE(rs.netdev);
    CHECK(rs.netdev->counters == std::vector<Counter>{{kCounterWouldDropRaw}});
    CHECK(to_nft_text(rs.netdev->chains[0].rules.back()) == "counter name \"would_drop_raw\" accept");
}

TEST_CASE("the digest ignores raw-frame counter values") {
    Ruleset a = compile(example_profile(), pod());
    Ruleset b = a;
    b.netdev->counters[0].packets = 7;
    b.netdev->counters[0].bytes = 700;
    CHECK(digest(a) == digest(b));
}

// --- attachments (Multus: eth0, net1, ...) -------------------------------------

TEST_CASE("every attachment gets its raw-frame chain, and its on-link prefixes for neighbour discovery") {
    Attachment eth0{"eth0", {cidr("fd00:1::/64")}}, net1{"net1", {cidr("fd00:2::/64"), cidr("fd00:3::/112")}};
    // In any order, each interface once.
    Ruleset rs = compile(example_profile(), pod(), {net1, eth0, net1});
    REQUIRE(rs.netdev);
    REQUIRE(rs.netdev->chains.size() == 2);
    CHECK(rs.netdev->chains[0].name == "egress_eth0");
    CHECK(rs.netdev->chains[1].name == "egress_net1");
    CHECK(element_texts(set_named(rs, "onlink6_eth0")) == std::vector<std::string>{"fd00:1::/64"});
    CHECK(element_texts(set_named(rs, "onlink6_net1")) == std::vector<std::string>{"fd00:2::/64", "fd00:3::/112"});
    CHECK(rule_texts(chain(rs, "neighbours")) ==
          std::vector<std::string>{"ip6 daddr fe80::/10 accept", "ip6 daddr ff02::/16 accept",
                                   "oifname \"eth0\" ip6 daddr @onlink6_eth0 accept", "oifname \"eth0\" goto refuse",
                                   "oifname \"net1\" ip6 daddr @onlink6_net1 accept", "oifname \"net1\" goto refuse",
                                   "accept"});
    CHECK(attachments_of(rs) == std::vector<Attachment>{eth0, net1});
    CHECK(rs == compile(example_profile(), pod(), {eth0, net1}));
}

TEST_CASE("an attachment without IPv6 prefixes has no on-link set and no rule for one") {
    Ruleset rs = compile(example_profile(), pod(), {{"eth0", {}}});
    for (const auto& s : rs.sets) CHECK(s.name.find("onlink6") == std::string::npos);
    for (const auto& r : rule_texts(chain(rs, "neighbours"))) CHECK(r.find("onlink6") == std::string::npos);
}

TEST_CASE("taking one attachment away leaves exactly the fence of the others") {
    Attachment eth0{"eth0", {cidr("fd00:1::/64")}}, net1{"net1", {cidr("fd00:2::/64")}};
    Ruleset both = compile(example_profile(), pod(), {eth0, net1});
    both.counters[0].packets = 42;
    Ruleset left = without_attachment(both, "net1");
    Ruleset want = compile(example_profile(), pod(), {eth0});
    CHECK(left == want);
    CHECK(left.meta.digest == want.meta.digest);
    CHECK(left.counters[0].packets == 42);  // counter values carried, not reset
    CHECK(without_attachment(left, "eth0").netdev->chains.empty());
    CHECK(without_attachment(both, "net9") == both);
}

TEST_CASE("an interface name the tables cannot carry fails the compile, naming it") {
    for (const char* bad : {"", "a b", "eth0;", "0123456789abcdef", "..", "x\"y"}) {
        CAPTURE(bad);
        try {
            (void)compile(example_profile(), pod(), {{bad, {}}});
            FAIL("compiled");
        } catch (const cni::Error& e) {
            CHECK(e.code == cni::kInvalidEnvironment);
            CHECK(e.msg.find("CNI_IFNAME") != std::string::npos);
        }
    }
    CHECK_NOTHROW((void)compile(example_profile(), pod(), {{"net1.100", {}}, {"eth_0-a", {}}}));
}

TEST_CASE("inboundPeers: only connections from the listed prefixes are marked for an answer, per family") {
    config::Profile p = example_profile();
    p.inbound_peers = std::vector<config::Cidr>{cidr("10.0.0.0/8"), cidr("10.1.0.0/16"), cidr("fd00::/8")};
    Ruleset rs = compile(p, pod());
    CHECK(rule_texts(chain(rs, "inbound")) ==
          std::vector<std::string>{
              "ct state new tcp dport 32768-60999 accept", "ct state new udp dport 32768-60999 accept",
              "ct state new iifname != \"lo\" fib saddr . iif oif exists ip saddr @inbound_peers4 "
              "ct mark set ct mark | 0x40000000",
              "ct state new iifname != \"lo\" fib saddr . iif oif exists ip6 saddr @inbound_peers6 "
              "ct mark set ct mark | 0x40000000"});
    CHECK(element_texts(set_named(rs, "inbound_peers4")) == std::vector<std::string>{"10.0.0.0/8", "10.1.0.0/16"});
    CHECK(element_texts(set_named(rs, "inbound_peers6")) == std::vector<std::string>{"fd00::/8"});
    // No IPv6 peer listed: no IPv6 connection is answered.
    p.inbound_peers = std::vector<config::Cidr>{cidr("192.168.0.0/16")};
    Ruleset v4only = compile(p, pod());
    CHECK(rule_texts(chain(v4only, "inbound")).size() == 3);
    for (const auto& s : v4only.sets) CHECK(s.name != "inbound_peers6");
    // An empty list: nothing is answered at all.
    p.inbound_peers = std::vector<config::Cidr>{};
    CHECK(chain(compile(p, pod()), "inbound").rules.empty());
    CHECK(digest(compile(p, pod())) != digest(compile(example_profile(), pod())));
}
