#!/usr/bin/env bash
# `make dist`: the release binary and the packaged chart in dist/, with their SHA-256 checksums.
# Expects `cargo build --release --locked` to have run (make dist does it first).
# `scripts/dist.sh --check` (make test) packages the debug build into a temporary directory
# instead, and removes it: the same steps without the release build, which only a release needs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm=${PROM_ADAPTER_TOOLS:-/var/tmp/prom-adapter-tools}/helm/helm
target=${CARGO_TARGET_DIR:-$root/target}
[ -x "$helm" ] || { echo "dist: $helm is missing; run \`make deps\`" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
arch=$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "${1:-}" in
  --check) profile=debug dist=$work/dist ;;
  "") profile=release dist=$root/dist ;;
  *) echo "usage: scripts/dist.sh [--check]" >&2; exit 2 ;;
esac
rm -rf "$dist"
mkdir -p "$dist"
install -m 0755 "$target/$profile/prom-adapter" "$dist/prom-adapter-$version-linux-$arch"
# As the image does (Dockerfile): no debug symbols.
command -v strip >/dev/null && strip "$dist/prom-adapter-$version-linux-$arch"
# helm writes its cache and config under HOME.
HOME=$work "$helm" package "$root/charts/prom-adapter" --destination "$dist" >/dev/null
(cd "$dist" && sha256sum -- * > SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
# The binary runs, and says which version it is.
"$dist/prom-adapter-$version-linux-$arch" --version | grep -qF "$version" \
  || { echo "dist: the packaged binary does not report version $version" >&2; exit 1; }
ls -l "$dist"
