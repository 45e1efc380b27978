#!/usr/bin/env bash
# The fault-injection suite: many trials of every fault (workers killed at each crash point and at
# random, RabbitMQ and Redis restarted, coordinator and collector killed, the collector's disk full,
# undecodable messages) through the binaries against real RabbitMQ and Redis; prints fault, trials,
# batches expected, collected, lost, duplicated. Starts the services when needed, stops what it started.
#   CLOUDBENCH_FAULT_TRIALS=5
set -euo pipefail
cd "$(dirname "$0")/.."
# --tests: the bench's dev-dependency features, so the binaries share its compiled dependencies.
cargo build --locked --workspace --bins --tests
exec scripts/services.sh run cargo bench --locked --profile dev -p system-tests --bench faults
