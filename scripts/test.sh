#!/usr/bin/env bash
# test.sh — the full test suite, as CI runs it: format check, -Werror build, generated reference
# models (PyTorch/torchvision, Paddle, PaddleOCR; never committed), every ctest label, then the
# unit/robust/gradcheck/conformance/parity/invariant tests again under AddressSanitizer +
# UndefinedBehaviorSanitizer, and a short libFuzzer run on model loading.
# Environment: IDL_SKIP_GENERATED=1 skips the generated-model parity run (fixtures still run);
#              IDL_FUZZ_RUNS (default 20000 inputs, fixed seed: the same inputs every run).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

./scripts/install_deps.sh --test

echo "== format"
git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c' 'bench/*.h' | xargs clang-format --dry-run --Werror

echo "== build (Release, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DIDL_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"

if [ "${IDL_SKIP_GENERATED:-0}" != 1 ]; then
    echo "== reference models (generated, not committed)"
    tests/reference/setup_venv.sh build/venv
    tests/reference/generate_all.sh build
    cmake -S . -B build -DIDL_PARITY_MODELS="$PWD/build/models" >/dev/null
fi

echo "== ctest (all labels)"
ctest --test-dir build --output-on-failure -j "$JOBS"

echo "== sanitizers (address, undefined)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DIDL_SANITIZE=address,undefined -DIDL_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -L 'unit|robust|gradcheck|conformance|parity|invariant' -E 'generated'

echo "== fuzz (libFuzzer, ${IDL_FUZZ_RUNS:-20000} inputs, seed 1)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDL_BUILD_FUZZ=ON \
    -DIDL_SANITIZE=address,undefined -DIDL_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS" --target fuzz_load
corpus=$(mktemp -d)
for t in relu prelu_example clip conv_with_strides_padding gemm_all_attributes reshape_negative_dim; do
    f=/usr/share/libonnx-testdata/data/node/test_$t/model.onnx
    [ -f "$f" ] && cp "$f" "$corpus/$t.onnx"
done
cp tests/data/parity/small_cnn/model.onnx "$corpus/small_cnn.onnx"
cp tests/data/parity/tiny_text/model.onnx "$corpus/tiny_text.onnx"
(cd "$corpus" && ASAN_OPTIONS=allocator_may_return_null=1 "$OLDPWD/build-fuzz/tests/fuzz_load" -seed=1 -runs="${IDL_FUZZ_RUNS:-20000}" -rss_limit_mb=4096 -malloc_limit_mb=1048576 \
    -timeout=300 "$corpus" 2>&1 | tail -n 3)
rm -rf "$corpus"
echo "== all tests passed"
