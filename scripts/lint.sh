#!/usr/bin/env bash
# Static analysis (CI): clang-tidy with the checked-in .clang-tidy over every
# translation unit of lib/ plugin/ install/ tests/tools/ tests/unit/ (any
# finding fails), then clang-format with the checked-in .clang-format over
# every C++ source and header under lib/ plugin/ install/ tests/ (any file that
# would change fails). Installs clang-tidy-14 / clang-format-14 when missing.
# Configures (does not build) build-lint/ for its compile_commands.json.
#
# Usage: scripts/lint.sh [--tidy-only | --format-only] [FILE...]
#   FILE...  limit clang-tidy (.cpp) and clang-format to these files
# Env:   EF_LINT_JOBS  parallel clang-tidy processes (default: nproc)
#
# To format what the check complains about:
#   clang-format-14 -i $(git ls-files -co --exclude-standard 'lib/*.cpp' 'lib/*.h' \
#     'plugin/*.cpp' 'plugin/*.h' 'install/*.cpp' 'install/*.h' 'tests/*.cpp' 'tests/*.h')
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root="$(pwd)"

do_tidy=1
do_format=1
case "${1:-}" in
    --tidy-only) do_format=0; shift ;;
    --format-only) do_tidy=0; shift ;;
esac

t_start=$SECONDS
step() { echo "== $1 ($((SECONDS - t_start)) s elapsed)"; }

tidy=clang-tidy-14
format=clang-format-14
if ! command -v "$tidy" >/dev/null || ! command -v "$format" >/dev/null; then
    step "installing clang-tidy-14 clang-format-14"
    if [ "$(id -u)" -ne 0 ]; then
        echo "lint.sh: $tidy / $format missing; install them (apt-get install clang-tidy-14 clang-format-14) or run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq clang-tidy-14 clang-format-14 >/dev/null ||
        { echo "lint.sh: apt-get install clang-tidy-14 clang-format-14 failed" >&2; exit 1; }
fi

# The C++ files this script owns, as the sorted union of tracked and new
# (untracked, not ignored) files, so work not yet committed is checked too.
cxx_files() {
    git ls-files -co --exclude-standard -- "$@" | sort -u | while read -r f; do
        [ -f "$f" ] && echo "$f"
    done
}

if [ $# -gt 0 ]; then
    tidy_files=()
    format_files=()
    for f in "$@"; do
        case "$f" in *.cpp) tidy_files+=("$f") ;; esac
        format_files+=("$f")
    done
else
    mapfile -t tidy_files < <(cxx_files 'lib/*.cpp' 'plugin/*.cpp' 'install/*.cpp' 'tests/tools/*.cpp' 'tests/unit/*.cpp')
    mapfile -t format_files < <(cxx_files 'lib/*.cpp' 'lib/*.h' 'plugin/*.cpp' 'plugin/*.h' 'install/*.cpp' \
        'install/*.h' 'tests/*.cpp' 'tests/*.h')
fi

failed=0

if [ "$do_tidy" -eq 1 ] && [ "${#tidy_files[@]}" -gt 0 ]; then
    step "configure build-lint (compile_commands.json)"
    cmake -S . -B build-lint -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null ||
        { echo "lint.sh: cmake configure failed" >&2; exit 1; }

    jobs="${EF_LINT_JOBS:-$(nproc)}"
    step "clang-tidy: ${#tidy_files[@]} files, $jobs at a time"
    log="$(mktemp /tmp/ef-lint.XXXXXX)"
    # Header findings are reported once per including file; the filter in
    # .clang-tidy keeps them to the project's own headers.
    if command -v run-clang-tidy-14 >/dev/null; then
        # run-clang-tidy buffers each file's output; it always asks for colour.
        abs=()
        for f in "${tidy_files[@]}"; do abs+=("^$root/$f\$"); done
        run-clang-tidy-14 -clang-tidy-binary "$(command -v "$tidy")" -p build-lint -j "$jobs" -quiet \
            "${abs[@]}" >"$log" 2>&1
        rc=$?
    else
        printf '%s\n' "${tidy_files[@]}" | xargs -P "$jobs" -n 1 "$tidy" -p build-lint --quiet >"$log" 2>&1
        rc=$?
    fi
    sed -r 's/\x1b\[[0-9;]*m//g' "$log" | grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' |
        grep -v -E '^[^ ]*clang-tidy-14 ' | grep -v -E '^Suppressed [0-9]+ warnings|^Use -header-filter|^Error while processing'
    findings=$(sed -r 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^/.*:[0-9]+:[0-9]+: (warning|error): ' | sort -u | wc -l)
    rm -f "$log"
    if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
        echo "clang-tidy: $findings findings (exit $rc)"
        failed=1
    else
        echo "clang-tidy: clean"
    fi
fi

if [ "$do_format" -eq 1 ] && [ "${#format_files[@]}" -gt 0 ]; then
    step "clang-format --dry-run: ${#format_files[@]} files"
    unformatted=()
    for f in "${format_files[@]}"; do
        "$format" --style=file --dry-run --Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
    done
    if [ "${#unformatted[@]}" -gt 0 ]; then
        printf 'not formatted: %s\n' "${unformatted[@]}"
        echo "clang-format: ${#unformatted[@]} files would change; run: $format -i ${unformatted[*]}"
        failed=1
    else
        echo "clang-format: clean"
    fi
fi

step "done"
if [ "$failed" -ne 0 ]; then
    echo "lint: failed"
    exit 1
fi
echo "lint: clean"
