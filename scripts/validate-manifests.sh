#!/usr/bin/env bash
# Validates the deployment manifests offline: compose.yaml with docker-compose's own parser (Debian's
# 1.29), and every Kubernetes overlay rendered with `kubectl kustomize` and checked strictly against the Kubernetes 1.31 schemas with
# kubernetes-validate. KEDA's ScaledObject and TriggerAuthentication have no schema there: they are
# reported, not checked. Installs what it needs when missing (root or sudo for apt).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "validate-manifests: kubectl (with its kustomize) is needed to render k8s/overlays and is not on PATH" >&2; exit 1; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v docker-compose >/dev/null; then
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose >/dev/null
fi
# The validator and PyYAML live in their own virtual environment under target/ (kept between runs).
venv=target/manifests-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 pyyaml==6.0.3
fi

docker-compose -f compose.yaml config -q
echo "compose.yaml: valid"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for overlay in k8s/overlays/*/; do
  name="$(basename "$overlay")"
  kubectl kustomize "$overlay" > "$out/$name.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet -k 1.31.0 "$out/$name.yaml"
  echo "k8s/overlays/$name: $(grep -c '^kind:' "$out/$name.yaml") resources valid"
done
