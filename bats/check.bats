#!/usr/bin/env bats
# shellcheck disable=SC2034 # EF_* variables are read by helpers.bash
# Issue 3 scenarios: CHECK proves the fence. A pod is fenced through the
# reference chain with libcni's cnitool; then one tamper per test, made from
# inside the pod's netns with nft (what a pod holding NET_ADMIN could do), and
# CHECK must fail with CNI error 102 naming what changed. `egress-fence-ctl
# inspect --netns` reports the same diff. Foreign base chains on our hooks are
# warned about, not failed, and two tests show why: they cannot let through
# what the fence refuses.

load helpers

setup() {
  ef_setup
  ef_setup_pod
}

teardown() {
  ef_teardown
}

# A pod in namespace "sandboxes" (profile proxy-only), fenced through the chain.
fenced_pod() {
  run ef_pod_add
  assert_success
  ef_table_present
}

probe_tcp() { ef_probe connect tcp "$1" "$2" --uid "${3:-$EF_WORKLOAD_UID}" --timeout-ms 2000; }

# check_fails_naming TEXT...: CHECK through libcni fails with CNI error code 102
# and the error's msg or details contain every TEXT (fixed strings).
check_fails_naming() {
  run ef_cnitool check
  assert_failure
  local err words text
  err="$(grep '^{' <<<"$output" | tail -n1)"
  [ -n "$err" ] || fail "CHECK printed no CNI error object: $output"
  assert_equal "$(ef_cni_error_code <<<"$err")" 102
  words="$(jq -r '.msg + "\n" + .details' <<<"$err")"
  for text in "$@"; do
    grep -qF -- "$text" <<<"$words" || fail "CHECK's error does not name '$text'; it says: $words"
  done
}

# rule_handle CHAIN TEXT: the handle of the first rule of our CHAIN containing TEXT.
rule_handle() {
  local h
  h="$(ef_nft -a list chain inet egress_fence "$1" | grep -F -- "$2" | head -n1 | sed -nE 's/.*# handle ([0-9]+)$/\1/p')"
  [ -n "$h" ] || fail "no rule containing '$2' in chain $1"
  echo "$h"
}

# edit_conf JQ_FILTER [ARGS...]: rewrites the test's conflist through jq, with
# .plugins[] | select(.type == "egress-fence") as the thing to edit ($f).
edit_conf() {
  local filter="$1" tmp="$EF_CONFLIST.new"
  shift
  jq "$@" "(.plugins[] | select(.type == \"egress-fence\")) |= ($filter)" "$EF_CONFLIST" >"$tmp"
  mv "$tmp" "$EF_CONFLIST"
}

# sneaky_table: a second table with a base chain on the output hook ahead of
# ours (priority -10 < filter), policy accept, accepting everything (counted).
sneaky_table() {
  ef_nft add table inet sneaky
  ef_nft add chain inet sneaky output '{ type filter hook output priority -10; policy accept; }'
  ef_nft add rule inet sneaky output counter accept
}

# The packets counted by the first counter in a chain of table inet sneaky.
sneaky_packets() {
  ef_nft -j list chain inet sneaky "$1" |
    jq -e '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets][0]'
}

# Removes our tables and nothing else (DEL would take the pod's interface too).
drop_fence() {
  ef_nft delete table inet egress_fence
  ef_nft delete table netdev egress_fence
}

# Both dumps the test compares: text and JSON (JSON carries every handle).
ruleset_dump() {
  ef_nft list ruleset
  ef_nft -j list ruleset
}

# A pod with no IPv6 at all (IPv4-only IPAM, IPv6 disabled in its netns), so
# the kernel sends nothing on its own while a test compares dumps: on a dual-
# stack pod, MLD reports trailing interface setup land in other_dropped.
quiet_pod() {
  local tmp="$EF_CONFLIST.new"
  jq '.plugins[0].ipam.ranges |= map(select(.[0].subnet | contains(":") | not))' "$EF_CONFLIST" >"$tmp"
  mv "$tmp" "$EF_CONFLIST"
  ef_in_pod sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  fenced_pod
}

@test "CHECK passes right after ADD, with no warning" {
  fenced_pod
  run --separate-stderr ef_cnitool check
  assert_success
  refute_output
  [ -z "$stderr" ] || fail "CHECK printed on stderr: $stderr"
  run jq -r 'select(.verb == "CHECK") | .outcome' "$EF_LOGFILE"
  assert_output checked
}

@test "CHECK passes right after setup through go-cni (as containerd calls it)" {
  run ef_runtime setup
  assert_success
  ef_table_present
  run ef_runtime check
  assert_success
  run ef_runtime remove
  assert_success
}

@test "CHECK compares structure, not counter values: it passes after traffic moved the counters" {
  ef_world_listen tcp "$EF_WORLD4" 8080
  ef_world_listen tcp "$EF_DENY4" 8080
  fenced_pod
  run -111 probe_tcp "$EF_DENY4" 8080
  run -0 probe_tcp "$EF_WORLD4" 8080
  run -0 probe_tcp "$EF_DENY4" 8080 "$EF_PROXY_UID"
  [ "$(ef_counter tcp_refused)" -ge 1 ] && [ "$(ef_counter allowed_accepted)" -ge 1 ] &&
    [ "$(ef_counter exempt_accepted)" -ge 1 ] || fail "the probes did not move the counters"
  run ef_cnitool check
  assert_success
}

@test "CHECK never modifies the netns: ruleset dumps are equal before and after, passing or failing" {
  quiet_pod
  local before after
  before="$(ruleset_dump)"
  run ef_cnitool check
  assert_success
  run ef_cnitool check
  assert_success
  after="$(ruleset_dump)"
  assert_equal "$after" "$before"

  # A failing CHECK (its read-back found a difference) is read-only too.
  ef_nft add element inet egress_fence allow4 "{ $EF_DENY4 . tcp . 8080 }"
  before="$(ruleset_dump)"
  check_fails_naming "set allow4: unexpected element"
  after="$(ruleset_dump)"
  assert_equal "$after" "$before"
}

@test "tamper: a rule deleted by handle fails CHECK, naming the missing rule" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft delete rule inet egress_fence refuse handle "$(rule_handle refuse 'reject with tcp reset')"
  check_fails_naming "chain refuse: missing rule" 'counter name "tcp_refused" reject with tcp reset'
}

@test "tamper: the rule that judges every process's packet deleted fails CHECK, naming it" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft delete rule inet egress_fence output handle "$(rule_handle output 'meta skuid 0-4294967295 goto refuse')"
  check_fails_naming "chain output: missing rule" "meta skuid 0-4294967295 goto refuse"
}

@test "tamper: an accept inserted before the tcp reject fails CHECK, naming the rule" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft insert rule inet egress_fence refuse position "$(rule_handle refuse 'reject with tcp reset')" accept
  check_fails_naming "chain refuse: unexpected rule" "\`accept\`"
}

@test "tamper: an accept added after the tcp reject fails CHECK too" {
  fenced_pod
  ef_nft add rule inet egress_fence refuse position "$(rule_handle refuse 'reject with tcp reset')" accept
  check_fails_naming "chain refuse: unexpected rule" "\`accept\`"
}

@test "tamper: conntrack state accepted again before the process check fails CHECK, naming the rule" {
  fenced_pod
  ef_nft add rule inet egress_fence output position "$(rule_handle output 'meta secmark set')" \
    ct state established,related accept
  check_fails_naming "chain output: unexpected rule" "\`ct state established,related accept\`"
}

@test "tamper: the output policy changed to accept fails CHECK, naming the policy" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft chain inet egress_fence output '{ policy accept; }'
  check_fails_naming "chain output:" "policy accept, expected hook output priority 0 policy drop"
}

@test "tamper: an element added to an allow set fails CHECK, naming the element" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft add element inet egress_fence allow4 "{ $EF_DENY4 . tcp . 8080 }"
  check_fails_naming "set allow4: unexpected element" "$EF_DENY4 . tcp . 8080"
}

@test "tamper: an element added to the IPv6 allow set fails CHECK, naming the element" {
  fenced_pod
  ef_nft add element inet egress_fence allow6 "{ $EF_DENY6 . udp . 53 }"
  check_fails_naming "set allow6: unexpected element" "$EF_DENY6 . udp . 53"
}

@test "tamper: an exempt UID added fails CHECK, naming the UID" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft add element inet egress_fence exempt_uids "{ $EF_WORKLOAD_UID }"
  check_fails_naming "set exempt_uids: unexpected element \`$EF_WORKLOAD_UID\`"
}

@test "tamper: the table deleted fails CHECK: the pod is not fenced" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft delete table inet egress_fence
  check_fails_naming "not fenced" "table inet egress_fence is missing"
}

@test "tamper: the raw-frame table deleted fails CHECK, naming it" {
  fenced_pod
  run -0 ef_cnitool check
  ef_nft delete table netdev egress_fence
  check_fails_naming "table netdev egress_fence: missing"
}

@test "config changed after ADD: the profile allows another port; CHECK names the digest and the element" {
  fenced_pod
  run -0 ef_cnitool check
  # shellcheck disable=SC2016 # $a is jq's
  edit_conf '.profiles["proxy-only"].allow += [{"cidr": ($a + "/32"), "protocol": "tcp", "ports": [9090]}]' \
    --arg a "$EF_WORLD4"
  check_fails_naming "table metadata: digest is" "set allow4: missing element \`$EF_WORLD4 . tcp . 9090\`"
}

@test "config changed after ADD: the selector now picks another profile; CHECK names both profiles" {
  fenced_pod
  run -0 ef_cnitool check
  edit_conf '.selectors[0].profile = "locked"'
  check_fails_naming 'profile is "proxy-only", the config demands "locked"'
}

@test "config changed after ADD: the pod no longer matches a selector but still holds the table" {
  fenced_pod
  edit_conf '.selectors[0].namespaces = ["elsewhere"]'
  check_fails_naming "matches no selector" "proxy-only"
}

@test "a second table on the output hook passes CHECK with a warning on stderr and in the log" {
  fenced_pod
  sneaky_table
  run --separate-stderr ef_cnitool check
  assert_success
  [[ "$stderr" == *"warning: table inet sneaky chain output also hooks output (priority -10, policy accept)"* ]] ||
    fail "CHECK did not warn about table inet sneaky on stderr: $stderr"
  run jq -r 'select(.verb == "CHECK") | .outcome + " " + (.warnings | join("|"))' "$EF_LOGFILE"
  assert_output --partial "checked table inet sneaky chain output also hooks output"
}

@test "logLevel warn: a clean CHECK is not logged, a CHECK with a warning is" {
  edit_conf '.logLevel = "warn"'
  fenced_pod
  : >>"$EF_LOGFILE"
  run -0 ef_cnitool check
  run jq -r 'select(.verb == "CHECK") | .outcome' "$EF_LOGFILE"
  refute_output
  sneaky_table
  run -0 ef_cnitool check
  run jq -r 'select(.verb == "CHECK") | .warnings[]' "$EF_LOGFILE"
  assert_output --partial "table inet sneaky chain output"
}

@test "proof: an accepting base chain ahead of ours does not bypass the fence" {
  ef_world_listen tcp "$EF_DENY4" 8080
  fenced_pod
  sneaky_table
  local refused
  refused="$(ef_counter tcp_refused)"
  run -111 probe_tcp "$EF_DENY4" 8080
  # The SYN was accepted by the sneaky chain, then refused by ours on the same hook.
  [ "$(sneaky_packets output)" -ge 1 ] || fail "the sneaky chain never saw the SYN"
  [ "$(ef_counter tcp_refused)" -gt "$refused" ] || fail "tcp_refused did not count the refusal"
  # Control: without our tables, the same probe under the same sneaky table connects.
  drop_fence
  run -0 probe_tcp "$EF_DENY4" 8080
}

@test "proof: a nat chain numbered after ours rewrites before ours; the fence judges the new destination" {
  # Only the denied address listens; the allowed one is dnat-ed onto it.
  ef_world_listen tcp "$EF_DENY4" 9090
  fenced_pod
  ef_nft add table ip sneakynat
  ef_nft add chain ip sneakynat output '{ type nat hook output priority 100; policy accept; }'
  ef_nft add rule ip sneakynat output ip daddr "$EF_WORLD4" tcp dport 8080 counter dnat to "$EF_DENY4:9090"
  local refused
  refused="$(ef_counter tcp_refused)"
  run -111 probe_tcp "$EF_WORLD4" 8080
  [ "$(ef_nft -j list chain ip sneakynat output |
    jq '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets][0]')" -ge 1 ] ||
    fail "the nat rule never matched"
  [ "$(ef_counter tcp_refused)" -gt "$refused" ] || fail "tcp_refused did not count the refusal"
  run --separate-stderr ef_cnitool check
  assert_success
  [[ "$stderr" == *"warning: table ip sneakynat chain output also hooks output (priority 100, policy accept)"* ]] ||
    fail "CHECK did not warn about table ip sneakynat: $stderr"
  # Control: without our tables the dnat reaches the denied listener.
  drop_fence
  run -0 probe_tcp "$EF_WORLD4" 8080
}

@test "inspect --netns --config on a fenced netns prints metadata, counters, ruleset and 'matches config'" {
  fenced_pod
  run -0 "$EF_BIN/egress-fence-ctl" inspect --netns "$EF_POD_PATH" --config "$EF_CONFLIST"
  assert_line "config:      matches config"
  assert_line "profile:     proxy-only"
  assert_line "pod:         sandboxes/$EF_POD_NAME"
  assert_line --regexp '^  tcp_refused: [0-9]+ packets, [0-9]+ bytes$'
  assert_line --regexp '^  allowed_accepted: [0-9]+ packets, [0-9]+ bytes$'
  assert_line "table inet egress_fence {"
  assert_line --partial 'meta l4proto tcp counter name "tcp_refused" reject with tcp reset'
  refute_output --partial "warning:"
}

@test "inspect --netns --config after a tamper prints the diff and exits non-zero" {
  fenced_pod
  ef_nft add element inet egress_fence exempt_uids "{ $EF_WORKLOAD_UID }"
  ef_nft chain inet egress_fence output '{ policy accept; }'
  run "$EF_BIN/egress-fence-ctl" inspect --netns "$EF_POD_PATH" --config "$EF_CONFLIST"
  assert_failure
  assert_line "config:      DIFFERS"
  assert_line "  - set exempt_uids: unexpected element \`$EF_WORKLOAD_UID\`"
  assert_line --partial "  - chain output: hook output priority 0 policy accept, expected hook output priority 0 policy drop"
}

@test "inspect --netns prints the foreign-chain warning CHECK gives" {
  fenced_pod
  sneaky_table
  run -0 "$EF_BIN/egress-fence-ctl" inspect --netns "$EF_POD_PATH" --config "$EF_CONFLIST"
  assert_line "config:      matches config"
  assert_line --partial "warning:     table inet sneaky chain output also hooks output (priority -10, policy accept)"
  run -0 "$EF_BIN/egress-fence-ctl" inspect --netns "$EF_POD_PATH" --config "$EF_CONFLIST" --json
  run jq -r '.warnings[]' <<<"$output"
  assert_output --partial "table inet sneaky chain output"
}

@test "inspect --netns on a netns whose table was deleted says not fenced and exits non-zero" {
  fenced_pod
  ef_nft delete table inet egress_fence
  run "$EF_BIN/egress-fence-ctl" inspect --netns "$EF_POD_PATH" --config "$EF_CONFLIST"
  assert_failure
  assert_output --partial "not fenced"
}
