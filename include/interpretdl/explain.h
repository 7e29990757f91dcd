/* explain.h — explanation methods. One request type (inputs, target, objective, layer, seed) and
 * one result type serve every method; each method has a params struct with paper defaults, a
 * _default() function and an entry point, and a registry maps method names and "key=value"
 * settings to them so that the command line, batch runs and bindings share one path.
 *
 *     idl_explain_request rq = idl_explain_request_default();
 *     const idl_tensor *in[1] = { x };             // (N, C, H, W), N samples explained at once
 *     rq.inputs = in; rq.n_inputs = 1;
 *     rq.objective = IDL_OBJ_LOGIT;                // default: probability (InterpretDL's)
 *     idl_explanation e = {0};
 *     const char *set[] = { "steps=64", "method=riemann_trapezoid" };
 *     idl_explain(sess, "integrated_gradients", &rq, set, 2, &e);
 *     ... e.attribution (N, C, H, W), e.targets, e.delta (completeness error) ...
 *     idl_explanation_clear(&e);
 *
 * Conventions shared by every method:
 *  - The target of sample b is rq.targets[b], or the argmax class of the clean (unperturbed)
 *    forward pass; it is fixed for all perturbed passes.
 *  - The objective is the probability (softmax over the class axis), the logit or the log
 *    probability of the target, per sample: each sample's gradient is its own.
 *  - "wrt" is the tensor attributed to: by default the first float32 graph input, or, for a model
 *    whose inputs are all integer (token ids), the output of the word-embedding Gather (the word
 *    vectors before position and type embeddings are added, as InterpretDL's NLP interpreters
 *    hook it). Any tensor name may be given instead; a non-input tensor is replaced through a tap.
 *  - Random numbers are counter-based: the value drawn for (seed, draw s, element j of one
 *    sample) does not depend on the batch, the thread count or internal_batch, so N samples in one
 *    call give the results of N single calls.
 *  - Perturbed passes (noise samples, path steps) are batched internally, internal_batch rows per
 *    forward/backward (0 = automatic: 16). Every pass polls the session's abort callback.
 */
#ifndef INTERPRETDL_EXPLAIN_H
#define INTERPRETDL_EXPLAIN_H

#include "interpretdl/interpretdl.h"
#include "interpretdl/session.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Progress: called after each internal pass with (done, total) passes; return non-zero to abort. */
typedef int (*idl_progress_fn)(int64_t done, int64_t total, void *user);

typedef struct idl_explain_request {
    const idl_tensor *const *inputs; /* every graph input, batch N on axis 0 (borrowed) */
    const char *const *input_names;  /* NULL: inputs in model order */
    int n_inputs;
    const char *wrt;              /* tensor attributed to; NULL or "input": see above */
    const int64_t *targets;       /* one class per sample, or NULL = argmax of the clean pass */
    idl_objective_kind objective; /* LOGIT, PROBABILITY (default) or LOG_PROBABILITY */
    int output;                   /* graph output holding the class scores (default 0) */
    const char *layer;            /* CAM methods: tensor name; NULL = automatic */
    uint64_t seed;                /* random methods (default 0) */
    int internal_batch;           /* rows per internal pass; 0 = automatic */
    const idl_tensor *image;      /* methods that segment the image (lime): the images the input was
                                     made from, (N, H, W, C) float32 in [0, 1] at the input's size
                                     (the CLI passes its decoded, resized pictures); NULL: each sample
                                     of the input rescaled to [0, 1] */
    idl_progress_fn progress;
    void *progress_user;
} idl_explain_request;
IDL_API idl_explain_request idl_explain_request_default(void);

/* The result. Arrays are owned; release with idl_explanation_clear. */
typedef struct idl_explanation {
    idl_tensor *attribution; /* method's map: wrt's shape, or (N, h, w) for CAM methods */
    int64_t n;               /* samples */
    int64_t *targets;        /* (n) the classes explained */
    float *score;            /* (n) objective at the clean input */
    float *baseline_score;   /* (n) objective at the baseline (path methods), else NULL */
    double *delta;           /* (n) completeness error sum(attribution) - (score - baseline_score)
                                (Integrated Gradients with one baseline), else NULL */
    char wrt[256];           /* tensor attributed to ("" for CAM methods) */
    char layer[256];         /* layer used by CAM methods ("" otherwise) */
    int64_t passes;          /* forward (+ backward) rows evaluated, the clean pass included */
    int64_t k;               /* classes per sample: 1, or lime's top_k (then targets, intercept,
                                r2 and the rows of features are (n, k), the attribution
                                (n, k, H, W)); 0 is read as 1 */
    /* surrogate methods (lime), else NULL: */
    idl_tensor *features; /* (n, S) coefficient of each feature (superpixel) for the target;
                             samples with fewer features are padded with 0 */
    idl_tensor *segments; /* (n, H, W) int32 feature (superpixel) of each pixel */
    idl_tensor *masks;    /* (num_samples, S) float32 0/1 perturbation masks used */
    int64_t *n_features;  /* (n) features of each sample */
    double *intercept;    /* (n) the surrogate's intercept */
    double *r2;           /* (n) its weighted R^2 on the perturbed samples */
    idl_tensor *concepts; /* normlime, fastnormlime: (concepts, features) concept centres */
} idl_explanation;
IDL_API void idl_explanation_clear(idl_explanation *e);

/* ---- baselines (Integrated Gradients, GradientSHAP) ---- */
typedef enum idl_baseline_kind {
    IDL_BASELINE_ZERO = 0, /* zeros in the model's input space (InterpretDL, Captum) */
    IDL_BASELINE_BLACK,    /* per channel (0 - mean_c) / std_c: a black image after normalisation */
    IDL_BASELINE_UNIFORM,  /* uniform in [min, max] of each sample, per element */
    IDL_BASELINE_BLUR,     /* the input blurred by a Gaussian of blur_sigma pixels (last 2 axes) */
    IDL_BASELINE_RANDOM,   /* standard normal, `trials` of them, attributions averaged */
    IDL_BASELINE_TENSOR,   /* given: wrt's shape, one sample's shape, or (trials, wrt shape) */
} idl_baseline_kind;

typedef struct idl_baseline {
    idl_baseline_kind kind;
    const idl_tensor *tensor; /* IDL_BASELINE_TENSOR (borrowed) */
    float blur_sigma;         /* default 10 */
    float mean[4], std[4];    /* IDL_BASELINE_BLACK; default ImageNet's (3 channels; else 0 / 1) */
    int trials;               /* IDL_BASELINE_RANDOM: default 10 */
} idl_baseline;

/* ---- gradient methods ---- */
typedef struct idl_saliency_params {
    int abs; /* 1 (default, Captum): |gradient|; 0: signed gradient */
} idl_saliency_params;
IDL_API idl_saliency_params idl_saliency_params_default(void);
IDL_API idl_status idl_saliency(idl_session *s, const idl_explain_request *rq,
                                const idl_saliency_params *p, idl_explanation *out);
/* gradient * input */
IDL_API idl_status idl_input_x_gradient(idl_session *s, const idl_explain_request *rq,
                                        idl_explanation *out);

typedef enum idl_smooth_kind {
    IDL_SMOOTH_MEAN = 0, /* SmoothGrad: mean of the attributions */
    IDL_SMOOTH_SQ,       /* SmoothGrad-squared: mean of their squares */
    IDL_SMOOTH_VAR,      /* VarGrad: their variance, mean of squares minus squared mean */
} idl_smooth_kind;

typedef struct idl_smooth_params {
    int n_samples;        /* 50 */
    float noise;          /* 0.1: sigma = noise * (max - min) of each sample (the paper) */
    float noise_abs;      /* > 0: sigma given directly, overrides noise */
    idl_smooth_kind kind; /* MEAN */
    const idl_tensor *noise_tensor; /* replay: (n_samples, wrt shape) added as drawn (borrowed) */
} idl_smooth_params;
IDL_API idl_smooth_params idl_smooth_params_default(void);
/* SmoothGrad over the signed gradient (Smilkov et al.; InterpretDL's SmoothGrad). */
IDL_API idl_status idl_smoothgrad(idl_session *s, const idl_explain_request *rq,
                                  const idl_smooth_params *p, idl_explanation *out);

typedef enum idl_ig_method {
    IDL_IG_GAUSS_LEGENDRE = 0, /* default (Captum's) */
    IDL_IG_RIEMANN_LEFT,
    IDL_IG_RIEMANN_RIGHT,
    IDL_IG_RIEMANN_MIDDLE,
    IDL_IG_RIEMANN_TRAPEZOID, /* Captum's: weights 1/steps, the two ends halved (sum (n-1)/n) */
    IDL_IG_LINSPACE,          /* InterpretDL: alpha = linspace(0, 1, steps), weights 1/steps */
    IDL_IG_TRAPEZOID,         /* the exact trapezoid rule: weights 1/(steps-1), ends halved */
} idl_ig_method;

typedef struct idl_ig_params {
    int steps; /* 50 */
    idl_ig_method method;
    idl_baseline baseline;
} idl_ig_params;
IDL_API idl_ig_params idl_ig_params_default(void);
IDL_API idl_status idl_integrated_gradients(idl_session *s, const idl_explain_request *rq,
                                            const idl_ig_params *p, idl_explanation *out);

typedef struct idl_gradient_shap_params {
    int n_samples; /* 5 */
    float noise;   /* 0 (Captum, the paper); InterpretDL uses 0.1, relative like SmoothGrad */
    float noise_abs;
    idl_baseline
        baseline; /* a TENSOR of (K, sample shape) is a distribution: one drawn per sample */
    const idl_tensor *noise_tensor; /* replay: (n_samples, wrt shape) */
    const idl_tensor *alpha_tensor; /* replay: (n_samples, N) in [0, 1] */
} idl_gradient_shap_params;
IDL_API idl_gradient_shap_params idl_gradient_shap_params_default(void);
IDL_API idl_status idl_gradient_shap(idl_session *s, const idl_explain_request *rq,
                                     const idl_gradient_shap_params *p, idl_explanation *out);

/* Guided Backpropagation (relu of the gradient through every Relu node) and DeconvNet (relu of
 * the incoming gradient, ignoring the forward mask), as Captum hooks nn.ReLU modules. */
typedef struct idl_guided_params {
    int deconvnet; /* 0: guided backpropagation; 1: deconvnet */
} idl_guided_params;
IDL_API idl_status idl_guided_backprop(idl_session *s, const idl_explain_request *rq,
                                       const idl_guided_params *p, idl_explanation *out);

/* ---- class activation maps; output (N, h, w) at the layer, or (N, H, W) with upsample ---- */
typedef enum idl_cam_kind {
    IDL_CAM = 0,           /* Zhou et al.: fully-connected weights after global pooling */
    IDL_GRADCAM,           /* Selvaraju et al.: weights = spatial mean of the gradient */
    IDL_GRADCAM_PLUS_PLUS, /* Chattopadhay et al. */
    IDL_XGRADCAM,          /* Fu et al. */
    IDL_LAYERCAM,          /* Jiang et al.: relu(gradient) * activation per position */
} idl_cam_kind;

typedef struct idl_cam_params {
    idl_cam_kind kind;
    int relu;      /* 1 (paper, pytorch-grad-cam); 0 = Captum's LayerGradCam default */
    int normalize; /* 1: min-max to [0, 1] per sample (pytorch-grad-cam); default 0 */
    int upsample;  /* 1: bilinear to the input's H x W (half-pixel centres); default 0 */
} idl_cam_params;
IDL_API idl_cam_params idl_cam_params_default(void);
IDL_API idl_status idl_cam(idl_session *s, const idl_explain_request *rq, const idl_cam_params *p,
                           idl_explanation *out);

/* Guided Grad-CAM: guided backpropagation times Grad-CAM (with ReLU) upsampled to the input. */
typedef struct idl_guided_gradcam_params {
    int bilinear; /* 0 (Captum's default): nearest upsampling; 1: bilinear (the paper) */
} idl_guided_gradcam_params;
IDL_API idl_status idl_guided_gradcam(idl_session *s, const idl_explain_request *rq,
                                      const idl_guided_gradcam_params *p, idl_explanation *out);

/* ---- perturbation methods (forward passes only) ---- */

/* Occlusion (Zeiler & Fergus; Captum's Occlusion): a window slides over each sample of the wrt
 * tensor (the input); window k replaced by the baseline changes the objective by
 * d_k = f(x) - f(x with window k occluded), and each element receives the mean of d_k over the
 * windows covering it (Captum), or their sum (InterpretDL). Windows per axis:
 * ceil((size - window) / stride) + 1, starting at multiples of stride; one that runs past the end
 * is cut there. */
typedef struct idl_occlusion_params {
    int n_axes;                   /* axes given (0: default); the leading axes not given take their
                                     full extent (window = size) */
    int64_t window[IDL_MAX_DIMS]; /* per axis of one sample, trailing n_axes axes: default the
                                    sample's last two axes 15 x 15 */
    int64_t
        stride[IDL_MAX_DIMS]; /* per axis, same layout; 0 = the window (no overlap); default 8 */
    float baseline;           /* value written into the window (default 0) */
    const idl_tensor *baseline_tensor; /* or: one sample's shape, or (N, sample shape) (borrowed) */
    int sum;                           /* 0: mean over covering windows (default); 1: sum */
    int full_passes; /* 1: every window runs the whole network. 0 (default): on an image (C, H, W)
                        the network is cut into stages where one tensor carries the image, and up
                        to where a window changes more than ~60% of a stage's input, each stage
                        runs only on the crop of its input that the window's change depends on
                        (src/interpret/cone.c); results agree to ~1e-6 of the scores' scale */
} idl_occlusion_params;
IDL_API idl_occlusion_params idl_occlusion_params_default(void);
IDL_API idl_status idl_occlusion(idl_session *s, const idl_explain_request *rq,
                                 const idl_occlusion_params *p, idl_explanation *out);

/* Score-CAM (Wang et al.) and Ablation-CAM (Desai & Ramaswamy): gradient-free channel weights of
 * the layer's activation A (N, K, h, w), map = relu(sum_k w_k A_k) at the layer's resolution
 * (normalize / upsample as idl_cam_params).
 *  - Score-CAM: each channel, bilinearly upsampled to the input (align_corners, as
 *    pytorch-grad-cam) and min-max normalised to M_k, masks the input: s_k = f(x * M_k);
 *    w = softmax_k(s) (the paper's baseline-subtracted score is the same under the softmax).
 *    variant=interpretdl: InterpretDL's ScoreCAM (see idl_score_cam_params.interpretdl).
 *  - Ablation-CAM: channel k of the layer set to 0 (ablation_value): w_k = (f(x) - f_k) / f(x).
 * Passes that would repeat one are not run: Score-CAM channels whose maps are equal to the bit
 * share one pass (the dead, all-zero channels of a ReLU network), and an Ablation-CAM channel that
 * already holds ablation_value everywhere takes the clean score; passes counts those run. */
typedef struct idl_score_cam_params {
    idl_cam_params cam;   /* relu, normalize, upsample (kind is ignored) */
    int ablation;         /* 0: Score-CAM; 1: Ablation-CAM */
    int interpretdl;      /* Score-CAM only: InterpretDL's variant: map = sum_k s_k U_k at the input
                             resolution, U_k the bilinearly upsampled (half-pixel) activation,
                             scores unnormalised, no ReLU */
    float ablation_value; /* Ablation-CAM: value written into the ablated channel (default 0) */
} idl_score_cam_params;
IDL_API idl_score_cam_params idl_score_cam_params_default(void);
IDL_API idl_status idl_score_cam(idl_session *s, const idl_explain_request *rq,
                                 const idl_score_cam_params *p, idl_explanation *out);

/* LIME (Ribeiro et al.): a weighted linear surrogate over superpixels; see src/interpret/lime.c
 * for the computation. The attribution is (N, H, W), each pixel painted with its superpixel's
 * coefficient for the target; features, segments, masks, intercept and r2 are filled too. */
typedef struct idl_segment_params idl_segment_params; /* interpretdl/segment.h */
typedef struct idl_lime_params {
    int num_samples;    /* 1000 masks, the first all ones */
    float kernel_width; /* 0.25: weight sqrt(exp(-d^2 / width^2)), d cosine distance */
    float ridge_alpha;  /* 0: weighted least squares (InterpretDL); 1: the lime package */
    int top_k;          /* 1: the target; k > 1: the k most probable classes (descending;
                           InterpretDL lists them ascending), one fit each on the same samples */
    int hide_mean;      /* 1 (default): hidden superpixels take their mean value */
    float hide_value;   /* hide_mean = 0: the value they take */
    const idl_segment_params *seg; /* segmentation (segment.h); NULL: quickshift with the lime
                                      package's parameters */
    const idl_tensor *segments; /* replay: integer labels (H, W) or (N, H, W), 0..S-1 (borrowed) */
    const idl_tensor *masks;    /* replay: (num_samples, S) of 0 / 1 (borrowed) */
} idl_lime_params;
IDL_API idl_lime_params idl_lime_params_default(void);
IDL_API idl_status idl_lime(idl_session *s, const idl_explain_request *rq, const idl_lime_params *p,
                            idl_explanation *out);

/* G-LIME (Li et al. 2023; InterpretDL's GLIMECVInterpreter): LIME whose fit is a ridge in
 * standardised space — masks and scores centred by their weighted means, each mask column divided
 * by its L2 norm, the scores by theirs, rows scaled by sqrt(weight) — shrunk toward a prior w0
 * (L1-normalised): beta = argmin |X beta - y|^2 + prior_reg_force |beta - w0|^2. The features are
 * these standardised coefficients (as InterpretDL reports them); intercept and r2 describe the
 * surrogate in the data's units. The prior: none (zeros: plain ridge in standardised space), one
 * value per superpixel, or global class x concept weights (normlime's output) with the concept
 * centres: each superpixel takes the weight of its nearest concept for the target. */
typedef struct idl_glime_params {
    idl_lime_params lime;       /* sampling and segmentation; ridge_alpha is not used */
    float prior_reg_force;      /* 1 */
    const idl_tensor *prior;    /* (S) or (N, S) per superpixel; or (classes, concepts) with
                                   concepts (borrowed) */
    const idl_tensor *concepts; /* (concepts, 2K) centres (normlime's concepts_out) */
    const char *concept_layer;  /* the layer the concepts were made from; NULL: the automatic CAM
                                   layer */
} idl_glime_params;
IDL_API idl_glime_params idl_glime_params_default(void);
IDL_API idl_status idl_glime(idl_session *s, const idl_explain_request *rq,
                             const idl_glime_params *p, idl_explanation *out);

/* Global explanations in concepts over a set of images (the request's N samples, each run alone):
 * normlime (Ahern et al.; LIME on every image, weight of (class, concept) = mean of w^2 / sum|w|
 * over the superpixels of that concept in images explained for that class) and fastnormlime
 * (InterpretDL's global prior: grid cells, one ridge per class from concept presence to the clean
 * probabilities). Concepts: k-means clusters of superpixel features on a layer of the model (see
 * src/interpret/concepts.c), or given centres. The attribution is (classes, concepts); the
 * centres come back in idl_explanation.concepts; both feed glime. See src/interpret/normlime.c. */
typedef struct idl_normlime_params {
    idl_lime_params lime;       /* normlime's LIME runs; fastnormlime: lime.seg gives the grid */
    int n_concepts;             /* 32 k-means clusters (fewer if fewer superpixels) */
    int kmeans_iter;            /* 100 */
    const idl_tensor *concepts; /* given centres (concepts, 2K) instead of k-means (borrowed) */
    const char *concept_layer;  /* NULL: the automatic CAM layer */
    float ridge_alpha;          /* fastnormlime's ridge (1, its default) */
    const char *cache;          /* normlime: a .npy file of per-image results; rows of images
                                   already in it (same inputs and settings) are taken back,
                                   new ones written every 10 images and at the end (resumable) */
} idl_normlime_params;
IDL_API idl_normlime_params idl_normlime_params_default(void);
IDL_API idl_status idl_normlime(idl_session *s, const idl_explain_request *rq,
                                const idl_normlime_params *p, idl_explanation *out);
IDL_API idl_status idl_fastnormlime(idl_session *s, const idl_explain_request *rq,
                                    const idl_normlime_params *p, idl_explanation *out);

/* ---- transformer attention (the blocks of interpretdl/attention.h) ---- */
typedef enum idl_attn_method {
    IDL_ROLLOUT = 0,       /* Abnar & Zuidema's attention rollout (class-agnostic) */
    IDL_GENERIC_ATTENTION, /* Chefer et al. 2021: gradient-weighted attention relevance */
    IDL_TAM,               /* Yuan et al.: transition attention maps */
    IDL_BT,                /* Chen et al.: bidirectional transformer explanation */
    IDL_ATTENTION_GRADCAM, /* Grad-CAM on the last block's attention */
} idl_attn_method;

/* See src/interpret/attn.c for each computation. The output is one map per sample: the class
 * token's row (or the mean of the patch rows for a mean-pooling model) over the patch tokens on
 * the model's grid, (N, gh, gw); for a text model every token, (N, S). */
typedef struct idl_attn_params {
    idl_attn_method method;
    int start_layer;     /* first block used: 0 (tam: 4, InterpretDL's) */
    int head_fusion;     /* rollout: 0 mean (default), 1 max, 2 min */
    float discard_ratio; /* rollout: fraction of the smallest fused weights zeroed (0) */
    int interpretdl;     /* generic_attention: heads averaged before the product (InterpretDL) */
    int steps;           /* tam, bt: points on the path from 0 to the input (20) */
    int token_mode;      /* bt: 0 head weights (default), 1 token norms */
    const char *const *overrides; /* attention discovery overrides ("probs=GLOB", "grid=14x14",
                                     ...; see idl_session_attention) */
    int n_overrides;
} idl_attn_params;
IDL_API idl_attn_params idl_attn_params_default(idl_attn_method method);
IDL_API idl_status idl_attention_explain(idl_session *s, const idl_explain_request *rq,
                                         const idl_attn_params *p, idl_explanation *out);

/* InterpretDL's LIME picture: an (H, W) float32 map of sample i, 1 on the int(ratio * S)
 * superpixels of largest positive coefficient (fewer if fewer are positive), 0 elsewhere; for
 * IDL_OVERLAY_THRESHOLD. INVALID_ARG for an explanation without superpixels. */
IDL_API idl_status idl_lime_top_mask(const idl_explanation *e, int64_t i, float ratio,
                                     idl_tensor **mask);

/* ---- the registry ---- */
/* Runs a method by name with "key=value" settings (the command line's --set). Methods:
 *   saliency, input_x_gradient, smoothgrad, smoothgrad_sq, vargrad, noise_tunnel,
 *   integrated_gradients, gradient_shap, guided_backprop, deconvnet, cam, gradcam,
 *   gradcam_plus_plus, xgradcam, layercam, guided_gradcam, consensus, occlusion, scorecam,
 *   ablationcam, lime, glime, normlime, fastnormlime, rollout, generic_attention, tam, bt,
 *   attention_gradcam.
 * Settings every method takes: objective=logit|probability|log_probability, output=K,
 * internal_batch=N, wrt=NAME, layer=NAME, seed=S (override the request's fields). The keys of each
 * method are listed by idl_explain_help. A key a method does not take, or a bad value, is
 * INVALID_ARG naming it. File-valued settings (baseline=F.npy, noise_file=F.npy, models=A,B) are
 * read by the library. */
IDL_API idl_status idl_explain(idl_session *s, const char *method, const idl_explain_request *rq,
                               const char *const *settings, int n_settings, idl_explanation *out);
/* NULL-terminated list of method names. */
IDL_API const char *const *idl_explain_methods(void);
/* One line per setting (key, default, meaning) for a method; NULL for an unknown method. */
IDL_API const char *idl_explain_help(const char *method);

#ifdef __cplusplus
}
#endif
#endif
