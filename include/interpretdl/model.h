/* model.h — loading ONNX models. A model is immutable after load and may be shared by threads. */
#ifndef INTERPRETDL_MODEL_H
#define INTERPRETDL_MODEL_H

#include "interpretdl/interpretdl.h"
#include "interpretdl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct idl_model idl_model;

typedef struct idl_load_opts {
    /* Largest model file accepted, in bytes (0 = 4 GiB). External data files are bounded too. */
    uint64_t max_file_bytes;
    /* Folder that external-data locations are relative to, for idl_model_load_mem (NULL: external
     * data is refused). idl_model_load uses the model file's folder. */
    const char *base_dir;
} idl_load_opts;

/* Defaults: max_file_bytes = 4 GiB, base_dir = NULL. */
IDL_API idl_load_opts idl_load_opts_default(void);

/* Loads an ONNX file. On success *out is a model the caller frees with idl_model_free; on failure
 * *out is NULL and idl_last_error() says why (the node, tensor or field at fault). opts may be
 * NULL. Loading does not require every op to be implemented (so that `interpretdl info` can list
 * what is missing); idl_session_new refuses a model with unsupported ops. Errors: IO, PARSE
 * (truncated or malformed protobuf, bad tensor sizes, dangling tensor names, cycles), UNSUPPORTED
 * (tensor types or data layouts not handled), NOT_FOUND (missing external data file), INVALID_ARG
 * (external data path outside the model folder). */
IDL_API idl_status idl_model_load(const char *path, const idl_load_opts *opts, idl_model **out);
/* The same from bytes in memory; the bytes are copied where needed and may be freed afterwards. */
IDL_API idl_status idl_model_load_mem(const void *data, size_t size, const idl_load_opts *opts,
                                      idl_model **out);
/* NULL is a no-op. */
IDL_API void idl_model_free(idl_model *m);

/* Description of a graph input or output. Dimensions that the file leaves free are -1 and
 * dim_param[i] holds their symbolic name (or NULL). Pointers are owned by the model. */
typedef struct idl_value_info {
    const char *name;
    idl_dtype dtype;
    int ndim; /* -1 when the file gives no shape */
    int64_t shape[IDL_MAX_DIMS];
    const char *dim_param[IDL_MAX_DIMS];
} idl_value_info;

/* Graph inputs that are not initializers, in file order. */
IDL_API int idl_model_n_inputs(const idl_model *m);
IDL_API idl_status idl_model_input(const idl_model *m, int i, idl_value_info *info);
IDL_API const char *idl_model_input_name(const idl_model *m, int i);
IDL_API int idl_model_n_outputs(const idl_model *m);
IDL_API idl_status idl_model_output(const idl_model *m, int i, idl_value_info *info);
IDL_API const char *idl_model_output_name(const idl_model *m, int i);

/* Nodes in file order: op type, node name (may be ""), input/output counts and names. */
IDL_API int idl_model_n_nodes(const idl_model *m);
IDL_API const char *idl_model_node_op(const idl_model *m, int i);
IDL_API const char *idl_model_node_name(const idl_model *m, int i);
IDL_API int idl_model_node_n_inputs(const idl_model *m, int i);
IDL_API const char *idl_model_node_input(const idl_model *m, int i, int k); /* "" = absent */
IDL_API int idl_model_node_n_outputs(const idl_model *m, int i);
IDL_API const char *idl_model_node_output(const idl_model *m, int i, int k);
/* Opset of the default ONNX domain. */
IDL_API int64_t idl_model_opset(const idl_model *m);
IDL_API const char *idl_model_producer(const idl_model *m);
/* Number of initializer tensors and their total number of elements. */
IDL_API int idl_model_n_initializers(const idl_model *m);
IDL_API int64_t idl_model_n_parameters(const idl_model *m);
/* Whether a tensor of that name exists in the graph (input, initializer or node output). */
IDL_API int idl_model_has_tensor(const idl_model *m, const char *name);
/* Whether this library implements an ONNX op type at the given opset (domain "" or "ai.onnx"). */
IDL_API int idl_op_supported(const char *op_type, int64_t opset);
/* Names of all supported ONNX ops, NULL-terminated, sorted. */
IDL_API const char *const *idl_supported_ops(void);

#ifdef __cplusplus
}
#endif
#endif
