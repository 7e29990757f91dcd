/* tensor.c — tensor allocation and shape helpers. */
#include "tensor/tensor_internal.h"

#include <stdio.h>
#include <string.h>

size_t idl_dtype_size(idl_dtype dt) {
    switch (dt) {
    case IDL_DT_F32:
        return 4;
    case IDL_DT_U8:
        return 1;
    case IDL_DT_I8:
        return 1;
    case IDL_DT_I32:
        return 4;
    case IDL_DT_I64:
        return 8;
    case IDL_DT_BOOL:
        return 1;
    case IDL_DT_F64:
        return 8;
    default:
        return 0;
    }
}

const char *idl_dtype_name(idl_dtype dt) {
    switch (dt) {
    case IDL_DT_F32:
        return "float32";
    case IDL_DT_U8:
        return "uint8";
    case IDL_DT_I8:
        return "int8";
    case IDL_DT_I32:
        return "int32";
    case IDL_DT_I64:
        return "int64";
    case IDL_DT_BOOL:
        return "bool";
    case IDL_DT_F64:
        return "float64";
    default:
        return "undefined";
    }
}

int64_t idl__numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

int64_t idl_tensor_numel(const idl_tensor *t) {
    return idl__numel(t->ndim, t->shape);
}

size_t idl__tensor_bytes(const idl_tensor *t) {
    return (size_t)idl_tensor_numel(t) * idl_dtype_size(t->dtype);
}

bool idl__same_shape(const idl_tensor *a, const idl_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *idl__shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    used += (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, ")");
    return buf;
}

idl_tensor idl_tensor_wrap(idl_dtype dt, int ndim, const int64_t *shape, void *data) {
    idl_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim < 0 ? 0 : (ndim > IDL_MAX_DIMS ? IDL_MAX_DIMS : ndim);
    for (int i = 0; i < t.ndim; i++)
        t.shape[i] = shape[i];
    t.data = data;
    return t;
}

static idl_status check_shape(idl_dtype dt, int ndim, const int64_t *shape, size_t *bytes) {
    if (idl_dtype_size(dt) == 0)
        return idl__error(IDL_ERR_INVALID_ARG, "unknown dtype %d", (int)dt);
    if (ndim < 0 || ndim > IDL_MAX_DIMS)
        return idl__error(IDL_ERR_INVALID_ARG, "rank %d outside 0..%d", ndim, IDL_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return idl__error(IDL_ERR_INVALID_ARG, "negative dimension %lld", (long long)shape[i]);
        if (!idl__mul_ok(n, shape[i], &n))
            return idl__error(IDL_ERR_NOMEM, "tensor size overflows");
    }
    int64_t b;
    if (!idl__mul_ok(n, (int64_t)idl_dtype_size(dt), &b) || (uint64_t)b > (uint64_t)SIZE_MAX / 2)
        return idl__error(IDL_ERR_NOMEM, "tensor size overflows");
    *bytes = (size_t)b;
    return IDL_OK;
}

idl_status idl__tensor_alloc_data(idl_tensor *t) {
    size_t bytes;
    idl_status st = check_shape(t->dtype, t->ndim, t->shape, &bytes);
    if (st) return st;
    t->data = idl__aligned_alloc(bytes);
    if (!t->data) return idl__error(IDL_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    t->flags |= IDL_TENSOR_OWNED;
    return IDL_OK;
}

void idl__tensor_free_data(idl_tensor *t) {
    if (t->flags & IDL_TENSOR_OWNED) idl__aligned_free(t->data);
    t->data = NULL;
    t->flags &= ~IDL_TENSOR_OWNED;
}

idl_status idl_tensor_new(idl_dtype dt, int ndim, const int64_t *shape, idl_tensor **out) {
    *out = NULL;
    size_t bytes;
    idl_status st = check_shape(dt, ndim, shape, &bytes);
    if (st) return st;
    idl_tensor *t = idl__calloc(1, sizeof *t);
    if (!t) return idl__error(IDL_ERR_NOMEM, "out of memory");
    *t = idl_tensor_wrap(dt, ndim, shape, NULL);
    st = idl__tensor_alloc_data(t);
    if (st) {
        idl__free(t);
        return st;
    }
    *out = t;
    return IDL_OK;
}

idl_status idl_tensor_clone(const idl_tensor *src, idl_tensor **out) {
    idl_status st = idl_tensor_new(src->dtype, src->ndim, src->shape, out);
    if (st) return st;
    memcpy((*out)->data, src->data, idl__tensor_bytes(src));
    return IDL_OK;
}

void idl_tensor_free(idl_tensor *t) {
    if (!t) return;
    idl__tensor_free_data(t);
    idl__free(t);
}

idl_status idl__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                                int64_t *out) {
    int n = IDL_MAX(na, nb);
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da != db && da != 1 && db != 1) {
            char sa[128], sb[128];
            return idl__error(IDL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                              idl__shape_str(na, a, sa, sizeof sa),
                              idl__shape_str(nb, b, sb, sizeof sb));
        }
        out[i] = da == 1 ? db : da;
    }
    *nout = n;
    return IDL_OK;
}

void idl__broadcast_strides(int nd_in, const int64_t *in, int nd_out, const int64_t *out,
                            int64_t *strides) {
    int64_t s = 1;
    for (int i = nd_out - 1; i >= 0; i--) {
        int k = i - (nd_out - nd_in);
        if (k < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = (in[k] == 1 && out[i] != 1) ? 0 : s;
        s *= in[k];
    }
}

double idl__get_f64(const idl_tensor *t, int64_t i) {
    switch (t->dtype) {
    case IDL_DT_F32:
        return ((const float *)t->data)[i];
    case IDL_DT_F64:
        return ((const double *)t->data)[i];
    case IDL_DT_I64:
        return (double)((const int64_t *)t->data)[i];
    case IDL_DT_I32:
        return ((const int32_t *)t->data)[i];
    case IDL_DT_U8:
        return ((const uint8_t *)t->data)[i];
    case IDL_DT_I8:
        return ((const int8_t *)t->data)[i];
    case IDL_DT_BOOL:
        return ((const uint8_t *)t->data)[i] != 0;
    default:
        return 0;
    }
}

int64_t idl__get_i64(const idl_tensor *t, int64_t i) {
    switch (t->dtype) {
    case IDL_DT_I64:
        return ((const int64_t *)t->data)[i];
    case IDL_DT_I32:
        return ((const int32_t *)t->data)[i];
    case IDL_DT_F32:
        return (int64_t)((const float *)t->data)[i];
    case IDL_DT_F64:
        return (int64_t)((const double *)t->data)[i];
    case IDL_DT_U8:
        return ((const uint8_t *)t->data)[i];
    case IDL_DT_I8:
        return ((const int8_t *)t->data)[i];
    case IDL_DT_BOOL:
        return ((const uint8_t *)t->data)[i] != 0;
    default:
        return 0;
    }
}
