/* registry.c — metrics by name with "key=value" settings (evaluate.h), the path the command line
 * takes; the settings are read as the explanation registry reads them (interpret/settings.h). */
#include "evaluate/evaluate_internal.h"
#include "interpret/settings.h"

#include "interpretdl/segment.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fill=black|white|mean|blur|NUMBER|F.npy, blur_sigma= */
static idl_status fill_settings(idl__kvs *k, idl_fill *f) {
    const char *v = idl__kv_get(k, "fill");
    idl_status st = IDL_OK;
    if (v) {
        static const char *const kinds[] = { "black", "white", "mean" };
        char *end;
        double x = strtod(v, &end);
        bool found = false;
        for (int i = 0; i < 3; i++)
            if (!strcmp(v, kinds[i])) f->kind = (idl_fill_kind)i, found = true;
        if (found) {
        } else if (!strcmp(v, "blur")) {
            f->kind = IDL_FILL_BLUR;
        } else if (*v && !*end && isfinite(x)) {
            f->kind = IDL_FILL_VALUE, f->value = (float)x;
        } else if (*v && *end == ',') { /* one value per channel */
            f->kind = IDL_FILL_CHANNELS;
            f->n_channels = 0;
            const char *q = v;
            for (;;) {
                char *e;
                double c = strtod(q, &e);
                if (e == q || !isfinite(c) || f->n_channels == IDL_FILL_MAX_CHANNELS)
                    return idl__kv_bad(k, "fill", v,
                                       "black, white, mean, blur, a number, "
                                       "numbers per channel or a .npy file");
                f->channel[f->n_channels++] = (float)c;
                if (!*e) break;
                if (*e != ',')
                    return idl__kv_bad(k, "fill", v, "comma-separated numbers per channel");
                q = e + 1;
            }
        } else {
            idl__kv_unuse(k, "fill");
            f->kind = IDL_FILL_TENSOR;
            st = idl__kv_npy(k, "fill", &f->tensor);
        }
    }
    if (!st) st = idl__kv_float(k, "blur_sigma", &f->blur_sigma, 1e-3, 1e4);
    return st;
}

/* variant=paper (default) | interpretdl */
static idl_status variant(idl__kvs *k, int *interpretdl) {
    static const char *const v[] = { "paper", "interpretdl" };
    return idl__kv_enum(k, "variant", v, 2, interpretdl);
}

static idl_status unused(idl__kvs *k, const char *keys) {
    bool model = strcmp(k->method, "point_game") != 0;
    for (int i = 0; i < k->n; i++)
        if (!k->v[i].used)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "%s does not take the setting '%s'; it takes: %s%s", k->method,
                              k->v[i].key, keys,
                              model ? " (and objective, output, internal_batch, seed, wrt)" : "");
    return IDL_OK;
}

typedef idl_status (*run_fn)(idl_session *s, const char *name, const idl_explain_request *rq,
                             const idl_tensor *E, idl__kvs *k, idl_evaluation *out);

static idl_status run_deletion(idl_session *s, const char *name, const idl_explain_request *rq,
                               const idl_tensor *E, idl__kvs *k, idl_evaluation *out) {
    static const char *const reduce[] = { "none", "abs_sum", "sum" };
    idl_deletion_params p = idl_deletion_params_default();
    p.insertion = !strcmp(name, "insertion");
    idl_status st = idl__kv_int(k, "steps", &p.steps, 1, 1 << 24);
    if (!st) st = idl__kv_int(k, "features_in_step", &p.features_in_step, 1, 1 << 30);
    if (!st) st = idl__kv_enum(k, "reduce", reduce, 3, &p.reduce);
    if (!st) st = variant(k, &p.interpretdl);
    if (!st) st = fill_settings(k, &p.fill);
    if (!st) st = unused(k, "steps, features_in_step, reduce, variant, fill, blur_sigma");
    return st ? st : idl_eval_deletion(s, rq, E, &p, out);
}

static idl_status run_region(idl_session *s, const char *name, const idl_explain_request *rq,
                             const idl_tensor *E, idl__kvs *k, idl_evaluation *out) {
    idl_region_params p = idl_region_params_default();
    p.order = !strcmp(name, "lerf") ? IDL_LERF : !strcmp(name, "abpc") ? IDL_ABPC : IDL_MORF;
    idl_status st = idl__kv_int(k, "patch_size", &p.patch_size, 1, 1 << 20);
    if (!st) st = idl__kv_int(k, "regions", &p.regions, 1, 1 << 30);
    if (!st) st = variant(k, &p.interpretdl);
    if (!st) st = idl__kv_int(k, "steps", &p.steps, 1, 1 << 24);
    if (!st) st = fill_settings(k, &p.fill);
    if (!st) st = unused(k, "patch_size, regions, variant, steps (interpretdl), fill, blur_sigma");
    return st ? st : idl_eval_region(s, rq, E, &p, out);
}

static idl_status run_infidelity(idl_session *s, const char *name, const idl_explain_request *rq,
                                 const idl_tensor *E, idl__kvs *k, idl_evaluation *out) {
    (void)name;
    idl_infidelity_params p = idl_infidelity_params_default();
    int64_t sizes[IDL_INFID_MAX_SIZES];
    int n = 0;
    idl_status st = idl__kv_ints(k, "patch_sizes", sizes, IDL_INFID_MAX_SIZES, &n, 1, 1 << 20);
    p.n_sizes = n;
    for (int i = 0; i < n; i++)
        p.patch_sizes[i] = (int)sizes[i];
    if (!st) st = idl__kv_int(k, "stride", &p.stride, 1, 1 << 20);
    if (!st) st = idl__kv_bool(k, "indicator", &p.indicator);
    if (!st) st = idl__kv_bool(k, "scaling", &p.scaling);
    if (!st) st = fill_settings(k, &p.fill);
    if (!st) st = unused(k, "patch_sizes, stride, indicator, scaling, fill, blur_sigma");
    return st ? st : idl_eval_infidelity(s, rq, E, &p, out);
}

static idl_status run_sensitivity(idl_session *s, const char *name, const idl_explain_request *rq,
                                  const idl_tensor *E, idl__kvs *k, idl_evaluation *out) {
    (void)name;
    idl_sensitivity_params p = idl_sensitivity_params_default();
    const char *pass[IDL__MAX_SET + 1];
    char buf[IDL__MAX_SET + 1][1024];
    int np = 0;
    p.method = idl__kv_get(k, "method");
    idl_status st = idl__kv_int(k, "n_samples", &p.n_samples, 1, 1 << 20);
    if (!st) st = idl__kv_float(k, "radius", &p.radius, 0, 1e30);
    if (!st) st = idl__kv_npy(k, "noise", &p.noise);
    for (int i = 0; !st && i < k->n; i++) /* method.KEY=VALUE: the method's own settings */
        if (!strncmp(k->v[i].key, "method.", 7)) {
            k->v[i].used = true;
            if (snprintf(buf[np], sizeof buf[np], "%s=%s", k->v[i].key + 7, k->v[i].val) >=
                (int)sizeof buf[np])
                st = idl__kv_bad(k, k->v[i].key, k->v[i].val, "a shorter value");
            pass[np] = buf[np];
            np++;
        }
    if (!st && rq->layer) { /* the method's layer */
        if (snprintf(buf[np], sizeof buf[np], "layer=%s", rq->layer) >= (int)sizeof buf[np])
            st = idl__error(IDL_ERR_INVALID_ARG, "sensitivity: the layer name is too long");
        pass[np] = buf[np];
        np++;
    }
    if (!st) st = unused(k, "method, method.KEY (the method's settings), n_samples, radius, noise");
    if (!st && !p.method)
        st = idl__error(IDL_ERR_INVALID_ARG,
                        "sensitivity needs method=NAME (the explanation method to re-run)");
    p.settings = pass;
    p.n_settings = np;
    idl_explain_request r = *rq;
    r.layer = NULL;
    return st ? st : idl_eval_sensitivity(s, &r, E, &p, out);
}

static idl_status run_point_game(idl_session *s, const char *name, const idl_explain_request *rq,
                                 const idl_tensor *E, idl__kvs *k, idl_evaluation *out) {
    (void)s, (void)name, (void)rq;
    idl_point_game_params p = idl_point_game_params_default();
    int64_t box[4];
    int nb = 0;
    const idl_tensor *boxes = NULL;
    int64_t *owned = NULL;
    idl_status st = idl__kv_ints(k, "box", box, 4, &nb, -(1LL << 40), 1LL << 40);
    if (!st && nb && nb != 4) st = idl__kv_bad(k, "box", idl__kv_get(k, "box"), "x1,y1,x2,y2");
    if (!st) st = idl__kv_npy(k, "boxes", &boxes);
    if (!st) st = idl__kv_npy(k, "mask", &p.mask);
    if (!st) st = idl__kv_float(k, "threshold", &p.threshold, 0, 1);
    if (!st) st = unused(k, "box, boxes, mask, threshold");
    if (!st && nb && boxes)
        st = idl__error(IDL_ERR_INVALID_ARG, "point_game: give box= or boxes=, not both");
    if (!st && nb) p.boxes = box, p.n_boxes = 1;
    if (!st && boxes) {
        char a[128];
        int64_t nbx = idl_tensor_numel(boxes) / 4;
        if (boxes->ndim < 1 || boxes->shape[boxes->ndim - 1] != 4 || nbx < 1 ||
            boxes->dtype == IDL_DT_BOOL)
            st = idl__error(IDL_ERR_SHAPE,
                            "point_game: boxes must be (N, 4) x1, y1, x2, y2; "
                            "the file is %s",
                            idl__shape_str(boxes->ndim, boxes->shape, a, sizeof a));
        owned = st ? NULL : idl__malloc(sizeof(int64_t) * (size_t)(nbx * 4));
        if (!st && !owned) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; !st && j < nbx * 4; j++) {
            double v = idl__get_f64(boxes, j);
            if (!(fabs(v) < 1e12))
                st = idl__error(IDL_ERR_INVALID_ARG,
                                "point_game: boxes: value %g (box %lld) is not a coordinate", v,
                                (long long)(j / 4));
            owned[j] = st ? 0 : (int64_t)floor(v);
        }
        p.boxes = owned, p.n_boxes = nbx;
    }
    if (!st) st = idl_eval_point_game(E, &p, out);
    idl__free(owned);
    return st;
}

static idl_status run_local_fidelity(idl_session *s, const char *name,
                                     const idl_explain_request *rq, const idl_tensor *E,
                                     idl__kvs *k, idl_evaluation *out) {
    (void)name;
    idl_local_fidelity_params p = idl_local_fidelity_params_default();
    idl_segment_params sp;
    const idl_tensor *icpt = NULL;
    double *b = NULL;
    idl_status st = idl__kv_lime(k, rq, &p.lime, &sp);
    idl__kv_unuse(k, "segments_out"), idl__kv_unuse(k, "masks_out"); /* lime's outputs: not here */
    if (!st) st = idl__kv_npy(k, "features", &p.features);
    if (!st) st = idl__kv_bool(k, "heldout", &p.heldout);
    if (!st) st = idl__kv_npy(k, "intercept", &icpt);
    if (!st)
        st = unused(k, "heldout, features, intercept and lime's sampling and segmentation "
                       "settings (num_samples, kernel_width, hide, segmentation, segments, masks, "
                       "...)");
    if (!st && icpt) {
        int64_t n = idl_tensor_numel(icpt);
        b = idl__malloc(sizeof(double) * (size_t)(n + 1));
        if (!b) st = idl__error(IDL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; !st && i < n; i++)
            b[i] = idl__get_f64(icpt, i);
        int64_t N = rq->n_inputs > 0 && rq->inputs[0]->ndim > 0 ? rq->inputs[0]->shape[0] : 1;
        if (!st && n != N)
            st = idl__error(IDL_ERR_SHAPE,
                            "local_fidelity: intercept holds %lld values for %lld "
                            "samples",
                            (long long)n, (long long)N);
        p.intercept = b;
    }
    if (!st) st = idl_eval_local_fidelity(s, rq, E, &p, out);
    idl__free(b);
    return st;
}

typedef struct metric {
    const char *name;
    run_fn run;
    const char *help;
} metric;

#define FILL_HELP                                                                           \
    "fill=black  black (sample minimum) | white | mean | blur | a number | a,b,c (one per " \
    "channel) | F.npy (sample shape)\n"                                                     \
    "blur_sigma=10  fill=blur's Gaussian, in pixels\n"

static const metric g_metrics[] = {
    { "deletion", run_deletion,
      "features ranked by the explanation removed in steps: deletion (trapezoid area, x in "
      "[0, 1]), deletion_mean (InterpretDL), the curve\n"
      "steps=20  or features_in_step=M (Quantus's PixelFlipping)\n"
      "reduce=none  none | abs_sum | sum: rank pixels by sum_c |E| or sum_c E\n"
      "variant=paper  interpretdl: steps by percentile thresholds, InterpretDL's "
      "images\n" FILL_HELP },
    { "insertion", run_deletion,
      "features put back on the fill in the same order: insertion, insertion_mean, the curve\n"
      "steps=20, features_in_step, reduce, fill (the canvas), blur_sigma  as deletion\n" },
    { "morf", run_region,
      "regions removed most relevant first: morf (AOPC), morf_mean, the curve\n"
      "patch_size=8  regions=100  (Quantus's RegionPerturbation)\n"
      "variant=paper  interpretdl: InterpretDL's Perturbation (pixels by percentile thresholds, "
      "steps=20)\n" FILL_HELP },
    { "lerf", run_region,
      "least relevant first: lerf (AOPC), lerf_mean\n"
      "patch_size=8 regions=100 variant steps fill blur_sigma  as morf\n" },
    { "abpc", run_region,
      "area between the LeRF and MoRF curves (trapezoid): abpc, morf, lerf, morf_mean, "
      "lerf_mean\npatch_size=8 regions=100 variant steps fill blur_sigma  as morf\n" },
    { "infidelity", run_infidelity,
      "squares filled one at a time: infidelity (lower is better), infidelity_beta\n"
      "patch_sizes=32,64,128  at 224 x 224, scaled to the input; stride=8 likewise\n"
      "indicator=0  0: I = x - x_p (Yeh et al.); 1: the 0/1 mask of changed elements "
      "(InterpretDL)\n"
      "scaling=1  1: optimal scaling beta (authors' code, InterpretDL); 0: none "
      "(Quantus)\n" FILL_HELP },
    { "sensitivity", run_sensitivity,
      "the method re-run on noisy inputs: max_sensitivity, avg_sensitivity\n"
      "method=NAME  the explanation method (required); method.KEY=VALUE its settings\n"
      "n_samples=10  radius=0.2  noise uniform in [-radius, radius]\n"
      "noise=F.npy  replay: (n_samples, [N,] sample shape)\n" },
    { "point_game", run_point_game,
      "(no model) hit (Quantus), precision, recall, f1, roc_auc, ap (InterpretDL)\n"
      "box=x1,y1,x2,y2  the object, columns x1..x2-1, rows y1..y2-1; or boxes=F.npy (N, 4)\n"
      "mask=F.npy  (H, W) or (N, H, W), nonzero = object\n"
      "threshold=0.25  precision / recall of the map above threshold * max\n" },
    { "local_fidelity", run_local_fidelity,
      "R^2 of the LIME surrogate on held-out perturbations: local_fidelity\n"
      "segments=F.npy  the superpixels of the LIME run (lime's segments_out)\n"
      "features=F.npy  (N, S) weights instead of the painted map; intercept=F.npy (N)\n"
      "heldout=1  0: LIME's own masks (the score is LIME's R^2)\n"
      "num_samples=1000, kernel_width, hide and segmentation settings  as lime\n" },
};
#define N_METRICS ((int)(sizeof g_metrics / sizeof *g_metrics))

static const metric *find_metric(const char *name) {
    for (int i = 0; name && i < N_METRICS; i++)
        if (!strcmp(g_metrics[i].name, name)) return &g_metrics[i];
    return NULL;
}

const char *const *idl_evaluate_metrics(void) {
    static const char *names[N_METRICS + 1];
    for (int i = 0; i < N_METRICS; i++)
        names[i] = g_metrics[i].name;
    names[N_METRICS] = NULL;
    return names;
}

const char *idl_evaluate_help(const char *name) {
    const metric *m = find_metric(name);
    return m ? m->help : NULL;
}

idl_status idl_evaluate(idl_session *s, const char *name, const idl_explain_request *rq,
                        const idl_tensor *explanation, const char *const *settings, int n_settings,
                        idl_evaluation *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!name || !out) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    const metric *m = find_metric(name);
    if (!m) {
        char close[256];
        idl__close_matches(name, idl_evaluate_metrics(), N_METRICS, close, sizeof close);
        return idl__error(IDL_ERR_NOT_FOUND, "unknown metric '%s'%s%s", name,
                          close[0] ? "; did you mean " : "", close);
    }
    bool model = strcmp(name, "point_game") != 0;
    if (model && (!s || !rq))
        return idl__error(IDL_ERR_INVALID_ARG, "%s needs a session and a request", name);
    idl_explain_request r = rq ? *rq : idl_explain_request_default();
    idl__kvs k;
    idl_status st = idl__kvs_parse(&k, name, settings, n_settings);
    if (!st && model) st = idl__kv_request(&k, &r);
    if (!st && r.layer && r.layer[0] && strcmp(name, "sensitivity") != 0)
        st = idl__error(IDL_ERR_INVALID_ARG, "%s takes no layer (layer=%s)", name, r.layer);
    if (!st) st = m->run(s, name, &r, explanation, &k, out);
    idl__kvs_free(&k);
    return st;
}
