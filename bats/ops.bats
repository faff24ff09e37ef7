#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 6 scenarios: operating the fence with no daemon. inspect and metrics over
# several netns (fenced, unfenced, tampered), probe as an init container would run
# it, reconcile after a config change, audit profiles, and denial logging in the
# node's kernel log.
#
# Every scan is pointed with --netns-dir at $NSDIR, a directory holding symlinks
# to this test's netns only, so netns of other tests or of the machine never show
# up in the results.

load helpers

setup() {
  ef_setup
  NSDIR="$EF_TMP/netns"
  mkdir -p "$NSDIR"
  CTL="$EF_BIN/egress-fence-ctl"
}

teardown() {
  ef_teardown
}

# new_pod NAME [NAMESPACE] [ANNOTATIONS_JSON]: a pod netns wired through the chain
# (lo, then the reference chain), linked into $NSDIR. Sets EF_POD, EF_POD_PATH,
# EF_POD_NAME, EF_POD_NAMESPACE for it (helpers act on the last pod made).
new_pod() {
  EF_POD_NAME="$1"
  EF_POD_NAMESPACE="${2:-sandboxes}"
  EF_POD_ANNOTATIONS="${3:-}"
  [ -n "$EF_POD_ANNOTATIONS" ] || EF_POD_ANNOTATIONS='{}'
  ef_setup_pod "$1"
  ln -s "$EF_POD_PATH" "$NSDIR/$EF_POD"
  ef_pod_add || fail "ADD failed for $1"
}

# use_pod NETNS NAME [NAMESPACE]: point the helpers back at an earlier pod.
use_pod() {
  EF_POD="$1"
  EF_POD_PATH="/run/netns/$1"
  EF_POD_NAME="$2"
  EF_POD_NAMESPACE="${3:-sandboxes}"
}

# A netns with nothing in it (never given to the plugin), linked into $NSDIR.
new_unfenced_netns() {
  local ns
  ns="$(ef_new_netns "$1")"
  ln -s "/run/netns/$ns" "$NSDIR/$ns"
  echo "$ns"
}

# edit_conf JQ_FILTER [ARGS...]: rewrites the conflist with the egress-fence
# entry as the thing to edit.
edit_conf() {
  local filter="$1" tmp="$EF_CONFLIST.new"
  shift
  jq "$@" "(.plugins[] | select(.type == \"egress-fence\")) |= ($filter)" "$EF_CONFLIST" >"$tmp"
  mv "$tmp" "$EF_CONFLIST"
}

# Connects from the current pod as the workload; exit status is the errno.
connect_tcp() { ef_probe connect tcp "$1" "$2" --uid "${3:-$EF_WORKLOAD_UID}" --timeout-ms 2000; }

# refuse_n N: N refused TCP connects to $EF_DENY4:8080 from the current pod.
refuse_n() {
  # Not "i": bats-core's run clobbers a global i.
  local k
  for ((k = 0; k < $1; k++)); do
    run -111 connect_tcp "$EF_DENY4" 8080
  done
}

# inspect_cell TABLE_FILE ROW_MATCH COLUMN: a cell of `inspect`'s table, picked by
# a fixed string in the row and the column's header (columns are 2+ spaces apart).
inspect_cell() {
  awk -F '  +' -v want="$3" -v row="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == want) col = i; next }
    index($0, row) { print $col }' "$1"
}

# packets FILE POD COUNTER: egress_fence_packets_total of that pod's named counter.
packets() {
  grep -E '^egress_fence_packets_total\{' "$1" | grep -F "pod=\"$2\"" | grep -F "counter=\"$3\"" | awk '{print $NF}'
}

# metric_value FILE NAME POD: the value of NAME's series whose pod label is POD.
metric_value() {
  grep -E "^$2\{" "$1" | grep -F "pod=\"$3\"" | awk '{print $NF}'
}

# node_value FILE NAME: the value of NAME's one series without labels.
node_value() { awk -v n="$2" '$1 == n {print $2}' "$1"; }

# prom_check FILE: promtool's check of the exposition text (format and lint),
# and no series (name and label set) twice, which promtool does not check and a
# Prometheus scrape would refuse.
prom_check() {
  local out
  out="$(promtool check metrics <"$1" 2>&1)" || { echo "promtool check metrics: $out" >&2; return 1; }
  [ -z "$out" ] || { echo "promtool check metrics: $out" >&2; return 1; }
  out="$(grep -v '^#' "$1" | sed -E 's/ [^ ]+$//' | sort | uniq -d)"
  [ -z "$out" ] || { echo "series twice: $out" >&2; return 1; }
}

# The first 12 characters of a container id, as inspect and metrics show it.
short_id() { printf '%s' "${1:0:12}"; }

# --- inspect -------------------------------------------------------------------

# Three fenced pods (one tampered), one unfenced netns; 3 refused connects from A.
inspect_world() {
  ef_world_listen_all
  new_pod "a-$EF_ID"
  POD_A="$EF_POD"
  new_pod "b-$EF_ID"
  POD_B="$EF_POD"
  new_pod "t-$EF_ID"
  POD_T="$EF_POD"
  ef_nft add element inet egress_fence exempt_uids '{ 1000 }'
  UNFENCED="$(new_unfenced_netns u)"
  use_pod "$POD_A" "a-$EF_ID"
  refuse_n 3
}

@test "inspect: one row per fenced netns, the tampered one DIFFERS, the unfenced one absent, counters as nft has them" {
  inspect_world
  run -0 "$CTL" inspect --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  printf '%s\n' "$output" >"$EF_TMP/table"
  # A header and exactly one row per fenced pod.
  assert_equal "$(wc -l <"$EF_TMP/table")" 4
  refute_output --partial "$UNFENCED"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " CONFIG)" "matches config"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/b-$EF_ID " CONFIG)" "matches config"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/t-$EF_ID " CONFIG)" "DIFFERS"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " PROFILE)" "proxy-only"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " NETNS)" "$NSDIR/$POD_A"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " CONTAINER)" "$(short_id "ctr-$POD_A")"

  # Counters: what nft itself reports in each pod, and A refused at least 3.
  local nft_refused
  nft_refused="$(ef_counter tcp_refused)"
  ((nft_refused >= 3)) || fail "nft counts $nft_refused refused TCP packets after 3 refused connects"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " TCP-REFUSED)" "$nft_refused"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " ALLOWED)" "$(ef_counter allowed_accepted)"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/b-$EF_ID " TCP-REFUSED)" 0

  # -v lists the tampered pod's difference.
  run -0 "$CTL" inspect -v --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  assert_output --regexp "$NSDIR/$POD_T: .*1000"
}

@test "inspect --json: the same facts as the table, and as nft" {
  inspect_world
  run -0 "$CTL" inspect --json --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  printf '%s\n' "$output" >"$EF_TMP/inspect.json"
  jq -e '.pods | length == 3' "$EF_TMP/inspect.json"
  jq -e '.unreadable == []' "$EF_TMP/inspect.json"
  jq -e --arg u "$UNFENCED" '[.pods[].netns | contains($u)] | any | not' "$EF_TMP/inspect.json"
  run jq -r '.pods | sort_by(.pod)[] | "\(.namespace)/\(.pod) \(.profile) \(.matchesConfig) \(.config)"' "$EF_TMP/inspect.json"
  assert_output "sandboxes/a-$EF_ID proxy-only true matches config
sandboxes/b-$EF_ID proxy-only true matches config
sandboxes/t-$EF_ID proxy-only false DIFFERS"
  jq -e --arg p "t-$EF_ID" '.pods[] | select(.pod == $p) | .differences | length > 0' "$EF_TMP/inspect.json"

  # Every counter of A is what `nft -j list counters` reports, packets and bytes;
  # mld_accepted only ever grows (the pod's own IPv6 MLD reports).
  ef_nft -j list counters table inet egress_fence |
    jq -c '[.nftables[] | select(.counter) | .counter | {key: .name, value: {packets, bytes}}] | from_entries' \
      >"$EF_TMP/nft-counters.json"
  jq -e '[keys[]] == ["allowed_accepted","exempt_accepted","mld_accepted","other_dropped","spoofed_dropped",
    "tcp_refused","udp_refused"]' \
    "$EF_TMP/nft-counters.json"
  jq -e --arg p "a-$EF_ID" --slurpfile nft "$EF_TMP/nft-counters.json" \
    '.pods[] | select(.pod == $p) | .counters as $c | $nft[0] | to_entries
     | all(if .key == "mld_accepted" then $c[.key].packets <= .value.packets else $c[.key] == .value end)' \
    "$EF_TMP/inspect.json" || { cat "$EF_TMP/nft-counters.json"; jq -c .pods "$EF_TMP/inspect.json"; false; }
  jq -e --arg p "a-$EF_ID" '.pods[] | select(.pod == $p) | .counters.tcp_refused.packets >= 3' "$EF_TMP/inspect.json"
}

# --- metrics -------------------------------------------------------------------

@test "metrics: promtool passes; every named counter of a table is a sample equal to nft's, one it does not know included; fenced-pod gauge, matches_config" {
  inspect_world
  # A counter the fence as written here does not make (a newer fence may add
  # such ones): it must be exported all the same, classed by its name.
  use_pod "$POD_T" "t-$EF_ID"
  ef_nft add counter inet egress_fence tunnel_dropped
  run -0 "$CTL" metrics --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  printf '%s\n' "$output" >"$EF_TMP/metrics.prom"
  prom_check "$EF_TMP/metrics.prom"

  assert_equal "$(node_value "$EF_TMP/metrics.prom" egress_fence_fenced_pods)" 3
  assert_equal "$(node_value "$EF_TMP/metrics.prom" egress_fence_unreadable_netns)" 0
  run -0 grep -cF "counter=\"tunnel_dropped\",verdict=\"denied\"} 0" "$EF_TMP/metrics.prom"
  assert_output 2 # packets and bytes
  # Pod A: one sample per counter object nft lists, with nft's values (the
  # counters the kernel's own IPv6 chatter moves, MLD reports and what else it
  # sends, only ever grow between the two reads).
  use_pod "$POD_A" "a-$EF_ID"
  local name want got n=0
  while read -r name want; do
    got="$(packets "$EF_TMP/metrics.prom" "a-$EF_ID" "$name")"
    [ -n "$got" ] || fail "no sample for counter $name"
    if [ "$name" = other_dropped ] || [ "$name" = mld_accepted ]; then ((got <= want)) || fail "$name: $got > nft's $want"
    else assert_equal "$got" "$want"; fi
    n=$((n + 1))
  done < <(ef_nft -j list counters table inet egress_fence | jq -r '.nftables[] | select(.counter) | .counter | "\(.name) \(.packets)"')
  ((n >= 5)) || fail "nft lists $n counters"
  assert_equal "$(grep -F "pod=\"a-$EF_ID\"" "$EF_TMP/metrics.prom" | grep -cE '^egress_fence_packets_total\{.*table="inet"')" "$n"
  (($(ef_counter tcp_refused) >= 3))
  assert_equal "$(packets "$EF_TMP/metrics.prom" "b-$EF_ID" tcp_refused)" 0
  assert_equal "$(metric_value "$EF_TMP/metrics.prom" egress_fence_matches_config "a-$EF_ID")" 1
  assert_equal "$(metric_value "$EF_TMP/metrics.prom" egress_fence_matches_config "b-$EF_ID")" 1
  assert_equal "$(metric_value "$EF_TMP/metrics.prom" egress_fence_matches_config "t-$EF_ID")" 0
  # The labels name the pod fully, the counter, and its verdict class.
  run grep -cF "egress_fence_packets_total{namespace=\"sandboxes\",pod=\"a-$EF_ID\",sandbox_id=\"$(short_id "ctr-$POD_A")\",profile=\"proxy-only\",table=\"inet\",counter=\"tcp_refused\",verdict=\"denied\"} $(ef_counter tcp_refused)" "$EF_TMP/metrics.prom"
  assert_output 1
  refute_output --partial "$UNFENCED"
}

@test "metrics --textfile: written atomically, the same text as stdout" {
  inspect_world
  mkdir "$EF_TMP/textfile"
  run -0 "$CTL" metrics --netns-dir "$NSDIR" --config "$EF_CONFLIST" --textfile "$EF_TMP/textfile/egress_fence.prom"
  assert_output ""
  run -0 "$CTL" metrics --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  printf '%s\n' "$output" >"$EF_TMP/stdout.prom"
  # The same text; counters the pods' own IPv6 chatter (MLD, in other_dropped)
  # can move between the two runs, and the scan's duration, are masked.
  mask() { sed -E -e 's/^([a-z_]+_total\{[^}]*\}) [0-9.e+]+$/\1 N/' -e 's/^(egress_fence_scrape_duration_seconds) .*/\1 N/' "$1"; }
  diff <(mask "$EF_TMP/stdout.prom") <(mask "$EF_TMP/textfile/egress_fence.prom")
  diff <(grep 'counter="tcp_refused"' "$EF_TMP/stdout.prom") \
    <(grep 'counter="tcp_refused"' "$EF_TMP/textfile/egress_fence.prom")
  assert_equal "$(stat -c %a "$EF_TMP/textfile/egress_fence.prom")" 644
  # Nothing but the file is left in the directory (no temp file).
  assert_equal "$(ls -A "$EF_TMP/textfile")" egress_fence.prom
  # Rewriting replaces the file (a new inode), never edits it in place.
  local before
  before="$(stat -c %i "$EF_TMP/textfile/egress_fence.prom")"
  refuse_n 1
  run -0 "$CTL" metrics --netns-dir "$NSDIR" --config "$EF_CONFLIST" --textfile "$EF_TMP/textfile/egress_fence.prom"
  [ "$(stat -c %i "$EF_TMP/textfile/egress_fence.prom")" != "$before" ] || fail "the textfile was rewritten in place"
  assert_equal "$(packets "$EF_TMP/textfile/egress_fence.prom" "a-$EF_ID" tcp_refused)" "$(ef_counter tcp_refused)"
  prom_check "$EF_TMP/textfile/egress_fence.prom"
}

@test "metrics: the format check itself rejects broken exposition text" {
  local good="$EF_TMP/good.prom"
  cat >"$good" <<'EOF'
# HELP egress_fence_fenced_pods Pods.
# TYPE egress_fence_fenced_pods gauge
egress_fence_fenced_pods 2
# HELP egress_fence_packets_total Packets.
# TYPE egress_fence_packets_total counter
egress_fence_packets_total{namespace="s",pod="a\"b"} 3
egress_fence_packets_total{namespace="s",pod="c"} 0
EOF
  prom_check "$good"
  # broken: a bad name, a label without quotes, a second TYPE, TYPE after samples,
  # a duplicate series, a counter not ending in _total, no HELP, no value.
  local -a breaks=(
    's/^egress_fence_fenced_pods 2/egress-fence_fenced_pods 2/'
    's/pod="c"/pod=c/'
    '3a # TYPE egress_fence_fenced_pods gauge'
    '2d; 3a # TYPE egress_fence_fenced_pods gauge'
    's/pod="c"/pod="a\\"b"/'
    's/egress_fence_packets_total/egress_fence_packets/g'
    '/^# HELP egress_fence_fenced_pods/d'
    's/^egress_fence_fenced_pods 2/egress_fence_fenced_pods/'
  )
  local b
  for b in "${breaks[@]}"; do
    sed -e "$b" "$good" >"$EF_TMP/bad.prom"
    ! cmp -s "$good" "$EF_TMP/bad.prom" || fail "sed '$b' changed nothing"
    run prom_check "$EF_TMP/bad.prom"
    assert_failure
  done
}

# --- the metrics server ----------------------------------------------------------

# start_server CMD...: runs CMD (a metrics server listening on 127.0.0.1:$PORT)
# in the background, stopped at teardown; waits until /healthz answers at all.
# SERVER is its pid, URL its address, $EF_TMP/server.out its output.
start_server() {
  "$@" >"$EF_TMP/server.out" 2>&1 3>&- &
  SERVER=$!
  ef_on_teardown stop_server "$SERVER"
  URL="http://127.0.0.1:$PORT"
  local i
  for ((i = 0; i < 200; i++)); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" != 000 ]; then return 0; fi
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.05
  done
  cat "$EF_TMP/server.out" >&2
  fail "the metrics server did not come up"
}

stop_server() {
  kill -TERM "$1" 2>/dev/null || return 0
  wait "$1" 2>/dev/null || true
}

# A TCP port nothing on this machine listens on.
pick_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    PORT=$((20000 + RANDOM % 20000))
    if [ -z "$(ss -Hltn "sport = :$PORT")" ]; then return 0; fi
  done
  fail "no free port"
}

# serve [ARGS...]: `metrics --listen 127.0.0.1` over this test's netns.
serve() {
  pick_port
  start_server "$CTL" metrics --listen 127.0.0.1 --port "$PORT" --netns-dir "$NSDIR" --config "$EF_CONFLIST" "$@"
}

# scrape NAME: GET /metrics into $EF_TMP/NAME.prom.
scrape() { curl -sf -o "$EF_TMP/$1.prom" "$URL/metrics" || fail "GET $URL/metrics failed"; }

# The pid of the process listening on $PORT.
listener_pid() { ss -Hltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

@test "metrics server: every scrape reads the tables afresh, promtool passes, the families are those of metrics; /healthz; the HTTP side is uid 65534 with no capability" {
  inspect_world
  serve
  scrape first
  prom_check "$EF_TMP/first.prom"
  assert_equal "$(node_value "$EF_TMP/first.prom" egress_fence_fenced_pods)" 3
  assert_equal "$(node_value "$EF_TMP/first.prom" egress_fence_scrape_incomplete)" 0
  local first
  first="$(packets "$EF_TMP/first.prom" "a-$EF_ID" tcp_refused)"
  assert_equal "$first" "$(ef_counter tcp_refused)"
  assert_equal "$(metric_value "$EF_TMP/first.prom" egress_fence_matches_config "t-$EF_ID")" 0
  refuse_n 2
  scrape second
  assert_equal "$(packets "$EF_TMP/second.prom" "a-$EF_ID" tcp_refused)" "$(ef_counter tcp_refused)"
  (($(packets "$EF_TMP/second.prom" "a-$EF_ID" tcp_refused) >= first + 2))
  # The same families, in the same order, as the one-shot command prints.
  run -0 "$CTL" metrics --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  diff <(grep '^# TYPE egress_fence' <<<"$output") <(grep '^# TYPE egress_fence' "$EF_TMP/second.prom")
  run -0 curl -s -w ' %{http_code}' "$URL/healthz"
  assert_output "ok
 200"
  run curl -s -o /dev/null -w '%{http_code}' "$URL/other"
  assert_output 404

  # Who listens: not the process started, but its child, as nobody with nothing.
  local http
  http="$(listener_pid)"
  [ -n "$http" ] && [ "$http" != "$SERVER" ] || fail "the listener is $http, the server $SERVER"
  assert_equal "$(awk '/^PPid:/ {print $2}' "/proc/$http/status")" "$SERVER"
  grep -qE '^Uid:\s+65534\s+65534\s+65534\s+65534$' "/proc/$http/status" || fail "$(grep Uid "/proc/$http/status")"
  grep -qE '^Gid:\s+65534\s+65534\s+65534\s+65534$' "/proc/$http/status" || fail "$(grep Gid "/proc/$http/status")"
  grep -qE '^Groups:\s*$' "/proc/$http/status" || fail "$(grep Groups "/proc/$http/status")"
  local set
  for set in CapInh CapPrm CapEff CapAmb; do
    grep -qE "^$set:\s+0000000000000000$" "/proc/$http/status" || fail "$(grep "$set" "/proc/$http/status")"
  done
  grep -qE '^NoNewPrivs:\s+1$' "/proc/$http/status"
  # The one that reads the tables stays what it was started as.
  grep -qE '^Uid:\s+0\s' "/proc/$SERVER/status"

  # SIGTERM ends both, with status 0.
  kill -TERM "$SERVER"
  local rc=0
  wait "$SERVER" || rc=$?
  assert_equal "$rc" 0
  [ ! -e "/proc/$http" ] || fail "the HTTP process outlived the server"
}

@test "metrics server: a scan past its time limit answers with what it has read, and egress_fence_scrape_incomplete 1" {
  new_pod "a-$EF_ID"
  new_pod "b-$EF_ID"
  # A limit already over when the scan starts: no netns is read.
  serve --scan-timeout 0
  scrape cut
  prom_check "$EF_TMP/cut.prom"
  assert_equal "$(node_value "$EF_TMP/cut.prom" egress_fence_scrape_incomplete)" 1
  assert_equal "$(node_value "$EF_TMP/cut.prom" egress_fence_fenced_pods)" 0
  stop_server "$SERVER"
  serve
  scrape whole
  assert_equal "$(node_value "$EF_TMP/whole.prom" egress_fence_scrape_incomplete)" 0
  assert_equal "$(node_value "$EF_TMP/whole.prom" egress_fence_fenced_pods)" 2
}

# invocations FILE VERB RESULT CODE: egress_fence_invocations_total of that series.
invocations() {
  grep -F "egress_fence_invocations_total{verb=\"$2\",result=\"$3\",code=\"$4\"} " "$1" | awk '{print $NF}'
}

# A sandbox whose ADD fails: a profile annotation its selector does not allow.
failed_add() {
  ef_setup_pod "f$1"
  run ef_runtime setup --annotation egress-fence.io/profile=not-allowed
  assert_failure
}

@test "metrics server: plugin outcomes from its log: a failed ADD with its code, the last failure's time; counts carry across the log's rotation; each line printed" {
  serve --follow-log "$EF_LOGFILE"
  new_pod "a-$EF_ID"
  new_pod "b-$EF_ID"
  failed_add 1
  local code time
  code="$(jq -r 'select(.verb == "ADD" and .outcome == "error") | .errorCode' "$EF_LOGFILE")"
  [ "$code" -ge 1 ] || fail "the log has no failed ADD: $(cat "$EF_LOGFILE")"
  time="$(jq -r 'select(.verb == "ADD" and .outcome == "error") | .time' "$EF_LOGFILE")"
  scrape one
  prom_check "$EF_TMP/one.prom"
  assert_equal "$(invocations "$EF_TMP/one.prom" ADD error "$code")" 1
  assert_equal "$(invocations "$EF_TMP/one.prom" ADD fenced 0)" \
    "$(jq -s '[.[] | select(.verb == "ADD" and .outcome == "fenced")] | length' "$EF_LOGFILE")"
  assert_equal "$(invocations "$EF_TMP/one.prom" ADD fenced 0)" 2
  # Every other error code of ADD is there at 0, so a first failure shows in increase().
  assert_equal "$(invocations "$EF_TMP/one.prom" ADD error 101)" 0
  local seen
  seen="$(grep -F "egress_fence_last_failure_timestamp_seconds{verb=\"ADD\",code=\"$code\"} " "$EF_TMP/one.prom" | awk '{print $NF}')"
  awk -v a="$seen" -v b="$(date -d "$time" +%s.%6N)" 'BEGIN { d = a - b; exit !(d < 0.001 && d > -0.001) }' ||
    fail "last failure at $seen, the log says $time"
  assert_equal "$(node_value "$EF_TMP/one.prom" egress_fence_log_unparsed_lines_total)" 0
  # kubectl logs: the server prints every line it counts.
  local line
  while IFS= read -r line; do grep -qxF -- "$line" "$EF_TMP/server.out" || fail "not printed: $line"; done <"$EF_LOGFILE"

  # The plugin's rotation (the file renamed to .1, a new one started):
  # counted once, and not reset.
  mv "$EF_LOGFILE" "$EF_LOGFILE.1"
  failed_add 2
  scrape two
  assert_equal "$(invocations "$EF_TMP/two.prom" ADD error "$code")" 2
  assert_equal "$(invocations "$EF_TMP/two.prom" ADD fenced 0)" 2
  # A line that is not a record is counted as such.
  echo 'not a record' >>"$EF_LOGFILE"
  scrape three
  assert_equal "$(node_value "$EF_TMP/three.prom" egress_fence_log_unparsed_lines_total)" 1
  prom_check "$EF_TMP/three.prom"
}

@test "metrics server: refuses what it cannot serve (an IPv6 address, a name, a port in use) with the reason, and leaves nothing running" {
  run -7 "$CTL" metrics --listen ::1 --netns-dir "$NSDIR"
  assert_output --partial "cannot listen on ::1: this build's HTTP server (Debian's civetweb) has no IPv6"
  run -7 "$CTL" metrics --listen localhost --netns-dir "$NSDIR"
  assert_output --partial '"localhost": not an IPv4 address'
  serve
  run -4 "$CTL" metrics --listen 127.0.0.1 --port "$PORT" --netns-dir "$NSDIR"
  assert_output --partial "the metrics server did not start: cannot listen on 127.0.0.1:$PORT"
  # Only the first server's two processes exist for this port.
  local pids
  pids="$(pgrep -f -- "--port $PORT" | sort | paste -sd' ')"
  assert_equal "$pids" "$(printf '%s\n' "$SERVER" "$(listener_pid)" | sort | paste -sd' ')"
  run -0 curl -sf -o /dev/null "$URL/metrics"
}

@test "metrics server: when its HTTP process dies, the server ends with an error saying so (kubelet then restarts the container)" {
  serve
  local http rc=0
  http="$(listener_pid)"
  [ -n "$http" ] && [ "$http" != "$SERVER" ] || fail "no HTTP process"
  kill -KILL "$http"
  wait "$SERVER" || rc=$?
  [ "$rc" -ne 0 ] || fail "the server exited 0 after its HTTP process died"
  grep -qF "the metrics server's HTTP process was killed by signal Killed" "$EF_TMP/server.out" ||
    fail "$(cat "$EF_TMP/server.out")"
  [ -z "$(ss -Hltn "sport = :$PORT")" ] || fail "something still listens on $PORT"
}

@test "install --then-pause --metrics-listen (the chart's main container): /healthz answers what verify says, 200 fenced, 503 not fenced and why" {
  local bin="$EF_TMP/host-bin" conf="$EF_TMP/host-net.d"
  mkdir -p "$bin" "$conf"
  cp "$EF_CNI_PLUGIN_DIR/bridge" "$EF_CNI_PLUGIN_DIR/host-local" "$bin/"
  jq '.plugins |= map(select(.type != "egress-fence"))' "$EF_CONFLIST" >"$conf/10-primary.conflist"
  jq '.plugins[] | select(.type == "egress-fence")' "$EF_CONFLIST" >"$EF_TMP/entry.json"
  local verify=("$CTL" verify --cni-conf-dir "$conf" --cni-bin-dir "$bin" --plugin-config "$EF_TMP/entry.json")
  pick_port
  start_server "$CTL" install --cni-bin-dir "$bin" --cni-conf-dir "$conf" --plugin-config "$EF_TMP/entry.json" \
    --plugin-binary "$EF_BIN/egress-fence" --then-pause --follow-log "$EF_LOGFILE" \
    --metrics-listen 127.0.0.1 --metrics-port "$PORT" --metrics-netns-dir "$NSDIR"
  run -0 "${verify[@]}"
  local fenced="$output"
  run -0 curl -s -w '%{http_code}' "$URL/healthz"
  assert_output "$fenced
200"
  new_pod "a-$EF_ID"
  scrape m
  assert_equal "$(node_value "$EF_TMP/m.prom" egress_fence_fenced_pods)" 1
  assert_equal "$(metric_value "$EF_TMP/m.prom" egress_fence_matches_config "a-$EF_ID")" 1
  # The owned conflist deleted: not fenced, and /healthz says why, as verify does.
  rm "$conf/00-egress-fence.conflist"
  run "${verify[@]}"
  assert_failure
  local why="${lines[0]#egress-fence-ctl: }"
  [[ "$why" == "not fenced: "* ]] || fail "verify said: $output"
  run -0 curl -s -w '%{http_code}' "$URL/healthz"
  assert_line --index 0 "$why"
  assert_line --index -1 503
}

@test "metrics: every query of the chart's dashboard and every series its alerts select finds series in a real scrape (promtool)" {
  EF_HELM="$("$EF_ROOT/scripts/helm.sh")"
  inspect_world
  # An audit pod (its verdict class has panels of its own) and a failed ADD.
  edit_conf '.profiles.watch = (.profiles["proxy-only"] + {mode: "audit"})
    | .selectors[0].allowedProfiles += ["watch"]'
  new_pod "w-$EF_ID" sandboxes '{"egress-fence.io/profile": "watch"}'
  serve --follow-log "$EF_LOGFILE"
  failed_add 1
  scrape real
  "$EF_HELM" template ef "$EF_ROOT/install/helm/egress-fence" --namespace kube-system --set metrics.rules.enabled=true \
    >"$EF_TMP/chart.yaml"
  node "$EF_ROOT/.deps/npm/tojson.mjs" "$EF_TMP/chart.yaml" | jq '.[] | select(.kind == "PrometheusRule") | .spec' >"$EF_TMP/rules.json"
  local dashboard="$EF_ROOT/install/helm/egress-fence/files/dashboard.json"
  mkdir "$EF_TMP/sel"
  run -0 node "$EF_ROOT/tests/metrics/promql.mjs" selected "$dashboard" "$EF_TMP/rules.json" "$EF_TMP/real.prom" "$EF_TMP/sel"
  run -0 promtool check rules "$EF_TMP/sel/selected.rules.json"
  run -0 promtool test rules "$EF_TMP/sel/selected.test.yaml"
  # The check can fail: a metric the server does not serve, a label value it never has.
  local m
  for m in 's/egress_fence_packets_total/egress_fence_packet_total/' 's/verdict=\\"audit\\"/verdict=\\"would\\"/'; do
    mkdir -p "$EF_TMP/mut"
    sed -e "$m" "$dashboard" >"$EF_TMP/mut/dashboard.json"
    ! cmp -s "$dashboard" "$EF_TMP/mut/dashboard.json" || fail "sed '$m' changed nothing"
    node "$EF_ROOT/tests/metrics/promql.mjs" selected "$EF_TMP/mut/dashboard.json" "$EF_TMP/rules.json" "$EF_TMP/real.prom" "$EF_TMP/mut" >/dev/null
    run promtool test rules "$EF_TMP/mut/selected.test.yaml"
    assert_failure
  done
  sed -e 's/verdict=\\"denied\\"/verdict=\\"deny\\"/' "$EF_TMP/rules.json" >"$EF_TMP/mut/rules.json"
  ! cmp -s "$EF_TMP/rules.json" "$EF_TMP/mut/rules.json" || fail "the rules mutant changed nothing"
  node "$EF_ROOT/tests/metrics/promql.mjs" selected "$dashboard" "$EF_TMP/mut/rules.json" "$EF_TMP/real.prom" "$EF_TMP/mut" >/dev/null
  run promtool test rules "$EF_TMP/mut/selected.test.yaml"
  assert_failure
  assert_output --partial EgressFencePodDenialsSpike
}

# --- probe ---------------------------------------------------------------------

# as_uid UID [SETPRIV_ARGS...] -- CMD...: CMD in the pod as UID (groups cleared),
# with the setpriv options given; the inheritable set cleared unless they set it.
as_uid() {
  local uid="$1"
  shift
  local opts=() inh=--inh-caps=-all
  while [ "$1" != -- ]; do
    [[ "$1" == --inh-caps* ]] && inh="$1" || opts+=("$1")
    shift
  done
  shift
  ef_in_pod setpriv --reuid "$uid" --regid "$uid" --clear-groups "$inh" "${opts[@]}" "$@"
}

@test "probe: 0 in a fenced pod for a non-root UID without capabilities (no_new_privs, or an empty bounding set); 2 as the exempt UID" {
  ef_world_listen tcp "$EF_DENY4" 8080
  new_pod "p-$EF_ID"
  local probe=("$CTL" probe --target "$EF_DENY4:8080" --timeout 1000)
  # What allowPrivilegeEscalation: false with drop: [ALL] gives a container.
  run -0 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all --no-new-privs -- "${probe[@]}"
  assert_output --partial "fenced"
  refute_output --partial "warning"
  refute_output --partial "no_new_privs is off"
  # Nothing to regain by exec either: no capability in the bounding set. A note
  # says what no_new_privs would still close (a setuid binary of an exempt UID).
  run -0 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all -- "${probe[@]}"
  assert_output --partial "note: no_new_privs is off"
  # no_new_privs alone, full bounding set: exec cannot give anything back.
  run -0 as_uid "$EF_WORKLOAD_UID" --no-new-privs -- "${probe[@]}"
  # The exempt proxy UID passes the fence: the probe sees an open pod.
  run -2 as_uid "$EF_PROXY_UID" --bounding-set=-all --no-new-privs -- "${probe[@]}"
  assert_output --partial "NOT FENCED"
}

@test "probe: 6 for a process that could change its UID: root (NET_RAW and NET_ADMIN dropped), a non-root UID that can regain CAP_SETUID by exec, differing real and effective UIDs" {
  ef_world_listen tcp "$EF_DENY4" 8080
  new_pod "p-$EF_ID"
  local probe=("$CTL" probe --target "$EF_DENY4:8080" --timeout 1000)
  # Root with NET_RAW and NET_ADMIN gone from every set (exec as root sets the
  # permitted set to the bounding set): the connection is refused, but root can
  # setuid to the proxy UID. As root it holds no CAP_NET_ADMIN, so the fence's
  # exempt UIDs cannot be read.
  run -6 ef_in_pod setpriv --bounding-set=-net_raw,-net_admin "${probe[@]}"
  assert_output --partial "probe: fenced"
  assert_output --partial "NOT FENCED AGAINST THIS PROCESS: this process could own sockets as another UID"
  assert_output --partial "it runs as root"
  assert_output --partial "CAP_SETUID: holds it (CapPrm)"
  assert_output --partial "exempt UIDs of this pod's fence: unknown (reading the fence needs CAP_NET_ADMIN"
  refute_output --partial "CAP_NET_RAW"
  # The same with no_new_privs: root is root.
  run -6 ef_in_pod setpriv --bounding-set=-net_raw,-net_admin --no-new-privs "${probe[@]}"
  assert_output --partial "it runs as root"
  # Non-root, nothing held, but CAP_SETUID in the bounding set and no_new_privs
  # off: a setuid-root binary gives it back. (NET_RAW dropped so 6 is the only finding.)
  run -6 as_uid "$EF_WORKLOAD_UID" --bounding-set=-net_raw,-net_admin -- "${probe[@]}"
  assert_output --partial "CAP_SETUID: can regain it by exec"
  assert_output --partial "CAP_SETGID: can regain it by exec"
  refute_output --partial "runs as root"
  # Only CAP_SETUID in the bounding set is enough.
  run -6 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all,+setuid -- "${probe[@]}"
  # A real UID that differs from the effective one (1337/1000; exec makes the
  # saved UID the effective one), no capability, no_new_privs: setresuid()
  # can switch to the real UID without any capability.
  run -6 ef_in_pod python3 -c 'import ctypes, os, sys
os.setgroups([]); os.setresgid(1000, 1000, 1000); os.setresuid(1337, 1000, 1000)
ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
os.execv(sys.argv[1], sys.argv[1:])' "${probe[@]}"
  assert_output --partial "its real/effective/saved UIDs differ (1337/1000/1000)"
  refute_output --partial "CAP_SETUID"
  # --allow-uid-change accepts it with a warning.
  run -0 as_uid "$EF_WORKLOAD_UID" --bounding-set=-net_raw,-net_admin -- "${probe[@]}" --allow-uid-change
  assert_output --partial "warning (accepted by --allow-uid-change)"
}

@test "probe: 7 for CAP_NET_ADMIN (held or regainable), 5 for CAP_NET_RAW; root holds all three findings, each flag accepts its own" {
  ef_world_listen tcp "$EF_DENY4" 8080
  new_pod "p-$EF_ID"
  local probe=("$CTL" probe --target "$EF_DENY4:8080" --timeout 1000)
  # A non-root UID holding CAP_NET_ADMIN as an ambient capability (so permitted too after exec; no_new_privs does not take it away).
  run -7 as_uid "$EF_WORKLOAD_UID" --inh-caps=-all,+net_admin --ambient-caps=+net_admin --bounding-set=-all,+net_admin \
    --no-new-privs -- "${probe[@]}"
  assert_output --partial "could rewrite or delete the fence (CAP_NET_ADMIN)"
  assert_output --partial "CAP_NET_ADMIN: holds it (CapPrm)"
  # In the bounding set without no_new_privs: regainable by exec.
  run -7 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all,+net_admin -- "${probe[@]}"
  assert_output --partial "CAP_NET_ADMIN: can regain it by exec"
  run -0 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all,+net_admin -- "${probe[@]}" --allow-net-admin
  # CAP_NET_RAW regainable by exec keeps its code 5.
  run -5 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all,+net_raw -- "${probe[@]}"
  assert_output --partial "CAP_NET_RAW: can regain it by exec"

  # Root in the pod: every finding is printed, the exit code is the worst (7, then 6, then 5).
  run -7 ef_in_pod "${probe[@]}"
  assert_output --partial "CAP_NET_ADMIN: holds it"
  assert_output --partial "it runs as root"
  assert_output --partial "CAP_NET_RAW: holds it"
  # With CAP_NET_ADMIN the probe reads the fence: the exempt UIDs are named.
  assert_output --partial "exempt UIDs of this pod's fence: $EF_PROXY_UID)"
  run -6 ef_in_pod "${probe[@]}" --allow-net-admin
  run -5 ef_in_pod "${probe[@]}" --allow-net-admin --allow-uid-change
  assert_output --partial "NOT FENCED AGAINST THIS PROCESS: this process could send raw frames"
  run -0 ef_in_pod "${probe[@]}" --allow-net-admin --allow-uid-change --allow-net-raw
  assert_output --partial "warning (accepted by --allow-net-raw)"
}

@test "probe: non-zero in an unfenced pod (2: connected), and 3 when nothing answers" {
  ef_world_listen tcp "$EF_DENY4" 8080
  ef_write_conf --no-fence
  new_pod "u-$EF_ID"
  run ! ef_table_present
  run -2 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all -- "$CTL" probe --target "$EF_DENY4:8080" --timeout 1000
  assert_output --partial "NOT FENCED"
  # A target that silently drops (the world has no such address): a timeout is not a pass.
  ip netns exec "$EF_WORLD" nft add table inet t '{ chain i { type filter hook input priority 0; tcp dport 9 drop; }; }'
  run -3 as_uid "$EF_WORKLOAD_UID" --bounding-set=-all -- "$CTL" probe --target "$EF_DENY4:9" --timeout 300
  assert_output --partial "timed out"
}

# The probe as the workload runs it: a non-root UID, no capability, no_new_privs.
probe_as_workload() {
  as_uid "$EF_WORKLOAD_UID" --bounding-set=-all --no-new-privs -- "$CTL" probe --timeout 1000 "$@"
}

# A router netns on the test bridge ($ROUTER4) in front of a far netns ($FAR4,
# listening on tcp 8080, on a subnet of its own); route_via_router sends a
# pod's traffic for that subnet to the router.
setup_router() {
  local n="${EF_WORLD4#10.199.}" router far
  n="${n%%.*}"
  ROUTER4="10.199.$n.250"
  FAR_SUBNET4="10.197.$n.0/24"
  FAR4="10.197.$n.2"
  router="$(ef_new_netns r)"
  far="$(ef_new_netns f)"
  ROUTER_NS="$router"
  ip link add "efr$EF_ID" type veth peer name eth0 netns "$router"
  ef_on_teardown ip link delete "efr$EF_ID"
  ip link set "efr$EF_ID" master "$EF_BRIDGE" up
  ip -n "$router" link add eth1 type veth peer name eth0 netns "$far"
  ip -n "$router" link set lo up
  ip -n "$router" addr add "$ROUTER4/24" dev eth0
  ip -n "$router" addr add "10.197.$n.1/24" dev eth1
  ip -n "$router" link set eth0 up
  ip -n "$router" link set eth1 up
  ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$far" link set lo up
  ip -n "$far" addr add "$FAR4/24" dev eth0
  ip -n "$far" link set eth0 up
  ip -n "$far" route add "$EF_SUBNET4" via "10.197.$n.1"
  ef_listen_in "$far" tcp "$FAR4" 8080
}

route_via_router() { ip -n "$EF_POD" route add "$FAR_SUBNET4" via "$ROUTER4"; }

@test "probe: 8 in an unfenced pod whose target a router upstream rejects (the refusal did not come from the pod); 0 behind the fence" {
  setup_router
  new_pod "p-$EF_ID"
  route_via_router
  local fenced="$EF_POD"
  ef_write_conf --no-fence
  new_pod "u-$EF_ID"
  route_via_router
  run ! ef_table_present
  # Without the router's reject the unfenced pod reaches the far listener.
  run -2 probe_as_workload --target "$FAR4:8080"
  ip netns exec "$ROUTER_NS" nft 'add table inet upstream; add chain inet upstream forward_reject { type filter hook forward priority 0; }; add rule inet upstream forward_reject tcp dport 8080 reject with tcp reset'
  # Refused at once, as the fence would, but by the router.
  run -8 probe_as_workload --target "$FAR4:8080"
  assert_output --partial "NOT FENCED"
  assert_output --partial "was refused, but not inside this pod: packets left the pod during the attempt (eth0 sent"
  assert_output --partial "on each of 5 attempts"
  refute_output --partial "probe: fenced"
  # The fenced pod: its own fence refuses before the SYN reaches any interface.
  use_pod "$fenced" "p-$EF_ID"
  run -0 probe_as_workload --target "$FAR4:8080"
  assert_output --partial "refused inside this pod"
  assert_output --partial "no packet left the pod; the reset came back over lo"
}

@test "probe: 8 in an unfenced pod whose target's port is closed (IPv4 and IPv6), and in a fenced pod whose profile allows the target; 0 behind the fence" {
  new_pod "p-$EF_ID"
  local fenced="$EF_POD"
  ef_write_conf --no-fence
  new_pod "u-$EF_ID"
  run ! ef_table_present
  # Nothing listens on 9999 in the world: its kernel answers the SYN with a reset.
  run -8 probe_as_workload --target "$EF_DENY4:9999"
  assert_output --partial "eth0 sent"
  run -8 probe_as_workload --target "[$EF_DENY6]:9999"
  assert_output --partial "eth0 sent"
  use_pod "$fenced" "p-$EF_ID"
  run -0 probe_as_workload --target "$EF_DENY4:9999"
  run -0 probe_as_workload --target "[$EF_DENY6]:9999"
  # The profile allows tcp 8080 to the world address and nothing listens there:
  # the fence lets the SYN out, and the world's reset is no proof of a fence.
  run -8 probe_as_workload --target "$EF_WORLD4:8080"
  assert_output --partial "or the pod's profile allows this target"
}

@test "probe: 4 for a target that is an address of the pod itself (its own TCP stack refuses, fenced or not)" {
  new_pod "p-$EF_ID"
  local fenced="$EF_POD" target pod
  ef_write_conf --no-fence
  new_pod "u-$EF_ID"
  for pod in "$fenced" "$EF_POD"; do
    use_pod "$pod" "x"
    for target in "$(ef_pod_addr4):9" "[$(ef_pod_addr6)]:9" "0.0.0.0:9"; do
      run -4 probe_as_workload --target "$target"
      assert_output --partial "is an address of this pod (this network namespace's TCP stack sent"
      refute_output --partial "probe: fenced"
    done
  done
}

# --- reconcile -----------------------------------------------------------------

@test "reconcile: --dry-run changes nothing; a real run brings a running pod to the new config; a removed profile keeps its fence" {
  ef_world_listen tcp "$EF_DENY4" 8080
  # A second profile "old", selected for namespace "legacy", removed later.
  edit_conf '.profiles.old = {exemptUids: [1337], allow: []}
    | .selectors = [{namespaces: ["legacy"], profile: "old"}] + .selectors'
  new_pod "r-$EF_ID"
  POD_R="$EF_POD"
  new_pod "l-$EF_ID" legacy
  POD_L="$EF_POD"
  use_pod "$POD_R" "r-$EF_ID"
  run -111 connect_tcp "$EF_DENY4" 8080

  # The new config: proxy-only allows DENY4 tcp 8080; "old" and its selector are gone.
  # shellcheck disable=SC2016 # $d is jq's
  edit_conf '.profiles["proxy-only"].allow += [{cidr: $d, protocol: "tcp", ports: [8080]}]
     | del(.profiles.old) | .selectors |= map(select(.profile != "old"))' --arg d "$EF_DENY4/32"

  ip netns exec "$POD_R" nft list ruleset >"$EF_TMP/r.before"
  ip netns exec "$POD_L" nft list ruleset >"$EF_TMP/l.before"
  run -1 "$CTL" reconcile --config "$EF_CONFLIST" --netns-dir "$NSDIR" --dry-run
  assert_line --partial "sandboxes/r-$EF_ID ($NSDIR/$POD_R): would update (profile proxy-only)"
  assert_line --partial "legacy/l-$EF_ID ($NSDIR/$POD_L): KEPT its fence"
  assert_line "reconcile: 1 would be updated, 0 unchanged, 1 kept as they were"
  # Counters aside: the pods' own IPv6 chatter (MLD) moves other_dropped.
  ip netns exec "$POD_R" nft list ruleset | ef_normalise_counters | diff <(ef_normalise_counters <"$EF_TMP/r.before") -
  ip netns exec "$POD_L" nft list ruleset | ef_normalise_counters | diff <(ef_normalise_counters <"$EF_TMP/l.before") -
  run -111 connect_tcp "$EF_DENY4" 8080

  run -1 "$CTL" reconcile --config "$EF_CONFLIST" --netns-dir "$NSDIR"
  assert_line --partial "sandboxes/r-$EF_ID ($NSDIR/$POD_R): updating (profile proxy-only)"
  assert_line --partial "legacy/l-$EF_ID ($NSDIR/$POD_L): KEPT its fence"
  assert_line "reconcile: 1 updated, 0 unchanged, 1 kept as they were"
  # The running pod now has the new allow entry: the workload connects.
  run -0 connect_tcp "$EF_DENY4" 8080
  ip netns exec "$POD_R" nft list ruleset >"$EF_TMP/r.after"
  run diff "$EF_TMP/r.before" "$EF_TMP/r.after"
  assert_failure
  # CHECK against the new config passes.
  run -0 ef_cnitool check
  # The pod whose profile is gone keeps its old fence, exactly (counters aside).
  ip netns exec "$POD_L" nft list ruleset | ef_normalise_counters >"$EF_TMP/l.after"
  ef_normalise_counters <"$EF_TMP/l.before" | diff - "$EF_TMP/l.after"
  use_pod "$POD_L" "l-$EF_ID" legacy
  run -111 connect_tcp "$EF_DENY4" 8080

  # A second run: nothing left to update.
  run -1 "$CTL" reconcile --config "$EF_CONFLIST" --netns-dir "$NSDIR"
  assert_line "reconcile: 0 updated, 1 unchanged, 1 kept as they were"
  run -0 "$CTL" inspect --netns "$NSDIR/$POD_R" --config "$EF_CONFLIST"
  assert_output --partial "matches config"
}

# --- audit ---------------------------------------------------------------------

@test "audit profile: a would-be refusal connects and is counted; inspect, metrics and render show it" {
  ef_world_listen tcp "$EF_DENY4" 8080
  edit_conf '.profiles["proxy-only"].mode = "audit"'
  new_pod "a-$EF_ID"
  run -0 connect_tcp "$EF_DENY4" 8080
  run -0 connect_tcp "$EF_DENY4" 8080
  local n
  n="$(ef_counter would_refuse_tcp)"
  ((n >= 2)) || fail "would_refuse_tcp is $n after two would-be refusals"
  # No enforcing counter exists in an audit fence.
  run ef_nft list counter inet egress_fence tcp_refused
  assert_failure

  run -0 "$CTL" inspect --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  printf '%s\n' "$output" >"$EF_TMP/table"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " AUDIT-TCP)" "$n"
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " TCP-REFUSED)" 0
  assert_equal "$(inspect_cell "$EF_TMP/table" "sandboxes/a-$EF_ID " CONFIG)" "matches config"

  run -0 "$CTL" metrics --netns-dir "$NSDIR" --config "$EF_CONFLIST"
  printf '%s\n' "$output" >"$EF_TMP/metrics.prom"
  prom_check "$EF_TMP/metrics.prom"
  assert_equal "$(packets "$EF_TMP/metrics.prom" "a-$EF_ID" would_refuse_tcp)" "$n"
  grep -qF 'counter="would_refuse_tcp",verdict="audit"}' "$EF_TMP/metrics.prom"
  # No enforcing counter in an audit fence, so no sample of one.
  assert_equal "$(packets "$EF_TMP/metrics.prom" "a-$EF_ID" tcp_refused)" ""

  run -0 "$CTL" render --config "$EF_CONFLIST" --namespace sandboxes --name x
  assert_output --partial 'counter name "would_refuse_tcp"'
  refute_output --partial reject
  # The enforcing profile (for contrast) rejects.
  edit_conf '.profiles["proxy-only"]|= del(.mode)'
  run -0 "$CTL" render --config "$EF_CONFLIST" --namespace sandboxes --name x
  assert_output --partial reject
  refute_output --partial would_refuse_tcp
}

# --- denial logging ------------------------------------------------------------

# log_lines POD_NAME: kernel log lines of a fence denial naming this pod, DST=$EF_DENY4
# and the workload UID.
log_lines() {
  dmesg | grep -F "egress-fence sandboxes/$1: " | grep -F "DST=$EF_DENY4 " | grep -F "UID=$EF_WORKLOAD_UID " || true
}

@test "denial logging: with nf_log_all_netns=1 a refused connection is in the kernel log with its pod, destination and UID" {
  dmesg >/dev/null || fail "the kernel log is not readable here (dmesg failed): this test cannot observe denials"
  ef_sysctl_save net.netfilter.nf_log_all_netns
  ef_world_listen tcp "$EF_DENY4" 8080
  jq -e '.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].log.prefix == "egress-fence"' "$EF_CONFLIST"
  new_pod "log-$EF_ID"
  ef_nft list chain inet egress_fence refuse | grep -F "log prefix \"egress-fence sandboxes/log-$EF_ID: \" flags skuid" ||
    fail "no log rule with the pod's prefix and flags skuid"

  # Off: the kernel drops log output from a pod netns.
  sysctl -qw net.netfilter.nf_log_all_netns=0
  run -111 connect_tcp "$EF_DENY4" 8080
  sleep 0.3
  assert_equal "$(log_lines "log-$EF_ID" | wc -l)" 0

  # On: the denial is in the node's kernel log.
  sysctl -qw net.netfilter.nf_log_all_netns=1
  run -111 connect_tcp "$EF_DENY4" 8080
  local k line=""
  for ((k = 0; k < 50; k++)); do
    line="$(log_lines "log-$EF_ID")"
    if [ -n "$line" ]; then break; fi
    sleep 0.1
  done
  [ -n "$line" ] || fail "no kernel log line for the denial; last lines: $(dmesg | tail -n 5)"
  assert_equal "$(wc -l <<<"$line")" 1
  [[ "$line" == *"DPT=8080 "* ]] || fail "the line lacks the port: $line"
  [[ "$line" == *"SRC=$(ef_pod_addr4) "* ]] || fail "the line lacks the pod's address: $line"
}

@test "log-all-netns (the chart's logAllNetns): root with no capabilities in a pod netns sets the host sysctl through its bind-mounted file" {
  ef_sysctl_save net.netfilter.nf_log_all_netns
  sysctl -qw net.netfilter.nf_log_all_netns=0
  local ns
  ns="$(ef_new_netns logset)"
  # A pod's own /proc/sys has no such file: the sysctl lives in the host's netns only.
  run ip netns exec "$ns" test -e /proc/sys/net/netfilter/nf_log_all_netns
  assert_failure
  # The chart's hostPath volume (type File), as kubelet bind-mounts it.
  touch "$EF_TMP/nf_log_all_netns"
  mount --bind /proc/sys/net/netfilter/nf_log_all_netns "$EF_TMP/nf_log_all_netns"
  ef_on_teardown umount "$EF_TMP/nf_log_all_netns"
  run -0 ip netns exec "$ns" setpriv --inh-caps=-all --bounding-set=-all \
    "$CTL" log-all-netns --file "$EF_TMP/nf_log_all_netns"
  assert_output "net.netfilter.nf_log_all_netns = 1 ($EF_TMP/nf_log_all_netns)"
  assert_equal "$(sysctl -n net.netfilter.nf_log_all_netns)" 1
  run -0 ip netns exec "$ns" setpriv --inh-caps=-all --bounding-set=-all \
    "$CTL" log-all-netns --file "$EF_TMP/nf_log_all_netns" --off
  assert_equal "$(sysctl -n net.netfilter.nf_log_all_netns)" 0
  # Not root: refused, and the sysctl is untouched.
  run ip netns exec "$ns" setpriv --reuid 1000 --regid 1000 --clear-groups --inh-caps=-all --bounding-set=-all \
    "$CTL" log-all-netns --file "$EF_TMP/nf_log_all_netns"
  assert_failure
  assert_output --partial "Permission denied"
  assert_equal "$(sysctl -n net.netfilter.nf_log_all_netns)" 0
}
