#!/usr/bin/env bash
# demo.sh [OUTDIR] — installs the build dependencies (Debian 12), builds, and runs the main job on
# the embedded default: `interpretdl demo` explains the predictions of a small CNN trained on
# Fashion-MNIST (data/demo, built into the executable) for its test images with every gradient
# method, and writes OUTDIR/index.html (default out/demo) with the pictures, predictions and
# timings. Then it explains one of those images from its PNG file with an overlay picture.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p "$(dirname "$OUT")"
set -x
./build/interpretdl demo --out "$OUT"
IMG=$(ls data/demo/images/*.png | head -n 1)
./build/interpretdl explain gradcam --model data/demo/fashion_cnn.onnx --input "$IMG" \
    --out "$OUT/gradcam.npy" --overlay "$OUT/gradcam.png" --json "$OUT/gradcam.json"
set +x
echo "open $OUT/index.html"
