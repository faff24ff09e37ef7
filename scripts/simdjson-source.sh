#!/usr/bin/env bash
# Prints the path of simdjson's one-file implementation (simdjson.cpp) taken
# from Debian's own source package of the libsimdjson-dev installed here, so
# the plugin can link simdjson in instead of loading libsimdjson.so (issue 19).
#
# Why: Debian ships simdjson as a shared library only, and libsimdjson.so
# needs libstdc++.so and libgcc_s.so. Loading those three costs every ADD
# process ~0.6-1 ms of CPU on this machine (relocations, libstdc++'s and
# libgcc_s's constructors, which run cpuid, a VM exit here), which is the
# gap between a small ADD and the static floor. With simdjson compiled in,
# the plugin links libstdc++ and libgcc from their archives too
# (CMakeLists.txt, EF_SIMDJSON_SOURCE).
#
# The source is Debian's: the .orig tarball of the installed version, from
# the Debian archive's pool (the same host apt uses), checked against the
# SHA-256 its .dsc states (pinned below), and its simdjson.h must be byte for
# byte the one libsimdjson-dev installed. Debian applies no patch to it. The
# tarball is kept in .deps/src/ (downloaded once). On any mismatch or failure
# it says why on stderr and prints nothing: the build then links the shared
# library, as before (slower, not less safe).
#
# Usage: scripts/simdjson-source.sh     (prints a path, or nothing)
# Env:   EF_DEBIAN_MIRROR  the archive (default http://deb.debian.org/debian)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

version=3.0.1
debian_version=3.0.1-1
tarball="simdjson_${version}.orig.tar.gz"
sha256=156b1bc5eb0561b2bd166b46d191fd3d95a3e709cc63761477d3b7aec2b6e9ed
mirror="${EF_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
dir=.deps/src
out="$dir/simdjson-$version"

say() { echo "simdjson-source: $*; linking the shared library" >&2; }

installed="$(dpkg-query -W -f='${Version}' libsimdjson-dev 2>/dev/null)"
[ "$installed" = "$debian_version" ] || { say "libsimdjson-dev is ${installed:-not installed}, not $debian_version"; exit 0; }

if [ ! -f "$out/simdjson.cpp" ]; then
  mkdir -p "$dir"
  if [ ! -f "$dir/$tarball" ]; then
    curl -fsS --retry 2 --max-time 120 -o "$dir/$tarball.part" "$mirror/pool/main/s/simdjson/$tarball" ||
      { rm -f "$dir/$tarball.part"; say "cannot download $mirror/pool/main/s/simdjson/$tarball"; exit 0; }
    mv "$dir/$tarball.part" "$dir/$tarball"
  fi
  if ! echo "$sha256  $dir/$tarball" | sha256sum -c --quiet - >/dev/null 2>&1; then
    rm -f "$dir/$tarball"
    say "$tarball does not have the SHA-256 Debian's .dsc states"
    exit 0
  fi
  rm -rf "$out.part"
  mkdir -p "$out.part"
  tar -xzf "$dir/$tarball" -C "$out.part" --strip-components=2 \
    "simdjson-$version/singleheader/simdjson.cpp" "simdjson-$version/singleheader/simdjson.h" ||
    { rm -rf "$out.part"; say "cannot extract $tarball"; exit 0; }
  rm -rf "$out"
  mv "$out.part" "$out"
fi
cmp -s "$out/simdjson.h" /usr/include/simdjson.h ||
  { say "$out/simdjson.h is not the simdjson.h libsimdjson-dev installed"; exit 0; }
echo "$(pwd)/$out/simdjson.cpp"
