/* normlime.c — global explanations over a set of images, in concepts (concepts.c):
 *  - normlime (Ahern et al. 2019, InterpretDL's NormLIMECVInterpreter): LIME on every image (its
 *    target: given or argmax), each superpixel s mapped to its concept c(s); the global weight of
 *    (class y, concept c) is the mean over every superpixel of concept c in an image explained for
 *    y of w_s^2 / sum_s' |w_s'| (w: that image's LIME coefficients);
 *  - fastnormlime (InterpretDL's precompute_global_prior, the "FastNormLIME" of LIMEPrior): each
 *    image cut into a grid, cells mapped to concepts, an image described by which concepts it
 *    contains (0 / 1); one ridge regression (alpha 1, with intercept) per class from those
 *    descriptions to the clean class probabilities; the weights are the coefficients.
 * Concepts are k-means clusters of the superpixels' features on a layer of the model (computed
 * here from all images, or given as centres). The output attribution is (classes, concepts);
 * the centres come back in concepts, ready for glime (prior= the attribution, concepts= them).
 * Departures from InterpretDL: the concepts are the model's own (InterpretDL: a downloaded
 * extractor and KMeans); a class no image was explained for has weight 0 everywhere. */
#include "interpret/interpret_internal.h"

#include "interpretdl/segment.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

idl_normlime_params idl_normlime_params_default(void) {
    idl_normlime_params p;
    memset(&p, 0, sizeof p);
    p.lime = idl_lime_params_default();
    p.n_concepts = 32;
    p.kmeans_iter = 100;
    p.ridge_alpha = 1;
    return p;
}

/* One sample of the request as a request of its own (inputs viewed, not copied). */
typedef struct one {
    idl_explain_request rq;
    idl_tensor image;
    idl_tensor in[IDL__XMAX_IN];
    const idl_tensor *ptr[IDL__XMAX_IN];
    int64_t target;
} one;

static void one_sample(one *o, const idl_explain_request *rq, int64_t i) {
    o->rq = *rq;
    for (int k = 0; k < rq->n_inputs; k++) {
        const idl_tensor *t = rq->inputs[k];
        o->in[k] = *t;
        if (t->ndim >= 1 && t->shape[0] > 1) {
            o->in[k].shape[0] = 1;
            o->in[k].data =
                (char *)t->data + idl__tensor_bytes(t) / (size_t)t->shape[0] * (size_t)i;
        }
        o->ptr[k] = &o->in[k];
    }
    o->rq.inputs = o->ptr;
    if (rq->targets) {
        o->target = rq->targets[i];
        o->rq.targets = &o->target;
    }
    o->rq.progress = NULL;
    if (rq->image && rq->image->ndim == 4) {
        o->image = *rq->image;
        o->image.shape[0] = 1;
        o->image.data = (char *)o->image.data +
                        idl__tensor_bytes(rq->image) / (size_t)rq->image->shape[0] * (size_t)i;
        o->rq.image = &o->image;
    }
}

/* Per-image results gathered before the concepts are known. */
typedef struct gathered {
    int64_t N, D, n_rows, cap, passes;
    float *F;         /* (rows, D) superpixel features */
    double *val;      /* (rows) NormLIME contribution w^2 / sum|w| (normlime) */
    int64_t *img;     /* (rows) image of the row */
    int64_t *targets; /* (N) */
    float *score;     /* (N) */
    float *probs;     /* (N, classes) clean probabilities (fastnormlime) */
    int64_t n_classes;
    char layer[256];
} gathered;

static void gathered_free(gathered *g) {
    idl__free(g->F);
    idl__free(g->val);
    idl__free(g->img);
    idl__free(g->targets);
    idl__free(g->score);
    idl__free(g->probs);
}

/* Room for `rows` rows (capacity doubled as needed). */
static idl_status grow(gathered *g, int64_t rows) {
    if (rows <= g->cap) return IDL_OK;
    int64_t cap = IDL_MAX(rows, 2 * g->cap);
    float *F = idl__malloc(sizeof(float) * (size_t)(cap * g->D));
    double *v = idl__malloc(sizeof(double) * (size_t)cap);
    int64_t *im = idl__malloc(sizeof(int64_t) * (size_t)cap);
    if (!F || !v || !im) {
        idl__free(F);
        idl__free(v);
        idl__free(im);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (g->n_rows) {
        memcpy(F, g->F, sizeof(float) * (size_t)(g->n_rows * g->D));
        memcpy(v, g->val, sizeof(double) * (size_t)g->n_rows);
        memcpy(im, g->img, sizeof(int64_t) * (size_t)g->n_rows);
    }
    idl__free(g->F);
    idl__free(g->val);
    idl__free(g->img);
    g->F = F, g->val = v, g->img = im, g->cap = cap;
    return IDL_OK;
}

/* Image i: its segments (LIME's or the grid), its clean pass and the features of its superpixels.
 */
static idl_status gather_one(idl_session *s, const idl_explain_request *rq,
                             const idl_normlime_params *p, bool fast, bool cached, int64_t i,
                             gathered *g) {
    one o;
    one_sample(&o, rq, i);
    idl_explanation e;
    memset(&e, 0, sizeof e);
    idl_status st = IDL_OK;
    if (!fast && !cached) st = idl_lime(s, &o.rq, &p->lime, &e);
    idl__xrun r;
    if (!st) st = idl__x_begin(&r, s, &o.rq, fast);
    if (st) {
        idl_explanation_clear(&e);
        return st;
    }
    float *A = NULL;
    int64_t K = 0, h = 0, w = 0, S = 0, H = 0, W = 0;
    int32_t *seg = NULL, *own = NULL;
    char layer[256];
    st = idl__layer_activation(&r, p->concept_layer, layer, &A, &K, &h, &w);
    if (!st && g->D && g->D != 2 * K)
        st =
            idl__error(IDL_ERR_SHAPE, "normlime: concepts have %lld features; the layer gives %lld",
                       (long long)g->D, (long long)(2 * K));
    if (!st) {
        g->D = 2 * K;
        strcpy(g->layer, layer);
        if (!cached) g->targets[i] = r.targets[0];
        g->passes += r.passes + e.passes;
        g->score[i] = r.score[0];
        if (!g->n_classes) {
            g->n_classes = r.n_classes;
            g->probs = idl__calloc((size_t)(g->N * r.n_classes), sizeof(float));
            if (!g->probs) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        }
    }
    if (!st) { /* the clean probabilities */
        const float *y = idl_session_output(s, rq->output)->data;
        for (int64_t c = 0; c < r.n_classes; c++)
            g->probs[i * r.n_classes + c] =
                idl__objective_value(y, r.n_classes, c, IDL_OBJ_PROBABILITY);
    }
    if (cached) {             /* the rows came from the cache: only the clean pass was needed */
    } else if (!st && fast) { /* the grid on the input's (H, W) */
        if (r.wrt_ndim != 4) {
            st = idl__error(IDL_ERR_INVALID_ARG, "fastnormlime needs an image input (N, C, H, W)");
        } else {
            H = r.wrt_shape[2], W = r.wrt_shape[3];
            own = idl__malloc(sizeof(int32_t) * (size_t)(H * W));
            idl_segment_params gp =
                p->lime.seg ? *p->lime.seg : idl_segment_params_default(IDL_SEG_GRID);
            gp.method = IDL_SEG_GRID;
            int32_t n = 0;
            int64_t C = r.wrt_shape[1];
            if (!own) st = idl__error(IDL_ERR_NOMEM, "out of memory");
            if (!st) /* the grid reads no pixel: the input stands in for the picture */
                st = idl_segment(r.x, H, W, C == 1 || C == 3 ? (int)C : 1, &gp, own, &n);
            seg = own, S = n;
        }
    } else if (!st) {
        H = e.segments->shape[1], W = e.segments->shape[2];
        seg = e.segments->data, S = e.n_features[0];
    }
    int64_t row0 = g->n_rows;
    if (!st && !cached) st = grow(g, row0 + S);
    if (!st && !cached) st = idl__superpixel_features(A, K, h, w, seg, H, W, S, g->F + row0 * g->D);
    if (!st && !cached) {
        double l1 = 0;
        const float *wv = fast ? NULL : e.features->data;
        for (int64_t j = 0; wv && j < S; j++)
            l1 += fabs(wv[j]);
        for (int64_t j = 0; j < S; j++) {
            g->img[row0 + j] = i;
            /* rounded to float32, as the cache stores it: a resumed run equals a fresh one */
            g->val[row0 + j] = (float)(wv && l1 > 0 ? (double)wv[j] * wv[j] / l1 : 0);
        }
        g->n_rows = row0 + S;
    }
    idl__free(A);
    idl__free(own);
    idl_explanation_clear(&e);
    idl__x_end(&r);
    return st;
}

/* ---- the cache: rows (image, key (3 x 16 bits), target, contribution, features (D)) ---- */

#define CACHE_COLS  6
#define CACHE_FLUSH 10 /* images computed between writes */

/* A 48-bit key of sample i's inputs and of the settings its rows depend on (FNV-1a). */
static uint64_t sample_key(const idl_explain_request *rq, const idl_normlime_params *p, int64_t i) {
    uint64_t h = 1469598103934665603ull;
#define MIX(ptr, len)                             \
    for (size_t b_ = 0; b_ < (size_t)(len); b_++) \
        h = (h ^ ((const unsigned char *)(ptr))[b_]) * 1099511628211ull;
    for (int k = 0; k < rq->n_inputs; k++) {
        const idl_tensor *t = rq->inputs[k];
        size_t per =
            t->ndim >= 1 && t->shape[0] > 0 ? idl__tensor_bytes(t) / (size_t)t->shape[0] : 0;
        MIX((const char *)t->data + per * (size_t)i, per);
    }
    const idl_lime_params *l = &p->lime;
    MIX(&l->num_samples, sizeof l->num_samples);
    MIX(&l->kernel_width, sizeof l->kernel_width);
    MIX(&l->ridge_alpha, sizeof l->ridge_alpha);
    MIX(&l->hide_mean, sizeof l->hide_mean);
    MIX(&l->hide_value, sizeof l->hide_value);
    MIX(&rq->seed, sizeof rq->seed);
    MIX(&rq->objective, sizeof rq->objective);
    int64_t t = rq->targets ? rq->targets[i] : -1;
    MIX(&t, sizeof t);
    if (l->seg) {
        const idl_segment_params *g = l->seg;
        float f[5] = { g->ratio, g->kernel_size, g->max_dist, g->sigma, g->compactness };
        int n[7] = { (int)g->method,          g->convert2lab, g->n_segments, g->max_iter,
                     g->enforce_connectivity, g->grid_rows,   g->grid_cols };
        MIX(f, sizeof f);
        MIX(n, sizeof n);
    }
    if (p->concept_layer) MIX(p->concept_layer, strlen(p->concept_layer));
#undef MIX
    return h & 0xffffffffffffull;
}

static idl_status cache_write(const char *path, const gathered *g, const uint64_t *keys) {
    int64_t cols = CACHE_COLS + g->D, shape[2] = { g->n_rows, cols };
    idl_tensor *t = NULL;
    idl_status st = idl_tensor_new(IDL_DT_F32, 2, shape, &t);
    if (st) return st;
    float *v = t->data;
    for (int64_t j = 0; j < g->n_rows; j++) {
        int64_t i = g->img[j];
        float *row = v + j * cols;
        row[0] = (float)i;
        for (int k = 0; k < 3; k++)
            row[1 + k] = (float)((keys[i] >> (16 * k)) & 0xffff);
        row[4] = (float)g->targets[i];
        row[5] = (float)g->val[j];
        memcpy(row + CACHE_COLS, g->F + j * g->D, sizeof(float) * (size_t)g->D);
    }
    st = idl_npy_save(path, t);
    idl_tensor_free(t);
    return st ? idl__error_prefix(st, "normlime: cache %s: ", path) : IDL_OK;
}

/* Takes sample i's rows from the cache when its key matches; *hit tells. */
static idl_status cache_take(const idl_tensor *c, int64_t i, uint64_t key, gathered *g, bool *hit) {
    *hit = false;
    if (!c) return IDL_OK;
    int64_t cols = c->shape[1], n = 0;
    const float *v = c->data;
    for (int64_t j = 0; j < c->shape[0]; j++) {
        const float *row = v + j * cols;
        uint64_t k = (uint64_t)row[1] | (uint64_t)row[2] << 16 | (uint64_t)row[3] << 32;
        if ((int64_t)row[0] != i || k != key) continue;
        if (!g->D) g->D = cols - CACHE_COLS;
        idl_status st = grow(g, g->n_rows + 1);
        if (st) return st;
        g->img[g->n_rows] = i;
        g->val[g->n_rows] = row[5];
        memcpy(g->F + g->n_rows * g->D, row + CACHE_COLS, sizeof(float) * (size_t)g->D);
        g->targets[i] = (int64_t)row[4];
        g->n_rows++, n++;
    }
    *hit = n > 0;
    return IDL_OK;
}

static idl_status global_run(idl_session *s, const idl_explain_request *rq,
                             const idl_normlime_params *p, bool fast, idl_explanation *out) {
    const char *name = fast ? "fastnormlime" : "normlime";
    if (out) memset(out, 0, sizeof *out);
    if (!s || !rq || !out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if (!rq->inputs || rq->n_inputs < 1 || !rq->inputs[0] || rq->inputs[0]->ndim < 1)
        return idl__error(IDL_ERR_INVALID_ARG, "%s: no inputs", name);
    if (p->n_concepts < 1 || p->kmeans_iter < 1)
        return idl__error(IDL_ERR_INVALID_ARG, "%s: n_concepts and kmeans_iter must be >= 1", name);
    gathered g;
    memset(&g, 0, sizeof g);
    g.N = rq->inputs[0]->shape[0];
    const idl_tensor *C = p->concepts;
    if (C && (C->dtype != IDL_DT_F32 || C->ndim != 2 || C->shape[0] < 1 || C->shape[1] < 2)) {
        char b[128];
        return idl__error(IDL_ERR_SHAPE, "%s: concepts %s must be float32 (concepts, features)",
                          name, idl__shape_str(C->ndim, C->shape, b, sizeof b));
    }
    g.D = C ? C->shape[1] : 0;
    g.targets = idl__calloc((size_t)g.N, sizeof(int64_t));
    g.score = idl__calloc((size_t)g.N, sizeof(float));
    idl_status st = g.targets && g.score ? IDL_OK : idl__error(IDL_ERR_NOMEM, "out of memory");
    /* normlime's cache: rows of earlier runs are taken back, new ones written every few images */
    idl_tensor *cache = NULL;
    uint64_t *keys = NULL;
    int64_t fresh = 0;
    if (!st && p->cache && !fast) {
        keys = idl__calloc((size_t)g.N, sizeof(uint64_t));
        if (!keys) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; !st && i < g.N; i++)
            keys[i] = sample_key(rq, p, i);
        FILE *f = st ? NULL : fopen(p->cache, "rb");
        if (f) {
            fclose(f);
            st = idl_npy_load(p->cache, &cache);
            if (st) st = idl__error_prefix(st, "normlime: cache %s: ", p->cache);
            if (!st &&
                (cache->dtype != IDL_DT_F32 || cache->ndim != 2 || cache->shape[1] <= CACHE_COLS ||
                 (g.D && cache->shape[1] != CACHE_COLS + g.D)))
                st = idl__error(IDL_ERR_SHAPE,
                                "normlime: cache %s is not a cache of this run (float32 rows of "
                                "%d + features columns)",
                                p->cache, CACHE_COLS);
        }
    }
    for (int64_t i = 0; !st && i < g.N; i++) {
        bool hit = false;
        st = keys ? cache_take(cache, i, keys[i], &g, &hit) : IDL_OK;
        if (!st) st = gather_one(s, rq, p, fast, hit, i, &g);
        if (!st && !hit && keys && ++fresh % CACHE_FLUSH == 0) st = cache_write(p->cache, &g, keys);
        if (st) st = idl__error_prefix(st, "%s: image %lld: ", name, (long long)i);
        if (!st && rq->progress && rq->progress(i + 1, g.N, rq->progress_user))
            st = idl__error(IDL_ERR_ABORTED, "aborted by the progress callback");
    }
    if (keys && fresh % CACHE_FLUSH) { /* also after an error or an abort: resumable */
        idl_status cs = cache_write(p->cache, &g, keys);
        st = st ? st : cs;
    }
    idl_tensor_free(cache);
    idl__free(keys);
    /* the concepts */
    int64_t k = C ? C->shape[0] : IDL_MIN((int64_t)p->n_concepts, g.n_rows);
    float *cent = NULL;
    int32_t *as = NULL;
    if (!st) {
        cent = idl__malloc(sizeof(float) * (size_t)(k * g.D));
        as = idl__malloc(sizeof(int32_t) * (size_t)(g.n_rows + 1));
        if (!cent || !as) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    if (!st && C) {
        memcpy(cent, C->data, sizeof(float) * (size_t)(k * g.D));
        for (int64_t j = 0; j < g.n_rows; j++)
            as[j] = (int32_t)idl__nearest_centre(g.F + j * g.D, cent, k, g.D);
    } else if (!st) {
        st = idl__kmeans(g.F, g.n_rows, g.D, k, rq->seed, p->kmeans_iter, cent, as);
    }
    int64_t shape[2] = { g.n_classes, k }, cs[2] = { k, g.D };
    if (!st) st = idl_tensor_new(IDL_DT_F32, 2, shape, &out->attribution);
    if (!st) st = idl_tensor_new(IDL_DT_F32, 2, cs, &out->concepts);
    if (!st) {
        memcpy(out->concepts->data, cent, sizeof(float) * (size_t)(k * g.D));
        float *wv = out->attribution->data;
        memset(wv, 0, sizeof(float) * (size_t)(g.n_classes * k));
        if (!fast) { /* mean contribution per (class, concept) */
            double *sum = idl__calloc((size_t)(g.n_classes * k), sizeof(double));
            int64_t *cnt = idl__calloc((size_t)(g.n_classes * k), sizeof(int64_t));
            if (!sum || !cnt) st = idl__error(IDL_ERR_NOMEM, "out of memory");
            for (int64_t j = 0; !st && j < g.n_rows; j++) {
                int64_t c = g.targets[g.img[j]] * k + as[j];
                sum[c] += g.val[j], cnt[c]++;
            }
            for (int64_t c = 0; !st && c < g.n_classes * k; c++)
                wv[c] = cnt[c] ? (float)(sum[c] / (double)cnt[c]) : 0.0f;
            idl__free(sum);
            idl__free(cnt);
        } else { /* presence of each concept per image -> ridge per class */
            float *Z = idl__calloc((size_t)(g.N * k), sizeof(float));
            double *y = idl__malloc(sizeof(double) * (size_t)g.N);
            double *w1 = idl__malloc(sizeof(double) * (size_t)g.N);
            double *beta = idl__malloc(sizeof(double) * (size_t)k);
            if (!Z || !y || !w1 || !beta) st = idl__error(IDL_ERR_NOMEM, "out of memory");
            for (int64_t j = 0; !st && j < g.n_rows; j++)
                Z[g.img[j] * k + as[j]] = 1;
            for (int64_t i = 0; !st && i < g.N; i++)
                w1[i] = 1;
            for (int64_t c = 0; !st && c < g.n_classes; c++) {
                double b0, r2;
                for (int64_t i = 0; i < g.N; i++)
                    y[i] = g.probs[i * g.n_classes + c];
                st = idl__weighted_ridge(Z, g.N, k, y, w1, p->ridge_alpha, beta, &b0, &r2);
                for (int64_t j = 0; !st && j < k; j++)
                    wv[c * k + j] = (float)beta[j];
            }
            idl__free(Z);
            idl__free(y);
            idl__free(w1);
            idl__free(beta);
        }
    }
    if (!st) {
        out->n = g.N;
        out->targets = g.targets, g.targets = NULL;
        out->score = g.score, g.score = NULL;
        strcpy(out->layer, g.layer);
        out->passes = g.passes;
    }
    if (st) idl_explanation_clear(out);
    idl__free(cent);
    idl__free(as);
    gathered_free(&g);
    return st;
}

idl_status idl_normlime(idl_session *s, const idl_explain_request *rq, const idl_normlime_params *p,
                        idl_explanation *out) {
    idl_normlime_params d = idl_normlime_params_default();
    return global_run(s, rq, p ? p : &d, false, out);
}

idl_status idl_fastnormlime(idl_session *s, const idl_explain_request *rq,
                            const idl_normlime_params *p, idl_explanation *out) {
    idl_normlime_params d = idl_normlime_params_default();
    return global_run(s, rq, p ? p : &d, true, out);
}
