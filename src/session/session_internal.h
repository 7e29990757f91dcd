/* session_internal.h — the session and its plan, shared by the planner (graph/plan.c), the reverse
 * pass (autodiff/backward.c) and the public session API (session/session.c). */
#pragma once

#include "interpretdl/attention.h"
#include "interpretdl/session.h"
#include "ops/op.h"

/* A plan is made for one set of input shapes: every value has a concrete type and shape, values
 * that depend only on initializers and shapes are computed ("folded") once, kernels are prepared.
 */
/* A value kept in a oneDNN blocked layout between the ops that take it (IDL__OP_LAYOUT): its data
 * in the plan (vals[v]) and its gradient (grads[v]) are in layout `md`, same size as plain. Ops
 * without the flag read `plain`, refreshed after the producer runs; their gradient contributions
 * go to `gplain` and are added into grads[v] before the producer's backward. Reads through the
 * API (idl_session_tensor, idl_session_grad, taps) see plain copies made on demand. */
typedef struct idl__vlayout {
    dnnl_memory_desc_t md;
    idl_tensor plain;  /* the value in plain layout (data allocated on first need) */
    idl_tensor gplain; /* plain gradient: plain consumers' contributions, or the API's view */
    bool plain_ok;     /* plain holds the value of this pass */
    bool feed_plain;   /* some node reads plain: refresh it after every producer run */
    dnnl_memory_t mem_b, mem_p;
    dnnl_primitive_t to_plain, from_plain, add_from_plain;
} idl__vlayout;

typedef struct idl__plan {
    int n_values, n_nodes;
    idl_tensor *vals; /* per value; initializer data is borrowed from the model */
    bool *vconst;     /* value known at plan time */
    bool *folded;     /* node computed at plan time */
    idl__op_ctx *ctx; /* per node, arrays below point into `ptrs`/`consts` */
    idl_tensor **ptrs;
    bool *consts;
    /* buffers lent to the gradients of intermediate values during a backward (autodiff): taken at
     * a value's first contribution, given back once its producer's backward has read it */
    struct idl__gbuf {
        void *buf;
        size_t size;
        bool used;
    } * gpool;
    int gpool_n, gpool_cap;
    const dnnl_memory_desc_t **mds; /* per slot, like ptrs: the ctx in_md/out_md arrays */
    bool *slot_plain;               /* per input slot: reads the plain copy of a blocked value */
    idl__vlayout **lay;             /* per value: its blocked layout, NULL when plain */
    idl_tensor *grads;              /* per value; data allocated on first need */
    bool *active;                   /* values on the current backward path */
    bool *fresh;           /* values whose gradient has one contributor (see op.h din_fresh) */
    idl_tensor *in_shapes; /* shapes the plan was made for (no data) */
    int *in_value;         /* value id of each graph input */
    int n_in;
    /* the nodes downstream of value down_from (-1: none computed yet), for resumed passes */
    int down_from;
    bool *down_node;
    /* kind (IDL__PLAN_*): a forward-only plan has no backward, and its intermediate values share
     * `arena` (see arena_layout in plan.c), so only graph inputs, outputs and folded values
     * outlive a pass; a lean plan keeps besides those the values some backward reads (op.h
     * bwd_reads) and puts the others in the arena */
    int kind;
    void *arena;
    size_t arena_bytes;
    bool *in_arena; /* per value: its data lies in the arena, or it is fused away */
    /* fused activations (forward-only and lean plans): a Conv or Add writes the Relu (or, forward
     * only, the Clip) straight into its output; alias_of[conv output] = the activation's output
     * value (-1: none), skip[its node] */
    int *alias_of;
    bool *skip;
    /* element-wise regions run by row blocks (forward-only plans, graph/rowfuse.c): rf_anchor per
     * node, the region it runs (its last node; the others are skipped) or -1; rf_tmp per value:
     * read inside its region only, no memory of its own; rf_out per value: written by a region
     * and read after it (a tap on either kind makes the plan again); rf_last per value: the
     * anchor of the last region reading it from outside (its lifetime in the arena), or -1;
     * rf_scratch: the regions' values read only inside, one block per thread and one for the
     * last block, shared by all regions (one runs at a time), rf_bytes of it */
    struct idl__rfregion *rf;
    int n_rf;
    float *rf_scratch;
    uint64_t rf_bytes;
    int *rf_anchor;
    bool *rf_tmp, *rf_out;
    int *rf_last;
    uint64_t bytes; /* activation bytes the plan holds (the memory budget's measure) */
} idl__plan;

/* Points c at node n of m (its attributes, opset and backend) and its in / out / din / dout slot
 * arrays at ptrs + *off, advancing *off past them; returns its in_const flags (consts + the same
 * offset) for the caller to fill. */
bool *idl__ctx_bind(idl__op_ctx *c, const idl_model *m, const idl__node *n, idl__backend *be,
                    idl_tensor **ptrs, bool *consts, size_t *off);

typedef struct idl__rfregion idl__rfregion;
/* graph/rowfuse.c: builds forward-only plan p's element-wise regions (after its nodes are
 * prepared, before its arena is laid out; their scratch within `room` bytes), runs the region
 * whose anchor is node, frees them. */
void idl__rowfuse_plan(const idl_session *s, idl__plan *p, const bool *is_out, uint64_t room);
void idl__rowfuse_run(const idl__plan *p, int node);
void idl__rowfuse_free(idl__plan *p);

/* Plan kinds: every value kept; forward only; lean (only what a backward reads is kept). */
enum { IDL__PLAN_FULL = 0, IDL__PLAN_FWD = 1, IDL__PLAN_LEAN = 2 };

typedef struct idl__tap {
    int value;
    idl_tap_fn cb;
    void *user;
} idl__tap;

struct idl_session {
    const idl_model *m;
    idl_session_opts opts;
    idl__backend be_own; /* the session's oneDNN engine and stream, scratch, derived weights */
    idl__backend *be;    /* &be_own, or the session's it shares them with (idl__session_new_sub) */
    idl__plan *plan;     /* the plan of the last forward */
    idl__plan *spare;    /* the one before, kept while both fit the memory budget (a method's clean
                            pass and its packs, or a gradient plan and a forward-only one, then
                            alternate without re-planning) */
    int plan_hint;       /* IDL__PLAN_*: the next forwards need no backward (FWD) or a backward
                            only (LEAN), and no intermediate value: they may use a plan of that kind
                            (set by the explanation methods' packs) */
    bool have_forward;
    idl__tap *taps;
    int n_taps, cap_taps;
    idl_abort_fn abort_cb;
    void *abort_user;
    /* resumed passes (idl__session_resume_from): the value whose tap rewrites it whole, -1 off;
     * fwd_complete: every value holds the last forward's result (no failure or abort since) */
    int resume_from;
    bool fwd_complete;
    /* last backward */
    bool have_backward;
    int *wrt;
    int n_wrt;
    idl_tensor *obj_values; /* (N) */
    int64_t *targets;
    int64_t n_targets;
    int relu_rule; /* IDL__RELU_* : backward rule of Relu nodes (guided backprop, deconvnet) */
    /* attention discovery (attention.c) */
    idl_attention_info attn;
    idl_attention_block *attn_blocks;
    char *attn_strings[64]; /* override names kept alive */
    int n_attn_strings;
};

/* Backward rules of Relu nodes, overridable per session (autodiff/backward.c):
 *   DEFAULT  dx = dy * (x > 0)
 *   GUIDED   dx = max(dy, 0) * (x > 0)   guided backpropagation (Springenberg et al.)
 *   DECONV   dx = max(dy, 0)             DeconvNet (Zeiler & Fergus) */
enum { IDL__RELU_DEFAULT = 0, IDL__RELU_GUIDED = 1, IDL__RELU_DECONV = 2 };
void idl__session_set_relu_rule(idl_session *s, int rule);

/* Resumed passes: while set (a value name; NULL clears it), a forward whose inputs and plan are
 * those of the last complete forward, on a session whose only tap is on that value, runs the tap
 * and then only the nodes downstream of the value: everything upstream already holds what a full
 * pass would compute again. For perturbations of an intermediate tensor that a tap writes whole
 * (Ablation-CAM): each pass then costs the part of the network after the layer. */
idl_status idl__session_resume_from(idl_session *s, const char *name);
/* Runs the tap of value v and the nodes downstream of it (see idl__session_resume_from). */
idl_status idl__plan_forward_from(idl_session *s, int v);

/* A session over a part of parent's model (idl__model_sub) that shares parent's backend: its
 * oneDNN engine and stream, the kernels' scratch and the weights derived from initializers (the
 * part borrows the model's, so its convolutions find theirs already reordered). The two must run
 * one at a time, in one thread, and it must be freed before parent. */
idl_status idl__session_new_sub(idl_session *parent, const idl_model *m,
                                const idl_session_opts *opts, idl_session **out);

/* Frees the attention discovery results. */
void idl__attention_clear(idl_session *s);

/* Small 1-D integer graph inputs (a shape, axes, a repeat count: at most IDL__SHAPE_INPUT_MAX
 * elements) are treated as plan-time constants, so that shape arithmetic fed from them folds; their
 * values are part of the plan's key. Larger or higher-rank integer inputs (token ids) are data. */
#define IDL__SHAPE_INPUT_MAX 16
bool idl__shape_like_input(const idl_tensor *t);
/* Bytes the activations of one plan may take: opts->max_memory, or 3/4 of physical memory. */
uint64_t idl__memory_budget(const idl_session_opts *o);
/* Builds a plan of a kind (IDL__PLAN_*) for inputs of the given shapes (types/shapes only are
 * read), whose activations take at most `budget` bytes. */
idl_status idl__plan_build(idl_session *s, const idl_tensor *const *inputs, int kind,
                           uint64_t budget, idl__plan **out);
/* Bytes the intermediate values of plan p would take in a plan of that kind (FULL: every value;
 * FWD: its arena; LEAN: the values a backward reads, and the arena of the others). */
uint64_t idl__plan_kind_bytes(const idl_model *m, const idl__plan *p, int kind);
void idl__plan_free(idl__plan *p);
/* The value as the API shows it: plain, a copy made on demand for a blocked value (NULL with the
 * error set when that copy cannot be allocated). */
const idl_tensor *idl__plan_value(idl_session *s, int v);
/* The plain gradient of value v after a backward (NULL with the error set on failure). */
const idl_tensor *idl__plan_grad(idl_session *s, int v);
/* Copies between a blocked value and its plain form: to = 1 blocked -> plain (allocating plain's
 * data on first use), to = 0 plain -> blocked, to = 2 plain added into blocked. */
idl_status idl__lay_copy(idl__backend *be, idl__vlayout *L, void *blocked, idl_tensor *plain,
                         int to);
/* Whether the plan was made for exactly these input types and shapes, and is of that kind. */
bool idl__plan_matches(const idl__plan *p, const idl_tensor *const *inputs, int n, int kind);
/* Tests: overwrites the arena of a forward-only or lean plan with NaN, as though later nodes had
 * reused all of it: a backward must not read what it holds. */
void idl__plan_poison_arena(idl__plan *p);
/* Runs the non-folded nodes; taps are applied. */
idl_status idl__plan_forward(idl_session *s);
/* Reverse pass; see idl_session_backward. */
idl_status idl__backward(idl_session *s, const idl_objective *obj, const int *wrt, int n_wrt);
/* Close-match message for an unknown tensor name. */
idl_status idl__unknown_tensor(const idl_model *m, const char *name);
