/* registry.c — the op table built from ops.def, lookup by name, and helpers shared by kernels. */
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

#define X(onnx, stem) extern const idl__op_def idl__op_##stem;
#include "ops/ops.def"
#undef X

static const idl__op_def *const g_portable[] = {
#define X(onnx, stem) &idl__op_##stem,
#include "ops/ops.def"
#undef X
};
const int idl__n_ops = (int)(sizeof g_portable / sizeof g_portable[0]);
const idl__op_def *const *idl__ops = g_portable;

#ifdef IDL_HAVE_OPS_AVX2
#    define X(onnx, stem) extern const idl__op_def idl__op_##stem##_avx2;
#    include "ops/ops.def"
#    undef X
static const idl__op_def *const g_avx2[] = {
#    define X(onnx, stem) &idl__op_##stem##_avx2,
#    include "ops/ops.def"
#    undef X
};

static const idl__op_def *const *cpu_table(void) {
    __builtin_cpu_init(); /* this may run before the CPU model's own constructor */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? g_avx2 : g_portable;
}

__attribute__((constructor)) static void pick_table(void) {
    idl__ops = cpu_table();
}

bool idl__ops_force_portable(bool portable) {
    idl__ops = portable ? g_portable : cpu_table();
    return true;
}
#else
bool idl__ops_force_portable(bool portable) {
    (void)portable;
    return false;
}
#endif

static const char *const g_names[] = {
#define X(onnx, stem) onnx,
#include "ops/ops.def"
#undef X
    NULL
};

static int cmp_name(const void *key, const void *elem) {
    return strcmp((const char *)key, *(const char *const *)elem);
}

int idl__op_find(const char *op_type, const char *domain) {
    if (domain && *domain && strcmp(domain, "ai.onnx") != 0) return -1;
    const char *const *hit =
        bsearch(op_type, g_names, (size_t)idl__n_ops, sizeof g_names[0], cmp_name);
    return hit ? (int)(hit - g_names) : -1;
}

int idl_op_supported(const char *op_type, int64_t opset) {
    (void)opset;
    return op_type && idl__op_find(op_type, "") >= 0;
}

const char *const *idl_supported_ops(void) {
    return g_names;
}

unsigned idl__bwd_reads_none(const idl__op_ctx *c) {
    (void)c;
    return 0;
}
unsigned idl__bwd_reads_in0(const idl__op_ctx *c) {
    (void)c;
    return IDL__BWD_IN(0);
}
unsigned idl__bwd_reads_out0(const idl__op_ctx *c) {
    (void)c;
    return IDL__BWD_OUT(0);
}
unsigned idl__bwd_reads_bilinear(const idl__op_ctx *c) {
    unsigned r = 0;
    if (c->n_in > 1 && !c->in_const[1]) r |= IDL__BWD_IN(0);
    if (c->n_in > 1 && !c->in_const[0]) r |= IDL__BWD_IN(1);
    return r;
}

idl_status idl__norm_axis(int64_t axis, int rank, int *out) {
    if (axis < -rank || axis >= (rank ? rank : 1)) /* rank 0 accepts axis 0/-1 as a no-op axis */
        return idl__error(IDL_ERR_INVALID_ARG, "axis %lld out of range for rank %d",
                          (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return IDL_OK;
}

void idl__set_out(idl_tensor *out, idl_dtype dt, int ndim, const int64_t *shape) {
    out->dtype = dt;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        out->shape[i] = shape[i];
}

void idl__layout_same(idl__op_ctx *c, int n) {
    if (!c->in_md) return;
    const dnnl_memory_desc_t *md = c->in_md[0];
    bool keep = md && (c->out_blk_ok & 1u) && c->out[0]->dtype == IDL_DT_F32;
    for (int k = 0; keep && k < c->n_in; k++) {
        if (!c->in[k]) continue;
        if (k < n)
            keep = c->in_md[k] && dnnl_memory_desc_equal(c->in_md[k], md) &&
                   idl__same_shape(c->in[k], c->out[0]);
        else
            keep = !c->in_md[k] && idl_tensor_numel(c->in[k]) == 1;
    }
    if (keep) {
        c->out_md[0] = md;
        return;
    }
    for (int k = 0; k < c->n_in; k++)
        c->in_md[k] = NULL;
}

idl_status idl__need_f32(const idl__op_ctx *c, int i) {
    if (!c->in[i]) return idl__error(IDL_ERR_INVALID_ARG, "input %d is required", i);
    if (c->in[i]->dtype != IDL_DT_F32)
        return idl__error(IDL_ERR_UNSUPPORTED, "input %d has type %s; only float32 is supported", i,
                          idl_dtype_name(c->in[i]->dtype));
    return IDL_OK;
}

idl_status idl__need_const(const idl__op_ctx *c, int i) {
    if (!c->in[i]) return idl__error(IDL_ERR_INVALID_ARG, "input %d is required", i);
    if (!c->in_const[i])
        return idl__error(
            IDL_ERR_UNSUPPORTED,
            "input %d must be known when the model is planned (a "
            "constant or computed from shapes only); data-dependent shapes are not supported",
            i);
    return IDL_OK;
}

idl_status idl__const_ints(const idl__op_ctx *c, int i, int64_t *out, int cap, int *n) {
    idl_status st = idl__need_const(c, i);
    if (st) return st;
    const idl_tensor *t = c->in[i];
    if (t->dtype != IDL_DT_I64 && t->dtype != IDL_DT_I32)
        return idl__error(IDL_ERR_INVALID_ARG, "input %d must be int64 or int32, is %s", i,
                          idl_dtype_name(t->dtype));
    int64_t k = idl_tensor_numel(t);
    if (t->ndim > 1 || k > cap)
        return idl__error(IDL_ERR_INVALID_ARG, "input %d must be a 1-D list of at most %d", i, cap);
    for (int64_t j = 0; j < k; j++)
        out[j] = idl__get_i64(t, j);
    *n = (int)k;
    return IDL_OK;
}

idl_status idl__attr_ints_n(const idl__node *n, const char *name, int want, int64_t dflt,
                            int64_t min, int64_t *out, bool required) {
    int cnt;
    const int64_t *v = idl__attr_ints(n, name, &cnt);
    if (cnt < 0) {
        if (required) return idl__error(IDL_ERR_INVALID_ARG, "attribute %s is required", name);
        for (int i = 0; i < want; i++)
            out[i] = dflt;
        return IDL_OK;
    }
    if (cnt != want)
        return idl__error(IDL_ERR_INVALID_ARG, "attribute %s has %d values, expected %d", name, cnt,
                          want);
    for (int i = 0; i < want; i++) {
        if (v[i] < min)
            return idl__error(IDL_ERR_INVALID_ARG, "attribute %s[%d] = %lld must be >= %lld", name,
                              i, (long long)v[i], (long long)min);
        out[i] = v[i];
    }
    return IDL_OK;
}
