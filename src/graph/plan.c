/* plan.c — planning and running a forward pass: shape inference for concrete input shapes, folding
 * of everything computable from initializers and shapes alone (Shape/Gather/Concat/Reshape chains,
 * weight transposes), kernel preparation, buffer allocation, then execution in topological order.
 */
#define _DEFAULT_SOURCE
#include "session/session_internal.h"

#include <string.h>
#include <unistd.h>

uint64_t idl__memory_budget(const idl_session_opts *o) {
    if (o->max_memory) return o->max_memory;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0) return (uint64_t)16 << 30;
    return (uint64_t)pages * (uint64_t)psize / 4 * 3;
}

void idl__plan_free(idl__plan *p) {
    if (!p) return;
    for (int i = 0; p->ctx && i < p->n_nodes; i++) {
        idl__op_ctx *c = &p->ctx[i];
        if (c->state && c->node && c->node->op >= 0 && idl__ops[c->node->op]->free_state)
            idl__ops[c->node->op]->free_state(c->state);
    }
    for (int v = 0; v < p->n_values; v++) {
        if (p->vals) idl__tensor_free_data(&p->vals[v]);
        if (p->grads) idl__tensor_free_data(&p->grads[v]);
    }
    idl__free(p->vals);
    idl__free(p->vconst);
    idl__free(p->folded);
    idl__free(p->ctx);
    idl__free(p->ptrs);
    idl__free(p->consts);
    idl__free(p->grads);
    idl__free(p->active);
    idl__free(p->fresh);
    idl__free(p->in_shapes);
    idl__free(p->in_value);
    idl__free(p);
}

bool idl__shape_like_input(const idl_tensor *t) {
    return (t->dtype == IDL_DT_I64 || t->dtype == IDL_DT_I32) && t->ndim <= 1 &&
           idl_tensor_numel(t) <= IDL__SHAPE_INPUT_MAX;
}

bool idl__plan_matches(const idl__plan *p, const idl_tensor *const *inputs, int n) {
    if (!p || p->n_in != n) return false;
    for (int i = 0; i < n; i++) {
        const idl_tensor *a = &p->in_shapes[i], *b = inputs[i];
        if (a->dtype != b->dtype || !idl__same_shape(a, b)) return false;
        /* shape-like inputs are plan-time constants: their values are part of the plan's key */
        if (idl__shape_like_input(b) &&
            memcmp(p->vals[p->in_value[i]].data, b->data, idl__tensor_bytes(b)))
            return false;
    }
    return true;
}

idl_status idl__plan_build(idl_session *s, const idl_tensor *const *inputs, idl__plan **out) {
    const idl_model *m = s->m;
    *out = NULL;
    idl__plan *p = idl__calloc(1, sizeof *p);
    if (!p) return idl__error(IDL_ERR_NOMEM, "out of memory");
    p->n_values = m->n_values;
    p->n_nodes = m->n_nodes;
    p->n_in = m->n_inputs;
    size_t nv = (size_t)m->n_values + 1, nn = (size_t)m->n_nodes + 1;
    size_t n_ptrs = 0;
    for (int i = 0; i < m->n_nodes; i++)
        n_ptrs += 2 * (size_t)(m->nodes[i].n_in + m->nodes[i].n_out);
    p->vals = idl__calloc(nv, sizeof *p->vals);
    p->vconst = idl__calloc(nv, sizeof(bool));
    p->folded = idl__calloc(nn, sizeof(bool));
    p->ctx = idl__calloc(nn, sizeof *p->ctx);
    p->ptrs = idl__calloc(n_ptrs + 1, sizeof(idl_tensor *));
    p->consts = idl__calloc(n_ptrs + 1, sizeof(bool));
    p->grads = idl__calloc(nv, sizeof *p->grads);
    p->active = idl__calloc(nv, sizeof(bool));
    p->fresh = idl__calloc(nv, sizeof(bool));
    p->in_shapes = idl__calloc((size_t)m->n_inputs + 1, sizeof *p->in_shapes);
    p->in_value = idl__calloc((size_t)m->n_inputs + 1, sizeof(int));
    if (!p->vals || !p->vconst || !p->folded || !p->ctx || !p->ptrs || !p->consts || !p->grads ||
        !p->active || !p->fresh || !p->in_shapes || !p->in_value) {
        idl__plan_free(p);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl_status st = IDL_OK;
    for (int v = 0; v < m->n_values; v++) {
        const idl__value *x = &m->values[v];
        if (x->kind == IDL__VAL_INIT) {
            p->vals[v] = *x->init;
            p->vals[v].flags = 0; /* borrowed from the model */
            p->vconst[v] = true;
        }
    }
    for (int i = 0; i < m->n_inputs; i++) {
        int v = m->inputs[i];
        p->in_shapes[i] =
            idl_tensor_wrap(inputs[i]->dtype, inputs[i]->ndim, inputs[i]->shape, NULL);
        p->vals[v] = p->in_shapes[i];
        p->in_value[i] = v;
        if ((st = idl__tensor_alloc_data(&p->vals[v]))) goto fail;
        if (idl__shape_like_input(inputs[i])) {
            memcpy(p->vals[v].data, inputs[i]->data, idl__tensor_bytes(inputs[i]));
            p->vconst[v] = true;
        }
    }
    /* activations are bounded by the session's budget, so that a hostile or mistaken model (an
     * Expand to a huge shape) fails cleanly instead of exhausting the machine */
    uint64_t budget = idl__memory_budget(&s->opts), used = 0;
    for (int i = 0; i < m->n_inputs; i++)
        used += (uint64_t)idl__tensor_bytes(&p->vals[m->inputs[i]]);
    size_t off = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__node *n = &m->nodes[i];
        idl__op_ctx *c = &p->ctx[i];
        c->node = n;
        c->opset = m->opset;
        c->be = &s->be;
        c->din_fresh = p->fresh;
        c->n_in = n->n_in;
        c->n_out = n->n_out;
        c->in = p->ptrs + off;
        off += (size_t)n->n_in;
        c->out = p->ptrs + off;
        off += (size_t)n->n_out;
        c->din = p->ptrs + off;
        off += (size_t)n->n_in;
        c->dout = p->ptrs + off;
        off += (size_t)n->n_out;
        bool *cst = p->consts + (c->in - p->ptrs);
        c->in_const = cst;
        bool all_const = true;
        for (int k = 0; k < n->n_in; k++) {
            c->in[k] = n->in[k] >= 0 ? &p->vals[n->in[k]] : NULL;
            cst[k] = n->in[k] >= 0 ? p->vconst[n->in[k]] : true;
            all_const = all_const && cst[k];
        }
        for (int k = 0; k < n->n_out; k++)
            c->out[k] = n->out[k] >= 0 ? &p->vals[n->out[k]] : NULL;
        const idl__op_def *def = idl__ops[n->op];
        /* no single allocation of prepare may exceed what is left of the budget */
        uint64_t prev_cap = idl__alloc_cap_set(budget > used ? budget - used : 1);
        st = def->prepare(c);
        idl__alloc_cap_set(prev_cap);
        if (st) {
            st = idl__error_prefix(st, "node '%s' (%s, opset %lld): ", n->name, n->op_type,
                                   (long long)m->opset);
            goto fail;
        }
        for (int k = 0; k < n->n_out; k++) {
            if (!c->out[k]) continue;
            if (c->out[k]->dtype == IDL_DT_UNDEFINED) {
                st = idl__error(IDL_ERR_INTERNAL, "node '%s' (%s): output %d type not inferred",
                                n->name, n->op_type, k);
                goto fail;
            }
            uint64_t bytes = (uint64_t)idl__tensor_bytes(c->out[k]);
            if (bytes > budget - used) {
                char shp[128];
                st = idl__error(
                    IDL_ERR_NOMEM,
                    "node '%s' (%s): output '%s' %s of %s needs %llu MiB; the "
                    "plan would exceed the session's memory budget of %llu MiB (max_memory)",
                    n->name, n->op_type, m->values[n->out[k]].name,
                    idl__shape_str(c->out[k]->ndim, c->out[k]->shape, shp, sizeof shp),
                    idl_dtype_name(c->out[k]->dtype), (unsigned long long)(bytes >> 20),
                    (unsigned long long)(budget >> 20));
                goto fail;
            }
            used += bytes;
            if ((st = idl__tensor_alloc_data(c->out[k]))) {
                st = idl__error_prefix(st, "node '%s' (%s): output '%s': ", n->name, n->op_type,
                                       m->values[n->out[k]].name);
                goto fail;
            }
        }
        if ((all_const && n->n_in > 0) || (def->flags & IDL__OP_SHAPE_ONLY)) {
            def->forward(c);
            p->folded[i] = true;
            for (int k = 0; k < n->n_out; k++)
                if (n->out[k] >= 0) p->vconst[n->out[k]] = true;
        }
    }
    *out = p;
    return IDL_OK;
fail:
    idl__plan_free(p);
    return st;
}

static void run_taps(idl_session *s, int v) {
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].value == v && s->taps[t].cb)
            s->taps[t].cb(s->m->values[v].name, &s->plan->vals[v], s->taps[t].user);
}

idl_status idl__plan_forward(idl_session *s) {
    idl__plan *p = s->plan;
    const idl_model *m = s->m;
    if (s->n_taps)
        for (int i = 0; i < m->n_inputs; i++)
            run_taps(s, m->inputs[i]);
    for (int i = 0; i < m->n_nodes; i++) {
        if (p->folded[i]) continue;
        if (s->abort_cb && s->abort_cb(s->abort_user))
            return idl__error(IDL_ERR_ABORTED, "forward aborted");
        idl__op_ctx *c = &p->ctx[i];
        idl__ops[m->nodes[i].op]->forward(c);
        if (s->n_taps)
            for (int k = 0; k < c->n_out; k++)
                if (m->nodes[i].out[k] >= 0) run_taps(s, m->nodes[i].out[k]);
    }
    return IDL_OK;
}
