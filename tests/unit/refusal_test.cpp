// What probe reads from /proc/net/dev and /proc/net/snmp, and where it
// concludes a refused connection was refused.
#include "probe/refusal.h"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using namespace ef::probe;

namespace {

// /proc/net/dev as Linux 6.x prints it.
std::string net_dev(uint64_t lo_rx, uint64_t lo_tx, uint64_t eth_rx, uint64_t eth_tx) {
    std::string s =
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
        "carrier compressed\n";
    s += "    lo:    1400      " + std::to_string(lo_rx) + "    0    0    0     0          0         0     1400      " +
         std::to_string(lo_tx) + "    0    0    0     0       0          0\n";
    s += "  eth0:   55300      " + std::to_string(eth_rx) +
         "    0    0    0     0          0         3     9640      " + std::to_string(eth_tx) +
         "    0    0    0     0       0          0\n";
    return s;
}

// /proc/net/snmp's Tcp lines (MaxConn is -1, a signed counter the parser must skip).
std::string snmp(uint64_t out_rsts) {
    return "Ip: Forwarding DefaultTTL InReceives\nIp: 2 64 31\n"
           "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab "
           "InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n"
           "Tcp: 1 200 120000 -1 7 0 7 0 0 9 9 0 0 " +
           std::to_string(out_rsts) +
           " 0\n"
           "Udp: InDatagrams NoPorts\nUdp: 0 0\n";
}

StackCounters counters(uint64_t lo_rx, uint64_t eth_tx, uint64_t out_rsts) {
    StackCounters c;
    c.interfaces = parse_net_dev(net_dev(lo_rx, lo_rx, 4, eth_tx));
    c.tcp_out_rsts = parse_tcp_out_rsts(snmp(out_rsts));
    return c;
}

}  // namespace

TEST_CASE("parse_net_dev reads each interface's received and sent packets") {
    auto dev = parse_net_dev(net_dev(12, 13, 40, 41));
    REQUIRE(dev.size() == 2);
    CHECK(dev.at("lo").rx_packets == 12);
    CHECK(dev.at("lo").tx_packets == 13);
    CHECK(dev.at("eth0").rx_packets == 40);
    CHECK(dev.at("eth0").tx_packets == 41);
}

TEST_CASE("parse_net_dev refuses what it cannot read, rather than see no traffic") {
    CHECK_THROWS_AS(parse_net_dev(""), std::runtime_error);
    CHECK_THROWS_AS(parse_net_dev("Inter-|\n face |\n"), std::runtime_error);
    CHECK_THROWS_AS(parse_net_dev("h\nh\n  eth0: 1 2 3\n"), std::runtime_error);
    CHECK_THROWS_AS(parse_net_dev("h\nh\n  eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"), std::runtime_error);
    CHECK_THROWS_WITH_AS(parse_net_dev("h\nh\n  eth0: 1 x 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"),
                         doctest::Contains("eth0: 1 x"), std::runtime_error);
}

TEST_CASE("parse_tcp_out_rsts finds OutRsts by its header, not by position") {
    CHECK(parse_tcp_out_rsts(snmp(5)) == 5);
    CHECK(parse_tcp_out_rsts("Tcp: OutRsts ActiveOpens\nTcp: 9 1\n") == 9);
    CHECK_THROWS_AS(parse_tcp_out_rsts("Ip: a\nIp: 1\n"), std::runtime_error);
    CHECK_THROWS_AS(parse_tcp_out_rsts("Tcp: OutRsts\nTcp: -1\n"), std::runtime_error);
    CHECK_THROWS_AS(parse_tcp_out_rsts("Tcp: A OutRsts\nTcp: 1\n"), std::runtime_error);
}

TEST_CASE("a refusal is the fence's only when nothing left the pod, the reset came over lo, and TCP sent none") {
    // What the fence does (seen on Linux 6.18): lo +1, eth0 +0, OutRsts +0.
    auto v = classify_refusal(counters(10, 20, 3), counters(11, 20, 3));
    CHECK(v.origin == RefusalOrigin::kInsideNetns);

    // An upstream REJECT or a closed port: the SYN left through eth0.
    v = classify_refusal(counters(10, 20, 3), counters(10, 21, 3));
    CHECK(v.origin == RefusalOrigin::kLeftPod);
    CHECK(v.detail.find("eth0 sent 1") != std::string::npos);
    // Even with a reset on lo at the same time (other traffic): leaving wins.
    CHECK(classify_refusal(counters(10, 20, 3), counters(11, 21, 3)).origin == RefusalOrigin::kLeftPod);

    // The pod's own address: SYN and reset both over lo, the reset made by TCP.
    v = classify_refusal(counters(10, 20, 3), counters(12, 20, 4));
    CHECK(v.origin == RefusalOrigin::kOwnStack);
    CHECK(v.detail.find("address of this pod") != std::string::npos);

    // Refused with no packet at all (a connect hook, not a reject rule).
    CHECK(classify_refusal(counters(10, 20, 3), counters(10, 20, 3)).origin == RefusalOrigin::kNoReset);
}

TEST_CASE("an interface that appears during the attempt counts with all it sent; a replaced one too") {
    StackCounters before = counters(10, 20, 0);
    StackCounters after = counters(11, 20, 0);
    after.interfaces["net1"] = InterfaceCounters{0, 2};
    auto v = classify_refusal(before, after);
    CHECK(v.origin == RefusalOrigin::kLeftPod);
    CHECK(v.detail.find("net1 sent 2") != std::string::npos);

    // eth0 recreated: its counter starts again below the old value.
    after = counters(11, 1, 0);
    CHECK(classify_refusal(before, after).origin == RefusalOrigin::kLeftPod);
    // No lo listed any more: nothing came back over it.
    after = counters(11, 20, 0);
    after.interfaces.erase("lo");
    CHECK(classify_refusal(before, after).origin == RefusalOrigin::kNoReset);
}
