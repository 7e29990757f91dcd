/* settings.c — "key=value" settings (settings.h). */
#include "interpret/settings.h"

#include "interpretdl/segment.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void idl__kvs_free(idl__kvs *k) {
    for (int i = 0; i < k->n_owned; i++)
        idl_tensor_free(k->owned[i]);
    k->n_owned = 0;
}

idl_status idl__kvs_parse(idl__kvs *k, const char *method, const char *const *set, int n) {
    memset(k, 0, sizeof *k);
    k->method = method;
    if (n < 0 || (n && !set)) return idl__error(IDL_ERR_INVALID_ARG, "bad settings array");
    if (n > IDL__MAX_SET)
        return idl__error(IDL_ERR_INVALID_ARG, "more than %d settings", IDL__MAX_SET);
    for (int i = 0; i < n; i++) {
        const char *eq = set[i] ? strchr(set[i], '=') : NULL;
        if (!eq || eq == set[i] || (size_t)(eq - set[i]) >= sizeof k->v[0].key)
            return idl__error(IDL_ERR_INVALID_ARG, "setting '%s' is not key=value",
                              set[i] ? set[i] : "(null)");
        memcpy(k->v[i].key, set[i], (size_t)(eq - set[i]));
        k->v[i].key[eq - set[i]] = 0;
        k->v[i].val = eq + 1;
        for (int j = 0; j < i; j++)
            if (!strcmp(k->v[j].key, k->v[i].key))
                return idl__error(IDL_ERR_INVALID_ARG, "setting '%s' given twice", k->v[i].key);
    }
    k->n = n;
    return IDL_OK;
}

const char *idl__kv_get(idl__kvs *k, const char *key) {
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->v[i].key, key)) {
            k->v[i].used = true;
            return k->v[i].val;
        }
    return NULL;
}

void idl__kv_unuse(idl__kvs *k, const char *key) {
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->v[i].key, key)) k->v[i].used = false;
}

idl_status idl__kv_bad(idl__kvs *k, const char *key, const char *val, const char *want) {
    return idl__error(IDL_ERR_INVALID_ARG, "%s: setting %s=%s: expected %s", k->method, key, val,
                      want);
}

idl_status idl__kv_int(idl__kvs *k, const char *key, int *out, long lo, long hi) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        char want[96];
        snprintf(want, sizeof want, "an integer in %ld..%ld", lo, hi);
        return idl__kv_bad(k, key, v, want);
    }
    *out = (int)x;
    return IDL_OK;
}

idl_status idl__kv_u64(idl__kvs *k, const char *key, uint64_t *out) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || *v == '-') return idl__kv_bad(k, key, v, "a non-negative integer");
    *out = (uint64_t)x;
    return IDL_OK;
}

idl_status idl__kv_float(idl__kvs *k, const char *key, float *out, double lo, double hi) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !isfinite(x) || x < lo || x > hi) {
        char want[96];
        snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
        return idl__kv_bad(k, key, v, want);
    }
    *out = (float)x;
    return IDL_OK;
}

idl_status idl__kv_bool(idl__kvs *k, const char *key, int *out) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
        *out = 0;
    else
        return idl__kv_bad(k, key, v, "0 or 1");
    return IDL_OK;
}

idl_status idl__kv_enum(idl__kvs *k, const char *key, const char *const *names, int n, int *out) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    char want[256] = "one of";
    for (int i = 0; i < n; i++) {
        if (!strcmp(v, names[i])) {
            *out = i;
            return IDL_OK;
        }
        snprintf(want + strlen(want), sizeof want - strlen(want), " %s", names[i]);
    }
    return idl__kv_bad(k, key, v, want);
}

idl_status idl__kv_npy(idl__kvs *k, const char *key, const idl_tensor **out) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    if (k->n_owned >= 8) return idl__error(IDL_ERR_INVALID_ARG, "too many file settings");
    idl_status st = idl_npy_load(v, &k->owned[k->n_owned]);
    if (st) return idl__error_prefix(st, "%s: setting %s=%s: ", k->method, key, v);
    *out = k->owned[k->n_owned++];
    return IDL_OK;
}

idl_status idl__kv_floats(idl__kvs *k, const char *key, float *out, int n) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    const char *p = v;
    for (int i = 0; i < n; i++) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x)) return idl__kv_bad(k, key, v, "comma-separated numbers");
        out[i] = (float)x;
        p = end;
        if (*p == ',')
            p++;
        else {
            if (*p || i != n - 1) {
                if (!*p && i < n - 1) { /* fewer values: repeat the last */
                    for (int j = i + 1; j < n; j++)
                        out[j] = out[i];
                    return IDL_OK;
                }
                return idl__kv_bad(k, key, v, "comma-separated numbers");
            }
        }
    }
    return IDL_OK;
}

idl_status idl__kv_baseline(idl__kvs *k, idl_baseline *b) {
    const char *v = idl__kv_get(k, "baseline");
    idl_status st = IDL_OK;
    if (v) {
        if (k->n_owned >= 8) return idl__error(IDL_ERR_INVALID_ARG, "too many file settings");
        idl_tensor *t = NULL;
        st = idl__baseline_parse(v, b, &t);
        if (t) k->owned[k->n_owned++] = t;
        if (st) return idl__error_prefix(st, "%s: ", k->method);
    }
    if (!st) st = idl__kv_float(k, "blur_sigma", &b->blur_sigma, 1e-3, 1e4);
    if (!st) st = idl__kv_int(k, "trials", &b->trials, 1, 100000);
    if (!st) st = idl__kv_floats(k, "mean", b->mean, 4);
    if (!st) st = idl__kv_floats(k, "std", b->std, 4);
    return st;
}

/* "a,b,c": 1..max integers in [lo, hi]; *n receives the count. */
idl_status idl__kv_ints(idl__kvs *k, const char *key, int64_t *out, int max, int *n, long long lo,
                        long long hi) {
    const char *v = idl__kv_get(k, key);
    if (!v) return IDL_OK;
    const char *p = v;
    int c = 0;
    char want[128];
    snprintf(want, sizeof want, "1 to %d comma-separated integers in %lld..%lld", max, lo, hi);
    for (;;) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < lo || x > hi || c == max) return idl__kv_bad(k, key, v, want);
        out[c++] = x;
        p = end;
        if (!*p) break;
        if (*p++ != ',') return idl__kv_bad(k, key, v, want);
    }
    *n = c;
    return IDL_OK;
}

/* Settings every method takes; they override the request's fields. */
idl_status idl__kv_request(idl__kvs *k, idl_explain_request *rq) {
    static const char *const objs[] = { "logit", "probability", "log_probability" };
    int o = (int)rq->objective;
    idl_status st = idl__kv_enum(k, "objective", objs, 3, &o);
    rq->objective = (idl_objective_kind)o;
    if (!st) st = idl__kv_int(k, "output", &rq->output, 0, 1 << 20);
    if (!st) st = idl__kv_int(k, "internal_batch", &rq->internal_batch, 0, 1 << 20);
    if (!st) st = idl__kv_u64(k, "seed", &rq->seed);
    const char *w = idl__kv_get(k, "wrt");
    if (w) rq->wrt = w;
    const char *l = idl__kv_get(k, "layer");
    if (l) rq->layer = l;
    return st;
}

idl_status idl__kv_lime(idl__kvs *k, const idl_explain_request *rq, idl_lime_params *p,
                        idl_segment_params *g) {
    const char *seg = idl__kv_get(k, "segmentation");
    idl_segmentation m = IDL_SEG_QUICKSHIFT;
    if (seg && idl_segmentation_parse(seg, &m))
        return idl__kv_bad(k, "segmentation", seg, "quickshift, slic or grid");
    *g = idl_segment_params_default(m);
    p->seg = g;
    idl_status st = idl__kv_int(k, "num_samples", &p->num_samples, 1, 1 << 24);
    if (!st) st = idl__kv_float(k, "kernel_width", &p->kernel_width, 1e-6, 1e6);
    const char *hide = idl__kv_get(k, "hide");
    if (!st && hide && strcmp(hide, "mean")) {
        p->hide_mean = 0;
        idl__kv_unuse(k, "hide");
        st = idl__kv_float(k, "hide", &p->hide_value, -1e30, 1e30);
    }
    if (!st) st = idl__kv_float(k, "ratio", &g->ratio, 0, 1e6);
    if (!st) st = idl__kv_float(k, "kernel_size", &g->kernel_size, 1e-3, IDL_SEGMENT_MAX_KERNEL);
    if (!st) st = idl__kv_float(k, "max_dist", &g->max_dist, 0, 1e30);
    if (!st) st = idl__kv_float(k, "sigma", &g->sigma, 0, IDL_SEGMENT_MAX_SIGMA);
    if (!st) st = idl__kv_bool(k, "convert2lab", &g->convert2lab);
    if (!st) st = idl__kv_int(k, "n_segments", &g->n_segments, 1, 1 << 24);
    if (!st) st = idl__kv_float(k, "compactness", &g->compactness, 1e-6, 1e6);
    if (!st) st = idl__kv_int(k, "max_iter", &g->max_iter, 1, IDL_SEGMENT_MAX_ITER);
    if (!st) st = idl__kv_int(k, "grid_rows", &g->grid_rows, 1, 1 << 14);
    if (!st) st = idl__kv_int(k, "grid_cols", &g->grid_cols, 1, 1 << 14);
    if (!st) st = idl__kv_npy(k, "segments", &p->segments);
    if (!st) st = idl__kv_npy(k, "masks", &p->masks);
    g->seed = rq->seed;
    /* written by the caller (the command line) from the result */
    idl__kv_get(k, "segments_out"), idl__kv_get(k, "masks_out");
    return st;
}
