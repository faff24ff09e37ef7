#!/usr/bin/env bats
# shellcheck disable=SC2034,SC2030,SC2031 # EF_* are read by helpers.bash; each test is its own subshell
# Issue 4, concurrency: pods set up, checked and torn down in parallel through
# ef-runtime (go-cni, as containerd does when kubelet starts many sandboxes at
# once), round after round, sharing one network, one host-local pool, one
# bridge and one log file. Zero failures; every pod CHECK-clean while alive;
# nothing left afterwards; the log stays one whole JSON record per line.
# EF_CONCURRENCY_PODS / EF_CONCURRENCY_ROUNDS override the size (32 x 10).

load helpers

setup() {
  # ef_setup pins the bridge's MAC, so pods joining later do not fail earlier
  # pods' CHECK in the bridge plugin.
  ef_setup
}

teardown() {
  ef_teardown
}

# parallel VERB POD...: ef-runtime VERB for every pod at once (background jobs,
# then wait). Each job's output goes to $EF_TMP/<pod>.<verb>; a failing job
# appends "<pod> <verb> ..." to $EF_TMP/failures.
parallel() {
  local verb="$1" pod pids=()
  shift
  for pod in "$@"; do
    (
      EF_POD="$pod"
      EF_POD_PATH="/run/netns/$pod"
      EF_POD_NAME="$pod"
      out="$EF_TMP/$pod.$verb"
      ef_runtime "$verb" >"$out" 2>&1 || echo "$pod $verb failed: $(tail -n1 "$out")" >>"$EF_TMP/failures"
      # While alive, the fence is there (check compares it with the config).
      if [ "$verb" = check ]; then
        ip netns exec "$pod" nft list table inet egress_fence >/dev/null 2>&1 ||
          echo "$pod check: no table inet egress_fence" >>"$EF_TMP/failures"
      fi
    ) 3>&- &
    pids+=("$!")
  done
  local p
  for p in "${pids[@]}"; do wait "$p" || echo "job $p exited $?" >>"$EF_TMP/failures"; done
}

no_failures() {
  if [ -s "$EF_TMP/failures" ]; then
    sed 's/^/# /' "$EF_TMP/failures" | head -n 40 >&3
    fail "$(wc -l <"$EF_TMP/failures") failure(s) in round $1 (first ones above)"
  fi
}

@test "concurrency: 32 pods set up, checked and removed in parallel, 10 rounds, through ef-runtime: no failure, nothing left" {
  local pods="${EF_CONCURRENCY_PODS:-32}" rounds="${EF_CONCURRENCY_ROUNDS:-10}"
  local round i pod names started=$SECONDS
  for round in $(seq 1 "$rounds"); do
    names=()
    for i in $(seq 1 "$pods"); do
      ef_setup_pod "r${round}p$i"
      names+=("$EF_POD")
    done
    parallel setup "${names[@]}"
    no_failures "$round (setup)"
    parallel check "${names[@]}"
    no_failures "$round (check)"
    parallel remove "${names[@]}"
    no_failures "$round (remove)"

    for pod in "${names[@]}"; do
      run ef_fence_tables "$pod"
      [ -z "$output" ] || fail "round $round: $pod still holds $output after remove"
      ef_netns_delete "$pod"
    done
  done
  echo "# $pods pods x $rounds rounds: ${pods}x3x$rounds runtime calls in $((SECONDS - started)) s" >&3

  # Nothing left: netns, go-cni's cached results, host-local leases, veths.
  run bash -c "ip netns list | grep -F -- '-$EF_ID' | grep -v -- '^ef-w-'"
  assert_output ""
  run bash -c "ls /var/lib/cni/results/ | grep -F -- '$EF_ID'"
  assert_output ""
  run bash -c "ls '$EF_IPAMDIR/$EF_NET' | grep -Ev '^(lock|last_reserved_ip\\.[01])$'"
  assert_output ""
  run bash -c "ip -o link show master '$EF_BRIDGE' | awk -F': ' '{print \$2}' | cut -d@ -f1"
  assert_output "efw$EF_ID"

  # One whole JSON record per invocation (ADD, CHECK, DEL of every pod), none torn.
  run ef_log_bad_lines "$EF_LOGFILE"
  assert_success
  assert_output ""
  assert_equal "$(grep -c . "$EF_LOGFILE")" $((pods * rounds * 3))
  assert_equal "$(jq -c 'select(.outcome == "error")' "$EF_LOGFILE")" ""
}
