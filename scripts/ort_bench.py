#!/usr/bin/env python3
"""ONNX Runtime side of the detector benchmark (detector/benches/inference.rs).

    python3 scripts/ort_bench.py WEIGHTS.onnx BATCH THREADS SECONDS

Runs the model on [BATCH, 3, 640, 640] inputs (the fixture's formula), one warm-up pass, then passes
until SECONDS have gone by, with THREADS intra-op threads, and prints one JSON line: engine, images
per second, peak resident memory in MiB. Needs `pip install onnxruntime numpy`.
"""

import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    path, batch, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    n = batch * 3 * 640 * 640
    x = (((np.arange(n, dtype=np.int64) * 7919) % 10007) / 10007.0).astype(np.float32).reshape(batch, 3, 640, 640)
    name = session.get_inputs()[0].name
    session.run(None, {name: x})
    passes, started = 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - started < seconds:
        session.run(None, {name: x})
        passes += 1
    took = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"engine": f"ONNX Runtime {ort.__version__}", "images_per_s": passes * batch / took, "peak_rss_mib": peak_mib}))


if __name__ == "__main__":
    main()
