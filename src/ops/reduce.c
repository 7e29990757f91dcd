/* reduce.c — reductions over a set of axes: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceL1,
 * ReduceL2, ReduceSumSquare, ReduceLogSumExp, ReduceProd (forward and backward), and ArgMax
 * (forward only, int64 indices). x: (d0, ..., d{r-1}); y: x's shape with the reduced axes set to 1
 * (keepdims=1, the default) or removed (keepdims=0). Axes come from the `axes` attribute, or from
 * input 1 (ReduceSum from opset 13, the others from opset 18; it must be known at plan time). No
 * axes: reduce all, unless noop_with_empty_axes=1, then y = x. Types: float32 (with gradients);
 * int64/int32 for ReduceSum/Max/Min (forward only). ReduceMean of integers is refused;
 * ReduceL1/L2/SumSquare/LogSumExp/Prod are float32 only (each output reduces its elements in order,
 * in double; ReduceProd's gradient handles zeros exactly). Gradients of Max/Min go to the first
 * arg-extremum (row-major order over the reduced axes). The kernels work on a coalesced view:
 * size-1 axes dropped, adjacent axes of the same kind (kept or reduced) merged. When the innermost
 * group is reduced each output reduces in order over its elements (float sums in double); when it
 * is kept, whole rows of the innermost kept group are accumulated at once (vectorized), reduced
 * elements in the same order. Results do not depend on the thread count. ArgMax: x viewed as
 * (outer, n, inner) around `axis`; y: (outer, [1], inner) int64; ties give the first index, or the
 * last with select_last_index=1. */
#include "ops/op.h"

#include <math.h>
#include <string.h>

#define CHUNK 4096 /* kept-row elements per parallel work item */

/* R_L1 and later: float32 only, computed by the generic kernels (red_gen_*) */
typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_L1, R_L2, R_SUMSQ, R_LSE, R_PROD } rkind;

static const char *const rkind_name[] = { "ReduceSum",       "ReduceMean",      "ReduceMax",
                                          "ReduceMin",       "ReduceL1",        "ReduceL2",
                                          "ReduceSumSquare", "ReduceLogSumExp", "ReduceProd" };

typedef struct red_state {
    rkind kind;
    idl_dtype dt;
    bool copy;                                        /* y = x (nothing reduced, or noop) */
    int nk, nr;                                       /* coalesced kept / reduced groups */
    int64_t kshape[IDL_MAX_DIMS], kstr[IDL_MAX_DIMS]; /* kept groups, outer to inner */
    int64_t rshape[IDL_MAX_DIMS], rstr[IDL_MAX_DIMS]; /* reduced groups, outer to inner */
    int64_t nout, count;                              /* outputs; elements reduced into each */
    bool last_kept;                                   /* the innermost group is kept (stride 1) */
} red_state;

static void free_state(void *s) {
    idl__free(s);
}

/* Offset of multi-index i (row-major over shape[0..n)) with element strides str. */
static inline int64_t dims_offset(int64_t i, int n, const int64_t *shape, const int64_t *str) {
    int64_t off = 0;
    for (int d = n - 1; d >= 0; d--) {
        off += (i % shape[d]) * str[d];
        i /= shape[d];
    }
    return off;
}

/* Reads the axes (attribute or input 1) into red[]; *noop when y = x. */
static idl_status red_axes(const idl__op_ctx *c, rkind kind, bool *red, bool *noop) {
    const idl_tensor *x = c->in[0];
    const bool from_input = kind == R_SUM ? c->opset >= 13 : c->opset >= 18;
    int64_t axes[IDL_MAX_DIMS];
    int na = 0;
    idl_status st;
    if (from_input) {
        if (c->n_in > 1 && c->in[1] && (st = idl__const_ints(c, 1, axes, IDL_MAX_DIMS, &na)))
            return st;
    } else {
        if (c->n_in > 1 && c->in[1])
            return idl__error(IDL_ERR_INVALID_ARG, "%s takes axes as an attribute before opset %d",
                              rkind_name[kind], kind == R_SUM ? 13 : 18);
        int cnt;
        const int64_t *a = idl__attr_ints(c->node, "axes", &cnt);
        if (cnt > IDL_MAX_DIMS)
            return idl__error(IDL_ERR_INVALID_ARG, "%d axes for an input of rank %d", cnt, x->ndim);
        for (int i = 0; i < cnt; i++)
            axes[i] = a[i];
        na = cnt > 0 ? cnt : 0;
    }
    for (int d = 0; d < IDL_MAX_DIMS; d++)
        red[d] = false;
    *noop = false;
    if (x->ndim == 0) { /* a scalar reduces to itself */
        *noop = true;
        return IDL_OK;
    }
    if (na == 0) {
        if (from_input && idl__attr_int(c->node, "noop_with_empty_axes", 0))
            *noop = true;
        else
            for (int d = 0; d < x->ndim; d++)
                red[d] = true;
        return IDL_OK;
    }
    for (int i = 0; i < na; i++) {
        int ax;
        if ((st = idl__norm_axis(axes[i], x->ndim, &ax))) return st;
        if (red[ax]) return idl__error(IDL_ERR_INVALID_ARG, "axis %d listed twice", ax);
        red[ax] = true;
    }
    return IDL_OK;
}

static idl_status red_prepare(idl__op_ctx *c, rkind kind) {
    const idl_tensor *x = c->in[0];
    if (!x) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    const idl_dtype dt = x->dtype;
    const bool ints_ok = kind == R_SUM || kind == R_MAX || kind == R_MIN;
    if (dt != IDL_DT_F32 && !((dt == IDL_DT_I64 || dt == IDL_DT_I32) && ints_ok))
        return idl__error(IDL_ERR_UNSUPPORTED, "%s on %s is not supported (float32%s)",
                          rkind_name[kind], idl_dtype_name(dt), ints_ok ? ", int64, int32" : "");
    bool red[IDL_MAX_DIMS], noop;
    idl_status st = red_axes(c, kind, red, &noop);
    if (st) return st;
    red_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    s->kind = kind;
    s->dt = dt;
    c->state = s;
    if (noop) {
        s->copy = true;
        idl__set_out(c->out[0], dt, x->ndim, x->shape);
        return IDL_OK;
    }
    const bool keepdims = idl__attr_int(c->node, "keepdims", 1) != 0;
    int ny = 0;
    int64_t yshape[IDL_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        if (!red[d])
            yshape[ny++] = x->shape[d];
        else if (keepdims)
            yshape[ny++] = 1;
    }
    /* coalesce: contiguous strides of x, drop size-1 axes, merge neighbours of the same kind */
    int64_t xstr[IDL_MAX_DIMS], acc = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        xstr[d] = acc;
        acc *= x->shape[d];
    }
    int last = -1; /* kind of the current group: 0 kept, 1 reduced, -1 none */
    s->nout = s->count = 1;
    for (int d = 0; d < x->ndim; d++) {
        const int64_t n = x->shape[d];
        if (n == 1) continue;
        if (red[d]) {
            if (last == 1)
                s->rshape[s->nr - 1] *= n;
            else
                s->rshape[s->nr++] = n;
            s->rstr[s->nr - 1] = xstr[d];
            s->count *= n;
            last = 1;
        } else {
            if (last == 0)
                s->kshape[s->nk - 1] *= n;
            else
                s->kshape[s->nk++] = n;
            s->kstr[s->nk - 1] = xstr[d];
            s->nout *= n;
            last = 0;
        }
    }
    /* the generic kinds apply their function even when nothing is reduced (|x|, x*x, ...) */
    s->copy = s->nr == 0 && kind < R_L1;
    s->last_kept = last == 0;
    idl__set_out(c->out[0], dt, ny, yshape);
    return IDL_OK;
}

/* ---- forward kernels, per element type ---- */
/* Max/Min keep NaN (numpy max/min) */
#define RED_MAX(m, v) ((v) > (m) || (v) != (v) ? (v) : (m))
#define RED_MIN(m, v) ((v) < (m) || (v) != (v) ? (v) : (m))

/* Innermost group reduced (or nothing kept): each output reduces its count elements in order (a
 * contiguous run of 16 or more in 8 interleaved partial sums added pairwise: a fixed order, and
 * no chain of dependent additions as long as the row: LayerNorm's means on a 768-wide row). */
#define RED_ROWS(name, T, ACC)                                                              \
    static inline void name##_one(const red_state *s, const T *x, T *y, int64_t o) {        \
        const int64_t rl = s->rshape[s->nr - 1], rs = s->rstr[s->nr - 1];                   \
        const int64_t nrow = s->count / rl;                                                 \
        const rkind kind = s->kind;                                                         \
        const T *xb = x + dims_offset(o, s->nk, s->kshape, s->kstr);                        \
        if (kind == R_SUM || kind == R_MEAN) {                                              \
            ACC a = 0, q[8];                                                                \
            for (int64_t r = 0; r < nrow; r++) {                                            \
                const T *p = xb + dims_offset(r, s->nr - 1, s->rshape, s->rstr);            \
                int64_t j = 0;                                                              \
                if (rs == 1 && rl >= 16) { /* 8 chains, added pairwise in a fixed order */  \
                    for (int k = 0; k < 8; k++)                                             \
                        q[k] = 0;                                                           \
                    for (; j + 8 <= rl; j += 8)                                             \
                        for (int k = 0; k < 8; k++)                                         \
                            q[k] += (ACC)p[j + k];                                          \
                    a += ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7])); \
                }                                                                           \
                for (; j < rl; j++)                                                         \
                    a += (ACC)p[j * rs];                                                    \
            }                                                                               \
            y[o] = kind == R_MEAN ? (T)(a / (ACC)s->count) : (T)a;                          \
        } else {                                                                            \
            T m = xb[0];                                                                    \
            for (int64_t r = 0; r < nrow; r++) {                                            \
                const T *p = xb + dims_offset(r, s->nr - 1, s->rshape, s->rstr);            \
                if (kind == R_MAX)                                                          \
                    for (int64_t j = 0; j < rl; j++)                                        \
                        m = RED_MAX(m, p[j * rs]);                                          \
                else                                                                        \
                    for (int64_t j = 0; j < rl; j++)                                        \
                        m = RED_MIN(m, p[j * rs]);                                          \
            }                                                                               \
            y[o] = m;                                                                       \
        }                                                                                   \
    }                                                                                       \
    static void name(const red_state *s, const T *x, T *y) {                                \
        IDL_PAR_FOR(s->nout * s->count > IDL_OMP_MIN, int64_t, o, 0, s->nout,               \
                    { name##_one(s, x, y, o); });                                           \
    }

/* Innermost group kept (stride 1, length kin): rows of y accumulate whole rows of x, reduced
 * elements in order. */
#define RED_COLS(name, T)                                                                        \
    static void name(const red_state *s, const T *x, T *y) {                                     \
        const int64_t kin = s->kshape[s->nk - 1];                                                \
        const int64_t ch = kin > CHUNK ? CHUNK : kin, nch = (kin + ch - 1) / ch;                 \
        const int64_t nw = s->nout / kin * nch;                                                  \
        const rkind kind = s->kind;                                                              \
        _Pragma("omp parallel for if (s->nout * s->count > IDL_OMP_MIN) schedule(static)") for ( \
            int64_t w = 0; w < nw; w++) {                                                        \
            const int64_t q = w / nch, c0 = (w % nch) * ch, len = IDL_MIN(ch, kin - c0);         \
            const T *xb = x + dims_offset(q, s->nk - 1, s->kshape, s->kstr) + c0;                \
            T *yr = y + q * kin + c0;                                                            \
            memcpy(yr, xb, (size_t)len * sizeof(T));                                             \
            for (int64_t r = 1; r < s->count; r++) {                                             \
                const T *p = xb + dims_offset(r, s->nr, s->rshape, s->rstr);                     \
                if (kind == R_SUM || kind == R_MEAN)                                             \
                    for (int64_t j = 0; j < len; j++)                                            \
                        yr[j] += p[j];                                                           \
                else if (kind == R_MAX)                                                          \
                    for (int64_t j = 0; j < len; j++)                                            \
                        yr[j] = RED_MAX(yr[j], p[j]);                                            \
                else                                                                             \
                    for (int64_t j = 0; j < len; j++)                                            \
                        yr[j] = RED_MIN(yr[j], p[j]);                                            \
            }                                                                                    \
        }                                                                                        \
    }

RED_ROWS(rows_f, float, double)
RED_ROWS(rows_l, int64_t, int64_t)
RED_ROWS(rows_i, int32_t, int64_t)
RED_COLS(cols_f, float)
RED_COLS(cols_l, int64_t)
RED_COLS(cols_i, int32_t)

/* ---- generic float32 kinds (R_L1 ..): each output reduces its elements in order, in double ----
 */
static void red_gen_forward(const red_state *s, const float *x, float *y) {
    const rkind kind = s->kind;
#pragma omp parallel for if (s->nout * s->count > IDL_OMP_MIN) schedule(static)
    for (int64_t o = 0; o < s->nout; o++) {
        const float *xb = x + dims_offset(o, s->nk, s->kshape, s->kstr);
        double a = kind == R_PROD ? 1.0 : 0.0;
        if (kind == R_LSE) {
            double m = -INFINITY;
            for (int64_t r = 0; r < s->count; r++) {
                const double v = xb[dims_offset(r, s->nr, s->rshape, s->rstr)];
                m = v > m || v != v ? v : m;
            }
            if (!isfinite(m)) { /* all -inf, some +inf, or NaN */
                y[o] = (float)m;
                continue;
            }
            for (int64_t r = 0; r < s->count; r++)
                a += exp(xb[dims_offset(r, s->nr, s->rshape, s->rstr)] - m);
            y[o] = (float)(m + log(a));
            continue;
        }
        for (int64_t r = 0; r < s->count; r++) {
            const double v = xb[dims_offset(r, s->nr, s->rshape, s->rstr)];
            switch (kind) {
            case R_L1:
                a += fabs(v);
                break;
            case R_L2:
            case R_SUMSQ:
                a += v * v;
                break;
            default: /* R_PROD */
                a *= v;
            }
        }
        y[o] = (float)(kind == R_L2 ? sqrt(a) : a);
    }
}

static void red_gen_backward(const red_state *s, const float *x, const float *y, const float *dy,
                             float *dx) {
    const rkind kind = s->kind;
#pragma omp parallel for if (s->nout * s->count > IDL_OMP_MIN) schedule(static)
    for (int64_t o = 0; o < s->nout; o++) {
        const int64_t base = dims_offset(o, s->nk, s->kshape, s->kstr);
        const float g = dy[o];
        if (kind == R_PROD) { /* product of the others: nonzero product and count of zeros */
            double pnz = 1.0;
            int64_t nz = 0;
            for (int64_t r = 0; r < s->count; r++) {
                const double v = x[base + dims_offset(r, s->nr, s->rshape, s->rstr)];
                if (v == 0)
                    nz++;
                else
                    pnz *= v;
            }
            if (nz > 1) continue; /* every "product of the others" contains a zero */
            for (int64_t r = 0; r < s->count; r++) {
                const int64_t i = base + dims_offset(r, s->nr, s->rshape, s->rstr);
                if (nz == 0)
                    dx[i] += (float)(g * (pnz / x[i]));
                else if (x[i] == 0)
                    dx[i] += (float)(g * pnz);
            }
            continue;
        }
        const double yo = y[o];
        for (int64_t r = 0; r < s->count; r++) {
            const int64_t i = base + dims_offset(r, s->nr, s->rshape, s->rstr);
            const float v = x[i];
            switch (kind) {
            case R_L1:
                dx[i] += v > 0 ? g : v < 0 ? -g : 0.0f;
                break;
            case R_L2:
                dx[i] += yo > 0 ? (float)(g * (v / yo)) : 0.0f;
                break;
            case R_SUMSQ:
                dx[i] += 2.0f * v * g;
                break;
            default: /* R_LSE */
                dx[i] += (float)(g * exp((double)v - yo));
            }
        }
    }
}

static void red_forward(idl__op_ctx *c) {
    const red_state *s = c->state;
    const void *x = c->in[0]->data;
    void *y = c->out[0]->data;
    if (s->kind >= R_L1 && !s->copy) {
        if (s->nout == 0) return;
        if (s->count == 0) { /* the reduction of an empty set */
            for (int64_t o = 0; o < s->nout; o++)
                ((float *)y)[o] = s->kind == R_LSE ? -INFINITY : s->kind == R_PROD ? 1.0f : 0.0f;
            return;
        }
        red_gen_forward(s, x, y);
        return;
    }
    if (s->copy) {
        size_t b = idl__tensor_bytes(c->in[0]);
        if (b) memcpy(y, x, b);
        return;
    }
    if (s->nout == 0) return;
    if (s->count == 0) { /* reducing an empty set: the identity of the reduction */
        for (int64_t o = 0; o < s->nout; o++) {
            const bool mx = s->kind == R_MAX, mn = s->kind == R_MIN;
            if (s->dt == IDL_DT_F32)
                ((float *)y)[o] = mx ? -INFINITY : mn ? INFINITY : s->kind == R_MEAN ? NAN : 0.0f;
            else if (s->dt == IDL_DT_I64)
                ((int64_t *)y)[o] = mx ? INT64_MIN : mn ? INT64_MAX : 0;
            else
                ((int32_t *)y)[o] = mx ? INT32_MIN : mn ? INT32_MAX : 0;
        }
        return;
    }
    if (s->last_kept) {
        if (s->dt == IDL_DT_F32) {
            cols_f(s, x, y);
            if (s->kind == R_MEAN) {
                float *yf = y;
                const float inv = (float)(1.0 / (double)s->count);
                for (int64_t o = 0; o < s->nout; o++)
                    yf[o] *= inv;
            }
        } else if (s->dt == IDL_DT_I64) {
            cols_l(s, x, y);
        } else {
            cols_i(s, x, y);
        }
    } else {
        if (s->dt == IDL_DT_F32)
            rows_f(s, x, y);
        else if (s->dt == IDL_DT_I64)
            rows_l(s, x, y);
        else
            rows_i(s, x, y);
    }
}

static idl_status red_backward(idl__op_ctx *c) {
    const red_state *s = c->state;
    if (!c->din[0] || !c->dout[0]) return IDL_OK;
    const float *x = c->in[0]->data, *y = c->out[0]->data, *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    if (s->copy) {
        const int64_t n = idl_tensor_numel(c->in[0]);
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i];
        return IDL_OK;
    }
    if (s->nout == 0 || s->count == 0) return IDL_OK;
    if (s->kind >= R_L1) {
        red_gen_backward(s, x, y, dy, dx);
        return IDL_OK;
    }
    const int64_t rl = s->rshape[s->nr - 1], rs = s->rstr[s->nr - 1], nrow = s->count / rl;
    if (s->kind == R_MAX || s->kind == R_MIN) { /* the first arg-extremum of each output */
#pragma omp parallel for if (s->nout * s->count > IDL_OMP_MIN) schedule(static)
        for (int64_t o = 0; o < s->nout; o++) {
            const int64_t base = dims_offset(o, s->nk, s->kshape, s->kstr);
            const float v = y[o];
            int64_t at = -1;
            for (int64_t r = 0; r < nrow && at < 0; r++) {
                const int64_t rb = base + dims_offset(r, s->nr - 1, s->rshape, s->rstr);
                for (int64_t j = 0; j < rl; j++)
                    if (x[rb + j * rs] == v) {
                        at = rb + j * rs;
                        break;
                    }
            }
            if (at >= 0) dx[at] += dy[o];
        }
        return IDL_OK;
    }
    const float scale = s->kind == R_MEAN ? (float)(1.0 / (double)s->count) : 1.0f;
    if (s->last_kept) {
        const int64_t kin = s->kshape[s->nk - 1];
        const int64_t ch = kin > CHUNK ? CHUNK : kin, nch = (kin + ch - 1) / ch;
        const int64_t nw = s->nout / kin * nch;
#pragma omp parallel for if (s->nout * s->count > IDL_OMP_MIN) schedule(static)
        for (int64_t w = 0; w < nw; w++) {
            const int64_t q = w / nch, c0 = (w % nch) * ch, len = IDL_MIN(ch, kin - c0);
            float *db = dx + dims_offset(q, s->nk - 1, s->kshape, s->kstr) + c0;
            const float *g = dy + q * kin + c0;
            for (int64_t r = 0; r < s->count; r++) {
                float *p = db + dims_offset(r, s->nr, s->rshape, s->rstr);
                for (int64_t j = 0; j < len; j++)
                    p[j] += g[j] * scale;
            }
        }
    } else {
#pragma omp parallel for if (s->nout * s->count > IDL_OMP_MIN) schedule(static)
        for (int64_t o = 0; o < s->nout; o++) {
            float *db = dx + dims_offset(o, s->nk, s->kshape, s->kstr);
            const float g = dy[o] * scale;
            for (int64_t r = 0; r < nrow; r++) {
                float *p = db + dims_offset(r, s->nr - 1, s->rshape, s->rstr);
                for (int64_t j = 0; j < rl; j++)
                    p[j * rs] += g;
            }
        }
    }
    return IDL_OK;
}

/* What red_backward reads: Sum and Mean (and any copy) nothing; Max and Min x and y (the first
 * element equal to y); the generic kinds per red_gen_backward: L1, SumSquare, Prod x; L2 and
 * LogSumExp x and y. */
static unsigned red_bwd_reads(const idl__op_ctx *c) {
    const red_state *s = c->state;
    if (s->copy) return 0;
    switch (s->kind) {
    case R_SUM:
    case R_MEAN:
        return 0;
    case R_L1:
    case R_SUMSQ:
    case R_PROD:
        return IDL__BWD_IN(0);
    default: /* R_MAX, R_MIN, R_L2, R_LSE */
        return IDL__BWD_IN(0) | IDL__BWD_OUT(0);
    }
}

#define REDUCE_OP(stem, Name, KIND)                                                               \
    static idl_status stem##_prepare(idl__op_ctx *c) {                                            \
        return red_prepare(c, KIND);                                                              \
    }                                                                                             \
    const idl__op_def IDL__OP(stem) = {                                                           \
        Name, 1, 2, 1, 1, stem##_prepare, red_forward, red_backward, free_state, 0, red_bwd_reads \
    };

REDUCE_OP(reducesum, "ReduceSum", R_SUM)
REDUCE_OP(reducemean, "ReduceMean", R_MEAN)
REDUCE_OP(reducemax, "ReduceMax", R_MAX)
REDUCE_OP(reducemin, "ReduceMin", R_MIN)
REDUCE_OP(reducel1, "ReduceL1", R_L1)
REDUCE_OP(reducel2, "ReduceL2", R_L2)
REDUCE_OP(reducesumsquare, "ReduceSumSquare", R_SUMSQ)
REDUCE_OP(reducelogsumexp, "ReduceLogSumExp", R_LSE)
REDUCE_OP(reduceprod, "ReduceProd", R_PROD)

/* ---- ArgMax ---- */
typedef struct argmax_state {
    int64_t outer, n, inner;
    bool select_last;
} argmax_state;

static idl_status argmax_prepare(idl__op_ctx *c) {
    const idl_tensor *x = c->in[0];
    if (!x) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    if (x->dtype != IDL_DT_F32 && x->dtype != IDL_DT_I64 && x->dtype != IDL_DT_I32)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "ArgMax on %s is not supported (float32, int64, int32)",
                          idl_dtype_name(x->dtype));
    if (x->ndim == 0) return idl__error(IDL_ERR_INVALID_ARG, "ArgMax needs an input of rank >= 1");
    int axis;
    idl_status st = idl__norm_axis(idl__attr_int(c->node, "axis", 0), x->ndim, &axis);
    if (st) return st;
    if (x->shape[axis] == 0) return idl__error(IDL_ERR_SHAPE, "ArgMax over an empty axis %d", axis);
    argmax_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    s->outer = idl__numel(axis, x->shape);
    s->n = x->shape[axis];
    s->inner = idl__numel(x->ndim - axis - 1, x->shape + axis + 1);
    s->select_last = idl__attr_int(c->node, "select_last_index", 0) != 0;
    c->state = s;
    int64_t yshape[IDL_MAX_DIMS];
    int ny = 0;
    const bool keepdims = idl__attr_int(c->node, "keepdims", 1) != 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != axis)
            yshape[ny++] = x->shape[d];
        else if (keepdims)
            yshape[ny++] = 1;
    }
    idl__set_out(c->out[0], IDL_DT_I64, ny, yshape);
    return IDL_OK;
}

#define ARGMAX(name, T)                                                                            \
    static void name(const argmax_state *s, const T *x, int64_t *y) {                              \
        const int64_t n = s->n, inner = s->inner, lanes = s->outer * s->inner;                     \
        const bool last = s->select_last;                                                          \
        _Pragma("omp parallel for if (lanes * n > IDL_OMP_MIN) schedule(static)") for (int64_t l = \
                                                                                           0;      \
                                                                                       l < lanes;  \
                                                                                       l++) {      \
            const T *p = x + (l / inner) * n * inner + l % inner;                                  \
            T best = p[0];                                                                         \
            int64_t at = 0;                                                                        \
            for (int64_t j = 1; j < n; j++) {                                                      \
                const T v = p[j * inner];                                                          \
                if (v > best || (last && v == best)) {                                             \
                    best = v;                                                                      \
                    at = j;                                                                        \
                }                                                                                  \
            }                                                                                      \
            y[l] = at;                                                                             \
        }                                                                                          \
    }
ARGMAX(argmax_f, float)
ARGMAX(argmax_l, int64_t)
ARGMAX(argmax_i, int32_t)

static void argmax_forward(idl__op_ctx *c) {
    const argmax_state *s = c->state;
    const idl_tensor *x = c->in[0];
    if (x->dtype == IDL_DT_F32)
        argmax_f(s, x->data, c->out[0]->data);
    else if (x->dtype == IDL_DT_I64)
        argmax_l(s, x->data, c->out[0]->data);
    else
        argmax_i(s, x->data, c->out[0]->data);
}

const idl__op_def IDL__OP(argmax) = { "ArgMax",       1,    1,          1, 1, argmax_prepare,
                                      argmax_forward, NULL, free_state, 0 };
