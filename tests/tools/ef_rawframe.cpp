// ef_rawframe: sends and counts hand-built Ethernet frames, for the raw-socket
// bypass scenarios (DESIGN.md "Raw frames"). A workload with CAP_NET_RAW can
// put frames on the wire that never pass the inet hooks; this tool is that
// workload, and the listener on the peer is how a test sees what arrived.
//
//   ef_rawframe send IFNAME --dst-mac MAC --src-ip IP --dst-ip IP [--proto udp|tcp]
//       [--dport N] [--count N] [--qdisc-bypass] [--mark N] [--priority N] [--xdp]
//   ef_rawframe listen IFNAME --dst-ip IP [--dport N] [--timeout-ms T] [--ready-file F]
//
// send: Ethernet + IPv4/IPv6 (by the address family) + UDP, or a TCP SYN, with
// valid checksums and a payload tagged "ef-rawframe", on an AF_PACKET socket
// bound to IFNAME (source MAC: IFNAME's own). --qdisc-bypass sets
// PACKET_QDISC_BYPASS (the frame skips the qdisc layer), --mark/--priority set
// SO_MARK/SO_PRIORITY on the socket, --xdp sends through an AF_XDP socket in
// copy mode instead. Prints "sent N refused M" (M: dropped at the egress hook,
// seen as ENOBUFS) and exits 0 unless a system call failed otherwise.
// listen: counts frames on IFNAME (AF_PACKET, every protocol) addressed to
// --dst-ip (and --dport) that carry the tag, for --timeout-ms, then prints
// "received N" and exits 0. Usage errors exit 250, system errors exit 1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
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

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

namespace {

constexpr int kUsageExit = 250;
constexpr std::string_view kTag = "ef-rawframe";

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "ef_rawframe: %s\n"
                 "usage: ef_rawframe send IFNAME --dst-mac MAC --src-ip IP --dst-ip IP [--proto udp|tcp]\n"
                 "           [--dport N] [--count N] [--qdisc-bypass] [--mark N] [--priority N] [--xdp]\n"
                 "       ef_rawframe listen IFNAME --dst-ip IP [--dport N] [--timeout-ms T] [--ready-file F]\n",
                 why.c_str());
    std::exit(kUsageExit);
}

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "ef_rawframe: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

struct Options {
    std::string mode, ifname;
    std::string dst_mac, src_ip, dst_ip, ready_file;
    bool tcp = false, qdisc_bypass = false, xdp = false;
    uint16_t dport = 9;
    long count = 1;
    int timeout_ms = 1000;
    std::optional<uint32_t> mark, priority;
};

long number(std::string_view s, long lo, long hi, const char* what) {
    std::string t(s);
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(t.c_str(), &end, 0);
    if (t.empty() || *end || errno || v < lo || v > hi) usage(std::string("bad ") + what + ": " + t);
    return v;
}

Options parse(int argc, char** argv) {
    if (argc < 3) usage("need a mode and an interface");
    Options o;
    o.mode = argv[1];
    o.ifname = argv[2];
    for (int i = 3; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usage(std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "--dst-mac") o.dst_mac = value();
        else if (a == "--src-ip") o.src_ip = value();
        else if (a == "--dst-ip") o.dst_ip = value();
        else if (a == "--ready-file") o.ready_file = value();
        else if (a == "--dport") o.dport = static_cast<uint16_t>(number(value(), 1, 65535, "port"));
        else if (a == "--count") o.count = number(value(), 1, 100000, "count");
        else if (a == "--timeout-ms") o.timeout_ms = static_cast<int>(number(value(), 1, 600000, "timeout"));
        else if (a == "--mark") o.mark = static_cast<uint32_t>(number(value(), 0, 0xffffffffL, "mark"));
        else if (a == "--priority") o.priority = static_cast<uint32_t>(number(value(), 0, 0xffffffffL, "priority"));
        else if (a == "--qdisc-bypass") o.qdisc_bypass = true;
        else if (a == "--xdp") o.xdp = true;
        else if (a == "--proto") {
            std::string_view p = value();
            if (p != "udp" && p != "tcp") usage("--proto is udp or tcp");
            o.tcp = p == "tcp";
        } else usage("unknown argument " + std::string(a));
    }
    if (o.dst_ip.empty()) usage("--dst-ip is required");
    if (o.mode == "send" && (o.dst_mac.empty() || o.src_ip.empty())) usage("send needs --dst-mac and --src-ip");
    return o;
}

// --- frame building -------------------------------------------------------------
struct Ip {
    int family = AF_UNSPEC;
    uint8_t bytes[16] = {};
    size_t len() const { return family == AF_INET ? 4 : 16; }
};

Ip parse_ip(const std::string& s) {
    Ip ip;
    if (inet_pton(AF_INET, s.c_str(), ip.bytes) == 1) ip.family = AF_INET;
    else if (inet_pton(AF_INET6, s.c_str(), ip.bytes) == 1) ip.family = AF_INET6;
    else usage("not an IP address: " + s);
    return ip;
}

std::vector<uint8_t> parse_mac(const std::string& s) {
    std::vector<uint8_t> mac;
    const char* p = s.c_str();
    for (int i = 0; i < 6; ++i) {
        char* end = nullptr;
        errno = 0;
        unsigned long v = std::strtoul(p, &end, 16);
        if (end == p || errno != 0 || v > 0xff || *end != (i < 5 ? ':' : '\0')) usage("not a MAC address: " + s);
        mac.push_back(static_cast<uint8_t>(v));
        p = end + 1;
    }
    return mac;
}

void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
    b[off] = uint8_t(v >> 8);
    b[off + 1] = uint8_t(v);
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) acc += uint32_t(p[i]) << 8 | p[i + 1];
    if (n & 1) acc += uint32_t(p[n - 1]) << 8;
    return acc;
}

uint16_t fold(uint32_t acc) {
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(~acc);
}

std::vector<uint8_t> build_frame(const Options& o, const uint8_t* src_mac, uint32_t seq) {
    Ip src = parse_ip(o.src_ip), dst = parse_ip(o.dst_ip);
    if (src.family != dst.family) usage("--src-ip and --dst-ip must be of one family");
    bool v6 = dst.family == AF_INET6;
    std::string payload = std::string(kTag) + " " + std::to_string(seq);
    size_t l4len = (o.tcp ? 20 : 8) + (o.tcp ? 0 : payload.size());
    size_t l3len = v6 ? 40 : 20;
    std::vector<uint8_t> f(14 + l3len + l4len);
    std::vector<uint8_t> dmac = parse_mac(o.dst_mac);
    std::memcpy(f.data(), dmac.data(), 6);
    std::memcpy(&f[6], src_mac, 6);
    put16(f, 12, v6 ? ETH_P_IPV6 : ETH_P_IP);
    uint8_t proto = o.tcp ? IPPROTO_TCP : IPPROTO_UDP;
    size_t ip = 14, l4 = 14 + l3len;
    if (v6) {
        f[ip] = 0x60;
        put16(f, ip + 4, static_cast<uint16_t>(l4len));
        f[ip + 6] = proto;
        f[ip + 7] = 64;
        std::memcpy(&f[ip + 8], src.bytes, 16);
        std::memcpy(&f[ip + 24], dst.bytes, 16);
    } else {
        f[ip] = 0x45;
        put16(f, ip + 2, static_cast<uint16_t>(l3len + l4len));
        put16(f, ip + 4, static_cast<uint16_t>(seq));
        f[ip + 8] = 64;
        f[ip + 9] = proto;
        std::memcpy(&f[ip + 12], src.bytes, 4);
        std::memcpy(&f[ip + 16], dst.bytes, 4);
        put16(f, ip + 10, fold(sum16(&f[ip], 20)));
    }
    auto sport = static_cast<uint16_t>(40000 + seq % 20000);
    put16(f, l4, sport);
    put16(f, l4 + 2, o.dport);
    if (o.tcp) {
        // A SYN whose sequence number carries the tag's length, so the listener
        // can tell it from the stack's own SYNs (a SYN has no payload).
        f[l4 + 4] = 0xef;
        f[l4 + 5] = 0xef;
        put16(f, l4 + 6, static_cast<uint16_t>(seq));
        f[l4 + 12] = 5 << 4;
        f[l4 + 13] = 0x02;
        put16(f, l4 + 14, 64240);
    } else {
        put16(f, l4 + 4, static_cast<uint16_t>(l4len));
        std::memcpy(&f[l4 + 8], payload.data(), payload.size());
    }
    // Pseudo-header checksum over addresses, protocol and length.
    uint32_t acc = sum16(src.bytes, src.len(), sum16(dst.bytes, dst.len()));
    acc += proto + static_cast<uint32_t>(l4len);
    uint16_t csum = fold(sum16(&f[l4], l4len, acc));
    if (!o.tcp && csum == 0) csum = 0xffff;
    put16(f, l4 + (o.tcp ? 16 : 6), csum);
    return f;
}

// --- sending ----------------------------------------------------------------------
void interface_mac(const std::string& ifname, uint8_t* mac) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    ifreq req{};
    if (ifname.size() >= IFNAMSIZ) usage("interface name too long: " + ifname);
    ifname.copy(req.ifr_name, ifname.size());
    if (ioctl(fd, SIOCGIFHWADDR, &req) != 0) fail("SIOCGIFHWADDR " + ifname);
    std::memcpy(mac, req.ifr_hwaddr.sa_data, 6);
    close(fd);
}

int send_packet(const Options& o, unsigned ifindex, const uint8_t* mac) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: send only
    if (fd < 0) fail("socket(AF_PACKET)");
    int one = 1;
    if (o.qdisc_bypass && setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) != 0)
        fail("PACKET_QDISC_BYPASS");
    if (o.mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &*o.mark, sizeof(uint32_t)) != 0) fail("SO_MARK");
    if (o.priority && setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &*o.priority, sizeof(uint32_t)) != 0) fail("SO_PRIORITY");
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(ifindex);
    to.sll_halen = 6;
    std::vector<uint8_t> dmac = parse_mac(o.dst_mac);
    std::memcpy(to.sll_addr, dmac.data(), 6);
    long refused = 0;
    for (long i = 0; i < o.count; ++i) {
        std::vector<uint8_t> f = build_frame(o, mac, static_cast<uint32_t>(i));
        ssize_t n = sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
        // A drop at the egress hook comes back as ENOBUFS (NET_XMIT_DROP); what
        // counts is what the peer receives, so keep sending.
        if (n < 0 && errno == ENOBUFS) ++refused;
        else if (n != static_cast<ssize_t>(f.size())) fail("sendto");
    }
    close(fd);
    std::printf("sent %ld refused %ld\n", o.count - refused, refused);
    return 0;
}

// AF_XDP in copy mode: one UMEM, a TX ring and a completion ring; frames are
// written into the UMEM and kicked with sendto().
int send_xdp(const Options& o, unsigned ifindex, const uint8_t* mac) {
    constexpr uint32_t kFrame = 2048, kFrames = 64, kRing = 64;
    int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket(AF_XDP)");
    size_t umem_len = size_t(kFrame) * kFrames;
    void* umem = mmap(nullptr, umem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (umem == MAP_FAILED) fail("mmap umem");
    xdp_umem_reg reg{};
    reg.addr = reinterpret_cast<uintptr_t>(umem);
    reg.len = umem_len;
    reg.chunk_size = kFrame;
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg) != 0) fail("XDP_UMEM_REG");
    uint32_t ring = kRing;
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &ring, sizeof ring) != 0) fail("XDP_UMEM_FILL_RING");
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ring, sizeof ring) != 0) fail("XDP_UMEM_COMPLETION_RING");
    if (setsockopt(fd, SOL_XDP, XDP_TX_RING, &ring, sizeof ring) != 0) fail("XDP_TX_RING");
    xdp_mmap_offsets off{};
    socklen_t optlen = sizeof off;
    if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen) != 0) fail("XDP_MMAP_OFFSETS");
    size_t tx_len = off.tx.desc + kRing * sizeof(xdp_desc);
    auto* tx = static_cast<uint8_t*>(
        mmap(nullptr, tx_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, XDP_PGOFF_TX_RING));
    if (tx == MAP_FAILED) fail("mmap tx ring");
    sockaddr_xdp sxdp{};
    sxdp.sxdp_family = AF_XDP;
    sxdp.sxdp_ifindex = ifindex;
    sxdp.sxdp_queue_id = 0;
    sxdp.sxdp_flags = XDP_COPY;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sxdp), sizeof sxdp) != 0) fail("bind(AF_XDP)");
    auto* producer = reinterpret_cast<volatile uint32_t*>(tx + off.tx.producer);
    auto* descs = reinterpret_cast<xdp_desc*>(tx + off.tx.desc);
    long count = std::min<long>(o.count, kFrames);
    for (long i = 0; i < count; ++i) {
        std::vector<uint8_t> f = build_frame(o, mac, static_cast<uint32_t>(i));
        uint64_t addr = uint64_t(i) * kFrame;
        std::memcpy(static_cast<uint8_t*>(umem) + addr, f.data(), f.size());
        uint32_t slot = (*producer + uint32_t(i)) & (kRing - 1);
        descs[slot] = xdp_desc{addr, static_cast<uint32_t>(f.size()), 0};
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    *producer = *producer + static_cast<uint32_t>(count);
    if (sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0 && errno != EAGAIN && errno != EBUSY && errno != ENOBUFS)
        fail("sendto(AF_XDP)");
    close(fd);
    std::printf("sent %ld refused 0\n", count);
    return 0;
}

int send_frames(const Options& o) {
    unsigned ifindex = if_nametoindex(o.ifname.c_str());
    if (!ifindex) fail("interface " + o.ifname);
    uint8_t mac[6];
    interface_mac(o.ifname, mac);
    return o.xdp ? send_xdp(o, ifindex, mac) : send_packet(o, ifindex, mac);
}

// --- listening --------------------------------------------------------------------
bool matches(const uint8_t* f, size_t n, const Ip& dst, uint16_t dport) {
    if (n < 14) return false;
    auto type = uint16_t(f[12] << 8 | f[13]);
    size_t l4;
    uint8_t proto;
    if (type == ETH_P_IP && dst.family == AF_INET && n >= 34) {
        if (std::memcmp(f + 30, dst.bytes, 4) != 0) return false;
        proto = f[23];
        l4 = 14 + size_t(f[14] & 0xf) * 4;
    } else if (type == ETH_P_IPV6 && dst.family == AF_INET6 && n >= 54) {
        if (std::memcmp(f + 38, dst.bytes, 16) != 0) return false;
        proto = f[20];
        l4 = 54;
    } else {
        return false;
    }
    if (n < l4 + 8 || uint16_t(f[l4 + 2] << 8 | f[l4 + 3]) != dport) return false;
    if (proto == IPPROTO_TCP) return n >= l4 + 14 && f[l4 + 4] == 0xef && f[l4 + 5] == 0xef && f[l4 + 13] == 0x02;
    if (proto != IPPROTO_UDP) return false;
    std::string_view data(reinterpret_cast<const char*>(f + l4 + 8), n - l4 - 8);
    return data.starts_with(kTag);
}

int listen_frames(const Options& o) {
    Ip dst = parse_ip(o.dst_ip);
    unsigned ifindex = if_nametoindex(o.ifname.c_str());
    if (!ifindex) fail("interface " + o.ifname);
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) fail("socket(AF_PACKET)");
    sockaddr_ll at{};
    at.sll_family = AF_PACKET;
    at.sll_protocol = htons(ETH_P_ALL);
    at.sll_ifindex = static_cast<int>(ifindex);
    if (bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) fail("bind(AF_PACKET)");
    if (!o.ready_file.empty()) {
        int r = open(o.ready_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (r < 0) fail("ready file");
        close(r);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.timeout_ms);
    long received = 0;
    std::vector<uint8_t> buf(65536);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        sockaddr_ll from{};
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (n < 0) fail("recvfrom");
        if (from.sll_pkttype == PACKET_OUTGOING) continue;
        if (matches(buf.data(), static_cast<size_t>(n), dst, o.dport)) ++received;
    }
    std::printf("received %ld\n", received);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    if (o.mode == "send") return send_frames(o);
    if (o.mode == "listen") return listen_frames(o);
    usage("mode is send or listen");
}
