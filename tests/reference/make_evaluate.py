#!/usr/bin/env python3
"""make_evaluate.py [OUTDIR] [--cases quantus_cnn] — regenerates the committed fixtures of the
explanation evaluation metrics (default OUTDIR: tests/data/evaluate next to this script's folder),
read by tests/test_evaluate.c --parity (the library's idl_evaluate). Runs with the venv of setup_venv.sh
(build/venv/bin/python: Debian's torch 1.13 / numpy 1.24 plus captum 0.7.0 and quantus 0.6.0,
installed --no-deps; onnx is imported before torch). Quantus imports pandas at module level
(quantus/evaluation.py): regeneration needs the Debian package python3-pandas besides the ones
scripts/install_deps.sh --test installs (cv2, matplotlib, sklearn, scipy, scikit-image, tqdm).
Quantus and Captum are only RUN here, to produce reference numbers; none of their code is copied
into the library.

Case quantus_cnn (OUTDIR/quantus_cnn/):
  model.onnx    make_explain.py's CNNRelu with seed_of('quantus_cnn'), calibrated and exported as
                make_perturb.py does (opset 13, input "input", dynamic batch, logits (N, 10)).
  input.npy     float32 (N=3, 3, 32, 32) standard normal, redrawn (torch seed seed * 100 + k) as
                make_perturb.py's draw_case does until every ReLU input and MaxPool runner-up of
                the clean batch is >= 1e-5 * max from its kink, the 3 argmax classes differ, and
                the sensitivity noise below could be drawn.
  targets.npy   int64 (N,): sample 0 its argmax class, samples 1, 2 a seeded class that is not the
                argmax (make_explain.pick_targets).
  expl_pixel.npy    float32 (N, 32, 32) per-pixel explanation, standard normal;
  expl_pixel1.npy   float32 (N, 1, 32, 32) per-pixel explanation, standard normal;
  expl_element.npy  float32 (N, 3, 32, 32) per-element explanation, standard normal;
                    the three from numpy default_rng(seed * 10 + k) in this order, k = 0, 1, ...
                    until no two features of a sample tie and, for every (explanation, patch
                    size) used by morf / lerf / abpc, the sorted patch scores of each sample are
                    >= 1e-5 * max|score| apart (no near-ties: a float32 sum must order them as
                    float64 does);
  expl_saliency.npy float32 (N, 3, 32, 32) Captum 0.7.0 Saliency(model).attribute(x,
                    target=targets, abs=True) on the float64 model: |d logit_t / dx|.
  noise.npy     float32 (S=5, N, 3, 32, 32): draw s is U(-0.2, 0.2) from numpy
                default_rng((seed, s, j)), j = 0, 1, ... the first j for which the batch
                float32(x + noise[s]) keeps every ReLU input / MaxPool runner-up >= 1e-5 * max
                from its kink (the saliency at those inputs is then the same in float32 and
                float64).
  mask.npy      uint8 (N, 32, 32) object masks (1 = object): per sample the union of two seeded
                axis-aligned rectangles (numpy default_rng(seed + 1)), sample 0 also rows 6..12,
                columns 9..15 (inside the box); mask_f.npy the same as float32 0 / 1.
  expl_pg.npy   float32 (N, 32, 32) point-game explanation: a smoothed uniform field in
                [0, 0.85] (default_rng(seed + 2)) with a single peak 1.0 placed inside box and
                mask for sample 0, outside both for sample 1, at a random position for sample 2.
  expl_pg_tied.npy  the same smoothed field rounded to 1 decimal (0.0 .. 0.9 on a 0.1 grid: ties
                everywhere, values exactly 0.5 among them), plus 1.0 peaks: sample 0 at one
                position inside the object (box and mask) and two outside both, sample 1 at
                three positions outside both (tied maxima), sample 2 at one random position.
  expected      float64 .npy, (N,) for a scalar score, (N, P) for a curve.
  case.txt      '#' comments; other lines `METRIC EXPECTED.npy SCORE key=value ...`; the keys are
                the metric's settings verbatim plus explanation=FILE (the explanation evaluated)
                and, where PyTorch's or ONNX Runtime's float32 run of the same computation is
                more than 2e-5 away, tol=R (5x that, rounded up; the test's default is 1e-4).
                The error measure is the test's: per value |got - ref| / (1e-6 + |ref|), 0 where
                |got - ref| < 1e-7, the maximum over the array. Targets always from
                targets.npy.
  meta.json     versions, seeds, draw attempts, per line the exact reference call, the
                cross-checks and the float32 runs (PyTorch and ONNX Runtime).

Notation: x one sample (3, 32, 32), f(x) = the objective of its target class (objective=logit:
the logit, objective=probability: the softmax probability; Quantus softmax=False / True).
Explanations of shape (N, 32, 32) / (N, 1, 32, 32) are per pixel and broadcast over the channels
("expanded"), (N, 3, 32, 32) per element. Fill values: fill=black the minimum of the original
sample, white its maximum, mean its mean, a number that number; the fill value is rounded to
float32 (the model input's type) before it is written into the input, in the references too.
All references are float64: model.double(), inputs as float64 copies of the float32 files, torch
default dtype float64 while Quantus runs (its PyTorchModel.predict builds torch.Tensor(x)).

Lines (the exact values are in case.txt):
  deletion  Quantus PixelFlipping(features_in_step=F_q, perturb_baseline=B, abs=False,
            normalise=False)(model, x, targets, a_batch=explanation, softmax=...). Features are
            pixels (all channels together) for a per-pixel explanation, elements otherwise;
            order: descending explanation value (no ties: see above); step j = 1..K,
            K = ceil(F / m), replaces the first min(j m, F) features with the fill. Quantus
            returns y_1..y_K; curve = [f(x), y_1..y_K] (f(x) from the float64 model), score
            `deletion` = trapezoid area of the curve with spacing 1/K, `deletion_mean` = mean of
            y_0..y_K. F_q = m * 3 for a per-pixel explanation (Quantus ranks elements; the three
            copies of a pixel are adjacent in its argsort, so 3m elements = m pixels), m for a
            per-element one. Quantus asserts H * W % features_in_step == 0 (it counts pixels
            there but elements in the loop); that assert is disabled while the script calls it
            (its loop handles a partial last step: a_indices[:, j*m:(j+1)*m]). Lines:
              expl_pixel,   m=16  (K=64), fill=black, probability;
              expl_element, m=200 (K=16, the last step 72 elements), fill=0.3, logit;
              expl_pixel1,  m=64  (K=16), fill=black, logit;
              expl_pixel,   m=32  (K=32), fill=white, logit;
              expl_pixel1,  m=64, fill=mean, logit: Quantus's "mean" is the mean of the
                already perturbed array at every step, so the script passes the original
                sample's mean (float32) as an explicit (N, 192) baseline array instead.
            Every line is cross-checked against the script's own loop (deletion_own).
  insertion the reverse (no Quantus metric): canvas = x with every feature replaced by the fill,
            y_0 = f(canvas), step j puts the first min(j m, F) features of the same descending
            order back (the values of x), y_K = f(x); `insertion` = trapezoid area (spacing 1/K),
            `insertion_mean` = mean of y_0..y_K. Own numpy / torch float64 loop (deletion_own with
            insertion=True; cross-checked: y_K = f(x), y_0 = f(all filled)).
            Lines: expl_pixel m=16 fill=black probability; expl_element m=200 fill=0 logit;
            expl_pixel1 m=64 fill=mean logit.
  morf / lerf  Quantus RegionPerturbation(patch_size=p, order="morf"/"lerf",
            regions_evaluation=L, perturb_baseline=B, abs=False, normalise=False). Grid: H and W
            padded to a multiple of p with floor(pad/2) before and ceil(pad/2) after
            (utils.get_padding_size), non-overlapping p x p patches of the padded grid in
            row-major order covering all channels; patch score = sum of the expanded explanation
            over the patch (padding contributes 0); morf = descending score, lerf = ascending (no
            near-ties: see above). Step j = 1..L_eff, L_eff = min(L, number of patches), fills
            the in-image part of the first j patches (cumulative). Quantus returns
            [y_0 - y_j, j = 1..L_eff]; curve = [y_0, y_0 - those] (N, L_eff + 1); `morf` / `lerf`
            = AOPC = (1 / (L_eff + 1)) sum_{j=0..L_eff} (y_0 - y_j); `morf_mean` / `lerf_mean` =
            mean of y_0..y_L_eff. Quantus pads the perturbed input with mode "edge" and computes
            "black" on that padded, already perturbed array; edge padding repeats existing values
            and the filled ones are the minimum itself, so its per-step "black" is the original
            sample's minimum. Lines:
              morf p=4 L=20 fill=black probability expl_pixel (64 patches);
              lerf p=4 L=20 fill=black probability expl_pixel (for abpc);
              lerf p=5 L=30 fill=0 logit expl_element (32 = 6 * 5 + 2: pad (1, 2), 7 x 7 = 49
                patches, the first / last row and column partly padding);
              morf p=8 L=100 fill=black logit expl_pixel1 (16 patches: L_eff = 16, curve 17).
            Cross-checked against the own loop (region_own).
  abpc      `abpc` = trapezoid area (spacing 1/L_eff) of the lerf curve y minus that of the morf
            curve y, both the Quantus curves above (p=4 L=20 fill=black probability expl_pixel).
  infidelity  Perturbations: for each size k of patch_sizes (in order), every top-left
            (r, c) = (i s, j s) with r + k <= 32 and c + k <= 32 (row-major), x_p = x with that
            k x k square (all channels) set to the fill, each independently. I_p = x - x_p
            (indicator=0) or 1 where x_p != x else 0 (indicator=1); Delta_p = f(x) - f(x_p),
            e_p = sum(E_expanded * I_p). scaling=0: infidelity = mean_p (Delta_p - e_p)^2 over all
            p (every size pooled). scaling=1: beta = mean(Delta e) / mean(e^2) (0 when
            mean(e^2) = 0), infidelity = mean_p (Delta_p - beta e_p)^2, `infidelity_beta` = beta.
            Lines:
              patch_sizes=4 stride=4 scaling=0 fill=black probability expl_element,
              patch_sizes=8 stride=8 scaling=0 fill=0 logit expl_pixel: Quantus Infidelity(
                perturb_patch_sizes=[k], n_perturb_samples=1, loss_func="mse", abs=False,
                normalise=False, perturb_func=non-cumulative replacement). Quantus's own
                perturbation is cumulative (each block is written into the previous x_perturbed)
                and, when k does not divide 32, reshapes the unpadded array to the padded shape;
                the replacement function ignores the array it is given and returns the ORIGINAL
                batch with the block's indices set to the fill, which makes Quantus compute the
                definition above for stride = k (k divides 32). With several sizes Quantus
                averages the per-size MSEs (not pooled). Cross-checked against infidelity_own.
              patch_sizes=8,16 stride=4 scaling=1 fill=black logit expl_saliency (49 + 25
                perturbations; infidelity and infidelity_beta): own loop (infidelity_own;
                beta cross-checked as numpy lstsq of Delta on e through the origin, the
                infidelity as its mean squared residual).
              patch_sizes=6 stride=5 indicator=1 scaling=1 fill=0.5 probability expl_pixel1
                (r, c in 0, 5, ..., 25: 36 perturbations; infidelity and infidelity_beta): own.
  sensitivity  `max_sensitivity` / `avg_sensitivity`: Quantus MaxSensitivity / AvgSensitivity(
            nr_samples=5, perturb_func=replay of noise.npy, normalise=False, abs=False,
            similarity_func=difference, norms Frobenius (defaults))(model, x, targets,
            a_batch=expl_saliency, explain_func=Captum Saliency(abs=True) on the logit,
            softmax=False). The replay returns float32(x + noise[s]) (as float64), s = the call
            count: Quantus calls perturb_func once per draw with the flattened clean batch.
            explain_batch applies nothing else here (expand_attribution_channel is a no-op on
            (N, 3, 32, 32); normalise / abs off). s_j = ||sal(x + d_j) - E||_2 / ||E||_2 per
            sample with E = expl_saliency.npy (the float32 file); max resp. mean over j
            (np.nanmax / np.nanmean; no NaN here). Cross-checked against plain torch.
  point_game  no model. box=x1,y1,x2,y2: object = rows y1..y2-1, columns x1..x2-1 (numpy
            [y1:y2, x1:x2]) for every sample; mask=FILE: nonzero = object. `hit` = Quantus
            PointingGame(normalise=False, abs=False): 1 if any position equal to the sample's
            maximum lies in the object, else 0 (Quantus 0.6.0 writes NaN into a bool array for
            an empty object, i.e. True; never the case here). InterpretDL's PointGame (own numpy
            / sklearn): predicted = exp > threshold * max(exp) (threshold default 0.25),
            `precision` = TP / predicted positives, `recall` = TP / object size,
            `f1` = 2 P R / (P + R + 1e-6), `roc_auc` = sklearn.metrics.roc_auc_score(object,
            exp) and `ap` = sklearn.metrics.average_precision_score(object, exp), both over the
            flattened (32, 32) sample (ties grouped as sklearn does: one ROC / PR point per
            distinct value). Lines (hit from Quantus, cross-checked by the own rule; the others
            own): box=8,4,20,18 expl_pg (the six scores, default threshold); mask=mask.npy
            threshold=0.4 expl_pg (six); mask=mask_f.npy expl_pg (hit); mask=mask.npy
            threshold=0.5 expl_pg_tied (six; values exactly at 0.5 * max = 0.5 are not
            predicted: strict >); box=8,4,20,18 expl_pg_tied (six). Sample 0 hits and sample 1
            misses everywhere (sample 0 of expl_pg_tied through a tied maximum). The script
            fails if a continuous explanation has a value within 1e-6 * max of threshold * max
            (float32 and float64 thresholds could then disagree).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402,F401  (before torch: see setup_venv.sh)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_explain as mx  # noqa: E402
import make_perturb as mp  # noqa: E402
import make_transformers as mtr  # noqa: E402

import torch  # noqa: E402

import captum  # noqa: E402
import captum.attr as ca  # noqa: E402
import quantus  # noqa: E402
import quantus.helpers.asserts as q_asserts  # noqa: E402
import sklearn  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from make_explain import np_, rel_err, seed_of  # noqa: E402

NAME = "quantus_cnn"
BATCH = 3
H = W = 32
C = 3
N_SENS = 5            # sensitivity draws
NOISE_BOUND = 0.2     # U(-0.2, 0.2)
MAX_NOISE_TRIES = 40  # per draw s
PATCH_GAP = 1e-5      # sorted patch scores at least this * max|score| apart
MAX_EXPL_TRIES = 200
TOL_DEFAULT = 1e-4    # the harness's default relative tolerance
FP32_SAFE = 2e-5      # above this float32 error a line gets tol= (5x the error, rounded up)
FP32_FAIL = 2e-3      # above this the script fails (something is wrong, not rounding)
BOX = (8, 4, 20, 18)  # x1, y1, x2, y2


# ---------------------------------------------------------------- bookkeeping

class Case(mx.Case):
    """One fixture folder: expected files (float64), case.txt lines, meta.json (the folder,
    save and comment as make_explain.py's). source: what case.txt's first line names in
    parentheses after the case (the generating script); width: the case name's column in the
    printed summary. make_evaluate_interpretdl.py's case uses this class too."""

    def __init__(self, outdir, name,
                 source="tests/reference/make_evaluate.py; format in its docstring", width=11):
        super().__init__(outdir, name)
        self.source = source
        self.width = width

    def add(self, metric, expected, score, settings, ref, call, fp32=None, cross=None,
            note=None):
        """One check line. ref: the float64 reference (saved once as EXPECTED); fp32: {name:
        the same computation in float32} (rel_err recorded; tol= added above FP32_SAFE);
        cross: {name: rel_err of an independent computation}."""
        ref = np.asarray(ref, np.float64)
        if expected in self.saved:
            if not np.array_equal(self.saved[expected], ref):
                raise RuntimeError("%s computed twice with different values" % expected)
        else:
            self.save(expected, ref)
            self.saved[expected] = ref
        errs = {k: harness_err(v, ref) for k, v in (fp32 or {}).items()}
        worst = max(errs.values()) if errs else 0.0
        if worst > FP32_FAIL:
            raise RuntimeError("%s %s: float32 run %g from the reference (%s)" % (
                metric, expected, worst, errs))
        settings = list(settings)
        if worst > FP32_SAFE:
            tol = next(t for t in (2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2) if t >= 5 * worst)
            if tol > TOL_DEFAULT:
                settings.append("tol=%g" % tol)
        line = " ".join([metric, expected, score] + settings)
        if note:
            self.lines.append("# " + note)
        self.lines.append(line)
        ml = {"line": line, "reference": call, "shape": list(ref.shape),
              "max_abs": float(np.max(np.abs(ref)))}
        if errs:
            ml["fp32_vs_fp64"] = errs
        if cross:
            ml["cross_check_rel_err"] = cross
        self.meta_lines.append(ml)

    def finish(self, meta, header):
        with open(os.path.join(self.d, "case.txt"), "w") as f:
            f.write("# evaluation parity case %s (%s)\n" % (self.name, self.source))
            for h in header:
                f.write("# %s\n" % h)
            for ln in self.lines:
                f.write(ln + "\n")
        meta["lines"] = self.meta_lines
        crosses = [v for m in self.meta_lines for v in m.get("cross_check_rel_err", {}).values()]
        fp32 = [v for m in self.meta_lines for v in m.get("fp32_vs_fp64", {}).values()]
        meta["cross_check_max"] = max(crosses)
        meta["fp32_vs_fp64_max"] = max(fp32)
        meta["fp32_vs_fp64_measure"] = ("the parity test's: max over the array of |got - ref| / "
                                        "(1e-6 + |ref|), 0 where |got - ref| < 1e-7")
        with open(os.path.join(self.d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        size = sum(os.path.getsize(os.path.join(self.d, f)) for f in os.listdir(self.d))
        print("%-*s %2d lines  fp32 vs fp64 (worst) %.1e  cross-checks (worst) %.1e  %7d bytes"
              % (self.width, self.name, sum(1 for ln in self.lines if not ln.startswith("#")),
                 max(fp32), max(crosses), size), flush=True)


def harness_err(got, ref):
    """The parity test's error measure: per value |got - ref| / (1e-6 + |ref|), 0 where
    |got - ref| < 1e-7; the maximum over the array."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    d = np.abs(got - ref)
    return float(np.max(np.where(d < 1e-7, 0.0, d / (1e-6 + np.abs(ref)))))


def versions():
    v = {"torch": torch.__version__, "numpy": np.__version__, "captum": captum.__version__,
         "quantus": importlib.metadata.version("quantus"), "onnx": onnx.__version__,
         "onnxruntime": __import__("onnxruntime").__version__,
         "scikit-learn": sklearn.__version__, "scikit-image": importlib.metadata.version(
             "scikit-image")}
    assert v["quantus"] == "0.6.0", v["quantus"]
    return v


@contextlib.contextmanager
def quantus_float64():
    """torch default dtype float64 (Quantus's PyTorchModel.predict builds torch.Tensor(x))."""
    with mx.default_dtype(torch.float64):
        yield


@contextlib.contextmanager
def no_features_in_step_assert():
    """Quantus PixelFlipping asserts H * W % features_in_step == 0 (pixels), while its loop steps
    over elements and handles a partial last step; disabled for the call."""
    orig = q_asserts.assert_features_in_step
    q_asserts.assert_features_in_step = lambda **k: None
    try:
        yield
    finally:
        q_asserts.assert_features_in_step = orig


# ---------------------------------------------------------------- common helpers

def f32(v):
    """A fill value as the model input holds it (float32), as a Python float."""
    return float(np.float32(v))


def fill_values(x, fill):
    """(N,) float64: the fill of each sample of the ORIGINAL x (float32 values)."""
    x64 = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    if fill == "black":
        v = x64.min(axis=1)
    elif fill == "white":
        v = x64.max(axis=1)
    elif fill == "mean":
        v = x64.mean(axis=1)
    else:
        v = np.full(x.shape[0], float(fill))
    return v.astype(np.float32).astype(np.float64)


def expand(expl, shape):
    """The explanation broadcast to the input's shape (N, C, H, W), float64."""
    e = np.asarray(expl, np.float64)
    if e.ndim == 3:
        e = e[:, None]
    return np.broadcast_to(e, shape)


def features(expl):
    """Per sample the descending order of the features (stable: ties lower index first) and
    whether features are pixels. Raises on an exact tie."""
    e = np.asarray(expl, np.float64)
    per_pixel = e.ndim == 3 or e.shape[1] == 1
    vals = e.reshape(e.shape[0], -1)
    for row in vals:
        if np.unique(row).size != row.size:
            raise RuntimeError("tied explanation values")
    return np.argsort(-vals, axis=1, kind="stable"), per_pixel


def feature_mask(order, per_pixel, count, shape):
    """(N, C, H, W) bool: the elements of the first `count` features of each sample's order."""
    n, c, h, w = shape
    m = np.zeros((n, h * w if per_pixel else c * h * w), bool)
    m[np.arange(n)[:, None], order[:, :count]] = True
    if per_pixel:
        return np.broadcast_to(m.reshape(n, 1, h, w), shape)
    return m.reshape(shape)


def trapezoid(curve):
    """Trapezoid area of each row over [0, 1]: spacing 1 / (P - 1)."""
    k = curve.shape[1] - 1
    return np.sum((curve[:, :-1] + curve[:, 1:]) / 2.0, axis=1) / k


def f_objectives(c, kind, sess):
    """{'fp64': float64 torch, 'fp32': float32 torch, 'ort': ONNX Runtime float32}: numpy
    (N, C, H, W) -> (N,) float64 objective of each sample's target."""
    tn = c["tn"]
    return {"fp64": mp.torch_objective(c["m64"], tn, kind),
            "fp32": mp.torch_objective(c["m32"], tn, kind),
            "ort": mp.ort_objective(sess, tn, kind)}


def as_dtype(a, key):
    return np.asarray(a, np.float64 if key == "fp64" else np.float32)


def run_all(fs, fn):
    """fn(f, key) for the three objectives; returns {key: result}."""
    return {k: fn(f, k) for k, f in fs.items()}


def fp32_of(results, derive=lambda r: r):
    return {"pytorch_fp32": derive(results["fp32"]), "onnxruntime_fp32": derive(results["ort"])}


# ---------------------------------------------------------------- own loops

def deletion_own(f, x, expl, m, fill, insertion=False):
    """Deletion (insertion=False) / insertion curves (N, K + 1) by the definition."""
    order, per_pixel = features(expl)
    nf = order.shape[1]
    k = -(-nf // m)
    fv = fill_values(x, fill).astype(x.dtype)[:, None, None, None]
    ys = []
    for j in range(0, k + 1):
        mask = feature_mask(order, per_pixel, min(j * m, nf), x.shape)
        ys.append(f(np.where(mask, x, fv) if insertion else np.where(mask, fv, x)))
    return np.stack(ys, 1)


def padding(n, p):
    total = (-n) % p
    return total // 2, total - total // 2


def patch_scores(expl, shape, p):
    """(N, P) patch scores on Quantus's padded grid, and (pad_h, pad_w, grid_w)."""
    n, c, h, w = shape
    (t, b), (le, ri) = padding(h, p), padding(w, p)
    e = np.pad(expand(expl, shape), ((0, 0), (0, 0), (t, b), (le, ri)))
    gh, gw = e.shape[2] // p, e.shape[3] // p
    s = e.reshape(n, c, gh, p, gw, p).sum(axis=(1, 3, 5)).reshape(n, gh * gw)
    return s, (t, le, gw)


def region_own(f, x, expl, p, regions, order, fill):
    """MoRF / LeRF curve y_0..y_L_eff (N, L_eff + 1)."""
    n = x.shape[0]
    s, (t, le, gw) = patch_scores(expl, x.shape, p)
    idx = np.argsort(-s if order == "morf" else s, axis=1, kind="stable")
    leff = min(regions, s.shape[1])
    fv = fill_values(x, fill).astype(x.dtype)[:, None, None, None]
    hp, wp = x.shape[2] + sum(padding(x.shape[2], p)), x.shape[3] + sum(padding(x.shape[3], p))
    mask = np.zeros((n, 1, hp, wp), bool)
    ys = [f(x)]
    for j in range(leff):
        for i in range(n):
            r, q = divmod(int(idx[i, j]), gw)
            mask[i, :, r * p:(r + 1) * p, q * p:(q + 1) * p] = True
        inner = mask[:, :, t:t + x.shape[2], le:le + x.shape[3]]
        ys.append(f(np.where(inner, fv, x)))
    return np.stack(ys, 1)


def aopc(curve):
    return np.mean(curve[:, :1] - curve, axis=1)


def infidelity_own(f, x, expl, sizes, stride, fill, indicator, scaling):
    """(infidelity (N,), beta (N,), number of perturbations, Delta (N, P), e (N, P)) by the
    definition (e before scaling)."""
    e_full = expand(expl, x.shape).astype(x.dtype)
    fv = fill_values(x, fill).astype(x.dtype)[:, None, None, None]
    f0 = f(x)
    deltas, es = [], []
    for k in sizes:
        for r in range(0, H - k + 1, stride):
            for q in range(0, W - k + 1, stride):
                xp = x.copy()
                xp[:, :, r:r + k, q:q + k] = fv
                ind = (xp != x).astype(x.dtype) if indicator else x - xp
                deltas.append(f0 - f(xp))
                es.append(np.sum(np.asarray(e_full * ind, np.float64), axis=(1, 2, 3)))
    d, e0 = np.stack(deltas, 1), np.stack(es, 1)
    beta = np.zeros(x.shape[0])
    e = e0
    if scaling:
        ee = np.mean(e0 * e0, axis=1)
        beta = np.where(ee > 0, np.mean(d * e0, axis=1) / np.where(ee > 0, ee, 1), 0.0)
        e = e0 * beta[:, None]
    return np.mean((d - e) ** 2, axis=1), beta, d.shape[1], d, e0


def saliency(m, xx, t):
    """|d logit_t / dx| (torch, the dtype of xx)."""
    return mx.grad_at(m, xx, t, "logit").abs()


def sensitivity_own(m, x, noise, e_ref, t, dt):
    """(N, S) s_j = ||sal(float32(x + noise_j)) - E|| / ||E||."""
    e = torch.from_numpy(np.asarray(e_ref, dt)).reshape(x.shape[0], -1)
    out = []
    for s in range(noise.shape[0]):
        xp = torch.from_numpy((x + noise[s]).astype(np.float32).astype(dt))
        d = saliency(m, xp, t).reshape(x.shape[0], -1) - e
        out.append(np_(torch.linalg.norm(d, dim=1) / torch.linalg.norm(e, dim=1)))
    return np.stack(out, 1).astype(np.float64)


def point_game_own(exp, obj, threshold):
    """InterpretDL PointGame per sample: dict of (N,) arrays; plus the hit rule."""
    out = {k: [] for k in ("hit", "precision", "recall", "f1", "roc_auc", "ap")}
    for e, g in zip(np.asarray(exp, np.float64), np.asarray(obj) != 0):
        out["hit"].append(float(np.any(g[e == e.max()])))
        cut = threshold * e.max()
        gap = np.min(np.abs(e - cut)) / e.max()
        if 0 < gap < 1e-6:  # float32 vs float64 threshold could disagree (exact 0: intended)
            raise RuntimeError("explanation value within %g of threshold * max" % gap)
        pred = e > cut
        tp = float(np.sum(pred & g))
        p, r = tp / float(pred.sum()), tp / float(g.sum())
        out["precision"].append(p)
        out["recall"].append(r)
        out["f1"].append(2 * p * r / (p + r + 1e-6))
        out["roc_auc"].append(roc_auc_score(g.flatten().astype(np.int64), e.flatten()))
        out["ap"].append(average_precision_score(g.flatten().astype(np.int64), e.flatten()))
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


# ---------------------------------------------------------------- Quantus calls

def q_call(metric, c, x64, a, softmax, **kw):
    with quantus_float64():
        r = metric(model=c["m64"], x_batch=x64, y_batch=c["tn"], a_batch=np.asarray(a, np.float64),
                   softmax=softmax, channel_first=True, **kw)
    return np.asarray(r, np.float64)


def q_baseline(fill):
    """perturb_baseline for Quantus: "black" / "white" as strings (computed from the array it
    perturbs, which keeps the original extreme, see the docstring), a number rounded to float32."""
    return fill if fill in ("black", "white") else f32(fill)


class NonCumulative:
    """Quantus perturb_func for Infidelity: ignores the (already perturbed) array and returns the
    ORIGINAL flattened batch with `indices` set to each sample's fill."""

    def __init__(self, x64, fill):
        self.x = x64.reshape(x64.shape[0], -1)
        self.fv = fill_values(x64.astype(np.float32), fill)
        self.calls = 0

    def __call__(self, arr, indices, **kw):
        self.calls += 1
        out = self.x.copy()
        out[np.arange(out.shape[0])[:, None], indices] = self.fv[:, None]
        return out


class ReplayNoise:
    """Quantus perturb_func for Max/AvgSensitivity: call s returns float32(arr + noise[s])."""

    def __init__(self, noise):
        self.noise = noise
        self.calls = 0

    def __call__(self, arr, indices, **kw):
        z = self.noise[self.calls].reshape(arr.shape[0], -1)
        self.calls += 1
        return (arr.astype(np.float32) + z).astype(np.float32).astype(np.float64)


def captum_saliency(model, inputs, targets, **kw):
    """Quantus explain_func: Captum Saliency(abs=True) on the logit, same shape as the input."""
    xx = torch.tensor(inputs)
    return np_(ca.Saliency(model).attribute(xx, target=torch.as_tensor(targets), abs=True))


# ---------------------------------------------------------------- draws

def draw(seed):
    """The model and input (make_perturb.draw_case with batch 3) and the sensitivity noise."""
    state = {}

    def accept(m64, x64, t, logits64):
        x32 = x64.float().numpy()
        noise, tries = [], []
        for s in range(N_SENS):
            for j in range(MAX_NOISE_TRIES):
                z = np.random.default_rng((seed, s, j)).uniform(
                    -NOISE_BOUND, NOISE_BOUND, x32.shape).astype(np.float32)
                xp = torch.from_numpy((x32 + z).astype(np.float32)).double()
                if min(mx.kink_margins(m64, xp).values()) >= mx.KINK_MARGIN:
                    noise.append(z)
                    tries.append(j)
                    break
            else:
                return False, {"noise_tries": tries + [None]}
        state["noise"], state["noise_tries"] = np.stack(noise), tries
        return True, {"noise_tries": tries}

    old = mp.BATCH
    mp.BATCH = BATCH
    try:
        c = mp.draw_case(NAME, accept)
    finally:
        mp.BATCH = old
    # sample 0 explains its argmax class, the others a seeded non-argmax class
    c["t"] = c["t"].clone()
    c["t"][0] = c["argmax"][0]
    c["tn"] = c["t"].numpy().astype(np.int64)
    c["noise"], c["noise_tries"] = state["noise"], state["noise_tries"]
    return c


def draw_explanations(seed, uses):
    """expl_pixel (N, H, W), expl_pixel1 (N, 1, H, W), expl_element (N, C, H, W): standard
    normal float32 from default_rng(seed * 10 + k), the first k with no ties and no near-tie
    of patch scores for each (name, p) in uses."""
    for k in range(MAX_EXPL_TRIES):
        rng = np.random.default_rng(seed * 10 + k)
        ex = {"expl_pixel": rng.standard_normal((BATCH, H, W)).astype(np.float32),
              "expl_pixel1": rng.standard_normal((BATCH, 1, H, W)).astype(np.float32),
              "expl_element": rng.standard_normal((BATCH, C, H, W)).astype(np.float32)}
        ok = all(np.unique(row).size == row.size for e in ex.values()
                 for row in e.reshape(BATCH, -1))
        gaps = {}
        for name, p in uses:
            s, _ = patch_scores(ex[name], (BATCH, C, H, W), p)
            g = np.min(np.diff(np.sort(s, axis=1), axis=1) / np.max(np.abs(s), axis=1,
                                                                      keepdims=True))
            gaps["%s p=%d" % (name, p)] = float(g)
            ok = ok and g >= PATCH_GAP
        if ok:
            return ex, {"seed": seed * 10 + k, "tries": k + 1, "min_patch_gap": gaps}
    raise RuntimeError("no explanation draw without near-ties")


def rectangle_masks(rng, n, h, w, sides):
    """(n, h, w) uint8, per sample the union of two rectangles: height and width
    rng.integers(*sides, 2), then the top row and left column uniform inside the frame."""
    mask = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        for _ in range(2):
            rh, rw = rng.integers(sides[0], sides[1], 2)
            r, q = rng.integers(0, h - rh), rng.integers(0, w - rw)
            mask[i, r:r + rh, q:q + rw] = 1
    return mask


def draw_point_game(seed, x_shape):
    """mask (N, H, W) uint8, expl_pg, expl_pg_tied (float32)."""
    n = x_shape[0]
    rng = np.random.default_rng(seed + 1)
    x1, y1, x2, y2 = BOX
    box = np.zeros((H, W), bool)
    box[y1:y2, x1:x2] = True
    mask = rectangle_masks(rng, n, H, W, (5, 14))
    # the object for sample 0 must meet the box; keep one rectangle overlapping it
    mask[0, y1 + 2:y1 + 9, x1 + 1:x1 + 8] = 1
    rng = np.random.default_rng(seed + 2)
    u = rng.uniform(0, 1, (n, H + 4, W + 4))
    k = np.ones(5) / 5
    u = np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 2, u)
    u = np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 1, u)
    u = (u - u.min(axis=(1, 2), keepdims=True)) / np.ptp(u, axis=(1, 2), keepdims=True) * 0.85
    both_in = box[None] & (mask != 0)
    outside = ~box[None] & (mask == 0)
    pos_in = [tuple(a) for a in np.argwhere(both_in[0])]
    pos_out = [[tuple(a) for a in np.argwhere(outside[i])] for i in range(n)]
    exp = u.copy()
    exp[0][pos_in[rng.integers(len(pos_in))]] = 1.0
    exp[1][pos_out[1][rng.integers(len(pos_out[1]))]] = 1.0
    exp[2][tuple(rng.integers(0, H, 2))] = 1.0
    tied = np.round(u, 1)
    tied[0][pos_in[rng.integers(len(pos_in))]] = 1.0
    for i, cnt in ((0, 2), (1, 3)):
        for j in rng.choice(len(pos_out[i]), cnt, replace=False):
            tied[i][pos_out[i][j]] = 1.0
    tied[2][tuple(rng.integers(0, H, 2))] = 1.0
    return mask, exp.astype(np.float32), tied.astype(np.float32)


# ---------------------------------------------------------------- lines

def settings_of(**kw):
    return ["%s=%s" % (k, v) for k, v in kw.items()]


def deletion_lines(case, c, ex, fs, x64):
    xn = c["xn"]
    case.comment("deletion: Quantus 0.6.0 PixelFlipping (features_in_step = m * 3 for a "
                 "per-pixel explanation, its H*W % features_in_step assert disabled); curve = "
                 "[f(x), Quantus y_1..y_K], deletion = trapezoid (spacing 1/K), deletion_mean = "
                 "mean(y_0..y_K); cross-checked against the script's own loop")
    plan = [("expl_pixel", 16, "black", "probability", "px16_black_prob"),
            ("expl_element", 200, "0.3", "logit", "el200_0.3_logit"),
            ("expl_pixel1", 64, "black", "logit", "px64_black_logit"),
            ("expl_pixel", 32, "white", "logit", "px32_white_logit"),
            ("expl_pixel1", 64, "mean", "logit", "px64_mean_logit")]
    info = {}
    for name, m, fill, kind, tag in plan:
        a = ex[name]
        per_pixel = a.ndim == 3 or a.shape[1] == 1
        fq = m * C if per_pixel else m
        if fill == "mean":
            # Quantus's "mean" would be the mean of the already perturbed array: explicit values
            base = np.repeat(fill_values(xn, "mean")[:, None], fq, axis=1)
            assert C * H * W % fq == 0  # every step replaces fq elements: a fixed shape
            qb, qb_text = base, "np.repeat(per-sample mean of x as float32, %d, axis=1)" % fq
        else:
            qb = q_baseline(fill)
            qb_text = repr(qb)
        metric = quantus.PixelFlipping(features_in_step=fq, perturb_baseline=qb, abs=False,
                                       normalise=False, disable_warnings=True)
        with no_features_in_step_assert():
            yq = q_call(metric, c, x64, a, kind == "probability")
        with quantus_float64():
            y0 = fs[kind]["fp64"](x64)
        curve = np.concatenate([y0[:, None], yq], axis=1)
        own = run_all(fs[kind], lambda f, key: deletion_own(f, as_dtype(xn, key), a, m, fill))
        cross = {"own loop (float64)": rel_err(own["fp64"], curve)}
        if cross["own loop (float64)"] > 1e-12:
            raise RuntimeError("deletion %s: Quantus vs own loop %g" % (tag, cross))
        call = ("quantus.PixelFlipping(features_in_step=%d, perturb_baseline=%s, abs=False, "
                "normalise=False)(model, x, targets, a_batch=%s, softmax=%s), f(x) prepended"
                % (fq, qb_text, name, kind == "probability"))
        st = settings_of(features_in_step=m, fill=fill, objective=kind,
                         explanation=name + ".npy")
        for score, fn, derive in (("curve", "del_%s_curve.npy" % tag, lambda r: r),
                                  ("deletion", "del_%s.npy" % tag, trapezoid),
                                  ("deletion_mean", "del_%s_mean.npy" % tag,
                                   lambda r: np.mean(r, axis=1))):
            case.add("deletion", fn, score, st, derive(curve), call, fp32_of(own, derive),
                     cross={k: rel_err(derive(own["fp64"]), derive(curve)) for k in cross})
        info[tag] = {"K": curve.shape[1] - 1, "features_in_step_quantus": fq}
    return info


def insertion_lines(case, c, ex, fs):
    xn = c["xn"]
    case.comment("insertion: own float64 loop (no Quantus metric): canvas = all features "
                 "filled, y_j = f(canvas with the first min(j m, F) features of the descending "
                 "order restored), y_K = f(x); insertion = trapezoid (1/K), insertion_mean = "
                 "mean(y_0..y_K)")
    plan = [("expl_pixel", 16, "black", "probability", "px16_black_prob"),
            ("expl_element", 200, "0", "logit", "el200_0_logit"),
            ("expl_pixel1", 64, "mean", "logit", "px64_mean_logit")]
    for name, m, fill, kind, tag in plan:
        a = ex[name]
        own = run_all(fs[kind], lambda f, key: deletion_own(f, as_dtype(xn, key), a, m, fill,
                                                            insertion=True))
        curve = own["fp64"]
        # independent: the last point is the clean input, the first the all-filled canvas
        with quantus_float64():
            clean = fs[kind]["fp64"](xn.astype(np.float64))
            canvas = fs[kind]["fp64"](np.broadcast_to(
                fill_values(xn, fill)[:, None, None, None], xn.shape).copy())
        cross = {"y_K vs f(x)": rel_err(curve[:, -1], clean),
                 "y_0 vs f(filled)": rel_err(curve[:, 0], canvas)}
        call = ("own loop: %s, %d features per step, fill %s, %s" % (name, m, fill, kind))
        st = settings_of(features_in_step=m, fill=fill, objective=kind,
                         explanation=name + ".npy")
        for score, fn, derive in (("curve", "ins_%s_curve.npy" % tag, lambda r: r),
                                  ("insertion", "ins_%s.npy" % tag, trapezoid),
                                  ("insertion_mean", "ins_%s_mean.npy" % tag,
                                   lambda r: np.mean(r, axis=1))):
            case.add("insertion", fn, score, st, derive(curve), call, fp32_of(own, derive),
                     cross=cross if score == "curve" else None)


def region_lines(case, c, ex, fs, x64):
    xn = c["xn"]
    case.comment("morf / lerf: Quantus 0.6.0 RegionPerturbation (normalise=False, abs=False); "
                 "curve = [y_0, y_0 - Quantus's differences], morf / lerf = AOPC = mean_{j=0.."
                 "L_eff}(y_0 - y_j), *_mean = mean(y_0..y_L_eff); patches on the centred padded "
                 "grid (pad floor / ceil), score = sum of the expanded explanation; abpc = "
                 "trapezoid(lerf curve) - trapezoid(morf curve), spacing 1/L_eff")
    plan = [("morf", 4, 20, "black", "probability", "expl_pixel", "p4_L20_black_prob"),
            ("lerf", 4, 20, "black", "probability", "expl_pixel", "p4_L20_black_prob"),
            ("lerf", 5, 30, "0", "logit", "expl_element", "p5_L30_0_logit"),
            ("morf", 8, 100, "black", "logit", "expl_pixel1", "p8_L100_black_logit")]
    curves, info = {}, {}
    for order, p, regions, fill, kind, name, tag in plan:
        a = ex[name]
        qb = q_baseline(fill)
        metric = quantus.RegionPerturbation(patch_size=p, order=order,
                                            regions_evaluation=regions, perturb_baseline=qb,
                                            abs=False, normalise=False, disable_warnings=True)
        diffs = q_call(metric, c, x64, a, kind == "probability")
        with quantus_float64():
            y0 = fs[kind]["fp64"](x64)
        curve = np.concatenate([y0[:, None], y0[:, None] - diffs], axis=1)
        own = run_all(fs[kind], lambda f, key: region_own(f, as_dtype(xn, key), a, p, regions,
                                                          order, fill))
        err = rel_err(own["fp64"], curve)
        if err > 1e-12:
            raise RuntimeError("%s %s: Quantus vs own loop %g" % (order, tag, err))
        curves[(order, tag)] = (curve, own)
        call = ("quantus.RegionPerturbation(patch_size=%d, order=%r, regions_evaluation=%d, "
                "perturb_baseline=%r, abs=False, normalise=False)(model, x, targets, a_batch=%s, "
                "softmax=%s); curve = [y_0, y_0 - result]" % (p, order, regions, qb, name,
                                                             kind == "probability"))
        st = settings_of(patch_size=p, regions=regions, fill=fill, objective=kind,
                         explanation=name + ".npy")
        for score, fn, derive in (("curve", "%s_%s_curve.npy" % (order, tag), lambda r: r),
                                  (order, "%s_%s.npy" % (order, tag), aopc),
                                  (order + "_mean", "%s_%s_mean.npy" % (order, tag),
                                   lambda r: np.mean(r, axis=1))):
            case.add(order, fn, score, st, derive(curve), call, fp32_of(own, derive),
                     cross={"own loop (float64)": rel_err(derive(own["fp64"]), derive(curve))})
        ngrid = [(32 + sum(padding(32, p))) // p] * 2
        info["%s_%s" % (order, tag)] = {"patches": ngrid[0] * ngrid[1],
                                        "L_eff": curve.shape[1] - 1,
                                        "padding": list(padding(32, p))}
    tag = "p4_L20_black_prob"
    (cm, om), (cl, ol) = curves[("morf", tag)], curves[("lerf", tag)]

    def abpc(ml):
        return trapezoid(ml[1]) - trapezoid(ml[0])
    case.add("abpc", "abpc_%s.npy" % tag, "abpc",
             settings_of(patch_size=4, regions=20, fill="black", objective="probability",
                         explanation="expl_pixel.npy"),
             abpc((cm, cl)), "trapezoid(lerf curve) - trapezoid(morf curve), spacing 1/20, from "
             "the two Quantus RegionPerturbation curves above",
             {"pytorch_fp32": abpc((om["fp32"], ol["fp32"])),
              "onnxruntime_fp32": abpc((om["ort"], ol["ort"]))},
             cross={"own loops (float64)": rel_err(abpc((om["fp64"], ol["fp64"])),
                                                   abpc((cm, cl)))})
    return info


def infidelity_lines(case, c, ex, fs, x64):
    xn = c["xn"]
    case.comment("infidelity: every k x k square at stride s set to the fill (independently); "
                 "I = x - x_p (indicator=0) or [x_p != x] (indicator=1); mean_p (Delta_p - "
                 "beta e_p)^2 pooled over sizes, beta = 1 (scaling=0) or mean(Delta e) / "
                 "mean(e^2) (scaling=1). scaling=0 lines: Quantus 0.6.0 Infidelity with a "
                 "non-cumulative perturb_func (n_perturb_samples=1, mse); scaling=1 lines: own "
                 "float64 loop")
    info = {}
    for k, fill, kind, name in ((4, "black", "probability", "expl_element"),
                                (8, "0", "logit", "expl_pixel")):
        a = ex[name]
        pf = NonCumulative(x64, fill)
        metric = quantus.Infidelity(perturb_patch_sizes=[k], n_perturb_samples=1,
                                    loss_func="mse", abs=False, normalise=False,
                                    perturb_func=pf, disable_warnings=True)
        ref = q_call(metric, c, x64, a, kind == "probability")
        own = run_all(fs[kind], lambda f, key: infidelity_own(
            f, as_dtype(xn, key), a, [k], k, fill, False, False))
        if pf.calls != (32 // k) ** 2:
            raise RuntimeError("Quantus Infidelity made %d perturbations" % pf.calls)
        err = rel_err(own["fp64"][0], ref)
        if err > 1e-10:
            raise RuntimeError("infidelity k=%d: Quantus vs own %g" % (k, err))
        call = ("quantus.Infidelity(perturb_patch_sizes=[%d], n_perturb_samples=1, "
                "loss_func='mse', abs=False, normalise=False, perturb_func=NonCumulative(x, %r))"
                "(model, x, targets, a_batch=%s, softmax=%s)" % (k, fill, name,
                                                                kind == "probability"))
        case.add("infidelity", "infid_k%d_%s_%s.npy" % (k, fill, kind.replace("ability", "")),
                 "infidelity",
                 settings_of(patch_sizes=k, stride=k, scaling=0, fill=fill, objective=kind,
                             explanation=name + ".npy"),
                 ref, call, fp32_of(own, lambda r: r[0]),
                 cross={"own loop (float64)": err})
        info["k=%d" % k] = {"perturbations": int(own["fp64"][2])}
    for sizes, stride, ind, fill, kind, name, tag in (
            ([8, 16], 4, 0, "black", "logit", "expl_saliency", "k8_16_s4_black_logit"),
            ([6], 5, 1, "0.5", "probability", "expl_pixel1", "k6_s5_ind_0.5_prob")):
        a = ex[name]
        own = run_all(fs[kind], lambda f, key: infidelity_own(
            f, as_dtype(xn, key), a, sizes, stride, fill, ind, True))
        # beta is the least-squares scale, so the infidelity is the mean squared residual of
        # Delta regressed on e through the origin (numpy lstsq on the same numbers)
        _, beta, npert, d, e0 = own["fp64"]
        ls = [np.linalg.lstsq(e0[i][:, None], d[i], rcond=None) for i in range(len(d))]
        ls_beta = np.array([r[0][0] for r in ls])
        ls_inf = np.array([np.mean((d[i] - ls_beta[i] * e0[i]) ** 2) for i in range(len(d))])
        cross = {"beta vs numpy lstsq": rel_err(beta, ls_beta),
                 "infidelity vs lstsq residual": rel_err(own["fp64"][0], ls_inf)}
        st = settings_of(patch_sizes=",".join(map(str, sizes)), stride=stride)
        if ind:
            st += ["indicator=1"]
        st += settings_of(scaling=1, fill=fill, objective=kind, explanation=name + ".npy")
        call = ("own loop: patch_sizes=%s stride=%d indicator=%d scaling=1 fill=%s, %s, %s"
                % (sizes, stride, ind, fill, kind, name))
        case.add("infidelity", "infid_%s.npy" % tag, "infidelity", st, own["fp64"][0], call,
                 fp32_of(own, lambda r: r[0]), cross=cross)
        case.add("infidelity", "infid_%s_beta.npy" % tag, "infidelity_beta", st,
                 own["fp64"][1], call, fp32_of(own, lambda r: r[1]), cross=cross)
        info[tag] = {"perturbations": int(own["fp64"][2])}
    return info


def sensitivity_lines(case, c, ex, x64):
    xn, tn, noise = c["xn"], c["tn"], c["noise"]
    e_ref = ex["expl_saliency"]
    case.comment("sensitivity: Quantus 0.6.0 MaxSensitivity / AvgSensitivity (nr_samples=5, "
                 "perturb_func = replay of float32(x + noise[s]), explain_func = Captum Saliency "
                 "abs=True on the logit, normalise=False, abs=False): s_j = ||sal(x + d_j) - "
                 "E|| / ||E||, E = expl_saliency.npy; max / mean over j")
    t = torch.from_numpy(tn)
    own64 = sensitivity_own(c["m64"], xn, noise, e_ref, t, np.float64)
    own32 = sensitivity_own(c["m32"], xn, noise, e_ref, t, np.float32)
    out = {}
    for cls, score, agg in ((quantus.MaxSensitivity, "max_sensitivity", np.max),
                            (quantus.AvgSensitivity, "avg_sensitivity", np.mean)):
        pf = ReplayNoise(noise)
        metric = cls(nr_samples=N_SENS, perturb_func=pf, normalise=False, abs=False,
                     disable_warnings=True)
        ref = q_call(metric, c, x64, e_ref, False, explain_func=captum_saliency)
        if pf.calls != N_SENS:
            raise RuntimeError("%s drew %d times" % (cls.__name__, pf.calls))
        err = rel_err(agg(own64, axis=1), ref)
        if err > 1e-10:
            raise RuntimeError("%s: Quantus vs own %g" % (score, err))
        call = ("quantus.%s(nr_samples=5, perturb_func=ReplayNoise(noise.npy), normalise=False, "
                "abs=False)(model, x, targets, a_batch=expl_saliency, explain_func=Captum "
                "Saliency(abs=True), softmax=False)" % cls.__name__)
        case.add("sensitivity", "sens_%s.npy" % score.split("_")[0], score,
                 settings_of(method="saliency", n_samples=N_SENS, noise="noise.npy",
                             objective="logit", explanation="expl_saliency.npy"),
                 ref, call, {"pytorch_fp32": agg(own32, axis=1)},
                 cross={"own torch loop (float64)": err})
        out[score] = ref.tolist()
    return {"s_j_fp64": own64.tolist(), **out}


def point_game_lines(case, c, pg):
    mask, exp, tied = pg["mask"], pg["expl_pg"], pg["expl_pg_tied"]
    x1, y1, x2, y2 = BOX
    box = np.zeros(mask.shape, np.uint8)
    box[:, y1:y2, x1:x2] = 1
    case.comment("point_game (no model): hit = Quantus 0.6.0 PointingGame(normalise=False, "
                 "abs=False): 1 if any position equal to the maximum lies in the object; "
                 "InterpretDL PointGame (own numpy / sklearn 1.2.1): predicted = exp > threshold "
                 "* max (default 0.25), precision = TP / predicted, recall = TP / object, f1 = "
                 "2PR / (P + R + 1e-6), roc_auc = roc_auc_score, ap = average_precision_score "
                 "over the flattened sample; box=x1,y1,x2,y2 is numpy [y1:y2, x1:x2]")
    plan = [("box", "expl_pg", None), ("mask", "expl_pg", 0.4), ("mask_f", "expl_pg", None),
            ("mask", "expl_pg_tied", 0.5), ("box", "expl_pg_tied", None)]
    hits = {}
    for objn, en, thr in plan:
        obj = box if objn == "box" else mask
        e = exp if en == "expl_pg" else tied
        with contextlib.redirect_stdout(None):
            q = quantus.PointingGame(normalise=False, abs=False, disable_warnings=True)(
                model=None, x_batch=c["xn"].astype(np.float64), y_batch=c["tn"],
                a_batch=e[:, None].astype(np.float64), s_batch=obj[:, None].astype(np.uint8),
                channel_first=True)
        q = np.asarray(q, np.float64)
        own = point_game_own(e, obj, 0.25 if thr is None else thr)
        if not np.array_equal(q, own["hit"]):
            raise RuntimeError("point game hit: Quantus %s vs own %s" % (q, own["hit"]))
        st = (["box=%d,%d,%d,%d" % BOX] if objn == "box" else ["mask=%s.npy" % objn])
        if thr is not None:
            st.append("threshold=%g" % thr)
        st.append("explanation=%s.npy" % en)
        tag = "%s_%s%s" % (objn, en[5:], "" if thr is None else "_t%g" % thr)
        scores = ["hit"] if objn == "mask_f" else ["hit", "precision", "recall", "f1",
                                                    "roc_auc", "ap"]
        for score in scores:
            if score == "hit":
                ref, call = q, ("quantus.PointingGame(normalise=False, abs=False)(model=None, "
                                "x_batch=x, y_batch=targets, a_batch=%s[:, None], s_batch=%s"
                                "[:, None])" % (en, objn))
                cross = {"own rule": rel_err(own["hit"], q)}
                fn = "pg_%s_%s_hit.npy" % (objn, en[5:])
            else:
                ref, cross = own[score], None
                call = ("InterpretDL PointGame in numpy / sklearn, threshold %g"
                        % (0.25 if thr is None else thr))
                fn = "pg_%s_%s.npy" % (tag, score)
            case.add("point_game", fn, score, st, ref, call, cross=cross)
        t = 0.25 if thr is None else thr
        hits["%s %s threshold %g" % (objn, en, t)] = {
            "hit": q.tolist(), "object_size": [int(v) for v in (obj != 0).sum(axis=(1, 2))],
            "positions_at_max": [int(np.sum(v == v.max())) for v in e],
            "positions_exactly_at_threshold_x_max": [int(np.sum(v == t * v.max())) for v in e]}
    return hits


# ---------------------------------------------------------------- the case

def make_quantus_cnn(outdir):
    t0 = time.time()
    case = Case(outdir, NAME)
    c = draw(seed_of(NAME))
    seed = c["seed"]
    meta = mp.base_meta(c, NAME)
    meta.update(versions())
    for k in ("captum", "grad-cam", "ttach", "lime", "opencv", "scipy"):
        meta.pop(k, None)
    meta["reference"] = "float64 (model.double()), expected values stored as float64"
    meta["versions_note"] = "quantus installed --no-deps; torch / numpy are Debian's"
    meta["targets_rule"] = "sample 0: argmax; samples 1, 2: make_explain.pick_targets"
    meta.update(mp.export_case(case, c))
    for k in ("layers", "layer_value_rel_diff_onnxruntime", "automatic_layer"):
        meta.pop(k, None)
    xn = c["xn"]
    x64 = xn.astype(np.float64)
    sess = mtr.ort_session(os.path.join(case.d, "model.onnx"))

    uses = [("expl_pixel", 4), ("expl_element", 5), ("expl_pixel1", 8)]
    ex, ex_info = draw_explanations(seed, uses)
    with mx.default_dtype(torch.float64):
        sal = np_(ca.Saliency(c["m64"]).attribute(torch.from_numpy(x64), target=c["t"],
                                                  abs=True))
    sal32 = np_(ca.Saliency(c["m32"]).attribute(torch.from_numpy(xn), target=c["t"], abs=True))
    ex["expl_saliency"] = sal.astype(np.float32)
    for k, v in ex.items():
        case.save(k + ".npy", v)
    case.save("noise.npy", c["noise"])
    mask, expg, tied = draw_point_game(seed, xn.shape)
    case.save("mask.npy", mask)
    case.save("mask_f.npy", mask.astype(np.float32))
    case.save("expl_pg.npy", expg)
    case.save("expl_pg_tied.npy", tied)
    pg = {"mask": mask, "expl_pg": expg, "expl_pg_tied": tied}

    fs = {kind: f_objectives(c, kind, sess) for kind in ("logit", "probability")}
    meta["deletion"] = deletion_lines(case, c, ex, fs, x64)
    insertion_lines(case, c, ex, fs)
    meta["region"] = region_lines(case, c, ex, fs, x64)
    meta["infidelity"] = infidelity_lines(case, c, ex, fs, x64)
    meta["sensitivity"] = sensitivity_lines(case, c, ex, x64)
    meta["point_game"] = point_game_lines(case, c, pg)

    meta["explanation_draw"] = ex_info
    meta["saliency_fp32_vs_fp64"] = rel_err(sal32, sal)
    meta["noise_tries"] = c["noise_tries"]
    meta["seeds"] = {
        "case": seed, "model": "torch.manual_seed(%d) + calibration generator seed %d" % (
            seed, seed),
        "input": "torch.Generator seed %d" % c["tries"][-1]["input_seed"],
        "explanations": "numpy default_rng(%d)" % ex_info["seed"],
        "noise": "numpy default_rng((%d, s, j)), j per draw s = %s" % (seed, c["noise_tries"]),
        "mask": "numpy default_rng(%d)" % (seed + 1),
        "point_game_explanations": "numpy default_rng(%d)" % (seed + 2)}
    meta["files"] = {
        "model.onnx": "make_explain.CNNRelu, opset 13, input 'input' (N, 3, 32, 32), logits",
        "input.npy": "float32 (3, 3, 32, 32)",
        "targets.npy": "int64 (3,): sample 0 argmax, others a seeded non-argmax class",
        "expl_pixel.npy": "float32 (3, 32, 32) standard normal (per pixel)",
        "expl_pixel1.npy": "float32 (3, 1, 32, 32) standard normal (per pixel)",
        "expl_element.npy": "float32 (3, 3, 32, 32) standard normal (per element)",
        "expl_saliency.npy": "float32 (3, 3, 32, 32) Captum Saliency abs=True, logit, float64 "
                             "model",
        "noise.npy": "float32 (5, 3, 3, 32, 32) U(-0.2, 0.2), kink-free draws",
        "mask.npy": "uint8 (3, 32, 32) object masks", "mask_f.npy": "float32 copy of mask.npy",
        "expl_pg.npy": "float32 (3, 32, 32) point-game explanation (sample 0 hits, 1 misses)",
        "expl_pg_tied.npy": "float32 (3, 32, 32) rounded to 1 decimal, tied maxima",
        "box": "x1,y1,x2,y2 = %d,%d,%d,%d" % BOX,
        "expected": "float64, (N,) scores or (N, P) curves; see lines[].reference"}
    case.finish(meta, [
        "generator: tests/reference/make_evaluate.py (quantus %s, torch %s, numpy %s, captum %s, "
        "scikit-learn %s); references in float64" % (
            meta["quantus"], torch.__version__, np.__version__, captum.__version__,
            sklearn.__version__),
        "model: tests/reference/make_explain.py:CNNRelu (seed_of('%s')); input.npy (3, 3, 32, "
        "32); targets.npy: sample 0 argmax, samples 1, 2 a seeded non-argmax class" % NAME,
        "format: METRIC EXPECTED.npy SCORE key=value...; explanation= and tol= are read by the "
        "test, every other key is a metric setting; SCORE curve = the (N, P) curve",
        "fill: black = min of the original sample, white = max, mean = mean, else the number "
        "(as float32)"])
    print("quantus_cnn: %.1fs" % (time.time() - t0), flush=True)


CASES = {NAME: make_quantus_cnn}


def main():
    mx.run_main(CASES, __doc__, "make_evaluate",
                default_outdir=os.path.join(HERE, "..", "data", "evaluate"))


if __name__ == "__main__":
    main()
