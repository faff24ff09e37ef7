#!/usr/bin/env bats
# What must keep working under the conntrack invariant (docs/threat-model.md, "What fenced
# means": conntrack state is never a pass for a process's packet), each with
# every refusal counter unchanged: the proxy's bulk transfers closing cleanly
# from either side (the last ACKs of a closed socket carry no process socket
# and leave as the kernel's own packets of a known connection), a server in the
# pod answering inbound clients, the pod reaching itself, PMTU discovery on an
# allowed flow; and, for neighbour discovery (issue 18), an idle dual-stack pod
# counts nothing as refused while its MLD reports are dropped apart, and a raw neighbour
# solicitation to an off-link address is dropped.

load helpers

setup() {
  ef_setup
  ef_setup_pod
}

teardown() { ef_teardown; }

# Every counter that means "refused or dropped", space-separated.
refusals() {
  echo "$(ef_counter tcp_refused) $(ef_counter udp_refused) $(ef_counter other_dropped)" \
    "$(ef_counter spoofed_dropped)"
}

# Waits out the kernel's retransmissions of anything the fence would have
# refused (a TCP FIN or its ACK is retransmitted after 200 ms and more).
settle() { sleep 1.5; }

W=(--uid "$EF_WORKLOAD_UID" --timeout-ms 3000)
P=(--uid "$EF_PROXY_UID" --timeout-ms 5000)

@test "the proxy's bulk tcp transfers (v4, v6) close cleanly from either side, nothing refused" {
  local addr
  for addr in "$EF_DENY4" "$EF_DENY6"; do
    ef_listen_start "$EF_WORLD" tcp "$addr" 9000 --sink
    ef_listen_start "$EF_WORLD" tcp "$addr" 9001 --close-after 4194304
  done
  ef_listen_wait
  run ef_pod_add
  assert_success
  local before exempt
  before="$(refusals)"
  exempt="$(ef_counter exempt_accepted)"
  for addr in "$EF_DENY4" "$EF_DENY6"; do
    run -0 ef_probe transfer tcp "$addr" 9000 --bytes 4194304 --close client "${P[@]}"
    run -0 ef_probe transfer tcp "$addr" 9001 --bytes 4194304 --close server "${P[@]}"
  done
  settle
  assert_equal "$(refusals)" "$before"
  (($(ef_counter exempt_accepted) > exempt)) || fail "the transfers were not counted as the proxy's"
}

@test "a server in the pod answers inbound tcp and udp clients (v4, v6); nothing refused" {
  run ef_pod_add
  assert_success
  local a4 a6 before
  a4="$(ef_pod_addr4)"
  a6="$(ef_pod_addr6)"
  # Root's sockets: not exempt (the profile exempts 1337 only).
  ef_listen_start "$EF_POD" tcp "$a4" 7000 --sink
  ef_listen_start "$EF_POD" tcp "$a6" 7000 --sink
  ef_listen_start "$EF_POD" udp "$a4" 7001
  ef_listen_start "$EF_POD" udp "$a6" 7001
  ef_listen_wait
  before="$(refusals)"
  local addr
  for addr in "$a4" "$a6"; do
    run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" transfer tcp "$addr" 7000 --bytes 1048576 --close client
    run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" udp "$addr" 7001 --expect-reply
  done
  settle
  assert_equal "$(refusals)" "$before"
}

@test "inbound echo requests (v4, v6) are all answered, whatever their checksum; nothing refused" {
  # The inbound chain's first rules take new TCP and UDP connections to the
  # ephemeral ports unmarked; were they to read any protocol's `th dport`,
  # an echo request whose checksum falls in 32768-60999 would go unmarked and
  # its reply be dropped (about 4 in 10). Each ping socket has its own echo
  # id, so each request its own checksum: 16 of them per family.
  run ef_pod_add
  assert_success
  ip netns exec "$EF_WORLD" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
  local addr i before
  before="$(refusals)"
  for addr in "$(ef_pod_addr4)" "$(ef_pod_addr6)"; do
    for i in $(seq 16); do
      run ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" icmp "$addr" --timeout-ms 2000
      [ "$status" -eq 0 ] || fail "echo request $i to $addr got no reply (efprobe exit $status)"
    done
  done
  assert_equal "$(refusals)" "$before"
}

@test "the pod reaches itself over lo and over its own addresses; nothing refused" {
  run ef_pod_add
  assert_success
  local addr before
  for addr in 127.0.0.1 ::1 "$(ef_pod_addr4)" "$(ef_pod_addr6)"; do
    ef_listen_start "$EF_POD" tcp "$addr" 7100 --sink
    ef_listen_start "$EF_POD" udp "$addr" 7101
  done
  ef_listen_wait
  before="$(refusals)"
  for addr in 127.0.0.1 ::1 "$(ef_pod_addr4)" "$(ef_pod_addr6)"; do
    run -0 ef_probe transfer tcp "$addr" 7100 --bytes 65536 "${W[@]}"
    run -0 ef_probe udp "$addr" 7101 --expect-reply "${W[@]}"
  done
  settle
  assert_equal "$(refusals)" "$before"
}

# far_netns: a netns behind the world, whose link from the world has an MTU
# of 1280 on the world's end only (the far end still advertises a 1460-byte
# MSS, so the pod's full-size segments meet the narrow link), routed through
# the world (forwarding on in the world netns only); the pod gets a route to
# it through the world (not a default route). Sets FAR.
far_netns() {
  FAR="$(ef_new_netns far)"
  ip link add efar"$EF_ID" netns "$EF_WORLD" mtu 1280 type veth peer name eth0 netns "$FAR"
  ip -n "$EF_WORLD" addr add 10.201.0.1/24 dev efar"$EF_ID"
  ip -n "$EF_WORLD" addr add fd00:201::1/64 dev efar"$EF_ID" nodad
  ip -n "$FAR" addr add 10.201.0.2/24 dev eth0
  ip -n "$FAR" addr add fd00:201::2/64 dev eth0 nodad
  ip -n "$EF_WORLD" link set efar"$EF_ID" up
  ip -n "$FAR" link set eth0 up
  ip -n "$FAR" link set lo up
  ip -n "$FAR" route add "$EF_SUBNET4" via 10.201.0.1
  ip -n "$FAR" -6 route add "$EF_SUBNET6" via fd00:201::1
  ip netns exec "$EF_WORLD" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n "$EF_POD" route add 10.201.0.0/24 via "$EF_WORLD4"
  ip -n "$EF_POD" -6 route add fd00:201::/64 via "$EF_WORLD6"
}

@test "PMTU discovery on an allowed flow: the router's fragmentation-needed and packet-too-big are heeded (v4, v6)" {
  # The far destinations are allowed to the workload.
  local tmp="$EF_TMP/conflist"
  jq '(.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].allow) +=
      [{"cidr": "10.201.0.2/32", "protocol": "tcp", "ports": [9000]},
       {"cidr": "fd00:201::2/128", "protocol": "tcp", "ports": [9000]}]' "$EF_CONFLIST" >"$tmp"
  mv "$tmp" "$EF_CONFLIST"
  run ef_pod_add
  assert_success
  far_netns
  ef_listen_start "$FAR" tcp 10.201.0.2 9000 --sink
  ef_listen_start "$FAR" tcp fd00:201::2 9000 --sink
  ef_listen_wait
  local before allowed
  before="$(refusals)"
  allowed="$(ef_counter allowed_accepted)"
  run -0 ef_probe transfer tcp 10.201.0.2 9000 --bytes 1048576 "${W[@]}"
  run -0 ef_probe transfer tcp fd00:201::2 9000 --bytes 1048576 "${W[@]}"
  # The pod learned the smaller path MTU from the router's ICMP errors.
  run -0 ip -n "$EF_POD" route get 10.201.0.2
  assert_output --partial "mtu 1280"
  run -0 ip -n "$EF_POD" -6 route get fd00:201::2
  assert_output --partial "mtu 1280"
  settle
  assert_equal "$(refusals)" "$before"
  (($(ef_counter allowed_accepted) > allowed)) || fail "the transfers were not counted as allowed"
}

@test "an idle dual-stack pod (DAD on) counts nothing refused ten seconds after ADD; its MLD reports are dropped, counted apart" {
  # Addresses go through duplicate address detection, as in a real pod: MLD
  # reports first leave from :: while the link-local address is tentative.
  ef_in_pod sysctl -qw net.ipv6.conf.default.accept_dad=1 net.ipv6.conf.all.accept_dad=1
  run ef_pod_add
  assert_success
  # Most of ADD's reports went before the fence existed: one more address
  # joins its solicited-node group now, and the kernel reports that.
  ip -n "$EF_POD" addr add "${EF_SUBNET6%::/64}::77/64" dev eth0
  sleep 10
  assert_equal "$(refusals)" "0 0 0 0"
  assert_equal "$(ip netns exec "$EF_POD" nft -j list counter netdev egress_fence raw_dropped |
    jq '.nftables[] | select(.counter) | .counter.packets')" 0
  (($(ef_counter mld_dropped) > 0)) || fail "no MLD report was counted"
}

@test "a raw neighbour solicitation to an off-link address (root with NET_RAW) is dropped and counted" {
  run ef_pod_add
  assert_success
  # A route off the link, through the world netns (test-owned).
  ip -n "$EF_POD" -6 route add fd00:dead::/64 via "$EF_WORLD6"
  local before
  before="$(ef_counter other_dropped)"
  run -1 ef_probe nd fd00:dead::1
  assert_equal "$(ef_counter other_dropped)" "$((before + 1))"
}

@test "the kernel's own neighbour probe to an address off the pod's links is refused and counted" {
  run ef_pod_add
  assert_success
  # Root in the pod puts fd00:dead::/64 on eth0 with a stale neighbour there;
  # an exempt datagram to it makes the kernel probe that neighbour (unicast
  # NS, no socket) a second later: not an address a neighbour of eth0 can have.
  ip -n "$EF_POD" -6 route add fd00:dead::/64 dev eth0
  ip -n "$EF_POD" -6 neigh add fd00:dead::1 lladdr 02:00:00:00:de:ad dev eth0 nud stale
  ef_in_pod sysctl -qw net.ipv6.neigh.eth0.delay_first_probe_time=1
  ef_tap_add probe6 ip6 daddr fd00:dead::1 icmpv6 type nd-neighbor-solicit
  local before
  before="$(ef_counter other_dropped)"
  run -0 ef_probe udp fd00:dead::1 53 --uid "$EF_PROXY_UID" --timeout-ms 100
  sleep 2
  local sent
  sent="$(ef_tap probe6)"
  ((sent > 0)) || fail "the kernel sent no neighbour probe to fd00:dead::1"
  assert_equal "$(ef_counter other_dropped)" "$((before + sent))"
}

@test "inboundPeers: a listed peer's connection is answered, another peer's is refused (v4, v6)" {
  local tmp="$EF_TMP/conflist"
  jq --arg w4 "$EF_WORLD4/32" --arg w6 "$EF_WORLD6/128" \
    '(.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].inboundPeers) = [$w4, $w6]' \
    "$EF_CONFLIST" >"$tmp"
  mv "$tmp" "$EF_CONFLIST"
  run ef_pod_add
  assert_success
  local a4 a6
  a4="$(ef_pod_addr4)"
  a6="$(ef_pod_addr6)"
  ef_listen_start "$EF_POD" tcp "$a4" 7000
  ef_listen_start "$EF_POD" tcp "$a6" 7000
  ef_listen_wait
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$a4" 7000 --source "$EF_WORLD4"
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$a6" 7000 --source "$EF_WORLD6"
  local before
  before="$(ef_counter tcp_refused)"
  # The pod's SYN-ACK to an unlisted peer is a process's packet no rule
  # accepts: refused (its reset goes to the pod itself), so the peer waits.
  run -110 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$a4" 7000 --source "$EF_DENY4" --timeout-ms 1500
  run -110 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$a6" 7000 --source "$EF_DENY6" --timeout-ms 1500
  (($(ef_counter tcp_refused) >= before + 2)) || fail "the SYN-ACKs to unlisted peers were not refused"
}
