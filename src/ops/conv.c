/* conv.c — Conv and ConvTranspose, 1-D, 2-D and 3-D spatial, on oneDNN 2.6 primitives: forward,
 * and backward with respect to the input (backward_data), the weights and the bias
 * (backward_weights).
 *   Conv:          x (N,C,D1..Dn), w (M, C/G, k1..kn), b (M)  ->  y (N,M,O1..On)
 *   ConvTranspose: x (N,C,D1..Dn), w (C, M/G, k1..kn), b (M)  ->  y (N,M,O1..On)
 * G = group (G = C = M is depthwise). ONNX dilation d is oneDNN's d-1.
 *
 * Layouts: x and y (and their gradients) come in the layout the planner keeps them in: plain
 * row-major, or oneDNN's blocked layout when the producer or consumer can keep it (op.h in_md /
 * out_md: a blocked input is taken as it is, the output stays in the primitive's layout). Weights
 * are described to oneDNN as format_tag_any; constant weights are reordered once in prepare,
 * others on every call. Between plain ops, choose_blocked() picks per shape whether the primitive
 * runs on plain NCHW or on the blocked layout with a reorder in and out (see its comment).
 * The staging buffers for those reorders are the session's shared scratch slots (idl__scratch in
 * backend/dnnl_backend.h), so the blocked path costs the largest activation twice, not every one.
 * Primitives are built in prepare (forward) and on the first backward call (backward), once per
 * plan, and kept in the op state; constant weights are also reordered once for backward_data.
 * Padding: auto_pad NOTSET / SAME_UPPER / SAME_LOWER / VALID; ConvTranspose output_padding and
 * output_shape (pads from the ONNX formula; an output_shape beyond the natural size gets the extra
 * positions, bias only, at the end as ONNX Runtime does, when the excess is less than the stride;
 * a larger excess is refused).
 * Winograd: 3x3 stride-1 convolutions with constant weights between blocked (nChw8c) values, on
 * maps of at least 16 4x4 (else 2x2) tiles, run on our own F(4x4,3x3) (F(2x2,3x3)) kernels
 * instead, forward and input gradient (winograd.h; wino_fits says exactly when). The input
 * gradient of a convolution of at most 4 input channels runs on conv_narrow.h's kernel
 * (narrow_prepare). idl_session_opts.direct_conv turns both off.
 * Refused: non-float32 tensors, 4-D and higher spatial ranks, zero channels. Results come from
 * oneDNN and may differ in the last bits with the thread count. */
#include "ops/conv_narrow.h"
#include "ops/op.h"
#include "ops/winograd.h"

#include <math.h>
#include <string.h>

#define MAX_SP 3

typedef struct geom {
    bool transpose;
    bool bias;
    int nsp;             /* spatial rank 1..3 */
    int64_t N, C, M, G;  /* batch, input channels, output channels, groups */
    int64_t in[MAX_SP];  /* input spatial size */
    int64_t out[MAX_SP]; /* output spatial size */
    int64_t k[MAX_SP];   /* kernel size */
    int64_t s[MAX_SP];   /* stride */
    int64_t d[MAX_SP];   /* dilation (ONNX convention, >= 1) */
    int64_t pl[MAX_SP];  /* padding before */
    int64_t pr[MAX_SP];  /* padding after, as oneDNN wants it (may be negative for deconv) */
} geom;

/* One tensor at the primitive boundary: the value's buffer (plain, or the blocked layout the
 * planner keeps it in) and, when the primitive wants another layout (or the result must be added
 * into the value's buffer), a staging buffer plus the reorder between the two. */
typedef struct port {
    dnnl_memory_t user;       /* the value's layout; data handle set on every call */
    dnnl_memory_t prim;       /* NULL: the primitive works on `user` directly */
    dnnl_primitive_t reorder; /* user->prim for inputs; prim->user (+= for ACC) for outputs */
    void *buf;                /* prim's own buffer (slot < 0) */
    idl__scratch *pool;       /* prim's buffer is pool->buf[slot] (slot >= 0) */
    int slot;
    int64_t add_n; /* ACC in the same layout: add prim's add_n floats into user, no reorder (oneDNN
                      2.6 runs a same-layout reorder with a sum as a slow generic loop) */
    void *user_data;
    void *shared; /* constant weights reordered once per session (idl__derived), instead of buf */
} port;

enum { PORT_IN, PORT_OUT, PORT_ACC };

typedef struct conv_state {
    geom g;
    bool empty;   /* zero-sized output: nothing to do */
    bool blocked; /* activations in oneDNN's chosen layout */
    /* the layouts of the values x and y (and of their gradients): plain, or blocked when the
     * planner keeps them so (op.h in_md/out_md) */
    dnnl_memory_desc_t usrc, udst;
    idl__scratch *pool; /* the session's shared staging buffers */
    dnnl_primitive_t fwd;
    port f_src, f_wei, f_dst;
    dnnl_memory_t f_bias;
    bool wei_static; /* f_wei already holds the reordered constant weights */
    /* backward data (lazy) */
    dnnl_primitive_t bd;
    port bd_ddst, bd_wei, bd_dsrc, bd_dsrc_w; /* bd_dsrc adds into din, bd_dsrc_w writes it */
    bool bd_wei_from_fwd;                     /* bd uses f_wei's reordered weights as they are */
    bool bd_wei_static; /* bd_wei already holds the constant weights in bd's layout */
    /* backward weights and bias (lazy) */
    dnnl_primitive_t bw;
    port bw_src, bw_ddst, bw_dwei, bw_dbias;
    /* Winograd F(4x4,3x3) or F(2x2,3x3) (winograd.h) instead of oneDNN, forward and input
     * gradient */
    bool wino_f;
    idl__wino wf;
    bool wino_shared;   /* wf.U belongs to the session's derived data */
    bool wino_t_shared; /* and wf.Ut (made at the first input gradient) */
    /* the input gradient of a convolution of few input channels (conv_narrow.h), decided at the
     * first backward */
    bool narrow, narrow_tried;
    idl__narrow nq;
    idl__backend *be; /* the session's, for the derived data */
} conv_state;

/* ---- ports ---- */

static void port_free(idl__backend *be, port *p) {
    if (p->shared) idl__derived_release(be, p->shared);
    if (p->reorder) dnnl_primitive_destroy(p->reorder);
    if (p->prim) dnnl_memory_destroy(p->prim);
    if (p->user) dnnl_memory_destroy(p->user);
    idl__aligned_free(p->buf);
    memset(p, 0, sizeof *p);
}

/* slot: -1 gives the port its own staging buffer (weights), 0 or 1 a slot of pool, -2 none yet
 * (constant weights: port_const places them). */
static idl_status port_init(port *p, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *prim,
                            int dir, dnnl_engine_t eng, idl__scratch *pool, int slot) {
    idl_status st =
        idl__dnnl_check(dnnl_memory_create(&p->user, user, eng, DNNL_MEMORY_NONE), "memory_create");
    if (st) return st;
    if (dnnl_memory_desc_equal(user, prim) && dir != PORT_ACC) return IDL_OK;
    size_t sz = dnnl_memory_desc_get_size(prim);
    p->slot = slot;
    if (slot >= 0) {
        p->pool = pool;
        if ((st = idl__scratch_reserve(pool, slot, sz ? sz : 64))) return st;
    } else if (slot == -1) {
        p->buf = idl__aligned_alloc(sz ? sz : 64);
        if (!p->buf)
            return idl__error(IDL_ERR_NOMEM, "out of memory (convolution buffer of %zu bytes)", sz);
    }
    if ((st = idl__dnnl_check(
             dnnl_memory_create(&p->prim, prim, eng, slot == -1 ? p->buf : DNNL_MEMORY_NONE),
             "memory_create")))
        return st;
    if (dir == PORT_ACC && dnnl_memory_desc_equal(user, prim)) {
        p->add_n = (int64_t)(sz / sizeof(float));
        return IDL_OK;
    }
    dnnl_primitive_attr_t attr = NULL;
    if (dir == PORT_ACC) {
        dnnl_post_ops_t po = NULL;
        st = idl__dnnl_check(dnnl_post_ops_create(&po), "post_ops_create");
        if (!st) st = idl__dnnl_check(dnnl_post_ops_append_sum(po, 1.0f), "post_ops_append_sum");
        if (!st) st = idl__dnnl_check(dnnl_primitive_attr_create(&attr), "primitive_attr_create");
        if (!st) st = idl__dnnl_check(dnnl_primitive_attr_set_post_ops(attr, po), "set_post_ops");
        if (po) dnnl_post_ops_destroy(po);
        if (st) {
            if (attr) dnnl_primitive_attr_destroy(attr);
            return st;
        }
    }
    dnnl_primitive_desc_t pd = NULL;
    if (dir == PORT_IN)
        st = idl__dnnl_check(dnnl_reorder_primitive_desc_create(&pd, user, eng, prim, eng, attr),
                             "reorder");
    else
        st = idl__dnnl_check(dnnl_reorder_primitive_desc_create(&pd, prim, eng, user, eng, attr),
                             "reorder");
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st) return st;
    st = idl__dnnl_check(dnnl_primitive_create(&p->reorder, pd), "reorder primitive");
    dnnl_primitive_desc_destroy(pd);
    return st;
}

static void set_handle(dnnl_memory_t m, const void *data) {
    dnnl_status_t s = dnnl_memory_set_data_handle(m, (void *)data);
    if (s != dnnl_success) IDL_ABORT("dnnl_memory_set_data_handle failed (status %d)", (int)s);
}

/* The staging memory, pointed at the pool slot (which may have moved since the last call). */
static dnnl_memory_t port_prim(port *p) {
    if (p->pool) set_handle(p->prim, p->pool->buf[p->slot]);
    return p->prim;
}

/* Input: points the port at data, reorders if needed; returns the memory to give the primitive. */
static dnnl_memory_t port_in(idl__backend *be, port *p, const void *data) {
    set_handle(p->user, data);
    if (!p->reorder) return p->prim ? port_prim(p) : p->user;
    port_prim(p);
    dnnl_exec_arg_t a[2] = { { DNNL_ARG_FROM, p->user }, { DNNL_ARG_TO, p->prim } };
    idl__dnnl_exec(be, p->reorder, 2, a);
    return p->prim;
}

/* An input port of constant weights (input 1, port_init slot -2): reordered once into a buffer
 * of its own; for an initializer (not a value folded by this plan), once per session and layout,
 * shared by the session's plans (idl__derived), so a later plan allocates nothing. */
static idl_status port_const(idl__op_ctx *c, port *p) {
    const void *w = c->in[1]->data;
    const dnnl_memory_desc_t *md = NULL;
    if (!p->reorder) { /* the primitive takes the weights as they are */
        port_in(c->be, p, w);
        return IDL_OK;
    }
    if (dnnl_memory_get_memory_desc(p->prim, &md) != dnnl_success)
        return idl__error(IDL_ERR_BACKEND, "oneDNN memory_get_memory_desc failed");
    bool share = !(c->in[1]->flags & IDL_TENSOR_OWNED);
    void *d = share ? idl__derived_find(c->be, w, IDL__DERIVED_REORDER, md, 0, 0) : NULL;
    if (!d) {
        size_t sz = dnnl_memory_desc_get_size(md);
        if (!(p->buf = idl__aligned_alloc(sz ? sz : 64)))
            return idl__error(IDL_ERR_NOMEM, "out of memory (convolution weights of %zu bytes)",
                              sz);
        set_handle(p->prim, p->buf);
        port_in(c->be, p, w);
        if (!share || idl__derived_add(c->be, w, IDL__DERIVED_REORDER, md, 0, 0, p->buf))
            return IDL_OK; /* kept by the port */
        d = p->buf;
        p->buf = NULL;
    }
    p->shared = d;
    set_handle(p->prim, d);
    return IDL_OK;
}

/* Output: the memory the primitive writes; port_done then moves (or adds) it into data. */
static dnnl_memory_t port_out(port *p, void *data) {
    set_handle(p->user, data);
    p->user_data = data;
    return p->prim ? port_prim(p) : p->user;
}

static void port_done(idl__backend *be, port *p) {
    if (p->add_n) {
        float *dst = p->user_data;
        const float *src = p->pool ? p->pool->buf[p->slot] : p->buf;
        int64_t n = p->add_n;
#pragma omp parallel for if (n > IDL_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            dst[i] += src[i];
        return;
    }
    if (!p->reorder) return;
    dnnl_exec_arg_t a[2] = { { DNNL_ARG_FROM, p->prim }, { DNNL_ARG_TO, p->user } };
    idl__dnnl_exec(be, p->reorder, 2, a);
}

/* ---- geometry ---- */

static int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* auto_pad: 0 NOTSET, 1 SAME_UPPER, 2 SAME_LOWER, 3 VALID */
static idl_status read_auto_pad(const idl__node *n, int *ap) {
    const char *s = idl__attr_str(n, "auto_pad", "NOTSET");
    if (!strcmp(s, "NOTSET") || !*s)
        *ap = 0;
    else if (!strcmp(s, "SAME_UPPER"))
        *ap = 1;
    else if (!strcmp(s, "SAME_LOWER"))
        *ap = 2;
    else if (!strcmp(s, "VALID"))
        *ap = 3;
    else
        return idl__error(IDL_ERR_INVALID_ARG, "unknown auto_pad '%s'", s);
    return IDL_OK;
}

static idl_status parse_geom(const idl__op_ctx *c, bool transpose, geom *g) {
    idl_status st;
    for (int i = 0; i < 3 && i < c->n_in; i++)
        if (c->in[i] && (st = idl__need_f32(c, i))) return st;
    if (!c->in[1]) return idl__error(IDL_ERR_INVALID_ARG, "input 1 (weights) is required");
    const idl_tensor *x = c->in[0], *w = c->in[1];
    const idl__node *n = c->node;
    char b1[96], b2[96];
    memset(g, 0, sizeof *g);
    g->transpose = transpose;
    if (x->ndim < 3 || x->ndim > 2 + MAX_SP)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "input of rank %d: only 1-D, 2-D and 3-D spatial "
                          "convolutions (rank 3 to 5) are supported",
                          x->ndim);
    if (w->ndim != x->ndim)
        return idl__error(IDL_ERR_SHAPE, "weights %s and input %s differ in rank",
                          idl__shape_str(w->ndim, w->shape, b1, sizeof b1),
                          idl__shape_str(x->ndim, x->shape, b2, sizeof b2));
    g->nsp = x->ndim - 2;
    g->N = x->shape[0];
    g->C = x->shape[1];
    g->G = idl__attr_int(n, "group", 1);
    if (g->G < 1)
        return idl__error(IDL_ERR_INVALID_ARG, "group %lld must be >= 1", (long long)g->G);
    if (!transpose) {
        g->M = w->shape[0];
        if (w->shape[1] * g->G != g->C || g->M % g->G)
            return idl__error(IDL_ERR_SHAPE,
                              "weights %s do not fit input %s with group %lld (need (M, C/group, "
                              "k...) with M divisible by group)",
                              idl__shape_str(w->ndim, w->shape, b1, sizeof b1),
                              idl__shape_str(x->ndim, x->shape, b2, sizeof b2), (long long)g->G);
    } else {
        g->M = w->shape[1] * g->G;
        if (w->shape[0] != g->C || g->C % g->G)
            return idl__error(IDL_ERR_SHAPE,
                              "weights %s do not fit input %s with group %lld (need (C, M/group, "
                              "k...) with C divisible by group)",
                              idl__shape_str(w->ndim, w->shape, b1, sizeof b1),
                              idl__shape_str(x->ndim, x->shape, b2, sizeof b2), (long long)g->G);
    }
    if (g->C == 0 || g->M == 0)
        return idl__error(IDL_ERR_UNSUPPORTED, "convolution with zero channels");
    int ns = g->nsp;
    for (int i = 0; i < ns; i++) {
        g->in[i] = x->shape[2 + i];
        g->k[i] = w->shape[2 + i];
        if (g->k[i] < 1)
            return idl__error(IDL_ERR_SHAPE, "kernel size %lld must be >= 1", (long long)g->k[i]);
    }
    int64_t ks[MAX_SP], pads[2 * MAX_SP], op[MAX_SP];
    int cnt;
    if (idl__attr_ints(n, "kernel_shape", &cnt) && cnt >= 0) {
        if ((st = idl__attr_ints_n(n, "kernel_shape", ns, 1, 1, ks, false))) return st;
        for (int i = 0; i < ns; i++)
            if (ks[i] != g->k[i])
                return idl__error(IDL_ERR_SHAPE,
                                  "kernel_shape[%d] = %lld but the weights have %lld", i,
                                  (long long)ks[i], (long long)g->k[i]);
    }
    if ((st = idl__attr_ints_n(n, "strides", ns, 1, 1, g->s, false))) return st;
    if ((st = idl__attr_ints_n(n, "dilations", ns, 1, 1, g->d, false))) return st;
    if ((st = idl__attr_ints_n(n, "pads", 2 * ns, 0, 0, pads, false))) return st;
    int ap = 0;
    if ((st = read_auto_pad(n, &ap))) return st;
    g->bias = c->n_in > 2 && c->in[2];
    if (g->bias && (c->in[2]->ndim != 1 || c->in[2]->shape[0] != g->M))
        return idl__error(IDL_ERR_SHAPE, "bias %s must be (%lld)",
                          idl__shape_str(c->in[2]->ndim, c->in[2]->shape, b1, sizeof b1),
                          (long long)g->M);

    if (!transpose) {
        for (int i = 0; i < ns; i++) {
            int64_t keff = (g->k[i] - 1) * g->d[i] + 1, in = g->in[i], pb = pads[i],
                    pe = pads[ns + i];
            if (ap == 1 || ap == 2) {
                int64_t out = (in + g->s[i] - 1) / g->s[i];
                int64_t total = IDL_MAX(0, (out - 1) * g->s[i] + keff - in);
                pb = ap == 1 ? total / 2 : total - total / 2;
                pe = total - pb;
            } else if (ap == 3) {
                pb = pe = 0;
            }
            if (in + pb + pe < keff)
                return idl__error(IDL_ERR_SHAPE,
                                  "spatial axis %d: input %lld plus padding %lld+%lld is smaller "
                                  "than the dilated kernel %lld",
                                  i, (long long)in, (long long)pb, (long long)pe, (long long)keff);
            g->out[i] = (in + pb + pe - keff) / g->s[i] + 1;
            g->pl[i] = pb;
            g->pr[i] = pe;
        }
        return IDL_OK;
    }

    /* ConvTranspose: full = s*(in-1) + keff is the output before padding is cropped. */
    if ((st = idl__attr_ints_n(n, "output_padding", ns, 0, 0, op, false))) return st;
    int64_t os[2 * MAX_SP + 2];
    const int64_t *osv = idl__attr_ints(n, "output_shape", &cnt);
    bool have_os = osv && cnt >= 0;
    if (have_os) {
        if (cnt != ns && cnt != ns + 2)
            return idl__error(IDL_ERR_INVALID_ARG, "output_shape has %d values, expected %d", cnt,
                              ns);
        for (int i = 0; i < ns; i++)
            os[i] = osv[cnt - ns + i];
    }
    for (int i = 0; i < ns; i++) {
        if (op[i] >= IDL_MAX(g->s[i], g->d[i]))
            return idl__error(IDL_ERR_INVALID_ARG,
                              "output_padding[%d] = %lld must be less than the stride or "
                              "the dilation",
                              i, (long long)op[i]);
        int64_t keff = (g->k[i] - 1) * g->d[i] + 1, in = g->in[i];
        int64_t full = g->s[i] * (in - 1) + keff, pb = pads[i], pe = pads[ns + i], out;
        if (have_os || ap == 1 || ap == 2) {
            /* ONNX: total = s*(in-1) + output_padding + keff - output_shape; SAME_UPPER puts the
             * odd element at the end, otherwise at the beginning. SAME without output_shape: in*s.
             */
            out = have_os ? os[i] : in * g->s[i];
            int64_t total = full + op[i] - out;
            if (ap == 1) {
                pb = floordiv(total, 2);
                pe = total - pb;
            } else {
                pe = floordiv(total, 2);
                pb = total - pe;
            }
            if (pb < 0)
                pb = 0; /* output larger than natural: the extra goes at the end (as ORT does) */
        } else {
            if (ap == 3) pb = pe = 0;
            out = full + op[i] - pb - pe;
        }
        if (out < 1)
            return idl__error(IDL_ERR_SHAPE,
                              "spatial axis %d: output size %lld (input %lld, stride %lld, "
                              "kernel %lld, pads %lld+%lld)",
                              i, (long long)out, (long long)in, (long long)g->s[i], (long long)keff,
                              (long long)pb, (long long)pe);
        g->out[i] = out;
        g->pl[i] = pb;
        g->pr[i] = full - pb - out; /* makes oneDNN's (out - keff + pl + pr)/s + 1 == in exact */
        if (g->pr[i] + g->s[i] <= 0)
            return idl__error(IDL_ERR_UNSUPPORTED,
                              "spatial axis %d: output size %lld exceeds the natural "
                              "transposed-convolution size %lld by a stride or more",
                              i, (long long)out, (long long)(full - pb));
    }
    return IDL_OK;
}

/* ---- memory descriptors ---- */

/* A layout left to oneDNN (any) is what oneDNN 2.6's AVX2 kernels choose: 8-channel blocks
 * (padded when the channels are not a multiple of 8), except plain for an input of fewer than 8
 * channels (an image). Our own kernels take these (Winograd, the narrow input gradient, the
 * blocked pools). On AVX-512 CPUs oneDNN would choose 16-channel blocks or channels-last, where
 * its AVX-512 kernels run and ours do not; this makes it use its AVX2 kernels there. Measured on a
 * 2-core AVX-512 EPYC (Zen 4), resnet50 at batch 4: forward 139 ms and forward + input gradient 315
 * ms this way, 171 and 388 with 16-channel blocks (the MatMuls of transformers keep AVX-512:
 * vit_b_16 runs 40% slower with every oneDNN kernel held to AVX2). A convolution's sums are then
 * formed the same way on both kinds of CPU. */
static dnnl_status_t act_md(dnnl_memory_desc_t *md, const geom *g, bool output, bool any) {
    dnnl_dims_t dims;
    dims[0] = g->N;
    dims[1] = output ? g->M : g->C;
    for (int i = 0; i < g->nsp; i++)
        dims[2 + i] = output ? g->out[i] : g->in[i];
    static const dnnl_format_tag_t b8[3] = { dnnl_nCw8c, dnnl_nChw8c, dnnl_nCdhw8c };
    if (any && g->nsp >= 1 && g->nsp <= 3) {
        if (!output && dims[1] < 8) return idl__dnnl_plain_md(md, 2 + g->nsp, dims);
        return dnnl_memory_desc_init_by_tag(md, 2 + g->nsp, dims, dnnl_f32, b8[g->nsp - 1]);
    }
    if (any)
        return dnnl_memory_desc_init_by_tag(md, 2 + g->nsp, dims, dnnl_f32, dnnl_format_tag_any);
    return idl__dnnl_plain_md(md, 2 + g->nsp, dims);
}

/* oneDNN weights are ([G,] O/G, I/G, k...) with O, I the primitive's output and input channels.
 * For Conv the ONNX tensor (M, C/G, k...) is exactly that, row-major. For ConvTranspose the ONNX
 * tensor is (C, M/G, k...) = (G, C/G, M/G, k...): O and I swap places, hence the strides. */
static dnnl_status_t wei_md(dnnl_memory_desc_t *md, const geom *g, bool any) {
    dnnl_dims_t dims, str;
    int64_t K = 1;
    int nd = 0;
    for (int i = 0; i < g->nsp; i++)
        K *= g->k[i];
    int64_t OG = g->M / g->G, IG = g->C / g->G;
    if (g->G > 1) {
        dims[nd] = g->G;
        str[nd++] = OG * IG * K;
    }
    dims[nd] = OG;
    dims[nd + 1] = IG;
    str[nd] = g->transpose ? K : IG * K;
    str[nd + 1] = g->transpose ? OG * K : K;
    int64_t st = 1;
    for (int i = g->nsp - 1; i >= 0; i--) {
        dims[nd + 2 + i] = g->k[i];
        str[nd + 2 + i] = st;
        st *= g->k[i];
    }
    nd += 2 + g->nsp;
    if (any) return dnnl_memory_desc_init_by_tag(md, nd, dims, dnnl_f32, dnnl_format_tag_any);
    return dnnl_memory_desc_init_by_strides(md, nd, dims, dnnl_f32, str);
}

static dnnl_status_t bias_md(dnnl_memory_desc_t *md, const geom *g) {
    dnnl_dims_t d = { g->M };
    return dnnl_memory_desc_init_by_tag(md, 1, d, dnnl_f32, dnnl_x);
}

/* Strides, dilations and paddings in oneDNN's terms. */
static void geom_dims(const geom *g, dnnl_dims_t s, dnnl_dims_t d, dnnl_dims_t pl, dnnl_dims_t pr) {
    for (int i = 0; i < g->nsp; i++) {
        s[i] = g->s[i];
        d[i] = g->d[i] - 1;
        pl[i] = g->pl[i];
        pr[i] = g->pr[i];
    }
}

/* Layout policy for activations, measured with oneDNN 2.6 on the 2-core AVX2 EPYC dev machine on
 * every resnet50 convolution shape at batch 1 and 8: plain NCHW in the primitive (oneDNN runs it
 * as im2col + sgemm) versus its blocked nChw8c layout with a reorder in and out on every call.
 *  - spatial kernels (3x3, 7x7): blocked wins by 10-45% even with both reorders;
 *  - strided 1x1: blocked wins by up to 12% (plain has to gather the strided input);
 *  - 1x1, stride 1, on maps larger than 16x16: plain wins by 0-30% (the gemm is already
 *    efficient, and the reorders cost more than the layout gains);
 *  - 1x1 on maps of 16x16 or less: blocked wins by 5-10% at batch 1, ties at batch 8;
 *  - grouped and depthwise: oneDNN has no fast plain-layout kernel.
 * Whole resnet50 forward: this policy 65 / 520 ms at batch 1 / 8, everything blocked 72 / 530,
 * everything plain 75 / 568. Those were measured with a reorder in and out of every convolution;
 * now that the planner keeps activations blocked between the ops that take them (op.h in_md),
 * a convolution whose output may stay blocked, or whose input already is, goes blocked whatever
 * this policy says: the policy only decides for convolutions between plain ops. */
static bool choose_blocked(const geom *g) {
    int64_t kvol = 1, ovol = 1, svol = 1;
    for (int i = 0; i < g->nsp; i++) {
        kvol *= g->k[i];
        ovol *= g->out[i];
        svol *= g->s[i];
    }
    if (g->G > 1 || kvol > 1 || svol > 1) return true;
    return ovol <= 256;
}

/* Forward (or forward-training hint) descriptor for the given activation layouts. */
static dnnl_status_t fwd_desc_md(dnnl_convolution_desc_t *cd, const geom *g, dnnl_prop_kind_t pk,
                                 const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst) {
    dnnl_memory_desc_t wei, bia;
    dnnl_dims_t s, d, pl, pr;
    geom_dims(g, s, d, pl, pr);
    dnnl_status_t e;
    if ((e = wei_md(&wei, g, true)) || (e = bias_md(&bia, g))) return e;
    if (g->transpose)
        return dnnl_dilated_deconvolution_forward_desc_init(
            cd, pk, dnnl_deconvolution_direct, src, &wei, g->bias ? &bia : NULL, dst, s, d, pl, pr);
    return dnnl_dilated_convolution_forward_desc_init(cd, pk, dnnl_convolution_direct, src, &wei,
                                                      g->bias ? &bia : NULL, dst, s, d, pl, pr);
}

/* Forward (or forward-training hint) descriptor for the given layout freedom. */
static dnnl_status_t fwd_desc(dnnl_convolution_desc_t *cd, const geom *g, dnnl_prop_kind_t pk,
                              bool any) {
    dnnl_memory_desc_t src, dst;
    dnnl_status_t e;
    if ((e = act_md(&src, g, false, any)) || (e = act_md(&dst, g, true, any))) return e;
    return fwd_desc_md(cd, g, pk, &src, &dst);
}

static void conv_free(void *p) {
    conv_state *s = p;
    if (!s) return;
    if (s->fwd) dnnl_primitive_destroy(s->fwd);
    if (s->bd) dnnl_primitive_destroy(s->bd);
    if (s->bw) dnnl_primitive_destroy(s->bw);
    if (s->f_bias) dnnl_memory_destroy(s->f_bias);
    if (s->wino_shared) { /* the session's, not ours to free */
        idl__derived_release(s->be, s->wf.U);
        s->wf.U = NULL;
    }
    if (s->wino_t_shared) {
        idl__derived_release(s->be, s->wf.Ut);
        s->wf.Ut = NULL;
    }
    idl__wino_free(&s->wf);
    port *ports[] = { &s->f_src,     &s->f_wei,  &s->f_dst,   &s->bd_ddst, &s->bd_wei,  &s->bd_dsrc,
                      &s->bd_dsrc_w, &s->bw_src, &s->bw_ddst, &s->bw_dwei, &s->bw_dbias };
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        port_free(s->be, ports[i]);
    idl__free(s);
}

static const dnnl_memory_desc_t *pd_md(const_dnnl_primitive_desc_t pd, dnnl_query_t q) {
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

static idl_status make_pd(dnnl_primitive_desc_t *pd, const void *desc, dnnl_engine_t eng,
                          const_dnnl_primitive_desc_t hint, const char *what) {
    return idl__dnnl_check(dnnl_primitive_desc_create(pd, desc, NULL, eng, hint), what);
}

/* The forward primitive's attributes: a fused Relu or Clip (forward-only plans, op.h fuse_act)
 * as an eltwise post-op; *attr stays NULL without one. */
static idl_status fwd_attr(const idl__op_ctx *c, dnnl_primitive_attr_t *attr) {
    *attr = NULL;
    if (!c->fuse_act) return IDL_OK;
    bool relu = c->fuse_lo == 0.f && c->fuse_hi == INFINITY;
    dnnl_post_ops_t po = NULL;
    idl_status st = idl__dnnl_check(dnnl_post_ops_create(&po), "post_ops_create");
    if (!st)
        st = idl__dnnl_check(
            dnnl_post_ops_append_eltwise(po, 1.0f, relu ? dnnl_eltwise_relu : dnnl_eltwise_clip,
                                         relu ? 0.f : c->fuse_lo, relu ? 0.f : c->fuse_hi),
            "post_ops_append_eltwise");
    if (!st) st = idl__dnnl_check(dnnl_primitive_attr_create(attr), "primitive_attr_create");
    if (!st) st = idl__dnnl_check(dnnl_primitive_attr_set_post_ops(*attr, po), "set_post_ops");
    if (po) dnnl_post_ops_destroy(po);
    return st;
}

static idl_status make_fwd_pd(dnnl_primitive_desc_t *pd, const void *desc, dnnl_engine_t eng,
                              const_dnnl_primitive_attr_t attr) {
    return idl__dnnl_check(dnnl_primitive_desc_create(pd, desc, attr, eng, NULL), "convolution");
}

/* Winograd instead of oneDNN's direct kernel (winograd.h): a 2-D 3x3 convolution, stride and
 * dilation 1, one group, padding before of 0..2, constant weights, activations in and out in the
 * nChw8c layout (input channels a multiple of 8, output channels of 16), on an AVX2+FMA CPU, unless
 * the session asks for direct convolutions. And only where it pays: the transformed kernels are
 * 4x (F(4x4,3x3)) or 1.8x (F(2x2,3x3)) the size of the weights and are read once per call, so a
 * call must have enough tiles to use them: at least IDL__WINO_MIN_TILES per image, of 4x4 outputs
 * (maps of 13x13 and more), else of 2x2 (7x7 to 12x12), measured on resnet50's layers on the
 * 2-core AVX2 EPYC dev machine (see the README's benchmark section). Per image, not per batch: a
 * row's result must not depend on the rows beside it. Returns the tile (4 or 2), or 0. */
#define IDL__WINO_MIN_TILES 16
static int wino_fits(const idl__op_ctx *c, const geom *g, int64_t cin, int64_t cout, int64_t oh,
                     int64_t ow) {
    if (!c->be->winograd || g->transpose || g->nsp != 2 || g->G != 1 || !c->in_const[1]) return 0;
    for (int i = 0; i < 2; i++)
        if (g->k[i] != 3 || g->s[i] != 1 || g->d[i] != 1 || g->pl[i] > 2) return 0;
    if (cin % 8 || cout % 16 || !idl__wino_available()) return 0;
    if (((oh + 3) / 4) * ((ow + 3) / 4) >= IDL__WINO_MIN_TILES) return 4;
    return ((oh + 1) / 2) * ((ow + 1) / 2) >= IDL__WINO_MIN_TILES ? 2 : 0;
}

/* The nChw8c descriptor of an activation (4-D). */
static dnnl_status_t nchw8c_md(dnnl_memory_desc_t *md, const geom *g, bool output) {
    dnnl_dims_t d = { g->N, output ? g->M : g->C, output ? g->out[0] : g->in[0],
                      output ? g->out[1] : g->in[1] };
    return dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_nChw8c);
}

/* Sets the Winograd forward up when it fits (s->wino_f); IDL_OK either way unless out of memory. */
static idl_status wino_prepare(idl__op_ctx *c, conv_state *s) {
    const geom *g = &s->g;
    const dnnl_memory_desc_t *in_blk = c->in_md ? c->in_md[0] : NULL;
    int tile =
        in_blk && (c->out_blk_ok & 1u) ? wino_fits(c, g, g->C, g->M, g->out[0], g->out[1]) : 0;
    if (!tile) return IDL_OK;
    dnnl_memory_desc_t want;
    if (nchw8c_md(&want, g, false) || !dnnl_memory_desc_equal(in_blk, &want) ||
        nchw8c_md(&s->udst, g, true))
        return IDL_OK;
    /* the transformed kernels of an initializer are the session's, shared by its plans */
    const float *wt = c->in[1]->data;
    bool share = !(c->in[1]->flags & IDL_TENSOR_OWNED);
    int kind = tile == 4 ? IDL__DERIVED_WINO : IDL__DERIVED_WINO2;
    float *U = share ? idl__derived_find(c->be, wt, kind, NULL, g->C, g->M) : NULL;
    idl_status st = idl__wino_init(&s->wf, U ? NULL : wt, tile, g->N, g->C, g->M, g->in[0],
                                   g->in[1], g->out[0], g->out[1], g->pl[0], g->pl[1]);
    if (U) s->wf.U = U;
    if (!st && !U && share &&
        idl__derived_add(c->be, wt, kind, NULL, g->C, g->M, s->wf.U) == IDL_OK)
        U = s->wf.U;
    s->wino_shared = U != NULL;
    if (!st) st = idl__scratch_reserve(s->pool, 0, idl__wino_v_bytes(&s->wf));
    if (!st) st = idl__scratch_reserve(s->pool, 1, idl__wino_m_bytes(&s->wf));
    if (st) return st;
    s->wf.act = c->fuse_act;
    s->wf.lo = c->fuse_lo;
    s->wf.hi = c->fuse_hi;
    c->fused_act_done = c->fuse_act;
    s->wino_f = s->blocked = true;
    s->usrc = *in_blk;
    c->out_md[0] = &s->udst;
    return IDL_OK;
}

/* The transposed Winograd kernels of the input gradient (wf.Ut), made at the first backward that
 * wants it (a forward-only session never holds them) and shared like wf.U. */
static idl_status wino_prepare_grad(idl__op_ctx *c, conv_state *s) {
    const float *wt = c->in[1]->data;
    bool share = s->wino_shared;
    int kind = s->wf.m == 4 ? IDL__DERIVED_WINO_T : IDL__DERIVED_WINO2_T;
    float *Ut = share ? idl__derived_find(c->be, wt, kind, NULL, s->g.C, s->g.M) : NULL;
    if (Ut) {
        s->wf.Ut = Ut;
        s->wino_t_shared = true;
        return IDL_OK;
    }
    idl_status st = idl__wino_init_grad(&s->wf);
    if (!st && share)
        s->wino_t_shared =
            idl__derived_add(c->be, wt, kind, NULL, s->g.C, s->g.M, s->wf.Ut) == IDL_OK;
    return st;
}

static idl_status conv_prepare_common(idl__op_ctx *c, bool transpose) {
    geom g;
    idl_status st = parse_geom(c, transpose, &g);
    if (st) return st;
    int64_t yshape[2 + MAX_SP];
    yshape[0] = g.N;
    yshape[1] = g.M;
    for (int i = 0; i < g.nsp; i++)
        yshape[2 + i] = g.out[i];
    idl__set_out(c->out[0], IDL_DT_F32, 2 + g.nsp, yshape);

    conv_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->g = g;
    if (g.N == 0) {
        s->empty = true;
        return IDL_OK;
    }
    dnnl_engine_t eng = c->be->engine;
    s->pool = &c->be->scratch;
    s->be = c->be;
    if ((st = wino_prepare(c, s)) || s->wino_f) return st;
    /* an input already in a blocked layout is taken as it is (no reorder), and the output stays
     * blocked when the planner allows it: a chain of convolutions and element-wise ops runs
     * without reorders */
    const dnnl_memory_desc_t *in_blk = c->in_md ? c->in_md[0] : NULL;
    s->blocked = in_blk || (c->out_blk_ok & 1u) || choose_blocked(&g);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_memory_desc_t any_dst;
    act_md(&any_dst, &g, true, true);
    if ((st = fwd_attr(c, &attr))) return st;
    st = in_blk ? idl__dnnl_check(fwd_desc_md(&cd, &g, dnnl_forward_inference, in_blk, &any_dst),
                                  "convolution descriptor")
                : IDL_ERR_UNSUPPORTED;
    if (!st) st = make_fwd_pd(&pd, &cd, eng, attr);
    if (st) {
        st = idl__dnnl_check(fwd_desc(&cd, &g, dnnl_forward_inference, s->blocked),
                             "convolution descriptor");
        if (!st) st = make_fwd_pd(&pd, &cd, eng, attr);
        if (st && s->blocked) { /* no implementation for the blocked layout: try plain */
            s->blocked = false;
            st = idl__dnnl_check(fwd_desc(&cd, &g, dnnl_forward_inference, false),
                                 "convolution descriptor");
            if (!st) st = make_fwd_pd(&pd, &cd, eng, attr);
        }
    }
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st) return st;
    dnnl_memory_desc_t u_wei, u_bias;
    act_md(&s->usrc, &g, false, false);
    act_md(&s->udst, &g, true, false);
    if (in_blk) s->usrc = *in_blk;
    const dnnl_memory_desc_t *pdst = pd_md(pd, dnnl_query_dst_md);
    if (s->blocked && (c->out_blk_ok & 1u) && !dnnl_memory_desc_equal(pdst, &s->udst) &&
        dnnl_memory_desc_get_size(pdst) == dnnl_memory_desc_get_size(&s->udst)) {
        s->udst = *pdst;
        c->out_md[0] = &s->udst;
    }
    wei_md(&u_wei, &g, false);
    bias_md(&u_bias, &g);
    if (!st)
        st = port_init(&s->f_src, &s->usrc, pd_md(pd, dnnl_query_src_md), PORT_IN, eng, s->pool, 0);
    if (!st)
        st = port_init(&s->f_wei, &u_wei, pd_md(pd, dnnl_query_weights_md), PORT_IN, eng, NULL,
                       c->in_const[1] ? -2 : -1);
    if (!st)
        st =
            port_init(&s->f_dst, &s->udst, pd_md(pd, dnnl_query_dst_md), PORT_OUT, eng, s->pool, 1);
    if (!st && g.bias)
        st = idl__dnnl_check(dnnl_memory_create(&s->f_bias, &u_bias, eng, DNNL_MEMORY_NONE),
                             "memory_create");
    if (!st) st = idl__dnnl_check(dnnl_primitive_create(&s->fwd, pd), "convolution primitive");
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    c->fused_act_done = c->fuse_act;
    if (c->in_const[1]) { /* constant weights: reorder once, here, or once per session */
        s->wei_static = true;
        return port_const(c, &s->f_wei);
    }
    return IDL_OK;
}

/* The weights memory the forward primitive reads (valid for static weights). */
static dnnl_memory_t fwd_weights(const conv_state *s) {
    return s->f_wei.prim ? s->f_wei.prim : s->f_wei.user;
}

static void conv_forward(idl__op_ctx *c) {
    conv_state *s = c->state;
    if (s->empty) return;
    if (s->wino_f) {
        idl__wino_run(&s->wf, c->in[0]->data, s->g.bias ? c->in[2]->data : NULL, c->out[0]->data,
                      false, s->pool->buf[0], s->pool->buf[1]);
        return;
    }
    dnnl_memory_t src = port_in(c->be, &s->f_src, c->in[0]->data);
    dnnl_memory_t wei = s->wei_static ? fwd_weights(s) : port_in(c->be, &s->f_wei, c->in[1]->data);
    dnnl_memory_t dst = port_out(&s->f_dst, c->out[0]->data);
    dnnl_exec_arg_t a[4] = { { DNNL_ARG_SRC, src },
                             { DNNL_ARG_WEIGHTS, wei },
                             { DNNL_ARG_DST, dst },
                             { DNNL_ARG_BIAS, s->f_bias } };
    if (s->g.bias) set_handle(s->f_bias, c->in[2]->data);
    idl__dnnl_exec(c->be, s->fwd, s->g.bias ? 4 : 3, a);
    port_done(c->be, &s->f_dst);
}

/* ---- backward ---- */

static idl_status init_bwd_data(idl__op_ctx *c, conv_state *s) {
    const geom *g = &s->g;
    dnnl_engine_t eng = c->be->engine;
    dnnl_convolution_desc_t hd, bdd;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_memory_desc_t dsrc, ddst, wei, u_wei;
    const dnnl_memory_desc_t *u_src = &s->usrc, *u_dst = &s->udst;
    dnnl_dims_t sd, dd, pl, pr;
    geom_dims(g, sd, dd, pl, pr);
    act_md(&dsrc, g, false, s->blocked);
    act_md(&ddst, g, true, s->blocked);
    wei_md(&wei, g, true);
    wei_md(&u_wei, g, false);
    idl_status st = idl__dnnl_check(fwd_desc(&hd, g, dnnl_forward_training, s->blocked),
                                    "convolution descriptor");
    if (!st) st = make_pd(&hint, &hd, eng, NULL, "convolution (training)");
    if (!st)
        st = idl__dnnl_check(
            g->transpose ? dnnl_dilated_deconvolution_backward_data_desc_init(
                               &bdd, dnnl_deconvolution_direct, &dsrc, &wei, &ddst, sd, dd, pl, pr)
                         : dnnl_dilated_convolution_backward_data_desc_init(
                               &bdd, dnnl_convolution_direct, &dsrc, &wei, &ddst, sd, dd, pl, pr),
            "backward-data descriptor");
    if (!st) st = make_pd(&pd, &bdd, eng, hint, "convolution backward data");
    if (!st)
        st = port_init(&s->bd_ddst, u_dst, pd_md(pd, dnnl_query_diff_dst_md), PORT_IN, eng, s->pool,
                       1);
    if (!st) {
        /* constant weights already reordered for the forward primitive: reuse them when the
         * backward-data primitive wants the same layout */
        const dnnl_memory_desc_t *w = pd_md(pd, dnnl_query_weights_md), *fw = NULL;
        if (s->wei_static) dnnl_memory_get_memory_desc(fwd_weights(s), &fw);
        s->bd_wei_from_fwd = s->wei_static && fw && dnnl_memory_desc_equal(w, fw);
        if (!s->bd_wei_from_fwd)
            st = port_init(&s->bd_wei, &u_wei, w, PORT_IN, eng, NULL, s->wei_static ? -2 : -1);
        if (!st && !s->bd_wei_from_fwd && s->wei_static) { /* constant: reorder once */
            st = port_const(c, &s->bd_wei);
            s->bd_wei_static = true;
        }
    }
    if (!st)
        st = port_init(&s->bd_dsrc, u_src, pd_md(pd, dnnl_query_diff_src_md), PORT_ACC, eng,
                       s->pool, 0);
    if (!st) /* the same without the addition, for a gradient this node alone writes */
        st = port_init(&s->bd_dsrc_w, u_src, pd_md(pd, dnnl_query_diff_src_md), PORT_OUT, eng,
                       s->pool, 0);
    if (!st) st = idl__dnnl_check(dnnl_primitive_create(&s->bd, pd), "backward-data primitive");
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    return st;
}

static idl_status init_bwd_weights(idl__op_ctx *c, conv_state *s) {
    const geom *g = &s->g;
    dnnl_engine_t eng = c->be->engine;
    dnnl_convolution_desc_t hd, bwd;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_memory_desc_t src, ddst, dwei, dbias, u_wei;
    const dnnl_memory_desc_t *u_src = &s->usrc, *u_dst = &s->udst;
    dnnl_dims_t sd, dd, pl, pr;
    geom_dims(g, sd, dd, pl, pr);
    act_md(&src, g, false, s->blocked);
    act_md(&ddst, g, true, s->blocked);
    wei_md(&dwei, g, true);
    bias_md(&dbias, g);
    wei_md(&u_wei, g, false);
    const dnnl_memory_desc_t *db = g->bias ? &dbias : NULL;
    idl_status st = idl__dnnl_check(fwd_desc(&hd, g, dnnl_forward_training, s->blocked),
                                    "convolution descriptor");
    if (!st) st = make_pd(&hint, &hd, eng, NULL, "convolution (training)");
    if (!st)
        st = idl__dnnl_check(
            g->transpose
                ? dnnl_dilated_deconvolution_backward_weights_desc_init(
                      &bwd, dnnl_deconvolution_direct, &src, &dwei, db, &ddst, sd, dd, pl, pr)
                : dnnl_dilated_convolution_backward_weights_desc_init(
                      &bwd, dnnl_convolution_direct, &src, &dwei, db, &ddst, sd, dd, pl, pr),
            "backward-weights descriptor");
    if (!st) st = make_pd(&pd, &bwd, eng, hint, "convolution backward weights");
    if (!st)
        st = port_init(&s->bw_src, u_src, pd_md(pd, dnnl_query_src_md), PORT_IN, eng, s->pool, 0);
    if (!st)
        st = port_init(&s->bw_ddst, u_dst, pd_md(pd, dnnl_query_diff_dst_md), PORT_IN, eng, s->pool,
                       1);
    if (!st)
        st = port_init(&s->bw_dwei, &u_wei, pd_md(pd, dnnl_query_diff_weights_md), PORT_ACC, eng,
                       NULL, -1);
    if (!st && g->bias) /* index 1 of diff_weights is the bias */
        st = port_init(&s->bw_dbias, &dbias,
                       dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 1), PORT_ACC,
                       eng, NULL, -1);
    if (!st) st = idl__dnnl_check(dnnl_primitive_create(&s->bw, pd), "backward-weights primitive");
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    return st;
}

/* Whether the input gradient runs on conv_narrow.h's kernel: a 2-D convolution of at most 4 input
 * channels (plain) and one group, dilation 1, its output gradient plain or in nChw8c, on an AVX2
 * CPU, unless the session asks for oneDNN's kernels (direct_conv). Reserves its work buffer. */
static idl_status narrow_prepare(idl__op_ctx *c, conv_state *s) {
    s->narrow_tried = true;
    const geom *g = &s->g;
    if (!c->be->winograd || g->transpose || g->nsp != 2 || g->G != 1 || g->d[0] != 1 ||
        g->d[1] != 1 || !idl__wino_available())
        return IDL_OK;
    dnnl_memory_desc_t plain, blk;
    bool in_plain = !act_md(&plain, g, false, false) && dnnl_memory_desc_equal(&s->usrc, &plain);
    bool out_plain = !act_md(&plain, g, true, false) && dnnl_memory_desc_equal(&s->udst, &plain);
    bool out_blk =
        !out_plain && !nchw8c_md(&blk, g, true) && dnnl_memory_desc_equal(&s->udst, &blk);
    if (!in_plain || !(out_plain || out_blk) ||
        !idl__narrow_fits(&s->nq, g->N, g->C, g->M, g->in[0], g->in[1], g->out[0], g->out[1],
                          g->k[0], g->k[1], g->s[0], g->s[1], g->pl[0], g->pl[1], out_blk))
        return IDL_OK;
    idl_status st = idl__scratch_reserve(s->pool, 0, idl__narrow_buf_bytes(&s->nq));
    s->narrow = !st;
    return st;
}

static idl_status conv_backward(idl__op_ctx *c) {
    conv_state *s = c->state;
    if (s->empty || !c->dout[0]) return IDL_OK;
    idl_status st;
    bool want_w = c->din[1] || (s->g.bias && c->din[2]);
    if (c->din[0] && !s->wino_f && !s->narrow_tried && (st = narrow_prepare(c, s))) return st;
    if (c->din[0] && !s->wino_f && !s->narrow && !s->bd && (st = init_bwd_data(c, s))) return st;
    if (want_w && !s->bw && (st = init_bwd_weights(c, s))) return st;
    const void *dy = c->dout[0]->data;
    if (c->din[0] && s->wino_f && !s->wf.Ut && (st = wino_prepare_grad(c, s))) return st;
    if (c->din[0] && s->narrow) {
        idl__narrow_grad(&s->nq, c->in[1]->data, dy, c->din[0]->data, !idl__din_fresh(c, 0),
                         s->pool->buf[0]);
    } else if (c->din[0] && s->wino_f) {
        idl__wino_run_grad(&s->wf, dy, c->din[0]->data, !idl__din_fresh(c, 0), s->pool->buf[0],
                           s->pool->buf[1]);
    } else if (c->din[0]) {
        dnnl_memory_t ddst = port_in(c->be, &s->bd_ddst, dy);
        dnnl_memory_t wei = s->bd_wei_from_fwd ? fwd_weights(s)
                            : s->bd_wei_static ? (s->bd_wei.prim ? s->bd_wei.prim : s->bd_wei.user)
                                               : port_in(c->be, &s->bd_wei, c->in[1]->data);
        port *dp = idl__din_fresh(c, 0) ? &s->bd_dsrc_w : &s->bd_dsrc;
        dnnl_memory_t dsrc = port_out(dp, c->din[0]->data);
        dnnl_exec_arg_t a[3] = { { DNNL_ARG_DIFF_DST, ddst },
                                 { DNNL_ARG_WEIGHTS, wei },
                                 { DNNL_ARG_DIFF_SRC, dsrc } };
        idl__dnnl_exec(c->be, s->bd, 3, a);
        port_done(c->be, dp);
    }
    if (want_w) {
        /* IDL__OP_BWD_WRITES_FRESH: a fresh weight or bias gradient is not zeroed for us */
        for (int k = 1; k < 3; k++)
            if (k < c->n_in && c->din[k] && idl__din_fresh(c, k))
                memset(c->din[k]->data, 0, idl__tensor_bytes(c->din[k]));
        dnnl_memory_t src = port_in(c->be, &s->bw_src, c->in[0]->data);
        dnnl_memory_t ddst = port_in(c->be, &s->bw_ddst, dy);
        /* the port buffers always exist for ACC ports; write there, add only what is wanted */
        dnnl_memory_t dwei = port_out(&s->bw_dwei, c->din[1] ? c->din[1]->data : NULL);
        dnnl_exec_arg_t a[4] = { { DNNL_ARG_SRC, src },
                                 { DNNL_ARG_DIFF_DST, ddst },
                                 { DNNL_ARG_DIFF_WEIGHTS, dwei },
                                 { DNNL_ARG_DIFF_BIAS, NULL } };
        if (s->g.bias) a[3].memory = port_out(&s->bw_dbias, c->din[2] ? c->din[2]->data : NULL);
        idl__dnnl_exec(c->be, s->bw, s->g.bias ? 4 : 3, a);
        if (c->din[1]) port_done(c->be, &s->bw_dwei);
        if (s->g.bias && c->din[2]) port_done(c->be, &s->bw_dbias);
    }
    return IDL_OK;
}

static idl_status conv_prepare(idl__op_ctx *c) {
    return conv_prepare_common(c, false);
}
static idl_status convtranspose_prepare(idl__op_ctx *c) {
    return conv_prepare_common(c, true);
}

/* What conv_backward reads: the weights for the input gradient (backward-data's
 * DNNL_ARG_WEIGHTS; constant weights were reordered at plan time, and Winograd uses its own
 * transformed kernels), the input x for the weight gradient and for the bias gradient, which the
 * same backward-weights primitive computes (DNNL_ARG_SRC). The output y is never read. */
static unsigned conv_bwd_reads(const idl__op_ctx *c) {
    const bool bias_grad = c->n_in > 2 && c->in[2] && !c->in_const[2];
    return (!c->in_const[1] || bias_grad ? IDL__BWD_IN(0) : 0) |
           (!c->in_const[0] ? IDL__BWD_IN(1) : 0);
}

/* one flag set for both */
#define CONV_FLAGS (IDL__OP_BWD_WRITES_FRESH | IDL__OP_LAYOUT)
const idl__op_def IDL__OP(conv) = {
    "Conv",        2, 3, 1, 1, conv_prepare, conv_forward, conv_backward, conv_free, CONV_FLAGS,
    conv_bwd_reads
};
const idl__op_def IDL__OP(convtranspose) = { "ConvTranspose",
                                             2,
                                             3,
                                             1,
                                             1,
                                             convtranspose_prepare,
                                             conv_forward,
                                             conv_backward,
                                             conv_free,
                                             CONV_FLAGS,
                                             conv_bwd_reads };
