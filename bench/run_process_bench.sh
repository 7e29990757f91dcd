#!/usr/bin/env bash
# run_process_bench.sh BUILD_DIR — whole processes, start-up included: `interpretdl run` against a
# Python process running the same ONNX file in ONNX Runtime (bench/process_ref.py), rounds in
# turn; a table of median wall times, their ratio, peak RSS, and the ONNX Runtime process's time
# inside session creation and the run.
#   BUILD_DIR/interpretdl must be built; models BUILD_DIR/models/NAME/model.onnx (run_bench.sh or
#   tests/reference/generate_all.sh make them). ONNX Runtime: the venv of
#   tests/reference/setup_venv.sh (IDL_VENV, default BUILD_DIR/venv; made when missing).
#   Environment: IDL_BENCH_MODELS (resnet50,vit_b_16), IDL_BENCH_BATCH (8), IDL_BENCH_RUNS (5),
#   IDL_BENCH_THREADS (2). Results in BUILD_DIR/bench/results/process/table.txt.
set -euo pipefail

BUILD=${1:?usage: run_process_bench.sh BUILD_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$BUILD" && pwd)
VENV=${IDL_VENV:-$BUILD/venv}
[ -x "$BUILD/interpretdl" ] || { echo "run_process_bench: $BUILD/interpretdl is not built" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$HERE/../tests/reference/setup_venv.sh" "$VENV"
mkdir -p "$BUILD/bench/results/process"
"$VENV/bin/python" "$HERE/process_ref.py" "$BUILD" --models "${IDL_BENCH_MODELS:-resnet50,vit_b_16}" \
    --batch "${IDL_BENCH_BATCH:-8}" --runs "${IDL_BENCH_RUNS:-5}" --threads "${IDL_BENCH_THREADS:-2}" \
    | tee "$BUILD/bench/results/process/table.txt"
