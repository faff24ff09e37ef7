// ef_escape: tries every way out of a fenced pod it knows, as a workload with
// no capability at all, against a listener in a test-owned netns, and says of
// each attempt whether a packet of it got out.
//
//   ef_escape --pod-netns PATH --peer-netns PATH --pod4 A --pod6 A --peer4 A --peer6 A
//             [--nested-netns PATH --nested4 A --nested6 A] [--foreign4 A --foreign6 A]
//             [--workload-uid 1000] [--proxy-uid 1337] [--family 4|6|both] [--markdown]
//
// Runs as root and splits itself (fork + setns) into:
//   - the peer, in --peer-netns: captures every IP packet that arrives for
//     the peer's addresses (AF_PACKET), and serves the proxy's flows (UDP echo
//     on 5454, TCP on 5455 closing first, on 5456 closing after the client);
//   - the proxy, in the pod, as --proxy-uid: makes the flows whose tuples the
//     workload then tries to reuse;
//   - the workload, in the pod, as --workload-uid, with no_new_privs, every
//     capability dropped from every set (checked), for each attempt;
//   - a root process in --nested-netns (a namespace nested in the pod, wired
//     to it by the test) for the forward-chain attempts.
// Every attempt is one combination of family, protocol (TCP, UDP, ICMP echo
// on a ping socket, UDP-Lite and SCTP where the kernel has them), source
// (unbound, the pod's address, a foreign address via IP(V6)_FREEBIND, a
// source in an IP(V6)_PKTINFO control message), reuse of a proxy flow's
// tuple (live, or finished: closed by the proxy or by the peer), and the
// conntrack state it first plants through lo (a looped packet with the
// peer's address as source). Each carries a token or a tuple of its own, so
// the capture tells whose packet arrived.
//
// Verdicts: got-out (a packet of the attempt reached the peer), refused (the
// fence's counters moved and nothing arrived), blocked (the kernel's socket
// layer refused before anything was sent), unavailable (the kernel lacks the
// protocol or the workload the privilege), unexplained (nothing arrived, no
// counter moved, no socket error: the tool cannot tell, so it fails).
// A control row, the proxy's own packet to the peer, must arrive (verdict
// "arrived"), or the capture is broken and the tool fails.
// Exit: 0 nothing got out; 1 something got out; 2 the tool could not decide.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cni/error.h"
#include "netns/netns.h"
#include "nft/nft.h"

namespace {

constexpr int kExitGotOut = 1, kExitUndecided = 2;
constexpr uint16_t kEchoPort = 5454, kServerClosesPort = 5455, kClientClosesPort = 5456;
constexpr int kSettleMs = 300;

// --- small utilities ----------------------------------------------------------

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "ef_escape: %s\n", what.c_str());
    std::exit(kExitUndecided);
}

struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd, o.fd);
        return *this;
    }
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

void enter_netns(const std::string& path) {
    Fd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.fd < 0 || setns(ns.fd, CLONE_NEWNET) != 0) die("cannot enter netns " + path + ": " + std::strerror(errno));
}

struct Addr {
    int family = AF_UNSPEC;
    sockaddr_storage ss{};
    socklen_t len = 0;
    std::string text;
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Addr addr(const std::string& text, uint16_t port) {
    Addr a;
    a.text = text;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a.family = AF_INET;
        a.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.family = AF_INET6;
        a.len = sizeof(sockaddr_in6);
    } else {
        die("not an address: " + text);
    }
    return a;
}

Addr any_addr(int family, uint16_t port) { return addr(family == AF_INET ? "0.0.0.0" : "::", port); }

uint16_t local_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

bool wait_readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1;
}

// A port a child printed; 0 for anything else.
uint16_t port_of(const std::string& text) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    return ec == std::errc() && end != text.data() && v <= 65535 ? static_cast<uint16_t>(v) : 0;
}

// --- the workload's privileges -------------------------------------------------

// Becomes `uid` for good, with no capability in any set and no way to regain
// one by exec: what the fence's threat model says a workload is.
void become_workload(uid_t uid) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs");
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
        die("cannot become uid " + std::to_string(uid));
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2] = {};
    if (syscall(SYS_capset, &h, d) != 0) die("capset");
    if (syscall(SYS_capget, &h, d) != 0) die("capget");
    for (const auto& x : d)
        if (x.effective || x.permitted || x.inheritable) die("the workload still holds a capability");
}

void become_proxy(uid_t uid) {
    if (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
        die("cannot become uid " + std::to_string(uid));
}

// Runs `fn` in a child in `netns`, as `who` says, and returns what it wrote.
std::string in_child(const std::string& netns, const std::function<void()>& drop,
                     const std::function<std::string()>& fn) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(p[0]);
        enter_netns(netns);
        drop();
        std::string out = fn();
        (void)!write(p[1], out.data(), out.size());
        _exit(0);
    }
    close(p[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("a child failed: " + out);
    return out;
}

// --- the peer: capture and servers ------------------------------------------------

struct Seen {
    int proto = 0;  // IPPROTO_*
    std::string src, dst;
    uint16_t sport = 0, dport = 0;
    uint8_t tcp_flags = 0, icmp_type = 0;
    uint16_t echo_id = 0;
    std::string token;  // "EFESC1234" when the payload carries one
};

std::string ntop(int family, const void* a) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, a, buf, sizeof buf);
    return buf;
}

// Parses one IP packet as it arrived at the peer.
std::optional<Seen> parse(const uint8_t* p, size_t n, uint16_t ethertype) {
    Seen s;
    size_t off = 0;
    if (ethertype == ETH_P_IP) {
        if (n < sizeof(iphdr)) return std::nullopt;
        const auto* ip = reinterpret_cast<const iphdr*>(p);
        off = size_t{ip->ihl} * 4;
        s.proto = ip->protocol;
        s.src = ntop(AF_INET, &ip->saddr);
        s.dst = ntop(AF_INET, &ip->daddr);
    } else if (ethertype == ETH_P_IPV6) {
        if (n < sizeof(ip6_hdr)) return std::nullopt;
        const auto* ip = reinterpret_cast<const ip6_hdr*>(p);
        off = sizeof(ip6_hdr);
        s.proto = ip->ip6_nxt;
        s.src = ntop(AF_INET6, &ip->ip6_src);
        s.dst = ntop(AF_INET6, &ip->ip6_dst);
    } else {
        return std::nullopt;
    }
    if (off > n) return std::nullopt;
    const uint8_t* l4 = p + off;
    size_t l4n = n - off, payload = l4n;
    auto be16 = [](const uint8_t* b) { return static_cast<uint16_t>(b[0] << 8 | b[1]); };
    if ((s.proto == IPPROTO_TCP || s.proto == IPPROTO_UDP || s.proto == IPPROTO_UDPLITE || s.proto == IPPROTO_SCTP) &&
        l4n >= 4) {
        s.sport = be16(l4);
        s.dport = be16(l4 + 2);
        payload = s.proto == IPPROTO_TCP ? (l4n >= 20 ? size_t{static_cast<uint8_t>(l4[12] >> 4)} * 4 : l4n) : 8;
        if (s.proto == IPPROTO_TCP && l4n >= 14) s.tcp_flags = l4[13];
    } else if ((s.proto == IPPROTO_ICMP || s.proto == IPPROTO_ICMPV6) && l4n >= 8) {
        s.icmp_type = l4[0];
        s.echo_id = be16(l4 + 4);
        payload = 8;
    }
    if (payload < l4n) {
        std::string_view data(reinterpret_cast<const char*>(l4 + payload), l4n - payload);
        if (auto at = data.find("EFESC"); at != std::string_view::npos) s.token = std::string(data.substr(at, 9));
    }
    return s;
}

std::string serialize(const Seen& s) {
    return std::to_string(s.proto) + " " + s.src + " " + std::to_string(s.sport) + " " + s.dst + " " +
           std::to_string(s.dport) + " " + std::to_string(s.tcp_flags) + " " + std::to_string(s.icmp_type) + " " +
           std::to_string(s.echo_id) + " " + (s.token.empty() ? "-" : s.token) + "\n";
}

std::optional<Seen> deserialize(const std::string& line) {
    std::istringstream in(line);
    Seen s;
    unsigned sport = 0, dport = 0, flags = 0, type = 0, id = 0;
    if (!(in >> s.proto >> s.src >> sport >> s.dst >> dport >> flags >> type >> id >> s.token)) return std::nullopt;
    s.sport = static_cast<uint16_t>(sport);
    s.dport = static_cast<uint16_t>(dport);
    s.tcp_flags = static_cast<uint8_t>(flags);
    s.icmp_type = static_cast<uint8_t>(type);
    s.echo_id = static_cast<uint16_t>(id);
    if (s.token == "-") s.token.clear();
    return s;
}

// The peer's loop: never returns. Writes one line per captured packet.
[[noreturn]] void run_peer(const std::vector<std::string>& peer_addrs, int out) {
    Fd cap(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    if (cap.fd < 0) die("AF_PACKET capture");
    // One echo socket per address: an answer must come from the address the
    // datagram went to, or conntrack never sees the flow answered.
    std::vector<Fd> echo;
    for (const auto& a : peer_addrs) {
        if (a.empty()) continue;
        Addr at = addr(a, kEchoPort);
        Fd u(socket(at.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (bind(u.fd, at.sa(), at.len) != 0) die("peer: bind udp " + a);
        echo.push_back(std::move(u));
    }
    int off = 0, on = 1;
    std::vector<Fd> listeners;
    for (uint16_t port : {kServerClosesPort, kClientClosesPort}) {
        Fd l(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        setsockopt(l.fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        Addr a = any_addr(AF_INET6, port);
        if (bind(l.fd, a.sa(), a.len) != 0 || listen(l.fd, 64) != 0) die("peer: tcp listen");
        listeners.push_back(std::move(l));
    }
    struct Conn {
        Fd fd;
        bool closes_first;
    };
    std::vector<Conn> conns;
    (void)!write(out, "READY\n", 6);
    for (;;) {
        std::vector<pollfd> pf{{cap.fd, POLLIN, 0}};
        for (const auto& u : echo) pf.push_back({u.fd, POLLIN, 0});
        const size_t first_listener = pf.size();
        for (const auto& l : listeners) pf.push_back({l.fd, POLLIN, 0});
        for (const auto& c : conns) pf.push_back({c.fd.fd, POLLIN, 0});
        if (poll(pf.data(), pf.size(), -1) < 0) continue;
        if (pf[0].revents & POLLIN) {
            uint8_t buf[65536];
            sockaddr_ll from{};
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(cap.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n > 0 && from.sll_pkttype != PACKET_OUTGOING)
                if (auto s = parse(buf, static_cast<size_t>(n), ntohs(from.sll_protocol)))
                    for (const auto& a : peer_addrs)
                        if (s->dst == a) {
                            std::string line = serialize(*s);
                            (void)!write(out, line.data(), line.size());
                        }
        }
        for (size_t i = 0; i < echo.size(); ++i) {
            if (!(pf[1 + i].revents & POLLIN)) continue;
            char buf[2048];
            sockaddr_storage from{};
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(echo[i].fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n > 0) (void)sendto(echo[i].fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
        }
        for (size_t i = 0; i < listeners.size(); ++i)
            if (pf[first_listener + i].revents & POLLIN) {
                int c = accept4(listeners[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) conns.push_back({Fd(c), i == 0});
            }
        for (size_t i = conns.size(); i-- > 0;) {
            if (!(pf[first_listener + listeners.size() + i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[2048];
            ssize_t n = recv(conns[i].fd.fd, buf, sizeof buf, 0);
            if (n > 0) {
                (void)!send(conns[i].fd.fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
                if (!conns[i].closes_first) continue;
            }
            conns.erase(conns.begin() + static_cast<long>(i));  // closes it
        }
    }
}

// --- attempts ------------------------------------------------------------------------

struct Options {
    std::string pod_netns, peer_netns, nested_netns;
    std::string pod4, pod6, peer4, peer6, foreign4, foreign6, nested4, nested6;
    uid_t workload = 1000, proxy = 1337;
    bool v4 = true, v6 = true, markdown = false;
};

// What a packet of an attempt looks like at the peer: any field left unset
// matches anything.
struct Signature {
    int proto = 0;
    uint16_t sport = 0, dport = 0, echo_id = 0;
    std::string token;
    bool syn_only = false;  // TCP: a SYN or SYN-ACK (not the proxy's closing ACKs)
    bool matches(const Seen& s) const {
        if (s.proto != proto) return false;
        if (sport && s.sport != sport) return false;
        if (dport && s.dport != dport) return false;
        if (echo_id && s.echo_id != echo_id) return false;
        if (!token.empty() && s.token != token) return false;
        if (syn_only && !(s.tcp_flags & 0x02)) return false;
        return true;
    }
};

struct Attempt {
    Attempt(std::string f, std::string p, std::string src, std::string re, std::string pr, std::string who = "workload")
        : family(std::move(f)),
          proto(std::move(p)),
          source(std::move(src)),
          reuse(std::move(re)),
          prep(std::move(pr)),
          actor(std::move(who)) {}
    std::string family, proto, source, reuse, prep, actor;
    int err = 0;  // the attempt's last socket error (0: the send went out)
    std::string note;
    std::vector<Signature> signatures;
    std::map<std::string, uint64_t> moved;  // counters that grew
    size_t first_seen = 0;                  // packets captured before the attempt are not its own
    std::string kernel_drops;               // why the kernel may drop it before the fence sees it
    bool got_out = false;
    std::string verdict;
};

int icmp_proto(int family) { return family == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6}; }

int proto_number(const std::string& p) {
    if (p == "tcp") return IPPROTO_TCP;
    if (p == "udp") return IPPROTO_UDP;
    if (p == "udplite") return IPPROTO_UDPLITE;
    if (p == "sctp") return IPPROTO_SCTP;
    return 0;
}

std::string token_of(int id) {
    char buf[16];
    (void)std::snprintf(buf, sizeof buf, "EFESC%04d", id % 10000);
    return buf;
}

// The result a child reports: "<errno> <note>".
std::string report(int err, const std::string& note = "") { return std::to_string(err) + " " + note; }

// A socket of `proto` for `family`; -errno when the kernel has none.
int open_socket(int family, const std::string& proto) {
    int type = SOCK_DGRAM, p = 0;
    if (proto == "tcp") type = SOCK_STREAM;
    if (proto == "sctp") type = SOCK_STREAM, p = IPPROTO_SCTP;
    if (proto == "udplite") p = IPPROTO_UDPLITE;
    if (proto == "icmp") p = icmp_proto(family);
    int fd = socket(family, type | SOCK_CLOEXEC, p);
    return fd >= 0 ? fd : -errno;
}

int set_freebind(int fd, int family) {
    int on = 1;
    if (family == AF_INET) return setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &on, sizeof on) == 0 ? 0 : errno;
    return setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof on) == 0 ? 0 : errno;
}

// Sends `token` to `to` from `fd`: a stream socket connects first (the SYN
// is what escapes, or not), a datagram socket sends one datagram, a ping
// socket one echo request. With `pktinfo`, the source address goes in an
// IP(V6)_PKTINFO control message. Returns 0 or the errno.
int send_token(int fd, const std::string& proto, const Addr& to, const std::string& token,
               const std::optional<Addr>& pktinfo = std::nullopt) {
    if (proto == "tcp" || proto == "sctp") {
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        if (connect(fd, to.sa(), to.len) == 0) return 0;
        if (errno != EINPROGRESS) return errno;
        // Half the first retransmission timeout (1 s): one SYN is ever sent,
        // so a refused attempt moves its counter by exactly one.
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, 500) != 1) return ETIMEDOUT;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        return err;
    }
    std::string data = token;
    if (proto == "icmp") {
        // An echo request: type, code, checksum (the kernel fills it and the id), sequence.
        uint8_t hdr[8] = {
            static_cast<uint8_t>(to.family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST), 0, 0, 0, 0, 0, 0, 1};
        data = std::string(reinterpret_cast<const char*>(hdr), sizeof hdr) + token;
    }
    iovec iov{data.data(), data.size()};
    msghdr m{};
    m.msg_name = const_cast<sockaddr*>(to.sa());
    m.msg_namelen = to.len;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
    if (pktinfo) {
        m.msg_control = control;
        auto* c = reinterpret_cast<cmsghdr*>(control);
        if (to.family == AF_INET) {
            m.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
            in_pktinfo pi{};
            pi.ipi_spec_dst = reinterpret_cast<const sockaddr_in*>(pktinfo->sa())->sin_addr;
            std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
        } else {
            m.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
            in6_pktinfo pi{};
            pi.ipi6_addr = reinterpret_cast<const sockaddr_in6*>(pktinfo->sa())->sin6_addr;
            std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
        }
    }
    if (sendmsg(fd, &m, 0) < 0) return errno;
    // A refused datagram comes back as an ICMP error: give it a moment.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

bool is_unavailable(int err) {
    return err == EPROTONOSUPPORT || err == ESOCKTNOSUPPORT || err == EAFNOSUPPORT || err == EPFNOSUPPORT ||
           err == EACCES;
}

class Escape {
  public:
    explicit Escape(Options o) : o_(std::move(o)) {}

    int run() {
        start_peer();
        setup_pod();
        control();
        for (int family : families()) {
            direct(family);
            loopback_spoof(family);
            reuse(family);
            related_error(family);
            if (!o_.nested_netns.empty()) nested(family);
        }
        settle();
        return report_all();
    }

  private:
    std::vector<int> families() const {
        std::vector<int> f;
        if (o_.v4) f.push_back(AF_INET);
        if (o_.v6) f.push_back(AF_INET6);
        return f;
    }
    const std::string& pod(int f) const { return f == AF_INET ? o_.pod4 : o_.pod6; }
    const std::string& peer(int f) const { return f == AF_INET ? o_.peer4 : o_.peer6; }
    std::string foreign(int f) const {
        const std::string& x = f == AF_INET ? o_.foreign4 : o_.foreign6;
        return x.empty() ? peer(f) : x;
    }
    static std::string fam(int f) { return f == AF_INET ? "v4" : "v6"; }
    uint16_t next_port() const { return static_cast<uint16_t>(30000 + next_id_); }

    void start_peer() {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) die("pipe");
        peer_pid_ = fork();
        if (peer_pid_ < 0) die("fork");
        if (peer_pid_ == 0) {
            close(p[0]);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            enter_netns(o_.peer_netns);
            run_peer({o_.peer4, o_.peer6}, p[1]);
        }
        close(p[1]);
        capture_ = Fd(p[0]);
        std::string line;
        char c;
        while (read(capture_.fd, &c, 1) == 1 && c != '\n') line += c;
        if (line != "READY") die("the peer did not start");
        fcntl(capture_.fd, F_SETFL, fcntl(capture_.fd, F_GETFL) | O_NONBLOCK);
    }

    // As containerd does for every pod: ping sockets open to every group.
    void setup_pod() const {
        in_child(
            o_.pod_netns, [] {},
            [] {
                FILE* f = std::fopen("/proc/sys/net/ipv4/ping_group_range", "w");
                if (!f || std::fputs("0 2147483647", f) < 0 || std::fclose(f) != 0) die("ping_group_range");
                return std::string();
            });
    }

    void drain() {
        char buf[65536];
        for (ssize_t n; (n = read(capture_.fd, buf, sizeof buf)) > 0;) pending_.append(buf, static_cast<size_t>(n));
        for (size_t nl; (nl = pending_.find('\n')) != std::string::npos;) {
            if (auto s = deserialize(pending_.substr(0, nl))) seen_.push_back(*s);
            pending_.erase(0, nl + 1);
        }
    }

    void settle() {
        std::this_thread::sleep_for(std::chrono::milliseconds(kSettleMs));
        drain();
    }

    std::map<std::string, uint64_t> counters() const {
        std::map<std::string, uint64_t> out;
        try {
            ef::netns::ScopedNetns inside(o_.pod_netns);
            auto rs = ef::nft::read_ruleset();
            if (!rs) return out;
            for (const auto& c : rs->counters) out[c.name] = c.packets;
            if (rs->netdev)
                for (const auto& c : rs->netdev->counters) out[c.name] = c.packets;
        } catch (const ef::cni::Error& e) {
            die("cannot read the pod's counters: " + e.msg);
        }
        return out;
    }

    // Records one attempt: `fn` runs in the pod as the workload (or as
    // `actor` says) and reports "<errno> <note>".
    void attempt(Attempt a, const std::function<std::string()>& fn, const std::string& netns = "",
                 const std::function<void()>& drop = {}) {
        drain();
        a.first_seen = seen_.size();
        auto before = counters();
        uid_t uid = o_.workload;
        std::function<void()> as_workload = [uid] { become_workload(uid); };
        std::string out = in_child(netns.empty() ? o_.pod_netns : netns, drop ? drop : as_workload, fn);
        auto after = counters();
        for (const auto& [name, v] : after)
            if (v > before[name]) a.moved[name] = v - before[name];
        std::istringstream in(out);
        if (!(in >> a.err)) die("an attempt reported nothing");
        std::getline(in >> std::ws, a.note);
        attempts_.push_back(std::move(a));
    }

    // The control: the proxy's own datagram to the peer must arrive, or the
    // capture (and every "refused" below) means nothing.
    void control() {
        for (int f : families()) {
            int id = next_id_++;
            uint16_t port = next_port();
            Attempt a{fam(f), "udp", "unbound", "-", "-", "proxy (control)"};
            a.signatures.push_back({IPPROTO_UDP, 0, port, 0, token_of(id)});
            Addr to = addr(peer(f), port);
            std::string tok = token_of(id);
            uid_t uid = o_.proxy;
            attempt(
                a,
                [f, to, tok] {
                    int fd = open_socket(f, "udp");
                    return report(fd < 0 ? -fd : send_token(fd, "udp", to, tok));
                },
                "", [uid] { become_proxy(uid); });
        }
    }

    // Straight at the peer, from each kind of source.
    void direct(int f) {
        for (const std::string proto : {"tcp", "udp", "icmp", "udplite", "sctp"}) {
            std::vector<std::string> sources = {"unbound", "pod address", "foreign (freebind)"};
            if (proto == "udp" || proto == "icmp" || proto == "udplite") {
                sources.emplace_back("pod address (pktinfo)");
                sources.emplace_back("foreign (pktinfo, freebind)");
            }
            for (const auto& source : sources) {
                int id = next_id_++;
                uint16_t port = next_port();
                Attempt a{fam(f), proto, source, "-", "-"};
                std::string tok = token_of(id);
                if (proto == "icmp") a.signatures.push_back({icmp_proto(f), 0, 0, 0, tok});
                else if (proto == "tcp" || proto == "sctp")
                    a.signatures.push_back({proto_number(proto), 0, port, 0, "", proto == "tcp"});
                else a.signatures.push_back({proto_number(proto), 0, port, 0, tok});
                Addr to = addr(peer(f), port);
                Addr own = addr(pod(f), 0), alien = addr(foreign(f), 0);
                attempt(a, [=] {
                    int fd = open_socket(f, proto);
                    if (fd < 0) return report(-fd, "no socket");
                    bool pkt = source.find("pktinfo") != std::string::npos;
                    bool free = source.find("freebind") != std::string::npos;
                    if (free)
                        if (int e = set_freebind(fd, f)) return report(e, "freebind");
                    const Addr& src = source.starts_with("foreign") ? alien : own;
                    if (source != "unbound" && !pkt && bind(fd, src.sa(), src.len) != 0) return report(errno, "bind");
                    return report(send_token(fd, proto, to, tok, pkt ? std::optional<Addr>(src) : std::nullopt));
                });
            }
        }
    }

    // A looped packet with the peer's address as its source plants a
    // conntrack entry peer:X -> pod:Y; then the workload answers in that
    // entry's reply direction (which points out of the pod).
    void loopback_spoof(int f) {
        for (const std::string proto : {"udp", "tcp", "icmp"}) {
            int id = next_id_++;
            uint16_t x = next_port(), y = static_cast<uint16_t>(x + 5000);
            std::string tok = token_of(id);
            Attempt a{fam(f), proto, "pod address", "-", "looped entry from the peer's address"};
            if (proto == "udp") a.signatures.push_back({IPPROTO_UDP, y, x, 0, tok});
            if (proto == "tcp") a.signatures.push_back({IPPROTO_TCP, y, x, 0, "", true});
            if (proto == "icmp") a.signatures.push_back({icmp_proto(f), 0, 0, 0, tok});
            Addr spoofed = addr(peer(f), x), own = addr(pod(f), y), peer_x = addr(peer(f), x);
            attempt(a, [=] {
                int plant = open_socket(f, proto);
                if (plant < 0) return report(-plant, "no socket");
                if (int e = set_freebind(plant, f)) return report(e, "freebind");
                if (bind(plant, spoofed.sa(), spoofed.len) != 0) return report(errno, "bind to the peer's address");
                if (proto == "icmp") {
                    // The pod's own kernel answers the looped echo request to the peer.
                    int e = send_token(plant, "icmp", addr(own.text, 0), tok);
                    return report(e, "looped echo request");
                }
                int answer = open_socket(f, proto);
                int on = 1;
                setsockopt(answer, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
                if (bind(answer, own.sa(), own.len) != 0) return report(errno, "bind the answering socket");
                if (proto == "tcp") {
                    listen(answer, 1);
                    int e = send_token(plant, "tcp", own,
                                       "");  // the looped SYN; the listener's SYN-ACK goes to the peer
                    return report(e == 0 ? 0 : e, "looped SYN");
                }
                int planted = send_token(plant, "udp", own, "prep");
                int e = send_token(answer, "udp", peer_x, tok);
                return report(e, "planted: " + std::string(planted ? std::strerror(planted) : "sent"));
            });
        }
    }

    // An ICMP error about the proxy's flow would be conntrack's "related":
    // only a raw socket can forge one, and the workload cannot open it.
    void related_error(int f) {
        int id = next_id_++;
        std::string tok = token_of(id);
        Attempt a{fam(f), "icmp error", "pod address", "the proxy's udp flow", "-"};
        a.signatures.push_back({icmp_proto(f), 0, 0, 0, tok});
        attempt(a, [=] {
            int fd = socket(f, SOCK_RAW | SOCK_CLOEXEC, icmp_proto(f));
            if (fd < 0) return report(errno, "no socket");
            return report(0, "a raw socket opened");
        });
    }

    // The proxy makes a flow; the workload then sends on its tuple.
    void reuse(int f) {
        struct Case {
            std::string proto, how;
        };
        for (const Case& c : std::vector<Case>{{"udp", "finished"},
                                               {"udp", "finished, SO_REUSEADDR+SO_REUSEPORT"},
                                               {"udp", "live, SO_REUSEADDR+SO_REUSEPORT"},
                                               {"tcp", "finished, closed by the proxy (TIME_WAIT)"},
                                               {"tcp", "finished, closed by the peer"},
                                               {"tcp", "live, SO_REUSEADDR"},
                                               {"icmp", "finished (same echo id)"}}) {
            int id = next_id_++;
            std::string tok = token_of(id);
            bool live = c.how.starts_with("live");
            uint16_t dport = c.proto == "udp"                                 ? kEchoPort
                             : c.how.find("by the peer") != std::string::npos ? kServerClosesPort
                                                                              : kClientClosesPort;
            // The proxy's flow, in the pod as the proxy UID.
            int hold[2] = {-1, -1};
            if (live && pipe2(hold, O_CLOEXEC) != 0) die("pipe");
            uid_t puid = o_.proxy;
            Addr to = addr(peer(f), dport);
            std::string proto = c.proto;
            pid_t holder = -1;
            uint16_t sport = 0;
            auto flow = [=]() -> std::string {
                int fd = open_socket(f, proto);
                if (fd < 0) return "0";
                if (proto == "icmp") {
                    send_token(fd, "icmp", addr(to.text, 0), "PROXY0000");
                    wait_readable(fd, 1000);
                    uint16_t idn = local_port(fd);
                    return std::to_string(idn);
                }
                if (proto == "udp") {
                    (void)connect(fd, to.sa(), to.len);
                    send(fd, "PROXY", 5, 0);
                    wait_readable(fd, 1000);
                } else {
                    send_token(fd, "tcp", to, "");
                    send(fd, "PROXY", 5, MSG_NOSIGNAL);
                    wait_readable(fd, 1000);
                    char b[16];
                    (void)recv(fd, b, sizeof b, 0);
                    if (dport == kServerClosesPort) {
                        wait_readable(fd, 1000);  // the peer's FIN
                        (void)recv(fd, b, sizeof b, 0);
                    }
                }
                return std::to_string(local_port(fd));
            };
            if (!live) {
                std::string printed = in_child(
                    o_.pod_netns, [puid] { become_proxy(puid); }, flow);
                sport = port_of(printed);  // the flow's socket closed as the child exited
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            } else {
                int portpipe[2];
                if (pipe2(portpipe, O_CLOEXEC) != 0) die("pipe");
                holder = fork();
                if (holder == 0) {
                    close(hold[1]);
                    close(portpipe[0]);
                    enter_netns(o_.pod_netns);
                    become_proxy(puid);
                    std::string p = flow() + "\n";
                    (void)!write(portpipe[1], p.data(), p.size());
                    char b;
                    (void)!read(hold[0], &b, 1);  // the flow stays open until the parent closes the pipe
                    _exit(0);
                }
                close(hold[0]);
                close(portpipe[1]);
                std::string p;
                char b;
                while (read(portpipe[0], &b, 1) == 1 && b != '\n') p += b;
                close(portpipe[0]);
                sport = port_of(p);
            }
            if (sport == 0) die("the proxy's " + c.proto + " flow did not start");
            Attempt a{fam(f), c.proto, "pod address", "the proxy's " + c.proto + " flow, " + c.how, "-"};
            if (c.proto == "icmp") a.signatures.push_back({icmp_proto(f), 0, 0, 0, tok});
            else if (c.proto == "udp") a.signatures.push_back({IPPROTO_UDP, sport, dport, 0, tok});
            else a.signatures.push_back({IPPROTO_TCP, sport, dport, 0, "", true});
            Addr own = addr(pod(f), sport);
            std::string how = c.how;
            attempt(a, [=] {
                int fd = open_socket(f, proto);
                if (fd < 0) return report(-fd, "no socket");
                int on = 1;
                if (how.find("SO_REUSEADDR") != std::string::npos)
                    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
                if (how.find("SO_REUSEPORT") != std::string::npos)
                    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
                if (bind(fd, own.sa(), own.len) != 0) return report(errno, "bind the proxy's port");
                if (proto == "icmp") return report(send_token(fd, "icmp", addr(to.text, 0), tok));
                return report(send_token(fd, proto, to, tok));
            });
            if (live) {
                close(hold[1]);
                waitpid(holder, nullptr, 0);
            }
        }
    }

    // From a namespace nested in the pod, as root there (it owns that
    // netns): forwarded straight, with a forged source riding the proxy's
    // finished flow, and planting an inbound-looking entry for the workload.
    void nested(int f) {
        const std::string& from = f == AF_INET ? o_.nested4 : o_.nested6;
        if (from.empty()) return;
        auto root = [] {};
        {
            int id = next_id_++;
            uint16_t port = next_port();
            std::string tok = token_of(id);
            Attempt a{fam(f), "udp", "nested netns", "-", "-", "root in a nested netns"};
            a.signatures.push_back({IPPROTO_UDP, 0, port, 0, tok});
            Addr to = addr(peer(f), port);
            attempt(
                a, [=] { return report(send_token(open_socket(f, "udp"), "udp", to, tok)); }, o_.nested_netns, root);
        }
        {
            // The proxy's finished UDP flow, then the nested root sends on its
            // exact tuple (the pod's address as source: IP_TRANSPARENT as root).
            uid_t puid = o_.proxy;
            Addr to = addr(peer(f), kEchoPort);
            std::string printed = in_child(
                o_.pod_netns, [puid] { become_proxy(puid); },
                [&] {
                    int fd = open_socket(f, "udp");
                    (void)connect(fd, to.sa(), to.len);
                    send(fd, "PROXY", 5, 0);
                    wait_readable(fd, 1000);
                    return std::to_string(local_port(fd));
                });
            uint16_t sport = port_of(printed);
            int id = next_id_++;
            std::string tok = token_of(id);
            Attempt a{fam(f),
                      "udp",
                      "the pod's address (IP_TRANSPARENT)",
                      "the proxy's udp flow, finished",
                      "-",
                      "root in a nested netns"};
            // IPv4 input drops a packet that arrives with a local source
            // (martian) before any forward hook; IPv6 leaves it to the fence.
            if (f == AF_INET) a.kernel_drops = "martian source, dropped by IPv4 input";
            a.signatures.push_back({IPPROTO_UDP, sport, kEchoPort, 0, tok});
            Addr own = addr(pod(f), sport);
            attempt(
                a,
                [=] {
                    int fd = open_socket(f, "udp");
                    int on = 1;
                    setsockopt(fd, f == AF_INET ? SOL_IP : SOL_IPV6, f == AF_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT,
                               &on, sizeof on);
                    if (bind(fd, own.sa(), own.len) != 0) return report(errno, "bind the pod's address");
                    return report(send_token(fd, "udp", to, tok));
                },
                o_.nested_netns, root);
        }
        {
            // The nested root sends peer:X -> pod:Y (a forged inbound entry),
            // then the workload answers pod:Y -> peer:X. Y lies below the
            // ephemeral range, which the inbound chain accepts unmarked before
            // judging the source: this entry must meet the marking rule.
            int id = next_id_++;
            uint16_t x = next_port(), y = static_cast<uint16_t>(x - 10000);
            std::string tok = token_of(id);
            Addr spoofed = addr(peer(f), x), own = addr(pod(f), y);
            in_child(o_.nested_netns, root, [=] {
                int fd = open_socket(f, "udp");
                int on = 1;
                setsockopt(fd, f == AF_INET ? SOL_IP : SOL_IPV6, f == AF_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT, &on,
                           sizeof on);
                (void)bind(fd, spoofed.sa(), spoofed.len);
                send_token(fd, "udp", own, "prep");
                return std::string();
            });
            Attempt a{fam(f), "udp", "pod address", "-", "entry forged from a nested netns with the peer's address"};
            a.signatures.push_back({IPPROTO_UDP, y, x, 0, tok});
            attempt(a, [=] {
                int fd = open_socket(f, "udp");
                if (bind(fd, own.sa(), own.len) != 0) return report(errno, "bind");
                return report(send_token(fd, "udp", spoofed, tok));
            });
        }
    }

    void decide(Attempt& a) {
        for (size_t i = a.first_seen; i < seen_.size(); ++i)
            for (const auto& sig : a.signatures)
                if (sig.matches(seen_[i])) a.got_out = true;
        bool counted = false;
        for (const auto& [name, n] : a.moved)
            if (name != "exempt_accepted" && name != "allowed_accepted" && name != "mld_dropped") counted = true;
        if (a.got_out) a.verdict = "got-out";
        else if (counted) a.verdict = "refused";
        else if (is_unavailable(a.err) || (a.err == EPERM && a.note == "no socket")) a.verdict = "unavailable";
        else if (!a.kernel_drops.empty()) {
            a.verdict = "blocked";
            a.note += (a.note.empty() ? "" : "; ") + a.kernel_drops;
        } else if (a.err == EINVAL || a.err == EADDRINUSE || a.err == EADDRNOTAVAIL || a.err == ENETUNREACH ||
                   a.err == EHOSTUNREACH || a.err == EOPNOTSUPP)
            a.verdict = "blocked";
        else a.verdict = "unexplained";
    }

    int report_all() {
        bool undecided = false;
        if (o_.markdown) {
            std::printf("| family | protocol | source | reuse | conntrack prepared | actor | verdict | detail |\n");
            std::printf("|---|---|---|---|---|---|---|---|\n");
        }
        for (auto& a : attempts_) {
            decide(a);
            bool control = a.actor.find("control") != std::string::npos;
            std::string detail;
            for (const auto& [name, n] : a.moved)
                // The markdown matrix is committed: only what the attempt
                // itself moved, not the pod's own MLD reports meanwhile.
                if (!o_.markdown || name != "mld_dropped") detail += name + " +" + std::to_string(n) + " ";
            detail += a.err ? std::string(std::strerror(a.err)) : "sent";
            if (!a.note.empty()) detail += " (" + a.note + ")";
            if (control) a.verdict = a.got_out ? "arrived" : "CAPTURE BROKEN";
            if (a.verdict == "CAPTURE BROKEN" || a.verdict == "unexplained") undecided = true;
            if (o_.markdown)
                std::printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", a.family.c_str(), a.proto.c_str(),
                            a.source.c_str(), a.reuse.c_str(), a.prep.c_str(), a.actor.c_str(), a.verdict.c_str(),
                            detail.c_str());
            else
                std::printf("%-3s %-8s %-30s reuse=%-55s prep=%-40s actor=%-24s %-12s %s\n", a.family.c_str(),
                            a.proto.c_str(), a.source.c_str(), a.reuse.c_str(), a.prep.c_str(), a.actor.c_str(),
                            a.verdict.c_str(), detail.c_str());
        }
        int got = 0;
        for (const auto& a : attempts_) got += a.got_out && a.actor.find("control") == std::string::npos;
        (void)std::fflush(stdout);
        std::fprintf(stderr, "ef_escape: %zu attempts, %d got out\n", attempts_.size(), got);
        kill(peer_pid_, SIGKILL);
        waitpid(peer_pid_, nullptr, 0);
        if (got) return kExitGotOut;
        return undecided ? kExitUndecided : 0;
    }

    Options o_;
    pid_t peer_pid_ = -1;
    Fd capture_;
    std::string pending_;
    std::vector<Seen> seen_;
    std::vector<Attempt> attempts_;
    int next_id_ = 0;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        if (a == "--pod-netns") o.pod_netns = value();
        else if (a == "--peer-netns") o.peer_netns = value();
        else if (a == "--nested-netns") o.nested_netns = value();
        else if (a == "--pod4") o.pod4 = value();
        else if (a == "--pod6") o.pod6 = value();
        else if (a == "--peer4") o.peer4 = value();
        else if (a == "--peer6") o.peer6 = value();
        else if (a == "--foreign4") o.foreign4 = value();
        else if (a == "--foreign6") o.foreign6 = value();
        else if (a == "--nested4") o.nested4 = value();
        else if (a == "--nested6") o.nested6 = value();
        else if (a == "--workload-uid") o.workload = static_cast<uid_t>(std::stoul(value()));
        else if (a == "--proxy-uid") o.proxy = static_cast<uid_t>(std::stoul(value()));
        else if (a == "--markdown") o.markdown = true;
        else if (a == "--family") {
            std::string f = value();
            o.v4 = f == "4" || f == "both";
            o.v6 = f == "6" || f == "both";
            if (!o.v4 && !o.v6) die("--family takes 4, 6 or both");
        } else die("unknown option " + a);
    }
    if (o.pod_netns.empty() || o.peer_netns.empty()) die("--pod-netns and --peer-netns are required");
    if ((o.v4 && (o.pod4.empty() || o.peer4.empty())) || (o.v6 && (o.pod6.empty() || o.peer6.empty())))
        die("each family needs --podN and --peerN");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (geteuid() != 0) die("run as root (it enters namespaces and drops to the workload's UID itself)");
        return Escape(parse(argc, argv)).run();
    } catch (const std::exception& e) {
        die(e.what());
    }
}
