/* backward.c — the reverse pass. Marks the values that lie both downstream of a wrt tensor and
 * upstream of the objective's output, seeds the output's gradient from the objective, then walks
 * the executed nodes backwards calling each op's vector-Jacobian product, which accumulates into
 * the gradients of its inputs. Only float32 values carry gradients. */
#include "session/session_internal.h"

#include <math.h>
#include <string.h>

/* Seeds dY (zeroed, shape of output y) for sample-wise objectives; fills per-sample values. */
static idl_status seed_objective(idl_session *s, const idl_objective *obj, const idl_tensor *y,
                                 idl_tensor *dy) {
    if (obj->kind == IDL_OBJ_SEED) {
        if (!obj->seed || obj->seed->dtype != IDL_DT_F32 || !idl__same_shape(obj->seed, y)) {
            char a[128], b[128];
            return idl__error(
                IDL_ERR_INVALID_ARG, "seed must be float32 of the output's shape %s, got %s",
                idl__shape_str(y->ndim, y->shape, a, sizeof a),
                obj->seed ? idl__shape_str(obj->seed->ndim, obj->seed->shape, b, sizeof b)
                          : "none");
        }
        memcpy(dy->data, obj->seed->data, idl__tensor_bytes(y));
        int64_t n = y->ndim ? y->shape[0] : 1, per = idl_tensor_numel(y) / (n ? n : 1);
        idl_status st = idl_tensor_new(IDL_DT_F32, 1, &n, &s->obj_values);
        if (st) return st;
        const float *yv = y->data, *sv = obj->seed->data;
        float *ov = s->obj_values->data;
        for (int64_t b = 0; b < n; b++) {
            double acc = 0;
            for (int64_t j = 0; j < per; j++)
                acc += (double)yv[b * per + j] * sv[b * per + j];
            ov[b] = (float)acc;
        }
        return IDL_OK;
    }
    if (y->ndim < 1)
        return idl__error(IDL_ERR_INVALID_ARG, "objective needs an output with a batch axis");
    int64_t n = y->shape[0];
    int64_t ncls = y->ndim >= 2 ? y->shape[y->ndim - 1] : 1;
    if (n == 0 || idl_tensor_numel(y) != n * ncls) {
        char a[128];
        return idl__error(IDL_ERR_INVALID_ARG,
                          "class objectives need an output of shape (N, classes) "
                          "(trailing 1s allowed in between); output is %s; use a seed instead",
                          idl__shape_str(y->ndim, y->shape, a, sizeof a));
    }
    idl_status st = idl_tensor_new(IDL_DT_F32, 1, &n, &s->obj_values);
    if (st) return st;
    s->targets = idl__calloc((size_t)n, sizeof(int64_t));
    if (!s->targets) return idl__error(IDL_ERR_NOMEM, "out of memory");
    s->n_targets = n;
    const float *yv = y->data;
    float *g = dy->data, *ov = s->obj_values->data;
    for (int64_t b = 0; b < n; b++) {
        const float *row = yv + b * ncls;
        int64_t t;
        if (obj->targets) {
            t = obj->targets[b];
            if (t < 0 || t >= ncls)
                return idl__error(IDL_ERR_INVALID_ARG, "target %lld of sample %lld outside 0..%lld",
                                  (long long)t, (long long)b, (long long)ncls - 1);
        } else {
            t = 0;
            for (int64_t j = 1; j < ncls; j++)
                if (row[j] > row[t]) t = j;
        }
        s->targets[b] = t;
        float *grow = g + b * ncls;
        if (obj->kind == IDL_OBJ_LOGIT) {
            grow[t] = 1.0f;
            ov[b] = row[t];
            continue;
        }
        double mx = row[0], sum = 0;
        for (int64_t j = 1; j < ncls; j++)
            mx = row[j] > mx ? row[j] : mx;
        for (int64_t j = 0; j < ncls; j++)
            sum += exp((double)row[j] - mx);
        double pt = exp((double)row[t] - mx) / sum;
        for (int64_t j = 0; j < ncls; j++) {
            double pj = exp((double)row[j] - mx) / sum;
            double d = (j == t ? 1.0 : 0.0) - pj; /* d log p_t / d y_j */
            grow[j] = (float)(obj->kind == IDL_OBJ_PROBABILITY ? pt * d : d);
        }
        ov[b] = (float)(obj->kind == IDL_OBJ_PROBABILITY ? pt : log(pt));
    }
    return IDL_OK;
}

/* The gradient buffer of value v, allocated on first need and kept with the plan; zeroed only when
 * `zero` (the reverse pass zeroes the others lazily, see zero_grad). */
static idl_status ensure_grad(idl__plan *p, int v, bool zero) {
    idl_tensor *g = &p->grads[v];
    if (!(g->flags & IDL_TENSOR_OWNED)) {
        *g = idl_tensor_wrap(IDL_DT_F32, p->vals[v].ndim, p->vals[v].shape, NULL);
        idl_status st = idl__tensor_alloc_data(g);
        if (st) return st;
    }
    if (zero) memset(g->data, 0, idl__tensor_bytes(g));
    return IDL_OK;
}

/* ---- the gradient pool: an intermediate value's gradient lives from its first contribution to
 * its producer's backward, so a buffer serves many values in turn (best fit by size); the buffers
 * stay with the plan from one backward to the next. Gradients the API returns (wrt) and the
 * objective's are owned by their values instead. */

static idl_status pool_take(idl__plan *p, idl_tensor *g) {
    size_t bytes = idl__tensor_bytes(g);
    int best = -1;
    for (int i = 0; i < p->gpool_n; i++)
        if (!p->gpool[i].used && p->gpool[i].size >= bytes &&
            (best < 0 || p->gpool[i].size < p->gpool[best].size))
            best = i;
    if (best < 0) {
        if (p->gpool_n == p->gpool_cap) {
            int cap = p->gpool_cap ? 2 * p->gpool_cap : 32;
            struct idl__gbuf *b = idl__calloc((size_t)cap, sizeof *b);
            if (!b) return idl__error(IDL_ERR_NOMEM, "out of memory");
            if (p->gpool_n) memcpy(b, p->gpool, (size_t)p->gpool_n * sizeof *b);
            idl__free(p->gpool);
            p->gpool = b;
            p->gpool_cap = cap;
        }
        void *buf = idl__aligned_alloc_raw(bytes ? bytes : 64); /* zeroed lazily */
        if (!buf) return idl__error(IDL_ERR_NOMEM, "cannot allocate %zu bytes (gradient)", bytes);
        best = p->gpool_n++;
        p->gpool[best] = (struct idl__gbuf){ buf, bytes, false };
    }
    p->gpool[best].used = true;
    g->data = p->gpool[best].buf;
    return IDL_OK;
}

/* Gives value v's lent gradient buffer back (owned buffers stay). */
static void pool_give(idl__plan *p, int v) {
    idl_tensor *g = &p->grads[v];
    if (!g->data || (g->flags & IDL_TENSOR_OWNED)) return;
    for (int i = 0; i < p->gpool_n; i++)
        if (p->gpool[i].buf == g->data) p->gpool[i].used = false;
    g->data = NULL;
}

/* Node n's backward has run (or had nothing to do): its outputs' gradients are read. */
static void release_outputs(idl__plan *p, const idl__node *n) {
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0) pool_give(p, n->out[k]);
}

/* Zeroes the gradient of v before its first contribution of this pass (once). */
static void zero_grad(idl__plan *p, bool *zeroed, int v) {
    if (zeroed[v]) return;
    memset(p->grads[v].data, 0, idl__tensor_bytes(&p->grads[v]));
    zeroed[v] = true;
}

/* IDL__OP_BWD_INPLACE (op.h): the first input k of node n whose gradient this node alone
 * contributes, not yet taken, of output 0's shape and layout, takes output 0's lent gradient
 * buffer (output 0's gradient is read only by this node's backward, its producer); dout[0] then
 * points at it through input k's gradient. */
static void take_dout(idl__plan *p, const idl__node *n, idl__op_ctx *c, const bool *plain_in,
                      bool *zeroed) {
    int y = n->out[0];
    idl_tensor *gy = &p->grads[y];
    if (!gy->data || (gy->flags & IDL_TENSOR_OWNED)) return;
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v < 0 || v == y || !p->active[v] || plain_in[k] || !p->fresh[v] || p->grads[v].data ||
            p->vals[v].dtype != IDL_DT_F32 || !idl__same_shape(&p->vals[v], &p->vals[y]) ||
            (p->lay[v] == NULL) != (p->lay[y] == NULL) ||
            (p->lay[v] && !dnnl_memory_desc_equal(&p->lay[v]->md, &p->lay[y]->md)))
            continue;
        p->grads[v].data = gy->data;
        gy->data = NULL;
        zeroed[v] = true;
        c->dout[0] = &p->grads[v];
        return;
    }
}

static void relu_rule_backward(idl__op_ctx *c, int rule) {
    const float *y = c->out[0]->data, *dy = c->dout[0]->data;
    float *dx = c->din[0]->data;
    int64_t n = idl_tensor_numel(c->out[0]);
#pragma omp parallel for if (n > IDL_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = dy[i] > 0 ? dy[i] : 0.0f;
        dx[i] += rule == IDL__RELU_DECONV || y[i] > 0 ? g : 0.0f;
    }
}

void idl__session_set_relu_rule(idl_session *s, int rule) {
    s->relu_rule = rule;
}

idl_status idl__backward(idl_session *s, const idl_objective *obj, const int *wrt, int n_wrt) {
    const idl_model *m = s->m;
    idl__plan *p = s->plan;
    int nv = m->n_values, nn = m->n_nodes;
    if (obj->output < 0 || obj->output >= m->n_outputs)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "objective output %d out of range (model has %d outputs)", obj->output,
                          m->n_outputs);
    int yv = m->outputs[obj->output];
    if (p->vals[yv].dtype != IDL_DT_F32)
        return idl__error(IDL_ERR_INVALID_ARG, "output '%s' is %s, not float32", m->values[yv].name,
                          idl_dtype_name(p->vals[yv].dtype));
    /* forward reachability from wrt */
    bool *down = idl__calloc((size_t)nv + 1, sizeof(bool));
    bool *up = idl__calloc((size_t)nv + 1, sizeof(bool));
    if (!down || !up) {
        idl__free(down);
        idl__free(up);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl_status st = IDL_OK;
    for (int i = 0; i < n_wrt; i++)
        down[wrt[i]] = true;
    for (int i = 0; i < nn; i++) {
        const idl__node *n = &m->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_in; k++)
            any = any || (n->in[k] >= 0 && down[n->in[k]]);
        if (!any) continue;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && p->vals[n->out[k]].dtype == IDL_DT_F32) down[n->out[k]] = true;
    }
    up[yv] = true;
    for (int i = nn - 1; i >= 0; i--) {
        const idl__node *n = &m->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_out; k++)
            any = any || (n->out[k] >= 0 && up[n->out[k]]);
        if (!any) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && p->vals[n->in[k]].dtype == IDL_DT_F32) up[n->in[k]] = true;
    }
    for (int v = 0; v < nv; v++)
        p->active[v] = down[v] && up[v];
    idl__free(down);
    idl__free(up);
    /* buffers of the path are zeroed lazily, before their first contribution, and not at all when
     * their only contributor overwrites them (IDL__OP_BWD_WRITES_FRESH): most of a CNN's. The wrt
     * tensors' and the objective's gradients are owned; the others are lent by the pool */
    for (int i = 0; i < p->gpool_n; i++)
        p->gpool[i].used = false;
    for (int v = 0; v < nv; v++) {
        idl_tensor *g = &p->grads[v];
        if (g->data && !(g->flags & IDL_TENSOR_OWNED)) g->data = NULL; /* lent last time */
        if (!g->data) *g = idl_tensor_wrap(IDL_DT_F32, p->vals[v].ndim, p->vals[v].shape, NULL);
    }
    if (p->active[yv] && (st = ensure_grad(p, yv, true))) return st;
    for (int i = 0; i < n_wrt; i++)
        if ((st = ensure_grad(p, wrt[i], !p->active[wrt[i]]))) return st; /* inactive: zero */
    if (!p->active[yv]) return IDL_OK; /* objective does not depend on any wrt tensor: zeros */

    if ((st = seed_objective(s, obj, &p->vals[yv], &p->grads[yv]))) return st;
    /* values with exactly one contributing (node, input slot): that kernel may overwrite */
    int *contrib = idl__calloc((size_t)nv + 1, sizeof(int));
    bool *zeroed = idl__calloc(2 * ((size_t)nv + 1), sizeof(bool));
    if (!contrib || !zeroed) {
        idl__free(contrib);
        idl__free(zeroed);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    bool *gzeroed = zeroed + nv + 1; /* the same for the plain gradients of blocked values */
    zeroed[yv] = true;
    for (int i = 0; i < nn; i++) {
        const idl__node *n = &m->nodes[i];
        bool any_out = false;
        for (int k = 0; k < n->n_out; k++)
            any_out = any_out || (n->out[k] >= 0 && p->active[n->out[k]]);
        for (int k = 0; any_out && k < n->n_in; k++)
            if (n->in[k] >= 0 && p->active[n->in[k]]) contrib[n->in[k]]++;
    }
    for (int v = 0; v < nv; v++)
        p->fresh[v] = p->active[v] && contrib[v] == 1 && v != yv;
    idl__free(contrib);
    for (int i = nn - 1; !st && i >= 0; i--) {
        const idl__node *n = &m->nodes[i];
        idl__op_ctx *c = &p->ctx[i];
        bool any_out = false, any_in = false;
        /* every consumer of node i's outputs has run: add the plain consumers' gradients of a
         * blocked output into its gradient */
        for (int k = 0; k < n->n_out && !st; k++) {
            int v = n->out[k];
            if (v < 0 || !p->lay[v] || !gzeroed[v]) continue;
            if (!p->grads[v].data && (st = pool_take(p, &p->grads[v]))) break;
            st = idl__lay_copy(s->be, p->lay[v], p->grads[v].data, &p->lay[v]->gplain,
                               zeroed[v] ? 2 : 0);
            zeroed[v] = true;
        }
        if (st) break;
        for (int k = 0; k < n->n_out && !st; k++) {
            bool a = n->out[k] >= 0 && p->active[n->out[k]];
            c->dout[k] = a ? &p->grads[n->out[k]] : NULL;
            any_out = any_out || a;
            if (a && !c->dout[k]->data && !(st = pool_take(p, c->dout[k]))) /* no contribution */
                zero_grad(p, zeroed, n->out[k]);
        }
        if (st) break;
        const bool *plain_in = p->slot_plain + (c->in - p->ptrs);
        const idl__op_def *def = idl__ops[n->op];
        bool rule = s->relu_rule != IDL__RELU_DEFAULT && !strcmp(def->name, "Relu");
        if ((def->flags & IDL__OP_BWD_INPLACE) && !rule && any_out && c->dout[0])
            take_dout(p, n, c, plain_in, zeroed);
        for (int k = 0; k < n->n_in; k++) {
            /* an input that appears twice gets one buffer; kernels accumulate, so both add up */
            bool a = n->in[k] >= 0 && p->active[n->in[k]];
            c->din[k] = !a ? NULL : plain_in[k] ? &p->lay[n->in[k]]->gplain : &p->grads[n->in[k]];
            if (a && !c->din[k]->data && any_out)
                st = plain_in[k] ? idl__tensor_alloc_data(c->din[k]) : pool_take(p, c->din[k]);
            if (st) break;
            any_in = any_in || a;
        }
        if (st) break;
        if (!any_out || !any_in) {
            release_outputs(p, n);
            continue;
        }
        if (s->abort_cb && s->abort_cb(s->abort_user)) {
            st = idl__error(IDL_ERR_ABORTED, "backward aborted");
            break;
        }
        bool writes = (def->flags & IDL__OP_BWD_WRITES_FRESH) && !rule;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (!c->din[k]) continue;
            bool *z = plain_in[k] ? gzeroed : zeroed;
            if (writes && p->fresh[v])
                z[v] = true; /* the kernel writes it whole */
            else if (!z[v]) {
                memset(c->din[k]->data, 0, idl__tensor_bytes(c->din[k]));
                z[v] = true;
            }
        }
        if (rule) {
            relu_rule_backward(c, s->relu_rule);
            release_outputs(p, n);
            continue;
        }
        if (!def->backward) {
            st = idl__error(IDL_ERR_UNSUPPORTED,
                            "node '%s' (%s) lies on the gradient path but %s has no gradient",
                            n->name, n->op_type, n->op_type);
            break;
        }
        if ((st = def->backward(c))) {
            st = idl__error_prefix(st, "node '%s' (%s) backward: ", n->name, n->op_type);
            break;
        }
        release_outputs(p, n);
    }
    /* a wrt tensor of the path that nothing contributed to (a piecewise-constant op) reads as
     * zero; the lent buffers are all back */
    for (int i = 0; !st && i < n_wrt; i++)
        if (p->active[wrt[i]]) zero_grad(p, zeroed, wrt[i]);
    for (int v = 0; v < nv; v++)
        pool_give(p, v);
    idl__free(zeroed);
    return st;
}
