// A NETLINK_NETFILTER socket: send one batch and collect its acks, or run a
// get/dump request and collect the replies. Internal to nft/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <libmnl/libmnl.h>

namespace ef::nft {

// The first error the kernel reported for a batch.
struct BatchError {
    int error = 0;        // positive errno; 0 when the batch was accepted
    uint32_t seq = 0;     // of the message that failed
    std::string message;  // the kernel's extended ack text, if any
    // Where in the failed message the attribute the kernel refused starts
    // (NLMSGERR_ATTR_OFFS, bytes from its header); 0: not said.
    uint32_t bad_attr_offset = 0;
};

class Socket {
  public:
    // Opens and binds the socket in the calling thread's netns. Throws
    // cni::Error{kNetlinkFailure} naming the errno.
    Socket();

    // A fresh sequence number (batches take `count` consecutive ones).
    uint32_t take_seq(uint32_t count = 1);

    // Sends a whole batch (BEGIN..END) in one sendmsg and waits for the
    // `acks` answers the kernel owes (one per message sent with NLM_F_ACK).
    BatchError send_batch(const std::vector<uint8_t>& batch, uint32_t begin_seq, size_t acks);

    // Sends a get or dump request and appends every reply message (not the
    // final ack / DONE) to `out`. Returns 0 or the positive errno the kernel
    // answered. Sets `interrupted` when a dump saw the ruleset change.
    int request(const nlmsghdr* req, std::vector<uint8_t>& out, bool& interrupted);
    // The same, handing each reply message to `each` as it arrives (valid
    // only during the call) instead of collecting them.
    int request(const nlmsghdr* req, const std::function<void(const nlmsghdr*)>& each, bool& interrupted);
    // A non-dump get with NLM_F_ACK whose many small replies (one datagram
    // each: a GETSETELEM of many elements) are received many per system
    // call. Returns 0, the errno the kernel answered, or EMSGSIZE for a reply
    // larger than kSmallReply.
    int request_many(const nlmsghdr* req, const std::function<void(const nlmsghdr*)>& each);
    static constexpr size_t kSmallReply = 2048;
    // The receive queue's size in bytes, as the kernel accounts it.
    size_t receive_buffer() const;

  private:
    struct Close {
        void operator()(mnl_socket* s) const { mnl_socket_close(s); }
    };
    ssize_t receive();
    void ensure_sndbuf(size_t len);

    std::unique_ptr<mnl_socket, Close> nl_;
    uint32_t portid_ = 0;
    uint32_t seq_ = 0;
    size_t sndbuf_ = 0;
    std::vector<uint8_t> rx_;
};

}  // namespace ef::nft
