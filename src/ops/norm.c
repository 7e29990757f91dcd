/* norm.c — BatchNormalization, forward and backward, plain C with OpenMP.
 *   x (N,C,D1..Dn) (any rank >= 2), scale, B, mean, var (C) -> y (N,C,D1..Dn)
 * Inference: y = (x - mean) / sqrt(var + eps) * scale + B, per channel (axis 1).
 * Training (opset >= 14, training_mode=1): the statistics are the batch's own (mean and biased
 * variance over N and the spatial axes), and the optional outputs running_mean / running_var are
 * mean * momentum + batch_mean * (1 - momentum) (likewise for var), as the ONNX reference does.
 * Refused: spatial=0 (opset < 9), is_test=0 (opset < 7), and the training outputs of opset < 14
 * (saved mean / saved variance, whose meaning changed between opsets).
 * Gradients: x, scale, B, mean, var (inference); x, scale, B and the running outputs' inputs
 * (training). Per-channel sums run in a fixed order (double accumulators), one channel per thread.
 */
#include "ops/op.h"

#include <math.h>
#include <string.h>

typedef struct bn_state {
    bool training;
    float eps, momentum;
    int64_t N, C, S; /* batch, channels, spatial volume */
    float *bmean;    /* training: batch mean (C), written by forward */
    float *binv;     /* training: 1 / sqrt(batch var + eps) (C) */
} bn_state;

static void bn_free(void *p) {
    bn_state *s = p;
    if (!s) return;
    idl__free(s->bmean);
    idl__free(s->binv);
    idl__free(s);
}

static idl_status bn_prepare(idl__op_ctx *c) {
    idl_status st;
    for (int i = 0; i < 5; i++)
        if ((st = idl__need_f32(c, i))) return st;
    const idl_tensor *x = c->in[0];
    const idl__node *n = c->node;
    char buf[96];
    if (x->ndim < 2)
        return idl__error(IDL_ERR_SHAPE, "input %s must have rank >= 2 (N,C,...)",
                          idl__shape_str(x->ndim, x->shape, buf, sizeof buf));
    int64_t C = x->shape[1];
    static const char *const names[5] = { "X", "scale", "B", "mean", "var" };
    for (int i = 1; i < 5; i++)
        if (idl_tensor_numel(c->in[i]) != C || c->in[i]->ndim != 1)
            return idl__error(IDL_ERR_SHAPE, "%s %s must be (%lld) for input %s", names[i],
                              idl__shape_str(c->in[i]->ndim, c->in[i]->shape, buf, sizeof buf),
                              (long long)C, idl__shape_str(x->ndim, x->shape, (char[96]){ 0 }, 96));
    if (c->opset < 9 && idl__attr_int(n, "spatial", 1) != 1)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "spatial=0 (per-activation statistics) is not supported");
    if (idl__attr_int(n, "is_test", 1) == 0)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "is_test=0 (training mode before opset 7) is not supported");
    bool training = c->opset >= 14 && idl__attr_int(n, "training_mode", 0) != 0;
    bool extra = false;
    for (int k = 1; k < c->n_out; k++)
        extra = extra || c->out[k];
    if (extra && c->opset < 14)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "the training outputs (mean, var, saved_mean, saved_var) of "
                          "opset %lld are not supported; re-export at opset >= 14 or in eval mode",
                          (long long)c->opset);
    bn_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->training = training;
    s->eps = idl__attr_float(n, "epsilon", 1e-5f);
    s->momentum = idl__attr_float(n, "momentum", 0.9f);
    s->N = x->shape[0];
    s->C = C;
    s->S = 1;
    for (int i = 2; i < x->ndim; i++)
        s->S *= x->shape[i];
    if (training) {
        s->bmean = idl__calloc((size_t)C + 1, sizeof(float));
        s->binv = idl__calloc((size_t)C + 1, sizeof(float));
        if (!s->bmean || !s->binv) return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl__set_out(c->out[0], IDL_DT_F32, x->ndim, x->shape);
    for (int k = 1; k < c->n_out; k++)
        if (c->out[k]) idl__set_out(c->out[k], IDL_DT_F32, 1, &C);
    return IDL_OK;
}

/* Per-channel mean and 1/sqrt(var + eps): the inputs' in inference, the batch's in training
 * (stored in the state for backward). */
static void bn_stats(idl__op_ctx *c, int64_t ch, float *mean, float *inv) {
    const bn_state *s = c->state;
    if (!s->training) {
        *mean = ((const float *)c->in[3]->data)[ch];
        *inv = 1.0f / sqrtf(((const float *)c->in[4]->data)[ch] + s->eps);
        return;
    }
    *mean = s->bmean[ch];
    *inv = s->binv[ch];
}

static void bn_forward(idl__op_ctx *c) {
    bn_state *s = c->state;
    const float *x = c->in[0]->data, *scale = c->in[1]->data, *bias = c->in[2]->data;
    float *y = c->out[0]->data;
    int64_t N = s->N, C = s->C, S = s->S;
    if (s->training) {
        double cnt = (double)(N * S);
#pragma omp parallel for if (N * C * S > IDL_OMP_MIN) schedule(static)
        for (int64_t ch = 0; ch < C; ch++) {
            double acc = 0, acc2 = 0;
            for (int64_t b = 0; b < N; b++) {
                const float *xp = x + (b * C + ch) * S;
                for (int64_t i = 0; i < S; i++)
                    acc += xp[i];
            }
            double m = cnt > 0 ? acc / cnt : 0;
            for (int64_t b = 0; b < N; b++) {
                const float *xp = x + (b * C + ch) * S;
                for (int64_t i = 0; i < S; i++)
                    acc2 += (xp[i] - m) * (xp[i] - m);
            }
            double v = cnt > 0 ? acc2 / cnt : 0;
            s->bmean[ch] = (float)m;
            s->binv[ch] = (float)(1.0 / sqrt(v + (double)s->eps));
            float mom = s->momentum;
            if (c->n_out > 1 && c->out[1])
                ((float *)c->out[1]->data)[ch] =
                    ((const float *)c->in[3]->data)[ch] * mom + (float)m * (1 - mom);
            if (c->n_out > 2 && c->out[2])
                ((float *)c->out[2]->data)[ch] =
                    ((const float *)c->in[4]->data)[ch] * mom + (float)v * (1 - mom);
        }
    } else {
        for (int k = 1; k < c->n_out && k < 3; k++)
            if (c->out[k]) memcpy(c->out[k]->data, c->in[2 + k]->data, sizeof(float) * (size_t)C);
    }
#pragma omp parallel for if (N * C * S > IDL_OMP_MIN) schedule(static)
    for (int64_t p = 0; p < N * C; p++) {
        int64_t ch = p % C;
        float mean, inv;
        bn_stats(c, ch, &mean, &inv);
        float a = scale[ch] * inv, b = bias[ch] - mean * a;
        const float *xp = x + p * S;
        float *yp = y + p * S;
        for (int64_t i = 0; i < S; i++)
            yp[i] = xp[i] * a + b;
    }
}

static idl_status bn_backward(idl__op_ctx *c) {
    const bn_state *s = c->state;
    const float *x = c->in[0]->data, *scale = c->in[1]->data;
    int64_t N = s->N, C = s->C, S = s->S;
    const float *dy = c->dout[0] ? c->dout[0]->data : NULL;
    const float *drm = c->n_out > 1 && c->dout[1] ? c->dout[1]->data : NULL; /* d running_mean */
    const float *drv = c->n_out > 2 && c->dout[2] ? c->dout[2]->data : NULL; /* d running_var */
    float *dx = c->din[0] ? c->din[0]->data : NULL, *dscale = c->din[1] ? c->din[1]->data : NULL,
          *dbias = c->din[2] ? c->din[2]->data : NULL, *dmean = c->din[3] ? c->din[3]->data : NULL,
          *dvar = c->din[4] ? c->din[4]->data : NULL;
    double cnt = (double)(N * S);
    float mom = s->momentum;
#pragma omp parallel for if (N * C * S > IDL_OMP_MIN) schedule(static)
    for (int64_t ch = 0; ch < C; ch++) {
        float mean, inv;
        bn_stats(c, ch, &mean, &inv);
        /* sum dy and sum dy * xhat over the channel */
        double sdy = 0, sdyx = 0;
        if (dy)
            for (int64_t b = 0; b < N; b++) {
                const float *xp = x + (b * C + ch) * S, *gp = dy + (b * C + ch) * S;
                for (int64_t i = 0; i < S; i++) {
                    sdy += gp[i];
                    sdyx += (double)gp[i] * (xp[i] - mean) * inv;
                }
            }
        if (dbias) dbias[ch] += (float)sdy;
        if (dscale) dscale[ch] += (float)sdyx;
        if (!s->training) {
            if (dmean) dmean[ch] += (float)(-scale[ch] * inv * sdy);
            if (dvar) dvar[ch] += (float)(-0.5 * scale[ch] * inv * inv * sdyx);
            if (dx && dy)
                for (int64_t b = 0; b < N; b++) {
                    const float *gp = dy + (b * C + ch) * S;
                    float *dp = dx + (b * C + ch) * S;
                    float a = scale[ch] * inv;
                    for (int64_t i = 0; i < S; i++)
                        dp[i] += gp[i] * a;
                }
            continue;
        }
        /* training: y depends on x through the batch mean and variance too */
        float gm = drm ? drm[ch] : 0.0f, gv = drv ? drv[ch] : 0.0f;
        if (dmean) dmean[ch] += gm * mom;
        if (dvar) dvar[ch] += gv * mom;
        if (!dx || cnt <= 0) continue;
        double k1 = scale[ch] * inv, m1 = sdy / cnt, m2 = sdyx / cnt;
        double cm = (1 - mom) * gm / cnt, cv = (1 - mom) * gv * 2.0 / cnt;
        for (int64_t b = 0; b < N; b++) {
            const float *xp = x + (b * C + ch) * S, *gp = dy ? dy + (b * C + ch) * S : NULL;
            float *dp = dx + (b * C + ch) * S;
            for (int64_t i = 0; i < S; i++) {
                double xc = xp[i] - mean, g = 0;
                if (gp) g = k1 * (gp[i] - m1 - xc * inv * m2);
                dp[i] += (float)(g + cm + cv * xc);
            }
        }
    }
    return IDL_OK;
}

/* What bn_backward reads: x (its per-channel sum of dy * xhat runs whenever dy flows, whichever
 * gradients are asked), scale, and in inference the mean and var inputs (bn_stats; training
 * takes the batch statistics from the state). B is never read. */
static unsigned bn_bwd_reads(const idl__op_ctx *c) {
    const bn_state *s = c->state;
    return IDL__BWD_IN(0) | IDL__BWD_IN(1) | (s->training ? 0 : IDL__BWD_IN(3) | IDL__BWD_IN(4));
}
const idl__op_def IDL__OP(batchnorm) = { "BatchNormalization", 5,          5,           1,       5,
                                         bn_prepare,           bn_forward, bn_backward, bn_free, 0,
                                         bn_bwd_reads };
