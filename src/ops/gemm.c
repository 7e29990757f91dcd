/* gemm.c — Gemm and MatMul, forward and backward, on idl__sgemm (row-major, oneDNN's dnnl_sgemm).
 *   Gemm:   A (M,K) or (K,M) with transA, B (K,N) or (N,K) with transB, C broadcastable to (M,N)
 *           -> Y (M,N) = alpha * A' B' + beta * C
 *   MatMul: numpy matmul: A (...,M,K), B (...,K,N) -> Y (...,M,N); batch axes broadcast; a 1-D A
 *           is (1,K) with M dropped from Y, a 1-D B is (K,1) with N dropped.
 * MatMul whose B has no batch axes and whose A is not broadcast runs as one (batch*M, K) x (K, N)
 * product; other batched products loop over the batch (in parallel when the matrices are small).
 * Gradients: dA, dB (and dC summed over C's broadcast axes) accumulate with beta = 1. */
#include "ops/op.h"

#include <string.h>

/* ---- Gemm ---- */

typedef struct gemm_state {
    bool ta, tb, has_c;
    float alpha, beta;
    int64_t M, N, K;
    int64_t csm, csn; /* C's element strides along M and N (0 where broadcast) */
} gemm_state;

static void state_free(void *s) {
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
    return IDL_OK;
}

static void gemm_forward(idl__op_ctx *c) {
    const gemm_state *s = c->state;
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
    const gemm_state *s = c->state;
    if (!c->dout[0]) return IDL_OK;
    const float *A = c->in[0]->data, *B = c->in[1]->data, *dY = c->dout[0]->data;
    int64_t M = s->M, N = s->N, K = s->K, lda = s->ta ? M : K, ldb = s->tb ? K : N;
    if (c->din[0]) {
        float *dA = c->din[0]->data;
        if (!s->ta) /* dA (M,K) += alpha dY B'^T */
            idl__sgemm(false, !s->tb, M, K, N, s->alpha, dY, N, B, ldb, 1.0f, dA, K);
        else /* dA (K,M) += alpha B' dY^T */
            idl__sgemm(s->tb, true, K, M, N, s->alpha, B, ldb, dY, N, 1.0f, dA, M);
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
} matmul_state;

static void matmul_free(void *p) {
    matmul_state *s = p;
    if (!s) return;
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
    const matmul_state *s = c->state;
    const float *A = c->in[0]->data, *B = c->in[1]->data;
    float *Y = c->out[0]->data;
    int64_t M = s->M, N = s->N, K = s->K;
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
    const matmul_state *s = c->state;
    if (!c->dout[0]) return IDL_OK;
    const float *A = c->in[0]->data, *B = c->in[1]->data, *dY = c->dout[0]->data;
    float *dA = c->din[0] ? c->din[0]->data : NULL, *dB = c->din[1] ? c->din[1]->data : NULL;
    int64_t M = s->M, N = s->N, K = s->K;
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
