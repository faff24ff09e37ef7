#include "fence/compile.h"

#include <algorithm>

#include <netinet/in.h>

#include "cni/error.h"
#include "cni/version.h"
#include "fence/allow_sets.h"

namespace ef::fence {
namespace {

constexpr const char* kExemptUidSet = "exempt_uids";
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;
// NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)
constexpr uint32_t kCtEstablishedRelated = (1u << 1) | (1u << 2);
// NF_CT_STATE_BIT(IP_CT_NEW)
constexpr uint32_t kCtNew = 1u << 3;

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

// The `refuse` chain, for everything not accepted: logged (rate-limited)
// when the profile asks, then refused fast (TCP reset, ICMP port unreachable
// for UDP) and counted; the rest dropped. An audit profile counts under
// would_* names and accepts instead.
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
    rules.push_back(Rule{{CounterRef{kCounterOtherDropped}, Verdict{VerdictKind::drop}}});
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

// The netdev egress chain of one attachment: frames stamped by the inet
// chains and ARP (the stack's ARP passes no inet hook) leave; the rest is
// counted and dropped by the policy. An audit profile counts it and lets it
// through.
Chain raw_frame_chain(const config::Profile& p, const std::string& device) {
    bool audit = p.mode == config::Mode::audit;
    const char* counter = audit ? kCounterWouldDropRaw : kCounterRawDropped;
    // Priority: a packet leaves only if every base chain on the hook accepts
    // it, so for a drop-policy chain that changes nothing in the packet its
    // place among other egress chains does not matter; filter (0) like the
    // inet chains.
    Chain egress{kEgressChainPrefix + device, BaseHook{Hook::egress, 0, Policy::drop, device}, {}};
    egress.rules.push_back(Rule{{SecmarkEq{kPassedSecmark}, Verdict{VerdictKind::accept}}});
    egress.rules.push_back(Rule{{EtherTypeEq{kEtherTypeArp}, Verdict{VerdictKind::accept}}});
    if (audit) egress.rules.push_back(Rule{{CounterRef{counter}, Verdict{VerdictKind::accept}}});
    else egress.rules.push_back(Rule{{CounterRef{counter}}});
    return egress;
}

// Interface names become parts of chain and set names, which nft writes
// unquoted: letters, digits, '_', '-', '.', at most IFNAMSIZ-1 characters.
void check_ifname(const std::string& ifname) {
    bool ok = !ifname.empty() && ifname.size() < 16 && ifname != "." && ifname != "..";
    for (char c : ifname)
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.');
    if (!ok)
        throw cni::Error(cni::kInvalidEnvironment, "CNI_IFNAME \"" + ifname + "\" cannot be fenced",
                         "egress-fence needs an interface name of 1-15 letters, digits, '_', '-' or '.'");
}

std::string onlink_set_name(const std::string& ifname) { return "onlink6_" + ifname; }

constexpr uint8_t kNdHopLimit = 255;
constexpr const char* kNeighboursChain = "neighbours";

Bytes v6(std::initializer_list<uint8_t> head) {
    Bytes b(16);
    std::copy(head.begin(), head.end(), b.begin());
    return b;
}

Stmt ip6_daddr(Bytes addr, uint8_t len) { return Ip6AddrPrefix{false, addr, len}; }

// IPv6 neighbour discovery (RFC 4861). Only the kernel's own messages get
// here (a process's packet, a raw socket's included, went to `refuse`
// already): hop limit 255, router solicitations to all-routers, and
// solicitations and advertisements to the `neighbours` chain, which lets them
// go to a destination a neighbour can have. Routers' messages (advertisements,
// redirects) are never sent by a pod.
void neighbour_discovery(std::vector<Rule>& rules) {
    constexpr uint8_t kRouterSolicit = 133, kNeighbourSolicit = 135, kNeighbourAdvert = 136;
    const Stmt hop{Ip6HopLimitEq{kNdHopLimit}};
    rules.push_back(Rule{{Icmpv6TypeRange{kRouterSolicit, kRouterSolicit}, hop,
                          ip6_daddr(v6({0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02}), 128),
                          Verdict{VerdictKind::accept}}});
    rules.push_back(Rule{{Icmpv6TypeRange{kNeighbourSolicit, kNeighbourAdvert}, hop, Goto{kNeighboursChain}}});
}

// Where a neighbour can be: link-local unicast, link-scope multicast
// (all-nodes, solicited-node), and on an attachment's link an address of
// one of its on-link prefixes (prevResult), nothing else there. A link the
// CNI did not make (a veth to a netns nested in the pod, set up later by
// someone holding NET_ADMIN in the pod) has prefixes the plugin cannot know:
// its neighbours are let through.
Chain neighbours_chain(const std::vector<Attachment>& attachments) {
    const Stmt accept{Verdict{VerdictKind::accept}};
    Chain c{kNeighboursChain, std::nullopt, {}};
    c.rules.push_back(Rule{{ip6_daddr(v6({0xfe, 0x80}), 10), accept}});
    c.rules.push_back(Rule{{ip6_daddr(v6({0xff, 0x02}), 16), accept}});
    for (const auto& a : attachments) {
        if (!a.onlink6.empty())
            c.rules.push_back(
                Rule{{OifnameEq{a.ifname}, DaddrInSet{IpFamily::ipv6, onlink_set_name(a.ifname), 0}, accept}});
        c.rules.push_back(Rule{{OifnameEq{a.ifname}, Goto{kRefuseChain}}});
    }
    c.rules.push_back(Rule{{accept}});
    return c;
}

// MLD listener reports (RFC 3810 v2, RFC 2710 v1 reports and done messages)
// never leave: the kernel sends them from no socket, but what they say is the
// workload's to choose (any process may join any group, with any source list,
// on eth0, and the report names each group and source to the whole segment).
// Counted apart from the refusals, so the pod's own reports for its
// solicited-node groups are not noise there; an audit profile counts and
// lets them out.
void listener_reports(std::vector<Rule>& rules, bool audit) {
    constexpr uint8_t kMld1Report = 131, kMld1Done = 132, kMld2Report = 143;
    for (auto [lo, hi] : {std::pair{kMld1Report, kMld1Done}, std::pair{kMld2Report, kMld2Report}})
        rules.push_back(Rule{{Icmpv6TypeRange{lo, hi}, CounterRef{kCounterMldDropped},
                              Verdict{audit ? VerdictKind::accept : VerdictKind::drop}}});
}

// An interval set of address prefixes of one family.
Set prefix_set(std::string name, bool v6, const std::vector<config::Cidr>& prefixes) {
    Set s{std::move(name), {v6 ? FieldType::ipv6_addr : FieldType::ipv4_addr}, true, {}};
    const size_t len = v6 ? 16 : 4;
    for (const auto& c : prefixes) {
        if (c.v6 != v6) continue;
        Bytes lo(c.addr.begin(), c.addr.begin() + static_cast<long>(len)), hi = lo;
        for (size_t bit = c.prefix; bit < len * 8; ++bit) hi[bit / 8] |= uint8_t(0x80 >> (bit % 8));
        s.elements.push_back({{FieldRange{lo, hi}}});
    }
    sort_unique(s.elements);
    return s;
}

Set onlink_set(const Attachment& a) { return prefix_set(onlink_set_name(a.ifname), true, a.onlink6); }

// A connection to a port of the kernel's ephemeral range (a new netns's
// net.ipv4.ip_local_port_range, which the admission policy keeps pods from
// changing) is never a connection to a service of the pod: it is a late answer
// to a flow the pod opened that conntrack forgot, and a workload that binds
// that port after the proxy closed it would answer whoever sent it. Such a
// connection is not marked: replies to it are judged like any packet. Put
// ahead of the marking rules when there are any.
Chain with_ephemeral_first(Chain inbound) {
    if (inbound.rules.empty()) return inbound;
    // TCP and UDP only: `th dport` of any other protocol is whatever its
    // header holds there (an ICMP echo's checksum), and an inbound echo
    // request left unmarked that way would have its reply dropped.
    std::vector<Rule> first;
    for (uint8_t proto : {kProtoTcp, kProtoUdp})
        first.push_back(Rule{{CtStateIn{kCtNew}, L4ProtoEq{proto}, ThDportRange{kEphemeralLo, kEphemeralHi},
                              Verdict{VerdictKind::accept}}});
    inbound.rules.insert(inbound.rules.begin(), first.begin(), first.end());
    return inbound;
}

// The `inbound` chain: marks connections that come in from outside the pod
// (the first packet arrives on an interface other than lo, from a source
// routed back through that interface: a nested netns cannot pose as the
// world), from the profile's inboundPeers when it names them (their sets go
// into `sets`).
Chain inbound_chain(const config::Profile& p, std::vector<Set>& sets) {
    Chain inbound{"inbound", BaseHook{Hook::prerouting, 0, Policy::accept, ""}, {}};
    // ct state first: it ends the rule for every packet after a connection's first.
    const std::vector<Stmt> from_outside{CtStateIn{kCtNew}, IifnameNe{"lo"}, FibSaddrIifOif{true}};
    if (!p.inbound_peers) {
        Rule r{from_outside};
        r.stmts.emplace_back(CtMarkOr{kInboundMark});
        inbound.rules.push_back(std::move(r));
        return with_ephemeral_first(std::move(inbound));
    }
    for (bool v6 : {false, true}) {
        Set peers = prefix_set(v6 ? "inbound_peers6" : "inbound_peers4", v6, *p.inbound_peers);
        // A family with no peers listed: none of its connections is answered.
        if (peers.elements.empty()) continue;
        Rule r{from_outside};
        r.stmts.emplace_back(SaddrInSet{v6 ? IpFamily::ipv6 : IpFamily::ipv4, peers.name});
        r.stmts.emplace_back(CtMarkOr{kInboundMark});
        inbound.rules.push_back(std::move(r));
        sets.push_back(std::move(peers));
    }
    return with_ephemeral_first(std::move(inbound));
}

std::vector<Attachment> canonical(std::vector<Attachment> v) {
    std::stable_sort(v.begin(), v.end(), [](const Attachment& a, const Attachment& b) { return a.ifname < b.ifname; });
    v.erase(std::unique(v.begin(), v.end(),
                        [](const Attachment& a, const Attachment& b) { return a.ifname == b.ifname; }),
            v.end());
    for (const auto& a : v) check_ifname(a.ifname);
    return v;
}

}  // namespace

Ruleset compile(const config::Profile& p, const config::Pod& pod, const std::vector<Attachment>& attachments) {
    return compile(p, p.allow, pod, attachments);
}

Ruleset compile(const config::Profile& p, const std::vector<config::AllowEntry>& allow_entries, const config::Pod& pod,
                const std::vector<Attachment>& attachments_in) {
    const std::vector<Attachment> attachments = canonical(attachments_in);
    Ruleset rs;
    bool audit = p.mode == config::Mode::audit;
    for (const char* name :
         {kCounterExempt, kCounterAllowed, audit ? kCounterWouldRefuseTcp : kCounterTcpRefused,
          audit ? kCounterWouldRefuseUdp : kCounterUdpRefused, audit ? kCounterWouldDropOther : kCounterOtherDropped,
          audit ? kCounterWouldDropSpoofed : kCounterSpoofedDropped, kCounterMldDropped})
        rs.counters.push_back(Counter{name});

    Set uids{kExemptUidSet, {FieldType::uid}, true, {}};
    for (uint32_t uid : p.exempt_uids) uids.elements.push_back({{exact(be(uid, 4))}});
    sort_unique(uids.elements);
    std::vector<AllowSet> allow = allow_sets(allow_entries);
    std::vector<Rule> allow_accept = allow_rules(allow);
    if (!uids.elements.empty()) rs.sets.push_back(std::move(uids));
    for (auto& s : allow) rs.sets.push_back(std::move(s.set));
    for (const auto& a : attachments)
        if (!a.onlink6.empty()) rs.sets.push_back(onlink_set(a));

    const Stmt accept{Verdict{VerdictKind::accept}};
    const Stmt refuse{Goto{kRefuseChain}};
    // A spoofed source is dropped in enforce mode; an audit profile counts it
    // and lets the rest of the chain decide (which accepts).
    auto spoofed = [&](std::vector<Stmt> match) {
        match.emplace_back(CounterRef{audit ? kCounterWouldDropSpoofed : kCounterSpoofedDropped});
        if (!audit) match.emplace_back(Verdict{VerdictKind::drop});
        return Rule{std::move(match)};
    };
    // Replies to connections that came into the pod (the `inbound` chain's mark).
    const Rule answer{{CtDirectionEq{CtDir::reply}, CtMarkHas{kInboundMark}, accept}};
    const Rule routing_header{{Ip6ExthdrExists{IPPROTO_ROUTING}, refuse}};

    // First, before any verdict: whatever this chain lets through carries
    // the stamp the netdev chain looks for; what it drops never gets there.
    Rule stamp{{SecmarkSet{kPassedSecmark}}};
    Chain output{"output", BaseHook{Hook::output, 0, Policy::drop, ""}, {}};
    output.rules.push_back(stamp);
    // (a) The proxy first: its established flows cost one lookup. Its
    // loopback traffic goes through the checks below like everyone's.
    if (!p.exempt_uids.empty())
        output.rules.push_back(Rule{{OifnameNe{"lo"}, SkuidInSet{kExemptUidSet}, CounterRef{kCounterExempt}, accept}});
    // A process may send only from the pod's own addresses, on lo too: a
    // foreign source over lo (IPV6_FREEBIND needs no privilege) would plant a
    // conntrack entry whose reply direction points out of the pod. Packets
    // without a process's socket are not judged here: the TCP reset of
    // `reject` for a local SYN comes back on lo with the remote's address.
    output.rules.push_back(spoofed({SkuidAny{}, FibSaddrNotLocal{}}));
    output.rules.push_back(Rule{{OifnameEq{"lo"}, accept}});
    // A routing header (IPV6_RTHDR, segment routing, needs no privilege) makes
    // the packet's destination its first segment: every check below would
    // judge a hop, not where the packet goes. No process but the proxy's
    // sends one.
    output.rules.push_back(routing_header);
    // (c) Replies to connections that came in from outside.
    output.rules.push_back(answer);
    // (b) Allowed destinations.
    for (const auto& r : allow_accept) output.rules.push_back(r);
    // Conntrack state is never a pass for a process's packet: whatever a
    // process of the pod sends that is not allowed above is refused here.
    output.rules.push_back(Rule{{SkuidAny{}, refuse}});
    // (d) Only the kernel's own packets get this far (TCP ACKs and resets of
    // TIME_WAIT and orphaned connections, ICMP errors, neighbour discovery):
    // those of a connection the pod opened that conntrack knows leave.
    output.rules.push_back(Rule{{CtDirectionEq{CtDir::original}, CtStateIn{kCtEstablishedRelated}, accept}});
    neighbour_discovery(output.rules);
    listener_reports(output.rules, audit);
    output.rules.push_back(Rule{{refuse}});

    // Forwarded packets come from namespaces nested in the pod: no socket, so
    // no UID exemption and no conntrack shortcut, but the same destination
    // allowlist; their sources must route back the way they came.
    Chain forward{"forward", BaseHook{Hook::forward, 0, Policy::drop, ""}, {}};
    forward.rules.push_back(stamp);
    forward.rules.push_back(spoofed({FibSaddrIifOif{false}}));
    forward.rules.push_back(routing_header);
    forward.rules.push_back(answer);
    for (auto& r : allow_accept) forward.rules.push_back(std::move(r));
    forward.rules.push_back(Rule{{refuse}});

    Chain inbound = inbound_chain(p, rs.sets);

    Chain refusal{kRefuseChain, std::nullopt, deny_rules(p, pod)};

    rs.chains = {std::move(output), std::move(forward), std::move(inbound), neighbours_chain(attachments),
                 std::move(refusal)};
    NetdevTable nd{{Counter{audit ? kCounterWouldDropRaw : kCounterRawDropped}}, {}};
    for (const auto& a : attachments) nd.chains.push_back(raw_frame_chain(p, a.ifname));
    rs.netdev = std::move(nd);
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

std::vector<Attachment> attachments_of(const Ruleset& rs) {
    std::vector<Attachment> out;
    if (!rs.netdev) return out;
    for (const auto& c : rs.netdev->chains) {
        if (!c.base || c.base->hook != Hook::egress || c.base->device.empty()) continue;
        Attachment a{c.base->device, {}};
        for (const auto& s : rs.sets) {
            if (s.name != onlink_set_name(a.ifname) || s.key != std::vector<FieldType>{FieldType::ipv6_addr}) continue;
            for (const auto& e : s.elements) {
                if (e.fields.size() != 1 || e.fields[0].lo.size() != 16) continue;
                config::Cidr cidr{true, {}, 128};
                std::copy(e.fields[0].lo.begin(), e.fields[0].lo.end(), cidr.addr.begin());
                // The prefix the range spans (the compiler writes whole prefixes).
                const Bytes &lo = e.fields[0].lo, &hi = e.fields[0].hi;
                uint8_t len = 0;
                while (len < 128 && ((lo[len / 8] ^ hi[len / 8]) & (0x80 >> (len % 8))) == 0) ++len;
                cidr.prefix = len;
                a.onlink6.push_back(cidr);
            }
        }
        out.push_back(std::move(a));
    }
    std::sort(out.begin(), out.end(), [](const Attachment& a, const Attachment& b) { return a.ifname < b.ifname; });
    return out;
}

Ruleset without_attachment(Ruleset rs, const std::string& ifname) {
    const std::string set = onlink_set_name(ifname);
    std::erase_if(rs.sets, [&](const Set& s) { return s.name == set; });
    // Its rules: those that look up its on-link set or name its interface.
    for (auto& c : rs.chains)
        std::erase_if(c.rules, [&](const Rule& r) {
            return std::any_of(r.stmts.begin(), r.stmts.end(), [&](const Stmt& s) {
                const auto* d = std::get_if<DaddrInSet>(&s);
                const auto* o = std::get_if<OifnameEq>(&s);
                return (d && d->set == set) || (o && o->name == ifname);
            });
        });
    if (rs.netdev) std::erase_if(rs.netdev->chains, [&](const Chain& c) { return c.base && c.base->device == ifname; });
    rs.meta.digest = digest(rs);
    return rs;
}

}  // namespace ef::fence
