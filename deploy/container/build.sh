#!/bin/sh
# Builds the kura image in two steps, with nothing pulled from a registry:
#   1. a static kura binary, built on this host with the Go toolchain;
#   2. the image, FROM scratch (deploy/container/Dockerfile), from a small
#      build context holding only that binary and an empty data directory.
#
# Usage: deploy/container/build.sh [TAG]    (default tag: kura:latest)
# Run it from anywhere inside the repository.
set -eu

tag=${1:-kura:latest}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT INT TERM

# CGO_ENABLED=0: a static binary that runs with no libc. It leaves out the
# PKCS#11 root (seal: pkcs11), which needs cgo; see the Dockerfile.
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$ctx/kura" ./cmd/kura)
mkdir -m 0700 "$ctx/data"

docker build -t "$tag" -f "$here/Dockerfile" "$ctx"
echo "built $tag"
