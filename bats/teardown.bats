#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 13, a teardown is never blocked: DEL needs only the netns. A config
# skewed either way (a newer chart's keys, an older schema, invalid values, a
# CNI version we do not speak, no JSON at all) must not fail it: both tables go,
# DEL succeeds, and what it could not read is logged. Through the real binary,
# and through libcni (cnitool) and go-cni (ef-runtime) with the conflist
# changed between ADD and DEL, as a chart upgrade or rollback does, where the
# primary's DEL must still run (runtimes run DEL in reverse chain order).

load helpers

setup() {
  ef_setup
}

teardown() {
  ef_teardown
}

# A pod netns with lo and a bare eth0 (the raw-frame chain hooks it), fenced
# by the real binary with the reference config; its stdin in $EF_TMP/good.stdin.
fenced_bare_pod() {
  ef_setup_pod "${1:-pod}"
  ip -n "$EF_POD" link set lo up
  ip -n "$EF_POD" link add eth0 type veth peer name peer0
  ip -n "$EF_POD" link set eth0 up
  jq -n --arg ns "$EF_POD_PATH" \
    '{cniVersion: "1.0.0", interfaces: [{name: "eth0", sandbox: $ns}], ips: []}' >"$EF_TMP/prev.json"
  ef_fence_stdin "$EF_TMP/prev.json" >"$EF_TMP/good.stdin"
  run ef_plugin ADD <"$EF_TMP/good.stdin"
  assert_success
  assert_equal "$(ef_fence_tables "$EF_POD" | wc -l)" 2
}

# skewed NAME: the reference stdin changed one way, on stdout.
skewed() {
  local good="$EF_TMP/good.stdin"
  case "$1" in
    newer-keys) # a newer chart: keys this binary does not know, at every level
      jq -c '.dnsProxy = {port: 15053} | .profiles["proxy-only"].egressGateway = "gw"
        | .selectors[0].podSelector = {matchLabels: {a: "b"}}' "$good" ;;
    newer-spec) jq -c '.cniVersion = "1.2.0"' "$good" ;;
    older-schema) # an older config: no profiles, no prevResult, a level since renamed
      jq -c 'del(.profiles) | del(.prevResult) | .logLevel = "verbose" | .cniVersion = "0.3.0"' "$good" ;;
    older-spec) jq -c '.cniVersion = "0.2.0"' "$good" ;;
    invalid-values)
      jq -c '.selectors = "all" | .profiles["proxy-only"].allow[0].cidr = "999.1.2.3/40"
        | .profiles["proxy-only"].exemptUids = [-1, "x"] | .name = 7 | .type = "bridge"' "$good" ;;
    no-version) jq -c 'del(.cniVersion)' "$good" ;;
    truncated) head -c 100 "$good" ;;
    empty) printf '' ;;
    *) echo "skewed: unknown case $1" >&2; return 1 ;;
  esac
}

CASES=(newer-keys newer-spec older-schema older-spec invalid-values no-version truncated empty)

@test "teardown: DEL with a config skewed either way (newer, older, invalid, not JSON) removes both tables and succeeds" {
  local c problems=()
  for c in "${CASES[@]}"; do
    fenced_bare_pod "$c"
    skewed "$c" >"$EF_TMP/$c.stdin"
    run ef_plugin DEL <"$EF_TMP/$c.stdin"
    [ "$status" -eq 0 ] || problems+=("$c: DEL exit $status: $output")
    [ -z "$(ef_fence_tables "$EF_POD")" ] || problems+=("$c: tables left: $(ef_fence_tables "$EF_POD")")
    # Repeatable, as the runtime may retry.
    run ef_plugin DEL <"$EF_TMP/$c.stdin"
    [ "$status" -eq 0 ] || problems+=("$c: second DEL exit $status: $output")
  done
  if ((${#problems[@]})); then
    printf '# %s\n' "${problems[@]}" >&3
    fail "${#problems[@]} skewed DEL(s) failed"
  fi
}

@test "teardown: DEL logs what it could not read from a skewed config, and still records the removal" {
  fenced_bare_pod
  skewed older-schema | ef_plugin DEL
  run jq -c 'select(.verb == "DEL")' "$EF_LOGFILE"
  assert_success
  run jq -r 'select(.verb == "DEL") | .outcome, .pod, (.warnings | join(" | "))' "$EF_LOGFILE"
  assert_line --index 0 removed
  assert_line --index 1 "sandboxes/$EF_POD_NAME"
  assert_line --index 2 --partial 'logLevel: "verbose"'
  # The plugin says the same on stderr (libcni passes it on).
  run --separate-stderr ef_plugin DEL < <(skewed older-schema)
  assert_success
  # shellcheck disable=SC2154 # run --separate-stderr sets stderr
  [[ "$stderr" == *'warning: config ignored by DEL: logLevel'* ]] || fail "stderr: $stderr"
}

@test "teardown: DEL with malformed CNI_ARGS still removes the tables and succeeds" {
  fenced_bare_pod
  run env CNI_COMMAND=DEL CNI_NETNS="$EF_POD_PATH" CNI_IFNAME=eth0 CNI_CONTAINERID=c \
    CNI_ARGS="FOO=bar;K8S_POD_NAME" CNI_PATH="$EF_BIN" "$EF_BIN/egress-fence" <"$EF_TMP/good.stdin"
  assert_success
  run ef_fence_tables "$EF_POD"
  assert_output ""
}

@test "teardown: DEL still refuses the host's own netns, whatever the config, answering in its cniVersion" {
  local before
  before="$(nft list tables)"
  fenced_bare_pod
  run ef_plugin DEL /proc/self/ns/net < <(jq -c '.cniVersion = "0.4.0" | .unknownKey = 1' "$EF_TMP/good.stdin")
  assert_failure
  run jq -r '.code, .cniVersion' <<<"$(head -n1 <<<"$output")"
  assert_output $'100\n0.4.0'
  assert_equal "$(nft list tables)" "$before"
}

@test "teardown: error objects answer in the config's cniVersion even when the config is invalid" {
  ef_setup_pod
  local v
  for v in 0.3.0 0.3.1 0.4.0 1.0.0; do
    run ef_plugin ADD < <(ef_fence_stdin | jq -c --arg v "$v" '.cniVersion = $v | .selectors = "all"')
    assert_failure
    assert_equal "$(head -n1 <<<"$output" | jq -r '.code, .cniVersion' | paste -sd' ')" "7 $v"
  done
  # A version we do not speak cannot be answered in: the latest one is.
  run ef_plugin ADD < <(ef_fence_stdin | jq -c '.cniVersion = "1.2.0"')
  assert_equal "$(head -n1 <<<"$output" | jq -r '.code, .cniVersion' | paste -sd' ')" "1 1.1.0"
}

# skew_conflist: the egress-fence entry of $EF_CONFLIST changed the way a newer
# chart (unknown keys) and a broken rollback (an invalid value) would.
skew_conflist() {
  local tmp="$EF_TMP/skewed.conflist"
  jq '(.plugins[] | select(.type == "egress-fence")) |= (.dnsProxy = {port: 15053}
      | .profiles["proxy-only"].allow[0].cidr = "not-a-cidr" | .logLevel = 3)' "$EF_CONFLIST" >"$tmp"
  mv "$tmp" "$EF_CONFLIST"
}

# The pod's addresses host-local still holds (files named by IP in its data dir).
ipam_leases() {
  find "$EF_IPAMDIR/$EF_NET" -maxdepth 1 -type f ! -name 'last_reserved_ip*' ! -name lock -printf '%f\n' 2>/dev/null
}

@test "teardown: cnitool (libcni) DEL after the conflist was skewed removes the fence and lets the primary release the IPs" {
  ef_setup_pod
  ef_world_listen tcp "$EF_DENY4" 8080
  run ef_pod_add
  assert_success
  ef_table_present
  [ -n "$(ipam_leases)" ]
  skew_conflist
  run ef_cnitool del
  assert_success
  run ef_fence_tables "$EF_POD"
  assert_output ""
  run ipam_leases
  assert_output ""
  run ef_cnitool del
  assert_success
}

@test "teardown: ef-runtime (go-cni) remove after the conflist was skewed removes the fence and lets the primary release the IPs" {
  ef_setup_pod
  run ef_runtime setup
  assert_success
  ef_table_present
  [ -n "$(ipam_leases)" ]
  skew_conflist
  run ef_runtime remove
  assert_success
  run ef_fence_tables "$EF_POD"
  assert_output ""
  run ipam_leases
  assert_output ""
  run ef_runtime remove
  assert_success
}
