#!/usr/bin/python3
"""make_small.py [OUTDIR] — regenerates the small committed parity fixtures (default OUTDIR:
tests/data/parity next to this script's folder). Runs with Debian's /usr/bin/python3 (torch 1.13,
onnx, numpy). The parity test only reads the files; it never runs this.

Two tiny CNNs with random weights (seeded) and calibrated BatchNorm statistics, batch 2, with the
same files as make_torchvision.py writes (model.onnx, input.npy, logits.npy, targets.npy,
grad_logit.npy, grad_probability.npy, kinks.txt, meta.json; references in float64):
  small_cnn      3x32x32, opset 13, TrainingMode.EVAL (Conv+BN fused by the exporter):
                 Conv/Relu, MaxPool 2x2, a residual block (Add), AveragePool, depthwise (group)
                 Conv + 1x1 Conv with ReLU6 (Relu + Clip), GlobalAveragePool, Flatten, Gemm
  small_cnn_bn   1x28x28, opset 11, TrainingMode.PRESERVE (BatchNormalization nodes kept):
                 5x5 Conv + BN + hardswish (HardSigmoid * x at opset 11), overlapping padded
                 MaxPool 3x3/2, Conv + BN + LeakyRelu, a squeeze-excitation gate
                 (GlobalAveragePool, 1x1 Convs, Relu, HardSigmoid, Mul), Flatten, Gemm, Relu,
                 Gemm. Also dir.npy / fd.npy / fd_tol.npy (fdcheck.py) from float64 PyTorch
                 forwards, so that the committed fixtures cover the directional check used for
                 the ONNX Runtime cases.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fdcheck  # noqa: E402
import make_torchvision as mt  # noqa: E402


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(True))
        self.pool1 = nn.MaxPool2d(2)
        self.c2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(True))
        self.r1 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                nn.ReLU(True), nn.Conv2d(16, 16, 3, padding=1, bias=False),
                                nn.BatchNorm2d(16))
        self.pool2 = nn.AvgPool2d(2)
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False),
                                nn.BatchNorm2d(16), nn.ReLU6(True),
                                nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32),
                                nn.ReLU6(True))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.c2(self.pool1(self.c1(x)))
        x = F.relu(x + self.r1(x))
        x = self.dw(self.pool2(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class SmallCNNBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.Hardswish())
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.c2 = nn.Sequential(nn.Conv2d(6, 12, 3), nn.BatchNorm2d(12), nn.LeakyReLU(0.1))
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(12, 4, 1), nn.ReLU(),
                                nn.Conv2d(4, 12, 1), nn.Hardsigmoid())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(12 * 12 * 12, 32), nn.ReLU(),
                                  nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x):
        x = self.c2(self.pool(self.c1(x)))
        return self.head(x * self.se(x))


CASES = {
    # name: (constructor, input shape without batch, opset, export mode, FD check)
    "small_cnn": (SmallCNN, (3, 32, 32), 13, "eval", False),
    "small_cnn_bn": (SmallCNNBN, (1, 28, 28), 11, "preserve", True),
}


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "data", "parity")
    torch.use_deterministic_algorithms(True)
    t_all = time.time()
    for name, (ctor, shape, opset, mode, fd) in CASES.items():
        t0 = time.time()
        seed = mt.seed_of(name)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = ctor()
        n_bn = mt.calibrate_bn(model, gen, lambda g: torch.randn((8,) + shape, generator=g))
        x = torch.randn((mt.BATCH,) + shape, generator=gen)
        meta = {"source": "tests/reference/make_small.py:%s" % ctor.__name__, "seed": seed,
                "batchnorm_layers_calibrated": n_bn}
        d = os.path.join(outdir, name)
        targets = mt.write_reference(model, x, gen, d, opset, mode, meta, t0)
        if fd:
            m64 = copy.deepcopy(model).double()

            def forward64(xn):
                with torch.no_grad():
                    return m64(torch.from_numpy(xn)).numpy()
            dvec, fdv, tol, info = fdcheck.directional(forward64, x.numpy(), targets.numpy(), seed)
            fdcheck.save(d, dvec, fdv, tol)
            # the exact directional derivatives, from the float64 gradient, for the record
            g = np.load(os.path.join(d, "grad_logit.npy")).astype(np.float64)
            exact = (g[None] * dvec.astype(np.float64)).reshape(fdv.shape + (-1,)).sum(axis=2)
            info["exact_from_fp64_grad"] = exact.tolist()
            info["max_abs_err_fd_vs_exact_over_tol"] = float((np.abs(exact - fdv) / tol).max())
            meta = json.load(open(os.path.join(d, "meta.json")))
            meta["fdcheck"] = info
            with open(os.path.join(d, "meta.json"), "w") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
            print("  directional: fd %s, |fd - exact| / tol <= %.2g" % (
                np.array2string(fdv.reshape(-1), precision=5),
                info["max_abs_err_fd_vs_exact_over_tol"]))
    sizes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(outdir) for f in fs)
    print("make_small: %d cases in %.1fs, %d bytes -> %s" % (len(CASES), time.time() - t_all,
                                                           sizes, outdir))


if __name__ == "__main__":
    main()
