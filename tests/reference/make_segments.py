#!/usr/bin/python3
"""make_segments.py [OUTDIR] [--time] — regenerates the committed superpixel fixtures of
tests/test_segment.c (default OUTDIR: tests/data/segments next to this script's folder). Runs
with Debian's /usr/bin/python3: numpy, Pillow (python3-pil) and scikit-image 0.19.3
(python3-skimage, with its sample photos chelsea, coffee and astronaut); `python3` on PATH may
be another interpreter without them. The test only reads the files; it never runs this.

    /usr/bin/python3 tests/reference/make_segments.py             # rewrite the fixtures
    /usr/bin/python3 tests/reference/make_segments.py --time      # only time skimage's quickshift
                                                                   # on a 224 x 224 photo

Writes (about 300 KB in all):
  images        chelsea.png (96 x 72), coffee.png (96 x 64), astronaut.png (72 x 88): crops of
                the sample photos, downscaled with Pillow's Lanczos filter, 8-bit RGB
  labels        <image>_<case>.npy: int32 H x W label maps of scikit-image, computed on the
                pixels read back from the PNG (uint8, as LIME and InterpretDL pass them):
                  qs_lime        quickshift(img, kernel_size=4, max_dist=200, ratio=0.2)  (the
                                 lime package's segmentation_fn defaults)
                  qs_interpretdl quickshift(img, sigma=1)  (InterpretDL's compute_segments:
                                 ratio 1, kernel_size 5, max_dist 10)
                  slic           slic(img)  (n_segments 100, compactness 10, max_num_iter 10,
                                 sigma 0, enforce_connectivity, Lab)
                  qs_interpretdl_gray (astronaut only) quickshift(gray, sigma=1,
                                 convert2lab=False) on Image.convert("L") of the PNG
                convert2lab and random_seed (42) at their defaults; slic's labels start at 1,
                quickshift's at 0, both as scikit-image returns them
  cases.txt     one line per check: "image method params expected", params as comma-separated
                key=value in idl_segment_params' names, plus channels=1: load the PNG as gray
  meta.json     versions, sources, segment counts, and how much scikit-image's own quickshift
                moves when only its tie-breaking seed changes (adjusted Rand index between
                random_seed 42 and 0..4): the C port cannot replay numpy's noise, so this is the
                agreement to expect
"""
import json
import os
import platform
import sys
import time

import numpy as np
import PIL
import scipy
import skimage
import skimage.data
from PIL import Image
from skimage.segmentation import quickshift, slic

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
OUT = os.path.normpath(ARGS[0] if ARGS else os.path.join(HERE, "..", "data", "segments"))

# name: (sample photo, crop box (left, top, right, bottom), size (width, height))
IMAGES = {
    "chelsea": ("chelsea", (60, 0, 420, 270), (96, 72)),
    "coffee": ("coffee", (0, 0, 600, 400), (96, 64)),
    "astronaut": ("astronaut", (112, 0, 400, 352), (72, 88)),
}
# case: (method, params for cases.txt, call, images it runs on)
CASES = {
    "qs_lime": ("quickshift", "ratio=0.2,kernel_size=4,max_dist=200,sigma=0",
                lambda im, seed=42: quickshift(im, kernel_size=4, max_dist=200, ratio=0.2,
                                               random_seed=seed), tuple(IMAGES)),
    "qs_interpretdl": ("quickshift", "ratio=1,kernel_size=5,max_dist=10,sigma=1",
                       lambda im, seed=42: quickshift(im, sigma=1, random_seed=seed),
                       tuple(IMAGES)),
    "slic": ("slic", "n_segments=100,compactness=10,max_iter=10,sigma=0",
             lambda im, seed=None: slic(im), tuple(IMAGES)),
    # one channel, no Lab: the image as Pillow's convert("L") (ITU-R 601 luma, what the library's
    # loader gives for channels=1); colour distances are then small against positions, so the
    # tie-breaking noise matters more (see the seed agreement in meta.json)
    "qs_interpretdl_gray": ("quickshift", "channels=1,convert2lab=0,ratio=1,kernel_size=5,"
                            "max_dist=10,sigma=1",
                            lambda im, seed=42: quickshift(im, sigma=1, convert2lab=False,
                                                           random_seed=seed), ("astronaut",)),
}


def ari(a, b):
    """Adjusted Rand index (Hubert and Arabie), as sklearn.metrics.adjusted_rand_score."""
    a = np.unique(a.ravel(), return_inverse=True)[1]
    b = np.unique(b.ravel(), return_inverse=True)[1]
    n = a.size
    pairs = np.unique(a.astype(np.int64) * (b.max() + 1) + b, return_counts=True)[1]
    comb = lambda x: (x.astype(np.float64) * (x - 1) / 2).sum()
    s_ij, s_a, s_b = comb(pairs), comb(np.bincount(a)), comb(np.bincount(b))
    expected = s_a * s_b / (n * (n - 1) / 2)
    top = (s_a + s_b) / 2
    return 1.0 if top == expected else float((s_ij - expected) / (top - expected))


def photo(name):
    return Image.fromarray(getattr(skimage.data, name)())


def timing():
    """skimage's quickshift on a 224 x 224 RGB photo (chelsea's centre crop), best of 3."""
    img = np.array(photo("chelsea").crop((113, 38, 337, 262)))
    assert img.shape == (224, 224, 3)
    for case in ("qs_lime", "qs_interpretdl"):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            lab = CASES[case][2](img)
            best = min(best, time.perf_counter() - t)
        print("%-15s 224x224: %.3f s, %d segments" % (case, best, lab.max() + 1))


def main():
    if "--time" in sys.argv[1:]:
        timing()
        return
    os.makedirs(OUT, exist_ok=True)
    lines, counts, seed_ari = [], {}, {}
    for name, (src, box, size) in IMAGES.items():
        png = name + ".png"
        photo(src).crop(box).resize(size, Image.LANCZOS).save(os.path.join(OUT, png))
        with Image.open(os.path.join(OUT, png)) as im:
            img = np.array(im.convert("RGB"))
        assert img.dtype == np.uint8 and img.shape == (size[1], size[0], 3)
        for case, (method, params, call, names) in CASES.items():
            if name not in names:
                continue
            x = img
            if "channels=1" in params:
                with Image.open(os.path.join(OUT, png)) as im:
                    x = np.array(im.convert("L"))
            labels = call(x).astype(np.int32)
            assert labels.shape == img.shape[:2]
            f = "%s_%s.npy" % (name, case)
            np.save(os.path.join(OUT, f), labels)
            lines.append("%s %s %s %s" % (png, method, params, f))
            counts[f] = int(np.unique(labels).size)
            if method == "quickshift":
                seed_ari[f] = [round(ari(labels, call(x, seed)), 4) for seed in range(5)]
    with open(os.path.join(OUT, "cases.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")

    meta = {
        "generator": "tests/reference/make_segments.py",
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__, "Pillow": PIL.__version__,
                     "scikit-image": skimage.__version__},
        "sources": {name + ".png": "skimage.data.%s() crop %s -> %dx%d Lanczos" % (src, box, *size)
                    for name, (src, box, size) in IMAGES.items()},
        "calls": {"qs_lime": "quickshift(img, kernel_size=4, max_dist=200, ratio=0.2)",
                  "qs_interpretdl": "quickshift(img, sigma=1)",
                  "slic": "slic(img)",
                  "qs_interpretdl_gray": "quickshift(gray, sigma=1, convert2lab=False)"},
        "input": "uint8 H x W x 3 as read back from the PNG (img_as_float divides by 255); gray: "
                 "H x W, Image.convert('L') of the PNG",
        "segments": counts,
        "quickshift_ari_seed42_vs_seeds_0_to_4": seed_ari,
    }
    with open(os.path.join(OUT, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, OUT))
    for f, s in seed_ari.items():
        print("%-32s %4d segments; ARI vs other seeds %s" % (f, counts[f], s))


if __name__ == "__main__":
    main()
