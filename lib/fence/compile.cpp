#include "fence/compile.h"

#include <algorithm>

#include "cni/version.h"
#include "fence/disjoint.h"

namespace ef::fence {
namespace {

using config::AllowEntry;
using config::Protocol;

constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17, kProtoSctp = 132;
// NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)
constexpr uint32_t kCtEstablishedRelated = (1u << 1) | (1u << 2);
// ICMPv6 router solicitation (133) .. neighbour advertisement (136): NDP.
constexpr uint8_t kNdFirst = 133, kNdLast = 136;

TimeUnit time_unit(const std::string& unit) {
    if (unit == "minute") return TimeUnit::minute;
    if (unit == "hour") return TimeUnit::hour;
    if (unit == "day") return TimeUnit::day;
    return TimeUnit::second;
}

Bytes be(uint64_t v, size_t len) {
    Bytes b(len);
    for (size_t i = 0; i < len; ++i) b[len - 1 - i] = uint8_t(v >> (8 * i));
    return b;
}

FieldRange exact(const Bytes& v) { return {v, v}; }

FieldRange cidr_range(const config::Cidr& c) {
    size_t len = c.v6 ? 16 : 4;
    Bytes lo(c.addr.begin(), c.addr.begin() + len), hi = lo;
    for (size_t bit = c.prefix; bit < len * 8; ++bit) hi[bit / 8] |= uint8_t(0x80 >> (bit % 8));
    return {lo, hi};
}

uint8_t proto_number(Protocol p) {
    switch (p) {
        case Protocol::tcp: return kProtoTcp;
        case Protocol::udp: return kProtoUdp;
        case Protocol::sctp: return kProtoSctp;
        case Protocol::any: break;
    }
    return 0;
}

void sort_unique(std::vector<Element>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
}

struct AllowSets {
    Set v4{"allow4", {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service}, true, {}};
    Set v6{"allow6", {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service}, true, {}};
    Set v4_any{"allow4_any", {FieldType::ipv4_addr}, true, {}};
    Set v6_any{"allow6_any", {FieldType::ipv6_addr}, true, {}};
};

AllowSets allow_sets(const std::vector<AllowEntry>& allow) {
    AllowSets s;
    for (const auto& e : allow) {
        FieldRange addr = cidr_range(e.cidr);
        if (e.protocol == Protocol::any) {
            (e.cidr.v6 ? s.v6_any : s.v4_any).elements.push_back({{addr}});
            continue;
        }
        for (const auto& p : e.ports) {
            Element el{{addr, exact(be(proto_number(e.protocol), 1)), {be(p.lo, 2), be(p.hi, 2)}}};
            (e.cidr.v6 ? s.v6 : s.v4).elements.push_back(std::move(el));
        }
    }
    for (Set* set : {&s.v4, &s.v6}) set->elements = disjoint_addr_proto_port(set->elements);
    for (Set* set : {&s.v4_any, &s.v6_any}) set->elements = disjoint_ranges(std::move(set->elements));
    return s;
}

// Accept rules for the destination allowlist, shared by output and forward.
std::vector<Rule> allow_rules(const AllowSets& s) {
    std::vector<Rule> rules;
    auto accept = [&](Stmt match) {
        rules.push_back(Rule{{std::move(match), CounterRef{kCounterAllowed}, Verdict{VerdictKind::accept}}});
    };
    if (!s.v4.elements.empty()) accept(DaddrProtoPortInSet{IpFamily::ipv4, s.v4.name});
    if (!s.v6.elements.empty()) accept(DaddrProtoPortInSet{IpFamily::ipv6, s.v6.name});
    if (!s.v4_any.elements.empty()) accept(DaddrInSet{IpFamily::ipv4, s.v4_any.name});
    if (!s.v6_any.elements.empty()) accept(DaddrInSet{IpFamily::ipv6, s.v6_any.name});
    return rules;
}

// What happens to everything not accepted above: logged (rate-limited) when
// the profile asks, then refused fast (TCP reset, ICMP port unreachable for
// UDP) and counted; the rest falls to the chain's drop policy. An audit
// profile counts under would_* names and accepts instead.
std::vector<Rule> deny_rules(const config::Profile& p, const config::Pod& pod) {
    std::vector<Rule> rules;
    if (p.log) {
        rules.push_back(Rule{{Limit{p.log->rate, time_unit(p.log->unit), p.log->burst}, Log{log_prefix(*p.log, pod)}}});
    }
    if (p.mode == config::Mode::audit) {
        rules.push_back(Rule{{L4ProtoEq{kProtoTcp}, CounterRef{kCounterWouldRefuseTcp}, Verdict{VerdictKind::accept}}});
        rules.push_back(Rule{{L4ProtoEq{kProtoUdp}, CounterRef{kCounterWouldRefuseUdp}, Verdict{VerdictKind::accept}}});
        rules.push_back(Rule{{CounterRef{kCounterWouldDropOther}, Verdict{VerdictKind::accept}}});
        return rules;
    }
    Stmt tcp_verdict = p.tcp_deny == config::TcpDeny::reset ? Stmt{Reject{RejectKind::tcp_reset}}
                                                            : Stmt{Verdict{VerdictKind::drop}};
    rules.push_back(Rule{{L4ProtoEq{kProtoTcp}, CounterRef{kCounterTcpRefused}, tcp_verdict}});
    rules.push_back(
        Rule{{L4ProtoEq{kProtoUdp}, CounterRef{kCounterUdpRefused}, Reject{RejectKind::icmpx_port_unreachable}}});
    rules.push_back(Rule{{CounterRef{kCounterOtherDropped}}});
    return rules;
}

}  // namespace

std::string log_prefix(const config::LogSpec& log, const config::Pod& pod) {
    std::string s = log.prefix + " " + pod.namespace_ + "/" + pod.name + ": ";
    for (char& c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  std::string_view(" ._:/-").find(c) != std::string_view::npos;
        if (!ok) c = '_';
    }
    if (s.size() > kMaxLogPrefix) s.resize(kMaxLogPrefix);
    return s;
}

namespace {

// The netdev egress chain: frames stamped by the inet chains and ARP (the
// stack's ARP passes no inet hook) leave; the rest is counted and dropped by
// the policy. An audit profile counts it and lets it through.
NetdevTable raw_frame_fence(const config::Profile& p, const std::string& device) {
    bool audit = p.mode == config::Mode::audit;
    const char* counter = audit ? kCounterWouldDropRaw : kCounterRawDropped;
    // Priority: a packet leaves only if every base chain on the hook accepts
    // it, so for a drop-policy chain that changes nothing in the packet its
    // place among other egress chains does not matter; filter (0) like the
    // inet chains.
    Chain egress{kEgressChain, BaseHook{Hook::egress, 0, Policy::drop}, {}};
    egress.rules.push_back(Rule{{SecmarkEq{kPassedSecmark}, Verdict{VerdictKind::accept}}});
    egress.rules.push_back(Rule{{EtherTypeEq{kEtherTypeArp}, Verdict{VerdictKind::accept}}});
    if (audit) egress.rules.push_back(Rule{{CounterRef{counter}, Verdict{VerdictKind::accept}}});
    else egress.rules.push_back(Rule{{CounterRef{counter}}});
    return NetdevTable{device, {Counter{counter}}, std::move(egress)};
}

}  // namespace

Ruleset compile(const config::Profile& p, const config::Pod& pod, const std::string& device) {
    Ruleset rs;
    bool audit = p.mode == config::Mode::audit;
    for (const char* name :
         {kCounterExempt, kCounterAllowed, audit ? kCounterWouldRefuseTcp : kCounterTcpRefused,
          audit ? kCounterWouldRefuseUdp : kCounterUdpRefused, audit ? kCounterWouldDropOther : kCounterOtherDropped})
        rs.counters.push_back(Counter{name});

    Set uids{"exempt_uids", {FieldType::uid}, true, {}};
    for (uint32_t uid : p.exempt_uids) uids.elements.push_back({{exact(be(uid, 4))}});
    sort_unique(uids.elements);
    AllowSets allow = allow_sets(p.allow);
    for (Set* s : {&uids, &allow.v4, &allow.v6, &allow.v4_any, &allow.v6_any})
        if (!s->elements.empty()) rs.sets.push_back(*s);

    // First, before any verdict: whatever this chain lets through carries
    // the stamp the netdev chain looks for; what it drops never gets there.
    Rule stamp{{SecmarkSet{kPassedSecmark}}};
    Chain output{"output", BaseHook{Hook::output, 0, Policy::drop}, {}};
    output.rules.push_back(stamp);
    output.rules.push_back(Rule{{OifnameEq{"lo"}, Verdict{VerdictKind::accept}}});
    output.rules.push_back(Rule{{CtStateIn{kCtEstablishedRelated}, Verdict{VerdictKind::accept}}});
    output.rules.push_back(Rule{{Icmpv6TypeRange{kNdFirst, kNdLast}, Verdict{VerdictKind::accept}}});
    if (!uids.elements.empty())
        output.rules.push_back(Rule{{SkuidInSet{uids.name}, CounterRef{kCounterExempt}, Verdict{VerdictKind::accept}}});
    for (auto& r : allow_rules(allow)) output.rules.push_back(std::move(r));
    for (auto& r : deny_rules(p, pod)) output.rules.push_back(std::move(r));

    // Forwarded packets come from namespaces nested in the pod: no socket, so
    // no UID exemption, but the same destination allowlist.
    Chain forward{"forward", BaseHook{Hook::forward, 0, Policy::drop}, {}};
    forward.rules.push_back(stamp);
    forward.rules.push_back(Rule{{CtStateIn{kCtEstablishedRelated}, Verdict{VerdictKind::accept}}});
    for (auto& r : allow_rules(allow)) forward.rules.push_back(std::move(r));
    for (auto& r : deny_rules(p, pod)) forward.rules.push_back(std::move(r));

    rs.chains = {std::move(output), std::move(forward)};
    rs.netdev = raw_frame_fence(p, device);
    rs.meta = Metadata{std::string(cni::kPluginVersion),
                       p.name,
                       pod.namespace_,
                       pod.name,
                       pod.container_id,
                       "",
                       p.annotated_uid ? std::to_string(*p.annotated_uid) : ""};
    rs.meta.digest = digest(rs);
    return rs;
}

}  // namespace ef::fence
