#!/usr/bin/env bats
# The escape tool (tests/tools/ef_escape.cpp) against a fenced pod: every
# combination of family, protocol, source, reuse of the proxy's flows and
# conntrack state planted through lo, as a workload with no capability, at a
# denied listener in the test-owned world netns. Nothing may get out; and the
# tool itself must find the ways out of the fence the conntrack shortcut had,
# or its "refused" would mean nothing.

load helpers

setup() {
  ef_setup
  ef_setup_pod
  ef_fenced_pod
}

teardown() { ef_teardown; }

# ef_escape ARGS...: the tool, the pod's and the peer's addresses filled in.
ef_escape() {
  "$EF_BIN/ef_escape" --pod-netns "$EF_POD_PATH" --peer-netns "/run/netns/$EF_WORLD" \
    --pod4 "$(ef_pod_addr4)" --pod6 "$(ef_pod_addr6)" --peer4 "$EF_DENY4" --peer6 "$EF_DENY6" \
    --workload-uid "$EF_WORKLOAD_UID" --proxy-uid "$EF_PROXY_UID" "$@"
}

# The fence as it was before issue 17: conntrack state accepted first, no
# check of a process's source address.
ef_conntrack_shortcut() {
  local chain handle
  for chain in output forward; do
    handle="$(ef_nft -a list chain inet egress_fence "$chain" | awk '/meta secmark set/ {print $NF; exit}')"
    [ -n "$handle" ] || fail "no secmark rule in $chain"
    ef_nft add rule inet egress_fence "$chain" position "$handle" ct state established,related accept
  done
  for handle in $(ef_nft -a list chain inet egress_fence output | awk '/spoofed_dropped/ {print $NF}'); do
    ef_nft delete rule inet egress_fence output handle "$handle"
  done
}

# The committed matrix (docs/bypass-matrix.md) is this run's output; to
# write it anew: EF_UPDATE_MATRIX=1 bats bats/escape.bats
@test "nothing a capability-less workload tries gets out (v4, v6, and from a nested netns); the bypass matrix is this run's" {
  ef_nested_netns
  run ef_escape --family both --nested-netns "/run/netns/$NESTED" --nested4 10.200.0.2 --nested6 fd00:200::2 --markdown
  echo "$output" >&3
  assert_success
  refute_output --partial got-out
  assert_output --partial "| proxy (control) | arrived |"
  local doc="$EF_ROOT/docs/bypass-matrix.md" table
  table="$(grep '^|' <<<"$output")"
  if [ -n "${EF_UPDATE_MATRIX:-}" ]; then
    sed -i '/^|/d' "$doc"
    printf '%s\n' "$table" >>"$doc"
  fi
  diff -u <(grep '^|' "$doc") <(echo "$table") >&3 || fail "docs/bypass-matrix.md differs from this run (diff above)"
}

@test "the tool finds the ways out of a fence that trusts conntrack state (issue 17's bypasses)" {
  ef_conntrack_shortcut
  run ef_escape --family both
  echo "$output" >&3
  assert_failure 1
  # The freebind spoof over lo, and riding the proxy's finished UDP flow.
  assert_line --regexp '^v6 +udp +pod address +reuse=- +prep=looped entry from the peer.s address .* got-out'
  assert_line --regexp '^v4 +udp +pod address +reuse=the proxy.s udp flow, finished +prep=- .* got-out'
  assert_line --regexp '^v6 +udp +pod address +reuse=the proxy.s udp flow, finished +prep=- .* got-out'
}

@test "a capture that sees nothing fails the tool: its control row, the proxy's own datagram, must arrive" {
  # The peer and its capture in a netns of its own that holds the peer's
  # addresses but is wired to nothing: the pod's packets go to the world as
  # ever, and none reaches the capture, the control's included.
  local decoy
  decoy="$(ef_new_netns decoy)"
  ip -n "$decoy" link set lo up
  ip -n "$decoy" addr add "$EF_DENY4/32" dev lo
  ip -n "$decoy" addr add "$EF_DENY6/128" dev lo
  run ef_escape --family 4 --peer-netns "/run/netns/$decoy"
  echo "$output" >&3
  assert_failure 2
  assert_line --regexp '^v4 +udp +unbound .*actor=proxy \(control\) +CAPTURE BROKEN'
}

@test "a root process in a netns nested in the pod gets nothing out through the forward chain, nor plants an entry for the workload" {
  ef_nested_netns
  run ef_escape --family both --nested-netns "/run/netns/$NESTED" --nested4 10.200.0.2 --nested6 fd00:200::2
  echo "$output" >&3
  assert_success
  refute_output --partial got-out
  # Riding the proxy's finished flow with the pod's own address: IPv4 input
  # drops the martian source itself; for IPv6 the reverse-path check does.
  assert_line --regexp '^v4 +udp +the pod.s address \(IP_TRANSPARENT\) .*actor=root in a nested netns +blocked .*martian'
  assert_line --regexp '^v6 +udp +the pod.s address \(IP_TRANSPARENT\) .*actor=root in a nested netns +refused +spoofed_dropped \+1'
  assert_line --regexp '^v4 +udp +pod address +reuse=- +prep=entry forged from a nested netns .* refused +udp_refused \+1'
  assert_line --regexp '^v6 +udp +pod address +reuse=- +prep=entry forged from a nested netns .* refused +udp_refused \+1'
}

@test "the tool finds the nested netns's ways out of a forward chain that trusts conntrack state" {
  ef_nested_netns
  ef_conntrack_shortcut
  run ef_escape --family both --nested-netns "/run/netns/$NESTED" --nested4 10.200.0.2 --nested6 fd00:200::2
  echo "$output" >&3
  assert_failure 1
  assert_line --regexp '^v6 +udp +the pod.s address \(IP_TRANSPARENT\) +reuse=the proxy.s udp flow, finished .* got-out'
  assert_line --regexp '^v4 +udp +pod address +reuse=- +prep=entry forged from a nested netns .* got-out'
  assert_line --regexp '^v6 +udp +pod address +reuse=- +prep=entry forged from a nested netns .* got-out'
}
