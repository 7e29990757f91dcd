/* shape.c — data-movement and shape-arithmetic ops, forward and backward: Reshape, Flatten,
 * Squeeze, Unsqueeze, Transpose, Concat, Split, Gather, Shape, Cast, Slice, ConstantOfShape,
 * Expand, Range, Tile.
 *
 * Layouts: every tensor is dense and row-major. Data moves by element size, so any element type
 * the library knows (float32, float64, int64, int32, int8, uint8, bool) goes through; gradients
 * flow only through float32 data (integer operands such as indices or shapes get none).
 * Operands that decide an output shape (Reshape's shape, axes, Slice's starts/ends, repeats,
 * Range's scalars, ...) must be known at plan time (idl__const_ints). Most of these nodes are
 * folded at plan time, so the int64 paths of forward are exercised by every PyTorch export's shape
 * arithmetic.
 *
 * Most kernels are one "view" copy: the output (contiguous) is read from the input through
 * per-axis strides and a base offset, e.g.
 *   Transpose  y: out shape, strides of x permuted
 *   Slice      y: out shape, strides of x times steps, base at the starts
 *   Expand     y: out shape, strides of x with 0 on broadcast axes
 *   Tile       y viewed as (rep0, d0, rep1, d1, ...), strides (0, s0, 0, s1, ...)
 * and their backward is the matching scatter (injective views) or reduction (stride-0 axes). */
#include "ops/op.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#define MAXV         (2 * IDL_MAX_DIMS) /* rank of an iteration space (Tile doubles the rank) */
#define GATHER_CHUNK 64                 /* Gather backward: inner elements per parallel work item */

static void free_state(void *s) {
    idl__free(s);
}

static idl_status alloc_state(idl__op_ctx *c, size_t size, void **out) {
    *out = idl__calloc(1, size);
    if (!*out) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = *out;
    return IDL_OK;
}

static void contiguous_strides(int nd, const int64_t *shape, int64_t *str) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        str[d] = s;
        s *= shape[d];
    }
}

/* ---- strided views ---- */

/* The contiguous side has shape shp[0..nd); element i (multi-index idx) of it corresponds to
 * element base + sum idx[d] * str[d] of the strided side. */
typedef struct view {
    int nd;
    int64_t shp[MAXV];
    int64_t str[MAXV];
    int64_t base;
} view;

/* Drops unit axes and merges axes that are contiguous with their successor; nd >= 1 after. */
static void view_simplify(view *v) {
    int n = 0;
    for (int d = 0; d < v->nd; d++) {
        if (v->shp[d] == 1) continue;
        if (n > 0 && v->str[n - 1] == v->str[d] * v->shp[d]) {
            v->shp[n - 1] *= v->shp[d];
            v->str[n - 1] = v->str[d];
            continue;
        }
        v->shp[n] = v->shp[d];
        v->str[n] = v->str[d];
        n++;
    }
    if (n == 0) {
        v->shp[0] = 1;
        v->str[0] = 1;
        n = 1;
    }
    v->nd = n;
}

static inline int64_t view_row_offset(const view *v, int64_t r) {
    int64_t off = v->base;
    for (int d = v->nd - 2; d >= 0; d--) {
        off += (r % v->shp[d]) * v->str[d];
        r /= v->shp[d];
    }
    return off;
}

#define GATHER_ROW(T)                       \
    do {                                    \
        T *o_ = (T *)o;                     \
        const T *s_ = (const T *)s;         \
        for (int64_t k = 0; k < inner; k++) \
            o_[k] = s_[k * istr];           \
    } while (0)

/* 4-byte elements, a view whose last axis is strided and another axis d (size A) contiguous in
 * src (a transpose of the two, e.g. attention's keys (S, B*H, 64) -> (B*H, 64, S)): tiles of
 * 16 x 16 read 16 contiguous source elements for each of 16 output rows instead of one element
 * a cache line. Returns false when v is not of that form. */
static bool view_gather_tiles(uint32_t *dst, const uint32_t *src, const view *v) {
    const int nd = v->nd, last = nd - 1;
    int d = -1;
    for (int j = 0; j < last; j++)
        if (v->str[j] == 1) d = j;
    if (d < 0 || v->str[last] == 1) return false;
    const int64_t A = v->shp[d], K = v->shp[last], istr = v->str[last];
    int64_t dstr[MAXV], outer = 1;
    dstr[last] = 1;
    for (int j = last - 1; j >= 0; j--)
        dstr[j] = dstr[j + 1] * v->shp[j + 1];
    for (int j = 0; j < last; j++)
        if (j != d) outer *= v->shp[j];
    const int64_t T = 16, ta = (A + T - 1) / T, tk = (K + T - 1) / T;
#pragma omp parallel for if (outer * A * K > IDL_OMP_MIN) schedule(static)
    for (int64_t w = 0; w < outer * ta * tk; w++) {
        int64_t o = w / (ta * tk), a0 = (w / tk) % ta * T, k0 = w % tk * T, so = v->base, dop = 0;
        for (int j = last - 1; j >= 0; j--) { /* outer index o over the axes but d and last */
            if (j == d) continue;
            so += (o % v->shp[j]) * v->str[j];
            dop += (o % v->shp[j]) * dstr[j];
            o /= v->shp[j];
        }
        const int64_t a1 = IDL_MIN(a0 + T, A), k1 = IDL_MIN(k0 + T, K);
        for (int64_t k = k0; k < k1; k++)
            for (int64_t a = a0; a < a1; a++)
                dst[dop + a * dstr[d] + k] = src[so + a + k * istr];
    }
    return true;
}

/* dst (contiguous) = src seen through v. */
static void view_gather(void *dst, const void *src, const view *v, size_t esz) {
    int64_t n = idl__numel(v->nd, v->shp);
    if (n == 0) return;
    int64_t inner = v->shp[v->nd - 1], istr = v->str[v->nd - 1], rows = n / inner;
    if (esz == 4 && istr != 1 && inner >= 16 && view_gather_tiles(dst, src, v)) return;
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        char *o = (char *)dst + (size_t)(r * inner) * esz;
        const char *s = (const char *)src + (size_t)view_row_offset(v, r) * esz;
        if (istr == 1) {
            memcpy(o, s, (size_t)inner * esz);
            continue;
        }
        switch (esz) {
        case 1:
            GATHER_ROW(uint8_t);
            break;
        case 2:
            GATHER_ROW(uint16_t);
            break;
        case 4:
            GATHER_ROW(uint32_t);
            break;
        case 8:
            GATHER_ROW(uint64_t);
            break;
        default:
            for (int64_t k = 0; k < inner; k++)
                memcpy(o + k * (int64_t)esz, s + k * istr * (int64_t)esz, esz);
        }
    }
}

/* dst (contiguous) += src seen through v. */
static void view_gather_add(float *dst, const float *src, const view *v) {
    int64_t n = idl__numel(v->nd, v->shp);
    if (n == 0) return;
    int64_t inner = v->shp[v->nd - 1], istr = v->str[v->nd - 1], rows = n / inner;
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *o = dst + r * inner;
        const float *s = src + view_row_offset(v, r);
        for (int64_t k = 0; k < inner; k++)
            o[k] += s[k * istr];
    }
}

/* dst seen through v += src (contiguous). v must be injective (no stride-0 axes). */
static void view_scatter_add(float *dst, const float *src, const view *v) {
    int64_t n = idl__numel(v->nd, v->shp);
    if (n == 0) return;
    int64_t inner = v->shp[v->nd - 1], istr = v->str[v->nd - 1], rows = n / inner;
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *o = dst + view_row_offset(v, r);
        const float *s = src + r * inner;
        for (int64_t k = 0; k < inner; k++)
            o[k * istr] += s[k];
    }
}

/* Reduction for the backward of broadcasting copies: src is contiguous of shape v->shp; element
 * idx of src adds into dst[v->base + sum idx[d] * v->str[d]], where str is 0 on the summed axes.
 * Parallel over dst elements, each summed in a fixed order. */
static void view_reduce_add(float *dst, const float *src, const view *v) {
    int nk = 0, nr = 0;
    int64_t kshp[MAXV], kss[MAXV], kds[MAXV], rshp[MAXV], rss[MAXV], sstr[MAXV];
    contiguous_strides(v->nd, v->shp, sstr);
    int64_t nkept = 1, nred = 1;
    for (int d = 0; d < v->nd; d++) {
        if (v->shp[d] == 0) return;
        if (v->shp[d] == 1) continue;
        if (v->str[d] != 0) {
            kshp[nk] = v->shp[d];
            kss[nk] = sstr[d];
            kds[nk] = v->str[d];
            nkept *= v->shp[d];
            nk++;
        } else {
            rshp[nr] = v->shp[d];
            rss[nr] = sstr[d];
            nred *= v->shp[d];
            nr++;
        }
    }
#pragma omp parallel for if (nkept * nred > IDL_OMP_MIN && nkept > 1) schedule(static)
    for (int64_t j = 0; j < nkept; j++) {
        int64_t soff = 0, doff = v->base, q = j;
        for (int d = nk - 1; d >= 0; d--) {
            int64_t i = q % kshp[d];
            q /= kshp[d];
            soff += i * kss[d];
            doff += i * kds[d];
        }
        float acc = 0.0f;
        for (int64_t r = 0; r < nred; r++) {
            int64_t roff = 0, t = r;
            for (int d = nr - 1; d >= 0; d--) {
                roff += (t % rshp[d]) * rss[d];
                t /= rshp[d];
            }
            acc += src[soff + roff];
        }
        dst[doff] += acc;
    }
}

/* ---- plain copies: Reshape, Flatten, Squeeze, Unsqueeze (and Cast float32 -> float32) ---- */

static void copy_forward(idl__op_ctx *c) {
    size_t b = idl__tensor_bytes(c->in[0]);
    if (b) memcpy(c->out[0]->data, c->in[0]->data, b);
}

static void add_f32(float *dst, const float *src, int64_t n) {
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
}

static idl_status copy_backward(idl__op_ctx *c) {
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != IDL_DT_F32) return IDL_OK;
    add_f32(c->din[0]->data, c->dout[0]->data, idl_tensor_numel(c->in[0]));
    return IDL_OK;
}

static idl_status need_data(const idl__op_ctx *c) {
    if (c->n_in < 1 || !c->in[0]) return idl__error(IDL_ERR_INVALID_ARG, "input 0 is required");
    return IDL_OK;
}

/* A list of integers from input `input` (newer opsets) or from the attribute `attr` (older
 * ones): Reshape's shape, Squeeze/Unsqueeze's axes. *n = -1 when neither is given. */
static idl_status ints_input_or_attr(idl__op_ctx *c, int input, const char *attr, int64_t *out,
                                     int cap, int *n) {
    if (c->n_in > input && c->in[input]) return idl__const_ints(c, input, out, cap, n);
    int k;
    const int64_t *a = idl__attr_ints(c->node, attr, &k);
    if (k > cap)
        return idl__error(IDL_ERR_UNSUPPORTED, "attribute %s has %d values, above %d", attr, k,
                          cap);
    for (int i = 0; i < k; i++)
        out[i] = a[i];
    *n = k;
    return IDL_OK;
}

/* Reshape: shape from input 1 (attribute before opset 5); 0 copies the input's dim unless
 * allowzero=1 (opset 14), one -1 is inferred. */
static idl_status reshape_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int64_t shp[IDL_MAX_DIMS];
    int n = 0;
    if ((st = ints_input_or_attr(c, 1, "shape", shp, IDL_MAX_DIMS, &n))) return st;
    if (n < 0) return idl__error(IDL_ERR_INVALID_ARG, "Reshape needs a shape input");
    bool allowzero = c->opset >= 14 && idl__attr_int(c->node, "allowzero", 0) != 0;
    int neg = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        if (shp[i] == 0 && !allowzero) {
            if (i >= x->ndim)
                return idl__error(IDL_ERR_SHAPE,
                                  "shape[%d] = 0 copies a dimension the rank-%d input lacks", i,
                                  x->ndim);
            shp[i] = x->shape[i];
        } else if (shp[i] == -1) {
            if (neg >= 0) return idl__error(IDL_ERR_SHAPE, "more than one -1 in the target shape");
            neg = i;
            continue;
        } else if (shp[i] < 0) {
            return idl__error(IDL_ERR_SHAPE, "negative dimension %lld in the target shape",
                              (long long)shp[i]);
        }
        if (!idl__mul_ok(known, shp[i], &known))
            return idl__error(IDL_ERR_SHAPE, "target shape overflows");
    }
    int64_t numel = idl_tensor_numel(x);
    char a[128], b[128];
    if (neg >= 0) {
        if (known == 0 || numel % known)
            return idl__error(IDL_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                              idl__shape_str(x->ndim, x->shape, a, sizeof a), (long long)numel,
                              idl__shape_str(n, shp, b, sizeof b));
        shp[neg] = numel / known;
    } else if (known != numel) {
        return idl__error(IDL_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                          idl__shape_str(x->ndim, x->shape, a, sizeof a), (long long)numel,
                          idl__shape_str(n, shp, b, sizeof b));
    }
    idl__set_out(c->out[0], x->dtype, n, shp);
    return IDL_OK;
}

/* Flatten: (d0..d_{axis-1}) x (d_axis..) -> 2-D; axis in [-r, r], default 1. */
static idl_status flatten_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int64_t axis = idl__attr_int(c->node, "axis", 1);
    if (axis < -x->ndim || axis > x->ndim)
        return idl__error(IDL_ERR_INVALID_ARG, "axis %lld out of range for rank %d",
                          (long long)axis, x->ndim);
    if (axis < 0) axis += x->ndim;
    int64_t shp[2] = { idl__numel((int)axis, x->shape),
                       idl__numel(x->ndim - (int)axis, x->shape + axis) };
    idl__set_out(c->out[0], x->dtype, 2, shp);
    return IDL_OK;
}

static idl_status squeeze_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int64_t axes[IDL_MAX_DIMS];
    int n;
    if ((st = ints_input_or_attr(c, 1, "axes", axes, IDL_MAX_DIMS, &n))) return st;
    bool drop[IDL_MAX_DIMS] = { false };
    if (n < 0) { /* no axes: remove every 1 */
        for (int d = 0; d < x->ndim; d++)
            drop[d] = x->shape[d] == 1;
    } else {
        for (int i = 0; i < n; i++) {
            int a;
            if ((st = idl__norm_axis(axes[i], x->ndim, &a))) return st;
            if (x->ndim == 0) return idl__error(IDL_ERR_INVALID_ARG, "cannot squeeze a scalar");
            if (x->shape[a] != 1)
                return idl__error(IDL_ERR_SHAPE, "cannot squeeze axis %d of size %lld", a,
                                  (long long)x->shape[a]);
            drop[a] = true;
        }
    }
    int64_t shp[IDL_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!drop[d]) shp[k++] = x->shape[d];
    idl__set_out(c->out[0], x->dtype, k, shp);
    return IDL_OK;
}

static idl_status unsqueeze_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int64_t axes[IDL_MAX_DIMS];
    int n;
    if ((st = ints_input_or_attr(c, 1, "axes", axes, IDL_MAX_DIMS, &n))) return st;
    if (n < 0) return idl__error(IDL_ERR_INVALID_ARG, "Unsqueeze needs axes");
    int r = x->ndim + n;
    if (r > IDL_MAX_DIMS)
        return idl__error(IDL_ERR_UNSUPPORTED, "rank %d above %d", r, IDL_MAX_DIMS);
    bool ins[IDL_MAX_DIMS] = { false };
    for (int i = 0; i < n; i++) {
        int a;
        if ((st = idl__norm_axis(axes[i], r, &a))) return st;
        if (ins[a]) return idl__error(IDL_ERR_INVALID_ARG, "axis %d repeated", a);
        ins[a] = true;
    }
    int64_t shp[IDL_MAX_DIMS];
    for (int d = 0, k = 0; d < r; d++)
        shp[d] = ins[d] ? 1 : x->shape[k++];
    idl__set_out(c->out[0], x->dtype, r, shp);
    return IDL_OK;
}

/* ---- Transpose ---- */
typedef struct view_state {
    view fwd; /* y (contiguous) <- x (strided); simplified */
    view bwd; /* Transpose: dx (contiguous) <- dy (strided); others: the unsimplified fwd */
} view_state;

static idl_status transpose_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int r = x->ndim, n;
    int perm[IDL_MAX_DIMS];
    const int64_t *p = idl__attr_ints(c->node, "perm", &n);
    if (n < 0) {
        for (int d = 0; d < r; d++)
            perm[d] = r - 1 - d;
    } else {
        if (n != r) return idl__error(IDL_ERR_INVALID_ARG, "perm has %d entries for rank %d", n, r);
        bool seen[IDL_MAX_DIMS] = { false };
        for (int d = 0; d < r; d++) {
            if (p[d] < 0 || p[d] >= r || seen[p[d]])
                return idl__error(IDL_ERR_INVALID_ARG, "perm is not a permutation of 0..%d", r - 1);
            seen[p[d]] = true;
            perm[d] = (int)p[d];
        }
    }
    view_state *s;
    if ((st = alloc_state(c, sizeof *s, (void **)&s))) return st;
    int64_t xs[IDL_MAX_DIMS], ys[IDL_MAX_DIMS], yshp[IDL_MAX_DIMS];
    contiguous_strides(r, x->shape, xs);
    for (int d = 0; d < r; d++)
        yshp[d] = x->shape[perm[d]];
    contiguous_strides(r, yshp, ys);
    s->fwd.nd = s->bwd.nd = r;
    for (int d = 0; d < r; d++) {
        s->fwd.shp[d] = yshp[d];
        s->fwd.str[d] = xs[perm[d]];
        s->bwd.shp[perm[d]] = x->shape[perm[d]];
        s->bwd.str[perm[d]] = ys[d];
    }
    view_simplify(&s->fwd);
    view_simplify(&s->bwd);
    idl__set_out(c->out[0], x->dtype, r, yshp);
    return IDL_OK;
}

static void view_forward(idl__op_ctx *c) {
    const view_state *s = c->state;
    view_gather(c->out[0]->data, c->in[0]->data, &s->fwd, idl_dtype_size(c->in[0]->dtype));
}

static idl_status transpose_backward(idl__op_ctx *c) {
    const view_state *s = c->state;
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != IDL_DT_F32) return IDL_OK;
    view_gather_add(c->din[0]->data, c->dout[0]->data, &s->bwd);
    return IDL_OK;
}

/* ---- Concat / Split along one axis: outer x (part) x inner blocks ---- */
static void axis_split(const idl_tensor *t, int axis, int64_t *outer, int64_t *inner) {
    *outer = idl__numel(axis, t->shape);
    *inner = idl__numel(t->ndim - axis - 1, t->shape + axis + 1);
}

typedef struct concat_state {
    int axis;
} concat_state;

static idl_status concat_prepare(idl__op_ctx *c) {
    idl_status st;
    if (c->n_in < 1) return idl__error(IDL_ERR_INVALID_ARG, "Concat needs inputs");
    for (int k = 0; k < c->n_in; k++)
        if (!c->in[k]) return idl__error(IDL_ERR_INVALID_ARG, "input %d is absent", k);
    const idl_tensor *x0 = c->in[0];
    if (x0->ndim == 0) return idl__error(IDL_ERR_INVALID_ARG, "Concat of scalars (rank 0)");
    if (!idl__attr_get(c->node, "axis"))
        return idl__error(IDL_ERR_INVALID_ARG, "Concat needs an axis attribute");
    int axis;
    if ((st = idl__norm_axis(idl__attr_int(c->node, "axis", 0), x0->ndim, &axis))) return st;
    int64_t shp[IDL_MAX_DIMS];
    for (int d = 0; d < x0->ndim; d++)
        shp[d] = x0->shape[d];
    shp[axis] = 0;
    for (int k = 0; k < c->n_in; k++) {
        const idl_tensor *x = c->in[k];
        if (x->dtype != x0->dtype)
            return idl__error(IDL_ERR_INVALID_ARG, "input %d is %s, input 0 is %s", k,
                              idl_dtype_name(x->dtype), idl_dtype_name(x0->dtype));
        bool ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x->ndim; d++)
            ok = d == axis || x->shape[d] == x0->shape[d];
        if (!ok) {
            char a[128], b[128];
            return idl__error(IDL_ERR_SHAPE,
                              "input %d %s does not match input 0 %s outside axis %d", k,
                              idl__shape_str(x->ndim, x->shape, a, sizeof a),
                              idl__shape_str(x0->ndim, x0->shape, b, sizeof b), axis);
        }
        shp[axis] += x->shape[axis];
    }
    concat_state *s;
    if ((st = alloc_state(c, sizeof *s, (void **)&s))) return st;
    s->axis = axis;
    idl__set_out(c->out[0], x0->dtype, x0->ndim, shp);
    return IDL_OK;
}

static void concat_forward(idl__op_ctx *c) {
    const concat_state *s = c->state;
    const idl_tensor *y = c->out[0];
    size_t esz = idl_dtype_size(y->dtype);
    int64_t outer, inner;
    axis_split(y, s->axis, &outer, &inner);
    int64_t row = y->shape[s->axis] * inner; /* elements of y per outer index */
    int64_t off = 0;
    for (int k = 0; k < c->n_in; k++) {
        int64_t blk = c->in[k]->shape[s->axis] * inner;
        const char *x = c->in[k]->data;
        char *yd = (char *)y->data + (size_t)off * esz;
#pragma omp parallel for if (outer * blk > IDL_OMP_MIN && outer > 1) schedule(static)
        for (int64_t o = 0; o < outer; o++)
            memcpy(yd + (size_t)(o * row) * esz, x + (size_t)(o * blk) * esz, (size_t)blk * esz);
        off += blk;
    }
}

static idl_status concat_backward(idl__op_ctx *c) {
    const concat_state *s = c->state;
    if (!c->dout[0] || c->out[0]->dtype != IDL_DT_F32) return IDL_OK;
    const idl_tensor *y = c->out[0];
    int64_t outer, inner;
    axis_split(y, s->axis, &outer, &inner);
    int64_t row = y->shape[s->axis] * inner, off = 0;
    const float *dy = c->dout[0]->data;
    for (int k = 0; k < c->n_in; k++) {
        int64_t blk = c->in[k]->shape[s->axis] * inner;
        if (c->din[k]) {
            float *dx = c->din[k]->data;
#pragma omp parallel for if (outer * blk > IDL_OMP_MIN) schedule(static)
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < blk; i++)
                    dx[o * blk + i] += dy[o * row + off + i];
        }
        off += blk;
    }
    return IDL_OK;
}

/* Split: sizes from input 1 (opset 13), the "split" attribute (before 13), num_outputs (opset 18,
 * last part smaller), or equal parts. */
typedef struct split_state {
    int axis;
    int64_t size[]; /* per output, along axis */
} split_state;

static idl_status split_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int axis;
    if ((st = idl__norm_axis(idl__attr_int(c->node, "axis", 0), x->ndim, &axis))) return st;
    if (x->ndim == 0) return idl__error(IDL_ERR_INVALID_ARG, "cannot split a scalar");
    int no = c->n_out;
    split_state *s;
    if ((st = alloc_state(c, sizeof *s + sizeof(int64_t) * (size_t)no, (void **)&s))) return st;
    s->axis = axis;
    int64_t dim = x->shape[axis];
    int n;
    const int64_t *a = idl__attr_ints(c->node, "split", &n);
    if (c->n_in >= 2 && c->in[1] && idl_tensor_numel(c->in[1]) > 0) {
        if ((st = idl__const_ints(c, 1, s->size, no, &n)))
            return idl__error_prefix(st, "split sizes: ");
        if (n != no)
            return idl__error(IDL_ERR_INVALID_ARG, "split has %d sizes for %d outputs", n, no);
    } else if (n >= 0) {
        if (n != no)
            return idl__error(IDL_ERR_INVALID_ARG, "split has %d sizes for %d outputs", n, no);
        for (int k = 0; k < no; k++)
            s->size[k] = a[k];
    } else if (idl__attr_get(c->node, "num_outputs")) {
        int64_t parts = idl__attr_int(c->node, "num_outputs", no);
        if (parts != no)
            return idl__error(IDL_ERR_INVALID_ARG, "num_outputs %lld but %d outputs",
                              (long long)parts, no);
        int64_t chunk = (dim + no - 1) / no;
        for (int k = 0; k < no; k++)
            s->size[k] = IDL_MAX(0, IDL_MIN(chunk, dim - chunk * k));
    } else {
        if (dim % no)
            return idl__error(IDL_ERR_SHAPE,
                              "axis %d of size %lld does not split into %d equal parts", axis,
                              (long long)dim, no);
        for (int k = 0; k < no; k++)
            s->size[k] = dim / no;
    }
    int64_t sum = 0;
    for (int k = 0; k < no; k++) {
        if (s->size[k] < 0 || s->size[k] > dim)
            return idl__error(IDL_ERR_INVALID_ARG, "split size %lld outside 0..%lld",
                              (long long)s->size[k], (long long)dim);
        sum += s->size[k];
    }
    if (sum != dim)
        return idl__error(IDL_ERR_SHAPE, "split sizes add up to %lld, axis %d has %lld",
                          (long long)sum, axis, (long long)dim);
    int64_t shp[IDL_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shp[d] = x->shape[d];
    for (int k = 0; k < no; k++) {
        shp[axis] = s->size[k];
        if (c->out[k]) idl__set_out(c->out[k], x->dtype, x->ndim, shp);
    }
    return IDL_OK;
}

static void split_forward(idl__op_ctx *c) {
    const split_state *s = c->state;
    const idl_tensor *x = c->in[0];
    size_t esz = idl_dtype_size(x->dtype);
    int64_t outer, inner;
    axis_split(x, s->axis, &outer, &inner);
    int64_t row = x->shape[s->axis] * inner, off = 0;
    for (int k = 0; k < c->n_out; k++) {
        int64_t blk = s->size[k] * inner;
        if (c->out[k]) {
            const char *xd = (const char *)x->data + (size_t)off * esz;
            char *y = c->out[k]->data;
#pragma omp parallel for if (outer * blk > IDL_OMP_MIN && outer > 1) schedule(static)
            for (int64_t o = 0; o < outer; o++)
                memcpy(y + (size_t)(o * blk) * esz, xd + (size_t)(o * row) * esz,
                       (size_t)blk * esz);
        }
        off += blk;
    }
}

static idl_status split_backward(idl__op_ctx *c) {
    const split_state *s = c->state;
    const idl_tensor *x = c->in[0];
    if (!c->din[0] || x->dtype != IDL_DT_F32) return IDL_OK;
    int64_t outer, inner;
    axis_split(x, s->axis, &outer, &inner);
    int64_t row = x->shape[s->axis] * inner, off = 0;
    float *dx = c->din[0]->data;
    for (int k = 0; k < c->n_out; k++) {
        int64_t blk = s->size[k] * inner;
        if (c->dout[k]) { /* an output without gradient contributes nothing */
            const float *dy = c->dout[k]->data;
#pragma omp parallel for if (outer * blk > IDL_OMP_MIN) schedule(static)
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < blk; i++)
                    dx[o * row + off + i] += dy[o * blk + i];
        }
        off += blk;
    }
    return IDL_OK;
}

/* ---- Gather: y[o, j..., i] = x[o, idx[j...], i]; x: (outer, n, inner) around axis ---- */
typedef struct gather_state {
    int axis;
} gather_state;

static idl_status gather_prepare(idl__op_ctx *c) {
    idl_status st;
    if (!c->in[0] || !c->in[1])
        return idl__error(IDL_ERR_INVALID_ARG, "Gather needs data and indices");
    const idl_tensor *x = c->in[0], *ix = c->in[1];
    if (ix->dtype != IDL_DT_I64 && ix->dtype != IDL_DT_I32)
        return idl__error(IDL_ERR_INVALID_ARG, "indices must be int64 or int32, are %s",
                          idl_dtype_name(ix->dtype));
    if (x->ndim == 0) return idl__error(IDL_ERR_INVALID_ARG, "Gather on a scalar");
    int axis;
    if ((st = idl__norm_axis(idl__attr_int(c->node, "axis", 0), x->ndim, &axis))) return st;
    int r = x->ndim - 1 + ix->ndim;
    if (r > IDL_MAX_DIMS)
        return idl__error(IDL_ERR_UNSUPPORTED, "output rank %d above %d", r, IDL_MAX_DIMS);
    int64_t n = x->shape[axis];
    if (c->in_const[1]) /* otherwise out-of-range indices give zeros at run time */
        for (int64_t j = 0; j < idl_tensor_numel(ix); j++) {
            int64_t v = idl__get_i64(ix, j);
            if (v < -n || v >= n)
                return idl__error(IDL_ERR_INVALID_ARG,
                                  "index %lld out of range for axis %d of size %lld", (long long)v,
                                  axis, (long long)n);
        }
    gather_state *s;
    if ((st = alloc_state(c, sizeof *s, (void **)&s))) return st;
    s->axis = axis;
    int64_t shp[IDL_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < axis; d++)
        shp[k++] = x->shape[d];
    for (int d = 0; d < ix->ndim; d++)
        shp[k++] = ix->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        shp[k++] = x->shape[d];
    idl__set_out(c->out[0], x->dtype, r, shp);
    return IDL_OK;
}

static inline int64_t gather_index(const idl_tensor *ix, int64_t j, int64_t n) {
    int64_t v =
        ix->dtype == IDL_DT_I64 ? ((const int64_t *)ix->data)[j] : ((const int32_t *)ix->data)[j];
    if (v < 0) v += n;
    return v >= 0 && v < n ? v : -1;
}

static void gather_forward(idl__op_ctx *c) {
    const gather_state *s = c->state;
    const idl_tensor *x = c->in[0], *ix = c->in[1];
    size_t esz = idl_dtype_size(x->dtype);
    int64_t outer, inner, n = x->shape[s->axis], ni = idl_tensor_numel(ix);
    axis_split(x, s->axis, &outer, &inner);
    size_t blk = (size_t)inner * esz;
    const char *xd = x->data;
    char *y = c->out[0]->data;
#pragma omp parallel for if (outer * ni * inner > IDL_OMP_MIN) schedule(static)
    for (int64_t t = 0; t < outer * ni; t++) {
        int64_t o = t / ni, v = gather_index(ix, t % ni, n);
        if (v < 0)
            memset(y + (size_t)t * blk, 0, blk);
        else
            memcpy(y + (size_t)t * blk, xd + (size_t)(o * n + v) * blk, blk);
    }
}

/* dx[o, idx[j], i] += dy[o, j, i]: repeated indices accumulate. Work items are (o, chunk of i);
 * each visits j in order, so the sums do not depend on the thread count. */
static idl_status gather_backward(idl__op_ctx *c) {
    const gather_state *s = c->state;
    const idl_tensor *x = c->in[0], *ix = c->in[1];
    if (!c->din[0] || !c->dout[0] || x->dtype != IDL_DT_F32) return IDL_OK;
    int64_t outer, inner, n = x->shape[s->axis], ni = idl_tensor_numel(ix);
    axis_split(x, s->axis, &outer, &inner);
    int64_t nchunk = (inner + GATHER_CHUNK - 1) / GATHER_CHUNK;
    float *dx = c->din[0]->data;
    const float *dy = c->dout[0]->data;
#pragma omp parallel for if (outer * ni * inner > IDL_OMP_MIN) schedule(static)
    for (int64_t w = 0; w < outer * nchunk; w++) {
        int64_t o = w / nchunk, i0 = (w % nchunk) * GATHER_CHUNK,
                i1 = IDL_MIN(i0 + GATHER_CHUNK, inner);
        for (int64_t j = 0; j < ni; j++) {
            int64_t v = gather_index(ix, j, n);
            if (v < 0) continue;
            float *d = dx + (o * n + v) * inner;
            const float *g = dy + (o * ni + j) * inner;
            for (int64_t i = i0; i < i1; i++)
                d[i] += g[i];
        }
    }
    return IDL_OK;
}

/* gather_backward reads the indices (gather_index), not x. */
static unsigned gather_bwd_reads(const idl__op_ctx *c) {
    (void)c;
    return IDL__BWD_IN(1);
}

/* ---- Shape (opset 15: start/end slice the shape) ---- */
typedef struct shape_state {
    int start;
} shape_state;

static idl_status shape_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    int r = c->in[0]->ndim;
    int64_t start = 0, end = r;
    if (c->opset >= 15) {
        start = idl__attr_int(c->node, "start", 0);
        end = idl__attr_int(c->node, "end", r);
    }
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = IDL_MIN(IDL_MAX(start, 0), r);
    end = IDL_MIN(IDL_MAX(end, 0), r);
    shape_state *s;
    if ((st = alloc_state(c, sizeof *s, (void **)&s))) return st;
    s->start = (int)start;
    int64_t n = IDL_MAX(end - start, 0);
    idl__set_out(c->out[0], IDL_DT_I64, 1, &n);
    return IDL_OK;
}

/* Reads only the input's shape, never its data. */
static void shape_forward(idl__op_ctx *c) {
    const shape_state *s = c->state;
    int64_t *y = c->out[0]->data;
    for (int64_t i = 0; i < c->out[0]->shape[0]; i++)
        y[i] = c->in[0]->shape[s->start + i];
}

/* ---- Cast ---- */
static idl_status cast_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    if (!idl__attr_get(c->node, "to"))
        return idl__error(IDL_ERR_INVALID_ARG, "Cast needs a 'to' attribute");
    int64_t to = idl__attr_int(c->node, "to", 0);
    switch (to) {
    case IDL_DT_F32:
    case IDL_DT_F64:
    case IDL_DT_I64:
    case IDL_DT_I32:
    case IDL_DT_I8:
    case IDL_DT_U8:
    case IDL_DT_BOOL:
        break;
    default:
        return idl__error(
            IDL_ERR_UNSUPPORTED,
            "Cast to ONNX type %lld (float16, bfloat16, string, 16-bit or unsigned 32/64-bit "
            "integers, complex) is not supported",
            (long long)to);
    }
    idl__set_out(c->out[0], (idl_dtype)to, c->in[0]->ndim, c->in[0]->shape);
    return IDL_OK;
}

/* Float to integer truncates toward zero; NaN gives 0 and values beyond int64 saturate (C leaves
 * those undefined); narrower integers then wrap like a C conversion from int64. */
static inline int64_t f2i(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static void cast_forward(idl__op_ctx *c) {
    const idl_tensor *x = c->in[0];
    idl_dtype to = c->out[0]->dtype;
    int64_t n = idl_tensor_numel(x);
    if (x->dtype == to) {
        copy_forward(c);
        return;
    }
    void *y = c->out[0]->data;
    bool xf = x->dtype == IDL_DT_F32 || x->dtype == IDL_DT_F64;
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        if (xf) {
            double v = idl__get_f64(x, i);
            switch (to) {
            case IDL_DT_F32:
                ((float *)y)[i] = (float)v;
                break;
            case IDL_DT_F64:
                ((double *)y)[i] = v;
                break;
            case IDL_DT_I64:
                ((int64_t *)y)[i] = f2i(v);
                break;
            case IDL_DT_I32:
                ((int32_t *)y)[i] = (int32_t)(uint32_t)(uint64_t)f2i(v);
                break;
            case IDL_DT_I8:
                ((int8_t *)y)[i] = (int8_t)(uint8_t)(uint64_t)f2i(v);
                break;
            case IDL_DT_U8:
                ((uint8_t *)y)[i] = (uint8_t)(uint64_t)f2i(v);
                break;
            case IDL_DT_BOOL:
                ((uint8_t *)y)[i] = v != 0;
                break;
            default:
                break;
            }
        } else {
            int64_t v = idl__get_i64(x, i);
            switch (to) {
            case IDL_DT_F32:
                ((float *)y)[i] = (float)v;
                break;
            case IDL_DT_F64:
                ((double *)y)[i] = (double)v;
                break;
            case IDL_DT_I64:
                ((int64_t *)y)[i] = v;
                break;
            case IDL_DT_I32:
                ((int32_t *)y)[i] = (int32_t)(uint32_t)(uint64_t)v;
                break;
            case IDL_DT_I8:
                ((int8_t *)y)[i] = (int8_t)(uint8_t)(uint64_t)v;
                break;
            case IDL_DT_U8:
                ((uint8_t *)y)[i] = (uint8_t)(uint64_t)v;
                break;
            case IDL_DT_BOOL:
                ((uint8_t *)y)[i] = v != 0;
                break;
            default:
                break;
            }
        }
    }
}

/* Identity for float32 -> float32; any other cast stops the gradient (nothing flows). */
static idl_status cast_backward(idl__op_ctx *c) {
    if (c->out[0]->dtype != IDL_DT_F32) return IDL_OK;
    return copy_backward(c);
}

/* ---- Slice ---- */
static idl_status slice_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int r = x->ndim;
    int64_t starts[IDL_MAX_DIMS], ends[IDL_MAX_DIMS], axes[IDL_MAX_DIMS], steps[IDL_MAX_DIMS];
    int ns, ne, na = -1, nst = -1;
    if (c->n_in >= 3) { /* opset 10: inputs */
        if ((st = idl__const_ints(c, 1, starts, IDL_MAX_DIMS, &ns)))
            return idl__error_prefix(st, "starts: ");
        if ((st = idl__const_ints(c, 2, ends, IDL_MAX_DIMS, &ne)))
            return idl__error_prefix(st, "ends: ");
        if (c->n_in >= 4 && c->in[3] && (st = idl__const_ints(c, 3, axes, IDL_MAX_DIMS, &na)))
            return idl__error_prefix(st, "axes: ");
        if (c->n_in >= 5 && c->in[4] && (st = idl__const_ints(c, 4, steps, IDL_MAX_DIMS, &nst)))
            return idl__error_prefix(st, "steps: ");
    } else { /* before opset 10: attributes */
        const int64_t *a = idl__attr_ints(c->node, "starts", &ns);
        const int64_t *b = idl__attr_ints(c->node, "ends", &ne);
        const int64_t *ax = idl__attr_ints(c->node, "axes", &na);
        if (ns < 0 || ne < 0) return idl__error(IDL_ERR_INVALID_ARG, "Slice needs starts and ends");
        if (ns > IDL_MAX_DIMS || ne > IDL_MAX_DIMS || na > IDL_MAX_DIMS)
            return idl__error(IDL_ERR_INVALID_ARG, "more than %d axes", IDL_MAX_DIMS);
        memcpy(starts, a, sizeof(int64_t) * (size_t)ns);
        memcpy(ends, b, sizeof(int64_t) * (size_t)ne);
        if (na > 0) memcpy(axes, ax, sizeof(int64_t) * (size_t)na);
    }
    if (ne != ns) return idl__error(IDL_ERR_INVALID_ARG, "%d starts but %d ends", ns, ne);
    if (na >= 0 && na != ns)
        return idl__error(IDL_ERR_INVALID_ARG, "%d starts but %d axes", ns, na);
    if (nst >= 0 && nst != ns)
        return idl__error(IDL_ERR_INVALID_ARG, "%d starts but %d steps", ns, nst);
    if (na < 0)
        for (int i = 0; i < ns; i++)
            axes[i] = i;
    if (nst < 0)
        for (int i = 0; i < ns; i++)
            steps[i] = 1;
    int64_t lo[IDL_MAX_DIMS], step[IDL_MAX_DIMS], shp[IDL_MAX_DIMS];
    bool seen[IDL_MAX_DIMS] = { false };
    for (int d = 0; d < r; d++) {
        lo[d] = 0;
        step[d] = 1;
        shp[d] = x->shape[d];
    }
    for (int i = 0; i < ns; i++) {
        int a;
        if ((st = idl__norm_axis(axes[i], r, &a))) return st;
        if (r == 0) return idl__error(IDL_ERR_INVALID_ARG, "cannot slice a scalar");
        if (seen[a]) return idl__error(IDL_ERR_INVALID_ARG, "axis %d repeated", a);
        seen[a] = true;
        int64_t dim = x->shape[a], s = steps[i], b = starts[i], e = ends[i];
        if (s == 0) return idl__error(IDL_ERR_INVALID_ARG, "step 0 on axis %d", a);
        if (s == INT64_MIN) s = -INT64_MAX;
        if (b < 0) b += dim;
        if (e < 0) e += dim;
        int64_t n;
        if (s > 0) {
            b = IDL_MIN(IDL_MAX(b, 0), dim);
            e = IDL_MIN(IDL_MAX(e, 0), dim);
            n = e > b ? (e - b) / s + ((e - b) % s != 0) : 0;
        } else {
            b = IDL_MIN(IDL_MAX(b, 0), dim - 1);
            e = IDL_MIN(IDL_MAX(e, -1), dim - 1);
            n = b > e ? (b - e) / -s + ((b - e) % -s != 0) : 0;
        }
        lo[a] = n > 0 ? b : 0;
        step[a] = s;
        shp[a] = n;
    }
    view_state *vs;
    if ((st = alloc_state(c, sizeof *vs, (void **)&vs))) return st;
    int64_t xs[IDL_MAX_DIMS];
    contiguous_strides(r, x->shape, xs);
    view *v = &vs->fwd;
    v->nd = r;
    for (int d = 0; d < r; d++) {
        v->shp[d] = shp[d];
        v->str[d] = xs[d] * step[d];
        v->base += lo[d] * xs[d];
    }
    view_simplify(v);
    idl__set_out(c->out[0], x->dtype, r, shp);
    return IDL_OK;
}

static idl_status slice_backward(idl__op_ctx *c) {
    const view_state *s = c->state;
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != IDL_DT_F32) return IDL_OK;
    view_scatter_add(c->din[0]->data, c->dout[0]->data, &s->fwd);
    return IDL_OK;
}

/* ---- ConstantOfShape ---- */
typedef struct fill_state {
    unsigned char value[8];
} fill_state;

static idl_status constantofshape_prepare(idl__op_ctx *c) {
    idl_status st;
    int64_t shp[IDL_MAX_DIMS];
    int n;
    if ((st = idl__const_ints(c, 0, shp, IDL_MAX_DIMS, &n))) return st;
    for (int i = 0; i < n; i++)
        if (shp[i] < 0)
            return idl__error(IDL_ERR_SHAPE, "negative dimension %lld", (long long)shp[i]);
    fill_state *s;
    if ((st = alloc_state(c, sizeof *s, (void **)&s))) return st;
    idl_dtype dt = IDL_DT_F32;
    const idl__attr *a = idl__attr_get(c->node, "value");
    if (a) {
        if (a->type != IDL__ATTR_TENSOR || !a->t || idl_tensor_numel(a->t) != 1)
            return idl__error(IDL_ERR_INVALID_ARG, "value must be a one-element tensor");
        dt = a->t->dtype;
        memcpy(s->value, a->t->data, idl_dtype_size(dt));
    }
    idl__set_out(c->out[0], dt, n, shp);
    return IDL_OK;
}

static void fill(void *dst, int64_t n, const void *value, size_t esz) {
    switch (esz) {
    case 1:
        memset(dst, *(const uint8_t *)value, (size_t)n);
        return;
    case 4: {
        uint32_t v;
        memcpy(&v, value, 4);
        for (int64_t i = 0; i < n; i++)
            ((uint32_t *)dst)[i] = v;
        return;
    }
    case 8: {
        uint64_t v;
        memcpy(&v, value, 8);
        for (int64_t i = 0; i < n; i++)
            ((uint64_t *)dst)[i] = v;
        return;
    }
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy((char *)dst + (size_t)i * esz, value, esz);
    }
}

static void constantofshape_forward(idl__op_ctx *c) {
    const fill_state *s = c->state;
    fill(c->out[0]->data, idl_tensor_numel(c->out[0]), s->value, idl_dtype_size(c->out[0]->dtype));
}

/* ---- Expand: bidirectional broadcast of x against shape ---- */
static idl_status expand_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int64_t tgt[IDL_MAX_DIMS], shp[IDL_MAX_DIMS];
    int n, r;
    if ((st = idl__const_ints(c, 1, tgt, IDL_MAX_DIMS, &n))) return st;
    if ((st = idl__broadcast_shape(x->ndim, x->shape, n, tgt, &r, shp))) return st;
    view_state *s;
    if ((st = alloc_state(c, sizeof *s, (void **)&s))) return st;
    s->bwd.nd = r;
    for (int d = 0; d < r; d++)
        s->bwd.shp[d] = shp[d];
    idl__broadcast_strides(x->ndim, x->shape, r, shp, s->bwd.str);
    s->fwd = s->bwd;
    view_simplify(&s->fwd);
    idl__set_out(c->out[0], x->dtype, r, shp);
    return IDL_OK;
}

/* Expand and Tile: dx sums dy over the broadcast (stride-0) axes of the unsimplified view. */
static idl_status reduce_backward(idl__op_ctx *c) {
    const view_state *s = c->state;
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != IDL_DT_F32) return IDL_OK;
    view_reduce_add(c->din[0]->data, c->dout[0]->data, &s->bwd);
    return IDL_OK;
}

/* ---- Tile: y viewed as (rep0, d0, rep1, d1, ...) reads x with strides (0, s0, 0, s1, ...) ---- */
static idl_status tile_prepare(idl__op_ctx *c) {
    idl_status st = need_data(c);
    if (st) return st;
    const idl_tensor *x = c->in[0];
    int64_t rep[IDL_MAX_DIMS], shp[IDL_MAX_DIMS], xs[IDL_MAX_DIMS];
    int n;
    if ((st = idl__const_ints(c, 1, rep, IDL_MAX_DIMS, &n))) return st;
    if (n != x->ndim) return idl__error(IDL_ERR_INVALID_ARG, "%d repeats for rank %d", n, x->ndim);
    view_state *s;
    if ((st = alloc_state(c, sizeof *s, (void **)&s))) return st;
    contiguous_strides(x->ndim, x->shape, xs);
    s->bwd.nd = 2 * x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        if (rep[d] < 0)
            return idl__error(IDL_ERR_INVALID_ARG, "negative repeat %lld", (long long)rep[d]);
        if (!idl__mul_ok(x->shape[d], rep[d], &shp[d]))
            return idl__error(IDL_ERR_SHAPE, "output size overflows");
        s->bwd.shp[2 * d] = rep[d];
        s->bwd.str[2 * d] = 0;
        s->bwd.shp[2 * d + 1] = x->shape[d];
        s->bwd.str[2 * d + 1] = xs[d];
    }
    s->fwd = s->bwd;
    view_simplify(&s->fwd);
    idl__set_out(c->out[0], x->dtype, x->ndim, shp);
    return IDL_OK;
}

/* ---- Range: start + i * delta for i < max(ceil((limit - start) / delta), 0) ---- */
static idl_status range_prepare(idl__op_ctx *c) {
    idl_status st;
    for (int k = 0; k < 3; k++) {
        if ((st = idl__need_const(c, k))) return st;
        if (idl_tensor_numel(c->in[k]) != 1)
            return idl__error(IDL_ERR_INVALID_ARG, "input %d must be a scalar", k);
        if (c->in[k]->dtype != c->in[0]->dtype)
            return idl__error(IDL_ERR_INVALID_ARG, "inputs have different types");
    }
    idl_dtype dt = c->in[0]->dtype;
    int64_t n;
    if (dt == IDL_DT_F32 || dt == IDL_DT_F64) {
        double b = idl__get_f64(c->in[0], 0), e = idl__get_f64(c->in[1], 0),
               d = idl__get_f64(c->in[2], 0);
        if (d == 0 || d != d || b != b || e != e)
            return idl__error(IDL_ERR_INVALID_ARG, "delta is 0 or NaN");
        double q = ceil((e - b) / d);
        if (!(q < 1e15)) return idl__error(IDL_ERR_SHAPE, "Range of %g elements", q);
        n = q > 0 ? (int64_t)q : 0;
    } else if (dt == IDL_DT_I64 || dt == IDL_DT_I32) {
        int64_t b = idl__get_i64(c->in[0], 0), e = idl__get_i64(c->in[1], 0),
                d = idl__get_i64(c->in[2], 0);
        if (d == 0) return idl__error(IDL_ERR_INVALID_ARG, "delta is 0");
        /* in double to avoid overflow of e - b; exact for any sane length */
        double q = ceil(((double)e - (double)b) / (double)d);
        if (!(q < 1e15)) return idl__error(IDL_ERR_SHAPE, "Range of %g elements", q);
        n = q > 0 ? (int64_t)q : 0;
        if (n > 0 && n < (int64_t)1 << 52) { /* exact integer count */
            int64_t span = d > 0 ? e - b : b - e, ad = d > 0 ? d : -d;
            n = span > 0 ? span / ad + (span % ad != 0) : 0;
        }
    } else {
        return idl__error(IDL_ERR_UNSUPPORTED, "Range of %s", idl_dtype_name(dt));
    }
    idl__set_out(c->out[0], dt, 1, &n);
    return IDL_OK;
}

static void range_forward(idl__op_ctx *c) {
    const idl_tensor *y = c->out[0];
    int64_t n = y->shape[0];
    switch (y->dtype) {
    case IDL_DT_F32: {
        float b = *(const float *)c->in[0]->data, d = *(const float *)c->in[2]->data;
        for (int64_t i = 0; i < n; i++)
            ((float *)y->data)[i] = b + (float)i * d;
        break;
    }
    case IDL_DT_F64: {
        double b = *(const double *)c->in[0]->data, d = *(const double *)c->in[2]->data;
        for (int64_t i = 0; i < n; i++)
            ((double *)y->data)[i] = b + (double)i * d;
        break;
    }
    case IDL_DT_I64: {
        int64_t b = *(const int64_t *)c->in[0]->data, d = *(const int64_t *)c->in[2]->data;
        for (int64_t i = 0; i < n; i++)
            ((int64_t *)y->data)[i] = b + i * d;
        break;
    }
    case IDL_DT_I32: {
        int32_t b = *(const int32_t *)c->in[0]->data, d = *(const int32_t *)c->in[2]->data;
        for (int64_t i = 0; i < n; i++)
            ((int32_t *)y->data)[i] = (int32_t)(b + i * d);
        break;
    }
    default:
        break;
    }
}

/* Backward reads (op.h bwd_reads): the data movements only move dy (their operands that decide
 * shapes are read at prepare); Gather reads its indices. */
const idl__op_def IDL__OP(reshape) = {
    "Reshape",          1, 2, 1, 1, reshape_prepare, copy_forward, copy_backward, NULL, 0,
    idl__bwd_reads_none
};
const idl__op_def IDL__OP(flatten) = {
    "Flatten",          1, 1, 1, 1, flatten_prepare, copy_forward, copy_backward, NULL, 0,
    idl__bwd_reads_none
};
const idl__op_def IDL__OP(squeeze) = {
    "Squeeze",          1, 2, 1, 1, squeeze_prepare, copy_forward, copy_backward, NULL, 0,
    idl__bwd_reads_none
};
const idl__op_def IDL__OP(unsqueeze) = {
    "Unsqueeze",        1, 2, 1, 1, unsqueeze_prepare, copy_forward, copy_backward, NULL, 0,
    idl__bwd_reads_none
};
const idl__op_def IDL__OP(transpose) = { "Transpose",
                                         1,
                                         1,
                                         1,
                                         1,
                                         transpose_prepare,
                                         view_forward,
                                         transpose_backward,
                                         free_state,
                                         0,
                                         idl__bwd_reads_none };
const idl__op_def IDL__OP(concat) = { "Concat",
                                      1,
                                      4096,
                                      1,
                                      1,
                                      concat_prepare,
                                      concat_forward,
                                      concat_backward,
                                      free_state,
                                      0,
                                      idl__bwd_reads_none };
const idl__op_def IDL__OP(split) = { "Split",
                                     1,
                                     2,
                                     1,
                                     4096,
                                     split_prepare,
                                     split_forward,
                                     split_backward,
                                     free_state,
                                     0,
                                     idl__bwd_reads_none };
const idl__op_def IDL__OP(gather) = {
    "Gather",        2, 2, 1, 1, gather_prepare, gather_forward, gather_backward, free_state, 0,
    gather_bwd_reads
};
const idl__op_def IDL__OP(shape) = {
    "Shape", 1, 1, 1, 1, shape_prepare, shape_forward, NULL, free_state, IDL__OP_SHAPE_ONLY
};
const idl__op_def IDL__OP(cast) = {
    "Cast", 1, 1, 1, 1, cast_prepare, cast_forward, cast_backward, NULL, 0, idl__bwd_reads_none
};
const idl__op_def IDL__OP(slice) = { "Slice",
                                     1,
                                     5,
                                     1,
                                     1,
                                     slice_prepare,
                                     view_forward,
                                     slice_backward,
                                     free_state,
                                     0,
                                     idl__bwd_reads_none };
const idl__op_def IDL__OP(constantofshape) = {
    "ConstantOfShape",       1,    1,         1, 1, constantofshape_prepare,
    constantofshape_forward, NULL, free_state
};
const idl__op_def IDL__OP(expand) = {
    "Expand",           2, 2, 1, 1, expand_prepare, view_forward, reduce_backward, free_state, 0,
    idl__bwd_reads_none
};
const idl__op_def
    IDL__OP(range) = { "Range", 3, 3, 1, 1, range_prepare, range_forward, NULL, NULL };
const idl__op_def IDL__OP(tile) = { "Tile",
                                    2,
                                    2,
                                    1,
                                    1,
                                    tile_prepare,
                                    view_forward,
                                    reduce_backward,
                                    free_state,
                                    0,
                                    idl__bwd_reads_none };
