#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 14: a profile with 100,000 allow entries. A pod is fenced through the
# reference chain with libcni's cnitool (the whole conflist, ~6 MB, goes
# through the plugin's stdin); CHECK passes; then one element of the 100,000
# is removed from, or one added to, the kernel's set with nft from inside the
# pod, and CHECK must fail naming exactly that element and nothing else.
# Issue 19: ADD checks such a set by the kernel's count of it (NFTA_SET_COUNT)
# and CHECK by the count and lookups; EF_TEST_NO_SET_COUNT=1 reads the
# kernel's replies as a kernel before 6.16 sends them (no count: every
# element read back), EF_TEST_DROP_ELEMENT=1 makes ADD send one element less
# than it means, as a kernel that lost one would look.
# The generated addresses (100.64.0.0/10) are only ever set elements: the pod
# has no route to them and nothing is sent.

load helpers

setup() {
  ef_setup
  ef_setup_pod
}

teardown() {
  ef_teardown
}

kEntries=100000

# The address of generated entry I (distinct, 8 apart, from 100.64.0.0).
entry_addr() {
  local a=$(($1 * 8))
  echo "100.$((64 + a / 65536)).$((a / 256 % 256)).$((a % 256))"
}

# Appends $kEntries entries `ADDR/32 tcp 443` to profile proxy-only.
large_profile() {
  local tmp="$EF_CONFLIST.new"
  jq --argjson n "$kEntries" '
    (.plugins[] | select(.type == "egress-fence") | .profiles["proxy-only"].allow) +=
      [range(0; $n) | (. * 8) as $a
        | {cidr: "100.\(64 + (($a / 65536) | floor)).\((($a / 256) | floor) % 256).\($a % 256)/32",
           protocol: "tcp", ports: [443]}]' "$EF_CONFLIST" >"$tmp"
  mv "$tmp" "$EF_CONFLIST"
}

large_fenced_pod() {
  large_profile
  run ef_pod_add
  assert_success
  ef_table_present
  # The kernel holds all of them (and the profile's own allow4 entries).
  local count
  count="$(ef_nft -j list set inet egress_fence allow4 | jq '[.nftables[] | select(.set) | .set.elem[]] | length')"
  [ "$count" -ge "$kEntries" ] || fail "set allow4 holds $count elements, expected at least $kEntries"
}

# check_names_only TEXT: CHECK fails with CNI error 102, reporting exactly one
# difference, TEXT (the whole of `details`).
check_names_only() {
  run ef_cnitool check
  assert_failure
  local err
  err="$(grep '^{' <<<"$output" | tail -n1)"
  [ -n "$err" ] || fail "CHECK printed no CNI error object: $output"
  assert_equal "$(ef_cni_error_code <<<"$err")" 102
  assert_equal "$(jq -r .details <<<"$err")" "$1"
  assert_equal "$(jq -r .msg <<<"$err")" "the fence differs from what the config demands (1 difference): $1"
}

@test "100,000 entries: one element removed from the kernel's set fails CHECK, naming that element alone" {
  large_fenced_pod
  run -0 ef_cnitool check
  local addr
  addr="$(entry_addr 54321)"
  ef_nft delete element inet egress_fence allow4 "{ $addr . tcp . 443 }"
  check_names_only "set allow4: missing element \`$addr . tcp . 443\`"
  # The same on a kernel that reports no count (the elements dumped).
  EF_TEST_NO_SET_COUNT=1 check_names_only "set allow4: missing element \`$addr . tcp . 443\`"
  # Put back, the fence is whole again.
  ef_nft add element inet egress_fence allow4 "{ $addr . tcp . 443 }"
  run -0 ef_cnitool check
}

@test "100,000 entries: one element added to the kernel's set fails CHECK, naming that element alone" {
  large_fenced_pod
  run -0 ef_cnitool check
  # Between two generated addresses (they are 8 apart): in no entry.
  local addr
  addr="$(entry_addr 77777)"
  addr="${addr%.*}.$((${addr##*.} + 1))"
  ef_nft add element inet egress_fence allow4 "{ $addr . tcp . 443 }"
  check_names_only "set allow4: unexpected element \`$addr . tcp . 443\`"
}

@test "100,000 entries: ADD checks the large set by the kernel's count; one element short fails ADD" {
  large_profile
  EF_TEST_DROP_ELEMENT=1 run ef_pod_add
  assert_failure
  assert_output --partial "nf_tables accepted the fence but holds something else: set allow4 holds"
  [[ "$output" =~ set\ allow4\ holds\ ([0-9]+)\ elements,\ ([0-9]+)\ were\ sent ]] ||
    fail "no count in the error: $output"
  ((BASH_REMATCH[2] == BASH_REMATCH[1] + 1)) || fail "counts ${BASH_REMATCH[1]} and ${BASH_REMATCH[2]}"
}

@test "100,000 entries on a kernel without NFTA_SET_COUNT: ADD reads every element back, CHECK passes" {
  large_profile
  EF_TEST_NO_SET_COUNT=1 run ef_pod_add
  assert_success
  EF_TEST_NO_SET_COUNT=1 run -0 ef_cnitool check
}

@test "100,000 entries on a kernel without NFTA_SET_COUNT: ADD one element short fails, naming it" {
  large_profile
  EF_TEST_NO_SET_COUNT=1 EF_TEST_DROP_ELEMENT=1 run ef_pod_add
  assert_failure
  # shellcheck disable=SC2016 # the backticks are the error text's own, nothing expands
  assert_output --regexp 'nf_tables accepted the fence but holds something else: set allow4: missing element `100\.[0-9.]+ \. tcp \. 443`'
}

@test "100,000 entries: one element swapped for another (the same count) fails CHECK, naming both" {
  large_fenced_pod
  local gone extra
  gone="$(entry_addr 12345)"
  extra="$(entry_addr 23456)"
  extra="${extra%.*}.$((${extra##*.} + 1))"
  ef_nft delete element inet egress_fence allow4 "{ $gone . tcp . 443 }"
  ef_nft add element inet egress_fence allow4 "{ $extra . tcp . 443 }"
  run ef_cnitool check
  assert_failure
  local err
  err="$(grep '^{' <<<"$output" | tail -n1)"
  assert_equal "$(jq -r .details <<<"$err")" "set allow4: missing element \`$gone . tcp . 443\`
set allow4: unexpected element \`$extra . tcp . 443\`"
}
