#!/usr/bin/env bats
# shellcheck disable=SC2034,SC2030,SC2031 # EF_* are read by helpers.bash; each test is its own subshell
# Issue 4, faults: the plugin killed -9 mid-ADD, ADD over a table an earlier
# ADD left, the netns gone before DEL, and nf_tables refusing the batch.
# Most cases call the plugin directly (env + stdin with a prevResult), as the
# runtime does after the primary plugin, on netns holding a bare eth0 (one end
# of a veth pair inside the pod): the raw-frame chain hooks the pod's
# interface, nothing else of the chain is needed.

load helpers

setup() {
  ef_setup
}

teardown() {
  ef_teardown
}

# bare_pod LABEL: a pod netns with lo and a bare eth0, and its plugin stdin
# (the reference config with a prevResult naming eth0) in $EF_TMP/$EF_POD.stdin.
bare_pod() {
  ef_setup_pod "$1"
  ip -n "$EF_POD" link set lo up
  # No dummy module here; a veth pair with both ends in the pod will do.
  ip -n "$EF_POD" link add eth0 type veth peer name peer0
  ip -n "$EF_POD" link set eth0 up
  jq -n --arg ns "$EF_POD_PATH" \
    '{cniVersion: "1.0.0", interfaces: [{name: "eth0", sandbox: $ns}], ips: []}' >"$EF_TMP/$EF_POD.prev.json"
  ef_fence_stdin "$EF_TMP/$EF_POD.prev.json" >"$EF_TMP/$EF_POD.stdin"
}

# add|check|del in the current pod, the real binary, stdin from the pod's file.
plugin_add() { ef_plugin ADD <"$EF_TMP/$EF_POD.stdin"; }
plugin_check() { ef_plugin CHECK <"$EF_TMP/$EF_POD.stdin"; }
plugin_del() { ef_plugin DEL <"$EF_TMP/$EF_POD.stdin"; }

# Rules, chains and set elements in the pod's egress_fence tables, one count each.
ruleset_counts() {
  ef_nft -j list ruleset | jq -r '[.nftables[] | select(.rule)] | length as $r
    | [.[] | select(.chain)] | length as $c
    | [.[] | select(.set) | .set.elem // [] | length] | add as $e
    | "rules=\($r) chains=\($c) elements=\($e)"' 2>/dev/null
}

# The wrapper the kill test puts first in CNI_PATH under the plugin's name: it
# runs the real binary in the background and kills it -9 after 0-15 ms.
write_killing_wrapper() {
  KILLBIN="$EF_TMP/killbin"
  mkdir -p "$KILLBIN"
  cat >"$KILLBIN/egress-fence" <<EOF
#!/bin/bash
"$EF_BIN/egress-fence" <&0 &
pid=\$!
sleep "0.\$(printf '%03d' \$((RANDOM % 16)))"
kill -9 "\$pid" 2>/dev/null
wait "\$pid"
EOF
  chmod +x "$KILLBIN/egress-fence"
}

@test "faults: 200 ADDs killed -9 at random moments leave no table or a complete CHECK-clean one; re-ADD succeeds" {
  write_killing_wrapper
  local pods=() i
  for i in $(seq 1 16); do
    bare_pod "k$i"
    pods+=("$EF_POD")
  done
  local n killed=0 completed=0 none=0 whole=0 state
  for n in $(seq 0 199); do
    EF_POD="${pods[n % 16]}"
    EF_POD_PATH="/run/netns/$EF_POD"
    # Every other ADD starts from an empty netns (a first install), the rest
    # replace a table (an ADD over an earlier one).
    if ((n % 2 == 0)); then
      run plugin_del
      assert_success
    fi
    set +e
    CNI_COMMAND=ADD CNI_NETNS="$EF_POD_PATH" CNI_IFNAME=eth0 CNI_CONTAINERID="ctr-$EF_POD" \
      CNI_ARGS="$(ef_cni_args)" CNI_PATH="$KILLBIN:$EF_BIN" "$KILLBIN/egress-fence" \
      <"$EF_TMP/$EF_POD.stdin" >/dev/null 2>&1
    local rc=$?
    set -e
    case "$rc" in
      0) completed=$((completed + 1)) ;;
      137) killed=$((killed + 1)) ;;
      *) fail "ADD $n in $EF_POD exited $rc: neither success nor SIGKILL" ;;
    esac
    state="$(ef_fence_tables "$EF_POD")"
    if [ -z "$state" ]; then
      none=$((none + 1))
    else
      run plugin_check
      [ "$status" -eq 0 ] || fail "after ADD $n (exit $rc) $EF_POD holds a table CHECK rejects: $output"
      whole=$((whole + 1))
    fi
  done
  echo "# kill test: $killed killed, $completed completed; afterwards $none without a table, $whole complete" >&3
  ((killed > 0)) || fail "no ADD was killed: the test did not exercise a kill"
  for EF_POD in "${pods[@]}"; do
    EF_POD_PATH="/run/netns/$EF_POD"
    run plugin_add
    assert_success
    run plugin_check
    assert_success
  done
  # A kill never tears a log record: every line is whole JSON.
  run ef_log_bad_lines "$EF_LOGFILE"
  assert_success
  assert_output ""
}

@test "faults: ADD over a table an earlier ADD left replaces it, with no duplicated or stale rules" {
  bare_pod
  run plugin_add
  assert_success
  local once
  once="$(ruleset_counts)"
  [[ "$once" =~ ^rules=[1-9] ]] || fail "unexpected ruleset after one ADD: $once"
  run plugin_add
  assert_success
  assert_equal "$(ruleset_counts)" "$once"
  run plugin_check
  assert_success

  # A table that differs from the fence (as an older version or a tamperer
  # might leave it): an extra rule, an extra allow element, a rule gone.
  ef_nft add rule inet egress_fence output accept
  ef_nft add element inet egress_fence allow4 "{ $EF_DENY4 . tcp . 443 }"
  local handle
  handle="$(ef_nft -a list chain inet egress_fence refuse | awk '/counter name "udp_refused"/ {print $NF}')"
  ef_nft delete rule inet egress_fence refuse handle "$handle"
  run plugin_check
  assert_failure
  run plugin_add
  assert_success
  assert_equal "$(ruleset_counts)" "$once"
  run plugin_check
  assert_success
}

@test "faults: ADD replaces a table left for another container in the same netns" {
  bare_pod
  local first="$EF_POD"
  run plugin_add
  assert_success
  local once
  once="$(ruleset_counts)"
  # The same netns, a new sandbox id: its ADD takes the table over.
  EF_POD="$first-new"
  EF_POD_PATH="/run/netns/$first"
  run ef_plugin ADD <"$EF_TMP/$first.stdin"
  assert_success
  run ef_plugin CHECK <"$EF_TMP/$first.stdin"
  assert_success
  EF_POD="$first"
  assert_equal "$(ruleset_counts)" "$once"
}

@test "faults: DEL succeeds when the netns is gone, or only its unmounted file is left" {
  bare_pod
  run plugin_add
  assert_success
  # An unmounted netns leaves an empty regular file behind.
  umount "$EF_POD_PATH"
  run plugin_del
  assert_success
  assert_output ""
  rm -f "$EF_POD_PATH"
  run plugin_del
  assert_success
  run plugin_del
  assert_success
}

@test "faults: ef-runtime remove succeeds after the pod's netns was deleted" {
  ef_setup_pod
  run ef_runtime setup
  assert_success
  ef_table_present
  ip netns delete "$EF_POD"
  run ef_runtime remove
  assert_success
}

@test "faults: nf_tables refusing the batch fails ADD with 101 and installs nothing" {
  bare_pod
  EF_TEST_FAIL_BATCH=1 run plugin_add
  assert_failure
  assert_equal "$(head -n1 <<<"$output" | jq -r .code)" 101
  run ef_fence_tables "$EF_POD"
  assert_output ""
}

@test "faults: nf_tables refusing the batch leaves the previous table exactly as it was" {
  bare_pod
  run plugin_add
  assert_success
  local before
  before="$(ef_nft list ruleset | ef_normalise_counters)"
  # A different pod identity and profile: a successful ADD would change the table.
  local orig_stdin="$EF_TMP/$EF_POD.stdin"
  EF_POD_ANNOTATIONS='{"egress-fence.io/profile":"locked"}'
  ef_fence_stdin "$EF_TMP/$EF_POD.prev.json" >"$EF_TMP/locked.stdin"
  EF_TEST_FAIL_BATCH=1 run ef_plugin ADD <"$EF_TMP/locked.stdin"
  assert_failure
  assert_equal "$(head -n1 <<<"$output" | jq -r .code)" 101
  assert_equal "$(ef_nft list ruleset | ef_normalise_counters)" "$before"
  run ef_plugin CHECK <"$orig_stdin"
  assert_success
}

@test "faults: nf_tables holding other than the batch it acked fails ADD with 101, naming the difference" {
  bare_pod
  local shim="$EF_BIN/ef_tamper_batch.so"
  [ -f "$shim" ] || fail "no $shim (cmake --build build --target ef_tamper_batch)"
  # The shim turns the output chain's policy drop into accept on the way to
  # the kernel, which acks the batch: only ADD's read-back can tell.
  LD_PRELOAD="$shim" run plugin_add
  assert_failure
  assert_equal "$(head -n1 <<<"$output" | jq -r .code)" 101
  assert_output --partial "holds something else: chain output: hook output priority 0 policy accept, expected hook output priority 0 policy drop"
  # What the kernel holds is what the shim made of the batch.
  run -0 ef_nft list chain inet egress_fence output
  assert_output --partial "policy accept;"
}

@test "faults: nf_tables refusing the batch fails the whole chain's ADD through cnitool with 101" {
  ef_setup_pod
  EF_TEST_FAIL_BATCH=1 run ef_pod_add
  assert_failure
  assert_equal "$(ef_cni_error_code <<<"$output")" 101
  run ef_fence_tables "$EF_POD"
  assert_output ""
}
