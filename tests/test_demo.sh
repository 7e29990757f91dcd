#!/usr/bin/env bash
# test_demo.sh CLI — the README's main job: `interpretdl demo --out DIR` writes DIR/index.html
# with every method's picture for every embedded image; the page is opened in headless Chromium
# (Debian `chromium`) and the screenshot must show the pictures: enough green pixels (the
# gradient methods' grayscale-in-green style) and enough saturated warm/cool pixels (the CAM
# heatmaps) — a page whose images failed to load shows neither. Also: a folder with other files is
# refused, and a second run into the demo's own folder succeeds.
set -u
CLI=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
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

CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROME" ]; then
    bad "chromium is not installed (scripts/install_deps.sh --test installs it)"
else
    timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1900,1300 --screenshot="$T/shot.png" "file://$T/demo/index.html" >/dev/null 2>&1
    if [ ! -s "$T/shot.png" ]; then
        bad "chromium wrote no screenshot"
    else
        counts=$(/usr/bin/python3 - "$T/shot.png" <<'PYEOF'
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
)
        read -r green warm cool <<<"$counts"
        # 8 images x 8 grayscale-style methods x ~112x112/4 sampled pixels; the bars are loose
        [ "${green:-0}" -ge 2000 ] && [ "${warm:-0}" -ge 500 ] && [ "${cool:-0}" -ge 500 ] && ok ||
            bad "screenshot shows too few picture pixels (green $green, warm $warm, cool $cool)"
        echo "screenshot: green $green, warm $warm, cool $cool sampled pixels"
    fi
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
