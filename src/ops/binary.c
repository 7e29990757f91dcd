/* binary.c — element-wise ops on two or more inputs with multidirectional (numpy) broadcasting:
 * Add, Sub, Mul, Div, Pow (arithmetic), Equal, Less, Greater (bool output), Where (select),
 * Max, Min, Sum (variadic, 1..N inputs).
 *   a: (any shape), b: (any shape) broadcast to y: broadcast(a, b), contiguous row-major.
 * Types: float32 everywhere (gradients only for float32); Add/Sub/Mul/Div/Max/Min/Sum and the
 * comparisons also on int64/int32 (shape arithmetic), float64, int8 and uint8 (integer Div
 * truncates toward zero like C, x/0 gives 0 instead of trapping, integers wrap); comparisons also
 * on bool; Pow takes a float32/int64/int32 base with a float32/int64/int32 exponent (the output
 * has the base's type); Where selects any element type. Other types (float16, ... which the
 * loader does not read anyway) are refused with IDL_ERR_UNSUPPORTED.
 *
 * Kernels run over an iterator that drops size-1 output axes and merges adjacent axes on which
 * every operand is either contiguous or broadcast, so that (N,C,H,W)+(C,1,1) becomes rows of H*W
 * elements with a per-row scalar, and same-shape operands become one long row. Rows are split in
 * chunks and run in parallel. Gradients of broadcast operands are reduced in a fixed order (per
 * row, then rows in increasing order), independent of the thread count. */
#include "ops/op.h"

#include <math.h>
#include <string.h>

#define MAXOP 3     /* operands of one iterator (Where has three) */
#define CHUNK 16384 /* elements per parallel work item along a row */

/* ---- the broadcast iterator ---- */
typedef struct iter {
    int nd;                           /* coalesced rank, >= 1 */
    int nop;                          /* operands */
    int64_t shape[IDL_MAX_DIMS];      /* coalesced output shape */
    int64_t str[MAXOP][IDL_MAX_DIMS]; /* element strides of each operand, 0 on broadcast axes */
    int64_t rows, inner;              /* prod(shape[:-1]), shape[-1] */
} iter;

/* Builds the iterator of nop operands (rank nds[k], shape shapes[k]) broadcast to oshape. */
static void iter_init(iter *it, int ndo, const int64_t *oshape, int nop, const int *nds,
                      const int64_t *const *shapes) {
    int64_t full[MAXOP][IDL_MAX_DIMS];
    int64_t sh[IDL_MAX_DIMS], st[MAXOP][IDL_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < nop; k++)
        idl__broadcast_strides(nds[k], shapes[k], ndo, oshape, full[k]);
    for (int d = 0; d < ndo; d++) { /* size-1 output axes do not move any operand */
        if (oshape[d] == 1) continue;
        sh[nd] = oshape[d];
        for (int k = 0; k < nop; k++)
            st[k][nd] = full[k][d];
        nd++;
    }
    memset(it, 0, sizeof *it);
    it->nop = nop;
    if (nd == 0) { /* one element: every operand has exactly one, at offset 0 */
        it->nd = 1;
        it->shape[0] = 1;
        it->rows = it->inner = 1;
        /* stride 1, not 0: iter_grad's `full` path adds into the target only when its stride
         * is 1 (with 0 it would compute the row sum and drop it: a lost gradient) */
        for (int k = 0; k < nop; k++)
            it->str[k][0] = 1;
        return;
    }
    /* merge axis d into the current (outer) axis when every operand steps through both as one */
    int m = 0;
    it->shape[0] = sh[0];
    for (int k = 0; k < nop; k++)
        it->str[k][0] = st[k][0];
    for (int d = 1; d < nd; d++) {
        bool merge = true;
        for (int k = 0; k < nop; k++)
            merge = merge && it->str[k][m] == st[k][d] * sh[d];
        if (merge) {
            it->shape[m] *= sh[d];
            for (int k = 0; k < nop; k++)
                it->str[k][m] = st[k][d];
        } else {
            m++;
            it->shape[m] = sh[d];
            for (int k = 0; k < nop; k++)
                it->str[k][m] = st[k][d];
        }
    }
    it->nd = m + 1;
    it->inner = it->shape[m];
    it->rows = 1;
    for (int d = 0; d < m; d++)
        it->rows *= it->shape[d];
}

/* Element offsets of every operand at the start of row r. */
static inline void iter_offsets(const iter *it, int64_t r, int64_t *off) {
    for (int k = 0; k < it->nop; k++)
        off[k] = 0;
    for (int d = it->nd - 2; d >= 0; d--) {
        int64_t q = r % it->shape[d];
        r /= it->shape[d];
        for (int k = 0; k < it->nop; k++)
            off[k] += q * it->str[k][d];
    }
}

/* Row r of it from column c0: each operand's offsets (off), its stride along the row (s, 0 or 1)
 * and its start pointer (p). */
static void row_start(const iter *it, const void *const *src, const size_t *esz, int64_t r,
                      int64_t c0, int64_t *off, int64_t *s, const void **p) {
    const int last = it->nd - 1;
    iter_offsets(it, r, off);
    for (int k = 0; k < it->nop; k++) {
        s[k] = it->str[k][last];
        p[k] = (const char *)src[k] + (size_t)(off[k] + c0 * s[k]) * esz[k];
    }
}

/* A row kernel: y[0..n) = f(p[0][i*s[0]], p[1][i*s[1]], ...), s[k] in {0, 1}. */
typedef void (*row_fn)(const void *const *p, const int64_t *s, void *y, int64_t n);

/* Runs f over every row of it; operand k starts at src[k] with element size esz[k]; y is
 * contiguous with element size ey. */
static void iter_run(const iter *it, const void *const *src, const size_t *esz, void *y, size_t ey,
                     row_fn f) {
    const int64_t inner = it->inner, rows = it->rows;
    if (rows == 0 || inner == 0) return;
    const int64_t ch = inner > CHUNK ? CHUNK : inner;
    const int64_t nch = (inner + ch - 1) / ch;
    const int64_t nw = rows * nch;
    IDL_PAR_FOR(rows * inner > IDL_OMP_MIN, int64_t, w, 0, nw, {
        const int64_t r = w / nch, c0 = (w % nch) * ch;
        const int64_t len = IDL_MIN(ch, inner - c0);
        int64_t off[MAXOP], s[MAXOP];
        const void *p[MAXOP];
        row_start(it, src, esz, r, c0, off, s, p);
        f(p, s, (char *)y + (size_t)(r * inner + c0) * ey, len);
    });
}

/* A gradient row kernel: g_i = dy[i] * D(a_i, b_i, y_i); adds g_i into dk[i] when sk = 1, or
 * returns sum_i g_i (in order) when sk = 0 (the target is broadcast along the row). */
typedef double (*grow_fn)(const void *const *p, const int64_t *s, const float *y, const float *dy,
                          float *dk, int64_t sk, int64_t n);

/* Accumulates the gradient of operand tgt (dk, its element count equals the output's when
 * `full`) over every row of it. y, dy: the forward output and its gradient (contiguous).
 * Deterministic: a broadcast target is reduced per row, then the rows in increasing order. */
static idl_status iter_grad(const iter *it, const void *const *src, const size_t *esz, int tgt,
                            bool full, const float *y, const float *dy, float *dk, grow_fn f) {
    const int64_t inner = it->inner, rows = it->rows;
    const int last = it->nd - 1;
    const int64_t sk = it->str[tgt][last];
    if (rows == 0 || inner == 0) return IDL_OK;
    if (full) { /* every output element has its own target element: chunks run in parallel */
        const int64_t ch = inner > CHUNK ? CHUNK : inner;
        const int64_t nch = (inner + ch - 1) / ch;
        const int64_t nw = rows * nch;
#pragma omp parallel for if (rows * inner > IDL_OMP_MIN) schedule(static)
        for (int64_t w = 0; w < nw; w++) {
            const int64_t r = w / nch, c0 = (w % nch) * ch;
            const int64_t len = IDL_MIN(ch, inner - c0);
            int64_t off[MAXOP], s[MAXOP];
            const void *p[MAXOP];
            row_start(it, src, esz, r, c0, off, s, p);
            const int64_t o = r * inner + c0;
            f(p, s, y + o, dy + o, dk + off[tgt] + c0 * sk, sk, len);
        }
        return IDL_OK;
    }
    if (sk == 0) { /* the target is constant along rows: per-row sums in parallel, then in order */
        double *part = idl__malloc(sizeof(double) * (size_t)rows);
        if (!part) return idl__error(IDL_ERR_NOMEM, "out of memory");
#pragma omp parallel for if (rows * inner > IDL_OMP_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            int64_t off[MAXOP], s[MAXOP];
            const void *p[MAXOP];
            row_start(it, src, esz, r, 0, off, s, p);
            part[r] = f(p, s, y + r * inner, dy + r * inner, NULL, 0, inner);
        }
        for (int64_t r = 0; r < rows; r++) {
            int64_t off[MAXOP];
            iter_offsets(it, r, off);
            dk[off[tgt]] += (float)part[r];
        }
        idl__free(part);
        return IDL_OK;
    }
    for (int64_t r = 0; r < rows; r++) { /* rows overlap in the target: serial, in order */
        int64_t off[MAXOP], s[MAXOP];
        const void *p[MAXOP];
        row_start(it, src, esz, r, 0, off, s, p);
        f(p, s, y + r * inner, dy + r * inner, dk + off[tgt], 1, inner);
    }
    return IDL_OK;
}

/* ---- scalar helpers ---- */
static inline int64_t div_i64(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a); /* INT64_MIN / -1 wraps instead of trapping */
    return a / b;
}
static inline int32_t div_i32(int32_t a, int32_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int32_t)(0 - (uint32_t)a);
    return a / b;
}
/* integer power by squaring (wrapping); negative exponents give the truncated 1/a^-e */
static inline int64_t ipow(int64_t a, int64_t e) {
    if (e < 0) return a == 1 ? 1 : a == -1 ? ((-e) % 2 ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)a;
    while (e) {
        if (e & 1) r *= base;
        base *= base;
        e >>= 1;
    }
    return (int64_t)r;
}
/* float -> integer the way numpy's astype does for in-range values (truncation); out of range
 * values saturate instead of being undefined */
static inline int64_t f2i64(double v) {
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}
static inline int32_t f2i32(double v) {
    if (v != v) return 0;
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483648.0) return INT32_MIN;
    return (int32_t)v;
}
#define WRAP64(op, x, y) ((int64_t)((uint64_t)(x)op(uint64_t)(y)))
#define WRAP32(op, x, y) ((int32_t)((uint32_t)(x)op(uint32_t)(y)))

/* ---- forward row kernels ---- */
#define ROW2(name, TA, TB, TO, EXPR)                                                \
    static void name(const void *const *p, const int64_t *s, void *py, int64_t n) { \
        const TA *a = p[0];                                                         \
        const TB *b = p[1];                                                         \
        TO *y = py;                                                                 \
        if (s[0] && s[1]) {                                                         \
            for (int64_t i = 0; i < n; i++) {                                       \
                const TA x0 = a[i];                                                 \
                const TB x1 = b[i];                                                 \
                y[i] = (TO)(EXPR);                                                  \
            }                                                                       \
        } else if (s[0]) {                                                          \
            const TB x1 = b[0];                                                     \
            for (int64_t i = 0; i < n; i++) {                                       \
                const TA x0 = a[i];                                                 \
                y[i] = (TO)(EXPR);                                                  \
            }                                                                       \
        } else if (s[1]) {                                                          \
            const TA x0 = a[0];                                                     \
            for (int64_t i = 0; i < n; i++) {                                       \
                const TB x1 = b[i];                                                 \
                y[i] = (TO)(EXPR);                                                  \
            }                                                                       \
        } else {                                                                    \
            const TA x0 = a[0];                                                     \
            const TB x1 = b[0];                                                     \
            const TO v = (TO)(EXPR);                                                \
            for (int64_t i = 0; i < n; i++)                                         \
                y[i] = v;                                                           \
        }                                                                           \
    }

/* float32 */
ROW2(add_f, float, float, float, x0 + x1)
ROW2(sub_f, float, float, float, x0 - x1)
ROW2(mul_f, float, float, float, x0 *x1)
ROW2(div_f, float, float, float, x0 / x1)
/* powf with the exponents that exports use most done exactly without the call: x^2 (LayerNorm's
 * variance as Pow(x, 2)) and x^1; with a constant exponent the compiler hoists the test out of the
 * row loop, and the x * x loop vectorises. Both are the correctly rounded results powf gives. */
static inline float pow_f(float a, float b) {
    return b == 2.0f ? a * a : b == 1.0f ? a : powf(a, b);
}

ROW2(pow_ff, float, float, float, pow_f(x0, x1))
ROW2(pow_fl, float, int64_t, float, pow_f(x0, (float)x1))
ROW2(pow_fi, float, int32_t, float, pow_f(x0, (float)x1))
/* Max/Min keep the earlier operand on ties and propagate NaN (numpy maximum/minimum) */
ROW2(max_f, float, float, float, (x1 > x0 || x1 != x1) ? x1 : x0)
ROW2(min_f, float, float, float, (x1 < x0 || x1 != x1) ? x1 : x0)
ROW2(eq_f, float, float, uint8_t, x0 == x1)
ROW2(lt_f, float, float, uint8_t, x0 < x1)
ROW2(gt_f, float, float, uint8_t, x0 > x1)
/* int64 */
ROW2(add_l, int64_t, int64_t, int64_t, WRAP64(+, x0, x1))
ROW2(sub_l, int64_t, int64_t, int64_t, WRAP64(-, x0, x1))
ROW2(mul_l, int64_t, int64_t, int64_t, WRAP64(*, x0, x1))
ROW2(div_l, int64_t, int64_t, int64_t, div_i64(x0, x1))
ROW2(pow_ll, int64_t, int64_t, int64_t, ipow(x0, x1))
ROW2(pow_li, int64_t, int32_t, int64_t, ipow(x0, x1))
ROW2(pow_lf, int64_t, float, int64_t, f2i64(pow((double)x0, (double)x1)))
ROW2(max_l, int64_t, int64_t, int64_t, x1 > x0 ? x1 : x0)
ROW2(min_l, int64_t, int64_t, int64_t, x1 < x0 ? x1 : x0)
ROW2(eq_l, int64_t, int64_t, uint8_t, x0 == x1)
ROW2(lt_l, int64_t, int64_t, uint8_t, x0 < x1)
ROW2(gt_l, int64_t, int64_t, uint8_t, x0 > x1)
/* int32 */
ROW2(add_i, int32_t, int32_t, int32_t, WRAP32(+, x0, x1))
ROW2(sub_i, int32_t, int32_t, int32_t, WRAP32(-, x0, x1))
ROW2(mul_i, int32_t, int32_t, int32_t, WRAP32(*, x0, x1))
ROW2(div_i, int32_t, int32_t, int32_t, div_i32(x0, x1))
ROW2(pow_ii, int32_t, int32_t, int32_t, (int32_t)ipow(x0, x1))
ROW2(pow_il, int32_t, int64_t, int32_t, (int32_t)ipow(x0, x1))
ROW2(pow_if, int32_t, float, int32_t, f2i32(pow((double)x0, (double)x1)))
ROW2(max_i, int32_t, int32_t, int32_t, x1 > x0 ? x1 : x0)
ROW2(min_i, int32_t, int32_t, int32_t, x1 < x0 ? x1 : x0)
ROW2(eq_i, int32_t, int32_t, uint8_t, x0 == x1)
ROW2(lt_i, int32_t, int32_t, uint8_t, x0 < x1)
ROW2(gt_i, int32_t, int32_t, uint8_t, x0 > x1)
/* float64, int8, uint8 (no Pow, no gradients); small integers wrap, x/0 gives 0 */
#define FAMILY(sfx, T, DIVX)                                  \
    ROW2(add_##sfx, T, T, T, x0 + x1)                         \
    ROW2(sub_##sfx, T, T, T, x0 - x1)                         \
    ROW2(mul_##sfx, T, T, T, x0 *x1)                          \
    ROW2(div_##sfx, T, T, T, DIVX)                            \
    ROW2(max_##sfx, T, T, T, (x1 > x0 || x1 != x1) ? x1 : x0) \
    ROW2(min_##sfx, T, T, T, (x1 < x0 || x1 != x1) ? x1 : x0) \
    ROW2(eq_##sfx, T, T, uint8_t, x0 == x1)                   \
    ROW2(lt_##sfx, T, T, uint8_t, x0 < x1)                    \
    ROW2(gt_##sfx, T, T, uint8_t, x0 > x1)
FAMILY(d, double, x0 / x1)
FAMILY(s8, int8_t, x1 ? x0 / x1 : 0)
FAMILY(u8, uint8_t, x1 ? x0 / x1 : 0)
/* bool */
ROW2(eq_b, uint8_t, uint8_t, uint8_t, (x0 != 0) == (x1 != 0))
ROW2(lt_b, uint8_t, uint8_t, uint8_t, (x0 != 0) < (x1 != 0))
ROW2(gt_b, uint8_t, uint8_t, uint8_t, (x0 != 0) > (x1 != 0))

/* broadcast copy of one operand, by element size */
#define ROWCOPY(name, T)                                                            \
    static void name(const void *const *p, const int64_t *s, void *py, int64_t n) { \
        const T *a = p[0];                                                          \
        T *y = py;                                                                  \
        if (s[0])                                                                   \
            memcpy(y, a, (size_t)n * sizeof(T));                                    \
        else                                                                        \
            for (int64_t i = 0; i < n; i++)                                         \
                y[i] = a[0];                                                        \
    }
ROWCOPY(copy_1, uint8_t)
ROWCOPY(copy_4, uint32_t)
ROWCOPY(copy_8, uint64_t)

/* Where: y = cond ? x : y, by element size */
#define ROWWHERE(name, T)                                                           \
    static void name(const void *const *p, const int64_t *s, void *py, int64_t n) { \
        const uint8_t *c = p[0];                                                    \
        const T *a = p[1], *b = p[2];                                               \
        T *y = py;                                                                  \
        for (int64_t i = 0; i < n; i++)                                             \
            y[i] = c[i * s[0]] ? a[i * s[1]] : b[i * s[2]];                         \
    }
ROWWHERE(where_1, uint8_t)
ROWWHERE(where_4, uint32_t)
ROWWHERE(where_8, uint64_t)

/* ---- gradient row kernels (float32 output) ---- */
#define GROW(name, TA, TB, D)                                                                   \
    static double name(const void *const *p, const int64_t *s, const float *y, const float *dy, \
                       float *dk, int64_t sk, int64_t n) {                                      \
        const TA *a = p[0];                                                                     \
        const TB *b = p[1];                                                                     \
        const int64_t sa = s[0], sb = s[1];                                                     \
        if (sk && sa && sb) { /* the common same-shape case, vectorizable */                    \
            for (int64_t i = 0; i < n; i++) {                                                   \
                const TA x0 = a[i];                                                             \
                const TB x1 = b[i];                                                             \
                const float yv = y[i];                                                          \
                (void)x0, (void)x1, (void)yv;                                                   \
                dk[i] += dy[i] * (D);                                                           \
            }                                                                                   \
            return 0.0;                                                                         \
        }                                                                                       \
        if (sk) {                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                   \
                const TA x0 = a[i * sa];                                                        \
                const TB x1 = b[i * sb];                                                        \
                const float yv = y[i];                                                          \
                (void)x0, (void)x1, (void)yv;                                                   \
                dk[i] += dy[i] * (D);                                                           \
            }                                                                                   \
            return 0.0;                                                                         \
        }                                                                                       \
        double acc = 0.0;                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                       \
            const TA x0 = a[i * sa];                                                            \
            const TB x1 = b[i * sb];                                                            \
            const float yv = y[i];                                                              \
            (void)x0, (void)x1, (void)yv;                                                       \
            acc += (double)(dy[i] * (D));                                                       \
        }                                                                                       \
        return acc;                                                                             \
    }

/* dy passes through unchanged (Add, Sub's first operand, Sum); reads no operand */
static double g_one(const void *const *p, const int64_t *s, const float *y, const float *dy,
                    float *dk, int64_t sk, int64_t n) {
    (void)p, (void)s, (void)y;
    if (sk) {
        for (int64_t i = 0; i < n; i++)
            dk[i] += dy[i];
        return 0.0;
    }
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++)
        acc += (double)dy[i];
    return acc;
}
static double g_neg(const void *const *p, const int64_t *s, const float *y, const float *dy,
                    float *dk, int64_t sk, int64_t n) {
    (void)p, (void)s, (void)y;
    if (sk) {
        for (int64_t i = 0; i < n; i++)
            dk[i] -= dy[i];
        return 0.0;
    }
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++)
        acc -= (double)dy[i];
    return acc;
}
GROW(g_mul_a, float, float, x1)
GROW(g_mul_b, float, float, x0)
GROW(g_div_a, float, float, 1.0f / x1)
GROW(g_div_b, float, float, -yv / x1)
/* d/dx x^b = b x^(b-1), taken as 0 where b = 0 (PyTorch's rule; avoids 0 * inf at x = 0) */
GROW(g_pow_a_f, float, float, x1 == 0.0f ? 0.0f : x1 * pow_f(x0, x1 - 1.0f))
GROW(g_pow_a_l, float, int64_t, x1 == 0 ? 0.0f : (float)x1 * pow_f(x0, (float)x1 - 1.0f))
GROW(g_pow_a_i, float, int32_t, x1 == 0 ? 0.0f : (float)x1 * pow_f(x0, (float)x1 - 1.0f))
/* d/db x^b = x^b log x, only where x > 0 (0 elsewhere) */
GROW(g_pow_b, float, float, x0 > 0.0f ? yv * logf(x0) : 0.0f)
/* Max/Min of two: operand 0 is selected on ties (see max_f / min_f); branch-free */
GROW(g_max_a, float, float, 1.0f - (float)((x1 > x0) | (x1 != x1)))
GROW(g_max_b, float, float, (float)((x1 > x0) | (x1 != x1)))
GROW(g_min_a, float, float, 1.0f - (float)((x1 < x0) | (x1 != x1)))
GROW(g_min_b, float, float, (float)((x1 < x0) | (x1 != x1)))
/* Where: p[0] is the condition (operands are cond, x, y; only cond is read) */
GROW(g_where_x, uint8_t, uint8_t, x0 ? 1.0f : 0.0f)
GROW(g_where_y, uint8_t, uint8_t, x0 ? 0.0f : 1.0f)

/* ---- op kinds and type dispatch ---- */
typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_LT, B_GT, B_SUM } bop;

static const char *const bop_name[] = { "Add", "Sub",   "Mul",  "Div",     "Pow", "Max",
                                        "Min", "Equal", "Less", "Greater", "Sum" };

/* Row kernel for op on operands of type ta (and tb, Pow's exponent); NULL when unsupported. */
static row_fn pick_row(bop op, idl_dtype ta, idl_dtype tb) {
    if (op == B_POW) {
        static const row_fn t[3][3] = { { pow_ff, pow_fl, pow_fi },
                                        { pow_lf, pow_ll, pow_li },
                                        { pow_if, pow_il, pow_ii } };
        int i = ta == IDL_DT_F32 ? 0 : ta == IDL_DT_I64 ? 1 : ta == IDL_DT_I32 ? 2 : -1;
        int j = tb == IDL_DT_F32 ? 0 : tb == IDL_DT_I64 ? 1 : tb == IDL_DT_I32 ? 2 : -1;
        return i < 0 || j < 0 ? NULL : t[i][j];
    }
    if (ta != tb) return NULL;
#define ROW_TABLE(sfx)                                                                    \
    {                                                                                     \
        add_##sfx, sub_##sfx, mul_##sfx, div_##sfx, NULL, max_##sfx, min_##sfx, eq_##sfx, \
            lt_##sfx, gt_##sfx, add_##sfx                                                 \
    }
    static const row_fn t[6][11] = { ROW_TABLE(f), ROW_TABLE(l),  ROW_TABLE(i),
                                     ROW_TABLE(d), ROW_TABLE(s8), ROW_TABLE(u8) };
#undef ROW_TABLE
    switch (ta) {
    case IDL_DT_F32:
        return t[0][op];
    case IDL_DT_I64:
        return t[1][op];
    case IDL_DT_I32:
        return t[2][op];
    case IDL_DT_F64:
        return t[3][op];
    case IDL_DT_I8:
        return t[4][op];
    case IDL_DT_U8:
        return t[5][op];
    case IDL_DT_BOOL:
        return op == B_EQ ? eq_b : op == B_LT ? lt_b : op == B_GT ? gt_b : NULL;
    default:
        return NULL;
    }
}

static void free_state(void *s) {
    idl__free(s);
}

/* ---- two-input ops: Add, Sub, Mul, Div, Pow, Equal, Less, Greater ---- */
typedef struct bin_state {
    bop op;
    iter it; /* operands a, b */
    row_fn fn;
    size_t esz[2], ey;
    bool full[2]; /* operand k is not broadcast (as many elements as y) */
    idl_dtype tb; /* exponent type (Pow) */
    bool act; /* a fused Relu or Clip (op.h fuse_act): Add of two float32 operands of y's size */
    float lo, hi;
} bin_state;

/* Shape of b as the output's broadcasting sees it. Before opset 7, b broadcasts to a only when
 * broadcast=1, aligned at `axis` (default: trailing axes), and the shapes must match otherwise. */
static idl_status legacy_b_shape(const idl__op_ctx *c, int *nb, int64_t *bs) {
    const idl_tensor *a = c->in[0], *b = c->in[1];
    *nb = b->ndim;
    for (int i = 0; i < b->ndim; i++)
        bs[i] = b->shape[i];
    if (c->opset >= 7) return IDL_OK;
    char sa[128], sb[128];
    if (!idl__attr_int(c->node, "broadcast", 0)) {
        if (!idl__same_shape(a, b))
            return idl__error(IDL_ERR_SHAPE, "shapes %s and %s differ and broadcast=0 (opset %lld)",
                              idl__shape_str(a->ndim, a->shape, sa, sizeof sa),
                              idl__shape_str(b->ndim, b->shape, sb, sizeof sb),
                              (long long)c->opset);
        return IDL_OK;
    }
    int64_t axis = idl__attr_int(c->node, "axis", a->ndim - b->ndim);
    if (axis < 0) axis += a->ndim;
    if (b->ndim > a->ndim || axis < 0 || axis + b->ndim > a->ndim)
        return idl__error(IDL_ERR_SHAPE, "cannot broadcast %s to %s at axis %lld",
                          idl__shape_str(b->ndim, b->shape, sb, sizeof sb),
                          idl__shape_str(a->ndim, a->shape, sa, sizeof sa), (long long)axis);
    for (int i = 0; i < a->ndim; i++)
        bs[i] = i >= axis && i < axis + b->ndim ? b->shape[i - axis] : 1;
    *nb = a->ndim;
    return IDL_OK;
}

static idl_status bin_prepare(idl__op_ctx *c, bop op) {
    const idl_tensor *a = c->in[0], *b = c->in[1];
    if (!a || !b) return idl__error(IDL_ERR_INVALID_ARG, "%s needs two inputs", bop_name[op]);
    if (op != B_POW && a->dtype != b->dtype)
        return idl__error(IDL_ERR_INVALID_ARG, "input types differ: %s and %s",
                          idl_dtype_name(a->dtype), idl_dtype_name(b->dtype));
    row_fn fn = pick_row(op, a->dtype, b->dtype);
    if (!fn) {
        if (op == B_POW)
            return idl__error(IDL_ERR_UNSUPPORTED,
                              "Pow of %s by %s is not supported (base and exponent: float32, int64 "
                              "or int32)",
                              idl_dtype_name(a->dtype), idl_dtype_name(b->dtype));
        return idl__error(
            IDL_ERR_UNSUPPORTED,
            "%s on %s is not supported (float32, float64, int64, int32, int8, uint8%s)",
            bop_name[op], idl_dtype_name(a->dtype), op >= B_EQ && op <= B_GT ? ", bool" : "");
    }
    int nb, nd;
    int64_t bs[IDL_MAX_DIMS], shp[IDL_MAX_DIMS];
    idl_status st = legacy_b_shape(c, &nb, bs);
    if (st) return st;
    if ((st = idl__broadcast_shape(a->ndim, a->shape, nb, bs, &nd, shp))) return st;
    bin_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    const int nds[2] = { a->ndim, nb };
    const int64_t *shapes[2] = { a->shape, bs };
    iter_init(&s->it, nd, shp, 2, nds, shapes);
    s->op = op;
    s->fn = fn;
    s->tb = b->dtype;
    s->esz[0] = idl_dtype_size(a->dtype);
    s->esz[1] = idl_dtype_size(b->dtype);
    const idl_dtype dy = op >= B_EQ && op <= B_GT ? IDL_DT_BOOL : a->dtype;
    s->ey = idl_dtype_size(dy);
    const int64_t ny = idl__numel(nd, shp);
    s->full[0] = idl_tensor_numel(a) == ny;
    s->full[1] = idl_tensor_numel(b) == ny;
    c->state = s;
    idl__set_out(c->out[0], dy, nd, shp);
    /* blocked operands of the output's shape (or a blocked one and a scalar) keep their layout */
    idl__layout_same(c, idl_tensor_numel(b) == 1 && !idl__same_shape(b, c->out[0]) ? 1 : 2);
    if (c->fuse_act && op == B_ADD && a->dtype == IDL_DT_F32 && s->full[0] && s->full[1]) {
        s->act = c->fused_act_done = true;
        s->lo = c->fuse_lo;
        s->hi = c->fuse_hi;
    }
    return IDL_OK;
}

/* y = act(a + b), element by element (operands and output in one layout): the Relu as the Relu op
 * computes it, a Clip as clamp */
static void add_act(const bin_state *s, const float *a, const float *b, float *y, int64_t n) {
    const float lo = s->lo, hi = s->hi;
    if (lo == 0.f && hi == INFINITY) {
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++) {
            float v = a[i] + b[i];
            y[i] = v > 0 ? v : 0.0f;
        }
        return;
    }
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        v = v < lo ? lo : v;
        y[i] = v > hi ? hi : v;
    }
}

static void bin_forward(idl__op_ctx *c) {
    const bin_state *s = c->state;
    if (s->act) {
        add_act(s, c->in[0]->data, c->in[1]->data, c->out[0]->data, idl_tensor_numel(c->out[0]));
        return;
    }
    const void *src[2] = { c->in[0]->data, c->in[1]->data };
    iter_run(&s->it, src, s->esz, c->out[0]->data, s->ey, s->fn);
}

static idl_status bin_backward(idl__op_ctx *c) {
    const bin_state *s = c->state;
    if (!c->dout[0] || c->out[0]->dtype != IDL_DT_F32) return IDL_OK;
    grow_fn g[2] = { NULL, NULL };
    switch (s->op) {
    case B_ADD:
        g[0] = g_one, g[1] = g_one;
        break;
    case B_SUB:
        g[0] = g_one, g[1] = g_neg;
        break;
    case B_MUL:
        g[0] = g_mul_a, g[1] = g_mul_b;
        break;
    case B_DIV:
        g[0] = g_div_a, g[1] = g_div_b;
        break;
    case B_POW:
        g[0] = s->tb == IDL_DT_F32 ? g_pow_a_f : s->tb == IDL_DT_I64 ? g_pow_a_l : g_pow_a_i;
        g[1] = s->tb == IDL_DT_F32 ? g_pow_b : NULL;
        break;
    default:
        return IDL_OK;
    }
    const void *src[2] = { c->in[0]->data, c->in[1]->data };
    const float *y = c->out[0]->data, *dy = c->dout[0]->data;
    for (int k = 0; k < 2; k++) {
        if (!c->din[k] || c->in[k]->dtype != IDL_DT_F32) continue;
        if (idl__din_fresh(c, k)) { /* IDL__OP_BWD_WRITES_FRESH: write din[k] whole */
            if (s->full[k] && (s->op == B_ADD || (s->op == B_SUB && k == 0))) {
                if (c->din[k]->data != dy) /* IDL__OP_BWD_INPLACE: dy's own buffer as it is */
                    memcpy(c->din[k]->data, dy, idl__tensor_bytes(c->din[k]));
                continue;
            }
            memset(c->din[k]->data, 0, idl__tensor_bytes(c->din[k]));
        }
        if (!g[k]) continue;
        idl_status st = iter_grad(&s->it, src, s->esz, k, s->full[k], y, dy, c->din[k]->data, g[k]);
        if (st) return st;
    }
    return IDL_OK;
}

/* What bin_backward reads (op.h bwd_reads), per op: input k's gradient kernel g[k] reads the
 * operands and y that its formula names (the other loads in GROW are dead). Add and Sub read
 * nothing (g_one, g_neg, or a copy of dy); Mul: da = dy b, db = dy a; Div: da = dy / b,
 * db = -dy y / b; Pow: da = dy b a^(b-1), db = dy y log a. No gradient flows unless y is
 * float32. */
static unsigned bin_bwd_reads(const idl__op_ctx *c) {
    const bin_state *s = c->state;
    if (c->out[0]->dtype != IDL_DT_F32) return 0;
    /* the gradients that may be asked (an integer exponent gets none) */
    const bool g0 = !c->in_const[0], g1 = !c->in_const[1] && c->in[1]->dtype == IDL_DT_F32;
    switch (s->op) {
    case B_MUL:
        return (g1 ? IDL__BWD_IN(0) : 0) | (g0 ? IDL__BWD_IN(1) : 0);
    case B_DIV:
        return (g0 || g1 ? IDL__BWD_IN(1) : 0) | (g1 ? IDL__BWD_OUT(0) : 0);
    case B_POW:
        return (g0 ? IDL__BWD_IN(0) | IDL__BWD_IN(1) : 0) |
               (g1 ? IDL__BWD_IN(0) | IDL__BWD_OUT(0) : 0);
    default: /* Add, Sub */
        return 0;
    }
}

#define BINARY_OP(stem, Name, OP, BWD, READS)                                                 \
    static idl_status stem##_prepare(idl__op_ctx *c) {                                        \
        return bin_prepare(c, OP);                                                            \
    }                                                                                         \
    const idl__op_def IDL__OP(stem) = {                                                       \
        Name,                                                                                 \
        2,                                                                                    \
        2,                                                                                    \
        1,                                                                                    \
        1,                                                                                    \
        stem##_prepare,                                                                       \
        bin_forward,                                                                          \
        BWD,                                                                                  \
        free_state,                                                                           \
        IDL__OP_BWD_WRITES_FRESH | IDL__OP_LAYOUT | (OP == B_ADD ? IDL__OP_BWD_INPLACE : 0u), \
        READS                                                                                 \
    };

BINARY_OP(add, "Add", B_ADD, bin_backward, idl__bwd_reads_none)
BINARY_OP(sub, "Sub", B_SUB, bin_backward, idl__bwd_reads_none)
BINARY_OP(mul, "Mul", B_MUL, bin_backward, bin_bwd_reads)
BINARY_OP(div, "Div", B_DIV, bin_backward, bin_bwd_reads)
BINARY_OP(pow, "Pow", B_POW, bin_backward, bin_bwd_reads)
BINARY_OP(equal, "Equal", B_EQ, NULL, NULL)
BINARY_OP(less, "Less", B_LT, NULL, NULL)
BINARY_OP(greater, "Greater", B_GT, NULL, NULL)

/* ---- Where(cond, x, y): out = cond ? x : y, all three broadcast ---- */
typedef struct where_state {
    iter it; /* operands cond, x, y */
    row_fn fn;
    size_t esz[3], ey;
    bool full[3];
} where_state;

static idl_status where_prepare(idl__op_ctx *c) {
    const idl_tensor *cond = c->in[0], *x = c->in[1], *y = c->in[2];
    if (!cond || !x || !y) return idl__error(IDL_ERR_INVALID_ARG, "Where needs three inputs");
    if (cond->dtype != IDL_DT_BOOL)
        return idl__error(IDL_ERR_INVALID_ARG, "Where's condition must be bool, is %s",
                          idl_dtype_name(cond->dtype));
    if (x->dtype != y->dtype)
        return idl__error(IDL_ERR_INVALID_ARG, "Where's X and Y types differ: %s and %s",
                          idl_dtype_name(x->dtype), idl_dtype_name(y->dtype));
    size_t es = idl_dtype_size(x->dtype);
    row_fn fn = es == 1 ? where_1 : es == 4 ? where_4 : es == 8 ? where_8 : NULL;
    if (!fn)
        return idl__error(IDL_ERR_UNSUPPORTED, "Where on %s is not supported",
                          idl_dtype_name(x->dtype));
    int n1, nd;
    int64_t s1[IDL_MAX_DIMS], shp[IDL_MAX_DIMS];
    idl_status st = idl__broadcast_shape(cond->ndim, cond->shape, x->ndim, x->shape, &n1, s1);
    if (st) return st;
    if ((st = idl__broadcast_shape(n1, s1, y->ndim, y->shape, &nd, shp))) return st;
    where_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    const int nds[3] = { cond->ndim, x->ndim, y->ndim };
    const int64_t *shapes[3] = { cond->shape, x->shape, y->shape };
    iter_init(&s->it, nd, shp, 3, nds, shapes);
    s->fn = fn;
    s->esz[0] = 1;
    s->esz[1] = s->esz[2] = s->ey = es;
    const int64_t ny = idl__numel(nd, shp);
    for (int k = 0; k < 3; k++)
        s->full[k] = idl_tensor_numel(c->in[k]) == ny;
    c->state = s;
    idl__set_out(c->out[0], x->dtype, nd, shp);
    return IDL_OK;
}

static void where_forward(idl__op_ctx *c) {
    const where_state *s = c->state;
    const void *src[3] = { c->in[0]->data, c->in[1]->data, c->in[2]->data };
    iter_run(&s->it, src, s->esz, c->out[0]->data, s->ey, s->fn);
}

static idl_status where_backward(idl__op_ctx *c) {
    const where_state *s = c->state;
    if (!c->dout[0] || c->out[0]->dtype != IDL_DT_F32) return IDL_OK;
    const void *src[3] = { c->in[0]->data, c->in[1]->data, c->in[2]->data };
    const float *y = c->out[0]->data, *dy = c->dout[0]->data;
    for (int k = 1; k < 3; k++) {
        if (!c->din[k]) continue;
        idl_status st = iter_grad(&s->it, src, s->esz, k, s->full[k], y, dy, c->din[k]->data,
                                  k == 1 ? g_where_x : g_where_y);
        if (st) return st;
    }
    return IDL_OK;
}
/* Where's backward reads the condition only (g_where_x / g_where_y). */
const idl__op_def IDL__OP(where) = {
    "Where",           3, 3, 1, 1, where_prepare, where_forward, where_backward, free_state, 0,
    idl__bwd_reads_in0
};

/* ---- variadic Max, Min, Sum: y = x0, then y = op(y, xk) for k = 1..n-1 in place ---- */
typedef struct var_state {
    bop op;
    int n;
    row_fn fn, copy;
    size_t esz;
    int nd; /* output rank and shape */
    int64_t shape[IDL_MAX_DIMS];
    iter *its;                    /* its[0]: (x0); its[k]: (y, xk) */
    int64_t (*str)[IDL_MAX_DIMS]; /* str[k]: strides of xk over the output shape (Max/Min grads) */
    bool *full;                   /* xk is not broadcast */
} var_state;

static void var_free(void *p) {
    var_state *s = p;
    if (!s) return;
    idl__free(s->its);
    idl__free(s->str);
    idl__free(s->full);
    idl__free(s);
}

static idl_status var_prepare(idl__op_ctx *c, bop op) {
    const int n = c->n_in;
    if (n < 1) return idl__error(IDL_ERR_INVALID_ARG, "%s needs at least one input", bop_name[op]);
    for (int k = 0; k < n; k++)
        if (!c->in[k]) return idl__error(IDL_ERR_INVALID_ARG, "input %d is required", k);
    const idl_dtype dt = c->in[0]->dtype;
    for (int k = 1; k < n; k++)
        if (c->in[k]->dtype != dt)
            return idl__error(IDL_ERR_INVALID_ARG, "input %d has type %s, input 0 has %s", k,
                              idl_dtype_name(c->in[k]->dtype), idl_dtype_name(dt));
    row_fn fn = dt == IDL_DT_BOOL ? NULL : pick_row(op, dt, dt);
    if (!fn)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "%s on %s is not supported (float32, float64, int64, int32, int8, uint8)",
                          bop_name[op], idl_dtype_name(dt));
    int nd = c->in[0]->ndim;
    int64_t shp[IDL_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        shp[i] = c->in[0]->shape[i];
    for (int k = 1; k < n; k++) {
        int64_t t[IDL_MAX_DIMS];
        int nt;
        idl_status st = idl__broadcast_shape(nd, shp, c->in[k]->ndim, c->in[k]->shape, &nt, t);
        if (st) return st;
        nd = nt;
        for (int i = 0; i < nd; i++)
            shp[i] = t[i];
    }
    var_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    s->its = idl__calloc((size_t)n, sizeof *s->its);
    s->str = idl__calloc((size_t)n, sizeof *s->str);
    s->full = idl__calloc((size_t)n, sizeof *s->full);
    if (!s->its || !s->str || !s->full) {
        var_free(s);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    s->op = op;
    s->n = n;
    s->fn = fn;
    s->esz = idl_dtype_size(dt);
    s->copy = s->esz == 1 ? copy_1 : s->esz == 4 ? copy_4 : copy_8;
    s->nd = nd;
    for (int i = 0; i < nd; i++)
        s->shape[i] = shp[i];
    const int64_t ny = idl__numel(nd, shp);
    for (int k = 0; k < n; k++) {
        const idl_tensor *x = c->in[k];
        if (k == 0) {
            iter_init(&s->its[0], nd, shp, 1, &x->ndim, (const int64_t *const[]){ x->shape });
        } else {
            const int nds[2] = { nd, x->ndim };
            const int64_t *shapes[2] = { shp, x->shape };
            iter_init(&s->its[k], nd, shp, 2, nds, shapes);
        }
        idl__broadcast_strides(x->ndim, x->shape, nd, shp, s->str[k]);
        s->full[k] = idl_tensor_numel(x) == ny;
    }
    c->state = s;
    idl__set_out(c->out[0], dt, nd, shp);
    return IDL_OK;
}

static void var_forward(idl__op_ctx *c) {
    const var_state *s = c->state;
    void *y = c->out[0]->data;
    const size_t e2[2] = { s->esz, s->esz };
    const void *src0[1] = { c->in[0]->data };
    iter_run(&s->its[0], src0, e2, y, s->esz, s->copy);
    for (int k = 1; k < s->n; k++) {
        const void *src[2] = { y, c->in[k]->data };
        iter_run(&s->its[k], src, e2, y, s->esz, s->fn);
    }
}

/* Max/Min: input k receives dy where it is the first input equal to y (serial, in order). */
static idl_status select_backward(const idl__op_ctx *c, const var_state *s, int k) {
    const float *y = c->out[0]->data, *dy = c->dout[0]->data;
    float *dk = c->din[k]->data;
    const int64_t ny = idl__numel(s->nd, s->shape);
    int64_t idx[IDL_MAX_DIMS] = { 0 };
    int64_t off[64];
    const int nk = k + 1; /* inputs 0..k decide */
    int64_t *offs = nk <= 64 ? off : idl__calloc((size_t)nk, sizeof(int64_t));
    if (!offs) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int j = 0; j < nk; j++)
        offs[j] = 0;
    for (int64_t i = 0; i < ny; i++) {
        const float v = y[i];
        int sel = -1;
        for (int j = 0; j < nk && sel < 0; j++) {
            const float xj = ((const float *)c->in[j]->data)[offs[j]];
            if (xj == v || (xj != xj && v != v)) sel = j;
        }
        if (sel == k) dk[offs[k]] += dy[i];
        for (int d = s->nd - 1; d >= 0; d--) { /* odometer step */
            idx[d]++;
            for (int j = 0; j < nk; j++)
                offs[j] += s->str[j][d];
            if (idx[d] < s->shape[d]) break;
            for (int j = 0; j < nk; j++)
                offs[j] -= s->str[j][d] * s->shape[d];
            idx[d] = 0;
        }
    }
    if (offs != off) idl__free(offs);
    return IDL_OK;
}

static idl_status var_backward(idl__op_ctx *c) {
    const var_state *s = c->state;
    if (!c->dout[0] || c->out[0]->dtype != IDL_DT_F32) return IDL_OK;
    const float *y = c->out[0]->data, *dy = c->dout[0]->data;
    const size_t e2[2] = { sizeof(float), sizeof(float) };
    for (int k = 0; k < s->n; k++) {
        if (!c->din[k]) continue;
        float *dk = c->din[k]->data;
        idl_status st = IDL_OK;
        if (s->n == 1) {
            const void *src[1] = { c->in[0]->data };
            st = iter_grad(&s->its[0], src, e2, 0, s->full[0], y, dy, dk, g_one);
        } else if (s->op == B_SUM) {
            const void *src[2] = { y, c->in[k]->data };
            if (k == 0)
                st = iter_grad(&s->its[0], src + 1, e2, 0, s->full[0], y, dy, dk, g_one);
            else
                st = iter_grad(&s->its[k], src, e2, 1, s->full[k], y, dy, dk, g_one);
        } else if (s->n == 2) {
            /* the same rule as the forward's tie-breaking; its[1] iterates (y, x1), so build the
             * pair (x0, x1) from the variadic iterator's strides */
            iter it;
            const int nds[2] = { c->in[0]->ndim, c->in[1]->ndim };
            const int64_t *shapes[2] = { c->in[0]->shape, c->in[1]->shape };
            iter_init(&it, s->nd, s->shape, 2, nds, shapes);
            const void *src[2] = { c->in[0]->data, c->in[1]->data };
            grow_fn g = s->op == B_MAX ? (k ? g_max_b : g_max_a) : (k ? g_min_b : g_min_a);
            st = iter_grad(&it, src, e2, k, s->full[k], y, dy, dk, g);
        } else {
            st = select_backward(c, s, k);
        }
        if (st) return st;
    }
    return IDL_OK;
}

/* What var_backward reads: Sum (and any single input) nothing; Max/Min of two both inputs
 * (g_max_* / g_min_*), of more every input up to k and y (select_backward). */
static unsigned var_bwd_reads(const idl__op_ctx *c) {
    const var_state *s = c->state;
    if (c->out[0]->dtype != IDL_DT_F32 || s->n == 1 || s->op == B_SUM) return 0;
    unsigned r = s->n > 2 ? IDL__BWD_OUT(0) : 0;
    for (int k = 0; k < s->n && k < 16; k++)
        r |= IDL__BWD_IN(k);
    return r;
}

#define VARIADIC_OP(stem, Name, OP)                                                             \
    static idl_status stem##_prepare(idl__op_ctx *c) {                                          \
        return var_prepare(c, OP);                                                              \
    }                                                                                           \
    const idl__op_def IDL__OP(stem) = { Name,           1,           4096,         1,        1, \
                                        stem##_prepare, var_forward, var_backward, var_free, 0, \
                                        var_bwd_reads };

VARIADIC_OP(max, "Max", B_MAX)
VARIADIC_OP(min, "Min", B_MIN)
VARIADIC_OP(sum, "Sum", B_SUM)
