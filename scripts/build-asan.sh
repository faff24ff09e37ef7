#!/usr/bin/env bash
# The one clang build that scripts/sanitize.sh and scripts/fuzz.sh share:
# configures build-asan/ (clang 14, RelWithDebInfo, ASan + UBSan, warnings as
# errors, and the libFuzzer targets of tests/fuzz with every object also
# instrumented for coverage: EF_SANITIZE=ON EF_FUZZ=ON), then builds the given
# targets, incrementally (default: all, which leaves out the fuzz targets;
# they are the target "fuzzers"). Both scripts configure through here so
# that neither changes the cache under the other (a changed option would
# rebuild everything). Does not install anything: the calling scripts do.
#
# Usage: scripts/build-asan.sh [TARGET...]
#   e.g. scripts/build-asan.sh fuzzers     (the fuzz targets and ef_fuzz_seeds)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

dir=build-asan
if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++-14' "$dir/CMakeCache.txt"; then
  rm -rf "$dir" # configured with another compiler
fi
cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEF_SANITIZE=ON -DEF_FUZZ=ON -DEF_WERROR=ON >/dev/null || exit 1
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$dir" -j"$(nproc)" "${targets[@]}"
