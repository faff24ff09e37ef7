#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 8: OpenShell's CNI contract for its sidecar topology (bats/conf/openshell-sidecar.conflist),
# end to end through ef-runtime (go-cni, as containerd calls the chain), and the ruleset's
# IPv6 behaviour (neighbour discovery, ICMPv6) for dual-stack and IPv6-only pods.
#   selector: openshell.ai/cni=enabled AND openshell.ai/network-enforcement-mode=cni-sidecar
#             -> openshell-sidecar; exempt uid from openshell.ai/proxy-uid (1-65535);
#             openshell.ai/cni-contract-version at most 1
#   openshell-sidecar: no exempt uids of its own and no allow entries, DNS included, as
#             conf/examples/openshell-sidecar.json ships it (a test checks they agree);
#             loopback (the proxy on 127.0.0.1:3128) is always open. The IPv6 tests add
#             udp 53 on the WORLD addresses to have an allowed destination to reach.

load helpers

setup() {
  ef_setup
  openshell_write_conf
  ef_setup_pod
  EF_POD_NAMESPACE=default
}

teardown() {
  ef_teardown
}

# openshell_write_conf [JQ_FILTER]: the OpenShell sidecar chain replaces the reference
# chain as this test's $EF_CONFLIST (the loopback network stays).
openshell_write_conf() {
  ef_render_template "$EF_CONF_SRC/openshell-sidecar.conflist" | jq "${1:-.}" >"$EF_CONFLIST"
}

# A jq filter giving the sidecar profile an allowed destination (udp 53 on the
# WORLD addresses), for the tests that need one; the shipped profile has none.
# shellcheck disable=SC2016 # $w4 and $w6 are jq's variables, not the shell's
WITH_DNS_STAND_IN='(.plugins[] | select(.type == "egress-fence") | .profiles["openshell-sidecar"].allow) =
  [{cidr: ($w4 + "/32"), protocol: "udp", ports: [53]}, {cidr: ($w6 + "/128"), protocol: "udp", ports: [53]}]'
with_dns_stand_in() {
  jq --arg w4 "$EF_WORLD4" --arg w6 "$EF_WORLD6" "$WITH_DNS_STAND_IN" "$EF_CONFLIST" >"$EF_CONFLIST.new"
  mv "$EF_CONFLIST.new" "$EF_CONFLIST"
}

# OpenShell's annotations for a sandbox pod with its proxy sidecar running as $EF_PROXY_UID.
OS_ANNOTATIONS=(--annotation openshell.ai/cni=enabled
  --annotation openshell.ai/network-enforcement-mode=cni-sidecar
  --annotation "openshell.ai/proxy-uid=1337")

tcp_as() { ef_probe connect tcp "$2" "${3:-8080}" --uid "$1" --timeout-ms 5000; }

no_fence() {
  run ef_fence_tables "$EF_POD"
  assert_output ""
}

fenced() {
  ef_table_present || fail "no table inet egress_fence in the pod"
}

# ms_since START_NS: milliseconds elapsed since a `date +%s%N` reading.
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

@test "openshell: bypass detection: the workload's direct connect is refused at once (not a timeout), the proxy uid connects out" {
  ef_listen_in "$EF_WORLD" tcp "$EF_DENY4" 8080
  run ef_runtime setup "${OS_ANNOTATIONS[@]}"
  assert_success
  fenced
  run -0 ef_runtime check "${OS_ANNOTATIONS[@]}"

  local t0 ms
  t0="$(date +%s%N)"
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
  ms="$(ms_since "$t0")"
  echo "workload connect refused after ${ms} ms" >&3
  [ "$ms" -lt 1000 ] || fail "refusal took ${ms} ms: looks like a timeout, not a reset"
  [ "$(ef_counter tcp_refused)" -ge 1 ] || fail "tcp_refused did not count the refusal"

  run -0 tcp_as "$EF_PROXY_UID" "$EF_DENY4"
  [ "$(ef_counter exempt_accepted)" -ge 1 ] || fail "exempt_accepted did not count the proxy"
  # Only the annotated uid is exempt: the profile itself exempts nobody.
  run -111 tcp_as $((EF_PROXY_UID + 1)) "$EF_DENY4"
}

@test "openshell: the workload reaches the proxy on loopback 127.0.0.1:3128 and nothing else, DNS included; the proxy uid resolves" {
  ef_listen_start "$EF_WORLD" udp "$EF_WORLD4" 53
  ef_listen_start "$EF_WORLD" tcp "$EF_WORLD4" 53
  ef_listen_start "$EF_WORLD" udp "$EF_WORLD6" 53
  ef_listen_start "$EF_WORLD" tcp "$EF_WORLD4" 8080
  ef_listen_wait
  run ef_runtime setup "${OS_ANNOTATIONS[@]}"
  assert_success
  fenced
  # The proxy sidecar listens inside the pod netns (lo is up: the loopback network ran).
  ef_listen_in "$EF_POD" tcp 127.0.0.1 3128
  run -0 tcp_as "$EF_WORKLOAD_UID" 127.0.0.1 3128
  # DNS from the workload is refused like anything else: query names are a way out.
  local before
  before="$(ef_counter udp_refused)"
  run -111 ef_probe udp "$EF_WORLD4" 53 --expect-reply --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
  run -111 ef_probe udp "$EF_WORLD6" 53 --expect-reply --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
  (($(ef_counter udp_refused) >= before + 2)) || fail "udp_refused did not count the DNS queries"
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_WORLD4" 53
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_WORLD4"
  # The proxy resolves names for the workload.
  run -0 ef_probe udp "$EF_WORLD4" 53 --expect-reply --uid "$EF_PROXY_UID" --timeout-ms 2000
}

@test "openshell: cni-contract-version above 1 (or not a version) fails ADD with 104 and installs nothing; 1 and absent work" {
  local v
  for v in 2 999 abc 0; do
    ef_setup_pod "cv$v"
    run ef_runtime setup "${OS_ANNOTATIONS[@]}" --annotation "openshell.ai/cni-contract-version=$v"
    assert_failure
    assert_equal "$(ef_cni_error_code <<<"$output")" 104
    assert_output --partial openshell.ai/cni-contract-version
    no_fence
  done
  for v in 1 absent; do
    ef_setup_pod "cv$v"
    local a=("${OS_ANNOTATIONS[@]}")
    [ "$v" = absent ] || a+=(--annotation "openshell.ai/cni-contract-version=$v")
    run ef_runtime setup "${a[@]}"
    assert_success
    fenced
    run -0 ef_runtime check "${a[@]}"
    run -0 ef_runtime remove "${a[@]}"
  done
}

@test "openshell: cni=enabled with another network-enforcement-mode (or none) is not fenced by the sidecar selector" {
  ef_listen_in "$EF_WORLD" tcp "$EF_DENY4" 8080
  local mode
  for mode in proxy iptables cni-sidecar-v2 none; do
    ef_setup_pod "m$mode"
    local a=(--annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=1337)
    [ "$mode" = none ] || a+=(--annotation "openshell.ai/network-enforcement-mode=$mode")
    run ef_runtime setup "${a[@]}"
    assert_success
    no_fence
    run -0 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
  done
  # And the enforcement mode without cni=enabled selects nothing either.
  ef_setup_pod mnocni
  run ef_runtime setup --annotation openshell.ai/network-enforcement-mode=cni-sidecar --annotation openshell.ai/proxy-uid=1337
  assert_success
  no_fence
}

@test "openshell: a sidecar pod without a usable proxy-uid (missing, 0, above 65535) fails ADD with 104" {
  local uid
  for uid in missing 0 65536; do
    ef_setup_pod "u$uid"
    local a=(--annotation openshell.ai/cni=enabled --annotation openshell.ai/network-enforcement-mode=cni-sidecar)
    [ "$uid" = missing ] || a+=(--annotation "openshell.ai/proxy-uid=$uid")
    run ef_runtime setup "${a[@]}"
    assert_failure
    assert_equal "$(ef_cni_error_code <<<"$output")" 104
    assert_output --partial openshell.ai/proxy-uid
    no_fence
  done
}

@test "openshell: a runtime that ignores the pod-annotations capability (CRI-O before 1.29) fails ADD with 104 instead of passing the sandbox unfenced" {
  run ef_runtime setup --no-annotations-capability "${OS_ANNOTATIONS[@]}"
  assert_failure
  assert_equal "$(ef_cni_error_code <<<"$output")" 104
  assert_output --partial "the runtime delivers no pod annotations"
  no_fence
  # The runtime tears the failed sandbox down: DEL passes.
  run -0 ef_runtime remove --no-annotations-capability
  # The same pod through a runtime that delivers them is fenced.
  run ef_runtime setup "${OS_ANNOTATIONS[@]}"
  assert_success
  fenced
}

@test "openshell: the production example validates, allows nothing (no DNS), and is what these tests run" {
  local example="$EF_EXAMPLES/openshell-sidecar.json"
  run -0 "$EF_BIN/egress-fence-ctl" validate --config "$example"
  # No looser than OpenShell's own sidecar fence: no allow entries, no exempt UID of its own.
  run -0 jq -e '.profiles | length == 1 and .["openshell-sidecar"].allow == [] and .["openshell-sidecar"].exemptUids == []' "$example"
  # The tests' chain carries the same selectors and profiles.
  # shellcheck disable=SC2016 # $e and $ex are jq's variables
  run -0 jq -e --slurpfile ex "$example" '(.plugins[] | select(.type == "egress-fence")) as $e
    | $e.selectors == $ex[0].selectors and $e.profiles == $ex[0].profiles and $e.capabilities == $ex[0].capabilities' \
    "$EF_CONF_SRC/openshell-sidecar.conflist"
}

# --- IPv6: neighbour discovery and ICMPv6 ------------------------------------------

# flush_neigh: forget every neighbour on both ends, so the next packet needs ND again.
flush_neigh() {
  ip -n "$EF_POD" -6 neigh flush all
  ip -n "$EF_WORLD" -6 neigh flush all
  ip -n "$EF_POD" -4 neigh flush all
  ip -n "$EF_WORLD" -4 neigh flush all
  [ -z "$(ip -n "$EF_POD" -6 neigh show dev eth0 | grep -v FAILED || true)" ] || fail "pod neighbour cache not empty"
}

dns6_as_workload() { ef_probe udp "$EF_WORLD6" 53 --expect-reply --uid "$EF_WORKLOAD_UID" --timeout-ms 2000; }

# nd_after_flush: the allowed v6 destination answers, and again after both neighbour caches were flushed.
nd_after_flush() {
  run -0 dns6_as_workload
  flush_neigh
  run -0 dns6_as_workload
  ip -n "$EF_POD" -6 neigh show "$EF_WORLD6" dev eth0 | grep -Eq 'REACHABLE|STALE|DELAY|PROBE' ||
    fail "the pod did not re-learn $EF_WORLD6"
  flush_neigh
  run -0 dns6_as_workload
}

@test "ipv6: a fenced dual-stack pod reaches its allowed v6 destination after its neighbour cache expired" {
  with_dns_stand_in
  ef_listen_start "$EF_WORLD" udp "$EF_WORLD6" 53
  ef_listen_start "$EF_WORLD" udp "$EF_WORLD4" 53
  ef_listen_wait
  run ef_runtime setup "${OS_ANNOTATIONS[@]}"
  assert_success
  fenced
  [ -n "$(ef_pod_addr4)" ] && [ -n "$(ef_pod_addr6)" ] || fail "pod is not dual-stack"
  nd_after_flush
  run -0 ef_probe udp "$EF_WORLD4" 53 --expect-reply --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
}

@test "ipv6: a fenced IPv6-only pod reaches its allowed v6 destination after its neighbour cache expired" {
  # The same chain with only the v6 range in IPAM.
  openshell_write_conf '(.plugins[] | select(.type == "bridge") | .ipam.ranges) |= [.[1]]'
  with_dns_stand_in
  ef_listen_in "$EF_WORLD" udp "$EF_WORLD6" 53
  run ef_runtime setup "${OS_ANNOTATIONS[@]}"
  assert_success
  fenced
  [ -z "$(ef_pod_addr4)" ] || fail "pod has an IPv4 address"
  [ -n "$(ef_pod_addr6)" ] || fail "pod has no IPv6 address"
  nd_after_flush
  run -0 ef_runtime check "${OS_ANNOTATIONS[@]}"
}

@test "ipv6: the only ICMPv6 the fence passes by type is the kernel's ND and MLD; echo is dropped, conntrack-related errors pass both ways" {
  with_dns_stand_in
  run ef_runtime setup "${OS_ANNOTATIONS[@]}"
  assert_success
  fenced
  # Compiled ruleset: the icmpv6 rules of output are router solicitation,
  # neighbour solicitation/advertisement and MLD reports, all after every
  # process's packet went to refuse; none in forward.
  run -0 ef_nft list chain inet egress_fence output
  assert_equal "$(grep -c icmpv6 <<<"$output")" 6
  assert_line --regexp '^[[:space:]]*icmpv6 type nd-router-solicit ip6 hoplimit 255 ip6 daddr ff02::2 accept$'
  assert_line --regexp '^[[:space:]]*icmpv6 type 135-136 ip6 hoplimit 255 goto neighbours$'
  assert_equal "$(grep -E 'icmpv6 type (mld2-listener-report|131-132) ip6 hoplimit 1 ' <<<"$output" | grep -c mld_accepted)" 4
  local first_icmpv6 judged
  first_icmpv6="$(grep -n icmpv6 <<<"$output" | head -n1 | cut -d: -f1)"
  judged="$(grep -n 'meta skuid 0-4294967295 goto refuse' <<<"$output" | cut -d: -f1)"
  ((judged < first_icmpv6)) || fail "an icmpv6 rule comes before the rule that judges every process's packet"
  run -0 ef_nft list chain inet egress_fence forward
  refute_output --partial icmpv6

  # Echo request (type 128) from the workload is dropped and counted.
  ef_allow_ping_sockets
  # The path itself carries echo: the world pings the pod, whose reply is conntrack-established.
  ip netns exec "$EF_WORLD" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" icmp "$(ef_pod_addr6)" --timeout-ms 2000
  local before
  before="$(ef_counter other_dropped)"
  # A tap of the test's own: other_dropped also counts the pod's own MLD reports.
  ef_tap_add echo6 ip6 daddr "$EF_WORLD6" icmpv6 type echo-request
  # v6 ping sockets ignore the hook's drop: no reply, 110.
  run -110 ef_probe icmp "$EF_WORLD6" --uid "$EF_WORKLOAD_UID" --timeout-ms 1000
  assert_equal "$(ef_tap echo6)" 1
  [ "$(ef_counter other_dropped)" -gt "$before" ] || fail "other_dropped did not count the echo request"

  # A related error coming back: udp to an allowed port with no listener -> port unreachable.
  local allowed refused
  allowed="$(ef_counter allowed_accepted)"
  refused="$(ef_counter udp_refused)"
  ef_tap_add -n "$EF_WORLD" unreach6 ip6 daddr "$(ef_pod_addr6)" icmpv6 type destination-unreachable
  run -111 ef_probe udp "$EF_WORLD6" 53 --expect-reply --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
  # The 111 is the world's error, not the fence's own reject (which also gives 111).
  (($(ef_counter allowed_accepted) > allowed)) || fail "allowed_accepted stayed at $allowed: the datagram did not leave"
  assert_equal "$(ef_counter udp_refused)" "$refused"
  assert_equal "$(ef_tap unreach6 "$EF_WORLD")" 1
  # A related error going out: the pod answers the world's udp to a closed port with
  # ICMPv6 port unreachable (the fence's ct related path, not an icmpv6 type rule).
  run -111 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" udp "$(ef_pod_addr6)" 9999 --expect-reply --timeout-ms 2000
}
