#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 12, user-namespaced pods (hostUsers: false). `meta skuid` shows a
# socket's owner as the user namespace that owns the pod's netns maps it
# (nft_meta.c: from_kuid_munged(sock_net(sk)->user_ns, f_cred->fsuid)), and
# an owner that namespace cannot map as the overflow UID (65534). Two layouts:
#   A. the netns is owned by the pod's user namespace (containerd and CRI-O
#      let the OCI runtime create it there for hostUsers: false): exempt UIDs
#      are UIDs as the pod sees them; a process outside the pod is never
#      exempt; exempting the overflow UID is refused at ADD;
#   B. the netns is owned by the host's user namespace and only the container
#      is in a user namespace: UIDs are host UIDs, so the proxy's UID as mapped
#      inside does not match and is refused (fail closed, never open).
# The user namespaces map pod UIDs 0-65535 to host UIDs 100000-165535, as a
# runtime maps a pod's range.

load helpers

setup() {
  ef_setup
}

teardown() {
  ef_teardown
}

USERNS_MAP="0 100000 65536"
HOST_BASE=100000

# userns_holder [ip netns exec NETNS]: starts a process in a new user
# namespace (and, without a netns to join, a new netns owned by it), maps
# USERNS_MAP, and sets HOLDER to its pid. It sleeps until teardown.
userns_holder() {
  local ready="$EF_TMP/holder.$RANDOM"
  local how=(unshare --user --net)
  if [ $# -gt 0 ]; then how=("$@" unshare --user); fi
  # The holder writes its pid once it is in its namespaces; fd 3 closed for bats.
  # shellcheck disable=SC2016 # $$ and $1 are the inner sh's
  "${how[@]}" sh -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && exec sleep infinity' sh "$ready" 3>&- &
  ef_on_teardown kill -9 "$!"
  ef_wait_for_file "$ready" 5
  HOLDER="$(cat "$ready")"
  echo "$USERNS_MAP" >"/proc/$HOLDER/uid_map"
  echo "$USERNS_MAP" >"/proc/$HOLDER/gid_map"
}

# userns_pod LABEL: layout A. A pod netns owned by a child user namespace,
# bind-mounted at /run/netns/ef-LABEL-ID so the harness's helpers work on it.
userns_pod() {
  userns_holder
  EF_POD="ef-$1-$EF_ID"
  EF_POD_PATH="/run/netns/$EF_POD"
  mkdir -p /run/netns
  touch "$EF_POD_PATH"
  ef_on_teardown rm -f "$EF_POD_PATH"
  mount --bind "/proc/$HOLDER/ns/net" "$EF_POD_PATH"
  ef_on_teardown umount "$EF_POD_PATH"
  ef_on_teardown ef_rm_runtime_cache "ctr-$EF_POD"
  ef_in_pod sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
}

# in_pod_userns CMD...: CMD in the holder's user and network namespaces, as
# the pod's root (nsenter sets uid 0 inside), the way a container process runs.
in_pod_userns() { nsenter -t "$HOLDER" -U -n "$@"; }

@test "userns A: netns owned by the pod's user namespace: the proxy UID as the pod sees it is exempt, the workload and every process outside the pod are refused" {
  ef_listen_in "$EF_WORLD" tcp "$EF_DENY4" 443
  userns_pod ua
  run ef_pod_add
  assert_success
  ef_table_present
  run -0 ef_cnitool check
  # The pod's view: its own UIDs.
  run -0 in_pod_userns cat /proc/self/uid_map
  assert_output --regexp "^ +0 +$HOST_BASE +65536$"
  local before
  before="$(ef_counter exempt_accepted)"
  # The proxy: pod UID 1337 (host UID 101337) is what exemptUids [1337] means here.
  run -0 in_pod_userns "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid "$EF_PROXY_UID" --timeout-ms 2000
  (($(ef_counter exempt_accepted) > before)) || fail "exempt_accepted did not count the proxy"
  # The workload (pod UID 1000) and the pod's root are refused.
  run -111 in_pod_userns "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
  run -111 in_pod_userns "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  # A process outside the pod's user namespace, host UID 1337, entering only
  # the netns: the pod's namespace cannot map it, so it is not 1337 here.
  run -111 ef_in_pod "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid "$EF_PROXY_UID" --timeout-ms 2000
  # Nor is host root, nor the host UID that is the proxy's outside (101337 is
  # mapped: it is the proxy, seen as 1337, so it gets out, as it should).
  run -111 ef_in_pod "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  run -0 ef_in_pod "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid $((HOST_BASE + EF_PROXY_UID)) --timeout-ms 2000
}

@test "userns A: outside owners show as the overflow UID, so exempting it fails ADD (104) and installs nothing; a host-owned netns accepts the same profile" {
  ef_listen_in "$EF_WORLD" tcp "$EF_DENY4" 443
  userns_pod uo
  local overflow
  overflow="$(cat /proc/sys/kernel/overflowuid)"
  # Why: fenced as usual, a counter rule of our own (before the fence's
  # output chain) sees host UID 4242, which the pod's user namespace cannot
  # map, as the overflow UID.
  run ef_pod_add
  assert_success
  ef_nft add table inet probe_uid
  ef_nft add chain inet probe_uid out '{ type filter hook output priority -10; }'
  ef_nft add rule inet probe_uid out meta skuid "$overflow" counter
  run -111 ef_in_pod "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid 4242 --timeout-ms 1000
  run -0 ef_nft -j list chain inet probe_uid out
  jq -e '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets] | .[0] >= 1' <<<"$output" ||
    fail "host UID 4242 did not show as $overflow: $output"
  ef_nft delete table inet probe_uid
  run -0 ef_pod_del

  # So a profile exempting the overflow UID is refused in such a netns.
  jq --argjson o "$overflow" '(.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].exemptUids) += [$o]' \
    "$EF_CONFLIST" >"$EF_CONFLIST.new"
  mv "$EF_CONFLIST.new" "$EF_CONFLIST"
  ef_cnitool add cni-loopback >/dev/null
  run ef_cnitool add
  assert_failure
  assert_output --partial "exempts UID $overflow, the overflow UID"
  assert_output --partial "hostUsers"
  assert_equal "$(ef_cni_error_code <<<"$output")" 104
  run ef_fence_tables "$EF_POD"
  assert_output ""
  run -0 ef_cnitool del

  # The same profile in a netns the host's user namespace owns: 65534 is just nobody there.
  ef_setup_pod uh
  run ef_pod_add
  assert_success
  ef_table_present
}

@test "userns B: netns owned by the host, only the container in a user namespace: the proxy UID as mapped inside is refused (fail closed), so is every container UID" {
  ef_listen_in "$EF_WORLD" tcp "$EF_DENY4" 443
  ef_setup_pod ub
  run ef_pod_add
  assert_success
  # A "container": a process in a user namespace of its own, inside the pod netns.
  userns_holder ip netns exec "$EF_POD"
  run -0 in_pod_userns cat /proc/self/uid_map
  assert_output --regexp "^ +0 +$HOST_BASE +65536$"
  local before
  before="$(ef_counter exempt_accepted)"
  # Container UID 1337 is host UID 101337 to the netns owner: not exempt.
  run -111 in_pod_userns "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid "$EF_PROXY_UID" --timeout-ms 2000
  run -111 in_pod_userns "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
  run -111 in_pod_userns "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  assert_equal "$(ef_counter exempt_accepted)" "$before"
  # What exemptUids [1337] means in this netns: host UID 1337.
  run -0 ef_in_pod "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --uid "$EF_PROXY_UID" --timeout-ms 2000
}

@test "userns: a workload that makes a user namespace of its own is still its own UID to the fence, and cannot map the proxy's" {
  ef_listen_in "$EF_WORLD" tcp "$EF_DENY4" 443
  ef_setup_pod uw
  run ef_pod_add
  assert_success
  local workload=(setpriv --reuid "$EF_WORKLOAD_UID" --regid "$EF_WORKLOAD_UID" --clear-groups --inh-caps=-all
    --bounding-set=-all --no-new-privs)
  # "root" in its new namespace, which maps only its own UID: still 1000 outside.
  run -0 ef_in_pod "${workload[@]}" unshare --user --map-root-user id -u
  assert_output 0
  run -111 ef_in_pod "${workload[@]}" unshare --user --map-root-user "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 \
    --timeout-ms 2000
  # setresuid(1337) there fails: 1337 is not mapped in its namespace (setpriv exits 127).
  run -127 ef_in_pod "${workload[@]}" unshare --user --map-root-user setpriv --reuid "$EF_PROXY_UID" \
    "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 443 --timeout-ms 2000
  assert_output --partial "setresuid failed: Invalid argument"
}
