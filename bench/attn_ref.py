#!/usr/bin/env python3
"""attn_ref.py — the references of bench/run_attn_bench.sh: the transformer explanation methods of
interpretdl (rollout, generic_attention, attention_gradcam, tam, bt) computed in PyTorch by the
functions of tests/reference/make_attention_explain.py (imported, not copied) on the same network
and input, printing RESULT lines in the format of bench/explain_ref.py:
    RESULT <method> <batch> <median_ms> <min_ms> <max_ms> <first_call_ms> <library> <maxrss_kb>
           <cpu_ms>
(maxrss_kb: the process's peak RSS after that method, getrusage; cpu_ms: the process's CPU time,
user + system, per timed call, their mean), then  PEAK_RSS_KB <ru_maxrss>.

  attn_ref.py input MODEL_DIR OUT_DIR   rebuilds the torch model, checks that it reproduces
                                        MODEL_DIR/input.npy bit for bit and (ONNX Runtime) the
                                        logits of MODEL_DIR/model.onnx on sample 0; writes
                                        OUT_DIR/x.npy (sample 0: batch 1) and OUT_DIR/logits.npy
  attn_ref.py torch X.npy [--methods a,b,...] [--runs N] [--warmup W] [--threads T]
                        [--out DIR] [--full-pass]
  attn_ref.py table DIR                 reads DIR/ours-<method>.txt and DIR/torch-<method>.txt;
                                        prints the table, then the agreement of the maps in
                                        DIR/maps (ours: <method>.npy, the reference's:
                                        torch.<method>.npy)

The network: torchvision vit_b_16 with the random weights of tests/reference/make_transformers.py
(MODEL_DIR = BUILD_DIR/models/vit_b_16), rebuilt with make_attention_explain.rebuild_generated
(same seeds and re-initialisation; that function draws the 2-image input of input.npy, compared
here bit for bit), float32, eval mode, every parameter requiring gradients (as the script leaves
them). Batch 1: sample 0 of input.npy. The target is the argmax of the logits (interpretdl's
default target for a logit objective); every method differentiates the logit of the target.
torch.set_num_threads(T), OMP_WAIT_POLICY=PASSIVE (set by run_attn_bench.sh).

Each timed call builds a fresh make_attention_explain.Runner (its pass and gradient caches start
empty) and calls make_attention_explain.compute with the line of the method:
  rollout            head_fusion=mean, start_layer=0, discard_ratio=0: one forward. Autograd stays
                     ON: under torch.no_grad torch 1.13's nn.MultiheadAttention takes its fused
                     fast path (torch._native_multi_head_attention), which never calls
                     F.softmax, so SoftmaxCapture sees no attention; the graph is recorded and
                     never used. (The row "forward" times that fast path under no_grad, for
                     comparison; no map.)
  generic_attention  variant=paper, start_layer=0: one forward, one backward to every block's
                     attention probabilities
  attention_gradcam  one forward, one backward to the last block's attention
  tam                start_layer=4, steps=20: forwards at alpha = linspace(0, 1, 20) (alpha = 1 is
                     the clean pass), each with a backward to the last block's attention
  bt                 mode=head, start_layer=0, steps=20: tam's 20 passes plus a backward to every
                     block at alpha = 1
  bt_token           mode=token, start_layer=0, steps=20: tam's 20 passes; the value vectors and
                     W_O of each block (Pass computes them from the block inputs)
make_attention_explain.Pass also recomputes each block's value vectors from its input (12
Linear(768, 768) on 197 tokens, ~8% of a forward's FLOPs) at every pass; only bt_token uses
them. By default the other methods run with LeanPass below (Pass without them; the same A, graph
and gradients); --full-pass times the module's Pass unchanged.

Import cost: make_attention_explain imports make_explain, which imports captum, pytorch-grad-cam
and cv2; their memory is in the reference's RSS (SETUP_RSS_KB: the RSS after the imports and the
model build, before the first method).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import glob  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

# the timing and resource helpers of the Captum / pytorch-grad-cam reference (same folder)
from explain_ref import maxrss_kb, timed_keep  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REFDIR = os.path.join(HERE, "..", "tests", "reference")
LIB = "torch"
MODEL = "vit_b_16"
GRID = (14, 14)
HEADS = 12
IMAGE = 224
ORT_LIMIT = 1e-3  # torch float32 vs ONNX Runtime on model.onnx, relative to max |logit|

# method -> the line of make_attention_explain.compute (its settings; tg and objective are added)
LINES = {
    "rollout": dict(method="rollout", head_fusion="mean", start_layer=0, discard_ratio=0),
    "generic_attention": dict(method="generic_attention", variant="paper", start_layer=0),
    "attention_gradcam": dict(method="attention_gradcam"),
    "tam": dict(method="tam", start_layer=4, steps=20),
    "bt": dict(method="bt", mode="head", start_layer=0, steps=20),
    "bt_token": dict(method="bt", mode="token", start_layer=0, steps=20),
}
# what each row is on interpretdl's side (registry method and settings, bench/run_attn_bench.sh)
OURS = {
    "rollout": "rollout (start_layer=0 head_fusion=mean)",
    "generic_attention": "generic_attention (variant=paper start_layer=0)",
    "attention_gradcam": "attention_gradcam",
    "tam": "tam (start_layer=4 steps=20)",
    "bt": "bt (mode=head start_layer=0 steps=20)",
    "bt_token": "bt mode=token (start_layer=0 steps=20)",
}
ORDER = ["forward", "rollout", "generic_attention", "attention_gradcam", "tam", "bt", "bt_token"]


def modules():
    """make_attention_explain and make_transformers (onnx is imported before torch by them)."""
    sys.path.insert(0, REFDIR)
    import make_attention_explain as mae
    import make_transformers as mtr
    return mae, mtr


def build(threads):
    """The vit_b_16 of make_transformers.py, rebuilt as make_attention_explain does: (model, the
    2-image input it draws (numpy))."""
    mae, mtr = modules()
    import torch
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)  # as make_attention_explain.py's main()
    model, x = mae.rebuild_generated(MODEL, mtr.vit_b_16, IMAGE)
    torch.use_deterministic_algorithms(False)
    return model, x.numpy()


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def make_input(a):
    """input MODEL_DIR OUT_DIR: the checks, then OUT_DIR/x.npy and OUT_DIR/logits.npy."""
    import onnx  # noqa: F401
    mae, mtr = modules()
    import torch
    model, x2 = build(a.threads)
    xf = np.load(os.path.join(a.model_dir, "input.npy"))
    if xf.shape != x2.shape or not np.array_equal(xf, x2):
        print("attn_ref: the rebuilt input differs from %s/input.npy (regenerate the model with "
              "make_transformers.py)" % a.model_dir, file=sys.stderr)
        return 1
    x = np.ascontiguousarray(xf[:1])
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    om = onnx.load(os.path.join(a.model_dir, "model.onnx"))
    outs, _ = mtr.ort_run(om, {om.graph.input[0].name: x})
    err = rel_err(outs[0], logits)
    t = int(logits[0].argmax())
    print("# %s rebuilt: input.npy reproduced bit for bit; logits of sample 0, torch float32 vs "
          "ONNX Runtime on model.onnx: max rel diff %.2g; argmax %d (ONNX Runtime: %d)" % (
              MODEL, err, t, int(outs[0][0].argmax())))
    if err > ORT_LIMIT or int(outs[0][0].argmax()) != t:
        print("attn_ref: the torch model does not match %s/model.onnx" % a.model_dir,
              file=sys.stderr)
        return 1
    os.makedirs(a.target, exist_ok=True)
    np.save(os.path.join(a.target, "x.npy"), x)
    np.save(os.path.join(a.target, "logits.npy"), logits)
    return 0


def lean_pass_class(mae, mtr, torch):
    """make_attention_explain.Pass without the value vectors, W_O and block inputs (which only
    bt mode=token reads): the same forward, captured attention (graph kept) and grads()."""
    class LeanPass(mae.Pass):
        def __init__(self, m, spec, dtype, alpha=1.0):
            args = spec.args(dtype)
            if alpha != 1.0:
                args[0] = args[0] * alpha  # image models only here
            with mtr.SoftmaxCapture() as cap:
                out = m(*args)
            if len(cap.probs) != len(m.encoder.layers):
                raise RuntimeError("%d softmax calls, %d blocks" % (len(cap.probs),
                                                                    len(m.encoder.layers)))
            self.out = out
            self.raw = cap.probs
            s = cap.probs[0].shape[-1]
            self.shape = (out.shape[0], spec.heads, s, s)
            self.A = [p.detach().reshape(self.shape) for p in cap.probs]
    return LeanPass


def report(method, r):
    rss = maxrss_kb()
    print("  %-20s %5d %11.2f %9.2f %9.2f %14.2f %9.1f %11.1f" % (
        (method, 1) + r[:4] + (rss / 1024.0, r[4])))
    print("RESULT %s 1 %.3f %.3f %.3f %.3f %s %d %.1f" % ((method,) + r[:4] + (LIB, rss, r[4])),
          flush=True)


def bench(a):
    import onnx  # noqa: F401  (before torch: Debian's torch registers clashing ONNX descriptors)
    mae, mtr = modules()
    import torch
    full_pass = mae.Pass
    model, _ = build(a.threads)
    xn = np.load(a.target)
    spec = mae.Spec(MODEL, "image", HEADS, [xn], grid=GRID)
    x = torch.from_numpy(xn)
    with torch.no_grad():
        logits = model(x)
    ref = os.path.join(os.path.dirname(os.path.abspath(a.target)), "logits.npy")
    if os.path.isfile(ref) and rel_err(logits.numpy(), np.load(ref)) > 1e-5:
        print("attn_ref: the logits differ from %s (%.3g)" % (ref, rel_err(logits.numpy(),
                                                                         np.load(ref))))
        return 1
    t = int(logits.argmax(dim=1)[0])
    tg = torch.tensor([t])
    lean = lean_pass_class(mae, mtr, torch)
    import importlib.metadata as md
    blas = [ln.split()[-1] for ln in open("/proc/self/maps")
            if "libblas" in ln or "libopenblas" in ln]  # the BLAS torch's libtorch_cpu loaded
    print("# torch %s (%s), %d threads, OMP_WAIT_POLICY=%s, %s input %s, target %d (logit), "
          "1 first call + %d warm-up + %d timed runs, median; passes: %s" % (
              torch.__version__, blas[0] if blas else "BLAS ?",
              torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"), MODEL,
              "x".join(map(str, xn.shape)), t, a.warmup, a.runs,
              "make_attention_explain.Pass" if a.full_pass else "LeanPass (bt_token: Pass)"))
    print("# captum %s, pytorch-grad-cam %s imported by make_explain" % (
        md.version("captum"), md.version("grad-cam")))
    print("SETUP_RSS_KB %d" % maxrss_kb())
    print("# %-20s %5s %11s %9s %9s %14s %9s %11s" % (
        "method", "batch", "median_ms", "min_ms", "max_ms", "first_call_ms", "rss_MiB", "cpu_ms"),
        flush=True)
    rc = 0
    for m in [m for m in a.methods.split(",") if m]:
        if m != "forward" and m not in LINES:
            print("FAILED %s not a method (known: forward,%s)" % (m, ",".join(LINES)))
            rc = 1
            continue
        try:
            if m == "forward":
                def fn():
                    with torch.no_grad():
                        return model(x)
            else:
                line = dict(LINES[m], tg=tg, objective="logit", argmax=False)
                mae.Pass = full_pass if a.full_pass or m == "bt_token" else lean

                def fn():
                    return mae.compute(mae.Runner(model, spec, torch.float32), line).detach()
            r, out = timed_keep(fn, a.runs, a.warmup, False)
            if a.out and m != "forward":
                np.save(os.path.join(a.out, "torch.%s.npy" % m), out.numpy().astype(np.float32))
            del out
            report(m, r)
        except Exception as e:  # report and go on with the other methods
            print("FAILED %s %s: %s" % (m, type(e).__name__, str(e).splitlines()[0]), flush=True)
            rc = 1
        finally:
            mae.Pass = full_pass
    print("# peak RSS %.1f MiB" % (maxrss_kb() / 1024.0))
    print("PEAK_RSS_KB %d" % maxrss_kb(), flush=True)
    return rc


def read_results(path):
    """RESULT / PEAK_RSS_KB / SETUP_RSS_KB / FAILED / target lines of one output file."""
    res, info = {}, {}
    for line in open(path):
        p = line.split()
        if len(p) >= 4 and p[0] == "RESULT":
            res[p[1]] = p
        elif len(p) >= 2 and p[0] in ("PEAK_RSS_KB", "SETUP_RSS_KB"):
            info[p[0]] = int(p[1])
        elif len(p) >= 2 and p[0] == "FAILED":
            info.setdefault("failed", {})[p[1]] = " ".join(p[2:])
        elif len(p) >= 4 and p[0] == "#" and p[2] == "target":  # interpretdl's "# m target K"
            info["target"] = int(p[3])
        elif len(p) > 2 and p[0] == "#" and "target" in p:  # the reference's header
            info["target"] = int(p[p.index("target") + 1].rstrip(","))
        if line.startswith("# torch ") or line.startswith("# interpretdl-bench-explain "):
            info["header"] = line[2:].strip()
    return res, info


def agreement(d, targets):
    """Each method's map against the reference's: Pearson and Spearman correlation over the 196
    patches, the largest difference relative to the reference's largest magnitude, and whether
    the top patch is the same."""
    md = os.path.join(d, "maps")
    lines = []
    for m in ORDER:
        mine, theirs = os.path.join(md, m + ".npy"), os.path.join(md, "torch.%s.npy" % m)
        if not (os.path.isfile(mine) and os.path.isfile(theirs)):
            continue
        a = np.squeeze(np.load(mine).astype(np.float64))
        b = np.squeeze(np.load(theirs).astype(np.float64))
        if a.shape != b.shape:
            lines.append("  %-18s shapes differ: %s / %s" % (m, a.shape, b.shape))
            continue
        a, b = a.ravel(), b.ravel()

        def rank(z):
            r = np.empty(z.size)
            r[np.argsort(z, kind="stable")] = np.arange(z.size)
            return r
        ok = a.std() > 0 and b.std() > 0
        pr = np.corrcoef(a, b)[0, 1] if ok else float("nan")
        sr = np.corrcoef(rank(a), rank(b))[0, 1] if ok else float("nan")
        to, tr = targets.get(("ours", m)), targets.get(("torch", m))
        tgt = "" if to == tr else "  TARGETS DIFFER (%s / %s)" % (to, tr)
        lines.append("  %-18s %s  pearson %.7f  spearman %.5f  max|diff|/max|ref| %.2e  "
                     "top patch %s%s" % (m, "x".join(map(str, np.load(mine).shape)), pr, sr,
                                         rel_err(a, b), "same" if a.argmax() == b.argmax()
                                         else "DIFFERS", tgt))
    if lines:
        print("agreement of the maps (%s; same input, target and settings):" % md)
        print("\n".join(lines))


def table(a):
    d = a.target
    rows, targets, setup, failed, headers = {}, {}, {}, [], {}
    for side in ("ours", "torch"):
        for path in sorted(glob.glob(os.path.join(d, side + "-*.txt"))):
            res, info = read_results(path)
            for m, p in res.items():
                rows[(side, m)] = p
                targets[(side, m)] = info.get("target")
                if "header" in info and m != "forward":
                    headers.setdefault(side, info["header"])
                if "SETUP_RSS_KB" in info:
                    setup[m] = info["SETUP_RSS_KB"]
            for m, why in info.get("failed", {}).items():
                failed.append("FAILED %s %s: %s" % (side, m, why))
    print("%-18s | %9s %9s | %8s | %9s %9s | %8s %8s | %9s %9s %6s | %s" % (
        "method", "ours ms", "torch ms", "speed-up", "ours min", "torch min", "ours MiB",
        "torch MiB", "ours cpu", "torch cpu", "cpu x", "interpretdl (registry method)"))
    for m in ORDER:
        o, r = rows.get(("ours", m)), rows.get(("torch", m))
        if o is None and r is None:
            continue
        f = (lambda p, i, fmt: fmt % float(p[i]) if p and len(p) > i and float(p[i]) > 0
             else "%*s" % (len(fmt % 0.0), "n/a"))
        sp = "%7.2fx" % (float(r[3]) / float(o[3])) if o and r else "%8s" % "n/a"
        cpu = "%6s" % ("%5.2fx" % (float(r[9]) / float(o[9]))) if o and r and len(o) > 9 and \
            float(o[9]) > 0 else "%6s" % "n/a"
        rss = lambda p: "%8.0f" % (int(p[8]) / 1024.0) if p and len(p) > 8 and int(p[8]) > 0 \
            else "%8s" % "n/a"  # noqa: E731
        print("%-18s | %s %s | %s | %s %s | %s %s | %s %s %s | %s" % (
            m, f(o, 3, "%9.1f"), f(r, 3, "%9.1f"), sp, f(o, 4, "%9.1f"), f(r, 4, "%9.1f"),
            rss(o), rss(r), f(o, 9, "%9.0f"), f(r, 9, "%9.0f"), cpu,
            OURS.get(m, "- (torch no_grad forward, MHA fast path)")))
    s = min(setup.values()) if setup else None
    print("(median ms of one call, batch 1; speed-up = torch / ours of the medians, > 1: ours "
          "faster; min: the fastest timed run; MiB: each method runs in a process of its own on "
          "each side, its peak RSS%s; cpu: the process's CPU time per timed call, ms, user + "
          "system; cpu x = torch / ours)" % (
              "; the torch processes hold %.0f MiB after their imports and the model build" %
              (s / 1024.0) if s else ""))
    for side in ("ours", "torch"):
        if side in headers:
            print("%s: %s" % (side, headers[side]))
    for ln in failed:
        print(ln)
    agreement(d, targets)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["input", "torch", "table"])
    ap.add_argument("paths", nargs="+", help="input: MODEL_DIR OUT_DIR; torch: X.npy; table: DIR")
    ap.add_argument("--methods", default=",".join(LINES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="", help="folder for each method's map (.npy)")
    ap.add_argument("--full-pass", action="store_true",
                    help="make_attention_explain.Pass for every method (see the header)")
    a = ap.parse_args()
    need = {"input": 2, "torch": 1, "table": 1}[a.what]
    if len(a.paths) != need:
        ap.error("%s takes %d path(s)" % (a.what, need))
    if a.what == "input":
        a.model_dir, a.target = a.paths
        return make_input(a)
    a.target = a.paths[0]
    if a.what == "table":
        table(a)
        return 0
    return bench(a)


if __name__ == "__main__":
    sys.exit(main())
