# Shared harness for egress-fence scenario tests (bats, run as root).
#
# Every test gets its own, uniquely named world:
#   - a host bridge ($EF_BRIDGE) with no address, so the host never routes for it;
#   - a "world" netns ($EF_WORLD) on that bridge holding the targets:
#       $EF_WORLD4 / $EF_WORLD6  the addresses the reference profile allows,
#       $EF_DENY4  / $EF_DENY6   addresses it does not allow;
#   - pod netns created with ef_setup_pod and wired by the real reference
#     plugins (bridge + host-local, loopback for lo) and egress-fence;
#   - a network name ($EF_NET) and host-local dataDir of its own (host-local keys
#     its pool by network name), a conf dir, a temp dir.
# Pods get no default route: IPAM hands out addresses only, and all targets sit
# in the pod's own on-link subnet, so nothing can leave the machine even if the
# fence were missing. Everything created is registered for cleanup as it is
# created, and ef_teardown undoes it in reverse order even when a test fails.
#
# Usage in a .bats file:
#   load helpers
#   setup()    { ef_setup; }
#   teardown() { ef_teardown; }

bats_require_minimum_version 1.5.0

EF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EF_BIN="${EF_BIN:-$EF_ROOT/build/bin}"
# Test templates (@NAME@ placeholders this harness fills in); conf/ holds only
# ready-to-use examples.
EF_CONF_SRC="$EF_ROOT/bats/conf"
# shellcheck disable=SC2034 # used by the .bats files
EF_EXAMPLES="$EF_ROOT/conf/examples"
EF_CNI_PLUGIN_DIR="${EF_CNI_PLUGIN_DIR:-/usr/lib/cni}"
# Debian's bats-support and bats-assert packages install here.
EF_BATS_LIBDIR="${EF_BATS_LIBDIR:-/usr/lib/bats}"
load "$EF_BATS_LIBDIR/bats-support/load"
load "$EF_BATS_LIBDIR/bats-assert/load"

# shellcheck disable=SC2034 # used by the .bats files
EF_WORKLOAD_UID=1000
# shellcheck disable=SC2034
EF_PROXY_UID=1337

# --- lifecycle -----------------------------------------------------------------

# Creates the per-test names, temp dir, conf dir and world. Call from setup().
ef_setup() {
  EF_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  EF_TMP="$(mktemp -d "/tmp/ef-bats-$EF_ID.XXXXXX")"
  EF_CLEANUP="$EF_TMP/cleanup"
  : >"$EF_CLEANUP"

  # The bridge plugin turns on forwarding; put the host back as it was.
  ef_sysctl_save net.ipv4.ip_forward
  ef_sysctl_save net.ipv6.conf.all.forwarding

  EF_NET="ef-$EF_ID"
  EF_BRIDGE="efbr$EF_ID"
  local n=$((0x${EF_ID:0:4} % 254 + 1))
  EF_SUBNET4="10.199.$n.0/24"
  EF_SUBNET6="fd00:199:$n::/64"
  EF_WORLD4="10.199.$n.200"
  EF_DENY4="10.199.$n.201"
  EF_WORLD6="fd00:199:$n::200"
  EF_DENY6="fd00:199:$n::201"
  EF_CONFDIR="$EF_TMP/net.d"
  EF_CACHEDIR="$EF_TMP/cache"
  EF_IPAMDIR="$EF_TMP/ipam"
  EF_LOGFILE="$EF_TMP/egress-fence.log"
  mkdir -p "$EF_CONFDIR" "$EF_CACHEDIR" "$EF_IPAMDIR"

  # Pod identity handed to the plugins; tests override per call.
  EF_POD_NAMESPACE="sandboxes"
  EF_POD_NAME="pod-$EF_ID"
  EF_POD_ANNOTATIONS="{}"

  ef_setup_world
  ef_write_conf --version 1.0.0
}

# Undoes everything ef_setup and later helpers registered, newest first.
# Safe to call twice, and whatever state the test left.
ef_teardown() {
  [ -n "${EF_TMP:-}" ] && [ -d "$EF_TMP" ] || return 0
  local line
  if [ -f "$EF_CLEANUP" ]; then
    while IFS= read -r line; do
      eval "$line" >/dev/null 2>&1 || true
    done < <(tac "$EF_CLEANUP")
  fi
  rm -rf "$EF_TMP"
}

# Registers a command (quoted as given) for ef_teardown. One write per line:
# background jobs register concurrently, and O_APPEND keeps single writes whole.
ef_on_teardown() {
  local line
  line="$(printf '%q ' "$@")"
  printf '%s\n' "$line" >>"$EF_CLEANUP"
}

ef_sysctl_save() {
  local key="$1" value
  value="$(sysctl -n "$key")"
  ef_on_teardown sysctl -qw "$key=$value"
}

# Kills what still runs inside a netns this test created, then deletes it.
ef_netns_delete() {
  local ns="$1" pids
  pids="$(ip netns pids "$ns" 2>/dev/null || true)"
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
  fi
  ip netns delete "$ns" 2>/dev/null || true
}

# Creates a netns with a unique name and registers its deletion. Prints the name.
ef_new_netns() {
  local ns="ef-$1-$EF_ID"
  ip netns add "$ns"
  ef_on_teardown ef_netns_delete "$ns"
  # Addresses usable at once: no DAD wait for interfaces created inside.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
  echo "$ns"
}

# The world: a bridge (no host address) and a netns on it with the targets.
ef_setup_world() {
  ip link add "$EF_BRIDGE" type bridge
  ef_on_teardown ip link delete "$EF_BRIDGE"
  # A bridge without a set MAC takes its lowest port's, which changes as pods
  # join, and the bridge plugin's CHECK compares it: pin one (locally administered).
  ip link set "$EF_BRIDGE" address "02:ef:${EF_ID:0:2}:${EF_ID:2:2}:${EF_ID:4:2}:${EF_ID:6:2}"
  ip link set "$EF_BRIDGE" up

  EF_WORLD="$(ef_new_netns w)"
  local host_end="efw$EF_ID"
  ip link add "$host_end" type veth peer name eth0 netns "$EF_WORLD"
  ef_on_teardown ip link delete "$host_end"
  ip link set "$host_end" master "$EF_BRIDGE" up
  ip -n "$EF_WORLD" link set lo up
  ip -n "$EF_WORLD" addr add "$EF_WORLD4/24" dev eth0
  ip -n "$EF_WORLD" addr add "$EF_DENY4/24" dev eth0
  ip -n "$EF_WORLD" addr add "$EF_WORLD6/64" dev eth0 nodad
  ip -n "$EF_WORLD" addr add "$EF_DENY6/64" dev eth0 nodad
  ip -n "$EF_WORLD" link set eth0 up
}

# Starts an efprobe listener in the world netns and waits until it is bound.
#   ef_world_listen tcp|udp ADDR PORT
ef_world_listen() {
  ef_listen_in "$EF_WORLD" "$@"
}

# ef_listen_in NETNS tcp|udp ADDR PORT: a listener in any test-owned netns.
ef_listen_in() {
  ef_listen_start "$@"
  ef_listen_wait
}

# Starts a listener without waiting; ef_listen_wait waits for all started ones.
#   ef_listen_start NETNS tcp|udp ADDR PORT [EFPROBE_LISTEN_OPTION...]
ef_listen_start() {
  local ns="$1" proto="$2" addr="$3" port="$4"
  shift 4
  local ready="$EF_TMP/ready.$ns.$proto.$addr.$port"
  # fd 3 closed: bats waits for it, a listener must not hold it.
  ip netns exec "$ns" "$EF_BIN/efprobe" listen "$proto" "$addr" "$port" --ready-file "$ready" "$@" \
    >>"$EF_TMP/listeners.log" 2>&1 3>&- &
  ef_on_teardown kill -9 "$!"
  echo "$ready" >>"$EF_TMP/listeners.pending"
}

ef_listen_wait() {
  local ready
  [ -f "$EF_TMP/listeners.pending" ] || return 0
  while IFS= read -r ready; do
    ef_wait_for_file "$ready" 5 || {
      cat "$EF_TMP/listeners.log" >&2
      return 1
    }
  done <"$EF_TMP/listeners.pending"
  rm -f "$EF_TMP/listeners.pending"
}

# ef_wait_for_file FILE SECONDS: polls in 10 ms steps; fails on timeout.
ef_wait_for_file() {
  local file="$1" steps=$(($2 * 100))
  while [ ! -e "$file" ]; do
    ((steps-- > 0)) || {
      echo "timed out waiting for $file" >&2
      return 1
    }
    sleep 0.01
  done
}

# The usual targets: tcp 8080 and udp 53 on every world address.
ef_world_listen_all() {
  local addr
  for addr in "$EF_WORLD4" "$EF_DENY4" "$EF_WORLD6" "$EF_DENY6"; do
    ef_listen_start "$EF_WORLD" tcp "$addr" 8080
    ef_listen_start "$EF_WORLD" udp "$addr" 53
  done
  ef_listen_wait
}

# Creates a pod netns (lo still down: the loopback plugin brings it up, as under
# containerd). Sets EF_POD (name) and EF_POD_PATH. ef_setup_pod [LABEL]
ef_setup_pod() {
  EF_POD="$(ef_new_netns "${1:-pod}")"
  EF_POD_PATH="/run/netns/$EF_POD"
  # go-cni keeps results in libcni's default cache; drop ours if DEL never ran.
  ef_on_teardown ef_rm_runtime_cache "ctr-$EF_POD"
}

ef_rm_runtime_cache() {
  rm -f /var/lib/cni/results/*-"$1"-*
}

# --- configuration -------------------------------------------------------------

# Writes the test's conf dir from the bats/conf/ templates:
#   10-$EF_NET.conflist  the reference chain ($EF_CONFLIST)
#   99-loopback.conflist the lo network (containerd's separate lo network)
# ef_write_conf [--version V] [--no-fence]
ef_write_conf() {
  local version="1.0.0" filter='.'
  while [ $# -gt 0 ]; do
    case "$1" in
      --version) version="$2"; shift 2 ;;
      --no-fence) filter='.plugins |= map(select(.type != "egress-fence"))'; shift ;;
      *) echo "ef_write_conf: unknown option $1" >&2; return 1 ;;
    esac
  done
  EF_CONFLIST="$EF_CONFDIR/10-$EF_NET.conflist"
  ef_render_template "$EF_CONF_SRC/reference-chain.conflist" |
    jq --arg v "$version" ".cniVersion = \$v | $filter" >"$EF_CONFLIST"
  cp "$EF_CONF_SRC/loopback.conflist" "$EF_CONFDIR/99-loopback.conflist"
}

# Prints a bats/conf/ template with this test's names substituted.
ef_render_template() {
  local n="${EF_WORLD4%.*}" p6="${EF_WORLD6%::*}"
  sed -e "s|@NET@|$EF_NET|g" \
    -e "s|@BRIDGE@|$EF_BRIDGE|g" \
    -e "s|@IPAMDIR@|$EF_IPAMDIR|g" \
    -e "s|@LOGFILE@|$EF_LOGFILE|g" \
    -e "s|@SUBNET4@|$EF_SUBNET4|g" \
    -e "s|@SUBNET6@|$EF_SUBNET6|g" \
    -e "s|@RANGE4START@|$n.10|g" \
    -e "s|@RANGE4END@|$n.99|g" \
    -e "s|@RANGE6START@|$p6::10|g" \
    -e "s|@RANGE6END@|$p6::99|g" \
    -e "s|@WORLD4@|$EF_WORLD4|g" \
    -e "s|@WORLD6@|$EF_WORLD6|g" \
    -e "s|@DENY4@|$EF_DENY4|g" \
    -e "s|@DENY6@|$EF_DENY6|g" \
    "$1"
}

# --- drivers -------------------------------------------------------------------

# CNI_ARGS as a Kubernetes runtime passes them.
ef_cni_args() {
  printf 'IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=uid-%s' \
    "$EF_POD_NAMESPACE" "$EF_POD_NAME" "ctr-$EF_POD" "$EF_POD"
}

# ef_cnitool add|check|del [NETNAME [NETNS_PATH]] — libcni, like upstream cnitool.
# Pod identity from EF_POD_NAMESPACE, EF_POD_NAME, EF_POD_ANNOTATIONS (JSON).
# CNI_IFNAME is eth0 (lo for cni-loopback) unless EF_IFNAME says otherwise.
ef_cnitool() {
  local verb="$1" net="${2:-$EF_NET}" path="${3:-$EF_POD_PATH}" ifname="${EF_IFNAME:-eth0}"
  if [ "$net" = cni-loopback ]; then ifname=lo; fi
  NETCONFPATH="$EF_CONFDIR" CNI_PATH="$EF_BIN:$EF_CNI_PLUGIN_DIR" CNI_CACHE_DIR="$EF_CACHEDIR" \
    CNI_IFNAME="$ifname" CNI_CONTAINERID="ctr-$EF_POD" CNI_ARGS="$(ef_cni_args)" \
    CAP_ARGS="$(jq -cn --argjson a "$EF_POD_ANNOTATIONS" '{"io.kubernetes.cri.pod-annotations": $a}')" \
    "$EF_BIN/cnitool" "$verb" "$net" "$path"
}

# Brings the pod up through cnitool: lo (loopback plugin), then the chain.
# The chain's result JSON is left in $EF_TMP/$EF_POD.result.json.
ef_pod_add() {
  ef_cnitool add cni-loopback >/dev/null || return 1
  ef_cnitool add >"$EF_TMP/$EF_POD.result.json" || return 1
}

ef_pod_del() {
  ef_cnitool del || return 1
  ef_cnitool del cni-loopback
}

# ef_runtime setup|check|remove [--annotation k=v]... — go-cni, like containerd.
ef_runtime() {
  local verb="$1"
  shift
  "$EF_BIN/ef-runtime" "$verb" --conf-dir "$EF_CONFDIR" --bin-dir "$EF_BIN:$EF_CNI_PLUGIN_DIR" \
    --netns "$EF_POD_PATH" --namespace "$EF_POD_NAMESPACE" --name "$EF_POD_NAME" \
    --id "ctr-$EF_POD" --uid "uid-$EF_POD" "$@"
}

# The CNI error object a driver printed as the last JSON line of its stderr.
#   ef_cni_error_code <<<"$stderr"
ef_cni_error_code() {
  grep '^{' | tail -n1 | jq -r '.code'
}

# --- observing the pod ---------------------------------------------------------

ef_in_pod() { ip netns exec "$EF_POD" "$@"; }
ef_nft() { ip netns exec "$EF_POD" nft "$@"; }

# ef_probe ARGS...: efprobe inside the pod (exit status = errno seen).
ef_probe() { ip netns exec "$EF_POD" "$EF_BIN/efprobe" "$@"; }

# Lets every uid in the pod open ICMP echo sockets (netns-local sysctl; a new
# netns allows none, and a uid-dropped probe has no CAP_NET_RAW for raw ICMP).
ef_allow_ping_sockets() {
  ef_in_pod sysctl -qw net.ipv4.ping_group_range="0 2147483647"
}

ef_table_present() {
  ef_nft list table inet egress_fence >/dev/null 2>&1
}

# ef_counter NAME [packets|bytes]: a named counter of the fence table.
ef_counter() {
  ef_nft -j list counter inet egress_fence "$1" |
    jq -e --arg f "${2:-packets}" '.nftables[] | select(.counter) | .counter[$f]'
}

# --- counting a test's own packets ------------------------------------------------
# The fence's counters also count what the pod sends by itself (MLD reports,
# neighbour discovery), so a test proves its probe sent the packet it is about
# with a counter of its own: a rule in table inet ef_tap of a test-owned netns,
# hooked before the fence's chains (priority -10), that only that packet
# matches. It counts and lets the packet go on to the fence.

# ef_tap_add [-n NETNS] [-H HOOK] NAME MATCH...: a tap counting what MATCH (nft
# rule syntax) selects on HOOK (default output) of NETNS (default the pod).
ef_tap_add() {
  local ns="$EF_POD" hook=output
  while [ $# -gt 0 ]; do
    case "$1" in
      -n) ns="$2"; shift 2 ;;
      -H) hook="$2"; shift 2 ;;
      *) break ;;
    esac
  done
  local name="$1"
  shift
  ip netns exec "$ns" nft add table inet ef_tap &&
    ip netns exec "$ns" nft add chain inet ef_tap "$hook" "{ type filter hook $hook priority -10; }" &&
    ip netns exec "$ns" nft add counter inet ef_tap "$name" &&
    ip netns exec "$ns" nft add rule inet ef_tap "$hook" "$@" counter name "$name"
}

# ef_tap NAME [NETNS]: the packets the tap NAME has counted.
ef_tap() {
  ip netns exec "${2:-$EF_POD}" nft -j list counter inet ef_tap "$1" |
    jq -e '.nftables[] | select(.counter) | .counter.packets'
}

# The pod's first IPv4 / IPv6 address on eth0.
ef_pod_addr4() { ip -n "$EF_POD" -4 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1 | head -n1; }
ef_pod_addr6() { ip -n "$EF_POD" -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1 | head -n1; }

# Zeroes counter values so rulesets compare by structure.
ef_normalise_counters() {
  sed -E 's/packets [0-9]+ bytes [0-9]+/packets 0 bytes 0/g'
}

# Prints the names of this test's netns and links still present (empty when clean).
ef_leftovers() {
  # stderr dropped: listing links races with netns being deleted elsewhere.
  { ip netns list 2>/dev/null | awk '{print $1}'; ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1; } |
    grep -F -- "$EF_ID" || true
}

# --- the plugin called directly (issue 4: faults, bad input) ----------------------

# The egress-fence entry of $EF_CONFLIST as a runtime hands it to the plugin: the
# list's name and cniVersion, runtimeConfig from EF_POD_ANNOTATIONS, and the
# prevResult read from PREV_FILE when one is given.  ef_fence_stdin [PREV_FILE]
ef_fence_stdin() {
  local prev='null'
  if [ -n "${1:-}" ]; then prev="$(cat "$1")"; fi
  jq -c --argjson prev "$prev" --argjson a "$EF_POD_ANNOTATIONS" \
    '. as $l | (.plugins[] | select(.type == "egress-fence"))
     + {name: $l.name, cniVersion: $l.cniVersion,
        runtimeConfig: {"io.kubernetes.cri.pod-annotations": $a}}
     + (if $prev == null then {} else {prevResult: $prev} end)' "$EF_CONFLIST"
}

# ef_plugin VERB [NETNS_PATH]: the real binary with the CNI environment a runtime
# sets (pod identity as in ef_cni_args); stdin passes through.
ef_plugin() {
  CNI_COMMAND="$1" CNI_NETNS="${2-$EF_POD_PATH}" CNI_IFNAME=eth0 CNI_CONTAINERID="ctr-$EF_POD" \
    CNI_ARGS="$(ef_cni_args)" CNI_PATH="$EF_BIN:$EF_CNI_PLUGIN_DIR" "$EF_BIN/egress-fence"
}

# ef_fence_tables NETNS: the egress_fence tables (inet, netdev) in a netns, one a line.
# When nft cannot list them it says so on stdout and fails, so an empty answer
# always means "none there".
ef_fence_tables() {
  local out
  if ! out="$(ip netns exec "$1" nft list tables 2>&1)"; then
    echo "ef_fence_tables: nft list tables failed in $1: $out"
    return 1
  fi
  grep -F egress_fence <<<"$out" || true
}

# ef_log_bad_lines FILE: prints every line of a JSON-lines log that is not one
# whole JSON object (empty output: the log is sound). Not jq's exit status:
# jq 1.6 reports only the last input's error.
ef_log_bad_lines() {
  jq -R -r '. as $line | (try fromjson catch null) | if type == "object" then empty else $line end' "$1"
}

# ef_nested_netns: a netns whose only link is a veth into the pod ("nest0" on the
# pod side), routed to the test subnets through the pod. Forwarding is turned
# on in the pod netns only (netns-local sysctls, gone with the netns); the
# world gets a route back to the nested subnet, in the world netns only.
# Sets NESTED.
ef_nested_netns() {
  NESTED="$(ef_new_netns nest)"
  ip link add nest0 netns "$EF_POD" type veth peer name eth0 netns "$NESTED"
  ip -n "$NESTED" link set lo up
  ip -n "$EF_POD" addr add 10.200.0.1/24 dev nest0
  ip -n "$EF_POD" addr add fd00:200::1/64 dev nest0 nodad
  ip -n "$NESTED" addr add 10.200.0.2/24 dev eth0
  ip -n "$NESTED" addr add fd00:200::2/64 dev eth0 nodad
  ip -n "$EF_POD" link set nest0 up
  ip -n "$NESTED" link set eth0 up
  ip -n "$NESTED" route add "$EF_SUBNET4" via 10.200.0.1
  ip -n "$NESTED" -6 route add "$EF_SUBNET6" via fd00:200::1
  ef_in_pod sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n "$EF_WORLD" route add 10.200.0.0/24 via "$(ef_pod_addr4)"
  ip -n "$EF_WORLD" -6 route add fd00:200::/64 via "$(ef_pod_addr6)"
}

# A pod in namespace "sandboxes" (profile proxy-only) with every world target
# listening, fenced through the chain; fails the test when ADD does.
ef_fenced_pod() {
  ef_world_listen_all
  run ef_pod_add
  assert_success
  ef_table_present
}
