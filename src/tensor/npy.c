/* npy.c — NumPy .npy reading and writing (format versions 1.0, 2.0, 3.0; C order, little-endian).
 */
#include "tensor/tensor_internal.h"

#include <stdio.h>
#include <string.h>

/* Finds `'key':` in the header dict and returns a pointer just past the colon (spaces skipped). */
static const char *dict_value(const char *h, size_t hl, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 2 < hl; i++) {
        if ((h[i] == '\'' || h[i] == '"') && memcmp(h + i + 1, key, kl) == 0 &&
            h[i + 1 + kl] == h[i]) {
            const char *p = h + i + kl + 2;
            while (p < h + hl && (*p == ' ' || *p == ':'))
                p++;
            return p;
        }
    }
    return NULL;
}

idl_status idl_npy_load_mem(const void *data, size_t size, idl_tensor **out) {
    const unsigned char *b = data;
    *out = NULL;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return idl__error(IDL_ERR_PARSE, "not a .npy file (bad magic)");
    int major = b[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | ((size_t)b[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return idl__error(IDL_ERR_PARSE, ".npy header truncated");
        hl = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        off = 12;
    } else {
        return idl__error(IDL_ERR_UNSUPPORTED, ".npy format version %d", major);
    }
    if (hl > size - off) return idl__error(IDL_ERR_PARSE, ".npy header truncated");
    const char *h = (const char *)b + off;
    const char *d = dict_value(h, hl, "descr");
    const char *fo = dict_value(h, hl, "fortran_order");
    const char *sh = dict_value(h, hl, "shape");
    if (!d || !fo || !sh)
        return idl__error(IDL_ERR_PARSE, ".npy header lacks descr/fortran_order/shape");
    if (strncmp(fo, "False", 5) != 0)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          ".npy in Fortran order; save with np.ascontiguousarray");
    if (*d != '\'' && *d != '"') return idl__error(IDL_ERR_PARSE, ".npy descr is not a string");
    char descr[8] = { 0 };
    for (int i = 0; i < 7 && d + 1 + i < h + hl && d[1 + i] != d[0]; i++)
        descr[i] = d[1 + i];
    idl_dtype dt = IDL_DT_UNDEFINED;
    if (!strcmp(descr, "<f4"))
        dt = IDL_DT_F32;
    else if (!strcmp(descr, "<f8"))
        dt = IDL_DT_F64;
    else if (!strcmp(descr, "<i8"))
        dt = IDL_DT_I64;
    else if (!strcmp(descr, "<i4"))
        dt = IDL_DT_I32;
    else if (!strcmp(descr, "|u1"))
        dt = IDL_DT_U8;
    else if (!strcmp(descr, "|i1"))
        dt = IDL_DT_I8;
    else if (!strcmp(descr, "|b1"))
        dt = IDL_DT_BOOL;
    else
        return idl__error(
            IDL_ERR_UNSUPPORTED,
            ".npy dtype '%s' (use float32, float64, int32, int64, uint8, int8 or bool)", descr);
    if (*sh != '(') return idl__error(IDL_ERR_PARSE, ".npy shape is not a tuple");
    int64_t shape[IDL_MAX_DIMS];
    int nd = 0;
    const char *p = sh + 1, *end = h + hl;
    while (p < end && *p != ')') {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        if (p < end && *p == ')') break;
        if (p >= end || *p < '0' || *p > '9')
            return idl__error(IDL_ERR_PARSE, ".npy shape is malformed");
        int64_t v = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return idl__error(IDL_ERR_PARSE, ".npy dimension too large");
            v = v * 10 + (*p++ - '0');
        }
        if (nd == IDL_MAX_DIMS)
            return idl__error(IDL_ERR_UNSUPPORTED, ".npy rank above %d", IDL_MAX_DIMS);
        shape[nd++] = v;
    }
    if (p >= end) return idl__error(IDL_ERR_PARSE, ".npy shape is malformed");
    int64_t n = 1, bytes;
    for (int i = 0; i < nd; i++)
        if (!idl__mul_ok(n, shape[i], &n)) return idl__error(IDL_ERR_PARSE, ".npy size overflows");
    if (!idl__mul_ok(n, (int64_t)idl_dtype_size(dt), &bytes))
        return idl__error(IDL_ERR_PARSE, ".npy size overflows");
    size_t doff = off + hl;
    if ((uint64_t)bytes > size - doff)
        return idl__error(IDL_ERR_PARSE, ".npy data truncated: %lld bytes expected, %zu present",
                          (long long)bytes, size - doff);
    idl_dtype odt = dt == IDL_DT_F64 ? IDL_DT_F32 : dt == IDL_DT_I32 ? IDL_DT_I64 : dt;
    idl_status st = idl_tensor_new(odt, nd, shape, out);
    if (st) return st;
    const unsigned char *src = b + doff;
    if (dt == IDL_DT_F64) {
        float *o = (*out)->data;
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            o[i] = (float)v;
        }
    } else if (dt == IDL_DT_I32) {
        int64_t *o = (*out)->data;
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            o[i] = v;
        }
    } else {
        memcpy((*out)->data, src, (size_t)bytes);
    }
    return IDL_OK;
}

idl_status idl_npy_load(const char *path, idl_tensor **out) {
    unsigned char *buf;
    size_t len;
    *out = NULL;
    idl_status st = idl__read_file(path, (uint64_t)1 << 36, &buf, &len);
    if (st) return st;
    st = idl_npy_load_mem(buf, len, out);
    idl__free(buf);
    if (st) return idl__error_prefix(st, "'%s': ", path);
    return IDL_OK;
}

idl_status idl_npy_save(const char *path, const idl_tensor *t) {
    const char *descr;
    switch (t->dtype) {
    case IDL_DT_F32:
        descr = "<f4";
        break;
    case IDL_DT_F64:
        descr = "<f8";
        break;
    case IDL_DT_I64:
        descr = "<i8";
        break;
    case IDL_DT_I32:
        descr = "<i4";
        break;
    case IDL_DT_U8:
        descr = "|u1";
        break;
    case IDL_DT_I8:
        descr = "|i1";
        break;
    case IDL_DT_BOOL:
        descr = "|b1";
        break;
    default:
        return idl__error(IDL_ERR_INVALID_ARG, "cannot save dtype %d", (int)t->dtype);
    }
    char hdr[512];
    int w = snprintf(hdr + 10, sizeof hdr - 10,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->ndim; i++)
        w += snprintf(hdr + 10 + w, sizeof hdr - 10 - (size_t)w, "%lld,%s", (long long)t->shape[i],
                      (i + 1 < t->ndim) ? " " : "");
    if (t->ndim > 1) w--; /* numpy writes (2, 3) not (2, 3,) */
    w += snprintf(hdr + 10 + w, sizeof hdr - 10 - (size_t)w, "), }");
    int total = 10 + w + 1;
    int pad = (64 - total % 64) % 64;
    memset(hdr + 10 + w, ' ', (size_t)pad);
    hdr[10 + w + pad] = '\n';
    int hl = w + pad + 1;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hl & 0xff);
    hdr[9] = (char)(hl >> 8);
    const void *pieces[2] = { hdr, t->data };
    size_t sizes[2] = { (size_t)(10 + hl), idl__tensor_bytes(t) };
    return idl__write_atomic(path, pieces, sizes, 2);
}
