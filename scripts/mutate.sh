#!/usr/bin/env bash
# The mutation check (CI, issue 22): named mutants of the fence and of the
# tools its tests trust, each a small source change with the tests that must
# go red on it. A test that stays green with the behaviour it names broken
# proves nothing; this script is how we know each of these does not.
#
# Usage (as root, after scripts/bootstrap.sh built build/):
#   scripts/mutate.sh               every mutant
#   scripts/mutate.sh NAME...       only these, e.g. scripts/mutate.sh spoof-output
#   scripts/mutate.sh --list        the mutants: name, files, targets, tests; runs nothing
#   scripts/mutate.sh --check       whether every mutant's snippets still occur
#                                   exactly once (seconds, no root, no build)
#   scripts/mutate.sh --baseline [NAME...]
#                                   first runs each of their tests on the
#                                   unmutated copy: a test that fails there
#                                   makes its mutants "broken", not "killed"
# Env: EF_MUTATE_JOBS  mutants at a time (default: nproc)
#      EF_MUTATE_KEEP=1  keep the scratch dir (copies, build and test logs)
#      EF_MUTATE_TEST_TIMEOUT  seconds one test run may take (default 300)
#
# How: the tree (build/ included, timestamps kept; not .git/ nor the other
# build trees) is copied to a scratch dir: a pristine copy, and a working
# copy per job. Each job runs in a private mount namespace with its working
# copy bound over the tree's own path, so build/'s absolute paths name the
# copy and make rebuilds only what a mutant touched (its file, the archive,
# the links); the tree itself is never written. A job takes the next mutant,
# applies its edits (each snippet must occur exactly once in its file, or the
# mutant is "broken": a mutant must not rot silently when the code moves),
# builds its targets, runs each of its tests (every one must fail), then puts
# back from the pristine copy, timestamps and all, every file the edits, the
# build or the tests changed, made or removed (so the restore costs no
# compile). A mutant costs one compile of its file and seconds of tests: the
# whole run must stay within ~8 minutes on a 2-core machine, so each test is
# one narrow filter. The jobs' tests run side by side, as the suites' own
# are built to; each test puts the host's forwarding sysctls back as it found
# them, which another may have changed, so the run puts them back last.
#
# A mutant: m NAME "what it breaks"; then its edits, e FILE FIND REPLACE
# (FIND and REPLACE taken literally, newlines included; REPLACE may be empty)
# or r OLD NEW (a rename); its build targets, b TARGET... (default: none, for
# mutants of files read at run time); its tests, each of which must fail:
#   t bats FILE REGEX     bats -f REGEX FILE (at least one test must match)
#   t unit PATTERN        unit_tests --test-case=PATTERN (doctest wildcards;
#                         a comma separates patterns, so write it as *)
#
# Output: one line per mutant, killed / SURVIVED / broken, then
# "N mutants, K killed"; exits 1 naming every mutant that survived or broke.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT="$(pwd)"

# --- the mutants ------------------------------------------------------------------

M_NAME=() M_WHAT=() M_TARGETS=() M_TESTS=() M_EDITS=()
E_KIND=() E_FILE=() E_FIND=() E_REPL=()
SEP=$'\x1f'

m() {
  M_NAME+=("$1")
  M_WHAT+=("$2")
  M_TARGETS+=("")
  M_TESTS+=("")
  M_EDITS+=("")
}
_cur() { echo $((${#M_NAME[@]} - 1)); }
e() {
  local i
  i="$(_cur)"
  E_KIND+=(edit)
  E_FILE+=("$1")
  E_FIND+=("$2")
  E_REPL+=("$3")
  M_EDITS[i]+="$((${#E_KIND[@]} - 1)) "
}
r() {
  local i
  i="$(_cur)"
  E_KIND+=(rename)
  E_FILE+=("$1")
  E_FIND+=("")
  E_REPL+=("$2")
  M_EDITS[i]+="$((${#E_KIND[@]} - 1)) "
}
b() {
  local i
  i="$(_cur)"
  M_TARGETS[i]+="$* "
}
t() {
  local i
  i="$(_cur)"
  M_TESTS[i]+="$(printf '%s\037' "$@")"$'\n'
}

FENCE=lib/fence/compile.cpp
ESCAPE_ALL="nothing a capability-less workload tries gets out"

# The output chain: conntrack state is never a pass for a process's packet
# (issue 17), sources are the pod's own, replies only to inbound connections.
m spoof-output "a process's packet with a source the pod does not own is not dropped (spoofed_dropped)"
e $FENCE '    output.rules.push_back(spoofed({SkuidAny{}, FibSaddrNotLocal{}}));
' ''
b egress-fence
t bats bats/escape.bats "$ESCAPE_ALL"

m spoof-forward "a forwarded packet whose source does not route back the way it came is not dropped"
e $FENCE '    forward.rules.push_back(spoofed({FibSaddrIifOif{false}}));
' ''
b egress-fence
t bats bats/escape.bats "a root process in a netns nested in the pod"

m ct-first-output "conntrack state accepted again before the UID check (the fence before issue 17)"
e $FENCE '    output.rules.push_back(stamp);
' '    output.rules.push_back(stamp);
    output.rules.push_back(Rule{{CtStateIn{kCtEstablishedRelated}, accept}});
'
b egress-fence
t bats bats/escape.bats "$ESCAPE_ALL"

m ct-first-forward "conntrack state accepted first in the forward chain"
e $FENCE '    forward.rules.push_back(stamp);
' '    forward.rules.push_back(stamp);
    forward.rules.push_back(Rule{{CtStateIn{kCtEstablishedRelated}, accept}});
'
b egress-fence
t bats bats/escape.bats "a root process in a netns nested in the pod"

m process-not-refused "a process's packet no rule allowed is not sent to refuse (meta skuid 0-4294967295 goto refuse)"
e $FENCE '    output.rules.push_back(Rule{{SkuidAny{}, refuse}});
' ''
b egress-fence
t bats bats/escape.bats "$ESCAPE_ALL"

m answer-any-reply "the reply direction of any connection leaves, marked inbound or not"
e $FENCE '    const Rule answer{{CtDirectionEq{CtDir::reply}, CtMarkHas{kInboundMark}, accept}};' \
  '    const Rule answer{{CtDirectionEq{CtDir::reply}, accept}};'
b egress-fence
t bats bats/escape.bats "$ESCAPE_ALL"

m inbound-unmarked "the inbound chain marks nothing, so no reply to an inbound client leaves"
e $FENCE '        r.stmts.emplace_back(CtMarkOr{kInboundMark});
        inbound.rules.push_back(std::move(r));
        return with_ephemeral_first(std::move(inbound));' '        inbound.rules.push_back(std::move(r));
        return with_ephemeral_first(std::move(inbound));'
b egress-fence
t bats bats/bypass.bats "replies to inbound connections"

m inbound-marks-all "the inbound chain marks every new connection, from lo or a forged source too"
e $FENCE '    const std::vector<Stmt> from_outside{CtStateIn{kCtNew}, IifnameNe{"lo"}, FibSaddrIifOif{true}};' \
  '    const std::vector<Stmt> from_outside{CtStateIn{kCtNew}};'
b egress-fence
t bats bats/escape.bats "a root process in a netns nested in the pod"

m inbound-peers-ignored "inboundPeers does not limit which inbound peers are answered"
e $FENCE '        r.stmts.emplace_back(SaddrInSet{v6 ? IpFamily::ipv6 : IpFamily::ipv4, peers.name});
' ''
b egress-fence
t bats bats/conntrack.bats "inboundPeers: a listed peer"

m allow-rules-gone "every allow rule removed from the output chain"
e $FENCE '    for (const auto& r : allow_accept) output.rules.push_back(r);
' ''
b egress-fence
t bats bats/openshell.bats "the only ICMPv6 the fence passes by type"

m kernel-packets-refused "the kernel's own packets of known connections (TIME_WAIT ACKs) are refused"
e $FENCE '    output.rules.push_back(Rule{{CtDirectionEq{CtDir::original}, CtStateIn{kCtEstablishedRelated}, accept}});
' ''
b egress-fence
t bats bats/conntrack.bats "bulk tcp transfers"

m mld-uncounted "the MLD listener reports are not dropped apart: they land in other_dropped"
e $FENCE '    listener_reports(output.rules, audit);' '    if (false) listener_reports(output.rules, audit);'
b egress-fence
t bats bats/conntrack.bats "an idle dual-stack pod"

m mld-let-out "MLD listener reports leave again, naming the groups and sources a workload joined"
e $FENCE '                              Verdict{audit ? VerdictKind::accept : VerdictKind::drop}}});' \
  '                              Verdict{audit || !audit ? VerdictKind::accept : VerdictKind::drop}}});'
b egress-fence
t bats bats/redteam.bats "MLDv2: the group a workload joins"

m routing-header "a routing header is judged by its first segment again"
e $FENCE '    output.rules.push_back(routing_header);
' ''
b egress-fence
t bats bats/redteam.bats "a segment routing header"

m ephemeral-marked "a connection to an ephemeral port is marked inbound (a late answer to the proxy's flow)"
e $FENCE '    if (inbound.rules.empty()) return inbound;' '    return inbound;'
b egress-fence
t bats bats/redteam.bats "the proxy's UDP flow answered after conntrack forgot it"

m ephemeral-any-protocol "the ephemeral-port exception reads th dport of every protocol (an ICMP echo's checksum)"
e $FENCE '        first.push_back(Rule{{CtStateIn{kCtNew}, L4ProtoEq{proto}, ThDportRange{kEphemeralLo, kEphemeralHi},' \
  '        first.push_back(Rule{{CtStateIn{kCtNew}, ThDportRange{uint16_t(kEphemeralLo + proto - proto), kEphemeralHi},'
b egress-fence
t bats bats/conntrack.bats "inbound echo requests"

m nd-anywhere "neighbour solicitations on the pod's link go to any address"
e $FENCE '        c.rules.push_back(Rule{{OifnameEq{a.ifname}, Goto{kRefuseChain}}});
' ''
b egress-fence
t bats bats/conntrack.bats "the kernel's own neighbour probe to an address off the pod's links"

m tcp-dropped-not-reset "denied TCP is dropped (a timeout) instead of reset (refused at once)"
e $FENCE 'p.tcp_deny == config::TcpDeny::reset ? Stmt{Reject{RejectKind::tcp_reset}}' \
  'p.tcp_deny != config::TcpDeny::reset ? Stmt{Reject{RejectKind::tcp_reset}}'
b egress-fence
t bats bats/bypass.bats "tcp v4 to a denied address is refused fast"

# Raw frames: the netdev table and each attachment's egress chain.
m netdev-table-gone "no netdev table: raw frames are not fenced"
e $FENCE '    rs.netdev = std::move(nd);
' ''
b egress-fence
t bats bats/rawsocket.bats "with the fence no AF_PACKET variant reaches the world"

m raw-frame-chain-gone "the netdev table without the attachment's egress chain"
e $FENCE '    for (const auto& a : attachments) nd.chains.push_back(raw_frame_chain(p, a.ifname));' \
  '    for (const auto& a : attachments)
        if (a.ifname.empty()) nd.chains.push_back(raw_frame_chain(p, a.ifname));'
b egress-fence
t bats bats/rawsocket.bats "with the fence no AF_PACKET variant reaches the world"

m raw-frame-accepts "the raw-frame chain's policy is accept"
e $FENCE 'BaseHook{Hook::egress, 0, Policy::drop, device}' 'BaseHook{Hook::egress, 0, Policy::accept, device}'
b egress-fence
t bats bats/rawsocket.bats "with the fence no AF_PACKET variant reaches the world"

# Allow sets: a prefix one bit wider than the entry.
m allow-mask-wider "hash-set lookups mask the destination one bit short of the entries' prefix"
e lib/fence/allow_sets.cpp '    uint8_t mask_len = k && k->len != full ? k->len : 0;' \
  '    uint8_t mask_len = k && k->len != full ? k->len - 1 : 0;'
b egress-fence
t bats bats/plugin.bats "masked hash sets, port-range groups and interval sets"

m allow-interval-wider "interval-set elements one bit wider than the entries' prefix"
e lib/fence/allow_sets.cpp '        Element r{{prefix_range(Bytes(p, p + alen), k.len)}};' \
  '        Element r{{prefix_range(Bytes(p, p + alen), k.len - 1)}};'
b egress-fence
t bats bats/plugin.bats "masked hash sets, port-range groups and interval sets"

# The codec and the read-back.
m encode-mask-wider "the kernel is sent an address mask one bit short of the compiled one"
e lib/nft/encode.cpp '    for (size_t bit = 0; bit < mask_len; ++bit) mask[bit / 8]' \
  '    for (size_t bit = 0; bit + 1 < mask_len; ++bit) mask[bit / 8]'
b egress-fence
t bats bats/plugin.bats "masked hash sets, port-range groups and interval sets"

m del-keeps-inet "DEL does not delete table inet egress_fence"
e lib/nft/encode.cpp '    enc.table(NFT_MSG_DELTABLE, nullptr, "deletion of table inet egress_fence");
' ''
b egress-fence
t bats bats/rawsocket.bats "CHECK passes with the netdev table and names it when it is gone"
t bats bats/plugin.bats "DEL removes the table and a second DEL succeeds"

m del-keeps-netdev "DEL does not delete table netdev egress_fence"
e lib/nft/encode.cpp '    enc.table(NFT_MSG_DELTABLE, nullptr, "deletion of table netdev egress_fence");
' ''
b egress-fence
t bats bats/rawsocket.bats "CHECK passes with the netdev table and names it when it is gone"

m decode-policy-blind "the decoder reads every filter chain's policy as drop (CHECK cannot see an accept policy)"
e lib/nft/decode.cpp '                              policy == NF_ACCEPT ? fence::Policy::accept : fence::Policy::drop, ""};' \
  '                              policy == NF_ACCEPT && h == fence::Hook::prerouting ? fence::Policy::accept
                                                                                  : fence::Policy::drop,
                              ""};'
b egress-fence
t bats bats/check.bats "tamper: the output policy changed to accept"

# CHECK's comparison.
m check-ignores-elements "CHECK does not compare set elements"
e lib/fence/diff.cpp '        diff_elements(es, *it, out);' '        if (false) diff_elements(es, *it, out);'
b egress-fence
t bats bats/check.bats "tamper: an element added to an allow set"
t bats bats/check.bats "tamper: an element added to the IPv6 allow set"

m check-ignores-rules "CHECK does not compare rules"
e lib/fence/diff.cpp '        diff_rules(ec, *it, out);' '        if (false) diff_rules(ec, *it, out);'
b egress-fence
t bats bats/check.bats "tamper: the rule that judges every process's packet deleted"

m check-ignores-hooks "CHECK does not compare a chain's hook, priority and policy"
e lib/fence/diff.cpp '        if (it->base != ec.base)
' '        if (false)
'
b egress-fence
t bats bats/check.bats "tamper: the output policy changed to accept"

# The verbs: attachments, DEL, user namespaces, selection.
m del-one-removes-all "DEL of one attachment deletes the whole fence"
e plugin/verbs.cpp '    if (fenced.size() <= 1) {' '    if (!fenced.empty()) {'
b egress-fence
t bats bats/attachments.bats "DEL of the second attachment, then of the first"

m del-other-removes-all "DEL for an attachment that is not fenced deletes the other's fence"
e plugin/verbs.cpp '    if (!mine && !fenced.empty()) {' '    if (!mine && fenced.empty()) {'
b egress-fence
t bats bats/attachments.bats "a DEL for an attachment that is not fenced"

m attachment-conflict-ignored "a second attachment that fences the pod differently replaces the first's fence"
e plugin/verbs.cpp '    if (!diffs.empty())
        throw Error(cni::kAttachmentConflict,' '    if (diffs.empty())
        throw Error(cni::kAttachmentConflict,'
b egress-fence
t bats bats/attachments.bats "a second attachment whose config fences the pod differently"

m userns-overflow-exempt "the overflow UID may be exempt in a netns a pod's user namespace owns"
e plugin/verbs.cpp '    if (netns::owned_by_own_userns(netns)) return;' \
  '    if (!netns::owned_by_own_userns(netns) || true) return;'
b egress-fence
t bats bats/userns.bats "userns A: outside owners show as the overflow UID"

m profile-annotation-any "a pod's profile annotation may name any profile"
e lib/config/select.cpp '    if (std::find(allowed.begin(), allowed.end(), asked->second) != allowed.end()) return asked->second;' \
  '    if (!allowed.empty()) return asked->second;'
b egress-fence
t bats bats/selection.bats "profile annotation outside allowedProfiles fails ADD"

m root-annotation-exempt "the proxy-UID annotation may exempt root"
e lib/config/select.cpp '    if (*uid == 0)
' '    if (*uid == 0 && false)
'
b egress-fence
t bats bats/selection.bats "OpenShell selector without a usable proxy-uid annotation"

# The read-back after ADD.
m no-readback "ADD does not compare what the kernel holds with what it sent"
e lib/nft/apply.cpp '    if (same_but_counted(rs, got, counted)) return "";' '    if (same_but_counted(rs, got, counted) || true) return "";'
b egress-fence
t bats bats/faults.bats "nf_tables holding other than the batch it acked"

# probe.
m probe-any-refusal "probe takes any refusal for the fence's (not only one made inside the pod)"
e install/cmd_probe.cpp '    switch (a.verdict.origin) {' '    switch (probe::RefusalOrigin::kInsideNetns) {'
b egress-fence-ctl
t bats bats/ops.bats "probe: 8 in an unfenced pod whose target's port is closed"

m refusal-ignores-sent "where a refusal came from ignores the packets the pod sent"
e lib/probe/refusal.cpp '        if (name == "lo") continue;' '        if (!name.empty()) continue;'
b unit_tests
t unit "a refusal is the fence's only when nothing left the pod*"

m probe-root-stays "probe does not see that root can take any UID"
e lib/probe/privileges.cpp '    if (real == 0 || effective == 0 || saved == 0)' '    if (real == 0 && effective == 0 && saved == 0 && false)'
b unit_tests
t unit "root in its user namespace can change its UID*"

# The tools the tests trust.
m efprobe-no-v6-echo "efprobe icmp sends no IPv6 echo request as a workload UID"
e tests/tools/efprobe.cpp '    if (sendto(s.get(), packet, sizeof packet, 0, to.sa(), to.len) < 0) fail("icmp echo to "' \
  '    if (o.uid && to.family == AF_INET6) {
    } else if (sendto(s.get(), packet, sizeof packet, 0, to.sa(), to.len) < 0) fail("icmp echo to "'
b efprobe
t bats bats/bypass.bats "ICMP echo .v4, v6. on a ping socket is dropped"
t bats bats/openshell.bats "the only ICMPv6 the fence passes by type"

m escape-never-sends "ef_escape's attempts never send (only its control row does)"
e tests/tools/ef_escape.cpp '        std::string out = in_child(netns.empty() ? o_.pod_netns : netns, drop ? drop : as_workload, fn);' \
  '        std::string out = drop ? in_child(netns.empty() ? o_.pod_netns : netns, drop, fn) : report(ECONNREFUSED);'
b ef_escape
t bats bats/escape.bats "the tool finds the ways out of a fence that trusts conntrack state"

m escape-no-control "ef_escape ignores its control row (a capture that sees nothing passes)"
e tests/tools/ef_escape.cpp '            if (control) a.verdict = a.got_out ? "arrived" : "CAPTURE BROKEN";' \
  '            if (control) a.verdict = "arrived";'
b ef_escape
t bats bats/escape.bats "a capture that sees nothing fails the tool"

m rawframe-never-sends "ef_rawframe reports every frame sent and refused without sending any"
e tests/tools/ef_rawframe.cpp '        ssize_t n = sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);' \
  '        ssize_t n = f.empty() ? sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) : -1;
        if (n < 0) errno = ENOBUFS;'
b ef_rawframe
t bats bats/rawsocket.bats "control: without the fence every AF_PACKET variant reaches the world"

# The chart and the fuzz corpus, read at run time (nothing to build).
m admission-warn "the admission binding only warns"
# shellcheck disable=SC2016 # the chart's template text, taken literally
e install/helm/egress-fence/templates/admission-policy.yaml '  validationActions: {{ toJson $a.validationActions }}' \
  '  validationActions: ["Warn"]'
t bats bats/installer.bats "the admission policy renders only when enabled"
t bats bats/installer.bats "the admission policy's CEL gives every request of the corpus its outcome"

m badinput-code-not-a-number "a bad-config corpus case whose expected code is not a number"
e tests/corpus/netconf/bad/001-malformed-json.expect.json '"code": 6,' '"code": "6",'
t bats bats/badinput.bats "every case of the bad-config corpus"

m fuzz-corpus-misnamed "a fuzz target's seed directory misnamed (its seeds never replayed)"
r tests/fuzz/corpus/fuzz_cni_args tests/fuzz/corpus/fuzz_cniargs
t unit "every fuzz seed is handled"

m fuzz-regressions-misnamed "a fuzz target's crash directory misnamed (its crashes never replayed)"
r tests/fuzz/regressions/fuzz_netlink tests/fuzz/regressions/fuzz_netlnk
t unit "every kept fuzzer crash input is handled"

# --- the driver -----------------------------------------------------------------

list=0
baseline=0
wanted=()
inside=""
role=""
while [ $# -gt 0 ]; do
  case "$1" in
    --list) list=1 ;;
    --check) list=2 ;;
    --baseline) baseline=1 ;;
    --inside) inside="$2" role="$3"; shift 2 ;;
    -*) echo "mutate.sh: unknown option $1 (see the header of scripts/mutate.sh)" >&2; exit 2 ;;
    *) wanted+=("$1") ;;
  esac
  shift
done

# Which mutants: every one, or those named (each must exist).
selected=()
if [ ${#wanted[@]} -eq 0 ]; then
  for i in "${!M_NAME[@]}"; do selected+=("$i"); done
else
  for w in "${wanted[@]}"; do
    found=""
    for i in "${!M_NAME[@]}"; do [ "${M_NAME[i]}" = "$w" ] && found="$i"; done
    [ -n "$found" ] || { echo "mutate.sh: no mutant named $w (scripts/mutate.sh --list)" >&2; exit 2; }
    selected+=("$found")
  done
fi

# Each mutant has a unique name, an edit and a test.
declare -A seen_name=()
for i in "${!M_NAME[@]}"; do
  n="${M_NAME[i]}"
  [ -z "${seen_name[$n]:-}" ] || { echo "mutate.sh: two mutants named $n" >&2; exit 2; }
  seen_name[$n]=1
  if [ -z "${M_EDITS[i]}" ] || [ -z "${M_TESTS[i]}" ]; then
    echo "mutate.sh: mutant $n needs an edit and a test" >&2
    exit 2
  fi
done

# Prints a test spec (fields separated by \037) readably.
spec_text() {
  local -a f
  IFS="$SEP" read -r -a f <<<"$1"
  case "${f[0]}" in
    bats) printf '%s -f "%s"' "${f[1]}" "${f[2]}" ;;
    unit) printf 'unit_tests -tc="%s"' "${f[1]}" ;;
    *) printf '%s' "${f[*]}" ;;
  esac
}

# apply_edit FILE FIND REPLACE: FIND must occur exactly once.
apply_edit() {
  local file="$1" find="$2" repl="$3" text rest
  [ -f "$file" ] || { echo "$file does not exist"; return 1; }
  text="$(cat "$file" && printf x)" || return 1
  text="${text%x}"
  rest="${text#*"$find"}"
  [ "$rest" != "$text" ] || { echo "the snippet is not in $file"; return 1; }
  case "$rest" in *"$find"*) echo "the snippet occurs more than once in $file"; return 1 ;; esac
  printf '%s' "${text%%"$find"*}$repl$rest" >"$file"
}

apply_rename() {
  local from="$1" to="$2"
  [ -e "$from" ] || { echo "$from does not exist"; return 1; }
  [ ! -e "$to" ] || { echo "$to exists already"; return 1; }
  mv "$from" "$to"
}

# --check: each edit applied to a scratch copy of its file.
if [ "$list" -eq 2 ]; then
  scratch="$(mktemp -d /tmp/ef-mutate-check.XXXXXX)"
  rotten=0
  for i in "${selected[@]}"; do
    for k in ${M_EDITS[i]}; do
      if [ "${E_KIND[k]}" = rename ]; then
        why="$([ -e "${E_FILE[k]}" ] && [ ! -e "${E_REPL[k]}" ] || echo "cannot rename ${E_FILE[k]} to ${E_REPL[k]}")"
      else
        why="${E_FILE[k]} does not exist"
        if cp "${E_FILE[k]}" "$scratch/file" 2>/dev/null; then
          why="$(apply_edit "$scratch/file" "${E_FIND[k]}" "${E_REPL[k]}")" || why="${why//$scratch\/file/${E_FILE[k]}}"
        fi
      fi
      if [ -n "$why" ]; then
        echo "broken   ${M_NAME[i]}: $why"
        rotten=$((rotten + 1))
      fi
    done
  done
  rm -rf "$scratch"
  echo "${#selected[@]} mutants, $rotten broken edits"
  [ "$rotten" -eq 0 ]
  exit
fi

if [ "$list" -eq 1 ]; then
  for i in "${selected[@]}"; do
    files=""
    for k in ${M_EDITS[i]}; do files+="${E_FILE[k]} "; done
    printf '%s: %s\n  files: %s\n  build: %s\n' "${M_NAME[i]}" "${M_WHAT[i]}" "$files" "${M_TARGETS[i]:-(nothing)}"
    while IFS= read -r spec; do
      [ -n "$spec" ] && printf '  test:  %s\n' "$(spec_text "$spec")"
    done <<<"${M_TESTS[i]}"
  done
  echo "${#selected[@]} mutants"
  exit 0
fi

# copy_tree DEST: the tree but its git metadata and other build trees
# (build-asan/, build-lint/), timestamps kept. The chart tests' packages
# (.deps/npm/node_modules, .deps/bin: hundreds of MB, only ever read; npm
# install and helm.sh replace files there, never write into one) are hard
# links; the rest of .deps/ is copied, since helm.sh rewrites its *.mjs.
copy_tree() {
  local dest="$1" f d
  mkdir -p "$dest" || return 1
  shopt -s dotglob nullglob
  for f in *; do
    case "$f" in
      .git | build-*) ;;
      .deps)
        mkdir -p "$dest/.deps/npm" &&
          for d in .deps/* .deps/npm/*; do
            case "$d" in
              .deps/npm) ;;
              .deps/bin | .deps/npm/node_modules) cp -al "$d" "$dest/$d" ;;
              *) cp -a "$d" "$dest/$d" ;;
            esac || return 1
          done
        ;;
      *) cp -a "$f" "$dest/" || { echo "mutate.sh: cannot copy $f" >&2; return 1; } ;;
    esac
  done
  shopt -u dotglob nullglob
}

if [ -z "$inside" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "mutate.sh: run as root (the tests create network namespaces; the copies are mounted in private mount namespaces)" >&2
    exit 2
  fi
  [ -f build/CMakeCache.txt ] || { echo "mutate.sh: no build/ (run scripts/bootstrap.sh first)" >&2; exit 2; }
  jobs="${EF_MUTATE_JOBS:-$(nproc)}"
  [ "$jobs" -le "${#selected[@]}" ] || jobs="${#selected[@]}"
  work="$(mktemp -d /tmp/ef-mutate.XXXXXX)"
  start=$SECONDS
  mkdir -p "$work/logs" "$work/results"
  copy_tree "$work/pristine" || exit 2
  for ((w = 1; w <= jobs; w++)); do copy_tree "$work/tree$w" || exit 2; done
  echo "mutate: ${#selected[@]} mutants, $jobs at a time; the tree copied to $work ($((SECONDS - start)) s)"
  # Tests running side by side each put the host's forwarding sysctls back as
  # they found them, which another had changed: this run puts them back last.
  sysctls=()
  for key in net.ipv4.ip_forward net.ipv6.conf.all.forwarding; do sysctls+=("$key=$(sysctl -n "$key")"); done
  echo 0 >"$work/queue"
  : >"$work/baseline.failed"
  if [ "$baseline" -eq 1 ]; then
    unshare --mount --propagation private -- bash "$ROOT/scripts/mutate.sh" --inside "$work" baseline "${wanted[@]}"
  fi
  pids=()
  for ((w = 1; w <= jobs; w++)); do
    unshare --mount --propagation private -- bash "$ROOT/scripts/mutate.sh" --inside "$work" "worker$w" "${wanted[@]}" &
    pids+=("$!")
  done
  rc=0
  for pid in "${pids[@]}"; do wait "$pid" || rc=2; done
  sysctl -qw "${sysctls[@]}"
  killed=0
  bad=()
  echo
  echo "===== mutants ($((SECONDS - start)) s in all)"
  for i in "${selected[@]}"; do
    res="$work/results/${M_NAME[i]}"
    if [ -f "$res" ]; then
      cat "$res"
      read -r verdict _ <"$res"
    else
      verdict=broken
      printf '%-8s %-28s the run stopped before this mutant\n' broken "${M_NAME[i]}"
    fi
    if [ "$verdict" = killed ]; then killed=$((killed + 1)); else bad+=("${M_NAME[i]} ($verdict)"); fi
  done
  echo "${#selected[@]} mutants, $killed killed"
  if [ "${EF_MUTATE_KEEP:-0}" = 1 ]; then
    echo "mutate: scratch kept in $work"
  else
    rm -rf "$work"
  fi
  if [ ${#bad[@]} -gt 0 ]; then
    echo "mutate: not killed: ${bad[*]}" >&2
    exit 1
  fi
  exit "$rc"
fi

# --- inside a private mount namespace: $ROOT is a working copy --------------------

work="$inside"
case "$role" in
  baseline) TREE="$work/tree1" ;;
  worker*) TREE="$work/tree${role#worker}" ;;
  *) echo "mutate.sh: unknown role $role" >&2; exit 2 ;;
esac
PRISTINE="$work/pristine"
LOGS="$work/logs"
STAMP="$work/stamp.$role"
timeout_s="${EF_MUTATE_TEST_TIMEOUT:-300}"
mount --bind "$TREE" "$ROOT" || { echo "mutate.sh: cannot bind the copy over $ROOT" >&2; exit 2; }
cd "$ROOT" || exit 2
[ -f "$work/pristine.files" ] ||
  (cd "$PRISTINE" && find . ! -type d | LC_ALL=C sort) >"$work/pristine.files.$role"
[ -f "$work/pristine.files" ] || mv "$work/pristine.files.$role" "$work/pristine.files"

# Marks the time from which restore puts files back (2 s early: timestamps are coarse).
mark() { touch -d "@$(($(date +%s) - 2))" "$STAMP"; }

# Puts every file changed, made or removed since mark back as the pristine
# copy has it (timestamps included: make then sees nothing to rebuild).
restore() {
  local p rel
  while IFS= read -r -d '' p; do
    rel="${p#"$TREE"/}"
    if [ -e "$PRISTINE/$rel" ] || [ -L "$PRISTINE/$rel" ]; then
      rm -rf "$p" && cp -a "$PRISTINE/$rel" "$p"
    else
      rm -rf "$p"
    fi
  done < <(find "$TREE" -newer "$STAMP" ! -type d -print0)
  while IFS= read -r -d '' p; do
    rel="${p#"$TREE"/}"
    [ -d "$PRISTINE/$rel" ] || rm -rf "$p"
  done < <(find "$TREE" -mindepth 1 -depth -type d -newer "$STAMP" -print0)
  while IFS= read -r rel; do
    mkdir -p "$(dirname "$TREE/$rel")"
    cp -a "$PRISTINE/$rel" "$TREE/$rel"
  done < <(comm -23 "$work/pristine.files" <(cd "$TREE" && find . ! -type d | LC_ALL=C sort))
}

# run_test SPEC LOG: 0 the test passed, 1 it failed, 2 it ran nothing.
run_test() {
  local -a f
  IFS="$SEP" read -r -a f <<<"$1"
  local log="$2" ran failed rc
  case "${f[0]}" in
    bats)
      timeout -k 10 "$timeout_s" bats --formatter tap -f "${f[2]}" "${f[1]}" >"$log" 2>&1
      rc=$?
      ran=$(grep -Ec '^(not )?ok [0-9]+ ' "$log")
      failed=$(grep -Ec '^not ok [0-9]+ ' "$log")
      # A skip is no pass, and no kill either.
      if grep -Eq '^ok [0-9]+ .*# skip' "$log"; then return 2; fi
      [ "$ran" -gt 0 ] || return 2
      if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then return 1; fi
      return 0
      ;;
    unit)
      timeout -k 10 "$timeout_s" build/bin/unit_tests --test-case="${f[1]}" >"$log" 2>&1
      rc=$?
      # "[doctest] test cases: 1 | 0 passed | 1 failed | 184 skipped"
      ran=$(sed -n 's/^\[doctest\] test cases: *\([0-9]*\) .*/\1/p' "$log" | tail -n1)
      [ "${ran:-0}" -gt 0 ] || return 2
      [ "$rc" -eq 0 ] && return 0
      return 1
      ;;
  esac
  echo "unknown test kind ${f[0]}" >"$log"
  return 2
}

if [ "$role" = baseline ]; then
  echo "mutate: baseline: each test on the unmutated copy"
  declare -A done_spec=()
  for i in "${selected[@]}"; do
    while IFS= read -r spec; do
      if [ -z "$spec" ] || [ -n "${done_spec[$spec]:-}" ]; then continue; fi
      done_spec[$spec]=1
      mark
      start=$SECONDS
      log="$LOGS/baseline.$(printf '%s' "$spec" | md5sum | cut -c1-8).log"
      run_test "$spec" "$log"
      case $? in
        0) why="" ;;
        1) why="fails" ;;
        *) why="runs no test" ;;
      esac
      restore
      printf 'mutate: baseline %3ss %s %s\n' "$((SECONDS - start))" "$(spec_text "$spec")" "${why:-passes}"
      [ -z "$why" ] || printf '%s\t%s (log: %s)\n' "$spec" "$why" "$log" >>"$work/baseline.failed"
    done <<<"${M_TESTS[i]}"
  done
  exit 0
fi

declare -A base_fail=()
while IFS=$'\t' read -r spec why; do base_fail[$spec]="$why"; done <"$work/baseline.failed"

# The next mutant from the queue the workers share (an index into selected).
next_mutant() {
  local n
  {
    flock 9
    n="$(cat "$work/queue")"
    echo $((n + 1)) >"$work/queue"
  } 9>>"$work/queue.lock"
  [ "$n" -lt "${#selected[@]}" ] && echo "${selected[n]}"
}

while i="$(next_mutant)"; do
  name="${M_NAME[i]}"
  start=$SECONDS
  built=0
  verdict="" detail=""
  mark
  for k in ${M_EDITS[i]}; do
    if [ "${E_KIND[k]}" = rename ]; then
      why="$(apply_rename "${E_FILE[k]}" "${E_REPL[k]}")"
    else
      why="$(apply_edit "${E_FILE[k]}" "${E_FIND[k]}" "${E_REPL[k]}")"
    fi
    # shellcheck disable=SC2181 # the reason is in $why
    if [ $? -ne 0 ]; then
      verdict=broken detail="$why"
      break
    fi
  done
  if [ -z "$verdict" ] && [ -n "${M_TARGETS[i]// /}" ]; then
    # shellcheck disable=SC2086 # the targets split on spaces
    if ! cmake --build build -j"$(nproc)" --target ${M_TARGETS[i]} >"$LOGS/$name.build.log" 2>&1; then
      verdict=broken
      detail="does not build: $(grep -m1 -E 'error' "$LOGS/$name.build.log") (log: $LOGS/$name.build.log)"
    fi
  fi
  built=$((SECONDS - start))
  if [ -z "$verdict" ]; then
    n=0 passed_by="" killed_by="" nothing=""
    while IFS= read -r spec; do
      [ -n "$spec" ] || continue
      n=$((n + 1))
      if [ -n "${base_fail[$spec]:-}" ]; then
        nothing+="$(spec_text "$spec") ${base_fail[$spec]} without the mutant; "
        continue
      fi
      run_test "$spec" "$LOGS/$name.test$n.log"
      case $? in
        0) passed_by+="$(spec_text "$spec"); " ;;
        1) killed_by+="$(spec_text "$spec"); " ;;
        *) nothing+="$(spec_text "$spec") ran no test (log: $LOGS/$name.test$n.log); " ;;
      esac
    done <<<"${M_TESTS[i]}"
    if [ -n "$nothing" ]; then
      verdict=broken detail="${nothing%; }"
    elif [ -n "$passed_by" ]; then
      verdict=SURVIVED detail="still passes: ${passed_by%; }"
    else
      verdict=killed detail="by ${killed_by%; }"
    fi
  fi
  restore
  line="$(printf '%-8s %-28s build %3ss, tests %3ss  %s' "$verdict" "$name" "$built" \
    "$((SECONDS - start - built))" "$detail")"
  echo "$line" | tee "$work/results/$name"
done
exit 0
