/* tensor.h — dense tensors and .npy files. */
#ifndef INTERPRETDL_TENSOR_H
#define INTERPRETDL_TENSOR_H

#include "interpretdl/interpretdl.h"
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IDL_MAX_DIMS 8

/* Element types. The values are ONNX's TensorProto.DataType numbers. */
typedef enum idl_dtype {
    IDL_DT_UNDEFINED = 0,
    IDL_DT_F32 = 1,
    IDL_DT_U8 = 2,
    IDL_DT_I8 = 3,
    IDL_DT_I32 = 6,
    IDL_DT_I64 = 7,
    IDL_DT_BOOL = 9,
    IDL_DT_F64 = 11,
} idl_dtype;

/* A dense, contiguous, row-major tensor. The struct is transparent so that callers can describe
 * their own buffers without allocating (see idl_tensor_wrap). A tensor made by idl_tensor_new owns
 * its data (flags & IDL_TENSOR_OWNED) and is freed with idl_tensor_free. */
#define IDL_TENSOR_OWNED 1u
typedef struct idl_tensor {
    idl_dtype dtype;
    int ndim;                    /* 0 (scalar) .. IDL_MAX_DIMS */
    int64_t shape[IDL_MAX_DIMS]; /* shape[i] >= 0 */
    void *data;                  /* numel * idl_dtype_size(dtype) bytes */
    unsigned flags;
} idl_tensor;

/* Bytes per element, 0 for an unknown type. */
IDL_API size_t idl_dtype_size(idl_dtype dt);
/* "float32", "int64", ... ; "undefined" for unknown values. */
IDL_API const char *idl_dtype_name(idl_dtype dt);
/* Number of elements (1 for a scalar). */
IDL_API int64_t idl_tensor_numel(const idl_tensor *t);
/* Describes caller-owned memory; no allocation, nothing to free. */
IDL_API idl_tensor idl_tensor_wrap(idl_dtype dt, int ndim, const int64_t *shape, void *data);
/* Allocates a zero-filled tensor. Caller frees with idl_tensor_free. Errors: INVALID_ARG (bad
 * dtype, rank or negative dim), NOMEM (also when the byte size overflows). */
IDL_API idl_status idl_tensor_new(idl_dtype dt, int ndim, const int64_t *shape, idl_tensor **out);
/* Deep copy; caller frees with idl_tensor_free. */
IDL_API idl_status idl_tensor_clone(const idl_tensor *src, idl_tensor **out);
/* Frees a tensor from idl_tensor_new/clone/npy_load. NULL is a no-op. */
IDL_API void idl_tensor_free(idl_tensor *t);

/* Reads a NumPy .npy file (format 1.0-3.0, little-endian f4/f8/i4/i8/u1/i1/b1, C order). float64 is
 * converted to float32 and int32 to int64 unless keep_type. Caller frees with idl_tensor_free.
 * Errors: IO, PARSE (with the reason), UNSUPPORTED (Fortran order, big-endian, other dtypes). */
IDL_API idl_status idl_npy_load(const char *path, idl_tensor **out);
/* Parses .npy bytes from memory (same rules as idl_npy_load). */
IDL_API idl_status idl_npy_load_mem(const void *data, size_t size, idl_tensor **out);
/* Writes a .npy file atomically (to a temporary name in the same folder, then renamed). */
IDL_API idl_status idl_npy_save(const char *path, const idl_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
