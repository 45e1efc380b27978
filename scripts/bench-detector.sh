#!/usr/bin/env bash
# Detector benchmark: YOLOv8n 640×640, batch 1 and 8, 2 threads, this crate (and Burn Flex on tensor
# ops alone) against ONNX Runtime on the same ONNX file (the committed random-weight fixture unless
# CLOUDBENCH_WEIGHTS names another).
#   CLOUDBENCH_BENCH_SECONDS=20     timed seconds per point
#   CLOUDBENCH_DETECTOR_DEVICE=flex  or wgpu (Vulkan; builds the wgpu feature), lavapipe, cuda
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check onnxruntime==1.32.0 numpy
features=()
case "${CLOUDBENCH_DETECTOR_DEVICE:-flex}" in
  wgpu | vulkan | lavapipe) features=(--features wgpu) ;;
  cuda) features=(--features cuda) ;;
esac
exec cargo bench --locked -p detector "${features[@]}" --bench inference
