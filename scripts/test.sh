#!/usr/bin/env bash
# The test command (README, CI): installs what is missing and builds
# (scripts/bootstrap.sh), runs the unit tests (ctest), then the scenario tests
# (bats, real network namespaces: needs root). Ends with one plain line
# "N passed, N failed" over both suites and exits non-zero on any failure.
# A skipped scenario counts as failed: a skip is not a pass.
# Usage: scripts/test.sh [BATS_FILE...]   (default: every file in bats/)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: run as root (scenario tests create network namespaces and bridges)" >&2
  exit 1
fi

bash scripts/bootstrap.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
log_dir="$(mktemp -d /tmp/ef-test.XXXXXX)"
trap 'rm -rf "$log_dir"' EXIT

echo "== unit tests (ctest)"
ctest --test-dir build --output-on-failure -j"$(nproc)" 2>&1 | tee "$log_dir/ctest.log"
ctest_rc=${PIPESTATUS[0]}
# "100% tests passed, 0 tests failed out of 12"
if summary="$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$log_dir/ctest.log" | tail -n1)" && [ -n "$summary" ]; then
  read -r unit_failed _ _ _ _ unit_total <<<"$summary"
  passed=$((passed + unit_total - unit_failed))
  failed=$((failed + unit_failed))
fi
if [ "$ctest_rc" -ne 0 ] && [ "${unit_failed:-0}" -eq 0 ]; then
  failed=$((failed + 1)) # ctest itself failed (no summary, crash, no build)
fi

echo "== scenario tests (bats)"
if [ $# -gt 0 ]; then targets=("$@"); else targets=(bats/); fi
bats --formatter tap "${targets[@]}" 2>&1 | tee "$log_dir/bats.log"
bats_rc=${PIPESTATUS[0]}
bats_ok=$(grep -Ec '^ok [0-9]+ ' "$log_dir/bats.log" || true)
bats_skipped=$(grep -Ec '^ok [0-9]+ .*# skip' "$log_dir/bats.log" || true)
bats_not_ok=$(grep -Ec '^not ok [0-9]+ ' "$log_dir/bats.log" || true)
passed=$((passed + bats_ok - bats_skipped))
failed=$((failed + bats_not_ok + bats_skipped))
if [ "$bats_rc" -ne 0 ] && [ "$bats_not_ok" -eq 0 ]; then
  failed=$((failed + 1)) # bats itself failed (syntax error, setup_file, ...)
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
