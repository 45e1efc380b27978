#!/usr/bin/env bash
# The test command: with RabbitMQ, Redis, s3s-fs and Azurite installed and started when missing (and
# stopped after), checks the dependency tree (cargo deny), validates the deployment manifests, builds
# the binaries the system tests launch and runs every test of the workspace.
set -euo pipefail
# A clean clone builds once: incremental state would only take disk (gigabytes for the workspace's
# crates) that nothing reuses.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."

tests() {
  scripts/deny.sh
  scripts/validate-manifests.sh
  # `--tests` as well as `--bins`: a build that has test targets in it turns the dev-dependencies'
  # features on for every crate, as the test run's own build does, so the binaries and the tests share
  # one set of compiled dependencies. With `--bins` alone every crate below the binaries was compiled
  # twice, once per feature set, and the second copy filled CI's disk.
  # What a run on a machine with little disk needs to know when the build stops (a clean build's
  # target folder peaks near 3.3 GiB).
  disk_free() { df -h --output=avail . | tail -1 | tr -d ' '; }
  echo "disk: $(disk_free) free before the build"
  cargo build --locked --workspace --bins --tests
  echo "disk: target folder $(du -sh target 2>/dev/null | cut -f1), $(disk_free) free after the build"
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
