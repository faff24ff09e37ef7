#!/usr/bin/env bats
# Every attachment is fenced (issue 18): a pod netns with two CNI attachments,
# as Multus makes them (same container ID; eth0 from the cluster network,
# net1 from a second network whose chain also ends in egress-fence). ADD of
# one never weakens the other's fence, DEL of one never unfences the pod while
# the other is fenced, in either order, and CHECK of each passes after every
# step.

load helpers

setup() {
  ef_setup
  ef_setup_pod
  ef_world_listen_all
  second_network
}

teardown() { ef_teardown; }

# A second network on a bridge of its own, with its own subnets and IPAM, its
# chain ending in the same egress-fence config. Sets NET2 and SUBNET2_6.
second_network() {
  NET2="$EF_NET-b"
  local bridge="efbb$EF_ID" n=$((0x${EF_ID:0:4} % 254 + 1))
  SUBNET2_6="fd00:198:$n::/64"
  ip link add "$bridge" type bridge
  ef_on_teardown ip link delete "$bridge"
  ip link set "$bridge" up
  jq --arg net "$NET2" --arg br "$bridge" --arg s4 "10.198.$n.0/24" --arg s6 "$SUBNET2_6" \
    --arg dir "$EF_IPAMDIR-b" \
    '.name = $net | .plugins[0].bridge = $br | .plugins[0].ipam.dataDir = $dir
     | .plugins[0].ipam.ranges = [[{"subnet": $s4}], [{"subnet": $s6}]]' \
    "$EF_CONFLIST" >"$EF_CONFDIR/20-$NET2.conflist"
  # A denied listener on the second network too.
  WORLD2="$(ef_new_netns w2)"
  DENY2="10.198.$n.201"
  ip link add "efw2$EF_ID" type veth peer name eth0 netns "$WORLD2"
  ef_on_teardown ip link delete "efw2$EF_ID"
  ip link set "efw2$EF_ID" master "$bridge" up
  ip -n "$WORLD2" addr add "$DENY2/24" dev eth0
  ip -n "$WORLD2" link set eth0 up
  ef_listen_in "$WORLD2" tcp "$DENY2" 8080
}

net1() { EF_IFNAME=net1 ef_cnitool "$1" "$NET2"; }

# The devices the netdev table's chains hook, sorted, one per line.
# (nft 1.0.6's JSON leaves the egress device out.)
hooked_devices() {
  ef_nft list table netdev egress_fence | sed -nE 's/.*hook egress device "([^"]+)".*/\1/p' | sort
}

both_checks_pass() {
  run ef_cnitool check
  assert_success
  run net1 check
  assert_success
}

# The workload is still refused at a denied address (on the first network,
# or the one given), and counted.  still_fenced [ADDR]
still_fenced() {
  local before
  before="$(ef_counter tcp_refused)"
  run -111 ef_probe connect tcp "${1:-$EF_DENY4}" 8080 --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
  (($(ef_counter tcp_refused) > before)) || fail "tcp_refused did not grow"
}

@test "ADD of a second attachment adds its raw-frame chain and on-link set; the first attachment's stay" {
  run ef_pod_add
  assert_success
  run net1 add
  assert_success
  assert_equal "$(hooked_devices)" "$(printf 'eth0\nnet1')"
  run -0 ef_nft list set inet egress_fence onlink6_eth0
  assert_output --partial "$EF_SUBNET6"
  run -0 ef_nft list set inet egress_fence onlink6_net1
  assert_output --partial "$SUBNET2_6"
  both_checks_pass
  still_fenced
  still_fenced "$DENY2"
}

@test "DEL of the second attachment, then of the first: the pod stays fenced until the last one goes" {
  run ef_pod_add
  assert_success
  run net1 add
  assert_success
  run net1 del
  assert_success
  assert_equal "$(hooked_devices)" "eth0"
  run ef_nft list set inet egress_fence onlink6_net1
  assert_failure
  run -0 ef_cnitool check
  still_fenced
  run ef_pod_del
  assert_success
  assert_equal "$(ef_fence_tables "$EF_POD")" ""
}

@test "DEL of the first attachment, then of the second: the pod stays fenced until the last one goes" {
  run ef_pod_add
  assert_success
  run net1 add
  assert_success
  run ef_cnitool del
  assert_success
  assert_equal "$(hooked_devices)" "net1"
  run -0 net1 check
  still_fenced "$DENY2"
  # The counters of the fence the pod still has carried on (not reset).
  (($(ef_counter tcp_refused) > 0)) || fail "tcp_refused was reset"
  run net1 del
  assert_success
  assert_equal "$(ef_fence_tables "$EF_POD")" ""
}

@test "a DEL for an attachment that is not fenced leaves the other's fence whole" {
  run ef_pod_add
  assert_success
  local before
  before="$(ef_nft list ruleset | ef_normalise_counters)"
  run env CNI_COMMAND=DEL CNI_NETNS="$EF_POD_PATH" CNI_IFNAME=net7 CNI_CONTAINERID="ctr-$EF_POD" \
    CNI_ARGS="$(ef_cni_args)" CNI_PATH="$EF_BIN" "$EF_BIN/egress-fence" <<<"$(ef_fence_stdin)"
  assert_success
  assert_equal "$(ef_nft list ruleset | ef_normalise_counters)" "$before"
}

@test "a second attachment whose config fences the pod differently fails ADD (105); the fence is unchanged" {
  run ef_pod_add
  assert_success
  local before tmp="$EF_TMP/net2"
  before="$(ef_nft list ruleset | ef_normalise_counters)"
  jq '(.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].exemptUids) = [1337, 1000]' \
    "$EF_CONFDIR/20-$NET2.conflist" >"$tmp"
  mv "$tmp" "$EF_CONFDIR/20-$NET2.conflist"
  run net1 add
  assert_failure
  assert_equal "$(ef_cni_error_code <<<"$output")" 105
  assert_output --partial "attachment net1 would fence this pod differently from attachment eth0"
  assert_equal "$(ef_nft list ruleset | ef_normalise_counters | grep -v egress_net1)" \
    "$(grep -v egress_net1 <<<"$before")"
  run -0 ef_cnitool check
  still_fenced
}
