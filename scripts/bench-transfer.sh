#!/usr/bin/env bash
# Transfer benchmark: the worker's S3, Azure Blob and Cloud Storage phases against boto3,
# azure-storage-blob and google-cloud-storage on the same local servers (s3s-fs, Azurite,
# fake-gcs-server), same 1,024 images, same concurrency. Installs the Python
# SDKs (pinned) and starts the servers when needed. Options through the environment:
#   CLOUDBENCH_BENCH_CONCURRENCY=8,32   requests in flight to compare at
#   CLOUDBENCH_BENCH_TRIALS=3           runs per point (the median is printed)
#   CLOUDBENCH_BENCH_PLATFORMS=s3,azure,gcs
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-bench.txt
exec scripts/services.sh run cargo bench --locked -p system-tests --bench transfer
