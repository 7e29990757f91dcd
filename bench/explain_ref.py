#!/usr/bin/env python3
"""explain_ref.py — the references of bench/run_explain_bench.sh: the explanation methods of
interpretdl-bench-explain run with Captum 0.7.0 and pytorch-grad-cam 1.5.5 on the same network,
printing the same RESULT lines:
    RESULT <method> <batch> <median_ms> <min_ms> <max_ms> <first_call_ms> <library> <maxrss_kb>
(maxrss_kb: the process's peak RSS after that method, getrusage; methods run cheapest first, so
a jump shows which method raised it), then  PEAK_RSS_KB <ru_maxrss>  at the end.

  explain_ref.py captum MODEL.onnx [--methods a,b,...] [--runs N] [--warmup W] [--threads T]
  explain_ref.py pgc    MODEL.onnx [same options] [--pgc-mode frozen|default]
  explain_ref.py table  DIR        reads DIR/ours.txt, DIR/captum.txt, DIR/pgc.txt; prints the table

The network: torchvision resnet50 with the random weights tests/reference/make_torchvision.py
exports to MODEL.onnx, rebuilt here with that script's own functions (its seed for the case
"resnet50", torch.manual_seed for the weights, a seeded generator for the BatchNorm calibration),
in eval mode. Before timing, its logits on the benchmark input are compared with ONNX Runtime on
MODEL.onnx (the same function: max relative difference 8.2e-06 measured; the exporter fuses
Conv+BN, so bit equality is not expected). More than 1e-3 stops the run.

Input: one image (batch 1), numpy default_rng(12345) uniform [-1, 1) as bench/bench_ref.py. The
target: the argmax class of one no-grad forward made before timing (Captum and pytorch-grad-cam
take the target as an argument; interpretdl's calls include their clean forward pass). Every
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
pytorch-grad-cam (target_layers=[model.layer4[-1]], targets=[ClassifierOutputTarget(t)], output:
ReLU, min-max and cv2 resize to 224x224 as the library does):
  gradcam, gradcam_plus_plus, xgradcam, layercam   GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM
  --pgc-mode frozen (default): the parameters do not require gradients and the CAM object's
      compute_input_gradient is set, so the backward computes no weight gradients (the least work
      the library can be made to do: it calls loss.backward(), which then runs down to the input).
  --pgc-mode default: the model as torchvision makes it (parameters require gradients), the
      library's documented use; loss.backward() then also computes every weight gradient.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ref import timed  # noqa: E402  (median / min / max / first call, ms)

HERE = os.path.dirname(os.path.abspath(__file__))
REFDIR = os.path.join(HERE, "..", "tests", "reference")

CAPTUM_METHODS = ["saliency", "input_x_gradient", "guided_backprop", "gradcam_captum",
                  "guided_gradcam", "gradient_shap", "integrated_gradients", "smoothgrad"]
PGC_METHODS = ["gradcam", "gradcam_plus_plus", "xgradcam", "layercam"]
LIB = {"captum": "captum-0.7.0", "pgc": "pytorch-grad-cam-1.5.5"}


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def report(method, lib, r):
    rss = maxrss_kb()
    print("  %-22s %5d %11.2f %9.2f %9.2f %14.2f  %-24s %9.1f" % (
        (method, 1) + r + (lib, rss / 1024.0)))
    print("RESULT %s 1 %.3f %.3f %.3f %.3f %s %d" % ((method,) + r + (lib, rss)), flush=True)


def make_model(threads):
    """resnet50 with make_torchvision.py's random weights and BN calibration, eval mode."""
    import torch
    import torchvision
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


def captum_methods(model, x, t, torch):
    from captum.attr import (GradientShap, GuidedBackprop, GuidedGradCam, InputXGradient,
                             IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency)
    zeros = torch.zeros_like(x)
    return {
        "saliency": lambda: Saliency(model).attribute(x, target=t),
        "input_x_gradient": lambda: InputXGradient(model).attribute(x, target=t),
        "smoothgrad": lambda: NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=50, target=t),
        "integrated_gradients": lambda: IntegratedGradients(model).attribute(
            x, target=t, n_steps=50, method="gausslegendre"),
        "gradient_shap": lambda: GradientShap(model).attribute(
            x, baselines=zeros, n_samples=20, target=t),
        "guided_backprop": lambda: GuidedBackprop(model).attribute(x, target=t),
        "gradcam_captum": lambda: LayerGradCam(model, model.layer4).attribute(x, target=t),
        "guided_gradcam": lambda: GuidedGradCam(model, model.layer4).attribute(x, target=t),
    }


def pgc_run(model, x, t, method, mode):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cls = {"gradcam": pgc.GradCAM, "gradcam_plus_plus": pgc.GradCAMPlusPlus,
           "xgradcam": pgc.XGradCAM, "layercam": pgc.LayerCAM}[method]
    cam = cls(model=model, target_layers=[model.layer4[-1]])
    if mode == "frozen":
        cam.compute_input_gradient = True
    targets = [ClassifierOutputTarget(t)]
    return cam, lambda: cam(input_tensor=x, targets=targets)


def bench(a):
    # Captum warns on every call that it set requires_grad on the input / hooked the ReLUs
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    import onnx  # noqa: F401  (before torch: Debian's torch registers clashing ONNX descriptors)
    import torch
    model = make_model(a.threads)
    rng = np.random.default_rng(12345)
    xn = rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    check_against_onnx(model, xn, a.target, a.threads)
    if a.what == "captum" or a.pgc_mode == "frozen":
        for p in model.parameters():
            p.requires_grad_(False)
    x = torch.from_numpy(xn)
    with torch.no_grad():
        t = int(model(x).argmax(dim=1)[0])
    lib = LIB[a.what]
    if a.what == "captum":
        import captum
        version = "captum %s" % captum.__version__
    else:
        import importlib.metadata as md
        version = "pytorch-grad-cam %s (--pgc-mode %s)" % (md.version("grad-cam"), a.pgc_mode)
    known = CAPTUM_METHODS if a.what == "captum" else PGC_METHODS
    methods = [m for m in (a.methods.split(",") if a.methods else known) if m]
    print("# %s, torch %s, %d threads, OMP_WAIT_POLICY=%s, input 1x3x224x224, target %d (logit), "
          "%d warm-up + %d timed runs, median" % (
              version, torch.__version__, torch.get_num_threads(),
              os.environ.get("OMP_WAIT_POLICY"), t, a.warmup, a.runs))
    print("# %-22s %5s %11s %9s %9s %14s  %-24s %9s" % (
        "method", "batch", "median_ms", "min_ms", "max_ms", "first_call_ms", "library",
        "rss_MiB"), flush=True)
    fns = captum_methods(model, x, t, torch) if a.what == "captum" else {}
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
            else:
                cam, fn = pgc_run(model, x, t, m, a.pgc_mode)
            report(m, lib, timed(fn, a.runs, a.warmup))
        except Exception as e:  # report and go on with the other methods
            print("FAILED %s %s: %s" % (m, type(e).__name__, str(e).splitlines()[0]), flush=True)
            rc = 1
        finally:
            if cam is not None:
                cam.activations_and_grads.release()
    print("# peak RSS %.1f MiB" % (maxrss_kb() / 1024.0))
    print("PEAK_RSS_KB %d" % maxrss_kb(), flush=True)
    return rc


def read_results(path):
    res, peak, failed = {}, None, {}
    if os.path.isfile(path):
        for line in open(path):
            p = line.split()
            if len(p) >= 4 and p[0] == "RESULT":
                res[p[1]] = (float(p[3]), p)
            elif len(p) >= 2 and p[0] == "PEAK_RSS_KB":
                peak = int(p[1])
            elif len(p) >= 2 and p[0] == "FAILED":
                failed[p[1]] = " ".join(p[2:])
    return res, peak, failed


# method of interpretdl-bench-explain -> (reference file, library name shown)
PAIRS = [("saliency", "captum"), ("input_x_gradient", "captum"), ("smoothgrad", "captum"),
         ("integrated_gradients", "captum"), ("gradient_shap", "captum"),
         ("guided_backprop", "captum"), ("gradcam", "pgc"), ("gradcam_captum", "captum"),
         ("gradcam_plus_plus", "pgc"), ("xgradcam", "pgc"), ("layercam", "pgc"),
         ("guided_gradcam", "captum")]
REF_NAME = {"saliency": "Saliency", "input_x_gradient": "InputXGradient",
            "smoothgrad": "NoiseTunnel(Saliency)", "integrated_gradients": "IntegratedGradients",
            "gradient_shap": "GradientShap", "guided_backprop": "GuidedBackprop",
            "gradcam": "GradCAM", "gradcam_captum": "LayerGradCam",
            "gradcam_plus_plus": "GradCAMPlusPlus", "xgradcam": "XGradCAM",
            "layercam": "LayerCAM", "guided_gradcam": "GuidedGradCam"}


def table(a):
    d = a.target
    ours, ours_peak, ours_failed = read_results(os.path.join(d, "ours.txt"))
    refs = {k: read_results(os.path.join(d, k + ".txt")) for k in ("captum", "pgc")}
    print("%-21s | %9s %9s | %8s | %9s %9s | %s" % (
        "method", "ours ms", "ref ms", "speed-up", "ours min", "ref min", "reference"))
    names = [m for m, _ in PAIRS] + [m for m in ours if m not in dict(PAIRS)]
    for m in names:
        lib = dict(PAIRS).get(m)
        ref = refs[lib][0] if lib else {}
        o = ours.get(m)
        r = ref.get(m)
        if o is None and r is None and m not in ours_failed:
            continue
        o_s = "%9.1f" % o[0] if o else "%9s" % ("FAILED" if m in ours_failed else "n/a")
        r_s = "%9.1f" % r[0] if r else "%9s" % (
            "FAILED" if lib and m in refs[lib][2] else "n/a")
        sp = "%7.2fx" % (r[0] / o[0]) if o and r else "%8s" % "n/a"
        o_min = "%9.1f" % float(o[1][4]) if o else "%9s" % "n/a"
        r_min = "%9.1f" % float(r[1][4]) if r else "%9s" % "n/a"
        ref_name = ("%s %s" % (LIB[lib], REF_NAME.get(m, m))) if lib else "-"
        print("%-21s | %s %s | %s | %s %s | %s" % (m, o_s, r_s, sp, o_min, r_min, ref_name))
    print("(median ms of one call, batch 1; speed-up = reference / ours of the medians, > 1: ours "
          "faster; min: the fastest timed run, a hint of how noisy the machine was)")
    for name, peak in [("interpretdl", ours_peak)] + [
            (LIB[k], refs[k][1]) for k in ("captum", "pgc")]:
        if peak:
            print("peak RSS %-24s %8.1f MiB" % (name, peak / 1024.0))
    for name, f in [("interpretdl", ours_failed)] + [(LIB[k], refs[k][2]) for k in refs]:
        for m, why in f.items():
            print("FAILED %s %s: %s" % (name, m, why))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["captum", "pgc", "table"])
    ap.add_argument("target", help="MODEL.onnx, or the results folder for table")
    ap.add_argument("--methods", default="")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pgc-mode", choices=["frozen", "default"], default="frozen")
    a = ap.parse_args()
    if a.what == "table":
        table(a)
        return 0
    return bench(a)


if __name__ == "__main__":
    sys.exit(main())
