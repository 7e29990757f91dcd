/* attention.c — finds transformer attention in a planned graph, from the pattern alone:
 *
 *   scores = MatMul(Q, K^T) [-> Div/Mul scale] [-> Add mask] ...     (or Einsum)
 *   probs  = Softmax(scores) over the key axis
 *   ctx    = MatMul(probs [-> Dropout/Cast/Identity], V)               (or Einsum)
 *   proj   = MatMul|Gemm(ctx [-> Transpose/Reshape], W_O constant) [+ bias]
 *   out    = Add(block_input, proj [-> Reshape/Transpose/Dropout/Mul(layer scale)])   (residual)
 *
 * Blocks are listed in execution order; the embedding output is the first block's input. The token
 * grid comes from the patch-embedding Conv (stride == kernel) upstream of the embedding; the
 * pooling from what the head reads after the last block (Gather/Slice of token 0 → class token,
 * ReduceMean over tokens → mean). Shapes come from the session's current plan. */
#define _DEFAULT_SOURCE
#include "session/session_internal.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAIN_DEPTH 8

typedef struct graph {
    const idl_model *m;
    const idl__plan *p;
    int *cstart; /* consumers of value v: cons[cstart[v] .. cstart[v+1]) */
    int *cons;
} graph;

static const char *op_of(const graph *g, int node) {
    return g->m->nodes[node].op_type;
}
static bool op_is(const graph *g, int node, const char *op) {
    return node >= 0 && strcmp(op_of(g, node), op) == 0;
}
static int producer(const graph *g, int v) {
    return v >= 0 && g->m->values[v].kind == IDL__VAL_NODE ? g->m->values[v].producer : -1;
}
static bool is_const(const graph *g, int v) {
    return v >= 0 && g->p->vconst[v];
}
static bool op_in(const char *op, const char *const *set) {
    for (; *set; set++)
        if (!strcmp(op, *set)) return true;
    return false;
}
static const idl_tensor *val(const graph *g, int v) {
    return &g->p->vals[v];
}

static idl_status graph_init(graph *g, const idl_model *m, const idl__plan *p) {
    g->m = m;
    g->p = p;
    g->cstart = idl__calloc((size_t)m->n_values + 2, sizeof(int));
    int n_edges = 0;
    for (int i = 0; i < m->n_nodes; i++)
        n_edges += m->nodes[i].n_in;
    g->cons = idl__calloc((size_t)n_edges + 1, sizeof(int));
    int *pos = idl__calloc((size_t)m->n_values + 2, sizeof(int));
    if (!g->cstart || !g->cons || !pos) {
        idl__free(pos);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0) g->cstart[m->nodes[i].in[k] + 1]++;
    for (int v = 0; v < m->n_values; v++)
        g->cstart[v + 1] += g->cstart[v];
    memcpy(pos, g->cstart, sizeof(int) * (size_t)(m->n_values + 1));
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0) g->cons[pos[m->nodes[i].in[k]]++] = i;
    idl__free(pos);
    return IDL_OK;
}

static void graph_free(graph *g) {
    idl__free(g->cstart);
    idl__free(g->cons);
}

/* Walks back from v through pass-through ops to a MatMul/Einsum of two non-constant operands. */
static int find_qk(const graph *g, int v, int depth) {
    static const char *const pass[] = { "Add",      "Sub",     "Div",  "Mul",  "Where", "Cast",
                                        "Identity", "Reshape", "Clip", "Tanh", NULL };
    int n = producer(g, v);
    if (n < 0 || depth > CHAIN_DEPTH) return -1;
    const idl__node *nd = &g->m->nodes[n];
    if ((op_is(g, n, "MatMul") || op_is(g, n, "Einsum")) && nd->n_in == 2 &&
        !is_const(g, nd->in[0]) && !is_const(g, nd->in[1]))
        return n;
    if (!op_in(nd->op_type, pass)) return -1;
    for (int k = 0; k < nd->n_in; k++) {
        int x = nd->in[k];
        if (x < 0 || is_const(g, x) || val(g, x)->dtype != IDL_DT_F32) continue;
        int r = find_qk(g, x, depth + 1);
        if (r >= 0) return r;
    }
    return -1;
}

/* Walks forward from v (probabilities) to the MatMul/Einsum that applies them to V. *slot gets the
 * input index of the chain value. */
static int find_pv(const graph *g, int v, int depth, int *slot) {
    static const char *const pass[] = { "Dropout", "Identity", "Cast", "Reshape",
                                        "Where",   "Mul",      NULL };
    if (depth > CHAIN_DEPTH) return -1;
    for (int e = g->cstart[v]; e < g->cstart[v + 1]; e++) {
        int n = g->cons[e];
        const idl__node *nd = &g->m->nodes[n];
        if ((op_is(g, n, "MatMul") || op_is(g, n, "Einsum")) && nd->n_in == 2) {
            int other = nd->in[0] == v ? nd->in[1] : nd->in[0];
            if (!is_const(g, other)) {
                *slot = nd->in[0] == v ? 0 : 1;
                return n;
            }
        }
        if (op_in(nd->op_type, pass) && nd->out[0] >= 0) {
            int r = find_pv(g, nd->out[0], depth + 1, slot);
            if (r >= 0) return r;
        }
    }
    return -1;
}

/* From the context tensor to the projection with a constant weight. */
static int find_proj(const graph *g, int v, int depth) {
    static const char *const pass[] = { "Transpose", "Reshape", "Identity",  "Cast",
                                        "Flatten",   "Squeeze", "Unsqueeze", NULL };
    if (depth > CHAIN_DEPTH) return -1;
    for (int e = g->cstart[v]; e < g->cstart[v + 1]; e++) {
        int n = g->cons[e];
        const idl__node *nd = &g->m->nodes[n];
        if ((op_is(g, n, "MatMul") || op_is(g, n, "Gemm")) && nd->n_in >= 2 && nd->in[0] == v &&
            is_const(g, nd->in[1]))
            return n;
        if (op_in(nd->op_type, pass) && nd->out[0] >= 0) {
            int r = find_proj(g, nd->out[0], depth + 1);
            if (r >= 0) return r;
        }
    }
    return -1;
}

/* From the projection output to the residual Add; *other gets the residual operand. */
static int find_residual(const graph *g, int v, int depth, int *other) {
    static const char *const pass[] = { "Transpose", "Reshape", "Identity", "Dropout",
                                        "Cast",      "Add",     "Mul",      NULL };
    if (depth > CHAIN_DEPTH) return -1;
    for (int e = g->cstart[v]; e < g->cstart[v + 1]; e++) {
        int n = g->cons[e];
        const idl__node *nd = &g->m->nodes[n];
        if (op_is(g, n, "Add") && nd->n_in == 2) {
            int o = nd->in[0] == v ? nd->in[1] : nd->in[0];
            if (!is_const(g, o) && idl__same_shape(val(g, o), val(g, nd->out[0]))) {
                *other = o;
                return n;
            }
        }
        if (!op_in(nd->op_type, pass) || nd->out[0] < 0) continue;
        /* Add/Mul pass only with a constant operand (bias, layer scale) */
        if ((op_is(g, n, "Add") || op_is(g, n, "Mul")) &&
            !(is_const(g, nd->in[0]) || (nd->n_in > 1 && is_const(g, nd->in[1]))))
            continue;
        int r = find_residual(g, nd->out[0], depth + 1, other);
        if (r >= 0) return r;
    }
    return -1;
}

static bool conv_is_patchify(const idl__node *n) {
    int nk, ns;
    const int64_t *k = idl__attr_ints(n, "kernel_shape", &nk);
    const int64_t *st = idl__attr_ints(n, "strides", &ns);
    if (nk != 2 || ns != 2) return false;
    return k[0] == st[0] && k[1] == st[1] && k[0] > 1;
}

/* Breadth-first search upstream of v for a patch-embedding Conv. */
static int find_patch_conv(const graph *g, int v) {
    int cap = g->m->n_nodes + 1, head = 0, tail = 0;
    int *queue = idl__calloc((size_t)cap, sizeof(int));
    bool *seen = idl__calloc((size_t)cap, sizeof(bool));
    int found = -1;
    if (queue && seen) {
        int n0 = producer(g, v);
        if (n0 >= 0) {
            queue[tail++] = n0;
            seen[n0] = true;
        }
        while (head < tail && found < 0) {
            int n = queue[head++];
            const idl__node *nd = &g->m->nodes[n];
            if (op_is(g, n, "Conv") && conv_is_patchify(nd)) {
                found = n;
                break;
            }
            for (int k = 0; k < nd->n_in; k++) {
                int pn = producer(g, nd->in[k]);
                if (pn >= 0 && !seen[pn] && !is_const(g, nd->in[k])) {
                    seen[pn] = true;
                    queue[tail++] = pn;
                }
            }
        }
    }
    idl__free(queue);
    idl__free(seen);
    return found;
}

/* What the head reads: walks upstream from output 0 until the last block's output. */
static idl_pooling find_pooling(const graph *g, int stop_value, int64_t seq) {
    int cap = g->m->n_nodes + 1, head = 0, tail = 0;
    int *queue = idl__calloc((size_t)cap, sizeof(int));
    bool *seen = idl__calloc((size_t)cap, sizeof(bool));
    idl_pooling found = IDL_POOL_UNKNOWN;
    if (queue && seen && g->m->n_outputs > 0) {
        int n0 = producer(g, g->m->outputs[0]);
        if (n0 >= 0) {
            queue[tail++] = n0;
            seen[n0] = true;
        }
        while (head < tail && found == IDL_POOL_UNKNOWN) {
            int n = queue[head++];
            const idl__node *nd = &g->m->nodes[n];
            const idl_tensor *x = nd->n_in > 0 && nd->in[0] >= 0 ? val(g, nd->in[0]) : NULL;
            bool tokens = x && x->ndim == 3 && x->shape[1] == seq;
            if (tokens && op_is(g, n, "Gather") && idl__attr_int(nd, "axis", 0) == 1 &&
                nd->n_in > 1 && is_const(g, nd->in[1]) &&
                idl_tensor_numel(val(g, nd->in[1])) == 1 && idl__get_i64(val(g, nd->in[1]), 0) == 0)
                found = IDL_POOL_CLS;
            else if (tokens && op_is(g, n, "Slice") && nd->n_in >= 3 && is_const(g, nd->in[1]) &&
                     is_const(g, nd->in[2]) && idl_tensor_numel(val(g, nd->in[1])) >= 1 &&
                     idl__get_i64(val(g, nd->in[1]), 0) == 0 &&
                     idl__get_i64(val(g, nd->in[2]), 0) == 1 && nd->out[0] >= 0 &&
                     val(g, nd->out[0])->shape[1] == 1)
                found = IDL_POOL_CLS;
            else if (tokens && op_is(g, n, "ReduceMean")) {
                int na;
                const int64_t *ax = idl__attr_ints(nd, "axes", &na);
                if (na == 1 && (ax[0] == 1 || ax[0] == -2)) found = IDL_POOL_MEAN;
            }
            for (int k = 0; k < nd->n_in; k++) {
                int v = nd->in[k];
                if (v == stop_value) continue;
                int pn = producer(g, v);
                if (pn >= 0 && !seen[pn] && !is_const(g, v)) {
                    seen[pn] = true;
                    queue[tail++] = pn;
                }
            }
        }
    }
    idl__free(queue);
    idl__free(seen);
    return found;
}

static const char *vname(const graph *g, int v) {
    return v >= 0 ? g->m->values[v].name : NULL;
}

static void fill_shapes(idl_session *s, idl_attention_block *b) {
    int v = idl__model_find(s->m, b->probs);
    b->heads = b->seq_len = 0;
    if (v < 0) return;
    const idl_tensor *t = &s->plan->vals[v];
    int64_t n = 1;
    if (s->m->n_inputs > 0 && s->plan->vals[s->m->inputs[0]].ndim > 0)
        n = s->plan->vals[s->m->inputs[0]].shape[0];
    if (t->ndim == 4) {
        b->heads = t->shape[1];
        b->seq_len = t->shape[3];
    } else if (t->ndim == 3) {
        b->seq_len = t->shape[2];
        b->heads = n > 0 && t->shape[0] % n == 0 ? t->shape[0] / n : 0;
    }
}

static idl_status discover(idl_session *s) {
    const idl_model *m = s->m;
    graph g;
    idl_status st = graph_init(&g, m, s->plan);
    if (st) return st;
    int cap = 0;
    for (int i = 0; i < m->n_nodes; i++)
        cap += op_is(&g, i, "Softmax");
    s->attn_blocks = idl__calloc((size_t)cap + 1, sizeof(idl_attention_block));
    if (!s->attn_blocks) {
        graph_free(&g);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl_attention_info *info = &s->attn;
    memset(info, 0, sizeof *info);
    info->blocks = s->attn_blocks;
    for (int i = 0; i < m->n_nodes; i++) {
        if (!op_is(&g, i, "Softmax")) continue;
        const idl__node *sm = &m->nodes[i];
        int probs = sm->out[0], scores = sm->in[0];
        const idl_tensor *pt = val(&g, probs);
        if (pt->ndim < 3 || pt->shape[pt->ndim - 1] != pt->shape[pt->ndim - 2])
            continue; /* (.., S, S) */
        int slot = 0;
        if (find_qk(&g, scores, 0) < 0) continue;
        int pv = find_pv(&g, probs, 0, &slot);
        if (pv < 0) continue;
        idl_attention_block *b = &s->attn_blocks[info->n_blocks++];
        b->probs = vname(&g, probs);
        b->scores = vname(&g, scores);
        b->value = vname(&g, m->nodes[pv].in[1 - slot]);
        b->context = vname(&g, m->nodes[pv].out[0]);
        int proj = find_proj(&g, m->nodes[pv].out[0], 0);
        if (proj >= 0) {
            const idl__node *pn = &m->nodes[proj];
            b->out_proj_weight = vname(&g, pn->in[1]);
            b->out_proj_transposed = op_is(&g, proj, "Gemm") && idl__attr_int(pn, "transB", 0) != 0;
            int other = -1;
            int res = find_residual(&g, pn->out[0], 0, &other);
            if (res >= 0) {
                b->block_input = vname(&g, other);
                b->block_output = vname(&g, m->nodes[res].out[0]);
            }
        }
        fill_shapes(s, b);
    }
    if (info->n_blocks > 0) {
        const idl_attention_block *b0 = &info->blocks[0], *bl = &info->blocks[info->n_blocks - 1];
        info->embedding = b0->block_input;
        int ev = idl__model_find(m, info->embedding);
        int conv = ev >= 0 ? find_patch_conv(&g, ev) : -1;
        if (conv >= 0) {
            const idl_tensor *co = val(&g, m->nodes[conv].out[0]);
            info->patch_conv = vname(&g, m->nodes[conv].out[0]);
            if (co->ndim == 4) {
                info->grid_h = co->shape[2];
                info->grid_w = co->shape[3];
                info->n_prefix = b0->seq_len - info->grid_h * info->grid_w;
                if (info->n_prefix < 0) info->n_prefix = 0;
            }
        }
        int stop = bl->block_output ? idl__model_find(m, bl->block_output) : -1;
        info->pooling = find_pooling(&g, stop, bl->seq_len);
    }
    graph_free(&g);
    return IDL_OK;
}

/* ---- overrides ---- */

static const char *keep_string(idl_session *s, const char *str, size_t len) {
    if (s->n_attn_strings == (int)(sizeof s->attn_strings / sizeof s->attn_strings[0])) return NULL;
    char *c = idl__malloc(len + 1);
    if (!c) return NULL;
    memcpy(c, str, len);
    c[len] = 0;
    s->attn_strings[s->n_attn_strings++] = c;
    return c;
}

/* Values in execution order (graph inputs, node outputs), then initializers in file order. */
static int ordered_values(const idl_model *m, int *out) {
    int n = 0;
    bool *seen = idl__calloc((size_t)m->n_values + 1, sizeof(bool));
    if (!seen) return -1;
    for (int i = 0; i < m->n_inputs; i++) {
        out[n++] = m->inputs[i];
        seen[m->inputs[i]] = true;
    }
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_out; k++) {
            int v = m->nodes[i].out[k];
            if (v >= 0 && !seen[v]) {
                out[n++] = v;
                seen[v] = true;
            }
        }
    for (int v = 0; v < m->n_values; v++)
        if (!seen[v]) out[n++] = v;
    idl__free(seen);
    return n;
}

static idl_status apply_override(idl_session *s, const char *ov) {
    const idl_model *m = s->m;
    idl_attention_info *info = &s->attn;
    const char *eq = ov ? strchr(ov, '=') : NULL;
    if (!eq || eq == ov || !eq[1])
        return idl__error(IDL_ERR_INVALID_ARG, "attention override '%s' is not field=value",
                          ov ? ov : "(null)");
    size_t fl = (size_t)(eq - ov);
    const char *value = eq + 1;
#define FIELD(x) (fl == strlen(x) && !strncmp(ov, x, fl))
    if (FIELD("grid")) {
        long long h, w;
        char extra;
        if (sscanf(value, "%lldx%lld%c", &h, &w, &extra) != 2 || h <= 0 || w <= 0)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "attention override grid=%s: expected HxW, e.g. 14x14", value);
        int64_t seq = info->n_blocks ? info->blocks[0].seq_len : 0;
        if (seq && h * w > seq)
            return idl__error(IDL_ERR_SHAPE, "grid %lldx%lld has more cells than the %lld tokens",
                              h, w, (long long)seq);
        info->grid_h = h;
        info->grid_w = w;
        info->n_prefix = seq ? seq - h * w : 0;
        return IDL_OK;
    }
    if (FIELD("prefix")) {
        char *end;
        long long k = strtoll(value, &end, 10);
        if (*end || k < 0)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "attention override prefix=%s: expected an integer >= 0", value);
        info->n_prefix = k;
        return IDL_OK;
    }
    if (FIELD("pooling")) {
        if (!strcmp(value, "cls"))
            info->pooling = IDL_POOL_CLS;
        else if (!strcmp(value, "mean"))
            info->pooling = IDL_POOL_MEAN;
        else
            return idl__error(IDL_ERR_INVALID_ARG,
                              "attention override pooling=%s: expected cls or mean", value);
        return IDL_OK;
    }
    if (FIELD("embedding")) {
        if (idl__model_find(m, value) < 0) return idl__unknown_tensor(m, value);
        info->embedding = keep_string(s, value, strlen(value));
        return info->embedding ? IDL_OK : idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    int which = FIELD("probs")             ? 0
                : FIELD("value")           ? 1
                : FIELD("context")         ? 2
                : FIELD("block_input")     ? 3
                : FIELD("out_proj_weight") ? 4
                                           : -1;
#undef FIELD
    if (which < 0)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "unknown attention field in '%s' (probs, value, context, "
                          "block_input, out_proj_weight, embedding, grid, prefix, pooling)",
                          ov);
    int *order = idl__calloc((size_t)m->n_values + 1, sizeof(int));
    if (!order) return idl__error(IDL_ERR_NOMEM, "out of memory");
    int n = ordered_values(m, order), n_match = 0;
    for (int i = 0; i < n; i++)
        if (fnmatch(value, m->values[order[i]].name, 0) == 0) n_match++;
    if (n_match == 0) {
        idl__free(order);
        return idl__unknown_tensor(m, value);
    }
    if (which == 0 && info->n_blocks == 0) { /* define the blocks */
        idl__free(s->attn_blocks);
        s->attn_blocks = idl__calloc((size_t)n_match + 1, sizeof(idl_attention_block));
        if (!s->attn_blocks) {
            idl__free(order);
            return idl__error(IDL_ERR_NOMEM, "out of memory");
        }
        info->blocks = s->attn_blocks;
        info->n_blocks = n_match;
    }
    if (n_match != info->n_blocks) {
        idl__free(order);
        return idl__error(IDL_ERR_INVALID_ARG,
                          "attention override '%s' matches %d tensors but the model has %d "
                          "attention blocks",
                          ov, n_match, info->n_blocks);
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = m->values[order[i]].name;
        if (fnmatch(value, nm, 0) != 0) continue;
        idl_attention_block *b = &info->blocks[k++];
        if (which == 0)
            b->probs = nm;
        else if (which == 1)
            b->value = nm;
        else if (which == 2)
            b->context = nm;
        else if (which == 3)
            b->block_input = nm;
        else
            b->out_proj_weight = nm;
        if (which == 0) fill_shapes(s, b);
    }
    if (which == 3) info->embedding = info->blocks[0].block_input;
    idl__free(order);
    return IDL_OK;
}

void idl__attention_clear(idl_session *s) {
    idl__free(s->attn_blocks);
    s->attn_blocks = NULL;
    for (int i = 0; i < s->n_attn_strings; i++)
        idl__free(s->attn_strings[i]);
    s->n_attn_strings = 0;
    memset(&s->attn, 0, sizeof s->attn);
}

idl_status idl_session_attention(idl_session *s, const char *const *overrides, int n_overrides,
                                 const idl_attention_info **out) {
    if (!s || !out || (n_overrides && !overrides))
        return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    if (!s->have_forward)
        return idl__error(IDL_ERR_INVALID_ARG, "attention discovery needs a forward pass first");
    idl__attention_clear(s);
    idl_status st = discover(s);
    for (int i = 0; !st && i < n_overrides; i++)
        st = apply_override(s, overrides[i]);
    if (st) {
        idl__attention_clear(s);
        return st;
    }
    *out = &s->attn;
    return IDL_OK;
}
