#!/usr/bin/env python3
"""make_evaluate_interpretdl.py [OUTDIR] [--cli BUILD/interpretdl] — regenerates the committed
evaluation-metric fixture tests/data/evaluate/interpretdl_cnn (default OUTDIR: tests/data/evaluate
next to this script's folder), read by tests/test_evaluate.c --parity like make_evaluate.py's
quantus_cnn (same case.txt format: lines `METRIC EXPECTED.npy SCORE key=value...`, the keys
explanation= and tol= read by the test, every other key a metric setting; SCORE a score name or
`curve`; targets from targets.npy; expected float64, (N,) or (N, points)).

Its references come from RUNNING the evaluators of PaddlePaddle's InterpretDL 0.8.0 (PyPI wheel
interpretdl-0.8.0-py3-none-any.whl, installed --no-deps by setup_venv.sh; its evaluator files are
identical to the GitHub tag v0.8.0, commit 80b9067b90581c86e99c070f3bb6bb140c56ce36, and unchanged
on master since; meta.json records their sha256): DeletionInsertion, Perturbation, Infidelity
(interpretdl/evaluate_interpreter/) and PointGame, PointGameSegmentation
(interpretdl/evaluate_models/localization.py). Nothing of InterpretDL is copied into the library.
`import interpretdl` fails without IPython (its data_processor/visualizer.py imports it at module
level, through interpretdl/interpreter/__init__.py); the script therefore registers an empty
package object for `interpretdl` (its __path__ the installed folder) and imports only
interpretdl.evaluate_interpreter / interpretdl.evaluate_models, whose modules need numpy, cv2,
PIL, paddle and scikit-learn (Debian's python3-opencv / python3-pil / python3-sklearn). The venv
also needs paddlepaddle 3.3.1, paddle2onnx 2.1.0 and onnxruntime (setup_venv.sh), and the
Debian scikit-image package for its sample photos (skimage.data_dir; no skimage code is run).

Case interpretdl_cnn (OUTDIR/interpretdl_cnn/):
  photo0.png, photo1.png   uint8 RGB 128 x 96 (W x H): scikit-image 0.19.3's chelsea.png
                cropped to columns 40..439, rows 0..299 and coffee.png to columns 33..565, rows
                0..399, each reduced with cv2.resize(INTER_AREA) to 128 x 96 and written by
                Pillow. InterpretDL reads them itself (evaluate(img_path, ..., resize_to=224,
                crop_to=224)): PIL RGB, shorter edge to 224 with cv2.resize INTER_LINEAR on uint8
                (299 x 224), centre crop 224 x 224 (columns 37..260), then preprocess_image:
                float32(u8) / 255 (float32), minus the ImageNet mean (0.485, 0.456, 0.406) and
                divided by the std (0.229, 0.224, 0.225), both float64 arrays applied in place to
                the float32 array (each step computed in float64, rounded to float32).
  input.npy     float32 (N=2, 3, 224, 224): exactly the arrays InterpretDL's model receives for
                the two photos (the script rebuilds them with its own PIL / cv2 / numpy code and
                asserts bit equality with InterpretDL's images_transform_pipeline and with the
                array recorded at the model's forward during every evaluate call).
  model.onnx    a small random-weight Paddle CNN (Conv 3->8 k3 s2, ReLU, Conv 8->16 k3 s2, ReLU,
                MaxPool 2, Conv 16->16 k3 s2, ReLU, global average pool, Linear 16->10; Paddle's
                default initialisers after paddle.seed(seed_of('interpretdl_cnn') + attempt);
                the head then calibrated: Linear weight W and bias b replaced by float32(s W)
                and float32(-s W^T m), m the mean of the two photos' pooled features (float32
                Paddle run), s = 2 / std of the centred logits (a random head gives both photos
                the same class; computed in float64 from the float32 values); the first attempt
                whose two argmax classes differ, with top-1 - top-2 logit gaps >= 0.05 and top-1
                probabilities in [0.2, 0.95]; exported as make_paddle.py does (paddle.jit.save
                + paddle2onnx.export, opset 13, input "input" (N, 3, 224, 224), dynamic batch,
                logits (N, 10)). ONNX Runtime's output must agree with Paddle's float32 and
                float64 runs to 1e-5 (relative to max |logit|).
  targets.npy   int64 (N,): the argmax class of each sample (float64 model) = the class InterpretDL
                evaluates (argmax of the original image's probabilities / logits; asserted).
  expl_fine.npy float32 (N, 56, 56): per sample 0.5 * U(0, 1) plus a Gaussian bump (sigma 10
                pixels, height 1) at a random centre, numpy default_rng(seed * 10 + k);
  expl_cam.npy  float32 (N, 7, 7) U(0, 1) (a CAM-like map), the same generator after expl_fine;
                k = 0, 1, ... the first draw for which every threshold used below (each map
                resized by cv2.resize INTER_LINEAR to 224 x 224, float32, as InterpretDL does) is
                >= 2e-7 * max|map| away from every resized value that differs from it, and
                InterpretDL's comparison (float32 map against the float64 percentile, which
                numpy 1.24 rounds to float32) selects the same pixels as a float64 one.
  mask.npy      uint8 (N, 56, 56) object masks (1 = object): per sample the union of two seeded
                rectangles (default_rng(seed + 1)).
  expected      float64 .npy (N,) / (N, P).
  case.txt, meta.json   the lines; meta.json per line the exact InterpretDL call, the
                cross-checks and the float32 runs (no timings: reruns are byte-identical).

Notation: x = input.npy[i]; fill = the per-channel value InterpretDL's grey pixel (uint8 127 on
every channel) has after preprocess_image: float32 steps as above, written as fill=a,b,c with
%.9g (exact float32 round trip); asserted equal to interpretdl's preprocess_image of a 127
pixel. E = the explanation resized to 224 x 224 by cv2.resize(E, (224, 224), INTER_LINEAR)
(float32); f(.) = softmax probability of the target (logit for infidelity) from the float64
copy of the Paddle model (paddle Layer.to(dtype='float64'), wrapped so that InterpretDL's float32
input is cast to float64 at the forward: the references are float64 evaluations of the float32
weights on the float32 inputs). t_j = numpy.percentile(E, 100 (K - j) / K), j = 1..K (linear).

Lines (every model line: InterpretDL's own output for sample i = 0, 1, stacked):
  deletion  variant=interpretdl steps=K fill=a,b,c objective=probability:
            curve = DeletionInsertion(model, 'cpu').evaluate(photo_i, E_i, resize_to=224,
            crop_to=224, limit_number_generated_samples=K)['del_probas'] (K + 1 values:
            f(x), then f(x with E > t_j greyed), j = 1..K); deletion_mean = its
            'deletion_score' (the mean of those K + 1 values); deletion = the trapezoid area of
            del_probas with spacing 1/K (computed here, numpy.trapz, not an InterpretDL score).
  insertion same call: curve = 'ins_probas' (K + 1 values: point j = 0..K-1 the grey canvas
            with the pixels E > t_{j+1} revealed, point K = f(x); the all-grey canvas itself is
            not scored), insertion_mean = 'insertion_score', insertion = trapezoid (1/K).
  morf      variant=interpretdl steps=K: Perturbation(model, 'cpu').evaluate(same)
            ['MoRF_probas'] (identical images to deletion), morf_mean = 'MoRF_score'.
  lerf      variant=interpretdl steps=K: curve = 'LeRF_probas' (K + 1 values: f(x), then
            f(x with E < percentile(E, 100 (j - 1) / K) greyed), j = 1..K; j = 1 greys nothing),
            lerf_mean = 'LeRF_score'.
            K = 20 (InterpretDL's default) with expl_fine, K = 10 with expl_cam.
  infidelity  patch_sizes=32,64,128 stride=8 indicator=1 scaling=1 fill=a,b,c objective=logit:
            Infidelity(model, 'cpu').evaluate(photo_i, E_i (the 56 x 56 or 7 x 7 map),
            recompute=True, batch_size=50, resize_to=224, crop_to=224): squares of side 32, 64,
            128 at stride 8 inside the image (625 + 441 + 169 = 1235), painted 127 in uint8;
            I = per element 1 where the uint8 value changed (an element already 127 counts as
            unchanged: 0); Delta_p = logit_c(x) - logit_c(x_p); e_p = sum(I * E) (E float32,
            summed by numpy in float32 there); beta = mean(Delta e) / mean(e^2);
            infidelity = mean((Delta - beta e)^2). The script asserts that InterpretDL's Is
            equals (x_p != x) in float (fill as above) and recomputes the score in float64
            (cross-check). InterpretDL's cv2.resize there is given (data.shape[2],
            data.shape[3]) = (H, W) as (width, height): the same on these square inputs.
  point_game  (no model) PointGame().evaluate((x1, y1, x2, y2), expl_fine[i], threshold) and
            PointGameSegmentation().evaluate(mask[i], expl_fine[i], threshold): keys precision,
            recall, f1_score, auc_score, ap_score -> scores precision, recall, f1, roc_auc, ap.
            Lines: box=14,10,40,44 (threshold 0.25, its default), mask=mask.npy threshold=0.5.
            The script fails if a value is within 1e-6 * max of threshold * max.

Checks (meta.json): every image InterpretDL passes to the model (recorded at the forward, as a
sha1 per sample) equals, in order, the script's own construction from input.npy, the fill and the
definitions above (t_j in float64) — this is what ties the lines' definitions to InterpretDL's
code; the own float64 curves equal InterpretDL's (cross-check); float32 runs: InterpretDL with the
float32 Paddle model, and the own construction through ONNX Runtime (float32) — a line gets
tol=R (5x the worse error, rounded up) where one is above 2e-5 in the test's error measure.
--cli (default build/interpretdl next to tests/): if present, `interpretdl run` on model.onnx /
input.npy is compared with Paddle's float64 logits and the deviation printed (not stored).
Runtime ~2.5 min on 2 cores (about 10,000 forward passes at 224 x 224, float64 and float32);
reruns are byte-identical. Size 1.3 MB, 1.2 MB of it input.npy.

InterpretDL details the lines rely on (all checked by the image comparison above): its curves
include the original image's probability (del_probas[0], MoRF / LeRF [0], ins_probas[K]); LeRF's
first step (E < min) greys nothing; its thresholds are float64 percentiles, but `E > p` compares
the float32 map with a numpy float64 scalar, which numpy 1.x rounds to float32 first (value-based
casting): the draw keeps every threshold clear of that rounding. Infidelity's I is per element,
so a channel value of 127 inside a square is not counted (meta.json:
infidelity_unchanged_elements_in_squares): the fill must be InterpretDL's float32 exactly.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["PIP_NO_INDEX"] = "1"
os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"

import argparse  # noqa: E402
import copy  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402,F401  (before torch, which make_paddle's helpers import)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_paddle as mpd  # noqa: E402  (export_paddle, ort_session, seed_of)
import make_evaluate as me  # noqa: E402  (Case, harness_err, rectangle_masks)

import cv2  # noqa: E402
import paddle  # noqa: E402
import sklearn  # noqa: E402
from PIL import Image  # noqa: E402

NAME = "interpretdl_cnn"
BATCH = 2
SIZE = 224
PNG_W, PNG_H = 128, 96
PHOTOS = [("chelsea.png", (40, 0, 440, 300)), ("coffee.png", (33, 0, 566, 400))]  # x0, y0, x1, y1
MEAN = np.array([0.485, 0.456, 0.406])  # InterpretDL's preprocess_image (float64 arrays)
STD = np.array([0.229, 0.224, 0.225])
MAPS = {"expl_fine": 20, "expl_cam": 10}  # explanation -> steps K
BOX = (14, 10, 40, 44)  # x1, y1, x2, y2 on the 56 x 56 map
PG_SIZE = 56
TIE_GAP = 2e-7       # thresholds this * max|E| away from every other resized value
PG_GAP = 1e-6
MAX_TRIES = 200
INFID_SIZES = (32, 64, 128)
INFID_STRIDE = 8
IDL_FILES = ["evaluate_interpreter/abc_evaluator.py", "evaluate_interpreter/deletion_insertion.py",
             "evaluate_interpreter/perturbation.py", "evaluate_interpreter/infidelity.py",
             "evaluate_models/localization.py", "data_processor/readers.py"]


# ---------------------------------------------------------------- InterpretDL

def load_interpretdl():
    """The evaluator modules without interpretdl/__init__.py (which imports the interpreters and
    through them IPython): an empty package object with the installed folder as its path."""
    spec = importlib.util.find_spec("interpretdl")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("interpretdl is not installed (tests/reference/setup_venv.sh installs 0.8.0)")
    root = list(spec.submodule_search_locations)[0]
    pkg = types.ModuleType("interpretdl")
    pkg.__path__ = [root]
    pkg.__file__ = spec.origin
    sys.modules["interpretdl"] = pkg
    import interpretdl.data_processor.readers as readers
    import interpretdl.evaluate_interpreter as ei
    import interpretdl.evaluate_models as em
    version = importlib.metadata.version("interpretdl")
    assert version == "0.8.0", version
    sha = {}
    for f in IDL_FILES:
        with open(os.path.join(root, f), "rb") as fh:
            sha[f] = hashlib.sha256(fh.read()).hexdigest()
    return types.SimpleNamespace(readers=readers, DeletionInsertion=ei.DeletionInsertion,
                                 Perturbation=ei.Perturbation, Infidelity=ei.Infidelity,
                                 PointGame=em.PointGame,
                                 PointGameSegmentation=em.PointGameSegmentation,
                                 version=version, sha256=sha)


class Net(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.c1 = paddle.nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.c2 = paddle.nn.Conv2D(8, 16, 3, stride=2, padding=1)
        self.pool = paddle.nn.MaxPool2D(2, 2)
        self.c3 = paddle.nn.Conv2D(16, 16, 3, stride=2, padding=1)
        self.gap = paddle.nn.AdaptiveAvgPool2D(1)
        self.fc = paddle.nn.Linear(16, 10)

    def forward(self, x):
        x = paddle.nn.functional.relu(self.c1(x))
        x = self.pool(paddle.nn.functional.relu(self.c2(x)))
        x = paddle.nn.functional.relu(self.c3(x))
        return self.fc(paddle.flatten(self.gap(x), 1))


class Recorder(paddle.nn.Layer):
    """The model handed to InterpretDL: records a sha1 of every sample it receives (float32, as
    InterpretDL passes it) and runs the wrapped net in its dtype."""

    def __init__(self, net, dtype):
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.seen = []
        self.first = None

    def forward(self, x):
        a = x.numpy()
        assert a.dtype == np.float32, a.dtype
        if self.first is None:
            self.first = a[0].copy()
        self.seen.extend(sha(r) for r in a)
        return self.net(x.astype(self.dtype) if self.dtype != "float32" else x)

    def reset(self):
        self.seen = []
        self.first = None


def sha(a):
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


# ---------------------------------------------------------------- own pieces

def make_photos(d):
    import skimage
    paths = []
    for i, (name, (x0, y0, x1, y1)) in enumerate(PHOTOS):
        img = np.array(Image.open(os.path.join(skimage.data_dir, name)).convert("RGB"))
        crop = np.ascontiguousarray(img[y0:y1, x0:x1])
        small = cv2.resize(crop, (PNG_W, PNG_H), interpolation=cv2.INTER_AREA)
        p = os.path.join(d, "photo%d.png" % i)
        Image.fromarray(small).save(p)
        paths.append(p)
    return paths


def preprocess(u8):
    """(H, W, 3) uint8 -> (3, H, W) float32 as InterpretDL's preprocess_image computes it."""
    x = u8.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    x = (x.astype(np.float64) - MEAN[:, None, None]).astype(np.float32)
    return (x.astype(np.float64) / STD[:, None, None]).astype(np.float32)


def own_input(path):
    """Own reading: PIL RGB, shorter edge to 224 (cv2 INTER_LINEAR), centre crop, preprocess."""
    img = np.array(Image.open(path).convert("RGB"))
    h, w = img.shape[:2]
    s = float(SIZE) / min(h, w)
    img = cv2.resize(img, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_LINEAR)
    hh, ww = img.shape[:2]
    top, left = (hh - SIZE) // 2, (ww - SIZE) // 2
    u8 = img[top:top + SIZE, left:left + SIZE]
    return u8, preprocess(u8), {"resized_wh": [ww, hh], "crop_top_left": [top, left]}


def resized(e):
    return cv2.resize(np.ascontiguousarray(e, np.float32), (SIZE, SIZE),
                      interpolation=cv2.INTER_LINEAR)


def thresholds(E64, K, lerf=False):
    if lerf:  # step j = 1..K: percentile 100 (j - 1) / K
        return [np.percentile(E64, 100.0 * (j - 1) / K) for j in range(1, K + 1)]
    return [np.percentile(E64, 100.0 * (K - j) / K) for j in range(1, K + 1)]


def own_images(x, fill, E, K):
    """The images of the lines' definitions (float64 thresholds): deletion (= MoRF), insertion,
    LeRF, each (K + 1, 3, H, W) float32."""
    E64 = E.astype(np.float64)
    fillimg = np.broadcast_to(fill[:, None, None], x.shape).astype(np.float32)
    t = thresholds(E64, K)
    dele = [x] + [np.where(E64 > tj, fillimg, x) for tj in t]
    ins = [np.where(E64 > t[j], x, fillimg) for j in range(K)] + [x]
    lerf = [x] + [np.where(E64 < tj, fillimg, x) for tj in thresholds(E64, K, lerf=True)]
    return {k: np.stack(v).astype(np.float32) for k, v in
            (("deletion", dele), ("insertion", ins), ("lerf", lerf))}


def squares(H, W):
    out = []
    for k in INFID_SIZES:
        for r in range(0, H - k + 1, INFID_STRIDE):
            for c in range(0, W - k + 1, INFID_STRIDE):
                out.append((k, r, c))
    return out


def infid_images(x, fill, sq):
    for k, r, c in sq:
        xp = x.copy()
        xp[:, r:r + k, c:c + k] = fill[:, None, None]
        yield xp


def infid_score(delta, e):
    delta, e = np.asarray(delta, np.float64), np.asarray(e, np.float64)
    if np.mean(e * e) == 0:
        return float(np.mean(delta ** 2)), 0.0
    beta = np.mean(delta * e) / np.mean(e * e)
    return float(np.mean((delta - beta * e) ** 2)), float(beta)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def batched(fn, xs, bs=50):
    return np.concatenate([fn(xs[i:i + bs]) for i in range(0, len(xs), bs)])


def trapz(curves, K):
    return np.array([np.trapz(c, dx=1.0 / K) for c in curves])


# ---------------------------------------------------------------- draws

def draw_model(seed, xs):
    tries = []
    for attempt in range(50):
        paddle.seed(seed + attempt)
        net = Net()
        net.eval()
        # calibration: the head centred on the two samples' pooled features and scaled to a
        # logit spread of 2 (random heads give both photos the same class)
        with paddle.no_grad():
            t = paddle.to_tensor(xs)
            h = paddle.nn.functional.relu(net.c1(t))
            h = net.pool(paddle.nn.functional.relu(net.c2(h)))
            h = paddle.flatten(net.gap(paddle.nn.functional.relu(net.c3(h))), 1).numpy()
        w = net.fc.weight.numpy().astype(np.float64)  # (16, 10)
        z = (h - h.mean(axis=0)) @ w
        s = 2.0 / z.std()
        net.fc.weight.set_value((w * s).astype(np.float32))
        net.fc.bias.set_value((-(h.mean(axis=0) @ w) * s).astype(np.float32))
        net64 = copy.deepcopy(net)
        net64.to(dtype="float64")
        with paddle.no_grad():
            z = net64(paddle.to_tensor(xs.astype(np.float64))).numpy()
        zs = np.sort(z, axis=1)
        gap = zs[:, -1] - zs[:, -2]
        p = softmax(z).max(axis=1)
        top = z.argmax(axis=1)
        tries.append({"seed": seed + attempt, "argmax": top.tolist(), "gap": gap.tolist(),
                      "p_top": p.tolist()})
        if len(set(top.tolist())) == BATCH and gap.min() >= 0.05 and p.min() >= 0.2 and \
                p.max() <= 0.95:
            return net, net64, top.astype(np.int64), tries
    raise RuntimeError("no model draw met the conditions: %s" % tries[-3:])


def tie_gap(E, ts):
    """min over thresholds of the distance to the nearest resized value that differs from it,
    relative to max|E|; and whether InterpretDL's float32 comparison picks the float64 pixels."""
    v = np.unique(E.astype(np.float64))
    worst, same = np.inf, True
    for t in ts:
        d = np.abs(v - t)
        d = d[d > 0]
        worst = min(worst, float(d.min()) / float(np.abs(v).max()))
        if not (np.array_equal(E > np.float64(t), E.astype(np.float64) > t) and
                np.array_equal(E < np.float64(t), E.astype(np.float64) < t)):
            same = False
    return worst, same


def draw_explanations(seed):
    for k in range(MAX_TRIES):
        rng = np.random.default_rng(seed * 10 + k)
        yy, xx = np.mgrid[0:PG_SIZE, 0:PG_SIZE]
        fine = []
        for _ in range(BATCH):
            cy, cx = rng.uniform(8, PG_SIZE - 8, 2)
            bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 10.0 ** 2))
            fine.append(0.5 * rng.random((PG_SIZE, PG_SIZE)) + bump)
        ex = {"expl_fine": np.array(fine, np.float32),
              "expl_cam": rng.random((BATCH, 7, 7)).astype(np.float32)}
        gaps, ok = {}, True
        for name, K in MAPS.items():
            for i in range(BATCH):
                E = resized(ex[name][i])
                E64 = E.astype(np.float64)
                g, same = tie_gap(E, thresholds(E64, K) + thresholds(E64, K, lerf=True))
                gaps["%s[%d] K=%d" % (name, i, K)] = g
                ok = ok and same and g >= TIE_GAP
        for thr in (0.25, 0.5):
            for i in range(BATCH):
                e = ex["expl_fine"][i].astype(np.float64)
                g = float(np.abs(e - thr * e.max()).min() / e.max())
                gaps["point_game[%d] t=%g" % (i, thr)] = g
                ok = ok and g >= PG_GAP
        if ok:
            return ex, {"seed": seed * 10 + k, "tries": k + 1, "min_gap": gaps}
    raise RuntimeError("no explanation draw without near-ties in %d tries" % MAX_TRIES)


def draw_mask(seed):
    return me.rectangle_masks(np.random.default_rng(seed + 1), BATCH, PG_SIZE, PG_SIZE, (8, 24))


# ---------------------------------------------------------------- the case

def check_seen(rec, expected_images, what):
    want = [sha(a) for a in expected_images]
    if rec.seen != want:
        bad = next((j for j, (a, b) in enumerate(zip(rec.seen, want)) if a != b), None)
        raise RuntimeError("%s: InterpretDL's model inputs differ from the own construction "
                           "(%d vs %d images, first difference at %s)" % (
                               what, len(rec.seen), len(want), bad))


def make_case(outdir, cli):
    t0 = time.time()
    idl = load_interpretdl()
    paddle.set_device("cpu")
    case = me.Case(outdir, NAME, source="tests/reference/make_evaluate_interpretdl.py; "
                   "definitions in its docstring, format as make_evaluate.py's", width=15)
    seed = mpd.seed_of(NAME)
    pngs = make_photos(case.d)
    rel = [os.path.basename(p) for p in pngs]

    # inputs: own reconstruction == InterpretDL's pipeline
    xs, u8s, pipe = [], [], []
    for p in pngs:
        u8, x, info = own_input(p)
        iu8, ix = idl.readers.images_transform_pipeline(p, resize_to=SIZE, crop_to=SIZE)
        assert np.array_equal(iu8[0], u8) and np.array_equal(ix[0], x) and ix.dtype == np.float32
        xs.append(x)
        u8s.append(u8)
        pipe.append(info)
    xs = np.stack(xs)
    fill = preprocess(np.full((1, 1, 3), 127, np.uint8))[:, 0, 0]
    ifill = idl.readers.preprocess_image(np.full((1, 1, 1, 3), 127, np.uint8))[0, :, 0, 0]
    assert np.array_equal(fill, ifill) and fill.dtype == np.float32
    fill_s = "fill=" + ",".join("%.9g" % v for v in fill)
    assert np.array_equal(np.array([float(s) for s in fill_s[5:].split(",")], np.float32), fill)

    net, net64, targets, model_tries = draw_model(seed, xs)
    case.save("input.npy", xs)
    case.save("targets.npy", targets)
    mpath = os.path.join(case.d, "model.onnx")
    mpd.export_paddle(net, (3, SIZE, SIZE), mpath, 13)
    sess = mpd.ort_session(mpath)
    iname = sess.get_inputs()[0].name

    def ort(x):
        return sess.run(None, {iname: np.ascontiguousarray(x, np.float32)})[0].astype(np.float64)

    def pd64(x):
        with paddle.no_grad():
            return net64(paddle.to_tensor(np.asarray(x, np.float64))).numpy()

    with paddle.no_grad():
        z32 = net(paddle.to_tensor(xs)).numpy().astype(np.float64)
    z64 = pd64(xs)
    zort = ort(xs)
    scale = np.abs(z64).max()
    model_check = {"paddle_fp32_vs_fp64": float(np.abs(z32 - z64).max() / scale),
                   "onnxruntime_vs_paddle_fp32": float(np.abs(zort - z32).max() / scale),
                   "onnxruntime_vs_paddle_fp64": float(np.abs(zort - z64).max() / scale)}
    if max(model_check.values()) > 1e-5:
        raise RuntimeError("ONNX Runtime and Paddle disagree: %s" % model_check)
    if cli and os.path.exists(cli):  # the library's own forward (printed, not in meta.json)
        with tempfile.TemporaryDirectory() as td:
            out = os.path.join(td, "y.npy")
            r = subprocess.run([cli, "run", mpath, "--input", os.path.join(case.d, "input.npy"),
                                "--out", out], capture_output=True, text=True)
            if r.returncode == 0:
                print("interpretdl run vs Paddle float64: %.2e (relative to max|logit|)" % (
                    np.abs(np.load(out).astype(np.float64) - z64).max() / scale), flush=True)
            else:
                print("interpretdl run failed: %s" % r.stderr.strip(), flush=True)

    ex, ex_info = draw_explanations(seed)
    for k, v in ex.items():
        case.save(k + ".npy", v)
    mask = draw_mask(seed)
    case.save("mask.npy", mask)

    rec64 = Recorder(net64, "float64")
    rec32 = Recorder(net, "float32")
    unchanged_127 = {}

    def run_idl(kind, rec, png, e, K=None):
        rec.reset()
        if kind == "di":
            ev = idl.DeletionInsertion(rec, "cpu")
            return ev.evaluate(png, e, batch_size=None, resize_to=SIZE, crop_to=SIZE,
                               limit_number_generated_samples=K), ev
        if kind == "pt":
            ev = idl.Perturbation(rec, "cpu")
            return ev.evaluate(png, e, batch_size=None, resize_to=SIZE, crop_to=SIZE,
                               limit_number_generated_samples=K), ev
        ev = idl.Infidelity(rec, "cpu")
        return ev.evaluate(png, e, recompute=True, batch_size=50, resize_to=SIZE,
                           crop_to=SIZE), ev

    header_calls = ("interpretdl %s, float64 model, photo_i.png, resize_to=224, crop_to=224"
                    % idl.version)
    # ---- deletion / insertion / MoRF / LeRF
    for name, K in MAPS.items():
        res = {k: [] for k in ("del", "ins", "morf", "lerf", "del32", "ins32", "morf32", "lerf32",
                               "del_own", "ins_own", "lerf_own", "del_ort", "ins_ort", "lerf_ort",
                               "dscore", "iscore", "mscore", "lscore", "dscore32", "iscore32",
                               "mscore32", "lscore32")}
        for i in range(BATCH):
            e = ex[name][i]
            imgs = own_images(xs[i], fill, resized(e), K)
            r, _ = run_idl("di", rec64, pngs[i], e, K)
            check_seen(rec64, list(imgs["deletion"]) + list(imgs["insertion"]),
                       "%s[%d] DeletionInsertion" % (name, i))
            assert np.array_equal(rec64.first, xs[i])
            r32, _ = run_idl("di", rec32, pngs[i], e, K)
            q, _ = run_idl("pt", rec64, pngs[i], e, K)
            check_seen(rec64, list(imgs["deletion"]) + list(imgs["lerf"]),
                       "%s[%d] Perturbation" % (name, i))
            q32, _ = run_idl("pt", rec32, pngs[i], e, K)
            for key, rr in (("", r), ("32", r32)):
                res["del" + key].append(rr["del_probas"])
                res["ins" + key].append(rr["ins_probas"])
                res["dscore" + key].append(rr["deletion_score"])
                res["iscore" + key].append(rr["insertion_score"])
            for key, rr in (("", q), ("32", q32)):
                res["morf" + key].append(rr["MoRF_probas"])
                res["lerf" + key].append(rr["LeRF_probas"])
                res["mscore" + key].append(rr["MoRF_score"])
                res["lscore" + key].append(rr["LeRF_score"])
            t = targets[i]
            for k2, src in (("del", "deletion"), ("ins", "insertion"), ("lerf", "lerf")):
                res[k2 + "_own"].append(softmax(pd64(imgs[src]))[:, t])
                res[k2 + "_ort"].append(softmax(ort(imgs[src]))[:, t])
            assert r["del_probas"].shape == (K + 1,) and r["ins_probas"].shape == (K + 1,)
            assert r["del_probas"][0] == r["ins_probas"][-1] == res["del_own"][-1][0]
        R = {k: np.array(v, np.float64) for k, v in res.items()}
        call = "%s: %%s, i = 0, 1 (%s[i], limit_number_generated_samples=%d)" % (
            header_calls, name, K)
        st = ["variant=interpretdl", "steps=%d" % K, fill_s, "objective=probability",
              "explanation=%s.npy" % name]
        tag = "%s_k%d" % (name[5:], K)
        di = "DeletionInsertion(model, 'cpu').evaluate(...)"
        pt = "Perturbation(model, 'cpu').evaluate(...)"
        for metric, key, own, probas, score, dscore, call_of in (
                ("deletion", "del", "del", "del_probas", "deletion_mean", "dscore", di),
                ("insertion", "ins", "ins", "ins_probas", "insertion_mean", "iscore", di),
                ("morf", "morf", "del", "MoRF_probas", "morf_mean", "mscore", pt),
                ("lerf", "lerf", "lerf", "LeRF_probas", "lerf_mean", "lscore", pt)):
            base = "%s_%s" % ({"deletion": "del", "insertion": "ins"}.get(metric, metric), tag)
            case.add(metric, base + "_curve.npy", "curve", st, R[key],
                     call % ("%s['%s']" % (call_of, probas)),
                     fp32={"interpretdl_paddle_fp32": R[key + "32"],
                           "own_onnxruntime_fp32": R[own + "_ort"]},
                     cross={"own_fp64_images_of_the_definition": me.harness_err(
                         R[own + "_own"], R[key])})
            sname = {"deletion": "deletion_score", "insertion": "insertion_score",
                     "morf": "MoRF_score", "lerf": "LeRF_score"}[metric]
            case.add(metric, base + "_mean.npy", score, st, R[dscore],
                     call % ("%s['%s']" % (call_of, sname)),
                     fp32={"interpretdl_paddle_fp32": R[dscore + "32"],
                           "own_onnxruntime_fp32": R[own + "_ort"].mean(axis=1)},
                     cross={"mean_of_curve": me.harness_err(R[key].mean(axis=1), R[dscore])})
            if metric in ("deletion", "insertion"):
                case.add(metric, base + ".npy", metric, st, trapz(R[key], K),
                         call % ("numpy.trapz(%s['%s'], dx=1/%d)" % (call_of, probas, K)),
                         fp32={"interpretdl_paddle_fp32": trapz(R[key + "32"], K),
                               "own_onnxruntime_fp32": trapz(R[own + "_ort"], K)})

    # ---- infidelity
    sq = squares(SIZE, SIZE)
    assert len(sq) == 1235
    for name in MAPS:
        ref, ref32, own64, own32, betas = [], [], [], [], []
        for i in range(BATCH):
            e = ex[name][i]
            E64 = resized(e).astype(np.float64)
            val, ev = run_idl("inf", rec64, pngs[i], e)
            perts = np.stack(list(infid_images(xs[i], fill, sq)))
            check_seen(rec64, [xs[i]] + list(perts), "%s[%d] Infidelity" % (name, i))
            assert ev.results["predict"]["label"] == targets[i]
            Is = ev.results["Is"]
            e_own = np.empty(len(sq))
            n_same = 0
            for p in range(len(sq)):
                ind = perts[p] != xs[i]
                if not np.array_equal(Is[p], ind.astype(np.float32)):
                    raise RuntimeError("Infidelity's I differs from (x_p != x) at %d" % p)
                n_same += int(np.count_nonzero(~ind[:, sq[p][1]:sq[p][1] + sq[p][0],
                                                    sq[p][2]:sq[p][2] + sq[p][0]]))
                e_own[p] = np.sum(ind * E64[None])
            unchanged_127["photo%d" % i] = n_same
            delta64 = ev.results["proba_diff"]
            s_own, beta = infid_score(delta64, e_own)
            zo = batched(ort, perts)[:, targets[i]]
            s_ort, _ = infid_score(ort(xs[i:i + 1])[0, targets[i]] - zo, e_own)
            val32, _ = run_idl("inf", rec32, pngs[i], e)
            ref.append(float(val))
            ref32.append(float(val32))
            own64.append(s_own)
            own32.append(s_ort)
            betas.append(beta)
            del perts, Is, ev
        case.add("infidelity", "infid_%s.npy" % name[5:], "infidelity",
                 ["patch_sizes=32,64,128", "stride=8", "indicator=1", "scaling=1", fill_s,
                  "objective=logit", "explanation=%s.npy" % name], ref,
                 "%s: Infidelity(model, 'cpu').evaluate(photo_i, %s[i], recompute=True, "
                 "batch_size=50, resize_to=224, crop_to=224), i = 0, 1" % (
                     "interpretdl %s, float64 model" % idl.version, name),
                 fp32={"interpretdl_paddle_fp32": ref32, "own_onnxruntime_fp32": own32},
                 cross={"own_fp64_e_sum": me.harness_err(own64, ref)})
        case.meta_lines[-1]["beta_own"] = betas

    # ---- point game
    pg = idl.PointGame()
    pgs = idl.PointGameSegmentation()
    keys = [("precision", "precision"), ("recall", "recall"), ("f1_score", "f1"),
            ("auc_score", "roc_auc"), ("ap_score", "ap")]
    for kind, thr in (("box", 0.25), ("mask", 0.5)):
        rs = []
        for i in range(BATCH):
            e = ex["expl_fine"][i]
            rs.append(pg.evaluate(BOX, e, thr) if kind == "box" else
                      pgs.evaluate(mask[i], e, thr))
        for k, score in keys:
            st = (["box=%d,%d,%d,%d" % BOX] if kind == "box" else
                  ["mask=mask.npy", "threshold=%g" % thr]) + ["explanation=expl_fine.npy"]
            call = ("interpretdl %s PointGame().evaluate((%d, %d, %d, %d), expl_fine[i], %g)['%s']"
                    % ((idl.version,) + BOX + (thr, k)) if kind == "box" else
                    "interpretdl %s PointGameSegmentation().evaluate(mask[i], expl_fine[i], %g)"
                    "['%s']" % (idl.version, thr, k))
            case.add("point_game", "pg_%s_t%g_%s.npy" % (kind, thr, score), score, st,
                     [float(r[k]) for r in rs], call + ", i = 0, 1",
                     fp32={"float32": [float(r[k]) for r in rs]})

    import onnxruntime
    meta = {
        "interpretdl": idl.version, "interpretdl_commit": "80b9067b90581c86e99c070f3bb6bb140c56ce36"
        " (tag v0.8.0; the evaluator files equal the PyPI wheel's)",
        "interpretdl_sha256": idl.sha256, "paddle": paddle.__version__,
        "paddle2onnx": importlib.metadata.version("paddle2onnx"),
        "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
        "opencv": cv2.__version__, "scikit-learn": sklearn.__version__,
        "pillow": Image.__version__, "scikit-image": importlib.metadata.version("scikit-image"),
        "reference": "InterpretDL's outputs with the float64 copy of the Paddle model; stored "
                     "as float64",
        "seed": seed, "model_tries": model_tries, "model_check": model_check,
        "targets": targets.tolist(), "fill": [float(v) for v in fill],
        "fill_rule": "preprocess_image of a uint8 127 pixel (float32)",
        "photos": {r: {"source": "skimage.data %s crop x %d..%d, y %d..%d -> %dx%d INTER_AREA" % (
            s, c[0], c[2] - 1, c[1], c[3] - 1, PNG_W, PNG_H), "pipeline": pp}
            for r, (s, c), pp in zip(rel, PHOTOS, pipe)},
        "explanation_draw": ex_info,
        "infidelity_perturbations": len(sq),
        "infidelity_unchanged_elements_in_squares": unchanged_127,
        "infidelity_unchanged_note": "elements inside the squares that already equal the fill "
                                     "(uint8 127), summed over the 1235 squares",
        "box": "x1,y1,x2,y2 = %d,%d,%d,%d" % BOX,
        "files": {
            "photo0.png": "chelsea crop, 128 x 96", "photo1.png": "coffee crop, 128 x 96",
            "input.npy": "float32 (2, 3, 224, 224), InterpretDL's model input",
            "targets.npy": "int64 (2,), argmax", "model.onnx": "paddle2onnx opset 13",
            "expl_fine.npy": "float32 (2, 56, 56)", "expl_cam.npy": "float32 (2, 7, 7)",
            "mask.npy": "uint8 (2, 56, 56)"}}
    case.finish(meta, [
        "generator: tests/reference/make_evaluate_interpretdl.py (interpretdl %s, commit "
        "80b9067b (tag v0.8.0); paddle %s, numpy %s, opencv %s, scikit-learn %s); references: "
        "InterpretDL's own outputs, float64 model" % (
            idl.version, paddle.__version__, np.__version__, cv2.__version__, sklearn.__version__),
        "model: random-weight Paddle CNN -> paddle2onnx; input.npy = InterpretDL's input for "
        "photo0.png / photo1.png (resize_to=224, crop_to=224); targets.npy = argmax (InterpretDL's "
        "class of interest)",
        "fill = InterpretDL's grey (uint8 127) after its ImageNet normalisation (float32)",
        "deletion / insertion: DeletionInsertion del_probas / ins_probas (curve), deletion_score "
        "/ insertion_score (*_mean), trapezoid of the probas with spacing 1/K (deletion / "
        "insertion); morf / lerf: Perturbation MoRF_probas / LeRF_probas, MoRF_score / LeRF_score",
        "infidelity: Infidelity.evaluate (logits, squares 32/64/128 stride 8, I = changed "
        "elements, optimal beta); point_game: PointGame / PointGameSegmentation"])
    print("%s: %.1fs" % (NAME, time.time() - t0), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir", nargs="?", default=os.path.join(HERE, "..", "data", "evaluate"))
    ap.add_argument("--cli", default=os.path.join(HERE, "..", "..", "build", "interpretdl"),
                    help="the library's CLI, for a forward-pass check (skipped if absent)")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    make_case(a.outdir, a.cli)


if __name__ == "__main__":
    main()
