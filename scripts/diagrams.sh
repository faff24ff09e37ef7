#!/usr/bin/env bash
# Draws every docs/diagrams/*.dot as an SVG and a PNG beside it, with
# graphviz's dot (Debian: graphviz), so the pages show the pictures without a
# build. Run it after changing a .dot file and commit what it writes;
# bats/docs.bats fails when a committed picture is not what its source draws.
# Usage: scripts/diagrams.sh [OUT_DIR]   (default: docs/diagrams itself)
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

if ! command -v dot >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "diagrams.sh: dot missing; apt-get install graphviz, or run as root" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
fi

out="${1:-docs/diagrams}"
mkdir -p "$out"
for src in docs/diagrams/*.dot; do
  name="$(basename "${src%.dot}")"
  dot -Tsvg "$src" -o "$out/$name.svg"
  dot -Tpng -Gdpi=96 "$src" -o "$out/$name.png"
done
