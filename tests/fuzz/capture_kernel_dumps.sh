#!/usr/bin/env bash
# Writes fuzz_netlink seeds the kernel itself produced: what read_ruleset
# receives when it dumps table inet egress_fence (NEW* replies with handles,
# NLM_F_MULTI, DONE and acks, elements as the kernel lists them), captured with
# strace from ef_nft_roundtrip in a throwaway netns. Acks, errors and DONE are
# dropped, as lib/nft's socket drops them before decoding. Needs root, strace,
# xxd, python3 and a build with tests/tools (build/bin/ef_nft_roundtrip).
# Usage: tests/fuzz/capture_kernel_dumps.sh [BIN_DIR] [OUT_DIR]
#        (defaults: build/bin tests/fuzz/corpus/fuzz_netlink)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-build/bin}"
out="${2:-tests/fuzz/corpus/fuzz_netlink}"
ns="ef-fuzzcap-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns"' EXIT
mkdir -p "$out"

# The bytes of every recvmsg of the read, in order, from strace's hex dump.
capture() {
  local name="$1" trace
  trace="$(mktemp)"
  strace -f -e trace=recvmsg -e read=all -o "$trace" "$bin/ef_nft_roundtrip" "/var/run/netns/$ns" read >/dev/null || true
  grep -E '^ \| [0-9a-f]{5}  ' "$trace" | cut -c11-58 | xxd -r -p | python3 -c '
import struct, sys
data, out, off = sys.stdin.buffer.read(), bytearray(), 0
while off + 16 <= len(data):
    length, kind = struct.unpack_from("=IH", data, off)
    if length < 16:
        break
    if kind not in (2, 3):  # NLMSG_ERROR (acks and errors), NLMSG_DONE
        out += data[off:off + length]
    off += (length + 3) & ~3
sys.stdout.buffer.write(out)' >"$out/$name"
  rm -f "$trace"
  echo "$out/$name: $(wc -c <"$out/$name") bytes"
}

"$bin/ef_nft_roundtrip" "/var/run/netns/$ns" apply >/dev/null
capture kernel-dump-sample.bin
# Tampered with the way an admin with nft would: CHECK must read what it does not build.
ip netns exec "$ns" nft insert rule inet egress_fence output meta mark 0x2a counter accept
ip netns exec "$ns" nft add element inet egress_fence exempt_uids '{ 4242 }'
capture kernel-dump-tampered.bin
"$bin/ef_nft_roundtrip" "/var/run/netns/$ns" big 40 >/dev/null
capture kernel-dump-big.bin
