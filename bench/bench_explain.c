/* bench_explain.c — interpretdl-bench-explain: times the explanation methods end to end
 * (idl_explain: clean forward, every internal pass, the map) on one session, with the settings
 * that do the same work as the references of bench/explain_ref.py (Captum 0.7.0 and
 * pytorch-grad-cam 1.5.5). The objective is the logit of the argmax class everywhere, as Captum
 * and pytorch-grad-cam differentiate the logit.
 *
 * usage: interpretdl-bench-explain MODEL.onnx [--methods a,b,...] [--runs N] [--warmup W]
 *                                  [--first-timed] [--threads T] [--batch B] [--shape D1,D2,...]
 *                                  [--input X.npy] [--set key=value]... [--out DIR]
 *   --methods  names of the table below, comma separated (default: the gradient methods, all but
 *              gradcam_captum; the perturbation methods occlusion, scorecam, ablationcam and lime
 *              take seconds to minutes a call and run only when named); a name the table lacks
 *              is run as a registry method with objective=logit only
 *   --runs     timed runs per method, the median is reported (default 3)
 *   --warmup   untimed runs after the first call (default 1; the first call of a batch size
 *              also plans; it is reported apart as first_call_ms)
 *   --first-timed  no separate first call: the warm-ups, then the timed runs, the very first
 *              call being the first of these (--warmup 0 --runs 1 calls each method once, the
 *              planning included: for the slow perturbation methods)
 *   --threads  kernel threads (default 0: OMP_NUM_THREADS or all cores)
 *   --batch    samples explained per call (default 1)
 *   --shape    the input shape after the batch axis when the model leaves it free
 *              (default: the model's, or 3,224,224 where it gives none)
 *   --input    the input from a float32 .npy (its shape, batch included; --batch and --shape
 *              are then ignored): bench/explain_ref.py's image, so that both explain the same
 *   --set      a setting for every method named, e.g. --set internal_batch=4 (replaces the
 *              table's value of the same key); repeatable (at most 8)
 *   --out      write each method's attribution of its last call as DIR/<method>.npy (and, for
 *              lime, the superpixels as DIR/<method>.segments.npy): explain_ref.py table
 *              compares them with the references' maps
 * Input: graph input 0, float32, the fixed pseudo-random pattern in [-1, 1) of interpretdl-bench
 * (or --input).
 * Output: a header, then one line per method, also as a machine-readable line
 *   RESULT <method> <batch> <median_ms> <min_ms> <max_ms> <first_call_ms> <passes> <maxrss_kb>
 *          <cpu_ms>
 * (passes: rows evaluated per call as the explanation counts them, the clean pass included;
 * maxrss_kb: the process's peak RSS so far, getrusage; cpu_ms: the process's CPU time, user +
 * system, per timed call (their mean): less sensitive than the wall time to other processes on
 * the machine when the threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE), inflated by
 * spinning otherwise), a comment  # <method> target K score S
 * (sample 0), and at the end  PEAK_RSS_KB <ru_maxrss>.
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
#define MAX_SET     16 /* the table's settings plus --set */
#define MAX_EXTRA   8

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
 *  gradcam_captum        Captum LayerGradCam defaults: no ReLU, no upsampling (optional)
 * The perturbation methods (not in the default list; forward passes only):
 *  occlusion             Captum Occlusion, sliding_window_shapes=(3,16,16), strides=(3,8,8),
 *                        baselines=0: 27 x 27 = 729 occluded copies
 *  scorecam              pytorch-grad-cam ScoreCAM on layer4[-1] (resnet50's default layer
 *                        here: the input of the global average pool): 2048 masked inputs
 *  ablationcam           pytorch-grad-cam AblationCAM on layer4[-1]: 2048 ablated channels,
 *                        each a forward of the whole network on both sides (pytorch-grad-cam
 *                        caches only layer4[-1]'s own output; interpretdl writes the ablated
 *                        layer through a tap and recomputes everything, the layers before it
 *                        included, although only the pooling and fc depend on it)
 *  lime                  the lime package's LimeImageExplainer: quickshift (4, 200, 0.2),
 *                        1000 samples, hide_color=None (superpixel means), Ridge(alpha=1) on the
 *                        softmax probability of the target */
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
    { "occlusion", "occlusion", { "window=3,16,16", "stride=3,8,8", "baseline=0" }, 0 },
    { "scorecam", "scorecam", { "relu=1", "normalize=1", "upsample=1" }, 0 },
    { "ablationcam", "ablationcam", { "relu=1", "normalize=1", "upsample=1" }, 0 },
    { "lime", "lime", { "num_samples=1000", "objective=probability", "ridge_alpha=1" }, 0 },
};
#define N_TABLE ((int)(sizeof g_table / sizeof *g_table))

/* CPU time of the process so far (user + system, all threads), ms. */
static double cpu_ms(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return 1e3 * (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-3 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int fail(const char *what) {
    fprintf(stderr, "interpretdl-bench-explain: %s: %s\n", what, idl_last_error());
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: interpretdl-bench-explain MODEL.onnx [--methods a,b,...] [--runs N] "
                    "[--warmup W] [--first-timed] [--threads T] [--batch B] [--shape D1,D2,...] "
                    "[--input X.npy] [--set key=value]... [--out DIR]\n"
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

/* Adds the --set settings to a method's own: one with a key the method already sets replaces
 * it. Returns 0, or -1 when they do not fit. */
static int add_extra(bench_method *m, const char *const *extra, int n_extra) {
    for (int k = 0; k < n_extra; k++) {
        size_t key = (size_t)(strchr(extra[k], '=') - extra[k]) + 1; /* "key=" */
        int n = n_settings(m), j = 0;
        while (j < n && strncmp(m->set[j], extra[k], key) != 0)
            j++;
        if (j == n && n >= MAX_SET - 1) return -1;
        m->set[j] = extra[k];
        if (j == n) m->set[n + 1] = NULL;
    }
    return 0;
}

/* One call; *passes gets the explanation's pass count. The explanation is cleared, or moved to
 * *keep when keep is not NULL (the caller clears it). */
static int call(idl_session *s, const bench_method *m, const idl_explain_request *rq,
                int64_t *passes, idl_explanation *keep) {
    idl_explanation e;
    if (idl_explain(s, m->method, rq, m->set, n_settings(m), &e) != IDL_OK) return -1;
    *passes = e.passes;
    if (keep)
        *keep = e;
    else
        idl_explanation_clear(&e);
    return 0;
}

/* Writes DIR/<label>.npy (the attribution) and, when the method made them, the superpixels as
 * DIR/<label>.segments.npy. Returns 0 or -1. */
static int save_maps(const char *dir, const char *label, const idl_explanation *e) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.npy", dir, label);
    if (e->attribution && idl_npy_save(p, e->attribution) != IDL_OK) return -1;
    snprintf(p, sizeof p, "%s/%s.segments.npy", dir, label);
    if (e->segments && idl_npy_save(p, e->segments) != IDL_OK) return -1;
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    char *methods_arg = NULL;
    const char *input_path = NULL, *out_dir = NULL, *extra[MAX_EXTRA];
    int64_t tail[IDL_MAX_DIMS];
    int n_tail = -1, runs = 3, warmup = 1, threads = 0, first_timed = 0, n_extra = 0;
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
        } else if (!strcmp(a, "--first-timed")) {
            first_timed = 1;
        } else if (!strcmp(a, "--input") && v) {
            input_path = argv[++i];
        } else if (!strcmp(a, "--out") && v) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--set") && v) {
            if (n_extra >= MAX_EXTRA || !strchr(v, '=')) return usage();
            extra[n_extra++] = argv[++i];
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
    for (int i = 0; i < n_methods; i++)
        if (add_extra(&bm[i], extra, n_extra) != 0) {
            fprintf(stderr, "interpretdl-bench-explain: too many settings for %s\n", bm[i].label);
            return 2;
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
    idl_tensor *x = NULL;
    if (input_path) {
        if (idl_npy_load(input_path, &x) != IDL_OK) return fail(input_path);
        if (x->dtype != IDL_DT_F32 || x->ndim < 2) {
            fprintf(stderr, "interpretdl-bench-explain: %s: not a float32 batch\n", input_path);
            return 1;
        }
        batch = x->shape[0];
        n_tail = x->ndim - 1;
        for (int i = 0; i < x->ndim; i++)
            shape[i] = x->shape[i];
    } else {
        shape[0] = batch;
        for (int i = 0; i < n_tail; i++)
            shape[i + 1] = tail[i];
        if (idl_tensor_new(IDL_DT_F32, n_tail + 1, shape, &x) != IDL_OK)
            return fail("input tensor");
        float *xd = x->data;
        uint32_t state = 12345u; /* interpretdl-bench's pattern */
        for (int64_t i = 0, n = idl_tensor_numel(x); i < n; i++) {
            state = state * 1664525u + 1013904223u;
            xd[i] = (float)((double)(state >> 8) / 8388608.0 - 1.0);
        }
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
    printf(
        "# interpretdl-bench-explain %s: %s, input '%s' %s (%s), threads %d (OMP_NUM_THREADS=%s, "
        "OMP_WAIT_POLICY=%s), objective logit of the argmax, %s%d warm-up + %d timed runs, "
        "median\n",
        idl_version(), path, info.name, shp, input_path ? input_path : "pattern", threads,
        env_threads ? env_threads : "unset", env_wait ? env_wait : "unset",
        first_timed ? "first call timed, " : "", warmup, runs);
    printf("# %-22s %5s %11s %9s %9s %14s %7s %8s %11s  settings\n", "method", "batch", "median_ms",
           "min_ms", "max_ms", "first_call_ms", "passes", "rss_MiB", "cpu_ms");
    fflush(stdout);
    int rc = 0;
    for (int mi = 0; mi < n_methods; mi++) {
        const bench_method *b = &bm[mi];
        int64_t passes = 0;
        idl_explanation last; /* the last call's (--out, the target line) */
        memset(&last, 0, sizeof last);
        /* every call is timed: the first one is reported as first_call_ms, the last `runs` are
         * the timed runs (--first-timed: the first call is no extra one) */
        int n_calls = (first_timed ? 0 : 1) + warmup + runs, bad = 0;
        double times[MAX_RUNS + 1], first = 0, cpu = 0;
        for (int c = 0; c < n_calls && !bad; c++) {
            double t0 = bench_now_ms(), c0 = cpu_ms();
            bad = call(s, b, &rq, &passes, c == n_calls - 1 ? &last : NULL);
            double t = bench_now_ms() - t0;
            if (c == 0) first = t;
            if (c >= n_calls - runs) times[c - (n_calls - runs)] = t, cpu += cpu_ms() - c0;
        }
        cpu /= runs;
        if (!bad && out_dir && save_maps(out_dir, b->label, &last) != 0) {
            fprintf(stderr, "interpretdl-bench-explain: writing %s/%s.npy: %s\n", out_dir, b->label,
                    idl_last_error());
            rc = 1;
        }
        if (!bad && last.n > 0)
            printf("# %s target %lld score %.6g\n", b->label, (long long)last.targets[0],
                   (double)last.score[0]);
        idl_explanation_clear(&last);
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
        long rss = bench_peak_rss_kb();
        printf("  %-22s %5lld %11.2f %9.2f %9.2f %14.2f %7lld %8.1f %11.1f  %s%s%s\n", b->label,
               batch, med, times[0], times[runs - 1], first, (long long)passes,
               (double)rss / 1024.0, cpu, b->method, set[0] ? " " : "", set);
        printf("RESULT %s %lld %.3f %.3f %.3f %.3f %lld %ld %.1f\n", b->label, batch, med, times[0],
               times[runs - 1], first, (long long)passes, rss, cpu);
        fflush(stdout);
    }
    long rss = bench_peak_rss_kb();
    printf("# peak RSS %.1f MiB\n", (double)rss / 1024.0);
    printf("PEAK_RSS_KB %ld\n", rss);
    idl_tensor_free(x);
    idl_session_free(s);
    idl_model_free(m);
    return rc;
}
