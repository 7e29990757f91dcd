"""kinks.py — kink alignment data for the parity test (make_torchvision.py, make_small.py via
PyTorch; make_paddle.py straight from the ONNX graph evaluated in float64).

Why: the input gradient of a ReLU / ReLU6 / hard-swish / max-pool network is a discontinuous
function of the input. A pre-activation that lies within float32 rounding error of a kink (0 for
ReLU, 0 and 6 for Clip, +-3 for HardSwish / HardSigmoid, a near tie inside a MaxPool window) can
land on either side in two correct float32 implementations, and one such flip changes the input
gradient by a large, spread-out amount. Measured on resnet18 (random weights, calibrated BN,
batch 2): PyTorch's own float32 gradient differs from its float64 gradient by 2.2e-2 of the largest
magnitude because of 6 flipped ReLU units out of ~5 million; with the float64 ReLU masks imposed on
the float32 run the difference drops to 7e-7. So a 1e-4 gradient comparison is only meaningful at
a common activation pattern.

What: the reference is computed in float64. Every unit whose float64 input to a kinked op lies
within REL_TAU * max|tensor| of a kink (or, for MaxPool, within REL_TAU * max|tensor| of its
window's maximum when the window's top two values are that close but not equal) is written to
kinks.txt with its float64 value. The parity test taps those ONNX tensors (idl_session_set_tap) and replaces our value
at exactly those units by the reference value (a change far below the forward tolerance); all other
units are farther than REL_TAU from a kink, so float32 error cannot flip them (measured: our
values at the recorded units are within 5e-5 of max|tensor| of float64 on resnet50, the deepest
case, and ~1e-6 on most; REL_TAU = 5e-4 leaves a 10x margin). The test reports how many aligned
units would otherwise have been on the other side of their kink.

File format (text, one record a line):
    # comment
    tensor <onnx tensor name> <count> <max|tensor|>
    <flat index> <float64 value, %.9g> <kink point, or nan for a MaxPool tie>
"""
import inspect
import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

REL_TAU = 5e-4

# ONNX ops whose input is checked, in the order they appear in the exported graph
KINK_OPS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "LeakyRelu", "MaxPool")


class _Capture(TorchFunctionMode):
    """Records (onnx_op, input tensor, params) for every kinked torch function call, in call order.
    A call that torch.onnx exports as two kinked nodes (relu6 = Relu then Clip) records two."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        x = args[0] if args else None
        if name in ("relu", "relu_"):
            self.calls.append(("Relu", x.detach().clone(), (0.0,)))
        elif name == "relu6":
            self.calls.append(("Relu", x.detach().clone(), (0.0,)))
            self.calls.append(("Clip", torch.relu(x.detach()), (0.0, 6.0)))
        elif name in ("hardtanh", "hardtanh_"):
            b = inspect.signature(F.hardtanh).bind(*args, **kwargs)
            b.apply_defaults()
            self.calls.append(("Clip", x.detach().clone(),
                               (float(b.arguments["min_val"]), float(b.arguments["max_val"]))))
        elif name == "hardswish":
            self.calls.append(("HardSwish", x.detach().clone(), (-3.0, 3.0)))
        elif name == "hardsigmoid":
            self.calls.append(("HardSigmoid", x.detach().clone(), (-3.0, 3.0)))
        elif name in ("leaky_relu", "leaky_relu_"):
            self.calls.append(("LeakyRelu", x.detach().clone(), (0.0,)))
        elif name in ("max_pool2d", "_max_pool2d", "max_pool2d_with_indices"):
            b = inspect.signature(_max_pool2d_sig).bind(*args, **kwargs)
            b.apply_defaults()
            p = dict(b.arguments)
            del p["input"]
            self.calls.append(("MaxPool", x.detach().clone(), p))
        return func(*args, **kwargs)


def _max_pool2d_sig(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                    return_indices=False):
    pass


def capture(model, x):
    """Runs model(x), returning (output, calls). Works with autograd on."""
    cap = _Capture()
    with cap:
        out = model(x)
    return out, cap.calls


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _maxpool_ties(x, p, tau):
    """Flat indices (into x) of elements within tau of their window's max, in windows whose top
    two values are within tau. x: (N,C,H,W) float64."""
    k = _pair(p["kernel_size"])
    s = _pair(p["stride"] if p["stride"] not in (None, []) else p["kernel_size"])
    pad = _pair(p["padding"])
    dil = _pair(p["dilation"])
    if dil != (1, 1):
        raise NotImplementedError("dilated max pool")
    n, c, h, w = x.shape
    idx = torch.arange(x.numel(), dtype=torch.float64).view_as(x)
    eh = ew = 0
    if p["ceil_mode"]:
        oh = math.ceil((h + 2 * pad[0] - k[0]) / s[0]) + 1
        ow = math.ceil((w + 2 * pad[1] - k[1]) / s[1]) + 1
        eh = max(0, (oh - 1) * s[0] + k[0] - (h + 2 * pad[0]))
        ew = max(0, (ow - 1) * s[1] + k[1] - (w + 2 * pad[1]))
    xp = F.pad(x, (pad[1], pad[1] + ew, pad[0], pad[0] + eh), value=-math.inf)
    ip = F.pad(idx, (pad[1], pad[1] + ew, pad[0], pad[0] + eh), value=-1.0)
    xw = xp.unfold(2, k[0], s[0]).unfold(3, k[1], s[1]).reshape(n, c, -1, k[0] * k[1])
    iw = ip.unfold(2, k[0], s[0]).unfold(3, k[1], s[1]).reshape(n, c, -1, k[0] * k[1])
    top2 = xw.topk(2, dim=-1).values
    gap = top2[..., 0] - top2[..., 1]
    # exact ties (all-zero windows after a ReLU) are computed exactly in float32 too
    tied = (gap > 0) & (gap < tau)  # (n, c, windows)
    near = (xw > (top2[..., :1] - tau)) & tied.unsqueeze(-1) & (iw >= 0)
    return torch.unique(iw[near].to(torch.int64))


def _records(op, x, params):
    """Units of x (float64) near a kink of op: (max|x|, [(flat index, value, kink)]).
    params: the kink points, or for MaxPool the pooling parameters (torch names)."""
    x = torch.as_tensor(x).to(torch.float64)
    amax = float(x.abs().max()) if x.numel() else 0.0
    tau = REL_TAU * amax
    recs = []
    flat = x.reshape(-1)
    if op == "MaxPool":
        for i in _maxpool_ties(x, params, tau).tolist():
            recs.append((i, float(flat[i]), math.nan))
    else:
        for kink in params:
            d = flat - kink
            sel = torch.nonzero((d.abs() < tau) & (d != 0)).reshape(-1)
            for i in sel.tolist():
                recs.append((i, float(flat[i]), kink))
    recs.sort()
    return amax, recs


def _check_name(name):
    if any(ch.isspace() for ch in name):
        raise ValueError("tensor name with white space: %r" % name)
    return name


def align_records(calls, onnx_path):
    """Matches the captured calls with the kinked nodes of the exported ONNX graph (same op
    sequence, else ValueError) and returns one (tensor_name, max_abs, [(index, value, kink)]) per
    kinked node, in graph order (the record list may be empty)."""
    import onnx

    m = onnx.load(onnx_path, load_external_data=False)
    nodes = [n for n in m.graph.node if n.op_type in KINK_OPS]
    seq_onnx = [n.op_type for n in nodes]
    seq_torch = []
    for op, _, _ in calls:
        # torch < opset 14 exports hardswish as HardSigmoid * x: the kinked node is HardSigmoid
        if op == "HardSwish" and "HardSwish" not in seq_onnx:
            op = "HardSigmoid"
        seq_torch.append(op)
    if seq_onnx != seq_torch:
        raise ValueError("kinked ops differ between torch and ONNX: %s vs %s" %
                         (seq_torch[:40], seq_onnx[:40]))
    out = []
    for node, (_, x, params) in zip(nodes, calls):
        amax, recs = _records(node.op_type, x, params)
        out.append((_check_name(node.input[0]), amax, recs))
    return out


def onnx_records(model, values):
    """Kink records straight from an ONNX graph. model: onnx.ModelProto; values(names) -> float64
    arrays of those tensors for the reference input (e.g. onnx.reference on a float64 copy).
    Returns the same list as align_records."""
    from onnx import helper

    nodes = [n for n in model.graph.node if n.op_type in KINK_OPS]
    want = []
    for n in nodes:
        want.append(n.input[0])
        if n.op_type == "Clip":
            want += [i for i in n.input[1:] if i]
    got = dict(zip(want, values(want)))
    out = []
    for n in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type in ("Relu", "LeakyRelu"):
            params = (0.0,)
        elif n.op_type == "HardSwish":
            params = (-3.0, 3.0)
        elif n.op_type == "HardSigmoid":
            alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
            params = (-beta / alpha, (1.0 - beta) / alpha)
        elif n.op_type == "Clip":
            lo, hi = attrs.get("min"), attrs.get("max")
            if len(n.input) > 1 and n.input[1]:
                lo = float(got[n.input[1]])
            if len(n.input) > 2 and n.input[2]:
                hi = float(got[n.input[2]])
            params = tuple(v for v in (lo, hi) if v is not None)
        else:  # MaxPool
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise NotImplementedError("MaxPool auto_pad")
            k = list(attrs["kernel_shape"])
            pads = list(attrs.get("pads", [0] * 2 * len(k)))
            if len(k) != 2 or pads[:2] != pads[2:]:
                raise NotImplementedError("MaxPool other than 2-D with symmetric pads")
            params = {"kernel_size": k, "stride": list(attrs.get("strides", [1, 1])),
                      "padding": pads[:2], "dilation": list(attrs.get("dilations", [1, 1])),
                      "ceil_mode": bool(attrs.get("ceil_mode", 0)), "return_indices": False}
        amax, recs = _records(n.op_type, got[n.input[0]], params)
        out.append((_check_name(n.input[0]), amax, recs))
    return out


class Align(TorchFunctionMode):
    """Replays records from align_records on a model run (same call sequence as the capture): at
    the recorded units the input of each kinked call is replaced by the reference value,
    straight-through for autograd (as idl_session_set_tap does). Used to check that the records
    make PyTorch's own float32 gradient agree with the float64 reference."""

    def __init__(self, records):
        super().__init__()
        self.records = records
        self.i = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        n = 0
        if name in ("relu", "relu_", "hardtanh", "hardtanh_", "hardswish", "hardsigmoid",
                    "leaky_relu", "leaky_relu_", "max_pool2d", "_max_pool2d",
                    "max_pool2d_with_indices"):
            n = 1
        elif name == "relu6":
            n = 2  # Relu then Clip(relu(x)): both act on units of x
        if n:
            recs = []
            for _ in range(n):
                recs += self.records[self.i][2]
                self.i += 1
            if recs:
                x = args[0]
                idx = torch.tensor([r[0] for r in recs], dtype=torch.int64)
                val = torch.tensor([r[1] for r in recs], dtype=x.dtype)
                delta = torch.zeros(x.numel(), dtype=x.dtype)
                delta[idx] = val - x.detach().reshape(-1)[idx]
                args = (x + delta.view_as(x),) + tuple(args[1:])
        return func(*args, **kwargs)


def write(path, records, note=""):
    n = sum(len(r) for _, _, r in records)
    with open(path, "w") as f:
        f.write("# kink alignment records (tests/reference/kinks.py), REL_TAU %g%s\n" %
                (REL_TAU, ("; " + note) if note else ""))
        for name, amax, recs in records:
            if not recs:
                continue
            f.write("tensor %s %d %.9g\n" % (name, len(recs), amax))
            for i, v, k in recs:
                f.write("%d %.9g %s\n" % (i, v, "nan" if math.isnan(k) else "%.9g" % k))
    return n
