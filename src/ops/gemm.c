/* gemm.c — Gemm and MatMul, forward and backward, on idl__sgemm (row-major, oneDNN's dnnl_sgemm).
 *   Gemm:   A (M,K) or (K,M) with transA, B (K,N) or (N,K) with transB, C broadcastable to (M,N)
 *           -> Y (M,N) = alpha * A' B' + beta * C
 *   MatMul: numpy matmul: A (...,M,K), B (...,K,N) -> Y (...,M,N); batch axes broadcast; a 1-D A
 *           is (1,K) with M dropped from Y, a 1-D B is (K,1) with N dropped.
 * MatMul whose B has no batch axes and whose A is not broadcast runs as one (batch*M, K) x (K, N)
 * product; other batched products loop over the batch (in parallel when the matrices are small).
 * Gradients: dA, dB (and dC summed over C's broadcast axes) accumulate with beta = 1.
 *
 * Products by constant 2-D weights run as oneDNN matmul primitives that read the weights where
 * they lie (no copy), when oneDNN implements them with its brgemm kernels (AVX-512; elsewhere its
 * matmul would call sgemm as we do): the input gradient dA += dY W^T always (a sum post-op), the
 * forward Y = A W (Gemm's bias added by the primitive) at most WMM_FWD_MAX_ROWS rows (a
 * transformer at batch 1 or 2). Measured on the 2-core AVX-512 EPYC, standalone, oneDNN 2.6.3:
 * dnnl_sgemm's speed depends on the shape and moves from run to run; dY W^T of a transformer's
 * MLP ((rows, 3072) x (3072, 768)) runs at 126-174 GFLOP/s from 197 to 1024 rows, the primitive
 * at 211-219; forward products at 197 rows 126-222 against 200-215; at 1024 rows and more sgemm's
 * forward is as fast or ahead (bert_base's forward at batch 8, 1024 rows: 894-937 ms with sgemm,
 * 933-962 with the primitive), while the primitive's input gradient keeps its lead (bert_base's
 * forward + gradient at batch 8: 2-4% less time, vit_b_16's at 1576 rows 2%). Both give the same
 * bits on 1, 2 or 4 threads. The choice depends on the shapes only, so a forward-only and a full
 * plan of one shape compute the same bits. */
#include "ops/op.h"

#include <string.h>

#define WMM_FWD_MAX_ROWS 512

/* Y (rows, N) = A (rows, K) W (+ bias) and dA (rows, K) += dY (rows, N) W^T, W constant: (K, N)
 * row-major, or (N, K) when wt (Gemm's transB). */
typedef struct wmm {
    dnnl_primitive_t fwd, bwd; /* fwd: NULL where sgemm runs it; bwd: made at the first backward */
    dnnl_memory_t a, w, bias, y, dy, wT, da;
    const float *W;
    const idl__node *node;
    int64_t rows, K, N;
    bool wt, tried_bwd;
} wmm;

/* Destroys what is set of the primitive *prim and memories mem[0..n), leaving them NULL. */
static void wmm_drop(dnnl_primitive_t *prim, dnnl_memory_t *const *mem, size_t n) {
    if (*prim) dnnl_primitive_destroy(*prim);
    *prim = NULL;
    for (size_t i = 0; i < n; i++) {
        if (*mem[i]) dnnl_memory_destroy(*mem[i]);
        *mem[i] = NULL;
    }
}

/* The forward's primitive and memories (the input gradient's stay). */
static void wmm_drop_fwd(wmm *p) {
    dnnl_memory_t *mem[] = { &p->a, &p->w, &p->bias, &p->y };
    wmm_drop(&p->fwd, mem, 4);
}

static void wmm_free(wmm *p) {
    dnnl_memory_t *mem[] = { &p->dy, &p->wT, &p->da };
    wmm_drop_fwd(p);
    wmm_drop(&p->bwd, mem, 3);
}

static dnnl_status_t md2(dnnl_memory_desc_t *md, int64_t r, int64_t c, int64_t sr, int64_t sc) {
    dnnl_dims_t d = { r, c }, st = { sr, sc };
    return dnnl_memory_desc_init_by_strides(md, 2, d, dnnl_f32, st);
}

/* A matmul primitive src (r, k) x wei -> dst (r, n) (+ bias (1, n); accumulating into dst with
 * sum), when oneDNN runs it on brgemm; NULL otherwise. */
static dnnl_primitive_t wmm_prim(idl__backend *be, const dnnl_memory_desc_t *src,
                                 const dnnl_memory_desc_t *wei, const dnnl_memory_desc_t *bias,
                                 const dnnl_memory_desc_t *dst, bool sum) {
    dnnl_matmul_desc_t d;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    const char *impl = NULL;
    bool ok = dnnl_matmul_desc_init(&d, src, wei, bias, dst) == dnnl_success &&
              dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && sum)
        ok = dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &d, attr, be->engine, NULL) == dnnl_success &&
         dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
         impl && !strncmp(impl, "brg", 3);
    /* the layouts asked for are exact, so the primitive takes the data where it lies */
    if (ok && dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return p;
}

/* Sets p up for `rows` rows: the input gradient's primitive is tried at the first backward, the
 * forward's now when fwd_ok and the rows are few (p->fwd; else sgemm runs it). */
static void wmm_init(const idl__op_ctx *c, wmm *p, int64_t rows, int64_t K, int64_t N, bool wt,
                     const float *W, const float *bias, bool fwd_ok) {
    idl__backend *be = c->be;
    memset(p, 0, sizeof *p);
    if (rows < 1 || K < 1 || N < 1) return;
    p->rows = rows, p->K = K, p->N = N, p->wt = wt, p->W = W, p->node = c->node;
    dnnl_memory_desc_t amd, wmd, bmd, ymd;
    if (!fwd_ok || rows > WMM_FWD_MAX_ROWS || md2(&amd, rows, K, K, 1) ||
        md2(&wmd, K, N, wt ? 1 : N, wt ? K : 1) || md2(&bmd, 1, N, N, 1) ||
        md2(&ymd, rows, N, N, 1))
        return;
    p->fwd = wmm_prim(be, &amd, &wmd, bias ? &bmd : NULL, &ymd, false);
    bool ok = p->fwd && !dnnl_memory_create(&p->a, &amd, be->engine, DNNL_MEMORY_NONE) &&
              !dnnl_memory_create(&p->w, &wmd, be->engine, (void *)W) &&
              !dnnl_memory_create(&p->y, &ymd, be->engine, DNNL_MEMORY_NONE) &&
              (!bias || !dnnl_memory_create(&p->bias, &bmd, be->engine, (void *)bias));
    if (!ok) {
        wmm_drop_fwd(p); /* sgemm runs the forward; the input gradient may still use a primitive */
        return;
    }
    idl__log(IDL_LOG_DEBUG, "node '%s' (%s): %lld x %lld x %lld product on oneDNN's matmul",
             c->node->name, c->node->op_type, (long long)rows, (long long)K, (long long)N);
}

static void wmm_forward(idl__backend *be, wmm *p, const float *A, float *Y) {
    dnnl_memory_set_data_handle(p->a, (void *)A);
    dnnl_memory_set_data_handle(p->y, Y);
    dnnl_exec_arg_t a[4] = { { DNNL_ARG_SRC, p->a },
                             { DNNL_ARG_WEIGHTS, p->w },
                             { DNNL_ARG_DST, p->y },
                             { DNNL_ARG_BIAS, p->bias } };
    idl__dnnl_exec(be, p->fwd, p->bias ? 4 : 3, a);
}

/* dA += dY W^T; false when p was not set up or the primitive cannot be made (the caller uses
 * sgemm). */
static bool wmm_backward(idl__backend *be, wmm *p, const float *dY, float *dA) {
    if (!p->W) return false;
    if (!p->tried_bwd) {
        p->tried_bwd = true;
        dnnl_memory_desc_t dymd, wmd, damd;
        int64_t K = p->K, N = p->N;
        /* W^T (N, K): W (K, N) read with strides (1, N), or W (N, K) as it is */
        if (md2(&dymd, p->rows, N, N, 1) || md2(&wmd, N, K, p->wt ? K : 1, p->wt ? 1 : N) ||
            md2(&damd, p->rows, K, K, 1))
            return false;
        p->bwd = wmm_prim(be, &dymd, &wmd, NULL, &damd, true);
        if (p->bwd && (dnnl_memory_create(&p->dy, &dymd, be->engine, DNNL_MEMORY_NONE) ||
                       dnnl_memory_create(&p->wT, &wmd, be->engine, (void *)p->W) ||
                       dnnl_memory_create(&p->da, &damd, be->engine, DNNL_MEMORY_NONE))) {
            dnnl_memory_t *mem[] = { &p->dy, &p->wT, &p->da };
            wmm_drop(&p->bwd, mem, 3);
        }
        if (p->bwd)
            idl__log(IDL_LOG_DEBUG,
                     "node '%s' (%s): %lld x %lld x %lld input gradient on oneDNN's matmul",
                     p->node->name, p->node->op_type, (long long)p->rows, (long long)N,
                     (long long)K);
    }
    if (!p->bwd) return false;
    dnnl_memory_set_data_handle(p->dy, (void *)dY);
    dnnl_memory_set_data_handle(p->da, dA);
    dnnl_exec_arg_t a[3] = { { DNNL_ARG_SRC, p->dy },
                             { DNNL_ARG_WEIGHTS, p->wT },
                             { DNNL_ARG_DST, p->da } };
    idl__dnnl_exec(be, p->bwd, 3, a);
    return true;
}

/* ---- Gemm ---- */

typedef struct gemm_state {
    bool ta, tb, has_c;
    float alpha, beta;
    int64_t M, N, K;
    int64_t csm, csn; /* C's element strides along M and N (0 where broadcast) */
    wmm mm;           /* constant B, alpha 1 (mm.fwd: C a bias or none, and few rows) */
} gemm_state;

static void state_free(void *p) {
    gemm_state *s = p;
    if (s) wmm_free(&s->mm);
    idl__free(s);
}

static idl_status gemm_prepare(idl__op_ctx *c) {
    idl_status st;
    for (int i = 0; i < 3 && i < c->n_in; i++)
        if (c->in[i] && (st = idl__need_f32(c, i))) return st;
    if (!c->in[1]) return idl__error(IDL_ERR_INVALID_ARG, "input 1 (B) is required");
    const idl_tensor *a = c->in[0], *b = c->in[1], *cc = c->n_in > 2 ? c->in[2] : NULL;
    char b1[96], b2[96];
    if (a->ndim != 2 || b->ndim != 2)
        return idl__error(IDL_ERR_SHAPE, "A %s and B %s must be matrices",
                          idl__shape_str(a->ndim, a->shape, b1, sizeof b1),
                          idl__shape_str(b->ndim, b->shape, b2, sizeof b2));
    gemm_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->ta = idl__attr_int(c->node, "transA", 0) != 0;
    s->tb = idl__attr_int(c->node, "transB", 0) != 0;
    s->alpha = idl__attr_float(c->node, "alpha", 1.0f);
    s->beta = idl__attr_float(c->node, "beta", 1.0f);
    s->M = s->ta ? a->shape[1] : a->shape[0];
    s->K = s->ta ? a->shape[0] : a->shape[1];
    int64_t kb = s->tb ? b->shape[1] : b->shape[0];
    s->N = s->tb ? b->shape[0] : b->shape[1];
    if (kb != s->K)
        return idl__error(IDL_ERR_SHAPE, "A %s (transA=%d) and B %s (transB=%d) do not agree on K",
                          idl__shape_str(a->ndim, a->shape, b1, sizeof b1), (int)s->ta,
                          idl__shape_str(b->ndim, b->shape, b2, sizeof b2), (int)s->tb);
    s->has_c = cc != NULL;
    if (cc) {
        if (cc->ndim > 2)
            return idl__error(IDL_ERR_SHAPE, "C %s has rank > 2",
                              idl__shape_str(cc->ndim, cc->shape, b1, sizeof b1));
        int64_t cm = cc->ndim == 2 ? cc->shape[0] : 1,
                cn = cc->ndim >= 1 ? cc->shape[cc->ndim - 1] : 1;
        if ((cm != 1 && cm != s->M) || (cn != 1 && cn != s->N))
            return idl__error(IDL_ERR_SHAPE, "C %s does not broadcast to (%lld,%lld)",
                              idl__shape_str(cc->ndim, cc->shape, b1, sizeof b1), (long long)s->M,
                              (long long)s->N);
        s->csm = cm == 1 ? 0 : cn;
        s->csn = cn == 1 ? 0 : 1;
    }
    idl__set_out(c->out[0], IDL_DT_F32, 2, (int64_t[]){ s->M, s->N });
    /* a bias: C constant, one value per column, added as it is */
    bool bias = cc && c->in_const[2] && s->beta == 1.0f && s->csm == 0 && s->csn == 1;
    if (!s->ta && c->in_const[1] && s->alpha == 1.0f)
        wmm_init(c, &s->mm, s->M, s->K, s->N, s->tb, b->data, bias ? cc->data : NULL, !cc || bias);
    return IDL_OK;
}

static void gemm_forward(idl__op_ctx *c) {
    gemm_state *s = c->state;
    if (s->mm.fwd) {
        wmm_forward(c->be, &s->mm, c->in[0]->data, c->out[0]->data);
        return;
    }
    const float *A = c->in[0]->data, *B = c->in[1]->data;
    float *Y = c->out[0]->data;
    bool use_c = s->has_c && s->beta != 0.0f;
    if (use_c) {
        const float *C = c->in[2]->data;
        for (int64_t i = 0; i < s->M; i++)
            for (int64_t j = 0; j < s->N; j++)
                Y[i * s->N + j] = s->beta * C[i * s->csm + j * s->csn];
    }
    idl__sgemm(s->ta, s->tb, s->M, s->N, s->K, s->alpha, A, s->ta ? s->M : s->K, B,
               s->tb ? s->K : s->N, use_c ? 1.0f : 0.0f, Y, s->N);
}

static idl_status gemm_backward(idl__op_ctx *c) {
    gemm_state *s = c->state;
    if (!c->dout[0]) return IDL_OK;
    const float *A = c->in[0]->data, *B = c->in[1]->data, *dY = c->dout[0]->data;
    int64_t M = s->M, N = s->N, K = s->K, lda = s->ta ? M : K, ldb = s->tb ? K : N;
    if (c->din[0]) {
        float *dA = c->din[0]->data;
        if (wmm_backward(c->be, &s->mm, dY, dA)) {
            /* done there: dA (M,K) += dY B'^T (alpha 1) */
        } else if (!s->ta) { /* dA (M,K) += alpha dY B'^T */
            idl__sgemm(false, !s->tb, M, K, N, s->alpha, dY, N, B, ldb, 1.0f, dA, K);
        } else { /* dA (K,M) += alpha B' dY^T */
            idl__sgemm(s->tb, true, K, M, N, s->alpha, B, ldb, dY, N, 1.0f, dA, M);
        }
    }
    if (c->din[1]) {
        float *dB = c->din[1]->data;
        if (!s->tb) /* dB (K,N) += alpha A'^T dY */
            idl__sgemm(!s->ta, false, K, N, M, s->alpha, A, lda, dY, N, 1.0f, dB, N);
        else /* dB (N,K) += alpha dY^T A' */
            idl__sgemm(true, s->ta, N, K, M, s->alpha, dY, N, A, lda, 1.0f, dB, K);
    }
    if (s->has_c && c->din[2]) {
        float *dC = c->din[2]->data;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                dC[i * s->csm + j * s->csn] += s->beta * dY[i * N + j];
    }
    return IDL_OK;
}

/* ---- MatMul ---- */

typedef struct matmul_state {
    int64_t M, N, K;
    int64_t nb;    /* number of output batches */
    bool fold;     /* one (nb*M, K) x (K, N) product */
    bool par;      /* batches in parallel (small matrices) */
    bool a_shared; /* some A matrix serves several batches (dA must accumulate in order) */
    bool b_shared;
    int64_t *aoff; /* per batch: offset of its A and B matrices, in matrices */
    int64_t *boff;
    wmm mm; /* the folded product by a constant 2-D B (mm.fwd: few rows) */
} matmul_state;

static void matmul_free(void *p) {
    matmul_state *s = p;
    if (!s) return;
    wmm_free(&s->mm);
    idl__free(s->aoff);
    idl__free(s->boff);
    idl__free(s);
}

static idl_status matmul_prepare(idl__op_ctx *c) {
    idl_status st;
    if ((st = idl__need_f32(c, 0)) || (st = idl__need_f32(c, 1))) return st;
    const idl_tensor *a = c->in[0], *b = c->in[1];
    char b1[96], b2[96];
    if (a->ndim < 1 || b->ndim < 1)
        return idl__error(IDL_ERR_SHAPE, "MatMul operands must have rank >= 1");
    int64_t M = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2],
            N = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    if (K != kb)
        return idl__error(IDL_ERR_SHAPE, "A %s and B %s do not agree on K",
                          idl__shape_str(a->ndim, a->shape, b1, sizeof b1),
                          idl__shape_str(b->ndim, b->shape, b2, sizeof b2));
    int na = a->ndim > 2 ? a->ndim - 2 : 0, nbd = b->ndim > 2 ? b->ndim - 2 : 0, no;
    int64_t bshape[IDL_MAX_DIMS];
    if ((st = idl__broadcast_shape(na, a->shape, nbd, b->shape, &no, bshape)))
        return idl__error(IDL_ERR_SHAPE, "batch axes of A %s and B %s do not broadcast",
                          idl__shape_str(a->ndim, a->shape, b1, sizeof b1),
                          idl__shape_str(b->ndim, b->shape, b2, sizeof b2));
    int64_t yshape[IDL_MAX_DIMS + 2];
    int ny = 0;
    for (int i = 0; i < no; i++)
        yshape[ny++] = bshape[i];
    if (a->ndim > 1) yshape[ny++] = M;
    if (b->ndim > 1) yshape[ny++] = N;
    if (ny > IDL_MAX_DIMS)
        return idl__error(IDL_ERR_UNSUPPORTED, "result rank %d exceeds %d", ny, IDL_MAX_DIMS);
    idl__set_out(c->out[0], IDL_DT_F32, ny, yshape);

    matmul_state *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    c->state = s;
    s->M = M;
    s->N = N;
    s->K = K;
    s->nb = idl__numel(no, bshape);
    int64_t anb = idl__numel(na, a->shape), bnb = idl__numel(nbd, b->shape);
    s->fold = bnb == 1 && anb == s->nb;
    s->a_shared = anb < s->nb;
    s->b_shared = bnb < s->nb;
    if (s->fold && c->in_const[1] && b->ndim == 2)
        wmm_init(c, &s->mm, s->nb * M, K, N, false, b->data, NULL, true);
    if (s->fold || s->nb == 0) return IDL_OK;
    s->aoff = idl__calloc((size_t)s->nb, sizeof(int64_t));
    s->boff = idl__calloc((size_t)s->nb, sizeof(int64_t));
    if (!s->aoff || !s->boff) return idl__error(IDL_ERR_NOMEM, "out of memory");
    int64_t sa[IDL_MAX_DIMS], sb[IDL_MAX_DIMS];
    idl__broadcast_strides(na, a->shape, no, bshape, sa);
    idl__broadcast_strides(nbd, b->shape, no, bshape, sb);
    for (int64_t t = 0; t < s->nb; t++) {
        int64_t r = t, oa = 0, ob = 0;
        for (int i = no - 1; i >= 0; i--) {
            int64_t idx = r % bshape[i];
            r /= bshape[i];
            oa += idx * sa[i];
            ob += idx * sb[i];
        }
        s->aoff[t] = oa;
        s->boff[t] = ob;
    }
    /* many small products: one per thread beats threading inside each (sgemm runs on one thread
     * inside a parallel region). Attention's per-head products (ViT-B: 12 of 197 x 64 x 197, 2.5 M
     * multiply-adds) take 0.06 ms on one thread and 0.09-0.14 ms on two threads here */
    s->par = s->nb >= 4 && M * N * K <= (int64_t)1 << 24;
    return IDL_OK;
}

static void matmul_forward(idl__op_ctx *c) {
    matmul_state *s = c->state;
    const float *A = c->in[0]->data, *B = c->in[1]->data;
    float *Y = c->out[0]->data;
    int64_t M = s->M, N = s->N, K = s->K;
    if (s->mm.fwd) {
        wmm_forward(c->be, &s->mm, A, Y);
        return;
    }
    if (s->fold) {
        idl__sgemm(false, false, s->nb * M, N, K, 1.0f, A, K, B, N, 0.0f, Y, N);
        return;
    }
#pragma omp parallel for if (s->par) schedule(static)
    for (int64_t t = 0; t < s->nb; t++)
        idl__sgemm(false, false, M, N, K, 1.0f, A + s->aoff[t] * M * K, K, B + s->boff[t] * K * N,
                   N, 0.0f, Y + t * M * N, N);
}

static idl_status matmul_backward(idl__op_ctx *c) {
    matmul_state *s = c->state;
    if (!c->dout[0]) return IDL_OK;
    const float *A = c->in[0]->data, *B = c->in[1]->data, *dY = c->dout[0]->data;
    float *dA = c->din[0] ? c->din[0]->data : NULL, *dB = c->din[1] ? c->din[1]->data : NULL;
    int64_t M = s->M, N = s->N, K = s->K;
    if (dA && wmm_backward(c->be, &s->mm, dY, dA)) dA = NULL; /* done */
    if (s->fold) {
        if (dA) idl__sgemm(false, true, s->nb * M, K, N, 1.0f, dY, N, B, N, 1.0f, dA, K);
        if (dB) idl__sgemm(true, false, K, N, s->nb * M, 1.0f, A, K, dY, N, 1.0f, dB, N);
        return IDL_OK;
    }
    /* dA[a(t)] += dY[t] B[b(t)]^T,  dB[b(t)] += A[a(t)]^T dY[t]; a shared slice accumulates over
     * batches in batch order, so only unshared ones run in parallel */
    if (dA) {
#pragma omp parallel for if (s->par && !s->a_shared) schedule(static)
        for (int64_t t = 0; t < s->nb; t++)
            idl__sgemm(false, true, M, K, N, 1.0f, dY + t * M * N, N, B + s->boff[t] * K * N, N,
                       1.0f, dA + s->aoff[t] * M * K, K);
    }
    if (dB) {
#pragma omp parallel for if (s->par && !s->b_shared) schedule(static)
        for (int64_t t = 0; t < s->nb; t++)
            idl__sgemm(true, false, K, N, M, 1.0f, A + s->aoff[t] * M * K, K, dY + t * M * N, N,
                       1.0f, dB + s->boff[t] * K * N, N);
    }
    return IDL_OK;
}

/* Both backwards read B for dA and A for dB (Gemm's C is never read): the bilinear rule. */
const idl__op_def IDL__OP(gemm) = { "Gemm",
                                    2,
                                    3,
                                    1,
                                    1,
                                    gemm_prepare,
                                    gemm_forward,
                                    gemm_backward,
                                    state_free,
                                    0,
                                    idl__bwd_reads_bilinear };
const idl__op_def IDL__OP(matmul) = { "MatMul",
                                      2,
                                      2,
                                      1,
                                      1,
                                      matmul_prepare,
                                      matmul_forward,
                                      matmul_backward,
                                      matmul_free,
                                      0,
                                      idl__bwd_reads_bilinear };
