#!/usr/bin/env bash
# Builds the image of the Dockerfile without a Docker daemon and without
# pulling anything: the binaries are compiled here (static, as the
# Dockerfile's build stage compiles them), laid out in dist/rootfs/, and
# buildah builds the Dockerfile with ROOTFS=prebuilt, whose only base is
# scratch. buildah runs as root with the vfs storage driver and chroot
# isolation, which need no kernel overlay or user namespaces.
#
#   bash scripts/image.sh [tag]        # make image; default tag: dev
#   buildah --storage-driver vfs push wacampaign/wacampaign:dev docker-archive:/tmp/wacampaign.tar
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-dev}"
image="wacampaign/wacampaign:$tag"
if ! command -v buildah >/dev/null 2>&1; then
  echo "buildah is not installed: apt-get install buildah (or build the Dockerfile with docker build .)" >&2
  exit 1
fi

root=dist/rootfs
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/app" "$root/etc/ssl/certs"
CGO_ENABLED=0 "${GO:-go}" build -trimpath -tags timetzdata -ldflags="-s -w" \
  -o "$root/usr/local/bin/" ./cmd/campaign-api ./cmd/campaign-worker
mkdir -m 1777 "$root/tmp"
cp -r templates "$root/app/templates"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

buildah --storage-driver vfs bud --isolation chroot --build-arg ROOTFS=prebuilt -t "$image" .
echo "built $image"
