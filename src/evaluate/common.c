/* common.c — what the metrics share (evaluate_internal.h) and the result type. */
#include "evaluate/evaluate_internal.h"

#include "tensor/tensor_internal.h"

#include <math.h>
#include <string.h>

void idl_evaluation_clear(idl_evaluation *ev) {
    if (!ev) return;
    idl__free(ev->targets);
    idl__free(ev->score);
    idl__free(ev->values);
    idl_tensor_free(ev->curve);
    idl_tensor_free(ev->curve2);
    memset(ev, 0, sizeof *ev);
}

double idl_evaluation_score(const idl_evaluation *ev, const char *name, int64_t b) {
    if (!ev || !name || !ev->values || b < 0 || b >= ev->n) return NAN;
    for (int k = 0; k < ev->n_scores; k++)
        if (!strcmp(ev->names[k], name)) return ev->values[b * ev->n_scores + k];
    return NAN;
}

idl_fill idl_fill_default(void) {
    idl_fill f;
    memset(&f, 0, sizeof f);
    f.kind = IDL_FILL_BLACK;
    f.blur_sigma = 10.0f;
    return f;
}

idl_status idl__ev_result(idl_evaluation *out, int64_t n, const int64_t *targets,
                          const float *score, int n_scores, const char *const *names) {
    if (n_scores > IDL_EVAL_MAX_SCORES) return idl__error(IDL_ERR_INTERNAL, "too many scores");
    out->n = n;
    out->n_scores = n_scores;
    for (int k = 0; k < n_scores; k++)
        out->names[k] = names[k];
    out->values = idl__malloc(sizeof(double) * (size_t)(n * n_scores + 1));
    if (targets) out->targets = idl__malloc(sizeof(int64_t) * (size_t)n + 1);
    if (score) out->score = idl__malloc(sizeof(float) * (size_t)n + 1);
    if (!out->values || (targets && !out->targets) || (score && !out->score))
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < n * n_scores; j++)
        out->values[j] = NAN;
    if (targets) memcpy(out->targets, targets, sizeof(int64_t) * (size_t)n);
    if (score) memcpy(out->score, score, sizeof(float) * (size_t)n);
    return IDL_OK;
}

double idl__ev_trapz(const double *y, int64_t K) {
    if (K <= 0) return y[0];
    double a = 0;
    for (int64_t j = 1; j <= K; j++)
        a += 0.5 * (y[j - 1] + y[j]);
    return a / (double)K;
}

/* Whether shape a[0..n) equals b[0..n). */
static bool same(const int64_t *a, const int64_t *b, int n) {
    for (int k = 0; k < n; k++)
        if (a[k] != b[k]) return false;
    return true;
}

idl_status idl__ev_values(const idl__xrun *r, const idl_tensor *E, int reduce, const char *metric,
                          double **vals, int64_t *F) {
    *vals = NULL;
    *F = 0;
    char a[128], b[128];
    if (!E) return idl__error(IDL_ERR_INVALID_ARG, "%s: no explanation given", metric);
    const char *es = idl__shape_str(E->ndim, E->shape, a, sizeof a);
    const char *xs = idl__shape_str(r->wrt_ndim, r->wrt_shape, b, sizeof b);
    if (E->dtype != IDL_DT_F32 && E->dtype != IDL_DT_F64)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: the explanation is %s; expected float32 or "
                          "float64",
                          metric, idl_dtype_name(E->dtype));
    int64_t N = r->N, n = r->numel;
    bool image = r->wrt_ndim >= 3;
    int64_t H = image ? r->wrt_shape[r->wrt_ndim - 2] : 1;
    int64_t W = image ? r->wrt_shape[r->wrt_ndim - 1] : n;
    int64_t C = n / (H * W);
    /* the layouts taken: the input's shape (per element; for one sample also without the batch
       axis); per pixel (N, H, W), (N, 1, H, W) or, for one sample, (H, W); or a 2-D map of another
       size in one of those layouts (resized) */
    bool elements = (E->ndim == r->wrt_ndim && same(E->shape, r->wrt_shape, E->ndim)) ||
                    (N == 1 && E->ndim == r->wrt_ndim - 1 && /* one sample's shape */
                     same(E->shape, r->wrt_shape + 1, E->ndim));
    int64_t h = 0, w = 0;
    if (!elements && image) {
        bool two_d = (E->ndim == 3 && E->shape[0] == N) ||
                     (E->ndim == 4 && E->shape[0] == N && E->shape[1] == 1) ||
                     (E->ndim == 2 && N == 1);
        if (two_d) h = E->shape[E->ndim - 2], w = E->shape[E->ndim - 1];
    }
    if (!elements && (h < 1 || w < 1))
        return idl__error(IDL_ERR_SHAPE,
                          "%s: the explanation %s fits neither the input %s (one value per "
                          "element) nor a map per sample of its pixels, (N, H, W) or (N, 1, H, W) "
                          "(another H x W is resized)",
                          metric, es, xs);
    /* reduce: 1 sum_c |E| of a per-element explanation; 2 sum_c E; 3 InterpretDL's (sum_c |E|
       when there are several channels: it squeezes a one-channel map and keeps its sign) */
    bool pool = elements && image && (reduce == 1 || reduce == 2 || (reduce == 3 && C > 1));
    bool resize = !elements && (h != H || w != W);
    int64_t Fv = elements && !pool ? n : H * W;
    double *v = idl__malloc(sizeof(double) * (size_t)(N * Fv));
    float *src = resize ? idl__malloc(sizeof(float) * (size_t)(h * w)) : NULL;
    float *dst = resize ? idl__malloc(sizeof(float) * (size_t)(H * W)) : NULL;
    idl_status st =
        v && (!resize || (src && dst)) ? IDL_OK : idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; !st && j < idl_tensor_numel(E); j++)
        if (!isfinite(idl__get_f64(E, j)))
            st = idl__error(IDL_ERR_INVALID_ARG,
                            "%s: the explanation holds a non-finite value (element %lld)", metric,
                            (long long)j);
    for (int64_t i = 0; !st && i < N; i++) {
        if (resize) { /* a 2-D map of another size */
            for (int64_t q = 0; q < h * w; q++)
                src[q] = (float)idl__get_f64(E, i * h * w + q);
            st = idl__resize_map(src, (int)w, (int)h, dst, (int)W, (int)H, metric);
            for (int64_t q = 0; !st && q < H * W; q++)
                v[i * Fv + q] = dst[q];
        } else if (pool) { /* element-wise reduced over channels */
            for (int64_t q = 0; q < H * W; q++) {
                double acc = 0;
                for (int64_t c = 0; c < C; c++) {
                    double e = idl__get_f64(E, i * n + c * H * W + q);
                    acc += reduce == 2 ? e : fabs(e);
                }
                v[i * Fv + q] = acc;
            }
        } else {
            for (int64_t q = 0; q < Fv; q++)
                v[i * Fv + q] = idl__get_f64(E, i * Fv + q);
        }
    }
    idl__free(src);
    idl__free(dst);
    if (st) {
        idl__free(v);
        return st;
    }
    *vals = v;
    *F = Fv;
    return IDL_OK;
}

idl_status idl__ev_check_input(const idl__xrun *r, const char *metric) {
    for (int64_t j = 0; j < r->N * r->numel; j++)
        if (!isfinite(r->x[j]))
            return idl__error(IDL_ERR_INVALID_ARG,
                              "%s: the input '%s' holds a non-finite value (sample %lld)", metric,
                              r->wrt, (long long)(j / r->numel));
    return IDL_OK;
}

static idl_baseline as_baseline(const idl_fill *f) {
    idl_baseline b;
    memset(&b, 0, sizeof b);
    b.kind = f->kind == IDL_FILL_BLUR ? IDL_BASELINE_BLUR : IDL_BASELINE_TENSOR;
    b.blur_sigma = f->blur_sigma;
    b.tensor = f->tensor;
    return b;
}

idl_status idl__ev_fill_check(const idl__xrun *r, const idl_fill *f, const char *metric) {
    if (f->kind == IDL_FILL_VALUE && !isfinite(f->value))
        return idl__error(IDL_ERR_INVALID_ARG, "%s: the fill value is not finite", metric);
    if (f->kind == IDL_FILL_BLUR && (!(f->blur_sigma > 0) || r->wrt_ndim < 3))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: fill=blur needs blur_sigma > 0 and an image "
                          "input",
                          metric);
    if (f->kind == IDL_FILL_TENSOR) {
        char a[128];
        int64_t t = f->tensor ? idl_tensor_numel(f->tensor) : -1;
        if (!f->tensor || f->tensor->dtype != IDL_DT_F32 || (t != r->numel && t != r->numel * r->N))
            return idl__error(IDL_ERR_SHAPE,
                              "%s: the fill tensor must be float32 of one sample's "
                              "shape or the batch's; it is %s",
                              metric,
                              f->tensor
                                  ? idl__shape_str(f->tensor->ndim, f->tensor->shape, a, sizeof a)
                                  : "missing");
        for (int64_t j = 0; j < t; j++)
            if (!isfinite(((const float *)f->tensor->data)[j]))
                return idl__error(IDL_ERR_INVALID_ARG,
                                  "%s: the fill tensor holds a non-finite "
                                  "value",
                                  metric);
    }
    if (f->kind == IDL_FILL_CHANNELS) {
        int64_t C = r->wrt_ndim >= 3
                        ? r->numel / (r->wrt_shape[r->wrt_ndim - 2] * r->wrt_shape[r->wrt_ndim - 1])
                        : 0;
        if (f->n_channels < 1 || f->n_channels != C)
            return idl__error(IDL_ERR_SHAPE, "%s: %d fill values for an input of %lld channels",
                              metric, f->n_channels, (long long)C);
        for (int c = 0; c < f->n_channels; c++)
            if (!isfinite(f->channel[c]))
                return idl__error(IDL_ERR_INVALID_ARG, "%s: a fill value is not finite", metric);
    }
    if ((unsigned)f->kind > IDL_FILL_CHANNELS)
        return idl__error(IDL_ERR_INVALID_ARG, "%s: unknown fill kind %d", metric, (int)f->kind);
    return IDL_OK;
}

idl_status idl__ev_fill(const idl__xrun *r, const idl_fill *f, int64_t i, float *dst) {
    int64_t n = r->numel;
    const float *x = r->x + i * n;
    if (f->kind == IDL_FILL_BLUR || f->kind == IDL_FILL_TENSOR) {
        idl_baseline b = as_baseline(f);
        return idl__baseline_fill(r, &b, 0, i, dst);
    }
    if (f->kind == IDL_FILL_CHANNELS) {
        int64_t plane = n / f->n_channels;
        for (int64_t j = 0; j < n; j++)
            dst[j] = f->channel[j / plane];
        return IDL_OK;
    }
    double v = f->value;
    if (f->kind != IDL_FILL_VALUE) {
        double lo = x[0], hi = x[0], sum = 0;
        for (int64_t j = 0; j < n; j++)
            lo = x[j] < lo ? x[j] : lo, hi = x[j] > hi ? x[j] : hi, sum += x[j];
        v = f->kind == IDL_FILL_BLACK ? lo : f->kind == IDL_FILL_WHITE ? hi : sum / (double)n;
    }
    for (int64_t j = 0; j < n; j++)
        dst[j] = (float)v;
    return IDL_OK;
}
