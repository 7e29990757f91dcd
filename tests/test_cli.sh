#!/usr/bin/env bash
# test_cli.sh CLI MODEL INPUT — the command-line contract: exit 0 on success, 1 on runtime errors,
# 2 on usage errors, a message naming the culprit, outputs written atomically and never on failure.
set -u
CLI=$1 MODEL=$2 INPUT=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
expect() { # expect CODE PATTERN -- command...
    local code=$1 pat=$2
    shift 3
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" = "$code" ] && printf '%s' "$out" | grep -qE -- "$pat"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $* -> exit $rc (want $code), output: $out" | head -c 600
        echo
    fi
}
expect 2 "usage" -- "$CLI"
expect 0 "commands" -- "$CLI" --help
expect 0 "interpretdl [0-9]" -- "$CLI" --version
expect 2 "unknown command 'bogus'" -- "$CLI" bogus "$MODEL"
expect 2 "missing MODEL" -- "$CLI" run
expect 2 "unknown option '--nope'" -- "$CLI" run "$MODEL" --nope
expect 2 "--threads needs an integer" -- "$CLI" run "$MODEL" --threads abc --input "$INPUT" --out "$T/y.npy"
expect 2 "needs a value" -- "$CLI" run "$MODEL" --input
expect 1 "cannot load model.*nonexistent" -- "$CLI" info "$T/nonexistent.onnx"
printf 'garbage' >"$T/bad.onnx"
expect 1 "not a valid ONNX model" -- "$CLI" info "$T/bad.onnx"
expect 0 "opset" -- "$CLI" info "$MODEL"
expect 0 "unsupported ops: none" -- "$CLI" info "$MODEL"
expect 2 "missing --out" -- "$CLI" run "$MODEL" --input "$INPUT"
expect 1 "cannot read input" -- "$CLI" run "$MODEL" --input "$T/missing.npy" --out "$T/y.npy"
printf '\x93NUMPY\x01\x00' >"$T/trunc.npy"
expect 1 "cannot read input" -- "$CLI" run "$MODEL" --input "$T/trunc.npy" --out "$T/y.npy"
expect 0 "top1" -- "$CLI" run "$MODEL" --input "$INPUT" --out "$T/y.npy"
[ -f "$T/y.npy" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: run wrote no output"; }
ls "$T" | grep -q '\.tmp\.' && { fail=$((fail + 1)); echo "FAIL: temporary file left behind"; } || pass=$((pass + 1))
expect 2 "unknown objective" -- "$CLI" grad "$MODEL" --input "$INPUT" --objective nonsense --out "$T/g.npy"
expect 1 "outside 0\.\." -- "$CLI" grad "$MODEL" --input "$INPUT" --target 99999 --out "$T/g.npy"
expect 2 "--target needs class indices" -- "$CLI" grad "$MODEL" --input "$INPUT" --target abc --out "$T/g.npy"
expect 1 "no tensor named 'no_such_layer'" -- "$CLI" grad "$MODEL" --input "$INPUT" --wrt no_such_layer --out "$T/g.npy"
expect 0 "target 1 objective" -- "$CLI" grad "$MODEL" --input "$INPUT" --target 1 --objective logit --out "$T/g.npy"
expect 0 "wrote" -- "$CLI" grad "$MODEL" --input "$INPUT" --out "$T/g.npy"
# --seed: sum(output * seed) for any output shape; the logit objective equals a one-hot seed
"$CLI" run "$MODEL" --input "$INPUT" --out "$T/y.npy" >/dev/null 2>&1
expect 2 "replaces --target" -- "$CLI" grad "$MODEL" --input "$INPUT" --seed "$T/y.npy" --target 1 --out "$T/gs.npy"
expect 1 "cannot read --seed" -- "$CLI" grad "$MODEL" --input "$INPUT" --seed "$T/none.npy" --out "$T/gs.npy"
expect 0 "sample 0: objective" -- "$CLI" grad "$MODEL" --input "$INPUT" --seed "$T/y.npy" --out "$T/gs.npy"
# a text model fed token ids: --wrt input means the discovered embedding output
TXT=$(dirname "$MODEL")/../tiny_text
TI="--input input_ids=$TXT/t8/input_ids.npy --input token_type_ids=$TXT/t8/token_type_ids.npy --input attention_mask=$TXT/t8/attention_mask.npy"
# shellcheck disable=SC2086
expect 0 "embedding output '/emb_norm/Add_1_output_0'" -- "$CLI" grad "$TXT/model.onnx" $TI --out "$T/ge.npy"
# shellcheck disable=SC2086
expect 0 "attention: 2 blocks" -- "$CLI" info "$TXT/model.onnx" $TI
# a failing run leaves an existing output untouched
cp "$T/g.npy" "$T/keep.npy"
"$CLI" grad "$MODEL" --input "$INPUT" --target 99999 --out "$T/g.npy" >/dev/null 2>&1
cmp -s "$T/g.npy" "$T/keep.npy" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: output overwritten on failure"; }
# explain: the contract `interpretdl explain METHOD --model M --input x.npy --target K --set objective=logit --out a.npy`
expect 0 "integrated_gradients" -- "$CLI" explain --help
expect 2 "missing METHOD" -- "$CLI" explain
expect 2 "unknown method 'saliancy'" -- "$CLI" explain saliancy --model "$MODEL" --input "$INPUT" --out "$T/a.npy"
expect 2 "missing MODEL" -- "$CLI" explain saliency --input "$INPUT" --out "$T/a.npy"
expect 2 "needs one --out" -- "$CLI" explain saliency --model "$MODEL" --input "$INPUT"
expect 2 "--set needs key=value" -- "$CLI" explain saliency --model "$MODEL" --input "$INPUT" --set abs --out "$T/a.npy"
expect 2 "does not take the setting 'stepz'" -- "$CLI" explain integrated_gradients --model "$MODEL" --input "$INPUT" --set stepz=3 --out "$T/a.npy"
expect 2 "steps=-1: expected an integer" -- "$CLI" explain integrated_gradients --model "$MODEL" --input "$INPUT" --set steps=-1 --out "$T/a.npy"
expect 1 "no tensor named 'nope'" -- "$CLI" explain gradcam --model "$MODEL" --input "$INPUT" --layer nope --out "$T/a.npy"
expect 2 "--seed needs a non-negative integer" -- "$CLI" explain smoothgrad --model "$MODEL" --input "$INPUT" --seed x --out "$T/a.npy"
[ -f "$T/a.npy" ] && { fail=$((fail + 1)); echo "FAIL: a failed explain wrote its output"; } || pass=$((pass + 1))
expect 0 "completeness error" -- "$CLI" explain integrated_gradients --model "$MODEL" --input "$INPUT" --target 1 --set objective=logit --set steps=8 --out "$T/a.npy" --json "$T/a.json"
grep -q '"completeness_error"' "$T/a.json" && grep -q '"target": 1' "$T/a.json" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: explain --json lacks fields"; }
expect 2 "--max-memory needs a number of MiB" -- "$CLI" explain saliency --model "$MODEL" --input "$INPUT" --max-memory lots --out "$T/a.npy"
expect 0 "completeness error" -- "$CLI" explain integrated_gradients --model "$MODEL" --input "$INPUT" --target 1 --set objective=logit --set steps=8 --set internal_batch=16 --max-memory 1 --out "$T/am.npy"
expect 0 "layer " -- "$CLI" explain gradcam --model "$MODEL" --input "$INPUT" --target 1 --set objective=logit --out "$T/c.npy"
# shellcheck disable=SC2086
expect 0 "wrote" -- "$CLI" explain integrated_gradients --model "$TXT/model.onnx" $TI --set steps=4 --out "$T/t.npy" --json "$T/t.json"
grep -q '"token_scores"' "$T/t.json" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no token_scores for a text model"; }
# transformer attention on text: a score per token, with the token's text from --vocab
printf '[PAD]\n[UNK]\n' >"$T/vocab.txt"
# shellcheck disable=SC2086
expect 0 "wrote" -- "$CLI" explain rollout --model "$TXT/model.onnx" $TI --out "$T/r.npy" --json "$T/r.json" --vocab "$T/vocab.txt"
grep -q '"tokens": \["' "$T/r.json" && grep -q '"token_ids"' "$T/r.json" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: rollout --json lacks the tokens"; }
expect 2 "--vocab applies to a token-id" -- "$CLI" explain saliency --model "$MODEL" --input "$INPUT" --vocab "$T/vocab.txt" --out "$T/v.npy"
expect 1 "no attention found" -- "$CLI" explain rollout --model "$MODEL" --input "$INPUT" --out "$T/v.npy"
[ -f "$T/v.npy" ] && { fail=$((fail + 1)); echo "FAIL: a failed explain wrote its output"; } || pass=$((pass + 1))
# image inputs, preprocessing and pictures (the demo model: 1x28x28 Fashion-MNIST)
DEMO=$(dirname "$MODEL")/../../../../data/demo
IMG=$(ls "$DEMO"/images/*.png | head -n 1)
expect 0 "wrote $T/ov.png" -- "$CLI" explain gradcam --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --out "$T/ov.npy" --overlay "$T/ov.png" --json "$T/ov.json"
grep -q '"preprocess"' "$T/ov.json" && [ -s "$T/ov.png" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no preprocess record or picture"; }
expect 0 "wrote $T/ov2.png" -- "$CLI" explain saliency --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --input "$IMG" --preprocess scale,channels=1,size=28x28 --out "$T/ov2.npy" --overlay "$T/ov2.png" --style signed --colormap bwr
printf 'not a png at all' >"$T/bad.png"
expect 1 "bad.png" -- "$CLI" explain saliency --model "$DEMO/fashion_cnn.onnx" --input "$T/bad.png" --out "$T/x.npy"
expect 2 "--preprocess" -- "$CLI" explain saliency --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --preprocess nonsense --out "$T/x.npy"
expect 2 "--overlay needs image inputs" -- "$CLI" explain saliency --model "$MODEL" --input "$INPUT" --overlay "$T/x.png" --out "$T/x.npy"
expect 2 "--style must be" -- "$CLI" explain saliency --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --overlay "$T/x.png" --style pretty --out "$T/x.npy"
[ -f "$T/x.npy" ] && { fail=$((fail + 1)); echo "FAIL: a failed explain wrote its output"; } || pass=$((pass + 1))
# perturbation methods: lime's label map and masks written and replayed; bad settings
expect 0 "wrote $T/l.png" -- "$CLI" explain lime --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --set segmentation=slic --set n_segments=30 --set num_samples=60 --set segments_out="$T/s.npy" --set masks_out="$T/m.npy" --out "$T/l.npy" --overlay "$T/l.png" --json "$T/l.json"
head -c 128 "$T/s.npy" | grep -aq "(28, 28)" && head -c 128 "$T/m.npy" | grep -aq "(60, " && grep -q '"r2"' "$T/l.json" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: lime segments_out / masks_out / json"; }
expect 0 "wrote" -- "$CLI" explain lime --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --set segments="$T/s.npy" --set masks="$T/m.npy" --out "$T/l2.npy"
cmp -s "$T/l.npy" "$T/l2.npy" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: lime replayed from its segments and masks differs"; }
expect 1 "gave 1 superpixel" -- "$CLI" explain lime --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --out "$T/p.npy"
expect 2 "does not take the setting 'segments_out'" -- "$CLI" explain saliency --model "$MODEL" --input "$INPUT" --set segments_out="$T/p.npy" --out "$T/p.npy"
expect 2 "window=1,99,1: expected|outside 1" -- "$CLI" explain occlusion --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --set window=1,99,1 --out "$T/p.npy"
expect 0 "layer " -- "$CLI" explain scorecam --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --out "$T/sc.npy"
[ -f "$T/p.npy" ] && { fail=$((fail + 1)); echo "FAIL: a failed explain wrote its output"; } || pass=$((pass + 1))
# evaluate: scores named after their metric in the JSON, per-item CSV, the usage contract
expect 0 "wrote $T/sal.npy" -- "$CLI" explain saliency --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --input "$IMG" --out "$T/sal.npy"
expect 0 "item 1: target [0-9]+ deletion" -- "$CLI" evaluate deletion --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --input "$IMG" --explanation "$T/sal.npy" --set steps=7 --out "$T/del.json" --csv "$T/del.csv"
grep -q '^  "deletion": [0-9.e-]*,$' "$T/del.json" && grep -q '"curve": \[' "$T/del.json" && [ "$(wc -l <"$T/del.csv")" = 4 ] && grep -q '^mean,,' "$T/del.csv" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: evaluate deletion json / csv"; }
expect 0 "hit 1" -- "$CLI" evaluate point_game --explanation "$T/sal.npy" --set box=0,0,28,28 --out "$T/pg.json"
grep -q '"hit": 1,' "$T/pg.json" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: point_game json"; }
expect 2 "unknown metric 'delete'" -- "$CLI" evaluate delete --model "$MODEL" --input "$INPUT" --explanation "$T/sal.npy" --out "$T/e.json"
expect 2 "needs --explanation" -- "$CLI" evaluate deletion --model "$MODEL" --input "$INPUT" --out "$T/e.json"
expect 2 "does not take the setting 'window'" -- "$CLI" evaluate morf --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --input "$IMG" --explanation "$T/sal.npy" --set window=3 --out "$T/e.json"
expect 1 "does not have the 1 samples|fits neither" -- "$CLI" evaluate deletion --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --explanation "$T/sal.npy" --out "$T/e.json"
expect 2 "point_game takes no --model" -- "$CLI" evaluate point_game --model "$MODEL" --explanation "$T/sal.npy" --set box=0,0,1,1 --out "$T/e.json"
expect 2 "box= \(or boxes=\) or as mask=" -- "$CLI" evaluate point_game --explanation "$T/sal.npy" --out "$T/e.json"
expect 0 "max_sensitivity" -- "$CLI" evaluate sensitivity --model "$DEMO/fashion_cnn.onnx" --input "$IMG" --explanation none --set method=smoothgrad --set method.n_samples=2 --set n_samples=2 --out "$T/sens.json"
expect 0 "Metrics and" -- "$CLI" evaluate --help
expect 1 "cannot write" -- "$CLI" evaluate point_game --explanation "$T/sal.npy" --set box=0,0,4,4 --out "$T/pgx.json" --csv "$T/no/such/dir/s.csv"
[ -f "$T/pgx.json" ] && { fail=$((fail + 1)); echo "FAIL: evaluate left its JSON behind when the CSV failed"; } || pass=$((pass + 1))
[ -f "$T/e.json" ] && { fail=$((fail + 1)); echo "FAIL: a failed evaluate wrote its output"; } || pass=$((pass + 1))
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
