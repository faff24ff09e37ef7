// The canonical diff CHECK reports: every kind of tampering named in words.
#include <doctest/doctest.h>

#include "fence/diff.h"

using namespace ef::fence;

namespace {

Ruleset sample() {
    Ruleset rs;
    rs.meta.profile = "proxy-only";
    rs.meta.digest = "d1";
    rs.counters = {Counter{"tcp_refused"}};
    rs.sets = {Set{"exempt_uids", {FieldType::uid}, true, {Element{{{Bytes{0, 0, 5, 57}, Bytes{0, 0, 5, 57}}}}}}};
    rs.chains = {Chain{"output",
                       BaseHook{Hook::output, 0, Policy::drop, ""},
                       {Rule{{OifnameEq{"lo"}, Verdict{VerdictKind::accept}}},
                        Rule{{SkuidInSet{"exempt_uids"}, Verdict{VerdictKind::accept}}},
                        Rule{{L4ProtoEq{6}, CounterRef{"tcp_refused"}, Reject{RejectKind::tcp_reset}}}}}};
    return rs;
}

bool mentions(const std::vector<std::string>& d, const std::string& what) {
    for (const auto& s : d)
        if (s.find(what) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("equal rulesets have no differences, whatever the counters say") {
    Ruleset a = sample(), b = sample();
    b.counters[0].packets = 42;
    b.meta.pod_name = "whoever";
    CHECK(diff(a, b).empty());
}

TEST_CASE("a deleted rule is reported as missing") {
    Ruleset actual = sample();
    actual.chains[0].rules.erase(actual.chains[0].rules.begin() + 1);
    auto d = diff(sample(), actual);
    REQUIRE(d.size() == 1);
    CHECK(mentions(d, "chain output: missing rule `meta skuid @exempt_uids accept`"));
}

TEST_CASE("an inserted accept is reported as unexpected, with its position") {
    Ruleset actual = sample();
    actual.chains[0].rules.insert(actual.chains[0].rules.begin() + 2, Rule{{Verdict{VerdictKind::accept}}});
    auto d = diff(sample(), actual);
    REQUIRE(d.size() == 1);
    CHECK(d[0] == "chain output: unexpected rule 3: `accept`");
}

TEST_CASE("a replaced rule reads as changed, showing both") {
    Ruleset actual = sample();
    actual.chains[0].rules[2] = Rule{{L4ProtoEq{6}, Verdict{VerdictKind::accept}}};
    auto d = diff(sample(), actual);
    REQUIRE(d.size() == 1);
    CHECK(mentions(d,
                   "rule 3 changed: expected `meta l4proto tcp counter name \"tcp_refused\" reject with tcp reset`, "
                   "found `meta l4proto tcp accept`"));
}

TEST_CASE("a policy changed to accept is named") {
    Ruleset actual = sample();
    actual.chains[0].base->policy = Policy::accept;
    CHECK(mentions(diff(sample(), actual), "policy accept, expected hook output priority 0 policy drop"));
}

TEST_CASE("set elements added or removed are listed") {
    Ruleset actual = sample();
    actual.sets[0].elements.push_back(Element{{{Bytes{0, 0, 0, 0}, Bytes{0, 0, 0, 0}}}});
    auto d = diff(sample(), actual);
    CHECK(d == std::vector<std::string>{"set exempt_uids: unexpected element `0`"});
    actual.sets[0].elements.clear();
    CHECK(mentions(diff(sample(), actual), "set exempt_uids: missing element `1337`"));
}

TEST_CASE("missing and extra chains, sets and counters, and metadata changes") {
    Ruleset actual = sample();
    actual.chains.clear();
    actual.sets.push_back(Set{"sneaky", {FieldType::ipv4_addr}, true, {}});
    actual.counters.clear();
    actual.meta.profile = "wide-open";
    actual.meta.digest = "d2";
    auto d = diff(sample(), actual);
    CHECK(mentions(d, "chain output: missing"));
    CHECK(mentions(d, "set sneaky: unexpected"));
    CHECK(mentions(d, "counter tcp_refused: missing"));
    CHECK(mentions(d, "profile is \"wide-open\", the config demands \"proxy-only\""));
    CHECK(mentions(d, "digest is \"d2\""));
    CHECK(d.front().rfind("table metadata", 0) == 0);  // deterministic order: metadata first
}

TEST_CASE("an unrecognized statement never matches a compiled one") {
    Ruleset actual = sample();
    actual.chains[0].rules[0] = Rule{{Unrecognized{"[ payload load 4b ]"}, Verdict{VerdictKind::accept}}};
    CHECK(!diff(sample(), actual).empty());
}

// --- the raw-frame table ---------------------------------------------------------

namespace {

Ruleset with_netdev() {
    Ruleset rs = sample();
    rs.netdev = NetdevTable{{Counter{"raw_dropped"}},
                            {Chain{"egress_eth0",
                                   BaseHook{Hook::egress, 0, Policy::drop, "eth0"},
                                   {Rule{{SecmarkEq{7}, Verdict{VerdictKind::accept}}},
                                    Rule{{EtherTypeEq{0x0806}, Verdict{VerdictKind::accept}}},
                                    Rule{{CounterRef{"raw_dropped"}}}}}}};
    return rs;
}

}  // namespace

TEST_CASE("a missing netdev table is named, with what it means") {
    Ruleset actual = with_netdev();
    actual.netdev.reset();
    auto d = diff(with_netdev(), actual);
    REQUIRE(d.size() == 1);
    CHECK(d[0] == "table netdev egress_fence: missing (raw frames from the pod are not fenced)");
}

TEST_CASE("netdev table: another device, a policy turned to accept, a rule removed, counter values ignored") {
    Ruleset actual = with_netdev();
    Chain& chain = actual.netdev->chains[0];
    chain.base->device = "eth1";
    chain.base->policy = Policy::accept;
    chain.rules.erase(chain.rules.begin());
    actual.netdev->counters[0].packets = 5;
    auto d = diff(with_netdev(), actual);
    CHECK(mentions(d,
                   "table netdev egress_fence: chain egress_eth0: hook egress device \"eth1\" priority 0 policy "
                   "accept, expected hook egress device \"eth0\" priority 0 policy drop"));
    CHECK(mentions(d, "table netdev egress_fence: chain egress_eth0: missing rule `meta secmark 7 accept`"));
    CHECK(d.size() == 2);
}

TEST_CASE("an unexpected netdev table is reported") {
    auto d = diff(sample(), with_netdev());
    REQUIRE(d.size() == 1);
    CHECK(d[0] == "table netdev egress_fence: unexpected (not in the config's fence)");
}
