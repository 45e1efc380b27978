#!/usr/bin/env python3
"""Make a random-weight YOLOv8s (or m/l/x-width) ONNX model from the committed YOLOv8n fixture, for
the detector benchmark (`CLOUDBENCH_WEIGHTS`), with no torch or ultralytics.

Why it can: ultralytics' n and s models share one graph (depth multiple 0.33); only the widths
differ (0.25 against 0.50, so every layer's channels double). The head's widths follow its own
rules, `c2 = max(16, P3 / 4, 4 * reg_max)` for the box branch and `c3 = max(P3, min(classes, 100))`
for the class branch, and its last convolutions keep 4 * reg_max and `classes` outputs; the DFL's
fixed 1x1 convolution stays. So the script walks the n graph in order, gives every convolution its
new output channels by those rules and its input channels from what feeds it, scales C2f's
`Split` sizes with their input, draws new weights (seeded normal), and rescales every convolution
with the fixture's own `rescale_for_input_sensitivity` so that the outputs depend on the input.

Usage:  python3 scripts/widen_detector_fixture.py DIR [--width 2] [--seed 0]
        (onnx, onnxruntime and numpy) writes DIR/yolov8-random.onnx (about 44 MB for s) and, as the
        committed fixture has them, ONNX Runtime's outputs for two cases with a fixture.json naming
        them, so that `detector::reference::compare` can check the detector on the widened model.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "detector" / "fixtures" / "yolov8n-random.onnx"
# Ops whose output has the channels of their first input.
SAME_CHANNELS = {"Sigmoid", "Mul", "Add", "MaxPool", "Resize"}


def fixture_module():
    spec = importlib.util.spec_from_file_location("make_detector_fixture", REPO / "scripts" / "make_detector_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def out_channels(name: str, old: int, width: int, p3: int, classes: int, reg_max: int) -> int:
    """A convolution's output channels in the widened model, from its node name and n's count."""
    if "/dfl/" in name:
        return old
    if name.startswith("/model.22/cv2."):
        return 4 * reg_max if name.endswith("2/Conv") else max(16, p3 // 4, 4 * reg_max)
    if name.startswith("/model.22/cv3."):
        return classes if name.endswith("2/Conv") else max(p3, min(classes, 100))
    return old * width


def widen(m: onnx.ModelProto, width: int, seed: int) -> onnx.ModelProto:
    inits = {t.name: t for t in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    shape = lambda node: list(inits[node.input[1]].dims)  # noqa: E731
    by_name = {n.name: n for n in convs}
    classes = shape(by_name["/model.22/cv3.0/cv3.0.2/Conv"])[0]
    reg_max = shape(by_name["/model.22/cv2.0/cv2.0.2/Conv"])[0] // 4
    # P3 (the stride-8 level the head reads) is model.15's C2f output.
    p3 = shape(by_name["/model.15/cv2/conv/Conv"])[0] * width
    rng = np.random.default_rng(seed)
    channels = {m.graph.input[0].name: 3}
    for node in m.graph.node:
        op, inputs = node.op_type, list(node.input)
        known = inputs[0] in channels
        if op == "Conv" and known:
            old = shape(node)
            o = out_channels(node.name, old[0], width, p3, classes, reg_max)
            i = channels[inputs[0]]
            if "/dfl/" not in node.name:
                fan_in = i * old[2] * old[3]
                w = (rng.standard_normal((o, i, old[2], old[3])) / np.sqrt(fan_in)).astype(np.float32)
                b = (0.1 * rng.standard_normal(o)).astype(np.float32)
                inits[inputs[1]].CopyFrom(numpy_helper.from_array(w, inputs[1]))
                inits[inputs[2]].CopyFrom(numpy_helper.from_array(b, inputs[2]))
            channels[node.output[0]] = o
        elif op == "Split" and known:
            sizes = numpy_helper.to_array(inits[inputs[1]])
            scaled = (sizes * channels[inputs[0]] // sizes.sum()).astype(sizes.dtype)
            assert scaled.sum() == channels[inputs[0]], f"{node.name}: {sizes} of {channels[inputs[0]]}"
            inits[inputs[1]].CopyFrom(numpy_helper.from_array(scaled, inputs[1]))
            for out, size in zip(node.output, scaled):
                channels[out] = int(size)
        elif op == "Concat" and all(x in channels for x in inputs) and next(a.i for a in node.attribute if a.name == "axis") == 1:
            channels[node.output[0]] = sum(channels[x] for x in inputs)
        elif op in SAME_CHANNELS and known:
            channels[node.output[0]] = channels[inputs[0]]
    # Every convolution but the DFL's (after the head's reshapes, unchanged) was reached: the walk
    # covered the whole network.
    missing = [n.name for n in convs if n.output[0] not in channels and "/dfl/" not in n.name]
    assert not missing, f"not reached: {missing}"
    del m.graph.value_info[:]
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--width", type=int, default=2, help="channel multiple over n (2: s, 3: m, 4: l, 5: x)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    m = widen(onnx.load(str(SOURCE)), args.width, args.seed)
    onnx.checker.check_model(m)
    scales = fixture_module().rescale_for_input_sensitivity(m)
    for prop in m.metadata_props:
        if prop.key == "description":
            prop.value = f"YOLOv8 at {args.width}x the n fixture's widths, random weights (scripts/widen_detector_fixture.py)"
    args.dir.mkdir(parents=True, exist_ok=True)
    model = args.dir / "yolov8-random.onnx"
    onnx.save(m, str(model))
    fixture = fixture_module()
    cases = []
    for b, h, w in [(1, 320, 480), (2, 320, 320)]:
        out = fixture.session(model).run(None, {m.graph.input[0].name: fixture.make_input(b, h, w)})[0].astype("<f4")
        name = f"out_b{b}_{h}x{w}.f32"
        out.tofile(args.dir / name)
        cases.append({"batch": b, "height": h, "width": w, "anchor_stride": 1, "file": name, "output_shape": list(out.shape)})
    (args.dir / "fixture.json").write_text(json.dumps({"model_file": model.name, "width_over_n": args.width, "seed": args.seed, "cases": cases}, indent=1) + "\n")
    params = sum(numpy_helper.to_array(t).size for t in m.graph.initializer)
    print(f"{model}: {params:,} parameters, {len(scales['weight_scales'])} convolutions rescaled; references for {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
