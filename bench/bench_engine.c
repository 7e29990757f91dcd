/* bench_engine.c — interpretdl-bench: times a model's forward pass and forward + input gradient
 * (probability of the argmax class, summed over the batch) through the public API.
 *
 * usage: interpretdl-bench MODEL.onnx [--batch 1,8] [--runs N] [--warmup W] [--threads T]
 *                          [--mode fwd,grad] [--shape D1,D2,...] [--direct-conv]
 *                          [--keep-values]
 *   --batch    batch sizes, comma separated (default 1,8)
 *   --runs     timed runs per measurement, the median is reported (default 10)
 *   --warmup   untimed runs first (default 2; the first forward of a batch size also plans)
 *   --threads  kernel threads (default 0: OMP_NUM_THREADS or all cores)
 *   --mode     fwd (forward) and/or grad (forward + backward w.r.t. the input)
 *   --shape    the input shape after the batch axis, when the model leaves it free
 *   --direct-conv  every convolution on oneDNN's direct kernels (session option direct_conv),
 *              to measure what the Winograd convolutions change
 *   --keep-values  both modes on sessions that keep every value, instead of a forward_only
 *              session for fwd (its values share an arena) and a save_for_backward one for grad
 *              (it keeps what the backward reads)
 * Mode fwd runs on a session with the option forward_only (the inference path), grad on one with
 * save_for_backward (what the explanation methods' gradient passes use). Input: graph input 0,
 * float32, filled with a fixed pseudo-random pattern in [-1, 1). Output: a header, then one line
 * per measurement, also as a machine-readable line RESULT <mode> <batch> <median_ms> <min_ms>
 * <max_ms> <first_call_ms> <peak_rss_kb> and first  PEAK <GFLOP/s>: the machine's float32 peak on
 * these threads as bench/peak.c measures it (AVX2 FMA chains; 0 without AVX2 + FMA), for the
 * fraction of peak in run_bench.sh's table; (peak_rss_kb: the process's peak resident set so far,
 * getrusage: run one mode and batch per process for the peak of that measurement alone, as
 * bench/run_bench.sh does) that bench/run_bench.sh reads. Exit status 0, or 1 with idl_last_error()
 * on failure. */
#define _POSIX_C_SOURCE 200809L

#include "interpretdl/interpretdl.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BATCHES 16
#define MAX_RUNS    1000

static int fail(const char *what) {
    fprintf(stderr, "interpretdl-bench: %s: %s\n", what, idl_last_error());
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: interpretdl-bench MODEL.onnx [--batch 1,8] [--runs N] [--warmup W] "
                    "[--threads T] [--mode fwd,grad] [--shape D1,D2,...] [--direct-conv] "
                    "[--keep-values]\n");
    return 2;
}

/* One forward (and backward when grad) on session s. */
static int step(idl_session *s, const idl_tensor *x, const char *in_name, int grad) {
    const idl_tensor *ins[1] = { x };
    if (idl_session_forward(s, ins, NULL, 1) != IDL_OK) return -1;
    if (grad) {
        idl_objective obj = idl_objective_default(); /* probability of the argmax */
        const char *wrt[1] = { in_name };
        if (idl_session_backward(s, &obj, wrt, 1) != IDL_OK) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int64_t batches[MAX_BATCHES] = { 1, 8 }, tail[IDL_MAX_DIMS];
    int n_batches = 2, n_tail = -1, runs = 10, warmup = 2, threads = 0, do_fwd = 1, do_grad = 1,
        direct_conv = 0, keep_values = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--batch") && v) {
            n_batches = bench_parse_list(v, batches, MAX_BATCHES);
            if (n_batches <= 0) return usage();
            i++;
        } else if (!strcmp(a, "--runs") && v) {
            runs = atoi(v);
            if (runs < 1 || runs > MAX_RUNS) return usage();
            i++;
        } else if (!strcmp(a, "--warmup") && v) {
            warmup = atoi(v);
            if (warmup < 0) return usage();
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            threads = atoi(v);
            i++;
        } else if (!strcmp(a, "--mode") && v) {
            do_fwd = strstr(v, "fwd") != NULL;
            do_grad = strstr(v, "grad") != NULL;
            if (!do_fwd && !do_grad) return usage();
            i++;
        } else if (!strcmp(a, "--shape") && v) {
            n_tail = bench_parse_list(v, tail, IDL_MAX_DIMS - 1);
            if (n_tail <= 0) return usage();
            i++;
        } else if (!strcmp(a, "--direct-conv")) {
            direct_conv = 1;
        } else if (!strcmp(a, "--keep-values")) {
            keep_values = 1;
        } else if (a[0] == '-' || path) {
            return usage();
        } else {
            path = a;
        }
    }
    if (!path) return usage();

    idl_model *m = NULL;
    idl_session *s = NULL, *sf = NULL;
    if (idl_model_load(path, NULL, &m) != IDL_OK) return fail("load");
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = threads;
    so.direct_conv = direct_conv;
    so.save_for_backward = !keep_values;
    if (idl_session_new(m, &so, &s) != IDL_OK) return fail("session");
    so.save_for_backward = 0;
    so.forward_only = !keep_values;
    if (idl_session_new(m, &so, &sf) != IDL_OK) return fail("session");
    idl_value_info info;
    if (idl_model_n_inputs(m) < 1 || idl_model_input(m, 0, &info) != IDL_OK) return fail("input");
    if (n_tail < 0) {
        if (info.ndim < 1) {
            fprintf(stderr, "interpretdl-bench: the model gives no input shape: use --shape\n");
            return 1;
        }
        n_tail = info.ndim - 1;
        for (int i = 0; i < n_tail; i++) {
            tail[i] = info.shape[i + 1];
            if (tail[i] < 0) {
                fprintf(stderr, "interpretdl-bench: input dimension %d is free: use --shape\n",
                        i + 1);
                return 1;
            }
        }
    }

    double peak = bench_peak_gflops(threads);
    printf("# machine peak, AVX2 FMA probe on %d threads: %.1f GFLOP/s\nPEAK %.3f\n",
           threads > 0 ? threads : 0, peak, peak);
    const char *env_threads = getenv("OMP_NUM_THREADS");
    printf("# interpretdl-bench %s: %s, input '%s', threads %d (OMP_NUM_THREADS=%s), %d warm-up + "
           "%d timed runs, median\n",
           idl_version(), path, info.name, threads, env_threads ? env_threads : "unset", warmup,
           runs);
    printf("# %-5s %5s %11s %9s %9s %14s %12s\n", "mode", "batch", "median_ms", "min_ms", "max_ms",
           "first_call_ms", "peak_rss_kb");
    int rc = 0;
    for (int bi = 0; bi < n_batches && !rc; bi++) {
        int64_t shape[IDL_MAX_DIMS];
        shape[0] = batches[bi];
        for (int i = 0; i < n_tail; i++)
            shape[i + 1] = tail[i];
        idl_tensor *x = NULL;
        if (idl_tensor_new(IDL_DT_F32, n_tail + 1, shape, &x) != IDL_OK)
            return fail("input tensor");
        float *xd = x->data;
        uint32_t state = 12345u;
        for (int64_t i = 0, n = idl_tensor_numel(x); i < n; i++) {
            state = state * 1664525u + 1013904223u;
            xd[i] = (float)((double)(state >> 8) / 8388608.0 - 1.0);
        }
        for (int mode = 0; mode < 2 && !rc; mode++) {
            if ((mode == 0 && !do_fwd) || (mode == 1 && !do_grad)) continue;
            idl_session *ss = mode ? s : sf;
            double t0 = bench_now_ms();
            if (step(ss, x, info.name, mode)) {
                rc = fail(mode ? "forward+backward" : "forward");
                break;
            }
            double first = bench_now_ms() - t0;
            for (int w = 0; w < warmup && !rc; w++)
                if (step(ss, x, info.name, mode)) rc = fail("warm-up");
            double times[MAX_RUNS];
            for (int r = 0; r < runs && !rc; r++) {
                t0 = bench_now_ms();
                if (step(ss, x, info.name, mode)) rc = fail("timed run");
                times[r] = bench_now_ms() - t0;
            }
            if (rc) break;
            qsort(times, (size_t)runs, sizeof *times, bench_cmp_double);
            double med = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
            const char *name = mode ? "grad" : "fwd";
            long rss = bench_peak_rss_kb();
            printf("  %-5s %5lld %11.2f %9.2f %9.2f %14.2f %12ld\n", name, (long long)batches[bi],
                   med, times[0], times[runs - 1], first, rss);
            printf("RESULT %s %lld %.3f %.3f %.3f %.3f %ld\n", name, (long long)batches[bi], med,
                   times[0], times[runs - 1], first, rss);
            fflush(stdout);
        }
        idl_tensor_free(x);
    }
    idl_session_free(s);
    idl_session_free(sf);
    idl_model_free(m);
    return rc;
}
