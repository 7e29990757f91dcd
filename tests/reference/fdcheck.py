"""fdcheck.py — directional-derivative references for models whose reference runtime has no
gradients (ONNX Runtime). Used by make_paddle.py, and by make_small.py so that the committed
fixtures exercise the same check in tests/test_parity.c.

Objective: for each sample b with target t_b, f_b(x) = out[b, t_b] (graph output 0 as it is: for
a model that ends in Softmax this is the probability), i.e. the `logit` objective.

Files:
    dir.npy     float32 (K, N, ...input): seeded random directions, unit L2 norm per (k, b)
    fd.npy      float32 (K, N): central differences (f_b(x + h d) - f_b(x - h d)) / (2h)
    fd_tol.npy  float32 (K, N): allowed |<input gradient of f_b, d_kb> - fd_kb|

How (numerically): the forward used here runs in float64 (onnx.reference on a float64 copy of the
graph, or the float64 PyTorch model), so the difference quotient can use a tiny step, H = 1e-5
along a unit direction: float64 rounding contributes ~1e-16 * |f| / h ~ 1e-11, the truncation
error of a smooth function ~h^2, and crossing a ReLU-type kink within +-h (the one thing that would
spoil it) is improbable at that step; the quotient at 2h is computed too and must agree (their
difference enters the tolerance, and is recorded). A float32 forward (what ONNX Runtime gives)
would need h ~ 1e-2 to beat its rounding, and then crosses kinks: measured on the PaddleOCR
classifier, the three step sizes h/2, h, 2h disagreed by 7% there.

Tolerance: fd_tol_kb = RTOL_DIR * rms_b + 10 * |D(h) - D(2h)|, where rms_b = sqrt(mean_k fd_kb^2)
estimates |gradient_b|_2 / sqrt(n) (for a random unit direction E[<g, d>^2] = |g|^2 / n): the
directional derivative must agree to RTOL_DIR = 1e-3 of the typical size of such projections.
With kink alignment (kinks.txt) our float32 gradient is within ~1e-6 of max|g| of the float64
one, which moves a projection by ~1e-5 of rms_b; a dense gradient error of 1e-3 fails. A random
projection cannot see an error confined to a few elements: that is what the full-gradient
comparisons of the PyTorch cases are for.
"""
import os

import numpy as np

H = 1e-5
K = 3
RTOL_DIR = 1e-3


def _f(forward64, x, targets):
    out = np.asarray(forward64(x), dtype=np.float64)
    out = out.reshape(out.shape[0], -1)
    return out[np.arange(out.shape[0]), targets]


def directional(forward64, x, targets, seed, k=K, h=H):
    """forward64: float64 array (N, ...) -> graph output 0 (N, C), computed in float64.
    Returns dir (K,N,...) float32, fd (K,N) float32, tol (K,N) float32, info dict."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    d = rng.standard_normal((k,) + x.shape)
    norms = np.sqrt((d.reshape(k, n, -1) ** 2).sum(axis=2))
    d = (d / norms.reshape((k, n) + (1,) * (x.ndim - 1))).astype(np.float32)
    x64 = x.astype(np.float64)
    dh = np.zeros((k, n))
    d2h = np.zeros((k, n))
    for j in range(k):
        dj = d[j].astype(np.float64)
        for step, res in ((h, dh), (2 * h, d2h)):
            fp = _f(forward64, x64 + step * dj, targets)
            fm = _f(forward64, x64 - step * dj, targets)
            res[j] = (fp - fm) / (2 * step)
    rms = np.sqrt((dh ** 2).mean(axis=0))  # (n,)
    spread = np.abs(dh - d2h)
    tol = RTOL_DIR * rms[None, :] + 10.0 * spread
    info = {"h": h, "directions": k, "rtol_dir": RTOL_DIR, "fd": dh.tolist(),
            "fd_2h": d2h.tolist(), "rms": rms.tolist(),
            "max_spread_over_rms": float((spread / rms[None, :]).max()),
            "tol": tol.tolist()}
    return d, dh.astype(np.float32), tol.astype(np.float32), info


def save(outdir, d, fd, tol):
    np.save(os.path.join(outdir, "dir.npy"), d)
    np.save(os.path.join(outdir, "fd.npy"), fd)
    np.save(os.path.join(outdir, "fd_tol.npy"), tol)
