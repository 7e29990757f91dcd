/* model_builder.c — see model_builder.h. Test code: allocation failures abort. */
#include "model_builder.h"
#include "onnx_subset.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 256

struct tb_model {
    Idlonnx__ModelProto model;
    Idlonnx__GraphProto graph;
    Idlonnx__OperatorSetIdProto opset, *opsets[1];
    Idlonnx__NodeProto *nodes[MAXN];
    Idlonnx__TensorProto *inits[MAXN];
    Idlonnx__ValueInfoProto *inputs[MAXN], *outputs[MAXN];
    void *garbage[8 * MAXN];
    int n_garbage;
};

static void *keep(tb_model *b, void *p) {
    if (!p || b->n_garbage == 8 * MAXN) abort();
    b->garbage[b->n_garbage++] = p;
    return p;
}
static void *zalloc(tb_model *b, size_t n) {
    return keep(b, calloc(1, n ? n : 1));
}
static char *sdup(tb_model *b, const char *s) {
    char *p = zalloc(b, strlen(s) + 1);
    strcpy(p, s);
    return p;
}

tb_model *tb_new(int opset) {
    tb_model *b = calloc(1, sizeof *b);
    if (!b) abort();
    idlonnx__model_proto__init(&b->model);
    idlonnx__graph_proto__init(&b->graph);
    idlonnx__operator_set_id_proto__init(&b->opset);
    b->opset.domain = sdup(b, "");
    b->opset.has_version = 1;
    b->opset.version = opset;
    b->opsets[0] = &b->opset;
    b->model.n_opset_import = 1;
    b->model.opset_import = b->opsets;
    b->model.has_ir_version = 1;
    b->model.ir_version = 8;
    b->model.producer_name = sdup(b, "interpretdl-tests");
    b->model.graph = &b->graph;
    b->graph.name = sdup(b, "g");
    b->graph.node = b->nodes;
    b->graph.initializer = b->inits;
    b->graph.input = b->inputs;
    b->graph.output = b->outputs;
    return b;
}

void tb_free(tb_model *b) {
    if (!b) return;
    for (int i = 0; i < b->n_garbage; i++)
        free(b->garbage[i]);
    free(b);
}

static Idlonnx__ValueInfoProto *value_info(tb_model *b, const char *name, idl_dtype dt, int ndim,
                                           const int64_t *shape, int sym) {
    Idlonnx__ValueInfoProto *vi = zalloc(b, sizeof *vi);
    idlonnx__value_info_proto__init(vi);
    vi->name = sdup(b, name);
    if (ndim < 0) return vi;
    Idlonnx__TypeProto *tp = zalloc(b, sizeof *tp);
    idlonnx__type_proto__init(tp);
    Idlonnx__TypeProto__Tensor *tt = zalloc(b, sizeof *tt);
    idlonnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = dt;
    Idlonnx__TensorShapeProto *sp = zalloc(b, sizeof *sp);
    idlonnx__tensor_shape_proto__init(sp);
    sp->n_dim = (size_t)ndim;
    sp->dim = zalloc(b, sizeof(void *) * (size_t)(ndim + 1));
    for (int i = 0; i < ndim; i++) {
        Idlonnx__TensorShapeProto__Dimension *d = zalloc(b, sizeof *d);
        idlonnx__tensor_shape_proto__dimension__init(d);
        if (sym && shape[i] < 0) {
            char nm[16];
            snprintf(nm, sizeof nm, "d%d", i);
            d->dim_param = sdup(b, nm);
        } else {
            d->has_dim_value = 1;
            d->dim_value = shape[i];
        }
        sp->dim[i] = d;
    }
    tt->shape = sp;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

void tb_input(tb_model *b, const char *name, idl_dtype dt, int ndim, const int64_t *shape) {
    b->inputs[b->graph.n_input++] = value_info(b, name, dt, ndim, shape, 0);
}
void tb_input_sym(tb_model *b, const char *name, idl_dtype dt, int ndim, const int64_t *shape) {
    b->inputs[b->graph.n_input++] = value_info(b, name, dt, ndim, shape, 1);
}
void tb_output(tb_model *b, const char *name) {
    b->outputs[b->graph.n_output++] = value_info(b, name, IDL_DT_UNDEFINED, -1, NULL, 0);
}

static Idlonnx__TensorProto *tensor(tb_model *b, const char *name, int dt, int ndim,
                                    const int64_t *shape, const void *data, size_t esz) {
    Idlonnx__TensorProto *t = zalloc(b, sizeof *t);
    idlonnx__tensor_proto__init(t);
    t->name = sdup(b, name);
    t->has_data_type = 1;
    t->data_type = dt;
    t->n_dims = (size_t)ndim;
    t->dims = zalloc(b, sizeof(int64_t) * (size_t)(ndim + 1));
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t->has_raw_data = 1;
    t->raw_data.len = n * esz;
    t->raw_data.data = zalloc(b, n * esz);
    if (n && data) memcpy(t->raw_data.data, data, n * esz);
    return t;
}

void tb_init_f32(tb_model *b, const char *name, int ndim, const int64_t *shape, const float *data) {
    b->inits[b->graph.n_initializer++] = tensor(b, name, 1, ndim, shape, data, 4);
}
void tb_init_i64(tb_model *b, const char *name, int ndim, const int64_t *shape,
                 const int64_t *data) {
    b->inits[b->graph.n_initializer++] = tensor(b, name, 7, ndim, shape, data, 8);
}
void tb_init_ints(tb_model *b, const char *name, int n, const int64_t *vals) {
    int64_t shape[1] = { n };
    tb_init_i64(b, name, 1, shape, vals);
}

void tb_init_raw(tb_model *b, const char *name, int onnx_type, int ndim, const int64_t *shape,
                 const void *bytes, size_t nbytes) {
    Idlonnx__TensorProto *t = tensor(b, name, onnx_type, 0, NULL, NULL, 0);
    t->n_dims = (size_t)ndim;
    t->dims = zalloc(b, sizeof(int64_t) * (size_t)(ndim + 1));
    for (int i = 0; i < ndim; i++)
        t->dims[i] = shape[i];
    t->raw_data.len = nbytes;
    t->raw_data.data = zalloc(b, nbytes);
    memcpy(t->raw_data.data, bytes, nbytes);
    b->inits[b->graph.n_initializer++] = t;
}

static Idlonnx__StringStringEntryProto *entry(tb_model *b, const char *k, const char *v) {
    Idlonnx__StringStringEntryProto *e = zalloc(b, sizeof *e);
    idlonnx__string_string_entry_proto__init(e);
    e->key = sdup(b, k);
    e->value = sdup(b, v);
    return e;
}

void tb_init_external(tb_model *b, const char *name, int ndim, const int64_t *shape,
                      const char *location, long long offset, long long length) {
    Idlonnx__TensorProto *t = tensor(b, name, 1, ndim, shape, NULL, 0);
    t->has_raw_data = 0;
    t->has_data_location = 1;
    t->data_location = 1;
    t->external_data = zalloc(b, sizeof(void *) * 3);
    t->external_data[t->n_external_data++] = entry(b, "location", location);
    char num[32];
    if (offset >= 0) {
        snprintf(num, sizeof num, "%lld", offset);
        t->external_data[t->n_external_data++] = entry(b, "offset", num);
    }
    if (length >= 0) {
        snprintf(num, sizeof num, "%lld", length);
        t->external_data[t->n_external_data++] = entry(b, "length", num);
    }
    b->inits[b->graph.n_initializer++] = t;
}

static void split_names(tb_model *b, const char *list, size_t *n, char ***out) {
    *n = 0;
    *out = zalloc(b, sizeof(char *) * 64);
    if (!list || !*list) return;
    const char *p = list;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        char *s = zalloc(b, l + 1);
        memcpy(s, p, l);
        (*out)[(*n)++] = s;
        if (!c) break;
        p = c + 1;
    }
}

void tb_node(tb_model *b, const char *op, const char *inputs, const char *outputs) {
    Idlonnx__NodeProto *n = zalloc(b, sizeof *n);
    idlonnx__node_proto__init(n);
    char nm[32];
    snprintf(nm, sizeof nm, "n%zu", b->graph.n_node);
    n->name = sdup(b, nm);
    n->op_type = sdup(b, op);
    split_names(b, inputs, &n->n_input, &n->input);
    split_names(b, outputs, &n->n_output, &n->output);
    n->attribute = zalloc(b, sizeof(void *) * 32);
    b->nodes[b->graph.n_node++] = n;
}

void tb_wrap_io(tb_model *b) {
    size_t n0 = b->graph.n_node, n_in = b->graph.n_input;
    if (n0 + n_in + b->graph.n_output > MAXN) abort();
    char in[300], out[300];
    for (size_t i = 0; i < n_in; i++) { /* graph input x becomes x__in -> Identity -> x */
        Idlonnx__ValueInfoProto *vi = b->inputs[i];
        snprintf(in, sizeof in, "%s__in", vi->name);
        tb_node(b, "Identity", in, vi->name);
        b->nodes[b->graph.n_node - 1]->name = sdup(b, in);
        vi->name = sdup(b, in);
    }
    /* those Identity nodes first */
    Idlonnx__NodeProto *moved[MAXN];
    memcpy(moved, b->nodes + n0, sizeof(void *) * n_in);
    memmove(b->nodes + n_in, b->nodes, sizeof(void *) * n0);
    memcpy(b->nodes, moved, sizeof(void *) * n_in);
    for (size_t i = 0; i < b->graph.n_output; i++) { /* output y becomes y -> Identity -> y__out */
        Idlonnx__ValueInfoProto *vi = b->outputs[i];
        snprintf(out, sizeof out, "%s__out", vi->name);
        tb_node(b, "Identity", vi->name, out);
        b->nodes[b->graph.n_node - 1]->name = sdup(b, out);
        vi->name = sdup(b, out);
    }
}

static Idlonnx__AttributeProto *new_attr(tb_model *b, const char *name, int type) {
    Idlonnx__NodeProto *n = b->nodes[b->graph.n_node - 1];
    Idlonnx__AttributeProto *a = zalloc(b, sizeof *a);
    idlonnx__attribute_proto__init(a);
    a->name = sdup(b, name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}
void tb_attr_int(tb_model *b, const char *name, int64_t v) {
    Idlonnx__AttributeProto *a = new_attr(b, name, 2);
    a->has_i = 1;
    a->i = v;
}
void tb_attr_float(tb_model *b, const char *name, float v) {
    Idlonnx__AttributeProto *a = new_attr(b, name, 1);
    a->has_f = 1;
    a->f = v;
}
void tb_attr_ints(tb_model *b, const char *name, int n, const int64_t *v) {
    Idlonnx__AttributeProto *a = new_attr(b, name, 7);
    a->n_ints = (size_t)n;
    a->ints = zalloc(b, sizeof(int64_t) * (size_t)(n + 1));
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}
void tb_attr_floats(tb_model *b, const char *name, int n, const float *v) {
    Idlonnx__AttributeProto *a = new_attr(b, name, 6);
    a->n_floats = (size_t)n;
    a->floats = zalloc(b, sizeof(float) * (size_t)(n + 1));
    memcpy(a->floats, v, sizeof(float) * (size_t)n);
}
void tb_attr_str(tb_model *b, const char *name, const char *s) {
    Idlonnx__AttributeProto *a = new_attr(b, name, 3);
    a->has_s = 1;
    a->s.len = strlen(s);
    a->s.data = (uint8_t *)sdup(b, s);
}

int tb_pack(tb_model *b, uint8_t **buf, size_t *len) {
    *len = idlonnx__model_proto__get_packed_size(&b->model);
    *buf = malloc(*len ? *len : 1);
    if (!*buf) return -1;
    idlonnx__model_proto__pack(&b->model, *buf);
    return 0;
}

idl_model *tb_load(tb_model *b) {
    uint8_t *buf;
    size_t len;
    if (tb_pack(b, &buf, &len)) return NULL;
    idl_model *m = NULL;
    if (idl_model_load_mem(buf, len, NULL, &m) != IDL_OK)
        fprintf(stderr, "tb_load: %s\n", idl_last_error());
    free(buf);
    return m;
}

float tb_frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

void tb_frand_fill(float *a, size_t n, float scale, uint32_t *s) {
    for (size_t i = 0; a && i < n; i++)
        a[i] = scale * tb_frand(s);
}

idl_model *tb_linear_model(int64_t C, int64_t H, int64_t W, int64_t K, const float *w,
                           const float *b) {
    tb_model *t = tb_new(13);
    tb_input_sym(t, "x", IDL_DT_F32, 4, (int64_t[]){ -1, C, H, W });
    tb_init_f32(t, "W", 2, (int64_t[]){ K, C * H * W }, w);
    tb_init_f32(t, "B", 1, (int64_t[]){ K }, b);
    tb_node(t, "Flatten", "x", "f");
    tb_attr_int(t, "axis", 1);
    tb_node(t, "Gemm", "f,W,B", "y");
    tb_attr_int(t, "transB", 1);
    tb_output(t, "y");
    idl_model *m = tb_load(t);
    tb_free(t);
    return m;
}

idl_model *tb_linear_model_random(int64_t C, int64_t H, int64_t W, int64_t K, uint32_t seed,
                                  float bias_step, float *w, float *b) {
    for (int64_t j = 0; j < K * C * H * W; j++)
        w[j] = tb_frand(&seed);
    for (int64_t k = 0; k < K; k++)
        b[k] = bias_step * (float)k;
    return tb_linear_model(C, H, W, K, w, b);
}
