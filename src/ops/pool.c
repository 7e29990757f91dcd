/* pool.c — MaxPool (with the optional Indices output), AveragePool, GlobalAveragePool and
 * GlobalMaxPool over 1-D, 2-D and 3-D spatial inputs, forward and backward, in plain C with OpenMP
 * over the N*C planes.
 *   x (N,C,D1..Dn) -> y (N,C,O1..On); Indices (N,C,O1..On) int64, flat indices into x.
 * Internally every input is seen as (N*C) planes of (D,H,W), padding missing leading spatial axes
 * with size 1 (kernel 1, stride 1, no padding).
 * ONNX semantics: out = floor or ceil((in + pad_begin + pad_end - ((k-1)*d+1)) / s) + 1, and with
 * ceil_mode the last window must start inside the input or the left padding. Padded positions
 * never win a max; AveragePool divides by the number of real elements (count_include_pad=0) or by
 * the number of window taps inside the explicitly padded extent (count_include_pad=1, PyTorch's
 * rule, so windows that ceil_mode lets run past the padding count less; ONNX Runtime 1.26 and
 * onnx.reference divide such a last window by the whole kernel instead: the two differ only there,
 * and the models we run come from PyTorch).
 * MaxPool backward routes each output's gradient to the first maximum of its window (row-major
 * order), recomputed from x; AveragePool backward spreads it evenly over the counted taps.
 * Types: float32; MaxPool also uint8 and int8 (opset 12, forward only). A window with no real
 * element (only possible with dilation) yields 0. */
#include "ops/op.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { P_MAX, P_AVG, P_GMAX, P_GAVG };

typedef struct pool_state {
    int kind;
    bool count_pad;        /* AveragePool count_include_pad */
    int storage_order;     /* Indices: 0 row-major, 1 column-major over the spatial axes */
    int64_t planes;        /* N*C */
    int64_t in[3], out[3]; /* (D,H,W) */
    int64_t k[3], s[3], d[3], pb[3], pe[3];
    /* per axis i and output position o: taps [lo, hi) fall inside the input; cnt counts the taps
     * inside the padded extent (count_include_pad's divisor) */
    int64_t *lo[3], *hi[3], *cnt[3];
    int64_t *buf;
    int blk;                /* >0: x (and a windowed pool's y) in oneDNN's layout with blk channels
                               a block, n C/blk spatial blk (see channel_block) */
    dnnl_memory_desc_t omd; /* y's layout then */
} pool_state;

static void pool_free(void *p) {
    pool_state *s = p;
    if (s) idl__free(s->buf);
    idl__free(s);
}

/* Fills the per-axis tap tables (see pool_state). */
static idl_status pool_tables(pool_state *s) {
    int64_t tot = s->out[0] + s->out[1] + s->out[2];
    s->buf = idl__calloc((size_t)(3 * tot) + 1, sizeof(int64_t));
    if (!s->buf) return idl__error(IDL_ERR_NOMEM, "out of memory");
    int64_t *q = s->buf;
    for (int i = 0; i < 3; i++) {
        s->lo[i] = q;
        s->hi[i] = q + s->out[i];
        s->cnt[i] = q + 2 * s->out[i];
        q += 3 * s->out[i];
        for (int64_t o = 0; o < s->out[i]; o++) {
            int64_t start = o * s->s[i] - s->pb[i], lo = s->k[i], hi = 0, np = 0;
            for (int64_t t = 0; t < s->k[i]; t++) {
                int64_t p = start + t * s->d[i];
                if (p >= -s->pb[i] && p < s->in[i] + s->pe[i]) np++;
                if (p >= 0 && p < s->in[i]) {
                    if (t < lo) lo = t;
                    hi = t + 1;
                }
            }
            s->lo[i][o] = lo < hi ? lo : 0;
            s->hi[i][o] = lo < hi ? hi : 0;
            s->cnt[i][o] = np;
        }
    }
    return IDL_OK;
}

static int64_t ceildiv(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

static idl_status check_input(const idl__op_ctx *c, int min_rank, bool int8_ok) {
    const idl_tensor *x = c->in[0];
    bool i8 = x && (x->dtype == IDL_DT_U8 || x->dtype == IDL_DT_I8);
    idl_status st = int8_ok && i8 ? IDL_OK : idl__need_f32(c, 0);
    if (st) return st;
    if (x->ndim < min_rank || x->ndim > 5)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "input of rank %d: only (N,C) plus 1 to 3 spatial axes are "
                          "supported",
                          x->ndim);
    return IDL_OK;
}

static idl_status pool_prepare_shape(idl__op_ctx *c, int kind) {
    idl_status st = check_input(c, kind == P_MAX || kind == P_AVG ? 3 : 2, kind == P_MAX);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    const idl__node *n = c->node;
    int ns = x->ndim - 2, off = 3 - ns;
    pool_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->kind = kind;
    s->planes = x->shape[0] * x->shape[1];
    for (int i = 0; i < 3; i++) {
        s->in[i] = i < off ? 1 : x->shape[2 + i - off];
        s->out[i] = 1;
        s->k[i] = s->s[i] = s->d[i] = 1;
    }
    int64_t yshape[5] = { x->shape[0], x->shape[1], 1, 1, 1 };
    if (kind == P_GMAX || kind == P_GAVG) {
        for (int i = 0; i < 3; i++)
            s->k[i] = s->in[i];
        idl__set_out(c->out[0], IDL_DT_F32, x->ndim, yshape);
        return IDL_OK;
    }
    int64_t k[3], str[3], dil[3], pads[6];
    if ((st = idl__attr_ints_n(n, "kernel_shape", ns, 1, 1, k, true))) return st;
    if ((st = idl__attr_ints_n(n, "strides", ns, 1, 1, str, false))) return st;
    if ((st = idl__attr_ints_n(n, "dilations", ns, 1, 1, dil, false))) return st;
    if ((st = idl__attr_ints_n(n, "pads", 2 * ns, 0, 0, pads, false))) return st;
    int64_t ceil_mode = idl__attr_int(n, "ceil_mode", 0);
    s->count_pad = idl__attr_int(n, "count_include_pad", 0) != 0;
    s->storage_order = (int)idl__attr_int(n, "storage_order", 0);
    if (s->storage_order != 0 && s->storage_order != 1)
        return idl__error(IDL_ERR_INVALID_ARG, "storage_order must be 0 or 1");
    const char *ap = idl__attr_str(n, "auto_pad", "NOTSET");
    bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
    if (!same && strcmp(ap, "NOTSET") && strcmp(ap, "VALID") && *ap)
        return idl__error(IDL_ERR_INVALID_ARG, "unknown auto_pad '%s'", ap);
    for (int i = 0; i < ns; i++) {
        int j = off + i;
        int64_t in = s->in[j], keff = (k[i] - 1) * dil[i] + 1, pb = pads[i], pe = pads[ns + i], out;
        if (same) {
            out = ceildiv(in, str[i]);
            int64_t total = IDL_MAX(0, (out - 1) * str[i] + keff - in);
            pb = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            if (!strcmp(ap, "VALID")) pb = pe = 0;
            int64_t num = in + pb + pe - keff;
            if (num < 0)
                return idl__error(IDL_ERR_SHAPE,
                                  "spatial axis %d: input %lld plus padding %lld+%lld is smaller "
                                  "than the window %lld",
                                  i, (long long)in, (long long)pb, (long long)pe, (long long)keff);
            out = (ceil_mode ? ceildiv(num, str[i]) : num / str[i]) + 1;
            if (ceil_mode && (out - 1) * str[i] >= in + pb) out--;
        }
        s->k[j] = k[i];
        s->s[j] = str[i];
        s->d[j] = dil[i];
        s->pb[j] = pb;
        s->pe[j] = pe;
        s->out[j] = out;
        yshape[2 + i] = out;
    }
    idl__set_out(c->out[0], x->dtype, x->ndim, yshape);
    if (c->n_out > 1 && c->out[1]) {
        if (kind != P_MAX)
            return idl__error(IDL_ERR_INVALID_ARG, "only MaxPool has a second output");
        idl__set_out(c->out[1], IDL_DT_I64, x->ndim, yshape);
    }
    return pool_tables(s);
}

/* First maximum (row-major tap order) of the window at output (o0,o1,o2) of a plane; returns its
 * in-plane offset, or -1 when the window holds no real element (then *best_out = 0). */
static inline int64_t window_argmax(const pool_state *s, const float *x, int64_t o0, int64_t o1,
                                    int64_t o2, float *best_out) {
    float best = 0.0f;
    int64_t bi = -1;
    int64_t b0 = o0 * s->s[0] - s->pb[0], b1 = o1 * s->s[1] - s->pb[1],
            b2 = o2 * s->s[2] - s->pb[2];
    int64_t l2 = s->lo[2][o2], h2 = s->hi[2][o2], d2 = s->d[2];
    for (int64_t a = s->lo[0][o0]; a < s->hi[0][o0]; a++) {
        int64_t id = b0 + a * s->d[0];
        for (int64_t b = s->lo[1][o1]; b < s->hi[1][o1]; b++) {
            int64_t rowoff = (id * s->in[1] + b1 + b * s->d[1]) * s->in[2] + b2;
            const float *row = x + rowoff;
            for (int64_t e = l2; e < h2; e++) {
                float v = row[e * d2];
                if (bi < 0 || v > best) {
                    best = v;
                    bi = rowoff + e * d2;
                }
            }
        }
    }
    *best_out = best;
    return bi;
}

/* The same maximum as window_argmax, without tracking where it is (forward without Indices). */
static inline float window_max(const pool_state *s, const float *x, int64_t o0, int64_t o1,
                               int64_t o2) {
    int64_t l0 = s->lo[0][o0], h0 = s->hi[0][o0], l1 = s->lo[1][o1], h1 = s->hi[1][o1];
    int64_t l2 = s->lo[2][o2], h2 = s->hi[2][o2], d2 = s->d[2];
    if (l0 >= h0 || l1 >= h1 || l2 >= h2) return 0.0f;
    int64_t b0 = o0 * s->s[0] - s->pb[0], b1 = o1 * s->s[1] - s->pb[1],
            b2 = o2 * s->s[2] - s->pb[2];
    float best = x[((b0 + l0 * s->d[0]) * s->in[1] + b1 + l1 * s->d[1]) * s->in[2] + b2 + l2 * d2];
    for (int64_t a = l0; a < h0; a++) {
        int64_t id = b0 + a * s->d[0];
        for (int64_t b = l1; b < h1; b++) {
            const float *row = x + (id * s->in[1] + b1 + b * s->d[1]) * s->in[2] + b2;
            for (int64_t e = l2; e < h2; e++) {
                float v = row[e * d2];
                best = v > best ? v : best;
            }
        }
    }
    return best;
}

/* 1 / divisor of the average at output o. */
static inline float window_inv(const pool_state *s, const int64_t o[3]) {
    int64_t div = 1;
    for (int i = 0; i < 3; i++)
        div *= s->count_pad ? s->cnt[i][o[i]] : s->hi[i][o[i]] - s->lo[i][o[i]];
    return div > 0 ? 1.0f / (float)div : 0.0f;
}

/* MaxPool over 8-bit integers (quantized models): values only, no gradient. */
#define MAXPOOL_INT(T)                                                                           \
    static void maxpool_##T(const pool_state *s, const T *x, T *y, int64_t *ind) {               \
        int64_t ivol = s->in[0] * s->in[1] * s->in[2], ovol = s->out[0] * s->out[1] * s->out[2]; \
        for (int64_t p = 0; p < s->planes; p++)                                                  \
            for (int64_t o0 = 0; o0 < s->out[0]; o0++)                                           \
                for (int64_t o1 = 0; o1 < s->out[1]; o1++)                                       \
                    for (int64_t o2 = 0; o2 < s->out[2]; o2++) {                                 \
                        int64_t bi = -1, oi = p * ovol + (o0 * s->out[1] + o1) * s->out[2] + o2; \
                        T best = 0;                                                              \
                        for (int64_t a = s->lo[0][o0]; a < s->hi[0][o0]; a++)                    \
                            for (int64_t b = s->lo[1][o1]; b < s->hi[1][o1]; b++)                \
                                for (int64_t e = s->lo[2][o2]; e < s->hi[2][o2]; e++) {          \
                                    int64_t id = o0 * s->s[0] - s->pb[0] + a * s->d[0];          \
                                    int64_t ih = o1 * s->s[1] - s->pb[1] + b * s->d[1];          \
                                    int64_t iw = o2 * s->s[2] - s->pb[2] + e * s->d[2];          \
                                    int64_t off = (id * s->in[1] + ih) * s->in[2] + iw;          \
                                    if (bi < 0 || x[p * ivol + off] > best) {                    \
                                        best = x[p * ivol + off];                                \
                                        bi = s->storage_order                                    \
                                                 ? (iw * s->in[1] + ih) * s->in[0] + id          \
                                                 : off;                                          \
                                    }                                                            \
                                }                                                                \
                        y[oi] = best;                                                            \
                        if (ind) ind[oi] = p * ivol + (bi < 0 ? 0 : bi);                         \
                    }                                                                            \
    }
MAXPOOL_INT(uint8_t)
MAXPOOL_INT(int8_t)

/* ---- the blocked layout (channel_block): q runs over N*C/B blocks of B interleaved channels;
 * each lane does exactly what the plain loops do for its channel, in the same order ---- */
#define MAX_BLK 16

/* Runs BODY for every tap of output window o that falls inside the input, in row-major tap
 * order, with OFF the tap's offset in a (D, H, W) plane. */
#define FOR_WINDOW_TAPS(s, o, OFF, ...)                                                          \
    for (int64_t a_ = (s)->lo[0][(o)[0]]; a_ < (s)->hi[0][(o)[0]]; a_++) {                       \
        int64_t id_ = (o)[0] * (s)->s[0] - (s)->pb[0] + a_ * (s)->d[0];                          \
        for (int64_t b_ = (s)->lo[1][(o)[1]]; b_ < (s)->hi[1][(o)[1]]; b_++) {                   \
            int64_t ih_ = (o)[1] * (s)->s[1] - (s)->pb[1] + b_ * (s)->d[1];                      \
            for (int64_t e_ = (s)->lo[2][(o)[2]]; e_ < (s)->hi[2][(o)[2]]; e_++) {               \
                const int64_t OFF = (id_ * (s)->in[1] + ih_) * (s)->in[2] + (o)[2] * (s)->s[2] - \
                                    (s)->pb[2] + e_ * (s)->d[2];                                 \
                __VA_ARGS__                                                                      \
            }                                                                                    \
        }                                                                                        \
    }

static void pool_forward_blocked(const pool_state *s, const float *x, float *y) {
    const int64_t B = s->blk, nq = s->planes / B;
    const int64_t ivol = s->in[0] * s->in[1] * s->in[2], ovol = s->out[0] * s->out[1] * s->out[2];
    if (s->kind == P_GAVG || s->kind == P_GMAX) {
#pragma omp parallel for if (s->planes * ivol > IDL_OMP_MIN) schedule(static)
        for (int64_t q = 0; q < nq; q++) {
            const float *xq = x + q * ivol * B;
            double acc[MAX_BLK];
            float best[MAX_BLK];
            for (int64_t l = 0; l < B; l++) {
                acc[l] = 0;
                best[l] = ivol ? xq[l] : 0.0f;
            }
            for (int64_t i = 0; i < ivol; i++)
                for (int64_t l = 0; l < B; l++) {
                    float v = xq[i * B + l];
                    acc[l] += v;
                    best[l] = i > 0 && v > best[l] ? v : best[l];
                }
            for (int64_t l = 0; l < B; l++) /* (N, C, 1..) is the same memory in both layouts */
                y[q * B + l] = s->kind == P_GMAX ? best[l]
                               : ivol            ? (float)(acc[l] / (double)ivol)
                                                 : 0.0f;
        }
        return;
    }
    int64_t work = s->planes * ovol * s->k[0] * s->k[1] * s->k[2];
#pragma omp parallel for if (work > IDL_OMP_MIN) schedule(static)
    for (int64_t q = 0; q < nq; q++) {
        const float *xq = x + q * ivol * B;
        float *yq = y + q * ovol * B;
        int64_t o[3];
        for (o[0] = 0; o[0] < s->out[0]; o[0]++)
            for (o[1] = 0; o[1] < s->out[1]; o[1]++)
                for (o[2] = 0; o[2] < s->out[2]; o[2]++) {
                    float r[MAX_BLK];
                    bool any = false;
                    for (int64_t l = 0; l < B; l++)
                        r[l] = 0.0f;
                    FOR_WINDOW_TAPS(s, o, off, {
                        const float *v = xq + off * B;
                        if (s->kind == P_MAX)
                            for (int64_t l = 0; l < B; l++)
                                r[l] = !any || v[l] > r[l] ? v[l] : r[l];
                        else
                            for (int64_t l = 0; l < B; l++)
                                r[l] += v[l];
                        any = true;
                    })
                    float inv = s->kind == P_AVG ? window_inv(s, o) : 1.0f;
                    int64_t oi = (o[0] * s->out[1] + o[1]) * s->out[2] + o[2];
                    for (int64_t l = 0; l < B; l++)
                        yq[oi * B + l] = r[l] * inv;
                }
    }
}

typedef float idl__v8f __attribute__((vector_size(32)));
typedef int32_t idl__v8i __attribute__((vector_size(32)));

/* MaxPool's backward on one block of 8 channels (x, dy and dx at that block): what the generic loop
 * of pool_backward_blocked does (the first maximum of each lane's window in tap order gets the
 * lane's gradient; NaN never wins), with the running maximum and its offset as 8-lane vectors, so
 * that the compare and select run as vector instructions (3x faster on resnet50's MaxPool). */
static void maxpool_backward_b8(const pool_state *s, const float *xq, const float *dyq,
                                float *dxq) {
    int64_t o[3];
    for (o[0] = 0; o[0] < s->out[0]; o[0]++)
        for (o[1] = 0; o[1] < s->out[1]; o[1]++)
            for (o[2] = 0; o[2] < s->out[2]; o[2]++) {
                idl__v8f best = { 0 };
                idl__v8i bi = { 0 };
                bool any = false;
                FOR_WINDOW_TAPS(s, o, tap, {
                    idl__v8f v;
                    memcpy(&v, xq + tap * 8, sizeof v);
                    idl__v8i off = (idl__v8i){ 0 } + (int32_t)(tap * 8);
                    idl__v8i gt = any ? v > best : ~(idl__v8i){ 0 };
                    best = (idl__v8f)(((idl__v8i)v & gt) | ((idl__v8i)best & ~gt));
                    bi = (off & gt) | (bi & ~gt);
                    any = true;
                })
                if (!any) continue;
                const float *g = dyq + ((o[0] * s->out[1] + o[1]) * s->out[2] + o[2]) * 8;
                for (int l = 0; l < 8; l++)
                    dxq[bi[l] + l] += g[l];
            }
}

static void pool_backward_blocked(const pool_state *s, const float *x, const float *dy, float *dx) {
    const int64_t B = s->blk, nq = s->planes / B;
    const int64_t ivol = s->in[0] * s->in[1] * s->in[2], ovol = s->out[0] * s->out[1] * s->out[2];
    int64_t work = s->planes * ovol * s->k[0] * s->k[1] * s->k[2];
    bool b8 = s->kind == P_MAX && B == 8 && ivol <= INT32_MAX / 8;
#pragma omp parallel for if (work > IDL_OMP_MIN) schedule(static)
    for (int64_t q = 0; q < nq; q++) {
        const float *xq = x + q * ivol * B;
        float *dxq = dx + q * ivol * B;
        if (b8) {
            maxpool_backward_b8(s, xq, dy + q * ovol * 8, dxq);
            continue;
        }
        if (s->kind == P_GAVG || s->kind == P_GMAX) {
            for (int64_t l = 0; l < B && ivol; l++) {
                float g = dy[q * B + l];
                if (s->kind == P_GMAX) {
                    int64_t bi = 0;
                    for (int64_t i = 1; i < ivol; i++)
                        if (xq[i * B + l] > xq[bi * B + l]) bi = i;
                    dxq[bi * B + l] += g;
                } else {
                    g /= (float)ivol;
                    for (int64_t i = 0; i < ivol; i++)
                        dxq[i * B + l] += g;
                }
            }
            continue;
        }
        int64_t o[3];
        for (o[0] = 0; o[0] < s->out[0]; o[0]++)
            for (o[1] = 0; o[1] < s->out[1]; o[1]++)
                for (o[2] = 0; o[2] < s->out[2]; o[2]++) {
                    const float *g =
                        dy + (q * ovol + (o[0] * s->out[1] + o[1]) * s->out[2] + o[2]) * B;
                    float inv = s->kind == P_AVG ? window_inv(s, o) : 1.0f;
                    /* per lane: the first maximum in tap order (the taps' running maximum and
                     * where it is, lanes side by side), then its gradient */
                    float best[MAX_BLK];
                    int64_t bi[MAX_BLK];
                    bool any = false;
                    FOR_WINDOW_TAPS(s, o, tap, {
                        int64_t off = tap * B;
                        const float *v = xq + off;
                        if (s->kind == P_AVG) {
                            for (int64_t l = 0; l < B; l++)
                                dxq[off + l] += g[l] * inv;
                        } else if (!any) {
                            for (int64_t l = 0; l < B; l++) {
                                best[l] = v[l];
                                bi[l] = off;
                            }
                        } else {
                            for (int64_t l = 0; l < B; l++) {
                                bool gt = v[l] > best[l];
                                best[l] = gt ? v[l] : best[l];
                                bi[l] = gt ? off : bi[l];
                            }
                        }
                        any = true;
                    })
                    if (s->kind == P_MAX && any)
                        for (int64_t l = 0; l < B; l++)
                            dxq[bi[l] + l] += g[l];
                }
    }
}

static void pool_forward(idl__op_ctx *c) {
    const pool_state *s = c->state;
    if (s->blk) {
        pool_forward_blocked(s, c->in[0]->data, c->out[0]->data);
        return;
    }
    if (c->in[0]->dtype != IDL_DT_F32) {
        int64_t *ind = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
        if (c->in[0]->dtype == IDL_DT_U8)
            maxpool_uint8_t(s, c->in[0]->data, c->out[0]->data, ind);
        else
            maxpool_int8_t(s, c->in[0]->data, c->out[0]->data, ind);
        return;
    }
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t *ind = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
    int64_t ivol = s->in[0] * s->in[1] * s->in[2], ovol = s->out[0] * s->out[1] * s->out[2];
    int64_t work = s->planes * ovol * s->k[0] * s->k[1] * s->k[2];
    if (s->kind == P_GAVG || s->kind == P_GMAX) {
#pragma omp parallel for if (s->planes * ivol > IDL_OMP_MIN) schedule(static)
        for (int64_t p = 0; p < s->planes; p++) {
            const float *xp = x + p * ivol;
            if (s->kind == P_GAVG) {
                double acc = 0;
                for (int64_t i = 0; i < ivol; i++)
                    acc += xp[i];
                y[p] = ivol ? (float)(acc / (double)ivol) : 0.0f;
            } else {
                float best = ivol ? xp[0] : 0.0f;
                for (int64_t i = 1; i < ivol; i++)
                    if (xp[i] > best) best = xp[i];
                y[p] = best;
            }
        }
        return;
    }
#pragma omp parallel for if (work > IDL_OMP_MIN) schedule(static)
    for (int64_t p = 0; p < s->planes; p++) {
        const float *xp = x + p * ivol;
        float *yp = y + p * ovol;
        int64_t o[3];
        for (o[0] = 0; o[0] < s->out[0]; o[0]++)
            for (o[1] = 0; o[1] < s->out[1]; o[1]++)
                for (o[2] = 0; o[2] < s->out[2]; o[2]++) {
                    int64_t oi = (o[0] * s->out[1] + o[1]) * s->out[2] + o[2];
                    if (s->kind == P_MAX && !ind) {
                        yp[oi] = window_max(s, xp, o[0], o[1], o[2]);
                    } else if (s->kind == P_MAX) {
                        float best;
                        int64_t bi = window_argmax(s, xp, o[0], o[1], o[2], &best);
                        yp[oi] = best;
                        if (ind) {
                            int64_t v = bi < 0 ? 0 : bi;
                            if (s->storage_order == 1 && bi >= 0) {
                                int64_t iw = bi % s->in[2], ih = (bi / s->in[2]) % s->in[1],
                                        id = bi / (s->in[2] * s->in[1]);
                                v = (iw * s->in[1] + ih) * s->in[0] + id;
                            }
                            ind[p * ovol + oi] = p * ivol + v;
                        }
                    } else {
                        float acc = 0.0f;
                        for (int64_t a = s->lo[0][o[0]]; a < s->hi[0][o[0]]; a++) {
                            int64_t id = o[0] * s->s[0] - s->pb[0] + a * s->d[0];
                            for (int64_t b = s->lo[1][o[1]]; b < s->hi[1][o[1]]; b++) {
                                int64_t ih = o[1] * s->s[1] - s->pb[1] + b * s->d[1];
                                const float *row = xp + (id * s->in[1] + ih) * s->in[2] +
                                                   o[2] * s->s[2] - s->pb[2];
                                for (int64_t e = s->lo[2][o[2]]; e < s->hi[2][o[2]]; e++)
                                    acc += row[e * s->d[2]];
                            }
                        }
                        yp[oi] = acc * window_inv(s, o);
                    }
                }
    }
}

static idl_status pool_backward(idl__op_ctx *c) {
    const pool_state *s = c->state;
    if (!c->din[0] || !c->dout[0]) return IDL_OK;
    const float *x = c->in[0]->data, *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    if (s->blk) {
        pool_backward_blocked(s, x, dy, dx);
        return IDL_OK;
    }
    int64_t ivol = s->in[0] * s->in[1] * s->in[2], ovol = s->out[0] * s->out[1] * s->out[2];
    int64_t work = s->planes * ovol * s->k[0] * s->k[1] * s->k[2];
#pragma omp parallel for if (work > IDL_OMP_MIN) schedule(static)
    for (int64_t p = 0; p < s->planes; p++) {
        const float *xp = x + p * ivol, *dyp = dy + p * ovol;
        float *dxp = dx + p * ivol;
        if (s->kind == P_GAVG) {
            float g = ivol ? dyp[0] / (float)ivol : 0.0f;
            for (int64_t i = 0; i < ivol; i++)
                dxp[i] += g;
            continue;
        }
        if (s->kind == P_GMAX) {
            int64_t bi = 0;
            for (int64_t i = 1; i < ivol; i++)
                if (xp[i] > xp[bi]) bi = i;
            if (ivol) dxp[bi] += dyp[0];
            continue;
        }
        int64_t o[3];
        for (o[0] = 0; o[0] < s->out[0]; o[0]++)
            for (o[1] = 0; o[1] < s->out[1]; o[1]++)
                for (o[2] = 0; o[2] < s->out[2]; o[2]++) {
                    float g = dyp[(o[0] * s->out[1] + o[1]) * s->out[2] + o[2]];
                    if (s->kind == P_MAX) {
                        float best;
                        int64_t bi = window_argmax(s, xp, o[0], o[1], o[2], &best);
                        if (bi >= 0) dxp[bi] += g;
                        continue;
                    }
                    g *= window_inv(s, o);
                    for (int64_t a = s->lo[0][o[0]]; a < s->hi[0][o[0]]; a++) {
                        int64_t id = o[0] * s->s[0] - s->pb[0] + a * s->d[0];
                        for (int64_t b = s->lo[1][o[1]]; b < s->hi[1][o[1]]; b++) {
                            int64_t ih = o[1] * s->s[1] - s->pb[1] + b * s->d[1];
                            float *row =
                                dxp + (id * s->in[1] + ih) * s->in[2] + o[2] * s->s[2] - s->pb[2];
                            for (int64_t e = s->lo[2][o[2]]; e < s->hi[2][o[2]]; e++)
                                row[e * s->d[2]] += g;
                        }
                    }
                }
    }
    return IDL_OK;
}

/* The channel block B when md is oneDNN's n C/B spatial B layout of x (nCw, nChw or nCdhw with
 * 8 or 16 channels a block: the activation layouts of its AVX2 and AVX-512 convolutions), with the
 * same layout for the shape yshape in *ymd; 0 for any other layout. */
static int channel_block(const dnnl_memory_desc_t *md, const idl_tensor *x, const int64_t *yshape,
                         dnnl_memory_desc_t *ymd) {
    static const dnnl_format_tag_t t8[3] = { dnnl_nCw8c, dnnl_nChw8c, dnnl_nCdhw8c },
                                   t16[3] = { dnnl_nCw16c, dnnl_nChw16c, dnnl_nCdhw16c };
    int ns = x->ndim - 2;
    if (ns < 1 || ns > 3 || x->dtype != IDL_DT_F32) return 0;
    dnnl_dims_t xd, yd;
    for (int i = 0; i < x->ndim; i++) {
        xd[i] = x->shape[i];
        yd[i] = yshape[i];
    }
    for (int b = 0; b < 2; b++) {
        int B = b ? 16 : 8;
        dnnl_format_tag_t tag = b ? t16[ns - 1] : t8[ns - 1];
        dnnl_memory_desc_t m;
        if (x->shape[1] % B || dnnl_memory_desc_init_by_tag(&m, x->ndim, xd, dnnl_f32, tag) ||
            !dnnl_memory_desc_equal(&m, md))
            continue;
        if (dnnl_memory_desc_init_by_tag(ymd, x->ndim, yd, dnnl_f32, tag)) return 0;
        return B;
    }
    return 0;
}

/* Shapes and tables (pool_prepare_shape), then the layout: a blocked float input is taken as it
 * is (IDL__OP_LAYOUT) when it is in channel_block's layout and there is no Indices output; a
 * windowed pool's output then stays in it, a global pool's (N, C, 1...) output is the same memory
 * in either layout. */
static idl_status pool_prepare(idl__op_ctx *c, int kind) {
    idl_status st = pool_prepare_shape(c, kind);
    if (st || !c->in_md) return st;
    pool_state *s = c->state;
    bool global = kind == P_GMAX || kind == P_GAVG, indices = c->n_out > 1 && c->out[1];
    if (c->in_md[0] && !indices && (global || (c->out_blk_ok & 1u)))
        s->blk = channel_block(c->in_md[0], c->in[0], c->out[0]->shape, &s->omd);
    if (!s->blk) {
        c->in_md[0] = NULL;
        return IDL_OK;
    }
    if (!global) c->out_md[0] = &s->omd;
    return IDL_OK;
}

static idl_status maxpool_prepare(idl__op_ctx *c) {
    return pool_prepare(c, P_MAX);
}
static idl_status averagepool_prepare(idl__op_ctx *c) {
    return pool_prepare(c, P_AVG);
}
static idl_status gmaxpool_prepare(idl__op_ctx *c) {
    return pool_prepare(c, P_GMAX);
}
static idl_status gavgpool_prepare(idl__op_ctx *c) {
    return pool_prepare(c, P_GAVG);
}

/* Backward reads: the max pools recompute each window's first maximum from x (plain and
 * blocked); the average pools only spread dy (x's pointer is formed, never read). */
const idl__op_def IDL__OP(maxpool) = { "MaxPool",
                                       1,
                                       1,
                                       1,
                                       2,
                                       maxpool_prepare,
                                       pool_forward,
                                       pool_backward,
                                       pool_free,
                                       IDL__OP_LAYOUT,
                                       idl__bwd_reads_in0 };
const idl__op_def IDL__OP(averagepool) = { "AveragePool",
                                           1,
                                           1,
                                           1,
                                           1,
                                           averagepool_prepare,
                                           pool_forward,
                                           pool_backward,
                                           pool_free,
                                           IDL__OP_LAYOUT,
                                           idl__bwd_reads_none };
const idl__op_def IDL__OP(globalaveragepool) = { "GlobalAveragePool",
                                                 1,
                                                 1,
                                                 1,
                                                 1,
                                                 gavgpool_prepare,
                                                 pool_forward,
                                                 pool_backward,
                                                 pool_free,
                                                 IDL__OP_LAYOUT,
                                                 idl__bwd_reads_none };
const idl__op_def IDL__OP(globalmaxpool) = { "GlobalMaxPool",
                                             1,
                                             1,
                                             1,
                                             1,
                                             gmaxpool_prepare,
                                             pool_forward,
                                             pool_backward,
                                             pool_free,
                                             IDL__OP_LAYOUT,
                                             idl__bwd_reads_in0 };
