#!/usr/bin/env python3
"""make_paddle.py OUTDIR — parity references for models that come from Paddle, run by ONNX Runtime.
Needs the venv from setup_venv.sh (paddlepaddle, paddle2onnx, onnxruntime, rapidocr-onnxruntime).
Never used by the library at run time.

Cases (OUTDIR/<case>/):
  paddle_shufflenet_v2   paddle.vision.models.shufflenet_v2_x0_5(pretrained=False), seeded
                         random weights, BatchNorm statistics calibrated on a seeded batch and
                         affine parameters jittered (BN is not an identity); exported with paddle.jit.save +
                         paddle2onnx.export (opset 13, no graph optimiser: the raw converter output
                         with its Constant/Identity nodes, BatchNormalization, channel shuffle
                         Reshape/Transpose, Split, Concat). Input (2,3,224,224).
  ppocr_cls              the pretrained PaddleOCR text-direction classifier
                         ch_ppocr_mobile_v2.0_cls_infer.onnx, copied unchanged from the
                         rapidocr-onnxruntime package. Input (2,3,48,192); its output is already a
                         softmax over 2 classes (0 and 180 degrees).
Files: model.onnx, input.npy (seeded), logits.npy (ONNX Runtime, float32, CPU, 1 thread),
targets.npy (per sample a seeded class other than the argmax), and the directional check
dir.npy / fd.npy / fd_tol.npy (fdcheck.py) with kinks.txt (kinks.py), both computed from a float64
evaluation of the same ONNX graph with onnx.reference (onnx64.py; it must agree with ONNX Runtime
to 1e-4, else the script stops), meta.json. No grad_*.npy: ONNX Runtime has no gradients.

paddle2onnx's default graph optimiser (Polygraphy) tries to pip-install onnx_graphsurgeon from a
non-PyPI index at run time; this script never calls it (optimize_tool="None") and sets
PIP_NO_INDEX=1 so that nothing it runs can install anything.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["PIP_NO_INDEX"] = "1"
os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"

import importlib.util  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402,F401  (before torch, which kinks.py imports: see setup_venv.sh)
import onnx.reference  # noqa: E402,F401

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fdcheck  # noqa: E402
import kinks  # noqa: E402
import onnx64  # noqa: E402

BATCH = 2
OCR_CLS = "ch_ppocr_mobile_v2.0_cls_infer.onnx"


def seed_of(name):
    return 1000 + sum((i + 1) * ord(c) for i, c in enumerate(name))


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_forward(sess):
    name = sess.get_inputs()[0].name

    def f(x):
        return sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    return f


def count_ops(path):
    import onnx
    ops = {}
    m = onnx.load(path)
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return ops, [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")], m.producer_name


def export_paddle(layer, shape, path, opset):
    import paddle
    import paddle2onnx
    tmp = tempfile.mkdtemp()
    try:
        spec = [paddle.static.InputSpec([None] + list(shape), "float32", "input")]
        paddle.jit.save(layer, os.path.join(tmp, "model"), input_spec=spec)
        model_file = os.path.join(tmp, "model.json")
        if not os.path.isfile(model_file):
            model_file = os.path.join(tmp, "model.pdmodel")
        paddle2onnx.export(model_file, os.path.join(tmp, "model.pdiparams"), path, opset,
                           auto_upgrade_opset=False, enable_onnx_checker=True,
                           optimize_tool="None")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not os.path.isfile(path):
        raise RuntimeError("paddle2onnx did not write %s (see its log above)" % path)


def calibrate_bn(layer, rng, shape):
    """As make_torchvision.py: running statistics from a seeded random batch (momentum 0 in train
    mode, so that they are that batch's statistics), affine parameters jittered. Random init leaves
    mean 0 / variance 1, which would make every BN an identity and let the signal fade."""
    import paddle
    bns = [m for m in layer.sublayers() if isinstance(m, (paddle.nn.BatchNorm2D, paddle.nn.BatchNorm))]
    for m in bns:
        m._momentum = 0.0
        c = m.weight.shape[0]
        m.weight.set_value(rng.uniform(0.75, 1.25, c).astype("float32"))
        m.bias.set_value(rng.normal(0, 0.05, c).astype("float32"))
    layer.train()
    with paddle.no_grad():
        layer(paddle.to_tensor(rng.uniform(-2, 2, (8,) + shape).astype("float32")))
    layer.eval()
    for m in bns:
        m._momentum = 0.9  # Paddle's default again (it is exported as an attribute)
    return len(bns)


def finish(d, name, x, fwd32, seed, meta, t0):
    """logits from ONNX Runtime (fwd32); kink records and directional finite differences from a
    float64 evaluation of the same graph (onnx64.py)."""
    import onnx
    rng = np.random.default_rng(seed + 1)
    logits = fwd32(x)
    top = logits.reshape(len(x), -1).argmax(axis=1)
    ncls = logits.reshape(len(x), -1).shape[1]
    t = rng.integers(0, ncls - 1, len(x))
    targets = np.where(t >= top, t + 1, t).astype(np.int64)
    np.save(os.path.join(d, "input.npy"), x.astype(np.float32))
    np.save(os.path.join(d, "logits.npy"), logits.astype(np.float32))
    np.save(os.path.join(d, "targets.npy"), targets)

    model = onnx.load(os.path.join(d, "model.onnx"))
    ev = onnx64.Evaluator(model)
    out64 = ev.forward(x)
    err = float(np.abs(out64 - logits).max() / np.abs(out64).max())
    if err > 1e-4:
        raise RuntimeError("%s: float64 reference evaluation and ONNX Runtime disagree: %.3g" %
                           (name, err))
    recs = kinks.onnx_records(model, lambda names: ev.run(x, names))
    n_kinks = kinks.write(os.path.join(d, "kinks.txt"), recs, name)
    dvec, fd, tol, info = fdcheck.directional(ev.forward, x, targets, seed)
    fdcheck.save(d, dvec, fd, tol)

    ops, opset, producer = count_ops(os.path.join(d, "model.onnx"))
    meta.update({"seed": seed, "targets": targets.tolist(), "argmax": top.tolist(), "ops": ops,
                 "opset": opset, "producer": producer,
                 "reference": "logits: onnxruntime float32; directional: float64 onnx.reference",
                 "onnxruntime_vs_float64_rel_err": err, "kink_units": n_kinks,
                 "fdcheck": info, "max_abs_logit": float(np.abs(logits).max())})
    meta["seconds"] = round(time.time() - t0, 2)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print("%-22s opset %s %5.1fs  max|out| %.3g  ORT vs float64 %.1e  kink units %d  "
          "fd spread/rms %.1e" % (name, opset, meta["seconds"], meta["max_abs_logit"], err, n_kinks,
                                  info["max_spread_over_rms"]), flush=True)


def make_shufflenet(outdir):
    import paddle
    import onnxruntime
    name = "paddle_shufflenet_v2"
    t0 = time.time()
    seed = seed_of(name)
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    layer = paddle.vision.models.shufflenet_v2_x0_5(pretrained=False)
    n_bn = calibrate_bn(layer, rng, (3, 224, 224))
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    export_paddle(layer, (3, 224, 224), path, 13)
    x = rng.uniform(-2.0, 2.0, (BATCH, 3, 224, 224)).astype(np.float32)
    fwd = ort_forward(ort_session(path))
    # the exported graph should compute what Paddle computes
    with paddle.no_grad():
        pd_out = layer(paddle.to_tensor(x)).numpy()
    ort_out = fwd(x)
    pd_err = float(np.abs(pd_out - ort_out).max() / np.abs(pd_out).max())
    if pd_err > 1e-4:
        raise RuntimeError("%s: ONNX Runtime and Paddle disagree (%.3g)" % (name, pd_err))
    meta = {"source": "paddle.vision.models.shufflenet_v2_x0_5(pretrained=False)",
            "batchnorm_layers_calibrated": n_bn, "paddle": paddle.__version__,
            "onnxruntime": onnxruntime.__version__, "paddle_vs_onnxruntime_rel_err": pd_err}
    finish(d, name, x, fwd, seed, meta, t0)


def make_ocr_cls(outdir):
    import onnxruntime
    name = "ppocr_cls"
    t0 = time.time()
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("rapidocr_onnxruntime is not installed (run setup_venv.sh)")
    src = os.path.join(list(spec.submodule_search_locations)[0], "models", OCR_CLS)
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    shutil.copyfile(src, path)
    seed = seed_of(name)
    rng = np.random.default_rng(seed)
    # text-line crops as the classifier sees them: (pixel/255 - 0.5) / 0.5
    x = ((rng.uniform(0, 1, (BATCH, 3, 48, 192)) - 0.5) / 0.5).astype(np.float32)
    fwd = ort_forward(ort_session(path))
    meta = {"source": "rapidocr-onnxruntime models/" + OCR_CLS + " (pretrained PaddleOCR)",
            "onnxruntime": onnxruntime.__version__, "output": "softmax probabilities, 2 classes"}
    finish(d, name, x, fwd, seed, meta, t0)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_paddle.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    make_shufflenet(outdir)
    make_ocr_cls(outdir)
    print("make_paddle: 2 models in %.1fs -> %s" % (time.time() - t0, outdir))


if __name__ == "__main__":
    main()
