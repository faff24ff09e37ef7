#!/usr/bin/env bash
# egress-fence benchmarks (issue 7): one command, as root, on this machine.
#
#   bash tests/bench/run.sh
#
# Runs scripts/bootstrap.sh (dependencies + build into build/), installs what
# only the benchmark needs (gnuplot-nox, iptables, time), then measures whole
# processes the way a runtime calls them (CNI_* env + stdin JSON with a
# prevResult), every figure side by side in the same run:
#   add       ADD on a fresh pod netns vs a raw-batch floor, `nft -f`, the
#             reference firewall plugin and the plugin as of EF_BENCH_BASE_REF
#             (bffe865, main before issue 19, the same ruleset; built from git, or
#             EF_BENCH_BASE_BIN=DIR); where egress-fence's time goes
#   del/check DEL and CHECK vs the floor / `nft`; CHECK of 10,000 and 100,000
#             entries (lookups, the dump, and the plugin as of EF_BENCH_BASE_REF)
#   scale     ADD with 3 .. 100,000 allow entries, exact and mixed shapes, each
#             against the floor sending the same batch, `nft -f` of the same
#             ruleset and the small ADD of the same run; peak RSS; where the
#             time goes at each size
#   backends  the set backend the kernel chose for each layout (NFTA_SET_TYPE,
#             named by reference sets of known backend) and what the hash,
#             rhash and pipapo backends cost the kernel's commit
#   datapath  TCP connection and UDP packet rates, fenced (10 / 100,000
#             entries) vs unfenced
#   parallel  32 pod startups through the go-cni runtime driver, concurrent
#             vs sequential
#   inspect   egress-fence-ctl inspect / metrics over 500 fenced netns, and a
#             scrape of its metrics server (what the DaemonSet serves) over
#             them: time per scrape, the server's peak RSS
# Prints a table; writes tests/bench/out/results.csv, raw samples and PNG plots.
# Each figure is the median (and p90) of EF_BENCH_RUNS (20) runs after
# warm-up, taken in EF_BENCH_CHUNKS (4) chunks that alternate between the
# variants compared, so a busy moment on the machine hits all of them.
#
# Knobs: EF_BENCH_RUNS, EF_BENCH_CHUNKS, EF_BENCH_PAR_RUNS (20 samples of 32 pods), EF_BENCH_SKIP_BOOTSTRAP=1 with EF_BENCH_BIN=DIR (use another build),
# EF_BENCH_ONLY="add scale ..." (a subset of sections).
# Safety: every netns is named ef-bench-<pid>-*, addresses live only inside
# them (no default routes, nothing on the host's interfaces), the "node" side
# of the firewall plugin and the bridge plugin is a netns of its own, and an
# EXIT trap removes all of it. No host sysctl is changed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="$ROOT/tests/bench/out"
RUNS="${EF_BENCH_RUNS:-20}"
CHUNKS="${EF_BENCH_CHUNKS:-4}"
PAR_RUNS="${EF_BENCH_PAR_RUNS:-20}"
ONLY="${EF_BENCH_ONLY:-add del check scale backends datapath parallel inspect}"
BIN="${EF_BENCH_BIN:-$ROOT/build/bin}"

[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (it creates network namespaces)" >&2; exit 1; }
START=$(date +%s)

if [ -z "${EF_BENCH_SKIP_BOOTSTRAP:-}" ]; then
  bash scripts/bootstrap.sh
fi
missing=()
for p in gnuplot-nox iptables time; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "run.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
CURL="$(command -v curl)" || { echo "run.sh: curl is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
for tool in egress-fence egress-fence-ctl ef_bench_time ef_bench_floor ef_bench_batch ef_bench_phases ef_bench_load ef_bench_sets efprobe; do
  [ -x "$BIN/$tool" ] || { echo "run.sh: $BIN/$tool is missing (build first)" >&2; exit 1; }
done

ID=$$
P="ef-bench-$ID"
TMP="$(mktemp -d "/tmp/$P.XXXXXX")"
RAW="$TMP/raw.csv"
SERVERS=()
NFT="$(command -v nft)"
NSENTER="$(command -v nsenter)"
FIREWALL=/usr/lib/cni/firewall
TIME="$BIN/ef_bench_time"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

cleanup() {
  set +e
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null; done
  if [ -d "$TMP/netns500" ]; then
    for f in "$TMP/netns500"/*; do umount "$f" 2>/dev/null; rm -f "$f"; done
  fi
  local ns pids
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do
    pids="$(ip netns pids "$ns" 2>/dev/null)"
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
rm -f "$OUT"/results.csv "$OUT"/raw.csv "$OUT"/*.png "$OUT"/*.dat "$OUT"/summary.txt "$OUT"/table.txt
echo "section,case,metric,median,p90,n,unit,note" >"$OUT/results.csv"

section_on() { [[ " $ONLY " == *" $1 "* ]]; }
log() { echo "[$(($(date +%s) - START))s] $*" >&2; }

# --- measuring -------------------------------------------------------------------

# interleave "V [ARGS]"...: calls each variant function (which runs
# ef_bench_time with its ARGS and the options given here) for CHUNKS rounds of
# RUNS/CHUNKS timed runs. CHUNK is set for the variant (netns names use it).
interleave() {
  local per=$(((RUNS + CHUNKS - 1) / CHUNKS)) warm v cmd
  for ((CHUNK = 0; CHUNK < CHUNKS; CHUNK++)); do
    warm=1
    ((CHUNK == 0)) && warm="${WARM0:-3}"
    for v in "$@"; do
      read -ra cmd <<<"$v"
      "${cmd[@]}" --runs "$per" --warmup "$warm" --raw "$RAW" >/dev/null
    done
  done
}

# once RUNS "V [ARGS]"...: each variant in one go (for the slow ones).
once() {
  local runs="$1" v cmd
  shift
  CHUNK=0
  for v in "$@"; do
    read -ra cmd <<<"$v"
    "${cmd[@]}" --runs "$runs" --warmup 1 --raw "$RAW" >/dev/null
  done
}

summarize() { "$TIME" --summarize "$RAW" >"$TMP/summary.txt"; }

# get LABEL KEY: a value of LABEL's summary line ("" when absent).
get() {
  local line
  line="$(grep -F "label=$1 " "$TMP/summary.txt" | head -1)" || true
  tr ' ' '\n' <<<"$line" | sed -n "s/^$2=//p" | head -1
}

# elements FILE: the allow-set elements ef_bench_batch reported.
elements() { { grep -o 'allow[0-9a-z_]*=[0-9]*' "$1" || true; } | awk -F= '{s += $2} END {print s + 0}'; }
# msdiff A_US B_US: (A - B) in ms.
msdiff() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.2f", (a - b) / 1000 }'; }
fmt0() { awk -v v="${1:-}" 'BEGIN { if (v == "") print "-"; else printf "%.0f", v }'; }
ms() { awk -v us="${1:-}" 'BEGIN { if (us == "") print "-"; else printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# csv SECTION CASE METRIC MEDIAN P90 N UNIT [NOTE]
csv() { printf '%s,"%s",%s,%s,%s,%s,%s,"%s"\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${8:-}" >>"$OUT/results.csv"; }

# csv_wall SECTION CASE LABEL [NOTE]: wall median/p90 (ms) and peak RSS of LABEL.
csv_wall() {
  csv "$1" "$2" wall "$(ms "$(get "$3" median_us)")" "$(ms "$(get "$3" p90_us)")" "$(get "$3" n)" ms "${4:-}"
  csv "$1" "$2" peak_rss "$(get "$3" maxrss_kib)" "" "$(get "$3" n)" KiB ""
}

TABLE="$OUT/table.txt"
: >"$TABLE"
say() { printf '%s\n' "$*" | tee -a "$TABLE"; }
row() { printf "%-52s %9s %9s %9s %9s %7s %5s\n" "$@" | tee -a "$TABLE"; }
dprow() { printf "%-24s %9s %9s %9s %9s %7s %9s %7s\n" "$@" | tee -a "$TABLE"; }

# --- inputs ----------------------------------------------------------------------

CNI_ARGS_POD="IgnoreUnknown=1;K8S_POD_NAMESPACE=sandboxes;K8S_POD_NAME=pod;K8S_POD_INFRA_CONTAINER_ID=bench"
# cni_env VERB NETNS_PATH: the env a runtime gives the plugin.
cni_env() {
  printf '%s\n' --env "CNI_COMMAND=$1" --env CNI_CONTAINERID=bench --env "CNI_NETNS=$2" --env CNI_IFNAME=eth0 \
    --env CNI_PATH=/usr/lib/cni --env "CNI_ARGS=$CNI_ARGS_POD"
}

# The example profile as the plugin gets it on stdin, its batch for the floor,
# and its nft text.
bash tests/bench/gen-config.sh "$TMP/example.json" --log "$TMP/egress-fence.log"
batch() { # CONFIG OUT [--create-only|--delete]
  "$BIN/ef_bench_batch" "$1" "$2" --namespace sandboxes --name pod --container-id bench "${@:3}"
}
batch "$TMP/example.json" "$TMP/example.batch" >"$TMP/example.batch.txt"
batch "$TMP/example.json" "$TMP/example-create.batch" --create-only >/dev/null
batch "$TMP/example.json" "$TMP/delete.batch" --delete >/dev/null
# render CONFIG OUT: what `egress-fence-ctl render` prints, as OUT.nft (a
# create), OUT-replace.nft (add + delete + create of each table, as the
# plugin's batch does) and OUT-delete.nft. nft 1.0.6 lists but cannot parse
# the secmark statements (lib/fence/ruleset.h): they are loaded as the
# equivalent `meta mark` statements (the same meta set / compare expressions).
render() {
  local tables
  "$BIN/egress-fence-ctl" render --config "$1" --namespace sandboxes --name pod |
    sed -e 's/meta secmark set /meta mark set /' -e 's/meta secmark \([0-9]\)/meta mark \1/' >"$2.nft"
  tables="$(sed -n 's/^table \([a-z0-9]*\) \([a-z_0-9]*\) {$/\1 \2/p' "$2.nft")"
  { while read -r f n; do printf 'table %s %s\ndelete table %s %s\n' "$f" "$n" "$f" "$n"; done <<<"$tables"
    cat "$2.nft"; } >"$2-replace.nft"
  while read -r f n; do printf 'delete table %s %s\n' "$f" "$n"; done <<<"$tables" >"$2-delete.nft"
}
render "$TMP/example.json" "$TMP/example"
# Does the text load at all? (check mode, in a scratch netns with an eth0)
NFT_OK=yes
ip netns add "$P-nftcheck"
ip -n "$P-nftcheck" link add eth0 type veth peer name eth1
if ! "$NSENTER" --net="/run/netns/$P-nftcheck" "$NFT" -c -f "$TMP/example.nft" 2>"$TMP/nft-check.err"; then
  NFT_OK="no: $(head -c 300 "$TMP/nft-check.err" | tr '\n' ' ')"
fi
ip netns delete "$P-nftcheck"
# nft_variants V...: V when the nft text loads, else nothing.
nft_variants() { [ "$NFT_OK" = yes ] && printf '%s\n' "$@"; return 0; }

# A helper for setup commands: fence.sh NETNS_PATH CONFIG [POD_NAME] (the plugin's ADD).
cat >"$TMP/fence.sh" <<EOF
#!/bin/sh
CNI_COMMAND=ADD CNI_CONTAINERID=bench CNI_NETNS="\$1" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=sandboxes;K8S_POD_NAME=\${3:-pod};K8S_POD_INFRA_CONTAINER_ID=bench" \\
  exec "$BIN/egress-fence" <"\$2" >/dev/null
EOF
chmod +x "$TMP/fence.sh"

# ns_opts NAME: NSO = ef_bench_time options giving each run a fresh pod netns
# with an eth0 (a veth whose peer stays inside: the primary CNI's interface, which the fence's
# netdev table hooks).
ns_opts() {
  NSO=(--setup "ip netns add $P-$1-$CHUNK-{i} && ip -n $P-$1-$CHUNK-{i} link add eth0 type veth peer name eth1"
    --teardown "ip netns delete $P-$1-$CHUNK-{i}")
}
# fenced_opts NAME: the same, fenced by the plugin's ADD (example profile).
fenced_opts() {
  NSO=(--setup "ip netns add $P-$1-$CHUNK-{i} && ip -n $P-$1-$CHUNK-{i} link add eth0 type veth peer name eth1 && $TMP/fence.sh $(nspath "$1") $TMP/example.json"
    --teardown "ip netns delete $P-$1-$CHUNK-{i}")
}
nspath() { echo "/run/netns/$P-$1-$CHUNK-{i}"; }
# plugin LABEL VERB NAME CONFIG PROGRAM [options]: a plugin-like PROGRAM run
# with the CNI env on the netns in NSO (set by the caller).
plugin() {
  local label="$1" verb="$2" name="$3" config="$4" prog="$5" env
  shift 5
  mapfile -t env < <(cni_env "$verb" "$(nspath "$name")")
  "$TIME" --label "$label" "${NSO[@]}" "${env[@]}" --stdin "$config" "$@" -- "$prog"
}

# === ADD ===========================================================================
v_true() { "$TIME" --label add/true "$@" -- /bin/true; }
v_floor_create() {
  ns_opts fc
  "$TIME" --label add/floor-create "${NSO[@]}" "$@" -- "$BIN/ef_bench_floor" "$(nspath fc)" "$TMP/example-create.batch"
}
v_floor() {
  ns_opts fl
  "$TIME" --label add/floor "${NSO[@]}" "$@" -- "$BIN/ef_bench_floor" "$(nspath fl)" "$TMP/example.batch"
}
v_add_ef() { ns_opts ef; plugin add/egress-fence ADD ef "$TMP/example.json" "$BIN/egress-fence" "$@"; }
# The plugin as it was before the large-allow-list work (issue 14), built from
# git: the small ADD must not have become slower.
v_add_base() { ns_opts eb; plugin add/egress-fence-base ADD eb "$TMP/example.json" "$BASE_BIN/egress-fence" "$@"; }
v_phases() { ns_opts ph; plugin add/phases ADD ph "$TMP/example.json" "$BIN/ef_bench_phases" "$@"; }
# What-if: the plugin's work with the replace batch of a re-ADD (close() waits).
v_phases_replace() {
  ns_opts pr
  local env
  mapfile -t env < <(cni_env ADD "$(nspath pr)")
  "$TIME" --label add/phases-replace "${NSO[@]}" "${env[@]}" --stdin "$TMP/example.json" "$@" -- \
    "$BIN/ef_bench_phases" --replace
}
v_nft_create() {
  ns_opts nc
  "$TIME" --label add/nft-create "${NSO[@]}" "$@" -- "$NSENTER" --net="$(nspath nc)" "$NFT" -f "$TMP/example.nft"
}
v_nft_replace() {
  ns_opts nr
  "$TIME" --label add/nft-replace "${NSO[@]}" "$@" -- "$NSENTER" --net="$(nspath nr)" "$NFT" -f "$TMP/example-replace.nft"
}
# The firewall plugin (iptables backend) programs the node's netns, not the
# pod's: give it a scratch "node" netns, and DEL after each ADD so every run
# starts from the same node state (its chains exist, no rule for this pod).
FW_NODE="$P-fwnode"
cat >"$TMP/firewall.json" <<EOF
{"cniVersion": "1.0.0", "name": "ef-bench", "type": "firewall", "backend": "iptables",
 "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/pod"}],
                "ips": [{"address": "10.99.0.2/24", "interface": 0}]}}
EOF
v_firewall() {
  local env
  mapfile -t env < <(cni_env ADD "$(nspath fw)")
  "$TIME" --label add/firewall --setup "ip netns add $P-fw-$CHUNK-{i}" \
    --teardown "CNI_COMMAND=DEL CNI_CONTAINERID=bench CNI_NETNS=$(nspath fw) CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni $NSENTER --net=/run/netns/$FW_NODE $FIREWALL <$TMP/firewall.json >/dev/null && ip netns delete $P-fw-$CHUNK-{i}" \
    --netns "/run/netns/$FW_NODE" "${env[@]}" --stdin "$TMP/firewall.json" "$@" -- "$FIREWALL"
}

# build_plugin_at REF DIR: the plugin as of commit REF, built into DIR; sets
# BUILT_BIN (empty on failure) and BUILT_WHY.
build_plugin_at() {
  local ref="$1" dir="$2"
  BUILT_BIN="" BUILT_WHY=""
  if ! git -C "$ROOT" rev-parse --verify -q "$ref^{commit}" >/dev/null; then
    BUILT_WHY="commit $ref is not in this checkout"
    return 0
  fi
  mkdir -p "$dir/src"
  git -C "$ROOT" archive "$ref" | tar -x -C "$dir/src"
  # The build type of the build it is compared with (scripts/bootstrap.sh: Release).
  local type
  type="$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BIN/../CMakeCache.txt" 2>/dev/null || true)"
  # Older CMakeLists have -Werror unconditionally, and GCC 12's false positives
  # (-Wrestrict, -Wstringop-overread) fire at -O3 (issue 13): a baseline is
  # only measured, so its copy is built without -Werror.
  sed -i 's/^add_compile_options(-Wall -Wextra -Werror)$/add_compile_options(-Wall -Wextra)/' "$dir/src/CMakeLists.txt"
  if cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE="${type:-Release}" >"$dir/build.log" 2>&1 &&
    cmake --build "$dir/build" -j"$(nproc)" --target egress-fence >>"$dir/build.log" 2>&1; then
    BUILT_BIN="$dir/build/bin"
  else
    tail -n 20 "$dir/build.log" >&2
    BUILT_WHY="the build of $ref failed (its log's end is above)"
  fi
}

BASE_REF="${EF_BENCH_BASE_REF:-bffe865}"
BASE_BIN="" BASE_WHY=""
if section_on add || section_on check; then
  if [ -n "${EF_BENCH_BASE_BIN:-}" ]; then
    BASE_BIN="$EF_BENCH_BASE_BIN"
  else
    log "add: building the baseline plugin from $BASE_REF"
    build_plugin_at "$BASE_REF" "$TMP/base"
    BASE_BIN="$BUILT_BIN" BASE_WHY="$BUILT_WHY"
  fi
fi
if section_on add; then
  log "add: ADD on a fresh pod netns"
  ip netns add "$FW_NODE"
  mapfile -t nftv < <(nft_variants v_nft_create v_nft_replace)
  basev=()
  [ -n "$BASE_BIN" ] && basev=(v_add_base)
  interleave v_true v_floor_create v_floor v_add_ef "${basev[@]}" v_phases v_phases_replace "${nftv[@]}" v_firewall
  # Where the floor's close() blocks (kernel stack), when perf is at hand.
  if command -v perf >/dev/null; then
    ip netns add "$P-perf"
    perf record -q -o "$TMP/perf.data" -e sched:sched_switch -g -- \
      "$BIN/ef_bench_floor" "/run/netns/$P-perf" "$TMP/example.batch" >/dev/null 2>&1 || true
    perf script -i "$TMP/perf.data" 2>/dev/null | awk '/prev_state=D/ {p = 1} p && NF == 0 {exit} p' >"$OUT/close-stack.txt" || true
    ip netns delete "$P-perf"
  fi
fi

# === DEL and CHECK ================================================================
v_del_ef() { fenced_opts de; plugin del/egress-fence DEL de "$TMP/example.json" "$BIN/egress-fence" "$@"; }
v_del_floor() {
  fenced_opts df
  "$TIME" --label del/floor "${NSO[@]}" "$@" -- "$BIN/ef_bench_floor" "$(nspath df)" "$TMP/delete.batch"
}
v_del_nft() {
  fenced_opts dn
  "$TIME" --label del/nft "${NSO[@]}" "$@" -- "$NSENTER" --net="$(nspath dn)" "$NFT" -f "$TMP/example-delete.nft"
}
v_check_ef() { fenced_opts ce; plugin check/egress-fence CHECK ce "$TMP/example.json" "$BIN/egress-fence" "$@"; }
v_check_nft() {
  fenced_opts cn
  "$TIME" --label check/nft-list "${NSO[@]}" "$@" -- "$NSENTER" --net="$(nspath cn)" "$NFT" list ruleset
}
if section_on del; then
  log "del: DEL of a fenced netns"
  mapfile -t nftv < <(nft_variants v_del_nft)
  interleave v_del_ef v_del_floor "${nftv[@]}"
fi
# CHECK of one netns fenced once with N exact entries (CHECK changes nothing):
# the plugin (count + lookups), the same forced to dump the elements
# (EF_TEST_NO_SET_COUNT=1: what a kernel before 6.16 gets) and the plugin as
# of EF_BENCH_BASE_REF (the dump, before issue 19).
CHECK_N=(10000 100000)
v_check_scale() { # N VARIANT(ef|dump|base) [options]
  local n="$1" how="$2" prog="$BIN/egress-fence" extra=() env ns="$P-chk-$1"
  shift 2
  # The base plugin checks a netns it fenced itself (its fence differs).
  [ "$how" = base ] && prog="$BASE_BIN/egress-fence" ns="$P-chkb-$n"
  [ "$how" = dump ] && extra=(--env EF_TEST_NO_SET_COUNT=1)
  mapfile -t env < <(cni_env CHECK "/run/netns/$ns")
  "$TIME" --label "check/$n/$how" "${env[@]}" "${extra[@]}" --stdin "$TMP/check-$n.json" "$@" -- "$prog"
}
if section_on check; then
  log "check: CHECK of a fenced netns"
  interleave v_check_ef v_check_nft
  for n in "${CHECK_N[@]}"; do
    bash tests/bench/gen-config.sh "$TMP/check-$n.json" --entries "$n" --shape exact --log "$TMP/egress-fence.log"
    ip netns add "$P-chk-$n"
    ip -n "$P-chk-$n" link add eth0 type veth peer name eth1
    "$TMP/fence.sh" "/run/netns/$P-chk-$n" "$TMP/check-$n.json"
    if [ -n "$BASE_BIN" ]; then
      ip netns add "$P-chkb-$n"
      ip -n "$P-chkb-$n" link add eth0 type veth peer name eth1
      sed "s|exec \"$BIN/egress-fence\"|exec \"$BASE_BIN/egress-fence\"|" "$TMP/fence.sh" >"$TMP/fence-base.sh"
      bash "$TMP/fence-base.sh" "/run/netns/$P-chkb-$n" "$TMP/check-$n.json"
    fi
  done
  log "check: CHECK of 10,000 and 100,000 entries"
  checkv=()
  for n in "${CHECK_N[@]}"; do
    checkv+=("v_check_scale $n ef" "v_check_scale $n dump")
    [ -n "$BASE_BIN" ] && checkv+=("v_check_scale $n base")
  done
  interleave "${checkv[@]}"
fi

# === scale ==========================================================================
# ADD on a fresh netns with N generated allow entries of two shapes
# (tests/bench/gen-config.sh): exact (/32, tcp 443: one hash set) and mixed
# (several prefix lengths, port ranges, v4 and v6). At each N and shape, in
# the same chunks: the plugin, the floor sending the plugin's own batch (the
# create batch of a fresh netns), `nft -f` of what `render` prints for the
# same config, ef_bench_phases, and the example profile's ADD (the small ADD),
# so every ratio is of one run.
SCALE_N=(3 1000 10000 100000)
SCALE_SHAPES=(exact mixed)
v_scale_small() { ns_opts ss; plugin scale/small/egress-fence ADD ss "$TMP/example.json" "$BIN/egress-fence" "$@"; }
v_scale_ef() { # SHAPE N [options]
  local shape="$1" n="$2"
  shift 2
  ns_opts "s$shape$n"
  plugin "scale/$shape/$n/egress-fence" ADD "s$shape$n" "$TMP/scale-$shape-$n.json" "$BIN/egress-fence" "$@"
}
v_scale_phases() { # SHAPE N
  local shape="$1" n="$2"
  shift 2
  ns_opts "p$shape$n"
  plugin "scale/$shape/$n/phases" ADD "p$shape$n" "$TMP/scale-$shape-$n.json" "$BIN/ef_bench_phases" "$@"
}
v_scale_floor() { # SHAPE N
  local shape="$1" n="$2"
  shift 2
  ns_opts "f$shape$n"
  "$TIME" --label "scale/$shape/$n/floor" "${NSO[@]}" "$@" -- "$BIN/ef_bench_floor" "$(nspath "f$shape$n")" "$TMP/scale-$shape-$n.batch"
}
v_scale_nft() { # SHAPE N
  local shape="$1" n="$2"
  shift 2
  ns_opts "n$shape$n"
  "$TIME" --label "scale/$shape/$n/nft-create" "${NSO[@]}" "$@" -- "$NSENTER" --net="$(nspath "n$shape$n")" "$NFT" -f "$TMP/scale-$shape-$n.nft"
}

if section_on scale; then
  log "scale: generating configs"
  for shape in "${SCALE_SHAPES[@]}"; do
    for n in "${SCALE_N[@]}"; do
      bash tests/bench/gen-config.sh "$TMP/scale-$shape-$n.json" --entries "$n" --shape "$shape" --log "$TMP/egress-fence.log"
      batch "$TMP/scale-$shape-$n.json" "$TMP/scale-$shape-$n.batch" --create-only >"$TMP/scale-$shape-$n.batch.txt"
      render "$TMP/scale-$shape-$n.json" "$TMP/scale-$shape-$n"
    done
  done
  for n in "${SCALE_N[@]}"; do
    log "scale: $n allow entries"
    variants=(v_scale_small)
    for shape in "${SCALE_SHAPES[@]}"; do
      variants+=("v_scale_ef $shape $n" "v_scale_floor $shape $n" "v_scale_phases $shape $n")
      mapfile -t -O "${#variants[@]}" variants < <(nft_variants "v_scale_nft $shape $n")
    done
    # nft -f of 100,000 entries takes a second or more a run: fewer of them.
    if ((n >= 100000)); then
      RUNS=$(((RUNS + 1) / 2)) interleave "${variants[@]}"
    else
      interleave "${variants[@]}"
    fi
  done
fi

# === set backends ===================================================================
# What the kernel chose for each set of the 100,000-entry layouts, and what
# the kernel's commit costs with the exact layout's set in its fixed-size hash
# (a declared size, as compiled), its resizable hash (no size) or pipapo
# (flags interval): the floor sending each batch, interleaved.
BACKEND_N=100000
BACKENDS=(hash rhash pipapo)
declare -A BACKEND_NAME=()
v_backend_floor() { # BACKEND [options]
  local b="$1"
  shift
  ns_opts "b$b"
  "$TIME" --label "backends/$b/floor" "${NSO[@]}" "$@" -- "$BIN/ef_bench_floor" "$(nspath "b$b")" "$TMP/backend-$b.batch"
}
if section_on backends; then
  log "backends: naming the kernel's set backends"
  # Reference sets whose backend the kernel's choice rules leave no doubt
  # about (nf_tables_api.c nft_select_set_ops): their NFTA_SET_TYPE strings
  # name the backends this kernel reports only as addresses.
  ip netns add "$P-ref"
  "$NSENTER" --net="/run/netns/$P-ref" "$NFT" -f - <<'EOF'
table inet egress_fence {
  set hash_fast { type ipv4_addr; size 16; }
  set hash { type ipv4_addr . inet_proto . inet_service; size 16; }
  set rhash { type ipv4_addr . inet_proto . inet_service; }
  set bitmap { type inet_service; size 16; }
  set rbtree { type ipv4_addr; flags interval; }
  set pipapo { type ipv4_addr . inet_proto . inet_service; flags interval; }
}
EOF
  while read -r line; do
    name="$(sed -n 's/^set=\([^ ]*\) .*/\1/p' <<<"$line")" backend="$(sed -n 's/.* backend=\([^ ]*\) .*/\1/p' <<<"$line")"
    [ -n "$backend" ] && BACKEND_NAME[$backend]="$name"
  done < <("$BIN/ef_bench_sets" "/run/netns/$P-ref")
  ip netns delete "$P-ref"
  for shape in "${SCALE_SHAPES[@]}"; do
    bash tests/bench/gen-config.sh "$TMP/backend-$shape.json" --entries "$BACKEND_N" --shape "$shape" --log "$TMP/egress-fence.log"
    ip netns add "$P-bk-$shape"
    ip -n "$P-bk-$shape" link add eth0 type veth peer name eth1
    "$TMP/fence.sh" "/run/netns/$P-bk-$shape" "$TMP/backend-$shape.json"
    "$BIN/ef_bench_sets" "/run/netns/$P-bk-$shape" >"$TMP/backend-$shape.sets"
    ip netns delete "$P-bk-$shape"
  done
  bash tests/bench/gen-config.sh "$TMP/backend.json" --entries "$BACKEND_N" --shape exact --log "$TMP/egress-fence.log"
  for b in "${BACKENDS[@]}"; do
    batch "$TMP/backend.json" "$TMP/backend-$b.batch" --create-only --backend "$b" >/dev/null
  done
  log "backends: the commit of $BACKEND_N exact entries per backend"
  RUNS=$(((RUNS + 1) / 2)) interleave "v_backend_floor hash" "v_backend_floor rhash" "v_backend_floor pipapo"
fi

# === datapath =======================================================================
# Four pairs of netns, each pod -- server over one veth (10.251.0.2 -> .1, no
# other address, no route): unfenced; fenced with 10 entries of the mixed shape
# by the plugin as of EF_BENCH_DP_BASE_REF (default 006cf3a, the fence before
# issue 17: conntrack state accepted first); and fenced by this plugin with 10
# and with 100,000 entries (every set kind a new flow is looked up in). The
# allowlists include the server (tcp and udp 5201); 5202 is not allowed.
# Loads: new flows (tcp-connect, udp-send) as root, which is not exempt; the
# proxy's established flows (tcp-bulk, udp-rr as UID 1337, exempt); an allowed
# established flow of the workload (udp-rr as UID 1000).
DP_CASES=(unfenced before f10 f100k)
DP_LOADS=(tcp-connect udp-send proxy-bulk proxy-rr workload-rr)
dp_client() { # CASE LOAD COUNT [options]
  local c="$1" load="$2" count="$3" mode uid=()
  shift 3
  case "$load" in
    proxy-bulk) mode=tcp-bulk uid=(--uid 1337) ;;
    proxy-rr) mode=udp-rr uid=(--uid 1337) ;;
    workload-rr) mode=udp-rr uid=(--uid 1000) ;;
    *) mode="$load" ;;
  esac
  "$TIME" --label "datapath/$load/$c" --netns "/run/netns/$P-dp-pod-$c" "$@" -- \
    "$BIN/ef_bench_load" "$mode" 10.251.0.1 5201 --count "$count" --seconds 20 "${uid[@]}"
}
dp_count() { # LOAD
  case "$1" in
    tcp-connect) echo 2000 ;;
    udp-send) echo 20000 ;;
    proxy-bulk) echo 4000 ;;   # 256 MiB in 64 KiB writes
    *) echo 10000 ;;
  esac
}
DP_BASE_REF="${EF_BENCH_DP_BASE_REF:-006cf3a}"
DP_BASE_WHY=""
if section_on datapath; then
  log "datapath: building the plugin as of $DP_BASE_REF (the fence before issue 17)"
  build_plugin_at "$DP_BASE_REF" "$TMP/dp-base"
  DP_BASE_BIN="$BUILT_BIN" DP_BASE_WHY="$BUILT_WHY"
  if [ -z "$DP_BASE_BIN" ]; then
    DP_CASES=(unfenced f10 f100k)
  fi
  log "datapath: setting up"
  bash tests/bench/gen-config.sh "$TMP/dp-10.json" --entries 10 --shape mixed --target 10.251.0.1:5201 --log "$TMP/egress-fence.log"
  bash tests/bench/gen-config.sh "$TMP/dp-100000.json" --entries 100000 --shape mixed --target 10.251.0.1:5201 --log "$TMP/egress-fence.log"
  for c in "${DP_CASES[@]}"; do
    pod="$P-dp-pod-$c" srv="$P-dp-srv-$c"
    ip netns add "$pod"
    ip netns add "$srv"
    ip -n "$pod" link add eth0 type veth peer name eth0 netns "$srv"
    ip -n "$pod" addr add 10.251.0.2/24 dev eth0
    ip -n "$srv" addr add 10.251.0.1/24 dev eth0
    for ns in "$pod" "$srv"; do
      ip -n "$ns" link set lo up
      ip -n "$ns" link set eth0 up
    done
    "$NSENTER" --net="/run/netns/$srv" "$BIN/ef_bench_load" serve 10.251.0.1 5201 --seconds 900 >"$TMP/srv-$c.out" 2>&1 &
    SERVERS+=($!)
  done
  if [ -n "$DP_BASE_BIN" ]; then
    CNI_COMMAND=ADD CNI_CONTAINERID=bench CNI_NETNS="/run/netns/$P-dp-pod-before" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
      CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=sandboxes;K8S_POD_NAME=pod;K8S_POD_INFRA_CONTAINER_ID=bench" \
      "$DP_BASE_BIN/egress-fence" <"$TMP/dp-10.json" >/dev/null
  fi
  "$TMP/fence.sh" "/run/netns/$P-dp-pod-f10" "$TMP/dp-10.json"
  "$TMP/fence.sh" "/run/netns/$P-dp-pod-f100k" "$TMP/dp-100000.json"
  for c in "${DP_CASES[@]}"; do
    for _ in $(seq 50); do grep -q ready "$TMP/srv-$c.out" 2>/dev/null && break; sleep 0.1; done
    # The fence is really there: allowed port connects, the other is refused.
    ip netns exec "$P-dp-pod-$c" "$BIN/efprobe" connect tcp 10.251.0.1 5201 >/dev/null
    rc=0
    ip netns exec "$P-dp-pod-$c" "$BIN/efprobe" connect tcp 10.251.0.1 5202 >/dev/null 2>&1 || rc=$?
    want=0
    [ "$c" != unfenced ] && want=111
    [ "$rc" = "$want" ] || { echo "run.sh: datapath $c: connect to the denied port gave $rc, expected $want" >&2; exit 1; }
  done
  log "datapath: measuring"
  variants=()
  for c in "${DP_CASES[@]}"; do
    for load in "${DP_LOADS[@]}"; do variants+=("dp_client $c $load $(dp_count "$load")"); done
  done
  interleave "${variants[@]}"
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  SERVERS=()
fi

# === parallel pod startup ===========================================================
# go-cni's runtime driver (build/bin/ef-runtime) sets up lo + the reference
# chain (bridge + host-local + egress-fence) as containerd does. It runs in a
# scratch "node" netns, so the bridge and the pods' host-side veths live there.
PAR=32
NODE="$P-node"
par_conf() { # DIR WITH_FENCE
  mkdir -p "$1"
  local filter='.'
  [ "$2" = no ] && filter='.plugins |= map(select(.type != "egress-fence"))'
  sed -e "s|@NET@|$P|; s|@BRIDGE@|efb$ID|; s|@IPAMDIR@|$TMP/ipam|; s|@SUBNET4@|10.252.0.0/24|" \
    -e "s|@RANGE4START@|10.252.0.10|; s|@RANGE4END@|10.252.0.250|; s|@SUBNET6@|fd00:252::/64|" \
    -e "s|@RANGE6START@|fd00:252::10|; s|@RANGE6END@|fd00:252::ff00|; s|@LOGFILE@|$TMP/parallel.log|g" \
    -e "s|@WORLD4@|10.252.0.200|g; s|@WORLD6@|fd00:252::200|g" bats/conf/reference-chain.conflist | jq "$filter" >"$1/10-bench.conflist"
}
runtime_args() { # CONFDIR: everything but the verb
  echo "--netns /run/netns/$P-par-$CHUNK-{i} --conf-dir $1 --bin-dir $BIN:/usr/lib/cni --namespace sandboxes --name pod-{i} --id efbench$ID-$CHUNK-{i}-0000000000000000"
}
v_par() { # LABEL CONFDIR MODE(concurrent|sequential) [options]
  local label="$1" dir="$2" mode="$3" conc=()
  shift 3
  [ "$mode" = concurrent ] && conc=(--concurrent)
  # shellcheck disable=SC2046
  "$TIME" --label "$label" --batch "$PAR" "${conc[@]}" --netns "/run/netns/$NODE" \
    --setup "ip netns add $P-par-$CHUNK-{i} && $NSENTER --net=/run/netns/$P-par-$CHUNK-{i} sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0" \
    --teardown "$NSENTER --net=/run/netns/$NODE $BIN/ef-runtime remove $(runtime_args "$dir"); ip netns delete $P-par-$CHUNK-{i}" \
    "$@" -- "$BIN/ef-runtime" setup $(runtime_args "$dir")
}
v_par_conc() { v_par parallel/fenced/concurrent "$TMP/net.d" concurrent "$@"; }
v_par_seq() { v_par parallel/fenced/sequential "$TMP/net.d" sequential "$@"; }
v_par_conc_nofence() { v_par parallel/unfenced/concurrent "$TMP/net.d-nofence" concurrent "$@"; }
v_par_seq_nofence() { v_par parallel/unfenced/sequential "$TMP/net.d-nofence" sequential "$@"; }
PAR_DRIVER="ef-runtime"
if section_on parallel; then
  if [ ! -x "$BIN/ef-runtime" ]; then
    PAR_DRIVER=none
    log "parallel: $BIN/ef-runtime is missing: skipped"
  else
    log "parallel: $PAR pod startups through ef-runtime (go-cni)"
    ip netns add "$NODE"
    ip -n "$NODE" link set lo up
    # No DAD wait: the bridge plugin waits for IPv6 addresses to settle.
    "$NSENTER" --net="/run/netns/$NODE" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    mkdir -p "$TMP/ipam"
    par_conf "$TMP/net.d" yes
    par_conf "$TMP/net.d-nofence" no
    # Each sample is 32 pod startups (about 3 s sequential): fewer samples.
    RUNS="$PAR_RUNS" CHUNKS=2 WARM0=1 interleave v_par_conc v_par_seq v_par_conc_nofence v_par_seq_nofence
  fi
fi

# === inspect / metrics over 500 fenced netns =====================================
INSPECT_N=500
v_inspect() {
  "$TIME" --label inspect/inspect "$@" -- "$BIN/egress-fence-ctl" inspect --netns-dir "$TMP/netns500" \
    --config conf/examples/design-example.json
}
v_metrics() {
  "$TIME" --label inspect/metrics "$@" -- "$BIN/egress-fence-ctl" metrics --netns-dir "$TMP/netns500" \
    --config conf/examples/design-example.json
}
# A scrape (the whole HTTP request, curl) of the metrics server the
# DaemonSet's main container runs, over the same netns.
v_scrape() {
  "$TIME" --label inspect/scrape "$@" -- "$CURL" -sf -o /dev/null "http://127.0.0.1:$SCRAPE_PORT/metrics"
}
SCRAPE_PORT="" SCRAPE_PID=""
if section_on inspect; then
  log "inspect: creating and fencing $INSPECT_N netns"
  mkdir -p "$TMP/netns500"
  for i in $(seq "$INSPECT_N"); do
    touch "$TMP/netns500/$P-$i"
    unshare --net="$TMP/netns500/$P-$i" ip link add eth0 type veth peer name eth1
  done
  t0=$(date +%s%N)
  # Each its own pod name, as on a node.
  # shellcheck disable=SC2016 # expanded by the inner sh
  printf '%s\n' "$TMP/netns500"/* | xargs -P 4 -I{} sh -c '"$1" "$2" "$3" "pod-${2##*-}"' sh "$TMP/fence.sh" {} "$TMP/example.json"
  fence_all_ms=$((($(date +%s%N) - t0) / 1000000))
  fenced=$("$BIN/egress-fence-ctl" inspect --netns-dir "$TMP/netns500" --json | jq '.pods | length')
  [ "$fenced" = "$INSPECT_N" ] || { echo "run.sh: inspect lists $fenced fenced netns, expected $INSPECT_N" >&2; exit 1; }
  for SCRAPE_PORT in $(seq 39700 39799); do [ -z "$(ss -Hltn "sport = :$SCRAPE_PORT")" ] && break; done
  "$BIN/egress-fence-ctl" metrics --listen 127.0.0.1 --port "$SCRAPE_PORT" --netns-dir "$TMP/netns500" \
    --config conf/examples/design-example.json >"$TMP/server.out" 2>&1 &
  SCRAPE_PID=$!
  SERVERS+=("$SCRAPE_PID")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$SCRAPE_PORT/healthz" && break; sleep 0.05; done
  # Every netns read, none cut by the scan's time limit (5 s).
  curl -sf -o "$TMP/scrape.prom" "http://127.0.0.1:$SCRAPE_PORT/metrics"
  if ! grep -qx "egress_fence_fenced_pods $INSPECT_N" "$TMP/scrape.prom" ||
    ! grep -qx 'egress_fence_scrape_incomplete 0' "$TMP/scrape.prom"; then
    echo "run.sh: the metrics server did not read all $INSPECT_N netns: $(grep -E '^egress_fence_(fenced_pods|scrape)' "$TMP/scrape.prom")" >&2
    exit 1
  fi
  log "inspect: measuring"
  interleave v_inspect v_metrics v_scrape
  # Peak RSS of the server's two processes: the one that scans, the one that serves HTTP.
  SCAN_HWM="$(awk '/^VmHWM:/ {print $2}' "/proc/$SCRAPE_PID/status")"
  HTTP_HWM="$(awk '/^VmHWM:/ {print $2}' "/proc/$(pgrep -P "$SCRAPE_PID" | head -1)/status")"
  curl -sf -o "$TMP/scrape.prom" "http://127.0.0.1:$SCRAPE_PORT/metrics"
  SCRAPE_BYTES="$(stat -c %s "$TMP/scrape.prom")" SCRAPE_SERIES="$(grep -vc '^#' "$TMP/scrape.prom")"
  SCRAPE_SCAN="$(awk '$1 == "egress_fence_scrape_duration_seconds" {printf "%.1f", $2 * 1000}' "$TMP/scrape.prom")"
  kill "$SCRAPE_PID"
  wait "$SCRAPE_PID" || true
  for f in "$TMP/netns500"/*; do umount "$f" && rm -f "$f"; done
fi

# === results ======================================================================
summarize
cp "$RAW" "$OUT/raw.csv"
cp "$TMP/summary.txt" "$OUT/summary.txt"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
say "egress-fence benchmarks: $(nproc) cores, kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
say "the plugin loads: $(readelf -d "$BIN/egress-fence" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | paste -sd' ') (simdjson $(
  readelf -d "$BIN/egress-fence" | grep -q 'NEEDED.*libsimdjson' && echo shared || echo 'compiled in'))"
say "load average at start $LOAD_START, at end $LOAD_END; median / p90 of n runs after warm-up"
[ "$NFT_OK" = yes ] || say "nft comparisons skipped: the rendered ruleset does not load with nft -f ($NFT_OK)"

phases_line() { # LABEL
  local l="$1" out k v
  out="process start $(ms "$(get "$l" mark_main_us)")"
  for k in read_stdin json_parse decode_and_validate select compile enter_netns socket_open encode commit socket_close read_back leave_netns result_json; do
    v=$(get "$l" "stat_${k}_us")
    [ -z "$v" ] && continue
    out+=", $k $(ms "$v")"
    csv phases "$l" "$k" "$(ms "$v")" "" "$(get "$l" n)" ms ""
  done
  local endus wall
  endus=$(get "$l" mark_end_us) wall=$(get "$l" median_us)
  out+=", exit $(msdiff "$wall" "$endus") ms"
  local ack
  ack=$(awk -v m="$(get "$l" mark_main_us)" -v l="$(grep -F "label=$l " "$TMP/summary.txt" | head -1)" 'BEGIN {
    s = m; n = split(l, f, " ")
    for (i = 1; i <= n; i++) { split(f[i], kv, "="); k = kv[1]
      if (k ~ /^stat_(read_stdin|json_parse|decode_and_validate|select|compile|enter_netns|socket_open|encode|commit)_us$/) s += kv[2] }
    printf "%.2f", s / 1000 }')
  out+="; acks at ~$ack ms after fork"
  say "  $out"
  csv phases "$l" process_start "$(ms "$(get "$l" mark_main_us)")" "" "$(get "$l" n)" ms ""
  csv phases "$l" exit "$(msdiff "$wall" "$endus")" "" "$(get "$l" n)" ms ""
}
if section_on add; then
  say ""
  say "== ADD on a fresh pod netns: example profile (conf/examples/design-example.json, 2 allow entries) =="
  row "case" "median ms" "p90 ms" "ack ms" "RSS KiB" "n"
  add_row() { # LABEL TEXT
    row "$2" "$(ms "$(get "$1" median_us)")" "$(ms "$(get "$1" p90_us)")" "$(ms "$(get "$1" mark_ack_us)")" \
      "$(get "$1" maxrss_kib)" "$(get "$1" n)"
    csv_wall add "$2" "$1"
  }
  add_row add/true "process start only (/bin/true)"
  add_row add/floor-create "floor: the plugin's batch (create, fresh netns)"
  add_row add/floor "floor: the replace batch of a re-ADD"
  add_row add/egress-fence "egress-fence ADD"
  add_row add/egress-fence-base "egress-fence ADD as of $BASE_REF"
  add_row add/phases "egress-fence's calls, timed (ef_bench_phases)"
  add_row add/phases-replace "same, replace batch (what-if: a re-ADD)"
  add_row add/nft-create "nsenter + nft -f (create)"
  add_row add/nft-replace "nsenter + nft -f (replace, as the plugin does)"
  add_row add/firewall "firewall plugin ADD (iptables-nft, node netns)"
  for l in add/floor add/floor-create; do
    csv add "$l" to_ack "$(ms "$(get $l mark_ack_us)")" "" "$(get $l n)" ms "fork to last ack"
    csv add "$l" close_wait "$(msdiff "$(get $l mark_closed_us)" "$(get $l mark_ack_us)")" "" "$(get $l n)" ms "close() of the netlink socket"
  done
  ef=$(get add/egress-fence median_us)
  r_floor=$(ratio "$ef" "$(get add/floor median_us)")
  r_create=$(ratio "$ef" "$(get add/floor-create median_us)")
  r_nft=$(ratio "$(get add/nft-create median_us)" "$ef")
  r_nftr=$(ratio "$(get add/nft-replace median_us)" "$ef")
  r_fw=$(ratio "$(get add/firewall median_us)" "$ef")
  say "egress-fence / floor (its own batch)   = ${r_create}x   (target <= 1.3x)"
  say "egress-fence / floor (replace batch)   = ${r_floor}x"
  say "nft -f (create) / egress-fence         = ${r_nft}x   (target >= 1.5x)"
  say "nft -f (replace) / egress-fence        = ${r_nftr}x"
  say "firewall plugin / egress-fence         = ${r_fw}x"
  if [ -n "$BASE_BIN" ]; then
    r_base=$(ratio "$ef" "$(get add/egress-fence-base median_us)")
    say "egress-fence / itself as of $BASE_REF   = ${r_base}x   (target <= 1.02x: the small ADD no slower)"
    csv ratio "egress-fence / egress-fence as of $BASE_REF" ratio "$r_base" "" "" x "target <= 1.02"
  else
    say "egress-fence / itself as of $BASE_REF: not measured: $BASE_WHY"
  fi
  csv ratio "egress-fence / floor (replace batch)" ratio "$r_floor" "" "" x ""
  csv ratio "egress-fence / floor (its own batch)" ratio "$r_create" "" "" x "target <= 1.3"
  csv ratio "nft -f create / egress-fence" ratio "$r_nft" "" "" x "target >= 1.5"
  csv ratio "nft -f replace / egress-fence" ratio "$r_nftr" "" "" x ""
  csv ratio "firewall / egress-fence" ratio "$r_fw" "" "" x ""
  fa=$(get add/floor mark_ack_us) fc=$(get add/floor mark_closed_us)
  say "close wait: the floor has its acks at $(ms "$fa") ms, its close() returns at $(ms "$fc") ms:"
  say "  $(msdiff "$fc" "$fa") ms in close(), paid by every process whose batch freed kernel objects (the"
  say "  DELTABLE that makes the batch a replace); create only: $(msdiff "$(get add/floor-create mark_closed_us)" "$(get add/floor-create mark_ack_us)") ms."
  [ -s "$OUT/close-stack.txt" ] && say "  kernel stack of the wait: tests/bench/out/close-stack.txt"
  say ""
  say "where egress-fence's ADD goes (ef_bench_phases: the plugin's calls in order, socket closed before the read-back):"
  phases_line add/phases
  say "  the replace batch of a re-ADD (what-if):"
  phases_line add/phases-replace
fi

if section_on del || section_on check; then
  say ""
  say "== DEL and CHECK of a fenced netns (example profile) =="
  row "case" "median ms" "p90 ms" "" "RSS KiB" "n"
  dc_row() {
    row "$2" "$(ms "$(get "$1" median_us)")" "$(ms "$(get "$1" p90_us)")" "" "$(get "$1" maxrss_kib)" "$(get "$1" n)"
    csv_wall "${1%%/*}" "$2" "$1"
  }
  if section_on del; then
    dc_row del/egress-fence "egress-fence DEL"
    dc_row del/floor "floor: prebuilt DELTABLE batch"
    dc_row del/nft "nsenter + nft -f (delete the tables)"
    say "egress-fence DEL / floor = $(ratio "$(get del/egress-fence median_us)" "$(get del/floor median_us)")x;  nft / egress-fence = $(ratio "$(get del/nft median_us)" "$(get del/egress-fence median_us)")x"
    say "(the floor deletes both tables in one batch and waits in close() once; a DEL that commits them in two"
    say " transactions on two sockets waits twice)"
  fi
  if section_on check; then
    dc_row check/egress-fence "egress-fence CHECK (read back + compare)"
    dc_row check/nft-list "nsenter + nft list ruleset"
    say "nft list / egress-fence CHECK = $(ratio "$(get check/nft-list median_us)" "$(get check/egress-fence median_us)")x"
    say ""
    say "== CHECK of a netns fenced with N exact entries (count + GETSETELEM lookups; the element dump; as of $BASE_REF) =="
    row "case" "median ms" "p90 ms" "" "RSS KiB" "n"
    for n in "${CHECK_N[@]}"; do
      dc_row "check/$n/ef" "$n: egress-fence CHECK (count + lookups)"
      dc_row "check/$n/dump" "$n: the same, elements dumped (no NFTA_SET_COUNT)"
      [ -n "$BASE_BIN" ] && dc_row "check/$n/base" "$n: egress-fence CHECK as of $BASE_REF"
    done
    r_lin=$(ratio "$(get check/100000/ef median_us)" "$(get check/10000/ef median_us)")
    r_today=$(ratio "$(get check/100000/ef median_us)" "$(get check/100000/base median_us)")
    r_dump=$(ratio "$(get check/100000/dump median_us)" "$(get check/10000/dump median_us)")
    say "CHECK 100,000 / 10,000 = ${r_lin}x (target <= 12x: linear); dumped: ${r_dump}x"
    say "CHECK 100,000 / as of $BASE_REF = ${r_today}x (target <= 0.5x); dumped / as of $BASE_REF = $(ratio "$(get check/100000/dump median_us)" "$(get check/100000/base median_us)")x"
    csv ratio "check 100000 / 10000" ratio "$r_lin" "" "" x "target <= 12"
    csv ratio "check 100000 / as of $BASE_REF" ratio "$r_today" "" "" x "target <= 0.5"
  fi
fi

if section_on scale; then
  say ""
  say "== scale: ADD on a fresh netns vs allow entries; the floor sends the same batch, nft -f loads what render prints =="
  row "entries: shape (set elements)" "ef ms" "floor ms" "ef/floor" "nft/ef" "/ small" "RSS KiB"
  : >"$OUT/scale.dat"
  small=$(get scale/small/egress-fence median_us)
  for n in "${SCALE_N[@]}"; do
    line="$n"
    for shape in "${SCALE_SHAPES[@]}"; do
      l="scale/$shape/$n/egress-fence" f="scale/$shape/$n/floor" x="scale/$shape/$n/nft-create"
      el=$(elements "$TMP/scale-$shape-$n.batch.txt")
      r=$(ratio "$(get "$l" median_us)" "$small") rf=$(ratio "$(get "$l" median_us)" "$(get "$f" median_us)")
      rn=$(ratio "$(get "$x" median_us)" "$(get "$l" median_us)")
      row "$n: $shape ($el)" "$(ms "$(get "$l" median_us)")" "$(ms "$(get "$f" median_us)")" "$rf" "$rn" "$r" "$(get "$l" maxrss_kib)"
      csv_wall scale "$n entries $shape: egress-fence" "$l" "$el set elements"
      csv_wall scale "$n entries $shape: floor" "$f"
      csv_wall scale "$n entries $shape: nft -f create" "$x"
      csv scale "$n entries $shape: floor" to_ack "$(ms "$(get "$f" mark_ack_us)")" "" "$(get "$f" n)" ms "kernel commit done"
      csv ratio "scale $n entries $shape / floor" ratio "$rf" "" "" x "target <= 1.3"
      csv ratio "scale $n entries $shape: nft -f / egress-fence" ratio "$rn" "" "" x ""
      csv ratio "scale $n entries $shape / small ADD" ratio "$r" "" "" x "$el set elements"
      # N, then per shape: elements, ef us, RSS KiB, floor us, nft us
      line="$line $el $(get "$l" median_us) $(get "$l" maxrss_kib) $(get "$f" median_us) $(get "$x" median_us)"
    done
    echo "$line $small" >>"$OUT/scale.dat"
  done
  say "n per case: $(get scale/exact/1000/egress-fence n) runs (100,000: $(get scale/exact/100000/egress-fence n)); the small ADD (example profile) in these runs: $(ms "$small") ms, RSS $(get scale/small/egress-fence maxrss_kib) KiB"
  say "p90 of ADD: $(for n in "${SCALE_N[@]}"; do printf '%s exact %s, mixed %s; ' "$n" "$(ms "$(get "scale/exact/$n/egress-fence" p90_us)")" "$(ms "$(get "scale/mixed/$n/egress-fence" p90_us)")"; done)"
  say "stdin at 100,000 entries: exact $(stat -c %s "$TMP/scale-exact-100000.json") bytes, mixed $(stat -c %s "$TMP/scale-mixed-100000.json") bytes"
  r10=$(ratio "$(get scale/exact/10000/egress-fence median_us)" "$small")
  r100=$(ratio "$(get scale/exact/100000/egress-fence median_us)" "$small")
  say "targets: ADD / floor <= 1.3 at every size and shape (column ef/floor); nft -f / ADD >= 3 at 10,000 and 100,000, >= 1.5 at 3 (nft/ef);"
  say "  10,000 exact / small = ${r10}x (<= 3); 100,000 exact / small = ${r100}x (<= 30);"
  say "  peak RSS at 100,000: exact $(get scale/exact/100000/egress-fence maxrss_kib) KiB, mixed $(get scale/mixed/100000/egress-fence maxrss_kib) KiB (<= 65536)"
  say ""
  say "where the time goes (ef_bench_phases, medians, ms; socket closed before the read-back; exit: from the end of main to reaped):"
  printf "%-16s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s\n" "entries: shape" start stdin parse validate compile netns encode commit readback exit total | tee -a "$TABLE"
  for n in "${SCALE_N[@]}"; do
    for shape in "${SCALE_SHAPES[@]}"; do
      l="scale/$shape/$n/phases"
      nsx=$(awk -v a="$(get "$l" stat_enter_netns_us)" -v b="$(get "$l" stat_socket_open_us)" 'BEGIN { printf "%.0f", a + b }')
      printf "%-16s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s\n" "$n: $shape" "$(ms "$(get "$l" mark_main_us)")" \
        "$(ms "$(get "$l" stat_read_stdin_us)")" "$(ms "$(get "$l" stat_json_parse_us)")" "$(ms "$(get "$l" stat_decode_and_validate_us)")" \
        "$(ms "$(get "$l" stat_compile_us)")" "$(ms "$nsx")" "$(ms "$(get "$l" stat_encode_us)")" \
        "$(ms "$(get "$l" stat_commit_us)")" "$(ms "$(get "$l" stat_read_back_us)")" \
        "$(msdiff "$(get "$l" median_us)" "$(get "$l" mark_end_us)")" "$(ms "$(get "$l" median_us)")" | tee -a "$TABLE"
    done
  done
fi

if section_on backends; then
  say ""
  say "== set backends the kernel chose (NFTA_SET_TYPE), $BACKEND_N entries =="
  name_of() { local n="${BACKEND_NAME[$1]:-}"; [ -n "$n" ] && echo "$n" || echo "$1"; }
  for shape in "${SCALE_SHAPES[@]}"; do
    while read -r line; do
      set_name="$(sed -n 's/^set=\([^ ]*\) .*/\1/p' <<<"$line")" count="$(sed -n 's/.* count=\([^ ]*\) .*/\1/p' <<<"$line")"
      backend="$(sed -n 's/.* backend=\([^ ]*\) .*/\1/p' <<<"$line")" size="$(sed -n 's/.* size=\([^ ]*\)$/\1/p' <<<"$line")"
      say "  $shape: set $set_name, $count elements, size $size: $(name_of "$backend") ($backend)"
      csv backends "$shape $set_name" backend "$(name_of "$backend")" "" "$count" "" "$backend"
    done <"$TMP/backend-$shape.sets"
  done
  say "  (named by reference sets of known backend in a scratch netns: $(for k in "${!BACKEND_NAME[@]}"; do printf '%s=%s ' "${BACKEND_NAME[$k]}" "$k"; done))"
  say "the kernel's commit of $BACKEND_N exact entries by backend (the floor sending the batch; ms to the last ack):"
  for b in "${BACKENDS[@]}"; do
    l="backends/$b/floor"
    say "  $b: $(ms "$(get "$l" mark_ack_us)") ms to the acks, $(ms "$(get "$l" median_us)") ms whole process (p90 $(ms "$(get "$l" p90_us)"), n $(get "$l" n))"
    csv backends "$b" commit "$(ms "$(get "$l" mark_ack_us)")" "" "$(get "$l" n)" ms "floor, $BACKEND_N exact entries"
  done
fi

if section_on datapath; then
  say ""
  say "== datapath: pod netns -> server netns over a veth, one client process, CPU us per operation =="
  dprow "load (median)" "unfenced" "before 17" "10 entries" "100000" "10/unf" "10/before" "100k/10"
  : >"$OUT/datapath.dat"
  for load in "${DP_LOADS[@]}"; do
    u=$(get "datapath/$load/unfenced" stat_cpu_per_op_us) o=$(get "datapath/$load/before" stat_cpu_per_op_us)
    a=$(get "datapath/$load/f10" stat_cpu_per_op_us) b=$(get "datapath/$load/f100k" stat_cpu_per_op_us)
    dprow "$load" "$u" "${o:--}" "$a" "$b" "$(ratio "$a" "$u")" "$(ratio "$a" "$o")" "$(ratio "$b" "$a")"
    for c in unfenced before f10 f100k; do
      csv datapath "$load $c" cpu_per_op_us "$(get "datapath/$load/$c" stat_cpu_per_op_us)" "" "$(get "datapath/$load/$c" n)" "" ""
    done
    target=""
    case "$load" in
      proxy-*) target="target <= 1.10 (the proxy's established flows)" ;;
      tcp-connect | udp-send) target="new flows: 10 entries / before issue 17 <= 1.05" ;;
    esac
    csv ratio "datapath $load cpu: 10 entries / unfenced" ratio "$(ratio "$a" "$u")" "" "" x "${target#new flows*}"
    csv ratio "datapath $load cpu: 10 entries / before issue 17" ratio "$(ratio "$a" "$o")" "" "" x "$target"
    csv ratio "datapath $load cpu: 100000 entries / 10 entries" ratio "$(ratio "$b" "$a")" "" "" x "flat = 1.00"
    echo "$load $u ${o:-0} $a $b" >>"$OUT/datapath.dat"
  done
  [ -n "$DP_BASE_WHY" ] && say "before 17: not measured: $DP_BASE_WHY"
  say "CPU us: the client's user + system time per operation (netfilter and veth work run in its send calls;"
  say "unlike wall time it is not inflated when the machine's other work preempts it)."
  say "tcp-connect: connect + reset-close per op (every SYN a new flow); udp-send: one datagram on an unanswered flow"
  say "(ct state new: allow-set lookup per packet); proxy-bulk: one 64 KiB write on the proxy's (UID 1337) TCP flow;"
  say "proxy-rr / workload-rr: one request/answer round trip on an established UDP flow, as the proxy / as UID 1000"
  say "to an allowed destination. before 17: the plugin as of $DP_BASE_REF (conntrack state accepted first)."
fi

if section_on parallel; then
  say ""
  say "== parallel pod startup: $PAR pods (lo + bridge + host-local + egress-fence) through $PAR_DRIVER (go-cni) =="
  if [ "$PAR_DRIVER" = none ]; then
    say "skipped: build/bin/ef-runtime is missing"
  else
    row "chain" "32 conc ms" "p90" "32 seq ms" "p90" "n"
    for f in fenced unfenced; do
      row "$f" "$(ms "$(get "parallel/$f/concurrent" median_us)")" "$(ms "$(get "parallel/$f/concurrent" p90_us)")" \
        "$(ms "$(get "parallel/$f/sequential" median_us)")" "$(ms "$(get "parallel/$f/sequential" p90_us)")" "$(get "parallel/$f/concurrent" n)"
      csv_wall parallel "$PAR pods $f concurrent" "parallel/$f/concurrent"
      csv_wall parallel "$PAR pods $f sequential" "parallel/$f/sequential"
    done
    say "fenced: sequential / concurrent = $(ratio "$(get parallel/fenced/sequential median_us)" "$(get parallel/fenced/concurrent median_us)")x;" \
      "fence's share, concurrent: $(msdiff "$(get parallel/fenced/concurrent median_us)" "$(get parallel/unfenced/concurrent median_us)") ms," \
      "sequential: $(msdiff "$(get parallel/fenced/sequential median_us)" "$(get parallel/unfenced/sequential median_us)") ms"
  fi
fi

if section_on inspect; then
  say ""
  say "== egress-fence-ctl over $INSPECT_N fenced netns (--config given: each is compared with the config) =="
  row "command" "median ms" "p90 ms" "per netns" "RSS KiB" "n"
  for c in inspect metrics scrape; do
    m=$(get "inspect/$c" median_us)
    row "$c" "$(ms "$m")" "$(ms "$(get "inspect/$c" p90_us)")" "$(awk -v m="$m" -v n=$INSPECT_N 'BEGIN { printf "%.0f us", m / n }')" \
      "$(get "inspect/$c" maxrss_kib)" "$(get "inspect/$c" n)"
    csv_wall inspect "$c over $INSPECT_N netns" "inspect/$c"
  done
  say "scrape: GET /metrics of \`egress-fence-ctl metrics --listen\` (curl's RSS above); the server's own scan $SCRAPE_SCAN ms;"
  say "  $SCRAPE_SERIES series, $SCRAPE_BYTES bytes; server peak RSS: scanning process $SCAN_HWM KiB, HTTP process $HTTP_HWM KiB"
  csv inspect "metrics server over $INSPECT_N netns: scanning process" peak_rss "$SCAN_HWM" "" 1 KiB "VmHWM"
  csv inspect "metrics server over $INSPECT_N netns: HTTP process" peak_rss "$HTTP_HWM" "" 1 KiB "VmHWM"
  csv inspect "metrics server over $INSPECT_N netns: exposition" size "$SCRAPE_BYTES" "" 1 bytes "$SCRAPE_SERIES series"
  say "fencing the $INSPECT_N netns (plugin ADD, 4 at a time): $fence_all_ms ms"
  csv inspect "fence $INSPECT_N netns, xargs -P 4" wall "$fence_all_ms" "" 1 ms ""
fi

# --- plots --------------------------------------------------------------------------
if section_on add; then
  : >"$OUT/add.dat"
  for l in add/floor-create add/floor add/egress-fence add/nft-create add/nft-replace add/firewall; do
    echo "\"${l#add/}\" $(ms "$(get $l median_us)") $(ms "$(get $l p90_us)")" >>"$OUT/add.dat"
  done
  gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set output "$OUT/add-latency.png"
set title "ADD on a fresh pod netns, example profile ($(nproc) cores, kernel $(uname -r)): median, p90"
set ylabel "ms (whole process)"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.6 border -1
set yrange [0:*]
set grid ytics
set xtics rotate by -20
plot "$OUT/add.dat" using 2:2:3:xtic(1) title "median (bar) .. p90" lc rgb "#3070b0"
EOF
fi
if section_on scale; then
  gnuplot <<EOF
set terminal pngcairo size 900,560 noenhanced
set output "$OUT/scale.png"
set title "ADD vs allow entries, fresh netns, median ($(nproc) cores, kernel $(uname -r))"
set logscale x
set logscale y
set xlabel "allow entries"
set ylabel "ms (whole process)"
set grid
set key top left
plot "$OUT/scale.dat" using 1:(\$3/1000) with linespoints lw 2 lc rgb "#1f77b4" title "egress-fence ADD, exact", \
     "" using 1:(\$5/1000) with linespoints lw 1 dt 2 lc rgb "#1f77b4" title "floor (the same batch), exact", \
     "" using 1:(\$6/1000) with linespoints lw 2 lc rgb "#d62728" title "nft -f (what render prints), exact", \
     "" using 1:(\$8/1000) with linespoints lw 2 lc rgb "#2ca02c" title "egress-fence ADD, mixed", \
     "" using 1:(\$10/1000) with linespoints lw 1 dt 2 lc rgb "#2ca02c" title "floor (the same batch), mixed", \
     "" using 1:(\$11/1000) with linespoints lw 1 lc rgb "#ff7f0e" title "nft -f, mixed"
EOF
fi
if section_on datapath; then
  gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set output "$OUT/datapath.png"
set title "Datapath: CPU time per new flow from a pod netns (median of $RUNS runs)"
set ylabel "microseconds of the sender's CPU per operation"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.6 border -1
set yrange [0:*]
set grid ytics
plot "$OUT/datapath.dat" using 2:xtic(1) title "unfenced", "" using 3 title "before issue 17, 10 entries", "" using 4 title "fenced, 10 entries", "" using 5 title "fenced, 100,000 entries"
EOF
fi

say ""
say "took $(($(date +%s) - START)) s; results: tests/bench/out/results.csv, plots: tests/bench/out/*.png, table: tests/bench/out/table.txt"
