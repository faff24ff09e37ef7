#!/usr/bin/env bash
# The main job, end to end on this machine: a pod netns is wired by the real
# reference CNI chain (bridge + host-local, loopback for lo) with egress-fence
# last, then the workload is refused, the proxy and an allowed destination get
# through, and the installed ruleset is shown with its counters.
# Every address used lives in netns this script creates; all is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
bash scripts/bootstrap.sh >/tmp/egress-fence-demo-bootstrap.log 2>&1 ||
  { cat /tmp/egress-fence-demo-bootstrap.log >&2; exit 1; }

# The scenario tests' harness, used outside bats.
load() { :; }
bats_require_minimum_version() { :; }
# shellcheck source=../bats/helpers.bash
source bats/helpers.bash
trap ef_teardown EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# probe UID ARGS...: efprobe in the pod as UID; prints what happened.
probe() {
  local uid="$1" rc start end
  shift
  start=$(date +%s%N)
  set +e
  ef_probe "$@" --uid "$uid" --timeout-ms 2000 >/dev/null 2>&1
  rc=$?
  set -e
  end=$(date +%s%N)
  local ms=$(((end - start) / 1000000))
  case "$rc" in
    0) printf '   uid %-5s %-42s -> CONNECTED (%d ms)\n' "$uid" "$*" "$ms" ;;
    111) printf '   uid %-5s %-42s -> REFUSED, errno 111 ECONNREFUSED (%d ms)\n' "$uid" "$*" "$ms" ;;
    *) printf '   uid %-5s %-42s -> exit %d (%d ms)\n' "$uid" "$*" "$rc" "$ms" ;;
  esac
}

ef_setup
ef_world_listen_all
ef_setup_pod demo

say "A pod sandbox in namespace 'sandboxes' is created through the CNI chain (cnitool on libcni)"
jq -r '.plugins[] | "   plugin: \(.type)"' "$EF_CONFLIST"
ef_pod_add
echo "   pod netns: $EF_POD_PATH"
echo "   pod addresses: $(ef_pod_addr4), $(ef_pod_addr6); routes (no default route, by design):"
ip -n "$EF_POD" route | sed 's/^/     /'
echo "   targets (listeners in a test-owned 'world' netns): allowed $EF_WORLD4, $EF_WORLD6 tcp/8080 udp/53;"
echo "   denied $EF_DENY4, $EF_DENY6 (same ports: a connection there would mean the fence is missing)"

say "The workload (uid $EF_WORKLOAD_UID, no NET_ADMIN) tries to get out directly"
probe "$EF_WORKLOAD_UID" connect tcp "$EF_DENY4" 8080
probe "$EF_WORKLOAD_UID" connect tcp "$EF_DENY6" 8080
probe "$EF_WORKLOAD_UID" udp "$EF_DENY4" 53 --expect-reply
probe "$EF_WORKLOAD_UID" connect tcp "$EF_WORLD4" 9999

say "Allowed paths"
probe "$EF_WORKLOAD_UID" connect tcp "$EF_WORLD4" 8080
probe "$EF_WORKLOAD_UID" udp "$EF_WORLD6" 53 --expect-reply
probe "$EF_PROXY_UID" connect tcp "$EF_DENY4" 8080
echo "   (uid $EF_PROXY_UID is the in-pod proxy: exempt by the profile)"

say "The ruleset in the pod's netns (nft list table inet egress_fence), with its counters"
ef_nft list table inet egress_fence

say "egress-fence-ctl inspect --netns $EF_POD_PATH"
"$EF_BIN/egress-fence-ctl" inspect --netns "$EF_POD_PATH" --config "$EF_CONFLIST" | sed -n '1,20p'

say "CNI CHECK (the table is read back over netlink and compared with the config)"
ef_cnitool check && echo "   CHECK passed"

say "CNI DEL"
ef_pod_del
if ef_table_present; then echo "   table still present!"; exit 1; else echo "   table removed"; fi
echo
echo "demo: done (everything it created is being removed)"
