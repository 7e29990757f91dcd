#!/usr/bin/env bash
# run_explain_bench.sh BUILD_DIR — the explanation methods on resnet50 (random weights), batch 1:
# interpretdl-bench-explain against Captum 0.7.0, pytorch-grad-cam 1.5.5 and lime 0.2.0.1 on the
# same network and the same input (bench/explain_ref.py rebuilds make_torchvision.py's weights,
# checks its logits against the ONNX file and writes the input, BUILD_DIR/bench/results/explain/
# x.npy), same threads, one after the other in this run, then a table: method, our median ms, the
# reference's, speed-up (reference / ours), the peak RSS of each process and the reference, and the
# agreement (correlation) of each map with its reference's.
#   BUILD_DIR/bench/interpretdl-bench-explain must be built (IDL_BUILD_BENCH, on by default).
#   The model: BUILD_DIR/models/resnet50/model.onnx, exported with
#   tests/reference/make_torchvision.py when missing (Debian's python3-torch/torchvision).
#   Captum and pytorch-grad-cam: the venv of tests/reference/setup_venv.sh (IDL_VENV, default
#   BUILD_DIR/venv; made when missing). Environment: IDL_BENCH_THREADS (2), IDL_BENCH_RUNS (3),
#   IDL_BENCH_WARMUP (1), IDL_BENCH_METHODS (the gradient methods, or see IDL_BENCH_PERTURB),
#   IDL_PGC_MODE (frozen: see explain_ref.py),
#   IDL_BENCH_OURS_WAIT_POLICY (unset, as run_bench.sh: libgomp's default spin-then-sleep; the
#   references always run with OMP_WAIT_POLICY=PASSIVE). On a machine where another process holds
#   a core, the spinning policy slows interpretdl down many times over (measured: saliency 5.3 s
#   instead of 0.27 s with one busy process on 2 cores); PASSIVE costs 10-20% on an idle machine.
#   Captum's IntegratedGradients and NoiseTunnel take ~15 s a call on 2 cores, hence few runs.
# The perturbation methods (occlusion: Captum Occlusion, 729 windows; scorecam and ablationcam:
#   pytorch-grad-cam, 2048 channels; lime: the lime package, 1000 samples) take one to five
#   minutes a call on 2 cores, ours and the references alike (measured: ~10 minutes of ours and
#   ~25 of the references for the four, both variants of the references included), so the
#   default run leaves them out (a few minutes). IDL_BENCH_PERTURB=1 adds them after the
#   gradient methods, IDL_BENCH_PERTURB=only runs them alone; or name them in IDL_BENCH_METHODS.
#   Each of these runs in a process of its own (its peak RSS is its own), ours first, then its
#   reference, called IDL_BENCH_PERTURB_RUNS times (1) with no warm-up and no separate first call
#   (--first-timed: our one call includes planning its batch sizes, theirs PyTorch's first-call
#   costs). IDL_BENCH_REF_VARIANTS (1) also times Captum Occlusion with perturbations_per_eval=16
#   (its default is 1) and lime with batch_size=50 (default 10): the faster variant is the
#   reference in the table; 0 times only the defaults. IDL_BENCH_OURS_SET: settings added to our
#   perturbation methods ("k=v k=v", e.g. "internal_batch=4"). The load average is printed before
#   each method. With other processes on the machine, run with IDL_BENCH_OURS_WAIT_POLICY=PASSIVE
#   and read the table's CPU-time ratio (cpu x) beside the wall-time speed-up: over two runs at
#   load 3-9 on 2 cores the wall-time ratios moved by up to 50%, the CPU-time ratios by under 5%.
#   Raw results stay in BUILD_DIR/bench/results/explain/.
# IDL_BENCH_NET=efficientnet_lite0: instead of resnet50 with random weights, the demo's ImageNet
#   model with its real weights (BUILD_DIR/demo-models/efficientnet_lite0, made by
#   scripts/make_imagenet_model.py when missing) on a real photo (IDL_BENCH_PHOTO, default its
#   photos/chelsea.png), the CAM layer its head's activation; results in
#   BUILD_DIR/bench/results/explain-efficientnet_lite0/. Real weights on a real image have dead
#   channels, which Score-CAM and Ablation-CAM do not run (random weights have none).
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
PERTURB_ALL=occlusion,scorecam,ablationcam,lime
case ${IDL_BENCH_PERTURB:-0} in
    0) DEFAULT=$ALL ;;
    1) DEFAULT=$ALL,$PERTURB_ALL ;;
    only) DEFAULT=$PERTURB_ALL ;;
    *)
        echo "run_explain_bench: IDL_BENCH_PERTURB is 0, 1 or only" >&2
        exit 2
        ;;
esac
METHODS=${IDL_BENCH_METHODS:-$DEFAULT}
PERTURB_RUNS=${IDL_BENCH_PERTURB_RUNS:-1}
VARIANTS=${IDL_BENCH_REF_VARIANTS:-1}
OURS_SET=()
for kv in ${IDL_BENCH_OURS_SET:-}; do OURS_SET+=(--set "$kv"); done
BENCH=$BUILD/bench/interpretdl-bench-explain
NET=${IDL_BENCH_NET:-resnet50}
NETARGS=()
case $NET in
    resnet50)
        MODEL=$BUILD/models/resnet50/model.onnx
        OUT=$BUILD/bench/results/explain
        ;;
    efficientnet_lite0)
        MODEL=$BUILD/demo-models/efficientnet_lite0/model.onnx
        OUT=$BUILD/bench/results/explain-efficientnet_lite0
        PHOTO=${IDL_BENCH_PHOTO:-$BUILD/demo-models/efficientnet_lite0/photos/chelsea.png}
        NETARGS=(--net "$NET" --photo "$PHOTO" --cache "$BUILD/downloads")
        ;;
    *)
        echo "run_explain_bench: IDL_BENCH_NET is resnet50 or efficientnet_lite0" >&2
        exit 2
        ;;
esac
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
SLOW=$(pick "$METHODS" "$PERTURB_ALL")
FAST=""
for m in ${METHODS//,/ }; do
    case ",$PERTURB_ALL," in *",$m,"*) ;; *) FAST="$FAST${FAST:+,}$m" ;; esac
done

[ -x "$BENCH" ] || {
    echo "run_explain_bench: $BENCH is not built (cmake --build $BUILD)" >&2
    exit 1
}
if [ ! -f "$MODEL" ] && [ "$NET" = efficientnet_lite0 ]; then
    echo "run_explain_bench: making $(dirname "$MODEL")"
    "$SYSPY" "$HERE/../scripts/make_imagenet_model.py" --out "$(dirname "$MODEL")" \
        --cache "$BUILD/downloads" --cli "$BUILD/interpretdl"
elif [ ! -f "$MODEL" ]; then
    echo "run_explain_bench: exporting resnet50 to $MODEL"
    OMP_WAIT_POLICY=PASSIVE "$SYSPY" "$REF/make_torchvision.py" "$BUILD/models" --models resnet50
fi
[ -x "$VENV/bin/python" ] || "$REF/setup_venv.sh" "$VENV"
"$VENV/bin/python" -c "import onnx, captum, pytorch_grad_cam${SLOW:+, lime.lime_image}" || {
    echo "run_explain_bench: $VENV lacks captum, pytorch_grad_cam or lime (see setup_venv.sh)" >&2
    exit 1
}

rm -rf "$OUT"/ours*.txt "$OUT"/captum*.txt "$OUT"/pgc*.txt "$OUT"/lime*.txt "$OUT/maps"
mkdir -p "$OUT/maps"
"$SYSPY" "$HERE/explain_ref.py" input "$OUT/x.npy" "${NETARGS[@]}"
ours() { # ours FILE BENCH_ARGS... -> interpretdl-bench-explain on the benchmark input
    local f=$1
    shift
    env ${OURS_POLICY:+OMP_WAIT_POLICY=$OURS_POLICY} OMP_NUM_THREADS="$THREADS" "$BENCH" "$MODEL" \
        --threads "$THREADS" --input "$OUT/x.npy" --out "$OUT/maps" "$@" | tee "$OUT/$f"
}
ref() { # ref FILE LIBRARY ARGS... -> explain_ref.py LIBRARY
    local f=$1 lib=$2
    shift 2
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS "$VENV/bin/python" "$HERE/explain_ref.py" \
        "$lib" "$MODEL" --threads "$THREADS" --out "$OUT/maps" "${NETARGS[@]}" "$@" | tee "$OUT/$f"
}
load() { echo "== load: $(uptime | sed 's/.*load average/load average/')"; }

echo "== $(nproc) cores, $THREADS threads each, batch 1, $WARMUP warm-up + $RUNS timed runs" \
    "(median); the perturbation methods: $PERTURB_RUNS run, first call timed"
rc=0
if [ -n "$FAST" ]; then
    load
    echo "== interpretdl (OMP_WAIT_POLICY=${OURS_POLICY:-unset})"
    ours ours.txt --methods "$FAST" --runs "$RUNS" --warmup "$WARMUP" || rc=1
fi
if [ -n "$CAPTUM" ]; then
    load
    echo "== captum"
    ref captum.txt captum --methods "$CAPTUM" --runs "$RUNS" --warmup "$WARMUP" || rc=1
fi
if [ -n "$PGC" ]; then
    load
    echo "== pytorch-grad-cam"
    ref pgc.txt pgc --methods "$PGC" --pgc-mode "$PGC_MODE" --runs "$RUNS" \
        --warmup "$WARMUP" || rc=1
fi
# the perturbation methods: one process each, ours then the reference (and its variant)
SLOWARGS=(--runs "$PERTURB_RUNS" --warmup 0 --first-timed)
for m in ${SLOW//,/ }; do
    case $m in
        occlusion) lib=captum refs=occlusion more=occlusion_ppe16 ;;
        scorecam | ablationcam) lib=pgc refs=$m more="" ;;
        lime) lib=lime refs=lime more=lime_bs50 ;;
    esac
    [ "$VARIANTS" = 0 ] || refs="$refs $more"
    load
    echo "== interpretdl $m (OMP_WAIT_POLICY=${OURS_POLICY:-unset})"
    ours "ours-$m.txt" --methods "$m" "${SLOWARGS[@]}" "${OURS_SET[@]}" || rc=1
    for r in $refs; do
        load
        echo "== $lib $r"
        ref "$lib-$r.txt" "$lib" --methods "$r" --pgc-mode "$PGC_MODE" "${SLOWARGS[@]}" || rc=1
    done
done
load
echo
"$SYSPY" "$HERE/explain_ref.py" table "$OUT" | tee "$OUT/table.txt"
exit $rc
