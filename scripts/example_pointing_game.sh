#!/usr/bin/env bash
# example_pointing_game.sh [BUILD] [OUT] — the evaluation metrics on a real photo with a known
# object: OpenCV's sample photo messi5.jpg (Debian package opencv-doc, examples/data) and the
# box of the soccer ball in it, explained for the ImageNet class "soccer ball" (805) by the
# demo's EfficientNet-Lite0 (BUILD/demo-models/efficientnet_lite0, made by
# scripts/make_imagenet_model.py). For several methods it prints the pointing game (hit, and
# InterpretDL's precision / recall / ROC-AUC against the box) and the deletion and insertion
# areas, and writes the explanations, scores and overlay pictures to OUT (default
# out/pointing_game).
#
# The photo comes from /usr/share/doc/opencv-doc/examples/data when opencv-doc is installed,
# else from `apt-get download opencv-doc` (95 MB, unpacked in a temporary folder, not installed).
# The ball's box, x 337..388 and y 288..336 in the 548 x 342 photo (read off the picture), is
# mapped through the model's preprocessing (short side to 256: scale 256/342; centre crop 224:
# offsets 93, 16) to columns 159..197 and rows 199..223 of the 224 x 224 input.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-out/pointing_game}
CLI=$BUILD/interpretdl
MODEL=$BUILD/demo-models/efficientnet_lite0/model.onnx
[ -x "$CLI" ] || { echo "no $CLI: build first (cmake -B $BUILD && cmake --build $BUILD)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "no $MODEL: run /usr/bin/python3 scripts/make_imagenet_model.py --out $BUILD/demo-models/efficientnet_lite0" >&2; exit 1; }
mkdir -p "$OUT"
PHOTO=/usr/share/doc/opencv-doc/examples/data/messi5.jpg
if [ ! -f "$PHOTO" ]; then
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    (cd "$TMP" && apt-get download opencv-doc >/dev/null 2>&1 && dpkg-deb -x opencv-doc_*.deb x)
    PHOTO=$TMP/x/usr/share/doc/opencv-doc/examples/data/messi5.jpg
fi
cp "$PHOTO" "$OUT/messi5.jpg"
PRE="none,mean=127,std=128,resize=256,crop=224"
BOX=159,199,198,224
run() { # run NAME METHOD SETTINGS...
    local name=$1 method=$2
    shift 2
    "$CLI" explain "$method" --model "$MODEL" --input "$OUT/messi5.jpg" --preprocess "$PRE" \
        --target 805 "$@" --out "$OUT/$name.npy" --overlay "$OUT/$name.png" >/dev/null
    "$CLI" evaluate point_game --explanation "$OUT/$name.npy" --set box=$BOX \
        --out "$OUT/$name.point_game.json" >/dev/null
    for m in deletion insertion; do
        "$CLI" evaluate $m --model "$MODEL" --input "$OUT/messi5.jpg" --preprocess "$PRE" \
            --target 805 --explanation "$OUT/$name.npy" --set reduce=abs_sum \
            --out "$OUT/$name.$m.json" >/dev/null
    done
    local pg del ins
    pg=$(grep -E '^  "(hit|precision|recall|roc_auc)"' "$OUT/$name.point_game.json" |
        tr -d ' ",' | tr '\n' ' ')
    del=$(grep -E '^  "deletion":' "$OUT/$name.deletion.json" | tr -d ' ",')
    ins=$(grep -E '^  "insertion":' "$OUT/$name.insertion.json" | tr -d ' ",')
    printf '%-22s %s %s %s\n' "$name" "$pg" "$del" "$ins"
}
echo "soccer ball (class 805), box columns ${BOX%%,*}.. of the 224 x 224 input:"
run gradcam gradcam --set upsample=1
run gradcam_plus_plus gradcam_plus_plus --set upsample=1
run saliency saliency
run integrated_gradients integrated_gradients --set steps=16
run occlusion occlusion --set window=32,32 --set stride=16
echo "wrote $OUT"
