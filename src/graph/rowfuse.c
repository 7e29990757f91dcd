/* rowfuse.c — forward-only plans: chains of element-wise ops and last-axis reductions run row
 * block by row block.
 *
 * A transformer's LayerNorm exported from PyTorch before opset 17 is nine nodes (ReduceMean, Sub,
 * Pow, ReduceMean, Add, Sqrt, Div, Mul, Add) and its erf GELU five (Div, Erf, Add, Mul, Mul), each
 * reading and writing a whole (tokens, width) tensor: on vit_b_16 at batch 8 they took ~8% of a
 * forward. Every one of these ops computes a row of its output from the same row of its inputs
 * (an element-wise op whose operands are the row's values, a per-row scalar (..., 1), or a
 * constant of the row's width; a reduction over the last axis with keepdims). A region is a
 * connected group of such nodes on values of one leading shape (all axes but the last). It runs at
 * its last node (the anchor): the row blocks (rows_per_block rows, sized so that a block of the
 * widest value takes 64 KiB) are shared out to the threads, and each thread runs the region's
 * nodes in order on its block, through the ops' own kernels prepared for the block's shape: the
 * values read only inside the region live in the thread's small scratch instead of the arena, the
 * others are read and written in place. The ops are the same and each element is computed by the
 * same arithmetic (element-wise kernels are the same function of each element's operands wherever
 * it lies; a row's reduction runs one fixed order over the row either way), so the results equal
 * the unfused plan's to the bit (test_parity compares forward-only and full plans of every model).
 * Only one region runs at a time, so all regions share one scratch per thread (and one for the
 * last, shorter block), sized for the largest region (vit_b_16: 3 x 378 KiB) and counted in the
 * plan's bytes (max_memory). Sets for the thread count of the plan's time are prepared; a region
 * runs on the calling thread count of its own time (omp_get_max_threads(), the one the pass's
 * flush-to-zero setting reached), at most that many.
 *
 * A region needs at least two nodes and one value read only inside it; none of its values may be
 * tapped, blocked, aliased or of another type than float32, and every node outside it that reads
 * one of its values must come after the anchor (it does in the exported graphs: the region's
 * outputs are read by the next MatMul or residual Add). */
#include "session/session_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#    include <omp.h>
#endif

#define RF_BLOCK_FLOATS 16384 /* a block of the widest value: 64 KiB */

enum { RF_EXT = 0, RF_OUT = 1, RF_TMP = 2 };

typedef struct rf_val {
    int v;         /* model value */
    int kind;      /* RF_EXT: written before the region; RF_OUT: written here and read after the
                      anchor; RF_TMP: written and read here only */
    int64_t width; /* last axis */
} rf_val;

typedef struct rf_set { /* the contexts one thread runs a block with */
    idl__op_ctx *ctx;   /* per region node */
    idl_tensor **ptrs;  /* their in / out / din / dout slots */
    bool *consts;
    idl_tensor *vals; /* per region value: the block's view (RF_TMP: in the shared scratch) */
    bool prepared;
} rf_set;

struct idl__rfregion {
    int n_nodes, *nodes; /* in order */
    int n_vals;
    rf_val *vals;
    int anchor;
    int rank;
    int64_t rows, rb; /* rows (product of the leading axes), rows per block */
    int n_threads;
    rf_set *sets; /* n_threads sets of rb rows, then one of the last block's rows (when fewer) */
    size_t tmp_floats; /* a set's RF_TMP values at rb rows, each rounded up to 16 floats */
};

static const char *const rf_ops[] = { "Add",      "Sub",        "Mul",       "Div",  "Pow",
                                      "Sqrt",     "Erf",        "Exp",       "Tanh", "Sigmoid",
                                      "Relu",     "Neg",        "Abs",       "Log",  "Reciprocal",
                                      "Softplus", "ReduceMean", "ReduceSum", NULL };

static bool rf_op(const char *op) {
    for (int i = 0; rf_ops[i]; i++)
        if (!strcmp(op, rf_ops[i])) return true;
    return false;
}

/* v's leading axes equal lead[0..rank-2] and its last axis is width (when given: > 0) */
static bool rows_like(const idl_tensor *t, int rank, const int64_t *lead) {
    if (t->ndim != rank || t->dtype != IDL_DT_F32) return false;
    for (int d = 0; d < rank - 1; d++)
        if (t->shape[d] != lead[d]) return false;
    return true;
}

/* A constant operand that broadcasts along the rows: every axis but the last is 1 */
static bool column_const(const idl_tensor *t, int rank) {
    if (t->ndim > rank || t->dtype != IDL_DT_F32) return false;
    for (int d = 0; d + 1 < t->ndim; d++)
        if (t->shape[d] != 1) return false;
    return true;
}

static int find(int *up, int i) {
    while (up[i] != i)
        i = up[i] = up[up[i]];
    return i;
}

static void set_free(const idl__rfregion *r, rf_set *st) {
    for (int j = 0; st->ctx && j < r->n_nodes; j++) {
        const idl__op_ctx *c = &st->ctx[j];
        if (c->state && c->node && idl__ops[c->node->op]->free_state)
            idl__ops[c->node->op]->free_state(c->state);
    }
    idl__free(st->ctx);
    idl__free(st->ptrs);
    idl__free(st->consts);
    idl__free(st->vals);
}

static void region_free(idl__rfregion *r) {
    for (int t = 0; r->sets && t <= r->n_threads; t++)
        set_free(r, &r->sets[t]);
    idl__free(r->sets);
    idl__free(r->nodes);
    idl__free(r->vals);
}

void idl__rowfuse_free(idl__plan *p) {
    for (int i = 0; i < p->n_rf; i++)
        region_free(&p->rf[i]);
    idl__free(p->rf);
    idl__free(p->rf_anchor);
    idl__free(p->rf_tmp);
    idl__free(p->rf_out);
    idl__free(p->rf_last);
    idl__aligned_free(p->rf_scratch);
    p->rf = NULL, p->rf_anchor = NULL, p->rf_tmp = NULL, p->rf_out = NULL, p->rf_last = NULL;
    p->rf_scratch = NULL;
    p->n_rf = 0, p->rf_bytes = 0;
}

static int val_index(const idl__rfregion *r, int v) {
    for (int j = 0; j < r->n_vals; j++)
        if (r->vals[j].v == v) return j;
    return -1;
}

/* Floats value j of r takes in the scratch at `rows` rows: rounded up to 16 (64 bytes). */
static size_t tmp_len(const idl__rfregion *r, int j, int64_t rows) {
    return (size_t)(rows * r->vals[j].width + 15) / 16 * 16;
}

/* Floats of a set's RF_TMP values at `rows` rows in the scratch. */
static size_t tmp_floats(const idl__rfregion *r, int64_t rows) {
    size_t tmp = 0;
    for (int j = 0; j < r->n_vals; j++)
        if (r->vals[j].kind == RF_TMP) tmp += tmp_len(r, j, rows);
    return tmp;
}

/* Prepares one set's contexts for blocks of `rows` rows, its RF_TMP values in `scratch`; false
 * when an op declines the shape. */
static bool set_prepare(const idl_session *s, const idl__plan *p, idl__rfregion *r, rf_set *st,
                        int64_t rows, float *scratch) {
    const idl_model *m = s->m;
    size_t slots = 0;
    for (int j = 0; j < r->n_nodes; j++) {
        const idl__node *n = &m->nodes[r->nodes[j]];
        slots += 2 * (size_t)(n->n_in + n->n_out);
    }
    st->ctx = idl__calloc((size_t)r->n_nodes, sizeof *st->ctx);
    st->ptrs = idl__calloc(slots + 1, sizeof *st->ptrs);
    st->consts = idl__calloc(slots + 1, sizeof *st->consts);
    st->vals = idl__calloc((size_t)r->n_vals, sizeof *st->vals);
    if (!st->ctx || !st->ptrs || !st->consts || !st->vals) return false;
    size_t at = 0;
    for (int j = 0; j < r->n_vals; j++) {
        int64_t shp[IDL_MAX_DIMS];
        for (int d = 0; d < r->rank; d++)
            shp[d] = 1;
        shp[r->rank - 2] = rows;
        shp[r->rank - 1] = r->vals[j].width;
        st->vals[j] = idl_tensor_wrap(IDL_DT_F32, r->rank, shp, NULL);
        if (r->vals[j].kind == RF_TMP) {
            st->vals[j].data = scratch + at;
            at += tmp_len(r, j, rows);
        }
    }
    size_t off = 0;
    for (int j = 0; j < r->n_nodes; j++) {
        const idl__node *n = &m->nodes[r->nodes[j]];
        idl__op_ctx *c = &st->ctx[j];
        bool *cst = idl__ctx_bind(c, m, n, s->be, st->ptrs, st->consts, &off); /* no gradients */
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k], q = v >= 0 ? val_index(r, v) : -1;
            cst[k] = v < 0 || p->vconst[v];
            c->in[k] = v < 0 ? NULL : q >= 0 ? &st->vals[q] : &p->vals[v];
        }
        for (int k = 0; k < n->n_out; k++) {
            int q = n->out[k] >= 0 ? val_index(r, n->out[k]) : -1;
            c->out[k] = q >= 0 ? &st->vals[q] : NULL;
        }
        int64_t want[IDL_MAX_DIMS];
        memcpy(want, c->out[0]->shape, sizeof want);
        if (idl__ops[n->op]->prepare(c)) {
            idl__error_clear();
            return false;
        }
        if (c->fused_act_done || c->out[0]->dtype != IDL_DT_F32 || c->out[0]->ndim != r->rank ||
            memcmp(want, c->out[0]->shape, sizeof(int64_t) * (size_t)r->rank))
            return false;
    }
    st->prepared = true;
    return true;
}

/* Builds the regions of forward-only plan p (after its nodes are prepared and its fused
 * activations and aliased copies chosen, before the arena is laid out); their scratch takes at
 * most `room` bytes (p->rf_bytes). Without memory or room, or when an op declines a block's
 * shape, the nodes run unfused as before. */
void idl__rowfuse_plan(const idl_session *s, idl__plan *p, const bool *is_out, uint64_t room) {
    const idl_model *m = s->m;
    int nn = m->n_nodes, nv = m->n_values;
    int *up = idl__malloc(sizeof(int) * (size_t)(nn + 1));
    int *readers = idl__calloc((size_t)nv + 1, sizeof(int)); /* -1: tapped or aliased */
    bool *cand = idl__calloc((size_t)nn + 1, sizeof(bool));
    int *count = idl__calloc((size_t)nn + 1, sizeof(int));
    bool *closed = idl__calloc((size_t)nn + 1, sizeof(bool));
    p->rf_anchor = idl__malloc(sizeof(int) * (size_t)(nn + 1));
    p->rf_tmp = idl__calloc((size_t)nv + 1, sizeof(bool));
    p->rf_out = idl__calloc((size_t)nv + 1, sizeof(bool));
    p->rf_last = idl__malloc(sizeof(int) * (size_t)(nv + 1));
    if (!up || !readers || !cand || !count || !closed || !p->rf_anchor || !p->rf_tmp ||
        !p->rf_out || !p->rf_last)
        goto done;
    for (int i = 0; i < nn; i++)
        up[i] = i, p->rf_anchor[i] = -1;
    for (int v = 0; v < nv; v++)
        p->rf_last[v] = -1;
    for (int i = 0; i < nn; i++)
        for (int k = 0; !p->folded[i] && k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0 && readers[m->nodes[i].in[k]] >= 0)
                readers[m->nodes[i].in[k]]++;
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].cb) readers[s->taps[t].value] = -1;
    for (int v = 0; v < nv; v++)
        if (p->alias_of[v] >= 0) readers[v] = readers[p->alias_of[v]] = -1;
    /* candidates in order, each joined to the open regions of its inputs' producers; a region
     * that a node outside it reads is closed: nothing joins it later (the outside reader must
     * come after its anchor) */
    for (int i = 0; i < nn; i++) {
        const idl__node *n = &m->nodes[i];
        if (p->folded[i]) continue;
        const idl_tensor *y = n->n_out == 1 && n->out[0] >= 0 ? &p->vals[n->out[0]] : NULL;
        int rank = y ? y->ndim : 0;
        bool ok = y && !p->skip[i] && rf_op(n->op_type) && rank >= 2 && y->dtype == IDL_DT_F32 &&
                  !p->lay[n->out[0]] && readers[n->out[0]] >= 0 && !p->ctx[i].fused_act_done;
        bool red = !strncmp(n->op_type, "Reduce", 6);
        for (int k = 0; ok && k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            const idl_tensor *x = &p->vals[v];
            if (p->vconst[v])
                ok = column_const(x, rank) ||
                     (red && x->dtype == IDL_DT_I64 && k == 1); /* opset-18 reduction axes */
            else
                ok = rows_like(x, rank, y->shape) && !p->lay[v] && readers[v] >= 0 &&
                     (x->shape[rank - 1] == y->shape[rank - 1] || x->shape[rank - 1] == 1 ||
                      (red && y->shape[rank - 1] == 1));
        }
        cand[i] = ok;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k], pr = v >= 0 && !p->vconst[v] ? m->values[v].producer : -1;
            if (pr < 0 || !cand[pr]) continue;
            int rt = find(up, pr);
            const idl_tensor *py = &p->vals[m->nodes[pr].out[0]];
            if (ok && !closed[rt] && py->ndim == rank &&
                !memcmp(py->shape, y->shape, sizeof(int64_t) * (size_t)(rank - 1)))
                up[rt] = find(up, i);
            else if (rt != find(up, i))
                closed[rt] = true;
        }
    }
    for (int i = 0; i < nn; i++)
        if (cand[i]) count[find(up, i)]++;
    int nreg = 0;
    for (int i = 0; i < nn; i++)
        nreg += cand[i] && find(up, i) == i && count[i] >= 2;
    if (!nreg || !(p->rf = idl__calloc((size_t)nreg, sizeof *p->rf))) goto done;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    /* first the regions and their values, then one scratch per set index sized for the largest,
     * then each region's sets prepared in it */
    int nb = 0;
    size_t most = 16;
    for (int root = 0; root < nn; root++) {
        if (!cand[root] || find(up, root) != root || count[root] < 2) continue;
        idl__rfregion *r = &p->rf[nb];
        memset(r, 0, sizeof *r);
        r->nodes = idl__malloc(sizeof(int) * (size_t)count[root]);
        r->vals = idl__malloc(sizeof(rf_val) * 3 * (size_t)count[root] + sizeof(rf_val));
        if (!r->nodes || !r->vals) {
            region_free(r);
            continue;
        }
        for (int i = 0; i < nn; i++)
            if (cand[i] && find(up, i) == root) r->nodes[r->n_nodes++] = i;
        r->anchor = r->nodes[r->n_nodes - 1];
        const idl_tensor *y0 = &p->vals[m->nodes[r->nodes[0]].out[0]];
        r->rank = y0->ndim;
        r->rows = idl__numel(r->rank - 1, y0->shape);
        /* the values: written here (TMP when only the region reads them), or read from outside */
        bool ok = true;
        int64_t widest = 1;
        for (int j = 0; ok && j < r->n_nodes; j++) {
            const idl__node *n = &m->nodes[r->nodes[j]];
            for (int k = 0; k < n->n_in; k++) {
                int v = n->in[k];
                if (v < 0 || p->vconst[v] || val_index(r, v) >= 0) continue;
                r->vals[r->n_vals++] = (rf_val){ v, RF_EXT, p->vals[v].shape[r->rank - 1] };
            }
            int v = n->out[0], inside = 0;
            for (int q = 0; q < r->n_nodes; q++)
                for (int k = 0; k < m->nodes[r->nodes[q]].n_in; k++)
                    inside += m->nodes[r->nodes[q]].in[k] == v;
            bool tmp = !is_out[v] && inside == readers[v];
            for (int i = 0; !tmp && ok && i <= r->anchor; i++) { /* read outside, too early */
                if (p->folded[i] || (cand[i] && find(up, i) == root)) continue;
                for (int k = 0; k < m->nodes[i].n_in; k++)
                    ok = ok && m->nodes[i].in[k] != v;
            }
            r->vals[r->n_vals++] =
                (rf_val){ v, tmp ? RF_TMP : RF_OUT, p->vals[v].shape[r->rank - 1] };
        }
        for (int j = 0; j < r->n_vals; j++)
            widest = r->vals[j].width > widest ? r->vals[j].width : widest;
        r->rb = RF_BLOCK_FLOATS / widest;
        r->rb = r->rb < 1 ? 1 : r->rb > r->rows ? r->rows : r->rb;
        r->n_threads = threads;
        r->tmp_floats = tmp_floats(r, r->rb);
        if (!ok || r->rows <= 0 || !r->tmp_floats) {
            region_free(r);
            continue;
        }
        most = r->tmp_floats > most ? r->tmp_floats : most;
        nb++;
    }
    size_t bytes = sizeof(float) * most * (size_t)(threads + 1);
    if (nb && bytes <= room) p->rf_scratch = idl__aligned_alloc(bytes);
    int fused_nodes = 0;
    for (int q = 0; q < nb; q++) {
        idl__rfregion *r = &p->rf[p->n_rf];
        if (q != p->n_rf) *r = p->rf[q];
        r->sets = p->rf_scratch ? idl__calloc((size_t)threads + 1, sizeof *r->sets) : NULL;
        bool ok = r->sets != NULL;
        for (int t = 0; ok && t < threads; t++)
            ok = set_prepare(s, p, r, &r->sets[t], r->rb, p->rf_scratch + (size_t)t * most);
        if (ok && r->rows % r->rb)
            ok = set_prepare(s, p, r, &r->sets[threads], r->rows % r->rb,
                             p->rf_scratch + (size_t)threads * most);
        if (!ok) {
            region_free(r);
            continue;
        }
        for (int j = 0; j < r->n_nodes; j++)
            if (r->nodes[j] != r->anchor) p->skip[r->nodes[j]] = true;
        p->rf_anchor[r->anchor] = p->n_rf;
        for (int j = 0; j < r->n_vals; j++) {
            int v = r->vals[j].v;
            if (r->vals[j].kind == RF_TMP) p->rf_tmp[v] = true;
            if (r->vals[j].kind == RF_OUT) p->rf_out[v] = true;
            if (r->vals[j].kind == RF_EXT && p->rf_last[v] < r->anchor) p->rf_last[v] = r->anchor;
        }
        fused_nodes += r->n_nodes;
        p->n_rf++;
    }
    if (p->n_rf) p->rf_bytes = bytes;
    if (p->n_rf)
        idl__log(IDL_LOG_DEBUG,
                 "forward-only plan: %d element-wise regions of %d nodes run by row "
                 "blocks; %d scratch blocks of %zu KiB",
                 p->n_rf, fused_nodes, threads + 1, (sizeof(float) * most) >> 10);
done:
    idl__free(up);
    idl__free(readers);
    idl__free(cand);
    idl__free(count);
    idl__free(closed);
    if (!p->n_rf) idl__rowfuse_free(p);
}

/* Runs region rf_anchor[node] (the anchor's turn in the plan) on the current thread count, at
 * most the sets prepared. */
void idl__rowfuse_run(const idl__plan *p, int node) {
    idl__rfregion *r = &p->rf[p->rf_anchor[node]];
    const int64_t nblk = (r->rows + r->rb - 1) / r->rb;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
    nt = nt > r->n_threads ? r->n_threads : nt < 1 ? 1 : nt;
#endif
#pragma omp parallel for schedule(static) num_threads(nt) if (nblk > 1)
    for (int64_t b = 0; b < nblk; b++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        const int64_t r0 = b * r->rb;
        rf_set *st = r0 + r->rb <= r->rows ? &r->sets[t] : &r->sets[r->n_threads];
        for (int j = 0; j < r->n_vals; j++)
            if (r->vals[j].kind != RF_TMP)
                st->vals[j].data = (float *)p->vals[r->vals[j].v].data + r0 * r->vals[j].width;
        for (int j = 0; j < r->n_nodes; j++)
            idl__ops[st->ctx[j].node->op]->forward(&st->ctx[j]);
    }
}
