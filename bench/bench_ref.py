#!/usr/bin/env python3
"""bench_ref.py — baselines for bench/run_bench.sh, printing the same RESULT lines as
interpretdl-bench:  RESULT <mode> <batch> <median_ms> <min_ms> <max_ms> <first_call_ms> <peak_rss_kb>
(peak_rss_kb: the process's peak resident set so far; run_bench.sh runs one mode and batch per
process, so it is that measurement's peak, imports and model included)

  bench_ref.py ort MODEL.onnx  [--batch 1,8] [--runs N] [--warmup W] [--threads T]
      ONNX Runtime (venv), CPU provider, intra_op_num_threads=T, inter_op 1, default graph
      optimisations; forward only (ONNX Runtime has no gradients).
  bench_ref.py torch NAME      [same options] [--mode fwd,grad]
      PyTorch (Debian's 1.13), torchvision.models.NAME(weights=None) in eval mode (bert_base:
      bert_encoder.py's module, input (N, 128, 768)),
      torch.set_num_threads(T), OMP_WAIT_POLICY=PASSIVE; fwd under torch.no_grad(), grad =
      forward + backward of the argmax probability (softmax) summed over the batch w.r.t. the
      input only (parameters do not require gradients), as interpretdl-bench does.
  bench_ref.py table FILE...   reads RESULT lines of files named ours.txt / ort.txt / torch.txt
      and prints the comparison table (GFLOP/s from --gflop per image forward; grad counts as
      2x forward: the input-gradient convolutions have the forward's multiply-adds; peak RSS
      in MiB where the lines carry it).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def timed(fn, runs, warmup):
    t0 = time.perf_counter()
    fn()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), min(ts), max(ts), first


def report(mode, batch, r):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("  %-5s %5d %11.2f %9.2f %9.2f %14.2f %12d" % ((mode, batch) + r + (rss,)))
    print("RESULT %s %d %.3f %.3f %.3f %.3f %d" % ((mode, batch) + r + (rss,)), flush=True)


def inputs(batch, shape=(3, 224, 224)):
    rng = np.random.default_rng(12345)
    return rng.uniform(-1, 1, (batch,) + shape).astype(np.float32)


def bench_ort(a):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(a.target, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    shape = tuple(sess.get_inputs()[0].shape[1:])  # the sample's shape, as the model fixes it
    print("# onnxruntime %s, %d threads, %d warm-up + %d timed runs, median" % (
        ort.__version__, a.threads, a.warmup, a.runs))
    for b in a.batch:
        x = inputs(b, shape)
        if "fwd" in a.mode:
            report("fwd", b, timed(lambda: sess.run(None, {name: x}), a.runs, a.warmup))


def bench_torch(a):
    import torch
    import torchvision
    torch.set_num_threads(a.threads)
    shape = (3, 224, 224)
    if a.target == "bert_base":
        import bert_encoder
        model, shape = bert_encoder.build(), bert_encoder.shape()
    else:
        model = getattr(torchvision.models, a.target)(weights=None).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    print("# torch %s, %d threads, OMP_WAIT_POLICY=%s, %d warm-up + %d timed runs, median" % (
        torch.__version__, torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"), a.warmup,
        a.runs))
    for b in a.batch:
        x = torch.from_numpy(inputs(b, shape))

        def fwd():
            with torch.no_grad():
                model(x)

        def grad():
            xg = x.clone().requires_grad_(True)
            p = torch.softmax(model(xg), dim=1)
            p.gather(1, p.detach().argmax(dim=1, keepdim=True)).sum().backward()

        if "fwd" in a.mode:
            report("fwd", b, timed(fwd, a.runs, a.warmup))
        if "grad" in a.mode:
            report("grad", b, timed(grad, a.runs, a.warmup))


def read_results(path):
    """{(mode, batch): (median_ms, peak_rss_kb or None, [median_ms of each round])} from a file's
    RESULT lines (several rounds: the median of their medians, the largest RSS), and the machine
    peak in GFLOP/s from its PEAK lines (the largest; None without)."""
    rounds, peak = {}, None
    if os.path.isfile(path):
        for line in open(path):
            p = line.split()
            if len(p) >= 4 and p[0] == "RESULT":
                rounds.setdefault((p[1], int(p[2])), []).append(
                    (float(p[3]), int(p[7]) if len(p) > 7 else None))
            elif len(p) == 2 and p[0] == "PEAK" and float(p[1]) > 0:
                peak = max(peak or 0.0, float(p[1]))
    res = {}
    for k, r in rounds.items():
        rss = [x[1] for x in r if x[1]]
        res[k] = (float(np.median([x[0] for x in r])), max(rss) if rss else None,
                  [x[0] for x in r])
    return res, peak


def table(a):
    runs = {os.path.basename(f).split(".")[0]: read_results(f) for f in a.files}
    ours, peak = runs.get("ours", ({}, None))
    ort, pt = runs.get("ort", ({}, None))[0], runs.get("torch", ({}, None))[0]
    keys = sorted(set(ours) | set(ort) | set(pt), key=lambda k: (k[1], k[0] != "fwd"))

    def ms(d, k):
        return "%9.1f" % d[k][0] if k in d else "%9s" % "n/a"

    def ratio(k, d):
        return "%8.2f" % (ours[k][0] / d[k][0]) if k in ours and k in d else "%8s" % "n/a"

    def gflops(d, k):
        if k not in d:
            return "%7s" % "n/a"
        flop = a.gflop * k[1] * (2 if k[0] == "grad" else 1)
        rate = flop / (d[k][0] / 1e3)
        if peak:
            return "%4.0f %2.0f%%" % (rate, 100 * rate / peak)
        return "%7.1f" % rate

    def mib(d, k):
        return "%6d" % (d[k][1] // 1024) if k in d and d[k][1] else "%6s" % "n/a"

    print("%-5s %5s | %9s %9s %9s | %8s %8s | %7s %7s %7s | %6s %6s %6s" % (
        "mode", "batch", "ours ms", "ORT ms", "torch ms", "ours/ORT", "ours/pt",
        "GF/s us", "GF/s ort", "GF/s pt", "MiB us", "ort", "pt"))
    for k in keys:
        print("%-5s %5d | %s %s %s | %s %s | %s %s %s | %s %s %s" % (
            k[0], k[1], ms(ours, k), ms(ort, k), ms(pt, k), ratio(k, ort), ratio(k, pt),
            gflops(ours, k), gflops(ort, k), gflops(pt, k), mib(ours, k), mib(ort, k),
            mib(pt, k)))
    print("(median ms; ratio < 1: ours faster; GFLOP/s at %.1f GFLOP per image forward, 2x for "
          "forward + input gradient, and %% of the machine's peak%s; peak resident MiB of the "
          "process that ran that line)"
          % (a.gflop, " of %.1f GFLOP/s (FMA probe)" % peak if peak else " (not measured)"))
    for k in keys:  # several rounds (IDL_BENCH_ROUNDS): each round's ratio, ours then the other
        for name, d in (("ORT", ort), ("torch", pt)):
            if k not in ours or k not in d or len(ours[k][2]) < 2:
                continue
            rs = [o / t for o, t in zip(ours[k][2], d[k][2])]
            print("%s %d: ours/%s by round %s (median %.3f; the table's ratio is of the medians)"
                  % (k[0], k[1], name, " ".join("%.3f" % r for r in rs), float(np.median(rs))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ort", "torch", "table"])
    ap.add_argument("target", nargs="?")
    ap.add_argument("files", nargs="*")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="fwd,grad")
    ap.add_argument("--gflop", type=float, default=8.2)
    a = ap.parse_args()
    a.batch = [int(b) for b in a.batch.split(",")]
    if a.what == "table":
        a.files = ([a.target] if a.target else []) + a.files
        table(a)
    elif a.what == "ort":
        bench_ort(a)
    else:
        bench_torch(a)


if __name__ == "__main__":
    main()
