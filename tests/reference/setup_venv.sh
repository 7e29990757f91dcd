#!/usr/bin/env bash
# setup_venv.sh VENV — creates (or completes) the Python virtual environment used by the reference
# generators in tests/reference/. Idempotent: a venv whose pinned packages are already installed is
# left alone (the check is a stamp file holding this script's pin list).
#
# The venv is made from the Debian interpreter with --system-site-packages so that Debian's
# PyTorch 1.13 / torchvision 0.14 / numpy 1.24 / protobuf 3.21 stay visible (apt packages
# python3-torch python3-torchvision python3-numpy python3-onnx). Only what Debian lacks comes from
# PyPI, pinned exactly (the whole resolved set, so nothing drifts), and numpy/protobuf are
# constrained to Debian's versions so pip never shadows them with versions torch 1.13 cannot use.
#
#   onnxruntime 1.26.0          forward references for the Paddle models, and the benchmark baseline
#   paddlepaddle 3.3.1          a Paddle vision model with random weights
#   paddle2onnx 2.1.0           its ONNX export (paddle.jit.save + paddle2onnx.export)
#   rapidocr-onnxruntime 1.4.4  ships the pretrained PaddleOCR text-direction classifier
#                               (installed --no-deps: only its .onnx files are used, so opencv etc.
#                               are not needed)
#   captum 0.7.0, grad-cam 1.5.5 (pytorch_grad_cam), ttach 0.0.3
#                               independent references for the explanation methods
#                               (make_explain.py), installed --no-deps so that pip brings no second
#                               torch/numpy/opencv wheel. What they import at module level comes
#                               from Debian (scripts/install_deps.sh --test): captum.attr imports
#                               matplotlib (its visualization module); pytorch_grad_cam imports
#                               cv2 (python3-opencv), matplotlib, sklearn (KernelPCA, NMF; pulls
#                               scipy, joblib, threadpoolctl), tqdm, PIL, torchvision and ttach.
#   lime 0.2.0.1                LIME's own surrogate fit, the reference of make_perturb.py
#                               (lime_image's data_labels + LimeBase.explain_instance_with_data),
#                               also --no-deps: it imports numpy, scipy, sklearn (Ridge,
#                               pairwise_distances), scikit-image (python3-skimage: segmentation,
#                               color), matplotlib and tqdm, all Debian's.
#   quantus 0.6.0               make_evaluate.py's metric references, --no-deps (+ python3-pandas)
#   interpretdl 0.8.0           make_evaluate_interpretdl.py runs its evaluators, --no-deps (cv2,
#                               PIL, sklearn, paddle; its evaluator modules are imported without
#                               the package __init__, which needs IPython)
set -euo pipefail

VENV=${1:?usage: setup_venv.sh VENV}
PY=${IDL_SYSTEM_PYTHON:-/usr/bin/python3}

PINS="onnxruntime==1.26.0 paddlepaddle==3.3.1 paddle2onnx==2.1.0 \
onnx==1.17.0 onnxoptimizer==0.3.13 polygraphy==0.53.6 safetensors==0.8.0 flatbuffers==25.12.19 \
opt-einsum==3.3.0 httpx==0.28.1 httpcore==1.0.9 h11==0.16.0 anyio==4.16.0 networkx==3.6.1 \
packaging==26.4 typing_extensions==4.16.0"
NODEPS="rapidocr-onnxruntime==1.4.4 captum==0.7.0 grad-cam==1.5.5 ttach==0.0.3 lime==0.2.0.1 quantus==0.6.0 interpretdl==0.8.0"
STAMP_TEXT="$PINS | $NODEPS"

# Only the pinned packages may live in the venv. Anything else is removed: in particular a numpy 2
# wheel (torch 1.13 is built against Debian's numpy 1.x) and what paddle2onnx's default optimiser,
# Polygraphy, pip-installs at run time (onnx_graphsurgeon, numpy 2, ml_dtypes; make_paddle.py
# never takes that path, but an interactive paddle.onnx.export does).
prune_venv() {
    local site extra
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # shellcheck disable=SC2086
    extra=$("$VENV/bin/python" - "$site" $PINS $NODEPS <<'PYEOF'
import sys, importlib.metadata as md
site, pins = sys.argv[1], sys.argv[2:]
norm = lambda n: n.lower().replace("_", "-")
allowed = {norm(p.split("==")[0]) for p in pins} | {"pip", "setuptools"}
names = {norm(d.metadata["Name"]) for d in md.distributions(path=[site])}
print(" ".join(sorted(names - allowed)))
PYEOF
)
    if [ -n "$extra" ]; then
        echo "setup_venv: removing packages that are not pinned: $extra" >&2
        # shellcheck disable=SC2086
        "$VENV/bin/pip" uninstall -q -y $extra
    fi
}

if [ -f "$VENV/.idl_stamp" ] && [ "$(cat "$VENV/.idl_stamp")" = "$STAMP_TEXT" ]; then
    prune_venv
    echo "setup_venv: $VENV is up to date"
    exit 0
fi

"$PY" -c 'import torch, torchvision, numpy' || {
    echo "setup_venv: Debian packages missing: apt-get install python3-torch python3-torchvision python3-onnx python3-numpy" >&2
    exit 1
}
"$PY" -c 'import cv2, matplotlib, sklearn, scipy, tqdm, PIL, skimage' || {
    echo "setup_venv: Debian packages missing (captum / pytorch_grad_cam / lime import them): apt-get install python3-opencv python3-matplotlib python3-sklearn python3-scipy python3-tqdm python3-pil python3-skimage (or scripts/install_deps.sh --test)" >&2
    exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv --system-site-packages "$VENV"
fi

# Keep Debian's numpy and protobuf: torch 1.13 is built against numpy 1.x.
CONS=$(mktemp)
trap 'rm -f "$CONS"' EXIT
"$PY" - >"$CONS" <<'PYEOF'
import numpy, google.protobuf
print("numpy==" + numpy.__version__)
print("protobuf==" + google.protobuf.__version__)
PYEOF

export PIP_DISABLE_PIP_VERSION_CHECK=1
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q -c "$CONS" $PINS
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q --no-deps $NODEPS

prune_venv
# (onnx before torch: Debian's torch registers ONNX protobuf descriptors that clash with onnx 1.17)
"$VENV/bin/python" - <<'PYEOF'
import importlib.metadata, importlib.util, onnx, numpy, torch, onnxruntime, paddle, paddle2onnx
import captum, captum.attr, pytorch_grad_cam, lime.lime_image, lime.lime_base
spec = importlib.util.find_spec("rapidocr_onnxruntime")
assert spec is not None, "rapidocr_onnxruntime not importable"
assert numpy.__version__.startswith("1."), numpy.__file__
print("setup_venv: numpy", numpy.__version__, "onnx", onnx.__version__, "torch", torch.__version__, "onnxruntime",
      onnxruntime.__version__, "paddle", paddle.__version__, "paddle2onnx", paddle2onnx.__version__,
      "captum", captum.__version__, "lime", importlib.metadata.version("lime"))
PYEOF
echo "$STAMP_TEXT" >"$VENV/.idl_stamp"
