#!/usr/bin/env bash
# The sanitized suite (CI): builds everything with AddressSanitizer +
# UndefinedBehaviorSanitizer + LeakSanitizer (-DEF_SANITIZE=ON) into
# build-asan/ (scripts/build-asan.sh; the same tree holds scripts/fuzz.sh's
# targets, so its objects also carry libFuzzer's coverage instrumentation),
# runs the unit tests (ctest), then the bats scenarios against the sanitized
# binaries (EF_BIN=build-asan/bin). Any sanitizer report fails the run.
#
# The plugin runs under Go drivers (cnitool, go-cni) that keep its stderr to
# themselves, so reports never rely on stderr: every sanitized process writes
# them to $EF_SANITIZE_LOGS/{asan,ubsan}.<pid>, and any file there is a failure,
# whatever the tests themselves said. The files are printed at the end.
#
# Built with clang 14, not gcc: gcc 12's UBSan, linked beside ASan, ignores
# log_path and prints to stderr only, where a Go driver would swallow it.
# Processes the tests start through `env -i` (run_container, the bundle's
# chroot) lose these options: they report on stderr and exit non-zero.
#
# Usage: scripts/sanitize.sh [--unit-only] [BATS_FILE...]   (default: every file in bats/)
# Env:   EF_SANITIZE_LOGS  where reports go (default: a fresh temp dir, kept on failure)
#        EF_SANITIZE_SKIP_BOOTSTRAP=1  do not run scripts/bootstrap.sh (packages and the
#        Go test drivers in build/bin are already there)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

unit_only=0
if [ "${1:-}" = "--unit-only" ]; then
  unit_only=1
  shift
fi
if [ "$unit_only" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "sanitize.sh: run as root (scenario tests create network namespaces), or pass --unit-only" >&2
  exit 1
fi

t_start=$SECONDS
step() { echo "== $1 ($((SECONDS - t_start)) s elapsed)"; }

# Packages and the Go drivers (built into build/bin); the scenario tests need both.
if [ "${EF_SANITIZE_SKIP_BOOTSTRAP:-0}" != 1 ]; then
  step "bootstrap"
  bash scripts/bootstrap.sh >/dev/null || { echo "sanitize: 0 passed, 1 failed"; exit 1; }
fi

packages=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
    { echo "sanitize: 0 passed, 1 failed"; exit 1; }
fi

step "build (clang 14, EF_SANITIZE=ON EF_FUZZ=ON) into build-asan"
bash scripts/build-asan.sh || { echo "sanitize: 0 passed, 1 failed"; exit 1; }
for d in tests/drivers/*/; do
  [ -d "$d" ] || continue
  name=$(basename "$d")
  if [ -x "build/bin/$name" ]; then
    cp -f "build/bin/$name" "build-asan/bin/$name"
  elif [ "$unit_only" -eq 0 ]; then
    echo "sanitize.sh: build/bin/$name is missing (run scripts/bootstrap.sh)" >&2
    echo "sanitize: 0 passed, 1 failed"
    exit 1
  fi
done

logs="${EF_SANITIZE_LOGS:-$(mktemp -d /tmp/ef-sanitize.XXXXXX)}"
mkdir -p "$logs"
# Writable by all: probes and the plugin's children run as other UIDs, and a
# sanitizer that cannot open its log dies without the report.
chmod 1777 "$logs"
rm -f "$logs"/asan.* "$logs"/ubsan.*
# halt_on_error: the first report ends the process (with -fno-sanitize-recover
# UBSan does so anyway). LSan runs at exit of every process (detect_leaks).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:log_exe_name=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_exe_name=1:log_path=$logs/ubsan"

passed=0
failed=0
out="$(mktemp -d /tmp/ef-sanitize-out.XXXXXX)"
trap 'rm -rf "$out"' EXIT

step "unit tests (ctest, sanitized)"
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" 2>&1 | tee "$out/ctest.log"
ctest_rc=${PIPESTATUS[0]}
if summary="$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$out/ctest.log" | tail -n1)" && [ -n "$summary" ]; then
  read -r unit_failed _ _ _ _ unit_total <<<"$summary"
  passed=$((passed + unit_total - unit_failed))
  failed=$((failed + unit_failed))
fi
if [ "$ctest_rc" -ne 0 ] && [ "${unit_failed:-0}" -eq 0 ]; then
  failed=$((failed + 1))
fi

if [ "$unit_only" -eq 0 ]; then
  step "scenario tests (bats, EF_BIN=build-asan/bin)"
  if [ $# -gt 0 ]; then targets=("$@"); else targets=(bats/); fi
  EF_BIN="$PWD/build-asan/bin" bats --formatter tap "${targets[@]}" 2>&1 | tee "$out/bats.log"
  bats_rc=${PIPESTATUS[0]}
  bats_ok=$(grep -Ec '^ok [0-9]+ ' "$out/bats.log" || true)
  bats_skipped=$(grep -Ec '^ok [0-9]+ .*# skip' "$out/bats.log" || true)
  bats_not_ok=$(grep -Ec '^not ok [0-9]+ ' "$out/bats.log" || true)
  passed=$((passed + bats_ok - bats_skipped))
  failed=$((failed + bats_not_ok + bats_skipped))
  if [ "$bats_rc" -ne 0 ] && [ "$bats_not_ok" -eq 0 ]; then
    failed=$((failed + 1))
  fi
fi

step "sanitizer reports in $logs"
reports=("$logs"/asan.* "$logs"/ubsan.*)
nreports=0
for r in "${reports[@]}"; do
  [ -e "$r" ] || continue
  nreports=$((nreports + 1))
  echo "---- $r"
  cat "$r"
done
if [ "$nreports" -gt 0 ]; then
  echo "sanitize.sh: $nreports sanitizer report(s): each is a failure (kept in $logs)" >&2
  failed=$((failed + nreports))
else
  echo "no sanitizer reports"
  [ -z "${EF_SANITIZE_LOGS:-}" ] && rm -rf "$logs"
fi

step "done"
echo "sanitize: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
