#!/usr/bin/env bats
# Issue 13: conf/ holds only ready-to-use examples. Every file under it must
# pass `egress-fence-ctl validate` as it is, with no placeholder left to fill
# in: an admin copies these. Test templates live in bats/conf/.

load helpers

@test "examples: every file under conf/ validates as it is (egress-fence-ctl validate), no placeholders" {
  local f n=0 problems=()
  while IFS= read -r f; do
    n=$((n + 1))
    run "$EF_BIN/egress-fence-ctl" validate --config "$f"
    [ "$status" -eq 0 ] || problems+=("${f#"$EF_ROOT"/}: validate exit $status: $output")
    if grep -qE '@[A-Z0-9_]+@' "$f"; then problems+=("${f#"$EF_ROOT"/}: holds a @PLACEHOLDER@"); fi
  done < <(find "$EF_ROOT/conf" -type f | sort)
  ((n >= 2)) || problems+=("only $n files under conf/")
  if ((${#problems[@]})); then
    printf '# %s\n' "${problems[@]}" >&3
    fail "${#problems[@]} example(s) not ready to use"
  fi
}

@test "examples: the test templates in bats/conf/ are not ready to use until the harness fills them in" {
  # The reason they are not in conf/: validate refuses the placeholders.
  run "$EF_BIN/egress-fence-ctl" validate --config "$EF_CONF_SRC/reference-chain.conflist"
  assert_failure
  assert_output --partial '@WORLD4@'
}
