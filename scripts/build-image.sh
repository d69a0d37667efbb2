#!/usr/bin/env bash
# Builds the container image (Dockerfile: a static binary in an empty image, running as nobody)
# with whichever of docker, podman or buildah is installed and working (`make image`).
# Usage: scripts/build-image.sh [IMAGE]   (default prom-adapter:dev; or $IMAGE)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
image=${1:-${IMAGE:-prom-adapter:dev}}
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  exec docker build -t "$image" "$root"
elif command -v podman >/dev/null; then
  exec podman build -t "$image" "$root"
elif command -v buildah >/dev/null; then
  exec buildah bud -t "$image" "$root"
fi
{
  echo "make image: none of docker (with a running daemon), podman or buildah is here."
  if command -v docker >/dev/null; then
    echo "  docker is installed but its daemon does not answer (\`docker info\` fails)."
  fi
  echo "  Install one (e.g. apt-get install podman), or use the published image:"
  echo "  ghcr.io/prom-adapter/prom-adapter:<version> (see docs/install.md)."
} >&2
exit 1
