#!/usr/bin/env bash
# Pipeline benchmark: enqueue rate and worker overhead against real RabbitMQ and Redis, each printed
# beside a peer measured in the same run. Starts the services when needed, stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/services.sh run cargo bench --locked -p system-tests --bench pipeline
