/* cam.c — class activation maps: CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, and Guided
 * Grad-CAM. A: the layer's activation (N, K, h, w); G: the gradient of the objective w.r.t. A.
 *   cam        M = sum_k W[t, k] A_k, W the fully-connected weight after global pooling (Zhou et
 *              al.; no ReLU by default: the paper shows the raw map)
 *   gradcam    M = ReLU(sum_k mean_hw(G_k) A_k) (Selvaraju et al.; InterpretDL averages over k
 *              instead of summing, a constant factor [deviation]; Captum's LayerGradCam leaves out
 *              the ReLU unless asked: relu=0 gives its default)
 *   gradcam++  weights sum_hw ReLU(G) * a, a = G^2 / (2 G^2 + sum_hw(A) G^3 + 1e-6), a = 0 where
 *              G = 0 (Chattopadhay et al., in the closed form pytorch-grad-cam uses)
 *   xgradcam   weights sum_hw G A / (sum_hw A + 1e-7) (Fu et al.)
 *   layercam   M = ReLU(sum_k ReLU(G_k) * A_k) per position (Jiang et al.)
 * Output (N, h, w) at the layer's resolution; normalize=1 maps each sample to [0, 1] by
 * (M - min) / (max - min + 1e-7); upsample=1 resizes to the input's (H, W) bilinearly with
 * half-pixel centres (exactly OpenCV's INTER_LINEAR on float32); both together follow
 * pytorch-grad-cam: normalise, resize, normalise again.
 * The layer: a tensor name, or automatically the input of the last global average pooling
 * (GlobalAveragePool, ReduceMean over the two spatial axes, or an AveragePool covering them) whose
 * input is 4-D. A 3-D token tensor (N, S, D) of a vision transformer is laid out on the model's
 * token grid (prefix tokens dropped) as (N, D, h, w); automatic on a transformer: the residual
 * stream entering the last attention block.
 * Guided Grad-CAM: guided backpropagation times Grad-CAM (ReLU) resized to the input, nearest
 * (Captum's default) or bilinear (the paper). */
#include "interpret/interpret_internal.h"

#include "interpretdl/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

idl_cam_params idl_cam_params_default(void) {
    idl_cam_params p;
    memset(&p, 0, sizeof p);
    p.kind = IDL_GRADCAM;
    p.relu = -1;
    return p;
}

static bool node_ints(const idl_model *m, const idl__node *n, const char *attr, int input,
                      int64_t *out, int *cnt) {
    const idl__attr *a = idl__attr_get(n, attr);
    *cnt = 0;
    if (a && a->n_ints <= 8) {
        for (int k = 0; k < a->n_ints; k++)
            out[k] = a->ints[k];
        *cnt = a->n_ints;
        return true;
    }
    if (input < n->n_in && n->in[input] >= 0) {
        const idl__value *v = &m->values[n->in[input]];
        if (v->kind == IDL__VAL_INIT && v->init && v->init->ndim == 1 && v->init->shape[0] <= 8 &&
            (v->init->dtype == IDL_DT_I64 || v->init->dtype == IDL_DT_I32)) {
            for (int64_t k = 0; k < v->init->shape[0]; k++)
                out[k] = v->init->dtype == IDL_DT_I64 ? ((const int64_t *)v->init->data)[k]
                                                      : ((const int32_t *)v->init->data)[k];
            *cnt = (int)v->init->shape[0];
            return true;
        }
    }
    return false;
}

/* Whether node n pools its 4-D input globally over the two spatial axes. */
static bool is_global_pool(idl_session *s, const idl__node *n) {
    const idl_model *m = s->m;
    if (n->n_in < 1 || n->in[0] < 0) return false;
    const idl_tensor *x = &s->plan->vals[n->in[0]];
    if (x->ndim != 4 || x->dtype != IDL_DT_F32) return false;
    if (!strcmp(n->op_type, "GlobalAveragePool")) return true;
    int64_t v[8];
    int c;
    if (!strcmp(n->op_type, "ReduceMean")) {
        if (!node_ints(m, n, "axes", 1, v, &c) || c != 2) return false;
        int64_t a0 = v[0] < 0 ? v[0] + 4 : v[0], a1 = v[1] < 0 ? v[1] + 4 : v[1];
        return (a0 == 2 && a1 == 3) || (a0 == 3 && a1 == 2);
    }
    if (!strcmp(n->op_type, "AveragePool")) {
        if (!node_ints(m, n, "kernel_shape", 99, v, &c) || c != 2) return false;
        return v[0] == x->shape[2] && v[1] == x->shape[3];
    }
    return false;
}

/* The automatic layer; NULL with an error set when none. */
static const char *auto_layer(idl_session *s, int *pool_node) {
    const idl_model *m = s->m;
    *pool_node = -1;
    for (int i = 0; i < m->n_nodes; i++)
        if (is_global_pool(s, &m->nodes[i])) *pool_node = i;
    if (*pool_node >= 0) return m->values[m->nodes[*pool_node].in[0]].name;
    const idl_attention_info *ai = NULL;
    if (idl_session_attention(s, NULL, 0, &ai) == IDL_OK && ai->n_blocks > 0 && ai->grid_h > 0 &&
        ai->blocks[ai->n_blocks - 1].block_input)
        return ai->blocks[ai->n_blocks - 1].block_input;
    idl__error(IDL_ERR_NOT_FOUND,
               "no layer given and none found automatically (no global average pooling of a 4-D "
               "tensor, no vision-transformer token grid); name one with --layer (interpretdl info "
               "lists candidates)");
    return NULL;
}

/* Layout of the layer: (N, K, h, w) directly, or tokens (N, S, D) on the grid. */
typedef struct layer_view {
    int64_t N, K, h, w;
    int64_t prefix; /* tokens: first grid token; -1: a 4-D tensor */
} layer_view;

static idl_status view_layer(idl_session *s, const char *name, const idl_tensor *a, layer_view *v) {
    char buf[128];
    if (a->dtype != IDL_DT_F32)
        return idl__error(IDL_ERR_INVALID_ARG, "layer '%s' is %s, not float32", name,
                          idl_dtype_name(a->dtype));
    if (a->ndim == 4) {
        v->N = a->shape[0], v->K = a->shape[1], v->h = a->shape[2], v->w = a->shape[3];
        v->prefix = -1;
        return IDL_OK;
    }
    if (a->ndim == 3) {
        const idl_attention_info *ai = NULL;
        idl_status st = idl_session_attention(s, NULL, 0, &ai);
        if (st) return st;
        if (ai->grid_h > 0 && ai->grid_h * ai->grid_w + ai->n_prefix == a->shape[1]) {
            v->N = a->shape[0], v->K = a->shape[2], v->h = ai->grid_h, v->w = ai->grid_w;
            v->prefix = ai->n_prefix;
            return IDL_OK;
        }
    }
    return idl__error(IDL_ERR_SHAPE,
                      "layer '%s' has shape %s; CAM methods need (N, C, H, W) or the tokens "
                      "(N, S, D) of a vision transformer whose grid was found",
                      name, idl__shape_str(a->ndim, a->shape, buf, sizeof buf));
}

/* Copies a layer tensor into (N, K, h, w) order. */
static void gather_layer(const layer_view *v, const float *src, float *dst) {
    if (v->prefix < 0) {
        memcpy(dst, src, sizeof(float) * (size_t)(v->N * v->K * v->h * v->w));
        return;
    }
    int64_t hw = v->h * v->w, S = hw + v->prefix;
    for (int64_t i = 0; i < v->N; i++)
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = 0; k < v->K; k++)
                dst[(i * v->K + k) * hw + p] = src[(i * S + v->prefix + p) * v->K + k];
}

/* Finds W (K_classes x C) of the fully-connected layer fed by the global pool node. */
static idl_status fc_weights(idl_session *s, int pool, int64_t C, int64_t ncls, const float **W,
                             bool *transposed, float *alpha) {
    const idl_model *m = s->m;
    int v = m->nodes[pool].out[0];
    static const char *const pass[] = { "Flatten", "Reshape", "Squeeze", "Identity" };
    for (int hop = 0; hop < 8; hop++) {
        int next = -1, uses = 0;
        for (int i = pool + 1; i < m->n_nodes; i++)
            for (int k = 0; k < m->nodes[i].n_in; k++)
                if (m->nodes[i].in[k] == v) next = i, uses++;
        if (uses != 1) break;
        const idl__node *n = &m->nodes[next];
        bool through = false;
        for (size_t k = 0; k < sizeof pass / sizeof *pass; k++)
            through = through || !strcmp(n->op_type, pass[k]);
        if (through && n->in[0] == v) {
            v = n->out[0];
            continue;
        }
        bool gemm = !strcmp(n->op_type, "Gemm"), mm = !strcmp(n->op_type, "MatMul");
        if ((gemm || mm) && n->in[0] == v && n->n_in >= 2 && n->in[1] >= 0) {
            const idl__value *b = &m->values[n->in[1]];
            const idl__attr *ta = gemm ? idl__attr_get(n, "transA") : NULL;
            const idl__attr *tb = gemm ? idl__attr_get(n, "transB") : NULL;
            const idl__attr *al = gemm ? idl__attr_get(n, "alpha") : NULL;
            if (b->kind == IDL__VAL_INIT && b->init && b->init->dtype == IDL_DT_F32 &&
                b->init->ndim == 2 && !(ta && ta->i)) {
                *transposed = tb && tb->i;
                int64_t rows = b->init->shape[*transposed ? 1 : 0];
                int64_t cols = b->init->shape[*transposed ? 0 : 1];
                if (rows == C && cols == ncls) {
                    *W = b->init->data;
                    *alpha = al ? al->f : 1.0f;
                    return IDL_OK;
                }
            }
        }
        break;
    }
    return idl__error(IDL_ERR_UNSUPPORTED,
                      "cam needs the global pooling to feed a fully-connected layer (Gemm or "
                      "MatMul with a constant weight of %lld x %lld); use gradcam, which equals "
                      "CAM up to scale there",
                      (long long)C, (long long)ncls);
}

/* PyTorch's F.interpolate(mode="nearest") index rule. */
static int64_t nearest_src(int64_t o, int64_t in, int64_t out) {
    if (out == 2 * in) return o >> 1;
    float scale = (float)in / (float)out;
    int64_t i = (int64_t)floorf((float)o * scale);
    return i < in - 1 ? i : in - 1;
}

static void resize_nearest(const float *src, int64_t h, int64_t w, float *dst, int64_t H,
                           int64_t W) {
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            dst[y * W + x] = src[nearest_src(y, h, H) * w + nearest_src(x, w, W)];
}

static void minmax(float *v, int64_t n) {
    float lo = v[0], hi = v[0];
    for (int64_t j = 1; j < n; j++)
        lo = v[j] < lo ? v[j] : lo;
    for (int64_t j = 0; j < n; j++) {
        v[j] -= lo;
        hi = j == 0 || v[j] > hi ? v[j] : hi;
    }
    for (int64_t j = 0; j < n; j++)
        v[j] = v[j] / (1e-7f + hi);
}

/* The input's spatial size (first float32 4-D graph input). */
static bool input_hw(const idl__xrun *r, int64_t *H, int64_t *W) {
    for (int i = 0; i < r->n_in; i++)
        if (r->in[i]->dtype == IDL_DT_F32 && r->in[i]->ndim == 4) {
            *H = r->in[i]->shape[2];
            *W = r->in[i]->shape[3];
            return true;
        }
    return false;
}

idl_status idl__layer_activation(idl__xrun *r, const char *name, char *name_out, float **A,
                                 int64_t *K, int64_t *h, int64_t *w) {
    int pool = -1;
    *A = NULL;
    if (!name || !*name) name = auto_layer(r->s, &pool);
    if (!name) return IDL_ERR_NOT_FOUND;
    if (strlen(name) >= 256) return idl__error(IDL_ERR_INVALID_ARG, "layer name too long");
    const idl_tensor *a = idl_session_tensor(r->s, name);
    if (!a) return idl__error_prefix(IDL_ERR_NOT_FOUND, "layer: ");
    layer_view v;
    idl_status st = view_layer(r->s, name, a, &v);
    if (st) return st;
    *A = idl__malloc(sizeof(float) * (size_t)(v.N * v.K * v.h * v.w));
    if (!*A) return idl__error(IDL_ERR_NOMEM, "out of memory");
    gather_layer(&v, a->data, *A);
    strcpy(name_out, name);
    *K = v.K, *h = v.h, *w = v.w;
    return IDL_OK;
}

/* ---- Score-CAM and Ablation-CAM: channel weights from forward passes ---- */

idl_score_cam_params idl_score_cam_params_default(void) {
    idl_score_cam_params p;
    memset(&p, 0, sizeof p);
    p.cam = idl_cam_params_default();
    return p;
}

/* torch.nn.UpsamplingBilinear2d (align_corners=True) of one (h, w) map to (H, W), in float. */
static void upsample_corners(const float *src, int64_t h, int64_t w, float *dst, int64_t H,
                             int64_t W) {
    float sy = H > 1 ? (float)(h - 1) / (float)(H - 1) : 0,
          sx = W > 1 ? (float)(w - 1) / (float)(W - 1) : 0;
    for (int64_t y = 0; y < H; y++) {
        float fy = sy * (float)y;
        int64_t y0 = (int64_t)fy, y1 = y0 + (y0 < h - 1);
        float ly = fy - (float)y0;
        for (int64_t x = 0; x < W; x++) {
            float fx = sx * (float)x;
            int64_t x0 = (int64_t)fx, x1 = x0 + (x0 < w - 1);
            float lx = fx - (float)x0;
            dst[y * W + x] = (1 - ly) * ((1 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1]) +
                             ly * ((1 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1]);
        }
    }
}

typedef struct scam {
    const idl__xrun *r;
    const idl_score_cam_params *p;
    const layer_view *v;
    const float *A; /* (N, K, h, w) */
    int64_t C, H, W;
    float *mask;       /* (H, W) */
    double *scores;    /* (N, K) */
    const int64_t *id; /* the evaluated rows' channel rows i * K + k (the others repeat them) */
} scam;

static int64_t scam_sample(void *u, int64_t row) {
    scam *o = u;
    return o->id[row] / o->v->K;
}

static void scam_point(void *u, int64_t row, float *dst) {
    scam *o = u;
    const idl__xrun *r = o->r;
    const layer_view *v = o->v;
    row = o->id[row];
    int64_t i = row / v->K, k = row % v->K, hw = v->h * v->w;
    const float *x = r->x + i * r->numel;
    if (o->p->ablation) { /* the layer's own value (raw layout), channel k replaced */
        memcpy(dst, x, sizeof(float) * (size_t)r->numel);
        if (v->prefix < 0)
            for (int64_t q = 0; q < hw; q++)
                dst[k * hw + q] = o->p->ablation_value;
        else
            for (int64_t q = 0; q < hw; q++)
                dst[(v->prefix + q) * v->K + k] = o->p->ablation_value;
        return;
    }
    int64_t HW = o->H * o->W;
    const float *a = o->A + (i * v->K + k) * hw;
    if (o->p->interpretdl)
        idl__resize_map(a, (int)v->w, (int)v->h, o->mask, (int)o->W, (int)o->H, "scorecam");
    else
        upsample_corners(a, v->h, v->w, o->mask, o->H, o->W);
    float lo = o->mask[0], hi = o->mask[0];
    for (int64_t q = 1; q < HW; q++)
        lo = o->mask[q] < lo ? o->mask[q] : lo, hi = o->mask[q] > hi ? o->mask[q] : hi;
    if (!o->p->interpretdl || hi > lo) {
        float den = o->p->interpretdl ? hi - lo : hi - lo + 1e-8f;
        for (int64_t q = 0; q < HW; q++)
            o->mask[q] = (o->mask[q] - lo) / den;
    }
    for (int64_t c = 0; c < o->C; c++)
        for (int64_t q = 0; q < HW; q++)
            dst[c * HW + q] = x[c * HW + q] * o->mask[q];
}

static void scam_take(void *u, int64_t row, const float *grad, float obj) {
    (void)grad;
    scam *o = u;
    o->scores[o->id[row]] = obj;
}

typedef struct chan_key {
    uint64_t h;
    int64_t k;
} chan_key;

static int chan_key_cmp(const void *a, const void *b) {
    const chan_key *x = a, *y = b;
    return x->h != y->h ? (x->h < y->h ? -1 : 1) : (x->k > y->k) - (x->k < y->k);
}

/* Which channel rows must run, and where the others take their score from: rep[i * K + k] is the
 * row whose score channel k of sample i shares, or -1 for the clean pass's score.
 *  - Score-CAM: a channel's mask (and so its perturbed input and score) is a function of its
 *    activation map alone, so channels whose maps are equal to the bit share one pass. Dead
 *    channels of ReLU networks are all zero: measured on EfficientNet-Lite0's last layer (ImageNet
 *    weights, the demo's photos), 347 to 826 of 1280 channels, leaving 455-934 distinct masks.
 *  - Ablation-CAM: a channel that already holds ablation_value everywhere is left as it is by
 *    the ablation, so its score is the clean pass's.
 * Fills id with the rows to run, in order, and returns their count. */
static int64_t scam_unique(const scam *o, int64_t *rep, int64_t *id, chan_key *keys) {
    const layer_view *v = o->v;
    int64_t K = v->K, hw = v->h * v->w, n = 0;
    for (int64_t i = 0; i < v->N; i++) {
        const float *Ai = o->A + i * K * hw;
        if (o->p->ablation) {
            for (int64_t k = 0; k < K; k++) {
                int64_t q = 0;
                while (q < hw && Ai[k * hw + q] == o->p->ablation_value)
                    q++;
                rep[i * K + k] = q == hw ? -1 : i * K + k;
            }
        } else {
            for (int64_t k = 0; k < K; k++) { /* FNV-1a over the map's bytes */
                const unsigned char *b = (const unsigned char *)(Ai + k * hw);
                uint64_t h = 14695981039346656037ull;
                for (size_t j = 0; j < sizeof(float) * (size_t)hw; j++)
                    h = (h ^ b[j]) * 1099511628211ull;
                keys[k].h = h, keys[k].k = k;
            }
            qsort(keys, (size_t)K, sizeof *keys, chan_key_cmp);
            for (int64_t a = 0, b; a < K; a = b) { /* a group of equal hashes, channels in order */
                for (b = a; b < K && keys[b].h == keys[a].h; b++) {
                    int64_t k = keys[b].k, c = a;
                    while (c < b &&
                           (rep[i * K + keys[c].k] != i * K + keys[c].k ||
                            memcmp(Ai + keys[c].k * hw, Ai + k * hw, sizeof(float) * (size_t)hw)))
                        c++;
                    rep[i * K + k] = i * K + (c < b ? keys[c].k : k);
                }
            }
        }
        for (int64_t k = 0; k < K; k++)
            if (rep[i * K + k] == i * K + k) id[n++] = i * K + k;
    }
    return n;
}

/* The channel scores of Score-CAM / Ablation-CAM: (N, K) objective values of the perturbed
 * passes. The activation A (N, K, h, w) must be copied out of the session before: the passes
 * overwrite it. */
static idl_status scam_scores(idl__xrun *r, const idl_score_cam_params *p, const char *layer,
                              const layer_view *v, const float *A, double *scores) {
    scam o = { r, p, v, A, 0, 0, 0, NULL, scores, NULL };
    idl_status st = idl__x_wrt(r, p->ablation ? layer : NULL);
    if (st) return st;
    if (!p->ablation) {
        if (r->wrt_input < 0 || r->wrt_ndim != 4)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "scorecam masks a 4-D image input (N, C, H, W); '%s' is not one",
                              r->wrt);
        o.C = r->wrt_shape[1], o.H = r->wrt_shape[2], o.W = r->wrt_shape[3];
        if (!(o.mask = idl__malloc(sizeof(float) * (size_t)(o.H * o.W))))
            return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    int64_t nk = v->N * v->K;
    int64_t *rep = idl__malloc(sizeof(int64_t) * (size_t)nk),
            *id = idl__malloc(sizeof(int64_t) * (size_t)nk);
    chan_key *keys = idl__malloc(sizeof(chan_key) * (size_t)v->K);
    if (!rep || !id || !keys) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st) {
        o.id = id;
        idl__xrows rows = {
            scam_unique(&o, rep, id, keys), &o, scam_sample, scam_point, scam_take, NULL, NULL
        };
        idl__log(IDL_LOG_DEBUG, "%s: %lld of %lld channel passes run, the others repeat one",
                 p->ablation ? "ablationcam" : "scorecam", (long long)rows.n, (long long)nk);
        r->total = r->N + rows.n;
        st = idl__x_eval(r, &rows, false);
        for (int64_t j = 0; !st && j < nk; j++)
            if (rep[j] != j) scores[j] = rep[j] < 0 ? r->score[j / v->K] : scores[rep[j]];
    }
    idl__free(keys);
    idl__free(id);
    idl__free(rep);
    idl__free(o.mask);
    return st;
}

/* Computes the raw map (N, h, w) of the given kind on the run's clean pass (Score-CAM /
 * Ablation-CAM when sp is given). */
static idl_status cam_map(idl__xrun *r, const idl_cam_params *p, const idl_score_cam_params *sp,
                          char *layer_out, float **map, layer_view *v) {
    idl_session *s = r->s;
    int pool = -1;
    const char *layer = r->rq->layer;
    if (!layer || !*layer) layer = auto_layer(s, &pool);
    if (!layer) return IDL_ERR_NOT_FOUND;
    if (strlen(layer) >= 256) return idl__error(IDL_ERR_INVALID_ARG, "layer name too long");
    strcpy(layer_out, layer);
    const idl_tensor *a = idl_session_tensor(s, layer);
    if (!a) return idl__error_prefix(IDL_ERR_NOT_FOUND, "layer: ");
    idl_status st = view_layer(s, layer, a, v);
    if (st) return st;
    int64_t hw = v->h * v->w, nk = v->N * v->K * hw;
    float *A = idl__malloc(sizeof(float) * (size_t)nk), *G = NULL;
    *map = idl__calloc((size_t)(v->N * hw), sizeof(float));
    if (!A || !*map) {
        idl__free(A);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    gather_layer(v, a->data, A);
    if (sp) {
        double *sc = idl__malloc(sizeof(double) * (size_t)(v->N * v->K));
        st = sc ? scam_scores(r, sp, layer, v, A, sc) : idl__error(IDL_ERR_NOMEM, "out of memory");
        if (!st && sp->interpretdl) { /* sum_k s_k U_k at the input's resolution */
            int64_t H = 0, W = 0;
            input_hw(r, &H, &W);
            float *big = idl__calloc((size_t)(v->N * H * W), sizeof(float));
            float *U = idl__malloc(sizeof(float) * (size_t)(H * W));
            if (!big || !U) st = idl__error(IDL_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; !st && i < v->N; i++)
                for (int64_t k = 0; !st && k < v->K; k++) {
                    st = idl__resize_map(A + (i * v->K + k) * hw, (int)v->w, (int)v->h, U, (int)W,
                                         (int)H, "scorecam");
                    for (int64_t q = 0; !st && q < H * W; q++)
                        big[i * H * W + q] += (float)sc[i * v->K + k] * U[q];
                }
            idl__free(U);
            idl__free(sc);
            idl__free(A);
            idl__free(*map);
            *map = big;
            v->h = H, v->w = W;
            return st;
        }
        for (int64_t i = 0; !st && i < v->N; i++) {
            double *si = sc + i * v->K, mx = si[0], z = 0, f = r->score[i];
            for (int64_t k = 1; k < v->K; k++)
                mx = si[k] > mx ? si[k] : mx;
            for (int64_t k = 0; k < v->K; k++)
                z += exp(si[k] - mx);
            for (int64_t k = 0; k < v->K; k++) {
                double wk =
                    sp->ablation ? (f != 0 ? (f - si[k]) / f : f - si[k]) : exp(si[k] - mx) / z;
                for (int64_t q = 0; q < hw; q++)
                    (*map)[i * hw + q] += (float)(wk * A[(i * v->K + k) * hw + q]);
            }
        }
        idl__free(sc);
        idl__free(A);
        return st;
    }
    if (p->kind == IDL_CAM) {
        if (pool < 0) {
            const idl_model *m = s->m;
            for (int i = 0; i < m->n_nodes && pool < 0; i++)
                if (m->nodes[i].n_in > 0 && m->nodes[i].in[0] >= 0 &&
                    !strcmp(m->values[m->nodes[i].in[0]].name, layer) &&
                    is_global_pool(s, &m->nodes[i]))
                    pool = i;
        }
        const float *W = NULL;
        bool tr = false;
        float al = 1;
        if (pool < 0)
            st = idl__error(IDL_ERR_UNSUPPORTED,
                            "cam: layer '%s' does not feed a global average pooling", layer);
        if (!st) st = fc_weights(s, pool, v->K, r->n_classes, &W, &tr, &al);
        for (int64_t i = 0; !st && i < v->N; i++)
            for (int64_t k = 0; k < v->K; k++) {
                int64_t t = r->targets[i];
                float wk = al * (tr ? W[t * v->K + k] : W[k * r->n_classes + t]);
                for (int64_t q = 0; q < hw; q++)
                    (*map)[i * hw + q] += wk * A[(i * v->K + k) * hw + q];
            }
        idl__free(A);
        return st;
    }
    idl_objective o = idl__x_objective(r);
    if ((st = idl_session_backward(s, &o, &layer, 1))) {
        idl__free(A);
        return st;
    }
    G = idl__malloc(sizeof(float) * (size_t)nk);
    if (!G) {
        idl__free(A);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    gather_layer(v, idl_session_grad(s, layer)->data, G);
    for (int64_t i = 0; i < v->N; i++)
        for (int64_t k = 0; k < v->K; k++) {
            const float *ak = A + (i * v->K + k) * hw, *gk = G + (i * v->K + k) * hw;
            float *mi = *map + i * hw;
            if (p->kind == IDL_LAYERCAM) {
                for (int64_t q = 0; q < hw; q++)
                    mi[q] += (gk[q] > 0 ? gk[q] : 0) * ak[q];
                continue;
            }
            double wk = 0, suma = 0;
            for (int64_t q = 0; q < hw; q++)
                suma += ak[q];
            for (int64_t q = 0; q < hw; q++) {
                double g = gk[q];
                if (p->kind == IDL_GRADCAM)
                    wk += g;
                else if (p->kind == IDL_XGRADCAM)
                    wk += g * ak[q] / (suma + 1e-7);
                else if (g != 0) { /* grad-cam++ */
                    double g2 = g * g, aij = g2 / (2 * g2 + suma * g2 * g + 1e-6);
                    wk += (g > 0 ? g : 0) * aij;
                }
            }
            if (p->kind == IDL_GRADCAM) wk /= (double)hw;
            for (int64_t q = 0; q < hw; q++)
                mi[q] += (float)(wk * ak[q]);
        }
    idl__free(A);
    idl__free(G);
    return IDL_OK;
}

static idl_status cam_run(idl__xrun *r, const idl_cam_params *p, const idl_score_cam_params *sp,
                          idl_explanation *out) {
    char layer[256];
    float *map = NULL;
    layer_view v;
    idl_status st = cam_map(r, p, sp, layer, &map, &v);
    if (st) {
        idl__free(map);
        return st;
    }
    int64_t hw = v.h * v.w, H = v.h, W = v.w;
    int relu = p->relu >= 0 ? p->relu : p->kind != IDL_CAM;
    if (relu)
        for (int64_t j = 0; j < v.N * hw; j++)
            map[j] = map[j] > 0 ? map[j] : 0;
    if (p->upsample && !input_hw(r, &H, &W))
        st = idl__error(IDL_ERR_INVALID_ARG, "upsample=1 needs a 4-D float32 image input");
    int64_t shape[3] = { v.N, H, W };
    if (!st) st = idl__x_result(r, out, 3, shape);
    if (!st) {
        float *a = out->attribution->data;
        strcpy(out->layer, layer);
        out->wrt[0] = 0;
        for (int64_t i = 0; i < v.N; i++) {
            float *mi = map + i * hw, *ai = a + i * H * W;
            if (p->normalize) minmax(mi, hw);
            if (p->upsample) {
                if ((st = idl__resize_map(mi, (int)v.w, (int)v.h, ai, (int)W, (int)H, "upsample")))
                    break;
            } else {
                memcpy(ai, mi, sizeof(float) * (size_t)hw);
            }
            if (p->normalize && p->upsample) minmax(ai, H * W);
        }
    }
    if (st) idl_explanation_clear(out);
    idl__free(map);
    return st;
}

idl_status idl_cam(idl_session *s, const idl_explain_request *rq, const idl_cam_params *p,
                   idl_explanation *out) {
    idl_cam_params d = idl_cam_params_default();
    p = p ? p : &d;
    memset(out, 0, sizeof *out);
    if (p->kind < IDL_CAM || p->kind > IDL_LAYERCAM)
        return idl__error(IDL_ERR_INVALID_ARG, "unknown CAM kind %d", (int)p->kind);
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, false);
    if (st) return st;
    st = cam_run(&r, p, NULL, out);
    idl__x_end(&r);
    return st;
}

idl_status idl_score_cam(idl_session *s, const idl_explain_request *rq,
                         const idl_score_cam_params *p, idl_explanation *out) {
    idl_score_cam_params d = idl_score_cam_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    d = p ? *p : d;
    if (d.ablation && d.interpretdl)
        return idl__error(IDL_ERR_INVALID_ARG, "variant=interpretdl is a Score-CAM variant");
    if (d.cam.relu < 0 && d.interpretdl) d.cam.relu = 0;
    d.cam.kind = IDL_GRADCAM;
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, false);
    if (st) return st;
    st = cam_run(&r, &d.cam, &d, out);
    idl__x_end(&r);
    return st;
}

idl_status idl_guided_gradcam(idl_session *s, const idl_explain_request *rq,
                              const idl_guided_gradcam_params *p, idl_explanation *out) {
    memset(out, 0, sizeof *out);
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, true);
    if (st) return st;
    if (r.wrt_ndim != 4) {
        idl__x_end(&r);
        return idl__error(IDL_ERR_INVALID_ARG, "guided_gradcam needs a 4-D image input");
    }
    char layer[256];
    float *map = NULL;
    layer_view v;
    idl_cam_params cp = idl_cam_params_default();
    st = cam_map(&r, &cp, NULL, layer, &map, &v);
    const float *g = NULL;
    if (!st) {
        idl_objective o = idl__x_objective(&r);
        const char *w = r.wrt;
        idl__session_set_relu_rule(s, IDL__RELU_GUIDED);
        st = idl_session_backward(s, &o, &w, 1);
        idl__session_set_relu_rule(s, IDL__RELU_DEFAULT);
        if (!st) g = idl_session_grad(s, w)->data;
    }
    if (!st) st = idl__x_result(&r, out, r.wrt_ndim, r.wrt_shape);
    float *up = NULL;
    int64_t C = r.wrt_shape[1], H = r.wrt_shape[2], W = r.wrt_shape[3], hw = v.h * v.w;
    if (!st && !(up = idl__malloc(sizeof(float) * (size_t)(H * W))))
        st = idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st) {
        strcpy(out->layer, layer);
        float *a = out->attribution->data;
        for (int64_t i = 0; i < r.N; i++) {
            float *mi = map + i * hw;
            for (int64_t q = 0; q < hw; q++)
                mi[q] = mi[q] > 0 ? mi[q] : 0;
            if (p && p->bilinear) {
                if ((st = idl__resize_map(mi, (int)v.w, (int)v.h, up, (int)W, (int)H,
                                          "guided_gradcam")))
                    break;
            } else {
                resize_nearest(mi, v.h, v.w, up, H, W);
            }
            for (int64_t c = 0; c < C; c++)
                for (int64_t q = 0; q < H * W; q++) {
                    int64_t o = (i * C + c) * H * W + q;
                    a[o] = g[o] * up[q];
                }
        }
    }
    if (st) idl_explanation_clear(out);
    idl__free(up);
    idl__free(map);
    idl__x_end(&r);
    return st;
}
