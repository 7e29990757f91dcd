/* dnnl_backend.h — the oneDNN engine and stream a session owns, and small helpers for describing
 * plain (row-major) tensors to oneDNN. */
#pragma once

#include "core/internal.h"
#include "interpretdl/tensor.h"
#include <dnnl.h>

/* Activation-sized staging buffers shared by the kernels of one session (two slots: the input side
 * and the output side of a primitive). A session runs its nodes one at a time, so sharing is safe;
 * slots grow to the largest need seen in prepare. */
typedef struct idl__scratch {
    size_t cap[2];
    void *buf[2];
} idl__scratch;

/* Data derived once from one of the model's initializers and shared by every plan of a session
 * that needs it (weights reordered into a primitive's layout, Winograd kernels): a plan kept as
 * the spare and the plan in use then hold one copy, and a new plan does not derive it again.
 * Keyed by the initializer's address (it outlives every plan; values folded at plan time do not,
 * so they are never keys), a kind (IDL__DERIVED_*), a layout for reorders and two integers;
 * counted references, freed with the last. */
typedef struct idl__derived {
    const void *src;
    int kind;
    dnnl_memory_desc_t md;
    int64_t k0, k1;
    void *data;
    int refs;
    struct idl__derived *next;
} idl__derived;
enum {
    IDL__DERIVED_REORDER = 1,
    IDL__DERIVED_WINO = 2,   /* F(4x4,3x3) kernels (ops/winograd.h U) */
    IDL__DERIVED_WINO_T = 3, /* and transposed (Ut) */
    IDL__DERIVED_WINO2 = 4,  /* F(2x2,3x3) */
    IDL__DERIVED_WINO2_T = 5
};

typedef struct idl__backend {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    idl__scratch scratch;
    bool winograd; /* convolutions may run as Winograd F(4x4,3x3) (ops/winograd.h) */
    idl__derived *derived;
} idl__backend;

/* The derived data of (src, kind, md, k0, k1) with a reference taken, or NULL (md may be NULL:
 * not part of the key). */
void *idl__derived_find(idl__backend *be, const void *src, int kind, const dnnl_memory_desc_t *md,
                        int64_t k0, int64_t k1);
/* Hands data (from idl__aligned_alloc_raw or idl__aligned_alloc) over to the cache with one
 * reference; NOMEM leaves it with the caller. */
idl_status idl__derived_add(idl__backend *be, const void *src, int kind,
                            const dnnl_memory_desc_t *md, int64_t k0, int64_t k1, void *data);
/* Drops a reference to derived data; the last one frees it. */
void idl__derived_release(idl__backend *be, void *data);

/* Grows scratch slot k (0 or 1) to at least size bytes. NOMEM on failure. */
idl_status idl__scratch_reserve(idl__scratch *p, int k, size_t size);

idl_status idl__backend_init(idl__backend *be);
void idl__backend_destroy(idl__backend *be);
/* Maps a dnnl_status_t to IDL_ERR_BACKEND with the call named; IDL_OK for success. */
idl_status idl__dnnl_check(dnnl_status_t s, const char *what);
/* Plain row-major f32 memory descriptor of dims (no layout freedom). */
dnnl_status_t idl__dnnl_plain_md(dnnl_memory_desc_t *md, int ndim, const int64_t *dims);
/* Executes a primitive with n (arg, memory) pairs on the stream and waits. */
void idl__dnnl_exec(idl__backend *be, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args);
/* Row-major sgemm: C = alpha * op(A) op(B) + beta * C (oneDNN's dnnl_sgemm). */
void idl__sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
