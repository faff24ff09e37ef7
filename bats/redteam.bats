#!/usr/bin/env bats
# Red team: ways out of a fenced pod for a workload with no capability at all
# (UID 1000, no_new_privs, every capability dropped from every set and from the
# bounding set, no supplementary group: tests/redteam/rt_tool.cpp checks that in
# /proc/self/status before every attack). Each test is one way out that was
# found: it asserts that the packet did NOT get out, so it is red for as long
# as the way out is open (each was red on the fence before these fixes: MLD
# reports let out, routing headers judged by their first segment, every new
# flow from outside marked inbound). "Out" means a frame carrying bytes the workload chose
# (the marker) arrived in a netns that is not the pod, seen by an AF_PACKET
# capture there. Every test first proves its capture sees what the proxy (UID
# 1337, exempt) sends, so a broken capture fails the test instead of passing it.
#
# The attack tool is compiled here with g++ (it is not part of the product
# build) into build/redteam/rt_tool.

load helpers

RT_SRC="$EF_ROOT/tests/redteam/rt_tool.cpp"
RT="$EF_ROOT/build/redteam/rt_tool"

setup_file() {
  if [ ! -x "$RT" ] || [ "$RT_SRC" -nt "$RT" ]; then
    mkdir -p "$(dirname "$RT")"
    g++ -std=c++20 -O2 -Wall -Wextra -Werror -o "$RT" "$RT_SRC"
  fi
}

setup() {
  ef_setup
  ef_setup_pod
  ef_fenced_pod
}

teardown() { ef_teardown; }

# rt_marker [BYTES]: random bytes, hex (8 by default).
rt_marker() { od -An -N"${1:-8}" -tx1 /dev/urandom | tr -d ' \n'; }

# rt_attack UID NAME ARGS...: an rt_tool attack inside the pod as UID (1000:
# the capability-less workload; 1337: the proxy).
rt_attack() {
  local uid="$1"
  shift
  "$RT" attack "$@" --netns "$EF_POD_PATH" --uid "$uid"
}

# rt_attack_ran UID NAME ARGS...: as rt_attack, where the fence refusing the
# send synchronously (EPERM from the output hook, status 1) is as good as the
# send going out: the capture decides. Any other failure breaks the test.
rt_attack_ran() {
  run rt_attack "$@"
  echo "$output"
  [ "$status" -eq 0 ] || [ "$status" -eq 1 ] || fail "the attack itself failed (status $status)"
}

# rt_sniff_start NETNS MARKER [TIMEOUT_MS]: a capture in NETNS for the marker,
# in the background; rt_sniff_wait collects it.
rt_sniff_start() {
  RT_SNIFF_OUT="$EF_TMP/sniff.$2"
  "$RT" sniff --netns "/run/netns/$1" --marker "$2" --ready "$RT_SNIFF_OUT.ready" \
    --timeout-ms "${3:-3000}" >"$RT_SNIFF_OUT" 2>&1 3>&- &
  RT_SNIFF_PID=$!
  ef_on_teardown kill -9 "$RT_SNIFF_PID"
  ef_wait_for_file "$RT_SNIFF_OUT.ready" 5
}

# rt_sniff_wait: waits for the capture and prints what it saw. Status 0: the
# marker arrived; 1: nothing did; anything else: the capture broke.
rt_sniff_wait() {
  local rc=0
  wait "$RT_SNIFF_PID" || rc=$?
  cat "$RT_SNIFF_OUT"
  return "$rc"
}

# rt_refute_out WHAT: the capture started last must have seen nothing.
rt_refute_out() {
  local rc=0
  rt_sniff_wait || rc=$?
  case "$rc" in
    1) return 0 ;;
    0) fail "got out: $1 (the capture above is the frame)" ;;
    *) fail "the capture failed (status $rc), so this proves nothing" ;;
  esac
}

# rt_capture_works NETNS ADDR: the proxy's datagram to ADDR port 53 reaches the
# capture in NETNS (the control: without it a silent capture would pass).
rt_capture_works() {
  local marker
  marker="$(rt_marker)"
  rt_sniff_start "$1" "$marker" 3000
  run rt_attack "$EF_PROXY_UID" udp "$2" 53 "$marker"
  assert_success
  local rc=0
  rt_sniff_wait || rc=$?
  [ "$rc" -eq 0 ] || fail "control: the proxy's datagram to $2 never reached $1 (status $rc)"
}

# rt_counters: the fence's counters, one line, for the log of a test.
rt_counters() {
  local c line=""
  for c in exempt_accepted allowed_accepted tcp_refused udp_refused other_dropped spoofed_dropped mld_dropped; do
    line+="$c=$(ef_counter "$c") "
  done
  echo "$line"
}

# rt_try_out MARKER WHAT ATTACK ARGS...: the workload's attack (with MARKER
# among its ARGS) under a capture of the world for MARKER, which must not
# see it (WHAT names the frame that would have got out).
rt_try_out() {
  local marker="$1" what="$2"
  shift 2
  rt_sniff_start "$EF_WORLD" "$marker" 3000
  run rt_attack "$EF_WORKLOAD_UID" "$@"
  assert_success
  rt_counters
  rt_refute_out "$what"
}

# rt_mld1_querier: the world sends one MLDv1 general query, so the pod answers
# in MLDv1 from then on.
rt_mld1_querier() {
  run "$RT" mld1-query --netns "/run/netns/$EF_WORLD" eth0
  assert_success
  sleep 0.1 # the pod's softirq takes the query in; the join must come after it
}

# --- MLD: the listener reports the kernel sends for the workload ------------------
# The output chain once let the kernel's MLD reports out, so that MLD snooping
# keeps delivering the pod's solicitations. But what a report says is the
# workload's to choose: any process may join any multicast group on eth0
# (IPV6_JOIN_GROUP, MCAST_JOIN_SOURCE_GROUP and MCAST_MSFILTER need no
# capability), and the kernel then sends, from no socket, a report naming each
# group and each source, to the whole segment (every pod on the bridge, the
# node, whatever listens there). 14 chosen bytes a group address, 16 a source
# address, up to 64 sources a group and as many records as fit a report, again
# on every change: an exfiltration channel of kilobytes a report. Now every
# MLD message is dropped and counted in mld_dropped.

@test "MLDv2: the group a workload joins (ff0e:MARKER::) does not leave the pod in a listener report (mld_dropped)" {
  rt_capture_works "$EF_WORLD" "$EF_DENY6"
  local marker
  marker="$(rt_marker)"
  rt_sniff_start "$EF_WORLD" "$marker" 3000
  local mld
  mld="$(ef_counter mld_dropped)"
  run rt_attack "$EF_WORKLOAD_UID" mld-join eth0 "$marker" 300
  assert_success
  rt_counters
  rt_refute_out "a report to ff02::16 naming the group ff0e:$marker:: the workload joined"
  (($(ef_counter mld_dropped) > mld)) || fail "the report was not counted in mld_dropped"
}

@test "MLDv2: the sources of a source-specific join (MCAST_JOIN_SOURCE_GROUP) carry no bytes out" {
  rt_capture_works "$EF_WORLD" "$EF_DENY6"
  local marker
  marker="$(rt_marker)"
  rt_sniff_start "$EF_WORLD" "$marker" 3000
  # The marker, then text: 16 bytes a source address, one record holding them all.
  run rt_attack "$EF_WORKLOAD_UID" mld-sources eth0 "$marker" "this text left a fenced pod as MLD sources" 300
  assert_success
  rt_counters
  rt_refute_out "a report whose source list is the workload's text"
}

# A fence that let out only reports about solicited-node groups (what neighbour
# discovery needs) would still carry 24 chosen bits a group: any process may
# join ff02::1:ffXX:XXXX.
@test "MLDv2: a solicited-node-shaped group (ff02::1:ffXX:XXXX) the workload joins carries no chosen bits out" {
  rt_capture_works "$EF_WORLD" "$EF_DENY6"
  local marker
  marker="$(rt_marker 3)"
  rt_try_out "$marker" "a report naming ff02::1:ff${marker:0:2}:${marker:2:4}, a group no address of the pod has" mld-solicited eth0 "$marker" 300
}

# With an MLDv1 querier on the segment (the world sends one general query, as
# an old switch or router does), the pod answers in MLDv1 for minutes (RFC 3810
# 8.2), and a rule that let out RFC 2710 reports to
# link-scope multicast: an MLDv1 report goes to the group it names, so the
# destination address itself is the workload's: ff02:MARKER::.
@test "MLDv1 (an MLDv1 querier on the link): no report goes to the workload's own ff02:MARKER:: address" {
  rt_capture_works "$EF_WORLD" "$EF_DENY6"
  rt_mld1_querier
  local marker
  marker="$(rt_marker)"
  rt_try_out "$marker" "an MLDv1 report addressed to ff02:$marker::" mld-link eth0 "$marker" 300
}

# In MLDv1 the report for a global group (to the group itself) is refused, but
# leaving the group sends a done message to ff02::2, all routers, with the
# group in its body; the same rule let it out.
@test "MLDv1 (an MLDv1 querier on the link): no done message carries a global group (ff0e:MARKER::) to ff02::2" {
  rt_capture_works "$EF_WORLD" "$EF_DENY6"
  rt_mld1_querier
  local marker
  marker="$(rt_marker)"
  rt_try_out "$marker" "an MLDv1 done message to ff02::2 naming ff0e:$marker::" mld-join eth0 "$marker" 300
}

# --- routing headers: the allowlist judges the first hop -----------------------------
# IPV6_RTHDR needs no capability for a segment routing header (type 4; only
# hop-by-hop and destination options need CAP_NET_RAW). With one, the IPv6
# destination of the packet is the first segment and the real destination
# waits in the header: the fence matches `ip6 daddr . meta l4proto . th dport`
# on the first segment, so a datagram for anywhere leaves as long as its first
# segment is an allowed address and port. Whether it goes on is the first
# hop's choice: here the allowed address sits on an SRv6 router (the world netns
# with seg6_enabled, a test-owned "far" netns behind it that no allow rule
# names and the pod has no route to). IPv4's loose source route is not the same
# hole: IP_OPTIONS with LSRR needs CAP_NET_RAW on this kernel (EPERM).
@test "a segment routing header (IPV6_RTHDR) is refused: an SRv6 hop on an allowed address delivers nothing to a far netns" {
  local far far6=fd00:ef5::2
  far="$(ef_new_netns far)"
  ip link add "efs$EF_ID" netns "$EF_WORLD" type veth peer name eth0 netns "$far"
  ip -n "$EF_WORLD" addr add fd00:ef5::1/64 dev "efs$EF_ID" nodad
  ip -n "$EF_WORLD" link set "efs$EF_ID" up
  ip -n "$far" link set lo up
  ip -n "$far" addr add "$far6/64" dev eth0 nodad
  ip -n "$far" link set eth0 up
  ip netns exec "$EF_WORLD" sysctl -qw net.ipv6.conf.all.forwarding=1 \
    net.ipv6.conf.all.seg6_enabled=1 net.ipv6.conf.eth0.seg6_enabled=1
  # Control: the proxy's datagram takes the same path to the far netns.
  local marker
  marker="$(rt_marker)"
  rt_sniff_start "$far" "$marker" 3000
  run rt_attack "$EF_PROXY_UID" srh "$EF_WORLD6" "$far6" 53 "$marker"
  assert_success
  local rc=0
  rt_sniff_wait || rc=$?
  [ "$rc" -eq 0 ] || fail "control: the proxy's routed datagram never reached the far netns (status $rc)"

  marker="$(rt_marker)"
  rt_sniff_start "$far" "$marker" 3000
  local allowed_before
  allowed_before="$(ef_counter allowed_accepted)"
  rt_attack_ran "$EF_WORKLOAD_UID" srh "$EF_WORLD6" "$far6" 53 "$marker"
  rt_counters
  echo "allowed_accepted was $allowed_before"
  rt_refute_out "a datagram for $far6 (no allow rule) through the allowed $EF_WORLD6 udp 53 as its first segment"
}

# --- conntrack: an answer after conntrack forgot the question ---------------------
# The proxy (exempt) sends a datagram to a peer and waits; the peer answers after
# the pod's conntrack forgot the unanswered flow (30 s by default; shortened
# here to 2 s in the pod's netns so that the test takes seconds). The answer is
# then a new connection that came in on eth0 from a source routed back there,
# and the inbound chain marks it. The proxy reads its answer and closes its
# socket; the workload binds the same port (free now, no privilege needed) and
# sends to the peer: the reply direction of a marked connection, accepted
# before any check of the socket's owner. The peer never opened anything: an
# ingress policy that passes answers to the proxy's flows (stateful, as on a
# node whose own conntrack remembers longer) lets the answer in, and from then
# on the workload talks to a destination no allow rule names, for as long as
# it keeps the flow alive.
@test "the proxy's UDP flow answered after conntrack forgot it: the answer to an ephemeral port is not inbound, the workload cannot send to that peer" {
  rt_capture_works "$EF_WORLD" "$EF_DENY4"
  ef_in_pod sysctl -qw net.netfilter.nf_conntrack_udp_timeout=2
  local pod4 port ready="$EF_TMP/late.ready"
  pod4="$(ef_pod_addr4)"
  port=$((40000 + 0x${EF_ID:0:4} % 10000))
  "$RT" late-echo --netns "/run/netns/$EF_WORLD" "$EF_DENY4" 5300 3000 --ready "$ready" 3>&- &
  ef_on_teardown kill -9 "$!"
  ef_wait_for_file "$ready" 5
  # Control: the proxy gets its late answer (the scenario happened).
  run rt_attack "$EF_PROXY_UID" udp-from "$pod4" "$port" "$EF_DENY4" 5300 00 5000
  assert_success
  ef_in_pod grep -F "sport=5300" /proc/net/nf_conntrack || true

  local marker
  marker="$(rt_marker)"
  rt_sniff_start "$EF_WORLD" "$marker" 3000
  rt_attack_ran "$EF_WORKLOAD_UID" udp-from "$pod4" "$port" "$EF_DENY4" 5300 "$marker"
  rt_counters
  rt_refute_out "a datagram from $pod4 port $port to the denied $EF_DENY4 port 5300"
}

# --- tried, and what stopped it (same workload, same capture) ------------------------
# IPv4 multicast join (IGMP reports): dropped, other_dropped. Sending to 239.1.2.3,
# ff02::1, ff0e::1 on eth0, to the subnet broadcast (SO_BROADCAST), to a link-local
# address with a scope id, to ::ffff:<denied v4>, with MSG_ZEROCOPY, by sendfile(),
# by io_uring IORING_OP_SENDMSG: udp_refused, EPERM. 255.255.255.255: ENETUNREACH.
# TCP Fast Open (SYN with data) and MPTCP, v4 and v6: tcp_refused, ECONNREFUSED (the
# MPTCP subflow is grafted onto the MPTCP socket's file, so meta skuid matches).
# SO_BINDTODEVICE lo to a denied v4 address: out on lo, then dropped by IPv4 input
# as a martian source (accept_local 0), ip_forward 0 or 1 in the pod; to v6:
# ENETUNREACH. SO_BINDTODEVICE eth0 to 127.0.0.1: udp_refused. IP_OPTIONS with a
# loose source route, IPV6_HOPOPTS, IPV6_JOIN_ANYCAST: EPERM. 0.0.0.0 and :: as
# destinations: the pod's own loopback. Abstract AF_UNIX name bound in the world:
# ECONNREFUSED (abstract names are per netns). A user namespace of its own, in the
# pod's netns: AF_PACKET, raw, AF_XDP sockets, IP_TRANSPARENT, SO_MARK: EPERM;
# /dev/net/tun: EACCES. unshare -Urn, then a veth whose peer is in the pod's netns:
# EPERM. /proc/sys/net/... and /sys/class/net/eth0/...: EACCES. No SCTP, DCCP,
# RxRPC, TIPC, SMC, L2TP, PPPoE or RDS in this kernel, so no kernel-owned UDP or TCP
# socket to ride the proxy's finished flows with.
