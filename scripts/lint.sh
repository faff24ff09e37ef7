#!/usr/bin/env bash
# Static analysis (CI): clang-tidy with the checked-in .clang-tidy over every
# translation unit of lib/ plugin/ install/ tests/tools/ tests/unit/ (any
# finding fails), then clang-format with the checked-in .clang-format over
# every C++ source and header under lib/ plugin/ install/ tests/ (any file that
# would change fails), then the shell checks: shellcheck (every severity, so
# notes too) over bats/ scripts/ tests/**/*.sh .ci/run, and scripts/bats-lint.py
# over bats/, which finds the statements bats's `set -e` ignores (a statement
# ending in `a && b`, a bare `! cmd`) after proving on its fixture that it
# still finds them. An exception is justified on its line: shellcheck's
# `# shellcheck disable=SCnnnn # why`, bats-lint's `# bats-lint: allow (why)`.
# Installs clang-tidy-14 / clang-format-14 / shellcheck when missing.
# Configures (does not build) build-lint/ for its compile_commands.json.
#
# Usage: scripts/lint.sh [--tidy-only | --format-only | --shell-only] [FILE...]
#   FILE...  limit the checks to these files (.cpp to clang-tidy, C++ sources
#            and headers to clang-format, shell files to the shell checks)
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
do_shell=1
case "${1:-}" in
    --tidy-only) do_format=0; do_shell=0; shift ;;
    --format-only) do_tidy=0; do_shell=0; shift ;;
    --shell-only) do_tidy=0; do_format=0; shift ;;
esac

t_start=$SECONDS
step() { echo "== $1 ($((SECONDS - t_start)) s elapsed)"; }

tidy=clang-tidy-14
format=clang-format-14
tools=()
for t in "$tidy" "$format" shellcheck python3; do
    command -v "$t" >/dev/null || tools+=("$t")
done
if [ "${#tools[@]}" -gt 0 ]; then
    step "installing ${tools[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "lint.sh: ${tools[*]} missing; install them (apt-get install ${tools[*]}) or run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq "${tools[@]}" >/dev/null; }; then
        echo "lint.sh: apt-get install ${tools[*]} failed" >&2
        exit 1
    fi
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
    shell_files=()
    for f in "$@"; do
        case "$f" in
            *.cpp) tidy_files+=("$f"); format_files+=("$f") ;;
            *.h) format_files+=("$f") ;;
            *.sh | *.bats | *.bash | .ci/run) shell_files+=("$f") ;;
        esac
    done
else
    mapfile -t tidy_files < <(cxx_files 'lib/*.cpp' 'plugin/*.cpp' 'install/*.cpp' 'tests/tools/*.cpp' 'tests/unit/*.cpp')
    mapfile -t format_files < <(cxx_files 'lib/*.cpp' 'lib/*.h' 'plugin/*.cpp' 'plugin/*.h' 'install/*.cpp' \
        'install/*.h' 'tests/*.cpp' 'tests/*.h')
    # git's pathspec `*` crosses directories: tests/*.sh is tests/**/*.sh.
    mapfile -t shell_files < <(cxx_files 'bats/*.bats' 'bats/*.bash' 'scripts/*.sh' 'tests/*.sh' .ci/run)
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

if [ "$do_shell" -eq 1 ] && [ "${#shell_files[@]}" -gt 0 ]; then
    step "shellcheck: ${#shell_files[@]} files"
    # -x follows `source` (scripts/demo.sh loads bats/helpers.bash); bats's
    # `load` is not followed, so each .bats file is checked on its own.
    if shellcheck --version | grep -q '^version: 0\.[0-8]\.'; then
        echo "shellcheck: 0.9 or later needed (bats support, SC2314)" >&2
        failed=1
    elif shellcheck -x -P SCRIPTDIR -f gcc "${shell_files[@]}"; then
        echo "shellcheck: clean"
    else
        echo "shellcheck: findings above"
        failed=1
    fi

    mapfile -t bats_files < <(printf '%s\n' "${shell_files[@]}" | grep -E '^bats/.*\.(bats|bash)$')
    step "bats-lint: its fixture, then ${#bats_files[@]} files"
    # The check must still find what its fixture marks, and only that.
    fixture=tests/lint/bats-lint-fixture.bats
    want="$(grep -n '# expect$' "$fixture" | cut -d: -f1 | tr '\n' ' ')"
    got="$(python3 scripts/bats-lint.py "$fixture" | cut -d: -f2 | tr '\n' ' ')"
    if [ -z "$want" ] || [ "$got" != "$want" ]; then
        echo "bats-lint: on $fixture it reported lines [$got], the fixture expects [$want]"
        failed=1
    elif [ "${#bats_files[@]}" -gt 0 ] && ! python3 scripts/bats-lint.py "${bats_files[@]}"; then
        echo "bats-lint: findings above"
        failed=1
    else
        echo "bats-lint: clean"
    fi
fi

step "done"
if [ "$failed" -ne 0 ]; then
    echo "lint: failed"
    exit 1
fi
echo "lint: clean"
