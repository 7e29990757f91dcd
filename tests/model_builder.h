/* model_builder.h — builds small ONNX models in memory for tests (protobuf-c, the library's own
 * schema subset). Usage:
 *     tb_model *b = tb_new(13);
 *     tb_input(b, "x", IDL_DT_F32, 2, (int64_t[]){2, 3});
 *     tb_node(b, "Softmax", "x", "y");  tb_attr_int(b, "axis", 1);
 *     tb_output(b, "y");
 *     tb_pack(b, &buf, &len);  idl_model_load_mem(buf, len, NULL, &m);  free(buf);  tb_free(b);
 * Inputs/outputs of tb_node are comma-separated names; an empty name ("x,,z") is an absent input.
 */
#pragma once

#include "interpretdl/interpretdl.h"
#include <stddef.h>
#include <stdint.h>

typedef struct tb_model tb_model;

tb_model *tb_new(int opset);
void tb_free(tb_model *b);
void tb_input(tb_model *b, const char *name, idl_dtype dt, int ndim, const int64_t *shape);
void tb_input_sym(tb_model *b, const char *name, idl_dtype dt, int ndim,
                  const int64_t *shape); /* -1 dims symbolic */
void tb_output(tb_model *b, const char *name);
void tb_init_f32(tb_model *b, const char *name, int ndim, const int64_t *shape, const float *data);
void tb_init_i64(tb_model *b, const char *name, int ndim, const int64_t *shape,
                 const int64_t *data);
/* 1-D int64 initializer from a list */
void tb_init_ints(tb_model *b, const char *name, int n, const int64_t *vals);
/* float32 initializer whose data lives in an external file (location relative to the model);
 * offset/length < 0 leave the key out */
void tb_init_external(tb_model *b, const char *name, int ndim, const int64_t *shape,
                      const char *location, long long offset, long long length);
/* initializer with arbitrary raw bytes (any ONNX data type number), for malformed-file tests */
void tb_init_raw(tb_model *b, const char *name, int onnx_type, int ndim, const int64_t *shape,
                 const void *bytes, size_t nbytes);
void tb_node(tb_model *b, const char *op, const char *inputs, const char *outputs);
/* After the graph is built: every graph input x is fed through an Identity from a new input
 * x__in, and every output y through an Identity to a new output y__out, so that the graph's own
 * inputs and outputs become intermediate values. */
void tb_wrap_io(tb_model *b);
/* attributes of the last node */
void tb_attr_int(tb_model *b, const char *name, int64_t v);
void tb_attr_float(tb_model *b, const char *name, float v);
void tb_attr_ints(tb_model *b, const char *name, int n, const int64_t *v);
void tb_attr_floats(tb_model *b, const char *name, int n, const float *v);
void tb_attr_str(tb_model *b, const char *name, const char *s);
/* Serializes; *buf is malloc'd (free with free()). Returns 0 on success. */
int tb_pack(tb_model *b, uint8_t **buf, size_t *len);
/* Packs and loads; returns NULL (and prints the error) on failure. */
idl_model *tb_load(tb_model *b);

/* A uniform number in [-1, 1) from a linear congruential state (test data). */
float tb_frand(uint32_t *s);
/* a[0..n) = scale * tb_frand(s), in order (nothing when a is NULL). */
void tb_frand_fill(float *a, size_t n, float scale, uint32_t *s);
/* The linear image model y = W flatten(x) + B: input "x" (N free, C, H, W), output "y" (N, K);
 * W (K, C * H * W) and B (K) are copied. */
idl_model *tb_linear_model(int64_t C, int64_t H, int64_t W, int64_t K, const float *w,
                           const float *b);
/* The same with W drawn by tb_frand from seed and B[k] = bias_step * k, written to w and b (the
 * test's references). */
idl_model *tb_linear_model_random(int64_t C, int64_t H, int64_t W, int64_t K, uint32_t seed,
                                  float bias_step, float *w, float *b);
