#!/usr/bin/env python3
"""make_explain.py [OUTDIR] [--cases a,b] — regenerates the committed explanation-method fixtures
(default OUTDIR: tests/data/explain next to this script's folder), read by tests/test_explain.c
(--parity). Runs with the venv of setup_venv.sh (build/venv/bin/python: Debian's torch 1.13 plus
captum 0.7.0, grad-cam 1.5.5 and ttach 0.0.3, installed --no-deps; onnx is imported before torch,
see setup_venv.sh).
Captum and pytorch-grad-cam are only RUN here, to produce reference numbers; none of their code is
copied into the library.

Cases (OUTDIR/<case>/: model.onnx, input(s), targets.npy, the expected .npy files, case.txt,
meta.json):
  cnn_relu    3x32x32 CNN with nn.ReLU modules (non-inplace) and MaxPool: conv 8 -> pool1 -> relu1
              -> conv 16 -> relu2 (16x16, "M") -> conv 16 -> pool2 -> relu3 -> conv 16 -> relu4
              (8x8, "L") -> AdaptiveAvgPool2d(1) (GlobalAveragePool) -> flatten ->
              Linear(16, 10); opset 13. Each MaxPool comes before its ReLU (the same function),
              so no pooling window ties at 0. The input is redrawn until no unit is near a kink
              and each sample's Grad-CAM maps are positive on >= 10% of their positions.
              Saliency (abs 1 / 0, logit / probability, argmax targets), Input x Gradient, Guided
              Backprop, DeconvNet, the Grad-CAM family at L (the automatic layer: the input of the
              last global average pooling) and at M (where the gradient varies over positions;
              at L it is W[t, k] / 64 everywhere), CAM, Guided Grad-CAM.
  cnn_smooth  the same shape with smooth activations (Softplus, Tanh, SiLU) and AvgPool: no kinks,
              so the path and noise methods are smooth functions of the input. Integrated
              Gradients (every quadrature, probability objective, a baseline file, internal_batch,
              InterpretDL's linspace), SmoothGrad / SmoothGrad-squared / VarGrad, noise tunnel,
              GradientSHAP.
  text        the committed tiny_text transformer (tests/data/parity/tiny_text/model.onnx, copied;
              the torch model is rebuilt as make_transformers.py --fixture builds it and checked
              against that ONNX with ONNX Runtime). Attribution w.r.t. the word-embedding output
              (the token nn.Embedding, before position / type embeddings are added): Integrated
              Gradients (zero word vectors as the baseline, positions and types intact) and
              SmoothGrad, with wrt=<the Gather output> and without (automatic).
  vit_tiny    torchvision VisionTransformer(image_size=32, patch_size=8, num_layers=2,
              num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=5): a 4x4 patch grid plus the
              class token. Head weight N(0, 0.5^2) (torchvision zero-initialises it), class token
              and LayerNorms / attention re-initialised as make_transformers.py; every parameter
              requires gradients (no fused attention in the export: one Softmax per block, checked
              against PyTorch's); opset 14, input "x", dynamic batch. Saliency (signed),
              Integrated Gradients (Gauss-Legendre, 20 steps), SmoothGrad and GradientSHAP
              (4 replayed draws; both replay noise.npy), and the Grad-CAM family at the automatic
              layer of the C code, the residual stream entering the last attention block
              (encoder.layers[0]'s output, /encoder/layers/encoder_layer_0/Add_1_output_0, found
              by value): tokens (N, 17, 16) -> (N, 16, 4, 4), class token dropped, token
              1 + y*4 + x at (y, x) (pytorch-grad-cam's reshape_transform). Grad-CAM raw with no
              layer key and with layer=, Grad-CAM normalised and upsampled, Grad-CAM++ and
              LayerCAM raw. The input is redrawn until the two targets differ, every map is
              positive on >= 10% of the grid, and Grad-CAM++ is away from its pole
              (vit_gpp_margin: signed token activations make its denominator cross 0).

case.txt, one line per check ('#' comments):  METHOD EXPECTED.npy [key=value]...
  tol=R (default 1e-4: max|ours - ref| <= R * max|ref|), targets=argmax (no targets; default
  targets.npy), input=F / input.NAME=F (default input.npy); every other key=value goes to the
  method as a setting (`interpretdl explain --set`), .npy values relative to the case folder.
Every line names its objective (the library's default is the probability).

Numerics:
  - References in float64: model.double(), inputs / noise / baselines as float64 copies of the
    float32 files, torch's default dtype set to float64 while Captum runs (Captum builds its
    quadrature weights with torch.tensor(list), which would otherwise round them to float32).
    Stored as float32.
  - Every line is also computed the same way in float32 (the float32 model, PyTorch's own float32
    run); meta.json records max|fp32 - fp64| / max|fp64| per line as "fp32_vs_fp64", and the
    script fails if one exceeds FP32_LIMIT (1e-5): where that happens at a ReLU / MaxPool kink the
    input seed is changed (never the tolerance).
  - cnn_relu: every ReLU input unit is at least KINK_MARGIN * max|that tensor| away from 0 and every
    MaxPool window's two largest values are at least that far apart (checked in float64; the input
    is redrawn, with the next seed, until this holds). cnn_smooth has no kinks.
  - pytorch-grad-cam's raw map (relu(sum_k w_k A_k) at the layer's resolution) comes from running
    the library with its scale_cam_image (min-max + cv2.resize) replaced by the identity in
    pytorch_grad_cam.base_cam, and is checked against cam.get_cam_image() on the activations and
    gradients the library captured, followed by the library's np.maximum(cam, 0). Its normalised
    and upsampled output is the library's own __call__ (which works in float32 from
    scale_cam_image on: references of those lines carry float32 rounding, ~1e-7).
  - Noise tunnel: Captum's NoiseTunnel with torch.normal replaced, for that call, by a function that
    returns the noise file laid out as NoiseTunnel adds it (input.repeat_interleave(nt_samples):
    row b * nt_samples + s gets noise[s, b]); cross-checked against plain torch code.
  - SmoothGrad (signed), VarGrad, SmoothGrad-squared, GradientSHAP, CAM and IG method=linspace are
    plain torch float64 code; SmoothGrad and its variants are cross-checked against Captum's
    NoiseTunnel(Saliency(abs=False)) with the same replayed noise, Captum's IG against the same
    quadratures written out in torch, Grad-CAM at L against CAM / 64 (meta.json
    "cross_check_rel_err").
  - Grad-CAM lines with objective=probability explain the argmax class (targets=argmax): for a
    class that is not the argmax the softmax gradient mostly points away from the winner, and
    ReLU(map) was 0 everywhere.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402  (before torch: see setup_venv.sh)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_transformers as mtr  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import captum  # noqa: E402
import captum.attr as ca  # noqa: E402
import cv2  # noqa: E402
import pytorch_grad_cam as pgc  # noqa: E402
import pytorch_grad_cam.base_cam as pgc_base  # noqa: E402
from pytorch_grad_cam.utils.model_targets import (  # noqa: E402
    ClassifierOutputSoftmaxTarget, ClassifierOutputTarget)

OPSET = 13
BATCH = 2
FP32_LIMIT = 1e-5   # PyTorch float32 vs the float64 reference, every line
KINK_MARGIN = 1e-5  # ReLU inputs / MaxPool runner-ups, relative to max|tensor|
MAX_TRIES = 200
MIN_POSITIVE = 0.1  # cnn_relu: every Grad-CAM map positive on >= 10% of each sample's positions
NOISE_REL = 0.1     # SmoothGrad sigma = NOISE_REL * (max - min) of each sample
N_SG, N_GS, N_TEXT_SG = 8, 6, 4
TINY_TEXT = os.path.join(HERE, "..", "data", "parity", "tiny_text", "model.onnx")


def seed_of(name):
    return 1000 + sum((i + 1) * ord(c) for i, c in enumerate(name))


def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def np_(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


@contextlib.contextmanager
def default_dtype(dt):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dt)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def replay_normal(noise_sn):
    """Replaces torch.normal while Captum's NoiseTunnel draws: returns noise_sn (S, N, ...) laid
    out as NoiseTunnel adds it (input.repeat_interleave(S, dim=0): row b*S + s is sample b, draw
    s). Counts the calls (NoiseTunnel draws once per input tensor and partition)."""
    orig = torch.normal
    calls = []

    def normal(mean, std, *a, **k):
        s, n = noise_sn.shape[:2]
        z = noise_sn.transpose(0, 1).reshape((n * s,) + tuple(noise_sn.shape[2:]))
        if tuple(std.shape) != tuple(z.shape):
            raise RuntimeError("noise tunnel drew %s, replay has %s" % (tuple(std.shape),
                                                                     tuple(z.shape)))
        calls.append(tuple(z.shape))
        return z.to(std.dtype) + mean
    torch.normal = normal
    try:
        yield calls
    finally:
        torch.normal = orig


class Prob(nn.Module):
    """The probability objective for Captum / pytorch-grad-cam: softmax over the classes."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, *a):
        return torch.softmax(self.m(*a), dim=1)


def objective_sum(out, targets, kind):
    z = out if kind == "logit" else torch.softmax(out, dim=1)
    return z.gather(1, targets.view(-1, 1)).sum()


def grad_at(f, x, targets, kind):
    """d/dx of sum_b objective(f(x))[b, t_b]; x (B, ...) with targets (B,)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(objective_sum(f(x), targets, kind), x)
    return g.detach()


def smooth_fn(targets, kind, stat):
    """SmoothGrad replayed: the mean ("mean"), mean of squares ("sq") or variance ("var") of the
    gradients at x + noise[s] over the draws s; fn(m, x, noise)."""
    def fn(m, xx, nz):
        gs = torch.stack([grad_at(m, xx + nz[s], targets, kind) for s in range(nz.shape[0])])
        mean, sq = gs.mean(0), (gs * gs).mean(0)
        return {"mean": mean, "sq": sq, "var": sq - mean * mean}[stat]
    return fn


def gradient_shap_fn(targets):
    """GradientSHAP replayed, logit objective: mean over draws s of
    grad(b + alpha[s] (x + noise[s] - b)) * (x + noise[s] - b); fn(m, x, noise, alpha, b)."""
    def fn(m, xx, nz, al, bb):
        acc = torch.zeros_like(xx)
        for s in range(nz.shape[0]):
            xt = xx + nz[s]
            a = al[s].view(-1, 1, 1, 1)
            acc += grad_at(m, bb + a * (xt - bb), targets, "logit") * (xt - bb)
        return acc / nz.shape[0]
    return fn


def pick_targets(logits, gen):
    """Per sample a seeded class that is not the argmax (as make_torchvision.py)."""
    top = logits.argmax(dim=1)
    t = torch.randint(0, logits.shape[1] - 1, (logits.shape[0],), generator=gen)
    return torch.where(t >= top, t + 1, t).to(torch.int64)


# ---------------------------------------------------------------- models

class CNNRelu(nn.Module):
    def __init__(self):
        super().__init__()
        # MaxPool before its ReLU (the same function as after it): the pooled values are
        # continuous, so a window never ties at 0 (where the gradient's route would depend on the
        # tie rule, and DeconvNet, which ignores the forward mask, would pass it on)
        self.features = nn.Sequential(collections.OrderedDict([
            ("conv1", nn.Conv2d(3, 8, 3, padding=1)), ("pool1", nn.MaxPool2d(2)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("relu2", nn.ReLU()),
            ("conv3", nn.Conv2d(16, 16, 3, padding=1)), ("pool2", nn.MaxPool2d(2)),
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(16, 16, 3, padding=1)), ("relu4", nn.ReLU()),
        ]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class CNNSmooth(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(collections.OrderedDict([
            ("conv1", nn.Conv2d(3, 8, 3, padding=1)), ("act1", nn.Softplus()),
            ("pool1", nn.AvgPool2d(2)),
            ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("act2", nn.Tanh()),
            ("pool2", nn.AvgPool2d(2)),
            ("conv3", nn.Conv2d(16, 16, 3, padding=1)), ("act3", nn.SiLU()),
        ]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def calibrate(model, gen, shape):
    """Random weights of a trained-looking scale: conv by conv, biases ~ N(0, 0.1) and the layer
    scaled so that its output has unit std on a seeded calibration batch; the head so that the
    logits vary with std 1.5 around the same mean for every class. (PyTorch's default init
    shrinks the activations layer after layer.)"""
    xc = torch.randn((8,) + shape, generator=gen)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=gen))
            rec = {}
            h = conv.register_forward_hook(lambda m, i, o: rec.__setitem__("o", o))
            model(xc)
            h.remove()
            s = float(rec["o"].std())
            conv.weight.div_(s)
            conv.bias.div_(s)
        model.fc.bias.zero_()
        z = model(xc)
        s = float((z - z.mean(dim=0)).std())
        model.fc.weight.mul_(1.5 / s)
        # centred classes (no class wins for every input), plus a little seeded bias
        model.fc.bias.copy_(-z.mean(dim=0) * (1.5 / s) +
                            0.1 * torch.randn(model.fc.bias.shape, generator=gen))
    model.eval()


def export(model, x, path):
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      opset_version=OPSET, do_constant_folding=True,
                      training=torch.onnx.TrainingMode.EVAL)
    return onnx.load(path)


def onnx_layer_names(om, model, x64, modules):
    """ONNX names of the outputs of `modules` ({label: module}) of the exported graph: the node
    output whose ONNX Runtime value equals the module's float64 output (must be unique). Also
    returns the input of the last GlobalAveragePool."""
    cands = mtr.float_tensors(om)
    rec = {}
    hs = [m.register_forward_hook(lambda mod, i, o, k=k: rec.__setitem__(k, np_(o)))
          for k, m in modules.items()]
    with torch.no_grad():
        model(x64)
    for h in hs:
        h.remove()
    feeds = {"input": x64.float().numpy()}
    _, vals = mtr.ort_run(om, feeds, cands)
    names, diffs = {}, {}
    for k, ref in rec.items():
        hits = [(c, rel_err(vals[c], ref)) for c in cands
                if vals.get(c) is not None and vals[c].shape == ref.shape
                and rel_err(vals[c], ref) < 1e-5]
        if len(hits) != 1:
            raise RuntimeError("layer %s: %d ONNX tensors match (%s)" % (k, len(hits), hits))
        names[k], diffs[k] = hits[0]
    gap = [n for n in om.graph.node if n.op_type == "GlobalAveragePool"]
    return names, diffs, gap[-1].input[0]


# ---------------------------------------------------------------- case bookkeeping

class Case:
    def __init__(self, outdir, name):
        self.name = name
        self.d = os.path.join(outdir, name)
        if os.path.isdir(self.d):
            shutil.rmtree(self.d)
        os.makedirs(self.d)
        self.lines = []   # case.txt text lines
        self.meta_lines = []
        self.saved = {}

    def save(self, fname, arr):
        np.save(os.path.join(self.d, fname), arr)
        return fname

    def comment(self, text):
        self.lines.append("# " + text)

    def add(self, method, expected, settings, ref64, ref32, call, cross=None, note=None):
        """One check line. ref64 / ref32: the reference and PyTorch's float32 run of the same
        computation (numpy); expected: file name (saved once; later lines may reuse it)."""
        ref64 = np.asarray(ref64, np.float64)
        if expected in self.saved:
            if rel_err(self.saved[expected], ref64) > 1e-12:
                raise RuntimeError("%s: %s computed twice with different values" % (
                    self.name, expected))
        else:
            self.save(expected, ref64.astype(np.float32))
            self.saved[expected] = ref64
        err = rel_err(ref32, ref64)
        line = " ".join([method, expected] + settings)
        if note:
            self.lines.append("# " + note)
        self.lines.append(line)
        ml = {"line": line, "reference": call, "fp32_vs_fp64": err,
              "shape": list(ref64.shape), "max_abs": float(np.max(np.abs(ref64)))}
        if cross:
            ml["cross_check_rel_err"] = cross
        self.meta_lines.append(ml)
        return err

    def finish(self, meta, header):
        with open(os.path.join(self.d, "case.txt"), "w") as f:
            f.write("# explanation parity case %s (tests/reference/make_explain.py; format in "
                    "tests/test_explain.c)\n" % self.name)
            for h in header:
                f.write("# %s\n" % h)
            for ln in self.lines:
                f.write(ln + "\n")
        meta["lines"] = self.meta_lines
        errs = [m["fp32_vs_fp64"] for m in self.meta_lines]
        meta["fp32_vs_fp64_max"] = max(errs)
        crosses = [v for m in self.meta_lines for v in m.get("cross_check_rel_err", {}).values()]
        meta["cross_check_max"] = max(crosses) if crosses else None
        with open(os.path.join(self.d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        bad = [m for m in self.meta_lines if m["fp32_vs_fp64"] > FP32_LIMIT]
        if bad:
            raise RuntimeError("%s: PyTorch float32 vs float64 above %g on: %s" % (
                self.name, FP32_LIMIT, [(m["line"], m["fp32_vs_fp64"]) for m in bad]))
        size = sum(os.path.getsize(os.path.join(self.d, f)) for f in os.listdir(self.d))
        print("%-11s %2d lines  fp32 vs fp64 (worst) %.1e  cross-checks (worst) %s  %7d bytes" % (
            self.name, sum(1 for ln in self.lines if not ln.startswith("#")), max(errs),
            "%.1e" % meta["cross_check_max"] if crosses else "-", size), flush=True)


def versions():
    return {"torch": torch.__version__, "captum": captum.__version__,
            "grad-cam": importlib.metadata.version("grad-cam"),
            "ttach": importlib.metadata.version("ttach"), "numpy": np.__version__,
            "onnx": onnx.__version__, "onnxruntime": __import__("onnxruntime").__version__,
            "opencv": cv2.__version__}


def both(fn, m32, m64, *arrays):
    """fn(model, *tensors) -> numpy, run in float64 (default dtype float64) and float32."""
    with default_dtype(torch.float64):
        r64 = fn(m64, *[torch.from_numpy(np.asarray(a)).double() if a.dtype.kind == "f"
                        else torch.from_numpy(a) for a in arrays])
    r32 = fn(m32, *[torch.from_numpy(np.asarray(a)) for a in arrays])
    return np_(r64), np_(r32)


# ---------------------------------------------------------------- kinks

def kink_margins(model, x64):
    """float64: per ReLU, min |input| / max |input|; per MaxPool, min over windows of
    (largest - second largest) / max |input|."""
    out = {}
    hs = []
    for name, m in model.named_modules():
        if isinstance(m, nn.ReLU):
            def relu_hook(mod, i, o, name=name):
                z = i[0].abs()
                out[name] = float(z.min() / z.max())
            hs.append(m.register_forward_hook(relu_hook))
        elif isinstance(m, nn.MaxPool2d):
            def pool_hook(mod, i, o, name=name):
                z = i[0]
                k = mod.kernel_size
                w = F.unfold(z.reshape((-1, 1) + z.shape[2:]), k, stride=k)  # (B*C, k*k, L)
                top2 = w.topk(2, dim=1).values
                out[name] = float((top2[:, 0] - top2[:, 1]).min() / z.abs().max())
            hs.append(m.register_forward_hook(pool_hook))
    with torch.no_grad():
        model(x64)
    for h in hs:
        h.remove()
    return out


# ---------------------------------------------------------------- Grad-CAM helpers

CAMS = {"gradcam": pgc.GradCAM, "gradcam_plus_plus": pgc.GradCAMPlusPlus,
        "xgradcam": pgc.XGradCAM, "layercam": pgc.LayerCAM}


def cam_targets(t, kind):
    cls = ClassifierOutputTarget if kind == "logit" else ClassifierOutputSoftmaxTarget
    return [cls(int(k)) for k in t]


def layer_of(model, label):
    """cnn_*: the name of a module of model.features; vit_tiny: a function of the model."""
    return label(model) if callable(label) else getattr(model.features, label)


def pgc_raw(cls, model, label, x, t, kind, reshape=None):
    """pytorch-grad-cam's map before min-max / resize (see the module comment); also returns the
    max difference to get_cam_image on the captured activations / gradients (which the library
    stores after its reshape_transform)."""
    layer = layer_of(model, label)
    targets = cam_targets(t, kind)
    with cls(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        orig = pgc_base.scale_cam_image
        pgc_base.scale_cam_image = lambda img, target_size=None: np.asarray(img)
        try:
            raw = cam(input_tensor=x, targets=targets)
        finally:
            pgc_base.scale_cam_image = orig
        acts = cam.activations_and_grads.activations[0].numpy()
        grads = cam.activations_and_grads.gradients[0].numpy()
        raw2 = np.maximum(cam.get_cam_image(x, layer, targets, acts, grads, False), 0)
    return raw, rel_err(raw2, raw)


def cam_positive_fractions(model, x, t, top):
    """Per map and sample: the fraction of positions where pytorch-grad-cam's raw map is > 0
    (smallest over the samples), for the maps of cnn_relu's lines with a ReLU."""
    res = {}
    for method, cls in CAMS.items():
        for label in ("relu2", "relu4"):
            raw, _ = pgc_raw(cls, model, label, x, t, "logit")
            res["%s_%s" % (method, label)] = float((raw > 0).reshape(len(raw), -1).mean(1).min())
    raw, _ = pgc_raw(pgc.GradCAM, model, "relu2", x, top, "probability")
    res["gradcam_relu2_probability_argmax"] = float((raw > 0).reshape(len(raw), -1).mean(1).min())
    return res


def pgc_full(cls, model, label, x, t, kind, reshape=None):
    with cls(model=model, target_layers=[layer_of(model, label)],
             reshape_transform=reshape) as cam:
        return cam(input_tensor=x, targets=cam_targets(t, kind))


def minmax(a):
    a = a - a.amin(dim=(1, 2), keepdim=True)
    return a / (1e-7 + a.amax(dim=(1, 2), keepdim=True))


# ---------------------------------------------------------------- cnn_relu

def make_cnn_relu(outdir):
    t0 = time.time()
    name = "cnn_relu"
    case = Case(outdir, name)
    seed = seed_of(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = CNNRelu()
    calibrate(model, gen, (3, 32, 32))
    m32 = copy.deepcopy(model)
    m64 = copy.deepcopy(model).double()

    # the input: redrawn until no unit is near a kink and every sample's Grad-CAM maps have
    # positive parts (a map that the ReLU zeroes tests nothing)
    tries = []
    for k in range(MAX_TRIES):
        gx = torch.Generator().manual_seed(seed * 100 + k)
        x = torch.randn((BATCH, 3, 32, 32), generator=gx)
        margins = kink_margins(m64, x.double())
        with torch.no_grad():
            logits64 = m64(x.double())
        t = pick_targets(logits64, gx)
        argmax = logits64.argmax(dim=1)
        pos = cam_positive_fractions(m64, x.double(), t.numpy(), argmax.numpy())
        tries.append({"input_seed": seed * 100 + k, "min_kink_margin": min(margins.values()),
                      "min_positive_fraction": min(pos.values())})
        if (min(margins.values()) >= KINK_MARGIN and min(pos.values()) >= MIN_POSITIVE
                and len(set(argmax.tolist())) == BATCH):
            break
    else:
        raise RuntimeError("cnn_relu: no suitable input in %d tries" % MAX_TRIES)
    xn = x.numpy()
    top2 = logits64.topk(2, dim=1).values
    tn = t.numpy()

    om = export(model, x, os.path.join(case.d, "model.onnx"))
    outs, _ = mtr.ort_run(om, {"input": xn})
    ort_err = rel_err(outs[0], logits64.numpy())
    labels = {"relu2": m64.features.relu2, "relu4": m64.features.relu4}
    names, name_diffs, gap_in = onnx_layer_names(om, m64, x.double(), labels)
    L, M = names["relu4"], names["relu2"]
    if gap_in != L:
        raise RuntimeError("the GlobalAveragePool input is %s, not relu4's output %s" % (gap_in, L))
    case.save("input.npy", xn)
    case.save("targets.npy", tn.astype(np.int64))

    lg, pr = "objective=logit", "objective=probability"

    # --- gradients
    def sal(abs_, kind, tg=None):
        def fn(m, xx):
            f = m if kind == "logit" else Prob(m)
            return ca.Saliency(f).attribute(xx, target=torch.from_numpy(tg if tg is not None
                                                                        else tn), abs=abs_)
        return fn
    case.comment("gradients (Captum; PyTorch float32 vs float64 in meta.json)")
    r = both(sal(True, "logit"), m32, m64, xn)
    case.add("saliency", "saliency_logit.npy", [lg], *r,
             "captum.attr.Saliency(model).attribute(x, target=targets, abs=True)")
    r = both(sal(False, "logit"), m32, m64, xn)
    own = np_(grad_at(m64, x.double(), t, "logit"))
    case.add("saliency", "saliency_signed_logit.npy", ["abs=0", lg], *r,
             "captum.attr.Saliency(model).attribute(x, target=targets, abs=False)",
             cross={"torch.autograd.grad": rel_err(own, r[0])})
    r = both(sal(True, "probability"), m32, m64, xn)
    case.add("saliency", "saliency_probability.npy", [pr], *r,
             "captum.attr.Saliency(Prob(model)).attribute(x, target=targets, abs=True); "
             "Prob = softmax(model(x), dim=1)")
    r = both(sal(True, "logit", argmax.numpy()), m32, m64, xn)
    case.add("saliency", "saliency_logit_argmax.npy", ["targets=argmax", lg], *r,
             "captum.attr.Saliency(model).attribute(x, target=argmax(model(x)), abs=True); "
             "argmax %s, top-2 logit gaps %s" % (argmax.tolist(),
                                                 (top2[:, 0] - top2[:, 1]).tolist()))
    r = both(lambda m, xx: ca.InputXGradient(m).attribute(xx, target=t), m32, m64, xn)
    case.add("input_x_gradient", "input_x_gradient_logit.npy", [lg], *r,
             "captum.attr.InputXGradient(model).attribute(x, target=targets)")
    r = both(lambda m, xx: ca.GuidedBackprop(m).attribute(xx, target=t), m32, m64, xn)
    case.add("guided_backprop", "guided_backprop_logit.npy", [lg], *r,
             "captum.attr.GuidedBackprop(model).attribute(x, target=targets)")
    r = both(lambda m, xx: ca.GuidedBackprop(Prob(m)).attribute(xx, target=t), m32, m64, xn)
    case.add("guided_backprop", "guided_backprop_probability.npy", [pr], *r,
             "captum.attr.GuidedBackprop(Prob(model)).attribute(x, target=targets)")
    r = both(lambda m, xx: ca.Deconvolution(m).attribute(xx, target=t), m32, m64, xn)
    case.add("deconvnet", "deconvnet_logit.npy", [lg], *r,
             "captum.attr.Deconvolution(model).attribute(x, target=targets)")

    # --- class activation maps
    layers = {"L": ("relu4", L), "M": ("relu2", M)}
    case.comment("class activation maps. L = %s (8x8, relu4, the input of the global average "
                 "pooling: the automatic layer); M = %s (16x16, relu2)" % (L, M))
    raw_checks = {}
    for method, cls in CAMS.items():
        plan = [("L", "logit", "raw"), ("L", "logit", "full"), ("M", "logit", "raw")]
        if method == "gradcam":
            plan += [("M", "probability", "raw"), ("M", "logit", "full")]
        if method == "layercam":
            plan += [("M", "logit", "full")]
        for lab, kind, what in plan:
            label, lname = layers[lab]
            obj = lg if kind == "logit" else pr
            tgt = ("ClassifierOutputTarget" if kind == "logit"
                   else "ClassifierOutputSoftmaxTarget")
            fname = "%s_%s_%s%s.npy" % (method, lab,
                                        "" if kind == "logit" else "probability_argmax_", what)
            # the probability line explains the argmax class (for a class that is not the
            # argmax, the softmax gradient mostly pushes away from the winner: ReLU(map) = 0)
            tgs, tset = (tn, []) if kind == "logit" else (argmax.numpy(), ["targets=argmax"])
            if what == "raw":
                def fn(m, xx, cls=cls, label=label, kind=kind, key=fname, tgs=tgs):
                    raw, d = pgc_raw(cls, m, label, xx, tgs, kind)
                    raw_checks.setdefault(key, []).append(d)
                    return raw
                r = both(fn, m32, m64, xn)
                call = ("pytorch_grad_cam.%s(model, target_layers=[model.features.%s])(x, "
                        "targets=[%s(t) for t in targets]) with "
                        "pytorch_grad_cam.base_cam.scale_cam_image replaced by the identity "
                        "(= np.maximum(cam.get_cam_image(...), 0) on the captured activations / "
                        "gradients)" % (cls.__name__, label, tgt))
                if tset:
                    call = call.replace("for t in targets", "for t in argmax(model(x))")
                cross = {"get_cam_image_vs_call": max(raw_checks[fname])}
                case.add(method, fname, ["layer=" + lname] + tset + [obj], *r, call, cross=cross)
                if method == "gradcam" and lab == "L" and kind == "logit":
                    case.add(method, fname, [obj], *r, call + "; no layer key: the automatic "
                             "layer is the same tensor")
                    # Captum's LayerGradCam (no ReLU by default)
                if method == "gradcam" and kind == "logit":
                    def lgc(m, xx, label=label):
                        return ca.LayerGradCam(m, layer_of(m, label)).attribute(
                            xx, target=torch.from_numpy(tn)).squeeze(1)
                    r2 = both(lgc, m32, m64, xn)
                    case.add(method, "gradcam_%s_captum_norelu.npy" % lab,
                             ["layer=" + lname, "relu=0", obj], *r2,
                             "captum.attr.LayerGradCam(model, model.features.%s).attribute(x, "
                             "target=targets) (relu_attributions=False), squeezed to (N, h, w)"
                             % label,
                             cross={"relu(captum) vs pytorch-grad-cam raw":
                                    rel_err(np.maximum(r2[0], 0), r[0])})
            else:
                def fn(m, xx, cls=cls, label=label, kind=kind):
                    return pgc_full(cls, m, label, xx, tn, kind)
                r = both(fn, m32, m64, xn)
                # independent: min-max, bilinear (half-pixel), min-max again, in float64
                raw64, _ = pgc_raw(cls, m64, label, x.double(), tn, kind)
                up = F.interpolate(minmax(torch.from_numpy(raw64))[:, None], size=(32, 32),
                                   mode="bilinear", align_corners=False)[:, 0]
                mine = minmax(up).numpy()
                case.add(method, fname, ["layer=" + lname, "normalize=1", "upsample=1", obj],
                         *r, "pytorch_grad_cam.%s(model, target_layers=[model.features.%s])(x, "
                         "targets=[%s(t) for t in targets]) (min-max per sample, cv2.resize "
                         "INTER_LINEAR to 32x32, min-max again; float32 from scale_cam_image on)"
                         % (cls.__name__, label, tgt),
                         cross={"minmax(bilinear(minmax(raw))) in torch float64":
                                rel_err(mine, r[0])})

    # CAM (Zhou et al.): torch float64
    def cam_fn(m, xx):
        rec = {}
        h = m.features.relu4.register_forward_hook(lambda mod, i, o: rec.__setitem__("a", o))
        with torch.no_grad():
            m(xx)
        h.remove()
        w = m.fc.weight[torch.from_numpy(tn)]  # (N, K)
        return torch.einsum("nk,nkhw->nhw", w, rec["a"])
    r = both(cam_fn, m32, m64, xn)
    gc_raw = case.saved["gradcam_L_raw.npy"]
    cross = {"relu(cam) / 64 vs gradcam raw at L": rel_err(np.maximum(r[0], 0) / 64.0, gc_raw)}
    case.add("cam", "cam_logit.npy", [lg], *r,
             "torch float64: sum_k fc.weight[t, k] * relu4_output[n, k] (no bias, no ReLU, no "
             "normalisation)", cross=cross)
    case.add("cam", "cam_logit.npy", ["layer=" + L, lg], *r, "as the line before, layer named")

    # Guided Grad-CAM (Captum)
    case.comment("Guided Grad-CAM (Captum GuidedGradCam: guided backprop x ReLU(Grad-CAM) "
                 "upsampled, nearest by default)")
    for lab, mode, extra in (("L", "nearest", []), ("M", "nearest", []),
                             ("L", "bilinear", ["interpolate=bilinear"])):
        label, lname = layers[lab]

        def ggc(m, xx, label=label, mode=mode):
            return ca.GuidedGradCam(m, layer_of(m, label)).attribute(
                xx, target=torch.from_numpy(tn), interpolate_mode=mode)
        r = both(ggc, m32, m64, xn)
        case.add("guided_gradcam", "guided_gradcam_%s_%s.npy" % (lab, mode),
                 ["layer=" + lname] + extra + [lg], *r,
                 "captum.attr.GuidedGradCam(model, model.features.%s).attribute(x, "
                 "target=targets, interpolate_mode=%r)" % (label, mode))

    meta = {"source": "tests/reference/make_explain.py:CNNRelu", "seed": seed,
            "input_tries": tries, "kink_margins_fp64": margins, "kink_margin_required":
            KINK_MARGIN, "opset": OPSET, "ops": mtr.count_ops(om), "layers": names,
            "layer_value_rel_diff_onnxruntime": name_diffs, "automatic_layer": gap_in,
            "targets": tn.tolist(), "argmax": argmax.tolist(),
            "logits_fp64": logits64.tolist(), "onnxruntime_vs_fp64_logits": ort_err,
            "reference": "float64 (model.double()), stored as float32", **versions()}
    meta["seconds"] = round(time.time() - t0, 2)
    case.finish(meta, ["model: %s" % meta["source"], "targets.npy: per sample a seeded class "
                       "that is not the argmax; every line names its objective"])


# ---------------------------------------------------------------- cnn_smooth

def make_cnn_smooth(outdir):
    t0 = time.time()
    name = "cnn_smooth"
    case = Case(outdir, name)
    seed = seed_of(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = CNNSmooth()
    calibrate(model, gen, (3, 32, 32))
    m32 = copy.deepcopy(model)
    m64 = copy.deepcopy(model).double()
    x = torch.randn((BATCH, 3, 32, 32), generator=gen)
    xn = x.numpy()
    with torch.no_grad():
        logits64 = m64(x.double())
    t = pick_targets(logits64, gen)
    tn = t.numpy()
    om = export(model, x, os.path.join(case.d, "model.onnx"))
    outs, _ = mtr.ort_run(om, {"input": xn})
    ort_err = rel_err(outs[0], logits64.numpy())
    case.save("input.npy", xn)
    case.save("targets.npy", tn.astype(np.int64))

    rng = np.random.default_rng(seed)
    base = (0.5 * rng.standard_normal(xn.shape)).astype(np.float32)
    case.save("base.npy", base)
    sigma = NOISE_REL * (xn.reshape(BATCH, -1).max(1) - xn.reshape(BATCH, -1).min(1))
    noise = (rng.standard_normal((N_SG,) + xn.shape) *
             sigma[None, :, None, None, None]).astype(np.float32)
    case.save("noise.npy", noise)
    noise_s = (rng.standard_normal((N_GS,) + xn.shape) *
               sigma[None, :, None, None, None]).astype(np.float32)
    case.save("noiseS.npy", noise_s)
    alpha = rng.random((N_GS, BATCH)).astype(np.float32)
    case.save("alpha.npy", alpha)
    lg, pr = "objective=logit", "objective=probability"
    tt = torch.from_numpy(tn)

    # --- Integrated Gradients
    case.comment("Integrated Gradients (Captum), zero baseline unless baseline= is given")

    def ig(method, kind="logit", with_base=False):
        def fn(m, xx, bb=None):
            f = m if kind == "logit" else Prob(m)
            kw = {"baselines": bb} if with_base else {}
            return ca.IntegratedGradients(f).attribute(xx, target=tt, n_steps=50,
                                                       method=method, **kw)
        return fn

    def own_ig(alphas, weights, kind="logit"):
        def fn(m, xx, bb=None):
            bb = torch.zeros_like(xx) if bb is None else bb
            acc = torch.zeros_like(xx)
            for a, w in zip(alphas, weights):
                acc += w * grad_at(m, bb + a * (xx - bb), tt, kind)
            return (xx - bb) * acc
        return fn
    quad = {"riemann_left": (np.linspace(0, 1 - 1 / 50, 50), [1 / 50] * 50),
            "riemann_right": (np.linspace(1 / 50, 1, 50), [1 / 50] * 50),
            "riemann_middle": (np.linspace(1 / 100, 1 - 1 / 100, 50), [1 / 50] * 50),
            "riemann_trapezoid": (np.linspace(0, 1, 50), [0.01] + [1 / 50] * 48 + [0.01])}
    z, w = np.polynomial.legendre.leggauss(50)
    quad["gausslegendre"] = (0.5 * (z + 1), 0.5 * w)
    for method in ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                   "riemann_trapezoid"):
        r = both(ig(method), m32, m64, xn)
        with default_dtype(torch.float64):
            own = np_(own_ig(*quad[method])(m64, x.double()))
        case.add("integrated_gradients", "ig_%s_logit.npy" % method,
                 ["steps=50", "method=" + method, lg], *r,
                 "captum.attr.IntegratedGradients(model).attribute(x, target=targets, "
                 "n_steps=50, method=%r) (zero baseline)" % method,
                 cross={"own quadrature in torch float64": rel_err(own, r[0])})
        if method == "gausslegendre":
            case.add("integrated_gradients", "ig_gausslegendre_logit.npy",
                     ["steps=50", "method=gausslegendre", "internal_batch=7", lg], *r,
                     "as the gausslegendre line (internal_batch only changes the C batching)")
    r = both(ig("gausslegendre", "probability"), m32, m64, xn)
    case.add("integrated_gradients", "ig_gausslegendre_probability.npy",
             ["steps=50", "method=gausslegendre", pr], *r,
             "captum.attr.IntegratedGradients(Prob(model)).attribute(x, target=targets, "
             "n_steps=50, method='gausslegendre')")
    r = both(ig("riemann_trapezoid", with_base=True), m32, m64, xn, base)
    case.add("integrated_gradients", "ig_riemann_trapezoid_base_logit.npy",
             ["steps=50", "method=riemann_trapezoid", "baseline=base.npy", lg], *r,
             "captum.attr.IntegratedGradients(model).attribute(x, baselines=base, "
             "target=targets, n_steps=50, method='riemann_trapezoid')")
    r = both(ig("gausslegendre", with_base=True), m32, m64, xn, base)
    case.add("integrated_gradients", "ig_gausslegendre_base_logit.npy",
             ["steps=50", "method=gausslegendre", "baseline=base.npy", lg], *r,
             "captum.attr.IntegratedGradients(model).attribute(x, baselines=base, "
             "target=targets, n_steps=50, method='gausslegendre')")
    lin = np.linspace(0, 1, 50)
    r = both(own_ig(lin, [1 / 50] * 50), m32, m64, xn)
    case.add("integrated_gradients", "ig_linspace_logit.npy",
             ["steps=50", "method=linspace", lg], *r,
             "torch float64 (InterpretDL's rule): alphas = numpy.linspace(0, 1, 50), "
             "IG = (x - 0) * mean_k grad(alpha_k x)")

    # --- SmoothGrad family (own torch; cross-checked with Captum NoiseTunnel)
    case.comment("SmoothGrad family: noise.npy (%d, N, C, H, W), sigma = %g * (max - min) of "
                 "each sample, numpy seed %d" % (N_SG, NOISE_REL, seed))

    def nt(base_cls, kind, nt_type, **kw):
        def fn(m, xx, nz):
            f = m if kind == "logit" else Prob(m)
            with replay_normal(nz):
                return ca.NoiseTunnel(base_cls(f)).attribute(
                    xx, nt_type=nt_type, nt_samples=nz.shape[0], stdevs=1.0, target=tt, **kw)
        return fn
    sg_set = ["n_samples=%d" % N_SG, "noise_file=noise.npy"]
    for method, stat, nt_type in (("smoothgrad", "mean", "smoothgrad"),
                                  ("smoothgrad_sq", "sq", "smoothgrad_sq"),
                                  ("vargrad", "var", "vargrad")):
        for kind in (("logit", "probability") if method == "smoothgrad" else ("logit",)):
            r = both(smooth_fn(tt, kind, stat), m32, m64, xn, noise)
            with default_dtype(torch.float64):
                c = np_(nt(ca.Saliency, kind, nt_type, abs=False)(
                    m64, x.double(), torch.from_numpy(noise).double()))
            case.add(method, "%s_%s.npy" % (method, kind), sg_set + ["objective=" + kind], *r,
                     "torch float64: %s over s of grad(x + noise[s]) (signed)" % {
                         "mean": "mean", "sq": "mean of squares",
                         "var": "mean of squares - square of mean"}[stat],
                     cross={"captum NoiseTunnel(Saliency, abs=False, nt_type=%r), noise "
                            "replayed" % nt_type: rel_err(c, r[0])})

    case.comment("noise tunnel (Captum NoiseTunnel with the noise replayed; see make_explain.py)")
    for base_name, base_cls, nt_type, kind, extra, kw in (
            ("saliency", ca.Saliency, "smoothgrad", "logit", [], {}),
            ("input_x_gradient", ca.InputXGradient, "smoothgrad_sq", "logit", [], {}),
            ("saliency", ca.Saliency, "vargrad", "logit", ["abs=0"], {"abs": False})):
        r = both(nt(base_cls, kind, nt_type, **kw), m32, m64, xn, noise)

        def own(m, xx, nz, base_name=base_name, kind=kind, nt_type=nt_type, kw=kw):
            atts = []
            for s in range(nz.shape[0]):
                xs = xx + nz[s]
                g = grad_at(m, xs, tt, kind)
                if base_name == "input_x_gradient":
                    atts.append(g * xs)
                else:
                    atts.append(g.abs() if kw.get("abs", True) else g)
            a = torch.stack(atts)
            mean, sq = a.mean(0), (a * a).mean(0)
            return {"smoothgrad": mean, "smoothgrad_sq": sq, "vargrad": sq - mean * mean}[nt_type]
        with default_dtype(torch.float64):
            o = np_(own(m64, x.double(), torch.from_numpy(noise).double()))
        fname = "noise_tunnel_%s_%s_%s.npy" % (base_name, nt_type, kind)
        case.add("noise_tunnel", fname, ["base=" + base_name, "nt_type=" + nt_type] + extra +
                 sg_set + ["objective=" + kind], *r,
                 "captum.attr.NoiseTunnel(captum.attr.%s(%s)).attribute(x, nt_type=%r, "
                 "nt_samples=%d, stdevs=1.0, target=targets%s) with torch.normal replaced by "
                 "the replay of noise.npy (row b*%d+s <- noise[s, b])" % (
                     base_cls.__name__, "model" if kind == "logit" else "Prob(model)", nt_type,
                     N_SG, ", abs=False" if kw else "", N_SG),
                 cross={"own torch float64 (base on x + noise[s]: input_x_gradient multiplies "
                        "by the noisy input)": rel_err(o, r[0])})

    # --- GradientSHAP (own torch)
    case.comment("GradientSHAP: noiseS.npy (%d, N, C, H, W) as noise.npy, alpha.npy (%d, N) "
                 "uniform [0, 1), base.npy one baseline per sample" % (N_GS, N_GS))

    r = both(gradient_shap_fn(tt), m32, m64, xn, noise_s, alpha, base)
    case.add("gradient_shap", "gradient_shap_logit.npy",
             ["n_samples=%d" % N_GS, "noise_file=noiseS.npy", "alpha_file=alpha.npy",
              "baseline=base.npy", lg], *r,
             "torch float64: mean_s grad(b + alpha[s,n] (x + noise[s] - b)) * (x + noise[s] - b)")

    meta = {"source": "tests/reference/make_explain.py:CNNSmooth", "seed": seed,
            "opset": OPSET, "ops": mtr.count_ops(om), "targets": tn.tolist(),
            "argmax": logits64.argmax(dim=1).tolist(), "logits_fp64": logits64.tolist(),
            "onnxruntime_vs_fp64_logits": ort_err, "noise_sigma": sigma.tolist(),
            "files": {"base.npy": "0.5 * standard normal, numpy default_rng(seed)",
                      "noise.npy": "(%d, N, C, H, W) standard normal * sigma[n]" % N_SG,
                      "noiseS.npy": "(%d, N, C, H, W) standard normal * sigma[n]" % N_GS,
                      "alpha.npy": "(%d, N) uniform [0, 1)" % N_GS},
            "reference": "float64 (model.double()), stored as float32", **versions()}
    meta["seconds"] = round(time.time() - t0, 2)
    case.finish(meta, ["model: %s" % meta["source"], "targets.npy: per sample a seeded class "
                       "that is not the argmax; every line names its objective"])


# ---------------------------------------------------------------- text

class WordVecModel(nn.Module):
    """model(input_ids, token_type_ids, attention_mask) with the token embedding's output
    replaced by wv (through a forward hook on model.tok): positions and types are added to wv as
    to the real word vectors."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, wv, ids, tt, am):
        h = self.model.tok.register_forward_hook(lambda mod, i, o: wv)
        try:
            return self.model(ids, tt, am)
        finally:
            h.remove()


def make_text(outdir):
    t0 = time.time()
    name = "text"
    case = Case(outdir, name)
    # the torch model of tiny_text, built as make_transformers.make_text builds it
    seed = mtr.seed_of("tiny_text")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = mtr.text_model_cls()(**mtr.TINY)
    mtr.jitter_layernorms(model, gen)
    mtr.sharpen_attention(model, gen, 1.5)
    model.eval()
    m32 = copy.deepcopy(model)
    m64 = copy.deepcopy(model).double()
    onnx_path = os.path.join(case.d, "model.onnx")
    shutil.copyfile(TINY_TEXT, onnx_path)
    om = onnx.load(onnx_path)
    names = [i.name for i in om.graph.input]

    # the rebuilt model vs the committed ONNX, on the committed runs and on ours
    check = {}
    pdir = os.path.dirname(TINY_TEXT)
    for run in ("t8", "t11"):
        feeds = {k: np.load(os.path.join(pdir, run, k + ".npy")) for k in names}
        with torch.no_grad():
            ref = m64(*[torch.from_numpy(feeds[k]) for k in names]).numpy()
        outs, _ = mtr.ort_run(om, feeds)
        check[run] = {"onnxruntime_vs_rebuilt_fp64": rel_err(outs[0], ref),
                      "committed_logits_vs_rebuilt_fp64":
                      rel_err(np.load(os.path.join(pdir, run, "logits.npy")), ref)}
    feeds = mtr.text_inputs(np.random.default_rng(seed_of("explain_text")), BATCH, 8,
                            mtr.TINY["vocab"], np.int64, pad=3)
    ids, tts, am = (torch.from_numpy(feeds[k]) for k in names)
    with torch.no_grad():
        logits64 = m64(ids, tts, am)
    outs, _ = mtr.ort_run(om, feeds)
    check["explain_input"] = {"onnxruntime_vs_rebuilt_fp64": rel_err(outs[0], logits64.numpy())}
    worst = max(v for c in check.values() for v in c.values())
    if worst > 1e-5:
        raise RuntimeError("text: the rebuilt tiny_text differs from the committed ONNX (%g)"
                           % worst)
    gt = torch.Generator().manual_seed(seed_of("explain_text"))
    t = pick_targets(logits64, gt)
    tn = t.numpy()
    tt = t

    # the word-embedding Gather: data a 2-D float initializer, indices the first integer input
    inits = {i.name: i for i in om.graph.initializer}
    first_int = [i.name for i in om.graph.input
                 if i.type.tensor_type.elem_type in (onnx.TensorProto.INT64,
                                                     onnx.TensorProto.INT32)][0]
    gathers = [n for n in om.graph.node if n.op_type == "Gather" and n.input[0] in inits
               and len(inits[n.input[0]].dims) == 2
               and inits[n.input[0]].data_type == onnx.TensorProto.FLOAT
               and n.input[1] == first_int]
    if len(gathers) != 1:
        raise RuntimeError("text: %d word-embedding Gathers" % len(gathers))
    wrt = gathers[0].output[0]
    with torch.no_grad():
        wv64 = m64.tok(ids)
    _, vals = mtr.ort_run(om, feeds, [wrt])
    wrt_err = rel_err(vals[wrt], wv64.numpy())
    if wrt_err > 1e-6:
        raise RuntimeError("text: %s is not the token embedding (%g)" % (wrt, wrt_err))

    for k in names:
        case.save(k + ".npy", feeds[k])
    case.save("targets.npy", tn.astype(np.int64))
    wvn = wv64.float().numpy()  # the float32 word vectors (exact: a table lookup)
    ins = ["input.%s=%s.npy" % (k, k) for k in names]
    lg = "objective=logit"
    args = (ids, tts, am)

    def ig_fn(m, wv):
        return ca.IntegratedGradients(WordVecModel(m)).attribute(
            wv, baselines=torch.zeros_like(wv), target=tt, additional_forward_args=args,
            n_steps=20, method="riemann_trapezoid")

    def own_ig(m, wv):
        f = WordVecModel(m)
        acc = torch.zeros_like(wv)
        for k, a in enumerate(np.linspace(0, 1, 20)):
            w = (0.5 if k in (0, 19) else 1.0) / 20
            acc += w * grad_at(lambda v: f(v, *args), a * wv, tt, "logit")
        return wv * acc
    case.comment("attribution w.r.t. the word vectors %s (token nn.Embedding output, before "
                 "position / type embeddings); inputs by name" % wrt)
    r = both(ig_fn, m32, m64, wvn)
    with default_dtype(torch.float64):
        own = np_(own_ig(m64, wv64))
    call = ("captum.attr.IntegratedGradients(WordVecModel(model)).attribute(word_vectors, "
            "baselines=zeros, target=targets, additional_forward_args=(input_ids, "
            "token_type_ids, attention_mask), n_steps=20, method='riemann_trapezoid'); "
            "WordVecModel replaces model.tok's output by its first argument")
    cross = {"own trapezoid in torch float64": rel_err(own, r[0])}
    for extra in (["wrt=" + wrt], []):
        case.add("integrated_gradients", "ig_riemann_trapezoid_logit.npy",
                 ["steps=20", "method=riemann_trapezoid", lg] + extra + ins, *r, call,
                 cross=cross)

    rng = np.random.default_rng(seed_of("explain_text"))
    sig = NOISE_REL * (wvn.reshape(BATCH, -1).max(1) - wvn.reshape(BATCH, -1).min(1))
    noise = (rng.standard_normal((N_TEXT_SG,) + wvn.shape) *
             sig[None, :, None, None]).astype(np.float32)
    case.save("noise.npy", noise)

    def sg(m, wv, nz):
        f = WordVecModel(m)
        return torch.stack([grad_at(lambda v: f(v, *args), wv + nz[s], tt, "logit")
                            for s in range(nz.shape[0])]).mean(0)
    r = both(sg, m32, m64, wvn, noise)
    with default_dtype(torch.float64):
        with replay_normal(torch.from_numpy(noise).double()):
            c = np_(ca.NoiseTunnel(ca.Saliency(WordVecModel(m64))).attribute(
                wv64, nt_type="smoothgrad", nt_samples=N_TEXT_SG, stdevs=1.0, target=tt,
                additional_forward_args=args, abs=False))
    for extra in (["wrt=" + wrt], []):
        case.add("smoothgrad", "smoothgrad_logit.npy",
                 ["n_samples=%d" % N_TEXT_SG, "noise_file=noise.npy", lg] + extra + ins, *r,
                 "torch float64: mean_s grad w.r.t. the word vectors at word_vectors + "
                 "noise[s] (signed); noise.npy (%d, N, T, D), sigma = %g * (max - min) of each "
                 "sample's word vectors" % (N_TEXT_SG, NOISE_REL),
                 cross={"captum NoiseTunnel(Saliency, abs=False), noise replayed":
                        rel_err(c, r[0])})

    def sal(m, wv):
        return ca.Saliency(WordVecModel(m)).attribute(wv, target=tt, abs=False,
                                                      additional_forward_args=args)
    r = both(sal, m32, m64, wvn)
    case.add("saliency", "saliency_signed_logit.npy", ["abs=0", lg] + ins, *r,
             "captum.attr.Saliency(WordVecModel(model)).attribute(word_vectors, target=targets, "
             "abs=False, additional_forward_args=(...))")

    meta = {"source": "tiny_text (tests/data/parity/tiny_text/model.onnx, copied; torch model "
            "rebuilt as make_transformers.py --fixture: TextClassifier(%s), seed %d)" % (
                ", ".join("%s=%s" % kv for kv in mtr.TINY.items()), seed),
            "model_onnx_sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest(),
            "rebuild_check": check, "word_embedding_output": wrt,
            "word_embedding_value_rel_diff_onnxruntime": wrt_err, "graph_inputs": names,
            "targets": tn.tolist(), "argmax": logits64.argmax(dim=1).tolist(),
            "logits_fp64": logits64.tolist(), "noise_sigma": sig.tolist(),
            "inputs": "make_transformers.text_inputs(default_rng(%d), 2, 8, vocab=50, pad=3): "
                      "sample 1 has 3 padded positions" % seed_of("explain_text"),
            "reference": "float64 (model.double()), stored as float32", **versions()}
    meta["seconds"] = round(time.time() - t0, 2)
    case.finish(meta, ["model: the committed tiny_text", "targets.npy: per sample a seeded class "
                       "that is not the argmax; every line names its objective"])


# ---------------------------------------------------------------- vit_tiny

VIT = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
           num_classes=5)
VIT_GRID = VIT["image_size"] // VIT["patch_size"]  # 4x4 patch tokens after the class token
VIT_OPSET = 14
VIT_LAYER = "/encoder/layers/encoder_layer_0/Add_1_output_0"  # expected; checked by value
N_VIT = 4  # SmoothGrad / GradientSHAP draws
GPP_MARGIN = 0.25  # vit_tiny: distance of Grad-CAM++'s denominators from their pole (see below)


def vit_tokens_to_grid(t):
    """pytorch-grad-cam reshape_transform: tokens (N, 1 + h*w, D) -> (N, D, h, w), the class
    token dropped; token 1 + y*w + x goes to grid position (y, x)."""
    g = t[:, 1:, :].reshape(t.size(0), VIT_GRID, VIT_GRID, t.size(2))
    return g.permute(0, 3, 1, 2)


def vit_layer(m):
    """The automatic Grad-CAM layer of the C code on a ViT: the residual stream entering the last
    attention block, i.e. the output of the block before it."""
    return m.encoder.layers[VIT["num_layers"] - 2]


def own_vit_cam(method, tgs):
    """Grad-CAM / Grad-CAM++ / LayerCAM at vit_layer in plain torch (cross-check)."""
    def fn(m, xx):
        rec = {}
        h = vit_layer(m).register_forward_hook(lambda mod, i, o: rec.__setitem__("a", o))
        out = m(xx)
        h.remove()
        (g,) = torch.autograd.grad(objective_sum(out, torch.from_numpy(tgs), "logit"), rec["a"])
        a, g = vit_tokens_to_grid(rec["a"].detach()), vit_tokens_to_grid(g)
        if method == "gradcam":
            cam = torch.einsum("nk,nkhw->nhw", g.mean(dim=(2, 3)), a)
        elif method == "gradcam_plus_plus":
            g2 = g * g
            al = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + 1e-6)
            al = torch.where(g != 0, al, torch.zeros_like(al))
            cam = torch.einsum("nk,nkhw->nhw", (torch.relu(g) * al).sum(dim=(2, 3)), a)
        else:  # layercam
            cam = (torch.relu(g) * a).sum(dim=1)
        return torch.relu(cam)
    return fn


def vit_gpp_margin(m, x, t):
    """Grad-CAM++'s weights are sum_hw ReLU(g) a, a = g^2 / (2 g^2 + S g^3 + eps) = 1 / q with
    q = 2 + S g + eps / g^2, S = sum_hw A of the channel. On a CNN after a ReLU, S >= 0 and q > 2
    where g > 0; the residual stream of a transformer is signed, so q crosses 0 for some g > 0 and
    near it the map is ill-conditioned (seen: |q| = 0.04 on one of 244 positive-gradient
    elements, and 1e-6 relative noise on A and G moved the map by up to 1.3e-4 of its max).
    Returns min |q| over the elements with g > 0 (float64)."""
    rec = {}
    h = vit_layer(m).register_forward_hook(lambda mod, i, o: rec.__setitem__("a", o))
    out = m(x)
    h.remove()
    (g,) = torch.autograd.grad(objective_sum(out, t, "logit"), rec["a"])
    a, g = vit_tokens_to_grid(rec["a"].detach()), vit_tokens_to_grid(g)
    pos = g > 0
    q = 2 + a.sum(dim=(2, 3), keepdim=True) * g + 1e-6 / torch.where(pos, g * g, 1.0)
    return float(q.abs()[pos].min())


def make_vit_tiny(outdir):
    import torchvision
    t0 = time.time()
    name = "vit_tiny"
    case = Case(outdir, name)
    seed = seed_of(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = torchvision.models.VisionTransformer(**VIT)
    with torch.no_grad():
        # torchvision zero-initialises the head (every logit would be the bias) and the class
        # token
        model.heads.head.weight.normal_(0.0, 0.5, generator=gen)
        model.heads.head.bias.normal_(0.0, 0.1, generator=gen)
        model.class_token.normal_(0.0, 0.2, generator=gen)
    n_ln = mtr.jitter_layernorms(model, gen)
    n_mha = mtr.sharpen_attention(model, gen)
    # every parameter requires gradients (nn.MultiheadAttention's fused fast path is taken only
    # when none does, and only without grad mode: every forward here runs with grad enabled)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    m32 = copy.deepcopy(model)
    m64 = copy.deepcopy(model).double()

    # the input: redrawn until the two samples have different targets (a mix-up of samples
    # would show), every sample's Grad-CAM-family maps (automatic layer, logit objective, the
    # targets) are positive on >= MIN_POSITIVE of the 4x4 positions, and Grad-CAM++ is
    # GPP_MARGIN away from its pole (vit_gpp_margin)
    tries = []
    for k in range(MAX_TRIES):
        gx = torch.Generator().manual_seed(seed * 100 + k)
        x = torch.randn((BATCH, 3, VIT["image_size"], VIT["image_size"]), generator=gx)
        logits64 = m64(x.double()).detach()
        t = pick_targets(logits64, gx)
        pos = {}
        for method in ("gradcam", "gradcam_plus_plus", "layercam"):
            raw, _ = pgc_raw(CAMS[method], m64, vit_layer, x.double(), t.numpy(), "logit",
                             vit_tokens_to_grid)
            pos[method] = float((raw > 0).reshape(len(raw), -1).mean(1).min())
        tries.append({"input_seed": seed * 100 + k, "min_positive_fraction": min(pos.values())})
        tries[-1]["targets"] = t.tolist()
        tries[-1]["gradcam_plus_plus_margin"] = vit_gpp_margin(m64, x.double(), t)
        if (min(pos.values()) >= MIN_POSITIVE and len(set(t.tolist())) == BATCH
                and tries[-1]["gradcam_plus_plus_margin"] >= GPP_MARGIN):
            break
    else:
        raise RuntimeError("vit_tiny: no suitable input in %d tries" % MAX_TRIES)
    xn = x.numpy()
    tn = t.numpy()
    tt = t

    # export (input "x", dynamic batch); one Softmax per block, equal to PyTorch's
    path = os.path.join(case.d, "model.onnx")
    torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=VIT_OPSET,
                      do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
    om = onnx.load(path)
    ops = mtr.count_ops(om)
    if ops.get("Softmax", 0) != VIT["num_layers"]:
        raise RuntimeError("vit_tiny: %d Softmax nodes for %d blocks (fused attention exported?)"
                           % (ops.get("Softmax", 0), VIT["num_layers"]))
    feeds = {"x": xn}
    with mtr.SoftmaxCapture() as cap:
        m64(x.double())
    attn, attn_err = mtr.match_softmax(om, feeds, cap.probs)
    outs, _ = mtr.ort_run(om, feeds)
    ort_err = rel_err(outs[0], logits64.numpy())
    if ort_err > 1e-5:
        raise RuntimeError("vit_tiny: ONNX Runtime vs float64 logits %g" % ort_err)
    # the layer's ONNX name: the unique float tensor equal to the block's output
    rec = {}
    h = vit_layer(m64).register_forward_hook(lambda mod, i, o: rec.__setitem__("a", np_(o)))
    m64(x.double())
    h.remove()
    cands = mtr.float_tensors(om)
    _, vals = mtr.ort_run(om, feeds, cands)
    hits = [(c, rel_err(vals[c], rec["a"])) for c in cands
            if vals.get(c) is not None and vals[c].shape == rec["a"].shape
            and rel_err(vals[c], rec["a"]) < 1e-5]
    if [c for c, _ in hits] != [VIT_LAYER]:
        raise RuntimeError("vit_tiny: ONNX tensors equal to encoder.layers[0]'s output: %s "
                           "(expected only %s)" % (hits, VIT_LAYER))
    layer_err = hits[0][1]

    case.save("input.npy", xn)
    case.save("targets.npy", tn.astype(np.int64))
    rng = np.random.default_rng(seed)
    sigma = NOISE_REL * (xn.reshape(BATCH, -1).max(1) - xn.reshape(BATCH, -1).min(1))
    noise = (rng.standard_normal((N_VIT,) + xn.shape) *
             sigma[None, :, None, None, None]).astype(np.float32)
    case.save("noise.npy", noise)
    base = (0.5 * rng.standard_normal(xn.shape)).astype(np.float32)
    case.save("base.npy", base)
    alpha = rng.random((N_VIT, BATCH)).astype(np.float32)
    case.save("alpha.npy", alpha)
    lg = "objective=logit"

    # --- gradient methods
    case.comment("gradient methods w.r.t. the image (Captum; plain torch float64)")
    r = both(lambda m, xx: ca.Saliency(m).attribute(xx, target=tt, abs=False), m32, m64, xn)
    own = np_(grad_at(m64, x.double(), t, "logit"))
    case.add("saliency", "saliency_signed_logit.npy", ["abs=0", lg], *r,
             "captum.attr.Saliency(model).attribute(x, target=targets, abs=False)",
             cross={"torch.autograd.grad": rel_err(own, r[0])})

    def ig(m, xx):
        return ca.IntegratedGradients(m).attribute(xx, target=tt, n_steps=20,
                                                   method="gausslegendre")
    r = both(ig, m32, m64, xn)
    z, w = np.polynomial.legendre.leggauss(20)
    with default_dtype(torch.float64):
        x64 = x.double()
        acc = torch.zeros_like(x64)
        for a, wk in zip(0.5 * (z + 1), 0.5 * w):
            acc += wk * grad_at(m64, a * x64, t, "logit")
        own = np_(x64 * acc)
    case.add("integrated_gradients", "ig_gausslegendre_logit.npy",
             ["steps=20", "method=gausslegendre", lg], *r,
             "captum.attr.IntegratedGradients(model).attribute(x, target=targets, n_steps=20, "
             "method='gausslegendre') (zero baseline)",
             cross={"own Gauss-Legendre quadrature in torch float64": rel_err(own, r[0])})

    case.comment("noise.npy (%d, N, C, H, W), sigma = %g * (max - min) of each sample, numpy "
                 "seed %d; GradientSHAP replays the same noise, alpha.npy (%d, N) uniform [0, 1), "
                 "base.npy one baseline per sample" % (N_VIT, NOISE_REL, seed, N_VIT))

    r = both(smooth_fn(tt, "logit", "mean"), m32, m64, xn, noise)
    with default_dtype(torch.float64):
        with replay_normal(torch.from_numpy(noise).double()):
            c = np_(ca.NoiseTunnel(ca.Saliency(m64)).attribute(
                x.double(), nt_type="smoothgrad", nt_samples=N_VIT, stdevs=1.0, target=tt,
                abs=False))
    case.add("smoothgrad", "smoothgrad_logit.npy",
             ["n_samples=%d" % N_VIT, "noise_file=noise.npy", lg], *r,
             "torch float64: mean over s of grad(x + noise[s]) (signed)",
             cross={"captum NoiseTunnel(Saliency, abs=False, nt_type='smoothgrad'), noise "
                    "replayed": rel_err(c, r[0])})

    r = both(gradient_shap_fn(tt), m32, m64, xn, noise, alpha, base)
    case.add("gradient_shap", "gradient_shap_logit.npy",
             ["n_samples=%d" % N_VIT, "noise_file=noise.npy", "alpha_file=alpha.npy",
              "baseline=base.npy", lg], *r,
             "torch float64: mean_s grad(b + alpha[s,n] (x + noise[s] - b)) * (x + noise[s] - b)")

    # --- the Grad-CAM family at the automatic layer
    case.comment("Grad-CAM family at %s (encoder.layers[0]'s output = the residual stream "
                 "entering the last attention block: the automatic layer), tokens (N, 17, 16) "
                 "laid out as (N, 16, 4, 4) without the class token; pytorch-grad-cam with "
                 "reshape_transform" % VIT_LAYER)
    raw_checks = {}
    pgc_call = ("pytorch_grad_cam.%s(model, target_layers=[model.encoder.layers[0]], "
                "reshape_transform=tokens[:, 1:].reshape(N, 4, 4, D).permute(0, 3, 1, 2))(x, "
                "targets=[ClassifierOutputTarget(t) for t in targets])")
    for method in ("gradcam", "gradcam_plus_plus", "layercam"):
        cls = CAMS[method]
        fname = "%s_raw.npy" % method

        def fn(m, xx, cls=cls, key=fname):
            raw, d = pgc_raw(cls, m, vit_layer, xx, tn, "logit", vit_tokens_to_grid)
            raw_checks.setdefault(key, []).append(d)
            return raw
        r = both(fn, m32, m64, xn)
        with default_dtype(torch.float64):
            own = np_(own_vit_cam(method, tn)(m64, x.double()))
        call = (pgc_call % cls.__name__) + (" with pytorch_grad_cam.base_cam.scale_cam_image "
                                            "replaced by the identity")
        cross = {"get_cam_image_vs_call": max(raw_checks[fname]),
                 "own torch float64 (hook on encoder.layers[0])": rel_err(own, r[0])}
        case.add(method, fname, [lg], *r, call + "; no layer key: the automatic layer", cross=cross)
        if method == "gradcam":
            case.add(method, fname, ["layer=" + VIT_LAYER, lg], *r, call + "; layer named",
                     cross=cross)

            def full(m, xx):
                return pgc_full(pgc.GradCAM, m, vit_layer, xx, tn, "logit", vit_tokens_to_grid)
            rf = both(full, m32, m64, xn)
            up = F.interpolate(minmax(torch.from_numpy(r[0]))[:, None],
                               size=(VIT["image_size"],) * 2, mode="bilinear",
                               align_corners=False)[:, 0]
            case.add(method, "gradcam_full.npy", ["normalize=1", "upsample=1", lg], *rf,
                     (pgc_call % "GradCAM") + " (min-max per sample, cv2.resize INTER_LINEAR to "
                     "32x32, min-max again; float32 from scale_cam_image on)",
                     cross={"minmax(bilinear(minmax(raw))) in torch float64":
                            rel_err(minmax(up).numpy(), rf[0])})

    meta = {"source": "tests/reference/make_explain.py:make_vit_tiny: torchvision.models."
            "VisionTransformer(%s); head weight N(0, 0.5^2), head bias N(0, 0.1^2), class token "
            "N(0, 0.2^2), LayerNorms jittered and attention sharpened as make_transformers.py"
            % ", ".join("%s=%s" % kv for kv in VIT.items()),
            "seed": seed, "input_tries": tries, "gradcam_plus_plus_margin_required": GPP_MARGIN,
            "opset": VIT_OPSET, "ops": ops,
            "graph_inputs": ["x"], "layernorms_jittered": n_ln,
            "attention_blocks_sharpened": n_mha, "attention_probabilities": attn,
            "attention_onnxruntime_max_abs_diff": attn_err, "automatic_layer": VIT_LAYER,
            "automatic_layer_rel_diff_onnxruntime": layer_err,
            "layer_layout": "tokens (N, 17, 16) -> (N, 16, 4, 4): class token dropped, token "
                            "1 + y*4 + x at (y, x)",
            "targets": tn.tolist(), "argmax": logits64.argmax(dim=1).tolist(),
            "logits_fp64": logits64.tolist(), "onnxruntime_vs_fp64_logits": ort_err,
            "noise_sigma": sigma.tolist(),
            "files": {"noise.npy": "(%d, N, C, H, W) standard normal * sigma[n] (SmoothGrad and "
                                   "GradientSHAP)" % N_VIT,
                      "base.npy": "0.5 * standard normal", "alpha.npy": "(%d, N) uniform [0, 1)"
                      % N_VIT, "order": "numpy default_rng(seed): noise, base, alpha"},
            "reference": "float64 (model.double()), stored as float32", **versions()}
    meta["seconds"] = round(time.time() - t0, 2)
    case.finish(meta, ["model: torchvision VisionTransformer, 32x32 input, 8x8 patches (4x4 "
                       "grid + class token), 2 blocks, 2 heads, D=16, 5 classes; opset 14, "
                       "input 'x'", "targets.npy: per sample a seeded class that is not the "
                       "argmax; every line names its objective"])


CASES = {"cnn_relu": make_cnn_relu, "cnn_smooth": make_cnn_smooth, "text": make_text,
         "vit_tiny": make_vit_tiny}


def run_main(cases, doc, tag, default_outdir=os.path.join(HERE, "..", "data", "explain")):
    """The command line of this script and of its siblings (make_perturb.py, make_evaluate.py):
    OUTDIR (default default_outdir), --cases."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("outdir", nargs="?", default=default_outdir)
    ap.add_argument("--cases", default="", help="comma-separated (default: all)")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.outdir, exist_ok=True)
    t0 = time.time()
    names = [n for n in a.cases.split(",") if n] or list(cases)
    for n in names:
        cases[n](a.outdir)
    size = sum(os.path.getsize(os.path.join(a.outdir, n, f)) for n in names
               for f in os.listdir(os.path.join(a.outdir, n)))
    print("%s: %s in %.1fs, %d bytes -> %s" % (tag, ",".join(names), time.time() - t0, size,
                                              a.outdir))


if __name__ == "__main__":
    run_main(CASES, __doc__, "make_explain")
