/* perturb.c — Occlusion (Zeiler & Fergus 2014; Captum's Occlusion): a window slides over every
 * sample of the attributed tensor, each occluded copy is one forward row of the batched evaluator,
 * and the objective's drop d_k = f(x) - f(x_k) is spread over the elements of window k.
 * Captum divides each element's sum by the number of windows covering it (default here);
 * InterpretDL keeps the sum (aggregate=sum). InterpretDL enumerates the windows with the channel
 * axis fastest; the order does not change the result. An element no window covers (a stride
 * larger than the window) gets 0 where Captum divides 0 by 0. */
#include "interpret/interpret_internal.h"

#include <string.h>

#define IDL__MAX_WINDOWS ((int64_t)1 << 31)

idl_occlusion_params idl_occlusion_params_default(void) {
    idl_occlusion_params p;
    memset(&p, 0, sizeof p);
    return p;
}

typedef struct occ {
    const idl__xrun *r;
    int nd;
    int64_t size[IDL_MAX_DIMS], win[IDL_MAX_DIMS], str[IDL_MAX_DIMS], cnt[IDL_MAX_DIMS];
    int64_t inner[IDL_MAX_DIMS]; /* element stride of each axis in one sample */
    int64_t K;                   /* windows per sample */
    const float *base;           /* baseline values, or NULL */
    int64_t base_per;            /* 0: one baseline for every sample; else numel */
    float base_value;
    double *sum;  /* (N, numel) */
    float *cover; /* (numel) windows covering each element */
} occ;

/* Window k's start and extent on each axis. */
static void window_box(const occ *o, int64_t k, int64_t *off, int64_t *ext) {
    for (int a = o->nd - 1; a >= 0; a--) {
        off[a] = (k % o->cnt[a]) * o->str[a];
        k /= o->cnt[a];
        ext[a] = IDL_MIN(o->win[a], o->size[a] - off[a]);
    }
}

/* Runs body on each contiguous run (first element, length) of the box; an empty box (a window
 * starting past the end, when the stride exceeds the window) has none. */
#define BOX_RUNS(o, off, ext, first, len, body)                   \
    do {                                                          \
        int64_t idx_[IDL_MAX_DIMS] = { 0 };                       \
        int last_ = (o)->nd - 1;                                  \
        bool empty_ = false;                                      \
        for (int e_ = 0; e_ <= last_; e_++)                       \
            empty_ = empty_ || (ext)[e_] <= 0;                    \
        while (!empty_) {                                         \
            int64_t first = (off)[last_];                         \
            for (int a_ = 0; a_ < last_; a_++)                    \
                first += ((off)[a_] + idx_[a_]) * (o)->inner[a_]; \
            int64_t len = (ext)[last_];                           \
            body;                                                 \
            int a_ = last_ - 1;                                   \
            while (a_ >= 0 && ++idx_[a_] == (ext)[a_])            \
                idx_[a_--] = 0;                                   \
            if (a_ < 0) break;                                    \
        }                                                         \
    } while (0)

static int64_t occ_sample(void *u, int64_t row) {
    return row / ((occ *)u)->K;
}

static void occ_point(void *u, int64_t row, float *dst) {
    const occ *o = u;
    const idl__xrun *r = o->r;
    int64_t i = row / o->K, off[IDL_MAX_DIMS], ext[IDL_MAX_DIMS];
    memcpy(dst, r->x + i * r->numel, sizeof(float) * (size_t)r->numel);
    window_box(o, row % o->K, off, ext);
    const float *b = o->base ? o->base + i * o->base_per : NULL;
    BOX_RUNS(o, off, ext, first, len, {
        for (int64_t j = 0; j < len; j++)
            dst[first + j] = b ? b[first + j] : o->base_value;
    });
}

static void occ_take(void *u, int64_t row, const float *grad, float obj) {
    (void)grad;
    occ *o = u;
    int64_t i = row / o->K, off[IDL_MAX_DIMS], ext[IDL_MAX_DIMS];
    double d = (double)o->r->score[i] - (double)obj;
    double *s = o->sum + i * o->r->numel;
    window_box(o, row % o->K, off, ext);
    BOX_RUNS(o, off, ext, first, len, {
        for (int64_t j = 0; j < len; j++)
            s[first + j] += d;
    });
}

/* The window's rectangle on the last two axes (cone.c), when a sample has 3 axes (C, H, W). */
static void occ_win(void *u, int64_t k, int64_t *b) {
    const occ *o = u;
    int64_t off[IDL_MAX_DIMS], ext[IDL_MAX_DIMS];
    window_box(o, k, off, ext);
    b[0] = off[1];
    b[1] = off[1] + ext[1] - 1;
    b[2] = off[2];
    b[3] = off[2] + ext[2] - 1;
}

/* Every window through the dependency-cone passes of cone.c. */
static idl_status occ_cone(idl__xrun *r, occ *o, idl__cone *c, int64_t B) {
    int64_t *ks = idl__malloc(sizeof(int64_t) * (size_t)B * 3);
    float *obj = idl__malloc(sizeof(float) * (size_t)B);
    idl_status st = ks && obj ? IDL_OK : idl__error(IDL_ERR_NOMEM, "out of memory");
    int64_t *rows = ks + B, *tg = ks + 2 * B;
    for (int64_t i = 0; i < r->N && !st; i++) {
        st = idl__cone_sample(c, i);
        for (int64_t k0 = 0; k0 < o->K && !st; k0 += B) {
            int64_t cnt = IDL_MIN(B, o->K - k0);
            for (int64_t b = 0; b < cnt; b++) {
                ks[b] = k0 + b;
                rows[b] = i * o->K + k0 + b;
                tg[b] = r->targets[i];
            }
            if ((st = idl__cone_run(c, ks, cnt, o, occ_point, rows, tg, obj))) break;
            for (int64_t b = 0; b < cnt; b++)
                occ_take(o, rows[b], NULL, obj[b]);
            r->passes += cnt;
            if (r->rq->progress && r->rq->progress(r->passes, r->total, r->rq->progress_user))
                st = idl__error(IDL_ERR_ABORTED, "aborted by the progress callback");
        }
    }
    idl__free(ks);
    idl__free(obj);
    return st;
}

static idl_status occ_setup(occ *o, const idl__xrun *r, const idl_occlusion_params *p) {
    memset(o, 0, sizeof *o);
    o->r = r;
    o->nd = r->wrt_ndim - 1;
    if (o->nd < 1)
        return idl__error(IDL_ERR_SHAPE, "occlusion: '%s' has no axes besides the batch", r->wrt);
    if (p->n_axes < 0 || p->n_axes > o->nd)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "occlusion: setting window has %d axes; one sample of '%s' has %d",
                          p->n_axes, r->wrt, o->nd);
    int given = p->n_axes;
    int64_t def_w[2] = { 15, 15 }, def_s[2] = { 8, 8 };
    for (int a = 0; a < o->nd; a++) {
        o->size[a] = r->wrt_shape[a + 1];
        int g = a - (o->nd - given); /* index into the given values, or < 0 */
        int dflt = given == 0 ? a - (o->nd - IDL_MIN(2, o->nd)) : -1;
        if (g >= 0) {
            o->win[a] = p->window[g];
            o->str[a] = p->stride[g] ? p->stride[g] : p->window[g];
        } else if (dflt >= 0) {
            o->win[a] = IDL_MIN(def_w[dflt], o->size[a]);
            o->str[a] = def_s[dflt];
        } else {
            o->win[a] = o->size[a];
            o->str[a] = o->size[a];
        }
        if (o->win[a] < 1 || o->win[a] > o->size[a])
            return idl__error(IDL_ERR_INVALID_ARG,
                              "occlusion: setting window: %lld on axis %d outside 1..%lld (the "
                              "size of '%s' there)",
                              (long long)o->win[a], a + 1, (long long)o->size[a], r->wrt);
        if (o->str[a] < 1)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "occlusion: setting stride: %lld on axis %d must be >= 1",
                              (long long)o->str[a], a + 1);
        o->cnt[a] = (o->size[a] - o->win[a] + o->str[a] - 1) / o->str[a] + 1;
    }
    o->K = 1;
    for (int a = 0; a < o->nd; a++) {
        o->K *= o->cnt[a];
        if (o->K > IDL__MAX_WINDOWS / (r->N > 0 ? r->N : 1))
            return idl__error(IDL_ERR_INVALID_ARG,
                              "occlusion: more than %lld windows; raise the stride",
                              (long long)IDL__MAX_WINDOWS);
    }
    o->inner[o->nd - 1] = 1;
    for (int a = o->nd - 2; a >= 0; a--)
        o->inner[a] = o->inner[a + 1] * o->size[a + 1];
    o->base_value = p->baseline;
    if (p->baseline_tensor) {
        const idl_tensor *b = p->baseline_tensor;
        int64_t n = idl_tensor_numel(b);
        if (b->dtype != IDL_DT_F32 || (n != r->numel && n != r->N * r->numel)) {
            char s1[128], s2[128];
            return idl__error(IDL_ERR_SHAPE,
                              "occlusion: baseline %s %s must be float32 with one sample's shape "
                              "or '%s''s %s",
                              idl_dtype_name(b->dtype), idl__shape_str(b->ndim, b->shape, s1, 128),
                              r->wrt, idl__shape_str(r->wrt_ndim, r->wrt_shape, s2, 128));
        }
        o->base = b->data;
        o->base_per = n == r->numel ? 0 : r->numel;
    }
    o->sum = idl__calloc((size_t)(r->N * r->numel), sizeof(double));
    o->cover = idl__calloc((size_t)r->numel, sizeof(float));
    if (!o->sum || !o->cover) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < o->K; k++) {
        int64_t off[IDL_MAX_DIMS], ext[IDL_MAX_DIMS];
        window_box(o, k, off, ext);
        BOX_RUNS(o, off, ext, first, len, {
            for (int64_t j = 0; j < len; j++)
                o->cover[first + j] += 1;
        });
    }
    return IDL_OK;
}

idl_status idl_occlusion(idl_session *s, const idl_explain_request *rq,
                         const idl_occlusion_params *p, idl_explanation *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!p || !out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, true);
    if (st) return st;
    occ o;
    st = occ_setup(&o, &r, p);
    if (!st) {
        idl__xrows rows = { r.N * o.K, &o, occ_sample, occ_point, occ_take, NULL, NULL };
        r.total = r.N + rows.n;
        /* windows on an image: recompute only what each one changes where the model allows */
        idl__cone *cone = NULL;
        int64_t B = rq->internal_batch ? rq->internal_batch : r.rows_fwd;
        idl_status cs = p->full_passes || o.nd != 3 ? IDL_ERR_UNSUPPORTED
                                                    : idl__cone_new(&r, o.K, &o, occ_win, B, &cone);
        if (!cs) {
            cs = occ_cone(&r, &o, cone, B);
            idl__cone_free(cone);
        }
        if (cs && cs != IDL_ERR_UNSUPPORTED && cs != IDL_ERR_ABORTED)
            idl__log(IDL_LOG_INFO, "occlusion: %s; running whole passes", idl_last_error());
        if (cs == IDL_ERR_ABORTED) {
            st = cs;
        } else if (cs) {
            memset(o.sum, 0, sizeof(double) * (size_t)(r.N * r.numel));
            r.passes = r.N;
            st = idl__x_eval(&r, &rows, false);
        }
    }
    if (!st) st = idl__x_result(&r, out, r.wrt_ndim, r.wrt_shape);
    if (!st) {
        float *a = out->attribution->data;
        for (int64_t i = 0; i < r.N; i++)
            for (int64_t j = 0; j < r.numel; j++) {
                double v = o.sum[i * r.numel + j];
                a[i * r.numel + j] = (float)(p->sum           ? v
                                             : o.cover[j] > 0 ? v / (double)o.cover[j]
                                                              : 0.0);
            }
    }
    idl__free(o.sum);
    idl__free(o.cover);
    idl__x_end(&r);
    return st;
}
