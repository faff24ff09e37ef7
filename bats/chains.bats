#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 4, chains: the reference chain (bridge + host-local, egress-fence last;
# loopback for lo) declared as 1.0.0, 0.3.1 (what Calico and Cilium still write)
# and 0.4.0, driven through libcni's cnitool and through go-cni as containerd
# drives it. In each: ADD fences the pod, CHECK passes and catches a tampered
# table, DEL removes the table and is repeatable.

load helpers

setup() {
  ef_setup
  ef_setup_pod
  # A live listener on a denied address: "refused" below can only be the fence.
  ef_world_listen tcp "$EF_DENY4" 8080
}

teardown() {
  ef_teardown
}

refused_by_fence() {
  run -111 ef_probe connect tcp "$EF_DENY4" 8080 --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
}

# A rule-level change CHECK must notice: the denied address joins the allowlist.
tamper() {
  ef_nft add element inet egress_fence allow4 "{ $EF_DENY4 . tcp . 8080 }"
}

# plugin_check RESULT_FILE: 0.3.1 has no CHECK, so libcni refuses it before any
# plugin runs (tested by the callers); the plugin itself still answers CHECK
# with the cached result, which is how an operator can verify such a pod.
plugin_check() {
  ef_fence_stdin "$1" | ef_plugin CHECK
}

# chain_via_cnitool VERSION
chain_via_cnitool() {
  local v="$1"
  ef_write_conf --version "$v"
  run ef_pod_add
  assert_success
  run jq -r '.cniVersion' "$EF_TMP/$EF_POD.result.json"
  assert_output "$v"
  ef_table_present
  refused_by_fence

  if [ "$v" = 0.3.1 ]; then
    run ef_cnitool check
    assert_failure
    assert_output --partial 'does not support the CHECK command'
    run plugin_check "$EF_TMP/$EF_POD.result.json"
    assert_success
    tamper
    run plugin_check "$EF_TMP/$EF_POD.result.json"
    assert_failure
    assert_equal "$(head -n1 <<<"$output" | jq -r .code)" 102
  else
    run ef_cnitool check
    assert_success
    tamper
    run ef_cnitool check
    assert_failure
    assert_output --partial 'differs'
  fi

  run ef_pod_del
  assert_success
  run ef_table_present
  assert_failure
  run ef_fence_tables "$EF_POD"
  assert_output ""
  run ef_pod_del
  assert_success
}

# chain_via_runtime VERSION
chain_via_runtime() {
  local v="$1"
  ef_write_conf --version "$v"
  run ef_runtime setup
  assert_success
  # go-cni converts what it prints to its own version; libcni's cache keeps
  # the chain's result as egress-fence printed it, in the declared version.
  local cached="$EF_TMP/cached-result.json"
  jq '.result' "/var/lib/cni/results/$EF_NET-ctr-$EF_POD-eth0" >"$cached"
  run jq -r '.cniVersion, (.ips | length)' "$cached"
  assert_output "$v"$'\n2'
  ef_table_present
  refused_by_fence

  if [ "$v" = 0.3.1 ]; then
    run ef_runtime check
    assert_failure
    assert_output --partial 'does not support the CHECK command'
    # The result go-cni cached for this attachment is the plugin's prevResult.
    run plugin_check "$cached"
    assert_success
    tamper
    run plugin_check "$cached"
    assert_failure
    assert_equal "$(head -n1 <<<"$output" | jq -r .code)" 102
  else
    run ef_runtime check
    assert_success
    tamper
    run ef_runtime check
    assert_failure
    assert_equal "$(ef_cni_error_code <<<"$output")" 102
  fi

  run ef_runtime remove
  assert_success
  run ef_fence_tables "$EF_POD"
  assert_output ""
  run ef_runtime remove
  assert_success
}

@test "chains: 1.0.0 through cnitool: ADD fences, CHECK passes and catches tampering, DEL twice" {
  chain_via_cnitool 1.0.0
}

@test "chains: 0.4.0 through cnitool: ADD fences, CHECK passes and catches tampering, DEL twice" {
  chain_via_cnitool 0.4.0
}

@test "chains: 0.3.1 through cnitool: ADD fences, libcni refuses CHECK, the plugin's CHECK works, DEL twice" {
  chain_via_cnitool 0.3.1
}

@test "chains: 1.0.0 through ef-runtime (go-cni): setup fences, check passes and catches tampering, remove twice" {
  chain_via_runtime 1.0.0
}

@test "chains: 0.4.0 through ef-runtime (go-cni): setup fences, check passes and catches tampering, remove twice" {
  chain_via_runtime 0.4.0
}

@test "chains: 0.3.1 through ef-runtime (go-cni): setup fences, go-cni refuses check, the plugin's CHECK works, remove twice" {
  chain_via_runtime 0.3.1
}
