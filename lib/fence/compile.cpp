#include "fence/compile.h"

#include <algorithm>

#include "cni/version.h"
#include "fence/allow_sets.h"

namespace ef::fence {
namespace {

constexpr const char* kExemptUidSet = "exempt_uids";
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;
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

void sort_unique(std::vector<Element>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
}

// Accept rules for the destination allowlist, shared by output and forward.
std::vector<Rule> allow_rules(const std::vector<AllowSet>& sets) {
    std::vector<Rule> rules;
    rules.reserve(sets.size());
    for (const auto& s : sets) {
        Rule r{s.match};
        r.stmts.emplace_back(CounterRef{kCounterAllowed});
        r.stmts.emplace_back(Verdict{VerdictKind::accept});
        rules.push_back(std::move(r));
    }
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
    return compile(p, p.allow, pod, device);
}

Ruleset compile(const config::Profile& p, const std::vector<config::AllowEntry>& allow_entries, const config::Pod& pod,
                const std::string& device) {
    Ruleset rs;
    bool audit = p.mode == config::Mode::audit;
    for (const char* name :
         {kCounterExempt, kCounterAllowed, audit ? kCounterWouldRefuseTcp : kCounterTcpRefused,
          audit ? kCounterWouldRefuseUdp : kCounterUdpRefused, audit ? kCounterWouldDropOther : kCounterOtherDropped})
        rs.counters.push_back(Counter{name});

    Set uids{kExemptUidSet, {FieldType::uid}, true, {}};
    for (uint32_t uid : p.exempt_uids) uids.elements.push_back({{exact(be(uid, 4))}});
    sort_unique(uids.elements);
    std::vector<AllowSet> allow = allow_sets(allow_entries);
    std::vector<Rule> allow_accept = allow_rules(allow);
    if (!uids.elements.empty()) rs.sets.push_back(std::move(uids));
    for (auto& s : allow) rs.sets.push_back(std::move(s.set));

    // First, before any verdict: whatever this chain lets through carries
    // the stamp the netdev chain looks for; what it drops never gets there.
    Rule stamp{{SecmarkSet{kPassedSecmark}}};
    Chain output{"output", BaseHook{Hook::output, 0, Policy::drop}, {}};
    output.rules.push_back(stamp);
    output.rules.push_back(Rule{{OifnameEq{"lo"}, Verdict{VerdictKind::accept}}});
    output.rules.push_back(Rule{{CtStateIn{kCtEstablishedRelated}, Verdict{VerdictKind::accept}}});
    output.rules.push_back(Rule{{Icmpv6TypeRange{kNdFirst, kNdLast}, Verdict{VerdictKind::accept}}});
    if (!p.exempt_uids.empty())
        output.rules.push_back(
            Rule{{SkuidInSet{kExemptUidSet}, CounterRef{kCounterExempt}, Verdict{VerdictKind::accept}}});
    for (const auto& r : allow_accept) output.rules.push_back(r);
    for (auto& r : deny_rules(p, pod)) output.rules.push_back(std::move(r));

    // Forwarded packets come from namespaces nested in the pod: no socket, so
    // no UID exemption, but the same destination allowlist.
    Chain forward{"forward", BaseHook{Hook::forward, 0, Policy::drop}, {}};
    forward.rules.push_back(stamp);
    forward.rules.push_back(Rule{{CtStateIn{kCtEstablishedRelated}, Verdict{VerdictKind::accept}}});
    for (auto& r : allow_accept) forward.rules.push_back(std::move(r));
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
