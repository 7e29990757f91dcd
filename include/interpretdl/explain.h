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

/* ---- the registry ---- */
/* Runs a method by name with "key=value" settings (the command line's --set). Methods:
 *   saliency, input_x_gradient, smoothgrad, smoothgrad_sq, vargrad, noise_tunnel,
 *   integrated_gradients, gradient_shap, guided_backprop, deconvnet, cam, gradcam,
 *   gradcam_plus_plus, xgradcam, layercam, guided_gradcam, consensus.
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
