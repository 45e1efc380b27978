#!/usr/bin/env bash
# Installs, starts and stops the services the tests and a one-host deployment need: RabbitMQ and
# Redis, on loopback (`install` also brings Chromium, which the report test drives).
# Usage: scripts/services.sh install|start|stop|status
#        scripts/services.sh run COMMAND...   (install, start, run COMMAND with AMQP_URL and REDIS_URL
#                                             set, then stop what was started, whatever COMMAND did)
# `start` leaves running services alone and records what it started, so `stop` stops only those.
set -euo pipefail

STATE_DIR=${CLOUDBENCH_SERVICES_STATE:-/tmp/cloudbench-services}
REDIS_PORT=${CLOUDBENCH_REDIS_PORT:-6379}
mkdir -p "$STATE_DIR"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install() {
  local missing=()
  command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  # Not a service: the browser the report's rendering test opens the HTML report in.
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The Debian package may start a broker bound to every address; ours listens on loopback only.
  if ! grep -q '^NODENAME=rabbit@localhost' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null; then
    printf 'NODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\n' | as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null
  fi
}

rabbit_up() { as_root /usr/sbin/rabbitmqctl -q status >/dev/null 2>&1; }
redis_up() { redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start() {
  if rabbit_up; then
    echo "rabbitmq already running"
  else
    as_root /usr/sbin/rabbitmq-server -detached
    touch "$STATE_DIR/rabbitmq"
    for _ in $(seq 1 120); do rabbit_up && break; sleep 0.5; done
    rabbit_up || { echo "rabbitmq did not start" >&2; exit 1; }
    as_root /usr/sbin/rabbitmqctl -q await_startup >/dev/null 2>&1 || true
    echo "rabbitmq started"
  fi
  if redis_up; then
    echo "redis already running"
  else
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --dir "$STATE_DIR" --logfile "$STATE_DIR/redis.log"
    touch "$STATE_DIR/redis"
    for _ in $(seq 1 60); do redis_up && break; sleep 0.2; done
    redis_up || { echo "redis did not start" >&2; exit 1; }
    echo "redis started on port $REDIS_PORT"
  fi
}

stop() {
  if [ -f "$STATE_DIR/redis" ]; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$STATE_DIR/redis"
  fi
  if [ -f "$STATE_DIR/rabbitmq" ]; then
    as_root /usr/sbin/rabbitmqctl -q stop >/dev/null 2>&1 || true
    rm -f "$STATE_DIR/rabbitmq"
  fi
}

status() {
  rabbit_up && echo "rabbitmq: up" || echo "rabbitmq: down"
  redis_up && echo "redis: up" || echo "redis: down"
}

case "${1:-}" in
  run)
    shift
    install
    start
    trap stop EXIT
    export AMQP_URL=${AMQP_URL:-amqp://127.0.0.1:5672/%2f}
    export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
    "$@"
    ;;
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status|run COMMAND..." >&2; exit 2 ;;
esac
