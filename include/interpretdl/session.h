/* session.h — running a model: forward passes, gradients of an objective, taps on intermediate
 * tensors. A session belongs to one thread at a time; make one per thread over a shared model. */
#ifndef INTERPRETDL_SESSION_H
#define INTERPRETDL_SESSION_H

#include "interpretdl/interpretdl.h"
#include "interpretdl/model.h"
#include "interpretdl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct idl_session idl_session;

typedef struct idl_session_opts {
    int n_threads;         /* threads for kernels; 0 = all cores (OMP_NUM_THREADS if set) */
    uint64_t max_memory;   /* bytes of activations one plan may allocate (weights not counted);
                              0 = three quarters of physical memory. Going over fails the forward
                              pass with IDL_ERR_NOMEM naming the tensor; the explanation methods
                              and metrics then split their internal batches (down to one row a
                              pass) instead of failing. */
    int plain_layout;      /* 1: every activation in plain row-major layout between ops (slower;
                              for comparisons). 0 (default): chains of convolutions and element-
                              wise ops keep oneDNN's blocked layout between them. Either way the
                              tensors the API shows are plain. */
    int direct_conv;       /* 1: every convolution on oneDNN's direct kernels. 0 (default): 3x3
                              stride-1 convolutions with constant weights over enough 4x4 (or
                              2x2) output tiles (and their input gradients) run as Winograd
                              F(4x4,3x3) (or F(2x2,3x3)) on AVX2 CPUs: 4x (2.25x) fewer
                              multiply-adds; the input gradient of a convolution of at most 4
                              input channels (an image network's first layer) runs on our own
                              AVX2 kernel; the sums are formed in another order, so results
                              differ by ~1e-6 of the output's scale. */
    int forward_only;      /* 1: the session runs forward passes only. Intermediate values whose
                              readers have run share memory (one arena planned by lifetimes: resnet50
                              at batch 8 needs 74 MiB instead of 807), so after a pass only graph
                              inputs, outputs and constants can be read (taps still see every value
                              as it is made); idl_session_backward fails. 0 (default): every value
                              is kept. The explanation methods use such plans by themselves for
                              their forward-only passes (occlusion, LIME, Score-CAM, metrics). */
    int save_for_backward; /* 1: a pass keeps only what a backward reads (a ReLU's output, a
                            MatMul's operands, ...: what PyTorch's autograd saves); the other
                            intermediate values share one arena, and a Conv or Add writes the
                            ReLU after it as it goes. After a pass only graph inputs, outputs,
                            constants and the gradients asked for can be read (taps still see
                            every value as it is made), and gradients w.r.t. constants
                            (initializers) are refused. resnet50 forward + input gradient keeps
                            37 MiB a row and a 6 MiB arena instead of ~100 MiB. 0 (default): every
                            value is kept. The explanation methods use such plans by themselves for
                            their gradient passes. */
} idl_session_opts;
IDL_API idl_session_opts idl_session_opts_default(void);

/* Creates a session over a model (borrowed: it must outlive the session). opts may be NULL.
 * Errors: UNSUPPORTED when a node uses an op this library does not implement (the message names
 * the op, the node and the opset), NOMEM, BACKEND. *out is NULL on failure. */
IDL_API idl_status idl_session_new(const idl_model *m, const idl_session_opts *opts,
                                   idl_session **out);
/* NULL is a no-op. */
IDL_API void idl_session_free(idl_session *s);

/* Runs the model forward. inputs[i] are borrowed for the call. names == NULL: inputs are given in
 * the order of idl_model_input (n must equal idl_model_n_inputs); otherwise names[i] names the
 * graph input that inputs[i] feeds (every input must still be given once). The batch and any other
 * free dimension are taken from the tensors; the session re-plans (shape inference, constant
 * folding of shape arithmetic, kernel selection) only when the input shapes change. Small 1-D
 * integer inputs (at most 16 elements: a target shape, axes) count as shape arithmetic: their
 * values are folded into the plan, and a new value re-plans. Errors: INVALID_ARG (wrong count,
 * unknown name), SHAPE (rank/shape against the model), UNSUPPORTED (dtype, attribute values),
 * ABORTED. Results stay valid until the next forward on this session. */
IDL_API idl_status idl_session_forward(idl_session *s, const idl_tensor *const *inputs,
                                       const char *const *names, int n);

/* Output i of the last forward (borrowed, valid until the next forward), NULL if out of range or no
 * forward ran. */
IDL_API const idl_tensor *idl_session_output(const idl_session *s, int i);
/* Any tensor of the last forward by ONNX name: graph inputs, initializers, intermediate values
 * (borrowed; NULL if unknown; idl_last_error() then lists close names). */
IDL_API const idl_tensor *idl_session_tensor(idl_session *s, const char *name);

/* What to differentiate.
 *  - IDL_OBJ_LOGIT / PROBABILITY / LOG_PROBABILITY: the output (rank >= 1, classes on the last
 * axis, samples on the first) at class targets[b] of each sample b, as given, after softmax over
 * the class axis, or after log-softmax; summed over the batch, so each sample gets its own
 * gradient. targets == NULL: the argmax class of the clean pass, per sample.
 *  - IDL_OBJ_SEED: sum(output * seed) with seed of the output's shape (a vector-Jacobian product).
 */
typedef enum idl_objective_kind {
    IDL_OBJ_LOGIT = 0,
    IDL_OBJ_PROBABILITY = 1,
    IDL_OBJ_LOG_PROBABILITY = 2,
    IDL_OBJ_SEED = 3,
} idl_objective_kind;

typedef struct idl_objective {
    idl_objective_kind kind;
    int output;             /* index of the graph output (default 0) */
    const int64_t *targets; /* borrowed, one per sample, or NULL = argmax */
    const idl_tensor *seed; /* borrowed, for IDL_OBJ_SEED */
} idl_objective;
/* Probability of the argmax class of output 0 (InterpretDL's default). */
IDL_API idl_objective idl_objective_default(void);
/* Parses "logit", "probability", "log_probability" (also "prob", "logprob"). INVALID_ARG otherwise.
 */
IDL_API idl_status idl_objective_kind_parse(const char *s, idl_objective_kind *out);

/* Reverse pass for the last forward: gradients of the objective with respect to each tensor named
 * in wrt (graph inputs, any intermediate tensor, or initializers for parameter gradients). Only the
 * part of the graph between the wrt tensors and the objective is differentiated. Afterwards
 * idl_session_grad(s, name) returns each gradient.
 * Errors: INVALID_ARG (no forward yet, bad target, wrong seed shape, non-float wrt), NOT_FOUND
 * (unknown tensor name; the message lists close matches), UNSUPPORTED (no gradient through an op on
 * the path: the message names it). */
IDL_API idl_status idl_session_backward(idl_session *s, const idl_objective *obj,
                                        const char *const *wrt, int n_wrt);
/* Gradient of the last backward w.r.t. a tensor named in its wrt list (borrowed; valid until the
 * next forward or backward); NULL otherwise. */
IDL_API const idl_tensor *idl_session_grad(idl_session *s, const char *name);
/* The per-sample objective values of the last backward (borrowed; shape (N)), and the targets used.
 */
IDL_API const idl_tensor *idl_session_objective_values(const idl_session *s);
IDL_API const int64_t *idl_session_targets(const idl_session *s, int64_t *n);

/* Taps: cb is called during every forward right after the named tensor is computed (or, for a graph
 * input, before the first node runs). The callback may read it or modify it in place (same shape)
 * to replace the value the rest of the graph sees; gradients then flow as if the modified value had
 * been computed there. cb == NULL removes the tap. A tensor that is constant-folded (depends only
 * on initializers) is computed once per plan and not tapped on every forward. Errors: NOT_FOUND
 * (unknown name, close matches listed). */
typedef void (*idl_tap_fn)(const char *name, idl_tensor *value, void *user);
IDL_API idl_status idl_session_set_tap(idl_session *s, const char *name, idl_tap_fn cb, void *user);

/* Abort callback polled between nodes; returning non-zero stops the pass with IDL_ERR_ABORTED. */
typedef int (*idl_abort_fn)(void *user);
IDL_API void idl_session_set_abort(idl_session *s, idl_abort_fn cb, void *user);

#ifdef __cplusplus
}
#endif
#endif
