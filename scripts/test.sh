#!/usr/bin/env bash
# The test command: with RabbitMQ, Redis, s3s-fs and Azurite installed and started when missing (and
# stopped after), checks the dependency tree (cargo deny), validates the deployment manifests, builds
# the binaries the system tests launch and runs every test of the workspace.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."

tests() {
  scripts/deny.sh
  scripts/validate-manifests.sh
  cargo build --locked --workspace --bins
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast "$@"
  else
    cargo test --locked --workspace --no-fail-fast "$@"
  fi
}

if [ "${1:-}" = "--inside" ]; then
  shift
  tests "$@"
else
  exec scripts/services.sh run "$self" --inside "$@"
fi
