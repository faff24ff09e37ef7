#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# The raw-socket bypass (DESIGN.md "Raw frames", issue 8). A workload with
# CAP_NET_RAW writes whole Ethernet frames on an AF_PACKET socket; they never
# pass the inet output hook. The fence's netdev egress chain on the pod's
# interface lets out only frames the inet chains stamped (meta secmark) and
# ARP. Every frame is addressed to a denied address of the world netns, where
# a packet-socket listener counts what arrives; the control runs each variant
# without the fence, so a listener that sees nothing cannot pass by accident.
# AF_XDP frames skip the egress hook altogether: a test shows that gap, and
# that `probe` refuses a pod that can use CAP_NET_RAW.

load helpers

setup() {
  ef_setup
  ef_setup_pod
}

teardown() {
  ef_teardown
}

unfenced_pod() {
  ef_write_conf --no-fence
  ef_world_listen_all
  run ef_pod_add
  assert_success
  ! ef_table_present
}

world_mac() { ip -n "$EF_WORLD" link show eth0 2>/dev/null | awk '/link\/ether/ {print $2}'; }

# The counter raw_dropped of the netdev table (packets).
raw_dropped() {
  ef_nft -j list counter netdev egress_fence raw_dropped | jq -e '.nftables[] | select(.counter) | .counter.packets'
}

# The variants of the bypass matrix: a label, then ef_rawframe options.
# The mark and priority are the fence's own secmark value, the one value a
# forger would pick if the fence trusted either.
FENCE_SECMARK=1162215424
VARIANTS=(
  "v4-udp|4|"
  "v4-tcp-syn|4|--proto tcp"
  "v6-udp|6|"
  "v6-tcp-syn|6|--proto tcp"
  "v4-udp-qdisc-bypass|4|--qdisc-bypass"
  "v6-tcp-syn-qdisc-bypass|6|--proto tcp --qdisc-bypass"
  "v4-udp-so-mark|4|--mark $FENCE_SECMARK"
  "v6-udp-so-mark|6|--mark $FENCE_SECMARK"
  "v4-tcp-syn-so-priority|4|--proto tcp --priority $FENCE_SECMARK"
  "v6-udp-mark-priority-qdisc-bypass|6|--mark $FENCE_SECMARK --priority 7 --qdisc-bypass"
)

# raw_frames FAMILY [OPTIONS...]: sends 5 frames from the pod's eth0 to the
# world's denied address, prints how many the world's eth0 received.
raw_frames() {
  local family="$1" src dst ready out
  shift
  if [ "$family" = 6 ]; then
    src="$(ef_pod_addr6)" dst="$EF_DENY6"
  else
    src="$(ef_pod_addr4)" dst="$EF_DENY4"
  fi
  ready="$EF_TMP/raw.ready.$RANDOM" out="$EF_TMP/raw.out.$RANDOM"
  ip netns exec "$EF_WORLD" "$EF_BIN/ef_rawframe" listen eth0 --dst-ip "$dst" --dport 9 \
    --timeout-ms 700 --ready-file "$ready" >"$out" 2>&1 3>&- &
  local listener=$!
  ef_on_teardown kill -9 "$listener"
  ef_wait_for_file "$ready" 5 || return 1
  ef_in_pod "$EF_BIN/ef_rawframe" send eth0 --dst-mac "$(world_mac)" --src-ip "$src" --dst-ip "$dst" \
    --dport 9 --count 5 "$@" >>"$EF_TMP/raw.send.log" 2>&1 || {
    cat "$EF_TMP/raw.send.log"
    return 1
  }
  wait "$listener" || return 1
  awk '/^received/ {print $2}' "$out"
}

@test "control: without the fence every AF_PACKET variant reaches the world" {
  unfenced_pod
  local v label family opts
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r label family opts <<<"$v"
    # shellcheck disable=SC2086
    run raw_frames "$family" $opts
    assert_success
    [ "$output" = 5 ] || fail "$label: $output of 5 frames arrived without the fence"
  done
}

@test "with the fence no AF_PACKET variant reaches the world and raw_dropped counts every frame" {
  ef_fenced_pod
  local v label family opts before after
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r label family opts <<<"$v"
    before="$(raw_dropped)"
    # shellcheck disable=SC2086
    run raw_frames "$family" $opts
    assert_success
    [ "$output" = 0 ] || fail "$label: $output frames got past the fence"
    after="$(raw_dropped)"
    [ "$((after - before))" = 5 ] || fail "$label: raw_dropped went from $before to $after, expected +5"
  done
}

@test "the gap: AF_XDP frames skip the netdev egress hook, fence or not" {
  ef_fenced_pod
  run raw_frames 4 --xdp
  assert_success
  assert_output 5
  run raw_frames 6 --proto tcp --xdp
  assert_success
  assert_output 5
}

@test "without CAP_NET_RAW the workload opens neither AF_PACKET nor AF_XDP sockets" {
  ef_fenced_pod
  local drop=(setpriv --reuid "$EF_WORKLOAD_UID" --regid "$EF_WORKLOAD_UID" --clear-groups
    --inh-caps=-all --bounding-set=-net_raw)
  run ef_in_pod "${drop[@]}" "$EF_BIN/ef_rawframe" send eth0 --dst-mac "$(world_mac)" \
    --src-ip "$(ef_pod_addr4)" --dst-ip "$EF_DENY4"
  assert_failure 1
  assert_output --partial "socket(AF_PACKET): Operation not permitted"
  run ef_in_pod "${drop[@]}" "$EF_BIN/ef_rawframe" send eth0 --dst-mac "$(world_mac)" \
    --src-ip "$(ef_pod_addr4)" --dst-ip "$EF_DENY4" --xdp
  assert_failure 1
  assert_output --partial "socket(AF_XDP): Operation not permitted"
}

# --- the stack's own traffic still passes ---------------------------------------

probe_tcp() { ef_probe connect tcp "$1" "$2" --uid "${3:-$EF_WORKLOAD_UID}" --timeout-ms 2000; }

@test "allowed TCP, v4 and v6, after the neighbour cache was flushed (ARP and ND pass egress)" {
  ef_fenced_pod
  ef_in_pod ip neigh flush all
  run -0 probe_tcp "$EF_WORLD4" 8080
  run -0 probe_tcp "$EF_WORLD6" 8080
  run -0 ef_probe udp "$EF_WORLD4" 53 --uid "$EF_WORKLOAD_UID" --expect-reply --timeout-ms 2000
  # The neighbours were resolved again through the fence.
  run ef_in_pod ip neigh show dev eth0
  assert_output --regexp "$EF_WORLD4 .*lladdr"
  assert_output --regexp "$EF_WORLD6 .*lladdr"
  [ "$(raw_dropped)" = 0 ]
}

@test "the proxy UID reaches a denied address; the workload is still refused at once" {
  ef_fenced_pod
  run -0 probe_tcp "$EF_DENY4" 8080 "$EF_PROXY_UID"
  run -0 probe_tcp "$EF_DENY6" 8080 "$EF_PROXY_UID"
  run -111 probe_tcp "$EF_DENY4" 8080
  [ "$(raw_dropped)" = 0 ]
}

@test "replies to inbound connections, kernel RSTs and ICMP errors leave the pod" {
  ef_fenced_pod
  local pod4 pod6
  pod4="$(ef_pod_addr4)" pod6="$(ef_pod_addr6)"
  ef_listen_in "$EF_POD" tcp "$pod4" 7000
  ef_listen_in "$EF_POD" tcp "$pod6" 7000
  ef_in_pod ip neigh flush all
  # SYN-ACK and data from the pod: replies (conntrack established).
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$pod4" 7000 --timeout-ms 2000
  run -0 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$pod6" 7000 --timeout-ms 2000
  # A closed port: the kernel's RST must arrive for the world to see 111.
  run -111 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$pod4" 7001 --timeout-ms 2000
  run -111 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" connect tcp "$pod6" 7001 --timeout-ms 2000
  # A closed UDP port: the kernel's ICMP port unreachable (related).
  run -111 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" udp "$pod4" 7002 --expect-reply --timeout-ms 2000
  run -111 ip netns exec "$EF_WORLD" "$EF_BIN/efprobe" udp "$pod6" 7002 --expect-reply --timeout-ms 2000
  [ "$(raw_dropped)" = 0 ]
}

@test "forwarded packets from a nested netns: allowed ones leave, denied ones are refused" {
  ef_fenced_pod
  local nested n pod4
  nested="$(ef_new_netns nested)"
  n=$((0x${EF_ID:4:4} % 254 + 1))
  pod4="$(ef_pod_addr4)"
  ef_in_pod ip link add nst0 type veth peer name eth0 netns "$nested"
  ef_in_pod ip addr add "10.198.$n.1/24" dev nst0
  ef_in_pod ip link set nst0 up
  ef_in_pod sysctl -qw net.ipv4.ip_forward=1
  ip -n "$nested" link set lo up
  ip -n "$nested" addr add "10.198.$n.2/24" dev eth0
  ip -n "$nested" link set eth0 up
  ip -n "$nested" route add default via "10.198.$n.1"
  ip -n "$EF_WORLD" route add "10.198.$n.0/24" via "$pod4"
  run -0 ip netns exec "$nested" "$EF_BIN/efprobe" connect tcp "$EF_WORLD4" 8080 --timeout-ms 2000
  run -111 ip netns exec "$nested" "$EF_BIN/efprobe" connect tcp "$EF_DENY4" 8080 --timeout-ms 2000
  [ "$(raw_dropped)" = 0 ]
}

# --- lifecycle: CHECK, DEL, render -------------------------------------------------

@test "CHECK passes with the netdev table and names it when it is gone; DEL removes both tables" {
  ef_fenced_pod
  run -0 ef_cnitool check
  ef_nft delete table netdev egress_fence
  run ef_cnitool check
  assert_failure
  assert_output --partial "table netdev egress_fence: missing"
  run -0 ef_pod_del
  run ef_fence_tables "$EF_POD"
  assert_output ""
}

@test "render prints both tables exactly as nft lists them; only the secmark lines do not load" {
  ef_fenced_pod
  local rendered="$EF_TMP/render.nft"
  "$EF_BIN/egress-fence-ctl" render --config "$EF_CONFLIST" --namespace "$EF_POD_NAMESPACE" \
    --name "$EF_POD_NAME" --ifname eth0 --onlink "$EF_SUBNET6" >"$rendered"
  run diff <(ef_nft list ruleset | ef_normalise_counters) <(ef_normalise_counters <"$rendered")
  assert_success
  assert_output ""
  grep -qx $'\t\tmeta secmark set 1162215424' "$rendered"
  grep -qx $'\t\tmeta secmark 1162215424 accept' "$rendered"
  # The documented exception: nft 1.0.6 parses neither secmark line ...
  run ef_nft -c -f "$rendered"
  assert_failure
  assert_output --partial "secmark"
  # ... and everything else loads as printed.
  run ef_nft -c -f <(grep -v 'meta secmark' "$rendered")
  assert_success
}

# --- probe -------------------------------------------------------------------------

@test "probe refuses a pod that can use CAP_NET_RAW unless --allow-net-raw" {
  ef_fenced_pod
  local ctl="$EF_BIN/egress-fence-ctl" target="$EF_DENY4:8080"
  # Root in the pod holds it (and more: NET_ADMIN and its UID change are accepted
  # here so that NET_RAW is the finding left; bats/ops.bats tests those).
  local others=(--allow-net-admin --allow-uid-change)
  run ef_in_pod "$ctl" probe --target "$target" "${others[@]}"
  assert_failure 5
  assert_output --partial "could send raw frames that leave the pod without passing any netfilter hook"
  assert_output --partial "CAP_NET_RAW: holds it (CapPrm)"
  assert_output --partial "drop: [NET_RAW]"
  run -0 ef_in_pod "$ctl" probe --target "$target" "${others[@]}" --allow-net-raw
  assert_output --partial "accepted by --allow-net-raw"
  # The workload UID with nothing effective, but NET_RAW in the bounding set:
  # exec of a binary with file capabilities gives it back.
  run ef_in_pod setpriv --reuid "$EF_WORKLOAD_UID" --regid "$EF_WORKLOAD_UID" --clear-groups --inh-caps=-all \
    --bounding-set=-all,+net_raw "$ctl" probe --target "$target"
  assert_failure 5
  assert_output --partial "can regain it by exec"
  # Dropped from the bounding set, or out of reach (no_new_privs).
  run -0 ef_in_pod setpriv --reuid "$EF_WORKLOAD_UID" --regid "$EF_WORKLOAD_UID" --clear-groups --inh-caps=-all \
    --bounding-set=-all "$ctl" probe --target "$target"
  run -0 ef_in_pod setpriv --reuid "$EF_WORKLOAD_UID" --regid "$EF_WORKLOAD_UID" --clear-groups --inh-caps=-all \
    --no-new-privs "$ctl" probe --target "$target"
}
