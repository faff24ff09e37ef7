#!/usr/bin/env bash
# Lays out the portable plugin bundle (DESIGN.md "Portability of the installed
# binary"): OUT/egress-fence and OUT/egress-fence-ctl are the static launcher;
# OUT/egress-fence.d/ holds <name>.real, the ELF loader and every shared library
# the two programs need, copied from this build machine. Nothing of the host the
# bundle later runs on is used.
# Usage: scripts/bundle.sh BIN_DIR OUT_DIR   (BIN_DIR: build/bin)
set -euo pipefail
bin=${1:?usage: bundle.sh BIN_DIR OUT_DIR}
out=${2:?usage: bundle.sh BIN_DIR OUT_DIR}
programs=(egress-fence egress-fence-ctl)

tmp="$out.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/egress-fence.d"
d="$tmp/egress-fence.d"

for p in "${programs[@]}"; do
  install -m 0755 "$bin/$p" "$d/$p.real"
  strip --strip-debug "$d/$p.real"
  install -m 0755 "$bin/egress-fence-launcher" "$tmp/$p"
  strip --strip-debug "$tmp/$p"
  # `ldd` lines: "libfoo.so.1 => /path/libfoo.so.1 (0x...)" and the loader "/lib64/ld-linux-x86-64.so.2 (0x...)".
  while read -r name arrow path _; do
    if [ "$arrow" = "=>" ] && [ -f "$path" ]; then
      install -m 0644 "$(readlink -f "$path")" "$d/$name"
    elif [[ "$name" == /*ld-linux* ]]; then
      install -m 0755 "$(readlink -f "$name")" "$d/$(basename "$name")"
    fi
  done < <(ldd "$bin/$p")
done

if ! [ -x "$d/ld-linux-x86-64.so.2" ]; then
  echo "bundle.sh: no ld-linux-x86-64.so.2 found for ${programs[*]}" >&2
  exit 1
fi
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "bundle.sh: $out ($(du -sh "$out" | cut -f1))"
