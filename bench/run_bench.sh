#!/usr/bin/env bash
# run_bench.sh BUILD_DIR — the engine against ONNX Runtime and PyTorch 1.13 in the same run:
# forward and forward + input gradient (probability of the argmax class) at batch 1 and 8, same
# threads, one process per (side, mode, batch) so that each line's peak resident memory is that
# measurement's own; then a table per model with times, ratios, GFLOP/s and peak MiB.
#   BUILD_DIR/bench/interpretdl-bench must be built (IDL_BUILD_BENCH, on by default).
#   Models (IDL_BENCH_MODELS, default resnet50,mobilenet_v2,vit_b_16,bert_base; random weights):
#     resnet50  BUILD_DIR/models/resnet50/model.onnx, exported with
#               tests/reference/make_torchvision.py when missing (Debian's python3-torch);
#               8.2 GFLOP per image forward
#     mobilenet_v2  the same way (make_torchvision.py --models mobilenet_v2); 0.6 GFLOP
#     vit_b_16  BUILD_DIR/models/vit_b_16/model.onnx from tests/reference/make_transformers.py
#               (tests/reference/generate_all.sh BUILD_DIR makes it; skipped when missing);
#               35.1 GFLOP per image forward. PyTorch runs it with Debian's OpenBLAS unpacked
#               into BUILD_DIR/bench/openblas when run_attn_bench.sh fetched it (the netlib BLAS
#               otherwise: ~16 s a forward).
#     bert_base  BUILD_DIR/bench/models/bert_base/model.onnx, a BERT-base-sized encoder (12 layers of
#               768, 12 heads, MLP 3072) from its embeddings (N, 128, 768), exported by
#               bench/bert_encoder.py when missing; 22.3 GFLOP per sequence forward. PyTorch
#               runs the same module with OpenBLAS as for vit_b_16.
#   Our forward runs on a forward_only session (interpretdl-bench), the inference path.
#   ONNX Runtime: the venv of tests/reference/setup_venv.sh (IDL_VENV, default BUILD_DIR/venv;
#   made when missing). Environment: IDL_BENCH_THREADS (2), IDL_BENCH_RUNS (10),
#   IDL_BENCH_WARMUP (2), IDL_BENCH_BATCH (1,8), IDL_BENCH_MODES (fwd,grad), IDL_BENCH_ROUNDS (1:
#   each line again that many times, ours and the references in turn, so that a slow spell of the
#   machine falls on both; the table then gives the median of the rounds and, below it, each
#   round's ratio and their median). Every process runs
#   with OMP_WAIT_POLICY=PASSIVE (libgomp's spinning makes timings fragile on 2 cores).
#   Raw results stay in BUILD_DIR/bench/results/<model>/.
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
MODES=${IDL_BENCH_MODES:-fwd,grad}
MODELS=${IDL_BENCH_MODELS:-resnet50,mobilenet_v2,vit_b_16,bert_base}
ROUNDS=${IDL_BENCH_ROUNDS:-1}
BENCH=$BUILD/bench/interpretdl-bench
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS

[ -x "$BENCH" ] || { echo "run_bench: $BENCH is not built (cmake --build $BUILD)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$REF/setup_venv.sh" "$VENV"
OBLIB=$BUILD/bench/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp

echo "== $(nproc) cores, $THREADS threads each, batch $BATCH, $WARMUP warm-up + $RUNS timed runs" \
    "(median), load $(cut -d' ' -f1-3 /proc/loadavg)"
for model in ${MODELS//,/ }; do
    case $model in
        resnet50) gflop=8.2 ;;
        mobilenet_v2) gflop=0.6 ;;
        vit_b_16) gflop=35.1 ;;
        bert_base) gflop=22.3 ;;
        *)
            echo "run_bench: unknown model $model (resnet50, mobilenet_v2, vit_b_16, bert_base)" >&2
            exit 2
            ;;
    esac
    onnx=$BUILD/models/$model/model.onnx
    # bert_base has no parity fixtures, so it stays out of BUILD_DIR/models (test_parity reads
    # every model there)
    [ "$model" = bert_base ] && onnx=$BUILD/bench/models/$model/model.onnx
    if [ ! -f "$onnx" ] && [ "$model" = bert_base ]; then
        echo "run_bench: exporting $model to $onnx"
        mkdir -p "$(dirname "$onnx")"
        "$SYSPY" "$HERE/bert_encoder.py" "$onnx"
    elif [ ! -f "$onnx" ] && [ "$model" != vit_b_16 ]; then
        echo "run_bench: exporting $model to $onnx"
        "$SYSPY" "$REF/make_torchvision.py" "$BUILD/models" --models "$model"
    fi
    if [ ! -f "$onnx" ]; then
        echo "run_bench: $onnx is missing (tests/reference/generate_all.sh $BUILD); $model skipped"
        continue
    fi
    TORCH_ENV=()
    if { [ "$model" = vit_b_16 ] || [ "$model" = bert_base ]; } && [ -f "$OBLIB/libblas.so.3" ]; then
        TORCH_ENV=(LD_LIBRARY_PATH="$OBLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    fi
    OUT=$BUILD/bench/results/$model
    mkdir -p "$OUT"
    : >"$OUT/ours.txt"
    : >"$OUT/ort.txt"
    : >"$OUT/torch.txt"
    echo "== $model"
    common=(--threads "$THREADS" --runs "$RUNS" --warmup "$WARMUP")
    for b in $(for _ in $(seq "$ROUNDS"); do echo "${BATCH//,/ }"; done); do
        for mode in ${MODES//,/ }; do
            "$BENCH" "$onnx" "${common[@]}" --batch "$b" --mode "$mode" | grep -E "^(RESULT|PEAK)" \
                | tee -a "$OUT/ours.txt"
            if [ "$mode" = fwd ]; then
                "$VENV/bin/python" "$HERE/bench_ref.py" ort "$onnx" "${common[@]}" --batch "$b" \
                    --mode fwd | grep RESULT | sed 's/^/ort   /' | tee -a "$OUT/ort.txt"
            fi
            env "${TORCH_ENV[@]}" "$SYSPY" "$HERE/bench_ref.py" torch "$model" "${common[@]}" \
                --batch "$b" --mode "$mode" | grep RESULT | sed 's/^/torch /' \
                | tee -a "$OUT/torch.txt"
        done
    done
    sed -i 's/^ort   //; s/^torch //' "$OUT/ort.txt" "$OUT/torch.txt"
    echo
    "$SYSPY" "$HERE/bench_ref.py" table "$OUT/ours.txt" "$OUT/ort.txt" "$OUT/torch.txt" \
        --gflop "$gflop" | tee "$OUT/table.txt"
    echo
done
