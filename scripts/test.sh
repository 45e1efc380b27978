#!/usr/bin/env bash
# The test command: installs and starts RabbitMQ and Redis when missing, builds the binaries the
# system tests launch, runs every test of the workspace, and stops the services it started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh install
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT

export AMQP_URL=${AMQP_URL:-amqp://127.0.0.1:5672/%2f}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

cargo build --locked --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast "$@"
else
  cargo test --locked --workspace --no-fail-fast "$@"
fi
