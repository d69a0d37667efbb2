#!/usr/bin/env bash
# Installs what the demo and the tests need and a fresh Debian machine lacks: Prometheus and
# VictoriaMetrics (Debian packages, without starting their services), python3, curl.
set -euo pipefail
need=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${need[*]}; run as root or: sudo apt-get install --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
# The packages' postinst scripts would start system services on 0.0.0.0; policy-rc.d exit 101 denies that.
policy=/usr/sbin/policy-rc.d backup=""
if [ -e "$policy" ]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
restore() { if [ -n "$backup" ]; then cp -p "$backup" "$policy"; rm -f "$backup"; else rm -f "$policy"; fi; }
trap restore EXIT
apt=(apt-get -o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${need[@]}" >&2 || {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update >&2
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${need[@]}" >&2
}
