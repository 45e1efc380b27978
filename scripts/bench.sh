#!/usr/bin/env bash
# Pipeline benchmark: enqueue rate and worker overhead against real RabbitMQ and Redis, each printed
# beside a peer measured in the same run. Starts the services when needed, stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh install
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
export AMQP_URL=${AMQP_URL:-amqp://127.0.0.1:5672/%2f}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
cargo bench --locked -p system-tests --bench pipeline
