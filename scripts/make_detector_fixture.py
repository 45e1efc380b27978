#!/usr/bin/env python3
"""Build the numeric test fixture for the `detector` crate (YOLOv8n in Burn).

What it writes (all into ``detector/fixtures/``):

* ``yolov8n-random.onnx``  YOLOv8n exported by ``ultralytics`` with RANDOM
  weights (no pretrained weights can be downloaded here), dynamic batch and
  spatial size.  BatchNorm statistics/affine params are re-initialised to
  non-trivial values before export so that BN handling is really exercised.
  After export every convolution is rescaled (``rescale_for_input_sensitivity``)
  so that the outputs depend on the input: with the default initialisation they
  did not (an all-zero image gave the same outputs within 3.4e-6), and a check
  against ONNX Runtime on such a model cannot see a wrong convolution.
  ``fixture.json`` records the scales and the outputs' sensitivity.
* ``out_b{B}_{H}x{W}.f32``  reference outputs from ONNX Runtime (CPU EP),
  raw little-endian float32, row-major, for the deterministic inputs below.
* ``fixture.json``  versions, hashes, input/output names, the cases and the
  model's ``metadata_props``.
* ``graph.json``  every graph initializer (name, dims, dtype) and every node
  (op_type, name, inputs, outputs, attributes) in graph order, so an
  implementer can map ONNX tensors onto YOLOv8 layers.

Deterministic input (regenerable in Rust without any file)::

    x[i] = ((i * 7919) % 10007) / 10007.0      (float32)

where ``i`` is the flat row-major NCHW index.  Note that ``i * 7919`` exceeds
u32 for the 640x640 case, so compute it in u64/i64.  The numerator is an
integer < 10007 and therefore exact in f32; an f32 division
``(n as f32) / 10007.0f32`` gives exactly the same value as this script.

Output layout: ``[B, 84, A]``, A = sum over strides s in (8, 16, 32) of
(H/s)*(W/s).  Rows 0..3 are cx, cy, w, h in input pixels; rows 4..83 are the
80 class scores after sigmoid.  Anchor order: stride 8 grid row-major
(y outer, x inner), then stride 16, then stride 32.

Class names: a model built from yolov8n.yaml has no dataset, so the
"names" metadata is {0: '0', ..., 79: '79'}, not the COCO names.

Size budget: the whole fixtures directory must stay under 16,000,000 bytes.
The model alone is ~12.7 MB, so the 640x640 reference keeps only every 9th
anchor column (saved = full[:, :, ::9], shape [1, 84, 934]); the other cases
are complete.  fixture.json records the rule per case ("anchor_stride").

Pinned environment used to produce the committed files (Python 3.11.7, x86_64
Linux, CPU only; torch came from PyPI with its CUDA deps, which are unused)::

    pip install onnx==1.23.2 onnxslim==0.1.98
    pip install ultralytics==8.4.190 onnxruntime==1.32.0 torch==2.15.0 \
        torchvision==0.29.2 numpy==2.4.6 protobuf==7.36.2

Install order matters a little: onnx/onnxslim first, then ultralytics and
onnxruntime (ultralytics pulls torch).  Rerun from the repository root with::

    python3 -m venv /tmp/detfix-venv && . /tmp/detfix-venv/bin/activate
    (the pip lines above)
    YOLO_OFFLINE=1 python scripts/make_detector_fixture.py

Without torch (onnx, onnxruntime and numpy only), from an earlier ultralytics
export, e.g. the one committed before the rescaling::

    git show ea30914:detector/fixtures/yolov8n-random.onnx > /tmp/export.onnx
    python scripts/make_detector_fixture.py --from-export /tmp/export.onnx

The script sets YOLO_OFFLINE / YOLO_CONFIG_DIR itself, works in a temporary
directory for the export, and never downloads anything.  Rerunning with the
same pins reproduces identical files: the script re-executes itself with
PYTHONHASHSEED=0 (onnxslim's output otherwise varies between runs), replaces
the export timestamp in the metadata by a fixed string, and drops the
optional graph.value_info shape hints (see normalise_model).
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Must be set before ultralytics is imported: no network, and keep its
# settings file out of the user's home directory.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))
# Keep CPU use modest and results reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import numpy_helper  # noqa: E402

# torch and ultralytics are imported only where the model is built (build_model, export), so that
# `--from-export` needs no more than onnx, onnxruntime and numpy.

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "detector" / "fixtures"
MODEL_NAME = "yolov8n-random.onnx"
SEED = 0
OPSET_WANTED = 17
OPSET_FALLBACK = 12
FIXED_DATE = "1970-01-01T00:00:00+00:00"  # replaces the export timestamp
BUDGET_BYTES = 16_000_000  # whole fixtures dir must stay below this
# Anchor subset for the 640 case, used only if the full output would not fit the
# budget (it does not: the model alone is ~12.7 MB).  9 is coprime with the grid
# widths 80/40/20, so the kept anchors walk diagonally and still hit every grid
# column (incl. the padded right edge) rather than a fixed set of columns.
ANCHOR_STRIDE_640 = 9
INPUT_FORMULA = "x[i] = float32(((i * 7919) % 10007) / 10007.0), i = flat row-major NCHW index (use 64-bit ints)"

# (batch, height, width).  The last one is non-square to check that the
# dynamic export handles H != W.
CASES = [(1, 640, 640), (2, 320, 320), (1, 320, 480)]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_input(b: int, h: int, w: int) -> np.ndarray:
    """The deterministic input tensor; see the module docstring."""
    i = np.arange(b * 3 * h * w, dtype=np.int64)
    num = ((i * 7919) % 10007).astype(np.float32)  # exact: < 2^24
    return (num / np.float32(10007.0)).astype(np.float32).reshape(b, 3, h, w)


def num_anchors(h: int, w: int) -> int:
    return sum((h // s) * (w // s) for s in (8, 16, 32))


def build_model():
    """YOLOv8n with random conv weights and randomised BatchNorm parameters."""
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    model = YOLO("yolov8n.yaml")  # builds from the bundled yaml, no download
    # A separate generator so the BN values do not depend on how many random
    # numbers the model constructor consumed.
    g = torch.Generator().manual_seed(SEED + 1)
    n_bn = 0
    with torch.no_grad():
        for m in model.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)  # U(0.5, 1.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)  # U(0.5, 1.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                n_bn += 1
    model.model.eval()
    print(f"re-initialised {n_bn} BatchNorm2d layers")
    return model


def export(model, workdir: Path) -> tuple[Path, int]:
    """Export to ONNX in `workdir`; returns the file and the opset used."""
    cwd = os.getcwd()
    os.chdir(workdir)  # ultralytics writes yolov8n.onnx into the cwd
    try:
        for opset in (OPSET_WANTED, OPSET_FALLBACK):
            try:
                f = model.export(format="onnx", opset=opset, dynamic=True, simplify=True, device="cpu")
                return Path(workdir, f).resolve(), opset
            except Exception as e:  # pragma: no cover - only if opset 17 fails
                print(f"export with opset {opset} failed: {e!r}", file=sys.stderr)
        raise SystemExit("ONNX export failed")
    finally:
        os.chdir(cwd)


def normalise_model(src: Path, dst: Path) -> tuple[onnx.ModelProto, dict]:
    """Copy the exported model to `dst` with two semantics-free clean-ups.

    1. The export timestamp in metadata_props["date"] is replaced by a fixed
       string so that reruns give byte-identical files.
    2. graph.value_info is dropped.  It only holds optional shape hints that
       onnxslim's symbolic shape inference adds; with onnxslim 0.1.98 it lists
       the same tensor several times (e.g. 1863 entries for 329 tensors), some
       copies with conflicting symbolic dims such as "floor(2.0*...)", and the
       number of entries changed from run to run.  Nothing needs it (ONNX
       Runtime and importers infer shapes themselves), and it costs ~0.5 MB.
    Nodes, initializers, graph inputs/outputs and the opset are untouched.
    """
    m = onnx.load(str(src))
    for p in m.metadata_props:
        if p.key == "date":
            p.value = FIXED_DATE
    vi_names = [v.name for v in m.graph.value_info]
    info = {
        "metadata_date_replaced_with": FIXED_DATE,
        "value_info_removed": {
            "entries": len(vi_names),
            "distinct_tensor_names": len(set(vi_names)),
            "reason": "optional shape hints from onnxslim; duplicated, partly contradictory, not reproducible",
        },
    }
    del m.graph.value_info[:]
    onnx.save(m, str(dst))
    return m, info


# The class logits' ceiling after rescaling: logit(0.2), so that at the default confidence (0.25)
# the random weights detect nothing on ordinary images, while scores still move with the input.
CLASS_LOGIT_CEILING = float(np.log(0.2 / 0.8))


def calibration_input() -> np.ndarray:
    """Four 256x256 images unlike each other: the formula's fine noise, the letterbox gray, smooth
    blocks and a gradient (real photographs are between the last three)."""
    h = w = 256
    rng = np.random.default_rng(SEED)
    blocks = np.kron(rng.random((3, 8, 8), dtype=np.float32), np.ones((32, 32), dtype=np.float32))
    ramp = np.linspace(0, 1, w, dtype=np.float32)
    gradient = np.stack([np.tile(ramp, (h, 1)), np.tile(ramp[:, None], (1, w)), np.full((h, w), 0.3, np.float32)])
    gray = np.full((3, h, w), 114 / 255, np.float32)
    return np.stack([make_input(1, h, w)[0], gray, blocks, gradient]).astype(np.float32)


def rescale_for_input_sensitivity(m: onnx.ModelProto) -> dict:
    """Scales every convolution's weights (not the DFL's fixed ones) so that the part of its output
    that varies with the input has unit spread, and sets the class head's biases.

    Why: with ultralytics' default initialisation the input's influence dies out layer by layer;
    in the raw export, an all-zero image and the formula's input gave outputs within 3.4e-6
    (relative) of each other, under the tolerance the comparison uses, so no comparison on that
    model could tell a right convolution from a wrong one. Layer by layer, in graph order (each
    scale measured on the model as rescaled so far): y = Wx + b on `calibration_input()`, W *= 1 /
    mean over channels of the standard deviation of Wx over images and positions. The biases keep
    their values, except the last class convolution's: each class's bias is set so its largest
    logit on the calibration images is CLASS_LOGIT_CEILING. Deterministic (float32 throughout).
    """
    inits = {t.name: t for t in m.graph.initializer}
    x = calibration_input()
    input_name = m.graph.input[0].name
    scales = {}
    for node in [n for n in m.graph.node if n.op_type == "Conv" and "/dfl/" not in n.name]:
        probe = onnx.ModelProto()
        probe.CopyFrom(m)
        del probe.graph.output[:]
        probe.graph.output.append(onnx.ValueInfoProto(name=node.output[0]))
        y = session(probe.SerializeToString(), optimise=False).run(None, {input_name: x})[0]
        weight_name, bias_name = node.input[1], node.input[2]
        bias = numpy_helper.to_array(inits[bias_name]).astype(np.float32)
        wx = y - bias[None, :, None, None]
        scale = np.float32(1.0) / np.float32(wx.std(axis=(0, 2, 3)).mean())
        weight = numpy_helper.to_array(inits[weight_name]).astype(np.float32) * scale
        inits[weight_name].CopyFrom(numpy_helper.from_array(weight, weight_name))
        if node.name.startswith("/model.22/cv3.") and node.name.endswith("2/Conv"):
            ceiling = (wx * scale).max(axis=(0, 2, 3))
            bias = (np.float32(CLASS_LOGIT_CEILING) - ceiling).astype(np.float32)
            inits[bias_name].CopyFrom(numpy_helper.from_array(bias, bias_name))
        scales[node.name] = float(scale)
    return {
        "rule": "see rescale_for_input_sensitivity in scripts/make_detector_fixture.py",
        "class_logit_ceiling": CLASS_LOGIT_CEILING,
        "weight_scales": scales,
    }


def attr_value(a: onnx.AttributeProto):
    """A JSON-friendly view of a node attribute."""
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        arr = numpy_helper.to_array(v)
        d = {"tensor_dims": list(arr.shape), "dtype": str(arr.dtype)}
        if arr.size <= 16:
            d["values"] = arr.tolist()
        return d
    if isinstance(v, (list, tuple)):
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
    if isinstance(v, (int, float, str)):
        return v
    return str(v)


def describe_graph(m: onnx.ModelProto) -> dict:
    g = m.graph
    inits = []
    for t in g.initializer:
        arr = numpy_helper.to_array(t)
        d = {"name": t.name, "dims": list(t.dims), "dtype": onnx.TensorProto.DataType.Name(t.data_type)}
        if arr.size <= 8:  # small constants (shapes, scalars): give the values
            d["values"] = arr.tolist()
        inits.append(d)
    nodes = [
        {
            "op_type": n.op_type,
            "name": n.name,
            "inputs": list(n.input),
            "outputs": list(n.output),
            "attributes": {a.name: attr_value(a) for a in n.attribute},
        }
        for n in g.node
    ]

    def vi(v):
        dims = [d.dim_param if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim]
        return {"name": v.name, "dims": dims, "dtype": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)}

    return {
        "inputs": [vi(v) for v in g.input],
        "outputs": [vi(v) for v in g.output],
        "initializer_count": len(inits),
        "node_count": len(nodes),
        "initializers": inits,
        "nodes": nodes,
    }


def write_graph_json(path: Path, graph: dict) -> None:
    """JSON with one initializer / node per line: compact but still diffable."""
    lines = ["{"]
    for key in ("inputs", "outputs", "initializer_count", "node_count"):
        lines.append(f" {json.dumps(key)}: {json.dumps(graph[key])},")
    for key in ("initializers", "nodes"):
        items = [" " + json.dumps(x, separators=(",", ":")) for x in graph[key]]
        lines.append(f" {json.dumps(key)}: [")
        lines.append(",\n".join(items))
        lines.append(" ]," if key == "initializers" else " ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    json.loads(path.read_text())  # sanity: it parses


def session(path, optimise: bool = True) -> ort.InferenceSession:
    """A one-thread CPU session on a model file (a Path) or serialised model (bytes)."""
    so = ort.SessionOptions()
    if not optimise:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main() -> None:
    # onnxslim's output depends on Python's string-hash seed; pin it so the
    # exported graph is reproducible (re-exec once with the seed set).
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model_path = OUT_DIR / MODEL_NAME
    args = sys.argv[1:]
    if args[:1] == ["--from-export"] and len(args) == 2:
        # An ultralytics export made earlier (for the committed fixture: the file as of commit
        # ea30914, `git show ea30914:detector/fixtures/yolov8n-random.onnx`); no torch needed.
        source = Path(args[1])
        # The export records the ultralytics version that wrote it, not torch's.
        written_by = {p.key: p.value for p in onnx.load(str(source)).metadata_props}.get("version", "unknown")
        versions = {"ultralytics": f"{written_by} (the export given with --from-export)", "torch": "not recorded in the export"}
        with tempfile.TemporaryDirectory(prefix="detfix-") as tmp:
            copy = Path(tmp, "export.onnx")
            shutil.copyfile(source, copy)
            onnx_model, postprocess = normalise_model(copy, model_path)
    elif not args:
        import torch
        import ultralytics

        versions = {"ultralytics": ultralytics.__version__, "torch": torch.__version__}
        with tempfile.TemporaryDirectory(prefix="detfix-") as tmp:
            exported, _ = export(build_model(), Path(tmp))
            onnx_model, postprocess = normalise_model(exported, model_path)
    else:
        raise SystemExit("usage: make_detector_fixture.py [--from-export EXPORT.onnx]")
    postprocess["rescaled_for_input_sensitivity"] = rescale_for_input_sensitivity(onnx_model)
    onnx.save(onnx_model, str(model_path))
    onnx.checker.check_model(onnx_model)
    opset = next(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))

    graph = describe_graph(onnx_model)
    op_types = [n["op_type"] for n in graph["nodes"]]
    bn_remaining = op_types.count("BatchNormalization")
    opset_imports = {(o.domain or "ai.onnx"): o.version for o in onnx_model.opset_import}
    meta_props = {p.key: p.value for p in onnx_model.metadata_props}

    sess = session(model_path)
    # Same file, ORT graph optimisations off: shows how far two correct
    # implementations with different op fusion/ordering drift apart.
    sess_plain = session(model_path, optimise=False)
    in_name = sess.get_inputs()[0].name
    out_name = sess.get_outputs()[0].name

    # Decide the anchor subset for the 640 case from the byte budget.
    full_bytes = sum(b * 84 * num_anchors(h, w) * 4 for b, h, w in CASES)
    json_margin = 100_000  # allowance for fixture.json + graph.json (~70 kB)
    stride_640 = 1
    if model_path.stat().st_size + full_bytes + json_margin > BUDGET_BYTES:
        stride_640 = ANCHOR_STRIDE_640

    # Old output files from a previous run (possibly another subset) go first.
    for old in OUT_DIR.glob("out_b*.f32"):
        old.unlink()

    cases = []
    for b, h, w in CASES:
        x = make_input(b, h, w)
        y = sess.run([out_name], {in_name: x})[0]
        a = num_anchors(h, w)
        assert y.shape == (b, 84, a), (y.shape, (b, 84, a))
        # Cross-check against ORT without graph optimisations (the PyTorch model is not the
        # rescaled one, so it is no reference any more).
        py = sess_plain.run([out_name], {in_name: x})[0]

        def diffs(other):
            d = np.abs(other - y)
            return {"all": float(d.max()), "box_rows": float(d[:, :4].max()), "score_rows": float(d[:, 4:].max())}

        plain_diff = float(np.abs(py - y).max())

        stride = stride_640 if (h, w) == (640, 640) else 1
        saved = np.ascontiguousarray(y[:, :, ::stride]).astype("<f4")
        fname = f"out_b{b}_{h}x{w}.f32"
        saved.tofile(OUT_DIR / fname)
        cases.append(
            {
                "batch": b,
                "height": h,
                "width": w,
                "input_shape": [b, 3, h, w],
                "input_formula": INPUT_FORMULA,
                "output_shape": [b, 84, a],
                "saved_shape": list(saved.shape),
                "anchor_subset": (
                    "all anchors"
                    if stride == 1
                    else f"only anchor columns j with j % {stride} == 0 (j = 0, {stride}, {2 * stride}, ...), "
                    f"i.e. saved = full[:, :, ::{stride}]"
                ),
                "anchor_stride": stride,
                "file": fname,
                "sha256": sha256(OUT_DIR / fname),
                "bytes": (OUT_DIR / fname).stat().st_size,
                "max_abs_diff_vs_ort_without_graph_optimisation": diffs(py),
                "stats": {
                    "box_rows_min": float(y[:, :4].min()),
                    "box_rows_max": float(y[:, :4].max()),
                    "score_rows_min": float(y[:, 4:].min()),
                    "score_rows_max": float(y[:, 4:].max()),
                    "mean": float(y.mean()),
                },
            }
        )
        print(f"case b{b} {h}x{w}: shape {y.shape}, saved {saved.shape}, max|ort unoptimised - ort| = {plain_diff:.3g}")

    write_graph_json(OUT_DIR / "graph.json", graph)

    # How much the outputs move with the input, against how far ORT drifts from itself: a
    # comparison on this model can only see errors larger than the drift and smaller than these.
    x = make_input(1, 320, 480)
    y = sess.run([out_name], {in_name: x})[0]
    nudged = x.copy()
    nudged[0, 0, 100, 100] += np.float32(0.01)
    sensitivity = {}
    for name, other in [("one pixel +0.01", nudged), ("all zeros", np.zeros_like(x))]:
        z = sess.run([out_name], {in_name: other})[0]
        box = np.abs(z[:, :4] - y[:, :4]) / np.maximum(np.abs(y[:, :4]), 1)
        sensitivity[name] = {"box_rows_relative": float(box.max()), "score_rows_absolute": float(np.abs(z[:, 4:] - y[:, 4:]).max())}
    assert sensitivity["all zeros"]["score_rows_absolute"] > 1e-2, f"outputs do not depend on the input: {sensitivity}"
    print(f"input sensitivity (b1 320x480): {sensitivity}")

    fixture = {
        "generator": "scripts/make_detector_fixture.py",
        "model_file": MODEL_NAME,
        "model_sha256": sha256(model_path),
        "model_bytes": model_path.stat().st_size,
        "model_description": "ultralytics YOLOv8n (yolov8n.yaml, nc=80) with random weights, torch.manual_seed(0); "
        "BatchNorm running_mean~N(0,0.1), running_var~U(0.5,1.5), weight~U(0.5,1.5), bias~N(0,0.1) "
        "(torch.Generator seed 1); eval mode; exported with ultralytics format=onnx dynamic=True simplify=True; "
        "then every convolution rescaled so the outputs depend on the input (post_export_changes)",
        "post_export_changes": postprocess,
        "opset": opset,
        "opset_imports": opset_imports,
        "ir_version": onnx_model.ir_version,
        "versions": {
            "python": sys.version.split()[0],
            **versions,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "onnxruntime_settings": "CPUExecutionProvider, default graph optimisation level, 1 intra-op thread",
        "input_name": in_name,
        "output_name": out_name,
        "input_dims": graph["inputs"][0]["dims"],
        "output_dims": graph["outputs"][0]["dims"],
        "output_layout": "[B, 84, A]; rows 0..3 = cx, cy, w, h in input pixels; rows 4..83 = sigmoid class scores; "
        "anchors: stride 8 grid (row-major, y outer), then stride 16, then stride 32",
        "file_format": "raw little-endian float32, row-major, of saved_shape, no header",
        "tolerance_note": "box rows are in pixels (up to ~640), so float32 reassociation gives absolute "
        "differences around 1e-4 there (see max_abs_diff_* per case); scores are ~1e-5..2e-4. Compare box rows "
        "with a relative tolerance (~1e-5, or abs 1e-3) and score rows with abs ~1e-6",
        "batchnorm_nodes_remaining": bn_remaining,
        "batchnorm_folded_into_conv": bn_remaining == 0,
        "node_count": len(op_types),
        "initializer_count": graph["initializer_count"],
        "op_type_counts": {t: op_types.count(t) for t in sorted(set(op_types))},
        "graph_file": "graph.json",
        "metadata_props": meta_props,
        "cases": cases,
        "input_sensitivity_b1_320x480": sensitivity,
    }
    (OUT_DIR / "fixture.json").write_text(json.dumps(fixture, indent=1) + "\n")

    # Verify: a fresh session on the file as written, every case rerun and
    # compared with what was saved (read back from disk).
    sess2 = session(model_path)
    for check in cases:
        x = make_input(check["batch"], check["height"], check["width"])
        y = sess2.run([out_name], {in_name: x})[0][:, :, :: check["anchor_stride"]]
        saved = np.fromfile(OUT_DIR / check["file"], dtype="<f4").reshape(check["saved_shape"])
        diff = float(np.abs(y - saved).max())
        print(f"verify {check['file']}: bitwise equal = {np.array_equal(y, saved)}, max abs diff = {diff}")
        assert diff <= 1e-6

    total = sum(p.stat().st_size for p in OUT_DIR.iterdir() if p.is_file())
    print(f"fixtures total {total} bytes; BN nodes remaining: {bn_remaining}; opset {opset}")
    assert total < BUDGET_BYTES, "fixture directory over budget"


if __name__ == "__main__":
    main()
