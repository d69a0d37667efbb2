#!/usr/bin/env bash
# `make dist`: the release binary and the packaged chart in dist/, with their SHA-256 checksums.
# Expects `cargo build --release --locked` to have run (make dist does it first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm=${PROM_ADAPTER_TOOLS:-/var/tmp/prom-adapter-tools}/helm/helm
target=${CARGO_TARGET_DIR:-$root/target}
[ -x "$helm" ] || { echo "dist: $helm is missing; run \`make deps\`" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
arch=$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')
dist=$root/dist
rm -rf "$dist"
mkdir -p "$dist"
install -m 0755 "$target/release/prom-adapter" "$dist/prom-adapter-$version-linux-$arch"
# As the image does (Dockerfile): no debug symbols.
command -v strip >/dev/null && strip "$dist/prom-adapter-$version-linux-$arch"
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
# helm writes its cache and config under HOME.
HOME=$home "$helm" package "$root/charts/prom-adapter" --destination "$dist" >/dev/null
(cd "$dist" && sha256sum -- * > SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
ls -l "$dist"
