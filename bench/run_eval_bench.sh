#!/usr/bin/env bash
# run_eval_bench.sh BUILD_DIR — the explanation evaluation metrics on resnet50 (random weights),
# 224 x 224: `interpretdl evaluate` against Quantus 0.6.0 (PyTorch 1.13) on the same network, input,
# explanation and targets, same threads, one after the other in this run (for each metric ours,
# then Quantus), then a table: metric, batch, our median wall and CPU time, Quantus's, the
# speed-ups (Quantus / ours) of both, the peak RSS of each side, and the agreement of the scores.
# bench/eval_ref.py does the work (its docstring has every call and setting):
#   deletion     ours features_in_step=2508 fill=black (21 steps, 22 passes) / PixelFlipping(
#                features_in_step=3*2508, "black"; its H*W % features_in_step assert disabled
#                as tests/reference/make_evaluate.py does: it counts pixels against elements);
#                curves y_1..y_21 compared
#   morf         ours patch_size=16 regions=100 fill=black / RegionPerturbation(16, 100, "morf",
#                "black"); curves y_0 - y_j compared (101 passes each)
#   infidelity   ours patch_sizes=16 stride=16 scaling=0 / Infidelity([16], n_perturb_samples=1,
#                perturb_func = make_evaluate.NonCumulative: Quantus's own one is cumulative);
#                196 perturbations, the scores compared
#   sensitivity  ours method=saliency n_samples=10 noise=replayed draws, --explanation none /
#                MaxSensitivity(nr_samples=10, replay of the same draws, a_batch=None,
#                explain_func = Captum Saliency(abs=True)); both compute e(x) in the call;
#                the max sensitivities compared
# Objective: the logit of each sample's argmax class on both sides (Quantus softmax=False);
# explanation: a random per-pixel map (N, 224, 224) without ties (eval_ref.py: explanation).
# Our side: each run a whole `interpretdl evaluate` process (loading the model included): median
#   wall time of IDL_BENCH_RUNS (3) runs, the process's CPU time (user + system, median) and peak
#   RSS (os.wait4: that child's own rusage); the JSON's `seconds` (the evaluation alone) is shown
#   beside it. Quantus: one Python process per metric (model built before timing), IDL_BENCH_WARMUP
#   (1) warm-up calls then IDL_BENCH_RUNS timed calls of the metric (median), the process's CPU
#   time per call and its peak RSS (torch and the model included).
# Batches: IDL_BENCH_BATCH4_METRICS (deletion,sensitivity: the cheap ones) run again at batch 4
#   (4 different samples, the same kind of data); empty: batch 1 only. IDL_BENCH_METRICS (all four)
#   picks the batch-1 metrics. Measured on 2 cores while another process built (load 0.6 rising
#   to 3): 9 min 15 s in all, batch 1 ~5.5 min of it (Quantus's infidelity, 197 forward passes,
#   ~27 s a call and 4 calls, is the longest; ours ~21 s a run); IDL_BENCH_RUNS=1
#   IDL_BENCH_WARMUP=0 for a quick look.
# Threads: IDL_BENCH_THREADS (2) on both sides (--threads, OMP_NUM_THREADS, torch.set_num_threads).
#   OMP_WAIT_POLICY=PASSIVE on both sides by default (IDL_BENCH_OURS_WAIT_POLICY: PASSIVE, ACTIVE
#   or unset = libgomp's spin-then-sleep default, as run_explain_bench.sh; Quantus's PyTorch always
#   PASSIVE): on a 2-core machine shared with another process, spinning threads slow an OpenMP
#   program down many times over; then read the CPU-time ratio (cpu x) rather than the wall one.
#   The load average is printed before each step and at the end.
# The model: BUILD_DIR/models/resnet50/model.onnx, exported with tests/reference/make_torchvision.py
#   when missing (Debian's python3-torch/torchvision, ~40 s); eval_ref.py rebuilds it in PyTorch
#   with the same weights (bench/explain_ref.py's make_model) and checks it against ONNX Runtime.
# Quantus: the venv of tests/reference/setup_venv.sh (IDL_VENV, default BUILD_DIR/venv) with
#   quantus 0.6.0 and captum 0.7.0 (--no-deps) and Debian's python3-pandas (Quantus imports it).
# Raw results (inputs, each side's RESULT lines and logs, our JSON, Quantus's scores, the table) in
#   BUILD_DIR/bench/results/eval/.
set -euo pipefail

BUILD=${1:?usage: run_eval_bench.sh BUILD_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REF=$HERE/../tests/reference
BUILD=$(cd "$BUILD" && pwd)
SYSPY=${IDL_SYSTEM_PYTHON:-/usr/bin/python3}
VENV=${IDL_VENV:-$BUILD/venv}
PY=$VENV/bin/python
THREADS=${IDL_BENCH_THREADS:-2}
RUNS=${IDL_BENCH_RUNS:-3}
WARMUP=${IDL_BENCH_WARMUP:-1}
METRICS=${IDL_BENCH_METRICS:-deletion,morf,infidelity,sensitivity}
BATCH4=${IDL_BENCH_BATCH4_METRICS-deletion,sensitivity}
OURS_POLICY=${IDL_BENCH_OURS_WAIT_POLICY:-PASSIVE}
BIN=$BUILD/interpretdl
MODEL=$BUILD/models/resnet50/model.onnx
OUT=$BUILD/bench/results/eval

[ -x "$BIN" ] || {
    echo "run_eval_bench: $BIN is not built (cmake --build $BUILD)" >&2
    exit 1
}
"$BIN" evaluate --help >/dev/null 2>&1 || {
    echo "run_eval_bench: $BIN has no evaluate command (rebuild it)" >&2
    exit 1
}
if [ ! -f "$MODEL" ]; then
    echo "run_eval_bench: exporting resnet50 to $MODEL"
    OMP_WAIT_POLICY=PASSIVE "$SYSPY" "$REF/make_torchvision.py" "$BUILD/models" --models resnet50
fi
"$PY" -c "import onnx, onnxruntime, captum, quantus" 2>/dev/null || {
    echo "run_eval_bench: $PY lacks quantus, captum or onnxruntime" \
        "(tests/reference/setup_venv.sh; Quantus also needs Debian's python3-pandas)" >&2
    exit 1
}

mkdir -p "$OUT"
rm -f "$OUT"/ours.* "$OUT"/quantus.* "$OUT"/table.txt
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS
ev() { "$PY" "$HERE/eval_ref.py" "$@" --threads "$THREADS"; }
echo "== $(nproc) cores, $THREADS threads each, ours $RUNS runs (whole processes), Quantus" \
    "$WARMUP warm-up + $RUNS timed calls; $(uptime | sed 's/.*load average/load average/')"
rc=0
bench_batch() { # bench_batch N METRICS
    local b=$1 m
    ev prep "$MODEL" "$OUT" --batch "$b" || return 1
    for m in ${2//,/ }; do
        echo "== $m, batch $b"
        ev ours "$BIN" "$MODEL" "$OUT" "$m" --batch "$b" --runs "$RUNS" \
            --wait-policy "$OURS_POLICY" | tee "$OUT/ours.$m.b$b.txt" || rc=1
        ev quantus "$MODEL" "$OUT" "$m" --batch "$b" --runs "$RUNS" --warmup "$WARMUP" |
            tee "$OUT/quantus.$m.b$b.txt" || rc=1
    done
}
bench_batch 1 "$METRICS" || rc=1
[ -z "$BATCH4" ] || bench_batch 4 "$BATCH4" || rc=1
echo "== done; $(uptime | sed 's/.*load average/load average/')"
echo
ev table "$OUT" | tee "$OUT/table.txt"
exit $rc
