#!/usr/bin/env bash
# test_demo.sh CLI [IMAGENET_DIR] — the README's main job: `interpretdl demo --out DIR` writes
# DIR/index.html with every method's picture for every embedded image; the page is opened in
# headless Chromium (Debian `chromium`) and the screenshot must show the pictures: enough green
# pixels (the gradient methods' grayscale-in-green style) and enough saturated warm/cool pixels
# (the CAM heatmaps) — a page whose images failed to load shows neither. Also: a folder with other
# files is refused, a second run into the demo's own folder succeeds, and a bad --imagenet folder
# is refused before anything is written.
#
# The ImageNet section (`--imagenet`): IMAGENET_DIR, else $IDL_DEMO_IMAGENET_DIR, else
# demo-models/efficientnet_lite0 next to CLI (where scripts/make_imagenet_model.py writes it by
# default). It is made with the network, so it may be absent: then that part is skipped with a
# SKIP line (and counted as skipped, not passed). When present, the demo runs on two of its photos
# (chelsea.png, coffee.png: a copy of the folder with only those): the section must be there with
# all its pictures, no method failed, chelsea predicted as a cat class and coffee as espresso / cup
# / coffee mug, and the section alone, rendered by Chromium, must show green, warm and cool pixels.
# OpenMP threads wait passively here (OMP_WAIT_POLICY=PASSIVE unless set): spinning threads make
# the demo many times slower when the machine is shared (ctest -j).
set -u
CLI=$1
IMAGENET=${2:-${IDL_DEMO_IMAGENET_DIR:-$(dirname "$CLI")/demo-models/efficientnet_lite0}}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

out=$("$CLI" demo --out "$T/demo" 2>&1) && ok || bad "demo exited $?: $out"
[ -f "$T/demo/index.html" ] && ok || bad "no index.html"
n_img=$(grep -o 'src="img/[^"]*"' "$T/demo/index.html" | wc -l)
missing=0
for f in $(grep -o 'src="img/[^"]*"' "$T/demo/index.html" | sed 's/src="//; s/"$//'); do
    [ -s "$T/demo/$f" ] || missing=$((missing + 1))
done
[ "$n_img" -ge 50 ] && [ "$missing" = 0 ] && ok || bad "index.html references $n_img pictures, $missing missing"
grep -q "failed" "$T/demo/index.html" && bad "a method failed in the demo" || ok

# a folder with someone else's files is never written into
mkdir -p "$T/user" && echo keep >"$T/user/notes.txt"
"$CLI" demo --out "$T/user" >/dev/null 2>&1
[ $? = 2 ] && [ "$(cat "$T/user/notes.txt")" = keep ] && [ ! -e "$T/user/index.html" ] && ok ||
    bad "demo wrote into a folder with other files"
"$CLI" demo --out "$T/demo" >/dev/null 2>&1 && ok || bad "a second run into the demo folder failed"
# a folder that is not the model script's is refused before --out is created
"$CLI" demo --out "$T/none" --imagenet "$T/user" >/dev/null 2>&1
[ $? = 2 ] && [ ! -e "$T/none" ] && ok || bad "demo accepted --imagenet with a folder without model.json"

CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
# shot HTML PNG WIDTH HEIGHT: prints "green warm cool" sampled pixel counts of the rendered page
shot() {
    timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size="$3,$4" --screenshot="$2" "file://$1" >/dev/null 2>&1
    [ -s "$2" ] || return 1
    /usr/bin/python3 - "$2" <<'PYEOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
px = im.load()
w, h = im.size
green = warm = cool = 0
for y in range(0, h, 2):
    for x in range(0, w, 2):
        r, g, b = px[x, y]
        if g > r + 40 and g > b + 40:
            green += 1
        if r > 150 and b < 100 and r > g + 20:
            warm += 1
        if b > 150 and r < 100:
            cool += 1
print(green, warm, cool)
PYEOF
}
if [ -z "$CHROME" ]; then
    bad "chromium is not installed (scripts/install_deps.sh --test installs it)"
elif ! counts=$(shot "$T/demo/index.html" "$T/shot.png" 1900 1300); then
    bad "chromium wrote no screenshot"
else
    read -r green warm cool <<<"$counts"
    # 8 images x 8 grayscale-style methods x ~112x112/4 sampled pixels; the bars are loose
    [ "${green:-0}" -ge 2000 ] && [ "${warm:-0}" -ge 500 ] && [ "${cool:-0}" -ge 500 ] && ok ||
        bad "screenshot shows too few picture pixels (green $green, warm $warm, cool $cool)"
    echo "screenshot: green $green, warm $warm, cool $cool sampled pixels"
fi

# the ImageNet section
if [ ! -f "$IMAGENET/model.json" ]; then
    skip=$((skip + 1))
    echo "SKIP: ImageNet section not checked: no $IMAGENET/model.json (made with the network by" \
        "scripts/make_imagenet_model.py; give its folder as the second argument)"
else
    M="$T/imagenet_model"
    mkdir -p "$M/photos"
    for f in model.onnx labels.txt model.json photos/chelsea.png photos/coffee.png; do
        ln -s "$(cd "$(dirname "$IMAGENET/$f")" && pwd)/$(basename "$f")" "$M/$f"
    done
    t0=$(date +%s)
    out=$("$CLI" demo --out "$T/inet" --imagenet "$M" 2>&1) && ok || bad "demo --imagenet exited $?: $out"
    echo "demo --imagenet, 2 photos: $(($(date +%s) - t0)) s"
    H="$T/inet/index.html"
    grep -q '<h2 id="imagenet">' "$H" 2>/dev/null && ok || bad "no ImageNet section in index.html"
    n_in=$(grep -o 'src="img/imagenet_[^"]*"' "$H" 2>/dev/null | wc -l)
    missing=0
    for f in $(grep -o 'src="img/imagenet_[^"]*"' "$H" 2>/dev/null | sed 's/src="//; s/"$//'); do
        [ -s "$T/inet/$f" ] || missing=$((missing + 1))
    done
    # 2 photos x (input + 8 methods)
    [ "$n_in" -ge 18 ] && [ "$missing" = 0 ] && ok ||
        bad "the ImageNet section references $n_in pictures, $missing missing"
    grep -q "failed" "$H" 2>/dev/null && bad "a method failed in the ImageNet section" || ok
    row() { grep -o "alt=\"$1\"><br>$1<br>predicted: [^(]*" "$H" | sed 's/.*predicted: //'; }
    cat_=$(row chelsea.png) cup=$(row coffee.png)
    echo "predicted: chelsea.png -> $cat_, coffee.png -> $cup"
    case "$cat_" in "tabby "|"tiger cat "|"Egyptian cat ") ok ;; *) bad "chelsea.png predicted '$cat_'" ;; esac
    case "$cup" in "espresso "|"cup "|"coffee mug ") ok ;; *) bad "coffee.png predicted '$cup'" ;; esac
    if [ -n "$CHROME" ] && [ -f "$H" ]; then
        # the section alone (same folder, so the pictures resolve)
        /usr/bin/python3 - "$H" "$T/inet/section.html" <<'PYEOF'
import sys
html = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(html[:html.index("<h1")] + html[html.index('<h2 id="imagenet">'):])
PYEOF
        if ! counts=$(shot "$T/inet/section.html" "$T/shot_inet.png" 2200 900); then
            bad "chromium wrote no screenshot of the ImageNet section"
        else
            read -r green warm cool <<<"$counts"
            # 2 photos: 4 grayscale-style methods and LIME in green, 2 heatmaps, 224x224 each
            [ "${green:-0}" -ge 5000 ] && [ "${warm:-0}" -ge 3000 ] && [ "${cool:-0}" -ge 1000 ] && ok ||
                bad "ImageNet screenshot shows too few picture pixels (green $green, warm $warm, cool $cool)"
            echo "ImageNet screenshot: green $green, warm $warm, cool $cool sampled pixels"
        fi
    fi
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
