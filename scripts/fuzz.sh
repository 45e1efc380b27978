#!/usr/bin/env bash
# Fuzzes the parsers that take outside input with cargo fuzz (libFuzzer, AddressSanitizer): job and
# metrics messages off the queues, the collector's metrics log on disk, run specs, dataset manifests and
# the `analyzer stats` input. Each target runs SECONDS (default 60) from the corpus it built before.
# cargo fuzz wants nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP=1.
# A crash leaves its input in fuzz/artifacts/TARGET/; keep it as a regression test beside the code
# it broke (see analyzer/tests/fuzz_regressions.rs) and fix the code.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(batch_job batch_metrics metrics_log run_spec manifest stats_samples)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz --version 0.13.2
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target"
  echo "== $target: ${SECONDS_PER_TARGET}s"
  cargo fuzz run "$target" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 2>&1 | grep -E "^(#[0-9]+.*DONE|Done|==[0-9]+==|SUMMARY|artifact)" || true
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "$target: crash inputs in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
