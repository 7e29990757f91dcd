#!/usr/bin/python3
"""gen_colormaps.py — writes src/visual/colormaps.c, the 256-entry RGB tables of the colormaps
that visual.c looks up: JET from OpenCV (cv2.applyColorMap(COLORMAP_JET) on the bytes 0..255,
turned from BGR to RGB), and VIRIDIS, INFERNO and BWR from matplotlib (cmap(i, bytes=True) for
i = 0..255, matplotlib's own byte conversion). Run once by hand (Debian python3-opencv and
python3-matplotlib); the build never runs it:
    /usr/bin/python3 src/visual/gen_colormaps.py > src/visual/colormaps.c
"""
import sys

import cv2
import matplotlib
import numpy as np


def table(name, rgb, source):
    lines = [f"/* {source} */", f"const uint8_t idl__cmap_{name}[256][3] = {{"]
    for i in range(0, 256, 4):
        row = " ".join("{ %d, %d, %d }," % tuple(int(c) for c in rgb[j]) for j in range(i, i + 4))
        lines.append("    " + row)
    lines.append("};")
    return "\n".join(lines)


def main():
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    jet = cv2.applyColorMap(ramp, cv2.COLORMAP_JET)[:, 0, ::-1]
    out = [
        "/* colormaps.c — 256-entry RGB tables of the colormaps (data, not code), written by",
        " * src/visual/gen_colormaps.py from OpenCV %s and matplotlib %s. Do not edit by hand. */"
        % (cv2.__version__, matplotlib.__version__),
        '#include "visual/visual_internal.h"',
        "",
        table("jet", jet, "OpenCV COLORMAP_JET, RGB order"),
        "",
    ]
    for name in ("viridis", "inferno", "bwr"):
        cmap = matplotlib.colormaps[name]
        assert cmap.N == 256
        rgb = cmap(np.arange(256), bytes=True)[:, :3]
        out += [table(name, rgb, f"matplotlib '{name}', cmap(i, bytes=True)"), ""]
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
