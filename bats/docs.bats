#!/usr/bin/env bats
# The documentation (issue 20): README.md is a front page and docs/ holds the
# rest, each fact on one page linked from the others. These tests keep it
# honest: every relative link and picture resolves (file and #anchor, by
# GitHub's slug rules), every `egress-fence-ctl ...` quoted in a page is a
# subcommand with options the binary accepts, the chart README's values table
# is what values.yaml's comments give, and the committed pictures are what
# their graphviz sources draw. The checks live in tests/docs/docs_check.py and
# scripts/chart-readme.py; each test below also shows its check fails on a
# broken copy. Needs no root (graphviz is installed when missing, as root).

load helpers

CHECK="$EF_ROOT/tests/docs/docs_check.py"

setup() {
  DT="$(mktemp -d /tmp/ef-docs.XXXXXX)"
}

teardown() {
  [ -n "${DT:-}" ] && rm -rf "$DT"
}

# copy_pages DIR: the pages and what they link to, in DIR, to break a copy.
copy_pages() {
  (cd "$EF_ROOT" && git ls-files -co --exclude-standard -- '*.md' 'docs/*' 'install/helm/egress-fence/*' \
    'conf/*' 'scripts/*' 'tests/*' 'bats/*' LICENSE .clang-tidy .clang-format | while read -r f; do
    if [ -f "$f" ]; then printf '%s\0' "$f"; fi
  done) | (cd "$EF_ROOT" && xargs -0 cp --parents -t "$1")
}

@test "docs: README.md is a front page (at most 250 lines) with the quick start's two commands" {
  local lines
  lines="$(wc -l <"$EF_ROOT/README.md")"
  ((lines <= 250)) || fail "README.md has $lines lines"
  grep -qx 'bash scripts/demo.sh    # fences a pod netns, shows a refused and an allowed connection, the ruleset and its counters' "$EF_ROOT/README.md"
  grep -qx 'bash scripts/test.sh    # installs every dependency, builds, runs all unit and scenario tests' "$EF_ROOT/README.md"
}

@test "docs: every relative link and picture in the pages resolves, #anchors included" {
  run python3 "$CHECK" links "$EF_ROOT"
  [ "$status" -eq 0 ] || fail "broken links:"$'\n'"$output"
  # The pages it reads include the ones this issue asks for.
  run python3 "$CHECK" pages "$EF_ROOT"
  assert_success
  local p
  for p in README.md CONTRIBUTING.md SECURITY.md CHANGELOG.md install/helm/egress-fence/README.md \
    docs/install.md docs/config.md docs/threat-model.md docs/operating.md docs/openshell.md \
    docs/performance.md docs/testing.md docs/architecture.md docs/bypass-matrix.md docs/probe-init-container.md; do
    grep -qx "$p" <<<"$output" || fail "the link check does not read $p"
  done
}

@test "docs: the link check fails on a missing file, a missing anchor and a missing picture" {
  copy_pages "$DT"
  run python3 "$CHECK" links "$DT"
  assert_success
  cp -a "$DT" "$DT.file"
  mv "$DT.file/docs/config.md" "$DT.file/docs/config-moved.md"
  run python3 "$CHECK" links "$DT.file"
  assert_failure
  assert_output --partial 'docs/config.md does not exist'
  cp -a "$DT" "$DT.anchor"
  sed -i 's/^## CNI verbs$/## The CNI verbs/' "$DT.anchor/docs/config.md"
  run python3 "$CHECK" links "$DT.anchor"
  assert_failure
  assert_output --partial 'has no heading whose anchor is #cni-verbs'
  cp -a "$DT" "$DT.picture"
  rm "$DT.picture/docs/diagrams/flow.svg"
  run python3 "$CHECK" links "$DT.picture"
  rm -rf "$DT.file" "$DT.anchor" "$DT.picture"
  assert_failure
  assert_output --partial 'docs/diagrams/flow.svg does not exist'
}

@test "docs: every egress-fence-ctl command quoted in the pages names a subcommand and options the binary accepts" {
  [ -x "$EF_BIN/egress-fence-ctl" ] || fail "no $EF_BIN/egress-fence-ctl: build first (or set EF_BIN)"
  run python3 "$CHECK" commands "$EF_ROOT" "$EF_BIN/egress-fence-ctl"
  [ "$status" -eq 0 ] || fail "commands the binary does not accept:"$'\n'"$output"
}

@test "docs: the command check fails on an unknown subcommand and an unknown option" {
  [ -x "$EF_BIN/egress-fence-ctl" ] || fail "no $EF_BIN/egress-fence-ctl: build first (or set EF_BIN)"
  copy_pages "$DT"
  sed -i 's/egress-fence-ctl reconcile --config FILE \[--dry-run\]/egress-fence-ctl reconcile --config FILE [--dry-runs]/' "$DT/docs/operating.md"
  # shellcheck disable=SC2016 # the backticks are Markdown's, nothing expands
  sed -i 's/`egress-fence-ctl validate --config FILE` prints them all/`egress-fence-ctl check --config FILE` prints them all/' "$DT/docs/config.md"
  run python3 "$CHECK" commands "$DT" "$EF_BIN/egress-fence-ctl"
  assert_failure
  assert_output --partial "reconcile has no option --dry-runs"
  assert_output --partial "no subcommand 'check'"
}

@test "docs: the chart README's values table is what values.yaml's comments give, and the check sees a change" {
  run python3 "$EF_ROOT/scripts/chart-readme.py" --check
  [ "$status" -eq 0 ] || fail "$output"
  copy_pages "$DT"
  sed -i 's/^  waitForPrimarySeconds: 600$/  waitForPrimarySeconds: 300/' "$DT/install/helm/egress-fence/values.yaml"
  run python3 "$DT/scripts/chart-readme.py" --check
  assert_failure
  # shellcheck disable=SC2016 # the backticks are Markdown's, nothing expands
  assert_output --partial '`cni.waitForPrimarySeconds` | `300`'
  # A new value without a row, and a changed comment, are caught too.
  cp "$EF_ROOT/install/helm/egress-fence/values.yaml" "$DT/install/helm/egress-fence/values.yaml"
  printf '# A value added without regenerating the table.\nnewValue: true\n' >>"$DT/install/helm/egress-fence/values.yaml"
  run python3 "$DT/scripts/chart-readme.py" --check
  assert_failure
  # shellcheck disable=SC2016 # the backticks are Markdown's, nothing expands
  assert_output --partial '`newValue`'
  # Regenerating makes it pass again.
  python3 "$DT/scripts/chart-readme.py"
  run python3 "$DT/scripts/chart-readme.py" --check
  assert_success
}

@test "docs: every diagram source has its SVG and PNG, and they are what scripts/diagrams.sh draws from it" {
  local src name n=0
  for src in "$EF_ROOT"/docs/diagrams/*.dot; do
    n=$((n + 1))
    name="$(basename "${src%.dot}")"
    [ -s "$EF_ROOT/docs/diagrams/$name.svg" ] || fail "no docs/diagrams/$name.svg"
    [ -s "$EF_ROOT/docs/diagrams/$name.png" ] || fail "no docs/diagrams/$name.png"
  done
  ((n >= 2)) || fail "only $n diagram sources"
  bash "$EF_ROOT/scripts/diagrams.sh" "$DT"
  for src in "$EF_ROOT"/docs/diagrams/*.dot; do
    name="$(basename "${src%.dot}")"
    cmp "$DT/$name.svg" "$EF_ROOT/docs/diagrams/$name.svg" || fail "docs/diagrams/$name.svg is not what $name.dot draws: run scripts/diagrams.sh"
    cmp "$DT/$name.png" "$EF_ROOT/docs/diagrams/$name.png" || fail "docs/diagrams/$name.png is not what $name.dot draws: run scripts/diagrams.sh"
  done
  local f
  for f in "$EF_ROOT"/docs/diagrams/*.svg "$EF_ROOT"/docs/diagrams/*.png; do
    [ -f "${f%.*}.dot" ] || fail "${f#"$EF_ROOT"/} has no source"
  done
}

@test "docs: the diagram check sees a source changed without redrawing" {
  mkdir -p "$DT/repo/docs/diagrams" "$DT/repo/scripts" "$DT/out"
  cp "$EF_ROOT"/docs/diagrams/* "$DT/repo/docs/diagrams/"
  cp "$EF_ROOT/scripts/diagrams.sh" "$DT/repo/scripts/"
  sed -i 's/label="kubelet"/label="the kubelet"/' "$DT/repo/docs/diagrams/flow.dot"
  bash "$DT/repo/scripts/diagrams.sh" "$DT/out"
  run cmp "$DT/out/flow.svg" "$DT/repo/docs/diagrams/flow.svg"
  assert_failure
  run cmp "$DT/out/decision.svg" "$DT/repo/docs/diagrams/decision.svg"
  assert_success
}
