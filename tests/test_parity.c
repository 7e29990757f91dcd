/* test_parity.c — whole-model parity against reference frameworks (ctest label `parity`).
 *
 * Public API only. Each case is a folder written by tests/reference/make_*.py:
 *   model.onnx, input.npy            one graph input x: (N, ...)
 *   logits.npy                       reference of graph output 0: (N, C)
 *   targets.npy                      int64 (N): class per sample for the gradient objectives
 *   grad_<objective>.npy             input gradient of sum_b objective(out[b])[t_b], objective one
 *                                    of logit, probability, log_probability: shape of x
 *   kinks.txt                        (optional) kink alignment records, see below
 *   dir.npy, fd.npy, fd_tol.npy      (optional) directional check: for each direction k and
 *                                    sample b, |<grad of out[b,t_b] w.r.t. x[b], dir[k,b]> -
 *                                    fd[k,b]| <= fd_tol[k,b]; dir (K,N,...), fd and fd_tol (K,N)
 *                                    (tests/reference/fdcheck.py: float64 central differences)
 * A folder with a case.txt manifest (tests/reference/make_transformers.py writes them; the
 * format is in that script's docstring) describes instead one or more runs on ONE session (a new
 * input shape makes it re-plan: e.g. a text model at T=16 then T=23): per run the graph inputs by
 * name (input_ids, token_type_ids, attention_mask, ...), reference files for any graph outputs,
 * targets and/or a seed (objective `seed`: sum(output0 * seed)), a kink file, and gradient checks
 * w.r.t. named tensors (graph inputs or intermediate tensors: an embedding output, attention
 * probabilities), full (grad) or along directions (directional). Per run and objective one
 * idl_session_backward takes every tensor named by that objective's checks as its wrt list; each
 * gradient is fetched with idl_session_grad. The summary line groups checks by name (attn00,
 * attn01, ... -> attn(N), the worst of them).
 * Forward and gradients must agree to max|ours - ref| <= RTOL * max|ref| with RTOL = 1e-4 (one
 * scale per array). The directional check uses the tolerance the generator estimated from its own
 * data (tests/reference/fdcheck.py).
 *
 * Kink alignment: an input gradient of a ReLU / Clip / HardSwish / MaxPool network jumps when a
 * unit crosses a kink, and units within float32 rounding of a kink land on either side in two
 * correct implementations (on resnet18, 6 such units out of 5 million move PyTorch's own float32
 * gradient 2e-2 away from float64). kinks.txt lists the units whose float64 reference value lies
 * within 5e-4 * max|tensor| of a kink, with that value; this test taps those tensors and sets
 * exactly those units to the reference value (straight-through for the gradient), so both sides
 * differentiate the same piecewise-linear branch. The change is far below the forward tolerance;
 * the test reports how far our values were from the reference there ("dev", relative to
 * max|tensor|, must stay below 1e-3: else the records do not match this graph) and how many units
 * would have been on the other side of their kink ("flips").
 *
 * usage: test_parity [--rtol R] [--only SUBSTRING] [--threads N] [--no-kinks] DIR...
 *   DIR is a case folder (has model.onnx) or a folder of case folders (searched one level down,
 *   in name order). Every DIR must exist and hold at least one case: a requested folder that is
 *   missing or empty fails the run. The environment variable IDL_PARITY_DIR adds one more DIR.
 *   --rtol changes the tolerance for an investigation; it is printed on every line.
 *   --no-kinks ignores kinks.txt (to measure what the alignment is for; expect gradient failures).
 * Prints one line per case and ends with "N passed, N failed" (tests/harness.h). */
#define _POSIX_C_SOURCE 200809L

#include "interpretdl/interpretdl.h"

#include "harness.h"
#include "session/session_internal.h" /* a lean plan's arena, poisoned after the forward */

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

static double g_rtol = 1e-4;
static const char *g_only = NULL;
static int g_threads = 0;
static int g_no_kinks = 0;

#define KINK_MAX_DEV 1e-3 /* relative to max|tensor|: above this the records do not fit */

/* ---- small utilities ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir/name into out; a path that does not fit is cut to "" (and then is no file). */
static void join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) out[0] = 0;
}

static int same_shape(const idl_tensor *a, const idl_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static void shape_str(const idl_tensor *t, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, ")");
}

/* max|a-b| / max|b| in double; *maxref receives max|b|. */
static double rel_max_err(const float *a, const float *b, int64_t n, double *maxref) {
    double mb = 0, md = 0;
    for (int64_t i = 0; i < n; i++) {
        double vb = fabs((double)b[i]), d = fabs((double)a[i] - (double)b[i]);
        if (vb > mb) mb = vb;
        if (!(d <= md)) md = d; /* NaN propagates */
    }
    if (maxref) *maxref = mb;
    return mb > 0 ? md / mb : md;
}

/* ---- kink alignment ---- */

typedef struct kink_tensor {
    char *name;
    int64_t n;
    int64_t *idx;
    float *val;
    double *kink; /* NaN for a MaxPool tie */
    double amax;  /* max|tensor| of the reference */
    /* measured during the last forward */
    int calls;
    int64_t flips, out_of_range;
    double max_dev;
    int wrong_dtype;
} kink_tensor;

typedef struct kinkset {
    kink_tensor *t;
    int n;
    int64_t units;
} kinkset;

static void kinks_free(kinkset *ks) {
    for (int i = 0; i < ks->n; i++) {
        free(ks->t[i].name);
        free(ks->t[i].idx);
        free(ks->t[i].val);
        free(ks->t[i].kink);
    }
    free(ks->t);
    memset(ks, 0, sizeof *ks);
}

/* Parses kinks.txt (format in tests/reference/kinks.py). Returns 0, or -1 with a message. */
static int kinks_load(const char *path, kinkset *ks, char *err, size_t errcap) {
    memset(ks, 0, sizeof *ks);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (snprintf(err, errcap, "%s: %s", path, strerror(errno)) < 0) err[0] = 0;
        return -1;
    }
    char line[4096];
    long lineno = 0;
    kink_tensor *cur = NULL;
    int64_t filled = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (strncmp(line, "tensor ", 7) == 0) {
            if (cur && filled != cur->n) break;
            char name[2048];
            long long n;
            double amax;
            if (sscanf(line + 7, "%2047s %lld %lf", name, &n, &amax) != 3 || n <= 0 ||
                n > (1LL << 40)) {
                rc = -1;
                break;
            }
            kink_tensor *nt = realloc(ks->t, (size_t)(ks->n + 1) * sizeof *nt);
            if (!nt) {
                rc = -1;
                break;
            }
            ks->t = nt;
            cur = &ks->t[ks->n++];
            memset(cur, 0, sizeof *cur);
            cur->name = strdup(name);
            cur->n = n;
            cur->amax = amax;
            cur->idx = malloc((size_t)n * sizeof *cur->idx);
            cur->val = malloc((size_t)n * sizeof *cur->val);
            cur->kink = malloc((size_t)n * sizeof *cur->kink);
            if (!cur->name || !cur->idx || !cur->val || !cur->kink) {
                rc = -1;
                break;
            }
            filled = 0;
            continue;
        }
        char *p = line, *end;
        if (!cur || filled >= cur->n) {
            rc = -1;
            break;
        }
        long long idx = strtoll(p, &end, 10);
        if (end == p || idx < 0) {
            rc = -1;
            break;
        }
        p = end;
        double v = strtod(p, &end);
        if (end == p) {
            rc = -1;
            break;
        }
        p = end;
        double k = strtod(p, &end);
        if (end == p) {
            rc = -1;
            break;
        }
        cur->idx[filled] = idx;
        cur->val[filled] = (float)v;
        cur->kink[filled] = k;
        filled++;
        ks->units++;
    }
    if (rc == 0 && cur && filled != cur->n) rc = -1;
    fclose(f);
    if (rc) {
        if (snprintf(err, errcap, "%s:%ld: malformed kink record", path, lineno) < 0) err[0] = 0;
        kinks_free(ks);
    }
    return rc;
}

static void kink_tap(const char *name, idl_tensor *v, void *user) {
    (void)name;
    kink_tensor *k = user;
    k->calls++;
    if (v->dtype != IDL_DT_F32) {
        k->wrong_dtype = 1;
        return;
    }
    float *x = v->data;
    int64_t n = idl_tensor_numel(v);
    for (int64_t i = 0; i < k->n; i++) {
        int64_t j = k->idx[i];
        if (j >= n) {
            k->out_of_range++;
            continue;
        }
        double dev = fabs((double)x[j] - (double)k->val[i]);
        if (!(dev <= k->max_dev)) k->max_dev = dev;
        double kink = k->kink[i];
        if (!isnan(kink) && (((double)x[j] > kink) != ((double)k->val[i] > kink))) k->flips++;
        x[j] = k->val[i];
    }
}

static void kinks_reset_stats(kinkset *ks) {
    for (int i = 0; i < ks->n; i++) {
        ks->t[i].calls = 0;
        ks->t[i].flips = ks->t[i].out_of_range = 0;
        ks->t[i].max_dev = 0;
        ks->t[i].wrong_dtype = 0;
    }
}

/* After a forward: every tapped tensor was seen once, in range, close to the reference. Returns
 * 1 if so; otherwise prints why. *flips and *dev summarise. */
static int kinks_verify(const char *cname, const kinkset *ks, int64_t *flips, double *dev) {
    int ok = 1;
    *flips = 0;
    *dev = 0;
    for (int i = 0; i < ks->n; i++) {
        const kink_tensor *k = &ks->t[i];
        double rel = k->amax > 0 ? k->max_dev / k->amax : k->max_dev;
        *flips += k->flips;
        if (!(rel <= *dev)) *dev = rel;
        if (k->calls != 1 || k->wrong_dtype || k->out_of_range || !(rel <= KINK_MAX_DEV)) {
            fprintf(stderr,
                    "parity %s: kink alignment on tensor '%s' failed: tapped %d time(s) "
                    "(expected 1)%s, %lld index(es) out of range, max |ours - ref| = %.3g of "
                    "max|tensor| (limit %.0e): the records do not fit this graph or its forward "
                    "is off here\n",
                    cname, k->name, k->calls, k->wrong_dtype ? ", not float32" : "",
                    (long long)k->out_of_range, rel, KINK_MAX_DEV);
            ok = 0;
        }
    }
    return ok;
}

/* ---- one case ---- */

/* ---- case description: case.txt, or the single-input layout of the CNN cases ---- */

enum { OBJ_LOGIT, OBJ_PROBABILITY, OBJ_LOG_PROBABILITY, OBJ_SEED, N_OBJ };
static const char *const OBJ_NAMES[N_OBJ] = { "logit", "probability", "log_probability", "seed" };

typedef struct check {
    int directional; /* 0: full gradient against file; 1: dir/fd/fd_tol */
    int obj;         /* OBJ_* */
    char *group;     /* label for the summary: input, emb, attn00, ... */
    char *tensor;    /* ONNX tensor name */
    char *file, *dir, *fd, *fd_tol;
} check;

typedef struct run_spec {
    char *label; /* "" for the single run of a legacy case */
    int n_in, n_out, n_chk;
    char **in_name, **in_file;
    int *out_idx;
    char **out_file;
    char *targets, *seed, *kinks;
    check *chk;
} run_spec;

typedef struct case_spec {
    int n_runs;
    run_spec *runs;
    int legacy;
} case_spec;

static void spec_free(case_spec *cs) {
    for (int r = 0; r < cs->n_runs; r++) {
        run_spec *R = &cs->runs[r];
        free(R->label);
        for (int i = 0; i < R->n_in; i++) {
            free(R->in_name[i]);
            free(R->in_file[i]);
        }
        for (int i = 0; i < R->n_out; i++)
            free(R->out_file[i]);
        for (int i = 0; i < R->n_chk; i++) {
            check *c = &R->chk[i];
            free(c->group);
            free(c->tensor);
            free(c->file);
            free(c->dir);
            free(c->fd);
            free(c->fd_tol);
        }
        free(R->in_name);
        free(R->in_file);
        free(R->out_idx);
        free(R->out_file);
        free(R->targets);
        free(R->seed);
        free(R->kinks);
        free(R->chk);
    }
    free(cs->runs);
    memset(cs, 0, sizeof *cs);
}

/* Grows *arr (elements of size sz) by one zeroed element; returns it or NULL. */
static void *grow1(void *arr_p, int *n, size_t sz) {
    void **arr = arr_p;
    char *na = realloc(*arr, (size_t)(*n + 1) * sz);
    if (!na) return NULL;
    *arr = na;
    memset(na + (size_t)*n * sz, 0, sz);
    return na + (size_t)(*n)++ * sz;
}

static char *dup_path(const char *dir, const char *rel) {
    char p[4096];
    join(p, sizeof p, dir, rel);
    return p[0] ? strdup(p) : NULL;
}

static int obj_parse(const char *s) {
    for (int i = 0; i < N_OBJ; i++)
        if (!strcmp(s, OBJ_NAMES[i])) return i;
    return -1;
}

/* Parses dir/case.txt (format: tests/reference/make_transformers.py). Returns 0, or -1 with a
 * message in err. */
static int spec_parse(const char *dir, const char *path, case_spec *cs, char *err, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (snprintf(err, cap, "%s: %s", path, strerror(errno)) < 0) err[0] = 0;
        return -1;
    }
    char line[8192];
    long lineno = 0;
    int rc = 0;
    run_spec *R = NULL;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *w[8], *save = NULL;
        int n = 0;
        for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
            if (n == 8) {
                n = 9;
                break;
            }
            w[n++] = t;
        }
        if (n == 0 || w[0][0] == '#') continue;
        const char *why = NULL;
        if (!strcmp(w[0], "run") && n == 2) {
            R = grow1(&cs->runs, &cs->n_runs, sizeof *R);
            if (!R || !(R->label = strdup(w[1]))) why = "out of memory";
        } else if (!R) {
            why = "a line before the first `run`";
        } else if (!strcmp(w[0], "input") && n == 3) {
            int k = R->n_in;
            if (!grow1(&R->in_name, &k, sizeof(char *)) ||
                !grow1(&R->in_file, &R->n_in, sizeof(char *)))
                why = "out of memory";
            else {
                R->in_name[R->n_in - 1] = strdup(w[1]);
                R->in_file[R->n_in - 1] = dup_path(dir, w[2]);
            }
        } else if (!strcmp(w[0], "output") && n == 3) {
            char *end;
            long idx = strtol(w[1], &end, 10);
            int k = R->n_out;
            if (*end || idx < 0 || idx > 1000)
                why = "bad output index";
            else if (!grow1(&R->out_idx, &k, sizeof(int)) ||
                     !grow1(&R->out_file, &R->n_out, sizeof(char *)))
                why = "out of memory";
            else {
                R->out_idx[R->n_out - 1] = (int)idx;
                R->out_file[R->n_out - 1] = dup_path(dir, w[2]);
            }
        } else if (!strcmp(w[0], "targets") && n == 2 && !R->targets) {
            R->targets = dup_path(dir, w[1]);
        } else if (!strcmp(w[0], "seed") && n == 2 && !R->seed) {
            R->seed = dup_path(dir, w[1]);
        } else if (!strcmp(w[0], "kinks") && n == 2 && !R->kinks) {
            R->kinks = dup_path(dir, w[1]);
        } else if ((!strcmp(w[0], "grad") && n == 5) || (!strcmp(w[0], "directional") && n == 7)) {
            int obj = obj_parse(w[1]);
            check *c = obj < 0 ? NULL : grow1(&R->chk, &R->n_chk, sizeof *R->chk);
            if (obj < 0)
                why = "unknown objective";
            else if (!c)
                why = "out of memory";
            else {
                c->directional = w[0][0] == 'd';
                c->obj = obj;
                c->group = strdup(w[2]);
                c->tensor = strdup(w[3]);
                if (c->directional) {
                    c->dir = dup_path(dir, w[4]);
                    c->fd = dup_path(dir, w[5]);
                    c->fd_tol = dup_path(dir, w[6]);
                } else {
                    c->file = dup_path(dir, w[4]);
                }
            }
        } else {
            why = "unknown or malformed line";
        }
        if (why) {
            if (snprintf(err, cap, "%s:%ld: %s", path, lineno, why) < 0) err[0] = 0;
            rc = -1;
        }
    }
    fclose(f);
    if (rc == 0 && cs->n_runs == 0) {
        if (snprintf(err, cap, "%s: no run", path) < 0) err[0] = 0;
        rc = -1;
    }
    if (rc) spec_free(cs);
    return rc;
}

/* The layout of the single-input cases (see the top of this file) as one run. */
static int spec_legacy(const char *dir, const char *in_name, case_spec *cs) {
    char p[4096];
    run_spec *R = grow1(&cs->runs, &cs->n_runs, sizeof *R);
    if (!R) return -1;
    cs->legacy = 1;
    R->label = strdup("");
    R->n_in = R->n_out = 1;
    R->in_name = calloc(1, sizeof(char *));
    R->in_file = calloc(1, sizeof(char *));
    R->out_idx = calloc(1, sizeof(int));
    R->out_file = calloc(1, sizeof(char *));
    if (!R->label || !R->in_name || !R->in_file || !R->out_idx || !R->out_file) return -1;
    R->in_name[0] = strdup(in_name);
    R->in_file[0] = dup_path(dir, "input.npy");
    R->out_file[0] = dup_path(dir, "logits.npy");
    join(p, sizeof p, dir, "targets.npy");
    if (is_file(p)) R->targets = strdup(p);
    join(p, sizeof p, dir, "kinks.txt");
    if (is_file(p)) R->kinks = strdup(p);
    for (int o = OBJ_LOGIT; o <= OBJ_LOG_PROBABILITY; o++) {
        char fname[64];
        snprintf(fname, sizeof fname, "grad_%s.npy", OBJ_NAMES[o]);
        join(p, sizeof p, dir, fname);
        if (!is_file(p)) continue;
        check *c = grow1(&R->chk, &R->n_chk, sizeof *R->chk);
        if (!c) return -1;
        c->obj = o;
        c->group = strdup("input");
        c->tensor = strdup(in_name);
        c->file = strdup(p);
    }
    const char *dn[3] = { "dir.npy", "fd.npy", "fd_tol.npy" };
    int have = 0;
    for (int i = 0; i < 3; i++) {
        join(p, sizeof p, dir, dn[i]);
        have += is_file(p);
    }
    if (have) { /* incomplete sets are reported when the files fail to load */
        check *c = grow1(&R->chk, &R->n_chk, sizeof *R->chk);
        if (!c) return -1;
        c->directional = 1;
        c->obj = OBJ_LOGIT;
        c->group = strdup("input");
        c->tensor = strdup(in_name);
        c->dir = dup_path(dir, dn[0]);
        c->fd = dup_path(dir, dn[1]);
        c->fd_tol = dup_path(dir, dn[2]);
    }
    return 0;
}

/* ---- one case ---- */

/* Loads path (a required file) into *out. Returns 0, or -1 with a message. */
static int load_req(const char *cname, const char *path, idl_tensor **out) {
    *out = NULL;
    if (!path || !is_file(path)) {
        fprintf(stderr, "parity %s: missing reference file %s\n", cname, path ? path : "(?)");
        return -1;
    }
    if (idl_npy_load(path, out) != IDL_OK) {
        fprintf(stderr, "parity %s: cannot read %s: %s\n", cname, path, idl_last_error());
        return -1;
    }
    return 0;
}

/* Summary of the errors of one objective's checks, grouped by group name without its trailing
 * digits (attn00, attn01, ... -> attn(2)). */
typedef struct group_sum {
    char name[48];
    int n;
    int directional;
    double worst; /* max relative error, or max |diff| / tolerance */
} group_sum;

static void group_add(group_sum *gs, int *n_gs, int max_gs, const char *group, int directional,
                      double v) {
    char base[48];
    snprintf(base, sizeof base, "%s", group);
    size_t L = strlen(base);
    while (L > 1 && base[L - 1] >= '0' && base[L - 1] <= '9')
        base[--L] = 0;
    for (int i = 0; i < *n_gs; i++)
        if (gs[i].directional == directional && !strcmp(gs[i].name, base)) {
            gs[i].n++;
            if (!(v <= gs[i].worst)) gs[i].worst = v;
            return;
        }
    if (*n_gs == max_gs) return;
    group_sum *g = &gs[(*n_gs)++];
    snprintf(g->name, sizeof g->name, "%s", base);
    g->n = 1;
    g->directional = directional;
    g->worst = v;
}

#define CASE_FAIL(...)                         \
    do {                                       \
        fprintf(stderr, "parity %s: ", cname); \
        fprintf(stderr, __VA_ARGS__);          \
        fputc('\n', stderr);                   \
        th_failed++;                           \
        ok = 0;                                \
        goto done;                             \
    } while (0)

/* Checks one full gradient against its reference. */
static int check_grad(const char *cname, const char *rlabel, const check *c, const idl_tensor *g,
                      double *err) {
    idl_tensor *ref = NULL;
    *err = INFINITY;
    if (load_req(cname, c->file, &ref)) {
        th_failed++;
        return 0;
    }
    int ok = 1;
    char sh1[128], sh2[128];
    if (!g || g->dtype != IDL_DT_F32 || ref->dtype != IDL_DT_F32 || !same_shape(g, ref)) {
        shape_str(ref, sh1, sizeof sh1);
        if (g) shape_str(g, sh2, sizeof sh2);
        fprintf(stderr, "parity %s %s: gradient (%s) w.r.t. '%s' is %s, reference %s\n", cname,
                rlabel, OBJ_NAMES[c->obj], c->tensor, g ? sh2 : "missing", sh1);
        th_failed++;
        ok = 0;
    } else {
        double maxref;
        *err = rel_max_err(g->data, ref->data, idl_tensor_numel(g), &maxref);
        ok = *err <= g_rtol;
        CHECK_MSG(ok,
                  "%s %s: grad_%s w.r.t. %s '%s': max|ours - ref| = %.3g of max|ref| = %.3g "
                  "(tolerance %.0e)",
                  cname, rlabel, OBJ_NAMES[c->obj], c->group, c->tensor, *err, maxref, g_rtol);
    }
    idl_tensor_free(ref);
    return ok;
}

/* Directional check: dir (K,)+shape of g, fd and fd_tol (K,N); sample b owns the b-th of N
 * contiguous chunks of g. *worst: max |diff| / tolerance. */
static int check_dir(const char *cname, const char *rlabel, const check *c, const idl_tensor *g,
                     int64_t batch, double *worst, int64_t *n_dirs) {
    idl_tensor *dt = NULL, *fdt = NULL, *tolt = NULL;
    int ok = 1;
    *worst = INFINITY;
    *n_dirs = 0;
    if (load_req(cname, c->dir, &dt) || load_req(cname, c->fd, &fdt) ||
        load_req(cname, c->fd_tol, &tolt)) {
        th_failed++;
        ok = 0;
        goto out;
    }
    int64_t gn = g ? idl_tensor_numel(g) : 0;
    int64_t k_dirs = gn ? idl_tensor_numel(dt) / gn : 0;
    if (!g || g->dtype != IDL_DT_F32 || dt->dtype != IDL_DT_F32 || fdt->dtype != IDL_DT_F32 ||
        tolt->dtype != IDL_DT_F32 || batch <= 0 || gn % batch || k_dirs < 1 ||
        idl_tensor_numel(dt) != k_dirs * gn || idl_tensor_numel(fdt) != k_dirs * batch ||
        idl_tensor_numel(tolt) != k_dirs * batch) {
        fprintf(stderr,
                "parity %s %s: directional check w.r.t. '%s': gradient %s, or dir.npy is not "
                "(K,)+its shape, or fd.npy / fd_tol.npy not (K, N=%lld), float32\n",
                cname, rlabel, c->tensor, g ? "present" : "missing", (long long)batch);
        th_failed++;
        ok = 0;
        goto out;
    }
    const int64_t per = gn / batch;
    const float *gd = g->data, *fd = fdt->data, *tol = tolt->data;
    *worst = 0;
    *n_dirs = k_dirs * batch;
    for (int64_t k = 0; k < k_dirs; k++)
        for (int64_t b = 0; b < batch; b++) {
            const float *dd = (const float *)dt->data + k * gn + b * per;
            double dot = 0;
            for (int64_t i = 0; i < per; i++)
                dot += (double)gd[b * per + i] * (double)dd[i];
            double ref = fd[k * batch + b], t = tol[k * batch + b];
            double diff = fabs(dot - ref);
            if (!(diff / t <= *worst)) *worst = diff / t;
            int pass = diff <= t;
            CHECK_MSG(pass,
                      "%s %s: %s w.r.t. %s '%s', direction %lld, sample %lld: <grad, dir> = %.8g, "
                      "finite difference %.8g (tolerance %.3g)",
                      cname, rlabel, OBJ_NAMES[c->obj], c->group, c->tensor, (long long)k,
                      (long long)b, dot, ref, t);
            ok &= pass;
        }
out:
    idl_tensor_free(dt);
    idl_tensor_free(fdt);
    idl_tensor_free(tolt);
    return ok;
}

/* Runs one run of a case on session s (forward, output checks, one backward per objective).
 * Appends its summary to line. Returns 1 if everything passed. */
static int run_one(const char *cname, idl_session *s, const run_spec *R, int legacy, char *line,
                   size_t cap) {
    int ok = 1;
    size_t ll = strlen(line);
#define LINE(...) (ll += (size_t)snprintf(line + ll, ll < cap ? cap - ll : 0, __VA_ARGS__))
    const char *rlabel = R->label[0] ? R->label : "-";
    idl_tensor **ins = calloc((size_t)(R->n_in ? R->n_in : 1), sizeof *ins);
    idl_tensor *targets = NULL, *seed = NULL;
    kinkset ks = { 0 };
    const char **wrt = calloc((size_t)(R->n_chk ? R->n_chk : 1), sizeof *wrt);
    char sh1[128], sh2[128], err[512];
    if (!ins || !wrt) CASE_FAIL("out of memory");
    if (R->label[0]) LINE("%s%s:", ll ? " || " : "", R->label);

    for (int i = 0; i < R->n_in; i++)
        if (load_req(cname, R->in_file[i], &ins[i])) CASE_FAIL("run %s: unreadable input", rlabel);
    if (R->n_in < 1 || ins[0]->ndim < 1) CASE_FAIL("run %s: no input with a batch axis", rlabel);
    const int64_t batch = ins[0]->shape[0];
    if (R->targets) {
        if (load_req(cname, R->targets, &targets)) CASE_FAIL("run %s: unreadable targets", rlabel);
        if (targets->dtype != IDL_DT_I64 || targets->ndim != 1 || targets->shape[0] != batch)
            CASE_FAIL("run %s: targets must be int64 of shape (%lld)", rlabel, (long long)batch);
    }
    if (R->seed && load_req(cname, R->seed, &seed)) CASE_FAIL("run %s: unreadable seed", rlabel);
    if (R->kinks && !g_no_kinks) {
        if (kinks_load(R->kinks, &ks, err, sizeof err)) CASE_FAIL("%s", err);
        for (int i = 0; i < ks.n; i++)
            if (idl_session_set_tap(s, ks.t[i].name, kink_tap, &ks.t[i]) != IDL_OK)
                CASE_FAIL("kinks file names tensor '%s': %s", ks.t[i].name, idl_last_error());
    }

    /* forward: inputs by name (legacy: in graph order) */
    kinks_reset_stats(&ks);
    if (idl_session_forward(s, (const idl_tensor *const *)ins,
                            legacy ? NULL : (const char *const *)R->in_name, R->n_in) != IDL_OK)
        CASE_FAIL("run %s: forward: %s", rlabel, idl_last_error());
    double fwd_worst = 0;
    for (int o = 0; o < R->n_out; o++) {
        idl_tensor *ref = NULL;
        if (load_req(cname, R->out_file[o], &ref)) CASE_FAIL("run %s: unreadable output", rlabel);
        const idl_tensor *y = idl_session_output(s, R->out_idx[o]);
        if (!y || y->dtype != IDL_DT_F32 || ref->dtype != IDL_DT_F32 || !same_shape(y, ref)) {
            shape_str(ref, sh1, sizeof sh1);
            if (y) shape_str(y, sh2, sizeof sh2);
            idl_tensor_free(ref);
            CASE_FAIL("run %s: output %d is %s, reference %s (float32)", rlabel, R->out_idx[o],
                      y ? sh2 : "missing", sh1);
        }
        double maxref;
        double e = rel_max_err(y->data, ref->data, idl_tensor_numel(y), &maxref);
        idl_tensor_free(ref);
        int pass = e <= g_rtol;
        CHECK_MSG(pass,
                  "%s %s: output %d max|ours - ref| = %.3g of max|ref| = %.3g (tolerance %.0e)",
                  cname, rlabel, R->out_idx[o], e, maxref, g_rtol);
        ok &= pass;
        if (!(e <= fwd_worst)) fwd_worst = e;
    }
    LINE(" forward %.1e", fwd_worst);
    if (R->n_out > 1) LINE(" (%d outputs)", R->n_out);

    /* attention discovery, checked against the reference's own attention maps (groups attnNN, in
     * block order) and embedding output (group emb), which the generator found by value */
    {
        const char *want[64] = { 0 }, *emb = NULL;
        int nw = 0;
        for (int i = 0; i < R->n_chk; i++) {
            const check *c = &R->chk[i];
            if (!strncmp(c->group, "attn", 4)) {
                int k = atoi(c->group + 4);
                if (k >= 0 && k < 64) {
                    want[k] = c->tensor;
                    if (k + 1 > nw) nw = k + 1;
                }
            } else if (!strcmp(c->group, "emb")) {
                emb = c->tensor;
            }
        }
        if (nw) {
            const idl_attention_info *a = NULL;
            int found = idl_session_attention(s, NULL, 0, &a) == IDL_OK;
            int pass = found && a->n_blocks == nw;
            for (int k = 0; pass && k < nw; k++)
                pass = want[k] && a->blocks[k].probs && !strcmp(a->blocks[k].probs, want[k]);
            if (pass && emb) pass = a->embedding && !strcmp(a->embedding, emb);
            CHECK_MSG(
                pass,
                "%s %s: attention discovery found %d blocks (first probs '%s', embedding '%s'); "
                "the reference has %d (first '%s', embedding '%s')",
                cname, rlabel, found ? a->n_blocks : -1,
                found && a->n_blocks ? a->blocks[0].probs : "-",
                found && a->embedding ? a->embedding : "-", nw, want[0] ? want[0] : "-",
                emb ? emb : "-");
            ok &= pass;
            LINE(" | attention: %d blocks%s found", nw, emb ? " + embedding" : "");
        }
    }
    int64_t flips = 0;
    double kdev = 0;
    if (ks.n) {
        int pass = kinks_verify(cname, &ks, &flips, &kdev);
        CHECK(pass);
        ok &= pass;
    }

    /* one backward per objective, w.r.t. every tensor its checks name */
    for (int obj = 0; obj < N_OBJ; obj++) {
        int n_wrt = 0;
        for (int i = 0; i < R->n_chk; i++) {
            if (R->chk[i].obj != obj) continue;
            int dup = 0;
            for (int j = 0; j < n_wrt; j++)
                dup |= !strcmp(wrt[j], R->chk[i].tensor);
            if (!dup) wrt[n_wrt++] = R->chk[i].tensor;
        }
        if (!n_wrt) continue;
        idl_objective ob = idl_objective_default();
        if (obj == OBJ_SEED) {
            if (!seed) CASE_FAIL("run %s: objective seed without a seed file", rlabel);
            ob.kind = IDL_OBJ_SEED;
            ob.seed = seed;
        } else {
            if (!targets) CASE_FAIL("run %s: objective %s without targets", rlabel, OBJ_NAMES[obj]);
            ob.kind = obj == OBJ_LOGIT         ? IDL_OBJ_LOGIT
                      : obj == OBJ_PROBABILITY ? IDL_OBJ_PROBABILITY
                                               : IDL_OBJ_LOG_PROBABILITY;
            ob.targets = targets->data;
        }
        if (idl_session_backward(s, &ob, wrt, n_wrt) != IDL_OK)
            CASE_FAIL("run %s: backward (%s, %d tensors): %s", rlabel, OBJ_NAMES[obj], n_wrt,
                      idl_last_error());
        group_sum gs[16];
        int n_gs = 0;
        int64_t n_dirs = 0;
        for (int i = 0; i < R->n_chk; i++) {
            const check *c = &R->chk[i];
            if (c->obj != obj) continue;
            const idl_tensor *g = idl_session_grad(s, c->tensor);
            double v;
            if (c->directional) {
                int64_t nd;
                ok &= check_dir(cname, rlabel, c, g, batch, &v, &nd);
                n_dirs += nd;
            } else {
                ok &= check_grad(cname, rlabel, c, g, &v);
            }
            group_add(gs, &n_gs, 16, c->group, c->directional, v);
        }
        for (int pass_dir = 0; pass_dir < 2; pass_dir++) {
            int first = 1;
            for (int i = 0; i < n_gs; i++) {
                if (gs[i].directional != pass_dir) continue;
                if (first) {
                    if (pass_dir)
                        LINE(" | directional %s x%lld:", OBJ_NAMES[obj], (long long)n_dirs);
                    else
                        LINE(" | grad_%s", OBJ_NAMES[obj]);
                    first = 0;
                }
                if (gs[i].n > 1)
                    LINE(" %s(%d)", gs[i].name, gs[i].n);
                else
                    LINE(" %s", gs[i].name);
                LINE(pass_dir ? " %.2g" : " %.1e", gs[i].worst);
            }
            if (!first && pass_dir) LINE(" of tolerance");
        }
    }
    if (ks.n)
        LINE(" | kinks %lld aligned, %lld flipped, dev %.0e", (long long)ks.units, (long long)flips,
             kdev);

done:
    for (int i = 0; i < ks.n; i++)
        idl_session_set_tap(s, ks.t[i].name, NULL, NULL);
    kinks_free(&ks);
    if (ins)
        for (int i = 0; i < R->n_in; i++)
            idl_tensor_free(ins[i]);
    free(ins);
    free(wrt);
    idl_tensor_free(targets);
    idl_tensor_free(seed);
    return ok;
#undef LINE
}

/* A session with every value kept, and one with the option forward_only (lean = 0) or
 * save_for_backward (lean = 1); 1 on failure. */
static int session_pair(const idl_model *m, int lean, idl_session **full, idl_session **s) {
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = g_threads;
    if (idl_session_new(m, &so, full) != IDL_OK) return 1;
    so.forward_only = !lean;
    so.save_for_backward = lean;
    return idl_session_new(m, &so, s) != IDL_OK;
}

static void free_inputs(idl_tensor **ins, int n) {
    for (int i = 0; ins && i < n; i++)
        idl_tensor_free(ins[i]);
    free(ins);
}

/* Loads run R's inputs into *ins (R->n_in tensors, free_inputs) and runs both sessions forward on
 * them; 1 on failure, with the message printed. */
static int forward_pair(const char *cname, const case_spec *cs, const run_spec *R,
                        idl_session *full, idl_session *s, idl_tensor ***ins) {
    *ins = calloc((size_t)(R->n_in ? R->n_in : 1), sizeof **ins);
    if (!*ins) return 1;
    for (int i = 0; i < R->n_in; i++)
        if (load_req(cname, R->in_file[i], &(*ins)[i])) return 1;
    const char *const *names = cs->legacy ? NULL : (const char *const *)R->in_name;
    if (idl_session_forward(full, (const idl_tensor *const *)*ins, names, R->n_in) == IDL_OK &&
        idl_session_forward(s, (const idl_tensor *const *)*ins, names, R->n_in) == IDL_OK)
        return 0;
    fprintf(stderr, "parity %s: run %s: forward: %s\n", cname, R->label[0] ? R->label : "-",
            idl_last_error());
    return 1;
}

/* Every run again on a forward_only session (intermediate values share one arena planned by their
 * lifetimes): each output must equal the full session's to the bit, and match the reference;
 * a backward must be refused. Returns 1 when all hold. */
static int run_fwd_only(const char *cname, const idl_model *m, const case_spec *cs, char *line,
                        size_t cap) {
    int ok = 1;
    size_t ll = strlen(line);
    idl_session *s = NULL, *full = NULL;
    idl_tensor **ins = NULL;
    int n_in = 0;
    double worst = 0;
    if (session_pair(m, 0, &full, &s)) CASE_FAIL("session: %s", idl_last_error());
    for (int r = 0; r < cs->n_runs; r++) {
        const run_spec *R = &cs->runs[r];
        const char *rlabel = R->label[0] ? R->label : "-";
        n_in = R->n_in;
        if (forward_pair(cname, cs, R, full, s, &ins))
            CASE_FAIL("run %s: forward_only forward failed", rlabel);
        for (int o = 0; o < R->n_out; o++) {
            idl_tensor *ref = NULL;
            if (load_req(cname, R->out_file[o], &ref))
                CASE_FAIL("run %s: unreadable output", rlabel);
            const idl_tensor *y = idl_session_output(s, R->out_idx[o]);
            const idl_tensor *yf = idl_session_output(full, R->out_idx[o]);
            int pass =
                y && yf && y->dtype == IDL_DT_F32 && same_shape(y, ref) && same_shape(y, yf) &&
                !memcmp(y->data, yf->data, (size_t)idl_tensor_numel(y) * idl_dtype_size(y->dtype));
            double maxref,
                e = pass ? rel_max_err(y->data, ref->data, idl_tensor_numel(y), &maxref) : INFINITY;
            idl_tensor_free(ref);
            CHECK_MSG(pass && e <= g_rtol,
                      "%s %s: forward_only output %d: %s, %.3g of the reference's scale", cname,
                      rlabel, R->out_idx[o], pass ? "equals the full session's" : "differs", e);
            ok &= pass && e <= g_rtol;
            if (!(e <= worst)) worst = e;
        }
        if (r == 0) {
            idl_objective ob = idl_objective_default();
            const char *wrt = idl_model_input_name(m, 0);
            int refused = idl_session_backward(s, &ob, &wrt, 1) == IDL_ERR_INVALID_ARG &&
                          strstr(idl_last_error(), "forward_only");
            CHECK_MSG(refused, "%s: a forward_only session ran a backward", cname);
            ok &= refused;
        }
        free_inputs(ins, n_in);
        ins = NULL;
    }
    ll += (size_t)snprintf(line + ll, ll < cap ? cap - ll : 0, " | forward_only %.1e", worst);
done:
    free_inputs(ins, n_in);
    idl_session_free(s);
    idl_session_free(full);
    return ok;
}

/* Occlusion on an image model (one (N, C, H, W) input, H and W >= 32): recomputing only the crops
 * each window changes (src/interpret/cone.c) must give the attribution of whole passes, to 1e-3
 * of its largest value (the crops' Winograd tiles fall elsewhere than the whole map's: ~1e-6 of
 * the scores, which are ~1e-3 of the drops). The line reports the stages run on crops and the
 * difference. Returns 1 when it holds (or the case is not an image model). */
static char g_cone_msg[256];
static void cone_log(idl_log_level l, const char *msg, void *u) {
    (void)l;
    (void)u;
    if (!strncmp(msg, "cone:", 5)) snprintf(g_cone_msg, sizeof g_cone_msg, "%s", msg);
}

static int run_occlusion_cone(const char *cname, const idl_model *m, const case_spec *cs,
                              char *line, size_t cap) {
    if (!cs->legacy || cs->n_runs < 1 || cs->runs[0].n_in != 1) return 1;
    int ok = 1;
    size_t ll = strlen(line);
    idl_tensor *x = NULL;
    idl_session *s = NULL;
    idl_explanation e[2];
    memset(e, 0, sizeof e);
    if (load_req(cname, cs->runs[0].in_file[0], &x)) CASE_FAIL("unreadable input");
    if (x->ndim != 4 || x->dtype != IDL_DT_F32 || x->shape[2] < 32 || x->shape[3] < 32) goto done;
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = g_threads;
    if (idl_session_new(m, &so, &s) != IDL_OK) CASE_FAIL("session: %s", idl_last_error());
    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *in[1] = { x };
    rq.inputs = in;
    rq.n_inputs = 1;
    rq.objective = IDL_OBJ_LOGIT;
    idl_occlusion_params p = idl_occlusion_params_default();
    p.n_axes = 3;
    p.window[0] = p.stride[0] = x->shape[1];
    p.window[1] = p.window[2] = 15;
    p.stride[1] = p.stride[2] = 48;
    int stages = 0;
    for (int j = 0; j < 2; j++) {
        p.full_passes = j;
        g_cone_msg[0] = 0;
        idl_log_set(cone_log, NULL, IDL_LOG_DEBUG);
        idl_status st = idl_occlusion(s, &rq, &p, &e[j]);
        idl_log_set(NULL, NULL, IDL_LOG_WARN);
        if (st) CASE_FAIL("occlusion: %s", idl_last_error());
        if (j == 0 && sscanf(g_cone_msg, "cone: %d stages", &stages) != 1) stages = 0;
    }
    double maxref, d = rel_max_err(e[0].attribution->data, e[1].attribution->data,
                                   idl_tensor_numel(e[1].attribution), &maxref);
    CHECK_MSG(d <= 1e-3, "%s: occlusion on crops differs from whole passes by %.3g of the largest",
              cname, d);
    ok = d <= 1e-3;
    ll += (size_t)snprintf(line + ll, ll < cap ? cap - ll : 0, " | occlusion %d stages %.1e",
                           stages, d);
done:
    idl_explanation_clear(&e[0]);
    idl_explanation_clear(&e[1]);
    idl_tensor_free(x);
    idl_session_free(s);
    return ok;
}

/* Every run again on a save_for_backward session (a lean plan: only what a backward reads is
 * kept, the rest shares one arena, ReLUs are fused into the Conv or Add before them): each output
 * and each gradient the case checks must equal the full session's to the bit. Gradients w.r.t.
 * constants (parameters) must be refused, and are left out. Returns 1 when all hold. */
static int run_lean(const char *cname, const idl_model *m, const case_spec *cs, char *line,
                    size_t cap) {
    int ok = 1, n_grads = 0, n_refused = 0;
    size_t ll = strlen(line);
    idl_session *s = NULL, *full = NULL;
    idl_tensor **ins = NULL, *targets = NULL, *seed = NULL;
    const char **wrt = NULL;
    int n_in = 0;
    if (session_pair(m, 1, &full, &s)) CASE_FAIL("session: %s", idl_last_error());
    for (int r = 0; r < cs->n_runs; r++) {
        const run_spec *R = &cs->runs[r];
        const char *rlabel = R->label[0] ? R->label : "-";
        wrt = calloc((size_t)(R->n_chk ? R->n_chk : 1), sizeof *wrt);
        n_in = R->n_in;
        if (!wrt) CASE_FAIL("out of memory");
        if (R->targets && load_req(cname, R->targets, &targets))
            CASE_FAIL("run %s: unreadable targets", rlabel);
        if (R->seed && load_req(cname, R->seed, &seed))
            CASE_FAIL("run %s: unreadable seed", rlabel);
        for (int obj = 0; obj <= N_OBJ; obj++) {
            /* obj == N_OBJ: no backward (outputs only, when the run checks no gradient) */
            int n_wrt = 0;
            for (int i = 0; i < R->n_chk && obj < N_OBJ; i++) {
                if (R->chk[i].obj != obj) continue;
                int dup = 0;
                for (int j = 0; j < n_wrt; j++)
                    dup |= !strcmp(wrt[j], R->chk[i].tensor);
                if (!dup) wrt[n_wrt++] = R->chk[i].tensor;
            }
            if (obj < N_OBJ && !n_wrt) continue;
            if (obj == N_OBJ && n_grads) break;
            free_inputs(ins, n_in);
            if (forward_pair(cname, cs, R, full, s, &ins))
                CASE_FAIL("run %s: save_for_backward forward failed", rlabel);
            idl__plan_poison_arena(s->plan); /* what the backward may not read: NaN */
            for (int o = 0; o < R->n_out; o++) {
                const idl_tensor *y = idl_session_output(s, R->out_idx[o]);
                const idl_tensor *yf = idl_session_output(full, R->out_idx[o]);
                int pass = y && yf && same_shape(y, yf) &&
                           !memcmp(y->data, yf->data,
                                   (size_t)idl_tensor_numel(y) * idl_dtype_size(y->dtype));
                CHECK_MSG(pass,
                          "%s %s: save_for_backward output %d differs from the full session's",
                          cname, rlabel, R->out_idx[o]);
                ok &= pass;
            }
            if (obj == N_OBJ) break;
            idl_objective ob = idl_objective_default();
            if (obj == OBJ_SEED) {
                ob.kind = IDL_OBJ_SEED;
                ob.seed = seed;
            } else {
                ob.kind = obj == OBJ_LOGIT         ? IDL_OBJ_LOGIT
                          : obj == OBJ_PROBABILITY ? IDL_OBJ_PROBABILITY
                                                   : IDL_OBJ_LOG_PROBABILITY;
                ob.targets = targets ? targets->data : NULL;
            }
            /* constants (parameters) are refused with a message that says so: left out */
            bool all = idl_session_backward(s, &ob, wrt, n_wrt) == IDL_OK;
            for (int i = 0; i < n_wrt && !all; i++) {
                if (idl_session_backward(s, &ob, &wrt[i], 1) == IDL_OK) continue;
                int why = strstr(idl_last_error(), "constant") != NULL;
                CHECK_MSG(why, "%s %s: save_for_backward backward w.r.t. %s: %s", cname, rlabel,
                          wrt[i], idl_last_error());
                ok &= why;
                n_refused++;
                wrt[i--] = wrt[--n_wrt];
            }
            if (!n_wrt) continue;
            if (idl_session_backward(full, &ob, wrt, n_wrt) != IDL_OK ||
                idl_session_backward(s, &ob, wrt, n_wrt) != IDL_OK)
                CASE_FAIL("run %s: save_for_backward backward (%s): %s", rlabel, OBJ_NAMES[obj],
                          idl_last_error());
            for (int i = 0; i < n_wrt; i++) {
                const idl_tensor *g = idl_session_grad(s, wrt[i]);
                const idl_tensor *gf = idl_session_grad(full, wrt[i]);
                int pass = g && gf && same_shape(g, gf) &&
                           !memcmp(g->data, gf->data, (size_t)idl_tensor_numel(g) * sizeof(float));
                CHECK_MSG(pass,
                          "%s %s: save_for_backward gradient (%s) w.r.t. %s differs from the full "
                          "session's",
                          cname, rlabel, OBJ_NAMES[obj], wrt[i]);
                ok &= pass;
                n_grads++;
            }
        }
        free_inputs(ins, n_in);
        free(wrt);
        idl_tensor_free(targets);
        idl_tensor_free(seed);
        ins = NULL;
        wrt = NULL;
        targets = seed = NULL;
    }
    ll += (size_t)snprintf(line + ll, ll < cap ? cap - ll : 0,
                           " | save_for_backward %d gradients equal%s", n_grads,
                           n_refused ? ", parameters refused" : "");
done:
    free_inputs(ins, n_in);
    free(wrt);
    idl_tensor_free(targets);
    idl_tensor_free(seed);
    idl_session_free(s);
    idl_session_free(full);
    return ok;
}

/* Runs one case folder; returns 1 if everything in it passed. */
static int run_case(const char *dir, const char *cname) {
    double t0 = now_s();
    int ok = 1;
    idl_model *m = NULL;
    idl_session *s = NULL;
    case_spec cs = { 0 };
    char path[4096], line[4096], err[512];
    line[0] = 0;

    join(path, sizeof path, dir, "model.onnx");
    if (idl_model_load(path, NULL, &m) != IDL_OK) CASE_FAIL("load %s: %s", path, idl_last_error());
    join(path, sizeof path, dir, "case.txt");
    if (is_file(path)) {
        if (spec_parse(dir, path, &cs, err, sizeof err)) CASE_FAIL("%s", err);
    } else {
        if (idl_model_n_inputs(m) != 1)
            CASE_FAIL("the model has %d graph inputs; a case without case.txt has exactly one",
                      idl_model_n_inputs(m));
        if (spec_legacy(dir, idl_model_input_name(m, 0), &cs)) CASE_FAIL("out of memory");
    }
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = g_threads;
    if (idl_session_new(m, &so, &s) != IDL_OK) CASE_FAIL("session: %s", idl_last_error());
    /* all runs on one session: a new input shape re-plans it */
    for (int r = 0; r < cs.n_runs; r++)
        ok &= run_one(cname, s, &cs.runs[r], cs.legacy, line, sizeof line);
    ok &= run_fwd_only(cname, m, &cs, line, sizeof line);
    ok &= run_lean(cname, m, &cs, line, sizeof line);
    ok &= run_occlusion_cone(cname, m, &cs, line, sizeof line);

done:
    printf("parity %-22s %s | %.1f s  %s  [rtol %.0e]\n", cname, line, now_s() - t0,
           ok ? "OK" : "FAIL", g_rtol);
    fflush(stdout);
    spec_free(&cs);
    idl_session_free(s);
    idl_model_free(m);
    return ok;
}

/* ---- folders ---- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *base_name(const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    const char *b = p + n;
    while (b > p && b[-1] != '/')
        b--;
    return b;
}

/* Runs every case under dir. Returns the number of cases found (run or filtered), -1 if dir is
 * not a folder. */
static int run_dir(const char *dir, int *n_ran) {
    char path[4096];
    if (!is_dir(dir)) return -1;
    join(path, sizeof path, dir, "model.onnx");
    if (is_file(path)) {
        char cname[256];
        snprintf(cname, sizeof cname, "%s", base_name(dir));
        char *slash = strchr(cname, '/');
        if (slash) *slash = 0;
        if (!g_only || strstr(cname, g_only)) {
            run_case(dir, cname);
            (*n_ran)++;
        }
        return 1;
    }
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[4096];
        join(sub, sizeof sub, dir, e->d_name);
        join(path, sizeof path, sub, "model.onnx");
        if (!is_file(path)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char sub[4096];
        join(sub, sizeof sub, dir, names[i]);
        if (!g_only || strstr(names[i], g_only)) {
            run_case(sub, names[i]);
            (*n_ran)++;
        }
        free(names[i]);
    }
    free(names);
    return n;
}

static int usage(void) {
    fprintf(stderr, "usage: test_parity [--rtol R] [--only SUBSTRING] [--threads N] [--no-kinks] "
                    "DIR...\n"
                    "  (IDL_PARITY_DIR=DIR adds a folder; every folder must hold cases)\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *dirs[64];
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rtol") && i + 1 < argc) {
            char *end;
            g_rtol = strtod(argv[++i], &end);
            if (*end || !(g_rtol > 0)) return usage();
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            g_only = argv[++i];
        } else if (!strcmp(argv[i], "--no-kinks")) {
            g_no_kinks = 1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            g_threads = atoi(argv[++i]);
        } else if (argv[i][0] == '-') {
            return usage();
        } else if (n_dirs < 64) {
            dirs[n_dirs++] = argv[i];
        }
    }
    const char *env = getenv("IDL_PARITY_DIR");
    if (env && *env && n_dirs < 64) dirs[n_dirs++] = env;
    if (!n_dirs) return usage();

    printf("parity: libinterpretdl %s, tolerance max|ours - ref| <= %.0e * max|ref|\n",
           idl_version(), g_rtol);
    for (int i = 0; i < n_dirs; i++) {
        int ran = 0;
        int found = run_dir(dirs[i], &ran);
        if (found < 0) {
            fprintf(stderr,
                    "parity: requested folder %s does not exist (generate it with "
                    "tests/reference/generate_all.sh BUILD_DIR)\n",
                    dirs[i]);
            th_failed++;
        } else if (found == 0) {
            fprintf(stderr, "parity: requested folder %s holds no case (no */model.onnx)\n",
                    dirs[i]);
            th_failed++;
        } else if (ran == 0) {
            printf("parity: %s: no case matches --only %s\n", dirs[i], g_only);
        }
    }
    TEST_SUMMARY();
}
