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

typedef struct case_files {
    idl_tensor *x, *logits, *targets, *dir, *fd, *fd_tol;
} case_files;

static void case_files_free(case_files *c) {
    idl_tensor_free(c->x);
    idl_tensor_free(c->logits);
    idl_tensor_free(c->targets);
    idl_tensor_free(c->dir);
    idl_tensor_free(c->fd);
    idl_tensor_free(c->fd_tol);
    memset(c, 0, sizeof *c);
}

/* Loads dir/name into *out if the file exists (returns 0), leaves NULL when absent (returns 0),
 * -1 with a message on a load failure. */
static int load_opt(const char *cname, const char *dir, const char *name, idl_tensor **out) {
    char path[4096];
    join(path, sizeof path, dir, name);
    *out = NULL;
    if (!is_file(path)) return 0;
    if (idl_npy_load(path, out) != IDL_OK) {
        fprintf(stderr, "parity %s: cannot read %s: %s\n", cname, path, idl_last_error());
        return -1;
    }
    return 0;
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

static const char *const OBJECTIVES[] = { "logit", "probability", "log_probability" };

/* Runs one case folder; returns 1 if everything in it passed. */
static int run_case(const char *dir, const char *cname) {
    double t0 = now_s();
    int ok = 1;
    idl_model *m = NULL;
    idl_session *s = NULL;
    case_files c = { 0 };
    kinkset ks = { 0 };
    char path[4096], line[2048], sh1[128], sh2[128], err[512];
    size_t ll = 0;
    line[0] = 0;
#define LINE(...) \
    (ll += (size_t)snprintf(line + ll, ll < sizeof line ? sizeof line - ll : 0, __VA_ARGS__))

    join(path, sizeof path, dir, "model.onnx");
    if (idl_model_load(path, NULL, &m) != IDL_OK) CASE_FAIL("load %s: %s", path, idl_last_error());
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = g_threads;
    if (idl_session_new(m, &so, &s) != IDL_OK) CASE_FAIL("session: %s", idl_last_error());
    if (idl_model_n_inputs(m) != 1)
        CASE_FAIL("the model has %d graph inputs; parity cases have exactly one",
                  idl_model_n_inputs(m));
    const char *in_name = idl_model_input_name(m, 0);

    if (load_opt(cname, dir, "input.npy", &c.x) || load_opt(cname, dir, "logits.npy", &c.logits) ||
        load_opt(cname, dir, "targets.npy", &c.targets) ||
        load_opt(cname, dir, "dir.npy", &c.dir) || load_opt(cname, dir, "fd.npy", &c.fd) ||
        load_opt(cname, dir, "fd_tol.npy", &c.fd_tol))
        CASE_FAIL("unreadable reference file");
    if (!c.x || !c.logits) CASE_FAIL("input.npy or logits.npy missing in %s", dir);
    if (c.x->dtype != IDL_DT_F32 || c.logits->dtype != IDL_DT_F32 || c.x->ndim < 1)
        CASE_FAIL("input.npy and logits.npy must be float32");
    const int64_t batch = c.x->shape[0];
    if (c.targets &&
        (c.targets->dtype != IDL_DT_I64 || c.targets->ndim != 1 || c.targets->shape[0] != batch))
        CASE_FAIL("targets.npy must be int64 of shape (%lld)", (long long)batch);

    join(path, sizeof path, dir, "kinks.txt");
    if (!g_no_kinks && is_file(path)) {
        if (kinks_load(path, &ks, err, sizeof err)) CASE_FAIL("%s", err);
        for (int i = 0; i < ks.n; i++)
            if (idl_session_set_tap(s, ks.t[i].name, kink_tap, &ks.t[i]) != IDL_OK)
                CASE_FAIL("kinks.txt names tensor '%s': %s", ks.t[i].name, idl_last_error());
    }

    /* forward */
    const idl_tensor *ins[1] = { c.x };
    kinks_reset_stats(&ks);
    if (idl_session_forward(s, ins, NULL, 1) != IDL_OK) CASE_FAIL("forward: %s", idl_last_error());
    const idl_tensor *y = idl_session_output(s, 0);
    if (!y || y->dtype != IDL_DT_F32 || !same_shape(y, c.logits)) {
        shape_str(c.logits, sh1, sizeof sh1);
        if (y) shape_str(y, sh2, sizeof sh2);
        CASE_FAIL("output 0 is %s, reference logits %s", y ? sh2 : "missing", sh1);
    }
    double maxref;
    double e = rel_max_err(y->data, c.logits->data, idl_tensor_numel(y), &maxref);
    int pass = e <= g_rtol;
    LINE("forward %.1e", e);
    CHECK_MSG(pass, "%s: forward max|ours - ref| = %.3g of max|ref| = %.3g (tolerance %.0e)", cname,
              e, maxref, g_rtol);
    ok &= pass;
    int64_t flips = 0;
    double kdev = 0;
    if (ks.n) {
        pass = kinks_verify(cname, &ks, &flips, &kdev);
        CHECK(pass);
        ok &= pass;
    }

    /* gradients, one backward per objective on the same forward */
    for (size_t oi = 0; oi < sizeof OBJECTIVES / sizeof *OBJECTIVES; oi++) {
        char fname[64];
        snprintf(fname, sizeof fname, "grad_%s.npy", OBJECTIVES[oi]);
        idl_tensor *ref = NULL;
        if (load_opt(cname, dir, fname, &ref)) CASE_FAIL("unreadable %s", fname);
        if (!ref) continue;
        if (!c.targets) {
            idl_tensor_free(ref);
            CASE_FAIL("%s without targets.npy", fname);
        }
        idl_objective obj = idl_objective_default();
        if (idl_objective_kind_parse(OBJECTIVES[oi], &obj.kind) != IDL_OK) {
            idl_tensor_free(ref);
            CASE_FAIL("objective %s: %s", OBJECTIVES[oi], idl_last_error());
        }
        obj.targets = c.targets->data;
        const char *wrt[1] = { in_name };
        if (idl_session_backward(s, &obj, wrt, 1) != IDL_OK) {
            idl_tensor_free(ref);
            CASE_FAIL("backward (%s): %s", OBJECTIVES[oi], idl_last_error());
        }
        const idl_tensor *g = idl_session_grad(s, in_name);
        if (!g || g->dtype != IDL_DT_F32 || !same_shape(g, ref)) {
            idl_tensor_free(ref);
            CASE_FAIL("gradient (%s) missing or of the wrong shape", OBJECTIVES[oi]);
        }
        e = rel_max_err(g->data, ref->data, idl_tensor_numel(g), &maxref);
        pass = e <= g_rtol;
        LINE(" | grad_%s %.1e", OBJECTIVES[oi], e);
        CHECK_MSG(pass, "%s: grad_%s max|ours - ref| = %.3g of max|ref| = %.3g (tolerance %.0e)",
                  cname, OBJECTIVES[oi], e, maxref, g_rtol);
        ok &= pass;
        idl_tensor_free(ref);
    }

    /* directional derivatives against float64 finite differences (ONNX Runtime cases) */
    if (c.dir || c.fd || c.fd_tol) {
        if (!c.dir || !c.fd || !c.fd_tol || !c.targets)
            CASE_FAIL("dir/fd/fd_tol/targets incomplete");
        /* dir (K, N, ...) and fd, fd_tol (K, N); K = 1 may be left out */
        int64_t k_dirs = c.dir->ndim == c.x->ndim + 1 ? c.dir->shape[0] : 1;
        int shape_ok = c.dir->dtype == IDL_DT_F32 && c.fd->dtype == IDL_DT_F32 &&
                       c.fd_tol->dtype == IDL_DT_F32 &&
                       idl_tensor_numel(c.dir) == k_dirs * idl_tensor_numel(c.x) &&
                       idl_tensor_numel(c.fd) == k_dirs * batch &&
                       idl_tensor_numel(c.fd_tol) == k_dirs * batch;
        for (int i = 0; shape_ok && i < c.x->ndim; i++)
            shape_ok = c.dir->shape[c.dir->ndim - c.x->ndim + i] == c.x->shape[i];
        if (!shape_ok)
            CASE_FAIL("dir.npy must be (K,)+input shape, fd.npy and fd_tol.npy (K, N), float32");
        idl_objective obj = idl_objective_default();
        obj.kind = IDL_OBJ_LOGIT;
        obj.targets = c.targets->data;
        const char *wrt[1] = { in_name };
        if (idl_session_backward(s, &obj, wrt, 1) != IDL_OK)
            CASE_FAIL("backward (logit, directional): %s", idl_last_error());
        const idl_tensor *g = idl_session_grad(s, in_name);
        if (!g || !same_shape(g, c.x)) CASE_FAIL("gradient (logit) missing or of the wrong shape");
        const int64_t per = idl_tensor_numel(g) / (batch ? batch : 1);
        const float *gd = g->data, *fd = c.fd->data, *tol = c.fd_tol->data;
        double worst = 0;
        for (int64_t k = 0; k < k_dirs; k++)
            for (int64_t b = 0; b < batch; b++) {
                const float *dd = (const float *)c.dir->data + (k * batch + b) * per;
                double dot = 0;
                for (int64_t i = 0; i < per; i++)
                    dot += (double)gd[b * per + i] * (double)dd[i];
                double ref = fd[k * batch + b], t = tol[k * batch + b];
                double diff = fabs(dot - ref);
                if (!(diff / t <= worst)) worst = diff / t;
                pass = diff <= t;
                CHECK_MSG(pass,
                          "%s: direction %lld, sample %lld: <grad, dir> = %.8g, finite "
                          "difference %.8g (tolerance %.3g)",
                          cname, (long long)k, (long long)b, dot, ref, t);
                ok &= pass;
            }
        LINE(" | directional x%lld: %.2g of tolerance", (long long)(k_dirs * batch), worst);
    }
    if (ks.n)
        LINE(" | kinks %lld aligned, %lld flipped, dev %.0e", (long long)ks.units, (long long)flips,
             kdev);

done:
    printf("parity %-22s %s | %.1f s  %s  [rtol %.0e]\n", cname, line, now_s() - t0,
           ok ? "OK" : "FAIL", g_rtol);
    fflush(stdout);
    kinks_free(&ks);
    case_files_free(&c);
    idl_session_free(s);
    idl_model_free(m);
    return ok;
#undef LINE
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
