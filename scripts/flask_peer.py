#!/usr/bin/env python3
"""Peer model server for the detector benchmark: minimal Flask + ONNX Runtime on the same YOLOv8 model.

    python3 scripts/flask_peer.py WEIGHTS.onnx PORT [--threads 2] [--imgsz 640]

The approach the paper deployed on Azure App Service: one ONNX Runtime session (CPU execution
provider, --threads intra-op threads, one inter-op thread) shared by Flask's request threads.
GET /ping answers {"status":"ok"}; POST /score and POST /invocations take raw image bytes (JPEG or
PNG), letterbox them to --imgsz square, run the model, apply the confidence threshold (?conf=,
default 0.25) and per-class NMS (IoU 0.7, at most 300 boxes), and answer the detections in the
original image's pixels plus the ORT run time in ms. An image that cannot be decoded gets a 400.
Listens on 127.0.0.1 only and prints "flask peer listening on http://127.0.0.1:PORT" to stderr just
before serving. Needs `pip install flask onnxruntime numpy pillow` (versions in
scripts/requirements-bench.txt).
"""

import argparse
import io
import logging
import sys
import time

import numpy as np
import onnxruntime as ort
from flask import Flask, jsonify, request
from PIL import Image

IOU_THRESHOLD = 0.7
MAX_DETECTIONS = 300
CLASS_OFFSET = 7680.0  # larger than any coordinate, so boxes of different classes never overlap


def letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float, int, int]:
    """Resize keeping the aspect ratio, pad to size x size with grey 114; float32 [1, 3, S, S] in 0..1."""
    w, h = image.size
    scale = min(size / w, size / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    left, top = (size - new_w) // 2, (size - new_h) // 2
    canvas = Image.new("RGB", (size, size), (114, 114, 114))
    canvas.paste(image.resize((new_w, new_h), Image.Resampling.BILINEAR), (left, top))
    x = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    return np.ascontiguousarray(x), scale, left, top


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Greedy NMS over x1y1x2y2 boxes; returns kept indices, best score first."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < limit:
        i, rest = order[0], order[1:]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def postprocess(output: np.ndarray, conf: float, scale: float, left: int, top: int, w: int, h: int) -> list[dict]:
    """One image's [4 + classes, anchors] output to detections in original image pixels."""
    scores_all = output[4:]
    class_ids = scores_all.argmax(axis=0)
    scores = scores_all[class_ids, np.arange(output.shape[1])]
    mask = scores >= conf
    if not mask.any():
        return []
    cx, cy, bw, bh = output[:4, mask]
    class_ids, scores = class_ids[mask], scores[mask]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - left) / scale, 0, w)
    boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - top) / scale, 0, h)
    keep = nms(boxes + (class_ids * CLASS_OFFSET)[:, None], scores, IOU_THRESHOLD, MAX_DETECTIONS)
    return [
        {
            "class_id": int(class_ids[i]),
            "class_name": str(int(class_ids[i])),
            "confidence": float(scores[i]),
            "box": [float(v) for v in boxes[i]],
        }
        for i in keep
    ]


def create_app(session: ort.InferenceSession, imgsz: int) -> Flask:
    app = Flask(__name__)
    input_name = session.get_inputs()[0].name

    @app.get("/ping")
    def ping():
        return jsonify(status="ok")

    @app.post("/score")
    @app.post("/invocations")
    def score():
        try:
            image = Image.open(io.BytesIO(request.get_data())).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            message = " ".join(str(e).split()) or type(e).__name__
            return jsonify(error=f"cannot decode image: {message}"), 400
        conf = request.args.get("conf", 0.25, type=float)
        w, h = image.size
        x, scale, left, top = letterbox(image, imgsz)
        started = time.perf_counter()
        (output,) = session.run(None, {input_name: x})
        inference_ms = (time.perf_counter() - started) * 1000.0
        detections = postprocess(output[0], conf, scale, left, top, w, h)
        return jsonify(
            predictions=[{"width": w, "height": h, "detections": detections}],
            inference_ms=inference_ms,
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="YOLOv8 detection model exported to ONNX")
    parser.add_argument("port", type=int)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--imgsz", type=int, default=640, help="letterbox size (square)")
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.weights, options, providers=["CPUExecutionProvider"])
    app = create_app(session, args.imgsz)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    print(f"flask peer listening on http://127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
