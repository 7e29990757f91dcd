/* cone.c — forward passes that recompute only what a local change of the input changes (the
 * change's dependency cone), for occlusion: a window of 15x15 pixels changes ~11x11 outputs of
 * resnet50's stem and a ~13x13 corner of layer1's 56x56 maps, not the whole network.
 *
 * The model is read from its graph input to the first node this does not follow (a global pool, a
 * reshape, any op whose outputs do not map rectangles of its input to rectangles of its output).
 * Before that node every image-sized value (N, C, H, W) is tracked with a rectangle per row (the
 * positions where it may differ from the clean pass: the window, then what each Conv, pool and
 * element-wise op reads it into). The graph is cut into stages at values that alone carry the
 * image at that point (a ResNet's block outputs), each stage holding at least one spatial window
 * op. Stage j is made into a model of its own (idl__model_sub) with a forward-only session that
 * shares the explained session's backend (its derived weights are found made), run on crops: the
 * crop of stage j's input is the part of its input that the rectangle of its output depends on (its
 * whole dependency box, across the stage's ops), taken from the clean activation with the previous
 * stage's recomputed rectangle written over it. Inside the crop the stage's own padding replaces
 * the neighbours beyond the crop's edges, which corrupts only positions outside the dependency box,
 * so the output rectangle is exact. Crops start at multiples of the stage's stride (so their
 * outputs fall on the full map's grid) and have one size per stage (one plan: a crop that would run
 * past the map is moved back inside it, which keeps the alignment because the size is chosen so).
 * Once a stage's crop would cover more than 60% of its map, that stage and the rest of the network
 * (the tail) run whole on the clean activation with the rectangle written into it.
 *
 * The sums inside the crops are those of a whole pass except where a convolution's algorithm
 * depends on the map size (Winograd's tiles): results agree with whole passes to ~1e-6 of the
 * scores' scale, so occlusion stays Captum's (the method is unchanged: only how its passes are
 * computed). occlusion's full_passes = 1 turns this off. */
#include "interpret/interpret_internal.h"

#include <string.h>

#define CONE_MAX_STAGES 64
#define CONE_MAX_CROP   0.6 /* a stage whose crop covers more of its map ends the recomputation */

/* Rectangles are inclusive [lo, hi] per axis (0: H, 1: W); lo > hi is empty. */
typedef struct box {
    int64_t lo[2], hi[2];
} box;

static bool box_empty(const box *b) {
    return b->lo[0] > b->hi[0] || b->lo[1] > b->hi[1];
}

static void box_union(box *a, const box *b) {
    if (box_empty(b)) return;
    if (box_empty(a)) {
        *a = *b;
        return;
    }
    for (int x = 0; x < 2; x++) {
        a->lo[x] = IDL_MIN(a->lo[x], b->lo[x]);
        a->hi[x] = IDL_MAX(a->hi[x], b->hi[x]);
    }
}

static const box BOX_EMPTY = { { 0, 0 }, { -1, -1 } };

/* How a node maps positions: kind 0 not followed, 1 element-wise (position to itself), 2 a
 * window: output o reads inputs o*s - p .. o*s - p + e - 1 (e = the dilated kernel extent). */
typedef struct geo {
    int kind;
    int64_t e[2], s[2], p[2];
} geo;

static int64_t floordiv(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The rectangle of a window op's output that reads the input rectangle b (out: H, W sizes). */
static box geo_fwd(const geo *g, const box *b, const int64_t *out) {
    if (box_empty(b) || g->kind == 1) return *b;
    box r;
    for (int x = 0; x < 2; x++) {
        r.lo[x] = IDL_MAX(0, -floordiv(-(b->lo[x] + g->p[x] - (g->e[x] - 1)), g->s[x]));
        r.hi[x] = IDL_MIN(out[x] - 1, floordiv(b->hi[x] + g->p[x], g->s[x]));
    }
    return r;
}

/* The rectangle of a window op's input that the output rectangle b reads (in: H, W sizes). */
static box geo_dep(const geo *g, const box *b, const int64_t *in) {
    if (box_empty(b) || g->kind == 1) return *b;
    box r;
    for (int x = 0; x < 2; x++) {
        r.lo[x] = IDL_MAX(0, b->lo[x] * g->s[x] - g->p[x]);
        r.hi[x] = IDL_MIN(in[x] - 1, b->hi[x] * g->s[x] - g->p[x] + g->e[x] - 1);
    }
    return r;
}

static bool is_unary(const char *op) {
    static const char *const u[] = { "Relu",     "LeakyRelu",   "Clip",      "Sigmoid",
                                     "Tanh",     "HardSigmoid", "HardSwish", "Elu",
                                     "Selu",     "Softplus",    "Gelu",      "Erf",
                                     "Identity", "Dropout",     "Abs",       "Neg",
                                     "Exp",      "Sqrt",        "PRelu",     "BatchNormalization",
                                     "Softsign", "Mish",        "Celu",      "ThresholdedRelu" };
    for (size_t i = 0; i < sizeof u / sizeof *u; i++)
        if (!strcmp(op, u[i])) return true;
    return false;
}

static bool is_binary(const char *op) {
    return !strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div") ||
           !strcmp(op, "Max") || !strcmp(op, "Min") || !strcmp(op, "Sum") || !strcmp(op, "Concat");
}

typedef struct cone_ctx {
    const idl_model *m;
    const idl__plan *p;
    const bool *tracked;
} cone_ctx;

static bool val_map(const cone_ctx *c, int v, int64_t *hw) {
    const idl_tensor *t = &c->p->vals[v];
    if (t->ndim != 4 || t->dtype != IDL_DT_F32) return false;
    hw[0] = t->shape[2];
    hw[1] = t->shape[3];
    return true;
}

/* The geometry of node i, whose tracked inputs are image-sized; kind 0 when not followed. */
static geo node_geo(const cone_ctx *c, int i) {
    const idl__node *n = &c->m->nodes[i];
    geo g;
    memset(&g, 0, sizeof g);
    if (*n->domain) return g;
    int64_t ohw[2];
    if (n->n_out < 1 || n->out[0] < 0 || !val_map(c, n->out[0], ohw)) return g;
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0) return g; /* MaxPool's Indices, Dropout's mask, ... */
    /* tracked inputs: maps of the output's size (element-wise) or the window's input */
    int first = -1;
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v < 0 || !c->tracked[v]) continue;
        if (first < 0) first = k;
        int64_t hw[2];
        if (!val_map(c, v, hw)) return g;
        bool window = !strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "MaxPool") ||
                      !strcmp(n->op_type, "AveragePool");
        if (window ? k != 0 : (hw[0] != ohw[0] || hw[1] != ohw[1])) return g;
    }
    if (first < 0) return g;
    if (is_unary(n->op_type)) {
        if (first != 0) return g; /* a tracked slope or scale */
        g.kind = 1;
        return g;
    }
    if (is_binary(n->op_type)) {
        if (!strcmp(n->op_type, "Concat")) {
            int64_t ax = idl__attr_int(n, "axis", 0);
            if (ax != 1 && ax != -3) return g;
        }
        g.kind = 1;
        return g;
    }
    bool conv = !strcmp(n->op_type, "Conv");
    if (!conv && strcmp(n->op_type, "MaxPool") && strcmp(n->op_type, "AveragePool")) return g;
    const char *ap = idl__attr_str(n, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") && strcmp(ap, "VALID")) return g;
    bool valid = !strcmp(ap, "VALID");
    int64_t ks[2];
    if (conv) {
        if (n->n_in < 2 || n->in[1] < 0 || c->tracked[n->in[1]] ||
            (n->n_in > 2 && n->in[2] >= 0 && c->tracked[n->in[2]]))
            return g;
        const idl_tensor *w = &c->p->vals[n->in[1]];
        if (w->ndim != 4) return g;
        ks[0] = w->shape[2];
        ks[1] = w->shape[3];
    } else {
        int cnt;
        const int64_t *k = idl__attr_ints(n, "kernel_shape", &cnt);
        if (!k || cnt != 2) return g;
        ks[0] = k[0];
        ks[1] = k[1];
    }
    int cnt;
    const int64_t *st = idl__attr_ints(n, "strides", &cnt);
    if (st && cnt != 2) return g;
    const int64_t *dl = idl__attr_ints(n, "dilations", &cnt);
    if (dl && cnt != 2) return g;
    const int64_t *pd = idl__attr_ints(n, "pads", &cnt);
    if (pd && cnt != 4) return g;
    for (int x = 0; x < 2; x++) {
        g.s[x] = st ? st[x] : 1;
        g.p[x] = pd && !valid ? pd[x] : 0;
        g.e[x] = (dl ? dl[x] : 1) * (ks[x] - 1) + 1;
        if (g.s[x] < 1 || g.e[x] < 1 || g.p[x] < 0) return g;
    }
    g.kind = 2;
    return g;
}

typedef struct stage {
    idl_model *sub;
    idl_session *s;
    int in_v, out_v;  /* cut values of the model */
    int first, last;  /* nodes of the model in this stage: first .. last - 1 */
    int64_t C, hw[2]; /* channels and map of the input cut */
    int64_t ohw[2];   /* map of the output cut */
    int64_t S[2];     /* alignment of crops (every stride product inside the stage) */
    int64_t so[2];    /* stride from the input cut to the output cut */
    int64_t crop[2];  /* crop size of the input (the whole map for the tail) */
    idl_tensor *in;   /* (rows, C, crop) */
    float *clean;     /* (C, hw) the clean input of this stage, current sample */
} stage;

struct idl__cone {
    idl__xrun *r;
    int n_st; /* stages, the last one the tail */
    stage st[CONE_MAX_STAGES];
    int64_t K;  /* rows (windows) per sample */
    int64_t B;  /* rows per pass */
    box *R;     /* (K, n_st) changed rectangle at the input cut of each stage (stage 0: window) */
    box *org;   /* (K, n_st) crop origin of each stage's input (lo only) */
    float *row; /* one full input row */
};

static void stages_free(idl__cone *c) {
    for (int j = 0; j < c->n_st; j++) {
        idl_session_free(c->st[j].s);
        idl_model_free(c->st[j].sub);
        idl_tensor_free(c->st[j].in);
        idl__free(c->st[j].clean);
    }
    c->n_st = 0;
}

void idl__cone_free(idl__cone *c) {
    if (!c) return;
    stages_free(c);
    idl__free(c->R);
    idl__free(c->org);
    idl__free(c->row);
    idl__free(c);
}

static int64_t lcm64(int64_t a, int64_t b) {
    int64_t x = a, y = b;
    while (y) {
        int64_t t = x % y;
        x = y;
        y = t;
    }
    return a / x * b;
}

/* Stage boundaries: positions (before node i) where one tracked value alone is live, not before
 * an element-wise unary op (which stays with its producer), with a spatial window op since the
 * previous boundary. Fills cut_pos/cut_val (the input at position 0 first), returns the count. */
static int find_cuts(const cone_ctx *cc, int in_v, int zend, const geo *g, int *cut_pos,
                     int *cut_val) {
    const idl_model *m = cc->m;
    int *last = idl__malloc(sizeof(int) * (size_t)m->n_values);
    int *alive = idl__malloc(sizeof(int) * (size_t)(m->n_values + 1)); /* the live values */
    if (!last || !alive) {
        idl__free(last);
        idl__free(alive);
        return 0;
    }
    for (int v = 0; v < m->n_values; v++)
        last[v] = -1;
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0) last[m->nodes[i].in[k]] = i;
    for (int o = 0; o < m->n_outputs; o++)
        last[m->outputs[o]] = m->n_nodes;
    int n = 0, live = 1;
    alive[0] = in_v;
    cut_pos[n] = 0;
    cut_val[n++] = in_v;
    bool spatial = false;
    for (int i = 0; i < zend && n < CONE_MAX_STAGES; i++) {
        const idl__node *nd = &m->nodes[i];
        if (g[i].kind == 2 && (g[i].e[0] > 1 || g[i].e[1] > 1 || g[i].s[0] > 1 || g[i].s[1] > 1))
            spatial = true;
        /* values whose last reader is node i die; its tracked outputs read later are born */
        int keep = 0;
        for (int a = 0; a < live; a++)
            if (last[alive[a]] > i) alive[keep++] = alive[a];
        live = keep;
        for (int k = 0; k < nd->n_out; k++) {
            int v = nd->out[k];
            if (v >= 0 && cc->tracked[v] && last[v] > i) alive[live++] = v;
        }
        if (live != 1 || !spatial || i + 1 >= zend || is_unary(m->nodes[i + 1].op_type)) continue;
        cut_pos[n] = i + 1;
        cut_val[n++] = alive[0];
        spatial = false;
    }
    idl__free(alive);
    idl__free(last);
    return n;
}

idl_status idl__cone_new(idl__xrun *r, int64_t K, void *u, void (*win)(void *, int64_t, int64_t *),
                         int64_t B, idl__cone **out) {
    *out = NULL;
    idl_session *s = r->s;
    const idl_model *m = s->m;
    const idl__plan *p = s->plan;
    if (r->wrt_input < 0 || r->wrt_ndim != 4 || m->n_inputs != 1 || !p) return IDL_ERR_UNSUPPORTED;
    int in_v = m->inputs[r->wrt_input];
    bool *tracked = idl__calloc((size_t)m->n_values, sizeof(bool));
    geo *g = idl__calloc((size_t)m->n_nodes + 1, sizeof(geo));
    int *cut_pos = idl__malloc(sizeof(int) * CONE_MAX_STAGES);
    int *cut_val = idl__malloc(sizeof(int) * CONE_MAX_STAGES);
    idl__cone *c = idl__calloc(1, sizeof *c);
    box *need = idl__malloc(sizeof(box) * (size_t)m->n_values);
    box *cur = idl__malloc(sizeof(box) * (size_t)m->n_values);
    int64_t *cum = idl__malloc(sizeof(int64_t) * 2 * (size_t)m->n_values); /* stride products */
    idl_status st = IDL_ERR_UNSUPPORTED;
    if (!tracked || !g || !cut_pos || !cut_val || !c || !need || !cur || !cum) {
        st = idl__error(IDL_ERR_NOMEM, "out of memory");
        goto done;
    }
    c->r = r;
    c->K = K;
    c->B = B;
    /* the zone: nodes up to the first one that reads a tracked value and is not followed */
    cone_ctx cc = { m, p, tracked };
    tracked[in_v] = true;
    int zend = m->n_nodes;
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__node *n = &m->nodes[i];
        bool reads = false;
        for (int k = 0; k < n->n_in; k++)
            reads = reads || (n->in[k] >= 0 && tracked[n->in[k]]);
        if (p->folded[i] || !reads) continue;
        g[i] = node_geo(&cc, i);
        if (!g[i].kind) {
            zend = i;
            break;
        }
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0) tracked[n->out[k]] = true;
    }
    int ncut = find_cuts(&cc, in_v, zend, g, cut_pos, cut_val);
    if (ncut < 2) goto done; /* no stage to recompute in part */
    c->R = idl__calloc((size_t)(K * ncut), sizeof(box));
    c->org = idl__calloc((size_t)(K * ncut), sizeof(box));
    if (!c->R || !c->org) {
        st = idl__error(IDL_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* changed rectangles at every cut, per window */
    for (int64_t k = 0; k < K; k++) {
        for (int v = 0; v < m->n_values; v++)
            cur[v] = BOX_EMPTY;
        int64_t wb[4];
        win(u, k, wb);
        box w0 = { { wb[0], wb[2] }, { wb[1], wb[3] } };
        cur[in_v] = w0;
        int q = 0;
        for (int i = 0; i <= zend && q < ncut; i++) {
            while (q < ncut && cut_pos[q] == i) {
                c->R[k * ncut + q] = cur[cut_val[q]];
                q++;
            }
            if (i == zend || !g[i].kind) continue;
            const idl__node *n = &m->nodes[i];
            box b = BOX_EMPTY;
            for (int x = 0; x < n->n_in; x++)
                if (n->in[x] >= 0 && tracked[n->in[x]]) box_union(&b, &cur[n->in[x]]);
            int64_t ohw[2] = { 0, 0 };
            val_map(&cc, n->out[0], ohw);
            box o = geo_fwd(&g[i], &b, ohw);
            for (int x = 0; x < n->n_out; x++)
                if (n->out[x] >= 0) cur[n->out[x]] = o;
        }
    }
    /* stages: crop sizes from the dependency boxes; stop where a crop covers too much */
    int nst = 0;
    for (int j = 0; j + 1 < ncut; j++) {
        stage *S = &c->st[nst];
        memset(S, 0, sizeof *S);
        S->in_v = cut_val[j];
        S->out_v = cut_val[j + 1];
        S->first = cut_pos[j];
        S->last = cut_pos[j + 1];
        const idl_tensor *ti = &p->vals[S->in_v];
        S->C = ti->shape[1];
        S->hw[0] = ti->shape[2];
        S->hw[1] = ti->shape[3];
        val_map(&cc, S->out_v, S->ohw);
        if (S->C < 1 || S->hw[0] < 1 || S->hw[1] < 1 || S->ohw[0] < 1 || S->ohw[1] < 1) break;
        /* the stage's alignment: every product of strides from its input */
        memset(cum, 0, sizeof(int64_t) * 2 * (size_t)m->n_values);
        S->S[0] = S->S[1] = 1;
        cum[2 * S->in_v] = cum[2 * S->in_v + 1] = 1;
        for (int i = S->first; i < S->last; i++) {
            const idl__node *n = &m->nodes[i];
            if (!g[i].kind) continue;
            int64_t a[2] = { 0, 0 };
            for (int x = 0; x < n->n_in; x++)
                if (n->in[x] >= 0 && cum[2 * n->in[x]])
                    for (int y = 0; y < 2; y++)
                        a[y] = IDL_MAX(a[y], cum[2 * n->in[x] + y]);
            for (int y = 0; y < 2; y++) {
                if (g[i].kind == 2) a[y] *= g[i].s[y];
                if (a[y] > 0) S->S[y] = lcm64(S->S[y], a[y]);
            }
            for (int x = 0; x < n->n_out; x++)
                if (n->out[x] >= 0) memcpy(&cum[2 * n->out[x]], a, sizeof a);
        }
        S->so[0] = cum[2 * S->out_v];
        S->so[1] = cum[2 * S->out_v + 1];
        if (S->so[0] < 1 || S->so[1] < 1) break;
        /* per window: the dependency box of the output rectangle at the input, aligned down */
        int64_t wmax[2] = { 0, 0 };
        for (int64_t k = 0; k < K; k++) {
            for (int i = S->first; i < S->last; i++)
                for (int x = 0; x < m->nodes[i].n_out; x++)
                    if (m->nodes[i].out[x] >= 0) need[m->nodes[i].out[x]] = BOX_EMPTY;
            need[S->in_v] = BOX_EMPTY;
            need[S->out_v] = c->R[k * ncut + j + 1];
            for (int i = S->last - 1; i >= S->first; i--) {
                const idl__node *n = &m->nodes[i];
                if (!g[i].kind) continue;
                box o = BOX_EMPTY;
                for (int x = 0; x < n->n_out; x++)
                    if (n->out[x] >= 0) box_union(&o, &need[n->out[x]]);
                for (int x = 0; x < n->n_in; x++) {
                    int v = n->in[x];
                    if (v < 0 || !tracked[v]) continue;
                    int64_t ihw[2] = { 0, 0 };
                    val_map(&cc, v, ihw);
                    box d = geo_dep(&g[i], &o, ihw);
                    box_union(&need[v], &d);
                }
            }
            box *D = &c->org[k * ncut + j];
            *D = need[S->in_v];
            for (int y = 0; y < 2 && !box_empty(D); y++) {
                D->lo[y] = D->lo[y] / S->S[y] * S->S[y];
                wmax[y] = IDL_MAX(wmax[y], D->hi[y] - D->lo[y] + 1);
            }
        }
        double frac = 1;
        for (int y = 0; y < 2; y++) {
            /* the smallest size >= wmax that leaves the map's size minus it a multiple of S */
            int64_t w = S->hw[y] - (S->hw[y] - IDL_MAX(wmax[y], 1)) / S->S[y] * S->S[y];
            S->crop[y] = w;
            frac *= (double)w / (double)S->hw[y];
        }
        if (frac > CONE_MAX_CROP) break;
        nst++;
    }
    if (nst == 0) goto done;
    /* the tail: from the last cut reached to the scores */
    stage *T = &c->st[nst];
    memset(T, 0, sizeof *T);
    T->in_v = cut_val[nst];
    T->out_v = m->outputs[r->output];
    const idl_tensor *tt = &p->vals[T->in_v];
    T->C = tt->shape[1];
    T->hw[0] = T->crop[0] = tt->shape[2];
    T->hw[1] = T->crop[1] = tt->shape[3];
    if (T->C < 1 || T->hw[0] < 1 || T->hw[1] < 1) goto done; /* empty maps: whole passes */
    c->n_st = nst + 1;
    /* crop origins: inside the map (the size keeps them aligned); the rectangles of the tail's
     * input are kept at index nst */
    for (int64_t k = 0; k < K; k++) {
        for (int j = 0; j < nst; j++) {
            box *D = &c->org[k * ncut + j];
            for (int y = 0; y < 2; y++) {
                int64_t lo = box_empty(D) ? 0 : D->lo[y];
                D->lo[y] = IDL_MIN(lo, c->st[j].hw[y] - c->st[j].crop[y]);
            }
        }
    }
    /* compact R and org to n_st columns (the tail's input is whole: origin 0) */
    for (int64_t k = 0; k < K; k++)
        for (int j = 0; j < c->n_st; j++) {
            c->R[k * c->n_st + j] = c->R[k * ncut + j];
            c->org[k * c->n_st + j] = j < nst ? c->org[k * ncut + j] : (box){ { 0, 0 }, { 0, 0 } };
        }
    idl_session_opts so = s->opts;
    so.forward_only = 1;
    so.save_for_backward = 0;
    for (int j = 0; j < c->n_st; j++) {
        stage *S = &c->st[j];
        int64_t shp[4] = { B, S->C, S->crop[0], S->crop[1] };
        if ((st = idl__model_sub(m, S->in_v, S->out_v, &S->sub)) ||
            (st = idl__session_new_sub(s, S->sub, &so, &S->s)) ||
            (st = idl_tensor_new(IDL_DT_F32, 4, shp, &S->in)))
            goto done;
        idl_session_set_abort(S->s, s->abort_cb, s->abort_user);
        S->clean = idl__malloc(sizeof(float) * (size_t)(S->C * S->hw[0] * S->hw[1]));
        if (!S->clean) {
            st = idl__error(IDL_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    c->row = idl__malloc(sizeof(float) * (size_t)r->numel);
    if (!c->row) {
        st = idl__error(IDL_ERR_NOMEM, "out of memory");
        goto done;
    }
    idl__log(IDL_LOG_DEBUG, "cone: %d stages on crops, the tail from '%s'", nst,
             m->values[T->in_v].name);
    st = IDL_OK;
done:
    idl__free(tracked);
    idl__free(g);
    idl__free(cut_pos);
    idl__free(cut_val);
    idl__free(need);
    idl__free(cur);
    idl__free(cum);
    if (st) {
        idl__cone_free(c);
        return st;
    }
    *out = c;
    return IDL_OK;
}

/* Copies the (C, h, w) window at (sy, sx) of src (C, H, W) to (dy, dx) of dst (C, Hd, Wd). */
static void win_copy(const float *src, int64_t C, int64_t H, int64_t W, int64_t sy, int64_t sx,
                     float *dst, int64_t Hd, int64_t Wd, int64_t dy, int64_t dx, int64_t h,
                     int64_t w) {
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t y = 0; y < h; y++)
            memcpy(dst + (ch * Hd + dy + y) * Wd + dx, src + (ch * H + sy + y) * W + sx,
                   sizeof(float) * (size_t)w);
}

idl_status idl__cone_sample(idl__cone *c, int64_t i) {
    const idl__xrun *r = c->r;
    memcpy(c->st[0].clean, r->x + i * r->numel, sizeof(float) * (size_t)r->numel);
    for (int j = 0; j + 1 < c->n_st; j++) {
        stage *S = &c->st[j], *D = &c->st[j + 1];
        int64_t shp[4] = { 1, S->C, S->hw[0], S->hw[1] };
        idl_tensor t = idl_tensor_wrap(IDL_DT_F32, 4, shp, S->clean);
        const idl_tensor *in = &t;
        idl_status st = idl_session_forward(S->s, &in, NULL, 1);
        if (st) return st;
        const idl_tensor *o = idl_session_output(S->s, 0);
        if (o->ndim != 4 || o->shape[1] != D->C || o->shape[2] != D->hw[0] ||
            o->shape[3] != D->hw[1])
            return idl__error(IDL_ERR_INTERNAL, "cone: stage %d gives another shape", j);
        memcpy(D->clean, o->data, sizeof(float) * (size_t)(D->C * D->hw[0] * D->hw[1]));
    }
    return IDL_OK;
}

idl_status idl__cone_run(idl__cone *c, const int64_t *ks, int64_t cnt, void *u,
                         void (*point)(void *, int64_t, float *), const int64_t *rows,
                         const int64_t *targets, float *obj) {
    const idl__xrun *r = c->r;
    int n = c->n_st;
    /* stage 0's input: crops of the perturbed rows */
    stage *S0 = &c->st[0];
    for (int64_t b = 0; b < cnt; b++) {
        point(u, rows[b], c->row);
        const box *o = &c->org[ks[b] * n];
        win_copy(c->row, S0->C, S0->hw[0], S0->hw[1], o->lo[0], o->lo[1],
                 (float *)S0->in->data + b * S0->C * S0->crop[0] * S0->crop[1], S0->crop[0],
                 S0->crop[1], 0, 0, S0->crop[0], S0->crop[1]);
    }
    for (int j = 0; j < n; j++) {
        stage *S = &c->st[j];
        const idl_tensor *in = S->in;
        idl_status st = idl_session_forward(S->s, &in, NULL, 1);
        if (st) return st;
        const idl_tensor *y = idl_session_output(S->s, 0);
        if (j == n - 1) {
            if (y->ndim != 2 || y->shape[0] != c->B || y->shape[1] != r->n_classes)
                return idl__error(IDL_ERR_INTERNAL, "cone: the tail gives another shape");
            for (int64_t b = 0; b < cnt; b++)
                obj[b] = idl__objective_value((const float *)y->data + b * r->n_classes,
                                              r->n_classes, targets[b], r->kind);
            break;
        }
        /* the next stage's input: the clean crop with this stage's rectangle written over it */
        stage *D = &c->st[j + 1];
        int64_t ho = y->shape[2], wo = y->shape[3], per = D->C * D->crop[0] * D->crop[1];
        if (y->ndim != 4 || y->shape[1] != D->C)
            return idl__error(IDL_ERR_INTERNAL, "cone: stage %d gives another shape", j);
        for (int64_t b = 0; b < cnt; b++) {
            const box *oi = &c->org[ks[b] * n + j], *od = &c->org[ks[b] * n + j + 1];
            const box *R = &c->R[ks[b] * n + j + 1];
            float *dst = (float *)D->in->data + b * per;
            win_copy(D->clean, D->C, D->hw[0], D->hw[1], od->lo[0], od->lo[1], dst, D->crop[0],
                     D->crop[1], 0, 0, D->crop[0], D->crop[1]);
            if (box_empty(R)) continue;
            int64_t y0 = oi->lo[0] / S->so[0], x0 = oi->lo[1] / S->so[1];
            if (R->lo[0] < y0 || R->hi[0] >= y0 + ho || R->lo[1] < x0 || R->hi[1] >= x0 + wo ||
                R->lo[0] < od->lo[0] || R->hi[0] >= od->lo[0] + D->crop[0] ||
                R->lo[1] < od->lo[1] || R->hi[1] >= od->lo[1] + D->crop[1])
                return idl__error(IDL_ERR_INTERNAL, "cone: stage %d's crop misses the change", j);
            win_copy((const float *)y->data + b * D->C * ho * wo, D->C, ho, wo, R->lo[0] - y0,
                     R->lo[1] - x0, dst, D->crop[0], D->crop[1], R->lo[0] - od->lo[0],
                     R->lo[1] - od->lo[1], R->hi[0] - R->lo[0] + 1, R->hi[1] - R->lo[1] + 1);
        }
    }
    return IDL_OK;
}
