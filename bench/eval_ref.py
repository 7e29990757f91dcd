#!/usr/bin/env python3
"""eval_ref.py — the two sides of bench/run_eval_bench.sh: interpretdl's `evaluate` metrics timed
as whole processes, and the same metrics in Quantus 0.6.0 on the same network, input, explanation
and targets, then the table. Runs with the venv of tests/reference/setup_venv.sh (Debian's torch
1.13, quantus 0.6.0 and captum 0.7.0 installed --no-deps; Quantus needs Debian's python3-pandas).

  eval_ref.py prep    MODEL.onnx DIR [--batch N] [--threads T]
        writes DIR/{x,expl,targets,noise,logits}.bN.npy (below) and checks the PyTorch rebuild of
        MODEL.onnx against ONNX Runtime (explain_ref.check_against_onnx: more than 1e-3 stops)
  eval_ref.py ours    BIN MODEL.onnx DIR METRIC [--batch N] [--runs R] [--threads T]
                      [--wait-policy PASSIVE|ACTIVE|unset]
        runs `BIN evaluate METRIC ...` R times, each a process of its own, and prints per run and
        as a RESULT line the process's wall time, CPU time (user + system) and peak RSS (os.wait4
        of that child: its own rusage, model loading included), plus the evaluation's own seconds
        from the JSON (DIR/ours.METRIC.bN.json, the last run's)
  eval_ref.py quantus MODEL.onnx DIR METRIC [--batch N] [--runs R] [--warmup W] [--threads T]
        the Quantus metric in this process: W warm-up calls (the first one's time is kept), then
        R timed calls (explain_ref.timed_keep: median wall, CPU time of the process per call),
        the peak RSS of the process after them; the last call's scores in
        DIR/quantus.METRIC.bN.npy
  eval_ref.py table   DIR
        the table of DIR/ours.*.txt and DIR/quantus.*.txt, and the agreement of the scores

RESULT lines: RESULT <side> <metric> <batch> <median_ms> <min_ms> <max_ms> <first_ms> <cpu_ms>
<maxrss_kb> <eval_ms> (side ours / quantus; first_ms: ours the first run, quantus the first
warm-up call; eval_ms: ours the median of the JSON's seconds, the metric without loading the
model; quantus the median again, its timing has no model loading in it).

The network: explain_ref.make_model, resnet50 with tests/reference/make_torchvision.py's random
weights (the function of MODEL.onnx, checked in prep), eval mode, torch.set_num_threads(T),
OMP_WAIT_POLICY=PASSIVE; its parameters do not require gradients (as explain_ref's Captum runs:
the sensitivity's saliency computes input gradients only). Every process checks its logits on the
input against DIR/logits.bN.npy (prep's, written by the same rebuild).

Data (float32, batch N, 224 x 224):
  x        sample 0 explain_ref.bench_input() (uniform [-1, 1), default_rng(12345)); further
           samples uniform [-1, 1) from default_rng(12346)
  targets  int64 (N,): each sample's argmax class of the PyTorch rebuild (fixed; both sides get
           them explicitly: --target t0,t1,.. / y_batch)
  expl     (N, 224, 224) per-pixel map: per sample a random permutation of the integers
           -25088..25087 times 2^-15 (default_rng((777, i, k)), the first k whose 196 16 x 16
           patch sums are distinct): no ties, and dyadic values whose sums are exact in float32,
           so both sides rank the pixels and the patches in the same order; Quantus broadcasts
           it over the 3 channels
  noise    (10, N, 3, 224, 224) U(-0.2, 0.2), default_rng(99): the sensitivity's replayed draws
  logits   (N, 1000) the PyTorch rebuild's logits on x

Objective: the logit of the target on both sides (interpretdl --objective logit, Quantus
softmax=False): the random network gives its argmax class a probability of only 0.05-0.09 (logits
up to ~6.5), so differences of probabilities would say little; the work is the same. Quantus
with abs=False, normalise=False (its default normalise divides the explanation by its maximum,
which would change the infidelity), disable_warnings.

Metrics (ours: `interpretdl evaluate METRIC --model MODEL --input x --explanation expl --target ..
--objective logit --threads T --set ...`; Quantus: the metric object built in the timed call):
  deletion     ours --set features_in_step=2508 --set fill=black: K = ceil(50176 / 2508) = 21
               steps (20 of 2508 pixels, the last 16), 22 forward passes with the clean one;
               Quantus PixelFlipping(features_in_step=3 * 2508, perturb_baseline="black",
               return_auc_per_sample=False): it ranks ELEMENTS of the broadcast map, the three
               copies of a pixel adjacent, so 7524 elements = 2508 pixels, the same 21 steps
               (21 forward passes). Its assert H * W % features_in_step == 0 counts pixels against
               elements and fails for every multiple of 3 at 224 x 224, so it is disabled for the
               call (tests/reference/make_evaluate.py's no_features_in_step_assert; its loop
               handles the partial last step). return_auc_per_sample=False returns the curve
               y_1..y_21 (compared with our JSON curve[1:]); the AUC would be np.trapz of it.
  morf         ours --set patch_size=16 --set regions=100 --set fill=black; Quantus
               RegionPerturbation(patch_size=16, regions_evaluation=100, order="morf",
               perturb_baseline="black"): 196 patches (no padding at 224), 100 removed, 101
               forward passes each. Quantus returns y_0 - y_j (j = 1..100), compared with ours
               curve[0] - curve[1:].
  infidelity   ours --set patch_sizes=16 --set stride=16 --set scaling=0 --set fill=black;
               Quantus Infidelity(perturb_patch_sizes=[16], n_perturb_samples=1, loss_func="mse",
               perturb_func=make_evaluate.NonCumulative(x, "black")): Quantus's own perturbation
               is cumulative (each square written into the previous perturbed input), the
               replacement returns the ORIGINAL input with the square filled (the definition);
               196 perturbations, 197 forward passes each. Compared: the per-sample infidelity.
  sensitivity  ours --set method=saliency --set n_samples=10 --set noise=noise.bN.npy
               --explanation none (e(x) computed by the call); Quantus MaxSensitivity(
               nr_samples=10, perturb_func = make_evaluate.ReplayNoise(noise) cast to float32
               (draw s: float32(x + noise[s])), similarity difference, Frobenius norms (defaults))
               with a_batch=None and explain_func = make_evaluate.captum_saliency (Captum 0.7.0
               Saliency(abs=True) on the logit): both compute e(x) and 10 noisy saliencies in the
               timed call (11 forward + backward passes). Compared: the max sensitivity.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from explain_ref import (REFDIR, bench_input, check_against_onnx, make_model,  # noqa: E402
                         maxrss_kb, timed_keep)

H = W = 224
PIXELS = H * W
DEL_PIXELS = 2508          # deletion: pixels per step (Quantus: 3x as many elements)
DEL_STEPS = -(-PIXELS // DEL_PIXELS)
PATCH, REGIONS = 16, 100   # morf
INF_PATCH = 16             # infidelity: patch size = stride
N_SENS, RADIUS = 10, 0.2   # sensitivity
METRICS = ["deletion", "morf", "infidelity", "sensitivity"]
OURS_SET = {
    "deletion": ["features_in_step=%d" % DEL_PIXELS, "fill=black"],
    "morf": ["patch_size=%d" % PATCH, "regions=%d" % REGIONS, "fill=black"],
    "infidelity": ["patch_sizes=%d" % INF_PATCH, "stride=%d" % INF_PATCH, "scaling=0",
                   "fill=black"],
    "sensitivity": ["method=saliency", "n_samples=%d" % N_SENS],  # + noise=
}
QUANTUS_CALL = {
    "deletion": "PixelFlipping(features_in_step=%d, 'black')" % (3 * DEL_PIXELS),
    "morf": "RegionPerturbation(%d, regions_evaluation=%d, 'morf')" % (PATCH, REGIONS),
    "infidelity": "Infidelity([%d], n_perturb_samples=1, NonCumulative)" % INF_PATCH,
    "sensitivity": "MaxSensitivity(nr_samples=%d, replay, Saliency)" % N_SENS,
}


def path(d, name, batch, ext="npy"):
    return os.path.join(d, "%s.b%d.%s" % (name, batch, ext))


def load_line():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


# ---------------------------------------------------------------- data

def patch_sums(e):
    """(N, 196) the 16 x 16 patch sums of per-pixel maps (N, H, W), float64."""
    n = e.shape[0]
    return e.astype(np.float64).reshape(n, H // PATCH, PATCH, W // PATCH, PATCH).sum(axis=(2, 4))


def explanation(batch):
    """(N, H, W) float32: per sample a permutation of -25088..25087 times 2^-15, the first draw
    (default_rng((777, i, k)), k = 0, 1, ...) whose 196 patch sums are distinct. Dyadic values:
    every partial sum is exact in float32, so both sides order pixels and patches alike."""
    rows, tries = [], []
    for i in range(batch):
        for k in range(100):
            e = (np.random.default_rng((777, i, k)).permutation(PIXELS) - PIXELS // 2) * 2.0 ** -15
            e = e.reshape(1, H, W).astype(np.float32)
            if np.unique(patch_sums(e)).size == (H // PATCH) * (W // PATCH):
                break
        rows.append(e)
        tries.append(k + 1)
    return np.concatenate(rows), tries


def prep(a):
    import onnx  # noqa: F401  (before torch, as explain_ref)
    import torch
    x = bench_input()
    if a.batch > 1:
        more = np.random.default_rng(12346).uniform(-1, 1, (a.batch - 1, 3, H, W))
        x = np.concatenate([x, more.astype(np.float32)])
    model = make_model(a.threads)
    check_against_onnx(model, x, a.target, a.threads)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    targets = logits.argmax(axis=1).astype(np.int64)
    expl, tries = explanation(a.batch)
    noise = np.random.default_rng(99).uniform(-RADIUS, RADIUS, (N_SENS,) + x.shape)
    for name, arr in (("x", x), ("expl", expl), ("targets", targets),
                      ("noise", noise.astype(np.float32)), ("logits", logits)):
        np.save(path(a.dir, name, a.batch), arr)
    print("# prep: batch %d, targets %s, explanation (N, 224, 224) distinct values in [-0.77, "
          "0.77), distinct patch sums (draws per sample %s), noise %s" % (
              a.batch, ",".join(map(str, targets)), tries, noise.shape), flush=True)
    return 0


# ---------------------------------------------------------------- ours

def ours_command(a):
    d, b = a.dir, a.batch
    targets = np.load(path(d, "targets", b))
    cmd = [a.bin, "evaluate", a.metric, "--model", a.target, "--input", path(d, "x", b),
           "--explanation", "none" if a.metric == "sensitivity" else path(d, "expl", b),
           "--target", ",".join(map(str, targets)), "--objective", "logit",
           "--threads", str(a.threads), "--out", path(d, "ours." + a.metric, b, "json")]
    sets = OURS_SET[a.metric] + (["noise=" + path(d, "noise", b)]
                                 if a.metric == "sensitivity" else [])
    for kv in sets:
        cmd += ["--set", kv]
    return cmd


def ours(a):
    """Each run one process: wall time here, CPU time and peak RSS from os.wait4 (the child's own
    rusage)."""
    cmd = ours_command(a)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    if a.wait_policy == "unset":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = a.wait_policy
    print("# interpretdl evaluate %s, batch %d, %d runs (whole processes), %d threads, "
          "OMP_WAIT_POLICY=%s, %s" % (a.metric, a.batch, a.runs, a.threads,
                                      env.get("OMP_WAIT_POLICY", "unset"), load_line()))
    print("# " + " ".join(cmd), flush=True)
    walls, cpus, rss, evals = [], [], [], []
    log = path(a.dir, "ours." + a.metric, a.batch, "log")
    for r in range(a.runs):
        with open(log, "w") as f:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            _, status, ru = os.wait4(p.pid, 0)
            wall = (time.perf_counter() - t0) * 1e3
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            print(open(log).read())
            print("FAILED ours %s: exit %d" % (a.metric, p.returncode), flush=True)
            return 1
        js = json.load(open(path(a.dir, "ours." + a.metric, a.batch, "json")))
        walls.append(wall)
        cpus.append(1e3 * (ru.ru_utime + ru.ru_stime))
        rss.append(ru.ru_maxrss)
        evals.append(1e3 * js["seconds"])
        print("  run %d: wall %.1f ms, cpu %.1f ms, peak RSS %.1f MiB, evaluation %.1f ms "
              "(%d passes)" % (r + 1, wall, cpus[-1], rss[-1] / 1024.0, evals[-1],
                               js["passes"]), flush=True)
    print("RESULT ours %s %d %.3f %.3f %.3f %.3f %.1f %d %.3f" % (
        a.metric, a.batch, np.median(walls), min(walls), max(walls), walls[0],
        np.median(cpus), max(rss), np.median(evals)), flush=True)
    return 0


# ---------------------------------------------------------------- Quantus

def quantus_fn(metric, model, x, t, expl, noise):
    """The timed call: builds the Quantus metric and runs it; returns its scores (N, ...)."""
    import quantus
    import make_evaluate as me  # tests/reference: NonCumulative, ReplayNoise, captum_saliency
    common = dict(abs=False, normalise=False, disable_warnings=True)
    if metric == "deletion":
        def fn():
            with me.no_features_in_step_assert():
                return quantus.PixelFlipping(
                    features_in_step=3 * DEL_PIXELS, perturb_baseline="black",
                    return_auc_per_sample=False, **common)(
                    model=model, x_batch=x, y_batch=t, a_batch=expl, softmax=False,
                    channel_first=True)
    elif metric == "morf":
        def fn():
            return quantus.RegionPerturbation(
                patch_size=PATCH, regions_evaluation=REGIONS, order="morf",
                perturb_baseline="black", **common)(
                model=model, x_batch=x, y_batch=t, a_batch=expl, softmax=False,
                channel_first=True)
    elif metric == "infidelity":
        def fn():
            return quantus.Infidelity(
                perturb_patch_sizes=[INF_PATCH], n_perturb_samples=1, loss_func="mse",
                perturb_func=me.NonCumulative(x, "black"), **common)(
                model=model, x_batch=x, y_batch=t, a_batch=expl, softmax=False,
                channel_first=True)
    else:
        def fn():
            replay = me.ReplayNoise(noise)

            def perturb(arr, indices, **kw):  # float32 in, as the model and our replay
                return replay(arr, indices).astype(np.float32)
            return quantus.MaxSensitivity(nr_samples=N_SENS, perturb_func=perturb, **common)(
                model=model, x_batch=x, y_batch=t, a_batch=None, softmax=False,
                channel_first=True, explain_func=me.captum_saliency)
    return fn


def run_quantus(a):
    warnings.filterwarnings("ignore", category=UserWarning)
    import onnx  # noqa: F401  (before torch, as explain_ref)
    import torch
    sys.path.insert(0, REFDIR)
    import importlib.metadata as md
    d, b = a.dir, a.batch
    x = np.load(path(d, "x", b))
    t = np.load(path(d, "targets", b))
    expl = np.load(path(d, "expl", b))
    noise = np.load(path(d, "noise", b)) if a.metric == "sensitivity" else None
    model = make_model(a.threads)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        diff = float(np.max(np.abs(model(torch.from_numpy(x)).numpy() -
                                   np.load(path(d, "logits", b)))))
    if diff > 1e-4:
        sys.exit("eval_ref: the rebuilt model's logits differ from prep's by %g" % diff)
    fn = quantus_fn(a.metric, model, x, t, expl, noise)
    print("# quantus %s %s, torch %s, %d threads, OMP_WAIT_POLICY=%s, batch %d, %d warm-up + %d "
          "timed calls (median), %s" % (
              md.version("quantus"), QUANTUS_CALL[a.metric], torch.__version__,
              torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"), b, a.warmup, a.runs,
              load_line()), flush=True)
    try:
        r, out = timed_keep(fn, a.runs, a.warmup, True)
    except Exception as e:
        print("FAILED quantus %s %s: %s" % (a.metric, type(e).__name__, str(e).splitlines()[0]))
        return 1
    np.save(path(d, "quantus." + a.metric, b), np.asarray(out, np.float64))
    print("  median %.1f ms (min %.1f, max %.1f), first call %.1f ms, cpu %.1f ms, peak RSS "
          "%.1f MiB" % (r[0], r[1], r[2], r[3], r[4], maxrss_kb() / 1024.0))
    print("RESULT quantus %s %d %.3f %.3f %.3f %.3f %.1f %d %.3f" % (
        a.metric, b, r[0], r[1], r[2], r[3], r[4], maxrss_kb(), r[0]), flush=True)
    return 0


# ---------------------------------------------------------------- table

def compared(d, metric, b):
    """(ours, Quantus's) values compared for one metric, float64 arrays of the same shape, or
    None when a side is missing."""
    jf, qf = path(d, "ours." + metric, b, "json"), path(d, "quantus." + metric, b)
    if not (os.path.isfile(jf) and os.path.isfile(qf)):
        return None
    items = json.load(open(jf))["per_item"]
    q = np.load(qf)
    if metric in ("deletion", "morf"):
        c = np.array([it["curve"] for it in items], np.float64)
        o = c[:, 1:] if metric == "deletion" else c[:, :1] - c[:, 1:]
    else:
        o = np.array([it["max_sensitivity" if metric == "sensitivity" else metric]
                      for it in items], np.float64)
    return o, q.reshape(o.shape) if q.size == o.size else q


def y0_check(d, metric, b):
    """Our curve's y_0 (the clean logit of the target) against the PyTorch rebuild's."""
    jf = path(d, "ours." + metric, b, "json")
    if metric not in ("deletion", "morf") or not os.path.isfile(jf):
        return ""
    y0 = np.array([it["curve"][0] for it in json.load(open(jf))["per_item"]])
    ref = np.load(path(d, "logits", b))[np.arange(len(y0)), np.load(path(d, "targets", b))]
    return ", y_0 vs PyTorch %.1e" % np.max(np.abs(y0 - ref))


def read(d):
    res = {}
    for f in sorted(glob.glob(os.path.join(d, "ours.*.txt")) +
                    glob.glob(os.path.join(d, "quantus.*.txt"))):
        for line in open(f):
            p = line.split()
            if len(p) >= 11 and p[0] == "RESULT":
                res[(p[1], p[2], int(p[3]))] = [float(v) for v in p[4:11]]
            elif p[:1] == ["FAILED"]:
                print(line.rstrip())
    return res


def table(a):
    res = read(a.dir)
    keys = sorted({(m, b) for _, m, b in res}, key=lambda k: (k[1], METRICS.index(k[0])))
    print("%-11s %2s | %9s %9s %8s | %9s %9s | %7s %7s | %8s %8s | %s" % (
        "metric", "N", "ours ms", "ours cpu", "ours run", "Q ms", "Q cpu", "wall x", "cpu x",
        "ours MiB", "Q MiB", "agreement: max|ours - Quantus| (relative to max|Quantus|)"))
    for m, b in keys:
        o, q = res.get(("ours", m, b)), res.get(("quantus", m, b))
        cell = lambda r, i, f="%9.0f": f % r[i] if r else "%9s" % "n/a"  # noqa: E731
        mib = lambda r: "%8.0f" % (r[5] / 1024.0) if r else "%8s" % "n/a"  # noqa: E731
        ratio = lambda i: "%6.2fx" % (q[i] / o[i]) if o and q else "%7s" % "n/a"  # noqa: E731
        cmp = compared(a.dir, m, b)
        if cmp is None:
            agree = "n/a"
        else:
            ov, qv = cmp
            if ov.shape != qv.shape:
                agree = "shapes differ: ours %s, Quantus %s" % (ov.shape, qv.shape)
            else:
                dd = float(np.max(np.abs(ov - qv)))
                agree = "%.2e (%.1e) over %d values%s" % (
                    dd, dd / max(float(np.max(np.abs(qv))), 1e-30), qv.size,
                    y0_check(a.dir, m, b))
        print("%-11s %2d | %s %s %s | %s %s | %s %s | %s %s | %s" % (
            m, b, cell(o, 0), cell(o, 4), cell(o, 6, "%8.0f"), cell(q, 0), cell(q, 4),
            ratio(0), ratio(4), mib(o), mib(q), agree))
    print("(ours ms / cpu: the median wall and CPU time (user + system) of a whole `interpretdl "
          "evaluate` process, loading the 98 MiB model included; ours run: the evaluation alone "
          "(the JSON's seconds); Q ms / cpu: one Quantus metric call (median) and the CPU time of "
          "its process per call, the model already in memory; wall x, cpu x: Quantus / ours, > 1: "
          "ours faster; MiB: peak RSS of our process / of the Quantus process (torch, the model "
          "and the metric))")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["prep", "ours", "quantus", "table"])
    ap.add_argument("args", nargs="+", help="see the docstring")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--wait-policy", default="PASSIVE")
    a = ap.parse_args()
    want = {"prep": ["target", "dir"], "ours": ["bin", "target", "dir", "metric"],
            "quantus": ["target", "dir", "metric"], "table": ["dir"]}[a.what]
    if len(a.args) != len(want):
        ap.error("%s takes %s" % (a.what, " ".join(w.upper() for w in want)))
    for k, v in zip(want, a.args):
        setattr(a, k, v)
    if getattr(a, "metric", METRICS[0]) not in METRICS:
        ap.error("metrics: %s" % ", ".join(METRICS))
    return {"prep": prep, "ours": ours, "quantus": run_quantus, "table": table}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
