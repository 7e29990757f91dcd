/* plan.c — planning and running a forward pass: shape inference for concrete input shapes, folding
 * of everything computable from initializers and shapes alone (Shape/Gather/Concat/Reshape chains,
 * weight transposes), kernel preparation, buffer allocation, then execution in topological order.
 */
#define _DEFAULT_SOURCE
#include "session/session_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t idl__memory_budget(const idl_session_opts *o) {
    if (o->max_memory) return o->max_memory;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0) return (uint64_t)16 << 30;
    return (uint64_t)pages * (uint64_t)psize / 4 * 3;
}

static void lay_free(idl__vlayout *L) {
    if (!L) return;
    dnnl_primitive_t pr[3] = { L->to_plain, L->from_plain, L->add_from_plain };
    for (int i = 0; i < 3; i++)
        if (pr[i]) dnnl_primitive_destroy(pr[i]);
    if (L->mem_b) dnnl_memory_destroy(L->mem_b);
    if (L->mem_p) dnnl_memory_destroy(L->mem_p);
    idl__tensor_free_data(&L->plain);
    idl__tensor_free_data(&L->gplain);
    idl__free(L);
}

static idl_status reorder_new(dnnl_primitive_t *r, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, dnnl_engine_t eng, bool add) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    idl_status st = IDL_OK;
    if (add) {
        st = idl__dnnl_check(dnnl_post_ops_create(&po), "post_ops_create");
        if (!st) st = idl__dnnl_check(dnnl_post_ops_append_sum(po, 1.0f), "post_ops_append_sum");
        if (!st) st = idl__dnnl_check(dnnl_primitive_attr_create(&attr), "primitive_attr_create");
        if (!st) st = idl__dnnl_check(dnnl_primitive_attr_set_post_ops(attr, po), "set_post_ops");
    }
    dnnl_primitive_desc_t pd = NULL;
    if (!st)
        st = idl__dnnl_check(dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, attr),
                             "layout reorder");
    if (!st) st = idl__dnnl_check(dnnl_primitive_create(r, pd), "layout reorder primitive");
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    return st;
}

/* The blocked layout md for value t: its plain views and the reorders between the two. */
static idl_status lay_new(idl__backend *be, const idl_tensor *t, const dnnl_memory_desc_t *md,
                          idl__vlayout **out) {
    *out = NULL;
    if (t->dtype != IDL_DT_F32 || dnnl_memory_desc_get_size(md) != idl__tensor_bytes(t))
        return idl__error(IDL_ERR_INTERNAL, "blocked layout of another size than the value");
    idl__vlayout *L = idl__calloc(1, sizeof *L);
    if (!L) return idl__error(IDL_ERR_NOMEM, "out of memory");
    L->md = *md;
    L->plain = idl_tensor_wrap(IDL_DT_F32, t->ndim, t->shape, NULL);
    L->gplain = L->plain;
    dnnl_memory_desc_t pmd;
    idl_status st = idl__dnnl_check(idl__dnnl_plain_md(&pmd, t->ndim, t->shape), "plain md");
    if (!st)
        st = idl__dnnl_check(dnnl_memory_create(&L->mem_b, md, be->engine, DNNL_MEMORY_NONE),
                             "memory_create");
    if (!st)
        st = idl__dnnl_check(dnnl_memory_create(&L->mem_p, &pmd, be->engine, DNNL_MEMORY_NONE),
                             "memory_create");
    if (!st) st = reorder_new(&L->to_plain, md, &pmd, be->engine, false);
    if (!st) st = reorder_new(&L->from_plain, &pmd, md, be->engine, false);
    if (!st) st = reorder_new(&L->add_from_plain, &pmd, md, be->engine, true);
    if (st) {
        lay_free(L);
        return st;
    }
    *out = L;
    return IDL_OK;
}

idl_status idl__lay_copy(idl__backend *be, idl__vlayout *L, void *blocked, idl_tensor *plain,
                         int to) {
    if (!plain->data) {
        idl_status st = idl__tensor_alloc_data(plain);
        if (st) return st;
    }
    if (dnnl_memory_set_data_handle(L->mem_b, blocked) != dnnl_success ||
        dnnl_memory_set_data_handle(L->mem_p, plain->data) != dnnl_success)
        return idl__error(IDL_ERR_BACKEND, "oneDNN set_data_handle failed");
    dnnl_primitive_t r = to == 1 ? L->to_plain : to == 0 ? L->from_plain : L->add_from_plain;
    dnnl_exec_arg_t a[2] = { { DNNL_ARG_FROM, to == 1 ? L->mem_b : L->mem_p },
                             { DNNL_ARG_TO, to == 1 ? L->mem_p : L->mem_b } };
    idl__dnnl_exec(be, r, 2, a);
    return IDL_OK;
}

/* The value shown plain (a copy made on demand for a blocked one), whether or not it is kept. */
static const idl_tensor *plain_value(idl_session *s, int v) {
    idl__plan *p = s->plan;
    idl__vlayout *L = p->lay[v];
    if (!L) return &p->vals[v];
    if (!L->plain_ok) {
        if (idl__lay_copy(s->be, L, p->vals[v].data, &L->plain, 1)) return NULL;
        L->plain_ok = true;
    }
    return &L->plain;
}

const idl_tensor *idl__plan_value(idl_session *s, int v) {
    idl__plan *p = s->plan;
    if (p->in_arena && p->in_arena[v]) {
        idl__error(IDL_ERR_INVALID_ARG,
                   "tensor '%s' is not kept by a %s pass (session option %s, or an explanation "
                   "method's passes): only graph inputs, outputs and constants can be read; read "
                   "it in a tap",
                   s->m->values[v].name, p->kind == IDL__PLAN_FWD ? "forward-only" : "lean",
                   p->kind == IDL__PLAN_FWD ? "forward_only" : "save_for_backward");
        return NULL;
    }
    return plain_value(s, v);
}

const idl_tensor *idl__plan_grad(idl_session *s, int v) {
    idl__plan *p = s->plan;
    idl__vlayout *L = p->lay[v];
    if (!L) return &p->grads[v];
    if (idl__lay_copy(s->be, L, p->grads[v].data, &L->gplain, 1)) return NULL;
    return &L->gplain;
}

void idl__plan_free(idl__plan *p) {
    if (!p) return;
    idl__rowfuse_free(p);
    for (int i = 0; p->ctx && i < p->n_nodes; i++) {
        idl__op_ctx *c = &p->ctx[i];
        if (c->state && c->node && c->node->op >= 0 && idl__ops[c->node->op]->free_state)
            idl__ops[c->node->op]->free_state(c->state);
    }
    for (int v = 0; v < p->n_values; v++) {
        if (p->vals) idl__tensor_free_data(&p->vals[v]);
        if (p->grads) idl__tensor_free_data(&p->grads[v]);
        if (p->lay) lay_free(p->lay[v]);
    }
    for (int i = 0; i < p->gpool_n; i++)
        idl__aligned_free(p->gpool[i].buf);
    idl__free(p->gpool);
    idl__free(p->down_node);
    idl__aligned_free(p->arena);
    idl__free(p->in_arena);
    idl__free(p->alias_of);
    idl__free(p->skip);
    idl__free(p->lay);
    idl__free(p->mds);
    idl__free(p->slot_plain);
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

/* ---- forward-only and lean plans: the arena ----
 * A value produced by a node that runs (not folded), neither a graph input nor a graph output nor
 * kept (keep[v]: a lean plan's values that a backward reads), is needed from its producer until
 * its last reader. Values whose intervals [producer, last reader] (node indices, the order nodes
 * run in) do not overlap may share memory. Placement is greedy by size: largest first, each at the
 * lowest 64-byte-aligned offset where it overlaps no placed value that lives at the same time.
 * off[v] is the value's offset, SIZE_MAX outside the arena. */
typedef struct arena_item {
    int v, def, last;
    size_t size, off;
} arena_item;

static int by_size_desc(const void *a, const void *b) {
    const arena_item *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->def - y->def;
}
static int by_off(const void *a, const void *b) {
    const arena_item *x = *(const arena_item *const *)a, *y = *(const arena_item *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static idl_status arena_layout(const idl_model *m, const idl__plan *p, const bool *keep,
                               size_t *off, size_t *total) {
    int nv = m->n_values;
    *total = 0;
    int *def = idl__malloc(sizeof(int) * (size_t)(2 * nv + 1));
    arena_item *it = idl__malloc(sizeof *it * (size_t)(nv + 1));
    arena_item **live = idl__malloc(sizeof *live * (size_t)(nv + 1));
    if (!def || !it || !live) {
        idl__free(def);
        idl__free(it);
        idl__free(live);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    int *last = def + nv;
    for (int v = 0; v < nv; v++) {
        def[v] = last[v] = -1;
        off[v] = SIZE_MAX;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        if (p->folded[i]) continue;
        const idl__node *n = &m->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) last[n->in[k]] = i;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && def[n->out[k]] < 0) def[n->out[k]] = i;
    }
    for (int v = 0; p->rf_tmp && v < nv; v++) { /* element-wise regions (rowfuse.c) */
        if (p->rf_tmp[v]) def[v] = -1;
        if (p->rf_last[v] > last[v]) last[v] = p->rf_last[v];
    }
    for (int i = 0; i < m->n_outputs; i++)
        def[m->outputs[i]] = -1;                  /* graph outputs are kept */
    for (int v = 0; p->alias_of && v < nv; v++) { /* a fused value lives in its alias */
        int y = p->alias_of[v];
        if (y < 0) continue;
        if (def[y] >= 0 && def[v] >= 0 && def[v] < def[y]) def[y] = def[v];
        def[v] = -1;
    }
    int n_it = 0;
    for (int v = 0; v < nv; v++) {
        if (def[v] < 0 || p->vconst[v] || m->values[v].kind == IDL__VAL_INIT || (keep && keep[v]))
            continue;
        size_t b = idl__tensor_bytes(&p->vals[v]);
        it[n_it++] =
            (arena_item){ v, def[v], last[v] > def[v] ? last[v] : def[v], (b + 63) / 64 * 64, 0 };
    }
    qsort(it, (size_t)n_it, sizeof *it, by_size_desc);
    for (int a = 0; a < n_it; a++) {
        int n_live = 0;
        for (int b = 0; b < a; b++)
            if (it[b].def <= it[a].last && it[a].def <= it[b].last) live[n_live++] = &it[b];
        qsort(live, (size_t)n_live, sizeof *live, by_off);
        size_t at = 0;
        for (int b = 0; b < n_live; b++) {
            if (at + it[a].size <= live[b]->off) break;
            size_t end = live[b]->off + live[b]->size;
            at = end > at ? end : at;
        }
        it[a].off = at;
        off[it[a].v] = at;
        if (at + it[a].size > *total) *total = at + it[a].size;
    }
    idl__free(def);
    idl__free(it);
    idl__free(live);
    return IDL_OK;
}

void idl__plan_poison_arena(idl__plan *p) {
    if (p && p->arena) memset(p->arena, 0xff, p->arena_bytes); /* all-ones bits: a NaN */
}

/* Lean plans: keep[v] is set for the values that the backward of a node that runs reads (op.h
 * bwd_reads; all of a node's values when its op does not say). */
static void lean_keep(const idl_model *m, const idl__plan *p, bool *keep) {
    for (int v = 0; v < m->n_values; v++)
        keep[v] = false;
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__node *n = &m->nodes[i];
        const idl__op_def *def = idl__ops[n->op];
        if (p->folded[i] || !def->backward) continue;
        unsigned r = def->bwd_reads ? def->bwd_reads(&p->ctx[i]) : ~0u;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && (k >= 16 || (r & IDL__BWD_IN(k)))) keep[n->in[k]] = true;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && (k >= 16 || (r & IDL__BWD_OUT(k)))) keep[n->out[k]] = true;
    }
}

uint64_t idl__plan_kind_bytes(const idl_model *m, const idl__plan *p, int kind) {
    size_t nv = (size_t)m->n_values + 1, total = 0;
    if (kind == IDL__PLAN_FULL) {
        for (int v = 0; v < m->n_values; v++)
            if (m->values[v].kind != IDL__VAL_INIT && !p->vconst[v])
                total += idl__tensor_bytes(&p->vals[v]);
        return total;
    }
    size_t *off = idl__malloc(sizeof(size_t) * nv);
    bool *keep = kind == IDL__PLAN_LEAN ? idl__malloc(sizeof(bool) * nv) : NULL;
    if (off && (keep || kind != IDL__PLAN_LEAN)) {
        if (keep) lean_keep(m, p, keep);
        if (arena_layout(m, p, keep, off, &total)) total = 0;
        for (int v = 0; keep && v < m->n_values; v++)
            if (keep[v] && off[v] == SIZE_MAX && !p->vconst[v] &&
                m->values[v].kind != IDL__VAL_INIT)
                total += idl__tensor_bytes(&p->vals[v]);
    }
    idl__free(off);
    idl__free(keep);
    return total;
}

/* Places the intermediate values of a forward-only or lean plan p (their data not yet allocated):
 * a lean plan's values that a backward reads get buffers of their own, the others share one
 * arena; `used` bytes of the budget are already taken. */
static idl_status arena_alloc(const idl_model *m, idl__plan *p, uint64_t budget, uint64_t used) {
    size_t nv = (size_t)m->n_values + 1, total = 0;
    size_t *off = idl__malloc(sizeof(size_t) * nv);
    bool *keep = p->kind == IDL__PLAN_LEAN ? idl__malloc(sizeof(bool) * nv) : NULL;
    p->in_arena = idl__calloc(nv, sizeof(bool));
    if (!off || !p->in_arena || (p->kind == IDL__PLAN_LEAN && !keep)) {
        idl__free(off);
        idl__free(keep);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl_status st = IDL_OK;
    uint64_t kept = 0; /* for the log: the lean plan's values kept for the backward */
    if (keep) {
        lean_keep(m, p, keep);
        for (int i = 0; i < m->n_nodes && !st; i++) {
            const idl__node *n = &m->nodes[i];
            for (int k = 0; k < n->n_out && !st && !p->folded[i]; k++) {
                int v = n->out[k];
                if (v < 0 || !keep[v] || p->vals[v].data || p->alias_of[v] >= 0) continue;
                uint64_t b = (uint64_t)idl__tensor_bytes(&p->vals[v]);
                if (b > budget - used)
                    st = idl__error(IDL_ERR_NOMEM,
                                    "node '%s' (%s): output '%s' needs %llu MiB; the lean plan "
                                    "would exceed the session's memory budget of %llu MiB "
                                    "(max_memory)",
                                    n->name, n->op_type, m->values[v].name,
                                    (unsigned long long)(b >> 20),
                                    (unsigned long long)(budget >> 20));
                else if ((st = idl__tensor_alloc_data(&p->vals[v])))
                    st = idl__error_prefix(st, "node '%s' (%s): output '%s': ", n->name, n->op_type,
                                           m->values[v].name);
                used += b;
                kept += b;
            }
        }
    }
    if (!st) st = arena_layout(m, p, keep, off, &total);
    if (!st && total > budget - used)
        st = idl__error(IDL_ERR_NOMEM,
                        "the %s plan's activations need %llu MiB; the session's memory budget "
                        "is %llu MiB (max_memory)",
                        keep ? "lean" : "forward-only", (unsigned long long)((total + used) >> 20),
                        (unsigned long long)(budget >> 20));
    if (!st && !(p->arena = idl__aligned_alloc(total ? total : 64)))
        st = idl__error(IDL_ERR_NOMEM, "out of memory (an arena of %zu bytes)", total);
    p->arena_bytes = p->arena ? total : 0;
    uint64_t all = 0; /* for the log: the values' own sizes, and the activations fused */
    int fused = 0;
    for (int v = 0; !st && v < m->n_values; v++) {
        if (off[v] == SIZE_MAX) continue;
        p->vals[v].data = (char *)p->arena + off[v];
        p->vals[v].flags &= ~IDL_TENSOR_OWNED;
        p->in_arena[v] = true;
        all += idl__tensor_bytes(&p->vals[v]);
    }
    for (int v = 0; !st && p->rf_tmp && v < m->n_values; v++)
        p->in_arena[v] = p->in_arena[v] || p->rf_tmp[v]; /* in a region's scratch */
    for (int v = 0; !st && v < m->n_values; v++) {       /* after: an alias may lie in the arena */
        if (p->alias_of[v] < 0) continue;
        p->vals[v].data = p->vals[p->alias_of[v]].data;
        p->vals[v].flags &= ~IDL_TENSOR_OWNED;
        p->in_arena[v] = true;
        fused++;
    }
    p->bytes = used + total;
    if (!st)
        idl__log(IDL_LOG_DEBUG,
                 "%s plan: %llu KiB of values kept for the backward; intermediate values of %llu "
                 "KiB in an arena of %llu KiB; %d values written straight into their reader's "
                 "output (activations fused into a Conv or Add, copies aliased away)",
                 keep ? "lean" : "forward-only", (unsigned long long)(kept >> 10),
                 (unsigned long long)(all >> 10), (unsigned long long)(total >> 10), fused);
    idl__free(off);
    idl__free(keep);
    return st;
}

/* Node n clamps its input 0 to [lo, hi]: a Relu, or a Clip whose bounds are initializers or
 * attributes (what a fused activation can take). */
static bool act_bounds(const idl_model *m, const idl__node *n, float *lo, float *hi) {
    *lo = 0.f;
    *hi = INFINITY;
    if (n->n_out < 1 || n->out[0] < 0) return false;
    if (!strcmp(n->op_type, "Relu")) return true;
    if (strcmp(n->op_type, "Clip")) return false;
    *lo = -INFINITY;
    if (m->opset < 11) {
        *lo = idl__attr_float(n, "min", -INFINITY);
        *hi = idl__attr_float(n, "max", INFINITY);
        return true;
    }
    for (int k = 1; k < n->n_in && k < 3; k++) {
        if (n->in[k] < 0) continue;
        const idl__value *b = &m->values[n->in[k]];
        if (b->kind != IDL__VAL_INIT || b->init->dtype != IDL_DT_F32 ||
            idl_tensor_numel(b->init) != 1)
            return false;
        *(k == 1 ? lo : hi) = *(const float *)b->init->data;
    }
    return true;
}

/* Conv+activation fusion in forward-only and lean plans. act_reader[v] = the Relu or Clip node
 * that is value v's only reader (as its input 0, see act_bounds), when v is neither a graph output
 * nor tapped (a tap must see the value before the activation); -1 otherwise. relu_only (lean
 * plans): Relu nodes only, whose backward reads their output (x > 0 where y > 0; Clip's reads its
 * input, with inclusive bounds that the clamped value would always meet). */
static void fusable_acts(const idl_session *s, const bool *is_out, bool relu_only,
                         int *act_reader) {
    const idl_model *m = s->m;
    int *readers = act_reader; /* first: reader counts */
    for (int v = 0; v < m->n_values; v++)
        readers[v] = 0;
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0) readers[m->nodes[i].in[k]]++;
    for (int v = 0; v < m->n_values; v++)
        readers[v] = readers[v] == 1 && !is_out[v] ? -2 : -1; /* -2: one reader, to be found */
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].cb) act_reader[s->taps[t].value] = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__node *n = &m->nodes[i];
        float lo, hi;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || act_reader[v] != -2) continue;
            bool ok = k == 0 && act_bounds(m, n, &lo, &hi);
            if (ok && relu_only) ok = !strcmp(n->op_type, "Relu");
            act_reader[v] = ok ? i : -1;
        }
    }
    for (int v = 0; v < m->n_values; v++)
        if (act_reader[v] == -2) act_reader[v] = -1;
}

/* After every node is prepared: each Conv that applied its activation (fused_act_done) writes
 * straight into the activation's output, whose node is then skipped, when both values are in the
 * same layout; otherwise the activation runs again on the already clamped values (a no-op in
 * value). */
static void fuse_acts(const idl_model *m, idl__plan *p, const int *act_reader) {
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__op_ctx *c = &p->ctx[i];
        if (!c->fused_act_done || p->folded[i]) continue;
        int x = m->nodes[i].out[0], j = act_reader[x], y = m->nodes[j].out[0];
        const idl__vlayout *lx = p->lay[x], *ly = p->lay[y];
        if ((lx == NULL) != (ly == NULL) || (lx && !dnnl_memory_desc_equal(&lx->md, &ly->md)) ||
            p->vals[x].dtype != p->vals[y].dtype ||
            idl__tensor_bytes(&p->vals[x]) != idl__tensor_bytes(&p->vals[y]) || p->folded[j])
            continue;
        p->alias_of[x] = y;
        p->skip[j] = true;
    }
}

/* Forward-only plans: a Reshape, Flatten, Squeeze or Unsqueeze (a plain copy) whose input is
 * read by it alone has that input's producer write straight into its output, and is skipped,
 * when both values are plain, of one size, and neither is a graph input, tapped, or aliased
 * already (vit_b_16: its 62 Reshapes copied 3% of a forward at batch 8). The bytes are those the
 * copy would have made. */
static void alias_copies(const idl_session *s, idl__plan *p, const bool *is_out) {
    const idl_model *m = s->m;
    int nv = m->n_values;
    int *readers = idl__calloc((size_t)nv + 1, sizeof(int));
    bool *target = idl__calloc((size_t)nv + 1, sizeof(bool));
    if (!readers || !target) { /* an optimisation: without memory, the copies run */
        idl__free(readers);
        idl__free(target);
        return;
    }
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; !p->folded[i] && k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0) readers[m->nodes[i].in[k]]++;
    for (int v = 0; v < nv; v++)
        if (p->alias_of[v] >= 0) target[p->alias_of[v]] = true;
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].cb) readers[s->taps[t].value] = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__node *n = &m->nodes[i];
        const char *op = n->op_type;
        if (p->folded[i] || p->skip[i] || n->n_in < 1 || n->in[0] < 0 || n->out[0] < 0 ||
            (strcmp(op, "Reshape") && strcmp(op, "Flatten") && strcmp(op, "Squeeze") &&
             strcmp(op, "Unsqueeze")))
            continue;
        int x = n->in[0], y = n->out[0];
        int pr = m->values[x].producer;
        if (readers[x] != 1 || readers[y] < 0 || is_out[x] || p->vconst[x] || pr < 0 ||
            p->folded[pr] || p->skip[pr] || m->values[x].kind != IDL__VAL_NODE || p->lay[x] ||
            p->lay[y] || p->alias_of[x] >= 0 || p->alias_of[y] >= 0 || target[x] || target[y] ||
            p->vals[x].dtype != p->vals[y].dtype ||
            idl__tensor_bytes(&p->vals[x]) != idl__tensor_bytes(&p->vals[y]))
            continue;
        p->alias_of[x] = y;
        p->skip[i] = true;
        target[y] = true;
    }
    idl__free(readers);
    idl__free(target);
}

bool idl__shape_like_input(const idl_tensor *t) {
    return (t->dtype == IDL_DT_I64 || t->dtype == IDL_DT_I32) && t->ndim <= 1 &&
           idl_tensor_numel(t) <= IDL__SHAPE_INPUT_MAX;
}

bool idl__plan_matches(const idl__plan *p, const idl_tensor *const *inputs, int n, int kind) {
    if (!p || p->n_in != n || p->kind != kind) return false;
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

idl_status idl__plan_build(idl_session *s, const idl_tensor *const *inputs, int kind,
                           uint64_t budget, idl__plan **out) {
    const idl_model *m = s->m;
    *out = NULL;
    idl__plan *p = idl__calloc(1, sizeof *p);
    if (!p) return idl__error(IDL_ERR_NOMEM, "out of memory");
    p->n_values = m->n_values;
    p->n_nodes = m->n_nodes;
    p->down_from = -1;
    p->n_in = m->n_inputs;
    p->kind = kind;
    bool defer = kind != IDL__PLAN_FULL; /* intermediate values placed after planning */
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
    p->mds = idl__calloc(n_ptrs + 1, sizeof *p->mds);
    p->slot_plain = idl__calloc(n_ptrs + 1, sizeof(bool));
    p->lay = idl__calloc(nv, sizeof *p->lay);
    bool *is_out = idl__calloc(nv, sizeof(bool));
    p->grads = idl__calloc(nv, sizeof *p->grads);
    p->active = idl__calloc(nv, sizeof(bool));
    p->fresh = idl__calloc(nv, sizeof(bool));
    p->in_shapes = idl__calloc((size_t)m->n_inputs + 1, sizeof *p->in_shapes);
    p->in_value = idl__calloc((size_t)m->n_inputs + 1, sizeof(int));
    if (!p->vals || !p->vconst || !p->folded || !p->ctx || !p->ptrs || !p->consts || !p->grads ||
        !p->active || !p->fresh || !p->in_shapes || !p->in_value || !p->mds || !p->slot_plain ||
        !p->lay || !is_out) {
        idl__free(is_out);
        idl__plan_free(p);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_outputs; i++)
        is_out[m->outputs[i]] = true; /* graph outputs stay plain */
    idl_status st = IDL_OK;
    int *act_reader = NULL; /* per value: the activation node that is its only reader, or -1 */
    if (defer) {
        p->alias_of = idl__malloc(sizeof(int) * nv);
        p->skip = idl__calloc(nn, sizeof(bool));
        act_reader = idl__malloc(sizeof(int) * nv);
        if (!p->alias_of || !p->skip || !act_reader) {
            st = idl__error(IDL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        fusable_acts(s, is_out, kind == IDL__PLAN_LEAN, act_reader);
        for (size_t v = 0; v < nv; v++)
            p->alias_of[v] = -1;
    }
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
    uint64_t used = 0;
    for (int i = 0; i < m->n_inputs; i++)
        used += (uint64_t)idl__tensor_bytes(&p->vals[m->inputs[i]]);
    size_t off = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__node *n = &m->nodes[i];
        idl__op_ctx *c = &p->ctx[i];
        bool *cst = idl__ctx_bind(c, m, n, s->be, p->ptrs, p->consts, &off);
        c->din_fresh = p->fresh;
        bool all_const = true;
        for (int k = 0; k < n->n_in; k++) {
            c->in[k] = n->in[k] >= 0 ? &p->vals[n->in[k]] : NULL;
            cst[k] = n->in[k] >= 0 ? p->vconst[n->in[k]] : true;
            all_const = all_const && cst[k];
        }
        for (int k = 0; k < n->n_out; k++)
            c->out[k] = n->out[k] >= 0 ? &p->vals[n->out[k]] : NULL;
        const idl__op_def *def = idl__ops[n->op];
        /* blocked inputs: ops with IDL__OP_LAYOUT see their layout and may keep it (also for
         * their outputs); the others, and those that decline, read a plain copy */
        bool lay_op = !s->opts.plain_layout && (def->flags & IDL__OP_LAYOUT) &&
                      !(all_const && n->n_in > 0) && !(def->flags & IDL__OP_SHAPE_ONLY);
        const dnnl_memory_desc_t **imd = p->mds + (c->in - p->ptrs);
        const dnnl_memory_desc_t **omd = p->mds + (c->out - p->ptrs);
        for (int k = 0; k < n->n_in; k++)
            imd[k] = lay_op && n->in[k] >= 0 && p->lay[n->in[k]] ? &p->lay[n->in[k]]->md : NULL;
        c->in_md = lay_op ? imd : NULL;
        c->out_md = lay_op ? omd : NULL;
        c->out_blk_ok = 0;
        for (int k = 0; lay_op && k < n->n_out && k < 32; k++)
            if (n->out[k] >= 0 && !is_out[n->out[k]]) c->out_blk_ok |= 1u << k;
        /* (in a lean plan, only when the op says what its backward reads: not its output) */
        c->fuse_act = act_reader && (!strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "Add")) &&
                      !all_const && act_reader[n->out[0]] >= 0 &&
                      (kind != IDL__PLAN_LEAN || def->bwd_reads) &&
                      act_bounds(m, &m->nodes[act_reader[n->out[0]]], &c->fuse_lo, &c->fuse_hi);
        /* no single allocation of prepare may exceed what is left of the budget */
        uint64_t prev_cap = idl__alloc_cap_set(budget > used ? budget - used : 1);
        st = def->prepare(c);
        idl__alloc_cap_set(prev_cap);
        if (!st && c->fused_act_done && kind == IDL__PLAN_LEAN &&
            (def->bwd_reads(c) & ~(IDL__BWD_OUT(0) - 1u)))
            st = idl__error(IDL_ERR_INTERNAL, "activation fused into an output its backward reads");
        if (st) {
            st = idl__error_prefix(st, "node '%s' (%s, opset %lld): ", n->name, n->op_type,
                                   (long long)m->opset);
            goto fail;
        }
        for (int k = 0; k < n->n_in && !(def->flags & IDL__OP_SHAPE_ONLY); k++) {
            idl__vlayout *L = n->in[k] >= 0 ? p->lay[n->in[k]] : NULL;
            if (!L || (lay_op && imd[k])) continue;
            c->in[k] = &L->plain;
            p->slot_plain[c->in - p->ptrs + k] = true;
            if (!L->feed_plain) {
                L->feed_plain = true;
                used += (uint64_t)idl__tensor_bytes(&L->plain);
                if ((st = idl__tensor_alloc_data(&L->plain))) goto fail;
            }
        }
        bool fold = (all_const && n->n_in > 0) || (def->flags & IDL__OP_SHAPE_ONLY);
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
            /* forward-only and lean plans place what they do not fold (nor output) later */
            if (defer && !fold && !is_out[n->out[k]]) continue;
            used += bytes;
            if ((st = idl__tensor_alloc_data(c->out[k]))) {
                st = idl__error_prefix(st, "node '%s' (%s): output '%s': ", n->name, n->op_type,
                                       m->values[n->out[k]].name);
                goto fail;
            }
        }
        for (int k = 0; lay_op && k < n->n_out; k++) {
            if (!omd[k]) continue;
            if (k >= 32 || !(c->out_blk_ok & (1u << k))) {
                st = idl__error(IDL_ERR_INTERNAL, "node '%s' (%s): output %d blocked unasked",
                                n->name, n->op_type, k);
                goto fail;
            }
            if ((st = lay_new(s->be, c->out[k], omd[k], &p->lay[n->out[k]]))) {
                st = idl__error_prefix(st, "node '%s' (%s): ", n->name, n->op_type);
                goto fail;
            }
        }
        if (fold) {
            def->forward(c);
            p->folded[i] = true;
            for (int k = 0; k < n->n_out; k++)
                if (n->out[k] >= 0) p->vconst[n->out[k]] = true;
        }
    }
    if (defer) fuse_acts(m, p, act_reader);
    if (kind == IDL__PLAN_FWD) alias_copies(s, p, is_out);
    if (kind == IDL__PLAN_FWD) {
        idl__rowfuse_plan(s, p, is_out, budget - used);
        used += p->rf_bytes; /* the regions' scratch */
    }
    if (defer && (st = arena_alloc(m, p, budget, used))) goto fail;
    if (!defer) p->bytes = used;
    idl__free(is_out);
    idl__free(act_reader);
    *out = p;
    return IDL_OK;
fail:
    idl__free(is_out);
    idl__free(act_reader);
    idl__plan_free(p);
    return st;
}

bool *idl__ctx_bind(idl__op_ctx *c, const idl_model *m, const idl__node *n, idl__backend *be,
                    idl_tensor **ptrs, bool *consts, size_t *off) {
    c->node = n;
    c->opset = m->opset;
    c->be = be;
    c->n_in = n->n_in;
    c->n_out = n->n_out;
    c->in = ptrs + *off;
    bool *cst = consts + *off;
    c->in_const = cst;
    *off += (size_t)n->n_in;
    c->out = ptrs + *off;
    *off += (size_t)n->n_out;
    c->din = ptrs + *off;
    *off += (size_t)n->n_in;
    c->dout = ptrs + *off;
    *off += (size_t)n->n_out;
    return cst;
}

/* Calls the taps of value v; a blocked value is shown plain and what the tap wrote goes back. */
static idl_status run_taps(idl_session *s, int v) {
    idl__plan *p = s->plan;
    idl__vlayout *L = p->lay[v];
    bool any = false;
    for (int t = 0; t < s->n_taps; t++)
        any = any || (s->taps[t].value == v && s->taps[t].cb);
    if (!any) return IDL_OK;
    idl_tensor *t = L ? (idl_tensor *)plain_value(s, v) : &p->vals[v];
    if (!t) return idl__error_prefix(IDL_ERR_NOMEM, "tap on '%s': ", s->m->values[v].name);
    for (int k = 0; k < s->n_taps; k++)
        if (s->taps[k].value == v && s->taps[k].cb)
            s->taps[k].cb(s->m->values[v].name, t, s->taps[k].user);
    return L ? idl__lay_copy(s->be, L, p->vals[v].data, t, 0) : IDL_OK;
}

/* Runs node i: the kernel, the plain copies of its blocked outputs, the taps on its outputs. */
static idl_status run_node(idl_session *s, int i) {
    idl__plan *p = s->plan;
    if (s->abort_cb && s->abort_cb(s->abort_user))
        return idl__error(IDL_ERR_ABORTED, "forward aborted");
    idl__op_ctx *c = &p->ctx[i];
    const idl__node *n = &s->m->nodes[i];
    idl_status st;
    if (p->rf_anchor && p->rf_anchor[i] >= 0)
        idl__rowfuse_run(p, i);
    else if (!p->skip || !p->skip[i])
        idl__ops[n->op]->forward(c);
    for (int k = 0; k < c->n_out; k++) {
        idl__vlayout *L = n->out[k] >= 0 ? p->lay[n->out[k]] : NULL;
        if (!L) continue;
        L->plain_ok = L->feed_plain; /* plain's data exists: refresh it now */
        if (L->feed_plain && (st = idl__lay_copy(s->be, L, p->vals[n->out[k]].data, &L->plain, 1)))
            return st;
    }
    if (s->n_taps)
        for (int k = 0; k < c->n_out; k++)
            if (n->out[k] >= 0 && (st = run_taps(s, n->out[k]))) return st;
    return IDL_OK;
}

idl_status idl__plan_forward(idl_session *s) {
    idl__plan *p = s->plan;
    const idl_model *m = s->m;
    idl_status st;
    if (s->n_taps)
        for (int i = 0; i < m->n_inputs; i++)
            if ((st = run_taps(s, m->inputs[i]))) return st;
    for (int i = 0; i < m->n_nodes; i++)
        if (!p->folded[i] && (st = run_node(s, i))) return st;
    return IDL_OK;
}

idl_status idl__plan_forward_from(idl_session *s, int v) {
    idl__plan *p = s->plan;
    const idl_model *m = s->m;
    if (p->down_from != v) { /* the nodes that read v, directly or through others */
        bool *vd = idl__calloc((size_t)p->n_values + 1, sizeof(bool));
        if (!p->down_node) p->down_node = idl__calloc((size_t)p->n_nodes + 1, sizeof(bool));
        if (!vd || !p->down_node) {
            idl__free(vd);
            return idl__error(IDL_ERR_NOMEM, "out of memory");
        }
        vd[v] = true;
        for (int i = 0; i < m->n_nodes; i++) {
            const idl__node *n = &m->nodes[i];
            bool d = false;
            for (int k = 0; k < n->n_in; k++)
                d = d || (n->in[k] >= 0 && vd[n->in[k]]);
            p->down_node[i] = d;
            for (int k = 0; d && k < n->n_out; k++)
                if (n->out[k] >= 0) vd[n->out[k]] = true;
        }
        idl__free(vd);
        p->down_from = v;
    }
    idl_status st = run_taps(s, v);
    for (int i = 0; !st && i < m->n_nodes; i++)
        if (!p->folded[i] && p->down_node[i]) st = run_node(s, i);
    return st;
}
