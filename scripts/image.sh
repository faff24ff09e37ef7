#!/usr/bin/env bash
# Builds the egress-fence image with buildah from the portable bundle the build
# makes (install/Containerfile: FROM scratch, the bundle under
# /opt/egress-fence/bin), offline: no base image, no registry. The one recipe
# for the tests (a local tag) and for a release (--push).
#
# Before building it proves the image's root runs with nothing else: the
# plugin answers CNI_COMMAND=VERSION in a chroot holding only that root.
#
# Usage: scripts/image.sh [--bundle DIR] [--version V] [--tag REF] [--push DEST]
#   --bundle DIR  the bundle to ship (default: build/bundle, made by
#                 `cmake --build build --target bundle` first)
#   --version V   the image's version label and tag (default: the project's
#                 version in CMakeLists.txt)
#   --tag REF     the local name (default: localhost/egress-fence:V)
#   --push DEST   push it afterwards, e.g. docker://registry.example.com/egress-fence:V
#                 (credentials: `buildah login` beforehand, or REGISTRY_AUTH_FILE)
# buildah's storage is its default one, or whatever CONTAINERS_STORAGE_CONF and
# CONTAINERS_CONF name (the runtime suite uses private ones). Prints the image id.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

bundle="" version="" tag="" push=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --push) push="$2"; shift 2 ;;
    *) echo "image.sh: unknown argument $1 (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done
if [ -z "$version" ]; then
  version="$(sed -nE 's/^project\(egress-fence VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")"
fi
tag="${tag:-localhost/egress-fence:$version}"
if [ -z "$bundle" ]; then
  cmake --build "$root/build" --target bundle >/dev/null
  bundle="$root/build/bundle"
fi
command -v buildah >/dev/null || { echo "image.sh: buildah is not installed (scripts/bootstrap.sh installs it)" >&2; exit 1; }

context="$(mktemp -d "${TMPDIR:-/tmp}/ef-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/opt/egress-fence/bin"
cp -a "$bundle/." "$context/opt/egress-fence/bin/"

# The root must stand alone: a missing library or loader shows here, not on a
# node. The plugin, and egress-fence-ctl with the libraries only it links
# (prometheus-cpp, civetweb, zlib: its metrics).
if ! out="$(env -i CNI_COMMAND=VERSION "$(command -v chroot)" "$context" /opt/egress-fence/bin/egress-fence </dev/null 2>&1)" ||
  ! grep -q supportedVersions <<<"$out"; then
  echo "image.sh: the bundle does not run in an empty root: $out" >&2
  exit 1
fi
if ! out="$(env -i "$(command -v chroot)" "$context" /opt/egress-fence/bin/egress-fence-ctl metrics --netns-dir /none </dev/null 2>&1)" ||
  ! grep -q '^egress_fence_build_info' <<<"$out"; then
  echo "image.sh: egress-fence-ctl does not run in an empty root: $out" >&2
  exit 1
fi

# --timestamp 0: the same bundle gives the same image, whenever it is built.
buildah bud --quiet --timestamp 0 --layers=false -f "$root/install/Containerfile" \
  --build-arg VERSION="$version" -t "$tag" "$context"
if [ -n "$push" ]; then
  buildah push --quiet "$tag" "$push"
fi
