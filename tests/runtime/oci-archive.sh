#!/usr/bin/env bash
# Packs a directory into a one-layer OCI image archive that
# `ctr images import` takes (no registry needed): oci-layout, index.json naming
# the image in its io.containerd.image.name annotation, the manifest, the
# config and the layer (a gzipped tar of ROOTFS) under blobs/sha256/.
# The archive is reproducible: same ROOTFS and arguments, same bytes.
#
# Usage: oci-archive.sh NAME OUT.tar ROOTFS [--user UID] [--] ENTRYPOINT...
#   NAME     the image reference, e.g. localhost/ef-pause:1
set -euo pipefail
name=${1:?usage: oci-archive.sh NAME OUT.tar ROOTFS [--user UID] [--] ENTRYPOINT...}
out=${2:?usage: oci-archive.sh NAME OUT.tar ROOTFS [--user UID] [--] ENTRYPOINT...}
rootfs=${3:?usage: oci-archive.sh NAME OUT.tar ROOTFS [--user UID] [--] ENTRYPOINT...}
shift 3
user=0
if [ "${1:-}" = --user ]; then
  user=$2
  shift 2
fi
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "oci-archive.sh: no entrypoint given" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/oci-archive.XXXXXX")
trap 'rm -rf "$work"' EXIT
blobs="$work/image/blobs/sha256"
mkdir -p "$blobs"

# put FILE: moves FILE into blobs/ under its digest; prints "DIGEST SIZE".
put() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$blobs/$digest"
  echo "sha256:$digest $size"
}

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
diff_id="sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
gzip -n -9 "$work/layer.tar"
read -r layer_digest layer_size < <(put "$work/layer.tar.gz")

jq -cn --arg user "$user" --arg diff "$diff_id" --args \
  '{architecture: "amd64", os: "linux",
    config: {User: $user, Entrypoint: $ARGS.positional, WorkingDir: "/"},
    rootfs: {type: "layers", diff_ids: [$diff]},
    history: [{created_by: "tests/runtime/oci-archive.sh"}]}' "$@" >"$work/config.json"
read -r config_digest config_size < <(put "$work/config.json")

jq -cn --arg cd "$config_digest" --argjson cs "$config_size" --arg ld "$layer_digest" --argjson ls "$layer_size" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]}' \
  >"$work/manifest.json"
read -r manifest_digest manifest_size < <(put "$work/manifest.json")

jq -cn --arg md "$manifest_digest" --argjson ms "$manifest_size" --arg name "$name" \
  '{schemaVersion: 2,
    manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                 platform: {architecture: "amd64", os: "linux"},
                 annotations: {"io.containerd.image.name": $name,
                               "org.opencontainers.image.ref.name": ($name | sub(".*:"; ""))}}]}' \
  >"$work/image/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/image/oci-layout"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/image" -cf "$out.tmp" .
mv "$out.tmp" "$out"
