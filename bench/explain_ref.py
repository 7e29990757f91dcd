#!/usr/bin/env python3
"""explain_ref.py — the references of bench/run_explain_bench.sh: the explanation methods of
interpretdl-bench-explain run with Captum 0.7.0, pytorch-grad-cam 1.5.5 and lime 0.2.0.1 on the same
network, printing the same RESULT lines:
    RESULT <method> <batch> <median_ms> <min_ms> <max_ms> <first_call_ms> <library> <maxrss_kb>
           <cpu_ms>
(maxrss_kb: the process's peak RSS after that method, getrusage; methods run cheapest first, so
a jump shows which method raised it; cpu_ms: the process's CPU time, user + system, per timed
call, their mean), then  PEAK_RSS_KB <ru_maxrss>  at the end.

  explain_ref.py captum MODEL.onnx [--methods a,b,...] [--runs N] [--warmup W] [--first-timed]
                                   [--threads T] [--out DIR]
  explain_ref.py pgc    MODEL.onnx [same options] [--pgc-mode frozen|default]
  explain_ref.py lime   MODEL.onnx [same options]
  explain_ref.py input  X.npy      writes the benchmark input (below), for interpretdl's --input
                                   (--net efficientnet_lite0 --photo P: that photo)
  explain_ref.py table  DIR        reads DIR/ours*.txt, DIR/captum*.txt, DIR/pgc*.txt and
                                   DIR/lime*.txt (merged: one process per slow method); prints the
                                   table, then the agreement of the maps in DIR/maps
--first-timed: no separate first call (the warm-ups, then the timed runs; --warmup 0 --runs 1 calls
each method once). --out DIR: each method's output of its last call as DIR/<library>.<method>.npy
(the map as interpretdl shapes it: lime's coefficients painted on its superpixels, with the
superpixels as DIR/lime.<method>.segments.npy).

The network (--net): resnet50 (default), torchvision resnet50 with the random weights
tests/reference/make_torchvision.py exports to MODEL.onnx, rebuilt here with that script's own
functions (its seed for the case "resnet50", torch.manual_seed for the weights, a seeded generator
for the BatchNorm calibration), in eval mode; or efficientnet_lite0: the demo's ImageNet model with
its real weights (scripts/make_imagenet_model.py: its PyTorch module and the state dict it keeps in
--cache, default build/downloads; MODEL.onnx its export), whose layer for the CAM methods is the
head's activation (act_head, the input of the global pooling) in place of layer4. Before timing,
its logits on the benchmark input are compared with ONNX Runtime on MODEL.onnx (the same function:
max relative difference 8.2e-06 measured on resnet50; the exporter fuses Conv+BN, so bit equality
is not expected). More than 1e-3 stops the run.

Input: one image (batch 1), numpy default_rng(12345) uniform [-1, 1) as bench/bench_ref.py; with
efficientnet_lite0, a photo (--photo) through make_imagenet_model.py's preprocessing (short side
256, centre crop 224, (pixel - 127) / 128), since random pixels do not show what real weights do
with real images (e.g. the dead channels Score-CAM and Ablation-CAM skip). The target: the argmax
class of one no-grad forward made before timing (Captum and pytorch-grad-cam take the target as an
argument; interpretdl's calls include their clean forward pass). Every
method differentiates the logit of the target. torch.set_num_threads(T), OMP_WAIT_POLICY=PASSIVE.

Captum (each method's defaults unless stated):
  saliency              Saliency (abs=True)
  input_x_gradient      InputXGradient
  smoothgrad            NoiseTunnel(Saliency), nt_type="smoothgrad", nt_samples=50; the defaults
                        stdevs=1.0 and nt_samples_batch_size=None: all 50 noisy copies in ONE
                        batch of 50 (interpretdl: at most 16 rows a pass, 4 passes of 13)
  integrated_gradients  IntegratedGradients, n_steps=50, method="gausslegendre" (default), zero
                        baseline, internal_batch_size=None: all 50 steps in one batch
  gradient_shap         GradientShap, n_samples=20, baselines = zeros (one), stdevs=0 (default);
                        all 20 samples in one batch
  guided_backprop       GuidedBackprop (hooks on torchvision's nn.ReLU modules)
  gradcam_captum        LayerGradCam(model, model.layer4) (relu_attributions=False, no upsampling)
  guided_gradcam        GuidedGradCam(model, model.layer4) (interpolate_mode="nearest")
  occlusion             Occlusion, sliding_window_shapes=(3,16,16), strides=(3,8,8), baselines=0:
                        729 windows, perturbations_per_eval=1 (the default: one forward each)
  occlusion_ppe16       the same with perturbations_per_eval=16 (batches of 16)
pytorch-grad-cam (target_layers=[model.layer4[-1]], targets=[ClassifierOutputTarget(t)], output:
ReLU, min-max and cv2 resize to 224x224 as the library does):
  gradcam, gradcam_plus_plus, xgradcam, layercam   GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM
  --pgc-mode frozen (default): the parameters do not require gradients and the CAM object's
      compute_input_gradient is set, so the backward computes no weight gradients (the least work
      the library can be made to do: it calls loss.backward(), which then runs down to the input).
  --pgc-mode default: the model as torchvision makes it (parameters require gradients), the
      library's documented use; loss.backward() then also computes every weight gradient.
  scorecam      ScoreCAM: 2048 masked inputs (bilinear upsampled, min-max activations), its fixed
                batch of 16, softmax of the target logits as the channel weights
  ablationcam   AblationCAM (batch_size 32, ratio_channels_to_ablate 1): 2048 ablated channels,
                each a forward of the WHOLE network (the layer's output is cached, the layers
                before it are recomputed); weights (y - y_k) / y
  (gradient-free: the CAM object never asks for input gradients in either mode)
lime 0.2.0.1 (its progress bars off):
  lime          lime_image.LimeImageExplainer(random_state=0).explain_instance(img, classifier_fn,
                labels=(t,), top_labels=None, hide_color=None, num_samples=1000, batch_size=10
                (the default), random_seed=0): its default quickshift(kernel_size=4,
                max_dist=200, ratio=0.2), superpixel means as the hidden colour, Ridge(alpha=1)
                (feature_selection "auto": highest_weights, all features kept).
                img: the input rescaled to [0, 1] as a whole, (x - min) / (max - min), HWC, as
                interpretdl's lime segments an input given without an image; classifier_fn maps a
                batch back (img * (max - min) + min, NCHW) and returns the softmax of the logits.
  lime_bs50     the same with batch_size=50
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
REFDIR = os.path.join(HERE, "..", "tests", "reference")

CAPTUM_METHODS = ["saliency", "input_x_gradient", "guided_backprop", "gradcam_captum",
                  "guided_gradcam", "gradient_shap", "integrated_gradients", "smoothgrad",
                  "occlusion", "occlusion_ppe16"]
PGC_METHODS = ["gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "scorecam", "ablationcam"]
LIME_METHODS = ["lime", "lime_bs50"]
KNOWN = {"captum": CAPTUM_METHODS, "pgc": PGC_METHODS, "lime": LIME_METHODS}
LIB = {"captum": "captum-0.7.0", "pgc": "pytorch-grad-cam-1.5.5", "lime": "lime-0.2.0.1"}


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_ms():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return 1e3 * (ru.ru_utime + ru.ru_stime)


def report(method, lib, r):
    """r: (median, min, max, first call, cpu) ms."""
    rss = maxrss_kb()
    print("  %-22s %5d %11.2f %9.2f %9.2f %14.2f  %-24s %9.1f %11.1f" % (
        (method, 1) + r[:4] + (lib, rss / 1024.0, r[4])))
    print("RESULT %s 1 %.3f %.3f %.3f %.3f %s %d %.1f" % ((method,) + r[:4] + (lib, rss, r[4])),
          flush=True)


def imagenet_module():
    sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
    import make_imagenet_model as mim
    return mim


def make_model(threads, net="resnet50", cache=""):
    """resnet50 with make_torchvision.py's random weights and BN calibration, eval mode; or
    EfficientNet-Lite0 with its ImageNet weights."""
    import torch
    import torchvision
    if net == "efficientnet_lite0":
        torch.set_num_threads(threads)
        mim = imagenet_module()
        pth, _ = mim.fetch_state_dict(os.path.abspath(cache))
        model = mim.EfficientNetLite0()
        model.load_state_dict(torch.load(pth, map_location="cpu"), strict=True)
        return model.eval()
    sys.path.insert(0, REFDIR)
    import make_torchvision as mt
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)  # as make_torchvision.py's main()
    ctor, _, _ = mt.CASES["resnet50"]
    seed = mt.seed_of("resnet50")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = getattr(torchvision.models, ctor)(weights=None)
    mt.calibrate_bn(model, gen)
    torch.use_deterministic_algorithms(False)
    return model.eval()


def check_against_onnx(model, x, onnx_path, threads):
    import torch
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    y_ort = sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)
    del sess
    with torch.no_grad():
        y_pt = model(torch.from_numpy(x)).numpy().astype(np.float64)
    rel = float(np.max(np.abs(y_pt - y_ort)) / max(np.max(np.abs(y_ort)), 1e-30))
    print("# logits: torch model vs ONNX Runtime on %s: max rel diff %.2e (max|logit| %.3g), "
          "argmax %d / %d" % (onnx_path, rel, np.max(np.abs(y_ort)), int(y_pt.argmax()),
                              int(y_ort.argmax())), flush=True)
    if rel > 1e-3:
        sys.exit("explain_ref: the torch model is not the function of %s (rel diff %.2e)" % (
            onnx_path, rel))
    return rel


def cam_layer(model, net, pgc):
    """The layer of the CAM methods: resnet50's layer4 (pytorch-grad-cam: its last block), or
    EfficientNet-Lite0's head activation."""
    if net == "efficientnet_lite0":
        return model.act_head
    return model.layer4[-1] if pgc else model.layer4


def bench_input(net="resnet50", photo=""):
    """The benchmark input: (1, 3, 224, 224) float32, uniform [-1, 1), default_rng(12345); or the
    photo, preprocessed for EfficientNet-Lite0."""
    if net == "efficientnet_lite0":
        return imagenet_module().preprocess(photo, [127.0] * 3, [128.0] * 3)
    rng = np.random.default_rng(12345)
    return rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)


def captum_methods(model, x, t, torch, layer):
    from captum.attr import (GradientShap, GuidedBackprop, GuidedGradCam, InputXGradient,
                             IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion, Saliency)
    zeros = torch.zeros_like(x)

    def occlusion(ppe):
        return lambda: Occlusion(model).attribute(
            x, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8), baselines=0, target=t,
            perturbations_per_eval=ppe)
    return {
        "occlusion": occlusion(1),
        "occlusion_ppe16": occlusion(16),
        "saliency": lambda: Saliency(model).attribute(x, target=t),
        "input_x_gradient": lambda: InputXGradient(model).attribute(x, target=t),
        "smoothgrad": lambda: NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=50, target=t),
        "integrated_gradients": lambda: IntegratedGradients(model).attribute(
            x, target=t, n_steps=50, method="gausslegendre"),
        "gradient_shap": lambda: GradientShap(model).attribute(
            x, baselines=zeros, n_samples=20, target=t),
        "guided_backprop": lambda: GuidedBackprop(model).attribute(x, target=t),
        "gradcam_captum": lambda: LayerGradCam(model, layer).attribute(x, target=t),
        "guided_gradcam": lambda: GuidedGradCam(model, layer).attribute(x, target=t),
    }


def pgc_run(model, x, t, method, mode, layer):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cls = {"gradcam": pgc.GradCAM, "gradcam_plus_plus": pgc.GradCAMPlusPlus,
           "xgradcam": pgc.XGradCAM, "layercam": pgc.LayerCAM, "scorecam": pgc.ScoreCAM,
           "ablationcam": pgc.AblationCAM}[method]
    cam = cls(model=model, target_layers=[layer])
    if mode == "frozen" and cam.uses_gradients:
        cam.compute_input_gradient = True
    targets = [ClassifierOutputTarget(t)]
    return cam, lambda: cam(input_tensor=x, targets=targets)


def lime_run(model, xn, t, method, torch):
    """The lime package on the image interpretdl's lime segments (the input rescaled to [0, 1]);
    returns the call, which returns (map (1, H, W), segments (1, H, W))."""
    from lime import lime_image
    lo, hi = float(xn.min()), float(xn.max())
    img = np.ascontiguousarray(((xn[0] - lo) / (hi - lo)).transpose(1, 2, 0))  # HWC float32

    def classifier_fn(imgs):  # (B, H, W, C) in [0, 1] -> (B, classes) probabilities
        b = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2), np.float32))
        with torch.no_grad():
            return torch.softmax(model(b * (hi - lo) + lo), dim=1).numpy()
    batch_size = {"lime": 10, "lime_bs50": 50}[method]

    def fn():
        e = lime_image.LimeImageExplainer(random_state=0).explain_instance(
            img, classifier_fn, labels=(t,), top_labels=None, hide_color=None,
            num_samples=1000, batch_size=batch_size, random_seed=0)
        coef = np.zeros(int(e.segments.max()) + 1, np.float32)
        for k, w in e.local_exp[t]:
            coef[k] = w
        return coef[e.segments][None], e.segments[None].astype(np.int32)
    return fn


def timed_keep(fn, runs, warmup, first_timed):
    """As bench_ref.timed (a first call, the warm-ups, the timed runs; --first-timed: no separate
    first call): ((median, min, max, first call, mean CPU time of the timed runs) ms, the last
    call's output)."""
    import time
    out, ts, first, cpu = None, [], None, 0.0
    n = (0 if first_timed else 1) + warmup + runs
    for c in range(n):
        out = None
        t0, c0 = time.perf_counter(), cpu_ms()
        out = fn()
        dt = (time.perf_counter() - t0) * 1e3
        first = dt if c == 0 else first
        if c >= n - runs:
            ts.append(dt)
            cpu += cpu_ms() - c0
    return (float(np.median(ts)), min(ts), max(ts), first, cpu / runs), out


def save_map(d, lib, method, out):
    """DIR/<lib>.<method>.npy: the output as a float32 array (lime: also its superpixels)."""
    import torch
    seg = None
    if isinstance(out, tuple):
        out, seg = out
    if isinstance(out, torch.Tensor):
        out = out.detach().numpy()
    np.save(os.path.join(d, "%s.%s.npy" % (lib, method)), np.asarray(out, np.float32))
    if seg is not None:
        np.save(os.path.join(d, "%s.%s.segments.npy" % (lib, method)), seg)


def bench(a):
    # Captum warns on every call that it set requires_grad on the input / hooked the ReLUs
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    import onnx  # noqa: F401  (before torch: Debian's torch registers clashing ONNX descriptors)
    import torch
    if a.what in ("pgc", "lime"):  # their progress bars (tqdm 4.64 has no TQDM_DISABLE)
        import functools
        import tqdm
        tqdm.tqdm.__init__ = functools.partialmethod(tqdm.tqdm.__init__, disable=True)
    model = make_model(a.threads, a.net, a.cache)
    xn = bench_input(a.net, a.photo)
    check_against_onnx(model, xn, a.target, a.threads)
    if a.what in ("captum", "lime") or a.pgc_mode == "frozen":
        for p in model.parameters():
            p.requires_grad_(False)
    x = torch.from_numpy(xn)
    with torch.no_grad():
        t = int(model(x).argmax(dim=1)[0])
    lib = LIB[a.what]
    import importlib.metadata as md
    if a.what == "captum":
        version = "captum %s" % md.version("captum")
    elif a.what == "pgc":
        version = "pytorch-grad-cam %s (--pgc-mode %s)" % (md.version("grad-cam"), a.pgc_mode)
    else:
        version = "lime %s, scikit-image %s" % (md.version("lime"), md.version("scikit-image"))
    known = KNOWN[a.what]
    methods = [m for m in (a.methods.split(",") if a.methods else known) if m]
    print("# %s, torch %s, %s, %d threads, OMP_WAIT_POLICY=%s, input 1x3x224x224, target %d (%s), "
          "%s%d warm-up + %d timed runs, median" % (
              version, torch.__version__, a.net, torch.get_num_threads(),
              os.environ.get("OMP_WAIT_POLICY"), t,
              "probability" if a.what == "lime" else "logit",
              "first call timed, " if a.first_timed else "", a.warmup, a.runs))
    print("# %-22s %5s %11s %9s %9s %14s  %-24s %9s %11s" % (
        "method", "batch", "median_ms", "min_ms", "max_ms", "first_call_ms", "library",
        "rss_MiB", "cpu_ms"), flush=True)
    fns = captum_methods(model, x, t, torch, cam_layer(model, a.net, False)) \
        if a.what == "captum" else {}
    rc = 0
    for m in methods:
        if m not in known:
            print("FAILED %s not a %s method (known: %s)" % (m, a.what, ",".join(known)))
            rc = 1
            continue
        cam = None
        try:
            if a.what == "captum":
                fn = fns[m]
            elif a.what == "pgc":
                cam, fn = pgc_run(model, x, t, m, a.pgc_mode, cam_layer(model, a.net, True))
            else:
                fn = lime_run(model, xn, t, m, torch)
            r, out = timed_keep(fn, a.runs, a.warmup, a.first_timed)
            if a.out:
                save_map(a.out, a.what, m, out)
            del out
            report(m, lib, r)
        except Exception as e:  # report and go on with the other methods
            print("FAILED %s %s: %s" % (m, type(e).__name__, str(e).splitlines()[0]), flush=True)
            rc = 1
        finally:
            if cam is not None:
                cam.activations_and_grads.release()
    print("# peak RSS %.1f MiB" % (maxrss_kb() / 1024.0))
    print("PEAK_RSS_KB %d" % maxrss_kb(), flush=True)
    return rc


def read_results(paths):
    """Merges the RESULT / PEAK_RSS_KB / FAILED / target lines of several files (one process per
    slow method): the peak is the largest."""
    res, peak, failed, targets = {}, None, {}, {}
    for path in paths:
        for line in open(path):
            p = line.split()
            if len(p) >= 4 and p[0] == "RESULT":
                res[p[1]] = (float(p[3]), p)
            elif len(p) >= 2 and p[0] == "PEAK_RSS_KB":
                peak = max(peak or 0, int(p[1]))
            elif len(p) >= 2 and p[0] == "FAILED":
                failed[p[1]] = " ".join(p[2:])
            elif len(p) >= 4 and p[0] == "#" and p[2] == "target":  # interpretdl's
                targets[p[1]] = int(p[3])
            elif "target" in p and p[0] == "#":  # a reference's header: "... target K (...)"
                targets["*"] = int(p[p.index("target") + 1])
    return res, peak, failed, targets


def files(d, prefix):
    import glob
    return sorted(glob.glob(os.path.join(d, prefix + ".txt")) +
                  glob.glob(os.path.join(d, prefix + "-*.txt")))


# method of interpretdl-bench-explain -> (reference file, library name shown)
PAIRS = [("saliency", "captum"), ("input_x_gradient", "captum"), ("smoothgrad", "captum"),
         ("integrated_gradients", "captum"), ("gradient_shap", "captum"),
         ("guided_backprop", "captum"), ("gradcam", "pgc"), ("gradcam_captum", "captum"),
         ("gradcam_plus_plus", "pgc"), ("xgradcam", "pgc"), ("layercam", "pgc"),
         ("guided_gradcam", "captum"), ("occlusion", "captum"), ("scorecam", "pgc"),
         ("ablationcam", "pgc"), ("lime", "lime")]
REF_NAME = {"saliency": "Saliency", "input_x_gradient": "InputXGradient",
            "smoothgrad": "NoiseTunnel(Saliency)", "integrated_gradients": "IntegratedGradients",
            "gradient_shap": "GradientShap", "guided_backprop": "GuidedBackprop",
            "gradcam": "GradCAM", "gradcam_captum": "LayerGradCam",
            "gradcam_plus_plus": "GradCAMPlusPlus", "xgradcam": "XGradCAM",
            "layercam": "LayerCAM", "guided_gradcam": "GuidedGradCam",
            "occlusion": "Occlusion ppe=1", "occlusion_ppe16": "Occlusion ppe=16",
            "scorecam": "ScoreCAM", "ablationcam": "AblationCAM",
            "lime": "LimeImageExplainer batch 10", "lime_bs50": "LimeImageExplainer batch 50"}
# the reference's variants of a method: the faster one is the reference
VARIANTS = {"occlusion": ["occlusion", "occlusion_ppe16"], "lime": ["lime", "lime_bs50"]}


def ref_result(ref, m):
    """The fastest variant of method m among the reference's results: (name, result) or None."""
    got = [(v, ref[v]) for v in VARIANTS.get(m, [m]) if v in ref]
    return min(got, key=lambda vr: vr[1][0]) if got else None


def agreement(d, ours_targets, ref_targets):
    """Rough agreement of each method's map with its reference's (DIR/maps, written by --out):
    Pearson and Spearman correlation over the elements, and the largest difference relative to
    the reference's largest magnitude."""
    import numpy as np
    md = os.path.join(d, "maps")
    if not os.path.isdir(md):
        return
    lines = []
    for m, lib in PAIRS:
        mine = os.path.join(md, m + ".npy")
        if not os.path.isfile(mine):
            continue
        for v in VARIANTS.get(m, [m]):
            theirs = os.path.join(md, "%s.%s.npy" % (lib, v))
            if not os.path.isfile(theirs):
                continue
            a, b = np.load(mine).astype(np.float64), np.load(theirs).astype(np.float64)
            a, b = np.squeeze(a), np.squeeze(b)
            if a.shape != b.shape:
                lines.append("  %-20s vs %-18s shapes differ: %s / %s" % (m, v, a.shape, b.shape))
                continue
            a, b = a.ravel(), b.ravel()

            def rank(z):
                r = np.empty(z.size)
                r[np.argsort(z, kind="stable")] = np.arange(z.size)
                return r
            pr = np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else float("nan")
            sr = np.corrcoef(rank(a), rank(b))[0, 1] if a.std() > 0 and b.std() > 0 else \
                float("nan")
            rel = np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)
            extra = ""
            sa = os.path.join(md, m + ".segments.npy")
            sb = os.path.join(md, "%s.%s.segments.npy" % (lib, v))
            if os.path.isfile(sa) and os.path.isfile(sb):
                ga, gb = np.load(sa).ravel(), np.load(sb).ravel()
                # the same partition whatever the numbering: the pixels of each segment that lie
                # in the segment of the other map overlapping it most (the worse direction)
                c = np.zeros((ga.max() + 1, gb.max() + 1), np.int64)
                np.add.at(c, (ga, gb), 1)
                same = min(c.max(axis=1).sum(), c.max(axis=0).sum()) / ga.size
                extra = ", superpixels %d / %d, the same partition on %.1f%% of the pixels" % (
                    ga.max() + 1, gb.max() + 1, 100.0 * same)
            t_o, t_r = ours_targets.get(m), ref_targets.get(lib, {}).get("*")
            tgt = "" if t_o is None or t_o == t_r else " TARGETS DIFFER (%s / %s)" % (t_o, t_r)
            lines.append("  %-20s vs %-18s pearson %6.3f  spearman %6.3f  max|diff|/max|ref| "
                         "%8.3g%s%s" % (m, v, pr, sr, rel, extra, tgt))
    if lines:
        print("agreement of the maps (%s; same input and target; the sampled methods draw "
              "different samples):" % md)
        print("\n".join(lines))


def table(a):
    d = a.target
    ours, ours_peak, ours_failed, ours_targets = read_results(files(d, "ours"))
    refs = {k: read_results(files(d, k)) for k in LIB}
    print("%-21s | %9s %9s | %8s | %9s %9s | %8s %8s | %9s %9s %6s | %s" % (
        "method", "ours ms", "ref ms", "speed-up", "ours min", "ref min", "ours MiB", "ref MiB",
        "ours cpu", "ref cpu", "cpu x", "reference"))
    names = [m for m, _ in PAIRS] + [m for m in ours if m not in dict(PAIRS)]
    for m in names:
        lib = dict(PAIRS).get(m)
        ref = refs[lib][0] if lib else {}
        o = ours.get(m)
        vr = ref_result(ref, m)
        v, r = vr if vr else (m, None)
        if o is None and r is None and m not in ours_failed:
            continue
        o_s = "%9.1f" % o[0] if o else "%9s" % ("FAILED" if m in ours_failed else "n/a")
        r_s = "%9.1f" % r[0] if r else "%9s" % (
            "FAILED" if lib and m in refs[lib][2] else "n/a")
        sp = "%7.2fx" % (r[0] / o[0]) if o and r else "%8s" % "n/a"
        o_min = "%9.1f" % float(o[1][4]) if o else "%9s" % "n/a"
        r_min = "%9.1f" % float(r[1][4]) if r else "%9s" % "n/a"
        o_rss = "%8.0f" % (int(o[1][8]) / 1024.0) if o and len(o[1]) > 8 else "%8s" % "n/a"
        r_rss = "%8.0f" % (int(r[1][8]) / 1024.0) if r and len(r[1]) > 8 else "%8s" % "n/a"
        o_cpu = float(o[1][9]) if o and len(o[1]) > 9 else None
        r_cpu = float(r[1][9]) if r and len(r[1]) > 9 else None
        cpu = "%9.0f %9.0f %6s" % (o_cpu or 0, r_cpu or 0, "%5.2fx" % (r_cpu / o_cpu)) \
            if o_cpu and r_cpu else "%9s %9s %6s" % ("n/a", "n/a", "n/a")
        ref_name = ("%s %s" % (LIB[lib], REF_NAME.get(v, v))) if lib else "-"
        others = [(w, ref[w][0]) for w in VARIANTS.get(m, []) if w != v and w in ref]
        if others:
            ref_name += " (faster than %s)" % ", ".join(
                "%s: %.1f" % (REF_NAME.get(w, w), t) for w, t in others)
        print("%-21s | %s %s | %s | %s %s | %s %s | %s | %s" % (
            m, o_s, r_s, sp, o_min, r_min, o_rss, r_rss, cpu, ref_name))
    print("(median ms of one call, batch 1; speed-up = reference / ours of the medians, > 1: ours "
          "faster; min: the fastest timed run, a hint of how noisy the machine was; MiB: the "
          "process's peak RSS after the method: cumulative within one process, the slow methods "
          "each run in a process of their own; cpu: the process's CPU time per call, ms (user + "
          "system; with OMP_WAIT_POLICY=PASSIVE on both sides, cpu x = ref / ours is less "
          "disturbed by other processes than the wall-time speed-up); where the reference has "
          "variants, the faster is shown)")
    for name, peak in [("interpretdl", ours_peak)] + [(LIB[k], refs[k][1]) for k in LIB]:
        if peak:
            print("peak RSS %-24s %8.1f MiB" % (name, peak / 1024.0))
    for name, f in [("interpretdl", ours_failed)] + [(LIB[k], refs[k][2]) for k in LIB]:
        for m, why in f.items():
            print("FAILED %s %s: %s" % (name, m, why))
    agreement(d, ours_targets, {k: refs[k][3] for k in LIB})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["captum", "pgc", "lime", "input", "table"])
    ap.add_argument("target", help="MODEL.onnx, X.npy for input, or the results folder for table")
    ap.add_argument("--methods", default="")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--first-timed", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="", help="folder for each method's output (.npy)")
    ap.add_argument("--pgc-mode", choices=["frozen", "default"], default="frozen")
    ap.add_argument("--net", choices=["resnet50", "efficientnet_lite0"], default="resnet50")
    ap.add_argument("--photo", default="", help="the input photo of --net efficientnet_lite0")
    ap.add_argument("--cache", default=os.path.join(HERE, "..", "build", "downloads"),
                    help="make_imagenet_model.py's download folder (its state dict)")
    a = ap.parse_args()
    if a.net == "efficientnet_lite0" and not a.photo and a.what != "table":
        ap.error("--net efficientnet_lite0 needs --photo")
    if a.what == "table":
        table(a)
        return 0
    if a.what == "input":
        np.save(a.target, bench_input(a.net, a.photo))
        return 0
    return bench(a)


if __name__ == "__main__":
    sys.exit(main())
