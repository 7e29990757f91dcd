/* faithfulness.c — metrics that perturb the input where the explanation points and watch the
 * model (evaluate.h): deletion and insertion (Petsiuk et al. 2018; Quantus's PixelFlipping is the
 * deletion curve without its first point), region perturbation MoRF / LeRF with AOPC (Samek et
 * al. 2016; Quantus's RegionPerturbation, whose patch grid we follow) and ABPC (Schulz et al.
 * 2020), infidelity (Yeh et al. 2019, with the optimal scaling of the authors' code that
 * InterpretDL also applies).
 * Where we depart from InterpretDL (ALGORITHMS.md §6): deletion ranks the features themselves
 * (InterpretDL thresholds percentiles, so ties move together) and reports the trapezoid area
 * next to InterpretDL's mean; fills are given in the model's input space (InterpretDL greys
 * uint8 pixels before its normalisation: give that value as a number); infidelity perturbs the
 * given input each time (InterpretDL caches the perturbations of the first image it saw), uses
 * I = x - x_p (the paper; indicator=1 is InterpretDL's 0/1 mask) and the request's objective
 * (InterpretDL: logits — objective=logit). */
#include "evaluate/evaluate_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- ranking ---------------- */

typedef struct rank_key {
    double v;
    int64_t i;
} rank_key;

static int by_value_desc(const void *a, const void *b) {
    const rank_key *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* rank[f] = position of feature f in descending order of v (ties: lower index first); with
 * ascending, in ascending order (ties still lower index first). */
static idl_status ranks(const double *v, int64_t F, bool ascending, int64_t *rank) {
    rank_key *k = idl__malloc(sizeof(rank_key) * (size_t)F);
    if (!k) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t f = 0; f < F; f++)
        k[f].v = ascending ? -v[f] : v[f], k[f].i = f;
    qsort(k, (size_t)F, sizeof *k, by_value_desc);
    for (int64_t p = 0; p < F; p++)
        rank[k[p].i] = p;
    idl__free(k);
    return IDL_OK;
}

/* ---------------- a stepwise perturbation curve ----------------
 * Row (i, j): sample i after step j; element e of the sample is "changed" when
 * rank[unit(e)] < count[j]; a changed element takes the fill (deletion) or keeps x while the rest
 * takes the fill (insertion). unit(e) is the element (F == numel), its pixel, or its region. */
typedef struct curve_run {
    idl__xrun *r;
    int64_t F;            /* units per sample */
    int64_t K;            /* steps: rows j = 1..K (deletion) or 0..K-1 (insertion) per sample */
    int64_t *rank;        /* (N, F) */
    const int64_t *count; /* (K + 1) units changed after step j, or per sample (N, K + 1) */
    bool per_sample;
    const int32_t *unit; /* (H * W) region of each pixel, or NULL: element / pixel */
    int64_t HW;          /* pixels per channel */
    float *fill;         /* (N, numel) */
    bool insertion;
    double *y; /* (N, K + 1) */
} curve_run;

static int64_t curve_sample(void *u, int64_t row) {
    const curve_run *c = u;
    return row / c->K;
}

static int64_t curve_step(const curve_run *c, int64_t row) {
    return row % c->K + (c->insertion ? 0 : 1);
}

static void curve_point(void *u, int64_t row, float *dst) {
    const curve_run *c = u;
    int64_t i = row / c->K, j = curve_step(c, row), n = c->r->numel, F = c->F;
    const float *x = c->r->x + i * n, *f = c->fill + i * n;
    const int64_t *rk = c->rank + i * F;
    int64_t lim = c->count[(c->per_sample ? i * (c->K + 1) : 0) + j];
    for (int64_t e = 0; e < n; e++) {
        int64_t q = c->unit ? c->unit[e % c->HW] : e % F;
        bool changed = rk[q] < lim;
        dst[e] = changed != c->insertion ? f[e] : x[e];
    }
}

static void curve_take(void *u, int64_t row, const float *g, float obj) {
    (void)g;
    curve_run *c = u;
    c->y[row / c->K * (c->K + 1) + curve_step(c, row)] = obj;
}

/* Evaluates the curve rows and fills y's clean end from the clean pass. */
static idl_status curve_eval(curve_run *c) {
    idl__xrun *r = c->r;
    for (int64_t i = 0; i < r->N; i++)
        c->y[i * (c->K + 1) + (c->insertion ? c->K : 0)] = r->score[i];
    idl__xrows rows = { r->N * c->K, c, curve_sample, curve_point, curve_take, NULL, NULL };
    r->total = r->N + rows.n;
    return idl__x_eval(r, &rows, false);
}

static idl_status fills(idl__xrun *r, const idl_fill *f, const char *metric, float **out) {
    idl_status st = idl__ev_fill_check(r, f, metric);
    *out = st ? NULL : idl__malloc(sizeof(float) * (size_t)(r->N * r->numel));
    if (!st && !*out) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < r->N; i++)
        st = idl__ev_fill(r, f, i, *out + i * r->numel);
    return st;
}

static idl_status new_curve(int64_t N, int64_t P, idl_tensor **t) {
    int64_t shape[2] = { N, P };
    return idl_tensor_new(IDL_DT_F64, 2, shape, t);
}

/* AOPC of a curve: 1/(L+1) sum_j (y_0 - y_j); and its mean. */
static double aopc(const double *y, int64_t L) {
    double a = 0;
    for (int64_t j = 0; j <= L; j++)
        a += y[0] - y[j];
    return a / (double)(L + 1);
}

static double curve_mean(const double *y, int64_t L) {
    double a = 0;
    for (int64_t j = 0; j <= L; j++)
        a += y[j];
    return a / (double)(L + 1);
}

/* ---------------- deletion and insertion ---------------- */

idl_deletion_params idl_deletion_params_default(void) {
    idl_deletion_params p;
    memset(&p, 0, sizeof p);
    p.steps = 20;
    p.fill = idl_fill_default();
    return p;
}

/* numpy.percentile(v, q) (linear interpolation, numpy's lerp) of sorted values a[0..n-1]. */
static double percentile(const double *a, int64_t n, double q) {
    double pos = (double)(n - 1) * q / 100.0;
    int64_t lo = (int64_t)floor(pos);
    if (lo >= n - 1) return a[n - 1];
    double t = pos - (double)lo, x = a[lo], y = a[lo + 1], d = y - x;
    return t >= 0.5 ? y - d * (1 - t) : x + d * t;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef enum step_mode { DELETE = 0, INSERT, LERF_PIXELS } step_mode;

/* The stepwise curves of deletion, insertion and InterpretDL's MoRF / LeRF: y (N, K + 1) owned.
 * K steps (or features_in_step m); interpretdl: counts from the percentile thresholds. */
static idl_status stepwise(idl__xrun *r, const idl_tensor *E, int reduce, step_mode mode, int steps,
                           int m, bool interpretdl, const idl_fill *fill, const char *name,
                           double **y_out, int64_t *K_out) {
    curve_run c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.insertion = mode == INSERT;
    double *v = NULL, *sorted = NULL;
    int64_t *count = NULL;
    *y_out = NULL;
    idl_status st = idl__ev_check_input(r, name);
    if (!st) st = idl__ev_values(r, E, reduce, name, &v, &c.F);
    if (!st && m <= 0 && steps > c.F)
        st = idl__error(IDL_ERR_INVALID_ARG, "%s: steps=%d exceeds the %lld features ranked", name,
                        steps, (long long)c.F);
    if (!st) {
        c.K = m > 0 ? (c.F + m - 1) / m : steps;
        c.per_sample = interpretdl;
        int64_t rows = interpretdl ? r->N : 1;
        count = idl__malloc(sizeof(int64_t) * (size_t)(rows * (c.K + 1)));
        c.rank = idl__malloc(sizeof(int64_t) * (size_t)(r->N * c.F));
        c.y = idl__malloc(sizeof(double) * (size_t)(r->N * (c.K + 1)));
        sorted = interpretdl ? idl__malloc(sizeof(double) * (size_t)c.F) : NULL;
        if (!count || !c.rank || !c.y || (interpretdl && !sorted))
            st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; !st && !interpretdl && j <= c.K; j++)
            count[j] =
                m > 0 ? IDL_MIN(j * m, c.F) : (int64_t)((double)j * (double)c.F / (double)c.K);
        c.count = count;
    }
    for (int64_t i = 0; !st && i < r->N; i++) {
        const double *vi = v + i * c.F;
        st = ranks(vi, c.F, mode == LERF_PIXELS, c.rank + i * c.F);
        if (st || !interpretdl) continue;
        /* InterpretDL: t_j = percentile(E, 100 (K - j) / K); deletion step j removes E > t_j;
           insertion's point j (0..K-1) reveals E > t_{j+1}, its last point is the input; LeRF
           step j fills E < percentile(E, 100 (j - 1) / K) */
        memcpy(sorted, vi, sizeof(double) * (size_t)c.F);
        qsort(sorted, (size_t)c.F, sizeof(double), cmp_double);
        int64_t *ci = count + i * (c.K + 1);
        for (int64_t j = 0; j <= c.K; j++) {
            int64_t k = mode == INSERT ? j + 1 : j, n = 0;
            if (mode == INSERT && j == c.K) {
                ci[j] = c.F;
                continue;
            }
            if (k == 0) {
                ci[j] = 0;
                continue;
            }
            double t = percentile(sorted, c.F,
                                  mode == LERF_PIXELS ? 100.0 * (double)(k - 1) / (double)c.K
                                                      : 100.0 * (double)(c.K - k) / (double)c.K);
            for (int64_t f = 0; f < c.F; f++)
                n += mode == LERF_PIXELS ? sorted[f] < t : sorted[f] > t;
            ci[j] = n;
        }
    }
    if (!st) st = fills(r, fill, name, &c.fill);
    if (!st) st = curve_eval(&c);
    idl__free(v);
    idl__free(sorted);
    idl__free(count);
    idl__free(c.rank);
    idl__free(c.fill);
    if (st) {
        idl__free(c.y);
        return st;
    }
    *y_out = c.y;
    *K_out = c.K;
    return IDL_OK;
}

idl_status idl_eval_deletion(idl_session *s, const idl_explain_request *rq,
                             const idl_tensor *explanation, const idl_deletion_params *p,
                             idl_evaluation *out) {
    idl_deletion_params d = idl_deletion_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if (!p) p = &d;
    const char *name = p->insertion ? "insertion" : "deletion";
    if (p->features_in_step < 0 || (p->features_in_step == 0 && p->steps < 1))
        return idl__error(IDL_ERR_INVALID_ARG, "%s: steps must be >= 1 (or features_in_step >= 1)",
                          name);
    if (p->reduce < 0 || p->reduce > 2)
        return idl__error(IDL_ERR_INVALID_ARG, "%s: reduce must be 0, 1 or 2", name);
    if (p->interpretdl && p->features_in_step)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: variant=interpretdl takes steps, not features_in_step", name);
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, true);
    if (st) return st;
    double *y = NULL;
    int64_t K = 0;
    int reduce = p->interpretdl && !p->reduce ? 3 : p->reduce; /* InterpretDL's reduction */
    st = stepwise(&r, explanation, reduce, p->insertion ? INSERT : DELETE, p->steps,
                  p->features_in_step, p->interpretdl != 0, &p->fill, name, &y, &K);
    static const char *const del_names[] = { "deletion", "deletion_mean" };
    static const char *const ins_names[] = { "insertion", "insertion_mean" };
    if (!st)
        st = idl__ev_result(out, r.N, r.targets, r.score, 2, p->insertion ? ins_names : del_names);
    if (!st) st = new_curve(r.N, K + 1, &out->curve);
    if (!st) {
        memcpy(out->curve->data, y, sizeof(double) * (size_t)(r.N * (K + 1)));
        for (int64_t i = 0; i < r.N; i++) {
            out->values[i * 2] = idl__ev_trapz(y + i * (K + 1), K);
            out->values[i * 2 + 1] = curve_mean(y + i * (K + 1), K);
        }
        out->passes = r.passes;
    }
    if (st) idl_evaluation_clear(out);
    idl__free(y);
    idl__x_end(&r);
    return st;
}

/* ---------------- region perturbation: MoRF, LeRF, ABPC ---------------- */

idl_region_params idl_region_params_default(void) {
    idl_region_params p;
    memset(&p, 0, sizeof p);
    p.order = IDL_MORF;
    p.patch_size = 8;
    p.regions = 100;
    p.steps = 20;
    p.fill = idl_fill_default();
    return p;
}

idl_status idl_eval_region(idl_session *s, const idl_explain_request *rq,
                           const idl_tensor *explanation, const idl_region_params *p,
                           idl_evaluation *out) {
    idl_region_params d = idl_region_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if (!p) p = &d;
    static const char *const metric[] = { "morf", "lerf", "abpc" };
    if ((unsigned)p->order > IDL_ABPC)
        return idl__error(IDL_ERR_INVALID_ARG, "region: unknown order %d", (int)p->order);
    const char *name = metric[p->order];
    if (p->patch_size < 1 || p->regions < 1 || (p->interpretdl && p->steps < 1))
        return idl__error(IDL_ERR_INVALID_ARG, "%s: patch_size, regions and steps must be >= 1",
                          name);
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, true);
    if (st) return st;
    if (r.wrt_ndim < 3) {
        idl__x_end(&r);
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s perturbs square regions of an image input (N, C, H, W); '%s' has "
                          "%d axes",
                          name, r.wrt, r.wrt_ndim);
    }
    int64_t H = r.wrt_shape[r.wrt_ndim - 2], W = r.wrt_shape[r.wrt_ndim - 1], HW = H * W;
    int64_t ps = p->patch_size;
    int64_t top = ((ps - H % ps) % ps) / 2, left = ((ps - W % ps) % ps) / 2;
    int64_t gh = (H + (ps - H % ps) % ps) / ps, gw = (W + (ps - W % ps) % ps) / ps, nP = gh * gw;
    int64_t L = IDL_MIN((int64_t)p->regions, nP);
    double *v = NULL, *rel = NULL, *ys[2] = { NULL, NULL };
    int64_t Fv = 0, *count = NULL;
    int32_t *unit = NULL;
    curve_run c;
    memset(&c, 0, sizeof c);
    /* the region grid and each region's relevance (InterpretDL's variant ranks pixels instead:
       stepwise does all of it) */
    if (!p->interpretdl) st = idl__ev_check_input(&r, name);
    if (!st && !p->interpretdl) st = idl__ev_values(&r, explanation, 0, name, &v, &Fv);
    if (!st && !p->interpretdl) {
        unit = idl__malloc(sizeof(int32_t) * (size_t)HW);
        rel = idl__calloc((size_t)(r.N * nP), sizeof(double));
        count = idl__malloc(sizeof(int64_t) * (size_t)(L + 1));
        c.rank = idl__malloc(sizeof(int64_t) * (size_t)(r.N * nP));
        if (!unit || !rel || !count || !c.rank) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st && !p->interpretdl) {
        for (int64_t q = 0; q < HW; q++)
            unit[q] = (int32_t)(((q / W + top) / ps) * gw + (q % W + left) / ps);
        for (int64_t j = 0; j <= L; j++)
            count[j] = j;
        for (int64_t i = 0; i < r.N; i++) /* a region's relevance: the sum over its elements */
            for (int64_t e = 0; e < r.numel; e++)
                rel[i * nP + unit[e % HW]] += idl__ev_at(&r, v, Fv, i, e);
        c.r = &r, c.F = nP, c.K = L, c.count = count, c.unit = unit, c.HW = HW;
    }
    if (!st && !p->interpretdl) st = fills(&r, &p->fill, name, &c.fill);
    for (int o = 0; o < 2 && !st; o++) { /* 0: MoRF, 1: LeRF */
        if ((p->order == IDL_MORF && o == 1) || (p->order == IDL_LERF && o == 0)) continue;
        if (p->interpretdl) { /* pixels by percentile thresholds: MoRF is its deletion */
            int64_t K = 0;
            st = stepwise(&r, explanation, 3, o ? LERF_PIXELS : DELETE, p->steps, 0, true, &p->fill,
                          name, &ys[o], &K);
            L = K;
            continue;
        }
        ys[o] = idl__malloc(sizeof(double) * (size_t)(r.N * (L + 1)));
        if (!ys[o]) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; !st && i < r.N; i++)
            st = ranks(rel + i * nP, nP, o == 1, c.rank + i * nP);
        c.y = ys[o];
        if (!st) st = curve_eval(&c);
    }
    static const char *const n_morf[] = { "morf", "morf_mean" };
    static const char *const n_lerf[] = { "lerf", "lerf_mean" };
    static const char *const n_abpc[] = { "abpc", "morf", "lerf", "morf_mean", "lerf_mean" };
    int ns = p->order == IDL_ABPC ? 5 : 2;
    if (!st)
        st = idl__ev_result(out, r.N, r.targets, r.score, ns,
                            p->order == IDL_MORF   ? n_morf
                            : p->order == IDL_LERF ? n_lerf
                                                   : n_abpc);
    const double *y0 = ys[0] ? ys[0] : ys[1];
    if (!st) st = new_curve(r.N, L + 1, &out->curve);
    if (!st && p->order == IDL_ABPC) st = new_curve(r.N, L + 1, &out->curve2);
    if (!st) {
        memcpy(out->curve->data, y0, sizeof(double) * (size_t)(r.N * (L + 1)));
        if (out->curve2) memcpy(out->curve2->data, ys[1], sizeof(double) * (size_t)(r.N * (L + 1)));
        for (int64_t i = 0; i < r.N; i++) {
            double *o = out->values + i * ns;
            const double *a = y0 + i * (L + 1), *b = ys[1] ? ys[1] + i * (L + 1) : NULL;
            if (p->order == IDL_ABPC) {
                o[0] = idl__ev_trapz(b, L) - idl__ev_trapz(a, L);
                o[1] = aopc(a, L), o[2] = aopc(b, L);
                o[3] = curve_mean(a, L), o[4] = curve_mean(b, L);
            } else {
                o[0] = aopc(a, L), o[1] = curve_mean(a, L);
            }
        }
        out->passes = r.passes;
    }
    if (st) idl_evaluation_clear(out);
    idl__free(v);
    idl__free(rel);
    idl__free(unit);
    idl__free(count);
    idl__free(c.rank);
    idl__free(c.fill);
    idl__free(ys[0]);
    idl__free(ys[1]);
    idl__x_end(&r);
    return st;
}

/* ---------------- infidelity ---------------- */

idl_infidelity_params idl_infidelity_params_default(void) {
    idl_infidelity_params p;
    memset(&p, 0, sizeof p);
    p.scaling = 1;
    p.fill = idl_fill_default();
    return p;
}

typedef struct infid_run {
    idl__xrun *r;
    int64_t P;         /* perturbations per sample */
    const int64_t *sq; /* (P, 3) side, row, column */
    const float *fill; /* (N, numel) */
    int64_t H, W;
    double *d; /* (N, P) f(x) - f(x_p) */
} infid_run;

static int64_t infid_sample(void *u, int64_t row) {
    return row / ((const infid_run *)u)->P;
}

static void infid_point(void *u, int64_t row, float *dst) {
    const infid_run *o = u;
    const idl__xrun *r = o->r;
    int64_t i = row / o->P, pi = row % o->P, n = r->numel, HW = o->H * o->W;
    const int64_t *q = o->sq + pi * 3;
    const float *x = r->x + i * n, *f = o->fill + i * n;
    memcpy(dst, x, sizeof(float) * (size_t)n);
    for (int64_t c = 0; c < n / HW; c++)
        for (int64_t y = q[1]; y < q[1] + q[0]; y++)
            for (int64_t xx = q[2]; xx < q[2] + q[0]; xx++)
                dst[c * HW + y * o->W + xx] = f[c * HW + y * o->W + xx];
}

static void infid_take(void *u, int64_t row, const float *g, float obj) {
    (void)g;
    infid_run *o = u;
    o->d[row] = (double)o->r->score[row / o->P] - (double)obj;
}

idl_status idl_eval_infidelity(idl_session *s, const idl_explain_request *rq,
                               const idl_tensor *explanation, const idl_infidelity_params *p,
                               idl_evaluation *out) {
    idl_infidelity_params d = idl_infidelity_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if (!p) p = &d;
    if (p->n_sizes < 0 || p->n_sizes > IDL_INFID_MAX_SIZES || p->stride < 0)
        return idl__error(IDL_ERR_INVALID_ARG, "infidelity: 0..%d patch sizes and stride >= 0",
                          IDL_INFID_MAX_SIZES);
    for (int k = 0; k < p->n_sizes; k++)
        if (p->patch_sizes[k] < 1)
            return idl__error(IDL_ERR_INVALID_ARG, "infidelity: patch size %d < 1",
                              p->patch_sizes[k]);
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, true);
    if (st) return st;
    if (r.wrt_ndim < 3) {
        idl__x_end(&r);
        return idl__error(IDL_ERR_INVALID_ARG,
                          "infidelity perturbs squares of an image input (N, C, H, W); '%s' has "
                          "%d axes",
                          r.wrt, r.wrt_ndim);
    }
    infid_run o;
    memset(&o, 0, sizeof o);
    o.r = &r;
    o.H = r.wrt_shape[r.wrt_ndim - 2], o.W = r.wrt_shape[r.wrt_ndim - 1];
    int64_t HW = o.H * o.W, n = r.numel;
    int sizes[IDL_INFID_MAX_SIZES], n_sizes = p->n_sizes;
    memcpy(sizes, p->patch_sizes, sizeof sizes);
    int stride = p->stride;
    if (!n_sizes) { /* InterpretDL's 32, 64, 128 at stride 8 on 224 x 224, scaled */
        static const int base[3] = { 32, 64, 128 };
        for (int k = 0; k < 3; k++) {
            int v = (int)lround(base[k] * (double)o.H / 224.0);
            if (v >= 1 && v <= o.H && v <= o.W) sizes[n_sizes++] = v;
        }
    }
    if (!stride) stride = (int)IDL_MAX(1, lround(8.0 * (double)o.H / 224.0));
    int64_t P = 0;
    for (int k = 0; k < n_sizes; k++)
        if (sizes[k] <= o.H && sizes[k] <= o.W)
            P += ((o.H - sizes[k]) / stride + 1) * ((o.W - sizes[k]) / stride + 1);
    int64_t *sq = NULL;
    double *v = NULL, *e = NULL;
    float *fill = NULL;
    int64_t Fv = 0;
    if (P == 0)
        st = idl__error(IDL_ERR_INVALID_ARG, "infidelity: no patch fits in the %lldx%lld input",
                        (long long)o.H, (long long)o.W);
    if (!st) st = idl__ev_check_input(&r, "infidelity");
    if (!st) st = idl__ev_values(&r, explanation, 0, "infidelity", &v, &Fv);
    if (!st) {
        sq = idl__malloc(sizeof(int64_t) * (size_t)(3 * P));
        o.d = idl__malloc(sizeof(double) * (size_t)(r.N * P));
        e = idl__malloc(sizeof(double) * (size_t)P);
        if (!sq || !o.d || !e) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        int64_t q = 0;
        for (int k = 0; k < n_sizes; k++)
            for (int64_t y = 0; sizes[k] <= o.W && y + sizes[k] <= o.H; y += stride)
                for (int64_t x = 0; x + sizes[k] <= o.W; x += stride)
                    sq[q * 3] = sizes[k], sq[q * 3 + 1] = y, sq[q * 3 + 2] = x, q++;
        o.P = P, o.sq = sq;
    }
    if (!st) st = fills(&r, &p->fill, "infidelity", &fill);
    o.fill = fill;
    if (!st) {
        idl__xrows rows = { r.N * P, &o, infid_sample, infid_point, infid_take, NULL, NULL };
        r.total = r.N + rows.n;
        st = idl__x_eval(&r, &rows, false);
    }
    static const char *const names[] = { "infidelity", "infidelity_beta" };
    if (!st) st = idl__ev_result(out, r.N, r.targets, r.score, 2, names);
    for (int64_t i = 0; !st && i < r.N; i++) {
        const float *x = r.x + i * n, *f = fill + i * n;
        const double *dd = o.d + i * P;
        double de = 0, ee = 0;
        for (int64_t pi = 0; pi < P; pi++) {
            const int64_t *q = sq + pi * 3;
            double acc = 0;
            for (int64_t c = 0; c < n / HW; c++)
                for (int64_t y = q[1]; y < q[1] + q[0]; y++)
                    for (int64_t xx = q[2]; xx < q[2] + q[0]; xx++) {
                        int64_t el = c * HW + y * o.W + xx;
                        double I = p->indicator ? (f[el] != x[el]) : (double)x[el] - (double)f[el];
                        acc += I * idl__ev_at(&r, v, Fv, i, el);
                    }
            e[pi] = acc;
            de += dd[pi] * acc, ee += acc * acc;
        }
        double beta = !p->scaling ? 1.0 : ee > 0 ? de / ee : 0.0, loss = 0;
        for (int64_t pi = 0; pi < P; pi++) {
            double diff = dd[pi] - beta * e[pi];
            loss += diff * diff;
        }
        out->values[i * 2] = loss / (double)P;
        out->values[i * 2 + 1] = beta;
    }
    if (!st) out->passes = r.passes;
    if (st) idl_evaluation_clear(out);
    idl__free(v);
    idl__free(sq);
    idl__free(e);
    idl__free(o.d);
    idl__free(fill);
    idl__x_end(&r);
    return st;
}

/* ---------------- local fidelity of a LIME explanation ---------------- */

idl_local_fidelity_params idl_local_fidelity_params_default(void) {
    idl_local_fidelity_params p;
    memset(&p, 0, sizeof p);
    p.lime = idl_lime_params_default();
    p.heldout = 1;
    return p;
}

idl_status idl_eval_local_fidelity(idl_session *s, const idl_explain_request *rq,
                                   const idl_tensor *explanation,
                                   const idl_local_fidelity_params *p, idl_evaluation *out) {
    idl_local_fidelity_params d = idl_local_fidelity_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out || !rq) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if (!p) p = &d;
    if (!explanation && !p->features)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "local_fidelity: give the LIME explanation (its painted map) or "
                          "features");
    if (p->lime.top_k > 1)
        return idl__error(IDL_ERR_INVALID_ARG, "local_fidelity judges one class per sample");
    if (p->heldout && p->lime.masks)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "local_fidelity: masks= replays LIME's own samples; they are not held "
                          "out (give heldout=0)");
    idl_explain_request r2 = *rq;
    r2.seed = rq->seed + (p->heldout ? 1u : 0u);
    idl_explanation e;
    double *y = NULL;
    idl_status st = idl__lime_samples(s, &r2, &p->lime, &e, &y);
    if (st) return st;
    int64_t N = e.n, ns = e.masks->shape[0], Smax = e.masks->shape[1];
    int64_t H = e.segments->shape[1], W = e.segments->shape[2], HW = H * W;
    const float *Z = e.masks->data;
    const int32_t *seg = e.segments->data;
    double *beta = idl__calloc((size_t)Smax + 1, sizeof(double));
    double *cnt = idl__calloc((size_t)Smax + 1, sizeof(double)); /* pixels per superpixel */
    double *zm = idl__calloc((size_t)Smax + 1, sizeof(double));  /* weighted mask means */
    double *w = idl__malloc(sizeof(double) * (size_t)ns);
    float *Zi = idl__malloc(sizeof(float) * (size_t)(ns * Smax) + 1);
    char a[128];
    if (!beta || !cnt || !zm || !w || !Zi) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st && p->features &&
        (p->features->ndim != 2 || p->features->shape[0] != N || p->features->shape[1] < Smax))
        st = idl__error(IDL_ERR_SHAPE,
                        "local_fidelity: features must be (%lld, >= %lld superpixels); they are %s",
                        (long long)N, (long long)Smax,
                        idl__shape_str(p->features->ndim, p->features->shape, a, sizeof a));
    if (!st && !p->features && idl_tensor_numel(explanation) != N * HW)
        st = idl__error(IDL_ERR_SHAPE,
                        "local_fidelity: the explanation must be LIME's painted map (%lld, %lld, "
                        "%lld); it is %s",
                        (long long)N, (long long)H, (long long)W,
                        idl__shape_str(explanation->ndim, explanation->shape, a, sizeof a));
    static const char *const names[] = { "local_fidelity" };
    if (!st) st = idl__ev_result(out, N, e.targets, e.score, 1, names);
    for (int64_t i = 0; !st && i < N; i++) {
        int64_t S = e.n_features[i];
        memset(beta, 0, sizeof(double) * (size_t)Smax);
        memset(cnt, 0, sizeof(double) * (size_t)Smax);
        if (p->features) {
            for (int64_t j = 0; j < S; j++)
                beta[j] = idl__get_f64(p->features, i * p->features->shape[1] + j);
        } else { /* each superpixel's weight: the mean of the map over it */
            for (int64_t q = 0; q < HW; q++)
                beta[seg[i * HW + q]] += idl__get_f64(explanation, i * HW + q),
                    cnt[seg[i * HW + q]] += 1;
            for (int64_t j = 0; j < S; j++)
                beta[j] = cnt[j] > 0 ? beta[j] / cnt[j] : 0;
        }
        const double *yi = y + i * ns;
        for (int64_t k = 0; k < ns; k++) { /* this sample's S columns, packed */
            for (int64_t j = 0; j < S; j++)
                Zi[k * S + j] = Z[k * Smax + j];
            w[k] = idl__lime_weight(Zi + k * S, S, p->lime.kernel_width);
        }
        double ym = 0, b0 = 0;
        idl__weighted_means(Zi, ns, S, yi, w, zm, &ym);
        for (int64_t j = 0; j < S; j++) /* the least-squares intercept for these weights */
            b0 -= zm[j] * beta[j];
        b0 = p->intercept ? p->intercept[i] : ym + b0;
        out->values[i] = idl__weighted_r2(Zi, ns, S, yi, w, ym, beta, b0);
    }
    if (!st) out->passes = e.passes;
    if (st) idl_evaluation_clear(out);
    idl__free(beta);
    idl__free(cnt);
    idl__free(zm);
    idl__free(w);
    idl__free(Zi);
    idl__free(y);
    idl_explanation_clear(&e);
    return st;
}
