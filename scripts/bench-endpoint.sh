#!/usr/bin/env bash
# Serving benchmark: the endpoint server against the detector in process and against a Python Flask +
# ONNX Runtime server (scripts/flask_peer.py) on the same model, at increasing concurrency.
#   CLOUDBENCH_BENCH_IMAGES=48  CLOUDBENCH_BENCH_CONCURRENCY=1,2,4,8,16  CLOUDBENCH_BENCH_IMGSZ=640
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-bench.txt
exec cargo bench --locked -p endpoint --bench serving
