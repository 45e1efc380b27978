#!/usr/bin/env bash
# The detector on a GPU, in two halves, for a GPU machine that has no network and no package registries.
#
#   scripts/gpu-check.sh build [DIR]   on a build machine (crates.io and Debian reachable): one stripped
#                                      `detector` built with --features wgpu (xz-compressed; `run`
#                                      unpacks it with xz or Python's lzma), the Vulkan loader it
#                                      opens, the fixture (weights, ONNX Runtime's reference outputs),
#                                      and this script, in DIR (default target/gpu-check), under 60 MiB.
#   DIR/gpu-check.sh run [DIR]         on the GPU machine: `detector selfcheck` on wgpu then on the CPU
#                                      (the reference comparison and images/s at batch 1, 8 and 32 on
#                                      each, the GPU's speed against the CPU's), within 8 minutes;
#                                      writes DIR/figures.json.
#
#   CLOUDBENCH_GPU_DEVICES=wgpu,flex  devices checked, the last the baseline (lavapipe is Mesa's
#                                     software Vulkan, flex the CPU alone: `run` on a machine without
#                                     a GPU checks the plumbing)
#   CLOUDBENCH_GPU_SECONDS=10         timed seconds per device and batch
#   CLOUDBENCH_GPU_BATCHES=1,8,32     batch sizes
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

build() {
  local repo out
  repo="$(cd "$here/.." && pwd)"
  out="$(mkdir -p "${1:-$repo/target/gpu-check}" && cd "${1:-$repo/target/gpu-check}" && pwd)"
  cd "$repo"
  if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 >/dev/null
  fi
  cargo build --locked --release -p detector --features wgpu --bin detector
  rm -rf "$out"
  mkdir -p "$out/fixtures" "$out/lib"
  # Stripped, the wgpu build is ~80 MiB (wgpu, naga, the cubecl kernels); xz makes it ~13.
  strip -o "$out/detector" target/release/detector
  xz -T0 -6 -f "$out/detector"
  cp detector/fixtures/yolov8n-random.onnx detector/fixtures/fixture.json detector/fixtures/*.f32 "$out/fixtures/"
  # wgpu opens the Vulkan loader at run time; the GPU's driver brings its own ICD.
  cp -L "$(ldconfig -p | awk '/libvulkan.so.1 / {print $NF; exit}')" "$out/lib/libvulkan.so.1"
  cp "$here/gpu-check.sh" "$out/"
  local mib
  mib=$(du -sm "$out" | cut -f1)
  echo "gpu-check: $out, ${mib} MiB"
  [ "$mib" -lt 60 ] || { echo "gpu-check: $out is ${mib} MiB, over 60" >&2; exit 1; }
}

run() {
  local dir
  dir="$(cd "${1:-$here}" && pwd)"
  export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [ ! -x "$dir/detector" ]; then
    if command -v xz >/dev/null; then
      xz -dc "$dir/detector.xz" >"$dir/detector"
    else
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$dir/detector.xz" "$dir/detector"
    fi
    chmod +x "$dir/detector"
  fi
  # What the machine offers, for the record (none of it is required).
  {
    echo "uname: $(uname -a)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null
  } >"$dir/machine.txt" 2>&1 || true
  cat "$dir/machine.txt"
  timeout 480 "$dir/detector" selfcheck --fixtures "$dir/fixtures" \
    --devices "${CLOUDBENCH_GPU_DEVICES:-wgpu,flex}" --batches "${CLOUDBENCH_GPU_BATCHES:-1,8,32}" \
    --seconds "${CLOUDBENCH_GPU_SECONDS:-10}" --out "$dir/figures.json" >/dev/null
  echo "gpu-check: $dir/figures.json"
}

case "${1:-}" in
  build) shift; build "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 build [DIR] | run [DIR]" >&2; exit 2 ;;
esac
