/* elementwise.c — unary element-wise ops, forward and backward: Relu, LeakyRelu, Elu, PRelu, Clip,
 * Sigmoid, HardSigmoid, HardSwish, Tanh, Softplus, Erf, Exp, Log, Neg, Sqrt, Abs, Reciprocal,
 * Identity, Dropout (inference), Not; Selu, Celu, Softsign, ThresholdedRelu, Acos, Asin, Atan,
 * Cosh, Sinh, Tan (float32, with gradients); Ceil, Floor, Round (half to even), Sign (float32,
 * piecewise constant: their backward adds nothing).
 * x, y, dy, dx all share one shape (N elements, contiguous); PRelu's slope broadcasts to x. */
#include "ops/op.h"
#include "ops/vmath.h"

#include <math.h>
#include <string.h>

typedef enum {
    U_RELU,
    U_LEAKY,
    U_ELU,
    U_SIGMOID,
    U_HSIGMOID,
    U_HSWISH,
    U_TANH,
    U_SOFTPLUS,
    U_ERF,
    U_EXP,
    U_LOG,
    U_NEG,
    U_SQRT,
    U_ABS,
    U_RECIP,
    U_CLIP,
    U_SELU,
    U_CELU,
    U_SOFTSIGN,
    U_THRELU,
    U_ACOS,
    U_ASIN,
    U_ATAN,
    U_COSH,
    U_SINH,
    U_TAN,
    U_CEIL, /* U_CEIL..U_SIGN are piecewise constant (zero gradient); keep them last */
    U_FLOOR,
    U_ROUND,
    U_SIGN,
} unary_kind;

typedef struct unary_state {
    unary_kind kind;
    float alpha, beta; /* LeakyRelu/Elu/Celu/ThresholdedRelu alpha; HardSigmoid alpha, beta; Clip
                        * min (alpha), max (beta); Selu alpha, gamma (beta) */
} unary_state;

static void free_state(void *s) {
    idl__free(s);
}

static idl_status unary_prepare(idl__op_ctx *c, unary_kind kind, float alpha, float beta) {
    idl_status st = idl__need_f32(c, 0);
    if (st) return st;
    unary_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    s->kind = kind;
    s->alpha = alpha;
    s->beta = beta;
    c->state = s;
    idl__set_out(c->out[0], IDL_DT_F32, c->in[0]->ndim, c->in[0]->shape);
    idl__layout_same(c, 1);
    return IDL_OK;
}

/* Clip as compare-and-select (vectorises; fminf/fmaxf calls do not); NaN stays NaN, as in numpy.
 */
static inline float clamp(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

static inline float unary_f(const unary_state *s, float x) {
    switch (s->kind) {
    case U_RELU:
        return x > 0 ? x : 0.0f;
    case U_LEAKY:
        return x > 0 ? x : s->alpha * x;
    case U_ELU:
        return x > 0 ? x : s->alpha * expm1f(x);
    case U_SIGMOID:
        return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case U_HSIGMOID:
        return fmaxf(0.0f, fminf(1.0f, s->alpha * x + s->beta));
    case U_HSWISH:
        return x * fmaxf(0.0f, fminf(1.0f, x / 6.0f + 0.5f));
    case U_TANH:
        return tanhf(x);
    case U_SOFTPLUS:
        return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
    case U_ERF:
        return idl__verf(x);
    case U_EXP:
        return expf(x);
    case U_LOG:
        return logf(x);
    case U_NEG:
        return -x;
    case U_SQRT:
        return sqrtf(x);
    case U_ABS:
        return fabsf(x);
    case U_RECIP:
        return 1.0f / x;
    case U_CLIP:
        return clamp(x, s->alpha, s->beta);
    case U_SELU:
        return x > 0 ? s->beta * x : s->beta * s->alpha * expm1f(x);
    case U_CELU:
        return x > 0 ? x : s->alpha * expm1f(x / s->alpha);
    case U_SOFTSIGN:
        return x / (1.0f + fabsf(x));
    case U_THRELU:
        return x > s->alpha ? x : 0.0f;
    case U_ACOS:
        return acosf(x);
    case U_ASIN:
        return asinf(x);
    case U_ATAN:
        return atanf(x);
    case U_COSH:
        return coshf(x);
    case U_SINH:
        return sinhf(x);
    case U_TAN:
        return tanf(x);
    case U_CEIL:
        return ceilf(x);
    case U_FLOOR:
        return floorf(x);
    case U_ROUND:
        return rintf(x); /* default rounding mode: to nearest, ties to even */
    case U_SIGN:
        return x > 0 ? 1.0f : x < 0 ? -1.0f : x; /* 0 stays 0, NaN stays NaN */
    }
    return x;
}

/* dy/dx given x and y = f(x). */
static inline float unary_df(const unary_state *s, float x, float y) {
    switch (s->kind) {
    case U_RELU:
        return x > 0 ? 1.0f : 0.0f;
    case U_LEAKY:
        return x > 0 ? 1.0f : s->alpha;
    case U_ELU:
        return x > 0 ? 1.0f : y + s->alpha;
    case U_SIGMOID:
        return y * (1.0f - y);
    case U_HSIGMOID: {
        float t = s->alpha * x + s->beta;
        return t > 0 && t < 1 ? s->alpha : 0.0f;
    }
    case U_HSWISH:
        return x < -3.0f ? 0.0f : x > 3.0f ? 1.0f : x / 3.0f + 0.5f;
    case U_TANH:
        return 1.0f - y * y;
    case U_SOFTPLUS:
        return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case U_ERF:
        return 1.1283791670955126f * idl__vexp(-x * x);
    case U_EXP:
        return y;
    case U_LOG:
        return 1.0f / x;
    case U_NEG:
        return -1.0f;
    case U_SQRT:
        return 0.5f / y;
    case U_ABS:
        return x > 0 ? 1.0f : x < 0 ? -1.0f : 0.0f;
    case U_RECIP:
        return -y * y;
    case U_CLIP:
        return x >= s->alpha && x <= s->beta ? 1.0f : 0.0f; /* PyTorch's clamp rule */
    case U_SELU:
        return x > 0 ? s->beta : y + s->beta * s->alpha;
    case U_CELU:
        return x > 0 ? 1.0f : expf(x / s->alpha);
    case U_SOFTSIGN: {
        float d = 1.0f + fabsf(x);
        return 1.0f / (d * d);
    }
    case U_THRELU:
        return x > s->alpha ? 1.0f : 0.0f;
    case U_ACOS:
        return -1.0f / sqrtf(1.0f - x * x);
    case U_ASIN:
        return 1.0f / sqrtf(1.0f - x * x);
    case U_ATAN:
        return 1.0f / (1.0f + x * x);
    case U_COSH:
        return sinhf(x);
    case U_SINH:
        return coshf(x);
    case U_TAN:
        return 1.0f + y * y;
    case U_CEIL:
    case U_FLOOR:
    case U_ROUND:
    case U_SIGN:
        return 0.0f;
    }
    return 1.0f;
}

/* One loop per kind (the switch sits outside the loop, so each loop vectorises). */
#define UNARY_LOOP(KIND, EXPR)                           \
    case KIND:                                           \
        IDL_PAR_FOR(n > IDL_OMP_MIN, int64_t, i, 0, n, { \
            const unary_state s_ = *s;                   \
            (void)s_;                                    \
            EXPR;                                        \
        });                                              \
        break;

static void unary_forward(idl__op_ctx *c) {
    const unary_state *s = c->state;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t n = idl_tensor_numel(c->in[0]);
    switch (s->kind) {
        UNARY_LOOP(U_RELU, y[i] = x[i] > 0 ? x[i] : 0.0f)
        UNARY_LOOP(U_LEAKY, y[i] = x[i] > 0 ? x[i] : s_.alpha * x[i])
        UNARY_LOOP(U_CLIP, y[i] = clamp(x[i], s_.alpha, s_.beta))
        UNARY_LOOP(U_HSIGMOID, y[i] = fmaxf(0.0f, fminf(1.0f, s_.alpha * x[i] + s_.beta)))
        UNARY_LOOP(U_HSWISH, y[i] = x[i] * fmaxf(0.0f, fminf(1.0f, x[i] / 6.0f + 0.5f)))
        UNARY_LOOP(U_ERF, y[i] = idl__verf(x[i]))
    default:
        IDL_PAR_FOR(n > IDL_OMP_MIN, int64_t, i, 0, n, { y[i] = unary_f(s, x[i]); });
    }
}

static idl_status unary_backward(idl__op_ctx *c) {
    const unary_state *s = c->state;
    if (!c->din[0] || !c->dout[0]) return IDL_OK;
    if (s->kind >= U_CEIL) return IDL_OK; /* piecewise constant: zero gradient, nothing to add */
    const float *x = c->in[0]->data, *y = c->out[0]->data, *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    int64_t n = idl_tensor_numel(c->in[0]);
    if (idl__din_fresh(c, 0) && (s->kind == U_RELU || s->kind == U_CLIP)) {
        /* sole contributor: write instead of read-add-write (one memory stream less). dy is
         * loaded whatever the test gives: a load under the condition keeps gcc from vectorising
         * (it may not speculate a load), and the scalar branch mispredicts on ReLU patterns. */
        switch (s->kind) {
            UNARY_LOOP(U_RELU, const float g = dy[i]; dx[i] = y[i] > 0 ? g : 0.0f)
            UNARY_LOOP(U_CLIP, const float g = dy[i];
                       dx[i] = x[i] >= s_.alpha && x[i] <= s_.beta ? g : 0.0f)
        default:
            break;
        }
        return IDL_OK;
    }
    switch (s->kind) {
        UNARY_LOOP(U_ERF, dx[i] += dy[i] * 1.1283791670955126f * idl__vexp(-x[i] * x[i]))
        UNARY_LOOP(U_RELU, const float g = dy[i]; dx[i] += y[i] > 0 ? g : 0.0f)
        UNARY_LOOP(U_CLIP, const float g = dy[i];
                   dx[i] += x[i] >= s_.alpha && x[i] <= s_.beta ? g : 0.0f)
    default:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i] * unary_df(s, x[i], y[i]);
    }
    return IDL_OK;
}

/* What unary_backward reads (op.h bwd_reads): x where unary_df (or the Clip / Erf loops) uses x,
 * y where it uses y (the other operand it passes is a dead load). Relu reads y (y > 0 exactly
 * where x > 0, NaN included), so that a Conv or Add may write it over its own output. */
static unsigned unary_bwd_reads(const idl__op_ctx *c) {
    const unary_state *s = c->state;
    switch (s->kind) {
    case U_RELU:
    case U_SIGMOID: /* y (1 - y) */
    case U_TANH:    /* 1 - y^2 */
    case U_EXP:     /* y */
    case U_SQRT:    /* 0.5 / y */
    case U_RECIP:   /* -y^2 */
    case U_TAN:     /* 1 + y^2 */
        return IDL__BWD_OUT(0);
    case U_ELU:  /* x > 0 ? 1 : y + alpha */
    case U_SELU: /* x > 0 ? gamma : y + gamma alpha */
        return IDL__BWD_IN(0) | IDL__BWD_OUT(0);
    case U_NEG: /* -1 */
    case U_CEIL:
    case U_FLOOR:
    case U_ROUND:
    case U_SIGN: /* piecewise constant: nothing is added */
        return 0;
    default: /* LeakyRelu, HardSigmoid, HardSwish, Softplus, Erf, Log, Abs, Clip, Celu,
              * Softsign, ThresholdedRelu, Acos, Asin, Atan, Cosh, Sinh: x */
        return IDL__BWD_IN(0);
    }
}

#define SIMPLE_UNARY(stem, Name, KIND)                  \
    static idl_status stem##_prepare(idl__op_ctx *c) {  \
        return unary_prepare(c, KIND, 0.0f, 0.0f);      \
    }                                                   \
    const idl__op_def IDL__OP(stem) = { Name,           \
                                        1,              \
                                        1,              \
                                        1,              \
                                        1,              \
                                        stem##_prepare, \
                                        unary_forward,  \
                                        unary_backward, \
                                        free_state,     \
                                        IDL__OP_LAYOUT, \
                                        unary_bwd_reads };

static idl_status relu_prepare(idl__op_ctx *c) {
    return unary_prepare(c, U_RELU, 0.0f, 0.0f);
}
const idl__op_def IDL__OP(relu) = { "Relu",
                                    1,
                                    1,
                                    1,
                                    1,
                                    relu_prepare,
                                    unary_forward,
                                    unary_backward,
                                    free_state,
                                    IDL__OP_BWD_WRITES_FRESH | IDL__OP_LAYOUT | IDL__OP_BWD_INPLACE,
                                    unary_bwd_reads };
SIMPLE_UNARY(sigmoid, "Sigmoid", U_SIGMOID)
SIMPLE_UNARY(hardswish, "HardSwish", U_HSWISH)
SIMPLE_UNARY(tanh, "Tanh", U_TANH)
SIMPLE_UNARY(softplus, "Softplus", U_SOFTPLUS)
SIMPLE_UNARY(erf, "Erf", U_ERF)
SIMPLE_UNARY(exp, "Exp", U_EXP)
SIMPLE_UNARY(log, "Log", U_LOG)
SIMPLE_UNARY(sqrt, "Sqrt", U_SQRT)
SIMPLE_UNARY(reciprocal, "Reciprocal", U_RECIP)
SIMPLE_UNARY(softsign, "Softsign", U_SOFTSIGN)
SIMPLE_UNARY(acos, "Acos", U_ACOS)
SIMPLE_UNARY(asin, "Asin", U_ASIN)
SIMPLE_UNARY(atan, "Atan", U_ATAN)
SIMPLE_UNARY(cosh, "Cosh", U_COSH)
SIMPLE_UNARY(sinh, "Sinh", U_SINH)
SIMPLE_UNARY(tan, "Tan", U_TAN)
SIMPLE_UNARY(ceil, "Ceil", U_CEIL)
SIMPLE_UNARY(floor, "Floor", U_FLOOR)
SIMPLE_UNARY(round, "Round", U_ROUND)
SIMPLE_UNARY(sign, "Sign", U_SIGN)

static idl_status selu_prepare(idl__op_ctx *c) {
    return unary_prepare(c, U_SELU, idl__attr_float(c->node, "alpha", 1.67326319217681884765625f),
                         idl__attr_float(c->node, "gamma", 1.05070102214813232421875f));
}
const idl__op_def IDL__OP(selu) = { "Selu",
                                    1,
                                    1,
                                    1,
                                    1,
                                    selu_prepare,
                                    unary_forward,
                                    unary_backward,
                                    free_state,
                                    IDL__OP_LAYOUT,
                                    unary_bwd_reads };

static idl_status celu_prepare(idl__op_ctx *c) {
    float alpha = idl__attr_float(c->node, "alpha", 1.0f);
    if (alpha == 0.0f) return idl__error(IDL_ERR_INVALID_ARG, "Celu alpha must be nonzero");
    return unary_prepare(c, U_CELU, alpha, 0.0f);
}
const idl__op_def IDL__OP(celu) = { "Celu",
                                    1,
                                    1,
                                    1,
                                    1,
                                    celu_prepare,
                                    unary_forward,
                                    unary_backward,
                                    free_state,
                                    IDL__OP_LAYOUT,
                                    unary_bwd_reads };

static idl_status thresholdedrelu_prepare(idl__op_ctx *c) {
    return unary_prepare(c, U_THRELU, idl__attr_float(c->node, "alpha", 1.0f), 0.0f);
}
const idl__op_def IDL__OP(thresholdedrelu) = { "ThresholdedRelu",
                                               1,
                                               1,
                                               1,
                                               1,
                                               thresholdedrelu_prepare,
                                               unary_forward,
                                               unary_backward,
                                               free_state,
                                               IDL__OP_LAYOUT,
                                               unary_bwd_reads };

static idl_status leakyrelu_prepare(idl__op_ctx *c) {
    return unary_prepare(c, U_LEAKY, idl__attr_float(c->node, "alpha", 0.01f), 0.0f);
}
const idl__op_def IDL__OP(leakyrelu) = { "LeakyRelu",
                                         1,
                                         1,
                                         1,
                                         1,
                                         leakyrelu_prepare,
                                         unary_forward,
                                         unary_backward,
                                         free_state,
                                         IDL__OP_LAYOUT,
                                         unary_bwd_reads };

static idl_status elu_prepare(idl__op_ctx *c) {
    return unary_prepare(c, U_ELU, idl__attr_float(c->node, "alpha", 1.0f), 0.0f);
}
const idl__op_def IDL__OP(elu) = { "Elu",
                                   1,
                                   1,
                                   1,
                                   1,
                                   elu_prepare,
                                   unary_forward,
                                   unary_backward,
                                   free_state,
                                   IDL__OP_LAYOUT,
                                   unary_bwd_reads };

static idl_status hardsigmoid_prepare(idl__op_ctx *c) {
    return unary_prepare(c, U_HSIGMOID, idl__attr_float(c->node, "alpha", 0.2f),
                         idl__attr_float(c->node, "beta", 0.5f));
}
const idl__op_def IDL__OP(hardsigmoid) = { "HardSigmoid",
                                           1,
                                           1,
                                           1,
                                           1,
                                           hardsigmoid_prepare,
                                           unary_forward,
                                           unary_backward,
                                           free_state,
                                           IDL__OP_LAYOUT,
                                           unary_bwd_reads };

/* Clip: bounds are attributes before opset 11, optional inputs 1 and 2 from opset 11 (which must be
 * known at plan time). */
static idl_status clip_prepare(idl__op_ctx *c) {
    float lo = -INFINITY, hi = INFINITY;
    if (c->opset < 11) {
        lo = idl__attr_float(c->node, "min", -INFINITY);
        hi = idl__attr_float(c->node, "max", INFINITY);
    } else {
        for (int k = 1; k < c->n_in && k < 3; k++) {
            if (!c->in[k]) continue;
            idl_status st = idl__need_const(c, k);
            if (st) return st;
            if (c->in[k]->dtype != IDL_DT_F32 || idl_tensor_numel(c->in[k]) != 1)
                return idl__error(IDL_ERR_INVALID_ARG, "Clip bound %d must be a float32 scalar", k);
            float v = *(const float *)c->in[k]->data;
            if (k == 1)
                lo = v;
            else
                hi = v;
        }
    }
    return unary_prepare(c, U_CLIP, lo, hi);
}
const idl__op_def IDL__OP(clip) = { "Clip",
                                    1,
                                    3,
                                    1,
                                    1,
                                    clip_prepare,
                                    unary_forward,
                                    unary_backward,
                                    free_state,
                                    IDL__OP_BWD_WRITES_FRESH | IDL__OP_LAYOUT | IDL__OP_BWD_INPLACE,
                                    unary_bwd_reads };

/* Neg and Abs also run on integers (shape arithmetic); gradients only for float32. */
static idl_status signed_prepare(idl__op_ctx *c, unary_kind kind) {
    if (c->in[0]->dtype == IDL_DT_I64 || c->in[0]->dtype == IDL_DT_I32) {
        unary_state *s = idl__calloc(1, sizeof *s);
        if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
        s->kind = kind;
        c->state = s;
        idl__set_out(c->out[0], c->in[0]->dtype, c->in[0]->ndim, c->in[0]->shape);
        return IDL_OK;
    }
    return unary_prepare(c, kind, 0, 0);
}
static void signed_forward(idl__op_ctx *c) {
    const unary_state *s = c->state;
    int64_t n = idl_tensor_numel(c->in[0]);
    if (c->in[0]->dtype == IDL_DT_I64) {
        const int64_t *x = c->in[0]->data;
        int64_t *y = c->out[0]->data;
        for (int64_t i = 0; i < n; i++)
            y[i] = s->kind == U_NEG ? -x[i] : (x[i] < 0 ? -x[i] : x[i]);
    } else if (c->in[0]->dtype == IDL_DT_I32) {
        const int32_t *x = c->in[0]->data;
        int32_t *y = c->out[0]->data;
        for (int64_t i = 0; i < n; i++)
            y[i] = s->kind == U_NEG ? -x[i] : (x[i] < 0 ? -x[i] : x[i]);
    } else {
        unary_forward(c);
    }
}
static idl_status neg_prepare(idl__op_ctx *c) {
    return signed_prepare(c, U_NEG);
}
static idl_status abs_prepare(idl__op_ctx *c) {
    return signed_prepare(c, U_ABS);
}
const idl__op_def IDL__OP(neg) = {
    "Neg", 1, 1, 1, 1, neg_prepare, signed_forward, unary_backward, free_state, 0, unary_bwd_reads
};
const idl__op_def IDL__OP(abs) = {
    "Abs", 1, 1, 1, 1, abs_prepare, signed_forward, unary_backward, free_state, 0, unary_bwd_reads
};

/* ---- Identity, Dropout (inference: y = x, mask all true) ---- */
static idl_status copy_prepare(idl__op_ctx *c) {
    const idl_tensor *x = c->in[0];
    if (!x) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    idl__set_out(c->out[0], x->dtype, x->ndim, x->shape);
    return IDL_OK;
}
static void copy_forward(idl__op_ctx *c) {
    size_t b = idl__tensor_bytes(c->in[0]);
    if (b) memcpy(c->out[0]->data, c->in[0]->data, b);
}
static idl_status copy_backward(idl__op_ctx *c) {
    if (!c->din[0] || !c->dout[0]) return IDL_OK;
    const float *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    int64_t n = idl_tensor_numel(c->in[0]);
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i];
    return IDL_OK;
}
const idl__op_def IDL__OP(identity) = {
    "Identity", 1, 1, 1, 1, copy_prepare, copy_forward, copy_backward, NULL, 0, idl__bwd_reads_none
};

static idl_status dropout_prepare(idl__op_ctx *c) {
    if (c->n_in >= 3 && c->in[2]) {
        idl_status st = idl__need_const(c, 2);
        if (st) return st;
        if (idl__get_i64(c->in[2], 0))
            return idl__error(IDL_ERR_UNSUPPORTED,
                              "Dropout in training mode (random masks) is not supported");
    }
    if (c->opset < 7 && idl__attr_int(c->node, "is_test", 1) == 0)
        return idl__error(IDL_ERR_UNSUPPORTED, "Dropout with is_test=0 is not supported");
    idl_status st = copy_prepare(c);
    if (st) return st;
    if (c->n_out > 1 && c->out[1])
        idl__set_out(c->out[1], IDL_DT_BOOL, c->in[0]->ndim, c->in[0]->shape);
    return IDL_OK;
}
static void dropout_forward(idl__op_ctx *c) {
    copy_forward(c);
    if (c->n_out > 1 && c->out[1]) memset(c->out[1]->data, 1, idl__tensor_bytes(c->out[1]));
}
const idl__op_def IDL__OP(dropout) = {
    "Dropout",          1, 3, 1, 2, dropout_prepare, dropout_forward, copy_backward, NULL, 0,
    idl__bwd_reads_none
};

/* ---- Not (bool) ---- */
static idl_status not_prepare(idl__op_ctx *c) {
    if (c->in[0]->dtype != IDL_DT_BOOL)
        return idl__error(IDL_ERR_INVALID_ARG, "Not needs a bool input");
    idl__set_out(c->out[0], IDL_DT_BOOL, c->in[0]->ndim, c->in[0]->shape);
    return IDL_OK;
}
static void not_forward(idl__op_ctx *c) {
    const uint8_t *x = c->in[0]->data;
    uint8_t *y = c->out[0]->data;
    int64_t n = idl_tensor_numel(c->in[0]);
    for (int64_t i = 0; i < n; i++)
        y[i] = !x[i];
}
const idl__op_def IDL__OP(not ) = { "Not", 1, 1, 1, 1, not_prepare, not_forward, NULL, NULL };

/* ---- PRelu: y = x > 0 ? x : slope * x, slope broadcast (unidirectionally) to x ---- */
typedef struct prelu_state {
    int64_t sstr[IDL_MAX_DIMS]; /* slope strides over x's shape (0 on broadcast axes) */
} prelu_state;

static idl_status prelu_prepare(idl__op_ctx *c) {
    idl_status st;
    if ((st = idl__need_f32(c, 0)) || (st = idl__need_f32(c, 1))) return st;
    const idl_tensor *x = c->in[0], *sl = c->in[1];
    int nd;
    int64_t shp[IDL_MAX_DIMS];
    /* ONNX allows a slope of shape (C) against (N,C,H,W) in old exporters: treat it as (C,1,1) */
    int64_t sshape[IDL_MAX_DIMS];
    int sn = sl->ndim;
    for (int i = 0; i < sn; i++)
        sshape[i] = sl->shape[i];
    if (sn == 1 && x->ndim > 2 && sl->shape[0] == x->shape[1] &&
        sl->shape[0] != x->shape[x->ndim - 1]) {
        sn = x->ndim - 1;
        sshape[0] = sl->shape[0];
        for (int i = 1; i < sn; i++)
            sshape[i] = 1;
    }
    if ((st = idl__broadcast_shape(x->ndim, x->shape, sn, sshape, &nd, shp))) return st;
    if (nd != x->ndim || idl__numel(nd, shp) != idl_tensor_numel(x))
        return idl__error(IDL_ERR_SHAPE, "slope does not broadcast to the input's shape");
    prelu_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    idl__broadcast_strides(sn, sshape, x->ndim, x->shape, s->sstr);
    c->state = s;
    idl__set_out(c->out[0], IDL_DT_F32, x->ndim, x->shape);
    return IDL_OK;
}

static inline int64_t bcast_index(int64_t i, int nd, const int64_t *shape, const int64_t *str) {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t q = i % shape[d];
        i /= shape[d];
        off += q * str[d];
    }
    return off;
}

static void prelu_forward(idl__op_ctx *c) {
    const prelu_state *s = c->state;
    const idl_tensor *xt = c->in[0];
    const float *x = xt->data, *a = c->in[1]->data;
    float *y = c->out[0]->data;
    int64_t n = idl_tensor_numel(xt);
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v > 0 ? v : a[bcast_index(i, xt->ndim, xt->shape, s->sstr)] * v;
    }
}

static idl_status prelu_backward(idl__op_ctx *c) {
    const prelu_state *s = c->state;
    if (!c->dout[0]) return IDL_OK;
    const idl_tensor *xt = c->in[0];
    const float *x = xt->data, *a = c->in[1]->data, *dy = c->dout[0]->data;
    int64_t n = idl_tensor_numel(xt);
    if (c->din[0]) {
        float *dx = c->din[0]->data;
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            dx[i] += x[i] > 0 ? dy[i] : a[bcast_index(i, xt->ndim, xt->shape, s->sstr)] * dy[i];
    }
    if (c->din[1]) { /* serial: fixed summation order */
        float *da = c->din[1]->data;
        for (int64_t i = 0; i < n; i++)
            if (x[i] <= 0) da[bcast_index(i, xt->ndim, xt->shape, s->sstr)] += dy[i] * x[i];
    }
    return IDL_OK;
}
/* PRelu's backward reads x for both gradients, and the slope for dx. */
static unsigned prelu_bwd_reads(const idl__op_ctx *c) {
    return IDL__BWD_IN(0) | (c->in_const[0] ? 0 : IDL__BWD_IN(1));
}
const idl__op_def IDL__OP(prelu) = {
    "PRelu",        2, 2, 1, 1, prelu_prepare, prelu_forward, prelu_backward, free_state, 0,
    prelu_bwd_reads
};
