/* lime.c — LIME for images (Ribeiro et al. 2016; the lime package's LimeImageExplainer, which
 * InterpretDL's LIMECVInterpreter adapts):
 *  1. the image is cut into S superpixels (idl_segment: quickshift with the lime package's
 *     kernel_size 4, max_dist 200, ratio 0.2 by default; InterpretDL uses 5, 10, 1 with sigma 1),
 *     or a label map is given;
 *  2. num_samples binary masks z (S bits, fair coins; row 0 all ones, the image itself) from the
 *     counter-based generator keyed (seed, row, superpixel): the same masks for every sample of a
 *     batch, whatever the thread count; or replayed from a file;
 *  3. each mask is one forward row: superpixels with z = 0 are filled with their own mean in the
 *     model's input space (lime's hide_color=None; the mean of a normalised image is the normalised
 *     mean colour) or with a value; y = the objective of the target (probability by default);
 *  4. sample weight w = sqrt(exp(-d^2 / kernel_width^2)), d the cosine distance between z and the
 *     all-ones row: d = 1 - sqrt(|z| / S) (1 for z = 0);
 *  5. weighted ridge regression with intercept: minimise sum w (y - b - z.beta)^2 +
 *     ridge_alpha |beta|^2 (intercept not penalised). ridge_alpha = 0 (default) is weighted least
 *     squares, InterpretDL's Ridge(alpha=0); the lime package uses Ridge(alpha=1). Solved by
 * LAPACK's dgelsd on the weight-scaled, weighted-mean-centred data (ridge as S extra rows
 *     sqrt(alpha) I): with alpha = 0 and a rank-deficient design (fewer samples than superpixels,
 *     or a superpixel always on) the minimum-norm solution, as numpy.linalg.lstsq gives
 *     (rcond = eps * max(rows, S)). Reported: the coefficients, the intercept and the weighted R^2
 *     of the surrogate on its own samples (sklearn's score).
 * Output: the attribution is (N, H, W), each pixel painted with its superpixel's coefficient;
 * also features (N, S_max), segments (N, H, W), masks (num_samples, S_max), intercept, r2.
 * Departures from InterpretDL: segments are computed per image (InterpretDL caches the first
 * image's segmentation on the interpreter and silently reuses it [bug]); a hide value is used as
 * given (InterpretDL paints zeros for any value [bug]); the target is the argmax or the given
 * class (InterpretDL's top_k list is ordered by ascending probability). */
#include "interpret/interpret_internal.h"

#include "interpretdl/segment.h"
#include "tensor/tensor_internal.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#define IDL__MAX_FEATURES (1 << 16)

idl_lime_params idl_lime_params_default(void) {
    idl_lime_params p;
    memset(&p, 0, sizeof p);
    p.num_samples = 1000;
    p.kernel_width = 0.25f;
    p.ridge_alpha = 0;
    p.hide_mean = 1;
    return p;
}

/* ---- weighted ridge with intercept ---- */

/* Minimum-norm least squares of the column-major (m, S) system A x = B by LAPACK's dgelsd
 * (rcond = eps * max(m, S), numpy.linalg.lstsq's); x is B's first S entries (B holds
 * max(m, S)). A and B are overwritten. */
static idl_status lsq_solve(double *A, int64_t m, int64_t S, double *B) {
    int64_t ldb = IDL_MAX(m, S);
    double *sv = idl__calloc((size_t)S, sizeof(double)), *work = NULL, wq = 0;
    lapack_int *iwork = NULL, rank = 0, iq = 0, info;
    double rcond = DBL_EPSILON * (double)IDL_MAX(m, S);
    if (!sv) return idl__error(IDL_ERR_NOMEM, "out of memory");
    idl_status st = IDL_OK;
    info = LAPACKE_dgelsd_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)S, 1, A, (lapack_int)m,
                               B, (lapack_int)ldb, sv, rcond, &rank, &wq, -1, &iq);
    if (info)
        st = idl__error(IDL_ERR_INTERNAL, "least squares: dgelsd workspace query failed (%d)",
                        (int)info);
    lapack_int lw = (lapack_int)wq + 1;
    if (!st) {
        work = idl__malloc(sizeof(double) * (size_t)lw);
        iwork = idl__malloc(sizeof(lapack_int) * (size_t)(iq > 1 ? iq : 1));
        if (!work || !iwork) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        info =
            LAPACKE_dgelsd_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)S, 1, A, (lapack_int)m,
                                B, (lapack_int)ldb, sv, rcond, &rank, work, lw, iwork);
        if (info)
            st = idl__error(IDL_ERR_INTERNAL, "least squares: the SVD did not converge (%d)",
                            (int)info);
    }
    idl__free(sv);
    idl__free(work);
    idl__free(iwork);
    return st;
}

bool idl__weighted_means(const float *Z, int64_t n, int64_t S, const double *y, const double *w,
                         double *zm, double *ym) {
    double sw = 0;
    *ym = 0;
    memset(zm, 0, sizeof(double) * (size_t)S);
    for (int64_t s = 0; s < n; s++) {
        sw += w[s], *ym += w[s] * y[s];
        for (int64_t j = 0; j < S; j++)
            zm[j] += w[s] * Z[s * S + j];
    }
    if (!(sw > 0)) return false;
    *ym /= sw;
    for (int64_t j = 0; j < S; j++)
        zm[j] /= sw;
    return true;
}

double idl__weighted_r2(const float *Z, int64_t n, int64_t S, const double *y, const double *w,
                        double ym, const double *beta, double b0) {
    double res = 0, tot = 0;
    for (int64_t s = 0; s < n; s++) {
        double f = b0;
        for (int64_t j = 0; j < S; j++)
            f += Z[s * S + j] * beta[j];
        res += w[s] * (y[s] - f) * (y[s] - f);
        tot += w[s] * (y[s] - ym) * (y[s] - ym);
    }
    return tot > 0 ? 1 - res / tot : res > 0 ? 0.0 : 1.0;
}

/* The shared fit: with prior == NULL, weighted ridge with intercept (beta in the data's units);
 * with a prior (G-LIME), the ridge in standardised space shrunk toward it. */
static idl_status fit(const float *Z, int64_t n, int64_t S, const double *y, const double *w,
                      double alpha, const double *prior, double *beta, double *intercept,
                      double *r2) {
    if (n < 1 || S < 1) return idl__error(IDL_ERR_INVALID_ARG, "ridge: empty design");
    int64_t m = n + (alpha > 0 ? S : 0);
    double *zm = idl__calloc((size_t)S, sizeof(double));
    double *sc = idl__malloc(sizeof(double) * (size_t)S);
    double *A = idl__calloc((size_t)(m * S), sizeof(double));
    double *B = idl__calloc((size_t)IDL_MAX(m, S), sizeof(double));
    double ym = 0, ys = 1;
    idl_status st = zm && sc && A && B ? IDL_OK : idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st && !idl__weighted_means(Z, n, S, y, w, zm, &ym))
        st = idl__error(IDL_ERR_INVALID_ARG, "ridge: the sample weights sum to 0");
    for (int64_t j = 0; !st && j < S; j++) { /* column scales: 1, or G-LIME's L2 norms */
        double q = 0;
        for (int64_t s = 0; prior && s < n; s++)
            q += (Z[s * S + j] - zm[j]) * (Z[s * S + j] - zm[j]);
        sc[j] = prior && q > 0 ? sqrt(q) : 1;
    }
    if (!st && prior) {
        double q = 0;
        for (int64_t s = 0; s < n; s++)
            q += (y[s] - ym) * (y[s] - ym);
        ys = q > 0 ? sqrt(q) : 1;
    }
    for (int64_t s = 0; !st && s < n; s++) { /* column-major A[row + col * m] */
        double r = sqrt(w[s]);
        for (int64_t j = 0; j < S; j++)
            A[s + j * m] = r * (Z[s * S + j] - zm[j]) / sc[j];
        B[s] = r * (y[s] - ym) / ys;
    }
    for (int64_t j = 0; !st && alpha > 0 && j < S; j++) {
        A[n + j + j * m] = sqrt(alpha);
        B[n + j] = prior ? sqrt(alpha) * prior[j] : 0;
    }
    if (!st) st = lsq_solve(A, m, S, B);
    if (!st) {
        /* the surrogate in the data's units: y ~ b0 + sum_j (ys / sc_j) beta_j z_j */
        double b0 = ym;
        for (int64_t j = 0; j < S; j++) {
            beta[j] = B[j];
            sc[j] = ys / sc[j] * B[j];
            b0 -= zm[j] * sc[j];
        }
        *intercept = b0;
        *r2 = idl__weighted_r2(Z, n, S, y, w, ym, sc, b0);
    }
    idl__free(zm);
    idl__free(sc);
    idl__free(A);
    idl__free(B);
    return st;
}

idl_status idl__weighted_ridge(const float *Z, int64_t n, int64_t S, const double *y,
                               const double *w, double alpha, double *beta, double *intercept,
                               double *r2) {
    return fit(Z, n, S, y, w, alpha, NULL, beta, intercept, r2);
}

/* ---- the method ---- */

typedef struct lime {
    const idl__xrun *r;
    const idl_lime_params *p;
    const idl_glime_params *g; /* G-LIME, else NULL */
    double *prior;             /* G-LIME: (N, S_max) prior coefficients, L1-normalised */
    float *act;                /* G-LIME with concepts: the concept layer (N, K, h, w) */
    int64_t K, h, w;
    int64_t C, H, W, S_max, n_samples;
    int32_t *seg; /* (N, H, W) */
    int64_t *S;   /* (N) */
    float *fill;  /* (N, S_max, C) mean of each superpixel, per channel */
    float *Z;     /* (n_samples, S_max) */
    int64_t nk;   /* classes per sample (top_k) */
    int64_t *cls; /* (N, K) the classes explained */
    double *y;    /* (N, K, n_samples) */
} lime;

static int64_t lime_sample(void *u, int64_t row) {
    return row / ((lime *)u)->n_samples;
}

static void lime_point(void *u, int64_t row, float *dst) {
    const lime *o = u;
    int64_t i = row / o->n_samples, s = row % o->n_samples, HW = o->H * o->W;
    const float *x = o->r->x + i * o->r->numel, *z = o->Z + s * o->S_max;
    const int32_t *seg = o->seg + i * HW;
    const float *fill = o->fill + i * o->S_max * o->C;
    for (int64_t c = 0; c < o->C; c++)
        for (int64_t q = 0; q < HW; q++) {
            int32_t l = seg[q];
            dst[c * HW + q] = z[l] != 0 ? x[c * HW + q] : fill[l * o->C + c];
        }
}

static void lime_take(void *u, int64_t row, const float *grad, float obj) {
    (void)grad, (void)u, (void)row, (void)obj; /* lime_scores reads the whole row */
}

static void lime_scores(void *u, int64_t row, const float *y, int64_t nc) {
    lime *o = u;
    int64_t i = row / o->n_samples, s = row % o->n_samples;
    for (int64_t k = 0; k < o->nk; k++)
        o->y[(i * o->nk + k) * o->n_samples + s] =
            idl__objective_value(y, nc, o->cls[i * o->nk + k], o->r->kind);
}

static bool int_like(idl_dtype d) {
    return d == IDL_DT_I32 || d == IDL_DT_I64 || d == IDL_DT_U8 || d == IDL_DT_I8;
}

/* The segments of every sample: replayed or computed from the image. */
static idl_status lime_segments(lime *o) {
    const idl__xrun *r = o->r;
    const idl_lime_params *p = o->p;
    int64_t N = r->N, H = o->H, W = o->W, HW = H * W;
    char b1[128], b2[128];
    if (p->segments) {
        const idl_tensor *t = p->segments;
        bool one = t->ndim == 2 && t->shape[0] == H && t->shape[1] == W;
        bool all = t->ndim == 3 && t->shape[0] == N && t->shape[1] == H && t->shape[2] == W;
        if (!int_like(t->dtype) || !(one || all))
            return idl__error(IDL_ERR_SHAPE,
                              "lime: segments must be integer labels of shape (%lld, %lld) or "
                              "(%lld, %lld, %lld); the file has %s %s",
                              (long long)H, (long long)W, (long long)N, (long long)H, (long long)W,
                              idl_dtype_name(t->dtype),
                              idl__shape_str(t->ndim, t->shape, b1, sizeof b1));
        for (int64_t i = 0; i < N; i++) {
            int64_t mx = -1;
            for (int64_t q = 0; q < HW; q++) {
                double v = idl__get_f64(t, one ? q : i * HW + q);
                if (v < 0 || v >= IDL__MAX_FEATURES)
                    return idl__error(IDL_ERR_INVALID_ARG,
                                      "lime: segment label %.0f at pixel %lld outside 0..%d", v,
                                      (long long)q, IDL__MAX_FEATURES - 1);
                o->seg[i * HW + q] = (int32_t)v;
                mx = IDL_MAX(mx, (int64_t)v);
            }
            o->S[i] = mx + 1;
        }
        return IDL_OK;
    }
    float *img = idl__malloc(sizeof(float) * (size_t)(HW * o->C));
    if (!img) return idl__error(IDL_ERR_NOMEM, "out of memory");
    idl_status st = IDL_OK;
    const idl_tensor *im = r->rq->image;
    if (im && !((im->ndim == 4 && im->shape[0] == N && im->shape[1] == H && im->shape[2] == W &&
                 im->shape[3] == o->C) ||
                (N == 1 && im->ndim == 3 && im->shape[0] == H && im->shape[1] == W &&
                 im->shape[2] == o->C)))
        st = idl__error(IDL_ERR_SHAPE, "lime: image %s does not match the input %s (N, H, W, C)",
                        idl__shape_str(im->ndim, im->shape, b1, sizeof b1),
                        idl__shape_str(r->wrt_ndim, r->wrt_shape, b2, sizeof b2));
    if (!st && im && im->dtype != IDL_DT_F32)
        st = idl__error(IDL_ERR_INVALID_ARG, "lime: image must be float32 in [0, 1]");
    idl_segment_params sp = p->seg ? *p->seg : idl_segment_params_default(IDL_SEG_QUICKSHIFT);
    if (o->C == 1) sp.convert2lab = 0;
    for (int64_t i = 0; !st && i < N; i++) {
        const float *x = r->x + i * r->numel;
        if (im) {
            memcpy(img, (const float *)im->data + i * HW * o->C,
                   sizeof(float) * (size_t)(HW * o->C));
        } else { /* the input rescaled to [0, 1] as a whole */
            float lo = x[0], hi = x[0];
            for (int64_t j = 1; j < r->numel; j++)
                lo = x[j] < lo ? x[j] : lo, hi = x[j] > hi ? x[j] : hi;
            float sc = hi > lo ? 1.0f / (hi - lo) : 0.0f;
            for (int64_t c = 0; c < o->C; c++)
                for (int64_t q = 0; q < HW; q++)
                    img[q * o->C + c] = (x[c * HW + q] - lo) * sc;
        }
        int32_t n = 0;
        st = idl_segment(img, H, W, (int)o->C, &sp, o->seg + i * HW, &n);
        if (st) st = idl__error_prefix(st, "lime: segmentation of sample %lld: ", (long long)i);
        o->S[i] = n;
        if (!st && n < 2)
            st = idl__error(IDL_ERR_INVALID_ARG,
                            "lime: the %s segmentation of sample %lld gave %d superpixel(s); "
                            "lower kernel_size / max_dist, or use segmentation=slic or grid",
                            sp.method == IDL_SEG_QUICKSHIFT ? "quickshift"
                            : sp.method == IDL_SEG_SLIC     ? "slic"
                                                            : "grid",
                            (long long)i, (int)n);
    }
    idl__free(img);
    return st;
}

static idl_status lime_masks(lime *o) {
    const idl_lime_params *p = o->p;
    const idl_tensor *t = p->masks;
    if (t) {
        char b[128];
        if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < o->S_max)
            return idl__error(IDL_ERR_SHAPE,
                              "lime: masks must be (num_samples, S) with S >= %lld superpixels; "
                              "the file is %s",
                              (long long)o->S_max, idl__shape_str(t->ndim, t->shape, b, sizeof b));
        if (t->dtype != IDL_DT_F32 && t->dtype != IDL_DT_F64 && !int_like(t->dtype) &&
            t->dtype != IDL_DT_BOOL)
            return idl__error(IDL_ERR_INVALID_ARG, "lime: masks of type %s; expected numbers",
                              idl_dtype_name(t->dtype));
        o->n_samples = t->shape[0];
    } else {
        o->n_samples = p->num_samples;
    }
    o->Z = idl__malloc(sizeof(float) * (size_t)(o->n_samples * o->S_max));
    if (!o->Z) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t s = 0; s < o->n_samples; s++)
        for (int64_t j = 0; j < o->S_max; j++) {
            double v = 1;
            if (t) {
                v = idl__get_f64(t, s * t->shape[1] + j);
                if (v != 0 && v != 1)
                    return idl__error(IDL_ERR_INVALID_ARG,
                                      "lime: masks hold 0 or 1; row %lld column %lld is %g",
                                      (long long)s, (long long)j, v);
            } else if (s > 0) {
                v = (double)(idl__rng_u64(o->r->rq->seed, IDL__STREAM(IDL__STREAM_MASK, s),
                                          (uint64_t)j) >>
                             63);
            }
            o->Z[s * o->S_max + j] = (float)v;
        }
    return IDL_OK;
}

/* G-LIME's prior per superpixel: given per superpixel, or the global weight of (target, concept
 * of the superpixel); then L1-normalised (InterpretDL's _fitting_data_with_prior). */
static idl_status glime_prior(lime *o) {
    const idl__xrun *r = o->r;
    const idl_glime_params *g = o->g;
    int64_t N = r->N, S_max = o->S_max, HW = o->H * o->W;
    char b[128];
    o->prior = idl__calloc((size_t)(N * S_max), sizeof(double));
    if (!o->prior) return idl__error(IDL_ERR_NOMEM, "out of memory");
    const idl_tensor *P = g->prior;
    if (!P) return IDL_OK; /* no prior: ridge in standardised space */
    if (P->dtype != IDL_DT_F32)
        return idl__error(IDL_ERR_INVALID_ARG, "glime: prior must be float32");
    const float *pv = P->data;
    if (!g->concepts) { /* one value per superpixel: (S) shared, or (N, S_max) */
        int64_t n = idl_tensor_numel(P);
        if (n != S_max && n != N * S_max)
            return idl__error(IDL_ERR_SHAPE,
                              "glime: prior %s has neither one value per superpixel (%lld) nor "
                              "(N, %lld); give concepts= for a (classes, concepts) prior",
                              idl__shape_str(P->ndim, P->shape, b, sizeof b), (long long)S_max,
                              (long long)S_max);
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < o->S[i]; j++)
                o->prior[i * S_max + j] = pv[(n == S_max ? 0 : i * S_max) + j];
    } else {
        const idl_tensor *C = g->concepts;
        int64_t nc = C->ndim == 2 ? C->shape[0] : 0, D = C->ndim == 2 ? C->shape[1] : 0;
        if (C->dtype != IDL_DT_F32 || nc < 1 || D != 2 * o->K)
            return idl__error(IDL_ERR_SHAPE,
                              "glime: concepts %s must be float32 (concepts, %lld): 2 x the %lld "
                              "channels of the concept layer",
                              idl__shape_str(C->ndim, C->shape, b, sizeof b), (long long)(2 * o->K),
                              (long long)o->K);
        if (P->ndim != 2 || P->shape[0] != r->n_classes || P->shape[1] != nc)
            return idl__error(IDL_ERR_SHAPE,
                              "glime: prior %s must be (classes %lld, concepts %lld)",
                              idl__shape_str(P->ndim, P->shape, b, sizeof b),
                              (long long)r->n_classes, (long long)nc);
        float *F = idl__malloc(sizeof(float) * (size_t)(S_max * D));
        if (!F) return idl__error(IDL_ERR_NOMEM, "out of memory");
        idl_status st = IDL_OK;
        for (int64_t i = 0; !st && i < N; i++) {
            st = idl__superpixel_features(o->act + i * o->K * o->h * o->w, o->K, o->h, o->w,
                                          o->seg + i * HW, o->H, o->W, o->S[i], F);
            for (int64_t j = 0; !st && j < o->S[i]; j++)
                o->prior[i * S_max + j] =
                    pv[r->targets[i] * nc + idl__nearest_centre(F + j * D, C->data, nc, D)];
        }
        idl__free(F);
        if (st) return st;
    }
    for (int64_t i = 0; i < N; i++) {
        double l1 = 0;
        for (int64_t j = 0; j < o->S[i]; j++)
            l1 += fabs(o->prior[i * S_max + j]);
        for (int64_t j = 0; l1 > 0 && j < o->S[i]; j++)
            o->prior[i * S_max + j] /= l1;
    }
    return IDL_OK;
}

double idl__lime_weight(const float *z, int64_t S, double kernel_width) {
    double k = 0;
    for (int64_t j = 0; j < S; j++)
        k += z[j];
    double d = k > 0 ? 1 - sqrt(k / (double)S) : 1;
    return sqrt(exp(-d * d / (kernel_width * kernel_width)));
}

static idl_status lime_fit(lime *o, idl_explanation *e) {
    const idl__xrun *r = o->r;
    int64_t ns = o->n_samples, S_max = o->S_max, HW = o->H * o->W;
    float *Z = idl__malloc(sizeof(float) * (size_t)(ns * S_max));
    double *w = idl__malloc(sizeof(double) * (size_t)ns);
    double *beta = idl__malloc(sizeof(double) * (size_t)S_max);
    idl_status st = Z && w && beta ? IDL_OK : idl__error(IDL_ERR_NOMEM, "out of memory");
    float *feat = st ? NULL : e->features->data, *a = st ? NULL : e->attribution->data;
    double kw = o->p->kernel_width;
    for (int64_t i = 0; !st && i < r->N; i++) {
        int64_t S = o->S[i];
        for (int64_t s = 0; s < ns; s++) {
            for (int64_t j = 0; j < S; j++)
                Z[s * S + j] = o->Z[s * S_max + j];
            w[s] = idl__lime_weight(Z + s * S, S, kw);
        }
        e->n_features[i] = S;
        for (int64_t c = 0; !st && c < o->nk; c++) { /* row i * K + c: sample i, its c-th class */
            int64_t ic = i * o->nk + c;
            st = fit(Z, ns, S, o->y + ic * ns, w, o->g ? o->g->prior_reg_force : o->p->ridge_alpha,
                     o->g ? o->prior + i * S_max : NULL, beta, &e->intercept[ic], &e->r2[ic]);
            for (int64_t j = 0; !st && j < S; j++)
                feat[ic * S_max + j] = (float)beta[j];
            for (int64_t q = 0; !st && q < HW; q++)
                a[ic * HW + q] = (float)beta[o->seg[i * HW + q]];
        }
    }
    idl__free(Z);
    idl__free(w);
    idl__free(beta);
    return st;
}

static idl_status lime_run(idl_session *s, const idl_explain_request *rq, const idl_lime_params *p,
                           const idl_glime_params *g, idl_explanation *out, double **y_keep) {
    if (g && !(g->prior_reg_force >= 0 && isfinite(g->prior_reg_force)))
        return idl__error(IDL_ERR_INVALID_ARG, "glime: prior_reg_force must be >= 0");
    if (p->num_samples < 1 && !p->masks)
        return idl__error(IDL_ERR_INVALID_ARG, "lime: num_samples must be >= 1");
    if (!(p->kernel_width > 0) || !(p->ridge_alpha >= 0) || !isfinite(p->ridge_alpha))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "lime: kernel_width must be > 0 and ridge_alpha >= 0");
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, true);
    if (st) return st;
    lime o;
    memset(&o, 0, sizeof o);
    o.r = &r;
    o.p = p;
    o.g = g;
    o.nk = p->top_k > 1 ? p->top_k : 1;
    if (o.nk > 1 && (rq->targets || g))
        st = idl__error(IDL_ERR_INVALID_ARG,
                        "%s: top_k explains the k most probable classes; give no targets%s",
                        g ? "glime" : "lime", g ? " (and use lime: glime takes one class)" : "");
    if (!st && o.nk > r.n_classes)
        st = idl__error(IDL_ERR_INVALID_ARG, "lime: top_k %lld exceeds the %lld classes",
                        (long long)o.nk, (long long)r.n_classes);
    o.cls = st ? NULL : idl__malloc(sizeof(int64_t) * (size_t)(r.N * o.nk));
    if (!st && !o.cls) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st) { /* the target, or the K largest scores of the clean pass in descending order */
        const float *yv = idl_session_output(s, r.output)->data;
        for (int64_t i = 0; i < r.N; i++) {
            o.cls[i * o.nk] = r.targets[i];
            for (int64_t c = 1; c < o.nk; c++) {
                int64_t best = -1;
                for (int64_t j = 0; j < r.n_classes; j++) {
                    bool taken = false;
                    for (int64_t t = 0; t < c; t++)
                        taken = taken || o.cls[i * o.nk + t] == j;
                    if (!taken &&
                        (best < 0 || yv[i * r.n_classes + j] > yv[i * r.n_classes + best]))
                        best = j;
                }
                o.cls[i * o.nk + c] = best;
            }
        }
    }
    char layer[256] = "";
    if (!st && g && g->concepts)
        st = idl__layer_activation(&r, g->concept_layer, layer, &o.act, &o.K, &o.h, &o.w);
    if (r.wrt_ndim != 4 || r.wrt_input < 0)
        st = idl__error(IDL_ERR_INVALID_ARG,
                        "lime explains an image input (N, C, H, W); '%s' is not one", r.wrt);
    if (!st) {
        o.C = r.wrt_shape[1], o.H = r.wrt_shape[2], o.W = r.wrt_shape[3];
        o.seg = idl__malloc(sizeof(int32_t) * (size_t)(r.N * o.H * o.W));
        o.S = idl__calloc((size_t)r.N, sizeof(int64_t));
        if (!o.seg || !o.S) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st) st = lime_segments(&o);
    for (int64_t i = 0; !st && i < r.N; i++)
        o.S_max = IDL_MAX(o.S_max, o.S[i]);
    if (!st) st = lime_masks(&o);
    if (!st && g) st = glime_prior(&o);
    if (!st) { /* fill values */
        int64_t HW = o.H * o.W;
        o.fill = idl__calloc((size_t)(r.N * o.S_max * o.C), sizeof(float));
        double *sum = idl__calloc((size_t)(o.S_max * o.C), sizeof(double));
        int64_t *cnt = idl__calloc((size_t)o.S_max, sizeof(int64_t));
        if (!o.fill || !sum || !cnt) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; !st && i < r.N; i++) {
            const float *x = r.x + i * r.numel;
            const int32_t *seg = o.seg + i * HW;
            float *f = o.fill + i * o.S_max * o.C;
            if (!p->hide_mean) {
                for (int64_t j = 0; j < o.S_max * o.C; j++)
                    f[j] = p->hide_value;
                continue;
            }
            memset(sum, 0, sizeof(double) * (size_t)(o.S_max * o.C));
            memset(cnt, 0, sizeof(int64_t) * (size_t)o.S_max);
            for (int64_t q = 0; q < HW; q++)
                cnt[seg[q]]++;
            for (int64_t c = 0; c < o.C; c++)
                for (int64_t q = 0; q < HW; q++)
                    sum[seg[q] * o.C + c] += x[c * HW + q];
            for (int64_t j = 0; j < o.S_max; j++)
                for (int64_t c = 0; c < o.C; c++)
                    f[j * o.C + c] = cnt[j] ? (float)(sum[j * o.C + c] / (double)cnt[j]) : 0.0f;
        }
        idl__free(sum);
        idl__free(cnt);
    }
    if (!st) {
        o.y = idl__malloc(sizeof(double) * (size_t)(r.N * o.nk * o.n_samples));
        if (!o.y) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        idl__xrows rows = { r.N * o.n_samples, &o,   lime_sample, lime_point,
                            lime_take,         NULL, lime_scores };
        r.total = r.N + rows.n;
        st = idl__x_eval(&r, &rows, false);
    }
    int64_t shape[3] = { r.N, o.H, o.W }, kshape[4] = { r.N, o.nk, o.H, o.W };
    if (!st) st = o.nk > 1 ? idl__x_result(&r, out, 4, kshape) : idl__x_result(&r, out, 3, shape);
    if (!st && o.nk > 1) { /* (n, k) classes */
        idl__free(out->targets);
        out->targets = idl__malloc(sizeof(int64_t) * (size_t)(r.N * o.nk));
        if (!out->targets) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        if (!st) memcpy(out->targets, o.cls, sizeof(int64_t) * (size_t)(r.N * o.nk));
    }
    if (!st) {
        int64_t fs[2] = { r.N * o.nk, o.S_max }, ms[2] = { o.n_samples, o.S_max };
        out->k = o.nk;
        st = idl_tensor_new(IDL_DT_F32, 2, fs, &out->features);
        if (!st) st = idl_tensor_new(IDL_DT_I32, 3, shape, &out->segments);
        if (!st) st = idl_tensor_new(IDL_DT_F32, 2, ms, &out->masks);
        out->n_features = idl__calloc((size_t)r.N, sizeof(int64_t));
        out->intercept = idl__calloc((size_t)(r.N * o.nk), sizeof(double));
        out->r2 = idl__calloc((size_t)(r.N * o.nk), sizeof(double));
        if (!st && (!out->n_features || !out->intercept || !out->r2))
            st = idl__error(IDL_ERR_NOMEM, "out of memory");
        if (!st) {
            memcpy(out->segments->data, o.seg, sizeof(int32_t) * (size_t)(r.N * o.H * o.W));
            memcpy(out->masks->data, o.Z, sizeof(float) * (size_t)(o.n_samples * o.S_max));
            memset(out->features->data, 0, sizeof(float) * (size_t)(r.N * o.nk * o.S_max));
            st = lime_fit(&o, out);
        }
        if (!st && g && g->concepts) strcpy(out->layer, layer);
    }
    if (st) idl_explanation_clear(out);
    if (!st && y_keep) *y_keep = o.y, o.y = NULL;
    idl__free(o.seg);
    idl__free(o.S);
    idl__free(o.fill);
    idl__free(o.Z);
    idl__free(o.y);
    idl__free(o.cls);
    idl__free(o.prior);
    idl__free(o.act);
    idl__x_end(&r);
    return st;
}

idl_status idl_lime(idl_session *s, const idl_explain_request *rq, const idl_lime_params *p,
                    idl_explanation *out) {
    idl_lime_params d = idl_lime_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    return lime_run(s, rq, p ? p : &d, NULL, out, NULL);
}

idl_status idl__lime_samples(idl_session *s, const idl_explain_request *rq,
                             const idl_lime_params *p, idl_explanation *out, double **y) {
    memset(out, 0, sizeof *out);
    *y = NULL;
    return lime_run(s, rq, p, NULL, out, y);
}

idl_glime_params idl_glime_params_default(void) {
    idl_glime_params g;
    memset(&g, 0, sizeof g);
    g.lime = idl_lime_params_default();
    g.prior_reg_force = 1.0f;
    return g;
}

idl_status idl_glime(idl_session *s, const idl_explain_request *rq, const idl_glime_params *p,
                     idl_explanation *out) {
    idl_glime_params d = idl_glime_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    p = p ? p : &d;
    return lime_run(s, rq, &p->lime, p, out, NULL);
}

idl_status idl_lime_top_mask(const idl_explanation *e, int64_t i, float ratio, idl_tensor **mask) {
    if (mask) *mask = NULL;
    if (!e || !mask || !e->features || !e->segments || !e->n_features || i < 0 || i >= e->n ||
        !(ratio >= 0 && ratio <= 1))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "lime mask: needs a lime explanation, a sample in range and a ratio in "
                          "[0, 1]");
    int64_t S = e->n_features[i], Smax = e->features->shape[1], H = e->segments->shape[1],
            W = e->segments->shape[2];
    const float *w = (const float *)e->features->data + i * (e->k > 1 ? e->k : 1) * Smax;
    const int32_t *seg = (const int32_t *)e->segments->data + i * H * W;
    int64_t keep = (int64_t)((double)ratio * (double)S);
    unsigned char *on = idl__calloc((size_t)S + 1, 1);
    int64_t shape[2] = { H, W };
    idl_status st = on ? idl_tensor_new(IDL_DT_F32, 2, shape, mask)
                       : idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; !st && k < keep; k++) { /* the k-th largest positive coefficient */
        int64_t best = -1;
        for (int64_t j = 0; j < S; j++)
            if (!on[j] && w[j] > 0 && (best < 0 || w[j] > w[best])) best = j;
        if (best < 0) break;
        on[best] = 1;
    }
    if (!st) {
        float *m = (*mask)->data;
        for (int64_t q = 0; q < H * W; q++)
            m[q] = on[seg[q]] ? 1.0f : 0.0f;
    }
    idl__free(on);
    return st;
}
