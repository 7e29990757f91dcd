/* pad_resize.c — Pad, Resize and Upsample, forward and backward.
 *
 * Pad: x (d0, ..., d_{r-1}) -> y (d_i + pb_i + pe_i); modes constant, reflect, edge; any element
 *   type (moved by element size); negative pads crop. Every output coordinate maps, axis by axis,
 *   to a source coordinate or (constant mode) to the pad value; backward adds dy into dx at the
 *   mapped source (float32 only; scatter-add, so edge/reflect sum the replicated elements).
 *   Pads are attributes before opset 11, then inputs (pads, constant_value, opset 18 axes).
 *
 * Resize (opset 10: X, scales; 11-18: X, roi, scales, sizes) and Upsample (opset 7: scales
 *   attribute, 9: scales input): x (N, C, spatial...) -> y, separable per axis, any rank (typically
 *   (N,C,W), (N,C,H,W), (N,C,D,H,W)) and any set of resized axes. Per axis, each output coordinate
 *   has two taps i0, i1 with weights (1 - w, w) (nearest: one tap, w = 0), from the ONNX coordinate
 *   transformation (half_pixel, pytorch_half_pixel, align_corners, asymmetric,
 *   tf_half_pixel_for_nn) and, for nearest, the rounding mode. Linear is float32 only, nearest
 *   moves any element type. Backward scatters dy with the same weights, in parallel over the
 *   leading axes that map one-to-one (N, C), in a fixed order inside each plane.
 *   Refused with UNSUPPORTED: cubic, tf_crop_and_resize, antialias=1, keep_aspect_ratio_policy
 *   other than stretch. Resize-10 and Upsample use asymmetric coordinates, nearest rounds down. */
#include "ops/op.h"

#include <math.h>
#include <string.h>

static void free_state(void *s) {
    idl__free(s);
}

static void contiguous_strides(int nd, const int64_t *shape, int64_t *str) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        str[d] = s;
        s *= shape[d];
    }
}

/* Writes v as one element of type dt into out (8 bytes). */
static void put_scalar(idl_dtype dt, double v, unsigned char *out) {
    switch (dt) {
    case IDL_DT_F32: {
        float f = (float)v;
        memcpy(out, &f, 4);
        break;
    }
    case IDL_DT_F64:
        memcpy(out, &v, 8);
        break;
    case IDL_DT_I64: {
        int64_t i = (int64_t)v;
        memcpy(out, &i, 8);
        break;
    }
    case IDL_DT_I32: {
        int32_t i = (int32_t)v;
        memcpy(out, &i, 4);
        break;
    }
    case IDL_DT_I8:
        out[0] = (unsigned char)(int8_t)v;
        break;
    case IDL_DT_BOOL:
        out[0] = v != 0;
        break;
    default:
        out[0] = (unsigned char)v;
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Pad
 * ------------------------------------------------------------------------------------------- */
typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE } pad_mode;

#define PAD_LIMIT ((int64_t)1 << 40) /* larger pads are refused (no overflow of the sizes) */

typedef struct pad_state {
    pad_mode mode;
    int nd;
    bool attr_value;            /* opset < 11: value from the attribute */
    unsigned char value[8];     /* the pad value as one element of x's type */
    int64_t xstr[IDL_MAX_DIMS]; /* element strides of x */
    int64_t *map[IDL_MAX_DIMS]; /* per axis, per output coordinate: source or -1 */
    int64_t tab[];              /* storage of map */
} pad_state;

static idl_status pad_prepare(idl__op_ctx *c) {
    idl_status st;
    if (!c->in[0]) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    const idl_tensor *x = c->in[0];
    int r = x->ndim;
    const char *ms = idl__attr_str(c->node, "mode", "constant");
    pad_mode mode;
    if (!strcmp(ms, "constant"))
        mode = PAD_CONSTANT;
    else if (!strcmp(ms, "reflect"))
        mode = PAD_REFLECT;
    else if (!strcmp(ms, "edge"))
        mode = PAD_EDGE;
    else
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "Pad mode '%s' is not supported (constant, reflect, edge)", ms);
    int64_t pads[2 * IDL_MAX_DIMS], pb[IDL_MAX_DIMS] = { 0 }, pe[IDL_MAX_DIMS] = { 0 };
    int np;
    if (c->n_in >= 2 && c->in[1]) {
        if ((st = idl__const_ints(c, 1, pads, 2 * IDL_MAX_DIMS, &np)))
            return idl__error_prefix(st, "pads: ");
    } else {
        const int64_t *a = idl__attr_ints(c->node, "pads", &np);
        if (np < 0) return idl__error(IDL_ERR_INVALID_ARG, "Pad needs pads");
        if (np > 2 * IDL_MAX_DIMS) return idl__error(IDL_ERR_INVALID_ARG, "too many pads");
        memcpy(pads, a, sizeof(int64_t) * (size_t)np);
    }
    if (c->n_in >= 4 && c->in[3]) { /* opset 18: pads for the listed axes only */
        int64_t axes[IDL_MAX_DIMS];
        int na;
        bool seen[IDL_MAX_DIMS] = { false };
        if ((st = idl__const_ints(c, 3, axes, IDL_MAX_DIMS, &na)))
            return idl__error_prefix(st, "axes: ");
        if (np != 2 * na) return idl__error(IDL_ERR_INVALID_ARG, "%d pads for %d axes", np, na);
        for (int i = 0; i < na; i++) {
            int a;
            if ((st = idl__norm_axis(axes[i], r, &a))) return st;
            if (r == 0 || seen[a])
                return idl__error(IDL_ERR_INVALID_ARG, "bad or repeated axis %d", a);
            seen[a] = true;
            pb[a] = pads[i];
            pe[a] = pads[i + na];
        }
    } else {
        if (np != 2 * r)
            return idl__error(IDL_ERR_INVALID_ARG, "%d pads for rank %d (need %d)", np, r, 2 * r);
        for (int d = 0; d < r; d++) {
            pb[d] = pads[d];
            pe[d] = pads[d + r];
        }
    }
    int64_t yshp[IDL_MAX_DIMS], total = 0;
    for (int d = 0; d < r; d++) {
        if (pb[d] < -PAD_LIMIT || pb[d] > PAD_LIMIT || pe[d] < -PAD_LIMIT || pe[d] > PAD_LIMIT)
            return idl__error(IDL_ERR_SHAPE, "pad of axis %d beyond 2^40", d);
        yshp[d] = x->shape[d] + pb[d] + pe[d];
        if (yshp[d] < 0)
            return idl__error(IDL_ERR_SHAPE, "pads %lld, %lld crop axis %d of size %lld below zero",
                              (long long)pb[d], (long long)pe[d], d, (long long)x->shape[d]);
        if (mode != PAD_CONSTANT && x->shape[d] == 0 && yshp[d] > 0)
            return idl__error(IDL_ERR_SHAPE, "%s padding of the empty axis %d", ms, d);
        total += yshp[d];
    }
    if (total > ((int64_t)1 << 32))
        return idl__error(IDL_ERR_SHAPE, "padded shape too large (%lld indices along its axes)",
                          (long long)total);
    pad_state *s = idl__calloc(1, sizeof *s + sizeof(int64_t) * (size_t)(total + 1));
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->mode = mode;
    s->nd = r;
    contiguous_strides(r, x->shape, s->xstr);
    if (c->n_in < 2 || !c->in[1]) { /* opset < 11 */
        s->attr_value = true;
        put_scalar(x->dtype, idl__attr_float(c->node, "value", 0.0f), s->value);
    }
    int64_t *t = s->tab;
    for (int d = 0; d < r; d++) {
        int64_t n = x->shape[d];
        s->map[d] = t;
        for (int64_t o = 0; o < yshp[d]; o++) {
            int64_t i = o - pb[d];
            if (i < 0 || i >= n) {
                if (mode == PAD_CONSTANT)
                    i = -1;
                else if (mode == PAD_EDGE)
                    i = i < 0 ? 0 : n - 1;
                else if (n == 1)
                    i = 0;
                else { /* reflect without repeating the edge, period 2(n-1) */
                    int64_t p = 2 * (n - 1);
                    i = ((i % p) + p) % p;
                    if (i >= n) i = p - i;
                }
            }
            t[o] = i;
        }
        t += yshp[d];
    }
    idl__set_out(c->out[0], x->dtype, r, yshp);
    return IDL_OK;
}

#define PAD_ROW(T)                                  \
    do {                                            \
        T *o_ = (T *)dst, v_;                       \
        const T *s_ = (const T *)src;               \
        memcpy(&v_, value, sizeof v_);              \
        if (!inside)                                \
            for (int64_t w = 0; w < W; w++)         \
                o_[w] = v_;                         \
        else                                        \
            for (int64_t w = 0; w < W; w++)         \
                o_[w] = ml[w] < 0 ? v_ : s_[ml[w]]; \
    } while (0)

/* Source offset of output row `row` (all axes but the last); false when the row lies in the
 * constant border. */
static inline bool pad_row_src(const pad_state *s, const int64_t *yshp, int64_t row, int64_t *off) {
    int64_t o = 0;
    bool inside = true;
    for (int d = s->nd - 2; d >= 0; d--) {
        int64_t m = s->map[d][row % yshp[d]];
        row /= yshp[d];
        if (m < 0)
            inside = false;
        else
            o += m * s->xstr[d];
    }
    *off = o;
    return inside;
}

static void pad_forward(idl__op_ctx *c) {
    const pad_state *s = c->state;
    const idl_tensor *x = c->in[0];
    idl_tensor *y = c->out[0];
    size_t esz = idl_dtype_size(x->dtype);
    unsigned char value[8] = { 0 };
    if (s->attr_value) {
        memcpy(value, s->value, sizeof value);
    } else if (c->n_in >= 3 && c->in[2] && idl_tensor_numel(c->in[2]) > 0) {
        if (c->in[2]->dtype == x->dtype)
            memcpy(value, c->in[2]->data, esz);
        else
            put_scalar(x->dtype, idl__get_f64(c->in[2], 0), value);
    }
    int r = s->nd;
    if (r == 0) {
        memcpy(y->data, x->data, esz);
        return;
    }
    int64_t n = idl_tensor_numel(y);
    if (n == 0) return;
    int64_t W = y->shape[r - 1], rows = n / W;
    const int64_t *ml = s->map[r - 1];
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off;
        bool inside = pad_row_src(s, y->shape, row, &off);
        char *dst = (char *)y->data + (size_t)(row * W) * esz;
        const char *src = (const char *)x->data + (size_t)off * esz;
        switch (esz) {
        case 1:
            PAD_ROW(uint8_t);
            break;
        case 4:
            PAD_ROW(uint32_t);
            break;
        case 8:
            PAD_ROW(uint64_t);
            break;
        default:
            for (int64_t w = 0; w < W; w++)
                memcpy(dst + w * (int64_t)esz,
                       !inside || ml[w] < 0 ? (const char *)value : src + ml[w] * (int64_t)esz,
                       esz);
        }
    }
}

static void pad_backward_rows(const pad_state *s, const idl_tensor *y, float *dx, const float *dy,
                              int64_t r0, int64_t r1) {
    int64_t W = y->shape[s->nd - 1];
    const int64_t *ml = s->map[s->nd - 1];
    for (int64_t row = r0; row < r1; row++) {
        int64_t off;
        if (!pad_row_src(s, y->shape, row, &off)) continue;
        const float *g = dy + row * W;
        for (int64_t w = 0; w < W; w++)
            if (ml[w] >= 0) dx[off + ml[w]] += g[w];
    }
}

static idl_status pad_backward(idl__op_ctx *c) {
    const pad_state *s = c->state;
    const idl_tensor *y = c->out[0];
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != IDL_DT_F32) return IDL_OK;
    float *dx = c->din[0]->data;
    const float *dy = c->dout[0]->data;
    if (s->nd == 0) {
        dx[0] += dy[0];
        return IDL_OK;
    }
    int64_t n = idl_tensor_numel(y);
    if (n == 0) return IDL_OK;
    int64_t rows = n / y->shape[s->nd - 1];
    if (s->mode == PAD_CONSTANT) { /* one-to-one: rows in parallel */
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t row = 0; row < rows; row++)
            pad_backward_rows(s, y, dx, dy, row, row + 1);
    } else { /* edge/reflect replicate sources: one fixed order */
        pad_backward_rows(s, y, dx, dy, 0, rows);
    }
    return IDL_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Resize / Upsample
 * ------------------------------------------------------------------------------------------- */
typedef enum {
    CT_HALF_PIXEL,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL_NN
} coord_mode;
typedef enum { NR_ROUND_PREFER_FLOOR, NR_ROUND_PREFER_CEIL, NR_FLOOR, NR_CEIL } round_mode;

#define RS_MAX_CORNERS (1 << (IDL_MAX_DIMS - 1))

typedef struct rs_state {
    bool linear;
    int nd;
    int lead; /* leading axes mapped one-to-one (parallel planes in backward) */
    int64_t xstr[IDL_MAX_DIMS];
    bool two[IDL_MAX_DIMS]; /* axis has two taps for some output coordinate */
    int64_t *i0[IDL_MAX_DIMS], *i1[IDL_MAX_DIMS];
    float *w1[IDL_MAX_DIMS]; /* weight of i1 (i0 gets 1 - w1) */
    int64_t tab[];           /* storage: per axis i0, i1 (yshape[d] each), then w1 as floats */
} rs_state;

/* Source coordinate of output coordinate o along an axis of `in` elements. `len` is the output
 * length the transformation sees: in * scale before flooring (as the ONNX reference does), which is
 * the output size itself when sizes were given. */
static double rs_coord(coord_mode cm, int64_t o, int64_t in, double len, double scale) {
    switch (cm) {
    case CT_HALF_PIXEL:
        return ((double)o + 0.5) / scale - 0.5;
    case CT_PYTORCH_HALF_PIXEL:
        return len > 1 ? ((double)o + 0.5) / scale - 0.5 : 0.0;
    case CT_ALIGN_CORNERS:
        return len == 1 ? 0.0 : (double)o * (double)(in - 1) / (len - 1);
    case CT_ASYMMETRIC:
        return (double)o / scale;
    case CT_TF_HALF_PIXEL_NN:
        return ((double)o + 0.5) / scale;
    }
    return 0.0;
}

static int64_t rs_round(round_mode rm, double v) {
    double f = floor(v);
    switch (rm) {
    case NR_ROUND_PREFER_FLOOR:
        return (int64_t)(v - f <= 0.5 ? f : f + 1);
    case NR_ROUND_PREFER_CEIL:
        return (int64_t)(v - f < 0.5 ? f : f + 1);
    case NR_FLOOR:
        return (int64_t)f;
    case NR_CEIL:
        return (int64_t)ceil(v);
    }
    return (int64_t)f;
}

/* Builds the tap tables. scale[d] is the factor the coordinate transformation uses (the given
 * scale, or out/in when sizes were given); yshp the output shape; by_sizes: yshp came from sizes.
 */
static idl_status rs_setup(idl__op_ctx *c, bool linear, coord_mode cm, round_mode rm,
                           const double *scale, const int64_t *yshp, bool by_sizes) {
    const idl_tensor *x = c->in[0];
    int r = x->ndim;
    if (r == 0) return idl__error(IDL_ERR_INVALID_ARG, "cannot resize a scalar");
    idl_status st;
    if (linear && (st = idl__need_f32(c, 0))) return st;
    int64_t total = 0;
    for (int d = 0; d < r; d++) {
        if (yshp[d] < 0) return idl__error(IDL_ERR_SHAPE, "negative output size on axis %d", d);
        if (x->shape[d] == 0 && yshp[d] > 0)
            return idl__error(IDL_ERR_SHAPE, "cannot resize the empty axis %d to %lld", d,
                              (long long)yshp[d]);
        if (!(scale[d] > 0) && yshp[d] > 0)
            return idl__error(IDL_ERR_INVALID_ARG, "scale %g on axis %d", scale[d], d);
        total += yshp[d];
    }
    /* per axis: i0, i1 (int64) and w1 (float, stored in int64 slots for alignment) */
    rs_state *s = idl__calloc(1, sizeof *s + sizeof(int64_t) * (size_t)(3 * total + 1));
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->linear = linear;
    s->nd = r;
    contiguous_strides(r, x->shape, s->xstr);
    int64_t *t = s->tab;
    bool ident_prefix = true;
    for (int d = 0; d < r; d++) {
        int64_t in = x->shape[d], out = yshp[d];
        s->i0[d] = t;
        s->i1[d] = t + out;
        s->w1[d] = (float *)(t + 2 * out);
        t += 3 * out;
        bool ident = in == out;
        double len = by_sizes ? (double)out : (double)in * scale[d];
        for (int64_t o = 0; o < out; o++) {
            double v = rs_coord(cm, o, in, len, scale[d]);
            int64_t a, b;
            float w = 0.0f;
            if (!linear) {
                a = rs_round(rm, v);
                a = a < 0 ? 0 : a >= in ? in - 1 : a;
                b = a;
            } else {
                v = v < 0 ? 0 : v > (double)(in - 1) ? (double)(in - 1) : v;
                a = (int64_t)floor(v);
                b = a + 1 < in ? a + 1 : a;
                w = b != a ? (float)(v - (double)a) : 0.0f;
                if (w == 0.0f) b = a;
            }
            s->i0[d][o] = a;
            s->i1[d][o] = b;
            s->w1[d][o] = w;
            if (b != a) s->two[d] = true;
            if (a != o || b != a) ident = false;
        }
        if (ident_prefix && ident && d < r - 1)
            s->lead = d + 1;
        else
            ident_prefix = false;
    }
    idl__set_out(c->out[0], x->dtype, r, yshp);
    return IDL_OK;
}

/* Corners of output row `row` (all axes but the last): source offsets and weights. */
static int rs_corners(const rs_state *s, const int64_t *yshp, int64_t row, int64_t *off,
                      float *wt) {
    int n = 1;
    off[0] = 0;
    wt[0] = 1.0f;
    for (int d = s->nd - 2; d >= 0; d--) {
        int64_t o = row % yshp[d];
        row /= yshp[d];
        int64_t a = s->i0[d][o] * s->xstr[d];
        if (s->i1[d][o] == s->i0[d][o]) {
            for (int k = 0; k < n; k++)
                off[k] += a;
            continue;
        }
        int64_t b = s->i1[d][o] * s->xstr[d];
        float w = s->w1[d][o];
        for (int k = 0; k < n; k++) {
            off[k + n] = off[k] + b;
            wt[k + n] = wt[k] * w;
            off[k] += a;
            wt[k] *= 1.0f - w;
        }
        n *= 2;
    }
    return n;
}

#define NEAREST_ROW(T)                  \
    do {                                \
        T *o_ = (T *)dst;               \
        const T *s_ = (const T *)src;   \
        for (int64_t w = 0; w < W; w++) \
            o_[w] = s_[ia[w]];          \
    } while (0)

static void rs_forward(idl__op_ctx *c) {
    const rs_state *s = c->state;
    const idl_tensor *x = c->in[0];
    idl_tensor *y = c->out[0];
    int64_t n = idl_tensor_numel(y);
    if (n == 0) return;
    int64_t W = y->shape[s->nd - 1], rows = n / W;
    const int64_t *ia = s->i0[s->nd - 1], *ib = s->i1[s->nd - 1];
    const float *wl = s->w1[s->nd - 1];
    size_t esz = idl_dtype_size(x->dtype);
    if (!s->linear) {
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t row = 0; row < rows; row++) {
            int64_t off;
            float wt;
            rs_corners(s, y->shape, row, &off, &wt); /* nearest: exactly one corner */
            char *dst = (char *)y->data + (size_t)(row * W) * esz;
            const char *src = (const char *)x->data + (size_t)off * esz;
            switch (esz) {
            case 1:
                NEAREST_ROW(uint8_t);
                break;
            case 4:
                NEAREST_ROW(uint32_t);
                break;
            case 8:
                NEAREST_ROW(uint64_t);
                break;
            default:
                for (int64_t w = 0; w < W; w++)
                    memcpy(dst + w * (int64_t)esz, src + ia[w] * (int64_t)esz, esz);
            }
        }
        return;
    }
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off[RS_MAX_CORNERS];
        float wt[RS_MAX_CORNERS];
        int nc = rs_corners(s, y->shape, row, off, wt);
        float *dst = yd + row * W;
        for (int64_t w = 0; w < W; w++) {
            float acc = 0.0f, t = wl[w];
            for (int k = 0; k < nc; k++) {
                const float *b = xd + off[k];
                acc += wt[k] * ((1.0f - t) * b[ia[w]] + t * b[ib[w]]);
            }
            dst[w] = acc;
        }
    }
}

static idl_status rs_backward(idl__op_ctx *c) {
    const rs_state *s = c->state;
    const idl_tensor *y = c->out[0];
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != IDL_DT_F32) return IDL_OK;
    int64_t n = idl_tensor_numel(y);
    if (n == 0) return IDL_OK;
    int64_t W = y->shape[s->nd - 1], rows = n / W;
    int64_t planes = idl__numel(s->lead, y->shape), per = rows / planes;
    const int64_t *ia = s->i0[s->nd - 1], *ib = s->i1[s->nd - 1];
    const float *wl = s->w1[s->nd - 1];
    float *dx = c->din[0]->data;
    const float *dy = c->dout[0]->data;
    /* rows of different planes touch disjoint parts of dx; inside a plane, one fixed order */
#pragma omp parallel for if (n > IDL_OMP_MIN && planes > 1) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        int64_t off[RS_MAX_CORNERS];
        float wt[RS_MAX_CORNERS];
        for (int64_t row = p * per; row < (p + 1) * per; row++) {
            int nc = rs_corners(s, y->shape, row, off, wt);
            const float *g = dy + row * W;
            for (int k = 0; k < nc; k++) {
                float *b = dx + off[k];
                for (int64_t w = 0; w < W; w++) {
                    float gw = wt[k] * g[w], t = wl[w];
                    b[ia[w]] += (1.0f - t) * gw;
                    if (t != 0.0f) b[ib[w]] += t * gw;
                }
            }
        }
    }
    return IDL_OK;
}

static idl_status rs_mode(idl__op_ctx *c, bool upsample, bool *linear) {
    const char *m = idl__attr_str(c->node, "mode", "nearest");
    if (!strcmp(m, "nearest"))
        *linear = false;
    else if (!strcmp(m, "linear") || (upsample && !strcmp(m, "bilinear")))
        *linear = true;
    else if (!strcmp(m, "cubic"))
        return idl__error(IDL_ERR_UNSUPPORTED, "cubic interpolation is not supported");
    else
        return idl__error(IDL_ERR_UNSUPPORTED, "mode '%s' is not supported (nearest, linear)", m);
    return IDL_OK;
}

/* Reads a constant float list (scales) from input i. */
static idl_status const_floats(const idl__op_ctx *c, int i, double *out, int cap, int *n) {
    idl_status st = idl__need_const(c, i);
    if (st) return st;
    const idl_tensor *t = c->in[i];
    if (t->dtype != IDL_DT_F32 && t->dtype != IDL_DT_F64)
        return idl__error(IDL_ERR_INVALID_ARG, "input %d must be float, is %s", i,
                          idl_dtype_name(t->dtype));
    int64_t k = idl_tensor_numel(t);
    if (t->ndim > 1 || k > cap)
        return idl__error(IDL_ERR_INVALID_ARG, "input %d must be a 1-D list of at most %d", i, cap);
    for (int64_t j = 0; j < k; j++)
        out[j] = idl__get_f64(t, j);
    *n = (int)k;
    return IDL_OK;
}

/* floor(in * scale), refused above 2^40 elements along one axis. */
static idl_status scaled_size(int64_t in, double scale, int64_t *out) {
    double v = floor((double)in * scale);
    if (!(v < 1099511627776.0))
        return idl__error(IDL_ERR_SHAPE, "scale %g gives an axis of %g elements", scale, v);
    *out = (int64_t)v;
    return IDL_OK;
}

static bool present(const idl__op_ctx *c, int i) {
    return c->n_in > i && c->in[i] && idl_tensor_numel(c->in[i]) > 0;
}

static idl_status resize_prepare(idl__op_ctx *c) {
    idl_status st;
    if (!c->in[0]) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    const idl_tensor *x = c->in[0];
    int r = x->ndim;
    bool linear;
    if ((st = rs_mode(c, false, &linear))) return st;
    coord_mode cm = CT_ASYMMETRIC;
    round_mode rm = NR_FLOOR;
    int si = 1, zi = -1; /* scales / sizes input */
    int64_t axes[IDL_MAX_DIMS];
    int na = r;
    for (int d = 0; d < r; d++)
        axes[d] = d;
    if (c->opset >= 11) {
        si = 2;
        zi = 3;
        const char *ct = idl__attr_str(c->node, "coordinate_transformation_mode", "half_pixel");
        if (!strcmp(ct, "half_pixel"))
            cm = CT_HALF_PIXEL;
        else if (!strcmp(ct, "pytorch_half_pixel"))
            cm = CT_PYTORCH_HALF_PIXEL;
        else if (!strcmp(ct, "align_corners"))
            cm = CT_ALIGN_CORNERS;
        else if (!strcmp(ct, "asymmetric"))
            cm = CT_ASYMMETRIC;
        else if (!strcmp(ct, "tf_half_pixel_for_nn"))
            cm = CT_TF_HALF_PIXEL_NN;
        else
            return idl__error(IDL_ERR_UNSUPPORTED,
                              "coordinate_transformation_mode '%s' is not supported", ct);
        const char *nm = idl__attr_str(c->node, "nearest_mode", "round_prefer_floor");
        if (!strcmp(nm, "round_prefer_floor"))
            rm = NR_ROUND_PREFER_FLOOR;
        else if (!strcmp(nm, "round_prefer_ceil"))
            rm = NR_ROUND_PREFER_CEIL;
        else if (!strcmp(nm, "floor"))
            rm = NR_FLOOR;
        else if (!strcmp(nm, "ceil"))
            rm = NR_CEIL;
        else
            return idl__error(IDL_ERR_UNSUPPORTED, "nearest_mode '%s' is not supported", nm);
        if (idl__attr_int(c->node, "antialias", 0) != 0)
            return idl__error(IDL_ERR_UNSUPPORTED, "antialias=1 is not supported");
        const char *kp = idl__attr_str(c->node, "keep_aspect_ratio_policy", "stretch");
        if (strcmp(kp, "stretch") != 0)
            return idl__error(IDL_ERR_UNSUPPORTED, "keep_aspect_ratio_policy '%s' is not supported",
                              kp);
        int k;
        const int64_t *a = idl__attr_ints(c->node, "axes", &k);
        if (k >= 0) {
            bool seen[IDL_MAX_DIMS] = { false };
            if (k > r) return idl__error(IDL_ERR_INVALID_ARG, "%d axes for rank %d", k, r);
            for (int i = 0; i < k; i++) {
                int ax;
                if ((st = idl__norm_axis(a[i], r, &ax))) return st;
                if (seen[ax]) return idl__error(IDL_ERR_INVALID_ARG, "axis %d repeated", ax);
                seen[ax] = true;
                axes[i] = ax;
            }
            na = k;
        }
    }
    double scale[IDL_MAX_DIMS];
    int64_t yshp[IDL_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        scale[d] = 1.0;
        yshp[d] = x->shape[d];
    }
    bool have_scales = present(c, si), have_sizes = zi >= 0 && present(c, zi);
    if (have_scales == have_sizes)
        return idl__error(IDL_ERR_INVALID_ARG, "give exactly one of scales and sizes");
    int n;
    if (have_scales) {
        double v[IDL_MAX_DIMS];
        if ((st = const_floats(c, si, v, IDL_MAX_DIMS, &n)))
            return idl__error_prefix(st, "scales: ");
        if (n != na) return idl__error(IDL_ERR_INVALID_ARG, "%d scales for %d axes", n, na);
        for (int i = 0; i < n; i++) {
            int d = (int)axes[i];
            if (!(v[i] > 0))
                return idl__error(IDL_ERR_INVALID_ARG, "scale %g is not positive", v[i]);
            scale[d] = v[i];
            if ((st = scaled_size(x->shape[d], v[i], &yshp[d]))) return st;
        }
    } else {
        int64_t v[IDL_MAX_DIMS];
        if ((st = idl__const_ints(c, zi, v, IDL_MAX_DIMS, &n)))
            return idl__error_prefix(st, "sizes: ");
        if (n != na) return idl__error(IDL_ERR_INVALID_ARG, "%d sizes for %d axes", n, na);
        for (int i = 0; i < n; i++) {
            int d = (int)axes[i];
            yshp[d] = v[i];
            scale[d] = x->shape[d] > 0 ? (double)v[i] / (double)x->shape[d] : 1.0;
        }
    }
    return rs_setup(c, linear, cm, rm, scale, yshp, have_sizes);
}

/* Upsample (opset 7-9): output = floor(input * scale), asymmetric coordinates. */
static idl_status upsample_prepare(idl__op_ctx *c) {
    idl_status st;
    if (!c->in[0]) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    const idl_tensor *x = c->in[0];
    int r = x->ndim, n;
    bool linear;
    if ((st = rs_mode(c, true, &linear))) return st;
    double v[IDL_MAX_DIMS];
    if (c->n_in >= 2 && c->in[1]) {
        if ((st = const_floats(c, 1, v, IDL_MAX_DIMS, &n)))
            return idl__error_prefix(st, "scales: ");
    } else {
        const idl__attr *a = idl__attr_get(c->node, "scales");
        if (!a || a->type != IDL__ATTR_FLOATS)
            return idl__error(IDL_ERR_INVALID_ARG, "Upsample needs scales");
        if (a->n_floats > IDL_MAX_DIMS) return idl__error(IDL_ERR_INVALID_ARG, "too many scales");
        n = a->n_floats;
        for (int i = 0; i < n; i++)
            v[i] = a->floats[i];
    }
    if (n != r) return idl__error(IDL_ERR_INVALID_ARG, "%d scales for rank %d", n, r);
    int64_t yshp[IDL_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        if (!(v[d] > 0)) return idl__error(IDL_ERR_INVALID_ARG, "scale %g is not positive", v[d]);
        if ((st = scaled_size(x->shape[d], v[d], &yshp[d]))) return st;
    }
    return rs_setup(c, linear, CT_ASYMMETRIC, NR_FLOOR, v, yshp, false);
}

/* Their backwards scatter dy through tables built at prepare: they read no value. */
const idl__op_def IDL__OP(pad) = {
    "Pad", 1, 4, 1, 1, pad_prepare, pad_forward, pad_backward, free_state, 0, idl__bwd_reads_none
};
const idl__op_def IDL__OP(resize) = { "Resize",           1,          4,           1,          1,
                                      resize_prepare,     rs_forward, rs_backward, free_state, 0,
                                      idl__bwd_reads_none };
const idl__op_def IDL__OP(upsample) = { "Upsample",         1,          2,           1,          1,
                                        upsample_prepare,   rs_forward, rs_backward, free_state, 0,
                                        idl__bwd_reads_none };
