/* tensor_internal.h — private tensor helpers: shape arithmetic and broadcasting. */
#pragma once

#include "core/internal.h"
#include "interpretdl/tensor.h"

/* Number of elements of a shape (1 for rank 0). Shapes here were validated, so no overflow. */
int64_t idl__numel(int ndim, const int64_t *shape);
size_t idl__tensor_bytes(const idl_tensor *t);
bool idl__same_shape(const idl_tensor *a, const idl_tensor *b);
/* Formats "(2,3,224,224)" into buf. Returns buf. */
const char *idl__shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);
/* Numpy-style broadcast of shapes a and b; INVALID shapes give IDL_ERR_SHAPE. */
idl_status idl__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                                int64_t *out);
/* Element strides of a tensor of rank `nd_in` broadcast to rank `nd_out` shape `out`: stride 0
 * on broadcast axes. */
void idl__broadcast_strides(int nd_in, const int64_t *in, int nd_out, const int64_t *out,
                            int64_t *strides);
/* Allocates (aligned, zeroed) data for t of its current dtype/shape; sets OWNED. NOMEM on failure.
 */
idl_status idl__tensor_alloc_data(idl_tensor *t);
void idl__tensor_free_data(idl_tensor *t);
/* Reads element i of a numeric tensor as double / int64 (any supported dtype). */
double idl__get_f64(const idl_tensor *t, int64_t i);
int64_t idl__get_i64(const idl_tensor *t, int64_t i);

/* Resizes a one-channel float32 map (sw x sh, rows top to bottom) to dw x dh as OpenCV 4.6's
 * cv::resize(INTER_LINEAR) does on float32 data (bit-exact on x86-64; see resize_map.c): half-pixel
 * centres, edges clamped. dst must not overlap src. Errors: NOMEM (the message names `who`). */
idl_status idl__resize_map(const float *src, int sw, int sh, float *dst, int dw, int dh,
                           const char *who);
