// ef_tamper_batch.so: an LD_PRELOAD shim for bats/faults.bats. It changes the
// nf_tables batch a process sends on its way to the kernel: the `output`
// chain's policy drop becomes accept. The kernel acks that batch as it would
// the real one, so only ADD's read-back of the table (lib/nft/apply.cpp,
// verify) can notice that it holds something else than the fence that was
// sent. Every other datagram, and every other process's, passes unchanged.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr size_t kAttrHeader = NLA_ALIGN(sizeof(nlattr));

// In one NFT_MSG_NEWCHAIN message (its attributes from `at` to `end`): the
// policy of a chain named "output", if it has one.
uint8_t* output_policy(uint8_t* at, const uint8_t* end) {
    uint8_t* policy = nullptr;
    bool output = false;
    while (at + kAttrHeader <= end) {
        nlattr a{};
        std::memcpy(&a, at, sizeof a);
        if (a.nla_len < kAttrHeader || at + a.nla_len > end) break;
        const int type = a.nla_type & NLA_TYPE_MASK;
        uint8_t* value = at + kAttrHeader;
        const size_t len = a.nla_len - kAttrHeader;
        if (type == NFTA_CHAIN_NAME) output = len >= 7 && std::memcmp(value, "output", 7) == 0;
        if (type == NFTA_CHAIN_POLICY && len == sizeof(uint32_t)) policy = value;
        at += NLA_ALIGN(a.nla_len);
    }
    return output ? policy : nullptr;
}

// Turns the output chain's policy drop into accept in a copy of `buf`;
// false when the datagram holds no such chain.
bool tamper(std::vector<uint8_t>& buf) {
    bool changed = false;
    size_t off = 0;
    while (off + sizeof(nlmsghdr) <= buf.size()) {
        nlmsghdr h{};
        std::memcpy(&h, buf.data() + off, sizeof h);
        if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > buf.size() - off) break;
        const bool newchain = (h.nlmsg_type >> 8) == NFNL_SUBSYS_NFTABLES && (h.nlmsg_type & 0xff) == NFT_MSG_NEWCHAIN;
        const size_t attrs = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
        if (newchain && h.nlmsg_len >= attrs) {
            uint8_t* policy = output_policy(buf.data() + off + attrs, buf.data() + off + h.nlmsg_len);
            uint32_t drop = htonl(NF_DROP), accept = htonl(NF_ACCEPT);
            if (policy && std::memcmp(policy, &drop, sizeof drop) == 0) {
                std::memcpy(policy, &accept, sizeof accept);
                changed = true;
            }
        }
        off += NLMSG_ALIGN(h.nlmsg_len);
    }
    return changed;
}

}  // namespace

// libmnl's mnl_socket_sendto() sends every batch with sendto(2).
// NOLINTNEXTLINE(readability-inconsistent-declaration-parameter-name): glibc's names are reserved identifiers
extern "C" ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to, socklen_t tolen) {
    using Sendto = ssize_t (*)(int, const void*, size_t, int, const sockaddr*, socklen_t);
    static const auto real = reinterpret_cast<Sendto>(dlsym(RTLD_NEXT, "sendto"));
    const auto* bytes = static_cast<const uint8_t*>(buf);
    std::vector<uint8_t> copy(bytes, bytes + len);
    if (tamper(copy)) return real(fd, copy.data(), len, flags, to, tolen);
    return real(fd, buf, len, flags, to, tolen);
}
