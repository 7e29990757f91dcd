#!/usr/bin/env bash
# run_bench.sh BUILD_DIR — resnet50 (random weights) forward and forward + input gradient at batch
# 1 and 8: interpretdl-bench against ONNX Runtime and PyTorch 1.13, same threads, one after the
# other in this run, then a table with times, ratios and GFLOP/s (8.2 GFLOP per image forward).
#   BUILD_DIR/bench/interpretdl-bench must be built (IDL_BUILD_BENCH, on by default).
#   The model: BUILD_DIR/models/resnet50/model.onnx, exported with
#   tests/reference/make_torchvision.py when missing (Debian's python3-torch/torchvision).
#   ONNX Runtime: the venv of tests/reference/setup_venv.sh (IDL_VENV, default BUILD_DIR/venv; made
#   when missing). Environment: IDL_BENCH_THREADS (2), IDL_BENCH_RUNS (10), IDL_BENCH_WARMUP (2),
#   IDL_BENCH_BATCH (1,8). Raw results stay in BUILD_DIR/bench/results/.
set -euo pipefail

BUILD=${1:?usage: run_bench.sh BUILD_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REF=$HERE/../tests/reference
BUILD=$(cd "$BUILD" && pwd)
SYSPY=${IDL_SYSTEM_PYTHON:-/usr/bin/python3}
VENV=${IDL_VENV:-$BUILD/venv}
THREADS=${IDL_BENCH_THREADS:-2}
RUNS=${IDL_BENCH_RUNS:-10}
WARMUP=${IDL_BENCH_WARMUP:-2}
BATCH=${IDL_BENCH_BATCH:-1,8}
BENCH=$BUILD/bench/interpretdl-bench
MODEL=$BUILD/models/resnet50/model.onnx
OUT=$BUILD/bench/results
mkdir -p "$OUT"

[ -x "$BENCH" ] || { echo "run_bench: $BENCH is not built (cmake --build $BUILD)" >&2; exit 1; }
if [ ! -f "$MODEL" ]; then
    echo "run_bench: exporting resnet50 to $MODEL"
    OMP_WAIT_POLICY=PASSIVE "$SYSPY" "$REF/make_torchvision.py" "$BUILD/models" --models resnet50
fi
[ -x "$VENV/bin/python" ] || "$REF/setup_venv.sh" "$VENV"

echo "== $(nproc) cores, $THREADS threads each, batch $BATCH, $WARMUP warm-up + $RUNS timed runs (median)"
echo "== interpretdl"
OMP_NUM_THREADS=$THREADS "$BENCH" "$MODEL" --threads "$THREADS" --runs "$RUNS" --warmup "$WARMUP" \
    --batch "$BATCH" | tee "$OUT/ours.txt"
echo "== onnxruntime"
OMP_NUM_THREADS=$THREADS "$VENV/bin/python" "$HERE/bench_ref.py" ort "$MODEL" --threads "$THREADS" \
    --runs "$RUNS" --warmup "$WARMUP" --batch "$BATCH" | tee "$OUT/ort.txt"
echo "== pytorch"
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS "$SYSPY" "$HERE/bench_ref.py" torch resnet50 \
    --threads "$THREADS" --runs "$RUNS" --warmup "$WARMUP" --batch "$BATCH" | tee "$OUT/torch.txt"
echo
"$SYSPY" "$HERE/bench_ref.py" table "$OUT/ours.txt" "$OUT/ort.txt" "$OUT/torch.txt" --gflop 8.2 \
    | tee "$OUT/table.txt"
