#!/usr/bin/env python3
"""process_ref.py — whole processes, as a user runs them: `interpretdl run MODEL --input x.npy
--out y.npy` against a Python process that loads the same ONNX file into ONNX Runtime and runs it
on the same input (interpreter start, imports, session creation and its graph optimisations
included, as interpretdl's loading and planning are). Called by bench/run_process_bench.sh.

  process_ref.py BUILD_DIR [--models resnet50,vit_b_16] [--batch 8] [--runs 5] [--threads 2]
      For each model (BUILD_DIR/models/NAME/model.onnx), `runs` rounds of ours then ONNX Runtime
      in turn, each a fresh process with OMP_NUM_THREADS=threads and OMP_WAIT_POLICY=PASSIVE;
      prints the median wall time of each, their ratio, the largest peak RSS of each (os.wait4),
      the time ONNX Runtime spent inside its process on session creation and on the run, and
      the largest difference of the outputs. Inputs and outputs: BUILD_DIR/bench/results/process/.
  process_ref.py ort-run MODEL.onnx X.npy OUT.npy THREADS
      The ONNX Runtime process itself (CPU provider, intra_op THREADS, inter_op 1, default graph
      optimisations); prints "INSIDE <session_ms> <run_ms>".
"""
import os
import subprocess
import sys
import time

import numpy as np


def ort_run(model, x_path, out_path, threads):
    import onnxruntime as ort
    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    t1 = time.perf_counter()
    x = np.load(x_path)
    y = s.run(None, {s.get_inputs()[0].name: x})[0]
    t2 = time.perf_counter()
    np.save(out_path, y)
    print("INSIDE %.3f %.3f" % ((t1 - t0) * 1e3, (t2 - t1) * 1e3), flush=True)


def timed(cmd, env):
    """(wall ms, peak RSS KiB, stdout) of one whole process"""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE)
    out = p.stdout.read()
    p.stdout.close()
    _, status, ru = os.wait4(p.pid, 0)
    ms = (time.perf_counter() - t0) * 1e3
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("process_ref: %s failed (exit %d)" % (" ".join(cmd), os.waitstatus_to_exitcode(status)))
    return ms, ru.ru_maxrss, out.decode()


def main():
    import argparse
    a = argparse.ArgumentParser()
    a.add_argument("build")
    a.add_argument("--models", default="resnet50,vit_b_16")
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--runs", type=int, default=5)
    a.add_argument("--threads", type=int, default=2)
    a = a.parse_args()
    build = os.path.abspath(a.build)
    out = os.path.join(build, "bench", "results", "process")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OMP_WAIT_POLICY="PASSIVE")
    x = os.path.join(out, "x%d.npy" % a.batch)
    np.save(x, np.random.default_rng(12345).uniform(0, 1, (a.batch, 3, 224, 224)).astype(np.float32))
    print("# whole processes, batch %d, %d threads, %d rounds of ours then ONNX Runtime in turn "
          "(median), load %s" % (a.batch, a.threads, a.runs, open("/proc/loadavg").read().split()[0]))
    print("%-10s | %9s %9s %9s | %8s %8s | %10s %8s | %s" % (
        "model", "ours ms", "ORT ms", "ours/ORT", "ours MiB", "ORT MiB", "ORT session", "ORT run",
        "max|diff|/max|ORT|"))
    for model in a.models.split(","):
        onnx = os.path.join(build, "models", model, "model.onnx")
        if not os.path.isfile(onnx):
            print("%-10s | missing %s" % (model, onnx))
            continue
        yo, yr = os.path.join(out, model + ".ours.npy"), os.path.join(out, model + ".ort.npy")
        ours, ort, inside = [], [], []
        for _ in range(a.runs):
            ours.append(timed([os.path.join(build, "interpretdl"), "run", onnx, "--input", x,
                               "--out", yo, "--threads", str(a.threads)], env))
            r = timed([sys.executable, os.path.abspath(__file__), "ort-run", onnx, x, yr,
                       str(a.threads)], env)
            ort.append(r)
            inside.append([float(v) for v in r[2].split("INSIDE")[1].split()[:2]])
        mo, mr = np.median([r[0] for r in ours]), np.median([r[0] for r in ort])
        ref = np.load(yr).astype(np.float64)
        print("%-10s | %9.1f %9.1f %9.3f | %8.0f %8.0f | %8.1f ms %5.1f ms | %.2e" % (
            model, mo, mr, mo / mr, max(r[1] for r in ours) / 1024, max(r[1] for r in ort) / 1024,
            np.median([i[0] for i in inside]), np.median([i[1] for i in inside]),
            np.abs(np.load(yo) - ref).max() / np.abs(ref).max()), flush=True)
    print("(ours: a whole `interpretdl run` process, loading and planning included; ORT: a whole "
          "Python process, interpreter and imports included; ORT session / run: the part of its "
          "process spent creating the session and running it, medians)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ort-run":
        ort_run(*sys.argv[2:6])
    else:
        main()
