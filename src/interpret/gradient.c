/* gradient.c — gradient methods: Saliency, Input x Gradient, Guided Backpropagation / DeconvNet,
 * SmoothGrad (mean, squared, VarGrad), Integrated Gradients, GradientSHAP; and the baselines they
 * share.
 *
 * Where we follow and where we depart:
 *  - Saliency: |dF/dx| per element by default (Captum's abs=True; Simonyan et al. take the max over
 *    channels, which a picture step does); abs=0 gives the signed gradient.
 *  - SmoothGrad: mean of the SIGNED gradients at x + N(0, sigma^2), sigma = noise * (max - min) of
 *    each sample (Smilkov et al.; InterpretDL's SmoothGrad CV). InterpretDL's NLP variant scales
 *    the noise by the mean of the embedding (ALGORITHMS.md 5.2, flagged there): we use the range,
 *    for text too. The noise of draw s at element j of a sample is the same for every sample of a
 *    batch (counter-based, keyed by (seed, s, j)), scaled by that sample's sigma.
 *  - Integrated Gradients: Captum's quadratures. riemann_trapezoid is Captum's: steps of 1/n with
 *    the two ends halved, so the weights sum to (n-1)/n; `trapezoid` is the exact trapezoid rule
 *    (1/(n-1)). linspace is InterpretDL's: alpha = linspace(0, 1, n) with weights 1/n. The
 *    completeness error sum(attribution) - (F(x) - F(baseline)) is returned per sample.
 *  - GradientSHAP: expected gradients between x + noise and baselines: per draw s,
 *    g(b + a (x~ - b)) * (x~ - b) with a ~ U(0,1), averaged (Lundberg & Lee; Captum). Noise 0 by
 *    default (Captum); InterpretDL uses noise 0.1.
 *  - Guided Backpropagation / DeconvNet: every Relu node of the graph gets the rule (Captum hooks
 *    nn.ReLU modules; a ReLU6 exported as Clip keeps its ordinary gradient in both). */
#include "interpret/interpret_internal.h"

#include <math.h>
#include <string.h>

/* ---------------- baselines ---------------- */

idl_status idl__baseline_parse(const char *v, idl_baseline *b, idl_tensor **owned) {
    static const char *const names[] = { "zero", "black", "uniform", "blur", "random" };
    for (int k = 0; k < 5; k++)
        if (!strcmp(v, names[k])) {
            b->kind = (idl_baseline_kind)k;
            return IDL_OK;
        }
    size_t n = strlen(v);
    if (n > 4 && !strcmp(v + n - 4, ".npy")) {
        idl_status st = idl_npy_load(v, owned);
        if (st) return idl__error_prefix(st, "baseline=%s: ", v);
        b->kind = IDL_BASELINE_TENSOR;
        b->tensor = *owned;
        return IDL_OK;
    }
    return idl__error(IDL_ERR_INVALID_ARG,
                      "baseline=%s: expected zero, black, uniform, blur, random or a .npy file", v);
}

idl_status idl__baseline_check(const idl__xrun *r, const idl_baseline *b, int *trials) {
    *trials = 1;
    switch (b->kind) {
    case IDL_BASELINE_ZERO:
    case IDL_BASELINE_UNIFORM:
        return IDL_OK;
    case IDL_BASELINE_BLACK:
        if (r->wrt_ndim != 4 || r->wrt_shape[1] > 4)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "baseline=black needs an image input (N, C<=4, H, W)");
        return IDL_OK;
    case IDL_BASELINE_BLUR:
        if (r->wrt_ndim < 3 || !(b->blur_sigma > 0))
            return idl__error(
                IDL_ERR_INVALID_ARG,
                "baseline=blur needs an input with two spatial axes and blur_sigma > 0");
        return IDL_OK;
    case IDL_BASELINE_RANDOM:
        if (b->trials < 1) return idl__error(IDL_ERR_INVALID_ARG, "trials must be >= 1");
        *trials = b->trials;
        return IDL_OK;
    case IDL_BASELINE_TENSOR: {
        const idl_tensor *t = b->tensor;
        char a[128], c[128];
        if (!t || t->dtype != IDL_DT_F32)
            return idl__error(IDL_ERR_INVALID_ARG, "the baseline tensor must be float32");
        int64_t n = idl_tensor_numel(t);
        if (n == r->numel || n == r->numel * r->N) return IDL_OK;
        if (t->ndim == r->wrt_ndim + 1 && n % (r->numel * r->N) == 0) {
            *trials = (int)(n / (r->numel * r->N));
            return IDL_OK;
        }
        return idl__error(IDL_ERR_SHAPE,
                          "baseline of shape %s fits neither the input %s, one sample of it, nor "
                          "(trials, input)",
                          idl__shape_str(t->ndim, t->shape, a, sizeof a),
                          idl__shape_str(r->wrt_ndim, r->wrt_shape, c, sizeof c));
    }
    }
    return idl__error(IDL_ERR_INVALID_ARG, "unknown baseline kind %d", (int)b->kind);
}

/* Separable Gaussian over the last two axes, weights renormalised at the borders. */
static idl_status blur(const float *x, int64_t planes, int64_t h, int64_t w, float sigma,
                       float *out) {
    int rad = (int)ceil(3.0 * sigma);
    rad = rad > 256 ? 256 : rad;
    float k[2 * 256 + 1];
    for (int i = -rad; i <= rad; i++)
        k[i + rad] = (float)exp(-0.5 * i * i / ((double)sigma * sigma));
    float *col = idl__malloc(sizeof(float) * (size_t)h);
    if (!col) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * h * w;
        float *op = out + p * h * w;
        for (int64_t y = 0; y < h; y++)
            for (int64_t c = 0; c < w; c++) {
                double s = 0, ws = 0;
                for (int i = -rad; i <= rad; i++)
                    if (c + i >= 0 && c + i < w)
                        s += k[i + rad] * xp[y * w + c + i], ws += k[i + rad];
                op[y * w + c] = (float)(s / ws);
            }
        for (int64_t c = 0; c < w; c++) {
            for (int64_t y = 0; y < h; y++)
                col[y] = op[y * w + c];
            for (int64_t y = 0; y < h; y++) {
                double s = 0, ws = 0;
                for (int i = -rad; i <= rad; i++)
                    if (y + i >= 0 && y + i < h) s += k[i + rad] * col[y + i], ws += k[i + rad];
                op[y * w + c] = (float)(s / ws);
            }
        }
    }
    idl__free(col);
    return IDL_OK;
}

idl_status idl__baseline_fill(const idl__xrun *r, const idl_baseline *b, int t, int64_t i,
                              float *dst) {
    int64_t n = r->numel;
    const float *x = r->x + i * n;
    switch (b->kind) {
    case IDL_BASELINE_ZERO:
        memset(dst, 0, sizeof(float) * (size_t)n);
        return IDL_OK;
    case IDL_BASELINE_BLACK: {
        int64_t C = r->wrt_shape[1], plane = n / C;
        for (int64_t c = 0; c < C; c++) {
            float v = b->std[c] != 0 ? (0.0f - b->mean[c]) / b->std[c] : 0.0f;
            for (int64_t j = 0; j < plane; j++)
                dst[c * plane + j] = v;
        }
        return IDL_OK;
    }
    case IDL_BASELINE_UNIFORM: {
        float lo = x[0], hi = x[0];
        for (int64_t j = 1; j < n; j++)
            lo = x[j] < lo ? x[j] : lo, hi = x[j] > hi ? x[j] : hi;
        idl__rng_uniform(r->rq->seed, IDL__STREAM(IDL__STREAM_BASELINE, t), 0, n, dst);
        for (int64_t j = 0; j < n; j++)
            dst[j] = lo + (hi - lo) * dst[j];
        return IDL_OK;
    }
    case IDL_BASELINE_BLUR: {
        int64_t h = r->wrt_shape[r->wrt_ndim - 2], w = r->wrt_shape[r->wrt_ndim - 1];
        return blur(x, n / (h * w), h, w, b->blur_sigma, dst);
    }
    case IDL_BASELINE_RANDOM:
        idl__rng_normal(r->rq->seed, IDL__STREAM(IDL__STREAM_BASELINE, t), 0, n, dst);
        return IDL_OK;
    case IDL_BASELINE_TENSOR: {
        const float *bv = b->tensor->data;
        int64_t tot = idl_tensor_numel(b->tensor);
        const float *src = tot == n ? bv : tot == n * r->N ? bv + i * n : bv + (t * r->N + i) * n;
        memcpy(dst, src, sizeof(float) * (size_t)n);
        return IDL_OK;
    }
    }
    return idl__error(IDL_ERR_INVALID_ARG, "unknown baseline kind %d", (int)b->kind);
}

/* ---------------- plain gradients ---------------- */

/* Gradient at the clean input, from the forward idl__x_begin ran. */
static idl_status clean_grad(idl__xrun *r, const float **g) {
    idl_objective o = idl__x_objective(r);
    const char *w = r->wrt;
    idl_status st = idl_session_backward(r->s, &o, &w, 1);
    if (st) return st;
    *g = idl_session_grad(r->s, w)->data;
    return IDL_OK;
}

typedef enum { PLAIN_SALIENCY, PLAIN_ABS, PLAIN_IXG } plain_kind;

static idl_status plain(idl_session *s, const idl_explain_request *rq, plain_kind k, int rule,
                        idl_explanation *out) {
    idl__xrun r;
    memset(out, 0, sizeof *out);
    idl_status st = idl__x_begin_grad(&r, s, rq);
    if (st) return st;
    const float *g = NULL;
    idl__session_set_relu_rule(s, rule);
    st = clean_grad(&r, &g);
    idl__session_set_relu_rule(s, IDL__RELU_DEFAULT);
    if (!st) st = idl__x_result(&r, out, r.wrt_ndim, r.wrt_shape);
    if (!st) {
        float *a = out->attribution->data;
        int64_t n = r.N * r.numel;
        for (int64_t j = 0; j < n; j++)
            a[j] = k == PLAIN_ABS ? fabsf(g[j]) : k == PLAIN_IXG ? g[j] * r.x[j] : g[j];
    }
    idl__x_end(&r);
    return st;
}

idl_saliency_params idl_saliency_params_default(void) {
    idl_saliency_params p = { 1 };
    return p;
}

idl_status idl_saliency(idl_session *s, const idl_explain_request *rq, const idl_saliency_params *p,
                        idl_explanation *out) {
    idl_saliency_params d = idl_saliency_params_default();
    p = p ? p : &d;
    return plain(s, rq, p->abs ? PLAIN_ABS : PLAIN_SALIENCY, IDL__RELU_DEFAULT, out);
}

idl_status idl_input_x_gradient(idl_session *s, const idl_explain_request *rq,
                                idl_explanation *out) {
    return plain(s, rq, PLAIN_IXG, IDL__RELU_DEFAULT, out);
}

idl_status idl_guided_backprop(idl_session *s, const idl_explain_request *rq,
                               const idl_guided_params *p, idl_explanation *out) {
    int rule = p && p->deconvnet ? IDL__RELU_DECONV : IDL__RELU_GUIDED;
    return plain(s, rq, PLAIN_SALIENCY, rule, out);
}

/* ---------------- SmoothGrad ---------------- */

idl_smooth_params idl_smooth_params_default(void) {
    idl_smooth_params p;
    memset(&p, 0, sizeof p);
    p.n_samples = 50;
    p.noise = 0.1f;
    p.kind = IDL_SMOOTH_MEAN;
    return p;
}

/* Noise of draw s for sample i (numel floats): replayed, or sigma_i * N(0, 1) keyed by (seed, s).
 */
void idl__draw_noise(const idl__xrun *r, const idl_tensor *replay, const float *sigma, int64_t s,
                     int64_t i, float *dst) {
    if (replay) {
        memcpy(dst, (const float *)replay->data + (s * r->N + i) * r->numel,
               sizeof(float) * (size_t)r->numel);
        return;
    }
    idl__rng_normal(r->rq->seed, IDL__STREAM(IDL__STREAM_NOISE, s), 0, r->numel, dst);
    for (int64_t j = 0; j < r->numel; j++)
        dst[j] *= sigma[i];
}

idl_status idl__check_replay(const idl__xrun *r, const idl_tensor *t, int64_t draws,
                             const char *what, int64_t per_row) {
    char a[128], b[128];
    int64_t want = draws * r->N * per_row;
    if (t->dtype != IDL_DT_F32 || idl_tensor_numel(t) != want || t->ndim < 1 ||
        t->shape[0] != draws) {
        int64_t shp[IDL_MAX_DIMS + 1];
        shp[0] = draws;
        int nd = 2;
        shp[1] = r->N;
        if (per_row > 1) {
            memcpy(shp + 1, r->wrt_shape, sizeof(int64_t) * (size_t)r->wrt_ndim);
            nd = r->wrt_ndim + 1;
        }
        return idl__error(IDL_ERR_SHAPE, "%s must be float32 of shape %s (draws first), got %s %s",
                          what, idl__shape_str(nd, shp, a, sizeof a), idl_dtype_name(t->dtype),
                          idl__shape_str(t->ndim, t->shape, b, sizeof b));
    }
    return IDL_OK;
}

typedef struct sg_ctx {
    idl__xrun *r;
    const idl_smooth_params *p;
    const float *sigma;
    float *sum, *sum2;
} sg_ctx;

static int64_t sg_sample(void *u, int64_t row) {
    return row % ((sg_ctx *)u)->r->N;
}
static void sg_point(void *u, int64_t row, float *dst) {
    sg_ctx *c = u;
    idl__xrun *r = c->r;
    int64_t i = row % r->N, s = row / r->N;
    idl__draw_noise(r, c->p->noise_tensor, c->sigma, s, i, dst);
    const float *x = r->x + i * r->numel;
    for (int64_t j = 0; j < r->numel; j++)
        dst[j] += x[j];
}
static void sg_take(void *u, int64_t row, const float *g, float obj) {
    (void)obj;
    sg_ctx *c = u;
    int64_t i = row % c->r->N, n = c->r->numel;
    float *s1 = c->sum + i * n, *s2 = c->sum2 + i * n;
    for (int64_t j = 0; j < n; j++) {
        s1[j] += g[j];
        s2[j] += g[j] * g[j];
    }
}

idl_status idl_smoothgrad(idl_session *s, const idl_explain_request *rq, const idl_smooth_params *p,
                          idl_explanation *out) {
    idl_smooth_params d = idl_smooth_params_default();
    p = p ? p : &d;
    memset(out, 0, sizeof *out);
    if (p->n_samples < 1) return idl__error(IDL_ERR_INVALID_ARG, "n_samples must be >= 1");
    if (!(p->noise >= 0) || !(p->noise_abs >= 0))
        return idl__error(IDL_ERR_INVALID_ARG, "noise must be >= 0");
    idl__xrun r;
    idl_status st = idl__x_begin_grad(&r, s, rq);
    if (st) return st;
    if (p->noise_tensor &&
        (st = idl__check_replay(&r, p->noise_tensor, p->n_samples, "noise_file", r.numel))) {
        idl__x_end(&r);
        return st;
    }
    int64_t n = r.N * r.numel;
    float *sigma = idl__calloc((size_t)r.N, sizeof(float));
    float *sum = idl__calloc((size_t)n, sizeof(float)),
          *sum2 = idl__calloc((size_t)n, sizeof(float));
    if (!sigma || !sum || !sum2) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st) {
        idl__x_sigma(&r, p->noise, p->noise_abs, sigma);
        sg_ctx c = { &r, p, sigma, sum, sum2 };
        idl__xrows rows = { p->n_samples * r.N, &c, sg_sample, sg_point, sg_take, NULL };
        r.total = r.passes + rows.n;
        st = idl__x_eval(&r, &rows, true);
    }
    if (!st) st = idl__x_result(&r, out, r.wrt_ndim, r.wrt_shape);
    if (!st) {
        float *a = out->attribution->data;
        double inv = 1.0 / p->n_samples;
        for (int64_t j = 0; j < n; j++) {
            double m = sum[j] * inv, m2 = sum2[j] * inv;
            a[j] = (float)(p->kind == IDL_SMOOTH_MEAN ? m
                           : p->kind == IDL_SMOOTH_SQ ? m2
                                                      : m2 - m * m);
        }
    }
    idl__free(sigma);
    idl__free(sum);
    idl__free(sum2);
    idl__x_end(&r);
    return st;
}

/* ---------------- Integrated Gradients ---------------- */

idl_ig_params idl_ig_params_default(void) {
    idl_ig_params p;
    memset(&p, 0, sizeof p);
    p.steps = 50;
    p.method = IDL_IG_GAUSS_LEGENDRE;
    p.baseline.kind = IDL_BASELINE_ZERO;
    p.baseline.blur_sigma = 10.0f;
    p.baseline.trials = 10;
    const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
    for (int c = 0; c < 4; c++) {
        p.baseline.mean[c] = c < 3 ? mean[c] : 0.0f;
        p.baseline.std[c] = c < 3 ? std[c] : 1.0f;
    }
    return p;
}

/* Gauss-Legendre nodes on [-1, 1] by Newton's method on P_n (ascending), with weights. */
static void gauss_legendre(int n, double *x, double *w) {
    for (int i = 0; i < n; i++) {
        double z = cos(3.14159265358979323846 * (i + 0.75) / (n + 0.5)), dp = 1;
        for (int it = 0; it < 100; it++) {
            double p0 = 1, p1 = z;
            for (int k = 2; k <= n; k++) {
                double p2 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            if (n == 1) p1 = z, p0 = 1;
            dp = n * (z * p1 - p0) / (z * z - 1);
            double dz = p1 / dp;
            z -= dz;
            if (fabs(dz) < 1e-16) break;
        }
        {
            double p0 = 1, p1 = z;
            for (int k = 2; k <= n; k++) {
                double p2 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (z * p1 - p0) / (z * z - 1);
        }
        x[n - 1 - i] = z;
        w[n - 1 - i] = 2 / ((1 - z * z) * dp * dp);
    }
}

idl_status idl__ig_quadrature(idl_ig_method m, int n, double *alpha, double *w) {
    if (n < 2 && m != IDL_IG_GAUSS_LEGENDRE && m != IDL_IG_RIEMANN_MIDDLE)
        return idl__error(IDL_ERR_INVALID_ARG, "steps must be >= 2 for this method");
    if (n < 1) return idl__error(IDL_ERR_INVALID_ARG, "steps must be >= 1");
    switch (m) {
    case IDL_IG_GAUSS_LEGENDRE:
        gauss_legendre(n, alpha, w);
        for (int k = 0; k < n; k++)
            alpha[k] = 0.5 * (1 + alpha[k]), w[k] *= 0.5;
        return IDL_OK;
    case IDL_IG_RIEMANN_LEFT:
    case IDL_IG_RIEMANN_RIGHT:
    case IDL_IG_RIEMANN_MIDDLE:
    case IDL_IG_RIEMANN_TRAPEZOID:
    case IDL_IG_TRAPEZOID:
    case IDL_IG_LINSPACE:
        for (int k = 0; k < n; k++) {
            double lin = n > 1 ? (double)k / (n - 1) : 0.5;
            w[k] = 1.0 / n;
            alpha[k] = m == IDL_IG_RIEMANN_LEFT     ? lin * (1 - 1.0 / n)
                       : m == IDL_IG_RIEMANN_RIGHT  ? 1.0 / n + lin * (1 - 1.0 / n)
                       : m == IDL_IG_RIEMANN_MIDDLE ? 0.5 / n + lin * (1 - 1.0 / n)
                                                    : lin;
            if (m == IDL_IG_TRAPEZOID) w[k] = (k == 0 || k == n - 1 ? 0.5 : 1.0) / (n - 1);
        }
        if (m == IDL_IG_RIEMANN_TRAPEZOID) w[0] *= 0.5, w[n - 1] *= 0.5;
        return IDL_OK;
    }
    return idl__error(IDL_ERR_INVALID_ARG, "unknown integration method %d", (int)m);
}

typedef struct ig_ctx {
    idl__xrun *r;
    int S, trials;
    const double *alpha, *w;
    const float *base; /* trials * N * numel */
    float *acc;        /* trials * N * numel */
    double *fb;        /* trials * N: objective at the baseline */
} ig_ctx;

/* row = ((t * (S + 1)) + k) * N + i; k == S is the baseline itself (its objective only) */
static int64_t ig_sample(void *u, int64_t row) {
    return row % ((ig_ctx *)u)->r->N;
}
static void ig_point(void *u, int64_t row, float *dst) {
    ig_ctx *c = u;
    idl__xrun *r = c->r;
    int64_t i = row % r->N, k = (row / r->N) % (c->S + 1), t = row / (r->N * (c->S + 1));
    const float *b = c->base + (t * r->N + i) * r->numel, *x = r->x + i * r->numel;
    float a = k == c->S ? 0.0f : (float)c->alpha[k];
    for (int64_t j = 0; j < r->numel; j++)
        dst[j] = b[j] + a * (x[j] - b[j]);
}
static bool ig_need_grad(void *u, int64_t row) {
    ig_ctx *c = u;
    return (row / c->r->N) % (c->S + 1) != c->S;
}
static void ig_take(void *u, int64_t row, const float *g, float obj) {
    ig_ctx *c = u;
    idl__xrun *r = c->r;
    int64_t i = row % r->N, k = (row / r->N) % (c->S + 1), t = row / (r->N * (c->S + 1));
    if (k == c->S) {
        c->fb[t * r->N + i] = obj;
        return;
    }
    float w = (float)c->w[k], *acc = c->acc + (t * r->N + i) * r->numel;
    for (int64_t j = 0; j < r->numel; j++)
        acc[j] += w * g[j];
}

idl_status idl_integrated_gradients(idl_session *s, const idl_explain_request *rq,
                                    const idl_ig_params *p, idl_explanation *out) {
    idl_ig_params d = idl_ig_params_default();
    p = p ? p : &d;
    memset(out, 0, sizeof *out);
    if (p->steps < 1 || p->steps > 100000)
        return idl__error(IDL_ERR_INVALID_ARG, "steps must be in 1..100000");
    double *alpha = idl__calloc((size_t)p->steps, sizeof(double));
    double *w = idl__calloc((size_t)p->steps, sizeof(double));
    if (!alpha || !w) {
        idl__free(alpha);
        idl__free(w);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl_status st = idl__ig_quadrature(p->method, p->steps, alpha, w);
    idl__xrun r;
    memset(&r, 0, sizeof r);
    int trials = 1;
    if (!st) st = idl__x_begin_grad(&r, s, rq);
    bool begun = !st;
    if (!st) st = idl__baseline_check(&r, &p->baseline, &trials);
    float *base = NULL, *acc = NULL;
    double *fb = NULL;
    int64_t per = r.N * r.numel;
    if (!st) {
        base = idl__calloc((size_t)(trials * per), sizeof(float));
        acc = idl__calloc((size_t)(trials * per), sizeof(float));
        fb = idl__calloc((size_t)(trials * r.N), sizeof(double));
        if (!base || !acc || !fb) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; !st && t < trials; t++)
        for (int64_t i = 0; !st && i < r.N; i++)
            st = idl__baseline_fill(&r, &p->baseline, t, i, base + (t * r.N + i) * r.numel);
    if (!st) {
        ig_ctx c = { &r, p->steps, trials, alpha, w, base, acc, fb };
        idl__xrows rows = {
            (int64_t)trials * (p->steps + 1) * r.N, &c, ig_sample, ig_point, ig_take, ig_need_grad
        };
        r.total = r.passes + rows.n;
        st = idl__x_eval(&r, &rows, true);
    }
    if (!st) st = idl__x_result(&r, out, r.wrt_ndim, r.wrt_shape);
    if (!st) {
        out->baseline_score = idl__calloc((size_t)r.N, sizeof(float));
        out->delta = idl__calloc((size_t)r.N, sizeof(double));
        if (!out->baseline_score || !out->delta) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        float *a = out->attribution->data;
        for (int64_t i = 0; i < r.N; i++) {
            double sum = 0, fbm = 0;
            for (int64_t j = 0; j < r.numel; j++) {
                double v = 0;
                for (int t = 0; t < trials; t++) {
                    int64_t o = (t * r.N + i) * r.numel + j;
                    v += (double)(r.x[i * r.numel + j] - base[o]) * acc[o];
                }
                a[i * r.numel + j] = (float)(v / trials);
                sum += v / trials;
            }
            for (int t = 0; t < trials; t++)
                fbm += fb[t * r.N + i];
            fbm /= trials;
            out->baseline_score[i] = (float)fbm;
            out->delta[i] = sum - ((double)r.score[i] - fbm);
        }
    }
    if (st) idl_explanation_clear(out);
    idl__free(alpha);
    idl__free(w);
    idl__free(base);
    idl__free(acc);
    idl__free(fb);
    if (begun) idl__x_end(&r);
    return st;
}

/* ---------------- GradientSHAP ---------------- */

idl_gradient_shap_params idl_gradient_shap_params_default(void) {
    idl_gradient_shap_params p;
    memset(&p, 0, sizeof p);
    p.n_samples = 5;
    idl_ig_params ig = idl_ig_params_default();
    p.baseline = ig.baseline;
    return p;
}

typedef struct gs_ctx {
    idl__xrun *r;
    const idl_gradient_shap_params *p;
    const float *sigma;
    int64_t n_base; /* baselines in a distribution (0: one per sample) */
    float *xt;      /* scratch: x~ for the current row */
    float *bb;      /* scratch: baseline for the current row */
    float *acc;
    idl_status st;
} gs_ctx;

static float gs_alpha(gs_ctx *c, int64_t s, int64_t i) {
    if (c->p->alpha_tensor) return ((const float *)c->p->alpha_tensor->data)[s * c->r->N + i];
    float a;
    idl__rng_uniform(c->r->rq->seed, IDL__STREAM(IDL__STREAM_ALPHA, 0), s, 1, &a);
    return a;
}

/* x~ = x + noise and the baseline b of row (s, i) into c->xt and c->bb */
static void gs_row(gs_ctx *c, int64_t s, int64_t i) {
    idl__xrun *r = c->r;
    idl__draw_noise(r, c->p->noise_tensor, c->sigma, s, i, c->xt);
    const float *x = r->x + i * r->numel;
    for (int64_t j = 0; j < r->numel; j++)
        c->xt[j] += x[j];
    if (c->n_base) {
        uint64_t k = idl__rng_u64(r->rq->seed, IDL__STREAM(IDL__STREAM_PICK, 0), (uint64_t)s) %
                     (uint64_t)c->n_base;
        memcpy(c->bb, (const float *)c->p->baseline.tensor->data + (int64_t)k * r->numel,
               sizeof(float) * (size_t)r->numel);
    } else {
        idl_status st = idl__baseline_fill(r, &c->p->baseline, (int)s, i, c->bb);
        if (st && !c->st) c->st = st;
    }
}

static int64_t gs_sample(void *u, int64_t row) {
    return row % ((gs_ctx *)u)->r->N;
}
static void gs_point(void *u, int64_t row, float *dst) {
    gs_ctx *c = u;
    int64_t i = row % c->r->N, s = row / c->r->N;
    gs_row(c, s, i);
    float a = gs_alpha(c, s, i);
    for (int64_t j = 0; j < c->r->numel; j++)
        dst[j] = c->bb[j] + a * (c->xt[j] - c->bb[j]);
}
static void gs_take(void *u, int64_t row, const float *g, float obj) {
    (void)obj;
    gs_ctx *c = u;
    int64_t i = row % c->r->N, s = row / c->r->N;
    gs_row(c, s, i);
    float *acc = c->acc + i * c->r->numel;
    for (int64_t j = 0; j < c->r->numel; j++)
        acc[j] += g[j] * (c->xt[j] - c->bb[j]);
}

idl_status idl_gradient_shap(idl_session *s, const idl_explain_request *rq,
                             const idl_gradient_shap_params *p, idl_explanation *out) {
    idl_gradient_shap_params d = idl_gradient_shap_params_default();
    p = p ? p : &d;
    memset(out, 0, sizeof *out);
    if (p->n_samples < 1) return idl__error(IDL_ERR_INVALID_ARG, "n_samples must be >= 1");
    if (!(p->noise >= 0) || !(p->noise_abs >= 0))
        return idl__error(IDL_ERR_INVALID_ARG, "noise must be >= 0");
    if (p->baseline.kind == IDL_BASELINE_RANDOM)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "gradient_shap draws its own baselines per sample; give a baseline "
                          "tensor (K, sample shape) as the distribution instead of random");
    idl__xrun r;
    idl_status st = idl__x_begin_grad(&r, s, rq);
    if (st) return st;
    int trials = 1;
    gs_ctx c;
    memset(&c, 0, sizeof c);
    c.r = &r;
    c.p = p;
    if (p->baseline.kind == IDL_BASELINE_TENSOR && p->baseline.tensor &&
        p->baseline.tensor->ndim == r.wrt_ndim &&
        idl_tensor_numel(p->baseline.tensor) % r.numel == 0 &&
        idl_tensor_numel(p->baseline.tensor) != r.numel * r.N)
        c.n_base = idl_tensor_numel(p->baseline.tensor) / r.numel; /* a distribution (K, ...) */
    else
        st = idl__baseline_check(&r, &p->baseline, &trials);
    if (!st && trials != 1)
        st = idl__error(IDL_ERR_INVALID_ARG, "gradient_shap takes one baseline per sample");
    if (!st && p->noise_tensor)
        st = idl__check_replay(&r, p->noise_tensor, p->n_samples, "noise_file", r.numel);
    if (!st && p->alpha_tensor) {
        st = idl__check_replay(&r, p->alpha_tensor, p->n_samples, "alpha_file", 1);
    }
    float *sigma = NULL;
    if (!st) {
        sigma = idl__calloc((size_t)r.N, sizeof(float));
        c.xt = idl__calloc((size_t)r.numel, sizeof(float));
        c.bb = idl__calloc((size_t)r.numel, sizeof(float));
        c.acc = idl__calloc((size_t)(r.N * r.numel), sizeof(float));
        if (!sigma || !c.xt || !c.bb || !c.acc) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        idl__x_sigma(&r, p->noise, p->noise_abs, sigma);
        c.sigma = sigma;
        idl__xrows rows = { p->n_samples * r.N, &c, gs_sample, gs_point, gs_take, NULL };
        r.total = r.passes + rows.n;
        st = idl__x_eval(&r, &rows, true);
        if (!st) st = c.st;
    }
    if (!st) st = idl__x_result(&r, out, r.wrt_ndim, r.wrt_shape);
    if (!st) {
        float *a = out->attribution->data;
        for (int64_t j = 0; j < r.N * r.numel; j++)
            a[j] = c.acc[j] / (float)p->n_samples;
    }
    idl__free(sigma);
    idl__free(c.xt);
    idl__free(c.bb);
    idl__free(c.acc);
    idl__x_end(&r);
    return st;
}
