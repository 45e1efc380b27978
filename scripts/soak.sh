#!/usr/bin/env bash
# Accelerated soak: many short rounds of a stability schedule through the coordinator, two workers
# and the collector, against real RabbitMQ and Redis; prints each process's peak RSS early in the run
# and at its end. Starts the services when needed, stops what it started.
#   CLOUDBENCH_SOAK_ROUNDS=600  CLOUDBENCH_SOAK_EVERY_MS=200
set -euo pipefail
cd "$(dirname "$0")/.."
# --tests: the bench's dev-dependency features, so the binaries share its compiled dependencies.
cargo build --locked --workspace --bins --tests
exec scripts/services.sh run cargo bench --locked --profile dev -p system-tests --bench soak
