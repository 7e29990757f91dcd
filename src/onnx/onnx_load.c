/* onnx_load.c — decodes an ONNX ModelProto (protobuf-c, generated from onnx_subset.proto) into the
 * graph IR of ir.h: initializers (raw_data, typed fields, external data files), Constant nodes
 * folded into initializers, graph inputs and outputs with their declared shapes, nodes sorted
 * topologically. Everything read from the file is validated here: sizes, names, references, cycles.
 */
#define _POSIX_C_SOURCE 200809L
#include "onnx/ir.h"
#include "onnx_subset.pb-c.h"
#include "ops/op.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- protobuf-c allocator through the library hooks ---- */
/* protobuf-c reports a failed allocation like a malformed message (NULL); remember it to tell the
 * two apart. */
static _Thread_local bool g_pb_oom;
/* protobuf-c allocates through the hooks, 64-byte aligned like tensor data, so that a tensor can
 * take over its raw_data buffer instead of copying it (tensor_from_proto) */
static void *pb_alloc(void *user, size_t size) {
    (void)user;
    void *p = idl__aligned_alloc_raw(size);
    if (!p) g_pb_oom = true;
    return p;
}
static void pb_free(void *user, void *p) {
    (void)user;
    idl__aligned_free(p);
}
static ProtobufCAllocator g_pb_alloc = { pb_alloc, pb_free, NULL };

/* ---- names ---- */
static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

int idl__model_find(const idl_model *m, const char *name) {
    if (!name || !m->hash) return -1;
    uint32_t mask = (uint32_t)m->hash_cap - 1, i = hash_str(name) & mask;
    while (m->hash[i] >= 0) {
        if (strcmp(m->values[m->hash[i]].name, name) == 0) return m->hash[i];
        i = (i + 1) & mask;
    }
    return -1;
}

void idl__model_close_names(const idl_model *m, const char *name, char *buf, size_t cap) {
    idl__close_matches(name, m->names, m->n_values, buf, cap);
}

/* ---- attributes ---- */
const idl__attr *idl__attr_get(const idl__node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}
int64_t idl__attr_int(const idl__node *n, const char *name, int64_t dflt) {
    const idl__attr *a = idl__attr_get(n, name);
    return a && a->type == IDL__ATTR_INT ? a->i : dflt;
}
float idl__attr_float(const idl__node *n, const char *name, float dflt) {
    const idl__attr *a = idl__attr_get(n, name);
    return a && a->type == IDL__ATTR_FLOAT ? a->f : dflt;
}
const char *idl__attr_str(const idl__node *n, const char *name, const char *dflt) {
    const idl__attr *a = idl__attr_get(n, name);
    return a && a->type == IDL__ATTR_STRING ? a->s : dflt;
}
const int64_t *idl__attr_ints(const idl__node *n, const char *name, int *count) {
    const idl__attr *a = idl__attr_get(n, name);
    if (!a || a->type != IDL__ATTR_INTS) {
        *count = -1;
        return NULL;
    }
    *count = a->n_ints;
    return a->ints;
}

/* ---- tensors ---- */
static idl_status read_external(const Idlonnx__TensorProto *tp, const char *base_dir, idl_dtype dt,
                                int ndim, const int64_t *shape, size_t bytes, idl_tensor **out) {
    const char *loc = NULL;
    long long off = 0, len = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Idlonnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value) continue;
        char *endp;
        if (!strcmp(e->key, "location"))
            loc = e->value;
        else if (!strcmp(e->key, "offset") || !strcmp(e->key, "length")) {
            errno = 0;
            long long v = strtoll(e->value, &endp, 10);
            if (errno || *endp || v < 0)
                return idl__error(IDL_ERR_PARSE,
                                  "external data %s '%s' is not a non-negative integer", e->key,
                                  e->value);
            if (!strcmp(e->key, "offset"))
                off = v;
            else
                len = v;
        }
    }
    if (!loc || !*loc) return idl__error(IDL_ERR_PARSE, "external data without a location");
    if (!base_dir)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "external data '%s' but no base folder (load from a file "
                          "or set idl_load_opts.base_dir)",
                          loc);
    if (loc[0] == '/' || strstr(loc, "..") != NULL)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "external data location '%s' leaves the model folder", loc);
    if (len >= 0 && (unsigned long long)len != bytes)
        return idl__error(IDL_ERR_PARSE, "external data '%s' length %lld, tensor needs %zu bytes",
                          loc, len, bytes);
    size_t pl = strlen(base_dir) + strlen(loc) + 2;
    char *path = idl__malloc(pl);
    if (!path) return idl__error(IDL_ERR_NOMEM, "out of memory");
    snprintf(path, pl, "%s/%s", base_dir, loc);
    FILE *f = fopen(path, "rb");
    if (!f) {
        idl_status s =
            idl__error(IDL_ERR_NOT_FOUND, "external data file '%s': %s", path, strerror(errno));
        idl__free(path);
        return s;
    }
    idl_status st = IDL_OK;
    if (fseeko(f, 0, SEEK_END) != 0)
        st = idl__error(IDL_ERR_IO, "cannot seek '%s'", path);
    else {
        long long fsz = (long long)ftello(f);
        if (off > fsz || (long long)bytes > fsz - off)
            st = idl__error(IDL_ERR_PARSE,
                            "external data '%s': offset %lld + %zu bytes past its end (%lld)", path,
                            off, bytes, fsz);
        else if ((st = idl_tensor_new(dt, ndim, shape, out))) /* allocated once the file holds it */
            ;
        else if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread((*out)->data, 1, bytes, f) != bytes)
            st = idl__error(IDL_ERR_IO, "cannot read '%s'", path);
    }
    fclose(f);
    idl__free(path);
    return st;
}

static idl_status tensor_from_proto(const Idlonnx__TensorProto *tp, const char *base_dir,
                                    idl_tensor **out) {
    *out = NULL;
    const char *nm = tp->name ? tp->name : "";
    idl_dtype dt;
    int src_dt = tp->has_data_type ? tp->data_type : 0;
    switch (src_dt) {
    case 1:
        dt = IDL_DT_F32;
        break;
    case 2:
        dt = IDL_DT_U8;
        break;
    case 3:
        dt = IDL_DT_I8;
        break;
    case 6:
        dt = IDL_DT_I32;
        break;
    case 7:
        dt = IDL_DT_I64;
        break;
    case 9:
        dt = IDL_DT_BOOL;
        break;
    case 11:
        dt = IDL_DT_F64;
        break;
    default:
        return idl__error(IDL_ERR_UNSUPPORTED, "tensor '%s': element type %d not supported", nm,
                          src_dt);
    }
    if (tp->n_dims > IDL_MAX_DIMS)
        return idl__error(IDL_ERR_UNSUPPORTED, "tensor '%s': rank %zu above %d", nm, tp->n_dims,
                          IDL_MAX_DIMS);
    int64_t shape[IDL_MAX_DIMS], n = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        shape[i] = tp->dims[i];
        if (shape[i] < 0 || !idl__mul_ok(n, shape[i], &n))
            return idl__error(IDL_ERR_PARSE, "tensor '%s': invalid dimension %lld", nm,
                              (long long)shape[i]);
    }
    int64_t bytes;
    if (!idl__mul_ok(n, (int64_t)idl_dtype_size(dt), &bytes) || bytes > ((int64_t)1 << 40))
        return idl__error(IDL_ERR_PARSE, "tensor '%s': size overflows", nm);
    /* the data must be there before anything is allocated for it */
    if (tp->has_data_location && tp->data_location == 1) {
        idl_status st = read_external(tp, base_dir, dt, (int)tp->n_dims, shape, (size_t)bytes, out);
        if (st) {
            idl_tensor_free(*out);
            *out = NULL;
            return idl__error_prefix(st, "tensor '%s': ", nm);
        }
        return IDL_OK;
    }
    if (tp->has_raw_data && tp->raw_data.len != (size_t)bytes)
        return idl__error(IDL_ERR_PARSE, "tensor '%s': raw_data has %zu bytes, shape needs %lld",
                          nm, tp->raw_data.len, (long long)bytes);
    if (!tp->has_raw_data) {
        size_t have = src_dt == 1    ? tp->n_float_data
                      : src_dt == 7  ? tp->n_int64_data
                      : src_dt == 11 ? tp->n_double_data
                                     : tp->n_int32_data;
        if (have != (size_t)n)
            return idl__error(IDL_ERR_PARSE, "tensor '%s': %zu values stored, shape needs %lld", nm,
                              have, (long long)n);
    }
    if (tp->has_raw_data && bytes) {
        /* the tensor takes the decoded buffer (pb_alloc's layout is the tensors'): the weights
         * are copied once, from the file into it, by the decoder. The message is ours (load_mem,
         * idl__tensor_from_pb), so clearing its field here is safe: its free skips NULL data. */
        idl_tensor *t = idl__calloc(1, sizeof *t);
        if (!t) return idl__error(IDL_ERR_NOMEM, "out of memory");
        *t = idl_tensor_wrap(dt, (int)tp->n_dims, shape, tp->raw_data.data);
        t->flags |= IDL_TENSOR_OWNED;
        Idlonnx__TensorProto *own = (Idlonnx__TensorProto *)tp;
        own->raw_data.data = NULL;
        own->raw_data.len = 0;
        *out = t;
        return IDL_OK;
    }
    idl_status st = idl_tensor_new(dt, (int)tp->n_dims, shape, out);
    if (st) return idl__error_prefix(st, "tensor '%s': ", nm);
    idl_tensor *t = *out;
    size_t esz = idl_dtype_size(dt);
    if (tp->has_raw_data) {
        /* zero bytes: nothing to copy */
    } else { /* typed fields, count checked above */
        for (int64_t i = 0; i < n; i++) {
            unsigned char *d = (unsigned char *)t->data + (size_t)i * esz;
            switch (src_dt) {
            case 1:
                memcpy(d, &tp->float_data[i], 4);
                break;
            case 7:
                memcpy(d, &tp->int64_data[i], 8);
                break;
            case 11:
                memcpy(d, &tp->double_data[i], 8);
                break;
            case 6:
                memcpy(d, &tp->int32_data[i], 4);
                break;
            case 2:
            case 9:
                *d = (unsigned char)tp->int32_data[i];
                break;
            case 3:
                *(int8_t *)d = (int8_t)tp->int32_data[i];
                break;
            }
        }
    }
    return IDL_OK;
}

idl_status idl__tensor_from_pb(const void *buf, size_t len, const char *base_dir,
                               idl_tensor **out) {
    *out = NULL;
    g_pb_oom = false;
    Idlonnx__TensorProto *tp = idlonnx__tensor_proto__unpack(&g_pb_alloc, len, buf);
    if (!tp && g_pb_oom) return idl__error(IDL_ERR_NOMEM, "out of memory decoding a TensorProto");
    if (!tp) return idl__error(IDL_ERR_PARSE, "not a valid TensorProto");
    idl_status st = tensor_from_proto(tp, base_dir, out);
    idlonnx__tensor_proto__free_unpacked(tp, &g_pb_alloc);
    return st;
}

/* ---- model ---- */
void idl_model_free(idl_model *m) {
    if (!m) return;
    if (m->borrowed) {
        for (int i = 0; i < m->n_nodes; i++) {
            idl__free(m->nodes[i].in);
            idl__free(m->nodes[i].out);
        }
        m->n_values = m->n_nodes = 0;
    }
    for (int i = 0; i < m->n_values; i++) {
        idl__value *v = &m->values[i];
        idl__free(v->name);
        idl_tensor_free(v->init);
        for (int k = 0; k < IDL_MAX_DIMS; k++)
            idl__free(v->dim_param[k]);
    }
    for (int i = 0; i < m->n_nodes; i++) {
        idl__node *n = &m->nodes[i];
        idl__free(n->name);
        idl__free(n->op_type);
        idl__free(n->domain);
        idl__free(n->in);
        idl__free(n->out);
        for (int k = 0; k < n->n_attrs; k++) {
            idl__attr *a = &n->attrs[k];
            idl__free(a->name);
            idl__free(a->s);
            idl__free(a->ints);
            idl__free(a->floats);
            idl_tensor_free(a->t);
        }
        idl__free(n->attrs);
    }
    idl__free(m->values);
    idl__free(m->nodes);
    idl__free(m->inputs);
    idl__free(m->outputs);
    idl__free(m->producer);
    idl__free(m->hash);
    idl__free(m->names);
    idl__free(m);
}

/* Enters value id (its name set, not yet in the table) into m's name table. */
static void hash_put(idl_model *m, int id) {
    uint32_t mask = (uint32_t)m->hash_cap - 1, i = hash_str(m->values[id].name) & mask;
    while (m->hash[i] >= 0)
        i = (i + 1) & mask;
    m->hash[i] = id;
}

typedef struct builder {
    idl_model *m;
    int cap_values;
} builder;

static idl_status add_value(builder *b, const char *name, idl__value_kind kind, int *id) {
    idl_model *m = b->m;
    if (idl__model_find(m, name) >= 0)
        return idl__error(IDL_ERR_PARSE, "tensor name '%s' is defined twice", name);
    if (m->n_values == b->cap_values) return idl__error(IDL_ERR_INTERNAL, "value table full");
    idl__value *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->name = idl__strdup(name);
    if (!v->name) return idl__error(IDL_ERR_NOMEM, "out of memory");
    v->kind = kind;
    v->producer = -1;
    v->ndim = -1;
    *id = m->n_values++;
    hash_put(m, *id);
    return IDL_OK;
}

static idl_status set_declared_type(idl__value *v, const Idlonnx__ValueInfoProto *vi) {
    if (vi->type && !vi->type->tensor_type && vi->type->base.n_unknown_fields)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "value '%s' is not a tensor (sequence, map, optional and "
                          "sparse types are not supported)",
                          v->name);
    if (!vi->type || !vi->type->tensor_type) return IDL_OK;
    const Idlonnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    v->dtype = tt->has_elem_type ? (idl_dtype)tt->elem_type : IDL_DT_UNDEFINED;
    if (!tt->shape) return IDL_OK;
    if (tt->shape->n_dim > IDL_MAX_DIMS)
        return idl__error(IDL_ERR_UNSUPPORTED, "value '%s': rank %zu above %d", v->name,
                          tt->shape->n_dim, IDL_MAX_DIMS);
    v->ndim = (int)tt->shape->n_dim;
    for (int k = 0; k < v->ndim; k++) {
        const Idlonnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
        v->shape[k] = d->has_dim_value && d->dim_value >= 0 ? d->dim_value : -1;
        if (d->dim_param && *d->dim_param) {
            v->dim_param[k] = idl__strdup(d->dim_param);
            if (!v->dim_param[k]) return idl__error(IDL_ERR_NOMEM, "out of memory");
        }
    }
    return IDL_OK;
}

/* Converts a Constant node's value attribute into a tensor. */
static idl_status constant_value(const Idlonnx__NodeProto *np, idl_tensor **out) {
    *out = NULL;
    for (size_t k = 0; k < np->n_attribute; k++) {
        const Idlonnx__AttributeProto *a = np->attribute[k];
        if (!a->name) continue;
        if (!strcmp(a->name, "value") && a->t) return tensor_from_proto(a->t, NULL, out);
        int64_t one = 1, n;
        idl_status st;
        if (!strcmp(a->name, "value_float")) {
            if ((st = idl_tensor_new(IDL_DT_F32, 0, &one, out))) return st;
            *(float *)(*out)->data = a->f;
            return IDL_OK;
        }
        if (!strcmp(a->name, "value_int")) {
            if ((st = idl_tensor_new(IDL_DT_I64, 0, &one, out))) return st;
            *(int64_t *)(*out)->data = a->i;
            return IDL_OK;
        }
        if (!strcmp(a->name, "value_floats")) {
            n = (int64_t)a->n_floats;
            if ((st = idl_tensor_new(IDL_DT_F32, 1, &n, out))) return st;
            if (n) memcpy((*out)->data, a->floats, (size_t)n * 4);
            return IDL_OK;
        }
        if (!strcmp(a->name, "value_ints")) {
            n = (int64_t)a->n_ints;
            if ((st = idl_tensor_new(IDL_DT_I64, 1, &n, out))) return st;
            if (n) memcpy((*out)->data, a->ints, (size_t)n * 8);
            return IDL_OK;
        }
    }
    return idl__error(IDL_ERR_UNSUPPORTED,
                      "Constant node '%s': no supported value attribute (value, "
                      "value_float(s), value_int(s))",
                      np->name ? np->name : "");
}

static idl_status copy_attrs(idl__node *n, const Idlonnx__NodeProto *np) {
    n->attrs = idl__calloc(np->n_attribute ? np->n_attribute : 1, sizeof *n->attrs);
    if (!n->attrs) return idl__error(IDL_ERR_NOMEM, "out of memory");
    n->n_attrs = (int)np->n_attribute;
    for (size_t k = 0; k < np->n_attribute; k++) {
        const Idlonnx__AttributeProto *a = np->attribute[k];
        idl__attr *d = &n->attrs[k];
        d->name = idl__strdup(a->name ? a->name : "");
        if (!d->name) return idl__error(IDL_ERR_NOMEM, "out of memory");
        if (a->ref_attr_name && *a->ref_attr_name)
            return idl__error(IDL_ERR_UNSUPPORTED, "attribute '%s' refers to a function attribute",
                              d->name);
        d->type = a->has_type ? (idl__attr_type)a->type : IDL__ATTR_UNDEFINED;
        if (d->type == IDL__ATTR_UNDEFINED) { /* old exporters: infer from the fields present */
            if (a->n_ints)
                d->type = IDL__ATTR_INTS;
            else if (a->n_floats)
                d->type = IDL__ATTR_FLOATS;
            else if (a->t)
                d->type = IDL__ATTR_TENSOR;
            else if (a->has_s)
                d->type = IDL__ATTR_STRING;
            else if (a->has_f)
                d->type = IDL__ATTR_FLOAT;
            else if (a->has_i)
                d->type = IDL__ATTR_INT;
        }
        d->i = a->i;
        d->f = a->f;
        if (a->has_s) {
            d->s = idl__malloc(a->s.len + 1);
            if (!d->s) return idl__error(IDL_ERR_NOMEM, "out of memory");
            if (a->s.len) memcpy(d->s, a->s.data, a->s.len);
            d->s[a->s.len] = 0;
        }
        if (a->n_ints) {
            if (a->n_ints > (1u << 24))
                return idl__error(IDL_ERR_PARSE, "attribute '%s' too long", d->name);
            d->ints = idl__malloc(a->n_ints * sizeof(int64_t));
            if (!d->ints) return idl__error(IDL_ERR_NOMEM, "out of memory");
            memcpy(d->ints, a->ints, a->n_ints * sizeof(int64_t));
            d->n_ints = (int)a->n_ints;
        }
        if (a->n_floats) {
            if (a->n_floats > (1u << 24))
                return idl__error(IDL_ERR_PARSE, "attribute '%s' too long", d->name);
            d->floats = idl__malloc(a->n_floats * sizeof(float));
            if (!d->floats) return idl__error(IDL_ERR_NOMEM, "out of memory");
            memcpy(d->floats, a->floats, a->n_floats * sizeof(float));
            d->n_floats = (int)a->n_floats;
        }
        if (a->t) {
            idl_status st = tensor_from_proto(a->t, NULL, &d->t);
            if (st) return st;
        }
    }
    return IDL_OK;
}

static idl_status build(const Idlonnx__ModelProto *mp, const char *base_dir, idl_model *m) {
    const Idlonnx__GraphProto *g = mp->graph;
    if (!g) return idl__error(IDL_ERR_PARSE, "model has no graph");
    m->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = mp->opset_import[i]->domain;
        if (!d || !*d || !strcmp(d, "ai.onnx")) m->opset = mp->opset_import[i]->version;
    }
    if (m->opset < 0) m->opset = mp->n_opset_import ? 1 : 9; /* ONNX: absent default-domain opset */
    m->producer = idl__strdup(mp->producer_name ? mp->producer_name : "");
    if (!m->producer) return idl__error(IDL_ERR_NOMEM, "out of memory");
    if (g->n_node > (1u << 22) || g->n_initializer > (1u << 22) || g->n_input > (1u << 20))
        return idl__error(IDL_ERR_PARSE, "graph too large");

    size_t cap = g->n_initializer + g->n_input + 1;
    for (size_t i = 0; i < g->n_node; i++)
        cap += g->node[i]->n_output;
    if (cap > (1u << 24)) return idl__error(IDL_ERR_PARSE, "graph too large");
    builder b = { m, (int)cap };
    m->values = idl__calloc(cap, sizeof *m->values);
    m->hash_cap = 16;
    while ((size_t)m->hash_cap < cap * 2)
        m->hash_cap *= 2;
    m->hash = idl__malloc((size_t)m->hash_cap * sizeof(int));
    m->nodes = idl__calloc(g->n_node ? g->n_node : 1, sizeof *m->nodes);
    m->inputs = idl__calloc(g->n_input + 1, sizeof(int));
    m->outputs = idl__calloc(g->n_output + 1, sizeof(int));
    if (!m->values || !m->hash || !m->nodes || !m->inputs || !m->outputs)
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->hash_cap; i++)
        m->hash[i] = -1;

    idl_status st;
    int id;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Idlonnx__TensorProto *tp = g->initializer[i];
        if (!tp->name || !*tp->name)
            return idl__error(IDL_ERR_PARSE, "initializer %zu has no name", i);
        if ((st = add_value(&b, tp->name, IDL__VAL_INIT, &id))) return st;
        if ((st = tensor_from_proto(tp, base_dir, &m->values[id].init))) return st;
        m->n_inits++;
        m->n_params += idl_tensor_numel(m->values[id].init);
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const Idlonnx__ValueInfoProto *vi = g->input[i];
        if (!vi->name || !*vi->name)
            return idl__error(IDL_ERR_PARSE, "graph input %zu has no name", i);
        int ex = idl__model_find(m, vi->name);
        if (ex >= 0 && m->values[ex].kind == IDL__VAL_INIT) continue; /* an input with a default */
        if ((st = add_value(&b, vi->name, IDL__VAL_INPUT, &id))) return st;
        if ((st = set_declared_type(&m->values[id], vi))) return st;
        m->inputs[m->n_inputs++] = id;
    }
    /* nodes: outputs first, so that references can be checked in any order */
    int n_nodes = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Idlonnx__NodeProto *np = g->node[i];
        const char *nname = np->name ? np->name : "";
        const char *op = np->op_type ? np->op_type : "";
        if (!*op) return idl__error(IDL_ERR_PARSE, "node %zu ('%s') has no op_type", i, nname);
        if (np->n_input > 4096 || np->n_output > 4096)
            return idl__error(IDL_ERR_PARSE, "node '%s' has too many inputs or outputs", nname);
        bool is_const = !strcmp(op, "Constant") &&
                        (!np->domain || !*np->domain || !strcmp(np->domain, "ai.onnx"));
        if (is_const) {
            if (np->n_output != 1 || !np->output[0] || !*np->output[0])
                return idl__error(IDL_ERR_PARSE, "Constant node '%s' must have one output", nname);
            if ((st = add_value(&b, np->output[0], IDL__VAL_INIT, &id))) return st;
            if ((st = constant_value(np, &m->values[id].init))) return st;
            continue;
        }
        idl__node *n = &m->nodes[n_nodes];
        m->n_nodes = ++n_nodes; /* counted before allocating, so that idl_model_free sees it */
        n->name = idl__strdup(nname);
        n->op_type = idl__strdup(op);
        n->domain = idl__strdup(np->domain ? np->domain : "");
        n->n_in = (int)np->n_input;
        n->n_out = (int)np->n_output;
        n->in = idl__calloc(np->n_input + 1, sizeof(int));
        n->out = idl__calloc(np->n_output + 1, sizeof(int));
        if (!n->name || !n->op_type || !n->domain || !n->in || !n->out)
            return idl__error(IDL_ERR_NOMEM, "out of memory");
        n->op = idl__op_find(n->op_type, n->domain);
        for (size_t k = 0; k < np->n_output; k++) {
            const char *o = np->output[k];
            if (!o || !*o) {
                n->out[k] = -1;
                continue;
            }
            if ((st = add_value(&b, o, IDL__VAL_NODE, &id)))
                return idl__error_prefix(st, "node '%s' (%s): ", nname, op);
            m->values[id].producer = n_nodes - 1;
            n->out[k] = id;
        }
        if ((st = copy_attrs(n, np))) return idl__error_prefix(st, "node '%s' (%s): ", nname, op);
    }
    /* inputs of nodes; node index k in m->nodes corresponds to the k-th non-Constant proto node */
    int k = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Idlonnx__NodeProto *np = g->node[i];
        if (!strcmp(np->op_type, "Constant") &&
            (!np->domain || !*np->domain || !strcmp(np->domain, "ai.onnx")))
            continue;
        idl__node *n = &m->nodes[k++];
        for (size_t j = 0; j < np->n_input; j++) {
            const char *in = np->input[j];
            if (!in || !*in) {
                n->in[j] = -1;
                continue;
            }
            n->in[j] = idl__model_find(m, in);
            if (n->in[j] < 0)
                return idl__error(IDL_ERR_PARSE,
                                  "node '%s' (%s): input '%s' is not a graph input, an "
                                  "initializer or any node's output",
                                  n->name, n->op_type, in);
        }
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const Idlonnx__ValueInfoProto *vi = g->output[i];
        int v = vi->name ? idl__model_find(m, vi->name) : -1;
        if (v < 0)
            return idl__error(IDL_ERR_PARSE, "graph output '%s' is never produced",
                              vi->name ? vi->name : "");
        if (m->values[v].ndim < 0 && (st = set_declared_type(&m->values[v], vi))) return st;
        m->outputs[m->n_outputs++] = v;
    }
    /* topological sort (Kahn); a cycle is a malformed file */
    int nn = m->n_nodes;
    int *indeg = idl__calloc((size_t)nn + 1, sizeof(int));
    int *order = idl__calloc((size_t)nn + 1, sizeof(int));
    int *consumers_start = idl__calloc((size_t)m->n_values + 1, sizeof(int));
    if (!indeg || !order || !consumers_start) {
        idl__free(indeg);
        idl__free(order);
        idl__free(consumers_start);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    int64_t n_edges = 0;
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            int v = m->nodes[i].in[j];
            if (v >= 0 && m->values[v].kind == IDL__VAL_NODE) {
                indeg[i]++;
                consumers_start[v]++;
                n_edges++;
            }
        }
    int *cons = idl__calloc((size_t)n_edges + 1, sizeof(int));
    int *pos = idl__calloc((size_t)m->n_values + 1, sizeof(int));
    if (!cons || !pos) {
        idl__free(indeg);
        idl__free(order);
        idl__free(consumers_start);
        idl__free(cons);
        idl__free(pos);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    int acc = 0;
    for (int v = 0; v < m->n_values; v++) {
        int c = consumers_start[v];
        consumers_start[v] = acc;
        pos[v] = acc;
        acc += c;
    }
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            int v = m->nodes[i].in[j];
            if (v >= 0 && m->values[v].kind == IDL__VAL_NODE) cons[pos[v]++] = i;
        }
    int head = 0, tail = 0;
    for (int i = 0; i < nn; i++)
        if (indeg[i] == 0) order[tail++] = i;
    while (head < tail) {
        int i = order[head++];
        for (int o = 0; o < m->nodes[i].n_out; o++) {
            int v = m->nodes[i].out[o];
            if (v < 0) continue;
            for (int e = consumers_start[v]; e < pos[v]; e++)
                if (--indeg[cons[e]] == 0) order[tail++] = cons[e];
        }
    }
    idl__free(indeg);
    idl__free(consumers_start);
    idl__free(cons);
    idl__free(pos);
    if (tail != nn) {
        idl__free(order);
        return idl__error(IDL_ERR_PARSE, "graph has a cycle (%d of %d nodes cannot be ordered)",
                          nn - tail, nn);
    }
    idl__node *sorted = idl__calloc((size_t)nn + 1, sizeof *sorted);
    if (!sorted) {
        idl__free(order);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < nn; i++)
        sorted[i] = m->nodes[order[i]];
    for (int i = 0; i < nn; i++)
        for (int o = 0; o < sorted[i].n_out; o++)
            if (sorted[i].out[o] >= 0) m->values[sorted[i].out[o]].producer = i;
    idl__free(m->nodes);
    m->nodes = sorted;
    idl__free(order);

    m->names = idl__calloc((size_t)m->n_values + 1, sizeof(char *));
    if (!m->names) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_values; i++)
        m->names[i] = m->values[i].name;
    return IDL_OK;
}

idl_load_opts idl_load_opts_default(void) {
    idl_load_opts o;
    o.max_file_bytes = (uint64_t)4 << 30;
    o.base_dir = NULL;
    return o;
}

static idl_status load_mem(const void *data, size_t size, const char *base_dir, idl_model **out) {
    *out = NULL;
    if (size == 0) return idl__error(IDL_ERR_PARSE, "empty model file");
    g_pb_oom = false;
    Idlonnx__ModelProto *mp = idlonnx__model_proto__unpack(&g_pb_alloc, size, data);
    if (!mp && g_pb_oom) return idl__error(IDL_ERR_NOMEM, "out of memory decoding the model");
    if (!mp)
        return idl__error(IDL_ERR_PARSE, "not a valid ONNX model (protobuf decoding failed: "
                                         "truncated or not a ModelProto)");
    idl_model *m = idl__calloc(1, sizeof *m);
    if (!m) {
        idlonnx__model_proto__free_unpacked(mp, &g_pb_alloc);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl_status st = build(mp, base_dir, m);
    idlonnx__model_proto__free_unpacked(mp, &g_pb_alloc);
    if (st) {
        idl_model_free(m);
        return st;
    }
    *out = m;
    return IDL_OK;
}

idl_status idl_model_load_mem(const void *data, size_t size, const idl_load_opts *opts,
                              idl_model **out) {
    idl_load_opts o = opts ? *opts : idl_load_opts_default();
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!data && size) return idl__error(IDL_ERR_INVALID_ARG, "data is NULL");
    if (o.max_file_bytes && size > o.max_file_bytes)
        return idl__error(IDL_ERR_INVALID_ARG, "model of %zu bytes is over the limit", size);
    return load_mem(data, size, o.base_dir, out);
}

idl_status idl_model_load(const char *path, const idl_load_opts *opts, idl_model **out) {
    idl_load_opts o = opts ? *opts : idl_load_opts_default();
    if (!out || !path) return idl__error(IDL_ERR_INVALID_ARG, "path or out is NULL");
    *out = NULL;
    /* the file is mapped, not read into a buffer: the decoder copies each weight once from the
     * page cache into the tensor that keeps it */
    const unsigned char *buf;
    size_t len;
    idl_status st =
        idl__map_file(path, o.max_file_bytes ? o.max_file_bytes : ((uint64_t)4 << 30), &buf, &len);
    if (st == IDL_ERR_PARSE) return idl__error(IDL_ERR_PARSE, "%s: empty model file", path);
    if (st) return st;
    char *dir = idl__strdup(path);
    if (!dir) {
        idl__unmap_file(buf, len);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    st = load_mem(buf, len, o.base_dir ? o.base_dir : dir, out);
    idl__free(dir);
    idl__unmap_file(buf, len);
    if (st) return idl__error_prefix(st, "%s: ", path);
    return IDL_OK;
}

/* ---- queries ---- */
int idl_model_n_inputs(const idl_model *m) {
    return m->n_inputs;
}
int idl_model_n_outputs(const idl_model *m) {
    return m->n_outputs;
}
static idl_status value_info(const idl_model *m, int v, idl_value_info *info) {
    const idl__value *x = &m->values[v];
    memset(info, 0, sizeof *info);
    info->name = x->name;
    info->dtype = x->kind == IDL__VAL_INIT ? x->init->dtype : x->dtype;
    info->ndim = x->ndim;
    for (int k = 0; k < x->ndim && k < IDL_MAX_DIMS; k++) {
        info->shape[k] = x->shape[k];
        info->dim_param[k] = x->dim_param[k];
    }
    return IDL_OK;
}
idl_status idl_model_input(const idl_model *m, int i, idl_value_info *info) {
    if (i < 0 || i >= m->n_inputs)
        return idl__error(IDL_ERR_INVALID_ARG, "input index %d out of range", i);
    return value_info(m, m->inputs[i], info);
}
idl_status idl_model_output(const idl_model *m, int i, idl_value_info *info) {
    if (i < 0 || i >= m->n_outputs)
        return idl__error(IDL_ERR_INVALID_ARG, "output index %d out of range", i);
    return value_info(m, m->outputs[i], info);
}
const char *idl_model_input_name(const idl_model *m, int i) {
    return i >= 0 && i < m->n_inputs ? m->values[m->inputs[i]].name : NULL;
}
const char *idl_model_output_name(const idl_model *m, int i) {
    return i >= 0 && i < m->n_outputs ? m->values[m->outputs[i]].name : NULL;
}
int idl_model_n_nodes(const idl_model *m) {
    return m->n_nodes;
}
static const idl__node *node_at(const idl_model *m, int i) {
    return i >= 0 && i < m->n_nodes ? &m->nodes[i] : NULL;
}
const char *idl_model_node_op(const idl_model *m, int i) {
    const idl__node *n = node_at(m, i);
    return n ? n->op_type : NULL;
}
const char *idl_model_node_name(const idl_model *m, int i) {
    const idl__node *n = node_at(m, i);
    return n ? n->name : NULL;
}
int idl_model_node_n_inputs(const idl_model *m, int i) {
    const idl__node *n = node_at(m, i);
    return n ? n->n_in : 0;
}
int idl_model_node_n_outputs(const idl_model *m, int i) {
    const idl__node *n = node_at(m, i);
    return n ? n->n_out : 0;
}
const char *idl_model_node_input(const idl_model *m, int i, int k) {
    const idl__node *n = node_at(m, i);
    if (!n || k < 0 || k >= n->n_in) return NULL;
    return n->in[k] >= 0 ? m->values[n->in[k]].name : "";
}
const char *idl_model_node_output(const idl_model *m, int i, int k) {
    const idl__node *n = node_at(m, i);
    if (!n || k < 0 || k >= n->n_out) return NULL;
    return n->out[k] >= 0 ? m->values[n->out[k]].name : "";
}
int64_t idl_model_opset(const idl_model *m) {
    return m->opset;
}
const char *idl_model_producer(const idl_model *m) {
    return m->producer;
}
int idl_model_n_initializers(const idl_model *m) {
    return m->n_inits;
}
int64_t idl_model_n_parameters(const idl_model *m) {
    return m->n_params;
}
int idl_model_has_tensor(const idl_model *m, const char *name) {
    return idl__model_find(m, name) >= 0;
}

/* ---- parts of a model ---- */
/* Value v of m as a value of the part s (once: newid maps m's ids to s's), borrowing its name and
 * data; its declared shape is dropped (the part runs on the caller's shapes). */
static void sub_add(const idl_model *m, idl_model *s, int *newid, int v) {
    if (newid[v] >= 0) return;
    int id = s->n_values++;
    s->values[id] = m->values[v];
    s->names[id] = m->values[v].name;
    newid[v] = id;
    hash_put(s, id);
    if (s->values[id].kind != IDL__VAL_INIT) {
        s->values[id].ndim = -1;
        return;
    }
    s->n_inits++;
    s->n_params += idl_tensor_numel(s->values[id].init);
}

idl_status idl__model_sub(const idl_model *m, int in_v, int out_v, idl_model **out) {
    *out = NULL;
    if (in_v < 0 || in_v >= m->n_values || out_v < 0 || out_v >= m->n_values || in_v == out_v)
        return idl__error(IDL_ERR_INVALID_ARG, "model part: bad cut values");
    /* the nodes out_v depends on without going through in_v, found backwards in topological
     * order; newid maps the values kept */
    bool *need = idl__calloc((size_t)m->n_values, sizeof(bool));
    bool *take = idl__calloc((size_t)m->n_nodes + 1, sizeof(bool));
    int *newid = idl__malloc(sizeof(int) * (size_t)m->n_values);
    idl_model *s = idl__calloc(1, sizeof *s);
    idl_status st = IDL_OK;
    if (!need || !take || !newid || !s) {
        st = idl__error(IDL_ERR_NOMEM, "out of memory");
        goto done;
    }
    s->borrowed = true;
    need[out_v] = true;
    int n_nodes = 0;
    bool reads = false; /* out_v must be computed from in_v */
    for (int i = m->n_nodes - 1; i >= 0 && !st; i--) {
        const idl__node *n = &m->nodes[i];
        bool used = false;
        for (int k = 0; k < n->n_out; k++)
            used = used || (n->out[k] >= 0 && need[n->out[k]]);
        if (!used) continue;
        take[i] = true;
        n_nodes++;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            reads = reads || v == in_v;
            if (v < 0 || v == in_v) continue;
            if (m->values[v].kind == IDL__VAL_INPUT)
                st = idl__error(IDL_ERR_INVALID_ARG,
                                "model part: '%s' depends on graph input '%s' besides '%s'",
                                m->values[out_v].name, m->values[v].name, m->values[in_v].name);
            need[v] = true;
        }
    }
    if (st) goto done;
    if (!reads) {
        st = idl__error(IDL_ERR_INVALID_ARG, "model part: '%s' does not depend on '%s'",
                        m->values[out_v].name, m->values[in_v].name);
        goto done;
    }
    /* values: the input, the initializers read, every output of the nodes taken */
    int cap = 1;
    for (int i = 0; i < m->n_nodes; i++)
        if (take[i]) cap += m->nodes[i].n_in + m->nodes[i].n_out;
    s->values = idl__calloc((size_t)cap, sizeof *s->values);
    s->nodes = idl__calloc((size_t)n_nodes + 1, sizeof *s->nodes);
    s->inputs = idl__calloc(1, sizeof(int));
    s->outputs = idl__calloc(1, sizeof(int));
    s->hash_cap = 16;
    while (s->hash_cap < cap * 2)
        s->hash_cap *= 2;
    s->hash = idl__malloc(sizeof(int) * (size_t)s->hash_cap);
    s->names = idl__calloc((size_t)cap, sizeof(char *));
    if (!s->values || !s->nodes || !s->inputs || !s->outputs || !s->hash || !s->names) {
        st = idl__error(IDL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < s->hash_cap; i++)
        s->hash[i] = -1;
    for (int v = 0; v < m->n_values; v++)
        newid[v] = -1;
    sub_add(m, s, newid, in_v);
    idl__value *iv = &s->values[0];
    iv->kind = IDL__VAL_INPUT;
    iv->producer = -1;
    iv->dtype = IDL_DT_F32;
    iv->ndim = -1;
    s->inputs[s->n_inputs++] = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        if (!take[i]) continue;
        const idl__node *n = &m->nodes[i];
        idl__node *d = &s->nodes[s->n_nodes];
        *d = *n;
        d->in = idl__calloc((size_t)n->n_in + 1, sizeof(int));
        d->out = idl__calloc((size_t)n->n_out + 1, sizeof(int));
        s->n_nodes++;
        if (!d->in || !d->out) {
            st = idl__error(IDL_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v >= 0) sub_add(m, s, newid, v);
            d->in[k] = v >= 0 ? newid[v] : -1;
        }
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v >= 0) {
                sub_add(m, s, newid, v);
                s->values[newid[v]].producer = s->n_nodes - 1;
            }
            d->out[k] = v >= 0 ? newid[v] : -1;
        }
    }
    s->outputs[s->n_outputs++] = newid[out_v];
    s->opset = m->opset;
done:
    idl__free(need);
    idl__free(take);
    idl__free(newid);
    if (st) {
        idl_model_free(s);
        return st;
    }
    *out = s;
    return IDL_OK;
}
