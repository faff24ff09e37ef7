#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 4, pod selection end to end through ef-runtime (go-cni, as containerd
# calls the chain: K8S_POD_* labels, annotations as the
# io.kubernetes.cri.pod-annotations capability). The reference config:
#   selectors[0] namespaces sandboxes, agents-*  -> proxy-only, allowedProfiles proxy-only, locked
#   selectors[1] annotation openshell.ai/cni=enabled -> proxy-only, exempt uid from openshell.ai/proxy-uid
#   proxy-only: exempt 1337, allows tcp 8080 and udp 53 on the WORLD addresses; locked: exempt 1337 only.

load helpers

setup() {
  ef_setup
  ef_setup_pod
  ef_listen_start "$EF_WORLD" tcp "$EF_WORLD4" 8080
  ef_listen_start "$EF_WORLD" tcp "$EF_DENY4" 8080
  ef_listen_start "$EF_WORLD" udp "$EF_DENY6" 53
  ef_listen_wait
}

teardown() {
  ef_teardown
}

# tcp_as UID ADDR: a tcp connect to ADDR port 8080 from the pod as UID.
tcp_as() { ef_probe connect tcp "$2" 8080 --uid "$1" --timeout-ms 2000; }

# fenced_and_checked [ANNOTATION_ARGS...]: the table is there and the runtime's
# check (which compiles the profile selected for these annotations) passes.
fenced_and_checked() {
  ef_table_present || fail "no table inet egress_fence in the pod"
  run ef_runtime check "$@"
  assert_success
}

no_fence() {
  run ef_fence_tables "$EF_POD"
  assert_output ""
}

@test "selection: namespace glob agents-* fences a pod in agents-7" {
  EF_POD_NAMESPACE=agents-7
  run ef_runtime setup
  assert_success
  fenced_and_checked
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
  run -0 tcp_as "$EF_WORKLOAD_UID" "$EF_WORLD4"
  run -0 tcp_as "$EF_PROXY_UID" "$EF_DENY4"
}

@test "selection: namespaces 'agents' and 'sandboxes-x' are not matched by the globs: no table, traffic free" {
  local ns
  for ns in agents sandboxes-x; do
    EF_POD_NAMESPACE="$ns"
    run ef_runtime setup
    assert_success
    no_fence
    run -0 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
    run ef_runtime remove
    assert_success
  done
}

@test "selection: OpenShell annotations fence a pod in any namespace; the annotated proxy uid and the profile's are exempt" {
  EF_POD_NAMESPACE=default
  local a=(--annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=4242)
  run ef_runtime setup "${a[@]}"
  assert_success
  fenced_and_checked "${a[@]}"
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
  run -111 tcp_as 4243 "$EF_DENY4"
  run -0 tcp_as 4242 "$EF_DENY4"
  run -0 tcp_as "$EF_PROXY_UID" "$EF_DENY4"
  # CHECK holds the pod to the uid it was created with.
  run ef_runtime check --annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=4243
  assert_failure
  assert_equal "$(ef_cni_error_code <<<"$output")" 102
}

@test "selection: openshell.ai/cni with another value selects nothing: no table, traffic free" {
  EF_POD_NAMESPACE=default
  run ef_runtime setup --annotation openshell.ai/cni=disabled --annotation openshell.ai/proxy-uid=4242
  assert_success
  no_fence
  run -0 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
}

@test "selection: OpenShell selector without a usable proxy-uid annotation (missing, not a number, root) fails ADD with 104" {
  EF_POD_NAMESPACE=default
  local uid
  for uid in missing abc 0; do
    ef_setup_pod "uid$uid"
    local a=(--annotation openshell.ai/cni=enabled)
    [ "$uid" = missing ] || a+=(--annotation "openshell.ai/proxy-uid=$uid")
    run ef_runtime setup "${a[@]}"
    assert_failure
    assert_equal "$(ef_cni_error_code <<<"$output")" 104
    assert_output --partial openshell.ai/proxy-uid
    no_fence
  done
}

@test "selection: profile annotation within allowedProfiles (locked) narrows the fence: the allowed destination is refused" {
  local a=(--annotation egress-fence.io/profile=locked)
  run ef_runtime setup "${a[@]}"
  assert_success
  fenced_and_checked "${a[@]}"
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_WORLD4"
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
  run -0 tcp_as "$EF_PROXY_UID" "$EF_DENY4"
  # The pod is held to the profile it chose: CHECK without it differs.
  run ef_runtime check
  assert_failure
  assert_equal "$(ef_cni_error_code <<<"$output")" 102
}

@test "selection: profile annotation outside allowedProfiles fails ADD with 104 and installs nothing" {
  local p
  for p in everything proxy-and-dns ""; do
    ef_setup_pod "p${p:-empty}"
    run ef_runtime setup --annotation "egress-fence.io/profile=$p"
    assert_failure
    assert_equal "$(ef_cni_error_code <<<"$output")" 104
    no_fence
  done
}

@test "selection: a profile annotation on a selector without allowedProfiles fails ADD with 104" {
  EF_POD_NAMESPACE=default
  run ef_runtime setup --annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=4242 \
    --annotation egress-fence.io/profile=locked
  assert_failure
  assert_equal "$(ef_cni_error_code <<<"$output")" 104
  no_fence
}

@test "selection: a pod matched by nothing gets no table, its traffic is free, check and remove pass" {
  EF_POD_NAMESPACE=default
  run ef_runtime setup --annotation some.other/annotation=x
  assert_success
  no_fence
  run -0 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
  run -0 ef_probe udp "$EF_DENY6" 53 --expect-reply --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
  run ef_runtime check --annotation some.other/annotation=x
  assert_success
  run ef_runtime remove
  assert_success
}

@test "selection: annotations reach the plugin through cnitool's CAP_ARGS too" {
  EF_POD_NAMESPACE=default
  EF_POD_ANNOTATIONS='{"openshell.ai/cni":"enabled","openshell.ai/proxy-uid":"4242"}'
  run ef_pod_add
  assert_success
  ef_table_present
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
  run -0 tcp_as 4242 "$EF_DENY4"
  run ef_cnitool check
  assert_success
}

# --- a runtime that delivers no annotations ------------------------------------

# plugin_add JQ_FILTER: the real plugin's ADD with this test's entry, a
# prevResult, and runtimeConfig as the filter leaves it.
plugin_add() {
  local prev="$EF_TMP/prev.json"
  jq -n --arg ns "$EF_POD_PATH" '{cniVersion: "1.0.0", interfaces: [{name: "eth0", sandbox: $ns}], ips: []}' >"$prev"
  ef_fence_stdin "$prev" | jq -c "$1" | ef_plugin ADD
}

@test "selection: real binary, no pod-annotations key in runtimeConfig: a pod an annotation selector could pick fails ADD (104) and stays unfenced; a namespace selector tried first still fences" {
  # A bare eth0 for the raw-frame chain (no dummy module here: a veth pair in the pod).
  ip -n "$EF_POD" link add eth0 type veth peer name peer0
  local missing
  for missing in 'del(.runtimeConfig)' '.runtimeConfig = {}' '.runtimeConfig = null'; do
    # Namespace "default": only selectors[1] (by annotation) could pick it.
    EF_POD_NAMESPACE=default
    run plugin_add "$missing"
    assert_failure
    assert_equal "$(jq -r .code <<<"${lines[0]}")" 104
    assert_output --partial "the runtime delivers no pod annotations"
    assert_output --partial "selectors[1]"
    no_fence
    # Namespace "sandboxes": selectors[0] matches by namespace before any annotation selector.
    EF_POD_NAMESPACE=sandboxes
    run plugin_add "$missing"
    assert_success
    ef_table_present
    ef_fence_stdin | ef_plugin DEL
    no_fence
  done
  # The key present as null or {} (containerd for a pod without annotations):
  # the pod is simply not selected.
  EF_POD_NAMESPACE=default
  local present
  for present in '.runtimeConfig["io.kubernetes.cri.pod-annotations"] = null' \
    '.runtimeConfig["io.kubernetes.cri.pod-annotations"] = {}'; do
    run plugin_add "$present"
    assert_success
    no_fence
  done
}

@test "selection: go-cni without the annotations capability: ADD fails with 104 naming the cause, nothing installed; DEL passes" {
  EF_POD_NAMESPACE=default
  run ef_runtime setup --no-annotations-capability --annotation openshell.ai/cni=enabled \
    --annotation openshell.ai/proxy-uid=4242
  assert_failure
  assert_equal "$(ef_cni_error_code <<<"$output")" 104
  assert_output --partial "the runtime delivers no pod annotations"
  no_fence
  run ef_runtime remove --no-annotations-capability
  assert_success
  # A namespace the first selector matches is fenced all the same.
  EF_POD_NAMESPACE=agents-7
  run ef_runtime setup --no-annotations-capability
  assert_success
  fenced_and_checked --no-annotations-capability
  run -111 tcp_as "$EF_WORKLOAD_UID" "$EF_DENY4"
}
