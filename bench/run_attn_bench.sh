#!/usr/bin/env bash
# run_attn_bench.sh BUILD_DIR — the transformer explanation methods on torchvision vit_b_16 (random
# weights), batch 1: interpretdl-bench-explain against the PyTorch references of
# tests/reference/make_attention_explain.py (run by bench/attn_ref.py) on the same network and the
# same input, same threads, objective the logit of the argmax on both sides, one after the other
# in this run, then a table: method, our median ms, PyTorch's, speed-up (PyTorch / ours), the peak
# RSS of each side, the CPU time of each side and their ratio, and the agreement of each map with
# the reference's (Pearson, Spearman, max |diff| / max |ref|).
#   Methods (IDL_BENCH_METHODS, default all): rollout (start_layer=0 head_fusion=mean),
#   generic_attention (variant=paper), attention_gradcam, tam (start_layer=4 steps=20), bt
#   (mode=head start_layer=0 steps=20), bt_token (bt mode=token, the same otherwise): the registry
#   defaults, which attn_ref.py's lines repeat. Plus the row "forward": one plain forward
#   (interpretdl-bench --mode fwd; torch under no_grad), for scale (IDL_BENCH_FORWARD=0: none).
#   Each method runs in a process of its own on each side (ours first), so the RSS column is that
#   method's peak. rollout, generic_attention, attention_gradcam (one or two passes): a first call,
#   IDL_BENCH_WARMUP (1) warm-ups, IDL_BENCH_RUNS (3) timed runs; tam, bt, bt_token (20 passes,
#   6-15 s a call on 2 cores): a first call, IDL_BENCH_SLOW_WARMUP (0) warm-ups,
#   IDL_BENCH_SLOW_RUNS (1) timed runs. The whole run takes ~3.5 minutes on 2 idle cores.
#   BUILD_DIR/bench/interpretdl-bench-explain and interpretdl-bench must be built
#   (-DIDL_BUILD_BENCH=ON). The model: BUILD_DIR/models/vit_b_16/{model.onnx,input.npy}, made by
#   tests/reference/make_transformers.py (tests/reference/generate_all.sh BUILD_DIR/models makes
#   it with the other generated models); attn_ref.py checks that its rebuilt torch model draws the
#   same input.npy and gives ONNX Runtime's logits on model.onnx. Python: the venv of
#   tests/reference/setup_venv.sh (IDL_VENV, default BUILD_DIR/venv: Debian's torch 1.13).
#   BLAS of the reference (IDL_BENCH_TORCH_BLAS): Debian's torch does its Linear and matmul through
#   libblas.so.3, which is the reference (netlib) BLAS on this machine unless another alternative
#   is installed: ~3.6 GFLOP/s, a vit_b_16 forward ~16 s of CPU, tam ~5 minutes a call. "openblas"
#   (default): Debian's libopenblas0-openmp is fetched once with `apt-get download` and unpacked
#   into BUILD_DIR/bench/openblas (dpkg -x; nothing is installed), and only the reference
#   processes load it (LD_LIBRARY_PATH; the OpenMP build shares torch's libgomp threads). "system":
#   whatever libblas.so.3 the system has. The reference's header line names the library loaded.
#   Environment as run_explain_bench.sh: IDL_BENCH_THREADS (2), IDL_BENCH_OURS_WAIT_POLICY (unset:
#   libgomp's spin-then-sleep; the references always run with OMP_WAIT_POLICY=PASSIVE).
#   IDL_BENCH_MAX_LOAD (1.5) / IDL_BENCH_LOAD_WAIT (900 s): before measuring, waits until the
#   1-minute load average is below the first, for at most the second, then measures anyway; the
#   load is printed before each process. Raw results stay in BUILD_DIR/bench/results/attn/.
set -euo pipefail

BUILD=${1:?usage: run_attn_bench.sh BUILD_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$BUILD" && pwd)
VENV=${IDL_VENV:-$BUILD/venv}
PY=$VENV/bin/python
THREADS=${IDL_BENCH_THREADS:-2}
RUNS=${IDL_BENCH_RUNS:-3}
WARMUP=${IDL_BENCH_WARMUP:-1}
SLOW_RUNS=${IDL_BENCH_SLOW_RUNS:-1}
SLOW_WARMUP=${IDL_BENCH_SLOW_WARMUP:-0}
METHODS=${IDL_BENCH_METHODS:-rollout,generic_attention,attention_gradcam,tam,bt,bt_token}
FORWARD=${IDL_BENCH_FORWARD:-1}
TORCH_BLAS=${IDL_BENCH_TORCH_BLAS:-openblas}
MAX_LOAD=${IDL_BENCH_MAX_LOAD:-1.5}
LOAD_WAIT=${IDL_BENCH_LOAD_WAIT:-900}
OURS_POLICY=${IDL_BENCH_OURS_WAIT_POLICY:-}
BENCH=$BUILD/bench/interpretdl-bench-explain
ENGINE=$BUILD/bench/interpretdl-bench
MDIR=$BUILD/models/vit_b_16
MODEL=$MDIR/model.onnx
OUT=$BUILD/bench/results/attn

for b in "$BENCH" "$ENGINE"; do
    [ -x "$b" ] || {
        echo "run_attn_bench: $b is not built (cmake -DIDL_BUILD_BENCH=ON $BUILD;" \
            "cmake --build $BUILD)" >&2
        exit 1
    }
done
case $("$BENCH" --help 2>&1 || true) in
    *"--input X.npy"*"--out DIR"*) ;;
    *)
        echo "run_attn_bench: $BENCH has no --input / --out (rebuild it)" >&2
        exit 1
        ;;
esac
if [ ! -f "$MODEL" ] || [ ! -f "$MDIR/input.npy" ]; then
    echo "run_attn_bench: $MODEL or its input.npy is missing; make it with" \
        "  $PY $HERE/../tests/reference/make_transformers.py $BUILD/models --models vit_b_16" \
        " (or tests/reference/generate_all.sh $BUILD/models, which makes every generated model)" >&2
    exit 1
fi
[ -x "$PY" ] || {
    echo "run_attn_bench: no venv at $VENV (tests/reference/setup_venv.sh $VENV)" >&2
    exit 1
}

# the reference's BLAS
TORCH_ENV=()
case $TORCH_BLAS in
    system) ;;
    openblas)
        OB=$BUILD/bench/openblas
        OBLIB=$OB/usr/lib/x86_64-linux-gnu/openblas-openmp
        if [ ! -f "$OBLIB/libblas.so.3" ]; then
            echo "== fetching Debian's libopenblas0-openmp into $OB (apt-get download; dpkg -x)"
            tmp=$(mktemp -d)
            if (cd "$tmp" && apt-get download libopenblas0-openmp >/dev/null 2>&1); then
                dpkg -x "$tmp"/libopenblas0-openmp_*.deb "$OB"
            fi
            rm -rf "$tmp"
        fi
        if [ -f "$OBLIB/libblas.so.3" ]; then
            TORCH_ENV=(LD_LIBRARY_PATH="$OBLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
        else
            echo "run_attn_bench: no OpenBLAS (apt-get download libopenblas0-openmp failed);" \
                "the reference runs with the system's libblas.so.3" >&2
        fi
        ;;
    *)
        echo "run_attn_bench: IDL_BENCH_TORCH_BLAS is openblas or system" >&2
        exit 2
        ;;
esac

load1() { cut -d' ' -f1 /proc/loadavg; }
load() { echo "== load: $(uptime | sed 's/.*load average/load average/')"; }

mkdir -p "$OUT"
rm -rf "$OUT"/ours-* "$OUT"/torch-*.txt "$OUT/maps" "$OUT/table.txt" "$OUT/check.txt"
mkdir -p "$OUT/maps"

waited=0
while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }' &&
    [ "$waited" -lt "$LOAD_WAIT" ]; do
    [ "$waited" -eq 0 ] && echo "== load $(load1) >= $MAX_LOAD: waiting (at most ${LOAD_WAIT}s)"
    sleep 30
    waited=$((waited + 30))
done
if awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; then
    echo "== load still $(load1) after ${waited}s: measuring anyway (timings are noisy)"
fi
# the input (sample 0 of input.npy) and the checks of the rebuilt torch model
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS env "${TORCH_ENV[@]}" "$PY" \
    "$HERE/attn_ref.py" input "$MDIR" "$OUT" --threads "$THREADS" | tee "$OUT/check.txt"

ours() { # ours FILE BENCH_ARGS... -> interpretdl-bench-explain on the benchmark input
    local f=$1
    shift
    env ${OURS_POLICY:+OMP_WAIT_POLICY=$OURS_POLICY} OMP_NUM_THREADS="$THREADS" "$BENCH" "$MODEL" \
        --threads "$THREADS" --input "$OUT/x.npy" "$@" | tee "$OUT/$f"
}
ref() { # ref FILE ARGS... -> attn_ref.py torch
    local f=$1
    shift
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS env "${TORCH_ENV[@]}" "$PY" \
        "$HERE/attn_ref.py" torch "$OUT/x.npy" --threads "$THREADS" --out "$OUT/maps" "$@" |
        tee "$OUT/$f"
}

echo "== $(nproc) cores, $THREADS threads each, batch 1; rollout, generic_attention," \
    "attention_gradcam: 1 first call + $WARMUP warm-up + $RUNS timed runs; tam, bt, bt_token:" \
    "1 first call + $SLOW_WARMUP warm-up + $SLOW_RUNS timed runs (median)"
rc=0
if [ "$FORWARD" = 1 ]; then
    load
    echo "== interpretdl forward (interpretdl-bench --mode fwd)"
    # its RESULT line lacks the peak RSS: /usr/bin/time adds it when it is there (no CPU time
    # per call: the process's includes the model load and planning)
    tf=$OUT/ours-forward.time
    tcmd=()
    [ -x /usr/bin/time ] && tcmd=(/usr/bin/time -f "TIME %M" -o "$tf")
    if env ${OURS_POLICY:+OMP_WAIT_POLICY=$OURS_POLICY} OMP_NUM_THREADS="$THREADS" \
        "${tcmd[@]}" "$ENGINE" "$MODEL" --batch 1 --mode fwd --runs "$RUNS" --warmup "$WARMUP" \
        --threads "$THREADS" >"$OUT/ours-forward.raw"; then
        cat "$OUT/ours-forward.raw"
        # RESULT fwd 1 med min max first -> the explain format (passes 1, rss, cpu 0: unknown)
        awk -v tf="$tf" '
            BEGIN { rss = 0; if ((getline l < tf) > 0 && split(l, t) == 2) rss = t[2] }
            $1 == "RESULT" && $2 == "fwd" {
                printf "RESULT forward %s %s %s %s %s 1 %d 0\n", $3, $4, $5, $6, $7, rss }
        ' "$OUT/ours-forward.raw" >"$OUT/ours-forward.txt"
    else
        echo "FAILED forward interpretdl-bench" >"$OUT/ours-forward.txt"
        rc=1
    fi
    load
    echo "== torch forward (no_grad)"
    ref torch-forward.txt --methods forward --runs "$RUNS" --warmup "$WARMUP" || rc=1
fi
for m in ${METHODS//,/ }; do
    case $m in
        rollout | generic_attention | attention_gradcam) r=$RUNS w=$WARMUP ;;
        tam | bt | bt_token) r=$SLOW_RUNS w=$SLOW_WARMUP ;;
        *)
            echo "run_attn_bench: unknown method $m" >&2
            exit 2
            ;;
    esac
    load
    echo "== interpretdl $m (OMP_WAIT_POLICY=${OURS_POLICY:-unset})"
    if [ "$m" = bt_token ]; then
        # the same registry method with mode=token: its own output folder, renamed to bt_token
        mkdir -p "$OUT/maps/token"
        ours ours-bt_token.raw --methods bt --set mode=token --runs "$r" --warmup "$w" \
            --out "$OUT/maps/token" || rc=1
        sed -e 's/^RESULT bt /RESULT bt_token /' -e 's/^# bt target /# bt_token target /' \
            -e 's/^FAILED bt /FAILED bt_token /' "$OUT/ours-bt_token.raw" >"$OUT/ours-bt_token.txt"
        [ ! -f "$OUT/maps/token/bt.npy" ] || mv "$OUT/maps/token/bt.npy" "$OUT/maps/bt_token.npy"
        rmdir "$OUT/maps/token" 2>/dev/null || true
    else
        ours "ours-$m.txt" --methods "$m" --runs "$r" --warmup "$w" --out "$OUT/maps" || rc=1
    fi
    load
    echo "== torch $m (make_attention_explain.py)"
    ref "torch-$m.txt" --methods "$m" --runs "$r" --warmup "$w" || rc=1
done
load
echo
"$PY" "$HERE/attn_ref.py" table "$OUT" | tee "$OUT/table.txt"
exit $rc
