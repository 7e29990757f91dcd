/* evaluate.h — metrics that judge an explanation: how the model's output moves when the inputs
 * the explanation ranks first (or last) are removed or inserted, how well the explanation
 * predicts the effect of perturbations, how stable it is under noise, and whether it points at
 * the object. Every metric takes the explain request (interpretdl/explain.h: inputs, targets or
 * argmax, objective, seed, internal_batch, progress) and the explanation to judge, and returns
 * named per-sample scores; a registry maps metric names and "key=value" settings to them.
 *     idl_explain_request rq = idl_explain_request_default();
 *     rq.inputs = in; rq.n_inputs = 1;               // (N, C, H, W)
 *     idl_evaluation ev = {0};
 *     const char *set[] = { "steps=20", "fill=black" };
 *     idl_evaluate(sess, "deletion", &rq, attribution, set, 2, &ev);
 *     ... idl_evaluation_score(&ev, "deletion", b) for sample b, ev.curve ...
 *     idl_evaluation_clear(&ev);
 * Conventions shared by every metric:
 *  - The objective (default: the softmax probability, as Quantus's softmax=True and InterpretDL's
 *    evaluators) of the target class, the target given or the argmax of the clean pass.
 *  - The perturbed tensor is the explain request's wrt (default the first float32 input).
 *  - The explanation, per sample: the perturbed tensor's shape (one value per element; one
 *    sample's shape without the batch axis is taken for a batch of one); or one
 *    value per pixel, (N, H, W) or (N, 1, H, W), standing for every channel of the pixel (as
 *    Quantus broadcasts it); or another 2-D size (a CAM at its layer), resized bilinearly
 *    (half-pixel) to H x W as InterpretDL does.
 *  - Fill values (what "removed" means): black = the minimum of the sample (Quantus's "black"),
 *    white = its maximum, mean = its mean, blur = the sample blurred by a Gaussian of blur_sigma
 *    pixels (RISE's insertion canvas), a number, or a tensor of the sample's shape. The statistics
 *    are those of the clean sample (Quantus recomputes "mean" on the partly perturbed one).
 *  - Perturbed inputs are batched internal_batch rows per forward pass; every pass polls the
 *    session's abort callback and reports progress.
 */
#ifndef INTERPRETDL_EVALUATE_H
#define INTERPRETDL_EVALUATE_H

#include "interpretdl/explain.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IDL_EVAL_MAX_SCORES 8

typedef enum idl_fill_kind {
    IDL_FILL_BLACK = 0, /* minimum of the clean sample (default) */
    IDL_FILL_WHITE,     /* maximum */
    IDL_FILL_MEAN,      /* mean */
    IDL_FILL_VALUE,     /* value */
    IDL_FILL_BLUR,      /* Gaussian blur of the sample, blur_sigma pixels */
    IDL_FILL_TENSOR,    /* tensor: one sample's shape or (N, sample shape) */
    IDL_FILL_CHANNELS,  /* channel[c] on channel c (n_channels = C): e.g. a grey pixel after the
                           model's normalisation, InterpretDL's fill */
} idl_fill_kind;

#define IDL_FILL_MAX_CHANNELS 8

typedef struct idl_fill {
    idl_fill_kind kind;
    float value;
    float channel[IDL_FILL_MAX_CHANNELS];
    int n_channels;
    float blur_sigma;         /* default 10 */
    const idl_tensor *tensor; /* borrowed */
} idl_fill;
IDL_API idl_fill idl_fill_default(void);

/* The result: named scores per sample, and the perturbation curve of the curve metrics. */
typedef struct idl_evaluation {
    int64_t n;                              /* samples */
    int64_t *targets;                       /* (n) classes; NULL for point_game */
    float *score;                           /* (n) objective at the clean input; or NULL */
    int n_scores;                           /* scores per sample */
    const char *names[IDL_EVAL_MAX_SCORES]; /* their names (static strings) */
    double *values;                         /* (n, n_scores); NaN where undefined */
    idl_tensor *curve;                      /* (n, points) float64 objective after each step:
                                               deletion, insertion, morf, lerf; abpc: morf's */
    idl_tensor *curve2;                     /* abpc: lerf's curve; else NULL */
    int64_t passes;                         /* rows evaluated (forward passes of one sample) */
} idl_evaluation;
IDL_API void idl_evaluation_clear(idl_evaluation *ev);
/* The score called name of sample b; NaN if there is none. */
IDL_API double idl_evaluation_score(const idl_evaluation *ev, const char *name, int64_t b);

/* ---- deletion and insertion (Petsiuk et al., RISE; Quantus's PixelFlipping) ----
 * Features (elements or pixels, see above) are ordered by descending explanation value (ties:
 * the lower index first). Deletion replaces them with the fill, insertion starts from the fill
 * and puts them back, in K steps; the curve y_0..y_K holds the objective after each step (y_0:
 * nothing changed). Scores: "deletion" / "insertion" = the area under the curve by the trapezoid
 * rule with x in [0, 1] (spacing 1/K); "deletion_mean" / "insertion_mean" = the mean of
 * y_0..y_K (InterpretDL's score, its curve being K + 1 images). Quantus's PixelFlipping returns
 * y_1..y_K of deletion. */
typedef struct idl_deletion_params {
    int insertion;        /* 0: deletion; 1: insertion */
    int steps;            /* K (default 20): step j has changed floor(j F / K) of F features */
    int features_in_step; /* > 0: m features per step instead, K = ceil(F / m) (Quantus) */
    int reduce;           /* an (N, C, H, W) explanation: 0 per element (default); 1: pixels
                             ranked by sum_c |E| (InterpretDL); 2: by sum_c E */
    int interpretdl;      /* InterpretDL's DeletionInsertion: step j changes the features whose
                             value exceeds numpy's percentile(E, 100 (K - j) / K) (ties move
                             together); insertion's curve is its K + 1 scored images, from the
                             first reveal to the input (the fill canvas itself is not scored) */
    idl_fill fill;        /* default black; insertion's canvas */
} idl_deletion_params;
IDL_API idl_deletion_params idl_deletion_params_default(void);
IDL_API idl_status idl_eval_deletion(idl_session *s, const idl_explain_request *rq,
                                     const idl_tensor *explanation, const idl_deletion_params *p,
                                     idl_evaluation *out);

/* ---- region perturbation, MoRF and LeRF (Samek et al. 2016; Quantus's RegionPerturbation) ----
 * The sample is cut into patch_size x patch_size regions on a grid centred as Quantus's (H padded
 * to a multiple of the patch, half before, half after); a region's relevance is the sum of the
 * explanation over it. MoRF removes (fills) the most relevant regions first, LeRF the least, one
 * per step, `regions` steps (at most the number of regions): curve y_0..y_L. Scores: "morf" /
 * "lerf" = AOPC = 1/(L+1) sum_{j=0..L} (y_0 - y_j) (Samek et al.), "morf_mean" / "lerf_mean" = the
 * mean of the curve (InterpretDL's score). abpc runs both: "abpc" = area under the LeRF curve
 * minus area under the MoRF curve (trapezoid, x in [0, 1]; Schulz et al.), with "morf" and
 * "lerf". */
typedef enum idl_region_order { IDL_MORF = 0, IDL_LERF, IDL_ABPC } idl_region_order;
typedef struct idl_region_params {
    idl_region_order order;
    int interpretdl; /* InterpretDL's Perturbation: no regions, pixels by percentile thresholds
                        of the explanation (MoRF = its deletion; LeRF: the pixels below
                        percentile(E, 100 (j - 1) / K) filled at step j), steps K */
    int steps;       /* interpretdl: K (20) */
    int patch_size;  /* 8 */
    int regions;     /* 100 (Quantus's regions_evaluation) */
    idl_fill fill;   /* default black */
} idl_region_params;
IDL_API idl_region_params idl_region_params_default(void);
IDL_API idl_status idl_eval_region(idl_session *s, const idl_explain_request *rq,
                                   const idl_tensor *explanation, const idl_region_params *p,
                                   idl_evaluation *out);

/* ---- infidelity (Yeh et al. 2019) ----
 * Perturbations: every square of side k (each of patch_sizes) at positions stride apart that lies
 * wholly inside the sample, filled on every channel: x_p. I_p = x - x_p (the paper), or with
 * indicator the 0/1 mask of the elements that changed (InterpretDL). With d_p = f(x) - f(x_p) and
 * e_p = sum(E * I_p): "infidelity" = mean_p (d_p - beta e_p)^2, where beta = mean(d e) / mean(e^2)
 * is the optimal scaling of the authors' code (InterpretDL), or 1 without scaling (Quantus's
 * loss); "infidelity_beta" = beta. Lower is better. */
#define IDL_INFID_MAX_SIZES 8
typedef struct idl_infidelity_params {
    int n_sizes; /* 0: default sizes: InterpretDL's 32, 64, 128 at
                    stride 8 on 224 x 224, scaled to the sample's H */
    int patch_sizes[IDL_INFID_MAX_SIZES];
    int stride;    /* 0: default (H / 28, at least 1) */
    int indicator; /* 0 (default): I = x - x_p; 1: I = [x_p != x] */
    int scaling;   /* 1 (default): optimal beta; 0: beta = 1 */
    idl_fill fill; /* default black */
} idl_infidelity_params;
IDL_API idl_infidelity_params idl_infidelity_params_default(void);
IDL_API idl_status idl_eval_infidelity(idl_session *s, const idl_explain_request *rq,
                                       const idl_tensor *explanation,
                                       const idl_infidelity_params *p, idl_evaluation *out);

/* ---- sensitivity (Yeh et al. 2019; Quantus's MaxSensitivity and AvgSensitivity) ----
 * The explanation method is run again on x + delta_j, delta_j uniform in [-radius, radius] on
 * every element of the perturbed input (or replayed), with the same targets and objective:
 * s_j = |e(x + delta_j) - e(x)|_2 / |e(x)|_2, e(x) the given explanation (or, when it is NULL,
 * the method's output at x). Scores "max_sensitivity" = max_j s_j, "avg_sensitivity" = mean. */
typedef struct idl_sensitivity_params {
    const char *method;          /* explanation method name (idl_explain) */
    const char *const *settings; /* its settings */
    int n_settings;
    int n_samples;           /* 10 (Quantus: 200) */
    float radius;            /* 0.2 (Quantus's lower_bound) */
    const idl_tensor *noise; /* replay: (n_samples, N, sample shape) or
                                (n_samples, sample shape) (borrowed) */
} idl_sensitivity_params;
IDL_API idl_sensitivity_params idl_sensitivity_params_default(void);
IDL_API idl_status idl_eval_sensitivity(idl_session *s, const idl_explain_request *rq,
                                        const idl_tensor *explanation,
                                        const idl_sensitivity_params *p, idl_evaluation *out);

/* ---- pointing game (Zhang et al. 2016; Quantus's PointingGame; InterpretDL's PointGame) ----
 * Needs no model. The object: a box (columns x1..x2-1, rows y1..y2-1 of the explanation, as
 * InterpretDL slices [y1:y2, x1:x2]), per sample or for all, or a mask (nonzero = object) at
 * the explanation's size (else the explanation is resized to the mask's). "hit": 1 when an element
 * holding the sample's maximum lies in the object (Quantus), NaN for an empty object. InterpretDL's
 * scores on the map binarised at threshold * max: "precision", "recall", "f1" = 2PR/(P+R+1e-6),
 * and on the raw map "roc_auc" and "ap" (average precision), with scikit-learn's tie handling.
 * An (N, C, H, W) explanation counts per element for hit and is summed over C for the rest. */
typedef struct idl_point_game_params {
    const int64_t *boxes; /* (n_boxes, 4) x1, y1, x2, y2: one for all samples or one each */
    int64_t n_boxes;
    const idl_tensor *mask; /* (H, W) or (N, H, W), any numeric type (borrowed) */
    float threshold;        /* 0.25 */
} idl_point_game_params;
IDL_API idl_point_game_params idl_point_game_params_default(void);
IDL_API idl_status idl_eval_point_game(const idl_tensor *explanation,
                                       const idl_point_game_params *p, idl_evaluation *out);

/* ---- local fidelity of a LIME explanation ----
 * LIME's sampling (idl_lime: superpixels kept or hidden, kernel weights) on held-out masks, drawn
 * with seed + 1 (heldout = 1) or with the seed itself (heldout = 0: LIME's own samples, the score
 * is then LIME's R^2): "local_fidelity" = the weighted R^2 of the surrogate g(z) = b + sum_j w_j
 * z_j against the objective, w_j the superpixel weights (the explanation's value on superpixel j:
 * the mean of the painted map over it, or features given), b the intercept given or the weighted
 * least-squares one for these w. */
typedef struct idl_local_fidelity_params {
    idl_lime_params lime;       /* num_samples (default 1000), kernel_width, hide, segments */
    const idl_tensor *features; /* (N, S) weights instead of the painted map (borrowed) */
    const double *intercept;    /* (N) given intercepts, or NULL: fitted */
    int heldout;                /* 1 (default) */
} idl_local_fidelity_params;
IDL_API idl_local_fidelity_params idl_local_fidelity_params_default(void);
IDL_API idl_status idl_eval_local_fidelity(idl_session *s, const idl_explain_request *rq,
                                           const idl_tensor *explanation,
                                           const idl_local_fidelity_params *p, idl_evaluation *out);

/* ---- the registry ----
 * Metric names: deletion, insertion, morf, lerf, abpc, infidelity, sensitivity, point_game,
 * local_fidelity. Settings as listed by idl_evaluate_help; every metric also takes objective,
 * output, internal_batch, seed and wrt. point_game takes no session (s may be NULL). */
IDL_API idl_status idl_evaluate(idl_session *s, const char *metric, const idl_explain_request *rq,
                                const idl_tensor *explanation, const char *const *settings,
                                int n_settings, idl_evaluation *out);
/* NULL-terminated metric names; the settings of one (NULL if unknown). */
IDL_API const char *const *idl_evaluate_metrics(void);
IDL_API const char *idl_evaluate_help(const char *metric);

#ifdef __cplusplus
}
#endif

#endif
