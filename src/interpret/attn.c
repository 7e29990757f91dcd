/* attn.c — explanations from the attention of a transformer (the blocks found by attention
 * discovery, session/attention.c; any field overridable). A_i: block i's attention probabilities
 * (N, heads, S, S); G_i: the gradient of the objective w.r.t. A_i; products of (S, S) matrices
 * per sample, in double.
 *   rollout            Abnar & Zuidema: J = prod_{i >= start} norm(fuse_heads(A_i) + I), later
 *                      blocks on the left; fuse = mean (InterpretDL), max or min; discard_ratio
 *                      zeroes the smallest fused weights first (as jacobgil/vit-explain: per sample
 *                      the int(S*S*ratio) smallest of the flattened (S, S) map, then the class
 *                      token's own entry, flat index 0, restored). Rows normalised to sum 1.
 *                      Class-agnostic.
 *   generic_attention  Chefer et al. 2021: R = I; R += mean_h(relu(G_i * A_i)) R for each block
 *                      from start_layer; variant=interpretdl: relu(mean_h(A_i) * mean_h(G_i))
 *                      (heads averaged first, InterpretDL's GACVInterpreter).
 *   tam                Yuan et al.: s = row(mean_h(A_{L-1})), s <- s mean_h(A_i) + s for
 *                      i = L-2 .. start_layer; W = row(mean_h(relu(mean_alpha G_{L-1}(alpha x)))),
 *                      alpha = linspace(0, 1, steps); map = s * W. Default start_layer 4, steps 20
 *                      (InterpretDL's code; its docstring says 50).
 *   bt                 Chen et al. (TMLR 2023): attentional perception R = I;
 *                      R += Abar_i R, Abar_i = sum_h I_h A_h with I_h = mean|A_h^T G_h| normalised
 *                      over heads (mode=head), or mean_h(A_i) diag(o), o_j = |v_j W_O| / |z_j|
 *                      (mode=token: values v, output projection W_O, block input z); reasoning
 *                      feedback G = mean_h(relu(mean_alpha G_{L-1}(alpha x))); map = row(R * G).
 *                      The head weights use the gradient of the explained target (InterpretDL
 *                      always uses the predicted class there [quirk]).
 *   attention_gradcam  Grad-CAM on the last attention map (Chefer et al.'s baseline): weight of
 *                      head h = mean of G_h, map = row(relu(mean_h(w_h A_h))).
 * row(M): row 0 (the class token; a text model's first token, InterpretDL's choice for NLP),
 * unless the model averages its tokens (discovered pooling "mean", or an image model with no
 * prefix token): then the mean of the patch rows. An image model's map keeps the patch columns on
 * the model's token grid (N, gh, gw); a text model's keeps every token (N, S). alpha x scales the
 * image input, or for a token model the tensor entering the first block (InterpretDL's BT scales
 * the embedding block's output). */
#include "interpret/interpret_internal.h"

#include "interpretdl/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

idl_attn_params idl_attn_params_default(idl_attn_method m) {
    idl_attn_params p;
    memset(&p, 0, sizeof p);
    p.method = m;
    p.start_layer = m == IDL_TAM ? 4 : 0;
    p.steps = 20;
    return p;
}

typedef struct attn_run {
    idl__xrun *r;
    const idl_attn_params *p;
    const idl_attention_info *ai;
    int L;
    int64_t N, H, S;
    double *A;    /* (L, N, H, S, S) */
    double *G;    /* (L, N, H, S, S) gradients (generic_attention, bt head mode, gradcam) */
    double *Gacc; /* (N, H, S, S) mean over the path of the last block's gradient (tam, bt) */
} attn_run;

#define AT(base, l, n, h) ((base) + ((((int64_t)(l)*ar->N + (n)) * ar->H + (h)) * ar->S * ar->S))

static idl_status read_probs(attn_run *ar, int l, const idl_tensor *t, double *dst) {
    int64_t want = ar->N * ar->H * ar->S * ar->S;
    if (!t || t->dtype != IDL_DT_F32 || idl_tensor_numel(t) != want) {
        char b[128];
        return idl__error(IDL_ERR_SHAPE,
                          "attention of block %d ('%s') is %s; expected %lld x %lld heads x %lld x "
                          "%lld values",
                          l, ar->ai->blocks[l].probs,
                          t ? idl__shape_str(t->ndim, t->shape, b, sizeof b) : "missing",
                          (long long)ar->N, (long long)ar->H, (long long)ar->S, (long long)ar->S);
    }
    const float *v = t->data;
    for (int64_t j = 0; j < want; j++)
        dst[j] = v[j];
    return IDL_OK;
}

typedef struct ranked {
    double v;
    int64_t j;
} ranked;

/* ascending value, then index (a deterministic order for ties) */
static int by_value(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* C = A B for (S, S) matrices. */
static void matmul(const double *A, const double *B, double *C, int64_t S) {
    for (int64_t i = 0; i < S; i++) {
        double *c = C + i * S;
        memset(c, 0, sizeof(double) * (size_t)S);
        for (int64_t k = 0; k < S; k++) {
            double a = A[i * S + k];
            if (a == 0) continue;
            const double *b = B + k * S;
            for (int64_t j = 0; j < S; j++)
                c[j] += a * b[j];
        }
    }
}

/* R <- R + Abar R */
static void add_flow(double *R, const double *Abar, double *tmp, int64_t S) {
    matmul(Abar, R, tmp, S);
    for (int64_t j = 0; j < S * S; j++)
        R[j] += tmp[j];
}

/* mean over heads of sample n of base (or of relu(base) with relu) into out (S, S) */
static void head_mean(const attn_run *ar, const double *base_n, bool relu, double *out) {
    int64_t SS = ar->S * ar->S;
    memset(out, 0, sizeof(double) * (size_t)SS);
    for (int64_t h = 0; h < ar->H; h++)
        for (int64_t j = 0; j < SS; j++) {
            double v = base_n[h * SS + j];
            out[j] += (relu && v < 0 ? 0 : v) / (double)ar->H;
        }
}

/* row(M): the class token's row, or the mean of the patch rows */
static void select_row(const attn_run *ar, const double *M, double *row) {
    int64_t S = ar->S, pre = ar->ai->grid_h > 0 ? ar->ai->n_prefix : 0;
    bool mean = ar->ai->pooling == IDL_POOL_MEAN || (ar->ai->grid_h > 0 && pre == 0);
    if (!mean || S - pre <= 0) {
        memcpy(row, M, sizeof(double) * (size_t)S);
        return;
    }
    memset(row, 0, sizeof(double) * (size_t)S);
    for (int64_t i = pre; i < S; i++)
        for (int64_t j = 0; j < S; j++)
            row[j] += M[i * S + j] / (double)(S - pre);
}

/* ---- the path rows (tam, bt): gradient of the last block's attention at alpha x ---- */

static int64_t path_sample(void *u, int64_t row) {
    return row / ((attn_run *)u)->p->steps;
}

static double path_alpha(const attn_run *ar, int64_t k) {
    return ar->p->steps > 1 ? (double)k / (double)(ar->p->steps - 1) : 0.0;
}

static void path_point(void *u, int64_t row, float *dst) {
    attn_run *ar = u;
    int64_t i = row / ar->p->steps;
    double a = path_alpha(ar, row % ar->p->steps);
    const float *x = ar->r->x + i * ar->r->numel;
    for (int64_t j = 0; j < ar->r->numel; j++)
        dst[j] = (float)(a * x[j]);
}

static void path_take(void *u, int64_t row, const float *grad, float obj) {
    (void)obj;
    attn_run *ar = u;
    int64_t i = row / ar->p->steps, n = ar->H * ar->S * ar->S;
    double *acc = ar->Gacc + i * n;
    for (int64_t j = 0; grad && j < n; j++)
        acc[j] += (double)grad[j] / (double)ar->p->steps;
}

static idl_status path_gradients(attn_run *ar) {
    idl__xrun *r = ar->r;
    const char *emb = ar->ai->embedding;
    bool tokens = true;
    for (int i = 0; i < r->n_in; i++)
        tokens = tokens && r->in[i]->dtype != IDL_DT_F32;
    idl_status st = idl__x_wrt(r, tokens ? emb : NULL);
    if (st) return st;
    ar->Gacc = idl__calloc((size_t)(ar->N * ar->H * ar->S * ar->S), sizeof(double));
    if (!ar->Gacc) return idl__error(IDL_ERR_NOMEM, "out of memory");
    r->grad_at = ar->ai->blocks[ar->L - 1].probs;
    r->grad_numel = ar->H * ar->S * ar->S;
    idl__xrows rows = { r->N * ar->p->steps, ar, path_sample, path_point, path_take, NULL, NULL };
    r->total = r->N + rows.n;
    st = idl__x_eval(r, &rows, true);
    r->grad_at = NULL;
    return st;
}

/* ---- bt token mode: o_j = |v_j W_O| / |z_j| ---- */

static idl_status token_norms(attn_run *ar, int l, int64_t n, double *o) {
    idl_session *s = ar->r->s;
    const idl_attention_block *b = &ar->ai->blocks[l];
    if (!b->value || !b->out_proj_weight || !b->block_input)
        return idl__error(IDL_ERR_NOT_FOUND,
                          "bt mode=token: block %d lacks its values, output projection or input "
                          "(name them: value=GLOB out_proj_weight=GLOB block_input=GLOB)",
                          l);
    const idl_tensor *v = idl_session_tensor(s, b->value);
    const idl_tensor *w = idl_session_tensor(s, b->out_proj_weight);
    const idl_tensor *z = idl_session_tensor(s, b->block_input);
    if (!v || !w || !z) return idl__error_prefix(IDL_ERR_NOT_FOUND, "bt: block %d: ", l);
    int64_t S = ar->S, H = ar->H, dv = idl_tensor_numel(v) / (ar->N * H * S);
    int64_t D = idl_tensor_numel(z) / (ar->N * S);
    if (w->dtype != IDL_DT_F32 || w->ndim != 2 || idl_tensor_numel(v) != ar->N * H * S * dv ||
        idl_tensor_numel(z) != ar->N * S * D || w->shape[0] * w->shape[1] != H * dv * D)
        return idl__error(IDL_ERR_SHAPE,
                          "bt mode=token: block %d: values, projection and block input do not fit "
                          "(values %lld per head and token, block width %lld)",
                          l, (long long)dv, (long long)D);
    const float *vv = v->data, *wv = w->data, *zv = z->data;
    int64_t in = H * dv;
    for (int64_t j = 0; j < S; j++) {
        double num = 0, den = 0;
        for (int64_t d = 0; d < D; d++) {
            double acc = 0;
            for (int64_t h = 0; h < H; h++)
                for (int64_t e = 0; e < dv; e++) {
                    double x = vv[((n * H + h) * S + j) * dv + e];
                    int64_t k = h * dv + e;
                    acc += x * (b->out_proj_transposed ? wv[d * in + k] : wv[k * D + d]);
                }
            num += acc * acc;
        }
        for (int64_t d = 0; d < D; d++)
            den += (double)zv[(n * S + j) * D + d] * zv[(n * S + j) * D + d];
        o[j] = den > 0 ? sqrt(num) / sqrt(den) : 0;
    }
    return IDL_OK;
}

/* ---- the maps ---- */

static idl_status compute(attn_run *ar, float *out) {
    const idl_attn_params *p = ar->p;
    int64_t S = ar->S, SS = S * S, H = ar->H;
    double *R = idl__malloc(sizeof(double) * (size_t)SS);
    double *M = idl__malloc(sizeof(double) * (size_t)SS);
    double *T = idl__malloc(sizeof(double) * (size_t)SS);
    double *row = idl__malloc(sizeof(double) * (size_t)S);
    double *aux = idl__malloc(sizeof(double) * (size_t)(S > H ? S : H));
    ranked *ord = p->method == IDL_ROLLOUT && p->discard_ratio > 0
                      ? idl__malloc(sizeof(ranked) * (size_t)SS)
                      : NULL;
    idl_status st =
        R && M && T && row && aux && (ord || p->method != IDL_ROLLOUT || !(p->discard_ratio > 0))
            ? IDL_OK
            : idl__error(IDL_ERR_NOMEM, "out of memory");
    int start = p->start_layer;
    int64_t pre = ar->ai->grid_h > 0 ? ar->ai->n_prefix : 0, cols = S - pre;
    for (int64_t n = 0; !st && n < ar->N; n++) {
        for (int64_t j = 0; j < SS; j++)
            R[j] = j % (S + 1) == 0;
        switch (p->method) {
        case IDL_ROLLOUT:
            for (int l = start; l < ar->L; l++) {
                const double *A = AT(ar->A, l, n, 0);
                for (int64_t j = 0; j < SS; j++) { /* fuse heads */
                    double f = A[j];
                    for (int64_t h = 1; h < H; h++) {
                        double v = A[h * SS + j];
                        f = p->head_fusion == 0   ? f + v
                            : p->head_fusion == 1 ? fmax(f, v)
                                                  : fmin(f, v);
                    }
                    M[j] = p->head_fusion == 0 ? f / (double)H : f;
                }
                int64_t drop = (int64_t)((double)SS * p->discard_ratio);
                if (drop > 0) { /* the drop smallest entries zeroed, then flat index 0 restored */
                    for (int64_t j = 0; j < SS; j++)
                        ord[j].v = M[j], ord[j].j = j;
                    qsort(ord, (size_t)SS, sizeof *ord, by_value);
                    for (int64_t k = 0; k < drop; k++)
                        if (ord[k].j != 0) M[ord[k].j] = 0;
                }
                for (int64_t i = 0; i < S; i++) {
                    double sum = 0;
                    M[i * S + i] += 1;
                    for (int64_t j = 0; j < S; j++)
                        sum += M[i * S + j];
                    for (int64_t j = 0; sum > 0 && j < S; j++)
                        M[i * S + j] /= sum;
                }
                matmul(M, R, T, S);
                memcpy(R, T, sizeof(double) * (size_t)SS);
            }
            select_row(ar, R, row);
            break;
        case IDL_GENERIC_ATTENTION:
            for (int l = start; l < ar->L; l++) {
                const double *A = AT(ar->A, l, n, 0), *G = AT(ar->G, l, n, 0);
                if (p->interpretdl) {
                    head_mean(ar, A, false, M);
                    head_mean(ar, G, false, T);
                    for (int64_t j = 0; j < SS; j++)
                        M[j] = M[j] * T[j] > 0 ? M[j] * T[j] : 0;
                } else {
                    memset(M, 0, sizeof(double) * (size_t)SS);
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t j = 0; j < SS; j++) {
                            double v = A[h * SS + j] * G[h * SS + j];
                            M[j] += (v > 0 ? v : 0) / (double)H;
                        }
                }
                add_flow(R, M, T, S);
            }
            select_row(ar, R, row);
            break;
        case IDL_TAM: {
            double *s = aux; /* s over the tokens (S); aux has room for S */
            head_mean(ar, AT(ar->A, ar->L - 1, n, 0), false, M);
            select_row(ar, M, s);
            for (int l = ar->L - 2; l >= start; l--) {
                head_mean(ar, AT(ar->A, l, n, 0), false, M);
                for (int64_t j = 0; j < S; j++) {
                    double v = 0;
                    for (int64_t k = 0; k < S; k++)
                        v += s[k] * M[k * S + j];
                    row[j] = v + s[j];
                }
                memcpy(s, row, sizeof(double) * (size_t)S);
            }
            head_mean(ar, ar->Gacc + n * H * SS, true, M);
            select_row(ar, M, row);
            for (int64_t j = 0; j < S; j++)
                row[j] *= s[j];
            break;
        }
        case IDL_BT:
            for (int l = start; !st && l < ar->L; l++) {
                const double *A = AT(ar->A, l, n, 0);
                if (!p->token_mode) {
                    const double *G = AT(ar->G, l, n, 0);
                    double tot = 0;
                    for (int64_t h = 0; h < H; h++) { /* I_h = mean |A_h^T G_h| */
                        double acc = 0;
                        const double *Ah = A + h * SS, *Gh = G + h * SS;
                        for (int64_t i = 0; i < S; i++)
                            for (int64_t j = 0; j < S; j++) {
                                double v = 0;
                                for (int64_t k = 0; k < S; k++)
                                    v += Ah[k * S + i] * Gh[k * S + j];
                                acc += fabs(v);
                            }
                        aux[h] = acc / (double)SS;
                        tot += aux[h];
                    }
                    memset(M, 0, sizeof(double) * (size_t)SS);
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t j = 0; j < SS; j++)
                            M[j] += (tot > 0 ? aux[h] / tot : 0) * A[h * SS + j];
                } else { /* o_j of the clean pass, kept in G as (L, N, S) */
                    const double *o = ar->G + ((int64_t)l * ar->N + n) * S;
                    head_mean(ar, A, false, M);
                    for (int64_t i = 0; i < S; i++)
                        for (int64_t j = 0; j < S; j++)
                            M[i * S + j] *= o[j];
                }
                add_flow(R, M, T, S);
            }
            head_mean(ar, ar->Gacc + n * H * SS, true, M);
            for (int64_t j = 0; j < SS; j++)
                M[j] *= R[j];
            select_row(ar, M, row);
            break;
        case IDL_ATTENTION_GRADCAM: {
            const double *A = AT(ar->A, ar->L - 1, n, 0), *G = AT(ar->G, ar->L - 1, n, 0);
            memset(M, 0, sizeof(double) * (size_t)SS);
            for (int64_t h = 0; h < H; h++) {
                double w = 0;
                for (int64_t j = 0; j < SS; j++)
                    w += G[h * SS + j];
                w /= (double)SS;
                for (int64_t j = 0; j < SS; j++)
                    M[j] += w * A[h * SS + j] / (double)H;
            }
            for (int64_t j = 0; j < SS; j++)
                M[j] = M[j] > 0 ? M[j] : 0;
            select_row(ar, M, row);
            break;
        }
        }
        for (int64_t j = 0; j < cols; j++)
            out[n * cols + j] = (float)row[pre + j];
    }
    idl__free(R);
    idl__free(M);
    idl__free(T);
    idl__free(row);
    idl__free(aux);
    idl__free(ord);
    return st;
}

idl_status idl_attention_explain(idl_session *s, const idl_explain_request *rq,
                                 const idl_attn_params *p, idl_explanation *out) {
    static const char *const names[] = { "rollout", "generic_attention", "tam", "bt",
                                         "attention_gradcam" };
    if (out) memset(out, 0, sizeof *out);
    if (!s || !rq || !p || !out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if ((int)p->method < 0 || p->method > IDL_ATTENTION_GRADCAM)
        return idl__error(IDL_ERR_INVALID_ARG, "unknown attention method %d", (int)p->method);
    const char *name = names[p->method];
    if (p->start_layer < 0 || p->steps < 1 || !(p->discard_ratio >= 0 && p->discard_ratio < 1) ||
        p->head_fusion < 0 || p->head_fusion > 2)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: start_layer >= 0, steps >= 1, discard_ratio in [0, 1) needed", name);
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, false);
    if (st) return st;
    attn_run ar;
    memset(&ar, 0, sizeof ar);
    ar.r = &r;
    ar.p = p;
    ar.N = r.N;
    st = idl_session_attention(s, p->overrides, p->n_overrides, &ar.ai);
    if (!st && ar.ai->n_blocks == 0)
        st = idl__error(IDL_ERR_NOT_FOUND,
                        "%s: no attention found in the model (name it: --set probs=GLOB; "
                        "interpretdl info lists the Softmax outputs)",
                        name);
    if (!st) {
        ar.L = ar.ai->n_blocks;
        ar.H = ar.ai->blocks[0].heads;
        ar.S = ar.ai->blocks[0].seq_len;
        for (int l = 0; l < ar.L; l++)
            if (!ar.ai->blocks[l].probs || ar.ai->blocks[l].heads != ar.H ||
                ar.ai->blocks[l].seq_len != ar.S)
                st = idl__error(IDL_ERR_SHAPE, "%s: the attention blocks differ in heads or length",
                                name);
        if (!st && (ar.H < 1 || ar.S < 1))
            st = idl__error(IDL_ERR_SHAPE, "%s: attention heads / length unknown", name);
    }
    int64_t SS = ar.S * ar.S, per = ar.N * ar.H * SS;
    if (!st) {
        ar.A = idl__malloc(sizeof(double) * (size_t)(per * ar.L));
        if (!ar.A) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int l = 0; !st && l < ar.L; l++)
            st = read_probs(&ar, l, idl_session_tensor(s, ar.ai->blocks[l].probs), ar.A + l * per);
    }
    bool grads = p->method == IDL_GENERIC_ATTENTION || p->method == IDL_ATTENTION_GRADCAM ||
                 (p->method == IDL_BT && !p->token_mode);
    if (!st && grads) { /* attention_gradcam needs the last block only: a shorter backward */
        const char *wrt[256];
        int first = p->method == IDL_ATTENTION_GRADCAM ? ar.L - 1 : 0;
        if (ar.L > 256) st = idl__error(IDL_ERR_UNSUPPORTED, "%s: more than 256 blocks", name);
        for (int l = first; !st && l < ar.L; l++)
            wrt[l - first] = ar.ai->blocks[l].probs;
        idl_objective o = idl__x_objective(&r);
        if (!st) st = idl_session_backward(s, &o, wrt, ar.L - first);
        ar.G = st ? NULL : idl__calloc((size_t)(per * ar.L), sizeof(double));
        if (!st && !ar.G) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int l = first; !st && l < ar.L; l++)
            st = read_probs(&ar, l, idl_session_grad(s, wrt[l - first]), ar.G + l * per);
    }
    /* bt token mode: the token norms come from the clean pass, before the path overwrites the
     * values and block inputs; kept in G as (L, N, S) */
    if (!st && p->method == IDL_BT && p->token_mode) {
        ar.G = idl__calloc((size_t)(ar.L * ar.N * ar.S), sizeof(double));
        if (!ar.G) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int l = p->start_layer; !st && l < ar.L; l++)
            for (int64_t n = 0; !st && n < ar.N; n++)
                st = token_norms(&ar, l, n, ar.G + ((int64_t)l * ar.N + n) * ar.S);
    }
    if (!st && (p->method == IDL_TAM || p->method == IDL_BT)) st = path_gradients(&ar);
    int64_t gh = ar.ai && ar.ai->grid_h > 0 ? ar.ai->grid_h : 0, gw = gh ? ar.ai->grid_w : 0;
    if (!st) {
        int64_t shape3[3] = { r.N, gh, gw }, shape2[2] = { r.N, ar.S };
        st = gh ? idl__x_result(&r, out, 3, shape3) : idl__x_result(&r, out, 2, shape2);
        if (!st && gh && gh * gw != ar.S - ar.ai->n_prefix)
            st = idl__error(IDL_ERR_SHAPE, "%s: grid %lldx%lld does not fit %lld tokens", name,
                            (long long)gh, (long long)gw, (long long)ar.S);
    }
    if (!st) {
        out->wrt[0] = 0;
        st = compute(&ar, out->attribution->data);
    }
    if (st) idl_explanation_clear(out);
    idl__free(ar.A);
    idl__free(ar.G);
    idl__free(ar.Gacc);
    idl__x_end(&r);
    return st;
}
