#!/usr/bin/env bats
# Input for scripts/bats-lint.py's self-test (scripts/lint.sh): every line
# marked "expect" must be reported, and no other. Never run as a suite.
# shellcheck disable=SC2314,SC2015,SC2034,SC2317 # the findings are the point

helper() {
  [ -n "$1" ] && echo "$1" # expect
  ! grep -q x /dev/null # expect
  a=(x y) && b="$(false && true)" # expect
  [ -n "$1" ] || return 1
  if [ -n "$1" ] && [ -n "$2" ]; then echo both; fi
  while [ -n "$1" ] && false; do :; done
  ! grep -q x /dev/null
}

last_is_status() {
  [ -n "$1" ] && [ -n "$2" ]
}

@test "fixture" {
  run ! false
  ! false || fail "negation with a fail is honest"
  [ 1 = 1 ] && [ 2 = 2 ] || fail "ends in ||"
  [ 1 = 1 ] && # expect
    [ 2 = 2 ]
  ! false # expect
  true || ! false # expect
  [[ -n x && -n y ]]
  (( 1 && 2 ))
  echo "a && b" 'c && d' $'e && f'
  x="$(true && true)"
  diff <(true && true) <(true)
  cat <<EOT
  false && true
EOT
  for i in 1 2; do [ "$i" = 2 ] && break; done # expect
  case "$x" in
    a) true && false ;; # expect
    *) true ;;
  esac
  { true && false; } # expect
  (true && false)
  sleep 1 && true &
  [ 1 = 1 ] && false # bats-lint: allow (the fixture's marked exception)
  true # comment with && in it
  echo a\&\&b
}

@test "fixture two" { [ 1 = 1 ] && true; true; } # expect

@test "the last statement is the test's status" {
  true
  [ 1 = 1 ] && true
}
