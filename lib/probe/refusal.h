// Where a refused connection attempt was refused, told from the packet
// counters of the caller's own network namespace (/proc/net/dev and
// /proc/net/snmp, readable by any process in it, no capability needed).
//
// The fence drops the workload's SYN in the output hook, before any device,
// and its `reject with tcp reset` sends the reset back to the pod's own address
// through lo. So a refusal made by the fence leaves every non-lo interface's
// transmit counter where it was, brings one packet in on lo, and is not a reset
// of this netns's TCP stack (netfilter makes it, not TCP). A refusal from
// outside the pod (an upstream firewall's REJECT, a closed port on the target)
// needs the SYN to leave through an interface; a target that is an address of
// this pod is refused by its own TCP stack (Tcp OutRsts grows). Seen on Linux
// 6.18 with a router netns that rejects, a target with a closed port, and the
// pod's own address (bats/ops.bats). Other traffic during the attempt can only
// make the verdict "left the pod" or "own stack", never "inside": a caller
// retries rather than trusting one noisy sample.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace ef::probe {

struct InterfaceCounters {
    uint64_t rx_packets = 0;
    uint64_t tx_packets = 0;
};

// The counters the verdict compares, read before and after one attempt.
struct StackCounters {
    std::map<std::string, InterfaceCounters> interfaces;  // by name, as /proc/net/dev lists them
    uint64_t tcp_out_rsts = 0;                            // /proc/net/snmp Tcp: OutRsts (IPv4 and IPv6)
};

// Parses /proc/net/dev (two header lines, then "name: rx_bytes rx_packets ...
// tx_bytes tx_packets ..."). Throws std::runtime_error naming the line when one
// is malformed, or when there is no interface at all.
std::map<std::string, InterfaceCounters> parse_net_dev(std::string_view text);

// The Tcp: OutRsts value of /proc/net/snmp (a header line of names, then a line
// of values). Throws std::runtime_error when it is missing or malformed.
uint64_t parse_tcp_out_rsts(std::string_view snmp_text);

enum class RefusalOrigin {
    kInsideNetns,  // refused by a netfilter reject in this netns: the fence
    kLeftPod,      // a packet left through a non-lo interface: refused outside, or cannot tell
    kOwnStack,     // this netns's TCP stack sent a reset: the target is an address of the pod
    kNoReset,      // nothing came back over lo: refused without a reset from a local reject
};

struct RefusalVerdict {
    RefusalOrigin origin;
    std::string detail;  // one sentence with the counters that decided it
};

// The verdict for one refused attempt from the counters before and after it,
// in this order: any non-lo interface sent a packet (an interface that appeared
// counts with all it sent); else Tcp OutRsts grew; else lo received nothing;
// else inside.
RefusalVerdict classify_refusal(const StackCounters& before, const StackCounters& after);

}  // namespace ef::probe
