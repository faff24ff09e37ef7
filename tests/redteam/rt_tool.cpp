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
//   udp-opt OPTION ADDR PORT MARKER a datagram from a socket with one more option:
//                                   none, broadcast, mcast-IFNAME, zerocopy,
//                                   sendfile (from a file into a connected socket), or
//                                   fastopen (a TCP SYN carrying the marker)
//   anycast-join IFNAME ADDR        IPV6_JOIN_ANYCAST
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
//   igmp-join IFNAME MARKER [HOLD_MS]
//                                   join the IPv4 group 239.M0.M1.M2 (the marker's
//                                   first three bytes) on IFNAME
//   lsrr FIRSTHOP FINAL PORT MARKER a UDP datagram to FINAL with a loose source
//                                   route through FIRSTHOP (IP_OPTIONS), checksum
//                                   off (SO_NO_CHECK)
//   srh FIRSTSEG FINAL PORT MARKER  a UDP datagram to FINAL with a segment
//                                   routing header whose first segment is FIRSTSEG
//                                   (IPV6_RTHDR type 4)
//   bindtodevice IFNAME ADDR PORT MARKER
//                                   a datagram to ADDR from a socket bound to IFNAME
//   mptcp ADDR PORT MARKER          an MPTCP connection, then the marker
//   uring-udp ADDR PORT MARKER      a datagram sent through io_uring (IORING_OP_SENDMSG)
//   unix-abstract NAME MARKER       connect to an abstract AF_UNIX stream socket
//   veth-into NETNS_PATH            in a user+net namespace of its own, ask for a
//                                   veth whose peer is in NETNS_PATH
//   userns-caps                     in a user namespace of its own, try what
//                                   CAP_NET_RAW / CAP_NET_ADMIN would allow on
//                                   the pod's netns (exit 0: none worked)
//   sysctl-write PATH VALUE         write a /proc/sys file
//
// MARKER is hex (8 bytes: 16 digits). Usage errors exit 250; 251 when the
// workload could not be made what the threat model says.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
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

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

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

// udp-opt OPTION ADDR PORT MARKER: a datagram from a socket with one more
// option: broadcast (SO_BROADCAST), mcast-IFNAME (IP(V6)_MULTICAST_IF), fastopen
// (a TCP SYN with the marker as data, MSG_FASTOPEN), zerocopy (MSG_ZEROCOPY).
int attack_udp_opt(const std::vector<std::string>& a) {
    if (a.size() != 4) usage("udp-opt OPTION ADDR PORT MARKER");
    const std::string& opt = a[0];
    Addr to = parse_addr(a[1], parse_long(a[2]));
    auto marker = parse_hex(a[3]);
    int one = 1;
    if (opt == "fastopen") {
        Fd s(socket(to.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (sendto(s.get(), marker.data(), marker.size(), MSG_FASTOPEN, to.sa(), to.len) < 0)
            fail("sendto fastopen", errno);
        return 0;
    }
    Fd s(socket(to.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    if (opt == "sendfile") {
        // The marker in an unlinked file, spliced into a connected socket.
        char path[] = "/tmp/rt_tool.XXXXXX";
        Fd f(mkstemp(path));
        if (f.get() < 0) fail("mkstemp", errno);
        unlink(path);
        if (write(f.get(), marker.data(), marker.size()) != static_cast<ssize_t>(marker.size())) fail("write", errno);
        if (connect(s.get(), to.sa(), to.len) != 0) fail("connect", errno);
        off_t off = 0;
        if (sendfile(s.get(), f.get(), &off, marker.size()) < 0) fail("sendfile", errno);
        return 0;
    }
    int flags = 0;
    if (opt == "broadcast") {
        if (setsockopt(s.get(), SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0) fail("SO_BROADCAST", errno);
    } else if (opt.starts_with("mcast-")) {
        int idx = static_cast<int>(ifindex(opt.substr(6)));
        if (to.family == AF_INET) {
            ip_mreqn m{};
            m.imr_ifindex = idx;
            if (setsockopt(s.get(), IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m) != 0) fail("IP_MULTICAST_IF", errno);
        } else if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx) != 0) {
            fail("IPV6_MULTICAST_IF", errno);
        }
    } else if (opt == "zerocopy") {
        if (setsockopt(s.get(), SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0) fail("SO_ZEROCOPY", errno);
        flags = MSG_ZEROCOPY;
    } else if (opt != "none") {
        usage("unknown udp-opt " + opt);
    }
    if (sendto(s.get(), marker.data(), marker.size(), flags, to.sa(), to.len) < 0) fail("sendto", errno);
    return 0;
}

int attack_anycast(const std::vector<std::string>& a) {
    if (a.size() != 2) usage("anycast-join IFNAME ADDR");
    Fd s(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ipv6_mreq mr{};
    if (inet_pton(AF_INET6, a[1].c_str(), &mr.ipv6mr_multiaddr) != 1) usage("anycast-join takes IPv6");
    mr.ipv6mr_interface = ifindex(a[0]);
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_JOIN_ANYCAST, &mr, sizeof mr) != 0) fail("IPV6_JOIN_ANYCAST", errno);
    return 0;
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

int attack_mld_join(const std::vector<std::string>& a) {
    if (a.size() < 2) usage("mld-join IFNAME MARKER [HOLD_MS]");
    Fd s(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    ipv6_mreq mr{};
    mr.ipv6mr_multiaddr = group_from(parse_hex(a[1]));
    mr.ipv6mr_interface = ifindex(a[0]);
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr) != 0) fail("IPV6_JOIN_GROUP", errno);
    hold(a, 2);
    return 0;
}

int attack_mld_solicited(const std::vector<std::string>& a) {
    if (a.size() < 2) usage("mld-solicited IFNAME MARKER [HOLD_MS]");
    auto marker = parse_hex(a[1]);
    if (marker.size() < 3) usage("mld-solicited needs 3 marker bytes");
    Fd s(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    ipv6_mreq mr{};
    inet_pton(AF_INET6, "ff02::1:ff00:0", &mr.ipv6mr_multiaddr);
    std::memcpy(mr.ipv6mr_multiaddr.s6_addr + 13, marker.data(), 3);
    mr.ipv6mr_interface = ifindex(a[0]);
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr) != 0) fail("IPV6_JOIN_GROUP", errno);
    hold(a, 2);
    return 0;
}

int attack_mld_link(const std::vector<std::string>& a) {
    if (a.size() < 2) usage("mld-link IFNAME MARKER [HOLD_MS]");
    auto marker = parse_hex(a[1]);
    Fd s(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    ipv6_mreq mr{};
    mr.ipv6mr_multiaddr = group_from(marker);
    mr.ipv6mr_multiaddr.s6_addr[1] = 0x02;  // link scope: ff02::/16, what the MLDv1 rule lets out
    mr.ipv6mr_interface = ifindex(a[0]);
    if (setsockopt(s.get(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr) != 0) fail("IPV6_JOIN_GROUP", errno);
    hold(a, 2);
    return 0;
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

int attack_igmp_join(const std::vector<std::string>& a) {
    if (a.size() < 2) usage("igmp-join IFNAME MARKER [HOLD_MS]");
    auto marker = parse_hex(a[1]);
    if (marker.size() < 3) usage("igmp-join needs 3 marker bytes");
    Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    ip_mreqn mr{};
    uint8_t g[4] = {239, marker[0], marker[1], marker[2]};
    std::memcpy(&mr.imr_multiaddr, g, 4);
    mr.imr_ifindex = static_cast<int>(ifindex(a[0]));
    if (setsockopt(s.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) fail("IP_ADD_MEMBERSHIP", errno);
    hold(a, 2);
    return 0;
}

int attack_lsrr(const std::vector<std::string>& a) {
    if (a.size() != 4) usage("lsrr FIRSTHOP FINAL PORT MARKER");
    in_addr hop{};
    if (inet_pton(AF_INET, a[0].c_str(), &hop) != 1) usage("lsrr takes IPv4");
    Addr to = parse_addr(a[1], parse_long(a[2]));
    auto marker = parse_hex(a[3]);
    Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    // NOP, LSRR (type 131) of one hop plus the slot the kernel fills with the
    // final destination: the header's destination becomes FIRSTHOP.
    uint8_t opt[12] = {IPOPT_NOP, 131, 11, 4};
    std::memcpy(opt + 4, &hop, 4);
    if (setsockopt(s.get(), IPPROTO_IP, IP_OPTIONS, opt, sizeof opt) != 0) fail("IP_OPTIONS", errno);
    // The UDP checksum covers the first hop, not the final destination: off.
    int one = 1;
    if (setsockopt(s.get(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) != 0) fail("SO_NO_CHECK", errno);
    if (sendto(s.get(), marker.data(), marker.size(), 0, to.sa(), to.len) < 0) fail("sendto", errno);
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

int attack_bindtodevice(const std::vector<std::string>& a) {
    if (a.size() != 4) usage("bindtodevice IFNAME ADDR PORT MARKER");
    Addr to = parse_addr(a[1], parse_long(a[2]));
    auto marker = parse_hex(a[3]);
    Fd s(socket(to.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    if (setsockopt(s.get(), SOL_SOCKET, SO_BINDTODEVICE, a[0].c_str(), static_cast<socklen_t>(a[0].size())) != 0) {
        fail("SO_BINDTODEVICE", errno);
    }
    if (sendto(s.get(), marker.data(), marker.size(), 0, to.sa(), to.len) < 0) fail("sendto", errno);
    return 0;
}

int attack_mptcp(const std::vector<std::string>& a) {
    if (a.size() != 3) usage("mptcp ADDR PORT MARKER");
    Addr to = parse_addr(a[0], parse_long(a[1]));
    auto marker = parse_hex(a[2]);
    Fd s(socket(to.family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP));
    if (s.get() < 0) fail("socket mptcp", errno);
    if (connect(s.get(), to.sa(), to.len) != 0) fail("connect", errno);
    if (send(s.get(), marker.data(), marker.size(), 0) < 0) fail("send", errno);
    return 0;
}

int attack_uring_udp(const std::vector<std::string>& a) {
    if (a.size() != 3) usage("uring-udp ADDR PORT MARKER");
    Addr to = parse_addr(a[0], parse_long(a[1]));
    auto marker = parse_hex(a[2]);
    Fd s(socket(to.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    io_uring_params p{};
    int ring = static_cast<int>(syscall(__NR_io_uring_setup, 4, &p));
    if (ring < 0) fail("io_uring_setup", errno);
    Fd ring_fd(ring);
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    void* sq = mmap(nullptr, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_SQ_RING);
    void* cq = mmap(nullptr, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_CQ_RING);
    void* sqes = mmap(nullptr, p.sq_entries * sizeof(io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED, ring,
                      IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) fail("mmap ring", errno);
    iovec iov{marker.data(), marker.size()};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(to.sa());
    msg.msg_namelen = to.len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    auto* sqe = static_cast<io_uring_sqe*>(sqes);
    std::memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_SENDMSG;
    sqe->fd = s.get();
    sqe->addr = reinterpret_cast<uint64_t>(&msg);
    sqe->len = 1;
    auto* base = static_cast<uint8_t*>(sq);
    auto* tail = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
    auto* mask = reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
    auto* array = reinterpret_cast<unsigned*>(base + p.sq_off.array);
    array[*tail & *mask] = 0;
    __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, nullptr, 0) < 0) fail("io_uring_enter", errno);
    auto* cbase = static_cast<uint8_t*>(cq);
    auto* cqe = reinterpret_cast<io_uring_cqe*>(cbase + p.cq_off.cqes);
    int res = cqe[0].res;
    if (res < 0) fail("io_uring sendmsg", -res);
    return 0;
}

int attack_unix_abstract(const std::vector<std::string>& a) {
    if (a.size() != 2) usage("unix-abstract NAME MARKER");
    auto marker = parse_hex(a[1]);
    Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) fail("socket", errno);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (a[0].size() + 1 >= sizeof un.sun_path) usage("name too long");
    std::memcpy(un.sun_path + 1, a[0].data(), a[0].size());
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + a[0].size());
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&un), len) != 0) fail("connect @" + a[0], errno);
    if (send(s.get(), marker.data(), marker.size(), 0) < 0) fail("send", errno);
    return 0;
}

int attack_veth_into(const std::vector<std::string>& a) {
    if (a.size() != 1) usage("veth-into NETNS_PATH");
    Fd target(open(a[0].c_str(), O_RDONLY | O_CLOEXEC));
    if (target.get() < 0) fail("open " + a[0], errno);
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) fail("unshare user+net", errno);
    Fd nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (nl.get() < 0) fail("netlink", errno);
    // RTM_NEWLINK veth "rtv0" here, its peer "rtv1" in the target netns.
    std::vector<uint8_t> buf(512, 0);
    auto* nh = reinterpret_cast<nlmsghdr*>(buf.data());
    nh->nlmsg_type = RTM_NEWLINK;
    nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifinfomsg));
    auto put = [&](uint16_t type, const void* data, size_t len) -> size_t {
        auto* rta = reinterpret_cast<rtattr*>(buf.data() + off);
        rta->rta_type = type;
        rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
        if (len) std::memcpy(RTA_DATA(rta), data, len);
        size_t at = off;
        off += RTA_ALIGN(rta->rta_len);
        return at;
    };
    auto close_nest = [&](size_t at) {
        reinterpret_cast<rtattr*>(buf.data() + at)->rta_len = static_cast<uint16_t>(off - at);
    };
    put(IFLA_IFNAME, "rtv0", 5);
    size_t linkinfo = put(IFLA_LINKINFO, nullptr, 0);
    put(IFLA_INFO_KIND, "veth", 5);
    size_t data = put(IFLA_INFO_DATA, nullptr, 0);
    size_t peer = put(VETH_INFO_PEER, nullptr, 0);
    off += NLMSG_ALIGN(sizeof(ifinfomsg));
    put(IFLA_IFNAME, "rtv1", 5);
    uint32_t fd = static_cast<uint32_t>(target.get());
    put(IFLA_NET_NS_FD, &fd, sizeof fd);
    close_nest(peer);
    close_nest(data);
    close_nest(linkinfo);
    nh->nlmsg_len = static_cast<uint32_t>(off);
    if (send(nl.get(), buf.data(), off, 0) < 0) fail("send RTM_NEWLINK", errno);
    std::vector<uint8_t> ack(4096);
    ssize_t n = recv(nl.get(), ack.data(), ack.size(), 0);
    if (n < 0) fail("recv", errno);
    auto* rh = reinterpret_cast<nlmsghdr*>(ack.data());
    if (rh->nlmsg_type == NLMSG_ERROR) {
        int err = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(rh))->error;
        if (err != 0) fail("RTM_NEWLINK veth with its peer in " + a[0], err);
    }
    return 0;
}

// In a user namespace of its own (still in the pod's netns) the workload holds
// every capability, over nothing the pod's netns is owned by: each privileged
// socket operation it tries is listed with the errno it met (0: it worked).
int attack_userns_caps(const std::vector<std::string>& a) {
    if (!a.empty()) usage("userns-caps takes nothing");
    if (unshare(CLONE_NEWUSER) != 0) fail("unshare user", errno);
    int worked = 0;
    auto report = [&](const char* what, bool ok) {
        std::printf("%s: %s\n", what, ok ? "worked" : std::strerror(errno));
        if (ok) ++worked;
    };
    {
        Fd s(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
        report("AF_PACKET socket", s.get() >= 0);
    }
    {
        Fd s(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP));
        report("raw IPv4 socket", s.get() >= 0);
    }
    Fd u(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int one = 1;
    report("IP_TRANSPARENT", setsockopt(u.get(), IPPROTO_IP, IP_TRANSPARENT, &one, sizeof one) == 0);
    report("SO_MARK", setsockopt(u.get(), SOL_SOCKET, SO_MARK, &one, sizeof one) == 0);
    uint8_t lsrr[8] = {131, 7, 4, 10, 0, 0, 1, IPOPT_END};
    report("IP_OPTIONS LSRR", setsockopt(u.get(), IPPROTO_IP, IP_OPTIONS, lsrr, sizeof lsrr) == 0);
    Fd u6(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    uint8_t hbh[8] = {0, 0, 1, 4, 0, 0, 0, 0};  // PadN
    report("IPV6_HOPOPTS", setsockopt(u6.get(), IPPROTO_IPV6, IPV6_HOPOPTS, hbh, sizeof hbh) == 0);
    {
        Fd x(socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0));
        report("AF_XDP socket", x.get() >= 0);
    }
    {
        Fd t(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
        report("open /dev/net/tun", t.get() >= 0);
    }
    return worked == 0 ? 0 : 1;
}

int attack_sysctl_write(const std::vector<std::string>& a) {
    if (a.size() != 2) usage("sysctl-write PATH VALUE");
    Fd f(open(a[0].c_str(), O_WRONLY | O_CLOEXEC));
    if (f.get() < 0) fail("open " + a[0], errno);
    if (write(f.get(), a[1].data(), a[1].size()) < 0) fail("write " + a[0], errno);
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
    if (name == "udp-opt") return attack_udp_opt(pos);
    if (name == "anycast-join") return attack_anycast(pos);
    if (name == "mld-join") return attack_mld_join(pos);
    if (name == "mld-solicited") return attack_mld_solicited(pos);
    if (name == "mld-link") return attack_mld_link(pos);
    if (name == "mld-sources") return attack_mld_sources(pos);
    if (name == "igmp-join") return attack_igmp_join(pos);
    if (name == "lsrr") return attack_lsrr(pos);
    if (name == "srh") return attack_srh(pos);
    if (name == "bindtodevice") return attack_bindtodevice(pos);
    if (name == "mptcp") return attack_mptcp(pos);
    if (name == "uring-udp") return attack_uring_udp(pos);
    if (name == "unix-abstract") return attack_unix_abstract(pos);
    if (name == "veth-into") return attack_veth_into(pos);
    if (name == "userns-caps") return attack_userns_caps(pos);
    if (name == "sysctl-write") return attack_sysctl_write(pos);
    usage("unknown attack " + name);
}
