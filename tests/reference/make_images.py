#!/usr/bin/python3
"""make_images.py [OUTDIR] — regenerates the committed image fixtures of tests/test_image.c
(default OUTDIR: tests/data/images next to this script's folder). Runs with Debian's
/usr/bin/python3: numpy, Pillow (python3-pil), OpenCV (python3-opencv) and the sample photos of
scikit-image (python3-skimage: chelsea, coffee, astronaut). The test only reads the files; it
never runs this.

Writes (small crops and downscales, about 250 KB in all):
  image files   rgb.png, rgb.jpg (quality 90, 4:2:0), gray.png, gray.jpg, rgba.png, la.png (gray
                + alpha), palette.png (64 colours), rgb16.png and gray16.png (16 bits per sample,
                written by OpenCV)
  decoded       <file>.npy: the pixels as Pillow decodes them (uint8, H x W x C; gray H x W x 1),
                la.png as RGBA (gray replicated), palette.png as RGB, the 16-bit files as the high
                byte of each sample (numpy >> 8; Pillow would clip, not scale, 16-bit gray)
                rgb_luma.npy: Pillow's convert("L") of rgb.png
  resize        resize_*.npy and resize.txt, one line per case: "source mode width height file";
                linear / nearest = cv2.resize(INTER_LINEAR / INTER_NEAREST) on the decoded
                pixels, antialias = PIL.Image.resize(size, Image.BILINEAR)
  pipeline      pipeline.npy: InterpretDL's read_image on rgb.png with target 64 and crop 56
                (data_processor/readers.py: Pillow decode, convert("RGB"), short side to 64 with
                cv2.resize's default INTER_LINEAR, new size int(round(w * 64 / min(h, w))) with
                Python 3 round, centre crop 56 from (size - 56) // 2), then preprocess_image:
                NCHW float32, / 255, minus the ImageNet mean, over the ImageNet std;
                pipeline_shown.npy: the 8-bit 56 x 56 x 3 crop
  meta.json     versions and the settings above
"""
import json
import os
import sys

import cv2
import numpy as np
import PIL
import skimage
import skimage.data
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(HERE, "..", "data", "images"))
os.makedirs(OUT, exist_ok=True)
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def path(name):
    return os.path.join(OUT, name)


def save_npy(name, a):
    np.save(path(name), np.ascontiguousarray(a))


def decoded(name):
    """Pillow's pixels of a written file, H x W x C uint8."""
    with Image.open(path(name)) as im:
        im.load()
        mode = im.mode
        if mode in ("P", "PA"):
            im = im.convert("RGB")
        elif mode == "LA":
            im = im.convert("RGBA")
        a = np.array(im)
    if a.ndim == 2:
        a = a[:, :, None]
    assert a.dtype == np.uint8, (name, mode, a.dtype)
    return a


def main():
    chelsea = Image.fromarray(skimage.data.chelsea())
    coffee = Image.fromarray(skimage.data.coffee())
    astronaut = Image.fromarray(skimage.data.astronaut())

    # sources: the cat's face, a coffee cup in gray, the astronaut with an alpha ramp
    rgb = chelsea.crop((110, 20, 350, 200)).resize((80, 60), Image.LANCZOS)
    rgb.save(path("rgb.png"))
    rgb.save(path("rgb.jpg"), quality=90)
    gray = coffee.convert("L").crop((60, 20, 540, 380)).resize((64, 48), Image.LANCZOS)
    gray.save(path("gray.png"))
    gray.save(path("gray.jpg"), quality=90)
    a = np.array(astronaut.resize((48, 48), Image.LANCZOS))
    yy, xx = np.mgrid[0:48, 0:48]
    alpha = np.clip(255 - 3 * np.hypot(yy - 20, xx - 24), 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([a, alpha]), "RGBA").save(path("rgba.png"))
    g = np.array(gray.resize((32, 24), Image.LANCZOS))
    Image.fromarray(np.dstack([g, alpha[:24, :32]]), "LA").save(path("la.png"))
    rgb.resize((40, 30), Image.LANCZOS).quantize(64).save(path("palette.png"))
    rng = np.random.default_rng(7)
    small = np.array(rgb.resize((32, 24), Image.LANCZOS)).astype(np.uint16)
    rgb16 = small * 256 + rng.integers(0, 256, small.shape, dtype=np.uint16)
    cv2.imwrite(path("rgb16.png"), rgb16[:, :, ::-1])  # OpenCV writes BGR
    gray16 = (np.array(gray.resize((20, 16), Image.LANCZOS)).astype(np.uint16) * 256 +
              rng.integers(0, 256, (16, 20), dtype=np.uint16))
    cv2.imwrite(path("gray16.png"), gray16)

    for name in ("rgb.png", "rgb.jpg", "gray.png", "gray.jpg", "rgba.png", "la.png",
                 "palette.png"):
        save_npy(name + ".npy", decoded(name))
    # the 16-bit files: check that OpenCV wrote what was asked, then keep the high bytes
    back = cv2.imread(path("rgb16.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back[:, :, ::-1], rgb16)
    back = cv2.imread(path("gray16.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, gray16)
    save_npy("rgb16.png.npy", (rgb16 >> 8).astype(np.uint8))
    save_npy("gray16.png.npy", (gray16 >> 8).astype(np.uint8)[:, :, None])
    with Image.open(path("rgb.png")) as im:
        save_npy("rgb_luma.npy", np.array(im.convert("L"))[:, :, None])

    # resizing
    cases = [  # source, mode, width, height
        ("rgb.png", "linear", 101, 77),   # up, non-integer ratios
        ("rgb.png", "linear", 41, 29),    # down
        ("rgb.png", "linear", 130, 40),   # up in x, down in y
        ("rgb.png", "linear", 40, 30),    # exactly 1/2: OpenCV takes its INTER_AREA path
        ("rgb.png", "linear", 7, 5),      # strong downscale (no antialias)
        ("gray.png", "linear", 37, 91),   # one channel, down in x, up in y
        ("rgba.png", "linear", 61, 35),   # four channels
        ("rgb.png", "nearest", 89, 67),
        ("rgb.png", "nearest", 41, 29),
        ("gray.png", "nearest", 150, 20),
        ("rgb.png", "antialias", 17, 13),  # strong downscale: wide triangle
        ("rgb.png", "antialias", 61, 45),
        ("rgb.png", "antialias", 89, 67),  # upscale: plain bilinear
        ("gray.png", "antialias", 20, 9),
        ("gray.png", "antialias", 64, 11),  # height only
    ]
    lines = []
    for src, mode, w, h in cases:
        px = decoded(src)
        if mode == "antialias":
            with Image.open(path(src)) as im:
                assert im.mode in ("RGB", "L")
                r = np.array(im.resize((w, h), Image.BILINEAR))
        else:
            interp = cv2.INTER_LINEAR if mode == "linear" else cv2.INTER_NEAREST
            r = cv2.resize(px, (w, h), interpolation=interp)
        if r.ndim == 2:
            r = r[:, :, None]
        assert r.shape == (h, w, px.shape[2]), (src, mode, r.shape)
        f = "resize_%s_%s_%dx%d.npy" % (src.split(".")[0], mode, w, h)
        save_npy(f, r)
        lines.append("%s %s %d %d %s" % (src, mode, w, h, f))
    with open(path("resize.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")

    # InterpretDL's pipeline (data_processor/readers.py: read_image, resize_short, crop_image,
    # preprocess_image)
    target, crop = 64, 56
    with open(path("rgb.png"), "rb") as fh:
        img = np.array(Image.open(fh).convert("RGB"))
    percent = float(target) / min(img.shape[0], img.shape[1])
    rw = int(round(img.shape[1] * percent))
    rh = int(round(img.shape[0] * percent))
    img = cv2.resize(img, (rw, rh))
    h, w = img.shape[:2]
    ws, hs = (w - crop) // 2, (h - crop) // 2
    img = img[hs:hs + crop, ws:ws + crop, :]
    save_npy("pipeline_shown.npy", img)
    x = np.transpose(img[None], (0, 3, 1, 2)).astype("float32") / 255.0
    x -= MEAN.reshape((3, 1, 1))
    x /= STD.reshape((3, 1, 1))
    assert x.dtype == np.float32 and x.shape == (1, 3, crop, crop)
    save_npy("pipeline.npy", x)

    meta = {
        "generator": "tests/reference/make_images.py",
        "versions": {"numpy": np.__version__, "Pillow": PIL.__version__,
                     "opencv": cv2.__version__, "scikit-image": skimage.__version__},
        "sources": {"rgb": "skimage chelsea crop (110, 20, 350, 200) -> 80x60 Lanczos",
                    "gray": "skimage coffee L crop (60, 20, 540, 380) -> 64x48 Lanczos",
                    "rgba": "skimage astronaut -> 48x48 Lanczos + radial alpha"},
        "pipeline": {"source": "rgb.png", "resize_short": target, "resized": [rw, rh],
                     "crop": crop, "mean": MEAN.tolist(), "std": STD.tolist(),
                     "layout": "NCHW"},
        # Python 3 round() halves to even: the short side 128 -> 64 of a 181-wide image
        "round_half_even": {"w": 181, "h": 128, "target": 64,
                            "new_w": int(round(181 * (64.0 / 128)))},
        "resize_cases": len(cases),
    }
    assert meta["round_half_even"]["new_w"] == 90
    with open(path("meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, OUT))


if __name__ == "__main__":
    main()
