// ef_bench_floor: the least a process can do to install a fence, the floor
// egress-fence's ADD is measured against. It reads a prebuilt nf_tables batch
// (written once by ef_bench_batch), enters the netns, sends the batch on a
// NETLINK_NETFILTER socket, waits for the acks and exits: no JSON, no
// validation, no compiling, no encoding, no read-back.
//
//   ef_bench_floor NETNS BATCH_FILE
//
// Prints `mark NAME NS` lines (CLOCK_MONOTONIC) for ef_bench_time: main
// (entered main), ack (every ack received: the kernel has committed) and
// closed (the socket's close() returned; on this kernel close waits for
// nf_tables' deferred transaction cleanup after a commit that freed objects).
// Exits with the errno the kernel reported, or 0.
#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace {

long long now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

int fail(const char* what, int err) {
    std::fprintf(stderr, "ef_bench_floor: %s: %s\n", what, std::strerror(err));
    return err ? err : 1;
}

std::vector<uint8_t> read_file(const char* path) {
    std::vector<uint8_t> data;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return data;
    uint8_t buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) data.insert(data.end(), buf, buf + n);
    close(fd);
    return data;
}

// Messages in the batch that asked for an ack.
size_t acks_owed(const std::vector<uint8_t>& batch) {
    size_t n = 0;
    for (size_t off = 0; off + sizeof(nlmsghdr) <= batch.size();) {
        nlmsghdr h;
        std::memcpy(&h, batch.data() + off, sizeof h);
        if (h.nlmsg_len < sizeof h) break;
        if (h.nlmsg_flags & NLM_F_ACK) ++n;
        off += NLMSG_ALIGN(h.nlmsg_len);
    }
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    long long t_main = now_ns();
    if (argc != 3) {
        std::fprintf(stderr, "usage: ef_bench_floor NETNS BATCH_FILE\n");
        return 250;
    }
    std::vector<uint8_t> batch = read_file(argv[2]);
    if (batch.empty()) return fail("cannot read the batch file", errno);
    int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) return fail("cannot enter the netns", errno);
    close(ns);

    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) return fail("socket", errno);
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return fail("bind", errno);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    // A large batch must fit one datagram; its acks must fit the queue.
    int sndbuf = static_cast<int>(batch.size() + 65536), rcvbuf = 4 << 20;
    if (batch.size() > size_t{128} * 1024) setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);

    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, batch.data(), batch.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
        return fail("sendto", errno);
    size_t owed = acks_owed(batch), got = 0;
    std::vector<uint8_t> rx(size_t{128} * 1024);
    while (got < owed) {
        ssize_t n = recv(fd, rx.data(), rx.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("recv", errno);
        }
        for (size_t off = 0; off + sizeof(nlmsghdr) <= size_t(n);) {
            nlmsghdr h;
            std::memcpy(&h, rx.data() + off, sizeof h);
            if (h.nlmsg_len < sizeof h) break;
            if (h.nlmsg_type == NLMSG_ERROR) {
                nlmsgerr e;
                std::memcpy(&e, rx.data() + off + NLMSG_HDRLEN, sizeof e);
                if (e.error != 0) return fail("nf_tables rejected the batch", -e.error);
                ++got;
            }
            off += NLMSG_ALIGN(h.nlmsg_len);
        }
    }
    long long t_ack = now_ns();
    close(fd);
    long long t_closed = now_ns();
    std::printf("mark main %lld\nmark ack %lld\nmark closed %lld\n", t_main, t_ack, t_closed);
    return 0;
}
