/* interpret_internal.h — what the explanation methods (src/interpret/) share: the run context
 * (inputs in model order, batch, targets, the tensor attributed to and its clean value) and the
 * batched evaluator that computes the gradient of the objective at many points of the wrt
 * tensor, internal_batch rows per forward/backward. */
#pragma once

#include "core/internal.h"
#include "interpretdl/explain.h"
#include "session/session_internal.h"

#define IDL__XMAX_IN 64

typedef struct idl__xrun {
    idl_session *s;
    const idl_explain_request *rq;
    const idl_tensor *in[IDL__XMAX_IN]; /* graph inputs in model order (borrowed) */
    int n_in;
    int64_t N;               /* samples */
    idl_objective_kind kind; /* objective */
    int output;              /* graph output with the class scores */
    int64_t n_classes;
    int64_t *targets; /* (N) */
    float *score;     /* (N) objective at the clean input */
    /* the tensor attributed to (idl__x_begin with need_wrt) */
    char wrt[256];
    int wrt_input; /* index of the graph input, or -1: an intermediate (tapped) */
    int64_t numel; /* elements of one sample */
    int wrt_ndim;
    int64_t wrt_shape[IDL_MAX_DIMS]; /* with the batch axis */
    float *x;                        /* (N * numel) clean value */
    int rows;                        /* rows per pass of packs with a backward (lean plans) */
    int clean_kind;                  /* IDL__PLAN_* of the clean pass's plan */
    int rows_full;                   /* rows per pass of packs that keep every value (a tap
                                        rewrites an intermediate value: they may resume) */
    int rows_fwd;                    /* rows per pass of forward-only packs (a forward-only
                                        plan keeps fewer values; see auto_rows in common.c) */
    const char *grad_at; /* NULL: gradients w.r.t. wrt; else w.r.t. this tensor (take receives
                            grad_numel values per row) */
    int64_t grad_numel;
    int64_t passes, total; /* progress */
    /* chunk buffers */
    idl_tensor *bin[IDL__XMAX_IN];
    int64_t bin_rows;
    float *pts; /* tap source (intermediate wrt) */
    int64_t *btargets;
} idl__xrun;

/* Rows to evaluate: row r belongs to sample sample(r); point(r, dst) writes the wrt value of that
 * row (numel floats); take(r, grad, obj) receives the gradient (NULL when no gradient was asked
 * for) and the objective value of the row. Rows are visited in increasing order. */
typedef struct idl__xrows {
    int64_t n;
    void *u;
    int64_t (*sample)(void *u, int64_t row);
    void (*point)(void *u, int64_t row, float *dst);
    void (*take)(void *u, int64_t row, const float *grad, float obj);
    /* optional: whether a row needs its gradient (a pack of rows that need none runs forward
     * only, and take gets grad == NULL) */
    bool (*need_grad)(void *u, int64_t row);
    /* optional: the row's whole score vector (n_classes values of the output), after take */
    void (*scores)(void *u, int64_t row, const float *y, int64_t n_classes);
} idl__xrows;

/* Orders and checks the inputs, runs the clean forward pass, fixes targets and clean scores; with
 * need_wrt resolves and copies the wrt tensor. On failure everything is released. */
idl_status idl__x_begin(idl__xrun *r, idl_session *s, const idl_explain_request *rq, bool need_wrt);
/* idl__x_begin for the gradient methods (need_wrt): when the tensor attributed to is a graph input,
 * the clean pass runs on a lean plan (idl_session_opts.save_for_backward: only what a backward
 * reads is kept, so intermediate values cannot be read after it), and so do the packs of its
 * batch. */
idl_status idl__x_begin_grad(idl__xrun *r, idl_session *s, const idl_explain_request *rq);
void idl__x_end(idl__xrun *r);
/* Resolves and copies the wrt tensor (NULL or "input": the default) after idl__x_begin. */
idl_status idl__x_wrt(idl__xrun *r, const char *name);
/* Evaluates the rows (gradients when want_grad). Honours progress and the abort callback. The
 * clean pass's results on the session are overwritten. */
idl_status idl__x_eval(idl__xrun *r, const idl__xrows *rows, bool want_grad);
/* The objective of this run with its targets (borrowed from r). */
idl_objective idl__x_objective(const idl__xrun *r);
/* Objective value of one score row. */
float idl__objective_value(const float *row, int64_t n_classes, int64_t t, idl_objective_kind k);
/* Fills e->n, targets, score, wrt from the run and allocates the attribution of the given shape
 * (zeroed). */
idl_status idl__x_result(const idl__xrun *r, idl_explanation *e, int ndim, const int64_t *shape);
/* Per-sample noise standard deviation: noise_abs if > 0, else noise * (max - min) of the sample. */
void idl__x_sigma(const idl__xrun *r, float noise, float noise_abs, float *sigma);
/* The word-embedding Gather output of a token-id model: a Gather whose data is a 2-D float
 * initializer and whose indices derive from the first integer graph input. NULL if none. */
const char *idl__word_embedding(const idl_model *m);

/* Forward passes that recompute only what a local change of the graph input changes (cone.c):
 * made for K rows a sample whose changes lie in rectangles given by win(u, k, {y0, y1, x0, x1})
 * (inclusive, on the input's H and W axes), run B rows a pass. IDL_ERR_UNSUPPORTED (no message)
 * when the model does not allow it or it would not save work: use whole passes. */
typedef struct idl__cone idl__cone;
idl_status idl__cone_new(idl__xrun *r, int64_t K, void *u, void (*win)(void *, int64_t, int64_t *),
                         int64_t B, idl__cone **out);
/* The clean activations of sample i (before idl__cone_run on its rows). */
idl_status idl__cone_sample(idl__cone *c, int64_t i);
/* Objective values obj[b] of cnt <= B rows: rows[b] (written whole by point(u, rows[b], dst)) is
 * window ks[b] of the current sample, its target targets[b]. */
idl_status idl__cone_run(idl__cone *c, const int64_t *ks, int64_t cnt, void *u,
                         void (*point)(void *, int64_t, float *), const int64_t *rows,
                         const int64_t *targets, float *obj);
void idl__cone_free(idl__cone *c);

/* Random streams: distinct purposes never share a stream. */
enum {
    IDL__STREAM_NOISE = 1,
    IDL__STREAM_ALPHA = 2,
    IDL__STREAM_BASELINE = 3,
    IDL__STREAM_PICK = 4,
    IDL__STREAM_MASK = 5,
    IDL__STREAM_KMEANS = 6,
    IDL__STREAM_SENSITIVITY = 7
};
#define IDL__STREAM(purpose, k) (((uint64_t)(purpose) << 48) | (uint64_t)(k))

/* Baselines (gradient.c): the baseline of trial t for sample i into dst (numel floats). */
idl_status idl__baseline_check(const idl__xrun *r, const idl_baseline *b, int *trials);
idl_status idl__baseline_fill(const idl__xrun *r, const idl_baseline *b, int t, int64_t i,
                              float *dst);

/* Noise of draw s for sample i (numel floats): the replay tensor's, or sigma[i] * N(0, 1) keyed by
 * (seed, s) — the same pattern for every sample of a batch. */
void idl__draw_noise(const idl__xrun *r, const idl_tensor *replay, const float *sigma, int64_t s,
                     int64_t i, float *dst);
/* Checks a replay tensor: (draws, wrt shape) when per_row == numel, (draws, N) when per_row == 1.
 */
idl_status idl__check_replay(const idl__xrun *r, const idl_tensor *t, int64_t draws,
                             const char *what, int64_t per_row);

/* The activation of a layer on the run's clean pass as (N, K, h, w) floats (*A owned): a 4-D
 * tensor, or a vision transformer's tokens on their grid; name NULL = the CAM methods' automatic
 * layer. name_out (256 bytes) receives the name. */
idl_status idl__layer_activation(idl__xrun *r, const char *name, char *name_out, float **A,
                                 int64_t *K, int64_t *h, int64_t *w);

/* Concept features (concepts.c). Per superpixel of one sample: the layer's activation A (K, h, w)
 * resized bilinearly (half-pixel, idl__resize_map) to (H, W), taken at the pixel nearest the
 * superpixel's centroid and averaged over the superpixel: 2K values, L2-normalised (InterpretDL's
 * recipe, on the user's layer). out: (S, 2K). */
idl_status idl__superpixel_features(const float *A, int64_t K, int64_t h, int64_t w,
                                    const int32_t *seg, int64_t H, int64_t W, int64_t S,
                                    float *out);
/* k-means (Lloyd, k-means++ seeding from the counter-based RNG keyed by seed): X (n, D) to k
 * centres (k, D) and the assignment of each row; at most max_iter iterations (stops when no row
 * moves). k is clamped to n. */
idl_status idl__kmeans(const float *X, int64_t n, int64_t D, int64_t k, uint64_t seed, int max_iter,
                       float *centres, int32_t *assign);
/* Index of the centre nearest to x (squared Euclidean). */
int64_t idl__nearest_centre(const float *x, const float *centres, int64_t k, int64_t D);

/* Weighted ridge regression with intercept (lime.c): minimises sum_s w_s (y_s - b - Z_s.beta)^2
 * + alpha |beta|^2 over beta (S) and b; Z is (n, S) row-major. alpha = 0: the minimum-norm
 * weighted least-squares solution. r2: the weighted R^2 on the same samples. */
idl_status idl__weighted_ridge(const float *Z, int64_t n, int64_t S, const double *y,
                               const double *w, double alpha, double *beta, double *intercept,
                               double *r2);

/* Weighted means of the columns of Z (n, S) and of y; false when the weights sum to 0 (lime.c). */
bool idl__weighted_means(const float *Z, int64_t n, int64_t S, const double *y, const double *w,
                         double *zm, double *ym);
/* Weighted R^2 of y ~ b0 + Z beta (scikit-learn's score with sample weights); ym the weighted mean
 * of y. */
double idl__weighted_r2(const float *Z, int64_t n, int64_t S, const double *y, const double *w,
                        double ym, const double *beta, double b0);
/* LIME's kernel weight of mask z (S superpixels): sqrt(exp(-d^2 / width^2)), d the cosine distance
 * of z to the all-ones mask (lime.c). */
double idl__lime_weight(const float *z, int64_t S, double kernel_width);
/* idl_lime, also handing over the objective of every perturbed sample: *y (N * num_samples,
 * owned; one class per sample). */
idl_status idl__lime_samples(idl_session *s, const idl_explain_request *rq,
                             const idl_lime_params *p, idl_explanation *out, double **y);

/* Integrated Gradients quadrature: alpha and weight of each of n steps. */
idl_status idl__ig_quadrature(idl_ig_method m, int n, double *alpha, double *w);

/* Parses the baseline setting value: zero, black, uniform, blur, random or a .npy path (loaded
 * into *owned). */
idl_status idl__baseline_parse(const char *v, idl_baseline *b, idl_tensor **owned);
