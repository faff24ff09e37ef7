// efprobe: a connectivity probe for scenario tests that exits with the errno
// it saw, so a test can tell "refused by the fence" (111) from "timed out"
// (110) from "dropped by policy" (1, EPERM from the output hook) from "went
// through" (0).
//
//   efprobe connect tcp ADDR PORT [--uid N] [--timeout-ms T] [--source ADDR]
//   efprobe udp ADDR PORT [--uid N] [--expect-reply] [--timeout-ms T]
//   efprobe listen tcp|udp ADDR PORT [--count N] [--ready-file F] [--uid N]
//   efprobe icmp ADDR [--uid N] [--timeout-ms T]
//   efprobe rawip ADDR PROTO [--uid N]
//   efprobe transfer tcp ADDR PORT --bytes N [--close client|server] [--uid N]
//   efprobe nd ADDR [--uid N]   (a neighbour solicitation on a raw socket, hop limit 255)
//
// transfer: connects, sends N bytes, and closes first (client, the default:
// the listener reads to EOF) or waits for the peer to close first (server:
// the listener was started with --close-after N). Exits 0 once all was sent
// (and, for server, the peer's FIN came). `listen tcp` takes --sink
// (read to EOF, then close) or --close-after N (read N bytes, then close).
//
// --uid drops to that uid (and gid) before the socket is created, so the
// socket's owner is what `meta skuid` matches. Usage errors exit 250.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int kUsageExit = 250;

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "efprobe: %s\n"
                 "usage: efprobe connect tcp ADDR PORT [--uid N] [--timeout-ms T]\n"
                 "       efprobe udp ADDR PORT [--uid N] [--expect-reply] [--timeout-ms T]\n"
                 "       efprobe listen tcp|udp ADDR PORT [--count N] [--ready-file F] [--uid N]\n"
                 "       efprobe icmp ADDR [--uid N] [--timeout-ms T]\n"
                 "       efprobe rawip ADDR PROTO [--uid N]\n"
                 "       efprobe transfer tcp ADDR PORT --bytes N [--close client|server] [--uid N]\n"
                 "       efprobe nd ADDR [--uid N]\n",
                 why);
    std::exit(kUsageExit);
}

// Reports what failed and exits with its errno (never 0 for a failure).
[[noreturn]] void fail(const std::string& what, int err) {
    std::fprintf(stderr, "efprobe: %s: %s (%d)\n", what.c_str(), std::strerror(err), err);
    std::exit(err == 0 ? kUsageExit : err);
}

struct Options {
    std::vector<std::string> positional;
    std::optional<unsigned> uid;
    int timeout_ms = 3000;
    bool expect_reply = false;
    long count = 0;  // listen: 0 = serve until killed
    std::string ready_file;
    long bytes = 0;  // transfer
    std::string close = "client";
    bool sink = false;     // listen tcp: read to EOF before closing
    long close_after = 0;  // listen tcp: read this many bytes, then close first
    std::string source;    // connect: bind this address first
};

long parse_number(std::string_view text, long lo, long hi, const char* what) {
    std::string s(text);
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
        usage((std::string("bad ") + what + ": " + s).c_str());
    }
    return v;
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 2; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usage((std::string(a) + " needs a value").c_str());
            return argv[++i];
        };
        if (a == "--uid") {
            o.uid = static_cast<unsigned>(parse_number(value(), 0, 0x7fffffff, "uid"));
        } else if (a == "--timeout-ms") {
            o.timeout_ms = static_cast<int>(parse_number(value(), 1, 600000, "timeout"));
        } else if (a == "--expect-reply") {
            o.expect_reply = true;
        } else if (a == "--count") {
            o.count = parse_number(value(), 0, 1L << 30, "count");
        } else if (a == "--ready-file") {
            o.ready_file = value();
        } else if (a == "--bytes") {
            o.bytes = parse_number(value(), 1, 1L << 34, "bytes");
        } else if (a == "--close") {
            o.close = value();
            if (o.close != "client" && o.close != "server") usage("--close takes client or server");
        } else if (a == "--source") {
            o.source = value();
        } else if (a == "--sink") {
            o.sink = true;
        } else if (a == "--close-after") {
            o.close_after = parse_number(value(), 1, 1L << 34, "bytes");
        } else if (a.starts_with("--")) {
            usage((std::string("unknown option ") + std::string(a)).c_str());
        } else {
            o.positional.emplace_back(a);
        }
    }
    return o;
}

// Drops group and user ids for good, before any socket exists.
void drop_to(std::optional<unsigned> uid) {
    if (!uid) return;
    if (setgroups(0, nullptr) != 0) fail("setgroups", errno);
    if (setresgid(*uid, *uid, *uid) != 0) fail("setresgid", errno);
    if (setresuid(*uid, *uid, *uid) != 0) fail("setresuid", errno);
}

struct Address {
    sockaddr_storage storage{};
    socklen_t len = 0;
    int family = AF_UNSPEC;
    std::string text;

    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Address parse_address(const std::string& text, long port) {
    Address a;
    a.text = text + " port " + std::to_string(port);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        a.len = sizeof(sockaddr_in);
        a.family = AF_INET;
    } else if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        a.len = sizeof(sockaddr_in6);
        a.family = AF_INET6;
    } else {
        usage(("not an IPv4 or IPv6 address: " + text).c_str());
    }
    return a;
}

class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) close(fd_);
    }
    Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd& operator=(Fd&&) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

Fd open_socket(int family, int type, int protocol, const char* what) {
    int fd = socket(family, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) fail(std::string("socket for ") + what, errno);
    return Fd(fd);
}

// Waits for `events` on fd; returns false on timeout.
bool wait_for(int fd, short events, int timeout_ms) {
    pollfd p{fd, events, 0};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n > 0) return true;
        if (n == 0) return false;
        if (errno != EINTR) fail("poll", errno);
    }
}

int cmd_connect(const Options& o) {
    if (o.positional.size() != 3 || o.positional[0] != "tcp") usage("connect takes: tcp ADDR PORT");
    Address to = parse_address(o.positional[1], parse_number(o.positional[2], 1, 65535, "port"));
    drop_to(o.uid);
    Fd s = open_socket(to.family, SOCK_STREAM | SOCK_NONBLOCK, 0, "tcp");
    if (!o.source.empty()) {
        Address from = parse_address(o.source, 0);
        if (bind(s.get(), from.sa(), from.len) != 0) fail("bind " + from.text, errno);
    }
    if (connect(s.get(), to.sa(), to.len) != 0) {
        if (errno != EINPROGRESS) fail("connect " + to.text, errno);
        if (!wait_for(s.get(), POLLOUT, o.timeout_ms)) fail("connect " + to.text, ETIMEDOUT);
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) fail("SO_ERROR", errno);
        if (err != 0) fail("connect " + to.text, err);
    }
    std::printf("connected %s\n", to.text.c_str());
    return 0;
}

int cmd_udp(const Options& o) {
    if (o.positional.size() != 2) usage("udp takes: ADDR PORT");
    Address to = parse_address(o.positional[0], parse_number(o.positional[1], 1, 65535, "port"));
    drop_to(o.uid);
    Fd s = open_socket(to.family, SOCK_DGRAM, 0, "udp");
    // Connected, so an ICMP port-unreachable comes back as ECONNREFUSED.
    if (connect(s.get(), to.sa(), to.len) != 0) fail("connect " + to.text, errno);
    static constexpr char kPayload[] = "efprobe";
    if (send(s.get(), kPayload, sizeof kPayload - 1, 0) < 0) {
        // An output-hook reject drops the datagram (send sees EPERM) and answers
        // with ICMP port-unreachable, which lands on the socket a moment later as
        // ECONNREFUSED. Report that when it comes; a plain drop stays EPERM.
        int send_err = errno;
        if (send_err != EPERM || !wait_for(s.get(), POLLIN | POLLERR, o.timeout_ms)) fail("send " + to.text, send_err);
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        std::fprintf(stderr, "efprobe: send %s: %s, then:\n", to.text.c_str(), std::strerror(send_err));
        fail("udp to " + to.text, err != 0 ? err : send_err);
    }
    if (!wait_for(s.get(), POLLIN, o.timeout_ms)) {
        if (o.expect_reply) fail("no reply from " + to.text, ETIMEDOUT);
        std::printf("sent %s, no error\n", to.text.c_str());
        return 0;
    }
    char buf[512];
    if (recv(s.get(), buf, sizeof buf, 0) < 0) fail("recv " + to.text, errno);
    std::printf("reply from %s\n", to.text.c_str());
    return 0;
}

// Publishes the ready file atomically, so a waiting test never reads it half written.
void announce_ready(const std::string& path, const Address& at) {
    if (path.empty()) return;
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) fail("open " + tmp, errno);
    std::fprintf(f, "%d\n", static_cast<int>(getpid()));
    if (std::fclose(f) != 0) fail("write " + tmp, errno);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename " + path, errno);
    std::fprintf(stderr, "efprobe: listening on %s\n", at.text.c_str());
}

Fd bound_socket(const Address& at, int type) {
    Fd s = open_socket(at.family, type, 0, "listen");
    int one = 1;
    setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (at.family == AF_INET6) {
        setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        // A freshly added address may still be tentative (DAD); bind anyway.
        setsockopt(s.get(), IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
    } else {
        setsockopt(s.get(), IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
    }
    if (bind(s.get(), at.sa(), at.len) != 0) fail("bind " + at.text, errno);
    return s;
}

int cmd_listen(const Options& o) {
    if (o.positional.size() != 3) usage("listen takes: tcp|udp ADDR PORT");
    const std::string& proto = o.positional[0];
    if (proto != "tcp" && proto != "udp") usage("listen protocol must be tcp or udp");
    Address at = parse_address(o.positional[1], parse_number(o.positional[2], 1, 65535, "port"));
    drop_to(o.uid);
    Fd s = bound_socket(at, proto == "tcp" ? SOCK_STREAM : SOCK_DGRAM);
    if (proto == "tcp" && listen(s.get(), 128) != 0) fail("listen " + at.text, errno);
    announce_ready(o.ready_file, at);
    for (long served = 0; o.count == 0 || served < o.count; ++served) {
        if (proto == "tcp") {
            int c = accept4(s.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                fail("accept", errno);
            }
            // --sink: to EOF; --close-after: that many bytes, then this side closes first.
            for (long got = 0; o.sink || got < o.close_after;) {
                char buf[65536];
                ssize_t n = recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                got += n;
            }
            close(c);
        } else {
            char buf[2048];
            sockaddr_storage from{};
            socklen_t len = sizeof from;
            ssize_t n = recvfrom(s.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail("recvfrom", errno);
            }
            sendto(s.get(), buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
    }
    return 0;
}

// Opens an ICMP echo socket: an unprivileged ping socket when the netns's
// ping_group_range allows it, else a raw socket (needs CAP_NET_RAW).
std::pair<Fd, bool> open_icmp(int family) {
    int proto = family == AF_INET ? static_cast<int>(IPPROTO_ICMP) : static_cast<int>(IPPROTO_ICMPV6);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, proto);
    if (fd >= 0) return {Fd(fd), true};
    fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd < 0) fail("icmp socket (ping socket and raw both refused)", errno);
    return {Fd(fd), false};
}

int cmd_icmp(const Options& o) {
    if (o.positional.size() != 1) usage("icmp takes: ADDR");
    Address to = parse_address(o.positional[0], 0);
    drop_to(o.uid);
    auto [s, ping_socket] = open_icmp(to.family);
    const auto id = static_cast<uint16_t>(getpid());
    const uint16_t seq = 1;
    unsigned char packet[16] = {};
    if (to.family == AF_INET) {
        auto* h = reinterpret_cast<icmphdr*>(packet);
        h->type = ICMP_ECHO;
        h->un.echo.id = htons(id);
        h->un.echo.sequence = htons(seq);
        // Ping sockets fill the checksum in; raw ICMPv4 sockets do not.
        uint32_t sum = 0;
        for (size_t i = 0; i < sizeof packet; i += 2) sum += static_cast<uint32_t>(packet[i] << 8 | packet[i + 1]);
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        h->checksum = htons(static_cast<uint16_t>(~sum));
    } else {
        auto* h = reinterpret_cast<icmp6_hdr*>(packet);
        h->icmp6_type = ICMP6_ECHO_REQUEST;
        h->icmp6_id = htons(id);
        h->icmp6_seq = htons(seq);  // the kernel computes ICMPv6 checksums
    }
    if (sendto(s.get(), packet, sizeof packet, 0, to.sa(), to.len) < 0) fail("icmp echo to " + o.positional[0], errno);

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.timeout_ms);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !wait_for(s.get(), POLLIN, static_cast<int>(left.count()))) {
            fail("no echo reply from " + o.positional[0], ETIMEDOUT);
        }
        unsigned char buf[1500];
        ssize_t n = recv(s.get(), buf, sizeof buf, 0);
        if (n < 0) fail("recv echo reply", errno);
        const unsigned char* icmp = buf;
        // Raw ICMPv4 sockets deliver the IP header too.
        if (to.family == AF_INET && !ping_socket) {
            size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
            if (static_cast<size_t>(n) < ihl + 8) continue;
            icmp = buf + ihl;
            n -= static_cast<ssize_t>(ihl);
        }
        if (n < 8) continue;
        bool is_reply = to.family == AF_INET ? icmp[0] == ICMP_ECHOREPLY : icmp[0] == ICMP6_ECHO_REPLY;
        auto got_id = static_cast<uint16_t>(icmp[4] << 8 | icmp[5]);
        // Ping sockets rewrite the id to their own port; they already filter.
        if (is_reply && (ping_socket || got_id == id)) {
            std::printf("echo reply from %s\n", o.positional[0].c_str());
            return 0;
        }
    }
}

int cmd_rawip(const Options& o) {
    if (o.positional.size() != 2) usage("rawip takes: ADDR PROTO");
    Address to = parse_address(o.positional[0], 0);
    int proto = static_cast<int>(parse_number(o.positional[1], 1, 255, "protocol"));
    drop_to(o.uid);
    Fd s = open_socket(to.family, SOCK_RAW, proto, "raw ip");
    static constexpr char kPayload[] = "efprobe raw";
    if (sendto(s.get(), kPayload, sizeof kPayload - 1, 0, to.sa(), to.len) < 0) {
        fail("send protocol " + o.positional[1] + " to " + o.positional[0], errno);
    }
    std::printf("sent protocol %d to %s\n", proto, o.positional[0].c_str());
    return 0;
}

int cmd_transfer(const Options& o) {
    if (o.positional.size() != 3 || o.positional[0] != "tcp") usage("transfer takes: tcp ADDR PORT --bytes N");
    if (o.bytes <= 0) usage("transfer needs --bytes");
    Address to = parse_address(o.positional[1], parse_number(o.positional[2], 1, 65535, "port"));
    drop_to(o.uid);
    Fd s = open_socket(to.family, SOCK_STREAM, 0, "tcp");
    if (connect(s.get(), to.sa(), to.len) != 0) fail("connect " + to.text, errno);
    std::vector<char> chunk(65536, 'x');
    for (long left = o.bytes; left > 0;) {
        ssize_t n = send(s.get(), chunk.data(), static_cast<size_t>(std::min<long>(left, 65536)), MSG_NOSIGNAL);
        if (n < 0) fail("send to " + to.text, errno);
        left -= n;
    }
    if (o.close == "server") {
        // The peer closes first: its FIN arrives as EOF; then this side closes.
        if (!wait_for(s.get(), POLLIN, o.timeout_ms)) fail("no close from " + to.text, ETIMEDOUT);
        char b[16];
        ssize_t n = recv(s.get(), b, sizeof b, 0);
        if (n < 0) fail("recv from " + to.text, errno);
        if (n > 0) fail("unexpected data from " + to.text, EPROTO);
    }
    // Closed here: with --close client this side's FIN goes first, and the
    // kernel finishes the close for the orphaned socket (the ACK of the
    // peer's FIN carries no process socket any more).
    std::printf("sent %ld bytes to %s, closed by the %s first\n", o.bytes, to.text.c_str(), o.close.c_str());
    return 0;
}

// A neighbour solicitation for ADDR sent to ADDR itself, as a raw socket
// can send one anywhere: what the fence must not let out off the link.
int cmd_nd(const Options& o) {
    if (o.positional.size() != 1) usage("nd takes: ADDR");
    Address to = parse_address(o.positional[0], 0);
    if (to.family != AF_INET6) usage("nd takes an IPv6 address");
    drop_to(o.uid);
    Fd s = open_socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6, "raw icmpv6");
    int hops = 255;
    setsockopt(s.get(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops);
    unsigned char packet[24] = {ND_NEIGHBOR_SOLICIT};
    std::memcpy(packet + 8, &reinterpret_cast<const sockaddr_in6*>(to.sa())->sin6_addr, 16);
    if (sendto(s.get(), packet, sizeof packet, 0, to.sa(), to.len) < 0) fail("nd to " + o.positional[0], errno);
    std::printf("sent a neighbour solicitation to %s\n", o.positional[0].c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) usage("missing command");
    std::string_view cmd = argv[1];
    Options o = parse_options(argc, argv);
    if (cmd == "connect") return cmd_connect(o);
    if (cmd == "udp") return cmd_udp(o);
    if (cmd == "listen") return cmd_listen(o);
    if (cmd == "icmp") return cmd_icmp(o);
    if (cmd == "rawip") return cmd_rawip(o);
    if (cmd == "transfer") return cmd_transfer(o);
    if (cmd == "nd") return cmd_nd(o);
    usage(("unknown command " + std::string(cmd)).c_str());
}
