// rt_tool: the red team's attack tool against a fenced pod (bats/redteam.bats).
// Not part of the product build: compiled by the bats file with g++ directly.
//
//   rt_tool sniff --netns PATH --marker HEX --ready FILE [--timeout-ms T]
//       As root in a test-owned netns (the world): an AF_PACKET capture on every
//       interface there. Exits 0 and prints what carried the marker bytes as soon
//       as a frame arriving there holds them anywhere (headers included), 1 when
//       none did within the timeout.
//
//   rt_tool mld1-query --netns PATH IFNAME
//       As root in a test-owned netns: an MLDv1 general query on IFNAME.
//
//   rt_tool late-echo --netns PATH ADDR PORT DELAY_MS [--ready FILE]
//       As root in a test-owned netns: answers the first datagram to ADDR PORT
//       DELAY_MS late, to its sender, then exits.
//
//   rt_tool attack NAME --netns PATH --uid N [NAME's arguments]
//       Joins the netns, then becomes a workload with no capability at all
//       (no_new_privs, every capability dropped from every set, bounding set
//       emptied, no supplementary groups, real = effective = saved UID and GID N),
//       checks that in /proc/self/status, and runs the attack. Exits 0 when the
//       attack did what it meant to (sent, joined), else the errno it hit.
//       --uid 0 keeps root (controls only).
//
// Attacks:
//   udp-from SRC SPORT ADDR PORT MARKER [WAIT_MS]
//                                   a datagram from SRC:SPORT (with WAIT_MS: and
//                                   an answer within WAIT_MS, or ETIMEDOUT)
//   udp ADDR PORT MARKER            a datagram carrying the marker (the control:
//                                   run as the proxy's UID it must arrive)
//   mld-join IFNAME MARKER [HOLD_MS]
//                                   join the IPv6 group ff0e:MARKER:: on IFNAME
//   mld-sources IFNAME MARKER TEXT [HOLD_MS]
//                                   join ff0e::1 on IFNAME for the sources MARKER
//                                   and TEXT, 16 bytes a source (source-specific
//                                   multicast, MCAST_JOIN_SOURCE_GROUP)
//   mld-solicited IFNAME MARKER [HOLD_MS]
//                                   join the solicited-node-shaped group
//                                   ff02::1:ffM0:M1M2 (the marker's first three bytes)
//   mld-link IFNAME MARKER [HOLD_MS]
//                                   join the link-scope group ff02:MARKER:: on IFNAME
//   srh FIRSTSEG FINAL PORT MARKER  a UDP datagram to FINAL with a segment
//                                   routing header whose first segment is FIRSTSEG
//                                   (IPV6_RTHDR type 4)
//
// MARKER is hex (8 bytes: 16 digits). Usage errors exit 250; 251 when the
// workload could not be made what the threat model says.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr int kUsageExit = 250;
constexpr int kBrokenExit = 251;

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr, "rt_tool: %s (see the head of tests/redteam/rt_tool.cpp)\n", why.c_str());
    std::exit(kUsageExit);
}

[[noreturn]] void fail(const std::string& what, int err) {
    std::fprintf(stderr, "rt_tool: %s: %s (%d)\n", what.c_str(), std::strerror(err), err);
    std::exit(err == 0 ? kUsageExit : err);
}

class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&&) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

std::vector<uint8_t> parse_hex(std::string_view hex) {
    if (hex.empty() || hex.size() % 2 != 0) usage("marker must be an even number of hex digits");
    std::vector<uint8_t> out;
    for (size_t i = 0; i < hex.size(); i += 2) {
        unsigned v = 0;
        if (std::sscanf(std::string(hex.substr(i, 2)).c_str(), "%2x", &v) != 1) usage("bad hex in marker");
        out.push_back(static_cast<uint8_t>(v));
    }
    return out;
}

struct Addr {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_UNSPEC;
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Addr parse_addr(const std::string& spec, long port) {
    Addr a;
    std::string text = spec;
    unsigned scope = 0;
    if (auto pct = spec.find('%'); pct != std::string::npos) {
        text = spec.substr(0, pct);
        scope = if_nametoindex(spec.substr(pct + 1).c_str());
        if (scope == 0) usage("no interface in " + spec);
    }
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        a.len = sizeof(sockaddr_in);
        a.family = AF_INET;
    } else if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        v6->sin6_scope_id = scope;
        a.len = sizeof(sockaddr_in6);
        a.family = AF_INET6;
    } else {
        usage("not an address: " + text);
    }
    return a;
}

long parse_long(const std::string& s) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0') usage("not a number: " + s);
    return v;
}

void enter_netns(const std::string& path) {
    Fd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.get() < 0) fail("open " + path, errno);
    if (setns(ns.get(), CLONE_NEWNET) != 0) fail("setns " + path, errno);
}

// The workload could not be made what the threat model says: never an errno
// an attack could also meet.
[[noreturn]] void broken(const std::string& what, int err) {
    std::fprintf(stderr, "rt_tool: becoming the workload: %s%s%s\n", what.c_str(), err ? ": " : "",
                 err ? std::strerror(err) : "");
    std::exit(kBrokenExit);
}

// What a pod's workload is under the threat model, and nothing more.
void become_workload(unsigned uid) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) broken("no_new_privs", errno);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) broken("clear ambient", errno);
    for (int cap = 0; cap <= 63; ++cap) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) broken("drop bounding", errno);
    }
    if (setgroups(0, nullptr) != 0) broken("setgroups", errno);
    if (setresgid(uid, uid, uid) != 0) broken("setresgid", errno);
    if (setresuid(uid, uid, uid) != 0) broken("setresuid", errno);
    // setresuid away from 0 empties permitted and effective; inheritable too:
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capset, &hdr, data) != 0) broken("capset", errno);
    std::ifstream status("/proc/self/status");
    std::string line;
    int checked = 0;
    std::string want_ids = std::to_string(uid);
    while (std::getline(status, line)) {
        std::istringstream in(line);
        std::string key;
        in >> key;
        if (key == "CapInh:" || key == "CapPrm:" || key == "CapEff:" || key == "CapBnd:" || key == "CapAmb:") {
            std::string v;
            in >> v;
            if (v != "0000000000000000") broken("still holds " + line, 0);
            ++checked;
        } else if (key == "NoNewPrivs:") {
            std::string v;
            in >> v;
            if (v != "1") broken("no_new_privs not set", 0);
            ++checked;
        } else if (key == "Uid:" || key == "Gid:") {
            for (std::string v; in >> v;) {
                if (v != want_ids) broken("ids not all " + want_ids + ": " + line, 0);
            }
            ++checked;
        }
    }
    if (checked != 8) broken("could not read the credentials back", 0);
}

void hold(const std::vector<std::string>& args, size_t at) {
    long ms = args.size() > at ? parse_long(args[at]) : 300;
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

unsigned ifindex(const std::string& name) {
    unsigned i = if_nametoindex(name.c_str());
    if (i == 0) fail("no interface " + name, errno);
    return i;
}

// --- attacks ---------------------------------------------------------------------

int attack_udp(const std::vector<std::string>& a) {
    if (a.size() != 3) usage("udp ADDR PORT MARKER");
    Addr to = parse_addr(a[0], parse_long(a[1]));
    auto marker = parse_hex(a[2]);
    Fd s(socket(to.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    if (sendto(s.get(), marker.data(), marker.size(), 0, to.sa(), to.len) < 0) fail("sendto", errno);
    return 0;
}

in6_addr group_from(const std::vector<uint8_t>& marker) {
    in6_addr g{};
    g.s6_addr[0] = 0xff;
    g.s6_addr[1] = 0x0e;  // global scope: the kernel reports every scope but 0 and 1
    for (size_t i = 0; i < marker.size() && i + 2 < 16; ++i) g.s6_addr[i + 2] = marker[i];
    return g;
}

// udp-from SRC SPORT ADDR PORT MARKER [WAIT_MS]: a datagram from SRC:SPORT;
// with WAIT_MS, waits that long for an answer and fails (ETIMEDOUT) without one.
int attack_udp_from(const std::vector<std::string>& a) {
    if (a.size() != 5 && a.size() != 6) usage("udp-from SRC SPORT ADDR PORT MARKER [WAIT_MS]");
    Addr from = parse_addr(a[0], parse_long(a[1]));
    Addr to = parse_addr(a[2], parse_long(a[3]));
    auto marker = parse_hex(a[4]);
    Fd s(socket(to.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    if (bind(s.get(), from.sa(), from.len) != 0) fail("bind " + a[0] + " port " + a[1], errno);
    if (sendto(s.get(), marker.data(), marker.size(), 0, to.sa(), to.len) < 0) fail("sendto", errno);
    if (a.size() == 6) {
        pollfd p{s.get(), POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(parse_long(a[5]))) != 1) fail("no answer", ETIMEDOUT);
        char buf[512];
        if (recv(s.get(), buf, sizeof buf, 0) < 0) fail("recv", errno);
    }
    return 0;
}

// Joins `group` on IFNAME (a[0]) from a socket of its own, held for HOLD_MS
// (a[at], if given): the kernel reports the membership while it lasts.
int join_and_hold(const std::vector<std::string>& a, const in6_addr& group, size_t at) {
    Fd s(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    ipv6_mreq mr{};
    mr.ipv6mr_multiaddr = group;
    mr.ipv6mr_interface = ifindex(a[0]);
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr) != 0) fail("IPV6_JOIN_GROUP", errno);
    hold(a, at);
    return 0;
}

int attack_mld_join(const std::vector<std::string>& a) {
    if (a.size() < 2) usage("mld-join IFNAME MARKER [HOLD_MS]");
    return join_and_hold(a, group_from(parse_hex(a[1])), 2);
}

int attack_mld_solicited(const std::vector<std::string>& a) {
    if (a.size() < 2) usage("mld-solicited IFNAME MARKER [HOLD_MS]");
    auto marker = parse_hex(a[1]);
    if (marker.size() < 3) usage("mld-solicited needs 3 marker bytes");
    in6_addr group{};
    inet_pton(AF_INET6, "ff02::1:ff00:0", &group);
    std::memcpy(group.s6_addr + 13, marker.data(), 3);
    return join_and_hold(a, group, 2);
}

int attack_mld_link(const std::vector<std::string>& a) {
    if (a.size() < 2) usage("mld-link IFNAME MARKER [HOLD_MS]");
    in6_addr group = group_from(parse_hex(a[1]));
    group.s6_addr[1] = 0x02;  // link scope: ff02::/16, what the MLDv1 rule lets out
    return join_and_hold(a, group, 2);
}

int attack_mld_sources(const std::vector<std::string>& a) {
    if (a.size() < 3) usage("mld-sources IFNAME MARKER TEXT [HOLD_MS]");
    Fd s(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    std::vector<uint8_t> data = parse_hex(a[1]);
    data.insert(data.end(), a[2].begin(), a[2].end());
    data.resize((data.size() + 15) / 16 * 16, 0);
    unsigned idx = ifindex(a[0]);
    for (size_t off = 0; off < data.size(); off += 16) {
        group_source_req r{};
        r.gsr_interface = idx;
        auto* g = reinterpret_cast<sockaddr_in6*>(&r.gsr_group);
        g->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "ff0e::1", &g->sin6_addr);
        auto* src = reinterpret_cast<sockaddr_in6*>(&r.gsr_source);
        src->sin6_family = AF_INET6;
        std::memcpy(src->sin6_addr.s6_addr, data.data() + off, 16);
        if (setsockopt(s.get(), IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, &r, sizeof r) != 0) {
            fail("MCAST_JOIN_SOURCE_GROUP", errno);
        }
    }
    hold(a, 3);
    return 0;
}

int attack_srh(const std::vector<std::string>& a) {
    if (a.size() != 4) usage("srh FIRSTSEG FINAL PORT MARKER");
    in6_addr first{};
    if (inet_pton(AF_INET6, a[0].c_str(), &first) != 1) usage("srh takes IPv6");
    Addr to = parse_addr(a[1], parse_long(a[2]));
    auto marker = parse_hex(a[3]);
    Fd s(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    // Segment list in reverse order: [0] the final destination, [1] the first
    // segment; segments_left 1 puts [1] into the header's destination.
    uint8_t rh[8 + 32] = {};
    rh[0] = 0;  // next header: the kernel fills it in
    rh[1] = 4;  // length in 8-octet units, not counting the first 8
    rh[2] = 4;  // routing type: segment routing
    rh[3] = 1;  // segments left
    rh[4] = 1;  // last entry
    std::memcpy(rh + 8, &reinterpret_cast<const sockaddr_in6*>(to.sa())->sin6_addr, 16);
    std::memcpy(rh + 24, &first, 16);
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_RTHDR, rh, sizeof rh) != 0) fail("IPV6_RTHDR", errno);
    if (sendto(s.get(), marker.data(), marker.size(), 0, to.sa(), to.len) < 0) fail("sendto", errno);
    return 0;
}

// An MLDv1 general query (RFC 2710), as root from a test-owned netns: what an
// MLDv1 querier on the segment sends. A host that hears one answers in MLDv1
// for a while (RFC 3810 section 8.2).
int mld1_query(const std::string& ifname) {
    Fd s(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
    if (s.get() < 0) fail("raw ICMPv6", errno);
    // Hop-by-hop: router alert (type 5, length 2, value 0 = MLD), then PadN.
    uint8_t hbh[8] = {0, 0, 5, 2, 0, 0, 1, 0};
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_HOPOPTS, hbh, sizeof hbh) != 0) fail("IPV6_HOPOPTS", errno);
    int one = 1;
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &one, sizeof one) != 0) fail("hops", errno);
    unsigned idx = ifindex(ifname);
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx) != 0) fail("mcast if", errno);
    uint8_t query[24] = {130, 0, 0, 0, 0x03, 0xe8};  // max response delay 1000 ms, group ::
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
    to.sin6_scope_id = idx;
    if (sendto(s.get(), query, sizeof query, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) fail("sendto", errno);
    return 0;
}

// A UDP server that answers one datagram late, as root in a test-owned netns.
int late_echo(const std::vector<std::string>& a, const std::string& ready) {
    if (a.size() != 3) usage("late-echo --netns PATH ADDR PORT DELAY_MS");
    Addr at = parse_addr(a[0], parse_long(a[1]));
    Fd s(socket(at.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    if (bind(s.get(), at.sa(), at.len) != 0) fail("bind", errno);
    if (!ready.empty()) std::ofstream(ready) << "ready\n";
    char buf[512];
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    ssize_t n = recvfrom(s.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &plen);
    if (n < 0) fail("recvfrom", errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(parse_long(a[2])));
    if (sendto(s.get(), buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&peer), plen) < 0)
        fail("sendto", errno);
    return 0;
}

// --- the capture -------------------------------------------------------------------

int sniff(const std::string& netns, const std::vector<uint8_t>& marker, const std::string& ready, long timeout_ms) {
    enter_netns(netns);
    Fd cap(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    if (cap.get() < 0) fail("AF_PACKET", errno);
    if (!ready.empty()) {
        std::ofstream(ready) << "ready\n";
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<uint8_t> frame(65536);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{cap.get(), POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        sockaddr_ll from{};
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(cap.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&from), &flen);
        if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
        std::string_view hay(reinterpret_cast<const char*>(frame.data()), static_cast<size_t>(n));
        std::string_view needle(reinterpret_cast<const char*>(marker.data()), marker.size());
        auto at = hay.find(needle);
        if (at == std::string_view::npos) continue;
        char ifname[IF_NAMESIZE] = "?";
        if_indextoname(static_cast<unsigned>(from.sll_ifindex), ifname);
        std::printf("caught: %zd bytes on %s, ethertype 0x%04x, marker at offset %zu:", n, ifname,
                    ntohs(from.sll_protocol), at);
        for (ssize_t i = 0; i < n && i < 96; ++i)
            std::printf("%s%02x", i % 16 ? " " : "\n  ", frame[static_cast<size_t>(i)]);
        std::printf("\n");
        return 0;
    }
    std::printf("nothing carrying the marker arrived in %ld ms\n", timeout_ms);
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) usage("no command");
    std::string cmd = argv[1];
    std::vector<std::string> pos;
    std::string netns, ready, marker;
    long timeout_ms = 2000;
    long uid = -1;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(a + " needs a value");
            return argv[++i];
        };
        if (a == "--netns") {
            netns = value();
        } else if (a == "--ready") {
            ready = value();
        } else if (a == "--marker") {
            marker = value();
        } else if (a == "--timeout-ms") {
            timeout_ms = parse_long(value());
        } else if (a == "--uid") {
            uid = parse_long(value());
        } else {
            pos.push_back(a);
        }
    }
    if (netns.empty()) usage("--netns is required");
    if (cmd == "sniff") return sniff(netns, parse_hex(marker), ready, timeout_ms);
    if (cmd == "late-echo") {
        enter_netns(netns);
        return late_echo(pos, ready);
    }
    if (cmd == "mld1-query") {
        if (pos.size() != 1) usage("mld1-query --netns PATH IFNAME");
        enter_netns(netns);
        return mld1_query(pos[0]);
    }
    if (cmd != "attack") usage("unknown command " + cmd);
    if (pos.empty()) usage("attack needs a name");
    if (uid < 0) usage("attack needs --uid");
    std::string name = pos.front();
    pos.erase(pos.begin());
    enter_netns(netns);
    if (uid != 0) become_workload(static_cast<unsigned>(uid));
    if (name == "udp") return attack_udp(pos);
    if (name == "udp-from") return attack_udp_from(pos);
    if (name == "mld-join") return attack_mld_join(pos);
    if (name == "mld-solicited") return attack_mld_solicited(pos);
    if (name == "mld-link") return attack_mld_link(pos);
    if (name == "mld-sources") return attack_mld_sources(pos);
    if (name == "srh") return attack_srh(pos);
    usage("unknown attack " + name);
}
