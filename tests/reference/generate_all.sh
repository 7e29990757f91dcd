#!/usr/bin/env bash
# generate_all.sh BUILD_DIR — writes every generated parity case into BUILD_DIR/models, for
#   ctest with -DIDL_PARITY_MODELS=BUILD_DIR/models (test_parity_models), or by hand:
#   BUILD_DIR/tests/test_parity BUILD_DIR/models
# Steps: the venv (setup_venv.sh; IDL_VENV overrides its place, default BUILD_DIR/venv), the
# torchvision models with Debian's /usr/bin/python3 (make_torchvision.py), the Paddle / ONNX
# Runtime models with the venv (make_paddle.py), the transformers (make_transformers.py) and the
# attention-method references on two of them in BUILD_DIR/models/explain
# (make_attention_explain.py --generated, for ctest test_explain_generated). Skips the work when
# BUILD_DIR/models was made by the same generator scripts (stamp = hash of tests/reference/*.py);
# IDL_REGEN=1 forces it. Takes about 3 minutes on 2 cores for the CNNs (plus the venv's first
# install), ~5 more for the transformers and the attention references; ~1.6 GB.
set -euo pipefail

BUILD=${1:?usage: generate_all.sh BUILD_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYSPY=${IDL_SYSTEM_PYTHON:-/usr/bin/python3}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
VENV=${IDL_VENV:-$BUILD/venv}
OUT=$BUILD/models
export OMP_WAIT_POLICY=PASSIVE

stamp=$(cat "$HERE"/*.py "$HERE"/*.sh | sha256sum | cut -d' ' -f1)
if [ "${IDL_REGEN:-0}" != 1 ] && [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ]; then
    echo "generate_all: $OUT is up to date (IDL_REGEN=1 to redo)"
    exit 0
fi

t0=$(date +%s)
"$HERE/setup_venv.sh" "$VENV"
t1=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
"$SYSPY" "$HERE/make_torchvision.py" "$OUT"
t2=$(date +%s)
"$VENV/bin/python" "$HERE/make_paddle.py" "$OUT"
"$VENV/bin/python" "$HERE/make_transformers.py" "$OUT" --hf-site "$BUILD/hf-site"
# attention-method references (rollout, generic_attention, tam, bt, attention_gradcam) for
# vit_grid12 and vit_b_16 in $OUT/explain (links to their model.onnx / input.npy / targets.npy)
"$VENV/bin/python" "$HERE/make_attention_explain.py" --generated "$OUT"
# the demo's ImageNet model (tests/test_demo.sh then checks the demo's ImageNet section); not
# fatal: without the network the demo and its test leave that part out and say so
"$SYSPY" "$HERE/../../scripts/make_imagenet_model.py" --out "$BUILD/demo-models/efficientnet_lite0" ||
    echo "generate_all: the demo's ImageNet model was not made (test_demo skips its ImageNet part)"
t3=$(date +%s)
echo "$stamp" >"$OUT/.stamp"
echo "generate_all: venv $((t1 - t0)) s, torchvision $((t2 - t1)) s, paddle/ORT $((t3 - t2)) s -> $OUT ($(du -sh "$OUT" | cut -f1))"
