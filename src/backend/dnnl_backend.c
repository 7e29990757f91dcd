/* dnnl_backend.c — oneDNN engine/stream lifetime and helpers. */
#include "backend/dnnl_backend.h"

idl_status idl__dnnl_check(dnnl_status_t s, const char *what) {
    if (s == dnnl_success) return IDL_OK;
    if (s == dnnl_out_of_memory) return idl__error(IDL_ERR_NOMEM, "oneDNN %s: out of memory", what);
    if (s == dnnl_unimplemented)
        return idl__error(IDL_ERR_UNSUPPORTED, "oneDNN %s: no implementation for these parameters",
                          what);
    return idl__error(IDL_ERR_BACKEND, "oneDNN %s failed (status %d)", what, (int)s);
}

idl_status idl__backend_init(idl__backend *be) {
    be->engine = NULL;
    be->stream = NULL;
    be->scratch = (idl__scratch){ { 0, 0 }, { NULL, NULL } };
    be->derived = NULL;
    idl_status st = idl__dnnl_check(dnnl_engine_create(&be->engine, dnnl_cpu, 0), "engine_create");
    if (st) return st;
    st = idl__dnnl_check(dnnl_stream_create(&be->stream, be->engine, dnnl_stream_default_flags),
                         "stream_create");
    if (st) {
        dnnl_engine_destroy(be->engine);
        be->engine = NULL;
    }
    return st;
}

idl_status idl__scratch_reserve(idl__scratch *p, int k, size_t size) {
    if (p->cap[k] >= size) return IDL_OK;
    idl__aligned_free(p->buf[k]);
    p->cap[k] = 0;
    p->buf[k] = idl__aligned_alloc(size);
    if (!p->buf[k])
        return idl__error(IDL_ERR_NOMEM, "out of memory (kernel scratch of %zu bytes)", size);
    p->cap[k] = size;
    return IDL_OK;
}

void *idl__derived_find(idl__backend *be, const void *src, int kind, const dnnl_memory_desc_t *md,
                        int64_t k0, int64_t k1) {
    for (idl__derived *d = be->derived; d; d = d->next)
        if (d->src == src && d->kind == kind && d->k0 == k0 && d->k1 == k1 &&
            (!md || dnnl_memory_desc_equal(md, &d->md))) {
            d->refs++;
            return d->data;
        }
    return NULL;
}

idl_status idl__derived_add(idl__backend *be, const void *src, int kind,
                            const dnnl_memory_desc_t *md, int64_t k0, int64_t k1, void *data) {
    idl__derived *d = idl__calloc(1, sizeof *d);
    if (!d) return idl__error(IDL_ERR_NOMEM, "out of memory");
    d->src = src;
    d->kind = kind;
    if (md) d->md = *md;
    d->k0 = k0;
    d->k1 = k1;
    d->data = data;
    d->refs = 1;
    d->next = be->derived;
    be->derived = d;
    return IDL_OK;
}

void idl__derived_release(idl__backend *be, void *data) {
    for (idl__derived **pp = &be->derived; *pp; pp = &(*pp)->next) {
        idl__derived *d = *pp;
        if (d->data != data) continue;
        if (--d->refs > 0) return;
        *pp = d->next;
        idl__aligned_free(d->data);
        idl__free(d);
        return;
    }
}

void idl__backend_destroy(idl__backend *be) {
    while (be->derived) { /* every plan is freed first: nothing is left but for a failure */
        idl__derived *d = be->derived;
        be->derived = d->next;
        idl__aligned_free(d->data);
        idl__free(d);
    }
    for (int k = 0; k < 2; k++) {
        idl__aligned_free(be->scratch.buf[k]);
        be->scratch.buf[k] = NULL;
        be->scratch.cap[k] = 0;
    }
    if (be->stream) dnnl_stream_destroy(be->stream);
    if (be->engine) dnnl_engine_destroy(be->engine);
    be->stream = NULL;
    be->engine = NULL;
}

dnnl_status_t idl__dnnl_plain_md(dnnl_memory_desc_t *md, int ndim, const int64_t *dims) {
    dnnl_dims_t d, s;
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        d[i] = dims[i];
        s[i] = st;
        st *= dims[i] > 0 ? dims[i] : 1;
    }
    return dnnl_memory_desc_init_by_strides(md, ndim, d, dnnl_f32, s);
}

void idl__dnnl_exec(idl__backend *be, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args) {
    dnnl_status_t s = dnnl_primitive_execute(p, be->stream, n, args);
    if (s == dnnl_success) s = dnnl_stream_wait(be->stream);
    /* Primitives were created and validated at plan time; failure here is a bug or lost memory. */
    if (s != dnnl_success) IDL_ABORT("oneDNN primitive execution failed (status %d)", (int)s);
}

void idl__sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    dnnl_status_t s =
        dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (s != dnnl_success) IDL_ABORT("dnnl_sgemm failed (status %d)", (int)s);
}
