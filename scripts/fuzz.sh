#!/usr/bin/env bash
# Fuzzing (CI and by hand): installs clang 14 and libFuzzer if missing, builds
# the targets of tests/fuzz/ into build-asan/bin/ (scripts/build-asan.sh: the
# sanitized build scripts/sanitize.sh uses, clang, -fsanitize=fuzzer,address,
# undefined; only the fuzz targets and what they link are built here, and
# nothing when that tree is up to date), replays every kept crash input, then
# runs each target for a bounded time. Fails if any target crashes, leaks,
# times out or breaks an invariant; the input that did is kept in
# tests/fuzz/regressions/<target>/, where the unit test fuzz_regressions
# replays it from then on: commit it with the fix.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default $EF_FUZZ_SECONDS, else 60); targets run
#            $EF_FUZZ_JOBS at a time (default: nproc), so the whole run takes
#            about SECONDS * targets / jobs plus the build.
#   TARGET   fuzz_netconf fuzz_cni_args fuzz_annotations fuzz_prev_result
#            fuzz_conflist fuzz_netlink fuzz_netlink_batch fuzz_json (default: all)
# Running longer by hand: scripts/fuzz.sh 3600 fuzz_netconf ; the corpus a run
# grows is kept in build-asan/fuzz/work/<target>/ and used again by the next run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

seconds="${1:-${EF_FUZZ_SECONDS:-60}}"
[ $# -gt 0 ] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
all_targets=(fuzz_netconf fuzz_cni_args fuzz_annotations fuzz_prev_result fuzz_conflist fuzz_netlink fuzz_netlink_batch
  fuzz_json)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
jobs="${EF_FUZZ_JOBS:-$(nproc)}"
t_start=$SECONDS
step() { echo "== $1 ($((SECONDS - t_start)) s elapsed)"; }

# --- toolchain: clang 14 with libFuzzer (libclang-rt-14-dev), and what configuring
# the main project needs (its deps, CLI11, a C compiler for tests/runtime/pause.c).
packages=(clang-14 libclang-rt-14-dev llvm-14 gcc cmake pkg-config libnftnl-dev libmnl-dev nettle-dev nlohmann-json3-dev
  libcli11-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz.sh: missing packages ${missing[*]}; install them or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "fuzz: 0 passed, 1 failed"
    exit 1
  fi
fi

step "build the fuzz targets in build-asan (clang 14, libFuzzer + ASan + UBSan)"
build_log="$(mktemp /tmp/ef-fuzz-build.XXXXXX)"
bash scripts/build-asan.sh fuzzers >"$build_log" 2>&1 ||
  { cat "$build_log"; rm -f "$build_log"; echo "fuzz: 0 passed, 1 failed"; exit 1; }
rm -f "$build_log"
bin_dir=build-asan/bin
state=build-asan/fuzz
# Seeds made by the current encoder and installer (the committed copies in
# tests/fuzz/corpus may predate a change to either).
rm -rf "$state/seeds"
"$bin_dir/ef_fuzz_seeds" "$state/seeds" tests/corpus >/dev/null || { echo "fuzz: 0 passed, 1 failed"; exit 1; }

max_len() {
  case "$1" in
    fuzz_cni_args) echo 1024 ;;
    fuzz_netlink_batch) echo 512 ;;
    fuzz_annotations | fuzz_prev_result) echo 4096 ;;
    *) echo 16384 ;;
  esac
}
dict() {
  case "$1" in
    fuzz_cni_args) echo tests/fuzz/dicts/cni_args.dict ;;
    fuzz_netlink | fuzz_netlink_batch) echo "" ;;
    *) echo tests/fuzz/dicts/netconf.dict ;;
  esac
}

logs="$state/logs"
rm -rf "$logs"
mkdir -p "$logs"

# --- one target: replay its kept crashes, then fuzz. Exit status: 0 clean.
run_target() {
  local t="$1" bin="$bin_dir/$1" regress="tests/fuzz/regressions/$1"
  local work="$state/work/$1" log="$logs/$1.log"
  # build-asan/bin holds the sanitized plugin and tests too: only fuzz targets run here.
  if ! [[ " ${all_targets[*]} " == *" $t "* ]] || ! [ -x "$bin" ]; then
    echo "fuzz.sh: no target $t" >"$log"
    return 1
  fi
  mkdir -p "$work" "$regress"
  local kept=("$regress"/*)
  if [ -e "${kept[0]}" ]; then
    "$bin" -timeout=10 -artifact_prefix="$logs/$t-replay-" "${kept[@]}" >"$log" 2>&1 ||
      { echo "a kept regression input fails again" >>"$log"; return 1; }
  fi
  local corpora=("$work" "tests/fuzz/corpus/$t")
  [ -d "$state/seeds/$t" ] && corpora+=("$state/seeds/$t")
  # The reader's differential starts from every plugin stdin seed too.
  [ "$t" = fuzz_json ] && corpora+=("tests/fuzz/corpus/fuzz_netconf")
  local d
  d="$(dict "$t")"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    ${d:+-dict="$d"} -artifact_prefix="$regress/" -print_final_stats=1 "${corpora[@]}" >>"$log" 2>&1
}

step "fuzzing ${#targets[@]} target(s), ${seconds} s each, $jobs at a time"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  (
    s=$SECONDS
    run_target "$t"
    echo "$? $((SECONDS - s))" >"$logs/$t.result"
  ) &
done
wait

passed=0
failed=0
for t in "${targets[@]}"; do
  read -r rc took <"$logs/$t.result" || { rc=1; took='?'; }
  execs="$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$logs/$t.log" | grep -Eo '[0-9]+$' || echo 0)"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $t  ${took} s  ${execs} inputs"
  else
    failed=$((failed + 1))
    echo "FAIL $t  ${took} s  (log: $logs/$t.log)"
    grep -E -A40 'ERROR:|runtime error:|terminate called|==[0-9]+==' "$logs/$t.log" | head -60
    grep -E 'Test unit written to|a kept regression input' "$logs/$t.log" || tail -20 "$logs/$t.log"
  fi
done

step "done"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
