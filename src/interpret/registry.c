/* registry.c — methods by name with "key=value" settings: the one path shared by the command line,
 * batch runs and bindings. Also the two composite methods, noise_tunnel (any method averaged over
 * noisy copies of the input, Captum's NoiseTunnel) and consensus (one method over several models,
 * each map reduced and normalised, then averaged: Li et al.'s Consensus; InterpretDL returns the
 * raw maps and leaves this aggregation to the user). */
#include "interpret/settings.h"

#include "interpretdl/segment.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static idl_status all_used(idl__kvs *k, const char *help) {
    for (int i = 0; i < k->n; i++)
        if (!k->v[i].used)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "%s does not take the setting '%s'; it takes: %s (and objective, "
                              "output, internal_batch, seed, wrt, layer)",
                              k->method, k->v[i].key, help);
    return IDL_OK;
}

/* ---- the table ---- */

typedef idl_status (*run_fn)(idl_session *s, const char *name, idl_explain_request *rq, idl__kvs *k,
                             idl_explanation *out);

typedef struct method {
    const char *name;
    run_fn run;
    const char *keys; /* for errors */
    const char *help; /* one line per key */
} method;

static const method *find_method(const char *name);

static idl_status run_saliency(idl_session *s, const char *name, idl_explain_request *rq,
                               idl__kvs *k, idl_explanation *out) {
    idl_saliency_params p = idl_saliency_params_default();
    idl_status st = idl__kv_bool(k, "abs", &p.abs);
    if (!st) st = all_used(k, "abs");
    if (!strcmp(name, "input_x_gradient")) return st ? st : idl_input_x_gradient(s, rq, out);
    return st ? st : idl_saliency(s, rq, &p, out);
}

static idl_status smooth_settings(idl__kvs *k, idl_smooth_params *p) {
    idl_status st = idl__kv_int(k, "n_samples", &p->n_samples, 1, 1 << 24);
    if (!st) st = idl__kv_float(k, "noise", &p->noise, 0, 1e6);
    if (!st) st = idl__kv_float(k, "noise_abs", &p->noise_abs, 0, 1e9);
    if (!st) st = idl__kv_npy(k, "noise_file", &p->noise_tensor);
    return st;
}

static idl_status run_smoothgrad(idl_session *s, const char *name, idl_explain_request *rq,
                                 idl__kvs *k, idl_explanation *out) {
    idl_smooth_params p = idl_smooth_params_default();
    p.kind = !strcmp(name, "smoothgrad_sq") ? IDL_SMOOTH_SQ
             : !strcmp(name, "vargrad")     ? IDL_SMOOTH_VAR
                                            : IDL_SMOOTH_MEAN;
    idl_status st = smooth_settings(k, &p);
    if (!st) st = all_used(k, "n_samples, noise, noise_abs, noise_file");
    return st ? st : idl_smoothgrad(s, rq, &p, out);
}

static idl_status run_ig(idl_session *s, const char *name, idl_explain_request *rq, idl__kvs *k,
                         idl_explanation *out) {
    (void)name;
    static const char *const methods[] = { "gausslegendre",  "riemann_left",      "riemann_right",
                                           "riemann_middle", "riemann_trapezoid", "linspace",
                                           "trapezoid" };
    idl_ig_params p = idl_ig_params_default();
    int m = (int)p.method;
    idl_status st = idl__kv_int(k, "steps", &p.steps, 1, 100000);
    if (!st) st = idl__kv_enum(k, "method", methods, 7, &m);
    p.method = (idl_ig_method)m;
    if (!st) st = idl__kv_baseline(k, &p.baseline);
    if (!st) st = all_used(k, "steps, method, baseline, trials, blur_sigma, mean, std");
    return st ? st : idl_integrated_gradients(s, rq, &p, out);
}

static idl_status run_gradshap(idl_session *s, const char *name, idl_explain_request *rq,
                               idl__kvs *k, idl_explanation *out) {
    (void)name;
    idl_gradient_shap_params p = idl_gradient_shap_params_default();
    idl_status st = idl__kv_int(k, "n_samples", &p.n_samples, 1, 1 << 24);
    if (!st) st = idl__kv_float(k, "noise", &p.noise, 0, 1e6);
    if (!st) st = idl__kv_float(k, "noise_abs", &p.noise_abs, 0, 1e9);
    if (!st) st = idl__kv_npy(k, "noise_file", &p.noise_tensor);
    if (!st) st = idl__kv_npy(k, "alpha_file", &p.alpha_tensor);
    if (!st) st = idl__kv_baseline(k, &p.baseline);
    if (!st)
        st = all_used(k, "n_samples, noise, noise_abs, noise_file, alpha_file, baseline, "
                         "blur_sigma, mean, std");
    return st ? st : idl_gradient_shap(s, rq, &p, out);
}

static idl_status run_guided(idl_session *s, const char *name, idl_explain_request *rq, idl__kvs *k,
                             idl_explanation *out) {
    idl_guided_params p = { !strcmp(name, "deconvnet") };
    idl_status st = all_used(k, "(none)");
    return st ? st : idl_guided_backprop(s, rq, &p, out);
}

static idl_status run_cam(idl_session *s, const char *name, idl_explain_request *rq, idl__kvs *k,
                          idl_explanation *out) {
    idl_cam_params p = idl_cam_params_default();
    p.kind = !strcmp(name, "cam")                 ? IDL_CAM
             : !strcmp(name, "gradcam_plus_plus") ? IDL_GRADCAM_PLUS_PLUS
             : !strcmp(name, "xgradcam")          ? IDL_XGRADCAM
             : !strcmp(name, "layercam")          ? IDL_LAYERCAM
                                                  : IDL_GRADCAM;
    idl_status st = idl__kv_bool(k, "relu", &p.relu);
    if (!st) st = idl__kv_bool(k, "normalize", &p.normalize);
    if (!st) st = idl__kv_bool(k, "upsample", &p.upsample);
    if (!st) st = all_used(k, "relu, normalize, upsample");
    return st ? st : idl_cam(s, rq, &p, out);
}

static idl_status run_guided_gradcam(idl_session *s, const char *name, idl_explain_request *rq,
                                     idl__kvs *k, idl_explanation *out) {
    (void)name;
    static const char *const modes[] = { "nearest", "bilinear" };
    idl_guided_gradcam_params p = { 0 };
    idl_status st = idl__kv_enum(k, "interpolate", modes, 2, &p.bilinear);
    if (!st) st = all_used(k, "interpolate");
    return st ? st : idl_guided_gradcam(s, rq, &p, out);
}

static idl_status run_occlusion(idl_session *s, const char *name, idl_explain_request *rq,
                                idl__kvs *k, idl_explanation *out) {
    (void)name;
    static const char *const aggs[] = { "mean", "sum" };
    idl_occlusion_params p = idl_occlusion_params_default();
    int nw = 0, ns = 0;
    idl_status st = idl__kv_ints(k, "window", p.window, IDL_MAX_DIMS - 1, &nw, 1, 1LL << 40);
    if (!st) st = idl__kv_ints(k, "stride", p.stride, IDL_MAX_DIMS - 1, &ns, 1, 1LL << 40);
    if (!st) st = idl__kv_enum(k, "aggregate", aggs, 2, &p.sum);
    int inc = 1;
    if (!st) st = idl__kv_int(k, "incremental", &inc, 0, 1);
    p.full_passes = !inc;
    const char *b = idl__kv_get(k, "baseline");
    if (!st && b) {
        size_t len = strlen(b);
        if (len > 4 && !strcmp(b + len - 4, ".npy")) {
            idl__kv_unuse(k, "baseline");
            st = idl__kv_npy(k, "baseline", &p.baseline_tensor);
        } else {
            idl__kv_unuse(k, "baseline");
            st = idl__kv_float(k, "baseline", &p.baseline, -1e30, 1e30);
        }
    }
    if (st) return st;
    if (ns && !nw) return idl__error(IDL_ERR_INVALID_ARG, "occlusion: stride given without window");
    if (ns == 1)
        for (int a = 1; a < nw; a++)
            p.stride[a] = p.stride[0];
    else if (ns && ns != nw)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "occlusion: stride has %d values and window %d; give one stride or one "
                          "per window axis",
                          ns, nw);
    else if (!ns)
        for (int a = 0; a < nw; a++)
            p.stride[a] = 1; /* Captum's default */
    p.n_axes = nw;
    st = all_used(k, "window, stride, baseline, aggregate, incremental");
    return st ? st : idl_occlusion(s, rq, &p, out);
}

static idl_status run_score_cam(idl_session *s, const char *name, idl_explain_request *rq,
                                idl__kvs *k, idl_explanation *out) {
    static const char *const variants[] = { "paper", "interpretdl" };
    idl_score_cam_params p = idl_score_cam_params_default();
    p.ablation = !strcmp(name, "ablationcam");
    idl_status st = idl__kv_bool(k, "relu", &p.cam.relu);
    if (!st) st = idl__kv_bool(k, "normalize", &p.cam.normalize);
    if (!st) st = idl__kv_bool(k, "upsample", &p.cam.upsample);
    if (!st && !p.ablation) st = idl__kv_enum(k, "variant", variants, 2, &p.interpretdl);
    if (!st && p.ablation) st = idl__kv_float(k, "ablation_value", &p.ablation_value, -1e30, 1e30);
    if (!st)
        st = all_used(k, p.ablation ? "relu, normalize, upsample, ablation_value"
                                    : "relu, normalize, upsample, variant");
    return st ? st : idl_score_cam(s, rq, &p, out);
}

/* LIME's sampling and segmentation settings (lime, glime); sp receives the segmentation. */

static idl_status run_lime(idl_session *s, const char *name, idl_explain_request *rq, idl__kvs *k,
                           idl_explanation *out) {
    idl_segment_params sp;
    if (!strcmp(name, "glime")) {
        idl_glime_params g = idl_glime_params_default();
        idl_status st = idl__kv_lime(k, rq, &g.lime, &sp);
        if (!st) st = idl__kv_float(k, "prior_reg_force", &g.prior_reg_force, 0, 1e12);
        if (!st) st = idl__kv_npy(k, "prior", &g.prior);
        if (!st) st = idl__kv_npy(k, "concepts", &g.concepts);
        const char *cl = idl__kv_get(k, "concept_layer");
        if (cl) g.concept_layer = cl;
        if (!st)
            st = all_used(k, IDL__LIME_KEYS ", prior_reg_force, prior, concepts, concept_layer");
        return st ? st : idl_glime(s, rq, &g, out);
    }
    if (strstr(name, "normlime")) {
        bool fast = !strcmp(name, "fastnormlime");
        idl_normlime_params g = idl_normlime_params_default();
        idl_status st = idl__kv_lime(k, rq, &g.lime, &sp);
        if (!st && fast && !idl__kv_get(k, "segmentation"))
            sp = idl_segment_params_default(IDL_SEG_GRID);
        if (!st) st = idl__kv_int(k, "n_concepts", &g.n_concepts, 1, 1 << 20);
        if (!st) st = idl__kv_int(k, "kmeans_iter", &g.kmeans_iter, 1, 1 << 20);
        if (!st) st = idl__kv_npy(k, "concepts", &g.concepts);
        if (!st && fast) st = idl__kv_float(k, "ridge_alpha", &g.ridge_alpha, 0, 1e12);
        const char *cl = idl__kv_get(k, "concept_layer");
        if (cl) g.concept_layer = cl;
        idl__kv_get(k, "concepts_out");
        const char *cache = idl__kv_get(k, "cache");
        if (cache && !fast) g.cache = cache;
        if (!st)
            st = all_used(k, fast ? "grid_rows, grid_cols, n_concepts, kmeans_iter, concepts, "
                                    "concept_layer, concepts_out, ridge_alpha"
                                  : IDL__LIME_KEYS
                                 ", n_concepts, kmeans_iter, concepts, concept_layer, "
                                 "concepts_out, cache");
        if (st) return st;
        return fast ? idl_fastnormlime(s, rq, &g, out) : idl_normlime(s, rq, &g, out);
    }
    idl_lime_params p = idl_lime_params_default();
    idl_status st = idl__kv_lime(k, rq, &p, &sp);
    if (!st) st = idl__kv_float(k, "ridge_alpha", &p.ridge_alpha, 0, 1e12);
    if (!st) st = idl__kv_int(k, "top_k", &p.top_k, 1, 1 << 20);
    if (!st) st = all_used(k, IDL__LIME_KEYS ", ridge_alpha, top_k");
    return st ? st : idl_lime(s, rq, &p, out);
}

static idl_status run_attention(idl_session *s, const char *name, idl_explain_request *rq,
                                idl__kvs *k, idl_explanation *out) {
    static const char *const fusions[] = { "mean", "max", "min" };
    static const char *const variants[] = { "paper", "interpretdl" };
    static const char *const modes[] = { "head", "token" };
    static const char *const ov_keys[] = { "probs",       "value",           "context",
                                           "block_input", "out_proj_weight", "embedding",
                                           "grid",        "prefix",          "pooling" };
    idl_attn_method m = !strcmp(name, "rollout")             ? IDL_ROLLOUT
                        : !strcmp(name, "generic_attention") ? IDL_GENERIC_ATTENTION
                        : !strcmp(name, "tam")               ? IDL_TAM
                        : !strcmp(name, "bt")                ? IDL_BT
                                                             : IDL_ATTENTION_GRADCAM;
    idl_attn_params p = idl_attn_params_default(m);
    idl_status st = IDL_OK;
    if (m != IDL_ATTENTION_GRADCAM) st = idl__kv_int(k, "start_layer", &p.start_layer, 0, 1 << 20);
    if (!st && m == IDL_ROLLOUT) st = idl__kv_enum(k, "head_fusion", fusions, 3, &p.head_fusion);
    if (!st && m == IDL_ROLLOUT) st = idl__kv_float(k, "discard_ratio", &p.discard_ratio, 0, 0.999);
    if (!st && m == IDL_GENERIC_ATTENTION)
        st = idl__kv_enum(k, "variant", variants, 2, &p.interpretdl);
    if (!st && (m == IDL_TAM || m == IDL_BT)) st = idl__kv_int(k, "steps", &p.steps, 1, 100000);
    if (!st && m == IDL_BT) st = idl__kv_enum(k, "mode", modes, 2, &p.token_mode);
    /* attention discovery overrides pass through as "key=value" */
    char ov[9][320];
    const char *ovp[9];
    int n_ov = 0;
    for (size_t i = 0; i < sizeof ov_keys / sizeof *ov_keys; i++) {
        const char *v = idl__kv_get(k, ov_keys[i]);
        if (v) {
            snprintf(ov[n_ov], sizeof ov[n_ov], "%s=%s", ov_keys[i], v);
            ovp[n_ov] = ov[n_ov];
            n_ov++;
        }
    }
    p.overrides = ovp;
    p.n_overrides = n_ov;
    if (!st)
        st = all_used(k, "start_layer, head_fusion, discard_ratio (rollout), variant "
                         "(generic_attention), steps (tam, bt), mode (bt); probs, value, context, "
                         "block_input, out_proj_weight, embedding, grid, prefix, pooling (the "
                         "attention overrides)");
    return st ? st : idl_attention_explain(s, rq, &p, out);
}

/* Collects the settings not consumed so far as "key=value" strings for a base method. */
static int rest(idl__kvs *k, char (*buf)[320], const char **ptrs) {
    int n = 0;
    for (int i = 0; i < k->n; i++)
        if (!k->v[i].used) {
            snprintf(buf[n], 320, "%s=%s", k->v[i].key, k->v[i].val);
            ptrs[n] = buf[n];
            k->v[i].used = true;
            n++;
        }
    return n;
}

static idl_status run_noise_tunnel(idl_session *s, const char *name, idl_explain_request *rq,
                                   idl__kvs *k, idl_explanation *out) {
    (void)name;
    static const char *const types[] = { "smoothgrad", "smoothgrad_sq", "vargrad" };
    idl_smooth_params p = idl_smooth_params_default();
    int kind = 0;
    const char *base = idl__kv_get(k, "base");
    idl_status st = smooth_settings(k, &p);
    if (!st) st = idl__kv_enum(k, "nt_type", types, 3, &kind);
    if (st) return st;
    if (!base) return idl__error(IDL_ERR_INVALID_ARG, "noise_tunnel needs base=METHOD");
    const method *bm = find_method(base);
    if (!bm || !strcmp(base, "noise_tunnel") || !strcmp(base, "consensus"))
        return idl__error(IDL_ERR_INVALID_ARG, "noise_tunnel: base=%s is not a method it can wrap",
                          base);
    char buf[IDL__MAX_SET][320];
    const char *ptrs[IDL__MAX_SET];
    int nb = rest(k, buf, ptrs);

    idl__xrun r;
    if ((st = idl__x_begin(&r, s, rq, true))) return st;
    if (r.wrt_input < 0) {
        idl__x_end(&r);
        return idl__error(IDL_ERR_INVALID_ARG,
                          "noise_tunnel adds noise to a graph input; '%s' is an intermediate "
                          "tensor (use smoothgrad for embeddings)",
                          r.wrt);
    }
    if (p.noise_tensor &&
        (st = idl__check_replay(&r, p.noise_tensor, p.n_samples, "noise_file", r.numel))) {
        idl__x_end(&r);
        return st;
    }
    int64_t n = r.N * r.numel;
    float *sigma = idl__calloc((size_t)r.N, sizeof(float));
    idl_tensor *noisy = NULL;
    double *sum = NULL, *sum2 = NULL;
    int64_t an = 0;
    if (!sigma) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st) st = idl_tensor_clone(r.in[r.wrt_input], &noisy);
    idl_explain_request rq2 = *rq;
    const idl_tensor *ins[IDL__XMAX_IN];
    for (int i = 0; i < r.n_in; i++)
        ins[i] = i == r.wrt_input ? noisy : r.in[i];
    rq2.inputs = ins;
    rq2.input_names = NULL;
    rq2.n_inputs = r.n_in;
    rq2.targets = r.targets;
    rq2.progress = NULL;
    if (!st) idl__x_sigma(&r, p.noise, p.noise_abs, sigma);
    for (int64_t d = 0; !st && d < p.n_samples; d++) {
        float *xv = noisy->data;
        for (int64_t i = 0; i < r.N; i++) {
            idl__draw_noise(&r, p.noise_tensor, sigma, d, i, xv + i * r.numel);
            for (int64_t j = 0; j < r.numel; j++)
                xv[i * r.numel + j] += r.x[i * r.numel + j];
        }
        idl_explanation e;
        if ((st = idl_explain(s, base, &rq2, ptrs, nb, &e))) break;
        if (!sum) {
            an = idl_tensor_numel(e.attribution);
            sum = idl__calloc((size_t)an, sizeof(double));
            sum2 = idl__calloc((size_t)an, sizeof(double));
            if (!sum || !sum2) st = idl__error(IDL_ERR_NOMEM, "out of memory");
            if (!st) st = idl__x_result(&r, out, e.attribution->ndim, e.attribution->shape);
            if (!st) strcpy(out->layer, e.layer), strcpy(out->wrt, e.wrt[0] ? r.wrt : "");
        }
        if (!st) {
            const float *a = e.attribution->data;
            for (int64_t j = 0; j < an; j++)
                sum[j] += a[j], sum2[j] += (double)a[j] * a[j];
            out->passes += e.passes;
        }
        idl_explanation_clear(&e);
        if (!st && rq->progress && rq->progress(d + 1, p.n_samples, rq->progress_user))
            st = idl__error(IDL_ERR_ABORTED, "aborted by the progress callback");
    }
    (void)n;
    if (!st) {
        float *a = out->attribution->data;
        for (int64_t j = 0; j < an; j++) {
            double m = sum[j] / p.n_samples, m2 = sum2[j] / p.n_samples;
            a[j] = (float)(kind == 0 ? m : kind == 1 ? m2 : m2 - m * m);
        }
    } else {
        idl_explanation_clear(out);
    }
    idl_tensor_free(noisy);
    idl__free(sigma);
    idl__free(sum);
    idl__free(sum2);
    idl__x_end(&r);
    return st;
}

/* (N, H, W) map of one model's explanation: sum over channels of |a| for (N, C, H, W), a CAM map
 * resized bilinearly to (H, W); then min-max per sample. */
static idl_status consensus_map(const idl_explanation *e, int64_t H, int64_t W, float *dst) {
    const idl_tensor *a = e->attribution;
    int64_t N = a->shape[0];
    if (a->ndim == 4 && a->shape[2] == H && a->shape[3] == W) {
        int64_t C = a->shape[1];
        const float *v = a->data;
        for (int64_t i = 0; i < N; i++)
            for (int64_t q = 0; q < H * W; q++) {
                float s = 0;
                for (int64_t c = 0; c < C; c++)
                    s += fabsf(v[(i * C + c) * H * W + q]);
                dst[i * H * W + q] = s;
            }
    } else if (a->ndim == 3) {
        int64_t h = a->shape[1], w = a->shape[2];
        for (int64_t i = 0; i < N; i++) {
            idl_status st = idl__resize_map((const float *)a->data + i * h * w, (int)w, (int)h,
                                            dst + i * H * W, (int)W, (int)H, "consensus");
            if (st) return st;
        }
    } else {
        char b[128];
        return idl__error(IDL_ERR_SHAPE,
                          "consensus: an explanation of shape %s cannot be put on the image grid",
                          idl__shape_str(a->ndim, a->shape, b, sizeof b));
    }
    for (int64_t i = 0; i < N; i++) {
        float *m = dst + i * H * W, lo = m[0], hi = m[0];
        for (int64_t q = 1; q < H * W; q++)
            lo = m[q] < lo ? m[q] : lo, hi = m[q] > hi ? m[q] : hi;
        for (int64_t q = 0; q < H * W; q++)
            m[q] = hi > lo ? (m[q] - lo) / (hi - lo) : 0.0f;
    }
    return IDL_OK;
}

static idl_status run_consensus(idl_session *s, const char *name, idl_explain_request *rq,
                                idl__kvs *k, idl_explanation *out) {
    (void)name;
    const char *base = idl__kv_get(k, "base");
    const char *models = idl__kv_get(k, "models");
    if (!base) return idl__error(IDL_ERR_INVALID_ARG, "consensus needs base=METHOD");
    const method *bm = find_method(base);
    if (!bm || !strcmp(base, "consensus"))
        return idl__error(IDL_ERR_INVALID_ARG, "consensus: base=%s is not a method", base);
    char buf[IDL__MAX_SET][320];
    const char *ptrs[IDL__MAX_SET];
    int nb = rest(k, buf, ptrs);
    /* image size: the first float 4-D input */
    int64_t H = 0, W = 0, N = 0;
    for (int i = 0; i < rq->n_inputs && rq->inputs; i++)
        if (rq->inputs[i] && rq->inputs[i]->dtype == IDL_DT_F32 && rq->inputs[i]->ndim == 4) {
            N = rq->inputs[i]->shape[0], H = rq->inputs[i]->shape[2], W = rq->inputs[i]->shape[3];
            break;
        }
    if (!H) return idl__error(IDL_ERR_INVALID_ARG, "consensus needs an image input (N, C, H, W)");
    float *acc = idl__calloc((size_t)(N * H * W), sizeof(float));
    float *one = idl__calloc((size_t)(N * H * W), sizeof(float));
    if (!acc || !one) {
        idl__free(acc);
        idl__free(one);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    idl_status st = IDL_OK;
    int n_models = 0;
    const char *p = models;
    memset(out, 0, sizeof *out);
    for (int mi = 0; !st; mi++) {
        idl_session *ms = s;
        idl_model *mm = NULL;
        char path[1024];
        if (mi > 0) {
            if (!p || !*p) break;
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len == 0 || len >= sizeof path) {
                st = idl__error(IDL_ERR_INVALID_ARG, "consensus: bad models list '%s'", models);
                break;
            }
            memcpy(path, p, len);
            path[len] = 0;
            p = comma ? comma + 1 : p + len;
            if ((st = idl_model_load(path, NULL, &mm))) {
                st = idl__error_prefix(st, "consensus: model %s: ", path);
                break;
            }
            idl_session_opts so = s->opts;
            if ((st = idl_session_new(mm, &so, &ms))) {
                idl_model_free(mm);
                break;
            }
        }
        idl_explanation e;
        st = idl_explain(ms, base, rq, ptrs, nb, &e);
        if (!st) st = consensus_map(&e, H, W, one);
        if (!st) {
            for (int64_t j = 0; j < N * H * W; j++)
                acc[j] += one[j];
            n_models++;
            if (mi == 0) {
                *out = e; /* keep targets and scores of the first model */
                idl_tensor_free(out->attribution);
                out->attribution = NULL;
                e.targets = NULL, e.score = NULL, e.baseline_score = NULL, e.delta = NULL;
                memset(&e, 0, sizeof e);
            } else {
                out->passes += e.passes;
            }
        }
        idl_explanation_clear(&e);
        if (mi > 0) {
            idl_session_free(ms);
            idl_model_free(mm);
        }
    }
    if (!st) {
        int64_t shape[3] = { N, H, W };
        st = idl_tensor_new(IDL_DT_F32, 3, shape, &out->attribution);
    }
    if (!st) {
        float *a = out->attribution->data;
        for (int64_t j = 0; j < N * H * W; j++)
            a[j] = acc[j] / (float)n_models;
    } else {
        idl_explanation_clear(out);
    }
    idl__free(acc);
    idl__free(one);
    return st;
}

static const method g_methods[] = {
    { "saliency", run_saliency, "abs", "abs=1  1: |gradient| (Captum's default); 0: signed\n" },
    { "input_x_gradient", run_saliency, "", "(no settings) gradient times input\n" },
    { "smoothgrad", run_smoothgrad, "",
      "n_samples=50  noisy copies\n"
      "noise=0.1  sigma = noise * (max - min) of each sample\n"
      "noise_abs=0  > 0: sigma itself\n"
      "noise_file=F.npy  replay: noise of shape (n_samples, input shape)\n" },
    { "smoothgrad_sq", run_smoothgrad, "", "as smoothgrad; mean of squared gradients\n" },
    { "vargrad", run_smoothgrad, "", "as smoothgrad; variance of the gradients\n" },
    { "noise_tunnel", run_noise_tunnel, "",
      "base=METHOD  the method averaged over noisy inputs (its settings pass through)\n"
      "nt_type=smoothgrad  smoothgrad | smoothgrad_sq | vargrad\n"
      "n_samples=50, noise=0.1, noise_abs=0, noise_file=F.npy  as smoothgrad\n" },
    { "integrated_gradients", run_ig, "",
      "steps=50\n"
      "method=gausslegendre  gausslegendre | riemann_left | riemann_right | riemann_middle | "
      "riemann_trapezoid (Captum's) | trapezoid (exact) | linspace (InterpretDL's)\n"
      "baseline=zero  zero | black | uniform | blur | random | F.npy\n"
      "trials=10  random baselines averaged (baseline=random)\n"
      "blur_sigma=10  pixels (baseline=blur)\n"
      "mean=0.485,0.456,0.406 std=0.229,0.224,0.225  normalisation (baseline=black)\n" },
    { "gradient_shap", run_gradshap, "",
      "n_samples=5\n"
      "noise=0  relative noise added to the input (InterpretDL: 0.1); noise_abs=0\n"
      "baseline=zero  as integrated_gradients; F.npy of (K, sample shape) is a distribution\n"
      "noise_file=F.npy (n_samples, input shape), alpha_file=F.npy (n_samples, N)  replay\n" },
    { "guided_backprop", run_guided, "", "(no settings) ReLU backward = relu(dy) * (x > 0)\n" },
    { "deconvnet", run_guided, "", "(no settings) ReLU backward = relu(dy)\n" },
    { "cam", run_cam, "",
      "relu=0, normalize=0, upsample=0  (layer=NAME: the input of the global pooling)\n" },
    { "gradcam", run_cam, "",
      "layer=NAME  default: the input of the last global average pooling\n"
      "relu=1  0: Captum's LayerGradCam default\n"
      "normalize=0  1: min-max per sample\n"
      "upsample=0  1: bilinear to the input size\n" },
    { "gradcam_plus_plus", run_cam, "", "as gradcam\n" },
    { "xgradcam", run_cam, "", "as gradcam\n" },
    { "layercam", run_cam, "", "as gradcam\n" },
    { "guided_gradcam", run_guided_gradcam, "",
      "layer=NAME  as gradcam\n"
      "interpolate=nearest  nearest (Captum) | bilinear (the paper)\n" },
    { "occlusion", run_occlusion, "",
      "window=15,15  window per axis of one sample (the last axes; leading axes whole), e.g. "
      "3,15,15 for (C, H, W)\n"
      "stride=8  one value, or one per window axis (with window: default 1, Captum's)\n"
      "baseline=0  the value written into the window, or F.npy (one sample's shape or N of them)\n"
      "aggregate=mean  mean over the windows covering an element (Captum) | sum (InterpretDL)\n"
      "incremental=1  recompute only the crops a window changes, where the model allows "
      "(0: whole passes)\n" },
    { "scorecam", run_score_cam, "",
      "layer=NAME  as gradcam\n"
      "relu=1, normalize=0, upsample=0  as gradcam\n"
      "variant=paper  paper (softmax of the masked scores; pytorch-grad-cam) | interpretdl "
      "(sum of score x upsampled activation at the input's size, no ReLU)\n" },
    { "ablationcam", run_score_cam, "",
      "layer=NAME  as gradcam\n"
      "relu=1, normalize=0, upsample=0  as gradcam\n"
      "ablation_value=0  written into the ablated channel\n" },
    { "lime", run_lime, "",
      "num_samples=1000  perturbed samples (the first is the image itself)\n"
      "kernel_width=0.25  sample weight sqrt(exp(-d^2 / width^2)), d the cosine distance\n"
      "ridge_alpha=0  0: weighted least squares (InterpretDL); 1: the lime package's ridge\n"
      "top_k=1  k > 1: the k most probable classes, output (N, k, H, W)\n"
      "hide=mean  hidden superpixels: their mean value, or a number\n"
      "segmentation=quickshift  quickshift | slic | grid\n"
      "ratio=0.2 kernel_size=4 max_dist=200 sigma=0  quickshift (the lime package's; "
      "InterpretDL: 1, 5, 10, 1)\n"
      "n_segments=100 compactness=10 max_iter=10  slic; grid_rows=10 grid_cols=10  grid\n"
      "convert2lab=1  segment in CIE Lab\n"
      "segments=F.npy  label map (H, W) or (N, H, W) instead of segmenting\n"
      "masks=F.npy  replay (num_samples, S) masks of 0 / 1\n"
      "segments_out=F.npy, masks_out=F.npy  (command line) write them\n" },
    { "glime", run_lime, "",
      "prior_reg_force=1  pull of the prior in the standardised ridge\n"
      "prior=F.npy  per superpixel (S) / (N, S), or (classes, concepts) with concepts=\n"
      "concepts=F.npy  concept centres (normlime's concepts_out)\n"
      "concept_layer=NAME  the layer of the concepts (default: the automatic CAM layer)\n"
      "and lime's sampling and segmentation settings (not ridge_alpha)\n" },
    { "normlime", run_lime, "",
      "(a set of images, the inputs) output: (classes, concepts) global weights\n"
      "n_concepts=32  k-means clusters of superpixel features\n"
      "kmeans_iter=100\n"
      "concepts=F.npy  given centres instead; concepts_out=F.npy (command line) writes them\n"
      "concept_layer=NAME  features from this layer (default: the automatic CAM layer)\n"
      "cache=F.npy  per-image results kept there; a rerun takes them back (resumable)\n"
      "and lime's sampling and segmentation settings\n" },
    { "fastnormlime", run_lime, "",
      "(a set of images) output: (classes, concepts): ridge from concept presence to the "
      "probabilities\n"
      "grid_rows=10 grid_cols=10  the cells\n"
      "ridge_alpha=1\n"
      "n_concepts, kmeans_iter, concepts, concepts_out, concept_layer  as normlime\n" },
    { "rollout", run_attention, "",
      "start_layer=0  first block used\n"
      "head_fusion=mean  mean | max | min\n"
      "discard_ratio=0  fraction of the smallest fused weights zeroed\n"
      "probs=GLOB value=GLOB block_input=GLOB out_proj_weight=GLOB embedding=NAME grid=HxW "
      "prefix=K pooling=cls|mean  attention overrides (every attention method)\n" },
    { "generic_attention", run_attention, "",
      "start_layer=0\n"
      "variant=paper  paper (Chefer et al.: mean_h relu(G * A)) | interpretdl (heads averaged "
      "first)\n" },
    { "tam", run_attention, "", "start_layer=4\nsteps=20  path points from 0 to the input\n" },
    { "bt", run_attention, "", "start_layer=0\nsteps=20\nmode=head  head | token\n" },
    { "attention_gradcam", run_attention, "", "(no settings) Grad-CAM on the last attention\n" },
    { "consensus", run_consensus, "",
      "base=METHOD  the method run on every model (its settings pass through)\n"
      "models=B.onnx,C.onnx  the other models (the session's model comes first)\n" },
};
#define N_METHODS ((int)(sizeof g_methods / sizeof *g_methods))

static const method *find_method(const char *name) {
    for (int i = 0; i < N_METHODS; i++)
        if (!strcmp(g_methods[i].name, name)) return &g_methods[i];
    return NULL;
}

const char *const *idl_explain_methods(void) {
    static const char *names[N_METHODS + 1];
    for (int i = 0; i < N_METHODS; i++)
        names[i] = g_methods[i].name;
    names[N_METHODS] = NULL;
    return names;
}

const char *idl_explain_help(const char *name) {
    const method *m = name ? find_method(name) : NULL;
    return m ? m->help : NULL;
}

idl_status idl_explain(idl_session *s, const char *name, const idl_explain_request *rq,
                       const char *const *settings, int n_settings, idl_explanation *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!s || !name || !rq || !out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    const method *m = find_method(name);
    if (!m) {
        char close[256];
        const char *const *names = idl_explain_methods();
        idl__close_matches(name, names, N_METHODS, close, sizeof close);
        return idl__error(IDL_ERR_NOT_FOUND, "unknown method '%s'%s%s", name,
                          close[0] ? "; did you mean " : "", close);
    }
    idl__kvs k;
    idl_status st = idl__kvs_parse(&k, name, settings, n_settings);
    idl_explain_request r = *rq;
    if (!st) st = idl__kv_request(&k, &r);
    bool layered =
        strstr(name, "cam") || !strcmp(name, "noise_tunnel") || !strcmp(name, "consensus");
    if (!st && r.layer && r.layer[0] && !layered)
        st = idl__error(IDL_ERR_INVALID_ARG,
                        "%s takes no layer (layer=%s); layers are for the CAM methods", name,
                        r.layer);
    if (!st) st = m->run(s, name, &r, &k, out);
    idl__kvs_free(&k);
    return st;
}
