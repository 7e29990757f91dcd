#!/usr/bin/env python3
"""make_perturb.py [OUTDIR] [--cases a,b] — regenerates the committed fixtures of the perturbation
methods (default OUTDIR: tests/data/explain next to this script's folder), read by
tests/test_explain.c (--parity) like those of make_explain.py (same case.txt format, documented
there). Runs with the venv of setup_venv.sh (build/venv/bin/python: Debian's torch 1.13 plus
captum 0.7.0, grad-cam 1.5.5, ttach 0.0.3 and lime 0.2.0.1, installed --no-deps; onnx is imported
before torch). Captum, pytorch-grad-cam and lime are only RUN here, to produce reference numbers;
none of their code is copied into the library.

Both cases use make_explain.py's CNNRelu (3x32x32 input, 10 classes, MaxPool before each ReLU;
L = relu4's output, 8x8, the input of the global average pooling: the automatic layer; M = relu2's
output, 16x16), calibrated and exported as there (opset 13, input "input", dynamic batch), with
the case's own seed. The input (batch 2) is redrawn as cnn_relu's is (every ReLU input and
MaxPool runner-up >= 1e-5 * max away from its kink, two different argmax classes) plus the case's
own conditions (below). targets.npy: per sample a seeded class that is not the argmax.

Cases (OUTDIR/<case>/: model.onnx, input.npy, targets.npy, the expected .npy files, case.txt,
meta.json):
  perturb_cnn  Occlusion, Score-CAM and Ablation-CAM. Input condition: every Score-CAM and
               Ablation-CAM raw map (L and M) positive on >= 10% of each sample's positions, and
               |logit of the target| >= 0.5 for each sample (Ablation-CAM divides by it).
    occlusion  Captum 0.7.0 Occlusion: for every window position (shift counts per axis
               ceil((S - w) / stride) + 1, start i * stride, a window that runs over the border is
               cut there: Captum pads its window of ones with a negative pad), x_k = x with the
               window replaced by the baseline, attribution += (f(x) - f(x_k)) on the window;
               aggregate=mean divides each element by the number of windows that cover it
               (Captum; its result is float32: total.float() / count), aggregate=sum does not
               (InterpretDL). Lines: window=1,4,4 stride=1,2,2 baseline=0 (logit);
               window=3,5,5 stride=3,4,4 baseline=0.5 (logit; last window 28..31 of 28..32);
               window=3,8,8 stride=3,8,8, no baseline key (Captum's default 0; probability:
               Captum on softmax(model)); window=2,6,6 stride=2 baseline=base_n.npy (one baseline
               per sample; the second channel window 2..3 of 2..4); aggregate=sum window=3,6,6
               stride=3,4,4 baseline=base.npy (C, H, W): the reference is this script's own loop
               over the windows in numpy float64 (never Captum), cross-checked against Captum's
               mean times the coverage count. Every mean line is cross-checked against the own
               loop divided by the coverage.
    scorecam   pytorch-grad-cam 1.5.5 ScoreCAM, ClassifierOutputTarget (the logit): per channel k,
               m_k = UpsamplingBilinear2d (align_corners=True) of A_k to 32x32, min-max
               normalised per sample and channel as (m - min) / (max - min + 1e-8) (a constant
               channel gives m_k = 0 and still takes part), score s_k = logit_t(x * m_k) (m_k
               broadcast over the input channels), weights = softmax over k of s_k, raw =
               relu(sum_k w_k A_k) at the layer's resolution (pgc with scale_cam_image replaced by
               the identity, as make_explain.py's pgc_raw), "full" = the library's own output
               (min-max, cv2.resize to 32x32, min-max; normalize=1 upsample=1). L (also without
               layer=) and M; cross-checked against plain torch float64.
               variant=interpretdl: InterpretDL's ScoreCAMInterpreter.interpret
               (interpretdl/interpreter/score_cam.py, PaddlePaddle/InterpretDL 1068fc2),
               re-implemented here in numpy from that file (Paddle is not needed): F = the layer's
               output (float32 there); for each channel k in order:
                 c_k = cv2.resize(F[n, k], (W, H)) per sample (INTER_LINEAR: half-pixel bilinear,
                       align_corners=False, border clamped) -- the UN-normalised upsampled map;
                 n_k = (c_k - min c_k) / (max c_k - min c_k) per sample if max - min > 0, else
                       c_k itself (no epsilon);
                 p_k = softmax(model(x * n_k))[n, t_n] (the probability; n_k broadcast over the
                       input channels);
                 map += p_k * c_k (float64 accumulator at the INPUT resolution).
               No softmax over channels, no ReLU, no normalisation, no clipping (InterpretDL's
               ReLU / min-max lines are commented out): output (N, 32, 32), objective=probability.
               On these ReLU layers A >= 0 and p > 0, so the map is >= 0 everywhere. Cross-checked
               with torch's bilinear resize (align_corners=False) in place of cv2.
    ablationcam  pytorch-grad-cam 1.5.5 AblationCAM, ClassifierOutputTarget (the logit): y = the
               target logit, y_k = the same with channel k of the layer's output set to 0 (pgc
               writes 0 when min(activations) == 0, true after these ReLUs), w_k = (y - y_k) / y
               (pgc rounds y and y_k to float32 with np.float32 before dividing, so its float64
               run carries float32 rounding in the weights: the own float64 cross-check measures
               it), raw = relu(sum_k w_k A_k) at the layer's resolution; full = the library's
               output. L (also without layer=) and M.
  lime_cnn     the LIME surrogate on replayed masks (objective=probability: lime's classifier_fn
               returns softmax(model(x)), NCHW from lime's NHWC batch). Input condition: the
               target's probability >= 0.02 in each sample. Settings: segments= (int32 (H, W)
               shared, or (N, H, W); labels 0..S-1), masks= (float32 (num_samples, S) of 0/1,
               row 0 all ones; with per-sample S_i sample i uses the first S_i columns),
               kernel_width=0.25, ridge_alpha=, hide=mean (a hidden superpixel takes its own
               per-channel mean of the model input, lime's hide_color=None). Per sample: distances
               d = cosine distance of the mask row z to the all-ones row = 1 - sqrt(|z| / S)
               (sklearn pairwise_distances; a zero row gives 1), weights
               w = sqrt(exp(-d^2 / kernel_width^2)) (lime's kernel), y = the objective of the
               target class on the masked input; fit y ~ b + z . beta by weighted least squares
               with intercept: weighted means zbar, ybar, Zc = sqrt(w) (Z - zbar),
               yc = sqrt(w) (y - ybar), beta = (Zc' Zc + alpha I)^-1 Zc' yc (the intercept
               b = ybar - zbar . beta is not penalised; sklearn Ridge(alpha) with sample_weight),
               and for alpha = 0 the minimum-norm solution pinv(Zc) yc. The attribution paints
               every pixel with beta[segment]: (N, 32, 32). Lines:
                 (a) ridge_alpha=1: the lime package itself, LimeImageExplainer(kernel_width=0.25,
                     random_state=seed).explain_instance(image HWC float64, classifier_fn,
                     labels=(t,), hide_color=None, top_labels=None, num_features=100000,
                     num_samples=256, segmentation_fn=<seg.npy>) per sample, reseeded per sample
                     (the same masks for both samples; they are lime's own draw, saved as
                     masks.npy); cross-checked against the own weighted ridge;
                 (b) ridge_alpha=0 on the same masks: own numpy WLS (lstsq, minimum norm),
                     cross-checked against lime with model_regressor=sklearn LinearRegression()
                     and the masks replayed;
                 (c) ridge_alpha=0 with masks_few.npy = the first 20 rows of masks.npy
                     (num_samples < S: rank deficient; minimum-norm), own; cross-checked
                     against lime + LinearRegression (scipy lstsq, also minimum-norm);
                 (d) seg_n.npy, one segmentation per sample with different S, masks_n.npy (lime's
                     draw for the sample with the most segments; the other sample replays its
                     first S_i columns through a stand-in random_state), ridge_alpha=1, one line
                     with objective=probability and one with objective=logit (classifier_fn
                     returns the logits; lime does not care), both from lime.
               meta.json records per line and sample lime's R^2 ("lime_score_r2": Ridge.score with
               sample_weight = w, i.e. 1 - sum w (y - yhat)^2 / sum w (y - ybar)^2), intercept
               ("lime_intercept") and local prediction, and the own fit's ("wls_score_r2",
               "wls_intercept"), plus the singular values of Zc (rank, conditioning).

Numerics: references are computed in float64 (model.double(), inputs / baselines as float64
copies of the float32 files) and stored as float32; every line is also run with the float32
model and meta.json records max|fp32 - fp64| / max|fp64| as "fp32_vs_fp64" (the script fails
above make_explain.FP32_LIMIT, 1e-5). Cross-check maxima are in "cross_check_rel_err".
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import copy  # noqa: E402
import importlib.metadata  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402,F401  (before torch: see setup_venv.sh)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_explain as mx  # noqa: E402
import make_transformers as mtr  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import captum.attr as ca  # noqa: E402
import cv2  # noqa: E402
import pytorch_grad_cam as pgc  # noqa: E402
import pytorch_grad_cam.ablation_cam as pgc_ablation  # noqa: E402
import pytorch_grad_cam.base_cam as pgc_base  # noqa: E402
import pytorch_grad_cam.score_cam as pgc_score  # noqa: E402
import lime.lime_image as lime_image  # noqa: E402
from skimage.segmentation import felzenszwalb  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

from make_explain import Prob, both, layer_of, minmax, np_, pgc_full, rel_err, seed_of  # noqa

def fit_keys(r2, intercept):
    """case.txt keys checking the surrogate's R^2 and intercept per sample (test_explain.c)."""
    return ["r2=" + ",".join("%.9g" % v for v in r2),
            "intercept=" + ",".join("%.9g" % v for v in intercept)]


BATCH = 2
MIN_POSITIVE = 0.1       # perturb_cnn: every CAM map positive on >= 10% of each sample's positions
MIN_TARGET_LOGIT = 0.5   # perturb_cnn: |target logit| (Ablation-CAM's denominator)
MIN_TARGET_PROB = 0.02   # lime_cnn: the target's probability
LIME_SAMPLES = 256
LIME_FEW = 20            # (c): fewer samples than superpixels
KERNEL_WIDTH = 0.25
# Occlusion's float32 run is f(x) - f(x_k) for inputs that differ in a few elements: the float32
# rounding of each forward pass (~3e-6 of the logit here) does not cancel, and a 1x4x4 window
# moves the logit little (PyTorch float32: 1.8e-5 of max|attribution| on window=1,4,4; ONNX
# Runtime's float32 forward is measured too, "onnxruntime_fp32_vs_fp64")
OCCLUSION_FP32_LIMIT = 5e-5


class _Quiet:
    """Stands in for the tqdm module in pgc's ScoreCAM / AblationCAM: no progress bars."""
    @staticmethod
    def tqdm(it, *a, **k):
        return it


pgc_score.tqdm = _Quiet
pgc_ablation.tqdm = _Quiet
lime_image.tqdm = lambda it, *a, **k: it


class Case(mx.Case):
    """make_explain.Case, with this script named in case.txt's first line and a per-line float32
    limit (fp32_limit=, recorded in meta.json) for the lines whose float32 run is a difference of
    two nearby forward passes (see OCCLUSION_FP32_LIMIT)."""

    def add(self, *a, fp32_limit=None, **k):
        err = super().add(*a, **k)
        if fp32_limit is not None:
            self.meta_lines[-1]["fp32_limit"] = fp32_limit
        return err

    def finish(self, meta, header):
        bad = [(m["line"], m["fp32_vs_fp64"]) for m in self.meta_lines
               if m["fp32_vs_fp64"] > m.get("fp32_limit", mx.FP32_LIMIT)]
        if bad:
            raise RuntimeError("%s: PyTorch float32 vs float64 above the limit on: %s" % (
                self.name, bad))
        limit = mx.FP32_LIMIT
        mx.FP32_LIMIT = max([limit] + [m.get("fp32_limit", limit) for m in self.meta_lines])
        try:  # (make_explain's check, with the per-line limits checked above)
            super().finish(meta, header)
        finally:
            mx.FP32_LIMIT = limit
        p = os.path.join(self.d, "case.txt")
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace("(tests/reference/make_explain.py;",
                                 "(tests/reference/make_perturb.py;", 1))


def versions():
    v = mx.versions()
    for p in ("lime", "scikit-learn", "scikit-image", "scipy"):
        v[p] = importlib.metadata.version(p)
    return v


# ---------------------------------------------------------------- model and input

def draw_case(name, accept):
    """make_explain.py's CNNRelu with seed_of(name), calibrated as there; the input redrawn (seed
    * 100 + k) until no unit is near a kink, the argmax classes differ and accept(m64, x64,
    targets, logits64) -> (ok, info) holds."""
    seed = seed_of(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = mx.CNNRelu()
    mx.calibrate(model, gen, (3, 32, 32))
    m64 = copy.deepcopy(model).double()
    tries = []
    for k in range(mx.MAX_TRIES):
        gx = torch.Generator().manual_seed(seed * 100 + k)
        x = torch.randn((BATCH, 3, 32, 32), generator=gx)
        margins = mx.kink_margins(m64, x.double())
        with torch.no_grad():
            logits64 = m64(x.double())
        t = mx.pick_targets(logits64, gx)
        argmax = logits64.argmax(dim=1)
        ok, info = accept(m64, x.double(), t, logits64)
        tries.append(dict({"input_seed": seed * 100 + k,
                           "min_kink_margin": min(margins.values())}, **info))
        if (min(margins.values()) >= mx.KINK_MARGIN and ok
                and len(set(argmax.tolist())) == BATCH):
            break
    else:
        raise RuntimeError("%s: no suitable input in %d tries" % (name, mx.MAX_TRIES))
    return {"seed": seed, "model": model, "m32": copy.deepcopy(model), "m64": m64, "x": x,
            "xn": x.numpy(), "logits64": logits64, "t": t, "tn": t.numpy(), "argmax": argmax,
            "margins": margins, "tries": tries}


def export_case(case, c):
    """model.onnx, checked with ONNX Runtime (logits, and L / M found by value)."""
    om = mx.export(c["model"], c["x"], os.path.join(case.d, "model.onnx"))
    outs, _ = mtr.ort_run(om, {"input": c["xn"]})
    ort_err = rel_err(outs[0], c["logits64"].numpy())
    if ort_err > 1e-4:  # float32 rounding: 1.3e-5 of max|logit| on lime_cnn
        raise RuntimeError("%s: ONNX Runtime vs float64 logits %g" % (case.name, ort_err))
    m64 = c["m64"]
    labels = {"relu2": m64.features.relu2, "relu4": m64.features.relu4}
    names, diffs, gap_in = mx.onnx_layer_names(om, m64, c["x"].double(), labels)
    if gap_in != names["relu4"]:
        raise RuntimeError("the GlobalAveragePool input is %s, not relu4's output %s" % (
            gap_in, names["relu4"]))
    case.save("input.npy", c["xn"])
    case.save("targets.npy", c["tn"].astype(np.int64))
    return {"opset": mx.OPSET, "ops": mtr.count_ops(om), "layers": names,
            "layer_value_rel_diff_onnxruntime": diffs, "automatic_layer": gap_in,
            "onnxruntime_vs_fp64_logits": ort_err}


def base_meta(c, name):
    return {"source": "tests/reference/make_explain.py:CNNRelu, calibrated as make_explain.py, "
                      "seed_of(%r)" % name,
            "seed": c["seed"], "input_tries": c["tries"], "kink_margins_fp64": c["margins"],
            "kink_margin_required": mx.KINK_MARGIN, "targets": c["tn"].tolist(),
            "argmax": c["argmax"].tolist(), "logits_fp64": c["logits64"].tolist(),
            "reference": "float64 (model.double()), stored as float32", **versions()}


def objective(out, targets, kind):
    """(N,) objective of each sample's target: the logit or the softmax probability."""
    z = out if kind == "logit" else torch.softmax(out, dim=1)
    return z[torch.arange(z.shape[0]), torch.as_tensor(targets)]


def activations(m, label, xx):
    rec = {}
    h = layer_of(m, label).register_forward_hook(lambda mod, i, o: rec.__setitem__("a", o))
    with torch.no_grad():
        m(xx)
    h.remove()
    return rec["a"].detach()


# ---------------------------------------------------------------- occlusion

def shift_counts(shape, window, stride):
    """Captum: ceil((S - w) / stride) + 1 per axis."""
    return [-(-(s - w) // st) + 1 for s, w, st in zip(shape, window, stride)]


def torch_objective(m, targets, kind):
    """numpy (N, C, H, W) -> numpy (N,) float64: the objective of each sample's target."""
    def f(a):
        with torch.no_grad():
            return objective(m(torch.from_numpy(np.ascontiguousarray(a))), targets,
                             kind).double().numpy()
    return f


def ort_objective(sess, targets, kind):
    """The same through ONNX Runtime (float32)."""
    def f(a):
        z = torch.from_numpy(sess.run(None, {"input": np.ascontiguousarray(a, np.float32)})[0])
        return objective(z.double(), targets, kind).numpy()
    return f


def occlusion_own(f, x, window, stride, baseline):
    """The definition, looped in numpy (float64 accumulation): for every window position (start
    i * stride, cut at the border), d = f(x) - f(x with the window set to the baseline), added to
    every element of the window. Returns (sum over windows (N, C, H, W), coverage (C, H, W),
    number of windows). f: numpy (N, C, H, W) -> (N,) objective; x numpy (N, C, H, W); baseline
    scalar or array broadcastable to x."""
    shape = x.shape[1:]
    b = np.broadcast_to(np.asarray(baseline, x.dtype), x.shape)
    f0 = f(x)
    total = np.zeros(x.shape)
    cover = np.zeros(shape)
    counts = shift_counts(shape, window, stride)
    for idx in itertools.product(*[range(c) for c in counts]):
        sl = tuple(slice(i * st, min(i * st + w, s))
                   for i, st, w, s in zip(idx, stride, window, shape))
        xk = x.copy()
        xk[(slice(None),) + sl] = b[(slice(None),) + sl]
        total[(slice(None),) + sl] += (f0 - f(xk))[:, None, None, None]
        cover[sl] += 1
    return total, cover, int(np.prod(counts))


def occlusion_lines(case, c):
    m32, m64, xn, tn = c["m32"], c["m64"], c["xn"], c["tn"]
    sess = mtr.ort_session(os.path.join(case.d, "model.onnx"))
    rng = np.random.default_rng(c["seed"])
    base = case.save("base.npy", (0.5 * rng.standard_normal(xn.shape[1:])).astype(np.float32))
    base_n = case.save("base_n.npy", (0.5 * rng.standard_normal(xn.shape)).astype(np.float32))
    base_a = np.load(os.path.join(case.d, base))
    base_na = np.load(os.path.join(case.d, base_n))
    case.comment("Occlusion (Captum 0.7.0 Occlusion, aggregate=mean unless said; shift counts "
                 "ceil((S - w) / stride) + 1 per axis, windows cut at the border). base.npy "
                 "(C, H, W) and base_n.npy (N, C, H, W): 0.5 * standard normal, numpy seed %d"
                 % c["seed"])
    info = {}
    plan = [  # window, stride (as written, as a tuple), baseline (setting, array), objective
        ((1, 4, 4), ("1,2,2", (1, 2, 2)), ("0", 0.0), "logit", "mean"),
        ((3, 5, 5), ("3,4,4", (3, 4, 4)), ("0.5", 0.5), "logit", "mean"),
        ((3, 8, 8), ("3,8,8", (3, 8, 8)), (None, 0.0), "probability", "mean"),
        ((2, 6, 6), ("2", (2, 2, 2)), (base_n, base_na), "logit", "mean"),
        ((3, 6, 6), ("3,4,4", (3, 4, 4)), (base, base_a), "logit", "sum"),
    ]
    for window, (stride_s, stride), (base_s, base_v), kind, agg in plan:
        fname = "occlusion_%s_%s%s.npy" % ("x".join(map(str, window)),
                                           "x".join(map(str, stride)),
                                           "" if agg == "mean" else "_sum")
        if kind == "probability":
            fname = fname.replace(".npy", "_probability.npy")
        settings = ["window=%s" % ",".join(map(str, window)), "stride=" + stride_s]
        if base_s is not None:
            settings.append("baseline=" + base_s)
        if agg == "sum":
            settings.append("aggregate=sum")
        settings.append("objective=" + kind)
        # Captum takes a scalar, a (1, C, H, W) or an (N, C, H, W) baseline
        cap_base = base_v if np.isscalar(base_v) else (base_v if base_v.ndim == 4
                                                       else base_v[None])
        cap_stride = int(stride_s) if "," not in stride_s else stride

        def captum_fn(m, xx, *bb, kind=kind, window=window, cap_stride=cap_stride,
                      cap_base=cap_base):
            f = m if kind == "logit" else Prob(m)
            b = bb[0] if bb else float(cap_base)
            return ca.Occlusion(f).attribute(xx, sliding_window_shapes=window,
                                             strides=cap_stride, baselines=b,
                                             target=torch.from_numpy(tn))

        def own(f, dt, window=window, stride=stride, base_v=base_v):
            return occlusion_own(f, xn.astype(dt), window, stride, np.asarray(base_v, dt))
        extra = [] if np.isscalar(cap_base) else [np.asarray(cap_base, np.float32)]
        rc = both(captum_fn, m32, m64, xn, *extra)
        with mx.default_dtype(torch.float64):
            own_sum, cover, nwin = own(torch_objective(m64, tn, kind), np.float64)
        own_sum32, _, _ = own(torch_objective(m32, tn, kind), np.float32)
        ort_sum, _, _ = own(ort_objective(sess, tn, kind), np.float32)
        counts = shift_counts(xn.shape[1:], window, stride)
        call = ("captum.attr.Occlusion(%s).attribute(x, sliding_window_shapes=%s, strides=%r, "
                "baselines=%s, target=targets)" % (
                    "model" if kind == "logit" else "Prob(model)", window, cap_stride,
                    "%r" % cap_base if np.isscalar(cap_base) else
                    "%s%s" % (base_s, "" if base_v.ndim == 4 else "[None]")))
        note = {"shift_counts": counts, "windows": nwin,
                "coverage_min_max": [int(cover.min()), int(cover.max())]}
        if agg == "mean":
            cross = {"own numpy loop / coverage": rel_err(own_sum / cover, rc[0])}
            note["onnxruntime_fp32_vs_fp64"] = rel_err(ort_sum / cover, rc[0])
            case.add("occlusion", fname, settings, *rc, call, cross=cross,
                     fp32_limit=OCCLUSION_FP32_LIMIT)
        else:
            cross = {"captum mean x coverage": rel_err(rc[0] * cover, own_sum)}
            note["onnxruntime_fp32_vs_fp64"] = rel_err(ort_sum, own_sum)
            case.add("occlusion", fname, settings, own_sum, own_sum32,
                     "own numpy loop over the %d windows (float64): sum of (f(x) - f(x_k)) over "
                     "the windows covering each element, not divided" % nwin, cross=cross,
                     fp32_limit=OCCLUSION_FP32_LIMIT)
        case.meta_lines[-1].update(note)
        info[fname] = note
    return info


# ---------------------------------------------------------------- Score-CAM / Ablation-CAM

def pgc_raw_nograd(cls, model, label, x, t):
    """make_explain.pgc_raw for the gradient-free CAMs (no gradients are captured): the map
    before min-max / resize, and the max difference to get_cam_image on the captured
    activations (which re-runs the scoring / ablation)."""
    layer = layer_of(model, label)
    targets = mx.cam_targets(t, "logit")
    with cls(model=model, target_layers=[layer]) as cam:
        orig = pgc_base.scale_cam_image
        pgc_base.scale_cam_image = lambda img, target_size=None: np.asarray(img)
        try:
            raw = cam(input_tensor=x, targets=targets)
        finally:
            pgc_base.scale_cam_image = orig
        acts = cam.activations_and_grads.activations[0].numpy()
        raw2 = np.maximum(cam.get_cam_image(x, layer, targets, acts, None, False), 0)
    return raw, rel_err(raw2, raw)


def bilinear_align_corners(a, out_h, out_w):
    """numpy (..., h, w) -> (..., out_h, out_w), bilinear with align_corners=True: output row i
    samples input row i * (h - 1) / (out_h - 1) (UpsamplingBilinear2d)."""
    def axis(n_in, n_out):
        pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        i0 = np.minimum(np.floor(pos).astype(int), n_in - 2)
        return i0, pos - i0
    y0, fy = axis(a.shape[-2], out_h)
    x0, fx = axis(a.shape[-1], out_w)
    rows = a[..., y0, :] * (1 - fy)[:, None] + a[..., y0 + 1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x0 + 1] * fx


def scorecam_own(label, tn):
    """pgc's ScoreCAM written out (cross-check; the selection of the input): numpy align-corners
    bilinear upsampling, min-max with + 1e-8, logits of x * mask, softmax over the channels."""
    def fn(m, xx):
        a = np_(activations(m, label, xx))
        up = bilinear_align_corners(a, *xx.shape[-2:])
        lo = up.min(axis=(2, 3), keepdims=True)
        hi = up.max(axis=(2, 3), keepdims=True)
        nrm = torch.from_numpy((up - lo) / (hi - lo + 1e-8)).to(xx.dtype)
        with torch.no_grad():
            s = torch.stack([m(xx[n][None] * nrm[n][:, None])[:, int(tn[n])]
                             for n in range(xx.shape[0])])
        w = torch.softmax(s, dim=1).numpy()
        return np.maximum(np.einsum("nk,nkhw->nhw", w, a), 0)
    return fn


def ablationcam_own(label, tn):
    """pgc's AblationCAM in plain torch float64 (cross-check): channel k of the layer's output set
    to 0 by a forward hook, w_k = (y - y_k) / y."""
    def fn(m, xx):
        a = activations(m, label, xx)
        layer = layer_of(m, label)
        with torch.no_grad():
            y = objective(m(xx), tn, "logit")
            yk = []
            for k in range(a.shape[1]):
                def zero(mod, i, o, k=k):
                    o = o.clone()
                    o[:, k] = 0
                    return o
                h = layer.register_forward_hook(zero)
                yk.append(objective(m(xx), tn, "logit"))
                h.remove()
        w = (y[:, None] - torch.stack(yk, dim=1)) / y[:, None]
        return torch.relu(torch.einsum("nk,nkhw->nhw", w, a))
    return fn


def resize_cv2(f, h, w):
    return cv2.resize(f, (w, h))


def resize_torch(f, h, w):
    t = torch.from_numpy(np.ascontiguousarray(f))[None, None]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def scorecam_interpretdl(label, tn, resize=resize_cv2):
    """InterpretDL's ScoreCAMInterpreter.interpret in numpy (see the module comment)."""
    def fn(m, xx):
        feats = np_(activations(m, label, xx))  # (N, K, h, w)
        data = np_(xx)
        bsz, _, h, w = data.shape
        interp = np.zeros((bsz, h, w))
        for k in range(feats.shape[1]):
            ch = np.concatenate([np.expand_dims(resize(f, h, w), 0) for f in feats[:, k]])
            nrm = np.array([(f - f.min()) / (f.max() - f.min()) if f.max() - f.min() > 0.0
                            else f for f in ch]).reshape((bsz, 1, h, w))
            with torch.no_grad():
                probs = torch.softmax(m(torch.from_numpy(data * nrm)), dim=1).numpy()
            scores = np.array([p[tn[i]] for i, p in enumerate(probs)])
            interp += ch * scores.reshape((bsz, 1, 1))
        return interp
    return fn


def perturb_accept(m64, x64, t, logits64):
    tn = t.numpy()
    pos = {}
    for label in ("relu2", "relu4"):
        for meth, own in (("scorecam", scorecam_own), ("ablationcam", ablationcam_own)):
            raw = np_(own(label, tn)(m64, x64))
            pos["%s_%s" % (meth, label)] = float((raw > 0).reshape(len(raw), -1).mean(1).min())
    ylog = float(objective(logits64, tn, "logit").abs().min())
    return (min(pos.values()) >= MIN_POSITIVE and ylog >= MIN_TARGET_LOGIT,
            {"min_positive_fraction": min(pos.values()), "min_abs_target_logit": ylog})


def cam_lines(case, c, names):
    m32, m64, xn, tn, x = c["m32"], c["m64"], c["xn"], c["tn"], c["x"]
    L, M = names["relu4"], names["relu2"]
    layers = {"L": ("relu4", L), "M": ("relu2", M)}
    case.comment("Score-CAM and Ablation-CAM (pytorch-grad-cam 1.5.5, ClassifierOutputTarget: "
                 "the logit). L = %s (8x8, relu4, the automatic layer); M = %s (16x16, relu2). "
                 "raw = relu(sum_k w_k A_k) at the layer; full = pgc's own output (min-max, "
                 "cv2.resize to 32x32, min-max)" % (L, M))
    lg, pr = "objective=logit", "objective=probability"
    # pgc's AblationLayer writes 0 only when min(activations) == 0 (else min - 1e7); constant
    # channels: Score-CAM's mask is 0 there (pgc) or the channel itself (InterpretDL)
    info = {}
    for lab, (label, lname) in layers.items():
        a = activations(m64, label, x.double())
        if not bool((a.amin(dim=(1, 2, 3)) == 0).all()):
            raise RuntimeError("perturb_cnn: %s has no zero in some sample" % lname)
        flat = a.reshape(a.shape[0], a.shape[1], -1)
        const = (flat.amax(dim=2) == flat.amin(dim=2))
        info[lab] = {"channels": int(a.shape[1]),
                     "constant_channels_per_sample": [[int(k) for k in torch.nonzero(row)[:, 0]]
                                                      for row in const],
                     "constant_channel_values": [[float(flat[n, k, 0]) for k in
                                                  torch.nonzero(const[n])[:, 0]]
                                                 for n in range(a.shape[0])],
                     "zero_fraction": float((a == 0).double().mean())}
    cams = {"scorecam": (pgc.ScoreCAM, scorecam_own), "ablationcam": (pgc.AblationCAM,
                                                                      ablationcam_own)}
    for method, (cls, own) in cams.items():
        for lab in ("L", "M"):
            label, lname = layers[lab]
            checks = []

            def fn(m, xx, cls=cls, label=label, checks=checks):
                raw, d = pgc_raw_nograd(cls, m, label, xx, tn)
                checks.append(d)
                return raw
            r = both(fn, m32, m64, xn)
            with mx.default_dtype(torch.float64):
                mine = np_(own(label, tn)(m64, x.double()))
            call = ("pytorch_grad_cam.%s(model, target_layers=[model.features.%s])(x, "
                    "targets=[ClassifierOutputTarget(t) for t in targets]) with "
                    "pytorch_grad_cam.base_cam.scale_cam_image replaced by the identity"
                    % (cls.__name__, label))
            cross = {"get_cam_image_vs_call": max(checks),
                     "own float64 (%s)" % own.__name__: rel_err(mine, r[0])}
            fname = "%s_%s_raw.npy" % (method, lab)
            case.add(method, fname, ["layer=" + lname, lg], *r, call, cross=cross)
            if lab == "L":
                case.add(method, fname, [lg], *r, call + "; no layer key: the automatic layer",
                         cross=cross)

            def full(m, xx, cls=cls, label=label):
                return pgc_full(cls, m, label, xx, tn, "logit")
            rf = both(full, m32, m64, xn)
            up = F.interpolate(minmax(torch.from_numpy(r[0]))[:, None], size=(32, 32),
                               mode="bilinear", align_corners=False)[:, 0]
            case.add(method, "%s_%s_full.npy" % (method, lab),
                     ["layer=" + lname, "normalize=1", "upsample=1", lg], *rf,
                     "pytorch_grad_cam.%s(model, target_layers=[model.features.%s])(x, "
                     "targets=[ClassifierOutputTarget(t) for t in targets]) (min-max per sample, "
                     "cv2.resize INTER_LINEAR to 32x32, min-max again; float32 from "
                     "scale_cam_image on)" % (cls.__name__, label),
                     cross={"minmax(bilinear(minmax(raw))) in torch float64":
                            rel_err(minmax(up).numpy(), rf[0])})
    case.comment("Score-CAM variant=interpretdl: InterpretDL's ScoreCAMInterpreter (map = sum_k "
                 "p_t(x * minmax(up(A_k))) * up(A_k) at 32x32, up = cv2.resize bilinear "
                 "half-pixel, p = softmax probability, no softmax over k, no ReLU, no "
                 "normalisation)")
    for lab in ("L", "M"):
        label, lname = layers[lab]
        r = both(scorecam_interpretdl(label, tn), m32, m64, xn)
        with mx.default_dtype(torch.float64):
            mine = scorecam_interpretdl(label, tn, resize_torch)(m64, x.double())
        case.add("scorecam", "scorecam_%s_interpretdl.npy" % lab,
                 ["layer=" + lname, "variant=interpretdl", pr], *r,
                 "numpy port of InterpretDL ScoreCAMInterpreter.interpret(x, '%s', labels="
                 "targets) (interpretdl/interpreter/score_cam.py at 1068fc2): cv2.resize, "
                 "min-max of the upsampled channel, softmax probability of the target, "
                 "accumulated at 32x32" % label,
                 cross={"torch bilinear (align_corners=False) instead of cv2.resize":
                        rel_err(mine, r[0])})
    return info


def make_perturb_cnn(outdir):
    t0 = time.time()
    name = "perturb_cnn"
    case = Case(outdir, name)
    c = draw_case(name, perturb_accept)
    meta = base_meta(c, name)
    meta.update(export_case(case, c))
    meta["min_positive_fraction_required"] = MIN_POSITIVE
    meta["min_abs_target_logit_required"] = MIN_TARGET_LOGIT
    names = meta["layers"]
    meta["occlusion"] = occlusion_lines(case, c)
    meta["cam_layers"] = cam_lines(case, c, names)
    meta["files"] = {"base.npy": "(C, H, W) 0.5 * standard normal",
                     "base_n.npy": "(N, C, H, W) 0.5 * standard normal",
                     "order": "numpy default_rng(seed): base, base_n"}
    meta["interpretdl_commit"] = "1068fc2 (PaddlePaddle/InterpretDL, score_cam.py)"
    meta["seconds"] = round(time.time() - t0, 2)
    case.finish(meta, ["model: tests/reference/make_explain.py:CNNRelu (seed_of('perturb_cnn'))",
                       "targets.npy: per sample a seeded class that is not the argmax; every "
                       "line names its objective"])


# ---------------------------------------------------------------- LIME

class ReplayRandomState:
    """Stands in for lime's random_state in data_labels: randint(0, 2, num_samples * S) returns
    the given mask rows."""

    def __init__(self, rows):
        self.rows = np.asarray(rows)

    def randint(self, low, high, size=None):
        if (low, high, size) != (0, 2, self.rows.size):
            raise RuntimeError("lime drew randint(%r, %r, %r), replay has %d" % (
                low, high, size, self.rows.size))
        return self.rows.astype(np.int64).ravel().copy()


def classifier(m, kind):
    """lime's classifier_fn: (B, H, W, C) -> softmax(model(NCHW)) (or the logits)."""
    def fn(imgs):
        with torch.no_grad():
            z = m(torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))))
        return np_(torch.softmax(z, dim=1) if kind == "probability" else z)
    return fn


def lime_run(m, image, seg, target, kind, seed=None, rows=None, regressor=None):
    """lime_image.LimeImageExplainer(kernel_width=0.25).explain_instance on one HWC image with a
    fixed segmentation; masks drawn by lime (seed) or replayed (rows). Returns (coefficients (S,),
    lime's intercept, score, local_pred, masks drawn)."""
    ex = lime_image.LimeImageExplainer(kernel_width=KERNEL_WIDTH, random_state=seed)
    if rows is not None:
        ex.random_state = ReplayRandomState(rows)
    rec = {}
    orig = ex.data_labels

    def data_labels(*a, **k):
        d, lab = orig(*a, **k)
        rec["data"] = d
        return d, lab
    ex.data_labels = data_labels
    n = LIME_SAMPLES if rows is None else rows.shape[0]
    exp = ex.explain_instance(image, classifier(m, kind), labels=(int(target),), hide_color=None,
                              top_labels=None, num_features=100000, num_samples=n,
                              batch_size=64, segmentation_fn=lambda img: seg,
                              model_regressor=regressor, random_seed=0)
    s = int(seg.max()) + 1
    coef = np.zeros(s)
    feats = [f for f, _ in exp.local_exp[int(target)]]
    if sorted(feats) != list(range(s)):
        raise RuntimeError("lime kept features %s of %d" % (sorted(feats), s))
    for f, v in exp.local_exp[int(target)]:
        coef[f] = v
    return (coef, float(exp.intercept[int(target)]), float(exp.score),
            float(np.ravel(exp.local_pred)[0]), rec["data"])


def lime_lib(segs, sizes, targets, kind, seed=None, masks=None, regressor=None, out=None):
    """fn(m, x) for both(): lime per sample (HWC image of the model input), painted (N, H, W).
    With masks, sample i replays masks[:, :S_i]; else lime draws them with random_state=seed,
    reseeded per sample. out (dict) collects intercepts, scores, local predictions, draws."""
    def fn(m, xx):
        xa = np_(xx)
        res = []
        for i in range(xa.shape[0]):
            seg = segs[i]
            rows = None if masks is None else masks[:, :sizes[i]]
            coef, b0, score, pred, drawn = lime_run(m, xa[i].transpose(1, 2, 0), seg,
                                                    targets[i], kind, seed=seed, rows=rows,
                                                    regressor=regressor)
            res.append(coef[seg])
            if out is not None and xa.dtype == np.float64:
                for k, v in (("lime_intercept", b0), ("lime_score_r2", score),
                             ("lime_local_pred", pred)):
                    out.setdefault(k, []).append(v)
                out.setdefault("draws", []).append(drawn)
        return np.stack(res)
    return fn


def wls(z, y, w, alpha):
    """Weighted least squares with intercept: weighted-mean centring, sqrt(w) scaling; ridge
    penalty alpha on beta only; alpha = 0: minimum-norm lstsq. Returns beta, intercept, weighted
    R^2, singular values of the scaled centred design."""
    sw = w.sum()
    zbar = w @ z / sw
    ybar = w @ y / sw
    r = np.sqrt(w)
    zc = (z - zbar) * r[:, None]
    yc = (y - ybar) * r
    if alpha > 0:
        beta = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ yc)
    else:
        beta = np.linalg.lstsq(zc, yc, rcond=None)[0]
    b0 = ybar - zbar @ beta
    pred = z @ beta + b0
    score = 1.0 - (w * (y - pred) ** 2).sum() / (w * (y - ybar) ** 2).sum()
    return beta, float(b0), float(score), np.linalg.svd(zc, compute_uv=False)


def lime_own(segs, sizes, masks, targets, kind, alpha, out=None):
    """fn(m, x): the surrogate from its definition, nothing from lime: hidden superpixels get
    their per-channel mean, y = objective of the target on each masked input, d = 1 -
    sqrt(|z| / S), w = sqrt(exp(-d^2 / kw^2)), wls()."""
    def fn(m, xx):
        xa = np_(xx)
        res = []
        for i in range(xa.shape[0]):
            seg, s = segs[i], sizes[i]
            z = masks[:, :s].astype(np.float64)
            fud = np.zeros_like(xa[i])
            for k in range(s):
                fud[:, seg == k] = xa[i][:, seg == k].mean(axis=1, keepdims=True)
            on = z[:, seg] > 0  # (n, H, W)
            imgs = np.where(on[:, None], xa[i][None], fud[None])
            ys = []
            with torch.no_grad():
                for j in range(0, len(imgs), 64):
                    ys.append(objective(m(torch.from_numpy(imgs[j:j + 64])),
                                        [targets[i]] * len(imgs[j:j + 64]), kind))
            y = torch.cat(ys).double().numpy()
            d = 1.0 - np.sqrt(z.sum(axis=1) / s)
            w = np.sqrt(np.exp(-d ** 2 / KERNEL_WIDTH ** 2))
            beta, b0, score, sv = wls(z, y, w, alpha)
            res.append(beta[seg])
            if out is not None and xa.dtype == np.float64:
                tol = sv.max() * max(z.shape) * np.finfo(np.float64).eps
                out.setdefault("wls_intercept", []).append(b0)
                out.setdefault("wls_score_r2", []).append(score)
                out.setdefault("design_rank", []).append(int((sv > tol).sum()))
                kept = sv[sv > tol]
                out.setdefault("design_sv_min_kept_over_max", []).append(
                    float(kept.min() / sv.max()))
                out.setdefault("design_sv_max_dropped_over_max", []).append(
                    float(sv[sv <= tol].max() / sv.max()) if (sv <= tol).any() else None)
        return np.stack(res)
    return fn


def segmentation(img_chw, scale, min_size):
    """felzenszwalb (scale, sigma 0.5, min_size) on the min-max rescaled HWC image blurred by
    cv2.GaussianBlur (sigma 1.5); labels renumbered 0..S-1 in order of first appearance
    (row-major)."""
    a = img_chw.transpose(1, 2, 0).astype(np.float64)
    a = (a - a.min()) / (a.max() - a.min())
    a = cv2.GaussianBlur(a, (0, 0), 1.5)
    lab = felzenszwalb(a, scale=scale, sigma=0.5, min_size=min_size)
    _, first, inv = np.unique(lab.ravel(), return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv].reshape(lab.shape).astype(np.int32)


def lime_accept(m64, x64, t, logits64):
    p = float(objective(logits64, t.numpy(), "probability").min())
    return p >= MIN_TARGET_PROB, {"min_target_probability": p}


def make_lime_cnn(outdir):
    t0 = time.time()
    name = "lime_cnn"
    case = Case(outdir, name)
    c = draw_case(name, lime_accept)
    meta = base_meta(c, name)
    meta.update(export_case(case, c))
    meta["min_target_probability_required"] = MIN_TARGET_PROB
    m32, m64, xn = c["m32"], c["m64"], c["xn"]
    tl = c["tn"].tolist()
    seed = c["seed"]

    seg = segmentation(xn[0], 5, 12)
    s = int(seg.max()) + 1
    case.save("seg.npy", seg)
    seg_n = np.stack([segmentation(xn[0], 10, 8), segmentation(xn[1], 20, 5)])
    sizes_n = [int(g.max()) + 1 for g in seg_n]
    case.save("seg_n.npy", seg_n)
    if not (16 <= min(sizes_n) < max(sizes_n) <= 40 and 16 <= s <= 40 and LIME_FEW < s):
        raise RuntimeError("lime_cnn: superpixel counts %d, %s" % (s, sizes_n))
    common = ["kernel_width=%g" % KERNEL_WIDTH, "hide=mean"]
    pr, lg = "objective=probability", "objective=logit"

    # (a) lime's own draw and fit, ridge alpha 1
    case.comment("LIME (lime 0.2.0.1 lime_image.LimeImageExplainer(kernel_width=0.25) "
                 "explain_instance with hide_color=None, the fixed segmentation and "
                 "Ridge(alpha=1)); seg.npy: felzenszwalb of sample 0 (%d superpixels, shared); "
                 "masks.npy: lime's own draw (random_state=%d, %d samples)" % (s, seed,
                                                                               LIME_SAMPLES))
    out = {}
    segs = [seg, seg]
    r = both(lime_lib(segs, [s, s], tl, "probability", seed=seed, out=out), m32, m64, xn)
    draws = out.pop("draws")
    if not all(np.array_equal(d, draws[0]) for d in draws) or not np.all(draws[0][0] == 1):
        raise RuntimeError("lime_cnn: lime's draws differ between samples")
    masks = draws[0].astype(np.float32)
    case.save("masks.npy", masks)
    own_out = {}
    with mx.default_dtype(torch.float64):
        mine = lime_own(segs, [s, s], masks, tl, "probability", 1.0, own_out)(m64, torch.from_numpy(
            xn).double())
    set_a = ["segments=seg.npy", "masks=masks.npy"] + common
    case.add("lime", "lime_ridge1_probability.npy",
             set_a + ["ridge_alpha=1", pr] + fit_keys(out["lime_score_r2"], out["lime_intercept"]),
             *r,
             "lime_image.LimeImageExplainer(kernel_width=0.25, random_state=%d)"
             ".explain_instance(x[n].transpose(1, 2, 0), softmax(model(NCHW)), labels=(t_n,), "
             "hide_color=None, top_labels=None, num_features=100000, num_samples=%d, "
             "segmentation_fn=seg.npy) per sample; coefficients painted on the segments"
             % (seed, LIME_SAMPLES),
             cross={"own weighted ridge (numpy float64)": rel_err(mine, r[0])})
    case.meta_lines[-1].update(out)
    case.meta_lines[-1].update(own_out)
    case.meta_lines[-1]["cross_check_intercept_abs"] = float(np.max(np.abs(
        np.array(out["lime_intercept"]) - own_out["wls_intercept"])))
    case.meta_lines[-1]["cross_check_score_abs"] = float(np.max(np.abs(
        np.array(out["lime_score_r2"]) - own_out["wls_score_r2"])))

    # (b), (c) own minimum-norm WLS, alpha 0
    masks_few = masks[:LIME_FEW].copy()
    case.save("masks_few.npy", masks_few)
    case.comment("ridge_alpha=0: weighted least squares with intercept, minimum-norm (own numpy "
                 "lstsq); masks_few.npy = the first %d rows of masks.npy (fewer samples than "
                 "the %d superpixels: rank deficient)" % (LIME_FEW, s))
    for fname, mk, mfile in (("lime_ridge0_probability.npy", masks, "masks.npy"),
                             ("lime_ridge0_few_probability.npy", masks_few, "masks_few.npy")):
        own_out = {}
        r = both(lime_own(segs, [s, s], mk, tl, "probability", 0.0, own_out), m32, m64, xn)
        out = {}
        with mx.default_dtype(torch.float64):
            lib = lime_lib(segs, [s, s], tl, "probability", masks=mk, regressor=LinearRegression(),
                           out=out)(m64, torch.from_numpy(xn).double())
        out.pop("draws")
        case.add("lime", fname, ["segments=seg.npy", "masks=" + mfile] + common +
                 ["ridge_alpha=0", pr] + fit_keys(own_out["wls_score_r2"],
                                                  own_out["wls_intercept"]), *r,
                 "own numpy float64: y = softmax(model(masked x))[t], d = 1 - sqrt(|z| / S), "
                 "w = sqrt(exp(-d^2 / 0.25^2)), beta = lstsq(sqrt(w) (Z - zbar_w), sqrt(w) "
                 "(y - ybar_w), rcond=None) (%d samples, %d superpixels)" % (len(mk), s),
                 cross={"lime explain_instance with model_regressor=sklearn LinearRegression(), "
                        "masks replayed": rel_err(lib, r[0])})
        case.meta_lines[-1].update(own_out)
        case.meta_lines[-1].update(out)

    # (d) one segmentation per sample, different S
    big = int(np.argmax(sizes_n))
    case.comment("seg_n.npy (N, H, W): felzenszwalb of each sample (%s superpixels); "
                 "masks_n.npy (%d, %d): lime's draw for sample %d (random_state=%d), the other "
                 "sample uses its first S_i columns (replayed into lime)"
                 % (sizes_n, LIME_SAMPLES, max(sizes_n), big, seed + 1))
    probe = {}
    lime_lib([seg_n[big]], [sizes_n[big]], [tl[big]], "probability", seed=seed + 1, out=probe)(
        m64, torch.from_numpy(xn[big:big + 1]).double())
    masks_n = probe["draws"][0].astype(np.float32)
    case.save("masks_n.npy", masks_n)
    set_d = ["segments=seg_n.npy", "masks=masks_n.npy"] + common + ["ridge_alpha=1"]
    for kind, obj in (("probability", pr), ("logit", lg)):
        out = {}
        r = both(lime_lib(list(seg_n), sizes_n, tl, kind, masks=masks_n, out=out), m32, m64, xn)
        out.pop("draws")
        own_out = {}
        with mx.default_dtype(torch.float64):
            mine = lime_own(list(seg_n), sizes_n, masks_n, tl, kind, 1.0, own_out)(
                m64, torch.from_numpy(xn).double())
        case.add("lime", "lime_seg_n_ridge1_%s.npy" % kind,
                 set_d + [obj] + fit_keys(out["lime_score_r2"], out["lime_intercept"]), *r,
                 "lime explain_instance per sample with seg_n[n] and masks_n[:, :S_n] replayed "
                 "(Ridge(alpha=1)); classifier_fn = %s" % (
                     "softmax(model(NCHW))" if kind == "probability" else "model(NCHW) (logits)"),
                 cross={"own weighted ridge (numpy float64)": rel_err(mine, r[0])})
        case.meta_lines[-1].update(out)
        case.meta_lines[-1].update(own_out)

    meta["superpixels"] = {"seg.npy": s, "seg_n.npy": sizes_n}
    meta["files"] = {
        "seg.npy": "int32 (H, W): segmentation(x[0], scale=5, min_size=12), shared by both "
                   "samples",
        "seg_n.npy": "int32 (N, H, W): segmentation(x[0], scale=10, min_size=8), "
                     "segmentation(x[1], scale=20, min_size=5)",
        "segmentation": "skimage felzenszwalb(scale, sigma=0.5, min_size) on the min-max "
                        "rescaled HWC image blurred with cv2.GaussianBlur(sigma=1.5); labels "
                        "renumbered 0..S-1 by first appearance",
        "masks.npy": "float32 (%d, %d): lime's draw, random_state=%d (row 0 all ones)"
                     % (LIME_SAMPLES, s, seed),
        "masks_few.npy": "the first %d rows of masks.npy" % LIME_FEW,
        "masks_n.npy": "float32 (%d, %d): lime's draw for sample %d, random_state=%d"
                       % (LIME_SAMPLES, max(sizes_n), big, seed + 1)}
    meta["lime_fields"] = ("per line, one value per sample: lime_intercept, lime_score_r2 "
                           "(sklearn score with sample_weight = kernel weights: 1 - sum w (y - "
                           "yhat)^2 / sum w (y - ybar_w)^2), lime_local_pred (the surrogate at "
                           "the all-ones row); wls_intercept, wls_score_r2 from the own fit; "
                           "design_rank and singular values of sqrt(w) (Z - zbar_w)")
    meta["seconds"] = round(time.time() - t0, 2)
    case.finish(meta, ["model: tests/reference/make_explain.py:CNNRelu (seed_of('lime_cnn'))",
                       "targets.npy: per sample a seeded class that is not the argmax; every "
                       "line names its objective"])


CASES = {"perturb_cnn": make_perturb_cnn, "lime_cnn": make_lime_cnn}


if __name__ == "__main__":
    mx.run_main(CASES, __doc__, "make_perturb")
