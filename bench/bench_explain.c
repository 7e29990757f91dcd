/* bench_explain.c — interpretdl-bench-explain: times the explanation methods end to end
 * (idl_explain: clean forward, every internal pass, the map) on one session, with the settings
 * that do the same work as the references of bench/explain_ref.py (Captum 0.7.0 and
 * pytorch-grad-cam 1.5.5). The objective is the logit of the argmax class everywhere, as Captum
 * and pytorch-grad-cam differentiate the logit.
 *
 * usage: interpretdl-bench-explain MODEL.onnx [--methods a,b,...] [--runs N] [--warmup W]
 *                                  [--threads T] [--batch B] [--shape D1,D2,...]
 *   --methods  names of the table below, comma separated (default: all but gradcam_captum); a
 *              name the table lacks is run as a registry method with objective=logit only
 *   --runs     timed runs per method, the median is reported (default 3)
 *   --warmup   untimed runs first (default 1; the first call of a batch size also plans)
 *   --threads  kernel threads (default 0: OMP_NUM_THREADS or all cores)
 *   --batch    samples explained per call (default 1)
 *   --shape    the input shape after the batch axis when the model leaves it free
 *              (default: the model's, or 3,224,224 where it gives none)
 * Input: graph input 0, float32, the fixed pseudo-random pattern in [-1, 1) of interpretdl-bench.
 * Output: a header, then one line per method, also as a machine-readable line
 *   RESULT <method> <batch> <median_ms> <min_ms> <max_ms> <first_call_ms> <passes> <maxrss_kb>
 * (passes: rows evaluated per call as the explanation counts them, the clean pass included;
 * maxrss_kb: the process's peak RSS so far, getrusage), and at the end  PEAK_RSS_KB <ru_maxrss>.
 * bench/run_explain_bench.sh reads them. Exit status 0, or 1 with idl_last_error() when a method
 * fails (the others still run; a failed method prints  FAILED <method> <error>). */
#define _POSIX_C_SOURCE 200809L

#include "interpretdl/explain.h"
#include "interpretdl/interpretdl.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_RUNS    1000
#define MAX_METHODS 64
#define MAX_SET     8

/* One benchmarked configuration: the registry method and its settings. */
typedef struct bench_method {
    const char *label;  /* name on the RESULT line (and in --methods) */
    const char *method; /* registry name */
    const char *set[MAX_SET];
    int in_default; /* run when --methods is not given */
} bench_method;

/* The reference's work for each (bench/explain_ref.py):
 *  saliency              Captum Saliency (abs=True)                    1 forward + backward
 *  input_x_gradient      Captum InputXGradient                         1 forward + backward
 *  smoothgrad            Captum NoiseTunnel(Saliency), 50 samples       50 noisy gradients
 *  integrated_gradients  Captum IntegratedGradients, 50 steps, gausslegendre, zero baseline
 *  gradient_shap         Captum GradientShap, 20 samples, zero baseline, stdevs 0
 *  guided_backprop       Captum GuidedBackprop
 *  gradcam ... layercam  pytorch-grad-cam: ReLU, min-max, bilinear to the input size
 *  guided_gradcam        Captum GuidedGradCam (nearest upsampling, its default)
 *  gradcam_captum        Captum LayerGradCam defaults: no ReLU, no upsampling (optional) */
static const bench_method g_table[] = {
    { "saliency", "saliency", { "abs=1" }, 1 },
    { "input_x_gradient", "input_x_gradient", { NULL }, 1 },
    { "smoothgrad", "smoothgrad", { "n_samples=50" }, 1 },
    { "integrated_gradients", "integrated_gradients", { "steps=50", "method=gausslegendre" }, 1 },
    { "gradient_shap", "gradient_shap", { "n_samples=20", "baseline=zero", "noise=0" }, 1 },
    { "guided_backprop", "guided_backprop", { NULL }, 1 },
    { "gradcam", "gradcam", { "relu=1", "normalize=1", "upsample=1" }, 1 },
    { "gradcam_plus_plus", "gradcam_plus_plus", { "relu=1", "normalize=1", "upsample=1" }, 1 },
    { "xgradcam", "xgradcam", { "relu=1", "normalize=1", "upsample=1" }, 1 },
    { "layercam", "layercam", { "relu=1", "normalize=1", "upsample=1" }, 1 },
    { "guided_gradcam", "guided_gradcam", { "interpolate=nearest" }, 1 },
    { "gradcam_captum", "gradcam", { "relu=0", "normalize=0", "upsample=0" }, 0 },
};
#define N_TABLE ((int)(sizeof g_table / sizeof *g_table))

/* Peak resident set size of the process so far, KiB (Linux ru_maxrss). */
static long peak_rss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (long)ru.ru_maxrss;
}

static int fail(const char *what) {
    fprintf(stderr, "interpretdl-bench-explain: %s: %s\n", what, idl_last_error());
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: interpretdl-bench-explain MODEL.onnx [--methods a,b,...] [--runs N] "
                    "[--warmup W] [--threads T] [--batch B] [--shape D1,D2,...]\n"
                    "methods:");
    for (int i = 0; i < N_TABLE; i++)
        fprintf(stderr, " %s", g_table[i].label);
    fprintf(stderr, " (or any registry method, run with objective=logit only)\n");
    return 2;
}

/* Splits a comma-separated list of method labels into bm (table entries, or registry methods
 * with no settings). Returns the count or -1. */
static int parse_methods(char *list, bench_method *bm, int max) {
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (n >= max) return -1;
        int found = 0;
        for (int i = 0; i < N_TABLE && !found; i++)
            if (!strcmp(g_table[i].label, tok)) bm[n] = g_table[i], found = 1;
        if (!found) {
            memset(&bm[n], 0, sizeof bm[n]);
            bm[n].label = bm[n].method = tok;
        }
        n++;
    }
    return n;
}

static int n_settings(const bench_method *m) {
    int n = 0;
    while (n < MAX_SET && m->set[n])
        n++;
    return n;
}

/* One call; *passes gets the explanation's pass count. */
static int call(idl_session *s, const bench_method *m, const idl_explain_request *rq,
                int64_t *passes) {
    idl_explanation e;
    if (idl_explain(s, m->method, rq, m->set, n_settings(m), &e) != IDL_OK) return -1;
    *passes = e.passes;
    idl_explanation_clear(&e);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    char *methods_arg = NULL;
    int64_t tail[IDL_MAX_DIMS];
    int n_tail = -1, runs = 3, warmup = 1, threads = 0;
    long long batch = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--methods") && v) {
            methods_arg = argv[++i];
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
        } else if (!strcmp(a, "--batch") && v) {
            batch = atoll(v);
            if (batch < 1) return usage();
            i++;
        } else if (!strcmp(a, "--shape") && v) {
            n_tail = bench_parse_list(v, tail, IDL_MAX_DIMS - 1);
            if (n_tail <= 0) return usage();
            i++;
        } else if (a[0] == '-' || path) {
            return usage();
        } else {
            path = a;
        }
    }
    if (!path) return usage();

    bench_method bm[MAX_METHODS];
    int n_methods = 0;
    if (methods_arg) {
        n_methods = parse_methods(methods_arg, bm, MAX_METHODS);
        if (n_methods <= 0) return usage();
    } else {
        for (int i = 0; i < N_TABLE; i++)
            if (g_table[i].in_default) bm[n_methods++] = g_table[i];
    }

    idl_model *m = NULL;
    idl_session *s = NULL;
    if (idl_model_load(path, NULL, &m) != IDL_OK) return fail("load");
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = threads;
    if (idl_session_new(m, &so, &s) != IDL_OK) return fail("session");
    idl_value_info info;
    if (idl_model_n_inputs(m) < 1 || idl_model_input(m, 0, &info) != IDL_OK) return fail("input");
    if (n_tail < 0) {
        /* the model's shape after the batch axis; 3x224x224 where it gives none or leaves a
         * dimension free */
        int ok = info.ndim >= 2;
        for (int i = 1; ok && i < info.ndim; i++)
            ok = info.shape[i] > 0;
        if (ok) {
            n_tail = info.ndim - 1;
            for (int i = 0; i < n_tail; i++)
                tail[i] = info.shape[i + 1];
        } else {
            n_tail = 3;
            tail[0] = 3, tail[1] = 224, tail[2] = 224;
        }
    }
    int64_t shape[IDL_MAX_DIMS];
    shape[0] = batch;
    for (int i = 0; i < n_tail; i++)
        shape[i + 1] = tail[i];
    idl_tensor *x = NULL;
    if (idl_tensor_new(IDL_DT_F32, n_tail + 1, shape, &x) != IDL_OK) return fail("input tensor");
    float *xd = x->data;
    uint32_t state = 12345u; /* interpretdl-bench's pattern */
    for (int64_t i = 0, n = idl_tensor_numel(x); i < n; i++) {
        state = state * 1664525u + 1013904223u;
        xd[i] = (float)((double)(state >> 8) / 8388608.0 - 1.0);
    }

    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *ins[1] = { x };
    rq.inputs = ins;
    rq.n_inputs = 1;
    rq.objective = IDL_OBJ_LOGIT; /* Captum and pytorch-grad-cam differentiate the logit */

    const char *env_threads = getenv("OMP_NUM_THREADS"), *env_wait = getenv("OMP_WAIT_POLICY");
    char shp[128];
    int off = 0;
    for (int i = 0; i <= n_tail && off < (int)sizeof shp - 24; i++)
        off += snprintf(shp + off, sizeof shp - (size_t)off, i ? "x%lld" : "%lld",
                        (long long)shape[i]);
    printf("# interpretdl-bench-explain %s: %s, input '%s' %s, threads %d (OMP_NUM_THREADS=%s, "
           "OMP_WAIT_POLICY=%s), objective logit of the argmax, %d warm-up + %d timed runs, "
           "median\n",
           idl_version(), path, info.name, shp, threads, env_threads ? env_threads : "unset",
           env_wait ? env_wait : "unset", warmup, runs);
    printf("# %-22s %5s %11s %9s %9s %14s %7s %8s  settings\n", "method", "batch", "median_ms",
           "min_ms", "max_ms", "first_call_ms", "passes", "rss_MiB");
    fflush(stdout);
    int rc = 0;
    for (int mi = 0; mi < n_methods; mi++) {
        const bench_method *b = &bm[mi];
        int64_t passes = 0;
        double t0 = bench_now_ms();
        int bad = call(s, b, &rq, &passes);
        double first = bench_now_ms() - t0;
        for (int w = 0; w < warmup && !bad; w++)
            bad = call(s, b, &rq, &passes);
        double times[MAX_RUNS];
        for (int r = 0; r < runs && !bad; r++) {
            t0 = bench_now_ms();
            bad = call(s, b, &rq, &passes);
            times[r] = bench_now_ms() - t0;
        }
        if (bad) {
            printf("FAILED %s %s\n", b->label, idl_last_error());
            fflush(stdout);
            rc = fail(b->label);
            continue;
        }
        qsort(times, (size_t)runs, sizeof *times, bench_cmp_double);
        double med = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
        char set[256] = "";
        for (int k = 0, o = 0; k < n_settings(b) && o < (int)sizeof set - 1; k++)
            o += snprintf(set + o, sizeof set - (size_t)o, "%s%s", k ? " " : "", b->set[k]);
        long rss = peak_rss_kb();
        printf("  %-22s %5lld %11.2f %9.2f %9.2f %14.2f %7lld %8.1f  %s%s%s\n", b->label, batch,
               med, times[0], times[runs - 1], first, (long long)passes, (double)rss / 1024.0,
               b->method, set[0] ? " " : "", set);
        printf("RESULT %s %lld %.3f %.3f %.3f %.3f %lld %ld\n", b->label, batch, med, times[0],
               times[runs - 1], first, (long long)passes, rss);
        fflush(stdout);
    }
    long rss = peak_rss_kb();
    printf("# peak RSS %.1f MiB\n", (double)rss / 1024.0);
    printf("PEAK_RSS_KB %ld\n", rss);
    idl_tensor_free(x);
    idl_session_free(s);
    idl_model_free(m);
    return rc;
}
