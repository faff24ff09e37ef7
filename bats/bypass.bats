#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 4, bypass matrix: what a workload in a fenced pod (uid 1000, no
# NET_ADMIN) or root in it might try, each expected to be refused (or dropped)
# AND counted by the verdict counter that names it; then the paths that must
# stay open. Every denied target is a live listener in the world netns, so a
# missing fence shows up as "connected", not as a world-side refusal.
# The pod is fenced once per test through the reference chain (cnitool).

load helpers

setup() {
  ef_setup
  ef_setup_pod
}

teardown() {
  ef_teardown
}

# fenced_pod [LISTENER...]: listeners given as "proto addr port", then ADD.
fenced_pod() {
  local l
  for l in "$@"; do
    # shellcheck disable=SC2086 # "proto addr port" splits on purpose
    ef_listen_start "$EF_WORLD" $l
  done
  ef_listen_wait
  run ef_pod_add
  assert_success
  ef_table_present
}

# counted COUNTER STATUS PROBE_ARGS...: the probe (in the pod) exits STATUS,
# COUNTER grows, and neither accept counter does (nothing was let through).
counted() {
  local counter="$1" status="$2"
  shift 2
  local before allowed exempt after
  before="$(ef_counter "$counter")"
  allowed="$(ef_counter allowed_accepted)"
  exempt="$(ef_counter exempt_accepted)"
  run "-$status" ef_probe "$@"
  after="$(ef_counter "$counter")"
  ((after > before)) || fail "counter $counter stayed at $before after: efprobe $*"
  assert_equal "$(ef_counter allowed_accepted)" "$allowed"
  assert_equal "$(ef_counter exempt_accepted)" "$exempt"
}

# refusals: the tcp_refused and udp_refused counters, space-separated. Not
# other_dropped: the pod's own MLD reports (ICMPv6 143) land there on their own.
refusals() {
  echo "$(ef_counter tcp_refused) $(ef_counter udp_refused)"
}

# uncounted STATUS PROBE_ARGS...: the probe exits STATUS and no refusal is counted.
uncounted() {
  local status="$1" before
  shift
  before="$(refusals)"
  run "-$status" ef_probe "$@"
  assert_equal "$(refusals)" "$before"
}

# Probe options for the workload.
W=(--uid "$EF_WORKLOAD_UID" --timeout-ms 2000)

# --- refused and counted -------------------------------------------------------

@test "bypass: tcp v4 to a denied address is refused fast (111) and counted in tcp_refused" {
  fenced_pod "tcp $EF_DENY4 443"
  counted tcp_refused 111 connect tcp "$EF_DENY4" 443 "${W[@]}"
}

@test "bypass: tcp v6 to a denied address is refused fast (111) and counted in tcp_refused" {
  fenced_pod "tcp $EF_DENY6 443"
  counted tcp_refused 111 connect tcp "$EF_DENY6" 443 "${W[@]}"
}

@test "bypass: tcp to an allowed address on a port it does not allow is refused and counted" {
  fenced_pod "tcp $EF_WORLD4 9090" "tcp $EF_WORLD6 9090"
  counted tcp_refused 111 connect tcp "$EF_WORLD4" 9090 "${W[@]}"
  counted tcp_refused 111 connect tcp "$EF_WORLD6" 9090 "${W[@]}"
}

@test "bypass: udp v4 to a denied address: the connected socket sees 111, counted in udp_refused" {
  fenced_pod "udp $EF_DENY4 5000"
  counted udp_refused 111 udp "$EF_DENY4" 5000 --expect-reply "${W[@]}"
}

@test "bypass: udp v6 to a denied address: the connected socket sees 111, counted in udp_refused" {
  fenced_pod "udp $EF_DENY6 5000"
  counted udp_refused 111 udp "$EF_DENY6" 5000 --expect-reply "${W[@]}"
}

@test "bypass: DNS to another resolver (udp and tcp 53), and tcp 53 to the allowed udp-only resolver, are refused" {
  fenced_pod "udp $EF_DENY4 53" "tcp $EF_DENY4 53" "udp $EF_DENY6 53" "tcp $EF_DENY6 53" \
    "tcp $EF_WORLD4 53" "udp $EF_WORLD4 53"
  counted udp_refused 111 udp "$EF_DENY4" 53 --expect-reply "${W[@]}"
  counted udp_refused 111 udp "$EF_DENY6" 53 --expect-reply "${W[@]}"
  counted tcp_refused 111 connect tcp "$EF_DENY4" 53 "${W[@]}"
  counted tcp_refused 111 connect tcp "$EF_DENY6" 53 "${W[@]}"
  counted tcp_refused 111 connect tcp "$EF_WORLD4" 53 "${W[@]}"
  # The allowed resolver still answers over udp.
  run -0 ef_probe udp "$EF_WORLD4" 53 --expect-reply "${W[@]}"
}

@test "bypass: ICMP echo (v4, v6) on a ping socket is dropped and counted in other_dropped" {
  fenced_pod
  ef_allow_ping_sockets
  # other_dropped also counts what the pod sends by itself: taps of the test's
  # own prove each probe sent its one echo request.
  ef_tap_add echo_deny4 ip daddr "$EF_DENY4" icmp type echo-request
  ef_tap_add echo_world4 ip daddr "$EF_WORLD4" icmp type echo-request
  ef_tap_add echo_deny6 ip6 daddr "$EF_DENY6" icmpv6 type echo-request
  # v4 ping sockets report the output hook's drop as EPERM.
  counted other_dropped 1 icmp "$EF_DENY4" "${W[@]}"
  counted other_dropped 1 icmp "$EF_WORLD4" "${W[@]}"
  # v6 ping sockets do not (the kernel ignores the push error): no reply, 110.
  counted other_dropped 110 icmp "$EF_DENY6" "${W[@]}"
  assert_equal "$(ef_tap echo_deny4) $(ef_tap echo_world4) $(ef_tap echo_deny6)" "1 1 1"
}

@test "bypass: root with CAP_NET_RAW sending IP protocol 253 on a raw socket (v4, v6) is dropped and counted" {
  fenced_pod
  ef_tap_add raw_deny4 ip daddr "$EF_DENY4" meta l4proto 253
  ef_tap_add raw_deny6 ip6 daddr "$EF_DENY6" meta l4proto 253
  ef_tap_add raw_world4 ip daddr "$EF_WORLD4" meta l4proto 253
  # No --uid: root in the pod, capability held; uid 0 is not exempt.
  counted other_dropped 1 rawip "$EF_DENY4" 253
  counted other_dropped 1 rawip "$EF_DENY6" 253
  counted other_dropped 1 rawip "$EF_WORLD4" 253
  # Each probe sent its one packet (other_dropped also counts the pod's own).
  assert_equal "$(ef_tap raw_deny4) $(ef_tap raw_deny6) $(ef_tap raw_world4)" "1 1 1"
}

@test "bypass: the proxy port on a non-loopback address the profile does not allow is refused and counted" {
  fenced_pod "tcp $EF_DENY4 3128" "tcp $EF_DENY6 3128"
  counted tcp_refused 111 connect tcp "$EF_DENY4" 3128 "${W[@]}"
  counted tcp_refused 111 connect tcp "$EF_DENY6" 3128 "${W[@]}"
}

# --- escalation: becoming the exempt UID (issue 12) ----------------------------------
# The fence trusts the socket's UID. A process that can change its UID to the
# proxy's walks through; probe must refuse exactly those processes.

# containerd's default capability set without NET_RAW (what "drop: [NET_RAW]" leaves).
CONTAINERD_NO_RAW="-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service"
CONTAINERD_NO_RAW+=",+sys_chroot,+mknod,+audit_write,+setfcap"

# escalated_out CMD...: CMD connects to the denied listener and exempt_accepted counts it.
escalated_out() {
  local before
  before="$(ef_counter exempt_accepted)"
  run -0 "$@"
  assert_output --partial "connected $EF_DENY4 port 443"
  (($(ef_counter exempt_accepted) > before)) || fail "exempt_accepted stayed at $before: the connection did not leave as the proxy"
}

# probe_as EXIT SETPRIV_ARGS...: egress-fence-ctl probe against the denied listener,
# in the pod, under setpriv with those arguments, exits EXIT.
probe_as() {
  local want="$1"
  shift
  run "-$want" ef_in_pod setpriv "$@" "$EF_BIN/egress-fence-ctl" probe --target "$EF_DENY4:443" --timeout 1000
}

# setuid_helper: a setuid-root copy of efprobe in a directory of this test
# (world-readable, so the workload UID can exec it), removed in teardown. Prints its path.
setuid_helper() {
  local dir
  dir="$(mktemp -d /tmp/ef-suid-"$EF_ID".XXXXXX)"
  ef_on_teardown rm -rf "$dir"
  chmod 0755 "$dir"
  install -o root -g root -m 4755 "$EF_BIN/efprobe" "$dir/efprobe-suid"
  echo "$dir/efprobe-suid"
}

@test "bypass: root with NET_RAW dropped is refused, then setuid to the proxy UID connects out; probe refuses that process (6)" {
  fenced_pod "tcp $EF_DENY4 443"
  local root=(--bounding-set="$CONTAINERD_NO_RAW")
  # As root: uid 0 is not exempt.
  run -111 ef_in_pod setpriv "${root[@]}" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  # The same process calls setresuid(1337) (CAP_SETUID is in containerd's default set) and gets out.
  escalated_out ef_in_pod setpriv "${root[@]}" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 \
    --uid "$EF_PROXY_UID" --timeout-ms 2000
  # setpriv itself does the same from the outside.
  escalated_out ef_in_pod setpriv "${root[@]}" setpriv --reuid "$EF_PROXY_UID" --regid "$EF_PROXY_UID" \
    --clear-groups "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  # probe, run as that process, sees the fence and refuses it.
  probe_as 6 "${root[@]}"
  assert_output --partial "probe: fenced"
  assert_output --partial "it runs as root"
  assert_output --partial "CAP_SETUID: holds it"
  refute_output --partial "CAP_NET_RAW"
}

@test "bypass: a non-root UID without no_new_privs gets out through a setuid-root helper; probe refuses that process (6)" {
  fenced_pod "tcp $EF_DENY4 443"
  local helper
  helper="$(setuid_helper)"
  # The workload: uid 1000, nothing effective, containerd's bounding set minus NET_RAW.
  local workload=(--reuid "$EF_WORKLOAD_UID" --regid "$EF_WORKLOAD_UID" --clear-groups --inh-caps=-all
    --bounding-set="$CONTAINERD_NO_RAW")
  run -111 ef_in_pod setpriv "${workload[@]}" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  # Without privilege it cannot change its UID ...
  run -1 ef_in_pod setpriv "${workload[@]}" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 \
    --uid "$EF_PROXY_UID" --timeout-ms 2000
  # ... but exec of the setuid-root helper gives it root and CAP_SETUID back, and out it goes.
  escalated_out ef_in_pod setpriv "${workload[@]}" "$helper" connect tcp "$EF_DENY4" 443 \
    --uid "$EF_PROXY_UID" --timeout-ms 2000
  probe_as 6 "${workload[@]}"
  assert_output --partial "CAP_SETUID: can regain it by exec"
  refute_output --partial "runs as root"
  # no_new_privs (allowPrivilegeEscalation: false) makes the setuid bit inert: refused.
  run -1 ef_in_pod setpriv "${workload[@]}" --no-new-privs "$helper" connect tcp "$EF_DENY4" 443 \
    --uid "$EF_PROXY_UID" --timeout-ms 2000
  assert_output --partial "setgroups"
}

@test "bypass: a workload with no capability and no_new_privs cannot become the proxy UID by any of these, and probe passes it (0)" {
  fenced_pod "tcp $EF_DENY4 443"
  local helper
  helper="$(setuid_helper)"
  local workload=(--reuid "$EF_WORKLOAD_UID" --regid "$EF_WORKLOAD_UID" --clear-groups --inh-caps=-all
    --bounding-set=-all --no-new-privs)
  local before
  before="$(ef_counter exempt_accepted)"
  run -111 ef_in_pod setpriv "${workload[@]}" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  run -1 ef_in_pod setpriv "${workload[@]}" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 \
    --uid "$EF_PROXY_UID" --timeout-ms 2000
  run -1 ef_in_pod setpriv "${workload[@]}" "$helper" connect tcp "$EF_DENY4" 443 --uid "$EF_PROXY_UID" --timeout-ms 2000
  # setpriv reports its own failure with 127.
  run -127 ef_in_pod setpriv "${workload[@]}" setpriv --reuid "$EF_PROXY_UID" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443
  assert_output --partial "setresuid failed"
  assert_equal "$(ef_counter exempt_accepted)" "$before"
  probe_as 0 "${workload[@]}"
  assert_output --partial "probe: fenced"
  refute_output --partial "NOT FENCED"
}

# --- a netns nested inside the pod, routed through it (forward chain) --------------

# in_nested COUNTER STATUS PROBE_ARGS...: like counted, for a probe in NESTED.
in_nested() {
  local counter="$1" status="$2"
  shift 2
  local before after
  before="$(ef_counter "$counter")"
  run "-$status" ip netns exec "$NESTED" "$EF_BIN/efprobe" "$@"
  after="$(ef_counter "$counter")"
  ((after > before)) || fail "counter $counter stayed at $before after: efprobe $* (nested netns)"
}

@test "bypass: a netns nested in the pod: denied destinations refused by the forward chain and counted, even as the proxy uid" {
  fenced_pod "tcp $EF_DENY4 8080" "tcp $EF_DENY6 8080" "udp $EF_DENY4 53" "tcp $EF_WORLD4 8080"
  ef_nested_netns
  # The route through the pod works: an allowed destination connects.
  run -0 ip netns exec "$NESTED" "$EF_BIN/efprobe" connect tcp "$EF_WORLD4" 8080 "${W[@]}"
  in_nested tcp_refused 111 connect tcp "$EF_DENY4" 8080 "${W[@]}"
  in_nested tcp_refused 111 connect tcp "$EF_DENY6" 8080 "${W[@]}"
  in_nested udp_refused 111 udp "$EF_DENY4" 53 --expect-reply "${W[@]}"
  # Forwarded packets have no socket owner in the pod: no uid exemption.
  in_nested tcp_refused 111 connect tcp "$EF_DENY4" 8080 --uid "$EF_PROXY_UID" --timeout-ms 2000
}

@test "bypass: a netns nested in the pod reaches allowed destinations (v4 tcp, v6 tcp, v6 udp) through the forward chain" {
  fenced_pod "tcp $EF_WORLD4 8080" "tcp $EF_WORLD6 8080" "udp $EF_WORLD6 53"
  ef_nested_netns
  in_nested allowed_accepted 0 connect tcp "$EF_WORLD4" 8080 "${W[@]}"
  in_nested allowed_accepted 0 connect tcp "$EF_WORLD6" 8080 "${W[@]}"
  in_nested allowed_accepted 0 udp "$EF_WORLD6" 53 --expect-reply "${W[@]}"
}

# --- allowed paths -------------------------------------------------------------

@test "allowed: loopback (v4, v6) reaches an in-pod proxy, nothing counted as denied" {
  fenced_pod
  ef_listen_start "$EF_POD" tcp 127.0.0.1 3128
  ef_listen_start "$EF_POD" tcp ::1 3128
  ef_listen_start "$EF_POD" udp 127.0.0.1 5353
  ef_listen_wait
  uncounted 0 connect tcp 127.0.0.1 3128 "${W[@]}"
  uncounted 0 connect tcp ::1 3128 "${W[@]}"
  uncounted 0 udp 127.0.0.1 5353 --expect-reply "${W[@]}"
}

@test "allowed: the proxy uid gets udp and ICMP echo answered by a denied address, counted in exempt_accepted" {
  fenced_pod "udp $EF_DENY4 5000" "udp $EF_DENY6 5000"
  ef_allow_ping_sockets
  local before
  before="$(ef_counter exempt_accepted)"
  run -0 ef_probe udp "$EF_DENY4" 5000 --expect-reply --uid "$EF_PROXY_UID" --timeout-ms 2000
  run -0 ef_probe udp "$EF_DENY6" 5000 --expect-reply --uid "$EF_PROXY_UID" --timeout-ms 2000
  run -0 ef_probe icmp "$EF_DENY4" --uid "$EF_PROXY_UID" --timeout-ms 2000
  run -0 ef_probe icmp "$EF_DENY6" --uid "$EF_PROXY_UID" --timeout-ms 2000
  (($(ef_counter exempt_accepted) >= before + 4)) || fail "exempt_accepted did not count the 4 exempt sends"
}

@test "allowed: allowed destinations (tcp and udp, v4 and v6) are counted in allowed_accepted" {
  fenced_pod "tcp $EF_WORLD4 8080" "tcp $EF_WORLD6 8080" "udp $EF_WORLD4 53" "udp $EF_WORLD6 53"
  local before
  before="$(ef_counter allowed_accepted)"
  uncounted 0 connect tcp "$EF_WORLD4" 8080 "${W[@]}"
  uncounted 0 connect tcp "$EF_WORLD6" 8080 "${W[@]}"
  uncounted 0 udp "$EF_WORLD4" 53 --expect-reply "${W[@]}"
  uncounted 0 udp "$EF_WORLD6" 53 --expect-reply "${W[@]}"
  (($(ef_counter allowed_accepted) >= before + 4)) || fail "allowed_accepted did not count the 4 connections"
}

@test "allowed: replies to inbound connections (tcp v4/v6, udp) leave the pod; its listeners are not exempt" {
  fenced_pod
  local pod4 pod6
  pod4="$(ef_pod_addr4)"
  pod6="$(ef_pod_addr6)"
  # Listeners as root: uid 0 is not exempt, so only conntrack lets replies out.
  ef_listen_start "$EF_POD" tcp "$pod4" 9000
  ef_listen_start "$EF_POD" tcp "$pod6" 9000
  ef_listen_start "$EF_POD" udp "$pod4" 9000
  ef_listen_wait
  local before
  before="$(refusals)"
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$pod4" 9000 --timeout-ms 2000
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$pod6" 9000 --timeout-ms 2000
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" udp "$pod4" 9000 --expect-reply --timeout-ms 2000
  assert_equal "$(refusals)" "$before"
}
