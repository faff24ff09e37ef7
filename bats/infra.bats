#!/usr/bin/env bats
# The harness itself, with the reference chain minus egress-fence: if these
# fail, a "refused" in the fence tests could mean "never reachable".

load helpers

setup() {
  ef_setup
  ef_write_conf --no-fence
  ef_setup_pod
}

teardown() {
  ef_teardown
}

@test "infra: cnitool ADD gives the pod both addresses, lo up, and no default route" {
  run ef_pod_add
  assert_success
  run jq -r '.ips[].address' "$EF_TMP/$EF_POD.result.json"
  assert_output --regexp "^${EF_SUBNET4%.*}\.[0-9]+/24"
  assert_output --partial "${EF_WORLD6%::*}::"
  run ip -n "$EF_POD" -o link show lo
  assert_output --partial "UP"
  run ip -n "$EF_POD" -4 route show default
  assert_output ""
  run ip -n "$EF_POD" -6 route show default
  assert_output ""
}

@test "infra: unfenced pod reaches world listeners over tcp and udp, v4 and v6" {
  ef_world_listen_all
  ef_pod_add
  local addr
  for addr in "$EF_WORLD4" "$EF_DENY4" "$EF_WORLD6" "$EF_DENY6"; do
    run -0 ef_probe connect tcp "$addr" 8080 --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
    run -0 ef_probe udp "$addr" 53 --uid "$EF_WORKLOAD_UID" --expect-reply --timeout-ms 2000
    # No listener on that port: the world refuses, so the harness can tell refusals apart.
    run -111 ef_probe connect tcp "$addr" 9 --timeout-ms 2000
  done
}

@test "infra: ef-runtime (go-cni) sets up, checks and removes the pod" {
  run ef_runtime setup
  assert_success
  run jq -r '.interfaces.eth0.IPConfigs | length' <<<"$output"
  assert_output 2
  run ip -n "$EF_POD" -o link show lo
  assert_output --partial "UP"
  run ef_runtime check
  assert_success
  run ef_runtime remove
  assert_success
  run ip -n "$EF_POD" link show eth0
  assert_failure
}

@test "infra: cnitool DEL twice, and DEL after the netns is gone, succeed" {
  ef_pod_add
  run ef_cnitool del
  assert_success
  run ef_cnitool del
  assert_success
  ef_pod_add
  ip netns delete "$EF_POD"
  run ef_cnitool del
  assert_success
}

@test "infra: chain declared as 0.3.1 and 0.4.0 works through cnitool" {
  local v
  for v in 0.3.1 0.4.0; do
    ef_write_conf --no-fence --version "$v"
    run ef_pod_add
    assert_success
    run jq -r '.cniVersion' "$EF_TMP/$EF_POD.result.json"
    assert_output "$v"
    run ef_cnitool check
    if [ "$v" = 0.3.1 ]; then # CHECK exists from 0.4.0 on
      assert_failure
      assert_output --partial "does not support the CHECK command"
    else
      assert_success
    fi
    run ef_pod_del
    assert_success
  done
}

@test "infra: teardown leaves no netns, link, state or sysctl change behind" {
  local forward_before
  forward_before="$(sysctl -n net.ipv4.ip_forward)"
  ef_world_listen tcp "$EF_WORLD4" 8080
  ef_pod_add
  run ef_leftovers
  assert_output --partial "$EF_POD"
  local tmp="$EF_TMP"
  ef_teardown
  run ef_leftovers
  assert_output ""
  [ ! -e "$tmp" ]
  run sysctl -n net.ipv4.ip_forward
  assert_output "$forward_before"
  run pgrep -f "efprobe listen tcp $EF_WORLD4 8080"
  assert_failure
}
