#!/usr/bin/python3
"""make_visual.py [OUTDIR] — regenerates the committed fixtures of tests/test_visual.c (default
OUTDIR: tests/data/visual next to this script's folder), about 110 KB. Runs with Debian's
/usr/bin/python3: numpy, OpenCV (python3-opencv), matplotlib (python3-matplotlib). The test only
reads the files; it never runs this.

InterpretDL's visualiser (interpretdl/data_processor/visualizer.py) is written out again below
from its description (the formulas of ALGORITHMS.md section 3), with numpy's own types: maps are
float32, numpy.percentile is numpy's, cv2.resize(x, (W, H)) is OpenCV's INTER_LINEAR on float32,
and a uint8 picture times a Python float is float64 before np.uint8 truncates it.

Writes:
  cmap_values.npy        float32 values in [0, 1] (edges, halves, byte boundaries, random)
  cmap_<name>.npy        (K, 3) uint8 colours of those values: jet = cv2.applyColorMap(
                         np.uint8(255 * v), COLORMAP_JET) turned to RGB (InterpretDL's _heatmap);
                         viridis, inferno, bwr = matplotlib.colormaps[name](v, bytes=True)
  attr.npy               (2, 3, 4, 5) float32 attribution; attr_<reduce>.npy: sample 1 reduced
                         over the channels by np.abs(a).sum(0), a.sum(0), np.abs(a).max(0)
  resize<k>_src.npy,     float32 maps and cv2.resize(src, (W, H)) (INTER_LINEAR), including
  resize<k>_dst.npy      exact halves (OpenCV's INTER_AREA switch), single rows and columns
  <case>_image.npy       (H, W, C) uint8 image (C = 1, 3 or 4); <case>_map.npy: (h, w) float32
  <case>_<style>.npy     (H, W, 3) uint8 expected overlay:
      heatmap            InterpretDL overlay_heatmap: min-max, resize, np.uint8(255 x), JET, BGR
                         to RGB, np.uint8(0.4 heat + 0.6 image)
      heatmap_viridis    the same with matplotlib's viridis (bytes=True) for the colours
      heatmap_a07        JET with the weights 0.7 and 1 - 0.7
      grayscale          InterpretDL overlay_grayscale on the map resized to the image first:
                         clip((e - min) / (P99 - min), 0, 1) * 255 to uint8 in the green channel,
                         np.uint8(0.4 overlay + 0.6 image)
      threshold          InterpretDL overlay_threshold on (resized map > 0): 255 * mask in green,
                         np.uint8(0.6 overlay + 0.4 image)
      signed             s = map / max|map| (float32), resized, bwr(0.5 + 0.5 s, bytes=True),
                         np.uint8(0.4 colour + 0.6 image)
  The image is used as RGB: gray replicated, alpha dropped.
Cases: a: 8 x 10 RGB image, 5 x 6 signed map (upscale); b: 8 x 10 gray, 8 x 10 map (no resize,
InterpretDL's own setting for gradients); c: 6 x 6 RGBA, 12 x 12 map (the INTER_AREA half; the
percentile's upper branch, gamma >= 0.5); d: 48 x 56 RGB, 7 x 7 ReLU'd CAM-like map; e: 12 x 12
RGB, a map with one positive pixel (P99 equals the minimum: 0 / 0 and x / 0 in the grayscale).
"""
import os
import sys
import warnings

import cv2
import matplotlib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(HERE, "..", "data", "visual"))
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20240607)


def save(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a))


def jet(x_u8):
    return cv2.cvtColor(cv2.applyColorMap(x_u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def mpl(name, v):
    return matplotlib.colormaps[name](v, bytes=True)[..., :3]


def resize(e, w, h):
    return cv2.resize(e.astype(np.float32), (w, h))


def as_rgb(img):
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return img[:, :, :3]


# --- InterpretDL's visualiser, from its formulas --------------------------------------------

def normalized_heat(e, w, h):
    x = e.astype(np.float32)
    x = (x - x.min()) / (x.max() - x.min())
    return cv2.resize(x, (w, h))


def overlay_heatmap(img, e, weight=0.4, colors="jet"):
    h, w = img.shape[:2]
    x = normalized_heat(e, w, h)
    heat = jet(np.uint8(255 * x)) if colors == "jet" else mpl(colors, x)
    # InterpretDL writes x * 0.4 + image * 0.6; 1 - 0.4 is exactly the double 0.6
    return np.uint8(heat * weight + img * (1 - weight))


def grayscale(e, percentile=99):
    vmin = np.min(e)
    vmax = np.percentile(e, percentile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (np.clip((e - vmin) / (vmax - vmin), 0, 1) * 255).astype(np.uint8)


def overlay_grayscale(img, e):
    h, w = img.shape[:2]
    x = grayscale(resize(e, w, h))
    overlay = np.zeros_like(img, dtype=np.uint8)
    overlay[:, :, 1] = x
    return np.uint8(overlay * 0.4 + img * 0.6)


def overlay_threshold(img, e):
    h, w = img.shape[:2]
    mask = (resize(e, w, h) > 0).astype(np.uint8)
    overlay = np.zeros_like(img, dtype=np.uint8)
    overlay[:, :, 1] = mask * 255
    return np.uint8(overlay * 0.6 + img * 0.4)


def overlay_signed(img, e):
    h, w = img.shape[:2]
    e = e.astype(np.float32)
    s = e / np.abs(e).max()
    t = np.float32(0.5) + np.float32(0.5) * resize(s, w, h)
    return np.uint8(mpl("bwr", t) * 0.4 + img * 0.6)


# --- colormaps ----------------------------------------------------------------------------

def colormaps():
    fixed = [0.0, 1.0, 0.5, np.nextafter(np.float32(0.5), np.float32(0)), 0.25, 0.75,
             1 / 255, 2 / 255, 254 / 255, 1 / 256, 255 / 256, np.nextafter(np.float32(1), 0),
             1e-7, 0.1, 0.3, 0.7, 0.9, 0.333, 0.666]
    v = np.concatenate([np.array(fixed, np.float32),
                        (np.arange(256, dtype=np.float32) + 0.5) / 256,
                        np.arange(256, dtype=np.float32) / 255,
                        rng.random(100, dtype=np.float32)]).astype(np.float32)
    save("cmap_values.npy", v)
    save("cmap_jet.npy", jet(np.uint8(255 * v).reshape(-1, 1))[:, 0, :])
    for name in ("viridis", "inferno", "bwr"):
        save(f"cmap_{name}.npy", mpl(name, v))


def attribution():
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    save("attr.npy", a)
    save("attr_abs_sum.npy", np.abs(a[1]).sum(0))
    save("attr_sum.npy", a[1].sum(0))
    save("attr_max_abs.npy", np.abs(a[1]).max(0))


def resizes():
    pairs = [((5, 6), (8, 10)), ((7, 7), (48, 56)), ((12, 12), (6, 6)), ((16, 20), (8, 10)),
             ((14, 26), (7, 13)), ((9, 13), (4, 5)), ((1, 1), (3, 4)), ((1, 5), (4, 9)),
             ((6, 1), (11, 3)), ((40, 30), (7, 11)), ((3, 4), (3, 4)), ((10, 10), (10, 3))]
    for k, ((sh, sw), (dh, dw)) in enumerate(pairs):
        src = rng.standard_normal((sh, sw)).astype(np.float32)
        if k % 2:
            src = (src - src.min()) / (src.max() - src.min())
        save(f"resize{k}_src.npy", src)
        save(f"resize{k}_dst.npy", resize(src, dw, dh))
    return len(pairs)


def cases():
    def img(h, w, c):
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)

    cam = np.maximum(rng.standard_normal((7, 7)).astype(np.float32) + 0.3, 0)
    sparse = np.zeros((12, 12), np.float32)
    sparse[4, 7] = 2.5
    out = {
        "a": (img(8, 10, 3), rng.standard_normal((5, 6)).astype(np.float32)),
        "b": (img(8, 10, 1), rng.standard_normal((8, 10)).astype(np.float32)),
        "c": (img(6, 6, 4), rng.standard_normal((12, 12)).astype(np.float32)),
        "d": (img(48, 56, 3), cam),
        "e": (img(12, 12, 3), sparse),
    }
    for name, (image, e) in out.items():
        save(f"{name}_image.npy", image)
        save(f"{name}_map.npy", e)
        rgb = as_rgb(image)
        save(f"{name}_heatmap.npy", overlay_heatmap(rgb, e))
        save(f"{name}_heatmap_viridis.npy", overlay_heatmap(rgb, e, colors="viridis"))
        save(f"{name}_heatmap_a07.npy", overlay_heatmap(rgb, e, weight=0.7))
        save(f"{name}_grayscale.npy", overlay_grayscale(rgb, e))
        save(f"{name}_threshold.npy", overlay_threshold(rgb, e))
        save(f"{name}_signed.npy", overlay_signed(rgb, e))


def main():
    colormaps()
    attribution()
    n = resizes()
    cases()
    with open(os.path.join(OUT, "meta.txt"), "w") as f:
        f.write(f"numpy {np.__version__}, opencv {cv2.__version__}, "
                f"matplotlib {matplotlib.__version__}; {n} resize pairs; cases a b c d e\n")


if __name__ == "__main__":
    main()
