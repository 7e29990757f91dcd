/* softmax.c — Softmax and LogSoftmax, forward and backward, float32.
 * The input is viewed as x: (outer, n, inner), normalized over n:
 *   opset >= 13: axis (default -1) is a single axis: outer = prod(dims[:axis]), n = dims[axis],
 *                inner = prod(dims[axis+1:]);
 *   opset < 13:  axis (default 1) splits the input into 2-D [prod(dims[:axis]), prod(dims[axis:])]
 *                and the softmax runs over the whole flattened tail: inner = 1.
 * y has x's shape. Numerically stable (the maximum is subtracted before exp); sums run in double,
 * in a fixed order: element j goes to partial sum j % 8, and the 8 are added pairwise (one chain
 * of n dependent additions made vit_b_16's softmax ~3x slower). Backward: softmax dx = y * (dy -
 * sum(dy * y)); logsoftmax dx = dy - exp(y) * sum(dy), sums over n. */
#include "ops/op.h"
#include "ops/vmath.h"

#include <math.h>

typedef struct softmax_state {
    int64_t outer, n, inner;
    bool log;
} softmax_state;

static void free_state(void *s) {
    idl__free(s);
}

static idl_status softmax_prepare_common(idl__op_ctx *c, bool is_log) {
    idl_status st = idl__need_f32(c, 0);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    const bool legacy = c->opset < 13;
    int axis = 0;
    if (x->ndim > 0 &&
        (st = idl__norm_axis(idl__attr_int(c->node, "axis", legacy ? 1 : -1), x->ndim, &axis)))
        return st;
    softmax_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    s->log = is_log;
    s->outer = idl__numel(axis, x->shape);
    if (x->ndim == 0) { /* a scalar is its own (one-element) distribution */
        s->n = s->inner = 1;
    } else if (legacy) {
        s->n = idl__numel(x->ndim - axis, x->shape + axis);
        s->inner = 1;
    } else {
        s->n = x->shape[axis];
        s->inner = idl__numel(x->ndim - axis - 1, x->shape + axis + 1);
    }
    c->state = s;
    idl__set_out(c->out[0], IDL_DT_F32, x->ndim, x->shape);
    return IDL_OK;
}

/* sum_j a[j * st] (* b[j * st] when b), in double: 8 partial sums (j % 8), added pairwise. */
static inline double sum8(const float *a, const float *b, int64_t n, int64_t st) {
    double acc[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int q = 0; q < 8; q++)
            acc[q] += b ? (double)(a[(j + q) * st] * b[(j + q) * st]) : (double)a[(j + q) * st];
    for (int q = 0; j + q < n; q++)
        acc[q] += b ? (double)(a[(j + q) * st] * b[(j + q) * st]) : (double)a[(j + q) * st];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* One lane: n elements at x[j * st]. Inlined with st = 1 for contiguous rows. */
static inline void softmax_lane(const float *x, float *y, int64_t n, int64_t st, bool is_log) {
    if (n <= 0) return;
    /* the maximum over 8 interleaved lanes (no chain of n dependent compares); the same value
     * as one running maximum, NaN included: a NaN is kept only where it starts a lane, and lane
     * 0 starts with x[0], as the running maximum does */
    float mx = x[0];
    if (n >= 16) {
        float m8[8];
        for (int q = 0; q < 8; q++)
            m8[q] = x[q * st];
        int64_t j = 8;
        for (; j + 8 <= n; j += 8)
            for (int q = 0; q < 8; q++)
                m8[q] = x[(j + q) * st] > m8[q] ? x[(j + q) * st] : m8[q];
        for (; j < n; j++)
            m8[0] = x[j * st] > m8[0] ? x[j * st] : m8[0];
        mx = m8[0];
        for (int q = 1; q < 8; q++)
            mx = m8[q] > mx ? m8[q] : mx;
    } else {
        for (int64_t j = 1; j < n; j++)
            mx = x[j * st] > mx ? x[j * st] : mx;
    }
    /* the exponentials first (a loop that vectorises), then their sum in double, in order */
    for (int64_t j = 0; j < n; j++)
        y[j * st] = idl__vexp(x[j * st] - mx);
    double sum = sum8(y, NULL, n, st);
    if (is_log) {
        const float lse = mx + (float)log(sum);
        for (int64_t j = 0; j < n; j++)
            y[j * st] = x[j * st] - lse;
    } else {
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++)
            y[j * st] *= inv;
    }
}

static inline void softmax_lane_bwd(const float *y, const float *dy, float *dx, int64_t n,
                                    int64_t st, bool is_log) {
    double acc = 0.0;
    if (is_log) {
        acc = sum8(dy, NULL, n, st);
        const float sdy = (float)acc;
        for (int64_t j = 0; j < n; j++)
            dx[j * st] += dy[j * st] - idl__vexp(y[j * st]) * sdy;
    } else {
        acc = sum8(dy, y, n, st);
        const float sdy = (float)acc;
        for (int64_t j = 0; j < n; j++)
            dx[j * st] += y[j * st] * (dy[j * st] - sdy);
    }
}

static void softmax_forward(idl__op_ctx *c) {
    const softmax_state *s = c->state;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    const int64_t n = s->n, inner = s->inner, lanes = s->outer * s->inner;
    const bool is_log = s->log;
    if (inner == 1) {
#pragma omp parallel for if (lanes * n > IDL_OMP_MIN) schedule(static)
        for (int64_t o = 0; o < lanes; o++)
            softmax_lane(x + o * n, y + o * n, n, 1, is_log);
    } else {
#pragma omp parallel for if (lanes * n > IDL_OMP_MIN) schedule(static)
        for (int64_t l = 0; l < lanes; l++) {
            const int64_t base = (l / inner) * n * inner + l % inner;
            softmax_lane(x + base, y + base, n, inner, is_log);
        }
    }
}

static idl_status softmax_backward(idl__op_ctx *c) {
    const softmax_state *s = c->state;
    if (!c->din[0] || !c->dout[0]) return IDL_OK;
    const float *y = c->out[0]->data, *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    const int64_t n = s->n, inner = s->inner, lanes = s->outer * s->inner;
    const bool is_log = s->log;
    if (inner == 1) {
#pragma omp parallel for if (lanes * n > IDL_OMP_MIN) schedule(static)
        for (int64_t o = 0; o < lanes; o++)
            softmax_lane_bwd(y + o * n, dy + o * n, dx + o * n, n, 1, is_log);
    } else {
#pragma omp parallel for if (lanes * n > IDL_OMP_MIN) schedule(static)
        for (int64_t l = 0; l < lanes; l++) {
            const int64_t base = (l / inner) * n * inner + l % inner;
            softmax_lane_bwd(y + base, dy + base, dx + base, n, inner, is_log);
        }
    }
    return IDL_OK;
}

static idl_status softmax_prepare(idl__op_ctx *c) {
    return softmax_prepare_common(c, false);
}
static idl_status logsoftmax_prepare(idl__op_ctx *c) {
    return softmax_prepare_common(c, true);
}

const idl__op_def IDL__OP(softmax) = {
    "Softmax",
    1,
    1,
    1,
    1,
    softmax_prepare,
    softmax_forward,
    softmax_backward,
    free_state,
    0,
    idl__bwd_reads_out0 /* softmax_lane_bwd: y only */
};
const idl__op_def IDL__OP(logsoftmax) = { "LogSoftmax",
                                          1,
                                          1,
                                          1,
                                          1,
                                          logsoftmax_prepare,
                                          softmax_forward,
                                          softmax_backward,
                                          free_state,
                                          0,
                                          idl__bwd_reads_out0 };
