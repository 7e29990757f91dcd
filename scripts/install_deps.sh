#!/usr/bin/env bash
# install_deps.sh — installs the Debian 12 packages needed to build and run interpretdl (and, with
# --test, to run its test suite). Needs root (or sudo). Idempotent.
set -euo pipefail
BUILD_PKGS="build-essential cmake libdnnl-dev libprotobuf-c-dev protobuf-c-compiler libstb-dev liblapacke-dev"
TEST_PKGS="clang libclang-rt-14-dev clang-format libonnx-testdata python3 python3-venv python3-pip \
python3-numpy python3-onnx python3-torch python3-torchvision \
python3-opencv python3-matplotlib python3-sklearn python3-scipy python3-tqdm python3-pil python3-skimage chromium"
PKGS="$BUILD_PKGS"
[ "${1:-}" = "--test" ] && PKGS="$BUILD_PKGS $TEST_PKGS"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
