#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 2 scenarios: the reference chain (bridge + host-local, loopback for lo,
# egress-fence last) driven through libcni's cnitool in a real pod netns.
# Every denied target is a live listener in the world netns, so "connected"
# would mean "unfenced", and refusals come from the fence, not from the world.

load helpers

setup() {
  ef_setup
  ef_setup_pod
}

teardown() {
  ef_teardown
}

# Probes run as the workload unless a --uid is given later on the line.
probe_tcp() { ef_probe connect tcp "$1" "$2" --uid "${3:-$EF_WORKLOAD_UID}" --timeout-ms 2000; }
probe_udp() { ef_probe udp "$1" "$2" --uid "${3:-$EF_WORKLOAD_UID}" --expect-reply --timeout-ms 2000; }

@test "VERSION answers all five spec versions" {
  run -0 bash -c "echo '{\"cniVersion\":\"1.0.0\"}' | CNI_COMMAND=VERSION '$EF_BIN/egress-fence'"
  run jq -c '.supportedVersions | sort' <<<"$output"
  assert_output '["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]'
}

@test "ADD fences a sandboxes pod and passes the bridge result through" {
  ef_fenced_pod
  run jq -r '.cniVersion, (.ips | length), (.interfaces | map(.name) | index("eth0") != null)' \
    "$EF_TMP/$EF_POD.result.json"
  assert_output $'1.0.0\n2\ntrue'
  run jq -r '.ips[].address' "$EF_TMP/$EF_POD.result.json"
  assert_line "$(ef_pod_addr4)/24"
  assert_line "$(ef_pod_addr6)/64"
}

@test "v4: the workload UID is refused (111) by a denied address" {
  ef_fenced_pod
  run -111 probe_tcp "$EF_DENY4" 8080
}

@test "v4: the proxy UID connects to the same denied address" {
  ef_fenced_pod
  run -0 probe_tcp "$EF_DENY4" 8080 "$EF_PROXY_UID"
}

@test "v4: the workload UID connects to an allowed tcp destination" {
  ef_fenced_pod
  run -0 probe_tcp "$EF_WORLD4" 8080
}

@test "v4: an allowed udp DNS-like destination answers" {
  ef_fenced_pod
  run -0 probe_udp "$EF_WORLD4" 53
}

@test "v4: a udp send to a denied address is refused (111)" {
  ef_fenced_pod
  run -111 probe_udp "$EF_DENY4" 53
}

@test "v6: the workload UID is refused (111) by a denied address" {
  ef_fenced_pod
  run -111 probe_tcp "$EF_DENY6" 8080
}

@test "v6: the proxy UID connects to the same denied address" {
  ef_fenced_pod
  run -0 probe_tcp "$EF_DENY6" 8080 "$EF_PROXY_UID"
}

@test "v6: the workload UID connects to an allowed tcp destination" {
  ef_fenced_pod
  run -0 probe_tcp "$EF_WORLD6" 8080
}

@test "v6: an allowed udp DNS-like destination answers" {
  ef_fenced_pod
  run -0 probe_udp "$EF_WORLD6" 53
}

@test "v6: a udp send to a denied address is refused (111)" {
  ef_fenced_pod
  run -111 probe_udp "$EF_DENY6" 53
}

# Masked hash sets, port-range groups and interval sets pass exactly their
# packets, in the kernel: WORLD and DENY are .200 and .201 (::200, ::201).
# Seven larger v6 groups (documentation addresses) and the /126 one fill the
# eight v6 hash sets, so WORLD6's port range lands in the interval set.
@test "masked hash sets, port-range groups and interval sets let through exactly what the entries allow" {
  local allow
  allow="$(jq -cn --arg w4 "$EF_WORLD4" --arg w6 "$EF_WORLD6" '[
    {"cidr": "\($w4)/30", "protocol": "tcp", "ports": [8080]},
    {"cidr": "\($w4)/31", "protocol": "any"},
    {"cidr": "\($w4)/32", "protocol": "udp", "ports": ["50-60"]},
    {"cidr": "\($w6)/126", "protocol": "udp", "ports": [53]},
    {"cidr": "2001:db8:ff::/126", "protocol": "udp", "ports": [53]},
    {"cidr": "\($w6)/128", "protocol": "tcp", "ports": ["8000-8100"]}
  ] + [range(1; 8) as $l | ("0", "8000") as $g
       | {"cidr": "2001:db8:\($l):\($g)::/\(56 + $l)", "protocol": "tcp", "ports": [1]}]')"
  jq --argjson a "$allow" '(.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].allow) = $a' \
    "$EF_CONFLIST" >"$EF_TMP/masked.conflist"
  mv "$EF_TMP/masked.conflist" "$EF_CONFLIST"
  ef_fenced_pod
  run -0 ef_nft list table inet egress_fence
  assert_output --partial "@allow4_30 "
  assert_output --partial "@allow4_any_31 "
  assert_output --partial "@allow4_ports_50_60 th dport 50-60 "
  assert_output --partial "@allow6_126 "
  assert_output --partial "@allow6_ranges "
  run -0 probe_tcp "$EF_WORLD4" 8080
  run -0 probe_tcp "$EF_DENY4" 8080
  # Just outside the /30, inside the /29: a mask one bit short lets it through.
  local outside4="${EF_WORLD4%.*}.204"
  ip -n "$EF_WORLD" addr add "$outside4/24" dev eth0
  ef_world_listen tcp "$outside4" 8080
  run -111 probe_tcp "$outside4" 8080
  run -0 probe_udp "$EF_DENY4" 53
  run -0 probe_udp "$EF_WORLD4" 53
  run -0 probe_tcp "$EF_WORLD6" 8080
  run -111 probe_tcp "$EF_DENY6" 8080
  run -0 probe_udp "$EF_DENY6" 53
}

@test "a refused tcp connection increments tcp_refused" {
  ef_fenced_pod
  local before after
  before="$(ef_counter tcp_refused)"
  run -111 probe_tcp "$EF_DENY4" 8080
  run -111 probe_tcp "$EF_DENY6" 8080
  after="$(ef_counter tcp_refused)"
  [ "$after" -ge $((before + 2)) ] || fail "tcp_refused went from $before to $after"
}

@test "a refused udp send increments udp_refused" {
  ef_fenced_pod
  local before after
  before="$(ef_counter udp_refused)"
  run -111 probe_udp "$EF_DENY4" 53
  run -111 probe_udp "$EF_DENY6" 53
  after="$(ef_counter udp_refused)"
  [ "$after" -ge $((before + 2)) ] || fail "udp_refused went from $before to $after"
}

@test "ADD installs exactly the ruleset egress-fence-ctl render prints" {
  render_is_installed_and_loads
}

# Every set layout the compiler chooses (lib/fence/allow_sets.h): full-length
# and masked hash sets, port-range groups, interval sets (pipapo for /0,
# rbtree for the ninth `any` prefix length), v4 and v6. Addresses from the
# documentation ranges: this test sends no traffic.
@test "every set layout: ADD installs exactly what render prints, and it loads with nft -f" {
  local allow='[
    {"cidr": "198.51.100.7/32", "protocol": "tcp", "ports": [443]},
    {"cidr": "198.51.100.0/24", "protocol": "tcp", "ports": [443, 8443]},
    {"cidr": "203.0.113.16/28", "protocol": "udp", "ports": [53]},
    {"cidr": "203.0.113.0/24", "protocol": "tcp", "ports": ["9000-9100"]},
    {"cidr": "192.0.2.9/32", "protocol": "any"},
    {"cidr": "192.0.2.128/25", "protocol": "any"},
    {"cidr": "2001:db8::7/128", "protocol": "tcp", "ports": [443, "8000-8100"]},
    {"cidr": "2001:db8:1::/64", "protocol": "udp", "ports": [53]},
    {"cidr": "2001:db8:2::/48", "protocol": "any"},
    {"cidr": "2001:db8:3::/56", "protocol": "sctp", "ports": ["1-65535"]},
    {"cidr": "0.0.0.0/0", "protocol": "udp", "ports": [9]},
    {"cidr": "192.0.2.128/26", "protocol": "any"}, {"cidr": "192.0.2.192/27", "protocol": "any"},
    {"cidr": "192.0.2.224/28", "protocol": "any"}, {"cidr": "192.0.2.240/29", "protocol": "any"},
    {"cidr": "192.0.2.248/30", "protocol": "any"}, {"cidr": "192.0.2.252/31", "protocol": "any"},
    {"cidr": "198.18.0.0/24", "protocol": "any"}
  ]'
  jq --argjson a "$allow" '(.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].allow) += $a' \
    "$EF_CONFLIST" >"$EF_TMP/layouts.conflist"
  mv "$EF_TMP/layouts.conflist" "$EF_CONFLIST"
  render_is_installed_and_loads
  # The layouts are really there: hash sets with a size, masked lookups, interval sets.
  run -0 ef_nft list table inet egress_fence
  for name in allow4 allow4_24 allow4_28 allow4_24_ports_9000_9100 allow4_ranges allow4_any allow4_any_25 \
    allow4_any_ranges allow6 allow6_64 allow6_ports_8000_8100 allow6_56_ports_1_65535 allow6_any_48; do
    assert_output --partial "set $name {"
  done
  assert_output --partial "ip daddr & 255.255.255.0 . meta l4proto . th dport @allow4_24"
  assert_output --partial "ip6 daddr & ffff:ffff:ffff:: == @allow6_any_48"
  assert_output --partial "ip daddr & 255.255.255.0 . meta l4proto @allow4_24_ports_9000_9100 th dport 9000-9100"
}

# ADD through cnitool, then: the pod's whole ruleset is what render prints;
# the rendered text loads with nft -f and nft prints back the same ruleset,
# except the two secmark statements nft 1.0.6 can print but not parse (the
# raw-frame stamp, docs/threat-model.md, "The ruleset a pod gets"; rawsocket.bats checks them).
render_is_installed_and_loads() {
  run ef_pod_add
  assert_success
  local text rendered pod
  # The pod's IPv6 subnet is on its link (prevResult: host-local's /64).
  text="$("$EF_BIN/egress-fence-ctl" render --config "$EF_CONFLIST" --namespace sandboxes \
    --name "$EF_POD_NAME" --container-id "ctr-$EF_POD" --onlink "$EF_SUBNET6")" || fail "render failed: $text"
  rendered="$(ef_normalise_counters <<<"$text")"
  # The whole ruleset: the pod netns is test-owned, only the fence writes there.
  pod="$(ef_nft list ruleset | ef_normalise_counters)"
  same_ruleset "$rendered" "$pod" "rendered" "pod"
  local scratch loadable
  scratch="$(ef_new_netns scratch)"
  # The fence hooks the pod's interface (netdev family): give it one.
  ip -n "$scratch" link add eth0 type veth peer name eth1
  loadable="$(grep -v 'meta secmark' <<<"$rendered")"
  [ "$(grep -c 'meta secmark' <<<"$rendered")" -eq 3 ] || fail "expected exactly 3 secmark lines in the render"
  run ip netns exec "$scratch" nft -f - <<<"$loadable"
  assert_success
  same_ruleset "$loadable" "$(ip netns exec "$scratch" nft list ruleset | ef_normalise_counters)" \
    "rendered" "rendered, loaded and listed"
}

# same_ruleset A B NAME_A NAME_B: fails with a unified diff when they differ.
same_ruleset() {
  if [ "$1" = "$2" ]; then return 0; fi
  diff -u --label "$3" --label "$4" <(echo "$1") <(echo "$2") | sed 's/^/# /' >&3 || true
  fail "$4 ruleset differs from the $3 one (diff above)"
}

@test "DEL removes the table and a second DEL succeeds" {
  ef_fenced_pod
  run ef_cnitool del
  assert_success
  run ef_table_present
  assert_failure
  run -0 ef_nft list ruleset
  assert_output ""
  run ef_cnitool del
  assert_success
}

@test "DEL after the netns is deleted succeeds" {
  ef_fenced_pod
  ip netns delete "$EF_POD"
  run ef_cnitool del
  assert_success
}

@test "a pod matched by no selector gets no table and its traffic is free" {
  ef_world_listen_all
  EF_POD_NAMESPACE=default
  run ef_pod_add
  assert_success
  run ef_table_present
  assert_failure
  run -0 ef_nft list ruleset
  assert_output ""
  run -0 probe_tcp "$EF_DENY4" 8080
  run -0 probe_udp "$EF_DENY6" 53
}

@test "chains declared as 0.3.1 and 0.4.0 fence and release the pod" {
  ef_world_listen tcp "$EF_DENY4" 8080
  local v
  for v in 0.3.1 0.4.0; do
    ef_write_conf --version "$v"
    run ef_pod_add
    assert_success
    run jq -r '.cniVersion' "$EF_TMP/$EF_POD.result.json"
    assert_output "$v"
    ef_table_present
    run -111 probe_tcp "$EF_DENY4" 8080
    run ef_pod_del
    assert_success
    run ef_fence_tables "$EF_POD"
    assert_output ""
  done
}

@test "ef-runtime: an annotation-selected pod is fenced, its annotated proxy UID exempt" {
  ef_world_listen tcp "$EF_DENY4" 8080
  EF_POD_NAMESPACE=default
  run ef_runtime setup --annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=2000
  assert_success
  ef_table_present
  run -111 probe_tcp "$EF_DENY4" 8080
  run -0 probe_tcp "$EF_DENY4" 8080 2000
  run ef_runtime remove
  assert_success
  run ef_fence_tables "$EF_POD"
  assert_output ""
}
