#!/usr/bin/env bash
# run_explain_bench.sh BUILD_DIR — the explanation methods on resnet50 (random weights), batch 1:
# interpretdl-bench-explain against Captum 0.7.0 and pytorch-grad-cam 1.5.5 on the same network
# (bench/explain_ref.py rebuilds make_torchvision.py's weights and checks its logits against the
# ONNX file), same threads, one after the other in this run, then a table: method, our median ms,
# the reference's, speed-up (reference / ours) and the reference.
#   BUILD_DIR/bench/interpretdl-bench-explain must be built (IDL_BUILD_BENCH, on by default).
#   The model: BUILD_DIR/models/resnet50/model.onnx, exported with
#   tests/reference/make_torchvision.py when missing (Debian's python3-torch/torchvision).
#   Captum and pytorch-grad-cam: the venv of tests/reference/setup_venv.sh (IDL_VENV, default
#   BUILD_DIR/venv; made when missing). Environment: IDL_BENCH_THREADS (2), IDL_BENCH_RUNS (3),
#   IDL_BENCH_WARMUP (1), IDL_BENCH_METHODS (all), IDL_PGC_MODE (frozen: see explain_ref.py),
#   IDL_BENCH_OURS_WAIT_POLICY (unset, as run_bench.sh: libgomp's default spin-then-sleep; the
#   references always run with OMP_WAIT_POLICY=PASSIVE). On a machine where another process holds
#   a core, the spinning policy slows interpretdl down many times over (measured: saliency 5.3 s
#   instead of 0.27 s with one busy process on 2 cores); PASSIVE costs 10-20% on an idle machine.
#   Captum's IntegratedGradients and NoiseTunnel take ~15 s a call on 2 cores, hence few runs.
#   Raw results stay in BUILD_DIR/bench/results/explain/.
set -euo pipefail

BUILD=${1:?usage: run_explain_bench.sh BUILD_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REF=$HERE/../tests/reference
BUILD=$(cd "$BUILD" && pwd)
SYSPY=${IDL_SYSTEM_PYTHON:-/usr/bin/python3}
VENV=${IDL_VENV:-$BUILD/venv}
THREADS=${IDL_BENCH_THREADS:-2}
RUNS=${IDL_BENCH_RUNS:-3}
WARMUP=${IDL_BENCH_WARMUP:-1}
PGC_MODE=${IDL_PGC_MODE:-frozen}
OURS_POLICY=${IDL_BENCH_OURS_WAIT_POLICY:-}
# cheapest first, so that each method's peak-RSS column shows which one raised it
CAPTUM_ALL=saliency,input_x_gradient,guided_backprop,gradcam_captum,guided_gradcam
CAPTUM_ALL=$CAPTUM_ALL,gradient_shap,integrated_gradients,smoothgrad
PGC_ALL=gradcam,gradcam_plus_plus,xgradcam,layercam
ALL=saliency,input_x_gradient,guided_backprop,gradcam_captum,guided_gradcam
ALL=$ALL,$PGC_ALL,gradient_shap,integrated_gradients,smoothgrad
METHODS=${IDL_BENCH_METHODS:-$ALL}
BENCH=$BUILD/bench/interpretdl-bench-explain
MODEL=$BUILD/models/resnet50/model.onnx
OUT=$BUILD/bench/results/explain
mkdir -p "$OUT"

# the reference methods of each library among the ones asked for
pick() { # pick LIST KNOWN -> the names of LIST that are in KNOWN, comma separated
    local out="" m
    for m in ${1//,/ }; do
        case ",$2," in *",$m,"*) out="$out${out:+,}$m" ;; esac
    done
    echo "$out"
}
CAPTUM=$(pick "$METHODS" "$CAPTUM_ALL")
PGC=$(pick "$METHODS" "$PGC_ALL")

[ -x "$BENCH" ] || {
    echo "run_explain_bench: $BENCH is not built (cmake --build $BUILD)" >&2
    exit 1
}
if [ ! -f "$MODEL" ]; then
    echo "run_explain_bench: exporting resnet50 to $MODEL"
    OMP_WAIT_POLICY=PASSIVE "$SYSPY" "$REF/make_torchvision.py" "$BUILD/models" --models resnet50
fi
[ -x "$VENV/bin/python" ] || "$REF/setup_venv.sh" "$VENV"
"$VENV/bin/python" -c "import onnx, captum, pytorch_grad_cam" || {
    echo "run_explain_bench: $VENV lacks captum or pytorch_grad_cam (see setup_venv.sh)" >&2
    exit 1
}

rm -f "$OUT"/ours.txt "$OUT"/captum.txt "$OUT"/pgc.txt
echo "== $(nproc) cores, $THREADS threads each, batch 1, $WARMUP warm-up + $RUNS timed runs" \
    "(median)"
echo "== interpretdl (OMP_WAIT_POLICY=${OURS_POLICY:-unset})"
rc=0
env ${OURS_POLICY:+OMP_WAIT_POLICY=$OURS_POLICY} OMP_NUM_THREADS="$THREADS" "$BENCH" "$MODEL" \
    --methods "$METHODS" --threads "$THREADS" --runs "$RUNS" --warmup "$WARMUP" --batch 1 \
    | tee "$OUT/ours.txt" || rc=1
if [ -n "$CAPTUM" ]; then
    echo "== captum"
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS "$VENV/bin/python" "$HERE/explain_ref.py" \
        captum "$MODEL" --methods "$CAPTUM" --threads "$THREADS" --runs "$RUNS" \
        --warmup "$WARMUP" | tee "$OUT/captum.txt" || rc=1
fi
if [ -n "$PGC" ]; then
    echo "== pytorch-grad-cam"
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS "$VENV/bin/python" "$HERE/explain_ref.py" \
        pgc "$MODEL" --methods "$PGC" --pgc-mode "$PGC_MODE" --threads "$THREADS" \
        --runs "$RUNS" --warmup "$WARMUP" | tee "$OUT/pgc.txt" || rc=1
fi
echo
"$SYSPY" "$HERE/explain_ref.py" table "$OUT" | tee "$OUT/table.txt"
exit $rc
