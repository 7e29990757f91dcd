/* transformer.c — ops used by transformer models, forward and (where differentiable) backward:
 *   LayerNormalization  x: (d0..d_{a-1}, d_a..d_{r-1}) seen as (rows, D), D = prod(d_a..), axis a;
 *                       Scale / B broadcast to (d_a..d_{r-1}); optional Mean / InvStdDev outputs
 *                       have x's shape with the normalized axes set to 1 (rows elements).
 *                       Gradients for X, Scale, B (and through Mean / InvStdDev).
 *   Gelu                y = x Phi(x) (approximate "none": erf) or the tanh approximation; float32.
 *   Einsum              1 or 2 float32 operands (float64 forward only): any equation in explicit
 *                       ("ij,jk->ik") or implicit form, letters and "...", repeated letters
 *                       (diagonals), broadcasting of ellipsis axes of size 1. Two operands run as
 *                       batched sgemm: A (nb,M,K) x B (nb,K,N) -> Y (nb,M,N) where batch labels
 *                       are in A, B and Y, M labels in A and Y, N labels in B and Y, K labels in
 *                       A and B only, and labels of only one operand are summed out first.
 *                       Operands whose memory already is such a strided batch of matrices are
 *                       used in place, others are gathered into packed buffers.
 *                       Three or more operands are refused (IDL_ERR_UNSUPPORTED).
 *   Sin, Cos            float32, with gradients.
 *   CumSum              x (any shape) along `axis` (a plan-time constant), exclusive, reverse;
 *                       float32 (gradient), float64, int64, int32.
 *   Trilu               x (..., R, C): keeps the upper (j - i >= k) or lower (j - i <= k)
 *                       triangle, any element type; gradient masks (float32).
 *   And, Or, Xor        bool, multidirectional broadcasting.
 *   GreaterOrEqual, LessOrEqual   float32/float64/int64/int32/int8/uint8 -> bool, broadcasting.
 *   Mod                 fmod = 0 (sign of the divisor) or 1 (C fmod); int64/int32/int8/uint8,
 *                       float32/float64 (fmod 0 on floats is floored modulo, like numpy.mod).
 *   IsNaN, IsInf        float32/float64 -> bool (IsInf: detect_negative / detect_positive).
 *   Size                int64 scalar: number of elements (reads the shape only; folded at plan).
 * No gradients for the comparisons, logic, Mod, IsNaN, IsInf and Size. Reductions (LayerNorm
 * statistics and its Scale/B gradients, CumSum) run in a fixed order, independent of the thread
 * count. */
#include "ops/op.h"
#include "ops/vmath.h"

#include <math.h>
#include <string.h>

static void free_state(void *s) {
    idl__free(s);
}

/* ==== element-wise helpers ============================================================== */

/* Two operands broadcast to an output: rows of `inner` elements with per-operand strides. */
typedef struct bcast2 {
    int nd;                      /* >= 1 */
    int64_t shape[IDL_MAX_DIMS]; /* output shape (rank-0 output: (1)) */
    int64_t sa[IDL_MAX_DIMS], sb[IDL_MAX_DIMS];
    int64_t rows, inner;
} bcast2;

static idl_status bcast2_init(bcast2 *it, const idl_tensor *a, const idl_tensor *b, int *ndo,
                              int64_t *oshape) {
    idl_status st = idl__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, ndo, oshape);
    if (st) {
        char b1[96], b2[96];
        return idl__error(IDL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                          idl__shape_str(a->ndim, a->shape, b1, sizeof b1),
                          idl__shape_str(b->ndim, b->shape, b2, sizeof b2));
    }
    memset(it, 0, sizeof *it);
    if (*ndo == 0) {
        it->nd = 1;
        it->shape[0] = 1;
    } else {
        it->nd = *ndo;
        for (int d = 0; d < *ndo; d++)
            it->shape[d] = oshape[d];
        idl__broadcast_strides(a->ndim, a->shape, *ndo, oshape, it->sa);
        idl__broadcast_strides(b->ndim, b->shape, *ndo, oshape, it->sb);
    }
    it->inner = it->shape[it->nd - 1];
    it->rows = 1;
    for (int d = 0; d < it->nd - 1; d++)
        it->rows *= it->shape[d];
    return IDL_OK;
}

static inline void bcast2_row(const bcast2 *it, int64_t r, int64_t *oa, int64_t *ob) {
    int64_t a = 0, b = 0;
    for (int d = it->nd - 2; d >= 0; d--) {
        int64_t q = r % it->shape[d];
        r /= it->shape[d];
        a += q * it->sa[d];
        b += q * it->sb[d];
    }
    *oa = a;
    *ob = b;
}

typedef enum {
    B_AND,
    B_OR,
    B_XOR,
    B_GE,
    B_LE,
    B_MOD,
} bin_kind;

typedef struct bin_state {
    bin_kind kind;
    idl_dtype dt; /* input type */
    bool fmod;
    bcast2 it;
} bin_state;

static inline int64_t imod(int64_t a, int64_t b, bool fm) {
    if (b == 0 || b == -1) return 0; /* x mod 0 is undefined; x mod -1 is 0 (no INT64_MIN trap) */
    int64_t r = a % b;
    if (!fm && r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
static inline double fmod_any(double a, double b, bool fm) {
    double r = fmod(a, b);
    if (!fm && r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

/* One output row: y[j] = f(a[j*sa], b[j*sb]). */
#define ROW_CMP(T, OP)                                   \
    do {                                                 \
        const T *a_ = pa, *b_ = pb;                      \
        uint8_t *y_ = py;                                \
        for (int64_t j = 0; j < n; j++)                  \
            y_[j] = (uint8_t)(a_[j * sa] OP b_[j * sb]); \
    } while (0)
#define ROW_IMOD(T)                                                             \
    do {                                                                        \
        const T *a_ = pa, *b_ = pb;                                             \
        T *y_ = py;                                                             \
        for (int64_t j = 0; j < n; j++)                                         \
            y_[j] = (T)imod((int64_t)a_[j * sa], (int64_t)b_[j * sb], s->fmod); \
    } while (0)

static void bin_row(const bin_state *s, const void *pa, const void *pb, void *py, int64_t sa,
                    int64_t sb, int64_t n) {
    switch (s->kind) {
    case B_AND: {
        const uint8_t *a = pa, *b = pb;
        uint8_t *y = py;
        for (int64_t j = 0; j < n; j++)
            y[j] = (uint8_t)((a[j * sa] != 0) & (b[j * sb] != 0));
        return;
    }
    case B_OR: {
        const uint8_t *a = pa, *b = pb;
        uint8_t *y = py;
        for (int64_t j = 0; j < n; j++)
            y[j] = (uint8_t)((a[j * sa] != 0) | (b[j * sb] != 0));
        return;
    }
    case B_XOR: {
        const uint8_t *a = pa, *b = pb;
        uint8_t *y = py;
        for (int64_t j = 0; j < n; j++)
            y[j] = (uint8_t)((a[j * sa] != 0) ^ (b[j * sb] != 0));
        return;
    }
    case B_GE:
    case B_LE: {
        bool ge = s->kind == B_GE;
        switch (s->dt) {
        case IDL_DT_F32:
            if (ge)
                ROW_CMP(float, >=);
            else
                ROW_CMP(float, <=);
            return;
        case IDL_DT_F64:
            if (ge)
                ROW_CMP(double, >=);
            else
                ROW_CMP(double, <=);
            return;
        case IDL_DT_I64:
            if (ge)
                ROW_CMP(int64_t, >=);
            else
                ROW_CMP(int64_t, <=);
            return;
        case IDL_DT_I32:
            if (ge)
                ROW_CMP(int32_t, >=);
            else
                ROW_CMP(int32_t, <=);
            return;
        case IDL_DT_I8:
            if (ge)
                ROW_CMP(int8_t, >=);
            else
                ROW_CMP(int8_t, <=);
            return;
        case IDL_DT_U8:
        case IDL_DT_BOOL:
            if (ge)
                ROW_CMP(uint8_t, >=);
            else
                ROW_CMP(uint8_t, <=);
            return;
        default:
            return;
        }
    }
    case B_MOD:
        switch (s->dt) {
        case IDL_DT_F32: {
            const float *a = pa, *b = pb;
            float *y = py;
            for (int64_t j = 0; j < n; j++)
                y[j] = s->fmod ? fmodf(a[j * sa], b[j * sb])
                               : (float)fmod_any((double)a[j * sa], (double)b[j * sb], false);
            return;
        }
        case IDL_DT_F64: {
            const double *a = pa, *b = pb;
            double *y = py;
            for (int64_t j = 0; j < n; j++)
                y[j] = fmod_any(a[j * sa], b[j * sb], s->fmod);
            return;
        }
        case IDL_DT_I64:
            ROW_IMOD(int64_t);
            return;
        case IDL_DT_I32:
            ROW_IMOD(int32_t);
            return;
        case IDL_DT_I8:
            ROW_IMOD(int8_t);
            return;
        case IDL_DT_U8: {
            const uint8_t *a = pa, *b = pb;
            uint8_t *y = py;
            for (int64_t j = 0; j < n; j++)
                y[j] = b[j * sb] ? (uint8_t)(a[j * sa] % b[j * sb]) : 0;
            return;
        }
        default:
            return;
        }
    }
}

static idl_status bin_prepare(idl__op_ctx *c, bin_kind kind) {
    const idl_tensor *a = c->in[0], *b = c->in[1];
    if (!a || !b) return idl__error(IDL_ERR_INVALID_ARG, "two inputs are required");
    if (a->dtype != b->dtype)
        return idl__error(IDL_ERR_INVALID_ARG, "inputs have different types %s and %s",
                          idl_dtype_name(a->dtype), idl_dtype_name(b->dtype));
    idl_dtype dt = a->dtype;
    bool ok;
    if (kind == B_AND || kind == B_OR || kind == B_XOR)
        ok = dt == IDL_DT_BOOL;
    else if (kind == B_MOD)
        ok = dt == IDL_DT_F32 || dt == IDL_DT_F64 || dt == IDL_DT_I64 || dt == IDL_DT_I32 ||
             dt == IDL_DT_I8 || dt == IDL_DT_U8;
    else
        ok = dt == IDL_DT_F32 || dt == IDL_DT_F64 || dt == IDL_DT_I64 || dt == IDL_DT_I32 ||
             dt == IDL_DT_I8 || dt == IDL_DT_U8;
    if (!ok)
        return idl__error(kind <= B_XOR ? IDL_ERR_INVALID_ARG : IDL_ERR_UNSUPPORTED,
                          "input type %s is not supported%s", idl_dtype_name(dt),
                          kind <= B_XOR ? " (logical ops take bool)" : "");
    bin_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->kind = kind;
    s->dt = dt;
    s->fmod = kind == B_MOD && idl__attr_int(c->node, "fmod", 0) != 0;
    int nd;
    int64_t oshape[IDL_MAX_DIMS];
    idl_status st = bcast2_init(&s->it, a, b, &nd, oshape);
    if (st) return st;
    idl__set_out(c->out[0], kind == B_MOD ? dt : IDL_DT_BOOL, nd, oshape);
    return IDL_OK;
}

static void bin_forward(idl__op_ctx *c) {
    const bin_state *s = c->state;
    const bcast2 *it = &s->it;
    size_t ea = idl_dtype_size(s->dt), ey = idl_dtype_size(c->out[0]->dtype);
    const char *A = c->in[0]->data, *B = c->in[1]->data;
    char *Y = c->out[0]->data;
    int64_t sa = it->sa[it->nd - 1], sb = it->sb[it->nd - 1];
    if (it->rows * it->inner == 0) return;
#pragma omp parallel for if (it->rows * it->inner > IDL_OMP_MIN) schedule(static)
    for (int64_t r = 0; r < it->rows; r++) {
        int64_t oa, ob;
        bcast2_row(it, r, &oa, &ob);
        bin_row(s, A + (size_t)oa * ea, B + (size_t)ob * ea, Y + (size_t)(r * it->inner) * ey, sa,
                sb, it->inner);
    }
}

#define BIN_OP(stem, Name, KIND)                                                         \
    static idl_status stem##_prepare(idl__op_ctx *c) {                                   \
        return bin_prepare(c, KIND);                                                     \
    }                                                                                    \
    const idl__op_def IDL__OP(stem) = { Name,           2,           2,    1,         1, \
                                        stem##_prepare, bin_forward, NULL, free_state };

BIN_OP(and, "And", B_AND)
BIN_OP(or, "Or", B_OR)
BIN_OP(xor, "Xor", B_XOR)
BIN_OP(greaterorequal, "GreaterOrEqual", B_GE)
BIN_OP(lessorequal, "LessOrEqual", B_LE)
BIN_OP(mod, "Mod", B_MOD)

/* ---- IsNaN, IsInf ---- */
typedef struct isx_state {
    bool inf, neg, pos;
} isx_state;

static idl_status isx_prepare(idl__op_ctx *c, bool inf) {
    const idl_tensor *x = c->in[0];
    if (x->dtype != IDL_DT_F32 && x->dtype != IDL_DT_F64)
        return idl__error(IDL_ERR_UNSUPPORTED, "input type %s is not supported (float32, float64)",
                          idl_dtype_name(x->dtype));
    isx_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->inf = inf;
    s->neg = idl__attr_int(c->node, "detect_negative", 1) != 0;
    s->pos = idl__attr_int(c->node, "detect_positive", 1) != 0;
    idl__set_out(c->out[0], IDL_DT_BOOL, x->ndim, x->shape);
    return IDL_OK;
}
static void isx_forward(idl__op_ctx *c) {
    const isx_state *s = c->state;
    const idl_tensor *x = c->in[0];
    uint8_t *y = c->out[0]->data;
    int64_t n = idl_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double v = x->dtype == IDL_DT_F32 ? (double)((const float *)x->data)[i]
                                          : ((const double *)x->data)[i];
        if (!s->inf)
            y[i] = isnan(v) != 0;
        else
            y[i] = isinf(v) && ((v > 0 && s->pos) || (v < 0 && s->neg));
    }
}
static idl_status isnan_prepare(idl__op_ctx *c) {
    return isx_prepare(c, false);
}
static idl_status isinf_prepare(idl__op_ctx *c) {
    return isx_prepare(c, true);
}
const idl__op_def IDL__OP(isnan) = { "IsNaN",       1,           1,    1,         1,
                                     isnan_prepare, isx_forward, NULL, free_state };
const idl__op_def IDL__OP(isinf) = { "IsInf",       1,           1,    1,         1,
                                     isinf_prepare, isx_forward, NULL, free_state };

/* ---- Size: int64 scalar, from the shape only ---- */
static idl_status size_prepare(idl__op_ctx *c) {
    if (!c->in[0]) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    idl__set_out(c->out[0], IDL_DT_I64, 0, NULL);
    return IDL_OK;
}
static void size_forward(idl__op_ctx *c) {
    *(int64_t *)c->out[0]->data = idl_tensor_numel(c->in[0]);
}
const idl__op_def IDL__OP(size) = {
    "Size", 1, 1, 1, 1, size_prepare, size_forward, NULL, NULL, IDL__OP_SHAPE_ONLY
};

/* ---- Sin, Cos, Gelu (float32, with gradients) ---- */
typedef enum { F_SIN, F_COS, F_GELU_ERF, F_GELU_TANH } fn_kind;
typedef struct fn_state {
    fn_kind kind;
} fn_state;

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

static idl_status fn_prepare(idl__op_ctx *c, fn_kind kind) {
    idl_status st = idl__need_f32(c, 0);
    if (st) return st;
    fn_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->kind = kind;
    idl__set_out(c->out[0], IDL_DT_F32, c->in[0]->ndim, c->in[0]->shape);
    return IDL_OK;
}
static void fn_forward(idl__op_ctx *c) {
    const fn_state *s = c->state;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t n = idl_tensor_numel(c->in[0]);
    switch (s->kind) {
    case F_SIN:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = sinf(x[i]);
        break;
    case F_COS:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = cosf(x[i]);
        break;
    case F_GELU_ERF:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + idl__verf(x[i] * 0.7071067811865476f));
        break;
    case F_GELU_TANH:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(GELU_C * (v + GELU_A * v * v * v)));
        }
        break;
    }
}
static idl_status fn_backward(idl__op_ctx *c) {
    const fn_state *s = c->state;
    if (!c->din[0] || !c->dout[0]) return IDL_OK;
    const float *x = c->in[0]->data, *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    int64_t n = idl_tensor_numel(c->in[0]);
    switch (s->kind) {
    case F_SIN:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i] * cosf(x[i]);
        break;
    case F_COS:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            dx[i] -= dy[i] * sinf(x[i]);
        break;
    case F_GELU_ERF: /* Phi(x) + x phi(x) */
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            float d = 0.5f * (1.0f + idl__verf(v * 0.7071067811865476f)) +
                      v * 0.3989422804014327f * idl__vexp(-0.5f * v * v);
            dx[i] += dy[i] * d;
        }
        break;
    case F_GELU_TANH:
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            float t = tanhf(GELU_C * (v + GELU_A * v * v * v));
            float d = 0.5f * (1.0f + t) +
                      0.5f * v * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * v * v);
            dx[i] += dy[i] * d;
        }
        break;
    }
    return IDL_OK;
}
static idl_status sin_prepare(idl__op_ctx *c) {
    return fn_prepare(c, F_SIN);
}
static idl_status cos_prepare(idl__op_ctx *c) {
    return fn_prepare(c, F_COS);
}
static idl_status gelu_prepare(idl__op_ctx *c) {
    const char *ap = idl__attr_str(c->node, "approximate", "none");
    fn_kind k;
    if (!strcmp(ap, "none"))
        k = F_GELU_ERF;
    else if (!strcmp(ap, "tanh"))
        k = F_GELU_TANH;
    else
        return idl__error(IDL_ERR_INVALID_ARG, "approximate='%s' (expected 'none' or 'tanh')", ap);
    return fn_prepare(c, k);
}
/* fn_backward reads x for every kind. */
const idl__op_def IDL__OP(sin) = {
    "Sin", 1, 1, 1, 1, sin_prepare, fn_forward, fn_backward, free_state, 0, idl__bwd_reads_in0
};
const idl__op_def IDL__OP(cos) = {
    "Cos", 1, 1, 1, 1, cos_prepare, fn_forward, fn_backward, free_state, 0, idl__bwd_reads_in0
};
const idl__op_def IDL__OP(gelu) = {
    "Gelu", 1, 1, 1, 1, gelu_prepare, fn_forward, fn_backward, free_state, 0, idl__bwd_reads_in0
};

/* ==== CumSum ============================================================================ */
/* x viewed as (outer, len, inner) around `axis`; each (outer, inner) line is scanned. */
typedef struct cumsum_state {
    int64_t outer, len, inner;
    bool exclusive, reverse;
} cumsum_state;

static idl_status cumsum_prepare(idl__op_ctx *c) {
    const idl_tensor *x = c->in[0];
    idl_dtype dt = x->dtype;
    if (dt != IDL_DT_F32 && dt != IDL_DT_F64 && dt != IDL_DT_I64 && dt != IDL_DT_I32)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "input type %s is not supported (float32, float64, int64, int32)",
                          idl_dtype_name(dt));
    int64_t ax[1];
    int na;
    idl_status st = idl__const_ints(c, 1, ax, 1, &na);
    if (st) return st;
    if (na != 1) return idl__error(IDL_ERR_INVALID_ARG, "axis must hold one value");
    int axis;
    if (x->ndim == 0) return idl__error(IDL_ERR_INVALID_ARG, "CumSum needs an input of rank >= 1");
    if ((st = idl__norm_axis(ax[0], x->ndim, &axis))) return st;
    cumsum_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->outer = idl__numel(axis, x->shape);
    s->len = x->shape[axis];
    s->inner = idl__numel(x->ndim - axis - 1, x->shape + axis + 1);
    s->exclusive = idl__attr_int(c->node, "exclusive", 0) != 0;
    s->reverse = idl__attr_int(c->node, "reverse", 0) != 0;
    idl__set_out(c->out[0], dt, x->ndim, x->shape);
    return IDL_OK;
}

/* y[t] = sum of x over the t's predecessors in scan order (and x[t] itself unless exclusive);
 * ADD: y[t] += instead of =. ACC is the running-sum type. */
#define CUMSUM_LINES(T, ACC, ADD, X, Y, REV)                                                       \
    do {                                                                                           \
        const int64_t nl_ = s->outer * s->inner, len_ = s->len, in_ = s->inner;                    \
        _Pragma(                                                                                   \
            "omp parallel for if (nl_ * len_ > IDL_OMP_MIN) schedule(static)") for (int64_t l = 0; \
                                                                                    l < nl_;       \
                                                                                    l++) {         \
            const int64_t base = (l / in_) * len_ * in_ + l % in_;                                 \
            ACC acc = 0;                                                                           \
            for (int64_t q = 0; q < len_; q++) {                                                   \
                int64_t t = (REV) ? len_ - 1 - q : q;                                              \
                int64_t o = base + t * in_;                                                        \
                T v = (X)[o];                                                                      \
                if (!s->exclusive) acc += (ACC)v;                                                  \
                if (ADD)                                                                           \
                    (Y)[o] += (T)acc;                                                              \
                else                                                                               \
                    (Y)[o] = (T)acc;                                                               \
                if (s->exclusive) acc += (ACC)v;                                                   \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static void cumsum_forward(idl__op_ctx *c) {
    const cumsum_state *s = c->state;
    const void *x = c->in[0]->data;
    void *y = c->out[0]->data;
    switch (c->in[0]->dtype) {
    case IDL_DT_F32:
        CUMSUM_LINES(float, float, 0, (const float *)x, (float *)y, s->reverse);
        break;
    case IDL_DT_F64:
        CUMSUM_LINES(double, double, 0, (const double *)x, (double *)y, s->reverse);
        break;
    case IDL_DT_I64:
        CUMSUM_LINES(int64_t, int64_t, 0, (const int64_t *)x, (int64_t *)y, s->reverse);
        break;
    case IDL_DT_I32:
        CUMSUM_LINES(int32_t, int64_t, 0, (const int32_t *)x, (int32_t *)y, s->reverse);
        break;
    default:
        break;
    }
}

/* The VJP of a cumulative sum is the cumulative sum of dy in the opposite direction (with the
 * same exclusivity). */
static idl_status cumsum_backward(idl__op_ctx *c) {
    const cumsum_state *s = c->state;
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != IDL_DT_F32) return IDL_OK;
    const float *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    CUMSUM_LINES(float, double, 1, dy, dx, !s->reverse);
    return IDL_OK;
}
const idl__op_def IDL__OP(cumsum) = {
    "CumSum",           2, 2, 1, 1, cumsum_prepare, cumsum_forward, cumsum_backward, free_state, 0,
    idl__bwd_reads_none
};

/* ==== Trilu ============================================================================= */
/* x: (..., R, C); rows of C elements keep the column range [lo(i), hi(i)). */
typedef struct trilu_state {
    int64_t mats, R, C, k;
    bool upper;
    size_t esz;
} trilu_state;

static idl_status trilu_prepare(idl__op_ctx *c) {
    const idl_tensor *x = c->in[0];
    if (x->ndim < 2) return idl__error(IDL_ERR_INVALID_ARG, "Trilu needs an input of rank >= 2");
    size_t esz = idl_dtype_size(x->dtype);
    if (!esz)
        return idl__error(IDL_ERR_UNSUPPORTED, "input type %s is not supported",
                          idl_dtype_name(x->dtype));
    int64_t k = 0;
    if (c->n_in > 1 && c->in[1]) {
        idl_status st = idl__need_const(c, 1);
        if (st) return st;
        if ((c->in[1]->dtype != IDL_DT_I64 && c->in[1]->dtype != IDL_DT_I32) ||
            idl_tensor_numel(c->in[1]) != 1)
            return idl__error(IDL_ERR_INVALID_ARG, "k must be an int64 scalar");
        k = idl__get_i64(c->in[1], 0);
    }
    trilu_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->R = x->shape[x->ndim - 2];
    s->C = x->shape[x->ndim - 1];
    s->mats = idl__numel(x->ndim - 2, x->shape);
    int64_t lim = s->R + s->C + 1; /* clamp so that i + k cannot overflow */
    s->k = k > lim ? lim : k < -lim ? -lim : k;
    s->upper = idl__attr_int(c->node, "upper", 1) != 0;
    s->esz = esz;
    idl__set_out(c->out[0], x->dtype, x->ndim, x->shape);
    return IDL_OK;
}

/* Kept columns [*lo, *hi) of row i. */
static inline void trilu_range(const trilu_state *s, int64_t i, int64_t *lo, int64_t *hi) {
    int64_t a, b;
    if (s->upper) { /* j - i >= k */
        a = i + s->k;
        b = s->C;
    } else { /* j - i <= k */
        a = 0;
        b = i + s->k + 1;
    }
    a = a < 0 ? 0 : a > s->C ? s->C : a;
    b = b < 0 ? 0 : b > s->C ? s->C : b;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

static void trilu_forward(idl__op_ctx *c) {
    const trilu_state *s = c->state;
    const char *x = c->in[0]->data;
    char *y = c->out[0]->data;
    const int64_t rows = s->mats * s->R, C = s->C;
    const size_t e = s->esz;
#pragma omp parallel for if (rows * C > IDL_OMP_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t lo, hi;
        trilu_range(s, r % s->R, &lo, &hi);
        const char *xr = x + (size_t)(r * C) * e;
        char *yr = y + (size_t)(r * C) * e;
        if (lo > 0) memset(yr, 0, (size_t)lo * e);
        if (hi > lo) memcpy(yr + (size_t)lo * e, xr + (size_t)lo * e, (size_t)(hi - lo) * e);
        if (C > hi) memset(yr + (size_t)hi * e, 0, (size_t)(C - hi) * e);
    }
}

static idl_status trilu_backward(idl__op_ctx *c) {
    const trilu_state *s = c->state;
    if (!c->din[0] || !c->dout[0]) return IDL_OK;
    const float *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    const int64_t rows = s->mats * s->R, C = s->C;
#pragma omp parallel for if (rows * C > IDL_OMP_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t lo, hi;
        trilu_range(s, r % s->R, &lo, &hi);
        for (int64_t j = lo; j < hi; j++)
            dx[r * C + j] += dy[r * C + j];
    }
    return IDL_OK;
}
const idl__op_def IDL__OP(trilu) = { "Trilu",
                                     1,
                                     2,
                                     1,
                                     1,
                                     trilu_prepare,
                                     trilu_forward,
                                     trilu_backward,
                                     free_state,
                                     0,
                                     idl__bwd_reads_none };

/* ==== LayerNormalization ================================================================ */
/* x: (rows, D) around `axis`; scale, bias: D values. A Scale/B that only broadcasts to the
 * normalized block is expanded into scf/bif (D) at each forward, through sidx/bidx (position in
 * the block -> element of Scale/B); NULL when Scale/B hold the D elements in order. */
typedef struct ln_state {
    int64_t rows, D;
    float eps;
    int64_t *sidx, *bidx;
    float *scf, *bif;
    float *mean, *inv;   /* (rows) statistics of the last forward */
    double *colS, *colB; /* (D) column sums for the Scale/B gradients */
} ln_state;

static void ln_free(void *p) {
    ln_state *s = p;
    if (!s) return;
    idl__free(s->sidx);
    idl__free(s->bidx);
    idl__free(s->scf);
    idl__free(s->bif);
    idl__free(s->mean);
    idl__free(s->inv);
    idl__free(s->colS);
    idl__free(s->colB);
    idl__free(s);
}

/* Checks that t broadcasts to the normalized shape ns (rank nn) and builds its index table
 * (*tab = NULL when t is exactly the normalized block). */
static idl_status ln_param(const idl_tensor *t, const char *what, int nn, const int64_t *ns,
                           int64_t **tab) {
    char b1[96], b2[96];
    int tr = t->ndim;
    const int64_t *tsh = t->shape;
    while (tr > nn && tsh[0] == 1) { /* leading 1s broadcast away */
        tsh++;
        tr--;
    }
    int nd;
    int64_t out[IDL_MAX_DIMS];
    bool ok = tr <= nn && !idl__broadcast_shape(nn, ns, tr, tsh, &nd, out) && nd == nn;
    for (int d = 0; ok && d < nn; d++)
        ok = out[d] == ns[d];
    if (!ok)
        return idl__error(IDL_ERR_SHAPE, "%s %s does not broadcast to the normalized shape %s",
                          what, idl__shape_str(t->ndim, t->shape, b1, sizeof b1),
                          idl__shape_str(nn, ns, b2, sizeof b2));
    int64_t D = idl__numel(nn, ns);
    *tab = NULL;
    if (idl_tensor_numel(t) == D) return IDL_OK; /* same elements in the same order */
    int64_t str[IDL_MAX_DIMS];
    idl__broadcast_strides(tr, tsh, nn, ns, str);
    *tab = idl__calloc((size_t)(D ? D : 1), sizeof(int64_t));
    if (!*tab) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < D; j++) {
        int64_t r = j, o = 0;
        for (int d = nn - 1; d >= 0; d--) {
            o += (r % ns[d]) * str[d];
            r /= ns[d];
        }
        (*tab)[j] = o;
    }
    return IDL_OK;
}

static idl_status ln_prepare(idl__op_ctx *c) {
    idl_status st;
    if ((st = idl__need_f32(c, 0)) || (st = idl__need_f32(c, 1))) return st;
    if (c->n_in > 2 && c->in[2] && (st = idl__need_f32(c, 2))) return st;
    const idl_tensor *x = c->in[0];
    if (x->ndim < 1) return idl__error(IDL_ERR_INVALID_ARG, "X must have rank >= 1");
    int64_t stash = idl__attr_int(c->node, "stash_type", 1);
    if (stash != 1)
        return idl__error(IDL_ERR_UNSUPPORTED, "stash_type %lld is not supported (only 1, float)",
                          (long long)stash);
    int axis;
    if ((st = idl__norm_axis(idl__attr_int(c->node, "axis", -1), x->ndim, &axis))) return st;
    ln_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->rows = idl__numel(axis, x->shape);
    s->D = idl__numel(x->ndim - axis, x->shape + axis);
    s->eps = idl__attr_float(c->node, "epsilon", 1e-5f);
    int nn = x->ndim - axis;
    if ((st = ln_param(c->in[1], "Scale", nn, x->shape + axis, &s->sidx))) return st;
    if (c->n_in > 2 && c->in[2] && (st = ln_param(c->in[2], "B", nn, x->shape + axis, &s->bidx)))
        return st;
    size_t nr = (size_t)(s->rows ? s->rows : 1), nd = (size_t)(s->D ? s->D : 1);
    s->mean = idl__calloc(nr, sizeof(float));
    s->inv = idl__calloc(nr, sizeof(float));
    s->colS = idl__calloc(nd, sizeof(double));
    s->colB = idl__calloc(nd, sizeof(double));
    if (s->sidx) s->scf = idl__calloc(nd, sizeof(float));
    if (s->bidx) s->bif = idl__calloc(nd, sizeof(float));
    if (!s->mean || !s->inv || !s->colS || !s->colB || (s->sidx && !s->scf) || (s->bidx && !s->bif))
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    idl__set_out(c->out[0], IDL_DT_F32, x->ndim, x->shape);
    int64_t sshape[IDL_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        sshape[d] = d < axis ? x->shape[d] : 1;
    for (int k = 1; k < 3 && k < c->n_out; k++)
        if (c->out[k]) idl__set_out(c->out[k], IDL_DT_F32, x->ndim, sshape);
    return IDL_OK;
}

/* Sums in 8 interleaved double lanes, then the lanes in order: a fixed order that vectorizes. */
#define LANES 8
static double sum_f(const float *x, int64_t n) {
    double l[LANES] = { 0 };
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++)
            l[k] += (double)x[j + k];
    for (; j < n; j++)
        l[0] += (double)x[j];
    double t = 0;
    for (int k = 0; k < LANES; k++)
        t += l[k];
    return t;
}
/* sum (x - mu)^2 */
static double sumsq_dev(const float *x, double mu, int64_t n) {
    double l[LANES] = { 0 };
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) {
            double d = (double)x[j + k] - mu;
            l[k] += d * d;
        }
    for (; j < n; j++) {
        double d = (double)x[j] - mu;
        l[0] += d * d;
    }
    double t = 0;
    for (int k = 0; k < LANES; k++)
        t += l[k];
    return t;
}
/* *sg = sum g, *sgx = sum g xhat, with g = dy * w, xhat = (x - m) * iv */
static void sum_g(const float *dy, const float *w, const float *x, float m, float iv, int64_t n,
                  double *sg, double *sgx) {
    double a[LANES] = { 0 }, b[LANES] = { 0 };
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) {
            float g = dy[j + k] * w[j + k];
            a[k] += (double)g;
            b[k] += (double)(g * ((x[j + k] - m) * iv));
        }
    for (; j < n; j++) {
        float g = dy[j] * w[j];
        a[0] += (double)g;
        b[0] += (double)(g * ((x[j] - m) * iv));
    }
    double ta = 0, tb = 0;
    for (int k = 0; k < LANES; k++) {
        ta += a[k];
        tb += b[k];
    }
    *sg = ta;
    *sgx = tb;
}

static void ln_forward(idl__op_ctx *c) {
    ln_state *s = c->state;
    const float *x = c->in[0]->data, *sc = c->in[1]->data;
    const float *bi = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL;
    float *y = c->out[0]->data;
    float *om = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
    float *oi = c->n_out > 2 && c->out[2] ? c->out[2]->data : NULL;
    const int64_t rows = s->rows, D = s->D;
    if (D == 0) {
        for (int64_t r = 0; r < rows; r++) { /* empty rows: NaN statistics, as numpy gives */
            if (om) om[r] = NAN;
            if (oi) oi[r] = NAN;
        }
        return;
    }
    if (s->sidx) { /* expand a broadcast Scale / B over the normalized block */
        for (int64_t j = 0; j < D; j++)
            s->scf[j] = sc[s->sidx[j]];
        sc = s->scf;
    }
    if (bi && s->bidx) {
        for (int64_t j = 0; j < D; j++)
            s->bif[j] = bi[s->bidx[j]];
        bi = s->bif;
    }
#pragma omp parallel for if (rows * D > IDL_OMP_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        double mu = sum_f(xr, D) / (double)D;
        double var = sumsq_dev(xr, mu, D) / (double)D;
        float m = (float)mu, iv = (float)(1.0 / sqrt(var + (double)s->eps));
        s->mean[r] = m;
        s->inv[r] = iv;
        if (om) om[r] = m;
        if (oi) oi[r] = iv;
        if (bi)
            for (int64_t j = 0; j < D; j++)
                yr[j] = (xr[j] - m) * iv * sc[j] + bi[j];
        else
            for (int64_t j = 0; j < D; j++)
                yr[j] = (xr[j] - m) * iv * sc[j];
    }
}

#define LN_BLOCK 64 /* columns per work item of the Scale/B gradient */

static idl_status ln_backward(idl__op_ctx *c) {
    ln_state *s = c->state;
    const float *x = c->in[0]->data;
    const float *sc = s->sidx ? s->scf : c->in[1]->data; /* as expanded by the forward */
    const float *dy = c->dout[0] ? c->dout[0]->data : NULL;
    const float *dm = c->n_out > 1 && c->dout[1] ? c->dout[1]->data : NULL;
    const float *di = c->n_out > 2 && c->dout[2] ? c->dout[2]->data : NULL;
    float *dx = c->din[0] ? c->din[0]->data : NULL;
    float *ds = c->din[1] ? c->din[1]->data : NULL;
    float *db = c->n_in > 2 && c->din[2] ? c->din[2]->data : NULL;
    const int64_t rows = s->rows, D = s->D;
    const float *mean = s->mean, *inv = s->inv;
    if (D == 0 || rows == 0) return IDL_OK;
    if (dx) {
        const double invD = 1.0 / (double)D;
#pragma omp parallel for if (rows * D > IDL_OMP_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * D;
            float *dxr = dx + r * D;
            const float m = mean[r], iv = inv[r];
            if (dy) {
                /* dx = inv (g - mean(g) - xhat mean(g xhat)),  g = dy * scale */
                const float *dyr = dy + r * D;
                double sg, sgx;
                sum_g(dyr, sc, xr, m, iv, D, &sg, &sgx);
                const float mg = (float)(sg * invD), mgx = (float)(sgx * invD);
                for (int64_t j = 0; j < D; j++)
                    dxr[j] += iv * (dyr[j] * sc[j] - mg - (xr[j] - m) * iv * mgx);
            }
            /* through Mean (d/dx_j = 1/D) and InvStdDev (d/dx_j = -inv^3 (x_j - mean) / D) */
            if (dm || di) {
                const float a = dm ? (float)((double)dm[r] * invD) : 0.0f;
                const double iv3 = (double)iv * (double)iv * (double)iv;
                const float b = di ? (float)(-(double)di[r] * iv3 * invD) : 0.0f;
                for (int64_t j = 0; j < D; j++)
                    dxr[j] += a + b * (xr[j] - m);
            }
        }
    }
    if (dy && (ds || db)) {
        /* column sums over rows in increasing order, blocks of columns in parallel */
        const int64_t nblk = (D + LN_BLOCK - 1) / LN_BLOCK;
        double *colS = s->colS, *colB = s->colB;
#pragma omp parallel for if (rows * D > IDL_OMP_MIN) schedule(static)
        for (int64_t bk = 0; bk < nblk; bk++) {
            const int64_t j0 = bk * LN_BLOCK, j1 = IDL_MIN(D, j0 + LN_BLOCK);
            for (int64_t j = j0; j < j1; j++)
                colS[j] = colB[j] = 0;
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * D, *dyr = dy + r * D;
                const float m = mean[r], iv = inv[r];
                for (int64_t j = j0; j < j1; j++) {
                    colS[j] += (double)(dyr[j] * ((xr[j] - m) * iv));
                    colB[j] += (double)dyr[j];
                }
            }
        }
        if (ds)
            for (int64_t j = 0; j < D; j++)
                ds[s->sidx ? s->sidx[j] : j] += (float)colS[j];
        if (db)
            for (int64_t j = 0; j < D; j++)
                db[s->bidx ? s->bidx[j] : j] += (float)colB[j];
    }
    return IDL_OK;
}
/* What ln_backward reads: x (dx, and the Scale/B column sums, which run together whenever
 * either gradient is asked) and Scale for dx, unless it only broadcasts (then the copy the
 * forward expanded into the state). Mean and 1/stddev come from the state; B is never read. */
static unsigned ln_bwd_reads(const idl__op_ctx *c) {
    const ln_state *s = c->state;
    return IDL__BWD_IN(0) | (!s->sidx && !c->in_const[0] ? IDL__BWD_IN(1) : 0);
}
const idl__op_def IDL__OP(layernorm) = { "LayerNormalization", 2,          3,           1,       3,
                                         ln_prepare,           ln_forward, ln_backward, ln_free, 0,
                                         ln_bwd_reads };

/* ==== Einsum ============================================================================ */
/* Labels: 'A'..'Z' -> 0..25, 'a'..'z' -> 26..51 (ASCII order, used by the implicit output),
 * ellipsis axes -> 52 + i (i-th of the broadcast ellipsis axes, right-aligned). */
#define EL_ELL 52
#define EL_N   (EL_ELL + IDL_MAX_DIMS)

/* A tensor seen through label groups as (nb, R, C), summed over S: element (b, r, c, s) lives at
 * off[0][b] + off[1][r] + off[2][c] + off[3][s]. */
typedef struct lay {
    int64_t n[4];
    int64_t *off[4];
} lay;

/* A batch of matrices for sgemm: matrix b starts at boff[b] (or b * bstride when boff is NULL);
 * trans: stored as the transpose (row-major) of the logical matrix; ld: leading dimension. */
typedef struct mview {
    const int64_t *boff;
    int64_t bstride;
    bool trans;
    int64_t ld;
} mview;

typedef struct einsum_state {
    int nops;
    idl_dtype dt;
    /* one operand: (1, R, C) over S, written straight into Y */
    lay l1;
    bool inj1;
    /* two operands */
    int64_t nb, M, N, K;
    lay la, lb, ly;
    bool a_direct, b_direct, y_direct;
    bool a_inj, b_inj; /* distinct view positions are distinct elements (no broadcast) */
    mview va, vb, vy;
    bool par;
    void *bufA, *bufB, *bufY; /* packed (nb,M,K), (nb,K,N), (nb,M,N) where not direct */
    float *gA, *gB;           /* gradient scratch (lazily allocated) */
} einsum_state;

static void lay_free(lay *L) {
    for (int g = 0; g < 4; g++)
        idl__free(L->off[g]);
}

static void einsum_free(void *p) {
    einsum_state *s = p;
    if (!s) return;
    lay_free(&s->l1);
    lay_free(&s->la);
    lay_free(&s->lb);
    lay_free(&s->ly);
    idl__aligned_free(s->bufA);
    idl__aligned_free(s->bufB);
    idl__aligned_free(s->bufY);
    idl__aligned_free(s->gA);
    idl__aligned_free(s->gB);
    idl__free(s);
}

/* Builds the offset table of each group: grp[g][0..ng[g]) are labels, outermost first. */
static idl_status lay_build(lay *L, const int *const grp[4], const int ng[4], const int64_t *size,
                            const int64_t *stride) {
    for (int g = 0; g < 4; g++) {
        int64_t n = 1;
        for (int t = 0; t < ng[g]; t++)
            n *= size[grp[g][t]];
        L->n[g] = n;
        L->off[g] = idl__calloc((size_t)(n ? n : 1), sizeof(int64_t));
        if (!L->off[g]) return idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            int64_t r = i, o = 0;
            for (int t = ng[g] - 1; t >= 0; t--) {
                int64_t sz = size[grp[g][t]];
                o += (r % sz) * stride[grp[g][t]];
                r /= sz;
            }
            L->off[g][i] = o;
        }
    }
    return IDL_OK;
}

/* Whether group g of L is one strided axis; *step is its stride (1 for groups of size <= 1). */
static bool lay_affine(const lay *L, int g, int64_t *step) {
    int64_t n = L->n[g];
    if (n <= 1) {
        *step = 1;
        return true;
    }
    int64_t st = L->off[g][1] - L->off[g][0];
    for (int64_t i = 0; i < n; i++)
        if (L->off[g][i] != L->off[g][0] + i * st) return false;
    *step = st;
    return true;
}

/* Whether L (no summed labels) can be passed to sgemm in place as a batch of R x C matrices with
 * row stride rs and column stride cs (one of them 1, the other covering the matrix). */
static bool lay_direct(const lay *L, mview *v) {
    int64_t rs, cs, R = L->n[1], C = L->n[2];
    if (L->n[3] != 1 || !lay_affine(L, 1, &rs) || !lay_affine(L, 2, &cs)) return false;
    if (C <= 1) cs = 1;
    if (R <= 1) rs = cs == 1 ? IDL_MAX(C, 1) : 1;
    v->boff = L->off[0];
    v->bstride = 0;
    if (cs == 1 && rs >= IDL_MAX(C, 1)) {
        v->trans = false;
        v->ld = rs;
        return true;
    }
    if (rs == 1 && cs >= IDL_MAX(R, 1)) {
        v->trans = true;
        v->ld = cs;
        return true;
    }
    return false;
}

static mview mview_packed(int64_t R, int64_t C) {
    mview v = { NULL, R * C, false, IDL_MAX(C, 1) };
    return v;
}
static mview mview_t(mview v) {
    v.trans = !v.trans;
    return v;
}
static inline int64_t mview_off(const mview *v, int64_t b) {
    return v->boff ? v->boff[b] : b * v->bstride;
}

/* Y[b] = A[b] B[b] + beta Y[b] for b < nb, logical A (M,K), B (K,N), Y (M,N). par: batches in
 * parallel (only when every Y[b] is distinct memory). */
static void mm(int64_t nb, int64_t M, int64_t N, int64_t K, mview y, float *Y, mview a,
               const float *A, mview b, const float *B, float beta, bool par) {
    if (y.trans) { /* Y^T = B^T A^T */
        mview t = a;
        a = mview_t(b);
        b = mview_t(t);
        const float *tp = A;
        A = B;
        B = tp;
        int64_t tn = M;
        M = N;
        N = tn;
        y.trans = false;
    }
    if (M == 0 || N == 0) return;
#pragma omp parallel for if (par && nb > 1) schedule(static)
    for (int64_t t = 0; t < nb; t++)
        idl__sgemm(a.trans, b.trans, M, N, K, 1.0f, A + mview_off(&a, t), a.ld,
                   B + mview_off(&b, t), b.ld, beta, Y + mview_off(&y, t), y.ld);
}

/* dst (nb,R,C) contiguous = sum over S of src through L. */
#define DEF_PACK(NAME, T)                                                                         \
    static void NAME(const lay *L, const T *src, T *dst) {                                        \
        const int64_t R = L->n[1], C = L->n[2], S = L->n[3], rows = L->n[0] * R;                  \
        const int64_t *o0 = L->off[0], *o1 = L->off[1], *o2 = L->off[2], *o3 = L->off[3];         \
        _Pragma(                                                                                  \
            "omp parallel for if (rows * C * S > IDL_OMP_MIN) schedule(static)") for (int64_t w = \
                                                                                          0;      \
                                                                                      w < rows;   \
                                                                                      w++) {      \
            const int64_t base = o0[w / R] + o1[w % R];                                           \
            T *d = dst + w * C;                                                                   \
            if (S == 1) {                                                                         \
                for (int64_t j = 0; j < C; j++)                                                   \
                    d[j] = src[base + o2[j] + o3[0]];                                             \
            } else {                                                                              \
                for (int64_t j = 0; j < C; j++) {                                                 \
                    double acc = 0;                                                               \
                    for (int64_t q = 0; q < S; q++)                                               \
                        acc += (double)src[base + o2[j] + o3[q]];                                 \
                    d[j] = (T)acc;                                                                \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }
DEF_PACK(pack_f32, float)
DEF_PACK(pack_f64, double)

/* dst through L (every s) = (add ? dst + : ) g (nb,R,C); parallel only when L is injective. */
#define DEF_UNPACK(NAME, T)                                                                       \
    static void NAME(const lay *L, const T *g, T *dst, bool add, bool par) {                      \
        const int64_t R = L->n[1], C = L->n[2], S = L->n[3], rows = L->n[0] * R;                  \
        const int64_t *o0 = L->off[0], *o1 = L->off[1], *o2 = L->off[2], *o3 = L->off[3];         \
        _Pragma("omp parallel for if (par && rows * C * S > IDL_OMP_MIN) schedule(static)") for ( \
            int64_t w = 0; w < rows; w++) {                                                       \
            const int64_t base = o0[w / R] + o1[w % R];                                           \
            const T *gr = g + w * C;                                                              \
            for (int64_t j = 0; j < C; j++)                                                       \
                for (int64_t q = 0; q < S; q++) {                                                 \
                    T *p = dst + base + o2[j] + o3[q];                                            \
                    *p = add ? *p + gr[j] : gr[j];                                                \
                }                                                                                 \
        }                                                                                         \
    }
DEF_UNPACK(unpack_f32, float)
DEF_UNPACK(unpack_f64, double)

static inline int label_of(char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return 26 + (ch - 'a');
    return -1;
}

/* Parses one term ("ij", "...ij", "b...") into labels; *ell = position of "..." or -1. */
static idl_status parse_term(const char *t, size_t len, int *lab, int *n, int *ell) {
    *n = 0;
    *ell = -1;
    for (size_t i = 0; i < len;) {
        if (t[i] == '.') {
            if (i + 3 > len || t[i + 1] != '.' || t[i + 2] != '.' || *ell >= 0)
                return idl__error(IDL_ERR_INVALID_ARG, "malformed '...' in the equation");
            *ell = *n;
            i += 3;
            continue;
        }
        int l = label_of(t[i]);
        if (l < 0)
            return idl__error(IDL_ERR_INVALID_ARG, "character '%c' in the equation is not a letter",
                              t[i]);
        if (*n >= IDL_MAX_DIMS)
            return idl__error(IDL_ERR_UNSUPPORTED, "a term has more than %d subscripts",
                              IDL_MAX_DIMS);
        lab[(*n)++] = l;
        i++;
    }
    return IDL_OK;
}

static idl_status einsum_prepare(idl__op_ctx *c) {
    const char *eq0 = idl__attr_str(c->node, "equation", NULL);
    if (!eq0) return idl__error(IDL_ERR_INVALID_ARG, "attribute 'equation' is required");
    int nops = c->n_in;
    if (nops < 1 || nops > 2)
        return idl__error(IDL_ERR_UNSUPPORTED, "Einsum with %d operands is not supported (1 or 2)",
                          nops);
    for (int k = 0; k < nops; k++) {
        if (!c->in[k]) return idl__error(IDL_ERR_INVALID_ARG, "input %d is required", k);
        if (c->in[k]->dtype != IDL_DT_F32 && c->in[k]->dtype != IDL_DT_F64)
            return idl__error(IDL_ERR_UNSUPPORTED,
                              "input %d has type %s; only float32 (and float64 without "
                              "gradient) are supported",
                              k, idl_dtype_name(c->in[k]->dtype));
        if (c->in[k]->dtype != c->in[0]->dtype)
            return idl__error(IDL_ERR_INVALID_ARG, "inputs have different types");
    }
    /* strip white space */
    char eq[256];
    size_t el = 0;
    for (const char *p = eq0; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n') continue;
        if (el + 1 >= sizeof eq) return idl__error(IDL_ERR_UNSUPPORTED, "equation too long");
        eq[el++] = *p;
    }
    eq[el] = 0;
    const char *arrow = strstr(eq, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - eq) : el;
    /* operand terms */
    int lab[2][IDL_MAX_DIMS], nl[2], ellp[2], nterms = 0;
    size_t start = 0;
    for (size_t i = 0; i <= lhs_len; i++) {
        if (i < lhs_len && eq[i] != ',') continue;
        if (nterms >= nops)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "equation '%s' has more terms than the %d inputs", eq0, nops);
        idl_status st = parse_term(eq + start, i - start, lab[nterms], &nl[nterms], &ellp[nterms]);
        if (st) return st;
        nterms++;
        start = i + 1;
    }
    if (nterms != nops)
        return idl__error(IDL_ERR_INVALID_ARG, "equation '%s' has %d terms for %d inputs", eq0,
                          nterms, nops);
    /* expand ellipses into labels, right-aligned */
    int full[2][IDL_MAX_DIMS], nfull[2], E = 0;
    for (int k = 0; k < nops; k++) {
        int r = c->in[k]->ndim, e = r - nl[k];
        if (e < 0 || (ellp[k] < 0 && e != 0))
            return idl__error(IDL_ERR_SHAPE, "term %d of '%s' has %d subscripts, input %d rank %d",
                              k, eq0, nl[k], k, r);
        E = IDL_MAX(E, e);
    }
    for (int k = 0; k < nops; k++) {
        int r = c->in[k]->ndim, e = r - nl[k], m = 0;
        for (int i = 0; i <= nl[k]; i++) {
            if (i == ellp[k])
                for (int t = 0; t < e; t++)
                    full[k][m++] = EL_ELL + (E - e) + t;
            if (i < nl[k]) full[k][m++] = lab[k][i];
        }
        nfull[k] = m;
    }
    /* label sizes and per-operand strides */
    int64_t size[EL_N], stride[2][EL_N];
    int count[EL_N] = { 0 };
    bool bcast[2] = { false, false };
    for (int l = 0; l < EL_N; l++)
        size[l] = -1;
    for (int k = 0; k < nops; k++) {
        const idl_tensor *t = c->in[k];
        for (int i = 0; i < nfull[k]; i++) {
            int l = full[k][i];
            int64_t d = t->shape[i];
            count[l]++;
            if (size[l] < 0 || (l >= EL_ELL && size[l] == 1))
                size[l] = d;
            else if (d != size[l] && !(l >= EL_ELL && d == 1))
                return idl__error(IDL_ERR_SHAPE, "subscript '%c' has sizes %lld and %lld in '%s'",
                                  l >= EL_ELL ? '.' : (l < 26 ? 'A' + l : 'a' + l - 26),
                                  (long long)size[l], (long long)d, eq0);
        }
    }
    for (int k = 0; k < nops; k++) {
        const idl_tensor *t = c->in[k];
        for (int l = 0; l < EL_N; l++)
            stride[k][l] = 0;
        int64_t st = 1;
        for (int i = nfull[k] - 1; i >= 0; i--) {
            int l = full[k][i];
            if (t->shape[i] == size[l])
                stride[k][l] += st;
            else
                bcast[k] = true; /* size 1 against a larger size: stride 0 */
            st *= t->shape[i];
        }
    }
    /* output labels */
    int out[IDL_MAX_DIMS + EL_N], no = 0;
    if (arrow) {
        int ol[IDL_MAX_DIMS], onl, oell;
        idl_status st = parse_term(arrow + 2, strlen(arrow + 2), ol, &onl, &oell);
        if (st) return st;
        if (oell < 0 && E > 0)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "the inputs have '...' axes but the output of '%s' has no '...'",
                              eq0);
        for (int i = 0; i <= onl; i++) {
            if (i == oell)
                for (int t = 0; t < E; t++)
                    out[no++] = EL_ELL + t;
            if (i < onl) out[no++] = ol[i];
        }
    } else {
        for (int t = 0; t < E; t++)
            out[no++] = EL_ELL + t;
        for (int l = 0; l < EL_ELL; l++)
            if (count[l] == 1) out[no++] = l;
    }
    if (no > IDL_MAX_DIMS)
        return idl__error(IDL_ERR_UNSUPPORTED, "output rank %d exceeds %d", no, IDL_MAX_DIMS);
    bool in_out[EL_N] = { false };
    int64_t yshape[IDL_MAX_DIMS], ystride[EL_N] = { 0 };
    for (int i = 0; i < no; i++) {
        int l = out[i];
        if (in_out[l] || size[l] < 0)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "output subscript %d of '%s' is repeated or not in any input", i,
                              eq0);
        in_out[l] = true;
        yshape[i] = size[l];
    }
    {
        int64_t st = 1;
        for (int i = no - 1; i >= 0; i--) {
            ystride[out[i]] = st;
            st *= yshape[i];
        }
    }
    einsum_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->nops = nops;
    s->dt = c->in[0]->dtype;
    idl__set_out(c->out[0], s->dt, no, yshape);
    bool used[2][EL_N] = { { false } };
    for (int k = 0; k < nops; k++)
        for (int i = 0; i < nfull[k]; i++)
            used[k][full[k][i]] = true;
    idl_status st;
    if (nops == 1) {
        /* rows = output labels but the last, cols = the last, summed = the rest */
        int g[4][EL_N], ng[4] = { 0, 0, 0, 0 };
        for (int i = 0; i < no; i++)
            g[i < no - 1 ? 1 : 2][ng[i < no - 1 ? 1 : 2]++] = out[i];
        for (int l = 0; l < EL_N; l++)
            if (used[0][l] && !in_out[l]) g[3][ng[3]++] = l;
        const int *gp[4] = { g[0], g[1], g[2], g[3] };
        if ((st = lay_build(&s->l1, gp, ng, size, stride[0]))) return st;
        s->inj1 = !bcast[0];
        return IDL_OK;
    }
    /* two operands: batch (A, B, Y), M (A, Y), N (B, Y), K (A, B), SA (A), SB (B) */
    int gb[EL_N], gm[EL_N], gn[EL_N], gk[EL_N], gsa[EL_N], gsb[EL_N];
    int nb = 0, nm = 0, nn = 0, nk = 0, nsa = 0, nsb = 0;
    for (int i = 0; i < no; i++) {
        int l = out[i];
        if (used[0][l] && used[1][l])
            gb[nb++] = l;
        else if (used[0][l])
            gm[nm++] = l;
        else
            gn[nn++] = l;
    }
    bool seen[EL_N] = { false };
    for (int i = 0; i < nfull[0]; i++) { /* K in A's order */
        int l = full[0][i];
        if (seen[l] || in_out[l]) continue;
        seen[l] = true;
        if (used[1][l])
            gk[nk++] = l;
        else
            gsa[nsa++] = l;
    }
    for (int i = 0; i < nfull[1]; i++) {
        int l = full[1][i];
        if (seen[l] || in_out[l]) continue;
        seen[l] = true;
        gsb[nsb++] = l;
    }
    {
        const int *pa[4] = { gb, gm, gk, gsa }, *pb[4] = { gb, gk, gn, gsb },
                  *py[4] = { gb, gm, gn, gsa };
        int na_[4] = { nb, nm, nk, nsa }, nb_[4] = { nb, nk, nn, nsb }, ny_[4] = { nb, nm, nn, 0 };
        if ((st = lay_build(&s->la, pa, na_, size, stride[0])) ||
            (st = lay_build(&s->lb, pb, nb_, size, stride[1])) ||
            (st = lay_build(&s->ly, py, ny_, size, ystride)))
            return st;
    }
    s->nb = s->la.n[0];
    s->M = s->la.n[1];
    s->K = s->la.n[2];
    s->N = s->lb.n[2];
    s->a_inj = !bcast[0];
    s->b_inj = !bcast[1];
    bool f32 = s->dt == IDL_DT_F32;
    s->a_direct = f32 && lay_direct(&s->la, &s->va);
    s->b_direct = f32 && lay_direct(&s->lb, &s->vb);
    s->y_direct = f32 && lay_direct(&s->ly, &s->vy);
    s->par = s->nb >= 4 && s->M * s->N * s->K <= (int64_t)1 << 21;
    size_t es = idl_dtype_size(s->dt);
    if (!s->a_direct) {
        s->bufA = idl__aligned_alloc(es * (size_t)IDL_MAX(s->nb * s->M * s->K, 1));
        s->va = mview_packed(s->M, s->K);
    }
    if (!s->b_direct) {
        s->bufB = idl__aligned_alloc(es * (size_t)IDL_MAX(s->nb * s->K * s->N, 1));
        s->vb = mview_packed(s->K, s->N);
    }
    if (!s->y_direct) {
        s->bufY = idl__aligned_alloc(es * (size_t)IDL_MAX(s->nb * s->M * s->N, 1));
        s->vy = mview_packed(s->M, s->N);
    }
    if ((!s->a_direct && !s->bufA) || (!s->b_direct && !s->bufB) || (!s->y_direct && !s->bufY))
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    return IDL_OK;
}

/* float64: Y[b] = A[b] B[b] on packed buffers (no gradient; small conformance-style inputs). */
static void mm_f64(int64_t nb, int64_t M, int64_t N, int64_t K, const double *A, const double *B,
                   double *Y) {
#pragma omp parallel for if (nb * M * N * K > IDL_OMP_MIN) schedule(static)
    for (int64_t w = 0; w < nb * M; w++) {
        const int64_t b = w / M;
        const double *a = A + w * K;
        double *y = Y + w * N;
        for (int64_t j = 0; j < N; j++)
            y[j] = 0;
        for (int64_t q = 0; q < K; q++) {
            const double av = a[q];
            const double *br = B + (b * K + q) * N;
            for (int64_t j = 0; j < N; j++)
                y[j] += av * br[j];
        }
    }
}

static void einsum_forward(idl__op_ctx *c) {
    einsum_state *s = c->state;
    if (s->nops == 1) {
        if (s->dt == IDL_DT_F32)
            pack_f32(&s->l1, c->in[0]->data, c->out[0]->data);
        else
            pack_f64(&s->l1, c->in[0]->data, c->out[0]->data);
        return;
    }
    if (idl_tensor_numel(c->out[0]) == 0) return;
    if (s->dt == IDL_DT_F64) {
        pack_f64(&s->la, c->in[0]->data, s->bufA);
        pack_f64(&s->lb, c->in[1]->data, s->bufB);
        mm_f64(s->nb, s->M, s->N, s->K, s->bufA, s->bufB, s->bufY);
        unpack_f64(&s->ly, s->bufY, c->out[0]->data, false, true);
        return;
    }
    const float *A = c->in[0]->data, *B = c->in[1]->data;
    if (!s->a_direct) {
        pack_f32(&s->la, A, s->bufA);
        A = s->bufA;
    }
    if (!s->b_direct) {
        pack_f32(&s->lb, B, s->bufB);
        B = s->bufB;
    }
    float *Y = s->y_direct ? c->out[0]->data : s->bufY;
    mm(s->nb, s->M, s->N, s->K, s->vy, Y, s->va, A, s->vb, B, 0.0f, s->par);
    if (!s->y_direct) unpack_f32(&s->ly, Y, c->out[0]->data, false, true);
}

/* dA = dY B^T and dB = A^T dY on the same views (dY gathered like Y when Y is not direct); an
 * operand that is used in place receives its gradient in place (accumulating), others through a
 * scratch (nb,M,K) / (nb,K,N) that is scattered back over the summed / diagonal / broadcast
 * structure. */
static idl_status einsum_backward(idl__op_ctx *c) {
    einsum_state *s = c->state;
    if (!c->dout[0] || s->dt != IDL_DT_F32) return IDL_OK;
    const float *dY = c->dout[0]->data;
    if (s->nops == 1) {
        if (c->din[0]) unpack_f32(&s->l1, dY, c->din[0]->data, true, s->inj1);
        return IDL_OK;
    }
    if (idl_tensor_numel(c->out[0]) == 0) return IDL_OK;
    if (!s->y_direct) {
        pack_f32(&s->ly, dY, s->bufY);
        dY = s->bufY;
    }
    const float *A = s->a_direct ? c->in[0]->data : s->bufA;
    const float *B = s->b_direct ? c->in[1]->data : s->bufB;
    const int64_t nb = s->nb, M = s->M, N = s->N, K = s->K;
    if (c->din[0]) {
        float *dA = c->din[0]->data;
        if (s->a_direct) {
            mm(nb, M, K, N, s->va, dA, s->vy, dY, mview_t(s->vb), B, 1.0f, s->par && s->a_inj);
        } else {
            if (!s->gA) s->gA = idl__aligned_alloc(sizeof(float) * (size_t)IDL_MAX(nb * M * K, 1));
            if (!s->gA) return idl__error(IDL_ERR_NOMEM, "out of memory");
            mm(nb, M, K, N, mview_packed(M, K), s->gA, s->vy, dY, mview_t(s->vb), B, 0.0f, s->par);
            unpack_f32(&s->la, s->gA, dA, true, s->a_inj);
        }
    }
    if (c->din[1]) {
        float *dB = c->din[1]->data;
        if (s->b_direct) {
            mm(nb, K, N, M, s->vb, dB, mview_t(s->va), A, s->vy, dY, 1.0f, s->par && s->b_inj);
        } else {
            if (!s->gB) s->gB = idl__aligned_alloc(sizeof(float) * (size_t)IDL_MAX(nb * K * N, 1));
            if (!s->gB) return idl__error(IDL_ERR_NOMEM, "out of memory");
            mm(nb, K, N, M, mview_packed(K, N), s->gB, mview_t(s->va), A, s->vy, dY, 0.0f, s->par);
            unpack_f32(&s->lb, s->gB, dB, true, s->b_inj);
        }
    }
    return IDL_OK;
}
/* What einsum_backward reads: one operand, nothing (dY is scattered); two operands, B for dA and
 * A for dB (the bilinear rule), but only where the operand is used in place (a_direct /
 * b_direct): otherwise the copy the forward packed into the state's buffer. float64: no
 * gradient. */
static unsigned einsum_bwd_reads(const idl__op_ctx *c) {
    const einsum_state *s = c->state;
    if (s->nops != 2 || s->dt != IDL_DT_F32) return 0;
    return (!c->in_const[1] && s->a_direct ? IDL__BWD_IN(0) : 0) |
           (!c->in_const[0] && s->b_direct ? IDL__BWD_IN(1) : 0);
}
const idl__op_def IDL__OP(einsum) = {
    "Einsum",        1, 16, 1, 1, einsum_prepare, einsum_forward, einsum_backward, einsum_free, 0,
    einsum_bwd_reads
};
