#include "nft/socket.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cni/error.h"
#include "nft/codec.h"

namespace ef::nft {
namespace {

// Dumps come in skbs of up to 32 KiB; errors are capped (NETLINK_CAP_ACK).
constexpr size_t kReceiveBuffer = size_t{128} * 1024;
// Queue room for the acks of a large batch (root may exceed rmem_max).
constexpr int kSocketRcvbuf = 4 * 1024 * 1024;

[[noreturn]] void fail(const std::string& what, int err) {
    throw cni::Error(cni::kNetlinkFailure, what + ": " + std::strerror(err), "errno " + std::to_string(err));
}

void set_int(mnl_socket* nl, int level, int opt, int value) {
    setsockopt(mnl_socket_get_fd(nl), level, opt, &value, sizeof value);
}

// The extended ack of an error, if any: the kernel's text
// (NLMSGERR_ATTR_MSG) and the offset of the attribute it refused
// (NLMSGERR_ATTR_OFFS).
void ext_ack(const nlmsghdr* nlh, std::string& msg, uint32_t& offset) {
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return;
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    size_t at = sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) at += err->msg.nlmsg_len - sizeof(nlmsghdr);
    if (NLMSG_LENGTH(at) > nlh->nlmsg_len) return;
    for_each_attr(nlh, at, [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
            msg = mnl_attr_get_str(a);
        if (mnl_attr_get_type(a) == NLMSGERR_ATTR_OFFS && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
            offset = mnl_attr_get_u32(a);
    });
}

}  // namespace

Socket::Socket() : rx_(kReceiveBuffer) {
    nl_.reset(mnl_socket_open(NETLINK_NETFILTER));
    if (!nl_) fail("cannot open a netfilter netlink socket", errno);
    if (mnl_socket_bind(nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0) fail("cannot bind the netlink socket", errno);
    portid_ = mnl_socket_get_portid(nl_.get());
    // Acks without a copy of the (possibly 64 KiB) request, with the
    // kernel's explanation when it has one.
    set_int(nl_.get(), SOL_NETLINK, NETLINK_CAP_ACK, 1);
    set_int(nl_.get(), SOL_NETLINK, NETLINK_EXT_ACK, 1);
    if (setsockopt(mnl_socket_get_fd(nl_.get()), SOL_SOCKET, SO_RCVBUFFORCE, &kSocketRcvbuf, sizeof kSocketRcvbuf) < 0)
        set_int(nl_.get(), SOL_SOCKET, SO_RCVBUF, kSocketRcvbuf);
    // A kernel that never answers must not hang the runtime's ADD.
    timeval tv{5, 0};
    setsockopt(mnl_socket_get_fd(nl_.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    seq_ = static_cast<uint32_t>(time(nullptr));
}

uint32_t Socket::take_seq(uint32_t count) {
    uint32_t first = seq_;
    seq_ += count;
    return first;
}

void Socket::ensure_sndbuf(size_t len) {
    // netlink refuses a datagram larger than the send buffer, and the kernel
    // needs the whole batch in one datagram.
    if (len + 4096 <= sndbuf_ || len < size_t{128} * 1024) return;
    int want = static_cast<int>(len + 65536);
    if (setsockopt(mnl_socket_get_fd(nl_.get()), SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) < 0)
        set_int(nl_.get(), SOL_SOCKET, SO_SNDBUF, want);
    sndbuf_ = static_cast<size_t>(want);
}

ssize_t Socket::receive() {
    ssize_t n = mnl_socket_recvfrom(nl_.get(), rx_.data(), rx_.size());
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) fail("nf_tables did not answer within 5 s", ETIMEDOUT);
        fail("cannot read nf_tables' answer", errno);
    }
    return n;
}

BatchError Socket::send_batch(const std::vector<uint8_t>& batch, uint32_t begin_seq, size_t acks) {
    ensure_sndbuf(batch.size());
    if (mnl_socket_sendto(nl_.get(), batch.data(), batch.size()) < 0)
        fail("cannot send the nf_tables batch (" + std::to_string(batch.size()) + " bytes)", errno);
    BatchError first;
    size_t answered = 0;
    while (answered < acks) {
        ssize_t n = receive();
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(rx_.data());
        int left = static_cast<int>(n);
        for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
            if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_pid != portid_) continue;
            if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) continue;
            const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            ++answered;
            if (err->error == 0 || first.error) continue;
            first = {-err->error, nlh->nlmsg_seq, {}, 0};
            ext_ack(nlh, first.message, first.bad_attr_offset);
            // A failed commit is answered once, for the whole batch.
            if (nlh->nlmsg_seq == begin_seq) return first;
        }
    }
    return first;
}

int Socket::request(const nlmsghdr* req, std::vector<uint8_t>& out, bool& interrupted) {
    return request(
        req,
        [&out](const nlmsghdr* nlh) {
            const auto* p = reinterpret_cast<const uint8_t*>(nlh);
            out.insert(out.end(), p, p + NLMSG_ALIGN(nlh->nlmsg_len));
        },
        interrupted);
}

int Socket::request(const nlmsghdr* req, const std::function<void(const nlmsghdr*)>& each, bool& interrupted) {
    if (mnl_socket_sendto(nl_.get(), req, req->nlmsg_len) < 0) fail("cannot send an nf_tables request", errno);
    bool dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    for (;;) {
        ssize_t n = receive();
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(rx_.data());
        int left = static_cast<int>(n);
        for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
            if (nlh->nlmsg_seq != req->nlmsg_seq || nlh->nlmsg_pid != portid_) continue;  // stale
            if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
            if (nlh->nlmsg_type == NLMSG_DONE) return 0;
            if (nlh->nlmsg_type == NLMSG_ERROR) {
                if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EPROTO;
                return -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
            }
            each(nlh);
            // A plain get without NLM_F_ACK ends with its one reply.
            if (!dump && !(req->nlmsg_flags & NLM_F_ACK)) return 0;
        }
    }
}

int Socket::request_many(const nlmsghdr* req, const std::function<void(const nlmsghdr*)>& each) {
    if (mnl_socket_sendto(nl_.get(), req, req->nlmsg_len) < 0) fail("cannot send an nf_tables request", errno);
    constexpr size_t kSlots = 64;
    static_assert(kSlots * kSmallReply <= kReceiveBuffer);
    std::array<mmsghdr, kSlots> msgs{};
    std::array<iovec, kSlots> iov{};
    for (size_t i = 0; i < kSlots; ++i) {
        iov[i] = {rx_.data() + i * kSmallReply, kSmallReply};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int fd = mnl_socket_get_fd(nl_.get());
    for (;;) {
        // MSG_WAITFORONE: block for the first datagram only, take what else is queued.
        int got = recvmmsg(fd, msgs.data(), kSlots, MSG_WAITFORONE, nullptr);
        if (got < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) fail("nf_tables did not answer within 5 s", ETIMEDOUT);
            fail("cannot read nf_tables' answer", errno);
        }
        int result = -1;
        for (int m = 0; m < got; ++m) {
            if (msgs[m].msg_hdr.msg_flags & MSG_TRUNC) result = EMSGSIZE;
            const auto* nlh = reinterpret_cast<const nlmsghdr*>(iov[m].iov_base);
            int left = static_cast<int>(msgs[m].msg_len);
            for (; result < 0 && mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
                if (nlh->nlmsg_seq != req->nlmsg_seq || nlh->nlmsg_pid != portid_) continue;  // stale
                if (nlh->nlmsg_type == NLMSG_ERROR) {
                    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) result = EPROTO;
                    else result = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
                    continue;
                }
                each(nlh);
            }
        }
        // The answer ends with its ack; nothing of this request follows it.
        if (result >= 0) return result;
    }
}

size_t Socket::receive_buffer() const {
    int size = 0;
    socklen_t len = sizeof size;
    if (getsockopt(mnl_socket_get_fd(nl_.get()), SOL_SOCKET, SO_RCVBUF, &size, &len) < 0 || size <= 0) return 0;
    return static_cast<size_t>(size);
}

}  // namespace ef::nft
