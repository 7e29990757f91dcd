#!/usr/bin/env bash
# demo.sh [OUTDIR] — installs the build dependencies (Debian 12), builds, and runs the main job on the
# small CNN the project ships: describe it, run it forward, and take the input gradient of its top
# class. Outputs go to OUTDIR (default out/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p "$OUT"
M=tests/data/parity/small_cnn
set -x
./build/interpretdl info $M/model.onnx
./build/interpretdl run $M/model.onnx --input $M/input.npy --out "$OUT/logits.npy"
./build/interpretdl grad $M/model.onnx --input $M/input.npy --target top1 --objective probability \
    --wrt input --out "$OUT/grad_input.npy"
