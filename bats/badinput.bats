#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 4, bad input through the real binary, called as a runtime calls it
# (env + stdin), with a real pod netns as CNI_NETNS: every case must print a
# valid CNI error object with the expected code on stdout, exit non-zero
# without a crash (< 128), and leave no table in the pod netns. The config
# corpus (tests/corpus/netconf/bad: NNN-name.json = {"expect", "stdin"}, or
# NNN-name.stdin + NNN-name.expect.json) is the same one the unit tests read.

load helpers

CORPUS="$EF_ROOT/tests/corpus/netconf/bad"

setup() {
  ef_setup
  ef_setup_pod
  # The pod needs no chain: a bare eth0 is what the fence would hook.
  ip -n "$EF_POD" link add eth0 type veth peer name peer0
  PREV="$EF_TMP/prev.json"
  jq -n --arg ns "$EF_POD_PATH" \
    '{cniVersion: "1.0.0", interfaces: [{name: "eth0", sandbox: $ns}], ips: []}' >"$PREV"
}

teardown() {
  ef_teardown
}

# is_cni_error CODE [TEXT]: $output's first line is one CNI error object with
# CODE (and TEXT in msg or details); $status is a plain failure, not a signal.
# Prints what is wrong, returns 1; quiet on success.
is_cni_error() {
  local code="$1" text="${2:-}"
  if [ "$status" -eq 0 ] || [ "$status" -ge 128 ]; then
    echo "exit status $status (want 1..127)"
    return 1
  fi
  local first
  first="$(head -n1 <<<"$output")"
  if ! jq -e --argjson code "$code" --arg text "$text" \
    'type == "object" and (.cniVersion | type == "string") and .code == $code
     and (.msg | type == "string" and length > 0)
     and ((.details // "") | type == "string")
     and ($text == "" or ((.msg + " " + (.details // "")) | contains($text)))' \
    >/dev/null 2>&1 <<<"$first"; then
    echo "not a CNI error with code $code${text:+ mentioning \"$text\"}: $first"
    return 1
  fi
}

# no_table_in_pod: fails naming what it found.
no_table_in_pod() {
  local t
  t="$(ef_fence_tables "$EF_POD")"
  [ -z "$t" ] || fail "the pod netns holds: $t"
}

# A fenced pod's stdin (sandboxes namespace, with a prevResult), compact.
good_stdin() { ef_fence_stdin "$PREV"; }

# corpus_cases: one line per case, "name code path stdin" separated by US (0x1f:
# a tab would collapse an empty path, JSON escapes control bytes), where stdin
# is the compact JSON to send, or empty for a NNN-name.stdin case. One jq pass
# (this machine is often loaded: a jq per case costs seconds). Cases that log
# name the designed default path; they log to the test's file instead. A case
# whose expected code is not an integer or whose path is not a string stops it
# with an error naming the file.
corpus_cases() {
  jq -r --arg log "$EF_LOGFILE" '(input_filename | split("/") | last) as $file
    | if ($file | endswith(".expect.json")) then [($file | rtrimstr(".expect.json")), .code, .path, ""]
      else [($file | rtrimstr(".json")), .expect.code, .expect.path,
            (.stdin | if type == "object" and .logFile == "/var/log/egress-fence/egress-fence.log"
                      then .logFile = $log else . end | tojson)]
      end
    | if (.[1] | type) != "number" or .[1] != (.[1] | floor) then error("\($file): expected code \(.[1] | tojson) is not an integer")
      elif (.[2] | type) != "string" then error("\($file): expected path \(.[2] | tojson) is not a string")
      else . end
    | map(tostring) | join("\u001f")' "$CORPUS"/*.json
}

# check_results FILE: lines "name<TAB>status<TAB>code<TAB>path<TAB>first stdout
# line"; prints one line per case that is not a proper CNI error.
check_results() {
  jq -R -r 'split("\t") as [$name, $status, $code, $path, $out]
    | ($out | try fromjson catch null) as $e
    | if ($status | tonumber) == 0 or ($status | tonumber) >= 128 then "\($name): exit status \($status)"
      elif ($e | type) != "object" or ($e.cniVersion | type) != "string" or ($e.msg | type) != "string"
        or ($e.msg == "") or (($e.details // "") | type) != "string" then "\($name): not a CNI error object: \($out)"
      elif $e.code != ($code | tonumber) then "\($name): code \($e.code), expected \($code): \($e.msg)"
      elif ($path != "" and (($e.msg + " " + ($e.details // "")) | contains($path) | not))
        then "\($name): the error does not name \($path): \($e.msg)"
      else empty end' "$1"
}

@test "badinput: every case of the bad-config corpus: CNI error with the expected code and path, no crash, no table" {
  local name code path stdin problems=() n=0 results="$EF_TMP/corpus-results" cases="$EF_TMP/corpus-cases"
  # Read into files, not through a process substitution, so a jq error fails the test.
  corpus_cases >"$cases" || fail "the corpus in $CORPUS does not read (jq's error above)"
  local files stdin_file
  files="$(find "$CORPUS" -maxdepth 1 -name '*.json' | wc -l)"
  [ "$(wc -l <"$cases")" -eq "$files" ] || fail "$(wc -l <"$cases") cases read from $files files"
  for stdin_file in "$CORPUS"/*.stdin; do
    [ -f "${stdin_file%.stdin}.expect.json" ] || fail "$stdin_file has no ${stdin_file%.stdin}.expect.json beside it, so it never runs"
  done
  : >"$results"
  while IFS=$'\x1f' read -r name code path stdin; do
    n=$((n + 1))
    if [ -n "$stdin" ]; then
      printf '%s' "$stdin" >"$EF_TMP/case.stdin"
    else
      cp "$CORPUS/$name.stdin" "$EF_TMP/case.stdin"
    fi
    run ef_plugin ADD <"$EF_TMP/case.stdin"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$code" "$path" "$(head -n1 <<<"$output")" >>"$results"
    [ -z "$(ef_fence_tables "$EF_POD")" ] || problems+=("$name: left a table in the pod")
  done <"$cases"
  check_results "$results" >"$EF_TMP/corpus-problems" || fail "checking the results failed (jq's error above)"
  mapfile -t -O "${#problems[@]}" problems <"$EF_TMP/corpus-problems"
  echo "# $n corpus cases run" >&3
  ((n >= 100)) || problems+=("only $n corpus cases found in $CORPUS")
  [ "$(wc -l <"$results")" -eq "$n" ] || problems+=("results for $(wc -l <"$results") of $n cases")
  if ((${#problems[@]})); then
    printf '# %s\n' "${problems[@]}" >&3
    fail "${#problems[@]} corpus case(s) failed (listed above)"
  fi
}

# The plugin reads at most 16 MiB of stdin (config::kMaxInputBytes).
LIMIT=$((16 * 1024 * 1024))

@test "badinput: more than 16 MiB of input is refused (code 6) without a crash, no table" {
  local big="$EF_TMP/big.json"
  {
    printf '{"cniVersion":"1.0.0","name":"n","type":"egress-fence","x":"'
    head -c $((LIMIT + 1024 * 1024)) /dev/zero | tr '\0' a
    printf '"}'
  } >"$big"
  run ef_plugin ADD <"$big"
  is_cni_error 6 "limit of 16777216 bytes"
  no_table_in_pod
}

# big_fenced_stdin OUT SIZE: the fenced pod's stdin with 100,000 more allow
# entries (100.64.0.0 ... 100.65.134.159, tcp 443), padded with trailing
# spaces to exactly SIZE bytes.
big_fenced_stdin() {
  local out="$1" size="$2" entries="$EF_TMP/entries.json"
  awk 'BEGIN { printf "["; for (i = 0; i < 100000; i++)
      printf "%s{\"cidr\":\"100.%d.%d.%d/32\",\"protocol\":\"tcp\",\"ports\":[443]}",
        (i ? "," : ""), 64 + int(i / 65536), int(i / 256) % 256, i % 256; printf "]" }' >"$entries"
  good_stdin | jq -c --slurpfile e "$entries" '.profiles["proxy-only"].allow += $e[0]' >"$out"
  local have
  have="$(stat -c %s "$out")"
  ((have <= size)) || fail "the config alone is $have bytes, over $size"
  head -c $((size - have)) /dev/zero | tr '\0' ' ' >>"$out"
  [ "$(stat -c %s "$out")" -eq "$size" ] || fail "test input is $(stat -c %s "$out") bytes, not $size"
}

@test "badinput: a valid fenced config of exactly 16 MiB (100,000 allow entries, padded) is accepted and fences" {
  big_fenced_stdin "$EF_TMP/limit.json" "$LIMIT"
  run ef_plugin ADD <"$EF_TMP/limit.json"
  assert_success
  jq -e '.cniVersion == "1.0.0" and (.interfaces | length) == 1' <<<"$output" >/dev/null ||
    fail "not the prevResult passed on: ${output:0:300}"
  ef_table_present || fail "no fence table after ADD"
  local listing
  listing="$(ef_nft list table inet egress_fence)"
  grep -qF 100.64.0.0 <<<"$listing" || fail "the first generated entry is not in the table"
  grep -qF 100.65.134.159 <<<"$listing" || fail "the last generated entry is not in the table"
}

@test "badinput: the same config one byte past 16 MiB is refused (code 6), no table" {
  big_fenced_stdin "$EF_TMP/over.json" $((LIMIT + 1))
  run ef_plugin ADD <"$EF_TMP/over.json"
  is_cni_error 6 "limit of 16777216 bytes"
  no_table_in_pod
}

@test "badinput: deeply nested JSON (100000 arrays, 100000 objects) is refused (code 6) without a crash" {
  local deep="$EF_TMP/deep.json" d=100000
  { printf '{"cniVersion":"1.0.0","name":"n","type":"egress-fence","args":'
    printf '%*s' "$d" '' | tr ' ' '['; printf '%*s' "$d" '' | tr ' ' ']'; printf '}'; } >"$deep"
  run ef_plugin ADD <"$deep"
  is_cni_error 6 "nesting"
  { printf '{"cniVersion":"1.0.0","name":"n","type":"egress-fence","args":'
    for _ in $(seq 1 $((d / 1000))); do printf '{"a":%.0s' $(seq 1 1000); done
    printf 1; printf '%*s' "$d" '' | tr ' ' '}'; printf '}'; } >"$deep"
  run ef_plugin ADD <"$deep"
  is_cni_error 6 "nesting"
  no_table_in_pod
}

@test "badinput: missing CNI_NETNS on ADD for a fenced pod: code 4" {
  run ef_plugin ADD "" < <(good_stdin)
  is_cni_error 4 CNI_NETNS
  no_table_in_pod
}

@test "badinput: CNI_NETNS a regular file or a missing path: code 100" {
  : >"$EF_TMP/not-a-netns"
  run ef_plugin ADD "$EF_TMP/not-a-netns" < <(good_stdin)
  is_cni_error 100 "not a network namespace"
  run ef_plugin ADD "$EF_TMP/no-such-netns" < <(good_stdin)
  is_cni_error 100 "$EF_TMP/no-such-netns"
  run ef_plugin CHECK "$EF_TMP/not-a-netns" < <(good_stdin)
  is_cni_error 100
  no_table_in_pod
}

@test "badinput: CNI_NETNS the host's own netns: code 100 for ADD, CHECK, DEL; the host gets no table" {
  local before path
  before="$(nft list tables)"
  # The plugin's own netns and this shell's (the host's, for the runtime).
  for path in /proc/self/ns/net "/proc/$$/ns/net"; do
    run ef_plugin ADD "$path" < <(good_stdin)
    is_cni_error 100 "host's own network namespace"
    run ef_plugin CHECK "$path" < <(good_stdin)
    is_cni_error 100 "host's own network namespace"
    run ef_plugin DEL "$path" < <(good_stdin)
    is_cni_error 100 "host's own network namespace"
  done
  # pid 1's: the same netns on a plain host; where pid 1's links are not
  # readable (a sandboxed pid 1) the plugin cannot open it: 100 all the same.
  run ef_plugin ADD /proc/1/ns/net < <(good_stdin)
  is_cni_error 100
  assert_equal "$(nft list tables)" "$before"
  run -1 grep egress_fence <<<"$before"
}

@test "badinput: missing CNI_COMMAND and an unknown verb: code 4" {
  run env -u CNI_COMMAND CNI_NETNS="$EF_POD_PATH" CNI_IFNAME=eth0 CNI_CONTAINERID=c CNI_PATH="$EF_BIN" \
    "$EF_BIN/egress-fence" < <(good_stdin)
  is_cni_error 4 CNI_COMMAND
  local verb
  for verb in add FROB "ADD " ""; do
    run ef_plugin "$verb" < <(good_stdin)
    is_cni_error 4 || fail "CNI_COMMAND='$verb': $(is_cni_error 4)"
  done
  no_table_in_pod
}

@test "badinput: unsupported cniVersion (0.1.0, 0.2.0, 1.2.0, 2.0.0) on a complete fenced config: code 1" {
  local v
  for v in 0.1.0 0.2.0 1.2.0 2.0.0; do
    run ef_plugin ADD < <(good_stdin | jq -c --arg v "$v" '.cniVersion = $v')
    is_cni_error 1 cniVersion || fail "cniVersion $v: $(is_cni_error 1 cniVersion)"
  done
  no_table_in_pod
}

@test "badinput: missing prevResult on ADD and CHECK for a fenced pod: code 7" {
  run ef_plugin ADD < <(ef_fence_stdin)
  is_cni_error 7 prevResult
  no_table_in_pod
  # CHECK, with a table in place: still refused, table untouched.
  run ef_plugin ADD < <(good_stdin)
  assert_success
  run ef_plugin CHECK < <(ef_fence_stdin)
  is_cni_error 7 prevResult
  ef_table_present
}

@test "badinput: malformed CNI_ARGS (no '=', empty key, unknown key without IgnoreUnknown): code 4, no table" {
  local args
  for args in "K8S_POD_NAMESPACE" "IgnoreUnknown=1;=x" "K8S_POD_NAMESPACE=sandboxes;;K8S_POD_NAME" \
    "FOO=bar;K8S_POD_NAMESPACE=sandboxes"; do
    run env CNI_COMMAND=ADD CNI_NETNS="$EF_POD_PATH" CNI_IFNAME=eth0 CNI_CONTAINERID=c CNI_ARGS="$args" \
      CNI_PATH="$EF_BIN" "$EF_BIN/egress-fence" < <(good_stdin)
    is_cni_error 4 CNI_ARGS || fail "CNI_ARGS='$args': $(is_cni_error 4 CNI_ARGS)"
  done
  no_table_in_pod
}

@test "badinput: an empty or missing CNI_IFNAME on ADD for a fenced pod: code 4, no table" {
  run env CNI_COMMAND=ADD CNI_NETNS="$EF_POD_PATH" CNI_IFNAME= CNI_CONTAINERID=c CNI_ARGS="$(ef_cni_args)" \
    CNI_PATH="$EF_BIN" "$EF_BIN/egress-fence" < <(good_stdin)
  is_cni_error 4 CNI_IFNAME
  no_table_in_pod
}
