/* ir.h — the in-memory graph a model is loaded into: values (named tensors) and nodes, nodes in
 * topological order. Immutable after idl_model_load. */
#pragma once

#include "core/internal.h"
#include "interpretdl/model.h"
#include "tensor/tensor_internal.h"

typedef enum idl__attr_type {
    IDL__ATTR_UNDEFINED = 0,
    IDL__ATTR_FLOAT = 1,
    IDL__ATTR_INT = 2,
    IDL__ATTR_STRING = 3,
    IDL__ATTR_TENSOR = 4,
    IDL__ATTR_GRAPH = 5,
    IDL__ATTR_FLOATS = 6,
    IDL__ATTR_INTS = 7,
    IDL__ATTR_STRINGS = 8,
} idl__attr_type;

typedef struct idl__attr {
    char *name;
    idl__attr_type type;
    int64_t i;
    float f;
    char *s; /* NUL-terminated copy of the bytes */
    int64_t *ints;
    int n_ints;
    float *floats;
    int n_floats;
    idl_tensor *t; /* owned */
} idl__attr;

typedef struct idl__node {
    char *name; /* may be "" */
    char *op_type;
    char *domain;
    int n_in, n_out;
    int *in;  /* value ids; -1 for an absent optional input ("") */
    int *out; /* value ids; -1 for an absent optional output */
    idl__attr *attrs;
    int n_attrs;
    int op; /* index into the op registry, -1 if unsupported */
} idl__node;

typedef enum idl__value_kind {
    IDL__VAL_INPUT = 0, /* graph input fed by the caller */
    IDL__VAL_INIT = 1,  /* initializer or Constant node output: data known at load */
    IDL__VAL_NODE = 2,  /* produced by a node */
} idl__value_kind;

typedef struct idl__value {
    char *name;
    idl__value_kind kind;
    int producer;     /* node index for IDL__VAL_NODE, else -1 */
    idl_tensor *init; /* owned data for IDL__VAL_INIT */
    /* declared type (graph inputs/outputs/value_info), ndim -1 when unknown */
    idl_dtype dtype;
    int ndim;
    int64_t shape[IDL_MAX_DIMS];
    char *dim_param[IDL_MAX_DIMS];
} idl__value;

struct idl_model {
    idl__value *values;
    int n_values;
    idl__node *nodes; /* topological order */
    int n_nodes;
    int *inputs; /* value ids of the caller-fed graph inputs */
    int n_inputs;
    int *outputs; /* value ids of the graph outputs */
    int n_outputs;
    int64_t opset; /* default domain */
    char *producer;
    int n_inits;
    int64_t n_params;
    /* name -> value id, open addressing, capacity a power of two */
    int *hash;
    int hash_cap;
    /* names of every value, for close-match messages */
    const char **names;
    /* a part of another model (idl__model_sub): names, initializer data, attributes and node
     * strings are that model's; only the arrays are this one's */
    bool borrowed;
};

/* The part of model m between two of its values: a model whose one graph input is value in_v
 * (float32, any shape) and whose one output is value out_v, made of the nodes that out_v depends
 * on without going through in_v. Everything but its arrays is borrowed from m, which must outlive
 * it (free it with idl_model_free). IDL_ERR_INVALID_ARG when out_v depends on a graph input of m
 * other than in_v (in_v does not cut the graph there). */
idl_status idl__model_sub(const idl_model *m, int in_v, int out_v, idl_model **out);
/* Value id of a name, or -1. */
int idl__model_find(const idl_model *m, const char *name);
/* Writes close matches of name among the model's tensor names into buf. */
void idl__model_close_names(const idl_model *m, const char *name, char *buf, size_t cap);

/* Attribute lookup on a node; NULL when absent. */
const idl__attr *idl__attr_get(const idl__node *n, const char *name);
int64_t idl__attr_int(const idl__node *n, const char *name, int64_t dflt);
float idl__attr_float(const idl__node *n, const char *name, float dflt);
const char *idl__attr_str(const idl__node *n, const char *name, const char *dflt);
/* ints attribute: *count = -1 when absent. */
const int64_t *idl__attr_ints(const idl__node *n, const char *name, int *count);

/* Decodes a serialized TensorProto (as the ONNX test data .pb files hold). Caller frees the tensor
 * with idl_tensor_free. base_dir may be NULL (external data refused). */
idl_status idl__tensor_from_pb(const void *buf, size_t len, const char *base_dir, idl_tensor **out);
