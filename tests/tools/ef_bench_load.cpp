// ef_bench_load: a bounded load generator for the datapath benchmark. The
// server runs in one netns, the client in a (fenced or unfenced) pod netns;
// both stop after a count or a time limit, whichever comes first.
//
//   ef_bench_load serve ADDR PORT --seconds S
//       TCP listeners (accept and close) on PORT and PORT+1, a UDP sink
//       (reads, never answers) on PORT. PORT+1 is for checking that a fence
//       refuses what it does not allow.
//   ef_bench_load tcp-connect ADDR PORT --count N [--seconds S]
//       N connection setups one after another: connect, then close with a
//       reset (SO_LINGER 0, so no TIME_WAIT piles up). Each SYN is a new
//       flow: it walks the fence's output chain up to the allow-set lookup.
//       The handshake needs no scheduling of the server process.
//   ef_bench_load tcp-bulk ADDR PORT --count N [--seconds S] [--uid U]
//       One connection, N writes of 64 KiB (the server reads to EOF): the
//       established flow of a bulk transfer; an op is one 64 KiB write.
//   ef_bench_load udp-rr ADDR PORT --count N [--seconds S] [--uid U]
//       N request/answer round trips on one connected socket (the server
//       answers datagrams that start with "rr"): an established UDP flow in
//       both directions; an op is one round trip.
//   --uid U: the client drops to that UID first (the proxy's, to measure
//       the exempt path; the workload's, for an allowed flow).
//   ef_bench_load udp-send ADDR PORT --count N [--seconds S]
//       N datagrams on one connected socket, never answered: conntrack keeps
//       the flow unreplied (ct state new), so every packet walks the chain to
//       the allow-set lookup. The rate is the sender's: the veth delivers to
//       the sink's queue within the send call.
//
// The client prints `stat rate_per_s R`, `stat per_op_us U` (wall) and
// `stat cpu_per_op_us C` (its CPU time, user + system, which includes the
// netfilter and veth work done in its send calls, and not the time others
// preempt it) for ef_bench_time, and exits 0 only when all N operations
// succeeded in time.
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Target {
    sockaddr_in addr{};
};

[[noreturn]] void fail(const char* what, int err) {
    std::fprintf(stderr, "ef_bench_load: %s: %s\n", what, std::strerror(err));
    std::exit(err ? err : 1);
}

// All of `text` as a number, or exit 250 (usage) naming it.
template <class T>
T number(const char* text) {
    T v{};
    const char* last = text + std::strlen(text);
    auto [end, ec] = std::from_chars(text, last, v);
    if (ec != std::errc() || end != last) {
        std::fprintf(stderr, "ef_bench_load: not a number: %s\n", text);
        std::exit(250);
    }
    return v;
}

Target parse_target(const char* addr, const char* port) {
    Target t;
    t.addr.sin_family = AF_INET;
    t.addr.sin_port = htons(number<uint16_t>(port));
    if (inet_pton(AF_INET, addr, &t.addr.sin_addr) != 1) fail("not an IPv4 address", EINVAL);
    return t;
}

const sockaddr* sa(const Target& t) { return reinterpret_cast<const sockaddr*>(&t.addr); }

int tcp_listener(const Target& t, uint16_t port) {
    Target at = t;
    at.addr.sin_port = htons(port);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket", errno);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa(at), sizeof at.addr) != 0 || listen(fd, 4096) != 0) fail("tcp bind/listen", errno);
    return fd;
}

int serve(const Target& t, int seconds) {
    uint16_t port = ntohs(t.addr.sin_port);
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (udp < 0) fail("socket", errno);
    if (bind(udp, sa(t), sizeof t.addr) != 0) fail("udp bind", errno);
    // listeners on PORT and PORT+1, the UDP socket, then the accepted
    // connections on PORT, each read to EOF (a bulk transfer) or its reset.
    std::vector<pollfd> fds = {{tcp_listener(t, port), POLLIN, 0},
                               {tcp_listener(t, uint16_t(port + 1)), POLLIN, 0},
                               {udp, POLLIN, 0}};
    std::printf("ready\n");
    if (std::fflush(stdout) != 0) fail("stdout", errno);
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    static char buf[1 << 16];
    while (Clock::now() < deadline) {
        if (poll(fds.data(), fds.size(), 200) <= 0) continue;
        for (int i = 0; i < 2; ++i)
            if (fds[i].revents & POLLIN) {
                int c = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c >= 0 && i == 0) fds.push_back({c, POLLIN, 0});
                else if (c >= 0) close(c);
            }
        if (fds[2].revents & POLLIN) {
            sockaddr_in from{};
            socklen_t len = sizeof from;
            ssize_t n = recvfrom(udp, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
            // Only a request is answered: udp-send's flow stays unreplied.
            if (n >= 2 && buf[0] == 'r' && buf[1] == 'r')
                (void)sendto(udp, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
        for (size_t i = fds.size(); i-- > 3;) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n;
            while ((n = recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
            }
            if (n == 0 || (n < 0 && errno != EAGAIN)) {
                close(fds[i].fd);
                fds.erase(fds.begin() + static_cast<long>(i));
            }
        }
    }
    return 0;
}

// CPU time (user + system) this process has used, in microseconds: unlike
// wall time it does not grow when other work on the machine preempts us.
double cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int client(const std::string& mode, const Target& t, long count, int seconds) {
    int flow = -1;
    if (mode == "udp-send" || mode == "udp-rr") {
        flow = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (flow < 0 || connect(flow, sa(t), sizeof t.addr) != 0) fail("udp socket/connect", errno);
    }
    if (mode == "tcp-bulk") {
        flow = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (flow < 0 || connect(flow, sa(t), sizeof t.addr) != 0) fail("tcp socket/connect", errno);
    }
    // The flow is set up before the clock starts: what is measured is its
    // established packets.
    double cpu_start = cpu_us();
    auto start = Clock::now(), deadline = start + std::chrono::seconds(seconds);
    long done = 0;
    static const char payload[64] = "ef_bench_load";
    static const char request[64] = "rr ef_bench_load";
    static char bulk[1 << 16];
    for (; done < count && Clock::now() < deadline; ++done) {
        if (mode == "tcp-bulk") {
            for (size_t sent = 0; sent < sizeof bulk;) {
                ssize_t n = send(flow, bulk + sent, sizeof bulk - sent, MSG_NOSIGNAL);
                if (n < 0) fail("tcp send", errno);
                sent += static_cast<size_t>(n);
            }
        } else if (mode == "udp-rr") {
            char answer[64];
            if (send(flow, request, sizeof request, 0) < 0) fail("udp send", errno);
            pollfd p{flow, POLLIN, 0};
            if (poll(&p, 1, 2000) != 1 || recv(flow, answer, sizeof answer, 0) < 0) fail("udp answer", ETIMEDOUT);
        } else if (mode == "tcp-connect") {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) fail("socket", errno);
            if (connect(fd, sa(t), sizeof t.addr) != 0) fail("tcp connect", errno);
            linger reset{1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            close(fd);
        } else if (send(flow, payload, sizeof payload, 0) < 0) {
            fail("udp send", errno);
        }
    }
    double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    double cpu = cpu_us() - cpu_start;
    if (done < count) {
        std::fprintf(stderr, "ef_bench_load: only %ld of %ld operations within %d s\n", done, count, seconds);
        return 1;
    }
    std::printf("stat rate_per_s %.0f\nstat per_op_us %.2f\nstat cpu_per_op_us %.2f\n", double(done) / (us / 1e6),
                us / double(done), cpu / double(done));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr,
                     "usage: ef_bench_load serve|tcp-connect|udp-send|tcp-bulk|udp-rr ADDR PORT [--count N] "
                     "[--seconds S] [--uid U]\n");
        return 250;
    }
    std::string mode = argv[1];
    Target t = parse_target(argv[2], argv[3]);
    long count = 1000;
    int seconds = 10;
    std::optional<long> uid;
    for (int i = 4; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--count") count = number<long>(argv[i + 1]);
        else if (k == "--seconds") seconds = number<int>(argv[i + 1]);
        else if (k == "--uid") uid = number<long>(argv[i + 1]);
        else {
            std::fprintf(stderr, "ef_bench_load: unknown option %s\n", k.c_str());
            return 250;
        }
    }
    if (mode == "serve") return serve(t, seconds);
    if (uid) {
        auto u = static_cast<uid_t>(*uid);
        if (setgroups(0, nullptr) != 0 || setresgid(u, u, u) != 0 || setresuid(u, u, u) != 0) fail("setuid", errno);
    }
    if (mode == "tcp-connect" || mode == "udp-send" || mode == "tcp-bulk" || mode == "udp-rr")
        return client(mode, t, count, seconds);
    std::fprintf(stderr, "ef_bench_load: unknown mode %s\n", mode.c_str());
    return 250;
}
